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
//! Per interval and card, the models' input (`gpus`: the card's energy,
//! each holding's joules, held seconds, mode and share) of both sides is
//! the same, and the daemon's exported `wattson_host_gpu_energy_joules_total`
//! grows by extract's card energy (and extract reading those exported
//! counters instead of DCGM's, as from-daemon would, finds the same); both
//! are checked against the test's own arithmetic on the readings
//! (`docs/ENERGY.md#gpus`: C1 of the counter, a drop counting its new
//! value, else the trapezoid of the two powers; a VM holding a card at both
//! ends of an interval holds its whole energy).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wattson::daemon::{Counters, IdleHistory, MetricsFormat, interval_input, render_metrics};
use wattson::pipeline::StaticIdle;
use wattson::runtime::{GpuMode, GpuSpec, Measurement};
use wattson::window::Window;

use super::agree::{Daemon, HOSTS, STEPS, STOP_AT, Scenario, Setup, extract_policy, tick_ms, uuid};
use super::daemon_gpu::{M1, M2, lines_of, mdev, mdev_device, pci, sysfs};
use super::data::{Rng, rel_err};
use super::gpu::{GotCard, gather, gpus};
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
}

impl Readings {
    fn new() -> Self {
        let mut rng = Rng::new(3434);
        let mut energy: [f64; CARDS.len()] =
            std::array::from_fn(|c| 4.0e9 + 1.7e8 * c as f64 + 123.0);
        let mut energy_mj = Vec::new();
        let mut power_w = Vec::new();
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
        }
        Self { energy_mj, power_w }
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

/// Per interval and card, extract's and the daemon's `gpus` agree with
/// each other and with the readings' arithmetic: a card held all along, a
/// hand-over, a driver reload, an unheld card, power-only cards (one whose
/// holder stops), a MIG-backed and a time-sliced vGPU, the same bus id on
/// both hosts; and the daemon's exported card counters grow by the same.
#[test]
fn extract_and_the_daemon_agree_on_every_gpu_and_holding() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let scenario = Scenario::new();
    let readings = Readings::new();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("daemons");
    let setup = Setup {
        model: "rapl-share",
        listed: true,
    };
    let measurements = [
        Measurement::CpuTime("cpu".into()),
        Measurement::Gpu(GpuSpec {
            name: "gpu".into(),
            max_gap_s: None,
        }),
    ];
    let mut daemons = [0, 1].map(|h| {
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
        Daemon::new(&root, h, setup, &tail)
    });

    // The daemons' inputs by tick, the info samples and card counters their
    // /metrics exported at each tick.
    let mut daemon_gpus: Vec<HashMap<(String, String), GotCard>> = Vec::new();
    let mut info: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut exported: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut prev: [Option<Counters>; 2] = [None, None];
    for k in 0..=STEPS {
        let mut cards = HashMap::new();
        for (h, d) in daemons.iter_mut().enumerate() {
            d.set(&scenario, k, &|i| devices(h, k, i));
            std::fs::write(d.dir.join("nvidia-smi.csv"), readings.csv(h, k)).unwrap();
            // The input this tick's interval gives the models, read as the
            // tick reads it (its own sample of the same files).
            let sample = d.state.sources.sample(tick_ms(k));
            assert!(
                sample.failures.is_empty() && sample.optional_failures.is_empty(),
                "{:?} {:?}",
                sample.failures,
                sample.optional_failures
            );
            if let Some(before) = &prev[h] {
                let gathered = interval_input(
                    &StaticIdle::new(&d.state.policy),
                    &measurements,
                    HOSTS[h],
                    &d.state.sources.zones,
                    before,
                    &sample,
                    &mut IdleHistory::default(),
                )
                .unwrap();
                cards.extend(gpus(&gathered));
            }
            prev[h] = Some(sample.counters);
            d.state.tick(tick_ms(k));
            let scrape = render_metrics(&d.shared.snapshot(), MetricsFormat::Text, 0);
            for line in lines_of(&scrape, "wattson_vm_gpu_info") {
                let (mut labels, value) = parse_line(line);
                // As Prometheus scrapes it; an empty label is no label.
                labels.retain(|(_, v)| !v.is_empty());
                labels.push(("instance".into(), format!("{}:9101", HOSTS[h])));
                labels.sort();
                info.entry(labels).or_default().push((tick_ms(k), value));
            }
            for line in lines_of(&scrape, "wattson_host_gpu_energy_joules_total") {
                let (labels, value) = parse_line(line);
                let label = |name: &str| {
                    labels
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .unwrap()
                };
                let at = exported
                    .entry((label("host"), label("pci_bus_id")))
                    .or_default();
                // The series appears with the card's first interval.
                at.resize(k as usize, 0.0);
                at.push(value);
            }
        }
        daemon_gpus.push(cards);
    }

