//! Per host and window: the meter's energy, the idle part, what the model
//! attributed and what it left at the host and why (`extract --host-summary`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::runtime::{
    Attribution, AttributionInput, KeyKind, Measurement, ModelInfo, Param, UnattributedReason, Unit,
};
use crate::window::{Window, format_ms};

/// One host in one window (one JSON line of `--host-summary`).
#[derive(Clone, Debug, Serialize)]
pub struct HostSummary {
    /// Window start, RFC 3339.
    pub window_start: String,
    /// Window end, RFC 3339.
    pub window_end: String,
    /// The normalised host key.
    pub host: String,
    /// The model that split the host's energy.
    pub model: String,
    /// E_h: the host meter's reading over the window; none where it did not
    /// read (the line of a host with GPUs, whose energy is measured on its
    /// own: what its VMs got of them and what stayed at the host).
    pub energy_joules: Option<f64>,
    /// The seconds the meter's reading covered, by which I_h is counted: a
    /// gauge's covered time (less than the window across a gap,
    /// `docs/ENERGY.md#gauges`), a counter's span; none where it did not read.
    pub covered_s: Option<f64>,
    /// The host's idle power, where the model asked for it.
    pub idle_power_watts: Option<f64>,
    /// I_h: idle power x the seconds the meter covered (at most E_h).
    pub idle_joules: Option<f64>,
    /// What the model gave the VMs on this host.
    pub attributed_joules: f64,
    /// What it left at the host.
    pub unattributed_joules: f64,
    /// VMs placed on the host in the window (those given to other models included).
    pub vms: usize,
    /// |attributed + unattributed − E_h| / E_h, the GPUs' energy taken out
    /// first where the model adds it beside the meter; against the GPUs'
    /// energy G_h where the meter did not read.
    pub conservation_rel_err: f64,
    /// What the VMs were given beyond E_h (a model without a conservation
    /// law whose per-VM meters exceed the host's, as Scaphandre's can); 0 otherwise.
    pub excess_joules: f64,
    /// Unattributed joules by reason (`idle`, `no-vms`, `no-cpu`, `other-model`, …).
    pub reasons: BTreeMap<&'static str, f64>,
    /// G_h: the host's GPUs' energy (`docs/ENERGY.md#gpus`), where the model
    /// attributes GPUs and the host's GPUs have readings in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_joules: Option<f64>,
    /// The GPU part of `attributed_joules`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_attributed_joules: Option<f64>,
    /// The GPU part of `unattributed_joules` (cards or slices nobody held:
    /// `no-vms`; holdings of other models' VMs: `other-model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_unattributed_joules: Option<f64>,
    /// VMs the cloud's API says ran on the host in the window but no series
    /// measured (they have no record).
    pub unmeasured_vms: usize,
}

/// The measurement holding a model's host energy E_h: its conservation
/// measurement, else its first host meter (`rapl`, `host-power`, a host-keyed
/// gauge or energy counter); none for models that read no host meter.
pub fn host_meter<'a>(info: &'a ModelInfo, measurements: &'a [Measurement]) -> Option<&'a str> {
    if let Some(law) = &info.conservation {
        return Some(&law.measurement);
    }
    measurements.iter().find_map(|m| match m {
        Measurement::Rapl(r) => Some(r.name.as_str()),
        Measurement::HostPower(h) => Some(h.name.as_str()),
        Measurement::Gauge(g) if g.key == KeyKind::Host => Some(g.name.as_str()),
        Measurement::Counter(c) if c.key == KeyKind::Host && c.unit != Unit::Seconds => {
            Some(c.name.as_str())
        }
        _ => None,
    })
}

