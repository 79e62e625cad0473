//! The host's GPUs in the daemon (`[gpu]`): each card read at every sample
//! ([`Card`], from `[gpu] command`), who holds which ([`Held`], from the
//! running domains' `<hostdev>`s), and each tick's energy per card with the
//! VMs that held it at both ends of the tick (`docs/ENERGY.md#gpus`, "In
//! the daemon"): the card's counter by C1 (a drop is a driver reload: the
//! new value counts), else its power by the two-point rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sample::Counters;
use crate::energy::{self, counter::delta, gauge::two_point};
use crate::runtime::{GpuHolding, GpuMode, GpuReading, Reading};
use crate::sources::gpu::{self, GpuConfig, GpuMeter, Mode, SmiCommand};

/// Where the GPUs are read from.
pub struct GpuSources {
    /// The meter (`[gpu] command`; tests give their own).
    pub meter: Box<dyn GpuMeter>,
    /// `[gpu]`: its `sysfs_root`, where vGPU mdevs and PCI classes are
    /// looked up, and the compute slices of MIG-backed vGPU types.
    pub config: GpuConfig,
    /// Whether a model reads `gpu`: a failed reading then fails the sample
    /// (measured again at the next); else it is only said and counted.
    pub needed: bool,
}

impl GpuSources {
    /// The policy's `[gpu]` command and sysfs.
    pub fn new(config: &GpuConfig, needed: bool) -> Self {
        Self {
            meter: Box::new(SmiCommand::new(config.command.clone())),
            config: config.clone(),
            needed,
        }
    }

    /// Every card now, by bus id (NVML's form).
    pub fn cards(&mut self) -> Result<BTreeMap<String, Card>, String> {
        Ok(self
            .meter
            .read()?
            .into_iter()
            .map(|s| {
                let card = Card {
                    model: s.model,
                    energy_mj: s.energy_mj,
                    power_w: s.power_w,
                    gpu_uuid: s.gpu_uuid,
                };
                (s.bus_id.to_string(), card)
            })
            .collect())
    }

    /// What each running domain (uuid → its XML) holds: mdevs, and the PCI
    /// devices that are GPUs (listed in `cards`, or a display controller
    /// to sysfs, as a card bound to vfio-pci is). A MIG-backed vGPU's card
    /// has `[gpu] mig_slices` of its model as the meter names it (DCGM's
    /// `modelName`, as extract reads it), else of the vGPU type's name.
    /// Domains holding none are left out, and so are domains whose devices
    /// cannot be resolved (an mdev gone, or one sysfs does not describe):
    /// each is named in the second list, and the cards it would hold count
    /// as unheld rather than failing every card's reading.
    pub fn holders(
        &self,
        xml: &BTreeMap<String, String>,
        cards: &BTreeMap<String, Card>,
    ) -> (BTreeMap<String, Vec<Held>>, Vec<String>) {
        let slices = |card: gpu::BusId, type_name: &str| {
            let model = cards
                .get(&card.to_string())
                .and_then(|c| c.model.as_deref());
            self.config.mig_slices_of(model.unwrap_or(type_name))
        };
        let sysfs_root = self.config.sysfs_root();
        let mut held = BTreeMap::new();
        let mut unresolved = Vec::new();
        for (uuid, xml) in xml {
            let found = match gpu::holdings(xml, &sysfs_root, &slices) {
                Ok(found) => found,
                Err(e) => {
                    unresolved.push(format!(
                        "domain {uuid}: {e}: the GPUs it holds count as held by no VM"
                    ));
                    continue;
                }
            };
            let cards: Vec<Held> = found
                .into_iter()
                .filter(|h| {
                    h.mode != Mode::Passthrough
                        || cards.contains_key(&h.bus_id.to_string())
                        || gpu::is_display(&sysfs_root, h.bus_id)
                })
                .map(|h| Held {
                    bus_id: h.bus_id.to_string(),
                    mode: h.mode,
                    share: h.share,
                    profile: h.profile,
                })
                .collect();
            if !cards.is_empty() {
                held.insert(uuid.clone(), cards);
            }
        }
        (held, unresolved)
    }
}

/// One card read at a sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// Its model (nvidia-smi's `name`), where printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `total_energy_consumption`, mJ since the driver loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_mj: Option<f64>,
    /// `power.draw`, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// NVML's `GPU-…` uuid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_uuid: Option<String>,
}

