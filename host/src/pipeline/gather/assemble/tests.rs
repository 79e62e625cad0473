use super::*;

fn cpu_series(cpu_s: f64, span_s: f64, first_ms: i64) -> SeriesReading {
    SeriesReading {
        labels: Labels::default(),
        value: cpu_s,
        span_s,
        covered_s: span_s,
        times: Some((first_ms, first_ms + (span_s * 1000.0) as i64)),
    }
}

#[test]
fn placements_follow_each_vm_from_host_to_host() {
    // VM 0 came to host 1 (two series there, an exporter restart), then
    // host 0; VM 1 has no CPU-time series; VM 2 one; VM 3 two hosts
    // whose series start at the same time.
    let series = [
        (0, Some(1), cpu_series(10.0, 600.0, 1_000)),
        (2, Some(0), cpu_series(5.0, 3600.0, 0)),
        (0, Some(0), cpu_series(30.0, 1800.0, 1_801_000)),
        (0, Some(1), cpu_series(2.0, 900.0, 601_000)),
        (3, Some(1), cpu_series(1.0, 60.0, 0)),
        (3, Some(0), cpu_series(1.0, 30.0, 0)),
    ];
    let mut wall_s = vec![1000.0, 3600.0, 3600.0, 0.0];
    let window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };
    let placements = placements(
        window,
        &[Some(1), Some(2), Some(0), Some(1)],
        Some(series.iter().map(|(vm, host, s)| (*vm, *host, s))),
        true,
        &mut wall_s,
    );
    let got: Vec<(u32, Option<u32>, f64, Option<f64>)> = placements
        .iter()
        .map(|p| (p.vm, p.host, p.presence_s, p.cpu_s))
        .collect();
    assert_eq!(
        got,
        [
            (0, Some(1), 900.0, Some(12.0)),
            (0, Some(0), 1800.0, Some(30.0)),
            (1, Some(2), 3600.0, None),
            (2, Some(0), 3600.0, Some(5.0)),
            // A tie in first sample: the order the series came in.
            (3, Some(1), 60.0, Some(1.0)),
            (3, Some(0), 30.0, Some(1.0)),
        ]
    );
    // A migrated VM's wall time is the sum of its placements' spans.
    assert_eq!(wall_s, [2700.0, 3600.0, 3600.0, 90.0]);
    assert!(placements.iter().all(|p| p.assigned));
}

/// Without CPU time (a direct model), the energy series place a VM that
/// migrated on each host it was measured on; one on a single host keeps one
/// placement present for its wall time, as before.
#[test]
fn a_direct_model_places_a_migrated_vm_on_each_host() {
    let series = [
        (0, Some(1), cpu_series(500.0, 900.0, 0)),
        (0, Some(0), cpu_series(700.0, 1800.0, 1_801_000)),
        (1, Some(2), cpu_series(90.0, 3000.0, 0)),
    ];
    let mut wall_s = vec![1000.0, 3600.0];
    let window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };
    let placements = placements(
        window,
        &[Some(1), Some(2)],
        Some(series.iter().map(|(vm, host, s)| (*vm, *host, s))),
        false,
        &mut wall_s,
    );
    let got: Vec<(u32, Option<u32>, f64, Option<f64>)> = placements
        .iter()
        .map(|p| (p.vm, p.host, p.presence_s, p.cpu_s))
        .collect();
    assert_eq!(
        got,
        [
            (0, Some(1), 900.0, None),
            (0, Some(0), 1800.0, None),
            (1, Some(2), 3600.0, None),
        ]
    );
    assert_eq!(wall_s, [2700.0, 3600.0]);
}

