//! An independent reference of `docs/ENERGY.md#gpus`, written from the spec
//! for the tests (never from wattson's code): a card's energy by C1 or G1,
//! and each holder's part of it by GC1 (each used counter pair split by the
//! time each VM held the card in it) or GG1 (G1 over held, bridged time),
//! with shares above 1 scaled to 1. Times in ms, values in J (counters) or
//! W (gauges).

/// One VM's holding of a card as the spec defines it from its info samples.
pub struct RefHolder {
    /// Times of its info samples, ascending.
    pub info: Vec<i64>,
    /// Its share of the card.
    pub share: f64,
}

/// What the reference says of a card over `[start, end]`.
#[derive(Debug)]
pub struct RefCard {
    /// C1 increase, or G1 integral, J.
    pub energy: f64,
    /// G1's covered seconds (C1: its span).
    pub covered_s: f64,
    /// Per holder: joules while held (before its share), and seconds held in the window.
    pub holders: Vec<(f64, f64)>,
}

/// "VM v holds d over [t_i, t_(i+1)] when two consecutive samples are at most
/// max_gap apart."
fn holds(h: &RefHolder, t: f64, max_gap: i64) -> bool {
    h.info
        .windows(2)
        .any(|w| w[1] - w[0] <= max_gap && (w[0] as f64) < t && t < w[1] as f64)
}

/// Every time in `(from, to)` at which some holder's holding starts or stops.
fn cuts(holders: &[RefHolder], from: i64, to: i64) -> Vec<i64> {
    let mut at: Vec<i64> = vec![from, to];
    for h in holders {
        at.extend(h.info.iter().copied().filter(|t| *t > from && *t < to));
    }
    at.sort_unstable();
    at.dedup();
    at
}

/// The factor of each holder in `[a, b]` (tested at its middle): its
/// presence, scaled by 1 / Σ shares where those add up to more than 1.
fn factors(holders: &[RefHolder], a: i64, b: i64, max_gap: i64) -> Vec<f64> {
    let mid = (a as f64 + b as f64) / 2.0;
    let on: Vec<bool> = holders.iter().map(|h| holds(h, mid, max_gap)).collect();
    let total: f64 = holders
        .iter()
        .zip(&on)
        .filter(|(_, on)| **on)
        .map(|(h, _)| h.share)
        .sum();
    let scale = if total > 1.0 { 1.0 / total } else { 1.0 };
    on.iter().map(|on| if *on { scale } else { 0.0 }).collect()
}

fn held_s(h: &RefHolder, start: i64, end: i64, max_gap: i64) -> f64 {
    h.info
        .windows(2)
        .filter(|w| w[1] - w[0] <= max_gap)
        .map(|w| (w[1].min(end) - w[0].max(start)).max(0) as f64 / 1000.0)
        .sum()
}

/// GC1 of counter `samples` (J) over `[start, end]`; `None` if absent.
pub fn gc1(
    samples: &[(i64, f64)],
    start: i64,
    end: i64,
    holders: &[RefHolder],
    max_gap: i64,
) -> Option<RefCard> {
    let base = samples.iter().rev().find(|s| s.0 <= start).copied();
    let inside: Vec<(i64, f64)> = samples
        .iter()
        .filter(|s| s.0 > start && s.0 <= end)
        .copied()
        .collect();
    if inside.is_empty() {
        return None;
    }
    let used: Vec<(i64, f64)> = base.into_iter().chain(inside).collect();
    let mut energy = 0.0;
    let mut joules = vec![0.0; holders.len()];
    for w in used.windows(2) {
        let ((tp, p), (tc, c)) = (w[0], w[1]);
        let d = if c >= p { c - p } else { c };
        energy += d;
        let at = cuts(holders, tp, tc);
        for piece in at.windows(2) {
            let part = d * (piece[1] - piece[0]) as f64 / (tc - tp) as f64;
            for (j, f) in joules
                .iter_mut()
                .zip(factors(holders, piece[0], piece[1], max_gap))
            {
                *j += part * f;
            }
        }
    }
    let span = (used[used.len() - 1].0 - used[0].0) as f64 / 1000.0;
    Some(RefCard {
        energy,
        covered_s: span,
        holders: joules
            .into_iter()
            .zip(holders)
            .map(|(j, h)| (j, held_s(h, start, end, max_gap)))
            .collect(),
    })
}

/// GG1 of gauge `samples` (W) over `[start, end]`; `None` if absent.
pub fn gg1(
    samples: &[(i64, f64)],
    start: i64,
    end: i64,
    holders: &[RefHolder],
    max_gap: i64,
) -> Option<RefCard> {
    let touches = samples
        .windows(2)
        .any(|w| w[0].0.max(start) < w[1].0.min(end))
        || samples.iter().any(|s| s.0 >= start && s.0 <= end);
    if !touches {
        return None;
    }
    let mut energy = 0.0;
    let mut covered = 0;
    let mut joules = vec![0.0; holders.len()];
    for w in samples.windows(2) {
        let ((ta, va), (tb, vb)) = (w[0], w[1]);
        let (from, to) = (ta.max(start), tb.min(end));
        if to <= from || tb - ta > max_gap {
            continue;
        }
        let x = |t: i64| va + (vb - va) * (t - ta) as f64 / (tb - ta) as f64;
        let area = |a: i64, b: i64| (x(a) + x(b)) / 2.0 * (b - a) as f64 / 1000.0;
        energy += area(from, to);
        covered += to - from;
        for piece in cuts(holders, from, to).windows(2) {
            let part = area(piece[0], piece[1]);
            for (j, f) in joules
                .iter_mut()
                .zip(factors(holders, piece[0], piece[1], max_gap))
            {
                *j += part * f;
            }
        }
    }
    Some(RefCard {
        energy,
        covered_s: covered as f64 / 1000.0,
        holders: joules
            .into_iter()
            .zip(holders)
            .map(|(j, h)| (j, held_s(h, start, end, max_gap)))
            .collect(),
    })
}

/// A card measured by several series one after another (a card handed
/// between guests, each with its own DCGM): their energy and each holder's
/// joules add up; the seconds held are the holders' own.
pub fn added(parts: impl IntoIterator<Item = RefCard>) -> Option<RefCard> {
    parts.into_iter().reduce(|mut sum, part| {
        sum.energy += part.energy;
        sum.covered_s += part.covered_s;
        for (s, p) in sum.holders.iter_mut().zip(part.holders) {
            s.0 += p.0;
        }
        sum
    })
}
