//! libvirt on a hypervisor: its domains (running, paused and shut off), with
//! vCPUs, memory and what nova or OpenNebula wrote into their metadata, and
//! their CPU time behind [`CpuTimes`] (the test driver's is the wall clock).

pub mod metadata;

use std::collections::BTreeMap;

use serde::Serialize;
use virt::connect::Connect;
use virt::domain::Domain as VirtDomain;
use virt::error::ErrorNumber;
use virt::sys;

pub use metadata::{CloudMetadata, Flavor, NovaInstance, OpenNebulaVm};

/// A libvirt failure, naming the connection URI.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    /// libvirt refused or failed a call.
    #[error("libvirt at {uri}: {what}: {message}")]
    Call {
        /// The connection URI.
        uri: String,
        /// What wattson asked for.
        what: String,
        /// libvirt's own message.
        message: String,
    },
    /// A domain's metadata element is not XML.
    #[error("libvirt at {uri}: domain {domain}: {error}")]
    Metadata {
        /// The connection URI.
        uri: String,
        /// The domain's name.
        domain: String,
        /// What was wrong (in the message, not the error chain).
        error: metadata::MetadataError,
    },
}

/// A domain's run state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainState {
    /// Running (or blocked on I/O).
    Running,
    /// Paused.
    Paused,
    /// Shutting down.
    ShuttingDown,
    /// Shut off: defined, not running.
    ShutOff,
    /// Crashed.
    Crashed,
    /// Suspended by guest power management.
    Suspended,
    /// libvirt does not know.
    Unknown,
}

impl DomainState {
    fn from_virt(state: sys::virDomainState) -> Self {
        match state {
            sys::VIR_DOMAIN_RUNNING | sys::VIR_DOMAIN_BLOCKED => Self::Running,
            sys::VIR_DOMAIN_PAUSED => Self::Paused,
            sys::VIR_DOMAIN_SHUTDOWN => Self::ShuttingDown,
            sys::VIR_DOMAIN_SHUTOFF => Self::ShutOff,
            sys::VIR_DOMAIN_CRASHED => Self::Crashed,
            sys::VIR_DOMAIN_PMSUSPENDED => Self::Suspended,
            _ => Self::Unknown,
        }
    }

    /// Whether the domain has a running QEMU process (and so uses energy).
    pub fn is_active(self) -> bool {
        !matches!(self, Self::ShutOff | Self::Crashed | Self::Unknown)
    }

    /// As `virsh` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::ShuttingDown => "in shutdown",
            Self::ShutOff => "shut off",
            Self::Crashed => "crashed",
            Self::Suspended => "pmsuspended",
            Self::Unknown => "no state",
        }
    }
}

/// The host libvirt runs on, as `virNodeGetInfo` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    /// Active logical CPUs.
    pub cpus: u32,
    /// Memory, KiB.
    pub memory_kib: u64,
}

/// One libvirt domain.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Domain {
    /// The domain's uuid (nova's instance uuid).
    pub uuid: String,
    /// The libvirt name (`instance-0000002a`, `one-42`).
    pub name: String,
    /// Run state now.
    pub state: DomainState,
    /// vCPUs.
    pub vcpus: u32,
    /// Maximum memory, MiB.
    pub memory_mb: u64,
    /// What the cloud says of it.
    pub metadata: CloudMetadata,
    /// What the guest uses of its memory (balloon statistics), where libvirt has them.
    pub memory_use: Option<MemoryUse>,
    /// CPU seconds used so far, for a domain that runs.
    pub cpu_s: Option<f64>,
}

/// Domain metadata already read, by uuid, with when: nova and OpenNebula
/// rewrite it rarely, and reading it is a call per namespace per domain.
#[derive(Debug, Default)]
pub struct MetadataCache {
    entries: std::collections::HashMap<String, (CloudMetadata, std::time::Instant)>,
    max_age: std::time::Duration,
}

impl MetadataCache {
    /// A cache whose entries are read again once older than `max_age`.
    pub fn new(max_age: std::time::Duration) -> Self {
        Self {
            entries: Default::default(),
            max_age,
        }
    }
}

/// A running guest's memory use from its balloon statistics, KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryUse {
    /// Used, buffers and page cache included (`available − unused`).
    pub with_cache_kb: u64,
    /// Used without buffers and page cache (`available − usable`, else
    /// `available − unused − disk_caches`).
    pub without_cache_kb: u64,
}

