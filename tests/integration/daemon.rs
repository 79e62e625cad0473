//! The daemon on this host's stand-ins: the libvirt test driver (a copy of
//! the node fixture, edited to remove a domain), a powercap fixture tree
//! with the real layout whose counters the test advances (one wraps), and
//! CPU times fed by the test (the test driver's are the clock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wattson::daemon::{DaemonState, MetricsFormat, Shared, Sources, render_metrics, sources};
use wattson::pipeline::Plan;
use wattson::policy::Policy;
use wattson::runtime::{Limits, Runtime};
use wattson::sources::libvirt::{CpuTimes, LibvirtError};

use super::data::{c1, rel_err};
use super::rapl::{RANGE, ZONES, bump, powercap_tree};

/// Running domains of the fixture (nova, paused nova, OpenNebula, bare).
pub(super) const RUNNING: [&str; 4] = [
    "c5a2b3d4-1e2f-4a5b-8c9d-0e1f2a3b4c5d",
    "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5e",
    "e7c4d5f6-3041-4c7d-8ebf-203142536475",
    "f8d5e6a7-4152-4d8e-9fc0-314253647586",
];

/// CPU seconds the test sets.
#[derive(Clone, Default)]
struct FedCpu(Arc<Mutex<BTreeMap<String, f64>>>);

impl CpuTimes for FedCpu {
    fn cpu_seconds(&self) -> Result<BTreeMap<String, f64>, LibvirtError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// A node fixture copy under `dir`; returns its test:// URI.
pub(super) fn node_copy(dir: &Path) -> (PathBuf, String) {
    let copy = dir.join("node.xml");
    std::fs::copy(super::libvirt::fixture_path(), &copy).unwrap();
    let uri = format!("test://{}", copy.display());
    (copy, uri)
}

/// Removes the domain named `name` from a node file.
pub(super) fn remove_domain(node: &Path, name: &str) {
    let text = std::fs::read_to_string(node).unwrap();
    let at = text.find(&format!("<name>{name}</name>")).unwrap();
    let start = text[..at].rfind("<domain").unwrap();
    let end = at + text[at..].find("</domain>").unwrap() + "</domain>".len();
    std::fs::write(node, format!("{}{}", &text[..start], &text[end..])).unwrap();
}

pub(super) fn daemon_policy(dir: &Path, uri: &str, powercap: &Path, idle: &str) -> String {
    format!(
        r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"

[inventory]
libvirt_uri = "{uri}"

[rapl]
powercap_root = "{}"

[model]
plugin = "rapl-share"
[model.params]
idle = "{idle}"
idle_power = "auto"

[daemon]
host = "cmp-01"
interval_secs = 10
ship_every_secs = 3600

[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "file"
directory = "{}"

[state]
dir = "{}"
"#,
        powercap.display(),
        dir.join("out").display(),
        dir.join("state").display()
    )
}

/// A hypervisor under a temporary directory: a powercap fixture tree, a
/// copy of the libvirt node fixture, and the daemon's policy file.
struct Host {
    tmp: tempfile::TempDir,
    /// The `intel-rapl` devices directory, where `energy_uj` files are bumped.
    devices: PathBuf,
    /// The node file (edited to change the domains).
    node: PathBuf,
    /// Its `test://` URI.
    uri: String,
    /// `daemon.toml`.
    policy: PathBuf,
}

impl Host {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let devices = powercap_tree(&tmp.path().join("sys"));
        let (node, uri) = node_copy(tmp.path());
        let policy = tmp.path().join("daemon.toml");
        Self {
            tmp,
            devices,
            node,
            uri,
            policy,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// [`daemon_policy`] of this host with `idle`.
    fn policy_text(&self, idle: &str) -> String {
        daemon_policy(
            self.dir(),
            &self.uri,
            &self.dir().join("sys/class/powercap"),
            idle,
        )
    }

    /// Writes the policy file; returns its path.
    fn write_policy(&self, text: &str) -> PathBuf {
        std::fs::write(&self.policy, text).unwrap();
        self.policy.clone()
    }
}

/// The policy file loaded and bound, with its sources reading `cpu`.
fn bind_policy(
    policy_path: &Path,
    cpu: &FedCpu,
    cache: &Path,
) -> (Policy, wattson::policy::Bound, Sources) {
    let policy = Policy::load(policy_path).unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.to_owned())).unwrap();
    let bound = wattson::policy::bind(&policy, &runtime).unwrap();
    let mut sources: Sources = sources(&policy, Plan::new(&bound).measurements());
    sources.cpu_times = Some(Box::new(cpu.clone()));
    (policy, bound, sources)
}

fn start_engine(policy_path: &Path, cpu: &FedCpu, cache: &Path) -> (DaemonState, Arc<Shared>) {
    let (policy, bound, sources) = bind_policy(policy_path, cpu, cache);
    let shared = Shared::new(100, None);
    let state =
        DaemonState::new(policy, bound, sources, "cmp-01".into(), Arc::clone(&shared)).unwrap();
    (state, shared)
}

/// The metric's value for `uuid` in a text-format scrape.
fn value_of(scrape: &str, metric: &str, uuid: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(&format!("{metric}{{uuid=\"{uuid}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn counters_follow_the_share_arithmetic_across_a_wrap_a_removal_and_a_restart() {
    let host = Host::new();
    let (cache, devices, node) = (
        host.dir().join("cache"),
        host.devices.clone(),
        host.node.clone(),
    );
    let policy = host.write_policy(&host.policy_text("none"));
    let cpu = FedCpu::default();
    // Zones by path under intel-rapl/, their energy now (µJ).
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let mut cpu_s: BTreeMap<&str, f64> = RUNNING.iter().map(|u| (*u, 100.0)).collect();
    let set = |energy: &BTreeMap<&str, u64>, cpu_s: &BTreeMap<&str, f64>| {
        for (rel, value) in energy {
            bump(&devices, rel, *value);
        }
        *cpu.0.lock().unwrap() = cpu_s.iter().map(|(u, s)| (u.to_string(), *s)).collect();
    };
    set(&energy, &cpu_s);
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    let t0 = 1_800_000_003_000_i64;
    state.tick(t0);

    // Expected joules per VM, by ENERGY.md: each interval's host energy
    // (package + dram zones, never core; C1w across the wrap) split by the
    // interval's CPU seconds (idle = "none").
    let mut expected: BTreeMap<&str, f64> = BTreeMap::new();
    let mut host_total = 0.0;
    let steps: [(u64, [f64; 4]); 4] = [
        (40_000_000, [3.0, 1.0, 0.5, 0.0]),
        (55_000_000, [2.0, 2.0, 2.0, 2.0]),
        (10_000_000, [0.0, 0.0, 0.0, 7.5]),
        (70_000_000, [1.25, 0.0, 4.0, 0.75]),
    ];
    for (k, (step_uj, cpu_step)) in steps.iter().enumerate() {
        let mut e_h = 0.0;
        for (rel, name, _, _) in ZONES {
            // Each zone advances by its own amount; package-1 wraps at the first step.
            let inc = step_uj / (1 + rel.len() as u64 % 3);
            let v = energy.get_mut(rel).unwrap();
            *v = (*v + inc) % RANGE;
            if name != "core" {
                e_h += inc as f64 / 1e6;
            }
        }
        let total_cpu: f64 = cpu_step.iter().sum();
        for (uuid, step) in RUNNING.iter().zip(cpu_step) {
            *cpu_s.get_mut(uuid).unwrap() += step;
            *expected.entry(uuid).or_default() += e_h * step / total_cpu;
        }
        host_total += e_h;
        set(&energy, &cpu_s);
        state.tick(t0 + 10_000 * (k as i64 + 1));
    }
    for uuid in RUNNING {
        let got = state.ledger().vm_joules[uuid];
        assert!(
            rel_err(got, expected[uuid]) < 1e-12,
            "{uuid}: {got} vs {}",
            expected[uuid]
        );
    }
    let attributed: f64 = state.ledger().vm_joules.values().sum();
    assert!(rel_err(attributed + state.ledger().unattributed_joules, host_total) < 1e-12);
    let meters: f64 = state.ledger().meter_joules.values().sum();
    assert!(
        rel_err(meters, host_total) < 1e-12,
        "{meters} vs {host_total}"
    );

    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    let nova = RUNNING[0];
    let got = value_of(&scrape, "wattson_vm_energy_joules_total", nova).unwrap();
    assert!(rel_err(got, expected[nova]) < 1e-12, "{scrape}");
    assert!(scrape.contains("libvirtname=\"one-42\""), "{scrape}");
    // The last interval: 70 mJ-ish over 10 s, split by CPU.
    let watts = value_of(&scrape, "wattson_vm_power_watts", RUNNING[2]).unwrap();
    assert!(watts > 0.0);

    // A removed domain's series are gone at the next scrape; its counter is kept.
    remove_domain(&node, "one-42");
    let removed = RUNNING[2];
    cpu_s.remove(removed);
    set(&energy, &cpu_s);
    state.tick(t0 + 50_000);
    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    assert!(!scrape.contains(removed), "{scrape}");
    assert!(!scrape.contains("one-42"), "{scrape}");

    // A restart keeps every counter, and the interval across it is measured.
    let before: BTreeMap<String, f64> = state.ledger().vm_joules.clone();
    drop(state);
    let inc = 20_000_000;
    let mut e_h = 0.0;
    for (rel, name, _, _) in ZONES {
        *energy.get_mut(rel).unwrap() += inc;
        if name != "core" {
            e_h += inc as f64 / 1e6;
        }
    }
    for uuid in [RUNNING[0], RUNNING[1], RUNNING[3]] {
        *cpu_s.get_mut(uuid).unwrap() += 1.0;
    }
    set(&energy, &cpu_s);
    let (mut state, _) = start_engine(&policy, &cpu, &cache);
    state.tick(t0 + 80_000);
    for uuid in [RUNNING[0], RUNNING[1], RUNNING[3]] {
        let got = state.ledger().vm_joules[uuid];
        let want = before[uuid] + e_h / 3.0;
        assert!(rel_err(got, want) < 1e-12, "{uuid}: {got} vs {want}");
    }
    assert_eq!(state.ledger().vm_joules[removed], before[removed]);
}

/// A GET with an optional bearer token: (status, body).
fn get(addr: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    get_as(addr, path, token, "*/*")
}

/// A GET asking for `accept`.
fn get_as(addr: &str, path: &str, token: Option<&str>, accept: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Accept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    // Bodies come chunked: keep the chunk payloads.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    Some((code, body))
}

/// Replaces a file whole (the daemon never reads half of it).
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// The running daemon process, killed on drop.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon(policy: &Path, addr: &str, cpu_file: &Path) -> Daemon {
    let child = super::wattson::command()
        .args(["daemon", "--policy"])
        .arg(policy)
        .args(["--listen", addr, "--set", "daemon.interval_secs=1"])
        .env("WATTSON_TEST_CPU_TIMES", cpu_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    let start = std::time::Instant::now();
    while get(addr, "/healthz", None).is_none() {
        assert!(start.elapsed().as_secs() < 30, "the daemon did not listen");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    daemon
}

/// A second daemon on the same policy (another port) is refused at start,
/// exit 6, naming the first's PID, before it reads or writes any state
/// (issue 33: it used to share `daemon.json` and ship a window).
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_second_daemon_on_the_same_policy_exits_6_naming_the_first() {
    let host = Host::new();
    let policy = host.write_policy(&host.policy_text("none"));
    let cpu_file = host.tmp.path().join("cpu");
    let lines: String = RUNNING.iter().map(|u| format!("{u} 10\n")).collect();
    write_atomic(&cpu_file, &lines);
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    let first = spawn_daemon(&policy, &addr, &cpu_file);
    let state = host.dir().join("state/daemon");
    let listing = |dir: &Path| -> BTreeMap<PathBuf, std::time::SystemTime> {
        walk(dir)
            .into_iter()
            .filter(|p| !p.ends_with("daemon.json") && !p.ends_with("lock"))
            .map(|p| {
                let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
                (p, modified)
            })
            .collect()
    };
    // Left out: daemon.json, which the first writes every second, and the
    // run lock its shipping takes (and writes its PID into). Its first
    // shipping, at its first tick, is over.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let before = listing(&state);
    let second = super::wattson::command()
        .args(["daemon", "--policy"])
        .arg(&policy)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", super::prometheus::free_port()),
        ])
        .env("WATTSON_TEST_CPU_TIMES", &cpu_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("PID {} holds", first.0.id()))
            && stderr.contains("daemon.lock")
            && stderr.contains("one daemon per policy"),
        "{stderr}"
    );
    assert_eq!(listing(&state), before, "the second touched no file");
    // The first goes on.
    assert_eq!(get(&addr, "/healthz", None).map(|r| r.0), Some(200));
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every sample of `metric` in a scrape, summed.
fn sum_of(scrape: &str, metric: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn the_daemon_serves_guarded_endpoints_streams_records_and_stops_on_sigterm() {
    let host = Host::new();
    let (tmp, devices) = (&host.tmp, host.devices.clone());
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let text = host.policy_text("none").replace(
        "ship_every_secs = 3600",
        &format!(
            "ship_every_secs = 3600\ntoken_file = \"{}\"",
            token_file.display()
        ),
    );
    let policy = host.write_policy(&text);
    let cpu_file = tmp.path().join("cpu");
    let write_cpu = |k: f64| {
        let lines: String = RUNNING
            .iter()
            .enumerate()
            .map(|(i, u)| format!("{u} {}\n", 50.0 + k * (i as f64 + 0.5)))
            .collect();
        write_atomic(&cpu_file, &lines);
    };
    write_cpu(0.0);
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    let mut daemon = spawn_daemon(&policy, &addr, &cpu_file);

    // A websocket client, connected before the records come.
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/stream"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", "Bearer s3cret-token".parse().unwrap());
    let (mut socket, _) = tokio
        .block_on(tokio_tungstenite::connect_async(request))
        .unwrap();

    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    for k in 1..=5 {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        for (rel, v) in energy.iter_mut() {
            *v = (*v + 7_000_000 * k) % RANGE;
            bump(&devices, rel, *v);
        }
        write_cpu(k as f64);
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));

    // Every endpoint but /healthz asks for the token.
    let (code, health) = get(&addr, "/healthz", None).unwrap();
    assert_eq!(code, 200, "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    for path in ["/metrics", "/vms", "/nodes", "/download", "/stream"] {
        let (code, _) = get(&addr, path, None).unwrap();
        assert_eq!(code, 401, "{path} without the token");
        let (code, _) = get(&addr, path, Some("wrong-token!")).unwrap();
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let token = Some("s3cret-token");
    let (code, scrape) = get(&addr, "/metrics", token).unwrap();
    assert_eq!(code, 200);
    // Conservation across the counters: VMs + unattributed = the meters.
    let vms = sum_of(&scrape, "wattson_vm_energy_joules_total");
    let unattributed = sum_of(&scrape, "wattson_host_unattributed_joules_total");
    let meters = sum_of(&scrape, "wattson_host_energy_joules_total");
    assert!(vms > 0.0, "{scrape}");
    assert!(rel_err(vms + unattributed, meters) < 1e-9, "{scrape}");
    // idle = "none": every interval splits by CPU time, and each VM's CPU
    // grows at its own fixed rate (i + 0.5 per step), so each counter is its
    // rate's share of what the VMs got, whichever intervals the daemon cut.
    let rates: Vec<f64> = (0..RUNNING.len()).map(|i| i as f64 + 0.5).collect();
    let total_rate: f64 = rates.iter().sum();
    for (uuid, rate) in RUNNING.iter().zip(&rates) {
        let got = value_of(&scrape, "wattson_vm_energy_joules_total", uuid).unwrap();
        let want = vms * rate / total_rate;
        assert!(
            rel_err(got, want) < 1e-9,
            "{uuid}: {got} vs {want}\n{scrape}"
        );
    }
    // promtool accepts it; its only lints are on seed 002's own names.
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), scrape.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stdout).to_string()
        + &String::from_utf8_lossy(&checked.stderr);
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("libvirt_nova_instance_"),
            "promtool: {said}"
        );
    }
    assert!(!scrape.contains("# EOF"));
    let (_, om) = get_as(
        &addr,
        "/metrics",
        token,
        "application/openmetrics-text;version=1.0.0",
    )
    .unwrap();
    assert!(
        om.contains("# TYPE wattson_vm_energy_joules counter"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let (_, csv) = get_as(&addr, "/vms", token, "text/csv").unwrap();
    assert!(
        csv.starts_with("uuid,name,project,host,watts,joules_total"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + RUNNING.len(), "{csv}");

    let (code, csv) = get(&addr, "/download?rows=2", token).unwrap();
    assert_eq!(code, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "start,end,uuid,name,project,host,joules,watts,cpu_s,model"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let (_, vms_json) = get(&addr, "/vms", token).unwrap();
    let vms_json: serde_json::Value = serde_json::from_str(&vms_json).unwrap();
    assert_eq!(vms_json.as_array().unwrap().len(), RUNNING.len());

    // The websocket got the records as they were made.
    let message = tokio
        .block_on(async {
            use futures::StreamExt;
            tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await
        })
        .unwrap()
        .unwrap()
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
    assert!(
        RUNNING.contains(&record["uuid"].as_str().unwrap()),
        "{record}"
    );
    assert_eq!(record["host"], "cmp-01");

    // SIGTERM: a last sample, the counters persisted, exit 0 within 10 s.
    let pid = daemon.0.id().to_string();
    let started = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed().as_secs() < 10);
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("state/daemon/daemon.json")).unwrap(),
    )
    .unwrap();
    let kept: f64 = state["vm_joules"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_f64())
        .sum();
    assert!(kept >= vms, "{kept} < {vms}");

    // A restarted daemon serves the same counters, never lower.
    let _again = spawn_daemon(&policy, &addr, &cpu_file);
    let (_, scrape) = get(&addr, "/metrics", token).unwrap();
    let restarted = sum_of(&scrape, "wattson_vm_energy_joules_total");
    assert!(rel_err(restarted, kept) < 1e-12, "{restarted} vs {kept}");
}

