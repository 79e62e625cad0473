//! Extract and the daemon give the same GPU joules for the same samples
//! (issue 34): agree.rs's scenario (two hosts, 30 VMs that start, stop and
//! migrate, one window per daemon interval, ticks on whole minutes) with
//! cards on both hosts. The daemons read the cards through their meter
//! (`[gpu] command`: `cat` of the nvidia-smi CSV the test writes each tick)
//! and the holders from the running domains' `<hostdev>`s (the node file
//! rewritten between ticks; mdevs in daemon_gpu.rs's sysfs fixture).
//! Extract reads the same readings as DCGM's series, and the holders as the
//! `wattson_vm_gpu_info` samples the daemons' own `/metrics` exported at
//! each tick, from a real Prometheus.
//!
//! Per interval and card, extract's models' input (`gpus`: the card's
//! energy, each holding's joules, held seconds, mode and share) and what
//! the daemon's own ticks did (the card's energy and each VM's GPU joules
//! added to the ledger, the holdings of its samples) are the same, and the
//! daemon's exported `wattson_host_gpu_energy_joules_total` grows by the
//! card's energy (and extract reading those exported counters instead of
//! DCGM's, as from-daemon would, finds the same); all are checked against
//! the test's own arithmetic on the readings (`docs/ENERGY.md#gpus`: C1 of
//! the counter, a drop counting its new value, else the trapezoid of the two
//! powers; a VM holding a card at both ends of an interval holds its whole
//! energy, × its share). Over the run, per VM and host, both models
//! (rapl-share adds the cards beside RAPL, ipmi-share takes them out of the
//! wall meter, which the test makes count them) give the same GPU joules,
//! CPU joules and unattributed energy as the test's sums.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use wattson::daemon::{Held, MetricsFormat, render_metrics};
use wattson::runtime::GpuMode;
use wattson::window::Window;

use super::agree::{
    Daemon, HOSTS, N, STEPS, STOP_AT, Scenario, Setup, extract_policy, extract_records,
    interval_joules, per_vm, tick_ms, uuid,
};
use super::daemon_gpu::{M1, M2, lines_of, mdev, mdev_device, pci, sysfs};
use super::data::{Rng, rel_err};
use super::gpu::{gather, gpus};
use super::prometheus::{Prometheus, TestSeries};
use super::support::require_tool;

/// One card of the scenario.
struct Card {
    /// Its host, index into [`HOSTS`].
    h: usize,
    bus_id: &'static str,
    /// DCGM's `modelName`.
    model: &'static str,
    /// Whether the driver prints `total_energy_consumption` (else `[N/A]`).
    counter: bool,
    /// Whether it prints `power.draw`.
    power: bool,
    /// Mean power, W.
    watts: f64,
}

const CARDS: [Card; 8] = [
    // cmp-01, passthrough to VM 0 all along; counter and power (the counter counts).
    card(
        0,
        "00000000:3B:00.0",
        "NVIDIA A100 80GB PCIe",
        true,
        true,
        250.0,
    ),
    // cmp-01, passthrough, handed from VM 1 to VM 2 between ticks HAND_AT - 1 and HAND_AT.
    card(
        0,
        "00000000:AF:00.0",
        "NVIDIA A100 80GB PCIe",
        true,
        false,
        180.0,
    ),
    // cmp-01, MIG-backed vGPU `GRID A100-3-20C` (mdev M1) of VM 6; the
    // driver reloads just before RELOAD_AT.
    card(
        0,
        "00000000:D8:00.0",
        "NVIDIA A100 80GB PCIe",
        true,
        true,
        200.0,
    ),
    // cmp-01, held by nobody.
    card(
        0,
        "00000000:5E:00.0",
        "NVIDIA A100 80GB PCIe",
        true,
        true,
        60.0,
    ),
    // cmp-01, time-sliced vGPU `GRID P40-4C` (mdev M2) of VM 7; power only.
    card(0, "00000000:86:00.0", "Tesla P40", false, true, 150.0),
    // cmp-01, passthrough to VM 4 until it stops after STOP_AT; power only.
    card(0, "00000000:18:00.0", "Tesla T4", false, true, 70.0),
    // cmp-02, at the same address as cmp-01's first: passthrough to VM 20.
    card(
        1,
        "00000000:3B:00.0",
        "NVIDIA H100 PCIe",
        true,
        false,
        350.0,
    ),
    // cmp-02, MIG-backed vGPU `NVIDIA A30-2-12C` (mdev M3) of VM 21: 2 of
    // the A30's 4 compute slices, by `[gpu] mig_slices` on the card's model.
    card(1, "00000000:65:00.0", "NVIDIA A30", true, true, 120.0),
];

