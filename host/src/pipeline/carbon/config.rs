//! `[carbon]`: the site's PUE (or one per host pattern) and where the grid
//! carbon intensity comes from, checked without I/O.

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use super::{Carbon, Pue};
use crate::config::{ConfigProblem, Validate};
use crate::sources::carbon_intensity::IntensitySource;

/// `[carbon]` of a policy.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CarbonConfig {
    /// The site's PUE (`1.3`), or a table of host patterns to PUE
    /// (`{ "cmp-0*" = 1.2, "*" = 1.4 }`, first match wins).
    #[schemars(with = "Option<serde_json::Value>")]
    pub pue: Option<toml::Value>,
    /// Grid carbon intensity, gCO2e per kWh, for every window.
    pub intensity_g_per_kwh: Option<f64>,
    /// A Prometheus gauge (metric name or series selector) of grid carbon
    /// intensity in gCO2e/kWh, averaged over each window by G1.
    pub intensity_metric: Option<String>,
    /// The intensity series' grid-zone label, where hosts sit in several zones.
    pub intensity_zone_label: Option<String>,
    /// Longest gap between two intensity samples that G1 bridges, seconds.
    pub intensity_max_gap_secs: Option<f64>,
    /// Host key pattern → zone (the zone label's value), first match wins.
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub zones: Option<toml::Table>,
}

/// A PUE must lie in this range (1 = no overhead).
const PUE_RANGE: std::ops::RangeInclusive<f64> = 1.0..=10.0;

fn number(value: &toml::Value) -> Option<f64> {
    value.as_float().or(value.as_integer().map(|i| i as f64))
}

impl Validate for CarbonConfig {
    /// What [`CarbonConfig::resolve`] refuses.
    fn problems(&self) -> Vec<ConfigProblem> {
        self.resolve().err().unwrap_or_default()
    }
}

