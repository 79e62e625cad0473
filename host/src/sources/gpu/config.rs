//! `[gpu]`: where a model's `gpu` measurement comes from: DCGM's series and
//! the holders' info series in `extract`, a local command and the domains'
//! `<hostdev>`s in the daemon (`docs/ENERGY.md#gpus`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use globset::Glob;
use serde::Deserialize;
use toml::Spanned;

use super::smi::DEFAULT_COMMAND;
use crate::config::{ConfigProblem, Validate, in_order};

/// Compute slices of a MIG-capable card whose `modelName` no
/// `mig_slices` pattern matches (A100, H100: 7).
pub const DEFAULT_MIG_SLICES: u32 = 7;

/// The `[gpu]` table of a policy. Without it, the `gpu` measurement is
/// empty: models attribute no GPU energy and records carry no `gpu_j`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// PromQL selector of each card's energy counter (DCGM's, in mJ since
    /// the driver loaded), labelled by host, `pci_bus_id` and `UUID`.
    #[serde(default = "default_counter")]
    pub counter: String,
    /// Unit of `counter`: `millijoules` (DCGM) or `joules` (the daemon's
    /// `wattson_host_gpu_energy_joules_total`).
    #[serde(default)]
    pub counter_unit: CounterUnit,
    /// PromQL selector of each card's power gauge, watts, read where a card
    /// has no counter series.
    #[serde(default = "default_gauge")]
    pub gauge: String,
    /// The info series saying which VM holds which card when (labels
    /// `uuid`, `host`, `pci_bus_id`, `gpu_uuid`, `mode`, `share`, `profile`),
    /// as `wattson daemon` exports it.
    #[serde(default = "default_holders_metric")]
    pub holders_metric: String,
    /// The label naming the host on the GPU series (default: `[inventory]
    /// host_label`), normalised by `[inventory] host_regex`.
    #[serde(default)]
    pub host_label: Option<String>,
    /// How energy series are joined to holders: by `bus-id` (`pci_bus_id`,
    /// the host's view) or by `gpu-uuid` (`UUID`: DCGM inside a passthrough
    /// guest, whose bus ids are the guest's).
    #[serde(default)]
    pub key: GpuKey,
    /// `modelName` glob → the card's MIG compute slices, 1 to 8 (A30: 4):
    /// the first matching glob in the policy's order wins, and cards no glob
    /// matches have 7 (A100, H100). The daemon matches the card's `name`
    /// from `command` (the same model name), else its vGPU type's name.
    #[serde(default, deserialize_with = "mig_slices_in_order")]
    #[schemars(with = "BTreeMap<String, u32>")]
    pub mig_slices: Vec<(String, Spanned<u32>)>,
    /// The daemon's local meter: a command (program and arguments, no
    /// shell) printing nvidia-smi's CSV (`pci.bus_id`, `uuid`, `name`,
    /// `total_energy_consumption` in mJ and/or `power.draw` in W).
    #[serde(default = "default_command")]
    pub command: Vec<String>,
    /// The sysfs tree the daemon resolves vGPU mdevs in (default `/sys`).
    #[serde(default)]
    #[schemars(with = "Option<PathBuf>")]
    pub sysfs_root: Option<Spanned<PathBuf>>,
}

/// Unit of a GPU energy counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CounterUnit {
    /// DCGM's and NVML's unit.
    #[default]
    Millijoules,
    /// The daemon's exported counters.
    Joules,
}

/// What joins a GPU's energy series to its holders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GpuKey {
    /// The host's PCI address of the card (`pci_bus_id`).
    #[default]
    BusId,
    /// NVML's `GPU-…` uuid (`UUID`).
    GpuUuid,
}

/// `[gpu] mig_slices` in the policy's order.
fn mig_slices_in_order<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, Spanned<u32>)>, D::Error> {
    in_order(
        deserializer,
        "a table of modelName globs → compute slices (e.g. { \"*A30*\" = 4 })",
    )
}

fn default_counter() -> String {
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION".into()
}

fn default_gauge() -> String {
    "DCGM_FI_DEV_POWER_USAGE".into()
}

fn default_holders_metric() -> String {
    "wattson_vm_gpu_info".into()
}

fn default_command() -> Vec<String> {
    DEFAULT_COMMAND.map(String::from).to_vec()
}

