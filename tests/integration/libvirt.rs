//! libvirt through its test driver (no daemon): a node XML fixture with a
//! nova 1.1 instance, a shut-off nova 1.0 one, a paused volume-backed one in
//! the newest nova shape, an OpenNebula VM and a domain without metadata.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wattson::policy::{Policy, Source};
use wattson::runtime::{CounterSpec, GaugeSpec, KeyKind, Measurement, Unit};
use wattson::sources::libvirt::{CpuTimes, Libvirt};
use wattson::window::Window;

use super::data::{HOUR, METRIC, MIN, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics, openmetrics_with_gauges};
use super::support::{gather_from, ok};
use super::wattson::{BASIC_POLICY, command, extract, write_policy};

/// The node XML fixture (its canonical path).
pub(super) fn fixture_path() -> PathBuf {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "libvirt",
        "node.xml",
    ]
    .iter()
    .collect();
    path.canonicalize().expect("the libvirt fixture")
}

pub(super) fn fixture_uri() -> String {
    format!("test://{}", fixture_path().display())
}

fn inventory(extra: &[&str]) -> std::process::Output {
    command()
        .args(["inventory", "--uri", &fixture_uri()])
        .args(extra)
        .output()
        .expect("run wattson")
}

#[test]
fn inventory_reads_nova_opennebula_and_bare_domains() {
    let out = inventory(&["--json"]);
    ok(&out);
    let domains: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(domains.len(), 5);
    let by_name = |name: &str| {
        domains
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {domains:?}"))
    };

    let nova = by_name("instance-00000001");
    assert_eq!(nova["uuid"], "c5a2b3d4-1e2f-4a5b-8c9d-0e1f2a3b4c5d");
    assert_eq!(nova["state"], "running");
    assert_eq!(nova["vcpus"], 2);
    assert_eq!(nova["memory_mb"], 2048);
    // The test driver's CPU time is the wall clock: only its presence is real.
    assert!(nova["cpu_s"].as_f64().is_some_and(|s| s > 0.0), "{nova}");
    let meta = &nova["metadata"];
    assert_eq!(meta["kind"], "nova");
    assert_eq!(meta["version"], "1.1");
    assert_eq!(meta["display_name"], "web-frontend-01");
    assert_eq!(meta["creation_time"], "2024-03-01 12:34:56");
    assert_eq!(meta["project_id"], "1f2e3d4c5b6a47988776655443322110");
    assert_eq!(meta["project_name"], "web-team");
    assert_eq!(meta["user_name"], "alice");
    assert_eq!(meta["root_type"], "image");
    assert_eq!(meta["flavor"]["name"], "m1.small");
    assert_eq!(meta["flavor"]["disk_gb"], 20);
    assert_eq!(meta["flavor"]["vcpus"], 2);

    // Shut off, and written by a pre-Wallaby nova (namespace 1.0).
    let old = by_name("instance-00000002");
    assert_eq!(old["state"], "shut-off");
    assert_eq!(old["cpu_s"], Value::Null, "not running: no CPU time");
    assert_eq!(old["metadata"]["version"], "1.0");
    assert_eq!(old["metadata"]["user_name"], "bob");
    assert_eq!(old["metadata"]["flavor"]["memory_mb"], 4096);

    let volume = by_name("instance-00000003");
    assert_eq!(volume["state"], "paused");
    assert_eq!(volume["metadata"]["root_type"], "volume");
    assert_eq!(volume["metadata"]["flavor"]["swap_mb"], 1024);
    assert_eq!(volume["metadata"]["flavor"]["ephemeral_gb"], 10);

    let one = by_name("one-42");
    assert_eq!(one["metadata"]["kind"], "opennebula");
    assert_eq!(one["metadata"]["vm_id"], 42);
    assert_eq!(one["metadata"]["name"], "ubuntu-vm");
    assert_eq!(one["metadata"]["group_name"], "oneadmin");
    assert_eq!(one["metadata"]["start_time"], 1_709_296_496);

    let bare = by_name("plain-vm");
    assert_eq!(
        bare["metadata"]["kind"], "none",
        "no metadata: still listed"
    );
    assert_eq!(bare["memory_mb"], 512, "maximum memory, not the balloon");

    // The table: one line per domain, the shut-off one marked as virsh does.
    let out = inventory(&[]);
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(
        lines[0].starts_with("UUID") && lines[0].contains("METADATA"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.contains("db-backend-01")
            && l.contains("shut off")
            && l.ends_with("nova-1.0")),
        "{table}"
    );
    // libvirt's default error printer is silenced: the missing-namespace lookups print nothing.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cpu_times_cover_the_domains_that_run() {
    let libvirt = Libvirt::open(&fixture_uri()).unwrap();
    let cpu = libvirt.cpu_seconds().unwrap();
    // The test driver reports the wall clock as CPU time: only which domains appear is asserted.
    let uuids: Vec<&str> = cpu.keys().map(String::as_str).collect();
    assert_eq!(
        uuids,
        [
            "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5e",
            "c5a2b3d4-1e2f-4a5b-8c9d-0e1f2a3b4c5d",
            "e7c4d5f6-3041-4c7d-8ebf-203142536475",
            "f8d5e6a7-4152-4d8e-9fc0-314253647586",
        ],
        "running and paused domains, not the shut-off one"
    );
    assert!(cpu.values().all(|s| s.is_finite() && *s > 0.0));
}

