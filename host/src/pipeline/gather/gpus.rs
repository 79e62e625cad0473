//! The `gpu` measurement in `extract` (`docs/ENERGY.md#gpus`): each host's
//! cards from DCGM's energy counter (C1, split by GC1) or, for cards without
//! one, its power gauge (G1, split by GG1), and who held them when, from the
//! holders' info series. Cards and holders are named by host key and VM
//! uuid here; [`super::assemble`] turns them into indices.

use std::collections::{BTreeMap, HashMap};

use super::plan::{GpuPlan, HostKey};
use crate::energy::counter::Sample;
use crate::energy::gpu::{Holder, gc1, gg1, held_intervals, held_s, split_evenly, steady};
use crate::pipeline::PipelineError;
use crate::runtime::{GpuMode, Reading, to_base};
use crate::sources::gpu::{BusId, GpuKey};
use crate::sources::prometheus::{
    Client, Labels, Series, SeriesIncrease, SeriesKey, counter_samples_of, gauge_samples,
    measure_counter,
};
use crate::window::Window;

/// One card over a window, its holders named by VM uuid.
pub(super) struct Card {
    /// Host key.
    pub host: String,
    pub bus_id: BusId,
    pub gpu_uuid: Option<String>,
    /// Joules, with span and covered seconds.
    pub energy: Reading,
    /// From the energy counter (else the power gauge).
    pub counter: bool,
    /// In the order the VMs came to the card.
    pub holdings: Vec<CardHolding>,
}

/// A VM's holding of a card.
pub(super) struct CardHolding {
    /// The VM's uuid.
    pub uuid: String,
    pub mode: GpuMode,
    pub share: f64,
    pub profile: Option<String>,
    pub held_s: f64,
    /// The card's joules while held, before `share`.
    pub joules: f64,
}

/// A card: host key and bus id.
type CardId = (String, BusId);

/// The info series of one VM on one card (several merged where only other
/// labels differ).
struct Info {
    uuid: String,
    mode: String,
    share: Option<String>,
    profile: Option<String>,
    gpu_uuid: Option<String>,
    times: Vec<i64>,
}

/// DCGM's label of a card's PCI address.
const BUS_ID: &str = "pci_bus_id";
/// DCGM's MIG instance label: series of one card that differ in it are one device.
const MIG_INSTANCE: &str = "GPU_I_ID";
/// DCGM's MIG profile label, which goes with [`MIG_INSTANCE`].
const MIG_PROFILE: &str = "GPU_I_PROFILE";

