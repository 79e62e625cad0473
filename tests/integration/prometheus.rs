//! A real Prometheus for tests: OpenMetrics written by the test, backfilled
//! with `promtool tsdb create-blocks-from openmetrics`, served on a free
//! 127.0.0.1 port, killed by PID on drop.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One series to backfill: labels and samples `(t_ms, value)`, ascending in time.
#[derive(Clone, Debug)]
pub struct TestSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// A running Prometheus with backfilled data.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// OpenMetrics text for counter families: `families` = (family name, series).
pub fn openmetrics(families: &[(&str, &[TestSeries])]) -> String {
    openmetrics_with_gauges(families, &[])
}

/// OpenMetrics text for counter and gauge families.
pub fn openmetrics_with_gauges(
    counters: &[(&str, &[TestSeries])],
    gauges: &[(&str, &[TestSeries])],
) -> String {
    let mut out = String::new();
    let families = counters
        .iter()
        .map(|f| (f, "counter", "_total"))
        .chain(gauges.iter().map(|f| (f, "gauge", "")));
    for ((family, series), kind, suffix) in families {
        writeln!(out, "# TYPE {family} {kind}").unwrap();
        for s in *series {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            let labels = labels.join(",");
            for (t_ms, value) in &s.samples {
                writeln!(
                    out,
                    "{family}{suffix}{{{labels}}} {value:?} {}.{:03}",
                    t_ms.div_euclid(1000),
                    t_ms.rem_euclid(1000)
                )
                .unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

impl Prometheus {
    /// Backfills `openmetrics` and starts Prometheus on it.
    pub fn start(openmetrics: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let om = dir.path().join("data.om");
        std::fs::write(&om, openmetrics).expect("write openmetrics");
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&om)
            .arg(&data)
            .output()
            .expect("promtool (apt install prometheus)");
        assert!(
            out.status.success(),
            "promtool failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
        )
        .unwrap();
        Self::serve(dir, &config, &data)
    }

    /// Starts an empty Prometheus scraping `targets` every `interval` (e.g. `"1s"`);
    /// returns once every target has been scraped (Prometheus applies new
    /// targets after up to 5 s).
    pub fn scraping(targets: &[&str], interval: &str) -> Self {
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let prometheus = Self::with_scrape_configs(
            interval,
            &format!(
                "  - job_name: node\n    static_configs:\n      - targets: [{}]\n",
                quoted.join(", ")
            ),
        );
        prometheus.wait_for("up == 1", targets.len());
        prometheus
    }

    /// The `prometheus.yml` of `global: scrape_interval` and these
    /// `scrape_configs` entries.
    pub fn config(interval: &str, scrape_configs: &str) -> String {
        format!("global:\n  scrape_interval: {interval}\nscrape_configs:\n{scrape_configs}")
    }

    /// Starts an empty Prometheus with [`Prometheus::config`].
    pub fn with_scrape_configs(interval: &str, scrape_configs: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, Self::config(interval, scrape_configs)).unwrap();
        Self::serve(dir, &config, &data)
    }

    /// Waits (60 s at most) until `query` gives `series` series now.
    pub fn wait_for(&self, query: &str, series: usize) -> Vec<(serde_json::Value, f64)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let found = self.query(query, now);
            if found.len() == series {
                return found;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "prometheus at {}: `{query}` did not give {series} series within 60 s",
            self.url
        );
    }

    fn serve(dir: tempfile::TempDir, config: &Path, data: &Path) -> Self {
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (apt install prometheus)");
        let url = format!("http://127.0.0.1:{port}");
        let mut prometheus = Self {
            child,
            url,
            _dir: dir,
        };
        prometheus.wait_ready();
        prometheus
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = format!("{}/-/ready", self.url);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited early: {status}");
            }
            if ureq_get(&ready).is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus at {} not ready after 60 s", self.url);
    }

    /// Runs an instant PromQL query; returns `(labels, value)` per series.
    pub fn query(&self, query: &str, time_ms: i64) -> Vec<(serde_json::Value, f64)> {
        self.results(query, time_ms)
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// The `data.result` of an instant query at `time_ms`.
    fn results(&self, query: &str, time_ms: i64) -> Vec<serde_json::Value> {
        let url = format!(
            "{}/api/v1/query?query={}&time={}.{:03}",
            self.url,
            urlencode(query),
            time_ms.div_euclid(1000),
            time_ms.rem_euclid(1000)
        );
        let (code, body) = ureq_get(&url).expect("query Prometheus");
        assert_eq!(code, 200, "{body}");
        let mut json: serde_json::Value = serde_json::from_str(&body).unwrap();
        match json["data"]["result"].take() {
            serde_json::Value::Array(results) => results,
            other => panic!("not a result list: {other}"),
        }
    }

    /// The raw samples of `selector` in the `range_secs` before `time_ms`,
    /// per value of `key` (a range-vector query): [(t ms, value)].
    pub fn raw_samples(
        &self,
        selector: &str,
        key: &str,
        range_secs: u64,
        time_ms: i64,
    ) -> std::collections::BTreeMap<String, Vec<(i64, f64)>> {
        self.results(&format!("{selector}[{range_secs}s]"), time_ms)
            .iter()
            .map(|r| {
                let samples = r["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        (
                            (v[0].as_f64().unwrap() * 1000.0).round() as i64,
                            v[1].as_str().unwrap().parse().unwrap(),
                        )
                    })
                    .collect();
                (r["metric"][key].as_str().unwrap().to_owned(), samples)
            })
            .collect()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal blocking HTTP GET over std (no client crate needed in tests).
pub fn ureq_get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}
