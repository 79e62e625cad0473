//! `file`: one file per payload in a directory, named by the sha256 of its
//! content, written to a temporary file and renamed, so a re-sent payload
//! lands on the same name (receivers see each payload once). Files get the
//! policy's `mode` (0640 by default) whatever the umask, so a pickup process
//! of the file's group can read them.
//!
//! Temporaries are written in the subdirectory `.wattson-tmp/`, where a
//! pickup that globs the directory does not see them, named after the
//! writing process (`<pid>-….tmp`). The next run removes a temporary whose
//! writer is gone (a run killed while writing it), and any other (or, from
//! before, `.wattson-*.tmp` in the directory itself) once it is 10 minutes
//! old: another policy's run may be writing into the same directory.
//!
//! With a fixed `name` (`wattson.prom`, for node_exporter's textfile
//! collector), every payload replaces that one file instead: written and
//! fsynced in `.wattson-tmp/`, renamed over the file (a reader sees the old
//! payload or the new one, never a part), then the directory is fsynced so
//! the rename outlives a power cut. A payload delivered again after a crash
//! writes the same bytes again, and the spool delivers a messenger's
//! payloads oldest window first: the file ends with the newest window's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{DeliveryError, FileMode, Messenger, Payload};

/// Where temporaries are written, inside the messenger's directory (the same
/// file system, so the rename into place is atomic).
const TMP_DIR: &str = ".wattson-tmp";
/// A temporary this old was left by a run that was killed while writing it.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Writes payloads as `<sha256>.<extension>` files into a directory, or
/// over one file of a fixed name.
#[derive(Debug)]
pub struct File {
    directory: PathBuf,
    mode: FileMode,
    /// The one file every payload replaces, if set.
    name: Option<String>,
    /// Whether this run has removed stale temporaries yet.
    swept: bool,
}

impl File {
    /// A messenger writing files of `mode` into `directory` (created when
    /// missing): one per payload, or the file `name` that each replaces.
    pub fn new(directory: PathBuf, mode: FileMode, name: Option<String>) -> Self {
        Self {
            directory,
            mode,
            name,
            swept: false,
        }
    }

    fn write(&mut self, payload: &Payload<'_>) -> std::io::Result<()> {
        let tmp_dir = self.directory.join(TMP_DIR);
        super::create_shared_dir(&self.directory, self.mode)?;
        std::fs::create_dir_all(&tmp_dir)?;
        if !std::mem::replace(&mut self.swept, true) {
            remove_stale(&tmp_dir, "");
            remove_stale(&self.directory, ".wattson-");
        }
        let target = match &self.name {
            Some(name) => self.directory.join(name),
            None => {
                let target = self.directory.join(format!(
                    "{}.{}",
                    hex::encode(Sha256::digest(payload.bytes)),
                    payload.extension
                ));
                if target.exists() {
                    return Ok(());
                }
                target
            }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .suffix(".tmp")
            .tempfile_in(&tmp_dir)?;
        tmp.write_all(payload.bytes)?;
        super::set_file_mode(tmp.as_file(), self.mode)?;
        tmp.as_file().sync_all()?;
        crate::failpoint::hit("file-temporary");
        tmp.persist(&target).map_err(|e| e.error)?;
        if self.name.is_some() {
            // The file was replaced: make the rename durable too, or a power
            // cut could bring back the previous window's payload after the
            // spool noted this one delivered.
            if let Err(e) = std::fs::File::open(&self.directory).and_then(|d| d.sync_all()) {
                tracing::warn!(
                    "replaced {}, but cannot fsync its directory ({e}): a power cut now may bring back the previous payload",
                    target.display()
                );
            }
        }
        Ok(())
    }
}

/// Removes the `<prefix>*.tmp` files in `dir` that a process that is gone
/// wrote (`<pid>-….tmp`), and those older than [`STALE_AFTER`]: temporaries
/// of killed runs (a write takes milliseconds).
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(prefix) && name.ends_with(".tmp")) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if writer_gone(&name) || age.is_some_and(|age| age > STALE_AFTER) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(
                    "removed {}, a temporary a killed run left behind",
                    path.display()
                ),
                Err(e) => tracing::warn!("cannot remove stale temporary {}: {e}", path.display()),
            }
        }
    }
}

/// Whether a `<pid>-….tmp` temporary's writer has exited (no `/proc/<pid>`).
fn writer_gone(name: &str) -> bool {
    name.split_once('-')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        })
}

impl Messenger for File {
    fn name(&self) -> String {
        match &self.name {
            Some(name) => format!("file {}", self.directory.join(name).display()),
            None => format!("file {}", self.directory.display()),
        }
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        self.write(payload).map_err(|e| DeliveryError {
            messenger: self.name(),
            reason: format!("{e}; check that the directory exists and is writable"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(path: &Path) {
        let file = std::fs::File::create(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    #[test]
    fn temporaries_stay_out_of_the_directory_and_stale_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp_dir = dir.path().join(TMP_DIR);
        std::fs::create_dir_all(&tmp_dir).unwrap();
        // What kill -9 left: one temporary of the old layout, one of the new,
        // one just now by a process that is gone (young, but removed), and
        // one being written right now by another run (young: kept).
        old(&dir.path().join(".wattson-AbC123.tmp"));
        old(&tmp_dir.join("XyZ789.tmp"));
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        std::fs::write(tmp_dir.join(format!("{dead}-Q1w2e3.tmp")), b"half").unwrap();
        std::fs::write(tmp_dir.join("young.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("other.tmp"), b"not ours").unwrap();

        let mut messenger = File::new(dir.path().to_owned(), FileMode::default(), None);
        let journal = dir.path().join("journal");
        messenger
            .deliver(&Payload {
                bytes: b"{\"a\":1}",
                extension: "json",
                media_type: "application/json",
                journal: &journal,
            })
            .unwrap();

        let mut top: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        let payload = format!("{}.json", hex::encode(Sha256::digest(b"{\"a\":1}")));
        assert_eq!(
            top,
            vec![TMP_DIR.to_owned(), payload, "other.tmp".to_owned()]
        );
        let left: Vec<String> = std::fs::read_dir(&tmp_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["young.tmp".to_owned()]);
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_fixed_name_is_replaced_by_each_payload() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let textfiles = dir.path().join("textfile");
        let journal = dir.path().join("journal");
        let mode: FileMode = serde_json::from_str("\"0644\"").unwrap();
        let mut messenger = File::new(textfiles.clone(), mode, Some("wattson.prom".into()));
        assert_eq!(
            messenger.name(),
            format!("file {}", textfiles.join("wattson.prom").display())
        );
        let windows: [&[u8]; 3] = [b"a 1\n# EOF\n", b"a 2\n# EOF\n", b"a 2\n# EOF\n"];
        for bytes in windows {
            messenger
                .deliver(&Payload {
                    bytes,
                    extension: "prom",
                    media_type: "text/plain",
                    journal: &journal,
                })
                .unwrap();
            let file = textfiles.join("wattson.prom");
            assert_eq!(std::fs::read(&file).unwrap(), bytes);
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o644
            );
            // One file, whatever was delivered before; no temporary left.
            assert_eq!(listing(&textfiles), [TMP_DIR, "wattson.prom"]);
            assert!(listing(&textfiles.join(TMP_DIR)).is_empty());
        }
    }
}
