//! The share models (`rapl-share`, `ipmi-share`) on inputs worked out by
//! hand from ENERGY.md's table, every `idle` policy, and proptest's
//! properties: conservation, non-negativity, scale invariance of CPU shares,
//! and a zero-CPU VM's idle-only share. The builtins run in the sandbox, as
//! in `extract`, and the host validates every result.

use std::collections::BTreeMap;

use proptest::prelude::*;
use wattson::runtime::{
    Attribution, AttributionInput, GpuHolding, GpuMode, GpuReading, Limits, Measured, Model, Param,
    ParamValue, Placement, Reading, Runtime, UnattributedReason, Vm, VmDetails, Window,
};

fn runtime() -> (tempfile::TempDir, Runtime) {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.path().to_owned())).unwrap();
    (cache, runtime)
}

fn params(idle: &str) -> Vec<Param> {
    vec![
        Param {
            name: "idle".into(),
            value: ParamValue::Choice(idle.into()),
        },
        Param {
            name: "idle_power".into(),
            value: ParamValue::Choice("auto".into()),
        },
    ]
}

fn reading(value: f64, covered_s: f64) -> Option<Reading> {
    Some(Reading {
        value,
        span_s: covered_s,
        covered_s,
    })
}

/// A VM: uuid, vCPUs, memory MB; a placement: VM, host, presence, CPU s, assigned.
struct Case {
    vms: Vec<(&'static str, u32, u64)>,
    hosts: Vec<&'static str>,
    placements: Vec<(u32, u32, f64, f64, bool)>,
    /// Per host: (E_h joules, covered s, idle watts).
    meters: Vec<(f64, f64, Option<f64>)>,
}

impl Case {
    fn input(&self) -> AttributionInput {
        AttributionInput {
            window: Window {
                start_ms: 1_764_460_800_000,
                end_ms: 1_764_464_400_000,
            },
            vms: self
                .vms
                .iter()
                .map(|&(uuid, vcpus, memory)| Vm {
                    uuid: uuid.into(),
                    vcpus: Some(vcpus),
                    memory_mb: Some(memory),
                })
                .collect(),
            details: vec![],
            hosts: self.hosts.iter().map(|h| (*h).to_owned()).collect(),
            placements: self
                .placements
                .iter()
                .map(|&(vm, host, presence_s, cpu_s, assigned)| Placement {
                    vm,
                    host: Some(host),
                    presence_s,
                    cpu_s: Some(cpu_s),
                    assigned,
                })
                .collect(),
            measurements: vec![
                Measured {
                    name: "energy".into(),
                    vms: vec![None; self.vms.len()],
                    hosts: self.meters.iter().map(|m| reading(m.0, m.1)).collect(),
                    placements: vec![],
                },
                Measured {
                    name: "cpu".into(),
                    vms: vec![None; self.vms.len()],
                    hosts: vec![None; self.hosts.len()],
                    placements: vec![None; self.placements.len()],
                },
                Measured {
                    name: "idle_power".into(),
                    vms: vec![None; self.vms.len()],
                    hosts: self
                        .meters
                        .iter()
                        .map(|m| m.2.and_then(|w| reading(w, m.1)))
                        .collect(),
                    placements: vec![],
                },
            ],
            gpus: vec![],
        }
    }
}

/// Joules per VM uuid (its placements summed), and unattributed joules per (host, reason).
type Split = (BTreeMap<String, f64>, BTreeMap<(String, String), f64>);

fn split(input: &AttributionInput, result: &Attribution) -> Split {
    let mut vms = BTreeMap::new();
    for e in &result.placements {
        let vm = input.placements[e.placement as usize].vm as usize;
        *vms.entry(input.vms[vm].uuid.clone()).or_insert(0.0) += e.joules;
    }
    let mut hosts = BTreeMap::new();
    for e in &result.unattributed {
        let key = (input.hosts[e.host as usize].clone(), reason(e.reason));
        *hosts.entry(key).or_insert(0.0) += e.joules;
    }
    (vms, hosts)
}

fn reason(r: UnattributedReason) -> String {
    match r {
        UnattributedReason::Idle => "idle",
        UnattributedReason::NoVms => "no-vms",
        UnattributedReason::NoCpu => "no-cpu",
        UnattributedReason::OtherModel => "other-model",
        UnattributedReason::NotVms => "not-vms",
        UnattributedReason::Other => "other",
    }
    .to_owned()
}

fn assert_split(got: &Split, vms: &[(&str, f64)], hosts: &[(&str, &str, f64)], what: &str) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    let want_vms: BTreeMap<String, f64> = vms.iter().map(|(u, j)| ((*u).into(), *j)).collect();
    assert_eq!(
        got.0.keys().collect::<Vec<_>>(),
        want_vms.keys().collect::<Vec<_>>(),
        "{what}: VMs"
    );
    for (uuid, want) in &want_vms {
        assert!(
            close(got.0[uuid], *want),
            "{what}: VM {uuid}: {} != {want}",
            got.0[uuid]
        );
    }
    let want_hosts: BTreeMap<(String, String), f64> = hosts
        .iter()
        .filter(|h| h.2 != 0.0)
        .map(|(h, r, j)| (((*h).into(), (*r).into()), *j))
        .collect();
    let got_hosts: BTreeMap<_, _> = got.1.iter().filter(|(_, j)| **j != 0.0).collect();
    assert_eq!(
        got_hosts.keys().copied().collect::<Vec<_>>(),
        want_hosts.keys().collect::<Vec<_>>(),
        "{what}: unattributed"
    );
    for (key, want) in &want_hosts {
        assert!(
            close(got.1[key], *want),
            "{what}: {key:?}: {} != {want}",
            got.1[key]
        );
    }
}

