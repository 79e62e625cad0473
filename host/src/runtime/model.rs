//! A loaded attribution model.

use wasmtime::component::Component;

use super::bindings::model::AttributionModelPre;
use super::bindings::{Attribution, AttributionInput, ModelInfo, Param};
use super::call::{prepare, sandboxed};
use super::error::{PluginError, PluginId};
use super::{PluginKind, Runtime, validate};

/// An attribution model, compiled and pre-linked; each call gets a fresh sandbox.
pub struct Model {
    runtime: Runtime,
    id: PluginId,
    pre: AttributionModelPre<super::state::PluginState>,
    info: ModelInfo,
}

impl Model {
    pub(crate) fn load(
        runtime: Runtime,
        id: PluginId,
        component: &Component,
    ) -> Result<Self, PluginError> {
        let (pre, info) = prepare(
            &runtime,
            &id,
            PluginKind::Model,
            &runtime.inner.model_linker,
            component,
            AttributionModelPre::new,
            |pre: &AttributionModelPre<_>, store| {
                pre.instantiate(&mut *store)?.call_describe(store)
            },
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

    /// What `describe()` returned when the model was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Attributes one window in a fresh sandbox, then checks the result
    /// (finite, non-negative, known and unique uuids, conservation if declared).
    pub fn attribute(
        &self,
        input: &AttributionInput,
        params: &[Param],
    ) -> Result<Attribution, PluginError> {
        let answer = sandboxed(&self.runtime, &self.id, |store| {
            self.pre
                .instantiate(&mut *store)?
                .call_attribute(store, input, params)
        })?;
        let limits = self.runtime.limits();
        let attribution = answer.map_err(|message| PluginError::Failed {
            plugin: self.id.clone(),
            message,
        })?;
        let bad = |reason: String| PluginError::BadOutput {
            plugin: self.id.clone(),
            reason,
        };
        validate::output_size(
            attribution
                .vms
                .iter()
                .map(|v| v.uuid.len() + 8)
                .sum::<usize>()
                + attribution
                    .unattributed
                    .iter()
                    .map(|h| h.host.len() + 8)
                    .sum::<usize>(),
            limits,
        )
        .map_err(bad)?;
        validate::attribution(&self.info, input, params, &attribution).map_err(bad)?;
        Ok(attribution)
    }
}
