//! Raw samples by Prometheus' remote-read API (`POST /api/v1/read`), with
//! the stored chunks streamed as they are (`STREAMED_XOR_CHUNKS`): no PromQL
//! evaluation at all. The request is a snappy-compressed protobuf
//! `ReadRequest`; the answer a stream of frames (uvarint length, CRC32-C of
//! the frame, a protobuf `ChunkedReadResponse`), whose chunks are Gorilla/XOR
//! encoded (`tsdb/chunkenc/xor.go`). The protobuf messages are declared
//! here with `prost` (no `protoc` at build time).

use super::client::{Client, PrometheusError, Series};
use super::labels::Labels;
use crate::energy::counter::Sample;

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    queries: Vec<Query>,
    /// `ResponseType`: 1 = `STREAMED_XOR_CHUNKS`.
    #[prost(int32, repeated, tag = "2")]
    accepted_response_types: Vec<i32>,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
struct Query {
    #[prost(int64, tag = "1")]
    start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    matchers: Vec<LabelMatcher>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, prost::Message)]
struct LabelMatcher {
    /// 0 `=`, 1 `!=`, 2 `=~`, 3 `!~`.
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    value: String,
}

/// `prometheus.ChunkedReadResponse`: one frame.
#[derive(Clone, PartialEq, prost::Message)]
struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    query_index: i64,
}

/// `prometheus.ChunkedSeries`.
#[derive(Clone, PartialEq, prost::Message)]
struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    chunks: Vec<Chunk>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// `prometheus.Chunk`.
#[derive(Clone, PartialEq, prost::Message)]
struct Chunk {
    #[prost(int64, tag = "1")]
    min_time_ms: i64,
    #[prost(int64, tag = "2")]
    max_time_ms: i64,
    /// 1 = XOR (floats); histograms are not read.
    #[prost(int32, tag = "3")]
    r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    data: Vec<u8>,
}

/// The XOR chunk encoding.
const XOR: i32 = 1;

/// Prometheus' staleness marker (a NaN with this exact bit pattern): not a sample.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

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

/// A PromQL series selector (`name{label="v",other!~"re"}`) as remote-read
/// label matchers.
fn matchers(selector: &str) -> Result<Vec<LabelMatcher>, String> {
    let selector = selector.trim();
    let (name, rest) = match selector.find('{') {
        Some(i) => (selector[..i].trim(), &selector[i..]),
        None => (selector, ""),
    };
    let mut out = Vec::new();
    if !name.is_empty() {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("`{name}` is not a metric name"));
        }
        out.push(LabelMatcher {
            r#type: 0,
            name: "__name__".into(),
            value: name.into(),
        });
    }
    if rest.is_empty() {
        return if out.is_empty() {
            Err("it names no metric".into())
        } else {
            Ok(out)
        };
    }
    let inner = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or("it is not `name{…}`")?;
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut label = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                label.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let op: String =
            std::iter::from_fn(|| chars.next_if(|c| matches!(c, '=' | '!' | '~'))).collect();
        let r#type = match op.as_str() {
            "=" => 0,
            "!=" => 1,
            "=~" => 2,
            "!~" => 3,
            _ => return Err(format!("`{op}` after `{label}` is not a matcher")),
        };
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') || label.is_empty() {
            return Err("label values must be double-quoted strings".into());
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c) => value.push(c),
                    None => return Err("an unterminated string".into()),
                },
                Some(c) => value.push(c),
                None => return Err("an unterminated string".into()),
            }
        }
        out.push(LabelMatcher {
            r#type,
            name: label,
            value,
        });
    }
    if !out.iter().any(|m| m.r#type == 0 || m.r#type == 2) {
        return Err("it needs a metric name or a positive matcher".into());
    }
    Ok(out)
}

/// Reads bits MSB first, as `tsdb/chunkenc/bstream.go` writes them, from
/// one big-endian word load at a time (a sample costs a few loads, not a
/// loop per bit).
struct Bits<'a> {
    bytes: &'a [u8],
    /// Position in bits.
    at: usize,
}

