//! Which model each placement gets (`[[rules]]`, first match wins, else
//! `[model]`), and what each model sees of one gather: every model's
//! measurements are made in one gather (a rule's names prefixed so they
//! cannot clash), and each model gets every placement, its own assigned, so
//! a share model still counts the others' CPU time on its hosts. A model
//! that declares `gpu` gets every card with every holding, on those same
//! placements: a holding's part goes to the VM only in the model its
//! placement is assigned to, so each card's energy is attributed once
//! across the models (`docs/ENERGY.md#gpus`).

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
        input
            .placements
            .iter()
            .map(|p| {
                let host = p
                    .host
                    .and_then(|h| input.hosts.get(h as usize))
                    .map(String::as_str);
                match details.get(p.vm as usize) {
                    Some(vm) => self.slot_of(host, vm),
                    None => self.default_slot(),
                }
            })
            .collect()
    }

    /// The slot of a VM described by `vm` on `host`: the first rule that
    /// matches, else `[model]`; none where neither does.
    pub fn slot_of(&self, host: Option<&str>, vm: &crate::runtime::VmDetails) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.matcher.is_some_and(|m| m.matches(host, vm)))
            .or_else(|| self.default_slot())
    }

    /// `[model]`'s slot (the last), if the policy has one.
    fn default_slot(&self) -> Option<usize> {
        self.slots
            .last()
            .filter(|s| s.matcher.is_none())
            .map(|_| self.slots.len() - 1)
    }

    /// What slot `k` sees: every VM, host and placement (assigned where the
    /// placement is its), its own measurements under their own names, the
    /// inventory if it declares it, every GPU if it declares `gpu`.
    pub fn input_for(
        &self,
        k: usize,
        input: &AttributionInput,
        details: &[crate::runtime::VmDetails],
        assignment: &[Option<usize>],
    ) -> AttributionInput {
        sub_input(k, self.slots[k].measurements, input, details, assignment)
    }
}

