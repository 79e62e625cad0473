//! Messengers: where rendered payloads go. One module each; the policy's
//! `[outputs.messenger] type = "…"` picks one, and a new messenger is a module
//! plus a variant of [`MessengerConfig`] and a line in [`build`].

mod config;
mod file;
mod greendigit_cim;
mod http;
mod logstash;
mod ssm;
mod stdout;

use std::path::Path;

pub use file::File;
pub use greendigit_cim::{CimSettings, GreenDigitCim, Password};
pub use http::{Http, Token};
pub use logstash::Logstash;
pub use ssm::Ssm;
pub use stdout::Stdout;

pub use config::{CimConfig, FileMode, MessengerConfig};

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
        MessengerConfig::File {
            directory,
            mode,
            name,
        } => Box::new(File::new(directory.clone(), *mode, name.clone())),
        MessengerConfig::Ssm { queue, mode } => Box::new(Ssm::new(queue.clone(), *mode)),
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
        MessengerConfig::GreendigitCim(cim) => Box::new(GreenDigitCim::new(CimSettings {
            url: cim.url.clone(),
            token_path: cim.token_path.clone(),
            submit_path: cim.submit_path.clone(),
            email: cim.email.clone(),
            password: match (&cim.password_env, &cim.password_file) {
                (Some(var), _) => Password::Env(var.clone()),
                (None, file) => Password::File(file.clone().unwrap_or_default()),
            },
            timeout_secs: cim.timeout_secs,
            retries: cim.retries,
            backoff_ms: cim.backoff_ms,
        })),
    }
}

/// Creates `dir` and its missing parents, each with `mode`'s directory bits
/// (set as given, whatever the umask); existing ones are left as they are.
fn create_shared_dir(dir: &Path, mode: FileMode) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    std::fs::create_dir_all(dir)?;
    for created in missing {
        std::fs::set_permissions(created, std::fs::Permissions::from_mode(mode.directory()))?;
    }
    Ok(())
}

/// Sets `file`'s permission bits to `mode`, as given (a new file has them
/// narrowed by the umask, e.g. systemd's `UMask=0077`).
fn set_file_mode(file: &std::fs::File, mode: FileMode) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(mode.file()))
}

/// What a messenger writes in a payload's journal once the receiver has
/// accepted it (for receivers that cannot tell a repeat).
const ACCEPTED: &str = "accepted\n";

/// Whether an earlier run's delivery of this payload was accepted before
/// that run stopped (crashed before the spool's bookkeeping).
fn accepted_before(payload: &Payload<'_>) -> bool {
    std::fs::read_to_string(payload.journal).is_ok_and(|j| j == ACCEPTED)
}

/// Notes in the payload's journal that the receiver accepted it (a failure
/// is only a warning: the payload was delivered, and the spool's bookkeeping
/// follows).
fn note_accepted(payload: &Payload<'_>) {
    if let Err(e) = write_journal(payload.journal, ACCEPTED) {
        tracing::warn!(
            journal = %payload.journal.display(),
            "delivered, but cannot note it ({e}): if this run stops before its bookkeeping, the next one sends this payload again"
        );
    }
}

/// Replaces a payload's journal atomically (temporary file + rename).
fn write_journal(journal: &Path, text: &str) -> std::io::Result<()> {
    let staging = journal.with_extension("journal.tmp");
    std::fs::write(&staging, text)?;
    std::fs::rename(&staging, journal)
}
