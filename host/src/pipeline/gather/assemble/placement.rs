//! Each VM's placements (`docs/ENERGY.md#placements`): one per host its
//! series name, and a VM-keyed measurement's readings shared out among them.

use super::super::SeriesReading;
use super::add;
use crate::energy::status::presence_s;
use crate::runtime::{Placement, Reading};
use crate::window::Window;

/// The index of each VM's first placement in `placements` (grouped by VM in
/// VM order, at least one each), and one past the last placement at the end.
pub(super) fn first_placements(placements: &[Placement], vms: usize) -> Vec<usize> {
    let mut first = vec![0; vms + 1];
    for p in placements {
        if let Some(next) = first.get_mut(p.vm as usize + 1) {
            *next += 1;
        }
    }
    for i in 1..first.len() {
        first[i] += first[i - 1];
    }
    first
}

/// A VM-keyed measurement per placement (`docs/ENERGY.md#live-migration`):
/// each of its `series` (VM index, reading) counts in the VM's placement on
/// the host the series names (`host_of`, asked only of VMs with several
/// placements), else in the VM's first placement, so that a VM's
/// placements add up to its reading.
pub(super) fn per_placement<'s>(
    placements: &[Placement],
    first: &[usize],
    series: impl Iterator<Item = (usize, &'s SeriesReading)>,
    host_of: impl Fn(&SeriesReading) -> Option<u32>,
) -> Vec<Option<Reading>> {
    let mut out: Vec<Option<Reading>> = vec![None; placements.len()];
    for (vm, s) in series {
        let (Some(&from), Some(&to)) = (first.get(vm), first.get(vm + 1)) else {
            continue;
        };
        let at = match to - from {
            0 => continue,
            1 => from,
            _ => {
                let host = host_of(s);
                (from..to)
                    .find(|&i| host.is_some() && placements[i].host == host)
                    .unwrap_or(from)
            }
        };
        add(&mut out[at], s);
    }
    out
}

/// Each VM's placements, grouped by VM in VM order (`docs/ENERGY.md#placements`),
/// from `series` (VM index, host index, reading): the model's CPU-time series
/// (`cpu`), else its first VM-keyed measurement's. One per host a VM's
/// series name, with that host's presence and (`cpu`) CPU seconds (several
/// series of one VM on one host add up, the longest span counts), in the
/// order the VM came to them; a migrated VM's wall time is the sum of its
/// placements' spans. A VM without such a series, or (without CPU time) on
/// one host only, has one placement on the host its first series names,
/// present for its wall time.
pub(super) fn placements<'a>(
    window: Window,
    vm_hosts: &[Option<u32>],
    series: Option<impl Iterator<Item = (usize, Option<u32>, &'a SeriesReading)>>,
    cpu: bool,
    wall_s: &mut [f64],
) -> Vec<Placement> {
    // One entry per CPU-time series (one flat list, not a list per VM: a
    // window of 100,000 VMs holds no 100,000 small allocations), with its
    // arrival and first sample time, grouped by VM and host.
    let mut series: Vec<(Placement, i64, usize)> = series
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(arrived, (vm, host, s))| {
            let placement = Placement {
                vm: u32::try_from(vm).unwrap_or(u32::MAX),
                host,
                presence_s: presence_s(s.span_s, window),
                cpu_s: cpu.then_some(s.value),
                assigned: true,
            };
            (placement, s.times.map_or(i64::MAX, |t| t.0), arrived)
        })
        .collect();
    series.sort_unstable_by_key(|(p, _, arrived)| (p.vm, p.host, *arrived));
    // Several series of one VM on one host add up; the longest span counts.
    series.dedup_by(|next, kept| {
        if (next.0.vm, next.0.host) != (kept.0.vm, kept.0.host) {
            return false;
        }
        kept.0.cpu_s = kept.0.cpu_s.map(|c| c + next.0.cpu_s.unwrap_or(0.0));
        kept.0.presence_s = kept.0.presence_s.max(next.0.presence_s);
        kept.1 = kept.1.min(next.1);
        true
    });
    // A VM's hosts in the order it came to them (ties: the order its series came in).
    series.sort_unstable_by_key(|(p, first, arrived)| (p.vm, *first, *arrived));
    let mut placements = Vec::with_capacity(vm_hosts.len().max(series.len()));
    let mut series = series.into_iter().map(|(p, _, _)| p).peekable();
    for (vm, host) in vm_hosts.iter().enumerate() {
        let from = placements.len();
        while let Some(p) = series.next_if(|p| p.vm as usize == vm) {
            placements.push(p);
        }
        let alone = Placement {
            vm: u32::try_from(vm).unwrap_or(u32::MAX),
            host: *host,
            presence_s: wall_s[vm],
            cpu_s: None,
            assigned: true,
        };
        match placements.len() - from {
            0 => placements.push(alone),
            1 if !cpu => placements[from] = alone,
            1 => {}
            _ => {
                let presence: f64 = placements[from..].iter().map(|p| p.presence_s).sum();
                wall_s[vm] = wall_s[vm].max(presence_s(presence, window));
            }
        }
    }
    placements
}
