//! The carbon transform (`docs/ENERGY.md#pue-and-carbon`): each
//! record gets the PUE of its host, the window's grid intensity and the
//! footprint `joules / 3.6e6 × PUE × CI` (gCO2e); its joules stay IT energy.
//! No intensity: no `ci_g` and no `cfp_g` (never 0). `[carbon]` is
//! [`CarbonConfig`]; the intensity is read by
//! [`crate::sources::carbon_intensity`].

mod config;

pub use config::CarbonConfig;

use std::collections::BTreeSet;

use globset::GlobMatcher;

use crate::records::EnergyRecord;
use crate::sources::carbon_intensity::{Intensity, IntensitySource};
use crate::window::Window;

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
    intensity: IntensitySource,
    /// Host patterns → zone, where the intensity gauge has a zone label;
    /// None: one intensity for every host.
    zones: Option<Vec<(GlobMatcher, String)>>,
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

    /// Where each window's intensity comes from.
    pub fn intensity_source(&self) -> &IntensitySource {
        &self.intensity
    }

    /// The footprint of `joules` drawn on `host`, gCO2e, where the intensity
    /// is static (the daemon's counters).
    pub fn fixed_footprint(&self, joules: f64, host: Option<&str>) -> Option<f64> {
        match self.intensity {
            IntensitySource::Static(ci) => Some(grams(joules, self.pue(host), ci)),
            _ => None,
        }
    }

    /// The zone of `host`: `""` without zones, else the first pattern's.
    fn zone(&self, host: Option<&str>) -> Option<&str> {
        match &self.zones {
            Some(patterns) => {
                let host = host?;
                patterns
                    .iter()
                    .find(|(glob, _)| glob.is_match(host))
                    .map(|(_, zone)| zone.as_str())
            }
            None => Some(""),
        }
    }

    /// Sets each record's `pue`, `ci_g`, `ci_covered_s` and `cfp_g` from
    /// the window's intensity. A zone without intensity is added to `missing`.
    pub fn apply(
        &self,
        records: &mut [EnergyRecord],
        intensity: &Intensity,
        missing: &mut Missing,
    ) {
        for record in records {
            let f = self.footprint(record.host.as_deref(), record.joules, intensity, missing);
            (record.pue, record.ci_g, record.ci_covered_s, record.cfp_g) =
                (f.pue, f.ci_g, f.ci_covered_s, f.cfp_g);
        }
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

/// `docs/ENERGY.md#pue-and-carbon`'s CFP_g: `joules / 3.6e6 × PUE × CI` (a PUE not known counts as
/// 1: IT energy only).
fn grams(joules: f64, pue: Option<f64>, ci_g_per_kwh: f64) -> f64 {
    joules / 3.6e6 * pue.unwrap_or(1.0) * ci_g_per_kwh
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::energy::gauge::Integral;

    #[test]
    fn a_measured_intensity_applies_per_zone_and_an_uncovered_zone_gives_none() {
        let carbon = toml::from_str::<CarbonConfig>(
            "pue = 1.5\nintensity_metric = \"ci\"\nintensity_zone_label = \"zone\"\nzones = { \"cmp-*\" = \"DE\", \"gpu-*\" = \"FR\" }",
        )
        .unwrap()
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
