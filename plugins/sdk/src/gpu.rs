//! GPUs in a model (`docs/ENERGY.md`, "GPUs"): each holding's energy × its
//! share to the VM placement that held the card, the rest of every card
//! (time nobody held it, slices nobody held) at its host as `no-vms`, so
//! that per host Σ placements' GPU joules + Σ unattributed GPU joules = G_h,
//! the sum of the host's GPU readings (the host checks it: `conservation.gpu`).
//!
//! A model declares the `gpu` measurement and parameter with [`declare`],
//! reads the parameter with [`Mode::from_params`], and adds [`attribute`]'s
//! [`Split`] to its answer with [`Split::add_to`].

use crate::{
    Attribution, AttributionInput, GpuMode, HostEnergy, ModelInfo, ParamSpec, Params,
    PlacementEnergy, UnattributedReason,
};

/// Name of a builtin model's `gpu` measurement.
pub const GPU: &str = "gpu";
/// Name of the `gpu` parameter.
pub const GPU_PARAM: &str = "gpu";

/// Relative excess of a card's held energy over its reading that is only
/// rounding (e.g. seven 1/7 MIG slices), not a share above 1.
const ROUNDING: f64 = 1e-9;

/// What a model does with GPUs: its `gpu` parameter.
///
/// With `ignore`, the host does not gather GPUs for the model (its `gpu`
/// measurement and GPU conservation are off, as for a model declaring none),
/// so the model behaves as one without GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each VM gets the energy of the GPUs it held (× its share), inside its
    /// joules and as their GPU part.
    Passthrough,
    /// GPUs are left alone: no GPU joules, no `gpu_j` on records.
    Ignore,
}

impl Mode {
    /// The words of the `gpu` parameter.
    pub const WORDS: [&'static str; 2] = ["passthrough", "ignore"];

    /// The policy's word.
    pub fn parse(word: &str) -> Result<Self, String> {
        match word {
            "passthrough" => Ok(Self::Passthrough),
            "ignore" => Ok(Self::Ignore),
            other => Err(format!("`gpu` is {other:?}, not one of {:?}", Self::WORDS)),
        }
    }

    /// The `gpu` parameter of a call; its default where the caller left it
    /// out (a test or tool calling the model with only the parameters it
    /// sets).
    pub fn from_params(params: &Params) -> Result<Self, String> {
        match params.get(GPU_PARAM) {
            None => Ok(Self::Passthrough),
            Some(_) => Self::parse(params.choice(GPU_PARAM)?),
        }
    }

    /// The `gpu` parameter (default `passthrough`).
    pub fn param() -> ParamSpec {
        ParamSpec::choice(
            GPU_PARAM,
            "What the model does with the GPUs of [gpu] (none without it): passthrough (each VM \
             gets its GPUs' energy times its share of the card, inside its joules and as gpu_j; \
             the rest stays at the host) or ignore (no GPU joules, no gpu_j)",
            &Self::WORDS,
            Some("passthrough"),
        )
    }
}

/// `info` with the `gpu` measurement ([`GPU`]) and the `gpu` parameter, and,
/// where `info` declares conservation, GPU conservation against [`GPU`].
pub fn declare(info: ModelInfo) -> ModelInfo {
    info.gpu(GPU).param(Mode::param())
}

/// The GPU energy of one window, split: what [`attribute`] returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    /// Each placement's GPU joules, in the order of the input's placements.
    pub placements: Vec<f64>,
    /// Each host's G_h: the sum of its GPU readings' energy (0 without GPUs).
    pub hosts: Vec<f64>,
    /// Each host's GPU energy held by no VM (unheld time, unassigned
    /// slices): unattributed, `no-vms`.
    pub unheld: Vec<f64>,
    /// Placements that held a vGPU or a MIG instance: their records are
    /// `estimated` (the host marks them so from the same input).
    pub shared: Vec<bool>,
    /// What was taken as bad data, one line per device; [`Split::add_to`]
    /// logs them.
    pub warnings: Vec<String>,
}

