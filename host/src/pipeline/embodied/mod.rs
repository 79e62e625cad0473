//! The embodied transform (`docs/ENERGY.md#embodied-carbon`): each host's
//! manufacturing emissions, spread evenly over its life, are split among
//! the VMs on it by `(vCPU share + memory share) / 2` of its capacity for
//! the seconds they were there; idle capacity stays at the host. `[embodied]`
//! is [`EmbodiedConfig`]; a host's figure is the policy's or a running
//! BoaviztAPI's (`boavizta`); its capacity is the policy's or measured from
//! node_exporter (`capacity`); `amortize` is the formula.

mod amortize;
mod boavizta;
mod capacity;
mod config;

pub use amortize::Amortized;
pub use config::EmbodiedConfig;
use config::HOURS_PER_YEAR;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use globset::GlobMatcher;

use super::{GatherPlan, PipelineError};
use crate::policy::Policy;
use crate::runtime::AttributionInput;
use crate::state::StateDir;
use crate::window::Window;

/// The window's embodied parts: each host's capacity measured where its
/// entry gives none (node_exporter's series, keyed by `[inventory]
/// host_label`), then [`Embodied::apply`] to `input`'s placements.
pub async fn amortized(
    embodied: &Embodied,
    policy: &Policy,
    plan: &GatherPlan<'_>,
    input: &AttributionInput,
    window: Window,
) -> Result<Amortized, PipelineError> {
    embodied.ask(&policy.state_dir()).await;
    let measured = match policy.inventory.host_label.as_deref() {
        Some(label) if embodied.needs_measuring(input.hosts.iter().map(String::as_str)) => {
            capacity::measure(plan.client(), label, |labels| plan.host_of(labels), window).await?
        }
        _ => HashMap::new(),
    };
    Ok(embodied.apply(input, &measured, window, Overcommit::EachWindow))
}

/// The state directory's folder of BoaviztAPI answers.
const CACHE_DIR: &str = "embodied";

/// Where a host's manufacturing emissions come from: one source per host
/// entry, named on the records it gives (`embodied_source`).
#[derive(Clone, Debug)]
pub enum Figure {
    /// The policy's `kg_co2e`.
    Static {
        /// kg CO2e of the host's manufacture.
        kg_co2e: f64,
    },
    /// A running BoaviztAPI's answer, once asked in this run.
    Boavizta(Arc<boavizta::Boavizta>),
}

impl Figure {
    /// The records' `embodied_source`: `static`, `boavizta:<archetype>` or
    /// `boavizta:config`.
    pub fn source(&self) -> &str {
        match self {
            Self::Static { .. } => "static",
            Self::Boavizta(api) => api.source(),
        }
    }
}

/// A host's capacity that VMs hold shares of: `V_h` and `M_h`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Capacity {
    /// vCPUs (V_h).
    pub vcpus: f64,
    /// Memory, MiB (M_h).
    pub memory_mib: f64,
}

impl Capacity {
    /// Whether both parts are above 0 (a share can be taken of it).
    pub fn usable(&self) -> bool {
        self.vcpus > 0.0 && self.memory_mib > 0.0
    }
}

/// One host entry of `[embodied]`, checked.
#[derive(Clone, Debug)]
pub struct HostFigure {
    /// The host glob, compiled.
    glob: GlobMatcher,
    /// The glob as the policy gives it (warnings name the entry by it).
    entry: String,
    /// Where its kg CO2e come from.
    pub figure: Figure,
    /// The entry's own `lifetime_years`.
    pub own_years: Option<f64>,
    /// `[embodied] lifetime_years` (or its default).
    pub default_years: f64,
    /// The policy's capacity; None: measured.
    pub capacity: Option<Capacity>,
}

impl HostFigure {
    /// `r_h`: grams CO2e per second of the host's life; None for a
    /// BoaviztAPI that gave no answer. The life is the entry's
    /// `lifetime_years`, else BoaviztAPI's `hours_life_time`, else the
    /// table's `lifetime_years`.
    pub fn rate_g_per_s(&self) -> Option<f64> {
        let (kg_co2e, api_hours) = match &self.figure {
            Figure::Static { kg_co2e } => (*kg_co2e, None),
            Figure::Boavizta(api) => {
                let answer = api.answer()?;
                (answer.kg_co2e, answer.hours_life_time)
            }
        };
        let hours = self
            .own_years
            .map(|years| years * HOURS_PER_YEAR)
            .or(api_hours)
            .unwrap_or(self.default_years * HOURS_PER_YEAR);
        Some(kg_co2e * 1000.0 / (hours * 3600.0))
    }
}

