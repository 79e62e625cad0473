//! Units: conversion to the host's base units (joules, watts, seconds) and
//! the units each measurement kind may be declared in.

use super::wit::latest::{Measurement, Unit};

/// What a unit measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dimension {
    Energy,
    Power,
    Time,
}

fn dimension(unit: Unit) -> Dimension {
    match unit {
        Unit::Joules
        | Unit::WattHours
        | Unit::KilowattHours
        | Unit::Microjoules
        | Unit::Millijoules => Dimension::Energy,
        Unit::Watts | Unit::Microwatts => Dimension::Power,
        Unit::Seconds => Dimension::Time,
    }
}

/// `value` in `unit` as joules (energy units), watts (power units) or seconds.
pub fn to_base(unit: Unit, value: f64) -> f64 {
    match unit {
        Unit::Joules | Unit::Watts | Unit::Seconds => value,
        Unit::WattHours => value * 3600.0,
        Unit::KilowattHours => value * 3.6e6,
        Unit::Microjoules | Unit::Microwatts => value / 1e6,
        Unit::Millijoules => value / 1e3,
    }
}

/// Refuses a measurement whose unit does not fit its kind: a counter or a
/// template is an amount over the window (energy, or CPU seconds), a gauge is
/// power.
pub(crate) fn check(measurements: &[Measurement]) -> Result<(), String> {
    for m in measurements {
        let (kind, name, unit, allowed): (&str, &str, Unit, &[Dimension]) = match m {
            Measurement::Counter(c) => (
                "counter",
                &c.name,
                c.unit,
                &[Dimension::Energy, Dimension::Time],
            ),
            Measurement::Template(t) => (
                "template",
                &t.name,
                t.unit,
                &[Dimension::Energy, Dimension::Time],
            ),
            Measurement::Gauge(g) => ("gauge", &g.name, g.unit, &[Dimension::Power]),
            _ => continue,
        };
        if !allowed.contains(&dimension(unit)) {
            let expected = if allowed.contains(&Dimension::Power) {
                "a power unit (watts, microwatts): a gauge is integrated over the window"
            } else {
                "an energy unit (joules, watt-hours, kilowatt-hours, microjoules, millijoules) \
                 or seconds: \
                 its value is an amount over the window"
            };
            return Err(format!(
                "its {kind} measurement `{name}` is declared in {}, but a {kind} needs {expected}",
                unit_name(unit)
            ));
        }
    }
    Ok(())
}

/// A unit as people write it (`watt-hours`).
pub fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Joules => "joules",
        Unit::WattHours => "watt-hours",
        Unit::KilowattHours => "kilowatt-hours",
        Unit::Microjoules => "microjoules",
        Unit::Millijoules => "millijoules",
        Unit::Watts => "watts",
        Unit::Microwatts => "microwatts",
        Unit::Seconds => "seconds",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{CounterSpec, GaugeSpec, KeyKind};

    #[test]
    fn converts_to_base_units() {
        assert_eq!(to_base(Unit::KilowattHours, 2.0), 7.2e6);
        assert_eq!(to_base(Unit::WattHours, 0.5), 1800.0);
        assert_eq!(
            to_base(Unit::Microjoules, 262_143_328_850.0),
            262_143.328_85
        );
        assert_eq!(to_base(Unit::Microwatts, 1.5e6), 1.5);
        assert_eq!(to_base(Unit::Millijoules, 81_234_567_890.0), 81_234_567.89);
        assert_eq!(to_base(Unit::Seconds, 3.0), 3.0);
    }

    #[test]
    fn refuses_units_that_do_not_fit_the_kind() {
        let counter = |unit| {
            Measurement::Counter(CounterSpec {
                name: "energy".into(),
                selector: "m".into(),
                key_label: "uuid".into(),
                key: KeyKind::Uuid,
                unit,
                wrap_range: None,
            })
        };
        let gauge = |unit| {
            Measurement::Gauge(GaugeSpec {
                name: "power".into(),
                selector: "m".into(),
                key_label: "uuid".into(),
                key: KeyKind::Uuid,
                unit,
                max_gap_s: None,
            })
        };
        assert!(check(&[counter(Unit::Microjoules), counter(Unit::Seconds)]).is_ok());
        assert!(check(&[gauge(Unit::Microwatts)]).is_ok());
        let err = check(&[counter(Unit::Watts)]).unwrap_err();
        assert!(
            err.contains("counter measurement `energy`") && err.contains("watts"),
            "{err}"
        );
        let err = check(&[gauge(Unit::Joules)]).unwrap_err();
        assert!(
            err.contains("gauge measurement `power`") && err.contains("power unit"),
            "{err}"
        );
    }
}
