//! Extract and the daemon measure alike: one scenario, fed once to two
//! daemons (a libvirt test-driver node, a powercap tree or a meter command
//! per host, CPU times fed by the test) and once, as the same samples, to
//! extract through a real Prometheus.
//!
//! The comparison is fair only where both see the same numbers: the daemon's
//! intervals are its pairs of consecutive samples, so extract runs one
//! window per interval (`step_secs = max_window_secs = 60`), and the daemon
//! samples on whole minutes, as it does when it runs (ticks fall on
//! multiples of the interval). A share model takes one CPU ratio per window,
//! so a longer extract window is a different (equally valid) split, not a
//! disagreement. `idle_power = "auto"` is the least minute of what each has
//! seen (the daemon: its history; extract: the window), so per-VM joules are
//! compared with the same listed idle watts, and `auto` itself is compared
//! where both have seen the same minutes: the daemon's idle power at the end
//! against extract's over the whole run (`docs/ENERGY.md#idle-power`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wattson::daemon::{DaemonState, Shared, Sources, sources};
use wattson::pipeline::Plan;
use wattson::policy::Policy;
use wattson::runtime::{Limits, Runtime};
use wattson::sources::libvirt::{CpuTimes, LibvirtError};

use super::data::{MIN, Rng, T0, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::rapl::{RANGE, ZONES, bump, powercap_tree};
use super::wattson::{command, secs};

pub(super) const HOSTS: [&str; 2] = ["cmp-01", "cmp-02"];
/// VMs in the scenario.
pub(super) const N: usize = 30;
/// Intervals (minutes) in the scenario.
pub(super) const STEPS: i64 = 40;
/// VM 3 starts at this tick, VM 4 stops after it, VM 5 migrates from
/// cmp-01 to cmp-02 after it.
pub(super) const START_AT: i64 = 10;
pub(super) const STOP_AT: i64 = 25;
pub(super) const MIGRATE_AT: i64 = 20;
/// Ticks at which the BMC of cmp-02 cannot be read: readings 8 minutes
/// apart, longer than the 300 s gap limit.
const BMC_DOWN: std::ops::RangeInclusive<i64> = 14..=20;
/// Listed idle power per host, watts.
const IDLE: [f64; 2] = [30.0, 25.0];

pub(super) fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn vcpus(i: usize) -> u32 {
    1 + (i % 4) as u32
}

/// The host VM `i` runs on at tick `k`, if any.
fn host_of(i: usize, k: i64) -> Option<usize> {
    match i {
        3 => (k >= START_AT).then_some(0),
        4 => (k <= STOP_AT).then_some(0),
        5 => Some(usize::from(k > MIGRATE_AT)),
        _ => Some(usize::from(i >= N / 2)),
    }
}

pub(super) fn tick_ms(k: i64) -> i64 {
    T0 + 7 * MIN + k * MIN
}

/// Every sample both sides see, by tick.
pub(super) struct Scenario {
    /// Per tick, per VM: (host, cumulative CPU seconds on that host).
    cpu: Vec<Vec<Option<(usize, f64)>>>,
    /// Per tick, per host, per zone of [`ZONES`]: `energy_uj`.
    rapl: Vec<[[u64; 5]; 2]>,
    /// Per tick, per host: the BMC's watts (none: unreadable).
    watts: Vec<[Option<f64>; 2]>,
}

impl Scenario {
    pub(super) fn new() -> Self {
        let mut rng = Rng::new(4242);
        let mut cpu = Vec::new();
        let mut totals: Vec<Option<(usize, f64)>> = vec![None; N];
        let mut rapl = Vec::new();
        let mut energy = [ZONES.map(|z| z.2), ZONES.map(|z| z.2)];
        // package-1 of cmp-01 is 20 minutes of its power short of its range.
        energy[0][3] = RANGE - 20 * 60 * 35_000_000;
        let mut watts = Vec::new();
        for k in 0..=STEPS {
            // CPU seconds over the minute before tick k, per host.
            let mut busy = [0.0; 2];
            for (i, total) in totals.iter_mut().enumerate() {
                *total = match (host_of(i, k), *total) {
                    (None, _) => None,
                    // Still on the same host: its counter goes on.
                    (Some(h), Some((was, seconds))) if was == h && k > 0 => {
                        let used = 60.0 * f64::from(vcpus(i)) * rng.next_f64() * 0.9;
                        busy[h] += used;
                        Some((h, seconds + used))
                    }
                    // New on this host: a new process, a counter from near 0.
                    (Some(h), _) => Some((h, 0.5 + 3.0 * rng.next_f64())),
                };
            }
            cpu.push(totals.clone());
            if k > 0 {
                for (h, zones) in energy.iter_mut().enumerate() {
                    // package, core (inside it), dram per socket, in µJ per minute.
                    let load = busy[h] / 60.0;
                    let package0 = 40.0 + 4.0 * load + 5.0 * rng.next_f64();
                    let package1 = 35.0 + 2.0 * load + 5.0 * rng.next_f64();
                    let add = [
                        package0,
                        0.6 * package0,
                        6.0 + rng.next_f64(),
                        package1,
                        5.0 + rng.next_f64(),
                    ];
                    for (value, w) in zones.iter_mut().zip(add) {
                        *value = (*value + (w * 60.0 * 1e6).round() as u64) % RANGE;
                    }
                }
            }
            rapl.push(energy);
            watts.push(std::array::from_fn(|h| {
                let down = h == 1 && BMC_DOWN.contains(&k);
                (!down).then(|| 150.0 + 20.0 * h as f64 + 3.0 * busy[h] / 60.0 + rng.next_f64())
            }));
        }
        Self { cpu, rapl, watts }
    }

    /// Adds `watts` to host `h`'s BMC reading at tick `k`, where it reads
    /// (a wall meter counts the GPUs too).
    pub(super) fn add_wall_watts(&mut self, h: usize, k: i64, watts: f64) {
        if let Some(w) = &mut self.watts[k as usize][h] {
            *w += watts;
        }
    }

    /// The VMs on host `h` at tick `k`: (VM, CPU seconds).
    pub(super) fn on_host(&self, h: usize, k: i64) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.cpu[k as usize]
            .iter()
            .enumerate()
            .filter_map(move |(i, at)| at.filter(|a| a.0 == h).map(|a| (i, a.1)))
    }

    /// The series extract reads, as node_exporter, the libvirt exporter and
    /// the IPMI exporter would have them scraped at the daemon's ticks, and
    /// the `gauges` families given (other exporters' series).
    pub(super) fn openmetrics(&self, gauges: &[(&str, &[TestSeries])]) -> String {
        let mut cpu = Vec::new();
        let mut sizes = Vec::new();
        for (h, host) in HOSTS.iter().enumerate() {
            for i in 0..N {
                let samples: Vec<(i64, f64)> = (0..=STEPS)
                    .filter_map(|k| {
                        let (on, s) = self.cpu[k as usize][i]?;
                        (on == h).then_some((tick_ms(k), s))
                    })
                    .collect();
                if samples.is_empty() {
                    continue;
                }
                let labels = vec![
                    ("instance".into(), format!("{host}:9177")),
                    ("project_id".into(), format!("p-{}", i % 3)),
                    ("uuid".into(), uuid(i)),
                ];
                sizes.push(TestSeries {
                    labels: labels.clone(),
                    samples: samples
                        .iter()
                        .map(|&(t, _)| (t, f64::from(vcpus(i))))
                        .collect(),
                });
                cpu.push(TestSeries { labels, samples });
            }
        }
        let mut zones: BTreeMap<&str, Vec<TestSeries>> = BTreeMap::new();
        for (h, host) in HOSTS.iter().enumerate() {
            for (z, (rel, name, ..)) in ZONES.iter().enumerate() {
                let path = rel.rsplit('/').next().unwrap_or(rel);
                let family = match *name {
                    "core" => "node_rapl_core_joules",
                    "dram" => "node_rapl_dram_joules",
                    _ => "node_rapl_package_joules",
                };
                zones.entry(family).or_default().push(TestSeries {
                    labels: vec![
                        (
                            "index".into(),
                            path[path.find(':').map_or(0, |c| c + 1)..].into(),
                        ),
                        ("instance".into(), format!("{host}:9100")),
                        ("path".into(), format!("/sys/class/powercap/{path}")),
                    ],
                    samples: (0..=STEPS)
                        .map(|k| (tick_ms(k), self.rapl[k as usize][h][z] as f64 / 1e6))
                        .collect(),
                });
            }
        }
        let power: Vec<TestSeries> = HOSTS
            .iter()
            .enumerate()
            .map(|(h, host)| TestSeries {
                labels: vec![("instance".into(), format!("{host}.bmc:9290"))],
                samples: (0..=STEPS)
                    .filter_map(|k| Some((tick_ms(k), self.watts[k as usize][h]?)))
                    .collect(),
            })
            .collect();
        let mut counters: Vec<(&str, &[TestSeries])> =
            zones.iter().map(|(f, s)| (*f, s.as_slice())).collect();
        counters.push(("libvirt_domain_info_cpu_time_seconds", &cpu));
        let mut all: Vec<(&str, &[TestSeries])> = vec![
            ("libvirt_domain_info_virtual_cpus", &sizes),
            ("ipmi_dcmi_power_consumption_watts", &power),
        ];
        all.extend_from_slice(gauges);
        openmetrics_with_gauges(&counters, &all)
    }
}

