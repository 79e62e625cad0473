//! Per-VM energy records and their deterministic ids.
//!
//! A record is the WIT `energy-record` that formats render; the host builds it
//! from the model's joules, the inventory and the site's identity.

use uuid::Uuid;

pub use crate::runtime::EnergyRecord;
use crate::runtime::{Measurement, ModelInfo, Param, RecordQuality, Status, Vm, VmDetails};
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
    /// The GPU part of `joules`, where its model attributed the window's
    /// GPUs; None where it did not or the window had none.
    pub gpu_j: Option<f64>,
    /// It held a vGPU or a MIG instance: its GPU joules are a share of a
    /// card's, and the record is `estimated`.
    pub gpu_shared: bool,
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
    /// `gpu:<measurement>`, named in a record's meters where it has GPU
    /// joules; None for a model that attributes no GPUs.
    pub gpu_meter: Option<String>,
}

/// The meter records name for the GPU energy a model gives them with
/// `params`: `gpu:<measurement>`, None where it attributes no GPUs
/// ([`ModelQuality::gpu_meter`]; extract and the daemon alike).
pub fn gpu_meter(info: &ModelInfo, params: &[Param]) -> Option<String> {
    crate::runtime::gpu_measurement(info, params).map(|name| format!("gpu:{name}"))
}

/// The meters a model's measurements read, as records name them:
/// `rapl:package`, `host-power`, `counter:<selector>`, `gauge:<selector>`,
/// `template`. CPU time, idle power and the inventory are not meters; GPUs
/// are, on the records with GPU joules ([`ModelQuality::gpu_meter`]).
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
            kind: if m.gpu_shared {
                crate::runtime::Quality::Estimated
            } else {
                m.quality.kind
            },
            meters: {
                let mut meters = m.quality.meters.clone();
                if m.cpu_s.is_some() {
                    meters.push(m.quality.cpu_meter.clone());
                }
                if let (Some(gpu), Some(j)) = (&m.quality.gpu_meter, m.gpu_j)
                    && j > 0.0
                {
                    meters.push(gpu.clone());
                }
                meters
            },
            covered_s: m.covered_s,
        },
        pue: None,
        ci_g: None,
        cfp_g: None,
        ci_covered_s: None,
        gpu_j: m.gpu_j,
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

    /// A record's GPU part, its `gpu:` meter where it has GPU joules, and
    /// `estimated` where it held a share of a card.
    #[test]
    fn gpu_joules_name_their_meter_and_shared_cards_are_estimated() {
        let identity = Identity {
            site: "S".into(),
            cloud_type: "OpenStack".into(),
            compute_service: "nova".into(),
        };
        let vm = Vm {
            uuid: "vm-1".into(),
            vcpus: Some(4),
            memory_mb: None,
        };
        let details = VmDetails {
            name: None,
            project_id: None,
            project_name: None,
            user_id: None,
            user_name: None,
            flavor: None,
            disk_gb: None,
            started_ms: None,
            ended_ms: None,
            labels: Vec::new(),
        };
        let quality = ModelQuality {
            kind: crate::runtime::Quality::Measured,
            meters: vec!["rapl:package".into()],
            cpu_meter: "cpu:m".into(),
            gpu_meter: Some("gpu:gpu".into()),
        };
        let build_with = |gpu_j: Option<f64>, gpu_shared: bool| {
            build(
                &identity,
                Window {
                    start_ms: 0,
                    end_ms: 3_600_000,
                },
                RecordInput {
                    vm: &vm,
                    details: &details,
                    host: Some("gpu-01"),
                    joules: 1_500_000.0,
                    gpu_j,
                    gpu_shared,
                    wall_s: 3600.0,
                    covered_s: None,
                    cpu_s: None,
                    status: Status::Running,
                    quality: &quality,
                    model: "rapl-share",
                    model_version: "0.1.0",
                    embodied: None,
                },
            )
        };
        let held = build_with(Some(1_440_000.0), false);
        assert_eq!(held.gpu_j, Some(1_440_000.0));
        assert_eq!(held.quality.meters, ["rapl:package", "gpu:gpu"]);
        assert_eq!(held.quality.kind, crate::runtime::Quality::Measured);
        let shared = build_with(Some(385_714.0), true);
        assert_eq!(shared.quality.kind, crate::runtime::Quality::Estimated);
        for none in [build_with(Some(0.0), false), build_with(None, false)] {
            assert_eq!(none.quality.meters, ["rapl:package"]);
        }
        assert_eq!(build_with(None, false).gpu_j, None);
    }
}
