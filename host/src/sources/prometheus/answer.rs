//! The decoder of the Prometheus HTTP API's JSON answers: the envelope
//! (`status`, `data`, `error`, `warnings`), vector and matrix results, and
//! samples whose labels and values are parsed in place, as the answer
//! streams in (the client feeds it; [`decode_answer`] decodes a whole body).

use std::cell::RefCell;

use serde::Deserialize;

use super::labels::Labels;
use crate::energy::counter::Sample;

/// What one answer may hold while it is decoded (`[prometheus]`
/// `max_series`, `max_decoded_mib`, `max_label_kib`).
#[derive(Clone, Debug)]
pub(super) struct Bounds {
    /// Series.
    pub(super) series: usize,
    /// Bytes of labels and samples, as [`held_by_series`] and
    /// [`SAMPLE_BYTES`] count them, of every answer `pool` counts.
    pub(super) decoded: u64,
    /// Bytes of one string (label name or value).
    pub(super) label: usize,
    /// What the client's answers in flight hold.
    pub(super) pool: Pool,
}

/// Bytes decoded by a client's answers in flight, together: a window's
/// queries run at once, and a hostile endpoint answers each of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pool(std::sync::Arc<std::sync::atomic::AtomicU64>);

/// One answer's part of a [`Pool`], given back when dropped (decoded and
/// handed on, or refused).
pub(crate) struct Share {
    pool: Pool,
    limit: u64,
    /// Bytes in the pool, and not yet put there (added in steps, not per sample).
    mine: u64,
    pending: u64,
}

/// Bytes a [`Share`] gathers before adding them to its pool.
const STEP: u64 = 64 << 10;

impl Share {
    /// A share of `pool`, which may hold `limit` bytes.
    pub(crate) fn new(pool: &Pool, limit: u64) -> Self {
        Self {
            pool: pool.clone(),
            limit,
            mine: 0,
            pending: 0,
        }
    }

    /// Counts `bytes` more; false once the pool holds more than its limit.
    pub(crate) fn add(&mut self, bytes: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.pending += bytes;
        if self.pending < STEP && self.mine + self.pending <= self.limit {
            return true;
        }
        let added = std::mem::take(&mut self.pending);
        self.mine += added;
        self.pool.0.fetch_add(added, Ordering::Relaxed) + added <= self.limit
    }

