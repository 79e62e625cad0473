//! `[carbon]` on records from a real extract: PUE and a grid intensity
//! (static, or a Prometheus gauge per zone averaged by G1) give each record
//! `pue`, `ci_g` and `cfp_g = kWh × PUE × CI` (ENERGY.md "Facility overhead
//! and carbon"); no intensity, no `ci_g`.

use super::data::{HOUR, Rng, T0, VmShape, c1, counter_series, g1, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics, openmetrics_with_gauges};
use super::wattson::{extract_with, jsonl_records, write_policy};
use wattson::window::format_ms;

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

/// A grid intensity series: a sample every 60 s (±2 s jitter) from `from`
/// to `to`, none inside `gap`, values around `base` gCO2e/kWh.
fn intensity_series(zone: &str, base: f64, from: i64, to: i64, gap: (i64, i64)) -> TestSeries {
    let mut rng = Rng::new(base as u64);
    let mut samples = Vec::new();
    let mut t = from;
    while t <= to {
        let ts = t + ((rng.next_f64() - 0.5) * 4000.0) as i64;
        if !(gap.0..gap.1).contains(&ts) {
            samples.push((ts, base * (0.8 + 0.4 * rng.next_f64())));
        }
        t += 60_000;
    }
    TestSeries {
        labels: vec![("zone".into(), zone.into())],
        samples,
    }
}

#[test]
fn a_measured_intensity_is_the_gauges_mean_over_its_covered_time_per_zone() {
    // Three VMs on three hosts: cmp-01 sits in zone DE, gpu-01 in FR, and
    // edge-01 in no zone the policy names.
    let vm = |uuid: &'static str, host: &str, seed: u64| {
        let mut series = counter_series(&VmShape {
            uuid,
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 10.0,
            seed,
        });
        for (k, v) in &mut series.labels {
            if k == "instance" {
                *v = format!("{host}:9177");
            }
        }
        series
    };
    let vms = [
        vm("vm-de", "cmp-01", 1),
        vm("vm-fr", "gpu-01", 2),
        vm("vm-x", "edge-01", 3),
    ];
    // DE: a 20-minute gap inside the first window, and no samples at all
    // after T0 + 2 h - 10 min (the second window has no DE intensity).
    let de = intensity_series(
        "DE",
        380.0,
        T0,
        T0 + 2 * HOUR - 600_000,
        (T0 + HOUR + 900_000, T0 + HOUR + 2_100_000),
    );
    let fr = intensity_series("FR", 55.0, T0, T0 + 3 * HOUR, (0, 0));
    let pl = intensity_series("PL", 700.0, T0, T0 + 3 * HOUR, (0, 0));
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[("libvirt_domain_info_energy_consumption_joules", &vms)],
        &[(
            "grid_carbon_intensity_gco2_per_kwh",
            &[de.clone(), fr.clone(), pl],
        )],
    ));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "site.toml",
        &format!(
            "{POLICY}\n[window]\nmax_window_secs = 3600\n\n[inventory]\nhost_label = \"instance\"\nhost_regex = '^([^:]+)'\n\n\
             [carbon]\npue = {{ \"cmp-*\" = 1.2, \"*\" = 1.5 }}\n\
             intensity_metric = \"grid_carbon_intensity_gco2_per_kwh\"\n\
             intensity_zone_label = \"zone\"\n\n[carbon.zones]\n\"cmp-*\" = \"DE\"\n\"gpu-*\" = \"FR\"\n"
        ),
    );
    let out = extract_with(&policy, &prometheus.url, T0 + HOUR, T0 + 3 * HOUR, &[]);
    let records = jsonl_records(&out);
    assert_eq!(records.len(), 6, "three VMs, two windows");
    let stderr = String::from_utf8_lossy(&out.stderr);

    for (w, (from, to)) in [(T0 + HOUR, T0 + 2 * HOUR), (T0 + 2 * HOUR, T0 + 3 * HOUR)]
        .into_iter()
        .enumerate()
    {
        for (series, zone, pue) in [
            (&vms[0], Some(&de), 1.2),
            (&vms[1], Some(&fr), 1.5),
            (&vms[2], None, 1.5),
        ] {
            let uuid = &series.labels[0].1;
            let record = records
                .iter()
                .find(|r| {
                    r["vm_uuid"] == uuid.as_str() && r["energy_joules"].is_number() && {
                        let start = r["start"].as_str().unwrap();
                        start == format_ms(from)
                    }
                })
                .unwrap_or_else(|| panic!("a record of {uuid} in window {w}"));
            let joules = c1(&series.samples, from, to).unwrap();
            assert!(rel_err(record["energy_joules"].as_f64().unwrap(), joules) < 1e-9);
            assert_eq!(record["pue"], pue, "{record}");
            let (integral, covered) = zone.map_or((0.0, 0.0), |z| g1(&z.samples, from, to));
            if covered == 0.0 {
                // No intensity (DE in the second window; edge-01 never): none, never 0.
                assert!(
                    record.get("ci_g").is_none() && record.get("cfp_g").is_none(),
                    "{record}"
                );
                continue;
            }
            let ci = integral / covered;
            let got_ci = record["ci_g"].as_f64().unwrap();
            assert!(
                rel_err(got_ci, ci) < 1e-9,
                "{uuid} window {w}: ci {got_ci} vs {ci}"
            );
            let covered_got = record["ci_covered_s"].as_f64().unwrap();
            assert!(
                (covered_got - covered).abs() < 1e-3,
                "{covered_got} vs {covered}"
            );
            let cfp = joules / 3.6e6 * pue * ci;
            let got = record["cfp_g"].as_f64().unwrap();
            assert!(
                rel_err(got, cfp) < 1e-9,
                "{uuid} window {w}: cfp {got} vs {cfp}"
            );
        }
    }
    // DE's first window is partly covered (the gap, the end of the series).
    let de_first = g1(&de.samples, T0 + HOUR, T0 + 2 * HOUR).1;
    assert!(
        de_first < 3600.0 - 1500.0 && de_first > 1000.0,
        "{de_first}"
    );
    // Each missing intensity is a warning naming the window.
    assert!(
        stderr.contains("no grid carbon intensity for this zone in this window")
            && stderr.contains("DE")
            && stderr.contains(&format_ms(T0 + 2 * HOUR)),
        "{stderr}"
    );
    assert!(
        stderr.contains("host matches no pattern of [carbon.zones]") && stderr.contains("edge-01"),
        "{stderr}"
    );
    // Two intensities at once is a policy error, named.
    let out = extract_with(
        &policy,
        &prometheus.url,
        T0 + HOUR,
        T0 + 2 * HOUR,
        &["carbon.intensity_g_per_kwh=200"],
    );
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--set carbon.intensity_g_per_kwh: ") && said.contains("keep one"),
        "{said}"
    );
}

