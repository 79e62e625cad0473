//! The daemon's HTTP server under load (issue 33): the release daemon at
//! 1,000 libvirt test-driver domains with nova metadata and a powercap
//! fixture whose counters advance, 200 clients on `/metrics` for 60 s.
//!
//! ```text
//! cargo bench -p wattson --bench daemon_http
//! DOMAINS=1000 CLIENTS=200 SECS=60 INTERVAL=1 PERIOD_MS=0 GZIP=1 cargo bench -p wattson --bench daemon_http
//! ```
//!
//! `PERIOD_MS=0`: each client asks again as soon as it has its answer (the
//! worst case); otherwise once per period, at a random phase, as scrapers
//! do. `GZIP=1` asks for gzip as Prometheus does; `GZIP=0` the plain text.
//!
//! Prints the latency (p50, p99, max, from the request to the last byte),
//! errors (transport errors and non-200 answers), requests a second, the
//! tick delay (how late each tick sampled after its multiple of the
//! interval, and when it was done, from the daemon's own
//! `wattson_daemon_last_success_timestamp_seconds` and
//! `wattson_daemon_tick_duration_seconds`, read every 100 ms), ticks missed,
//! and the daemon's RSS before and after, and its CPU.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `node.xml` of `n` running domains with nova metadata (as
/// `scripts/bench-daemon.sh` writes it).
fn node(n: usize) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\"?>\n<node>\n<cpu><mhz>2400</mhz><model>x86_64</model><active>64</active>\
         <nodes>1</nodes><sockets>2</sockets><cores>16</cores><threads>2</threads></cpu>\n\
         <memory>1073741824</memory>\n",
    );
    for i in 0..n {
        let vcpus = [1, 2, 4, 8][i % 4];
        let p = i % 40;
        out.push_str(&format!(
            r#"<domain type="test"><name>instance-{i:08x}</name><uuid>{i:08x}-0000-4000-8000-{u:012x}</uuid>
<memory unit="KiB">{mem}</memory><vcpu placement="static">{vcpus}</vcpu>
<metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
<nova:name>vm-{i}</nova:name>
<nova:flavor name="m1.{vcpus}"><nova:memory>{mb}</nova:memory><nova:disk>20</nova:disk><nova:vcpus>{vcpus}</nova:vcpus></nova:flavor>
<nova:owner><nova:user uuid="{p:032x}">user-{p}</nova:user><nova:project uuid="{q:032x}">project-{p}</nova:project></nova:owner>
</nova:instance></metadata><os><type arch="x86_64">hvm</type></os></domain>
"#,
            u = i * 7919,
            mem = vcpus * 2048 * 1024,
            mb = vcpus * 2048,
            q = p + 1000,
        ));
    }
    out.push_str("</node>\n");
    out
}

/// RAPL zones under `tmp/sys`: (path under `intel-rapl/`, name).
const ZONES: [(&str, &str); 4] = [
    ("intel-rapl:0", "package-0"),
    ("intel-rapl:0/intel-rapl:0:0", "dram"),
    ("intel-rapl:1", "package-1"),
    ("intel-rapl:1/intel-rapl:1:0", "dram"),
];

/// A powercap tree with the real layout; returns the `intel-rapl` devices
/// directory.
fn powercap(tmp: &Path) -> std::path::PathBuf {
    let devices = tmp.join("sys/devices/virtual/powercap/intel-rapl");
    let class = tmp.join("sys/class/powercap");
    std::fs::create_dir_all(&class).unwrap();
    for (rel, name) in ZONES {
        let dir = devices.join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, v) in [
            ("name", name),
            ("energy_uj", "1000000"),
            ("max_energy_range_uj", "262143328850"),
            ("enabled", "1"),
        ] {
            std::fs::write(dir.join(k), format!("{v}\n")).unwrap();
        }
        let top = rel.rsplit('/').next().unwrap();
        std::os::unix::fs::symlink(&dir, class.join(top)).unwrap();
    }
    devices
}

/// `/proc/PID/status` field in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The process's user + system CPU, seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(") ").next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
    ticks / 100.0
}

