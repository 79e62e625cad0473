//! Gauges measured with G1 from raw samples: one range query for every series
//! of the selector, covering the window and `max_gap` on each side (so the
//! segments that cross the window's edges are there to interpolate).
//! Right for host meters (one series per host). Per-VM gauges use
//! [`measure_vm_gauge`]: raw samples at the edges only, sums in between.

use std::collections::HashMap;

use super::client::{Client, PrometheusError};
use super::counter::fetch_raw;
use super::labels::{Labels, SeriesKey};
use super::remote_read::{RemoteReadError, read_samples, read_series, when_available};
use crate::energy::counter::Sample;
use crate::energy::gauge::{Integral, g1};
use crate::window::Window;

/// The G1 integral of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesIntegral {
    /// The series' labels (without `__name__`).
    pub labels: Labels,
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
    if let Some(mut out) =
        when_available(client, exact(client, selector, window, max_gap_ms)).await?
    {
        finish(&mut out, selector, window, max_gap_ms);
        return Ok(out);
    }
    let series = gauge_samples(client, selector, window, max_gap_ms).await?;
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
    finish(&mut out, selector, window, max_gap_ms);
    Ok(out)
}

/// Warns about series with uncovered time (never filled: `docs/ENERGY.md#gauges`) and
/// sorts the integrals by labels.
fn finish(series: &mut [SeriesIntegral], selector: &str, window: Window, max_gap_ms: i64) {
    let partial = series
        .iter()
        .filter(|s| s.integral.covered_s < window.len_ms() as f64 / 1000.0)
        .count();
    if partial > 0 {
        tracing::warn!(
            selector,
            %window,
            "{partial} of {} series do not cover the whole window (gaps over {} s, a start or a stop, or no samples near an edge); uncovered time counts nothing",
            series.len(),
            max_gap_ms / 1000
        );
    }
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
}

/// Every sample of every series of `selector` in the window and within
/// `max_gap_ms` of it (the segments crossing its edges).
pub async fn gauge_samples(
    client: &Client,
    selector: &str,
    window: Window,
    max_gap_ms: i64,
) -> Result<Vec<super::Series>, PrometheusError> {
    let range_ms = window.len_ms() + 2 * max_gap_ms;
    let (from, to) = (window.start_ms - max_gap_ms + 1, window.end_ms + max_gap_ms);
    if let Some(series) = when_available(client, read_samples(client, selector, from, to)).await? {
        return Ok(series);
    }
    client
        .query(
            &format!("{selector}[{range_ms}ms]"),
            window.end_ms + max_gap_ms,
        )
        .await
}

/// G1 of every series from all its raw samples by remote read, streamed: each
/// series integrated as it arrives, then dropped.
async fn exact(
    client: &Client,
    selector: &str,
    window: Window,
    max_gap_ms: i64,
) -> Result<Vec<SeriesIntegral>, RemoteReadError> {
    let mut out = Vec::new();
    let (from, to) = (window.start_ms - max_gap_ms + 1, window.end_ms + max_gap_ms);
    read_series(client, selector, from, to, |labels, samples| {
        if let Some(integral) = g1(samples, window, max_gap_ms) {
            out.push(SeriesIntegral { labels, integral });
        }
    })
    .await?;
    Ok(out)
}

/// The G1 integrals of a per-VM gauge, and how many series needed all their samples.
#[derive(Clone, Debug, Default)]
pub struct VmGaugeReadings {
    /// One entry per series with data in the window.
    pub series: Vec<SeriesIntegral>,
    /// Series whose raw samples were fetched (a gap, a start or a stop inside the window).
    pub raw_fetched: usize,
}

