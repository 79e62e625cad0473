//! The spool: every rendered window is written here, complete and atomically,
//! before any messenger sees it; a payload is marked done when its messenger
//! accepted it; a window leaves the spool only once `lastrun` covers it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StateError, io, write_atomic};
use crate::policy::MessengerConfig;
use crate::window::Window;

/// The spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

/// What `window.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    start_ms: i64,
    end_ms: i64,
    /// A window the operator asked for with --from/--to: delivered, but it does not move lastrun.
    explicit: bool,
    records: usize,
    outputs: Vec<OutputManifest>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OutputManifest {
    format: String,
    extension: String,
    media_type: String,
    messenger: MessengerConfig,
    payloads: usize,
}

/// One output of a spooled window.
#[derive(Debug, Clone)]
pub struct SpooledOutput {
    /// The format that rendered it.
    pub format: String,
    /// The format's file extension.
    pub extension: String,
    /// The format's media type.
    pub media_type: String,
    /// Where it goes.
    pub messenger: MessengerConfig,
    /// How many payloads.
    pub payloads: usize,
}

/// A window in the spool.
#[derive(Debug)]
pub struct SpooledWindow {
    dir: PathBuf,
    /// The window.
    pub window: Window,
    /// Asked for explicitly (--from/--to): does not move lastrun.
    pub explicit: bool,
    /// Records rendered.
    pub records: usize,
    /// Its outputs, in policy order at render time.
    pub outputs: Vec<SpooledOutput>,
}

/// One output's rendered payloads, to spool.
pub struct Rendered<'a> {
    /// The format's name.
    pub format: &'a str,
    /// The format's file extension.
    pub extension: &'a str,
    /// The format's media type.
    pub media_type: &'a str,
    /// Where the payloads go.
    pub messenger: &'a MessengerConfig,
    /// The payloads.
    pub payloads: &'a [Vec<u8>],
}

impl Spool {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Writes a rendered window: into a temporary directory, renamed into place
    /// once complete, so a crash leaves either all of it or none.
    pub fn put(
        &self,
        window: Window,
        explicit: bool,
        records: usize,
        outputs: &[Rendered<'_>],
    ) -> Result<SpooledWindow, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        // Explicit (--from/--to) windows live apart from tracked ones with the same edges.
        let name = format!(
            "{}{}-{}",
            if explicit { "x" } else { "" },
            window.start_ms,
            window.end_ms
        );
        let final_dir = self.dir.join(&name);
        if final_dir.exists() {
            // Already spooled by an earlier run (same window, same ids): keep that one.
            return SpooledWindow::load(final_dir);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.dir)
            .map_err(io(&self.dir))?;
        let manifest = Manifest {
            start_ms: window.start_ms,
            end_ms: window.end_ms,
            explicit,
            records,
            outputs: outputs
                .iter()
                .map(|o| OutputManifest {
                    format: o.format.to_owned(),
                    extension: o.extension.to_owned(),
                    media_type: o.media_type.to_owned(),
                    messenger: o.messenger.clone(),
                    payloads: o.payloads.len(),
                })
                .collect(),
        };
        for (i, output) in outputs.iter().enumerate() {
            for (n, payload) in output.payloads.iter().enumerate() {
                let path = tmp.path().join(payload_name(i, n));
                std::fs::write(&path, payload).map_err(io(&path))?;
            }
        }
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StateError::Corrupt {
            path: tmp.path().join("window.json"),
            reason: e.to_string(),
        })?;
        write_atomic(&tmp.path().join("window.json"), &json)?;
        let tmp = tmp.keep();
        std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
        sync_dir(&self.dir);
        SpooledWindow::load(final_dir)
    }

    /// Removes the temporary directories a crashed run left (never complete,
    /// or half removed). Only under the run lock.
    pub fn sweep(&self) -> Result<(), StateError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }

    /// Spooled windows, oldest first (temporary directories are skipped).
    pub fn pending(&self) -> Result<Vec<SpooledWindow>, StateError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut windows = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            if path.is_dir() {
                windows.push(SpooledWindow::load(path)?);
            }
        }
        windows.sort_by_key(|w| (w.window.start_ms, w.window.end_ms));
        Ok(windows)
    }

    /// End of the newest non-explicit spooled window, if any.
    pub fn newest_end(&self) -> Result<Option<i64>, StateError> {
        Ok(self
            .pending()?
            .iter()
            .filter(|w| !w.explicit)
            .map(|w| w.window.end_ms)
            .max())
    }
}

impl SpooledWindow {
    fn load(dir: PathBuf) -> Result<Self, StateError> {
        let path = dir.join("window.json");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let window = Window::new(m.start_ms, m.end_ms).map_err(|e| StateError::Corrupt {
            path,
            reason: e.to_string(),
        })?;
        Ok(Self {
            dir,
            window,
            explicit: m.explicit,
            records: m.records,
            outputs: m
                .outputs
                .into_iter()
                .map(|o| SpooledOutput {
                    format: o.format,
                    extension: o.extension,
                    media_type: o.media_type,
                    messenger: o.messenger,
                    payloads: o.payloads,
                })
                .collect(),
        })
    }

    /// Payload `n` of output `output`.
    pub fn payload(&self, output: usize, n: usize) -> Result<Vec<u8>, StateError> {
        let path = self.dir.join(payload_name(output, n));
        std::fs::read(&path).map_err(io(&path))
    }

    /// Whether output `output`'s messenger accepted payload `n`.
    pub fn is_done(&self, output: usize, n: usize) -> bool {
        self.dir.join(done_name(output, n)).exists()
    }

    /// The journal file a messenger may use for payload `n` of output `output`.
    pub fn journal(&self, output: usize, n: usize) -> PathBuf {
        self.dir.join(format!("{output}-{n:06}.journal"))
    }

    /// Marks payload `n` of output `output` accepted. Not fsynced: a marker
    /// lost to a power cut means one re-delivery, which the file and ssm
    /// messengers recognise (content-hash names, the journal).
    pub fn mark_done(&self, output: usize, n: usize) -> Result<(), StateError> {
        let path = self.dir.join(done_name(output, n));
        std::fs::File::create(&path).map_err(io(&path))?;
        Ok(())
    }

    /// Every payload of every output accepted.
    pub fn is_complete(&self) -> bool {
        self.outputs
            .iter()
            .enumerate()
            .all(|(i, o)| (0..o.payloads).all(|n| self.is_done(i, n)))
    }

    /// Removes the window from the spool: renamed out of sight first, so a
    /// crash halfway through the deletion leaves only a temporary directory.
    pub fn remove(self) -> Result<(), StateError> {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let doomed = self.dir.with_file_name(format!(".tmp-done-{name}"));
        std::fs::rename(&self.dir, &doomed).map_err(io(&self.dir))?;
        std::fs::remove_dir_all(&doomed).map_err(io(&doomed))
    }

    /// The window's directory (for messages).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn payload_name(output: usize, n: usize) -> String {
    format!("{output}-{n:06}.payload")
}

fn done_name(output: usize, n: usize) -> String {
    format!("{output}-{n:06}.done")
}

/// Makes a rename or create durable (best effort: not every filesystem supports it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
