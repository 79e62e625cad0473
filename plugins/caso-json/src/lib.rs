//! `caso-json`: cASO's `EnergyRecord`, as JSON.
//!
//! The record is the one cASO introduced with its Prometheus energy
//! extractor (IFCA-Advanced-Computing/caso commits 6938099 and a1c6b8c,
//! `caso/record.py`, September 2025): fields `uuid`, `measurement_time`,
//! `site_name`, `cloud_type`, `user_id`, `group_id`, `user_dn`, `fqan`,
//! `energy_consumption` (kWh), `energy_unit` and `compute_service`.
//!
//! cASO serialises a record with pydantic's `model_dump_json(by_alias=True,
//! exclude_none=True)` (`EnergyRecord.ssm_message`), the aliases coming from
//! `map_energy_fields`; `measurement_time` is a private datetime exposed as
//! the computed field `measurement_time_epoch`, an integer of Unix seconds.
//! One record then looks like (key order = pydantic's field order):
//!
//! ```json
//! {"SiteName": "TEST-Site", "CloudType": "caso/5.2.2 (OpenStack)",
//!  "CloudComputeService": "Fake Cloud Service",
//!  "uuid": "e3c5aeef-37b8-4332-ad9f-9d068f156dc2",
//!  "LocalUser": "a4519d7d-…", "GlobalUserName": "User 1 DN",
//!  "LocalGroup": "03b6a6c4-…", "FQAN": "VO 1 FQAN",
//!  "EnergyConsumption": 125.5, "EnergyUnit": "kWh", "MeasurementTime": 1685051946}
//! ```
//!
//! This format renders all records as one payload, a JSON array of such
//! objects. Parameters:
//!
//! * `keys` = `"aliases"` (default; cASO's wire form above, `None` fields
//!   omitted) or `"fields"` (pydantic's plain `model_dump_json()`: Python
//!   field names, `None` as `null`, `measurement_time_epoch`);
//! * `uuid` = `"vm"` (default: the VM's uuid) or `"record"` (wattson's stable
//!   record id; cASO itself put a fresh `uuid4()` there).
//!
//! `measurement_time` is the window end, `group_id` the project id,
//! `energy_consumption` the record's joules / 3.6e6 in kWh. cASO requires
//! `group_id` and `fqan`: an unknown one is rendered as `""`.
//!
//! Where the policy's `[carbon]` gives them, a record ends with EGI
//! GreenDIGIT CIM's keys `CI_g` (gCO2e/kWh), `CFP_g` (gCO2e) and `PUE`
//! (`ci_g`, `cfp_g`, `pue` with `keys = "fields"`); otherwise they are
//! absent (never 0 or null).

use serde::Serialize;
use wattson_plugin::{EnergyRecord, Format, FormatInfo, ParamSpec, Params, Unit, unix_seconds};

/// cASO's wire form: `model_dump_json(by_alias=True, exclude_none=True)`.
#[derive(Serialize)]
struct Aliased<'a> {
    #[serde(rename = "SiteName")]
    site_name: &'a str,
    #[serde(rename = "CloudType")]
    cloud_type: &'a str,
    #[serde(rename = "CloudComputeService")]
    compute_service: &'a str,
    uuid: &'a str,
    #[serde(rename = "LocalUser", skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(rename = "GlobalUserName", skip_serializing_if = "Option::is_none")]
    user_dn: Option<&'a str>,
    #[serde(rename = "LocalGroup")]
    group_id: &'a str,
    #[serde(rename = "FQAN")]
    fqan: &'a str,
    #[serde(rename = "EnergyConsumption")]
    energy_consumption: f64,
    #[serde(rename = "EnergyUnit")]
    energy_unit: &'static str,
    #[serde(rename = "MeasurementTime")]
    measurement_time_epoch: i64,
    #[serde(rename = "CI_g", skip_serializing_if = "Option::is_none")]
    ci_g: Option<f64>,
    #[serde(rename = "CFP_g", skip_serializing_if = "Option::is_none")]
    cfp_g: Option<f64>,
    #[serde(rename = "PUE", skip_serializing_if = "Option::is_none")]
    pue: Option<f64>,
}

