//! Raw samples by Prometheus' remote-read API (`POST /api/v1/read`), with
//! the stored chunks streamed as they are (`STREAMED_XOR_CHUNKS`): no PromQL
//! evaluation at all. The request is a snappy-compressed protobuf
//! `ReadRequest`; the answer a stream of frames (uvarint length, CRC32-C of
//! the frame, a protobuf `ChunkedReadResponse`), whose chunks are Gorilla/XOR
//! encoded (`tsdb/chunkenc/xor.go`).
//!
//! This module holds the read functions and their error; `proto` the
//! protobuf messages (declared with `prost`, no `protoc` at build time),
//! `stream` the reading of the framed answer as it arrives, `xor` the chunk
//! decoder ([`decode_xor`]).

mod proto;
mod stream;
mod xor;

use self::proto::{ChunkedReadResponse, Query, ReadRequest, XOR, matchers};
use self::stream::{BATCH_AFTER, next_chunk, next_frame};
pub use self::xor::decode_xor;

use super::client::{Client, PrometheusError, Series};
use super::labels::Labels;
use crate::energy::counter::Sample;

/// Why a remote read gave no samples.
#[derive(Debug, thiserror::Error)]
pub enum RemoteReadError {
    /// The endpoint has no remote-read API (404, 405, 501) or answered
    /// something else than a chunk stream: use PromQL instead.
    #[error("{url} has no remote-read API ({reason})")]
    Unsupported {
        /// The endpoint.
        url: String,
        /// What it answered.
        reason: String,
    },
    /// The selector cannot be written as label matchers.
    #[error("selector `{selector}` cannot be read by remote read: {reason}")]
    Selector {
        /// The selector.
        selector: String,
        /// Why.
        reason: String,
    },
    /// The stream is corrupt: never wrong joules, an error naming what.
    #[error("remote read from {url} of `{selector}`: {reason}")]
    Corrupt {
        /// The endpoint.
        url: String,
        /// The selector.
        selector: String,
        /// What is wrong.
        reason: String,
    },
    /// The request failed as a query would (unreachable, 5xx, …).
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
}

impl RemoteReadError {
    /// The error as a measurement error (a corrupt stream is a bad answer).
    pub fn into_prometheus(self) -> PrometheusError {
        match self {
            Self::Prometheus(e) => e,
            Self::Unsupported { url, reason } => PrometheusError::BadAnswer {
                url,
                query: "remote read".into(),
                reason: format!(
                    "no remote-read API ({reason}): set [prometheus] read = \"auto\" or \"promql\""
                ),
            },
            Self::Selector { selector, reason } => PrometheusError::BadAnswer {
                url: String::new(),
                query: selector,
                reason: format!("{reason}: set [prometheus] read = \"auto\" or \"promql\""),
            },
            Self::Corrupt {
                url,
                selector,
                reason,
            } => PrometheusError::BadAnswer {
                url,
                query: format!("remote read of {selector}"),
                reason,
            },
        }
    }
}

