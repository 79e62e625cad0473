//! The daemon's GPUs (`[gpu]`, issue 34): `[gpu] command` printing
//! nvidia-smi's CSV (a file the test rewrites, `cat` as the command: the
//! daemon's own command path), the libvirt test driver's domains with
//! `<hostdev>`s (a hand-over by swapping the node file between ticks: the
//! driver cannot attach devices), and a sysfs fixture tree with a vGPU, a
//! MIG-backed vGPU and the PCI classes of a vfio-bound card and a NIC.
//! Expected joules come from the test's own arithmetic on the readings it
//! wrote: C1 of each card's counter (a drop counts its new value), else the
//! trapezoid of two power readings.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::{Arc, Mutex};

use wattson::daemon::{DaemonState, MetricsFormat, Shared, render_metrics, sources};
use wattson::pipeline::Plan;
use wattson::policy::Policy;
use wattson::runtime::{Limits, Runtime};
use wattson::sources::libvirt::{CpuTimes, LibvirtError};

use super::daemon::{RUNNING, daemon_policy, node_copy};
use super::data::rel_err;
use super::rapl::{RANGE, ZONES, bump, powercap_tree};

/// CPU seconds the test sets (the test driver's are the clock).
#[derive(Clone, Default)]
struct FedCpu(Arc<Mutex<BTreeMap<String, f64>>>);

impl CpuTimes for FedCpu {
    fn cpu_seconds(&self) -> Result<BTreeMap<String, f64>, LibvirtError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

const A: &str = "00000000:3B:00.0"; // passthrough to R0, counter and power
const B: &str = "00000000:AF:00.0"; // passthrough, handed from R2 to R3
const C: &str = "00000000:D8:00.0"; // MIG-backed vGPU GRID A100-3-20C of R1; driver reload
const D: &str = "00000000:5E:00.0"; // held by nobody, power only
const E: &str = "00000000:86:00.0"; // time-sliced vGPU GRID P40-4C of R3, power only
const F: &str = "00000000:18:00.0"; // passthrough to R0, listed until bound to vfio-pci

pub(super) const M1: &str = "0b5e1a2c-3d4f-4a5b-8c6d-7e8f9a0b1c2d";
pub(super) const M2: &str = "1c6f2b3d-4e50-4b6c-9d7e-8f9a0b1c2d3e";

/// A card as the meter prints it at tick k: energy (mJ) and power (W);
/// `None` prints `[N/A]` (or `[Not Supported]`).
type Reading = (Option<f64>, Option<f64>);

const TICKS: usize = 7;

fn readings(card: &str, k: usize) -> Option<Reading> {
    let k_f = k as f64;
    match card {
        A => Some((Some(9.0e9 + 3.0e6 * k_f), Some(300.0))),
        B => Some((Some(1.0e6 + 2.0e6 * k_f), Some(200.0 + k_f))),
        C => {
            let mj = [
                5.0e9,
                5.0e9 + 2.5e6,
                5.0e9 + 5.0e6,
                1.2e6,
                3.7e6,
                6.2e6,
                8.7e6,
            ];
            Some((Some(mj[k]), None))
        }
        D => Some((None, Some(100.0 + 10.0 * k_f))),
        E => Some((None, Some(60.0 + 1.5 * k_f))),
        // Bound to vfio-pci from tick 2 on: the host driver lists it no more.
        F => (k < 2).then_some((None, Some(30.0))),
        _ => unreachable!(),
    }
}

fn gpu_uuid(card: &str) -> String {
    format!("GPU-{}", card[9..11].to_lowercase())
}

/// The meter's CSV at tick k, with its header (columns found by name).
fn csv(k: usize) -> String {
    let mut out = "pci.bus_id, uuid, total_energy_consumption [mJ], power.draw [W]\n".to_owned();
    for card in [A, B, C, D, E, F] {
        let Some((mj, w)) = readings(card, k) else {
            continue;
        };
        let na = if card == E {
            "[Not Supported]"
        } else {
            "[N/A]"
        };
        let mj = mj.map_or(na.to_owned(), |v| format!("{v}"));
        let w = w.map_or("[N/A]".to_owned(), |v| format!("{v:.2}"));
        out.push_str(&format!("{card}, {}, {mj}, {w}\n", gpu_uuid(card)));
    }
    out
}

/// A card's energy between ticks a and b (10 s apart a tick), by the
/// rules: the counter where both readings have it, a drop counting its
/// new value; else the trapezoid of the two powers; else none.
fn expected_joules(card: &str, a: usize, b: usize) -> Option<f64> {
    let (p, c) = (readings(card, a)?, readings(card, b)?);
    match (p.0, c.0) {
        (Some(p), Some(c)) if c >= p => Some((c - p) / 1000.0),
        (Some(_), Some(c)) => Some(c / 1000.0),
        _ => Some((p.1? + c.1?) / 2.0 * (t(b) - t(a)) as f64 / 1000.0),
    }
}

/// A sysfs tree: mdev M1 (`GRID A100-3-20C`, 2 per card) on C, M2 (`GRID
/// P40-4C`, 6 per card) on E, and PCI classes: F a display controller, a
/// NIC at 0000:01:00.0.
pub(super) fn sysfs(root: &Path) {
    for (uuid, card, kind, name, max) in [
        (M1, "0000:d8:00.0", "nvidia-700", "GRID A100-3-20C", 2),
        (M2, "0000:86:00.0", "nvidia-50", "GRID P40-4C", 6),
    ] {
        mdev_device(root, uuid, card, kind, name, max);
    }
    for (address, class) in [("0000:18:00.0", "0x030200"), ("0000:01:00.0", "0x020000")] {
        let dir = root.join("bus/pci/devices").join(address);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("class"), format!("{class}\n")).unwrap();
    }
}

