//! OpenNebula's own API (`[inventory] source = "opennebula"`): every VM that
//! had a stay on a host in a window, over XML-RPC: the VMs that exist
//! (`one.vmpool.infoextended`) and the window's history records
//! (`one.vmpool.accounting`, which also has the VMs that are gone), each
//! stay a placement on its host, and host names by id (`one.hostpool.info`)
//! so Scaphandre's `host_id` labels name hosts.

mod config;
mod pool;
mod xmlrpc;

use std::collections::HashMap;

pub use config::OpenNebulaConfig;
pub use pool::Stay;

use super::cloud::{CloudError, CloudInventory, CloudVm, Secret, http_client, send};
use crate::window::Window;
use xmlrpc::{Answer, Arg};

/// OpenNebula's "not authenticated" and "not authorized" error codes.
const AUTHENTICATION: i64 = 0x0100;
const AUTHORIZATION: i64 = 0x0200;

/// A client of one front-end for one run.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    config: OpenNebulaConfig,
    session: Secret,
}

impl Client {
    /// A client for `config`, its token read now; does no network I/O.
    pub fn new(config: &OpenNebulaConfig) -> Result<Self, CloudError> {
        let credentials = |reason: String| CloudError::Credentials {
            endpoint: config.endpoint.clone(),
            reason,
        };
        let token = crate::secrets::read(config.token_env.as_deref(), config.token_file.as_deref())
            .map_err(credentials)?
            .ok_or_else(|| credentials("no token_env or token_file".into()))?;
        let http = http_client(
            &config.endpoint,
            config.timeout_secs,
            config.ca_file.as_deref(),
        )?;
        Ok(Self {
            http,
            config: config.clone(),
            session: Secret(format!("{}:{token}", config.user)),
        })
    }

    /// `method(session, args…)`: the body of a successful answer.
    async fn call(&self, method: &str, args: &[Arg]) -> Result<String, CloudError> {
        let endpoint = &self.config.endpoint;
        let mut all = vec![Arg::Text(self.session.0.clone())];
        all.extend_from_slice(args);
        let body = xmlrpc::request(method, &all);
        let response = send(endpoint, self.config.attempts, || {
            self.http
                .post(endpoint)
                .header("Content-Type", "text/xml")
                .body(body.clone())
        })
        .await?;
        let status = response.status();
        let text = response.text().await.map_err(|e| CloudError::Unparsable {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
        if !status.is_success() {
            return Err(CloudError::Status {
                endpoint: endpoint.clone(),
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        match xmlrpc::parse(&text).map_err(|reason| CloudError::Unparsable {
            endpoint: format!("{endpoint} ({method})"),
            reason,
        })? {
            Answer::Ok(body) => Ok(body),
            Answer::Failed { message, code } if code == AUTHENTICATION => {
                Err(CloudError::Credentials {
                    endpoint: endpoint.clone(),
                    reason: format!(
                        "OpenNebula refused user `{}` ({message}): check [opennebula] user and \
                         its token",
                        self.config.user
                    ),
                })
            }
            Answer::Failed { message, code } if code == AUTHORIZATION => {
                Err(CloudError::Forbidden {
                    endpoint: format!("{endpoint} ({method})"),
                    hint: "reading every user's VMs needs a user of the oneadmin group",
                    body: message,
                })
            }
            Answer::Failed { message, code } => Err(CloudError::Status {
                endpoint: format!("{endpoint} ({method})"),
                status: u16::try_from(code).unwrap_or(0),
                body: message,
            }),
        }
    }
}

/// Every VM that had a stay on a host in `window` (deployed before its
/// end, not gone before its start), each with its stays, and host names by id.
pub async fn inventory(client: &Client, window: Window) -> Result<CloudInventory, CloudError> {
    let unparsable = |method: &str| {
        let endpoint = format!("{} ({method})", client.config.endpoint);
        move |reason: String| CloudError::Unparsable { endpoint, reason }
    };
    let (live, history, hosts) = futures::future::try_join3(
        // Every user's VMs, any state but DONE, all ids.
        client.call(
            "one.vmpool.infoextended",
            &[Arg::Int(-2), Arg::Int(-1), Arg::Int(-1), Arg::Int(-1)],
        ),
        client.call(
            "one.vmpool.accounting",
            &[
                Arg::Int(-2),
                Arg::Int(window.start_ms.div_euclid(1000)),
                Arg::Int((window.end_ms + 999).div_euclid(1000)),
            ],
        ),
        client.call("one.hostpool.info", &[]),
    )
    .await?;
    let live = pool::vms(&live).map_err(unparsable("one.vmpool.infoextended"))?;
    let mut history = pool::accounting(&history).map_err(unparsable("one.vmpool.accounting"))?;
    let host_names = pool::host_names(&hosts).map_err(unparsable("one.hostpool.info"))?;
    // A VM's stays: its own last one and the window's history records
    // (a migrated VM's earlier host is only there), by sequence number.
    let mut vms: HashMap<String, CloudVm> = HashMap::new();
    let mut add = |mut vm: CloudVm, mut stays: Vec<Stay>, more: Vec<Stay>| {
        stays.extend(more);
        stays.sort_by_key(|s| s.seq);
        stays.dedup_by_key(|s| s.seq);
        (vm.launched_ms, vm.terminated_ms, vm.host) = pool::lifetime(&stays);
        vms.insert(vm.uuid.clone(), vm);
    };
    for (id, vm, stays) in live {
        let more = history
            .remove(&id)
            .map(|(more, _)| more)
            .unwrap_or_default();
        add(vm, stays, more);
    }
    // Gone since (DONE): known only from the window's history records.
    for (stays, vm) in history.into_values() {
        if let Some(vm) = vm {
            add(vm, stays, Vec::new());
        }
    }
    vms.retain(|_, vm| {
        vm.launched_ms.is_some_and(|t| t < window.end_ms)
            && vm.terminated_ms.is_none_or(|t| t > window.start_ms)
    });
    Ok(CloudInventory {
        source: "opennebula",
        endpoint: client.config.endpoint.clone(),
        vms,
        host_names,
    })
}
