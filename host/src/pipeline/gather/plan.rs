//! What a run asks in every window: the policy and the models'
//! measurements resolved once, every problem found on the way, regexes
//! compiled once, so a window only queries.

use std::sync::atomic::AtomicBool;

use crate::energy::{self, rapl as zones};
use crate::pipeline::PipelineError;
use crate::policy::Policy;
use crate::runtime::Reading;
use crate::runtime::{
    CounterSpec, GaugeSpec, GpuSpec, IdlePowerSpec, KeyKind, Measurement, RaplSpec, TemplateSpec,
    Unit,
};
use crate::sources::cloud::CloudApi;
use crate::sources::gpu::{CounterUnit, GpuConfig};
use crate::sources::inventory::InventorySource;
use crate::sources::opennebula;
use crate::sources::openstack::Session;
use crate::sources::prometheus::{Client, Labels, QueryTemplate};
use crate::window::Window;

/// What a run gathers in every window, resolved once from the policy and
/// the models' measurements (see `resolve`).
pub struct GatherPlan<'a> {
    pub(super) policy: &'a Policy,
    pub(super) client: &'a Client,
    pub(super) resolved: Resolved<'a>,
    /// A window without VMs was warned of: said once per run, not per window.
    pub(super) warned_no_vms: AtomicBool,
    /// The cloud's API, where `[inventory] source` names one: one session
    /// (one token) for the run.
    pub(super) cloud: Option<CloudApi>,
}

impl<'a> GatherPlan<'a> {
    /// The plan for `measurements` (the rules' plan's), reading
    /// `prometheus`: the first problem `resolve` finds, if any, is the error.
    pub fn new(
        policy: &'a Policy,
        measurements: &'a [Measurement],
        prometheus: Option<&'a Client>,
    ) -> Result<Self, PipelineError> {
        let resolved =
            resolve(policy, measurements).map_err(|mut problems| problems.swap_remove(0))?;
        let nothing_to_query = resolved.slots.is_empty() && resolved.per_vm_templates.is_empty();
        let client = match (prometheus, nothing_to_query) {
            (Some(client), _) => client,
            (None, false) => {
                return Err(PipelineError::Unsupported(
                    "the model's measurements need Prometheus: add a [prometheus] table with `url` to the policy, or pass --prometheus URL".into(),
                ));
            }
            (None, true) => {
                return Err(PipelineError::Unsupported(
                    "the model declares no measurement wattson can make".into(),
                ));
            }
        };
        let unset = |table: &str| {
            PipelineError::Unsupported(format!(
                "[inventory] source names a cloud that no [{table}] table describes"
            ))
        };
        let cloud = match policy.inventory.source {
            InventorySource::Prometheus => None,
            InventorySource::Nova => Some(CloudApi::Nova(Box::new(Session::new(
                policy.nova.as_ref().ok_or_else(|| unset("nova"))?,
            )?))),
            InventorySource::OpenNebula => Some(CloudApi::OpenNebula(opennebula::Client::new(
                policy
                    .opennebula
                    .as_ref()
                    .ok_or_else(|| unset("opennebula"))?,
            )?)),
        };
        Ok(Self {
            policy,
            client,
            resolved,
            warned_no_vms: AtomicBool::new(false),
            cloud,
        })
    }

    /// The cloud's API, where `[inventory] source` names one.
    pub fn cloud(&self) -> Option<&CloudApi> {
        self.cloud.as_ref()
    }

    /// The Prometheus every window queries.
    pub fn client(&self) -> &'a Client {
        self.client
    }

    /// The host key a series' labels name (`[inventory] host_label`,
    /// normalised by `host_regex`).
    pub(crate) fn host_of(&self, labels: &Labels) -> Option<String> {
        let label = self.policy.inventory.host_label.as_ref()?;
        Some(self.resolved.host_key.normalise(labels.get(label)?))
    }
}

