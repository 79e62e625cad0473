//! `[embodied]`: each host's manufacturing emissions, its life and its
//! capacity, per host glob (first match in the policy's order), checked
//! without I/O.

use std::collections::BTreeMap;
use std::fmt;

use globset::Glob;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use toml::Spanned;

use super::{Capacity, Embodied, Figure, HostFigure};
use crate::config::{ConfigProblem, Validate};

/// Hours in a year of a host's life (BoaviztAPI's and Leaf's year).
pub const HOURS_PER_YEAR: f64 = 8760.0;

/// The life a host entry without its own `lifetime_years` gets.
const DEFAULT_LIFETIME_YEARS: f64 = 4.0;

/// MiB in the GiB of `capacity.memory_gb`.
const MIB_PER_GB: f64 = 1024.0;

/// `[embodied]` of a policy.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbodiedConfig {
    /// Years a host's embodied emissions are spread over, where its entry
    /// gives none (a year is 8760 h).
    #[serde(default)]
    #[schemars(with = "Option<f64>", extend("default" = 4.0))]
    pub lifetime_years: Option<Spanned<f64>>,
    /// Host key glob → that host's figures (`[embodied.hosts."cmp-*"]`),
    /// the first matching glob in the policy's order. Each entry has
    /// `kg_co2e` (its manufacturing emissions, kg CO2e; required),
    /// `lifetime_years` (default: this table's) and `capacity = { vcpus,
    /// memory_gb }` (GiB; default: measured by `extract` from node_exporter's
    /// logical CPUs and MemTotal). A VM on a host no glob matches gets no
    /// `embodied_g`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, EmbodiedHostConfig>")]
    pub hosts: HostEntries,
}

/// `[embodied.hosts."<glob>"]`: one host pattern's figures.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbodiedHostConfig {
    /// The host's manufacturing emissions, kg CO2e (e.g. a vendor's product
    /// carbon footprint, or BoaviztAPI's `impacts.gwp.embedded`).
    #[schemars(with = "Option<f64>")]
    pub kg_co2e: Option<Spanned<f64>>,
    /// Years to spread them over (default: `[embodied] lifetime_years`).
    #[schemars(with = "Option<f64>")]
    pub lifetime_years: Option<Spanned<f64>>,
    /// The host's capacity that VMs' shares are taken of; without it,
    /// `extract` measures it from node_exporter (logical CPUs, MemTotal).
    #[schemars(with = "Option<CapacityConfig>")]
    pub capacity: Option<Spanned<CapacityConfig>>,
}

/// `capacity = { vcpus, memory_gb }` of a host entry.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityConfig {
    /// vCPUs the host offers.
    pub vcpus: u32,
    /// Memory the host offers, GiB (1024 MiB, as flavors count).
    pub memory_gb: f64,
}

/// The host entries in the policy's order (a map would sort them).
#[derive(Clone, Debug, Default)]
pub struct HostEntries(pub Vec<(String, Spanned<EmbodiedHostConfig>)>);

impl<'de> Deserialize<'de> for HostEntries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads the table's entries as they come.
        struct InOrder;

        impl<'de> Visitor<'de> for InOrder {
            type Value = HostEntries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a table of host globs, each with kg_co2e (e.g. [embodied.hosts.\"cmp-*\"])",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(HostEntries(entries))
            }
        }

        deserializer.deserialize_map(InOrder)
    }
}

impl Validate for EmbodiedConfig {
    /// What [`EmbodiedConfig::resolve`] refuses.
    fn problems(&self) -> Vec<ConfigProblem> {
        self.resolve().err().unwrap_or_default()
    }
}

/// A life of years: finite and above 0 (at most a century).
fn lifetime(value: &Spanned<f64>, key: &str, problems: &mut Vec<ConfigProblem>) -> Option<f64> {
    let years = *value.get_ref();
    if years.is_finite() && years > 0.0 && years <= 100.0 {
        return Some(years);
    }
    problems.push(
        ConfigProblem::new(
            key,
            format!(
                "lifetime is {years} years: give the years the host's embodied emissions are \
                 spread over, more than 0 (e.g. 4; a year is 8760 h)"
            ),
        )
        .at(value.span()),
    );
    None
}

