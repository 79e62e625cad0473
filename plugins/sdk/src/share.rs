//! The share models of `docs/ENERGY.md#share-models`: a host's energy split
//! between its VMs by CPU time, with its idle energy kept at the host or
//! split by presence, vCPUs or memory. `rapl-share` and `ipmi-share` are this
//! split over different host meters; a site model can call it on its own.
//! GPUs (the `gpu` parameter) are added on top of the split ([`attribute`])
//! or, for a meter that already counts them, taken out of it first
//! ([`attribute_wall`]).

use crate::gpu::{self, Mode};
use crate::{
    Attribution, AttributionInput, IdlePowerSpec, Measured, Measurement, ModelInfo, ParamSpec,
    Params, UnattributedReason,
};

/// Name of the `idle` parameter.
pub const IDLE_PARAM: &str = "idle";
/// Name of the `idle_power` parameter.
pub const IDLE_POWER_PARAM: &str = "idle_power";
/// Name of a share model's host energy measurement.
pub const ENERGY: &str = "energy";
/// Name of a share model's idle power measurement.
pub const IDLE_POWER: &str = "idle_power";
/// Name of a share model's CPU-time measurement.
pub const CPU: &str = "cpu";

/// What a share model's `describe()` returns: the host meter `energy`
/// (given [`ENERGY`] as its name), CPU time, the idle power of that meter,
/// the `idle` and `idle_power` parameters, the `gpu` measurement and
/// parameter ([`gpu::declare`]), and conservation to 1e-9, GPUs included
/// (beside the meter; chain `.gpu_in_meter()` for a wall meter, and
/// attribute with [`attribute_wall`]).
pub fn model_info(
    name: &str,
    version: &str,
    description: &str,
    energy: impl FnOnce(&str) -> Measurement,
) -> ModelInfo {
    ModelInfo::new(name, version, description)
        .measurement(energy(ENERGY))
        .measurement(Measurement::CpuTime(CPU.to_owned()))
        .measurement(IdlePowerSpec::new(IDLE_POWER, ENERGY, "${idle_power}"))
        .param(Idle::param())
        .param(Idle::power_param())
        .conservation(ENERGY, 1e-9)
        .gpu(gpu::GPU)
        .param(Mode::param())
}

/// A share model's `attribute()` for a model described by [`model_info`]
/// whose meter does not count the GPUs (RAPL): [`split`] with the policy's
/// `idle`, and each VM's GPU energy added on top (`gpu = "passthrough"`).
pub fn attribute(input: &AttributionInput, params: &Params) -> Result<Attribution, String> {
    let gpus = gpu::attribute(input, Mode::from_params(params)?)?;
    let idle = Idle::parse(params.choice(IDLE_PARAM)?)?;
    let mut out = split(input, ENERGY, IDLE_POWER, idle)?;
    gpus.add_to(input, &mut out);
    Ok(out)
}

/// A share model's `attribute()` for a wall meter, which counts the GPUs
/// too (IPMI; declared with `.gpu_in_meter()`): with `gpu = "passthrough"`
/// each host's E_h − G_h is split as [`split`] does (G_h capped at E_h,
/// with a warning naming the hosts) and each VM gets its GPU energy on top,
/// so the host's total stays E_h.
pub fn attribute_wall(input: &AttributionInput, params: &Params) -> Result<Attribution, String> {
    let gpus = gpu::attribute(input, Mode::from_params(params)?)?;
    let idle = Idle::parse(params.choice(IDLE_PARAM)?)?;
    let energy = aligned(input, input.measured(ENERGY)?)?;
    let (less, capped) = without_gpus(energy, &gpus.hosts);
    if !capped.is_empty() {
        let hosts: Vec<&str> = capped.iter().map(|&h| input.hosts[h].as_str()).collect();
        crate::warn(&format!(
            "the GPUs of {} host(s) used more than the host's meter in this window: their GPU              energy is taken as all of it, and their VMs get no CPU energy: {}",
            hosts.len(),
            list(&hosts)
        ));
    }
    let mut out = split_measured(input, &less, IDLE_POWER, idle)?;
    gpus.add_to(input, &mut out);
    Ok(out)
}