/// A card (or part of one) a domain holds at a sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The card's bus id, NVML's form.
    pub bus_id: String,
    /// How.
    pub mode: Mode,
    /// The part of the card.
    pub share: f64,
    /// The vGPU type, where one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// One card over one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct CardTick {
    /// Its bus id.
    pub bus_id: String,
    /// Its uuid at the tick's end (else start), where the meter prints one.
    pub gpu_uuid: Option<String>,
    /// Its energy over the tick, J.
    pub joules: f64,
    /// Whether from its counter (else its power).
    pub counter: bool,
    /// The VMs (uuid) listing it at both ends, by uuid, with how they hold
    /// it at the end.
    pub holders: Vec<(String, Held)>,
}

/// Each card's energy from `prev` to `cur`, for cards read at both ends:
/// the counter where both have it (C1: a drop is a driver reload or a
/// reboot, the new value counts; it never wraps), else the two power
/// readings within `max_gap_s` (the rule the wall-power meter follows);
/// a card with neither has no energy (absent, never 0). GPUs kept over a
/// failed reading ([`Counters::gpu_at`]) are measured from when they were
/// read; kept at both ends, they give nothing yet.
pub fn ticks(prev: &Counters, cur: &Counters, max_gap_s: Option<f64>) -> Vec<CardTick> {
    if cur.gpu_at() <= prev.gpu_at() {
        return Vec::new();
    }
    cur.gpus
        .iter()
        .filter_map(|(bus_id, now)| {
            let before = prev.gpus.get(bus_id)?;
            let (joules, counter) = match (before.energy_mj, now.energy_mj) {
                (Some(a), Some(b)) => (delta(a, b, None) / 1000.0, true),
                _ => {
                    let joules = two_point(
                        before.power_w?,
                        prev.gpu_at(),
                        now.power_w?,
                        cur.gpu_at(),
                        energy::max_gap_ms(max_gap_s),
                    )?;
                    (joules, false)
                }
            };
            let holders = cur
                .gpu_held
                .iter()
                .filter(|(vm, _)| {
                    prev.gpu_held
                        .get(*vm)
                        .is_some_and(|h| h.iter().any(|h| &h.bus_id == bus_id))
                })
                .flat_map(|(vm, held)| {
                    held.iter()
                        .filter(|h| &h.bus_id == bus_id)
                        .map(|h| (vm.clone(), h.clone()))
                })
                .collect();
            Some(CardTick {
                bus_id: bus_id.clone(),
                gpu_uuid: now.gpu_uuid.clone().or_else(|| before.gpu_uuid.clone()),
                joules,
                counter,
                holders,
            })
        })
        .collect()
}

