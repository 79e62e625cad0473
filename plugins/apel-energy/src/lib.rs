//! `apel-energy`: cASO 5.x's `EnergyRecord` (energy usage record v0.1), as
//! cASO 5.2.2 serialises it.
//!
//! # What cASO 5.2.2 actually puts on the wire
//!
//! `caso/record.py` (5.2.2), `class EnergyRecord(_BaseRecord)`:
//!
//! ```python
//! version: str = pydantic.Field("0.1", exclude=True)
//! exec_unit_id: m_uuid.UUID
//! start_exec_time: str
//! ...
//! def ssm_message(self):
//!     opts = {"by_alias": True, "exclude_none": True}
//!     return self.model_dump_json(**opts)
//! ```
//!
//! i.e. **one compact JSON object per record** (pydantic's
//! `model_dump_json`, aliases from `map_energy_fields`), not the
//! `Key: value` / `%%` text of CloudRecords. cASO 5.2.2's SSM messenger has
//! no energy message at all: `SSMMessenger.push` raises
//! `CasoError("Unexpected record format!")` for an `EnergyRecord`
//! (`caso/messenger/ssm.py`), so there is no cASO header line or separator
//! for energy records. Hence two wire forms (parameter `wire`):
//!
//! * `json` (default, exactly cASO's bytes): every record is its
//!   `ssm_message()`, one per line, each line ending in `\n` (how the cASO
//!   peer harness writes them: `f.writelines(m + "\n" for m in messages)`).
//!   Keys in pydantic's field order (base fields first), all 16 always
//!   present (none is optional), no spaces, non-ASCII as raw UTF-8; floats
//!   formatted like pydantic-core 2.x (shortest round-trip digits, decimal
//!   for 1e-5 <= |x| < 1e16, else `1e-6` / `1.5e+16`; integral floats keep
//!   `.0`); ints as ints. Golden (two records, one payload):
//!
//! ```text
//! {"SiteName":"TEST-Site","CloudType":"OpenStack","CloudComputeService":"nova","ExecUnitID":"e3c5aeef-37b8-4332-ad9f-9d068f156dc2","StartExecTime":"2025-06-01T00:00:00Z","EndExecTime":"2025-06-01T01:00:00Z","EnergyWh":100.0,"Work":72.0,"Efficiency":1.0,"WallClockTime_s":3600,"CpuDuration_s":7200,"SuspendDuration_s":0,"CPUNormalizationFactor":1.0,"ExecUnitFinished":0,"Status":"started","Owner":"vo.example.org"}
//! {"SiteName":"TEST-Site","CloudType":"OpenStack","CloudComputeService":"nova","ExecUnitID":"0b0c6a4c-4f5e-4d8e-9d38-1c2f3a4b5c6d","StartExecTime":"2025-06-01T00:00:00Z","EndExecTime":"2025-06-01T01:00:00Z","EnergyWh":0.00001,"Work":180000000.0,"Efficiency":0.5,"WallClockTime_s":1800,"CpuDuration_s":1800,"SuspendDuration_s":0,"CPUNormalizationFactor":1.0,"ExecUnitFinished":1,"Status":"completed","Owner":"proj-b"}
//! ```
//!
//! * `apel`: the APEL/SSM text style cASO uses for CloudRecords, applied to
//!   the energy record (NOT something cASO 5.2.2 emits; for receivers that
//!   want APEL text): header `APEL-energy-message: v0.1` (the record's
//!   `version`), then the records joined by `\n%%\n`, then `\n` — as
//!   `_push_message_cloud` builds a message. Each record is
//!   `CloudRecord.ssm_message()`'s shape: `Key: value` lines sorted by key,
//!   values as Python's `str()` of the JSON-decoded value (floats like
//!   `repr`: `1e-05`, `1e+16`, `100.0`). A CR or LF inside a text value is
//!   replaced by a space (it would break the line format). Golden for the two
//!   records above:
//!
//! ```text
//! APEL-energy-message: v0.1
//! CPUNormalizationFactor: 1.0
//! CloudComputeService: nova
//! CloudType: OpenStack
//! CpuDuration_s: 7200
//! Efficiency: 1.0
//! EndExecTime: 2025-06-01T01:00:00Z
//! EnergyWh: 100.0
//! ExecUnitFinished: 0
//! ExecUnitID: e3c5aeef-37b8-4332-ad9f-9d068f156dc2
//! Owner: vo.example.org
//! SiteName: TEST-Site
//! StartExecTime: 2025-06-01T00:00:00Z
//! Status: started
//! SuspendDuration_s: 0
//! WallClockTime_s: 3600
//! Work: 72.0
//! %%
//! CPUNormalizationFactor: 1.0
//! ...
//! Work: 180000000.0
//! ```
//!
//! Both forms put at most `batch_size` records in one payload (default 1000,
//! 1..=1000; cASO's `[ssm] max_size` default is 100); no records, no payload.
//!
//! # Field mapping (cASO 5.2.2 `caso/extract/prometheus.py`,
//! `_build_energy_record`)
//!
//! * `SiteName`, `CloudType`, `CloudComputeService`: the record's site,
//!   cloud type and compute service.
//! * `ExecUnitID`: the VM uuid, lower-cased (cASO: `uuid.UUID(vm_uuid)`).
//! * `StartExecTime` / `EndExecTime`: window start / end,
//!   `strftime("%Y-%m-%dT%H:%M:%SZ")` (whole seconds, truncated).
//! * `EnergyWh`: joules / 3600. cASO multiplies the energy by
//!   `cpu_normalization_factor` (`energy_wh = energy_value *
//!   cpu_normalization_factor`); this format does **not** (the energy stays
//!   the attributed energy); the factor is only reported.
//! * `WallClockTime_s`: `int(wall_s)` (cASO: `int((end - start).total_seconds())`,
//!   truncation).
//! * `CpuDuration_s`: `int(cpu_s)` when the host measured CPU time, else
//!   cASO's `wall_clock_time_s * cpu_count` (vcpus, 1 when unknown, as cASO).
//! * `Work`: `CpuDuration_s / EnergyWh` if `EnergyWh > 0` else `0.0`;
//!   `Efficiency`: `CpuDuration_s / (WallClockTime_s * vcpus)` if that
//!   denominator is > 0 else `0.0` — cASO's formulas and guards (with
//!   measured CPU time Efficiency is no longer always 1.0).
//! * `SuspendDuration_s`: 0 (cASO: "not available", 0).
//! * `CPUNormalizationFactor`: parameter `cpu_normalization_factor`.
//! * `ExecUnitFinished`: 1 if the status is `completed`, else 0 (cASO: 1 if
//!   nova's status is `deleted`).
//! * `Status`: the record's status as APEL knows it: `started` (a VM
//!   `running` at the window's end is written `started`, as cASO does for an
//!   active server) or `completed`; cASO puts nova's lower-cased server
//!   status (`active`, `shutoff`, …).
//! * `Owner`: cASO uses the project's VO (`owner=self.vo`); here the
//!   record's `fqan`, else the project name, else the project id, else `""`.
//! * `CI_g`, `CFP_g`, `PUE` (after `Owner`, each only where the policy's
//!   `[carbon]` gives it): the keys EGI GreenDIGIT's CIM service adds to
//!   cASO's records (grid intensity gCO2e/kWh, footprint gCO2e, PUE), put on
//!   the record by wattson itself. cASO's own `EnergyRecord` has none of
//!   them (`extra="forbid"`), so a record without carbon is cASO's bytes.
//! * `embodied_g` (last, only where the policy's `[embodied]` gives it): the
//!   VM's embodied emissions amortized to the window, gCO2e, an extra key
//!   for CIM beside `CFP_g` (CIM defines none of its own).

