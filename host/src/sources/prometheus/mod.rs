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

pub use client::{Client, PrometheusError, Series};
pub use config::{PrometheusConfig, ReadPath};
pub use counter::{
    CounterReadings, SeriesIncrease, counter_samples, matching_any, measure_counter,
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
