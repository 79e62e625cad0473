//! A component pre-linked as one world of one WIT version, and its
//! `describe()`: every version's `*Pre` loads through [`prepare`], so a new
//! WIT version adds a line to [`world_pre!`]'s list here and one arm per
//! plugin kind in `model.rs` and `format.rs`.

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::call::sandboxed;
use super::error::{PluginError, PluginId};
use super::state::PluginState;
use super::wit::{latest, since_v0_1_0, since_v0_2_0};
use super::{PluginKind, Runtime};

/// A world's pre-linked component (`bindgen!`'s `*Pre`) of one WIT version.
pub(crate) trait WorldPre: Sized {
    /// The kind of plugin that exports this world.
    const KIND: PluginKind;
    /// What `describe()` returns, in this version's types.
    type Info;
    /// Wraps an instance pre-linked with the host's linker.
    fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Self>;
    /// Instantiates the component in `store` and calls its `describe()`.
    fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Self::Info>;
}

/// Implements [`WorldPre`] for each `*Pre => kind, describe()'s type`.
macro_rules! world_pre {
    ($($pre:ty => $kind:ident, $info:ty;)*) => {$(
        impl WorldPre for $pre {
            const KIND: PluginKind = PluginKind::$kind;
            type Info = $info;

            fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
                <$pre>::new(pre)
            }

            fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Self::Info> {
                self.instantiate(&mut *store)?.call_describe(store)
            }
        }
    )*};
}

world_pre! {
    latest::model::AttributionModelPre<PluginState> => Model, latest::ModelInfo;
    latest::format::OutputFormatPre<PluginState> => Format, latest::FormatInfo;
    since_v0_2_0::model::AttributionModelPre<PluginState> =>
        Model, since_v0_2_0::model::wattson::plugin::model::ModelInfo;
    since_v0_2_0::format::OutputFormatPre<PluginState> =>
        Format, since_v0_2_0::format::wattson::plugin::format::FormatInfo;
    since_v0_1_0::model::AttributionModelPre<PluginState> =>
        Model, since_v0_1_0::model::wattson::plugin::model::ModelInfo;
    since_v0_1_0::format::OutputFormatPre<PluginState> =>
        Format, since_v0_1_0::format::wattson::plugin::format::FormatInfo;
}

/// Pre-links `component` as world `P` with the runtime's linker, then calls
/// its `describe()` once in a sandbox.
pub(crate) fn prepare<P: WorldPre>(
    runtime: &Runtime,
    id: &PluginId,
    component: &Component,
) -> Result<(P, P::Info), PluginError> {
    let invalid = |e: wasmtime::Error| PluginError::Invalid {
        plugin: id.clone(),
        kind: P::KIND,
        reason: format!("{e:#}"),
    };
    let pre = runtime
        .inner
        .linker
        .instantiate_pre(component)
        .and_then(P::new)
        .map_err(invalid)?;
    let info = sandboxed(runtime, id, |store| pre.describe(store))?;
    Ok((pre, info))
}
