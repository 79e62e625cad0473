//! Nova's servers of a window, with their flavors, and Keystone's project
//! (and user) names.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

use super::session::Session;
use crate::sources::cloud::CloudError;
use crate::sources::cloud::CloudVm;
use crate::sources::owner::Owner;
use crate::window::{Window, format_ms};

/// Every server that lived in `window`: the servers of all projects that
/// exist now, and those changed since its start (`changes-since` is the only
/// listing that gives deleted servers; alone it would miss a server nothing
/// touched since before the window), less those that ended before it or
/// were launched after it.
pub async fn servers(session: &Session, window: Window) -> Result<Vec<CloudVm>, CloudError> {
    let compute = session.compute_url().await?;
    let mut flavors: HashMap<String, Option<Value>> = HashMap::new();
    let since = format!("changes-since={}", format_ms(window.start_ms));
    let mut found: HashMap<String, CloudVm> = HashMap::new();
    for filter in [None, Some(since.as_str())] {
        for vm in list(session, &compute, filter, &mut flavors).await? {
            found.insert(vm.uuid.clone(), vm);
        }
    }
    let mut found: Vec<CloudVm> = found
        .into_values()
        .filter(|vm| {
            vm.terminated_ms.is_none_or(|t| t > window.start_ms)
                && vm.launched_ms.is_none_or(|t| t < window.end_ms)
        })
        .collect();
    found.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    Ok(found)
}

/// `servers/detail` of all projects with `filter`, page by page (cut at
/// `[nova] max_pages`), each server's flavor embedded or looked up once.
async fn list(
    session: &Session,
    compute: &str,
    filter: Option<&str>,
    flavors: &mut HashMap<String, Option<Value>>,
) -> Result<Vec<CloudVm>, CloudError> {
    let config = session.config();
    let mut marker: Option<String> = None;
    let mut found = Vec::new();
    for page in 1.. {
        if page > config.max_pages {
            return Err(CloudError::EndlessPages {
                endpoint: format!("{compute}/servers/detail"),
                pages: config.max_pages,
            });
        }
        let mut url = format!(
            "{compute}/servers/detail?all_tenants=1&limit={}",
            config.page_size
        );
        for extra in filter.into_iter().chain(marker.as_deref()) {
            url.push('&');
            url.push_str(extra);
        }
        let answer = session.get(&url).await?;
        let servers = answer["servers"]
            .as_array()
            .ok_or_else(|| CloudError::Unparsable {
                endpoint: url.clone(),
                reason: "no `servers` list".into(),
            })?;
        for server in servers {
            let flavor = match server["flavor"].get("vcpus") {
                Some(_) => Some(server["flavor"].clone()),
                // Below microversion 2.47: the flavor by id, once per run.
                None => match server["flavor"]["id"].as_str() {
                    Some(id) => match flavors.get(id) {
                        Some(f) => f.clone(),
                        None => {
                            let f = flavor(session, compute, id).await?;
                            flavors.insert(id.to_owned(), f.clone());
                            f
                        }
                    },
                    None => None,
                },
            };
            if let Some(vm) = cloud_vm(server, flavor.as_ref()) {
                found.push(vm);
            }
        }
        let next = answer["servers_links"]
            .as_array()
            .is_some_and(|links| links.iter().any(|l| l["rel"] == "next"));
        match servers.last().and_then(|s| s["id"].as_str()) {
            Some(last) if next => marker = Some(format!("marker={last}")),
            _ => break,
        }
    }
    Ok(found)
}

/// `GET /flavors/{id}`; none when it is gone (a deleted flavor).
async fn flavor(session: &Session, compute: &str, id: &str) -> Result<Option<Value>, CloudError> {
    match session.get(&format!("{compute}/flavors/{id}")).await {
        Ok(answer) => Ok(Some(answer["flavor"].clone())),
        Err(CloudError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A server as the cloud describes it.
fn cloud_vm(server: &Value, flavor: Option<&Value>) -> Option<CloudVm> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let uuid = text(&server["id"])?;
    Some(CloudVm {
        uuid,
        domain_name: text(&server["OS-EXT-SRV-ATTR:instance_name"]),
        owner: Owner {
            name: text(&server["name"]),
            project_id: text(&server["tenant_id"]),
            project_name: None,
            user_id: text(&server["user_id"]),
            user_name: None,
            flavor: flavor.and_then(|f| text(&f["original_name"]).or_else(|| text(&f["name"]))),
        },
        vcpus: flavor
            .and_then(|f| f["vcpus"].as_u64())
            .and_then(|v| u32::try_from(v).ok()),
        memory_mb: flavor.and_then(|f| f["ram"].as_u64()),
        disk_gb: flavor.and_then(|f| f["disk"].as_u64()),
        host: text(&server["OS-EXT-SRV-ATTR:host"]),
        status: text(&server["status"]).unwrap_or_default(),
        launched_ms: server["OS-SRV-USG:launched_at"]
            .as_str()
            .and_then(parse_time),
        terminated_ms: server["OS-SRV-USG:terminated_at"]
            .as_str()
            .and_then(parse_time),
    })
}

/// Nova's and Keystone's times: RFC 3339, or naive UTC with optional
/// microseconds (`2025-06-01T00:21:00.000000`).
pub fn parse_time(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
        })
}

/// Project names by id (`GET /v3/projects`), and user names by id where
/// `[nova] user_names` asks for them.
pub async fn names(
    session: &Session,
) -> Result<(HashMap<String, String>, HashMap<String, String>), CloudError> {
    let identity = session.identity_url();
    let listed = |answer: &Value, key: &str| -> HashMap<String, String> {
        answer[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["id"].as_str()?.to_owned(), p["name"].as_str()?.to_owned())))
            .collect()
    };
    let projects = listed(
        &session.get(&format!("{identity}/projects")).await?,
        "projects",
    );
    let users = if session.config().user_names {
        listed(&session.get(&format!("{identity}/users")).await?, "users")
    } else {
        HashMap::new()
    };
    Ok((projects, users))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_times_with_and_without_a_zone() {
        assert_eq!(
            parse_time("2025-06-01T00:21:00.000000"),
            Some(1_748_737_260_000)
        );
        assert_eq!(parse_time("2025-06-01T00:21:00Z"), Some(1_748_737_260_000));
        assert_eq!(parse_time("2025-06-01T00:21:00"), Some(1_748_737_260_000));
        assert_eq!(
            parse_time("2025-06-01T02:21:00+02:00"),
            Some(1_748_737_260_000)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn a_server_with_an_embedded_flavor() {
        let server = serde_json::json!({
            "id": "9168b536-cd40-4630-b43f-b259807c6e87", "name": "new-server-test",
            "status": "DELETED", "tenant_id": "6f70656e737461636b20342065766572",
            "user_id": "admin", "OS-EXT-SRV-ATTR:host": "compute",
            "OS-SRV-USG:launched_at": "2025-06-01T00:21:00.000000",
            "OS-SRV-USG:terminated_at": "2025-06-01T00:40:00.000000",
            "flavor": {"original_name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1,
                       "ephemeral": 0, "swap": 0, "extra_specs": {}}});
        let vm = cloud_vm(&server, Some(&server["flavor"])).unwrap();
        assert_eq!(vm.owner.flavor.as_deref(), Some("m1.tiny"));
        assert_eq!(
            (vm.vcpus, vm.memory_mb, vm.disk_gb),
            (Some(1), Some(512), Some(1))
        );
        assert_eq!(vm.terminated_ms, Some(1_748_738_400_000));
        assert_eq!(vm.host.as_deref(), Some("compute"));
    }
}
