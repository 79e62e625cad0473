//! Who a VM belongs to: its name, project, user and flavor, as the cloud says
//! (libvirt's domain metadata, the libvirt exporter's info series) and as the
//! daemon's ledger keeps it between intervals.

use serde::{Deserialize, Serialize};

use crate::runtime::VmDetails;

/// What the cloud says of a VM's owner: the part of [`VmDetails`] every source
/// of VM metadata knows, and the daemon persists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// Display name.
    pub name: Option<String>,
    /// Project id.
    pub project_id: Option<String>,
    /// Project name.
    pub project_name: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// User name.
    pub user_name: Option<String>,
    /// Flavor name.
    pub flavor: Option<String>,
}

impl Owner {
    /// The project label: its name where known, else its id, else empty.
    pub fn project(&self) -> &str {
        self.project_name
            .as_deref()
            .or(self.project_id.as_deref())
            .unwrap_or_default()
    }
}

impl From<&VmDetails> for Owner {
    fn from(d: &VmDetails) -> Self {
        Self {
            name: d.name.clone(),
            project_id: d.project_id.clone(),
            project_name: d.project_name.clone(),
            user_id: d.user_id.clone(),
            user_name: d.user_name.clone(),
            flavor: d.flavor.clone(),
        }
    }
}

/// The WIT details of a VM known only by its owner: no disk, times or labels.
impl From<Owner> for VmDetails {
    fn from(o: Owner) -> Self {
        Self {
            name: o.name,
            project_id: o.project_id,
            project_name: o.project_name,
            user_id: o.user_id,
            user_name: o.user_name,
            flavor: o.flavor,
            disk_gb: None,
            started_ms: None,
            ended_ms: None,
            labels: Vec::new(),
        }
    }
}
