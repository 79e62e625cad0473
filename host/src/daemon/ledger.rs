//! What the daemon has accumulated, persisted in the state directory after
//! every interval (written to a temporary file, fsynced, renamed) before any
//! new value is served: per-VM and per-meter joules since the state began,
//! the last sample's counters, and each unshipped window's per-VM parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::idle::IdleHistory;
use super::sample::Counters;
use crate::sources::owner::Owner;
use crate::state::{StateError, write_atomic};
use crate::window::Window;

/// The daemon's persisted state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Joules per VM (uuid) since the state began: the exported counters.
    pub vm_joules: BTreeMap<String, f64>,
    /// gCO2e per VM since the state began, where `[carbon]` gives a static
    /// intensity (kWh × PUE × intensity of each interval).
    #[serde(default)]
    pub vm_carbon_grams: BTreeMap<String, f64>,
    /// Embodied gCO2e per VM since the state began, where `[embodied]` gives
    /// this host a figure and its capacity is known
    /// (`docs/ENERGY.md#embodied-carbon`).
    #[serde(default)]
    pub vm_embodied_grams: BTreeMap<String, f64>,
    /// When each VM was last given energy, ms: a VM gone for
    /// `[daemon] forget_after_secs` leaves the ledger.
    #[serde(default)]
    pub vm_seen_ms: BTreeMap<String, i64>,
    /// Joules per local meter (`package-0`, `dram`, `ipmi`) since the state began.
    pub meter_joules: BTreeMap<String, f64>,
    /// GPU joules per VM (uuid) since the state began: the GPU part of
    /// `vm_joules`, where a model that declares `gpu` gave it energy.
    #[serde(default)]
    pub vm_gpu_joules: BTreeMap<String, f64>,
    /// Joules per GPU (bus id) since the state began, as measured (`[gpu]`).
    #[serde(default)]
    pub gpu_joules: BTreeMap<String, f64>,
    /// Each GPU's uuid as the meter last printed it, by bus id: a card
    /// bound to vfio-pci for passthrough is no longer listed, and keeps it.
    #[serde(default)]
    pub gpu_uuids: BTreeMap<String, String>,
    /// Host energy the models left unattributed since the state began.
    pub unattributed_joules: f64,
    /// The last sample's counters: the next interval is measured from them,
    /// across a restart too.
    pub last: Option<Counters>,
    /// Per ship window (by its start, ms): each VM's part of it so far.
    pub windows: BTreeMap<i64, BTreeMap<String, Part>>,
    /// What was learned of the host's idle power.
    #[serde(default)]
    pub idle: IdleHistory,
}

/// A VM's part of a ship window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Part {
    /// Joules.
    pub joules: f64,
    /// Seconds the VM was measured.
    pub wall_s: f64,
    /// CPU seconds.
    pub cpu_s: f64,
    /// When it was first measured in the window, ms.
    #[serde(default)]
    pub first_ms: i64,
    /// When it was last measured, ms.
    pub last_ms: i64,
    /// vCPUs and memory, MiB, as last seen.
    pub vcpus: Option<u32>,
    /// Memory, MiB.
    pub memory_mb: Option<u64>,
    /// Who the VM is, as last seen.
    pub who: Owner,
    /// The model that gave it energy, its version, whether estimated, and its meters.
    pub model: String,
    /// The model's version.
    pub model_version: String,
    /// Whether the model estimates rather than measures.
    pub estimated: bool,
    /// The meters the model read.
    pub meters: Vec<String>,
    /// Embodied gCO2e in the window, where every interval of it had them
    /// (never a part of them); in a template, the whole interval's.
    #[serde(default)]
    pub embodied_g: Option<f64>,
    /// Where they come from (`embodied_source`).
    #[serde(default)]
    pub embodied_source: Option<String>,
    /// The GPU part of `joules`: Some where a model that attributes GPUs
    /// gave it energy in an interval with GPU readings (extract's
    /// `Attributed::gpu_j`), the sum of those intervals' parts; in a
    /// template, the whole interval's.
    #[serde(default)]
    pub gpu_j: Option<f64>,
    /// Whether it held a vGPU or a MIG instance with GPU joules in some
    /// interval of the window (the record is `estimated`).
    #[serde(default)]
    pub gpu_shared: bool,
    /// `gpu:<measurement>` of the model that gave it GPU joules, named in
    /// the record's meters where they are above 0.
    #[serde(default)]
    pub gpu_meter: Option<String>,
}

