//! `ipmi-share`: each host's wall energy (G1 of its power gauge, ipmi_exporter's
//! `ipmi_dcmi_power_consumption_watts` by default) split between its VMs by CPU time, with the
//! host's idle energy treated as the `idle` parameter says (ENERGY.md "Share
//! models"). Time the meter did not see is reported in the records' quality,
//! never filled.

use wattson_plugin::share::{self, IDLE_PARAM, Idle};
use wattson_plugin::{
    Attribution, AttributionInput, HostPowerSpec, IdlePowerSpec, Measurement, Model, ModelInfo,
    Params,
};

/// The host energy this model splits.
const ENERGY: &str = "energy";
/// Each host's idle power.
const IDLE_POWER: &str = "idle_power";
/// Each placement's CPU seconds.
const CPU: &str = "cpu";

struct IpmiShare;

impl Model for IpmiShare {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "ipmi-share",
            env!("CARGO_PKG_VERSION"),
            "Wall energy of each host (IPMI DCMI power, G1), split between its VMs by CPU time; idle \
             energy kept at the host or split by presence, vCPUs or memory (`idle`).",
        )
        .measurement(HostPowerSpec::new(ENERGY))
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

wattson_plugin::register_model!(IpmiShare);
