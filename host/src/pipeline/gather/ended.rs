//! VMs that a window completes though nothing measured them in it: their
//! counters stopped in the lookback before its start, where the window
//! before called them `running` (`docs/ENERGY.md#record-status`). Each gets
//! a record of 0 J and no model runs for it.

use std::collections::BTreeMap;

use super::assemble::describe_vm;
use super::plan::GatherPlan;
use super::{KeyedResult, Readings};
use crate::energy::status::{self, Seen};
use crate::runtime::{KeyKind, Vm, VmDetails};
use crate::sources::libvirt::DomainState;
use crate::sources::prometheus::Labels;
use crate::window::Window;

/// A VM the window completes with no reading: its record's parts.
pub struct Ended {
    /// The VM.
    pub vm: Vm,
    /// What the inventory knows of it.
    pub details: VmDetails,
    /// The host its last series names (as the records name hosts).
    pub host: Option<String>,
    /// Seconds of the window it lived: 0, or where the cloud gives its
    /// lifetime, the part of the window before its termination.
    pub wall_s: f64,
    /// 0 where its CPU-time series stopped too (C1 has no pair), else none.
    pub cpu_s: Option<f64>,
}

/// The VMs of `readings` that no uuid-keyed measurement saw in `window`
/// (`seen` says which it saw) and whose uuid-keyed counters stopped at its
/// start, that the window completes ([`status::completed_at_start`]), in
/// uuid order.
pub fn ended(
    plan: &GatherPlan<'_>,
    readings: &Readings,
    seen: impl Fn(&str) -> bool,
    window: Window,
) -> Vec<Ended> {
    // Per VM: the labels of its series that stopped last, and when.
    let mut last: BTreeMap<&str, (&Labels, i64)> = BTreeMap::new();
    for result in readings.keyed.iter().filter(|r| r.key == KeyKind::Uuid) {
        for s in &result.stopped {
            let Some(uuid) = s.labels.get(&result.key_label) else {
                continue;
            };
            if seen(uuid) {
                continue;
            }
            let at = last.entry(uuid).or_insert((&s.labels, s.last_ms));
            if s.last_ms > at.1 {
                *at = (&s.labels, s.last_ms);
            }
        }
    }
    if last.is_empty() {
        return Vec::new();
    }
    let cpu: Option<&KeyedResult> = plan
        .resolved
        .cpu_name
        .and_then(|name| readings.keyed.iter().find(|r| r.name == name))
        .or(readings.implicit_cpu.as_ref());
    let stopped_cpu = |uuid: &str| {
        cpu.is_some_and(|r| {
            r.stopped
                .iter()
                .any(|s| s.labels.get(&r.key_label) == Some(uuid))
        })
    };
    let cloud = readings.cloud.as_ref();
    let lookback_ms = plan.client.config.lookback_secs as i64 * 1000;
    last.into_iter()
        .filter_map(|(uuid, (labels, last_ms))| {
            // The cloud lists every VM that lived in the window: one it
            // does not was terminated by its start (the window before
            // completed it) or is none of the cloud's.
            let lifetime = match cloud {
                Some(c) => {
                    let vm = c.vms.get(uuid)?;
                    Some((vm.launched_ms, vm.terminated_ms))
                }
                None => None,
            };
            let (vm, details) = describe_vm(plan, readings, uuid, labels);
            let seen = Seen {
                times: Some((last_ms, last_ms)),
                ended_ms: details.ended_ms,
                shut_off: readings
                    .domains
                    .get(uuid)
                    .is_some_and(|d| d.state == DomainState::ShutOff),
                lifetime,
            };
            if !status::completed_at_start(window, lookback_ms, seen) {
                return None;
            }
            let host = plan.host_of(labels).map(|key| {
                cloud
                    .and_then(|c| c.host_names.get(&key))
                    .cloned()
                    .unwrap_or(key)
            });
            Some(Ended {
                vm,
                details,
                host,
                wall_s: lifetime.map_or(0.0, |(launched, terminated)| {
                    status::lifetime_s(launched, terminated, window)
                }),
                cpu_s: stopped_cpu(uuid).then_some(0.0),
            })
        })
        .collect()
}
