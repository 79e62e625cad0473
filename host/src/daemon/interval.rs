//! One interval between two samples as a model's input: the rules of
//! [`crate::energy`] on local counters (C1 of CPU time and RAPL, wrap-aware;
//! G1 of two power readings; each GPU's counter or power with the VMs holding
//! it at both ends), one host, one placement per VM seen at both ends.

use super::gpu;
use super::idle::IdleHistory;
use super::sample::{Counters, Sample};
use crate::energy::{self, counter::delta, gauge::two_point};
use crate::pipeline::{self, Gathered, IdleSetting, PipelineError, StaticIdle};
use crate::runtime::{AttributionInput, Measured, Measurement, Placement, Reading, Status, Vm};
use crate::sources::proc_stat;
use crate::sources::rapl::{self, Zone};
use crate::window::Window;

/// What the daemon can measure locally, and what it cannot: models reading
/// Prometheus series are refused, naming the measurement.
pub fn problems(measurements: &[Measurement]) -> Vec<String> {
    let meter = |name: &str| {
        measurements.iter().any(|m| match m {
            Measurement::Rapl(r) => r.name == name,
            Measurement::HostPower(h) => h.name == name,
            _ => false,
        })
    };
    measurements
        .iter()
        .filter_map(|m| {
            let (name, what) = match m {
                Measurement::Counter(c) => (&c.name, format!("counter `{}`", c.selector)),
                Measurement::Gauge(g) => (&g.name, format!("gauge `{}`", g.selector)),
                Measurement::Template(t) => (&t.name, "a PromQL template".to_owned()),
                Measurement::IdlePower(spec) if !meter(&spec.meter) => {
                    return Some(format!(
                        "measurement `{}` (idle-power) reads meter `{}`, which the daemon does not \
                         read locally: only rapl and host-power meters are local",
                        spec.name, spec.meter
                    ));
                }
                _ => return None,
            };
            Some(format!(
                "measurement `{name}` ({what}) is read from Prometheus, which the daemon does not \
                 query: it reads only libvirt, RAPL powercap and IPMI. Use a model whose \
                 measurements are local (rapl-share, ipmi-share, tdp-estimate), or run this \
                 model with `wattson extract`"
            ))
        })
        .collect()
}