/// A window's readings as measure would give them, assembled without
/// any server: VMs and hosts from the series, a migration, a start and a
/// stop, presence clipped to the window, status from the counters' times.
#[test]
fn readings_become_the_models_input_without_a_server() {
    use std::path::Path;

    use crate::policy::{Policy, Source};
    use crate::runtime::{HostPowerSpec, Measurement, Status};
    use crate::sources::prometheus::{Client, PrometheusConfig};

    let policy = Policy::parse(Source::new(
        Path::new("p.toml"),
        "[site]\nname = \"S\"\ncompute_service = \"c\"\n[inventory]\nhost_label = \"instance\"\n\
         host_regex = '^([^:]+)'\n[model]\nplugin = \"libvirt-joules\"\n"
            .to_owned(),
    ))
    .unwrap();
    let measurements = [
        Measurement::CpuTime("cpu".into()),
        Measurement::HostPower(HostPowerSpec {
            name: "wall".into(),
            max_gap_s: None,
        }),
    ];
    // Nothing listens there: assembling asks nothing.
    let client = Client::new(PrometheusConfig::with_url("http://127.0.0.1:9")).unwrap();
    let plan = GatherPlan::new(&policy, &measurements, Some(&client)).unwrap();
    let window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };
    let cpu = |uuid: &str, host: &str, value: f64, first_ms: i64, last_ms: i64| SeriesReading {
        labels: [("uuid", uuid), ("instance", host)].into_iter().collect(),
        value,
        span_s: (last_ms - first_ms) as f64 / 1000.0,
        covered_s: (last_ms - first_ms) as f64 / 1000.0,
        times: Some((first_ms, last_ms)),
    };
    let power = |host: &str, joules: f64, covered_s: f64| SeriesReading {
        labels: [("instance", host)].into_iter().collect(),
        value: joules,
        span_s: covered_s,
        covered_s,
        times: None,
    };
    let readings = Readings {
        cloud: None,
        keyed: vec![
            KeyedResult {
                name: "cpu".into(),
                key: KeyKind::Uuid,
                key_label: "uuid".into(),
                series: vec![
                    // Throughout: its base 15 s before the start.
                    cpu("a", "cmp-01:9177", 100.0, -15_000, 3_590_000),
                    // Migrates from cmp-01 to cmp-02 half way.
                    cpu("b", "cmp-01:9177", 10.0, -10_000, 1_790_000),
                    // Stops 10 minutes in.
                    cpu("d", "cmp-01:9177", 5.0, -5_000, 600_000),
                    cpu("b", "cmp-02:9177", 20.0, 1_805_000, 3_595_000),
                    // Starts 20 minutes in.
                    cpu("c", "cmp-02:9177", 7.0, 1_200_000, 3_595_000),
                ],
                stopped: Vec::new(),
            },
            KeyedResult {
                name: "wall".into(),
                key: KeyKind::Host,
                key_label: "instance".into(),
                series: vec![
                    power("cmp-02:9290", 300_000.0, 3000.0),
                    power("cmp-01:9290", 360_000.0, 3600.0),
                ],
                stopped: Vec::new(),
            },
            // A per-VM joules counter: b's on each host it ran on, and
            // on a host none of its placements is on.
            KeyedResult {
                name: "energy".into(),
                key: KeyKind::Uuid,
                key_label: "uuid".into(),
                series: vec![
                    cpu("b", "cmp-02:9177", 2000.0, 1_805_000, 3_595_000),
                    cpu("a", "cmp-01:9177", 9000.0, -15_000, 3_590_000),
                    cpu("b", "cmp-01:9177", 1000.0, -10_000, 1_790_000),
                    cpu("b", "cmp-09:9177", 4.0, 0, 60_000),
                ],
                stopped: Vec::new(),
            },
        ],
        implicit_cpu: None,
        metadata: Default::default(),
        sizes: Default::default(),
        domains: Default::default(),
        raw_fetched: 0,
        gpus: Vec::new(),
    };
    let described = describe(&plan, &readings, window).unwrap();
    let gathered = assemble(&plan, &readings, described, Vec::new(), window);
    let input = &gathered.input;
    assert_eq!(input.hosts, ["cmp-01", "cmp-02"]);
    let uuids: Vec<&str> = input.vms.iter().map(|v| v.uuid.as_str()).collect();
    assert_eq!(uuids, ["a", "b", "d", "c"]);
    let placements: Vec<(u32, Option<u32>, f64, Option<f64>)> = input
        .placements
        .iter()
        .map(|p| (p.vm, p.host, p.presence_s, p.cpu_s))
        .collect();
    assert_eq!(
        placements,
        [
            (0, Some(0), 3600.0, Some(100.0)),
            (1, Some(0), 1800.0, Some(10.0)),
            (1, Some(1), 1790.0, Some(20.0)),
            (2, Some(0), 605.0, Some(5.0)),
            (3, Some(1), 2395.0, Some(7.0)),
        ]
    );
    assert_eq!(gathered.wall_s, [3600.0, 3590.0, 605.0, 2395.0]);
    assert_eq!(
        gathered.status,
        [
            Status::Running,
            Status::Running,
            Status::Completed,
            Status::Started
        ]
    );
    assert_eq!(
        gathered.cpu_s,
        [Some(100.0), Some(30.0), Some(5.0), Some(7.0)]
    );
    // Host power per host key, whatever port the exporter is on.
    let wall = &input.measurements[1];
    assert_eq!(wall.name, "wall");
    let hosts: Vec<(f64, f64)> = wall
        .hosts
        .iter()
        .map(|r| r.map(|r| (r.value, r.covered_s)).unwrap())
        .collect();
    assert_eq!(hosts, [(360_000.0, 3600.0), (300_000.0, 3000.0)]);
    assert!(wall.vms.iter().all(Option::is_none));
    assert!(
        wall.placements.is_empty(),
        "host-keyed: no placement entries"
    );
    // VM-keyed measurements per placement: each series on the VM's
    // placement on its host, else (cmp-09) on the VM's first; a VM's
    // placements add up to its reading.
    let values = |readings: &[Option<Reading>]| -> Vec<Option<f64>> {
        readings.iter().map(|r| r.map(|r| r.value)).collect()
    };
    let cpu = &input.measurements[0];
    assert_eq!(
        values(&cpu.placements),
        [Some(100.0), Some(10.0), Some(20.0), Some(5.0), Some(7.0)]
    );
    let energy = &input.measurements[2];
    assert_eq!(energy.name, "energy");
    assert_eq!(
        values(&energy.placements),
        [Some(9000.0), Some(1004.0), Some(2000.0), None, None]
    );
    assert_eq!(
        values(&energy.vms),
        [Some(9000.0), Some(3004.0), None, None]
    );
    assert!(input.gpus.is_empty());
}

