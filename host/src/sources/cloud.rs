//! VMs as the cloud's own API describes them over a window (`[inventory]
//! source = "nova"` or `"opennebula"`): who owns each, its size, where it
//! ran and when it lived, and what both APIs' clients share (retries, the
//! errors). Extract merges them with what Prometheus and libvirt say (the
//! cloud first: `docs/ENERGY.md#record-status`).

use std::collections::HashMap;

use serde::Serialize;

use super::owner::Owner;
use crate::error_chain::error_chain;

/// One VM the cloud says lived in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CloudVm {
    /// Its uuid (OpenNebula: its libvirt UUID where set, else `one-<id>`).
    pub uuid: String,
    /// Its libvirt domain name (nova's `instance-…`, OpenNebula's `one-<id>`),
    /// which vmname-keyed series (Scaphandre's) carry.
    pub domain_name: Option<String>,
    /// Name, project, user and flavor.
    #[serde(flatten)]
    pub owner: Owner,
    /// vCPUs of its flavor.
    pub vcpus: Option<u32>,
    /// Memory of its flavor, MiB.
    pub memory_mb: Option<u64>,
    /// Root disk of its flavor, GB.
    pub disk_gb: Option<u64>,
    /// The host it is on now (where the API says).
    pub host: Option<String>,
    /// The API's status word (`ACTIVE`, `DELETED`, `SHELVED_OFFLOADED`, …).
    pub status: String,
    /// When it was launched, ms; none if it never was.
    pub launched_ms: Option<i64>,
    /// When it was terminated, ms; none while it exists.
    pub terminated_ms: Option<i64>,
}

/// What a cloud's API said for a window.
#[derive(Clone, Debug, Default)]
pub struct CloudInventory {
    /// The API asked (`nova`).
    pub source: &'static str,
    /// Its endpoint, for messages.
    pub endpoint: String,
    /// Its VMs, by uuid.
    pub vms: HashMap<String, CloudVm>,
    /// Host names by the ids series may label hosts with (OpenNebula's
    /// `host_id`); host keys found here are named so in records.
    pub host_names: HashMap<String, String>,
}

/// Why the cloud's API could not be read; each names the endpoint, never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Keystone refused the credentials, or they could not be read.
    #[error("{endpoint}: {reason}")]
    Credentials {
        /// Keystone's URL.
        endpoint: String,
        /// What to check.
        reason: String,
    },
    /// No answer after every attempt.
    #[error("{endpoint} did not answer after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// The URL asked.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        reason: String,
    },
    /// The account may not do this.
    #[error("{endpoint} refused: {hint} ({body})")]
    Forbidden {
        /// The URL asked.
        endpoint: String,
        /// What the account needs.
        hint: &'static str,
        /// The start of the answer.
        body: String,
    },
    /// Another error status.
    #[error("{endpoint} answered {status}: {body}")]
    Status {
        /// The URL asked.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// An answer that is not what the API documents.
    #[error("{endpoint}: unexpected answer: {reason}")]
    Unparsable {
        /// The URL asked.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// The token's catalog has no such compute endpoint.
    #[error(
        "{endpoint}: the token's catalog has no compute endpoint with interface `{interface}`{}; \
         check [nova] interface and region",
        .region.as_ref().map(|r| format!(" in region `{r}`")).unwrap_or_default()
    )]
    NoEndpoint {
        /// Keystone's URL.
        endpoint: String,
        /// `[nova] interface`.
        interface: String,
        /// `[nova] region`.
        region: Option<String>,
    },
    /// A listing that did not end within `max_pages`.
    #[error(
        "{endpoint} still had more servers after {pages} pages: cut there and refused (raise \
         max_pages or page_size if the cloud is really that large)"
    )]
    EndlessPages {
        /// The URL asked.
        endpoint: String,
        /// `max_pages`.
        pages: u32,
    },
}

/// A cloud's API, as `[inventory] source` names it.
#[derive(Debug)]
pub enum CloudApi {
    /// OpenStack's Nova and Keystone.
    Nova(Box<super::openstack::Session>),
    /// OpenNebula's XML-RPC.
    OpenNebula(super::opennebula::Client),
}

impl CloudApi {
    /// Every VM that lived in `window`.
    pub async fn inventory(
        &self,
        window: crate::window::Window,
    ) -> Result<CloudInventory, CloudError> {
        match self {
            Self::Nova(session) => super::openstack::inventory(session, window).await,
            Self::OpenNebula(client) => super::opennebula::inventory(client, window).await,
        }
    }
}

/// The HTTP client of a cloud API at `endpoint`: `timeout_secs` per request,
/// and the site's CA (`ca_file`) trusted besides the system's; no I/O but
/// reading that file.
pub fn http_client(
    endpoint: &str,
    timeout_secs: f64,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, CloudError> {
    let credentials = |reason: String| CloudError::Credentials {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let mut builder = reqwest::Client::builder().timeout(crate::timeout::from_secs(timeout_secs));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| credentials(format!("cannot read ca_file {}: {e}", path.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
            credentials(format!(
                "ca_file {} is not a PEM certificate: {e}",
                path.display()
            ))
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| credentials(e.to_string()))
}

/// First wait before a retry; doubled after each failed attempt.
const BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// Sends what `request` builds, retried with backoff on a connection
/// error, a timeout or a 5xx, up to `attempts` times; the last answer, or
/// the last error (naming `endpoint`, never a credential).
pub async fn send(
    endpoint: &str,
    attempts: u32,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, CloudError> {
    let mut wait = BACKOFF;
    let mut attempt = 1;
    loop {
        let outcome = request().send().await;
        let retry = match &outcome {
            Ok(r) => r.status().is_server_error(),
            Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
        };
        if !retry || attempt >= attempts {
            return outcome.map_err(|e| CloudError::Unreachable {
                endpoint: endpoint.to_owned(),
                attempts: attempt,
                reason: error_chain(&e.without_url()),
            });
        }
        tracing::debug!(endpoint, attempt, "retrying in {wait:?}");
        tokio::time::sleep(wait).await;
        wait *= 2;
        attempt += 1;
    }
}

/// A secret that never shows in `Debug` or logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