/// VM 21's vGPU on the A30.
const M3: &str = "2d7a3c4e-5f61-4c7d-8e9f-a0b1c2d3e4f5";
/// Both sides' `[gpu] mig_slices`: a glob on the card's model.
const MIG_SLICES: &str = "mig_slices = { \"NVIDIA A30\" = 4 }\n";

const fn card(
    h: usize,
    bus_id: &'static str,
    model: &'static str,
    counter: bool,
    power: bool,
    watts: f64,
) -> Card {
    Card {
        h,
        bus_id,
        model,
        counter,
        power,
        watts,
    }
}

/// Card 1 goes from VM 1 to VM 2 at this tick.
const HAND_AT: i64 = 17;
/// Card 2's driver reloads between this tick and the one before.
const RELOAD_AT: i64 = 30;

/// The VM holding card `c` at tick `k`, if any (a VM holds it only while
/// it runs: agree.rs's VM 4 stops after STOP_AT).
fn holder(c: usize, k: i64) -> Option<usize> {
    match c {
        0 => Some(0),
        1 => Some(if k < HAND_AT { 1 } else { 2 }),
        2 => Some(6),
        4 => Some(7),
        5 => (k <= STOP_AT).then_some(4),
        6 => Some(20),
        7 => Some(21),
        _ => None,
    }
}

/// How card `c` is held: mode and share, as the sysfs fixture
/// says (`GRID A100-3-20C`: 3 of an A100's 7 compute slices; `GRID
/// P40-4C`: 6 per card).
fn how(c: usize) -> (GpuMode, f64) {
    match c {
        2 => (GpuMode::Mig, 3.0 / 7.0),
        4 => (GpuMode::Vgpu, 1.0 / 6.0),
        7 => (GpuMode::Mig, 2.0 / 4.0),
        _ => (GpuMode::Passthrough, 1.0),
    }
}

/// The `<hostdev>` giving card `c` to its holder.
fn hostdev(c: usize) -> String {
    match c {
        2 => mdev(M1),
        4 => mdev(M2),
        7 => mdev(M3),
        _ => {
            let bus = u8::from_str_radix(&CARDS[c].bus_id[9..11], 16).unwrap();
            pci(bus)
        }
    }
}

/// The `<hostdev>`s of VM `i` on host `h` at tick `k`.
fn devices(h: usize, k: i64, i: usize) -> String {
    (0..CARDS.len())
        .filter(|&c| CARDS[c].h == h && holder(c, k) == Some(i))
        .map(hostdev)
        .collect()
}

fn gpu_uuid(c: usize) -> String {
    format!("GPU-{c:08x}-5a1e-4c3d-9e8f-0123456789ab")
}

/// Every card's readings, by tick: energy (mJ, whole, as the driver
/// prints it) and power (W, two decimals).
struct Readings {
    energy_mj: Vec<[Option<f64>; CARDS.len()]>,
    power_w: Vec<[Option<f64>; CARDS.len()]>,
    /// What each card draws, W, printed or not.
    draw_w: Vec<[f64; CARDS.len()]>,
}

impl Readings {
    fn new() -> Self {
        let mut rng = Rng::new(3434);
        let mut energy: [f64; CARDS.len()] =
            std::array::from_fn(|c| 4.0e9 + 1.7e8 * c as f64 + 123.0);
        let mut energy_mj = Vec::new();
        let mut power_w = Vec::new();
        let mut draw_w = Vec::new();
        for k in 0..=STEPS {
            let watts: [f64; CARDS.len()] = std::array::from_fn(|c| {
                let load = if holder(c, k).is_some() { 1.0 } else { 0.4 };
                let w = CARDS[c].watts * load * (0.7 + 0.6 * rng.next_f64());
                (w * 100.0).round() / 100.0
            });
            if k > 0 {
                for (c, e) in energy.iter_mut().enumerate() {
                    let mj = (watts[c] * 60_000.0 * (0.95 + 0.1 * rng.next_f64())).round();
                    *e = if c == 2 && k == RELOAD_AT {
                        // Reloaded 7 s before the tick: it counts from 0 again.
                        (watts[c] * 7_000.0).round()
                    } else {
                        *e + mj
                    };
                }
            }
            energy_mj.push(std::array::from_fn(|c| {
                CARDS[c].counter.then_some(energy[c])
            }));
            power_w.push(std::array::from_fn(|c| CARDS[c].power.then_some(watts[c])));
            draw_w.push(watts);
        }
        Self {
            energy_mj,
            power_w,
            draw_w,
        }
    }

