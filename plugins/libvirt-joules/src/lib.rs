//! `libvirt-joules`: the energy of each VM is the exact increase (C1 of
//! ENERGY.md, resets handled by the host) of a per-VM joules counter, e.g.
//! libvirt's `libvirt_domain_info_energy_consumption_joules_total` or
//! Kepler's `kepler_vm_cpu_joules_total`.

use wattson_plugin::{
    Attribution, AttributionInput, CounterSpec, KeyKind, Measurement, Model, ModelInfo, ParamSpec,
    Params, Unit,
};

/// Name of the one measurement this model declares.
const ENERGY: &str = "energy";

struct LibvirtJoules;

impl Model for LibvirtJoules {
    fn describe() -> ModelInfo {
        ModelInfo {
            name: "libvirt-joules".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Per-VM joules counter in Prometheus (libvirt, Kepler, ...): each VM gets \
                          the C1 exact increase of its counter over the window, resets handled; \
                          VMs without samples get no record."
                    .into(),
            measurements: vec![Measurement::Counter(CounterSpec {
                name: ENERGY.into(),
                selector: "${metric}".into(),
                key_label: "${key_label}".into(),
                key: KeyKind::Uuid,
                unit: Unit::Joules,
                wrap_range: None,
            })],
            params: vec![
                ParamSpec::text(
                    "metric",
                    "PromQL selector of the per-VM joules counter",
                    Some("libvirt_domain_info_energy_consumption_joules_total"),
                ),
                ParamSpec::text(
                    "key_label",
                    "Label of the counter that holds the VM uuid",
                    Some("uuid"),
                ),
            ],
            conservation: None,
        }
    }

    fn attribute(input: AttributionInput, _params: Params) -> Result<Attribution, String> {
        let vms = input.per_vm_energy(ENERGY, 1.0)?;
        Ok(Attribution {
            vms,
            unattributed: Vec::new(),
        })
    }
}

wattson_plugin::register_model!(LibvirtJoules);