    let (counters, gauges) = readings.dcgm();
    // As Prometheus scraped the daemons' card counters, from their first
    // interval on.
    let from_daemon: Vec<TestSeries> = exported
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
    let info: Vec<TestSeries> = info
        .into_iter()
        .map(|(labels, samples)| TestSeries { labels, samples })
        .collect();
    let prometheus = Prometheus::start(&scenario.openmetrics(&[
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", &counters),
        ("DCGM_FI_DEV_POWER_USAGE", &gauges),
        ("wattson_vm_gpu_info", &info),
        ("wattson_host_gpu_energy_joules_total", &from_daemon),
    ]));
    let policy = extract_policy(setup) + "[gpu]\n" + MIG_SLICES;
    // The daemons' own card counters instead of DCGM's.
    let on_daemons = extract_policy(setup)
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
        let daemon = &daemon_gpus[k as usize];
        let mut keys: Vec<&(String, String)> = extracted.keys().collect();
        keys.sort();
        let mut daemon_keys: Vec<&(String, String)> = daemon.keys().collect();
        daemon_keys.sort();
        assert_eq!(keys, daemon_keys, "tick {k}: the same cards");
        assert_eq!(keys.len(), CARDS.len(), "tick {k}: every card");
        for (c, card) in CARDS.iter().enumerate() {
            let key = (HOSTS[card.h].to_owned(), card.bus_id.to_owned());
            let what = format!("tick {k}, {} {}", key.0, key.1);
            let (got, mine) = (&extracted[&key], &daemon[&key]);
            let (want, counter) = readings.joules(c, k);
            close(mine.joules, want, &format!("{what}: daemon's card energy"));
            close(
                got.joules,
                mine.joules,
                &format!("{what}: extract vs daemon"),
            );
            assert_eq!((got.counter, mine.counter), (counter, counter), "{what}");
            close(got.covered_s, 60.0, &format!("{what}: extract's covered s"));
            close(mine.covered_s, 60.0, &format!("{what}: daemon's covered s"));
            let series = &exported[&key];
            let increase = series[k as usize] - series[k as usize - 1];
            close(increase, got.joules, &format!("{what}: exported counter"));

            // Held at both ends: the whole card's energy of the interval.
            let held = holder(c, k - 1).filter(|v| holder(c, k) == Some(*v));
            let want: BTreeSet<String> = held.map(uuid).into_iter().collect();
            let got_vms: BTreeSet<String> = got.holdings.keys().cloned().collect();
            let mine_vms: BTreeSet<String> = mine.holdings.keys().cloned().collect();
            assert_eq!(got_vms, want, "{what}: extract's holders");
            assert_eq!(mine_vms, want, "{what}: the daemon's holders");
            if holder(c, k - 1) != holder(c, k) {
                handed.insert(c);
            }
            let (mode, share) = how(c);
            for vm in &want {
                let (g, m) = (got.holdings[vm], mine.holdings[vm]);
                let what = format!("{what}, {vm}");
                assert!(g.mode == mode && m.mode == mode, "{what}: mode");
                close(g.share, share, &format!("{what}: extract's share"));
                close(m.share, share, &format!("{what}: daemon's share"));
                close(g.held_s, 60.0, &format!("{what}: extract's held s"));
                close(m.held_s, 60.0, &format!("{what}: daemon's held s"));
                close(m.joules, readings.joules(c, k).0, &what);
                close(g.joules, m.joules, &format!("{what}: extract vs daemon"));
            }
            // Extract on the daemon's series: the same card energy and
            // holdings, every card by a counter.
            if let Some(cards) = &on_daemons {
                assert_eq!(
                    cards.len(),
                    CARDS.len(),
                    "{what}: every card on the daemon's series"
                );
                let theirs = &cards[&key];
                close(
                    theirs.joules,
                    mine.joules,
                    &format!("{what}: on the daemon's series"),
                );
                assert!(theirs.counter, "{what}: the daemon's series are counters");
                let vms: BTreeSet<String> = theirs.holdings.keys().cloned().collect();
                assert_eq!(vms, want, "{what}: holders on the daemon's series");
                for vm in &want {
                    let (t, m) = (theirs.holdings[vm], mine.holdings[vm]);
                    close(
                        t.joules,
                        m.joules,
                        &format!("{what}, {vm}: on the daemon's series"),
                    );
                    close(t.held_s, m.held_s, &format!("{what}, {vm}: held s"));
                    close(t.share, m.share, &format!("{what}, {vm}: share"));
                }
            }
        }
    }
    // The hand-over and VM 4's stop each left an interval unheld.
    assert_eq!(handed, BTreeSet::from([1, 5]));
    // The reload counted its new value, not a wrap.
    let (reload, _) = readings.joules(2, RELOAD_AT);
    assert!(reload < 2_000.0, "{reload}");
}
