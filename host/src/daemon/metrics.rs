//! `/metrics`: the snapshot in Prometheus' text format 0.0.4, or OpenMetrics
//! 1.0 when the scraper asks for it. Besides wattson's own series, the
//! libvirt/nova exporter's (seed 002) with its names and labels, so existing
//! dashboards keep working, unless `[daemon] compat_series = false`: their
//! names break Prometheus' naming conventions (`promtool check metrics`
//! exits 3 on `_kb` units and a gauge ending in `_count`).

use std::fmt::Write as _;

use super::tick::{Snapshot, VmNow};

/// The exposition format of a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for (OpenMetrics only when named).
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Text,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family being written.
struct Family<'a> {
    out: &'a mut String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// A `_info` series of value 1 (a gauge in the text format).
    Info,
}

/// Writes families in `format`.
struct Writer {
    out: String,
    format: Format,
}

impl Writer {
    /// Starts family `name` (a counter's name ends in `_total`).
    fn family(&mut self, name: &str, kind: Kind, help: &str) -> Family<'_> {
        let (family, word) = match kind {
            Kind::Counter if self.format == Format::OpenMetrics => {
                (name.strip_suffix("_total").unwrap_or(name), "counter")
            }
            Kind::Counter => (name, "counter"),
            Kind::Info if self.format == Format::OpenMetrics => {
                (name.strip_suffix("_info").unwrap_or(name), "info")
            }
            Kind::Gauge | Kind::Info => (name, "gauge"),
        };
        let _ = writeln!(self.out, "# HELP {family} {help}");
        let _ = writeln!(self.out, "# TYPE {family} {word}");
        Family { out: &mut self.out }
    }
}

impl Family<'_> {
    /// One sample of the family.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        number_into(self.out, value);
        self.out.push('\n');
        self
    }
}

/// Appends a label value, escaped as both formats want.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends a sample value (Rust's shortest round-trip form).
fn number_into(out: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value}");
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value > 0.0 {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
}

