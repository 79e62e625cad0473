//! VM metadata from Prometheus (an accounting host has no libvirt): the
//! libvirt exporter's info series `libvirt_domain_info_meta{uuid, domain,
//! instance_name, project_uuid, project_name, user_uuid, user_name, flavor, …}`,
//! joined to the energy series by uuid.

use std::collections::{BTreeMap, HashMap};

use super::client::{Client, PrometheusError};
use crate::window::Window;

/// Labels of the info series of every VM seen in the window, by uuid.
pub type Metadata = HashMap<String, BTreeMap<String, String>>;

/// The info series' labels per uuid over the window (`last_over_time`, so VMs
/// that stopped inside the window are described too). An empty `metric` or a
/// metric Prometheus does not have gives no metadata.
pub async fn vm_metadata(
    client: &Client,
    metric: &str,
    uuid_label: &str,
    window: Window,
) -> Result<Metadata, PrometheusError> {
    if metric.is_empty() {
        return Ok(Metadata::new());
    }
    let range_ms = window.len_ms() + client.config.lookback_secs as i64 * 1000;
    let series = client
        .query(
            &format!("last_over_time({metric}[{range_ms}ms])"),
            window.end_ms,
        )
        .await?;
    Ok(series
        .into_iter()
        .filter_map(|s| {
            let uuid = s.labels.get(uuid_label)?.clone();
            Some((uuid, s.labels))
        })
        .collect())
}
