//! The SDK for wattson plugins.
//!
//! wattson attributes the energy of cloud hosts to their VMs. Two things are
//! pluggable, each a WebAssembly component built for `wasm32-wasip2` against
//! the `wattson:plugin@0.3.0` WIT package, which this crate carries in
//! `wit/since_v0.3.0/` (the host still loads components built against the
//! frozen `wit/since_v0.1.0/` and `wit/since_v0.2.0/`):
//!
//! * an **attribution model** (cargo feature `model`) declares the
//!   measurements it needs and turns their results into joules per VM;
//! * an **output format** (cargo feature `format`) renders per-VM energy
//!   records into payloads that a messenger ships, one message each.
//!
//! A plugin crate enables the feature of its world, writes a type, an impl of
//! [`Model`] or [`Format`], and one `register_model!` / `register_format!`
//! line. The features are additive (a workspace of models and formats lints
//! in one `cargo clippy --workspace`), but one component implements one
//! world: build each plugin on its own (`cargo build -p <plugin>`), so that
//! only its world's bindings are linked in. This crate generates the WIT
//! bindings in a hidden module and re-exports their types under the names
//! below (and as [`latest`]), so plugin authors never touch `wit-bindgen`.
//!
//! Plugins are pure functions: no filesystem, network, environment or clock.
//! They may log through [`log`] (and the [`info!`], [`warn!`], … macros), which
//! lands in the host's log tagged with the plugin's name.
//!
//! # Example
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "my-model"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! wattson-plugin = { version = "0.3", features = ["model"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use wattson_plugin::{
//!     Attribution, AttributionInput, CounterSpec, KeyKind, Model, ModelInfo, ParamSpec, Params,
//!     Unit,
//! };
//!
//! struct MyModel;
//!
//! impl Model for MyModel {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("my-model", env!("CARGO_PKG_VERSION"), "Joules of a per-VM counter, doubled")
//!             // `${metric}` is replaced by the host with the value of the `metric` parameter.
//!             .measurement(CounterSpec::new("energy", "${metric}", "uuid", KeyKind::Uuid, Unit::Joules))
//!             .param(ParamSpec::text("metric", "Counter to read", Some("my_joules_total")))
//!     }
//!
//!     fn attribute(input: AttributionInput, _params: Params) -> Result<Attribution, String> {
//!         Ok(Attribution {
//!             placements: input.per_vm_energy("energy", 2.0)?,
//!             ..Attribution::default()
//!         })
//!     }
//! }
//!
//! wattson_plugin::register_model!(MyModel);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the
//! `.wasm` in `target/wasm32-wasip2/release/` is the component a policy names.
//!
//! # Parameters and measurement placeholders
//!
//! A plugin declares its parameters ([`ParamSpec`]) with kinds, domains
//! (the words of a `choice`, number bounds) and defaults; the host checks the
//! policy's values against them when the policy is checked (naming the file,
//! line, key, value and every allowed value) and applies the defaults, so
//! [`Params`] getters only fail on a name the plugin never declared, and a
//! plugin never re-checks its parameters.
//!
//! String fields of a [`Measurement`] (selectors, key labels, templates, zone
//! names, …) may contain `${param_name}` placeholders: before measuring, the
//! host replaces each with the validated, defaults-applied value of that
//! parameter. That is how a model makes its metric configurable.

#![deny(missing_docs)]

#[cfg(not(any(feature = "model", feature = "format")))]
compile_error!(
    "wattson-plugin: enable the feature `model` (attribution model) or `format` (output format)"
);

mod builders;
#[cfg(feature = "model")]
pub mod gpu;
#[cfg(feature = "model")]
mod input;
pub mod openmetrics;
mod params;
/// `docs/ENERGY.md#share-models`: a host's energy split by CPU time, idle energy by policy.
#[cfg(feature = "model")]
pub mod share;
mod time;
mod units;

#[cfg(feature = "model")]
pub use input::FirstPlacements;
pub use params::{Params, Setting, glob_match};
pub use time::{rfc3339_millis, unix_seconds};

/// Generated bindings and glue used by the `register_*!` macros; not public API.
#[doc(hidden)]
pub mod __private {
    /// Bindings of the `attribution-model` world.
    #[cfg(feature = "model")]
    #[allow(missing_docs, clippy::too_many_arguments)]
    pub mod model_bindings {
        wit_bindgen::generate!({
            path: "wit/since_v0.3.0",
            world: "wattson:plugin/attribution-model@0.3.0",
            pub_export_macro: true,
            export_macro_name: "export_attribution_model",
        });
    }

    /// Bindings of the `output-format` world, sharing `types` and `host` with
    /// the model's when both features are on.
    #[cfg(all(feature = "format", feature = "model"))]
    #[allow(missing_docs, clippy::too_many_arguments)]
    pub mod format_bindings {
        wit_bindgen::generate!({
            path: "wit/since_v0.3.0",
            world: "wattson:plugin/output-format@0.3.0",
            pub_export_macro: true,
            export_macro_name: "export_output_format",
            with: {
                "wattson:plugin/types@0.3.0": super::model_bindings::wattson::plugin::types,
                "wattson:plugin/host@0.3.0": super::model_bindings::wattson::plugin::host,
            },
        });
    }

    /// Bindings of the `output-format` world.
    #[cfg(all(feature = "format", not(feature = "model")))]
    #[allow(missing_docs, clippy::too_many_arguments)]
    pub mod format_bindings {
        wit_bindgen::generate!({
            path: "wit/since_v0.3.0",
            world: "wattson:plugin/output-format@0.3.0",
            pub_export_macro: true,
            export_macro_name: "export_output_format",
        });
    }

    #[cfg(not(feature = "model"))]
    pub use format_bindings as core_bindings;
    /// The bindings `types` and `host` come from.
    #[cfg(feature = "model")]
    pub use model_bindings as core_bindings;

    #[cfg(feature = "format")]
    pub use format_bindings::export_output_format;
    #[cfg(feature = "model")]
    pub use model_bindings::export_attribution_model;

    use core::marker::PhantomData;

    /// Implements the generated `Guest` trait for a [`crate::Model`].
    #[cfg(feature = "model")]
    pub struct ModelAdapter<T>(PhantomData<T>);

    #[cfg(feature = "model")]
    impl<T: crate::Model> model_bindings::Guest for ModelAdapter<T> {
        fn describe() -> crate::ModelInfo {
            T::describe()
        }

        fn attribute(
            input: crate::AttributionInput,
            params: Vec<crate::Param>,
        ) -> Result<crate::Attribution, String> {
            T::attribute(input, crate::Params::new(params))
        }
    }

    /// Implements the generated `Guest` trait for a [`crate::Format`].
    #[cfg(feature = "format")]
    pub struct FormatAdapter<T>(PhantomData<T>);

    #[cfg(feature = "format")]
    impl<T: crate::Format> format_bindings::Guest for FormatAdapter<T> {
        fn describe() -> crate::FormatInfo {
            T::describe()
        }

        fn render(
            records: Vec<crate::EnergyRecord>,
            params: Vec<crate::Param>,
        ) -> Result<Vec<Vec<u8>>, String> {
            T::render(records, crate::Params::new(params))
        }
    }
}

/// The types of `wattson:plugin@0.3.0`, the WIT version this SDK builds
/// against (also re-exported at the crate root and as [`latest`]).
pub mod since_v0_3_0 {
    /// The WIT package version.
    pub const VERSION: &str = "0.3.0";

    pub use crate::__private::core_bindings::wattson::plugin::types::{
        Bounds, ChoiceSpec, CounterSpec, GaugeSpec, GpuSpec, HostPowerSpec, IdlePowerSpec, KeyKind,
        Level, Measurement, Param, ParamKind, ParamSpec, ParamValue, Quality, RaplSpec,
        TemplateSpec, Unit, Window,
    };

    #[cfg(feature = "model")]
    pub use crate::__private::model_bindings::wattson::plugin::model::{
        Attribution, AttributionInput, Conservation, GpuHolding, GpuMode, GpuReading, HostEnergy,
        Measured, ModelInfo, Placement, PlacementEnergy, Reading, UnattributedReason, Vm,
        VmDetails,
    };

    #[cfg(feature = "format")]
    pub use crate::__private::format_bindings::wattson::plugin::format::{
        EnergyRecord, FormatInfo, RecordQuality, Status,
    };
}

pub use since_v0_3_0 as latest;
pub use since_v0_3_0::*;

use __private::core_bindings::wattson::plugin::host;

/// An attribution model: declares its measurements and turns their results
/// into joules per VM placement.
///
/// Register the implementing type with [`register_model!`].
#[cfg(feature = "model")]
pub trait Model {
    /// Describes the model: name, version, the measurements the host must
    /// make for it, its parameters, for share models the conservation law
    /// the host checks, and whether its joules are measured or estimated.
    fn describe() -> ModelInfo;

    /// Attributes one window. `input.measurements` holds one [`Measured`]
    /// per declared measurement, aligned with `input.vms` and `input.hosts`
    /// (and, VM-keyed ones, `input.placements`);
    /// `input.placements` puts each VM on its host(s).
    ///
    /// Return joules per placement (only `assigned` placements of the input,
    /// each at most once, finite and non-negative; a VM's record is the sum
    /// of its placements') and, for share models, the host energy left
    /// unattributed with its reason. An `Err` fails the window with that message.
    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String>;
}

/// An output format: renders per-VM energy records into payloads.
///
/// Register the implementing type with [`register_format!`].
#[cfg(feature = "format")]
pub trait Format {
    /// Describes the format: name, version, media type, file extension and
    /// parameters.
    fn describe() -> FormatInfo;

    /// Renders records into payloads; the messenger ships each payload as
    /// one message (batching is the format's choice). An `Err` fails the
    /// window with that message.
    fn render(records: Vec<EnergyRecord>, params: Params) -> Result<Vec<Vec<u8>>, String>;
}

/// Exports a [`Model`] implementation as this component's
/// `attribution-model` world.
///
/// Use it exactly once, at the top level of a `cdylib` crate:
///
/// ```ignore
/// wattson_plugin::register_model!(MyModel);
/// ```
#[cfg(feature = "model")]
#[macro_export]
macro_rules! register_model {
    ($model:ty) => {
        const _: () = {
            type __WattsonModelAdapter = $crate::__private::ModelAdapter<$model>;
            $crate::__private::export_attribution_model!(
                __WattsonModelAdapter with_types_in $crate::__private::model_bindings
            );
        };
    };
}

/// Exports a [`Format`] implementation as this component's `output-format`
/// world.
///
/// Use it exactly once, at the top level of a `cdylib` crate:
///
/// ```ignore
/// wattson_plugin::register_format!(MyFormat);
/// ```
#[cfg(feature = "format")]
#[macro_export]
macro_rules! register_format {
    ($format:ty) => {
        const _: () = {
            type __WattsonFormatAdapter = $crate::__private::FormatAdapter<$format>;
            $crate::__private::export_output_format!(
                __WattsonFormatAdapter with_types_in $crate::__private::format_bindings
            );
        };
    };
}

/// Writes a line to the host's log, tagged with the plugin's name.
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Logs `message` at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs `message` at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs `message` at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs `message` at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs `message` at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Logs a `format!`-style message at [`Level::Trace`].
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log($crate::Level::Trace, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Debug`].
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Info`].
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Warn`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Error`].
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::std::format!($($arg)*)) };
}
