//! A report as an aligned table, seed 004's JSON, CSV, or an HTML page
//! ([`super::html`]).

use std::io::Write;

use serde_json::{Value, json};

use super::{By, Group, Report, Totals, VmUsage};

/// How a report is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal (fits 120 columns).
    Table,
    /// seed 004's (nova simple tenant usage) keys, plus energy and carbon.
    Json,
    /// One row per group, with a header; by VM, each row also says the
    /// VM's project, flavor and host, as the table does.
    Csv,
    /// One self-contained page (it loads nothing): the totals, bar charts
    /// of energy and carbon per group, energy per UTC day stacked by group,
    /// each VM's line.
    Html,
}

/// Writes `report` as `format`.
pub fn write(report: &Report, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Table => table(report, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &to_json(report))?;
            out.write_all(b"\n")
        }
        Format::Csv => csv(report, out),
        Format::Html => super::html::write(report, out),
    }
}

/// seed 004's time format (nova's): `2021-10-05T00:00:00.000000`, UTC.
fn nova_time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

fn vm_json(vm: &VmUsage) -> Value {
    json!({
        "hours": vm.hours,
        "flavor": vm.flavor,
        "instance_id": vm.instance_id,
        "name": vm.name,
        "tenant_id": vm.tenant_id,
        "project_name": vm.project_name,
        "host": vm.host,
        "memory_mb": vm.memory_mb,
        // Unknown (no disk_metric series) is null, never 0.
        "local_gb": vm.local_gb,
        "vcpus": vm.vcpus,
        "started_at": nova_time(vm.started_ms),
        "ended_at": vm.ended_ms.map(nova_time),
        "state": vm.state,
        "energy_kwh": vm.kwh(),
        "carbon_g": vm.carbon_g,
        // Unknown where any of its records lacks it: null, never 0.
        "embodied_g": vm.embodied_g(),
        "total_g": vm.total_g(),
        "quality": if vm.estimated { "estimated" } else { "measured" },
    })
}

