//! `[outputs.messenger]`: which messenger delivers an output's payloads, and
//! its settings (checked without I/O, and for file/ssm, their directory).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

impl MessengerConfig {
    /// What is wrong with this messenger's settings, found without I/O.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Http { url, .. } => match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => None,
                Ok(u) => Some(format!(
                    "url {url:?} has scheme `{}`: the http messenger POSTs to http:// or https:// URLs",
                    u.scheme()
                )),
                Err(e) => Some(format!("url {url:?} is not a URL ({e})")),
            },
            Self::Logstash { host, .. } if host.trim().is_empty() => {
                Some("host is empty: give logstash's host name or address".to_owned())
            }
            _ => None,
        }
    }

    /// Whether a `file` or `ssm` messenger could write where it is told to:
    /// the directory, or the nearest existing folder above it (which it would
    /// be created in), must be a directory this process can write in. Only
    /// an anonymous temporary file is made there (and vanishes).
    pub fn check_destination(&self) -> Result<(), String> {
        let (Self::File { directory: dir } | Self::Ssm { queue: dir }) = self else {
            return Ok(());
        };
        let mut existing = dir.as_path();
        while !existing.exists() {
            match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                _ => return Ok(()),
            }
        }
        if !existing.is_dir() {
            return Err(format!(
                "{} cannot be created: {} is not a directory",
                dir.display(),
                existing.display()
            ));
        }
        tempfile::tempfile_in(existing).map(drop).map_err(|e| {
            format!(
                "{} cannot be {} ({e}): give this user write access, or choose another directory",
                dir.display(),
                if existing == dir {
                    "written"
                } else {
                    "created"
                }
            )
        })
    }
}

/// `[outputs.messenger]`: a closed set, chosen by `type`.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum MessengerConfig {
    /// Payloads written to standard output.
    #[default]
    Stdout,
    /// One file per payload in `directory`, named by its content hash.
    File {
        /// Where the files go.
        directory: PathBuf,
    },
    /// The APEL SSM outgoing queue (dirq layout) that `ssmsend` reads.
    Ssm {
        /// The queue directory, e.g. `/var/spool/apel/outgoing`.
        queue: PathBuf,
    },
    /// logstash's tcp input with the json_lines codec.
    Logstash {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// Connect and write timeout, seconds.
        #[serde(default = "default_messenger_timeout_secs")]
        timeout_secs: f64,
    },
    /// POST each payload to a URL.
    Http {
        /// The endpoint.
        url: String,
        /// Environment variable holding a bearer token.
        #[serde(default)]
        token_env: Option<String>,
        /// File holding a bearer token.
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// Per-request timeout, seconds.
        #[serde(default = "default_messenger_timeout_secs")]
        timeout_secs: f64,
        /// Retries after a timeout, connection error or 5xx.
        #[serde(default = "default_retries")]
        retries: u32,
        /// First retry delay, milliseconds; doubles each retry.
        #[serde(default = "default_backoff_ms")]
        backoff_ms: u64,
    },
}

fn default_messenger_timeout_secs() -> f64 {
    30.0
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    500
}
