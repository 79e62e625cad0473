//! The SDK for wattson plugins.
//!
//! wattson attributes the energy of cloud hosts to their VMs. Two things are
//! pluggable, each a WebAssembly component built for `wasm32-wasip2` against
//! the `wattson:plugin@0.1.0` WIT package (`wit/plugin.wit`):
//!
//! * an **attribution model** (cargo feature `model`) declares the
//!   measurements it needs and turns their results into joules per VM;
//! * an **output format** (cargo feature `format`) renders per-VM energy
//!   records into payloads that a messenger ships, one message each.
//!
//! A plugin crate enables exactly one of the two features, writes a type, an
//! impl of [`Model`] or [`Format`], and one `register_model!` /
//! `register_format!` line. This crate generates the WIT bindings in a hidden
//! module and re-exports their types under the names below, so plugin authors
//! never touch `wit-bindgen`.
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
//! wattson-plugin = { version = "0.1", features = ["model"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use wattson_plugin::{
//!     Attribution, AttributionInput, CounterSpec, KeyKind, Measurement, Model, ModelInfo,
//!     ParamSpec, Params, Unit, VmEnergy,
//! };
//!
//! struct MyModel;
//!
//! impl Model for MyModel {
//!     fn describe() -> ModelInfo {
//!         ModelInfo {
//!             name: "my-model".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             description: "Joules of a per-VM counter, doubled".into(),
//!             measurements: vec![Measurement::Counter(CounterSpec {
//!                 name: "energy".into(),
//!                 // Replaced by the host with the value of the `metric` parameter.
//!                 selector: "${metric}".into(),
//!                 key_label: "uuid".into(),
//!                 key: KeyKind::Uuid,
//!                 unit: Unit::Joules,
//!                 wrap_range: None,
//!             })],
//!             params: vec![ParamSpec::text("metric", "Counter to read", Some("my_joules_total"))],
//!             conservation: None,
//!         }
//!     }
//!
//!     fn attribute(input: AttributionInput, _params: Params) -> Result<Attribution, String> {
//!         let energy = input.measured("energy")?;
//!         let vms = input
//!             .vms
//!             .iter()
//!             .zip(&energy.vms)
//!             .filter_map(|(vm, reading)| {
//!                 let joules = 2.0 * reading.as_ref()?.value;
//!                 Some(VmEnergy { uuid: vm.uuid.clone(), joules })
//!             })
//!             .collect();
//!         Ok(Attribution { vms, unattributed: Vec::new() })
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
//! A plugin declares its parameters ([`ParamSpec`]) with kinds and defaults;
//! the host validates the policy's values against them and applies the
//! defaults, so [`Params`] getters only fail on a name the plugin never
//! declared.
//!
//! String fields of a [`Measurement`] (selectors, key labels, templates, zone
//! names, …) may contain `${param_name}` placeholders: before measuring, the
//! host replaces each with the validated, defaults-applied value of that
//! parameter. That is how a model makes its metric configurable.

#![deny(missing_docs)]

#[cfg(all(feature = "model", feature = "format"))]
compile_error!(
    "wattson-plugin: enable exactly one of the features `model` and `format` \
     (a component can implement only one world); when building several plugins \
     of one workspace, build them one at a time with `cargo build -p <plugin>`"
);

#[cfg(not(any(feature = "model", feature = "format")))]
compile_error!(
    "wattson-plugin: enable the feature `model` (attribution model) or `format` (output format)"
);

mod params;
mod time;

pub use params::Params;
pub use time::{rfc3339_millis, unix_seconds};