fn totals_json(report: &Report, totals: &Totals) -> serde_json::Map<String, Value> {
    let value = json!({
        "total_local_gb_usage": totals.local_gb_hours,
        "total_vcpus_usage": totals.vcpu_hours,
        "total_memory_mb_usage": totals.memory_mb_hours,
        "total_hours": totals.hours,
        "total_energy_kwh": totals.kwh(),
        "energy_share": report.share(totals),
        "total_carbon_g": totals.carbon_g,
        "total_embodied_g": totals.embodied_g(),
        "total_g": totals.total_g(),
        "start": nova_time(report.period.start_ms),
        "stop": nova_time(report.period.end_ms),
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The JSON keys of a group's key and label.
fn key_names(by: By) -> (&'static str, Option<&'static str>) {
    match by {
        By::Project => ("tenant_id", Some("project_name")),
        By::Vm => ("instance_id", Some("name")),
        By::Host => ("host", None),
        By::Flavor => ("flavor", None),
    }
}

fn to_json(report: &Report) -> Value {
    let (key, label) = key_names(report.by);
    let groups: Vec<Value> = report
        .groups
        .iter()
        .map(|g| {
            let mut object = serde_json::Map::new();
            object.insert(key.into(), json!(g.key));
            if let Some(label) = label {
                object.insert(label.into(), json!(g.label));
            }
            object.insert(
                "server_usages".into(),
                Value::Array(g.vms.iter().map(vm_json).collect()),
            );
            object.extend(totals_json(report, &g.totals));
            Value::Object(object)
        })
        .collect();
    let mut object = serde_json::Map::new();
    object.insert("by".into(), json!(report.by.as_str()));
    let list = if report.by == By::Project {
        "tenant_usages"
    } else {
        "usages"
    };
    object.insert(list.into(), Value::Array(groups));
    object.extend(totals_json(report, &report.totals));
    object.insert(
        "host_energy_kwh".into(),
        json!(report.host_joules.map(|j| j / 3.6e6)),
    );
    Value::Object(object)
}

/// The CSV columns that say who a VM is, after its uuid and name (`--by vm`
/// only: a group of other reports holds many VMs).
const VM_COLUMNS: [&str; 4] = ["tenant_id", "project_name", "flavor", "host"];

/// A VM's [`VM_COLUMNS`] cells (empty where unknown).
fn vm_cells(vm: &VmUsage) -> [String; 4] {
    [&vm.tenant_id, &vm.project_name, &vm.flavor, &vm.host].map(|v| v.clone().unwrap_or_default())
}

fn csv(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    let (key, label) = key_names(report.by);
    let by_vm = report.by == By::Vm;
    let mut header = vec![key];
    header.extend(label);
    if by_vm {
        header.extend(VM_COLUMNS);
    }
    header.extend([
        "vms",
        "vcpu_hours",
        "memory_mb_hours",
        "local_gb_hours",
        "hours",
        "energy_kwh",
        "energy_share",
        "carbon_g",
        "embodied_g",
        "total_g",
    ]);
    w.write_record(&header)?;
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for g in &report.groups {
        let t = &g.totals;
        let mut row = vec![g.key.clone()];
        if label.is_some() {
            row.push(g.label.clone().unwrap_or_default());
        }
        if by_vm {
            // By VM, a group is one VM (its uuid is the key).
            row.extend(g.vms.first().map(vm_cells).unwrap_or_default());
        }
        row.extend([
            t.vms.to_string(),
            t.vcpu_hours.to_string(),
            t.memory_mb_hours.to_string(),
            number(t.local_gb_hours),
            t.hours.to_string(),
            t.kwh().to_string(),
            number(report.share(t)),
            number(t.carbon_g),
            number(t.embodied_g()),
            number(t.total_g()),
        ]);
        w.write_record(&row)?;
    }
    w.flush()
}

/// `text` cut to `width` characters (an ellipsis marks the cut).
pub(super) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A number with `decimals`, or `-` where unknown.
fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

pub(super) fn group_name(by: By, g: &Group) -> String {
    let unknown = match by {
        By::Project => "(no project)",
        By::Vm => "(no uuid)",
        By::Host => "(no host)",
        By::Flavor => "(no flavor)",
    };
    match (&g.label, g.key.as_str()) {
        (Some(label), _) => label.clone(),
        (None, "") => unknown.to_owned(),
        (None, key) => key.to_owned(),
    }
}

/// A group per line: who, usage, energy, and its operational (gCO2e),
/// embodied and total grams, within 120 columns.
fn table(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    const NAME: usize = 24;
    let first = match report.by {
        By::Project => "PROJECT",
        By::Vm => "VM",
        By::Host => "HOST",
        By::Flavor => "FLAVOR",
    };
    writeln!(
        out,
        "{} .. {}, by {}",
        super::time(report.period.start_ms),
        super::time(report.period.end_ms),
        report.by.as_str()
    )?;
    let row = |out: &mut dyn Write, name: &str, t: &Totals| {
        writeln!(
            out,
            "{:<NAME$} {:>5} {:>9.1} {:>9.1} {:>9} {:>8.1} {:>10.3} {:>6} {:>9} {:>9} {:>9}",
            fit(name, NAME),
            t.vms,
            t.vcpu_hours,
            t.memory_mb_hours / 1024.0,
            cell(t.local_gb_hours, 1),
            t.hours,
            t.kwh(),
            report
                .share(t)
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            cell(t.carbon_g, 1),
            cell(t.embodied_g(), 1),
            cell(t.total_g(), 1),
        )
    };
    if report.by == By::Vm {
        return vm_table(report, out);
    }
    writeln!(
        out,
        "{first:<NAME$} {:>5} {:>9} {:>9} {:>9} {:>8} {:>10} {:>6} {:>9} {:>9} {:>9}",
        "VMS",
        "vCPU-h",
        "MEM GB-h",
        "DISK GB-h",
        "HOURS",
        "kWh",
        "SHARE",
        "gCO2e",
        "EMBODIED",
        "TOTAL"
    )?;
    for g in &report.groups {
        row(out, &group_name(report.by, g), &g.totals)?;
    }
    row(out, "TOTAL", &report.totals)?;
    host_line(report, out)
}

fn host_line(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    if let Some(h) = report.host_joules {
        writeln!(
            out,
            "hosts' metered energy: {:.3} kWh, {} of it attributed to VMs (SHARE)",
            h / 3.6e6,
            report
                .share(&report.totals)
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0))
        )?;
    }
    Ok(())
}

/// One line per VM: who it is, its size, how long it lived, its energy.
fn vm_table(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<8} {:<16} {:<10} {:>5} {:>6} {:>7} {:>7} {:>10} {:>9} {:<7}",
        "VM",
        "UUID",
        "PROJECT",
        "FLAVOR",
        "vCPUs",
        "MEM GB",
        "DISK GB",
        "HOURS",
        "kWh",
        "gCO2e",
        "STATE"
    )?;
    for vm in report.groups.iter().flat_map(|g| &g.vms) {
        let project = vm.project_name.as_ref().or(vm.tenant_id.as_ref());
        writeln!(
            out,
            "{:<20} {:<8} {:<16} {:<10} {:>5} {:>6} {:>7} {:>7.1} {:>10.3} {:>9} {:<7}",
            fit(vm.name.as_deref().unwrap_or("-"), 20),
            fit(&vm.instance_id, 8),
            fit(project.map_or("-", String::as_str), 16),
            fit(vm.flavor.as_deref().unwrap_or("-"), 10),
            vm.vcpus.map_or_else(|| "-".to_owned(), |v| v.to_string()),
            cell(vm.memory_mb.map(|m| m as f64 / 1024.0), 1),
            cell(vm.local_gb, 1),
            vm.hours,
            vm.kwh(),
            cell(vm.carbon_g, 1),
            vm.state,
        )?;
    }
    let t = &report.totals;
    writeln!(
        out,
        "{:<20} {:<8} {:<16} {:<10} {:>5} {:>6} {:>7} {:>7.1} {:>10.3} {:>9}",
        "TOTAL",
        "",
        "",
        "",
        t.vms,
        "",
        "",
        t.hours,
        t.kwh(),
        cell(t.carbon_g, 1)
    )?;
    host_line(report, out)
}
