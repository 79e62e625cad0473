//! Shipping, the delivery both `extract` and the daemon use: windows since
//! lastrun (or the ones asked for), each rendered into the spool before any
//! messenger sees it, delivered, and committed to lastrun only once every
//! messenger accepted every payload. [`extract`] is the cron run on top of it.

use std::collections::HashMap;

use super::progress::Progress;
use super::{GatherPlan, HostSummary, PipelineError, Plan, run_window};
use crate::messengers::{self, DeliveryError, Messenger, Payload};
use crate::policy::{Bound, BoundOutput, MessengerConfig, Policy};
use crate::sources::prometheus::Client;
use crate::state::{Output, StateDir, StateError};
use crate::window::{Window, format_ms};

/// What a run is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct ExtractOptions {
    /// `--from/--to`: these windows instead of the ones since lastrun (lastrun is not moved).
    pub explicit: Option<Window>,
    /// The current time, ms.
    pub now_ms: i64,
    /// Print what would be sent; write nothing.
    pub dry_run: bool,
    /// Keep each window's host summaries in the report.
    pub host_summary: bool,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct ShipReport {
    /// Windows extracted in this run.
    pub windows: usize,
    /// Records rendered in this run.
    pub records: usize,
    /// Payloads accepted by messengers in this run (spool retries included).
    pub delivered: usize,
    /// lastrun after the run.
    pub lastrun_ms: Option<i64>,
    /// Per window and host with a meter reading, when asked for
    /// (windows delivered from the spool have none: they were not run again).
    pub hosts: Vec<HostSummary>,
}

/// Why a run stopped or did not deliver everything.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// A window could not be measured, attributed or rendered.
    #[error("window {window}: {error}")]
    Window {
        /// The window.
        window: Window,
        /// Why (in the message, not the error chain).
        error: PipelineError,
    },
    /// The policy's measurements cannot be made (found before any window).
    #[error(transparent)]
    Plan(PipelineError),
    /// The state directory cannot be used (or another run holds the lock).
    #[error(transparent)]
    State(#[from] StateError),
    /// Some messengers did not accept their payloads; they stay spooled.
    #[error("{} messenger(s) failed; their payloads stay in the spool and are retried first next run:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Delivery(Vec<DeliveryError>),
    /// A dry run could not print its records; nothing was spooled. A reader
    /// that stopped reading (`| head`) is a `BrokenPipe`, not a failure.
    #[error("cannot print the records of a dry run")]
    Stdout(#[source] std::io::Error),
}

/// Cuts `[start, end]` into windows no longer than `max_ms`, oldest first.
pub fn cut(start_ms: i64, end_ms: i64, max_ms: i64) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut t = start_ms;
    while t < end_ms {
        let next = (t + max_ms.max(1)).min(end_ms);
        windows.push(Window {
            start_ms: t,
            end_ms: next,
        });
        t = next;
    }
    windows
}

/// The windows a run covers: the explicit ones, else from the later of
/// lastrun and the newest spooled window to now aligned down to the step
/// (first run: the last whole step).
fn plan(
    policy: &Policy,
    state: &StateDir,
    options: &ExtractOptions,
) -> Result<Vec<Window>, StateError> {
    let step_ms = policy.window.step_secs as i64 * 1000;
    let max_ms = policy.window.max_window_secs as i64 * 1000;
    if let Some(w) = options.explicit {
        return Ok(cut(w.start_ms, w.end_ms, max_ms));
    }
    let settled_ms = options.now_ms - policy.window.delay_secs as i64 * 1000;
    let end_ms = settled_ms - settled_ms.rem_euclid(step_ms);
    let done = state.done_until()?;
    if let Some(done) = done.filter(|&d| d > options.now_ms) {
        return Err(StateError::Future {
            done: format_ms(done),
            now: format_ms(options.now_ms),
        });
    }
    let start_ms = done.unwrap_or(end_ms - step_ms);
    if start_ms >= end_ms {
        tracing::info!(
            "nothing to extract: data up to {} is done, the next window ends at {}",
            format_ms(start_ms),
            format_ms(end_ms + step_ms)
        );
    }
    Ok(cut(start_ms, end_ms, max_ms))
}

