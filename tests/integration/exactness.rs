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
use super::wattson::{BASIC_POLICY, extract, joules_by_vm, write_policy};

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
