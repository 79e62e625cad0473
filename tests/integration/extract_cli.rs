//! `wattson extract` as an operator runs it: outputs that agree with each
//! other, and a Prometheus that is down.

use super::data::{HOUR, METRIC, MIN, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, free_port, openmetrics};
use super::support::{counters_in_prometheus, ok};
use super::wattson::{
    BASIC_POLICY, command, extract, extract_as, joules_by_vm, jsonl_records, secs, write_policy,
};

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
    let (_, prometheus) = counters_in_prometheus(&shapes);
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
    ok(&out);
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

    // At the default level: one line per retry for the window (not one per
    // query), and the final error says each thing once.
    let out = command()
        .env("WATTSON_LOG", "info")
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &url])
        .args(["--from", &secs(T0), "--to", &secs(T0 + HOUR)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 8, "{} lines:\n{stderr}", lines.len());
    let error = lines.iter().find(|l| l.starts_with("error: ")).unwrap();
    assert_eq!(
        error.matches("cannot reach Prometheus").count(),
        1,
        "{error}"
    );
    assert!(error.ends_with("(gave up after 4 attempts)"), "{error}");
}

#[test]
fn a_missing_policy_file_is_named_once() {
    let out = command()
        .args(["policy", "check", "/nonexistent/site.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: cannot read policy /nonexistent/site.toml: No such file or directory (os error 2)\n"
    );
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

#[test]
fn records_say_whether_a_vm_started_stopped_or_ran_through_the_window() {
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let shape = |uuid, from_ms, to_ms, seed| VmShape {
        uuid,
        project: "p1",
        from_ms,
        to_ms,
        resets_at: &[],
        gaps: &[],
        initial: 100.0,
        seed,
    };
    let shapes = [
        // Scraped before and after the window.
        shape("vm-running", T0, T0 + 3 * HOUR, 41),
        // First scraped 20 minutes into the window, still there at its end.
        shape("vm-started", T0 + HOUR + 20 * MIN, T0 + 3 * HOUR, 42),
        // Shut off 25 minutes before the window's end: no sample in the last 5 minutes.
        shape("vm-stopped", T0, T0 + HOUR + 35 * MIN, 43),
    ];
    let (_, prometheus) = counters_in_prometheus(&shapes);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);
    let out = extract(&policy, &prometheus.url, from, to);
    ok(&out);
    let status: std::collections::HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                r["vm_uuid"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(status["vm-running"], "running");
    assert_eq!(status["vm-started"], "started");
    assert_eq!(status["vm-stopped"], "completed");

    // APEL knows started and completed: ExecUnitFinished is 1 for the stopped VM only.
    let out = extract_as(&policy, &prometheus.url, from, to, "apel-energy");
    ok(&out);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let stopped = r["ExecUnitID"] == "vm-stopped";
        assert_eq!(r["ExecUnitFinished"], i64::from(stopped), "{line}");
        assert_eq!(
            r["Status"],
            if stopped { "completed" } else { "started" },
            "{line}"
        );
    }
}

#[test]
fn records_carry_measured_cpu_time_though_the_model_does_not_ask() {
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let energy = counter_series(&VmShape {
        uuid: "vm-a",
        project: "p1",
        from_ms: T0,
        to_ms: T0 + 3 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 10.0,
        seed: 51,
    });
    let cpu = |uuid, seed| {
        counter_series(&VmShape {
            uuid,
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[T0 + HOUR + 7 * MIN],
            gaps: &[],
            initial: 4.0e4,
            seed,
        })
    };
    // vm-a has CPU time; vm-b has energy only.
    let energy_b = counter_series(&VmShape {
        uuid: "vm-b",
        project: "p2",
        from_ms: T0,
        to_ms: T0 + 3 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 10.0,
        seed: 53,
    });
    let cpu_a = cpu("vm-a", 52);
    let prometheus = Prometheus::start(&openmetrics(&[
        (METRIC, &[energy, energy_b]),
        (
            "libvirt_domain_info_cpu_time_seconds",
            std::slice::from_ref(&cpu_a),
        ),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);
    let records = jsonl_records(&extract(&policy, &prometheus.url, from, to));
    assert_eq!(records.len(), 2, "the CPU series adds no VM of its own");
    let a = records.iter().find(|r| r["vm_uuid"] == "vm-a").unwrap();
    let want = c1(&cpu_a.samples, from, to).unwrap();
    let got = a["cpu_s"].as_f64().expect("vm-a's CPU time is measured");
    assert!(rel_err(got, want) <= 1e-9, "cpu_s {got}, C1 {want}");
    let b = records.iter().find(|r| r["vm_uuid"] == "vm-b").unwrap();
    assert_eq!(
        b["cpu_s"],
        serde_json::Value::Null,
        "no series, no CPU time"
    );
}

#[test]
fn a_reader_that_stops_reading_ends_a_dry_run_quietly() {
    let shape = VmShape {
        uuid: "vm-a",
        project: "p1",
        from_ms: T0,
        to_ms: T0 + 3 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 10.0,
        seed: 61,
    };
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &[counter_series(&shape)])]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);
    // `wattson extract --dry-run | head -0`: the pipe is closed before the
    // first record is written.
    let mut child = command()
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(T0 + HOUR), "--to", &secs(T0 + 2 * HOUR)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