/// Window of 3,600 s.
/// * cmp-01: E = 1,000,000 J over 3,600 covered s, P_idle = 100 W, so
///   I = 360,000 J and D = 640,000 J. VMs a (2 vCPUs, 4,096 MB, 3,600 s,
///   3,000 CPU s), b (4, 8,192, 1,800 s, 1,000 CPU s) and c (2, 2,048,
///   3,600 s, no CPU): C = 4,000 CPU s.
/// * cmp-02: E = 500,000 J, its meter covered 3,000 s, P_idle = 50 W, so
///   I = 150,000 J, D = 350,000 J; its one VM d used no CPU (C = 0).
/// * cmp-03: E = 200,000 J and no VMs.
fn by_hand() -> Case {
    Case {
        vms: vec![
            ("a", 2, 4096),
            ("b", 4, 8192),
            ("c", 2, 2048),
            ("d", 1, 1024),
        ],
        hosts: vec!["cmp-01", "cmp-02", "cmp-03"],
        placements: vec![
            (0, 0, 3600.0, 3000.0, true),
            (1, 0, 1800.0, 1000.0, true),
            (2, 0, 3600.0, 0.0, true),
            (3, 1, 3600.0, 0.0, true),
        ],
        meters: vec![
            (1_000_000.0, 3600.0, Some(100.0)),
            (500_000.0, 3000.0, Some(50.0)),
            (200_000.0, 3600.0, Some(40.0)),
        ],
    }
}

