//! Prometheus failing in the ways it does in life, against a small HTTP server
//! on 127.0.0.1: 5xx (retried, then a clear error), a hang past the timeout
//! (retried), garbage (not retried), a PromQL error (not retried, Prometheus'
//! own text); and credentials sent but never shown.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wattson::sources::prometheus::{Client, PrometheusConfig};

use super::http::{read_request, respond};

/// How the fake Prometheus answers.
#[derive(Clone, Copy)]
enum Behaviour {
    ServerError,
    Hang,
    Garbage,
    PromqlError,
    Ok,
}

struct Fake {
    url: String,
    requests: Arc<AtomicUsize>,
    authorization: Arc<Mutex<Vec<String>>>,
}

fn fake(behaviour: Behaviour) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let authorization = Arc::new(Mutex::new(Vec::new()));
    let (count, auth) = (requests.clone(), authorization.clone());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let (count, auth) = (count.clone(), auth.clone());
            std::thread::spawn(move || {
                let request = read_request(&stream);
                if let Some(line) = request.authorization {
                    auth.lock().unwrap().push(line);
                }
                count.fetch_add(1, Ordering::SeqCst);
                let (status, body) = match behaviour {
                    Behaviour::ServerError => (503, "overloaded".to_owned()),
                    Behaviour::Hang => {
                        std::thread::sleep(Duration::from_secs(5));
                        (200, String::new())
                    }
                    Behaviour::Garbage => (200, "<html>proxy login</html>".to_owned()),
                    Behaviour::PromqlError => (
                        400,
                        r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected <op:*>"}"#.to_owned(),
                    ),
                    Behaviour::Ok => (
                        200,
                        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.to_owned(),
                    ),
                };
                respond(&mut stream, status, &body);
            });
        }
    });
    Fake {
        url,
        requests,
        authorization,
    }
}

fn client(url: &str) -> Client {
    let mut config = PrometheusConfig::with_url(url);
    config.retries = 2;
    config.backoff_ms = 20;
    config.timeout_secs = 0.5;
    Client::new(config).unwrap()
}

fn query(client: &Client) -> Result<usize, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.query("sum(up)", 1_748_736_000_000))
        .map(|series| series.len())
        .map_err(|e| e.to_string())
}

#[test]
fn server_errors_are_retried_then_reported() {
    let fake = fake(Behaviour::ServerError);
    let err = query(&client(&fake.url)).unwrap_err();
    assert_eq!(fake.requests.load(Ordering::SeqCst), 3, "1 try + 2 retries");
    assert!(err.contains(&fake.url) && err.contains("sum(up)"), "{err}");
    assert!(
        err.contains("HTTP 503") && err.contains("overloaded"),
        "{err}"
    );
    assert!(err.contains("gave up after 3 attempts"), "{err}");
}

#[test]
fn a_hang_past_the_timeout_is_retried_then_reported() {
    let fake = fake(Behaviour::Hang);
    let started = std::time::Instant::now();
    let err = query(&client(&fake.url)).unwrap_err();
    assert!(err.contains("timed out after 0.5 s"), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded by timeout × attempts"
    );
}

#[test]
fn garbage_is_a_clear_error_and_not_retried() {
    let fake = fake(Behaviour::Garbage);
    let err = query(&client(&fake.url)).unwrap_err();
    assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
    assert!(err.contains("not Prometheus API JSON"), "{err}");
    assert!(err.contains(&fake.url), "{err}");
}

#[test]
fn a_promql_error_shows_prometheus_text_and_is_not_retried() {
    let fake = fake(Behaviour::PromqlError);
    let err = query(&client(&fake.url)).unwrap_err();
    assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
    assert!(
        err.contains("bad_data: 1:5: parse error: unexpected <op:*>"),
        "{err}"
    );
    assert!(err.contains("HTTP 400"), "{err}");
}