/// pydantic's plain `model_dump_json()`: field names, `None` as `null`.
#[derive(Serialize)]
struct Fields<'a> {
    site_name: &'a str,
    cloud_type: &'a str,
    compute_service: &'a str,
    uuid: &'a str,
    user_id: Option<&'a str>,
    user_dn: Option<&'a str>,
    group_id: &'a str,
    fqan: &'a str,
    energy_consumption: f64,
    energy_unit: &'static str,
    measurement_time_epoch: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci_g: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cfp_g: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pue: Option<f64>,
}

impl<'a> Fields<'a> {
    fn new(r: &'a EnergyRecord, record_uuid: bool) -> Self {
        Fields {
            site_name: &r.site,
            cloud_type: &r.cloud_type,
            compute_service: &r.compute_service,
            uuid: if record_uuid { &r.id } else { &r.vm_uuid },
            user_id: r.user_id.as_deref(),
            user_dn: r.user_dn.as_deref(),
            group_id: r.project_id.as_deref().unwrap_or(""),
            fqan: r.fqan.as_deref().unwrap_or(""),
            energy_consumption: Unit::KilowattHours.from_base(r.joules),
            energy_unit: "kWh",
            measurement_time_epoch: unix_seconds(r.end_ms),
            ci_g: r.ci_g,
            cfp_g: r.cfp_g,
            pue: r.pue,
        }
    }
}

impl<'a> From<Fields<'a>> for Aliased<'a> {
    fn from(f: Fields<'a>) -> Self {
        Aliased {
            site_name: f.site_name,
            cloud_type: f.cloud_type,
            compute_service: f.compute_service,
            uuid: f.uuid,
            user_id: f.user_id,
            user_dn: f.user_dn,
            group_id: f.group_id,
            fqan: f.fqan,
            energy_consumption: f.energy_consumption,
            energy_unit: f.energy_unit,
            measurement_time_epoch: f.measurement_time_epoch,
            ci_g: f.ci_g,
            cfp_g: f.cfp_g,
            pue: f.pue,
        }
    }
}

struct CasoJson;

impl Format for CasoJson {
    fn describe() -> FormatInfo {
        FormatInfo::new(
            "caso-json",
            env!("CARGO_PKG_VERSION"),
            "cASO EnergyRecord JSON (uuid, MeasurementTime, SiteName, LocalUser, LocalGroup, \
             GlobalUserName, FQAN, EnergyConsumption in kWh, EnergyUnit, CloudComputeService): \
             one JSON array per payload",
            "application/json",
            "json",
        )
        .param(ParamSpec::choice(
            "keys",
            "`aliases`: cASO's wire keys (SiteName, EnergyConsumption, ...), unknown fields \
             omitted; `fields`: cASO's Python field names, unknown fields null",
            &["aliases", "fields"],
            Some("aliases"),
        ))
        .param(ParamSpec::choice(
            "uuid",
            "What `uuid` holds: `vm` (the VM uuid) or `record` (the stable record id)",
            &["vm", "record"],
            Some("vm"),
        ))
    }

    fn render(records: Vec<EnergyRecord>, params: Params) -> Result<Vec<Vec<u8>>, String> {
        let aliases = params.choice("keys")? == "aliases";
        let record_uuid = params.choice("uuid")? == "record";
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let fields = records.iter().map(|r| Fields::new(r, record_uuid));
        let payload = if aliases {
            serde_json::to_vec(&fields.map(Aliased::from).collect::<Vec<_>>())
        } else {
            serde_json::to_vec(&fields.collect::<Vec<_>>())
        }
        .map_err(|e| format!("serialising records: {e}"))?;
        Ok(vec![payload])
    }
}

wattson_plugin::register_format!(CasoJson);
