//! `[rapl]`: the zones' wrap ranges (for node_exporter's counters) and the
//! local powercap tree (for the daemon).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigProblem, Validate};

/// `[rapl]`: where the host energy of `rapl` measurements comes from.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RaplConfig {
    /// `max_energy_range_uj` of each zone kind (`package`, `dram`, …), the
    /// wrap range of node_exporter's `node_rapl_<kind>_joules_total` (C1w).
    /// Read it on a host: `cat /sys/class/powercap/intel-rapl:0/max_energy_range_uj`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, f64>")]
    pub max_energy_range_uj: BTreeMap<String, Spanned<f64>>,
    /// The local powercap tree (default `/sys/class/powercap`), which only
    /// the daemon reads: it has no history, so `extract` refuses it.
    #[serde(default)]
    #[schemars(with = "Option<PathBuf>")]
    pub powercap_root: Option<Spanned<PathBuf>>,
}

impl Validate for RaplConfig {
    /// A wrap range that is not a positive number.
    fn problems(&self) -> Vec<ConfigProblem> {
        self.max_energy_range_uj
            .iter()
            .filter(|(_, range)| !(range.get_ref().is_finite() && *range.get_ref() > 0.0))
            .map(|(kind, range)| {
                ConfigProblem::new(
                    format!("max_energy_range_uj.{kind}"),
                    "must be a positive number of microjoules (the zone's max_energy_range_uj file)",
                )
                .at(range.span())
            })
            .collect()
    }
}
