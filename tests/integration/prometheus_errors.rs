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

/// Protobuf, as much of it as a remote-read answer needs.
mod pb {
    pub fn uvarint(mut x: u64, out: &mut Vec<u8>) {
        while x >= 0x80 {
            out.push(x as u8 | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
    }

    /// A length-delimited field.
    pub fn bytes(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        uvarint(field << 3 | 2, out);
        uvarint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    /// A varint field.
    pub fn int(field: u64, value: u64, out: &mut Vec<u8>) {
        uvarint(field << 3, out);
        uvarint(value, out);
    }

    /// An XOR chunk of one sample: its count, the zig-zag varint time and
    /// the value's 64 bits (a one-sample chunk is byte-aligned).
    pub fn one_sample_chunk(t_ms: i64, value: f64) -> Vec<u8> {
        let mut data = vec![0, 1];
        uvarint(((t_ms << 1) ^ (t_ms >> 63)) as u64, &mut data);
        data.extend(value.to_bits().to_be_bytes());
        let mut chunk = Vec::new();
        int(1, t_ms as u64, &mut chunk);
        int(2, t_ms as u64, &mut chunk);
        int(3, 1, &mut chunk);
        bytes(4, &data, &mut chunk);
        chunk
    }

    /// One frame of a `ChunkedReadResponse` holding one series with these
    /// labels and chunks: uvarint length, CRC32-C, the message.
    pub fn frame(labels: &[(&str, &str)], chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut series = Vec::new();
        for (name, value) in labels {
            let mut label = Vec::new();
            bytes(1, name.as_bytes(), &mut label);
            bytes(2, value.as_bytes(), &mut label);
            bytes(1, &label, &mut series);
        }
        for chunk in chunks {
            bytes(2, chunk, &mut series);
        }
        let mut message = Vec::new();
        bytes(1, &series, &mut message);
        let mut out = Vec::new();
        uvarint(message.len() as u64, &mut out);
        out.extend(crc32c(&message).to_be_bytes());
        out.extend(message);
        out
    }

    /// CRC32-C (Castagnoli), table-driven.
    fn crc32c(data: &[u8]) -> u32 {
        let table: Vec<u32> = (0..256u32)
            .map(|mut c| {
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        (c >> 1) ^ 0x82F6_3B78
                    } else {
                        c >> 1
                    };
                }
                c
            })
            .collect();
        !data.iter().fold(!0u32, |crc, &b| {
            table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
        })
    }
}

const STREAMED: &str = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A stand-in answering queries with `json` and remote reads with `frames`.
fn stand_in(json: String, frames: Vec<u8>) -> String {
    super::http::serve(move |request| {
        if request.target.starts_with("/api/v1/read") {
            (200, STREAMED, frames.clone())
        } else {
            (200, "application/json", json.clone().into_bytes())
        }
    })
}

/// A series with a label of 1 MiB (a blob an exporter put in a label) is
/// refused on both read paths, naming the label and `max_label_kib`, before
/// the label is held; one of 60 KiB is read as any other.
#[test]
fn a_label_of_a_megabyte_is_refused_naming_it() {
    let tokio = tokio();
    for (size, refused) in [(1 << 20, true), (60 << 10, false)] {
        let uuid = "u".repeat(size);
        let json = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"instance":"cmp-01","uuid":"{uuid}"}},"value":[1748736000,"1"]}}]}}}}"#
        );
        let frames = pb::frame(
            &[
                ("__name__", "m_total"),
                ("instance", "cmp-01"),
                ("uuid", &uuid),
            ],
            &[pb::one_sample_chunk(500, 1.0)],
        );
        let url = stand_in(json, frames);
        let client = client(&url);
        let promql = tokio.block_on(client.query("m_total", 1_748_736_000_000));
        let remote = tokio.block_on(wattson::sources::prometheus::read_samples(
            &client, "m_total", 0, 1000,
        ));
        if !refused {
            assert_eq!(
                promql.unwrap()[0].labels.get("uuid").map(str::len),
                Some(size)
            );
            assert_eq!(
                remote.unwrap()[0].labels.get("uuid").map(str::len),
                Some(size)
            );
            continue;
        }
        for e in [
            promql.unwrap_err().to_string(),
            remote.unwrap_err().to_string(),
        ] {
            assert!(e.contains("max_label_kib (64 KiB)"), "{e}");
            assert!(e.contains("`uuid` = \"uuuuuuuu"), "{e}");
            assert!(e.contains(&url) && e.contains("m_total"), "{e}");
            assert!(e.len() < 1000, "the label is not printed whole: {e}");
        }
    }
}

