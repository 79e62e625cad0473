//! Constructors and builders for the WIT records a plugin writes, so no
//! plugin spells out every optional field.

use crate::{
    Bounds, ChoiceSpec, CounterSpec, GaugeSpec, GpuSpec, HostPowerSpec, IdlePowerSpec, KeyKind,
    Measurement, ParamKind, ParamSpec, ParamValue, RaplSpec, TemplateSpec, Unit,
};

impl CounterSpec {
    /// A counter `name` read from `selector`, keyed by `key_label` holding a
    /// `key`, in `unit`; drops are resets (see [`CounterSpec::wrapping_at`]).
    pub fn new(name: &str, selector: &str, key_label: &str, key: KeyKind, unit: Unit) -> Self {
        Self {
            name: name.to_owned(),
            selector: selector.to_owned(),
            key_label: key_label.to_owned(),
            key,
            unit,
            wrap_range: None,
        }
    }

    /// The counter wraps at `range` (in its own unit): a drop counts `c + range − p` (C1w).
    pub fn wrapping_at(mut self, range: f64) -> Self {
        self.wrap_range = Some(range);
        self
    }
}

impl GaugeSpec {
    /// A power gauge `name` read from `selector`, keyed by `key_label` holding
    /// a `key`, in `unit` (watts or microwatts); gaps over 300 s are not bridged.
    pub fn new(name: &str, selector: &str, key_label: &str, key: KeyKind, unit: Unit) -> Self {
        Self {
            name: name.to_owned(),
            selector: selector.to_owned(),
            key_label: key_label.to_owned(),
            key,
            unit,
            max_gap_s: None,
        }
    }

    /// Bridge sample gaps up to `seconds` (default 300).
    pub fn max_gap(mut self, seconds: f64) -> Self {
        self.max_gap_s = Some(seconds);
        self
    }
}

impl TemplateSpec {
    /// A PromQL template `name` whose value is in `unit`; a result without
    /// per-VM variables is matched to VMs by its `uuid` label.
    pub fn new(name: &str, query: &str, unit: Unit) -> Self {
        Self {
            name: name.to_owned(),
            query: query.to_owned(),
            key_label: None,
            unit,
        }
    }

    /// Match a once-per-window result to VMs by `label` instead of `uuid`.
    pub fn key_label(mut self, label: &str) -> Self {
        self.key_label = Some(label.to_owned());
        self
    }
}

impl RaplSpec {
    /// RAPL package + dram energy of each host.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            zones: Vec::new(),
        }
    }

    /// Sum these zones instead (`package-0`, `dram`, …).
    pub fn zones(mut self, zones: &[&str]) -> Self {
        self.zones = zones.iter().map(|z| (*z).to_owned()).collect();
        self
    }
}

impl HostPowerSpec {
    /// Wall power of each host, from whatever meter the host has.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            max_gap_s: None,
        }
    }
}

impl IdlePowerSpec {
    /// Idle power `name` of each host, from the host measurement `meter`;
    /// `setting` is `auto` or watts, usually `${idle_power}`.
    pub fn new(name: &str, meter: &str, setting: &str) -> Self {
        Self {
            name: name.to_owned(),
            meter: meter.to_owned(),
            setting: setting.to_owned(),
        }
    }
}

impl GpuSpec {
    /// Each host's GPUs, their energy and their holders (`attribution-input.gpus`).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            max_gap_s: None,
        }
    }
}

impl From<GpuSpec> for Measurement {
    fn from(spec: GpuSpec) -> Self {
        Measurement::Gpu(spec)
    }
}

impl From<CounterSpec> for Measurement {
    fn from(spec: CounterSpec) -> Self {
        Measurement::Counter(spec)
    }
}

impl From<GaugeSpec> for Measurement {
    fn from(spec: GaugeSpec) -> Self {
        Measurement::Gauge(spec)
    }
}

impl From<TemplateSpec> for Measurement {
    fn from(spec: TemplateSpec) -> Self {
        Measurement::Template(spec)
    }
}

impl From<RaplSpec> for Measurement {
    fn from(spec: RaplSpec) -> Self {
        Measurement::Rapl(spec)
    }
}

impl From<HostPowerSpec> for Measurement {
    fn from(spec: HostPowerSpec) -> Self {
        Measurement::HostPower(spec)
    }
}

