//! `wattson scrape-config`: Prometheus scrape configuration for every
//! hypervisor of a host list or of OpenNebula's `onehost list -x`.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_CONFIG, Failure};
use crate::scrape_config::{self, Options, Target};

/// Arguments of `wattson scrape-config`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wattson scrape-config --hosts hosts.txt --token-file /etc/prometheus/wattson-token
  onehost list -x > hosts.xml && wattson scrape-config --one-xml hosts.xml --target scaphandre")]
pub struct ScrapeConfigArgs {
    /// A file of `host_id name[:port]` lines.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "one_xml",
        required_unless_present = "one_xml"
    )]
    hosts: Option<PathBuf>,
    /// OpenNebula's `onehost list -x` output.
    #[arg(long, value_name = "FILE")]
    one_xml: Option<PathBuf>,
    /// What runs on each host: wattson's daemon (9847), Scaphandre (8080) or node_exporter (9100).
    #[arg(long, value_enum, default_value = "wattson")]
    target: Target,
    /// The job name (default: the target's).
    #[arg(long)]
    job: Option<String>,
    /// Send the bearer token in this file (on the Prometheus server), as the
    /// daemon's `[daemon] token_file` expects.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// Runs `wattson scrape-config`.
pub fn run(args: ScrapeConfigArgs) -> Result<(), Failure> {
    let (hosts, source) = match (&args.hosts, &args.one_xml) {
        (Some(path), _) => (scrape_config::from_list(path), path),
        (None, Some(path)) => (scrape_config::from_one_xml(path), path),
        (None, None) => {
            return Err(Failure::new(
                EXIT_CONFIG,
                anyhow::anyhow!("give --hosts FILE or --one-xml FILE"),
            ));
        }
    };
    let hosts = hosts.map_err(|e| Failure::new(EXIT_CONFIG, e))?;
    let source = source.display().to_string();
    let yaml = scrape_config::render(
        &hosts,
        &Options {
            target: args.target,
            job: args.job.as_deref(),
            token_file: args.token_file.as_deref(),
            source: &source,
        },
    );
    super::print_line(format_args!("{}", yaml.trim_end()));
    Ok(())
}