/// Counter series that stopped in the lookback before the window's start
/// (`docs/ENERGY.md#record-status`): a VM no series measured in the window
/// is completed there with no reading and no model input; one that
/// migrated across the start is running, not started; one whose lifetime
/// the cloud gives is completed only where it was terminated in the window.
#[test]
fn gather_completes_vms_whose_counters_stopped_at_the_start() {
    use std::path::Path;

    use crate::policy::{Policy, Source};
    use crate::runtime::{CounterSpec, Measurement, Status, Unit};
    use crate::sources::cloud::{CloudInventory, CloudVm};
    use crate::sources::prometheus::{Client, PrometheusConfig, StoppedSeries};

    let policy = Policy::parse(Source::new(
        Path::new("p.toml"),
        "[site]\nname = \"S\"\ncompute_service = \"c\"\n[inventory]\nhost_label = \"instance\"\n\
         host_regex = '^([^:]+)'\n[model]\nplugin = \"libvirt-joules\"\n"
            .to_owned(),
    ))
    .unwrap();
    let measurements = [
        Measurement::CpuTime("cpu".into()),
        Measurement::Counter(CounterSpec {
            name: "energy".into(),
            selector: "joules".into(),
            key_label: "uuid".into(),
            key: KeyKind::Uuid,
            unit: Unit::Joules,
            wrap_range: None,
        }),
    ];
    let client = Client::new(PrometheusConfig::with_url("http://127.0.0.1:9")).unwrap();
    let plan = GatherPlan::new(&policy, &measurements, Some(&client)).unwrap();
    let window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };
    let labels = |uuid: &str, host: &str| -> Labels {
        [("uuid", uuid), ("instance", host)].into_iter().collect()
    };
    let cpu = |uuid: &str, host: &str, first_ms: i64, last_ms: i64| SeriesReading {
        labels: labels(uuid, host),
        value: 50.0,
        span_s: (last_ms - first_ms) as f64 / 1000.0,
        covered_s: (last_ms - first_ms) as f64 / 1000.0,
        times: Some((first_ms, last_ms)),
    };
    let stopped = |uuid: &str, host: &str, last_ms: i64| StoppedSeries {
        labels: labels(uuid, host),
        last_ms,
    };
    let counter = |name: &str, series, stopped| KeyedResult {
        name: name.into(),
        key: KeyKind::Uuid,
        key_label: "uuid".into(),
        series,
        stopped,
    };
    let readings = |cloud| Readings {
        cloud,
        keyed: vec![
            counter(
                "cpu",
                // m left cmp-01 40 s before the start, on cmp-02 from 45 s in.
                vec![cpu("m", "cmp-02:9177", 45_000, 3_590_000)],
                vec![
                    stopped("m", "cmp-01:9177", -40_000),
                    stopped("z", "cmp-01:9177", -100_000),
                    stopped("z", "cmp-02:9177", -20_000),
                ],
            ),
            // x's CPU time was never read; y stopped at the start itself.
            counter(
                "energy",
                vec![cpu("m", "cmp-02:9177", 45_000, 3_590_000)],
                vec![
                    stopped("x", "cmp-01:9177", -300_000),
                    stopped("y", "cmp-01:9177", 0),
                ],
            ),
        ],
        implicit_cpu: None,
        metadata: Default::default(),
        sizes: Default::default(),
        domains: Default::default(),
        raw_fetched: 0,
        gpus: Vec::new(),
    };
    let by_counters = readings(None);
    let described = describe(&plan, &by_counters, window).unwrap();
    let gathered = assemble(&plan, &by_counters, described, Vec::new(), window);
    let uuids: Vec<&str> = gathered.input.vms.iter().map(|v| v.uuid.as_str()).collect();
    assert_eq!(uuids, ["m"]);
    assert_eq!(gathered.status, [Status::Running]);
    let ended: Vec<(&str, Option<&str>, f64, Option<f64>)> = gathered
        .ended
        .iter()
        .map(|e| (e.vm.uuid.as_str(), e.host.as_deref(), e.wall_s, e.cpu_s))
        .collect();
    assert_eq!(
        ended,
        [
            ("x", Some("cmp-01"), 0.0, None),
            ("y", Some("cmp-01"), 0.0, None),
            // Its last series' host.
            ("z", Some("cmp-02"), 0.0, Some(0.0)),
        ]
    );

    // The cloud decides: z was terminated 30 s into the window; y before
    // it, so the cloud lists it no more (the window before completed it);
    // x lives on, shut off.
    let vm = |uuid: &str, terminated_ms| CloudVm {
        uuid: uuid.into(),
        launched_ms: Some(-7_200_000),
        terminated_ms,
        domain_name: None,
        owner: Default::default(),
        vcpus: None,
        memory_mb: None,
        disk_gb: None,
        host: None,
        status: if terminated_ms.is_some() {
            "DELETED"
        } else {
            "SHUTOFF"
        }
        .into(),
    };
    let cloud = CloudInventory {
        source: "nova",
        endpoint: "http://nova.test".into(),
        vms: [vm("x", None), vm("z", Some(30_000))]
            .into_iter()
            .map(|vm| (vm.uuid.clone(), vm))
            .collect(),
        host_names: Default::default(),
    };
    let by_cloud = readings(Some(cloud));
    let described = describe(&plan, &by_cloud, window).unwrap();
    let gathered = assemble(&plan, &by_cloud, described, Vec::new(), window);
    let ended: Vec<(&str, f64)> = gathered
        .ended
        .iter()
        .map(|e| (e.vm.uuid.as_str(), e.wall_s))
        .collect();
    assert_eq!(ended, [("z", 30.0)]);
}