/// Every card `plan` reads in `window`, with its holders; also how many
/// series needed their raw samples.
pub(super) async fn measure(
    client: &Client,
    plan: &GpuPlan<'_>,
    host_key: &HostKey,
    window: Window,
) -> Result<(Vec<Card>, usize), PipelineError> {
    let config = plan.config;
    let key_label = match config.key {
        GpuKey::BusId => BUS_ID,
        GpuKey::GpuUuid => "UUID",
    };
    // From the lookback before `start` (the base pair) to the gap limit
    // after `end` (a holding, or a gauge segment, across `end`).
    let range_ms = window.len_ms() + client.config.lookback_secs as i64 * 1000 + plan.max_gap_ms;
    let holders_query = format!("{}[{range_ms}ms]", config.holders_metric);
    let (infos, counters, gauges) = tokio::try_join!(
        client.query(&holders_query, window.end_ms + plan.max_gap_ms),
        measure_counter(client, &config.counter, key_label, window, None),
        gauge_samples(client, &config.gauge, window, plan.max_gap_ms),
    )?;
    let infos_empty = infos.is_empty();
    let infos = holders(infos, host_key, window);
    let ident = Identify::new(plan, host_key, &infos);
    let counter_span = |s: &SeriesIncrease| (s.increase.first_ms, s.increase.last_ms);
    let gauge_span = |s: &Series| {
        let t = |x: Option<&Sample>| x.map_or(0, |x| x.t_ms);
        (t(s.samples.first()), t(s.samples.last()))
    };
    let counters = per_card(counters.series, |s| &s.labels, counter_span, &ident);
    let gauges = per_card(gauges, |s| &s.labels, gauge_span, &ident);
    let mut raw_fetched = 0;
    // Each card's parts, one per series read (several add up).
    let mut parts: BTreeMap<CardId, Parts> = BTreeMap::new();
    let mut add = |id: &CardId, labels: &Labels, counter: bool, part: Part| {
        parts
            .entry(id.clone())
            .or_insert_with(|| Parts {
                labels: labels.clone(),
                counter,
                parts: Vec::new(),
            })
            .parts
            .push(part);
    };
    // Cards whose holders change within their span need C1's pairs.
    let mut wanted: HashMap<SeriesKey, (Labels, CardId)> = HashMap::new();
    for (id, list) in &counters {
        for series in list {
            let holders = card_holders(plan, &infos, id, &series.labels);
            let increase = series.increase;
            if !steady(&holders.holders, increase.first_ms, increase.last_ms) {
                wanted.insert(series.labels.key(), (series.labels.clone(), id.clone()));
                continue;
            }
            let joules = to_base(plan.counter_unit, increase.value);
            let mut split = vec![0.0; holders.holders.len()];
            let over = split_evenly(
                joules,
                increase.first_ms,
                increase.last_ms,
                &holders.holders,
                &mut split,
            );
            let energy = Reading {
                value: joules,
                span_s: increase.span_s,
                covered_s: increase.span_s,
            };
            add(id, &series.labels, true, Part::new(energy, split, over));
        }
    }
    if !wanted.is_empty() {
        let labels = wanted.iter().map(|(k, (l, _))| (*k, l.clone())).collect();
        let fetched =
            counter_samples_of(client, &config.counter, key_label, &labels, window).await?;
        raw_fetched += fetched.len();
        for (key, (labels, samples)) in fetched {
            let Some((_, id)) = wanted.get(&key) else {
                continue;
            };
            let samples = in_base(&samples, |v| to_base(plan.counter_unit, v));
            let holders = card_holders(plan, &infos, id, &labels);
            let Some(split) = gc1(&samples, window, &holders.holders) else {
                continue;
            };
            let energy = Reading {
                value: split.energy.value,
                span_s: split.energy.span_s,
                covered_s: split.energy.span_s,
            };
            let part = Part::new(energy, split.joules, split.overcommitted);
            add(id, &labels, true, part);
        }
    }
    // A card with both: the counter wins.
    for (id, list) in gauges.iter().filter(|(id, _)| !counters.contains_key(*id)) {
        for series in list {
            raw_fetched += 1;
            let holders = card_holders(plan, &infos, id, &series.labels);
            let Some(split) = gg1(&series.samples, window, plan.max_gap_ms, &holders.holders)
            else {
                continue;
            };
            let energy = Reading {
                value: split.energy.value,
                span_s: split.energy.covered_s,
                covered_s: split.energy.covered_s,
            };
            let part = Part::new(energy, split.joules, split.overcommitted);
            add(id, &series.labels, false, part);
        }
    }
    let cards = parts
        .into_iter()
        .map(|(id, p)| {
            let holders = card_holders(plan, &infos, &id, &p.labels);
            let mut energy = Reading {
                value: 0.0,
                span_s: 0.0,
                covered_s: 0.0,
            };
            let mut joules = vec![0.0; holders.holders.len()];
            let mut over = false;
            for part in p.parts {
                energy.value += part.energy.value;
                energy.span_s += part.energy.span_s;
                energy.covered_s += part.energy.covered_s;
                for (sum, j) in joules.iter_mut().zip(part.joules) {
                    *sum += j;
                }
                over |= part.over;
            }
            card(
                &id, &p.labels, energy, p.counter, holders, joules, over, window,
            )
        })
        .collect::<Vec<_>>();
    if cards.is_empty() {
        tracing::warn!(
            %window,
            "[gpu]: no series of `{}` or `{}` at {} has samples in the window, so no GPU energy \
             and no gpu_j on records. If these hosts have GPUs, check [gpu] counter, gauge and \
             host_label against this Prometheus",
            config.counter,
            config.gauge,
            client.url()
        );
    } else if infos_empty {
        tracing::warn!(
            %window,
            "[gpu]: no series of `{}` at {} in the window, so no VM held a GPU: every card's \
             energy stays at its host (`no-vms`). Run `wattson daemon` with [gpu] on the \
             hypervisors (it exports who holds which card), or check [gpu] holders_metric",
            config.holders_metric,
            client.url()
        );
    }
    Ok((cards, raw_fetched))
}

