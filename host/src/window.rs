//! Accounting windows: the half-open time ranges every measurement covers, and
//! the times operators type on the command line.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

/// A window `[start, end]` in milliseconds since the Unix epoch (UTC), `end > start`.
///
/// Prometheus stores integer milliseconds, so windows are kept to the millisecond
/// (`docs/ENERGY.md#windows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Start, milliseconds since the epoch.
    pub start_ms: i64,
    /// End, milliseconds since the epoch.
    pub end_ms: i64,
}

/// A time or window the operator gave that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// Neither RFC 3339 nor unix seconds.
    #[error(
        "`{0}` is not a time: give RFC 3339 (2025-06-01T00:00:00Z) or unix seconds (1748736000)"
    )]
    Unparsable(String),
    /// `end <= start`.
    #[error("empty window: --to ({to}) must be after --from ({from})")]
    Empty {
        /// The start as given.
        from: String,
        /// The end as given.
        to: String,
    },
}

impl Window {
    /// A window from two instants; errors when it is empty.
    pub fn new(start_ms: i64, end_ms: i64) -> Result<Self, TimeError> {
        if end_ms <= start_ms {
            return Err(TimeError::Empty {
                from: format_ms(start_ms),
                to: format_ms(end_ms),
            });
        }
        Ok(Self { start_ms, end_ms })
    }

    /// Length in milliseconds.
    pub fn len_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

impl From<Window> for crate::runtime::Window {
    /// The window as plugins see it.
    fn from(w: Window) -> Self {
        Self {
            start_ms: w.start_ms,
            end_ms: w.end_ms,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}..{}",
            format_ms(self.start_ms),
            format_ms(self.end_ms)
        )
    }
}

/// Parses RFC 3339 (`2025-06-01T00:00:00Z`, offsets allowed) or unix seconds
/// (`1748736000`, `1748736000.5`) into milliseconds since the epoch.
pub fn parse_time(text: &str) -> Result<i64, TimeError> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
    {
        return Ok((secs * 1000.0).round() as i64);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| TimeError::Unparsable(text.to_owned()))
}

/// The window `--from`/`--to` ask for, if either is given: `--to` defaults
/// to now aligned down to the step, `--from` to one step before `--to`.
pub fn from_args(
    from: Option<&str>,
    to: Option<&str>,
    step_ms: i64,
    now_ms: i64,
) -> Result<Option<Window>, TimeError> {
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    let end_ms = match to {
        Some(t) => parse_time(t)?,
        None => now_ms - now_ms.rem_euclid(step_ms),
    };
    let start_ms = match from {
        Some(t) => parse_time(t)?,
        None => end_ms - step_ms,
    };
    Window::new(start_ms, end_ms).map(Some)
}

/// RFC 3339 UTC with milliseconds, e.g. `2025-06-01T00:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse_time("1748736000").unwrap(), 1_748_736_000_000);
        assert_eq!(parse_time("1748736000.25").unwrap(), 1_748_736_000_250);
        assert_eq!(
            parse_time("2025-06-01T00:00:00Z").unwrap(),
            1_748_736_000_000
        );
        assert_eq!(
            parse_time("2025-06-01T02:00:00+02:00").unwrap(),
            1_748_736_000_000
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn empty_window_is_refused() {
        assert!(Window::new(5, 5).is_err());
    }
}