/// An `idle` word, the VMs' joules, and what stays at each host (host, reason, joules).
type Row = (
    &'static str,
    Vec<(&'static str, f64)>,
    Vec<(&'static str, &'static str, f64)>,
);

#[test]
fn every_idle_policy_splits_as_energy_md_says() {
    let (_cache, runtime) = runtime();
    let case = by_hand();
    let input = case.input();
    // Every table row: the VMs' joules, then what stays at each host.
    #[rustfmt::skip]
    let table: [Row; 5] = [
        // none: E x cpu/C. a = 1e6 x 3000/4000, b = 1e6 x 1000/4000; cmp-02 has C = 0.
        ("none", vec![("a", 750_000.0), ("b", 250_000.0), ("c", 0.0), ("d", 0.0)],
         vec![("cmp-02", "no-cpu", 500_000.0), ("cmp-03", "no-vms", 200_000.0)]),
        // host: D x cpu/C, I at the host: a = 640,000 x 0.75, b = 640,000 x 0.25.
        ("host", vec![("a", 480_000.0), ("b", 160_000.0), ("c", 0.0), ("d", 0.0)],
         vec![("cmp-01", "idle", 360_000.0), ("cmp-02", "idle", 150_000.0),
              ("cmp-02", "no-cpu", 350_000.0), ("cmp-03", "no-vms", 200_000.0)]),
        // equal: presence weights 3600 : 1800 : 3600 of I = 360,000 -> 144,000, 72,000, 144,000;
        // on cmp-02, d takes all of I = 150,000 and D = 350,000 stays (C = 0).
        ("equal", vec![("a", 624_000.0), ("b", 232_000.0), ("c", 144_000.0), ("d", 150_000.0)],
         vec![("cmp-02", "no-cpu", 350_000.0), ("cmp-03", "no-vms", 200_000.0)]),
        // vcpus: 2x3600 : 4x1800 : 2x3600, a third each = 120,000.
        ("vcpus", vec![("a", 600_000.0), ("b", 280_000.0), ("c", 120_000.0), ("d", 150_000.0)],
         vec![("cmp-02", "no-cpu", 350_000.0), ("cmp-03", "no-vms", 200_000.0)]),
        // memory: 4096x3600 : 8192x1800 : 2048x3600 = 0.4 : 0.4 : 0.2.
        ("memory", vec![("a", 624_000.0), ("b", 304_000.0), ("c", 72_000.0), ("d", 150_000.0)],
         vec![("cmp-02", "no-cpu", 350_000.0), ("cmp-03", "no-vms", 200_000.0)]),
    ];
    for model in ["rapl-share", "ipmi-share"] {
        let model = runtime.load_model(model).unwrap();
        assert_eq!(model.info().conservation.as_ref().unwrap().tolerance, 1e-9);
        for (idle, vms, hosts) in &table {
            let result = model.attribute(&input, &params(idle)).unwrap();
            let what = format!("{} idle={idle}", model.info().name);
            assert_split(&split(&input, &result), vms, hosts, &what);
        }
    }
}

#[test]
fn vms_another_model_takes_keep_their_share_unattributed() {
    let (_cache, runtime) = runtime();
    let mut case = by_hand();
    case.placements[1].4 = false; // b goes to another model by the rules
    let input = case.input();
    let model = runtime.load_model("rapl-share").unwrap();
    let result = model.attribute(&input, &params("vcpus")).unwrap();
    // C and the idle weights still count b: a and c keep what they had; b's
    // 280,000 J stays at cmp-01 with reason other-model.
    assert_split(
        &split(&input, &result),
        &[("a", 600_000.0), ("c", 120_000.0), ("d", 150_000.0)],
        &[
            ("cmp-01", "other-model", 280_000.0),
            ("cmp-02", "no-cpu", 350_000.0),
            ("cmp-03", "no-vms", 200_000.0),
        ],
        "b to another model",
    );
}

#[test]
fn idle_power_above_the_hosts_power_is_capped_and_unknown_idle_is_zero() {
    let (_cache, runtime) = runtime();
    let mut case = by_hand();
    // 400 W x 3,600 s = 1.44 MJ > E = 1 MJ on cmp-01: I = E, so D = 0 and
    // everything goes by vCPUs x presence (a third each). No idle power for
    // cmp-02: I = 0, all of E is dynamic, and C = 0 keeps it at the host.
    case.meters[0].2 = Some(400.0);
    case.meters[1].2 = None;
    let input = case.input();
    let model = runtime.load_model("ipmi-share").unwrap();
    let result = model.attribute(&input, &params("vcpus")).unwrap();
    let third = 1_000_000.0 / 3.0;
    assert_split(
        &split(&input, &result),
        &[("a", third), ("b", third), ("c", third), ("d", 0.0)],
        &[
            ("cmp-02", "no-cpu", 500_000.0),
            ("cmp-03", "no-vms", 200_000.0),
        ],
        "capped idle",
    );
}

#[test]
fn a_migrated_vm_gets_its_part_from_each_host() {
    let (_cache, runtime) = runtime();
    let mut case = by_hand();
    // d ran 1,800 s on cmp-01 (500 CPU s) before moving to cmp-02 (1,800 s, 0 CPU s).
    case.placements[3] = (3, 1, 1800.0, 0.0, true);
    case.placements.insert(3, (3, 0, 1800.0, 500.0, true));
    let input = case.input();
    let model = runtime.load_model("rapl-share").unwrap();
    let result = model.attribute(&input, &params("equal")).unwrap();
    // cmp-01: C = 4,500; D = 640,000; presence 3600 : 1800 : 3600 : 1800 of
    // I = 360,000 (sum 10,800). cmp-02: d alone, C = 0: I = 150,000 to d.
    let dyn_ = |cpu: f64| 640_000.0 * cpu / 4500.0;
    let idle = |presence: f64| 360_000.0 * presence / 10_800.0;
    assert_split(
        &split(&input, &result),
        &[
            ("a", dyn_(3000.0) + idle(3600.0)),
            ("b", dyn_(1000.0) + idle(1800.0)),
            ("c", idle(3600.0)),
            ("d", dyn_(500.0) + idle(1800.0) + 150_000.0),
        ],
        &[
            ("cmp-02", "no-cpu", 350_000.0),
            ("cmp-03", "no-vms", 200_000.0),
        ],
        "migration",
    );
}

/// A random host: its energy, covered seconds, idle watts, and VMs as
/// (CPU s, presence s, vCPUs, memory MB).
type HostCase = (f64, f64, f64, Vec<(f64, f64, u32, u64)>);

fn host_case() -> impl Strategy<Value = HostCase> {
    (
        1.0..5e6f64,
        60.0..3600.0f64,
        0.0..300.0f64,
        prop::collection::vec(
            (
                prop_oneof![Just(0.0), 0.0..7200.0f64],
                1.0..3600.0f64,
                1u32..64,
                256u64..262_144,
            ),
            0..6,
        ),
    )
}

fn random_input(hosts: &[HostCase], cpu_scale: f64) -> AttributionInput {
    let mut vms = Vec::new();
    let mut placements = Vec::new();
    for (h, (_, _, _, list)) in hosts.iter().enumerate() {
        for &(cpu, presence, vcpus, memory) in list {
            placements.push(Placement {
                vm: vms.len() as u32,
                host: Some(h as u32),
                presence_s: presence,
                cpu_s: Some(cpu * cpu_scale),
                assigned: true,
            });
            vms.push(Vm {
                uuid: format!("vm-{}", vms.len()),
                vcpus: Some(vcpus),
                memory_mb: Some(memory),
            });
        }
    }
    let n = vms.len();
    AttributionInput {
        window: Window {
            start_ms: 0,
            end_ms: 3_600_000,
        },
        vms,
        details: vec![],
        hosts: (0..hosts.len()).map(|h| format!("h{h}")).collect(),
        placements,
        measurements: vec![
            Measured {
                name: "energy".into(),
                vms: vec![None; n],
                hosts: hosts.iter().map(|h| reading(h.0, h.1)).collect(),
                placements: vec![],
            },
            Measured {
                name: "cpu".into(),
                vms: vec![None; n],
                hosts: vec![None; hosts.len()],
                // One placement per VM.
                placements: vec![None; n],
            },
            Measured {
                name: "idle_power".into(),
                vms: vec![None; n],
                hosts: hosts.iter().map(|h| reading(h.2, h.1)).collect(),
                placements: vec![],
            },
        ],
        gpus: vec![],
    }
}

fn joules(input: &AttributionInput, result: &Attribution) -> Vec<f64> {
    let mut out = vec![0.0; input.placements.len()];
    for e in &result.placements {
        out[e.placement as usize] += e.joules;
    }
    out
}

fn share_model() -> &'static (tempfile::TempDir, Runtime, Model) {
    static MODEL: std::sync::OnceLock<(tempfile::TempDir, Runtime, Model)> =
        std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let (cache, runtime) = runtime();
        let model = runtime.load_model("rapl-share").unwrap();
        (cache, runtime, model)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Σ VM + unattributed = E_h per host (the host's own check passes, and
    /// it is recomputed here), nothing negative; scaling every CPU time by
    /// k changes no share; a VM with no CPU time gets exactly its idle share.
    #[test]
    fn share_properties(
        hosts in prop::collection::vec(host_case(), 1..5),
        idle in prop::sample::select(vec!["none", "host", "equal", "vcpus", "memory"]),
        scale in 0.01..100.0f64,
    ) {
        let (_, _, model) = share_model();
        let input = random_input(&hosts, 1.0);
        let result = model.attribute(&input, &params(idle)).unwrap();
        let given = joules(&input, &result);
        prop_assert!(given.iter().all(|j| *j >= 0.0));
        prop_assert!(result.unattributed.iter().all(|u| u.joules >= 0.0));
        for (h, host) in hosts.iter().enumerate() {
            let on_host: f64 = input.placements.iter().zip(&given)
                .filter(|(p, _)| p.host == Some(h as u32)).map(|(_, j)| j).sum();
            let left: f64 = result.unattributed.iter()
                .filter(|u| u.host == h as u32).map(|u| u.joules).sum();
            prop_assert!(((on_host + left) - host.0).abs() <= 1e-9 * host.0);
        }
        let scaled = random_input(&hosts, scale);
        let again = joules(&scaled, &model.attribute(&scaled, &params(idle)).unwrap());
        for (a, b) in given.iter().zip(&again) {
            prop_assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} != {b} after x{scale}");
        }
        // Zero-CPU VMs: I_h x weight / Σ weights, nothing of D_h.
        let mut first = 0;
        for (e_h, covered, watts, list) in &hosts {
            let i_h = (watts * covered).min(*e_h);
            let weight = |v: &(f64, f64, u32, u64)| match idle {
                "equal" => v.1,
                "vcpus" => v.1 * f64::from(v.2),
                "memory" => v.1 * v.3 as f64,
                _ => 0.0,
            };
            let total: f64 = list.iter().map(weight).sum();
            for (k, v) in list.iter().enumerate() {
                if v.0 == 0.0 {
                    let want = if total > 0.0 { i_h * weight(v) / total } else { 0.0 };
                    let got = given[first + k];
                    prop_assert!((got - want).abs() <= 1e-9 * e_h, "zero-CPU VM: {got} != {want}");
                }
            }
            first += list.len();
        }
    }
}