impl MemoryUse {
    /// From libvirt's memory statistics as (tag, KiB); none without the
    /// guest's `available` and `unused`.
    pub fn from_stats(stats: &[(u32, u64)]) -> Option<Self> {
        let get = |tag: u32| stats.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        let available = get(sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE)?;
        let unused = get(sys::VIR_DOMAIN_MEMORY_STAT_UNUSED)?;
        let with_cache_kb = available.saturating_sub(unused);
        let without_cache_kb = match get(sys::VIR_DOMAIN_MEMORY_STAT_USABLE) {
            Some(usable) => available.saturating_sub(usable),
            None => with_cache_kb
                .saturating_sub(get(sys::VIR_DOMAIN_MEMORY_STAT_DISK_CACHES).unwrap_or(0)),
        };
        Some(Self {
            with_cache_kb,
            without_cache_kb,
        })
    }
}

/// Cumulative CPU seconds of domains, sampled now, by uuid. libvirt's is the
/// real thing on qemu/kvm; the test driver reports the wall clock for every
/// domain, so tests give their own implementation.
pub trait CpuTimes {
    /// CPU seconds used so far by each running domain.
    fn cpu_seconds(&self) -> Result<BTreeMap<String, f64>, LibvirtError>;
}

/// An open, read-only libvirt connection (closed on drop).
pub struct Libvirt {
    conn: Connect,
    uri: String,
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        let _ = self.conn.close();
    }
}

impl std::fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libvirt").field("uri", &self.uri).finish()
    }
}

impl Libvirt {
    /// Opens `uri` read-only (`qemu:///system`, `test:///path/node.xml`).
    /// libvirt's default error printer (to stderr) is silenced: every error
    /// comes back as a [`LibvirtError`] naming the URI.
    pub fn open(uri: &str) -> Result<Self, LibvirtError> {
        virt::error::clear_error_callback();
        let conn = Connect::open_read_only(Some(uri)).map_err(|e| LibvirtError::Call {
            uri: uri.to_owned(),
            what: "cannot connect".into(),
            // The test driver reads a file: no daemon to ask about.
            message: if uri.starts_with("test:") {
                e.message().to_owned()
            } else {
                format!(
                    "{} (is libvirtd running, and may this user read it? try `virsh -r -c {uri} list --all`)",
                    e.message()
                )
            },
        })?;
        Ok(Self {
            conn,
            uri: uri.to_owned(),
        })
    }

    fn failed(&self, what: impl Into<String>) -> impl FnOnce(virt::error::Error) -> LibvirtError {
        let uri = self.uri.clone();
        let what = what.into();
        move |e| LibvirtError::Call {
            uri,
            what,
            message: e.message().to_owned(),
        }
    }

    /// This host's logical CPUs and memory (`virNodeGetInfo`).
    pub fn node(&self) -> Result<Node, LibvirtError> {
        let info = self
            .conn
            .get_node_info()
            .map_err(self.failed("reading the node's info"))?;
        Ok(Node {
            cpus: info.cpus,
            memory_kib: info.memory,
        })
    }

    fn all_domains(&self) -> Result<Vec<VirtDomain>, LibvirtError> {
        self.conn
            .list_all_domains(
                sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE | sys::VIR_CONNECT_LIST_DOMAINS_INACTIVE,
            )
            .map_err(self.failed("listing domains"))
    }

    /// Every domain, active or not, sorted by uuid. Only the listing can
    /// fail: a domain that cannot be read (undefined since it was listed) is
    /// skipped, and one whose metadata cannot be read is listed without it,
    /// each with a warning.
    pub fn domains(&self) -> Result<Vec<Domain>, LibvirtError> {
        self.domains_cached(&mut MetadataCache::default())
    }

