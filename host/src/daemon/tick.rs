//! One tick of the daemon: sample, attribute the interval since the last
//! sample with the policy's models, accumulate, persist, publish.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use super::gpu;
use super::interval;
use super::ledger::{self, Ledger, Part};
use super::sample::{Counters, Sample, Sources};
use crate::pipeline::{self, Capacity, Overcommit, Plan, StaticIdle};
use crate::policy::{Bound, Policy};
use crate::records;
use crate::runtime::Quality;
use crate::sources::libvirt::Domain;
use crate::sources::owner::Owner;
use crate::sources::rapl;
use crate::window::{Window, format_ms};

/// One VM's energy in one interval: a line of `/download` and a message of `/stream`.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalRecord {
    /// Interval start, RFC 3339.
    pub start: String,
    /// Interval end, RFC 3339.
    pub end: String,
    /// The VM's uuid.
    pub uuid: String,
    /// Its display name.
    pub name: String,
    /// Its project (name, else id).
    pub project: String,
    /// This host.
    pub host: String,
    /// Joules in the interval.
    pub joules: f64,
    /// Average power over the interval, watts.
    pub watts: f64,
    /// CPU seconds in the interval.
    pub cpu_s: f64,
    /// The model that gave it.
    pub model: String,
}

/// A running domain as `/metrics` and `/vms` show it.
#[derive(Clone, Debug, Serialize)]
pub struct VmNow {
    /// uuid.
    pub uuid: String,
    /// libvirt name (`instance-0000002a`).
    pub libvirt_name: String,
    /// What the cloud says of it.
    pub who: Owner,
    /// Joules since the state began.
    pub joules_total: f64,
    /// The GPU part of them, where a model that declares `gpu` gave it energy.
    pub gpu_joules_total: Option<f64>,
    /// gCO2e since the state began, where `[carbon]` gives an intensity.
    pub carbon_grams_total: Option<f64>,
    /// Embodied gCO2e since the state began, where `[embodied]` gives this
    /// host a figure and its capacity is known.
    pub embodied_grams_total: Option<f64>,
    /// Power over the last interval, watts; none before its first interval.
    pub watts: Option<f64>,
    /// Cumulative CPU seconds (libvirt's counter).
    pub cpu_s: Option<f64>,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// What the guest uses of it, where libvirt knows.
    pub memory_use: Option<crate::sources::libvirt::MemoryUse>,
}

/// A running domain holding (part of) a GPU at the last sample.
#[derive(Clone, Debug, Serialize)]
pub struct GpuHolder {
    /// The domain's uuid.
    pub uuid: String,
    /// The card's bus id.
    pub bus_id: String,
    /// The card's uuid, where the meter printed one (now or before the
    /// card was bound to vfio-pci).
    pub gpu_uuid: Option<String>,
    /// How it holds it.
    pub mode: crate::sources::gpu::Mode,
    /// The part of the card.
    pub share: f64,
    /// The vGPU type, where one.
    pub profile: Option<String>,
}

/// Sampling, plugin and delivery health.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    /// Last sample with every needed source read, ms.
    pub last_success_ms: Option<i64>,
    /// Failed intervals in a row.
    pub failures_in_a_row: u32,
    /// Failed samples per source kind (`libvirt`, `rapl`, `ipmi`).
    pub sample_failures: BTreeMap<&'static str, u64>,
    /// Intervals whose model failed.
    pub plugin_failures: u64,
    /// Seconds the last tick took (sample + attribute + persist).
    pub last_tick_s: f64,
    /// Intervals attributed.
    pub intervals: u64,
    /// Shipping runs in which a messenger failed (its payloads stay spooled).
    pub messenger_failures: u64,
    /// When records were last shipped with every messenger accepting, ms.
    pub last_ship_ms: Option<i64>,
    /// Reboots seen between two samples (each a new baseline).
    pub reboots: u64,
    /// Ticks whose state could not be saved (a full or read-only disk):
    /// the counters go on in memory and are saved at the next tick that can.
    pub persist_failures: u64,
}