/// G1 of a per-VM gauge (thousands of series, too many samples to download
/// over a long window), with raw samples only near the window's edges.
///
/// Per series: the samples within `max_gap` of each edge (two range
/// queries), and the sum and count of the samples between them
/// (`sum_over_time`, `count_over_time`). The edges are integrated exactly
/// (G1). Between the last head sample `a` and the first tail sample `b` the
/// trapezoid chain over `n` evenly spaced samples is
/// `(b.t - a.t) / (n + 1) × (a.v / 2 + Σv + b.v / 2)`: exact for even
/// spacing; scrape jitter makes it differ from G1 by far less than 1e-2
/// (the tolerance `docs/ENERGY.md#tolerances` allows; docs/BENCHMARKS.md has the measured
/// figure). A series missing samples in the middle (a gap, however short
/// its trace in the count), starting or stopping inside the window gets
/// its raw samples and exact G1, so gaps are detected as in [`measure_gauge`].
pub async fn measure_vm_gauge(
    client: &Client,
    selector: &str,
    key_label: &str,
    window: Window,
    max_gap_ms: i64,
) -> Result<VmGaugeReadings, PrometheusError> {
    // Remote read: every sample at the price of one read, so exact G1.
    if let Some(mut series) =
        when_available(client, exact(client, selector, window, max_gap_ms)).await?
    {
        finish(&mut series, selector, window, max_gap_ms);
        let raw_fetched = series.len();
        return Ok(VmGaugeReadings {
            series,
            raw_fetched,
        });
    }
    let g = max_gap_ms;
    if window.len_ms() <= 4 * g {
        let series = measure_gauge(client, selector, window, max_gap_ms).await?;
        let raw_fetched = series.len();
        return Ok(VmGaugeReadings {
            series,
            raw_fetched,
        });
    }
    let edge = format!("{selector}[{}ms]", 2 * g - 1);
    let middle = format!("{}ms", window.len_ms() - 2 * g);
    let sum = format!("sum_over_time({selector}[{middle}])");
    let count = format!("count_over_time({selector}[{middle}])");
    let (head, tail, sums, counts) = tokio::try_join!(
        client.query(&edge, window.start_ms + g - 1),
        client.query(&edge, window.end_ms + g),
        client.query(&sum, window.end_ms - g),
        client.query(&count, window.end_ms - g),
    )?;

    #[derive(Default)]
    struct Parts {
        labels: Labels,
        head: Vec<Sample>,
        tail: Vec<Sample>,
        sum: f64,
        count: usize,
    }
    fn part(parts: &mut HashMap<SeriesKey, Parts>, labels: Labels) -> &mut Parts {
        parts.entry(labels.key()).or_insert_with(|| Parts {
            labels,
            ..Parts::default()
        })
    }
    let mut parts: HashMap<SeriesKey, Parts> = HashMap::new();
    for s in head {
        part(&mut parts, s.labels).head = s.samples;
    }
    for s in tail {
        part(&mut parts, s.labels).tail = s.samples;
    }
    for s in sums {
        part(&mut parts, s.labels).sum = s.samples.first().map_or(0.0, |x| x.value);
    }
    for s in counts {
        part(&mut parts, s.labels).count = s.samples.first().map_or(0.0, |x| x.value) as usize;
    }

    let mut out = VmGaugeReadings::default();
    let mut raw: HashMap<SeriesKey, Labels> = HashMap::new();
    for (id, p) in parts {
        match edges_and_middle(&p.head, &p.tail, p.sum, p.count, window, g) {
            Some(integral) => out.series.push(SeriesIntegral {
                labels: p.labels,
                integral,
            }),
            None => {
                raw.insert(id, p.labels);
            }
        }
    }
    if !raw.is_empty() {
        let fetched = fetch_raw(
            client,
            selector,
            key_label,
            &raw,
            window.len_ms() + 2 * g,
            window.end_ms + g,
        )
        .await?;
        out.raw_fetched = fetched.len();
        out.series
            .extend(fetched.into_values().filter_map(|(labels, samples)| {
                let integral = g1(&samples, window, max_gap_ms)?;
                Some(SeriesIntegral { labels, integral })
            }));
    }
    finish(&mut out.series, selector, window, max_gap_ms);
    Ok(out)
}

/// The integral from edge samples plus the middle's sum and count, or None
/// when the series needs its raw samples (missing, starting or stopping near
/// an edge, or fewer samples in the middle than its spacing promises).
fn edges_and_middle(
    head: &[Sample],
    tail: &[Sample],
    sum: f64,
    count: usize,
    window: Window,
    max_gap_ms: i64,
) -> Option<Integral> {
    let a = *head.last()?;
    let b = *tail.first()?;
    if a.t_ms <= window.start_ms || b.t_ms >= window.end_ms || head.len() < 2 || tail.len() < 2 {
        return None;
    }
    // The scrape spacing, from the edge samples (median, so one gap does not skew it).
    let mut steps: Vec<i64> = head
        .windows(2)
        .chain(tail.windows(2))
        .map(|w| w[1].t_ms - w[0].t_ms)
        .collect();
    if steps.iter().any(|&s| s <= 0 || s > max_gap_ms) {
        return None;
    }
    steps.sort_unstable();
    let spacing = steps[steps.len() / 2] as f64;
    let span = (b.t_ms - a.t_ms) as f64;
    // A gap longer than max_gap hides at least max_gap / spacing − 1 samples;
    // flag at half that (at least one), which jitter in the count cannot reach.
    let expected = span / spacing - 1.0;
    let allowed = (max_gap_ms as f64 / spacing / 2.0).max(1.0);
    if expected - count as f64 >= allowed {
        return None;
    }
    let start = g1(
        head,
        Window {
            start_ms: window.start_ms,
            end_ms: a.t_ms,
        },
        max_gap_ms,
    )?;
    let end = g1(
        tail,
        Window {
            start_ms: b.t_ms,
            end_ms: window.end_ms,
        },
        max_gap_ms,
    )?;
    let middle = span / 1000.0 / (count as f64 + 1.0) * (a.value / 2.0 + sum + b.value / 2.0);
    // Covered time added in whole milliseconds, as G1 counts it: a sum of
    // seconds can fall a rounding short of the window, and the series would
    // be reported as not covering it.
    let ms = |s: f64| (s * 1000.0).round() as i64;
    let covered_ms = ms(start.covered_s) + (b.t_ms - a.t_ms) + ms(end.covered_s);
    Some(Integral {
        value: start.value + middle + end.value,
        covered_s: covered_ms as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series that covers the window is reported as covering all of it,
    /// even where its edge parts and middle, added in seconds, would fall a
    /// rounding short (1.995 s + 86,396.022 s + 1.983 s < 86,400 s in f64).
    #[test]
    fn the_approximation_covers_the_whole_window_without_rounding_short() {
        let start_ms = 1_748_736_000_000;
        let window = Window {
            start_ms,
            end_ms: start_ms + 86_400_000,
        };
        let sample = |t_ms, value| Sample { t_ms, value };
        let (a, b) = (start_ms + 1_995, window.end_ms - 1_983);
        assert!(1.995 + (b - a) as f64 / 1000.0 + 1.983 < 86_400.0);
        let head = [sample(a - 30_000, 100.0), sample(a, 100.0)];
        let tail = [sample(b, 100.0), sample(b + 30_000, 100.0)];
        let count = 2_879;
        let integral = edges_and_middle(&head, &tail, 100.0 * count as f64, count, window, 300_000)
            .expect("a series without gaps");
        assert_eq!(integral.covered_s, 86_400.0);
        assert!(
            (integral.value - 100.0 * 86_400.0).abs() < 1e-6,
            "{}",
            integral.value
        );
    }
}