use wattson_plugin::{
    EnergyRecord, Format, FormatInfo, ParamSpec, Params, Status, Unit, rfc3339_millis,
};

/// Largest `batch_size` accepted.
const MAX_BATCH: i64 = 1000;

/// One field value, typed as pydantic sees it.
enum Value<'a> {
    Text(&'a str),
    Int(i64),
    Float(f64),
}

/// The wire fields of one record, in pydantic's field order.
fn fields(r: &EnergyRecord, factor: f64) -> Result<Vec<(&'static str, Value<'_>)>, String> {
    for (name, v) in [("joules", r.joules), ("wall_s", r.wall_s)]
        .into_iter()
        .chain(r.cpu_s.map(|c| ("cpu_s", c)))
    {
        if !v.is_finite() {
            return Err(format!("record {}: {name} is not finite ({v})", r.id));
        }
    }
    let energy_wh = Unit::WattHours.from_base(r.joules);
    let wall = r.wall_s.trunc() as i64;
    let count = i64::from(r.vcpus.unwrap_or(1));
    let cpu = match r.cpu_s {
        Some(c) => c.trunc() as i64,
        None => wall.saturating_mul(count),
    };
    let work = if energy_wh > 0.0 {
        cpu as f64 / energy_wh
    } else {
        0.0
    };
    let denominator = wall.saturating_mul(count);
    let efficiency = if denominator > 0 {
        cpu as f64 / denominator as f64
    } else {
        0.0
    };
    let owner = r
        .fqan
        .as_deref()
        .or(r.project_name.as_deref())
        .or(r.project_id.as_deref())
        .unwrap_or("");
    Ok([
        ("SiteName", Value::Text(&r.site)),
        ("CloudType", Value::Text(&r.cloud_type)),
        ("CloudComputeService", Value::Text(&r.compute_service)),
        ("ExecUnitID", Value::Text(&r.vm_uuid)),
        ("StartExecTime", Value::Text("")),
        ("EndExecTime", Value::Text("")),
        ("EnergyWh", Value::Float(energy_wh)),
        ("Work", Value::Float(work)),
        ("Efficiency", Value::Float(efficiency)),
        ("WallClockTime_s", Value::Int(wall)),
        ("CpuDuration_s", Value::Int(cpu)),
        ("SuspendDuration_s", Value::Int(0)),
        ("CPUNormalizationFactor", Value::Float(factor)),
        (
            "ExecUnitFinished",
            Value::Int(i64::from(r.status == Status::Completed)),
        ),
        ("Status", Value::Text(r.status.apel())),
        ("Owner", Value::Text(owner)),
    ]
    .into_iter()
    .chain(
        [
            ("CI_g", r.ci_g),
            ("CFP_g", r.cfp_g),
            ("PUE", r.pue),
            ("embodied_g", r.embodied_g),
        ]
        .into_iter()
        .filter_map(|(key, v)| Some((key, Value::Float(v.filter(|v| v.is_finite())?)))),
    )
    .collect())
}

