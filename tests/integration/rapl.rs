//! RAPL from a powercap fixture tree with the real layout: zones nested under
//! `devices/virtual/powercap/intel-rapl/`, each also a top-level symlink in
//! `class/powercap/`; two packages (one with its power limit disabled), a dram
//! zone each, a core zone that must not be added, and a wraparound.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wattson::energy::counter::Boot;
use wattson::policy::{Policy, Source};
use wattson::runtime::{IdlePowerSpec, Measurement, RaplSpec};
use wattson::sources::rapl::{discover, host_zones, joules_between, sample};
use wattson::window::Window;

use super::data::{HOUR, MIN, Rng, T0, rel_err};
use super::prometheus::{Prometheus, TestSeries, free_port, openmetrics, ureq_get};
use super::support::gather_from;

pub(super) const RANGE: u64 = 262_143_328_850;

fn zone(dir: &Path, name: &str, energy_uj: u64, enabled: u8) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
    std::fs::write(dir.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    std::fs::write(dir.join("max_energy_range_uj"), format!("{RANGE}\n")).unwrap();
    std::fs::write(dir.join("enabled"), format!("{enabled}\n")).unwrap();
}

/// The fixture's zones: path under `intel-rapl/`, name, energy_uj, enabled.
pub(super) const ZONES: [(&str, &str, u64, u8); 5] = [
    ("intel-rapl:0", "package-0", 1_000_000_000, 1),
    ("intel-rapl:0/intel-rapl:0:0", "core", 600_000_000, 1),
    ("intel-rapl:0/intel-rapl:0:1", "dram", 50_000_000, 1),
    ("intel-rapl:1", "package-1", RANGE - 3_000_000, 0),
    ("intel-rapl:1/intel-rapl:1:0", "dram", 70_000_000, 1),
];

/// Builds the real layout under `root` (a `--path.sysfs` directory); returns
/// the `devices/…/intel-rapl` directory, where `energy_uj` files are bumped.
pub(super) fn powercap_tree(root: &Path) -> PathBuf {
    let devices = root.join("devices/virtual/powercap/intel-rapl");
    std::fs::create_dir_all(&devices).unwrap();
    std::fs::write(devices.join("enabled"), "1\n").unwrap();
    let class = root.join("class/powercap");
    std::fs::create_dir_all(&class).unwrap();
    symlink(&devices, class.join("intel-rapl")).unwrap();
    for (rel, name, energy, enabled) in ZONES {
        let dir = devices.join(rel);
        zone(&dir, name, energy, enabled);
        let top = rel.rsplit('/').next().unwrap();
        symlink(&dir, class.join(top)).unwrap();
    }
    devices
}

pub(super) fn bump(devices: &Path, rel: &str, value: u64) {
    std::fs::write(devices.join(rel).join("energy_uj"), format!("{value}\n")).unwrap();
}

#[test]
fn package_and_dram_once_each_wrap_aware() {
    let tmp = tempfile::tempdir().unwrap();
    let devices = powercap_tree(tmp.path());
    let class = tmp.path().join("class/powercap");

    let all = discover(&class).unwrap();
    assert_eq!(
        all.len(),
        5,
        "each zone once, though reachable twice: {all:?}"
    );
    let host = host_zones(&all, &[]);
    let mut names: Vec<&str> = host.iter().map(|z| z.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["dram", "dram", "package-0", "package-1"],
        "core is inside the package"
    );

    let before = sample(&host).unwrap();
    // 12 J, 7 J on package-0 / its dram; package-1 wraps: 3 J to the top + 5 J after; 2 J on its dram.
    bump(&devices, "intel-rapl:0", 1_012_000_000);
    bump(&devices, "intel-rapl:0/intel-rapl:0:0", 611_000_000);
    bump(&devices, "intel-rapl:0/intel-rapl:0:1", 57_000_000);
    bump(&devices, "intel-rapl:1", 5_000_000);
    bump(&devices, "intel-rapl:1/intel-rapl:1:0", 72_000_000);
    let after = sample(&host).unwrap();
    let joules = joules_between(&host, &before, &after, 10_000, Boot::Unknown);
    assert!(
        (joules - (12.0 + 7.0 + 8.0 + 2.0)).abs() < 1e-9,
        "{joules} J"
    );
    // The same drop across more than the gap limit (a reboot while nothing
    // sampled): a reset, counting the new 5 J, not a wrap.
    let joules = joules_between(&host, &before, &after, 300_001, Boot::Unknown);
    assert!(
        (joules - (12.0 + 7.0 + 5.0 + 2.0)).abs() < 1e-9,
        "{joules} J"
    );
    // Unless both samples are known to be of one boot (the daemon's boot
    // id): then it can only be a wrap, however long the gap.
    let joules = joules_between(&host, &before, &after, 3_600_000, Boot::Same);
    assert!(
        (joules - (12.0 + 7.0 + 8.0 + 2.0)).abs() < 1e-9,
        "{joules} J"
    );
}

