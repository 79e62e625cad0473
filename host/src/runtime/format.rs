//! A loaded output format.

use wasmtime::component::Component;

use super::bindings::format::OutputFormatPre;
use super::bindings::{EnergyRecord, FormatInfo, Param};
use super::call::{prepare, sandboxed};
use super::error::{PluginError, PluginId};
use super::{PluginKind, Runtime, validate};

/// An output format, compiled and pre-linked; each call gets a fresh sandbox.
pub struct Format {
    runtime: Runtime,
    id: PluginId,
    pre: OutputFormatPre<super::state::PluginState>,
    info: FormatInfo,
}

impl Format {
    pub(crate) fn load(
        runtime: Runtime,
        id: PluginId,
        component: &Component,
    ) -> Result<Self, PluginError> {
        let (pre, info) = prepare(
            &runtime,
            &id,
            PluginKind::Format,
            &runtime.inner.format_linker,
            component,
            OutputFormatPre::new,
            |pre: &OutputFormatPre<_>, store| pre.instantiate(&mut *store)?.call_describe(store),
        )?;
        Ok(Self {
            runtime,
            id,
            pre,
            info,
        })
    }

    /// The plugin's name and hash.
    pub fn id(&self) -> &PluginId {
        &self.id
    }

    /// What `describe()` returned when the format was loaded.
    pub fn info(&self) -> &FormatInfo {
        &self.info
    }

    /// Renders records into payloads (one message each) in a fresh sandbox.
    pub fn render(
        &self,
        records: &[EnergyRecord],
        params: &[Param],
    ) -> Result<Vec<Vec<u8>>, PluginError> {
        let answer = sandboxed(&self.runtime, &self.id, |store| {
            self.pre
                .instantiate(&mut *store)?
                .call_render(store, records, params)
        })?;
        let limits = self.runtime.limits();
        let payloads = answer.map_err(|message| PluginError::Failed {
            plugin: self.id.clone(),
            message,
        })?;
        validate::output_size(payloads.iter().map(Vec::len).sum(), limits).map_err(|reason| {
            PluginError::BadOutput {
                plugin: self.id.clone(),
                reason,
            }
        })?;
        Ok(payloads)
    }
}
