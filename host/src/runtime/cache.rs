//! On-disk cache of compiled components, keyed by the component's sha256 and
//! the engine's configuration, so cron runs do not recompile.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::PluginId;

/// A directory of `<component sha256>-<engine hash>.cwasm` files.
pub(crate) struct Cache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into sha256 (stable across runs, unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl Cache {
    /// Opens (creating, mode 0700) the cache directory; `None` with a warning
    /// when it cannot be used or cannot be trusted: compiled components are
    /// native code, so the directory must be ours and writable by nobody else.
    pub(crate) fn open(dir: PathBuf, engine: &Engine) -> Option<Self> {
        if let Err(reason) = trusted_dir(&dir) {
            tracing::warn!(
                "plugin cache {} not used ({reason}); compiling plugins in memory",
                dir.display()
            );
            return None;
        }
        let mut hasher = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Some(Self { dir, engine_key })
    }

    fn path(&self, id: &PluginId) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", id.sha256, self.engine_key))
    }

    /// The compiled component, from the cache if there, else compiled and stored.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        id: &PluginId,
        bytes: &[u8],
    ) -> Result<Component, String> {
        let path = self.path(id);
        if path.exists() {
            // SAFETY: files in this directory are written only by `store` below,
            // from `Engine::precompile_component` of a configuration with the same
            // compatibility hash (it is in the file name).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(
                    "cached plugin {} unusable ({e}); recompiling",
                    path.display()
                ),
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| format!("{e:#}"))?;
        if let Err(e) = store(&path, &compiled) {
            tracing::warn!("cannot write plugin cache {}: {e}", path.display());
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| format!("{e:#}"))
    }
}

/// Creates `dir` (0700) if needed and checks it is owned by this user and not
/// writable by group or others.
fn trusted_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())?;
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    let probe = tempfile::tempfile_in(dir).map_err(|e| e.to_string())?;
    let me = probe.metadata().map_err(|e| e.to_string())?.uid();
    if meta.uid() != me {
        return Err(format!(
            "owned by uid {}, not by this user (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o}); chmod 700 it",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// Writes to a temporary file in the same directory, then renames.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
