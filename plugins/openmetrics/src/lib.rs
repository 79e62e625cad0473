//! `openmetrics`: OpenMetrics text, one `wattson_vm_energy_joules` sample
//! per energy record.
//!
//! The metric is a **gauge**, not a counter: each sample is the energy the
//! VM used in one accounting window (a per-window amount that goes up and
//! down from one window to the next), not a monotonically increasing total,
//! so `rate()` / `increase()` over it would be meaningless; `sum_over_time`
//! adds windows up. (The daemon's live cumulative series is the counter
//! `wattson_vm_energy_joules_total`.)
//!
//! Shape of a payload (all records in one payload; no records, no payload):
//!
//! ```text
//! # TYPE wattson_vm_energy_joules gauge
//! # UNIT wattson_vm_energy_joules joules
//! # HELP wattson_vm_energy_joules Energy attributed to the VM over the accounting window ending at the sample's timestamp.
//! wattson_vm_energy_joules{uuid="0b0c6a4c-4f5e-4d8e-9d38-1c2f3a4b5c6d",site="TEST-Site",model="libvirt-joules"} 1e-5 1748739600
//! wattson_vm_energy_joules{uuid="e3c5aeef-37b8-4332-ad9f-9d068f156dc2",name="vm-a",project="Acme \"R&D\"\nx\\y",host="compute-1",site="TEST-Site",model="libvirt-joules"} 360000.0 1748739600
//! # EOF
//! ```
//!
//! * Labels, in this order: `uuid` (VM uuid), `name` (VM name), `project`
//!   (project name, else project id), `host`, `site`, `model`; an absent
//!   optional one is omitted. Values are escaped per OpenMetrics: `\` → `\\`,
//!   `"` → `\"`, LF → `\n`.
//! * Value: joules, Rust's shortest round-trip form (`{:?}`: `360000.0`,
//!   `1e-5`), which is OpenMetrics' `realnumber` syntax. A non-finite value
//!   is an error.
//! * Timestamp: the window end in whole Unix **seconds** (OpenMetrics'
//!   unit), rounded down. OpenMetrics allows fractional seconds, but
//!   `promtool check metrics` (2.42) parses with the Prometheus 0.0.4 text
//!   parser, which rejects a non-integer timestamp; windows are
//!   step-aligned, so nothing is lost in practice.
//! * Parameter `timestamps` (default `true`): `false` writes no timestamp,
//!   for node_exporter's textfile collector (it skips a whole file with
//!   one; `[outputs.messenger] name = "….prom"`): each sample is then the
//!   energy over the window just rendered, and a render holding two windows
//!   of one VM is an error (one series, two values).
//! * Samples are sorted by label set, then timestamp, so samples of one
//!   series (the same VM in several windows of one render) are adjacent with
//!   increasing timestamps, as OpenMetrics requires; two samples with the
//!   same labels and timestamp are an error (a series cannot have two values
//!   at one instant).
//! * Records with a footprint (`cfp_g`, where the policy's `[carbon]` has an
//!   intensity) add a second family after the first, the gauge
//!   `wattson_vm_carbon_grams` (`# UNIT … grams`), with the same labels and
//!   timestamps: the window's gCO2e.
//! * `# EOF` ends the payload, followed by `\n`.

use wattson_plugin::openmetrics::escape_label_value as escape;
use wattson_plugin::{EnergyRecord, Format, FormatInfo, ParamSpec, Params, unix_seconds};

/// The metric family's name.
const METRIC: &str = "wattson_vm_energy_joules";

/// The footprint family's name (records with a `cfp_g` only).
const CARBON: &str = "wattson_vm_carbon_grams";

/// `{uuid="…",…}` of a record.
fn labels(r: &EnergyRecord) -> String {
    let project = r.project_name.as_deref().or(r.project_id.as_deref());
    let pairs = [
        ("uuid", Some(r.vm_uuid.as_str())),
        ("name", r.vm_name.as_deref()),
        ("project", project),
        ("host", r.host.as_deref()),
        ("site", Some(r.site.as_str())),
        ("model", Some(r.model.as_str())),
    ];
    let inner: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}=\"{}\"", escape(v))))
        .collect();
    format!("{{{}}}", inner.join(","))
}

struct OpenMetrics;

impl Format for OpenMetrics {
    fn describe() -> FormatInfo {
        FormatInfo::new(
            "openmetrics",
            env!("CARGO_PKG_VERSION"),
            "OpenMetrics text: one wattson_vm_energy_joules gauge sample per record (energy over \
             the window), labels uuid, name, project, host, site, model, timestamp = window end \
             in seconds, # EOF",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "om",
        )
        .param(ParamSpec::flag(
            "timestamps",
            "Stamp every sample with the window's end (whole Unix seconds); off for \
             node_exporter's textfile collector, which skips a file with timestamps (one window \
             per payload then)",
            Some(true),
        ))
    }

    fn render(records: Vec<EnergyRecord>, params: Params) -> Result<Vec<Vec<u8>>, String> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let timestamps = params.flag("timestamps")?;
        let mut samples = Vec::with_capacity(records.len());
        let mut carbon = Vec::new();
        for r in &records {
            if !r.joules.is_finite() {
                return Err(format!(
                    "record {}: joules is not finite ({})",
                    r.id, r.joules
                ));
            }
            samples.push((labels(r), unix_seconds(r.end_ms), r.joules));
            if let Some(grams) = r.cfp_g.filter(|g| g.is_finite()) {
                carbon.push((labels(r), unix_seconds(r.end_ms), grams));
            }
        }
        samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        carbon.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        if let Some(w) = samples
            .windows(2)
            .find(|w| w[0].0 == w[1].0 && (w[0].1 == w[1].1 || !timestamps))
        {
            return Err(if timestamps {
                format!(
                    "two records for the series {METRIC}{} at timestamp {}",
                    w[0].0, w[0].1
                )
            } else {
                format!(
                    "two records for the series {METRIC}{} (windows ending at {} and {}), and \
                     timestamps = false leaves one value per series: render one window at a time",
                    w[0].0, w[0].1, w[1].1
                )
            });
        }
        let stamp = |ts: i64| {
            if timestamps {
                format!(" {ts}")
            } else {
                String::new()
            }
        };
        let ending = if timestamps {
            "ending at the sample's timestamp"
        } else {
            "just rendered"
        };
        let mut out = String::with_capacity(256 + samples.len() * 256);
        out.push_str(&format!("# TYPE {METRIC} gauge\n"));
        out.push_str(&format!("# UNIT {METRIC} joules\n"));
        out.push_str(&format!(
            "# HELP {METRIC} Energy attributed to the VM over the accounting window {ending}.\n"
        ));
        for (labels, ts, joules) in &samples {
            out.push_str(&format!("{METRIC}{labels} {joules:?}{}\n", stamp(*ts)));
        }
        if !carbon.is_empty() {
            out.push_str(&format!("# TYPE {CARBON} gauge\n"));
            out.push_str(&format!("# UNIT {CARBON} grams\n"));
            out.push_str(&format!(
                "# HELP {CARBON} Carbon footprint (gCO2e: kWh x PUE x grid intensity) of the \
                 VM's energy over the accounting window {ending}.\n"
            ));
            for (labels, ts, grams) in &carbon {
                out.push_str(&format!("{CARBON}{labels} {grams:?}{}\n", stamp(*ts)));
            }
        }
        out.push_str("# EOF\n");
        Ok(vec![out.into_bytes()])
    }
}

wattson_plugin::register_format!(OpenMetrics);
