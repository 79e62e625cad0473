//! A GPU's energy split among the VMs that held it (`docs/ENERGY.md#gpus`):
//! holding from info samples, GC1 (each of C1's used pairs split by holding
//! time) and GG1 (G1 restricted to held time), with shares above 1 scaled.
//! The card's own energy is plain C1 ([`super::counter`]) or G1
//! ([`super::gauge`]); this only says whose it was.

use super::counter::{self, Increase, Sample};
use super::gauge::{self, Integral};
use crate::window::Window;

/// One holder of a card: when it held it and what part of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Holder {
    /// Held intervals, ms, ascending and disjoint ([`held_intervals`]).
    pub held: Vec<(i64, i64)>,
    /// The part of the card held (1: the whole card).
    pub share: f64,
}

/// A card's energy and each holder's joules of it (before its share).
#[derive(Clone, Debug, PartialEq)]
pub struct Split<R> {
    /// The card's reading: C1's increase or G1's integral.
    pub energy: R,
    /// Per holder, in [`Holder`] order: the card's joules while it held it,
    /// scaled where the holders' shares add up to more than 1.
    pub joules: Vec<f64>,
    /// Some stretch of time had holders whose shares add up to more than 1.
    pub overcommitted: bool,
}

/// The intervals a VM holds a card over, from the times of its info
/// samples (ascending): two consecutive samples at most `max_gap_ms` apart
/// hold it between them; a lone sample holds nothing. Touching intervals
/// are merged.
pub fn held_intervals(times: &[i64], max_gap_ms: i64) -> Vec<(i64, i64)> {
    let mut held: Vec<(i64, i64)> = Vec::new();
    for pair in times.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b <= a || b - a > max_gap_ms {
            continue;
        }
        match held.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => held.push((a, b)),
        }
    }
    held
}

/// Seconds of `window` within `held`.
pub fn held_s(held: &[(i64, i64)], window: Window) -> f64 {
    held.iter()
        .map(|&(a, b)| (b.min(window.end_ms) - a.max(window.start_ms)).max(0))
        .sum::<i64>() as f64
        / 1000.0
}

/// Whether the same holders hold the card all of `[from, to]` (nobody, one
/// VM, or several that neither come nor go): then a span's energy splits as
/// its pairs' would, and no pair is needed.
pub fn steady(holders: &[Holder], from: i64, to: i64) -> bool {
    let pieces = pieces(holders, from, to);
    pieces.windows(2).all(|p| p[0].holders == p[1].holders)
}

/// Splits `joules` drawn evenly over `[from, to]` among `holders`
/// (`joules` added to each holder's entry of `into`); true when the shares
/// of some piece add up to more than 1.
pub fn split_evenly(joules: f64, from: i64, to: i64, holders: &[Holder], into: &mut [f64]) -> bool {
    let length = (to - from) as f64;
    if length <= 0.0 {
        return false;
    }
    let mut over = false;
    for piece in pieces(holders, from, to) {
        over |= piece.scale < 1.0;
        let part = joules * (piece.to - piece.from) as f64 / length * piece.scale;
        for &h in &piece.holders {
            into[h] += part;
        }
    }
    over
}

/// GC1: C1 of `samples` (a GPU's energy counter, in joules; a drop is a
/// reset, it never wraps) over `window`, each used pair's increase split
/// among `holders` by the time each held the card within it. `None` when the
/// series is absent in `window`.
pub fn gc1(samples: &[Sample], window: Window, holders: &[Holder]) -> Option<Split<Increase>> {
    let energy = counter::c1(samples, window, None)?;
    let used = counter::used(samples, window)?;
    let mut joules = vec![0.0; holders.len()];
    let mut overcommitted = false;
    for pair in used.windows(2) {
        let (p, c) = (pair[0], pair[1]);
        let d = counter::delta(p.value, c.value, None);
        overcommitted |= split_evenly(d, p.t_ms, c.t_ms, holders, &mut joules);
    }
    Some(Split {
        energy,
        joules,
        overcommitted,
    })
}

/// GG1: G1 of `samples` (a GPU's power gauge, in watts) over `window`,
/// each holder getting the integral over the bridged time it held the card.
/// `None` when the series is absent in `window`.
pub fn gg1(
    samples: &[Sample],
    window: Window,
    max_gap_ms: i64,
    holders: &[Holder],
) -> Option<Split<Integral>> {
    let energy = gauge::g1(samples, window, max_gap_ms)?;
    let mut joules = vec![0.0; holders.len()];
    let mut overcommitted = false;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (from, to) = (a.t_ms.max(window.start_ms), b.t_ms.min(window.end_ms));
        if to <= from || b.t_ms <= a.t_ms || b.t_ms - a.t_ms > max_gap_ms {
            continue;
        }
        for piece in pieces(holders, from, to) {
            if piece.holders.is_empty() {
                continue;
            }
            overcommitted |= piece.scale < 1.0;
            // G1 of this segment over the piece: its interpolant's integral there.
            let part = Window {
                start_ms: piece.from,
                end_ms: piece.to,
            };
            let value = gauge::g1(&[a, b], part, max_gap_ms).map_or(0.0, |i| i.value);
            for &h in &piece.holders {
                joules[h] += value * piece.scale;
            }
        }
    }
    Some(Split {
        energy,
        joules,
        overcommitted,
    })
}