#[test]
fn a_bad_uri_names_it_and_libvirts_message() {
    let out = command()
        .args(["inventory", "--uri", "test:///no/such/node.xml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("libvirt at test:///no/such/node.xml")
            && stderr.contains("failed to parse xml document"),
        "{stderr}"
    );
    let out = command()
        .args(["inventory", "--uri", "bogus+ssh://nowhere/system"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("libvirt at bogus+ssh://nowhere/system"),
        "{stderr}"
    );
}

/// On a hypervisor, `[inventory] libvirt_uri` describes the VMs Prometheus
/// measured from their domains: nova and OpenNebula metadata, vCPUs and
/// memory, also for a domain shut off since it ran in the window. A VM
/// libvirt no longer has keeps its labels; a domain without data gets no record.
#[test]
fn extract_describes_measured_vms_from_libvirt() {
    let (running, shut_off, one, deleted) = (
        "c5a2b3d4-1e2f-4a5b-8c9d-0e1f2a3b4c5d",
        "d6b3c4e5-2f30-4b6c-9dae-1f20a3b4c5d6",
        "e7c4d5f6-3041-4c7d-8ebf-203142536475",
        "0badc0de-0000-4000-8000-000000000001",
    );
    let shape = |uuid, from_ms, to_ms, seed| VmShape {
        uuid,
        project: "label-project",
        from_ms,
        to_ms,
        resets_at: &[],
        gaps: &[],
        initial: 1.0e5,
        seed,
    };
    let series = [
        counter_series(&shape(running, T0, T0 + 3 * HOUR, 31)),
        // Ran for 25 minutes of the window, then shut off (it is in libvirt, shut off).
        counter_series(&shape(shut_off, T0, T0 + HOUR + 25 * MIN, 32)),
        counter_series(&shape(one, T0 + HOUR + 10 * MIN, T0 + 3 * HOUR, 33)),
        // Deleted from libvirt before the extract.
        counter_series(&shape(deleted, T0, T0 + HOUR + 40 * MIN, 34)),
    ];
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "hypervisor.toml",
        &format!(
            "{BASIC_POLICY}\n[inventory]\nlibvirt_uri = \"{}\"\n",
            fixture_uri()
        ),
    );
    let (start, end) = (T0 + HOUR, T0 + 2 * HOUR);
    let out = extract(&policy, &prometheus.url, start, end);
    ok(&out);
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let record = |uuid: &str| {
        records
            .iter()
            .find(|r| r["vm_uuid"] == uuid)
            .unwrap_or_else(|| panic!("no record for {uuid}: {records:?}"))
    };
    assert_eq!(
        records.len(),
        4,
        "plain-vm and the paused domain have no data: {records:?}"
    );
    for (s, uuid) in series.iter().zip([running, shut_off, one, deleted]) {
        let want = c1(&s.samples, start, end).unwrap();
        let got = record(uuid)["energy_joules"].as_f64().unwrap();
        assert!(rel_err(got, want) <= 1e-9, "{uuid}: {got} J, rule {want} J");
    }

    let r = record(running);
    assert_eq!(r["vm_name"], "web-frontend-01");
    assert_eq!(r["project_id"], "1f2e3d4c5b6a47988776655443322110");
    assert_eq!(r["project_name"], "web-team");
    assert_eq!(r["user_name"], "alice");
    assert_eq!(r["vcpus"], 2);
    let r = record(shut_off);
    assert_eq!(r["vm_name"], "db-backend-01", "shut off now, but it ran");
    assert_eq!(r["project_name"], "db-team");
    assert_eq!(r["user_name"], "bob");
    let r = record(one);
    assert_eq!(r["vm_name"], "ubuntu-vm");
    assert_eq!(r["project_name"], "oneadmin");
    let r = record(deleted);
    assert_eq!(r["vm_name"], Value::Null);
    assert_eq!(
        r["project_id"], "label-project",
        "libvirt lost it: the labels describe it"
    );
}

#[test]
fn extract_with_a_bad_libvirt_uri_fails_the_window_naming_it() {
    let series = [counter_series(&VmShape {
        uuid: "vm-1",
        project: "p",
        from_ms: T0,
        to_ms: T0 + 2 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 0.0,
        seed: 35,
    })];
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "hypervisor.toml",
        &format!("{BASIC_POLICY}\n[inventory]\nlibvirt_uri = \"test:///no/such/node.xml\"\n"),
    );
    let out = extract(&policy, &prometheus.url, T0 + HOUR, T0 + 2 * HOUR);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("libvirt at test:///no/such/node.xml") && out.stdout.is_empty(),
        "{stderr}"
    );
}

