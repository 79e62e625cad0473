//! A progress bar over a run's windows on a terminal; elsewhere (cron, logs)
//! a log line per window says the same.

use crate::window::{Window, format_ms};

/// A progress bar for multi-window backfills when stderr is a terminal;
/// elsewhere (cron, logs) the per-window log lines say the same.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar for `windows` windows (none for one window, or off a terminal).
    pub fn new(windows: usize) -> Self {
        if windows < 2 || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return Self(None);
        }
        let bar = indicatif::ProgressBar::new(windows as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} windows {pos}/{len} [{bar:30}] {elapsed} (eta {eta}) {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self(Some(bar))
    }

    /// One more window done (`what`: how it is logged off a terminal, if at all).
    pub fn window_done(&self, window: Window, what: Option<&str>) {
        match &self.0 {
            Some(bar) => {
                bar.set_message(format_ms(window.end_ms));
                bar.inc(1);
            }
            None => {
                if let Some(what) = what {
                    tracing::info!(%window, "{what}");
                }
            }
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
