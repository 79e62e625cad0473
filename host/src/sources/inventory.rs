//! `[inventory]`: where VMs and what is known of them come from (the libvirt
//! exporter's series, their labels, libvirt), and how hosts are keyed.

use serde::Deserialize;

use crate::config::{ConfigProblem, Validate};

/// `[inventory]`: where VM metadata comes from. First the libvirt exporter's
/// info series (`meta_metric`), then the labels of the energy series.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// Where the list of VMs, their owners and lifetimes come from besides
    /// the series: `prometheus` (the series alone), `nova` or `opennebula`
    /// (the cloud's own API, `[nova]` or `[opennebula]`; it comes first
    /// where both say something).
    #[serde(default)]
    pub source: InventorySource,
    /// Info series with one series per VM (`uuid`, `instance_name`, `domain`,
    /// `project_uuid`, `project_name`, `user_uuid`, `user_name`, `flavor`);
    /// `""` turns it off.
    #[serde(default = "default_meta_metric")]
    pub meta_metric: String,
    /// Label of the info series holding the VM uuid.
    #[serde(default = "default_uuid_label")]
    pub meta_uuid_label: String,
    /// Gauge of each VM's vCPUs (keyed by `meta_uuid_label`); `""` turns it off.
    #[serde(default = "default_vcpus_metric")]
    pub vcpus_metric: String,
    /// Gauge of each VM's memory in bytes; `""` turns it off.
    #[serde(default = "default_memory_metric")]
    pub memory_metric: String,
    /// Gauge of each VM disk's size in bytes (one series per device), for
    /// reports' disk GB-hours; `""` turns it off.
    #[serde(default = "default_disk_metric")]
    pub disk_metric: String,
    /// Each VM's cumulative CPU seconds, keyed by `meta_uuid_label`: what a
    /// model's `cpu-time` measurement reads (C1 over the window).
    #[serde(default = "default_cpu_time_metric")]
    pub cpu_time_metric: String,
    /// Regex normalising host label values into host keys, so one host is one
    /// key across exporters: the first capture group (or the whole match) is
    /// the key, e.g. `^([^:]+)` turns `cmp-01:9177` into `cmp-01`.
    #[serde(default)]
    pub host_regex: Option<String>,
    /// Label holding the project id.
    #[serde(default = "default_project_label")]
    pub project_label: Option<String>,
    /// Label holding the project name.
    #[serde(default)]
    pub project_name_label: Option<String>,
    /// Label holding the VM's display name.
    #[serde(default)]
    pub name_label: Option<String>,
    /// Label holding the user id.
    #[serde(default)]
    pub user_label: Option<String>,
    /// Label naming the host.
    #[serde(default)]
    pub host_label: Option<String>,
    /// libvirt on this host (`qemu:///system`), for extracts run on a
    /// hypervisor: VMs are described from their domains first (nova or
    /// OpenNebula metadata, vCPUs, memory), shut-off domains included; the
    /// info series and the labels fill in what libvirt does not know.
    #[serde(default)]
    pub libvirt_uri: Option<String>,
}

/// `[inventory] source`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum InventorySource {
    /// The series and libvirt alone.
    #[default]
    Prometheus,
    /// OpenStack's Nova and Keystone (`[nova]`).
    Nova,
    /// OpenNebula's XML-RPC API (`[opennebula]`).
    OpenNebula,
}

fn default_project_label() -> Option<String> {
    Some("project_id".into())
}

fn default_meta_metric() -> String {
    "libvirt_domain_info_meta".into()
}

fn default_vcpus_metric() -> String {
    "libvirt_domain_info_virtual_cpus".into()
}

fn default_memory_metric() -> String {
    "libvirt_domain_info_maximum_memory_bytes".into()
}

fn default_disk_metric() -> String {
    "libvirt_domain_block_stats_capacity_bytes".into()
}

fn default_cpu_time_metric() -> String {
    "libvirt_domain_info_cpu_time_seconds_total".into()
}

fn default_uuid_label() -> String {
    "uuid".into()
}

impl Validate for InventoryConfig {
    /// A `host_regex` that does not compile (shown with the file as a whole).
    fn problems(&self) -> Vec<ConfigProblem> {
        let Some(pattern) = &self.host_regex else {
            return Vec::new();
        };
        match regex::Regex::new(pattern) {
            Ok(_) => Vec::new(),
            Err(e) => {
                vec![ConfigProblem::new("host_regex", format!("not a valid regex: {e}")).in_file()]
            }
        }
    }
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            source: InventorySource::default(),
            meta_metric: default_meta_metric(),
            meta_uuid_label: default_uuid_label(),
            vcpus_metric: default_vcpus_metric(),
            memory_metric: default_memory_metric(),
            disk_metric: default_disk_metric(),
            cpu_time_metric: default_cpu_time_metric(),
            host_regex: None,
            project_label: default_project_label(),
            project_name_label: None,
            name_label: None,
            user_label: None,
            host_label: None,
            libvirt_uri: None,
        }
    }
}