/// CPU seconds the test sets (the test driver's are the clock).
#[derive(Clone, Default)]
pub(super) struct FedCpu(Arc<Mutex<BTreeMap<String, f64>>>);

impl CpuTimes for FedCpu {
    fn cpu_seconds(&self) -> Result<BTreeMap<String, f64>, LibvirtError> {
        Ok(self.0.lock().map(|m| m.clone()).unwrap_or_default())
    }
}

/// Which model and which idle power a run uses.
#[derive(Clone, Copy)]
pub(super) struct Setup {
    pub(super) model: &'static str,
    /// Listed idle watts per host; else `auto`.
    pub(super) listed: bool,
}

impl Setup {
    fn idle_table(self) -> String {
        if self.listed {
            format!(
                "[idle_power]\n\"cmp-01\" = {}\n\"cmp-02\" = {}\n",
                IDLE[0], IDLE[1]
            )
        } else {
            String::new()
        }
    }

    fn model_table(self) -> String {
        format!(
            "[model]\nplugin = \"{}\"\n[model.params]\nidle = \"vcpus\"\nidle_power = \"auto\"\n",
            self.model
        )
    }
}

/// One daemon: its host's node file, powercap tree and BMC reading, fed
/// the scenario tick by tick.
pub(super) struct Daemon {
    pub(super) dir: PathBuf,
    h: usize,
    devices: PathBuf,
    cpu: FedCpu,
    pub(super) state: DaemonState,
    pub(super) shared: Arc<Shared>,
}

