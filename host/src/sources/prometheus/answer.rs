//! The decoder of the Prometheus HTTP API's JSON answers: the envelope
//! (`status`, `data`, `error`, `warnings`), vector and matrix results, and
//! samples whose labels and values are parsed in place, as the answer
//! streams in (the client feeds it; [`decode_answer`] decodes a whole body).

use serde::Deserialize;

use super::labels::Labels;
use crate::energy::counter::Sample;

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

impl<M> Data<M> {
    /// Each series with its samples; none for a scalar or string.
    pub(super) fn into_series(self) -> Option<Vec<(M, Vec<Sample>)>> {
        match self {
            Data::Vector(items) => Some(
                items
                    .into_iter()
                    .filter(|item| super::finite(item.value.0.value))
                    .map(|item| (item.metric, vec![item.value.0]))
                    .collect(),
            ),
            Data::Matrix(items) => Some(
                items
                    .into_iter()
                    .map(|item| {
                        let samples = item.values.into_iter().map(|p| p.0);
                        (
                            item.metric,
                            samples.filter(|s| super::finite(s.value)).collect(),
                        )
                    })
                    .collect(),
            ),
            Data::Scalar(_) | Data::String(_) => None,
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
        .ok_or_else(|| NOT_A_VECTOR.to_owned())
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
                Ok(Point(Sample {
                    t_ms: (t * 1000.0).round() as i64,
                    value,
                }))
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}
