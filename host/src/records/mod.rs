//! Per-VM energy records and their deterministic ids.
//!
//! A record is the WIT `energy-record` that formats render; the host builds it
//! from the model's joules, the inventory and the site's identity.

use uuid::Uuid;

pub use crate::runtime::EnergyRecord;
use crate::runtime::{Measurement, RecordQuality, Status, Vm, VmDetails};
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
pub struct RecordInput<'a> {
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
    /// Where the VM stood at the window's end.
    pub status: Status,
    /// How the model's energy is obtained.
    pub quality: &'a ModelQuality,
    /// Model name.
    pub model: &'a str,
    /// Model version.
    pub model_version: &'a str,
    /// Its embodied emissions in the window, grams CO2e, and where they
    /// come from (`docs/ENERGY.md#embodied-carbon`); None: not known.
    pub embodied: Option<(f64, &'a str)>,
}

/// What every record of a model shares of its quality.
#[derive(Clone, Debug)]
pub struct ModelQuality {
    /// Measured or estimated (the model's `describe()`).
    pub kind: crate::runtime::Quality,
    /// The meters its measurements read.
    pub meters: Vec<String>,
    /// The CPU-time series, named in a record's meters where its CPU time was measured.
    pub cpu_meter: String,
}

/// The meters a model's measurements read, as records name them:
/// `rapl:package`, `host-power`, `counter:<selector>`, `gauge:<selector>`,
/// `template`. CPU time, idle power and the inventory are not meters.
pub fn meters(measurements: &[Measurement]) -> Vec<String> {
    let mut meters = Vec::new();
    for m in measurements {
        match m {
            Measurement::Counter(c) if c.unit != crate::runtime::Unit::Seconds => {
                meters.push(format!("counter:{}", c.selector));
            }
            Measurement::Gauge(g) => meters.push(format!("gauge:{}", g.selector)),
            Measurement::Template(_) => meters.push("template".to_owned()),
            Measurement::Rapl(r) if r.zones.is_empty() => {
                meters.extend(["rapl:package".to_owned(), "rapl:dram".to_owned()]);
            }
            Measurement::Rapl(r) => meters.extend(r.zones.iter().map(|z| format!("rapl:{z}"))),
            Measurement::HostPower(_) => meters.push("host-power".to_owned()),
            _ => {}
        }
    }
    meters
}

/// Builds one record.
pub fn build(identity: &Identity, window: Window, m: RecordInput<'_>) -> EnergyRecord {
    let (vm, details) = (m.vm, m.details);
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
        flavor: details.flavor.clone(),
        start_ms: window.start_ms,
        end_ms: window.end_ms,
        joules: m.joules,
        wall_s: m.wall_s,
        cpu_s: m.cpu_s,
        vcpus: vm.vcpus,
        memory_mb: vm.memory_mb,
        status: m.status,
        quality: RecordQuality {
            kind: m.quality.kind,
            meters: match m.cpu_s {
                Some(_) => {
                    let mut meters = m.quality.meters.clone();
                    meters.push(m.quality.cpu_meter.clone());
                    meters
                }
                None => m.quality.meters.clone(),
            },
            covered_s: m.covered_s,
        },
        pue: None,
        ci_g: None,
        cfp_g: None,
        ci_covered_s: None,
        gpu_j: None,
        embodied_g: m.embodied.map(|(grams, _)| grams),
        embodied_source: m.embodied.map(|(_, source)| source.to_owned()),
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
