//! `[carbon]`: facility overhead and grid carbon intensity on every record
//! (ENERGY.md "Facility overhead and carbon"). A record's joules stay IT
//! energy; it carries the PUE of its host, the window's intensity and the
//! footprint `joules / 3.6e6 × PUE × CI` (gCO2e). The intensity is a static
//! number, or the time-weighted mean of a Prometheus gauge over the window
//! (G1 of the series ÷ its covered seconds), per grid zone where hosts sit in
//! several. No intensity: no `ci_g` and no `cfp_g` (never 0).

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::config::{ConfigProblem, Validate};
use crate::energy::gauge::Integral;
use crate::records::EnergyRecord;
use crate::sources::prometheus::{Client, PrometheusError, measure_gauge};
use crate::window::Window;

/// `[carbon]` of a policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbonConfig {
    /// The site's PUE (`1.3`), or a table of host patterns to PUE
    /// (`{ "cmp-0*" = 1.2, "*" = 1.4 }`, first match wins).
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
    pub zones: Option<toml::Table>,
}

/// A PUE must lie in this range (1 = no overhead).
const PUE_RANGE: std::ops::RangeInclusive<f64> = 1.0..=10.0;

/// The PUE setting, checked.
#[derive(Clone, Debug)]
enum Pue {
    /// None configured.
    Unknown,
    /// One for the site.
    Site(f64),
    /// Per host pattern, in the policy's order.
    ByHost(Vec<(GlobMatcher, f64)>),
}

/// Where a window's intensity comes from, checked.
#[derive(Clone, Debug)]
enum Source {
    /// Nowhere: records carry no intensity.
    Unknown,
    /// One number for every window.
    Static(f64),
    /// A gauge in Prometheus.
    Metric {
        selector: String,
        max_gap_ms: i64,
        /// The zone label and host patterns → zone; None: one series for every host.
        zones: Option<(String, Vec<(GlobMatcher, String)>)>,
    },
}

/// `[carbon]`, checked and ready to apply.
#[derive(Clone, Debug)]
pub struct Carbon {
    pue: Pue,
    source: Source,
}

/// One window's grid intensity.
#[derive(Clone, Debug, PartialEq)]
pub enum Intensity {
    /// None known.
    Unknown,
    /// The same number for every host, all the window.
    Static(f64),
    /// Measured, per zone (`""` when the policy names no zone label): G1 of
    /// the series over the window and its covered seconds.
    Measured(BTreeMap<String, Integral>),
}

/// Zones a window had no intensity for, and hosts in no zone (a warning
/// each, naming the window).
#[derive(Debug, Default)]
pub struct Missing {
    zones: BTreeSet<String>,
    hosts: BTreeSet<String>,
}

impl Missing {
    /// Warns once per zone that had no intensity in `window`.
    pub fn warn(self, window: Window) {
        for host in self.hosts {
            tracing::warn!(%window, host, "host matches no pattern of [carbon.zones]: its records carry no ci_g and no cfp_g; add a pattern for it");
        }
        for zone in self.zones {
            if zone.is_empty() {
                tracing::warn!(%window, "no grid carbon intensity for this window (no sample of [carbon] intensity_metric): its records carry no ci_g and no cfp_g");
            } else {
                tracing::warn!(%window, zone, "no grid carbon intensity for this zone in this window: its records carry no ci_g and no cfp_g");
            }
        }
    }
}

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
        let source = self.resolve_source(&mut problems);
        if problems.is_empty() {
            Ok(Carbon { pue, source })
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

    fn resolve_source(&self, problems: &mut Vec<ConfigProblem>) -> Source {
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
            (Some(selector), _) => Source::Metric {
                selector: selector.to_owned(),
                max_gap_ms: (max_gap_secs * 1000.0) as i64,
                zones: zone_label.map(|label| (label.to_owned(), zones)),
            },
            (None, Some(ci)) => Source::Static(ci),
            (None, None) => Source::Unknown,
        }
    }
}

impl Carbon {
    /// The PUE of `host`: the site's, or the first pattern matching it.
    pub fn pue(&self, host: Option<&str>) -> Option<f64> {
        match &self.pue {
            Pue::Unknown => None,
            Pue::Site(pue) => Some(*pue),
            Pue::ByHost(patterns) => {
                let host = host?;
                patterns
                    .iter()
                    .find(|(glob, _)| glob.is_match(host))
                    .map(|(_, pue)| *pue)
            }
        }
    }

    /// The intensity of `window`: the static number, or G1 of the gauge per
    /// zone (a zone with several series is left out, with a warning: which
    /// one to trust is the operator's choice, made in the selector).
    pub async fn intensity(
        &self,
        client: Option<&Client>,
        window: Window,
    ) -> Result<Intensity, IntensityError> {
        let (selector, max_gap_ms, zones) = match &self.source {
            Source::Unknown => return Ok(Intensity::Unknown),
            Source::Static(ci) => return Ok(Intensity::Static(*ci)),
            Source::Metric {
                selector,
                max_gap_ms,
                zones,
            } => (selector, *max_gap_ms, zones),
        };
        let client = client.ok_or_else(|| IntensityError::NoPrometheus(selector.clone()))?;
        let series = measure_gauge(client, selector, window, max_gap_ms).await?;
        let mut by_zone: BTreeMap<String, Integral> = BTreeMap::new();
        let mut ambiguous = BTreeSet::new();
        for s in series {
            let zone = match zones {
                None => String::new(),
                Some((label, _)) => match s.labels.get(label) {
                    Some(zone) => zone.to_owned(),
                    None => continue,
                },
            };
            if by_zone.insert(zone.clone(), s.integral).is_some() {
                ambiguous.insert(zone);
            }
        }
        for zone in ambiguous {
            by_zone.remove(&zone);
            tracing::warn!(
                %window,
                selector,
                zone,
                "several intensity series for one zone: none is used; narrow intensity_metric to one series per zone (e.g. add a label matcher)"
            );
        }
        Ok(Intensity::Measured(by_zone))
    }