/// Generated bindings and glue used by the `register_*!` macros; not public API.
#[doc(hidden)]
pub mod __private {
    /// Bindings of the `attribution-model` world.
    #[cfg(feature = "model")]
    #[allow(missing_docs, clippy::too_many_arguments)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "wattson:plugin/attribution-model@0.1.0",
            pub_export_macro: true,
            export_macro_name: "export_attribution_model",
        });
    }

    /// Bindings of the `output-format` world.
    #[cfg(all(feature = "format", not(feature = "model")))]
    #[allow(missing_docs, clippy::too_many_arguments)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "wattson:plugin/output-format@0.1.0",
            pub_export_macro: true,
            export_macro_name: "export_output_format",
        });
    }

    #[cfg(feature = "model")]
    pub use bindings::export_attribution_model;
    #[cfg(all(feature = "format", not(feature = "model")))]
    pub use bindings::export_output_format;

    use core::marker::PhantomData;

    /// Implements the generated `Guest` trait for a [`crate::Model`].
    #[cfg(feature = "model")]
    pub struct ModelAdapter<T>(PhantomData<T>);

    #[cfg(feature = "model")]
    impl<T: crate::Model> bindings::Guest for ModelAdapter<T> {
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
    #[cfg(all(feature = "format", not(feature = "model")))]
    pub struct FormatAdapter<T>(PhantomData<T>);

    #[cfg(all(feature = "format", not(feature = "model")))]
    impl<T: crate::Format> bindings::Guest for FormatAdapter<T> {
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

use __private::bindings::wattson::plugin::{host, types};

pub use types::{
    CounterSpec, GaugeSpec, KeyKind, Level, Measurement, Param, ParamKind, ParamSpec, ParamValue,
    RaplSpec, TemplateSpec, Unit, Window,
};

#[cfg(feature = "model")]
pub use __private::bindings::wattson::plugin::model::{
    Attribution, AttributionInput, Conservation, HostEnergy, Measured, ModelInfo, Reading, Vm,
    VmDetails, VmEnergy,
};

#[cfg(all(feature = "format", not(feature = "model")))]
pub use __private::bindings::wattson::plugin::format::{EnergyRecord, FormatInfo};

/// An attribution model: declares its measurements and turns their results
/// into joules per VM.
///
/// Register the implementing type with [`register_model!`].
#[cfg(feature = "model")]
pub trait Model {
    /// Describes the model: name, version, the measurements the host must
    /// make for it, its parameters and, for share models, the conservation
    /// law the host checks.
    fn describe() -> ModelInfo;

    /// Attributes one window. `input.measurements` holds one [`Measured`]
    /// per declared measurement, aligned with `input.vms` and `input.hosts`.
    ///
    /// Return joules per VM uuid (only uuids of `input.vms`, each at most
    /// once, finite and non-negative) and, for share models, the host energy
    /// left unattributed. An `Err` fails the window with that message.
    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String>;
}

/// An output format: renders per-VM energy records into payloads.
///
/// Register the implementing type with [`register_format!`].
#[cfg(all(feature = "format", not(feature = "model")))]
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
                __WattsonModelAdapter with_types_in $crate::__private::bindings
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
#[cfg(all(feature = "format", not(feature = "model")))]
#[macro_export]
macro_rules! register_format {
    ($format:ty) => {
        const _: () = {
            type __WattsonFormatAdapter = $crate::__private::FormatAdapter<$format>;
            $crate::__private::export_output_format!(
                __WattsonFormatAdapter with_types_in $crate::__private::bindings
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

impl ParamSpec {
    /// A text parameter; `default: None` makes it required.
    pub fn text(name: &str, description: &str, default: Option<&str>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Text,
            default.map(|d| ParamValue::Text(d.to_owned())),
        )
    }

    /// A number (f64) parameter; `default: None` makes it required.
    pub fn number(name: &str, description: &str, default: Option<f64>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Number,
            default.map(ParamValue::Number),
        )
    }

    /// An integer (i64) parameter; `default: None` makes it required.
    pub fn integer(name: &str, description: &str, default: Option<i64>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Integer,
            default.map(ParamValue::Integer),
        )
    }

    /// A boolean parameter; `default: None` makes it required.
    pub fn flag(name: &str, description: &str, default: Option<bool>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Flag,
            default.map(ParamValue::Flag),
        )
    }

    fn new(name: &str, description: &str, kind: ParamKind, default: Option<ParamValue>) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            kind,
            default,
        }
    }
}

#[cfg(feature = "model")]
impl AttributionInput {
    /// The results of the declared measurement `name`, or an error naming it
    /// when the host sent none (a bug: the host measures everything declared).
    pub fn measured(&self, name: &str) -> Result<&Measured, String> {
        self.measurements
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("the host sent no results for measurement `{name}`"))
    }

    /// Each VM's reading of the per-VM measurement `name` times `factor`, as
    /// its energy; VMs without a reading get no entry (so no record, never 0).
    pub fn per_vm_energy(&self, name: &str, factor: f64) -> Result<Vec<VmEnergy>, String> {
        let measured = self.measured(name)?;
        if measured.vms.len() != self.vms.len() {
            return Err(format!(
                "measurement `{name}` has {} VM entries for {} VMs",
                measured.vms.len(),
                self.vms.len()
            ));
        }
        Ok(self
            .vms
            .iter()
            .zip(&measured.vms)
            .filter_map(|(vm, reading)| {
                reading.as_ref().map(|r| VmEnergy {
                    uuid: vm.uuid.clone(),
                    joules: r.value * factor,
                })
            })
            .collect())
    }
}
