//! The same extract against Debian's VictoriaMetrics (single node, the same
//! data loaded through its import API) gives the same joules as against
//! Prometheus, both to 1e-9 of C1 computed here from the samples.
//!
//! VictoriaMetrics stores values as decimals of about 12 significant digits,
//! so the test's counters are whole millijoules (as exporters' values are).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::data::{HOUR, METRIC, MIN, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, free_port, openmetrics, ureq_get};
use super::wattson::{BASIC_POLICY, extract, joules_by_vm, write_policy};

/// A VictoriaMetrics single node on a free 127.0.0.1 port, killed on drop.
struct VictoriaMetrics {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl VictoriaMetrics {
    /// Starts it with Prometheus-like lookback, imports `text` (Prometheus
    /// exposition with timestamps) and flushes it so it is queryable at once.
    fn start(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .args([
                "-retentionPeriod=100y",
                // Exactly Prometheus' 5-minute lookback; no result cache, no hidden recent 30 s.
                "-search.maxStalenessInterval=5m",
                "-search.disableCache",
                "-search.latencyOffset=0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics (apt install victoria-metrics)");
        let vm = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq_get(&format!("{}/-/ready", vm.url)).is_none_or(|(code, _)| code != 200) {
            assert!(Instant::now() < deadline, "victoria-metrics not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let code = post(&format!("{}/api/v1/import/prometheus", vm.url), text);
        assert_eq!(code, 204, "import");
        let flushed = ureq_get(&format!("{}/internal/force_flush", vm.url));
        assert_eq!(flushed.map(|(c, _)| c), Some(200), "flush");
        vm
    }
}

/// A blocking HTTP/1.0 POST; returns the status code.
fn post(url: &str, body: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap()
}

#[test]
fn victoria_metrics_gives_the_same_joules_as_prometheus() {
    let shapes = [
        VmShape {
            uuid: "vm-steady",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 6 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 1.0e6,
            seed: 11,
        },
        VmShape {
            uuid: "vm-reset",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 6 * HOUR,
            resets_at: &[T0 + 2 * HOUR + 31 * MIN],
            gaps: &[],
            initial: 5.0e5,
            seed: 12,
        },
        VmShape {
            uuid: "vm-starts",
            project: "p2",
            from_ms: T0 + 2 * HOUR + 5 * MIN,
            to_ms: T0 + 6 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 12_345.678,
            seed: 13,
        },
        VmShape {
            uuid: "vm-stops",
            project: "p2",
            from_ms: T0,
            to_ms: T0 + 2 * HOUR + 50 * MIN,
            resets_at: &[],
            gaps: &[],
            initial: 2.0e5,
            seed: 14,
        },
        VmShape {
            uuid: "vm-gap-across-start",
            project: "p3",
            from_ms: T0,
            to_ms: T0 + 6 * HOUR,
            resets_at: &[],
            gaps: &[(T0 + 2 * HOUR - 8 * MIN, T0 + 2 * HOUR + 9 * MIN)],
            initial: 9.0e5,
            seed: 15,
        },
        VmShape {
            uuid: "vm-absent",
            project: "p3",
            from_ms: T0,
            to_ms: T0 + HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 7.0e4,
            seed: 16,
        },
    ];
    let series: Vec<_> = shapes
        .iter()
        .map(|shape| {
            let mut s = counter_series(shape);
            for (_, v) in &mut s.samples {
                *v = (*v * 1000.0).round() / 1000.0;
            }
            s
        })
        .collect();
    let text = openmetrics(&[(METRIC, &series)]);
    let prometheus = Prometheus::start(&text);
    let victoria = VictoriaMetrics::start(&text);

    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", BASIC_POLICY);
    let (start, end) = (T0 + 2 * HOUR, T0 + 3 * HOUR + 7 * MIN + 1_234);
    let from_prometheus = joules_by_vm(&extract(&policy, &prometheus.url, start, end));
    let run = super::wattson::command()
        .env("WATTSON_LOG", "info")
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &victoria.url])
        .args([
            "--from",
            &super::wattson::secs(start),
            "--to",
            &super::wattson::secs(end),
        ])
        .output()
        .unwrap();
    // VictoriaMetrics has no remote-read API: one line says PromQL is used.
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr.matches("remote read not available").count(),
        1,
        "{stderr}"
    );
    let from_victoria = joules_by_vm(&run);

    for (shape, s) in shapes.iter().zip(&series) {
        let want = c1(&s.samples, start, end);
        for (store, got) in [
            ("Prometheus", &from_prometheus),
            ("VictoriaMetrics", &from_victoria),
        ] {
            match (want, got.get(shape.uuid)) {
                (Some(want), Some(&got)) => assert!(
                    rel_err(want, got) <= 1e-9,
                    "{store} {}: wattson {got} J, C1 {want} J",
                    shape.uuid
                ),
                (None, None) => {}
                (want, got) => panic!("{store} {}: C1 {want:?}, wattson {got:?}", shape.uuid),
            }
        }
    }
    assert_eq!(from_victoria.len(), shapes.len() - 1, "{from_victoria:?}");
}
