//! The measurement rules of `docs/ENERGY.md`, the one place both `extract`
//! (windows of Prometheus samples) and the daemon (intervals between local
//! samples) take them from, so the two cannot measure differently:
//!
//! * [`counter`]: C1 and C1w, and when a drop is a reset rather than a wrap
//!   (`docs/ENERGY.md#counters`).
//! * [`gauge`]: G1, and the two-point rule between two readings
//!   (`docs/ENERGY.md#gauges`).
//! * [`gpu`]: a GPU's energy split among the VMs that held it, GC1 and
//!   GG1 (`docs/ENERGY.md#gpus`).
//! * [`idle`]: idle power from a host's meters, over whole UTC minutes
//!   (`docs/ENERGY.md#idle-power`).
//! * [`rapl`]: RAPL zone names, kinds and the default zones.
//! * [`status`]: a record's status and presence in its window.

pub mod counter;
pub mod gauge;
pub mod gpu;
pub mod idle;
pub mod rapl;
pub mod status;

/// The longest gap between two samples that is bridged, by default
/// (Prometheus' staleness), seconds: a gauge pair further apart is not
/// integrated (G1), and a counter drop across it is a reset, never a wrap
/// (C1w). `docs/ENERGY.md#gap-limits`.
pub const DEFAULT_MAX_GAP_S: f64 = 300.0;

/// A measurement's gap limit in ms: `max_gap_s` where it is set to a
/// positive number, else [`DEFAULT_MAX_GAP_S`].
pub fn max_gap_ms(max_gap_s: Option<f64>) -> i64 {
    let secs = max_gap_s
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(DEFAULT_MAX_GAP_S);
    (secs * 1000.0).round() as i64
}