/// Reads every series `selector` matches in `[start_ms, end_ms]` by remote
/// read, decoding the stream as it arrives, and lends each series' labels and
/// samples (ascending in time, stale markers dropped) to `each` as soon as
/// it is complete: at most one frame and one series are held, in one buffer
/// reused from series to series.
pub async fn read_series(
    client: &Client,
    selector: &str,
    start_ms: i64,
    end_ms: i64,
    mut each: impl FnMut(Labels, &[Sample]),
) -> Result<(), RemoteReadError> {
    let matchers = matchers(selector).map_err(|reason| RemoteReadError::Selector {
        selector: selector.to_owned(),
        reason,
    })?;
    let request = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start_ms,
            end_timestamp_ms: end_ms,
            matchers,
        }],
        accepted_response_types: vec![1],
    };
    let corrupt = |reason: String| RemoteReadError::Corrupt {
        url: client.url().to_owned(),
        selector: selector.to_owned(),
        reason,
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&request))
        .map_err(|e| corrupt(format!("cannot compress the request: {e}")))?;
    let mut response = client.remote_read(body).await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let unsupported = |reason: String| RemoteReadError::Unsupported {
        url: client.url().to_owned(),
        reason,
    };
    if status != 200 {
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        // 404/405/501: no such API; 400 is what VictoriaMetrics answers
        // ("unsupported path requested") and a store answers a request it
        // cannot read.
        if matches!(status, 400 | 404 | 405 | 501) {
            return Err(unsupported(format!("HTTP {status}: {}", text.trim())));
        }
        return Err(PrometheusError::Rejected {
            url: client.url().to_owned(),
            query: format!("remote read of {selector}"),
            status,
            message: text,
        }
        .into());
    }
    if !content_type.starts_with("application/x-streamed-protobuf") {
        return Err(unsupported(format!(
            "it answered `{content_type}`, not a chunk stream"
        )));
    }
    let mut buffer: Vec<u8> = Vec::new();
    // The series being read (a series too large for one frame continues in
    // the next), and its samples.
    let mut current: Option<Labels> = None;
    let mut samples: Vec<Sample> = Vec::new();
    let mut series_read = 0_usize;
    let mut finish =
        |current: &mut Option<Labels>, samples: &mut Vec<Sample>, series_read: &mut usize| {
            if let Some(labels) = current.take() {
                // Chunks come in time order and do not overlap, unless blocks do.
                if !samples.is_sorted_by(|a, b| a.t_ms < b.t_ms) {
                    samples.sort_by_key(|s| s.t_ms);
                    samples.dedup_by_key(|s| s.t_ms);
                }
                // Chunks at the ends of the range hold samples outside it.
                let from = samples.partition_point(|s| s.t_ms < start_ms);
                let to = samples.partition_point(|s| s.t_ms <= end_ms);
                if from < to {
                    *series_read += 1;
                    each(labels, &samples[from..to]);
                }
            }
            samples.clear();
        };
    let mut received = 0;
    loop {
        let chunk = next_chunk(&mut response, received >= BATCH_AFTER).await;
        let chunk = chunk.map_err(|e| {
            RemoteReadError::Prometheus(PrometheusError::Unreachable {
                url: client.url().to_owned(),
                query: format!("remote read of {selector}"),
                reason: e.without_url().to_string(),
            })
        })?;
        let Some(chunk) = chunk else { break };
        received += chunk.len();
        if received as u64 > client.config.max_response_mib << 20 {
            return Err(RemoteReadError::Prometheus(
                client.too_large(&format!("remote read of {selector}")),
            ));
        }
        buffer.extend_from_slice(&chunk);
        let mut taken = 0;
        while let Some((range, used)) = next_frame(&buffer[taken..]).map_err(corrupt)? {
            let frame = &buffer[taken + range.start..taken + range.end];
            let response: ChunkedReadResponse = prost::Message::decode(frame)
                .map_err(|e| corrupt(format!("a frame that is not a ChunkedReadResponse ({e})")))?;
            for series in response.chunked_series {
                let labels: Labels = series
                    .labels
                    .iter()
                    .filter(|l| l.name != "__name__")
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect();
                if current.as_ref().is_some_and(|l| *l != labels) {
                    finish(&mut current, &mut samples, &mut series_read);
                }
                current.get_or_insert(labels);
                for chunk in &series.chunks {
                    if chunk.r#type != XOR {
                        continue;
                    }
                    decode_xor(&chunk.data, &mut samples).map_err(corrupt)?;
                }
            }
            taken += used;
        }
        buffer.drain(..taken);
        if series_read > client.config.max_series {
            return Err(RemoteReadError::Prometheus(
                client.too_many_series(&format!("remote read of {selector}")),
            ));
        }
    }
    if !buffer.is_empty() {
        return Err(corrupt(format!(
            "a truncated stream ({} bytes of an unfinished frame)",
            buffer.len()
        )));
    }
    finish(&mut current, &mut samples, &mut series_read);
    Ok(())
}

/// Runs `read` where the client reads remotely: `Ok(None)` when it does
/// not (`read = "promql"`, or `auto` has fallen back, now included), so the
/// caller uses PromQL; a corrupt stream or a failed request is an error.
pub async fn when_available<T>(
    client: &Client,
    read: impl std::future::Future<Output = Result<T, RemoteReadError>>,
) -> Result<Option<T>, PrometheusError> {
    if !client.uses_remote_read() {
        return Ok(None);
    }
    match read.await {
        Ok(value) => Ok(Some(value)),
        Err(e @ (RemoteReadError::Unsupported { .. } | RemoteReadError::Selector { .. }))
            if client.fall_back_to_promql(&e.to_string()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into_prometheus()),
    }
}

/// Every series `selector` matches in `[start_ms, end_ms]` with its samples,
/// read by remote read ([`read_series`], collected).
pub async fn read_samples(
    client: &Client,
    selector: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Series>, RemoteReadError> {
    let mut out = Vec::new();
    read_series(client, selector, start_ms, end_ms, |labels, samples| {
        out.push(Series {
            labels,
            samples: samples.to_vec(),
        });
    })
    .await?;
    Ok(out)
}
