//! Crash points for the crash tests: the places where a kill -9 must lose
//! nothing and double nothing (spooled, mid-delivery, before lastrun, a
//! messenger's temporary written but not yet renamed).

/// Crash tests (builds with the `failpoints` feature only):
/// `WATTSON_CRASH_AT=<point>[:<n>]` kills the process with SIGKILL (no
/// cleanup of any kind) the n-th time (default first) it passes `point`.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(point: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static HITS: AtomicU32 = AtomicU32::new(0);
    let Ok(spec) = std::env::var("WATTSON_CRASH_AT") else {
        return;
    };
    let (name, nth) = spec.split_once(':').unwrap_or((&spec, "1"));
    if name == point && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth.parse().unwrap_or(1) {
        eprintln!("wattson: WATTSON_CRASH_AT={spec}: kill -9 at {point}");
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

/// Release builds carry no failpoint.
#[cfg(not(feature = "failpoints"))]
pub(crate) fn hit(_point: &str) {}
