//! `jsonl`: one JSON object per energy record per line (NDJSON), every
//! field of the host's record in snake_case, times as RFC 3339 UTC strings
//! with millisecond precision, energy as `energy_joules` (a JSON number with
//! full f64 precision). All lines go in one payload, each ending in `\n`; no
//! records, no payload. Where the policy has `[carbon]`, `pue`, `ci_g`
//! (gCO2e/kWh) and `cfp_g` (gCO2e) follow `energy_joules`; a record without
//! an intensity has no `ci_g` and no `cfp_g` (never 0). A measured intensity
//! adds `ci_covered_s`, the seconds of the window its gauge covered. Where
//! the policy's `[embodied]` gives the VM's hosts a figure and a capacity,
//! `embodied_g` (gCO2e) and `embodied_source` (`static`) follow; otherwise
//! neither (never 0). Where the model attributed the window's GPUs, `gpu_j`
//! (the GPU part of `energy_joules`) follows `energy_joules`.

use serde::Serialize;
use wattson_plugin::{EnergyRecord, Format, FormatInfo, Params, rfc3339_millis};

/// One output line. Field order is the line's key order.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    site: &'a str,
    cloud_type: &'a str,
    compute_service: &'a str,
    vm_uuid: &'a str,
    vm_name: Option<&'a str>,
    project_id: Option<&'a str>,
    project_name: Option<&'a str>,
    user_id: Option<&'a str>,
    user_name: Option<&'a str>,
    user_dn: Option<&'a str>,
    fqan: Option<&'a str>,
    host: Option<&'a str>,
    flavor: Option<&'a str>,
    start: String,
    end: String,
    energy_joules: f64,
    /// The GPU part of `energy_joules`, where the model attributed GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_j: Option<f64>,
    wall_s: f64,
    covered_s: Option<f64>,
    cpu_s: Option<f64>,
    vcpus: Option<u32>,
    memory_mb: Option<u64>,
    status: &'a str,
    /// `measured` or `estimated`.
    quality: &'a str,
    /// The meters the energy came from (`rapl:package`, `host-power`, …).
    meters: &'a [String],
    model: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pue: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci_g: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cfp_g: Option<f64>,
    /// Seconds of the window the intensity gauge covered (a measured intensity only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ci_covered_s: Option<f64>,
    /// Embodied emissions amortized to the window, gCO2e.
    #[serde(skip_serializing_if = "Option::is_none")]
    embodied_g: Option<f64>,
    /// Where `embodied_g` came from (`static`).
    #[serde(skip_serializing_if = "Option::is_none")]
    embodied_source: Option<&'a str>,
}

impl<'a> From<&'a EnergyRecord> for Line<'a> {
    fn from(r: &'a EnergyRecord) -> Self {
        Line {
            id: &r.id,
            site: &r.site,
            cloud_type: &r.cloud_type,
            compute_service: &r.compute_service,
            vm_uuid: &r.vm_uuid,
            vm_name: r.vm_name.as_deref(),
            project_id: r.project_id.as_deref(),
            project_name: r.project_name.as_deref(),
            user_id: r.user_id.as_deref(),
            user_name: r.user_name.as_deref(),
            user_dn: r.user_dn.as_deref(),
            fqan: r.fqan.as_deref(),
            host: r.host.as_deref(),
            flavor: r.flavor.as_deref(),
            start: rfc3339_millis(r.start_ms),
            end: rfc3339_millis(r.end_ms),
            energy_joules: r.joules,
            gpu_j: r.gpu_j,
            wall_s: r.wall_s,
            covered_s: r.quality.covered_s,
            cpu_s: r.cpu_s,
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            status: r.status.as_str(),
            quality: r.quality.kind.as_str(),
            meters: &r.quality.meters,
            model: &r.model,
            model_version: &r.model_version,
            pue: r.pue,
            ci_g: r.ci_g,
            cfp_g: r.cfp_g,
            ci_covered_s: r.ci_covered_s,
            embodied_g: r.embodied_g,
            embodied_source: r.embodied_source.as_deref(),
        }
    }
}

struct Jsonl;

impl Format for Jsonl {
    fn describe() -> FormatInfo {
        FormatInfo::new(
            "jsonl",
            env!("CARGO_PKG_VERSION"),
            "One JSON object per record per line (NDJSON): every record field in snake_case, \
             start/end as RFC 3339 UTC with milliseconds, energy_joules",
            "application/x-ndjson",
            "jsonl",
        )
    }

    fn render(records: Vec<EnergyRecord>, _params: Params) -> Result<Vec<Vec<u8>>, String> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // A line is 600-900 bytes: reserving enough up front spares the
        // copies (and the memory) of growing, and what stays unwritten is
        // never touched.
        let mut out = Vec::with_capacity(records.len() * 1024);
        for record in &records {
            serde_json::to_writer(&mut out, &Line::from(record))
                .map_err(|e| format!("record {}: {e}", record.id))?;
            out.push(b'\n');
        }
        Ok(vec![out])
    }
}

wattson_plugin::register_format!(Jsonl);
