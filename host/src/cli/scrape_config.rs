//! `wattson scrape-config`: Prometheus `scrape_configs` entries for every
//! hypervisor of a host list or of OpenNebula's `onehost list -x` (seed 001's
//! `generate_conf.sh`, for any of the exporters a wattson site runs): one
//! static config per host, labelled `host_id`. The command's arguments, the
//! host-list readers and the YAML renderer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_CONFIG, Failure};

/// Arguments of `wattson scrape-config`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wattson scrape-config --hosts hosts.txt --token-file /etc/prometheus/wattson-token
  onehost list -x > hosts.xml && wattson scrape-config --one-xml hosts.xml --target scaphandre")]
pub struct ScrapeConfigArgs {
    /// A file of `host_id name[:port]` lines (an IPv6 address bare, or in
    /// brackets with a port: `[2001:db8::5]:9847`).
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
        (Some(path), _) => (from_list(path), path),
        (None, Some(path)) => (from_one_xml(path), path),
        (None, None) => {
            return Err(Failure::new(
                EXIT_CONFIG,
                anyhow::anyhow!("give --hosts FILE or --one-xml FILE"),
            ));
        }
    };
    let hosts = hosts.map_err(|e| Failure::new(EXIT_CONFIG, e))?;
    let source = source.display().to_string();
    let yaml = render(
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

/// What runs on each host and is scraped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `wattson daemon` (port 9847).
    Wattson,
    /// Scaphandre's Prometheus exporter (port 8080).
    Scaphandre,
    /// node_exporter, e.g. for its rapl collector (port 9100).
    Node,
}

impl Target {
    /// The exporter's default port.
    pub fn port(self) -> u16 {
        match self {
            Self::Wattson => 9847,
            Self::Scaphandre => 8080,
            Self::Node => 9100,
        }
    }

    fn job(self) -> &'static str {
        match self {
            Self::Wattson => "wattson",
            Self::Scaphandre => "scaphandre",
            Self::Node => "node",
        }
    }
}

/// One host to scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The cloud's host id (OpenNebula's `ID`), the `host_id` label.
    pub id: String,
    /// Host name or address (an IPv6 address without brackets).
    pub name: String,
    /// Port, where the list gives one.
    pub port: Option<u16>,
}

/// Why a host list cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A line or element is not what it should be.
    #[error("{path}:{line}: {message}")]
    Bad {
        /// The file.
        path: String,
        /// Its line (1-based).
        line: usize,
        /// What is wrong and what is expected.
        message: String,
    },
    /// Two hosts have one id: their series would be told apart by nothing.
    #[error(
        "{path}:{second}: host id {id:?} is also the id of the host on line {first}: give each \
         host its own id (it is its series' `host_id` label)"
    )]
    Duplicate {
        /// The file.
        path: String,
        /// The id.
        id: String,
        /// The line of the first host with it (1-based).
        first: usize,
        /// The line of the second.
        second: usize,
    },
    /// No host at all: an empty configuration would scrape nothing.
    #[error("{path}: no hosts in it ({expected})")]
    Empty {
        /// The file.
        path: String,
        /// What a host looks like there.
        expected: &'static str,
    },
}

fn read(path: &Path) -> Result<String, HostsError> {
    std::fs::read_to_string(path).map_err(|error| HostsError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// Hosts from a file of `host_id name[:port]` lines (`#` comments, blank
/// lines skipped; an IPv6 address bare, or in brackets with a port); each
/// id once.
pub fn from_list(path: &Path) -> Result<Vec<Host>, HostsError> {
    let text = read(path)?;
    let bad = |line: usize, message: String| HostsError::Bad {
        path: path.display().to_string(),
        line,
        message,
    };
    let mut hosts = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(id), Some(address), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad(
                i + 1,
                format!("{line:?}: expected `host_id name[:port]`, e.g. `2 kvm-02.example.org`"),
            ));
        };
        let (name, port) = name_and_port(address).map_err(|message| bad(i + 1, message))?;
        hosts.push(Host {
            id: id.to_owned(),
            name: name.to_owned(),
            port,
        });
        lines.push(i + 1);
    }
    if hosts.is_empty() {
        return Err(HostsError::Empty {
            path: path.display().to_string(),
            expected: "lines of `host_id name[:port]`",
        });
    }
    unique_ids(path, &hosts, &lines)?;
    Ok(hosts)
}