/// The model's `gpus` for one tick of `dt_s` on host 0: each card with its
/// energy and its holders among `placements` (VM uuids, one placement each,
/// in order). A holder that is no placement (no CPU time at both ends)
/// holds nothing: its part stays at the host.
pub fn readings(ticks: &[CardTick], placements: &[&str], dt_s: f64) -> Vec<GpuReading> {
    ticks
        .iter()
        .map(|t| GpuReading {
            host: 0,
            bus_id: t.bus_id.clone(),
            gpu_uuid: t.gpu_uuid.clone(),
            energy: Reading {
                value: t.joules,
                span_s: dt_s,
                covered_s: dt_s,
            },
            counter: t.counter,
            holdings: t
                .holders
                .iter()
                .filter_map(|(vm, held)| {
                    let placement = placements.iter().position(|p| p == vm)?;
                    Some(GpuHolding {
                        placement: placement as u32,
                        mode: match held.mode {
                            Mode::Passthrough => GpuMode::Passthrough,
                            Mode::Vgpu => GpuMode::Vgpu,
                            Mode::Mig => GpuMode::Mig,
                        },
                        share: held.share,
                        profile: held.profile.clone(),
                        held_s: dt_s,
                        joules: t.joules,
                    })
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00000000:3B:00.0";
    const B: &str = "00000000:AF:00.0";

    fn card(energy_mj: Option<f64>, power_w: Option<f64>) -> Card {
        Card {
            model: None,
            energy_mj,
            power_w,
            gpu_uuid: Some("GPU-a".into()),
        }
    }

    fn held(bus_id: &str, mode: Mode, share: f64) -> Held {
        Held {
            bus_id: bus_id.into(),
            mode,
            share,
            profile: (mode != Mode::Passthrough).then(|| "GRID P40-4C".into()),
        }
    }

    fn at(at_ms: i64, cards: &[(&str, Card)], holders: &[(&str, Vec<Held>)]) -> Counters {
        Counters {
            at_ms,
            gpus: cards
                .iter()
                .map(|(b, c)| (b.to_string(), c.clone()))
                .collect(),
            gpu_held: holders
                .iter()
                .map(|(v, h)| (v.to_string(), h.clone()))
                .collect(),
            ..Counters::default()
        }
    }

    #[test]
    fn the_counter_by_c1_a_reload_counts_its_new_value_else_two_power_readings() {
        let prev = at(
            0,
            &[
                (A, card(Some(9.0e9), Some(300.0))),
                (B, card(None, Some(200.0))),
            ],
            &[("x", vec![held(A, Mode::Passthrough, 1.0)])],
        );
        let cur = at(
            15_000,
            &[
                (A, card(Some(9.0e9 + 4.5e6), Some(310.0))),
                (B, card(None, Some(220.0))),
            ],
            &[
                ("x", vec![held(A, Mode::Passthrough, 1.0)]),
                ("y", vec![held(B, Mode::Vgpu, 1.0 / 6.0)]),
            ],
        );
        let got = ticks(&prev, &cur, None);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].joules, got[0].counter), (4500.0, true));
        assert_eq!(
            got[0].holders,
            [("x".into(), held(A, Mode::Passthrough, 1.0))]
        );
        assert_eq!(
            (got[1].joules, got[1].counter),
            ((200.0 + 220.0) / 2.0 * 15.0, false)
        );
        assert!(got[1].holders.is_empty(), "y came to B within the tick");

        // A driver reload: the counter starts again at 1.2e6 mJ.
        let reloaded = at(30_000, &[(A, card(Some(1.2e6), Some(0.0)))], &[]);
        let got = ticks(&cur, &reloaded, None);
        assert_eq!((got[0].joules, got[0].counter), (1200.0, true));
        assert!(got[0].holders.is_empty(), "x let go of A within the tick");
        // Power readings further apart than the gap limit bridge nothing.
        let late = at(400_000, &[(B, card(None, Some(1.0)))], &[]);
        assert!(ticks(&cur, &late, None).is_empty());
        assert_eq!(ticks(&cur, &late, Some(600.0)).len(), 1);
    }

    #[test]
    fn gpus_kept_over_a_failed_reading_are_measured_from_when_they_were_read() {
        let holders = [("x", vec![held(A, Mode::Passthrough, 1.0)])];
        let read = at(
            0,
            &[
                (A, card(Some(9.0e9), Some(300.0))),
                (B, card(None, Some(200.0))),
            ],
            &holders,
        );
        // At 10 s the reading fails: the 0 s one is kept, and gives nothing.
        let mut failed = at(10_000, &[], &[]);
        failed.keep_gpus_of(&read);
        assert_eq!(failed.gpu_at(), 0);
        assert!(ticks(&read, &failed, None).is_empty());
        // Kept again at 20 s (as read at 0 s): still nothing.
        let mut again = at(20_000, &[], &[]);
        again.keep_gpus_of(&failed);
        assert_eq!(again.gpu_at(), 0);
        assert!(ticks(&failed, &again, None).is_empty());
        // Read at 30 s: one pair [0 s, 30 s], held by x at both ends.
        let cur = at(
            30_000,
            &[
                (A, card(Some(9.0e9 + 9.0e6), Some(300.0))),
                (B, card(None, Some(220.0))),
            ],
            &holders,
        );
        let got = ticks(&again, &cur, None);
        assert_eq!((got[0].joules, got[0].counter), (9000.0, true));
        assert_eq!(got[0].holders.len(), 1);
        assert_eq!(got[1].joules, (200.0 + 220.0) / 2.0 * 30.0);
        // Not across a reboot: the failed sample keeps nothing.
        let mut rebooted = at(10_000, &[], &[]);
        rebooted.boot_id = Some("b".into());
        let booted = Counters {
            boot_id: Some("a".into()),
            ..read.clone()
        };
        rebooted.keep_gpus_of(&booted);
        assert!(rebooted.gpus.is_empty() && rebooted.gpu_at_ms.is_none());
    }

    #[test]
    fn readings_name_placements_and_leave_holders_without_one_at_the_host() {
        let tick = CardTick {
            bus_id: A.into(),
            gpu_uuid: None,
            joules: 90.0,
            counter: true,
            holders: vec![
                ("v".into(), held(A, Mode::Mig, 3.0 / 7.0)),
                ("gone".into(), held(A, Mode::Mig, 2.0 / 7.0)),
            ],
        };
        let got = readings(&[tick], &["u", "v"], 10.0);
        assert_eq!(got[0].energy.value, 90.0);
        assert_eq!(got[0].holdings.len(), 1);
        let h = &got[0].holdings[0];
        assert_eq!(
            (h.placement, h.share, h.held_s, h.joules),
            (1, 3.0 / 7.0, 10.0, 90.0)
        );
        assert!(matches!(h.mode, GpuMode::Mig));
    }
}
