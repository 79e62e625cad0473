//! A week of daemon in minutes (issue 33): the daemon's own sampling loop
//! ([`Daemon::sample`]) on a simulated clock, at 1,000 libvirt test-driver
//! domains of which 5 % are replaced every hour, a powercap tree whose
//! counters wrap every twenty minutes or so, a BMC unreadable for spans
//! shorter and longer than the gap limit, the file messenger's directory
//! gone for a day, two reloads (the policy edited, then SIGHUP) and two
//! restarts (one shorter than the gap limit, one longer).
//!
//! The test keeps its own account of what it fed in and checks, at the end:
//! VMs + unattributed = the BMC's energy by G1 over the samples the daemon
//! took (to 1e-9), the RAPL meters = the energy written into the counters,
//! every closed ship window delivered exactly once, and the state file
//! bounded (VMs gone longer than `forget_after_secs` pruned).
//!
//! CI runs one simulated hour with every event in proportion;
//! `scripts/bench-soak.sh` runs the week in a release build, where the
//! process's RSS is also held to 10 % between the first and the last day
//! (`WATTSON_SOAK_HOURS`, `WATTSON_SOAK_DOMAINS`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wattson::daemon::{Clock, Control, Daemon, DaemonOptions, PowerMeter, sources};
use wattson::sources::libvirt::{CpuTimes, LibvirtError};

use super::data::{HOUR, MIN, Rng, rel_err};

const DAY: i64 = 24 * HOUR;
const INTERVAL_MS: i64 = 10_000;
/// The gap limit of the BMC's readings (the default).
const MAX_GAP_MS: i64 = 300_000;
/// `max_energy_range_uj` of every zone.
const RANGE: u64 = 262_143_328_850;
/// RAPL zones: directory under `intel-rapl`, name, share of the host's power.
const ZONES: [(&str, &str, f64); 4] = [
    ("intel-rapl:0", "package-0", 0.45),
    ("intel-rapl:0/intel-rapl:0:0", "dram", 0.05),
    ("intel-rapl:1", "package-1", 0.40),
    ("intel-rapl:1/intel-rapl:1:0", "dram", 0.05),
];

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn vcpus(i: usize) -> u32 {
    [1, 2, 4, 8][i % 4]
}

/// CPU seconds the world sets.
#[derive(Clone, Default)]
struct FedCpu(Arc<Mutex<BTreeMap<String, f64>>>);

