//! OpenStack's own API (`[inventory] source = "nova"`): every VM of every
//! project that lived in a window, deleted ones included, from Nova's
//! `servers/detail` with `changes-since`, named through Keystone, the way
//! nova's own usage report counts them. One token per run (renewed on a
//! 401); secrets only from `*_env`/`*_file` and never logged.

mod config;
mod nova;
mod session;

pub use config::NovaConfig;
pub use nova::parse_time;
pub use session::{MICROVERSION, Session};

use super::cloud::{CloudInventory, CloudVm};
use crate::window::Window;

/// Why the cloud's API could not be read; each names the endpoint, never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum OpenStackError {
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
    /// A 403: the account may not do this.
    #[error(
        "{endpoint} answered 403 Forbidden: listing every project's servers (all_tenants) needs \
         an account with the admin or reader role ({body})"
    )]
    Forbidden {
        /// The URL asked.
        endpoint: String,
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
    /// A listing that did not end within `[nova] max_pages`.
    #[error(
        "{endpoint} still had more servers after {pages} pages: cut there and refused (raise \
         [nova] max_pages or page_size if the cloud is really that large)"
    )]
    EndlessPages {
        /// The URL asked.
        endpoint: String,
        /// `[nova] max_pages`.
        pages: u32,
    },
}

/// Every VM that lived in `window`, with project (and user) names.
pub async fn inventory(
    session: &Session,
    window: Window,
) -> Result<CloudInventory, OpenStackError> {
    let (servers, (projects, users)) =
        futures::future::try_join(nova::servers(session, window), nova::names(session)).await?;
    let vms = servers
        .into_iter()
        .map(|mut vm: CloudVm| {
            vm.owner.project_name = vm
                .owner
                .project_id
                .as_ref()
                .and_then(|id| projects.get(id).cloned());
            vm.owner.user_name = vm
                .owner
                .user_id
                .as_ref()
                .and_then(|id| users.get(id).cloned());
            (vm.uuid.clone(), vm)
        })
        .collect();
    Ok(CloudInventory {
        source: "nova",
        endpoint: session.compute_url().await?,
        vms,
    })
}
