//! `stdout`: payloads written to standard output, each ending with a newline.

use std::io::Write;

use super::{DeliveryError, Messenger, Payload};

/// Writes every payload to standard output.
#[derive(Debug, Default)]
pub struct Stdout;

impl Stdout {
    /// Writes one payload and a final newline if it has none, and flushes.
    pub fn print(bytes: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        if !bytes.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

impl Messenger for Stdout {
    fn name(&self) -> String {
        "stdout".into()
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        Self::print(payload.bytes).map_err(|e| DeliveryError {
            messenger: self.name(),
            reason: e.to_string(),
        })
    }
}