/// `tenant-metrics` on a real extract's records: per project and window,
/// `sustainability_tenant_energy_kwh` = Σ C1 / 3.6e6 and
/// `sustainability_tenant_operational_gwp_kg` = Σ cfp_g / 1000 of the
/// project's VMs; no GPU, embodied or total family (the records carry
/// neither); one payload per window, in order; no project name known, so
/// `project_name=""`.
#[test]
fn tenant_metrics_sums_a_real_extracts_records_per_project_and_window() {
    let shape = |uuid, project, seed| VmShape {
        uuid,
        project,
        from_ms: T0,
        to_ms: T0 + 3 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 10.0,
        seed,
    };
    let shapes = [
        shape("vm-a", "p1", 11),
        shape("vm-b", "p1", 12),
        shape("vm-c", "p2", 13),
    ];
    let series: Vec<TestSeries> = shapes.iter().map(counter_series).collect();
    let prometheus = Prometheus::start(&openmetrics(&[(
        "libvirt_domain_info_energy_consumption_joules",
        &series,
    )]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", POLICY);
    let (from, to) = (T0 + HOUR, T0 + 3 * HOUR);
    let out = super::wattson::dry_run(&policy, &prometheus.url, from, to)
        .args(["--format", "tenant-metrics"])
        .args([
            "--set",
            "carbon.pue=1.3",
            "--set",
            "carbon.intensity_g_per_kwh=210",
            // Two one-hour windows in one run.
            "--set",
            "window.max_window_secs=3600",
        ])
        .output()
        .unwrap();
    super::support::ok(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let payloads: Vec<&str> = stdout.split_inclusive("# EOF\n").collect();
    assert_eq!(payloads.len(), 2, "{stdout}");
    for (payload, start) in payloads.iter().zip([from, from + HOUR]) {
        let end = start + HOUR;
        assert!(
            payload.contains(&format!(
                "\nwattson_tenant_window_start_seconds {}\n",
                start / 1000
            )) && payload.contains(&format!(
                "\nwattson_tenant_window_end_seconds {}\n",
                end / 1000
            )),
            "{payload}"
        );
        for family in ["embodied", "total", "gpu"] {
            assert!(!payload.contains(family), "{family} in {payload}");
        }
        let value = |family: &str, project: &str| -> f64 {
            let prefix = format!("{family}{{project_id=\"{project}\",project_name=\"\"}} ");
            payload
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no {prefix} in {payload}"))
                .parse()
                .unwrap()
        };
        for project in ["p1", "p2"] {
            let joules: f64 = shapes
                .iter()
                .zip(&series)
                .filter(|(s, _)| s.project == project)
                .map(|(_, series)| c1(&series.samples, start, end).unwrap())
                .sum();
            let kwh = value("sustainability_tenant_energy_kwh", project);
            assert!(rel_err(kwh, joules / 3.6e6) < 1e-12, "{kwh} vs {joules} J");
            let kg = value("sustainability_tenant_operational_gwp_kg", project);
            let want = joules / 3.6e6 * 1.3 * 210.0 / 1000.0;
            assert!(rel_err(kg, want) < 1e-12, "{kg} vs {want}");
        }
    }
}
