//! What is known of a VM, for its record and for models that declare
//! `inventory`, each field from the first source that knows it: the cloud's
//! API (`[inventory] source`), libvirt's domain (on a hypervisor), the
//! libvirt exporter's info series, then the energy series' labels named in
//! `[inventory]`. So a project the cloud names beats a missing or stale label.

use crate::policy::InventoryConfig;
use crate::runtime::VmDetails;
use crate::sources::cloud::CloudVm;
use crate::sources::libvirt::{CloudMetadata, Domain};
use crate::sources::prometheus::{Labels, owner};

/// A VM's details from what the cloud's API says of it (`cloud`), its
/// libvirt `domain`, its info series `meta` and its series' `labels`, each
/// field from the first that knows it. The labels themselves are copied only
/// `with_labels` (models that declare `inventory`).
pub fn details(
    labels: &Labels,
    meta: Option<&Labels>,
    domain: Option<&Domain>,
    cloud: Option<&CloudVm>,
    inventory: &InventoryConfig,
    with_labels: bool,
) -> VmDetails {
    let meta = meta.map(owner).unwrap_or_default();
    let label =
        |name: &Option<String>| name.as_ref().and_then(|n| labels.get(n)).map(str::to_owned);
    let from_domain = domain.map_or_else(empty, from_domain);
    let api = cloud.map(|c| c.owner.clone()).unwrap_or_default();
    VmDetails {
        name: api
            .name
            .or(from_domain.name)
            .or(meta.name)
            .or_else(|| label(&inventory.name_label)),
        project_id: api
            .project_id
            .or(from_domain.project_id)
            .or(meta.project_id)
            .or_else(|| label(&inventory.project_label)),
        project_name: api
            .project_name
            .or(from_domain.project_name)
            .or(meta.project_name)
            .or_else(|| label(&inventory.project_name_label)),
        user_id: api
            .user_id
            .or(from_domain.user_id)
            .or(meta.user_id)
            .or_else(|| label(&inventory.user_label)),
        user_name: api.user_name.or(from_domain.user_name).or(meta.user_name),
        flavor: api.flavor.or(from_domain.flavor).or(meta.flavor),
        disk_gb: cloud.and_then(|c| c.disk_gb).or(from_domain.disk_gb),
        started_ms: cloud.and_then(|c| c.launched_ms).or(from_domain.started_ms),
        ended_ms: cloud.and_then(|c| c.terminated_ms),
        labels: if with_labels {
            labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The VM's libvirt domain name (`instance-0000002a`, `one-42`), which
/// vmname-keyed series carry (Scaphandre's `vmname`): libvirt's own, else the
/// cloud API's, else the info series' `domain` label, else the series'
/// `[inventory] name_label`.
/// Not the display name: nova's and OpenNebula's differ from it.
pub fn domain_name<'a>(
    labels: &'a Labels,
    meta: Option<&'a Labels>,
    domain: Option<&'a Domain>,
    cloud: Option<&'a CloudVm>,
    inventory: &InventoryConfig,
) -> Option<&'a str> {
    domain
        .map(|d| d.name.as_str())
        .or_else(|| cloud.and_then(|c| c.domain_name.as_deref()))
        .or_else(|| meta.and_then(|m| m.get("domain")))
        .or_else(|| inventory.name_label.as_deref().and_then(|n| labels.get(n)))
        .filter(|n| !n.is_empty())
}

/// What a domain's metadata says. nova's `creationTime` is when nova last
/// wrote the XML (a rebuild, a migration), not the start: it is not used.
pub fn from_domain(domain: &Domain) -> VmDetails {
    match &domain.metadata {
        CloudMetadata::Nova(n) => VmDetails {
            name: n.display_name.clone(),
            project_id: n.project_id.clone(),
            project_name: n.project_name.clone(),
            user_id: n.user_id.clone(),
            user_name: n.user_name.clone(),
            flavor: n.flavor.as_ref().and_then(|f| f.name.clone()),
            disk_gb: n.flavor.as_ref().and_then(|f| f.disk_gb),
            ..empty()
        },
        CloudMetadata::OpenNebula(o) => VmDetails {
            name: o.name.clone(),
            // A group is OpenNebula's closest thing to a project.
            project_id: o.group_id.clone(),
            project_name: o.group_name.clone(),
            user_id: o.user_id.clone(),
            user_name: o.user_name.clone(),
            started_ms: o.start_time.and_then(|s| s.checked_mul(1000)),
            ..empty()
        },
        CloudMetadata::None => VmDetails {
            name: Some(domain.name.clone()),
            ..empty()
        },
    }
}

fn empty() -> VmDetails {
    VmDetails {
        name: None,
        project_id: None,
        project_name: None,
        user_id: None,
        user_name: None,
        flavor: None,
        disk_gb: None,
        started_ms: None,
        ended_ms: None,
        labels: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::libvirt::{DomainState, NovaInstance};

    #[test]
    fn libvirt_first_then_info_series_then_labels() {
        let labels: Labels = [("project_id", "from-label"), ("uuid", "u")]
            .into_iter()
            .collect();
        let meta: Labels = [
            ("uuid", "u"),
            ("instance_name", "from-meta"),
            ("user_uuid", "m-user"),
        ]
        .into_iter()
        .collect();
        let domain = Domain {
            uuid: "u".into(),
            name: "instance-0000002a".into(),
            state: DomainState::ShutOff,
            vcpus: 2,
            memory_mb: 2048,
            metadata: CloudMetadata::Nova(NovaInstance {
                version: "1.1".into(),
                display_name: Some("from-nova".into()),
                project_name: Some("web-team".into()),
                ..NovaInstance::default()
            }),
            memory_use: None,
            cpu_s: None,
        };
        let inventory = InventoryConfig::default();
        let d = details(&labels, Some(&meta), Some(&domain), None, &inventory, false);
        assert_eq!(d.name.as_deref(), Some("from-nova"));
        assert_eq!(d.project_name.as_deref(), Some("web-team"));
        assert_eq!(
            d.user_id.as_deref(),
            Some("m-user"),
            "nova has none: the info series'"
        );
        assert_eq!(d.project_id.as_deref(), Some("from-label"));
        let bare = Domain {
            metadata: CloudMetadata::None,
            ..domain
        };
        let d = details(&labels, None, Some(&bare), None, &inventory, true);
        assert_eq!(d.name.as_deref(), Some("instance-0000002a"));
        assert_eq!(d.labels.len(), 2);
        // The cloud's API comes first; what it does not say comes from the rest.
        let api = CloudVm {
            uuid: "u".into(),
            domain_name: None,
            owner: crate::sources::owner::Owner {
                project_id: Some("p-api".into()),
                project_name: Some("physics".into()),
                ..Default::default()
            },
            vcpus: Some(4),
            memory_mb: Some(8192),
            disk_gb: Some(80),
            host: Some("cmp-01".into()),
            status: "DELETED".into(),
            launched_ms: Some(1_000),
            terminated_ms: Some(2_000),
        };
        let d = details(
            &labels,
            Some(&meta),
            Some(&bare),
            Some(&api),
            &inventory,
            false,
        );
        assert_eq!(d.project_id.as_deref(), Some("p-api"), "beats the label");
        assert_eq!(d.project_name.as_deref(), Some("physics"));
        assert_eq!(
            d.name.as_deref(),
            Some("instance-0000002a"),
            "the API named none"
        );
        assert_eq!(
            (d.disk_gb, d.started_ms, d.ended_ms),
            (Some(80), Some(1_000), Some(2_000))
        );
    }
}
