//! `rapl-share`: each host's RAPL energy (package + dram zones, never core,
//! uncore or psys added to them) split between its VMs by CPU time, with the
//! host's idle energy treated as the `idle` parameter says (`docs/ENERGY.md#share-models`). `extract` reads node_exporter's `node_rapl_*_joules_total`
//! through Prometheus; the daemon reads the local powercap tree. With
//! `gpu = "passthrough"` each VM gets its GPUs' energy on top (RAPL counts no GPU).

use wattson_plugin::share;
use wattson_plugin::{Attribution, AttributionInput, Model, ModelInfo, Params, RaplSpec};

struct RaplShare;

impl Model for RaplShare {
    fn describe() -> ModelInfo {
        share::model_info(
            "rapl-share",
            env!("CARGO_PKG_VERSION"),
            "RAPL package + dram energy of each host, split between its VMs by CPU time; idle \
             energy kept at the host or split by presence, vCPUs or memory (`idle`).",
            |name| RaplSpec::new(name).into(),
        )
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        share::attribute(&input, &params)
    }
}

wattson_plugin::register_model!(RaplShare);