#[test]
fn tdp_estimate_follows_cloud_carbon_footprint() {
    let (_cache, runtime) = runtime();
    let model = runtime.load_model("tdp-estimate").unwrap();
    assert_eq!(model.info().quality, wattson::runtime::Quality::Estimated);
    let vm = |uuid: &str, vcpus: Option<u32>, memory_mb: u64| Vm {
        uuid: uuid.into(),
        vcpus,
        memory_mb: Some(memory_mb),
    };
    let details = |flavor: Option<&str>| VmDetails {
        name: None,
        project_id: None,
        project_name: None,
        user_id: None,
        user_name: None,
        flavor: flavor.map(Into::into),
        disk_gb: None,
        started_ms: None,
        ended_ms: None,
        labels: vec![],
    };
    let placement = |vm: u32, host: u32, presence_s: f64, cpu_s: f64| Placement {
        vm,
        host: Some(host),
        presence_s,
        cpu_s: Some(cpu_s),
        assigned: true,
    };
    let input = AttributionInput {
        window: Window {
            start_ms: 0,
            end_ms: 3_600_000,
        },
        vms: vec![
            vm("a", Some(2), 4096),
            vm("b", Some(4), 8192),
            vm("c", Some(1), 1024),
            vm("d", None, 1024),
        ],
        details: vec![
            details(None),
            details(Some("g1.xlarge")),
            details(Some("m1.large")),
            details(None),
        ],
        hosts: vec!["cmp-01".into(), "gpu-01".into(), "cmp-02".into()],
        placements: vec![
            placement(0, 0, 3600.0, 3600.0),
            placement(1, 1, 1800.0, 9000.0),
            placement(2, 2, 3600.0, 0.0),
            placement(3, 0, 3600.0, 100.0),
        ],
        measurements: vec![Measured {
            name: "cpu".into(),
            vms: vec![None; 4],
            hosts: vec![None; 3],
            placements: vec![None; 4],
        }],
        gpus: vec![],
    };
    let table = |entries: &[(&str, f64)]| {
        ParamValue::Table(entries.iter().map(|(k, v)| ((*k).into(), *v)).collect())
    };
    let params = vec![
        Param {
            name: "min_w".into(),
            value: table(&[("gpu-*", 2.0), ("flavor:m1.*", 1.0)]),
        },
        Param {
            name: "max_w".into(),
            value: table(&[("gpu-*", 10.0)]),
        },
        Param {
            name: "memory_w_per_gb".into(),
            value: ParamValue::Number(0.392),
        },
    ];
    let result = model.attribute(&input, &params).unwrap();
    // a: util 3600 / (2 x 3600) = 0.5 on CCF's defaults:
    //    2 x 3600 x (0.74 + 0.5 x 2.76) = 15,264, + 4 GB x 3600 x 0.392 = 5,644.8.
    // b: util 9000 / (4 x 1800) = 1.25, clamped to 1, gpu-* watts:
    //    4 x 1800 x 10 = 72,000, + 8 GB x 1800 x 0.392 = 5,644.8.
    // c: idle, flavor m1.* for min_w (1.0), CCF's max_w:
    //    1 x 3600 x 1.0 = 3,600, + 1 GB x 3600 x 0.392 = 1,411.2.
    // d: no vCPU count, no estimate.
    assert_split(
        &split(&input, &result),
        &[("a", 20_908.8), ("b", 77_644.8), ("c", 5_011.2)],
        &[],
        "tdp-estimate",
    );
}

