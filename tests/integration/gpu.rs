//! GPUs in `extract` (docs/ENERGY.md#gpus): DCGM's energy counter and power
//! gauge and the holders' info series, backfilled into a real Prometheus,
//! gathered as extract gathers them; the model's `gpus` checked against the
//! test's own GC1/GG1 ([`gpu_reference`]) on the same samples, and the
//! spec's worked example against its numbers.

use std::collections::HashMap;
use std::path::Path;

use wattson::pipeline::Gathered;
use wattson::policy::{Policy, Source};
use wattson::runtime::{GpuMode, GpuSpec, Measurement};
use wattson::window::Window;

use super::data::{HOUR, Rng, T0, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::support::gpu_reference::{RefCard, RefHolder, added, gc1, gg1};
use super::support::{gather_from, require_tool};

pub(super) const S: i64 = 1000;
/// The window gathered: the second hour.
pub(super) const W0: i64 = T0 + HOUR;
pub(super) const W1: i64 = T0 + 2 * HOUR;
pub(super) const END: i64 = T0 + 3 * HOUR;
const MAX_GAP: i64 = 300 * S;
pub(super) const COUNTER: &str = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION";
pub(super) const GAUGE: &str = "DCGM_FI_DEV_POWER_USAGE";
pub(super) const INFO: &str = "wattson_vm_gpu_info";
pub(super) const CPU: &str = "libvirt_domain_info_cpu_time_seconds";
const A100: &str = "NVIDIA A100 80GB PCIe";

const POLICY: &str = r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"
[inventory]
meta_metric = ""
host_label = "instance"
host_regex = '^([^:.]+)'
[model]
plugin = "rapl-share"
[gpu]
"#;

pub(super) fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Scrape times every 15 s over `life`, from a per-series phase, with
/// ±0.4 s of jitter (`jitter` false: exactly every 15 s from `life.0`).
pub(super) fn scrapes(seed: u64, life: (i64, i64), jitter: bool) -> Vec<i64> {
    let mut rng = Rng::new(seed);
    let mut t = life.0
        + if jitter {
            (rng.next_f64() * 15_000.0) as i64
        } else {
            0
        };
    let mut out = Vec::new();
    while t <= life.1 {
        let noise = if jitter {
            ((rng.next_f64() - 0.5) * 800.0) as i64
        } else {
            0
        };
        out.push(t + noise);
        t += 15_000;
    }
    out
}

/// A card's energy in J at `t` since `from`: `watts` on average, varying
/// with a period of some minutes (its power stays between watts ± 30 %).
pub(super) fn energy_j(watts: f64, from: i64, t: i64) -> f64 {
    let s = (t - from) as f64 / 1000.0;
    watts * s + watts * 0.3 * 300.0 * (s / 300.0).sin()
}

/// The instantaneous power of [`energy_j`].
pub(super) fn power_w(watts: f64, from: i64, t: i64) -> f64 {
    let s = (t - from) as f64 / 1000.0;
    watts + watts * 0.3 * (s / 300.0).cos()
}

/// One card as the test builds it.
pub(super) struct Card {
    /// DCGM's `instance`.
    pub(super) instance: &'static str,
    pub(super) host: &'static str,
    pub(super) bus_id: &'static str,
    pub(super) watts: f64,
    /// Energy counter samples, mJ (none: the card has no counter series).
    pub(super) counter: Option<Vec<(i64, f64)>>,
    /// Power gauge samples, W.
    pub(super) gauge: Option<Vec<(i64, f64)>>,
    /// MIG instances (GPU_I_ID, GPU_I_PROFILE): one series each.
    pub(super) mig: &'static [(&'static str, &'static str)],
    /// (VM, mode, share label, profile, info sample times, label form of the bus id).
    pub(super) holders: Vec<Holding>,
}

pub(super) struct Holding {
    pub(super) vm: &'static str,
    pub(super) mode: &'static str,
    pub(super) share: Option<&'static str>,
    pub(super) profile: Option<&'static str>,
    pub(super) info: Vec<i64>,
    pub(super) bus_label: &'static str,
}

impl Holding {
    pub(super) fn new(vm: &'static str, info: Vec<i64>) -> Self {
        Self {
            vm,
            mode: "passthrough",
            share: Some("1"),
            profile: None,
            info,
            bus_label: "",
        }
    }
}

/// A counter in mJ sampled at `times`, reset to 0 at `reload` (the driver
/// reloaded then: it counts again from there).
pub(super) fn counter(watts: f64, times: &[i64], reload: Option<i64>) -> Vec<(i64, f64)> {
    times
        .iter()
        .map(|&t| {
            let from = reload.filter(|r| t >= *r).unwrap_or(T0 - HOUR);
            (t, energy_j(watts, from, t) * 1000.0)
        })
        .collect()
}

/// The series of `cards`: DCGM's energy counters and power gauges, and the
/// holders' info series.
pub(super) struct GpuSeries {
    pub(super) counters: Vec<TestSeries>,
    pub(super) gauges: Vec<TestSeries>,
    pub(super) infos: Vec<TestSeries>,
}

/// Every series of `cards`.
pub(super) fn gpu_series(cards: &[Card]) -> GpuSeries {
    let mut counters = Vec::new();
    let mut gauges = Vec::new();
    let mut infos = Vec::new();
    for (i, card) in cards.iter().enumerate() {
        let uuid = format!("GPU-{i:08x}-0000-0000-0000-000000000000");
        let base = vec![
            ("instance", card.instance),
            ("gpu", "0"),
            ("UUID", uuid.as_str()),
            ("pci_bus_id", card.bus_id),
            ("device", "nvidia0"),
            ("modelName", A100),
        ];
        let instances: Vec<Vec<(&str, &str)>> = if card.mig.is_empty() {
            vec![base.clone()]
        } else {
            card.mig
                .iter()
                .map(|(id, profile)| {
                    let mut l = base.clone();
                    l.extend([("GPU_I_ID", *id), ("GPU_I_PROFILE", *profile)]);
                    l
                })
                .collect()
        };
        for l in &instances {
            if let Some(samples) = &card.counter {
                counters.push(TestSeries {
                    labels: labels(l),
                    samples: samples.clone(),
                });
            }
            if let Some(samples) = &card.gauge {
                gauges.push(TestSeries {
                    labels: labels(l),
                    samples: samples.clone(),
                });
            }
        }
        for h in &card.holders {
            let bus = if h.bus_label.is_empty() {
                card.bus_id
            } else {
                h.bus_label
            };
            let mut l = vec![
                ("uuid", h.vm),
                ("host", card.host),
                ("pci_bus_id", bus),
                ("gpu_uuid", uuid.as_str()),
                ("mode", h.mode),
            ];
            l.extend(h.share.map(|s| ("share", s)));
            l.extend(h.profile.map(|p| ("profile", p)));
            infos.push(TestSeries {
                labels: labels(&l),
                samples: h.info.iter().map(|t| (*t, 1.0)).collect(),
            });
        }
    }
    GpuSeries {
        counters,
        gauges,
        infos,
    }
}

/// Every series of `cards` and the VMs' CPU time, as OpenMetrics.
fn openmetrics(cards: &[Card], vms: &[(&str, &str, (i64, i64))]) -> String {
    let GpuSeries {
        counters,
        gauges,
        infos,
    } = gpu_series(cards);
    let cpu: Vec<TestSeries> = vms
        .iter()
        .enumerate()
        .map(|(i, (vm, instance, life))| TestSeries {
            labels: labels(&[("uuid", vm), ("instance", instance)]),
            samples: scrapes(500 + i as u64, *life, true)
                .into_iter()
                .map(|t| (t, (t - life.0) as f64 / 1000.0 * 0.5))
                .collect(),
        })
        .collect();
    // DCGM's exporter writes its counter without `_total`: backfilled as
    // a gauge family, it is stored under its own name.
    openmetrics_with_gauges(
        &[(CPU, &cpu)],
        &[(COUNTER, &counters), (GAUGE, &gauges), (INFO, &infos)],
    )
}

/// One of the model's GPU readings.
pub(super) struct GotCard {
    pub(super) joules: f64,
    pub(super) covered_s: f64,
    pub(super) counter: bool,
    /// By VM uuid.
    pub(super) holdings: HashMap<String, GotHolding>,
}

/// One holding of a [`GotCard`].
#[derive(Clone, Copy, Debug)]
pub(super) struct GotHolding {
    pub(super) mode: GpuMode,
    pub(super) share: f64,
    pub(super) held_s: f64,
    pub(super) joules: f64,
}

impl GotCard {
    /// The VM's part: its joules × share.
    fn part(&self, vm: &str) -> f64 {
        let h = self.holdings[vm];
        h.joules * h.share
    }
}

/// The model's GPU readings by (host, bus id).
pub(super) fn gpus(gathered: &Gathered) -> HashMap<(String, String), GotCard> {
    let input = &gathered.input;
    input
        .gpus
        .iter()
        .map(|g| {
            let holdings = g
                .holdings
                .iter()
                .map(|h| {
                    let p = &input.placements[h.placement as usize];
                    assert_eq!(p.host, Some(g.host), "a holding is on the card's host");
                    let vm = input.vms[p.vm as usize].uuid.clone();
                    let holding = GotHolding {
                        mode: h.mode,
                        share: h.share,
                        held_s: h.held_s,
                        joules: h.joules,
                    };
                    (vm, holding)
                })
                .collect();
            let key = (input.hosts[g.host as usize].clone(), g.bus_id.clone());
            let card = GotCard {
                joules: g.energy.value,
                covered_s: g.energy.covered_s,
                counter: g.counter,
                holdings,
            };
            (key, card)
        })
        .collect()
}

/// The `cpu` and `gpu` measurements of `text`'s policy gathered over `window`.
pub(super) fn gather(text: &str, url: &str, window: Window) -> Gathered {
    let policy = Policy::parse(Source::new(Path::new("gpu.toml"), text.into())).unwrap();
    let measurements = [
        Measurement::CpuTime("cpu".into()),
        Measurement::Gpu(GpuSpec {
            name: "gpu".into(),
            max_gap_s: None,
        }),
    ];
    gather_from(&policy, &measurements, url, window)
}

pub(super) fn close(got: f64, want: f64, what: &str) {
    assert!(
        rel_err(got, want) <= 1e-9 || (got - want).abs() <= 1e-9,
        "{what}: got {got}, reference {want}"
    );
}

/// The reference's view of `card` in `[W0, W1]`, holders in `card.holders`' order.
pub(super) fn reference(card: &Card, shares: &[f64]) -> (RefCard, bool) {
    let holders: Vec<RefHolder> = card
        .holders
        .iter()
        .zip(shares)
        .map(|(h, share)| RefHolder {
            info: h.info.clone(),
            share: *share,
        })
        .collect();
    match &card.counter {
        Some(samples) => {
            let joules: Vec<(i64, f64)> = samples.iter().map(|(t, v)| (*t, v / 1000.0)).collect();
            (gc1(&joules, W0, W1, &holders, MAX_GAP).unwrap(), true)
        }
        None => {
            let samples = card.gauge.as_ref().unwrap();
            (gg1(samples, W0, W1, &holders, MAX_GAP).unwrap(), false)
        }
    }
}

/// A VM of [`scenario`]: (uuid, its libvirt exporter's instance, life).
pub(super) type ScenarioVm = (&'static str, &'static str, (i64, i64));

/// Three GPU hosts over three hours: a VM with two passthrough cards, a card
/// handed between VMs across a driver reload, a card held by a VM no series
/// measured, a MIG card shared by two VMs (one arrives late), an idle card, a
/// vGPU, a gauge-only card with a gap, a card with both series whose holder
/// leaves; and the VMs' lives.
pub(super) fn scenario() -> (Vec<Card>, Vec<ScenarioVm>) {
    let life = (T0, END);
    let hand_over = W0 + 1800 * S;
    let dcgm = |seed| scrapes(seed, life, true);
    // Info samples of one VM: its own scrape phase, over `life`.
    let info = |seed, from: i64, to: i64| scrapes(seed, (from, to), true);
    let mut cards = vec![
        // A VM with two passthrough cards.
        Card {
            instance: "gpu-01:9400",
            host: "gpu-01",
            bus_id: "00000000:3B:00.0",
            watts: 300.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: vec![Holding::new("x", info(11, T0, END))],
        },
        Card {
            instance: "gpu-01:9400",
            host: "gpu-01",
            bus_id: "00000000:5E:00.0",
            watts: 280.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: vec![Holding::new("x", info(11, T0, END))],
        },
        // Handed from x to y half way, the driver reloaded 40 minutes in.
        Card {
            instance: "gpu-01:9400",
            host: "gpu-01",
            bus_id: "00000000:AF:00.0",
            watts: 200.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: vec![
                Holding::new("x", info(11, T0, hand_over - 10 * S)),
                Holding::new("y", info(12, hand_over + 5 * S, END)),
            ],
        },
        // Held by a VM no series measured: left out, its part at the host.
        Card {
            instance: "gpu-01:9400",
            host: "gpu-01",
            bus_id: "00000000:DA:00.0",
            watts: 90.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: vec![Holding::new("ghost", info(13, T0, END))],
        },
        // MIG: p with 3 of 7 slices all along, q with 2 from 20 minutes in.
        Card {
            instance: "gpu-02:9400",
            host: "gpu-02",
            bus_id: "00000000:3B:00.0",
            watts: 250.0,
            counter: None,
            gauge: None,
            mig: &[("2", "2g.20gb"), ("1", "3g.40gb")],
            holders: vec![
                Holding {
                    mode: "mig",
                    share: None,
                    profile: Some("3g.40gb"),
                    ..Holding::new("p", info(14, T0, END))
                },
                Holding {
                    mode: "mig",
                    share: None,
                    profile: Some("2g.20gb"),
                    ..Holding::new("q", info(15, W0 + 1200 * S, END))
                },
            ],
        },
        // Nobody holds it.
        Card {
            instance: "gpu-02:9400",
            host: "gpu-02",
            bus_id: "00000000:AF:00.0",
            watts: 60.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: Vec::new(),
        },
        // vGPU: v holds a quarter of it (a type with 4 instances) all along.
        Card {
            instance: "gpu-02:9400",
            host: "gpu-02",
            bus_id: "00000000:D8:00.0",
            watts: 180.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: vec![Holding {
                mode: "vgpu",
                share: Some("0.25"),
                ..Holding::new("v", info(17, T0, END))
            }],
        },
        // Only a power gauge, with a 10-minute gap.
        Card {
            instance: "gpu-03:9400",
            host: "gpu-03",
            bus_id: "00000000:3B:00.0",
            watts: 150.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: vec![Holding::new("z", info(16, T0, END))],
        },
        // Both series (the counter wins); z leaves 40 minutes in; its info
        // series writes the bus id as sysfs does.
        Card {
            instance: "gpu-03:9400",
            host: "gpu-03",
            bus_id: "00000000:AF:00.0",
            watts: 220.0,
            counter: None,
            gauge: None,
            mig: &[],
            holders: vec![Holding {
                bus_label: "0000:af:00.0",
                ..Holding::new("z", info(16, T0, W0 + 2400 * S))
            }],
        },
    ];
    for (i, card) in cards.iter_mut().enumerate() {
        let times = dcgm(100 + i as u64);
        let reload = (card.bus_id == "00000000:AF:00.0" && card.host == "gpu-01")
            .then_some(W0 + 2400 * S + 7 * S);
        let gauge_only = card.host == "gpu-03" && card.bus_id.ends_with("3B:00.0");
        let both = card.host == "gpu-03" && card.bus_id.ends_with("AF:00.0");
        if !gauge_only {
            card.counter = Some(counter(card.watts, &times, reload));
        }
        if gauge_only || both {
            let gap = (W0 + 1200 * S, W0 + 1800 * S);
            card.gauge = Some(
                times
                    .iter()
                    .filter(|t| !gauge_only || **t < gap.0 || **t > gap.1)
                    .map(|&t| (t, power_w(card.watts, T0, t)))
                    .collect(),
            );
        }
    }
    let vms = vec![
        ("x", "gpu-01:9177", (T0, END)),
        ("y", "gpu-01:9177", (hand_over, END)),
        ("p", "gpu-02:9177", (T0, END)),
        ("q", "gpu-02:9177", (W0 + 1200 * S, END)),
        ("v", "gpu-02:9177", (T0, END)),
        ("z", "gpu-03:9177", (T0, W0 + 2400 * S)),
    ];
    (cards, vms)
}

/// A holding's share of its card: a MIG profile's slices of 7, else its
/// `share` label.
pub(super) fn share_of(h: &Holding) -> f64 {
    match h.profile {
        Some(p) => p[..1].parse::<f64>().unwrap() / 7.0,
        None => h.share.map_or(1.0, |s| s.parse().unwrap()),
    }
}

#[test]
fn gpus_are_gathered_by_gc1_and_gg1_exactly() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let (cards, vms) = scenario();
    let prometheus = Prometheus::start(&openmetrics(&cards, &vms));
    let window = Window::new(W0, W1).unwrap();
    let got = gpus(&gather(POLICY, &prometheus.url, window));

    assert_eq!(got.len(), cards.len(), "{:?}", got.keys());
    for card in &cards {
        let key = (card.host.to_owned(), card.bus_id.to_owned());
        let GotCard {
            joules: energy,
            covered_s,
            counter,
            holdings,
        } = &got[&key];
        let shares: Vec<f64> = card.holders.iter().map(share_of).collect();
        let (want, from_counter) = reference(card, &shares);
        let what = format!("{} {}", card.host, card.bus_id);
        close(*energy, want.energy, &what);
        close(*covered_s, want.covered_s, &format!("{what} covered"));
        assert_eq!(*counter, from_counter, "{what}");
        let placed: Vec<_> = card.holders.iter().filter(|h| h.vm != "ghost").collect();
        assert_eq!(holdings.len(), placed.len(), "{what}: {holdings:?}");
        for ((h, share), (joules, held_s)) in card.holders.iter().zip(&shares).zip(&want.holders) {
            if h.vm == "ghost" {
                continue;
            }
            let GotHolding {
                mode,
                share: got_share,
                held_s: got_held,
                joules: got_joules,
            } = holdings[h.vm];
            let what = format!("{what}: {}", h.vm);
            close(got_joules, *joules, &what);
            close(got_held, *held_s, &format!("{what} held"));
            close(got_share, *share, &format!("{what} share"));
            let want_mode = match h.mode {
                "mig" => GpuMode::Mig,
                "vgpu" => GpuMode::Vgpu,
                _ => GpuMode::Passthrough,
            };
            assert_eq!(mode, want_mode, "{what}");
        }
    }
    // What the cases are about, beyond agreeing with the reference.
    let at = |host: &str, bus: &str| &got[&(host.to_owned(), bus.to_owned())];
    let handed = at("gpu-01", "00000000:AF:00.0");
    let held: f64 = handed.holdings.values().map(|h| h.joules).sum();
    assert!(
        handed.holdings.len() == 2 && held < handed.joules,
        "the gap of the hand-over stays at the host"
    );
    let samples_b = cards[2].counter.as_ref().unwrap();
    let dropped = samples_b
        .windows(2)
        .any(|p| p[1].1 < p[0].1 && p[1].0 > W0 && p[1].0 <= W1);
    assert!(
        dropped && handed.joules > 100_000.0,
        "the reload's drop counts as a reset"
    );
    assert!(
        at("gpu-02", "00000000:AF:00.0").holdings.is_empty(),
        "an idle card: no holders"
    );
    assert!(
        at("gpu-01", "00000000:DA:00.0").holdings.is_empty(),
        "ghost has no placement"
    );
    let gap = at("gpu-03", "00000000:3B:00.0");
    assert!(
        !gap.counter && gap.covered_s < 3200.0,
        "the gauge's gap is uncovered: {}",
        gap.covered_s
    );
    assert!(
        at("gpu-03", "00000000:AF:00.0").counter,
        "with both, the counter"
    );
    let mig = at("gpu-02", "00000000:3B:00.0");
    let mig_whole = mig.joules;
    let parts: f64 = mig.holdings.values().map(|h| h.share * h.joules).sum();
    assert!(
        parts < mig_whole * 5.0 / 7.0,
        "free slices stay at the host"
    );
}