/// Where sysfs is when `[gpu] sysfs_root` does not say.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";

impl GpuConfig {
    /// `sysfs_root`, else `/sys`.
    pub fn sysfs_root(&self) -> PathBuf {
        self.sysfs_root.as_ref().map_or_else(
            || PathBuf::from(DEFAULT_SYSFS_ROOT),
            |r| r.get_ref().clone(),
        )
    }

    /// The compute slices of a card of this `modelName` (`mig_slices`).
    pub fn mig_slices_of(&self, model_name: &str) -> u32 {
        self.mig_slices
            .iter()
            .find(|(glob, _)| {
                Glob::new(glob).is_ok_and(|g| g.compile_matcher().is_match(model_name))
            })
            .map_or(DEFAULT_MIG_SLICES, |(_, n)| *n.get_ref())
    }
}

impl Validate for GpuConfig {
    /// Empty selectors or command, bad globs, slice counts that are not 1–8.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("counter", &self.counter),
            ("gauge", &self.gauge),
            ("holders_metric", &self.holders_metric),
        ] {
            if value.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    key,
                    "must be a PromQL selector (remove the key for the default)",
                ));
            }
        }
        if self.command.first().is_none_or(|p| p.trim().is_empty()) {
            problems.push(ConfigProblem::new(
                "command",
                "must name a program, e.g. [\"nvidia-smi\", \"--query-gpu=pci.bus_id,uuid,power.draw\", \"--format=csv,nounits\"]",
            ));
        }
        for (glob, slices) in &self.mig_slices {
            if let Err(e) = Glob::new(glob) {
                problems.push(ConfigProblem::new(
                    format!("mig_slices.\"{glob}\""),
                    format!("is not a glob over modelName: {e}"),
                ));
            }
            if !(1..=8).contains(slices.get_ref()) {
                problems.push(
                    ConfigProblem::new(
                        format!("mig_slices.\"{glob}\""),
                        "must be the card's compute slices, 1 to 8 (A100/H100: 7, A30: 4)",
                    )
                    .at(slices.span()),
                );
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GpuConfig {
        toml::from_str(text).expect("a valid [gpu] table")
    }

    #[test]
    fn defaults_read_dcgm_and_the_daemons_holders() {
        let gpu = parse("");
        assert_eq!(gpu.counter, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION");
        assert_eq!(gpu.counter_unit, CounterUnit::Millijoules);
        assert_eq!(gpu.gauge, "DCGM_FI_DEV_POWER_USAGE");
        assert_eq!(gpu.holders_metric, "wattson_vm_gpu_info");
        assert_eq!(gpu.key, GpuKey::BusId);
        assert_eq!(gpu.command[0], "nvidia-smi");
        assert!(gpu.problems().is_empty());
    }

    #[test]
    fn the_first_matching_glob_in_the_policys_order_gives_the_mig_slices() {
        // Written out of alphabetical order: "*" sorts first, "NVIDIA…" last.
        let gpu = parse(
            "mig_slices = { \"NVIDIA A30 24GB*\" = 3, \"*A30*\" = 4, \"*A100*\" = 7, \"*\" = 2 }",
        );
        assert_eq!(gpu.mig_slices_of("NVIDIA A30 24GB PCIe"), 3);
        assert_eq!(gpu.mig_slices_of("NVIDIA A30X"), 4);
        assert_eq!(gpu.mig_slices_of("NVIDIA A100 80GB PCIe"), 7);
        assert_eq!(gpu.mig_slices_of("NVIDIA L40"), 2);
        assert_eq!(parse("").mig_slices_of("NVIDIA H100"), DEFAULT_MIG_SLICES);
    }

    #[test]
    fn bad_values_are_named_by_key() {
        let gpu = parse(
            "counter = \" \"\ncommand = []\nkey = \"gpu-uuid\"\nmig_slices = { \"[\" = 4, \"*A30*\" = 0 }",
        );
        let keys: Vec<_> = gpu.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "counter",
                "command",
                "mig_slices.\"[\"",
                "mig_slices.\"*A30*\""
            ]
        );
        assert!(toml::from_str::<GpuConfig>("key = \"serial\"").is_err());
        assert!(toml::from_str::<GpuConfig>("counter_unit = \"watts\"").is_err());
    }
}
