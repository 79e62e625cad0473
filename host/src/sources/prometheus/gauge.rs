//! Gauges measured with G1 from raw samples: one range query for every series
//! of the selector, covering the window and `max_gap` on each side (so the
//! segments that cross the window's edges are there to interpolate).
//! Right for host meters (one series per host); per-VM gauges over long
//! windows want a server-side method (not here yet).

use std::collections::BTreeMap;

use super::client::{Client, PrometheusError};
use crate::sources::gauge::{Integral, g1};
use crate::window::Window;

/// The G1 integral of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesIntegral {
    /// The series' labels (without `__name__`).
    pub labels: BTreeMap<String, String>,
    /// Its integral and covered seconds in the window.
    pub integral: Integral,
}

/// G1 of every series `selector` matches over `window`; gaps longer than
/// `max_gap_ms` are not bridged. Series with uncovered time are logged.
pub async fn measure_gauge(
    client: &Client,
    selector: &str,
    window: Window,
    max_gap_ms: i64,
) -> Result<Vec<SeriesIntegral>, PrometheusError> {
    let range_ms = window.len_ms() + 2 * max_gap_ms;
    let series = client
        .query(
            &format!("{selector}[{range_ms}ms]"),
            window.end_ms + max_gap_ms,
        )
        .await?;
    let mut out: Vec<SeriesIntegral> = series
        .into_iter()
        .filter_map(|s| {
            let integral = g1(&s.samples, window, max_gap_ms)?;
            Some(SeriesIntegral {
                labels: s.labels,
                integral,
            })
        })
        .collect();
    let partial = out
        .iter()
        .filter(|s| s.integral.covered_s < window.len_ms() as f64 / 1000.0)
        .count();
    if partial > 0 {
        tracing::warn!(
            selector,
            %window,
            "{partial} of {} series do not cover the whole window (gaps over {} s, or no samples near an edge); uncovered time counts nothing",
            out.len(),
            max_gap_ms / 1000
        );
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
