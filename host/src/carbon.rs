//! `[carbon]`: facility overhead and grid carbon intensity on every record
//! (ENERGY.md "Facility overhead and carbon"). A record's joules stay IT
//! energy; it carries the PUE of its host, the window's intensity and the
//! footprint `joules / 3.6e6 × PUE × CI` (gCO2e). No intensity: no `ci_g`
//! and no `cfp_g` (never 0).

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::records::EnergyRecord;

/// `[carbon]` of a policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbonConfig {
    /// The site's PUE (`1.3`), or a table of host patterns to PUE
    /// (`{ "cmp-0*" = 1.2, "*" = 1.4 }`, first match wins).
    pub pue: Option<toml::Value>,
    /// Grid carbon intensity, gCO2e per kWh, for every window.
    pub intensity_g_per_kwh: Option<f64>,
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

/// `[carbon]`, checked and ready to apply.
#[derive(Clone, Debug)]
pub struct Carbon {
    pue: Pue,
    intensity: Option<f64>,
}

impl CarbonConfig {
    /// What is wrong with these settings, as (key, message), found without I/O.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self.resolve() {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// The checked settings, or every problem.
    pub fn resolve(&self) -> Result<Carbon, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let pue_problem = |key: String, value: &toml::Value| -> Option<(String, String)> {
            match value.as_float().or(value.as_integer().map(|i| i as f64)) {
                Some(pue) if PUE_RANGE.contains(&pue) => None,
                _ => Some((
                    key,
                    format!(
                        "PUE is {value}: give a number from 1 (no facility overhead) to 10, e.g. 1.3"
                    ),
                )),
            }
        };
        let pue = match &self.pue {
            None => Pue::Unknown,
            Some(toml::Value::Table(table)) => {
                let mut patterns = Vec::with_capacity(table.len());
                for (pattern, value) in table {
                    let key = format!("pue.\"{pattern}\"");
                    match Glob::new(pattern) {
                        Ok(glob) => {
                            if let Some(p) = pue_problem(key, value) {
                                problems.push(p);
                            } else {
                                let pue = value
                                    .as_float()
                                    .or(value.as_integer().map(|i| i as f64))
                                    .unwrap_or(1.0);
                                patterns.push((glob.compile_matcher(), pue));
                            }
                        }
                        Err(e) => problems.push((key, format!("not a host pattern: {e}"))),
                    }
                }
                Pue::ByHost(patterns)
            }
            Some(value) => match pue_problem("pue".into(), value) {
                Some(p) => {
                    problems.push(p);
                    Pue::Unknown
                }
                None => Pue::Site(
                    value
                        .as_float()
                        .or(value.as_integer().map(|i| i as f64))
                        .unwrap_or(1.0),
                ),
            },
        };
        if let Some(ci) = self.intensity_g_per_kwh
            && !(ci.is_finite() && ci >= 0.0)
        {
            problems.push((
                "intensity_g_per_kwh".into(),
                "must be a number of gCO2e per kWh, 0 or more".into(),
            ));
        }
        if problems.is_empty() {
            Ok(Carbon {
                pue,
                intensity: self.intensity_g_per_kwh,
            })
        } else {
            Err(problems)
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

    /// Sets a record's `pue`, `ci_g` and `cfp_g` (a PUE not known counts as
    /// 1 in the footprint: IT energy only).
    pub fn apply(&self, record: &mut EnergyRecord) {
        record.pue = self.pue(record.host.as_deref());
        record.ci_g = self.intensity;
        record.ci_covered_s = None;
        record.cfp_g = self
            .intensity
            .map(|ci| record.joules / 3.6e6 * record.pue.unwrap_or(1.0) * ci);
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
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["pue.\"[\"", "pue.\"x\"", "intensity_g_per_kwh"]);
        assert_eq!(config("pue = \"high\"").problems()[0].0, "pue");
    }
}