/// Mdev `uuid` on `card` (sysfs' address), of type `kind` named `name`,
/// `max` per card.
pub(super) fn mdev_device(root: &Path, uuid: &str, card: &str, kind: &str, name: &str, max: u32) {
    let card = root.join("devices/pci0000:00").join(card);
    let device = card.join(uuid);
    let kind = card.join("mdev_supported_types").join(kind);
    std::fs::create_dir_all(&device).unwrap();
    std::fs::create_dir_all(&kind).unwrap();
    std::fs::write(kind.join("name"), format!("{name}\n")).unwrap();
    std::fs::write(
        kind.join("description"),
        format!("num_heads=1, frl_config=60, framebuffer=4096M, max_instance={max}\n"),
    )
    .unwrap();
    symlink(&kind, device.join("mdev_type")).unwrap();
    std::fs::create_dir_all(root.join("bus/mdev/devices")).unwrap();
    symlink(&device, root.join("bus/mdev/devices").join(uuid)).unwrap();
}

pub(super) fn pci(bus: u8) -> String {
    format!(
        "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>\
         <source><address domain='0x0000' bus='{bus:#04x}' slot='0x00' function='0x0'/></source>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></hostdev>"
    )
}

pub(super) fn mdev(uuid: &str) -> String {
    format!(
        "<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>\
         <source><address uuid='{uuid}'/></source></hostdev>"
    )
}

/// The node file with `<devices>` given to the named domains.
fn write_node(node: &Path, original: &str, devices: &[(&str, Vec<String>)]) {
    let mut text = original.to_owned();
    for (name, hostdevs) in devices {
        let at = text.find(&format!("<name>{name}</name>")).unwrap();
        let end = at + text[at..].find("</domain>").unwrap();
        text.insert_str(
            end,
            &format!("<devices>{}</devices>\n  ", hostdevs.concat()),
        );
    }
    std::fs::write(node, text).unwrap();
}

/// The domains' hostdevs before (`handed = false`) and after B's hand-over.
fn devices(handed: bool) -> Vec<(&'static str, Vec<String>)> {
    let mut r3 = vec![mdev(M2)];
    let mut r2 = Vec::new();
    if handed { &mut r3 } else { &mut r2 }.push(pci(0xaf));
    vec![
        // A, F and a NIC, which is no GPU.
        ("instance-00000001", vec![pci(0x3b), pci(0x18), pci(0x01)]),
        ("instance-00000003", vec![mdev(M1)]),
        ("one-42", r2),
        ("plain-vm", r3),
    ]
}

fn engine(policy: &Path, cpu: &FedCpu, cache: &Path) -> (DaemonState, Arc<Shared>) {
    let policy = Policy::load(policy).unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.to_owned())).unwrap();
    let bound = wattson::policy::bind(&policy, &runtime).unwrap();
    let mut sources = sources(&policy, Plan::new(&bound).measurements());
    sources.cpu_times = Some(Box::new(cpu.clone()));
    let shared = Shared::new(100, None);
    let state =
        DaemonState::new(policy, bound, sources, "cmp-01".into(), Arc::clone(&shared)).unwrap();
    (state, shared)
}

fn promtool_check(scrape: &str) {
    use std::io::Write as _;
    if !super::support::require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "promtool check metrics: {}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(super) fn lines_of<'a>(scrape: &'a str, metric: &str) -> BTreeSet<&'a str> {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .collect()
}

