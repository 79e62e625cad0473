//! What the daemon learns of its host's idle power
//! (`docs/ENERGY.md#idle-power`): every whole UTC minute its meter's
//! intervals cover, with the host's CPU utilisation in it where
//! `/proc/stat` was read, folded into sums per hour that are kept for
//! `[daemon] idle_horizon_secs` and persisted with the counters, so a
//! restart does not start over. `auto` is the least minute of the horizon,
//! `fit` the line through all of its minutes (one rule with extract's:
//! [`crate::energy::idle`]).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::energy::idle::{BUCKET_MS, FitSums, Idle, buckets, interval_average};
use crate::window::Window;

const HOUR_MS: i64 = 3_600_000;

/// Per meter (measurement name): what was learned.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IdleHistory {
    meters: BTreeMap<String, Learned>,
    /// `[daemon] idle_horizon_secs`, ms (set from the policy at start and reload).
    #[serde(skip)]
    horizon_ms: Option<i64>,
    /// What was said about `fit` falling back, so it is said once.
    #[serde(skip)]
    said: Option<Unfit>,
    /// Whether the wait for the first whole minute was said.
    #[serde(skip)]
    said_waiting: bool,
}

/// Why `fit` fell back to the least minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unfit {
    /// No minute has a CPU utilisation (`/proc/stat` unread).
    NoUtilisation,
    /// Too few minutes yet, too steady a load, or a negative intercept.
    NoLine,
}

/// One meter's minutes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Learned {
    /// Per hour, oldest first.
    hours: VecDeque<Hour>,
    /// Intervals not yet folded into whole minutes, in time order.
    pending: Vec<Pending>,
    /// The first minute not folded yet, ms.
    next_minute_ms: i64,
}

/// The minutes of one hour.
#[derive(Debug, Serialize, Deserialize)]
struct Hour {
    start_ms: i64,
    /// Minutes measured, and the least of them, watts.
    minutes: u64,
    least_w: f64,
    /// The minutes with a CPU utilisation, for `fit`.
    fit: FitSums,
}

/// An interval of the meter: its joules, and the host's busy CPU seconds
/// per CPU in it (utilisation × seconds) where known.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Pending {
    start_ms: i64,
    end_ms: i64,
    joules: f64,
    busy_s: Option<f64>,
}

/// The default horizon: 7 days.
const DEFAULT_HORIZON_MS: i64 = 7 * 86_400_000;

impl IdleHistory {
    /// Sets how far back minutes are kept.
    pub fn set_horizon_secs(&mut self, secs: u64) {
        self.horizon_ms = Some(secs as i64 * 1000);
    }

    /// Adds an interval of `meter` with its joules and the host's CPU
    /// utilisation in it (0 to 1) where known; folds the whole minutes it
    /// completes and forgets hours older than the horizon. An interval
    /// that ends before what is folded (a clock stepped back) teaches nothing.
    pub fn push(&mut self, meter: &str, window: Window, joules: f64, utilisation: Option<f64>) {
        let horizon_ms = self.horizon_ms.unwrap_or(DEFAULT_HORIZON_MS);
        let learned = self.meters.entry(meter.to_owned()).or_default();
        if window.end_ms <= learned.next_minute_ms || window.len_ms() <= 0 {
            return;
        }
        let seconds = window.len_ms() as f64 / 1000.0;
        learned.pending.push(Pending {
            start_ms: window.start_ms,
            end_ms: window.end_ms,
            joules,
            busy_s: utilisation.map(|u| u * seconds),
        });
        learned.fold(window.end_ms);
        let forget_before = window.end_ms - horizon_ms;
        while learned
            .hours
            .front()
            .is_some_and(|h| h.start_ms + HOUR_MS <= forget_before)
        {
            learned.hours.pop_front();
        }
    }

    /// `auto`: the least minute of the horizon.
    pub fn least(&self, meter: &str) -> Option<Idle> {
        let hours = &self.meters.get(meter)?.hours;
        let watts = hours.iter().map(|h| h.least_w).reduce(f64::min)?;
        let minutes: u64 = hours.iter().map(|h| h.minutes).sum();
        Some(Idle {
            watts,
            measured_s: (minutes as i64 * BUCKET_MS) as f64 / 1000.0,
        })
    }

    /// `fit`: the line through the horizon's minutes with a utilisation,
    /// else (said once) the least minute.
    pub fn fit(&mut self, meter: &str) -> Option<Idle> {
        let learned = self.meters.get(meter)?;
        let mut sums = FitSums::default();
        for hour in &learned.hours {
            sums.merge(&hour.fit);
        }
        if let Some(idle) = sums.fit() {
            if self.said.take().is_some() {
                tracing::info!(
                    measurement = meter,
                    watts = idle.watts,
                    minutes = sums.n,
                    "idle_power = \"fit\": the line of power against CPU utilisation fits now"
                );
            }
            return Some(idle);
        }
        let why = if sums.n == 0 {
            Unfit::NoUtilisation
        } else {
            Unfit::NoLine
        };
        if self.said != Some(why) {
            self.said = Some(why);
            match why {
                Unfit::NoUtilisation => tracing::warn!(
                    measurement = meter,
                    "idle_power = \"fit\": no minute has the host's CPU utilisation (is \
                     [daemon] proc_stat_file readable?): the least minute is the idle power"
                ),
                Unfit::NoLine => tracing::info!(
                    measurement = meter,
                    minutes = sums.n,
                    "idle_power = \"fit\": no line yet (it takes {} minutes of varied load): \
                     the least minute is the idle power until then",
                    crate::energy::idle::FIT_MIN_MINUTES
                ),
            }
        }
        self.least(meter)
    }
}