/// Splits every GPU of `input` between its holders as `mode` says: a
/// holding's whole-card `joules` × its `share` to its placement; the rest of
/// the card's reading to its host. Where a card's holders claim more than
/// the card (shares summing above 1, as a passthrough card listed by two
/// VMs), their parts are scaled down to the card's energy, with a warning
/// naming the device; the input gives the window's total per holding, so
/// the scaling is over the window, exact where such holders overlap for
/// all of their holdings.
///
/// `ignore` splits nothing (all zeros). A reading naming an unknown host, a
/// holding naming an unknown placement or one on another host, or a
/// negative or non-finite number is an error naming the device.
pub fn attribute(input: &AttributionInput, mode: Mode) -> Result<Split, String> {
    let mut split = Split {
        placements: vec![0.0; input.placements.len()],
        hosts: vec![0.0; input.hosts.len()],
        unheld: vec![0.0; input.hosts.len()],
        shared: vec![false; input.placements.len()],
        warnings: Vec::new(),
    };
    if mode == Mode::Ignore {
        return Ok(split);
    }
    for card in &input.gpus {
        let h = card.host as usize;
        let Some(host) = input.hosts.get(h) else {
            return Err(format!(
                "GPU {} is on host {h}, which is not one of the {} hosts of the window",
                card.bus_id,
                input.hosts.len()
            ));
        };
        let device = || format!("GPU {} of host `{host}`", card.bus_id);
        let energy = card.energy.value;
        if !(energy.is_finite() && energy >= 0.0) {
            return Err(format!("{} has {energy} J", device()));
        }
        let mut claimed = 0.0;
        for held in &card.holdings {
            let on_host = input
                .placements
                .get(held.placement as usize)
                .map(|p| p.host == Some(card.host));
            match on_host {
                None => {
                    return Err(format!(
                        "{} is held by placement {}, which is not one of the {} placements",
                        device(),
                        held.placement,
                        input.placements.len()
                    ));
                }
                Some(false) => {
                    return Err(format!(
                        "{} is held by placement {}, which is on another host",
                        device(),
                        held.placement
                    ));
                }
                Some(true) => {}
            }
            if !(held.share.is_finite() && held.share >= 0.0) {
                return Err(format!("{} is held with share {}", device(), held.share));
            }
            if !(held.joules.is_finite() && held.joules >= 0.0) {
                return Err(format!("{} is held for {} J", device(), held.joules));
            }
            claimed += held.share * held.joules;
        }
        let scale = if claimed > energy {
            if claimed > energy * (1.0 + ROUNDING) {
                split.warnings.push(format!(
                    "{}: its holders' shares sum above 1 ({claimed} J of its {energy} J claimed); \
                     their parts are scaled to the card's energy",
                    device()
                ));
            }
            energy / claimed
        } else {
            1.0
        };
        let mut given = 0.0;
        for held in &card.holdings {
            let part = held.share * held.joules * scale;
            let p = held.placement as usize;
            split.placements[p] += part;
            given += part;
            if matches!(held.mode, GpuMode::Vgpu | GpuMode::Mig) {
                split.shared[p] = true;
            }
        }
        split.hosts[h] += energy;
        split.unheld[h] += (energy - given).max(0.0);
    }
    Ok(split)
}

impl Split {
    /// Adds the split to `out`: each assigned placement's GPU joules inside
    /// its joules (a new entry where it has none) and as its GPU part; a
    /// placement the policy's rules give to another model leaves its GPU
    /// joules at the host (`other-model`); unheld energy `no-vms`. Logs the
    /// warnings.
    pub fn add_to(&self, input: &AttributionInput, out: &mut Attribution) {
        for warning in &self.warnings {
            crate::warn(warning);
        }
        let mut entry: Vec<Option<usize>> = vec![None; input.placements.len()];
        for (at, e) in out.placements.iter().enumerate() {
            if let Some(slot) = entry.get_mut(e.placement as usize) {
                *slot = Some(at);
            }
        }
        let mut elsewhere = vec![0.0; input.hosts.len()];
        for (i, &gpu) in self.placements.iter().enumerate() {
            if gpu <= 0.0 {
                continue;
            }
            let p = &input.placements[i];
            if !p.assigned {
                if let Some(slot) = p.host.and_then(|h| elsewhere.get_mut(h as usize)) {
                    *slot += gpu;
                }
                continue;
            }
            match entry[i] {
                Some(at) => {
                    let e = &mut out.placements[at];
                    e.joules += gpu;
                    e.gpu_joules += gpu;
                }
                None => out.placements.push(PlacementEnergy {
                    placement: i as u32,
                    joules: gpu,
                    gpu_joules: gpu,
                }),
            }
        }
        for (h, (&other, &unheld)) in elsewhere.iter().zip(&self.unheld).enumerate() {
            out.leave_gpu(h as u32, other, UnattributedReason::OtherModel);
            out.leave_gpu(h as u32, unheld, UnattributedReason::NoVms);
        }
    }
}

