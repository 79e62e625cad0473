//! The daemon's HTTP server: `/metrics`, `/vms`, `/nodes`, `/download`,
//! `/stream` (websocket) and `/healthz`. Every endpoint but `/healthz` asks
//! for the bearer token when one is configured.
//!
//! Hostile or plentiful clients are bounded: a client has
//! [`HEADER_READ_TIMEOUT`] to send its headers (slowloris) and an idle
//! keep-alive connection is closed after as long; at most
//! [`MAX_CONNECTIONS`] connections are served at once (the next wait in the
//! listen backlog); `/metrics` renders each format once per published
//! snapshot, so a crowd of scrapers costs a copy each; a `/stream` client
//! that stops reading is dropped.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, watch};

use super::metrics::{self, Format};
use super::tick::{IntervalRecord, Shared, Snapshot};
use crate::window::format_ms;

/// How long a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers, and how long an
/// idle keep-alive connection stays open: a slowloris client is closed then.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; the next ones wait in the listen backlog
/// until one closes, so a flood costs no memory here.
pub const MAX_CONNECTIONS: usize = 512;
/// A connection's read buffer, headers included: a larger head is refused
/// (431) and the connection closed.
const MAX_READ_BUFFER: usize = 64 * 1024;
/// `/stream` clients at once; more are answered 503.
const MAX_STREAMS: usize = 64;
/// How long one `/stream` message may wait for a client that does not read
/// before the client is dropped.
const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the spool's depth, read for `/metrics`, is reused within one
/// snapshot (a new snapshot reads it again).
const SPOOL_DEPTH_MAX_AGE: Duration = Duration::from_secs(1);
/// The largest request body accepted (no endpoint takes one).
const BODY_LIMIT: usize = 16 * 1024;
/// Failed intervals in a row after which `/healthz` answers 503.
const UNHEALTHY_AFTER: u32 = 3;

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    /// The daemon's published state.
    pub shared: Arc<Shared>,
    /// How many payloads wait in the spool (read at each scrape).
    pub spool_depth: Arc<dyn Fn() -> usize + Send + Sync>,
}

/// The handlers' state: the [`App`], the rendered `/metrics` bodies and the
/// `/stream` slots.
#[derive(Clone)]
struct Served {
    app: App,
    metrics: Arc<MetricsCache>,
    streams: Arc<Semaphore>,
}

/// `/metrics` bodies, one per format (and its gzip, made when first asked):
/// rendered again only when the snapshot or the spool's depth changed, so a
/// scrape is never staler than the last published tick and a crowd of
/// scrapers costs one render per tick.
#[derive(Default)]
struct MetricsCache {
    text: Mutex<Option<Rendered>>,
    openmetrics: Mutex<Option<Rendered>>,
    depth: Mutex<Option<Depth>>,
}

/// A rendered body and what it was rendered from.
struct Rendered {
    snapshot: Arc<Snapshot>,
    spool_payloads: usize,
    body: Bytes,
    gzip: Option<Bytes>,
}

/// How a `/metrics` body is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// Gzip when `Accept-Encoding` names it (or `*`) with a non-zero q.
    fn from_accept(accept: Option<&str>) -> Self {
        let gzip = accept.unwrap_or_default().split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        });
        if gzip { Self::Gzip } else { Self::Identity }
    }
}

