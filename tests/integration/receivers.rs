//! Messengers against receivers on 127.0.0.1 started by the test: a
//! logstash-like TCP line receiver, an HTTP server answering as scripted, and
//! the real node_exporter's textfile collector reading the file messenger's
//! one fixed file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::data::{HOUR, MIN, T0, c1, rel_err};
use super::delivery::{Site, delivery_policy, expected, lastrun, run, site};
use super::http::{read_request, respond};
use super::prometheus::free_port;
use super::support::node_exporter::{NodeExporter, Sample};
use super::support::ok;

fn policy(dir: &Path, url: &str, messenger: &str) -> std::path::PathBuf {
    delivery_policy(
        dir,
        url,
        &format!("\n[[outputs]]\nformat = \"caso-json\"\n[outputs.messenger]\n{messenger}\n"),
    )
}

/// Accepts connections on `listener` and collects every line received.
fn line_receiver(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
    });
    lines
}

/// (vm, window start) of caso-json records received as lines.
fn keys(lines: &[String]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("one JSON document per line");
            // caso-json carries the window end; windows here are 1 or 2 hours.
            let end = r["MeasurementTime"].as_i64().unwrap() * 1000;
            (r["uuid"].as_str().unwrap().to_owned(), end)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn logstash_down_then_up_delivers_the_spool_first_and_once() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = policy(
        dir.path(),
        &site.prometheus.url,
        &format!("type = \"logstash\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_secs = 2"),
    );
    let out = run(&policy, T0 + 3 * HOUR + 5 * MIN, None);
    assert_eq!(out.status.code(), Some(5), "receiver down: delivery error");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("logstash 127.0.0.1:{port}")));
    assert_eq!(lastrun(dir.path()), T0 + 2 * HOUR);

    let lines = line_receiver(TcpListener::bind(("127.0.0.1", port)).unwrap());
    ok(&run(&policy, T0 + 8 * HOUR + 30 * MIN, None));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = keys(&lines.lock().unwrap());
    // Expected keyed by window end here.
    let ends = [T0 + 3 * HOUR, T0 + 5 * HOUR, T0 + 7 * HOUR, T0 + 8 * HOUR];
    let starts = [T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 5 * HOUR, T0 + 7 * HOUR];
    let mut want: Vec<(String, i64)> = expected(&site)
        .into_iter()
        .map(|(vm, start)| (vm, ends[starts.iter().position(|s| *s == start).unwrap()]))
        .collect();
    want.sort();
    assert_eq!(got, want, "every record exactly once");
    // The spooled window came first.
    let first: serde_json::Value = serde_json::from_str(&lines.lock().unwrap()[0]).unwrap();
    assert_eq!(
        first["MeasurementTime"].as_i64().unwrap() * 1000,
        T0 + 3 * HOUR
    );
    assert_eq!(lastrun(dir.path()), T0 + 8 * HOUR);
}

/// Requests an HTTP test server saw: (Authorization header line, body).
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server answering each request with the next scripted status; records requests.
fn http_server(script: Vec<u16>) -> (String, Requests) {
    http_server_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
}

fn http_server_on(listener: TcpListener, script: Vec<u16>) -> (String, Requests) {
    let url = format!("http://{}/records", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for mut stream in listener.incoming().flatten() {
            let request = read_request(&stream);
            log.lock().unwrap().push((
                request.authorization.unwrap_or_default(),
                String::from_utf8_lossy(&request.body).into_owned(),
            ));
            let status = script.next().unwrap_or(200);
            let answer = if status == 400 {
                "{\"error\":\"unknown site TEST-SITE\"}"
            } else {
                "ok"
            };
            respond(&mut stream, status, answer);
        }
    });
    (url, seen)
}

fn http_messenger(url: &str) -> String {
    format!(
        "type = \"http\"\nurl = \"{url}\"\ntoken_env = \"WATTSON_TEST_TOKEN\"\nretries = 2\nbackoff_ms = 50"
    )
}

#[test]
fn http_500_is_retried_and_the_token_is_sent() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = http_server(vec![500, 200]);
    let policy = policy(dir.path(), &site.prometheus.url, &http_messenger(&url));
    let mut cmd = super::wattson::command();
    cmd.env("WATTSON_TEST_TOKEN", "s3cret")
        .args(["extract", "--policy"])
        .arg(&policy)
        .args(["--now", &super::wattson::secs(T0 + 3 * HOUR)]);
    let out = cmd.output().unwrap();
    ok(&out);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one retry after the 500");
    assert_eq!(seen[0].1, seen[1].1, "the same payload again");
    assert_eq!(
        seen[1].0.to_ascii_lowercase(),
        "authorization: bearer s3cret"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("s3cret"),
        "the token is never logged"
    );
}

