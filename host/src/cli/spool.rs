//! `wattson spool list|retry|drop`: what a policy's spool holds, delivering
//! it with the policy's current messengers, and removing windows an operator
//! gives up on.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_CONFIG, Failure};
use crate::pipeline;
use crate::policy::{Override, Policy};
use crate::window::{format_ms, parse_time};

/// `wattson spool …`
#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// The spooled windows, and what each output still has to deliver.
    #[command(after_help = "Examples:\n  \
        wattson spool list --policy /etc/wattson/site.toml\n  \
        wattson spool list --policy /etc/wattson/daemon.toml --set state.dir='\"/srv/wattson\"'")]
    List(PolicyArgs),
    /// Deliver what is spooled with the policy's current messengers;
    /// extract nothing new.
    #[command(after_help = "Examples:\n  \
        wattson spool retry --policy /etc/wattson/site.toml\n  \
        wattson spool retry --policy site.toml --set 'outputs.0.messenger.url=\"https://new.example.org/records\"'")]
    Retry(PolicyArgs),
    /// Remove spooled windows: their undelivered payloads are never sent.
    #[command(after_help = "Examples:\n  \
        wattson spool drop --policy site.toml --window 2025-06-01T02:00:00Z --yes\n  \
        wattson spool drop --policy site.toml --window 1748743200 --window 1748746800 --yes")]
    Drop {
        #[command(flatten)]
        policy: PolicyArgs,
        /// The start of a window to drop (RFC 3339 or unix seconds, as `spool
        /// list` shows it); repeatable.
        #[arg(long, required = true, value_name = "START")]
        window: Vec<String>,
        /// Really drop them (without it, say what would be dropped).
        #[arg(long)]
        yes: bool,
    },
}

/// The policy a spool command works on.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The policy file.
    #[arg(long, short)]
    policy: PathBuf,
    /// Override a policy key by its dotted path with a TOML value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
}

impl PolicyArgs {
    fn load(&self) -> Result<Policy, Failure> {
        Policy::load_with(&self.policy, &self.set).map_err(|e| Failure::new(EXIT_CONFIG, e))
    }
}

/// Runs a `spool` subcommand.
pub fn run(command: SpoolCommand) -> Result<(), Failure> {
    match command {
        SpoolCommand::List(args) => list(&args.load()?),
        SpoolCommand::Retry(args) => {
            let policy = args.load()?;
            let bound = super::bind(&policy)?;
            let delivered = pipeline::retry(&policy, &bound)
                .map_err(|e| Failure::new(super::extract::exit_code(&e), e))?;
            tracing::info!(delivered, "spool retried");
            Ok(())
        }
        SpoolCommand::Drop {
            policy: args,
            window,
            yes,
        } => {
            let policy = args.load()?;
            let starts = window
                .iter()
                .map(|w| parse_time(w))
                .collect::<Result<Vec<i64>, _>>()
                .map_err(|e| Failure::new(EXIT_CONFIG, e))?;
            let state = policy.state_dir();
            state.check().map_err(|e| Failure::new(EXIT_CONFIG, e))?;
            let spooled = state.spool().pending().map_err(|e| Failure::new(1, e))?;
            let matching: Vec<_> = spooled
                .iter()
                .filter(|w| starts.contains(&w.window.start_ms))
                .collect();
            if matching.is_empty() {
                return Err(Failure::new(
                    EXIT_CONFIG,
                    anyhow::anyhow!(
                        "no spooled window starts at {}: `wattson spool list --policy {}` shows \
                         what is spooled",
                        window.join(", "),
                        args.policy.display()
                    ),
                ));
            }
            if !yes {
                for w in &matching {
                    outln!("would drop {} ({} records)", w.window, w.records);
                }
                return Err(Failure::new(
                    EXIT_CONFIG,
                    anyhow::anyhow!(
                        "nothing dropped: add --yes to drop {} window(s); their undelivered \
                         payloads would never be sent",
                        matching.len()
                    ),
                ));
            }
            for gone in pipeline::drop_spooled(&policy, &starts)
                .map_err(|e| Failure::new(super::extract::exit_code(&e), e))?
            {
                outln!(
                    "dropped {} ({} records, {} undelivered payload(s))",
                    gone.window,
                    gone.records,
                    gone.undelivered
                );
            }
            Ok(())
        }
    }
}

/// `spool list`: one line per window and output, in aligned columns.
fn list(policy: &Policy) -> Result<(), Failure> {
    let state = policy.state_dir();
    state.check().map_err(|e| Failure::new(EXIT_CONFIG, e))?;
    let spooled = state.spool().pending().map_err(|e| Failure::new(1, e))?;
    if spooled.is_empty() {
        outln!(
            "{}: nothing spooled (lastrun {})",
            state.root().display(),
            state
                .lastrun()
                .ok()
                .flatten()
                .map_or_else(|| "not set".to_owned(), format_ms)
        );
        return Ok(());
    }
    let mut cells = Vec::new();
    for w in &spooled {
        for (i, output) in w.outputs.iter().enumerate() {
            let done = (0..output.payloads).filter(|&n| w.is_done(i, n)).count();
            let name = if output.name.is_empty() {
                output.format.as_str()
            } else {
                output.name.as_str()
            };
            let messenger = match policy.outputs.iter().find(|o| o.name() == output.name) {
                Some(o) => crate::messengers::build(&o.messenger).name(),
                None if output.name.is_empty() => {
                    crate::messengers::build(&output.messenger).name()
                }
                None => "(no longer in the policy)".to_owned(),
            };
            cells.push(vec![
                format_ms(w.window.start_ms),
                format_ms(w.window.end_ms),
                if w.explicit { "explicit" } else { "tracked" }.to_owned(),
                w.records.to_string(),
                name.to_owned(),
                format!("{done}/{}", output.payloads),
                messenger,
            ]);
        }
    }
    super::print_table(
        &[
            "WINDOW_START",
            "WINDOW_END",
            "KIND",
            "RECORDS",
            "OUTPUT",
            "DELIVERED",
            "MESSENGER",
        ],
        &cells,
    );
    Ok(())
}
