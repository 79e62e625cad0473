//! `ssm`: the APEL SSM outgoing queue, in the dirq `QueueSimple` layout a stock
//! `ssmsend` reads: `<queue>/<8 hex digits: minute>/<14 hex digits>`, each
//! message written to `<name>.tmp` and hard-linked to its final name.
//!
//! Exactly once across crashes: the temporary file is written first, then the
//! payload's journal records its paths, then the link is made and the temporary
//! removed. A retry that finds the journal finishes that delivery instead of
//! adding a second message (the final file exists, or the temporary does and is
//! linked now, or neither does: `ssmsend` already took it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{DeliveryError, Messenger, Payload};

/// Adds payloads to a dirq queue.
#[derive(Debug)]
pub struct Ssm {
    queue: PathBuf,
    rnd: u32,
}

impl Ssm {
    /// A messenger writing into the queue directory `queue` (created when missing).
    pub fn new(queue: PathBuf) -> Self {
        let rnd = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 16;
        Self { queue, rnd }
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
        std::fs::create_dir_all(&dir)?;
        let mut micros = now.subsec_micros();
        loop {
            let name = dir.join(format!("{secs:08x}{micros:05x}{:01x}", self.rnd));
            let tmp = name.with_extension("tmp");
            if name.exists() || tmp.exists() {
                micros = (micros + 1) % 1_000_000;
                continue;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(payload.bytes)?;
            file.sync_all()?;
            let journal = format!("{}\n{}\n", tmp.display(), name.display());
            std::fs::write(payload.journal, journal)?;
            return finish(&tmp, &name);
        }
    }
}

/// Links `tmp` to `name` unless done already, then removes `tmp`.
fn finish(tmp: &Path, name: &Path) -> std::io::Result<()> {
    if tmp.exists() {
        match std::fs::hard_link(tmp, name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        std::fs::remove_file(tmp)?;
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
