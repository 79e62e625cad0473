//! Counters measured exactly over a window with the batched recipe of `docs/ENERGY.md#counters`:
//! six instant queries for every series at once (value and timestamp at
//! `start` and at `end`, `resets()` over the window in two halves), and a raw
//! sample fetch only for the series that reset, start or stop inside it.
//! PromQL `increase()` is never used: it extrapolates and does not tile.

use std::collections::HashMap;

use futures::future::try_join_all;

use super::client::{Client, PrometheusError};
use super::labels::{Labels, SeriesKey};
use super::remote_read::{RemoteReadError, read_samples, read_series, when_available};
use crate::energy::counter::{Increase, Sample, c1, stopped_at_start};
use crate::window::Window;

/// The C1 increase of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesIncrease {
    /// The series' labels (without `__name__`).
    pub labels: Labels,
    /// Its increase and span in the window.
    pub increase: Increase,
}

/// A series with no sample in a window whose last sample lies in the
/// lookback before its start: it stopped there (`docs/ENERGY.md#record-status`).
#[derive(Clone, Debug, PartialEq)]
pub struct StoppedSeries {
    /// The series' labels (without `__name__`).
    pub labels: Labels,
    /// Its last sample's time, ms (`start − lookback ≤ t ≤ start`).
    pub last_ms: i64,
}

/// Every series of a counter present in a window.
#[derive(Clone, Debug, Default)]
pub struct CounterReadings {
    /// One entry per series with a sample in `(start, end]`; absent series are left out.
    pub series: Vec<SeriesIncrease>,
    /// The absent series that stopped at the window's start (C1 gives them
    /// no reading; the records' status needs them).
    pub stopped: Vec<StoppedSeries>,
    /// How many series needed their raw samples (reset, start, stop inside the window).
    pub raw_fetched: usize,
}

/// First characters of key values in one half of the split resets() query
/// (half of the hex digits, so uuid keys split evenly).
const RESETS_SPLIT: &str = "[0-7]";

