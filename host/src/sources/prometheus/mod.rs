//! Prometheus (or any PromQL-compatible store) as a source of measurements.
//!
//! [`client`] speaks the HTTP API; [`counter`] measures counters over a window
//! with the batched C1 recipe of `docs/ENERGY.md#counters`, [`gauge`] integrates gauges (G1),
//! [`inventory`] reads VM metadata, [`labels`] holds series' labels compactly, [`template`] runs PromQL templates,
//! [`remote_read`] reads raw samples by the remote-read API; `answer` decodes the API's JSON answers.

mod answer;
pub mod client;
pub mod config;
pub mod counter;
pub mod gauge;
pub mod inventory;
pub mod labels;
pub mod remote_read;
pub mod template;

use crate::energy::counter::Sample;

pub use client::{Client, PrometheusError, Series};
pub use config::{PrometheusConfig, ReadPath};
pub use counter::{
    CounterReadings, SeriesIncrease, StoppedSeries, counter_samples, counter_samples_of,
    matching_any, measure_counter,
};
pub use gauge::{SeriesIntegral, VmGaugeReadings, gauge_samples, measure_gauge, measure_vm_gauge};
pub use inventory::{Metadata, owner, vm_disks, vm_metadata, vm_sizes};
pub use labels::{Labels, SeriesKey};
pub use remote_read::{RemoteReadError, read_samples, read_series};
pub use template::{QueryTemplate, TemplateError, TemplateReadings, VmVars, measure_template};

/// Whether a sample's value is a measurement: a value that is not a finite
/// number (NaN, ±Inf: an exporter's bug) is left out of every reading, and
/// the first such is said once per run (`docs/ENERGY.md#counters`).
pub(crate) fn finite(value: f64) -> bool {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if value.is_finite() {
        return true;
    }
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "a sample that is not a finite number ({value}) was left out (an exporter wrote \
             it): readings use the samples around it"
        );
    }
    false
}

/// Two samples of one series at one instant with different values: an
/// answer no reading may be taken from (which one is right cannot be told).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Conflict {
    /// The instant, ms since the epoch.
    pub t_ms: i64,
    /// The first value at that instant.
    pub first: f64,
    /// A different value at the same instant.
    pub second: f64,
}

/// Puts a series' samples in ascending time, as every reading assumes
/// (`docs/ENERGY.md`): a store or proxy that answers them out of order or
/// repeated (overlapping blocks, a federation, a broken proxy) is sorted,
/// and exact repeats (same instant, same value) are dropped. Returns whether
/// anything had to be done, or the first instant that holds two different
/// values: those are refused, never one of them picked.
pub(crate) fn ascending(samples: &mut Vec<Sample>) -> Result<bool, Conflict> {
    if samples.is_sorted_by(|a, b| a.t_ms < b.t_ms) {
        return Ok(false);
    }
    samples.sort_by_key(|s| s.t_ms);
    let mut conflict = None;
    samples.dedup_by(|later, kept| {
        if later.t_ms != kept.t_ms {
            return false;
        }
        if later.value != kept.value && conflict.is_none() {
            conflict = Some(Conflict {
                t_ms: kept.t_ms,
                first: kept.value,
                second: later.value,
            });
        }
        true
    });
    conflict.map_or(Ok(true), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: i64, value: f64) -> Sample {
        Sample { t_ms, value }
    }

    #[test]
    fn samples_are_sorted_repeats_dropped_conflicts_refused() {
        let mut sorted = vec![s(1, 1.0), s(2, 2.0)];
        assert_eq!(ascending(&mut sorted), Ok(false));
        let mut shuffled = vec![s(3, 3.0), s(1, 1.0), s(2, 2.0), s(1, 1.0), s(3, 3.0)];
        assert_eq!(ascending(&mut shuffled), Ok(true));
        assert_eq!(shuffled, [s(1, 1.0), s(2, 2.0), s(3, 3.0)]);
        let mut conflicting = vec![s(2, 2.0), s(1, 1.0), s(2, 2.5)];
        assert_eq!(
            ascending(&mut conflicting),
            Err(Conflict {
                t_ms: 2,
                first: 2.0,
                second: 2.5
            })
        );
    }
}