/// ENERGY.md's worked example, scraped every 15 s from −10 s, through
/// Prometheus and the reference alike.
#[test]
fn the_specs_worked_example() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let times = scrapes(0, (W0 - 10 * S, W1 + 5 * S), false);
    let steady = |watts: f64| -> Vec<(i64, f64)> {
        times
            .iter()
            .map(|&t| (t, watts * (t - W0 + 10 * S) as f64))
            .collect()
    };
    // Card B: reloaded between 2390 s and 2405 s, 1 200 J at 2405 s.
    let reloaded: Vec<(i64, f64)> = steady(200.0)
        .into_iter()
        .map(|(t, v)| {
            if t >= W0 + 2405 * S {
                (t, 1.2e6 + 200.0 * (t - W0 - 2405 * S) as f64)
            } else {
                (t, v)
            }
        })
        .collect();
    let held = |from: i64, to: i64| -> Vec<i64> {
        times
            .iter()
            .copied()
            .filter(|t| *t >= W0 + from * S && *t <= W0 + to * S)
            .collect()
    };
    let cards = [
        Card {
            instance: "gpu-01:9400",
            host: "gpu-01",
            bus_id: "00000000:3B:00.0",
            watts: 300.0,
            counter: Some(steady(300.0)),
            gauge: None,
            mig: &[],
            holders: vec![Holding::new("x", held(-10, 3590))],
        },
        Card {
            instance: "gpu-01:9400",
            host: "gpu-01",
            bus_id: "00000000:AF:00.0",
            watts: 200.0,
            counter: Some(reloaded),
            gauge: None,
            mig: &[],
            holders: vec![
                Holding::new("x", held(-10, 1790)),
                Holding::new("y", held(1805, 3590)),
            ],
        },
        Card {
            instance: "gpu-02:9400",
            host: "gpu-02",
            bus_id: "00000000:3B:00.0",
            watts: 250.0,
            counter: Some(steady(250.0)),
            gauge: None,
            mig: &[("1", "3g.40gb"), ("2", "2g.20gb")],
            holders: vec![
                Holding {
                    mode: "mig",
                    share: None,
                    profile: Some("3g.40gb"),
                    ..Holding::new("p", held(-10, 3590))
                },
                Holding {
                    mode: "mig",
                    share: None,
                    profile: Some("2g.20gb"),
                    ..Holding::new("q", held(-10, 3590))
                },
            ],
        },
    ];
    let vms = [
        ("x", "gpu-01:9177", (T0, END)),
        ("y", "gpu-01:9177", (W0 + 1800 * S, END)),
        ("p", "gpu-02:9177", (T0, END)),
        ("q", "gpu-02:9177", (T0, END)),
    ];
    let prometheus = Prometheus::start(&openmetrics(&cards, &vms));
    let got = gpus(&gather(
        POLICY,
        &prometheus.url,
        Window::new(W0, W1).unwrap(),
    ));
    let card = |host: &str, bus: &str| &got[&(host.to_owned(), bus.to_owned())];
    // The spec's numbers, then the reference's on the same samples.
    let (a, b, c) = (
        card("gpu-01", "00000000:3B:00.0"),
        card("gpu-01", "00000000:AF:00.0"),
        card("gpu-02", "00000000:3B:00.0"),
    );
    close(a.joules, 1_080_000.0, "A");
    close(a.part("x"), 1_080_000.0, "A: x");
    close(b.joules, 718_200.0, "B");
    close(b.part("x"), 360_000.0, "B: x");
    close(b.part("y"), 355_200.0, "B: y");
    close(b.joules - b.part("x") - b.part("y"), 3_000.0, "B: unheld");
    close(a.part("x") + b.part("x"), 1_440_000.0, "x's GPU energy");
    close(c.joules, 900_000.0, "C");
    close(c.part("p"), 900_000.0 * 3.0 / 7.0, "C: p");
    close(c.part("q"), 900_000.0 * 2.0 / 7.0, "C: q");
    for (card, shares) in cards
        .iter()
        .zip([&[1.0][..], &[1.0, 1.0], &[3.0 / 7.0, 2.0 / 7.0]])
    {
        let (want, _) = reference(card, shares);
        let got = &got[&(card.host.to_owned(), card.bus_id.to_owned())];
        close(want.energy, got.joules, card.bus_id);
        for (h, (joules, _)) in card.holders.iter().zip(&want.holders) {
            close(*joules, got.holdings[h.vm].joules, h.vm);
        }
    }
}

