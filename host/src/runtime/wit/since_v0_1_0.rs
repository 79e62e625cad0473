//! Bindings of `wattson:plugin@0.1.0` (`wit/since_v0.1.0/`, frozen), and the
//! conversions that let a 0.1.0 component run on the latest host types: its
//! `describe()` answer is lifted to the latest types, the latest input and
//! records are lowered to 0.1.0 for each call, and its answer is lifted back.
#![allow(missing_docs)] // generated; the WIT documents every item

use std::collections::HashMap;

use super::latest;

/// The version these bindings are for.
pub const VERSION: &str = "0.1.0";

/// The `attribution-model` world, and the types every world shares.
pub mod model {
    wasmtime::component::bindgen!({
        world: "attribution-model",
        path: "../wit/since_v0.1.0",
        imports: { default: trappable },
    });
}

/// The `output-format` world; shares `types` and `host` with [`model`].
pub mod format {
    wasmtime::component::bindgen!({
        world: "output-format",
        path: "../wit/since_v0.1.0",
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

/// A 0.1.0 model's `describe()` in the latest types, and the name of the
/// parameter its conservation law multiplies E_h by (0.1.0's `factor-param`).
pub fn model_info(info: m::ModelInfo) -> (latest::ModelInfo, Option<String>) {
    let factor_param = info
        .conservation
        .as_ref()
        .and_then(|c| c.factor_param.clone());
    let info = latest::ModelInfo {
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
        quality: latest::Quality::Measured,
    };
    (info, factor_param)
}

/// A 0.1.0 format's `describe()` in the latest types.
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
        t::Measurement::CpuTime(name) => latest::Measurement::CpuTime(name),
        // 0.1.0's idle power always measured the named meter, under the meter's name.
        t::Measurement::IdlePower(meter) => latest::Measurement::IdlePower(latest::IdlePowerSpec {
            name: meter.clone(),
            meter,
            setting: "auto".into(),
        }),
        t::Measurement::Inventory => latest::Measurement::Inventory,
    }
}

fn param_spec(p: t::ParamSpec) -> latest::ParamSpec {
    let unbounded = latest::Bounds {
        min: None,
        max: None,
    };
    latest::ParamSpec {
        name: p.name,
        description: p.description,
        kind: match p.kind {
            t::ParamKind::Text => latest::ParamKind::Text,
            t::ParamKind::Number => latest::ParamKind::Number(unbounded),
            t::ParamKind::Integer => latest::ParamKind::Integer(unbounded),
            t::ParamKind::Flag => latest::ParamKind::Flag,
        },
        default: p.default.map(|v| match v {
            t::ParamValue::Text(s) => latest::ParamValue::Text(s),
            t::ParamValue::Number(x) => latest::ParamValue::Number(x),
            t::ParamValue::Integer(x) => latest::ParamValue::Integer(x),
            t::ParamValue::Flag(b) => latest::ParamValue::Flag(b),
        }),
    }
}

/// Parameters for a 0.1.0 call. A 0.1.0 plugin declares only text, number,
/// integer and flag parameters, so the host resolves only those for it.
pub fn params(params: &[latest::Param]) -> Vec<t::Param> {
    params
        .iter()
        .map(|p| t::Param {
            name: p.name.clone(),
            value: match &p.value {
                latest::ParamValue::Text(s) | latest::ParamValue::Choice(s) => {
                    t::ParamValue::Text(s.clone())
                }
                latest::ParamValue::Number(x) => t::ParamValue::Number(*x),
                latest::ParamValue::Integer(x) => t::ParamValue::Integer(*x),
                latest::ParamValue::Flag(b) => t::ParamValue::Flag(*b),
                latest::ParamValue::Table(entries) => t::ParamValue::Text(
                    entries
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            },
        })
        .collect()
}

/// The window's input as 0.1.0 has it: each VM on the host of its first placement.
pub fn input(input: &latest::AttributionInput) -> m::AttributionInput {
    let mut host = vec![None; input.vms.len()];
    for p in input.placements.iter().rev() {
        if let Some(slot) = host.get_mut(p.vm as usize) {
            *slot = p.host;
        }
    }
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
            .zip(host)
            .map(|(vm, host)| m::Vm {
                uuid: vm.uuid.clone(),
                host,
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

/// A 0.1.0 answer by uuid and host name, as the latest answer by placement
/// and host index: a VM's joules go to its first placement. A uuid or host
/// the window does not have is an error, as the latest host would report it.
pub fn attribution(
    input: &latest::AttributionInput,
    answer: m::Attribution,
) -> Result<latest::Attribution, String> {
    let mut first: HashMap<&str, u32> = HashMap::with_capacity(input.vms.len());
    for (i, p) in input.placements.iter().enumerate() {
        if let Some(vm) = input.vms.get(p.vm as usize) {
            first
                .entry(vm.uuid.as_str())
                .or_insert_with(|| u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
    let hosts: HashMap<&str, u32> = input
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let placements = answer
        .vms
        .into_iter()
        .map(|e| match first.get(e.uuid.as_str()) {
            Some(&placement) => Ok(latest::PlacementEnergy {
                placement,
                joules: e.joules,
                gpu_joules: 0.0,
            }),
            None => Err(format!(
                "VM `{}` is not one of the {} VMs of the window",
                e.uuid,
                input.vms.len()
            )),
        })
        .collect::<Result<_, _>>()?;
    let unattributed = answer
        .unattributed
        .into_iter()
        .map(|h| match hosts.get(h.host.as_str()) {
            Some(&host) => Ok(latest::HostEnergy {
                host,
                joules: h.joules,
                gpu_joules: 0.0,
                reason: latest::UnattributedReason::Other,
            }),
            None => Err(format!("unattributed energy for unknown host `{}`", h.host)),
        })
        .collect::<Result<_, _>>()?;
    Ok(latest::Attribution {
        placements,
        unattributed,
    })
}

/// Records as a 0.1.0 format reads them (status as APEL's words: `running`
/// was `started` in 0.1.0).
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
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            joules: r.joules,
            wall_s: r.wall_s,
            covered_s: r.quality.covered_s,
            cpu_s: r.cpu_s,
            vcpus: r.vcpus,
            status: match r.status {
                latest::Status::Completed => "completed",
                latest::Status::Started | latest::Status::Running => "started",
            }
            .into(),
            model: r.model.clone(),
            model_version: r.model_version.clone(),
        })
        .collect()
}

/// A 0.1.0 log level as the latest one.
pub fn level(l: t::Level) -> latest::Level {
    match l {
        t::Level::Trace => latest::Level::Trace,
        t::Level::Debug => latest::Level::Debug,
        t::Level::Info => latest::Level::Info,
        t::Level::Warn => latest::Level::Warn,
        t::Level::Error => latest::Level::Error,
    }
}
