//! `docs/ENERGY.md#embodied-carbon`'s formula over one window's placements:
//! `e_i = r_h × s_i × presence_i`, `s_i = (vcpus_i / V_h + memory_mb_i / M_h) / 2`,
//! scaled down on an overcommitted host; pure arithmetic.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Capacity, Lack};
use crate::runtime::AttributionInput;
use crate::window::Window;

/// A host's rate and capacity, where both are known.
#[derive(Clone, Debug)]
pub(super) struct HostRate {
    /// `r_h`, g/s.
    pub rate_g_per_s: f64,
    /// `V_h`, `M_h`.
    pub capacity: Capacity,
    /// Where the host's figure comes from (`embodied_source`).
    pub source: Arc<str>,
}

/// One VM's embodied emissions in the window.
#[derive(Clone, Debug, PartialEq)]
pub struct VmPart {
    /// Σ of its placements' `e_i`, grams CO2e.
    pub grams: f64,
    /// Its hosts' figures' sources, `+`-joined where they differ.
    pub source: Arc<str>,
}

/// One host's embodied emissions in the window.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPart {
    /// Index into the input's `hosts`.
    pub host: usize,
    /// `r_h × |W|`, grams.
    pub whole_g: f64,
    /// `Σ e_i` before any scaling, grams.
    pub held_g: f64,
    /// What stays at the host (idle capacity), grams: 0 when overcommitted.
    pub idle_g: f64,
    /// Whether `Σ e_i > r_h × |W|` scaled its placements down.
    pub scaled: bool,
}

/// What the formula gives for one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Amortized {
    /// Per input VM: its part, where every placement of it is on a host with
    /// a rate and a capacity and its sizes are known; else None (never 0).
    pub vms: Vec<Option<VmPart>>,
    /// Per host with a rate and a capacity, in input order.
    pub hosts: Vec<HostPart>,
}

