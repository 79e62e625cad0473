//! G1: the integral of a gauge over a window (`docs/ENERGY.md#gauges`), and
//! its two-point case between two readings, which the daemon uses.

use super::counter::Sample;
use crate::window::Window;

/// What G1 says a gauge did in a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Integral {
    /// ∫ value dt over the covered parts of the window, in the gauge's unit × seconds.
    pub value: f64,
    /// Seconds of the window covered by bridged sample pairs.
    pub covered_s: f64,
}

/// G1 over `samples` (ascending in time): the piecewise-linear interpolant
/// integrated over exactly `[start, end]` (a segment cut by an edge is
/// interpolated at the edge); a pair more than `max_gap_ms` apart is not
/// bridged and its part of the window is uncovered, as are the parts before
/// the first and after the last sample. A pair exactly `max_gap_ms` apart is
/// bridged. `None` when no time of the window is covered: the gauge did not
/// measure it, whatever samples lie around it (a lone sample inside, the two
/// ends of a longer gap across it), so a reading is never 0 for time unseen.
pub fn g1(samples: &[Sample], window: Window, max_gap_ms: i64) -> Option<Integral> {
    let mut value = 0.0;
    let mut covered_ms = 0;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let from = a.t_ms.max(window.start_ms);
        let to = b.t_ms.min(window.end_ms);
        // `to > from` also means `b` is after `a`.
        if to <= from || b.t_ms - a.t_ms > max_gap_ms {
            continue;
        }
        let at =
            |t: i64| a.value + (b.value - a.value) * (t - a.t_ms) as f64 / (b.t_ms - a.t_ms) as f64;
        value += (at(from) + at(to)) / 2.0 * (to - from) as f64 / 1000.0;
        covered_ms += to - from;
    }
    (covered_ms > 0).then_some(Integral {
        value,
        covered_s: covered_ms as f64 / 1000.0,
    })
}

/// G1 of two readings `p0` at `t0_ms` and `p1` at `t1_ms` (watts → joules):
/// the trapezoid, when the pair is at most `max_gap_ms` apart; `None` (the
/// interval is uncovered) when it is further apart or not after `t0_ms`.
/// The same rule for the models' input and for every exported meter counter,
/// so the two always agree.
pub fn two_point(p0: f64, t0_ms: i64, p1: f64, t1_ms: i64, max_gap_ms: i64) -> Option<f64> {
    let dt_ms = t1_ms - t0_ms;
    (dt_ms > 0 && dt_ms <= max_gap_ms).then(|| (p0 + p1) / 2.0 * dt_ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: i64, value: f64) -> Sample {
        Sample { t_ms, value }
    }

    const W: Window = Window {
        start_ms: 10_000,
        end_ms: 20_000,
    };

    #[test]
    fn edges_are_interpolated() {
        // 100 W flat from 5 s to 25 s: 10 s × 100 W inside the window.
        let got = g1(&[s(5_000, 100.0), s(25_000, 100.0)], W, 300_000).unwrap();
        assert_eq!(got.value, 1000.0);
        assert_eq!(got.covered_s, 10.0);
        // A ramp 0 → 200 W from 0 to 20 s: at 10 s it is 100 W, so the trapezoid is 10 × 150.
        let got = g1(&[s(0, 0.0), s(20_000, 200.0)], W, 300_000).unwrap();
        assert_eq!(got.value, 1500.0);
    }

    #[test]
    fn long_gaps_and_uncovered_tails_count_nothing() {
        let samples = [s(12_000, 10.0), s(14_000, 10.0), s(18_000, 10.0)];
        let got = g1(&samples, W, 3_000).unwrap();
        // [12, 14] bridged; [14, 18] is a 4 s gap > 3 s; before 12 and after 18 uncovered.
        assert_eq!(got.value, 20.0);
        assert_eq!(got.covered_s, 2.0);
        // Exactly max_gap apart is bridged.
        let got = g1(&samples, W, 4_000).unwrap();
        assert_eq!(got.covered_s, 6.0);
        assert!(g1(&[s(0, 1.0), s(5_000, 1.0)], W, 300_000).is_none());
    }

    /// No covered time is no reading, wherever the samples around the
    /// window lie: a window inside a gap longer than the limit is absent
    /// whether its two ends are near (both given) or not, and so is a lone
    /// sample inside it; a window the gap only starts in is a reading of its
    /// covered part.
    #[test]
    fn a_window_with_no_covered_time_has_no_reading() {
        let gap = [s(5_000, 100.0), s(400_000, 100.0)];
        assert!(g1(&gap, W, 300_000).is_none());
        assert!(g1(&gap[..1], W, 300_000).is_none());
        assert!(g1(&gap[1..], W, 300_000).is_none());
        let lone = [s(0, 100.0), s(15_000, 100.0), s(400_000, 100.0)];
        assert!(g1(&lone, W, 10_000).is_none());
        // A sample on the window's end, the one before too far back.
        assert!(g1(&[s(0, 1.0), s(W.end_ms, 1.0)], W, 15_000).is_none());
        let starts = [s(8_000, 100.0), s(12_000, 100.0), s(400_000, 100.0)];
        let got = g1(&starts, W, 300_000).unwrap();
        assert_eq!((got.value, got.covered_s), (200.0, 2.0));
    }

    #[test]
    fn two_points_bridge_only_within_the_gap_limit() {
        assert_eq!(two_point(100.0, 0, 120.0, 10_000, 300_000), Some(1100.0));
        assert_eq!(two_point(100.0, 0, 120.0, 300_000, 300_000), Some(33_000.0));
        assert_eq!(two_point(100.0, 0, 120.0, 300_001, 300_000), None);
        assert_eq!(two_point(100.0, 10, 120.0, 10, 300_000), None);
    }
}