/// Measures C1 (C1w when `wrap` is given, in the counter's unit) for every
/// series `selector` matches in `window`. `key_label` is the label raw
/// fetches filter on (the series' key, such as `uuid`).
pub async fn measure_counter(
    client: &Client,
    selector: &str,
    key_label: &str,
    window: Window,
    wrap: Option<f64>,
) -> Result<CounterReadings, PrometheusError> {
    let remote = remote_counter(client, selector, key_label, window, wrap);
    if let Some(readings) = when_available(client, remote).await? {
        return Ok(readings);
    }
    let lookback_ms = client.config.lookback_secs as i64 * 1000;
    // One ms more than the window and the lookback: a range selector leaves
    // its start out (Prometheus 3), and a sample at `start − lookback` may
    // be a series' last ([`stopped_at_start`]).
    let range = format!("{}ms", window.len_ms() + lookback_ms + 1);
    let timestamp = format!("timestamp({selector})");
    // resets() reads every sample of the window, the one expensive query:
    // split it in two by the key's first character (complementary matchers, so
    // every series is in exactly one half) and Prometheus runs the halves on
    // two cores. Its answer names every series with a sample in the range;
    // the four edge queries only say values, by series key (no labels kept).
    let half = format!("{key_label}=~\"{RESETS_SPLIT}.*\"");
    let other = format!("{key_label}!~\"{RESETS_SPLIT}.*\"");
    let resets_a = format!("resets({}[{range}])", add_matcher(selector, &half));
    let resets_b = format!("resets({}[{range}])", add_matcher(selector, &other));
    let (base_v, base_t, last_v, last_t, resets_a, resets_b) = tokio::try_join!(
        client.query_values(selector, window.start_ms),
        client.query_values(&timestamp, window.start_ms),
        client.query_values(selector, window.end_ms),
        client.query_values(&timestamp, window.end_ms),
        client.query(&resets_a, window.end_ms),
        client.query(&resets_b, window.end_ms),
    )?;
    let mut edges: HashMap<SeriesKey, Edges> =
        HashMap::with_capacity(resets_a.len() + resets_b.len());
    for (results, field) in [
        (base_v, Field::BaseValue),
        (base_t, Field::BaseTime),
        (last_v, Field::LastValue),
        (last_t, Field::LastTime),
    ] {
        for (key, value) in results {
            let e = edges.entry(key).or_default();
            let ms = (value * 1000.0).round() as i64;
            match field {
                Field::BaseValue => e.base_value = Some(value),
                Field::BaseTime => e.base_t = Some(ms),
                Field::LastValue => e.last_value = Some(value),
                Field::LastTime => e.last_t = Some(ms),
            }
        }
    }

    let mut readings = CounterReadings::default();
    let mut raw: HashMap<SeriesKey, Labels> = HashMap::new();
    for series in resets_a.into_iter().chain(resets_b) {
        let resets = series.samples.first().map(|s| s.value);
        let key = series.labels.key();
        match edges
            .get(&key)
            .and_then(|e| fast_path(e, resets?, window, lookback_ms))
        {
            Some(increase) => readings.series.push(SeriesIncrease {
                labels: series.labels,
                increase,
            }),
            None => {
                raw.insert(key, series.labels);
            }
        }
    }

    if !raw.is_empty() {
        let fetched = counter_samples_of(client, selector, key_label, &raw, window).await?;
        readings.raw_fetched = fetched.len();
        for (labels, samples) in fetched.into_values() {
            if let Some(increase) = c1(&samples, window, wrap) {
                readings.series.push(SeriesIncrease { labels, increase });
            } else if let Some(last_ms) = stopped_at_start(&samples, window, lookback_ms) {
                readings.stopped.push(StoppedSeries { labels, last_ms });
            }
        }
        let keyless = raw
            .values()
            .filter(|labels| !labels.contains_key(key_label))
            .count();
        if keyless > 0 {
            tracing::warn!(
                selector,
                key_label,
                "{keyless} series without the key label `{key_label}` were skipped"
            );
        }
    }
    readings.series.sort_by(|a, b| a.labels.cmp(&b.labels));
    readings.stopped.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(readings)
}

/// C1 of every series from its raw samples, read by remote read: the window
/// and the lookback before it in one streamed read, each series' C1 taken as
/// it arrives (its samples then dropped); a series without a sample in the
/// lookback before `start` waits for its base from a longer look back (by
/// its key).
async fn remote_counter(
    client: &Client,
    selector: &str,
    key_label: &str,
    window: Window,
    wrap: Option<f64>,
) -> Result<CounterReadings, RemoteReadError> {
    let lookback_ms = client.config.lookback_secs as i64 * 1000;
    let mut readings = CounterReadings::default();
    let mut without_base: Vec<(Labels, Vec<Sample>)> = Vec::new();
    // From `start − lookback`: a sample there may be a series' last
    // ([`stopped_at_start`]).
    read_series(
        client,
        selector,
        window.start_ms - lookback_ms,
        window.end_ms,
        |labels, samples| {
            readings.raw_fetched += 1;
            let has_base = samples.first().is_some_and(|x| x.t_ms <= window.start_ms);
            if !has_base && labels.contains_key(key_label) {
                without_base.push((labels, samples.to_vec()));
            } else if let Some(increase) = c1(samples, window, wrap) {
                readings.series.push(SeriesIncrease { labels, increase });
            } else if let Some(last_ms) = stopped_at_start(samples, window, lookback_ms) {
                readings.stopped.push(StoppedSeries { labels, last_ms });
            }
        },
    )
    .await?;
    if !without_base.is_empty() {
        let search_ms = client.config.base_search_secs as i64 * 1000;
        let mut bases: HashMap<SeriesKey, Sample> = HashMap::new();
        let mut keys: Vec<&str> = without_base
            .iter()
            .filter_map(|(labels, _)| labels.get(key_label))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(client.config.raw_batch.max(1)) {
            let alternatives: Vec<String> = chunk.iter().map(|k| regex_escape(k)).collect();
            let matcher = format!("{key_label}=~\"{}\"", alternatives.join("|"));
            read_series(
                client,
                &add_matcher(selector, &matcher),
                window.start_ms - search_ms + 1,
                window.start_ms,
                |labels, samples| {
                    if let Some(last) = samples.last() {
                        bases.insert(labels.key(), *last);
                    }
                },
            )
            .await?;
        }
        for (labels, mut samples) in without_base {
            if let Some(base) = bases.get(&labels.key()) {
                samples.insert(0, *base);
            }
            if let Some(increase) = c1(&samples, window, wrap) {
                readings.series.push(SeriesIncrease { labels, increase });
            }
        }
    }
    readings.series.sort_by(|a, b| a.labels.cmp(&b.labels));
    readings.stopped.sort_by(|a, b| a.labels.cmp(&b.labels));
    tracing::debug!(selector, series = readings.series.len(), %window, "counter read by remote read");
    Ok(readings)
}