#[test]
fn a_broken_policy_edit_keeps_the_running_one_and_a_valid_one_switches() {
    let host = Host::new();
    let good = host.policy_text("none");
    let policy = host.write_policy(&good);
    let cpu_file = host.dir().join("cpu");
    std::fs::write(&cpu_file, "").unwrap();
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    let mut daemon = spawn_daemon(&policy, &addr, &cpu_file);
    let pause = || std::thread::sleep(std::time::Duration::from_millis(2500));

    // A typo: logged with its place, the running policy stays.
    std::fs::write(
        &policy,
        good.replace("[daemon]", "[daemon]\nintervall_secs = 5"),
    )
    .unwrap();
    pause();
    let (code, scrape) = get(&addr, "/metrics", None).unwrap();
    assert_eq!(code, 200);
    assert!(scrape.contains("host=\"cmp-01\""), "{scrape}");
    // A valid edit switches.
    std::fs::write(
        &policy,
        good.replace("host = \"cmp-01\"", "host = \"cmp-02\""),
    )
    .unwrap();
    pause();
    let (_, scrape) = get(&addr, "/metrics", None).unwrap();
    assert!(scrape.contains("host=\"cmp-02\""), "{scrape}");
    // SIGHUP reloads too, and a bad model is refused the same way.
    std::fs::write(
        &policy,
        good.replace("plugin = \"rapl-share\"", "plugin = \"libvirt-joules\""),
    )
    .unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    pause();
    let (code, _) = get(&addr, "/healthz", None).unwrap();
    assert_eq!(code, 200);

    std::process::Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(daemon.0.wait().unwrap().success(), "{stderr}");
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("reload refused"))
        .collect();
    assert!(
        refused
            .iter()
            .any(|l| l.contains("daemon.toml:") && l.contains("intervall_secs")),
        "{stderr}"
    );
    assert!(
        refused.iter().any(|l| l.contains("unknown parameter")),
        "{stderr}"
    );
}