/// The measurements of a plan, resolved.
pub struct Resolved<'a> {
    /// Every measurement read per window from Prometheus series, in the
    /// model's order (CPU time and host power first), the implicit CPU time last.
    pub(super) slots: Vec<Slot<'a>>,
    /// Records carry measured CPU time wherever the series exists: the last
    /// slot, read aside, when the model does not ask for CPU time.
    pub(super) implicit_cpu: bool,
    /// Templates with per-VM variables: a query per VM, once the VMs are known.
    pub(super) per_vm_templates: Vec<(&'a TemplateSpec, QueryTemplate)>,
    /// Idle powers set to a number in the model's params: no measurement,
    /// the number for every host (the policy's `[idle_power]` patterns first).
    pub(super) fixed_idle: Vec<(&'a str, f64)>,
    /// The names of the model's idle-power measurements.
    pub(super) idle_names: Vec<&'a str>,
    /// The model's CPU-time measurement, if it has one.
    pub(super) cpu_name: Option<&'a str>,
    /// Only models that declare `inventory` see the labels.
    pub(super) wants_labels: bool,
    /// `[inventory] host_regex`, compiled.
    pub(super) host_key: HostKey,
    /// `[idle_power]`, compiled.
    pub(super) static_idle: StaticIdle,
    /// Each host's GPUs and their holders, where the model declares `gpu`
    /// and the policy has `[gpu]`.
    pub(super) gpu: Option<GpuPlan<'a>>,
}

/// Where the `gpu` measurement's cards, energy and holders are read
/// (`docs/ENERGY.md#gpus`).
pub struct GpuPlan<'a> {
    pub(super) config: &'a GpuConfig,
    /// The label naming the host on the energy series.
    pub(super) host_label: &'a str,
    /// The gap limit of power gauges and holding, ms.
    pub(super) max_gap_ms: i64,
    /// The unit of `config.counter`.
    pub(super) counter_unit: Unit,
}

/// One measurement made per window from Prometheus series.
pub enum Slot<'a> {
    /// The C1 of a counter per key.
    Counter(CounterSpec),
    /// The G1 of a gauge per key.
    Gauge(GaugeSpec),
    /// A template without per-VM variables: one query per window.
    Template(&'a TemplateSpec, QueryTemplate),
    /// Host RAPL zones through node_exporter.
    Rapl(RaplCounters<'a>),
    /// Idle power of each host from its meter.
    Idle(IdleMeter<'a>),
}

/// A `rapl` measurement as node_exporter's counters: C1w of each zone's
/// `node_rapl_<kind>_joules_total`, summed per host.
pub struct RaplCounters<'a> {
    pub(super) name: &'a str,
    pub(super) host_label: &'a str,
    /// The zones read.
    pub(super) zones: Vec<RaplZone>,
    /// The measurement names no zones: each host's are chosen by
    /// [`zones::counts_by_default`] (psys only where it has no package).
    pub(super) by_default: bool,
}

/// One zone kind (or zone) of a `rapl` measurement.
#[derive(Clone)]
pub struct RaplZone {
    pub(super) selector: String,
    pub(super) kind: String,
    /// Wrap range, joules, where the policy gives it.
    pub(super) wrap_j: Option<f64>,
}

/// The host meter an `idle-power` measurement reads.
pub struct IdleMeter<'a> {
    pub(super) name: &'a str,
    pub(super) key_label: String,
    pub(super) kind: MeterKind,
    /// `fit`: the intercept against the host's CPU utilisation, else the least minute.
    pub(super) fit: bool,
}

/// What an idle-power meter is: power gauges, or energy counters (a minute
/// in which a counter drops is skipped, so no wrap range is needed).
pub enum MeterKind {
    /// Power gauges.
    Gauge {
        selector: String,
        unit: Unit,
        max_gap_ms: i64,
    },
    /// Energy counters.
    Counters {
        /// RAPL zones (kind empty for other counters).
        zones: Vec<RaplZone>,
        unit: Unit,
        /// RAPL zones named by no measurement: chosen per host by default.
        by_default: bool,
    },
}

