//! Grid carbon intensity, gCO2e per kWh, over one window
//! (`docs/ENERGY.md#pue-and-carbon`): a static number, or the time-weighted
//! mean of a Prometheus gauge over the window (G1 of the series ÷ its covered
//! seconds), per grid zone where hosts sit in several. `[carbon]` says which;
//! the pipeline's carbon transform puts it on records.

use std::collections::{BTreeMap, BTreeSet};

use crate::energy::gauge::Integral;
use crate::sources::prometheus::{Client, PrometheusError, measure_gauge};
use crate::window::Window;

/// Where a window's intensity comes from, checked.
#[derive(Clone, Debug)]
pub enum IntensitySource {
    /// Nowhere: records carry no intensity.
    Unknown,
    /// One number for every window.
    Static(f64),
    /// A gauge in Prometheus.
    Metric {
        /// The gauge: a metric name or a series selector.
        selector: String,
        /// Longest gap between two samples that G1 bridges, milliseconds.
        max_gap_ms: i64,
        /// The series' grid-zone label; None: one series for every host.
        zone_label: Option<String>,
    },
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

impl IntensitySource {
    /// The intensity of `window`: the static number, or G1 of the gauge per
    /// zone (a zone with several series is left out, with a warning: which
    /// one to trust is the operator's choice, made in the selector).
    pub async fn measure(
        &self,
        client: Option<&Client>,
        window: Window,
    ) -> Result<Intensity, IntensityError> {
        let (selector, max_gap_ms, zone_label) = match self {
            Self::Unknown => return Ok(Intensity::Unknown),
            Self::Static(ci) => return Ok(Intensity::Static(*ci)),
            Self::Metric {
                selector,
                max_gap_ms,
                zone_label,
            } => (selector, *max_gap_ms, zone_label),
        };
        let client = client.ok_or_else(|| IntensityError::NoPrometheus(selector.clone()))?;
        let series = measure_gauge(client, selector, window, max_gap_ms).await?;
        let mut by_zone: BTreeMap<String, Integral> = BTreeMap::new();
        let mut ambiguous = BTreeSet::new();
        for s in series {
            let zone = match zone_label {
                None => String::new(),
                Some(label) => match s.labels.get(label) {
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
    /// static number, or none (a gauge is read by [`IntensitySource::measure`]).
    pub fn fixed(&self) -> Intensity {
        match self {
            Self::Static(ci) => Intensity::Static(*ci),
            _ => Intensity::Unknown,
        }
    }
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
