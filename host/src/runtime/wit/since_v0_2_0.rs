//! Bindings of `wattson:plugin@0.2.0` (`wit/since_v0.2.0/`, frozen), and the
//! conversions that let a 0.2.0 component run on the latest host types: its
//! `describe()` answer is lifted to the latest types, the latest input and
//! records are lowered to 0.2.0 for each call (without what 0.3.0 added:
//! GPUs, per-placement readings, the records' GPU and embodied parts), and
//! its answer is lifted back (no GPU joules).
#![allow(missing_docs)] // generated; the WIT documents every item

use super::latest;

/// The version these bindings are for.
pub const VERSION: &str = "0.2.0";

/// The `attribution-model` world, and the types every world shares.
pub mod model {
    wasmtime::component::bindgen!({
        world: "attribution-model",
        path: "../wit/since_v0.2.0",
        imports: { default: trappable },
    });
}

/// The `output-format` world; shares `types` and `host` with [`model`].
pub mod format {
    wasmtime::component::bindgen!({
        world: "output-format",
        path: "../wit/since_v0.2.0",
        imports: { default: trappable },
        with: {
            "wattson:plugin/types": super::model::wattson::plugin::types,
            "wattson:plugin/host": super::model::wattson::plugin::host,
        },
    });
}

use format::wattson::plugin::format as f;
use model::wattson::plugin::model as m;
use model::wattson::plugin::types as t;

/// A 0.2.0 model's `describe()` in the latest types: its conservation law,
/// if any, leaves GPUs alone.
pub fn model_info(info: m::ModelInfo) -> latest::ModelInfo {
    latest::ModelInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        measurements: info.measurements.into_iter().map(measurement).collect(),
        params: info.params.into_iter().map(param_spec).collect(),
        conservation: info.conservation.map(|c| latest::Conservation {
            measurement: c.measurement,
            tolerance: c.tolerance,
            gpu: None,
            gpu_in_meter: false,
        }),
        quality: quality(info.quality),
    }
}

/// A 0.2.0 format's `describe()` in the latest types.
pub fn format_info(info: f::FormatInfo) -> latest::FormatInfo {
    latest::FormatInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        media_type: info.media_type,
        extension: info.extension,
        params: info.params.into_iter().map(param_spec).collect(),
    }
}

fn unit(u: t::Unit) -> latest::Unit {
    match u {
        t::Unit::Joules => latest::Unit::Joules,
        t::Unit::WattHours => latest::Unit::WattHours,
        t::Unit::KilowattHours => latest::Unit::KilowattHours,
        t::Unit::Microjoules => latest::Unit::Microjoules,
        t::Unit::Watts => latest::Unit::Watts,
        t::Unit::Microwatts => latest::Unit::Microwatts,
        t::Unit::Seconds => latest::Unit::Seconds,
    }
}

fn key(k: t::KeyKind) -> latest::KeyKind {
    match k {
        t::KeyKind::Uuid => latest::KeyKind::Uuid,
        t::KeyKind::Vmname => latest::KeyKind::Vmname,
        t::KeyKind::Host => latest::KeyKind::Host,
    }
}

fn quality(q: t::Quality) -> latest::Quality {
    match q {
        t::Quality::Measured => latest::Quality::Measured,
        t::Quality::Estimated => latest::Quality::Estimated,
    }
}

fn measurement(m: t::Measurement) -> latest::Measurement {
    match m {
        t::Measurement::Counter(c) => latest::Measurement::Counter(latest::CounterSpec {
            name: c.name,
            selector: c.selector,
            key_label: c.key_label,
            key: key(c.key),
            unit: unit(c.unit),
            wrap_range: c.wrap_range,
        }),
        t::Measurement::Gauge(g) => latest::Measurement::Gauge(latest::GaugeSpec {
            name: g.name,
            selector: g.selector,
            key_label: g.key_label,
            key: key(g.key),
            unit: unit(g.unit),
            max_gap_s: g.max_gap_s,
        }),
        t::Measurement::Template(q) => latest::Measurement::Template(latest::TemplateSpec {
            name: q.name,
            query: q.query,
            key_label: q.key_label,
            unit: unit(q.unit),
        }),
        t::Measurement::Rapl(r) => latest::Measurement::Rapl(latest::RaplSpec {
            name: r.name,
            zones: r.zones,
        }),
        t::Measurement::HostPower(h) => latest::Measurement::HostPower(latest::HostPowerSpec {
            name: h.name,
            max_gap_s: h.max_gap_s,
        }),
        t::Measurement::CpuTime(name) => latest::Measurement::CpuTime(name),
        t::Measurement::IdlePower(i) => latest::Measurement::IdlePower(latest::IdlePowerSpec {
            name: i.name,
            meter: i.meter,
            setting: i.setting,
        }),
        t::Measurement::Inventory => latest::Measurement::Inventory,
    }
}