    /// What host `h`'s wall meter reads beyond its CPUs at tick `k`: its
    /// cards' draw, and 100 W of fans and power-supply losses.
    fn wall_watts(&self, h: usize, k: i64) -> f64 {
        100.0
            + (0..CARDS.len())
                .filter(|&c| CARDS[c].h == h)
                .map(|c| self.draw_w[k as usize][c])
                .sum::<f64>()
    }

    /// The meter's CSV on host `h` at tick `k`, with its header.
    fn csv(&self, h: usize, k: i64) -> String {
        let mut out =
            "pci.bus_id, uuid, name, total_energy_consumption [mJ], power.draw [W]\n".to_owned();
        let k = k as usize;
        for (c, card) in CARDS.iter().enumerate().filter(|(_, card)| card.h == h) {
            let na = if c == 4 { "[Not Supported]" } else { "[N/A]" };
            let mj = self.energy_mj[k][c].map_or(na.to_owned(), |v| format!("{v}"));
            let w = self.power_w[k][c].map_or("[N/A]".to_owned(), |v| format!("{v:.2}"));
            let (bus_id, model) = (card.bus_id, card.model);
            out.push_str(&format!("{bus_id}, {}, {model}, {mj}, {w}\n", gpu_uuid(c)));
        }
        out
    }

    /// DCGM's series of every card, scraped at the ticks: its energy
    /// counter and its power gauge (the MIG card once per instance).
    fn dcgm(&self) -> (Vec<TestSeries>, Vec<TestSeries>) {
        let (mut counters, mut gauges) = (Vec::new(), Vec::new());
        for (c, card) in CARDS.iter().enumerate() {
            let host = HOSTS[card.h];
            let base = vec![
                ("Hostname", host.to_owned()),
                ("UUID", gpu_uuid(c)),
                ("device", format!("nvidia{c}")),
                ("gpu", c.to_string()),
                ("instance", format!("{host}:9400")),
                ("modelName", card.model.to_owned()),
                ("pci_bus_id", card.bus_id.to_owned()),
            ];
            let instances: Vec<Vec<(&str, String)>> = if c == 2 {
                [("1", "3g.40gb"), ("2", "3g.40gb")]
                    .iter()
                    .map(|(id, profile)| {
                        let mut l = base.clone();
                        l.extend([
                            ("GPU_I_ID", (*id).to_owned()),
                            ("GPU_I_PROFILE", (*profile).to_owned()),
                        ]);
                        l
                    })
                    .collect()
            } else {
                vec![base]
            };
            let series = |values: &Vec<[Option<f64>; CARDS.len()]>| {
                (0..=STEPS)
                    .filter_map(|k| Some((tick_ms(k), values[k as usize][c]?)))
                    .collect::<Vec<_>>()
            };
            for labels in instances {
                let labels: Vec<(String, String)> =
                    labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                if card.counter {
                    counters.push(TestSeries {
                        labels: labels.clone(),
                        samples: series(&self.energy_mj),
                    });
                }
                if card.power {
                    gauges.push(TestSeries {
                        labels,
                        samples: series(&self.power_w),
                    });
                }
            }
        }
        (counters, gauges)
    }

    /// Card `c`'s energy over the interval ending at tick `k` by the rules:
    /// C1 of its counter (a drop counts the new value), else the trapezoid
    /// of its two powers; and whether from the counter.
    fn joules(&self, c: usize, k: i64) -> (f64, bool) {
        let (a, b) = (k as usize - 1, k as usize);
        match (self.energy_mj[a][c], self.energy_mj[b][c]) {
            (Some(p), Some(n)) => ((if n >= p { n - p } else { n }) / 1000.0, true),
            _ => {
                let (p, n) = (self.power_w[a][c].unwrap(), self.power_w[b][c].unwrap());
                ((p + n) / 2.0 * 60.0, false)
            }
        }
    }
}