/// What one series says of its card.
struct Part {
    energy: Reading,
    /// Per holder of the card, in [`card_holders`]' order.
    joules: Vec<f64>,
    /// Its holders' shares added up to more than 1 somewhere.
    over: bool,
}

impl Part {
    fn new(energy: Reading, joules: Vec<f64>, over: bool) -> Self {
        Self {
            energy,
            joules,
            over,
        }
    }
}

/// A card's parts, and the labels of its first series (its `modelName`, `UUID`).
struct Parts {
    labels: Labels,
    counter: bool,
    parts: Vec<Part>,
}

/// `samples` with their values converted by `to_base`.
fn in_base(samples: &[Sample], to_base: impl Fn(f64) -> f64) -> Vec<Sample> {
    samples
        .iter()
        .map(|s| Sample {
            t_ms: s.t_ms,
            value: to_base(s.value),
        })
        .collect()
}

/// The card a series measures: by host key and bus id, or (`[gpu] key =
/// "gpu-uuid"`) by the card the holders name with its GPU uuid.
struct Identify<'a> {
    host_label: &'a str,
    host_key: &'a HostKey,
    /// GPU uuid → card, from the holders (`gpu-uuid` only).
    by_gpu_uuid: Option<HashMap<&'a str, &'a CardId>>,
}

impl<'a> Identify<'a> {
    fn new(
        plan: &'a GpuPlan<'_>,
        host_key: &'a HostKey,
        infos: &'a BTreeMap<CardId, Vec<Info>>,
    ) -> Self {
        let by_gpu_uuid = (plan.config.key == GpuKey::GpuUuid).then(|| {
            infos
                .iter()
                .flat_map(|(id, infos)| {
                    infos
                        .iter()
                        .filter_map(move |i| Some((i.gpu_uuid.as_deref()?, id)))
                })
                .collect()
        });
        Self {
            host_label: plan.host_label,
            host_key,
            by_gpu_uuid,
        }
    }

    /// With `gpu-uuid`, a series whose `UUID` no holder names is read as
    /// with `bus-id`: an unheld card of the host its labels name.
    fn card(&self, labels: &Labels) -> Option<CardId> {
        let held = self
            .by_gpu_uuid
            .as_ref()
            .and_then(|cards| cards.get(gpu_uuid(labels)?));
        if let Some(id) = held {
            return Some((*id).clone());
        }
        let host = self.host_key.normalise(labels.get(self.host_label)?);
        Some((host, labels.get(BUS_ID)?.parse().ok()?))
    }
}

/// NVML's uuid of the card a DCGM series measures (`UUID`, or `uuid` with
/// the exporter's old label names).
fn gpu_uuid(labels: &Labels) -> Option<&str> {
    labels.get("UUID").or_else(|| labels.get("uuid"))
}