impl Ledger {
    /// Drops the counters of VMs not measured for `forget_after_ms`
    /// (`[daemon] forget_after_secs`). One that comes back later starts
    /// again at 0, which C1 reads as a reset.
    pub fn forget_gone(&mut self, now_ms: i64, forget_after_ms: i64) {
        let gone: Vec<String> = self
            .vm_seen_ms
            .iter()
            .filter(|(_, seen)| now_ms - **seen > forget_after_ms)
            .map(|(uuid, _)| uuid.clone())
            .collect();
        for uuid in gone {
            self.vm_seen_ms.remove(&uuid);
            self.vm_joules.remove(&uuid);
            self.vm_carbon_grams.remove(&uuid);
            self.vm_embodied_grams.remove(&uuid);
            self.vm_gpu_joules.remove(&uuid);
        }
    }

    /// The ledger at `path`; a missing one is empty, and so is a corrupt one
    /// (with a warning): counters restart at 0, which C1 reads as a reset.
    pub fn load(path: &Path) -> Self {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    path = %path.display(),
                    "daemon state is corrupt ({e}): counters restart at 0 (a reset to Prometheus)"
                );
                Self::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    "cannot read daemon state ({e}): counters restart at 0 (a reset to Prometheus)"
                );
                Self::default()
            }
        }
    }

    /// Writes the ledger to `path` durably.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(self).map_err(|e| StateError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }

    /// Adds a VM's share of `interval` to the ship windows (of `ship_ms`) it
    /// overlaps, each its proportion of the interval (power taken as
    /// constant within an interval); the template's `embodied_g` (the
    /// interval's) likewise, a window keeping them only while every interval
    /// of it has them; its `gpu_j` likewise, a window having them where
    /// any interval of it does (as an extract window with GPU readings).
    pub fn add_part(
        &mut self,
        uuid: &str,
        interval: Window,
        ship_ms: i64,
        joules: f64,
        cpu_s: f64,
        template: &Part,
    ) {
        let len = interval.len_ms() as f64;
        let mut start = interval.start_ms.div_euclid(ship_ms) * ship_ms;
        while start < interval.end_ms {
            let end = start + ship_ms;
            let overlap = (end.min(interval.end_ms) - start.max(interval.start_ms)) as f64;
            if overlap > 0.0 {
                let fraction = overlap / len;
                let part = self
                    .windows
                    .entry(start)
                    .or_default()
                    .entry(uuid.to_owned())
                    .or_insert_with(|| Part {
                        joules: 0.0,
                        wall_s: 0.0,
                        cpu_s: 0.0,
                        first_ms: interval.start_ms.max(start),
                        embodied_g: template.embodied_g.map(|_| 0.0),
                        gpu_j: None,
                        gpu_shared: false,
                        ..template.clone()
                    });
                part.embodied_g = part
                    .embodied_g
                    .zip(template.embodied_g)
                    .map(|(sum, grams)| sum + grams * fraction);
                part.embodied_source = template.embodied_source.clone();
                if let Some(gpu_j) = template.gpu_j {
                    *part.gpu_j.get_or_insert(0.0) += gpu_j * fraction;
                    part.gpu_meter = template.gpu_meter.clone();
                }
                part.gpu_shared |= template.gpu_shared;
                part.joules += joules * fraction;
                part.wall_s += overlap / 1000.0;
                part.cpu_s += cpu_s * fraction;
                part.last_ms = interval.end_ms.min(end);
                part.vcpus = template.vcpus;
                part.memory_mb = template.memory_mb;
                part.who = template.who.clone();
                part.model = template.model.clone();
                part.model_version = template.model_version.clone();
                part.estimated = template.estimated;
                part.meters = template.meters.clone();
            }
            start = end;
        }
    }
}

