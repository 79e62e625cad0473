//! A loaded output format, of whichever WIT version it was built for.

use wasmtime::component::Component;

use super::call::sandboxed;
use super::error::{PluginError, PluginId};
use super::state::PluginState;
use super::wit::{WitVersion, latest, since_v0_1_0, since_v0_2_0};
use super::world::prepare;
use super::{EnergyRecord, FormatInfo, Param};
use super::{Runtime, validate};

/// The pre-linked component, by the version it exports.
enum Pre {
    V0_1(since_v0_1_0::format::OutputFormatPre<PluginState>),
    V0_2(since_v0_2_0::format::OutputFormatPre<PluginState>),
    V0_3(latest::format::OutputFormatPre<PluginState>),
}

/// An output format, compiled and pre-linked; each call gets a fresh sandbox.
pub struct Format {
    runtime: Runtime,
    id: PluginId,
    pre: Pre,
    info: FormatInfo,
}

impl Format {
    pub(crate) fn load(
        runtime: Runtime,
        id: PluginId,
        component: &Component,
        version: WitVersion,
    ) -> Result<Self, PluginError> {
        let (pre, info) = match version {
            WitVersion::V0_3_0 => {
                let (pre, info) = prepare(&runtime, &id, component)?;
                (Pre::V0_3(pre), info)
            }
            WitVersion::V0_2_0 => {
                let (pre, info) = prepare(&runtime, &id, component)?;
                (Pre::V0_2(pre), since_v0_2_0::format_info(info))
            }
            WitVersion::V0_1_0 => {
                let (pre, info) = prepare(&runtime, &id, component)?;
                (Pre::V0_1(pre), since_v0_1_0::format_info(info))
            }
        };
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

    /// What `describe()` returned when the format was loaded (in the latest WIT's types).
    pub fn info(&self) -> &FormatInfo {
        &self.info
    }

    /// The WIT version the component was built against.
    pub fn wit_version(&self) -> WitVersion {
        match self.pre {
            Pre::V0_1(_) => WitVersion::V0_1_0,
            Pre::V0_2(_) => WitVersion::V0_2_0,
            Pre::V0_3(_) => WitVersion::V0_3_0,
        }
    }

    /// Renders records into payloads (one message each) in a fresh sandbox.
    pub fn render(
        &self,
        records: &[EnergyRecord],
        params: &[Param],
    ) -> Result<Vec<Vec<u8>>, PluginError> {
        let answer = match &self.pre {
            Pre::V0_3(pre) => sandboxed(&self.runtime, &self.id, |store| {
                pre.instantiate(&mut *store)?
                    .call_render(store, records, params)
            })?,
            Pre::V0_2(pre) => {
                let records = since_v0_2_0::records(records);
                let params = since_v0_2_0::params(params);
                sandboxed(&self.runtime, &self.id, |store| {
                    pre.instantiate(&mut *store)?
                        .call_render(store, &records, &params)
                })?
            }
            Pre::V0_1(pre) => {
                let records = since_v0_1_0::records(records);
                let params = since_v0_1_0::params(params);
                sandboxed(&self.runtime, &self.id, |store| {
                    pre.instantiate(&mut *store)?
                        .call_render(store, &records, &params)
                })?
            }
        };
        let payloads = answer.map_err(|message| PluginError::Failed {
            plugin: self.id.clone(),
            message,
        })?;
        validate::output_size(payloads.iter().map(Vec::len).sum(), self.runtime.limits()).map_err(
            |reason| PluginError::BadOutput {
                plugin: self.id.clone(),
                reason,
            },
        )?;
        Ok(payloads)
    }
}