/// The snapshot as a scrape body.
pub fn render(s: &Snapshot, format: Format, spool_payloads: usize) -> String {
    let mut w = Writer {
        out: String::with_capacity(256 + s.vms.len() * 900),
        format,
    };
    let host = s.host.as_str();
    fn vm_labels<'a>(v: &'a VmNow, host: &'a str) -> [(&'static str, &'a str); 4] {
        [
            ("uuid", &v.uuid),
            ("name", v.who.name.as_deref().unwrap_or_default()),
            ("project", v.who.project()),
            ("host", host),
        ]
    }
    {
        let mut f = w.family(
            "wattson_vm_energy_joules_total",
            Kind::Counter,
            "Energy attributed to the VM since wattson's state began, joules.",
        );
        for v in &s.vms {
            f.sample(
                "wattson_vm_energy_joules_total",
                &vm_labels(v, host),
                v.joules_total,
            );
        }
    }
    {
        let mut f = w.family(
            "wattson_vm_carbon_grams_total",
            Kind::Counter,
            "Carbon footprint of the VM's energy since wattson's state began (kWh x PUE x grid intensity), gCO2e.",
        );
        for v in &s.vms {
            if let Some(grams) = v.carbon_grams_total {
                f.sample("wattson_vm_carbon_grams_total", &vm_labels(v, host), grams);
            }
        }
    }
    {
        let mut f = w.family(
            "wattson_vm_embodied_grams_total",
            Kind::Counter,
            "Embodied emissions of the host's manufacture amortized to the VM by its share of the host's capacity since wattson's state began, gCO2e.",
        );
        for v in &s.vms {
            if let Some(grams) = v.embodied_grams_total {
                f.sample(
                    "wattson_vm_embodied_grams_total",
                    &vm_labels(v, host),
                    grams,
                );
            }
        }
    }
    {
        let mut f = w.family(
            "wattson_vm_gpu_energy_joules_total",
            Kind::Counter,
            "GPU part of wattson_vm_energy_joules_total: the energy of the GPUs the VM held, by its share of each, since wattson's state began, joules.",
        );
        for v in &s.vms {
            if let Some(joules) = v.gpu_joules_total {
                f.sample(
                    "wattson_vm_gpu_energy_joules_total",
                    &vm_labels(v, host),
                    joules,
                );
            }
        }
    }
    {
        let mut f = w.family(
            "wattson_vm_gpu_info",
            Kind::Info,
            "A GPU (or part of one) the VM holds now: the card's PCI bus id and uuid, how (passthrough, vgpu, mig), its share and vGPU type.",
        );
        for g in &s.gpu_holders {
            let share = g.share.to_string();
            f.sample(
                "wattson_vm_gpu_info",
                &[
                    ("uuid", &g.uuid),
                    ("host", host),
                    ("pci_bus_id", &g.bus_id),
                    ("gpu_uuid", g.gpu_uuid.as_deref().unwrap_or_default()),
                    ("mode", g.mode.as_str()),
                    ("share", &share),
                    ("profile", g.profile.as_deref().unwrap_or_default()),
                ],
                1.0,
            );
        }
    }
    {
        let mut f = w.family(
            "wattson_vm_power_watts",
            Kind::Gauge,
            "Power attributed to the VM over the last interval, watts.",
        );
        for v in &s.vms {
            if let Some(watts) = v.watts {
                f.sample("wattson_vm_power_watts", &vm_labels(v, host), watts);
            }
        }
    }
    {
        let mut f = w.family(
            "wattson_vm_cpu_seconds_total",
            Kind::Counter,
            "CPU seconds the VM used (libvirt's counter).",
        );
        for v in &s.vms {
            if let Some(cpu_s) = v.cpu_s {
                f.sample("wattson_vm_cpu_seconds_total", &vm_labels(v, host), cpu_s);
            }
        }
    }
    {
        let mut f = w.family(
            "wattson_host_energy_joules_total",
            Kind::Counter,
            "Energy of each local meter (RAPL zone, ipmi) since wattson's state began, joules.",
        );
        for (meter, joules) in &s.meters {
            f.sample(
                "wattson_host_energy_joules_total",
                &[("host", host), ("meter", meter)],
                *joules,
            );
        }
    }
    {
        let mut f = w.family(
            "wattson_host_gpu_energy_joules_total",
            Kind::Counter,
            "Energy of each GPU as measured (its counter, else its power) since wattson's state began, joules.",
        );
        for (bus_id, joules) in &s.gpus {
            f.sample(
                "wattson_host_gpu_energy_joules_total",
                &[("host", host), ("pci_bus_id", bus_id)],
                *joules,
            );
        }
    }
    w.family(
        "wattson_host_unattributed_joules_total",
        Kind::Counter,
        "Host energy the model left unattributed (idle kept at the host, no VMs, …), joules.",
    )
    .sample(
        "wattson_host_unattributed_joules_total",
        &[("host", host)],
        s.unattributed_joules,
    );
    {
        let mut f = w.family(
            "wattson_host_power_watts",
            Kind::Gauge,
            "Power of the model's host meter over the last interval, watts.",
        );
        if let Some(watts) = s.host_watts {
            f.sample("wattson_host_power_watts", &[("host", host)], watts);
        }
    }
    {
        let mut f = w.family(
            "wattson_host_idle_power_watts",
            Kind::Gauge,
            "Idle power of the host the model used in the last interval, watts.",
        );
        if let Some(watts) = s.idle_watts {
            f.sample("wattson_host_idle_power_watts", &[("host", host)], watts);
        }
    }
    let h = &s.health;
    w.family(
        "wattson_daemon_tick_duration_seconds",
        Kind::Gauge,
        "Seconds the last tick took: sample, attribute, persist.",
    )
    .sample("wattson_daemon_tick_duration_seconds", &[], h.last_tick_s);
    w.family(
        "wattson_daemon_intervals_total",
        Kind::Counter,
        "Intervals attributed.",
    )
    .sample("wattson_daemon_intervals_total", &[], h.intervals as f64);
    {
        let mut f = w.family(
            "wattson_daemon_sample_failures_total",
            Kind::Counter,
            "Samples a source could not be read in, by source.",
        );
        for source in ["libvirt", "rapl", "ipmi", "gpu"] {
            let n = h.sample_failures.get(source).copied().unwrap_or(0);
            f.sample(
                "wattson_daemon_sample_failures_total",
                &[("source", source)],
                n as f64,
            );
        }
    }
    w.family(
        "wattson_daemon_reboots_total",
        Kind::Counter,
        "Host reboots seen between two samples (each a new baseline; the time between is not attributed).",
    )
    .sample("wattson_daemon_reboots_total", &[], h.reboots as f64);
    w.family(
        "wattson_daemon_persist_failures_total",
        Kind::Counter,
        "Ticks whose state could not be saved (a full or read-only disk); the counters go on in memory.",
    )
    .sample("wattson_daemon_persist_failures_total", &[], h.persist_failures as f64);
    w.family(
        "wattson_daemon_plugin_failures_total",
        Kind::Counter,
        "Intervals whose model failed (measured again at the next one).",
    )
    .sample(
        "wattson_daemon_plugin_failures_total",
        &[],
        h.plugin_failures as f64,
    );
    w.family(
        "wattson_daemon_failing_intervals",
        Kind::Gauge,
        "Intervals failed in a row (0 when the last one succeeded).",
    )
    .sample(
        "wattson_daemon_failing_intervals",
        &[],
        h.failures_in_a_row as f64,
    );
    {
        let mut f = w.family(
            "wattson_daemon_last_success_timestamp_seconds",
            Kind::Gauge,
            "When the last interval succeeded, seconds since the epoch.",
        );
        if let Some(ms) = h.last_success_ms {
            f.sample(
                "wattson_daemon_last_success_timestamp_seconds",
                &[],
                ms as f64 / 1000.0,
            );
        }
    }
    w.family(
        "wattson_daemon_messenger_failures_total",
        Kind::Counter,
        "Shipping runs in which a messenger failed (its payloads stay spooled).",
    )
    .sample(
        "wattson_daemon_messenger_failures_total",
        &[],
        h.messenger_failures as f64,
    );
    {
        let mut f = w.family(
            "wattson_daemon_last_ship_timestamp_seconds",
            Kind::Gauge,
            "When records were last shipped, seconds since the epoch.",
        );
        if let Some(ms) = h.last_ship_ms {
            f.sample(
                "wattson_daemon_last_ship_timestamp_seconds",
                &[],
                ms as f64 / 1000.0,
            );
        }
    }
    w.family(
        "wattson_daemon_spool_payloads",
        Kind::Gauge,
        "Payloads waiting in the spool for a messenger.",
    )
    .sample("wattson_daemon_spool_payloads", &[], spool_payloads as f64);

    if s.compat_series {
        compat(&mut w, &s.vms);
    }
    if format == Format::OpenMetrics {
        w.out.push_str("# EOF\n");
    }
    w.out
}

