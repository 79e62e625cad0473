//! A loaded attribution model.

use wasmtime::component::Component;

use super::bindings::model::AttributionModelPre;
use super::bindings::{Attribution, AttributionInput, ModelInfo, Param};
use super::call::{new_store, trapped};
use super::error::{PluginError, PluginId};
use super::{Runtime, validate};

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
        let invalid = |reason: String| PluginError::Invalid {
            plugin: id.clone(),
            kind: super::PluginKind::Model,
            reason,
        };
        let instance_pre = runtime
            .inner
            .model_linker
            .instantiate_pre(component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = AttributionModelPre::new(instance_pre).map_err(|e| invalid(format!("{e:#}")))?;
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
        let mut store = new_store(&self.runtime, &self.id);
        let limits = self.runtime.limits();
        let answer = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_attribute(&mut store, input, params))
            .map_err(|e| trapped(&self.id, &store, limits, e))?;
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