/// Runs extract for one policy. Measurement runs on `tokio`; delivery is
/// blocking I/O and runs outside it.
pub fn extract(
    policy: &Policy,
    bound: &Bound,
    prometheus: Option<&Client>,
    options: ExtractOptions,
    tokio: &tokio::runtime::Runtime,
) -> Result<ShipReport, ShipError> {
    let state = policy.state_dir();
    let mut report = ShipReport::default();
    // Which model each placement gets and what one gather makes: once per run.
    let models = Plan::new(bound);
    let gather_plan =
        GatherPlan::new(policy, models.measurements(), prometheus).map_err(ShipError::Plan)?;
    if options.dry_run {
        // Reads lastrun and the spool: they must be this policy's.
        state.check()?;
        for window in plan(policy, &state, &options)? {
            let done = run_window(
                policy,
                bound,
                &models,
                &gather_plan,
                window,
                tokio,
                |_, bytes| {
                    messengers::Stdout::print(&bytes).map_err(|e| Stop::Out(ShipError::Stdout(e)))
                },
            )
            .map_err(|stop| stop.in_window(window))?;
            report.windows += 1;
            report.records += done.records;
            if options.host_summary {
                report.hosts.extend(done.hosts);
            }
        }
        report.lastrun_ms = state.lastrun().ok().flatten();
        return Ok(report);
    }

    let explicit = options.explicit.is_some();
    ship(
        policy,
        bound,
        |state| plan(policy, state, &options),
        explicit,
        options.host_summary,
        |window, sink| run_window(policy, bound, &models, &gather_plan, window, tokio, sink),
    )
}

/// Delivers what earlier runs spooled, then spools, delivers and commits
/// each window `windows` gives (asked after the spool is drained, so
/// lastrun is current), each rendered by `render` unless a copy of it is
/// already spooled: the shipping both extract and the daemon do.
pub fn ship(
    policy: &Policy,
    bound: &Bound,
    windows: impl FnOnce(&StateDir) -> Result<Vec<Window>, StateError>,
    explicit: bool,
    host_summary: bool,
    mut render: impl FnMut(
        Window,
        &mut dyn FnMut(usize, Vec<u8>) -> Result<(), Stop>,
    ) -> Result<super::WindowDone, Stop>,
) -> Result<ShipReport, ShipError> {
    let state = policy.state_dir();
    let mut report = ShipReport::default();
    state.create()?;
    let _lock = state.lock()?;
    let spool = state.spool();
    spool.sweep()?;
    let mut delivery = Delivery::default();
    // Payloads left by earlier runs go first.
    report.delivered += delivery.drain(&state, &bound.outputs)?;
    commit(&state)?;

    let windows = windows(&state)?;
    let progress = Progress::new(windows.len());
    let outputs: Vec<Output<'_>> = bound
        .outputs
        .iter()
        .map(|o| Output {
            name: &o.name,
            format: &o.format.info().name,
            extension: &o.format.info().extension,
            media_type: &o.format.info().media_type,
            messenger: &o.messenger,
        })
        .collect();
    for window in windows {
        if let Some(&(_, records)) = delivery.from_spool.iter().find(|(w, _)| *w == window) {
            // Delivered from the spool at the start of this run: receivers
            // get each record once, so it is not rendered again.
            tracing::info!(%window, "delivered from the spool by this run: not rendered again");
            report.windows += 1;
            report.records += records;
            continue;
        }
        // An earlier run's copy, tracked or asked for with --from/--to.
        let earlier = match spool.spooled(window, explicit)? {
            Some(copy) => Some(copy),
            None => spool.spooled(window, !explicit)?,
        };
        let records = match earlier {
            // Asked for again while an earlier run's copy still waits for a
            // messenger: that copy (same record ids) is delivered, not a new one.
            Some(earlier) => {
                tracing::info!(%window, "already in the spool from an earlier run: delivering that copy");
                earlier.records
            }
            None => {
                let mut writer = spool.begin(window, explicit)?;
                let done = render(window, &mut |i, bytes| {
                    writer
                        .write(i, &bytes)
                        .map_err(|e| Stop::Out(ShipError::State(e)))
                })
                .map_err(|stop| stop.in_window(window))?;
                writer.finish(done.records, &outputs)?;
                if host_summary {
                    report.hosts.extend(done.hosts);
                }
                done.records
            }
        };
        crate::failpoint::hit("after-spool");
        report.windows += 1;
        report.records += records;
        report.delivered += delivery.drain(&state, &bound.outputs)?;
        crate::failpoint::hit("before-lastrun");
        commit(&state)?;
        progress.window_done(window, Some("window committed"));
    }
    progress.finish();
    report.lastrun_ms = state.lastrun()?;
    if delivery.failures.is_empty() {
        Ok(report)
    } else {
        Err(ShipError::Delivery(delivery.failures))
    }
}