/// Every jsonl record the file messenger wrote under `dir`.
pub(super) fn delivered(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

#[test]
fn closed_windows_ship_once_each_with_the_intervals_split_at_their_edges() {
    let host = Host::new();
    let (tmp, cache, devices) = (&host.tmp, host.dir().join("cache"), host.devices.clone());
    let policy = host.write_policy(
        &host
            .policy_text("none")
            .replace("ship_every_secs = 3600", "ship_every_secs = 60"),
    );
    let cpu = FedCpu::default();
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let shares = [1.0, 2.0, 3.0, 4.0];
    let mut cpu_s = [10.0; 4];
    let set = |energy: &BTreeMap<&str, u64>, cpu_s: &[f64; 4]| {
        for (rel, value) in energy {
            bump(&devices, rel, *value);
        }
        *cpu.0.lock().unwrap() = RUNNING
            .iter()
            .zip(cpu_s)
            .map(|(u, s)| (u.to_string(), *s))
            .collect();
    };
    set(&energy, &cpu_s);
    let (mut state, _) = start_engine(&policy, &cpu, &cache);
    // Ticks 5 s past each 10 s, from 5 s into a minute to 125 s.
    let base = 1_800_000_000_000_i64;
    state.tick(base + 5_000);
    // Every interval: each zone but core +2 J, so E = 8 J (4 zones), split 1:2:3:4.
    let e_interval = 8.0;
    for k in 1..=12 {
        for (rel, name, _, _) in ZONES {
            if name != "core" {
                let v = energy.get_mut(rel).unwrap();
                *v = (*v + 2_000_000) % RANGE;
            }
        }
        for (c, s) in cpu_s.iter_mut().zip(shares) {
            *c += s;
        }
        set(&energy, &cpu_s);
        state.tick(base + 5_000 + 10_000 * k);
        state.ship().unwrap();
    }
    let out = tmp.path().join("out");
    let records = delivered(&out);
    // Two closed windows, each VM once in each.
    assert_eq!(records.len(), 8, "{records:?}");
    // [0, 60 s): 5 whole intervals and half of [55, 65); [60, 120): half of
    // it, 5 whole and half of [115, 125).
    for (start, intervals, status) in [
        ("2027-01-15T08:00:00", 5.5, "started"),
        ("2027-01-15T08:01:00", 6.0, "running"),
    ] {
        for (uuid, share) in RUNNING.iter().zip(shares) {
            let r = records
                .iter()
                .find(|r| r["vm_uuid"] == *uuid && r["start"].as_str().unwrap().starts_with(start))
                .unwrap_or_else(|| panic!("{uuid} at {start}: {records:?}"));
            let want = intervals * e_interval * share / 10.0;
            let got = r["energy_joules"].as_f64().unwrap();
            assert!(
                rel_err(got, want) < 1e-12,
                "{uuid} {start}: {got} vs {want}"
            );
            assert_eq!(r["status"], status, "{r}");
            assert_eq!(r["host"], "cmp-01");
        }
    }
    // Nothing is shipped twice: not by the same state, nor after a restart.
    state.ship().unwrap();
    drop(state);
    let (mut state, _) = start_engine(&policy, &cpu, &cache);
    state.ship().unwrap();
    assert_eq!(delivered(&out).len(), 8);
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_kill_during_shipping_then_a_restart_delivers_each_record_once() {
    let host = Host::new();
    let (tmp, devices) = (&host.tmp, host.devices.clone());
    let policy = host.write_policy(
        &host
            .policy_text("none")
            .replace("ship_every_secs = 3600", "ship_every_secs = 2"),
    );
    let cpu_file = tmp.path().join("cpu");
    let advance = |k: u64| {
        let lines: String = RUNNING
            .iter()
            .map(|u| format!("{u} {}\n", 10 + k))
            .collect();
        write_atomic(&cpu_file, &lines);
        for (rel, _, start, _) in ZONES {
            bump(&devices, rel, (start + 5_000_000 * k) % RANGE);
        }
    };
    advance(0);
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    // In the guard: a build without failpoints never crashes, and the
    // daemon must not outlive the failed test (nor hold its output open).
    let mut crashing = Daemon(
        super::wattson::command()
            .args(["daemon", "--policy"])
            .arg(&policy)
            .args(["--listen", &addr, "--set", "daemon.interval_secs=1"])
            .env("WATTSON_TEST_CPU_TIMES", &cpu_file)
            .env("WATTSON_CRASH_AT", "mid-delivery")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut k = 0;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = crashing.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed().as_secs() < 30, "no crash");
        k += 1;
        advance(k);
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(!status.success(), "killed at mid-delivery");
    let mut daemon = spawn_daemon(&policy, &addr, &cpu_file);
    for _ in 0..8 {
        k += 1;
        advance(k);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(daemon.0.wait().unwrap().success());

    let records = delivered(&tmp.path().join("out"));
    let mut seen = std::collections::BTreeSet::new();
    let mut windows = std::collections::BTreeSet::new();
    for r in &records {
        assert!(
            seen.insert(r["id"].as_str().unwrap().to_owned()),
            "twice: {r}"
        );
        windows.insert((
            r["start"].as_str().unwrap().to_owned(),
            r["end"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(windows.len() >= 3, "{windows:?}");
    // Windows follow each other with no gap and no overlap.
    let windows: Vec<_> = windows.into_iter().collect();
    for pair in windows.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{windows:?}");
    }
    for (start, _) in &windows {
        let n = records.iter().filter(|r| r["start"] == *start).count();
        assert!(n <= RUNNING.len(), "{start}: {n}");
    }
}

#[test]
fn prometheus_scrapes_the_daemon_and_extract_from_daemon_gives_its_counters() {
    let host = Host::new();
    let (tmp, devices) = (&host.tmp, host.devices.clone());
    let policy = host.write_policy(&host.policy_text("vcpus"));
    let cpu_file = tmp.path().join("cpu");
    let advance = |k: u64| {
        let lines: String = RUNNING
            .iter()
            .enumerate()
            .map(|(i, u)| format!("{u} {}\n", 10.0 + k as f64 * (i as f64 + 0.25)))
            .collect();
        write_atomic(&cpu_file, &lines);
        for (rel, _, start, _) in ZONES {
            bump(&devices, rel, (start + 3_000_000 * k * k) % RANGE);
        }
    };
    advance(0);
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    let _daemon = spawn_daemon(&policy, &addr, &cpu_file);
    let prometheus = super::prometheus::Prometheus::scraping(&[&addr], "1s");
    let from_ms = chrono::Utc::now().timestamp_millis() + 500;
    for k in 1..=24 {
        advance(k);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let to_ms = chrono::Utc::now().timestamp_millis() - 1500;

    let out = super::wattson::command()
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("policies/from-daemon.toml"),
        )
        .args(["--prometheus", &prometheus.url])
        .args([
            "--set",
            &format!("state.dir=\"{}\"", tmp.path().join("acct").display()),
        ])
        .args([
            "--from",
            &super::wattson::secs(from_ms),
            "--to",
            &super::wattson::secs(to_ms),
        ])
        .output()
        .unwrap();
    let records = super::wattson::jsonl_records(&out);
    let energy = prometheus.raw_samples("wattson_vm_energy_joules_total", "uuid", 60, to_ms);
    let cpu = prometheus.raw_samples("wattson_vm_cpu_seconds_total", "uuid", 60, to_ms);
    assert_eq!(records.len(), RUNNING.len(), "{records:?}");
    for r in &records {
        let uuid = r["vm_uuid"].as_str().unwrap();
        let want = c1(&energy[uuid], from_ms, to_ms).unwrap();
        let got = r["energy_joules"].as_f64().unwrap();
        assert!(want > 0.0);
        assert!(rel_err(got, want) < 1e-9, "{uuid}: {got} vs {want}");
        let cpu_want = c1(&cpu[uuid], from_ms, to_ms).unwrap();
        let cpu_got = r["cpu_s"].as_f64().unwrap();
        assert!(
            rel_err(cpu_got, cpu_want) < 1e-9,
            "{uuid}: {cpu_got} vs {cpu_want}"
        );
        assert_eq!(r["host"], "cmp-01");
    }
    let named = records.iter().find(|r| r["vm_uuid"] == RUNNING[0]).unwrap();
    assert!(
        named["vm_name"].as_str().is_some_and(|n| !n.is_empty()),
        "{named}"
    );
}

#[test]
fn ipmi_share_integrates_the_meter_command_and_measures_across_a_failed_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let (_node, uri) = node_copy(tmp.path());
    let reading = tmp.path().join("dcmi.txt");
    let policy = tmp.path().join("daemon.toml");
    let text = daemon_policy(tmp.path(), &uri, &tmp.path().join("no-powercap"), "none")
        .replace("plugin = \"rapl-share\"", "plugin = \"ipmi-share\"")
        .replace(
            "[model]",
            &format!(
                "[host_power]\ncommand = [\"cat\", \"{}\"]\n\n[model]",
                reading.display()
            ),
        );
    std::fs::write(&policy, text).unwrap();
    let write_watts = |w: &str| {
        std::fs::write(
            &reading,
            format!(
                "    Instantaneous power reading:                   {w} Watts\n    \
                 Power reading state is:                   activated\n"
            ),
        )
        .unwrap();
    };
    let cpu = FedCpu::default();
    let mut cpu_s = [5.0, 5.0, 5.0, 5.0];
    let shares = [1.0, 1.0, 2.0, 4.0];
    let set_cpu = |cpu_s: &[f64; 4]| {
        *cpu.0.lock().unwrap() = RUNNING
            .iter()
            .zip(cpu_s)
            .map(|(u, s)| (u.to_string(), *s))
            .collect();
    };
    set_cpu(&cpu_s);
    write_watts("200");
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    let t0 = 1_800_000_000_000_i64;
    state.tick(t0);
    // Readings at 10, 20 (unreadable), 30 s: the first interval by G1 of
    // (200, 260); the failed one is skipped and [10, 30] measured from
    // (260, 180) at the next reading.
    let mut expected = [0.0; 4];
    let mut add = |joules: f64| {
        let total: f64 = shares.iter().sum();
        for (e, s) in expected.iter_mut().zip(shares) {
            *e += joules * s / total;
        }
    };
    for c in cpu_s.iter_mut().zip(shares) {
        *c.0 += c.1;
    }
    set_cpu(&cpu_s);
    write_watts("260");
    state.tick(t0 + 10_000);
    add((200.0 + 260.0) / 2.0 * 10.0);
    write_watts("n/a");
    state.tick(t0 + 20_000);
    assert_eq!(
        shared.snapshot().health.sample_failures.get("ipmi"),
        Some(&1)
    );
    for c in cpu_s.iter_mut().zip(shares) {
        *c.0 += 2.0 * c.1;
    }
    set_cpu(&cpu_s);
    write_watts("180");
    state.tick(t0 + 30_000);
    add((260.0 + 180.0) / 2.0 * 20.0);
    for (uuid, want) in RUNNING.iter().zip(expected) {
        let got = state.ledger().vm_joules[*uuid];
        assert!(rel_err(got, want) < 1e-12, "{uuid}: {got} vs {want}");
    }
    assert!(rel_err(state.ledger().meter_joules["ipmi"], 2300.0 + 4400.0) < 1e-12);
    assert_eq!(shared.snapshot().health.failures_in_a_row, 0);

    // The BMC is unreadable for 370 s, longer than the 300 s gap limit: G1
    // bridges nothing, so neither the models nor the exported meter counter
    // count that span, and /metrics still conserves (VMs + unattributed =
    // meters).
    write_watts("n/a");
    state.tick(t0 + 40_000);
    for c in cpu_s.iter_mut().zip(shares) {
        *c.0 += 37.0 * c.1;
    }
    set_cpu(&cpu_s);
    write_watts("190");
    state.tick(t0 + 400_000);
    let ledger = state.ledger();
    assert!(rel_err(ledger.meter_joules["ipmi"], 2300.0 + 4400.0) < 1e-12);
    let attributed: f64 = ledger.vm_joules.values().sum::<f64>() + ledger.unattributed_joules;
    assert!(
        rel_err(attributed, ledger.meter_joules["ipmi"]) < 1e-12,
        "VMs + unattributed {attributed} J against the meter's {} J",
        ledger.meter_joules["ipmi"]
    );
    // Measured again from the next reading on.
    for c in cpu_s.iter_mut().zip(shares) {
        *c.0 += c.1;
    }
    set_cpu(&cpu_s);
    write_watts("210");
    state.tick(t0 + 410_000);
    let ledger = state.ledger();
    assert!(rel_err(ledger.meter_joules["ipmi"], 6700.0 + 2000.0) < 1e-12);
    let attributed: f64 = ledger.vm_joules.values().sum::<f64>() + ledger.unattributed_joules;
    assert!(rel_err(attributed, 8700.0) < 1e-12);
}

#[test]
fn a_libvirt_that_cannot_be_read_fails_healthz_after_three_intervals_and_recovers() {
    let host = Host::new();
    let (tmp, node) = (&host.tmp, host.node.clone());
    let missing = tmp.path().join("later/node.xml");
    let policy = host.write_policy(
        &host
            .policy_text("none")
            .replace(&host.uri, &format!("test://{}", missing.display())),
    );
    let cpu_file = tmp.path().join("cpu");
    std::fs::write(&cpu_file, "").unwrap();
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    let mut daemon = spawn_daemon(&policy, &addr, &cpu_file);
    std::thread::sleep(std::time::Duration::from_millis(4000));
    let (code, health) = get(&addr, "/healthz", None).unwrap();
    assert_eq!(code, 503, "{health}");
    let (code, scrape) = get(&addr, "/metrics", None).unwrap();
    assert_eq!(code, 200, "the server keeps serving");
    let failures = scrape
        .lines()
        .find(|l| l.starts_with("wattson_daemon_sample_failures_total{source=\"libvirt\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap();
    assert!(failures >= 3.0, "{scrape}");
    // libvirt comes back: the next interval reads it.
    std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
    std::fs::copy(&node, &missing).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (code, health) = get(&addr, "/healthz", None).unwrap();
    assert_eq!(code, 200, "{health}");
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(daemon.0.wait().unwrap().success());
    // wattson's own lines (libxml2 prints the test driver's file errors itself).
    let said = stderr
        .lines()
        .filter(|l| l.contains("source=\"libvirt\""))
        .count();
    assert_eq!(said, 1, "logged once per kind: {stderr}");
}

#[test]
fn policy_check_and_the_daemon_refuse_what_cannot_be_measured_locally() {
    let tmp = tempfile::tempdir().unwrap();
    let (_node, uri) = node_copy(tmp.path());
    let good = daemon_policy(tmp.path(), &uri, &tmp.path().join("sys"), "none");
    let policy = tmp.path().join("daemon.toml");
    let cases = [
        (
            good.replace("plugin = \"rapl-share\"", "plugin = \"libvirt-joules\"")
                .replace(
                    "[model.params]\nidle = \"none\"\nidle_power = \"auto\"\n",
                    "",
                ),
            "measurement `energy` (counter `libvirt_domain_info_energy_consumption_joules_total`) is read from Prometheus",
        ),
        (
            good.replace(&format!("libvirt_uri = \"{uri}\""), ""),
            "[inventory] libvirt_uri is not set",
        ),
        (
            good.replace("interval_secs = 10", "interval_secs = 0"),
            "daemon.interval_secs",
        ),
    ];
    for (text, says) in cases {
        std::fs::write(&policy, &text).unwrap();
        for args in [&["policy", "check"][..], &["daemon", "--policy"]] {
            let out = super::wattson::command()
                .args(args)
                .arg(&policy)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(says), "{args:?}: {stderr}");
            assert!(stderr.contains("daemon.toml"), "{args:?}: {stderr}");
        }
    }
}

/// `policy check` of an `ipmi-share` daemon policy runs `[host_power]
/// command` once and names what is wrong, as a warning (the policy may be
/// checked off the hypervisor); a meter that answers is not mentioned.
#[test]
fn policy_check_runs_the_host_power_command_and_names_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let (_node, uri) = node_copy(tmp.path());
    let reading = tmp.path().join("dcmi.txt");
    std::fs::write(&reading, "Instantaneous power reading:   312 Watts\n").unwrap();
    let policy = tmp.path().join("daemon.toml");
    let with = |command: &str| {
        daemon_policy(tmp.path(), &uri, &tmp.path().join("no-powercap"), "none")
            .replace("plugin = \"rapl-share\"", "plugin = \"ipmi-share\"")
            .replace(
                "[model]",
                &format!("[host_power]\ncommand = {command}\n\n[model]"),
            )
    };
    let check = |text: String| {
        std::fs::write(&policy, text).unwrap();
        let out = super::wattson::command()
            .args(["policy", "check"])
            .arg(&policy)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
    };
    let missing = check(with("[\"/nonexistent/ipmitool\", \"dcmi\"]"));
    for said in ["/nonexistent/ipmitool", "[host_power] command"] {
        assert!(missing.contains(said), "{said}: {missing}");
    }
    let answering = check(with(&format!("[\"cat\", \"{}\"]", reading.display())));
    assert!(!answering.contains("[host_power]"), "{answering}");
}

#[test]
fn a_failed_interval_is_measured_once_meters_included_at_the_next_success() {
    let host = Host::new();
    let (cache, devices) = (host.dir().join("cache"), host.devices.clone());
    let good = host.policy_text("none");
    // Rules without [model], matching no VM: every interval fails.
    let failing = good.replace(
        "[model]\nplugin = \"rapl-share\"\n[model.params]\nidle = \"none\"\nidle_power = \"auto\"\n",
        "[[rules]]\nmatch = { project = \"nobody\" }\nplugin = \"rapl-share\"\n",
    );
    assert_ne!(failing, good);
    let policy = host.write_policy(&failing);
    let cpu = FedCpu::default();
    *cpu.0.lock().unwrap() = RUNNING.iter().map(|u| (u.to_string(), 1.0)).collect();
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    let t0 = 1_800_000_000_000_i64;
    state.tick(t0);
    // Each zone but core +3 J per step: 12 J of host energy per step.
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let step = |energy: &mut BTreeMap<&str, u64>| {
        for (rel, name, _, _) in ZONES {
            if name != "core" {
                let v = energy.get_mut(rel).unwrap();
                *v = (*v + 3_000_000) % RANGE;
                bump(&devices, rel, *v);
            }
        }
        for c in cpu.0.lock().unwrap().values_mut() {
            *c += 1.0;
        }
    };
    step(&mut energy);
    state.tick(t0 + 10_000);
    assert_eq!(shared.snapshot().health.plugin_failures, 1);
    // The model is mended; the next interval spans both steps, once.
    std::fs::write(&policy, &good).unwrap();
    let policy = Policy::load(&policy).unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.clone())).unwrap();
    let bound = wattson::policy::bind(&policy, &runtime).unwrap();
    let mut sources = sources(&policy, Plan::new(&bound).measurements());
    sources.cpu_times = Some(Box::new(cpu.clone()));
    state.reload(policy, bound, sources, "cmp-01".into());
    step(&mut energy);
    state.tick(t0 + 20_000);
    let meters: f64 = state.ledger().meter_joules.values().sum();
    assert!(rel_err(meters, 24.0) < 1e-12, "{meters}");
    let vms: f64 = state.ledger().vm_joules.values().sum();
    assert!(rel_err(vms, 24.0) < 1e-12, "{vms}");
}

/// A reboot while the daemon is stopped sets every RAPL counter back: the
/// first sample after it is a new baseline (its boot id changed), never a
/// wrap, so the phantom energy is 0; the next interval is measured as usual.
#[test]
fn a_reboot_is_a_new_baseline_not_a_wrap() {
    let host = Host::new();
    let (cache, devices) = (host.dir().join("cache"), host.devices.clone());
    let boot_id = host.dir().join("boot_id");
    let text = host.policy_text("none").replace(
        "ship_every_secs = 3600",
        &format!(
            "ship_every_secs = 3600\nboot_id_file = \"{}\"",
            boot_id.display()
        ),
    );
    let policy = host.write_policy(&text);
    let cpu = FedCpu::default();
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let mut cpu_s: BTreeMap<&str, f64> = RUNNING.iter().map(|u| (*u, 100.0)).collect();
    let set = |energy: &BTreeMap<&str, u64>, cpu_s: &BTreeMap<&str, f64>| {
        for (rel, value) in energy {
            bump(&devices, rel, *value);
        }
        *cpu.0.lock().unwrap() = cpu_s.iter().map(|(u, s)| (u.to_string(), *s)).collect();
    };
    // Advances every zone by `inc` µJ and every VM by 1 CPU second: the
    // host's energy (package + dram) in joules.
    let advance = |energy: &mut BTreeMap<&str, u64>, cpu_s: &mut BTreeMap<&str, f64>| {
        let mut e_h = 0.0;
        for (rel, name, _, _) in ZONES {
            *energy.get_mut(rel).unwrap() += 3_000_000;
            if name != "core" {
                e_h += 3.0;
            }
        }
        for s in cpu_s.values_mut() {
            *s += 1.0;
        }
        e_h
    };
    std::fs::write(&boot_id, "2b1f0c7e-0000-4000-8000-000000000001\n").unwrap();
    set(&energy, &cpu_s);
    let (mut state, _) = start_engine(&policy, &cpu, &cache);
    let t0 = 1_800_000_003_000_i64;
    state.tick(t0);
    let mut host_total = advance(&mut energy, &mut cpu_s);
    set(&energy, &cpu_s);
    state.tick(t0 + 10_000);
    drop(state);

    // The reboot: every counter back to 1 J, CPU times from 0, a new boot id.
    for v in energy.values_mut() {
        *v = 1_000_000;
    }
    for s in cpu_s.values_mut() {
        *s = 2.0;
    }
    std::fs::write(&boot_id, "2b1f0c7e-0000-4000-8000-000000000002\n").unwrap();
    set(&energy, &cpu_s);
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    state.tick(t0 + 600_000);
    let attributed = |state: &DaemonState| {
        state.ledger().vm_joules.values().sum::<f64>() + state.ledger().unattributed_joules
    };
    let meters = |state: &DaemonState| state.ledger().meter_joules.values().sum::<f64>();
    assert!(
        rel_err(attributed(&state), host_total) < 1e-12,
        "phantom energy after the reboot: {} J attributed against {host_total} J measured",
        attributed(&state)
    );
    assert!(rel_err(meters(&state), host_total) < 1e-12);
    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    assert!(
        scrape.contains("wattson_daemon_reboots_total 1"),
        "{scrape}"
    );

    // From the new baseline on, intervals are measured as before.
    host_total += advance(&mut energy, &mut cpu_s);
    set(&energy, &cpu_s);
    state.tick(t0 + 610_000);
    assert!(rel_err(attributed(&state), host_total) < 1e-12);
    assert!(rel_err(meters(&state), host_total) < 1e-12);
}

/// `idle_power = "fit"` in the daemon: a host that never idles (55 to 95 %
/// busy by its `/proc/stat`, 110 W idle + 90 W at full load, ±1 W of noise)
/// has its idle power recovered to 2 % from the line of its minutes, where
/// the least minute is above 150 W; the history survives a restart.
#[test]
fn the_daemon_fits_the_idle_power_of_a_host_that_never_idles() {
    let host = Host::new();
    let (cache, devices) = (host.dir().join("cache"), host.devices.clone());
    let stat = host.dir().join("stat");
    let text = host
        .policy_text("vcpus")
        .replace("idle_power = \"auto\"", "idle_power = \"fit\"")
        .replace(
            "interval_secs = 10",
            &format!(
                "interval_secs = 60\nproc_stat_file = \"{}\"",
                stat.display()
            ),
        );
    let policy = host.write_policy(&text);
    let cpu = FedCpu::default();
    let mut rng = super::data::Rng::new(77);
    // package-0, core, dram, package-1, dram: the host's power is package-0
    // + 12 W (package-1) + 4 W per dram; core is inside package-0.
    let mut energy: Vec<u64> = ZONES.iter().map(|z| z.2).collect();
    let (mut busy, mut total) = (1_000_000_u64, 4_000_000_u64);
    let mut cpu_s = 100.0;
    let mut least = f64::INFINITY;
    let write = |energy: &[u64], busy: u64, total: u64, cpu_s: f64| {
        for ((rel, ..), value) in ZONES.iter().zip(energy) {
            bump(&devices, rel, *value);
        }
        let idle = total - busy;
        std::fs::write(
            &stat,
            format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0 0 0\n"),
        )
        .unwrap();
        *cpu.0.lock().unwrap() = RUNNING.iter().map(|u| (u.to_string(), cpu_s)).collect();
    };
    write(&energy, busy, total, cpu_s);
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    // On an hour: 500,000 hours since the epoch.
    let t0 = 1_800_000_000_000_i64;
    state.tick(t0);
    for k in 1..=40 {
        // 8 CPUs × 100 jiffies × 60 s a minute.
        let u = 0.55 + 0.4 * rng.next_f64();
        busy += (u * 48_000.0).round() as u64;
        total += 48_000;
        let watts = 110.0 + 90.0 * u + (rng.next_f64() - 0.5) * 2.0;
        let package0 = watts - 12.0 - 8.0;
        for (z, w) in [
            (0, package0),
            (1, 0.6 * package0),
            (2, 4.0),
            (3, 12.0),
            (4, 4.0),
        ] {
            energy[z] = (energy[z] + (w * 60e6) as u64) % RANGE;
        }
        // package-1 starts 3 J short of its range: its first minute wraps.
        if k > 1 {
            least = least.min(watts);
        }
        cpu_s += 30.0;
        write(&energy, busy, total, cpu_s);
        state.tick(t0 + k * 60_000);
    }
    let got = shared.snapshot().idle_watts.unwrap();
    assert!(
        (got - 110.0).abs() < 0.02 * 110.0,
        "fit: {got} W, simulated 110 W"
    );
    assert!(
        least > 150.0,
        "the least minute, {least} W, is far above idle"
    );
    drop(state);

    // Restarted, it knows the line at its first interval.
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    busy += 30_000;
    total += 48_000;
    for (z, w) in [(0, 150.0), (1, 90.0), (2, 4.0), (3, 12.0), (4, 4.0)] {
        energy[z] = (energy[z] + (w * 60e6) as u64) % RANGE;
    }
    cpu_s += 30.0;
    write(&energy, busy, total, cpu_s);
    state.tick(t0 + 41 * 60_000);
    let again = shared.snapshot().idle_watts.unwrap();
    assert!(
        (again - got).abs() < 0.01 * got,
        "after a restart: {again} W, before: {got} W"
    );
}

/// `promtool check metrics` lints the daemon's `/metrics`: with `[daemon]
/// compat_series = false` the scrape passes and keeps wattson's own series;
/// by default it also serves seed 002's `libvirt_nova_instance_*` series,
/// whose names promtool complains about (exit 3), as the book says.
#[test]
fn promtool_passes_the_scrape_without_the_compatibility_series() {
    if !super::support::require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let promtool = |scrape: &str| {
        use std::io::Write as _;
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
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), said)
    };
    // Three ticks of a host whose policy sets `daemon` (extra keys), with
    // `[embodied]`.
    let scrape = |daemon: &str| {
        let host = Host::new();
        let (cache, devices) = (host.dir().join("cache"), host.devices.clone());
        let text = host.policy_text("none").replace(
            "ship_every_secs = 3600\n",
            &format!("ship_every_secs = 3600\n{daemon}"),
        ) + &embodied_section("cmp-*", Some("{ vcpus = 64, memory_gb = 256 }"));
        let policy = host.write_policy(&text);
        let cpu = FedCpu::default();
        let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
        let (mut state, shared) = start_engine(&policy, &cpu, &cache);
        let t0 = 1_800_000_003_000_i64;
        for k in 0..3 {
            for (rel, value) in &mut energy {
                *value += 10_000_000;
                bump(&devices, rel, *value);
            }
            *cpu.0.lock().unwrap() = RUNNING
                .iter()
                .map(|u| (u.to_string(), 100.0 + k as f64))
                .collect();
            state.tick(t0 + 10_000 * k);
        }
        render_metrics(&shared.snapshot(), MetricsFormat::Text, 0)
    };
    let without = scrape("compat_series = false\n");
    assert!(!without.contains("libvirt_nova_"), "{without}");
    assert!(
        value_of(&without, "wattson_vm_energy_joules_total", RUNNING[0]).is_some(),
        "{without}"
    );
    assert!(
        value_of(&without, "wattson_vm_embodied_grams_total", RUNNING[0]).is_some(),
        "{without}"
    );
    let (code, said) = promtool(&without);
    assert_eq!(code, Some(0), "promtool check metrics: {said}\n{without}");

    let with = scrape("");
    assert!(
        with.contains("libvirt_nova_instance_memory_alloc_kb{"),
        "{with}"
    );
    let (code, said) = promtool(&with);
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("abbreviated units"), "{said}");
}

