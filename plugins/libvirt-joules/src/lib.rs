//! `libvirt-joules`: the energy of each VM is the exact increase (C1 of
//! `docs/ENERGY.md#counters`, resets handled by the host) of a per-VM joules counter, e.g.
//! libvirt's `libvirt_domain_info_energy_consumption_joules_total` or
//! Kepler's `kepler_vm_cpu_joules_total`. Both count no GPU: with
//! `gpu = "passthrough"` each VM gets its GPUs' energy on top.

use wattson_plugin::gpu::{self, Mode};
use wattson_plugin::{
    Attribution, AttributionInput, CounterSpec, KeyKind, Model, ModelInfo, ParamSpec, Params, Unit,
};

/// Name of the one measurement this model declares.
const ENERGY: &str = "energy";

struct LibvirtJoules;

impl Model for LibvirtJoules {
    fn describe() -> ModelInfo {
        gpu::declare(
            ModelInfo::new(
                "libvirt-joules",
                env!("CARGO_PKG_VERSION"),
                "Per-VM joules counter in Prometheus (libvirt, Kepler, ...): each VM gets the C1 \
             exact increase of its counter over the window, resets handled; VMs without samples \
             get no record.",
            )
            .measurement(CounterSpec::new(
                ENERGY,
                "${metric}",
                "${key_label}",
                KeyKind::Uuid,
                Unit::Joules,
            ))
            .param(ParamSpec::text(
                "metric",
                "PromQL selector of the per-VM joules counter",
                Some("libvirt_domain_info_energy_consumption_joules_total"),
            ))
            .param(ParamSpec::text(
                "key_label",
                "Label of the counter that holds the VM uuid",
                Some("uuid"),
            )),
        )
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let gpus = gpu::attribute(&input, Mode::from_params(&params)?)?;
        let mut out = Attribution {
            placements: input.per_vm_energy(ENERGY, 1.0)?,
            ..Attribution::default()
        };
        gpus.add_to(&input, &mut out);
        Ok(out)
    }
}

wattson_plugin::register_model!(LibvirtJoules);