    /// Gives back `bytes` counted before (samples handed on and dropped).
    pub(crate) fn give_back(&mut self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let from_pending = bytes.min(self.pending);
        self.pending -= from_pending;
        let rest = (bytes - from_pending).min(self.mine);
        self.mine -= rest;
        self.pool.0.fetch_sub(rest, Ordering::Relaxed);
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.pool
            .0
            .fetch_sub(self.mine, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Which bound an answer passed, where decoding stopped.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Cut {
    /// More series than `max_series`.
    Series,
    /// More than `max_decoded_mib` decoded.
    Decoded,
    /// A string longer than `max_label_kib`: the string before it (the
    /// label's name, when the long one is a value) and its first bytes.
    Label {
        /// The string before the long one.
        after: String,
        /// The long string's first bytes.
        start: String,
    },
}

/// Memory a decoded sample takes.
pub(crate) const SAMPLE_BYTES: u64 = std::mem::size_of::<Sample>() as u64;

/// Memory a decoded series takes beside its samples: its labels' text, an
/// offset pair per label, and the fixed cost of its labels, samples vector
/// and allocations (about 100 bytes).
pub(crate) fn held_by_series(label_text: usize, labels: usize) -> u64 {
    96 + label_text as u64 + 8 * labels as u64
}

/// The answer a thread decodes: its series limit, series so far, and share.
struct Decoding {
    series_limit: usize,
    series: usize,
    share: Share,
}

thread_local! {
    /// The answer this thread decodes (none: unbounded, the fuzz target).
    static DECODING: RefCell<Option<Decoding>> = const { RefCell::new(None) };
    /// The bound passed, if one was.
    static CUT: RefCell<Option<Cut>> = const { RefCell::new(None) };
}

/// Decodes an answer from `reader` within `bounds` (the calling thread's
/// own: decoding runs on a blocking thread of its own). On an error, the
/// bound passed, if that is why. The answer's bytes leave the pool when it
/// is decoded.
pub(super) fn decode_bounded<M: serde::de::DeserializeOwned>(
    reader: impl std::io::Read,
    bounds: Bounds,
) -> Result<Envelope<M>, (serde_json::Error, Option<Cut>)> {
    DECODING.set(Some(Decoding {
        series_limit: bounds.series,
        series: 0,
        share: Share::new(&bounds.pool, bounds.decoded),
    }));
    CUT.set(None);
    let reader = StringLimit {
        inner: reader,
        limit: bounds.label,
        in_string: false,
        escaped: false,
        run: 0,
        current: Vec::new(),
        last: Vec::new(),
    };
    let result = serde_json::from_reader(std::io::BufReader::with_capacity(64 * 1024, reader));
    DECODING.set(None);
    result.map_err(|e| (e, CUT.take()))
}

/// Stops decoding at `cut`.
fn cut<E: serde::de::Error>(cut: Cut) -> E {
    CUT.set(Some(cut));
    E::custom("an answer past its bounds")
}

/// Counts `bytes` decoded, and a series with `new_series`, against the bounds.
fn tally<E: serde::de::Error>(bytes: u64, new_series: bool) -> Result<(), E> {
    let passed = DECODING.with_borrow_mut(|decoding| {
        let decoding = decoding.as_mut()?;
        if new_series {
            decoding.series += 1;
            if decoding.series > decoding.series_limit {
                return Some(Cut::Series);
            }
        }
        (!decoding.share.add(bytes)).then_some(Cut::Decoded)
    });
    passed.map_or(Ok(()), |passed| Err(cut(passed)))
}

/// Counts a decoded series (its labels' text and count) against the bounds.
pub(super) fn tally_series<E: serde::de::Error>(label_text: usize, labels: usize) -> Result<(), E> {
    tally(held_by_series(label_text, labels), true)
}

/// Counts a decoded sample against the bounds.
fn tally_sample<E: serde::de::Error>() -> Result<(), E> {
    tally(SAMPLE_BYTES, false)
}

/// The first bytes of a long string kept for its error.
const SHOWN: usize = 40;

/// A reader that stops at a JSON string longer than `limit` bytes, before
/// the parser buffers it: serde_json reads a whole string before handing
/// it on, so a label of a gigabyte would otherwise be held whole.
struct StringLimit<R> {
    inner: R,
    limit: usize,
    /// Inside a string, and just after its backslash.
    in_string: bool,
    escaped: bool,
    /// Bytes of the current string so far.
    run: usize,
    /// The current string's first bytes, and the last whole string's.
    current: Vec<u8>,
    last: Vec<u8>,
}

impl<R> StringLimit<R> {
    /// Follows strings through `bytes`; false once one is too long.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if self.escaped {
                self.escaped = false;
                self.keep(&bytes[i..=i]);
                i += 1;
                continue;
            }
            if !self.in_string {
                let Some(j) = memchr::memchr(b'"', &bytes[i..]) else {
                    break;
                };
                self.in_string = true;
                self.run = 0;
                self.current.clear();
                i += j + 1;
                continue;
            }
            match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                Some(j) => {
                    self.keep(&bytes[i..i + j]);
                    if self.run > self.limit {
                        return false;
                    }
                    if bytes[i + j] == b'\\' {
                        self.escaped = true;
                        self.keep(b"\\");
                    } else {
                        self.in_string = false;
                        std::mem::swap(&mut self.last, &mut self.current);
                    }
                    i += j + 1;
                }
                None => {
                    self.keep(&bytes[i..]);
                    i = bytes.len();
                }
            }
            if self.run > self.limit {
                return false;
            }
        }
        true
    }

    /// Counts `bytes` into the current string, keeping its first [`SHOWN`].
    fn keep(&mut self, bytes: &[u8]) {
        self.run += bytes.len();
        let room = SHOWN.saturating_sub(self.current.len());
        self.current
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
    }
}

impl<R: std::io::Read> std::io::Read for StringLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.scan(&buf[..n]) {
            CUT.set(Some(Cut::Label {
                after: String::from_utf8_lossy(&self.last).into_owned(),
                start: String::from_utf8_lossy(&self.current).into_owned(),
            }));
            return Err(std::io::Error::other("a string longer than max_label_kib"));
        }
        Ok(n)
    }
}

