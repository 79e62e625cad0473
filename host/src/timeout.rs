//! Timeouts a configuration gives in seconds.

use std::time::Duration;

/// `secs` as a `Duration`: at least 1 ms, and an hour for a value too large
/// or not finite.
pub fn from_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.001)).unwrap_or(Duration::from_secs(3600))
}
