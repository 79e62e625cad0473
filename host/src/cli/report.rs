//! `wattson report`: usage and energy per project, VM, host or flavor over a
//! period, from the policy's extraction, touching no state and no messenger.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{EXIT_CONFIG, Failure};
use crate::pipeline::{self, GatherPlan, PipelineError, Plan, Progress, ShipError};
use crate::policy::{Override, Policy};
use crate::report::{Aggregator, By, Format, last_month};
use crate::sources::prometheus::vm_disks;

/// Arguments of `wattson report`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wattson report --policy /etc/wattson/site.toml                      # last month, per project
  wattson report --policy site.toml --from 2025-06-01T00:00:00Z --to 2025-07-01T00:00:00Z --by vm --format csv --output june.csv
  wattson report --policy site.toml --format html --output report.html  # charts, for a browser")]
pub struct ReportArgs {
    /// The policy file.
    #[arg(long, short)]
    policy: PathBuf,
    /// Override a policy key by its dotted path with a TOML value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
    /// Query this Prometheus instead of the policy's.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Period start: RFC 3339 or unix seconds (default: the last whole month).
    #[arg(long)]
    from: Option<String>,
    /// Period end: RFC 3339 or unix seconds (default with --from: now, aligned down to the step).
    #[arg(long)]
    to: Option<String>,
    /// One row per project, VM, host or flavor.
    #[arg(long, value_enum, default_value = "project")]
    by: By,
    /// Aligned table, JSON (seed 004's / nova simple tenant usage keys), CSV,
    /// or HTML (one page with charts, for a browser: --output report.html).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `wattson report`.
pub fn run(args: ReportArgs) -> Result<(), Failure> {
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    let mut policy = Policy::load_with(&args.policy, &args.set).map_err(|e| config(e.into()))?;
    if let Some(url) = &args.prometheus {
        policy.override_prometheus(url);
    }
    let step_ms = policy.window.step_secs as i64 * 1000;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let period = match (&args.from, &args.to) {
        (None, None) => last_month(now_ms),
        _ => crate::window::from_args(args.from.as_deref(), args.to.as_deref(), step_ms, now_ms)
            .map_err(|e| config(e.into()))?
            .ok_or_else(|| config(anyhow::anyhow!("give --from with --to")))?,
    };
    let bound = super::bind(&policy)?;
    super::policy::check_plan(&policy, &bound, false)?;
    let (prometheus, tokio) = super::prometheus(&policy)?;
    let plan = Plan::new(&bound);
    let gather_plan =
        GatherPlan::new(&policy, plan.measurements(), prometheus.as_ref()).map_err(|e| {
            let e = ShipError::Plan(e);
            Failure::new(super::extract::exit_code(&e), e)
        })?;
    let windows = pipeline::cut(period.start_ms, period.end_ms, step_ms);
    let progress = Progress::new(windows.len());
    let mut totals = Aggregator::default();
    for window in windows {
        let done = pipeline::window_records::<PipelineError>(
            &policy,
            &bound,
            &plan,
            &gather_plan,
            window,
            &tokio,
            &mut |records: Vec<_>| {
                totals.records(&records);
                Ok(())
            },
        )
        .map_err(|error| {
            let e = ShipError::Window { window, error };
            Failure::new(super::extract::exit_code(&e), e)
        })?;
        for joules in done.hosts.iter().filter_map(|h| h.energy_joules) {
            totals.host_energy(joules);
        }
        progress.window_done(window, None);
    }
    progress.finish();
    if let Some(api) = gather_plan.cloud() {
        // Usage from the cloud's own lifetimes, as its usage report counts.
        let cloud = tokio
            .block_on(api.inventory(period))
            .map_err(|e| Failure::new(super::EXIT_SOURCE, e))?;
        totals.lifetimes(&cloud, period);
    }
    let inventory = &policy.inventory;
    let disks = tokio
        .block_on(vm_disks(
            gather_plan.client(),
            &inventory.disk_metric,
            &inventory.meta_uuid_label,
            period,
        ))
        .unwrap_or_else(|e| {
            tracing::warn!("no disk sizes, so no disk GB-hours: {e}");
            Default::default()
        });
    let report = totals.finish(period, args.by, &disks);
    if report.groups.is_empty() {
        tracing::warn!(
            %period,
            "no VM had energy in the period: the report is empty (check the period, and the policy's measurements with `wattson extract --dry-run`)"
        );
    }
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))
                .map_err(|e| Failure::new(1, e))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match crate::report::write(&report, args.format, &mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(
            1,
            anyhow::Error::new(e).context("cannot write the report"),
        )),
        Ok(()) => Ok(()),
    }
}