/// A series' labels, (name, value).
type Labels = Vec<(String, String)>;

/// A metric line of a scrape: its labels and its value.
fn parse_line(line: &str) -> (Labels, f64) {
    let (head, value) = line.rsplit_once(' ').unwrap();
    let mut rest = &head[head.find('{').unwrap() + 1..head.len() - 1];
    let mut labels = Vec::new();
    while let Some((name, tail)) = rest.split_once("=\"") {
        let end = tail.find('"').unwrap();
        labels.push((
            name.trim_start_matches(',').to_owned(),
            tail[..end].to_owned(),
        ));
        rest = &tail[end + 1..];
    }
    (labels, value.parse().unwrap())
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        rel_err(got, want) < 1e-9 || (got - want).abs() < 1e-9,
        "{what}: got {got}, want {want}"
    );
}

/// The VM holding card `c` over the interval ending at tick `k`: at both
/// ends (it then holds the card's whole energy of the interval).
fn held_over(c: usize, k: i64) -> Option<usize> {
    holder(c, k - 1).filter(|v| holder(c, k) == Some(*v))
}

/// One daemon per host run through the scenario with `model`, and what the
/// test saw of them after each tick.
struct Run {
    daemons: [Daemon; 2],
    /// Per tick: each card's energy over the interval ending there, as the
    /// tick added it to the ledger, by (host, bus id).
    cards: Vec<HashMap<(String, String), f64>>,
    /// Per tick: each VM's GPU joules over the interval ending there, as the
    /// tick added them to the ledger, by (host, uuid).
    vm_gpu: Vec<HashMap<(String, String), f64>>,
    /// Per tick: what each VM held at that tick's sample, by (host, uuid).
    held: Vec<HashMap<(String, String), Vec<Held>>>,
    /// The `wattson_vm_gpu_info` samples, as Prometheus scrapes them.
    info: BTreeMap<Labels, Vec<(i64, f64)>>,
    /// `wattson_host_gpu_energy_joules_total` by (host, bus id), per tick
    /// (0 before the card's first interval).
    exported: BTreeMap<(String, String), Vec<f64>>,
    /// The last `wattson_vm_gpu_energy_joules_total` of each VM, by (host, uuid).
    vm_exported: BTreeMap<(String, String), f64>,
    /// Each host's last `wattson_host_unattributed_joules_total`.
    unattributed: [f64; 2],
}

/// A label's value.
fn label(labels: &Labels, name: &str) -> String {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// What grew from `before` to `after`, by key.
fn grown<'a>(
    after: &'a BTreeMap<String, f64>,
    before: &'a BTreeMap<String, f64>,
) -> impl Iterator<Item = (String, f64)> + 'a {
    after
        .iter()
        .map(|(key, j)| (key.clone(), j - before.get(key).copied().unwrap_or(0.0)))
}