/// Applies the formula to `input`'s placements with each host's rate (or
/// why it has none); returns the parts and what was lacking.
pub(super) fn amortize(
    input: &AttributionInput,
    rates: &[Result<HostRate, Lack>],
    window: Window,
) -> (Amortized, BTreeSet<Lack>) {
    let seconds = window.len_ms() as f64 / 1000.0;
    let mut lacks = BTreeSet::new();
    let mut known = vec![true; input.vms.len()];
    // Each placement's e_i, where it has one, and each host's Σ e_i.
    let mut grams: Vec<Option<f64>> = Vec::with_capacity(input.placements.len());
    let mut held = vec![0.0_f64; input.hosts.len()];
    for p in &input.placements {
        let vm = p.vm as usize;
        let rate = match p.host.map(|h| rates.get(h as usize)) {
            Some(Some(Ok(rate))) => rate,
            Some(Some(Err(lack))) => {
                lacks.insert(lack.clone());
                known[vm] = false;
                grams.push(None);
                continue;
            }
            Some(None) | None => {
                lacks.insert(Lack::HostUnknown);
                known[vm] = false;
                grams.push(None);
                continue;
            }
        };
        let sizes = input
            .vms
            .get(vm)
            .and_then(|v| Some((v.vcpus?, v.memory_mb?)));
        let Some((vcpus, memory_mb)) = sizes else {
            lacks.insert(Lack::SizeUnknown);
            known[vm] = false;
            grams.push(None);
            continue;
        };
        let share = (f64::from(vcpus) / rate.capacity.vcpus
            + memory_mb as f64 / rate.capacity.memory_mib)
            / 2.0;
        let e = rate.rate_g_per_s * share * p.presence_s;
        if let Some(h) = p.host {
            held[h as usize] += e;
        }
        grams.push(Some(e));
    }
    // Overcommit: the host's placements scaled to add up to r_h × |W|.
    let mut hosts = Vec::new();
    let mut factor = vec![1.0_f64; input.hosts.len()];
    for (h, rate) in rates.iter().enumerate() {
        let Ok(rate) = rate else { continue };
        let whole_g = rate.rate_g_per_s * seconds;
        let scaled = held[h] > whole_g;
        if scaled {
            factor[h] = whole_g / held[h];
        }
        hosts.push(HostPart {
            host: h,
            whole_g,
            held_g: held[h],
            idle_g: if scaled { 0.0 } else { whole_g - held[h] },
            scaled,
        });
    }
    let mut vms: Vec<Option<VmPart>> = vec![None; input.vms.len()];
    for (p, e) in input.placements.iter().zip(&grams) {
        let vm = p.vm as usize;
        let (Some(e), Some(h), true) = (e, p.host, known[vm]) else {
            continue;
        };
        let Ok(rate) = &rates[h as usize] else {
            continue;
        };
        let e = e * factor[h as usize];
        match &mut vms[vm] {
            Some(part) => {
                part.grams += e;
                if !part.source.split('+').any(|s| s == &*rate.source) {
                    part.source = Arc::from(format!("{}+{}", part.source, rate.source));
                }
            }
            slot => {
                *slot = Some(VmPart {
                    grams: e,
                    source: Arc::clone(&rate.source),
                });
            }
        }
    }
    (Amortized { vms, hosts }, lacks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Placement, Vm};

    const W: Window = Window {
        start_ms: 0,
        end_ms: 3_600_000,
    };

    fn vm(uuid: &str, vcpus: Option<u32>, memory_mb: Option<u64>) -> Vm {
        Vm {
            uuid: uuid.into(),
            vcpus,
            memory_mb,
        }
    }

    fn placement(vm: u32, host: Option<u32>, presence_s: f64) -> Placement {
        Placement {
            vm,
            host,
            presence_s,
            cpu_s: None,
            assigned: true,
        }
    }

    fn input(vms: Vec<Vm>, hosts: usize, placements: Vec<Placement>) -> AttributionInput {
        AttributionInput {
            window: crate::runtime::Window {
                start_ms: W.start_ms,
                end_ms: W.end_ms,
            },
            vms,
            details: vec![],
            hosts: (0..hosts).map(|h| format!("cmp-0{h}")).collect(),
            placements,
            measurements: vec![],
            gpus: vec![],
        }
    }

    /// ENERGY.md's example host: 900 kg over 4 years, 96 vCPUs, 256 GiB.
    fn example_host() -> HostRate {
        HostRate {
            rate_g_per_s: 900_000.0 / (4.0 * 8760.0 * 3600.0),
            capacity: Capacity {
                vcpus: 96.0,
                memory_mib: 262_144.0,
            },
            source: Arc::from("static"),
        }
    }

    fn close(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }

    #[test]
    fn the_worked_example() {
        let input = input(
            vec![
                vm("a", Some(8), Some(32_768)),
                vm("b", Some(4), Some(8_192)),
            ],
            1,
            vec![placement(0, Some(0), 3600.0), placement(1, Some(0), 1800.0)],
        );
        let (got, lacks) = amortize(&input, &[Ok(example_host())], W);
        assert!(lacks.is_empty());
        close(got.vms[0].as_ref().unwrap().grams, 2.675_513_698_630_137);
        close(got.vms[1].as_ref().unwrap().grams, 0.468_214_897_260_274);
        assert_eq!(&*got.vms[0].as_ref().unwrap().source, "static");
        let host = &got.hosts[0];
        assert!(!host.scaled);
        close(host.whole_g, 25.684_931_506_849_315);
        close(host.idle_g, 22.541_202_910_958_904);
        close(host.held_g + host.idle_g, host.whole_g);
    }

    #[test]
    fn an_overcommitted_host_scales_every_vm_down_to_its_whole() {
        // Three VMs of 64 vCPUs and 192 GiB on the 96-vCPU, 256 GiB host.
        let big = || vm("x", Some(64), Some(196_608));
        let input = input(
            vec![big(), big(), big()],
            1,
            (0..3).map(|i| placement(i, Some(0), 3600.0)).collect(),
        );
        let (got, _) = amortize(&input, &[Ok(example_host())], W);
        let whole = example_host().rate_g_per_s * 3600.0;
        let host = &got.hosts[0];
        assert!(host.scaled);
        close(host.held_g, 3.0 * (64.0 / 96.0 + 0.75) / 2.0 * whole);
        assert_eq!(host.idle_g, 0.0);
        for part in &got.vms {
            close(part.as_ref().unwrap().grams, whole / 3.0);
        }
    }

    #[test]
    fn a_vm_with_a_placement_on_an_unknown_host_gets_nothing_never_a_part() {
        let input = input(
            vec![vm("m", Some(8), Some(32_768)), vm("n", None, Some(1024))],
            2,
            vec![
                placement(0, Some(0), 1800.0),
                placement(0, Some(1), 1800.0),
                placement(1, Some(0), 3600.0),
            ],
        );
        let rates = [Ok(example_host()), Err(Lack::Unmatched("cmp-01".into()))];
        let (got, lacks) = amortize(&input, &rates, W);
        assert_eq!(got.vms, vec![None, None]);
        assert_eq!(
            lacks,
            BTreeSet::from([Lack::Unmatched("cmp-01".into()), Lack::SizeUnknown])
        );
        // m still held a share of cmp-00 for its half hour.
        close(
            got.hosts[0].held_g,
            example_host().rate_g_per_s * 0.104_166_666_666_666_67 * 1800.0,
        );
    }

    #[test]
    fn a_migrated_vm_pays_each_hosts_rate_for_its_time_there() {
        let mut other = example_host();
        other.rate_g_per_s *= 3.0;
        other.capacity.vcpus = 48.0;
        let input = input(
            vec![vm("m", Some(8), Some(32_768))],
            2,
            vec![placement(0, Some(0), 1200.0), placement(0, Some(1), 2400.0)],
        );
        let (got, _) = amortize(&input, &[Ok(example_host()), Ok(other)], W);
        let r = example_host().rate_g_per_s;
        let want =
            r * (8.0 / 96.0 + 0.125) / 2.0 * 1200.0 + 3.0 * r * (8.0 / 48.0 + 0.125) / 2.0 * 2400.0;
        close(got.vms[0].as_ref().unwrap().grams, want);
    }
}