#[test]
fn http_400_is_not_retried_and_shows_the_body() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = http_server(vec![400, 200]);
    let policy = policy(dir.path(), &site.prometheus.url, &http_messenger(&url));
    let out = super::wattson::command()
        .env("WATTSON_TEST_TOKEN", "s3cret")
        .args(["extract", "--policy"])
        .arg(&policy)
        .args(["--now", &super::wattson::secs(T0 + 3 * HOUR)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 400"), "{stderr}");
    assert!(
        stderr.contains("unknown site TEST-SITE"),
        "the server's answer: {stderr}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "a 4xx is not retried");
}

#[test]
fn http_down_then_up_delivers_the_spool_first() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/records");
    let policy = policy(dir.path(), &site.prometheus.url, &http_messenger(&url));
    let run_with_token = |now| {
        super::wattson::command()
            .env("WATTSON_TEST_TOKEN", "s3cret")
            .args(["extract", "--policy"])
            .arg(&policy)
            .args(["--now", &super::wattson::secs(now)])
            .output()
            .unwrap()
    };
    let out = run_with_token(T0 + 3 * HOUR + 5 * MIN);
    assert_eq!(out.status.code(), Some(5), "receiver down: delivery error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("after 3 attempts"));
    assert_eq!(lastrun(dir.path()), T0 + 2 * HOUR);

    let (_, seen) = http_server_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), vec![]);
    ok(&run_with_token(T0 + 5 * HOUR + 5 * MIN));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "the spooled window, then the new one");
    let first: serde_json::Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(
        first[0]["MeasurementTime"].as_i64().unwrap() * 1000,
        T0 + 3 * HOUR
    );
    assert_eq!(lastrun(dir.path()), T0 + 5 * HOUR);
}

/// The tenant series of one window, computed here from the generated
/// counters (C1 per VM, summed per project, in kWh) and the window itself.
fn tenant_series(site: &Site, start: i64, end: i64) -> Vec<Sample> {
    let mut joules: BTreeMap<String, f64> = BTreeMap::new();
    for (_, series) in &site.series {
        if let Some(j) = c1(&series.samples, start, end) {
            let project = series
                .labels
                .iter()
                .find(|(k, _)| k == "project_id")
                .map(|(_, v)| v.clone())
                .unwrap();
            *joules.entry(project).or_default() += j;
        }
    }
    let mut out: Vec<Sample> = joules
        .into_iter()
        .map(|(project, j)| {
            (
                "sustainability_tenant_energy_kwh".to_owned(),
                BTreeMap::from([("project_id".to_owned(), project)]),
                j / 3.6e6,
            )
        })
        .collect();
    out.push((
        "wattson_tenant_window_start_seconds".into(),
        BTreeMap::new(),
        (start / 1000) as f64,
    ));
    out.push((
        "wattson_tenant_window_end_seconds".into(),
        BTreeMap::new(),
        (end / 1000) as f64,
    ));
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// What node_exporter exports of wattson's file: exactly `want` (each series
/// once, values to 1e-12), and a scrape without error.
fn exports_exactly(exporter: &NodeExporter, want: &[Sample], context: &str) {
    let scrape = exporter.scrape();
    let mut tenant: Vec<Sample> = scrape
        .iter()
        .filter(|(name, _, _)| {
            name.starts_with("sustainability_tenant_") || name.starts_with("wattson_tenant_")
        })
        .cloned()
        .collect();
    tenant.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let series = |s: &[Sample]| -> Vec<(String, BTreeMap<String, String>)> {
        s.iter().map(|(n, l, _)| (n.clone(), l.clone())).collect()
    };
    assert_eq!(series(&tenant), series(want), "{context}: series");
    for ((name, labels, got), (_, _, want)) in tenant.iter().zip(want) {
        assert!(
            rel_err(*got, *want) < 1e-12,
            "{context}: {name}{labels:?} = {got}, want {want}"
        );
    }
    let errors: Vec<&Sample> = scrape
        .iter()
        .filter(|(name, _, _)| name == "node_textfile_scrape_error")
        .collect();
    assert_eq!(errors.len(), 1, "{context}: {scrape:?}");
    assert_eq!(
        errors[0].2, 0.0,
        "{context}: node_exporter could not read the file"
    );
    // Series that two files share fail the gathering (node_exporter logs it
    // and exports one of them): its handler counts that, in the next scrape.
    let gathering = exporter
        .scrape()
        .into_iter()
        .find(|(name, labels, _)| {
            name == "promhttp_metric_handler_errors_total"
                && labels.get("cause").is_some_and(|c| c == "gathering")
        })
        .expect("promhttp_metric_handler_errors_total{cause=\"gathering\"}");
    assert_eq!(gathering.2, 0.0, "{context}: a scrape failed to gather");
    let files: Vec<&BTreeMap<String, String>> = scrape
        .iter()
        .filter(|(name, _, _)| name == "node_textfile_mtime_seconds")
        .map(|(_, labels, _)| labels)
        .collect();
    let wanted = usize::from(!want.is_empty());
    assert_eq!(files.len(), wanted, "{context}: files read {files:?}");
    assert!(
        files.iter().all(|l| l["file"].ends_with("/wattson.prom")),
        "{context}: files read {files:?}"
    );
}

/// The `tenant-metrics` format through the file messenger's fixed
/// `name = "wattson.prom"`, read by the real node_exporter's textfile
/// collector: after each run the collector exports exactly the last
/// delivered window's tenant series, once, without a scrape error: also
/// after a run of several windows (each replaced the previous), after a run
/// killed with the file's temporary written (the previous window stays,
/// whole), and after one killed between the rename and the spool's
/// bookkeeping (the next run writes the same payload again).
#[test]
fn node_exporter_exports_the_last_window_of_a_textfile() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let textfile = dir.path().join("textfile");
    std::fs::create_dir(&textfile).unwrap();
    let Some(exporter) = NodeExporter::start(&textfile) else {
        return;
    };
    let policy = delivery_policy(
        dir.path(),
        &site.prometheus.url,
        &format!(
            "\n[[outputs]]\nformat = \"tenant-metrics\"\n[outputs.messenger]\ntype = \"file\"\n\
             directory = \"{}\"\nname = \"wattson.prom\"\nmode = \"0644\"\n",
            textfile.display()
        ),
    );
    let only_the_file = || {
        let mut names: Vec<String> = std::fs::read_dir(&textfile)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".wattson-tmp", "wattson.prom"]);
    };
    exports_exactly(&exporter, &[], "before any run");

    ok(&run(&policy, T0 + 3 * HOUR + 5 * MIN, None));
    let first = tenant_series(&site, T0 + 2 * HOUR, T0 + 3 * HOUR);
    exports_exactly(&exporter, &first, "first window");

    ok(&run(&policy, T0 + 4 * HOUR + 5 * MIN, None));
    let second = tenant_series(&site, T0 + 3 * HOUR, T0 + 4 * HOUR);
    assert_ne!(first, second);
    exports_exactly(&exporter, &second, "second window");
    only_the_file();

    // Two windows in one run ([4h, 6h], [6h, 8h]): the later replaced the
    // earlier, and the collector exports only it.
    ok(&run(&policy, T0 + 8 * HOUR + 5 * MIN, None));
    let last = tenant_series(&site, T0 + 6 * HOUR, T0 + 8 * HOUR);
    exports_exactly(&exporter, &last, "two windows in one run");
    assert_eq!(lastrun(dir.path()), T0 + 8 * HOUR);

    if cfg!(feature = "failpoints") {
        let next = tenant_series(&site, T0 + 8 * HOUR, T0 + 9 * HOUR);
        let now = T0 + 9 * HOUR + 5 * MIN;
        // Killed with the temporary written, not renamed: the file is the
        // previous window's, whole.
        let out = run(&policy, now, Some("file-temporary"));
        assert!(!out.status.success(), "the run must have been killed");
        exports_exactly(&exporter, &last, "killed before the rename");
        // Killed after the rename, before the spool noted it: the file is
        // the new window's; the next run delivers it again, unchanged.
        let out = run(&policy, now, Some("mid-delivery"));
        assert!(!out.status.success(), "the run must have been killed");
        exports_exactly(&exporter, &next, "killed after the rename");
        ok(&run(&policy, now, None));
        exports_exactly(&exporter, &next, "after the crashes");
        assert_eq!(lastrun(dir.path()), T0 + 9 * HOUR);
        only_the_file();
        assert!(
            std::fs::read_dir(textfile.join(".wattson-tmp"))
                .unwrap()
                .next()
                .is_none(),
            "the killed run's temporary is removed"
        );
    }
}

