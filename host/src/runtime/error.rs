//! Errors of plugin loading and calls, each naming the plugin.

use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::builtins::PluginKind;

/// A plugin's name and the sha256 of its component, as errors and logs show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginId {
    /// Builtin name, or the file stem of a component given by path.
    pub name: String,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
}

impl PluginId {
    pub(crate) fn new(name: String, bytes: &[u8]) -> Self {
        Self {
            name,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin `{}` (sha256:{})", self.name, &self.sha256[..12])
    }
}

/// Why a plugin could not be loaded or did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Neither a builtin nor an existing file.
    #[error(
        "plugin `{plugin}` not found: not a builtin (builtins: {builtins}) and not a path to a .wasm file"
    )]
    NotFound {
        /// The reference as given.
        plugin: String,
        /// Builtins of the wanted kind.
        builtins: String,
    },
    /// A builtin of the other kind (a format where a model is wanted, or back).
    #[error("plugin `{plugin}` is a builtin {is}, not a {wanted}")]
    WrongKind {
        /// The reference as given.
        plugin: String,
        /// What it is.
        is: PluginKind,
        /// What was wanted.
        wanted: PluginKind,
    },
    /// The component file cannot be read.
    #[error("cannot read plugin file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, not the error chain).
        error: std::io::Error,
    },
    /// Not a component, or not one of the wanted world.
    #[error("{plugin} is not a valid {kind} component: {reason}")]
    Invalid {
        /// The plugin.
        plugin: PluginId,
        /// What it was loaded as.
        kind: PluginKind,
        /// wasmtime's reason.
        reason: String,
    },
    /// A component of the other world (a format where a model is wanted, or back).
    #[error("{plugin} is not a valid {wanted} component: it is an {} component ({version})", is.world())]
    OtherWorld {
        /// The plugin.
        plugin: PluginId,
        /// What it was loaded as.
        wanted: PluginKind,
        /// What it is.
        is: PluginKind,
        /// The WIT version it was built against.
        version: super::wit::WitVersion,
    },
    /// The engine itself could not be set up.
    #[error("plugin runtime: {0}")]
    Engine(String),
    /// The call trapped or broke a limit.
    #[error("{plugin} {reason}")]
    Trapped {
        /// The plugin.
        plugin: PluginId,
        /// What happened, e.g. `exceeded its time limit of 2000 ms`.
        reason: String,
    },
    /// The plugin returned its own error.
    #[error("{plugin} failed: {message}")]
    Failed {
        /// The plugin.
        plugin: PluginId,
        /// The plugin's message.
        message: String,
    },
    /// The plugin answered, but the answer breaks the contract.
    #[error("{plugin} returned an invalid result: {reason}")]
    BadOutput {
        /// The plugin.
        plugin: PluginId,
        /// What is wrong with it.
        reason: String,
    },
}

impl PluginError {
    pub(crate) fn engine(e: impl fmt::Display) -> Self {
        Self::Engine(e.to_string())
    }
}