/// `name[:port]`, `[ipv6]`, `[ipv6]:port` or a bare IPv6 address, split
/// into the name (an IPv6 address without brackets) and the port.
fn name_and_port(address: &str) -> Result<(&str, Option<u16>), String> {
    let port = |text: &str| match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(format!("{text:?} is not a port (1-65535)")),
    };
    let ipv6 = |text: &str| text.parse::<Ipv6Addr>().is_ok();
    if let Some(bracketed) = address.strip_prefix('[') {
        let example = "e.g. `[2001:db8::5]` or `[2001:db8::5]:9847`";
        return match bracketed.split_once(']') {
            Some((name, "")) if ipv6(name) => Ok((name, None)),
            Some((name, rest)) if ipv6(name) => match rest.strip_prefix(':') {
                Some(p) => Ok((name, port(p)?)),
                None => Err(format!("{address:?}: expected `[ipv6]:port`, {example}")),
            },
            _ => Err(format!(
                "{address:?}: brackets hold an IPv6 address, {example}"
            )),
        };
    }
    if ipv6(address) {
        return Ok((address, None));
    }
    match address.rsplit_once(':') {
        Some((name, _)) if name.contains(':') => Err(format!(
            "{address:?} is not an IPv6 address: with a port, write it in brackets, e.g. \
             `[2001:db8::5]:9847`"
        )),
        Some((name, p)) => Ok((name, port(p)?)),
        None => Ok((address, None)),
    }
}

/// An error naming both lines if two of `hosts` (at `lines` of `path`)
/// have one id.
fn unique_ids(path: &Path, hosts: &[Host], lines: &[usize]) -> Result<(), HostsError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (host, &line) in hosts.iter().zip(lines) {
        if let Some(&first) = seen.get(host.id.as_str()) {
            return Err(HostsError::Duplicate {
                path: path.display().to_string(),
                id: host.id.clone(),
                first,
                second: line,
            });
        }
        seen.insert(&host.id, line);
    }
    Ok(())
}

/// Hosts from OpenNebula's `onehost list -x` (`<HOST_POOL><HOST><ID>…</ID>
/// <NAME>…</NAME>…</HOST>…`); each id once.
pub fn from_one_xml(path: &Path) -> Result<Vec<Host>, HostsError> {
    let text = read(path)?;
    let document = roxmltree::Document::parse(&text).map_err(|e| HostsError::Bad {
        path: path.display().to_string(),
        line: e.pos().row as usize,
        message: format!("not XML: {e} (give the output of `onehost list -x`)"),
    })?;
    let mut hosts = Vec::new();
    let mut lines = Vec::new();
    for host in document.descendants().filter(|n| n.has_tag_name("HOST")) {
        let line = document.text_pos_at(host.range().start).row as usize;
        let child = |tag: &str| {
            host.children()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(str::trim)
                .filter(|t| !t.is_empty())
        };
        match (child("ID"), child("NAME")) {
            (Some(id), Some(name)) => {
                // OpenNebula names a host as it was added: an IPv6 address
                // may come in brackets.
                let name = name
                    .strip_prefix('[')
                    .and_then(|n| n.strip_suffix(']'))
                    .filter(|n| n.parse::<Ipv6Addr>().is_ok())
                    .unwrap_or(name);
                hosts.push(Host {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    port: None,
                });
                lines.push(line);
            }
            _ => {
                return Err(HostsError::Bad {
                    path: path.display().to_string(),
                    line,
                    message: "a <HOST> without <ID> or <NAME>".into(),
                });
            }
        }
    }
    if hosts.is_empty() {
        return Err(HostsError::Empty {
            path: path.display().to_string(),
            expected: "<HOST> elements, as `onehost list -x` prints them",
        });
    }
    unique_ids(path, &hosts, &lines)?;
    Ok(hosts)
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// The exporter scraped on each host.
    pub target: Target,
    /// The job's name (default: the target's).
    pub job: Option<&'a str>,
    /// A file holding the bearer token (the daemon's `[daemon] token_file`).
    pub token_file: Option<&'a Path>,
    /// Where the hosts came from, for the header comment.
    pub source: &'a str,
}

