//! Network messengers against receivers on 127.0.0.1 started by the test: a
//! logstash-like TCP line receiver and an HTTP server answering as scripted.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::data::{HOUR, MIN, T0};
use super::delivery::{delivery_policy, expected, lastrun, run, site};
use super::http::{read_request, respond};
use super::prometheus::free_port;
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