impl Run {
    /// The daemons read the cards through their meter and the holders from
    /// the domains' `<hostdev>`s at each tick.
    fn new(root: &Path, scenario: &Scenario, readings: &Readings, model: &'static str) -> Self {
        let setup = Setup {
            model,
            listed: true,
        };
        let daemons = [0, 1].map(|h| {
            let dir = root.join(HOSTS[h]);
            sysfs(&dir.join("gpu-sys"));
            let a30 = "0000:65:00.0";
            mdev_device(
                &dir.join("gpu-sys"),
                M3,
                a30,
                "nvidia-689",
                "NVIDIA A30-2-12C",
                2,
            );
            let tail = format!(
                "[gpu]\ncommand = [\"cat\", \"{}\"]\nsysfs_root = \"{}\"\n{MIG_SLICES}",
                dir.join("nvidia-smi.csv").display(),
                dir.join("gpu-sys").display()
            );
            Daemon::new(root, h, setup, &tail)
        });
        let mut run = Self {
            daemons,
            cards: Vec::new(),
            vm_gpu: Vec::new(),
            held: Vec::new(),
            info: BTreeMap::new(),
            exported: BTreeMap::new(),
            vm_exported: BTreeMap::new(),
            unattributed: [0.0; 2],
        };
        for k in 0..=STEPS {
            let (mut cards, mut vm_gpu, mut held) =
                (HashMap::new(), HashMap::new(), HashMap::new());
            for (h, d) in run.daemons.iter_mut().enumerate() {
                let host = HOSTS[h].to_owned();
                d.set(scenario, k, &|i| devices(h, k, i));
                std::fs::write(d.dir.join("nvidia-smi.csv"), readings.csv(h, k)).unwrap();
                let before = d.state.ledger();
                let before = (before.gpu_joules.clone(), before.vm_gpu_joules.clone());
                d.state.tick(tick_ms(k));
                let snapshot = d.shared.snapshot();
                let health = &snapshot.health;
                // cmp-02's BMC is down a while (agree.rs): the daemon then
                // measures from its last good sample.
                let failed = health.sample_failures.keys().any(|s| *s != "ipmi");
                assert!(
                    !failed && health.plugin_failures == 0,
                    "{model}, tick {k}, {host}: {health:?}"
                );
                let ledger = d.state.ledger();
                let at = |key: String| (host.clone(), key);
                cards.extend(grown(&ledger.gpu_joules, &before.0).map(|(b, j)| (at(b), j)));
                vm_gpu.extend(grown(&ledger.vm_gpu_joules, &before.1).map(|(v, j)| (at(v), j)));
                let last = ledger.last.as_ref().unwrap();
                held.extend(
                    last.gpu_held
                        .iter()
                        .map(|(v, h)| (at(v.clone()), h.clone())),
                );

                let scrape = render_metrics(&snapshot, MetricsFormat::Text, 0);
                for line in lines_of(&scrape, "wattson_vm_gpu_info") {
                    let (mut labels, value) = parse_line(line);
                    // As Prometheus scrapes it; an empty label is no label.
                    labels.retain(|(_, v)| !v.is_empty());
                    labels.push(("instance".into(), format!("{host}:9101")));
                    labels.sort();
                    run.info
                        .entry(labels)
                        .or_default()
                        .push((tick_ms(k), value));
                }
                for line in lines_of(&scrape, "wattson_host_gpu_energy_joules_total") {
                    let (labels, value) = parse_line(line);
                    let key = (label(&labels, "host"), label(&labels, "pci_bus_id"));
                    let series = run.exported.entry(key).or_default();
                    // The series appears with the card's first interval.
                    series.resize(k as usize, 0.0);
                    series.push(value);
                }
                for line in lines_of(&scrape, "wattson_vm_gpu_energy_joules_total") {
                    let (labels, value) = parse_line(line);
                    run.vm_exported
                        .insert((label(&labels, "host"), label(&labels, "uuid")), value);
                }
                for line in lines_of(&scrape, "wattson_host_unattributed_joules_total") {
                    run.unattributed[h] = parse_line(line).1;
                }
            }
            run.cards.push(cards);
            run.vm_gpu.push(vm_gpu);
            run.held.push(held);
        }
        run
    }
}

