//! What a window's inventory tells the operator: VMs the cloud says ran but
//! nothing measured, and windows in which no series of the model's VMs has
//! a sample (zero records and exit 0 is how a wrong metric name looks too).

use super::plan::Slot;
use crate::pipeline::PipelineError;
use crate::runtime::KeyKind;
use crate::sources::cloud::{CloudInventory, CloudVm};
use crate::window::Window;

/// VMs the cloud says ran in `window` that no series measured (`measured`
/// says which did, or have a record all the same) get no record
/// (never one of 0 J): one warning names how many and the first few; with
/// `--strict` the window fails. A VM ran if it was launched before the
/// window's end, was not terminated before its start, and is not shelved,
/// shut off, suspended or in error. Returns them.
pub(super) fn without_energy(
    cloud: &CloudInventory,
    measured: impl Fn(&str) -> bool,
    window: Window,
    strict: bool,
) -> Result<Vec<&CloudVm>, PipelineError> {
    const IDLE_STATES: [&str; 6] = [
        "SHELVED",
        "SHELVED_OFFLOADED",
        "SHUTOFF",
        "SUSPENDED",
        "ERROR",
        "PAUSED",
    ];
    let mut missing: Vec<&CloudVm> = cloud
        .vms
        .values()
        .filter(|vm| {
            !measured(vm.uuid.as_str())
                && vm.launched_ms.is_some_and(|t| t < window.end_ms)
                && vm.terminated_ms.is_none_or(|t| t > window.start_ms)
                && !IDLE_STATES.contains(&vm.status.as_str())
        })
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    missing.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    let named: Vec<String> = missing
        .iter()
        .take(3)
        .map(|vm| match (&vm.owner.name, &vm.host) {
            (Some(name), Some(host)) => format!("{} ({name}, on {host})", vm.uuid),
            (Some(name), None) => format!("{} ({name})", vm.uuid),
            _ => vm.uuid.clone(),
        })
        .collect();
    let message = format!(
        "{} VM(s) that {} says ran in {window} have no sample of the model's series, so no \
         record: {}{}. Check that the exporters run on their hosts and that [inventory] labels \
         match",
        missing.len(),
        cloud.endpoint,
        named.join(", "),
        if missing.len() > named.len() {
            ", …"
        } else {
            ""
        }
    );
    if strict {
        return Err(PipelineError::Unsupported(message));
    }
    tracing::warn!("{message}; --strict makes this an error");
    Ok(missing)
}

/// What to say of a window in which no series of the VM-keyed measurements
/// in `specs` has samples (none if there are none): zero records and exit 0
/// is how a wrong metric name looks too.
pub(super) fn no_vm_message(specs: &[Slot<'_>], window: Window, url: &str) -> Option<String> {
    let selectors: Vec<&str> = specs
        .iter()
        .filter_map(|spec| match spec {
            Slot::Counter(c) if c.key != KeyKind::Host => Some(c.selector.as_str()),
            Slot::Gauge(g) if g.key != KeyKind::Host => Some(g.selector.as_str()),
            _ => None,
        })
        .collect();
    (!selectors.is_empty()).then(|| {
        format!(
            "no VM in {window}, so no records: no series of `{}` at {url} has samples in it. If \
             VMs ran then, check the metric and label names against this Prometheus",
            selectors.join("`, `")
        )
    })
}
