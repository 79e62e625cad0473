//! Run state of one policy under the state directory: the lock that keeps
//! two runs apart, `lastrun` (the end of the last window every messenger
//! accepted), and the spool of rendered payloads not yet delivered everywhere.
//!
//! ```text
//! <state dir>/<policy name>/
//!     policy-file                the canonical path of the policy file it belongs to
//!     lock                       held (flock) while a run is active; holds its PID
//!     daemon.lock                held by `wattson daemon` for its whole life; its PID
//!     daemon.json                the daemon's counters and ledger
//!     lastrun                    `<end ms> <end RFC 3339>`
//!     embodied/<sha256>.json     a BoaviztAPI answer ([embodied] boavizta)
//!     spool/<start>-<end>/       one rendered window
//!         window.json            window, outputs (format, messenger), payload counts
//!         <output>-<n>.payload   payload n of output i
//!         <output>-<n>.done      payload accepted by output i's messenger
//! ```

mod config;
mod lastrun;
mod lock;
mod owner;
mod spool;

use std::path::{Path, PathBuf};

pub use config::StateConfig;
pub use lock::RunLock;
pub use spool::{Output, Spool, SpoolWriter, SpooledOutput, SpooledWindow};

/// State that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Any I/O failure, with the path.
    #[error("state {}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error (in the message, not the error chain).
        error: std::io::Error,
    },
    /// Another run holds the lock.
    #[error(
        "another wattson run for this policy is active (lock {} is held{}); wait for it to \
         finish, or check for a stuck process",
        path.display(),
        holder.map(|pid| format!(" by PID {pid}")).unwrap_or_default()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The PID the holder wrote into it.
        holder: Option<u32>,
    },
    /// The last run ended after now: the clock stepped back, or `--now`
    /// replays a time before it.
    #[error(
        "the last run of this policy got to {done}, after now ({now}): the clock stepped back, \
         or --now is earlier than the last run. Nothing was extracted. Check the clock; to \
         extract an earlier period again, give --from and --to (they do not move lastrun)"
    )]
    Future {
        /// How far the last run got, RFC 3339.
        done: String,
        /// Now, RFC 3339.
        now: String,
    },
    /// The directory belongs to another policy file (one with the same
    /// stem, elsewhere, or this one before it was moved).
    #[error("{}", other_policy(root, owner, policy))]
    OtherPolicy {
        /// The policy's state directory.
        root: PathBuf,
        /// The policy file its `policy-file` names.
        owner: PathBuf,
        /// The policy file of this run.
        policy: PathBuf,
    },
    /// A state file that is not what wattson writes.
    #[error("state file {} is corrupt: {reason}; move it away to start over", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn other_policy(root: &Path, owner: &Path, policy: &Path) -> String {
    let gone = if owner.exists() {
        ""
    } else {
        " (which no longer exists)"
    };
    format!(
        "state directory {root} belongs to the policy {owner}{gone}, not to {policy}: two policy \
         files on one state directory skip or repeat each other's windows. Nothing was done. Give \
         {policy} its own state: set `[state] name = \"…\"` (or `[state] dir`) in it. If {owner} \
         was moved to {policy} on purpose, hand its state over with `rm {marker}` (the next run \
         takes the directory)",
        root = root.display(),
        owner = owner.display(),
        policy = policy.display(),
        marker = owner::shell_word(&root.join(owner::FILE)),
    )
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_owned(),
        error,
    }
}

/// One policy's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
    /// The policy file it belongs to, canonical (none: a policy not read
    /// from a file, which claims nothing).
    policy: Option<PathBuf>,
}

impl StateDir {
    /// The state of policy `name` under `dir`, for the policy file `policy`
    /// (canonical), nothing created yet.
    pub fn new(dir: &Path, name: &str, policy: Option<&Path>) -> Self {
        Self {
            root: dir.join(name),
            policy: policy.map(Path::to_owned),
        }
    }

    /// Fails if the directory belongs to another policy file (its
    /// `policy-file` names another), writing nothing: for commands that only
    /// read the state.
    pub fn check(&self) -> Result<(), StateError> {
        match &self.policy {
            Some(policy) => owner::claim(&self.root, policy, false),
            None => Ok(()),
        }
    }

    /// [`StateDir::check`], then takes a directory that names no policy
    /// file yet (a new one, or one from a version before `policy-file`).
    fn claim(&self) -> Result<(), StateError> {
        match &self.policy {
            Some(policy) => owner::claim(&self.root, policy, true),
            None => Ok(()),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory if needed.
    pub fn create(&self) -> Result<(), StateError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))
    }

    /// Takes the run lock, or fails at once if another run holds it; then
    /// claims the directory for the policy file (refused if it belongs to
    /// another).
    pub fn lock(&self) -> Result<RunLock, StateError> {
        let lock = RunLock::acquire(&self.root.join("lock"))?;
        self.claim()?;
        Ok(lock)
    }

    /// Takes the daemon's lock (`daemon.lock`), held for the daemon's whole
    /// life: a second daemon on the same policy is refused before it reads
    /// or writes any state. Shipping takes the run lock as well, so an
    /// `extract` of the same policy waits its turn as before.
    /// The directory is claimed for the policy file as by [`StateDir::lock`].
    pub fn lock_daemon(&self) -> Result<RunLock, StateError> {
        let lock = RunLock::acquire(&self.root.join("daemon.lock"))?;
        self.claim()?;
        Ok(lock)
    }

    /// End (ms) of the last window every messenger accepted, if any.
    pub fn lastrun(&self) -> Result<Option<i64>, StateError> {
        lastrun::read(&self.root.join("lastrun"))
    }

    /// Records `end_ms` as the last fully delivered window end (atomically).
    pub fn set_lastrun(&self, end_ms: i64) -> Result<(), StateError> {
        lastrun::write(&self.root.join("lastrun"), end_ms)
    }

    /// The spool of rendered payloads.
    pub fn spool(&self) -> Spool {
        Spool::new(self.root.join("spool"))
    }

    /// Where the next window starts: the later of lastrun and the end of the
    /// newest spooled window (spooled is as good as delivered: it is never
    /// rendered again), if either exists.
    pub fn done_until(&self) -> Result<Option<i64>, StateError> {
        Ok(match (self.lastrun()?, self.spool().newest_end()?) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, then renames.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| StateError::Io {
        path: path.to_owned(),
        error: e.error,
    })?;
    Ok(())
}