#[test]
fn scaphandre_keeps_other_models_vms_apart_from_the_hosts_own_power() {
    let (_cache, runtime) = runtime();
    let model = runtime.load_model("scaphandre").unwrap();
    let input = |host_joules: f64| AttributionInput {
        window: Window {
            start_ms: 0,
            end_ms: 3_600_000,
        },
        vms: ["a", "b"]
            .map(|uuid| Vm {
                uuid: uuid.into(),
                vcpus: Some(1),
                memory_mb: None,
            })
            .to_vec(),
        details: vec![],
        hosts: vec!["cmp-01".into()],
        // b is given to another model by the rules.
        placements: [(0, true), (1, false)]
            .map(|(vm, assigned)| Placement {
                vm,
                host: Some(0),
                presence_s: 3600.0,
                cpu_s: None,
                assigned,
            })
            .to_vec(),
        measurements: vec![
            Measured {
                name: "vm_power".into(),
                vms: vec![reading(100.0, 3600.0), reading(50.0, 3600.0)],
                hosts: vec![None],
                placements: vec![reading(100.0, 3600.0), reading(50.0, 3600.0)],
            },
            Measured {
                name: "host_power".into(),
                vms: vec![None, None],
                hosts: vec![reading(host_joules, 3600.0)],
                placements: vec![],
            },
        ],
        gpus: vec![],
    };
    let params = [("exe", "qemu-kvm"), ("host_label", "instance")]
        .map(|(name, value)| Param {
            name: name.into(),
            value: ParamValue::Text(value.into()),
        })
        .to_vec();
    // 400 J at the host: a's 100 J, b's 50 J belong to its model, 250 J are the host's own.
    let host = input(400.0);
    let result = model.attribute(&host, &params).unwrap();
    assert_split(
        &split(&host, &result),
        &[("a", 100.0)],
        &[
            ("cmp-01", "other-model", 50.0),
            ("cmp-01", "not-vms", 250.0),
        ],
        "scaphandre with rules",
    );
    // 120 J at the host, 150 J of VMs (Scaphandre issue #163): a keeps its
    // 100 J, b's model is left only the 20 J the host has beyond a's.
    let short = input(120.0);
    let result = model.attribute(&short, &params).unwrap();
    assert_split(
        &split(&short, &result),
        &[("a", 100.0)],
        &[("cmp-01", "other-model", 20.0)],
        "scaphandre excess",
    );
}

