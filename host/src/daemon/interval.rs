//! One interval between two samples as a model's input: the ENERGY.md
//! arithmetic on local counters (C1 of CPU time and RAPL, wrap-aware; G1 of
//! two power readings), one host, one placement per VM seen at both ends.

use std::collections::{BTreeMap, VecDeque};

use super::sample::{Counters, Sample};
use crate::pipeline::{self, Gathered, PipelineError};
use crate::policy::Policy;
use crate::runtime::{
    AttributionInput, Measured, Measurement, Placement, Reading, Status, Vm, Window as WitWindow,
};
use crate::sources::counter::delta;
use crate::sources::rapl::{self, Zone};
use crate::window::Window;

/// Default longest bridged gap between two power readings, seconds (G1).
const DEFAULT_MAX_GAP_S: f64 = 300.0;

/// How long idle-power history is kept: the least whole-minute average
/// power of the last hour is the daemon's `auto` idle power.
const IDLE_HISTORY_MS: i64 = 3_600_000;

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

/// Per meter measurement name: (start ms, end ms, joules) of recent intervals.
#[derive(Debug, Default)]
pub struct IdleHistory(BTreeMap<String, VecDeque<(i64, i64, f64)>>);

impl IdleHistory {
    fn push(&mut self, meter: &str, window: Window, joules: f64) {
        let history = self.0.entry(meter.to_owned()).or_default();
        history.push_back((window.start_ms, window.end_ms, joules));
        while history
            .front()
            .is_some_and(|&(_, end, _)| end < window.end_ms - IDLE_HISTORY_MS)
        {
            history.pop_front();
        }
    }

    /// The least average power over the whole minutes (UTC-aligned) the
    /// meter's intervals cover without a gap, watts; none before the first
    /// whole minute. Power is taken as constant within an interval.
    pub fn least_minute_watts(&self, meter: &str) -> Option<f64> {
        let history = self.0.get(meter)?;
        let first = history.front()?.0;
        let last = history.back()?.1;
        let mut least: Option<f64> = None;
        let mut minute = first.div_euclid(60_000) * 60_000;
        while minute + 60_000 <= last {
            let (start, end) = (minute, minute + 60_000);
            let (mut joules, mut covered_ms) = (0.0, 0i64);
            for &(s, e, j) in history.iter().filter(|&&(s, e, _)| e > start && s < end) {
                let overlap = e.min(end) - s.max(start);
                covered_ms += overlap;
                joules += j * overlap as f64 / (e - s) as f64;
            }
            if covered_ms == 60_000 {
                let watts = joules / 60.0;
                least = Some(least.map_or(watts, |l: f64| l.min(watts)));
            }
            minute = end;
        }
        least
    }
}

