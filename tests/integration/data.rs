//! Life-like test data and the ENERGY.md rules written out independently of
//! the code under test.

use super::prometheus::TestSeries;

/// 2025-06-01T00:00:00Z.
pub const T0: i64 = 1_748_736_000_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
/// Longest gauge sample gap G1 bridges (Prometheus' staleness).
pub const MAX_GAP_MS: i64 = 300_000;
pub const METRIC: &str = "libvirt_domain_info_energy_consumption_joules";

/// A small deterministic generator (xorshift64*), so data differ per series but not per run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How one VM's counter behaves.
pub struct VmShape<'a> {
    pub uuid: &'a str,
    pub project: &'a str,
    /// First and last scrape time (before jitter).
    pub from_ms: i64,
    pub to_ms: i64,
    /// Times at which the counter restarts from 0.
    pub resets_at: &'a [i64],
    /// Scrape gaps `[from, to)` with no samples.
    pub gaps: &'a [(i64, i64)],
    /// Counter value at the first sample.
    pub initial: f64,
    pub seed: u64,
}

/// Samples every 15 s with a per-series phase and ±0.4 s jitter; power 10–200 W with noise.
pub fn counter_series(shape: &VmShape<'_>) -> TestSeries {
    let mut rng = Rng::new(shape.seed);
    let phase = (rng.next_f64() * 15_000.0) as i64;
    let watts = 10.0 + rng.next_f64() * 190.0;
    let mut samples = Vec::new();
    let mut value = shape.initial;
    let mut last_t: Option<i64> = None;
    let mut resets = shape.resets_at.iter().peekable();
    let mut t = shape.from_ms + phase;
    while t <= shape.to_ms {
        let jitter = ((rng.next_f64() - 0.5) * 800.0) as i64;
        let ts = t + jitter;
        if !shape.gaps.iter().any(|&(a, b)| ts >= a && ts < b) {
            if let Some(prev) = last_t {
                let dt = (ts - prev) as f64 / 1000.0;
                let joules = dt * watts * (0.9 + 0.2 * rng.next_f64());
                if resets.peek().is_some_and(|&&r| r <= ts) {
                    resets.next();
                    value = joules * 0.3;
                } else {
                    value += joules;
                }
            }
            samples.push((ts, value));
            last_t = Some(ts);
        }
        t += 15_000;
    }
    TestSeries {
        labels: vec![
            ("uuid".into(), shape.uuid.into()),
            ("project_id".into(), shape.project.into()),
            ("instance".into(), "cmp-01:9177".into()),
        ],
        samples,
    }
}

/// C1 of ENERGY.md: base = last sample with t <= start, then every sample in
/// (start, end]; a drop counts the new value. None when no sample is in (start, end].
pub fn c1(samples: &[(i64, f64)], start: i64, end: i64) -> Option<f64> {
    let base = samples.iter().rfind(|(t, _)| *t <= start).copied();
    let inside: Vec<(i64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t > start && *t <= end)
        .copied()
        .collect();
    if inside.is_empty() {
        return None;
    }
    let mut used = Vec::new();
    used.extend(base);
    used.extend(inside);
    let mut total = 0.0;
    for pair in used.windows(2) {
        let (p, c) = (pair[0].1, pair[1].1);
        total += if c >= p { c - p } else { c };
    }
    Some(total)
}

/// |a − b| / max(|a|, |b|).
pub fn rel_err(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 {
        0.0
    } else {
        (a - b).abs() / scale
    }
}

/// G1 of ENERGY.md, written out as a millisecond-step integration of the
/// interpolant where consecutive samples are at most MAX_GAP_MS (300 s)
/// apart: (joules, covered seconds).
pub fn g1(samples: &[(i64, f64)], start: i64, end: i64) -> (f64, f64) {
    let mut joules = 0.0;
    let mut covered_ms = 0;
    let mut i = 0;
    for t in start..end {
        while i + 1 < samples.len() && samples[i + 1].0 <= t {
            i += 1;
        }
        if i + 1 >= samples.len() || samples[i].0 > t {
            continue;
        }
        let ((t0, v0), (t1, v1)) = (samples[i], samples[i + 1]);
        if t1 - t0 > MAX_GAP_MS || t + 1 > t1 {
            continue;
        }
        let at = |x: i64| v0 + (v1 - v0) * (x - t0) as f64 / (t1 - t0) as f64;
        joules += (at(t) + at(t + 1)) / 2.0 * 0.001;
        covered_ms += 1;
    }
    (joules, covered_ms as f64 / 1000.0)
}
