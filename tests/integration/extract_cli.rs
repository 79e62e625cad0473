//! `wattson extract` as an operator runs it: outputs that agree with each
//! other, and a Prometheus that is down.

use super::data::{HOUR, METRIC, T0, VmShape, counter_series, rel_err};
use super::prometheus::{Prometheus, free_port, openmetrics};
use super::wattson::{BASIC_POLICY, command, extract, joules_by_vm, secs, write_policy};

#[test]
fn caso_json_carries_the_same_energy_in_kwh() {
    let shapes = [
        VmShape {
            uuid: "vm-a",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 10.0,
            seed: 11,
        },
        VmShape {
            uuid: "vm-b",
            project: "p2",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[T0 + HOUR + 1_234],
            gaps: &[],
            initial: 10.0,
            seed: 12,
        },
    ];
    let series: Vec<_> = shapes.iter().map(counter_series).collect();
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let joules = joules_by_vm(&extract(&policy, &prometheus.url, from, to));

    let out = command()
        .args(["extract", "--dry-run", "--format", "caso-json", "--policy"])
        .arg(&policy)
        .args([
            "--prometheus",
            &prometheus.url,
            "--from",
            &secs(from),
            "--to",
            &secs(to),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON array");
    let records = records.as_array().expect("an array");
    assert_eq!(records.len(), 2);
    for r in records {
        let uuid = r["uuid"].as_str().unwrap();
        let kwh = r["EnergyConsumption"].as_f64().unwrap();
        assert_eq!(r["EnergyUnit"], "kWh");
        assert_eq!(r["SiteName"], "TEST-SITE");
        assert_eq!(r["MeasurementTime"].as_i64().unwrap() * 1000, to);
        assert!(
            rel_err(kwh, joules[uuid] / 3.6e6) <= 1e-12,
            "{uuid}: {kwh} kWh"
        );
    }
    assert_eq!(records[0]["LocalGroup"], "p1");
}

#[test]
fn prometheus_down_is_a_source_error_naming_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = extract(&policy, &url, T0, T0 + HOUR);
    assert_eq!(out.status.code(), Some(3), "exit code 3 = source error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("cannot reach Prometheus"), "{stderr}");
    assert!(out.stdout.is_empty(), "no records on failure");
}

#[test]
fn bad_times_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&policy)
        .args(["--from", "yesterday", "--to", "1748736000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`yesterday` is not a time"));
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&policy)
        .args(["--from", "1748736000", "--to", "1748736000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty window"));
}
