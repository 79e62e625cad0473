//! `tenant-metrics`: per-project sustainability gauges in Prometheus text
//! (OpenMetrics-compatible), one payload per accounting window, with the
//! Sovereign Cloud Stack's tenant metric names (SCS-0414, draft) where it
//! defines them and `wattson_tenant_*` otherwise.
//!
//! Shape of a payload:
//!
//! ```text
//! # TYPE sustainability_tenant_energy_kwh gauge
//! # HELP sustainability_tenant_energy_kwh IT energy of the project's VMs in the window, kWh (CPU and GPU).
//! sustainability_tenant_energy_kwh{project_id="3f2a…",project_name="astro"} 12.5
//! # TYPE sustainability_tenant_operational_gwp_kg gauge
//! # HELP sustainability_tenant_operational_gwp_kg …
//! sustainability_tenant_operational_gwp_kg{project_id="3f2a…",project_name="astro"} 4.875
//! …
//! # TYPE wattson_tenant_window_start_seconds gauge
//! # HELP wattson_tenant_window_start_seconds …
//! wattson_tenant_window_start_seconds 1748736000
//! # TYPE wattson_tenant_window_end_seconds gauge
//! # HELP wattson_tenant_window_end_seconds …
//! wattson_tenant_window_end_seconds 1748739600
//! # EOF
//! ```
//!
//! Families, in this order, each a gauge with a `# TYPE` and a `# HELP`
//! line (`promtool check metrics` lints a family without HELP):
//!
//! | family | value per project and window |
//! |---|---|
//! | `sustainability_tenant_energy_kwh` | Σ `joules` / 3.6e6 |
//! | `sustainability_tenant_operational_gwp_kg` | Σ `cfp-g` / 1000 |
//! | `sustainability_tenant_embodied_gwp_kg` | Σ `embodied-g` / 1000 |
//! | `sustainability_tenant_total_gwp_kg` | operational + embodied (the two values above) |
//! | `wattson_tenant_gpu_energy_kwh` | Σ `gpu-j` / 3.6e6 |
//! | `wattson_tenant_window_start_seconds`, `_end_seconds` | the window, Unix seconds, no labels |
//!
//! * **Projects.** Records are grouped by `project-id`; the labels are
//!   exactly SCS's `project_id` and `project_name` (the name of the first
//!   record of the project that has one, else the empty string, which
//!   Prometheus reads as no label). Values are escaped per OpenMetrics: `\`
//!   → `\\`, `"` → `\"`, LF → `\n`. Samples are sorted by project id.
//!   Records without a project id (absent or empty) are left out, with one
//!   log line per render counting them.
//! * **Unknown is never 0.** A project's value is written only when every
//!   one of its records in the window has that input, finite: one record
//!   without `cfp-g` and the project has no `operational` and no `total`
//!   sample. A family no project has a value for is left out whole (records
//!   without `gpu-j` or `embodied-g`, a model that attributes no GPUs or no
//!   `[embodied]`: no GPU, embodied or total families). `joules` is always
//!   there; a non-finite one is an error.
//! * **Timestamps.** None by default: node_exporter's textfile collector
//!   skips a whole file with one, and Pushgateway refuses pushes with them;
//!   the window is in the two `window_*` gauges. The parameter
//!   `timestamps = true` stamps every sample with the window's end in whole
//!   Unix seconds (rounded down), for `promtool tsdb create-blocks-from
//!   openmetrics` (which needs them).
//! * **Windows.** Records are grouped by window (`start-ms`, `end-ms`): one
//!   payload per window, in order of start then end. No records, no payload.
//! * Values are Rust's shortest round-trip form (`{:?}`: `12.5`, `1e-5`),
//!   valid in both the Prometheus text format and OpenMetrics. `# EOF` ends
//!   every payload (a comment to the Prometheus text parser).

use std::collections::BTreeMap;

use wattson_plugin::openmetrics::escape_label_value as escape;
use wattson_plugin::{EnergyRecord, Format, FormatInfo, ParamSpec, Params, unix_seconds};