/// Hostile requests to the daemon's HTTP server (issue 33): a path
/// traversal or non-UTF-8 bytes in `/download?rows=`, a path out of the
/// tree, headers of 1 MiB. Each is refused with a 4xx (or the connection
/// closed), never served, and the server goes on answering.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn hostile_requests_are_refused_and_the_server_goes_on() {
    use std::io::{Read, Write};
    let host = Host::new();
    let policy = host.write_policy(&host.policy_text("none"));
    let cpu_file = host.tmp.path().join("cpu");
    let lines: String = RUNNING.iter().map(|u| format!("{u} 10\n")).collect();
    write_atomic(&cpu_file, &lines);
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    let _daemon = spawn_daemon(&policy, &addr, &cpu_file);

    for path in [
        "/download?rows=../../etc/passwd",
        "/download?rows=%FF%FE%00",
        "/download?rows=-1",
        "/../../etc/passwd",
    ] {
        let (code, body) = get(&addr, path, None).unwrap_or((0, String::new()));
        assert!((400..500).contains(&code), "{path}: {code} {body}");
        assert!(!body.contains("root:"), "{path} served a file");
    }
    // 1 MiB of headers: refused (431) or the connection closed, not served.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let big = "a".repeat(1 << 20);
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let code: u16 = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(
        code == 0 || (400..500).contains(&code),
        "1 MiB of headers: {code}"
    );
    // The server goes on.
    assert_eq!(get(&addr, "/healthz", None).map(|r| r.0), Some(200));
    let (code, scrape) = get(&addr, "/metrics", None).unwrap();
    assert_eq!(code, 200);
    assert!(scrape.contains("wattson_daemon_"), "{scrape}");
}

