//! Hosts' capacity measured from node_exporter, for `[embodied]` hosts
//! whose entry gives none (`docs/ENERGY.md#embodied-carbon`): logical CPUs
//! (`node_cpu_seconds_total{mode="idle"}` series) and `MemTotal`, seen over
//! the window, by host key.

use std::collections::HashMap;

use super::Capacity;
use crate::sources::prometheus::{Client, Labels, PrometheusError, Series};
use crate::window::Window;

/// node_exporter's CPU time per logical CPU and mode.
const CPU_SECONDS: &str = "node_cpu_seconds_total";

/// node_exporter's physical memory, bytes.
const MEM_TOTAL: &str = "node_memory_MemTotal_bytes";

/// Each host's capacity over `window`, by the host key `host_of` reads off
/// a series' labels (`[inventory] host_label`, `key_label`, normalised);
/// where several label values are one key, the greatest. A host missing
/// either series is left out (its capacity is not known).
pub async fn measure(
    client: &Client,
    key_label: &str,
    host_of: impl Fn(&Labels) -> Option<String>,
    window: Window,
) -> Result<HashMap<String, Capacity>, PrometheusError> {
    let range_ms = window.len_ms();
    let cpus = format!(
        "count by ({key_label}) (last_over_time({CPU_SECONDS}{{mode=\"idle\"}}[{range_ms}ms]))"
    );
    let memory = format!("max by ({key_label}) (max_over_time({MEM_TOTAL}[{range_ms}ms]))");
    let (cpus, memory) = futures::future::try_join(
        client.query(&cpus, window.end_ms),
        client.query(&memory, window.end_ms),
    )
    .await?;
    let greatest = |series: Vec<Series>| {
        let mut by_host: HashMap<String, f64> = HashMap::new();
        for s in series {
            let (Some(host), Some(value)) = (host_of(&s.labels), s.samples.first()) else {
                continue;
            };
            let value = value.value;
            by_host
                .entry(host)
                .and_modify(|v| *v = v.max(value))
                .or_insert(value);
        }
        by_host
    };
    let cpus = greatest(cpus);
    let memory = greatest(memory);
    Ok(cpus
        .into_iter()
        .filter_map(|(host, vcpus)| {
            let bytes = *memory.get(&host)?;
            Some((
                host,
                Capacity {
                    vcpus,
                    memory_mib: bytes / 1_048_576.0,
                },
            ))
        })
        .collect())
}