/// The summary of every host with a reading of the model's host meter or,
/// for a model that attributes GPUs with `params`, of its GPUs
/// (`docs/ENERGY.md#gpus`: the GPU law holds on a host whose meter did not
/// read), hosts without VMs included; empty for models that read no host
/// meter.
pub fn hosts(
    window: Window,
    info: &ModelInfo,
    measurements: &[Measurement],
    params: &[Param],
    input: &AttributionInput,
    attribution: &Attribution,
) -> Vec<HostSummary> {
    let Some(meter) = host_meter(info, measurements) else {
        return Vec::new();
    };
    let Some(energy) = input.measurements.iter().find(|m| m.name == meter) else {
        return Vec::new();
    };
    let idle = measurements
        .iter()
        .find_map(|m| match m {
            Measurement::IdlePower(spec) if spec.meter == meter => Some(spec.name.as_str()),
            _ => None,
        })
        .and_then(|name| input.measurements.iter().find(|m| m.name == name));
    let n = input.hosts.len();
    let mut attributed = vec![0.0; n];
    let mut vms = vec![0usize; n];
    for p in &input.placements {
        if let Some(count) = p.host.and_then(|h| vms.get_mut(h as usize)) {
            *count += 1;
        }
    }
    for e in &attribution.placements {
        if let Some(slot) = input.placements[e.placement as usize]
            .host
            .and_then(|h| attributed.get_mut(h as usize))
        {
            *slot += e.joules;
        }
    }
    // G_h of the hosts with GPU readings, for a model that attributes them;
    // the meter holds them too where it is a wall meter, else they are beside it.
    let mut gpus: Vec<Option<f64>> = vec![None; n];
    if crate::runtime::gpu_measurement(info, params).is_some() {
        for card in &input.gpus {
            if let Some(slot) = gpus.get_mut(card.host as usize) {
                *slot.get_or_insert(0.0) += card.energy.value;
            }
        }
    }
    // Their parts given to VMs and left at the host.
    let (mut gpus_given, mut gpus_left) = (vec![0.0; n], vec![0.0; n]);
    for e in &attribution.placements {
        if let Some(slot) = input.placements[e.placement as usize]
            .host
            .and_then(|h| gpus_given.get_mut(h as usize))
        {
            *slot += e.gpu_joules;
        }
    }
    for e in &attribution.unattributed {
        if let Some(slot) = gpus_left.get_mut(e.host as usize) {
            *slot += e.gpu_joules;
        }
    }
    let in_meter = info.conservation.as_ref().is_some_and(|c| c.gpu_in_meter);
    let mut reasons: Vec<BTreeMap<&'static str, f64>> = vec![BTreeMap::new(); n];
    for e in &attribution.unattributed {
        if let Some(map) = reasons.get_mut(e.host as usize) {
            *map.entry(reason_name(e.reason)).or_default() += e.joules;
        }
    }
    (0..n)
        .filter_map(|h| {
            let reading = energy.hosts.get(h).copied().flatten();
            // What the host's VMs and the host itself hold: E_h (and the
            // GPUs beside it), or the GPUs alone where the meter did not read.
            let whole = match (reading, gpus[h]) {
                (Some(r), Some(g)) if !in_meter => r.value + g,
                (Some(r), _) => r.value,
                (None, Some(g)) => g,
                (None, None) => return None,
            };
            let watts = idle
                .and_then(|m| m.hosts.get(h).copied().flatten())
                .map(|r| r.value);
            let unattributed: f64 = reasons[h].values().sum();
            let off = attributed[h] + unattributed - whole;
            let e_h = reading.map_or(whole, |r| r.value);
            Some(HostSummary {
                window_start: format_ms(window.start_ms),
                window_end: format_ms(window.end_ms),
                host: input.hosts[h].clone(),
                model: info.name.clone(),
                energy_joules: reading.map(|r| r.value),
                covered_s: reading.map(|r| r.covered_s),
                idle_power_watts: watts,
                idle_joules: watts
                    .zip(reading)
                    .map(|(w, r)| (w * r.covered_s).min(r.value)),
                attributed_joules: attributed[h],
                unattributed_joules: unattributed,
                vms: vms[h],
                conservation_rel_err: if e_h > 0.0 {
                    off.abs() / e_h
                } else {
                    off.abs()
                },
                excess_joules: off.max(0.0),
                reasons: std::mem::take(&mut reasons[h]),
                gpu_joules: gpus[h],
                gpu_attributed_joules: gpus[h].map(|_| gpus_given[h]),
                gpu_unattributed_joules: gpus[h].map(|_| gpus_left[h]),
                unmeasured_vms: 0,
            })
        })
        .collect()
}

/// The WIT name of a reason.
fn reason_name(reason: UnattributedReason) -> &'static str {
    match reason {
        UnattributedReason::Idle => "idle",
        UnattributedReason::NoVms => "no-vms",
        UnattributedReason::NoCpu => "no-cpu",
        UnattributedReason::OtherModel => "other-model",
        UnattributedReason::NotVms => "not-vms",
        UnattributedReason::Other => "other",
    }
}