impl CpuTimes for FedCpu {
    fn cpu_seconds(&self) -> Result<BTreeMap<String, f64>, LibvirtError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// The BMC's reading the world sets; none: unreadable.
#[derive(Clone, Default)]
struct FedMeter(Arc<Mutex<Option<f64>>>);

impl PowerMeter for FedMeter {
    fn watts(&mut self) -> Result<f64, String> {
        self.0
            .lock()
            .unwrap()
            .ok_or_else(|| "the BMC does not answer".to_owned())
    }
}

/// What happens when, in simulated time.
struct Script {
    start_ms: i64,
    end_ms: i64,
    /// The file messenger's directory is gone.
    messenger_down: (i64, i64),
    /// The BMC cannot be read.
    bmc_down: Vec<(i64, i64)>,
    /// Reloads, each with the `idle_power` the edited policy sets (TOML).
    reloads: Vec<(i64, &'static str)>,
    /// `[daemon] ship_every_secs`: an hour in a week, ten minutes in a
    /// shorter run (so that windows close while the messenger is down).
    ship_every_ms: i64,
    /// Restarts: stopped at, down for.
    restarts: Vec<(i64, i64)>,
}

impl Script {
    /// Every event of the week, in proportion over `hours`.
    fn new(start_ms: i64, hours: i64) -> Self {
        let len = hours * HOUR;
        let at = |sevenths: f64| start_ms + (len as f64 * sevenths / 7.0) as i64 + 3_000;
        // BMC gaps: twice a day (at least twice), alternately 2 and 8 minutes.
        let gaps = (hours / 12).max(2);
        let bmc_down = (0..gaps)
            .map(|k| {
                let from = start_ms + len * (2 * k + 1) / (2 * gaps) + 4_000;
                (from, from + if k % 2 == 0 { 2 * MIN } else { 8 * MIN })
            })
            .collect();
        Self {
            start_ms,
            end_ms: start_ms + len,
            messenger_down: (at(1.0), at(2.0)),
            bmc_down,
            reloads: vec![(at(3.0), "120"), (at(4.0), "\"auto\"")],
            ship_every_ms: if hours >= 24 { HOUR } else { 10 * MIN },
            // Down 3 minutes (within the gap limit: measured across), then 7 (not).
            restarts: vec![(at(2.5), 3 * MIN), (at(5.5), 7 * MIN)],
        }
    }
}

/// The hypervisor: libvirt's node file, the powercap tree, the CPU times and
/// the BMC, moved on by the clock.
struct World {
    dir: PathBuf,
    devices: PathBuf,
    node: PathBuf,
    rng: Rng,
    t_ms: i64,
    /// Running domains, by index.
    running: BTreeSet<usize>,
    next_index: usize,
    churn_every_ms: i64,
    churn: usize,
    cpu: FedCpu,
    meter: FedMeter,
    /// Host power now (constant until the next step), watts.
    watts: f64,
    /// Each zone's counter, and everything written into it (unwrapped).
    rapl_uj: [u64; 4],
    rapl_total_uj: [u128; 4],
    /// Each running VM's utilisation until the next step.
    utilisation: BTreeMap<usize, f64>,
}

impl World {
    fn new(dir: &Path, domains: usize, start_ms: i64) -> Self {
        let devices = dir.join("sys/devices/virtual/powercap/intel-rapl");
        let class = dir.join("sys/class/powercap");
        std::fs::create_dir_all(&class).unwrap();
        let rapl_uj = [
            RANGE - 40_000_000_000,
            5_000_000,
            120_000_000_000,
            7_000_000,
        ];
        for ((rel, name, _), energy) in ZONES.iter().zip(rapl_uj) {
            let zone = devices.join(rel);
            std::fs::create_dir_all(&zone).unwrap();
            for (file, value) in [
                ("name", name.to_string()),
                ("energy_uj", energy.to_string()),
                ("max_energy_range_uj", RANGE.to_string()),
                ("enabled", "1".into()),
            ] {
                std::fs::write(zone.join(file), format!("{value}\n")).unwrap();
            }
            let top = rel.rsplit('/').next().unwrap();
            std::os::unix::fs::symlink(&zone, class.join(top)).unwrap();
        }
        std::fs::write(dir.join("boot_id"), "5b2e8d1c-soak\n").unwrap();
        std::fs::write(dir.join("stat"), "cpu  1 0 1 100 0 0 0 0 0 0\n").unwrap();
        std::fs::create_dir_all(dir.join("out/jsonl")).unwrap();
        let mut world = Self {
            dir: dir.to_owned(),
            devices,
            node: dir.join("node.xml"),
            rng: Rng::new(33),
            t_ms: start_ms,
            running: (0..domains).collect(),
            next_index: domains,
            // 5 % an hour, a tenth of it every 6 minutes.
            churn_every_ms: 6 * MIN,
            churn: (domains / 200).max(1),
            cpu: FedCpu::default(),
            meter: FedMeter::default(),
            watts: 0.0,
            rapl_uj,
            rapl_total_uj: [0; 4],
            utilisation: BTreeMap::new(),
        };
        world.write_node();
        world.draw();
        world
    }

