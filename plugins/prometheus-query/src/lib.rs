//! `prometheus-query`: each VM's energy is the value of a PromQL template, as
//! cASO's Prometheus extractor computes it (`{{uuid}}`), converted to joules.
//!
//! A template with a per-VM variable (`{{uuid}}`, `{{name}}`, `{{project}}`,
//! `{{host}}`) is run by the host once per VM, concurrently; one without
//! (e.g. `sum by (uuid) (increase(m[{{window}}]))`) runs once per window and
//! its series are matched to VMs by `key_label`.

use wattson_plugin::{
    Attribution, AttributionInput, Measurement, Model, ModelInfo, ParamSpec, Params, TemplateSpec,
    Unit,
};

/// Name of the one measurement this model declares.
const ENERGY: &str = "energy";

/// Joules per unit a query may return its value in.
fn joules_per(unit: &str) -> Result<f64, String> {
    match unit {
        "J" | "joules" => Ok(1.0),
        "Wh" | "watt-hours" => Ok(3600.0),
        "kWh" | "kilowatt-hours" => Ok(3.6e6),
        other => Err(format!(
            "parameter `unit` is `{other}`: use \"J\", \"Wh\" or \"kWh\" (the unit of the query's value)"
        )),
    }
}

struct PrometheusQuery;

impl Model for PrometheusQuery {
    fn describe() -> ModelInfo {
        ModelInfo {
            name: "prometheus-query".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Any cASO-style PromQL template ({{uuid}}, {{window}}, {{start}}, \
                          {{end}}, {{name}}, {{project}}, {{host}}) evaluated at the window's \
                          end; each VM gets the query's value converted to joules. VMs whose \
                          query returns nothing get no record."
                .into(),
            measurements: vec![Measurement::Template(TemplateSpec {
                name: ENERGY.into(),
                query: "${query}".into(),
                key_label: Some("${key_label}".into()),
                unit: Unit::Joules,
            })],
            params: vec![
                ParamSpec::text(
                    "query",
                    "PromQL template of one VM's energy in the window, e.g. \
                     sum(increase(libvirt_domain_info_energy_consumption_joules_total{uuid=\"{{uuid}}\"}[{{window}}]))",
                    None,
                ),
                ParamSpec::text(
                    "unit",
                    "Unit of the query's value: \"J\", \"Wh\" or \"kWh\" (cASO's queries give kWh)",
                    None,
                ),
                ParamSpec::text(
                    "key_label",
                    "Label that names the VM's uuid in the result of a template without per-VM variables",
                    Some("uuid"),
                ),
            ],
            conservation: None,
        }
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let factor = joules_per(params.text("unit")?)?;
        let vms = input.per_vm_energy(ENERGY, factor)?;
        Ok(Attribution {
            vms,
            unattributed: Vec::new(),
        })
    }
}

wattson_plugin::register_model!(PrometheusQuery);