/// Why a VM's record carries no `embodied_g`, each warned of once per run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lack {
    /// Its host matches no `[embodied.hosts]` glob.
    Unmatched(String),
    /// Its host's capacity is neither in the policy nor measured.
    CapacityUnknown(String),
    /// Its host's BoaviztAPI gave no figure (warned of when asked).
    NoAnswer,
    /// It ran on a host that is not known.
    HostUnknown,
    /// Its vCPUs or memory are not known.
    SizeUnknown,
}

/// `[embodied]`, checked and ready to apply.
#[derive(Debug)]
pub struct Embodied {
    hosts: Vec<HostFigure>,
    /// `[embodied] cache_days`.
    cache_days: u32,
    /// What was warned of already in this run.
    warned: Mutex<BTreeSet<Lack>>,
    /// Hosts warned of as overcommitted in this run, where that is said
    /// once per run ([`Overcommit::OncePerRun`]).
    overcommitted: Mutex<BTreeSet<String>>,
}

/// How often an overcommitted host is warned of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overcommit {
    /// In every window (`extract`: windows are an hour or so apart).
    EachWindow,
    /// Once per run (the daemon: its intervals are seconds apart).
    OncePerRun,
}

impl Embodied {
    /// The host entries, in the policy's order.
    fn new(hosts: Vec<HostFigure>, cache_days: u32) -> Self {
        Self {
            hosts,
            cache_days,
            warned: Mutex::new(BTreeSet::new()),
            overcommitted: Mutex::new(BTreeSet::new()),
        }
    }

    /// The first entry whose glob matches `host`.
    pub fn host(&self, host: &str) -> Option<&HostFigure> {
        self.hosts.iter().find(|h| h.glob.is_match(host))
    }

    /// Whether an entry asks a BoaviztAPI (the daemon then asks at start).
    pub fn asks(&self) -> bool {
        self.hosts
            .iter()
            .any(|h| matches!(h.figure, Figure::Boavizta(_)))
    }

