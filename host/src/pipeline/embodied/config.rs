//! `[embodied]`: each host's manufacturing emissions, its life and its
//! capacity, per host glob (first match in the policy's order), checked
//! without I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use globset::Glob;
use serde::Deserialize;
use toml::Spanned;

use super::boavizta::{Boavizta, Request};
use super::{Capacity, Embodied, Figure, HostFigure};
use crate::config::{ConfigProblem, Validate, in_order};

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
    /// Days a BoaviztAPI answer cached under the state directory
    /// (`embodied/<sha256>.json`) is used instead of asking again; 0: ask
    /// once in every run (`extract`, `report`, the daemon's start and each
    /// reload).
    #[serde(default)]
    #[schemars(extend("default" = 0))]
    pub cache_days: u32,
    /// Host key glob → that host's figures (`[embodied.hosts."cmp-*"]`),
    /// the first matching glob in the policy's order. Each entry has
    /// `kg_co2e` (its manufacturing emissions, kg CO2e) or `boavizta = {
    /// url, archetype }` / `boavizta = { url, config = { … } }` (asked of a
    /// running BoaviztAPI), `lifetime_years` (default: BoaviztAPI's
    /// `hours_life_time` for a boavizta entry, else this table's) and
    /// `capacity = { vcpus, memory_gb }` (GiB; default: measured by
    /// `extract` from node_exporter's logical CPUs and MemTotal). A VM on a
    /// host no glob matches gets no `embodied_g`.
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
    /// Instead of `kg_co2e`: a running BoaviztAPI's figure for the server,
    /// `impacts.gwp.embedded.value` of `GET {url}/v1/server/?archetype=…`
    /// (or of `POST {url}/v1/server/` with `config`), asked once per run.
    #[schemars(with = "Option<BoaviztaConfig>")]
    pub boavizta: Option<Spanned<BoaviztaConfig>>,
    /// Years to spread them over (default: BoaviztAPI's `hours_life_time`
    /// for a boavizta entry, else `[embodied] lifetime_years`).
    #[schemars(with = "Option<f64>")]
    pub lifetime_years: Option<Spanned<f64>>,
    /// The host's capacity that VMs' shares are taken of; without it,
    /// `extract` measures it from node_exporter (logical CPUs, MemTotal).
    #[schemars(with = "Option<CapacityConfig>")]
    pub capacity: Option<Spanned<CapacityConfig>>,
}

