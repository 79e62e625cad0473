//! `rapl-share`: each host's RAPL energy (package + dram zones, never core,
//! uncore or psys added to them) split between its VMs by CPU time, with the
//! host's idle energy treated as the `idle` parameter says (ENERGY.md "Share
//! models"). `extract` reads node_exporter's `node_rapl_*_joules_total`
//! through Prometheus; the daemon reads the local powercap tree.

use wattson_plugin::share::{self, IDLE_PARAM, Idle};
use wattson_plugin::{
    Attribution, AttributionInput, IdlePowerSpec, Measurement, Model, ModelInfo, Params, RaplSpec,
};

/// The host energy this model splits.
const ENERGY: &str = "energy";
/// Each host's idle power.
const IDLE_POWER: &str = "idle_power";
/// Each placement's CPU seconds.
const CPU: &str = "cpu";

struct RaplShare;

impl Model for RaplShare {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "rapl-share",
            env!("CARGO_PKG_VERSION"),
            "RAPL package + dram energy of each host, split between its VMs by CPU time; idle \
             energy kept at the host or split by presence, vCPUs or memory (`idle`).",
        )
        .measurement(RaplSpec::new(ENERGY))
        .measurement(Measurement::CpuTime(CPU.to_owned()))
        .measurement(IdlePowerSpec::new(IDLE_POWER, ENERGY, "${idle_power}"))
        .param(Idle::param())
        .param(Idle::power_param())
        .conservation(ENERGY, 1e-9)
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let idle = Idle::parse(params.choice(IDLE_PARAM)?)?;
        share::split(&input, ENERGY, IDLE_POWER, idle)
    }
}

wattson_plugin::register_model!(RaplShare);
