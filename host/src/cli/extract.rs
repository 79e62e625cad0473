//! `wattson extract`: one policy, one or more windows, records delivered.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_CONFIG, EXIT_DELIVERY, EXIT_PLUGIN, EXIT_SOURCE, Failure, cache_dir};
use crate::messengers;
use crate::pipeline::{self, PipelineError};
use crate::policy::{self, Policy};
use crate::runtime::Runtime;
use crate::sources::prometheus::Client;
use crate::window::{Window, parse_time};

/// Arguments of `wattson extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The policy file.
    #[arg(long, short)]
    policy: PathBuf,
    /// Window start: RFC 3339 or unix seconds (default: one step before --to).
    #[arg(long)]
    from: Option<String>,
    /// Window end: RFC 3339 or unix seconds (default: now, aligned down to the policy's step).
    #[arg(long)]
    to: Option<String>,
    /// Print what would be sent; deliver nothing, change no state.
    #[arg(long)]
    dry_run: bool,
    /// Query this Prometheus instead of the policy's.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Replace the policy's outputs with this builtin format on stdout.
    #[arg(long, value_name = "NAME")]
    format: Option<String>,
}

/// Runs `wattson extract`.
pub fn run(args: ExtractArgs) -> Result<(), Failure> {
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    let mut policy = Policy::load(&args.policy).map_err(|e| config(e.into()))?;
    if let Some(url) = &args.prometheus {
        policy.override_prometheus(url);
    }
    if let Some(format) = &args.format {
        policy.override_format(format);
    }
    let window = window(&args, &policy).map_err(config)?;
    let runtime = Runtime::new(
        policy.limits.clone(),
        cache_dir(policy.runtime.cache_dir.as_ref()),
    )
    .map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
    let bound = policy::bind(&policy, &runtime).map_err(|e| config(e.into()))?;
    let prometheus = policy
        .prometheus
        .as_ref()
        .map(|p| Client::new(p.get_ref().clone()))
        .transpose()
        .map_err(|e| config(e.into()))?;

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, e))?;
    let rendered = tokio
        .block_on(pipeline::run_window(
            &policy,
            &bound,
            prometheus.as_ref(),
            window,
        ))
        .map_err(|e| match e {
            PipelineError::Source(e) => Failure::new(EXIT_SOURCE, e),
            PipelineError::Plugin(e) => Failure::new(EXIT_PLUGIN, e),
            PipelineError::Unsupported(e) => Failure::new(EXIT_CONFIG, anyhow::anyhow!(e)),
        })?;

    for (output, payloads) in bound.outputs.iter().zip(&rendered.payloads) {
        let mut messenger = if args.dry_run {
            messengers::build(&crate::policy::MessengerConfig::Stdout)
        } else {
            messengers::build(&output.messenger)
        };
        for payload in payloads {
            messenger
                .deliver(payload)
                .map_err(|e| Failure::new(EXIT_DELIVERY, e))?;
        }
    }
    tracing::info!(%window, records = rendered.records.len(), dry_run = args.dry_run, "extract done");
    Ok(())
}

/// The window from --from/--to, else the last whole step.
fn window(args: &ExtractArgs, policy: &Policy) -> anyhow::Result<Window> {
    let step_ms = policy.window.step_secs as i64 * 1000;
    let now_ms = chrono::Utc::now().timestamp_millis();
    if args.from.is_none() && args.to.is_none() {
        return Ok(Window::last_step(now_ms, step_ms));
    }
    let end_ms = match &args.to {
        Some(t) => parse_time(t)?,
        None => now_ms - now_ms.rem_euclid(step_ms),
    };
    let start_ms = match &args.from {
        Some(t) => parse_time(t)?,
        None => end_ms - step_ms,
    };
    Ok(Window::new(start_ms, end_ms)?)
}