fn bounds(b: t::Bounds) -> latest::Bounds {
    latest::Bounds {
        min: b.min,
        max: b.max,
    }
}

fn param_value(v: t::ParamValue) -> latest::ParamValue {
    match v {
        t::ParamValue::Text(s) => latest::ParamValue::Text(s),
        t::ParamValue::Number(x) => latest::ParamValue::Number(x),
        t::ParamValue::Integer(x) => latest::ParamValue::Integer(x),
        t::ParamValue::Flag(b) => latest::ParamValue::Flag(b),
        t::ParamValue::Choice(s) => latest::ParamValue::Choice(s),
        t::ParamValue::Table(entries) => latest::ParamValue::Table(entries),
    }
}

fn param_spec(p: t::ParamSpec) -> latest::ParamSpec {
    latest::ParamSpec {
        name: p.name,
        description: p.description,
        kind: match p.kind {
            t::ParamKind::Text => latest::ParamKind::Text,
            t::ParamKind::Number(b) => latest::ParamKind::Number(bounds(b)),
            t::ParamKind::Integer(b) => latest::ParamKind::Integer(bounds(b)),
            t::ParamKind::Flag => latest::ParamKind::Flag,
            t::ParamKind::Choice(c) => latest::ParamKind::Choice(latest::ChoiceSpec {
                values: c.values,
                or_number: c.or_number.map(bounds),
            }),
            t::ParamKind::NumberTable(b) => latest::ParamKind::NumberTable(bounds(b)),
        },
        default: p.default.map(param_value),
    }
}

/// Parameters for a 0.2.0 call (the same kinds as the latest).
pub fn params(params: &[latest::Param]) -> Vec<t::Param> {
    params
        .iter()
        .map(|p| t::Param {
            name: p.name.clone(),
            value: match &p.value {
                latest::ParamValue::Text(s) => t::ParamValue::Text(s.clone()),
                latest::ParamValue::Number(x) => t::ParamValue::Number(*x),
                latest::ParamValue::Integer(x) => t::ParamValue::Integer(*x),
                latest::ParamValue::Flag(b) => t::ParamValue::Flag(*b),
                latest::ParamValue::Choice(s) => t::ParamValue::Choice(s.clone()),
                latest::ParamValue::Table(entries) => t::ParamValue::Table(entries.clone()),
            },
        })
        .collect()
}

/// The window's input as 0.2.0 has it: no GPUs, and VM-keyed readings per
/// VM only (a 0.2.0 model never declares `gpu`, so it would get none anyway).
pub fn input(input: &latest::AttributionInput) -> m::AttributionInput {
    let reading = |r: &latest::Reading| m::Reading {
        value: r.value,
        span_s: r.span_s,
        covered_s: r.covered_s,
    };
    m::AttributionInput {
        window: t::Window {
            start_ms: input.window.start_ms,
            end_ms: input.window.end_ms,
        },
        vms: input
            .vms
            .iter()
            .map(|vm| m::Vm {
                uuid: vm.uuid.clone(),
                vcpus: vm.vcpus,
                memory_mb: vm.memory_mb,
            })
            .collect(),
        details: input
            .details
            .iter()
            .map(|d| m::VmDetails {
                name: d.name.clone(),
                project_id: d.project_id.clone(),
                project_name: d.project_name.clone(),
                user_id: d.user_id.clone(),
                user_name: d.user_name.clone(),
                flavor: d.flavor.clone(),
                disk_gb: d.disk_gb,
                started_ms: d.started_ms,
                ended_ms: d.ended_ms,
                labels: d.labels.clone(),
            })
            .collect(),
        hosts: input.hosts.clone(),
        placements: input
            .placements
            .iter()
            .map(|p| m::Placement {
                vm: p.vm,
                host: p.host,
                presence_s: p.presence_s,
                cpu_s: p.cpu_s,
                assigned: p.assigned,
            })
            .collect(),
        measurements: input
            .measurements
            .iter()
            .map(|ms| m::Measured {
                name: ms.name.clone(),
                vms: ms.vms.iter().map(|r| r.as_ref().map(reading)).collect(),
                hosts: ms.hosts.iter().map(|r| r.as_ref().map(reading)).collect(),
            })
            .collect(),
    }
}

