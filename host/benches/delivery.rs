//! Rendering + spooling + `file` delivery of 100,000 records, as a run does it.
//!
//! `cargo bench -p wattson --bench delivery`

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wattson::messengers::{File, FileMode, Messenger, Payload};
use wattson::policy::MessengerConfig;
use wattson::records::EnergyRecord;
use wattson::runtime::{Limits, Param, Quality, RecordQuality, Runtime, Status};
use wattson::state::{Output, StateDir};
use wattson::window::Window;

const RECORDS: usize = 100_000;

fn records(window: Window) -> Vec<EnergyRecord> {
    (0..RECORDS)
        .map(|i| EnergyRecord {
            id: format!("6f1d9a52-3c4e-5b7a-8e21-{i:012x}"),
            site: "BENCH-SITE".into(),
            cloud_type: "OpenStack".into(),
            compute_service: "https://keystone.example.org:5000/v3".into(),
            vm_uuid: format!("5f0c6f0e-2a1b-4c7e-9a0d-{i:012x}"),
            vm_name: Some(format!("instance-{i:08x}")),
            project_id: Some(format!("{:032x}", i % 97)),
            project_name: None,
            user_id: None,
            user_name: None,
            user_dn: None,
            fqan: Some("vo.example.org".into()),
            host: Some(format!("cmp-{:03}", i % 200)),
            flavor: Some("m1.medium".into()),
            start_ms: window.start_ms,
            end_ms: window.end_ms,
            joules: 12_345.678 + i as f64,
            wall_s: 3600.0,
            cpu_s: None,
            vcpus: Some(2),
            memory_mb: Some(4096),
            status: Status::Running,
            quality: RecordQuality {
                kind: Quality::Measured,
                meters: vec!["counter:libvirt_domain_info_energy_consumption_joules_total".into()],
                covered_s: None,
            },
            pue: None,
            ci_g: None,
            cfp_g: None,
            ci_covered_s: None,
            model: "libvirt-joules".into(),
            model_version: "0.1.0".into(),
            gpu_j: None,
            embodied_g: None,
            embodied_source: None,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new(Limits::default(), None).expect("runtime");
    let window = Window {
        start_ms: 1_748_736_000_000,
        end_ms: 1_748_739_600_000,
    };
    let records = records(window);
    let mut group = c.benchmark_group("deliver");
    group.sample_size(10);
    for name in ["jsonl", "caso-json", "apel-energy", "csv"] {
        let format = runtime.load_format(name).expect("builtin");
        let params: Vec<Param> = format
            .info()
            .params
            .iter()
            .map(|p| Param {
                name: p.name.clone(),
                value: p.default.clone().expect("defaults"),
            })
            .collect();
        let info = format.info().clone();
        group.bench_function(format!("{name}/100k-records"), |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("temp dir"),
                |dir| {
                    let state = StateDir::new(dir.path(), "bench", None);
                    let messenger = MessengerConfig::File {
                        directory: dir.path().join("out"),
                        mode: FileMode::default(),
                        name: None,
                    };
                    // As `run_window` renders: RENDER_CHUNK records per call,
                    // each payload spooled as it comes.
                    let mut writer = state.spool().begin(window, false).expect("spool");
                    for chunk in records.chunks(wattson::pipeline::RENDER_CHUNK) {
                        for payload in format.render(chunk, &params).expect("render") {
                            writer.write(0, &payload).expect("spool");
                        }
                    }
                    let spooled = writer
                        .finish(
                            records.len(),
                            &[Output {
                                name: "out",
                                format: &info.name,
                                extension: &info.extension,
                                media_type: &info.media_type,
                                messenger: &messenger,
                            }],
                        )
                        .expect("spool");
                    let mut file = File::new(dir.path().join("out"), FileMode::default(), None);
                    for n in 0..spooled.outputs[0].payloads {
                        let bytes = spooled.payload(0, n).expect("read");
                        file.deliver(&Payload {
                            bytes: &bytes,
                            extension: &info.extension,
                            media_type: &info.media_type,
                            journal: &spooled.journal(0, n),
                        })
                        .expect("deliver");
                        spooled.mark_done(0, n).expect("mark");
                    }
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(delivery, bench);
criterion_main!(delivery);
