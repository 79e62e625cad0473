//! C1 (and C1w): the exact increase of a counter over a window, and when a
//! drop is a reset rather than a wrap (`docs/ENERGY.md#counters`,
//! `docs/ENERGY.md#a-reboot-is-not-a-wrap`).

use crate::window::Window;

/// One stored sample of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Milliseconds since the epoch.
    pub t_ms: i64,
    /// The counter's value.
    pub value: f64,
}

/// What C1 says a counter did in a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Increase {
    /// Sum of the deltas of consecutive used samples (a drop counts as a reset or wrap).
    pub value: f64,
    /// Seconds between the first and last used sample.
    pub span_s: f64,
    /// Time of the first used sample (the base, when there is one), ms.
    pub first_ms: i64,
    /// Time of the last used sample, ms.
    pub last_ms: i64,
}

/// C1 over `samples` (ascending in time): the base is the last sample with
/// `t <= start`, then every sample with `start < t <= end`. A drop counts the
/// new value (a reset), or `c + wrap - p` when `wrap` is given (C1w) and the
/// two samples are no further apart than the gap limit ([`delta_between`]).
/// `None` when no sample lies in `(start, end]`: the series is absent.
pub fn c1(samples: &[Sample], window: Window, wrap: Option<f64>) -> Option<Increase> {
    c1_across_boots(samples, window, wrap, &[])
}

/// [`c1`] of a counter whose host booted at `boots` (ms: the first sample
/// of each new boot, where `node_boot_time_seconds` changed): a drop
/// between two samples a boot lies between is a reset, never a wrap.
pub fn c1_across_boots(
    samples: &[Sample],
    window: Window,
    wrap: Option<f64>,
    boots: &[i64],
) -> Option<Increase> {
    let used = used(samples, window)?;
    let value = used
        .windows(2)
        .map(|pair| {
            let (p, c) = (pair[0], pair[1]);
            let booted = boots.iter().any(|&t| t > p.t_ms && t <= c.t_ms);
            let wrap = wrap.filter(|_| !booted);
            delta_between(p.value, c.value, c.t_ms - p.t_ms, wrap, Boot::Unknown)
        })
        .sum();
    let (first_ms, last_ms) = (used[0].t_ms, used[used.len() - 1].t_ms);
    Some(Increase {
        value,
        span_s: (last_ms - first_ms) as f64 / 1000.0,
        first_ms,
        last_ms,
    })
}

/// C1's used samples of `samples` (ascending in time) in `window`: the base
/// (the last sample with `t <= start`, where there is one), then every
/// sample with `start < t <= end`. `None` when no sample lies in
/// `(start, end]`: the series is absent. Its consecutive pairs are what C1
/// adds up, and what GC1 splits among a GPU's holders.
pub fn used(samples: &[Sample], window: Window) -> Option<&[Sample]> {
    let first_in = samples.partition_point(|s| s.t_ms <= window.start_ms);
    let last_in = samples.partition_point(|s| s.t_ms <= window.end_ms);
    (first_in < last_in).then(|| &samples[first_in.saturating_sub(1)..last_in])
}

/// The time of the last of `samples` (ascending in time) where the series
/// has none in `(start, end]` and that one lies in the lookback before
/// `start` (`start − lookback ≤ t ≤ start`): the series stopped at the
/// window's start (`docs/ENERGY.md#record-status`). C1 gives it 0 and no
/// reading ([`used`] is none).
pub fn stopped_at_start(samples: &[Sample], window: Window, lookback_ms: i64) -> Option<i64> {
    let last = samples.iter().rfind(|s| s.t_ms <= window.end_ms)?.t_ms;
    (window.start_ms - lookback_ms <= last && last <= window.start_ms).then_some(last)
}

/// What is known of the host's boots between two samples of a counter
/// (`docs/ENERGY.md#a-reboot-is-not-a-wrap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// Both samples are of one boot: the daemon compared the kernel's boot
    /// id (samples of two boots are never measured, the later is a new
    /// baseline). A counter of one boot goes back only by wrapping.
    Same,
    /// Not known (`extract`, or a daemon without a boot id): a long gap may
    /// hide a reboot.
    Unknown,
}

/// The increase between two consecutive samples of a counter, `dt_ms`
/// apart: a drop is a wrap (C1w) only when the counter is known to wrap
/// (`wrap`) and either both samples are of the same boot or they are at most
/// [`DEFAULT_MAX_GAP_S`] apart. Across a longer gap of unknown boots the
/// host may have rebooted (its counters set back, then counting again), and
/// taking that for a wrap would count up to a whole range of energy that
/// never happened: it is a reset.
///
/// [`DEFAULT_MAX_GAP_S`]: super::DEFAULT_MAX_GAP_S
pub fn delta_between(
    previous: f64,
    current: f64,
    dt_ms: i64,
    wrap: Option<f64>,
    boot: Boot,
) -> f64 {
    let wraps = wrap.filter(|_| boot == Boot::Same || dt_ms <= super::max_gap_ms(None));
    delta(previous, current, wraps)
}