/// `wattson spool retry`: delivers what is spooled with the policy's
/// current messengers, extracts nothing new, and moves lastrun over what is
/// done. Returns how many payloads were accepted.
pub fn retry(policy: &Policy, bound: &Bound) -> Result<usize, ShipError> {
    let state = policy.state_dir();
    state.create()?;
    let _lock = state.lock()?;
    state.spool().sweep()?;
    let mut delivery = Delivery::default();
    let delivered = delivery.drain(&state, &bound.outputs)?;
    commit(&state)?;
    if delivery.failures.is_empty() {
        Ok(delivered)
    } else {
        Err(ShipError::Delivery(delivery.failures))
    }
}

/// `wattson spool drop`: removes the spooled windows that start at one of
/// `starts_ms` (their payloads are never delivered; no other window is
/// touched), then moves lastrun over what no longer waits. Returns what was
/// dropped.
pub fn drop_spooled(policy: &Policy, starts_ms: &[i64]) -> Result<Vec<Dropped>, ShipError> {
    let state = policy.state_dir();
    let _lock = state.lock()?;
    let mut dropped = Vec::new();
    for window in state.spool().pending()? {
        if !starts_ms.contains(&window.window.start_ms) {
            continue;
        }
        let gone = Dropped {
            window: window.window,
            explicit: window.explicit,
            records: window.records,
            undelivered: window.undelivered(),
        };
        window.remove()?;
        tracing::warn!(
            window = %gone.window,
            records = gone.records,
            undelivered_payloads = gone.undelivered,
            "dropped from the spool: its undelivered payloads will never be sent"
        );
        dropped.push(gone);
    }
    commit(&state)?;
    Ok(dropped)
}

/// A window `drop_spooled` removed.
#[derive(Debug)]
pub struct Dropped {
    /// The window.
    pub window: Window,
    /// Asked for with --from/--to.
    pub explicit: bool,
    /// Records rendered in it.
    pub records: usize,
    /// Payloads no messenger had accepted.
    pub undelivered: usize,
}

/// What stops a window: its own pipeline, or where its payloads go (the
/// spool, or stdout on a dry run).
pub enum Stop {
    /// The window could not be measured, attributed or rendered.
    Pipeline(PipelineError),
    /// Its payloads could not be kept.
    Out(ShipError),
}

impl From<PipelineError> for Stop {
    fn from(e: PipelineError) -> Self {
        Self::Pipeline(e)
    }
}

impl Stop {
    fn in_window(self, window: Window) -> ShipError {
        match self {
            Self::Pipeline(error) => ShipError::Window { window, error },
            Self::Out(e) => e,
        }
    }
}

/// Moves lastrun up to the end of the newest spooled window, or to the start
/// of the oldest one still waiting for a messenger; then removes the windows
/// lastrun covers. lastrun is written before a window leaves the spool, so a
/// crash in between never makes a window look undone.
fn commit(state: &StateDir) -> Result<(), StateError> {
    let pending = state.spool().pending()?;
    let tracked = || pending.iter().filter(|w| !w.explicit);
    let target = tracked()
        .filter(|w| !w.is_complete())
        .map(|w| w.window.start_ms)
        .min()
        .or_else(|| tracked().map(|w| w.window.end_ms).max());
    let mut lastrun = state.lastrun()?;
    if let Some(target) = target
        && lastrun.is_none_or(|c| target > c)
    {
        state.set_lastrun(target)?;
        lastrun = Some(target);
    }
    for w in pending {
        let covered = lastrun.is_some_and(|l| w.window.end_ms <= l);
        if w.is_complete() && (w.explicit || covered) {
            w.remove()?;
        }
    }
    Ok(())
}