/// `boavizta = { url, archetype }` or `boavizta = { url, config = { … } }`
/// of a host entry.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoaviztaConfig {
    /// The BoaviztAPI's base URL (http or https), e.g. `http://127.0.0.1:5000`.
    pub url: String,
    /// A server archetype of BoaviztAPI (`GET {url}/v1/server/archetypes`
    /// lists them), e.g. `platform_compute_medium`.
    pub archetype: Option<String>,
    /// Instead of `archetype`: the server's configuration, POSTed as is
    /// (`model`, `configuration`, `usage`, as BoaviztAPI's `/v1/server/`
    /// takes them).
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The parts of a BoaviztAPI server configuration.
const BOAVIZTA_CONFIG_KEYS: [&str; 3] = ["model", "configuration", "usage"];

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
        in_order(
            deserializer,
            "a table of host globs, each with kg_co2e or boavizta (e.g. \
             [embodied.hosts.\"cmp-*\"])",
        )
        .map(HostEntries)
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
            let own_years = match &host.lifetime_years {
                Some(years) => {
                    lifetime(years, &format!("{key}.lifetime_years"), &mut problems).map(Some)
                }
                None => Some(None),
            };
            let figure = Self::figure(&key, entry, &mut problems);
            let capacity = host
                .capacity
                .as_ref()
                .and_then(|c| Self::capacity(&key, c, &mut problems));
            if let (Some(glob), Some(figure), Some(own_years), Some(default_years)) =
                (glob, figure, own_years, default_years)
            {
                hosts.push(HostFigure {
                    glob,
                    entry: pattern.clone(),
                    figure,
                    own_years,
                    default_years,
                    capacity,
                });
            }
        }
        if problems.is_empty() {
            Ok(Embodied::new(hosts, self.cache_days))
        } else {
            Err(problems)
        }
    }

    /// Where a host entry's kg CO2e come from: `kg_co2e` or `boavizta`,
    /// one of them.
    fn figure(
        key: &str,
        entry: &Spanned<EmbodiedHostConfig>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<Figure> {
        let host = entry.get_ref();
        let kg = match (&host.kg_co2e, &host.boavizta) {
            (Some(_), Some(boavizta)) => {
                problems.push(
                    ConfigProblem::new(
                        format!("{key}.boavizta"),
                        "is given beside kg_co2e: give the host's figure by kg_co2e or by \
                         boavizta, not both",
                    )
                    .at(boavizta.span()),
                );
                return None;
            }
            (None, Some(boavizta)) => return Self::boavizta(key, boavizta, problems),
            (Some(kg), None) => kg,
            (None, None) => {
                problems.push(
                    ConfigProblem::new(
                        key,
                        "gives no figure: add kg_co2e, the host's manufacturing emissions in kg \
                         CO2e (e.g. kg_co2e = 1500.0), or boavizta = { url, archetype } to ask a \
                         running BoaviztAPI",
                    )
                    .at(entry.span()),
                );
                return None;
            }
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

    /// A host entry's `boavizta`: an http(s) URL and an archetype or a
    /// configuration (checked without asking it).
    fn boavizta(
        key: &str,
        boavizta: &Spanned<BoaviztaConfig>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<Figure> {
        let key = format!("{key}.boavizta");
        let BoaviztaConfig {
            url,
            archetype,
            config,
        } = boavizta.get_ref();
        let mut problem = |k: &str, message: String| {
            problems.push(ConfigProblem::new(format!("{key}{k}"), message).at(boavizta.span()));
        };
        let url_ok = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => true,
            Ok(_) => {
                problem(
                    ".url",
                    format!(
                        "{url:?} is not an http(s) base URL: give BoaviztAPI's address without \
                         a query, e.g. http://127.0.0.1:5000"
                    ),
                );
                false
            }
            Err(e) => {
                problem(
                    ".url",
                    format!(
                        "{url:?} is not a URL ({e}): give BoaviztAPI's address, e.g. http://127.0.0.1:5000"
                    ),
                );
                false
            }
        };
        let request = match (archetype, config) {
            (Some(_), Some(_)) => {
                problem(
                    "",
                    "gives both archetype and config: give one (config is POSTed as is; \
                     BoaviztAPI fills what it leaves out from its default server)"
                        .to_owned(),
                );
                None
            }
            (None, None) => {
                problem(
                    "",
                    "gives neither archetype nor config: add archetype = \"…\" (GET \
                     {url}/v1/server/archetypes lists them) or config = { … }"
                        .to_owned(),
                );
                None
            }
            (Some(name), None) if name.trim().is_empty() => {
                problem(
                    ".archetype",
                    "is empty: name a BoaviztAPI server archetype, e.g. platform_compute_medium"
                        .to_owned(),
                );
                None
            }
            (Some(name), None) => Some(Request::Archetype(name.clone())),
            (None, Some(config)) => {
                let bad: Vec<&str> = config
                    .iter()
                    .filter(|(k, v)| !(BOAVIZTA_CONFIG_KEYS.contains(&k.as_str()) && v.is_object()))
                    .map(|(k, _)| k.as_str())
                    .collect();
                if config.is_empty() || !bad.is_empty() {
                    problem(
                        ".config",
                        format!(
                            "{}: give a BoaviztAPI server as tables model, configuration and \
                             usage, e.g. {{ configuration = {{ cpu = {{ units = 2, core_units = \
                             32 }} }}, usage = {{ hours_life_time = 43800 }} }}",
                            if config.is_empty() {
                                "is empty".to_owned()
                            } else {
                                format!(
                                    "has {} (not a table of model, configuration, usage)",
                                    bad.join(", ")
                                )
                            }
                        ),
                    );
                    None
                } else {
                    Some(Request::Config(config.clone()))
                }
            }
        };
        match (url_ok, request) {
            (true, Some(request)) => Some(Figure::Boavizta(Arc::new(Boavizta::new(url, request)))),
            _ => None,
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
        assert_eq!(first.own_years, Some(4.0));
        assert!(matches!(first.figure, Figure::Static { kg_co2e } if kg_co2e == 900.0));
        assert_eq!(
            first.capacity,
            Some(Capacity {
                vcpus: 96.0,
                memory_mib: 262_144.0
            })
        );
        let second = embodied.host("cmp-20").unwrap();
        assert_eq!((second.own_years, second.default_years), (None, 5.0));
        assert!(matches!(second.figure, Figure::Static { kg_co2e } if kg_co2e == 1500.0));
        assert!(second.capacity.is_none());
        assert!(embodied.host("gpu-01").is_none());
        let default = config("[hosts.\"*\"]\nkg_co2e = 1\n").resolve().unwrap();
        assert_eq!(default.host("x").unwrap().default_years, 4.0);
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

    #[test]
    fn boavizta_entries_are_checked_without_asking() {
        let embodied = config(
            "[hosts.\"gpu-*\"]\nboavizta = { url = \"http://127.0.0.1:5000/\", archetype = \
             \"platfom_gpucompute_medium\" }\n[hosts.\"cmp-*\"]\nboavizta = { url = \
             \"https://boavizta.example\", config = { configuration = { cpu = { units = 2 } } } \
             }\nlifetime_years = 5\n",
        )
        .resolve()
        .unwrap();
        let gpu = embodied.host("gpu-1").unwrap();
        assert_eq!(gpu.figure.source(), "boavizta:platfom_gpucompute_medium");
        // Not asked yet: no rate, never 0.
        assert_eq!(gpu.rate_g_per_s(), None);
        assert_eq!(
            embodied.host("cmp-1").unwrap().figure.source(),
            "boavizta:config"
        );
        assert!(embodied.asks());

        let entry = |b: &str| keys(&format!("[hosts.\"h\"]\nboavizta = {b}\n"));
        assert_eq!(
            keys(
                "[hosts.\"h\"]\nkg_co2e = 1\nboavizta = { url = \"http://b\", archetype = \"a\" }\n"
            ),
            ["hosts.\"h\".boavizta"]
        );
        assert_eq!(entry("{ url = \"http://b\" }"), ["hosts.\"h\".boavizta"]);
        assert_eq!(
            entry("{ url = \"http://b\", archetype = \"a\", config = { usage = {} } }"),
            ["hosts.\"h\".boavizta"]
        );
        assert_eq!(
            entry("{ url = \"ftp://b\", archetype = \"a\" }"),
            ["hosts.\"h\".boavizta.url"]
        );
        assert_eq!(
            entry("{ url = \"b:5000\", archetype = \" \" }"),
            ["hosts.\"h\".boavizta.url", "hosts.\"h\".boavizta.archetype"]
        );
        assert_eq!(
            entry("{ url = \"http://b\", config = { cpu = { units = 2 } } }"),
            ["hosts.\"h\".boavizta.config"]
        );
        assert_eq!(
            entry("{ url = \"http://b\", config = {} }"),
            ["hosts.\"h\".boavizta.config"]
        );
    }
}