/// The daemon's state directory fills up, then turns read-only (issue 33):
/// ticks go on, the counters keep growing in memory and are served,
/// `/metrics` counts the failed saves; once the disk takes writes again,
/// `daemon.json` holds the latest counters and loads whole (never a
/// truncated file, never a counter that falls back).
#[test]
fn a_full_disk_under_the_daemons_state_keeps_its_counters() {
    let host = Host::new();
    let cache = host.dir().join("cache");
    let Some(tmpfs) = super::delivery::Tmpfs::mount(&host.dir().join("state"), "256k") else {
        return;
    };
    let policy = host.write_policy(&host.policy_text("none"));
    let cpu = FedCpu::default();
    let set_cpu = |s: f64| {
        *cpu.0.lock().unwrap() = RUNNING.iter().map(|u| (u.to_string(), s)).collect();
    };
    let mut energy: Vec<u64> = ZONES.iter().map(|z| z.2).collect();
    let advance = |energy: &mut Vec<u64>| {
        for ((rel, ..), value) in ZONES.iter().zip(energy.iter_mut()) {
            *value += 5_000_000;
            bump(&host.devices, rel, *value);
        }
    };
    set_cpu(10.0);
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    let t0 = 1_800_000_000_000_i64;
    state.tick(t0);
    let filler = tmpfs.fill();
    let mut totals = Vec::new();
    for k in 1..=3 {
        advance(&mut energy);
        set_cpu(10.0 + k as f64);
        state.tick(t0 + k * 10_000);
        totals.push(state.ledger().vm_joules.values().sum::<f64>());
    }
    assert!(
        totals.windows(2).all(|w| w[1] > w[0]),
        "counters grow in memory: {totals:?}"
    );
    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    assert!(
        scrape.contains("wattson_daemon_persist_failures_total 3"),
        "{scrape}"
    );
    std::fs::remove_file(filler).unwrap();
    advance(&mut energy);
    set_cpu(14.0);
    state.tick(t0 + 40_000);
    let saved = state.ledger().vm_joules.clone();
    // Then the directory turns read-only (a remount after an I/O error):
    // the same, and the file keeps the last counters it could hold.
    tmpfs.read_only(true);
    for k in 5..=6 {
        advance(&mut energy);
        set_cpu(10.0 + k as f64);
        state.tick(t0 + k * 10_000);
    }
    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    assert!(
        scrape.contains("wattson_daemon_persist_failures_total 5"),
        "{scrape}"
    );
    let loaded = wattson::daemon::Ledger::load(&host.dir().join("state/daemon/daemon.json"));
    assert_eq!(loaded.vm_joules, saved, "the last saved counters, whole");
    tmpfs.read_only(false);
    advance(&mut energy);
    set_cpu(17.0);
    state.tick(t0 + 70_000);
    let served = state.ledger().vm_joules.clone();
    assert!(served.values().sum::<f64>() > saved.values().sum::<f64>());
    drop(state);
    // What was saved once the disk took writes again is what was served.
    let (state, _) = start_engine(&policy, &cpu, &cache);
    assert_eq!(
        state.ledger().vm_joules,
        served,
        "daemon.json holds the latest counters"
    );
}

