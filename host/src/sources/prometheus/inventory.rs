//! VM metadata from Prometheus (an accounting host has no libvirt): the
//! libvirt exporter's info series `libvirt_domain_info_meta{uuid, domain,
//! instance_name, project_uuid, project_name, user_uuid, user_name, flavor, …}`,
//! joined to the energy series by uuid.

use std::collections::HashMap;

use super::client::{Client, PrometheusError};
use super::labels::Labels;
use crate::sources::owner::Owner;
use crate::window::Window;

/// Labels of the info series of every VM seen in the window, by uuid.
pub type Metadata = HashMap<String, Labels>;

/// What the libvirt exporter's info series says of a VM's owner, from its
/// labels: `instance_name` else `domain`, `project_uuid`, `project_name`,
/// `user_uuid`, `user_name`, `flavor`; empty values count as absent.
pub fn owner(labels: &Labels) -> Owner {
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| labels.get(n))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Owner {
        name: get(&["instance_name", "domain"]),
        project_id: get(&["project_uuid"]),
        project_name: get(&["project_name"]),
        user_id: get(&["user_uuid"]),
        user_name: get(&["user_name"]),
        flavor: get(&["flavor"]),
    }
}

/// The info series' labels per uuid over the window (`last_over_time`, so VMs
/// that stopped inside the window are described too). An empty `metric` or a
/// metric Prometheus does not have gives no metadata.
pub async fn vm_metadata(
    client: &Client,
    metric: &str,
    uuid_label: &str,
    window: Window,
) -> Result<Metadata, PrometheusError> {
    let series = last_values(client, metric, window).await?;
    Ok(series
        .into_iter()
        .filter_map(|s| {
            let uuid = s.labels.get(uuid_label)?.to_owned();
            Some((uuid, s.labels))
        })
        .collect())
}

/// vCPUs and memory (MiB) per uuid from the libvirt exporter's gauges
/// (`libvirt_domain_info_virtual_cpus`, `libvirt_domain_info_maximum_memory_bytes`),
/// their last values in the window; an empty metric name skips that one.
pub async fn vm_sizes(
    client: &Client,
    vcpus_metric: &str,
    memory_metric: &str,
    uuid_label: &str,
    window: Window,
) -> Result<HashMap<String, (Option<u32>, Option<u64>)>, PrometheusError> {
    let (vcpus, memory) = tokio::try_join!(
        last_values(client, vcpus_metric, window),
        last_values(client, memory_metric, window)
    )?;
    let mut sizes: HashMap<String, (Option<u32>, Option<u64>)> = HashMap::new();
    // Each series' last value, if it can be a size.
    let values = |series: Vec<super::client::Series>| {
        series.into_iter().filter_map(|s| {
            let value = s.samples.first()?.value;
            let uuid = s.labels.get(uuid_label)?.to_owned();
            (value.is_finite() && value >= 0.0).then_some((uuid, value))
        })
    };
    for (uuid, value) in values(vcpus) {
        sizes.entry(uuid).or_default().0 = Some(value.round() as u32);
    }
    for (uuid, value) in values(memory) {
        sizes.entry(uuid).or_default().1 = Some((value / 1_048_576.0).round() as u64);
    }
    Ok(sizes)
}

/// `last_over_time(metric[window + lookback])` at the window's end; nothing for an empty name.
async fn last_values(
    client: &Client,
    metric: &str,
    window: Window,
) -> Result<Vec<super::client::Series>, PrometheusError> {
    if metric.is_empty() {
        return Ok(Vec::new());
    }
    let range_ms = window.len_ms() + client.config.lookback_secs as i64 * 1000;
    client
        .query(
            &format!("last_over_time({metric}[{range_ms}ms])"),
            window.end_ms,
        )
        .await
}

/// Each VM's disk size over `window`, bytes: every device's largest size in
/// the window, added up per VM (`metric` keyed by `uuid_label`). Empty when
/// `metric` is `""`.
pub async fn vm_disks(
    client: &Client,
    metric: &str,
    uuid_label: &str,
    window: Window,
) -> Result<HashMap<String, f64>, PrometheusError> {
    if metric.is_empty() {
        return Ok(HashMap::new());
    }
    let query = format!(
        "sum by ({uuid_label}) (max_over_time({metric}[{}ms]))",
        window.len_ms()
    );
    Ok(client
        .query(&query, window.end_ms)
        .await?
        .into_iter()
        .filter_map(|s| {
            let uuid = s.labels.get(uuid_label)?.to_owned();
            Some((uuid, s.samples.first()?.value))
        })
        .collect())
}