/// Without `[gpu]`, a model declaring `gpu` gets none, and gathers as before.
#[test]
fn without_a_gpu_table_the_model_sees_no_gpus() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let cards = [one_card(
        3,
        vec![Holding::new("x", scrapes(4, (T0, END), true))],
    )];
    let prometheus = Prometheus::start(&openmetrics(&cards, &[("x", "gpu-01:9177", (T0, END))]));
    let text = POLICY.replace("[gpu]\n", "");
    let gathered = gather(&text, &prometheus.url, Window::new(W0, W1).unwrap());
    assert!(gathered.input.gpus.is_empty());
    assert_eq!(gathered.input.vms.len(), 1);
    assert_eq!(gathered.input.hosts, ["gpu-01"]);
}

/// `[gpu] key = "gpu-uuid"`: DCGM inside passthrough guests, its series
/// labelled with the guest's exporter and the guest's bus ids, joined to the
/// holders' card by the card's `UUID` (their `gpu_uuid`). Card A is x's all
/// along; card B is handed from x to y, each guest's DCGM measuring it in
/// turn (two series of one UUID, one after the other: they add up), and x's
/// DCGM is scraped by a second job too (a series of A's UUID at the same
/// time as the first: read once). Card C's UUID no holder names: the
/// hypervisor's own DCGM measures it, an unheld card of that host.
#[test]
fn gpu_uuid_joins_the_guests_dcgm_to_the_holders_cards() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let hand_over = W0 + 1700 * S;
    let (uuid_a, uuid_b, uuid_c) = (
        "GPU-5d1e8a3c-2b4f-4c1e-9a7d-0c3e5f7a9b1d",
        "GPU-8f2c4e6a-1d3b-4f5e-8c7a-9b0d2e4f6a8c",
        "GPU-3a5c7e9b-4d6f-4a8c-b0e2-1f3a5c7e9b0d",
    );
    let (bus_a, bus_b, bus_c) = ("00000000:3B:00.0", "00000000:AF:00.0", "00000000:DA:00.0");
    // x's guest sees A at 00:05.0 and B at 00:06.0; y's guest sees B at 00:05.0.
    let x_times = scrapes(21, (T0, hand_over - 10 * S), true);
    let x_all = scrapes(22, (T0, END), true);
    let y_times = scrapes(23, (hand_over + 20 * S, END), true);
    let a = counter(310.0, &x_all, None);
    let b_x = counter(190.0, &x_times, None);
    // y's guest loaded its driver on taking the card: its counter starts there.
    let b_y = counter(190.0, &y_times, Some(hand_over + 12 * S));
    let c = counter(55.0, &scrapes(24, (T0, END), true), None);
    let dcgm = |instance: &str, bus: &str, uuid: &str, samples: &[(i64, f64)]| TestSeries {
        labels: labels(&[
            ("instance", instance),
            ("gpu", "0"),
            ("UUID", uuid),
            ("pci_bus_id", bus),
            ("device", "nvidia0"),
            ("modelName", A100),
        ]),
        samples: samples.to_vec(),
    };
    let counters = vec![
        dcgm("x-guest:9400", "00000000:00:05.0", uuid_a, &a),
        dcgm("x-guest.job2:9400", "00000000:00:05.0", uuid_a, &a),
        dcgm("x-guest:9400", "00000000:00:06.0", uuid_b, &b_x),
        dcgm("y-guest:9400", "00000000:00:05.0", uuid_b, &b_y),
        dcgm("gpu-01:9400", bus_c, uuid_c, &c),
    ];
    // The holders, as the hypervisor's daemon sees them: host bus ids.
    let x_info = scrapes(25, (T0, END), true);
    let x_info_b = scrapes(25, (T0, hand_over - 15 * S), true);
    let y_info = scrapes(26, (hand_over + 15 * S, END), true);
    let info = |vm: &str, bus: &str, uuid: &str, times: &[i64]| TestSeries {
        labels: labels(&[
            ("uuid", vm),
            ("host", "gpu-01"),
            ("pci_bus_id", bus),
            ("gpu_uuid", uuid),
            ("mode", "passthrough"),
            ("share", "1"),
        ]),
        samples: times.iter().map(|t| (*t, 1.0)).collect(),
    };
    let infos = vec![
        info("x", bus_a, uuid_a, &x_info),
        info("x", bus_b, uuid_b, &x_info_b),
        info("y", bus_b, uuid_b, &y_info),
    ];
    let cpu: Vec<TestSeries> = [("x", (T0, END)), ("y", (hand_over, END))]
        .iter()
        .enumerate()
        .map(|(i, (vm, life))| TestSeries {
            labels: labels(&[("uuid", vm), ("instance", "gpu-01:9177")]),
            samples: scrapes(600 + i as u64, *life, true)
                .into_iter()
                .map(|t| (t, (t - life.0) as f64 / 1000.0 * 0.5))
                .collect(),
        })
        .collect();
    let text = openmetrics_with_gauges(&[(CPU, &cpu)], &[(COUNTER, &counters), (INFO, &infos)]);
    let prometheus = Prometheus::start(&text);
    let policy = POLICY.replace("[gpu]\n", "[gpu]\nkey = \"gpu-uuid\"\n");
    let gathered = gather(&policy, &prometheus.url, Window::new(W0, W1).unwrap());
    let got = gpus(&gathered);

    // The spec's join, by the test: a series' card is its holders' (host,
    // bus id) by UUID, else its own host label and bus id.
    let mut keys: Vec<_> = got.keys().cloned().collect();
    keys.sort();
    let key = |bus: &str| ("gpu-01".to_owned(), bus.to_owned());
    assert_eq!(
        keys,
        [key(bus_a), key(bus_b), key(bus_c)],
        "no guest is a host"
    );
    assert_eq!(gathered.input.hosts, ["gpu-01"]);
    let holder = |times: &[i64]| RefHolder {
        info: times.to_vec(),
        share: 1.0,
    };
    let in_j = |samples: &[(i64, f64)]| -> Vec<(i64, f64)> {
        samples.iter().map(|(t, v)| (*t, v / 1000.0)).collect()
    };
    let gc1_of = |samples: &[(i64, f64)], holders: &[RefHolder]| {
        gc1(&in_j(samples), W0, W1, holders, MAX_GAP)
    };
    // A: one of its two simultaneous series, never both.
    let want_a = gc1_of(&a, &[holder(&x_info)]).unwrap();
    let got_a = &got[&key(bus_a)];
    close(got_a.joules, want_a.energy, "A");
    close(got_a.covered_s, want_a.covered_s, "A covered");
    close(got_a.holdings["x"].joules, want_a.holders[0].0, "A: x");
    close(got_a.holdings["x"].held_s, want_a.holders[0].1, "A: x held");
    // B: x's guest's series then y's, added.
    let b_holders = [holder(&x_info_b), holder(&y_info)];
    let want_b = added([
        gc1_of(&b_x, &b_holders).unwrap(),
        gc1_of(&b_y, &b_holders).unwrap(),
    ])
    .unwrap();
    let got_b = &got[&key(bus_b)];
    close(got_b.joules, want_b.energy, "B");
    close(got_b.covered_s, want_b.covered_s, "B covered");
    for (i, vm) in ["x", "y"].into_iter().enumerate() {
        close(got_b.holdings[vm].joules, want_b.holders[i].0, vm);
        close(got_b.holdings[vm].held_s, want_b.holders[i].1, vm);
    }
    assert!(
        want_b.holders[1].0 > 0.4 * want_b.energy && want_b.holders[0].0 > 0.4 * want_b.energy,
        "both guests' series count"
    );
    // C: unheld, at the host its series names.
    let want_c = gc1_of(&c, &[]).unwrap();
    let got_c = &got[&key(bus_c)];
    close(got_c.joules, want_c.energy, "C");
    assert!(got_c.holdings.is_empty() && got_c.counter);
}

