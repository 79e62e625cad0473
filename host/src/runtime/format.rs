//! A loaded output format.

use wasmtime::component::Component;

use super::bindings::format::OutputFormatPre;
use super::bindings::{EnergyRecord, FormatInfo, Param};
use super::call::{new_store, trapped};
use super::error::{PluginError, PluginId};
use super::{Runtime, validate};

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
        let invalid = |reason: String| PluginError::Invalid {
            plugin: id.clone(),
            kind: super::PluginKind::Format,
            reason,
        };
        let instance_pre = runtime
            .inner
            .format_linker
            .instantiate_pre(component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = OutputFormatPre::new(instance_pre).map_err(|e| invalid(format!("{e:#}")))?;
        let mut store = new_store(&runtime, &id);
        let limits = runtime.limits().clone();
        let info = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_describe(&mut store))
            .map_err(|e| trapped(&id, &store, &limits, e))?;
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
        let mut store = new_store(&self.runtime, &self.id);
        let limits = self.runtime.limits();
        let answer = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_render(&mut store, records, params))
            .map_err(|e| trapped(&self.id, &store, limits, e))?;
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
