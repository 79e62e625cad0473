//! Messengers: where rendered payloads go. One module each; the policy's
//! `[outputs.messenger] type = "…"` picks one.

mod stdout;

pub use stdout::Stdout;

use crate::policy::MessengerConfig;

/// A delivery that failed; the payload stays undelivered.
#[derive(Debug, thiserror::Error)]
#[error("messenger `{messenger}` could not deliver: {reason}")]
pub struct DeliveryError {
    /// The messenger's name.
    pub messenger: String,
    /// Why.
    pub reason: String,
}

/// Something that accepts payloads, one message each.
pub trait Messenger {
    /// Delivers one payload; returns once it is accepted.
    fn deliver(&mut self, payload: &[u8]) -> Result<(), DeliveryError>;
}

/// Builds the messenger a policy configures.
pub fn build(config: &MessengerConfig) -> Box<dyn Messenger> {
    match config {
        MessengerConfig::Stdout => Box::new(Stdout),
    }
}
