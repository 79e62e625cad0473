//! Checks on what a plugin returned: the host trusts no answer it did not verify.

use super::limits::Limits;
use super::params::gpus_ignored;
use super::{Attribution, AttributionInput, Measurement, ModelInfo, Param};

/// GPU tolerance of a model that declares a `gpu` measurement and no
/// conservation law (the builtins' own).
const GPU_TOLERANCE: f64 = 1e-9;

/// Refuses results larger than the output cap.
pub(crate) fn output_size(bytes: usize, limits: &Limits) -> Result<(), String> {
    if bytes > limits.output_bytes() {
        return Err(format!(
            "{:.1} MiB of output, more than the {} MiB output limit",
            bytes as f64 / (1 << 20) as f64,
            limits.output_mib
        ));
    }
    Ok(())
}

/// The GPUs a model attributes: the `gpu` measurement its conservation law
/// names (or, without a law, the one it declares), unless its `gpu`
/// parameter is `ignore`.
struct GpuLaw<'a> {
    name: &'a str,
    /// E_h already counts G_h (a wall meter).
    in_meter: bool,
    tolerance: f64,
}

/// The `gpu` measurement whose GPUs the model attributes with `params`
/// (none: it attributes no GPUs, and its records carry no `gpu_j`).
pub(crate) fn gpu_measurement<'a>(info: &'a ModelInfo, params: &[Param]) -> Option<&'a str> {
    GpuLaw::of(info, params).map(|law| law.name)
}

impl<'a> GpuLaw<'a> {
    fn of(info: &'a ModelInfo, params: &[Param]) -> Option<Self> {
        if gpus_ignored(params) {
            return None;
        }
        match &info.conservation {
            Some(law) => law.gpu.as_deref().map(|name| GpuLaw {
                name,
                in_meter: law.gpu_in_meter,
                tolerance: law.tolerance,
            }),
            None => info.measurements.iter().find_map(|m| match m {
                Measurement::Gpu(g) => Some(GpuLaw {
                    name: &g.name,
                    in_meter: false,
                    tolerance: GPU_TOLERANCE,
                }),
                _ => None,
            }),
        }
    }
}