/// Scaphandre's per-VM power series name VMs by libvirt domain name
/// (`vmname`), not by the display name nova or OpenNebula give them: with
/// `libvirt_uri` both VMs' gauges are matched through their domains.
#[test]
fn vmname_keyed_series_match_libvirt_domain_names() {
    let (nova, one) = (
        "c5a2b3d4-1e2f-4a5b-8c9d-0e1f2a3b4c5d",
        "e7c4d5f6-3041-4c7d-8ebf-203142536475",
    );
    let counter = |uuid, seed| {
        counter_series(&VmShape {
            uuid,
            project: "p",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 0.0,
            seed,
        })
    };
    // A constant power every 15 s (off the window's edges): G1 is power × length.
    let power = |vmname: &str, microwatts: f64| TestSeries {
        labels: vec![("vmname".into(), vmname.into())],
        samples: (0..720)
            .map(|k| (T0 + 4_321 + k * 15_000, microwatts))
            .collect(),
    };
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[(METRIC, &[counter(nova, 41), counter(one, 42)])],
        &[(
            "scaph_process_power_consumption_microwatts",
            &[
                power("instance-00000001", 40e6),
                power("one-42", 12.5e6),
                power("web-frontend-01", 1e9),
            ],
        )],
    ));
    let text = format!(
        "[site]\nname = \"S\"\ncompute_service = \"c\"\n[inventory]\nlibvirt_uri = \"{}\"\n[model]\nplugin = \"libvirt-joules\"\n",
        fixture_uri()
    );
    let policy = Policy::parse(Source::new(Path::new("scaph.toml"), text)).unwrap();
    let measurements = [
        Measurement::Counter(CounterSpec {
            name: "energy".into(),
            selector: format!("{METRIC}_total"),
            key_label: "uuid".into(),
            key: KeyKind::Uuid,
            unit: Unit::Joules,
            wrap_range: None,
        }),
        Measurement::Gauge(GaugeSpec {
            name: "power".into(),
            selector: "scaph_process_power_consumption_microwatts".into(),
            key_label: "vmname".into(),
            key: KeyKind::Vmname,
            unit: Unit::Microwatts,
            max_gap_s: None,
        }),
    ];
    let window = Window::new(T0 + HOUR, T0 + 2 * HOUR).unwrap();
    let gathered = gather_from(&policy, &measurements, &prometheus.url, window);
    let uuids: Vec<&str> = gathered.input.vms.iter().map(|v| v.uuid.as_str()).collect();
    assert_eq!(uuids, [nova, one]);
    let names: Vec<Option<&str>> = gathered.details.iter().map(|d| d.name.as_deref()).collect();
    assert_eq!(
        names,
        [Some("web-frontend-01"), Some("ubuntu-vm")],
        "records keep display names"
    );
    let power = &gathered.input.measurements[1];
    for (i, watts) in [40.0, 12.5].into_iter().enumerate() {
        let got = power.vms[i].unwrap_or_else(|| panic!("{} has no power reading", uuids[i]));
        assert!(
            rel_err(got.value, watts * 3600.0) <= 1e-9,
            "{}: {} J, want {} J",
            uuids[i],
            got.value,
            watts * 3600.0
        );
    }
}
