//! Which model each placement gets (`[[rules]]`, first match wins, else
//! `[model]`), and what each model sees of one gather: every model's
//! measurements are made in one gather (a rule's names prefixed so they
//! cannot clash), and each model gets every placement, its own assigned, so
//! a share model still counts the others' CPU time on its hosts.

use std::borrow::Cow;

use crate::policy::{Bound, Matcher};
use crate::runtime::{AttributionInput, Measurement, Model, Param};

/// One model of the policy: a rule, or `[model]` (the last slot).
#[derive(Clone, Copy)]
pub struct ModelSlot<'a> {
    /// The model.
    pub model: &'a Model,
    /// Its parameters.
    pub params: &'a [Param],
    /// Its measurements under its own names.
    pub measurements: &'a [Measurement],
    /// What a placement must have to get it; none for `[model]`.
    matcher: Option<&'a Matcher>,
}

/// The policy's models and the measurements one gather makes for all of them.
pub struct Plan<'a> {
    /// Rules first, in policy order, then `[model]`: the first that matches wins.
    slots: Vec<ModelSlot<'a>>,
    measurements: Cow<'a, [Measurement]>,
}

impl<'a> Plan<'a> {
    /// The plan of a bound policy.
    pub fn new(bound: &'a Bound) -> Self {
        let default = bound.model.as_ref().map(|m| ModelSlot {
            model: &m.model,
            params: &m.params,
            measurements: &m.measurements,
            matcher: None,
        });
        if let (Some(default), true) = (&default, bound.rules.is_empty()) {
            return Self {
                measurements: Cow::Borrowed(default.measurements),
                slots: vec![ModelSlot { ..*default }],
            };
        }
        let mut slots: Vec<ModelSlot<'a>> = bound
            .rules
            .iter()
            .map(|r| ModelSlot {
                model: &r.model,
                params: &r.params,
                measurements: &r.measurements,
                matcher: Some(&r.matcher),
            })
            .collect();
        slots.extend(default);
        let mut measurements: Vec<Measurement> = slots
            .iter()
            .enumerate()
            .flat_map(|(k, slot)| {
                slot.measurements
                    .iter()
                    .map(move |m| prefixed(m, &prefix(k)))
            })
            .collect();
        // Rules that match labels need the inventory to carry them.
        if slots
            .iter()
            .any(|s| s.matcher.is_some_and(Matcher::reads_labels))
            && !measurements
                .iter()
                .any(|m| matches!(m, Measurement::Inventory))
        {
            measurements.push(Measurement::Inventory);
        }
        Self {
            slots,
            measurements: Cow::Owned(measurements),
        }
    }

    /// Every model's measurements, for one gather.
    pub fn measurements(&self) -> &[Measurement] {
        &self.measurements
    }

    /// The models, in match order.
    pub fn slots(&self) -> &[ModelSlot<'a>] {
        &self.slots
    }

    /// Whether there is only `[model]`: its input is the gather's own.
    pub fn is_single(&self) -> bool {
        self.slots.len() == 1 && self.slots[0].matcher.is_none()
    }

    /// The slot of each placement of `input` (VMs described by `details`):
    /// the first rule that matches, else `[model]`; none where neither does.
    pub fn assign(
        &self,
        input: &AttributionInput,
        details: &[crate::runtime::VmDetails],
    ) -> Vec<Option<usize>> {
        let default = self
            .slots
            .last()
            .filter(|s| s.matcher.is_none())
            .map(|_| self.slots.len() - 1);
        input
            .placements
            .iter()
            .map(|p| {
                let host = p
                    .host
                    .and_then(|h| input.hosts.get(h as usize))
                    .map(String::as_str);
                let Some(vm) = details.get(p.vm as usize) else {
                    return default;
                };
                self.slots
                    .iter()
                    .position(|s| s.matcher.is_some_and(|m| m.matches(host, vm)))
                    .or(default)
            })
            .collect()
    }