/// A stretch of time in which the same holders hold the card.
struct Piece {
    from: i64,
    to: i64,
    /// Indices into the holders.
    holders: Vec<usize>,
    /// 1, or 1 / Σ shares where they add up to more than 1.
    scale: f64,
}

/// `[from, to]` cut at every edge of every holder's intervals.
fn pieces(holders: &[Holder], from: i64, to: i64) -> Vec<Piece> {
    let mut edges = vec![from, to];
    for h in holders {
        for &(a, b) in &h.held {
            edges.extend([a, b].into_iter().filter(|t| *t > from && *t < to));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    edges
        .windows(2)
        .map(|e| {
            let (a, b) = (e[0], e[1]);
            let holding: Vec<usize> = holders
                .iter()
                .enumerate()
                .filter(|(_, h)| h.held.iter().any(|&(x, y)| x <= a && b <= y))
                .map(|(i, _)| i)
                .collect();
            let shares: f64 = holding.iter().map(|&i| holders[i].share).sum();
            Piece {
                from: a,
                to: b,
                holders: holding,
                scale: if shares > 1.0 { 1.0 / shares } else { 1.0 },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn every_15s(from: i64, to: i64, watts: f64) -> Vec<Sample> {
        (0..)
            .map(|k| from + 15 * S * k)
            .take_while(|t| *t <= to)
            .map(|t| Sample {
                t_ms: t,
                value: watts * (t - from) as f64 / 1000.0,
            })
            .collect()
    }

    const W: Window = Window {
        start_ms: 0,
        end_ms: 3600 * S,
    };

    #[test]
    fn holding_needs_two_samples_within_the_gap() {
        let held = held_intervals(&[0, 10, 20, 400, 410, 900], 15);
        assert_eq!(held, [(0, 20), (400, 410)]);
        assert!(held_intervals(&[5], 15).is_empty());
        assert_eq!(held_s(&[(-10 * S, 1790 * S)], W), 1790.0);
    }

    /// ENERGY.md's card B: handed over mid-window, a driver reload inside
    /// y's time, one unheld pair.
    #[test]
    fn the_spec_example_card_b() {
        // Reloaded between 2390 s and 2405 s: the counter restarts, 1 200 J at 2405 s.
        let samples: Vec<Sample> = every_15s(-10 * S, 3605 * S, 200.0)
            .into_iter()
            .map(|s| Sample {
                t_ms: s.t_ms,
                value: if s.t_ms >= 2405 * S {
                    1200.0 + 200.0 * (s.t_ms - 2405 * S) as f64 / 1000.0
                } else {
                    s.value
                },
            })
            .collect();
        let times =
            |from: i64, to: i64| -> Vec<i64> { (from..=to).step_by(15).map(|t| t * S).collect() };
        let x = Holder {
            held: held_intervals(&times(-10, 1790), 300 * S),
            share: 1.0,
        };
        let y = Holder {
            held: held_intervals(&times(1805, 3590), 300 * S),
            share: 1.0,
        };
        let split = gc1(&samples, W, &[x, y]).unwrap();
        assert!((split.joules[0] - 360_000.0).abs() < 1e-6, "{split:?}");
        assert!((split.joules[1] - 355_200.0).abs() < 1e-6, "{split:?}");
        let unheld = split.energy.value - split.joules.iter().sum::<f64>();
        assert!((unheld - 3_000.0).abs() < 1e-6, "{split:?}");
        assert!(!split.overcommitted);
    }

    #[test]
    fn shares_above_one_are_scaled_and_said() {
        let samples = every_15s(-10 * S, 3605 * S, 100.0);
        let all = vec![(-10 * S, 3590 * S)];
        let twice = [
            Holder {
                held: all.clone(),
                share: 1.0,
            },
            Holder {
                held: all.clone(),
                share: 1.0,
            },
        ];
        let split = gc1(&samples, W, &twice).unwrap();
        assert!(split.overcommitted);
        assert!((split.joules[0] - 180_000.0).abs() < 1e-6);
        assert!(steady(&twice, -10 * S, 3590 * S));
        assert!(!steady(&twice[..1], -10 * S, 3600 * S));
    }

    #[test]
    fn a_gauge_splits_only_held_bridged_time() {
        // 100 W at 0, 60 and 120 s; a 10-minute gap, then 720 s and 780 s.
        let samples: Vec<Sample> = [0, 60, 120, 720, 780]
            .into_iter()
            .map(|t| Sample {
                t_ms: t * S,
                value: 100.0,
            })
            .collect();
        let window = Window {
            start_ms: 0,
            end_ms: 780 * S,
        };
        let holder = Holder {
            held: vec![(30 * S, 750 * S)],
            share: 1.0,
        };
        let split = gg1(&samples, window, 300 * S, &[holder]).unwrap();
        assert_eq!(split.energy.value, 100.0 * 180.0);
        assert_eq!(split.energy.covered_s, 180.0);
        // Held and bridged: [30, 120] and [720, 750].
        assert!((split.joules[0] - 100.0 * 120.0).abs() < 1e-9);
    }
}