/// The value of an unlabelled series of a scrape.
fn single(scrape: &str, metric: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(metric)?.strip_prefix(' ')?.parse().ok())
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1000.0
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the line.
    let domains = env_or("DOMAINS", 1000) as usize;
    let clients = env_or("CLIENTS", 200) as usize;
    let secs = env_or("SECS", 60);
    let interval = env_or("INTERVAL", 1);
    let period_ms = env_or("PERIOD_MS", 0);
    let gzip = env_or("GZIP", 1) == 1;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("node.xml"), node(domains)).unwrap();
    let devices = powercap(dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("daemon.toml"),
        format!(
            r#"[site]
name = "BENCH"
compute_service = "https://keystone.bench:5000/v3"
[inventory]
libvirt_uri = "test://{dir}/node.xml"
[rapl]
powercap_root = "{dir}/sys/class/powercap"
[model]
plugin = "rapl-share"
[model.params]
idle = "vcpus"
idle_power = "auto"
[daemon]
interval_secs = {interval}
listen = "{addr}"
[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "file"
directory = "{dir}/out"
[state]
dir = "{dir}/state"
"#,
            dir = dir.display()
        ),
    )
    .unwrap();

    // RAPL counters advance: ~200 W per package, ~20 W per dram.
    let stop = Arc::new(AtomicBool::new(false));
    let bumper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut uj: u64 = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                uj += 50_000_000;
                for (rel, name) in ZONES {
                    let v = if name == "dram" { uj / 10 } else { uj };
                    // Whole, as the kernel's file reads: never empty.
                    let file = devices.join(rel).join("energy_uj");
                    let tmp = file.with_extension("tmp");
                    let _ = std::fs::write(&tmp, format!("{v}\n"))
                        .and_then(|()| std::fs::rename(&tmp, &file));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let daemon = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_wattson"))
            .args(["daemon", "--policy"])
            .arg(dir.join("daemon.toml"))
            .env("WATTSON_LOG", "warn")
            .env("WATTSON_CACHE_DIR", dir.join("cache"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://{addr}/metrics");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients + 8)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let plain = |client: reqwest::Client, url: String| async move {
        let r = client.get(&url).send().await.ok()?;
        r.text().await.ok()
    };
    runtime.block_on(async {
        let start = Instant::now();
        while plain(client.clone(), format!("http://{addr}/healthz"))
            .await
            .is_none()
        {
            assert!(start.elapsed().as_secs() < 60, "the daemon did not listen");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Three intervals: the counters and the first renders are there.
        tokio::time::sleep(Duration::from_secs(3 * interval)).await;
    });
    let rss_before = status_kb(pid, "VmRSS:");
    let cpu_before = cpu_s(pid);
    let intervals_before = runtime
        .block_on(plain(client.clone(), url.clone()))
        .and_then(|s| single(&s, "wattson_daemon_intervals_total"))
        .unwrap_or(0.0);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let done = Arc::new(AtomicBool::new(false));
    // (latencies, errors, bytes) per client; ticks (sampled at ms → took s,
    // intervals_total).
    let (per_client, ticks) = runtime.block_on(async {
        let monitor = {
            let (client, url, done) = (client.clone(), url.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut ticks = BTreeMap::new();
                while !done.load(Ordering::Relaxed) {
                    if let Some(scrape) = plain(client.clone(), url.clone()).await {
                        let at = single(&scrape, "wattson_daemon_last_success_timestamp_seconds");
                        let took = single(&scrape, "wattson_daemon_tick_duration_seconds");
                        let n = single(&scrape, "wattson_daemon_intervals_total");
                        if let (Some(at), Some(took), Some(n)) = (at, took, n) {
                            ticks.insert((at * 1000.0).round() as i64, (took, n));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                ticks
            })
        };
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let (mut errors, mut bytes) = (Vec::new(), 0usize);
                    let mut next = tokio::time::Instant::now();
                    if period_ms > 0 {
                        next += Duration::from_millis(period_ms * c as u64 / clients as u64);
                    }
                    while Instant::now() < deadline {
                        if period_ms > 0 {
                            tokio::time::sleep_until(next).await;
                            next += Duration::from_millis(period_ms);
                        }
                        let t = Instant::now();
                        let mut request = client.get(&url);
                        if gzip {
                            request = request.header("Accept-Encoding", "gzip");
                        }
                        match request.send().await {
                            Ok(r) if r.status() == 200 => match r.bytes().await {
                                Ok(b) => {
                                    bytes += b.len();
                                    latencies.push(t.elapsed());
                                }
                                Err(e) => errors.push(e.to_string()),
                            },
                            Ok(r) => errors.push(format!("status {}", r.status())),
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                    (latencies, errors, bytes)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        done.store(true, Ordering::Relaxed);
        (all, monitor.await.unwrap())
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_s(pid) - cpu_before) / elapsed * 100.0;
    let rss_after = status_kb(pid, "VmRSS:");
    let hwm = status_kb(pid, "VmHWM:");
    let last = runtime
        .block_on(plain(client.clone(), url.clone()))
        .unwrap_or_default();
    let intervals_after = single(&last, "wattson_daemon_intervals_total").unwrap_or(0.0);
    let failed: f64 = last
        .lines()
        .filter(|l| l.starts_with("wattson_daemon_sample_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    let _ = bumper.join();

    let mut latencies: Vec<Duration> = per_client.iter().flat_map(|c| c.0.clone()).collect();
    let errors: Vec<&String> = per_client.iter().flat_map(|c| &c.1).collect();
    let bytes: usize = per_client.iter().map(|c| c.2).sum();
    latencies.sort();
    let interval_ms = interval as i64 * 1000;
    // Ticks inside the loaded period only.
    let from_ms = ticks.keys().next().copied().unwrap_or(0);
    let late: Vec<f64> = ticks
        .keys()
        .map(|at| at.rem_euclid(interval_ms) as f64 / 1000.0)
        .collect();
    let done_by: Vec<f64> = ticks
        .iter()
        .map(|(at, (took, _))| at.rem_euclid(interval_ms) as f64 / 1000.0 + took)
        .collect();
    // Multiples of the interval from the first tick seen to the last, less
    // the intervals the daemon attributed between them.
    let missed = match (ticks.first_key_value(), ticks.last_key_value()) {
        (Some((a, (_, n0))), Some((b, (_, n1)))) => (b - a) / interval_ms - (n1 - n0) as i64,
        _ => 0,
    };
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "domains={domains} clients={clients} secs={elapsed:.0} interval={interval}s period_ms={period_ms} gzip={gzip}"
    );
    if latencies.is_empty() {
        println!("no answer; errors: {:?}", errors.first());
        return;
    }
    println!(
        "requests={} ({:.0}/s, {:.0} MB/s) p50={:.1}ms p99={:.1}ms max={:.1}ms errors={}{}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 100.0),
        errors.len(),
        errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
    );
    println!(
        "ticks={} (intervals_total {intervals_before} -> {intervals_after}) from {from_ms}: \
         sampled late max={:.3}s, done after its multiple max={:.3}s, missed={missed}, \
         failed samples={failed}",
        ticks.len(),
        max(&late),
        max(&done_by),
    );
    println!("machine load average at the end: {}", load.trim());
    println!(
        "daemon: cpu={cpu:.0}% of one core, rss before={:.1}MB after={:.1}MB peak={:.1}MB",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    drop(daemon);
}