/// `strftime("%Y-%m-%dT%H:%M:%SZ")` of a millisecond timestamp.
fn exec_time(ms: i64) -> String {
    rfc3339_millis(ms.div_euclid(1000) * 1000).replace(".000Z", "Z")
}

/// Formats a finite float from its shortest round-trip digits: decimal when
/// `10^low_exp <= |v| < 1e16`, else `d.ddde±X` (exponent zero-padded to two
/// digits when `pad_exp`). pydantic-core: `low_exp = -5`, no padding;
/// Python `repr`: `low_exp = -4`, padding.
fn float_text(v: f64, low_exp: i32, pad_exp: bool) -> String {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (low_exp..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let mut int_part = digits.clone();
            while int_part.len() < int_len {
                int_part.push('0');
            }
            let frac = if digits.len() > int_len {
                &digits[int_len..]
            } else {
                "0"
            };
            format!("{sign}{}.{frac}", &int_part[..int_len])
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let mut out = format!("{sign}{}", &digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        if pad_exp {
            out.push_str(&format!("e{esign}{:02}", exp.abs()));
        } else {
            out.push_str(&format!("e{esign}{}", exp.abs()));
        }
        out
    }
}

/// One record as `EnergyRecord.ssm_message()`: compact pydantic JSON.
fn json_record(r: &EnergyRecord, factor: f64) -> Result<String, String> {
    let uuid = r.vm_uuid.to_ascii_lowercase();
    let start = exec_time(r.start_ms);
    let end = exec_time(r.end_ms);
    let mut out = String::with_capacity(512);
    out.push('{');
    for (i, (key, value)) in fields(r, factor)?.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        let value = match key {
            "ExecUnitID" => Value::Text(&uuid),
            "StartExecTime" => Value::Text(&start),
            "EndExecTime" => Value::Text(&end),
            _ => value,
        };
        match value {
            Value::Text(s) => out
                .push_str(&serde_json::to_string(s).map_err(|e| format!("record {}: {e}", r.id))?),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Float(f) => out.push_str(&float_text(f, -5, false)),
        }
    }
    out.push('}');
    Ok(out)
}

