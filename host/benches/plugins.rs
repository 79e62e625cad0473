//! Plugin runtime speed: one `attribute` call over 10,000 VMs (marshalling
//! included) of `libvirt-joules`, and of the share models and `tdp-estimate`
//! on 500 hosts; loading a cached builtin (deserialize + instantiate +
//! describe), and the first compile of a builtin.
//!
//! `cargo bench -p wattson --bench plugins`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wattson::runtime::{
    AttributionInput, Limits, Measured, Param, ParamValue, Placement, Reading, Runtime, Vm, Window,
};

const VMS: usize = 10_000;

fn input(n: usize) -> AttributionInput {
    let vms = (0..n)
        .map(|i| Vm {
            uuid: format!("5f0c6f0e-2a1b-4c7e-9a0d-{i:012x}"),
            vcpus: Some(2),
            memory_mb: Some(4096),
        })
        .collect();
    let placements = (0..n)
        .map(|i| Placement {
            vm: i as u32,
            host: Some((i % 50) as u32),
            presence_s: 3600.0,
            cpu_s: None,
            assigned: true,
        })
        .collect();
    let readings: Vec<Option<Reading>> = (0..n)
        .map(|i| {
            Some(Reading {
                value: 1000.0 + i as f64 * 0.37,
                span_s: 3600.0,
                covered_s: 3600.0,
            })
        })
        .collect();
    AttributionInput {
        window: Window {
            start_ms: 1_748_736_000_000,
            end_ms: 1_748_739_600_000,
        },
        vms,
        details: vec![],
        hosts: (0..50).map(|h| format!("cmp-{h:03}")).collect(),
        placements,
        measurements: vec![Measured {
            name: "energy".into(),
            vms: readings.clone(),
            hosts: vec![],
            // One placement per VM, in VM order.
            placements: readings,
        }],
        gpus: vec![],
    }
}

/// 10,000 VMs on 500 hosts, with CPU time, sizes, each host's energy and
/// idle power: what `rapl-share`, `ipmi-share` and `tdp-estimate` read.
fn share_input(n: usize, hosts: usize) -> AttributionInput {
    let mut input = input(n);
    input.hosts = (0..hosts).map(|h| format!("cmp-{h:04}")).collect();
    for (i, p) in input.placements.iter_mut().enumerate() {
        p.host = Some((i % hosts) as u32);
        p.cpu_s = Some(100.0 + (i % 97) as f64 * 13.0);
        p.presence_s = if i % 20 == 0 { 1800.0 } else { 3600.0 };
    }
    let host = |value: f64| {
        Some(Reading {
            value,
            span_s: 3600.0,
            covered_s: 3600.0,
        })
    };
    input.measurements = vec![
        Measured {
            name: "energy".into(),
            vms: vec![None; n],
            hosts: (0..hosts).map(|h| host(1.0e6 + h as f64)).collect(),
            placements: vec![],
        },
        Measured {
            name: "cpu".into(),
            vms: vec![None; n],
            hosts: vec![None; hosts],
            placements: vec![None; n],
        },
        Measured {
            name: "idle_power".into(),
            vms: vec![None; n],
            hosts: (0..hosts).map(|_| host(80.0)).collect(),
            placements: vec![],
        },
    ];
    input
}

fn share_params(idle: &str) -> Vec<Param> {
    vec![
        Param {
            name: "idle".into(),
            value: ParamValue::Choice(idle.into()),
        },
        Param {
            name: "idle_power".into(),
            value: ParamValue::Choice("auto".into()),
        },
    ]
}

fn tdp_params() -> Vec<Param> {
    vec![
        Param {
            name: "min_w".into(),
            value: ParamValue::Table(vec![("gpu-*".into(), 1.2)]),
        },
        Param {
            name: "max_w".into(),
            value: ParamValue::Table(vec![("gpu-*".into(), 4.5)]),
        },
        Param {
            name: "memory_w_per_gb".into(),
            value: ParamValue::Number(0.392),
        },
    ]
}

fn params() -> Vec<Param> {
    let text = |name: &str, value: &str| Param {
        name: name.into(),
        value: ParamValue::Text(value.into()),
    };
    vec![
        text(
            "metric",
            "libvirt_domain_info_energy_consumption_joules_total",
        ),
        text("key_label", "uuid"),
    ]
}

fn benches(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(Limits::default(), Some(cache.path().to_owned())).expect("runtime");
    let model = runtime.load_model("libvirt-joules").expect("builtin");

    let large = input(VMS);
    let params = params();
    let mut group = c.benchmark_group("attribute");
    group.throughput(Throughput::Elements(VMS as u64));
    group.bench_function("libvirt-joules/10k-vms", |b| {
        b.iter(|| model.attribute(&large, &params).expect("attribute"))
    });
    let shares = share_input(VMS, 500);
    for name in ["rapl-share", "ipmi-share"] {
        let model = runtime.load_model(name).expect("builtin");
        for idle in ["vcpus", "host"] {
            let params = share_params(idle);
            group.bench_function(format!("{name}/idle={idle}/10k-vms-500-hosts"), |b| {
                b.iter(|| model.attribute(&shares, &params).expect("attribute"))
            });
        }
    }
    let tdp = runtime.load_model("tdp-estimate").expect("builtin");
    let tdp_params = tdp_params();
    group.bench_function("tdp-estimate/10k-vms-500-hosts", |b| {
        b.iter(|| tdp.attribute(&shares, &tdp_params).expect("attribute"))
    });
    let small = input(100);
    group.throughput(Throughput::Elements(100));
    group.bench_function("libvirt-joules/100-vms", |b| {
        b.iter(|| model.attribute(&small, &params).expect("attribute"))
    });
    group.finish();

    let mut group = c.benchmark_group("load");
    group.bench_function("cached-builtin", |b| {
        b.iter(|| runtime.load_model("libvirt-joules").expect("load"))
    });
    group.sample_size(10);
    group.bench_function("first-compile", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let rt =
                    Runtime::new(Limits::default(), Some(dir.path().to_owned())).expect("runtime");
                (dir, rt)
            },
            |(_dir, rt)| rt.load_model("libvirt-joules").expect("compile"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(plugin_benches, benches);
criterion_main!(plugin_benches);
