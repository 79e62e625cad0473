//! The locks under a policy's state directory: advisory exclusive locks
//! (`flock`), released when the process exits (also on kill -9). Each holder
//! writes its PID into the file, so the one refused can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::path::Path;

use super::{StateError, io};

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub(crate) fn acquire(path: &Path) -> Result<Self, StateError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        match file.try_lock() {
            Ok(()) => {
                // Only the holder writes: the PID is the one who holds it.
                file.set_len(0)
                    .and_then(|()| file.rewind())
                    .and_then(|()| writeln!(file, "{}", std::process::id()))
                    .map_err(io(path))?;
                Ok(Self { _file: file })
            }
            Err(TryLockError::WouldBlock) => Err(StateError::Locked {
                path: path.to_owned(),
                holder: holder(path),
            }),
            Err(TryLockError::Error(e)) => Err(io(path)(e)),
        }
    }
}

/// The PID the holder wrote, if it did (one from before this change wrote none).
fn holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_taker_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = RunLock::acquire(&path).unwrap();
        match RunLock::acquire(&path) {
            Err(StateError::Locked { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        assert!(RunLock::acquire(&path).is_ok(), "released on drop");
    }
}
