//! `wattson report` over a period of the delivery tests' site (VMs that
//! start, stop and reset): per-project energy and hours equal the sums of the
//! records an extract over the same period delivers (the extract cuts 2 h
//! windows, the report 1 h ones: C1 tiles); an empty period is an empty
//! report and exit 0, with a warning; the HTML report, rendered by headless
//! Chromium, shows the JSON report's numbers.

use std::collections::BTreeMap;

use super::data::{HOUR, T0, rel_err};
use super::delivery::{delivery_policy, site};
use super::support::ok;
use super::wattson::{command, jsonl_records, secs};

fn report(policy: &std::path::Path, from: i64, to: i64, args: &[&str]) -> std::process::Output {
    command()
        .args(["report", "--policy"])
        .arg(policy)
        .args(["--from", &secs(from), "--to", &secs(to)])
        .args(args)
        .output()
        .expect("run wattson report")
}

#[test]
fn report_totals_are_the_extracts_records_summed() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let policy = delivery_policy(dir.path(), &site.prometheus.url, "");
    let (from, to) = (T0 + 2 * HOUR, T0 + 8 * HOUR);

    // In the report's windows (one step each): a record's wall time is its
    // VM's presence clipped to its window, so windows cut otherwise would
    // differ by the scrapes' jitter.
    let extract = command()
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&policy)
        .args(["--set", "window.max_window_secs=3600"])
        .args(["--from", &secs(from), "--to", &secs(to)])
        .output()
        .unwrap();
    // project → (joules, hours, VMs); VM → hours.
    let mut want: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    let mut vm_hours: BTreeMap<String, f64> = BTreeMap::new();
    for r in jsonl_records(&extract) {
        let project = r["project_id"].as_str().unwrap().to_owned();
        let entry = want.entry(project).or_default();
        entry.0 += r["energy_joules"].as_f64().unwrap();
        entry.1 += r["wall_s"].as_f64().unwrap() / 3600.0;
        *vm_hours
            .entry(r["vm_uuid"].as_str().unwrap().to_owned())
            .or_default() += r["wall_s"].as_f64().unwrap() / 3600.0;
    }
    assert_eq!(want.len(), 3, "three projects");

    let out = report(&policy, from, to, &["--format", "json"]);
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["start"], "2025-06-01T02:00:00.000000");
    assert_eq!(json["stop"], "2025-06-01T08:00:00.000000");
    let projects = json["tenant_usages"].as_array().unwrap();
    assert_eq!(projects.len(), want.len());
    let mut total = 0.0;
    for p in projects {
        let (joules, hours, _) = want[p["tenant_id"].as_str().unwrap()];
        let kwh = p["total_energy_kwh"].as_f64().unwrap();
        assert!(
            rel_err(kwh, joules / 3.6e6) < 1e-9,
            "{kwh} vs {}",
            joules / 3.6e6
        );
        let got_hours = p["total_hours"].as_f64().unwrap();
        assert!(rel_err(got_hours, hours) < 1e-9, "{got_hours} vs {hours}");
        for vm in p["server_usages"].as_array().unwrap() {
            let uuid = vm["instance_id"].as_str().unwrap();
            assert!(rel_err(vm["hours"].as_f64().unwrap(), vm_hours[uuid]) < 1e-9);
            for key in [
                "name",
                "flavor",
                "vcpus",
                "memory_mb",
                "local_gb",
                "started_at",
                "ended_at",
                "state",
                "energy_kwh",
            ] {
                assert!(vm.get(key).is_some(), "{key} in {vm}");
            }
        }
        total += kwh;
    }
    assert!(rel_err(json["total_energy_kwh"].as_f64().unwrap(), total) < 1e-12);
    // vm-3 started at 3 h 30 (inside the period) and vm-4 stopped at 6 h 10:
    // they count only the part they lived.
    let vms: BTreeMap<&str, &serde_json::Value> = projects
        .iter()
        .flat_map(|p| p["server_usages"].as_array().unwrap())
        .map(|vm| (vm["instance_id"].as_str().unwrap(), vm))
        .collect();
    let hours = |uuid: &str| vms[uuid]["hours"].as_f64().unwrap();
    assert!((hours("vm-3") - 4.5).abs() < 0.01, "{}", hours("vm-3"));
    assert!((hours("vm-4") - 4.17).abs() < 0.01, "{}", hours("vm-4"));
    assert_eq!(vms["vm-4"]["state"], "stopped");
    assert!(
        vms["vm-4"]["ended_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-01T06:1")
    );
    assert!(
        vms["vm-3"]["started_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-01T03:3")
    );
    assert_eq!(vms["vm-1"]["state"], "active");
    assert!(vms["vm-1"]["ended_at"].is_null());

    // The table: one line per project and a total, within 120 columns.
    let out = report(&policy, from, to, &[]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.lines().all(|l| l.chars().count() <= 120), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.starts_with("p")).count(),
        3,
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("TOTAL")), "{table}");

    // CSV by VM: a header and a row per VM.
    let out = report(&policy, from, to, &["--by", "vm", "--format", "csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("instance_id,name,tenant_id,project_name,flavor,host,vms,vcpu_hours,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + vm_hours.len(), "{csv}");
}