/// Joules per kWh.
const JOULES_PER_KWH: f64 = 3.6e6;
/// Grams per kg.
const GRAMS_PER_KG: f64 = 1000.0;

/// SCS-0414's tenant energy family.
const ENERGY: &str = "sustainability_tenant_energy_kwh";
/// SCS-0414's tenant operational GWP family.
const OPERATIONAL: &str = "sustainability_tenant_operational_gwp_kg";
/// SCS-0414's tenant embodied GWP family.
const EMBODIED: &str = "sustainability_tenant_embodied_gwp_kg";
/// SCS-0414's tenant total GWP family.
const TOTAL: &str = "sustainability_tenant_total_gwp_kg";
/// The GPU part of the energy (SCS defines no GPU metric).
const GPU: &str = "wattson_tenant_gpu_energy_kwh";
/// The window's start.
const WINDOW_START: &str = "wattson_tenant_window_start_seconds";
/// The window's end.
const WINDOW_END: &str = "wattson_tenant_window_end_seconds";

/// A sum that stays known only while every term is known and finite.
#[derive(Clone, Copy, Debug)]
struct KnownSum(Option<f64>);

impl KnownSum {
    /// The empty sum (known, 0).
    fn new() -> Self {
        Self(Some(0.0))
    }

    /// Adds a term; an absent or non-finite one makes the sum unknown.
    fn add(&mut self, term: Option<f64>) {
        self.0 = match (self.0, term) {
            (Some(sum), Some(x)) if x.is_finite() => Some(sum + x),
            _ => None,
        };
    }
}

/// One project's sums over one window.
#[derive(Debug)]
struct Tenant {
    /// `project_name` of the first record that has one.
    name: Option<String>,
    /// Σ joules (always known).
    joules: f64,
    /// Σ cfp-g.
    cfp_g: KnownSum,
    /// Σ embodied-g.
    embodied_g: KnownSum,
    /// Σ gpu-j.
    gpu_j: KnownSum,
}

impl Tenant {
    /// A project with no records yet: every sum known and 0.
    fn new() -> Self {
        Self {
            name: None,
            joules: 0.0,
            cfp_g: KnownSum::new(),
            embodied_g: KnownSum::new(),
            gpu_j: KnownSum::new(),
        }
    }
}

/// One family's samples.
struct Family {
    /// The metric family's name.
    name: &'static str,
    /// Its `# HELP` text.
    help: &'static str,
    /// (label set, value) per project that has a value.
    samples: Vec<(String, f64)>,
}

/// Renders one window's payload. `stamp` is the timestamp suffix of every
/// sample (`" 1748739600"`, or empty).
fn payload(start_ms: i64, end_ms: i64, tenants: &BTreeMap<&str, Tenant>, stamp: &str) -> Vec<u8> {
    let mut families = [
        Family {
            name: ENERGY,
            help: "IT energy of the project's VMs in the window, kWh (CPU and GPU).",
            samples: Vec::new(),
        },
        Family {
            name: OPERATIONAL,
            help: "Operational emissions in the window, kg CO2e (energy x PUE x grid intensity).",
            samples: Vec::new(),
        },
        Family {
            name: EMBODIED,
            help: "Embodied emissions amortized to the window, kg CO2e.",
            samples: Vec::new(),
        },
        Family {
            name: TOTAL,
            help: "Operational plus embodied emissions in the window, kg CO2e.",
            samples: Vec::new(),
        },
        Family {
            name: GPU,
            help: "GPU part of sustainability_tenant_energy_kwh in the window, kWh.",
            samples: Vec::new(),
        },
    ];
    for (id, t) in tenants {
        let labels = format!(
            "{{project_id=\"{}\",project_name=\"{}\"}}",
            escape(id),
            escape(t.name.as_deref().unwrap_or(""))
        );
        let operational = t.cfp_g.0.map(|g| g / GRAMS_PER_KG);
        let embodied = t.embodied_g.0.map(|g| g / GRAMS_PER_KG);
        let values = [
            Some(t.joules / JOULES_PER_KWH),
            operational,
            embodied,
            operational.zip(embodied).map(|(o, e)| o + e),
            t.gpu_j.0.map(|j| j / JOULES_PER_KWH),
        ];
        for (family, value) in families.iter_mut().zip(values) {
            if let Some(value) = value {
                family.samples.push((labels.clone(), value));
            }
        }
    }
    let mut out = String::with_capacity(1024 + tenants.len() * 600);
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        header(&mut out, family.name, family.help);
        for (labels, value) in &family.samples {
            out.push_str(&format!("{}{labels} {value:?}{stamp}\n", family.name));
        }
    }
    header(
        &mut out,
        WINDOW_START,
        "Start of the accounting window these values cover, Unix seconds.",
    );
    out.push_str(&format!(
        "{WINDOW_START} {}{stamp}\n",
        unix_seconds(start_ms)
    ));
    header(
        &mut out,
        WINDOW_END,
        "End of the accounting window these values cover, Unix seconds.",
    );
    out.push_str(&format!("{WINDOW_END} {}{stamp}\n", unix_seconds(end_ms)));
    out.push_str("# EOF\n");
    out.into_bytes()
}

