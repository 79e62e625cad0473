//! G1 of ENERGY.md: the integral of a gauge over a window.

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
/// bridged. `None` when no segment touches the window.
pub fn g1(samples: &[Sample], window: Window, max_gap_ms: i64) -> Option<Integral> {
    let mut value = 0.0;
    let mut covered_ms = 0;
    let mut touched = false;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let from = a.t_ms.max(window.start_ms);
        let to = b.t_ms.min(window.end_ms);
        if to <= from || b.t_ms <= a.t_ms {
            continue;
        }
        touched = true;
        if b.t_ms - a.t_ms > max_gap_ms {
            continue;
        }
        let at =
            |t: i64| a.value + (b.value - a.value) * (t - a.t_ms) as f64 / (b.t_ms - a.t_ms) as f64;
        value += (at(from) + at(to)) / 2.0 * (to - from) as f64 / 1000.0;
        covered_ms += to - from;
    }
    let inside = samples
        .iter()
        .any(|s| s.t_ms >= window.start_ms && s.t_ms <= window.end_ms);
    (touched || inside).then_some(Integral {
        value,
        covered_s: covered_ms as f64 / 1000.0,
    })
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
}
