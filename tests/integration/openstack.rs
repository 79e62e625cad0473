//! `[inventory] source = "nova"` against a stand-in for Keystone and Nova
//! (`tests/standins/openstack.py`, built from the APIs' documented samples
//! and proved faithful with the real `openstacksdk` below) and a real
//! Prometheus holding the VMs' energy counters.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use super::data::{HOUR, METRIC, MIN, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, TestSeries, free_port, openmetrics, openmetrics_with_gauges};
use super::support::standin::{self, StandIn};
use super::wattson::{command, secs};

/// The application credential's secret in the fixture: never in any output.
const SECRET: &str = "wattson-app-cred-secret";

fn fixture() -> Value {
    standin::fixture("openstack/cloud.json")
}

/// The Keystone + Nova stand-in, with the number of tokens it issued.
fn start() -> StandIn {
    StandIn::start("openstack.py", "openstack/cloud.json")
}

fn tokens_issued(stand_in: &StandIn) -> usize {
    stand_in
        .requests()
        .iter()
        .filter(|r| {
            r["method"] == "POST" && r["path"].as_str().unwrap_or("").ends_with("/auth/tokens")
        })
        .count()
}

/// One HTTP/1.0 request: (status, headers, body).
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

/// The stand-in's own `os-simple-tenant-usage` for the window, per project.
fn nova_usage(stand_in: &StandIn, start: &str, end: &str) -> HashMap<String, Value> {
    let auth = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": "ac7e2b1f0c9d4e8a8b6f5a4d3c2b1e0f", "secret": SECRET}}}});
    let (code, head, _) = http(
        "POST",
        &format!("{}/identity/v3/auth/tokens", stand_in.url),
        &[("Content-Type", "application/json")],
        &auth.to_string(),
    );
    assert_eq!(code, 201, "{head}");
    let token = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Subject-Token: "))
        .unwrap()
        .trim()
        .to_owned();
    let (code, _, body) = http(
        "GET",
        &format!(
            "{}/compute/v2.1/os-simple-tenant-usage?start={start}&end={end}&detailed=1",
            stand_in.url
        ),
        &[("X-Auth-Token", &token)],
        "",
    );
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["tenant_usages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["tenant_id"].as_str().unwrap().to_owned(), u.clone()))
        .collect()
}

/// The window of the fixture: 2025-06-01T00:00Z to 01:00Z.
const W0: i64 = T0;
const W1: i64 = T0 + HOUR;

/// A VM of the fixture whose exporter is down: Nova says it ran, no series.
const UNMEASURED: &str = "3c4673d2-1903-5497-a6ac-846ba7b61dc2";
/// The VM that live-migrated cmp-01 → cmp-02 at 00:25.
const MOVER: &str = "d8810775-b981-5e8f-bfa7-00f54f53e067";

fn time_ms(v: &Value) -> Option<i64> {
    v.as_str().and_then(wattson::sources::openstack::parse_time)
}

/// The libvirt exporter's energy counter of every VM of the fixture that was
/// running on a host in the window (none for the one in ERROR, the shelved
/// one, the one deleted the day before, and [`UNMEASURED`]), without any
/// project label: only Nova can name their projects. The migrated VM has a
/// series on each host.
fn energy_series(cloud: &Value) -> Vec<TestSeries> {
    let mut series = Vec::new();
    let servers: BTreeMap<&String, &Value> = cloud["expected"]["servers"]
        .as_object()
        .unwrap()
        .iter()
        .collect();
    for (i, (uuid, s)) in servers.into_iter().enumerate() {
        let (Some(host), Some(launched)) = (s["host"].as_str(), time_ms(&s["launched_at"])) else {
            continue;
        };
        let terminated = time_ms(&s["terminated_at"]);
        if terminated.is_some_and(|t| t <= W0)
            || uuid == UNMEASURED
            || s["status"] != "ACTIVE" && s["status"] != "DELETED"
        {
            continue;
        }
        // A resize resets launched_at; the VM ran (and was measured) before it.
        let from = if s["name"] == "bio-grow" {
            W0 - 10 * MIN
        } else {
            launched.max(W0 - 10 * MIN)
        };
        let to = terminated.unwrap_or(W1 + 10 * MIN);
        let hosts: Vec<(&str, i64, i64)> = if uuid == MOVER {
            vec![
                ("cmp-01", from, W0 + 25 * MIN),
                ("cmp-02", W0 + 25 * MIN + 20_000, to),
            ]
        } else {
            vec![(host, from, to)]
        };
        for (k, (host, from_ms, to_ms)) in hosts.into_iter().enumerate() {
            let mut s = counter_series(&VmShape {
                uuid,
                project: "",
                from_ms,
                to_ms,
                resets_at: &[],
                gaps: &[],
                initial: if k == 0 { 5_000.0 } else { 3.0 },
                seed: 900 + 10 * i as u64 + k as u64,
            });
            s.labels = vec![
                ("instance".into(), format!("{host}:9177")),
                ("uuid".into(), uuid.clone()),
            ];
            series.push(s);
        }
    }
    series
}

fn policy(dir: &Path, stand_in_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("nova.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[site]
name = "TEST-SITE"
compute_service = "{stand_in_url}/identity/v3"

[inventory]
source = "nova"
meta_metric = ""
host_label = "instance"
host_regex = '^([^:.]+)'

[nova]
auth_url = "{stand_in_url}/identity/v3"
application_credential_id = "ac7e2b1f0c9d4e8a8b6f5a4d3c2b1e0f"
application_credential_secret_env = "TEST_OS_SECRET"
page_size = 10
user_names = true
timeout_secs = 5
{extra}

[model]
plugin = "libvirt-joules"

[[outputs]]
format = "jsonl"
"#
        ),
    )
    .unwrap();
    path
}