/// A gauge family's `# TYPE` and `# HELP` lines.
fn header(out: &mut String, name: &str, help: &str) {
    out.push_str(&format!("# TYPE {name} gauge\n# HELP {name} {help}\n"));
}

/// The format.
struct TenantMetrics;

impl Format for TenantMetrics {
    fn describe() -> FormatInfo {
        FormatInfo::new(
            "tenant-metrics",
            env!("CARGO_PKG_VERSION"),
            "Per-project sustainability gauges, one Prometheus text payload per window ending \
             # EOF: SCS-0414's sustainability_tenant_energy_kwh, _operational_gwp_kg, \
             _embodied_gwp_kg, _total_gwp_kg {project_id, project_name}, \
             wattson_tenant_gpu_energy_kwh and wattson_tenant_window_start/end_seconds; a value \
             only where every record of the project has its input",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "prom",
        )
        .param(ParamSpec::flag(
            "timestamps",
            "Stamp every sample with the window's end (whole Unix seconds), for `promtool tsdb \
             create-blocks-from openmetrics`; off for node_exporter's textfile collector and \
             Pushgateway, which refuse timestamps",
            Some(false),
        ))
    }

    fn render(records: Vec<EnergyRecord>, params: Params) -> Result<Vec<Vec<u8>>, String> {
        let timestamps = params.flag("timestamps")?;
        let mut windows: BTreeMap<(i64, i64), BTreeMap<&str, Tenant>> = BTreeMap::new();
        let mut without_project = 0usize;
        for r in &records {
            if !r.joules.is_finite() {
                return Err(format!(
                    "record {}: joules is not finite ({})",
                    r.id, r.joules
                ));
            }
            let tenants = windows.entry((r.start_ms, r.end_ms)).or_default();
            let Some(id) = r.project_id.as_deref().filter(|id| !id.is_empty()) else {
                without_project += 1;
                continue;
            };
            let t = tenants.entry(id).or_insert_with(Tenant::new);
            if t.name.is_none() {
                t.name.clone_from(&r.project_name);
            }
            t.joules += r.joules;
            t.cfp_g.add(r.cfp_g);
            t.embodied_g.add(r.embodied_g);
            t.gpu_j.add(r.gpu_j);
        }
        if without_project > 0 {
            wattson_plugin::info!(
                "{without_project} of {} record(s) have no project id: left out of the tenant \
                 series",
                records.len()
            );
        }
        Ok(windows
            .iter()
            .map(|(&(start_ms, end_ms), tenants)| {
                let stamp = if timestamps {
                    format!(" {}", unix_seconds(end_ms))
                } else {
                    String::new()
                };
                payload(start_ms, end_ms, tenants, &stamp)
            })
            .collect())
    }
}

wattson_plugin::register_format!(TenantMetrics);
