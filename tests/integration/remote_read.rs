//! Remote read (`/api/v1/read`, streamed XOR chunks) against a real
//! Prometheus: the raw samples it decodes are exactly the ones a PromQL range
//! query returns, for series with resets, gaps, starts and stops, and values
//! of every shape (integers, fractions, repeats, huge and tiny numbers);
//! an endpoint without the API says so; a corrupt stream is an error.

use super::data::{HOUR, MIN, T0, VmShape, counter_series};
use super::http::serve;
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use wattson::sources::prometheus::{Client, PrometheusConfig, RemoteReadError, read_samples};

const METRIC: &str = "libvirt_domain_info_energy_consumption_joules";

fn client(url: &str) -> Client {
    let mut config = PrometheusConfig::with_url(url);
    config.retries = 0;
    Client::new(config).unwrap()
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn remote_read_gives_exactly_the_raw_samples_promql_gives() {
    let shapes = [
        VmShape {
            uuid: "vm-reset",
            project: "p",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[T0 + HOUR + 7 * MIN, T0 + 2 * HOUR + 1],
            gaps: &[(T0 + 90 * MIN, T0 + 100 * MIN)],
            initial: 1e6,
            seed: 1,
        },
        VmShape {
            uuid: "vm-late",
            project: "p",
            from_ms: T0 + 80 * MIN,
            to_ms: T0 + 150 * MIN,
            resets_at: &[],
            gaps: &[],
            initial: 0.0,
            seed: 2,
        },
    ];
    let counters: Vec<TestSeries> = shapes.iter().map(counter_series).collect();
    // A gauge with awkward values: repeats, integers, signs, extremes.
    let values = [
        0.0,
        0.0,
        1.0,
        -1.0,
        1e300,
        5e-324,
        0.1,
        0.1,
        123456789.0,
        f64::MAX,
        2.5,
    ];
    let gauge = TestSeries {
        labels: vec![("host".into(), "cmp-01".into())],
        samples: (0..600)
            .map(|i| {
                (
                    T0 + i * 17_000 + (i % 7) * 3,
                    values[i as usize % values.len()],
                )
            })
            .collect(),
    };
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[(METRIC, &counters)],
        &[("odd_gauge", std::slice::from_ref(&gauge))],
    ));
    let client = client(&prometheus.url);
    let tokio = tokio();
    let (from, to) = (T0 + 30 * MIN, T0 + 170 * MIN);
    let read = |selector: &str| {
        tokio
            .block_on(read_samples(&client, selector, from, to))
            .unwrap()
    };

    let got = read(&format!("{METRIC}_total"));
    let want = prometheus.raw_samples(&format!("{METRIC}_total"), "uuid", 140 * 60, to);
    assert_eq!(got.len(), want.len());
    for series in &got {
        let uuid = series.labels.get("uuid").unwrap();
        let samples: Vec<(i64, f64)> = series.samples.iter().map(|s| (s.t_ms, s.value)).collect();
        // PromQL's range is (to - 140 min, to]: the first instant is left out.
        let mine: Vec<(i64, f64)> = samples.into_iter().filter(|s| s.0 > from).collect();
        assert_eq!(mine, want[uuid], "{uuid}");
    }
    // Matchers narrow the read.
    let got = read(&format!("{METRIC}_total{{uuid=~\"vm-l.*\"}}"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels.get("uuid"), Some("vm-late"));

    let got = read("odd_gauge");
    let want = prometheus.raw_samples("odd_gauge", "host", 140 * 60, to);
    let mine: Vec<(i64, f64)> = got[0]
        .samples
        .iter()
        .filter(|s| s.t_ms > from)
        .map(|s| (s.t_ms, s.value))
        .collect();
    assert_eq!(mine.len(), want["cmp-01"].len());
    for (a, b) in mine.iter().zip(&want["cmp-01"]) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1.to_bits(), b.1.to_bits(), "{a:?} vs {b:?}");
    }
}

/// A server answering every request with `status`, `content_type` and `body`.
fn stand_in(status: u16, content_type: &'static str, body: Vec<u8>) -> String {
    serve(move |_| (status, content_type, body.clone()))
}