/// The libvirt/nova exporter's series (seed 002), unchanged.
fn compat(w: &mut Writer, vms: &[VmNow]) {
    fn nova(v: &VmNow) -> [(&'static str, &str); 3] {
        [
            ("libvirtname", &v.libvirt_name),
            ("novaname", v.who.name.as_deref().unwrap_or_default()),
            (
                "novaproject",
                v.who.project_name.as_deref().unwrap_or_default(),
            ),
        ]
    }
    type Value = fn(&VmNow) -> Option<f64>;
    let series: [(&str, Kind, &str, Value); 5] = [
        (
            "libvirt_nova_instance_cpu_time_total",
            Kind::Counter,
            "instance vcpu time",
            |v| v.cpu_s.map(|s| (s * 1e9).round()),
        ),
        (
            "libvirt_nova_instance_memory_alloc_kb",
            Kind::Gauge,
            "instance memory allocated",
            |v| Some(v.memory_mb as f64 * 1024.0),
        ),
        (
            "libvirt_nova_instance_memory_cache_used_kb",
            Kind::Gauge,
            "instance memory used including buffers/cache",
            |v| v.memory_use.map(|m| m.with_cache_kb as f64),
        ),
        (
            "libvirt_nova_instance_memory_used_kb",
            Kind::Gauge,
            "instance memory used without buffers/cache",
            |v| v.memory_use.map(|m| m.without_cache_kb as f64),
        ),
        (
            "libvirt_nova_instance_vcpu_count",
            Kind::Gauge,
            "instance vcpu allocated",
            |v| Some(v.vcpus as f64),
        ),
    ];
    for (name, kind, help, value) in series {
        let mut f = w.family(name, kind, help);
        for v in vms {
            if let Some(x) = value(v) {
                f.sample(name, &nova(v), x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tick::VmNow;
    use super::*;
    use crate::sources::owner::Owner;

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let snapshot = Snapshot {
            host: "cmp-01".into(),
            vms: vec![VmNow {
                uuid: "u1".into(),
                libvirt_name: "instance-0001".into(),
                who: Owner {
                    name: Some("web \"a\"".into()),
                    ..Owner::default()
                },
                joules_total: 12.5,
                gpu_joules_total: Some(4.5),
                carbon_grams_total: Some(0.75),
                embodied_grams_total: Some(0.25),
                watts: Some(3.0),
                cpu_s: Some(2.5),
                vcpus: 2,
                memory_mb: 512,
                memory_use: Some(crate::sources::libvirt::MemoryUse {
                    with_cache_kb: 300,
                    without_cache_kb: 200,
                }),
            }],
            gpus: [("00000000:3B:00.0".to_owned(), 900.0)].into(),
            gpu_holders: vec![super::super::tick::GpuHolder {
                uuid: "u1".into(),
                bus_id: "00000000:3B:00.0".into(),
                gpu_uuid: None,
                mode: crate::sources::gpu::Mode::Vgpu,
                share: 0.25,
                profile: Some("GRID A100-10C".into()),
            }],
            compat_series: true,
            ..Snapshot::default()
        };
        let text = render(&snapshot, Format::Text, 0);
        assert!(text.contains(
            "# TYPE wattson_vm_gpu_info gauge\nwattson_vm_gpu_info{uuid=\"u1\",host=\"cmp-01\",pci_bus_id=\"00000000:3B:00.0\",gpu_uuid=\"\",mode=\"vgpu\",share=\"0.25\",profile=\"GRID A100-10C\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "wattson_host_gpu_energy_joules_total{host=\"cmp-01\",pci_bus_id=\"00000000:3B:00.0\"} 900\n"
        ));
        assert!(text.contains(
            "wattson_vm_gpu_energy_joules_total{uuid=\"u1\",name=\"web \\\"a\\\"\",project=\"\",host=\"cmp-01\"} 4.5\n"
        ));
        assert!(text.contains("# TYPE wattson_vm_energy_joules_total counter\n"));
        assert!(text.contains(
            "wattson_vm_energy_joules_total{uuid=\"u1\",name=\"web \\\"a\\\"\",project=\"\",host=\"cmp-01\"} 12.5\n"
        ));
        assert!(text.contains(
            "wattson_vm_carbon_grams_total{uuid=\"u1\",name=\"web \\\"a\\\"\",project=\"\",host=\"cmp-01\"} 0.75\n"
        ));
        assert!(text.contains(
            "wattson_vm_embodied_grams_total{uuid=\"u1\",name=\"web \\\"a\\\"\",project=\"\",host=\"cmp-01\"} 0.25\n"
        ));
        assert!(text.contains("libvirt_nova_instance_cpu_time_total{libvirtname=\"instance-0001\",novaname=\"web \\\"a\\\"\",novaproject=\"\"} 2500000000\n"));
        assert!(text.contains("libvirt_nova_instance_memory_alloc_kb{libvirtname=\"instance-0001\",novaname=\"web \\\"a\\\"\",novaproject=\"\"} 524288\n"));
        assert!(text.contains("libvirt_nova_instance_memory_used_kb{libvirtname=\"instance-0001\",novaname=\"web \\\"a\\\"\",novaproject=\"\"} 200\n"));
        assert!(!text.contains("# EOF"));
        let om = render(&snapshot, Format::OpenMetrics, 0);
        assert!(om.contains("# TYPE wattson_vm_energy_joules counter\n"));
        assert!(om.contains("# TYPE wattson_vm_gpu info\nwattson_vm_gpu_info{"));
        assert!(om.ends_with("# EOF\n"));
    }
}
