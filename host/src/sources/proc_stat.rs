//! The host's CPU time from `/proc/stat` (the daemon's utilisation for
//! `idle_power = "fit"`): busy and total jiffies of all CPUs, with busy as
//! node_exporter's `node_cpu_seconds_total{mode!~"idle|iowait"}` counts it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the kernel keeps it.
pub const DEFAULT_PATH: &str = "/proc/stat";

/// Cumulative jiffies of all CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuJiffies {
    /// user + nice + system + irq + softirq + steal (guest time is inside user).
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
}

/// Why `/proc/stat` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcStatError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has no `cpu` line of at least eight numbers.
    #[error(
        "{0} has no `cpu` line of at least 8 numbers (user nice system idle iowait irq softirq steal)"
    )]
    Unparsable(PathBuf),
}

/// Reads the all-CPU line of `path`.
pub fn read(path: &Path) -> Result<CpuJiffies, ProcStatError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProcStatError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).ok_or_else(|| ProcStatError::Unparsable(path.to_owned()))
}

/// The all-CPU line (`cpu  user nice system idle iowait irq softirq steal …`).
pub fn parse(text: &str) -> Option<CpuJiffies> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some(CpuJiffies {
        busy,
        total: busy + idle + iowait,
    })
}

/// The busy fraction (0 to 1) of all CPUs between two readings; none when
/// no time passed or a counter went back (a reboot).
pub fn utilisation(before: CpuJiffies, after: CpuJiffies) -> Option<f64> {
    let busy = after.busy.checked_sub(before.busy)?;
    let total = after.total.checked_sub(before.total)?;
    (total > 0).then(|| (busy as f64 / total as f64).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_all_but_idle_and_iowait() {
        let text = "cpu  100 5 50 1000 20 3 2 1 40 0\ncpu0 50 2 25 500 10 1 1 0 20 0\nintr 1 2\n";
        let j = parse(text).unwrap();
        assert_eq!(j.busy, 100 + 5 + 50 + 3 + 2 + 1);
        assert_eq!(j.total, j.busy + 1000 + 20);
        let later = CpuJiffies {
            busy: j.busy + 30,
            total: j.total + 120,
        };
        assert_eq!(utilisation(j, later), Some(0.25));
        assert_eq!(utilisation(later, j), None, "a counter that went back");
        assert_eq!(utilisation(j, j), None);
        assert!(parse("cpu 1 2 3\n").is_none());
        assert!(parse("intr 1 2\n").is_none());
    }
}
