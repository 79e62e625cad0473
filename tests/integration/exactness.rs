//! C1 exactness against a real Prometheus: scrapes off the window edges,
//! resets, VMs that start, stop or are absent, gaps; tiling; and proof that
//! PromQL `increase()` would be wrong on the same data.

use std::path::Path;

use wattson::policy::{Policy, Source};
use wattson::runtime::Measurement;
use wattson::window::Window;

use super::data::{HOUR, METRIC, MIN, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, openmetrics};
use super::support::{counters_in_prometheus, gather_from};
use super::wattson::{
    BASIC_POLICY, extract, extract_with, joules_by_vm, jsonl_records, write_policy,
};

#[test]
fn counters_are_exact_tile_and_differ_from_increase() {
    let shapes = [
        VmShape {
            uuid: "vm-steady",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 8 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 1.0e6,
            seed: 1,
        },
        VmShape {
            uuid: "vm-reset",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 8 * HOUR,
            resets_at: &[T0 + 3 * HOUR + 30 * MIN],
            gaps: &[],
            initial: 5.0e5,
            seed: 2,
        },
        VmShape {
            uuid: "vm-two-resets",
            project: "p2",
            from_ms: T0,
            to_ms: T0 + 8 * HOUR,
            resets_at: &[T0 + 2 * HOUR + 40 * MIN, T0 + 4 * HOUR + 10 * MIN],
            gaps: &[],
            initial: 0.0,
            seed: 3,
        },
        VmShape {
            uuid: "vm-starts",
            project: "p2",
            from_ms: T0 + 3 * HOUR + 5 * MIN,
            to_ms: T0 + 8 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 12_345.678,
            seed: 4,
        },
        VmShape {
            uuid: "vm-stops",
            project: "p3",
            from_ms: T0,
            to_ms: T0 + 4 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 2.0e5,
            seed: 5,
        },
        VmShape {
            uuid: "vm-stops-late",
            project: "p3",
            from_ms: T0,
            to_ms: T0 + 4 * HOUR + 58 * MIN,
            resets_at: &[],
            gaps: &[],
            initial: 3.0e5,
            seed: 6,
        },
        VmShape {
            uuid: "vm-absent",
            project: "p3",
            from_ms: T0,
            to_ms: T0 + HOUR + 30 * MIN,
            resets_at: &[],
            gaps: &[],
            initial: 7.0e4,
            seed: 7,
        },
        VmShape {
            uuid: "vm-gap",
            project: "p4",
            from_ms: T0,
            to_ms: T0 + 8 * HOUR,
            resets_at: &[],
            gaps: &[(T0 + 3 * HOUR, T0 + 3 * HOUR + 20 * MIN)],
            initial: 9.0e5,
            seed: 8,
        },
        VmShape {
            uuid: "vm-reset-at-edge",
            project: "p4",
            from_ms: T0,
            to_ms: T0 + 8 * HOUR,
            resets_at: &[T0 + 2 * HOUR - 2 * MIN],
            gaps: &[],
            initial: 4.0e5,
            seed: 9,
        },
    ];
    let (series, prometheus) = counters_in_prometheus(&shapes);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);

    let (a, b, c) = (
        T0 + 2 * HOUR,
        T0 + 3 * HOUR + 17 * MIN + 3_217,
        T0 + 5 * HOUR,
    );
    let whole = joules_by_vm(&extract(&policy, &prometheus.url, a, c));

    // Exact: every VM present in the window, to 1e-9 of C1 on the generated samples.
    for (shape, s) in shapes.iter().zip(&series) {
        let expected = c1(&s.samples, a, c);
        match (expected, whole.get(shape.uuid)) {
            (Some(want), Some(&got)) => assert!(
                rel_err(want, got) <= 1e-9,
                "{}: wattson {got} J, C1 {want} J (rel err {:e})",
                shape.uuid,
                rel_err(want, got)
            ),
            (None, None) => {}
            (want, got) => panic!("{}: C1 says {want:?}, wattson says {got:?}", shape.uuid),
        }
    }
    assert!(
        !whole.contains_key("vm-absent"),
        "an absent VM must get no record"
    );
    assert_eq!(whole.len(), shapes.len() - 1);

    // Tiling: [a, b] + [b, c] = [a, c] for every VM.
    let first = joules_by_vm(&extract(&policy, &prometheus.url, a, b));
    let second = joules_by_vm(&extract(&policy, &prometheus.url, b, c));
    for (uuid, total) in &whole {
        let sum = first.get(uuid).unwrap_or(&0.0) + second.get(uuid).unwrap_or(&0.0);
        assert!(
            rel_err(*total, sum) <= 1e-9,
            "{uuid}: [a,b] + [b,c] = {sum} J but [a,c] = {total} J"
        );
    }

    // PromQL increase() on the same data is not C1: a regression to it fails.
    let range_s = (c - a) / 1000;
    let increases = prometheus.query(&format!("increase({METRIC}_total[{range_s}s])"), c);
    let mut differing = 0;
    for (labels, value) in increases {
        let uuid = labels["uuid"].as_str().unwrap();
        if whole
            .get(uuid)
            .is_some_and(|&exact| rel_err(exact, value) > 1e-6)
        {
            differing += 1;
        }
    }
    assert!(
        differing >= 4,
        "increase() should differ from C1 for most VMs here, it differs for {differing}"
    );
}

