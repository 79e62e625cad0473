//! `scaphandre`: each VM's energy is G1 of Scaphandre's power of its qemu
//! process (`scaph_process_power_consumption_microwatts{vmname=…}`, the
//! libvirt domain name, mapped to the VM's uuid by the inventory); process
//! series without `vmname` (libvirtd, the host's own processes) are not VMs.
//! What the VMs do not account for of the host's power
//! (`scaph_host_power_microwatts`) stays at the host (`not-vms`). Where the
//! VMs' sum exceeds the host's (Scaphandre issue #163), nothing is clamped:
//! the model warns, and the host summary shows the excess. With
//! `gpu = "passthrough"` each VM gets its GPUs' energy on top (Scaphandre's
//! host power is RAPL's), the rest of the cards at the host.

use std::collections::BTreeMap;

use wattson_plugin::gpu::{self, Mode};
use wattson_plugin::{
    Attribution, AttributionInput, GaugeSpec, KeyKind, Model, ModelInfo, ParamSpec, Params,
    UnattributedReason, Unit,
};

/// Each VM's qemu process power.
const VM_POWER: &str = "vm_power";
/// Each host's power.
const HOST_POWER: &str = "host_power";

struct Scaphandre;

impl Model for Scaphandre {
    fn describe() -> ModelInfo {
        gpu::declare(
            ModelInfo::new(
            "scaphandre",
            env!("CARGO_PKG_VERSION"),
            "Per-VM power measured by Scaphandre (its qemu process, by vmname), integrated over \
             the window; what the VMs do not account for of the host's power stays at the host.",
        )
        .measurement(GaugeSpec::new(
            VM_POWER,
            "scaph_process_power_consumption_microwatts{exe=~\"${exe}\",vmname!=\"\"}",
            "vmname",
            KeyKind::Vmname,
            Unit::Microwatts,
        ))
        .measurement(GaugeSpec::new(
            HOST_POWER,
            "scaph_host_power_microwatts",
            "${host_label}",
            KeyKind::Host,
            Unit::Microwatts,
        ))
        .param(ParamSpec::text(
            "exe",
            "Regex of the VMs' process executable: qemu-system-x86_64 (Debian, Ubuntu), \
             qemu-kvm (RHEL)",
            Some("qemu-system-x86_64|qemu-kvm"),
        ))
        .param(ParamSpec::text(
            "host_label",
            "Label of scaph_host_power_microwatts that names the host (normalised by \
             [inventory] host_regex)",
            Some("instance"),
        )),
        )
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let gpus = gpu::attribute(&input, Mode::from_params(&params)?)?;
        let vm_power = input.per_placement(VM_POWER)?;
        let host_power = input.measured(HOST_POWER)?;
        // Each placement gets what was measured of its VM on its host; a
        // placement the rules give to another model still used its host's
        // power (`other-model`).
        let mut out = Attribution::default();
        let mut on_host = vec![0.0; input.hosts.len()];
        let mut elsewhere = vec![0.0; input.hosts.len()];
        for (i, (p, reading)) in input
            .placements
            .iter()
            .zip(&vm_power.placements)
            .enumerate()
        {
            let Some(reading) = reading else {
                continue;
            };
            let host = p
                .host
                .map(|h| h as usize)
                .filter(|&h| h < input.hosts.len());
            if p.assigned {
                out.give(i as u32, reading.value);
                if let Some(h) = host {
                    on_host[h] += reading.value;
                }
            } else if let Some(h) = host {
                elsewhere[h] += reading.value;
            }
        }
        let mut excess = BTreeMap::new();
        for (h, reading) in host_power.hosts.iter().enumerate() {
            let Some(reading) = reading else { continue };
            let left = reading.value - on_host[h] - elsewhere[h];
            if left >= 0.0 {
                out.leave(h as u32, elsewhere[h], UnattributedReason::OtherModel);
                out.leave(h as u32, left, UnattributedReason::NotVms);
            } else {
                // What the VMs of other models used stays theirs to account.
                out.leave(
                    h as u32,
                    elsewhere[h].min((reading.value - on_host[h]).max(0.0)),
                    UnattributedReason::OtherModel,
                );
                excess.insert(input.hosts[h].as_str(), -left);
            }
        }
        if !excess.is_empty() {
            let listed: Vec<String> = excess
                .iter()
                .map(|(host, joules)| format!("{host} by {joules:.1} J"))
                .collect();
            wattson_plugin::warn(&format!(
                "the VMs' power exceeds the host's on {} host(s) (Scaphandre issue #163): {}; \
                 the VMs keep what Scaphandre measured, nothing is clamped",
                excess.len(),
                listed.join(", ")
            ));
        }
        gpus.add_to(&input, &mut out);
        Ok(out)
    }
}

wattson_plugin::register_model!(Scaphandre);