#[test]
fn an_empty_tree_says_what_to_check() {
    let tmp = tempfile::tempdir().unwrap();
    let err = discover(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("no RAPL zones") && err.contains("intel_rapl"),
        "{err}"
    );
}

/// Debian's node_exporter with only the RAPL collector, reading a fixture tree.
struct NodeExporter {
    child: Child,
    target: String,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeExporter {
    fn start(sysfs: &Path) -> Self {
        let target = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--path.sysfs={}", sysfs.display()))
            .args(["--collector.disable-defaults", "--collector.rapl"])
            .arg(format!("--web.listen-address={target}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter (apt install prometheus-node-exporter)");
        let exporter = Self { child, target };
        let deadline = Instant::now() + Duration::from_secs(30);
        let metrics = format!("http://{}/metrics", exporter.target);
        while Instant::now() < deadline {
            if ureq_get(&metrics)
                .is_some_and(|(_, body)| body.contains("node_rapl_package_joules_total"))
            {
                return exporter;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("node_exporter at {} exports no RAPL zones", exporter.target);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// node_exporter reads the tree, a real Prometheus scrapes it every second,
/// and the `rapl` measurement of a window is C1w of package + dram per host:
/// the counters' own increments, a wraparound of package-1 included, core not added.
#[test]
fn rapl_through_node_exporter_and_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let devices = powercap_tree(tmp.path());
    let exporter = NodeExporter::start(tmp.path());
    let prometheus = Prometheus::scraping(&[exporter.target.as_str()], "1s");

    // Phases of 2.5 s (each seen by at least two scrapes): µJ added per phase
    // to package-0, core, dram-0, package-1, dram-1.
    let steps: [[u64; 5]; 4] = [
        [12_000_000, 11_000_000, 7_000_000, 1_000_000, 2_000_000],
        [30_500_000, 20_000_000, 4_250_000, 5_000_000, 1_000_000], // package-1 wraps
        [8_000_000, 1_000_000, 2_000_000, 2_500_000, 3_000_000],
        [1_000_000, 9_000_000, 500_000, 4_000_000, 750_000],
    ];
    let mut values: Vec<u64> = ZONES.iter().map(|z| z.2).collect();
    let hold = Duration::from_millis(2_500);
    let start_ms = {
        // Let Prometheus scrape the initial values first.
        std::thread::sleep(hold);
        now_ms() - 1_000
    };
    for step in steps {
        for (i, (rel, ..)) in ZONES.iter().enumerate() {
            values[i] = (values[i] + step[i]) % RANGE;
            bump(&devices, rel, values[i]);
        }
        std::thread::sleep(hold);
    }
    let end_ms = now_ms() - 1_000;
    // package + dram, never core; package-1's wrap counted as the increments themselves.
    let expected_uj: u64 = steps.iter().map(|s| s[0] + s[2] + s[3] + s[4]).sum();
    let expected = expected_uj as f64 / 1e6;

    let text = format!(
        r#"
[site]
name = "S"
compute_service = "c"
[prometheus]
url = "{}"
[inventory]
host_label = "instance"
host_regex = '^([^:]+)'
[rapl]
max_energy_range_uj = {{ package = {RANGE}, dram = {RANGE} }}
[model]
plugin = "libvirt-joules"
"#,
        prometheus.url
    );
    let policy = Policy::parse(Source::new(Path::new("rapl.toml"), text.clone())).unwrap();
    let window = Window::new(start_ms, end_ms).unwrap();
    let spec = Measurement::Rapl(RaplSpec {
        name: "host".into(),
        zones: Vec::new(),
    });
    let gathered = gather_from(
        &policy,
        std::slice::from_ref(&spec),
        &prometheus.url,
        window,
    );
    assert_eq!(
        gathered.input.hosts,
        ["127.0.0.1"],
        "host key: instance without its port"
    );
    let reading = gathered.input.measurements[0].hosts[0].expect("a reading");
    assert!(
        (reading.value - expected).abs() < 1e-9 * expected,
        "got {} J, want {expected} J",
        reading.value
    );

    // Without the dram zone's range, dram is read with C1 (its counters do
    // not wrap here: same joules), and the plan warns, saying where to find it.
    let text = text.replace(", dram = 262143328850", "");
    let policy = Policy::parse(Source::new(Path::new("rapl.toml"), text)).unwrap();
    let warnings = wattson::pipeline::plan_warnings(&policy, std::slice::from_ref(&spec));
    assert!(
        warnings.len() == 1
            && warnings[0].contains("zone(s) dram:")
            && warnings[0].contains("/sys/class/powercap"),
        "{warnings:?}"
    );
    let gathered = gather_from(
        &policy,
        std::slice::from_ref(&spec),
        &prometheus.url,
        window,
    );
    let reading = gathered.input.measurements[0].hosts[0].expect("a reading");
    assert!(
        (reading.value - expected).abs() < 1e-9 * expected,
        "got {} J, want {expected} J",
        reading.value
    );
}

/// node_exporter's counters of one zone (`path` under intel-rapl), backfilled:
/// a sample every 15 s with ±0.4 s jitter, `watts(t)` with ±10 % noise over
/// the interval before each sample, wrapping at `range_j`, none in `gap`.
fn zone_series(
    (index, path): (&str, &str),
    seed: u64,
    initial_j: f64,
    range_j: f64,
    gap: (i64, i64),
    watts: impl Fn(i64) -> f64,
) -> TestSeries {
    let mut rng = Rng::new(seed);
    let mut value = initial_j;
    let mut samples = Vec::new();
    let mut last: Option<i64> = None;
    let mut t = T0 + (rng.next_f64() * 15_000.0) as i64;
    while t <= T0 + 3 * HOUR {
        let ts = t + ((rng.next_f64() - 0.5) * 800.0) as i64;
        if !(gap.0..gap.1).contains(&ts) {
            if let Some(prev) = last {
                let dt = (ts - prev) as f64 / 1000.0;
                value = (value + dt * watts(ts) * (0.9 + 0.2 * rng.next_f64())) % range_j;
            }
            // node_exporter prints joules with µJ resolution.
            samples.push((ts, (value * 1e6).round() / 1e6));
            last = Some(ts);
        }
        t += 15_000;
    }
    TestSeries {
        labels: vec![
            ("index".into(), index.into()),
            ("instance".into(), "cmp-01:9100".into()),
            ("path".into(), format!("/sys/class/powercap/{path}")),
        ],
        samples,
    }
}

/// Idle power from RAPL counters through Prometheus (ENERGY.md): the least
/// whole-minute average of package + dram, each zone's increase over its span
/// in the minute, skipping minutes in which a zone drops (package-0 wraps in
/// the quietest minute, which must therefore not count) or has no sample (a
/// dram scrape gap inside the quiet stretch).
#[test]
fn idle_power_from_rapl_counters_skips_minutes_a_zone_drops_in() {
    let range_j = RANGE as f64 / 1e6;
    let dram_range_j = 65_712.999_613;
    let window = Window::new(T0 + HOUR - 7_300, T0 + 2 * HOUR - 7_300).unwrap();
    // The whole UTC minutes inside the window (it starts 7.3 s before one: 59).
    let first = (window.start_ms + MIN - 1) / MIN * MIN;
    let minute = move |k: i64| (first + k * MIN, first + (k + 1) * MIN);
    let quiet = (T0 + 70 * MIN, T0 + 80 * MIN);
    // Package-0 dips further in one whole minute of the quiet stretch.
    let dip = minute(17);
    let inside = |(a, b): (i64, i64), t: i64| (a..b).contains(&t);
    let package0 = move |t: i64| match () {
        _ if inside(dip, t) => 3.0,
        _ if inside(quiet, t) => 9.0,
        _ => 45.0,
    };
    let level =
        move |busy: f64, idle: f64| move |t: i64| if inside(quiet, t) { idle } else { busy };
    let no_gap = (0, 0);
    let dram_gap = (T0 + 69 * MIN + 30_000, T0 + 74 * MIN);
    let zone0 = ("0", "intel-rapl:0");
    // Place package-0's wrap in the middle of the dip: the same seed without a
    // wrap says how much it has counted there.
    let unwrapped = zone_series(zone0, 91, 0.0, f64::INFINITY, no_gap, package0);
    let mid = (dip.0 + dip.1) / 2;
    let counted_at_mid = unwrapped
        .samples
        .iter()
        .rfind(|(t, _)| *t <= mid)
        .unwrap()
        .1;
    let package = [
        zone_series(
            zone0,
            91,
            range_j - counted_at_mid - 1.0,
            range_j,
            no_gap,
            package0,
        ),
        zone_series(
            ("1", "intel-rapl:1"),
            92,
            1_000.0,
            range_j,
            no_gap,
            level(35.0, 7.0),
        ),
    ];
    let dram = [zone_series(
        ("0", "intel-rapl:0:0"),
        93,
        50.0,
        dram_range_j,
        dram_gap,
        level(6.0, 2.0),
    )];
    let wraps: Vec<i64> = package[0]
        .samples
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| w[1].0)
        .filter(|t| inside((window.start_ms, window.end_ms), *t))
        .collect();
    assert!(
        wraps.len() == 1 && inside(dip, wraps[0]),
        "package-0 wraps once in the window, in the dip: {wraps:?}"
    );
    let prometheus = Prometheus::start(&openmetrics(&[
        ("node_rapl_package_joules", &package),
        ("node_rapl_dram_joules", &dram),
    ]));

    // The rule, written out: per minute, every zone needs a base at or before
    // its start and a sample inside it, and must not drop between them; its
    // power is its increase over the span of the samples used.
    let zone_watts = |samples: &[(i64, f64)], (from, to): (i64, i64), skip_drops: bool| {
        let base = samples.iter().rfind(|(t, _)| *t <= from)?;
        let inside: Vec<&(i64, f64)> = samples
            .iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .collect();
        let last = inside.last()?;
        let (mut prev, mut joules) = (base.1, 0.0);
        for (_, v) in &inside {
            if *v < prev && skip_drops {
                return None;
            }
            joules += if *v >= prev {
                v - prev
            } else {
                v + range_j - prev
            };
            prev = *v;
        }
        Some(joules / ((last.0 - base.0) as f64 / 1000.0))
    };
    let zones = [&package[0].samples, &package[1].samples, &dram[0].samples];
    let rule = |skip_drops: bool| {
        let minutes: Vec<Option<f64>> = (0..59)
            .map(|k| {
                zones
                    .iter()
                    .map(|s| zone_watts(s, minute(k), skip_drops))
                    .sum()
            })
            .collect();
        let least = minutes.iter().flatten().copied().reduce(f64::min).unwrap();
        (least, minutes.iter().filter(|m| m.is_none()).count())
    };
    let (want, skipped) = rule(true);
    assert_eq!(
        skipped, 5,
        "4 whole minutes inside the dram gap, 1 with the wrap"
    );
    let (counting_the_wrap, _) = rule(false);
    assert!(
        counting_the_wrap < want - 1.0,
        "the dip minute would be the least ({counting_the_wrap} W) if its wrap were counted"
    );

    let text = format!(
        r#"
[site]
name = "S"
compute_service = "c"
[inventory]
host_label = "instance"
host_regex = '^([^:]+)'
[rapl]
max_energy_range_uj = {{ package = {RANGE}, dram = 65712999613 }}
[model]
plugin = "libvirt-joules"
"#
    );
    let policy = Policy::parse(Source::new(Path::new("idle.toml"), text)).unwrap();
    let measurements = [
        Measurement::Rapl(RaplSpec {
            name: "host".into(),
            zones: Vec::new(),
        }),
        Measurement::IdlePower(IdlePowerSpec {
            name: "idle".into(),
            meter: "host".into(),
            setting: "auto".into(),
        }),
    ];
    let gathered = gather_from(&policy, &measurements, &prometheus.url, window);
    assert_eq!(gathered.input.hosts, ["cmp-01"]);
    let idle = gathered.input.measurements[1].hosts[0].expect("an idle reading");
    assert!(
        rel_err(idle.value, want) <= 1e-9,
        "idle {} W, rule {want} W",
        idle.value
    );
    assert!(
        idle.value < 25.0,
        "the quiet minutes are found: {} W",
        idle.value
    );
    assert_eq!(
        idle.covered_s,
        54.0 * 60.0,
        "the measured minutes (59 less 5)"
    );
    // The host's energy over the window still counts the wrap (C1w).
    let energy = gathered.input.measurements[0].hosts[0].expect("host energy");
    let c1w: f64 = [
        (&package[0], range_j),
        (&package[1], range_j),
        (&dram[0], dram_range_j),
    ]
    .iter()
    .map(|(s, r)| {
        let used: Vec<f64> = s
            .samples
            .iter()
            .filter(|(t, _)| *t > window.start_ms && *t <= window.end_ms)
            .map(|(_, v)| *v)
            .collect();
        let base = s
            .samples
            .iter()
            .rfind(|(t, _)| *t <= window.start_ms)
            .unwrap()
            .1;
        std::iter::once(base)
            .chain(used)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|p| {
                if p[1] >= p[0] {
                    p[1] - p[0]
                } else {
                    p[1] + r - p[0]
                }
            })
            .sum::<f64>()
    })
    .sum();
    assert!(
        rel_err(energy.value, c1w) <= 1e-9,
        "{} J, C1w {c1w} J",
        energy.value
    );
}