/// An answer that decodes to more than `max_decoded_mib` (a proxy's
/// endless matrix, a remote-read series whose chunks never end) stops
/// there, naming the setting, though it is far below `max_response_mib`.
#[test]
fn an_answer_decoding_past_max_decoded_mib_stops_there() {
    let points: Vec<String> = (0..100_000)
        .map(|i| format!("[{},\"1\"]", 1_748_736_000 + i))
        .collect();
    let json = format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"uuid":"a"}},"values":[{}]}}]}}}}"#,
        points.join(",")
    );
    let chunks: Vec<Vec<u8>> = (0..100_000)
        .map(|i| pb::one_sample_chunk(i * 10, 1.0))
        .collect();
    let frames = pb::frame(&[("__name__", "m_total"), ("uuid", "a")], &chunks);
    let url = stand_in(json, frames);
    let mut config = PrometheusConfig::with_url(&url);
    config.retries = 0;
    config.max_decoded_mib = 1;
    let client = Client::new(config).unwrap();
    let tokio = tokio();
    let promql = tokio.block_on(client.query("m_total[1d]", 1_748_736_000_000));
    let remote = tokio.block_on(wattson::sources::prometheus::read_samples(
        &client, "m_total", 0, 2_000_000,
    ));
    for e in [
        promql.unwrap_err().to_string(),
        remote.unwrap_err().to_string(),
    ] {
        assert!(e.contains("max_decoded_mib (1 MiB)"), "{e}");
        assert!(e.contains("m_total"), "{e}");
    }
    // The same answers within the default bounds are read whole.
    let client = self::client(&url);
    let series = tokio.block_on(client.query("m_total[1d]", 1_748_736_000_000));
    assert_eq!(series.unwrap()[0].samples.len(), 100_000);
}

/// Remote read from a store (or a proxy) that answers a series' samples
/// out of time order and repeated: they are sorted, exact repeats dropped,
/// with one WARN, and the joules are C1 of the sorted samples
/// (`docs/ENERGY.md#counters`), as PromQL gives; two different values at
/// one instant are refused, naming the series.
#[test]
fn samples_out_of_order_in_remote_read_are_sorted_and_conflicts_refused() {
    use super::data::{HOUR, MIN, T0, c1, rel_err};
    use super::prometheus::{Prometheus, TestSeries, openmetrics};
    const METRIC: &str = "libvirt_domain_info_energy_consumption_joules";
    // A counter with a reset, 15 s apart, a little jitter.
    let samples: Vec<(i64, f64)> = (0..240)
        .map(|k| {
            let t = T0 + 3_000 + k * 15_000 + (k % 3) * 7;
            let v = if k < 130 {
                500.0 + 41.5 * k as f64
            } else {
                3.25 * (k - 129) as f64
            };
            (t, v)
        })
        .collect();
    let labels = [("instance", "cmp-01:9177"), ("uuid", "u-shuffled")];
    let series = TestSeries {
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        samples: samples.clone(),
    };
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &[series])]));
    // Every sample a chunk of its own, in a scrambled order, a third of
    // them twice.
    let scrambled = |conflict: bool| {
        let mut order: Vec<usize> = (0..samples.len())
            .map(|i| (i * 97) % samples.len())
            .collect();
        order.extend((0..samples.len()).step_by(3));
        let mut chunks: Vec<Vec<u8>> = order
            .iter()
            .map(|&i| pb::one_sample_chunk(samples[i].0, samples[i].1))
            .collect();
        if conflict {
            chunks.push(pb::one_sample_chunk(samples[77].0, samples[77].1 + 1.0));
        }
        let name = format!("{METRIC}_total");
        let mut all = vec![("__name__", name.as_str())];
        all.extend(labels);
        pb::frame(&all, &chunks)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = super::wattson::write_policy(dir.path(), "site.toml", super::wattson::BASIC_POLICY);
    let (from, to) = (T0 + 5 * MIN, T0 + HOUR - 5 * MIN);
    let extract = |url: &str, read: &str| {
        super::wattson::extract_with(
            &path,
            url,
            from,
            to,
            &[&format!("prometheus.read=\"{read}\"")],
        )
    };
    let promql = super::wattson::jsonl_records(&extract(&prometheus.url, "promql"));
    let want = c1(&samples, from, to).unwrap();
    assert!(rel_err(promql[0]["energy_joules"].as_f64().unwrap(), want) < 1e-12);
    for conflict in [false, true] {
        let frames = scrambled(conflict);
        let upstream = prometheus.url.clone();
        let http = reqwest::blocking::Client::new();
        let proxy = super::http::serve(move |request| {
            if request.target.starts_with("/api/v1/read") {
                // This series to the read of its metric, none to others.
                let asked = snap::raw::Decoder::new()
                    .decompress_vec(&request.body)
                    .unwrap_or_default();
                let ours = asked.windows(METRIC.len()).any(|w| w == METRIC.as_bytes());
                return (
                    200,
                    STREAMED,
                    if ours { frames.clone() } else { Vec::new() },
                );
            }
            let answer = http
                .post(format!("{upstream}{}", request.target))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(request.body)
                .send()
                .and_then(|r| r.bytes());
            match answer {
                Ok(body) => (200, "application/json", body.to_vec()),
                Err(_) => (502, "text/plain", Vec::new()),
            }
        });
        let out = extract(&proxy, "remote-read");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if conflict {
            assert_eq!(out.status.code(), Some(3), "{stderr}");
            assert!(
                stderr.contains("two different values of series")
                    && stderr.contains("u-shuffled")
                    && stderr.contains(&samples[77].0.to_string()),
                "{stderr}"
            );
            continue;
        }
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stderr.matches("out of time order").count(), 1, "{stderr}");
        let got = super::wattson::jsonl_records(&out)[0]["energy_joules"]
            .as_f64()
            .unwrap();
        assert!(
            rel_err(got, want) < 1e-12,
            "{got} J, C1 of the sorted samples {want} J"
        );
    }
}
