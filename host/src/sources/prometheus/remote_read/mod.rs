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

use super::answer::{Cut, SAMPLE_BYTES, Share, held_by_series};
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
    each: impl FnMut(Labels, &[Sample]),
) -> Result<(), RemoteReadError> {
    read_bounded(client, selector, start_ms, end_ms, false, each).await
}

/// [`read_series`], counting against `max_decoded_mib` every series' labels
/// and, with `keeps_samples`, their samples (the caller keeps them), beside
/// the series being read.
async fn read_bounded(
    client: &Client,
    selector: &str,
    start_ms: i64,
    end_ms: i64,
    keeps_samples: bool,
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
        let (text, _) = super::client::capped_body(response, super::client::ERROR_BODY)
            .await
            .unwrap_or_default();
        let text: String = String::from_utf8_lossy(&text).chars().take(200).collect();
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
    let query = format!("remote read of {selector}");
    let bounds = client.bounds();
    let mut read = Reading {
        client,
        query: &query,
        start_ms,
        end_ms,
        keeps_samples,
        current: None,
        samples: Vec::new(),
        series_read: 0,
        held: Share::new(&bounds.pool, bounds.decoded),
        reordered: 0,
    };
    let mut buffer: Vec<u8> = Vec::new();
    let mut received = 0;
    loop {
        let chunk = next_chunk(&mut response, received >= BATCH_AFTER).await;
        let chunk = chunk.map_err(|e| {
            RemoteReadError::Prometheus(PrometheusError::Unreachable {
                url: client.url().to_owned(),
                query: query.clone(),
                reason: e.without_url().to_string(),
            })
        })?;
        let Some(chunk) = chunk else { break };
        received += chunk.len();
        if received as u64 > client.config.max_response_mib << 20 {
            return Err(client.too_large(&query).into());
        }
        buffer.extend_from_slice(&chunk);
        let mut taken = 0;
        while let Some((range, used)) = next_frame(&buffer[taken..]).map_err(corrupt)? {
            let frame = &buffer[taken + range.start..taken + range.end];
            let response: ChunkedReadResponse = prost::Message::decode(frame)
                .map_err(|e| corrupt(format!("a frame that is not a ChunkedReadResponse ({e})")))?;
            for series in response.chunked_series {
                let long = series
                    .labels
                    .iter()
                    .find(|l| l.name.len().max(l.value.len()) > bounds.label);
                if let Some(l) = long {
                    let start = |s: &str| s.chars().take(40).collect::<String>();
                    return Err(PrometheusError::LabelTooLong {
                        url: client.url().to_owned(),
                        query: query.clone(),
                        label: format!("`{}` = \"{}…\"", start(&l.name), start(&l.value)),
                        limit_kib: client.config.max_label_kib,
                    }
                    .into());
                }
                let labels: Labels = series
                    .labels
                    .iter()
                    .filter(|l| l.name != "__name__")
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect();
                if read.current.as_ref().is_some_and(|l| *l != labels) {
                    read.finish(&mut each)?;
                }
                if read.current.is_none() {
                    let text: usize = labels.iter().map(|(n, v)| n.len() + v.len()).sum();
                    if !read.held.add(held_by_series(text, labels.iter().count())) {
                        return Err(client.cut(&query, Cut::Decoded).into());
                    }
                    read.current = Some(labels);
                }
                for chunk in &series.chunks {
                    if chunk.r#type != XOR {
                        continue;
                    }
                    let before = read.samples.len();
                    decode_xor(&chunk.data, &mut read.samples).map_err(corrupt)?;
                    let decoded = (read.samples.len() - before) as u64 * SAMPLE_BYTES;
                    if !read.held.add(decoded) {
                        return Err(client.cut(&query, Cut::Decoded).into());
                    }
                }
            }
            taken += used;
        }
        buffer.drain(..taken);
        if read.series_read > client.config.max_series {
            return Err(client.too_many_series(&query).into());
        }
    }
    if !buffer.is_empty() {
        return Err(corrupt(format!(
            "a truncated stream ({} bytes of an unfinished frame)",
            buffer.len()
        )));
    }
    read.finish(&mut each)?;
    if read.reordered > 0 {
        tracing::warn!(
            url = client.url(),
            selector,
            "{} series came with samples out of time order or repeated (a store or proxy \
             answering remote read out of order): sorted, exact repeats dropped",
            read.reordered
        );
    }
    Ok(())
}

/// A remote read in progress: the series being read (a series too large
/// for one frame continues in the next) and its samples, and what the read
/// holds.
struct Reading<'a> {
    client: &'a Client,
    query: &'a str,
    start_ms: i64,
    end_ms: i64,
    /// The caller keeps every series' samples, not only its labels.
    keeps_samples: bool,
    current: Option<Labels>,
    samples: Vec<Sample>,
    series_read: usize,
    /// What the read holds: every series' labels (the caller keeps them),
    /// the current series' samples, and with `keeps_samples` every series'.
    held: Share,
    /// Series whose samples were out of order or repeated.
    reordered: usize,
}

impl Reading<'_> {
    /// Hands the current series, sorted and cut to the range, to `each`.
    fn finish(&mut self, each: &mut impl FnMut(Labels, &[Sample])) -> Result<(), RemoteReadError> {
        let Some(labels) = self.current.take() else {
            return Ok(());
        };
        let counted = self.samples.len();
        // Chunks come in time order and do not overlap, unless blocks do
        // or the store is not Prometheus.
        match super::ascending(&mut self.samples) {
            Ok(changed) => self.reordered += usize::from(changed),
            Err(conflict) => {
                return Err(self
                    .client
                    .conflicting(self.query, &format!("{labels:?}"), conflict)
                    .into());
            }
        }
        // Chunks at the ends of the range hold samples outside it.
        let from = self.samples.partition_point(|s| s.t_ms < self.start_ms);
        let to = self.samples.partition_point(|s| s.t_ms <= self.end_ms);
        let kept = if from < to && self.keeps_samples {
            to - from
        } else {
            0
        };
        self.held.give_back((counted - kept) as u64 * SAMPLE_BYTES);
        if from < to {
            self.series_read += 1;
            each(labels, &self.samples[from..to]);
        }
        self.samples.clear();
        Ok(())
    }
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
    read_bounded(
        client,
        selector,
        start_ms,
        end_ms,
        true,
        |labels, samples| {
            out.push(Series {
                labels,
                samples: samples.to_vec(),
            });
        },
    )
    .await?;
    Ok(out)
}
