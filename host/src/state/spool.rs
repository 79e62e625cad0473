//! The spool: every rendered window is written here, complete and atomically,
//! before any messenger sees it; a payload is marked done when its messenger
//! accepted it; a window leaves the spool only once `lastrun` covers it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StateError, io, write_atomic};
use crate::messengers::MessengerConfig;
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
    /// Empty in windows spooled before outputs had names: those keep their messenger.
    #[serde(default)]
    name: String,
    format: String,
    extension: String,
    media_type: String,
    messenger: MessengerConfig,
    payloads: usize,
}

/// One output of a spooled window.
#[derive(Debug, Clone)]
pub struct SpooledOutput {
    /// The output's name in the policy (empty: spooled before outputs had
    /// names; then `messenger` is the one to use).
    pub name: String,
    /// The format that rendered it.
    pub format: String,
    /// The format's file extension.
    pub extension: String,
    /// The format's media type.
    pub media_type: String,
    /// The messenger it was spooled for (delivery uses the policy's current one).
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

/// One output of a window being spooled: where its payloads go and what they are.
pub struct Output<'a> {
    /// The output's name.
    pub name: &'a str,
    /// The format's name.
    pub format: &'a str,
    /// The format's file extension.
    pub extension: &'a str,
    /// The format's media type.
    pub media_type: &'a str,
    /// Where the payloads go.
    pub messenger: &'a MessengerConfig,
}

/// A window being written into the spool: each payload goes to a temporary
/// directory as soon as it is rendered, and [`SpoolWriter::finish`] renames
/// the directory into place. Dropped unfinished (a window that failed half
/// way), the directory is removed: nothing of that window is delivered.
pub struct SpoolWriter {
    spool: PathBuf,
    tmp: tempfile::TempDir,
    window: Window,
    explicit: bool,
    /// Payloads written per output.
    counts: Vec<usize>,
}

impl Spool {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The copy of `window` an earlier run spooled and has not finished
    /// delivering, if any (explicit: asked for with --from/--to).
    pub fn spooled(
        &self,
        window: Window,
        explicit: bool,
    ) -> Result<Option<SpooledWindow>, StateError> {
        let dir = self.dir.join(window_name(window, explicit));
        if dir.exists() {
            SpooledWindow::load(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Starts writing `window` (explicit: asked for with --from/--to).
    pub fn begin(&self, window: Window, explicit: bool) -> Result<SpoolWriter, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.dir)
            .map_err(io(&self.dir))?;
        Ok(SpoolWriter {
            spool: self.dir.clone(),
            tmp,
            window,
            explicit,
            counts: Vec::new(),
        })
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

impl SpoolWriter {
    /// Writes the next payload of output `output` (its index in policy order).
    pub fn write(&mut self, output: usize, payload: &[u8]) -> Result<(), StateError> {
        if self.counts.len() <= output {
            self.counts.resize(output + 1, 0);
        }
        let path = self
            .tmp
            .path()
            .join(payload_name(output, self.counts[output]));
        // Durable before the window is renamed into place: a power cut must
        // not leave a complete-looking window with an empty payload.
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        std::io::Write::write_all(&mut file, payload).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;
        self.counts[output] += 1;
        Ok(())
    }

    /// Completes the window: its manifest (`records` rendered into `outputs`)
    /// is written and the directory renamed into place, so a crash leaves
    /// either all of it or none. A window an earlier run already spooled
    /// (same window, same record ids) keeps that copy.
    pub fn finish(
        self,
        records: usize,
        outputs: &[Output<'_>],
    ) -> Result<SpooledWindow, StateError> {
        debug_assert!(self.counts.len() <= outputs.len(), "a payload of no output");
        let final_dir = self.spool.join(window_name(self.window, self.explicit));
        if final_dir.exists() {
            return SpooledWindow::load(final_dir);
        }
        let manifest = Manifest {
            start_ms: self.window.start_ms,
            end_ms: self.window.end_ms,
            explicit: self.explicit,
            records,
            outputs: outputs
                .iter()
                .enumerate()
                .map(|(i, o)| OutputManifest {
                    name: o.name.to_owned(),
                    format: o.format.to_owned(),
                    extension: o.extension.to_owned(),
                    media_type: o.media_type.to_owned(),
                    messenger: o.messenger.clone(),
                    payloads: self.counts.get(i).copied().unwrap_or(0),
                })
                .collect(),
        };
        let path = self.tmp.path().join("window.json");
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &json)?;
        sync_dir(self.tmp.path());
        let tmp = self.tmp.keep();
        std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
        sync_dir(&self.spool);
        SpooledWindow::load(final_dir)
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
                    name: o.name,
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

    /// How many payloads no messenger has accepted yet, every output's.
    pub fn undelivered(&self) -> usize {
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, o)| (0..o.payloads).filter(|&n| !self.is_done(i, n)).count())
            .sum()
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

/// A window's directory name. Explicit (--from/--to) windows live apart from
/// tracked ones with the same edges.
fn window_name(window: Window, explicit: bool) -> String {
    format!(
        "{}{}-{}",
        if explicit { "x" } else { "" },
        window.start_ms,
        window.end_ms
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn output(messenger: &MessengerConfig) -> Output<'_> {
        Output {
            name: "jsonl",
            format: "jsonl",
            extension: "jsonl",
            media_type: "application/jsonl",
            messenger,
        }
    }

    #[test]
    fn payloads_written_as_rendered_appear_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let window = Window::new(0, 3_600_000).unwrap();
        let messenger = MessengerConfig::Stdout;
        let mut writer = spool.begin(window, false).unwrap();
        writer.write(0, b"first").unwrap();
        writer.write(1, b"other output").unwrap();
        writer.write(0, b"second").unwrap();
        assert!(
            spool.pending().unwrap().is_empty(),
            "unfinished: not pending"
        );
        let spooled = writer
            .finish(3, &[output(&messenger), output(&messenger)])
            .unwrap();
        assert_eq!(spooled.records, 3);
        assert_eq!(spooled.outputs[0].payloads, 2);
        assert_eq!(spooled.outputs[1].payloads, 1);
        assert_eq!(spooled.payload(0, 1).unwrap(), b"second");
        assert_eq!(spool.pending().unwrap().len(), 1);
    }

    #[test]
    fn an_earlier_copy_is_found_by_window_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let window = Window::new(0, 1000).unwrap();
        let messenger = MessengerConfig::Stdout;
        assert!(spool.spooled(window, true).unwrap().is_none());
        let mut writer = spool.begin(window, true).unwrap();
        writer.write(0, b"x").unwrap();
        writer.finish(7, &[output(&messenger)]).unwrap();
        let earlier = spool
            .spooled(window, true)
            .unwrap()
            .expect("the explicit copy");
        assert_eq!(earlier.records, 7);
        assert!(
            spool.spooled(window, false).unwrap().is_none(),
            "a tracked window with the same edges is another window"
        );
    }

    #[test]
    fn a_window_that_fails_half_way_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let mut writer = spool.begin(Window::new(0, 1000).unwrap(), false).unwrap();
        writer.write(0, b"chunk 1 of 10").unwrap();
        drop(writer);
        assert!(spool.pending().unwrap().is_empty());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "temporary directory removed: {left:?}");
    }
}