// ---------------------------------------------------------------- GPUs

fn held(placement: u32, mode: GpuMode, share: f64, joules: f64) -> GpuHolding {
    GpuHolding {
        placement,
        mode,
        share,
        profile: None,
        held_s: 0.0,
        joules,
    }
}

fn card(host: u32, bus_id: &str, joules: f64, holdings: Vec<GpuHolding>) -> GpuReading {
    GpuReading {
        host,
        bus_id: bus_id.into(),
        gpu_uuid: None,
        energy: reading(joules, 3600.0).unwrap(),
        counter: true,
        holdings,
    }
}

/// A 3,600 s window scraped every 15 s from −10 s: 240 counter pairs.
const PAIRS: f64 = 240.0;

/// `case`'s input with the GPUs of ENERGY.md's GPU worked example on
/// `by_hand()`'s hosts:
/// * cmp-01: card A at 300 W (4,500 J a pair) held by a all window; card B at
///   200 W (3,000 J a pair): a holds 120 pairs, pair [1790, 1805] is nobody's,
///   c holds the other 119, one of which is a driver reload counting 1,200 J;
/// * cmp-02: MIG card C at 250 W, G = 7 slices: d holds `3g.40gb` (3/7);
/// * cmp-03: a card idling at 40 W that nobody holds.
fn with_gpus(case: &Case) -> AttributionInput {
    let pair_b = 15.0 * 200.0;
    let (a_b, c_b) = (120.0 * pair_b, 118.0 * pair_b + 1200.0);
    AttributionInput {
        gpus: vec![
            card(
                0,
                "00000000:3B:00.0",
                PAIRS * 15.0 * 300.0,
                vec![held(0, GpuMode::Passthrough, 1.0, PAIRS * 15.0 * 300.0)],
            ),
            card(
                0,
                "00000000:AF:00.0",
                a_b + pair_b + c_b,
                vec![
                    held(0, GpuMode::Passthrough, 1.0, a_b),
                    held(2, GpuMode::Passthrough, 1.0, c_b),
                ],
            ),
            card(
                1,
                "00000000:17:00.0",
                250.0 * 3600.0,
                vec![held(3, GpuMode::Mig, 3.0 / 7.0, 250.0 * 3600.0)],
            ),
            card(2, "00000000:65:00.0", 40.0 * 3600.0, vec![]),
        ],
        ..case.input()
    }
}

