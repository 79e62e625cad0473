//! The `[prometheus]` table of a policy.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Client, PrometheusError};
use crate::config::{ConfigProblem, Validate};

/// Where and how to query Prometheus.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus:9090`.
    pub url: String,
    /// Per-request timeout, seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Prometheus' lookback delta (`--query.lookback-delta`), seconds: how far
    /// back an instant query looks for a sample.
    #[serde(default = "default_lookback_secs")]
    pub lookback_secs: u64,
    /// Label values per raw-fetch query when series need their samples.
    #[serde(default = "default_raw_batch")]
    pub raw_batch: usize,
    /// How far before a window's start to look for a counter's base sample when
    /// a series has none within the lookback (a scrape gap across the start),
    /// seconds. A series silent for longer counts as starting inside the window.
    #[serde(default = "default_base_search_secs")]
    pub base_search_secs: u64,
    /// Retries after a timeout, a refused connection or a 5xx answer (4xx and
    /// bad PromQL are not retried).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First retry delay, milliseconds; doubles with each retry.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Queries in flight at once for per-VM PromQL templates.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Environment variable holding a bearer token (never logged).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// File holding a bearer token (never logged).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic-auth user name (with `password_env` or `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the basic-auth password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the basic-auth password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How raw samples are read: `auto` (remote read where the endpoint
    /// answers it, else PromQL, decided once per run), `remote-read` or `promql`.
    #[serde(default)]
    pub read: ReadPath,
    /// The largest answer read from Prometheus, MiB: a larger one (a
    /// selector matching far more than meant, a proxy that never ends) is
    /// cut there and the window fails, saying so.
    #[serde(default = "default_max_response_mib")]
    pub max_response_mib: u64,
    /// The most series one query may answer: a selector matching more (a
    /// label forgotten, a metric of every process) fails its window,
    /// saying so.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// The most memory the answers being read at once may take decoded,
    /// MiB: their series' labels and samples (16 bytes each), a PromQL
    /// answer whole, a remote-read stream one series' samples at a time
    /// beside every series' labels. Answers decoding to more (a selector
    /// matching millions of series, a proxy's endless series) stop there and
    /// the window fails, saying so. A window of the 100,000-VM benchmark
    /// reads within 24 MiB, not 16 (`docs/RELIABILITY.md`).
    #[serde(default = "default_max_decoded_mib")]
    pub max_decoded_mib: u64,
    /// The longest label name or value read, KiB: an answer holding a
    /// longer one (a blob an exporter put in a label) fails its window,
    /// naming the label; no VM, host or meter is named that way.
    #[serde(default = "default_max_label_kib")]
    pub max_label_kib: u64,
}

/// `[prometheus] read`: how counters' samples are read.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ReadPath {
    /// Remote read, falling back to PromQL once (for the run) where the
    /// endpoint has no remote-read API (VictoriaMetrics, a proxy).
    #[default]
    Auto,
    /// Remote read only: an endpoint without it is an error.
    RemoteRead,
    /// PromQL queries only (the batched C1 recipe).
    Promql,
}

fn default_concurrency() -> usize {
    16
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    500
}

fn default_base_search_secs() -> u64 {
    86_400
}

fn default_timeout_secs() -> f64 {
    30.0
}

fn default_lookback_secs() -> u64 {
    300
}

fn default_max_series() -> usize {
    2_000_000
}

fn default_max_response_mib() -> u64 {
    1024
}

fn default_max_decoded_mib() -> u64 {
    128
}

fn default_max_label_kib() -> u64 {
    64
}

fn default_raw_batch() -> usize {
    200
}

impl PrometheusConfig {
    /// A configuration with every default, for `url`.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout_secs: default_timeout_secs(),
            lookback_secs: default_lookback_secs(),
            raw_batch: default_raw_batch(),
            base_search_secs: default_base_search_secs(),
            retries: default_retries(),
            concurrency: default_concurrency(),
            backoff_ms: default_backoff_ms(),
            bearer_token_env: None,
            bearer_token_file: None,
            username: None,
            password_env: None,
            password_file: None,
            read: ReadPath::default(),
            max_response_mib: default_max_response_mib(),
            max_series: default_max_series(),
            max_decoded_mib: default_max_decoded_mib(),
            max_label_kib: default_max_label_kib(),
        }
    }
}

impl Validate for PrometheusConfig {
    /// A timeout that is not a positive number, no room for an answer; a URL or credentials a
    /// client cannot be made of (the secret's file is read).
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            problems.push(ConfigProblem::new(
                "timeout_secs",
                "must be a positive number of seconds",
            ));
        }
        if self.max_series == 0 {
            problems.push(ConfigProblem::new("max_series", "must be at least 1"));
        }
        if self.max_decoded_mib == 0 {
            problems.push(ConfigProblem::new(
                "max_decoded_mib",
                "must be at least 1 (MiB)",
            ));
        }
        if self.max_label_kib == 0 {
            problems.push(ConfigProblem::new(
                "max_label_kib",
                "must be at least 1 (KiB)",
            ));
        }
        if self.max_response_mib == 0 {
            problems.push(ConfigProblem::new(
                "max_response_mib",
                "must be at least 1 (MiB)",
            ));
        }
        if let Err(e) = Client::new(self.clone()) {
            let key = match e {
                PrometheusError::BadUrl { .. } => "url",
                _ => "",
            };
            problems.push(ConfigProblem::new(key, e.to_string()));
        }
        problems
    }
}
