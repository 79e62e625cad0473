//! Plugin runtime speed: one `attribute` call over 10,000 VMs (marshalling
//! included), loading a cached builtin (deserialize + instantiate + describe),
//! and the first compile of a builtin.
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
    let readings = (0..n)
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
            vms: readings,
            hosts: vec![],
        }],
    }
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