/// Every sample of every series of `selector` in the window and the lookback
/// before it (host meters: a few series, where raw samples are cheap).
pub async fn counter_samples(
    client: &Client,
    selector: &str,
    window: Window,
) -> Result<Vec<super::Series>, PrometheusError> {
    let range_ms = window.len_ms() + client.config.lookback_secs as i64 * 1000;
    let remote = read_samples(
        client,
        selector,
        window.end_ms - range_ms + 1,
        window.end_ms,
    );
    if let Some(series) = when_available(client, remote).await? {
        return Ok(series);
    }
    client
        .query(&format!("{selector}[{range_ms}ms]"), window.end_ms)
        .await
}

/// The raw samples C1 uses of each series of `selector` in `wanted` (by
/// series key; `key_label` is what the fetch filters on): the window and
/// the lookback before it, and for a series without a sample at or before
/// `start` there, its base from up to `[prometheus] base_search_secs`
/// further back. The samples a series' C1 sums the pairs of, where the
/// batched recipe's edges do not do (`docs/ENERGY.md#counters`).
pub async fn counter_samples_of(
    client: &Client,
    selector: &str,
    key_label: &str,
    wanted: &HashMap<SeriesKey, Labels>,
    window: Window,
) -> Result<HashMap<SeriesKey, (Labels, Vec<Sample>)>, PrometheusError> {
    // As `resets()`'s range: from `start − lookback` itself.
    let range_ms = window.len_ms() + client.config.lookback_secs as i64 * 1000 + 1;
    let mut fetched =
        fetch_raw(client, selector, key_label, wanted, range_ms, window.end_ms).await?;
    // C1's base is the last sample at or before `start`, however old: a series
    // whose fetched samples all lie inside the window (a gap across `start`, or a
    // start inside it) gets its base from a longer look back.
    let without_base: HashMap<SeriesKey, Labels> = fetched
        .iter()
        .filter(|(_, (_, samples))| samples.first().is_some_and(|s| s.t_ms > window.start_ms))
        .map(|(id, (labels, _))| (*id, labels.clone()))
        .collect();
    if !without_base.is_empty() {
        let search_ms = client.config.base_search_secs as i64 * 1000;
        let bases = fetch_raw(
            client,
            selector,
            key_label,
            &without_base,
            search_ms,
            window.start_ms,
        )
        .await?;
        for (id, (_, samples)) in bases {
            if let (Some(base), Some((_, series))) = (samples.last(), fetched.get_mut(&id)) {
                series.insert(0, *base);
            }
        }
    }
    Ok(fetched)
}