    /// [`Libvirt::domains`], with metadata from `cache` where it is fresh
    /// (domains gone from libvirt leave the cache).
    pub fn domains_cached(&self, cache: &mut MetadataCache) -> Result<Vec<Domain>, LibvirtError> {
        let mut out = Vec::new();
        for dom in self.all_domains()? {
            let read = || -> Result<_, LibvirtError> {
                let name = dom.get_name().map_err(self.failed("domain name"))?;
                let what = |w: &str| format!("{w} of domain {name}");
                let uuid = dom.get_uuid_string().map_err(self.failed(what("uuid")))?;
                let info = dom.get_info().map_err(self.failed(what("info")))?;
                Ok((name, uuid, info))
            };
            let (name, uuid, info) = match read() {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!("{e}: domain skipped");
                    continue;
                }
            };
            let fresh = cache
                .entries
                .get(&uuid)
                .filter(|(_, at)| at.elapsed() < cache.max_age)
                .map(|(m, _)| m.clone());
            let metadata = match fresh {
                Some(metadata) => metadata,
                None => {
                    let read = self.cloud_metadata(&dom, &name).unwrap_or_else(|e| {
                        tracing::warn!("{e}: listed without metadata");
                        CloudMetadata::None
                    });
                    cache
                        .entries
                        .insert(uuid.clone(), (read.clone(), std::time::Instant::now()));
                    read
                }
            };
            let state = DomainState::from_virt(info.state);
            // Only a running guest with a balloon driver has statistics.
            let memory_use = state
                .is_active()
                .then(|| dom.memory_stats(0).ok())
                .flatten()
                .and_then(|stats| {
                    let stats: Vec<(u32, u64)> = stats.iter().map(|s| (s.tag, s.val)).collect();
                    MemoryUse::from_stats(&stats)
                });
            out.push(Domain {
                uuid,
                name,
                state,
                vcpus: info.nr_virt_cpu,
                memory_mb: info.max_mem / 1024,
                metadata,
                memory_use,
                cpu_s: state.is_active().then(|| info.cpu_time as f64 / 1e9),
            });
        }
        out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        cache
            .entries
            .retain(|uuid, _| out.binary_search_by(|d| d.uuid.as_str().cmp(uuid)).is_ok());
        Ok(out)
    }

    /// The XML of every running domain, by uuid (`virDomainGetXMLDesc`, one
    /// call each): its `<hostdev>`s say which GPUs it holds now. A domain
    /// gone since the listing is left out.
    pub fn active_xml(&self) -> Result<BTreeMap<String, String>, LibvirtError> {
        let domains = self
            .conn
            .list_all_domains(sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            .map_err(self.failed("listing running domains"))?;
        Ok(domains
            .iter()
            .filter_map(|dom| Some((dom.get_uuid_string().ok()?, dom.get_xml_desc(0).ok()?)))
            .collect())
    }

    /// nova 1.1, else nova 1.0, else OpenNebula, else none.
    fn cloud_metadata(&self, dom: &VirtDomain, name: &str) -> Result<CloudMetadata, LibvirtError> {
        let bad = |error| LibvirtError::Metadata {
            uri: self.uri.clone(),
            domain: name.to_owned(),
            error,
        };
        for ns in [metadata::NOVA_1_1, metadata::NOVA_1_0] {
            if let Some(xml) = self.element(dom, name, ns)? {
                return metadata::nova(ns, &xml)
                    .map(CloudMetadata::Nova)
                    .map_err(bad);
            }
        }
        if let Some(xml) = self.element(dom, name, metadata::OPENNEBULA)? {
            return metadata::opennebula(&xml, name)
                .map(CloudMetadata::OpenNebula)
                .map_err(bad);
        }
        Ok(CloudMetadata::None)
    }

    /// The metadata element in `namespace`, or None when the domain has none.
    fn element(
        &self,
        dom: &VirtDomain,
        name: &str,
        namespace: &str,
    ) -> Result<Option<String>, LibvirtError> {
        match dom.get_metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(namespace),
            sys::VIR_DOMAIN_AFFECT_CURRENT,
        ) {
            Ok(xml) => Ok(Some(xml)),
            Err(e) if e.code() == ErrorNumber::NoDomainMetadata => Ok(None),
            Err(e) => Err(self
                .failed(format!("metadata {namespace} of domain {name}"))(
                e
            )),
        }
    }
}

impl CpuTimes for Libvirt {
    fn cpu_seconds(&self) -> Result<BTreeMap<String, f64>, LibvirtError> {
        let mut out = BTreeMap::new();
        for dom in self.all_domains()? {
            // A domain undefined since it was listed has no CPU time to give.
            let (Ok(info), Ok(uuid)) = (dom.get_info(), dom.get_uuid_string()) else {
                continue;
            };
            if DomainState::from_virt(info.state).is_active() {
                out.insert(uuid, info.cpu_time as f64 / 1e9);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_use_from_balloon_statistics() {
        let stats = [
            (sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE, 4_000_000),
            (sys::VIR_DOMAIN_MEMORY_STAT_UNUSED, 1_000_000),
            (sys::VIR_DOMAIN_MEMORY_STAT_USABLE, 2_500_000),
        ];
        assert_eq!(
            MemoryUse::from_stats(&stats),
            Some(MemoryUse {
                with_cache_kb: 3_000_000,
                without_cache_kb: 1_500_000
            })
        );
        let no_usable = [
            stats[0],
            stats[1],
            (sys::VIR_DOMAIN_MEMORY_STAT_DISK_CACHES, 400_000),
        ];
        assert_eq!(
            MemoryUse::from_stats(&no_usable).map(|m| m.without_cache_kb),
            Some(2_600_000)
        );
        assert_eq!(MemoryUse::from_stats(&stats[..1]), None);
    }
}