/// `energy` with each host's reading less its GPU energy `gpus[h]` (capped
/// at the reading), and the hosts where it was capped.
fn without_gpus(energy: &Measured, gpus: &[f64]) -> (Measured, Vec<usize>) {
    let mut less = energy.clone();
    let mut capped = Vec::new();
    for (h, reading) in less.hosts.iter_mut().enumerate() {
        let (Some(reading), Some(&g)) = (reading.as_mut(), gpus.get(h)) else {
            continue;
        };
        if g > reading.value {
            capped.push(h);
        }
        reading.value = (reading.value - g).max(0.0);
    }
    (less, capped)
}

/// What happens to a host's idle energy I_h (`docs/ENERGY.md#share-models`' table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// No idle separation: E_h split by CPU time alone (Scaphandre-like).
    None,
    /// I_h stays at the host, unattributed (Kepler's ratio model).
    Host,
    /// I_h split by presence.
    Equal,
    /// I_h split by vCPUs × presence.
    Vcpus,
    /// I_h split by memory × presence.
    Memory,
}

impl Idle {
    /// The words of the `idle` parameter, in the order of `docs/ENERGY.md#share-models`' table.
    pub const WORDS: [&'static str; 5] = ["none", "host", "equal", "vcpus", "memory"];

    /// The policy's word.
    pub fn parse(word: &str) -> Result<Self, String> {
        Ok(match word {
            "none" => Self::None,
            "host" => Self::Host,
            "equal" => Self::Equal,
            "vcpus" => Self::Vcpus,
            "memory" => Self::Memory,
            other => return Err(format!("`idle` is {other:?}, not one of {:?}", Self::WORDS)),
        })
    }

    /// The `idle` parameter every share model declares (default `vcpus`).
    pub fn param() -> ParamSpec {
        ParamSpec::choice(
            IDLE_PARAM,
            "What happens to the host's idle energy: none (no idle separation, everything \
             split by CPU time), host (kept at the host, unattributed), equal, vcpus or memory \
             (split by presence, vCPUs x presence or memory x presence)",
            &Self::WORDS,
            Some("vcpus"),
        )
    }

    /// The `idle_power` parameter every share model declares: `fit` (the
    /// intercept of power against CPU utilisation, falling back to `auto`
    /// where the host's utilisation is unknown), `auto` (the least
    /// whole-minute average of the meter) or watts, default `fit`.
    pub fn power_param() -> ParamSpec {
        ParamSpec::choice(
            IDLE_POWER_PARAM,
            "Idle power of every host: \"fit\" (the default: the intercept at 0 % CPU of a \
             line of its power against its CPU utilisation, node_cpu_seconds_total or the \
             daemon's /proc/stat; the least minute where that is unknown), \"auto\" (the least \
             1-minute average power of its meter) or watts; [idle_power] host patterns in the \
             policy take precedence",
            &["fit", "auto"],
            Some("fit"),
        )
        .or_number()
        .min(0.0)
    }
}

/// Splits each host's energy (the host readings of measurement `energy`, in
/// joules) between the placements on it, by CPU time (`placement.cpu-s`),
/// with its idle energy P_idle × covered seconds (the host readings of
/// measurement `idle_power`, in watts) treated as `idle` says.
///
/// Every joule of every host with a reading is either given to a placement
/// or left unattributed with its reason, so Σ placements + unattributed =
/// E_h. Placements the policy's rules give to another model count in C_h and
/// the idle weights; their share stays unattributed (`other-model`).
///
/// Where `docs/ENERGY.md#share-models` is silent: a host whose idle power could not be measured
/// has I_h = 0 (all of E_h is dynamic), and an idle power above the host's
/// average power is capped at E_h; both are logged. A VM without a vCPU or
/// memory size weighs 0 in that split; when every VM on a host does, I_h
/// stays at the host. VMs on a host without an energy reading, or with no
/// host, get nothing (logged once per call).
pub fn split(
    input: &AttributionInput,
    energy: &str,
    idle_power: &str,
    idle: Idle,
) -> Result<Attribution, String> {
    split_measured(
        input,
        aligned(input, input.measured(energy)?)?,
        idle_power,
        idle,
    )
}

/// [`split`] of the host readings of `energy`.
fn split_measured(
    input: &AttributionInput,
    energy: &Measured,
    idle_power: &str,
    idle: Idle,
) -> Result<Attribution, String> {
    let idle_watts = match idle {
        Idle::None => None,
        _ => Some(aligned(input, input.measured(idle_power)?)?),
    };
    let mut on_host: Vec<Vec<usize>> = vec![Vec::new(); input.hosts.len()];
    let mut hostless = 0usize;
    for (i, p) in input.placements.iter().enumerate() {
        match p.host.and_then(|h| on_host.get_mut(h as usize)) {
            Some(list) => list.push(i),
            None => hostless += 1,
        }
    }

    let mut out = Attribution::default();
    let mut notes = Notes::default();
    for (h, placements) in on_host.iter().enumerate() {
        let host = h as u32;
        let Some(reading) = energy.hosts[h] else {
            if !placements.is_empty() {
                notes.unmetered.push(&input.hosts[h]);
            }
            continue;
        };
        let e_h = reading.value;
        if placements.is_empty() {
            out.leave(host, e_h, UnattributedReason::NoVms);
            continue;
        }
        let i_h = match idle_watts {
            None => 0.0,
            Some(m) => match m.hosts[h] {
                None => {
                    notes.no_idle.push(&input.hosts[h]);
                    0.0
                }
                Some(watts) => {
                    let i_h = watts.value * reading.covered_s;
                    if i_h > e_h {
                        notes.capped.push(&input.hosts[h]);
                        e_h
                    } else {
                        i_h
                    }
                }
            },
        };
        let d_h = e_h - i_h;
        let cpu = |i: usize| input.placements[i].cpu_s.unwrap_or(0.0).max(0.0);
        let c_h: f64 = placements.iter().map(|&i| cpu(i)).sum();
        let weight = |i: usize| {
            let p = &input.placements[i];
            let vm = &input.vms[p.vm as usize];
            p.presence_s
                * match idle {
                    Idle::Equal => 1.0,
                    Idle::Vcpus => vm.vcpus.map_or(0.0, f64::from),
                    Idle::Memory => vm.memory_mb.map_or(0.0, |m| m as f64),
                    Idle::None | Idle::Host => 0.0,
                }
        };
        let w_h: f64 = placements.iter().map(|&i| weight(i)).sum();
        // What is split by CPU time, and what by the idle weights.
        let (by_cpu, by_weight) = match idle {
            Idle::None => (e_h, 0.0),
            Idle::Host => {
                out.leave(host, i_h, UnattributedReason::Idle);
                (d_h, 0.0)
            }
            Idle::Equal | Idle::Vcpus | Idle::Memory if w_h > 0.0 => (d_h, i_h),
            Idle::Equal | Idle::Vcpus | Idle::Memory => {
                notes.unweighted.push(&input.hosts[h]);
                out.leave(host, i_h, UnattributedReason::Idle);
                (d_h, 0.0)
            }
        };
        let by_cpu = if c_h > 0.0 {
            by_cpu
        } else {
            out.leave(host, by_cpu, UnattributedReason::NoCpu);
            0.0
        };
        let mut elsewhere = 0.0;
        for &i in placements {
            let mut joules = 0.0;
            if by_cpu > 0.0 {
                joules += by_cpu * cpu(i) / c_h;
            }
            if by_weight > 0.0 {
                joules += by_weight * weight(i) / w_h;
            }
            if input.placements[i].assigned {
                out.give(i as u32, joules);
            } else {
                elsewhere += joules;
            }
        }
        out.leave(host, elsewhere, UnattributedReason::OtherModel);
    }
    notes.log(hostless, idle);
    Ok(out)
}

/// `measured`, checked to have one entry per VM and per host.
fn aligned<'a>(input: &AttributionInput, measured: &'a Measured) -> Result<&'a Measured, String> {
    if measured.hosts.len() != input.hosts.len() || measured.vms.len() != input.vms.len() {
        return Err(format!(
            "measurement `{}` has {} host and {} VM entries for {} hosts and {} VMs",
            measured.name,
            measured.hosts.len(),
            measured.vms.len(),
            input.hosts.len(),
            input.vms.len()
        ));
    }
    Ok(measured)
}