impl Daemon {
    /// `tail`: more of the daemon's policy (tables after `[state]`).
    pub(super) fn new(root: &Path, h: usize, setup: Setup, tail: &str) -> Self {
        let dir = root.join(HOSTS[h]);
        std::fs::create_dir_all(&dir).unwrap();
        let devices = powercap_tree(&dir.join("sys"));
        let node = dir.join("node.xml");
        let powercap = if setup.model == "rapl-share" {
            format!(
                "[rapl]\npowercap_root = \"{}\"\n",
                dir.join("sys/class/powercap").display()
            )
        } else {
            format!(
                "[rapl]\npowercap_root = \"{}\"\n[host_power]\ncommand = [\"cat\", \"{}\"]\n",
                dir.join("no-powercap").display(),
                dir.join("dcmi.txt").display()
            )
        };
        let text = format!(
            "[site]\nname = \"TEST-SITE\"\ncompute_service = \"https://keystone.test:5000/v3\"\n\
             [inventory]\nlibvirt_uri = \"test://{}\"\n{powercap}{}{}\
             [daemon]\nhost = \"{}\"\ninterval_secs = 60\nship_every_secs = 3600\n\
             [[outputs]]\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"{}\"\n\
             [state]\ndir = \"{}\"\n{tail}",
            node.display(),
            setup.idle_table(),
            setup.model_table(),
            HOSTS[h],
            dir.join("out").display(),
            dir.join("state").display(),
        );
        let path = dir.join("daemon.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::write(&node, node_xml(&[], &|_| String::new())).unwrap();
        let policy = Policy::load(&path).unwrap();
        let runtime = Runtime::new(Limits::default(), Some(root.join("cache"))).unwrap();
        let bound = wattson::policy::bind(&policy, &runtime).unwrap();
        let mut sources: Sources = sources(&policy, Plan::new(&bound).measurements());
        let cpu = FedCpu::default();
        sources.cpu_times = Some(Box::new(cpu.clone()));
        let shared = Shared::new(100, None);
        let state =
            DaemonState::new(policy, bound, sources, HOSTS[h].into(), Arc::clone(&shared)).unwrap();
        Self {
            dir,
            h,
            devices,
            cpu,
            state,
            shared,
        }
    }

    /// Sets this host's domains, CPU times, zones and BMC reading to tick
    /// `k`, then samples.
    fn tick(&mut self, scenario: &Scenario, k: i64) {
        self.set(scenario, k, &|_| String::new());
        self.state.tick(tick_ms(k));
    }

    /// Sets this host's domains (VM `i` with the `<hostdev>`s `devices(i)`),
    /// CPU times, zones and BMC reading to tick `k`.
    pub(super) fn set(&mut self, scenario: &Scenario, k: i64, devices: &dyn Fn(usize) -> String) {
        let vms: Vec<(usize, f64)> = scenario.on_host(self.h, k).collect();
        std::fs::write(self.dir.join("node.xml"), node_xml(&vms, devices)).unwrap();
        *self.cpu.0.lock().unwrap() = vms.iter().map(|&(i, s)| (uuid(i), s)).collect();
        for ((rel, ..), value) in ZONES.iter().zip(scenario.rapl[k as usize][self.h]) {
            bump(&self.devices, rel, value);
        }
        let reading =
            scenario.watts[k as usize][self.h].map_or("n/a".to_owned(), |w| format!("{w}"));
        std::fs::write(
            self.dir.join("dcmi.txt"),
            format!(
                "    Instantaneous power reading:                   {reading} Watts\n    \
                 Power reading state is:                   activated\n"
            ),
        )
        .unwrap();
    }
}

/// A test-driver node holding `vms` (VM, CPU seconds), all running, VM `i`
/// with the `<hostdev>`s `devices(i)`.
fn node_xml(vms: &[(usize, f64)], devices: &dyn Fn(usize) -> String) -> String {
    let domains: String = vms
        .iter()
        .map(|&(i, _)| {
            format!(
                "<domain type=\"test\"><name>vm-{i}</name><uuid>{}</uuid>\
                 <memory unit=\"KiB\">1048576</memory><currentMemory unit=\"KiB\">1048576</currentMemory>\
                 <vcpu placement=\"static\">{}</vcpu><os><type arch=\"x86_64\">hvm</type></os>\
                 <devices>{}</devices></domain>\n",
                uuid(i),
                vcpus(i),
                devices(i)
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\n<node><cpu><mhz>2400</mhz><model>x86_64</model><active>8</active>\
         <nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>2</threads></cpu>\
         <memory>16777216</memory>\n{domains}</node>\n"
    )
}

/// Extract's policy for the same setup.
pub(super) fn extract_policy(setup: Setup) -> String {
    format!(
        "[site]\nname = \"TEST-SITE\"\ncompute_service = \"https://keystone.test:5000/v3\"\n\
         [inventory]\nproject_label = \"project_id\"\nmeta_metric = \"\"\nmemory_metric = \"\"\n\
         host_label = \"instance\"\nhost_regex = '^([^:.]+)'\n\
         [rapl]\nmax_energy_range_uj = {{ package = {RANGE}, dram = {RANGE} }}\n{}{}\
         [[outputs]]\nformat = \"jsonl\"\n",
        setup.idle_table(),
        setup.model_table()
    )
}

/// `wattson extract --dry-run` over the scenario in windows of `window_s`:
/// per-VM joules summed over the windows, and the host summary's lines.
fn extract(
    dir: &Path,
    url: &str,
    setup: Setup,
    window_s: u64,
) -> (HashMap<String, f64>, Vec<serde_json::Value>) {
    let (records, summaries) = extract_records(dir, url, setup, window_s, "");
    (per_vm(&records, "energy_joules"), summaries)
}

/// `key` of `records` (`energy_joules`, `gpu_j`) summed per VM over the
/// windows; a record without it counts 0.
pub(super) fn per_vm(records: &[serde_json::Value], key: &str) -> HashMap<String, f64> {
    let mut sums: HashMap<String, f64> = HashMap::new();
    for r in records {
        *sums
            .entry(r["vm_uuid"].as_str().unwrap().to_owned())
            .or_default() += r[key].as_f64().unwrap_or(0.0);
    }
    sums
}

/// `wattson extract --dry-run` over the scenario in windows of `window_s`,
/// `tail` added to the setup's policy: its records and the host summary's
/// lines.
pub(super) fn extract_records(
    dir: &Path,
    url: &str,
    setup: Setup,
    window_s: u64,
    tail: &str,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let name = format!(
        "{}-{window_s}{}",
        setup.model,
        if tail.is_empty() { "" } else { "-tail" }
    );
    let policy = dir.join(format!("{name}.toml"));
    std::fs::write(&policy, extract_policy(setup) + tail).unwrap();
    let summary = dir.join(format!("{name}.hosts.jsonl"));
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&policy)
        .args(["--prometheus", url])
        .args(["--from", &secs(tick_ms(0)), "--to", &secs(tick_ms(STEPS))])
        .args(["--set", &format!("window.step_secs={window_s}")])
        .args(["--set", &format!("window.max_window_secs={window_s}")])
        .arg("--host-summary")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "extract failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines = std::fs::read_to_string(&summary)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (records, lines)
}

/// Runs both daemons of `setup` through the scenario.
fn run_daemons(root: &Path, scenario: &Scenario, setup: Setup) -> [Daemon; 2] {
    let mut daemons = [0, 1].map(|h| Daemon::new(root, h, setup, ""));
    for k in 0..=STEPS {
        for daemon in &mut daemons {
            daemon.tick(scenario, k);
        }
    }
    daemons
}

/// The host meter's energy over the scenario by ENERGY.md, from the
/// scenario's own numbers: C1w of package + dram zones (core is inside the
/// package), or the trapezoid of consecutive BMC readings at most 300 s apart.
fn meter_joules(scenario: &Scenario, model: &str, h: usize) -> f64 {
    (1..=STEPS as usize)
        .map(|k| interval_joules(scenario, model, h, k))
        .sum()
}

/// The host meter's energy in the interval ending at tick `k`.
pub(super) fn interval_joules(scenario: &Scenario, model: &str, h: usize, k: usize) -> f64 {
    match model {
        "rapl-share" => [0, 2, 3, 4]
            .iter()
            .map(|&z| {
                let (a, b) = (scenario.rapl[k - 1][h][z], scenario.rapl[k][h][z]);
                let uj = if b >= a { b - a } else { RANGE - a + b };
                uj as f64 / 1e6
            })
            .sum(),
        _ => match (scenario.watts[k - 1][h], scenario.watts[k][h]) {
            (Some(a), Some(b)) => (a + b) / 2.0 * 60.0,
            _ => 0.0,
        },
    }
}

/// Per-VM joules and per-host unattributed energy agree to 1e-9 between
/// extract (one window per interval) and the daemons, with a RAPL wrap
/// (rapl-share) and a BMC gap longer than the limit (ipmi-share), 30 VMs of
/// which one starts, one stops and one migrates; and both conserve the
/// meters, which the test computes itself.
#[test]
fn extract_and_the_daemon_agree_on_every_vm_and_host() {
    let scenario = Scenario::new();
    let wraps = (1..=STEPS as usize)
        .filter(|&k| scenario.rapl[k][0][3] < scenario.rapl[k - 1][0][3])
        .count();
    assert_eq!(wraps, 1, "cmp-01's package-1 wraps once");
    let prometheus = Prometheus::start(&scenario.openmetrics(&[]));
    let tmp = tempfile::tempdir().unwrap();

    for model in ["rapl-share", "ipmi-share"] {
        let setup = Setup {
            model,
            listed: true,
        };
        let root = tmp.path().join(model);
        let daemons = run_daemons(&root, &scenario, setup);
        let (records, summaries) = extract_records(tmp.path(), &prometheus.url, setup, 60, "");
        let extracted = per_vm(&records, "energy_joules");
        // Every VM seen for some time in a window used CPU or had an idle
        // share of it: a record of 0 J over time seen would be of a host
        // without a reading. (A VM's first sample on a host, with no base,
        // is seen for 0 s: C1 gives it 0 CPU seconds and 0 J.)
        let zero: Vec<_> = records
            .iter()
            .filter(|r| r["energy_joules"].as_f64() == Some(0.0))
            .filter(|r| r["wall_s"].as_f64() != Some(0.0))
            .map(|r| (&r["vm_uuid"], &r["start"], &r["host"]))
            .collect();
        assert!(
            zero.is_empty(),
            "{model}: {} records of 0 J, first {:?}",
            zero.len(),
            zero.first()
        );
        // A window with meter energy has its host's summary line, and a
        // window inside the BMC gap none (no reading, never one of 0 J).
        let measured = |h: usize| {
            (1..=STEPS as usize)
                .filter(|&k| interval_joules(&scenario, model, h, k) > 0.0)
                .count()
        };
        assert!(
            summaries
                .iter()
                .all(|l| l["energy_joules"].as_f64().is_some_and(|e| e > 0.0)),
            "{model}: every summary line has meter energy"
        );
        assert_eq!(
            summaries.len(),
            measured(0) + measured(1),
            "{model}: summary lines"
        );
        assert!(measured(1) < STEPS as usize || model == "rapl-share");

        // Per VM, over both hosts (the migrated VM has a part on each).
        let mut daemon_vms: HashMap<String, f64> = HashMap::new();
        for d in &daemons {
            for (uuid, j) in &d.state.ledger().vm_joules {
                *daemon_vms.entry(uuid.clone()).or_default() += j;
            }
        }
        let mut uuids: Vec<&String> = daemon_vms.keys().collect();
        uuids.sort();
        let mut extracted_uuids: Vec<&String> = extracted.keys().collect();
        extracted_uuids.sort();
        assert_eq!(uuids, extracted_uuids, "{model}: the same VMs");
        assert_eq!(uuids.len(), N, "{model}: every VM measured");
        for (uuid, want) in &daemon_vms {
            let got = extracted[uuid];
            assert!(
                rel_err(got, *want) < 1e-9,
                "{model} {uuid}: extract {got} J, daemon {want} J"
            );
        }

        for (h, d) in daemons.iter().enumerate() {
            let host = HOSTS[h];
            let ledger = d.state.ledger();
            let meter: f64 = ledger.meter_joules.values().sum();
            let want = meter_joules(&scenario, model, h);
            assert!(
                rel_err(meter, want) < 1e-12,
                "{model} {host}: the daemon's meters {meter} J, the scenario's {want} J"
            );
            // /metrics conserves: VMs + unattributed = meters.
            let vms: f64 = ledger.vm_joules.values().sum();
            assert!(
                rel_err(vms + ledger.unattributed_joules, meter) < 1e-9,
                "{model} {host}: VMs {vms} J + unattributed {} J against {meter} J",
                ledger.unattributed_joules
            );
            // Extract's host energy and unattributed energy, window by window.
            let of = |key: &str| -> f64 {
                summaries
                    .iter()
                    .filter(|l| l["host"] == host)
                    .map(|l| l[key].as_f64().unwrap_or(0.0))
                    .sum()
            };
            assert!(
                rel_err(of("energy_joules"), want) < 1e-9,
                "{model} {host}: extract's host energy {} J, the scenario's {want} J",
                of("energy_joules")
            );
            let (got, daemon) = (of("unattributed_joules"), ledger.unattributed_joules);
            assert!(
                (got - daemon).abs() <= 1e-9 * want,
                "{model} {host}: unattributed: extract {got} J, daemon {daemon} J"
            );
        }
    }
}

/// `idle_power = "auto"` is the same least minute in both when they have
/// seen the same minutes: the daemon's idle power after the scenario (its
/// history holds every interval) equals extract's over the whole run as
/// one window, and both equal the least minute the test computes from the
/// scenario (minutes with a RAPL wrap or inside the BMC gap left out).
#[test]
fn idle_power_auto_is_the_same_least_minute_in_extract_and_the_daemon() {
    let scenario = Scenario::new();
    let prometheus = Prometheus::start(&scenario.openmetrics(&[]));
    let tmp = tempfile::tempdir().unwrap();
    let span_s = (STEPS * 60) as u64;
    for model in ["rapl-share", "ipmi-share"] {
        let setup = Setup {
            model,
            listed: false,
        };
        let daemons = run_daemons(&tmp.path().join(model), &scenario, setup);
        let (_, summaries) = extract(tmp.path(), &prometheus.url, setup, span_s);
        for (h, d) in daemons.iter().enumerate() {
            let want = (1..=STEPS as usize)
                .filter_map(|k| match model {
                    "rapl-share" => {
                        let (a, b) = (&scenario.rapl[k - 1][h], &scenario.rapl[k][h]);
                        let zones = [0, 2, 3, 4];
                        zones.iter().all(|&z| b[z] >= a[z]).then(|| {
                            zones
                                .iter()
                                .map(|&z| (b[z] - a[z]) as f64 / 1e6)
                                .sum::<f64>()
                                / 60.0
                        })
                    }
                    _ => Some((scenario.watts[k - 1][h]? + scenario.watts[k][h]?) / 2.0),
                })
                .fold(f64::INFINITY, f64::min);
            let daemon = d.shared.snapshot().idle_watts.unwrap();
            let line = summaries
                .iter()
                .find(|l| l["host"] == HOSTS[h])
                .unwrap_or_else(|| panic!("{model}: no summary for {}", HOSTS[h]));
            let extracted = line["idle_power_watts"].as_f64().unwrap();
            assert!(
                rel_err(daemon, want) < 1e-9 && rel_err(extracted, want) < 1e-9,
                "{model} {}: daemon {daemon} W, extract {extracted} W, least minute {want} W",
                HOSTS[h]
            );
        }
    }
}
