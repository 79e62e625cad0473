//! `wattson policy init` against Prometheus instances holding each meter
//! family, and one holding none: the policy it writes names the best model
//! the meters allow and the label that names hosts, passes `policy check`
//! as written, and (on per-VM counters) extracts the exact joules.

use std::path::Path;
use std::process::Output;

use super::data::{HOUR, MIN, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics, openmetrics_with_gauges};
use super::support::ok;
use super::wattson::{command, secs};

fn init(url: &str, out: &Path) -> Output {
    command()
        .args(["policy", "init", "--prometheus", url, "-o"])
        .arg(out)
        .output()
        .unwrap()
}

fn check(path: &Path) {
    ok(&command()
        .args(["policy", "check"])
        .arg(path)
        .output()
        .unwrap());
}

/// A counter series every 15 s over two hours, `per_s` a second.
fn counter(labels: &[(&str, &str)], per_s: f64) -> TestSeries {
    TestSeries {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        samples: (0..480)
            .map(|k| (T0 + 3_100 + k * 15_000, 1e3 + per_s * 15.0 * k as f64))
            .collect(),
    }
}

fn gauge(labels: &[(&str, &str)], value: f64) -> TestSeries {
    TestSeries {
        samples: counter(labels, 0.0)
            .samples
            .into_iter()
            .map(|(t, _)| (t, value))
            .collect(),
        ..counter(labels, 0.0)
    }
}

/// The libvirt exporter's per-VM energy counters: libvirt-joules, hosts by
/// `instance` (host:port, so a host_regex), and the joules of an extract
/// with the policy as written equal C1 of the data.
#[test]
fn per_vm_counters_give_libvirt_joules_and_exact_joules() {
    let uuids = [
        "a1b2c3d4-0000-4000-8000-000000000001",
        "a1b2c3d4-0000-4000-8000-000000000002",
    ];
    let series: Vec<TestSeries> = uuids
        .iter()
        .enumerate()
        .map(|(i, uuid)| {
            counter_series(&VmShape {
                uuid,
                project: "p1",
                from_ms: T0,
                to_ms: T0 + 2 * HOUR,
                resets_at: &[],
                gaps: &[],
                initial: 10.0,
                seed: 70 + i as u64,
            })
        })
        .collect();
    let prometheus = Prometheus::start(&openmetrics(&[(
        "libvirt_domain_info_energy_consumption_joules",
        &series,
    )]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    let stderr = ok(&init(&prometheus.url, &path));
    assert!(stderr.contains("libvirt-joules"), "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# Model: libvirt-joules, because"), "{text}");
    assert!(text.contains(&format!("url = \"{}\"", prometheus.url)));
    assert!(
        text.contains("host_label = \"instance\"") && text.contains("host_regex"),
        "{text}"
    );
    assert!(text.contains("Remote read: answers"), "{text}");
    check(&path);

    let (from, to) = (T0 + 10 * MIN, T0 + 70 * MIN);
    let out = command()
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&path)
        .args(["--from", &secs(from), "--to", &secs(to)])
        .output()
        .unwrap();
    ok(&out);
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for r in &records {
        let uuid = r["vm_uuid"].as_str().unwrap();
        let s = &series[uuids.iter().position(|u| *u == uuid).unwrap()];
        let want = c1(&s.samples, from, to).unwrap();
        let got = r["energy_joules"].as_f64().unwrap();
        assert!(rel_err(got, want) < 1e-9, "{uuid}: {got} vs {want}");
    }
}