/// One passthrough card of 300 W on gpu-01, its DCGM counter scraped every
/// 15 s from a phase of `seed`, held as `holders` say.
fn one_card(seed: u64, holders: Vec<Holding>) -> Card {
    let times = scrapes(seed, (T0, END), true);
    Card {
        instance: "gpu-01:9400",
        host: "gpu-01",
        bus_id: "00000000:3B:00.0",
        watts: 300.0,
        counter: Some(counter(300.0, &times, None)),
        gauge: None,
        mig: &[],
        holders,
    }
}

/// `[gpu]` where Prometheus has no card series, or cards but nobody holding
/// them: extract says so, naming the metrics and what to check. Silence
/// would look like GPUs that drew nothing, or like cards nobody used.
#[test]
fn a_gpu_table_without_cards_or_without_holders_says_so() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let unheld = one_card(5, Vec::new());
    let vms = [("x", "gpu-01:9177", (T0, END))];
    let dir = tempfile::tempdir().unwrap();
    let policy = super::wattson::write_policy(dir.path(), "gpu.toml", POLICY);
    for (cards, said, unsaid) in [
        (
            Vec::new(),
            "[gpu]: no series of `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` or \
             `DCGM_FI_DEV_POWER_USAGE`",
            "no VM held a GPU",
        ),
        (
            vec![unheld],
            "[gpu]: no series of `wattson_vm_gpu_info`",
            "no GPU energy",
        ),
    ] {
        let prometheus = Prometheus::start(&openmetrics(&cards, &vms));
        let out = super::wattson::extract(&policy, &prometheus.url, W0, W1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
        assert!(!stderr.contains(unsaid), "{stderr}");
    }
}