/// Per interval and card, extract's `gpus` input and the daemon's tick
/// agree with each other and with the readings' arithmetic: a card held all
/// along, a hand-over, a driver reload, an unheld card, power-only cards
/// (one whose holder stops), a MIG-backed and a time-sliced vGPU, the same
/// bus id on both hosts; the daemon's exported card counters grow by the
/// same. Per VM over the run, extract's `gpu_j` and the daemon's GPU
/// counters are the test's sum of each holding's energy × share, and the
/// rest of each VM's joules is its CPU part: rapl-share's as without GPUs,
/// ipmi-share's the split of the wall meter's E − G. Per host, what neither
/// gives a VM (unheld time, a card nobody holds, free slices) stays
/// unattributed alike.
#[test]
fn extract_and_the_daemon_agree_on_every_gpu_and_holding() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let mut scenario = Scenario::new();
    let readings = Readings::new();
    for k in 0..=STEPS {
        for h in 0..HOSTS.len() {
            scenario.add_wall_watts(h, k, readings.wall_watts(h, k));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let runs = ["rapl-share", "ipmi-share"]
        .map(|model| Run::new(&tmp.path().join(model), &scenario, &readings, model));
    let rapl = &runs[0];
    // Who holds what does not depend on the model.
    assert_eq!(rapl.info, runs[1].info);

    let (counters, gauges) = readings.dcgm();
    // As Prometheus scraped the daemons' card counters, from their first
    // interval on.
    let from_daemon: Vec<TestSeries> = rapl
        .exported
        .iter()
        .map(|((host, bus_id), values)| TestSeries {
            labels: vec![
                ("host".into(), host.clone()),
                ("instance".into(), format!("{host}:9101")),
                ("pci_bus_id".into(), bus_id.clone()),
            ],
            samples: (1..=STEPS)
                .map(|k| (tick_ms(k), values[k as usize]))
                .collect(),
        })
        .collect();
    let info: Vec<TestSeries> = rapl
        .info
        .iter()
        .map(|(labels, samples)| TestSeries {
            labels: labels.clone(),
            samples: samples.clone(),
        })
        .collect();
    let prometheus = Prometheus::start(&scenario.openmetrics(&[
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", &counters),
        ("DCGM_FI_DEV_POWER_USAGE", &gauges),
        ("wattson_vm_gpu_info", &info),
        ("wattson_host_gpu_energy_joules_total", &from_daemon),
    ]));
    let gpu_table = format!("[gpu]\n{MIG_SLICES}");
    let setup = |model| Setup {
        model,
        listed: true,
    };
    let policy = extract_policy(setup("rapl-share")) + &gpu_table;
    // The daemons' own card counters instead of DCGM's.
    let on_daemons = extract_policy(setup("rapl-share"))
        + "[gpu]\ncounter = \"wattson_host_gpu_energy_joules_total\"\ncounter_unit = \"joules\"\n\
           host_label = \"host\"\n"
        + MIG_SLICES;

    let mut handed = BTreeSet::new();
    for k in 1..=STEPS {
        let window = Window {
            start_ms: tick_ms(k - 1),
            end_ms: tick_ms(k),
        };
        let extracted = gpus(&gather(&policy, &prometheus.url, window));
        // The daemons' series start at their first interval's end: C1 has
        // no base in the first window.
        let on_daemons = (k > 1).then(|| gpus(&gather(&on_daemons, &prometheus.url, window)));
        let (cards, vm_gpu) = (&rapl.cards[k as usize], &rapl.vm_gpu[k as usize]);
        let mut keys: Vec<&(String, String)> = extracted.keys().collect();
        keys.sort();
        let mut daemon_keys: Vec<&(String, String)> = cards.keys().collect();
        daemon_keys.sort();
        assert_eq!(keys, daemon_keys, "tick {k}: the same cards");
        assert_eq!(keys.len(), CARDS.len(), "tick {k}: every card");
        // The VMs the daemon gave GPU joules in this interval.
        let mut given: BTreeSet<&(String, String)> = vm_gpu
            .iter()
            .filter(|(_, j)| **j != 0.0)
            .map(|(key, _)| key)
            .collect();
        for (c, card) in CARDS.iter().enumerate() {
            let key = (HOSTS[card.h].to_owned(), card.bus_id.to_owned());
            let what = format!("tick {k}, {} {}", key.0, key.1);
            let got = &extracted[&key];
            let (want, counter) = readings.joules(c, k);
            close(cards[&key], want, &format!("{what}: daemon's card energy"));
            close(got.joules, want, &format!("{what}: extract's card energy"));
            assert_eq!(got.counter, counter, "{what}: extract's counter");
            close(got.covered_s, 60.0, &format!("{what}: extract's covered s"));
            let series = &rapl.exported[&key];
            let increase = series[k as usize] - series[k as usize - 1];
            close(increase, want, &format!("{what}: exported counter"));

            // Held at both ends: the whole card's energy of the interval.
            let want_vms: BTreeSet<String> = held_over(c, k).map(uuid).into_iter().collect();
            let got_vms: BTreeSet<String> = got.holdings.keys().cloned().collect();
            assert_eq!(got_vms, want_vms, "{what}: extract's holders");
            if holder(c, k - 1) != holder(c, k) {
                handed.insert(c);
            }
            let (mode, share) = how(c);
            for vm in &want_vms {
                let g = got.holdings[vm];
                let what = format!("{what}, {vm}");
                assert!(g.mode == mode, "{what}: extract's mode");
                close(g.share, share, &format!("{what}: extract's share"));
                close(g.held_s, 60.0, &format!("{what}: extract's held s"));
                close(g.joules, want, &format!("{what}: extract's joules"));
                // The daemon's: its samples at both ends list the card so,
                // and the tick gave the VM its part.
                let at = (key.0.clone(), vm.clone());
                for end in [k - 1, k] {
                    let held = &rapl.held[end as usize][&at];
                    assert_eq!(held.len(), 1, "{what}: the daemon's holdings at tick {end}");
                    let h = &held[0];
                    assert_eq!(h.bus_id, card.bus_id, "{what}: the daemon's card");
                    assert_eq!(
                        h.mode.as_str(),
                        mode_name(mode),
                        "{what}: the daemon's mode"
                    );
                    close(h.share, share, &format!("{what}: the daemon's share"));
                }
                close(
                    vm_gpu[&at],
                    g.joules * g.share,
                    &format!("{what}: the daemon's part vs extract's"),
                );
                assert!(given.remove(&at), "{what}: one card a VM");
            }
            // Extract on the daemon's series: the same card energy and
            // holdings, every card by a counter.
            if let Some(on_daemons) = &on_daemons {
                assert_eq!(
                    on_daemons.len(),
                    CARDS.len(),
                    "{what}: every card on the daemon's series"
                );
                let theirs = &on_daemons[&key];
                close(
                    theirs.joules,
                    want,
                    &format!("{what}: on the daemon's series"),
                );
                assert!(theirs.counter, "{what}: the daemon's series are counters");
                let vms: BTreeSet<String> = theirs.holdings.keys().cloned().collect();
                assert_eq!(vms, want_vms, "{what}: holders on the daemon's series");
                for vm in &want_vms {
                    let (t, g) = (theirs.holdings[vm], got.holdings[vm]);
                    let what = format!("{what}, {vm}: on the daemon's series");
                    close(t.joules, g.joules, &what);
                    close(t.held_s, g.held_s, &format!("{what}: held s"));
                    close(t.share, g.share, &format!("{what}: share"));
                }
            }
        }
        assert!(
            given.is_empty(),
            "tick {k}: GPU joules of no holding: {given:?}"
        );
    }
    // The hand-over and VM 4's stop each left an interval unheld.
    assert_eq!(handed, BTreeSet::from([1, 5]));
    // The reload counted its new value, not a wrap.
    let (reload, _) = readings.joules(2, RELOAD_AT);
    assert!(reload < 2_000.0, "{reload}");

    for (run, model) in runs.iter().zip(["rapl-share", "ipmi-share"]) {
        vms_agree(
            run,
            model,
            &readings,
            &scenario,
            &prometheus.url,
            tmp.path(),
        );
    }
}

/// How `mode` is written in the daemon's holdings.
fn mode_name(mode: GpuMode) -> &'static str {
    match mode {
        GpuMode::Passthrough => "passthrough",
        GpuMode::Vgpu => "vgpu",
        GpuMode::Mig => "mig",
    }
}

