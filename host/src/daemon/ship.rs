//! Shipping: each closed window of `[daemon] ship_every_secs` becomes one
//! record per VM, rendered into the spool, delivered and committed with
//! lastrun exactly as `extract` does (the same spool and messengers), so a
//! kill at any point delivers each record once.

use super::ledger::Part;
use super::tick::DaemonState;
use crate::energy::status::{self, Seen};
use crate::pipeline::{self, Renderer, ShipError, ShipReport, Stop};
use crate::records::{self, EnergyRecord, Identity};
use crate::runtime::{Quality, Vm, VmDetails};
use crate::sources::carbon_intensity::Intensity;
use crate::state::StateDir;
use crate::window::Window;

impl DaemonState {
    /// Ships every window that ended by the last sample, and retries what
    /// the spool holds. Windows already spooled or delivered (lastrun) are
    /// dropped from the ledger, never rendered twice.
    pub fn ship(&mut self) -> Result<ShipReport, ShipError> {
        let step_ms = self.policy.daemon_config().ship_every_secs as i64 * 1000;
        let Some(last_ms) = self.ledger.last.as_ref().map(|c| c.at_ms) else {
            return Ok(ShipReport::default());
        };
        let end_ms = last_ms - last_ms.rem_euclid(step_ms);
        let first = self.ledger.windows.keys().next().copied();
        let identity = Identity {
            site: self.policy.site.name.clone(),
            cloud_type: self.policy.site.cloud_type.clone(),
            compute_service: self.policy.site.compute_service.clone(),
        };
        let (policy, bound, ledger, host) = (&self.policy, &self.bound, &self.ledger, &self.host);
        // The daemon reads no Prometheus: a static intensity or none.
        let intensity = bound
            .carbon
            .as_ref()
            .map_or(Intensity::Unknown, |c| c.intensity_source().fixed());
        let plan = |state: &StateDir| {
            // First run: from the first window the daemon measured.
            let start = state.done_until()?.or(first).unwrap_or(end_ms);
            Ok(pipeline::cut(start, end_ms, step_ms))
        };
        let render = |window: Window, sink: &mut dyn FnMut(usize, Vec<u8>) -> Result<(), Stop>| {
            let parts: Vec<(&String, &Part)> = ledger
                .windows
                .get(&window.start_ms)
                .map(|w| w.iter().collect())
                .unwrap_or_default();
            std::thread::scope(|scope| {
                let mut renderer = Renderer::new(scope, bound, sink);
                pipeline::hand_on_records(
                    policy,
                    bound,
                    &intensity,
                    window,
                    &parts,
                    |(uuid, part)| record(&identity, window, host, uuid, part),
                    &mut renderer,
                )
            })?;
            Ok(pipeline::WindowDone {
                records: parts.len(),
                hosts: Vec::new(),
            })
        };
        let shipped = pipeline::ship(policy, bound, plan, false, false, render);
        // What is spooled or delivered leaves the ledger.
        let state = self.policy.state_dir();
        if let Ok(Some(done)) = state.done_until() {
            self.ledger
                .windows
                .retain(|&start, _| start + step_ms > done);
        }
        shipped
    }
}

/// A VM's record of a shipped window.
fn record(
    identity: &Identity,
    window: Window,
    host: &str,
    uuid: &str,
    part: &Part,
) -> EnergyRecord {
    let vm = Vm {
        uuid: uuid.to_owned(),
        vcpus: part.vcpus,
        memory_mb: part.memory_mb,
    };
    let details = VmDetails::from(part.who.clone());
    // Its parts are cut at the window's edges: a VM measured up to the end
    // has its last part end there (no lookback).
    let seen = Seen {
        times: Some((part.first_ms, part.last_ms)),
        ..Seen::default()
    };
    let status = status::status(window, 0, seen);
    let quality = records::ModelQuality {
        kind: if part.estimated {
            Quality::Estimated
        } else {
            Quality::Measured
        },
        meters: part.meters.clone(),
        cpu_meter: "cpu:libvirt".to_owned(),
        gpu_meter: part.gpu_meter.clone(),
    };
    records::build(
        identity,
        window,
        records::RecordInput {
            vm: &vm,
            details: &details,
            host: Some(host),
            joules: part.joules,
            gpu_j: part.gpu_j,
            gpu_shared: part.gpu_shared,
            wall_s: part.wall_s,
            covered_s: None,
            cpu_s: Some(part.cpu_s),
            status,
            quality: &quality,
            model: &part.model,
            model_version: &part.model_version,
            embodied: part.embodied_g.zip(part.embodied_source.as_deref()),
        },
    )
}
