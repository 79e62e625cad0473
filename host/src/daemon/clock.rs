//! Where the sampling loop gets its time and its signals: the system clock
//! and the signal handlers when the daemon runs; a simulated clock in tests,
//! which steps time (a week in minutes, a clock stepped back an hour)
//! without touching the real one.

use std::sync::mpsc;
use std::time::Duration;

/// What the loop is asked between ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Load the policy again (SIGHUP).
    Reload,
    /// A last sample, ship, and return (SIGTERM, SIGINT).
    Stop,
}

/// The loop's time and signals.
pub trait Clock {
    /// Now, ms since the epoch.
    fn now_ms(&mut self) -> i64;
    /// Waits until `deadline_ms`, unless a control comes first.
    fn wait_until(&mut self, deadline_ms: i64) -> Option<Control>;
}

/// The system clock, and the controls the signal handlers send.
pub struct SystemClock {
    controls: mpsc::Receiver<Control>,
}

impl SystemClock {
    /// The system clock, woken by `controls`.
    pub fn new(controls: mpsc::Receiver<Control>) -> Self {
        Self { controls }
    }
}

impl Clock for SystemClock {
    fn now_ms(&mut self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn wait_until(&mut self, deadline_ms: i64) -> Option<Control> {
        let wait = Duration::from_millis((deadline_ms - self.now_ms()).max(0) as u64);
        match self.controls.recv_timeout(wait) {
            Ok(control) => Some(control),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            // The signal handlers are gone: nothing can stop the loop any more.
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Control::Stop),
        }
    }
}
