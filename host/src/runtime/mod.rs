//! The plugin runtime: one shared wasmtime [`Engine`](wasmtime::Engine), a
//! fresh sandboxed `Store` per call with time, memory, fuel and output limits,
//! an on-disk cache of compiled components, and the builtin plugins.
//!
//! Traps, limit breaches and invalid results become a [`PluginError`] naming
//! the plugin and the reason; the host process carries on.

mod builtins;
mod cache;
mod call;
mod error;
mod format;
mod limits;
mod model;
mod params;
mod state;
mod ticker;
mod units;
mod validate;
mod wasi;
pub mod wit;
mod world;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

pub use builtins::{BUILTINS, Builtin, PluginKind};
pub use error::{PluginError, PluginId};
pub use format::Format;
pub use limits::Limits;
pub use model::Model;
pub use params::{
    ParamProblem, expand_measurements, gpus_ignored, kind_name, resolve_params, substitute,
    value_text,
};
pub use units::{to_base, unit_name};
pub use wit::WitVersion;
pub use wit::latest::{
    Attribution, AttributionInput, Bounds, ChoiceSpec, Conservation, CounterSpec, EnergyRecord,
    FormatInfo, GaugeSpec, GpuHolding, GpuMode, GpuReading, GpuSpec, HostEnergy, HostPowerSpec,
    IdlePowerSpec, KeyKind, Level, Measured, Measurement, ModelInfo, Param, ParamKind, ParamSpec,
    ParamValue, Placement, PlacementEnergy, Quality, RaplSpec, Reading, RecordQuality, Status,
    TemplateSpec, UnattributedReason, Unit, Vm, VmDetails, Window,
};

use state::PluginState;

/// Checks a model's answer as [`Model::attribute`] does (finite,
/// non-negative, known and assigned placements once each, conservation per
/// host where declared). For the fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn check_attribution(
    info: &ModelInfo,
    input: &AttributionInput,
    result: &Attribution,
) -> Result<(), String> {
    validate::attribution(info, input, result, 1.0, &[])
}

pub(crate) use validate::gpu_measurement;

/// Epoch ticks per second (the ticker thread's rate).
const TICKS_PER_SEC: u64 = 100;

/// Compiles, caches and instantiates plugins. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// WASI and the host interfaces of every WIT version, for both worlds.
    linker: Linker<PluginState>,
    limits: Limits,
    cache: Option<cache::Cache>,
    /// Advances the epoch while calls run (their time limit).
    ticker: ticker::Ticker,
}

impl Runtime {
    /// A runtime with `limits` for every call, caching compiled components
    /// in `cache_dir` (none: compile in memory every time).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(limits.fuel.is_some());
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(PluginError::engine)?;
        let ticker = ticker::Ticker::spawn(&engine);

        let linker = linker(&engine).map_err(PluginError::engine)?;

        let cache = cache_dir.and_then(|dir| cache::Cache::open(dir, &engine));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                limits,
                cache,
                ticker,
            }),
        })
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Loads an attribution model: a builtin name or a path to a `.wasm` component.
    pub fn load_model(&self, reference: &str) -> Result<Model, PluginError> {
        let (id, component, version) = self.component(reference, PluginKind::Model)?;
        Model::load(self.clone(), id, &component, version)
    }

    /// Loads an output format: a builtin name or a path to a `.wasm` component.
    pub fn load_format(&self, reference: &str) -> Result<Format, PluginError> {
        let (id, component, version) = self.component(reference, PluginKind::Format)?;
        Format::load(self.clone(), id, &component, version)
    }

    /// The compiled component `reference` names, checked to be of `kind`,
    /// with the WIT version it was built against.
    fn component(
        &self,
        reference: &str,
        kind: PluginKind,
    ) -> Result<(PluginId, Component, WitVersion), PluginError> {
        let (name, bytes) = match builtins::find(reference) {
            Some(builtin) if builtin.kind == kind => (
                builtin.name.to_owned(),
                std::borrow::Cow::Borrowed(builtin.wasm),
            ),
            Some(builtin) => {
                return Err(PluginError::WrongKind {
                    plugin: reference.to_owned(),
                    is: builtin.kind,
                    wanted: kind,
                });
            }
            None => {
                let path = Path::new(reference);
                if !path.exists() || !looks_like_path(reference) {
                    return Err(PluginError::NotFound {
                        plugin: reference.to_owned(),
                        builtins: builtins::names(kind),
                    });
                }
                let bytes = std::fs::read(path).map_err(|error| PluginError::Read {
                    path: path.to_owned(),
                    error,
                })?;
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| reference.to_owned());
                (name, std::borrow::Cow::Owned(bytes))
            }
        };
        let id = PluginId::new(name, &bytes);
        let component = match &self.inner.cache {
            Some(cache) => cache.load_or_compile(&self.inner.engine, &id, &bytes),
            None => Component::new(&self.inner.engine, &*bytes).map_err(|e| e.to_string()),
        }
        .map_err(|reason| PluginError::Invalid {
            plugin: id.clone(),
            kind,
            reason,
        })?;
        let (is, version) =
            wit::detect(&component, &self.inner.engine).map_err(|reason| PluginError::Invalid {
                plugin: id.clone(),
                kind,
                reason,
            })?;
        if is != kind {
            return Err(PluginError::OtherWorld {
                plugin: id,
                wanted: kind,
                is,
                version,
            });
        }
        Ok((id, component, version))
    }
}

/// One linker for every plugin: the granted WASI, and the host interfaces of
/// both worlds of every WIT version (the worlds share `host` and `types`, so
/// later definitions shadow identical earlier ones).
fn linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    use wasmtime::component::HasSelf;
    let mut linker = Linker::new(engine);
    linker.allow_shadowing(true);
    wasi::add_to_linker(&mut linker)?;
    let l = &mut linker;
    wit::since_v0_1_0::model::AttributionModel::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    wit::since_v0_1_0::format::OutputFormat::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    wit::since_v0_2_0::model::AttributionModel::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    wit::since_v0_2_0::format::OutputFormat::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    wit::latest::model::AttributionModel::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    wit::latest::format::OutputFormat::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    Ok(linker)
}

/// A reference names a file when it has a path separator or a `.wasm` suffix.
fn looks_like_path(reference: &str) -> bool {
    reference.contains('/') || reference.ends_with(".wasm")
}

/// The default compile cache: `$WATTSON_CACHE_DIR`, else `$XDG_CACHE_HOME/wattson`,
/// else `$HOME/.cache/wattson`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WATTSON_CACHE_DIR") {
        return Some(dir.into());
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("wattson"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/wattson"))
}
