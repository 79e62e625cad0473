//! Per-VM energy records and their deterministic ids.
//!
//! A record is the WIT `energy-record` that formats render; the host builds it
//! from the model's joules, the inventory and the site's identity.

use uuid::Uuid;

pub use crate::runtime::EnergyRecord;
use crate::runtime::{Vm, VmDetails};
use crate::window::Window;

/// Namespace of wattson record ids (UUIDv5).
const RECORD_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_9a52_3c4e_5b7a_8e21_0d4c_7b9f_e310);

/// The record id: UUIDv5 of site, VM uuid and window, so a re-sent window has the same ids.
pub fn record_id(site: &str, vm_uuid: &str, window: Window) -> String {
    let name = format!("{site}\n{vm_uuid}\n{}\n{}", window.start_ms, window.end_ms);
    Uuid::new_v5(&RECORD_NAMESPACE, name.as_bytes()).to_string()
}

/// Who is reporting, written into every record.
#[derive(Clone, Debug)]
pub struct Identity {
    /// GOCDB site name.
    pub site: String,
    /// APEL CloudType.
    pub cloud_type: String,
    /// Compute service name or endpoint.
    pub compute_service: String,
}

/// What the model produced for one VM, and who produced it.
#[derive(Clone, Debug)]
pub struct Measured<'a> {
    /// The VM.
    pub vm: &'a Vm,
    /// What the inventory knows of it.
    pub details: &'a VmDetails,
    /// Its host's name.
    pub host: Option<&'a str>,
    /// Its energy in the window.
    pub joules: f64,
    /// Seconds the window saw it.
    pub wall_s: f64,
    /// Seconds of the window its gauges covered (None: no gauge measured).
    pub covered_s: Option<f64>,
    /// CPU seconds, where measured.
    pub cpu_s: Option<f64>,
    /// Model name.
    pub model: &'a str,
    /// Model version.
    pub model_version: &'a str,
}

/// Builds one record.
pub fn build(identity: &Identity, window: Window, m: Measured<'_>) -> EnergyRecord {
    let (vm, details) = (m.vm, m.details);
    let status = if details.ended_ms.is_some_and(|t| t <= window.end_ms) {
        "completed"
    } else {
        "started"
    };
    EnergyRecord {
        id: record_id(&identity.site, &vm.uuid, window),
        site: identity.site.clone(),
        cloud_type: identity.cloud_type.clone(),
        compute_service: identity.compute_service.clone(),
        vm_uuid: vm.uuid.clone(),
        vm_name: details.name.clone(),
        project_id: details.project_id.clone(),
        project_name: details.project_name.clone(),
        user_id: details.user_id.clone(),
        user_name: details.user_name.clone(),
        user_dn: None,
        fqan: None,
        host: m.host.map(str::to_owned),
        start_ms: window.start_ms,
        end_ms: window.end_ms,
        joules: m.joules,
        wall_s: m.wall_s,
        covered_s: m.covered_s,
        cpu_s: m.cpu_s,
        vcpus: vm.vcpus,
        status: status.to_owned(),
        model: m.model.to_owned(),
        model_version: m.model_version.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let w = Window {
            start_ms: 0,
            end_ms: 3_600_000,
        };
        let a = record_id("SITE", "vm-1", w);
        assert_eq!(a, record_id("SITE", "vm-1", w));
        assert_ne!(a, record_id("SITE", "vm-2", w));
        assert_ne!(
            a,
            record_id(
                "SITE",
                "vm-1",
                Window {
                    start_ms: 0,
                    end_ms: 7_200_000
                }
            )
        );
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }
}