/// The ledger file of a state directory.
pub fn path(state_root: &Path) -> PathBuf {
    state_root.join("daemon.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_across_a_ship_boundary_is_split_by_time() {
        let mut ledger = Ledger::default();
        let interval = Window {
            start_ms: 3_595_000,
            end_ms: 3_605_000,
        };
        ledger.add_part("vm", interval, 3_600_000, 100.0, 4.0, &Part::default());
        let first = &ledger.windows[&0]["vm"];
        let second = &ledger.windows[&3_600_000]["vm"];
        assert_eq!((first.joules, first.wall_s, first.cpu_s), (50.0, 5.0, 2.0));
        assert_eq!((second.joules, second.wall_s), (50.0, 5.0));
        assert_eq!(first.last_ms, 3_600_000);
        assert_eq!(second.last_ms, 3_605_000);
    }

    #[test]
    fn a_windows_embodied_grams_are_split_by_time_and_lost_with_one_interval_without() {
        let mut ledger = Ledger::default();
        let with = Part {
            embodied_g: Some(2.0),
            embodied_source: Some("static".into()),
            ..Part::default()
        };
        let at = |start_ms| Window {
            start_ms,
            end_ms: start_ms + 10_000,
        };
        ledger.add_part("vm", at(3_595_000), 3_600_000, 1.0, 0.0, &with);
        ledger.add_part("vm", at(3_605_000), 3_600_000, 1.0, 0.0, &with);
        assert_eq!(ledger.windows[&0]["vm"].embodied_g, Some(1.0));
        assert_eq!(ledger.windows[&3_600_000]["vm"].embodied_g, Some(3.0));
        // An interval without them: the window has none (never a part).
        ledger.add_part("vm", at(3_615_000), 3_600_000, 1.0, 0.0, &Part::default());
        ledger.add_part("vm", at(3_625_000), 3_600_000, 1.0, 0.0, &with);
        assert_eq!(ledger.windows[&3_600_000]["vm"].embodied_g, None);
    }

    #[test]
    fn a_windows_gpu_joules_are_split_by_time_and_kept_from_any_interval_with_them() {
        let mut ledger = Ledger::default();
        let with = |gpu_j: f64, gpu_shared: bool| Part {
            gpu_j: Some(gpu_j),
            gpu_shared,
            gpu_meter: Some("gpu:gpu".into()),
            ..Part::default()
        };
        let at = |start_ms| Window {
            start_ms,
            end_ms: start_ms + 10_000,
        };
        // An interval without GPU readings, then two with; a vGPU in one.
        ledger.add_part("vm", at(3_575_000), 3_600_000, 1.0, 0.0, &Part::default());
        assert_eq!(ledger.windows[&0]["vm"].gpu_j, None);
        ledger.add_part("vm", at(3_585_000), 3_600_000, 9.0, 0.0, &with(8.0, false));
        ledger.add_part("vm", at(3_595_000), 3_600_000, 5.0, 0.0, &with(4.0, true));
        let first = &ledger.windows[&0]["vm"];
        assert_eq!(first.gpu_j, Some(8.0 + 2.0));
        assert!(first.gpu_shared);
        assert_eq!(first.gpu_meter.as_deref(), Some("gpu:gpu"));
        let second = &ledger.windows[&3_600_000]["vm"];
        assert_eq!((second.joules, second.gpu_j), (2.5, Some(2.0)));
        assert!(second.gpu_shared);
        // A state file from before GPUs loads: no GPU joules, not shared.
        let old: Part = serde_json::from_str(
            r#"{"joules":1.0,"wall_s":10.0,"cpu_s":1.0,"last_ms":0,"vcpus":null,"memory_mb":null,
                "who":{},"model":"rapl-share","model_version":"0.3.0","estimated":false,"meters":[]}"#,
        )
        .unwrap();
        assert_eq!(
            (old.gpu_j, old.gpu_shared, old.gpu_meter),
            (None, false, None)
        );
    }

    #[test]
    fn vms_gone_longer_than_forget_after_are_forgotten() {
        const DAY: i64 = 86_400_000;
        let mut ledger = Ledger::default();
        for (uuid, seen) in [("old", 0), ("recent", DAY)] {
            ledger.vm_joules.insert(uuid.into(), 1.0);
            ledger.vm_embodied_grams.insert(uuid.into(), 1.0);
            ledger.vm_seen_ms.insert(uuid.into(), seen);
        }
        ledger.forget_gone(DAY + 1, DAY);
        assert_eq!(ledger.vm_joules.keys().collect::<Vec<_>>(), ["recent"]);
        assert_eq!(
            ledger.vm_embodied_grams.keys().collect::<Vec<_>>(),
            ["recent"]
        );
        assert_eq!(ledger.vm_seen_ms.len(), 1);
    }

    #[test]
    fn a_corrupt_ledger_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        std::fs::write(&file, b"{not json").unwrap();
        assert!(Ledger::load(&file).vm_joules.is_empty());
        let mut ledger = Ledger::default();
        ledger.vm_joules.insert("a".into(), 1.5);
        ledger.save(&file).unwrap();
        assert_eq!(Ledger::load(&file).vm_joules["a"], 1.5);
    }
}
