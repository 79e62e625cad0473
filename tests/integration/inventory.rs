//! VM metadata from Prometheus: the libvirt exporter's info series joined by
//! uuid (names, projects, users), the energy series' own labels where there is
//! none, and host label values normalised into host keys.

use super::data::{HOUR, METRIC, T0, VmShape, counter_series};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::support::ok;
use super::wattson::{command, secs, write_policy};

pub(super) fn meta(
    uuid: &str,
    name: &str,
    project: &str,
    project_name: &str,
    user: &str,
    from: i64,
    to: i64,
) -> TestSeries {
    TestSeries {
        labels: [
            ("uuid", uuid),
            ("domain", "instance-0000abcd"),
            ("instance_name", name),
            ("project_uuid", project),
            ("project_name", project_name),
            ("user_uuid", "u-1"),
            ("user_name", user),
            ("flavor", "m1.large"),
            ("instance", "cmp-07.example.org:9177"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        samples: (0..)
            .map(|i| (from + i * 30_000 + 1_234, 1.0))
            .take_while(|(t, _)| *t <= to)
            .collect(),
    }
}

#[test]
fn records_carry_the_info_series_metadata_and_normalised_hosts() {
    let shapes = [
        VmShape {
            uuid: "vm-meta",
            project: "p-series",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 1e4,
            seed: 31,
        },
        // Stops inside the window: its info series stops too, and is still found.
        VmShape {
            uuid: "vm-meta-stops",
            project: "p-series",
            from_ms: T0,
            to_ms: T0 + HOUR + 20 * 60_000,
            resets_at: &[],
            gaps: &[],
            initial: 1e4,
            seed: 32,
        },
        VmShape {
            uuid: "vm-bare",
            project: "p-bare",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 1e4,
            seed: 33,
        },
    ];
    let counters: Vec<_> = shapes.iter().map(counter_series).collect();
    let infos = vec![
        meta(
            "vm-meta",
            "web-1",
            "proj-a",
            "Astro, \"Lab\"",
            "alice",
            T0,
            T0 + 3 * HOUR,
        ),
        meta(
            "vm-meta-stops",
            "batch-7",
            "proj-b",
            "Bio",
            "bob",
            T0,
            T0 + HOUR + 20 * 60_000,
        ),
    ];
    let gauge = |uuid: &str, value: f64| TestSeries {
        labels: vec![("uuid".into(), uuid.into())],
        samples: (0..)
            .map(|i| (T0 + i * 30_000 + 999, value))
            .take_while(|(t, _)| *t <= T0 + 3 * HOUR)
            .collect(),
    };
    let vcpus = [gauge("vm-meta", 4.0)];
    let memory = [gauge("vm-meta", 8.0 * 1024.0 * 1024.0 * 1024.0)];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[(METRIC, &counters)],
        &[
            ("libvirt_domain_info_meta", &infos),
            ("libvirt_domain_info_virtual_cpus", &vcpus),
            ("libvirt_domain_info_maximum_memory_bytes", &memory),
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "site.toml",
        r#"
[site]
name = "TEST-SITE"
compute_service = "c"

[inventory]
host_label = "instance"
host_regex = '^([^:]+)'

[model]
plugin = "libvirt-joules"
"#,
    );
    let out = command()
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(T0 + HOUR), "--to", &secs(T0 + 2 * HOUR)])
        .output()
        .unwrap();
    ok(&out);
    let records: std::collections::HashMap<String, serde_json::Value> =
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap();
                (r["vm_uuid"].as_str().unwrap().to_owned(), r)
            })
            .collect();
    assert_eq!(records.len(), 3);
    let r = &records["vm-meta"];
    assert_eq!(r["vm_name"], "web-1");
    assert_eq!(r["project_id"], "proj-a");
    assert_eq!(r["project_name"], "Astro, \"Lab\"");
    assert_eq!(r["user_name"], "alice");
    assert_eq!(r["vcpus"], 4, "vCPUs from the exporter's gauge");
    assert_eq!(
        r["host"], "cmp-01",
        "host key from the energy series, port stripped"
    );
    assert_eq!(records["vm-meta-stops"]["project_name"], "Bio");
    let bare = &records["vm-bare"];
    assert_eq!(
        bare["project_id"], "p-bare",
        "no info series: the energy series' labels"
    );
    assert!(bare["project_name"].is_null());
    assert!(bare["vcpus"].is_null());

    // `wattson inventory` lists the same VMs, as JSON and as a table.
    let inventory = |extra: &[&str]| {
        let out = command()
            .args(["inventory", "--prometheus", &prometheus.url])
            .args(["--from", &secs(T0 + HOUR), "--to", &secs(T0 + 2 * HOUR)])
            .args(extra)
            .output()
            .unwrap();
        ok(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let vms: serde_json::Value = serde_json::from_str(&inventory(&["--json"])).unwrap();
    let vms = vms.as_array().unwrap();
    assert_eq!(vms.len(), 2);
    assert_eq!(vms[0]["uuid"], "vm-meta");
    assert_eq!(vms[0]["user_name"], "alice");
    assert_eq!(vms[1]["name"], "batch-7");
    let table = inventory(&[]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("UUID") && lines[0].contains("PROJECT"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("vm-meta ")
            && lines[1].contains("web-1")
            && lines[1].contains("m1.large"),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");
}