#[test]
fn credentials_are_sent_and_redacted() {
    let fake = fake(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken-value\n").unwrap();
    let mut config = PrometheusConfig::with_url(&fake.url);
    config.bearer_token_file = Some(token);
    let client = Client::new(config).unwrap();
    assert_eq!(query(&client).unwrap(), 0);
    assert_eq!(
        fake.authorization.lock().unwrap()[0].to_ascii_lowercase(),
        "authorization: bearer t0ken-value"
    );
    assert!(
        !format!("{client:?}").contains("t0ken"),
        "Debug redacts the token"
    );

    let mut config = PrometheusConfig::with_url(&fake.url);
    config.bearer_token_env = Some("WATTSON_TEST_UNSET_TOKEN_VARIABLE".into());
    let err = Client::new(config).unwrap_err().to_string();
    assert!(
        err.contains("WATTSON_TEST_UNSET_TOKEN_VARIABLE is not set"),
        "{err}"
    );
}

/// Counters with a NaN and an infinite sample (an exporter's bug): neither
/// read path lets them into a record (the window used to fail on the
/// model's NaN joules). The joules are C1 of the finite samples, and the run
/// says that it left a sample out.
#[test]
fn nan_and_infinite_counter_samples_are_left_out_and_said() {
    use super::data::{HOUR, MIN, T0, c1, rel_err};
    use super::prometheus::{Prometheus, TestSeries, openmetrics};
    let mut samples: Vec<(i64, f64)> = (0..240)
        .map(|k| (T0 + 4_000 + k * 15_000, 100.0 + 30.0 * k as f64))
        .collect();
    samples[100].1 = f64::NAN;
    samples[150].1 = f64::INFINITY;
    let series = TestSeries {
        labels: vec![
            ("instance".into(), "cmp-01:9177".into()),
            ("uuid".into(), "u-nan".into()),
        ],
        samples: samples.clone(),
    };
    let prometheus = Prometheus::start(&openmetrics(&[(
        "libvirt_domain_info_energy_consumption_joules",
        &[series],
    )]));
    let finite: Vec<(i64, f64)> = samples.into_iter().filter(|s| s.1.is_finite()).collect();
    let (from, to) = (T0 + 5 * MIN, T0 + HOUR - 5 * MIN);
    let want = c1(&finite, from, to).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = super::wattson::write_policy(dir.path(), "site.toml", super::wattson::BASIC_POLICY);
    for read in ["remote-read", "promql"] {
        let out = super::wattson::extract_with(
            &path,
            &prometheus.url,
            from,
            to,
            &[&format!("prometheus.read=\"{read}\"")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{read}: {stderr}");
        let records = super::wattson::jsonl_records(&out);
        let got = records[0]["energy_joules"].as_f64().unwrap();
        assert!(
            rel_err(got, want) < 1e-9,
            "{read}: {got} J, C1 of the finite samples {want} J"
        );
        assert!(stderr.contains("not a finite number"), "{read}: {stderr}");
    }
}

/// An answer larger than `[prometheus] max_response_mib` (a selector that
/// matches far more than meant, a proxy that never ends) is cut there: the
/// window fails with exit 3 naming the setting, on both read paths; one with
/// more series than `max_series` likewise.
#[test]
fn an_answer_larger_than_max_response_mib_is_cut_and_named() {
    use std::io::{BufRead, BufReader};
    // A stand-in that answers every query with ~3 MiB of series, and remote
    // read with an endless stream.
    let server = r#"
import http.server, json, sys
body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"uuid": "u-%06d" % i, "instance": "cmp-01:9177"}, "value": [1748736000, "1"]}
    for i in range(40000)]}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self): self.answer()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/api/v1/read"):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"\x00" * 65536)
            except Exception:
                return
        self.answer()
    def answer(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", server])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let url = format!("http://127.0.0.1:{}", port.trim());
    let dir = tempfile::tempdir().unwrap();
    let path = super::wattson::write_policy(dir.path(), "site.toml", super::wattson::BASIC_POLICY);
    for read in ["promql", "remote-read"] {
        let out = super::wattson::extract_with(
            &path,
            &url,
            super::data::T0,
            super::data::T0 + super::data::HOUR,
            &[
                "prometheus.max_response_mib=1",
                &format!("prometheus.read=\"{read}\""),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{read}: {stderr}");
        assert!(
            stderr.contains("max_response_mib (1 MiB)") && stderr.contains("it was cut there"),
            "{read}: {stderr}"
        );
    }
    // 40,000 series where at most 1,000 may come: refused, named.
    let out = super::wattson::extract_with(
        &path,
        &url,
        super::data::T0,
        super::data::T0 + super::data::HOUR,
        &["prometheus.max_series=1000", "prometheus.read=\"promql\""],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("max_series (1000)"), "{stderr}");
    let _ = child.kill();
    let _ = child.wait();
}
