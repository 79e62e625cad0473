//! VMs as the cloud's own API describes them over a window (`[inventory]
//! source = "nova"`): who owns each, its size, where it ran and when it
//! lived. Extract merges them with what Prometheus and libvirt say (the
//! cloud first: `docs/ENERGY.md#record-status`).

use std::collections::HashMap;

use serde::Serialize;

use super::owner::Owner;

/// One VM the cloud says lived in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CloudVm {
    /// Its uuid.
    pub uuid: String,
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
}