impl From<IdlePowerSpec> for Measurement {
    fn from(spec: IdlePowerSpec) -> Self {
        Measurement::IdlePower(spec)
    }
}

impl Bounds {
    /// No bound on either side.
    pub const UNBOUNDED: Bounds = Bounds {
        min: None,
        max: None,
    };
}

impl ParamSpec {
    /// A text parameter; `default: None` makes it required.
    pub fn text(name: &str, description: &str, default: Option<&str>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Text,
            default.map(|d| ParamValue::Text(d.to_owned())),
        )
    }

    /// A number (f64) parameter; `default: None` makes it required. Bound it
    /// with [`ParamSpec::min`] and [`ParamSpec::max`].
    pub fn number(name: &str, description: &str, default: Option<f64>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Number(Bounds::UNBOUNDED),
            default.map(ParamValue::Number),
        )
    }

    /// An integer (i64) parameter; `default: None` makes it required.
    pub fn integer(name: &str, description: &str, default: Option<i64>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Integer(Bounds::UNBOUNDED),
            default.map(ParamValue::Integer),
        )
    }

    /// A boolean parameter; `default: None` makes it required.
    pub fn flag(name: &str, description: &str, default: Option<bool>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Flag,
            default.map(ParamValue::Flag),
        )
    }

    /// One of `values`; `default: None` makes it required. Accept a number
    /// too with [`ParamSpec::or_number`].
    pub fn choice(name: &str, description: &str, values: &[&str], default: Option<&str>) -> Self {
        Self::new(
            name,
            description,
            ParamKind::Choice(ChoiceSpec {
                values: values.iter().map(|v| (*v).to_owned()).collect(),
                or_number: None,
            }),
            default.map(|d| ParamValue::Choice(d.to_owned())),
        )
    }

    /// A table of glob patterns (hosts, flavors) to numbers, first match
    /// wins; an empty table by default.
    pub fn number_table(name: &str, description: &str) -> Self {
        Self::new(
            name,
            description,
            ParamKind::NumberTable(Bounds::UNBOUNDED),
            Some(ParamValue::Table(Vec::new())),
        )
    }

    /// A choice that also accepts a number (`idle_power = "auto" | <watts>`),
    /// bounded by later [`ParamSpec::min`] / [`ParamSpec::max`] calls.
    pub fn or_number(mut self) -> Self {
        if let ParamKind::Choice(choice) = &mut self.kind {
            choice.or_number.get_or_insert(Bounds::UNBOUNDED);
        }
        self
    }

    /// The smallest number accepted (numbers, integers, tables, a choice's number).
    pub fn min(mut self, min: f64) -> Self {
        if let Some(bounds) = self.bounds_mut() {
            bounds.min = Some(min);
        }
        self
    }

    /// The largest number accepted (numbers, integers, tables, a choice's number).
    pub fn max(mut self, max: f64) -> Self {
        if let Some(bounds) = self.bounds_mut() {
            bounds.max = Some(max);
        }
        self
    }

    fn bounds_mut(&mut self) -> Option<&mut Bounds> {
        match &mut self.kind {
            ParamKind::Number(b) | ParamKind::Integer(b) | ParamKind::NumberTable(b) => Some(b),
            ParamKind::Choice(choice) => choice.or_number.as_mut(),
            ParamKind::Text | ParamKind::Flag => None,
        }
    }

    fn new(name: &str, description: &str, kind: ParamKind, default: Option<ParamValue>) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            kind,
            default,
        }
    }
}

#[cfg(feature = "model")]
mod model {
    use crate::{
        Attribution, Conservation, GpuSpec, HostEnergy, Measurement, ModelInfo, ParamSpec,
        PlacementEnergy, Quality, UnattributedReason,
    };

    impl ModelInfo {
        /// A measured model with no measurements, parameters or conservation yet.
        pub fn new(name: &str, version: &str, description: &str) -> Self {
            Self {
                name: name.to_owned(),
                version: version.to_owned(),
                description: description.to_owned(),
                measurements: Vec::new(),
                params: Vec::new(),
                conservation: None,
                quality: Quality::Measured,
            }
        }

        /// Adds a measurement the host makes for every window.
        pub fn measurement(mut self, m: impl Into<Measurement>) -> Self {
            self.measurements.push(m.into());
            self
        }

