//! `wattson policy check`: everything a run would load, without gathering or sending.

use std::path::PathBuf;

use clap::Subcommand;

use super::{EXIT_CONFIG, EXIT_PLUGIN, Failure, cache_dir};
use crate::policy::{self, Policy};
use crate::runtime::Runtime;

/// `wattson policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse a policy, load its plugins and check their parameters.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

/// Runs a `policy` subcommand.
pub fn run(command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Check { file } => {
            let policy = Policy::load(&file).map_err(|e| Failure::new(EXIT_CONFIG, e))?;
            let runtime = Runtime::new(
                policy.limits.clone(),
                cache_dir(policy.runtime.cache_dir.as_ref()),
            )
            .map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
            let bound =
                policy::bind(&policy, &runtime).map_err(|e| Failure::new(EXIT_CONFIG, e))?;
            println!(
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