/// A clock for [`wattson::daemon::Daemon::sample`]: each wait jumps to its
/// deadline and calls `each` there; a stop once past `end_ms`.
struct Ticks<F: FnMut(i64)> {
    now_ms: i64,
    end_ms: i64,
    each: F,
}

impl<F: FnMut(i64)> wattson::daemon::Clock for Ticks<F> {
    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }

    fn wait_until(&mut self, deadline_ms: i64) -> Option<wattson::daemon::Control> {
        if deadline_ms > self.end_ms {
            return Some(wattson::daemon::Control::Stop);
        }
        self.now_ms = deadline_ms;
        (self.each)(deadline_ms);
        None
    }
}

/// The state directory fills up while windows close (issue 33): the daemon's
/// loop goes on (a spool that cannot be written is a failed shipping, retried,
/// never a stop), and once space returns every closed window is delivered
/// exactly once, its joules those the loop measured.
#[test]
fn a_full_disk_at_shipping_time_delays_windows_and_loses_none() {
    let host = Host::new();
    let Some(tmpfs) = super::delivery::Tmpfs::mount(&host.dir().join("state"), "256k") else {
        return;
    };
    let text = host
        .policy_text("none")
        .replace("ship_every_secs = 3600", "ship_every_secs = 30");
    let cache = host.dir().join("cache");
    let policy = host.write_policy(&format!(
        "{text}\n[runtime]\ncache_dir = \"{}\"\n",
        cache.display()
    ));
    let cpu = FedCpu::default();
    let energy = std::cell::RefCell::new(ZONES.iter().map(|z| z.2).collect::<Vec<u64>>());
    let set = |k: i64| {
        let mut energy = energy.borrow_mut();
        for ((rel, name, ..), value) in ZONES.iter().zip(energy.iter_mut()) {
            if *name != "core" {
                *value = (*value + 3_000_000) % RANGE;
            }
            bump(&host.devices, rel, *value);
        }
        *cpu.0.lock().unwrap() = RUNNING.iter().map(|u| (u.to_string(), k as f64)).collect();
    };
    let t0 = 1_800_000_000_000_i64;
    set(0);
    let filler = std::cell::RefCell::new(None);
    let mut clock = Ticks {
        now_ms: t0 + 5_000,
        end_ms: t0 + 150_000,
        each: |now: i64| {
            set((now - t0) / 10_000);
            // Full from the tick at 30 s to the one at 100 s: the windows
            // ending at 30, 60 and 90 s close on a full disk.
            if now == t0 + 30_000 {
                *filler.borrow_mut() = Some(tmpfs.fill());
            }
            if now == t0 + 100_000 {
                std::fs::remove_file(filler.borrow_mut().take().unwrap()).unwrap();
            }
        },
    };
    let fed = cpu.clone();
    let options = wattson::daemon::DaemonOptions {
        policy: policy.clone(),
        overrides: Vec::new(),
        listen: None,
    };
    let make: wattson::daemon::MakeSources = Box::new(move |p, m| {
        let mut s = sources(p, m);
        s.cpu_times = Some(Box::new(fed.clone()));
        s
    });
    let mut daemon = wattson::daemon::Daemon::start(options, make, &mut clock).unwrap();
    daemon.sample(&mut clock);
    let health = daemon.shared().snapshot().health.clone();
    assert!(health.messenger_failures > 0, "shipping failed while full");
    assert!(health.persist_failures > 0, "saving failed while full");
    // Each closed window once: [0, 30) .. [120, 150), 4 VMs each.
    let records = delivered(&host.dir().join("out"));
    let mut seen = std::collections::BTreeSet::new();
    for r in &records {
        assert!(
            seen.insert((r["start"].to_string(), r["vm_uuid"].to_string())),
            "twice: {r}"
        );
    }
    assert_eq!(records.len(), 5 * RUNNING.len(), "{records:?}");
    let total: f64 = records
        .iter()
        .map(|r| r["energy_joules"].as_f64().unwrap())
        .sum();
    // Every tick from 10 s to 150 s moved the counters 12 J (3 J on each of
    // 4 zones) since the one before: 15 ticks, all inside the closed windows.
    assert!(rel_err(total, 15.0 * 12.0) < 1e-9, "{total} J");
}

/// The system clock steps back an hour, then forward an hour, under the
/// daemon (issue 33; the clock is injected: `tick(now)`): no interval of
/// negative length is attributed (the sample after the step back is a new
/// baseline), the interval across the step forward is measured once, and
/// no counter ever decreases.
#[test]
fn clock_steps_never_make_a_counter_decrease_or_count_twice() {
    let host = Host::new();
    let cache = host.dir().join("cache");
    let policy = host.write_policy(&host.policy_text("none"));
    let cpu = FedCpu::default();
    let mut energy: Vec<u64> = ZONES.iter().map(|z| z.2).collect();
    // Every real tick: each zone +4 J (package, dram ×2: 4 zones count, core
    // is inside the package), every VM 1 CPU second more.
    let step = |k: f64, energy: &mut Vec<u64>| {
        for ((rel, ..), value) in ZONES.iter().zip(energy.iter_mut()) {
            *value += 4_000_000;
            bump(&host.devices, rel, *value);
        }
        *cpu.0.lock().unwrap() = RUNNING.iter().map(|u| (u.to_string(), 100.0 + k)).collect();
    };
    step(0.0, &mut energy);
    let (mut state, _) = start_engine(&policy, &cpu, &cache);
    let t0 = 1_800_000_000_000_i64;
    // Real time every 10 s; the clock says an hour less from the 3rd tick
    // on, and is right again at the 5th.
    let clock = [
        t0,
        t0 + 10_000,
        t0 + 20_000 - 3_600_000,
        t0 + 30_000 - 3_600_000,
        t0 + 40_000,
    ];
    let mut seen: Vec<f64> = Vec::new();
    for (k, now) in clock.into_iter().enumerate() {
        if k > 0 {
            step(k as f64, &mut energy);
        }
        state.tick(now);
        let ledger = state.ledger();
        let total = ledger.vm_joules.values().sum::<f64>() + ledger.unattributed_joules;
        if let Some(last) = seen.last() {
            assert!(total >= *last, "tick {k}: {total} J after {last} J");
        }
        for (uuid, j) in &ledger.vm_joules {
            assert!(j.is_finite() && *j >= 0.0, "{uuid}: {j}");
        }
        seen.push(total);
    }
    // Host energy per real tick: 4 zones × 4 J. Ticks 1 and 3 are
    // measured; 2 is the new baseline after the step back; 4 spans the step
    // forward (an hour and 10 s of clock, one tick of energy): 3 ticks' worth.
    let meters: f64 = state.ledger().meter_joules.values().sum();
    assert!((meters - 3.0 * 16.0).abs() < 1e-9, "{meters} J");
    assert!((seen[4] - 3.0 * 16.0).abs() < 1e-9, "{seen:?}");
}

// The daemon's HTTP server under hostile and plentiful clients (issue 33).

/// A host of `n` running domains with nova metadata, whose RAPL and CPU
/// counters a thread advances every 250 ms, and its daemon (1 s interval).
struct Crowd {
    host: Host,
    addr: String,
    _daemon: Daemon,
    stop: Arc<std::sync::atomic::AtomicBool>,
    bumper: Option<std::thread::JoinHandle<()>>,
}