/// Walks the policy and `measurements` once: the resolved plan, or every
/// problem a window would hit, found without I/O (`policy check`'s list,
/// and what `extract` refuses at its start): `rapl` and `host-power`
/// without `[inventory] host_label`, RAPL through the local powercap tree,
/// host-keyed measurements without a host label, invalid templates, an idle
/// power naming no host meter or with a setting that is neither `auto` nor watts.
pub fn resolve<'a>(
    policy: &'a Policy,
    measurements: &'a [Measurement],
) -> Result<Resolved<'a>, Vec<PipelineError>> {
    let mut problems = Vec::new();
    let uuid_counter = |name: &str| CounterSpec {
        name: name.to_owned(),
        selector: policy.inventory.cpu_time_metric.clone(),
        key_label: policy.inventory.meta_uuid_label.clone(),
        key: KeyKind::Uuid,
        unit: Unit::Seconds,
        wrap_range: None,
    };
    // CPU time and host power first, then the model's others in its order,
    // idle powers resolved last (from the meters' slots) into their place.
    let mut first = Vec::new();
    let mut rest: Vec<Option<Slot<'a>>> = Vec::new();
    let mut per_vm_templates = Vec::new();
    let mut fixed_idle = Vec::new();
    let mut idle = Vec::new();
    let mut gpu = None;
    for (at, m) in measurements.iter().enumerate() {
        let mut problem = |e: PipelineError| problems.push((at, e));
        match m {
            Measurement::CpuTime(name) => first.push(Slot::Counter(uuid_counter(name))),
            Measurement::HostPower(h) => match host_power_gauge(policy, &h.name, h.max_gap_s) {
                Ok(g) => first.push(Slot::Gauge(g)),
                Err(e) => problem(e),
            },
            Measurement::Counter(c) if c.key == KeyKind::Host && no_host_label(policy) => {
                problem(host_keyed_without_label(&c.name));
            }
            Measurement::Gauge(g) if g.key == KeyKind::Host && no_host_label(policy) => {
                problem(host_keyed_without_label(&g.name));
            }
            Measurement::Counter(c) => rest.push(Some(Slot::Counter(c.clone()))),
            Measurement::Gauge(g) => rest.push(Some(Slot::Gauge(g.clone()))),
            Measurement::Template(t) => match QueryTemplate::parse(&t.query) {
                Ok(parsed) if parsed.is_per_vm() => per_vm_templates.push((t, parsed)),
                Ok(parsed) => rest.push(Some(Slot::Template(t, parsed))),
                Err(e) => problem(e.into()),
            },
            Measurement::Rapl(r) => match rapl_counters(policy, r) {
                Ok(rapl) => rest.push(Some(Slot::Rapl(rapl))),
                Err(e) => problem(e),
            },
            Measurement::IdlePower(spec) => match idle_setting(spec) {
                Ok(IdleSetting::Watts(watts)) => fixed_idle.push((spec.name.as_str(), watts)),
                Ok(setting) => {
                    idle.push((at, rest.len(), spec, setting == IdleSetting::Fit));
                    rest.push(None);
                }
                Err(e) => problem(e),
            },
            // Without [gpu] the model sees no GPUs (an empty list).
            Measurement::Gpu(g) => match &policy.gpu {
                Some(config) if gpu.is_none() => match gpu_plan(policy, config, g) {
                    Ok(plan) => gpu = Some(plan),
                    Err(e) => problem(e),
                },
                _ => {}
            },
            Measurement::Inventory => {}
        }
    }
    for (measured_at, at, spec, fit) in idle {
        let meter = first.iter().chain(rest.iter().flatten()).find_map(|slot| {
            let (name, kind) = meter_of(slot)?;
            (name == spec.meter).then_some(kind)
        });
        match meter {
            Some((key_label, kind)) => {
                rest[at] = Some(Slot::Idle(IdleMeter {
                    name: &spec.name,
                    key_label,
                    kind,
                    fit,
                }));
            }
            // A meter that failed to resolve has its own problem already.
            None if !failed_meter(measurements, &spec.meter) => {
                problems.push((
                    measured_at,
                    PipelineError::Unsupported(format!(
                        "measurement `idle-power({name})` needs `{name}` to be a host meter the \
                     model declares: a gauge or counter keyed by host, rapl or host-power",
                        name = spec.meter
                    )),
                ));
            }
            None => {}
        }
    }
    if !problems.is_empty() {
        // In the order of the measurements they concern.
        problems.sort_by_key(|(at, _)| *at);
        return Err(problems.into_iter().map(|(_, e)| e).collect());
    }
    let cpu_name = cpu_measurement(measurements);
    let implicit_cpu = cpu_name.is_none() && !policy.inventory.cpu_time_metric.is_empty();
    let mut slots = first;
    slots.extend(rest.into_iter().flatten());
    if implicit_cpu {
        slots.push(Slot::Counter(uuid_counter("")));
    }
    Ok(Resolved {
        slots,
        implicit_cpu,
        per_vm_templates,
        fixed_idle,
        idle_names: measurements
            .iter()
            .filter_map(|m| match m {
                Measurement::IdlePower(spec) => Some(spec.name.as_str()),
                _ => None,
            })
            .collect(),
        cpu_name,
        wants_labels: measurements
            .iter()
            .any(|m| matches!(m, Measurement::Inventory)),
        host_key: HostKey::new(policy.inventory.host_regex.as_deref()),
        static_idle: StaticIdle::new(policy),
        gpu,
    })
}