/// Raw samples of the series in `wanted` over `(at - range_ms, at]`, fetched in
/// batches by key label value; returned by series id.
pub(super) async fn fetch_raw(
    client: &Client,
    selector: &str,
    key_label: &str,
    wanted: &HashMap<SeriesKey, Labels>,
    range_ms: i64,
    at_ms: i64,
) -> Result<HashMap<SeriesKey, (Labels, Vec<Sample>)>, PrometheusError> {
    let mut keys: Vec<&str> = wanted
        .values()
        .filter_map(|labels| labels.get(key_label))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let queries: Vec<String> = keys
        .chunks(client.config.raw_batch.max(1))
        .map(|chunk| {
            let alternatives: Vec<String> = chunk.iter().map(|k| regex_escape(k)).collect();
            let matcher = format!("{key_label}=~\"{}\"", alternatives.join("|"));
            format!("{}[{range_ms}ms]", add_matcher(selector, &matcher))
        })
        .collect();
    let results = try_join_all(queries.iter().map(|q| client.query(q, at_ms))).await?;
    Ok(results
        .into_iter()
        .flatten()
        .filter_map(|series| {
            let id = series.labels.key();
            wanted
                .contains_key(&id)
                .then_some((id, (series.labels, series.samples)))
        })
        .collect())
}

/// Which edge query a value came from.
#[derive(Clone, Copy)]
enum Field {
    BaseValue,
    BaseTime,
    LastValue,
    LastTime,
}

/// A series' values at the window's edges.
#[derive(Default)]
struct Edges {
    base_value: Option<f64>,
    base_t: Option<i64>,
    last_value: Option<f64>,
    last_t: Option<i64>,
}

/// A series with a base at `start`, a last sample inside the window and no
/// reset needs no samples: its increase is last − base.
/// The base must lie inside the range `resets()` covered, `(start - lookback,
/// end]` (Prometheus' own lookback may be longer than the configured one), or
/// a reset between base and window could go unseen.
fn fast_path(e: &Edges, resets: f64, window: Window, lookback_ms: i64) -> Option<Increase> {
    let (base_value, base_t) = (e.base_value?, e.base_t?);
    let (last_value, last_t) = (e.last_value?, e.last_t?);
    if resets != 0.0
        || last_t <= window.start_ms
        || last_value < base_value
        || base_t <= window.start_ms - lookback_ms
    {
        return None;
    }
    Some(Increase {
        value: last_value - base_value,
        span_s: (last_t - base_t) as f64 / 1000.0,
        first_ms: base_t,
        last_ms: last_t,
    })
}

/// Adds a label matcher to a series selector: `m` → `m{x}`, `m{a="b"}` → `m{a="b",x}`.
pub fn add_matcher(selector: &str, matcher: &str) -> String {
    let trimmed = selector.trim_end();
    match trimmed.strip_suffix('}') {
        Some(head) if head.trim_end().ends_with('{') => format!("{head}{matcher}}}"),
        Some(head) => format!("{head},{matcher}}}"),
        None => format!("{trimmed}{{{matcher}}}"),
    }
}

/// `selector` narrowed to the series whose `label` is one of `values`.
pub fn matching_any(selector: &str, label: &str, values: &[&str]) -> String {
    let alternatives: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    add_matcher(
        selector,
        &format!("{label}=~\"{}\"", alternatives.join("|")),
    )
}

/// Escapes a label value for use inside a PromQL `=~"…"` regex literal.
fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            // A regex escape (`\.`) inside a PromQL string literal (`\\.`).
            '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                out.push_str("\\\\");
                out.push(c);
            }
            '\\' => out.push_str("\\\\\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_spliced() {
        assert_eq!(add_matcher("m", "a=\"1\""), "m{a=\"1\"}");
        assert_eq!(add_matcher("m{}", "a=\"1\""), "m{a=\"1\"}");
        assert_eq!(
            add_matcher("m{job=\"x\"}", "a=\"1\""),
            "m{job=\"x\",a=\"1\"}"
        );
    }

    #[test]
    fn regex_values_are_escaped() {
        assert_eq!(regex_escape("a.b"), "a\\\\.b");
        assert_eq!(regex_escape("9f1c-00"), "9f1c-00");
        assert_eq!(regex_escape("a\\b"), "a\\\\\\\\b");
        assert_eq!(regex_escape("a\nb\"c"), "a\\nb\\\"c");
    }
}