/// Host meters with per-VM CPU time: wall power beats RAPL (the whole host),
/// and the policy says a per-VM meter would be better; RAPL alone gives
/// rapl-share. A `host` label on every series is preferred to `instance`.
#[test]
fn host_meters_give_the_share_models() {
    let cpu = counter(&[("host", "cmp-01"), ("uuid", "u-1")], 0.5);
    let rapl = counter(
        &[
            ("host", "cmp-01"),
            ("index", "0"),
            ("path", "/sys/class/powercap/intel-rapl:0"),
        ],
        80.0,
    );
    let ipmi = gauge(&[("host", "cmp-01")], 210.0);
    let both = Prometheus::start(&openmetrics_with_gauges(
        &[
            (
                "libvirt_domain_info_cpu_time_seconds",
                std::slice::from_ref(&cpu),
            ),
            ("node_rapl_package_joules", std::slice::from_ref(&rapl)),
        ],
        &[(
            "ipmi_dcmi_power_consumption_watts",
            std::slice::from_ref(&ipmi),
        )],
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipmi.toml");
    ok(&init(&both.url, &path));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# Model: ipmi-share"), "{text}");
    assert!(
        text.contains("# Better, if you can add it: a per-VM meter"),
        "{text}"
    );
    assert!(
        text.contains("host_label = \"host\"") && !text.contains("host_regex ="),
        "{text}"
    );
    check(&path);

    let rapl_only = Prometheus::start(&openmetrics(&[
        (
            "libvirt_domain_info_cpu_time_seconds",
            std::slice::from_ref(&cpu),
        ),
        ("node_rapl_package_joules", std::slice::from_ref(&rapl)),
    ]));
    let path = dir.path().join("rapl.toml");
    ok(&init(&rapl_only.url, &path));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# Model: rapl-share"), "{text}");
    assert!(text.contains("wall power (ipmi_exporter)"), "{text}");
    check(&path);
}

/// Scaphandre scraped with OpenNebula's `host_id` (seed 001): the
/// scaphandre model, hosts by `host_id` for the inventory and the model.
#[test]
fn scaphandre_with_host_ids_gives_the_scaphandre_model() {
    let process = gauge(
        &[
            ("exe", "qemu-system-x86_64"),
            ("host_id", "2"),
            ("vmname", "one-42"),
        ],
        30e6,
    );
    let host = gauge(&[("host_id", "2")], 300e6);
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[],
        &[
            ("scaph_process_power_consumption_microwatts", &[process]),
            ("scaph_host_power_microwatts", &[host]),
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    ok(&init(&prometheus.url, &path));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# Model: scaphandre"), "{text}");
    assert_eq!(
        text.matches("host_label = \"host_id\"").count(),
        2,
        "{text}"
    );
    check(&path);
}

/// Kepler's per-VM counters (with node_exporter's RAPL beside them, which
/// it beats) and a carbon-intensity gauge: kepler, the gauge named.
#[test]
fn kepler_beats_rapl_and_a_carbon_gauge_is_named() {
    let kepler = counter(
        &[
            ("instance", "cmp-01:9102"),
            ("vm_id", "u-1"),
            ("zone", "package"),
        ],
        20.0,
    );
    let rapl = counter(&[("instance", "cmp-01:9100"), ("index", "0")], 80.0);
    let cpu = counter(&[("instance", "cmp-01:9177"), ("uuid", "u-1")], 0.5);
    let carbon = gauge(&[("zone", "DE")], 380.0);
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            ("kepler_vm_cpu_joules", &[kepler]),
            ("node_rapl_package_joules", &[rapl]),
            ("libvirt_domain_info_cpu_time_seconds", &[cpu]),
        ],
        &[("grid_carbon_intensity_gco2_per_kwh", &[carbon])],
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    ok(&init(&prometheus.url, &path));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# Model: kepler"), "{text}");
    assert!(
        text.contains("grid_carbon_intensity_gco2_per_kwh: a grid carbon intensity"),
        "{text}"
    );
    check(&path);
}

/// A Prometheus with none of the families: exit 2, a message naming what
/// was looked for, and no file; an existing file is never overwritten.
#[test]
fn nothing_to_attribute_from_writes_nothing() {
    let up = gauge(&[("instance", "cmp-01:9100"), ("job", "node")], 1.0);
    let prometheus = Prometheus::start(&openmetrics_with_gauges(&[], &[("up", &[up])]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    let out = init(&prometheus.url, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("node_rapl_package_joules_total") && stderr.contains("no file was written"),
        "{stderr}"
    );
    assert!(!path.exists());

    std::fs::write(&path, "# mine\n").unwrap();
    let out = init(&prometheus.url, &path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");

    // Nothing listening: exit 3, the URL named.
    let down = format!("http://127.0.0.1:{}", super::prometheus::free_port());
    let out = init(&down, &dir.path().join("other.toml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&down), "{stderr}");
}