/// What a window would refuse in `measurements` with this policy, as
/// messages (`resolve`'s problems).
pub fn plan_problems(policy: &Policy, measurements: &[Measurement]) -> Vec<String> {
    resolve(policy, measurements)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn no_host_label(policy: &Policy) -> bool {
    policy.inventory.host_label.is_none()
}

/// The `gpu` measurement `spec` read as `[gpu]` says: the energy series'
/// host label is `[gpu] host_label`, else `[inventory] host_label`.
fn gpu_plan<'a>(
    policy: &'a Policy,
    config: &'a GpuConfig,
    spec: &GpuSpec,
) -> Result<GpuPlan<'a>, PipelineError> {
    let host_label = config
        .host_label
        .as_deref()
        .or(policy.inventory.host_label.as_deref())
        .ok_or_else(|| {
            PipelineError::Unsupported(format!(
                "measurement `{}` (gpu) reads `{}` one card per host: set [gpu] host_label or \
                 [inventory] host_label (e.g. \"instance\") and host_regex (e.g. '^([^:]+)') in \
                 the policy",
                spec.name, config.counter
            ))
        })?;
    Ok(GpuPlan {
        config,
        host_label,
        max_gap_ms: energy::max_gap_ms(spec.max_gap_s),
        counter_unit: match config.counter_unit {
            CounterUnit::Millijoules => Unit::Millijoules,
            CounterUnit::Joules => Unit::Joules,
        },
    })
}

fn host_keyed_without_label(name: &str) -> PipelineError {
    PipelineError::Unsupported(format!(
        "measurement `{name}` is read per host, but nothing says which host a VM is on: set \
         [inventory] host_label (e.g. \"instance\") and host_regex (e.g. '^([^:]+)') in the policy"
    ))
}

/// A resolved slot as an idle-power meter: its name, key label and kind.
fn meter_of<'s>(slot: &'s Slot<'_>) -> Option<(&'s str, (String, MeterKind))> {
    match slot {
        Slot::Gauge(g) if g.key == KeyKind::Host => {
            let kind = MeterKind::Gauge {
                selector: g.selector.clone(),
                unit: g.unit,
                max_gap_ms: energy::max_gap_ms(g.max_gap_s),
            };
            Some((&g.name, (g.key_label.clone(), kind)))
        }
        Slot::Counter(c) if c.key == KeyKind::Host => {
            let zone = RaplZone {
                selector: c.selector.clone(),
                kind: String::new(),
                wrap_j: None,
            };
            let kind = MeterKind::Counters {
                zones: vec![zone],
                unit: c.unit,
                by_default: false,
            };
            Some((&c.name, (c.key_label.clone(), kind)))
        }
        Slot::Rapl(r) => {
            let kind = MeterKind::Counters {
                zones: r.zones.clone(),
                unit: Unit::Joules,
                by_default: r.by_default,
            };
            Some((r.name, (r.host_label.to_owned(), kind)))
        }
        _ => None,
    }
}

/// Whether `name` is a host meter the model declares that failed to resolve.
fn failed_meter(measurements: &[Measurement], name: &str) -> bool {
    measurements.iter().any(|m| match m {
        Measurement::Rapl(r) => r.name == name,
        Measurement::HostPower(h) => h.name == name,
        Measurement::Counter(c) => c.name == name && c.key == KeyKind::Host,
        Measurement::Gauge(g) => g.name == name && g.key == KeyKind::Host,
        _ => false,
    })
}