fn extract(policy: &Path, prometheus: &str, extra: &[&str]) -> Output {
    standin::extract_traced(
        policy,
        prometheus,
        (W0, W1),
        ("TEST_OS_SECRET", SECRET),
        extra,
    )
}

/// The stand-in answers the real client library as Nova and Keystone do:
/// `openstacksdk` lists every server changed since the window's start,
/// deleted ones included, with their flavors, hosts and lifetimes, the
/// flavors, the projects and the usage, through a password and through an
/// application credential.
#[test]
fn the_stand_in_answers_openstacksdk_as_nova_does() {
    let stand_in = start();
    standin::check_with_client("check_openstacksdk.py", &stand_in.url);
}

/// An extract with Nova as the inventory: one record per VM that ran and
/// was measured (deleted and migrated ones included, none for the one in
/// ERROR, the shelved one or one deleted the day before), with the project
/// and user Nova and Keystone name (the series carry none), statuses from
/// the API's lifetimes, the exact joules of the model, one WARN naming the
/// VM Nova says ran but no series measured (`--strict`: the window fails),
/// one token for the run, and the secret nowhere in the trace log.
#[test]
fn extract_takes_vms_projects_and_lifetimes_from_nova() {
    let cloud = fixture();
    let series = energy_series(&cloud);
    // The same counters as CPU seconds, and each host's wall power, for a
    // share model's host summary.
    let power: Vec<TestSeries> = ["cmp-01", "cmp-02"]
        .iter()
        .map(|host| TestSeries {
            labels: vec![("instance".into(), format!("{host}.bmc:9290"))],
            samples: (-20..=260).map(|k| (W0 + k * 15_000, 200.0)).collect(),
        })
        .collect();
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            (METRIC, &series),
            ("libvirt_domain_info_cpu_time_seconds", &series),
        ],
        &[("ipmi_dcmi_power_consumption_watts", &power)],
    ));
    let stand_in = start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &stand_in.url, "");

    let out = extract(&policy, &prometheus.url, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(tokens_issued(&stand_in), 1, "one token per run");
    // Both listings, each in pages of 10.
    let listings: Vec<Value> = stand_in
        .requests()
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or("")
                .ends_with("/servers/detail")
        })
        .collect();
    assert_eq!(listings.len(), 3 + 3, "{listings:?}");
    let records: HashMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (r["vm_uuid"].as_str().unwrap().to_owned(), r)
        })
        .collect();
    let mut want: HashMap<String, f64> = HashMap::new();
    for s in &series {
        let uuid = &s.labels[1].1;
        *want.entry(uuid.clone()).or_default() += c1(&s.samples, W0, W1).unwrap_or(0.0);
    }
    let mut got: Vec<&String> = records.keys().collect();
    let mut expected: Vec<&String> = want.keys().collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "one record per measured VM");
    assert_eq!(
        records.len(),
        21,
        "23 servers listed, less the shelved and the unmeasured"
    );
    let facts = &cloud["expected"]["servers"];
    for (uuid, joules) in &want {
        let (r, f) = (&records[uuid], &facts[uuid]);
        let energy = r["energy_joules"].as_f64().unwrap();
        assert!(
            rel_err(energy, *joules) < 1e-9,
            "{uuid}: {energy} J, C1 says {joules} J"
        );
        assert_eq!(r["project_id"], f["project_id"], "{uuid}");
        assert_eq!(r["project_name"], f["project_name"], "{uuid}");
        assert_eq!(r["user_name"], f["user_name"], "{uuid}");
        assert_eq!(r["flavor"], f["flavor"]["name"], "{uuid}");
    }
    let by_name = |name: &str| {
        records
            .values()
            .find(|r| r["vm_name"] == name)
            .unwrap_or_else(|| panic!("no record of {name}"))
    };
    assert_eq!(by_name("phys-steady")["status"], "running");
    assert_eq!(
        by_name("phys-gone")["status"],
        "completed",
        "deleted at 00:40"
    );
    assert_eq!(
        by_name("bio-new")["status"],
        "started",
        "launched at 00:21:07.25"
    );
    // Nova's lifetimes give the wall time: launched 00:21:07.25 to the end.
    let wall = by_name("bio-new")["wall_s"].as_f64().unwrap();
    assert!(
        (wall - (3600.0 - 21.0 * 60.0 - 7.25)).abs() < 1e-9,
        "{wall}"
    );
    assert!((by_name("phys-gone")["wall_s"].as_f64().unwrap() - 2400.0).abs() < 1e-9);
    assert_eq!(by_name("phys-mover")["vm_uuid"], MOVER);

    // The VM Nova says ran, with no series: named once, no record.
    let warned: Vec<&str> = stderr.lines().filter(|l| l.contains(UNMEASURED)).collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains("1 VM(s)"),
        "{}",
        warned[0]
    );
    assert!(!records.contains_key(UNMEASURED));
    // …and counted on its host in a share model's host summary.
    let summary = dir.path().join("hosts.jsonl");
    let shared = extract(
        &policy,
        &prometheus.url,
        &[
            "--set",
            "model.plugin=\"ipmi-share\"",
            "--host-summary",
            summary.to_str().unwrap(),
        ],
    );
    assert!(
        shared.status.success(),
        "{}",
        String::from_utf8_lossy(&shared.stderr)
    );
    let unmeasured: BTreeMap<String, u64> = std::fs::read_to_string(&summary)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["host"].as_str().unwrap().to_owned(),
                v["unmeasured_vms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unmeasured,
        BTreeMap::from([("cmp-01".into(), 1), ("cmp-02".into(), 0)])
    );
    assert!(!stderr.contains(SECRET), "the secret is in the log");

    let strict = extract(&policy, &prometheus.url, &["--strict"]);
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains(UNMEASURED));
}