/// What the HTTP server reads: replaced whole after each tick.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// This host's key.
    pub host: String,
    /// Running domains.
    pub vms: Vec<VmNow>,
    /// Joules per local meter since the state began.
    pub meters: BTreeMap<String, f64>,
    /// Joules per GPU (bus id) since the state began.
    pub gpus: BTreeMap<String, f64>,
    /// Who holds which GPU at the last sample.
    pub gpu_holders: Vec<GpuHolder>,
    /// Unattributed joules since the state began.
    pub unattributed_joules: f64,
    /// Host power over the last interval (the model's host meter), watts.
    pub host_watts: Option<f64>,
    /// The host's idle power in the last interval, where the model uses one.
    pub idle_watts: Option<f64>,
    /// Health.
    pub health: Health,
    /// Whether the libvirt/nova exporter's series are served too (`[daemon]
    /// compat_series`).
    pub compat_series: bool,
}

/// What the daemon shares with its HTTP server.
pub struct Shared {
    /// The latest snapshot.
    pub snapshot: RwLock<Arc<Snapshot>>,
    /// The last per-interval records (`/download`), oldest first.
    pub ring: Mutex<VecDeque<IntervalRecord>>,
    /// Per-interval records as JSON, as they are made (`/stream`).
    pub stream: tokio::sync::broadcast::Sender<Arc<str>>,
    /// The bearer token every endpoint but `/healthz` asks for.
    pub token: RwLock<Option<String>>,
    /// How many records the ring keeps.
    pub ring_rows: RwLock<usize>,
}

/// Records a `/stream` client may be behind before it is dropped: a tick
/// sends one per VM at once, so a host's worth and more (at ~300 bytes a
/// record, at most ~2.5 MB kept).
const STREAM_BACKLOG: usize = 8192;

impl Shared {
    /// Empty, with a ring of `rows`.
    pub fn new(rows: usize, token: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            ring: Mutex::new(VecDeque::new()),
            stream: tokio::sync::broadcast::channel(STREAM_BACKLOG).0,
            token: RwLock::new(token),
            ring_rows: RwLock::new(rows),
        })
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_default()
    }
}

/// The daemon's working state between ticks.
pub struct DaemonState {
    /// The policy in force.
    pub policy: Policy,
    /// Its plugins.
    pub bound: Bound,
    /// Where samples come from.
    pub sources: Sources,
    /// This host's key.
    pub host: String,
    pub(super) ledger: Ledger,
    ledger_path: PathBuf,
    /// `[idle_power]` of the policy, compiled (again at each reload).
    static_idle: StaticIdle,
    domains: Vec<Domain>,
    power: BTreeMap<String, f64>,
    host_watts: Option<f64>,
    idle_watts: Option<f64>,
    pub(super) health: Health,
    /// Source kinds whose failure was logged (logged again only after a success).
    logged: BTreeSet<&'static str>,
    /// The state could not be saved at the last tick (said once).
    persist_failing: bool,
    shared: Arc<Shared>,
}