/// `--by vm --format csv` says who each VM is as the table does: its
/// project (id and name), flavor and host, the JSON report's values (empty
/// where unknown); the other groupings keep their columns.
#[test]
fn csv_by_vm_has_each_vms_project_flavor_and_host() {
    use super::data::{METRIC, VmShape, counter_series};
    use super::inventory::meta;
    use super::prometheus::{Prometheus, openmetrics_with_gauges};
    let vm = |uuid, project, seed| {
        counter_series(&VmShape {
            uuid,
            project,
            from_ms: T0,
            to_ms: T0 + 2 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 1.0,
            seed,
        })
    };
    let counters = [vm("vm-meta", "proj-a", 1), vm("vm-bare", "p-bare", 2)];
    let infos = [meta(
        "vm-meta",
        "web-1",
        "proj-a",
        "Astro",
        "alice",
        T0,
        T0 + 2 * HOUR,
    )];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[(METRIC, &counters)],
        &[("libvirt_domain_info_meta", &infos)],
    ));
    let dir = tempfile::tempdir().unwrap();
    let policy = delivery_policy(
        dir.path(),
        &prometheus.url,
        "[inventory]\nhost_label = \"instance\"\nhost_regex = '^([^:]+)'\n",
    );
    let (from, to) = (T0, T0 + 2 * HOUR);
    let out = report(&policy, from, to, &["--by", "vm", "--format", "json"]);
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vms: BTreeMap<String, serde_json::Value> = json["usages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["server_usages"].as_array().unwrap().clone())
        .map(|vm| (vm["instance_id"].as_str().unwrap().to_owned(), vm))
        .collect();
    assert_eq!(vms.len(), 2);

    let out = report(&policy, from, to, &["--by", "vm", "--format", "csv"]);
    ok(&out);
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let mut rows = BTreeMap::new();
    for row in csv.records() {
        let row = row.unwrap();
        let vm = &vms[&row[column("instance_id")]];
        for key in ["tenant_id", "project_name", "flavor", "host"] {
            assert_eq!(
                row[column(key)],
                *vm[key].as_str().unwrap_or_default(),
                "{key} of {vm}"
            );
        }
        rows.insert(row[column("instance_id")].to_owned(), row);
    }
    assert_eq!(rows.len(), vms.len());
    let known = &rows["vm-meta"];
    assert_eq!(
        [
            &known[column("tenant_id")],
            &known[column("project_name")],
            &known[column("flavor")],
            &known[column("host")],
        ],
        ["proj-a", "Astro", "m1.large", "cmp-01"]
    );
    assert_eq!(&rows["vm-bare"][column("flavor")], "", "unknown: empty");

    let out = report(&policy, from, to, &["--by", "project", "--format", "csv"]);
    ok(&out);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("tenant_id,project_name,vms,vcpu_hours,"),
        "{csv}"
    );
}

#[test]
fn an_empty_period_is_an_empty_report_that_says_so() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let policy = delivery_policy(dir.path(), &site.prometheus.url, "");
    let out = report(
        &policy,
        T0 + 20 * HOUR,
        T0 + 22 * HOUR,
        &["--format", "json"],
    );
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tenant_usages"], serde_json::json!([]));
    assert_eq!(json["total_energy_kwh"], 0.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the report is empty"), "{stderr}");
    // Nothing was touched: no state directory.
    assert!(!dir.path().join("state").exists());
}