/// Every joule finite and non-negative; every GPU part within its joules,
/// and 0 where the model attributes no GPUs (no `gpu` measurement, none
/// named by its conservation law, or `gpu = "ignore"` in `params`); every
/// placement one of the input's, assigned to this model and listed once;
/// every host known; where the model attributes GPUs, per host: its
/// placements' GPU joules + its unattributed GPU joules = G_h, the sum of
/// the host's GPU readings; and, where the model declares conservation, per
/// host: its placements' joules + its unattributed energy = its reading ×
/// `factor` (1 but for 0.1.0 models with a factor parameter), plus G_h
/// where the meter does not count the GPUs (at least G_h where it does),
/// and no energy but GPU energy on a host without a reading.
pub(crate) fn attribution(
    info: &ModelInfo,
    input: &AttributionInput,
    result: &Attribution,
    factor: f64,
    params: &[Param],
) -> Result<(), String> {
    let placement_name = |i: usize| {
        let p = &input.placements[i];
        let vm = input
            .vms
            .get(p.vm as usize)
            .map_or("?", |v| v.uuid.as_str());
        match p.host.and_then(|h| input.hosts.get(h as usize)) {
            Some(host) => format!("placement {i} (VM `{vm}` on host `{host}`)"),
            None => format!("placement {i} (VM `{vm}`)"),
        }
    };
    let host_name = |h: usize| format!("host `{}`", input.hosts[h]);
    let gpu_law = GpuLaw::of(info, params);
    // Why a model that attributes no GPUs does not, for its refusal.
    let no_gpus = if gpu_law.is_some() {
        None
    } else if gpus_ignored(params) {
        Some("the model's `gpu` parameter is \"ignore\"")
    } else if info
        .measurements
        .iter()
        .any(|m| matches!(m, Measurement::Gpu(_)))
    {
        Some("the model's conservation law names no `gpu` measurement")
    } else {
        Some("the model declares no `gpu` measurement")
    };
    let mut seen = vec![false; input.placements.len()];
    let mut attributed = vec![0.0; input.hosts.len()];
    let mut attributed_gpu = vec![0.0; input.hosts.len()];
    for e in &result.placements {
        let i = e.placement as usize;
        let Some(placement) = input.placements.get(i) else {
            return Err(format!(
                "placement {i} is not one of the {} placements of the window",
                input.placements.len()
            ));
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("{} is listed more than once", placement_name(i)));
        }
        if !placement.assigned {
            return Err(format!(
                "{} is given to another model by the policy's rules",
                placement_name(i)
            ));
        }
        check_joules(|| placement_name(i), e.joules)?;
        check_gpu_joules(|| placement_name(i), e.gpu_joules, e.joules, no_gpus)?;
        match placement.host.map(|h| h as usize) {
            Some(h) if h < attributed.len() => {
                attributed[h] += e.joules;
                attributed_gpu[h] += e.gpu_joules;
            }
            // A GPU is a host's: GPU joules on no host escape its law.
            _ if e.gpu_joules > 0.0 => {
                return Err(format!(
                    "{} has {} GPU joules, but no host",
                    placement_name(i),
                    e.gpu_joules
                ));
            }
            _ => {}
        }
    }
    let mut unattributed = vec![0.0; input.hosts.len()];
    let mut unattributed_gpu = vec![0.0; input.hosts.len()];
    for e in &result.unattributed {
        let h = e.host as usize;
        let Some(slot) = unattributed.get_mut(h) else {
            return Err(format!(
                "unattributed energy for host {h}, which is not one of the {} hosts of the window",
                input.hosts.len()
            ));
        };
        check_joules(|| host_name(h), e.joules)?;
        check_gpu_joules(|| host_name(h), e.gpu_joules, e.joules, no_gpus)?;
        *slot += e.joules;
        unattributed_gpu[h] += e.gpu_joules;
    }
    // G_h: the host's GPU readings; 0 for a model that attributes no GPUs.
    let mut gpus = vec![0.0; input.hosts.len()];
    if let Some(law) = &gpu_law {
        for card in &input.gpus {
            if let Some(slot) = gpus.get_mut(card.host as usize) {
                *slot += card.energy.value;
            }
        }
        for (h, host) in input.hosts.iter().enumerate() {
            let got = attributed_gpu[h] + unattributed_gpu[h];
            if off(got, gpus[h]) > law.tolerance {
                return Err(format!(
                    "breaks GPU conservation on host `{host}`: placements {} J + unattributed {} J \
                     of GPU energy = {got} J, but its GPUs (`{}`) used {} J (tolerance {:e})",
                    attributed_gpu[h], unattributed_gpu[h], law.name, gpus[h], law.tolerance
                ));
            }
        }
    }
    let Some(law) = &info.conservation else {
        return Ok(());
    };
    let in_meter = gpu_law.as_ref().is_some_and(|g| g.in_meter);
    let Some(measured) = input
        .measurements
        .iter()
        .find(|m| m.name == law.measurement)
    else {
        return Err(format!(
            "it declares conservation against `{}`, which is not among its measurements",
            law.measurement
        ));
    };
    for (h, host) in input.hosts.iter().enumerate() {
        let got = attributed[h] + unattributed[h];
        let Some(reading) = measured.hosts.get(h).copied().flatten() else {
            // Without E_h, only the GPUs' energy (measured on its own) may be given.
            let beyond = got - gpus[h];
            if beyond > 0.0 && off(got, gpus[h]) > law.tolerance {
                return Err(format!(
                    "gives {beyond} J on host `{host}`, which has no reading of `{}`",
                    law.measurement
                ));
            }
            continue;
        };
        let meter = reading.value * factor;
        // A wall meter counts the GPUs: E_h, or G_h where the cards used
        // more than the meter saw (the model gives them G_h, the CPUs nothing).
        let expected = if in_meter {
            meter.max(gpus[h])
        } else {
            meter + gpus[h]
        };
        if off(got, expected) > law.tolerance {
            let of_gpus = match (gpu_law.is_some(), in_meter) {
                (false, _) => String::new(),
                (true, true) => format!(", which counts its GPUs' {} J", gpus[h]),
                (true, false) => format!(", plus its GPUs' {} J", gpus[h]),
            };
            return Err(format!(
                "breaks conservation on host `{host}`: placements {} J + unattributed {} J = {got} J, but `{}` is {meter} J{of_gpus} (tolerance {:e})",
                attributed[h], unattributed[h], law.measurement, law.tolerance
            ));
        }
    }
    Ok(())
}