impl EmbodiedConfig {
    /// The checked settings, or every problem.
    pub fn resolve(&self) -> Result<Embodied, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let default_years = match &self.lifetime_years {
            Some(years) => lifetime(years, "lifetime_years", &mut problems),
            None => Some(DEFAULT_LIFETIME_YEARS),
        };
        let mut hosts = Vec::with_capacity(self.hosts.0.len());
        for (pattern, entry) in &self.hosts.0 {
            let key = format!("hosts.\"{pattern}\"");
            let glob = match Glob::new(pattern) {
                Ok(glob) => Some(glob.compile_matcher()),
                Err(e) => {
                    problems.push(
                        ConfigProblem::new(&key, format!("not a host glob: {e}")).at(entry.span()),
                    );
                    None
                }
            };
            let host = entry.get_ref();
            let years = match &host.lifetime_years {
                Some(years) => lifetime(years, &format!("{key}.lifetime_years"), &mut problems),
                None => default_years,
            };
            let figure = Self::figure(&key, entry, &mut problems);
            let capacity = host
                .capacity
                .as_ref()
                .and_then(|c| Self::capacity(&key, c, &mut problems));
            if let (Some(glob), Some(figure), Some(lifetime_years)) = (glob, figure, years) {
                hosts.push(HostFigure {
                    glob,
                    figure,
                    lifetime_years,
                    capacity,
                });
            }
        }
        if problems.is_empty() {
            Ok(Embodied::new(hosts))
        } else {
            Err(problems)
        }
    }

    /// Where a host entry's kg CO2e come from.
    fn figure(
        key: &str,
        entry: &Spanned<EmbodiedHostConfig>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<Figure> {
        let Some(kg) = &entry.get_ref().kg_co2e else {
            problems.push(
                ConfigProblem::new(
                    key,
                    "gives no figure: add kg_co2e, the host's manufacturing emissions in kg CO2e \
                     (e.g. kg_co2e = 1500.0)",
                )
                .at(entry.span()),
            );
            return None;
        };
        let value = *kg.get_ref();
        if value.is_finite() && value >= 0.0 {
            Some(Figure::Static { kg_co2e: value })
        } else {
            problems.push(
                ConfigProblem::new(
                    format!("{key}.kg_co2e"),
                    format!(
                        "is {value}: give the host's manufacturing emissions, kg CO2e, 0 or more"
                    ),
                )
                .at(kg.span()),
            );
            None
        }
    }

    /// A host entry's capacity, in vCPUs and MiB.
    fn capacity(
        key: &str,
        capacity: &Spanned<CapacityConfig>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<Capacity> {
        let CapacityConfig { vcpus, memory_gb } = *capacity.get_ref();
        let mut ok = true;
        if vcpus == 0 {
            problems.push(
                ConfigProblem::new(
                    format!("{key}.capacity.vcpus"),
                    "is 0: give the vCPUs the host offers (its logical CPUs, or more where the \
                     site overcommits)",
                )
                .at(capacity.span()),
            );
            ok = false;
        }
        if !(memory_gb.is_finite() && memory_gb > 0.0) {
            problems.push(
                ConfigProblem::new(
                    format!("{key}.capacity.memory_gb"),
                    format!("is {memory_gb}: give the memory the host offers, GiB, more than 0"),
                )
                .at(capacity.span()),
            );
            ok = false;
        }
        ok.then(|| Capacity {
            vcpus: f64::from(vcpus),
            memory_mib: memory_gb * MIB_PER_GB,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> EmbodiedConfig {
        toml::from_str(text).unwrap()
    }

    fn keys(text: &str) -> Vec<String> {
        config(text).problems().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn host_entries_keep_the_policys_order_and_defaults() {
        let embodied = config(
            "lifetime_years = 5\n[hosts.\"cmp-1*\"]\nkg_co2e = 900\nlifetime_years = 4\n\
             capacity = { vcpus = 96, memory_gb = 256 }\n[hosts.\"cmp-*\"]\nkg_co2e = 1500.0\n",
        )
        .resolve()
        .unwrap();
        let first = embodied.host("cmp-10").unwrap();
        assert_eq!(first.lifetime_years, 4.0);
        assert!(matches!(first.figure, Figure::Static { kg_co2e } if kg_co2e == 900.0));
        assert_eq!(
            first.capacity,
            Some(Capacity {
                vcpus: 96.0,
                memory_mib: 262_144.0
            })
        );
        let second = embodied.host("cmp-20").unwrap();
        assert_eq!(second.lifetime_years, 5.0);
        assert!(matches!(second.figure, Figure::Static { kg_co2e } if kg_co2e == 1500.0));
        assert!(second.capacity.is_none());
        assert!(embodied.host("gpu-01").is_none());
        let default = config("[hosts.\"*\"]\nkg_co2e = 1\n").resolve().unwrap();
        assert_eq!(default.host("x").unwrap().lifetime_years, 4.0);
    }

    #[test]
    fn bad_figures_are_named_by_key() {
        assert_eq!(
            keys("[hosts.\"cmp-*\"]\nkg_co2e = -1\nlifetime_years = 0\n"),
            ["hosts.\"cmp-*\".lifetime_years", "hosts.\"cmp-*\".kg_co2e"]
        );
        assert_eq!(keys("lifetime_years = 0\n"), ["lifetime_years"]);
        assert_eq!(
            keys("[hosts.\"cmp-*\"]\nlifetime_years = 3\n"),
            ["hosts.\"cmp-*\""]
        );
        assert_eq!(
            keys("[hosts.\"cmp-*\"]\nkg_co2e = 1\ncapacity = { vcpus = 0, memory_gb = -2 }\n"),
            [
                "hosts.\"cmp-*\".capacity.vcpus",
                "hosts.\"cmp-*\".capacity.memory_gb"
            ]
        );
        assert_eq!(keys("[hosts.\"[\"]\nkg_co2e = 1\n"), ["hosts.\"[\""]);
        let unknown = toml::from_str::<EmbodiedConfig>("[hosts.\"cmp-*\"]\nkg = 1\n").unwrap_err();
        assert!(
            unknown.message().contains("unknown field `kg`"),
            "{unknown}"
        );
    }
}