/// Delivers spooled payloads, remembering messengers that failed in this run
/// so their later payloads wait (order is kept per messenger) while the others go on.
#[derive(Default)]
struct Delivery {
    messengers: HashMap<String, Box<dyn Messenger>>,
    failures: Vec<DeliveryError>,
    failed: Vec<String>,
    /// Windows this run delivered completely from the spool, with their record counts.
    from_spool: Vec<(Window, usize)>,
}

impl Delivery {
    /// Delivers every pending payload of every spooled window, oldest first,
    /// each output's with the messenger `outputs` (the policy as it is now)
    /// gives that output's name; returns how many were accepted.
    fn drain(&mut self, state: &StateDir, outputs: &[BoundOutput]) -> Result<usize, StateError> {
        let mut delivered = 0;
        for window in state.spool().pending()? {
            for (i, output) in window.outputs.iter().enumerate() {
                let config = if output.name.is_empty() {
                    // Spooled before outputs had names: the messenger it was spooled for.
                    &output.messenger
                } else {
                    match outputs.iter().find(|o| o.name == output.name) {
                        Some(o) => &o.messenger,
                        None => {
                            let gone = format!("output `{}`", output.name);
                            if !self.failed.contains(&gone) {
                                self.failures.push(DeliveryError {
                                    messenger: gone.clone(),
                                    reason: format!(
                                        "is no longer in the policy, so its payloads of {} stay \
                                         spooled in {} and lastrun waits for them: put the output \
                                         back, or drop the window (`wattson spool drop --policy \
                                         FILE --window {} --yes`)",
                                        window.window,
                                        window.dir().display(),
                                        window.window.start_ms / 1000
                                    ),
                                });
                                self.failed.push(gone);
                            }
                            continue;
                        }
                    }
                };
                let key = messenger_key(config);
                if self.failed.contains(&key) {
                    continue;
                }
                if let Some(name) = config.fixed_file_name()
                    && output.payloads > 1
                {
                    tracing::warn!(
                        window = %window.window,
                        "output `{}` gave {} payloads for this window and its file messenger \
                         replaces `{name}` with each, keeping only the last: use a format that \
                         gives one payload per window, or drop `name`",
                        output.name,
                        output.payloads
                    );
                }
                let messenger = self
                    .messengers
                    .entry(key.clone())
                    .or_insert_with(|| messengers::build(config));
                for n in 0..output.payloads {
                    if window.is_done(i, n) {
                        continue;
                    }
                    let bytes = window.payload(i, n)?;
                    let journal = window.journal(i, n);
                    let payload = Payload {
                        bytes: &bytes,
                        extension: &output.extension,
                        media_type: &output.media_type,
                        journal: &journal,
                    };
                    match messenger.deliver(&payload) {
                        Ok(()) => {
                            crate::failpoint::hit("mid-delivery");
                            window.mark_done(i, n)?;
                            delivered += 1;
                        }
                        Err(e) => {
                            tracing::warn!(window = %window.window, "{e}");
                            self.failures.push(e);
                            self.failed.push(key.clone());
                            break;
                        }
                    }
                }
            }
            if window.is_complete() {
                self.from_spool.push((window.window, window.records));
                if window.explicit {
                    window.remove()?;
                }
            }
        }
        Ok(delivered)
    }
}

fn messenger_key(config: &MessengerConfig) -> String {
    serde_json::to_string(config).unwrap_or_else(|_| format!("{config:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_gaps_oldest_first() {
        let w = cut(0, 10, 4);
        assert_eq!(
            w.iter().map(|w| (w.start_ms, w.end_ms)).collect::<Vec<_>>(),
            vec![(0, 4), (4, 8), (8, 10)]
        );
        assert!(cut(5, 5, 4).is_empty());
    }
}