/// A tick that could not be persisted: the daemon stops rather than serve
/// counters it could lose.
#[derive(Debug, thiserror::Error)]
#[error("cannot persist the daemon's counters: {0}")]
pub struct PersistError(#[from] crate::state::StateError);

impl DaemonState {
    /// An engine with the ledger of the policy's state directory (created).
    pub fn new(
        policy: Policy,
        bound: Bound,
        sources: Sources,
        host: String,
        shared: Arc<Shared>,
    ) -> Result<Self, PersistError> {
        let state = policy.state_dir();
        state.create()?;
        let ledger_path = ledger::path(state.root());
        let mut ledger = Ledger::load(&ledger_path);
        ledger
            .idle
            .set_horizon_secs(policy.daemon_config().idle_horizon_secs);
        let static_idle = StaticIdle::new(&policy);
        let engine = Self {
            policy,
            bound,
            sources,
            host,
            ledger,
            ledger_path,
            static_idle,
            domains: Vec::new(),
            power: BTreeMap::new(),
            host_watts: None,
            idle_watts: None,
            health: Health::default(),
            logged: BTreeSet::new(),
            persist_failing: false,
            shared,
        };
        engine.publish();
        Ok(engine)
    }

    /// Swaps in a reloaded policy; the counters and the history carry on.
    pub fn reload(&mut self, policy: Policy, bound: Bound, sources: Sources, host: String) {
        self.static_idle = StaticIdle::new(&policy);
        self.ledger
            .idle
            .set_horizon_secs(policy.daemon_config().idle_horizon_secs);
        self.policy = policy;
        self.bound = bound;
        self.sources = sources;
        self.host = host;
    }

    /// The ledger (tests and shipping read it).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Samples at `now_ms`, attributes the interval since the last sample,
    /// persists, then publishes. A sample missing a source the policy needs
    /// is not used: the next good one measures the whole span (the counters
    /// are cumulative, so nothing is lost). State that cannot be saved (a
    /// full or read-only disk) is said once and saved at the next tick that
    /// can; the counters go on in memory and are served meanwhile.
    pub fn tick(&mut self, now_ms: i64) {
        let started = std::time::Instant::now();
        let mut sample = self.sources.sample(now_ms);
        let sampled = started.elapsed();
        if sample
            .optional_failures
            .iter()
            .any(|(kind, _)| *kind == "gpu")
            && let Some(prev) = &self.ledger.last
        {
            sample.counters.keep_gpus_of(prev);
        }
        let all_failures = sample.failures.iter().chain(&sample.optional_failures);
        for (kind, message) in all_failures.clone() {
            *self.health.sample_failures.entry(kind).or_default() += 1;
            if self.logged.insert(kind) {
                tracing::warn!(source = kind, "{message}; retried every interval");
            }
        }
        let failed: BTreeSet<&str> = all_failures.map(|(k, _)| *k).collect();
        for kind in std::mem::take(&mut self.logged) {
            if failed.contains(kind) {
                self.logged.insert(kind);
            } else {
                tracing::info!(source = kind, "reads again");
            }
        }
        if !sample.failures.is_empty() {
            self.health.failures_in_a_row += 1;
            self.health.last_tick_s = started.elapsed().as_secs_f64();
            self.publish();
            return;
        }
        let mut records = Vec::new();
        match self.ledger.last.take() {
            Some(prev) if sample.counters.rebooted_since(&prev) => {
                // Counters of another boot are no base: a drop would read as
                // a wrap (a whole range of energy that never happened).
                tracing::warn!(
                    "this host rebooted between the samples at {} and {}: the first sample after \
                     the boot is a new baseline, and the {:.0} s between them are not attributed \
                     (uncovered)",
                    format_ms(prev.at_ms),
                    format_ms(now_ms),
                    (now_ms - prev.at_ms) as f64 / 1000.0
                );
                self.health.reboots += 1;
                self.ledger.last = Some(sample.counters);
                self.health.failures_in_a_row = 0;
                self.health.last_success_ms = Some(now_ms);
            }
            Some(prev) if prev.at_ms < now_ms => {
                match self.attribute(&prev, &sample) {
                    Ok(made) => {
                        records = made;
                        // Only with `last` moving on: a failed interval is
                        // measured again, meters included, at the next success.
                        self.meters(&prev, &sample.counters);
                        self.ledger.last = Some(sample.counters);
                        self.health.failures_in_a_row = 0;
                        self.health.last_success_ms = Some(now_ms);
                        self.health.intervals += 1;
                    }
                    Err(e) => {
                        // The interval is measured again from `prev` next time.
                        self.health.plugin_failures += 1;
                        self.health.failures_in_a_row += 1;
                        tracing::warn!("interval ending {}: {e}", format_ms(now_ms));
                        self.ledger.last = Some(prev);
                    }
                }
            }
            previous => {
                if let Some(prev) = previous {
                    // Not an interval of negative length: a new baseline.
                    tracing::warn!(
                        "the clock stepped back from {} to {}: this sample is a new baseline, and \
                         the energy since the last one is not attributed",
                        format_ms(prev.at_ms),
                        format_ms(now_ms)
                    );
                }
                self.ledger.last = Some(sample.counters);
                self.health.failures_in_a_row = 0;
                self.health.last_success_ms = Some(now_ms);
            }
        }
        self.domains = sample.domains;
        let attributed = started.elapsed();
        self.persist();
        let saved = started.elapsed();
        self.health.last_tick_s = saved.as_secs_f64();
        self.publish();
        self.push_records(records);
        tracing::debug!(
            vms = self.domains.len(),
            sample_ms = sampled.as_millis() as u64,
            attribute_ms = (attributed - sampled).as_millis() as u64,
            persist_ms = (saved - attributed).as_millis() as u64,
            publish_ms = (started.elapsed() - saved).as_millis() as u64,
            "tick"
        );
    }

    /// Every local meter's energy between two samples (RAPL zones that make
    /// up host energy, wrap-aware; IPMI by G1 within the gap limit of the
    /// model's host-power measurement), whatever the model reads, by the same
    /// rules as the models' input: what the models were refused is never
    /// counted here either.
    fn meters(&mut self, prev: &Counters, cur: &Counters) {
        let dt_ms = cur.at_ms - prev.at_ms;
        for zone in rapl::host_zones(&self.sources.zones, &[]) {
            if let (Some(&a), Some(&b)) =
                (prev.rapl_uj.get(&zone.path), cur.rapl_uj.get(&zone.path))
            {
                let joules = rapl::joules_between(
                    std::slice::from_ref(&zone),
                    &[a],
                    &[b],
                    dt_ms,
                    cur.boot_since(prev),
                );
                *self
                    .ledger
                    .meter_joules
                    .entry(zone.name.clone())
                    .or_default() += joules;
            }
        }
        let plan = Plan::new(&self.bound);
        let max_gap_s = plan.measurements().iter().find_map(|m| match m {
            crate::runtime::Measurement::HostPower(h) => Some(h.max_gap_s),
            _ => None,
        });
        if let Some(joules) = interval::wall_joules(prev, cur, max_gap_s.flatten()) {
            *self.ledger.meter_joules.entry("ipmi".into()).or_default() += joules;
        }
        let gpu_gap_s = plan.measurements().iter().find_map(|m| match m {
            crate::runtime::Measurement::Gpu(g) => g.max_gap_s,
            _ => None,
        });
        for card in gpu::ticks(prev, cur, gpu_gap_s) {
            *self.ledger.gpu_joules.entry(card.bus_id).or_default() += card.joules;
        }
        for (bus_id, card) in &cur.gpus {
            if let Some(uuid) = &card.gpu_uuid {
                self.ledger.gpu_uuids.insert(bus_id.clone(), uuid.clone());
            }
        }
    }

    /// Runs the models on the interval and adds their joules to the ledger.
    fn attribute(
        &mut self,
        prev: &Counters,
        sample: &Sample,
    ) -> Result<Vec<IntervalRecord>, pipeline::PipelineError> {
        let plan = Plan::new(&self.bound);
        let mut gathered = interval::gather(
            &self.static_idle,
            plan.measurements(),
            &self.host,
            &self.sources.zones,
            prev,
            sample,
            &mut self.ledger.idle,
        )?;
        let window = Window {
            start_ms: prev.at_ms,
            end_ms: sample.counters.at_ms,
        };
        // Embodied grams by extract's formula over the interval's
        // placements, with this host's capacity from libvirt where its
        // `[embodied]` entry gives none.
        let embodied = self.bound.embodied.as_ref().map(|e| {
            let measured: HashMap<String, Capacity> = sample
                .node
                .map(|n| {
                    let capacity = Capacity {
                        vcpus: f64::from(n.cpus),
                        memory_mib: n.memory_kib as f64 / 1024.0,
                    };
                    (self.host.clone(), capacity)
                })
                .into_iter()
                .collect();
            e.apply(&gathered.input, &measured, window, Overcommit::OncePerRun)
        });
        let attributed = pipeline::attribute(&plan, &mut gathered, window)?;
        let dt = window.len_ms() as f64 / 1000.0;
        let ship_ms = self.policy.daemon_config().ship_every_secs as i64 * 1000;
        let input = &gathered.input;
        let carbon = self.bound.carbon.as_ref();
        let mut records = Vec::with_capacity(input.vms.len());
        self.power.clear();
        for (i, vm) in input.vms.iter().enumerate() {
            let Some(joules) = attributed.joules[i] else {
                continue;
            };
            let slot = &plan.slots()[attributed.model_of[i]];
            let info = slot.model.info();
            let who = Owner::from(&gathered.details[i]);
            let cpu_s = gathered.cpu_s[i].unwrap_or(0.0);
            *self.ledger.vm_joules.entry(vm.uuid.clone()).or_default() += joules;
            if let Some(gpu_joules) = attributed.gpu_j[i] {
                *self
                    .ledger
                    .vm_gpu_joules
                    .entry(vm.uuid.clone())
                    .or_default() += gpu_joules;
            }
            if let Some(grams) = carbon.and_then(|c| c.fixed_footprint(joules, Some(&self.host))) {
                *self
                    .ledger
                    .vm_carbon_grams
                    .entry(vm.uuid.clone())
                    .or_default() += grams;
            }
            let embodied = embodied
                .as_ref()
                .and_then(|a| a.vms.get(i).cloned().flatten());
            if let Some(part) = &embodied {
                *self
                    .ledger
                    .vm_embodied_grams
                    .entry(vm.uuid.clone())
                    .or_default() += part.grams;
            }
            self.ledger
                .vm_seen_ms
                .insert(vm.uuid.clone(), window.end_ms);
            self.power.insert(vm.uuid.clone(), joules / dt);
            let template = Part {
                vcpus: vm.vcpus,
                memory_mb: vm.memory_mb,
                who: who.clone(),
                model: info.name.clone(),
                model_version: info.version.clone(),
                estimated: info.quality == Quality::Estimated,
                meters: records::meters(slot.measurements),
                embodied_g: embodied.as_ref().map(|p| p.grams),
                embodied_source: embodied.map(|p| p.source.to_string()),
                gpu_j: attributed.gpu_j[i],
                gpu_shared: attributed.gpu_shared[i],
                gpu_meter: records::gpu_meter(info, slot.params),
                ..Part::default()
            };
            self.ledger
                .add_part(&vm.uuid, window, ship_ms, joules, cpu_s, &template);
            records.push(IntervalRecord {
                start: format_ms(window.start_ms),
                end: format_ms(window.end_ms),
                uuid: vm.uuid.clone(),
                name: who.name.clone().unwrap_or_default(),
                project: who.project().to_owned(),
                host: self.host.clone(),
                joules,
                watts: joules / dt,
                cpu_s,
                model: info.name.clone(),
            });
        }
        let forget_after_ms = self.policy.daemon_config().forget_after_secs as i64 * 1000;
        self.ledger.forget_gone(window.end_ms, forget_after_ms);
        let host = attributed.hosts.first();
        self.ledger.unattributed_joules += attributed
            .hosts
            .iter()
            .map(|h| h.unattributed_joules)
            .sum::<f64>();
        self.host_watts = host.and_then(|h| h.energy_joules).map(|e| e / dt);
        self.idle_watts = host.and_then(|h| h.idle_power_watts);
        Ok(records)
    }

    /// Persists the ledger (after each tick, and after shipping dropped what
    /// is spooled). State that cannot be saved (a full or read-only disk) is
    /// said once and counted; the counters go on in memory, are served, and
    /// are saved at the next call that can.
    pub fn persist(&mut self) {
        match self.ledger.save(&self.ledger_path) {
            Ok(()) if self.persist_failing => {
                self.persist_failing = false;
                tracing::info!(path = %self.ledger_path.display(), "the daemon's state is saved again");
            }
            Ok(()) => {}
            Err(e) => {
                self.health.persist_failures += 1;
                if !std::mem::replace(&mut self.persist_failing, true) {
                    tracing::error!(
                        "{e}: the counters go on in memory and are served; the state is saved \
                         at the next tick that can (free space, or make the directory writable)"
                    );
                }
            }
        }
    }

    /// Replaces the shared snapshot with the current state.
    pub(super) fn publish(&self) {
        let vms = self
            .domains
            .iter()
            .filter(|d| d.state.is_active())
            .map(|d| VmNow {
                uuid: d.uuid.clone(),
                libvirt_name: d.name.clone(),
                who: Owner::from(&pipeline::domain_details(d)),
                joules_total: self.ledger.vm_joules.get(&d.uuid).copied().unwrap_or(0.0),
                gpu_joules_total: self.ledger.vm_gpu_joules.get(&d.uuid).copied(),
                carbon_grams_total: self.ledger.vm_carbon_grams.get(&d.uuid).copied(),
                embodied_grams_total: self.ledger.vm_embodied_grams.get(&d.uuid).copied(),
                watts: self.power.get(&d.uuid).copied(),
                cpu_s: self
                    .ledger
                    .last
                    .as_ref()
                    .and_then(|c| c.cpu_s.get(&d.uuid).copied()),
                vcpus: d.vcpus,
                memory_mb: d.memory_mb,
                memory_use: d.memory_use,
            })
            .collect();
        let last = self.ledger.last.as_ref();
        let gpu_holders = last
            .into_iter()
            .flat_map(|c| &c.gpu_held)
            .flat_map(|(uuid, held)| held.iter().map(move |h| (uuid, h)))
            .map(|(uuid, h)| GpuHolder {
                uuid: uuid.clone(),
                bus_id: h.bus_id.clone(),
                gpu_uuid: last
                    .and_then(|c| c.gpus.get(&h.bus_id))
                    .and_then(|c| c.gpu_uuid.clone())
                    .or_else(|| self.ledger.gpu_uuids.get(&h.bus_id).cloned()),
                mode: h.mode,
                share: h.share,
                profile: h.profile.clone(),
            })
            .collect();
        let snapshot = Snapshot {
            host: self.host.clone(),
            vms,
            meters: self.ledger.meter_joules.clone(),
            gpus: self.ledger.gpu_joules.clone(),
            gpu_holders,
            unattributed_joules: self.ledger.unattributed_joules,
            host_watts: self.host_watts,
            idle_watts: self.idle_watts,
            health: self.health.clone(),
            compat_series: self.policy.daemon_config().compat_series,
        };
        if let Ok(mut slot) = self.shared.snapshot.write() {
            *slot = Arc::new(snapshot);
        }
    }

    /// Keeps the records for `/download` and sends them to `/stream`.
    fn push_records(&self, records: Vec<IntervalRecord>) {
        let rows = self.shared.ring_rows.read().map(|r| *r).unwrap_or(100);
        for record in records {
            if let Ok(json) = serde_json::to_string(&record) {
                // No subscriber is no error.
                let _ = self.shared.stream.send(Arc::from(json));
            }
            if let Ok(mut ring) = self.shared.ring.lock() {
                ring.push_back(record);
                while ring.len() > rows {
                    ring.pop_front();
                }
            }
        }
    }
}