/// A VM that stopped in the last lookback before the window is completed in
/// it with 0 J (`docs/ENERGY.md#record-status`), and, the window having GPU
/// readings and its model attributing them, with `gpu_j` 0: a project sum
/// over it stays known. (libvirt-joules, here on the CPU-time counter as
/// its per-VM counter: a model that needs no host meter.)
#[test]
fn a_vm_completed_at_the_windows_start_has_0_gpu_joules() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let card = one_card(7, vec![Holding::new("x", scrapes(8, (T0, END), true))]);
    let vms = [
        ("x", "gpu-01:9177", (T0, END)),
        ("s", "gpu-01:9177", (T0, W0 - 2 * 60 * S)),
    ];
    let prometheus = Prometheus::start(&openmetrics(&[card], &vms));
    let text = POLICY.replace(
        "plugin = \"rapl-share\"\n",
        &format!("plugin = \"libvirt-joules\"\nparams = {{ metric = \"{CPU}_total\" }}\n"),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = super::wattson::write_policy(dir.path(), "gpu.toml", &text);
    let out = super::wattson::extract(&policy, &prometheus.url, W0, W1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let records = super::wattson::jsonl_records(&out);
    let record = |uuid: &str| {
        records
            .iter()
            .find(|r| r["vm_uuid"] == uuid)
            .unwrap_or_else(|| panic!("no record of {uuid}: {records:?}\n{stderr}"))
    };
    assert!(
        record("x")["gpu_j"].as_f64().unwrap() > 1e6,
        "{}",
        record("x")
    );
    let s = record("s");
    assert_eq!(s["status"], "completed", "{s}");
    assert_eq!(s["energy_joules"], 0.0, "{s}");
    assert_eq!(s["gpu_j"], 0.0, "{s}");
}