/// A 0.2.0 answer in the latest types: no part of it is a GPU's.
pub fn attribution(answer: m::Attribution) -> latest::Attribution {
    latest::Attribution {
        placements: answer
            .placements
            .into_iter()
            .map(|e| latest::PlacementEnergy {
                placement: e.placement,
                joules: e.joules,
                gpu_joules: 0.0,
            })
            .collect(),
        unattributed: answer
            .unattributed
            .into_iter()
            .map(|h| latest::HostEnergy {
                host: h.host,
                joules: h.joules,
                gpu_joules: 0.0,
                reason: match h.reason {
                    m::UnattributedReason::Idle => latest::UnattributedReason::Idle,
                    m::UnattributedReason::NoVms => latest::UnattributedReason::NoVms,
                    m::UnattributedReason::NoCpu => latest::UnattributedReason::NoCpu,
                    m::UnattributedReason::OtherModel => latest::UnattributedReason::OtherModel,
                    m::UnattributedReason::NotVms => latest::UnattributedReason::NotVms,
                    m::UnattributedReason::Other => latest::UnattributedReason::Other,
                },
            })
            .collect(),
    }
}

/// Records as a 0.2.0 format reads them: `joules` with any GPU part inside,
/// no `gpu-j`, `embodied-g` or `embodied-source`.
pub fn records(records: &[latest::EnergyRecord]) -> Vec<f::EnergyRecord> {
    records
        .iter()
        .map(|r| f::EnergyRecord {
            id: r.id.clone(),
            site: r.site.clone(),
            cloud_type: r.cloud_type.clone(),
            compute_service: r.compute_service.clone(),
            vm_uuid: r.vm_uuid.clone(),
            vm_name: r.vm_name.clone(),
            project_id: r.project_id.clone(),
            project_name: r.project_name.clone(),
            user_id: r.user_id.clone(),
            user_name: r.user_name.clone(),
            user_dn: r.user_dn.clone(),
            fqan: r.fqan.clone(),
            host: r.host.clone(),
            flavor: r.flavor.clone(),
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            joules: r.joules,
            wall_s: r.wall_s,
            cpu_s: r.cpu_s,
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            status: match r.status {
                latest::Status::Started => f::Status::Started,
                latest::Status::Running => f::Status::Running,
                latest::Status::Completed => f::Status::Completed,
            },
            quality: f::RecordQuality {
                kind: match r.quality.kind {
                    latest::Quality::Measured => t::Quality::Measured,
                    latest::Quality::Estimated => t::Quality::Estimated,
                },
                meters: r.quality.meters.clone(),
                covered_s: r.quality.covered_s,
            },
            pue: r.pue,
            ci_g: r.ci_g,
            cfp_g: r.cfp_g,
            ci_covered_s: r.ci_covered_s,
            model: r.model.clone(),
            model_version: r.model_version.clone(),
        })
        .collect()
}

/// A 0.2.0 log level as the latest one.
pub fn level(l: t::Level) -> latest::Level {
    match l {
        t::Level::Trace => latest::Level::Trace,
        t::Level::Debug => latest::Level::Debug,
        t::Level::Info => latest::Level::Info,
        t::Level::Warn => latest::Level::Warn,
        t::Level::Error => latest::Level::Error,
    }
}
