//! `wattson inventory`: the VMs libvirt knows now (`--uri`, with their CPU
//! seconds so far), or those Prometheus knows in a window with their metadata
//! from the libvirt exporter's info series, as a table or JSON.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{EXIT_CONFIG, EXIT_SOURCE, Failure};
use crate::policy::{InventoryConfig, Override, Policy};
use crate::sources::cloud::{CloudApi, CloudVm};
use crate::sources::libvirt::{CloudMetadata, CpuTimes, Domain, Libvirt};
use crate::sources::opennebula;
use crate::sources::openstack::Session;
use crate::sources::prometheus::{Client, PrometheusConfig, owner, vm_metadata};
use crate::window::{Window, format_ms, parse_time};

/// Arguments of `wattson inventory`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wattson inventory --uri qemu:///system
  wattson inventory --prometheus http://prometheus:9090 --json
  wattson inventory --policy site.toml --from 2025-06-01T00:00:00Z --to 2025-06-01T01:00:00Z
  wattson inventory --policy policies/nova.toml --source nova --from 2025-06-01T00:00:00Z --json")]
pub struct InventoryArgs {
    /// Take the Prometheus endpoint and `[inventory]` settings from this policy.
    #[arg(long, short)]
    policy: Option<PathBuf>,
    /// Override a key of the policy by its dotted path with a TOML value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "policy")]
    set: Vec<Override>,
    /// Query this Prometheus (overrides the policy's).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Ask libvirt at this URI instead (`qemu:///system`, `test:///path/node.xml`).
    #[arg(long, value_name = "URI", conflicts_with_all = ["prometheus", "from", "to"])]
    uri: Option<String>,
    /// Window start (RFC 3339 or unix seconds; default: one hour before --to).
    #[arg(long)]
    from: Option<String>,
    /// Window end (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Ask the cloud's API the policy's `[nova]` or `[opennebula]` names, for
    /// every VM that lived in the window (deleted ones included), instead of
    /// Prometheus.
    #[arg(long, value_enum, requires = "policy", conflicts_with_all = ["prometheus", "uri"])]
    source: Option<CloudSource>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--source`: a cloud's API.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CloudSource {
    /// OpenStack: Nova's servers, Keystone's project names (`[nova]`).
    Nova,
    /// OpenNebula: its VM pool and the window's history records (`[opennebula]`).
    Opennebula,
}

/// One VM as printed.
#[derive(Debug, Serialize)]
struct Row {
    uuid: String,
    name: Option<String>,
    project_id: Option<String>,
    project_name: Option<String>,
    user_id: Option<String>,
    user_name: Option<String>,
    flavor: Option<String>,
    host: Option<String>,
}

/// Runs `wattson inventory`.
pub fn run(args: InventoryArgs) -> Result<(), Failure> {
    if let Some(uri) = &args.uri {
        return from_libvirt(uri, args.json);
    }
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    let policy = args
        .policy
        .as_deref()
        .map(|path| Policy::load_with(path, &args.set))
        .transpose()
        .map_err(|e| config(e.into()))?;
    let mut prometheus = policy
        .as_ref()
        .and_then(|p| p.prometheus.as_ref())
        .map(|p| p.get_ref().clone());
    if let Some(url) = &args.prometheus {
        prometheus = Some(match prometheus {
            Some(p) => PrometheusConfig {
                url: url.clone(),
                ..p
            },
            None => PrometheusConfig::with_url(url),
        });
    }
    let window = window_of(&args).map_err(config)?;
    if let (Some(source), Some(policy)) = (args.source, &policy) {
        return from_cloud(policy, source, window, args.json);
    }
    let prometheus = prometheus.ok_or_else(|| {
        config(anyhow::anyhow!(
            "no Prometheus to ask: pass --prometheus URL or --policy FILE with a [prometheus] table"
        ))
    })?;
    let default_inventory = InventoryConfig::default();
    let inventory = policy.as_ref().map_or(&default_inventory, |p| &p.inventory);
    let client = Client::new(prometheus).map_err(|e| config(e.into()))?;

    let metadata = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, e))?
        .block_on(vm_metadata(
            &client,
            &inventory.meta_metric,
            &inventory.meta_uuid_label,
            window,
        ))
        .map_err(|e| Failure::new(EXIT_SOURCE, e))?;
    let mut rows: Vec<Row> = metadata
        .iter()
        .map(|(uuid, labels)| {
            let meta = owner(labels);
            Row {
                uuid: uuid.clone(),
                name: meta.name,
                project_id: meta.project_id,
                project_name: meta.project_name,
                user_id: meta.user_id,
                user_name: meta.user_name,
                flavor: meta.flavor,
                host: labels
                    .get(inventory.host_label.as_deref().unwrap_or("instance"))
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    if rows.is_empty() {
        tracing::warn!(
            metric = inventory.meta_metric,
            %window,
            "no VMs found: is the libvirt exporter's info series scraped by {}?",
            client.url()
        );
    }
    if args.json {
        let json = serde_json::to_string_pretty(&rows).map_err(|e| Failure::new(1, e))?;
        outln!("{json}");
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.uuid.clone(),
                or_dash(r.name.as_deref()),
                or_dash(r.project_name.as_deref().or(r.project_id.as_deref())),
                or_dash(r.user_name.as_deref().or(r.user_id.as_deref())),
                or_dash(r.flavor.as_deref()),
                or_dash(r.host.as_deref()),
            ]
        })
        .collect();
    super::print_table(
        &["UUID", "NAME", "PROJECT", "USER", "FLAVOR", "HOST"],
        &cells,
    );
    Ok(())
}

/// `--from`/`--to`: by default the hour up to now.
fn window_of(args: &InventoryArgs) -> anyhow::Result<Window> {
    let end_ms = match &args.to {
        Some(t) => parse_time(t)?,
        None => chrono::Utc::now().timestamp_millis(),
    };
    let start_ms = match &args.from {
        Some(t) => parse_time(t)?,
        None => end_ms - 3_600_000,
    };
    Ok(Window::new(start_ms, end_ms)?)
}

/// `wattson inventory --source nova|opennebula`: every VM the cloud says
/// lived in `window`.
fn from_cloud(
    policy: &Policy,
    source: CloudSource,
    window: Window,
    json: bool,
) -> Result<(), Failure> {
    let missing = |table: &str| {
        Failure::new(
            EXIT_CONFIG,
            anyhow::anyhow!("--source needs a [{table}] table in the policy"),
        )
    };
    let config = |e| Failure::new(EXIT_CONFIG, e);
    let api = match source {
        CloudSource::Nova => CloudApi::Nova(Box::new(
            Session::new(policy.nova.as_ref().ok_or_else(|| missing("nova"))?).map_err(config)?,
        )),
        CloudSource::Opennebula => CloudApi::OpenNebula(
            opennebula::Client::new(
                policy
                    .opennebula
                    .as_ref()
                    .ok_or_else(|| missing("opennebula"))?,
            )
            .map_err(config)?,
        ),
    };
    let inventory = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, e))?
        .block_on(api.inventory(window))
        .map_err(|e| Failure::new(EXIT_SOURCE, e))?;
    let mut vms: Vec<&CloudVm> = inventory.vms.values().collect();
    vms.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    if vms.is_empty() {
        tracing::warn!(%window, "{} says no VM lived in this window", inventory.endpoint);
    }
    if json {
        let json = serde_json::to_string_pretty(&vms).map_err(|e| Failure::new(1, e))?;
        outln!("{json}");
        return Ok(());
    }
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), format_ms);
    let cells: Vec<Vec<String>> = vms
        .iter()
        .map(|vm| {
            let o = &vm.owner;
            vec![
                vm.uuid.clone(),
                or_dash(o.name.as_deref()),
                or_dash(o.project_name.as_deref().or(o.project_id.as_deref())),
                or_dash(o.user_name.as_deref().or(o.user_id.as_deref())),
                or_dash(o.flavor.as_deref()),
                or_dash(vm.host.as_deref()),
                vm.status.clone(),
                time(vm.launched_ms),
                time(vm.terminated_ms),
            ]
        })
        .collect();
    super::print_table(
        &[
            "UUID",
            "NAME",
            "PROJECT",
            "USER",
            "FLAVOR",
            "HOST",
            "STATUS",
            "LAUNCHED",
            "TERMINATED",
        ],
        &cells,
    );
    Ok(())
}

/// `wattson inventory --uri URI`: every domain libvirt has, active or not.
fn from_libvirt(uri: &str, json: bool) -> Result<(), Failure> {
    let failed = |e| Failure::new(EXIT_SOURCE, e);
    let libvirt = Libvirt::open(uri).map_err(failed)?;
    let domains = libvirt.domains().map_err(failed)?;
    // CPU time is extra: without it the listing still says what it can.
    let cpu = libvirt.cpu_seconds().unwrap_or_else(|e| {
        tracing::warn!("{e}: CPU times left out");
        Default::default()
    });
    // Each domain with its CPU seconds so far (none when it is not running).
    let rows: Vec<Domain> = domains
        .into_iter()
        .map(|domain| Domain {
            cpu_s: cpu.get(&domain.uuid).copied().or(domain.cpu_s),
            ..domain
        })
        .collect();
    if json {
        let json = serde_json::to_string_pretty(&rows).map_err(|e| Failure::new(1, e))?;
        outln!("{json}");
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            let (display, project, user, flavor, kind) = match &d.metadata {
                CloudMetadata::Nova(n) => (
                    n.display_name.as_deref(),
                    n.project_name.as_deref().or(n.project_id.as_deref()),
                    n.user_name.as_deref().or(n.user_id.as_deref()),
                    n.flavor.as_ref().and_then(|f| f.name.as_deref()),
                    if n.version == "1.0" {
                        "nova-1.0"
                    } else {
                        "nova-1.1"
                    },
                ),
                CloudMetadata::OpenNebula(o) => (
                    o.name.as_deref(),
                    o.group_name.as_deref(),
                    o.user_name.as_deref(),
                    None,
                    "opennebula",
                ),
                CloudMetadata::None => (None, None, None, None, "none"),
            };
            vec![
                d.uuid.clone(),
                d.name.clone(),
                or_dash(display),
                d.state.as_str().to_owned(),
                d.vcpus.to_string(),
                d.memory_mb.to_string(),
                d.cpu_s
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
                or_dash(project),
                or_dash(user),
                or_dash(flavor),
                kind.to_owned(),
            ]
        })
        .collect();
    super::print_table(
        &[
            "UUID",
            "DOMAIN",
            "NAME",
            "STATE",
            "VCPUS",
            "MEMORY_MB",
            "CPU_S",
            "PROJECT",
            "USER",
            "FLAVOR",
            "METADATA",
        ],
        &cells,
    );
    Ok(())
}

fn or_dash(v: Option<&str>) -> String {
    v.unwrap_or("-").to_owned()
}
