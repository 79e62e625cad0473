//! Idle power of a host (`docs/ENERGY.md#idle-power`): the least average
//! power over the whole UTC minutes inside a span, skipping minutes that
//! cannot be measured. extract's span is its window; the daemon's is the
//! history it keeps. For a window that starts on a minute these are the
//! minutes `[start + 60k, start + 60(k+1)]`.

use super::counter::Sample;
use super::gauge::g1;
use crate::window::Window;

/// Length of an idle-power bucket.
pub const BUCKET_MS: i64 = 60_000;

/// A host's idle power in a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Idle {
    /// The least bucket average, watts.
    pub watts: f64,
    /// Seconds of the window in buckets that could be measured.
    pub measured_s: f64,
}

/// The whole UTC minutes inside `span`.
pub fn buckets(span: Window) -> impl Iterator<Item = Window> {
    let first = span.start_ms.div_euclid(BUCKET_MS) + i64::from(span.start_ms % BUCKET_MS != 0);
    let last = span.end_ms.div_euclid(BUCKET_MS);
    (first..last).map(|k| Window {
        start_ms: k * BUCKET_MS,
        end_ms: (k + 1) * BUCKET_MS,
    })
}

/// The least bucket average of the summed power of `meters` (one host's
/// gauges in watts, e.g. two PSUs); a bucket any meter does not fully cover
/// (G1 with `max_gap_ms`) is skipped.
pub fn from_gauges(meters: &[&[Sample]], window: Window, max_gap_ms: i64) -> Option<Idle> {
    least(window, |bucket| {
        meters.iter().try_fold(0.0, |sum, samples| {
            let g = g1(samples, bucket, max_gap_ms)?;
            let full = (g.covered_s * 1000.0).round() as i64 == BUCKET_MS;
            full.then(|| sum + g.value / (BUCKET_MS as f64 / 1000.0))
        })
    })
}

/// The least bucket average of the summed power of `zones` (one host's energy
/// counters in joules): each zone's power in a bucket is its C1 increase over
/// its span there. A bucket is skipped when any zone drops in it (ENERGY.md:
/// a wrap or a reset, which C1w could only guess at) or has no base or no
/// sample in it (the zone drops out).
pub fn from_counters(zones: &[&[Sample]], window: Window) -> Option<Idle> {
    least(window, |bucket| {
        zones.iter().try_fold(0.0, |sum, samples| {
            let first_in = samples.partition_point(|s| s.t_ms <= bucket.start_ms);
            let last_in = samples.partition_point(|s| s.t_ms <= bucket.end_ms);
            if first_in == 0 || first_in >= last_in {
                return None;
            }
            // C1's used samples; without a drop their increase is last − base.
            let used = &samples[first_in - 1..last_in];
            if used.windows(2).any(|pair| pair[1].value < pair[0].value) {
                return None;
            }
            let (base, last) = (used[0], used[used.len() - 1]);
            let span_s = (last.t_ms - base.t_ms) as f64 / 1000.0;
            (span_s > 0.0).then(|| sum + (last.value - base.value) / span_s)
        })
    })
}

/// The least minute average of a meter known as intervals `(start ms, end
/// ms, joules)` in time order, power taken as constant within each (the
/// daemon's history of two-point readings); a minute the intervals do not
/// cover without a gap is skipped.
pub fn from_intervals(intervals: &[(i64, i64, f64)]) -> Option<Idle> {
    let span = Window {
        start_ms: intervals.first()?.0,
        end_ms: intervals.last()?.1,
    };
    least(span, |bucket| {
        let from = intervals.partition_point(|&(_, end, _)| end <= bucket.start_ms);
        let (mut joules, mut covered_ms) = (0.0, 0);
        for &(start, end, j) in intervals[from..]
            .iter()
            .take_while(|&&(start, _, _)| start < bucket.end_ms)
        {
            let overlap = end.min(bucket.end_ms) - start.max(bucket.start_ms);
            if overlap > 0 && end > start {
                covered_ms += overlap;
                joules += j * overlap as f64 / (end - start) as f64;
            }
        }
        (covered_ms == BUCKET_MS).then(|| joules / (BUCKET_MS as f64 / 1000.0))
    })
}

