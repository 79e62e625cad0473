//! `[inventory] source = "opennebula"` against a stand-in for OpenNebula's
//! XML-RPC API (`tests/standins/opennebula.py`, proved faithful with the
//! real `pyone` below) and a real Prometheus holding Scaphandre's series, as
//! seed 001 sets it up: `vmname=one-<id>`, hosts labelled `host_id=<id>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use super::data::{HOUR, T0, g1, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::support::standin::{self, StandIn};
use super::wattson::{command, secs};

const TOKEN: &str = "opennebula-test-token";
const W0: i64 = T0;
const W1: i64 = T0 + HOUR;
/// A VM OpenNebula says ran all window on cmp-02 whose Scaphandre series
/// are missing.
const UNMEASURED: &str = "51";

fn start() -> StandIn {
    StandIn::start("opennebula.py", "opennebula/cloud.json")
}

/// Scaphandre's series: for every VM that ran in the window, its qemu
/// process's power (constant per VM, in µW) every 15 s while it ran on each
/// host, labelled with that host's OpenNebula id (the migrated VM 43 has a
/// series on each); each host's power. Returns them with the joules G1 gives
/// each VM over the window.
/// Scaphandre's series of the VMs that lived in the window, each stay on
/// its host, and each host's; the joules per VM and the VMs' joules per host.
fn scaphandre(cloud: &Value) -> (Vec<TestSeries>, Vec<TestSeries>, Joules) {
    let mut process = Vec::new();
    let mut want = Joules::default();
    let hosts: HashMap<&str, String> = [("cmp-01", "0".to_owned()), ("cmp-02", "1".to_owned())]
        .into_iter()
        .collect();
    let lived: Vec<String> = cloud["expected"]["lived_in_window"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string().trim_matches('"').to_owned())
        .collect();
    for (i, id) in lived.iter().enumerate() {
        if id == UNMEASURED {
            continue;
        }
        let vm = &cloud["expected"]["vms"][id];
        let microwatts = (10.0 + 3.0 * i as f64) * 1e6;
        for stay in vm["placements"].as_array().unwrap() {
            let Some(from_s) = stay["running_from"].as_i64() else {
                continue;
            };
            let from = (from_s * 1000).max(W0 - 60_000);
            let to = stay["running_to"]
                .as_i64()
                .map_or(W1 + 60_000, |t| (t * 1000).min(W1 + 60_000));
            if to <= W0 {
                continue;
            }
            // Scrapes 4.3 s after each quarter minute, inside the stay.
            let first = from + (15_000 - (from - 4_300).rem_euclid(15_000)) % 15_000;
            let samples: Vec<(i64, f64)> = (0..)
                .map(|k| first + k * 15_000)
                .take_while(|t| *t <= to)
                .map(|t| (t, microwatts))
                .collect();
            let joules = g1(&samples, W0, W1).0 / 1e6;
            *want.by_vm.entry(format!("one-{id}")).or_insert(0.0) += joules;
            *want
                .by_host
                .entry(stay["host"].as_str().unwrap().to_owned())
                .or_insert(0.0) += joules;
            process.push(TestSeries {
                labels: vec![
                    ("exe".into(), "qemu-system-x86_64".into()),
                    (
                        "host_id".into(),
                        hosts[stay["host"].as_str().unwrap()].clone(),
                    ),
                    ("vmname".into(), format!("one-{id}")),
                ],
                samples,
            });
        }
    }
    let host_power = hosts
        .values()
        .map(|id| TestSeries {
            labels: vec![("host_id".into(), id.clone())],
            samples: (-8..=248)
                .map(|k| (W0 + k * 15_000 + 6_789, 400e6))
                .collect(),
        })
        .collect();
    (process, host_power, want)
}

/// The test's own G1 of the VMs' series.
#[derive(Default)]
struct Joules {
    by_vm: HashMap<String, f64>,
    by_host: HashMap<String, f64>,
}

/// [`scaphandre`]'s series in a Prometheus, and their joules.
fn scaphandre_in_prometheus(cloud: &Value) -> (Prometheus, Joules) {
    let (process, host_power, want) = scaphandre(cloud);
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[],
        &[
            ("scaph_process_power_consumption_microwatts", &process),
            ("scaph_host_power_microwatts", &host_power),
        ],
    ));
    (prometheus, want)
}

fn policy(dir: &Path, endpoint: &str) -> PathBuf {
    let path = dir.join("one.toml");
    let text = std::fs::read_to_string(standin::repo().join("policies/opennebula-scaphandre.toml"))
        .unwrap()
        .replace(
            "endpoint = \"http://one-frontend.example.org:2633/RPC2\"",
            &format!("endpoint = \"{endpoint}\"\ntimeout_secs = 5"),
        )
        .replace("token_file = \"/etc/wattson/one-token\"", "token_env = \"TEST_ONE_TOKEN\"")
        .replace(
            "format = \"apel-energy\"\n[outputs.messenger]\ntype = \"ssm\"\nqueue = \"/var/spool/apel/outgoing\"",
            "format = \"jsonl\"",
        );
    std::fs::write(&path, text).unwrap();
    path
}

fn extract(policy: &Path, prometheus: &str, token: &str, extra: &[&str]) -> Output {
    standin::extract_traced(
        policy,
        prometheus,
        (W0, W1),
        ("TEST_ONE_TOKEN", token),
        extra,
    )
}