/// The model's input for the interval from `prev` to `cur` on `host`.
/// VMs are the running domains with CPU time at both ends (C1: a domain
/// that starts or stops inside the interval is counted from its next sample
/// on, or up to its last). `measurements` are the plan's.
pub fn gather(
    static_idle: &StaticIdle,
    measurements: &[Measurement],
    host: &str,
    zones: &[Zone],
    prev: &Counters,
    cur: &Sample,
    idle: &mut IdleHistory,
) -> Result<Gathered, PipelineError> {
    let window = Window {
        start_ms: prev.at_ms,
        end_ms: cur.counters.at_ms,
    };
    let dt = window.len_ms() as f64 / 1000.0;
    // The host's CPU utilisation in the interval, for `fit`.
    let utilisation = prev
        .cpu_jiffies
        .zip(cur.counters.cpu_jiffies)
        .and_then(|(a, b)| proc_stat::utilisation(a, b));
    let whole = |value: f64| Reading {
        value,
        span_s: dt,
        covered_s: dt,
    };
    let mut vms = Vec::new();
    let mut details = Vec::new();
    let mut cpu = Vec::new();
    for domain in cur.domains.iter().filter(|d| d.state.is_active()) {
        let (Some(&before), Some(&after)) = (
            prev.cpu_s.get(&domain.uuid),
            cur.counters.cpu_s.get(&domain.uuid),
        ) else {
            continue;
        };
        vms.push(Vm {
            uuid: domain.uuid.clone(),
            vcpus: Some(domain.vcpus),
            memory_mb: Some(domain.memory_mb),
        });
        details.push(pipeline::domain_details(domain));
        cpu.push(delta(before, after, None));
    }
    let n = vms.len();
    let wants_cpu = measurements
        .iter()
        .any(|m| matches!(m, Measurement::CpuTime(_)));
    let placements = (0..n)
        .map(|i| Placement {
            vm: i as u32,
            host: Some(0),
            presence_s: dt,
            cpu_s: wants_cpu.then_some(cpu[i]),
            assigned: true,
        })
        .collect();
    let host_reading = |name: &str, reading: Option<Reading>| Measured {
        name: name.to_owned(),
        vms: vec![None; n],
        hosts: vec![reading],
        placements: Vec::new(),
    };
    let mut measured: Vec<Measured> = Vec::with_capacity(measurements.len());
    let mut gpus = Vec::new();
    for m in measurements {
        match m {
            Measurement::Rapl(r) => {
                let chosen = rapl::host_zones(zones, &r.zones);
                let values = |c: &Counters| -> Option<Vec<u64>> {
                    chosen
                        .iter()
                        .map(|z| c.rapl_uj.get(&z.path).copied())
                        .collect()
                };
                let reading = match (chosen.is_empty(), values(prev), values(&cur.counters)) {
                    (false, Some(before), Some(after)) => {
                        let joules = rapl::joules_between(
                            &chosen,
                            &before,
                            &after,
                            window.len_ms(),
                            cur.counters.boot_since(prev),
                        );
                        // As in extract, a minute in which a zone drops is
                        // no idle minute: the interval is left out.
                        if before.iter().zip(&after).all(|(b, a)| a >= b) {
                            idle.push(&r.name, window, joules, utilisation);
                        }
                        Some(whole(joules))
                    }
                    _ => None,
                };
                measured.push(host_reading(&r.name, reading));
            }
            Measurement::HostPower(h) => {
                let reading = wall_joules(prev, &cur.counters, h.max_gap_s).map(|joules| {
                    idle.push(&h.name, window, joules, utilisation);
                    whole(joules)
                });
                measured.push(host_reading(&h.name, reading));
            }
            Measurement::CpuTime(name) => measured.push(Measured {
                name: name.clone(),
                vms: cpu.iter().map(|&c| Some(whole(c))).collect(),
                hosts: vec![None],
                // One placement per VM, in VM order.
                placements: cpu.iter().map(|&c| Some(whole(c))).collect(),
            }),
            // Each card with its holders, from `[gpu]` (none without it).
            Measurement::Gpu(g) => {
                let placements: Vec<&str> = vms.iter().map(|v| v.uuid.as_str()).collect();
                gpus = gpu::readings(
                    &gpu::ticks(prev, &cur.counters, g.max_gap_s),
                    &placements,
                    dt,
                );
            }
            Measurement::IdlePower(_) | Measurement::Inventory => {}
            other => {
                return Err(PipelineError::Unsupported(
                    problems(std::slice::from_ref(other)).join("; "),
                ));
            }
        }
    }
    // Idle power once the meters of this interval are in the history.
    let listed = static_idle.watts(host);
    for m in measurements {
        if let Measurement::IdlePower(spec) = m {
            let learned = |idle: &mut IdleHistory, fit: bool| {
                let found = if fit {
                    idle.fit(&spec.meter)
                } else {
                    idle.least(&spec.meter)
                };
                // Before the first whole minute: 0 (all energy by CPU
                // time), said once rather than by the model every interval.
                found.map_or_else(|| idle.not_yet(&spec.meter), |i| i.watts)
            };
            let watts = match (listed, pipeline::idle_setting(spec)?) {
                (Some(watts), _) | (None, IdleSetting::Watts(watts)) => watts,
                (None, IdleSetting::Auto) => learned(idle, false),
                (None, IdleSetting::Fit) => learned(idle, true),
            };
            measured.push(host_reading(&spec.name, Some(whole(watts))));
        }
    }
    Ok(Gathered {
        input: AttributionInput {
            window: window.into(),
            vms,
            details: Vec::new(),
            hosts: vec![host.to_owned()],
            placements,
            measurements: measured,
            gpus,
        },
        details,
        wall_s: vec![dt; n],
        cpu_s: cpu.into_iter().map(Some).collect(),
        status: vec![Status::Running; n],
        raw_fetched: 0,
        unmeasured: Default::default(),
        // The daemon's status is per ship window, from its intervals.
        ended: Vec::new(),
    })
}

