//! `wattson extract`: the windows since the last run (or the ones asked for),
//! spooled, delivered, committed.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use clap::Args;

use super::{EXIT_CONFIG, EXIT_DELIVERY, EXIT_LOCKED, EXIT_PLUGIN, EXIT_SOURCE, Failure};
use crate::pipeline::{self, ExtractOptions, PipelineError, ShipError};
use crate::policy::{Override, Policy};
use crate::sources::carbon_intensity::IntensityError;
use crate::sources::prometheus::TemplateError;
use crate::state::StateError;
use crate::window::{format_ms, parse_time};

/// Arguments of `wattson extract`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wattson extract --policy /etc/wattson/site.toml
  wattson extract --policy site.toml --prometheus http://other-prometheus:9090 --dry-run --format jsonl
  wattson extract --policy site.toml --from 2025-06-01T00:00:00Z --to 2025-06-02T00:00:00Z --host-summary hosts.jsonl")]
pub struct ExtractArgs {
    /// The policy file.
    #[arg(long, short)]
    policy: PathBuf,
    /// Override a policy key by its dotted path with a TOML value (repeatable):
    /// --set window.step_secs=900, --set model.params.metric='"m_total"'.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
    /// Window start: RFC 3339 or unix seconds (with --to; default: since the last run).
    #[arg(long)]
    from: Option<String>,
    /// Window end: RFC 3339 or unix seconds (default with --from: now, aligned down to the step).
    #[arg(long)]
    to: Option<String>,
    /// Print what would be sent; deliver nothing, change no state.
    #[arg(long)]
    dry_run: bool,
    /// Query this Prometheus instead of the policy's.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Replace the policy's outputs with this builtin format on stdout; like
    /// --dry-run, this changes no state (the policy's messengers get nothing).
    #[arg(long, value_name = "NAME")]
    format: Option<String>,
    /// Fail a window that would give no records because nothing says which
    /// VMs to measure (no series of the model's VM measurements in it, or a
    /// per-VM template without an inventory), instead of warning (the
    /// policy's `strict = true`).
    #[arg(long)]
    strict: bool,
    /// Write one JSON line per host per window to FILE: the host meter's
    /// energy, idle power and energy, what the model attributed and what it
    /// left at the host and why (hosts without VMs included). A dry run on a
    /// terminal also prints it as a table on stderr.
    #[arg(long, value_name = "FILE")]
    host_summary: Option<PathBuf>,
    /// Take this time (RFC 3339 or unix seconds) as now: replays and tests.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
}

/// Runs `wattson extract`.
pub fn run(args: ExtractArgs) -> Result<(), Failure> {
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    let mut policy = Policy::load_with(&args.policy, &args.set).map_err(|e| config(e.into()))?;
    if let Some(url) = &args.prometheus {
        policy.override_prometheus(url);
    }
    if let Some(format) = &args.format {
        policy.override_format(format);
        for set in args.set.iter().filter(|s| s.key.starts_with("outputs")) {
            tracing::warn!(
                "--format {format} replaces the policy's outputs with {format} on stdout: \
                 --set {} has no effect",
                set.key
            );
        }
    }
    policy.strict |= args.strict;
    let real_now_ms = chrono::Utc::now().timestamp_millis();
    let now_ms = match &args.now {
        Some(t) => parse_time(t).map_err(|e| config(e.into()))?,
        None => real_now_ms,
    };
    if now_ms > real_now_ms {
        return Err(config(anyhow::anyhow!(
            "--now {} is in the future: windows that have not ended yet cannot be extracted",
            crate::window::format_ms(now_ms)
        )));
    }
    let explicit = crate::window::from_args(
        args.from.as_deref(),
        args.to.as_deref(),
        policy.window.step_secs as i64 * 1000,
        now_ms,
    )
    .map_err(|e| config(e.into()))?;
    let bound = super::bind(&policy)?;
    super::policy::check_plan(&policy, &bound, false)?;
    if !(args.dry_run || args.format.is_some()) {
        for (i, problem) in super::policy::destination_problems(&policy) {
            tracing::warn!(
                output = policy.outputs[i].name(),
                "{problem}: its payloads will stay spooled until it can be written"
            );
        }
    }
    let (prometheus, tokio) = super::prometheus(&policy)?;
    let options = ExtractOptions {
        explicit,
        now_ms,
        dry_run: args.dry_run || args.format.is_some(),
        host_summary: args.host_summary.is_some(),
    };
    let models = bound
        .model
        .iter()
        .map(|m| (&m.model, &m.measurements))
        .chain(bound.rules.iter().map(|r| (&r.model, &r.measurements)));
    if args.host_summary.is_some()
        && models
            .clone()
            .all(|(m, measurements)| pipeline::host_meter(m.info(), measurements).is_none())
    {
        let names: Vec<&str> = models.map(|(m, _)| m.info().name.as_str()).collect();
        tracing::warn!(
            "no model of the policy reads a host meter ({}): --host-summary will hold no hosts",
            names.join(", ")
        );
    }
    let report = match pipeline::extract(&policy, &bound, prometheus.as_ref(), options, &tokio) {
        // The reader stopped reading (`| head`): done, as ripgrep is.
        Err(ShipError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            tracing::debug!("stdout closed by its reader; stopping");
            return Ok(());
        }
        other => other,
    }
    .map_err(|e| Failure::new(exit_code(&e), e))?;
    if let Some(path) = &args.host_summary {
        write_host_summary(path, &report.hosts).map_err(|e| Failure::new(1, e))?;
        if options.dry_run && std::io::stderr().is_terminal() && !report.hosts.is_empty() {
            eprint!("{}", pipeline::host_table(&report.hosts));
        }
    }
    tracing::info!(
        windows = report.windows,
        records = report.records,
        delivered = report.delivered,
        lastrun = report.lastrun_ms.map(format_ms),
        dry_run = args.dry_run,
        "extract done"
    );
    Ok(())
}

/// Writes the host summaries as JSON lines to `path` (replacing it).
fn write_host_summary(path: &Path, hosts: &[pipeline::HostSummary]) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(hosts.len() * 300);
    for host in hosts {
        serde_json::to_writer(&mut out, host)?;
        out.push(b'\n');
    }
    std::fs::write(path, out)
        .with_context(|| format!("cannot write the host summary to {}", path.display()))
}

/// The exit code of a failed run.
pub(super) fn exit_code(e: &ShipError) -> u8 {
    match e {
        ShipError::Window { error, .. } | ShipError::Plan(error) => match error {
            PipelineError::Source(_)
            | PipelineError::Libvirt(_)
            | PipelineError::Cloud(_)
            | PipelineError::Template(TemplateError::Query(_))
            | PipelineError::Carbon(IntensityError::Prometheus(_)) => EXIT_SOURCE,
            PipelineError::Carbon(IntensityError::NoPrometheus(_)) => EXIT_CONFIG,
            PipelineError::Template(TemplateError::Invalid { .. }) => EXIT_CONFIG,
            PipelineError::Plugin(_) => EXIT_PLUGIN,
            PipelineError::Unsupported(_) => EXIT_CONFIG,
        },
        ShipError::State(StateError::Locked { .. }) => EXIT_LOCKED,
        ShipError::State(StateError::Future { .. } | StateError::OtherPolicy { .. }) => EXIT_CONFIG,
        ShipError::State(_) => 1,
        ShipError::Delivery(_) | ShipError::Stdout(_) => EXIT_DELIVERY,
    }
}