/// What the plan does that the operator should know, said once per run: RAPL
/// zones read without their wrap range (C1: a wrap counts as a reset).
pub fn plan_warnings(policy: &Policy, measurements: &[Measurement]) -> Vec<String> {
    let mut kinds: Vec<&str> = measurements
        .iter()
        .filter_map(|m| match m {
            Measurement::Rapl(r) => Some(r),
            _ => None,
        })
        .flat_map(|r| {
            let defaults: &[&str] = if r.zones.is_empty() {
                &zones::DEFAULT_RANGED_KINDS
            } else {
                &[]
            };
            defaults
                .iter()
                .copied()
                .chain(r.zones.iter().map(|z| zones::kind(z)))
                .collect::<Vec<_>>()
        })
        .filter(|kind| !policy.rapl.max_energy_range_uj.contains_key(*kind))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.is_empty() {
        return Vec::new();
    }
    let example = kinds
        .iter()
        .map(|k| format!("{k} = <value>"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![format!(
        "[rapl] max_energy_range_uj gives no wrap range for RAPL zone(s) {}: node_exporter does \
         not export it, so a drop of these counters is taken as a reset (C1), and a wrap \
         (every few minutes to hours under load) loses the energy up to the range. Read it on a \
         hypervisor (`cat /sys/class/powercap/intel-rapl:*/max_energy_range_uj` of the zones \
         with that `name`) and add `[rapl] max_energy_range_uj = {{ {example} }}`",
        kinds.join(", ")
    )]
}

/// The name of the model's CPU-time measurement, if it declares one.
fn cpu_measurement(measurements: &[Measurement]) -> Option<&str> {
    measurements.iter().find_map(|m| match m {
        Measurement::CpuTime(name) => Some(name.as_str()),
        Measurement::Counter(c) if c.key == KeyKind::Uuid && c.unit == Unit::Seconds => {
            Some(c.name.as_str())
        }
        _ => None,
    })
}

/// An idle-power measurement's setting (`docs/ENERGY.md#idle-power`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IdleSetting {
    /// The least whole minute of the meter.
    Auto,
    /// The intercept of the meter's power against CPU utilisation.
    Fit,
    /// These watts for every host.
    Watts(f64),
}

/// An idle-power measurement's setting: `auto`, `fit` or watts.
pub fn idle_setting(spec: &IdlePowerSpec) -> Result<IdleSetting, PipelineError> {
    match spec.setting.trim() {
        "auto" => Ok(IdleSetting::Auto),
        "fit" => Ok(IdleSetting::Fit),
        setting => match setting.parse::<f64>() {
            Ok(watts) if watts.is_finite() && watts >= 0.0 => Ok(IdleSetting::Watts(watts)),
            _ => Err(PipelineError::Unsupported(format!(
                "idle-power `{}`: setting `{}` is neither \"auto\", \"fit\" nor a number of \
                 watts ≥ 0",
                spec.name, spec.setting
            ))),
        },
    }
}

/// The wall-power gauge a `host-power` measurement reads: `[host_power] metric`
/// keyed by `[inventory] host_label`.
fn host_power_gauge(
    policy: &Policy,
    name: &str,
    max_gap_s: Option<f64>,
) -> Result<GaugeSpec, PipelineError> {
    let key_label = policy.inventory.host_label.clone().ok_or_else(|| {
        PipelineError::Unsupported(format!(
            "measurement `{name}` (host-power) reads `{}` one host at a time: set [inventory] \
             host_label (e.g. \"instance\") and host_regex (e.g. '^([^:]+)') in the policy",
            policy.host_power.metric
        ))
    })?;
    Ok(GaugeSpec {
        name: name.to_owned(),
        selector: policy.host_power.metric.clone(),
        key_label,
        key: KeyKind::Host,
        unit: Unit::Watts,
        max_gap_s,
    })
}
/// The zones a `rapl` measurement names (none: the default zones of
/// [`zones`]), with their wrap ranges from `[rapl] max_energy_range_uj`.
fn rapl_counters<'a>(
    policy: &'a Policy,
    spec: &'a RaplSpec,
) -> Result<RaplCounters<'a>, PipelineError> {
    if let Some(root) = &policy.rapl.powercap_root {
        return Err(PipelineError::Unsupported(format!(
            "measurement `{}` (rapl): [rapl] powercap_root = {:?} asks for the local powercap \
             tree, which has no history: only the daemon reads it. extract reads RAPL through \
             Prometheus (node_exporter's rapl collector, node_rapl_*_joules_total): remove \
             powercap_root from this policy",
            spec.name,
            root.get_ref()
        )));
    }
    let host_label = policy.inventory.host_label.as_deref().ok_or_else(|| {
        PipelineError::Unsupported(format!(
            "measurement `{}` (rapl) reads node_exporter's node_rapl_*_joules_total through \
             Prometheus, one host at a time: set [inventory] host_label (e.g. \"instance\") and \
             host_regex (e.g. '^([^:]+)') in the policy",
            spec.name
        ))
    })?;
    let defaults = zones::DEFAULT_KINDS.map(str::to_owned);
    let names = if spec.zones.is_empty() {
        &defaults[..]
    } else {
        &spec.zones[..]
    };
    let mut zones = Vec::with_capacity(names.len());
    for zone in names {
        let kind = zones::kind(zone);
        let index = zones::index(zone);
        // Without its range a zone is read with C1 (a drop is a reset): see plan_warnings.
        let range_uj = policy.rapl.max_energy_range_uj.get(kind);
        let selector = match index {
            Some(i) => format!("node_rapl_{kind}_joules_total{{index=\"{i}\"}}"),
            None => format!("node_rapl_{kind}_joules_total"),
        };
        zones.push(RaplZone {
            selector,
            kind: kind.to_owned(),
            wrap_j: range_uj.map(|r| r.get_ref() / 1e6),
        });
    }
    Ok(RaplCounters {
        name: &spec.name,
        host_label,
        zones,
        by_default: spec.zones.is_empty(),
    })
}
/// `[idle_power]`: watts for hosts whose key matches a pattern (whole match).
pub struct StaticIdle(Vec<(regex::Regex, f64)>);

