//! `v0_2_model`: an attribution model built against `wattson:plugin@0.2.0`,
//! the way a site's plugin was written before 0.3.0: each VM's energy is the
//! C1 increase of a per-VM joules counter times the `scale` parameter (a
//! bounded number, checked by the host), on the VM's first assigned
//! placement. It logs one line per call through 0.2.0's `host.log`.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.2.0",
    world: "wattson:plugin/attribution-model@0.2.0",
});

// The world's `use` brings `ModelInfo`, `AttributionInput`, `Attribution`
// and `Param` into this module.
use wattson::plugin::host::log;
use wattson::plugin::model::PlacementEnergy;
use wattson::plugin::types::{
    Bounds, CounterSpec, KeyKind, Level, Measurement, ParamKind, ParamSpec, ParamValue, Quality,
    Unit,
};

struct V02;

impl Guest for V02 {
    fn describe() -> ModelInfo {
        ModelInfo {
            name: "v0.2-joules".into(),
            version: "0.2.0".into(),
            description: "A wattson:plugin@0.2.0 model: a per-VM joules counter times `scale`"
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
                    kind: ParamKind::Number(Bounds {
                        min: Some(0.0),
                        max: None,
                    }),
                    default: Some(ParamValue::Number(1.0)),
                },
            ],
            conservation: None,
            quality: Quality::Measured,
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
            &format!("v0.2 model: {} VMs, scale {scale}", input.vms.len()),
        );
        let mut given = vec![false; input.vms.len()];
        let mut placements = Vec::new();
        for (i, p) in input.placements.iter().enumerate() {
            let vm = p.vm as usize;
            let Some(Some(reading)) = energy.vms.get(vm) else {
                continue;
            };
            if !p.assigned || std::mem::replace(&mut given[vm], true) {
                continue;
            }
            placements.push(PlacementEnergy {
                placement: u32::try_from(i).map_err(|e| e.to_string())?,
                joules: reading.value * scale,
            });
        }
        Ok(Attribution {
            placements,
            unattributed: Vec::new(),
        })
    }
}

export!(V02);