/// A format that gives several payloads per window (`apel-energy` in
/// batches of 2) into a named file keeps only the last of each window's:
/// the run delivers, and warns of it.
#[test]
fn a_named_file_warns_of_a_window_of_several_payloads() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let policy = delivery_policy(
        dir.path(),
        &site.prometheus.url,
        &format!(
            "\n[[outputs]]\nformat = \"apel-energy\"\nparams = {{ batch_size = 2 }}\n\
             [outputs.messenger]\ntype = \"file\"\ndirectory = \"{}\"\nname = \"apel.jsonl\"\n",
            files.display()
        ),
    );
    let stderr = ok(&run(&policy, T0 + 3 * HOUR + 5 * MIN, None));
    // The window [2h, 3h]: the VMs C1 gives a record, in batches of 2.
    let records = expected(&site)
        .iter()
        .filter(|(_, start)| *start == T0 + 2 * HOUR)
        .count();
    let payloads = records.div_ceil(2);
    assert!(payloads > 1, "{records} records");
    assert!(
        stderr.contains(&format!(
            "output `apel-energy` gave {payloads} payloads for this window"
        )) && stderr.contains("replaces `apel.jsonl` with each, keeping only the last"),
        "{stderr}"
    );
    // One cASO ssm_message() JSON object per line: the last batch's.
    let last = std::fs::read_to_string(files.join("apel.jsonl")).unwrap();
    for line in last.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert_eq!(last.lines().count(), records - 2 * (payloads - 1), "{last}");
}