impl CarbonConfig {
    /// The checked settings, or every problem.
    pub fn resolve(&self) -> Result<Carbon, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let pue = self.resolve_pue(&mut problems);
        let (intensity, zones) = self.resolve_intensity(&mut problems);
        if problems.is_empty() {
            Ok(Carbon {
                pue,
                intensity,
                zones,
            })
        } else {
            Err(problems)
        }
    }

    fn resolve_pue(&self, problems: &mut Vec<ConfigProblem>) -> Pue {
        let checked = |key: String, value: &toml::Value, problems: &mut Vec<_>| match number(value)
        {
            Some(pue) if PUE_RANGE.contains(&pue) => Some(pue),
            _ => {
                problems.push(ConfigProblem::new(
                    key,
                    format!(
                        "PUE is {value}: give a number from 1 (no facility overhead) to 10, e.g. 1.3"
                    ),
                ));
                None
            }
        };
        match &self.pue {
            None => Pue::Unknown,
            Some(toml::Value::Table(table)) => {
                let mut patterns = Vec::with_capacity(table.len());
                for (pattern, value) in table {
                    let key = format!("pue.\"{pattern}\"");
                    match Glob::new(pattern) {
                        Ok(glob) => {
                            if let Some(pue) = checked(key, value, problems) {
                                patterns.push((glob.compile_matcher(), pue));
                            }
                        }
                        Err(e) => problems
                            .push(ConfigProblem::new(key, format!("not a host pattern: {e}"))),
                    }
                }
                Pue::ByHost(patterns)
            }
            Some(value) => checked("pue".into(), value, problems)
                .map(Pue::Site)
                .unwrap_or(Pue::Unknown),
        }
    }

    /// Where the intensity comes from, and the host patterns → zone where
    /// the gauge has a zone label.
    fn resolve_intensity(
        &self,
        problems: &mut Vec<ConfigProblem>,
    ) -> (IntensitySource, Option<Vec<(GlobMatcher, String)>>) {
        if let Some(ci) = self.intensity_g_per_kwh
            && !(ci.is_finite() && ci >= 0.0)
        {
            problems.push(ConfigProblem::new(
                "intensity_g_per_kwh",
                "must be a number of gCO2e per kWh, 0 or more",
            ));
        }
        let max_gap_secs = self
            .intensity_max_gap_secs
            .unwrap_or(crate::energy::DEFAULT_MAX_GAP_S);
        if !(max_gap_secs.is_finite() && (1.0..=86_400.0).contains(&max_gap_secs)) {
            problems.push(ConfigProblem::new(
                "intensity_max_gap_secs",
                "must be from 1 to 86400 seconds",
            ));
        }
        let mut zones = Vec::new();
        for (pattern, zone) in self.zones.iter().flatten() {
            let key = format!("zones.\"{pattern}\"");
            match (Glob::new(pattern), zone.as_str()) {
                (Ok(glob), Some(zone)) => zones.push((glob.compile_matcher(), zone.to_owned())),
                (Err(e), _) => {
                    problems.push(ConfigProblem::new(key, format!("not a host pattern: {e}")))
                }
                (_, None) => problems.push(ConfigProblem::new(
                    key,
                    format!("zone is {zone}: give the zone label's value as a string, e.g. \"DE\""),
                )),
            }
        }
        let metric = self.intensity_metric.as_deref().map(str::trim);
        match (self.intensity_g_per_kwh, metric) {
            (Some(_), Some(_)) => problems.push(ConfigProblem::new(
                "intensity_g_per_kwh",
                "intensity_metric is set too: keep one (a static intensity, or a gauge to average)",
            )),
            (_, Some("")) => problems.push(ConfigProblem::new(
                "intensity_metric",
                "is empty: give a gauge's name, e.g. \"grid_carbon_intensity_gco2_per_kwh\"",
            )),
            _ => {}
        }
        let zone_label = self.intensity_zone_label.as_deref();
        if metric.is_none() {
            for (key, set) in [
                ("intensity_zone_label", zone_label.is_some()),
                ("zones", self.zones.is_some()),
                (
                    "intensity_max_gap_secs",
                    self.intensity_max_gap_secs.is_some(),
                ),
            ] {
                if set {
                    problems.push(ConfigProblem::new(
                        key,
                        "applies to intensity_metric, which is not set",
                    ));
                }
            }
        }
        match (zone_label, self.zones.is_some()) {
            (Some(_), false) => problems.push(ConfigProblem::new(
                "intensity_zone_label",
                "is set without [carbon.zones]: say which hosts sit in which zone, e.g. \"cmp-0*\" = \"DE\"",
            )),
            (None, true) if metric.is_some() => problems.push(ConfigProblem::new(
                "zones",
                "[carbon.zones] needs intensity_zone_label: the intensity series' label that holds the zone",
            )),
            _ => {}
        }
        match (metric, self.intensity_g_per_kwh) {
            (Some(selector), _) => (
                IntensitySource::Metric {
                    selector: selector.to_owned(),
                    max_gap_ms: (max_gap_secs * 1000.0) as i64,
                    zone_label: zone_label.map(str::to_owned),
                },
                zone_label.map(|_| zones),
            ),
            (None, Some(ci)) => (IntensitySource::Static(ci), None),
            (None, None) => (IntensitySource::Unknown, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> CarbonConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn pue_by_host_pattern_first_match_wins() {
        let carbon = config("pue = { \"cmp-0*\" = 1.2, \"*\" = 1.5 }\nintensity_g_per_kwh = 200")
            .resolve()
            .unwrap();
        assert_eq!(carbon.pue(Some("cmp-01")), Some(1.2));
        assert_eq!(carbon.pue(Some("gpu-01")), Some(1.5));
        assert_eq!(carbon.pue(None), None);
        assert_eq!(config("pue = 1").resolve().unwrap().pue(None), Some(1.0));
    }

    #[test]
    fn bad_settings_are_named() {
        let problems =
            config("pue = { \"[\" = 1.2, \"x\" = 0.5 }\nintensity_g_per_kwh = -1").problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["pue.\"[\"", "pue.\"x\"", "intensity_g_per_kwh"]);
        assert_eq!(config("pue = \"high\"").problems()[0].key, "pue");
    }

    #[test]
    fn intensity_settings_that_do_not_fit_together_are_named() {
        let keys = |text: &str| -> Vec<String> {
            config(text).problems().into_iter().map(|p| p.key).collect()
        };
        assert_eq!(
            keys("intensity_g_per_kwh = 200\nintensity_metric = \"ci\""),
            ["intensity_g_per_kwh"]
        );
        assert_eq!(
            keys("intensity_metric = \"ci\"\nintensity_zone_label = \"zone\""),
            ["intensity_zone_label"]
        );
        assert_eq!(
            keys("intensity_metric = \"ci\"\nzones = { \"cmp-*\" = \"DE\" }"),
            ["zones"]
        );
        assert_eq!(
            keys("intensity_g_per_kwh = 200\nintensity_max_gap_secs = 60"),
            ["intensity_max_gap_secs"]
        );
        assert_eq!(keys("intensity_metric = \" \""), ["intensity_metric"]);
        assert!(
            keys("intensity_metric = \"ci\"\nintensity_zone_label = \"zone\"\nzones = { \"cmp-*\" = \"DE\" }")
                .is_empty()
        );
    }
}
