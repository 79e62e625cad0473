//! `prometheus-query`: each VM's energy is the value of a PromQL template, as
//! cASO's Prometheus extractor computes it (`{{uuid}}`), converted to joules.
//!
//! A template with a per-VM variable (`{{uuid}}`, `{{name}}`, `{{project}}`,
//! `{{host}}`) is run by the host once per VM, concurrently; one without
//! (e.g. `sum by (uuid) (increase(m[{{window}}]))`) runs once per window and
//! its series are matched to VMs by `key_label`. With `gpu = "passthrough"`
//! each VM gets its GPUs' energy on top: a query that already counts GPUs
//! wants `gpu = "ignore"`.

use wattson_plugin::gpu::{self, Mode};
use wattson_plugin::{
    Attribution, AttributionInput, Model, ModelInfo, ParamSpec, Params, TemplateSpec, Unit,
};

/// Name of the one measurement this model declares.
const ENERGY: &str = "energy";

struct PrometheusQuery;

impl Model for PrometheusQuery {
    fn describe() -> ModelInfo {
        gpu::declare(
            ModelInfo::new(
            "prometheus-query",
            env!("CARGO_PKG_VERSION"),
            "Any cASO-style PromQL template ({{uuid}}, {{window}}, {{start}}, {{end}}, {{name}}, \
             {{project}}, {{host}}) evaluated at the window's end; each VM gets the query's value \
             converted to joules. VMs whose query returns nothing get no record.",
        )
        .measurement(TemplateSpec::new(ENERGY, "${query}", Unit::Joules).key_label("${key_label}"))
        .param(ParamSpec::text(
            "query",
            "PromQL template of one VM's energy in the window, e.g. \
             sum(increase(libvirt_domain_info_energy_consumption_joules_total{uuid=\"{{uuid}}\"}[{{window}}]))",
            None,
        ))
        .param(ParamSpec::choice(
            "unit",
            "Unit of the query's value (cASO's queries give kWh)",
            &["J", "Wh", "kWh"],
            None,
        ))
        .param(ParamSpec::text(
            "key_label",
            "Label that names the VM's uuid in the result of a template without per-VM variables",
            Some("uuid"),
        )),
        )
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let unit = params.choice("unit")?;
        let unit = Unit::parse(unit).ok_or_else(|| format!("unit `{unit}` is not a unit"))?;
        let gpus = gpu::attribute(&input, Mode::from_params(&params)?)?;
        let mut out = Attribution {
            placements: input.per_vm_energy(ENERGY, unit.to_base(1.0))?,
            ..Attribution::default()
        };
        gpus.add_to(&input, &mut out);
        Ok(out)
    }
}

wattson_plugin::register_model!(PrometheusQuery);
