//! One window, start to finish: gather → attribute → validate → build records
//! → render. The only place that knows the order of the steps; delivery of the
//! rendered payloads is the caller's (extract, daemon).

mod attribute;
mod carbon;
mod embodied;
mod gather;
mod progress;
mod render;
mod rules;
mod ship;
mod summary;
mod vm_metadata;

use std::collections::BTreeSet;
use std::time::Instant;

pub use attribute::{Attributed, attribute};
pub use carbon::{Carbon, CarbonConfig};
pub use embodied::{Capacity, Embodied, EmbodiedConfig, Overcommit};
pub use gather::{
    GatherPlan, Gathered, IdleSetting, StaticIdle, gather, idle_setting, plan_problems,
    plan_warnings,
};
pub use progress::Progress;
pub use render::{Chunks, RENDER_CHUNK, Renderer};
pub use rules::{Explained, Plan};
pub use ship::{
    Dropped, ExtractOptions, ShipError, ShipReport, Stop, cut, drop_spooled, extract, retry, ship,
};
pub use vm_metadata::from_domain as domain_details;

pub use summary::{HostSummary, host_meter, table as host_table};

use crate::policy::{Bound, Policy};
use crate::records::{self, EnergyRecord, Identity};
use crate::runtime::{Measurement, PluginError};
use crate::sources::carbon_intensity::{Intensity, IntensityError};
use crate::sources::prometheus::{Client, PrometheusError, TemplateError};
use crate::window::Window;

