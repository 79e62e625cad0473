//! Gathering: every measurement a model declared, made over a window, and
//! the VMs and hosts they cover, as the model's input. Three steps:
//! [`plan`] resolves what to ask once per run, [`measure`] asks it (I/O
//! only), [`assemble`] turns the answers into the model's input (pure).

mod assemble;
mod ended;
mod gpus;
mod measure;
mod notices;
mod plan;

use std::collections::{BTreeMap, HashMap};

pub use ended::Ended;
pub use plan::{GatherPlan, IdleSetting, StaticIdle, idle_setting, plan_problems, plan_warnings};

use crate::pipeline::PipelineError;
use crate::runtime::{AttributionInput, KeyKind, Status, VmDetails};
use crate::sources::cloud::CloudInventory;
use crate::sources::libvirt::Domain;
use crate::sources::prometheus::{Labels, Metadata, StoppedSeries};
use crate::window::Window;

/// The model's input and what the host keeps beside it.
pub struct Gathered {
    /// What the model sees (`details` filled only for models that declare `inventory`).
    pub input: AttributionInput,
    /// Per input VM, what the inventory knows of it (for the records).
    pub details: Vec<VmDetails>,
    /// Per input VM, seconds the window saw it (longest span of its readings).
    pub wall_s: Vec<f64>,
    /// Per input VM, its measured CPU seconds (None where no CPU-time series exists).
    pub cpu_s: Vec<Option<f64>>,
    /// Per input VM, where it stood at the window's end (`docs/ENERGY.md#record-status`).
    pub status: Vec<Status>,
    /// Series that needed a raw sample fetch.
    pub raw_fetched: usize,
    /// Per host key: VMs the cloud's API says ran there in the window but
    /// that no series measured (no record; counted in the host summary).
    pub unmeasured: BTreeMap<String, usize>,
    /// VMs the window completes though nothing measured them in it (their
    /// counters stopped in the lookback before its start): not in `input`,
    /// a record of 0 J each (`docs/ENERGY.md#record-status`).
    pub ended: Vec<Ended>,
}

/// One keyed measurement's results, counter or gauge alike.
struct KeyedResult {
    name: String,
    key: KeyKind,
    key_label: String,
    series: Vec<SeriesReading>,
    /// A counter's series that stopped at the window's start (none has a
    /// sample in it): they decide the status of VMs that have no reading
    /// (`docs/ENERGY.md#record-status`).
    stopped: Vec<StoppedSeries>,
}

/// One series' reading, already in joules (or seconds).
struct SeriesReading {
    labels: Labels,
    value: f64,
    span_s: f64,
    covered_s: f64,
    /// A counter's first and last used sample times, ms (None for gauges and templates).
    times: Option<(i64, i64)>,
}

/// What [`measure`] read for a window: every slot's readings and the inventory.
pub(super) struct Readings {
    /// What the cloud's API says lived in the window, where the policy reads one.
    cloud: Option<CloudInventory>,
    /// Each slot's readings, in the plan's order (the implicit CPU time aside).
    keyed: Vec<KeyedResult>,
    /// The CPU time read for the records only, where the model reads none.
    implicit_cpu: Option<KeyedResult>,
    /// The info series' labels per uuid.
    metadata: Metadata,
    /// vCPUs and memory per uuid, from the exporter's gauges.
    sizes: HashMap<String, (Option<u32>, Option<u64>)>,
    /// libvirt's domains per uuid, where `[inventory] libvirt_uri` is set.
    domains: HashMap<String, Domain>,
    /// Series that needed a raw sample fetch.
    raw_fetched: usize,
    /// Each host's GPUs and their holders, where the model declares `gpu`
    /// and the policy has `[gpu]`.
    gpus: Vec<gpus::Card>,
}

/// Makes every measurement over `window` and assembles the model's input.
/// VMs are those with data in the window (an absent VM gets no reading and so no record).
pub async fn gather(plan: &GatherPlan<'_>, window: Window) -> Result<Gathered, PipelineError> {
    let readings = measure::window(plan, window).await?;
    let described = assemble::describe(plan, &readings, window)?;
    // Per-VM templates ask about the VMs just found.
    let templated = if plan.resolved.per_vm_templates.is_empty() {
        Vec::new()
    } else {
        let vars = assemble::template_vars(plan, &described);
        measure::per_vm_templates(plan, &vars, window).await?
    };
    Ok(assemble::assemble(
        plan, &readings, described, templated, window,
    ))
}
