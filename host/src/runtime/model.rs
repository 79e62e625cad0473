//! A loaded attribution model, of whichever WIT version it was built for.

use wasmtime::component::Component;

use super::call::sandboxed;
use super::error::{PluginError, PluginId};
use super::state::PluginState;
use super::wit::{WitVersion, latest, since_v0_1_0, since_v0_2_0};
use super::world::prepare;
use super::{Attribution, AttributionInput, ModelInfo, Param, ParamValue};
use super::{Runtime, units, validate};

/// The pre-linked component, by the version it exports.
enum Pre {
    V0_1 {
        pre: since_v0_1_0::model::AttributionModelPre<PluginState>,
        /// 0.1.0's conservation `factor-param`: E_h is multiplied by its value.
        factor_param: Option<String>,
    },
    V0_2(since_v0_2_0::model::AttributionModelPre<PluginState>),
    V0_3(latest::model::AttributionModelPre<PluginState>),
}

/// An attribution model, compiled and pre-linked; each call gets a fresh sandbox.
pub struct Model {
    runtime: Runtime,
    id: PluginId,
    pre: Pre,
    info: ModelInfo,
}

/// Largest conservation tolerance a model may declare.
const MAX_TOLERANCE: f64 = 1e-6;

impl Model {
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
                (Pre::V0_2(pre), since_v0_2_0::model_info(info))
            }
            WitVersion::V0_1_0 => {
                let (pre, info) = prepare(&runtime, &id, component)?;
                let (info, factor_param) = since_v0_1_0::model_info(info);
                (Pre::V0_1 { pre, factor_param }, info)
            }
        };
        check_info(&info).map_err(|reason| PluginError::BadOutput {
            plugin: id.clone(),
            reason: format!("describe(): {reason}"),
        })?;
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

    /// What `describe()` returned when the model was loaded (in the latest WIT's types).
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The WIT version the component was built against.
    pub fn wit_version(&self) -> WitVersion {
        match self.pre {
            Pre::V0_1 { .. } => WitVersion::V0_1_0,
            Pre::V0_2(_) => WitVersion::V0_2_0,
            Pre::V0_3(_) => WitVersion::V0_3_0,
        }
    }

    /// Attributes one window in a fresh sandbox, then checks the result
    /// (finite, non-negative, known, unique and assigned placements, known
    /// hosts, conservation if declared).
    pub fn attribute(
        &self,
        input: &AttributionInput,
        params: &[Param],
    ) -> Result<Attribution, PluginError> {
        let bad = |reason: String| PluginError::BadOutput {
            plugin: self.id.clone(),
            reason,
        };
        let failed = |message: String| PluginError::Failed {
            plugin: self.id.clone(),
            message,
        };
        let (attribution, factor) = match &self.pre {
            Pre::V0_3(pre) => {
                let answer = sandboxed(&self.runtime, &self.id, |store| {
                    pre.instantiate(&mut *store)?
                        .call_attribute(store, input, params)
                })?;
                (answer.map_err(failed)?, 1.0)
            }
            Pre::V0_2(pre) => {
                let old_input = since_v0_2_0::input(input);
                let old_params = since_v0_2_0::params(params);
                let answer = sandboxed(&self.runtime, &self.id, |store| {
                    pre.instantiate(&mut *store)?
                        .call_attribute(store, &old_input, &old_params)
                })?;
                (since_v0_2_0::attribution(answer.map_err(failed)?), 1.0)
            }
            Pre::V0_1 { pre, factor_param } => {
                let old_input = since_v0_1_0::input(input);
                let old_params = since_v0_1_0::params(params);
                let answer = sandboxed(&self.runtime, &self.id, |store| {
                    pre.instantiate(&mut *store)?
                        .call_attribute(store, &old_input, &old_params)
                })?;
                let attribution =
                    since_v0_1_0::attribution(input, answer.map_err(failed)?).map_err(bad)?;
                (
                    attribution,
                    factor(factor_param.as_deref(), params).map_err(bad)?,
                )
            }
        };
        validate::output_size(
            (attribution.placements.len() + attribution.unattributed.len()) * 16,
            self.runtime.limits(),
        )
        .map_err(bad)?;
        validate::attribution(&self.info, input, &attribution, factor, params).map_err(bad)?;
        Ok(attribution)
    }
}

/// What `describe()` must hold: units that fit each measurement kind, and a
/// small conservation tolerance.
fn check_info(info: &ModelInfo) -> Result<(), String> {
    units::check(&info.measurements)?;
    if let Some(law) = &info.conservation
        && !(law.tolerance.is_finite() && (0.0..=MAX_TOLERANCE).contains(&law.tolerance))
    {
        return Err(format!(
            "its conservation tolerance {:e} is not between 0 and {MAX_TOLERANCE:e}",
            law.tolerance
        ));
    }
    Ok(())
}

/// The value of 0.1.0's conservation factor parameter (1 without one).
fn factor(name: Option<&str>, params: &[Param]) -> Result<f64, String> {
    let Some(name) = name else { return Ok(1.0) };
    match params.iter().find(|p| p.name == name).map(|p| &p.value) {
        Some(ParamValue::Number(x)) => Ok(*x),
        Some(ParamValue::Integer(x)) => Ok(*x as f64),
        _ => Err(format!(
            "conservation factor parameter `{name}` is not a number"
        )),
    }
}
