//! `[rapl]`: the zones' wrap ranges (for node_exporter's counters) and the
//! local powercap tree (for the daemon).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// `[rapl]`: where the host energy of `rapl` measurements comes from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaplConfig {
    /// `max_energy_range_uj` of each zone kind (`package`, `dram`, …), the
    /// wrap range of node_exporter's `node_rapl_<kind>_joules_total` (C1w).
    /// Read it on a host: `cat /sys/class/powercap/intel-rapl:0/max_energy_range_uj`.
    #[serde(default)]
    pub max_energy_range_uj: BTreeMap<String, Spanned<f64>>,
    /// The local powercap tree (default `/sys/class/powercap`), which only
    /// the daemon reads: it has no history, so `extract` refuses it.
    #[serde(default)]
    pub powercap_root: Option<Spanned<PathBuf>>,
}