/// `cpu-time`: each VM's CPU seconds in the window, C1 of the libvirt
/// exporter's CPU-time counter named in `[inventory]`, resets included.
#[test]
fn cpu_time_is_c1_of_the_cpu_seconds_counter() {
    let shapes = [
        VmShape {
            uuid: "cpu-busy",
            project: "p",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[T0 + HOUR + 40 * MIN],
            gaps: &[],
            initial: 5.0e4,
            seed: 91,
        },
        VmShape {
            uuid: "cpu-late",
            project: "p",
            from_ms: T0 + HOUR + 12 * MIN,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 0.0,
            seed: 92,
        },
    ];
    let series: Vec<_> = shapes.iter().map(counter_series).collect();
    let prometheus = Prometheus::start(&openmetrics(&[(
        "libvirt_domain_info_cpu_time_seconds",
        &series,
    )]));
    let policy = Policy::parse(Source::new(
        Path::new("cpu.toml"),
        "[site]\nname = \"S\"\ncompute_service = \"c\"\n[model]\nplugin = \"libvirt-joules\"\n"
            .into(),
    ))
    .unwrap();
    let window = Window::new(T0 + HOUR, T0 + 2 * HOUR + 3_333).unwrap();
    let gathered = gather_from(
        &policy,
        &[Measurement::CpuTime("cpu".into())],
        &prometheus.url,
        window,
    );
    let cpu = &gathered.input.measurements[0];
    assert_eq!(cpu.name, "cpu");
    for (shape, s) in shapes.iter().zip(&series) {
        let i = gathered
            .input
            .vms
            .iter()
            .position(|v| v.uuid == shape.uuid)
            .unwrap();
        let want = c1(&s.samples, window.start_ms, window.end_ms).unwrap();
        let got = cpu.vms[i].unwrap().value;
        assert!(
            rel_err(want, got) <= 1e-9,
            "{}: {got} s, C1 {want} s",
            shape.uuid
        );
    }
}

/// `[prometheus] lookback_secs` by default, ms.
const LOOKBACK_MS: i64 = 300_000;

