//! The daemon's HTTP server: `/metrics`, `/vms`, `/nodes`, `/download`,
//! `/stream` (websocket) and `/healthz`. Every endpoint but `/healthz` asks
//! for the bearer token when one is configured.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::metrics::{self, Format};
use super::tick::{IntervalRecord, Shared};
use crate::window::format_ms;

/// How long a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
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

/// The router.
pub fn router(app: App) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/vms", get(vms))
        .route("/nodes", get(nodes))
        .route("/download", get(download))
        .route("/stream", get(stream))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(app)
}

/// Refuses a request without the configured bearer token (compared in constant time).
async fn require_token(State(app): State<App>, request: Request, next: Next) -> Response {
    let expected = app.shared.token.read().ok().and_then(|t| t.clone());
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

async fn metrics_handler(State(app): State<App>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = metrics::render(&app.shared.snapshot(), format, (app.spool_depth)());
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    last_success: Option<String>,
    failing_intervals: u32,
}

async fn healthz(State(app): State<App>) -> Response {
    let snapshot = app.shared.snapshot();
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

async fn vms(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = app.shared.snapshot();
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

async fn nodes(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = app.shared.snapshot();
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

async fn download(State(app): State<App>, Query(q): Query<DownloadQuery>) -> Response {
    let records: Vec<IntervalRecord> = match app.shared.ring.lock() {
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

async fn stream(State(app): State<App>, upgrade: WebSocketUpgrade) -> Response {
    let receiver = app.shared.stream.subscribe();
    upgrade.on_upgrade(move |socket| forward(socket, receiver))
}

/// Sends each record to the client as it is made. A client that falls
/// behind the channel is dropped: sampling never waits for it.
async fn forward(mut socket: WebSocket, mut receiver: tokio::sync::broadcast::Receiver<Arc<str>>) {
    loop {
        match receiver.recv().await {
            Ok(json) => {
                let sent = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    socket.send(Message::Text((&*json).into())),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "a /stream client fell behind: dropped");
                break;
            }
            Err(RecvError::Closed) => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