impl Crowd {
    fn new(n: usize) -> Self {
        let host = Host::new();
        let uuids: Vec<String> = (0..n)
            .map(|i| format!("{i:08x}-0000-4000-8000-{:012x}", i * 7919))
            .collect();
        let mut node = String::from(
            "<?xml version=\"1.0\"?>\n<node>\n<cpu><mhz>2400</mhz><model>x86_64</model><active>64</active>\
             <nodes>1</nodes><sockets>2</sockets><cores>16</cores><threads>2</threads></cpu>\n\
             <memory>1073741824</memory>\n",
        );
        for (i, uuid) in uuids.iter().enumerate() {
            let vcpus = [1, 2, 4, 8][i % 4];
            let p = i % 40;
            node.push_str(&format!(
                r#"<domain type="test"><name>instance-{i:08x}</name><uuid>{uuid}</uuid>
<memory unit="KiB">{mem}</memory><vcpu placement="static">{vcpus}</vcpu>
<metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
<nova:name>vm-{i}</nova:name>
<nova:flavor name="m1.{vcpus}"><nova:memory>{mb}</nova:memory><nova:disk>20</nova:disk><nova:vcpus>{vcpus}</nova:vcpus></nova:flavor>
<nova:owner><nova:user uuid="{p:032x}">user-{p}</nova:user><nova:project uuid="{q:032x}">project-{p}</nova:project></nova:owner>
</nova:instance></metadata><os><type arch="x86_64">hvm</type></os></domain>
"#,
                mem = vcpus * 2048 * 1024,
                mb = vcpus * 2048,
                q = p + 1000,
            ));
        }
        node.push_str("</node>\n");
        std::fs::write(&host.node, node).unwrap();
        let policy = host.write_policy(&host.policy_text("vcpus"));
        let cpu_file = host.dir().join("cpu");
        let write_cpu = move |path: &Path, k: u64| {
            let lines: String = uuids
                .iter()
                .enumerate()
                .map(|(i, u)| format!("{u} {}\n", 10 + k * (i as u64 % 4 + 1)))
                .collect();
            write_atomic(path, &lines);
        };
        write_cpu(&cpu_file, 0);
        let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
        let daemon = spawn_daemon(&policy, &addr, &cpu_file);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bumper = {
            let (stop, devices) = (Arc::clone(&stop), host.devices.clone());
            std::thread::spawn(move || {
                let mut energy: Vec<u64> = ZONES.iter().map(|z| z.2).collect();
                let mut k = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    k += 1;
                    // ~200 W per package zone at 250 ms steps.
                    for ((rel, ..), value) in ZONES.iter().zip(energy.iter_mut()) {
                        *value = (*value + 50_000_000) % RANGE;
                        bump(&devices, rel, *value);
                    }
                    write_cpu(&cpu_file, k);
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
            })
        };
        Self {
            host,
            addr,
            _daemon: daemon,
            stop,
            bumper: Some(bumper),
        }
    }

    /// Waits until the daemon has attributed `n` intervals more than now.
    fn wait_intervals(&self, n: f64) {
        let start = std::time::Instant::now();
        let first = self.intervals();
        while self.intervals() < first + n {
            assert!(start.elapsed().as_secs() < 30, "no interval attributed");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// `wattson_daemon_intervals_total`.
    fn intervals(&self) -> f64 {
        let (_, scrape) = get(&self.addr, "/metrics", None).unwrap();
        single(&scrape, "wattson_daemon_intervals_total")
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(b) = self.bumper.take() {
            let _ = b.join();
        }
    }
}

/// The value of an unlabelled series.
fn single(scrape: &str, metric: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(metric)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Percentile `p` (0..=100) of sorted durations, in ms.
fn percentile_ms(sorted: &[std::time::Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted[i].as_secs_f64() * 1000.0
}

/// 200 clients scrape `/metrics` back to back for 4 s at 1,000 domains:
/// every answer is a 200 with the latest counters, p99 stays low (each
/// snapshot is rendered once, not once per client), the counters only
/// grow, and sampling (its own thread) runs every interval meanwhile.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn two_hundred_clients_on_metrics_are_served_and_sampling_goes_on() {
    let crowd = Crowd::new(1000);
    crowd.wait_intervals(2.0);
    let before = crowd.intervals();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://{}/metrics", crowd.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let seconds = 4;
    type Outcome = (std::time::Duration, Result<Vec<u8>, String>);
    let results: Vec<Vec<Outcome>> = tokio.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while started.elapsed().as_secs() < seconds {
                        let t = std::time::Instant::now();
                        // As Prometheus asks.
                        let asked = client.get(&url).header("Accept-Encoding", "gzip");
                        let got = match asked.send().await {
                            Ok(r) if r.status() == 200 => r
                                .bytes()
                                .await
                                .map(|b| b.to_vec())
                                .map_err(|e| e.to_string()),
                            Ok(r) => Err(format!("status {}", r.status())),
                            Err(e) => Err(e.to_string()),
                        };
                        seen.push((t.elapsed(), got));
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let after = crowd.intervals();

    let mut latencies = Vec::new();
    // When each tick sampled (ms), and how long it took (s).
    let mut ticks = BTreeMap::new();
    for (i, client) in results.iter().enumerate() {
        // Each client sees the counters only grow.
        let mut last = 0.0;
        for (k, (latency, got)) in client.iter().enumerate() {
            latencies.push(*latency);
            let packed = got.as_ref().unwrap_or_else(|e| panic!("client {i}: {e}"));
            // Every few answers: unpacking and summing 1,000 series is the
            // client's cost.
            if k % 8 == 0 {
                let mut body = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(&packed[..]),
                    &mut body,
                )
                .unwrap_or_else(|e| panic!("client {i}: not gzip: {e}"));
                if i == 0 && k == 0 {
                    eprintln!("/metrics: {} bytes, {} gzipped", body.len(), packed.len());
                }
                let at = single(&body, "wattson_daemon_last_success_timestamp_seconds");
                let took = single(&body, "wattson_daemon_tick_duration_seconds");
                ticks.insert((at * 1000.0).round() as i64, took);
                let vms = sum_of(&body, "wattson_vm_energy_joules_total");
                assert!(vms >= last, "client {i}: {vms} J after {last} J");
                last = vms;
            }
        }
        assert!(!client.is_empty(), "client {i} was never answered");
    }
    latencies.sort();
    let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
    eprintln!(
        "{} requests in {elapsed:.1} s ({:.0}/s), p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms, intervals {before} -> {after}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile_ms(&latencies, 100),
    );
    eprintln!("ticks (sampled at ms, took s): {ticks:?}");
    assert!(p99 < 1000.0, "p99 {p99:.1} ms");
    // Each tick sampled on its second (the interval's multiple) and was
    // done before the next: none delayed past one interval, none skipped.
    assert!(ticks.len() >= 3, "{ticks:?}");
    for (at, took) in &ticks {
        let late = at.rem_euclid(1000) as f64 / 1000.0;
        assert!(
            late + took < 1.0,
            "a tick {late} s late took {took} s: {ticks:?}"
        );
    }
    let at: Vec<i64> = ticks.keys().copied().collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] < 2000), "{ticks:?}");
    // One interval a second went on under the load (one may straddle).
    assert!(
        after - before >= elapsed.floor() - 1.0,
        "{before} -> {after} intervals in {elapsed:.1} s"
    );
    let (_, scrape) = get(&crowd.addr, "/metrics", None).unwrap();
    let vms = sum_of(&scrape, "wattson_vm_energy_joules_total");
    let unattributed = sum_of(&scrape, "wattson_host_unattributed_joules_total");
    let meters = sum_of(&scrape, "wattson_host_energy_joules_total");
    assert!(vms > 0.0);
    assert!(rel_err(vms + unattributed, meters) < 1e-9, "{scrape}");
    let _ = &crowd.host;
}

/// 50 slowloris connections, each sending a header byte a second: the
/// daemon closes each once its headers have taken 10 s, while `/healthz`
/// and `/metrics` are answered at once all along.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn slowloris_connections_are_closed_and_the_others_served_meanwhile() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let host = Host::new();
    let policy = host.write_policy(&host.policy_text("none"));
    let cpu_file = host.dir().join("cpu");
    let lines: String = RUNNING.iter().map(|u| format!("{u} 10\n")).collect();
    write_atomic(&cpu_file, &lines);
    let addr = format!("127.0.0.1:{}", super::prometheus::free_port());
    let _daemon = spawn_daemon(&policy, &addr, &cpu_file);

    let mut slow: Vec<(std::net::TcpStream, Option<Duration>)> = (0..50)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").unwrap();
            s.set_nonblocking(true).unwrap();
            (s, None)
        })
        .collect();
    let start = Instant::now();
    let mut answered = Vec::new();
    while slow.iter().any(|c| c.1.is_none()) && start.elapsed() < Duration::from_secs(20) {
        for (s, closed) in slow.iter_mut().filter(|c| c.1.is_none()) {
            // Closed (EOF, a reset, or an answer such as 408), else a byte more.
            let mut buf = [0u8; 512];
            let gone = match s.read(&mut buf) {
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                Ok(_) => true,
            };
            if gone || s.write_all(b"a").is_err() {
                *closed = Some(start.elapsed());
            }
        }
        for path in ["/healthz", "/metrics"] {
            let t = Instant::now();
            let (code, _) = get(&addr, path, None).unwrap();
            assert_eq!(code, 200, "{path}");
            answered.push(t.elapsed());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let closed: Vec<Option<Duration>> = slow.iter().map(|c| c.1).collect();
    assert!(
        closed
            .iter()
            .all(|c| c.is_some_and(|t| t < Duration::from_secs(15))),
        "slowloris connections still open after {:?}: {closed:?}",
        start.elapsed()
    );
    let slowest = answered.iter().max().unwrap();
    assert!(*slowest < Duration::from_secs(1), "{answered:?}");
    // And after them.
    assert_eq!(get(&addr, "/healthz", None).map(|r| r.0), Some(200));
}

/// Whether the daemon still holds its end of the loopback connection from
/// `client_port` to `server_port` (an end it closed is gone from
/// /proc/net/tcp, or left there with no inode while the kernel drains it).
fn daemon_holds(server_port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let (local, remote) = (
        format!("0100007F:{server_port:04X}"),
        format!("0100007F:{client_port:04X}"),
    );
    table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 9 && f[1] == local && f[2] == remote && f[9] != "0"
    })
}