    /// The node file of the running domains (the test driver reads it again
    /// when it changes).
    fn write_node(&self) {
        let mut xml = String::from(
            "<?xml version=\"1.0\"?>\n<node>\n<cpu><mhz>2400</mhz><model>x86_64</model><active>64</active><nodes>1</nodes><sockets>2</sockets><cores>16</cores><threads>2</threads></cpu>\n<memory>1073741824</memory>\n",
        );
        for &i in &self.running {
            let (v, p) = (vcpus(i), i % 40);
            xml.push_str(&format!(
                "<domain type=\"test\"><name>instance-{i:08x}</name><uuid>{}</uuid><memory unit=\"KiB\">{}</memory><vcpu placement=\"static\">{v}</vcpu><metadata><nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\"><nova:name>vm-{i}</nova:name><nova:flavor name=\"m1.{v}\"><nova:memory>{}</nova:memory><nova:disk>20</nova:disk><nova:vcpus>{v}</nova:vcpus></nova:flavor><nova:owner><nova:user uuid=\"user-{p}\">user-{p}</nova:user><nova:project uuid=\"project-{p}\">project-{p}</nova:project></nova:owner></nova:instance></metadata><os><type arch=\"x86_64\">hvm</type></os></domain>\n",
                uuid(i),
                u64::from(v) * 2048 * 1024,
                u64::from(v) * 2048,
            ));
        }
        xml.push_str("</node>\n");
        let tmp = self.node.with_extension("tmp");
        std::fs::write(&tmp, xml).unwrap();
        std::fs::rename(&tmp, &self.node).unwrap();
    }

    /// New utilisations and host power until the next step.
    fn draw(&mut self) {
        self.utilisation = self
            .running
            .iter()
            .map(|&i| (i, 0.05 + 0.9 * self.rng.next_f64()))
            .collect();
        let busy: f64 = self
            .utilisation
            .iter()
            .map(|(&i, u)| f64::from(vcpus(i)) * u)
            .sum();
        self.watts = 110.0 + 0.12 * busy + 10.0 * self.rng.next_f64();
    }

    /// Moves on to `t_ms`: energy and CPU time at the power drawn for the
    /// span, domains replaced on the churn's beat, a new reading.
    fn advance(&mut self, t_ms: i64, script: &Script) {
        assert!(t_ms >= self.t_ms, "time runs forward");
        let dt_ms = t_ms - self.t_ms;
        for (k, (rel, _, share)) in ZONES.iter().enumerate() {
            let uj = (self.watts * share * dt_ms as f64 * 1000.0).round() as u64;
            self.rapl_total_uj[k] += u128::from(uj);
            self.rapl_uj[k] = (self.rapl_uj[k] + uj) % (RANGE + 1);
            std::fs::write(
                self.devices.join(rel).join("energy_uj"),
                format!("{}\n", self.rapl_uj[k]),
            )
            .unwrap();
        }
        {
            let mut cpu = self.cpu.0.lock().unwrap();
            for (&i, u) in &self.utilisation {
                *cpu.entry(uuid(i)).or_default() += f64::from(vcpus(i)) * u * dt_ms as f64 / 1000.0;
            }
        }
        let beats = |t: i64| t.div_euclid(self.churn_every_ms);
        if beats(t_ms) > beats(self.t_ms) {
            let mut cpu = self.cpu.0.lock().unwrap();
            for _ in 0..self.churn {
                if let Some(gone) = self.running.pop_first() {
                    cpu.remove(&uuid(gone));
                }
                self.running.insert(self.next_index);
                cpu.insert(uuid(self.next_index), 0.0);
                self.next_index += 1;
            }
            drop(cpu);
            self.write_node();
        }
        self.t_ms = t_ms;
        self.draw();
        let down = |spans: &[(i64, i64)]| spans.iter().any(|&(a, b)| (a..b).contains(&t_ms));
        *self.meter.0.lock().unwrap() = (!down(&script.bmc_down)).then_some(self.watts);
        self.messenger(down(&[script.messenger_down]));
    }