#[test]
fn disk_gb_hours_come_from_the_disk_metric() {
    use super::data::{METRIC, VmShape, counter_series};
    use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let vm = |uuid, seed| {
        counter_series(&VmShape {
            uuid,
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 2 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 1.0,
            seed,
        })
    };
    let counters = [vm("vm-a", 1), vm("vm-b", 2)];
    // vm-a has two disks, one grown from 8 to 10 GiB; vm-b has no disk series.
    let disk = |dev: &str, gib: &dyn Fn(i64) -> f64| TestSeries {
        labels: vec![
            ("uuid".into(), "vm-a".into()),
            ("target_device".into(), dev.into()),
        ],
        samples: (0..=240)
            .map(|i| (T0 + i * 30_000, gib(i * 30_000) * GIB))
            .collect(),
    };
    let disks = [
        disk("vda", &|t| if t < HOUR / 2 { 8.0 } else { 10.0 }),
        disk("vdb", &|_| 5.0),
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[(METRIC, &counters)],
        &[("libvirt_domain_block_stats_capacity_bytes", &disks)],
    ));
    let dir = tempfile::tempdir().unwrap();
    let policy = delivery_policy(dir.path(), &prometheus.url, "");
    let out = report(
        &policy,
        T0,
        T0 + 2 * HOUR,
        &["--by", "vm", "--format", "json"],
    );
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vms: BTreeMap<&str, &serde_json::Value> = json["usages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["server_usages"].as_array().unwrap())
        .map(|vm| (vm["instance_id"].as_str().unwrap(), vm))
        .collect();
    assert_eq!(
        vms["vm-a"]["local_gb"], 15.0,
        "the largest size of each disk, added"
    );
    assert!(vms["vm-b"]["local_gb"].is_null(), "unknown, never 0");
    let hours = vms["vm-a"]["hours"].as_f64().unwrap();
    let total = json["total_local_gb_usage"].as_f64().unwrap();
    assert!(
        rel_err(total, 15.0 * hours) < 1e-12,
        "{total} vs {}",
        15.0 * hours
    );
}

