//! `stdout`: payloads written to standard output, each ending with a newline.

use std::io::Write;

use super::{DeliveryError, Messenger, Payload};

/// Writes every payload to standard output.
#[derive(Debug, Default)]
pub struct Stdout;

impl Messenger for Stdout {
    fn name(&self) -> String {
        "stdout".into()
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        let mut out = std::io::stdout().lock();
        let mut write = || -> std::io::Result<()> {
            out.write_all(payload.bytes)?;
            if !payload.bytes.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            out.flush()
        };
        write().map_err(|e| DeliveryError {
            messenger: self.name(),
            reason: e.to_string(),
        })
    }
}