/// The model's input for the interval from `prev` to `cur` on `host`.
/// VMs are the running domains with CPU time at both ends (C1: a domain
/// that starts or stops inside the interval is counted from its next sample
/// on, or up to its last). `measurements` are the plan's.
pub fn gather(
    policy: &Policy,
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
    };
    let mut measured: Vec<Measured> = Vec::with_capacity(measurements.len());
    for m in measurements {
        match m {
            Measurement::Rapl(r) => {
                let chosen: Vec<Zone> = if r.zones.is_empty() {
                    rapl::host_zones(zones)
                } else {
                    zones
                        .iter()
                        .filter(|z| r.zones.iter().any(|n| zone_matches(&z.name, n)))
                        .cloned()
                        .collect()
                };
                let values = |c: &Counters| -> Option<Vec<u64>> {
                    chosen
                        .iter()
                        .map(|z| c.rapl_uj.get(&z.path).copied())
                        .collect()
                };
                let reading = match (chosen.is_empty(), values(prev), values(&cur.counters)) {
                    (false, Some(before), Some(after)) => {
                        let joules = rapl::joules_between(&chosen, &before, &after);
                        idle.push(&r.name, window, joules);
                        Some(whole(joules))
                    }
                    _ => None,
                };
                measured.push(host_reading(&r.name, reading));
            }
            Measurement::HostPower(h) => {
                let max_gap = h.max_gap_s.unwrap_or(DEFAULT_MAX_GAP_S);
                let reading = match (prev.power_w, cur.counters.power_w) {
                    (Some(p0), Some(p1)) if dt <= max_gap => {
                        let joules = (p0 + p1) / 2.0 * dt;
                        idle.push(&h.name, window, joules);
                        Some(whole(joules))
                    }
                    _ => None,
                };
                measured.push(host_reading(&h.name, reading));
            }
            Measurement::CpuTime(name) => measured.push(Measured {
                name: name.clone(),
                vms: cpu.iter().map(|&c| Some(whole(c))).collect(),
                hosts: vec![None],
            }),
            Measurement::IdlePower(_) | Measurement::Inventory => {}
            other => {
                return Err(PipelineError::Unsupported(
                    problems(std::slice::from_ref(other)).join("; "),
                ));
            }
        }
    }
    // Idle power once the meters of this interval are in the history.
    let listed = pipeline::StaticIdle::new(policy).watts(host);
    for m in measurements {
        if let Measurement::IdlePower(spec) = m {
            let watts = match listed {
                Some(watts) => Some(watts),
                None => match pipeline::idle_setting(spec)? {
                    Some(watts) => Some(watts),
                    None => idle.least_minute_watts(&spec.meter),
                },
            };
            measured.push(host_reading(&spec.name, watts.map(whole)));
        }
    }
    Ok(Gathered {
        input: AttributionInput {
            window: WitWindow {
                start_ms: window.start_ms,
                end_ms: window.end_ms,
            },
            vms,
            details: Vec::new(),
            hosts: vec![host.to_owned()],
            placements,
            measurements: measured,
        },
        details,
        wall_s: vec![dt; n],
        cpu_s: cpu.into_iter().map(Some).collect(),
        status: vec![Status::Running; n],
        raw_fetched: 0,
    })
}

/// Whether zone `name` (`package-0`, `dram`) is what a measurement names:
/// the zone itself, or its kind (`package`: every package zone).
fn zone_matches(name: &str, wanted: &str) -> bool {
    name == wanted
        || name
            .rsplit_once('-')
            .is_some_and(|(kind, index)| kind == wanted && index.parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start_s: i64, end_s: i64) -> Window {
        Window {
            start_ms: start_s * 1000,
            end_ms: end_s * 1000,
        }
    }

    #[test]
    fn idle_power_is_the_least_whole_minute_of_the_history() {
        let mut h = IdleHistory::default();
        // 10 s intervals from 5 s on; each at the power of its start time.
        let mut t = 5;
        while t < 185 {
            let watts = match t {
                ..120 => 100.0,
                120..150 => 70.0,
                _ => 90.0,
            };
            h.push("rapl", w(t, t + 10), watts * 10.0);
            t += 10;
        }
        // Minute [120, 180): the last 5 s of [115, 125) at 100 W, 30 s at
        // 70 W ([125, 155)), 25 s at 90 W; minute [60, 120) is all 100 W and
        // [0, 60) is not whole (the history starts at 5 s).
        let expected = (5.0 * 100.0 + 30.0 * 70.0 + 25.0 * 90.0) / 60.0;
        let got = h.least_minute_watts("rapl").unwrap();
        assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
        assert_eq!(h.least_minute_watts("ipmi"), None);
        // A gap: a minute not fully covered is skipped.
        let mut gap = IdleHistory::default();
        gap.push("m", w(60, 90), 3000.0);
        gap.push("m", w(95, 120), 250.0);
        assert_eq!(gap.least_minute_watts("m"), None);
    }

    #[test]
    fn zones_match_by_name_or_kind() {
        assert!(zone_matches("package-0", "package"));
        assert!(zone_matches("package-1", "package-1"));
        assert!(zone_matches("dram", "dram"));
        assert!(!zone_matches("package-0", "dram"));
        assert!(!zone_matches("psys", "package"));
    }
}
