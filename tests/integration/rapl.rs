//! RAPL from a powercap fixture tree with the real layout: zones nested under
//! `devices/virtual/powercap/intel-rapl/`, each also a top-level symlink in
//! `class/powercap/`; two packages (one with its power limit disabled), a dram
//! zone each, a core zone that must not be added, and a wraparound.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wattson::pipeline::gather;
use wattson::policy::{Policy, Source};
use wattson::runtime::{Measurement, RaplSpec};
use wattson::sources::prometheus::{Client, PrometheusConfig};
use wattson::sources::rapl::{discover, host_zones, joules_between, sample};
use wattson::window::Window;

use super::prometheus::{Prometheus, free_port, ureq_get};

const RANGE: u64 = 262_143_328_850;

fn zone(dir: &Path, name: &str, energy_uj: u64, enabled: u8) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
    std::fs::write(dir.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    std::fs::write(dir.join("max_energy_range_uj"), format!("{RANGE}\n")).unwrap();
    std::fs::write(dir.join("enabled"), format!("{enabled}\n")).unwrap();
}

/// The fixture's zones: path under `intel-rapl/`, name, energy_uj, enabled.
const ZONES: [(&str, &str, u64, u8); 5] = [
    ("intel-rapl:0", "package-0", 1_000_000_000, 1),
    ("intel-rapl:0/intel-rapl:0:0", "core", 600_000_000, 1),
    ("intel-rapl:0/intel-rapl:0:1", "dram", 50_000_000, 1),
    ("intel-rapl:1", "package-1", RANGE - 3_000_000, 0),
    ("intel-rapl:1/intel-rapl:1:0", "dram", 70_000_000, 1),
];

/// Builds the real layout under `root` (a `--path.sysfs` directory); returns
/// the `devices/…/intel-rapl` directory, where `energy_uj` files are bumped.
fn powercap_tree(root: &Path) -> PathBuf {
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

fn bump(devices: &Path, rel: &str, value: u64) {
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
    let host = host_zones(&all);
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
    let joules = joules_between(&host, &before, &after);
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
    let client = Client::new(PrometheusConfig::with_url(&prometheus.url)).unwrap();
    let window = Window::new(start_ms, end_ms).unwrap();
    let spec = Measurement::Rapl(RaplSpec {
        name: "host".into(),
        zones: Vec::new(),
    });
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let gathered = tokio
        .block_on(gather(
            &policy,
            std::slice::from_ref(&spec),
            Some(&client),
            window,
        ))
        .unwrap();
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

    // Without the dram zone's range the window fails, saying where to find it.
    let text = text.replace(", dram = 262143328850", "");
    let policy = Policy::parse(Source::new(Path::new("rapl.toml"), text)).unwrap();
    let err = tokio
        .block_on(gather(
            &policy,
            std::slice::from_ref(&spec),
            Some(&client),
            window,
        ))
        .err()
        .expect("an error")
        .to_string();
    assert!(
        err.contains("max_energy_range_uj.dram") && err.contains("/sys/class/powercap"),
        "{err}"
    );
}