    /// [`Embodied::ask`] outside an async runtime (the daemon, at start
    /// and at each reload); no runtime, no asking, with a warning.
    pub fn ask_blocking(&self, state: &StateDir) {
        if !self.asks() {
            return;
        }
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(self.ask(state)),
            Err(e) => tracing::warn!("BoaviztAPI not asked: no async runtime: {e}"),
        }
    }

    /// Asks each entry's BoaviztAPI not yet asked in this run, one after
    /// the other, caching the answers in `state`'s `embodied/`; an entry
    /// without an answer is warned of here, once, naming its URL and glob,
    /// and its hosts' VMs get no `embodied_g`.
    pub async fn ask(&self, state: &StateDir) {
        let cache = state.root().join(CACHE_DIR);
        let cache = cache.as_path();
        let mut http = None;
        for host in &self.hosts {
            let Figure::Boavizta(api) = &host.figure else {
                continue;
            };
            if api.asked() {
                continue;
            }
            let http = match &mut http {
                Some(http) => http,
                slot => slot.insert(reqwest::Client::builder().build()),
            };
            let answer = match http {
                Ok(http) => {
                    let now_ms = chrono::Utc::now().timestamp_millis();
                    api.ask(http, Some(cache), self.cache_days, now_ms).await
                }
                Err(e) => Err(boavizta::BoaviztaError::Unreachable(e.to_string())),
            };
            match answer {
                Ok(answer) => tracing::debug!(
                    url = api.url(),
                    entry = %host.entry,
                    kg_co2e = answer.kg_co2e,
                    hours_life_time = answer.hours_life_time,
                    "BoaviztAPI's figure"
                ),
                Err(e) => tracing::warn!(
                    url = api.url(),
                    entry = %host.entry,
                    "BoaviztAPI at {} gave no figure for [embodied.hosts.\"{}\"]: {e}; the VMs on \
                     its hosts carry no embodied_g in this run",
                    api.url(),
                    host.entry
                ),
            }
        }
    }

    /// Whether any of `hosts` matches an entry without a capacity of its
    /// own (`extract` then measures capacities).
    pub fn needs_measuring<'a>(&self, mut hosts: impl Iterator<Item = &'a str>) -> bool {
        hosts.any(|h| self.host(h).is_some_and(|f| f.capacity.is_none()))
    }

    /// Each VM's embodied grams in `window` from `input`'s placements,
    /// `measured` holding capacities by host key; warns of what is lacking
    /// (once per run) and of overcommitted hosts (as `overcommit` says).
    pub fn apply(
        &self,
        input: &AttributionInput,
        measured: &HashMap<String, Capacity>,
        window: Window,
        overcommit: Overcommit,
    ) -> Amortized {
        let rates: Vec<Result<amortize::HostRate, Lack>> = input
            .hosts
            .iter()
            .map(|host| {
                let entry = self
                    .host(host)
                    .ok_or_else(|| Lack::Unmatched(host.clone()))?;
                let rate_g_per_s = entry.rate_g_per_s().ok_or(Lack::NoAnswer)?;
                let capacity = entry
                    .capacity
                    .or_else(|| measured.get(host).copied())
                    .filter(Capacity::usable)
                    .ok_or_else(|| Lack::CapacityUnknown(host.clone()))?;
                Ok(amortize::HostRate {
                    rate_g_per_s,
                    capacity,
                    source: Arc::from(entry.figure.source()),
                })
            })
            .collect();
        let (amortized, lacks) = amortize::amortize(input, &rates, window);
        for host in amortized.hosts.iter().filter(|h| h.scaled) {
            let name = &input.hosts[host.host];
            if overcommit == Overcommit::OncePerRun
                && !self
                    .overcommitted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone())
            {
                continue;
            }
            tracing::warn!(
                %window,
                host = %name,
                held_g = host.held_g,
                host_g = host.whole_g,
                "the host's VMs hold more than its capacity (overcommit): each VM's embodied_g on \
                 it is scaled down so that they add up to the host's; set its capacity in \
                 [embodied.hosts] to the vCPUs and memory it offers"
            );
        }
        for host in &amortized.hosts {
            tracing::debug!(
                %window,
                host = %input.hosts[host.host],
                host_g = host.whole_g,
                vms_g = host.held_g.min(host.whole_g),
                idle_g = host.idle_g,
                "embodied emissions split"
            );
        }
        self.warn(lacks);
        amortized
    }

    /// Warns of each lack not yet warned of in this run: hosts by name.
    fn warn(&self, lacks: BTreeSet<Lack>) {
        let new: Vec<Lack> = {
            let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            lacks
                .into_iter()
                .filter(|l| warned.insert(l.clone()))
                .collect()
        };
        let names = |f: fn(&Lack) -> Option<&str>| -> String {
            new.iter().filter_map(f).collect::<Vec<_>>().join(", ")
        };
        let no_entry = names(|l| match l {
            Lack::Unmatched(h) => Some(h.as_str()),
            _ => None,
        });
        if !no_entry.is_empty() {
            tracing::warn!(
                hosts = %no_entry,
                "hosts match no [embodied.hosts] glob: their VMs' records carry no embodied_g; \
                 add an entry with kg_co2e for them"
            );
        }
        let no_capacity = names(|l| match l {
            Lack::CapacityUnknown(h) => Some(h.as_str()),
            _ => None,
        });
        if !no_capacity.is_empty() {
            tracing::warn!(
                hosts = %no_capacity,
                "hosts' capacity is not known: their VMs' records carry no embodied_g; set \
                 capacity = {{ vcpus, memory_gb }} in their [embodied.hosts] entry, or scrape \
                 node_exporter's node_cpu_seconds_total and node_memory_MemTotal_bytes with \
                 [inventory] host_label (the daemon reads them from libvirt's node info)"
            );
        }
        if new.contains(&Lack::HostUnknown) {
            tracing::warn!(
                "VMs ran on a host that is not known: their records carry no embodied_g; set \
                 [inventory] host_label (and host_regex) to name each VM's host"
            );
        }
        if new.contains(&Lack::SizeUnknown) {
            tracing::warn!(
                "VMs without a known vCPU count or memory size: their records carry no \
                 embodied_g; check [inventory] vcpus_metric and memory_metric"
            );
        }
    }
}
