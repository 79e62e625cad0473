//! Where a VM stood in a window, and how long the window saw it
//! (`docs/ENERGY.md#record-status`, `docs/ENERGY.md#presence`).

use crate::runtime::Status;
use crate::window::Window;

/// What is known of a VM's life in a window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// Its counters' first and last used sample, ms (none when known only
    /// from gauges or templates).
    pub times: Option<(i64, i64)>,
    /// When the inventory says it ended, ms.
    pub ended_ms: Option<i64>,
    /// Its domain is shut off.
    pub shut_off: bool,
    /// The cloud API's (launched, terminated) times, ms: where given, they
    /// decide.
    pub lifetime: Option<(Option<i64>, Option<i64>)>,
}

/// Where the cloud's API gives a VM's lifetime, it decides: `completed` when
/// it was terminated by the window's end, `started` when it was launched
/// after its start, else `running`. Otherwise:
/// `completed` when the VM's counters stop inside the window (no sample in
/// the last `lookback_ms` before its end), its domain is shut off or the
/// inventory says it ended by the window's end; else `started` when its
/// counters start inside the window (first used sample after its start);
/// else `running`. A VM known only from gauges or templates is `running`
/// unless the inventory says otherwise.
pub fn status(window: Window, lookback_ms: i64, seen: Seen) -> Status {
    if let Some((launched, terminated)) = seen.lifetime {
        return if terminated.is_some_and(|t| t <= window.end_ms) {
            Status::Completed
        } else if launched.is_some_and(|t| t > window.start_ms) {
            Status::Started
        } else {
            Status::Running
        };
    }
    let stopped = seen
        .times
        .is_some_and(|(_, last)| last < window.end_ms - lookback_ms);
    if seen.shut_off || stopped || seen.ended_ms.is_some_and(|t| t <= window.end_ms) {
        Status::Completed
    } else if seen.times.is_some_and(|(first, _)| first > window.start_ms) {
        Status::Started
    } else {
        Status::Running
    }
}

/// Whether a VM that none of its counters measured in the window, though
/// one had its last sample in the lookback before its start
/// (`start − lookback ≤ t ≤ start`, that sample in `seen.times`), is
/// `completed` in it: the window before, ending at `start`, called it
/// `running` for that sample, so this one says it stopped. Where the cloud's
/// API gives its lifetime, only a termination inside the window does (one
/// by `start` was the window before's to say); otherwise the rules of
/// [`status`] do, unless its domain is shut off or the inventory says it
/// ended by `start`, which the window before said already.
pub fn completed_at_start(window: Window, lookback_ms: i64, seen: Seen) -> bool {
    let Some((_, last)) = seen.times else {
        return false;
    };
    if last < window.start_ms - lookback_ms || last > window.start_ms {
        return false;
    }
    if let Some((_, terminated)) = seen.lifetime {
        return terminated.is_some_and(|t| window.start_ms < t && t <= window.end_ms);
    }
    let said_before = seen.shut_off || seen.ended_ms.is_some_and(|t| t <= window.start_ms);
    !said_before && status(window, lookback_ms, seen) == Status::Completed
}

/// A span the window saw a VM for, clipped to the window's length: C1's span
/// runs from the base sample, which may lie before the window's start, so a
/// VM present throughout an hour has a span of a little over 3600 s, and its
/// record says 3600.
pub fn presence_s(span_s: f64, window: Window) -> f64 {
    span_s.min(window.len_ms() as f64 / 1000.0)
}

/// Seconds of `window` between a VM's launch and its termination (either
/// unknown: the window's edge).
pub fn lifetime_s(launched_ms: Option<i64>, terminated_ms: Option<i64>, window: Window) -> f64 {
    let from = launched_ms.map_or(window.start_ms, |t| t.max(window.start_ms));
    let to = terminated_ms.map_or(window.end_ms, |t| t.min(window.end_ms));
    (to - from).max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };

    #[test]
    fn status_from_first_and_last_seen() {
        let seen = |first, last| Seen {
            times: Some((first, last)),
            ..Seen::default()
        };
        assert_eq!(
            status(W, 300_000, seen(-15_000, 3_590_000)),
            Status::Running
        );
        assert_eq!(status(W, 300_000, seen(20_000, 3_590_000)), Status::Started);
        assert_eq!(
            status(W, 300_000, seen(-15_000, 1_000_000)),
            Status::Completed
        );
        assert_eq!(status(W, 0, seen(0, 3_590_000)), Status::Completed);
        let ended = Seen {
            ended_ms: Some(3_600_000),
            ..Seen::default()
        };
        assert_eq!(status(W, 300_000, ended), Status::Completed);
        assert_eq!(status(W, 300_000, Seen::default()), Status::Running);
    }

    /// A VM whose counters stopped in the last lookback of the window
    /// before is completed in this one, once: not where it stopped earlier
    /// (the window before completed it), not before its lookback has run
    /// out in a window shorter than it, not where the cloud says it lives
    /// on or ended before.
    #[test]
    fn status_completes_a_vm_that_stopped_in_the_lookback_before() {
        let at = |last: i64| Seen {
            times: Some((last, last)),
            ..Seen::default()
        };
        let lookback = 300_000;
        // The window before ([−3600 s, 0]) called it running: last ≥ 0 − lookback.
        let before = Window {
            start_ms: -3_600_000,
            end_ms: 0,
        };
        let ran = |last| Seen {
            times: Some((-3_700_000, last)),
            ..Seen::default()
        };
        for last in [-120_000, -300_000, 0] {
            assert_eq!(status(before, lookback, ran(last)), Status::Running);
            assert!(completed_at_start(W, lookback, at(last)), "{last}");
        }
        // It stopped earlier: the window before completed it.
        assert_eq!(status(before, lookback, ran(-300_001)), Status::Completed);
        assert!(!completed_at_start(W, lookback, at(-300_001)));
        // A sample inside the window is no stop at its start.
        assert!(!completed_at_start(W, lookback, at(1)));
        // A minute's window: its lookback runs out only in a later one.
        let minute = Window {
            start_ms: 0,
            end_ms: 60_000,
        };
        assert!(!completed_at_start(minute, lookback, at(-120_000)));
        assert!(completed_at_start(minute, lookback, at(-240_001)));
        // The cloud's lifetime decides: terminated inside the window only.
        let lived = |terminated| Seen {
            lifetime: Some((Some(-7_200_000), terminated)),
            ..at(-60_000)
        };
        assert!(completed_at_start(W, lookback, lived(Some(20_000))));
        assert!(!completed_at_start(W, lookback, lived(Some(-30_000))));
        assert!(!completed_at_start(W, lookback, lived(None)));
        // Shut off, or ended by `start`: said by the window before.
        let shut_off = Seen {
            shut_off: true,
            ..at(-60_000)
        };
        assert!(!completed_at_start(W, lookback, shut_off));
        let ended = |t| Seen {
            ended_ms: Some(t),
            ..at(-60_000)
        };
        assert!(!completed_at_start(W, lookback, ended(-10_000)));
        assert!(completed_at_start(W, lookback, ended(10_000)));
        assert!(!completed_at_start(W, lookback, Seen::default()));
    }

    #[test]
    fn presence_never_exceeds_the_window() {
        assert_eq!(presence_s(3600.265, W), 3600.0);
        assert_eq!(presence_s(1800.5, W), 1800.5);
    }
}
