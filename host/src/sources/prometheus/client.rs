//! A small client for the Prometheus HTTP API (`/api/v1/query`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[doc(hidden)]
pub use super::answer::decode_answer;
use super::answer::{Bounds, Cut, Envelope, NOT_A_VECTOR, NoSeries, Pool, decode_bounded};
use super::config::PrometheusConfig;

mod errors;
use super::labels::{Labels, SeriesKey};
use crate::energy::counter::Sample;

/// A Prometheus query that failed; every variant names the endpoint and the query.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The URL in the policy or on the command line is not a URL.
    #[error("Prometheus URL `{url}` is not valid: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An answer larger than `[prometheus] max_response_mib`, cut there.
    #[error(
        "Prometheus at {url} answered more than [prometheus] max_response_mib ({limit_mib} MiB) \
         to `{query}`: it was cut there. Narrow the selector, or raise max_response_mib if the \
         site is really that large"
    )]
    TooLarge {
        /// The endpoint.
        url: String,
        /// The query.
        query: String,
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// An answer with more series than `[prometheus] max_series`.
    #[error(
        "Prometheus at {url} answered more than [prometheus] max_series ({limit}) series to \
         `{query}`. Narrow the selector, or raise max_series if the site is really that large"
    )]
    TooManySeries {
        /// The endpoint.
        url: String,
        /// The query.
        query: String,
        /// The limit.
        limit: usize,
    },
    /// An answer decoding to more than `[prometheus] max_decoded_mib`.
    #[error(
        "Prometheus at {url} answered `{query}` with more than [prometheus] max_decoded_mib \
         ({limit_mib} MiB) of series and samples once decoded: reading stopped there. Narrow \
         the selector or shorten the window, or raise max_decoded_mib if the site is really \
         that large"
    )]
    TooMuchDecoded {
        /// The endpoint.
        url: String,
        /// The query.
        query: String,
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// A label name or value longer than `[prometheus] max_label_kib`.
    #[error(
        "Prometheus at {url} answered `{query}` with a label longer than [prometheus] \
         max_label_kib ({limit_kib} KiB): {label}. No VM, host or meter is named that way: \
         drop the label where it is scraped (metric_relabel_configs), fix the exporter, or \
         raise max_label_kib"
    )]
    LabelTooLong {
        /// The endpoint.
        url: String,
        /// The query.
        query: String,
        /// The label, as far as it was read (`uuid = "aaaa…"`).
        label: String,
        /// The limit, KiB.
        limit_kib: u64,
    },
    /// A series with two different values at one instant.
    #[error(
        "Prometheus at {url} answered `{query}` with two different values of series {series} \
         at {t_ms} ms ({first} and {second}): no reading is taken from it, as the right one \
         cannot be told. The store or a proxy in front of it returns conflicting data \
         (overlapping blocks, two sources under one label set): fix that, or tell the series \
         apart with a label"
    )]
    Conflicting {
        /// The endpoint.
        url: String,
        /// The query.
        query: String,
        /// The series' labels.
        series: String,
        /// The instant, ms since the epoch.
        t_ms: i64,
        /// One value.
        first: f64,
        /// The other.
        second: f64,
    },
    /// Connection refused, timeout, DNS, TLS…
    #[error(
        "cannot reach Prometheus at {url} (query `{query}`): {reason}; check the URL and that Prometheus is up"
    )]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The PromQL that was sent.
        query: String,
        /// The transport error and its causes (connection refused, timeout…).
        reason: String,
    },
    /// Prometheus answered with an error status (bad PromQL, overload…).
    #[error("Prometheus at {url} rejected query `{query}` (HTTP {status}): {message}")]
    Rejected {
        /// The endpoint.
        url: String,
        /// The PromQL that was sent.
        query: String,
        /// HTTP status code.
        status: u16,
        /// Prometheus' own error text, or the body.
        message: String,
    },
    /// Retryable failures went on past the configured retries.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<PrometheusError>,
    },
    /// A token or password named in the policy cannot be read.
    #[error("Prometheus credentials for {url}: {reason}")]
    Credentials {
        /// The endpoint.
        url: String,
        /// What is missing.
        reason: String,
    },
    /// The body is not the JSON the API documents.
    #[error("Prometheus at {url} sent an unexpected answer to `{query}`: {reason}")]
    BadAnswer {
        /// The endpoint.
        url: String,
        /// The PromQL that was sent.
        query: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// One series of a query result: its labels (without `__name__`) and samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Labels, `__name__` removed so results of `m` and `f(m)` match.
    pub labels: Labels,
    /// Samples in ascending time (one for an instant vector).
    pub samples: Vec<Sample>,
}