/// One record as `Key: value` lines sorted by key (CloudRecord style).
fn apel_record(r: &EnergyRecord, factor: f64) -> Result<String, String> {
    let uuid = r.vm_uuid.to_ascii_lowercase();
    let start = exec_time(r.start_ms);
    let end = exec_time(r.end_ms);
    let mut lines: Vec<String> = fields(r, factor)?
        .into_iter()
        .map(|(key, value)| {
            let text = match (key, value) {
                ("ExecUnitID", _) => uuid.clone(),
                ("StartExecTime", _) => start.clone(),
                ("EndExecTime", _) => end.clone(),
                (_, Value::Text(s)) => s.replace(['\r', '\n'], " "),
                (_, Value::Int(n)) => n.to_string(),
                (_, Value::Float(f)) => float_text(f, -4, true),
            };
            format!("{key}: {text}")
        })
        .collect();
    lines.sort();
    Ok(lines.join("\n"))
}

struct ApelEnergy;

impl Format for ApelEnergy {
    fn describe() -> FormatInfo {
        FormatInfo::new(
            "apel-energy",
            env!("CARGO_PKG_VERSION"),
            "cASO 5.x EnergyRecord v0.1 (SiteName, CloudType, CloudComputeService, ExecUnitID, \
             StartExecTime, EndExecTime, EnergyWh, Work, Efficiency, WallClockTime_s, \
             CpuDuration_s, SuspendDuration_s, CPUNormalizationFactor, ExecUnitFinished, Status, \
             Owner): cASO's JSON ssm_message() per line, or APEL `Key: value` text with `%%` \
             separators",
            "text/plain",
            "txt",
        )
        .param(ParamSpec::choice(
            "wire",
            "`json`: one cASO 5.2.2 ssm_message() JSON object per line (exactly cASO's bytes); \
             `apel`: header `APEL-energy-message: v0.1`, sorted `Key: value` lines, records \
             separated by `%%`",
            &["json", "apel"],
            Some("json"),
        ))
        .param(
            ParamSpec::integer(
                "batch_size",
                "Most records per payload (message)",
                Some(MAX_BATCH),
            )
            .min(1.0)
            .max(MAX_BATCH as f64),
        )
        .param(ParamSpec::number(
            "cpu_normalization_factor",
            "Value of CPUNormalizationFactor (reported only; energy is not scaled)",
            Some(1.0),
        ))
    }

    fn render(records: Vec<EnergyRecord>, params: Params) -> Result<Vec<Vec<u8>>, String> {
        let apel = params.choice("wire")? == "apel";
        let batch = usize::try_from(params.integer("batch_size")?).unwrap_or(1);
        let factor = params.number("cpu_normalization_factor")?;
        let mut payloads = Vec::new();
        for chunk in records.chunks(batch) {
            let payload = if apel {
                let entries = chunk
                    .iter()
                    .map(|r| apel_record(r, factor))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("APEL-energy-message: v0.1\n{}\n", entries.join("\n%%\n"))
            } else {
                let mut out = String::with_capacity(chunk.len() * 512);
                for r in chunk {
                    out.push_str(&json_record(r, factor)?);
                    out.push('\n');
                }
                out
            };
            payloads.push(payload.into_bytes());
        }
        Ok(payloads)
    }
}

wattson_plugin::register_format!(ApelEnergy);
