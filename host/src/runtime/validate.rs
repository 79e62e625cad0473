//! Checks on what a plugin returned: the host trusts no answer it did not verify.

use std::collections::HashMap;

use super::bindings::{Attribution, AttributionInput, ModelInfo, Param, ParamValue};
use super::limits::Limits;

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

/// Every joule finite and non-negative, every uuid one of the input's VMs and
/// listed once, every host known, and the model's declared conservation law held.
pub(crate) fn attribution(
    info: &ModelInfo,
    input: &AttributionInput,
    params: &[Param],
    result: &Attribution,
) -> Result<(), String> {
    // Models usually answer in input order: follow a cursor, and build the
    // uuid index only when an answer leaves that order.
    let mut index: Option<HashMap<&str, usize>> = None;
    let mut cursor = 0;
    let mut seen = vec![false; input.vms.len()];
    let mut positions = Vec::with_capacity(result.vms.len());
    for vm in &result.vms {
        let position = if input.vms.get(cursor).is_some_and(|v| v.uuid == vm.uuid) {
            Some(cursor)
        } else {
            index
                .get_or_insert_with(|| {
                    input
                        .vms
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v.uuid.as_str(), i))
                        .collect()
                })
                .get(vm.uuid.as_str())
                .copied()
        };
        let Some(i) = position else {
            return Err(format!(
                "VM `{}` is not one of the {} VMs of the window",
                vm.uuid,
                input.vms.len()
            ));
        };
        cursor = i + 1;
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("VM `{}` is listed more than once", vm.uuid));
        }
        check_joules(|| format!("VM `{}`", vm.uuid), vm.joules)?;
        positions.push(i);
    }
    let hosts: HashMap<&str, usize> = input
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut unattributed = vec![0.0; input.hosts.len()];
    for host in &result.unattributed {
        let Some(&i) = hosts.get(host.host.as_str()) else {
            return Err(format!(
                "unattributed energy for unknown host `{}`",
                host.host
            ));
        };
        check_joules(|| format!("host `{}`", host.host), host.joules)?;
        unattributed[i] += host.joules;
    }
    let Some(law) = &info.conservation else {
        return Ok(());
    };
    if !(law.tolerance.is_finite() && (0.0..0.5).contains(&law.tolerance)) {
        return Err(format!(
            "its declared conservation tolerance {} is not a small non-negative number",
            law.tolerance
        ));
    }
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
    let factor = match &law.factor_param {
        None => 1.0,
        Some(name) => match params.iter().find(|p| &p.name == name).map(|p| &p.value) {
            Some(ParamValue::Number(x)) => *x,
            Some(ParamValue::Integer(x)) => *x as f64,
            _ => {
                return Err(format!(
                    "conservation factor parameter `{name}` is not a number"
                ));
            }
        },
    };
    let mut attributed = vec![0.0; input.hosts.len()];
    for (vm, &i) in result.vms.iter().zip(&positions) {
        if let Some(h) = input.vms[i].host.and_then(|h| usize::try_from(h).ok())
            && h < attributed.len()
        {
            attributed[h] += vm.joules;
        }
    }
    for (i, host) in input.hosts.iter().enumerate() {
        let Some(reading) = measured.hosts.get(i).copied().flatten() else {
            continue;
        };
        let expected = reading.value * factor;
        let got = attributed[i] + unattributed[i];
        let scale = expected.abs().max(got.abs()).max(f64::MIN_POSITIVE);
        if (got - expected).abs() / scale > law.tolerance {
            return Err(format!(
                "breaks conservation on host `{host}`: VMs {} J + unattributed {} J = {got} J, but {} × {factor} = {expected} J (tolerance {:e})",
                attributed[i], unattributed[i], law.measurement, law.tolerance
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
