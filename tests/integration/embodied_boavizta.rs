//! `[embodied.hosts] boavizta` against the real BoaviztAPI (PyPI
//! `boaviztapi`, `tests/standins/install.sh`), served by uvicorn on a free
//! 127.0.0.1 port from an empty directory: each VM's `embodied_g` from a
//! real extract equals the formula applied here to the answers this test
//! asks for itself; an unknown archetype and a stopped API are named, and
//! their hosts' VMs carry no `embodied_g` (never 0).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::data::rel_err;
use super::embodied::{SECONDS_PER_YEAR, VMS, W0, W1, presence, prometheus};
use super::support::standin::repo;
use super::wattson::{extract, extract_with, write_policy};

/// A running BoaviztAPI; killed (by its PID) when dropped.
struct Boavizta {
    child: Child,
    url: String,
    _cwd: tempfile::TempDir,
}

impl Boavizta {
    /// Starts `uvicorn boaviztapi.main:app` in an empty directory (it reads
    /// a `.env` from its working directory) and waits for its archetypes;
    /// None (skipped) when boaviztapi is not installed, a failure under CI.
    fn start() -> Option<Self> {
        let python = repo().join("target/standins-venv/bin/python");
        let installed = Command::new(&python)
            .args(["-c", "import boaviztapi, uvicorn"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let install = "bash tests/standins/install.sh (scripts/setup.sh runs it)";
            assert!(
                std::env::var_os("CI").is_none(),
                "boaviztapi is missing: {install}"
            );
            eprintln!("skipped: boaviztapi is missing: {install}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let cwd = tempfile::tempdir().unwrap();
        let child = Command::new(&python)
            .args([
                "-m",
                "uvicorn",
                "boaviztapi.main:app",
                "--host",
                "127.0.0.1",
            ])
            .args(["--port", &port.to_string()])
            .current_dir(cwd.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the venv's python runs uvicorn");
        let mut api = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _cwd: cwd,
        };
        let started = Instant::now();
        let archetypes = format!("{}/v1/server/archetypes", api.url);
        while reqwest::blocking::get(&archetypes).map_or(true, |r| !r.status().is_success()) {
            if let Ok(Some(status)) = api.child.try_wait() {
                panic!("uvicorn boaviztapi.main:app exited: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "BoaviztAPI did not answer {archetypes} in 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(api)
    }

    /// `impacts.gwp.embedded.value` and `verbose.hours_life_time.value` of
    /// the API's answer to `GET /v1/server/?…` or a POST of `config`.
    fn figure(&self, archetype: Option<&str>, config: Option<&Value>) -> (f64, f64) {
        let url = format!("{}/v1/server/", self.url);
        let client = reqwest::blocking::Client::new();
        let mut query = vec![("criteria", "gwp"), ("verbose", "true")];
        query.extend(archetype.map(|a| ("archetype", a)));
        let request = match config {
            Some(config) => client.post(&url).json(config),
            None => client.get(&url),
        };
        let answer: Value = request.query(&query).send().unwrap().json().unwrap();
        (
            answer["impacts"]["gwp"]["embedded"]["value"]
                .as_f64()
                .unwrap(),
            answer["verbose"]["hours_life_time"]["value"]
                .as_f64()
                .unwrap(),
        )
    }

    /// Kills it by its PID and waits for it.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Boavizta {
    fn drop(&mut self) {
        self.stop();
    }
}

/// cmp-01 asks an archetype (BoaviztAPI's life), cmp-02 POSTs a
/// configuration (its own life), cmp-03 an archetype BoaviztAPI does not
/// know; the rest are static, as in `embodied.rs`.
fn policy(url: &str, config: &Value, state: &Path) -> String {
    let config = toml::Value::try_from(config).unwrap();
    format!(
        r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"
[state]
dir = "{state}"
[inventory]
meta_metric = ""
host_label = "instance"
host_regex = '^([^:.]+)'
[model]
plugin = "tdp-estimate"
[embodied]
lifetime_years = 6
[embodied.hosts."cmp-01"]
boavizta = {{ url = "{url}", archetype = "platform_compute_medium" }}
capacity = {{ vcpus = 96, memory_gb = 256 }}
[embodied.hosts."cmp-02"]
boavizta = {{ url = "{url}/", config = {config} }}
lifetime_years = 5
capacity = {{ vcpus = 8, memory_gb = 16 }}
[embodied.hosts."cmp-03"]
boavizta = {{ url = "{url}", archetype = "no_such_server" }}
capacity = {{ vcpus = 64, memory_gb = 512 }}
[embodied.hosts."cmp-*"]
kg_co2e = 1200
"#,
        state = state.display()
    )
}

/// The records of an extract, by VM.
fn records(out: &std::process::Output) -> HashMap<String, Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["vm_uuid"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn boavizta_figures_reach_each_vm_and_a_missing_answer_leaves_no_embodied_g() {
    let Some(mut api) = Boavizta::start() else {
        return;
    };
    let (prometheus, cpu) = prometheus();
    let dir = tempfile::tempdir().unwrap();
    // The policy's state directory exists: the answers are cached there.
    std::fs::create_dir_all(dir.path().join("state/site")).unwrap();
    let config = json!({
        "model": {"type": "rack"},
        "configuration": {"cpu": {"units": 2, "core_units": 32}, "ram": [{"units": 16, "capacity": 32}]},
        "usage": {"hours_life_time": 43800}
    });
    let policy = write_policy(
        dir.path(),
        "site.toml",
        &policy(&api.url, &config, &dir.path().join("state")),
    );

    // The test's own reading of the live answers: r = kg × 1000 / life.
    let (kg_01, hours_01) = api.figure(Some("platform_compute_medium"), None);
    let (kg_02, _) = api.figure(None, Some(&config));
    assert!(kg_01 > 0.0 && kg_02 > 0.0 && hours_01 > 0.0);
    let rates: HashMap<&str, (f64, (f64, f64), &str)> = HashMap::from([
        (
            "cmp-01",
            (
                kg_01 * 1000.0 / (hours_01 * 3600.0),
                (96.0, 262_144.0),
                "boavizta:platform_compute_medium",
            ),
        ),
        (
            "cmp-02",
            (
                kg_02 * 1000.0 / (5.0 * SECONDS_PER_YEAR),
                (8.0, 16_384.0),
                "boavizta:config",
            ),
        ),
        (
            "cmp-04",
            (
                1200.0 * 1000.0 / (6.0 * SECONDS_PER_YEAR),
                (32.0, 131_072.0),
                "static",
            ),
        ),
    ]);
    let mut placed: Vec<(&str, &str, f64)> = Vec::new();
    for (vm, series) in VMS.iter().zip(&cpu) {
        let Some(&(rate, (v, m), _)) = rates.get(vm.host) else {
            continue;
        };
        let share = (f64::from(vm.vcpus) / v + vm.memory_mib as f64 / m) / 2.0;
        placed.push((vm.uuid, vm.host, rate * share * presence(&series.samples)));
    }
    // cmp-02's two VMs hold twice its capacity: scaled to r × |W| together.
    let whole_02 = rates["cmp-02"].0 * (W1 - W0) as f64 / 1000.0;
    let held_02: f64 = placed.iter().filter(|p| p.1 == "cmp-02").map(|p| p.2).sum();
    let mut want: HashMap<&str, (f64, &str)> = HashMap::new();
    for (uuid, host, e) in placed {
        let scale = if host == "cmp-02" {
            whole_02 / held_02
        } else {
            1.0
        };
        want.entry(uuid).or_insert((0.0, rates[host].2)).0 += e * scale;
    }

    let out = extract(&policy, &prometheus.url, W0, W1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let got = records(&out);
    for uuid in ["a", "b", "o1", "o2", "n"] {
        let (grams, source) = want[uuid];
        let record = &got[uuid];
        let embodied = record["embodied_g"]
            .as_f64()
            .unwrap_or_else(|| panic!("{uuid}: no embodied_g in {record}"));
        assert!(
            rel_err(embodied, grams) < 1e-9,
            "{uuid}: {embodied} vs {grams}"
        );
        assert_eq!(record["embodied_source"], source, "{record}");
    }
    // m spent part of the window on cmp-03, whose archetype is unknown: the
    // warning names it, the URL and the entry, and says what to do.
    assert!(got["m"].get("embodied_g").is_none(), "{}", got["m"]);
    let unknown: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no_such_server"))
        .collect();
    assert_eq!(unknown.len(), 1, "{stderr}");
    assert!(
        unknown[0].contains(&api.url)
            && unknown[0].contains("cmp-03")
            && unknown[0].contains("404")
            && unknown[0].contains("/v1/server/archetypes"),
        "{stderr}"
    );
    // Asked once per entry per run, and cached in the state directory.
    let cached = std::fs::read_dir(dir.path().join("state/site/embodied"))
        .unwrap()
        .count();
    assert_eq!(cached, 2, "one answer per entry that had one");

    // BoaviztAPI stopped: one warning per entry naming the URL and the
    // entry; no embodied_g on those hosts' VMs, the static ones keep theirs.
    api.stop();
    let out = extract_with(
        &policy,
        &prometheus.url,
        W0,
        W1 + 3_600_000,
        &["window.max_window_secs=3600"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    for entry in ["cmp-01", "cmp-02", "cmp-03"] {
        let warned: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("gave no figure") && l.contains(&format!("\"{entry}\"")))
            .collect();
        assert_eq!(warned.len(), 1, "{entry}, two windows: {stderr}");
        assert!(
            warned[0].contains(&api.url) && warned[0].contains("cannot be reached"),
            "{stderr}"
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        match record["vm_uuid"].as_str().unwrap() {
            "n" => assert_eq!(record["embodied_source"], "static", "{record}"),
            _ => assert!(record.get("embodied_g").is_none(), "{record}"),
        }
    }

    // cache_days: an answer that young is used without asking.
    let out = extract_with(&policy, &prometheus.url, W0, W1, &["embodied.cache_days=1"]);
    let cached = records(&out);
    for uuid in ["a", "b", "o1", "o2"] {
        assert_eq!(
            cached[uuid]["embodied_g"], got[uuid]["embodied_g"],
            "{uuid}"
        );
        assert_eq!(
            cached[uuid]["embodied_source"],
            got[uuid]["embodied_source"]
        );
    }
}