#[test]
fn no_api_and_corrupt_streams_are_named_never_samples() {
    let tokio = tokio();
    let read = |url: &str| tokio.block_on(read_samples(&client(url), "m_total", 0, 1000));
    let url = stand_in(404, "text/plain", b"404 page not found".to_vec());
    let e = read(&url).unwrap_err();
    assert!(matches!(e, RemoteReadError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("HTTP 404"), "{e}");

    // A frame whose CRC does not match, and a truncated one.
    let frame = b"\x0a\x00";
    let mut body = vec![frame.len() as u8];
    body.extend((crc32c_of(frame) ^ 1).to_be_bytes());
    body.extend(frame);
    let streamed = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
    let e = read(&stand_in(200, streamed, body))
        .unwrap_err()
        .to_string();
    assert!(e.contains("CRC32-C") && e.contains("m_total"), "{e}");
    let e = read(&stand_in(200, streamed, vec![20, 0, 0, 0, 0, 1, 2]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    // Something else than a chunk stream (an old or foreign store).
    let e = read(&stand_in(200, "application/x-protobuf", vec![1, 2, 3])).unwrap_err();
    assert!(matches!(e, RemoteReadError::Unsupported { .. }), "{e}");
}

/// CRC32-C (Castagnoli), bit by bit: the test's own, not the crate's.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn both_read_paths_give_the_same_joules() {
    use super::delivery::{delivery_policy, site};
    use super::wattson::{command, joules_by_vm_and_window, secs};
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let policy = delivery_policy(dir.path(), &site.prometheus.url, "");
    // Windows with resets, VMs that start and stop, edges between scrapes.
    let (from, to) = (T0 + 2 * HOUR + 7 * MIN, T0 + 8 * HOUR + 31 * MIN);
    let run = |read: &str| {
        let out = command()
            .args([
                "--log",
                "debug",
                "extract",
                "--dry-run",
                "--format",
                "jsonl",
                "--policy",
            ])
            .arg(&policy)
            .args(["--from", &secs(from), "--to", &secs(to)])
            .args(["--set", &format!("prometheus.read=\"{read}\"")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (joules_by_vm_and_window(&out), stderr)
    };
    let (promql, promql_log) = run("promql");
    let (remote, remote_log) = run("remote-read");
    assert!(!promql_log.contains("read by remote read"), "{promql_log}");
    assert!(remote_log.contains("read by remote read"), "{remote_log}");
    assert_eq!(promql.len(), remote.len());
    assert!(promql.len() >= 15, "{promql:?}");
    for (a, b) in promql.iter().zip(&remote) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1));
        let rel = (a.2 - b.2).abs() / a.2.abs().max(1e-300);
        assert!(rel <= 1e-12, "{a:?} vs {b:?}");
    }
}

/// A proxy in front of `prometheus` that answers 404 on `/api/v1/read` and
/// forwards every query.
fn without_remote_read(prometheus: &str) -> String {
    let upstream = prometheus.to_owned();
    let client = reqwest::blocking::Client::new();
    serve(move |request| {
        if request.target.starts_with("/api/v1/read") {
            return (404, "text/plain", b"404 page not found".to_vec());
        }
        let answer = client
            .post(format!("{upstream}{}", request.target))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(request.body)
            .send();
        match answer {
            Ok(r) => (
                r.status().as_u16(),
                "application/json",
                r.bytes().unwrap_or_default().to_vec(),
            ),
            Err(_) => (502, "text/plain", Vec::new()),
        }
    })
}

#[test]
fn an_endpoint_without_remote_read_gives_the_promql_results_with_one_line() {
    use super::delivery::{delivery_policy, site};
    use super::wattson::{command, joules_by_vm_and_window, secs};
    let site = site();
    let proxy = without_remote_read(&site.prometheus.url);
    let dir = tempfile::tempdir().unwrap();
    let policy = delivery_policy(dir.path(), &proxy, "");
    let (from, to) = (T0 + 2 * HOUR, T0 + 5 * HOUR);
    let run = |url: &str, read: &str| {
        command()
            .env("WATTSON_LOG", "info")
            .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
            .arg(&policy)
            .args([
                "--prometheus",
                url,
                "--from",
                &secs(from),
                "--to",
                &secs(to),
            ])
            .args(["--set", &format!("prometheus.read=\"{read}\"")])
            .output()
            .unwrap()
    };
    let through_proxy = run(&proxy, "auto");
    let stderr = String::from_utf8_lossy(&through_proxy.stderr);
    assert_eq!(
        stderr.matches("remote read not available").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    let direct = joules_by_vm_and_window(&run(&site.prometheus.url, "promql"));
    assert_eq!(joules_by_vm_and_window(&through_proxy), direct);
    assert!(!direct.is_empty());
    // `read = "remote-read"` there is an error that says what to set.
    let forced = run(&proxy, "remote-read");
    assert_eq!(forced.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(
        stderr.contains("no remote-read API") && stderr.contains("read = \"auto\""),
        "{stderr}"
    );
}
