//! `v0_1_model`: an attribution model built against `wattson:plugin@0.1.0`,
//! the way a site's plugin was written before 0.2.0: each VM's energy is the
//! C1 increase of a per-VM joules counter times the `scale` parameter, keyed
//! by uuid in the 0.1.0 answer. It logs one line per call through 0.1.0's
//! `host.log`.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1.0",
    world: "wattson:plugin/attribution-model@0.1.0",
});

// The world's `use` brings `ModelInfo`, `AttributionInput`, `Attribution`
// and `Param` into this module.
use wattson::plugin::host::log;
use wattson::plugin::model::VmEnergy;
use wattson::plugin::types::{
    CounterSpec, KeyKind, Level, Measurement, ParamKind, ParamSpec, ParamValue, Unit,
};

struct V01;

impl Guest for V01 {
    fn describe() -> ModelInfo {
        ModelInfo {
            name: "v0.1-joules".into(),
            version: "0.1.0".into(),
            description: "A wattson:plugin@0.1.0 model: a per-VM joules counter times `scale`"
                .into(),
            measurements: vec![Measurement::Counter(CounterSpec {
                name: "energy".into(),
                selector: "${metric}".into(),
                key_label: "uuid".into(),
                key: KeyKind::Uuid,
                unit: Unit::Joules,
                wrap_range: None,
            })],
            params: vec![
                ParamSpec {
                    name: "metric".into(),
                    description: "PromQL selector of the per-VM joules counter".into(),
                    kind: ParamKind::Text,
                    default: Some(ParamValue::Text(
                        "libvirt_domain_info_energy_consumption_joules_total".into(),
                    )),
                },
                ParamSpec {
                    name: "scale".into(),
                    description: "Factor applied to every VM's joules".into(),
                    kind: ParamKind::Number,
                    default: Some(ParamValue::Number(1.0)),
                },
            ],
            conservation: None,
        }
    }

    fn attribute(input: AttributionInput, params: Vec<Param>) -> Result<Attribution, String> {
        let scale = params
            .iter()
            .find_map(|p| match (&p.name[..], &p.value) {
                ("scale", ParamValue::Number(x)) => Some(*x),
                _ => None,
            })
            .ok_or("parameter `scale` is missing")?;
        let energy = input
            .measurements
            .iter()
            .find(|m| m.name == "energy")
            .ok_or("no `energy` results")?;
        log(
            Level::Info,
            &format!("v0.1 model: {} VMs, scale {scale}", input.vms.len()),
        );
        let vms = input
            .vms
            .iter()
            .zip(&energy.vms)
            .filter_map(|(vm, r)| {
                Some(VmEnergy {
                    uuid: vm.uuid.clone(),
                    joules: r.as_ref()?.value * scale,
                })
            })
            .collect();
        Ok(Attribution {
            vms,
            unattributed: Vec::new(),
        })
    }
}

export!(V01);