    /// The messenger's directory gone (a regular file where it was) or back.
    fn messenger(&self, down: bool) {
        let (out, away) = (self.dir.join("out"), self.dir.join("out.away"));
        if down && out.is_dir() {
            std::fs::rename(&out, &away).unwrap();
            std::fs::write(&out, "not a directory\n").unwrap();
        } else if !down && away.is_dir() {
            std::fs::remove_file(&out).unwrap();
            std::fs::rename(&away, &out).unwrap();
        }
    }
}

/// The test's own account of the samples the daemon took, kept as it goes
/// (a list of a week's samples would grow the process the RSS check measures).
#[derive(Default)]
struct Account {
    /// Samples taken.
    samples: usize,
    /// The BMC's energy by G1 over the samples that read it, J.
    bmc_j: f64,
    /// The last sample that read the BMC: when, watts.
    last_good: Option<(i64, f64)>,
    /// The RAPL totals at the first and the last sample that read the BMC
    /// (the samples the daemon measured from).
    first_rapl: Option<[u128; 4]>,
    last_rapl: [u128; 4],
}

/// The simulated clock: each wait moves the world on to its deadline (or
/// to the next scripted control) at once.
struct SimClock {
    world: World,
    script: Script,
    now_ms: i64,
    /// Scripted controls not yet given, soonest first.
    controls: Vec<(i64, Control)>,
    account: Account,
    policy: PathBuf,
    /// Per simulated hour: RSS (KiB) and `daemon.json`'s size.
    hourly: Vec<(u64, u64)>,
    last_hour: Option<i64>,
}

impl SimClock {
    fn go(&mut self, t_ms: i64) {
        self.world.advance(t_ms, &self.script);
        self.now_ms = t_ms;
    }

    /// The daemon samples now.
    fn take(&mut self) {
        let account = &mut self.account;
        account.samples += 1;
        if let Some(w) = *self.world.meter.0.lock().unwrap() {
            if let Some((t0, w0)) = account.last_good {
                let dt = self.now_ms - t0;
                if dt > 0 && dt <= MAX_GAP_MS {
                    account.bmc_j += (w0 + w) / 2.0 * dt as f64 / 1000.0;
                }
            }
            account.last_good = Some((self.now_ms, w));
            account.first_rapl.get_or_insert(self.world.rapl_total_uj);
            account.last_rapl = self.world.rapl_total_uj;
        }
        let hour = self.now_ms.div_euclid(HOUR);
        if self.last_hour != Some(hour) {
            self.last_hour = Some(hour);
            let state = self.world.dir.join("state/soak/daemon.json");
            let size = std::fs::metadata(state).map(|m| m.len()).unwrap_or(0);
            self.hourly.push((rss_kib(), size));
        }
    }
}

impl Clock for SimClock {
    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }

