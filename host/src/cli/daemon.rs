//! `wattson daemon`: live per-VM power on a hypervisor, served over HTTP.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_CONFIG, EXIT_LOCKED, EXIT_PLUGIN, Failure};
use crate::daemon::{self, DaemonError, DaemonOptions};
use crate::policy::Override;
use crate::state::StateError;

/// Arguments of `wattson daemon`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wattson daemon --policy /etc/wattson/daemon.toml
  wattson daemon --policy policies/daemon.toml --listen 0.0.0.0:9847 --set daemon.interval_secs=5
  curl -s 127.0.0.1:9847/metrics | grep wattson_vm_power_watts")]
pub struct DaemonArgs {
    /// The policy file (reloaded on SIGHUP and when it changes).
    #[arg(long, short)]
    policy: PathBuf,
    /// Override a policy key by its dotted path with a TOML value (repeatable):
    /// --set daemon.interval_secs=5, --set inventory.libvirt_uri='"qemu:///system"'.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
    /// Listen on this address instead of `[daemon] listen` (default 127.0.0.1:9847).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// Runs `wattson daemon` until SIGTERM.
pub fn run(args: DaemonArgs) -> Result<(), Failure> {
    daemon::run(DaemonOptions {
        policy: args.policy,
        overrides: args.set,
        listen: args.listen,
    })
    .map_err(|e| {
        let code = match &e {
            DaemonError::Policy(_)
            | DaemonError::NotLocal { .. }
            | DaemonError::Token(_)
            | DaemonError::Listen { .. }
            | DaemonError::State(StateError::OtherPolicy { .. }) => EXIT_CONFIG,
            DaemonError::Plugin(_) => EXIT_PLUGIN,
            DaemonError::AlreadyRunning { .. } => EXIT_LOCKED,
            DaemonError::State(_) | DaemonError::Persist(_) | DaemonError::Runtime(_) => 1,
        };
        Failure::new(code, e)
    })
}
