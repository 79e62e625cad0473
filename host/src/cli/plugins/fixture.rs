//! `wattson plugins test`: a plugin run on a JSON fixture under the real
//! sandbox and limits, with the host's checks; the result, the conservation
//! check and any validation error printed for people or (`--json`) machines.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::super::{EXIT_CONFIG, EXIT_PLUGIN, Failure};
use crate::runtime::{
    Attribution, AttributionInput, EnergyRecord, Format, Model, Param, ParamSpec, resolve_params,
    value_text,
};

/// `--set name=value`: the value as TOML (`1.5`, `true`, `"text"`), else as text.
fn parse_set(set: &str) -> Result<(String, toml::Value), Failure> {
    let (name, value) = set.split_once('=').ok_or_else(|| {
        Failure::new(
            EXIT_CONFIG,
            anyhow::anyhow!("--set {set:?}: expected NAME=VALUE, e.g. --set factor=1.5"),
        )
    })?;
    let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    Ok((name.trim().to_owned(), value))
}

/// The plugin's parameters: defaults, then `--set`.
fn params(specs: &[ParamSpec], sets: &[String]) -> Result<Vec<Param>, Failure> {
    let given: BTreeMap<String, toml::Value> = sets
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<_, _>>()?;
    resolve_params(specs, &given).map_err(|problems| {
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("--set {}: {}", p.param, p.reason))
            .collect();
        Failure::new(EXIT_CONFIG, anyhow::anyhow!("{}", text.join("\n")))
    })
}

/// Reads `path` as JSON of type `T`, errors naming the file, line and column.
fn read<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            EXIT_CONFIG,
            anyhow::anyhow!("cannot read {}: {e}", path.display()),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        Failure::new(
            EXIT_CONFIG,
            anyhow::anyhow!(
                "{}:{}:{}: not {what}: {} (`wattson plugins new` writes an example)",
                path.display(),
                e.line(),
                e.column(),
                message.strip_suffix(&position).unwrap_or(&message)
            ),
        )
    })
}

/// Reads an attribution-input fixture, also one written for 0.2.0 (by an
/// earlier `wattson plugins new`): without `gpus` (none) and without
/// per-placement readings, which are then each VM's reading on its first
/// placement, as the host gives a series whose host it cannot place.
/// Errors are the fixture's as read (with their line and column).
fn read_input(path: &Path) -> Result<AttributionInput, Failure> {
    let error = match read(path, "an attribution input") {
        Ok(input) => return Ok(input),
        Err(e) => e,
    };
    let upgraded = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|mut value| {
            upgrade_v0_2_input(&mut value)?;
            serde_json::from_value(value).ok()
        });
    upgraded.ok_or(error)
}

/// Adds what 0.3.0 added to a 0.2.0 attribution input (JSON), or None when
/// `value` is not shaped like one.
fn upgrade_v0_2_input(value: &mut serde_json::Value) -> Option<()> {
    let input = value.as_object_mut()?;
    input
        .entry("gpus")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    // Each placement's VM, and whether it is the VM's first placement.
    let mut seen = std::collections::HashSet::new();
    let placements: Vec<(usize, bool)> = input
        .get("placements")?
        .as_array()?
        .iter()
        .map(|p| {
            let vm = usize::try_from(p.get("vm")?.as_u64()?).ok()?;
            Some((vm, seen.insert(vm)))
        })
        .collect::<Option<_>>()?;
    for measured in input.get_mut("measurements")?.as_array_mut()? {
        let measured = measured.as_object_mut()?;
        if measured.contains_key("placements") {
            continue;
        }
        // Whether it is keyed by VM or host is not in the fixture: aligned
        // either way (all none for a host-keyed one, which no model reads).
        let vms = measured.get("vms")?.as_array()?;
        let per_placement = placements
            .iter()
            .map(|&(vm, first)| match (first, vms.get(vm)) {
                (true, Some(reading)) => reading.clone(),
                _ => serde_json::Value::Null,
            })
            .collect();
        measured.insert(
            "placements".to_owned(),
            serde_json::Value::Array(per_placement),
        );
    }
    Some(())
}

fn params_line(params: &[Param]) -> String {
    let text: Vec<String> = params
        .iter()
        .map(|p| format!("{}={}", p.name, value_text(&p.value)))
        .collect();
    if text.is_empty() {
        "none".to_owned()
    } else {
        text.join(", ")
    }
}

/// A host's conservation: (host, measured, placements + unattributed).
type HostBalance = (String, f64, f64);

/// The model's conservation measurement and each host's balance, where the
/// model declares conservation.
fn conservation(
    model: &Model,
    input: &AttributionInput,
    result: &Attribution,
) -> Option<(String, Vec<HostBalance>)> {
    let declared = model.info().conservation.as_ref()?;
    let measured = input
        .measurements
        .iter()
        .find(|m| m.name == declared.measurement)?;
    let mut hosts = Vec::new();
    for (h, name) in input.hosts.iter().enumerate() {
        let Some(reading) = measured.hosts.get(h).copied().flatten() else {
            continue;
        };
        let placed: f64 = result
            .placements
            .iter()
            .filter(|p| {
                input
                    .placements
                    .get(p.placement as usize)
                    .is_some_and(|pl| pl.host == Some(h as u32))
            })
            .map(|p| p.joules)
            .sum();
        let left: f64 = result
            .unattributed
            .iter()
            .filter(|u| u.host as usize == h)
            .map(|u| u.joules)
            .sum();
        hosts.push((name.clone(), reading.value, placed + left));
    }
    Some((declared.measurement.clone(), hosts))
}