/// The model of a run of the seven ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    /// `rapl-share`, `gpu` left at its default (`passthrough`).
    Rapl,
    /// `rapl-share` with `gpu = "ignore"`.
    RaplIgnoringGpus,
    /// `ipmi-share` (its default `passthrough`), the wall power holding the cards.
    Ipmi,
}

/// Ship windows of 30 s: the ticks start 25 s before a window's edge.
const SHIP_MS: i64 = 30_000;
const EDGE_MS: i64 = 1_800_000_000_000;

/// When tick k is taken, ms.
fn t(k: usize) -> i64 {
    EDGE_MS - 25_000 + 10_000 * k as i64
}

/// The GPU reading at tick 5 fails (the command's file is gone).
fn fails(k: usize) -> bool {
    k == 5
}

/// B goes from one-42 to plain-vm between ticks 2 and 3.
fn handed(k: usize) -> bool {
    k >= 3
}

/// The cards (and shares) VM `vm` (an index of RUNNING) holds at tick k,
/// as [`devices`] writes them.
fn held(vm: usize, k: usize) -> Vec<(&'static str, f64)> {
    match vm {
        0 => vec![(A, 1.0), (F, 1.0)],
        1 => vec![(C, 3.0 / 7.0)],
        2 if !handed(k) => vec![(B, 1.0)],
        3 if handed(k) => vec![(E, 1.0 / 6.0), (B, 1.0)],
        3 => vec![(E, 1.0 / 6.0)],
        _ => Vec::new(),
    }
}

/// Each VM's cumulative CPU seconds at tick k.
fn cpu(vm: usize, k: usize) -> f64 {
    100.0 + (1..=k).map(|j| 0.5 * (1 + vm + j % 3) as f64).sum::<f64>()
}

/// A RAPL zone's increment at tick j, µJ (package-1 wraps at the first).
fn rapl_inc(zone: usize, j: usize) -> u64 {
    (120 + 15 * j as u64 + 40 * zone as u64) * 1_000_000 + 123_457
}

/// A zone's `energy_uj` at tick k.
fn rapl_uj(zone: usize, k: usize) -> u64 {
    (ZONES[zone].2 + (1..=k).map(|j| rapl_inc(zone, j)).sum::<u64>()) % RANGE
}

/// The wall power at tick k, W (above every card's together).
fn wall_w(k: usize) -> f64 {
    1500.0 + 20.0 * k as f64 - 3.0 * (k % 2) as f64
}

/// The host meter's energy from tick a to b: the RAPL zones that make up
/// host energy (never core), or the two wall-power readings' trapezoid.
fn host_joules(model: Model, a: usize, b: usize) -> f64 {
    match model {
        Model::Ipmi => (wall_w(a) + wall_w(b)) / 2.0 * (t(b) - t(a)) as f64 / 1000.0,
        _ => {
            (0..ZONES.len())
                .filter(|&z| ZONES[z].1 != "core")
                .flat_map(|z| (a + 1..=b).map(move |j| rapl_inc(z, j)))
                .sum::<u64>() as f64
                / 1e6
        }
    }
}

/// Consecutive used samples: every tick but a failed one where a model
/// reads `gpu` (the sample fails); the GPUs' pairs skip it in any case.
fn pairs(skip_failed: bool) -> Vec<(usize, usize)> {
    let used: Vec<usize> = (0..TICKS).filter(|&k| !skip_failed || !fails(k)).collect();
    used.windows(2).map(|w| (w[0], w[1])).collect()
}

/// What VM `vm` gets of the cards from tick a to b: each card's joules ×
/// its share, where it holds the card at both ends.
fn vm_gpu_joules(vm: usize, a: usize, b: usize) -> f64 {
    held(vm, b)
        .into_iter()
        .filter(|h| held(vm, a).contains(h))
        .filter_map(|(card, share)| Some(expected_joules(card, a, b)? * share))
        .sum()
}

/// Every card's joules from tick a to b (G_h).
fn cards_joules(a: usize, b: usize) -> f64 {
    [A, B, C, D, E, F]
        .into_iter()
        .filter_map(|card| expected_joules(card, a, b))
        .sum()
}