#[derive(Deserialize)]
#[serde(bound = "M: serde::de::DeserializeOwned")]
pub(super) struct Envelope<M> {
    pub(super) status: String,
    #[serde(default)]
    pub(super) data: Option<Data<M>>,
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default, rename = "errorType")]
    pub(super) error_type: Option<String>,
    #[serde(default)]
    pub(super) warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(
    tag = "resultType",
    content = "result",
    rename_all = "lowercase",
    bound = "M: serde::de::DeserializeOwned"
)]
pub(super) enum Data<M> {
    Vector(Vec<VectorItem<M>>),
    Matrix(Vec<MatrixItem<M>>),
    Scalar(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

/// Why an answer holding a scalar or a string is refused.
pub(super) const NOT_A_VECTOR: &str = "a scalar or string where a vector was expected";

/// Why an answer's data gave no series.
#[derive(Debug)]
pub(super) enum NoSeries<M> {
    /// A scalar or string.
    NotAVector,
    /// A series with two different values at one instant.
    Conflict(M, super::Conflict),
}

impl<M> Data<M> {
    /// Each series with its samples in ascending time (sorted, exact
    /// repeats dropped, said once); an error for a scalar or string, or a
    /// series holding two values at one instant.
    pub(super) fn into_series(self) -> Result<Vec<(M, Vec<Sample>)>, NoSeries<M>> {
        match self {
            Data::Vector(items) => Ok(items
                .into_iter()
                .filter(|item| super::finite(item.value.0.value))
                .map(|item| (item.metric, vec![item.value.0]))
                .collect()),
            Data::Matrix(items) => {
                let mut reordered = 0;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let samples = item.values.into_iter().map(|p| p.0);
                    let mut samples: Vec<Sample> =
                        samples.filter(|s| super::finite(s.value)).collect();
                    match super::ascending(&mut samples) {
                        Ok(changed) => reordered += usize::from(changed),
                        Err(conflict) => return Err(NoSeries::Conflict(item.metric, conflict)),
                    }
                    out.push((item.metric, samples));
                }
                if reordered > 0 {
                    tracing::warn!(
                        "{reordered} series came with samples out of time order or repeated \
                         (a proxy or store in front of Prometheus?): sorted, exact repeats dropped"
                    );
                }
                Ok(out)
            }
            Data::Scalar(_) | Data::String(_) => Err(NoSeries::NotAVector),
        }
    }
}

/// Decodes the body of a successful query the way every query does
/// (labels and samples parsed in place), or says why it is not a vector or
/// matrix answer. For the fuzz target (`fuzz/`); queries stream instead.
#[doc(hidden)]
pub fn decode_answer(body: &[u8]) -> Result<Vec<(Labels, Vec<Sample>)>, String> {
    let envelope: Envelope<Labels> = serde_json::from_reader(std::io::BufReader::new(body))
        .map_err(|e| format!("not Prometheus API JSON ({e})"))?;
    if envelope.status != "success" {
        return Err(envelope.error.unwrap_or_default());
    }
    envelope
        .data
        .ok_or_else(|| "no `data`".to_owned())?
        .into_series()
        .map_err(|e| match e {
            NoSeries::NotAVector => NOT_A_VECTOR.to_owned(),
            NoSeries::Conflict(labels, c) => format!("{labels:?} has two values at {}", c.t_ms),
        })
}

#[derive(Deserialize)]
#[serde(bound = "M: serde::de::DeserializeOwned")]
pub(super) struct VectorItem<M> {
    metric: M,
    value: Point,
}

#[derive(Deserialize)]
#[serde(bound = "M: serde::de::DeserializeOwned")]
pub(super) struct MatrixItem<M> {
    metric: M,
    values: Vec<Point>,
}

/// A sample as the API writes it, `[1748822400.5, "12.25"]`, read into a
/// [`Sample`] without keeping the value's string.
struct Point(Sample);

/// A sample's value, a string such as `"12.25"`, `"NaN"` or `"+Inf"`, parsed
/// where it lies in the answer.
struct SampleValue;

impl<'de> serde::de::DeserializeSeed<'de> for SampleValue {
    type Value = f64;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<f64, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SampleValue {
    type Value = f64;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sample value as a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
        v.parse()
            .map_err(|_| E::custom(format!("sample value `{v}` is not a number")))
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Point;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sample [unix seconds, \"value\"]")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Point, A::Error> {
                use serde::de::Error;
                let t: f64 = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let value = seq
                    .next_element_seed(SampleValue)?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                tally_sample()?;
                Ok(Point(Sample {
                    t_ms: (t * 1000.0).round() as i64,
                    value,
                }))
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide() -> Bounds {
        Bounds {
            series: usize::MAX,
            decoded: u64::MAX,
            label: usize::MAX,
            pool: Pool::default(),
        }
    }

    fn vector(series: &[(&str, &str)]) -> String {
        let items: Vec<String> = series
            .iter()
            .map(|(name, value)| {
                format!(r#"{{"metric":{{"{name}":"{value}"}},"value":[1748736000,"1"]}}"#)
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            items.join(",")
        )
    }

    fn cut_of(body: &str, bounds: Bounds) -> Option<Cut> {
        decode_bounded::<Labels>(body.as_bytes(), bounds).err()?.1
    }

    /// A label past `max_label_kib` stops the reader before the parser
    /// holds it, naming the label; escaped quotes do not end a string.
    #[test]
    fn a_long_label_is_cut_and_named() {
        let long = format!("{}\\\"{}", "a".repeat(50), "b".repeat(100 << 10));
        let body = vector(&[("instance", "h"), ("uuid", &long)]);
        assert!(decode_bounded::<Labels>(body.as_bytes(), wide()).is_ok());
        let cut = cut_of(
            &body,
            Bounds {
                label: 64 << 10,
                ..wide()
            },
        );
        assert_eq!(
            cut,
            Some(Cut::Label {
                after: "uuid".into(),
                start: "a".repeat(SHOWN),
            })
        );
        let body = vector(&[("instance", &"h\\\"".repeat(1000))]);
        assert!(
            decode_bounded::<Labels>(
                body.as_bytes(),
                Bounds {
                    label: 4000,
                    ..wide()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn series_and_decoded_bytes_are_counted_as_they_come() {
        let body = vector(&[("uuid", "a"), ("uuid", "b"), ("uuid", "c")]);
        assert_eq!(
            cut_of(
                &body,
                Bounds {
                    series: 2,
                    ..wide()
                }
            ),
            Some(Cut::Series)
        );
        assert_eq!(
            cut_of(
                &body,
                Bounds {
                    series: 3,
                    ..wide()
                }
            ),
            None
        );
        let each = held_by_series(5, 1) + SAMPLE_BYTES;
        let fits = Bounds {
            decoded: 3 * each,
            ..wide()
        };
        assert!(decode_bounded::<Labels>(body.as_bytes(), fits).is_ok());
        let short = Bounds {
            decoded: 3 * each - 1,
            ..wide()
        };
        assert_eq!(cut_of(&body, short), Some(Cut::Decoded));
        assert_eq!(
            decode_bounded::<super::super::SeriesKey>(
                body.as_bytes(),
                Bounds {
                    series: 2,
                    ..wide()
                }
            )
            .err()
            .and_then(|e| e.1),
            Some(Cut::Series)
        );
    }

    /// Answers in flight share one budget, and give it back once decoded.
    #[test]
    fn answers_in_flight_share_the_budget() {
        let pool = Pool::default();
        let mut a = Share::new(&pool, 3 * STEP);
        let mut b = Share::new(&pool, 3 * STEP);
        assert!(a.add(2 * STEP));
        assert!(!b.add(2 * STEP), "4 steps in a pool of 3");
        drop(a);
        assert!(b.add(STEP), "a's given back");
        b.give_back(3 * STEP);
        drop(b);
        assert_eq!(pool.0.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn a_matrix_out_of_order_is_sorted_and_conflicts_refused() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"uuid":"a"},"values":[[3,"3"],[1,"1"],[2,"2"],[1,"1"]]}]}}"#;
        let series = decode_answer(body.as_bytes()).unwrap();
        let times: Vec<i64> = series[0].1.iter().map(|s| s.t_ms).collect();
        assert_eq!(times, [1000, 2000, 3000]);
        let body = body.replace(r#"[1,"1"]]"#, r#"[1,"1.5"]]"#);
        let e = decode_answer(body.as_bytes()).unwrap_err();
        assert!(e.contains("two values at 1000"), "{e}");
    }
}
