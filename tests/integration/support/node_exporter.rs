//! node_exporter (Debian's `prometheus-node-exporter`) with only its
//! textfile collector, as a test's reader of `*.prom` files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::require_tool;
use crate::prometheus::{free_port, ureq_get};

/// One sample of a scrape: name, labels (empty values dropped, as
/// Prometheus does), value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// node_exporter with only its textfile collector, reading `dir`, on a free
/// 127.0.0.1 port; killed by PID on drop.
pub struct NodeExporter {
    child: Child,
    url: String,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeExporter {
    /// None when it is not installed (the test is skipped; under `CI` it fails).
    pub fn start(dir: &Path) -> Option<Self> {
        const TOOL: &str = "prometheus-node-exporter";
        if !require_tool(
            TOOL,
            "apt install prometheus-node-exporter (scripts/setup.sh)",
        ) {
            return None;
        }
        let port = free_port();
        let child = Command::new(TOOL)
            .args(["--collector.disable-defaults", "--collector.textfile"])
            .arg(format!("--collector.textfile.directory={}", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter");
        let exporter = Self {
            child,
            url: format!("http://127.0.0.1:{port}/metrics"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq_get(&exporter.url).is_none_or(|(code, _)| code != 200) {
            assert!(
                Instant::now() < deadline,
                "node_exporter does not answer on {}",
                exporter.url
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(exporter)
    }

    /// The text of one scrape of `/metrics`.
    pub fn body(&self) -> String {
        let (code, body) = ureq_get(&self.url).expect("scrape node_exporter");
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Every sample of one scrape of `/metrics`.
    pub fn scrape(&self) -> Vec<Sample> {
        self.body()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("cannot parse {l:?}")))
            .collect()
    }
}

/// `name{k="v",…} value` (no timestamp: node_exporter writes none).
fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_owned(), BTreeMap::new(), value));
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest.strip_suffix('}')?;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut text = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => text.push('\n'),
                    c => text.push(c),
                },
                (_, c) => text.push(c),
            }
        };
        if !text.is_empty() {
            labels.insert(key.to_owned(), text);
        }
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some((name.to_owned(), labels, value))
}