impl Bits<'_> {
    /// The next bits, left-aligned: at least 57 of them are the stream's
    /// (zeros past its end, which [`Bits::skip`] refuses to pass).
    #[inline]
    fn peek(&self) -> u64 {
        let i = self.at / 8;
        let word = match self.bytes.get(i..i + 8) {
            Some(eight) => <[u8; 8]>::try_from(eight).map_or(0, u64::from_be_bytes),
            None => {
                let mut eight = [0u8; 8];
                let rest = self.bytes.get(i..).unwrap_or_default();
                eight[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(eight)
            }
        };
        word << (self.at % 8)
    }

    /// Moves past `n` bits, if the stream has them.
    #[inline]
    fn skip(&mut self, n: u32) -> Option<()> {
        let end = self.at + n as usize;
        (end <= self.bytes.len() * 8).then(|| self.at = end)
    }

    /// The next `n` (at most 64) bits as a number; inlined, as the
    /// decoder's hot path calls it with a width known only at run time.
    #[inline(always)]
    fn bits(&mut self, n: u8) -> Option<u64> {
        if n > 56 {
            let high = self.bits(n - 32)?;
            return Some(high << 32 | self.bits(32)?);
        }
        let value = match n {
            0 => 0,
            n => self.peek() >> (64 - u32::from(n)),
        };
        self.skip(u32::from(n))?;
        Some(value)
    }

    fn byte(&mut self) -> Option<u8> {
        self.bits(8).map(|b| b as u8)
    }

    /// Go's `binary.ReadUvarint` over the bit stream.
    fn uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(x);
            }
        }
        None
    }

    /// Go's `binary.ReadVarint` (zig-zag).
    fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Appends the samples of one XOR chunk (its 2-byte sample count, then the
/// stream) to `out`, stale markers left out.
pub fn decode_xor(data: &[u8], out: &mut Vec<Sample>) -> Result<(), String> {
    let corrupt = |what: &str| format!("a garbled XOR chunk ({what})");
    let (count, stream) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => return Err(corrupt("shorter than its header")),
    };
    let mut bits = Bits {
        bytes: stream,
        at: 0,
    };
    out.reserve(count);
    let (mut t, mut value_bits, mut delta) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0u8, 0u8);
    for i in 0..count {
        match i {
            0 => {
                t = bits.varint().ok_or_else(|| corrupt("first timestamp"))?;
                value_bits = bits.bits(64).ok_or_else(|| corrupt("first value"))?;
            }
            _ => {
                if i == 1 {
                    delta = bits.uvarint().ok_or_else(|| corrupt("second timestamp"))?;
                } else {
                    // '0', '10', '110', '1110' or '1111', then that many bits.
                    // Regular scrapes make '0' the common case.
                    let prefix = bits.peek();
                    let ones = match prefix >> 63 {
                        0 => 0,
                        _ => prefix.leading_ones().min(4),
                    };
                    let prefix_len = (ones + 1).min(4);
                    let dod = match ones {
                        0 => {
                            bits.skip(1).ok_or_else(|| corrupt("timestamp"))?;
                            0
                        }
                        1..=3 => {
                            let n = [14, 17, 20][ones as usize - 1];
                            bits.skip(prefix_len + n)
                                .ok_or_else(|| corrupt("timestamp"))?;
                            let raw = (prefix << prefix_len) >> (64 - n);
                            // Negative numbers come back as high unsigned ones.
                            if raw > 1 << (n - 1) {
                                raw as i64 - (1i64 << n)
                            } else {
                                raw as i64
                            }
                        }
                        _ => {
                            bits.skip(4).ok_or_else(|| corrupt("timestamp"))?;
                            bits.bits(64).ok_or_else(|| corrupt("timestamp"))? as i64
                        }
                    };
                    delta = (delta as i64).wrapping_add(dod) as u64;
                }
                t = t.wrapping_add(delta as i64);
                // The value: same as before ('0'), or XOR with the previous
                // bits in the previous window ('10') or a new one ('11').
                let control = bits.peek();
                if control >> 63 == 0 {
                    bits.skip(1).ok_or_else(|| corrupt("value"))?;
                } else {
                    let (header, significant) = if control >> 62 & 1 == 1 {
                        bits.skip(13).ok_or_else(|| corrupt("value"))?;
                        leading = (control >> 57 & 0x1f) as u8;
                        let significant = match (control >> 51 & 0x3f) as u8 {
                            0 => 64,
                            n => n,
                        };
                        trailing = 64u8
                            .checked_sub(leading + significant)
                            .ok_or_else(|| corrupt("value width"))?;
                        (13, significant)
                    } else {
                        bits.skip(2).ok_or_else(|| corrupt("value"))?;
                        let significant = 64u8
                            .checked_sub(leading + trailing)
                            .ok_or_else(|| corrupt("value width"))?;
                        (2, significant)
                    };
                    // Most values fit in the word already read.
                    let xor = if header + u32::from(significant) <= 57 {
                        bits.skip(u32::from(significant))
                            .ok_or_else(|| corrupt("value"))?;
                        (control << header)
                            .checked_shr(64 - u32::from(significant))
                            .unwrap_or(0)
                    } else {
                        bits.bits(significant).ok_or_else(|| corrupt("value"))?
                    };
                    value_bits ^= xor.checked_shl(u32::from(trailing)).unwrap_or(0);
                }
            }
        }
        if value_bits != STALE_NAN {
            out.push(Sample {
                t_ms: t,
                value: f64::from_bits(value_bits),
            });
        }
    }
    Ok(())
}