/// The increase between two consecutive values of a counter: a drop counts
/// the new value (a reset), or `current + wrap - previous` with `wrap`.
pub fn delta(previous: f64, current: f64, wrap: Option<f64>) -> f64 {
    if current >= previous {
        current - previous
    } else {
        match wrap {
            Some(range) => current + range - previous,
            None => current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: i64, value: f64) -> Sample {
        Sample { t_ms, value }
    }

    const W: Window = Window {
        start_ms: 1000,
        end_ms: 2000,
    };

    #[test]
    fn base_before_window_and_reset_inside() {
        let got = c1(
            &[
                s(500, 1.0),
                s(900, 2.0),
                s(1500, 5.0),
                s(1700, 1.0),
                s(2000, 3.0),
                s(2100, 9.0),
            ],
            W,
            None,
        )
        .unwrap();
        // base 2 (t=900): +3, reset → +1, +2
        assert_eq!(got.value, 6.0);
        assert_eq!(got.span_s, 1.1);
    }

    #[test]
    fn sample_on_start_is_the_base() {
        let got = c1(&[s(1000, 4.0), s(1500, 6.0)], W, None).unwrap();
        assert_eq!(got.value, 2.0);
        assert_eq!(got.span_s, 0.5);
    }

    /// A series silent in the window whose last sample lies in the lookback
    /// before its start stopped there (`docs/ENERGY.md#record-status`).
    #[test]
    fn stopped_at_start_for_record_status() {
        let lookback = 300;
        assert_eq!(
            stopped_at_start(&[s(600, 1.0), s(900, 2.0)], W, lookback),
            Some(900)
        );
        assert_eq!(
            stopped_at_start(&[s(700, 1.0), s(1000, 2.0)], W, lookback),
            Some(1000)
        );
        assert_eq!(
            stopped_at_start(&[s(500, 1.0), s(700, 2.0)], W, lookback),
            Some(700)
        );
        assert_eq!(
            stopped_at_start(&[s(500, 1.0), s(699, 2.0)], W, lookback),
            None
        );
        assert_eq!(
            stopped_at_start(&[s(900, 1.0), s(1001, 2.0)], W, lookback),
            None
        );
        assert_eq!(
            stopped_at_start(&[s(900, 1.0), s(2500, 2.0)], W, lookback),
            Some(900)
        );
        assert_eq!(stopped_at_start(&[], W, lookback), None);
    }

    #[test]
    fn starts_inside_and_absent() {
        let got = c1(&[s(1200, 10.0), s(1800, 14.0)], W, None).unwrap();
        assert_eq!(got.value, 4.0);
        assert!(c1(&[s(100, 1.0), s(1000, 2.0), s(2500, 3.0)], W, None).is_none());
    }

    #[test]
    fn wrap_aware() {
        let got = c1(&[s(900, 90.0), s(1500, 10.0)], W, Some(100.0)).unwrap();
        assert_eq!(got.value, 20.0);
    }

    #[test]
    fn a_drop_across_a_boot_is_a_reset_even_within_the_gap_limit() {
        let samples = [s(900, 90.0), s(1200, 2.0), s(1500, 10.0), s(1800, 5.0)];
        // Booted at 1200 (seen then); the drop at 1800 is a wrap.
        let got = c1_across_boots(&samples, W, Some(100.0), &[1200]).unwrap();
        assert_eq!(got.value, 2.0 + 8.0 + 95.0);
        assert_eq!(
            c1(&samples, W, Some(100.0)).unwrap().value,
            12.0 + 8.0 + 95.0
        );
    }

    #[test]
    fn a_drop_across_a_long_gap_is_a_reset_not_a_wrap() {
        // A reboot: the counter set back to 1 during 20 minutes without samples.
        let window = Window {
            start_ms: 0,
            end_ms: 3_600_000,
        };
        let samples = [s(0, 90.0), s(1_200_000, 1.0), s(1_215_000, 3.0)];
        let got = c1(&samples, window, Some(100.0)).unwrap();
        assert_eq!(got.value, 3.0, "the reset counts its new value, then +2");
        // Exactly at the gap limit it is still a wrap.
        let samples = [s(0, 90.0), s(300_000, 1.0)];
        assert_eq!(c1(&samples, window, Some(100.0)).unwrap().value, 11.0);
    }
}
