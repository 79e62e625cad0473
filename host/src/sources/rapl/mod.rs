//! RAPL energy counters of this host from the powercap sysfs tree
//! (`/sys/class/powercap` by default).
//!
//! Zones are found by their `name` file (`package-N`, `dram`, `psys`, `core`,
//! `uncore`). Every zone appears twice — nested under its parent and as a
//! top-level symlink — so zones are deduplicated by real path. Which zones
//! make up host energy is [`crate::energy::rapl`]'s rule. A zone whose
//! `enabled` reads 0 only has its power limit off: its energy still counts.
//! Deltas are wrap-aware at `max_energy_range_uj` (C1w) within the gap limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::energy::counter::{Boot, delta_between};

mod config;

pub use config::RaplConfig;

/// The default powercap root.
pub const DEFAULT_ROOT: &str = "/sys/class/powercap";

/// A powercap tree that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RaplError {
    /// `energy_uj` is root-only on current kernels (CVE-2020-8694).
    #[error(
        "cannot read {}: permission denied. energy_uj is readable by root only on current kernels; run wattson as root, or grant read access, e.g. a udev rule: SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod o+r /sys%p/energy_uj\"",
        path.display()
    )]
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// Any other failure, with the path.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error (in the message, not the error chain).
        error: std::io::Error,
    },
    /// A file that does not hold a number.
    #[error("{} does not hold a number: `{text}`", path.display())]
    NotANumber {
        /// The file.
        path: PathBuf,
        /// What it holds.
        text: String,
    },
    /// No zone under the root.
    #[error("no RAPL zones under {}: is this an Intel/AMD host with the intel_rapl driver loaded (modprobe intel_rapl_common)?", .0.display())]
    NoZones(PathBuf),
}

fn read_error(path: &Path, source: std::io::Error) -> RaplError {
    if source.kind() == std::io::ErrorKind::PermissionDenied {
        RaplError::PermissionDenied {
            path: path.to_owned(),
        }
    } else {
        RaplError::Io {
            path: path.to_owned(),
            error: source,
        }
    }
}

/// One RAPL zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Its `name`: `package-0`, `dram`, `core`, …
    pub name: String,
    /// Its real (canonical) directory.
    pub path: PathBuf,
    /// `max_energy_range_uj`: where `energy_uj` wraps.
    pub max_energy_range_uj: u64,
}

/// Every zone under `root`, once each (by real path), sorted by path. The
/// walk follows the top-level symlinks and descends into nested zones.
pub fn discover(root: &Path) -> Result<Vec<Zone>, RaplError> {
    let mut visited = std::collections::HashSet::new();
    let mut zones: BTreeMap<PathBuf, Zone> = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| read_error(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| read_error(&dir, e))?.path();
            // Zones and control types are named intel-rapl…; never wander into
            // `subsystem`, `device` or `power` links.
            let is_rapl = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("rapl"));
            if !is_rapl || !path.is_dir() {
                continue;
            }
            let real = path.canonicalize().map_err(|e| read_error(&path, e))?;
            if !visited.insert(real.clone()) {
                continue;
            }
            if real.join("energy_uj").exists() {
                let zone = Zone {
                    name: read_text(&real.join("name"))?,
                    max_energy_range_uj: read_number(&real.join("max_energy_range_uj"))?,
                    path: real.clone(),
                };
                zones.insert(real.clone(), zone);
            }
            stack.push(real);
        }
    }
    if zones.is_empty() {
        return Err(RaplError::NoZones(root.to_owned()));
    }
    Ok(zones.into_values().collect())
}

/// The zones host energy is made of: those `wanted` names, or by default
/// package + dram, or psys where there is no package ([`crate::energy::rapl`]).
pub fn host_zones(zones: &[Zone], wanted: &[String]) -> Vec<Zone> {
    crate::energy::rapl::host_zones(zones, |z| &z.name, wanted)
        .into_iter()
        .cloned()
        .collect()
}

/// `energy_uj` of each zone, in order.
pub fn sample(zones: &[Zone]) -> Result<Vec<u64>, RaplError> {
    zones
        .iter()
        .map(|z| read_number(&z.path.join("energy_uj")))
        .collect()
}

/// Joules between two samples of the same zones `dt_ms` apart, each delta
/// wrap-aware (C1w): within the gap limit, or at any gap when both samples
/// are of the same `boot`.
pub fn joules_between(
    zones: &[Zone],
    before: &[u64],
    after: &[u64],
    dt_ms: i64,
    boot: Boot,
) -> f64 {
    zones
        .iter()
        .zip(before.iter().zip(after))
        .map(|(z, (&b, &a))| {
            let range = Some(z.max_energy_range_uj as f64);
            delta_between(b as f64, a as f64, dt_ms, range, boot) / 1e6
        })
        .sum()
}

fn read_text(path: &Path) -> Result<String, RaplError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| read_error(path, e))
}

fn read_number(path: &Path) -> Result<u64, RaplError> {
    let text = read_text(path)?;
    text.parse().map_err(|_| RaplError::NotANumber {
        path: path.to_owned(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_says_how_to_grant_access() {
        let err = read_error(
            Path::new("/sys/class/powercap/intel-rapl:0/energy_uj"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        let text = err.to_string();
        assert!(text.contains("root only"), "{text}");
        assert!(text.contains("udev rule"), "{text}");
    }
}