/// The next whole frame at the front of `buffer` (uvarint length, CRC32-C,
/// data), checked; None while more bytes are needed. Returns the frame's
/// data range and the bytes it took.
fn next_frame(buffer: &[u8]) -> Result<Option<(std::ops::Range<usize>, usize)>, String> {
    let mut len = 0u64;
    let mut used = 0;
    for (i, b) in buffer.iter().enumerate().take(10) {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            used = i + 1;
            break;
        }
    }
    if used == 0 {
        return if buffer.len() >= 10 {
            Err("a frame length that does not end".into())
        } else {
            Ok(None)
        };
    }
    let len = usize::try_from(len).map_err(|_| "a frame too long")?;
    if len > MAX_FRAME {
        return Err(format!(
            "a frame of {len} bytes (at most {MAX_FRAME} are read)"
        ));
    }
    let Some(crc) = buffer.get(used..used + 4) else {
        return Ok(None);
    };
    let Some(frame) = buffer.get(used + 4..used + 4 + len) else {
        return Ok(None);
    };
    if crc32c::crc32c(frame) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("a frame whose CRC32-C does not match".into());
    }
    Ok(Some((used + 4..used + 4 + len, used + 4 + len)))
}

/// Prometheus sends frames of about 1 MiB; anything far larger is not its stream.
const MAX_FRAME: usize = 64 << 20;

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
    let mut finish = |current: &mut Option<Labels>, samples: &mut Vec<Sample>| {
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
                    finish(&mut current, &mut samples);
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
    }
    if !buffer.is_empty() {
        return Err(corrupt(format!(
            "a truncated stream ({} bytes of an unfinished frame)",
            buffer.len()
        )));
    }
    finish(&mut current, &mut samples);
    Ok(())
}

/// Bytes of a stream after which it is read in batches ([`next_chunk`]).
const BATCH_AFTER: usize = 1 << 20;

/// How long a large stream is left to fill the socket when nothing of it
/// is buffered ([`next_chunk`]).
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// The next piece of a remote-read stream. Prometheus flushes every series
/// as a frame of its own, so a reader that takes each as it lands wakes
/// itself and makes Prometheus wake it once per series. With `batch`, when
/// nothing is buffered (after letting the connection task run), it waits
/// [`BATCH_WAIT`] first and then reads what piled up: Prometheus 2.42
/// served 100,000 series on loopback in 1.3-1.6 s instead of 2.0-2.9 s
/// (`docs/BENCHMARKS.md`). A stream ends at most one wait later.
async fn next_chunk(
    response: &mut reqwest::Response,
    batch: bool,
) -> reqwest::Result<Option<bytes::Bytes>> {
    use futures::FutureExt;
    if batch {
        if let Some(chunk) = response.chunk().now_or_never() {
            return chunk;
        }
        tokio::task::yield_now().await;
        if let Some(chunk) = response.chunk().now_or_never() {
            return chunk;
        }
        tokio::time::sleep(BATCH_WAIT).await;
    }
    response.chunk().await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_matchers() {
        let m = matchers(r#"node_rapl_package_joules_total{index="1", uuid!~"[0-7].*"}"#).unwrap();
        let got: Vec<(i32, &str, &str)> = m
            .iter()
            .map(|m| (m.r#type, m.name.as_str(), m.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "__name__", "node_rapl_package_joules_total"),
                (0, "index", "1"),
                (3, "uuid", "[0-7].*")
            ]
        );
        assert!(matchers("sum(x)").is_err());
        assert!(matchers(r#"{a!="b"}"#).is_err());
        assert_eq!(matchers(r#"{__name__=~"a.*"}"#).unwrap().len(), 1);
    }

    #[test]
    fn frames_are_checked() {
        let frame = b"hello";
        let mut body = vec![5u8];
        body.extend(crc32c::crc32c(frame).to_be_bytes());
        body.extend(frame);
        assert_eq!(next_frame(&body).unwrap(), Some((5..10, 10)));
        let mut bad = body.clone();
        bad[6] ^= 1;
        assert!(next_frame(&bad).unwrap_err().contains("CRC32-C"));
        assert_eq!(next_frame(&body[..8]).unwrap(), None, "more bytes needed");
        assert!(next_frame(&[0xff; 12]).is_err());
    }

    #[test]
    fn a_garbled_chunk_is_an_error_not_samples() {
        let mut samples = Vec::new();
        assert!(decode_xor(&[0], &mut samples).is_err());
        assert!(decode_xor(&[0, 200, 1, 2, 3], &mut samples).is_err());
        assert!(decode_xor(&[0, 0], &mut samples).is_ok());
        assert!(samples.is_empty());
    }

    /// Chunks Prometheus 2.42 wrote (`fuzz/chunks.py`, also the fuzzer's
    /// seeds): every sample the header counts, 30 s apart, counters never
    /// decreasing.
    #[test]
    fn chunks_prometheus_wrote_decode() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/xor_chunk");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("prometheus-") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let mut samples = Vec::new();
            decode_xor(&data, &mut samples).unwrap();
            assert_eq!(
                samples.len(),
                usize::from(u16::from_be_bytes([data[0], data[1]]))
            );
            for pair in samples.windows(2) {
                assert_eq!(pair[1].t_ms - pair[0].t_ms, 30_000, "{name}");
                assert!(pair[1].value.is_finite(), "{name}");
                if name.starts_with("prometheus-counter-") {
                    assert!(pair[1].value >= pair[0].value, "{name}");
                }
            }
            seen += 1;
        }
        assert!(seen >= 9, "{seen} chunks in {dir}");
    }
}
