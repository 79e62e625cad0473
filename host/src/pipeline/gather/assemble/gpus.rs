//! The model's `gpus` (`docs/ENERGY.md#gpus`): the cards gather read, each
//! holding on its VM's placement on the card's host.

use std::collections::HashMap;

use crate::pipeline::gather::gpus::Card;
use crate::runtime::{GpuHolding, GpuReading, Placement};
use crate::window::Window;

/// The model's `gpus` from the cards read (`docs/ENERGY.md#gpus`): each
/// holding on its VM's placement on the card's host. A holder without one
/// (no series of it measured there in the window) is left out, so its part
/// stays at the host, with a warning.
pub(super) fn readings(
    cards: &[Card],
    host_index: &HashMap<&str, usize>,
    vm_index: &HashMap<&str, usize>,
    placements: &[Placement],
    window: Window,
) -> Vec<GpuReading> {
    let placed: HashMap<(u32, u32), u32> = placements
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some(((p.vm, p.host?), u32::try_from(i).ok()?)))
        .collect();
    let mut unplaced: Vec<String> = Vec::new();
    let readings = cards
        .iter()
        .filter_map(|card| {
            let host = u32::try_from(*host_index.get(card.host.as_str())?).ok()?;
            let holdings = card
                .holdings
                .iter()
                .filter_map(|h| {
                    let vm = vm_index
                        .get(h.uuid.as_str())
                        .and_then(|&vm| u32::try_from(vm).ok());
                    let placement = vm.and_then(|vm| placed.get(&(vm, host)));
                    if placement.is_none() {
                        unplaced.push(format!("{} on {} {}", h.uuid, card.host, card.bus_id));
                    }
                    Some(GpuHolding {
                        placement: *placement?,
                        mode: h.mode,
                        share: h.share,
                        profile: h.profile.clone(),
                        held_s: h.held_s,
                        joules: h.joules,
                    })
                })
                .collect();
            Some(GpuReading {
                host,
                bus_id: card.bus_id.to_string(),
                gpu_uuid: card.gpu_uuid.clone(),
                energy: card.energy,
                counter: card.counter,
                holdings,
            })
        })
        .collect();
    if let Some(first) = unplaced.first() {
        tracing::warn!(
            %window,
            "{} GPU holder(s) (e.g. VM {first}) have no placement on the card's host in the \
             window (no series measured the VM there): their part of the card stays at the \
             host, `no-vms`",
            unplaced.len()
        );
    }
    readings
}
