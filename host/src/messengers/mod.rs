//! Messengers: where rendered payloads go. One module each; the policy's
//! `[outputs.messenger] type = "…"` picks one, and a new messenger is a module
//! plus a variant of [`MessengerConfig`] and a line in [`build`].

mod config;
mod file;
mod http;
mod logstash;
mod ssm;
mod stdout;

use std::path::Path;

pub use file::File;
pub use http::{Http, Token};
pub use logstash::Logstash;
pub use ssm::Ssm;
pub use stdout::Stdout;

pub use config::MessengerConfig;

/// A delivery that failed; the payload stays in the spool.
#[derive(Debug, thiserror::Error)]
#[error("messenger `{messenger}` could not deliver: {reason}")]
pub struct DeliveryError {
    /// The messenger, e.g. `file /var/spool/wattson`.
    pub messenger: String,
    /// Why, and what to check.
    pub reason: String,
}

/// One payload to deliver.
pub struct Payload<'a> {
    /// The bytes: one message.
    pub bytes: &'a [u8],
    /// The format's file extension (`json`, `csv`, …).
    pub extension: &'a str,
    /// The format's media type (`application/json`, …).
    pub media_type: &'a str,
    /// A file this payload may use to make delivery idempotent across a crash
    /// (it survives until the payload is marked delivered).
    pub journal: &'a Path,
}

/// Something that accepts payloads, one message each.
pub trait Messenger {
    /// A short name for messages and logs.
    fn name(&self) -> String;
    /// Delivers one payload; returns once it is accepted.
    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError>;
}

/// Builds the messenger a policy configures.
pub fn build(config: &MessengerConfig) -> Box<dyn Messenger> {
    match config {
        MessengerConfig::Stdout => Box::new(Stdout),
        MessengerConfig::File { directory } => Box::new(File::new(directory.clone())),
        MessengerConfig::Ssm { queue } => Box::new(Ssm::new(queue.clone())),
        MessengerConfig::Logstash {
            host,
            port,
            timeout_secs,
        } => Box::new(Logstash::new(host, *port, *timeout_secs)),
        MessengerConfig::Http {
            url,
            token_env,
            token_file,
            timeout_secs,
            retries,
            backoff_ms,
        } => {
            let token = match (token_env, token_file) {
                (Some(var), _) => Token::Env(var.clone()),
                (None, Some(file)) => Token::File(file.clone()),
                (None, None) => Token::None,
            };
            Box::new(Http::new(url, token, *timeout_secs, *retries, *backoff_ms))
        }
    }
}
