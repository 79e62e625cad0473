//! One sample of this host: its libvirt domains with their CPU time, its
//! RAPL zones and its wall-power meter, read now. A source that fails leaves
//! its part empty and says why; the others are still read.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::gpu::{Card, GpuSources, Held};
use crate::energy::counter::Boot;
use crate::sources::ipmi::PowerMeter;
pub use crate::sources::libvirt::MetadataCache;
use crate::sources::libvirt::{CpuTimes, Domain, Libvirt, Node};
use crate::sources::proc_stat::{self, CpuJiffies};
use crate::sources::rapl::{self, Zone};

/// The counters of one sample: what the next interval is measured from, and
/// what is persisted so the interval across a restart is measured too.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    /// When the sample was taken, ms since the epoch.
    pub at_ms: i64,
    /// Cumulative CPU seconds of each running domain, by uuid.
    pub cpu_s: BTreeMap<String, f64>,
    /// `energy_uj` of each RAPL zone, by its real path; empty when unread.
    pub rapl_uj: BTreeMap<PathBuf, u64>,
    /// Wall power, watts; none when unread.
    pub power_w: Option<f64>,
    /// The kernel's boot id: counters of another boot are no base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The host's CPU time (`/proc/stat`); none when unread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_jiffies: Option<CpuJiffies>,
    /// Each GPU by bus id (`[gpu] command`); empty without `[gpu]` or unread.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpus: BTreeMap<String, Card>,
    /// The GPUs each running domain (uuid) holds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpu_held: BTreeMap<String, Vec<Held>>,
    /// When `gpus` and `gpu_held` were read, ms, where earlier than `at_ms`:
    /// kept from an earlier sample over a GPU reading that failed while no
    /// model reads `gpu` ([`Counters::keep_gpus_of`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_at_ms: Option<i64>,
}

impl Counters {
    /// Whether the host rebooted between `prev` and these: both know their
    /// boot id and the ids differ.
    pub fn rebooted_since(&self, prev: &Counters) -> bool {
        matches!((&prev.boot_id, &self.boot_id), (Some(a), Some(b)) if a != b)
    }

    /// When the GPUs were read, ms.
    pub fn gpu_at(&self) -> i64 {
        self.gpu_at_ms.unwrap_or(self.at_ms)
    }

    /// Keeps `prev`'s GPU readings and holders, as read when they were: the
    /// GPU reading of this sample failed while no model reads `gpu`, the
    /// sample is used for the rest, and each card's next tick spans the
    /// failed reading (a counter loses nothing; power within the gap
    /// limit), as a pair of C1 spans a missed scrape. Not across a reboot.
    pub fn keep_gpus_of(&mut self, prev: &Counters) {
        if self.rebooted_since(prev) || prev.at_ms >= self.at_ms {
            return;
        }
        self.gpus = prev.gpus.clone();
        self.gpu_held = prev.gpu_held.clone();
        self.gpu_at_ms = Some(prev.gpu_at());
    }

    /// What is known of the host's boots between `prev` and these: the
    /// same boot when both have the same boot id.
    pub fn boot_since(&self, prev: &Counters) -> Boot {
        match (&prev.boot_id, &self.boot_id) {
            (Some(a), Some(b)) if a == b => Boot::Same,
            _ => Boot::Unknown,
        }
    }
}