/// The series of each card that add up (`docs/ENERGY.md#gpus`): of a MIG
/// card's (one per instance, each the whole card's value, differing only in
/// `GPU_I_ID` and `GPU_I_PROFILE`), the lowest `GPU_I_ID`'s; of other series
/// of one card (a card handed between guests, each with its own DCGM; an
/// exporter restarted with new labels), every one, but one whose `span`
/// overlaps another's (two exporters measuring one card at once) is left
/// out, with a warning naming the card: the first by `GPU_I_ID` and labels
/// is read. Series no card is known for are left out, with a warning.
fn per_card<S>(
    series: Vec<S>,
    labels: impl Fn(&S) -> &Labels,
    span: impl Fn(&S) -> (i64, i64),
    ident: &Identify<'_>,
) -> BTreeMap<CardId, Vec<S>> {
    let instance = |l: &Labels| l.get(MIG_INSTANCE).and_then(|i| i.parse::<u64>().ok());
    let mut grouped: BTreeMap<CardId, Vec<S>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for s in series {
        match ident.card(labels(&s)) {
            Some(id) => grouped.entry(id).or_default().push(s),
            None => unknown.push(format!("{:?}", labels(&s))),
        }
    }
    if let Some(first) = unknown.first() {
        tracing::warn!(
            "{} GPU energy series name no card (e.g. {first}): they need the host label `{}` and \
             a PCI address in `{BUS_ID}` (with [gpu] key = \"gpu-uuid\", a `UUID` some holder's \
             `gpu_uuid` names, or those); they are left out",
            unknown.len(),
            ident.host_label
        );
    }
    // A series' labels but its MIG instance's: equal for one card's instances.
    let device = |l: &Labels| -> Vec<(String, String)> {
        l.iter()
            .filter(|(n, _)| *n != MIG_INSTANCE && *n != MIG_PROFILE)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    };
    let mut cards = BTreeMap::new();
    for (id, mut list) in grouped {
        list.sort_by(|a, b| {
            let (a, b) = (labels(a), labels(b));
            (instance(a), a).cmp(&(instance(b), b))
        });
        let mut kept: Vec<S> = Vec::new();
        let mut overlapping = 0;
        for s in list {
            if kept.iter().any(|k| device(labels(k)) == device(labels(&s))) {
                continue;
            }
            let (from, to) = span(&s);
            if kept.iter().any(|k| {
                let (a, b) = span(k);
                a < to && from < b
            }) {
                overlapping += 1;
                continue;
            }
            kept.push(s);
        }
        if overlapping > 0 {
            tracing::warn!(
                host = id.0,
                bus_id = %id.1,
                "{overlapping} more GPU energy series measure the card at the same time as {:?} \
                 (two exporters?): that one is read, they are left out",
                kept.first().map(&labels)
            );
        }
        cards.insert(id, kept);
    }
    cards
}

/// The holders' info series by card: VM `uuid`, host key from `host`, bus
/// id from `pci_bus_id`; series of one VM and card with the same mode,
/// share and profile merged.
fn holders(series: Vec<Series>, host_key: &HostKey, window: Window) -> BTreeMap<CardId, Vec<Info>> {
    let mut cards: BTreeMap<CardId, Vec<Info>> = BTreeMap::new();
    let mut unplaced = 0;
    for s in series {
        let labels = &s.labels;
        let id = labels
            .get("host")
            .map(|h| host_key.normalise(h))
            .zip(labels.get(BUS_ID).and_then(|b| b.parse::<BusId>().ok()));
        let (Some(id), Some(uuid)) = (id, labels.get("uuid")) else {
            unplaced += 1;
            continue;
        };
        let owned = |name: &str| {
            labels
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let info = Info {
            uuid: uuid.to_owned(),
            mode: labels.get("mode").unwrap_or_default().to_owned(),
            share: owned("share"),
            profile: owned("profile"),
            gpu_uuid: owned("gpu_uuid"),
            times: s.samples.iter().map(|x| x.t_ms).collect(),
        };
        let infos = cards.entry(id).or_default();
        match infos.iter_mut().find(|i| {
            (&i.uuid, &i.mode, &i.share, &i.profile)
                == (&info.uuid, &info.mode, &info.share, &info.profile)
        }) {
            Some(same) => {
                same.times.extend(info.times);
                same.times.sort_unstable();
                same.times.dedup();
            }
            None => infos.push(info),
        }
    }
    if unplaced > 0 {
        tracing::warn!(
            %window,
            "{unplaced} GPU holder series lack a `uuid`, a `host` or a PCI address in `{BUS_ID}`: \
             they hold nothing"
        );
    }
    cards
}

/// A card's holders, as the split needs them and as the model sees them.
struct CardHolders {
    holders: Vec<Holder>,
    /// Per holder: VM uuid, mode, share, profile.
    who: Vec<(String, GpuMode, Option<String>)>,
}

/// The holders of card `id` (whose energy series has `labels`), with
/// their shares (`docs/ENERGY.md#gpus`); those whose share is unknown are
/// left out, with a warning.
fn card_holders(
    plan: &GpuPlan<'_>,
    infos: &BTreeMap<CardId, Vec<Info>>,
    id: &CardId,
    labels: &Labels,
) -> CardHolders {
    let mut out = CardHolders {
        holders: Vec::new(),
        who: Vec::new(),
    };
    for info in infos.get(id).into_iter().flatten() {
        let given = info
            .share
            .as_deref()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1.0);
        let (mode, share) = match info.mode.as_str() {
            "passthrough" => (GpuMode::Passthrough, Some(given.unwrap_or(1.0))),
            "vgpu" => (GpuMode::Vgpu, given),
            // The card's slices by its model; a series without one (the
            // daemon's counters) leaves the share the info series gives.
            "mig" => {
                let model = labels.get("modelName");
                let slices = plan.config.mig_slices_of(model.unwrap_or_default());
                let g = info.profile.as_deref().and_then(mig_slices);
                let share = g
                    .map(|g| f64::from(g) / f64::from(slices))
                    .filter(|s| *s <= 1.0);
                let share = match model {
                    Some(_) => share.or(given),
                    None => given.or(share),
                };
                (GpuMode::Mig, share)
            }
            _ => (GpuMode::Passthrough, None),
        };
        let Some(share) = share else {
            tracing::warn!(
                host = id.0,
                bus_id = %id.1,
                vm = info.uuid,
                mode = info.mode,
                "the GPU holder's share of the card is not known (mode passthrough, vgpu with a \
                 `share`, or mig with a profile such as 3g.40gb): it is left out, its part stays \
                 at the host"
            );
            continue;
        };
        out.holders.push(Holder {
            held: held_intervals(&info.times, plan.max_gap_ms),
            share,
        });
        out.who
            .push((info.uuid.clone(), mode, info.profile.clone()));
    }
    out
}