/// `wattson report --format html` rendered by a real browser, headless
/// Chromium: a screenshot that is not blank, no console message, and bars
/// whose `data-value`s are the JSON report's numbers (per group: energy and
/// carbon; per day: the JSON report of that day alone). The VMs run over
/// three UTC days; a project's id has markup in it. Set
/// `WATTSON_REPORT_SCREENSHOT=FILE` to keep the screenshot.
#[test]
fn report_html_renders_in_chromium_with_the_json_reports_numbers() {
    use super::data::{METRIC, VmShape, counter_series};
    use super::prometheus::{Prometheus, openmetrics};
    use super::support::require_tool;

    if !require_tool("chromium", "apt-get install chromium (scripts/setup.sh)") {
        return;
    }
    let shape = |uuid, project, from_h: i64, to_h: i64, seed| VmShape {
        uuid,
        project,
        from_ms: T0 + from_h * HOUR,
        to_ms: T0 + to_h * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 1e4,
        seed,
    };
    let shapes = [
        shape("vm-astro-1", "astro", 0, 60, 31),
        shape("vm-astro-2", "astro", 5, 40, 32),
        shape("vm-climate-1", "climate", 0, 30, 33),
        shape("vm-lab-1", "genomics <lab> & \"co\"", 20, 60, 34),
        shape("vm-lab-2", "genomics <lab> & \"co\"", 26, 52, 35),
    ];
    let series: Vec<_> = shapes.iter().map(counter_series).collect();
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let dir = tempfile::tempdir().unwrap();
    let policy = delivery_policy(dir.path(), &prometheus.url, "");
    let carbon = ["--set", "carbon.intensity_g_per_kwh=210"];
    // 06-01 02:00 .. 06-03 12:00: most of a day, a whole one, half of one.
    let (from, to) = (T0 + 2 * HOUR, T0 + 60 * HOUR);
    let json_report = |from, to| -> BTreeMap<String, serde_json::Value> {
        let out = report(
            &policy,
            from,
            to,
            &[&carbon[..], &["--format", "json"]].concat(),
        );
        ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["tenant_usages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["tenant_id"].as_str().unwrap().to_owned(), p.clone()))
            .collect()
    };
    let projects = json_report(from, to);
    assert_eq!(projects.len(), 3);

    let page = dir.path().join("report.html");
    let out = report(
        &policy,
        from,
        to,
        &[
            &carbon[..],
            &["--format", "html", "--output"],
            &[page.to_str().unwrap()],
        ]
        .concat(),
    );
    ok(&out);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to load.
    for loads in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(loads), "{loads} in the page");
    }
    assert!(!html.contains("<lab>"), "a project id is escaped");

    let url = format!("file://{}", page.display());
    let chromium = |args: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };

    let png = dir.path().join("report.png");
    chromium(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1200,1600",
        "--hide-scrollbars",
    ]);
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let size = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (1200, 1600), "IHDR width and height");
    // A blank 1200×1600 page compresses to a few kB; charts and tables do not.
    assert!(bytes.len() > 40_000, "{} bytes: blank?", bytes.len());
    if let Some(keep) = std::env::var_os("WATTSON_REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }

    // The DOM as Chromium built it, and what the page said on its console.
    let out = chromium(&["--dump-dom", "--enable-logging=stderr", "--v=0"]);
    let console: Vec<_> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let dom = String::from_utf8(out.stdout).unwrap();
    let bars = bars(&dom);

    // Energy and carbon per project: the JSON report's numbers.
    for (metric, key) in [("energy", "total_energy_kwh"), ("carbon", "total_carbon_g")] {
        let got: BTreeMap<&str, f64> = bars
            .iter()
            .filter(|b| b["data-metric"] == metric && !b.contains_key("data-day"))
            .map(|b| (b["data-group"].as_str(), b["data-value"].parse().unwrap()))
            .collect();
        assert_eq!(got.len(), projects.len(), "{metric}: {got:?}");
        for (project, json) in &projects {
            let want = json[key].as_f64().unwrap();
            assert!(want > 0.0, "{project} {key}");
            let value = got[project.as_str()];
            assert!(
                rel_err(value, want) < 1e-9,
                "{project} {metric}: {value} vs {want}"
            );
        }
    }

    // Per day: each day's segments are that day's own JSON report.
    let days = [
        ("2025-06-01", from, T0 + 24 * HOUR),
        ("2025-06-02", T0 + 24 * HOUR, T0 + 48 * HOUR),
        ("2025-06-03", T0 + 48 * HOUR, to),
    ];
    let mut segments = 0;
    for (date, day_from, day_to) in days {
        let want = json_report(day_from, day_to);
        let got: BTreeMap<&str, f64> = bars
            .iter()
            .filter(|b| b.get("data-day").is_some_and(|d| d == date))
            .map(|b| (b["data-group"].as_str(), b["data-value"].parse().unwrap()))
            .collect();
        let want: BTreeMap<&str, f64> = want
            .iter()
            .map(|(p, json)| (p.as_str(), json["total_energy_kwh"].as_f64().unwrap()))
            .filter(|&(_, kwh)| kwh > 0.0)
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{date}"
        );
        for (project, kwh) in &want {
            let value = got[project];
            assert!(
                rel_err(value, *kwh) < 1e-9,
                "{date} {project}: {value} vs {kwh}"
            );
        }
        segments += got.len();
    }
    assert_eq!(
        segments,
        bars.iter().filter(|b| b.contains_key("data-day")).count(),
        "no day outside the period"
    );

    // Each VM's line.
    for shape in &shapes {
        assert!(dom.contains(shape.uuid), "{} in the VM table", shape.uuid);
    }
}

/// The attributes of every `<rect class="bar">` in `dom`, unescaped.
fn bars(dom: &str) -> Vec<BTreeMap<String, String>> {
    let rect = regex::Regex::new(r"<rect ([^>]*)>").unwrap();
    let attribute = regex::Regex::new(r#"([\w-]+)="([^"]*)""#).unwrap();
    rect.captures_iter(dom)
        .map(|c| {
            attribute
                .captures_iter(&c[1])
                .map(|a| {
                    let value = a[2]
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                        .replace("&amp;", "&");
                    (a[1].to_owned(), value)
                })
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|attributes| attributes.get("class").is_some_and(|c| c == "bar"))
        .collect()
}