impl Attribution {
    /// Leaves `joules` of GPU energy of host `host` unattributed, for
    /// `reason` (nothing if 0).
    pub fn leave_gpu(&mut self, host: u32, joules: f64, reason: UnattributedReason) {
        if joules != 0.0 {
            self.unattributed.push(HostEnergy {
                host,
                joules,
                gpu_joules: joules,
                reason,
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{GpuHolding, GpuReading, Placement, Reading, Vm, Window};

    /// Relative closeness to 1e-9.
    pub(crate) fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs().max(1.0)
    }

    fn reading(value: f64) -> Reading {
        Reading {
            value,
            span_s: 3600.0,
            covered_s: 3600.0,
        }
    }

    fn holding(placement: u32, mode: GpuMode, share: f64, joules: f64) -> GpuHolding {
        GpuHolding {
            placement,
            mode,
            share,
            profile: None,
            held_s: 0.0,
            joules,
        }
    }

    fn card(host: u32, bus_id: &str, energy: f64, holdings: Vec<GpuHolding>) -> GpuReading {
        GpuReading {
            host,
            bus_id: bus_id.to_owned(),
            gpu_uuid: None,
            energy: reading(energy),
            counter: true,
            holdings,
        }
    }

    /// The worked example of `docs/ENERGY.md`'s GPU section (W = [0, 3600 s],
    /// 15 s scrapes from −10 s): host `gpu-01` (index 0) with cards A and B,
    /// VMs x (placement 0) and y (1); host `gpu-02` (1) with MIG card C, VMs p
    /// (2) and q (3); placement 4 is z, a VM on `gpu-01` with no GPU.
    pub(crate) fn worked_example() -> AttributionInput {
        let vm = |uuid: &str| Vm {
            uuid: uuid.to_owned(),
            vcpus: Some(4),
            memory_mb: Some(8192),
        };
        let placement = |vm: u32, host: u32| Placement {
            vm,
            host: Some(host),
            presence_s: 3600.0,
            cpu_s: Some(600.0 * f64::from(vm + 1)),
            assigned: true,
        };
        // A, 300 W: 240 pairs of 15 s × 300 W, all x's.
        let a = 240.0 * 15.0 * 300.0;
        // B, 200 W (3000 J a pair): x holds 120 pairs, pair [1790, 1805] is
        // nobody's, y holds 119 of which the driver reload's gives d = c =
        // 1.2e6 mJ = 1200 J.
        let pair_b = 15.0 * 200.0;
        let (x_b, unheld_b, y_b) = (120.0 * pair_b, pair_b, 118.0 * pair_b + 1200.0);
        // C, 250 W all window, G = 7 slices: p holds 3g.40gb, q 2g.20gb.
        let c = 250.0 * 3600.0;
        AttributionInput {
            window: Window {
                start_ms: 0,
                end_ms: 3_600_000,
            },
            vms: vec![vm("x"), vm("y"), vm("p"), vm("q"), vm("z")],
            details: Vec::new(),
            hosts: vec!["gpu-01".to_owned(), "gpu-02".to_owned()],
            placements: vec![
                placement(0, 0),
                placement(1, 0),
                placement(2, 1),
                placement(3, 1),
                placement(4, 0),
            ],
            measurements: Vec::new(),
            gpus: vec![
                card(
                    0,
                    "00000000:3B:00.0",
                    a,
                    vec![holding(0, GpuMode::Passthrough, 1.0, a)],
                ),
                card(
                    0,
                    "00000000:AF:00.0",
                    x_b + unheld_b + y_b,
                    vec![
                        holding(0, GpuMode::Passthrough, 1.0, x_b),
                        holding(1, GpuMode::Passthrough, 1.0, y_b),
                    ],
                ),
                card(
                    1,
                    "00000000:17:00.0",
                    c,
                    vec![
                        holding(2, GpuMode::Mig, 3.0 / 7.0, c),
                        holding(3, GpuMode::Mig, 2.0 / 7.0, c),
                    ],
                ),
            ],
        }
    }

    #[test]
    fn the_worked_example() {
        let split = attribute(&worked_example(), Mode::Passthrough).unwrap();
        // x: all of A (240 × 4500 J) and its 120 pairs of B (× 3000 J).
        assert_eq!(split.placements[0], 1_080_000.0 + 360_000.0);
        assert_eq!(split.placements[0], 1_440_000.0);
        // y: 118 pairs of 3000 J and the reload's 1200 J.
        assert_eq!(split.placements[1], 355_200.0);
        // p 3/7 and q 2/7 of C's 900 000 J; 2/7 stays at gpu-02.
        assert!(close(split.placements[2], 385_714.285_714_285_7));
        assert!(close(split.placements[3], 257_142.857_142_857_1));
        assert_eq!(split.placements[4], 0.0);
        // G_h: A + B on gpu-01, C on gpu-02.
        assert_eq!(split.hosts, vec![1_080_000.0 + 718_200.0, 900_000.0]);
        assert_eq!(split.hosts[0], 1_798_200.0);
        // B's pair nobody held; C's two free slices.
        assert_eq!(split.unheld[0], 3_000.0);
        assert!(close(split.unheld[1], 900_000.0 * 2.0 / 7.0));
        assert_eq!(split.shared, vec![false, false, true, true, false]);
        assert!(split.warnings.is_empty());
        // The GPU law, per host.
        for h in 0..2 {
            let given: f64 = (0..5)
                .filter(|&i| worked_example().placements[i].host == Some(h as u32))
                .map(|i| split.placements[i])
                .sum();
            assert!(close(given + split.unheld[h], split.hosts[h]), "host {h}");
        }
    }

    #[test]
    fn added_to_an_answer_inside_joules_and_at_the_host() {
        let input = worked_example();
        let split = attribute(&input, Mode::Passthrough).unwrap();
        let mut out = Attribution::default();
        // x had 100 J of CPU energy; y none (a new entry); q is another
        // model's: its GPU joules stay at gpu-02 as `other-model`.
        out.give(0, 100.0);
        let mut input = input;
        input.placements[3].assigned = false;
        split.add_to(&input, &mut out);
        let x = &out.placements[0];
        assert_eq!(
            (x.placement, x.joules, x.gpu_joules),
            (0, 1_440_100.0, 1_440_000.0)
        );
        let y = out.placements.iter().find(|e| e.placement == 1).unwrap();
        assert_eq!((y.joules, y.gpu_joules), (355_200.0, 355_200.0));
        assert!(
            !out.placements
                .iter()
                .any(|e| e.placement == 3 || e.placement == 4)
        );
        let left = |host: u32, reason: UnattributedReason| -> f64 {
            out.unattributed
                .iter()
                .filter(|e| e.host == host && e.reason == reason)
                .inspect(|e| assert_eq!(e.joules, e.gpu_joules))
                .map(|e| e.gpu_joules)
                .sum()
        };
        assert_eq!(left(0, UnattributedReason::NoVms), 3_000.0);
        assert!(close(
            left(1, UnattributedReason::OtherModel),
            900_000.0 * 2.0 / 7.0
        ));
        assert!(close(
            left(1, UnattributedReason::NoVms),
            900_000.0 * 2.0 / 7.0
        ));
    }

    #[test]
    fn shares_above_one_are_scaled_to_the_card_with_a_warning() {
        let mut input = worked_example();
        // Card A listed by x and y alike, all window, both passthrough.
        let a = input.gpus[0].energy.value;
        input.gpus[0]
            .holdings
            .push(holding(1, GpuMode::Passthrough, 1.0, a));
        let split = attribute(&input, Mode::Passthrough).unwrap();
        assert_eq!(split.placements[0], a / 2.0 + 360_000.0);
        assert_eq!(split.placements[1], a / 2.0 + 355_200.0);
        assert_eq!(split.unheld[0], 3_000.0);
        assert_eq!(split.warnings.len(), 1);
        assert!(
            split.warnings[0].starts_with(
                "GPU 00000000:3B:00.0 of host `gpu-01`: its holders' shares sum above 1"
            ),
            "{}",
            split.warnings[0]
        );
        // Seven 1/7 MIG slices are the whole card, not above it.
        let c = input.gpus[2].energy.value;
        input.gpus[2].holdings = (0..7)
            .map(|k| holding(2 + k % 2, GpuMode::Mig, 1.0 / 7.0, c))
            .collect();
        let split = attribute(&input, Mode::Passthrough).unwrap();
        assert_eq!(split.warnings.len(), 1);
        assert!(close(split.placements[2] + split.placements[3], c));
        assert!(split.unheld[1] >= 0.0 && split.unheld[1] < 1e-6);
    }

    #[test]
    fn ignore_splits_nothing_and_bad_data_is_named() {
        let split = attribute(&worked_example(), Mode::Ignore).unwrap();
        assert!(
            split
                .placements
                .iter()
                .chain(&split.hosts)
                .all(|&j| j == 0.0)
        );
        let mut input = worked_example();
        input.gpus[1].holdings[1].placement = 2;
        assert_eq!(
            attribute(&input, Mode::Passthrough).unwrap_err(),
            "GPU 00000000:AF:00.0 of host `gpu-01` is held by placement 2, which is on another host"
        );
        let mut input = worked_example();
        input.gpus[0].energy.value = f64::NAN;
        assert_eq!(
            attribute(&input, Mode::Passthrough).unwrap_err(),
            "GPU 00000000:3B:00.0 of host `gpu-01` has NaN J"
        );
        assert_eq!(Mode::parse("ignore"), Ok(Mode::Ignore));
        assert!(Mode::parse("vgpu").is_err());
    }
}