/// Each holding lands on its VM's placement on the card's host; a holder
/// placed only elsewhere (or nowhere) is left out, its part at the host.
#[test]
fn gpu_holdings_land_on_the_placement_on_the_cards_host() {
    use super::super::gpus::{Card, CardHolding};
    use crate::runtime::{GpuMode, Placement};
    let holding = |uuid: &str, joules: f64| CardHolding {
        uuid: uuid.into(),
        mode: GpuMode::Passthrough,
        share: 1.0,
        profile: None,
        held_s: 1800.0,
        joules,
    };
    let energy = Reading {
        value: 10.0,
        span_s: 3600.0,
        covered_s: 3600.0,
    };
    let cards = [Card {
        host: "gpu-02".into(),
        bus_id: "0000:3b:00.0".parse().unwrap(),
        gpu_uuid: Some("GPU-1".into()),
        energy,
        counter: true,
        holdings: vec![holding("a", 4.0), holding("b", 3.0), holding("c", 1.0)],
    }];
    let placement = |vm, host| Placement {
        vm,
        host: Some(host),
        presence_s: 3600.0,
        cpu_s: None,
        assigned: true,
    };
    // a on gpu-01 then gpu-02 (the card's host); b on gpu-01 only; c unknown.
    let placements = [placement(0, 0), placement(0, 1), placement(1, 0)];
    let hosts = HashMap::from([("gpu-01", 0), ("gpu-02", 1)]);
    let vms = HashMap::from([("a", 0), ("b", 1)]);
    let window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };
    let got = gpus::readings(&cards, &hosts, &vms, &placements, window);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].host, got[0].bus_id.as_str()),
        (1, "00000000:3B:00.0")
    );
    assert_eq!(got[0].energy, energy);
    let holdings: Vec<(u32, f64)> = got[0]
        .holdings
        .iter()
        .map(|h| (h.placement, h.joules))
        .collect();
    assert_eq!(holdings, [(1, 4.0)]);
}
