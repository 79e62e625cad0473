//! The run lock: an advisory exclusive lock on `<state>/lock`, released when
//! the process exits (also on kill -9).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::{StateError, io};

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub(crate) fn acquire(path: &Path) -> Result<Self, StateError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StateError::Locked {
                path: path.to_owned(),
            }),
            Err(TryLockError::Error(e)) => Err(io(path)(e)),
        }
    }
}