    /// What slot `k` sees: every VM, host and placement (assigned where the
    /// placement is its), its own measurements under their own names, the
    /// inventory if it declares it.
    pub fn input_for(
        &self,
        k: usize,
        input: &AttributionInput,
        details: &[crate::runtime::VmDetails],
        assignment: &[Option<usize>],
    ) -> AttributionInput {
        let slot = &self.slots[k];
        let own = prefix(k);
        let wants_inventory = slot
            .measurements
            .iter()
            .any(|m| matches!(m, Measurement::Inventory));
        AttributionInput {
            window: input.window,
            vms: input.vms.clone(),
            details: if wants_inventory {
                details.to_vec()
            } else {
                Vec::new()
            },
            hosts: input.hosts.clone(),
            placements: input
                .placements
                .iter()
                .zip(assignment)
                .map(|(p, &to)| crate::runtime::Placement {
                    assigned: to == Some(k),
                    ..*p
                })
                .collect(),
            measurements: input
                .measurements
                .iter()
                .filter_map(|m| {
                    let name = m.name.strip_prefix(&own)?;
                    Some(crate::runtime::Measured {
                        name: name.to_owned(),
                        vms: m.vms.clone(),
                        hosts: m.hosts.clone(),
                        placements: m.placements.clone(),
                    })
                })
                .collect(),
            gpus: input.gpus.clone(),
        }
    }
}

/// The prefix of slot `k`'s measurement names in the gather.
fn prefix(k: usize) -> String {
    format!("{k}/")
}

/// `m` with its name (and an idle power's meter) prefixed.
fn prefixed(m: &Measurement, prefix: &str) -> Measurement {
    let name = |n: &str| format!("{prefix}{n}");
    let mut m = m.clone();
    match &mut m {
        Measurement::Counter(c) => c.name = name(&c.name),
        Measurement::Gauge(g) => g.name = name(&g.name),
        Measurement::Template(t) => t.name = name(&t.name),
        Measurement::Rapl(r) => r.name = name(&r.name),
        Measurement::HostPower(h) => h.name = name(&h.name),
        Measurement::CpuTime(c) => *c = name(c),
        Measurement::IdlePower(i) => {
            i.name = name(&i.name);
            i.meter = name(&i.meter);
        }
        Measurement::Gpu(g) => g.name = name(&g.name),
        Measurement::Inventory => {}
    }
    m
}

/// One placement of `policy check --explain`: the VM, where it ran, and the
/// rule and model it gets.
#[derive(Debug, serde::Serialize)]
pub struct Explained {
    /// The VM's uuid.
    pub uuid: String,
    /// Its name, where known.
    pub name: Option<String>,
    /// The host key of the placement.
    pub host: Option<String>,
    /// Its project (name, else id), where known.
    pub project: Option<String>,
    /// `rules[i]`, `model` for the default, `-` for none.
    pub rule: String,
    /// The model's name, `-` for none.
    pub model: String,
}

impl Plan<'_> {
    /// The rule and model of every placement of a gather.
    pub fn explain(
        &self,
        input: &AttributionInput,
        details: &[crate::runtime::VmDetails],
    ) -> Vec<Explained> {
        self.assign(input, details)
            .into_iter()
            .zip(&input.placements)
            .map(|(k, p)| {
                let vm = p.vm as usize;
                let d = details.get(vm);
                let slot = k.map(|k| &self.slots[k]);
                Explained {
                    uuid: input.vms[vm].uuid.clone(),
                    name: d.and_then(|d| d.name.clone()),
                    host: p.host.and_then(|h| input.hosts.get(h as usize)).cloned(),
                    project: d.and_then(|d| d.project_name.clone().or(d.project_id.clone())),
                    rule: match (k, slot) {
                        (Some(k), Some(s)) if s.matcher.is_some() => format!("rules[{k}]"),
                        (Some(_), _) => "model".to_owned(),
                        (None, _) => "-".to_owned(),
                    },
                    model: slot.map_or_else(|| "-".to_owned(), |s| s.model.info().name.clone()),
                }
            })
            .collect()
    }
}