    /// The intensity of every window where it needs no measurement: the
    /// static number, or none (a gauge is read by [`Carbon::intensity`]).
    pub fn fixed_intensity(&self) -> Intensity {
        match self.source {
            Source::Static(ci) => Intensity::Static(ci),
            _ => Intensity::Unknown,
        }
    }

    /// The footprint of `joules` drawn on `host`, gCO2e, where the intensity
    /// is static (the daemon's counters).
    pub fn fixed_footprint(&self, joules: f64, host: Option<&str>) -> Option<f64> {
        match self.source {
            Source::Static(ci) => Some(grams(joules, self.pue(host), ci)),
            _ => None,
        }
    }

    /// The zone of `host`: `""` without zones, else the first pattern's.
    fn zone(&self, host: Option<&str>) -> Option<&str> {
        match &self.source {
            Source::Metric {
                zones: Some((_, patterns)),
                ..
            } => {
                let host = host?;
                patterns
                    .iter()
                    .find(|(glob, _)| glob.is_match(host))
                    .map(|(_, zone)| zone.as_str())
            }
            _ => Some(""),
        }
    }

    /// Sets a record's `pue`, `ci_g`, `ci_covered_s` and `cfp_g` from the
    /// window's intensity. A zone without intensity is added to `missing`.
    pub fn apply(&self, record: &mut EnergyRecord, intensity: &Intensity, missing: &mut Missing) {
        let f = self.footprint(record.host.as_deref(), record.joules, intensity, missing);
        (record.pue, record.ci_g, record.ci_covered_s, record.cfp_g) =
            (f.pue, f.ci_g, f.ci_covered_s, f.cfp_g);
    }

    /// PUE, intensity and footprint of `joules` drawn on `host` (a PUE not
    /// known counts as 1 in the footprint: IT energy only).
    fn footprint(
        &self,
        host: Option<&str>,
        joules: f64,
        intensity: &Intensity,
        missing: &mut Missing,
    ) -> Footprint {
        let pue = self.pue(host);
        let (ci_g, ci_covered_s) = match intensity {
            Intensity::Unknown => (None, None),
            Intensity::Static(ci) => (Some(*ci), None),
            Intensity::Measured(by_zone) => {
                let zone = self.zone(host);
                match zone.and_then(|z| by_zone.get(z)) {
                    Some(i) if i.covered_s > 0.0 => {
                        (Some(i.value / i.covered_s), Some(i.covered_s))
                    }
                    _ => {
                        match zone {
                            Some(zone) => missing.zones.insert(zone.to_owned()),
                            None => missing.hosts.insert(host.unwrap_or_default().to_owned()),
                        };
                        (None, None)
                    }
                }
            }
        };
        Footprint {
            pue,
            ci_g,
            ci_covered_s,
            cfp_g: ci_g.map(|ci| grams(joules, pue, ci)),
        }
    }
}

/// What `[carbon]` puts on one record.
#[derive(Debug, PartialEq)]
struct Footprint {
    pue: Option<f64>,
    ci_g: Option<f64>,
    ci_covered_s: Option<f64>,
    cfp_g: Option<f64>,
}

/// ENERGY.md's CFP_g: `joules / 3.6e6 × PUE × CI` (a PUE not known counts as
/// 1: IT energy only).
fn grams(joules: f64, pue: Option<f64>, ci_g_per_kwh: f64) -> f64 {
    joules / 3.6e6 * pue.unwrap_or(1.0) * ci_g_per_kwh
}

/// Why a window's intensity could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum IntensityError {
    /// No Prometheus to read the gauge from.
    #[error(
        "[carbon] intensity_metric {0:?} is read from Prometheus, and none is configured: set [prometheus] url or pass --prometheus"
    )]
    NoPrometheus(String),
    /// The query failed.
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
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

    #[test]
    fn a_measured_intensity_applies_per_zone_and_an_uncovered_zone_gives_none() {
        let carbon = config(
            "pue = 1.5\nintensity_metric = \"ci\"\nintensity_zone_label = \"zone\"\nzones = { \"cmp-*\" = \"DE\", \"gpu-*\" = \"FR\" }",
        )
        .resolve()
        .unwrap();
        let by_zone = BTreeMap::from([
            (
                "DE".to_owned(),
                Integral {
                    value: 300.0 * 1800.0,
                    covered_s: 1800.0,
                },
            ),
            (
                "FR".to_owned(),
                Integral {
                    value: 0.0,
                    covered_s: 0.0,
                },
            ),
        ]);
        let intensity = Intensity::Measured(by_zone);
        let mut missing = Missing::default();
        let mut record = |host: &str| {
            let f = carbon.footprint(Some(host), 3.6e6, &intensity, &mut missing);
            (f.ci_g, f.cfp_g, f.ci_covered_s)
        };
        assert_eq!(record("cmp-01"), (Some(300.0), Some(450.0), Some(1800.0)));
        assert_eq!(record("gpu-01"), (None, None, None));
        assert_eq!(record("edge-01"), (None, None, None));
        assert_eq!(missing.zones, BTreeSet::from(["FR".to_owned()]));
        assert_eq!(missing.hosts, BTreeSet::from(["edge-01".to_owned()]));
    }
}
