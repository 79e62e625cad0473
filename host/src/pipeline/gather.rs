//! Gathering: every measurement a model declared, made over the window, and the
//! VMs and hosts they cover, as the model's input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::TryFutureExt;

use super::{PipelineError, describe};
use crate::energy::counter::Sample;
use crate::energy::status::presence_s;
use crate::energy::{self, idle, rapl as zones};
use crate::policy::Policy;
use crate::runtime::{
    AttributionInput, CounterSpec, GaugeSpec, IdlePowerSpec, KeyKind, Measured, Measurement,
    Placement, RaplSpec, Reading, Status, TemplateSpec, Unit, Vm, VmDetails, Window as WitWindow,
    to_base,
};
use crate::sources::libvirt::{Domain, DomainState, Libvirt, LibvirtError};
use crate::sources::prometheus::{
    Client, Labels, QueryTemplate, Series, SeriesIncrease, VmVars, counter_samples, gauge_samples,
    measure_counter, measure_gauge, measure_template, measure_vm_gauge, vm_metadata, vm_sizes,
};
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
    /// Per input VM, where it stood at the window's end (ENERGY.md "Record status").
    pub status: Vec<Status>,
    /// Series that needed a raw sample fetch.
    pub raw_fetched: usize,
}

/// One keyed measurement's results, counter or gauge alike.
struct KeyedResult {
    name: String,
    key: KeyKind,
    key_label: String,
    series: Vec<SeriesReading>,
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

/// What a run gathers in every window, derived once from the policy and the
/// models' measurements (templates parsed, RAPL zones and meters resolved,
/// Prometheus required where anything is queried): the checks `policy check`
/// makes, made once, so a window only queries.
pub struct GatherPlan<'a> {
    policy: &'a Policy,
    measurements: &'a [Measurement],
    client: &'a Client,
    /// Only models that declare `inventory` see the labels; records do not need them.
    wants_labels: bool,
    /// `cpu-time`: the C1 of each VM's CPU-seconds counter named in `[inventory]`.
    cpu_times: Vec<CounterSpec>,
    /// `host-power`: `[host_power] metric` keyed by host.
    host_power: Vec<GaugeSpec>,
    /// The model's other measurements, in its order.
    slots: Vec<Slot<'a>>,
    /// Templates with per-VM variables: a query per VM, after the VMs are known.
    per_vm_templates: Vec<(&'a TemplateSpec, QueryTemplate)>,
    /// Idle power set to a number in the model's params: no measurement, the
    /// number for every host (the policy's `[idle_power]` patterns first).
    fixed_idle: Vec<(&'a str, f64)>,
    /// Records carry measured CPU time wherever the series exists, whether or
    /// not the model asks for it: then it is measured last, aside, and finds
    /// no VMs of its own.
    implicit_cpu: Option<CounterSpec>,
    /// A window without VMs was warned of: said once per run, not per window.
    warned_no_vms: AtomicBool,
}

/// A measurement of the model, resolved.
enum Slot<'a> {
    Counter(&'a CounterSpec),
    Gauge(&'a GaugeSpec),
    /// A template without per-VM variables: one query per window.
    Template(&'a TemplateSpec, QueryTemplate),
    Rapl(RaplCounters<'a>),
    Idle(IdleMeter<'a>),
}

impl<'a> GatherPlan<'a> {
    /// The plan for `measurements` (the rules' plan's), reading `prometheus`.
    pub fn new(
        policy: &'a Policy,
        measurements: &'a [Measurement],
        prometheus: Option<&'a Client>,
    ) -> Result<Self, PipelineError> {
        let uuid_counter = |name: String| CounterSpec {
            name,
            selector: policy.inventory.cpu_time_metric.clone(),
            key_label: policy.inventory.meta_uuid_label.clone(),
            key: KeyKind::Uuid,
            unit: Unit::Seconds,
            wrap_range: None,
        };
        let cpu_times = measurements
            .iter()
            .filter_map(|m| match m {
                Measurement::CpuTime(name) => Some(uuid_counter(name.clone())),
                _ => None,
            })
            .collect();
        let host_power = measurements
            .iter()
            .filter_map(|m| match m {
                Measurement::HostPower(h) => Some(host_power_gauge(policy, &h.name, h.max_gap_s)),
                _ => None,
            })
            .collect::<Result<Vec<GaugeSpec>, _>>()?;
        let mut slots = Vec::new();
        let mut per_vm_templates = Vec::new();
        let mut fixed_idle = Vec::new();
        for m in measurements {
            match m {
                Measurement::Counter(c) => slots.push(Slot::Counter(c)),
                Measurement::Gauge(g) => slots.push(Slot::Gauge(g)),
                Measurement::Template(t) => {
                    let parsed = QueryTemplate::parse(&t.query)?;
                    if parsed.is_per_vm() {
                        per_vm_templates.push((t, parsed));
                    } else {
                        slots.push(Slot::Template(t, parsed));
                    }
                }
                Measurement::Rapl(r) => slots.push(Slot::Rapl(rapl_counters(policy, r)?)),
                Measurement::IdlePower(spec) => match idle_setting(spec)? {
                    None => slots.push(Slot::Idle(idle_meter(policy, measurements, spec)?)),
                    Some(watts) => fixed_idle.push((spec.name.as_str(), watts)),
                },
                Measurement::HostPower(_) | Measurement::Inventory | Measurement::CpuTime(_) => {}
            }
        }
        let cpu_times: Vec<CounterSpec> = cpu_times;
        let nothing_to_query = cpu_times.is_empty()
            && host_power.is_empty()
            && slots.is_empty()
            && per_vm_templates.is_empty();
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
        let implicit_cpu = (cpu_measurement(measurements).is_none()
            && !policy.inventory.cpu_time_metric.is_empty())
        .then(|| uuid_counter(String::new()));
        Ok(Self {
            policy,
            measurements,
            client,
            wants_labels: measurements
                .iter()
                .any(|m| matches!(m, Measurement::Inventory)),
            cpu_times,
            host_power,
            slots,
            per_vm_templates,
            fixed_idle,
            implicit_cpu,
            warned_no_vms: AtomicBool::new(false),
        })
    }

    /// The Prometheus every window queries.
    pub fn client(&self) -> &'a Client {
        self.client
    }

    /// Every keyed measurement of a window, in order (the implicit CPU time last).
    fn keyed(&self) -> Vec<Keyed<'_>> {
        self.cpu_times
            .iter()
            .map(Keyed::Counter)
            .chain(self.host_power.iter().map(Keyed::Gauge))
            .chain(self.slots.iter().map(|slot| match slot {
                Slot::Counter(c) => Keyed::Counter(c),
                Slot::Gauge(g) => Keyed::Gauge(g),
                Slot::Template(t, parsed) => Keyed::Template(t, parsed),
                Slot::Rapl(r) => Keyed::Rapl(r),
                Slot::Idle(i) => Keyed::Idle(i),
            }))
            .chain(self.implicit_cpu.iter().map(Keyed::Counter))
            .collect()
    }
}

/// Makes every measurement over `window` and assembles the model's input.
/// VMs are those with data in the window (an absent VM gets no reading and so no record).
pub async fn gather(plan: &GatherPlan<'_>, window: Window) -> Result<Gathered, PipelineError> {
    let GatherPlan {
        policy,
        measurements,
        client,
        wants_labels,
        ref per_vm_templates,
        ref fixed_idle,
        ref implicit_cpu,
        ..
    } = *plan;
    let specs = plan.keyed();
    // Every measurement and the inventory at once: the queries overlap in Prometheus.
    let inventory = &policy.inventory;
    let host_key = HostKey::new(inventory.host_regex.as_deref());
    let futures = specs.iter().map(|m| measure(client, m, window, &host_key));
    let (results, metadata, sizes, domains) = futures::future::try_join4(
        futures::future::try_join_all(futures),
        vm_metadata(
            client,
            &inventory.meta_metric,
            &inventory.meta_uuid_label,
            window,
        )
        .map_err(PipelineError::from),
        vm_sizes(
            client,
            &inventory.vcpus_metric,
            &inventory.memory_metric,
            &inventory.meta_uuid_label,
            window,
        )
        .map_err(PipelineError::from),
        libvirt_domains(inventory.libvirt_uri.as_deref()),
    )
    .await?;
    let raw_fetched = results.iter().map(|(_, raw)| raw).sum();
    let mut keyed: Vec<KeyedResult> = results.into_iter().map(|(r, _)| r).collect();
    let implicit_cpu = implicit_cpu.as_ref().and_then(|_| keyed.pop());

    // VMs: every uuid a uuid-keyed measurement saw in the window, described by its series' labels.
    let mut uuids: Vec<&str> = Vec::new();
    let no_labels = Labels::default();
    let mut vm_labels: Vec<&Labels> = Vec::new();
    let mut vm_index: HashMap<&str, usize> = HashMap::new();
    for result in keyed.iter().filter(|c| c.key == KeyKind::Uuid) {
        for s in &result.series {
            let Some(uuid) = s.labels.get(&result.key_label) else {
                continue;
            };
            if vm_index.contains_key(uuid) {
                continue;
            }
            vm_index.insert(uuid, uuids.len());
            uuids.push(uuid);
            vm_labels.push(&s.labels);
        }
    }
    if !per_vm_templates.is_empty() {
        // A per-VM template asks about every VM the inventory knows in the window.
        let mut known: Vec<(&String, &Labels)> = metadata
            .iter()
            .filter(|(uuid, _)| !vm_index.contains_key(uuid.as_str()))
            .collect();
        known.sort();
        for (uuid, labels) in known {
            vm_index.insert(uuid, uuids.len());
            uuids.push(uuid);
            vm_labels.push(labels);
        }
        if uuids.is_empty() {
            // cASO's failure mode: no VM list, no query, no record, exit 0.
            let message = format!(
                "the model's per-VM template has no VM to run for in {window}: VMs come from \
                 the info series `{}` (keyed by `{}`), which has no series in this window, or \
                 from the model's uuid-keyed measurements. Check [inventory] meta_metric and \
                 meta_uuid_label against this Prometheus, or use a template without per-VM \
                 variables (`sum by (uuid) (…)`)",
                inventory.meta_metric, inventory.meta_uuid_label
            );
            if policy.strict {
                return Err(PipelineError::Unsupported(message));
            }
            tracing::warn!("{message}; --strict makes this an error");
        }
    }
    // vmname-keyed series (Scaphandre's) name VMs by their libvirt domain
    // name: the VMs the inventory knows (info series, libvirt) with one.
    let vmnames: HashSet<&str> = keyed
        .iter()
        .filter(|r| r.key == KeyKind::Vmname)
        .flat_map(|r| r.series.iter().filter_map(|s| s.labels.get(&r.key_label)))
        .collect();
    if !vmnames.is_empty() {
        let mut known: Vec<(&str, &Labels)> = metadata
            .iter()
            .map(|(uuid, labels)| (uuid.as_str(), labels))
            .chain(
                domains
                    .keys()
                    .filter(|uuid| !metadata.contains_key(*uuid))
                    .map(|uuid| (uuid.as_str(), &no_labels)),
            )
            .filter(|(uuid, labels)| {
                !vm_index.contains_key(*uuid)
                    && describe::domain_name(
                        labels,
                        metadata.get(*uuid),
                        domains.get(*uuid),
                        inventory,
                    )
                    .is_some_and(|name| vmnames.contains(name))
            })
            .collect();
        known.sort();
        for (uuid, labels) in known {
            vm_index.insert(uuid, uuids.len());
            uuids.push(uuid);
            vm_labels.push(labels);
        }
    }
    if uuids.is_empty() && vmnames.is_empty() && per_vm_templates.is_empty() {
        // A per-VM template has its own warning above, vmname series that
        // match no VM theirs below. VMs come from the model's measurements,
        // not the implicit CPU time (last).
        let models = &specs[..specs.len() - usize::from(implicit_cpu.is_some())];
        if let Some(message) = no_vm_message(models, window, client.url()) {
            if policy.strict {
                return Err(PipelineError::Unsupported(message));
            }
            if !plan.warned_no_vms.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "{message}; --strict makes this an error (said once per run, for the first such window)"
                );
            }
        }
    }
    let host_of = |labels: &Labels| {
        inventory
            .host_label
            .as_ref()
            .and_then(|l| labels.get(l))
            .map(|h| host_key.normalise(h))
    };
    let mut hosts: Vec<String> = vm_labels.iter().filter_map(|l| host_of(l)).collect();
    // A VM that migrated has a CPU-time series on each host it ran on.
    let cpu_keyed = cpu_measurement(measurements).and_then(|n| keyed.iter().find(|r| r.name == n));
    if let Some(result) = cpu_keyed {
        hosts.extend(result.series.iter().filter_map(|s| host_of(&s.labels)));
    }
    for result in keyed.iter().filter(|c| c.key == KeyKind::Host) {
        hosts.extend(
            result
                .series
                .iter()
                .filter_map(|s| s.labels.get(&result.key_label))
                .map(|h| host_key.normalise(h)),
        );
    }
    hosts.sort();
    hosts.dedup();
    let host_index: HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    // Each VM once: its sizes, what the inventory knows of it, and the libvirt
    // domain name that vmname-keyed series name it by.
    let mut vms: Vec<Vm> = Vec::with_capacity(uuids.len());
    let mut vm_hosts: Vec<Option<u32>> = Vec::with_capacity(uuids.len());
    let mut details: Vec<VmDetails> = Vec::with_capacity(uuids.len());
    let mut name_index: HashMap<&str, usize> = HashMap::new();
    for (i, (uuid, labels)) in uuids.iter().zip(&vm_labels).enumerate() {
        let (meta, domain, size) = (metadata.get(*uuid), domains.get(*uuid), sizes.get(*uuid));
        vm_hosts.push(
            host_of(labels)
                .and_then(|h| host_index.get(h.as_str()).copied())
                .and_then(|i| u32::try_from(i).ok()),
        );
        vms.push(Vm {
            uuid: (*uuid).to_owned(),
            // The exporter's gauges say what the VM had in the window; libvirt
            // only what it has now (a resize since would show in a backfill).
            vcpus: size.and_then(|s| s.0).or(domain.map(|d| d.vcpus)),
            memory_mb: size.and_then(|s| s.1).or(domain.map(|d| d.memory_mb)),
        });
        details.push(describe::details(
            labels,
            meta,
            domain,
            inventory,
            wants_labels,
        ));
        if let Some(name) = describe::domain_name(labels, meta, domain, inventory) {
            name_index.insert(name, i);
        }
    }

    let unnamed: Vec<&str> = vmnames
        .iter()
        .filter(|n| !name_index.contains_key(*n))
        .copied()
        .collect();
    if !unnamed.is_empty() {
        tracing::warn!(
            "{} vmname series in {window} match no VM the inventory knows (e.g. `{}`): they get \
             no record. vmname is the libvirt domain name; set [inventory] libvirt_uri on a \
             hypervisor, or meta_metric to an info series with a `domain` label",
            unnamed.len(),
            unnamed.iter().min().copied().unwrap_or_default()
        );
    }

    let mut templated = Vec::with_capacity(per_vm_templates.len());
    if !per_vm_templates.is_empty() {
        let vars: Vec<VmVars> = uuids
            .iter()
            .zip(&vm_labels)
            .zip(&details)
            .map(|((uuid, labels), d)| VmVars {
                uuid: (*uuid).to_owned(),
                name: d.name.clone(),
                project: d.project_id.clone(),
                host: host_of(labels),
            })
            .collect();
        for (spec, template) in per_vm_templates {
            let readings = measure_template(
                client,
                template,
                "uuid",
                &vars,
                window,
                client.config.concurrency,
            )
            .await?;
            if readings.empty > 0 {
                tracing::warn!(
                    measurement = %spec.name,
                    "{} of {} VMs have no value from the template in {window}: they get no reading (never 0)",
                    readings.empty,
                    readings.queries
                );
            }
            templated.push(template_result(spec, "uuid", readings.values, window));
        }
    }

    let idle_names: Vec<&str> = measurements
        .iter()
        .filter_map(|m| match m {
            Measurement::IdlePower(spec) => Some(spec.name.as_str()),
            _ => None,
        })
        .collect();
    let static_idle = StaticIdle::new(policy);
    // Per VM: its counters' earliest first and latest last sample.
    let mut times: Vec<Option<(i64, i64)>> = vec![None; vms.len()];
    let fixed: Vec<KeyedResult> = fixed_idle
        .iter()
        .map(|(name, _)| KeyedResult {
            name: (*name).to_owned(),
            key: KeyKind::Host,
            key_label: String::new(),
            series: Vec::new(),
        })
        .collect();
    let mut wall_s = vec![0.0_f64; vms.len()];
    let mut measured = Vec::with_capacity(keyed.len() + templated.len());
    for result in keyed.iter().chain(&templated).chain(&fixed) {
        let mut per_vm: Vec<Option<Reading>> = vec![None; vms.len()];
        let mut per_host: Vec<Option<Reading>> = vec![None; hosts.len()];
        for s in &result.series {
            let Some(key) = s.labels.get(&result.key_label) else {
                continue;
            };
            let vm = match result.key {
                KeyKind::Uuid => vm_index.get(key).copied(),
                KeyKind::Vmname => name_index.get(key).copied(),
                KeyKind::Host => None,
            };
            let slot = match (result.key, vm) {
                (KeyKind::Host, _) => host_index
                    .get(host_key.normalise(key).as_str())
                    .map(|&i| &mut per_host[i]),
                (_, vm) => vm.map(|i| &mut per_vm[i]),
            };
            let Some(slot) = slot else { continue };
            if let (Some((first, last)), Some(i)) = (s.times, vm) {
                let t = times[i].get_or_insert((first, last));
                *t = (t.0.min(first), t.1.max(last));
            }
            // Several series for one key (an exporter restarted with new labels): add them up.
            *slot = Some(match slot.take() {
                Some(r) => Reading {
                    value: r.value + s.value,
                    span_s: r.span_s.max(s.span_s),
                    covered_s: r.covered_s.max(s.covered_s),
                },
                None => Reading {
                    value: s.value,
                    span_s: s.span_s,
                    covered_s: s.covered_s,
                },
            });
        }
        for (i, r) in per_vm.iter().enumerate() {
            if let Some(r) = r {
                wall_s[i] = wall_s[i].max(presence_s(r.span_s, window));
            }
        }
        if idle_names.contains(&result.name.as_str()) {
            let every_host = fixed_idle
                .iter()
                .find(|(name, _)| *name == result.name)
                .map(|(_, watts)| *watts);
            static_idle.apply(&hosts, &mut per_host, window, every_host);
        }
        measured.push(Measured {
            name: result.name.clone(),
            vms: per_vm,
            hosts: per_host,
        });
    }

    let cpu =
        cpu_measurement(measurements).and_then(|name| measured.iter().find(|r| r.name == name));
    // Each VM's measured CPU seconds: the model's cpu-time, else the series
    // read aside for the records.
    let cpu_s: Vec<Option<f64>> = match (cpu, &implicit_cpu) {
        (Some(m), _) => m.vms.iter().map(|r| r.map(|r| r.value)).collect(),
        (None, Some(result)) => {
            let mut cpu_s = vec![None; vms.len()];
            for s in &result.series {
                if let Some(&i) = s
                    .labels
                    .get(&result.key_label)
                    .and_then(|k| vm_index.get(k))
                {
                    *cpu_s[i].get_or_insert(0.0) += s.value;
                }
            }
            cpu_s
        }
        (None, None) => vec![None; vms.len()],
    };
    let lookback_ms = client.config.lookback_secs as i64 * 1000;
    let status = (0..vms.len())
        .map(|i| {
            let shut_off = domains
                .get(&vms[i].uuid)
                .is_some_and(|d| d.state == DomainState::ShutOff);
            let seen = energy::status::Seen {
                times: times[i],
                ended_ms: details[i].ended_ms,
                shut_off,
            };
            energy::status::status(window, lookback_ms, seen)
        })
        .collect();
    let placements = placements(
        window,
        &vm_hosts,
        cpu_keyed.map(|result| {
            result.series.iter().filter_map(|s| {
                let vm = *vm_index.get(s.labels.get(&result.key_label)?)?;
                let host = host_of(&s.labels)
                    .and_then(|h| host_index.get(h.as_str()).copied())
                    .and_then(|h| u32::try_from(h).ok());
                Some((vm, host, s))
            })
        }),
        &mut wall_s,
    );
    Ok(Gathered {
        input: AttributionInput {
            window: WitWindow {
                start_ms: window.start_ms,
                end_ms: window.end_ms,
            },
            vms,
            details: Vec::new(),
            hosts,
            placements,
            measurements: measured,
        },
        details,
        wall_s,
        cpu_s,
        status,
        raw_fetched,
    })
}

/// Each VM's placements, grouped by VM in VM order (ENERGY.md "Live
/// migration"): with the model's CPU-time series (`cpu`: VM index, host
/// index, reading), one per host a VM's series name, with that host's CPU
/// seconds and presence (several series of one VM on one host add up, the
/// longest span counts), in the order the VM came to them; a migrated VM's
/// wall time is the sum of its placements' spans. Without CPU time, or for a VM without a CPU-time
/// series, one placement on the host its first series names.
fn placements<'a>(
    window: Window,
    vm_hosts: &[Option<u32>],
    cpu: Option<impl Iterator<Item = (usize, Option<u32>, &'a SeriesReading)>>,
    wall_s: &mut [f64],
) -> Vec<Placement> {
    // One entry per CPU-time series (one flat list, not a list per VM: a
    // window of 100,000 VMs holds no 100,000 small allocations), with its
    // arrival and first sample time, grouped by VM and host.
    let mut series: Vec<(Placement, i64, usize)> = cpu
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(arrived, (vm, host, s))| {
            let placement = Placement {
                vm: u32::try_from(vm).unwrap_or(u32::MAX),
                host,
                presence_s: presence_s(s.span_s, window),
                cpu_s: Some(s.value),
                assigned: true,
            };
            (placement, s.times.map_or(i64::MAX, |t| t.0), arrived)
        })
        .collect();
    series.sort_unstable_by_key(|(p, _, arrived)| (p.vm, p.host, *arrived));
    // Several series of one VM on one host add up; the longest span counts.
    series.dedup_by(|next, kept| {
        if (next.0.vm, next.0.host) != (kept.0.vm, kept.0.host) {
            return false;
        }
        kept.0.cpu_s = Some(kept.0.cpu_s.unwrap_or(0.0) + next.0.cpu_s.unwrap_or(0.0));
        kept.0.presence_s = kept.0.presence_s.max(next.0.presence_s);
        kept.1 = kept.1.min(next.1);
        true
    });
    // A VM's hosts in the order it came to them (ties: the order its series came in).
    series.sort_unstable_by_key(|(p, first, arrived)| (p.vm, *first, *arrived));
    let mut placements = Vec::with_capacity(vm_hosts.len().max(series.len()));
    let mut series = series.into_iter().map(|(p, _, _)| p).peekable();
    for (vm, host) in vm_hosts.iter().enumerate() {
        let from = placements.len();
        while let Some(p) = series.next_if(|p| p.vm as usize == vm) {
            placements.push(p);
        }
        match placements.len() - from {
            0 => placements.push(Placement {
                vm: u32::try_from(vm).unwrap_or(u32::MAX),
                host: *host,
                presence_s: wall_s[vm],
                cpu_s: None,
                assigned: true,
            }),
            1 => {}
            _ => {
                let presence: f64 = placements[from..].iter().map(|p| p.presence_s).sum();
                wall_s[vm] = wall_s[vm].max(presence_s(presence, window));
            }
        }
    }
    placements
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

/// What to say of a window in which no series of the VM-keyed measurements
/// in `specs` has samples (none if there are none): zero records and exit 0
/// is how a wrong metric name looks too.
fn no_vm_message(specs: &[Keyed<'_>], window: Window, url: &str) -> Option<String> {
    let selectors: Vec<&str> = specs
        .iter()
        .filter_map(|spec| match spec {
            Keyed::Counter(c) if c.key != KeyKind::Host => Some(c.selector.as_str()),
            Keyed::Gauge(g) if g.key != KeyKind::Host => Some(g.selector.as_str()),
            _ => None,
        })
        .collect();
    (!selectors.is_empty()).then(|| {
        format!(
            "no VM in {window}, so no records: no series of `{}` at {url} has samples in it. If \
             VMs ran then, check the metric and label names against this Prometheus",
            selectors.join("`, `")
        )
    })
}

/// What a window would refuse in `measurements` with this policy, found
/// without I/O: `rapl` and `host-power` without `[inventory] host_label`,
/// RAPL zones without their wrap range, an idle power naming no host meter
/// or with a setting that is neither `auto` nor watts. `policy check` and the
/// start of `extract` report these before any query.
pub fn plan_problems(policy: &Policy, measurements: &[Measurement]) -> Vec<String> {
    measurements
        .iter()
        .filter_map(|m| {
            let checked = match m {
                Measurement::Rapl(r) => rapl_counters(policy, r).map(drop),
                Measurement::HostPower(h) => {
                    host_power_gauge(policy, &h.name, h.max_gap_s).map(drop)
                }
                Measurement::Counter(CounterSpec {
                    name,
                    key: KeyKind::Host,
                    ..
                })
                | Measurement::Gauge(GaugeSpec {
                    name,
                    key: KeyKind::Host,
                    ..
                }) if policy.inventory.host_label.is_none() => {
                    Err(PipelineError::Unsupported(format!(
                        "measurement `{name}` is read per host, but nothing says which host a VM \
                         is on: set [inventory] host_label (e.g. \"instance\") and host_regex \
                         (e.g. '^([^:]+)') in the policy"
                    )))
                }
                Measurement::IdlePower(spec) => {
                    idle_setting(spec).and_then(|setting| match setting {
                        None => idle_meter(policy, measurements, spec).map(drop),
                        Some(_) => Ok(()),
                    })
                }
                _ => Ok(()),
            };
            checked.err().map(|e| e.to_string())
        })
        .fold(Vec::new(), |mut problems, p| {
            // An idle power read from a meter repeats the meter's own problem.
            if !problems.contains(&p) {
                problems.push(p);
            }
            problems
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

/// Every domain of libvirt at `uri` by uuid (none without a URI), read on a
/// blocking thread: libvirt's calls block.
async fn libvirt_domains(uri: Option<&str>) -> Result<HashMap<String, Domain>, PipelineError> {
    let Some(uri) = uri.map(str::to_owned) else {
        return Ok(HashMap::new());
    };
    let reading = uri.clone();
    let domains = tokio::task::spawn_blocking(move || Libvirt::open(&reading)?.domains())
        .await
        .map_err(|e| LibvirtError::Call {
            uri,
            what: "reading domains".into(),
            message: e.to_string(),
        })??;
    Ok(domains.into_iter().map(|d| (d.uuid.clone(), d)).collect())
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
                    Some((re, *watts.get_ref()))
                })
                .collect(),
        )
    }

    /// The watts the first pattern matching `host` gives it.
    pub fn watts(&self, host: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(re, _)| re.is_match(host))
            .map(|(_, w)| *w)
    }

    /// Sets the idle power of every listed host, measured or not, and of
    /// every other host to `every_host` where the model's setting is a number.
    fn apply(
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
struct HostKey(Option<regex::Regex>);

impl HostKey {
    /// An invalid pattern was refused when the policy was loaded.
    fn new(pattern: Option<&str>) -> Self {
        Self(pattern.and_then(|p| regex::Regex::new(p).ok()))
    }

    /// The first capture group, else the whole match, else the value unchanged.
    fn normalise(&self, value: &str) -> String {
        self.0
            .as_ref()
            .and_then(|re| re.captures(value))
            .and_then(|c| c.get(1).or_else(|| c.get(0)))
            .map_or_else(|| value.to_owned(), |m| m.as_str().to_owned())
    }
}

/// A measurement keyed by a label, made from Prometheus series.
enum Keyed<'a> {
    Counter(&'a CounterSpec),
    Gauge(&'a GaugeSpec),
    /// A template without per-VM variables: one query per window.
    Template(&'a TemplateSpec, &'a QueryTemplate),
    /// Host RAPL zones through node_exporter.
    Rapl(&'a RaplCounters<'a>),
    /// Idle power of each host from its meter.
    Idle(&'a IdleMeter<'a>),
}

/// The host meter an `idle-power` measurement reads.
struct IdleMeter<'a> {
    name: &'a str,
    key_label: &'a str,
    kind: IdleSource,
}

/// What the meter is: power gauges, or energy counters (a bucket in which a
/// counter drops is skipped, so no wrap range is needed).
enum IdleSource {
    Gauge {
        selector: String,
        unit: Unit,
        max_gap_ms: i64,
    },
    Counters {
        /// Selector, unit and RAPL zone kind (empty for other counters).
        zones: Vec<(String, Unit, String)>,
        /// RAPL zones named by no measurement: chosen per host by default.
        by_default: bool,
    },
}

/// An idle-power setting: `auto` (None: measure it) or watts for every host.
pub fn idle_setting(spec: &IdlePowerSpec) -> Result<Option<f64>, PipelineError> {
    let setting = spec.setting.trim();
    if setting == "auto" {
        return Ok(None);
    }
    match setting.parse::<f64>() {
        Ok(watts) if watts.is_finite() && watts >= 0.0 => Ok(Some(watts)),
        _ => Err(PipelineError::Unsupported(format!(
            "idle-power `{}`: setting `{}` is neither \"auto\" nor a number of watts ≥ 0",
            spec.name, spec.setting
        ))),
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

/// The host measurement an idle-power spec names (a host-keyed gauge or
/// counter, `rapl` or `host-power`) as an idle-power meter.
fn idle_meter<'a>(
    policy: &'a Policy,
    measurements: &'a [Measurement],
    spec: &'a IdlePowerSpec,
) -> Result<IdleMeter<'a>, PipelineError> {
    let name = spec.meter.as_str();
    let found = measurements.iter().find(|m| match m {
        Measurement::Counter(c) => c.name == name,
        Measurement::Gauge(g) => g.name == name,
        Measurement::Rapl(r) => r.name == name,
        Measurement::HostPower(h) => h.name == name,
        _ => false,
    });
    let (key_label, kind) = match found {
        Some(Measurement::Gauge(g)) if g.key == KeyKind::Host => (
            g.key_label.as_str(),
            IdleSource::Gauge {
                selector: g.selector.clone(),
                unit: g.unit,
                max_gap_ms: max_gap_ms(g),
            },
        ),
        Some(Measurement::HostPower(h)) => {
            let gauge = host_power_gauge(policy, &h.name, h.max_gap_s)?;
            let max_gap_ms = max_gap_ms(&gauge);
            let key_label = policy.inventory.host_label.as_deref().unwrap_or_default();
            (
                key_label,
                IdleSource::Gauge {
                    selector: gauge.selector,
                    unit: gauge.unit,
                    max_gap_ms,
                },
            )
        }
        Some(Measurement::Counter(c)) if c.key == KeyKind::Host => (
            c.key_label.as_str(),
            IdleSource::Counters {
                zones: vec![(c.selector.clone(), c.unit, String::new())],
                by_default: false,
            },
        ),
        Some(Measurement::Rapl(r)) => {
            let rapl = rapl_counters(policy, r)?;
            let zones = rapl
                .zones
                .into_iter()
                .map(|z| (z.selector, Unit::Joules, z.kind))
                .collect();
            let source = IdleSource::Counters {
                zones,
                by_default: rapl.by_default,
            };
            (rapl.host_label, source)
        }
        _ => {
            return Err(PipelineError::Unsupported(format!(
                "measurement `idle-power({name})` needs `{name}` to be a host meter the model \
                 declares: a gauge or counter keyed by host, rapl or host-power"
            )));
        }
    };
    Ok(IdleMeter {
        name: &spec.name,
        key_label,
        kind,
    })
}

fn max_gap_ms(g: &GaugeSpec) -> i64 {
    energy::max_gap_ms(g.max_gap_s)
}

/// Idle power per host from its meter's samples. Series are grouped by host
/// key (an exporter may label one host two ways), so a host's idle power is
/// the least minute of all its meters together, not a sum of separate minima.
async fn measure_idle(
    client: &Client,
    meter: &IdleMeter<'_>,
    window: Window,
    host_key: &HostKey,
) -> Result<KeyedResult, PipelineError> {
    // Each series as (RAPL zone kind, host key, (label value, samples in
    // watts or joules)).
    let mut meters = Vec::new();
    let mut add = |series: Vec<Series>, unit: Unit, kind: &str| {
        for s in series {
            let Some(host) = s.labels.get(meter.key_label) else {
                continue;
            };
            let samples: Vec<Sample> = s
                .samples
                .into_iter()
                .map(|x| Sample {
                    t_ms: x.t_ms,
                    value: to_base(unit, x.value),
                })
                .collect();
            let key = host_key.normalise(host);
            meters.push((kind.to_owned(), key, (host.to_owned(), samples)));
        }
    };
    let mut by_default = false;
    match &meter.kind {
        IdleSource::Gauge {
            selector,
            unit,
            max_gap_ms,
        } => add(
            gauge_samples(client, selector, window, *max_gap_ms).await?,
            *unit,
            "",
        ),
        IdleSource::Counters {
            zones,
            by_default: default,
        } => {
            by_default = *default;
            let fetched = futures::future::try_join_all(
                zones
                    .iter()
                    .map(|(selector, _, _)| counter_samples(client, selector, window)),
            )
            .await?;
            for (series, (_, unit, kind)) in fetched.into_iter().zip(zones) {
                add(series, *unit, kind);
            }
        }
    }
    // Per host key: a label value naming it, and the samples of each series
    // its energy is made of.
    let mut hosts: BTreeMap<String, (String, Vec<Vec<Sample>>)> = BTreeMap::new();
    let kept = host_energy_zones(
        by_default,
        meters
            .into_iter()
            .map(|(kind, key, series)| (kind, key.clone(), (key, series)))
            .collect(),
    );
    for (key, (host, samples)) in kept {
        hosts
            .entry(key)
            .or_insert_with(|| (host, Vec::new()))
            .1
            .push(samples);
    }
    let series = hosts
        .into_values()
        .filter_map(|(host, meters)| {
            let samples: Vec<&[Sample]> = meters.iter().map(|s| &s[..]).collect();
            let idle = match &meter.kind {
                IdleSource::Gauge { max_gap_ms, .. } => {
                    idle::from_gauges(&samples, window, *max_gap_ms)
                }
                IdleSource::Counters { .. } => idle::from_counters(&samples, window),
            };
            if idle.is_none() {
                tracing::warn!(
                    measurement = meter.name,
                    host,
                    %window,
                    "no whole minute of the window could be measured: no idle power for this host"
                );
            }
            let idle = idle?;
            Some(SeriesReading {
                labels: [(meter.key_label, host)].into_iter().collect(),
                value: idle.watts,
                span_s: idle.measured_s,
                covered_s: idle.measured_s,
                times: None,
            })
        })
        .collect();
    Ok(KeyedResult {
        name: meter.name.to_owned(),
        key: KeyKind::Host,
        key_label: meter.key_label.to_owned(),
        series,
    })
}

/// A `rapl` measurement as node_exporter's counters: C1w of each zone's
/// `node_rapl_<kind>_joules_total`, summed per host.
struct RaplCounters<'a> {
    name: &'a str,
    host_label: &'a str,
    /// The zones read.
    zones: Vec<RaplZone>,
    /// The measurement names no zones: each host's are chosen by
    /// [`zones::counts_by_default`] (psys only where it has no package).
    by_default: bool,
}

/// One zone kind (or zone) of a `rapl` measurement.
struct RaplZone {
    selector: String,
    kind: String,
    /// Wrap range, joules, where the policy gives it.
    wrap_j: Option<f64>,
}

/// Keeps, of the zone series `(kind, host key, series)` of every host, those
/// each host's energy is made of: all where the measurement names its zones,
/// else the default ones ([`zones::counts_by_default`]).
fn host_energy_zones<K: AsRef<str>, T>(by_default: bool, series: Vec<(K, String, T)>) -> Vec<T> {
    let with_package: HashSet<String> = series
        .iter()
        .filter(|(kind, _, _)| kind.as_ref() == "package")
        .map(|(_, host, _)| host.clone())
        .collect();
    series
        .into_iter()
        .filter(|(kind, host, _)| {
            !by_default || zones::counts_by_default(kind.as_ref(), with_package.contains(host))
        })
        .map(|(_, _, s)| s)
        .collect()
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

/// A template's values as a keyed result: the value over the whole window.
/// A query's value carries no span, so its span is the window's length.
fn template_result(
    spec: &TemplateSpec,
    key_label: &str,
    values: Vec<crate::sources::prometheus::template::TemplateValue>,
    window: Window,
) -> KeyedResult {
    let length_s = window.len_ms() as f64 / 1000.0;
    KeyedResult {
        name: spec.name.clone(),
        key: KeyKind::Uuid,
        key_label: key_label.to_owned(),
        series: values
            .into_iter()
            .map(|v| SeriesReading {
                labels: [(key_label, v.key)].into_iter().collect(),
                value: to_base(spec.unit, v.value),
                span_s: length_s,
                covered_s: length_s,
                times: None,
            })
            .collect(),
    }
}

/// Counter increases as readings in joules (or seconds); a counter's span is its covered time.
fn increases(series: Vec<SeriesIncrease>, unit: Unit) -> impl Iterator<Item = SeriesReading> {
    series.into_iter().map(move |s| SeriesReading {
        labels: s.labels,
        value: to_base(unit, s.increase.value),
        span_s: s.increase.span_s,
        covered_s: s.increase.span_s,
        times: Some((s.increase.first_ms, s.increase.last_ms)),
    })
}

/// Makes one counter or gauge measurement; also returns how many series needed raw samples.
async fn measure(
    client: &Client,
    m: &Keyed<'_>,
    window: Window,
    host_key: &HostKey,
) -> Result<(KeyedResult, usize), PipelineError> {
    match m {
        Keyed::Idle(meter) => Ok((measure_idle(client, meter, window, host_key).await?, 0)),
        Keyed::Rapl(rapl) => {
            let zones = rapl
                .zones
                .iter()
                .map(|z| measure_counter(client, &z.selector, rapl.host_label, window, z.wrap_j));
            let fetched = futures::future::try_join_all(zones).await?;
            let mut series = Vec::new();
            let mut raw = 0;
            for (readings, zone) in fetched.into_iter().zip(&rapl.zones) {
                raw += readings.raw_fetched;
                series.extend(increases(readings.series, Unit::Joules).map(|s| {
                    let host = s.labels.get(rapl.host_label).map(|h| host_key.normalise(h));
                    (zone.kind.as_str(), host.unwrap_or_default(), s)
                }));
            }
            let series = host_energy_zones(rapl.by_default, series);
            let result = KeyedResult {
                name: rapl.name.to_owned(),
                key: KeyKind::Host,
                key_label: rapl.host_label.to_owned(),
                series,
            };
            Ok((result, raw))
        }
        Keyed::Template(spec, template) => {
            let key_label = spec.key_label.as_deref().unwrap_or("uuid");
            let readings = measure_template(client, template, key_label, &[], window, 1).await?;
            Ok((template_result(spec, key_label, readings.values, window), 0))
        }
        Keyed::Counter(c) => {
            let readings =
                measure_counter(client, &c.selector, &c.key_label, window, c.wrap_range).await?;
            let result = KeyedResult {
                name: c.name.clone(),
                key: c.key,
                key_label: c.key_label.clone(),
                series: increases(readings.series, c.unit).collect(),
            };
            Ok((result, readings.raw_fetched))
        }
        Keyed::Gauge(g) => {
            let max_gap_ms = max_gap_ms(g);
            // One series per host: all its samples. Thousands of VMs: edges only.
            let (integrals, raw) = if g.key == KeyKind::Host {
                let integrals = measure_gauge(client, &g.selector, window, max_gap_ms).await?;
                let raw = integrals.len();
                (integrals, raw)
            } else {
                let r =
                    measure_vm_gauge(client, &g.selector, &g.key_label, window, max_gap_ms).await?;
                (r.series, r.raw_fetched)
            };
            let series: Vec<SeriesReading> = integrals
                .into_iter()
                .map(|s| SeriesReading {
                    labels: s.labels,
                    value: to_base(g.unit, s.integral.value),
                    span_s: s.integral.covered_s,
                    covered_s: s.integral.covered_s,
                    times: None,
                })
                .collect();
            let result = KeyedResult {
                name: g.name.clone(),
                key: g.key,
                key_label: g.key_label.clone(),
                series,
            };
            Ok((result, raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::Source;
    use crate::runtime::HostPowerSpec;

    fn cpu_series(cpu_s: f64, span_s: f64, first_ms: i64) -> SeriesReading {
        SeriesReading {
            labels: Labels::default(),
            value: cpu_s,
            span_s,
            covered_s: span_s,
            times: Some((first_ms, first_ms + (span_s * 1000.0) as i64)),
        }
    }

    #[test]
    fn placements_follow_each_vm_from_host_to_host() {
        // VM 0 came to host 1 (two series there, an exporter restart), then
        // host 0; VM 1 has no CPU-time series; VM 2 one; VM 3 two hosts
        // whose series start at the same time.
        let series = [
            (0, Some(1), cpu_series(10.0, 600.0, 1_000)),
            (2, Some(0), cpu_series(5.0, 3600.0, 0)),
            (0, Some(0), cpu_series(30.0, 1800.0, 1_801_000)),
            (0, Some(1), cpu_series(2.0, 900.0, 601_000)),
            (3, Some(1), cpu_series(1.0, 60.0, 0)),
            (3, Some(0), cpu_series(1.0, 30.0, 0)),
        ];
        let mut wall_s = vec![1000.0, 3600.0, 3600.0, 0.0];
        let window = Window {
            start_ms: 0,
            end_ms: 3_600_000,
        };
        let placements = placements(
            window,
            &[Some(1), Some(2), Some(0), Some(1)],
            Some(series.iter().map(|(vm, host, s)| (*vm, *host, s))),
            &mut wall_s,
        );
        let got: Vec<(u32, Option<u32>, f64, Option<f64>)> = placements
            .iter()
            .map(|p| (p.vm, p.host, p.presence_s, p.cpu_s))
            .collect();
        assert_eq!(
            got,
            [
                (0, Some(1), 900.0, Some(12.0)),
                (0, Some(0), 1800.0, Some(30.0)),
                (1, Some(2), 3600.0, None),
                (2, Some(0), 3600.0, Some(5.0)),
                // A tie in first sample: the order the series came in.
                (3, Some(1), 60.0, Some(1.0)),
                (3, Some(0), 30.0, Some(1.0)),
            ]
        );
        // A migrated VM's wall time is the sum of its placements' spans.
        assert_eq!(wall_s, [2700.0, 3600.0, 3600.0, 90.0]);
        assert!(placements.iter().all(|p| p.assigned));
    }

    #[test]
    fn the_plan_is_checked_before_any_query() {
        let policy = |extra: &str| {
            Policy::parse(Source::new(
                Path::new("p.toml"),
                format!(
                    "[site]\nname = \"S\"\ncompute_service = \"c\"\n{extra}\n[model]\nplugin = \"libvirt-joules\"\n"
                ),
            ))
            .unwrap()
        };
        let measurements = [
            Measurement::Rapl(RaplSpec {
                name: "rapl".into(),
                zones: vec![],
            }),
            Measurement::HostPower(HostPowerSpec {
                name: "wall".into(),
                max_gap_s: None,
            }),
            Measurement::IdlePower(IdlePowerSpec {
                name: "idle".into(),
                meter: "nope".into(),
                setting: "auto".into(),
            }),
            Measurement::IdlePower(IdlePowerSpec {
                name: "idle2".into(),
                meter: "wall".into(),
                setting: "lots".into(),
            }),
        ];
        let problems = plan_problems(&policy(""), &measurements);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].contains("set [inventory] host_label"),
            "{}",
            problems[0]
        );
        assert!(problems[1].contains("(host-power)") && problems[1].contains("host_label"));
        assert!(
            problems[2].contains("needs `nope` to be a host meter"),
            "{}",
            problems[2]
        );
        assert!(
            problems[3].contains("neither \"auto\" nor a number"),
            "{}",
            problems[3]
        );

        // With a host key and the zones' ranges, only the unknown meter and
        // the bad setting remain.
        let configured = policy(
            "[inventory]\nhost_label = \"instance\"\n[rapl]\nmax_energy_range_uj = { package = 262143328850, dram = 65712999613 }\n",
        );
        let problems = plan_problems(&configured, &measurements);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(plan_warnings(&configured, &measurements).is_empty());

        // The local powercap tree: the daemon's, never extract's.
        let local = policy(
            "[inventory]\nhost_label = \"instance\"\n[rapl]\npowercap_root = \"/sys/class/powercap\"\n",
        );
        let problems = plan_problems(&local, &measurements);
        assert!(
            problems[0].contains("no history: only the daemon reads it"),
            "{problems:#?}"
        );

        // Zones without their range are read with C1: a warning, not an error.
        let rangeless = policy(
            "[inventory]\nhost_label = \"instance\"\n[rapl]\nmax_energy_range_uj = { dram = 65712999613 }\n",
        );
        assert_eq!(plan_problems(&rangeless, &measurements).len(), 2);
        let warnings = plan_warnings(&rangeless, &measurements);
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].contains("zone(s) package:")
                && warnings[0].contains("{ package = <value> }"),
            "{}",
            warnings[0]
        );
    }
}