/// [`Plan::input_for`] of slot `k`, whose model declares `measurements`.
/// Its placements are the input's, in order, so GPU holdings keep their
/// placement indices; a holding of a placement assigned to another slot
/// tells the model to leave its part at the host (`other-model`).
fn sub_input(
    k: usize,
    measurements: &[Measurement],
    input: &AttributionInput,
    details: &[crate::runtime::VmDetails],
    assignment: &[Option<usize>],
) -> AttributionInput {
    let own = prefix(k);
    let declares = |want: fn(&Measurement) -> bool| measurements.iter().any(want);
    let wants_inventory = declares(|m| matches!(m, Measurement::Inventory));
    let wants_gpus = declares(|m| matches!(m, Measurement::Gpu(_)));
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
        // The WIT: empty unless the model declares `gpu`.
        gpus: if wants_gpus {
            input.gpus.clone()
        } else {
            Vec::new()
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{
        GpuHolding, GpuMode, GpuReading, GpuSpec, Placement, Reading, Vm, Window,
    };

    const HOUR_S: f64 = 3600.0;

    fn gpu() -> Measurement {
        Measurement::Gpu(GpuSpec {
            name: "gpu".into(),
            max_gap_s: None,
        })
    }

    fn reading(value: f64) -> Reading {
        Reading {
            value,
            span_s: HOUR_S,
            covered_s: HOUR_S,
        }
    }

    fn card(host: u32, bus_id: &str, joules: f64, holdings: &[(u32, f64, f64)]) -> GpuReading {
        GpuReading {
            host,
            bus_id: bus_id.into(),
            gpu_uuid: None,
            energy: reading(joules),
            counter: true,
            holdings: holdings
                .iter()
                .map(|&(placement, share, joules)| GpuHolding {
                    placement,
                    mode: if share < 1.0 {
                        GpuMode::Mig
                    } else {
                        GpuMode::Passthrough
                    },
                    share,
                    profile: None,
                    held_s: HOUR_S,
                    joules,
                })
                .collect(),
        }
    }

    /// Two GPU hosts, the placements given to two models (slot 0 and 1):
    /// a (slot 0) and b (slot 1) on gpu-01, b moved to gpu-02 where c
    /// (slot 0) is. Card X of gpu-01 is handed from a to b; card Y of gpu-02
    /// is a MIG card shared by b and c; card Z of gpu-02 is unheld.
    fn gathered() -> (AttributionInput, Vec<Option<usize>>) {
        let vm = |uuid: &str| Vm {
            uuid: uuid.into(),
            vcpus: Some(8),
            memory_mb: None,
        };
        let placement = |vm, host| Placement {
            vm,
            host: Some(host),
            presence_s: HOUR_S,
            cpu_s: Some(100.0),
            assigned: true,
        };
        let input = AttributionInput {
            window: Window {
                start_ms: 0,
                end_ms: 3_600_000,
            },
            vms: vec![vm("a"), vm("b"), vm("c")],
            details: vec![],
            hosts: vec!["gpu-01".into(), "gpu-02".into()],
            placements: vec![
                placement(0, 0),
                placement(1, 0),
                placement(1, 1),
                placement(2, 1),
            ],
            measurements: vec![],
            gpus: vec![
                card(
                    0,
                    "00000000:3B:00.0",
                    1000.0,
                    &[(0, 1.0, 600.0), (1, 1.0, 350.0)],
                ),
                card(
                    1,
                    "00000000:3B:00.0",
                    700.0,
                    &[(2, 3.0 / 7.0, 700.0), (3, 2.0 / 7.0, 700.0)],
                ),
                card(1, "00000000:AF:00.0", 50.0, &[]),
            ],
        };
        (input, vec![Some(0), Some(1), Some(1), Some(0)])
    }

    /// The WIT: `gpus` is empty unless the model declares `gpu`.
    #[test]
    fn only_a_model_that_declares_gpu_gets_the_gpus() {
        let (input, assignment) = gathered();
        let with = sub_input(0, &[gpu()], &input, &[], &assignment);
        let without = sub_input(
            1,
            &[Measurement::CpuTime("cpu".into())],
            &input,
            &[],
            &assignment,
        );
        assert_eq!(with.gpus, input.gpus);
        assert!(without.gpus.is_empty(), "{:?}", without.gpus);
    }

    /// Every model that declares `gpu` sees every holding on the placement
    /// it names in the gather (same VM, on the card's host), and each holding
    /// is assigned in exactly one model: given to the VM there, left at the
    /// host (`other-model`) in the others, so that across the models a card's
    /// energy reaches its VMs once and each model's GPU law holds.
    #[test]
    fn each_holding_is_one_models_and_the_others_leave_it_at_the_host() {
        let (input, assignment) = gathered();
        let measurements = [gpu(), Measurement::CpuTime("cpu".into())];
        // Per holding (card, index): the slots it is assigned in.
        let mut assigned_in: Vec<Vec<Vec<usize>>> = input
            .gpus
            .iter()
            .map(|c| vec![Vec::new(); c.holdings.len()])
            .collect();
        let mut to_vms = 0.0;
        for k in 0..2 {
            let sub = sub_input(k, &measurements, &input, &[], &assignment);
            assert_eq!(sub.gpus.len(), input.gpus.len());
            let mut law = vec![0.0; sub.hosts.len()];
            for (c, (card, whole)) in sub.gpus.iter().zip(&input.gpus).enumerate() {
                let mut parts = 0.0;
                for (i, (held, orig)) in card.holdings.iter().zip(&whole.holdings).enumerate() {
                    let p = &sub.placements[held.placement as usize];
                    let q = &input.placements[orig.placement as usize];
                    assert_eq!((p.vm, p.host), (q.vm, q.host), "card {c} holding {i}");
                    assert_eq!(p.host, Some(card.host), "card {c} holding {i}");
                    let part = held.joules * held.share;
                    parts += part;
                    // The share models' rule: assigned → the VM; else other-model.
                    if p.assigned {
                        assigned_in[c][i].push(k);
                        to_vms += part;
                    }
                    law[card.host as usize] += part;
                }
                // Unheld time and free slices: no-vms.
                law[card.host as usize] += card.energy.value - parts;
            }
            let g_h: Vec<f64> = (0..sub.hosts.len() as u32)
                .map(|h| {
                    let cards = sub.gpus.iter().filter(|c| c.host == h);
                    cards.map(|c| c.energy.value).sum()
                })
                .collect();
            assert_eq!(law, g_h, "slot {k}'s GPU law");
        }
        for (c, holdings) in assigned_in.iter().enumerate() {
            for (i, slots) in holdings.iter().enumerate() {
                assert_eq!(slots.len(), 1, "card {c} holding {i} assigned in {slots:?}");
            }
        }
        let held: f64 = input
            .gpus
            .iter()
            .flat_map(|c| &c.holdings)
            .map(|h| h.joules * h.share)
            .sum();
        assert_eq!(to_vms, held, "every held part reaches its VM once");
        assert_eq!(held, 600.0 + 350.0 + 300.0 + 200.0);
    }
}