    fn wait_until(&mut self, deadline_ms: i64) -> Option<Control> {
        if let Some(&(at, control)) = self.controls.first()
            && at <= deadline_ms
        {
            self.controls.remove(0);
            self.go(at);
            match control {
                Control::Stop => self.take(),
                Control::Reload => {
                    let idle = self
                        .script
                        .reloads
                        .iter()
                        .find(|r| r.0 == at)
                        .map_or("\"auto\"", |r| r.1);
                    let text = policy(&self.world.dir, idle, self.forget_s(), &self.script);
                    std::fs::write(&self.policy, text).unwrap();
                }
            }
            return Some(control);
        }
        self.go(deadline_ms);
        self.take();
        None
    }
}

impl SimClock {
    /// Forgotten after a day in the week; in proportion in shorter runs.
    fn forget_s(&self) -> i64 {
        ((self.script.end_ms - self.script.start_ms) / 7 / 1000).clamp(600, 86_400)
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn policy(dir: &Path, idle_power: &str, forget_s: i64, script: &Script) -> String {
    format!(
        r#"# The soak's hypervisor.
[site]
name = "SOAK"
compute_service = "https://keystone.test:5000/v3"

[inventory]
libvirt_uri = "test://{dir}/node.xml"

[rapl]
powercap_root = "{dir}/sys/class/powercap"

[model]
plugin = "ipmi-share"
[model.params]
idle = "vcpus"
idle_power = {idle_power}

[daemon]
host = "cmp-01"
interval_secs = {interval}
ship_every_secs = {ship_s}
forget_after_secs = {forget_s}
boot_id_file = "{dir}/boot_id"
proc_stat_file = "{dir}/stat"

[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "file"
directory = "{dir}/out/jsonl"

[state]
dir = "{dir}/state"

[runtime]
cache_dir = "{cache}"
"#,
        dir = dir.display(),
        interval = INTERVAL_MS / 1000,
        ship_s = script.ship_every_ms / 1000,
        cache = std::env::temp_dir()
            .join("wattson-test-plugin-cache")
            .display(),
    )
}

#[test]
fn a_week_of_daemon_keeps_every_joule_and_ships_each_window_once() {
    let hours = env_or("WATTSON_SOAK_HOURS", 1);
    let domains = env_or("WATTSON_SOAK_DOMAINS", 1000) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A week that ended a day ago, starting at 20 minutes past an hour.
    let now = chrono::Utc::now().timestamp_millis();
    let start_ms = (now - (hours + 24) * HOUR).div_euclid(HOUR) * HOUR + 20 * MIN;
    let script = Script::new(start_ms, hours);
    let world = World::new(dir, domains, start_ms);
    let mut controls: Vec<(i64, Control)> = script
        .reloads
        .iter()
        .map(|r| (r.0, Control::Reload))
        .chain(script.restarts.iter().map(|r| (r.0, Control::Stop)))
        .chain([(script.end_ms, Control::Stop)])
        .collect();
    controls.sort_by_key(|c| c.0);
    let policy_path = dir.join("soak.toml");
    let mut clock = SimClock {
        world,
        now_ms: start_ms,
        controls,
        account: Account::default(),
        policy: policy_path.clone(),
        hourly: Vec::new(),
        last_hour: None,
        script,
    };
    clock.go(start_ms);
    let text = policy(dir, "\"auto\"", clock.forget_s(), &clock.script);
    std::fs::write(&policy_path, text).unwrap();
    let (cpu, meter) = (clock.world.cpu.clone(), clock.world.meter.clone());
    let make_sources = move || -> wattson::daemon::MakeSources {
        let (cpu, meter) = (cpu.clone(), meter.clone());
        Box::new(move |policy, measurements| {
            let mut s = sources(policy, measurements);
            s.cpu_times = Some(Box::new(cpu.clone()));
            s.meter = Some(Box::new(meter.clone()));
            s
        })
    };
    let options = DaemonOptions {
        policy: policy_path.clone(),
        overrides: Vec::new(),
        listen: None,
    };
    let restarts: Vec<(i64, i64)> = clock.script.restarts.clone();
    let (mut messenger_failures, mut bmc_failures) = (0, 0);
    let ledger_at_end = loop {
        clock.take();
        let mut daemon = Daemon::start(options.clone(), make_sources(), &mut clock).unwrap();
        daemon.sample(&mut clock);
        let health = &daemon.shared().snapshot().health;
        messenger_failures += health.messenger_failures;
        bmc_failures += health.sample_failures.get("ipmi").copied().unwrap_or(0);
        let stopped = clock.now_ms;
        match restarts.iter().find(|r| r.0 == stopped) {
            Some(&(_, down)) => {
                drop(daemon);
                clock.go(stopped + down);
            }
            None => break serde_json::to_value(daemon.state().ledger()).unwrap(),
        }
    };

    // The faults happened.
    assert!(messenger_failures > 0, "the messenger was never down");
    assert!(bmc_failures > 0, "the BMC never failed");

    // The BMC's energy by G1 over the samples the daemon took.
    let expected = clock.account.bmc_j;
    let meters = &ledger_at_end["meter_joules"];
    let ipmi = meters["ipmi"].as_f64().unwrap();
    assert!(rel_err(ipmi, expected) < 1e-9, "BMC: {ipmi} vs {expected}");

    // RAPL: what was written into the counters between the first and the
    // last sample that measured (wraps included).
    let (first, last) = (clock.account.first_rapl.unwrap(), clock.account.last_rapl);
    let zone_j = |k: usize| (last[k] - first[k]) as f64 / 1e6;
    for (name, want) in [
        ("package-0", zone_j(0)),
        ("package-1", zone_j(2)),
        ("dram", zone_j(1) + zone_j(3)),
    ] {
        let got = meters[name].as_f64().unwrap();
        assert!(rel_err(got, want) < 1e-9, "{name}: {got} vs {want}");
    }
    let wraps = (zone_j(0) * 1e6 / RANGE as f64) as u64;
    assert!(hours < 2 || wraps > 1, "package-0 wrapped {wraps} times");

    // Each closed window delivered once; the one in progress still held.
    let out = dir.join("out/jsonl");
    let records = super::daemon::delivered(&out);
    // The messenger's directory of temporaries: empty after a clean run.
    let temporaries = std::fs::read_dir(out.join(".wattson-tmp")).map_or(0, |d| d.count());
    assert_eq!(temporaries, 0, "temporaries left");
    let mut seen = BTreeSet::new();
    let mut vm_joules = 0.0;
    for r in &records {
        let key = (r["start"].to_string(), r["vm_uuid"].to_string());
        assert!(seen.insert(key.clone()), "delivered twice: {key:?}");
        vm_joules += r["energy_joules"].as_f64().unwrap();
    }
    let windows: BTreeSet<i64> = records
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(r["start"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    let (end_ms, step) = (clock.script.end_ms, clock.script.ship_every_ms);
    let want_windows = ((start_ms.div_euclid(step))..end_ms.div_euclid(step))
        .map(|w| w * step)
        .collect::<BTreeSet<_>>();
    assert_eq!(windows, want_windows, "every closed window, once");
    let held = ledger_at_end["windows"].as_object().unwrap();
    let in_progress = end_ms.div_euclid(step) * step;
    assert!(
        held.keys()
            .all(|k| k.parse::<i64>().unwrap() >= in_progress),
        "only the window in progress is held: {:?}",
        held.keys().collect::<Vec<_>>()
    );
    for parts in held.values() {
        for part in parts.as_object().unwrap().values() {
            vm_joules += part["joules"].as_f64().unwrap();
        }
    }
    let unattributed = ledger_at_end["unattributed_joules"].as_f64().unwrap();
    assert!(
        rel_err(vm_joules + unattributed, expected) < 1e-9,
        "VMs {vm_joules} + unattributed {unattributed} vs the BMC's {expected}"
    );

    // Bounded state; flat memory over a week.
    let sizes: Vec<u64> = clock.hourly.iter().map(|h| h.1).collect();
    let rss: Vec<u64> = clock.hourly.iter().map(|h| h.0).collect();
    let per_day = (DAY / HOUR) as usize;
    let peak = |v: &[u64], day: usize| {
        v.chunks(per_day)
            .nth(day)
            .and_then(|c| c.iter().max().copied())
            .unwrap_or(0)
    };
    let days = sizes.len().div_ceil(per_day);
    println!(
        "soak: {hours} h, {domains} domains, {} samples, {} records in {} windows; \
         daemon.json peak per day (bytes) {:?}; RSS peak per day (KiB) {:?}",
        clock.account.samples,
        records.len(),
        windows.len(),
        (0..days).map(|d| peak(&sizes, d)).collect::<Vec<_>>(),
        (0..days).map(|d| peak(&rss, d)).collect::<Vec<_>>(),
    );
    // The state's peak after the forgetting time has passed once (day 2)
    // holds: VMs gone are pruned.
    if days >= 3 {
        let (second, last) = (peak(&sizes, 1), peak(&sizes, days - 1));
        assert!(
            last as f64 <= second as f64 * 1.1,
            "daemon.json grows: {second} then {last}"
        );
        let (first, last) = (peak(&rss, 0), peak(&rss, days - 1));
        assert!(
            last as f64 <= first as f64 * 1.1,
            "RSS grows: {first} KiB on the first day, {last} KiB on the last"
        );
    }
}