/// The compute slices a MIG profile names: `3g.40gb` (a MIG instance),
/// `A100-3-20C` (a MIG-backed vGPU type).
fn mig_slices(profile: &str) -> Option<u32> {
    let profile = profile.trim();
    if let Some((g, _)) = profile.split_once("g.") {
        return g.parse().ok();
    }
    let mut parts = profile.rsplit('-');
    let (_, g) = (parts.next()?, parts.next()?);
    parts.next()?;
    g.parse().ok()
}

/// A card's reading and holdings, holders in the order they came to it.
#[allow(clippy::too_many_arguments)]
fn card(
    id: &CardId,
    labels: &Labels,
    energy: Reading,
    counter: bool,
    holders: CardHolders,
    joules: Vec<f64>,
    overcommitted: bool,
    window: Window,
) -> Card {
    if overcommitted {
        tracing::warn!(
            host = id.0,
            bus_id = %id.1,
            %window,
            "the GPU's holders hold more than the whole card at once (one card listed by two \
             VMs?): their shares were scaled to add up to 1 there"
        );
    }
    let mut holdings: Vec<(i64, CardHolding)> = holders
        .holders
        .iter()
        .zip(holders.who)
        .zip(joules)
        .filter_map(|((h, (uuid, mode, profile)), joules)| {
            let held_s = held_s(&h.held, window);
            (held_s > 0.0 || joules > 0.0).then(|| {
                let first = h.held.first().map_or(i64::MAX, |i| i.0);
                let holding = CardHolding {
                    uuid,
                    mode,
                    share: h.share,
                    profile,
                    held_s,
                    joules,
                };
                (first, holding)
            })
        })
        .collect();
    holdings.sort_by_key(|(first, _)| *first);
    Card {
        host: id.0.clone(),
        bus_id: id.1,
        gpu_uuid: gpu_uuid(labels).map(str::to_owned),
        energy,
        counter,
        holdings: holdings.into_iter().map(|(_, h)| h).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mig_profiles_name_their_compute_slices() {
        assert_eq!(mig_slices("3g.40gb"), Some(3));
        assert_eq!(mig_slices("1g.10gb+me"), Some(1));
        assert_eq!(mig_slices("A100-3-20C"), Some(3));
        assert_eq!(mig_slices("GRID P40-4C"), None);
        assert_eq!(mig_slices(""), None);
    }
}
