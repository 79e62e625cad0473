//! The model's input from a window's readings: which VMs and hosts the
//! window saw, what the inventory says of them, each measurement per VM and
//! per host, placements, wall time and status. Pure: every answer was read
//! by [`super::measure`], so this is tested without a server.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use super::ended::{self, Ended};
use super::notices;
use super::plan::GatherPlan;
use super::{Gathered, KeyedResult, Readings, SeriesReading};
use crate::energy::status::{self, Seen, presence_s};
use crate::pipeline::{PipelineError, vm_metadata};
use crate::runtime::{AttributionInput, KeyKind, Measured, Reading, Vm, VmDetails};
use crate::sources::libvirt::DomainState;
use crate::sources::prometheus::{Labels, VmVars};
use crate::window::Window;
use placement::{first_placements, per_placement, placements};

/// The labels of a VM known only to libvirt.
static NO_LABELS: LazyLock<Labels> = LazyLock::new(Labels::default);

/// The VMs and hosts of a window, described: what every measurement is
/// keyed to.
pub struct Described<'r> {
    /// Each VM's uuid, in the order the readings named them.
    uuids: Vec<&'r str>,
    /// The labels of the series that first named each VM.
    vm_labels: Vec<&'r Labels>,
    /// uuid → VM index.
    vm_index: HashMap<&'r str, usize>,
    /// libvirt domain name → VM index (what vmname-keyed series name).
    name_index: HashMap<&'r str, usize>,
    /// Host keys, sorted.
    hosts: Vec<String>,
    /// Each VM's sizes.
    vms: Vec<Vm>,
    /// Each VM's host (its first series').
    vm_hosts: Vec<Option<u32>>,
    /// What the inventory knows of each VM.
    details: Vec<VmDetails>,
    /// Per host key, VMs the cloud says ran there that nothing measured.
    unmeasured: BTreeMap<String, usize>,
    /// VMs the window completes with no reading.
    ended: Vec<Ended>,
}

/// The VMs found so far, each once, in the order found.
#[derive(Default)]
struct Found<'r> {
    uuids: Vec<&'r str>,
    labels: Vec<&'r Labels>,
    index: HashMap<&'r str, usize>,
}

impl<'r> Found<'r> {
    fn add(&mut self, uuid: &'r str, labels: &'r Labels) {
        if !self.has(uuid) {
            self.index.insert(uuid, self.uuids.len());
            self.uuids.push(uuid);
            self.labels.push(labels);
        }
    }

    fn has(&self, uuid: &str) -> bool {
        self.index.contains_key(uuid)
    }
}