/// VM `vm`'s joules from tick a to b by the model (`idle = "none"`): the
/// host energy split by CPU time (without the cards' for `ipmi-share`,
/// whose wall meter holds them), plus its cards' joules unless ignored;
/// and those cards' joules, its GPU part.
fn vm_joules(model: Model, vm: usize, a: usize, b: usize) -> (f64, f64) {
    let dcpu = |v: usize| cpu(v, b) - cpu(v, a);
    let total: f64 = (0..RUNNING.len()).map(dcpu).sum();
    let gpus = if model == Model::RaplIgnoringGpus {
        0.0
    } else {
        vm_gpu_joules(vm, a, b)
    };
    let split = match model {
        Model::Ipmi => host_joules(model, a, b) - cards_joules(a, b),
        _ => host_joules(model, a, b),
    };
    (split * dcpu(vm) / total + gpus, gpus)
}

/// The ledger's sums after a tick.
#[derive(Clone, Debug, Default)]
struct Totals {
    vm_joules: f64,
    vm_gpu_joules: f64,
    unattributed: f64,
    cards: f64,
}

/// A run of the seven ticks.
struct Run {
    _tmp: tempfile::TempDir,
    out: std::path::PathBuf,
    state: DaemonState,
    shared: Arc<Shared>,
    /// The ledger's sums after each tick.
    after: Vec<Totals>,
}

/// Seven ticks 10 s apart on a host with six cards, with `model`: a
/// driver reload of C at tick 3, B's hand-over between ticks 2 and 3, a
/// restart from the state file between ticks 3 and 4, and a GPU reading
/// that fails at tick 5; the RAPL zones and the wall power advance at
/// every tick, package-1 wrapping at the first.
fn seven_ticks(model: Model) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cache = dir.join("cache");
    let devices_dir = powercap_tree(&dir.join("sys"));
    sysfs(&dir.join("gpu-sys"));
    let (node, uri) = node_copy(dir);
    let original = std::fs::read_to_string(&node).unwrap();
    write_node(&node, &original, &devices(false));
    let meter = dir.join("nvidia-smi.csv");
    let dcmi = dir.join("dcmi.txt");
    let policy = dir.join("daemon.toml");
    // Without the libvirt/nova exporter's series, which promtool refuses.
    let mut text = daemon_policy(dir, &uri, &dir.join("sys/class/powercap"), "none").replace(
        "ship_every_secs = 3600\n",
        &format!(
            "ship_every_secs = {}\ncompat_series = false\n",
            SHIP_MS / 1000
        ),
    ) + &format!(
        "\n[gpu]\ncommand = [\"cat\", \"{}\"]\nsysfs_root = \"{}\"\n",
        meter.display(),
        dir.join("gpu-sys").display()
    );
    match model {
        Model::Rapl => {}
        Model::RaplIgnoringGpus => {
            text = text.replace(
                "idle_power = \"auto\"\n",
                "idle_power = \"auto\"\ngpu = \"ignore\"\n",
            );
        }
        Model::Ipmi => {
            text = text
                .replace("plugin = \"rapl-share\"", "plugin = \"ipmi-share\"")
                .replace(
                    "[model]",
                    &format!(
                        "[host_power]\ncommand = [\"cat\", \"{}\"]\n\n[model]",
                        dcmi.display()
                    ),
                );
        }
    }
    std::fs::write(&policy, text).unwrap();

    let cpu_times = FedCpu::default();
    let (mut state, mut shared) = engine(&policy, &cpu_times, &cache);
    let mut after = Vec::new();
    for k in 0..TICKS {
        if k == 3 {
            write_node(&node, &original, &devices(handed(k)));
        }
        if k == 4 {
            // A restart: the counters go on from the state file.
            drop(state);
            (state, shared) = engine(&policy, &cpu_times, &cache);
        }
        if fails(k) {
            std::fs::remove_file(&meter).unwrap();
        } else {
            std::fs::write(&meter, csv(k)).unwrap();
        }
        for (z, zone) in ZONES.iter().enumerate() {
            bump(&devices_dir, zone.0, rapl_uj(z, k));
        }
        std::fs::write(
            &dcmi,
            format!(
                "    Instantaneous power reading:                   {} Watts\n",
                wall_w(k)
            ),
        )
        .unwrap();
        *cpu_times.0.lock().unwrap() = RUNNING
            .iter()
            .enumerate()
            .map(|(i, u)| (u.to_string(), cpu(i, k)))
            .collect();
        state.tick(t(k));
        let ledger = state.ledger();
        after.push(Totals {
            vm_joules: ledger.vm_joules.values().sum(),
            vm_gpu_joules: ledger.vm_gpu_joules.values().sum(),
            unattributed: ledger.unattributed_joules,
            cards: ledger.gpu_joules.values().sum(),
        });
    }
    Run {
        out: dir.join("out"),
        _tmp: tmp,
        state,
        shared,
        after,
    }
}