/// A Nova older than microversion 2.47 (Ocata and before) answers wattson's
/// 2.47 with 406: the run goes on at the base version, where each server
/// names its flavor by id, and looks each flavor up once, with the same
/// records (flavor names included) as against a newer Nova.
#[test]
fn a_nova_older_than_2_47_gives_the_same_records_with_each_flavor_looked_up_once() {
    let mut cloud = fixture();
    cloud["max_microversion"] = json!("2.42");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cloud.json");
    std::fs::write(&data, cloud.to_string()).unwrap();
    let series = energy_series(&cloud);
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let stand_in = StandIn::start("openstack.py", data.to_str().unwrap());
    let policy = policy(dir.path(), &stand_in.url, "");
    let out = extract(&policy, &prometheus.url, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("does not speak compute microversion 2.47"),
        "{stderr}"
    );
    let requests = stand_in.requests();
    let path = |r: &Value| r["path"].as_str().unwrap_or("").to_owned();
    // Each listing page at the base version, after the one refused.
    let listings: Vec<&Value> = requests
        .iter()
        .filter(|r| path(r).ends_with("/servers/detail"))
        .collect();
    assert!(
        listings[1..].iter().all(|r| r["microversion"] == "2.1"),
        "{listings:?}"
    );
    let lookups: Vec<String> = requests
        .iter()
        .map(path)
        .filter(|p| p.contains("/flavors/") && !p.ends_with("/detail"))
        .collect();
    let distinct: std::collections::BTreeSet<&String> = lookups.iter().collect();
    assert!(!lookups.is_empty(), "flavors looked up by id");
    assert_eq!(lookups.len(), distinct.len(), "each once: {lookups:?}");
    let facts = &cloud["expected"]["servers"];
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 21, "as against a newer Nova");
    for r in &records {
        let f = &facts[r["vm_uuid"].as_str().unwrap()];
        assert_eq!(r["flavor"], f["flavor"]["name"], "{r}");
        assert_eq!(r["project_name"], f["project_name"], "{r}");
    }
}

