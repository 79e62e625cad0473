//! Checks on what a plugin returned: the host trusts no answer it did not verify.

use super::limits::Limits;
use super::{Attribution, AttributionInput, Measurement, ModelInfo};

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

/// Every joule finite and non-negative; every GPU part within its joules,
/// and 0 where the model declares no `gpu` measurement; every placement one
/// of the input's, assigned to this model and listed once; every host
/// known; and, where the
/// model declares conservation, per host: its placements' joules + its
/// unattributed energy = its reading × `factor` (1 but for 0.1.0 models
/// with a factor parameter), and no energy on a host without a reading.
pub(crate) fn attribution(
    info: &ModelInfo,
    input: &AttributionInput,
    result: &Attribution,
    factor: f64,
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
    let has_gpu = info
        .measurements
        .iter()
        .any(|m| matches!(m, Measurement::Gpu(_)));
    let mut seen = vec![false; input.placements.len()];
    let mut attributed = vec![0.0; input.hosts.len()];
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
        check_gpu_joules(|| placement_name(i), e.gpu_joules, e.joules, has_gpu)?;
        if let Some(slot) = placement.host.and_then(|h| attributed.get_mut(h as usize)) {
            *slot += e.joules;
        }
    }
    let mut unattributed = vec![0.0; input.hosts.len()];
    for e in &result.unattributed {
        let h = e.host as usize;
        let Some(slot) = unattributed.get_mut(h) else {
            return Err(format!(
                "unattributed energy for host {h}, which is not one of the {} hosts of the window",
                input.hosts.len()
            ));
        };
        check_joules(|| host_name(h), e.joules)?;
        check_gpu_joules(|| host_name(h), e.gpu_joules, e.joules, has_gpu)?;
        *slot += e.joules;
    }
    let Some(law) = &info.conservation else {
        return Ok(());
    };
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
            if got > 0.0 {
                return Err(format!(
                    "gives {got} J on host `{host}`, which has no reading of `{}`",
                    law.measurement
                ));
            }
            continue;
        };
        let expected = reading.value * factor;
        let scale = expected.abs().max(got.abs()).max(f64::MIN_POSITIVE);
        if (got - expected).abs() / scale > law.tolerance {
            return Err(format!(
                "breaks conservation on host `{host}`: placements {} J + unattributed {} J = {got} J, but `{}` is {expected} J (tolerance {:e})",
                attributed[h], unattributed[h], law.measurement, law.tolerance
            ));
        }
    }
    Ok(())
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
/// for a model without a `gpu` measurement (0.1.0 and 0.2.0 ones included).
fn check_gpu_joules(
    what: impl FnOnce() -> String,
    gpu_joules: f64,
    joules: f64,
    has_gpu: bool,
) -> Result<(), String> {
    if gpu_joules == 0.0 {
        return Ok(());
    }
    if !has_gpu {
        return Err(format!(
            "{} has {gpu_joules} GPU joules, but the model declares no `gpu` measurement",
            what()
        ));
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
        Conservation, GpuSpec, HostEnergy, Measured, Placement, PlacementEnergy, Quality, Reading,
        UnattributedReason, Vm, Window,
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
        assert_eq!(attribution(&share_model(), &input(), &ok, 1.0), Ok(()));
        // 0.1.0's factor parameter scales E_h.
        let scaled = answer(&[(0, 900.0)], &[(0, 600.0)]);
        assert_eq!(attribution(&share_model(), &input(), &scaled, 1.5), Ok(()));
    }

    #[test]
    fn breaking_the_contract_names_what_broke() {
        let err = |a: Attribution| attribution(&share_model(), &input(), &a, 1.0).unwrap_err();
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

    #[test]
    fn gpu_joules_are_a_part_of_the_joules_of_a_model_that_declares_gpu() {
        let with_gpu = |placement_gpu: f64, host_gpu: f64| {
            let mut a = answer(&[(0, 600.0)], &[(0, 400.0)]);
            a.placements[0].gpu_joules = placement_gpu;
            a.unattributed[0].gpu_joules = host_gpu;
            a
        };
        let err = attribution(&share_model(), &input(), &with_gpu(10.0, 0.0), 1.0).unwrap_err();
        assert_eq!(
            err,
            "placement 0 (VM `a` on host `cmp-01`) has 10 GPU joules, but the model declares \
             no `gpu` measurement"
        );
        let mut gpu_model = share_model();
        gpu_model.measurements.push(Measurement::Gpu(GpuSpec {
            name: "gpu".into(),
            max_gap_s: None,
        }));
        let check = |a: Attribution| attribution(&gpu_model, &input(), &a, 1.0);
        assert_eq!(check(with_gpu(600.0, 100.0)), Ok(()));
        assert_eq!(
            check(with_gpu(0.0, 401.0)).unwrap_err(),
            "host `cmp-01` has 401 GPU joules, not a part of its 400 J"
        );
        assert_eq!(
            check(with_gpu(f64::NAN, 0.0)).unwrap_err(),
            "placement 0 (VM `a` on host `cmp-01`) has NaN GPU joules, not a part of its 600 J"
        );
    }
}