        /// Adds a parameter.
        pub fn param(mut self, p: ParamSpec) -> Self {
            self.params.push(p);
            self
        }

        /// The host checks, per host, placements + unattributed = the reading
        /// of the host measurement `measurement`, to `tolerance` (≤ 1e-6);
        /// with a `gpu` measurement declared (before or after), plus the
        /// host's GPU energy, and the GPU law (see [`ModelInfo::gpu`]).
        pub fn conservation(mut self, measurement: &str, tolerance: f64) -> Self {
            let gpu = self.measurements.iter().find_map(|m| match m {
                Measurement::Gpu(g) => Some(g.name.clone()),
                _ => None,
            });
            self.conservation = Some(Conservation {
                measurement: measurement.to_owned(),
                tolerance,
                gpu,
                gpu_in_meter: false,
            });
            self
        }

        /// Adds the `gpu` measurement `name` (each host's GPUs and their
        /// holders); the model attributes them (see `gpu::attribute`), and
        /// the host checks per host Σ placements' GPU joules + Σ
        /// unattributed GPU joules = the host's GPU energy, to the
        /// conservation tolerance (1e-9 without conservation).
        pub fn gpu(mut self, name: &str) -> Self {
            self.measurements.push(GpuSpec::new(name).into());
            if let Some(law) = &mut self.conservation {
                law.gpu = Some(name.to_owned());
            }
            self
        }

        /// The conservation measurement already counts the GPUs (a wall
        /// meter: IPMI, Redfish): the total law is E_h, not E_h + G_h, and
        /// the model splits E_h − G_h by its own rule. Call it after
        /// [`ModelInfo::conservation`].
        pub fn gpu_in_meter(mut self) -> Self {
            if let Some(law) = &mut self.conservation {
                law.gpu_in_meter = true;
            }
            self
        }

        /// The model estimates rather than measures: its records say so.
        pub fn estimated(mut self) -> Self {
            self.quality = Quality::Estimated;
            self
        }
    }

    // A generated type: its derives are wit-bindgen's.
    #[allow(clippy::derivable_impls)]
    impl Default for Attribution {
        fn default() -> Self {
            Self {
                placements: Vec::new(),
                unattributed: Vec::new(),
            }
        }
    }

    impl Attribution {
        /// Gives `joules` (no GPU part) to placement `placement`.
        pub fn give(&mut self, placement: u32, joules: f64) {
            self.placements.push(PlacementEnergy {
                placement,
                joules,
                gpu_joules: 0.0,
            });
        }

        /// Leaves `joules` (no GPU part) of host `host` unattributed, for
        /// `reason` (nothing if 0).
        pub fn leave(&mut self, host: u32, joules: f64, reason: UnattributedReason) {
            if joules != 0.0 {
                self.unattributed.push(HostEnergy {
                    host,
                    joules,
                    gpu_joules: 0.0,
                    reason,
                });
            }
        }
    }
}

#[cfg(feature = "format")]
mod format {
    use crate::{FormatInfo, ParamSpec, Quality, Status};

    impl FormatInfo {
        /// A format with no parameters yet.
        pub fn new(
            name: &str,
            version: &str,
            description: &str,
            media_type: &str,
            extension: &str,
        ) -> Self {
            Self {
                name: name.to_owned(),
                version: version.to_owned(),
                description: description.to_owned(),
                media_type: media_type.to_owned(),
                extension: extension.to_owned(),
                params: Vec::new(),
            }
        }

        /// Adds a parameter.
        pub fn param(mut self, p: ParamSpec) -> Self {
            self.params.push(p);
            self
        }
    }

    impl Status {
        /// `started`, `running` or `completed`, as `docs/ENERGY.md#record-status` names them.
        pub fn as_str(self) -> &'static str {
            match self {
                Status::Started => "started",
                Status::Running => "running",
                Status::Completed => "completed",
            }
        }

        /// As APEL (and cASO) know it: `running` is `started`.
        pub fn apel(self) -> &'static str {
            match self {
                Status::Started | Status::Running => "started",
                Status::Completed => "completed",
            }
        }
    }

    impl Quality {
        /// `measured` or `estimated`.
        pub fn as_str(self) -> &'static str {
            match self {
                Quality::Measured => "measured",
                Quality::Estimated => "estimated",
            }
        }
    }
}
