//! Idle power of a host (`docs/ENERGY.md#idle-power`): the least average
//! power over the whole UTC minutes inside a span, skipping minutes that
//! cannot be measured. extract's span is its window; the daemon's is the
//! history it keeps (`daemon::idle`). For a window that starts on a minute these are the
//! minutes `[start + 60k, start + 60(k+1)]`.

use super::counter::Sample;
use super::gauge::g1;
use crate::window::Window;

/// Length of an idle-power bucket.
pub const BUCKET_MS: i64 = 60_000;

/// A host's idle power in a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Idle {
    /// The least bucket average (or the fit's intercept), watts.
    pub watts: f64,
    /// Seconds of the window in buckets that could be measured (and, for a
    /// fit, whose utilisation is known).
    pub measured_s: f64,
}

/// A measured minute: its start (ms) and the host's average power in it, watts.
pub type Minute = (i64, f64);

/// The whole UTC minutes inside `span`.
pub fn buckets(span: Window) -> impl Iterator<Item = Window> {
    let first = span.start_ms.div_euclid(BUCKET_MS) + i64::from(span.start_ms % BUCKET_MS != 0);
    let last = span.end_ms.div_euclid(BUCKET_MS);
    (first..last).map(|k| Window {
        start_ms: k * BUCKET_MS,
        end_ms: (k + 1) * BUCKET_MS,
    })
}

/// The average of the summed power of `meters` (one host's gauges in watts,
/// e.g. two PSUs) in each whole minute of `window`; a minute any meter does
/// not fully cover (G1 with `max_gap_ms`) is skipped.
pub fn gauge_minutes(meters: &[&[Sample]], window: Window, max_gap_ms: i64) -> Vec<Minute> {
    minutes(window, |bucket| {
        meters.iter().try_fold(0.0, |sum, samples| {
            let g = g1(samples, bucket, max_gap_ms)?;
            let full = (g.covered_s * 1000.0).round() as i64 == BUCKET_MS;
            full.then(|| sum + g.value / (BUCKET_MS as f64 / 1000.0))
        })
    })
}