/// A `/stream` client that upgrades, then never reads, at 2,500 domains
/// (2,500 records a second): once its buffers are full the daemon drops it
/// and closes its socket; ticks go on meanwhile, the counters grow, and
/// another websocket client and the scrapes are served.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_websocket_client_that_never_reads_is_dropped_and_sampling_goes_on() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Records fill the kernel's buffers (up to 4 MiB here) in a few seconds.
    let crowd = Crowd::new(2500);
    crowd.wait_intervals(1.0);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = crowd.addr.parse().unwrap();
    let never_reads = tokio.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(
                b"GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .unwrap();
        // The answer's head, byte by byte; then never a read again.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        stream
    });
    let client_port = never_reads.local_addr().unwrap().port();
    assert!(daemon_holds(addr.port(), client_port));
    let (before, start) = (crowd.intervals(), Instant::now());
    let mut last_vms = 0.0;
    while daemon_holds(addr.port(), client_port) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the daemon still holds a /stream client that never read, after {:?}",
            start.elapsed()
        );
        let t = Instant::now();
        let (code, scrape) = get(&crowd.addr, "/metrics", None).unwrap();
        assert_eq!(code, 200);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let vms = sum_of(&scrape, "wattson_vm_energy_joules_total");
        assert!(vms >= last_vms, "{vms} J after {last_vms} J");
        last_vms = vms;
        std::thread::sleep(Duration::from_millis(500));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = crowd.intervals();
    eprintln!("dropped after {elapsed:.1} s; intervals {before} -> {after}");
    assert!(
        after - before >= elapsed.floor() - 1.0,
        "{before} -> {after} intervals in {elapsed:.1} s"
    );
    // Another websocket client gets the records as they are made.
    let got = tokio.block_on(async {
        use futures::StreamExt;
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/stream"))
            .await
            .unwrap();
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, socket.next()).await {
            got += 1;
        }
        got
    });
    assert!(got >= 2500, "{got} records in 3 s");
    drop(never_reads);
}

/// `[embodied]` for the daemon's host: 900 kg over 4 years, and `capacity`
/// when given (else libvirt's node info).
fn embodied_section(glob: &str, capacity: Option<&str>) -> String {
    let capacity = capacity.map_or_else(String::new, |c| format!("capacity = {c}\n"));
    format!(
        "\n[embodied]\n[embodied.hosts.\"{glob}\"]\nkg_co2e = 900\nlifetime_years = 4\n{capacity}"
    )
}

/// ENERGY.md's `r_h` of [`embodied_section`]'s figure, g/s.
const EMBODIED_RATE: f64 = 900_000.0 / (4.0 * 8760.0 * 3600.0);

/// Warnings and the like logged while `f` runs, as text.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

/// Ticks every 10 s (5 s past) from `base + 5 s`, ticks `from..=to`, each
/// interval 8 J split 1:2:3:4 by CPU time, shipping after each.
fn embodied_ticks(
    state: &mut DaemonState,
    cpu: &FedCpu,
    devices: &Path,
    energy: &mut BTreeMap<&'static str, u64>,
    cpu_s: &mut [f64; 4],
    ticks: std::ops::RangeInclusive<i64>,
) {
    let base = 1_800_000_000_000_i64;
    for k in ticks {
        for (rel, name, _, _) in ZONES {
            if name != "core" {
                let v = energy.get_mut(rel).unwrap();
                *v = (*v + 2_000_000) % RANGE;
            }
        }
        for (c, s) in cpu_s.iter_mut().zip([1.0, 2.0, 3.0, 4.0]) {
            *c += s;
        }
        for (rel, value) in energy.iter() {
            bump(devices, rel, *value);
        }
        *cpu.0.lock().unwrap() = RUNNING
            .iter()
            .zip(cpu_s.iter())
            .map(|(u, s)| (u.to_string(), *s))
            .collect();
        state.tick(base + 5_000 + 10_000 * k);
        state.ship().unwrap();
    }
}

/// Each running VM's share of a capacity of `vcpus` and `memory_mib`, by
/// the sizes the daemon shows.
fn shares(shared: &Shared, vcpus: f64, memory_mib: f64) -> BTreeMap<String, f64> {
    shared
        .snapshot()
        .vms
        .iter()
        .map(|v| {
            let s = (f64::from(v.vcpus) / vcpus + v.memory_mb as f64 / memory_mib) / 2.0;
            (v.uuid.clone(), s)
        })
        .collect()
}

#[test]
fn embodied_grams_follow_the_capacity_share_across_a_restart_and_ship_with_the_windows() {
    let host = Host::new();
    let (tmp, cache, devices) = (&host.tmp, host.dir().join("cache"), host.devices.clone());
    let text = host
        .policy_text("none")
        .replace("ship_every_secs = 3600", "ship_every_secs = 60")
        + &embodied_section("cmp-*", Some("{ vcpus = 64, memory_gb = 256 }"));
    let policy = host.write_policy(&text);
    let cpu = FedCpu::default();
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let mut cpu_s = [10.0; 4];
    embodied_ticks(
        &mut start_engine(&policy, &cpu, &cache).0,
        &cpu,
        &devices,
        &mut energy,
        &mut cpu_s,
        0..=0,
    );
    // The first run: six intervals, then a restart and six more.
    let (mut state, _) = start_engine(&policy, &cpu, &cache);
    embodied_ticks(&mut state, &cpu, &devices, &mut energy, &mut cpu_s, 1..=6);
    drop(state);
    let (mut state, shared) = start_engine(&policy, &cpu, &cache);
    embodied_ticks(&mut state, &cpu, &devices, &mut energy, &mut cpu_s, 7..=12);
    let share = shares(&shared, 64.0, 256.0 * 1024.0);
    assert_eq!(share.len(), RUNNING.len());
    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    for uuid in RUNNING {
        let want = EMBODIED_RATE * share[uuid] * 120.0;
        let got = state.ledger().vm_embodied_grams[uuid];
        assert!(rel_err(got, want) < 1e-9, "{uuid}: {got} vs {want}");
        let served = value_of(&scrape, "wattson_vm_embodied_grams_total", uuid).unwrap();
        assert!(rel_err(served, want) < 1e-9, "{scrape}");
    }
    assert!(
        scrape.contains("# TYPE wattson_vm_embodied_grams_total counter\n"),
        "{scrape}"
    );
    // Shipped: [0, 60 s) holds 55 s of the VMs, [60, 120) 60 s.
    let records = delivered(&tmp.path().join("out"));
    assert_eq!(records.len(), 8, "{records:?}");
    for (start, seconds) in [("2027-01-15T08:00:00", 55.0), ("2027-01-15T08:01:00", 60.0)] {
        for uuid in RUNNING {
            let r = records
                .iter()
                .find(|r| r["vm_uuid"] == uuid && r["start"].as_str().unwrap().starts_with(start))
                .unwrap_or_else(|| panic!("{uuid} at {start}: {records:?}"));
            let want = EMBODIED_RATE * share[uuid] * seconds;
            let got = r["embodied_g"].as_f64().unwrap_or_else(|| panic!("{r}"));
            assert!(rel_err(got, want) < 1e-9, "{uuid} {start}: {got} vs {want}");
            assert_eq!(r["embodied_source"], "static", "{r}");
        }
    }
}

#[test]
fn embodied_capacity_is_libvirts_node_scaled_down_when_overcommitted() {
    let host = Host::new();
    let (cache, devices) = (host.dir().join("cache"), host.devices.clone());
    let text = host.policy_text("none") + &embodied_section("cmp-01", None);
    let policy = host.write_policy(&text);
    let cpu = FedCpu::default();
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let mut cpu_s = [10.0; 4];
    let ((state, shared), said) = logged(|| {
        let (mut state, shared) = start_engine(&policy, &cpu, &cache);
        embodied_ticks(&mut state, &cpu, &devices, &mut energy, &mut cpu_s, 0..=3);
        (state, shared)
    });
    // The fixture's node: <active>8</active> CPUs, <memory> 16 GiB (KiB).
    let share = shares(&shared, 8.0, 16_777_216.0 / 1024.0);
    let held: f64 = share.values().sum();
    assert!(
        held > 1.0,
        "the fixture's VMs hold more than its node: {held}"
    );
    // Scaled in every interval, said once per run (not every 10 s).
    assert_eq!(said.matches("(overcommit)").count(), 1, "{said}");
    for uuid in RUNNING {
        let want = EMBODIED_RATE * share[uuid] / held * 30.0;
        let got = state.ledger().vm_embodied_grams[uuid];
        assert!(rel_err(got, want) < 1e-9, "{uuid}: {got} vs {want}");
    }
}

#[test]
fn a_host_without_an_embodied_entry_gets_no_series_no_embodied_g_and_a_warning() {
    let host = Host::new();
    let (tmp, cache, devices) = (&host.tmp, host.dir().join("cache"), host.devices.clone());
    let text = host
        .policy_text("none")
        .replace("ship_every_secs = 3600", "ship_every_secs = 60")
        + &embodied_section("edge-*", Some("{ vcpus = 64, memory_gb = 256 }"));
    let policy = host.write_policy(&text);
    let cpu = FedCpu::default();
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let mut cpu_s = [10.0; 4];
    let ((mut state, shared), said) = logged(|| {
        let (mut state, shared) = start_engine(&policy, &cpu, &cache);
        embodied_ticks(&mut state, &cpu, &devices, &mut energy, &mut cpu_s, 0..=12);
        (state, shared)
    });
    // Once, naming the host.
    let warning = "match no [embodied.hosts] glob";
    assert_eq!(said.matches(warning).count(), 1, "{said}");
    assert!(said.contains("cmp-01"), "{said}");
    // And once more after a reload.
    let (mut state, again) = logged(|| {
        let (reloaded, bound, sources) = bind_policy(&policy, &cpu, &cache);
        state.reload(reloaded, bound, sources, "cmp-01".into());
        embodied_ticks(&mut state, &cpu, &devices, &mut energy, &mut cpu_s, 13..=14);
        state
    });
    assert_eq!(again.matches(warning).count(), 1, "{again}");
    state.ship().unwrap();
    assert!(state.ledger().vm_embodied_grams.is_empty());
    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    assert!(
        !scrape.contains("wattson_vm_embodied_grams_total{"),
        "{scrape}"
    );
    assert!(
        value_of(&scrape, "wattson_vm_energy_joules_total", RUNNING[0]).is_some(),
        "{scrape}"
    );
    let records = delivered(&tmp.path().join("out"));
    assert_eq!(records.len(), 8, "{records:?}");
    for r in &records {
        assert!(
            r.get("embodied_g").is_none() && r.get("embodied_source").is_none(),
            "{r}"
        );
    }
}
