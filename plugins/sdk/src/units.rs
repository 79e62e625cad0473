//! The one unit conversion: to and from the host's base units (joules,
//! watts, seconds).

use crate::Unit;

impl Unit {
    /// `value` in this unit as joules (energy), watts (power) or seconds.
    pub fn to_base(self, value: f64) -> f64 {
        value * self.base_per_unit()
    }

    /// `value` in base units (joules, watts, seconds) in this unit, e.g.
    /// `Unit::KilowattHours.from_base(joules)`.
    pub fn from_base(self, value: f64) -> f64 {
        value / self.base_per_unit()
    }

    /// The unit a policy names: `J`, `Wh`, `kWh`, `uJ`, `mJ`, `W`, `uW`, `s`, or
    /// the WIT name (`joules`, `kilowatt-hours`, …).
    pub fn parse(text: &str) -> Option<Unit> {
        Some(match text {
            "J" | "joules" => Unit::Joules,
            "Wh" | "watt-hours" => Unit::WattHours,
            "kWh" | "kilowatt-hours" => Unit::KilowattHours,
            "uJ" | "µJ" | "microjoules" => Unit::Microjoules,
            "mJ" | "millijoules" => Unit::Millijoules,
            "W" | "watts" => Unit::Watts,
            "uW" | "µW" | "microwatts" => Unit::Microwatts,
            "s" | "seconds" => Unit::Seconds,
            _ => return None,
        })
    }

    fn base_per_unit(self) -> f64 {
        match self {
            Unit::Joules | Unit::Watts | Unit::Seconds => 1.0,
            Unit::WattHours => 3600.0,
            Unit::KilowattHours => 3.6e6,
            Unit::Microjoules | Unit::Microwatts => 1e-6,
            Unit::Millijoules => 1e-3,
        }
    }
}