impl IdleHistory {
    /// The idle power before `meter`'s first whole minute is measured: 0,
    /// so all energy is split by CPU time; said once.
    pub fn not_yet(&mut self, meter: &str) -> f64 {
        if !std::mem::replace(&mut self.said_waiting, true) {
            tracing::info!(
                measurement = meter,
                "learning the host's idle power: until its first whole minute is measured, all \
                 energy is split by CPU time"
            );
        }
        0.0
    }
}

impl Learned {
    /// Folds every whole minute up to `end_ms` that the pending intervals
    /// reach; a minute they do not wholly cover is skipped.
    fn fold(&mut self, end_ms: i64) {
        let Some(first) = self.pending.first() else {
            return;
        };
        // The whole minutes from the first not folded yet (or the first
        // pending interval's start) up to `end_ms`.
        let span = Window {
            start_ms: self.next_minute_ms.max(first.start_ms),
            end_ms,
        };
        let joules: Vec<(i64, i64, f64)> = self
            .pending
            .iter()
            .map(|p| (p.start_ms, p.end_ms, p.joules))
            .collect();
        let busy: Vec<(i64, i64, f64)> = self
            .pending
            .iter()
            .filter_map(|p| Some((p.start_ms, p.end_ms, p.busy_s?)))
            .collect();
        for bucket in buckets(span) {
            if let Some(watts) = interval_average(&joules, bucket) {
                self.add(bucket.start_ms, watts, interval_average(&busy, bucket));
            }
            self.next_minute_ms = bucket.end_ms;
        }
        let folded = self.next_minute_ms;
        self.pending.retain(|p| p.end_ms > folded);
    }

    /// One measured minute.
    fn add(&mut self, minute_ms: i64, watts: f64, utilisation: Option<f64>) {
        let start_ms = minute_ms.div_euclid(HOUR_MS) * HOUR_MS;
        if self.hours.back().is_none_or(|h| h.start_ms < start_ms) {
            self.hours.push_back(Hour {
                start_ms,
                minutes: 0,
                least_w: watts,
                fit: FitSums::default(),
            });
        }
        let Some(hour) = self.hours.back_mut().filter(|h| h.start_ms == start_ms) else {
            return;
        };
        hour.minutes += 1;
        hour.least_w = hour.least_w.min(watts);
        if let Some(u) = utilisation {
            hour.fit.add(u, watts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start_ms: i64, end_ms: i64) -> Window {
        Window { start_ms, end_ms }
    }

    #[test]
    fn minutes_are_folded_as_the_intervals_reach_them() {
        let mut history = IdleHistory::default();
        // 10 s intervals from 5 s: 100 W up to 120 s, then 70 W.
        for i in 0..30 {
            let t = 5_000 + i * 10_000;
            let watts = if t < 120_000 { 100.0 } else { 70.0 };
            history.push("rapl", w(t, t + 10_000), watts * 10.0, Some(0.5));
        }
        // [60, 120) at 100 W; [120, 180), [180, 240), [240, 300) at 70 W
        // but for the first 5 s of [115, 125) at 100 W; [0, 60) not whole.
        let least = history.least("rapl").unwrap();
        assert_eq!(least.watts, 70.0);
        assert_eq!(least.measured_s, 240.0);
        // One utilisation throughout: no line, so `fit` is the least minute.
        assert_eq!(history.fit("rapl").map(|i| i.watts), Some(70.0));
        assert!(history.least("ipmi").is_none());
    }

    #[test]
    fn the_fit_spans_hours_and_forgets_what_is_past_the_horizon() {
        let mut history = IdleHistory::default();
        history.set_horizon_secs(2 * 3600);
        // One minute intervals for 3 hours: 110 W idle + 90 W × utilisation,
        // the load between 40 and 90 %; the first hour draws 20 W more.
        for k in 0..180 {
            let t = k * 60_000;
            let u = 0.4 + 0.5 * ((k * 37 % 60) as f64 / 60.0);
            let extra = if k < 60 { 20.0 } else { 0.0 };
            history.push(
                "ipmi",
                w(t, t + 60_000),
                (110.0 + extra + 90.0 * u) * 60.0,
                Some(u),
            );
        }
        let fitted = history.fit("ipmi").unwrap();
        assert!((fitted.watts - 110.0).abs() < 1e-6, "{fitted:?}");
        assert_eq!(
            fitted.measured_s,
            2.0 * 3600.0,
            "the first hour is forgotten"
        );
        assert!(history.least("ipmi").unwrap().watts > 140.0);
        // Persisted and loaded, it goes on where it was.
        let text = serde_json::to_string(&history).unwrap();
        let mut loaded: IdleHistory = serde_json::from_str(&text).unwrap();
        assert_eq!(loaded.fit("ipmi"), Some(fitted));
        // No utilisation: the least minute.
        let mut blind = IdleHistory::default();
        for k in 0..30 {
            blind.push(
                "ipmi",
                w(k * 60_000, (k + 1) * 60_000),
                6000.0 + k as f64,
                None,
            );
        }
        assert_eq!(blind.fit("ipmi").map(|i| i.watts), Some(100.0));
        // A clock stepped back teaches nothing.
        blind.push("ipmi", w(0, 60_000), 60.0, None);
        assert_eq!(blind.least("ipmi").map(|i| i.watts), Some(100.0));
    }
}