/// Why a window could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A measurement could not be made.
    #[error(transparent)]
    Source(#[from] PrometheusError),
    /// libvirt could not be read.
    #[error(transparent)]
    Libvirt(#[from] crate::sources::libvirt::LibvirtError),
    /// A PromQL template is invalid, or its query failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The model or a format failed or broke the contract.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The grid carbon intensity could not be measured.
    #[error(transparent)]
    Carbon(#[from] IntensityError),
    /// The cloud's API (`[inventory] source`) could not be read.
    #[error(transparent)]
    Cloud(#[from] crate::sources::cloud::CloudError),
    /// The policy asks for something this build cannot measure.
    #[error("{0}")]
    Unsupported(String),
}

/// Runs gather (on `tokio`), then attribute and render for one window; hands
/// each payload to `sink` with its output's index (policy order) as soon as it
/// is rendered, in chunk order, so a window's payloads are never all held at
/// once. Returns how many records the window has and its hosts' summaries.
/// An error from `sink` stops the window.
pub fn run_window<E: From<PipelineError>>(
    policy: &Policy,
    bound: &Bound,
    plan: &Plan<'_>,
    gather_plan: &GatherPlan<'_>,
    window: Window,
    tokio: &tokio::runtime::Runtime,
    sink: impl FnMut(usize, Vec<u8>) -> Result<(), E>,
) -> Result<WindowDone, E> {
    std::thread::scope(|scope| {
        let mut renderer = Renderer::new(scope, bound, sink);
        window_records(
            policy,
            bound,
            plan,
            gather_plan,
            window,
            tokio,
            &mut renderer,
        )
    })
}

/// Runs gather (on `tokio`), then attribute for one window, and hands its
/// records to `each` ([`Chunks`]), [`RENDER_CHUNK`] at a time in uuid
/// order, with their VOs and carbon set. Returns how many records the window
/// has and its hosts' summaries. An error from `each` stops the window.
///
/// Plugins run outside the async runtime: wasmtime-wasi's blocking stream
/// calls (a guest printing its panic message) enter a runtime of their own.
pub fn window_records<E: From<PipelineError>>(
    policy: &Policy,
    bound: &Bound,
    plan: &Plan<'_>,
    gather_plan: &GatherPlan<'_>,
    window: Window,
    tokio: &tokio::runtime::Runtime,
    each: &mut impl Chunks<E>,
) -> Result<WindowDone, E> {
    let started = Instant::now();
    let mut gathered = tokio.block_on(gather(gather_plan, window))?;
    let intensity = match &bound.carbon {
        Some(carbon) => tokio
            .block_on(
                carbon
                    .intensity_source()
                    .measure(Some(gather_plan.client()), window),
            )
            .map_err(PipelineError::from)?,
        None => Intensity::Unknown,
    };
    let embodied = match &bound.embodied {
        Some(embodied) => Some(tokio.block_on(embodied::amortized(
            embodied,
            policy,
            gather_plan,
            &gathered.input,
            window,
        ))?),
        None => None,
    };
    let gathered_at = started.elapsed();
    let attributed = attribute(plan, &mut gathered, window)?;
    let attributed_at = started.elapsed();

    let identity = Identity {
        site: policy.site.name.clone(),
        cloud_type: policy.site.cloud_type.clone(),
        compute_service: policy.site.compute_service.clone(),
    };
    // The records need only the gauges' coverage of the measurements, and no
    // placement: what the model alone needed is freed for the records.
    gathered.input.placements = Vec::new();
    gathered.input.measurements.retain(|m| {
        plan.measurements().iter().any(|b| match b {
            Measurement::Gauge(g) => g.name == m.name,
            Measurement::HostPower(h) => h.name == m.name,
            _ => false,
        })
    });
    let input = &gathered.input;
    let gauges = &input.measurements;
    let Attributed {
        joules,
        gpu_j,
        gpu_shared,
        model_of,
        host_of,
        hosts,
    } = attributed;
    // Records are built, mapped, rendered and handed on RENDER_CHUNK at a
    // time, in uuid order: neither all records nor all payloads are held.
    // A VM the window completes with no reading has the model its rules give it.
    let mut order: Vec<Item> = joules
        .into_iter()
        .enumerate()
        .filter_map(|(i, j)| Some(Item::Attributed(i, j?)))
        .chain(gathered.ended.iter().enumerate().filter_map(|(i, e)| {
            let slot = plan.slot_of(e.host.as_deref(), &e.details);
            if slot.is_none() {
                tracing::debug!(vm = e.vm.uuid, %window, "a VM that stopped matches no rule");
            }
            Some(Item::Ended(i, slot?))
        }))
        .collect();
    let uuid = |item: &Item| match *item {
        Item::Attributed(i, _) => &input.vms[i].uuid,
        Item::Ended(i, _) => &gathered.ended[i].vm.uuid,
    };
    order.sort_by(|a, b| uuid(a).cmp(uuid(b)));
    let cpu_meter = format!("cpu:{}", policy.inventory.cpu_time_metric);
    let qualities: Vec<records::ModelQuality> = plan
        .slots()
        .iter()
        .map(|slot| records::ModelQuality {
            kind: slot.model.info().quality,
            meters: records::meters(slot.measurements),
            cpu_meter: cpu_meter.clone(),
            gpu_meter: records::gpu_meter(slot.model.info(), slot.params),
        })
        .collect();
    hand_on_records(
        policy,
        bound,
        &intensity,
        window,
        &order,
        |item| {
            let (i, joules) = match *item {
                Item::Attributed(i, joules) => (i, joules),
                Item::Ended(e, slot) => {
                    let ended = &gathered.ended[e];
                    let model = plan.slots()[slot].model.info();
                    // Nothing in the window: 0 of each part its neighbours
                    // carry (GPUs where the model attributes them and the
                    // window read some; embodied where its host has a
                    // figure), so a sum over it is not made unknown.
                    let gpu_j = (!input.gpus.is_empty()
                        && crate::runtime::gpu_measurement(model, plan.slots()[slot].params)
                            .is_some())
                    .then_some(0.0);
                    let embodied = bound
                        .embodied
                        .as_ref()
                        .zip(ended.host.as_deref())
                        .and_then(|(e, host)| e.host(host))
                        .filter(|figure| figure.rate_g_per_s().is_some())
                        .map(|figure| (0.0, figure.figure.source()));
                    return records::build(
                        &identity,
                        window,
                        records::RecordInput {
                            vm: &ended.vm,
                            details: &ended.details,
                            host: ended.host.as_deref(),
                            joules: 0.0,
                            gpu_j,
                            gpu_shared: false,
                            wall_s: ended.wall_s,
                            covered_s: None,
                            cpu_s: ended.cpu_s,
                            status: crate::runtime::Status::Completed,
                            quality: &qualities[slot],
                            model: &model.name,
                            model_version: &model.version,
                            embodied,
                        },
                    );
                }
            };
            records::build(
                &identity,
                window,
                records::RecordInput {
                    vm: &input.vms[i],
                    details: &gathered.details[i],
                    host: host_of[i]
                        .and_then(|h| input.hosts.get(h as usize))
                        .map(String::as_str),
                    joules,
                    gpu_j: gpu_j[i],
                    gpu_shared: gpu_shared[i],
                    wall_s: gathered.wall_s[i],
                    covered_s: covered_by_gauges(gauges, host_of[i], i),
                    cpu_s: gathered.cpu_s[i],
                    status: gathered.status[i],
                    quality: &qualities[model_of[i]],
                    model: &plan.slots()[model_of[i]].model.info().name,
                    model_version: &plan.slots()[model_of[i]].model.info().version,
                    embodied: embodied
                        .as_ref()
                        .and_then(|e| e.vms[i].as_ref())
                        .map(|part| (part.grams, &*part.source)),
                },
            )
        },
        each,
    )?;
    tracing::debug!(
        %window,
        vms = input.vms.len(),
        records = order.len(),
        raw_fetched = gathered.raw_fetched,
        gather_ms = gathered_at.as_millis() as u64,
        attribute_ms = (attributed_at - gathered_at).as_millis() as u64,
        render_ms = (started.elapsed() - attributed_at).as_millis() as u64,
        "window done"
    );
    Ok(WindowDone {
        records: order.len(),
        hosts,
    })
}

/// The last steps of every window, extract's and the daemon's alike: the
/// record of each of `items` (in the order given: uuid order) built by
/// `build`, [`RENDER_CHUNK`] at a time, their VOs and carbon set
/// (`intensity` is the window's), handed to `each`; then what they lacked
/// (VOs, intensities) is warned of once.
pub fn hand_on_records<T, E>(
    policy: &Policy,
    bound: &Bound,
    intensity: &Intensity,
    window: Window,
    items: &[T],
    build: impl Fn(&T) -> EnergyRecord,
    each: &mut impl Chunks<E>,
) -> Result<(), E> {
    let mut notes = Notes::default();
    for chunk in items.chunks(RENDER_CHUNK) {
        let mut records: Vec<EnergyRecord> = chunk.iter().map(&build).collect();
        finish(policy, bound, intensity, &mut records, &mut notes);
        each.chunk(records)?;
    }
    each.finish()?;
    notes.warn(window);
    Ok(())
}

/// Which rule and model each placement in `window` gets: the real
/// inventory (one gather of every model's measurements) through the rules.
pub async fn explain(
    policy: &Policy,
    bound: &Bound,
    prometheus: Option<&Client>,
    window: Window,
) -> Result<Vec<Explained>, PipelineError> {
    let plan = Plan::new(bound);
    let gather_plan = GatherPlan::new(policy, plan.measurements(), prometheus)?;
    let gathered = gather(&gather_plan, window).await?;
    Ok(plan.explain(&gathered.input, &gathered.details))
}

/// One record of a window, in the order records are built.
enum Item {
    /// Input VM `.0`, to which the models gave `.1` joules.
    Attributed(usize, f64),
    /// `Gathered::ended[.0]`, whose rules give it slot `.1`'s model.
    Ended(usize, usize),
}

/// What one window gave.
#[derive(Debug)]
pub struct WindowDone {
    /// Records rendered.
    pub records: usize,
    /// Per host with a meter reading: its energy and how it was split.
    pub hosts: Vec<HostSummary>,
}

/// What rendering a window's records noticed, warned about once each
/// when the window is done ([`Notes::warn`]).
#[derive(Debug, Default)]
struct Notes {
    /// Projects without a VO in `[vo_map]`.
    unmapped: BTreeSet<String>,
    /// Zones and hosts without a grid intensity.
    carbon: carbon::Missing,
}

impl Notes {
    /// Warns once per project without a VO and per zone without intensity.
    fn warn(self, window: Window) {
        for project in self.unmapped {
            tracing::warn!(
                project,
                "project has no VO in [vo_map]; its records are sent without one"
            );
        }
        self.carbon.warn(window);
    }
}

/// Sets the records' VOs and carbon (`intensity` is the window's); what
/// needs a warning goes to `notes`.
fn finish(
    policy: &Policy,
    bound: &Bound,
    intensity: &Intensity,
    records: &mut [EnergyRecord],
    notes: &mut Notes,
) {
    map_vos(policy, records, &mut notes.unmapped);
    if let Some(carbon) = &bound.carbon {
        carbon.apply(records, intensity, &mut notes.carbon);
    }
}

/// Sets each record's VO from `[vo_map]` (by project id, then name). A project
/// without a mapping keeps its records; it is added to `unmapped` (warned about once).
fn map_vos(policy: &Policy, records: &mut [EnergyRecord], unmapped: &mut BTreeSet<String>) {
    if policy.vo_map.is_empty() {
        return;
    }
    for r in records {
        let vo = [&r.project_id, &r.project_name]
            .into_iter()
            .flatten()
            .find_map(|p| policy.vo_map.get(p));
        match vo {
            Some(vo) => r.fqan = Some(vo.clone()),
            None => {
                unmapped.insert(
                    r.project_id
                        .clone()
                        .or(r.project_name.clone())
                        .unwrap_or_default(),
                );
            }
        }
    }
}

/// The least covered seconds of VM `i`'s gauge readings and its host's
/// (`docs/ENERGY.md#gap-limits`: uncovered time goes into the record, never filled); None when
/// no gauge was measured for it.
fn covered_by_gauges(
    gauges: &[crate::runtime::Measured],
    host: Option<u32>,
    i: usize,
) -> Option<f64> {
    gauges
        .iter()
        .flat_map(|m| {
            let host = host.and_then(|h| m.hosts.get(h as usize).copied().flatten());
            [m.vms.get(i).copied().flatten(), host]
        })
        .flatten()
        .map(|r| r.covered_s)
        .reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Measured, Reading};

    fn reading(covered_s: f64) -> Option<Reading> {
        Some(Reading {
            value: 1.0,
            span_s: covered_s,
            covered_s,
        })
    }

    #[test]
    fn a_record_carries_the_least_coverage_of_its_gauges_and_its_hosts() {
        let vm_power = Measured {
            name: "vm".into(),
            vms: vec![reading(3500.0), None],
            hosts: vec![],
            placements: vec![reading(3500.0), None],
        };
        let host_power = Measured {
            name: "host".into(),
            vms: vec![None, None],
            hosts: vec![reading(3000.0)],
            placements: vec![],
        };
        let gauges = [vm_power, host_power];
        assert_eq!(covered_by_gauges(&gauges, Some(0), 0), Some(3000.0));
        assert_eq!(covered_by_gauges(&gauges, None, 0), Some(3500.0));
        assert_eq!(covered_by_gauges(&gauges, None, 1), None);
        assert_eq!(covered_by_gauges(&[], Some(0), 0), None);
    }
}
