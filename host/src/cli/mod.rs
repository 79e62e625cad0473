//! The command line: clap commands, logging, and exit codes.
//!
//! Exit codes: 0 success; 1 unexpected error; 2 policy or usage error;
//! 3 source error (Prometheus unreachable or failing); 4 plugin error;
//! 5 delivery error (payloads stay spooled); 6 another run of the policy is active.

/// Prints a line to stdout; a reader that stopped reading (`| head`) ends
/// the process quietly with 0, as ripgrep does.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}

mod completions;
mod daemon;
mod extract;
mod inventory;
mod plugins;
mod policy;
mod policy_init;
mod policy_reference;
mod report;
pub mod scrape_config;
mod spool;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: the policy or the command line is wrong.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: a measurement source failed.
pub const EXIT_SOURCE: u8 = 3;
/// Exit code: a plugin failed or broke its contract.
pub const EXIT_PLUGIN: u8 = 4;
/// Exit code: a messenger could not deliver (payloads stay spooled).
pub const EXIT_DELIVERY: u8 = 5;
/// Exit code: another run of the same policy holds the lock.
pub const EXIT_LOCKED: u8 = 6;

/// Attribute the energy of cloud hosts to their VMs and ship per-VM energy records.
#[derive(Debug, Parser)]
#[command(name = "wattson", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing EnvFilter syntax), e.g. `debug` or `wattson=debug`.
    #[arg(long, global = true, env = "WATTSON_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extract per-VM energy records for a window and deliver them.
    Extract(extract::ExtractArgs),
    /// On a hypervisor: sample libvirt and the local meters, attribute live, serve /metrics.
    Daemon(daemon::DaemonArgs),
    /// Usage and energy per project, VM, host or flavor over a period (default: last month).
    Report(report::ReportArgs),
    /// Prometheus scrape configuration for every hypervisor of a host list or `onehost list -x`.
    ScrapeConfig(scrape_config::ScrapeConfigArgs),
    /// The VMs Prometheus knows in a window, with their metadata.
    Inventory(inventory::InventoryArgs),
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// List and inspect plugins.
    Plugins {
        #[command(subcommand)]
        command: plugins::PluginsCommand,
    },
    /// What a policy's spool holds: list, retry delivery, drop windows.
    Spool {
        #[command(subcommand)]
        command: spool::SpoolCommand,
    },
    /// Print shell completions (bash, zsh, fish, …).
    Completions(completions::CompletionsArgs),
    /// Write a man page per command into a directory (for packages).
    #[command(hide = true)]
    Man(completions::ManArgs),
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }
}

/// Parses the command line, runs the command, prints errors and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Daemon(args) => daemon::run(args),
        Command::Extract(args) => extract::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Report(args) => report::run(args),
        Command::ScrapeConfig(args) => scrape_config::run(args),
        Command::Policy { command } => policy::run(command),
        Command::Plugins { command } => plugins::run(command),
        Command::Spool { command } => spool::run(command),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// The compile cache a policy asks for, else the default.
fn cache_dir(configured: Option<&PathBuf>) -> Option<PathBuf> {
    configured
        .cloned()
        .or_else(crate::runtime::default_cache_dir)
}

/// The plugin runtime a policy asks for, and its plugins bound to it.
fn bind(policy: &crate::policy::Policy) -> Result<crate::policy::Bound, Failure> {
    let runtime = crate::runtime::Runtime::new(
        policy.limits.clone(),
        cache_dir(policy.runtime.cache_dir.as_ref()),
    )
    .map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
    crate::policy::bind(policy, &runtime).map_err(|e| Failure::new(EXIT_CONFIG, e))
}

/// The policy's Prometheus client (none without `[prometheus]`), and a
/// current-thread runtime to query it on.
fn prometheus(
    policy: &crate::policy::Policy,
) -> Result<
    (
        Option<crate::sources::prometheus::Client>,
        tokio::runtime::Runtime,
    ),
    Failure,
> {
    let client = policy
        .prometheus
        .as_ref()
        .map(|p| crate::sources::prometheus::Client::new(p.get_ref().clone()))
        .transpose()
        .map_err(|e| Failure::new(EXIT_CONFIG, e))?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, e))?;
    Ok((client, tokio))
}

/// Columns padded to their widest cell, two spaces apart.
fn print_table(header: &[&str], cells: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = cols.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    for row in cells {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Writes one line to stdout (see `outln!`): on a closed pipe, exits 0 with
/// nothing on stderr; on another write error, says so and exits 1.
pub(crate) fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