/// The least of `power` over the whole minutes of `span` where it is known.
fn least(window: Window, power: impl Fn(Window) -> Option<f64>) -> Option<Idle> {
    let mut least: Option<f64> = None;
    let mut measured = 0;
    for bucket in buckets(window) {
        if let Some(p) = power(bucket) {
            measured += 1;
            least = Some(least.map_or(p, |l| l.min(p)));
        }
    }
    least.map(|watts| Idle {
        watts,
        measured_s: (measured * BUCKET_MS) as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: i64, value: f64) -> Sample {
        Sample { t_ms, value }
    }

    const W: Window = Window {
        start_ms: 0,
        end_ms: 200_000,
    };

    #[test]
    fn gauges_least_fully_covered_bucket() {
        // Every 5 s: 100 W up to 60 s, 40 W from 65 s; samples at 130 and 135 s missing.
        let meter: Vec<Sample> = (-1..40)
            .map(|i| i * 5_000)
            .filter(|t| *t != 130_000 && *t != 135_000)
            .map(|t| s(t, if t <= 60_000 { 100.0 } else { 40.0 }))
            .collect();
        // Bucket 0: 100 W. Bucket 1: 5 s from 100 to 40 W (350 J) + 55 s × 40 W = 2550 J.
        // Bucket 2: the 15 s gap is not bridged with max_gap 10 s.
        let idle = from_gauges(&[&meter], W, 10_000).unwrap();
        assert!((idle.watts - 2550.0 / 60.0).abs() < 1e-9, "{idle:?}");
        assert_eq!(idle.measured_s, 120.0);
        let idle = from_gauges(&[&meter], W, 20_000).unwrap();
        assert!((idle.watts - 40.0).abs() < 1e-9, "{idle:?}");
        assert_eq!(idle.measured_s, 180.0);
        // Two PSUs add up.
        let idle = from_gauges(&[&meter, &meter], W, 10_000).unwrap();
        assert!((idle.watts - 2.0 * 2550.0 / 60.0).abs() < 1e-9);
        assert!(from_gauges(&[&meter[..3]], W, 10_000).is_none());
    }

    #[test]
    fn buckets_are_whole_utc_minutes_inside_the_span() {
        let span = Window {
            start_ms: 30_000,
            end_ms: 200_000,
        };
        let got: Vec<(i64, i64)> = buckets(span).map(|b| (b.start_ms, b.end_ms)).collect();
        assert_eq!(got, [(60_000, 120_000), (120_000, 180_000)]);
        assert_eq!(buckets(W).count(), 3);
    }

    #[test]
    fn intervals_least_minute_with_constant_power_in_each() {
        // 10 s intervals from 5 s on; each at the power of its start time.
        let intervals: Vec<(i64, i64, f64)> = (0..18)
            .map(|i| {
                let t = 5_000 + i * 10_000;
                let watts = match t {
                    ..120_000 => 100.0,
                    120_000..150_000 => 70.0,
                    _ => 90.0,
                };
                (t, t + 10_000, watts * 10.0)
            })
            .collect();
        // Minute [120, 180): the last 5 s of [115, 125) at 100 W, 30 s at
        // 70 W, 25 s at 90 W; [60, 120) is all 100 W; [0, 60) is not whole.
        let expected = (5.0 * 100.0 + 30.0 * 70.0 + 25.0 * 90.0) / 60.0;
        let idle = from_intervals(&intervals).unwrap();
        assert!(
            (idle.watts - expected).abs() < 1e-9,
            "{idle:?} vs {expected}"
        );
        assert_eq!(idle.measured_s, 120.0);
        // A gap: a minute not fully covered is skipped.
        let gap = [(60_000, 90_000, 3000.0), (95_000, 120_000, 250.0)];
        assert_eq!(from_intervals(&gap), None);
        assert_eq!(from_intervals(&[]), None);
    }

    #[test]
    fn counters_power_per_bucket_skipping_drops_and_zones_that_drop_out() {
        // Package: 50 W, every 10 s from -5 s, wrapping at 10 kJ at 75 s;
        // dram: 10 W, missing after 100 s.
        let package: Vec<Sample> = (0..=20)
            .map(|i| s(i * 10_000 - 5_000, (6000.0 + 500.0 * i as f64) % 10_000.0))
            .collect();
        let dram: Vec<Sample> = (0..=10)
            .map(|i| s(i * 10_000 - 2_000, 100.0 * i as f64))
            .collect();
        let idle = from_counters(&[&package, &dram], W).unwrap();
        assert!((idle.watts - 60.0).abs() < 1e-9, "{idle:?}");
        assert_eq!(
            idle.measured_s, 60.0,
            "bucket 1 skipped: package wraps in it; bucket 2: dram drops out"
        );
    }
}
