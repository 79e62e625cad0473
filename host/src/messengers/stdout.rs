//! `stdout`: payloads written to standard output, each ending with a newline.

use std::io::Write;

use super::{DeliveryError, Messenger};

/// Writes every payload to standard output.
#[derive(Debug, Default)]
pub struct Stdout;

impl Messenger for Stdout {
    fn deliver(&mut self, payload: &[u8]) -> Result<(), DeliveryError> {
        let mut out = std::io::stdout().lock();
        let mut write = || -> std::io::Result<()> {
            out.write_all(payload)?;
            if !payload.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            out.flush()
        };
        write().map_err(|e| DeliveryError {
            messenger: "stdout".into(),
            reason: e.to_string(),
        })
    }
}