/// Up to five hosts, and how many more.
fn list(hosts: &[&str]) -> String {
    let shown: Vec<&str> = hosts.iter().take(5).copied().collect();
    let more = hosts.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Hosts that took a decision `docs/ENERGY.md#share-models` leaves open, logged once per call.
#[derive(Default)]
struct Notes<'a> {
    unmetered: Vec<&'a str>,
    no_idle: Vec<&'a str>,
    capped: Vec<&'a str>,
    unweighted: Vec<&'a str>,
}

impl Notes<'_> {
    fn log(&self, hostless: usize, idle: Idle) {
        if hostless > 0 {
            crate::warn(&format!(
                "{hostless} VM placement(s) have no host: they get no energy in this window \
                 (check [inventory] host_label against the CPU-time series)"
            ));
        }
        if !self.unmetered.is_empty() {
            crate::warn(&format!(
                "{} host(s) with VMs have no energy reading in this window, so their VMs get \
                 none: {}",
                self.unmetered.len(),
                list(&self.unmetered)
            ));
        }
        if !self.no_idle.is_empty() {
            crate::warn(&format!(
                "no idle power for {} host(s) (no whole minute measurable): all their energy is \
                 split by CPU time: {}",
                self.no_idle.len(),
                list(&self.no_idle)
            ));
        }
        if !self.capped.is_empty() {
            crate::warn(&format!(
                "the idle power of {} host(s) is above their average power in this window: their \
                 idle energy is capped at their energy: {}",
                self.capped.len(),
                list(&self.capped)
            ));
        }
        if !self.unweighted.is_empty() {
            let by = match idle {
                Idle::Memory => "a known memory size",
                Idle::Vcpus => "a known vCPU count",
                _ => "any presence",
            };
            crate::warn(&format!(
                "no VM on {} host(s) has {by}: their idle energy stays at the host: {}",
                self.unweighted.len(),
                list(&self.unweighted)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::tests::{close, worked_example};
    use crate::{Param, ParamValue, Reading};

    fn params(gpu: &str) -> Params {
        let choice = |name: &str, word: &str| Param {
            name: name.to_owned(),
            value: ParamValue::Choice(word.to_owned()),
        };
        Params::new(vec![
            choice(IDLE_PARAM, "none"),
            choice(gpu::GPU_PARAM, gpu),
        ])
    }

    /// The worked example with host meters: `gpu-01` read 3 000 000 J,
    /// `gpu-02` 1 500 000 J.
    fn metered() -> AttributionInput {
        let mut input = worked_example();
        let reading = |value: f64| {
            Some(Reading {
                value,
                span_s: 3600.0,
                covered_s: 3600.0,
            })
        };
        input.measurements.push(Measured {
            name: ENERGY.to_owned(),
            vms: vec![None; input.vms.len()],
            hosts: vec![reading(3_000_000.0), reading(1_500_000.0)],
            placements: Vec::new(),
        });
        input
    }

    /// (joules, GPU joules) of placement `i`, and the host's total.
    fn of(out: &Attribution, i: u32) -> (f64, f64) {
        let e = out.placements.iter().find(|e| e.placement == i).unwrap();
        (e.joules, e.gpu_joules)
    }

    fn host_total(input: &AttributionInput, out: &Attribution, h: u32) -> (f64, f64) {
        let mut total = (0.0, 0.0);
        for e in &out.placements {
            if input.placements[e.placement as usize].host == Some(h) {
                total = (total.0 + e.joules, total.1 + e.gpu_joules);
            }
        }
        for e in out.unattributed.iter().filter(|e| e.host == h) {
            total = (total.0 + e.joules, total.1 + e.gpu_joules);
        }
        total
    }

    #[test]
    fn a_wall_meter_splits_what_the_gpus_did_not_use() {
        let input = metered();
        let out = attribute_wall(&input, &params("passthrough")).unwrap();
        // gpu-01: G_h = A + B = 1 080 000 + 718 200; CPU time x 600, y 1200, z 3000 s.
        let g = 1_080_000.0 + 718_200.0;
        let cpu_part = 3_000_000.0 - g;
        assert_eq!(cpu_part, 1_201_800.0);
        let x = of(&out, 0);
        assert!(close(x.0, cpu_part * 600.0 / 4800.0 + 1_440_000.0));
        assert_eq!(x.1, 1_440_000.0);
        let y = of(&out, 1);
        assert!(close(y.0, cpu_part * 1200.0 / 4800.0 + 355_200.0));
        assert_eq!(y.1, 355_200.0);
        assert_eq!(of(&out, 4), (cpu_part * 3000.0 / 4800.0, 0.0));
        // Total = E_h (the wall counts the cards); GPU total = G_h.
        let (total, gpu) = host_total(&input, &out, 0);
        assert!(close(total, 3_000_000.0) && close(gpu, g));
        // gpu-02: C's 900 000 J out of 1 500 000; p 1800 s, q 2400 s of CPU.
        let cpu_part = 1_500_000.0 - 900_000.0;
        assert!(close(
            of(&out, 2).0,
            cpu_part * 1800.0 / 4200.0 + 900_000.0 * 3.0 / 7.0
        ));
        assert!(close(
            of(&out, 3).0,
            cpu_part * 2400.0 / 4200.0 + 900_000.0 * 2.0 / 7.0
        ));
        let (total, gpu) = host_total(&input, &out, 1);
        assert!(close(total, 1_500_000.0) && close(gpu, 900_000.0));
    }

    #[test]
    fn a_cpu_meter_gets_the_gpus_on_top() {
        let input = metered();
        let out = attribute(&input, &params("passthrough")).unwrap();
        let x = of(&out, 0);
        assert!(close(x.0, 3_000_000.0 * 600.0 / 4800.0 + 1_440_000.0));
        assert_eq!(x.1, 1_440_000.0);
        let (total, gpu) = host_total(&input, &out, 0);
        assert!(close(total, 3_000_000.0 + 1_798_200.0) && close(gpu, 1_798_200.0));
        let (total, gpu) = host_total(&input, &out, 1);
        assert!(close(total, 1_500_000.0 + 900_000.0) && close(gpu, 900_000.0));
    }

    #[test]
    fn ignore_and_no_gpus_are_the_split_alone() {
        let input = metered();
        // The generated type has no PartialEq: compared as printed.
        let alone = format!(
            "{:?}",
            split(&input, ENERGY, IDLE_POWER, Idle::None).unwrap()
        );
        let same = |got: Attribution| assert_eq!(format!("{got:?}"), alone);
        same(attribute(&input, &params("ignore")).unwrap());
        same(attribute_wall(&input, &params("ignore")).unwrap());
        let mut bare = input.clone();
        bare.gpus.clear();
        same(attribute(&bare, &params("passthrough")).unwrap());
        same(attribute_wall(&bare, &params("passthrough")).unwrap());
    }

    #[test]
    fn gpus_above_the_wall_reading_are_capped_at_it() {
        let input = metered();
        let mut energy = input.measured(ENERGY).unwrap().clone();
        let (less, capped) = without_gpus(&energy, &[3_500_000.0, 900_000.0]);
        assert_eq!(capped, vec![0]);
        assert_eq!(less.hosts[0].unwrap().value, 0.0);
        assert_eq!(less.hosts[1].unwrap().value, 600_000.0);
        energy.hosts[0] = None;
        let (less, capped) = without_gpus(&energy, &[3_500_000.0, 0.0]);
        assert!(capped.is_empty() && less.hosts[0].is_none());
    }
}
