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
        // Unknown where any of its records lacks it: null, never 0.
        "gpu_kwh": vm.known.gpu_kwh(),
        "carbon_g": vm.carbon_g,
        "embodied_g": vm.known.embodied_g(),
        "total_g": vm.known.total_g(),
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
        "total_gpu_kwh": totals.known.gpu_kwh(),
        "energy_share": report.share(totals),
        "total_carbon_g": totals.carbon_g,
        "total_embodied_g": totals.known.embodied_g(),
        "total_g": totals.known.total_g(),
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
        "gpu_kwh",
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
            number(t.known.gpu_kwh()),
            number(report.share(t)),
            number(t.carbon_g),
            number(t.known.embodied_g()),
            number(t.known.total_g()),
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

/// A group per line: who, usage, energy (of it the GPUs'), and its
/// operational (gCO2e), embodied and total grams, within 120 columns.
fn table(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    const NAME: usize = 20;
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
            "{:<NAME$} {:>5} {:>8.1} {:>8.1} {:>9} {:>8.1} {:>10.3} {:>8} {:>6} {:>9} {:>9} {:>9}",
            fit(name, NAME),
            t.vms,
            t.vcpu_hours,
            t.memory_mb_hours / 1024.0,
            cell(t.local_gb_hours, 1),
            t.hours,
            t.kwh(),
            cell(t.known.gpu_kwh(), 3),
            report
                .share(t)
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            cell(t.carbon_g, 1),
            cell(t.known.embodied_g(), 1),
            cell(t.known.total_g(), 1),
        )
    };
    if report.by == By::Vm {
        return vm_table(report, out);
    }
    writeln!(
        out,
        "{first:<NAME$} {:>5} {:>8} {:>8} {:>9} {:>8} {:>10} {:>8} {:>6} {:>9} {:>9} {:>9}",
        "VMS",
        "vCPU-h",
        "MEM GB-h",
        "DISK GB-h",
        "HOURS",
        "kWh",
        "GPU kWh",
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

/// One line per VM: who it is, its size, how long it lived, its energy
/// (of it the GPUs'), its operational, embodied and total grams, within
/// 120 columns.
fn vm_table(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<13} {:<8} {:<10} {:<8} {:>4} {:>6} {:>5} {:>6} {:>9} {:>7} {:>8} {:>8} {:>8} {:<7}",
        "VM",
        "UUID",
        "PROJECT",
        "FLAVOR",
        "vCPU",
        "MEM GB",
        "DISK",
        "HOURS",
        "kWh",
        "GPU kWh",
        "gCO2e",
        "EMBODIED",
        "TOTAL",
        "STATE"
    )?;
    for vm in report.groups.iter().flat_map(|g| &g.vms) {
        let project = vm.project_name.as_ref().or(vm.tenant_id.as_ref());
        writeln!(
            out,
            "{:<13} {:<8} {:<10} {:<8} {:>4} {:>6} {:>5} {:>6.1} {:>9.3} {:>7} {:>8} {:>8} {:>8} {:<7}",
            fit(vm.name.as_deref().unwrap_or("-"), 13),
            fit(&vm.instance_id, 8),
            fit(project.map_or("-", String::as_str), 10),
            fit(vm.flavor.as_deref().unwrap_or("-"), 8),
            vm.vcpus.map_or_else(|| "-".to_owned(), |v| v.to_string()),
            cell(vm.memory_mb.map(|m| m as f64 / 1024.0), 1),
            cell(vm.local_gb, 0),
            vm.hours,
            vm.kwh(),
            cell(vm.known.gpu_kwh(), 3),
            cell(vm.carbon_g, 1),
            cell(vm.known.embodied_g(), 1),
            cell(vm.known.total_g(), 1),
            vm.state,
        )?;
    }
    let t = &report.totals;
    writeln!(
        out,
        "{:<13} {:<8} {:<10} {:<8} {:>4} {:>6} {:>5} {:>6.1} {:>9.3} {:>7} {:>8} {:>8} {:>8}",
        "TOTAL",
        "",
        "",
        "",
        t.vms,
        "",
        "",
        t.hours,
        t.kwh(),
        cell(t.known.gpu_kwh(), 3),
        cell(t.carbon_g, 1),
        cell(t.known.embodied_g(), 1),
        cell(t.known.total_g(), 1),
    )?;
    host_line(report, out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::records::EnergyRecord;
    use crate::report::Aggregator;
    use crate::report::tests::record;
    use crate::runtime::Status;
    use crate::window::Window;

    const H: i64 = 3_600_000;

    /// A record with its GPU joules, embodied grams and footprint as given.
    fn part(
        uuid: &str,
        project: &str,
        start_ms: i64,
        gpu_j: Option<f64>,
        embodied_g: Option<f64>,
        cfp: bool,
    ) -> EnergyRecord {
        let mut r = record(uuid, project, start_ms, 3.6e6, Status::Running);
        r.gpu_j = gpu_j;
        r.embodied_g = embodied_g;
        if !cfp {
            (r.ci_g, r.cfp_g) = (None, None);
        }
        r
    }

    /// a (p1) has every part; b (p1) no GPU joules; c (p2) no footprint in
    /// its second window.
    fn report(by: By) -> Report {
        let mut agg = Aggregator::default();
        agg.records(&[
            part("a", "p1", 0, Some(3.6e6), Some(1.0), true),
            part("b", "p1", 0, None, Some(0.5), true),
            part("c", "p2", 0, Some(7.2e6), Some(4.0), true),
        ]);
        agg.records(&[
            part("a", "p1", H, Some(1.8e6), Some(2.0), true),
            part("c", "p2", H, Some(0.0), Some(1.0), false),
        ]);
        agg.finish(
            Window {
                start_ms: 0,
                end_ms: 2 * H,
            },
            by,
            &HashMap::new(),
        )
    }

    fn written(report: &Report, format: Format) -> String {
        let mut out = Vec::new();
        write(report, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn gpu_embodied_and_total_are_blank_unless_every_record_has_the_part() {
        let json: Value =
            serde_json::from_str(&written(&report(By::Project), Format::Json)).unwrap();
        let p1 = &json["tenant_usages"][0];
        let p2 = &json["tenant_usages"][1];
        // p1: b has no gpu_j; 100 g/kWh on 3 kWh, and 3.5 g embodied.
        assert_eq!(p1["total_gpu_kwh"], Value::Null, "{p1}");
        assert_eq!(p1["total_embodied_g"], 3.5);
        assert_eq!(p1["total_g"], 303.5);
        assert_eq!(p1["server_usages"][0]["gpu_kwh"], 1.5);
        assert_eq!(p1["server_usages"][0]["total_g"], 203.0);
        assert_eq!(p1["server_usages"][1]["gpu_kwh"], Value::Null);
        // p2: every record has gpu_j (one of 0 J); one lacks a footprint.
        assert_eq!(p2["total_gpu_kwh"], 2.0);
        assert_eq!(p2["total_embodied_g"], 5.0);
        assert_eq!(p2["total_carbon_g"], 100.0);
        assert_eq!(p2["total_g"], Value::Null, "{p2}");
        assert_eq!(json["total_gpu_kwh"], Value::Null);
        assert_eq!(json["total_g"], Value::Null);

        let csv = written(&report(By::Project), Format::Csv);
        let rows: Vec<HashMap<&str, &str>> = {
            let mut lines = csv.lines();
            let header: Vec<&str> = lines.next().unwrap().split(',').collect();
            lines
                .map(|l| header.iter().copied().zip(l.split(',')).collect())
                .collect()
        };
        assert_eq!(
            (
                rows[0]["gpu_kwh"],
                rows[0]["embodied_g"],
                rows[0]["total_g"]
            ),
            ("", "3.5", "303.5")
        );
        assert_eq!(
            (
                rows[1]["gpu_kwh"],
                rows[1]["embodied_g"],
                rows[1]["total_g"]
            ),
            ("2", "5", "")
        );

        let table = written(&report(By::Project), Format::Table);
        assert!(
            table.contains("GPU kWh") && table.contains("EMBODIED"),
            "{table}"
        );
        let cells = |name: &str| -> Vec<String> {
            let line = table.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().skip(6).map(str::to_owned).collect()
        };
        // kWh, GPU kWh, SHARE, gCO2e, EMBODIED, TOTAL.
        assert_eq!(cells("astro"), ["3.000", "-", "-", "300.0", "3.5", "303.5"]);
        assert_eq!(cells("p2"), ["2.000", "2.000", "-", "100.0", "5.0", "-"]);
        assert_eq!(cells("TOTAL"), ["5.000", "-", "-", "400.0", "8.5", "-"]);
        assert!(table.lines().all(|l| l.chars().count() <= 120), "{table}");

        let html = written(&report(By::Project), Format::Html);
        assert!(
            html.contains("<th>GPU kWh</th>") && html.contains("<td>303.5</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td>2.000</td>") && html.contains("<td>5.0</td>"),
            "{html}"
        );
    }

    #[test]
    fn by_vm_every_format_has_each_vms_gpu_embodied_and_total() {
        let report = report(By::Vm);
        let json: Value = serde_json::from_str(&written(&report, Format::Json)).unwrap();
        let vm = |uuid: &str| {
            json["usages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["instance_id"] == uuid)
                .unwrap()
                .clone()
        };
        assert_eq!(
            (vm("a")["total_gpu_kwh"].clone(), vm("a")["total_g"].clone()),
            (1.5.into(), 203.0.into())
        );
        assert_eq!(vm("b")["total_gpu_kwh"], Value::Null);
        assert_eq!(vm("c")["total_g"], Value::Null);

        let csv = written(&report, Format::Csv);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let a: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(
            (
                a[0],
                a[at("gpu_kwh")],
                a[at("embodied_g")],
                a[at("total_g")]
            ),
            ("a", "1.5", "3", "203")
        );

        let table = written(&report, Format::Table);
        assert!(table.lines().all(|l| l.chars().count() <= 120), "{table}");
        // GPU kWh, gCO2e, EMBODIED, TOTAL (and STATE).
        let cells = |first: &str| -> Vec<String> {
            let line = table
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(first) || l.starts_with(first))
                .unwrap_or_else(|| panic!("{first} in {table}"));
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells[cells.len().saturating_sub(5)..]
                .iter()
                .map(|c| (*c).to_owned())
                .collect()
        };
        assert_eq!(cells("a"), ["1.500", "200.0", "3.0", "203.0", "active"]);
        assert_eq!(cells("b"), ["-", "100.0", "0.5", "100.5", "stopped"]);
        assert_eq!(cells("c"), ["2.000", "100.0", "5.0", "-", "active"]);
        assert_eq!(cells("TOTAL"), ["5.000", "-", "400.0", "8.5", "-"]);

        let html = written(&report, Format::Html);
        assert!(
            html.contains("<th>Embodied gCO2e</th><th>Total gCO2e</th><th class=\"text\">Quality"),
            "{html}"
        );
        assert!(
            html.contains("<td>1.500</td><td>200.0</td><td>3.0</td><td>203.0</td>"),
            "{html}"
        );
    }

    #[test]
    fn by_host_and_flavor_carry_the_same_columns() {
        for by in [By::Host, By::Flavor] {
            let report = report(by);
            let json: Value = serde_json::from_str(&written(&report, Format::Json)).unwrap();
            // One group (cmp-01, no flavor): b lacks gpu_j, c a footprint.
            let group = &json["usages"][0];
            assert_eq!(group["total_embodied_g"], 8.5, "{group}");
            assert_eq!(
                (&group["total_gpu_kwh"], &group["total_g"]),
                (&Value::Null, &Value::Null)
            );
            let csv = written(&report, Format::Csv);
            assert!(
                csv.lines().next().unwrap().contains(",energy_kwh,gpu_kwh,"),
                "{csv}"
            );
            assert!(csv.lines().nth(1).unwrap().ends_with(",400,8.5,"), "{csv}");
        }
    }
}
