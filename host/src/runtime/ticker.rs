//! The epoch ticker behind plugins' time limits: it advances the engine's
//! epoch [`TICKS_PER_SEC`] times a second while a call runs, and sleeps
//! otherwise (a daemon idles between intervals; a ticker that never stops
//! would cost it more CPU than its sampling).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::Engine;

use super::TICKS_PER_SEC;

/// The ticker thread and how many calls need it.
pub(crate) struct Ticker {
    active: Arc<AtomicUsize>,
    thread: Option<std::thread::Thread>,
}

/// Keeps the ticker running while a call is in flight.
pub(crate) struct Ticking(Arc<AtomicUsize>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    /// Starts the thread; it ends when the engine is dropped.
    pub(crate) fn spawn(engine: &Engine) -> Self {
        let weak = engine.weak();
        let active = Arc::new(AtomicUsize::new(0));
        let calls = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("wattson-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    if calls.load(Ordering::SeqCst) == 0 {
                        drop(engine);
                        // Woken by the next call (or now and then, to notice the engine is gone).
                        std::thread::park_timeout(Duration::from_secs(1));
                        continue;
                    }
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(Duration::from_millis(1000 / TICKS_PER_SEC));
                }
            });
        let thread = match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                tracing::error!(
                    "cannot start the plugin time-limit thread: {e}; plugin calls will not be interrupted"
                );
                None
            }
        };
        Self { active, thread }
    }

    /// Ticks until the returned guard is dropped.
    pub(crate) fn running(&self) -> Ticking {
        self.active.fetch_add(1, Ordering::SeqCst);
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
        Ticking(Arc::clone(&self.active))
    }
}
