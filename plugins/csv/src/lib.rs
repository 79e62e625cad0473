//! `csv`: RFC 4180 comma-separated values, one row per energy record.
//!
//! Every payload starts with the header row; rows end in CRLF (RFC 4180
//! §2.1), the last one included. A field is quoted (`"…"`, inner `"`
//! doubled) when it contains a comma, a double quote, CR or LF, and only
//! then. Columns are the record's fields in snake_case, like `jsonl`:
//!
//! `id, site, cloud_type, compute_service, vm_uuid, vm_name, project_id,
//! project_name, user_id, user_name, user_dn, fqan, host, start, end,
//! energy_joules, energy_kwh, wall_s, cpu_s, vcpus, status, model,
//! model_version, covered_s, pue, ci_g, cfp_g, embodied_g, embodied_source, gpu_j`
//!
//! `pue`, `ci_g` (gCO2e/kWh) and `cfp_g` (gCO2e) are set where the policy
//! has `[carbon]`; without an intensity `ci_g` and `cfp_g` are empty (never 0).
//! `embodied_g` (gCO2e) and `embodied_source` (`static`) are set where the
//! policy's `[embodied]` gives the VM's hosts a figure and a capacity, else
//! empty (never 0). `gpu_j` is the GPU part of `energy_joules`, set where the
//! model attributed the window's GPUs (else empty).
//!
//! `start` / `end` are RFC 3339 UTC with milliseconds, `energy_kwh` is
//! joules / 3.6e6; numbers are Rust's shortest round-trip form (`{:?}`:
//! `1800.0`, `1e-5`); an absent optional field is an empty field.
//!
//! Parameter `batch_size` (integer, default 0): most rows per payload, 0 =
//! all records in one payload; negative is an error. No records, no payload.
//!
//! Golden (two records, one payload; `\r\n` shown as line breaks):
//!
//! ```text
//! id,site,cloud_type,compute_service,vm_uuid,vm_name,project_id,project_name,user_id,user_name,user_dn,fqan,host,start,end,energy_joules,energy_kwh,wall_s,cpu_s,vcpus,status,model,model_version,covered_s,pue,ci_g,cfp_g,embodied_g,embodied_source,gpu_j
//! 9f0e…-0001,TEST-Site,OpenStack,nova,e3c5aeef-37b8-4332-ad9f-9d068f156dc2,vm-a,p1,"Acme, ""R&D""",u1,alice,,vo.example.org,compute-1,2025-06-01T00:00:00.000Z,2025-06-01T01:00:00.000Z,360000.0,0.1,3600.0,,2,running,libvirt-joules,0.1.0,,,,,,,
//! 9f0e…-0002,TEST-Site,OpenStack,nova,0b0c6a4c-4f5e-4d8e-9d38-1c2f3a4b5c6d,,,,,,,,,2025-06-01T00:00:00.000Z,2025-06-01T01:00:00.000Z,36.0,1e-5,1800.0,1800.0,,completed,libvirt-joules,0.1.0,,,,,,,
//! ```

use wattson_plugin::{EnergyRecord, Format, FormatInfo, ParamSpec, Params, Unit, rfc3339_millis};

/// The header row's columns.
const COLUMNS: [&str; 30] = [
    "id",
    "site",
    "cloud_type",
    "compute_service",
    "vm_uuid",
    "vm_name",
    "project_id",
    "project_name",
    "user_id",
    "user_name",
    "user_dn",
    "fqan",
    "host",
    "start",
    "end",
    "energy_joules",
    "energy_kwh",
    "wall_s",
    "cpu_s",
    "vcpus",
    "status",
    "model",
    "model_version",
    "covered_s",
    "pue",
    "ci_g",
    "cfp_g",
    "embodied_g",
    "embodied_source",
    "gpu_j",
];

/// Appends one field, quoted per RFC 4180 when it needs to be.
fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// Appends one row (fields separated by commas) and its CRLF.
fn push_row<S: AsRef<str>>(out: &mut String, fields: impl IntoIterator<Item = S>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, field.as_ref());
    }
    out.push_str("\r\n");
}

/// A number in its shortest round-trip form, or an empty field.
fn number(n: Option<f64>) -> String {
    n.map(|n| format!("{n:?}")).unwrap_or_default()
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// The record's fields, in [`COLUMNS`] order.
fn row(r: &EnergyRecord) -> [String; 30] {
    [
        r.id.clone(),
        r.site.clone(),
        r.cloud_type.clone(),
        r.compute_service.clone(),
        r.vm_uuid.clone(),
        opt(&r.vm_name),
        opt(&r.project_id),
        opt(&r.project_name),
        opt(&r.user_id),
        opt(&r.user_name),
        opt(&r.user_dn),
        opt(&r.fqan),
        opt(&r.host),
        rfc3339_millis(r.start_ms),
        rfc3339_millis(r.end_ms),
        format!("{:?}", r.joules),
        format!("{:?}", Unit::KilowattHours.from_base(r.joules)),
        format!("{:?}", r.wall_s),
        r.cpu_s.map(|c| format!("{c:?}")).unwrap_or_default(),
        r.vcpus.map(|v| v.to_string()).unwrap_or_default(),
        r.status.as_str().to_owned(),
        r.model.clone(),
        r.model_version.clone(),
        r.quality
            .covered_s
            .map(|c| format!("{c:?}"))
            .unwrap_or_default(),
        number(r.pue),
        number(r.ci_g),
        number(r.cfp_g),
        number(r.embodied_g),
        opt(&r.embodied_source),
        number(r.gpu_j),
    ]
}

struct Csv;

impl Format for Csv {
    fn describe() -> FormatInfo {
        FormatInfo::new(
            "csv",
            env!("CARGO_PKG_VERSION"),
            "RFC 4180 CSV (CRLF, header row per payload): every record field in snake_case, \
             start/end as RFC 3339 UTC with milliseconds, energy_joules and energy_kwh",
            "text/csv; charset=utf-8; header=present",
            "csv",
        )
        .param(
            ParamSpec::integer(
                "batch_size",
                "Most rows per payload (each with its header row); 0 = all in one payload",
                Some(0),
            )
            .min(0.0),
        )
    }

    fn render(records: Vec<EnergyRecord>, params: Params) -> Result<Vec<Vec<u8>>, String> {
        let batch = params.integer("batch_size")?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let batch = if batch == 0 {
            records.len()
        } else {
            usize::try_from(batch).unwrap_or(usize::MAX)
        };
        Ok(records
            .chunks(batch)
            .map(|chunk| {
                let mut out = String::with_capacity((chunk.len() + 1) * 400);
                push_row(&mut out, COLUMNS);
                for r in chunk {
                    push_row(&mut out, row(r));
                }
                out.into_bytes()
            })
            .collect())
    }
}

wattson_plugin::register_format!(Csv);