/// GPU joules per VM uuid.
fn gpu_split(input: &AttributionInput, result: &Attribution) -> BTreeMap<String, f64> {
    let mut vms = BTreeMap::new();
    for e in &result.placements {
        let vm = input.placements[e.placement as usize].vm as usize;
        *vms.entry(input.vms[vm].uuid.clone()).or_insert(0.0) += e.gpu_joules;
    }
    vms
}

fn with_gpu_param(idle: &str, gpu: &str) -> Vec<Param> {
    let mut p = params(idle);
    p.push(Param {
        name: "gpu".into(),
        value: ParamValue::Choice(gpu.into()),
    });
    p
}

/// The GPU parts of the worked example: a holds A and half of B, c the
/// rest of B but the pair nobody held, d 3/7 of C.
fn worked_gpu_parts() -> [(&'static str, f64); 4] {
    [
        ("a", 1_080_000.0 + 360_000.0),
        ("b", 0.0),
        ("c", 355_200.0),
        ("d", 900_000.0 * 3.0 / 7.0),
    ]
}

#[test]
fn rapl_share_adds_each_vms_gpus_and_conserves_both_laws() {
    let (_cache, runtime) = runtime();
    let model = runtime.load_model("rapl-share").unwrap();
    let case = by_hand();
    let input = with_gpus(&case);
    // The host checks both laws per host (E_h + G_h, and G_h) before this.
    let result = model
        .attribute(&input, &with_gpu_param("host", "passthrough"))
        .unwrap();
    // `idle = "host"` without GPUs: a 640,000 x 3/4, b 640,000 x 1/4; then
    // each VM's GPUs on top.
    let gpu = worked_gpu_parts();
    assert_split(
        &split(&input, &result),
        &[
            ("a", 480_000.0 + gpu[0].1),
            ("b", 160_000.0),
            ("c", gpu[2].1),
            ("d", gpu[3].1),
        ],
        &[
            ("cmp-01", "idle", 360_000.0),
            ("cmp-01", "no-vms", 3_000.0),
            ("cmp-02", "idle", 150_000.0),
            ("cmp-02", "no-cpu", 350_000.0),
            ("cmp-02", "no-vms", 900_000.0 * 4.0 / 7.0),
            ("cmp-03", "no-vms", 200_000.0 + 40.0 * 3600.0),
        ],
        "rapl-share with GPUs",
    );
    let got = gpu_split(&input, &result);
    for (uuid, want) in gpu {
        assert!(
            (got[uuid] - want).abs() <= 1e-9 * want.max(1.0),
            "{uuid}: {}",
            got[uuid]
        );
    }
}

#[test]
fn ipmi_share_splits_the_wall_less_the_gpus() {
    let (_cache, runtime) = runtime();
    let model = runtime.load_model("ipmi-share").unwrap();
    let mut case = by_hand();
    // Walls that hold the cards: 3,000,000 J on cmp-01, 1,500,000 J on cmp-02.
    case.meters[0].0 = 3_000_000.0;
    case.meters[1].0 = 1_500_000.0;
    let input = with_gpus(&case);
    let result = model
        .attribute(&input, &with_gpu_param("host", "passthrough"))
        .unwrap();
    // cmp-01: G = A + B = 1,080,000 + 718,200; the CPUs' part 1,201,800
    // less I = 360,000 is split 3 : 1 by CPU time.
    let d_01 = 3_000_000.0 - (1_080_000.0 + 718_200.0) - 360_000.0;
    assert_eq!(d_01, 841_800.0);
    // cmp-02: 1,500,000 − 900,000 − I 150,000 stays (no CPU time);
    // cmp-03: 200,000 J of wall of which its idle card used 144,000.
    let gpu = worked_gpu_parts();
    assert_split(
        &split(&input, &result),
        &[
            ("a", d_01 * 0.75 + gpu[0].1),
            ("b", d_01 * 0.25),
            ("c", gpu[2].1),
            ("d", gpu[3].1),
        ],
        &[
            ("cmp-01", "idle", 360_000.0),
            ("cmp-01", "no-vms", 3_000.0),
            ("cmp-02", "idle", 150_000.0),
            ("cmp-02", "no-cpu", 1_500_000.0 - 900_000.0 - 150_000.0),
            ("cmp-02", "no-vms", 900_000.0 * 4.0 / 7.0),
            ("cmp-03", "no-vms", 200_000.0),
        ],
        "ipmi-share with GPUs",
    );
}

/// `gpu = "ignore"`, or GPUs not gathered (no [gpu]: `gpus` empty), is the
/// answer without GPUs, byte for byte.
#[test]
fn share_models_ignoring_gpus_answer_as_without_them() {
    let (_cache, runtime) = runtime();
    let case = by_hand();
    for name in ["rapl-share", "ipmi-share"] {
        let model = runtime.load_model(name).unwrap();
        let without = model.attribute(&case.input(), &params("vcpus")).unwrap();
        let ignoring = model
            .attribute(&with_gpus(&case), &with_gpu_param("vcpus", "ignore"))
            .unwrap();
        assert_eq!(format!("{ignoring:?}"), format!("{without:?}"), "{name}");
        assert!(without.placements.iter().all(|e| e.gpu_joules == 0.0));
        let none_gathered = model
            .attribute(&case.input(), &with_gpu_param("vcpus", "passthrough"))
            .unwrap();
        assert_eq!(
            format!("{none_gathered:?}"),
            format!("{without:?}"),
            "{name}"
        );
    }
}
