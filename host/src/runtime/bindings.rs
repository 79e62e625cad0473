//! Host bindings generated from `wit/` (package `wattson:plugin@0.1.0`).
#![allow(missing_docs)] // generated; the WIT documents every item

/// The `attribution-model` world, and the types every world shares.
pub mod model {
    wasmtime::component::bindgen!({
        world: "attribution-model",
        path: "../wit",
        imports: { default: trappable },
        additional_derives: [PartialEq],
    });
}

/// The `output-format` world; shares `types` and `host` with [`model`].
pub mod format {
    wasmtime::component::bindgen!({
        world: "output-format",
        path: "../wit",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "wattson:plugin/types": super::model::wattson::plugin::types,
            "wattson:plugin/host": super::model::wattson::plugin::host,
        },
    });
}

pub use format::wattson::plugin::format::{EnergyRecord, FormatInfo};
pub use model::wattson::plugin::model::{
    Attribution, AttributionInput, Conservation, HostEnergy, Measured, ModelInfo, Reading, Vm,
    VmDetails, VmEnergy,
};
pub use model::wattson::plugin::types::{
    CounterSpec, GaugeSpec, KeyKind, Level, Measurement, Param, ParamKind, ParamSpec, ParamValue,
    RaplSpec, TemplateSpec, Unit, Window,
};
