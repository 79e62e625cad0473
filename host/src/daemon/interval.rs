//! One interval between two samples as a model's input: the rules of
//! [`crate::energy`] on local counters (C1 of CPU time and RAPL, wrap-aware;
//! G1 of two power readings), one host, one placement per VM seen at both ends.

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
            // GPUs are not measured yet: the input's `gpus` stays empty.
            Measurement::IdlePower(_) | Measurement::Inventory | Measurement::Gpu(_) => {}
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
            gpus: Vec::new(),
        },
        details,
        wall_s: vec![dt; n],
        cpu_s: cpu.into_iter().map(Some).collect(),
        status: vec![Status::Running; n],
        raw_fetched: 0,
        unmeasured: Default::default(),
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
