//! `ipmi-share`: each host's wall energy (G1 of its power gauge, ipmi_exporter's
//! `ipmi_dcmi_power_consumption_watts` by default) split between its VMs by CPU time, with the
//! host's idle energy treated as the `idle` parameter says (`docs/ENERGY.md#share-models`). Time the meter did not see is reported in the records' quality,
//! never filled. The wall power counts the GPUs too: with `gpu = "passthrough"`
//! each host's E_h − G_h is split, and each VM gets its GPUs' energy on top.

use wattson_plugin::share;
use wattson_plugin::{Attribution, AttributionInput, HostPowerSpec, Model, ModelInfo, Params};

struct IpmiShare;

impl Model for IpmiShare {
    fn describe() -> ModelInfo {
        share::model_info(
            "ipmi-share",
            env!("CARGO_PKG_VERSION"),
            "Wall energy of each host (IPMI DCMI power, G1), split between its VMs by CPU time; idle \
             energy kept at the host or split by presence, vCPUs or memory (`idle`).",
            |name| HostPowerSpec::new(name).into(),
        )
        .gpu_in_meter()
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        share::attribute_wall(&input, &params)
    }
}

wattson_plugin::register_model!(IpmiShare);
