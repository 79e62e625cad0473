//! `wattson policy check`: everything a run would load, without gathering or sending.

use std::path::PathBuf;

use clap::Subcommand;

use super::{EXIT_CONFIG, EXIT_PLUGIN, Failure, cache_dir};
use crate::policy::{self, Override, Policy};
use crate::runtime::Runtime;

/// `wattson policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse a policy, load its plugins and check their parameters.
    #[command(after_help = "Examples:\n  \
        wattson policy check /etc/wattson/site.toml\n  \
        wattson policy check site.toml --set model.params.metric='\"kepler_vm_cpu_joules_total\"'")]
    Check {
        /// The policy file.
        file: PathBuf,
        /// Override a policy key by its dotted path with a TOML value (repeatable):
        /// --set window.step_secs=900, --set model.params.metric='"m_total"'.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
    },
}

/// Logs what the plan warns of (once per run), then fails with every problem
/// a window would hit with the bound model's measurements (no I/O), located
/// at the policy's `[model] plugin`.
pub(super) fn check_plan(policy: &Policy, bound: &policy::Bound) -> Result<(), Failure> {
    // `[model]`, then each rule: where it is named, and what it measures.
    let models = std::iter::once((
        "model".to_owned(),
        &policy.model.plugin,
        &bound.measurements,
    ))
    .chain(
        policy
            .rules
            .iter()
            .zip(&bound.rules)
            .enumerate()
            .map(|(i, (rule, bound))| (format!("rules[{i}]"), &rule.plugin, &bound.measurements)),
    );
    let mut problems = Vec::new();
    for (key, plugin, measurements) in models {
        for warning in crate::pipeline::plan_warnings(policy, measurements) {
            tracing::warn!("{warning}");
        }
        problems.extend(
            crate::pipeline::plan_problems(policy, measurements)
                .into_iter()
                .map(|message| match policy.source() {
                    Some(source) => {
                        policy::Problem::at(source, plugin.span(), Some(key.clone()), message)
                    }
                    None => policy::Problem {
                        location: None,
                        key: Some(key.clone()),
                        message,
                    },
                }),
        );
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        EXIT_CONFIG,
        policy::PolicyError::Invalid(problems),
    ))
}

/// Runs a `policy` subcommand.
pub fn run(command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Check { file, set } => {
            let policy =
                Policy::load_with(&file, &set).map_err(|e| Failure::new(EXIT_CONFIG, e))?;
            let runtime = Runtime::new(
                policy.limits.clone(),
                cache_dir(policy.runtime.cache_dir.as_ref()),
            )
            .map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
            let bound =
                policy::bind(&policy, &runtime).map_err(|e| Failure::new(EXIT_CONFIG, e))?;
            check_plan(&policy, &bound)?;
            outln!(
                "{}: ok (model {} {}, {} output(s))",
                file.display(),
                bound.model.info().name,
                bound.model.info().version,
                bound.outputs.len()
            );
            Ok(())
        }
    }
}
