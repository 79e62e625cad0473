//! `file`: one file per payload in a directory, named by the sha256 of its
//! content, written to a temporary name and renamed, so a re-sent payload
//! lands on the same name (receivers see each payload once).

use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{DeliveryError, Messenger, Payload};

/// Writes payloads as `<sha256>.<extension>` files into a directory.
#[derive(Debug)]
pub struct File {
    directory: PathBuf,
}

impl File {
    /// A messenger writing into `directory` (created when missing).
    pub fn new(directory: PathBuf) -> Self {
        Self { directory }
    }

    fn write(&self, payload: &Payload<'_>) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.directory)?;
        let name = format!(
            "{}.{}",
            hex::encode(Sha256::digest(payload.bytes)),
            payload.extension
        );
        let target = self.directory.join(&name);
        if target.exists() {
            return Ok(());
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".wattson-")
            .suffix(".tmp")
            .tempfile_in(&self.directory)?;
        tmp.write_all(payload.bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Messenger for File {
    fn name(&self) -> String {
        format!("file {}", self.directory.display())
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        self.write(payload).map_err(|e| DeliveryError {
            messenger: self.name(),
            reason: format!("{e}; check that the directory exists and is writable"),
        })
    }
}
