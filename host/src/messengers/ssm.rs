//! `ssm`: the APEL SSM outgoing queue, in the dirq `QueueSimple` layout a stock
//! `ssmsend` reads: `<queue>/<8 hex digits: minute>/<14 hex digits>`.
//!
//! Exactly once across crashes: the message is written to a temporary file in
//! `<queue>/.wattson/` (a directory dirq neither lists nor purges), the
//! payload's journal then records the temporary and final names (atomically),
//! and one `rename` moves the message into the queue. A retry that finds the
//! journal finishes that delivery instead of adding a second message: the
//! temporary still there means the rename did not happen yet; gone means it did
//! (and `ssmsend` may already have sent it).
//!
//! Messages, and the minute directories the messenger creates, get the
//! policy's `mode` (0640, directories 0750, by default) whatever the umask:
//! `ssmsend` often runs as another user of the queue's group.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{DeliveryError, FileMode, Messenger, Payload};

/// Adds payloads to a dirq queue.
#[derive(Debug)]
pub struct Ssm {
    queue: PathBuf,
    mode: FileMode,
    rnd: u32,
}

impl Ssm {
    /// A messenger writing messages of `mode` into the queue directory
    /// `queue` (created when missing).
    pub fn new(queue: PathBuf, mode: FileMode) -> Self {
        let rnd = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 16;
        Self { queue, mode, rnd }
    }

    fn add(&self, payload: &Payload<'_>) -> std::io::Result<()> {
        if let Ok(journal) = std::fs::read_to_string(payload.journal)
            && let Some((tmp, name)) = journal.trim().split_once('\n')
        {
            return finish(Path::new(tmp), Path::new(name));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs();
        let dir = self.queue.join(format!("{:08x}", secs / 60 * 60));
        let private = self.queue.join(".wattson");
        super::create_shared_dir(&dir, self.mode)?;
        std::fs::create_dir_all(&private)?;
        let mut micros = now.subsec_micros();
        loop {
            let element = format!("{secs:08x}{micros:05x}{:01x}", self.rnd);
            let name = dir.join(&element);
            let tmp = private.join(format!("{element}.tmp"));
            if name.exists() || tmp.exists() {
                micros = (micros + 1) % 1_000_000;
                continue;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(payload.bytes)?;
            super::set_file_mode(&file, self.mode)?;
            file.sync_all()?;
            write_journal(payload.journal, &tmp, &name)?;
            return finish(&tmp, &name);
        }
    }
}

/// Records the temporary and final names in the journal.
fn write_journal(journal: &Path, tmp: &Path, name: &Path) -> std::io::Result<()> {
    super::write_journal(journal, &format!("{}\n{}\n", tmp.display(), name.display()))
}

/// Moves the message into the queue unless that already happened.
fn finish(tmp: &Path, name: &Path) -> std::io::Result<()> {
    if tmp.exists() {
        std::fs::rename(tmp, name)?;
    }
    Ok(())
}

impl Messenger for Ssm {
    fn name(&self) -> String {
        format!("ssm {}", self.queue.display())
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        self.add(payload).map_err(|e| DeliveryError {
            messenger: self.name(),
            reason: format!("{e}; check that the queue directory is writable"),
        })
    }
}