impl StaticIdle {
    /// The policy's patterns (invalid ones were refused when it was loaded).
    pub fn new(policy: &Policy) -> Self {
        Self(
            policy
                .idle_power
                .iter()
                .filter_map(|(pattern, watts)| {
                    let re = regex::Regex::new(&format!("^(?:{pattern})$")).ok()?;
                    Some((re, watts))
                })
                .collect(),
        )
    }

    /// The watts the first pattern matching `host`, in the policy's order,
    /// gives it.
    pub fn watts(&self, host: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(re, _)| re.is_match(host))
            .map(|(_, w)| *w)
    }

    /// Sets the idle power of every listed host, measured or not, and of
    /// every other host to `every_host` where the model's setting is a number.
    pub(super) fn apply(
        &self,
        hosts: &[String],
        per_host: &mut [Option<Reading>],
        window: Window,
        every_host: Option<f64>,
    ) {
        let length_s = window.len_ms() as f64 / 1000.0;
        for (host, slot) in hosts.iter().zip(per_host) {
            if let Some(watts) = self.watts(host).or(every_host) {
                *slot = Some(Reading {
                    value: watts,
                    span_s: length_s,
                    covered_s: length_s,
                });
            }
        }
    }
}

/// Host label values normalised into host keys by `[inventory] host_regex`.
pub struct HostKey(Option<regex::Regex>);

impl HostKey {
    /// An invalid pattern was refused when the policy was loaded.
    fn new(pattern: Option<&str>) -> Self {
        Self(pattern.and_then(|p| regex::Regex::new(p).ok()))
    }

    /// The first capture group, else the whole match, else the value unchanged.
    pub fn normalise(&self, value: &str) -> String {
        self.0
            .as_ref()
            .and_then(|re| re.captures(value))
            .and_then(|c| c.get(1).or_else(|| c.get(0)))
            .map_or_else(|| value.to_owned(), |m| m.as_str().to_owned())
    }
}

#[cfg(test)]
mod tests;
