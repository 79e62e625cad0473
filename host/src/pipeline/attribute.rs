//! Attribution of one gathered window: each placement to its model (rules
//! first, then `[model]`), each model run in the sandbox, and the answers
//! summed per VM. Shared by extract (a window from Prometheus) and the
//! daemon (an interval of local samples).

use super::PipelineError;
use super::gather::Gathered;
use super::rules::Plan;
use super::summary::{self, HostSummary};
use crate::runtime::{GpuMode, Measurement};
use crate::window::Window;

/// What the models gave one window, per input VM.
pub struct Attributed {
    /// Joules per VM: the sum of its placements'; None where no model gave it any.
    pub joules: Vec<Option<f64>>,
    /// The GPU part of each VM's joules: Some where a model that attributes
    /// GPUs gave it energy and the window has GPU readings, else None.
    pub gpu_j: Vec<Option<f64>>,
    /// VMs with GPU joules that held a vGPU or a MIG instance (`estimated`).
    pub gpu_shared: Vec<bool>,
    /// The plan slot (model) that gave each VM energy (its last placement's).
    pub model_of: Vec<usize>,
    /// The host each VM was on at the window's end (its last placement's).
    pub host_of: Vec<Option<u32>>,
    /// Per host with a meter reading: its energy and how it was split.
    pub hosts: Vec<HostSummary>,
}

/// Runs the plan's models on `gathered` (the inventory crosses into the
/// sandbox only for models that declare it). A placement no rule matches,
/// with no `[model]`, fails the window naming the VMs.
pub fn attribute(
    plan: &Plan<'_>,
    gathered: &mut Gathered,
    window: Window,
) -> Result<Attributed, PipelineError> {
    // Each model's answer, and each host's summary.
    let mut attributions = Vec::with_capacity(plan.slots().len());
    let mut hosts = Vec::new();
    if plan.is_single() {
        let slot = plan.slots()[0];
        // The inventory crosses into the sandbox only for models that declare it.
        let wants_inventory = slot
            .measurements
            .iter()
            .any(|m| matches!(m, Measurement::Inventory));
        if wants_inventory {
            gathered.input.details = std::mem::take(&mut gathered.details);
        }
        let attribution = slot.model.attribute(&gathered.input, slot.params);
        if wants_inventory {
            gathered.details = std::mem::take(&mut gathered.input.details);
        }
        let attribution = attribution.map_err(PipelineError::from)?;
        let info = slot.model.info();
        hosts = summary::hosts(
            window,
            info,
            slot.measurements,
            slot.params,
            &gathered.input,
            &attribution,
        );
        attributions.push(attribution);
    } else {
        let assignment = plan.assign(&gathered.input, &gathered.details);
        let unmatched: Vec<String> = assignment
            .iter()
            .zip(&gathered.input.placements)
            .filter(|(to, _)| to.is_none())
            .map(|(_, p)| {
                let vm = &gathered.input.vms[p.vm as usize].uuid;
                match p.host.and_then(|h| gathered.input.hosts.get(h as usize)) {
                    Some(host) => format!("{vm} on {host}"),
                    None => vm.clone(),
                }
            })
            .collect();
        if !unmatched.is_empty() {
            return Err(PipelineError::Unsupported(format!(
                "{} VM placement(s) in {window} match no rule and the policy has no [model]: {}{}. \
                 Add [model] for them, or a rule that matches (`wattson policy check --explain` \
                 shows each VM's rule)",
                unmatched.len(),
                unmatched[..unmatched.len().min(5)].join(", "),
                if unmatched.len() > 5 { ", …" } else { "" }
            )));
        }
        for (k, slot) in plan.slots().iter().enumerate() {
            let input = plan.input_for(k, &gathered.input, &gathered.details, &assignment);
            let attribution = slot
                .model
                .attribute(&input, slot.params)
                .map_err(PipelineError::from)?;
            let info = slot.model.info();
            hosts.extend(summary::hosts(
                window,
                info,
                slot.measurements,
                slot.params,
                &input,
                &attribution,
            ));
            attributions.push(attribution);
        }
    }
    for host in &mut hosts {
        host.unmeasured_vms = gathered.unmeasured.get(&host.host).copied().unwrap_or(0);
    }
    // A VM's joules are the sum of its placements', whichever model gave
    // them; its host the last one's, its model the last one's that gave it energy.
    let input = &gathered.input;
    let mut joules: Vec<Option<f64>> = vec![None; input.vms.len()];
    let mut gpu_j: Vec<Option<f64>> = vec![None; input.vms.len()];
    let mut model_of: Vec<usize> = vec![0; input.vms.len()];
    for (k, attribution) in attributions.iter().enumerate() {
        let slot = &plan.slots()[k];
        let gpus = !input.gpus.is_empty()
            && crate::runtime::gpu_measurement(slot.model.info(), slot.params).is_some();
        for e in &attribution.placements {
            let vm = input.placements[e.placement as usize].vm as usize;
            *joules[vm].get_or_insert(0.0) += e.joules;
            if gpus {
                *gpu_j[vm].get_or_insert(0.0) += e.gpu_joules;
            }
            model_of[vm] = k;
        }
    }
    let mut gpu_shared = vec![false; input.vms.len()];
    for held in input.gpus.iter().flat_map(|card| &card.holdings) {
        if matches!(held.mode, GpuMode::Vgpu | GpuMode::Mig)
            && let Some(p) = input.placements.get(held.placement as usize)
            && let Some(slot) = gpu_shared.get_mut(p.vm as usize)
        {
            *slot = gpu_j[p.vm as usize].is_some_and(|j| j > 0.0);
        }
    }
    let mut host_of: Vec<Option<u32>> = vec![None; input.vms.len()];
    for p in &input.placements {
        if p.host.is_some() {
            host_of[p.vm as usize] = p.host;
        }
    }
    Ok(Attributed {
        joules,
        gpu_j,
        gpu_shared,
        model_of,
        host_of,
        hosts,
    })
}
