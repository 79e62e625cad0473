//! `wattson inventory`: the VMs Prometheus knows in a window, with their
//! metadata from the libvirt exporter's info series, as a table or JSON.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{EXIT_CONFIG, EXIT_SOURCE, Failure};
use crate::policy::{InventoryConfig, Policy};
use crate::sources::prometheus::{Client, PrometheusConfig, VmMeta, vm_metadata};
use crate::window::{Window, parse_time};

/// Arguments of `wattson inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Take the Prometheus endpoint and `[inventory]` settings from this policy.
    #[arg(long, short)]
    policy: Option<PathBuf>,
    /// Query this Prometheus (overrides the policy's).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Window start (RFC 3339 or unix seconds; default: one hour before --to).
    #[arg(long)]
    from: Option<String>,
    /// Window end (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
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
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    let policy = args
        .policy
        .as_deref()
        .map(Policy::load)
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
    let prometheus = prometheus.ok_or_else(|| {
        config(anyhow::anyhow!(
            "no Prometheus to ask: pass --prometheus URL or --policy FILE with a [prometheus] table"
        ))
    })?;
    let default_inventory = InventoryConfig::default();
    let inventory = policy.as_ref().map_or(&default_inventory, |p| &p.inventory);
    let client = Client::new(prometheus).map_err(|e| config(e.into()))?;
    let end_ms = match &args.to {
        Some(t) => parse_time(t).map_err(|e| config(e.into()))?,
        None => chrono::Utc::now().timestamp_millis(),
    };
    let start_ms = match &args.from {
        Some(t) => parse_time(t).map_err(|e| config(e.into()))?,
        None => end_ms - 3_600_000,
    };
    let window = Window::new(start_ms, end_ms).map_err(|e| config(e.into()))?;

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
            let meta = VmMeta::from_labels(labels);
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
                    .cloned(),
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
        println!("{json}");
        return Ok(());
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Row]) {
    let header = ["UUID", "NAME", "PROJECT", "USER", "FLAVOR", "HOST"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            [
                r.uuid.clone(),
                or_dash(&r.name),
                or_dash(&r.project_name.clone().or(r.project_id.clone())),
                or_dash(&r.user_name.clone().or(r.user_id.clone())),
                or_dash(&r.flavor),
                or_dash(&r.host),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: [&str; 6]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
}