/// One record as the ENERGY.md rules make it: (status, joules, wall_s).
type Expected = (&'static str, f64, f64);

/// The record of a VM whose counter series (each with the host it names)
/// are `series`, in `[start, end]`, by `docs/ENERGY.md#record-status`,
/// `#counters` and `#presence`, written out from the samples: none when it
/// gets none.
fn expected_record(series: &[(&str, &[(i64, f64)])], start: i64, end: i64) -> Option<Expected> {
    let length_s = (end - start) as f64 / 1000.0;
    let inside = |s: &[(i64, f64)]| s.iter().any(|(t, _)| *t > start && *t <= end);
    let last_by = |s: &[(i64, f64)], at: i64| s.iter().rfind(|(t, _)| *t <= at).map(|(t, _)| *t);
    // Series silent in W whose last sample lies in the lookback before start.
    let at_edge: Vec<i64> = series
        .iter()
        .filter(|(_, s)| !inside(s))
        .filter_map(|(_, s)| last_by(s, start))
        .filter(|t| *t >= start - LOOKBACK_MS)
        .collect();
    let present: Vec<&(&str, &[(i64, f64)])> = series.iter().filter(|(_, s)| inside(s)).collect();
    if present.is_empty() {
        let last = at_edge.into_iter().max()?;
        return (last < end - LOOKBACK_MS).then_some(("completed", 0.0, 0.0));
    }
    let joules: f64 = present
        .iter()
        .map(|(_, s)| c1(s, start, end).unwrap())
        .sum();
    let used = |s: &[(i64, f64)]| -> (i64, i64) {
        let first =
            last_by(s, start).unwrap_or_else(|| s.iter().find(|(t, _)| *t > start).unwrap().0);
        (first, last_by(s, end).unwrap())
    };
    let first = present
        .iter()
        .map(|(_, s)| used(s).0)
        .chain(at_edge.iter().copied())
        .min()
        .unwrap();
    let last = present.iter().map(|(_, s)| used(s).1).max().unwrap();
    let status = if last < end - LOOKBACK_MS {
        "completed"
    } else if first > start {
        "started"
    } else {
        "running"
    };
    // Presence per host (the longest of its series), summed over hosts.
    let mut hosts: Vec<(&str, f64)> = Vec::new();
    for (host, s) in &present {
        let (a, b) = used(s);
        let presence = ((b - a) as f64 / 1000.0).min(length_s);
        match hosts.iter_mut().find(|(h, _)| h == host) {
            Some((_, p)) => *p = p.max(presence),
            None => hosts.push((host, presence)),
        }
    }
    let wall = hosts.iter().map(|(_, p)| p).sum::<f64>().min(length_s);
    Some((status, joules, wall))
}

/// A VM whose counters stop in the last lookback of a window is `running`
/// there and `completed` in the next, with 0 J and no wall time
/// (`docs/ENERGY.md#record-status`): every VM that stops gets exactly one
/// `completed` record whatever the windows, one that stops earlier gets it
/// in its own window, and a VM that migrates or restarts across the edge
/// is not completed. Both read paths (remote read, PromQL).
#[test]
fn a_vm_that_stops_at_a_window_edge_is_completed_once() {
    let edge = T0 + 2 * HOUR;
    let shape = |uuid, from_ms, to_ms, seed| VmShape {
        uuid,
        project: "p",
        from_ms,
        to_ms,
        resets_at: &[],
        gaps: &[],
        initial: 1.0e5 * seed as f64,
        seed,
    };
    let restart_gap = [(edge - MIN, edge + MIN)];
    let restart_reset = [edge + MIN];
    let shapes = [
        // Stops 2 minutes before the edge: running before it, completed after.
        shape("vm-edge", T0, edge - 2 * MIN, 21),
        // Stops 10 minutes before: completed in its own window.
        shape("vm-early", T0, edge - 10 * MIN, 22),
        shape("vm-on", T0, T0 + 4 * HOUR, 23),
        // Leaves cmp-01 a minute before the edge, on cmp-02 from 30 s after.
        shape("vm-migrates", T0, edge - MIN, 24),
        shape("vm-migrates", edge + 30_000, T0 + 4 * HOUR, 25),
        // Off for two minutes across the edge, its counter back from 0.
        VmShape {
            gaps: &restart_gap,
            resets_at: &restart_reset,
            ..shape("vm-restarts", T0, T0 + 4 * HOUR, 26)
        },
    ];
    let mut series: Vec<_> = shapes.iter().map(counter_series).collect();
    series[4].labels[2].1 = "cmp-02:9177".into();
    let hosts = ["cmp-01", "cmp-01", "cmp-01", "cmp-01", "cmp-02", "cmp-01"];
    let last_of = |i: usize| series[i].samples.last().unwrap().0;
    assert!(last_of(0) >= edge - LOOKBACK_MS && last_of(0) < edge);
    assert!(last_of(1) < edge - LOOKBACK_MS);
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "site.toml",
        &format!(
            "{BASIC_POLICY}\n[inventory]\nhost_label = \"instance\"\nhost_regex = '^([^:]+)'\n"
        ),
    );
    let uuids = ["vm-edge", "vm-early", "vm-on", "vm-migrates", "vm-restarts"];
    // Every record of a run in windows of `step` s from `from` to `to` is
    // the expected one, and only those: returns how many say `completed`.
    let check = |run: &str, records: &[serde_json::Value], from: i64, to: i64, step: i64| {
        let (mut completed, mut expected) = (0, 0);
        for uuid in uuids {
            let of_vm: Vec<(&str, &[(i64, f64)])> = series
                .iter()
                .zip(hosts)
                .filter(|(s, _)| s.labels[0].1 == uuid)
                .map(|(s, h)| (h, &s.samples[..]))
                .collect();
            let mut start = from;
            while start < to {
                let end = start + step * 1000;
                let at = format!("{run}: {uuid} at edge{:+} s", (start - edge) / 1000);
                let got: Vec<&serde_json::Value> = records
                    .iter()
                    .filter(|r| r["vm_uuid"] == uuid && start_ms(r) == start)
                    .collect();
                match (expected_record(&of_vm, start, end), got.as_slice()) {
                    (None, []) => {}
                    (Some((status, joules, wall)), [r]) => {
                        assert_eq!(r["status"], status, "{at}");
                        let got_j = r["energy_joules"].as_f64().unwrap();
                        assert!(
                            rel_err(got_j, joules) <= 1e-9,
                            "{at}: {got_j} J, C1 {joules} J"
                        );
                        let got_wall = r["wall_s"].as_f64().unwrap();
                        assert!(
                            (got_wall - wall).abs() <= 1e-9 * wall.max(1.0),
                            "{at}: wall {got_wall} s, want {wall} s"
                        );
                        completed += usize::from(status == "completed");
                        expected += 1;
                    }
                    (want, got) => panic!("{at}: want {want:?}, got {got:?}"),
                }
                start = end;
            }
        }
        assert_eq!(records.len(), expected, "{run}: only the expected records");
        completed
    };
    // (from, to, window length): two hours in hours, in 20 minutes, and
    // the half hour around the edge in windows shorter than the lookback.
    let runs = [
        (T0 + HOUR, T0 + 3 * HOUR, 3600),
        (T0 + HOUR, T0 + 3 * HOUR, 1200),
        (edge - 16 * MIN, edge + 16 * MIN, 240),
    ];
    for read in ["remote-read", "promql"] {
        for (from, to, step) in runs {
            let sets = [
                format!("window.step_secs={step}"),
                format!("window.max_window_secs={step}"),
                format!("prometheus.read=\"{read}\""),
            ];
            let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
            let records = jsonl_records(&extract_with(&policy, &prometheus.url, from, to, &sets));
            let run = format!("{read}, {step} s windows");
            assert_eq!(
                check(&run, &records, from, to, step),
                2,
                "{run}: vm-edge and vm-early complete once each"
            );
        }
    }
    // A window whose VMs all stopped in the lookback before it is not a
    // window without VMs: `--strict` passes, each completed once.
    let after = T0 + 4 * HOUR + 1_000;
    let sets = [
        "strict=true",
        "window.step_secs=3600",
        "window.max_window_secs=3600",
    ];
    let records = jsonl_records(&extract_with(
        &policy,
        &prometheus.url,
        after,
        after + HOUR,
        &sets,
    ));
    assert_eq!(check("strict", &records, after, after + HOUR, 3600), 3);
}

/// A record's `start`, ms.
fn start_ms(record: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(record["start"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}
