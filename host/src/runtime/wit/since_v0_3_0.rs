//! Bindings of `wattson:plugin@0.3.0` (`wit/since_v0.3.0/`), the latest
//! version: the host's own types are these.
#![allow(missing_docs)] // generated; the WIT documents every item

/// The version these bindings are for.
pub const VERSION: &str = "0.3.0";

/// The `attribution-model` world, and the types every world shares.
pub mod model {
    wasmtime::component::bindgen!({
        world: "attribution-model",
        path: "../wit/since_v0.3.0",
        imports: { default: trappable },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

/// The `output-format` world; shares `types` and `host` with [`model`].
pub mod format {
    wasmtime::component::bindgen!({
        world: "output-format",
        path: "../wit/since_v0.3.0",
        imports: { default: trappable },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        with: {
            "wattson:plugin/types": super::model::wattson::plugin::types,
            "wattson:plugin/host": super::model::wattson::plugin::host,
        },
    });
}

pub use format::wattson::plugin::format::{EnergyRecord, FormatInfo, RecordQuality, Status};
pub use model::wattson::plugin::model::{
    Attribution, AttributionInput, Conservation, GpuHolding, GpuMode, GpuReading, HostEnergy,
    Measured, ModelInfo, Placement, PlacementEnergy, Reading, UnattributedReason, Vm, VmDetails,
};
pub use model::wattson::plugin::types::{
    Bounds, ChoiceSpec, CounterSpec, GaugeSpec, GpuSpec, HostPowerSpec, IdlePowerSpec, KeyKind,
    Level, Measurement, Param, ParamKind, ParamSpec, ParamValue, Quality, RaplSpec, TemplateSpec,
    Unit, Window,
};