/// The summaries as an aligned table (kWh, W, %), for a terminal.
pub fn table(summaries: &[HostSummary]) -> String {
    let kwh = |j: f64| format!("{:.4}", j / 3.6e6);
    let rows: Vec<[String; 8]> = summaries
        .iter()
        .map(|s| {
            let share = match s.energy_joules {
                Some(e) if e > 0.0 => format!("{:.1}", 100.0 * s.attributed_joules / e),
                _ => "-".to_owned(),
            };
            [
                s.window_start.clone(),
                s.host.clone(),
                s.energy_joules.map_or_else(|| "-".to_owned(), kwh),
                s.idle_power_watts
                    .map_or_else(|| "-".to_owned(), |w| format!("{w:.1}")),
                share,
                kwh(s.unattributed_joules),
                s.vms.to_string(),
                s.reasons
                    .iter()
                    .filter(|(_, j)| **j > 0.0)
                    .map(|(r, j)| format!("{r} {}", kwh(*j)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    let header = [
        "WINDOW",
        "HOST",
        "ENERGY_KWH",
        "IDLE_W",
        "ATTRIBUTED_%",
        "LEFT_KWH",
        "VMS",
        "LEFT_BY_REASON_KWH",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            // Text left, numbers right; no padding after the last column.
            match i {
                0 | 1 => write!(out, "{cell:<w$}"),
                _ if i == last => write!(out, "{cell}"),
                _ => write!(out, "{cell:>w$}"),
            }
            .ok();
            if i != last {
                out.push_str("  ");
            }
        }
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{
        Conservation, GpuReading, GpuSpec, HostEnergy, Measured, ParamValue, Placement,
        PlacementEnergy, Quality, Reading, Vm,
    };

    fn summary(
        host: &str,
        energy: f64,
        idle: Option<f64>,
        left: &[(&'static str, f64)],
    ) -> HostSummary {
        let unattributed = left.iter().map(|l| l.1).sum();
        HostSummary {
            window_start: "2025-06-01T01:00:00.000Z".into(),
            window_end: "2025-06-01T02:00:00.000Z".into(),
            host: host.into(),
            model: "rapl-share".into(),
            energy_joules: Some(energy),
            covered_s: Some(3600.0),
            idle_power_watts: idle,
            idle_joules: idle.map(|w| w * 3600.0),
            attributed_joules: energy - unattributed,
            unattributed_joules: unattributed,
            vms: if unattributed == energy { 0 } else { 12 },
            conservation_rel_err: 0.0,
            excess_joules: 0.0,
            reasons: left.iter().copied().collect(),
            gpu_joules: None,
            gpu_attributed_joules: None,
            gpu_unattributed_joules: None,
            unmeasured_vms: 0,
        }
    }

    #[test]
    fn the_table_lines_up_and_says_why_energy_stayed() {
        let table = table(&[
            summary("cmp-01", 1_800_000.0, Some(95.5), &[("idle", 360_000.0)]),
            summary("gpu-node-117", 720_000.0, None, &[("no-vms", 720_000.0)]),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("WINDOW") && lines[0].contains("LEFT_BY_REASON_KWH"));
        // cmp-01: 0.5 kWh, 95.5 W, 80 % attributed, 0.1 kWh left as idle.
        assert!(lines[1].contains("cmp-01        "), "{table}");
        assert!(
            lines[1].contains("0.5000") && lines[1].contains("95.5"),
            "{table}"
        );
        assert!(
            lines[1].contains("80.0") && lines[1].ends_with("idle 0.1000"),
            "{table}"
        );
        assert!(
            lines[2].contains("-") && lines[2].ends_with("no-vms 0.2000"),
            "{table}"
        );
        // Numbers are right-aligned: the energy column ends at the same offset.
        let end = |line: &str, cell: &str| line.find(cell).map(|i| i + cell.len());
        assert_eq!(end(lines[1], "0.5000"), end(lines[2], "0.2000"));
    }

    const WINDOW: Window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };

    /// `cmp-01` metered at 1000 J, `cmp-02` not read; a 500 J card on
    /// `cmp-01` and a 70 J one on `cmp-02`, each partly held by its VM.
    fn with_gpus(in_meter: bool) -> (ModelInfo, AttributionInput, Attribution) {
        let reading = |value| Reading {
            value,
            span_s: 3600.0,
            covered_s: 3600.0,
        };
        let card = |host, value| GpuReading {
            host,
            bus_id: format!("00000000:3B:00.{host}"),
            gpu_uuid: None,
            energy: reading(value),
            counter: true,
            holdings: vec![],
        };
        let placement = |vm| Placement {
            vm,
            host: Some(vm),
            presence_s: 3600.0,
            cpu_s: Some(100.0),
            assigned: true,
        };
        let vm = |uuid: &str| Vm {
            uuid: uuid.into(),
            vcpus: Some(2),
            memory_mb: None,
        };
        let input = AttributionInput {
            window: crate::runtime::Window {
                start_ms: 0,
                end_ms: 3_600_000,
            },
            vms: vec![vm("a"), vm("b")],
            details: vec![],
            hosts: vec!["cmp-01".into(), "cmp-02".into()],
            placements: vec![placement(0), placement(1)],
            measurements: vec![Measured {
                name: "energy".into(),
                vms: vec![None, None],
                hosts: vec![Some(reading(1000.0)), None],
                placements: vec![],
            }],
            gpus: vec![card(0, 500.0), card(1, 70.0)],
        };
        let info = ModelInfo {
            name: "share".into(),
            version: "1".into(),
            description: String::new(),
            measurements: vec![Measurement::Gpu(GpuSpec {
                name: "gpu".into(),
                max_gap_s: None,
            })],
            params: vec![],
            conservation: Some(Conservation {
                measurement: "energy".into(),
                tolerance: 1e-9,
                gpu: Some("gpu".into()),
                gpu_in_meter: in_meter,
            }),
            quality: Quality::Measured,
        };
        // a: 400 J of its card, and the CPU energy (E_h, or E_h − G_h of a
        // wall meter); b: 50 J of its card, the meter's share of nothing.
        let cpu = if in_meter { 500.0 } else { 1000.0 };
        let given = |placement, joules, gpu_joules| PlacementEnergy {
            placement,
            joules,
            gpu_joules,
        };
        let unheld = |host, joules| HostEnergy {
            host,
            joules,
            gpu_joules: joules,
            reason: UnattributedReason::NoVms,
        };
        let answer = Attribution {
            placements: vec![given(0, cpu + 400.0, 400.0), given(1, 50.0, 50.0)],
            unattributed: vec![unheld(0, 100.0), unheld(1, 20.0)],
        };
        (info, input, answer)
    }

    #[test]
    fn a_host_whose_meter_did_not_read_has_the_line_of_its_gpus() {
        for in_meter in [false, true] {
            let (info, input, answer) = with_gpus(in_meter);
            let lines = hosts(WINDOW, &info, &info.measurements, &[], &input, &answer);
            assert_eq!(lines.len(), 2, "{lines:?}");
            let (metered, unread) = (&lines[0], &lines[1]);
            assert_eq!(metered.energy_joules, Some(1000.0));
            assert_eq!(metered.unattributed_joules, 100.0);
            assert_eq!(metered.conservation_rel_err, 0.0, "in meter: {in_meter}");
            // cmp-02: no E_h, its card's 70 J: 50 J to b, 20 J at the host.
            assert_eq!(unread.host, "cmp-02");
            assert_eq!(unread.energy_joules, None);
            assert_eq!(unread.idle_joules, None);
            assert_eq!(
                (unread.attributed_joules, unread.unattributed_joules),
                (50.0, 20.0)
            );
            assert_eq!(unread.reasons, BTreeMap::from([("no-vms", 20.0)]));
            assert_eq!(unread.conservation_rel_err, 0.0);
        }
        // Without GPUs, a host whose meter did not read has no line.
        let (info, mut input, answer) = with_gpus(false);
        input.gpus.clear();
        let lines = hosts(WINDOW, &info, &info.measurements, &[], &input, &answer);
        assert_eq!(lines.len(), 1);
    }

    /// A model that attributes no GPUs though the input has them (it reads
    /// the `gpu` measurement, but its law names none; or `gpu = "ignore"`):
    /// its summary is the meter's alone, without the cards' energy.
    #[test]
    fn a_model_that_attributes_no_gpus_is_summed_without_them() {
        let (mut info, input, _) = with_gpus(false);
        let answer = Attribution {
            placements: vec![PlacementEnergy {
                placement: 0,
                joules: 900.0,
                gpu_joules: 0.0,
            }],
            unattributed: vec![HostEnergy {
                host: 0,
                joules: 100.0,
                gpu_joules: 0.0,
                reason: UnattributedReason::Idle,
            }],
        };
        let only_the_meter = |lines: Vec<HostSummary>| {
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(lines[0].energy_joules, Some(1000.0));
            assert_eq!(lines[0].conservation_rel_err, 0.0);
            assert_eq!(lines[0].gpu_joules, None);
        };
        let ignore = [Param {
            name: "gpu".into(),
            value: ParamValue::Choice("ignore".into()),
        }];
        only_the_meter(hosts(
            WINDOW,
            &info,
            &info.measurements,
            &ignore,
            &input,
            &answer,
        ));
        if let Some(law) = &mut info.conservation {
            law.gpu = None;
        }
        only_the_meter(hosts(
            WINDOW,
            &info,
            &info.measurements,
            &[],
            &input,
            &answer,
        ));
    }
}
