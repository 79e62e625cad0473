//! `[carbon]` on records from a real extract: PUE and a static grid
//! intensity give each record `pue`, `ci_g` and `cfp_g = kWh × PUE × CI`
//! (ENERGY.md "Facility overhead and carbon"); no intensity, no `ci_g`.

use super::data::{HOUR, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, openmetrics};
use super::wattson::{extract_with, jsonl_records, write_policy};

const POLICY: &str = "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[model]\nplugin = \"libvirt-joules\"\n\n[model.params]\nkey_label = \"uuid\"\n";

#[test]
fn records_carry_pue_intensity_and_footprint_set_from_the_command_line() {
    let shape = VmShape {
        uuid: "vm-c",
        project: "p1",
        from_ms: T0,
        to_ms: T0 + 2 * HOUR,
        resets_at: &[T0 + HOUR + 1_234_567],
        gaps: &[],
        initial: 3.0,
        seed: 7,
    };
    let series = counter_series(&shape);
    let prometheus = Prometheus::start(&openmetrics(&[(
        "libvirt_domain_info_energy_consumption_joules",
        std::slice::from_ref(&series),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", POLICY);
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let run = |sets: &[&str]| extract_with(&policy, &prometheus.url, from, to, sets);
    let joules = c1(&series.samples, from, to).unwrap();

    // `--set` creates [carbon].
    let records = jsonl_records(&run(&["carbon.pue=1.3", "carbon.intensity_g_per_kwh=210"]));
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["pue"], 1.3);
    assert_eq!(record["ci_g"], 210.0);
    let want = joules / 3.6e6 * 1.3 * 210.0;
    let got = record["cfp_g"].as_f64().unwrap();
    assert!(rel_err(got, want) < 1e-12, "{got} vs {want}");
    assert!(rel_err(record["energy_joules"].as_f64().unwrap(), joules) < 1e-12);

    // A PUE alone: carried, and no intensity means no ci_g and no cfp_g (never 0).
    let records = jsonl_records(&run(&["carbon.pue=1.3"]));
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["pue"], 1.3);
    assert!(
        record.get("ci_g").is_none() && record.get("cfp_g").is_none(),
        "{record}"
    );

    // Out of range: named by its --set, nothing extracted.
    let out = run(&["carbon.pue=0.5"]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--set carbon.pue: ") && said.contains("from 1"),
        "{said}"
    );
    assert!(out.stdout.is_empty());
}