/// The value of `metric` for VM `uuid` in a text scrape.
fn vm_value(scrape: &str, metric: &str, uuid: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(&format!("{metric}{{uuid=\"{uuid}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Each card's exported counter is the test's C1 / trapezoid sum exactly,
/// whatever the model does with GPUs: across a driver reload, a hand-over,
/// a restart from the state file and a reading that fails at tick 5 (its
/// pair spans the failed reading, [4, 6]: a counter loses nothing). Where
/// the model reads `gpu` (`passthrough`, the builtins' default) the failed
/// reading fails the sample, and the next interval, [4, 6], is attributed
/// whole; with `gpu = "ignore"` the sample is used (the GPU failure only
/// said and counted), and the cards' last reading is kept over it.
/// `wattson_vm_gpu_info` says who holds which card at the last tick, with
/// the vfio-bound card's uuid from before it was bound, and no NIC.
#[test]
fn gpu_counters_and_holders_follow_the_readings_across_a_reload_a_hand_over_and_a_restart() {
    for model in [Model::Rapl, Model::RaplIgnoringGpus] {
        let run = seven_ticks(model);
        let snapshot = run.shared.snapshot();
        assert_eq!(snapshot.health.sample_failures.get("gpu"), Some(&1));
        assert_eq!(snapshot.health.failures_in_a_row, 0);
        // Since the restart at tick 4: [3, 4] and [4, 6], or [3, 4], [4, 5]
        // and [5, 6] with the sample at 5 used.
        let intervals = if model == Model::Rapl { 2 } else { 3 };
        assert_eq!(snapshot.health.intervals, intervals, "{model:?}");

        let scrape = render_metrics(&snapshot, MetricsFormat::Text, 0);
        let mut want = BTreeSet::new();
        for card in [A, B, C, D, E, F] {
            let sum: f64 = pairs(true)
                .into_iter()
                .filter_map(|(a, b)| expected_joules(card, a, b))
                .sum();
            let got = snapshot.gpus.get(card).copied();
            match got {
                Some(got) => assert!(
                    rel_err(got, sum) < 1e-12,
                    "{model:?} {card}: {got} vs {sum}"
                ),
                None => panic!("{model:?} {card}: no counter, expected {sum} J"),
            }
            want.insert(format!(
                "wattson_host_gpu_energy_joules_total{{host=\"cmp-01\",pci_bus_id=\"{card}\"}} {}",
                snapshot.gpus[card]
            ));
        }
        // By hand, for the record: A 4 × 3000 J and [4, 6]'s 6000 J; C's
        // reload at tick 3 counts 1200 J, not 2500; F only [0, 1] (listed
        // no more after).
        assert_eq!(snapshot.gpus[A], 18_000.0);
        assert_eq!(snapshot.gpus[C], 2500.0 + 2500.0 + 1200.0 + 2500.0 + 5000.0);
        assert_eq!(snapshot.gpus[F], 300.0);
        let got: BTreeSet<String> = lines_of(&scrape, "wattson_host_gpu_energy_joules_total")
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(got, want, "{scrape}");

        let info = |vm: &str, card: &str, mode: &str, share: f64, profile: &str| {
            format!(
                "wattson_vm_gpu_info{{uuid=\"{vm}\",host=\"cmp-01\",pci_bus_id=\"{card}\",\
                 gpu_uuid=\"{}\",mode=\"{mode}\",share=\"{share}\",profile=\"{profile}\"}} 1",
                gpu_uuid(card)
            )
        };
        let want: BTreeSet<String> = [
            info(RUNNING[0], A, "passthrough", 1.0, ""),
            info(RUNNING[0], F, "passthrough", 1.0, ""),
            info(RUNNING[1], C, "mig", 3.0 / 7.0, "GRID A100-3-20C"),
            info(RUNNING[3], E, "vgpu", 1.0 / 6.0, "GRID P40-4C"),
            info(RUNNING[3], B, "passthrough", 1.0, ""),
        ]
        .into();
        let got: BTreeSet<String> = lines_of(&scrape, "wattson_vm_gpu_info")
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(got, want, "{scrape}");
        // With `gpu = "ignore"` no model attributes GPUs: no VM GPU series,
        // and each VM's energy is its CPU share of RAPL's alone.
        if model == Model::RaplIgnoringGpus {
            assert!(
                lines_of(&scrape, "wattson_vm_gpu_energy_joules_total").is_empty(),
                "{scrape}"
            );
            for (vm, uuid) in RUNNING.iter().enumerate() {
                let want: f64 = pairs(false)
                    .into_iter()
                    .map(|(a, b)| vm_joules(model, vm, a, b).0)
                    .sum();
                let got = vm_value(&scrape, "wattson_vm_energy_joules_total", uuid).unwrap();
                assert!(rel_err(got, want) < 1e-9, "{uuid}: {got} vs {want}");
            }
        }
        // Each tick adds its cards' joules to the counters.
        for (a, b) in pairs(true) {
            let added = run.after[b].cards - run.after[a].cards;
            assert!(
                rel_err(added, cards_joules(a, b)) < 1e-9,
                "{model:?} [{a}, {b}]: {added} J"
            );
        }
        promtool_check(&scrape);
    }
}

/// The ms of an RFC 3339 time.
fn ms(rfc3339: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// With the builtins' default `gpu = "passthrough"`, on the seven ticks:
/// each VM's GPU counter is the sum, over the pairs of ticks with a
/// reading at both ends, of each card it held at both ends × its share (R0
/// gets A's and F's; B's hand-over pair, unheld D and the slices of C and
/// E nobody holds stay at the host), inside its energy counter; per tick,
/// VMs' GPU joules + what stays at the host = the cards' (`idle = "none"`:
/// the host keeps nothing else). `rapl-share` adds the cards to RAPL's
/// split; `ipmi-share`'s wall meter holds them, so its VMs split E − G by
/// CPU time. The shipped records (file messenger, jsonl, 30 s windows, one
/// of them cut by the interval across the failed reading) carry the same
/// GPU joules per window, the `gpu:gpu` meter where above 0, and are
/// `estimated` for the MIG and the vGPU holder.
#[test]
fn vms_get_the_gpus_they_held_in_their_counters_and_their_records() {
    for model in [Model::Rapl, Model::Ipmi] {
        let mut run = seven_ticks(model);
        let snapshot = run.shared.snapshot();
        assert_eq!(snapshot.health.failures_in_a_row, 0);
        let scrape = render_metrics(&snapshot, MetricsFormat::Text, 0);
        for (vm, uuid) in RUNNING.iter().enumerate() {
            let (joules, gpus) = pairs(true)
                .into_iter()
                .map(|(a, b)| vm_joules(model, vm, a, b))
                .fold((0.0, 0.0), |s, p| (s.0 + p.0, s.1 + p.1));
            let got = vm_value(&scrape, "wattson_vm_gpu_energy_joules_total", uuid);
            let got = got.unwrap_or_else(|| panic!("{model:?} {uuid}: no GPU counter\n{scrape}"));
            assert!(
                rel_err(got, gpus) < 1e-9,
                "{model:?} {uuid}: {got} vs {gpus}"
            );
            let got = vm_value(&scrape, "wattson_vm_energy_joules_total", uuid).unwrap();
            assert!(
                rel_err(got, joules) < 1e-9,
                "{model:?} {uuid}: {got} vs {joules}"
            );
        }
        // By hand: R0 holds A (4 × 3000 J, then 6000 J across the failed
        // reading) and F ([0, 1] only); R2 had B for [0, 2] only.
        let ledger = run.state.ledger();
        assert!(rel_err(ledger.vm_gpu_joules[RUNNING[0]], 18_000.0 + 300.0) < 1e-12);
        assert!(rel_err(ledger.vm_gpu_joules[RUNNING[2]], 2.0 * 2000.0) < 1e-12);

        let host_total: f64 = pairs(true)
            .into_iter()
            .map(|(a, b)| host_joules(model, a, b))
            .sum();
        if model == Model::Ipmi {
            assert!(rel_err(ledger.meter_joules["ipmi"], host_total) < 1e-12);
        }
        for (a, b) in pairs(true) {
            let (before, after) = (&run.after[a], &run.after[b]);
            let vm_gpu = after.vm_gpu_joules - before.vm_gpu_joules;
            let at_host = after.unattributed - before.unattributed;
            let cards = cards_joules(a, b);
            let want: f64 = (0..RUNNING.len()).map(|vm| vm_gpu_joules(vm, a, b)).sum();
            assert!(
                rel_err(vm_gpu, want) < 1e-9,
                "{model:?} [{a}, {b}]: {vm_gpu} vs {want}"
            );
            assert!(
                rel_err(vm_gpu + at_host, cards) < 1e-9,
                "{model:?} [{a}, {b}]: VMs {vm_gpu} + host {at_host} vs cards {cards}"
            );
            // What the host keeps, by hand: unheld D, C's 4 free slices, E's
            // other 5/6, and B in its hand-over pair.
            let j = |card| expected_joules(card, a, b).unwrap_or(0.0);
            let kept = j(D)
                + j(C) * 4.0 / 7.0
                + j(E) * 5.0 / 6.0
                + if (a, b) == (2, 3) { j(B) } else { 0.0 };
            assert!(
                rel_err(at_host, kept) < 1e-9,
                "{model:?} [{a}, {b}]: {at_host} vs {kept}"
            );
            // The whole: the wall meter holds the cards; RAPL does not.
            let energy = after.vm_joules - before.vm_joules + at_host;
            let want = match model {
                Model::Ipmi => host_joules(model, a, b),
                _ => host_joules(model, a, b) + cards,
            };
            assert!(
                rel_err(energy, want) < 1e-9,
                "{model:?} [{a}, {b}]: {energy} vs {want}"
            );
        }

        // Ship the two closed windows: [−30 s, 0 s] and [0 s, 30 s] around
        // the edge ([4, 6] is cut at 30 s, its rest unshipped).
        run.state.ship().unwrap();
        let records = super::daemon::delivered(&run.out);
        assert_eq!(records.len(), 2 * RUNNING.len(), "{records:?}");
        for r in &records {
            let (start, end) = (ms(&r["start"]), ms(&r["end"]));
            assert_eq!(end - start, SHIP_MS);
            let uuid = r["vm_uuid"].as_str().unwrap();
            let vm = RUNNING.iter().position(|u| *u == uuid).unwrap();
            let (mut joules, mut gpus) = (0.0, 0.0);
            for (a, b) in pairs(true) {
                let overlap = (t(b).min(end) - t(a).max(start)).max(0) as f64;
                let fraction = overlap / (t(b) - t(a)) as f64;
                let (j, g) = vm_joules(model, vm, a, b);
                joules += j * fraction;
                gpus += g * fraction;
            }
            let got = r["energy_joules"].as_f64().unwrap();
            assert!(
                rel_err(got, joules) < 1e-9,
                "{model:?} {r}: {got} vs {joules}"
            );
            let got = r["gpu_j"]
                .as_f64()
                .unwrap_or_else(|| panic!("no gpu_j: {r}"));
            assert!(rel_err(got, gpus) < 1e-9, "{model:?} {r}: {got} vs {gpus}");
            let shared_card = vm == 1 || vm == 3;
            let quality = if shared_card { "estimated" } else { "measured" };
            assert_eq!(r["quality"], quality, "{r}");
            let meters: Vec<&str> = r["meters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap())
                .collect();
            assert_eq!(meters.contains(&"gpu:gpu"), gpus > 0.0, "{r}");
        }
        // R2 had B only before the edge: its second window has 0 GPU joules.
        assert!(records.iter().any(|r| r["vm_uuid"] == RUNNING[2]
            && ms(&r["start"]) == EDGE_MS
            && r["gpu_j"] == 0.0));
    }
}

/// With `gpu = "ignore"`, shipped records carry no `gpu_j` and are measured.
#[test]
fn records_of_a_model_ignoring_gpus_carry_no_gpu_joules() {
    let mut run = seven_ticks(Model::RaplIgnoringGpus);
    run.state.ship().unwrap();
    let records = super::daemon::delivered(&run.out);
    assert_eq!(records.len(), 2 * RUNNING.len(), "{records:?}");
    for r in &records {
        assert!(r.get("gpu_j").is_none(), "{r}");
        assert_eq!(r["quality"], "measured", "{r}");
        assert!(!r["meters"].to_string().contains("gpu:"), "{r}");
    }
}

/// Without `[gpu]` the daemon reads no GPUs, exports none and runs the
/// CPU models as before.
#[test]
fn without_gpu_the_daemon_reads_and_exports_no_gpus() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    powercap_tree(&dir.join("sys"));
    let (node, uri) = node_copy(dir);
    let original = std::fs::read_to_string(&node).unwrap();
    write_node(&node, &original, &devices(false));
    let policy = dir.join("daemon.toml");
    std::fs::write(
        &policy,
        daemon_policy(dir, &uri, &dir.join("sys/class/powercap"), "none"),
    )
    .unwrap();
    let cpu = FedCpu::default();
    let (mut state, shared) = engine(&policy, &cpu, &dir.join("cache"));
    for k in 0..3 {
        *cpu.0.lock().unwrap() = RUNNING
            .iter()
            .map(|u| (u.to_string(), 100.0 + k as f64))
            .collect();
        state.tick(1_800_000_000_000 + 10_000 * k);
    }
    let snapshot = shared.snapshot();
    assert_eq!(snapshot.health.intervals, 2);
    assert!(snapshot.gpus.is_empty() && snapshot.gpu_holders.is_empty());
    let scrape = render_metrics(&snapshot, MetricsFormat::Text, 0);
    assert!(!scrape.contains("wattson_vm_gpu_info{"), "{scrape}");
    assert!(
        !scrape.contains("wattson_host_gpu_energy_joules_total{"),
        "{scrape}"
    );
}

/// A domain whose mdev sysfs does not describe (gone mid-teardown, or a
/// type without `max_instance`) is left out of the holders, named and
/// counted: the other cards are still read and held, the sample is used,
/// and the card that domain would hold counts as held by no VM.
#[test]
fn a_domain_whose_devices_cannot_be_resolved_fails_no_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    powercap_tree(&dir.join("sys"));
    sysfs(&dir.join("gpu-sys"));
    std::fs::remove_file(dir.join("gpu-sys/bus/mdev/devices").join(M1)).unwrap();
    let (node, uri) = node_copy(dir);
    let original = std::fs::read_to_string(&node).unwrap();
    write_node(&node, &original, &devices(false));
    let meter = dir.join("nvidia-smi.csv");
    let policy = dir.join("daemon.toml");
    let text = daemon_policy(dir, &uri, &dir.join("sys/class/powercap"), "none")
        + &format!(
            "\n[gpu]\ncommand = [\"cat\", \"{}\"]\nsysfs_root = \"{}\"\n",
            meter.display(),
            dir.join("gpu-sys").display()
        );
    std::fs::write(&policy, text).unwrap();
    let cpu = FedCpu::default();
    let (mut state, shared) = engine(&policy, &cpu, &dir.join("cache"));
    for k in 0..3 {
        std::fs::write(&meter, csv(k)).unwrap();
        *cpu.0.lock().unwrap() = RUNNING
            .iter()
            .map(|u| (u.to_string(), 100.0 + k as f64))
            .collect();
        state.tick(1_800_000_000_000 + 10_000 * k as i64);
    }
    let snapshot = shared.snapshot();
    assert_eq!(snapshot.health.intervals, 2, "every sample was used");
    assert_eq!(snapshot.health.failures_in_a_row, 0);
    assert_eq!(snapshot.health.sample_failures.get("gpu-holder"), Some(&3));
    assert_eq!(snapshot.health.sample_failures.get("gpu"), None);
    let scrape = render_metrics(&snapshot, MetricsFormat::Text, 0);
    let info = lines_of(&scrape, "wattson_vm_gpu_info");
    assert!(info.iter().any(|l| l.contains(A)), "{info:?}");
    assert!(!info.iter().any(|l| l.contains(C)), "{info:?}");
    let energy = lines_of(&scrape, "wattson_host_gpu_energy_joules_total");
    assert!(
        energy.iter().any(|l| l.contains(C)),
        "C is still read: {energy:?}"
    );
}

/// `policy check` of a daemon's policy runs `[gpu] command` once and names
/// what is wrong (as a warning: the policy may be checked off the
/// hypervisor): a missing program, a driver without the energy field (drop
/// it: power is integrated instead).
#[test]
fn policy_check_runs_the_gpu_command_and_names_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_node, uri) = node_copy(dir);
    powercap_tree(&dir.join("sys"));
    let base = daemon_policy(dir, &uri, &dir.join("sys/class/powercap"), "none");
    let policy = dir.join("daemon.toml");
    let no_field =
        "echo 'Field \"total_energy_consumption\" is not a valid field to query.'; exit 2";
    let cases = [
        (
            "[\"/nonexistent/nvidia-smi\", \"--query-gpu=pci.bus_id,power.draw\"]".to_owned(),
            vec![
                "/nonexistent/nvidia-smi",
                "is nvidia-smi installed?",
                "[gpu] command",
            ],
        ),
        (
            format!("[\"sh\", \"-c\", {no_field:?}]"),
            vec!["drop total_energy_consumption from [gpu] command"],
        ),
    ];
    for (command, says) in cases {
        std::fs::write(&policy, format!("{base}\n[gpu]\ncommand = {command}\n")).unwrap();
        let out = super::wattson::command()
            .args(["policy", "check"])
            .arg(&policy)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        for said in says {
            assert!(stderr.contains(said), "{said}: {stderr}");
        }
    }
    // A meter that answers: nothing said of it.
    let meter = dir.join("nvidia-smi.csv");
    std::fs::write(&meter, csv(0)).unwrap();
    std::fs::write(
        &policy,
        format!(
            "{base}\n[gpu]\ncommand = [\"cat\", \"{}\"]\n",
            meter.display()
        ),
    )
    .unwrap();
    let out = super::wattson::command()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("[gpu] command"), "{stderr}");
}