/// `wattson report` with Nova: hours, vCPU-, memory- and disk-hours per
/// project equal the stand-in's own os-simple-tenant-usage for the window
/// (the shelved VM and the unmeasured one included, as nova counts them).
#[test]
fn report_hours_equal_nova_simple_tenant_usage() {
    let cloud = fixture();
    let series = energy_series(&cloud);
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let stand_in = start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &stand_in.url, "");
    let out = command()
        .args(["report", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .args([
            "--from",
            &secs(W0),
            "--to",
            &secs(W1),
            "--by",
            "project",
            "--format",
            "json",
        ])
        .env("TEST_OS_SECRET", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nova = nova_usage(&stand_in, "2025-06-01T00:00:00", "2025-06-01T01:00:00");
    let ours: HashMap<String, &Value> = report["tenant_usages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["tenant_id"].as_str().unwrap().to_owned(), u))
        .collect();
    assert_eq!(
        ours.keys().collect::<std::collections::BTreeSet<_>>(),
        nova.keys().collect::<std::collections::BTreeSet<_>>()
    );
    for (project, theirs) in &nova {
        for key in [
            "total_hours",
            "total_vcpus_usage",
            "total_memory_mb_usage",
            "total_local_gb_usage",
        ] {
            let (a, b) = (
                ours[project][key].as_f64().unwrap(),
                theirs[key].as_f64().unwrap(),
            );
            assert!(rel_err(a, b) < 1e-9, "{project} {key}: ours {a}, nova {b}");
        }
        let servers = |u: &Value| u["server_usages"].as_array().unwrap().len();
        assert_eq!(servers(ours[project]), servers(theirs), "{project}");
    }
}

/// What an operator gets wrong or meets: the API down (exit 3, naming the
/// endpoint, never the secret), 5xx answers (retried), a token that expires
/// mid-run (renewed: two tokens), an account without the role for
/// all_tenants (403, saying which role), and a listing that never ends (cut
/// at max_pages).
#[test]
fn nova_failures_are_retried_or_named() {
    let series = energy_series(&fixture());
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let dir = tempfile::tempdir().unwrap();

    // Nothing listens: exit 3, the endpoint named, the secret not.
    let down = format!("http://127.0.0.1:{}", free_port());
    let out = extract(
        &policy(dir.path(), &down, "attempts = 2"),
        &prometheus.url,
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("{down}/identity/v3/auth/tokens")),
        "{stderr}"
    );
    assert!(stderr.contains("2 attempt(s)"), "{stderr}");
    assert!(!stderr.contains(SECRET));

    let stand_in = start();
    let path = policy(dir.path(), &stand_in.url, "");
    // Two 5xx answers, then the listing: retried, delivered.
    stand_in.faults(json!({"fail_next": [500, 503]}));
    let out = extract(&path, &prometheus.url, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The token expires after two compute requests: renewed once per expiry.
    stand_in.faults(json!({"token_ttl_requests": 4}));
    let before = tokens_issued(&stand_in);
    let out = extract(&path, &prometheus.url, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tokens_issued(&stand_in) - before >= 2,
        "the expired token was renewed"
    );
    stand_in.faults(json!({}));

    // carol has no admin or reader role.
    let carol = policy(dir.path(), &stand_in.url, "");
    let text = std::fs::read_to_string(&carol).unwrap().replace(
        "application_credential_id = \"ac7e2b1f0c9d4e8a8b6f5a4d3c2b1e0f\"\napplication_credential_secret_env = \"TEST_OS_SECRET\"",
        "username = \"carol\"\npassword_env = \"TEST_OS_SECRET\"\nproject_name = \"biology\"",
    );
    std::fs::write(&carol, text).unwrap();
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&carol)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(W0), "--to", &secs(W1)])
        .env("TEST_OS_SECRET", "carol-password")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("403") && stderr.contains("admin or reader role"),
        "{stderr}"
    );
    assert!(!stderr.contains("carol-password"));

    // A listing that never ends is cut.
    stand_in.faults(json!({"endless_pages": true}));
    let out = extract(
        &policy(dir.path(), &stand_in.url, "max_pages = 5"),
        &prometheus.url,
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("after 5 pages"), "{stderr}");
}