/// Runs a model on an attribution-input fixture.
pub fn model(model: &Model, input: &Path, sets: &[String], as_json: bool) -> Result<(), Failure> {
    let params = params(&model.info().params, sets)?;
    let fixture = read_input(input)?;
    let info = model.info();
    let result = model.attribute(&fixture, &params);
    if as_json {
        let value = match &result {
            Ok(attribution) => json!({
                "plugin": info.name, "kind": "model", "ok": true,
                "params": params_line(&params),
                "attribution": attribution,
                "conservation": conservation(model, &fixture, attribution).map(|(m, hosts)| json!({
                    "measurement": m,
                    "hosts": hosts.iter().map(|(h, measured, accounted)| json!({
                        "host": h, "measured_joules": measured, "accounted_joules": accounted,
                    })).collect::<Vec<_>>(),
                })),
            }),
            Err(e) => {
                json!({"plugin": info.name, "kind": "model", "ok": false, "error": e.to_string()})
            }
        };
        outln!("{value}");
        return result.map(drop).map_err(|e| Failure::new(EXIT_PLUGIN, e));
    }
    outln!(
        "model {} {} (wit {}) on {}: window {}, {} VM(s), {} host(s)",
        info.name,
        info.version,
        model.wit_version(),
        input.display(),
        crate::window::Window {
            start_ms: fixture.window.start_ms,
            end_ms: fixture.window.end_ms
        },
        fixture.vms.len(),
        fixture.hosts.len()
    );
    outln!("params: {}", params_line(&params));
    let attribution = result.map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
    outln!("{:<38} {:<16} {:>16}", "VM", "HOST", "JOULES");
    for p in &attribution.placements {
        let placement = fixture.placements.get(p.placement as usize);
        let vm = placement
            .and_then(|pl| fixture.vms.get(pl.vm as usize))
            .map_or("?", |v| v.uuid.as_str());
        let host = placement
            .and_then(|pl| pl.host)
            .and_then(|h| fixture.hosts.get(h as usize))
            .map_or("-", String::as_str);
        outln!("{vm:<38} {host:<16} {:>16.3}", p.joules);
    }
    for u in &attribution.unattributed {
        let host = fixture
            .hosts
            .get(u.host as usize)
            .map_or("?", String::as_str);
        outln!(
            "{:<38} {host:<16} {:>16.3}  ({:?})",
            "(unattributed)",
            u.joules,
            u.reason
        );
    }
    match conservation(model, &fixture, &attribution) {
        Some((measurement, hosts)) => {
            for (host, measured, accounted) in hosts {
                outln!(
                    "conservation ({measurement}): {host}: measured {measured:.3} J, placements + unattributed {accounted:.3} J: ok"
                );
            }
        }
        None => outln!("conservation: not declared by the model"),
    }
    outln!(
        "ok: the result passed the host's checks (finite, non-negative, each assigned placement once, known hosts, conservation where declared)"
    );
    Ok(())
}

/// Runs a format on a fixture of records.
pub fn format(
    format: &Format,
    input: &Path,
    sets: &[String],
    as_json: bool,
) -> Result<(), Failure> {
    let params = params(&format.info().params, sets)?;
    let records: Vec<EnergyRecord> = read(input, "a list of energy records")?;
    let info = format.info();
    let result = format.render(&records, &params);
    if as_json {
        let value = match &result {
            Ok(payloads) => json!({
                "plugin": info.name, "kind": "format", "ok": true,
                "params": params_line(&params),
                "media_type": info.media_type,
                "payloads": payloads.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
            }),
            Err(e) => {
                json!({"plugin": info.name, "kind": "format", "ok": false, "error": e.to_string()})
            }
        };
        outln!("{value}");
        return result.map(drop).map_err(|e| Failure::new(EXIT_PLUGIN, e));
    }
    let payloads = result.map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
    outln!(
        "format {} {} (wit {}) on {}: {} record(s) -> {} payload(s), {}",
        info.name,
        info.version,
        format.wit_version(),
        input.display(),
        records.len(),
        payloads.len(),
        info.media_type
    );
    outln!("params: {}", params_line(&params));
    for (i, payload) in payloads.iter().enumerate() {
        outln!("--- payload {} ({} bytes)", i + 1, payload.len());
        outln!("{}", String::from_utf8_lossy(payload).trim_end());
    }
    outln!("ok: rendered within the sandbox's limits");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v0_2_fixture_reads_as_a_v0_3_input() {
        let reading = |value: f64| json!({"value": value, "span_s": 60.0, "covered_s": 60.0});
        let placement = |vm: u32, host: u32| json!({"vm": vm, "host": host, "presence_s": 60.0, "cpu_s": null, "assigned": true});
        let mut value = json!({
            "window": {"start_ms": 0, "end_ms": 60_000},
            "vms": [{"uuid": "a", "vcpus": 1, "memory_mb": null},
                    {"uuid": "b", "vcpus": 1, "memory_mb": null}],
            "details": [],
            "hosts": ["h1", "h2"],
            // a migrated from h1 to h2.
            "placements": [placement(0, 0), placement(0, 1), placement(1, 1)],
            "measurements": [
                {"name": "energy", "vms": [reading(5.0), reading(7.0)], "hosts": [null, null]},
                {"name": "power", "vms": [null, null], "hosts": [reading(1.0), null]},
            ],
        });
        assert!(serde_json::from_value::<AttributionInput>(value.clone()).is_err());
        upgrade_v0_2_input(&mut value).unwrap();
        let input: AttributionInput = serde_json::from_value(value).unwrap();
        assert!(input.gpus.is_empty());
        let values = |i: usize| -> Vec<Option<f64>> {
            input.measurements[i]
                .placements
                .iter()
                .map(|r| r.map(|r| r.value))
                .collect()
        };
        assert_eq!(values(0), [Some(5.0), None, Some(7.0)]);
        assert_eq!(values(1), [None, None, None]);
    }
}