/// The average of the summed power of `zones` (one host's energy counters
/// in joules) in each whole minute of `window`: each zone's power in a
/// minute is its C1 increase over its span there. A minute is skipped when
/// any zone drops in it (a wrap or a reset, which C1w could only guess at)
/// or has no base or no sample in it (the zone drops out).
pub fn counter_minutes(zones: &[&[Sample]], window: Window) -> Vec<Minute> {
    minutes(window, |bucket| {
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

/// The average over `bucket` of a quantity known as intervals `(start ms,
/// end ms, amount)` in time order, taken as constant within each (joules →
/// watts; busy CPU seconds per CPU → utilisation); none unless the
/// intervals cover the whole bucket.
pub fn interval_average(intervals: &[(i64, i64, f64)], bucket: Window) -> Option<f64> {
    let from = intervals.partition_point(|&(_, end, _)| end <= bucket.start_ms);
    let (mut amount, mut covered_ms) = (0.0, 0);
    for &(start, end, a) in intervals[from..]
        .iter()
        .take_while(|&&(start, _, _)| start < bucket.end_ms)
    {
        let overlap = end.min(bucket.end_ms) - start.max(bucket.start_ms);
        if overlap > 0 && end > start {
            covered_ms += overlap;
            amount += a * overlap as f64 / (end - start) as f64;
        }
    }
    (covered_ms == bucket.len_ms()).then(|| amount / (bucket.len_ms() as f64 / 1000.0))
}

/// `power` in each whole minute of `span` where it is known.
fn minutes(span: Window, power: impl Fn(Window) -> Option<f64>) -> Vec<Minute> {
    buckets(span)
        .filter_map(|bucket| Some((bucket.start_ms, power(bucket)?)))
        .collect()
}

/// `idle_power = "auto"`: the least minute.
pub fn least(minutes: &[Minute]) -> Option<Idle> {
    let watts = minutes.iter().map(|m| m.1).reduce(f64::min)?;
    Some(Idle {
        watts,
        measured_s: minute_seconds(minutes.len()),
    })
}

fn minute_seconds(n: usize) -> f64 {
    (n as i64 * BUCKET_MS) as f64 / 1000.0
}

/// Fewest minutes a fit takes.
pub const FIT_MIN_MINUTES: usize = 10;

/// Least spread (standard deviation) of CPU utilisation a fit takes: a line
/// through one cloud of points is no line.
pub const FIT_MIN_SPREAD: f64 = 0.02;

/// `idle_power = "fit"` (`docs/ENERGY.md#idle-power`): the intercept at 0 %
/// CPU of the least-squares line of the host's power against its CPU
/// utilisation (0 to 1) over the minutes both are known in (`utilisation`:
/// minute start → utilisation), the standard linear power model; never
/// above the least minute (idle power is drawn at every load). None — the
/// caller falls back to the least minute and says so — with fewer than
/// [`FIT_MIN_MINUTES`] such minutes, a spread of utilisation under
/// [`FIT_MIN_SPREAD`], or a negative intercept.
pub fn fit(minutes: &[Minute], utilisation: &std::collections::HashMap<i64, f64>) -> Option<Idle> {
    let mut sums = FitSums::default();
    for &(t, watts) in minutes {
        if let Some(&u) = utilisation.get(&t) {
            sums.add(u, watts);
        }
    }
    sums.fit()
}

/// What a fit needs of its minutes, kept as sums so that the daemon can
/// keep days of minutes in a few numbers per hour and add hours up: the
/// count, the sums of utilisation `u`, power `p`, `u²` and `u·p`, and the
/// least power.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitSums {
    /// Minutes added.
    pub n: u64,
    /// Σu.
    pub u: f64,
    /// Σp, watts.
    pub p: f64,
    /// Σu².
    pub uu: f64,
    /// Σu·p.
    pub up: f64,
    /// The least p, watts (none before the first minute).
    pub least: Option<f64>,
}

impl FitSums {
    /// Adds a minute at utilisation `u` and power `p`.
    pub fn add(&mut self, u: f64, p: f64) {
        self.n += 1;
        self.u += u;
        self.p += p;
        self.uu += u * u;
        self.up += u * p;
        self.least = Some(self.least.map_or(p, |l| l.min(p)));
    }

    /// Adds another set of minutes.
    pub fn merge(&mut self, other: &Self) {
        self.n += other.n;
        self.u += other.u;
        self.p += other.p;
        self.uu += other.uu;
        self.up += other.up;
        self.least = match (self.least, other.least) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The fit of the minutes added (see [`fit`]).
    pub fn fit(&self) -> Option<Idle> {
        if self.n < FIT_MIN_MINUTES as u64 {
            return None;
        }
        let n = self.n as f64;
        let (mean_u, mean_p) = (self.u / n, self.p / n);
        let var_u = (self.uu / n - mean_u * mean_u).max(0.0);
        if var_u.sqrt() < FIT_MIN_SPREAD {
            return None;
        }
        let cov = self.up / n - mean_u * mean_p;
        let intercept = mean_p - cov / var_u * mean_u;
        let least = self.least?;
        (intercept >= 0.0).then(|| Idle {
            watts: intercept.min(least),
            measured_s: minute_seconds(self.n as usize),
        })
    }
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
        let idle = least(&gauge_minutes(&[&meter], W, 10_000)).unwrap();
        assert!((idle.watts - 2550.0 / 60.0).abs() < 1e-9, "{idle:?}");
        assert_eq!(idle.measured_s, 120.0);
        let idle = least(&gauge_minutes(&[&meter], W, 20_000)).unwrap();
        assert!((idle.watts - 40.0).abs() < 1e-9, "{idle:?}");
        assert_eq!(idle.measured_s, 180.0);
        // Two PSUs add up.
        let idle = least(&gauge_minutes(&[&meter, &meter], W, 10_000)).unwrap();
        assert!((idle.watts - 2.0 * 2550.0 / 60.0).abs() < 1e-9);
        assert!(gauge_minutes(&[&meter[..3]], W, 10_000).is_empty());
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
        let from_intervals = |intervals: &[(i64, i64, f64)]| {
            let span = Window {
                start_ms: intervals.first()?.0,
                end_ms: intervals.last()?.1,
            };
            least(&minutes(span, |bucket| interval_average(intervals, bucket)))
        };
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
        let idle = least(&counter_minutes(&[&package, &dram], W)).unwrap();
        assert!((idle.watts - 60.0).abs() < 1e-9, "{idle:?}");
        assert_eq!(
            idle.measured_s, 60.0,
            "bucket 1 skipped: package wraps in it; bucket 2: dram drops out"
        );
    }

    #[test]
    fn fit_recovers_the_idle_power_of_a_host_that_never_idles() {
        // 110 W idle + 90 W at full load; the host runs at 55 to 95 %, its
        // power a little noisy: the least minute is far above idle.
        let mut utilisation = std::collections::HashMap::new();
        let minutes: Vec<Minute> = (0..60)
            .map(|k| {
                let t = k * BUCKET_MS;
                let u = 0.55 + 0.4 * ((k * 37 % 60) as f64 / 60.0);
                let noise = ((k * 13 % 7) as f64 - 3.0) * 0.3;
                utilisation.insert(t, u);
                (t, 110.0 + 90.0 * u + noise)
            })
            .collect();
        let got = fit(&minutes, &utilisation).unwrap();
        assert!((got.watts - 110.0).abs() < 0.02 * 110.0, "{got:?}");
        assert!(least(&minutes).unwrap().watts > 150.0);
        assert_eq!(got.measured_s, 3600.0);
        // Too few minutes with a utilisation, or no spread: no fit.
        assert!(fit(&minutes[..9], &utilisation).is_none());
        let flat: std::collections::HashMap<i64, f64> =
            utilisation.keys().map(|t| (*t, 0.7)).collect();
        assert!(fit(&minutes, &flat).is_none());
    }
}