/// One sample.
#[derive(Debug, Default)]
pub struct Sample {
    /// The counters.
    pub counters: Counters,
    /// Every domain (shut-off ones too), sorted by uuid; empty when unread.
    pub domains: Vec<Domain>,
    /// This host's CPUs and memory, where libvirt gave them.
    pub node: Option<Node>,
    /// What could not be read, as (source kind, message).
    pub failures: Vec<(&'static str, String)>,
    /// What could not be read of sources no model reads (GPUs where no
    /// model declares `gpu`): said and counted, the sample still used.
    pub optional_failures: Vec<(&'static str, String)>,
}

/// Where samples come from.
pub struct Sources {
    /// `[inventory] libvirt_uri`; none: no domains.
    pub libvirt_uri: Option<String>,
    /// CPU times from elsewhere than libvirt (tests: the test driver's are the wall clock).
    pub cpu_times: Option<Box<dyn CpuTimes + Send>>,
    /// `[rapl] powercap_root`.
    pub powercap_root: PathBuf,
    /// The zones found under it (looked for again while none are found).
    pub zones: Vec<Zone>,
    /// The wall-power meter, where the policy reads one.
    pub meter: Option<Box<dyn PowerMeter>>,
    /// Whether a missing powercap tree is a failure (a model reads `rapl`)
    /// or only means this host has no RAPL meter to export.
    pub rapl_needed: bool,
    /// The open connection (opened again after a failure).
    pub connection: Option<Connection>,
    /// Domain metadata read in earlier samples.
    pub metadata: MetadataCache,
    /// `[daemon] boot_id_file`.
    pub boot_id_file: PathBuf,
    /// `[daemon] proc_stat_file`.
    pub proc_stat_file: PathBuf,
    /// The GPUs and their holders, with `[gpu]`.
    pub gpu: Option<GpuSources>,
}

/// How long domain metadata is trusted before it is read again.
pub const METADATA_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// An open libvirt connection; for the test driver, with the modification
/// time of its file (the driver reads the file once, at open).
pub struct Connection {
    libvirt: Libvirt,
    file_modified: Option<std::time::SystemTime>,
    /// The node's CPUs and memory, read once per connection; none where
    /// libvirt would not say (its embodied capacity is then unknown).
    node: Option<Node>,
}

impl Connection {
    fn open(uri: &str) -> Result<Self, crate::sources::libvirt::LibvirtError> {
        let libvirt = Libvirt::open(uri)?;
        let node = libvirt
            .node()
            .map_err(|e| tracing::debug!("{e}: the host's capacity is not known"))
            .ok();
        Ok(Self {
            libvirt,
            file_modified: test_file_modified(uri),
            node,
        })
    }
}

/// The modification time of a `test:///path` URI's file.
fn test_file_modified(uri: &str) -> Option<std::time::SystemTime> {
    let path = uri.strip_prefix("test://")?;
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Sources {
    /// Reads everything now.
    pub fn sample(&mut self, at_ms: i64) -> Sample {
        let mut sample = Sample {
            counters: Counters {
                at_ms,
                ..Counters::default()
            },
            ..Sample::default()
        };
        // Unreadable (not Linux, a container without /proc): no reboot is seen.
        sample.counters.boot_id = std::fs::read_to_string(&self.boot_id_file)
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        // Only `idle_power = "fit"` needs it; unread, that falls back (and says so).
        sample.counters.cpu_jiffies = proc_stat::read(&self.proc_stat_file).ok();
        let mut domain_xml = None;
        if let Some(uri) = &self.libvirt_uri {
            // The test driver's file changed: open it again to see the change.
            if self
                .connection
                .as_ref()
                .is_some_and(|c| c.file_modified != test_file_modified(uri))
            {
                self.connection = None;
            }
            let connection = match self.connection.take() {
                Some(connection) => Ok(connection),
                None => Connection::open(uri),
            };
            let wants_xml = self.gpu.is_some();
            let read = connection.and_then(|c| {
                let domains = c.libvirt.domains_cached(&mut self.metadata)?;
                let cpu = match &self.cpu_times {
                    Some(times) => times.cpu_seconds()?,
                    None => domains
                        .iter()
                        .filter_map(|d| Some((d.uuid.clone(), d.cpu_s?)))
                        .collect(),
                };
                let xml = if wants_xml {
                    c.libvirt.active_xml()?
                } else {
                    BTreeMap::new()
                };
                Ok((c, domains, cpu, xml))
            });
            match read {
                // A failed connection is dropped and opened again next time.
                Ok((connection, domains, cpu, xml)) => {
                    sample.node = connection.node;
                    self.connection = Some(connection);
                    sample.domains = domains;
                    sample.counters.cpu_s = cpu;
                    domain_xml = Some(xml);
                }
                Err(e) => sample.failures.push(("libvirt", e.to_string())),
            }
        }
        if self.zones.is_empty() {
            match rapl::discover(&self.powercap_root) {
                Ok(zones) => self.zones = zones,
                Err(e) if self.rapl_needed => sample.failures.push(("rapl", e.to_string())),
                Err(_) => {}
            }
        }
        if !self.zones.is_empty() {
            match rapl::sample(&self.zones) {
                Ok(values) => {
                    sample.counters.rapl_uj = self
                        .zones
                        .iter()
                        .map(|z| z.path.clone())
                        .zip(values)
                        .collect();
                }
                Err(e) => sample.failures.push(("rapl", e.to_string())),
            }
        }
        if let Some(meter) = &mut self.meter {
            match meter.watts() {
                Ok(watts) => sample.counters.power_w = Some(watts),
                Err(e) => sample.failures.push(("ipmi", e)),
            }
        }
        if let Some(gpu) = &mut self.gpu {
            match gpu.cards() {
                Ok(cards) => {
                    let (held, unresolved) = gpu.holders(&domain_xml.unwrap_or_default(), &cards);
                    sample
                        .optional_failures
                        .extend(unresolved.into_iter().map(|e| ("gpu-holder", e)));
                    sample.counters.gpus = cards;
                    sample.counters.gpu_held = held;
                }
                Err(e) if gpu.needed => sample.failures.push(("gpu", e)),
                Err(e) => sample.optional_failures.push(("gpu", e)),
            }
        }
        sample
    }
}
