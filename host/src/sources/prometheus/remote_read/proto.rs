//! The remote-read protocol's protobuf messages (`prompb/remote.proto`,
//! `types.proto`), declared with `prost` (no `protoc` at build time): the
//! `ReadRequest` sent, with a PromQL selector as its label matchers, and the
//! `ChunkedReadResponse` frames received.

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub(super) queries: Vec<Query>,
    /// `ResponseType`: 1 = `STREAMED_XOR_CHUNKS`.
    #[prost(int32, repeated, tag = "2")]
    pub(super) accepted_response_types: Vec<i32>,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Query {
    #[prost(int64, tag = "1")]
    pub(super) start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub(super) end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub(super) matchers: Vec<LabelMatcher>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct LabelMatcher {
    /// 0 `=`, 1 `!=`, 2 `=~`, 3 `!~`.
    #[prost(int32, tag = "1")]
    pub(super) r#type: i32,
    #[prost(string, tag = "2")]
    pub(super) name: String,
    #[prost(string, tag = "3")]
    pub(super) value: String,
}

/// `prometheus.ChunkedReadResponse`: one frame.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub(super) chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    pub(super) query_index: i64,
}

/// `prometheus.ChunkedSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    pub(super) labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub(super) chunks: Vec<Chunk>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Label {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) value: String,
}

/// `prometheus.Chunk`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Chunk {
    #[prost(int64, tag = "1")]
    pub(super) min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub(super) max_time_ms: i64,
    /// 1 = XOR (floats); histograms are not read.
    #[prost(int32, tag = "3")]
    pub(super) r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub(super) data: Vec<u8>,
}

/// The XOR chunk encoding.
pub(super) const XOR: i32 = 1;

/// A PromQL series selector (`name{label="v",other!~"re"}`) as remote-read
/// label matchers.
pub(super) fn matchers(selector: &str) -> Result<Vec<LabelMatcher>, String> {
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
}