/// `body` gzipped (fast level: a scrape body compresses ~10× even so).
fn gzip(body: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// The spool's depth as last read.
struct Depth {
    snapshot: Arc<Snapshot>,
    at: Instant,
    payloads: usize,
}

impl Served {
    /// The `/metrics` body of the latest snapshot in `format`, encoded.
    async fn metrics_body(&self, format: Format, encoding: Encoding) -> Bytes {
        let slot = match format {
            Format::Text => &self.metrics.text,
            Format::OpenMetrics => &self.metrics.openmetrics,
        };
        // The snapshot is taken under the lock: a scrape that waited for
        // another's render still gets the latest.
        let mut slot = slot.lock().await;
        let snapshot = self.app.shared.snapshot();
        let spool_payloads = self.spool_depth(&snapshot).await;
        let fresh = slot.as_ref().is_some_and(|r| {
            Arc::ptr_eq(&r.snapshot, &snapshot) && r.spool_payloads == spool_payloads
        });
        let rendered = match slot.as_mut() {
            Some(r) if fresh => r,
            _ => slot.insert(Rendered {
                body: Bytes::from(metrics::render(&snapshot, format, spool_payloads)),
                snapshot,
                spool_payloads,
                gzip: None,
            }),
        };
        match encoding {
            Encoding::Identity => rendered.body.clone(),
            Encoding::Gzip => rendered
                .gzip
                .get_or_insert_with(|| gzip(&rendered.body))
                .clone(),
        }
    }

    /// The spool's depth, read again for a new snapshot or after
    /// [`SPOOL_DEPTH_MAX_AGE`] (the directory is not read at every scrape).
    async fn spool_depth(&self, snapshot: &Arc<Snapshot>) -> usize {
        let mut depth = self.metrics.depth.lock().await;
        if let Some(d) = depth.as_ref()
            && Arc::ptr_eq(&d.snapshot, snapshot)
            && d.at.elapsed() < SPOOL_DEPTH_MAX_AGE
        {
            return d.payloads;
        }
        let payloads = (self.app.spool_depth)();
        *depth = Some(Depth {
            snapshot: Arc::clone(snapshot),
            at: Instant::now(),
            payloads,
        });
        payloads
    }
}

/// The router.
pub fn router(app: App) -> Router {
    let served = Served {
        app,
        metrics: Arc::default(),
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
    };
    let guarded = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/vms", get(vms))
        .route("/nodes", get(nodes))
        .route("/download", get(download))
        .route("/stream", get(stream))
        .route_layer(middleware::from_fn_with_state(
            served.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(served)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish (the caller bounds how long it waits).
///
/// Unlike `axum::serve`, a client has [`HEADER_READ_TIMEOUT`] to send its
/// headers and an idle keep-alive connection is closed after as long (a
/// slowloris client holds nothing for longer); at most [`MAX_CONNECTIONS`]
/// connections are served at once, the next waiting in the kernel's listen
/// backlog; a connection's read buffer is bounded. Websocket upgrades
/// (`/stream`) are served.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_READ_BUFFER)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (closing, closed) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        // A free slot first, then a connection: past the cap, clients wait
        // in the backlog rather than in memory here.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let mut closed = closed.clone();
        tokio::spawn(async move {
            // The slot is held until the connection ends.
            let _permit = permit;
            let mut connection = pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                // A client's timeout or reset: its problem, not the daemon's.
                tracing::debug!("HTTP connection: {e}");
            }
        });
    }
    drop(listener);
    // Each connection finishes its request in flight, then closes.
    let _ = closing.send(());
    let _ = permits.acquire_many(MAX_CONNECTIONS as u32).await;
}

/// A failed accept: a client that gave up is skipped; anything else (out of
/// file descriptors) is logged and retried after a pause.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("HTTP server: cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Refuses a request without the configured bearer token (compared in constant time).
async fn require_token(State(s): State<Served>, request: Request, next: Next) -> Response {
    let expected = s.app.shared.token.read().ok().and_then(|t| t.clone());
    if let Some(expected) = expected {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required (Authorization: Bearer …)\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Equal bytes, in a time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics_handler(State(s): State<Served>, headers: HeaderMap) -> Response {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(value(header::ACCEPT));
    let encoding = Encoding::from_accept(value(header::ACCEPT_ENCODING));
    let body = s.metrics_body(format, encoding).await;
    let content_type = (header::CONTENT_TYPE, format.content_type());
    let vary = (header::VARY, "Accept, Accept-Encoding");
    match encoding {
        Encoding::Identity => ([content_type, vary], body).into_response(),
        Encoding::Gzip => (
            [content_type, vary, (header::CONTENT_ENCODING, "gzip")],
            body,
        )
            .into_response(),
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    last_success: Option<String>,
    failing_intervals: u32,
}

async fn healthz(State(s): State<Served>) -> Response {
    let snapshot = s.app.shared.snapshot();
    let h = &snapshot.health;
    let healthy = h.failures_in_a_row < UNHEALTHY_AFTER;
    let body = Health {
        status: if healthy { "ok" } else { "failing" },
        last_success: h.last_success_ms.map(format_ms),
        failing_intervals: h.failures_in_a_row,
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// Whether the client asked for CSV.
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"))
}

/// Rows as CSV (with a header) or JSON, as asked.
fn table<T: Serialize>(rows: &[T], csv_wanted: bool) -> Response {
    if !csv_wanted {
        return axum::Json(rows).into_response();
    }
    match to_csv(rows) {
        Ok(body) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

fn to_csv<T: Serialize>(rows: &[T]) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[derive(Serialize)]
struct VmRow {
    uuid: String,
    name: String,
    project: String,
    host: String,
    watts: Option<f64>,
    joules_total: f64,
    vcpus: u32,
    memory_mb: u64,
}

async fn vms(State(s): State<Served>, headers: HeaderMap) -> Response {
    let s = s.app.shared.snapshot();
    let rows: Vec<VmRow> = s
        .vms
        .iter()
        .map(|v| VmRow {
            uuid: v.uuid.clone(),
            name: v.who.name.clone().unwrap_or_default(),
            project: v.who.project().to_owned(),
            host: s.host.clone(),
            watts: v.watts,
            joules_total: v.joules_total,
            vcpus: v.vcpus,
            memory_mb: v.memory_mb,
        })
        .collect();
    table(&rows, wants_csv(&headers))
}

#[derive(Serialize)]
struct NodeRow {
    host: String,
    watts: Option<f64>,
    idle_watts: Option<f64>,
    vms: usize,
    vm_watts: f64,
    unattributed_joules_total: f64,
}

async fn nodes(State(s): State<Served>, headers: HeaderMap) -> Response {
    let s = s.app.shared.snapshot();
    let rows = [NodeRow {
        host: s.host.clone(),
        watts: s.host_watts,
        idle_watts: s.idle_watts,
        vms: s.vms.len(),
        vm_watts: s.vms.iter().filter_map(|v| v.watts).sum(),
        unattributed_joules_total: s.unattributed_joules,
    }];
    table(&rows, wants_csv(&headers))
}

#[derive(Deserialize)]
struct DownloadQuery {
    rows: Option<usize>,
}

async fn download(State(s): State<Served>, Query(q): Query<DownloadQuery>) -> Response {
    let records: Vec<IntervalRecord> = match s.app.shared.ring.lock() {
        Ok(ring) => {
            let n = q.rows.unwrap_or(ring.len()).min(ring.len());
            ring.iter().skip(ring.len() - n).cloned().collect()
        }
        Err(_) => Vec::new(),
    };
    let body = if records.is_empty() {
        // The header alone, so a reader always gets the columns.
        "start,end,uuid,name,project,host,joules,watts,cpu_s,model\n".to_owned()
    } else {
        match to_csv(&records) {
            Ok(body) => body,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"wattson-records.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

async fn stream(State(s): State<Served>, upgrade: WebSocketUpgrade) -> Response {
    let Ok(slot) = Arc::clone(&s.streams).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} /stream clients already: try again later\n"),
        )
            .into_response();
    };
    let receiver = s.app.shared.stream.subscribe();
    upgrade.on_upgrade(move |socket| forward(socket, receiver, slot))
}

/// Sends each record to the client as it is made. A client that falls
/// behind the channel, or does not take a message within
/// [`STREAM_SEND_TIMEOUT`], is dropped: sampling never waits for it, and
/// neither does the closing frame (a client that never reads would hold
/// the connection and its slot forever).
async fn forward(
    mut socket: WebSocket,
    mut receiver: tokio::sync::broadcast::Receiver<Arc<str>>,
    _slot: OwnedSemaphorePermit,
) {
    loop {
        match receiver.recv().await {
            Ok(json) => {
                let sent = tokio::time::timeout(
                    STREAM_SEND_TIMEOUT,
                    socket.send(Message::Text((&*json).into())),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    tracing::warn!("a /stream client does not read: dropped");
                    return;
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "a /stream client fell behind: dropped");
                break;
            }
            Err(RecvError::Closed) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(None))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_only_when_asked_and_not_refused() {
        for (accept, want) in [
            (None, Encoding::Identity),
            (Some(""), Encoding::Identity),
            (Some("identity"), Encoding::Identity),
            (Some("gzip"), Encoding::Gzip),
            (Some("br, GZIP;q=0.5"), Encoding::Gzip),
            (Some("gzip;q=0"), Encoding::Identity),
            (Some("*"), Encoding::Gzip),
            (Some("deflate, gzipx"), Encoding::Identity),
        ] {
            assert_eq!(Encoding::from_accept(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn gzip_gives_the_body_back() {
        use std::io::Read as _;
        let body = "wattson_vm_energy_joules_total{uuid=\"a\"} 1\n".repeat(1000);
        let packed = gzip(body.as_bytes());
        assert!(packed.len() < body.len() / 10);
        let mut back = String::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