/// The stand-in answers the real client as OpenNebula 6.10 does: `pyone`
/// reads the VM pool, each VM's history, the window's accounting and the
/// host pool, and a wrong token is refused.
#[test]
fn the_stand_in_answers_pyone_as_opennebula_does() {
    let stand_in = start();
    standin::check_with_client("check_pyone.py", &stand_in.url);
}

/// The shipped `policies/opennebula-scaphandre.toml` against the stand-in
/// and Scaphandre's series: one record per VM that ran and was measured,
/// keyed `one-<id>`, with its group and user from OpenNebula, its hosts
/// named from the host pool (Scaphandre labels only `host_id`), the
/// migrated VM measured on both, statuses and wall time from its running
/// times, exact G1 joules; the VM with no series warned of and counted on
/// its host; `wattson inventory --source opennebula` lists exactly the VMs
/// that lived in the window.
#[test]
fn extract_takes_vms_groups_and_hosts_from_opennebula() {
    let cloud = standin::fixture("opennebula/cloud.json");
    let (prometheus, joules) = scaphandre_in_prometheus(&cloud);
    let want = &joules.by_vm;
    let stand_in = start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &stand_in.url);
    let summary = dir.path().join("hosts.jsonl");
    let out = extract(
        &policy,
        &prometheus.url,
        TOKEN,
        &["--host-summary", summary.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let records: HashMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (r["vm_uuid"].as_str().unwrap().to_owned(), r)
        })
        .collect();
    assert_eq!(
        records.keys().collect::<BTreeSet<_>>(),
        want.keys().collect::<BTreeSet<_>>(),
        "one record per measured VM"
    );
    for (uuid, joules) in want {
        let r = &records[uuid];
        let vm = &cloud["expected"]["vms"][uuid.trim_start_matches("one-")];
        let energy = r["energy_joules"].as_f64().unwrap();
        assert!(
            rel_err(energy, *joules) < 1e-9,
            "{uuid}: {energy} J, G1 says {joules} J"
        );
        assert_eq!(r["project_name"], vm["gname"], "{uuid}");
        assert_eq!(r["project_id"], vm["gid"].to_string(), "{uuid}");
        assert_eq!(r["user_name"], vm["uname"], "{uuid}");
        assert_eq!(r["vm_name"], vm["name"], "{uuid}");
        assert_eq!(r["vcpus"], vm["vcpu"], "{uuid}");
    }
    let status = |id: &str| {
        records[&format!("one-{id}")]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        [status("40"), status("41"), status("42"), status("43")],
        ["running", "started", "completed", "running"]
    );
    let wall = |id: &str| records[&format!("one-{id}")]["wall_s"].as_f64().unwrap();
    assert!((wall("41") - 2340.0).abs() < 1e-9, "running from 00:21:00");
    assert!((wall("42") - 2398.0).abs() < 1e-9, "running until 00:39:58");
    assert_eq!(records["one-40"]["host"], "cmp-01", "host_id 0 is named");
    // The migrated VM's joules are both hosts' series (checked above), and
    // each host's part stays that host's: it is placed on both (its record
    // names the host it ended the window on).
    assert_eq!(records["one-43"]["host"], "cmp-02");

    // The VM with no series: named in one WARN, counted on its host.
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&format!("one-{UNMEASURED}")))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    let summaries: Vec<Value> = std::fs::read_to_string(&summary)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let unmeasured: BTreeMap<String, u64> = summaries
        .iter()
        .map(|v| {
            (
                v["host"].as_str().unwrap().to_owned(),
                v["unmeasured_vms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unmeasured,
        BTreeMap::from([("cmp-01".into(), 0), ("cmp-02".into(), 1)])
    );
    for v in &summaries {
        let host = v["host"].as_str().unwrap();
        let (got, want) = (
            v["attributed_joules"].as_f64().unwrap(),
            joules.by_host[host],
        );
        assert!(
            rel_err(got, want) < 1e-9,
            "{host}: the VMs' energy on it {got} J, G1 of their stays there {want} J"
        );
    }
    assert!(!stderr.contains(TOKEN), "the token is in the log");

    let listed = command()
        .args(["inventory", "--policy"])
        .arg(&policy)
        .args([
            "--source",
            "opennebula",
            "--from",
            &secs(W0),
            "--to",
            &secs(W1),
            "--json",
        ])
        .env("TEST_ONE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: BTreeSet<String> = listed
        .iter()
        .map(|v| {
            v["uuid"]
                .as_str()
                .unwrap()
                .trim_start_matches("one-")
                .to_owned()
        })
        .collect();
    let lived: BTreeSet<String> = cloud["expected"]["lived_in_window"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string().trim_matches('"').to_owned())
        .collect();
    assert_eq!(ids, lived, "the VMs that ran in the window, no more");
}

/// A wrong token: the window fails (exit 3) naming the endpoint, never the
/// token; two 500s are retried.
#[test]
fn opennebula_failures_are_retried_or_named() {
    let (prometheus, _) = scaphandre_in_prometheus(&standin::fixture("opennebula/cloud.json"));
    let stand_in = start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &stand_in.url);

    let out = extract(&policy, &prometheus.url, "not-the-token", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&stand_in.url) && stderr.contains("oneadmin"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-token"));

    stand_in.faults(json!({"fail_next": 2}));
    let out = extract(&policy, &prometheus.url, TOKEN, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