/// Which VMs and hosts `readings` saw in `window`, with what the inventory
/// says of them. VMs are those with data in the window (an absent VM gets no
/// reading and so no record); a window without any is warned of once per
/// run, or fails with `--strict`.
pub fn describe<'r>(
    plan: &GatherPlan<'_>,
    readings: &'r Readings,
    window: Window,
) -> Result<Described<'r>, PipelineError> {
    let policy = plan.policy;
    let inventory = &policy.inventory;
    let Readings {
        cloud,
        keyed,
        metadata,
        domains,
        ..
    } = readings;
    let per_vm_templates = &plan.resolved.per_vm_templates;
    // VMs: every uuid a uuid-keyed measurement saw in the window, described by its series' labels.
    let mut found = Found::default();
    for result in keyed.iter().filter(|c| c.key == KeyKind::Uuid) {
        for s in &result.series {
            if let Some(uuid) = s.labels.get(&result.key_label) {
                found.add(uuid, &s.labels);
            }
        }
    }
    if !per_vm_templates.is_empty() {
        // A per-VM template asks about every VM the inventory knows in the window.
        let mut known: Vec<(&String, &Labels)> = metadata
            .iter()
            .filter(|(uuid, _)| !found.has(uuid))
            .collect();
        known.sort();
        for (uuid, labels) in known {
            found.add(uuid, labels);
        }
        if found.uuids.is_empty() {
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
    // name: the VMs the inventory knows (info series, libvirt, the cloud's
    // API) with one. A VM only the cloud knows is described by the labels
    // of its first such series (its host among them).
    let mut vmnames: HashMap<&str, &Labels> = HashMap::new();
    for r in keyed.iter().filter(|r| r.key == KeyKind::Vmname) {
        for s in &r.series {
            if let Some(name) = s.labels.get(&r.key_label) {
                vmnames.entry(name).or_insert(&s.labels);
            }
        }
    }
    if !vmnames.is_empty() {
        let api = |uuid: &str| cloud.as_ref().and_then(|c| c.vms.get(uuid));
        let mut known: Vec<(&str, &Labels)> = metadata
            .iter()
            .map(|(uuid, labels)| (uuid.as_str(), labels))
            .chain(
                domains
                    .keys()
                    .filter(|uuid| !metadata.contains_key(*uuid))
                    .map(|uuid| (uuid.as_str(), &*NO_LABELS)),
            )
            .chain(
                cloud
                    .iter()
                    .flat_map(|c| c.vms.values())
                    .filter(|vm| {
                        !metadata.contains_key(&vm.uuid) && !domains.contains_key(&vm.uuid)
                    })
                    .map(|vm| {
                        let series = vm.domain_name.as_deref().and_then(|n| vmnames.get(n));
                        (vm.uuid.as_str(), series.copied().unwrap_or(&*NO_LABELS))
                    }),
            )
            .filter(|(uuid, labels)| {
                !found.has(uuid)
                    && vm_metadata::domain_name(
                        labels,
                        metadata.get(*uuid),
                        domains.get(*uuid),
                        api(uuid),
                        inventory,
                    )
                    .is_some_and(|name| vmnames.contains_key(name))
            })
            .collect();
        known.sort();
        for (uuid, labels) in known {
            found.add(uuid, labels);
        }
    }
    let Found {
        uuids,
        labels: vm_labels,
        index: vm_index,
    } = found;
    let ended = ended::ended(plan, readings, |uuid| vm_index.contains_key(uuid), window);
    // Per host key, the VMs the cloud says ran there that nothing measured
    // (a VM the window completes has its record).
    let mut unmeasured: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(cloud) = cloud {
        // `ended` is in uuid order.
        let measured = |uuid: &str| {
            vm_index.contains_key(uuid)
                || ended
                    .binary_search_by(|e| e.vm.uuid.as_str().cmp(uuid))
                    .is_ok()
        };
        for vm in notices::without_energy(cloud, measured, window, policy.strict)? {
            if let Some(host) = &vm.host {
                *unmeasured
                    .entry(plan.resolved.host_key.normalise(host))
                    .or_default() += 1;
            }
        }
    }
    if uuids.is_empty() && ended.is_empty() && vmnames.is_empty() && per_vm_templates.is_empty() {
        // A per-VM template has its own warning above, vmname series that
        // match no VM theirs below. VMs come from the model's measurements,
        // not the implicit CPU time (last); a window that completes VMs
        // has records.
        let slots = &plan.resolved.slots;
        let models = &slots[..slots.len() - usize::from(plan.resolved.implicit_cpu)];
        if let Some(message) = notices::no_vm_message(models, window, plan.client.url()) {
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
    let host_of = |labels: &Labels| plan.host_of(labels);
    let mut hosts: Vec<String> = vm_labels.iter().filter_map(|l| host_of(l)).collect();
    // A VM that migrated has a CPU-time series on each host it ran on.
    let cpu_keyed = plan
        .resolved
        .cpu_name
        .and_then(|n| keyed.iter().find(|r| r.name == n));
    if let Some(result) = cpu_keyed {
        hosts.extend(result.series.iter().filter_map(|s| host_of(&s.labels)));
    }
    for result in keyed.iter().filter(|c| c.key == KeyKind::Host) {
        hosts.extend(
            result
                .series
                .iter()
                .filter_map(|s| s.labels.get(&result.key_label))
                .map(|h| plan.resolved.host_key.normalise(h)),
        );
    }
    // A host whose cards nobody holds is still the model's to account for.
    hosts.extend(readings.gpus.iter().map(|card| card.host.clone()));
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
        vm_hosts.push(
            host_of(labels)
                .and_then(|h| host_index.get(h.as_str()).copied())
                .and_then(|i| u32::try_from(i).ok()),
        );
        let (vm, about) = describe_vm(plan, readings, uuid, labels);
        vms.push(vm);
        details.push(about);
        let (meta, domain) = (metadata.get(*uuid), domains.get(*uuid));
        let api = cloud.as_ref().and_then(|c| c.vms.get(*uuid));
        if let Some(name) = vm_metadata::domain_name(labels, meta, domain, api, inventory) {
            name_index.insert(name, i);
        }
    }

    let unnamed: Vec<&str> = vmnames
        .keys()
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

    Ok(Described {
        uuids,
        vm_labels,
        vm_index,
        name_index,
        hosts,
        vms,
        vm_hosts,
        details,
        unmeasured,
        ended,
    })
}

/// A VM's sizes and what the inventory knows of it, `labels` being those of
/// the series that first named it.
pub(super) fn describe_vm(
    plan: &GatherPlan<'_>,
    readings: &Readings,
    uuid: &str,
    labels: &Labels,
) -> (Vm, VmDetails) {
    let Readings {
        cloud,
        metadata,
        sizes,
        domains,
        ..
    } = readings;
    let (meta, domain, size) = (metadata.get(uuid), domains.get(uuid), sizes.get(uuid));
    let api = cloud.as_ref().and_then(|c| c.vms.get(uuid));
    let vm = Vm {
        uuid: uuid.to_owned(),
        // The exporter's gauges say what the VM had in the window; libvirt
        // only what it has now (a resize since would show in a backfill).
        // The cloud's flavor is what it has now too, but for every VM.
        vcpus: size
            .and_then(|s| s.0)
            .or(api.and_then(|c| c.vcpus))
            .or(domain.map(|d| d.vcpus)),
        memory_mb: size
            .and_then(|s| s.1)
            .or(api.and_then(|c| c.memory_mb))
            .or(domain.map(|d| d.memory_mb)),
    };
    let details = vm_metadata::details(
        labels,
        meta,
        domain,
        api,
        &plan.policy.inventory,
        plan.resolved.wants_labels,
    );
    (vm, details)
}

/// The variables of a per-VM template for each VM of `described`.
pub fn template_vars(plan: &GatherPlan<'_>, described: &Described<'_>) -> Vec<VmVars> {
    described
        .uuids
        .iter()
        .zip(&described.vm_labels)
        .zip(&described.details)
        .map(|((uuid, labels), d)| VmVars {
            uuid: (*uuid).to_owned(),
            name: d.name.clone(),
            project: d.project_id.clone(),
            host: plan.host_of(labels),
        })
        .collect()
}

/// The model's input: every measurement of `readings` (and the per-VM
/// templates' `templated`) per VM, per host and (VM-keyed ones) per
/// placement of `described`, the static and fixed idle powers, placements,
/// wall time, CPU time and status, and the GPUs with their holdings.
pub fn assemble(
    plan: &GatherPlan<'_>,
    readings: &Readings,
    described: Described<'_>,
    templated: Vec<KeyedResult>,
    window: Window,
) -> Gathered {
    let resolved = &plan.resolved;
    let Readings {
        cloud,
        keyed,
        implicit_cpu,
        domains,
        raw_fetched,
        ..
    } = readings;
    let Described {
        vm_index,
        name_index,
        hosts,
        vms,
        vm_hosts,
        details,
        unmeasured,
        ended,
        ..
    } = described;
    let host_key = &resolved.host_key;
    let host_index: HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let cpu_keyed = resolved
        .cpu_name
        .and_then(|n| keyed.iter().find(|r| r.name == n));
    // Per VM: its counters' earliest first and latest last sample.
    let mut times: Vec<Option<(i64, i64)>> = vec![None; vms.len()];
    let fixed: Vec<KeyedResult> = resolved
        .fixed_idle
        .iter()
        .map(|(name, _)| KeyedResult {
            name: (*name).to_owned(),
            key: KeyKind::Host,
            key_label: String::new(),
            series: Vec::new(),
            stopped: Vec::new(),
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
            add(slot, s);
        }
        // A counter series of a VM that stopped at the window's start: its
        // last sample (its base here) is among the VM's times.
        for s in &result.stopped {
            let vm = s
                .labels
                .get(&result.key_label)
                .and_then(|key| match result.key {
                    KeyKind::Uuid => vm_index.get(key).copied(),
                    KeyKind::Vmname => name_index.get(key).copied(),
                    KeyKind::Host => None,
                });
            if let Some(i) = vm {
                let t = times[i].get_or_insert((s.last_ms, s.last_ms));
                *t = (t.0.min(s.last_ms), t.1.max(s.last_ms));
            }
        }
        for (i, r) in per_vm.iter().enumerate() {
            if let Some(r) = r {
                wall_s[i] = wall_s[i].max(presence_s(r.span_s, window));
            }
        }
        if resolved.idle_names.contains(&result.name.as_str()) {
            let every_host = resolved
                .fixed_idle
                .iter()
                .find(|(name, _)| *name == result.name)
                .map(|(_, watts)| *watts);
            resolved
                .static_idle
                .apply(&hosts, &mut per_host, window, every_host);
        }
        measured.push(Measured {
            name: result.name.clone(),
            vms: per_vm,
            hosts: per_host,
            // Filled below, once the placements are known.
            placements: Vec::new(),
        });
    }

    let cpu = resolved
        .cpu_name
        .and_then(|name| measured.iter().find(|r| r.name == name));
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
    // Each VM's (launched, terminated) where the cloud's API gives them.
    let lifetimes: Vec<Option<(Option<i64>, Option<i64>)>> = vms
        .iter()
        .map(|vm| {
            let c = cloud.as_ref()?.vms.get(&vm.uuid)?;
            Some((c.launched_ms, c.terminated_ms))
        })
        .collect();
    let lookback_ms = plan.client.config.lookback_secs as i64 * 1000;
    let status = (0..vms.len())
        .map(|i| {
            let shut_off = domains
                .get(&vms[i].uuid)
                .is_some_and(|d| d.state == DomainState::ShutOff);
            let seen = Seen {
                times: times[i],
                ended_ms: details[i].ended_ms,
                shut_off,
                lifetime: lifetimes[i],
            };
            status::status(window, lookback_ms, seen)
        })
        .collect();
    // Placements follow the CPU-time series; a model without CPU time (a
    // direct model) has them from its first VM-keyed measurement, so a VM
    // that migrated is placed on each host its energy was measured on.
    let placing = cpu_keyed.or_else(|| {
        keyed
            .iter()
            .chain(&templated)
            .find(|r| r.key != KeyKind::Host)
    });
    let placements = placements(
        window,
        &vm_hosts,
        placing.map(|result| {
            result.series.iter().filter_map(|s| {
                let key = s.labels.get(&result.key_label)?;
                let vm = match result.key {
                    KeyKind::Vmname => name_index.get(key).copied(),
                    _ => vm_index.get(key).copied(),
                }?;
                let host = plan
                    .host_of(&s.labels)
                    .and_then(|h| host_index.get(h.as_str()).copied())
                    .and_then(|h| u32::try_from(h).ok());
                Some((vm, host, s))
            })
        }),
        cpu_keyed.is_some(),
        &mut wall_s,
    );
    let gpus = gpus::readings(&readings.gpus, &host_index, &vm_index, &placements, window);
    let first_placement = first_placements(&placements, vms.len());
    for (result, m) in keyed.iter().chain(&templated).zip(&mut measured) {
        let series = result.series.iter().filter_map(|s| {
            let key = s.labels.get(&result.key_label)?;
            let vm = match result.key {
                KeyKind::Uuid => vm_index.get(key).copied(),
                KeyKind::Vmname => name_index.get(key).copied(),
                KeyKind::Host => None,
            }?;
            Some((vm, s))
        });
        if result.key != KeyKind::Host {
            m.placements = per_placement(&placements, &first_placement, series, |s| {
                plan.host_of(&s.labels)
                    .and_then(|h| host_index.get(h.as_str()).copied())
                    .and_then(|h| u32::try_from(h).ok())
            });
        }
    }
    // Where the cloud gives a VM's lifetime, its part of the window is
    // that (`docs/ENERGY.md#record-status`).
    for (lifetime, wall) in lifetimes.iter().zip(wall_s.iter_mut()) {
        if let Some((launched, terminated)) = lifetime {
            *wall = status::lifetime_s(*launched, *terminated, window);
        }
    }
    // Host keys the cloud names (OpenNebula's host ids, as Scaphandre's
    // `host_id` labels them) are named so from here on.
    let mut hosts = hosts;
    if let Some(cloud) = cloud {
        for host in &mut hosts {
            if let Some(name) = cloud.host_names.get(host.as_str()) {
                host.clone_from(name);
            }
        }
    }
    Gathered {
        input: AttributionInput {
            window: window.into(),
            vms,
            details: Vec::new(),
            hosts,
            placements,
            measurements: measured,
            gpus,
        },
        details,
        wall_s,
        cpu_s,
        status,
        raw_fetched: *raw_fetched,
        unmeasured,
        ended,
    }
}

/// Adds a series' reading to `slot`: several series for one key (an exporter
/// restarted with new labels, a VM on two hosts) add their values; the
/// longest span and coverage count.
fn add(slot: &mut Option<Reading>, s: &SeriesReading) {
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

mod gpus;
mod placement;
#[cfg(test)]
mod tests;