/// |got − expected| relative to the larger of the two.
fn off(got: f64, expected: f64) -> f64 {
    let scale = expected.abs().max(got.abs()).max(f64::MIN_POSITIVE);
    (got - expected).abs() / scale
}

/// `what` names the VM or host, built only when there is something to report.
fn check_joules(what: impl FnOnce() -> String, joules: f64) -> Result<(), String> {
    if !joules.is_finite() {
        return Err(format!(
            "{} has {joules} joules (not a finite number)",
            what()
        ));
    }
    if joules < 0.0 {
        return Err(format!("{} has negative energy ({joules} J)", what()));
    }
    Ok(())
}

/// The GPU part of `joules`: finite, non-negative, at most `joules`, and 0
/// for a model that attributes no GPUs (0.1.0 and 0.2.0 ones included),
/// `no_gpus` saying why it does not.
fn check_gpu_joules(
    what: impl FnOnce() -> String,
    gpu_joules: f64,
    joules: f64,
    no_gpus: Option<&str>,
) -> Result<(), String> {
    if gpu_joules == 0.0 {
        return Ok(());
    }
    if let Some(why) = no_gpus {
        return Err(format!("{} has {gpu_joules} GPU joules, but {why}", what()));
    }
    if !gpu_joules.is_finite() || gpu_joules < 0.0 || gpu_joules > joules {
        return Err(format!(
            "{} has {gpu_joules} GPU joules, not a part of its {joules} J",
            what()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{
        Conservation, GpuReading, GpuSpec, HostEnergy, Measured, Placement, PlacementEnergy,
        Quality, Reading, UnattributedReason, Vm, Window,
    };

    /// Two hosts: `cmp-01` metered at 1000 J with VMs a (on it) and b
    /// (migrated from it to `cmp-02`, which has no reading); b's part on
    /// `cmp-01` is another rule's.
    fn input() -> AttributionInput {
        let vm = |uuid: &str| Vm {
            uuid: uuid.into(),
            vcpus: Some(2),
            memory_mb: None,
        };
        let placement = |vm, host, assigned| Placement {
            vm,
            host: Some(host),
            presence_s: 1800.0,
            cpu_s: Some(100.0),
            assigned,
        };
        AttributionInput {
            window: Window {
                start_ms: 0,
                end_ms: 3_600_000,
            },
            vms: vec![vm("a"), vm("b")],
            details: vec![],
            hosts: vec!["cmp-01".into(), "cmp-02".into()],
            placements: vec![
                placement(0, 0, true),
                placement(1, 0, false),
                placement(1, 1, true),
            ],
            measurements: vec![Measured {
                name: "host".into(),
                vms: vec![None, None],
                hosts: vec![
                    Some(Reading {
                        value: 1000.0,
                        span_s: 3600.0,
                        covered_s: 3600.0,
                    }),
                    None,
                ],
                placements: vec![],
            }],
            gpus: vec![],
        }
    }

    fn share_model() -> ModelInfo {
        ModelInfo {
            name: "share".into(),
            version: "1".into(),
            description: String::new(),
            measurements: vec![],
            params: vec![],
            conservation: Some(Conservation {
                measurement: "host".into(),
                tolerance: 1e-9,
                gpu: None,
                gpu_in_meter: false,
            }),
            quality: Quality::Measured,
        }
    }

    fn answer(placements: &[(u32, f64)], unattributed: &[(u32, f64)]) -> Attribution {
        Attribution {
            placements: placements
                .iter()
                .map(|&(placement, joules)| PlacementEnergy {
                    placement,
                    joules,
                    gpu_joules: 0.0,
                })
                .collect(),
            unattributed: unattributed
                .iter()
                .map(|&(host, joules)| HostEnergy {
                    host,
                    joules,
                    gpu_joules: 0.0,
                    reason: UnattributedReason::OtherModel,
                })
                .collect(),
        }
    }

    #[test]
    fn a_conserving_answer_passes() {
        // cmp-01: a 600 J + b's share 400 J left unattributed = 1000 J.
        let ok = answer(&[(0, 600.0)], &[(0, 400.0)]);
        assert_eq!(attribution(&share_model(), &input(), &ok, 1.0, &[]), Ok(()));
        // 0.1.0's factor parameter scales E_h.
        let scaled = answer(&[(0, 900.0)], &[(0, 600.0)]);
        assert_eq!(
            attribution(&share_model(), &input(), &scaled, 1.5, &[]),
            Ok(())
        );
    }

    #[test]
    fn breaking_the_contract_names_what_broke() {
        let err = |a: Attribution| attribution(&share_model(), &input(), &a, 1.0, &[]).unwrap_err();
        assert!(err(answer(&[(0, 600.0)], &[(0, 300.0)])).starts_with(
            "breaks conservation on host `cmp-01`: placements 600 J + unattributed 300 J"
        ));
        assert_eq!(
            err(answer(&[(1, 400.0), (0, 600.0)], &[])),
            "placement 1 (VM `b` on host `cmp-01`) is given to another model by the policy's rules"
        );
        assert_eq!(
            err(answer(&[(0, 600.0), (2, 5.0)], &[(0, 400.0)])),
            "gives 5 J on host `cmp-02`, which has no reading of `host`"
        );
        assert_eq!(
            err(answer(&[(0, 600.0), (0, 1.0)], &[])),
            "placement 0 (VM `a` on host `cmp-01`) is listed more than once"
        );
        assert_eq!(
            err(answer(&[(3, 1.0)], &[])),
            "placement 3 is not one of the 3 placements of the window"
        );
        assert_eq!(
            err(answer(&[], &[(2, 1.0)])),
            "unattributed energy for host 2, which is not one of the 2 hosts of the window"
        );
        assert_eq!(
            err(answer(&[(0, f64::NAN)], &[])),
            "placement 0 (VM `a` on host `cmp-01`) has NaN joules (not a finite number)"
        );
        assert_eq!(
            err(answer(&[], &[(0, -1.0)])),
            "host `cmp-01` has negative energy (-1 J)"
        );
    }

    /// `input()` with a GPU of 500 J on `cmp-01` and one of 70 J on
    /// `cmp-02` (no host reading there).
    fn input_with_gpus() -> AttributionInput {
        let card = |host, value| GpuReading {
            host,
            bus_id: format!("00000000:3B:00.{host}"),
            gpu_uuid: None,
            energy: Reading {
                value,
                span_s: 3600.0,
                covered_s: 3600.0,
            },
            counter: true,
            holdings: vec![],
        };
        AttributionInput {
            gpus: vec![card(0, 500.0), card(1, 70.0)],
            ..input()
        }
    }

    /// `share_model()` with a `gpu` measurement its law names.
    fn gpu_model(in_meter: bool) -> ModelInfo {
        let mut model = share_model();
        model.measurements.push(Measurement::Gpu(GpuSpec {
            name: "gpu".into(),
            max_gap_s: None,
        }));
        let law = model.conservation.as_mut().unwrap();
        law.gpu = Some("gpu".into());
        law.gpu_in_meter = in_meter;
        model
    }

    /// `answer` with GPU parts: placements' (index, GPU J) and the hosts'
    /// unheld GPU energy (host, J), left `no-vms` inside the joules.
    fn with_gpus(
        mut a: Attribution,
        placements: &[(usize, f64)],
        unheld: &[(u32, f64)],
    ) -> Attribution {
        for &(at, gpu) in placements {
            a.placements[at].gpu_joules = gpu;
        }
        for &(host, joules) in unheld {
            a.unattributed.push(HostEnergy {
                host,
                joules,
                gpu_joules: joules,
                reason: UnattributedReason::NoVms,
            });
        }
        a
    }

    fn choice(name: &str, word: &str) -> Param {
        Param {
            name: name.into(),
            value: crate::runtime::ParamValue::Choice(word.into()),
        }
    }

    #[test]
    fn gpu_joules_are_a_part_of_the_joules_of_a_model_that_attributes_gpus() {
        let gpu_at = |placement_gpu: f64, host_gpu: f64| {
            let mut a = answer(&[(0, 600.0)], &[(0, 400.0)]);
            a.placements[0].gpu_joules = placement_gpu;
            a.unattributed[0].gpu_joules = host_gpu;
            a
        };
        let err = |model: &ModelInfo, params: &[Param]| {
            attribution(model, &input(), &gpu_at(10.0, 0.0), 1.0, params).unwrap_err()
        };
        assert_eq!(
            err(&share_model(), &[]),
            "placement 0 (VM `a` on host `cmp-01`) has 10 GPU joules, but the model declares \
             no `gpu` measurement"
        );
        let mut unnamed = gpu_model(false);
        unnamed.conservation.as_mut().unwrap().gpu = None;
        assert!(
            err(&unnamed, &[])
                .ends_with("but the model's conservation law names no `gpu` measurement")
        );
        assert!(
            err(&gpu_model(false), &[choice("gpu", "ignore")])
                .ends_with("but the model's `gpu` parameter is \"ignore\"")
        );
        // Without GPU readings G_h = 0: any GPU joules break the GPU law.
        let check = |a: Attribution| attribution(&gpu_model(false), &input(), &a, 1.0, &[]);
        assert_eq!(
            check(gpu_at(0.0, 401.0)).unwrap_err(),
            "host `cmp-01` has 401 GPU joules, not a part of its 400 J"
        );
        assert_eq!(
            check(gpu_at(f64::NAN, 0.0)).unwrap_err(),
            "placement 0 (VM `a` on host `cmp-01`) has NaN GPU joules, not a part of its 600 J"
        );
        let mut hostless = input();
        hostless.placements[0].host = None;
        assert_eq!(
            attribution(&gpu_model(false), &hostless, &gpu_at(10.0, 0.0), 1.0, &[]).unwrap_err(),
            "placement 0 (VM `a`) has 10 GPU joules, but no host"
        );
        assert!(check(gpu_at(10.0, 0.0)).unwrap_err().starts_with(
            "breaks GPU conservation on host `cmp-01`: placements 10 J + unattributed 0 J of GPU \
             energy = 10 J, but its GPUs (`gpu`) used 0 J"
        ));
    }

    #[test]
    fn gpus_beside_the_meter_add_to_it_and_keep_their_own_law() {
        let model = gpu_model(false);
        let check = |a: &Attribution| attribution(&model, &input_with_gpus(), a, 1.0, &[]);
        // cmp-01: E_h 1000 J split a 600 J, b's 400 J elsewhere; its GPU's
        // 500 J: 420 J to a, 80 J unheld. cmp-02 (no reading): b holds its
        // GPU's 70 J all window.
        let (g1, a_gpu, g2) = (500.0, 420.0, 70.0);
        let ok = with_gpus(
            answer(&[(0, 600.0 + a_gpu), (2, g2)], &[(0, 400.0)]),
            &[(0, a_gpu), (1, g2)],
            &[(0, g1 - a_gpu)],
        );
        assert_eq!(check(&ok), Ok(()));
        // a's GPU part kept out of its joules: the total law is short by it.
        let short = with_gpus(
            answer(&[(0, 600.0), (2, g2)], &[(0, 400.0)]),
            &[(0, a_gpu), (1, g2)],
            &[(0, g1 - a_gpu)],
        );
        assert_eq!(
            check(&short).unwrap_err(),
            "breaks conservation on host `cmp-01`: placements 600 J + unattributed 480 J = 1080 \
             J, but `host` is 1000 J, plus its GPUs' 500 J (tolerance 1e-9)"
        );
        // A GPU's energy lost: the GPU law names the host and the numbers.
        let lost = with_gpus(
            answer(&[(0, 600.0 + a_gpu), (2, g2)], &[(0, 400.0)]),
            &[(0, a_gpu), (1, g2)],
            &[(0, g1 - a_gpu - 30.0)],
        );
        assert_eq!(
            check(&lost).unwrap_err(),
            "breaks GPU conservation on host `cmp-01`: placements 420 J + unattributed 50 J of \
             GPU energy = 470 J, but its GPUs (`gpu`) used 500 J (tolerance 1e-9)"
        );
        // On cmp-02, without a reading, only its GPU's energy may be given.
        let more = with_gpus(
            answer(&[(0, 600.0 + a_gpu), (2, g2 + 5.0)], &[(0, 400.0)]),
            &[(0, a_gpu), (1, g2)],
            &[(0, g1 - a_gpu)],
        );
        assert_eq!(
            check(&more).unwrap_err(),
            "gives 5 J on host `cmp-02`, which has no reading of `host`"
        );
    }

    #[test]
    fn a_wall_meter_counts_its_gpus() {
        let model = gpu_model(true);
        // cmp-01's wall 1000 J hold its GPU's 500 J: a gets 420 J of GPU and
        // 300 J of the 500 J left (b's 200 J elsewhere); 80 J unheld.
        let ok = with_gpus(
            answer(&[(0, 300.0 + 420.0), (2, 70.0)], &[(0, 200.0)]),
            &[(0, 420.0), (1, 70.0)],
            &[(0, 80.0)],
        );
        assert_eq!(
            attribution(&model, &input_with_gpus(), &ok, 1.0, &[]),
            Ok(())
        );
        // Counted twice (beside the meter's 1000 J): refused.
        let twice = with_gpus(
            answer(&[(0, 600.0 + 420.0), (2, 70.0)], &[(0, 400.0)]),
            &[(0, 420.0), (1, 70.0)],
            &[(0, 80.0)],
        );
        assert!(
            attribution(&model, &input_with_gpus(), &twice, 1.0, &[])
                .unwrap_err()
                .ends_with("but `host` is 1000 J, which counts its GPUs' 500 J (tolerance 1e-9)")
        );
        // Cards above the wall reading (1200 J of 1000 J): they get theirs,
        // the CPUs nothing.
        let mut above = input_with_gpus();
        above.gpus[0].energy.value = 1200.0;
        let capped = with_gpus(
            answer(&[(0, 1200.0), (2, 70.0)], &[]),
            &[(0, 1200.0), (1, 70.0)],
            &[],
        );
        assert_eq!(attribution(&model, &above, &capped, 1.0, &[]), Ok(()));
    }

    #[test]
    fn gpus_ignored_or_absent_leave_the_law_as_it_was() {
        // The plain answer with GPU readings in the input: a model that
        // ignores them, or declares none, is checked on E_h alone.
        let plain = answer(&[(0, 600.0)], &[(0, 400.0)]);
        let ignore = [choice("gpu", "ignore")];
        assert_eq!(
            attribution(&gpu_model(false), &input_with_gpus(), &plain, 1.0, &ignore),
            Ok(())
        );
        assert_eq!(
            attribution(&share_model(), &input_with_gpus(), &plain, 1.0, &[]),
            Ok(())
        );
        // A model without conservation that declares `gpu` keeps the GPU law.
        let mut direct = gpu_model(false);
        direct.conservation = None;
        let err = attribution(&direct, &input_with_gpus(), &plain, 1.0, &[]).unwrap_err();
        assert!(
            err.starts_with("breaks GPU conservation on host `cmp-01`"),
            "{err}"
        );
    }
}