/// A Keystone and Nova served over TLS with a site's own CA: with
/// `[nova] ca_file` naming it, extract reads the cloud; without, the window
/// fails (exit 3) naming the endpoint and the certificate problem.
#[test]
fn nova_over_tls_needs_the_sites_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str| dir.path().join(name);
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A CA, and a server certificate for 127.0.0.1 signed by it.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test site CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(pem("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    let stand_in = StandIn::start_with(
        "openstack.py",
        "openstack/cloud.json",
        &[
            "--tls".as_ref(),
            pem("server.pem").as_os_str(),
            pem("server.key").as_os_str(),
        ],
    );
    assert!(stand_in.url.starts_with("https://"), "{}", stand_in.url);
    let series = energy_series(&fixture());
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));

    let without = policy(dir.path(), &stand_in.url, "");
    let out = extract(&without, &prometheus.url, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&stand_in.url) && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );

    let with = policy(
        dir.path(),
        &stand_in.url,
        &format!("ca_file = \"{}\"", pem("ca.pem").display()),
    );
    let out = extract(&with, &prometheus.url, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 21);
}

/// Where Nova gives lifetimes they decide (`docs/ENERGY.md#record-status`):
/// a VM deleted 2 minutes before a window's end, its counters stopping
/// with it, is `completed` in that window and has no record in the next,
/// though its last sample lies in that one's lookback (Nova lists it no
/// more: it was terminated by its start).
#[test]
fn a_vm_nova_deleted_at_a_window_edge_is_completed_once() {
    let cloud = fixture();
    let series = energy_series(&cloud);
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let stand_in = start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &stand_in.url, "");
    let (uuid, gone) = cloud["expected"]["servers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, s)| s["name"] == "phys-gone")
        .unwrap();
    let terminated = time_ms(&gone["terminated_at"]).unwrap();
    let last = series
        .iter()
        .filter(|s| s.labels[1].1 == *uuid)
        .map(|s| s.samples.last().unwrap().0)
        .max()
        .unwrap();
    let edge = terminated + 2 * MIN;
    assert!(last >= edge - 5 * MIN && last <= terminated);
    let mut statuses = Vec::new();
    for window in [(W0, edge), (edge, W1)] {
        let out = standin::extract_traced(
            &policy,
            &prometheus.url,
            window,
            ("TEST_OS_SECRET", SECRET),
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            if r["vm_uuid"] == uuid.as_str() {
                statuses.push((window.0, r["status"].as_str().unwrap().to_owned()));
            }
        }
    }
    assert_eq!(statuses, [(W0, "completed".to_owned())]);
}