/// A YAML single-quoted scalar.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The `scrape_configs` entry (a YAML list item, to paste under
/// `scrape_configs:`) scraping every host.
pub fn render(hosts: &[Host], options: &Options<'_>) -> String {
    let target = options.target;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# wattson scrape-config: {} host(s) from {}, {} on port {} unless given.\n\
         # Paste under `scrape_configs:` in prometheus.yml, then `promtool check config`.",
        hosts.len(),
        options.source,
        target.job(),
        target.port()
    );
    let _ = writeln!(
        out,
        "- job_name: {}",
        quoted(options.job.unwrap_or(target.job()))
    );
    if let Some(file) = options.token_file {
        let _ = writeln!(
            out,
            "  authorization:\n    type: Bearer\n    credentials_file: {}",
            quoted(&file.display().to_string())
        );
    }
    out.push_str("  static_configs:\n");
    for host in hosts {
        let port = host.port.unwrap_or(target.port());
        // An IPv6 address goes in brackets before its port.
        let address = if host.name.contains(':') {
            format!("[{}]:{port}", host.name)
        } else {
            format!("{}:{port}", host.name)
        };
        let _ = writeln!(
            out,
            "    - targets: [{}]\n      labels:\n        host_id: {}",
            quoted(&address),
            quoted(&host.id)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn a_host_list_gives_one_target_per_line() {
        let f = file("# id name\n2 kvm-02\n\n7 kvm-07.example.org:9999  # moved\n");
        let hosts = from_list(f.path()).unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[1].port, Some(9999));
        let yaml = render(
            &hosts,
            &Options {
                target: Target::Scaphandre,
                job: None,
                token_file: None,
                source: "hosts.txt",
            },
        );
        assert!(yaml.contains("- job_name: 'scaphandre'\n"), "{yaml}");
        assert!(
            yaml.contains("    - targets: ['kvm-02:8080']\n      labels:\n        host_id: '2'\n"),
            "{yaml}"
        );
        assert!(yaml.contains("['kvm-07.example.org:9999']"), "{yaml}");
    }

    #[test]
    fn bad_lines_and_empty_lists_are_named() {
        let f = file("2 kvm-02\n3\n");
        let e = from_list(f.path()).unwrap_err().to_string();
        assert!(
            e.ends_with(":2: \"3\": expected `host_id name[:port]`, e.g. `2 kvm-02.example.org`"),
            "{e}"
        );
        let f = file("2 kvm-02:http\n");
        assert!(
            from_list(f.path())
                .unwrap_err()
                .to_string()
                .contains("not a port")
        );
        let f = file("# nothing\n");
        assert!(
            from_list(f.path())
                .unwrap_err()
                .to_string()
                .contains("no hosts")
        );
    }

    #[test]
    fn onehost_xml_gives_ids_and_names() {
        let f = file(
            "<HOST_POOL>\n  <HOST>\n    <ID>0</ID>\n    <NAME>kvm-a</NAME>\n    <STATE>2</STATE>\n  </HOST>\n  <HOST>\n    <ID>3</ID>\n    <NAME>kvm-b</NAME>\n  </HOST>\n</HOST_POOL>\n",
        );
        let hosts = from_one_xml(f.path()).unwrap();
        assert_eq!(
            hosts
                .iter()
                .map(|h| (h.id.as_str(), h.name.as_str()))
                .collect::<Vec<_>>(),
            [("0", "kvm-a"), ("3", "kvm-b")]
        );
        let f = file("<HOST_POOL><HOST><ID>1</ID></HOST></HOST_POOL>");
        assert!(
            from_one_xml(f.path())
                .unwrap_err()
                .to_string()
                .contains("without <ID> or <NAME>")
        );
        let f = file("ID 1 NAME kvm");
        assert!(
            from_one_xml(f.path())
                .unwrap_err()
                .to_string()
                .contains("not XML")
        );
    }
}