/// The wall-power meter's joules between two samples: G1 of the two
/// readings, none across a gap longer than `max_gap_s` (default
/// [`energy::DEFAULT_MAX_GAP_S`]). The models' input and the exported meter
/// counter both take it from here, so they agree.
pub fn wall_joules(prev: &Counters, cur: &Counters, max_gap_s: Option<f64>) -> Option<f64> {
    two_point(
        prev.power_w?,
        prev.at_ms,
        cur.power_w?,
        cur.at_ms,
        energy::max_gap_ms(max_gap_s),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::daemon::gpu::{Card, Held};
    use crate::policy::{Policy, Source};
    use crate::runtime::{GpuHolding, GpuMode, GpuReading, GpuSpec};
    use crate::sources::gpu::Mode;
    use crate::sources::libvirt::{CloudMetadata, Domain, DomainState};

    fn domain(uuid: &str) -> Domain {
        Domain {
            uuid: uuid.into(),
            name: format!("instance-{uuid}"),
            state: DomainState::Running,
            vcpus: 2,
            memory_mb: 2048,
            metadata: CloudMetadata::None,
            memory_use: None,
            cpu_s: None,
        }
    }

    /// A tick of 15 s: card A held by v (passthrough) at both ends, card B
    /// half-held by u (a vGPU listed only at the end: nobody's this tick)
    /// and by w, which has no CPU time at the start (no placement: its
    /// part stays at the host).
    #[test]
    fn the_gpus_input_gives_each_card_and_its_holders_at_both_ends() {
        let policy = Policy::parse(Source::new(
            Path::new("p.toml"),
            "[site]\nname = \"S\"\ncompute_service = \"c\"\n[inventory]\nlibvirt_uri = \"test:///default\"\n[model]\nplugin = \"rapl-share\"\n".to_owned(),
        ))
        .unwrap();
        let (a, b) = ("00000000:3B:00.0", "00000000:AF:00.0");
        let card = |mj: Option<f64>, w: f64| Card {
            model: None,
            energy_mj: mj,
            power_w: Some(w),
            gpu_uuid: Some(format!("GPU-{w}")),
        };
        let pass = |bus: &str| Held {
            bus_id: bus.into(),
            mode: Mode::Passthrough,
            share: 1.0,
            profile: None,
        };
        let vgpu = Held {
            bus_id: b.into(),
            mode: Mode::Vgpu,
            share: 0.5,
            profile: Some("GRID A100-40C".into()),
        };
        let prev = Counters {
            at_ms: 1_000,
            cpu_s: [("u".into(), 1.0), ("v".into(), 1.0)].into(),
            gpus: [
                (a.into(), card(Some(5.0e6), 300.0)),
                (b.into(), card(None, 100.0)),
            ]
            .into(),
            gpu_held: [
                ("v".into(), vec![pass(a)]),
                ("w".into(), vec![vgpu.clone()]),
            ]
            .into(),
            ..Counters::default()
        };
        let cur = Sample {
            counters: Counters {
                at_ms: 16_000,
                cpu_s: [("u".into(), 2.0), ("v".into(), 3.0), ("w".into(), 1.0)].into(),
                gpus: [
                    (a.into(), card(Some(9.5e6), 300.0)),
                    (b.into(), card(None, 140.0)),
                ]
                .into(),
                gpu_held: [
                    ("u".into(), vec![vgpu.clone()]),
                    ("v".into(), vec![pass(a)]),
                    ("w".into(), vec![vgpu.clone()]),
                ]
                .into(),
                ..Counters::default()
            },
            domains: vec![domain("u"), domain("v"), domain("w")],
            ..Sample::default()
        };
        let measurements = [
            Measurement::CpuTime("cpu".into()),
            Measurement::Gpu(GpuSpec {
                name: "gpu".into(),
                max_gap_s: None,
            }),
        ];
        let gathered = gather(
            &StaticIdle::new(&policy),
            &measurements,
            "cmp-01",
            &[],
            &prev,
            &cur,
            &mut IdleHistory::default(),
        )
        .unwrap();
        let whole = |value: f64| Reading {
            value,
            span_s: 15.0,
            covered_s: 15.0,
        };
        let want = vec![
            GpuReading {
                host: 0,
                bus_id: a.into(),
                gpu_uuid: Some("GPU-300".into()),
                energy: whole(4500.0),
                counter: true,
                holdings: vec![GpuHolding {
                    placement: 1,
                    mode: GpuMode::Passthrough,
                    share: 1.0,
                    profile: None,
                    held_s: 15.0,
                    joules: 4500.0,
                }],
            },
            GpuReading {
                host: 0,
                bus_id: b.into(),
                gpu_uuid: Some("GPU-140".into()),
                energy: whole((100.0 + 140.0) / 2.0 * 15.0),
                counter: false,
                holdings: vec![],
            },
        ];
        assert_eq!(gathered.input.gpus, want);
        let uuids: Vec<&str> = gathered.input.vms.iter().map(|v| v.uuid.as_str()).collect();
        assert_eq!(uuids, ["u", "v"]);

        // Without a `gpu` measurement, no GPUs.
        let gathered = gather(
            &StaticIdle::new(&policy),
            &measurements[..1],
            "cmp-01",
            &[],
            &prev,
            &cur,
            &mut IdleHistory::default(),
        )
        .unwrap();
        assert!(gathered.input.gpus.is_empty());
    }
}