/// Per VM over the run: extract's `gpu_j`, the daemon's ledger and its
/// exported counter are the test's sum of its holdings' energy × share, and
/// its other joules the CPU part (rapl-share: as without GPUs; ipmi-share:
/// per host, the split of E − G); per host, the GPU energy no VM held stays
/// unattributed in both.
fn vms_agree(
    run: &Run,
    model: &'static str,
    readings: &Readings,
    scenario: &Scenario,
    url: &str,
    dir: &Path,
) {
    let setup = Setup {
        model,
        listed: true,
    };
    let (records, summaries) =
        extract_records(dir, url, setup, 60, &format!("[gpu]\n{MIG_SLICES}"));
    let (extract_gpu, extract_all) = (per_vm(&records, "gpu_j"), per_vm(&records, "energy_joules"));

    // The test's own sums: each VM's holdings, each host's unheld energy,
    // each host's GPU energy per interval.
    let mut want_vm: HashMap<String, f64> = HashMap::new();
    let mut unheld = [0.0; 2];
    let mut gpu_of = vec![[0.0; 2]; STEPS as usize + 1];
    for k in 1..=STEPS {
        for (c, card) in CARDS.iter().enumerate() {
            let (joules, _) = readings.joules(c, k);
            gpu_of[k as usize][card.h] += joules;
            let share = match held_over(c, k) {
                Some(v) => {
                    let share = how(c).1;
                    *want_vm.entry(uuid(v)).or_default() += joules * share;
                    share
                }
                None => 0.0,
            };
            unheld[card.h] += joules * (1.0 - share);
        }
    }

    let mut daemon_gpu: HashMap<String, f64> = HashMap::new();
    let mut daemon_all: HashMap<String, f64> = HashMap::new();
    for d in &run.daemons {
        let ledger = d.state.ledger();
        for (vm, j) in &ledger.vm_gpu_joules {
            *daemon_gpu.entry(vm.clone()).or_default() += j;
        }
        for (vm, j) in &ledger.vm_joules {
            *daemon_all.entry(vm.clone()).or_default() += j;
        }
    }
    let mut exported: HashMap<String, f64> = HashMap::new();
    for ((_, vm), j) in &run.vm_exported {
        *exported.entry(vm.clone()).or_default() += j;
    }
    let mut vms: Vec<&String> = extract_all.keys().collect();
    vms.sort();
    let mut daemon_vms: Vec<&String> = daemon_all.keys().collect();
    daemon_vms.sort();
    assert_eq!(vms, daemon_vms, "{model}: the same VMs");
    assert_eq!(vms.len(), N, "{model}: every VM");
    let held_vms = want_vm.len();
    assert_eq!(
        held_vms, 8,
        "{model}: VMs 0, 1, 2, 4, 6, 7, 20 and 21 held cards"
    );
    for vm in vms {
        let what = format!("{model}, {vm}");
        let want = want_vm.get(vm).copied().unwrap_or(0.0);
        let of = |sums: &HashMap<String, f64>| sums.get(vm).copied().unwrap_or(0.0);
        close(of(&extract_gpu), want, &format!("{what}: extract's gpu_j"));
        close(
            of(&daemon_gpu),
            want,
            &format!("{what}: the daemon's GPU joules"),
        );
        close(of(&exported), want, &format!("{what}: exported GPU joules"));
        close(
            of(&extract_all),
            of(&daemon_all),
            &format!("{what}: extract vs daemon joules"),
        );
    }

    if model == "rapl-share" {
        // RAPL does not count the cards: the CPU part is agree.rs's joules.
        let (cpu_records, cpu_summaries) = extract_records(dir, url, setup, 60, "");
        let cpu_only = per_vm(&cpu_records, "energy_joules");
        for (vm, cpu) in &cpu_only {
            let what = format!("{model}, {vm}: CPU part");
            close(
                extract_all[vm] - extract_gpu[vm],
                *cpu,
                &format!("{what} in extract"),
            );
            close(
                daemon_all[vm] - daemon_gpu[vm],
                *cpu,
                &format!("{what} in the daemon"),
            );
        }
        let left: f64 = cpu_summaries
            .iter()
            .map(|l| l["unattributed_joules"].as_f64().unwrap())
            .sum();
        assert_eq!(
            left, 0.0,
            "without GPUs, every joule of RAPL goes to the VMs"
        );
    }

    for (h, host) in HOSTS.iter().enumerate() {
        let what = format!("{model}, {host}");
        if model == "ipmi-share" {
            // The wall meter counts the cards: its VMs' CPU part is E − G
            // of every interval it measured.
            let mut want = 0.0;
            for (k, gpus) in gpu_of.iter().enumerate().skip(1) {
                let e = interval_joules(scenario, model, h, k);
                if e > 0.0 {
                    assert!(e > gpus[h], "{what}: the wall counts the cards");
                    want += e - gpus[h];
                }
            }
            let extracted: f64 = records
                .iter()
                .filter(|r| r["host"] == *host)
                .map(|r| r["energy_joules"].as_f64().unwrap() - r["gpu_j"].as_f64().unwrap_or(0.0))
                .sum();
            let ledger = run.daemons[h].state.ledger();
            let daemon: f64 = ledger
                .vm_joules
                .iter()
                .map(|(vm, j)| j - ledger.vm_gpu_joules.get(vm).copied().unwrap_or(0.0))
                .sum();
            close(extracted, want, &format!("{what}: extract's CPU part"));
            close(daemon, want, &format!("{what}: the daemon's CPU part"));
        }
        let extracted: f64 = summaries
            .iter()
            .filter(|l| l["host"] == *host)
            .map(|l| l["unattributed_joules"].as_f64().unwrap())
            .sum();
        let ledger = run.daemons[h].state.ledger().unattributed_joules;
        close(
            extracted,
            unheld[h],
            &format!("{what}: extract's unattributed"),
        );
        close(
            ledger,
            unheld[h],
            &format!("{what}: the daemon's unattributed"),
        );
        close(
            run.unattributed[h],
            ledger,
            &format!("{what}: exported unattributed"),
        );
    }
}