/// A reusable connection to one Prometheus (one connection pool per run).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    query_url: String,
    auth: Auth,
    pub(crate) config: PrometheusConfig,
    /// The highest retry attempt already logged at WARN: a window's queries
    /// fail together when the endpoint is down, and one line per attempt says
    /// so (the others go to DEBUG). Back to 0 after a query succeeds.
    warned_attempt: Arc<AtomicU32>,
    /// Remote read turned out not to work here (`read = "auto"`): PromQL for
    /// the rest of the run.
    remote_read_off: Arc<std::sync::atomic::AtomicBool>,
    /// What the answers being decoded hold, together (`max_decoded_mib`).
    pool: Pool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.base)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Credentials, read once when the client is built.
#[derive(Clone)]
enum Auth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Bearer(_) => "bearer <redacted>",
            Self::Basic { .. } => "basic <redacted>",
        })
    }
}

/// Whether a failure may go away by itself: transport errors and 5xx.
fn is_retryable(e: &PrometheusError) -> bool {
    match e {
        PrometheusError::Unreachable { .. } => true,
        PrometheusError::Rejected { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

impl Client {
    /// A client for `config.url`; checks the URL's shape, does no I/O.
    pub fn new(config: PrometheusConfig) -> Result<Self, PrometheusError> {
        let parsed = reqwest::Url::parse(&config.url).map_err(|e| PrometheusError::BadUrl {
            url: config.url.clone(),
            reason: if config.url.contains("://") {
                e.to_string()
            } else {
                format!(
                    "{e}: give the scheme, e.g. http://{}",
                    config.url.trim_start_matches('/')
                )
            },
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PrometheusError::BadUrl {
                url: config.url.clone(),
                reason: "the scheme must be http or https".into(),
            });
        }
        let base = config.url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(crate::timeout::from_secs(config.timeout_secs))
            .build()
            .map_err(|e| PrometheusError::BadUrl {
                url: config.url.clone(),
                reason: e.to_string(),
            })?;
        let credentials = |reason| PrometheusError::Credentials {
            url: config.url.clone(),
            reason,
        };
        let token = crate::secrets::read(
            config.bearer_token_env.as_deref(),
            config.bearer_token_file.as_deref(),
        )
        .map_err(credentials)?;
        let password = crate::secrets::read(
            config.password_env.as_deref(),
            config.password_file.as_deref(),
        )
        .map_err(credentials)?;
        let auth = match (token, &config.username) {
            (Some(token), _) => Auth::Bearer(token),
            (None, Some(user)) => Auth::Basic {
                user: user.clone(),
                password: password.unwrap_or_default(),
            },
            (None, None) => Auth::None,
        };
        Ok(Self {
            http,
            query_url: format!("{base}/api/v1/query"),
            base,
            auth,
            config,
            warned_attempt: Arc::new(AtomicU32::new(0)),
            remote_read_off: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            pool: Pool::default(),
        })
    }

    /// The endpoint this client talks to.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Runs an instant query at `time_ms`; returns every series of the result
    /// (a vector, or a matrix for range selectors).
    ///
    /// Timeouts, refused connections and 5xx answers are retried `retries`
    /// times with exponential backoff; 4xx answers (bad PromQL) and answers
    /// that are not the API's JSON are not.
    pub async fn query(&self, query: &str, time_ms: i64) -> Result<Vec<Series>, PrometheusError> {
        let series = self.fetch::<Labels>(query, time_ms).await?;
        Ok(series
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect())
    }

    /// Runs an instant query whose answer is an instant vector; returns each
    /// series' identity (not its labels, which cost memory on 100,000 series)
    /// and value. Retries as [`Client::query`] does.
    pub async fn query_values(
        &self,
        query: &str,
        time_ms: i64,
    ) -> Result<Vec<(SeriesKey, f64)>, PrometheusError> {
        let series = self.fetch::<SeriesKey>(query, time_ms).await?;
        Ok(series
            .into_iter()
            .filter_map(|(key, samples)| Some((key, samples.first()?.value)))
            .collect())
    }

    /// The values of `label` on the series matching `selector` (every
    /// series when none), over all the data Prometheus holds
    /// (`/api/v1/label/<label>/values`); retried as queries are.
    pub async fn label_values(
        &self,
        label: &str,
        selector: Option<&str>,
    ) -> Result<Vec<String>, PrometheusError> {
        let url = format!("{}/api/v1/label/{label}/values", self.base);
        let what = format!("label values of {label}");
        self.retrying(&what, || async {
            let mut request = self.http.get(&url);
            if let Some(selector) = selector {
                request = request.query(&[("match[]", selector)]);
            }
            let response = self
                .authorize(request)
                .send()
                .await
                .map_err(|e| self.unreachable(&what, e))?;
            let status = response.status().as_u16();
            let cap = self.bounds().decoded;
            let (body, whole) = capped_body(response, cap)
                .await
                .map_err(|e| self.unreachable(&what, e))?;
            if !whole {
                return Err(self.cut(&what, Cut::Decoded));
            }
            #[derive(serde::Deserialize)]
            struct Answer {
                status: String,
                #[serde(default)]
                data: Vec<String>,
            }
            match serde_json::from_slice::<Answer>(&body) {
                Ok(answer) if answer.status == "success" => Ok(answer.data),
                _ => Err(PrometheusError::Rejected {
                    url: self.base.clone(),
                    query: what.clone(),
                    status,
                    message: String::from_utf8_lossy(&body).chars().take(300).collect(),
                }),
            }
        })
        .await
    }

    /// Whether `/api/v1/read` (remote read) answers: Prometheus refuses an
    /// empty request with 400, a store without the API with 404 or 405.
    pub async fn remote_read_answers(&self) -> bool {
        let request = self.http.post(format!("{}/api/v1/read", self.base));
        match self.authorize(request).send().await {
            Ok(r) => !matches!(r.status().as_u16(), 404 | 405 | 501) && r.status().as_u16() < 500,
            Err(_) => false,
        }
    }

    /// Whether raw samples are read by remote read (`read` is not `promql`,
    /// and `auto` has not fallen back).
    pub fn uses_remote_read(&self) -> bool {
        self.config.read != super::ReadPath::Promql && !self.remote_read_off.load(Ordering::Relaxed)
    }

    /// After remote read failed with `reason` (no API, a selector it cannot
    /// express): with `read = "auto"`, PromQL from now on (said once) and
    /// true; with `read = "remote-read"`, false (the failure stands).
    pub fn fall_back_to_promql(&self, reason: &str) -> bool {
        if self.config.read != super::ReadPath::Auto {
            return false;
        }
        if !self.remote_read_off.swap(true, Ordering::Relaxed) {
            tracing::info!(url = %self.base, "remote read not available ({reason}): reading with PromQL queries");
        }
        true
    }

    /// POSTs a snappy-compressed remote-read request to `/api/v1/read`.
    /// Transport errors and 5xx are retried as queries are; any other
    /// answer is returned (its body unread) for the caller to judge and stream.
    pub async fn remote_read(&self, body: Vec<u8>) -> Result<reqwest::Response, PrometheusError> {
        let url = format!("{}/api/v1/read", self.base);
        let what = "remote read";
        self.retrying(what, || async {
            let request = self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_ENCODING, "snappy")
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .header("X-Prometheus-Remote-Read-Version", "0.1.0")
                .body(body.clone());
            let response = self
                .authorize(request)
                .send()
                .await
                .map_err(|e| self.unreachable(what, e))?;
            let status = response.status().as_u16();
            if status < 500 {
                return Ok(response);
            }
            let (text, _) = capped_body(response, ERROR_BODY).await.unwrap_or_default();
            Err(PrometheusError::Rejected {
                url: self.base.clone(),
                query: what.into(),
                status,
                message: String::from_utf8_lossy(&text).chars().take(300).collect(),
            })
        })
        .await
    }

    /// The query with retries; each series' metric read as `M`.
    async fn fetch<M: serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static>(
        &self,
        query: &str,
        time_ms: i64,
    ) -> Result<Vec<(M, Vec<Sample>)>, PrometheusError> {
        self.retrying(query, || self.query_once::<M>(query, time_ms))
            .await
    }

    /// Runs `once` until it succeeds, fails for good, or the retries are
    /// spent; timeouts, refused connections and 5xx wait with exponential
    /// backoff. One WARN line per attempt number while the endpoint is down
    /// (the window's other requests log theirs at DEBUG).
    async fn retrying<T, F: std::future::Future<Output = Result<T, PrometheusError>>>(
        &self,
        query: &str,
        mut once: impl FnMut() -> F,
    ) -> Result<T, PrometheusError> {
        let mut attempt = 0;
        loop {
            let error = match once().await {
                Ok(value) => {
                    self.warned_attempt.store(0, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(e) if is_retryable(&e) => e,
                Err(e) => return Err(e),
            };
            attempt += 1;
            if attempt > self.config.retries {
                return Err(PrometheusError::GaveUp {
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let delay = Duration::from_millis(self.config.backoff_ms)
                .saturating_mul(2u32.saturating_pow(attempt - 1));
            if self.warned_attempt.fetch_max(attempt, Ordering::Relaxed) < attempt {
                tracing::warn!(url = %self.base, query, attempt, "{error}; retrying in {delay:?}");
            } else {
                tracing::debug!(url = %self.base, query, attempt, "{error}; retrying in {delay:?}");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The request with the client's credentials.
    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        }
    }

    async fn query_once<M: serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static>(
        &self,
        query: &str,
        time_ms: i64,
    ) -> Result<Vec<(M, Vec<Sample>)>, PrometheusError> {
        let time = format!(
            "{}.{:03}",
            time_ms.div_euclid(1000),
            time_ms.rem_euclid(1000)
        );
        let request = self
            .http
            .post(&self.query_url)
            .form(&[("query", query), ("time", time.as_str())]);
        let response = self
            .authorize(request)
            .send()
            .await
            .map_err(|source| self.unreachable(query, source))?;
        let status = response.status();
        let envelope: Envelope<M> = if status.is_success() {
            self.parse_streaming(query, response).await?
        } else {
            let (body, _) = capped_body(response, ERROR_BODY)
                .await
                .map_err(|source| self.unreachable(query, source))?;
            serde_json::from_slice(&body).map_err(|_| PrometheusError::Rejected {
                url: self.base.clone(),
                query: query.to_owned(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).chars().take(500).collect(),
            })?
        };
        for warning in &envelope.warnings {
            tracing::warn!(url = %self.base, query, "Prometheus warning: {warning}");
        }
        if envelope.status != "success" {
            return Err(PrometheusError::Rejected {
                url: self.base.clone(),
                query: query.to_owned(),
                status: status.as_u16(),
                message: format!(
                    "{}: {}",
                    envelope.error_type.unwrap_or_default(),
                    envelope.error.unwrap_or_default()
                ),
            });
        }
        let data = envelope
            .data
            .ok_or_else(|| self.bad_answer(query, "no `data`".into()))?;
        let series = data.into_series().map_err(|e| match e {
            NoSeries::NotAVector => self.bad_answer(query, NOT_A_VECTOR.into()),
            NoSeries::Conflict(series, conflict) => {
                self.conflicting(query, &format!("{series:?}"), conflict)
            }
        })?;
        if series.len() > self.config.max_series {
            return Err(self.too_many_series(query));
        }
        Ok(series)
    }

    /// Parses the answer while it arrives, on a blocking thread, so a large
    /// answer (100,000 series) is never held whole in memory beside its parse.
    async fn parse_streaming<M: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        query: &str,
        response: reqwest::Response,
    ) -> Result<Envelope<M>, PrometheusError> {
        use futures::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let bounds = self.bounds();
        let parser = tokio::task::spawn_blocking(move || {
            let reader = ChunkReader {
                rx,
                chunk: bytes::Bytes::new(),
            };
            decode_bounded::<M>(reader, bounds)
        });
        let mut stream = response.bytes_stream();
        let mut transport = None;
        let (mut received, limit) = (0_u64, self.config.max_response_mib << 20);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    received += chunk.len() as u64;
                    if received > limit {
                        drop(tx);
                        let _ = parser.await;
                        return Err(self.too_large(query));
                    }
                    // The parser stopped early (not JSON): its error says why.
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    transport = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let parsed = parser.await;
        if let Some(e) = transport {
            return Err(self.unreachable(query, e));
        }
        match parsed {
            Ok(Ok(envelope)) => Ok(envelope),
            Ok(Err((_, Some(cut)))) => Err(self.cut(query, cut)),
            Ok(Err((e, None))) => {
                Err(self.bad_answer(query, format!("not Prometheus API JSON ({e})")))
            }
            Err(e) => Err(self.bad_answer(query, format!("its parser failed: {e}"))),
        }
    }

    /// What one answer may hold ([`Bounds`]), from the configuration; its
    /// bytes count with those of the client's other answers in flight.
    pub(super) fn bounds(&self) -> Bounds {
        Bounds {
            series: self.config.max_series,
            decoded: self.config.max_decoded_mib.saturating_mul(1 << 20),
            label: usize::try_from(self.config.max_label_kib.saturating_mul(1 << 10))
                .unwrap_or(usize::MAX),
            pool: self.pool.clone(),
        }
    }
}

/// The most of an error answer read (its text is shown cut to a few
/// hundred characters): a proxy's endless error page is not held.
pub(super) const ERROR_BODY: u64 = 64 << 10;

/// The body of `response`, at most `cap` bytes of it, and whether that is all of it.
pub(super) async fn capped_body(
    mut response: reqwest::Response,
    cap: u64,
) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// The chunks of an answer as a `Read`, for serde_json on a blocking thread.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    chunk: bytes::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}
