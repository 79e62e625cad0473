//! A series' labels and identity, compact enough to hold 100,000 of them.

use std::fmt;

use serde::Deserialize;

/// A series' labels (without `__name__`), sorted by name, in two allocations:
/// the names and values back to back, and where each ends. A `BTreeMap` of
/// `String`s costs about five times as much per series.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    text: Box<str>,
    /// End offsets in `text`: name 0, value 0, name 1, value 1, …
    ends: Box<[u32]>,
}

impl Labels {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Whether label `name` is present.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The labels as (name, value), sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.chunks_exact(2).map(move |pair| {
            let (name_end, value_end) = (pair[0] as usize, pair[1] as usize);
            let name = &self.text[start..name_end];
            let value = &self.text[name_end..value_end];
            start = value_end;
            (name, value)
        })
    }

    /// The series' identity.
    pub fn key(&self) -> SeriesKey {
        let mut key = SeriesKey(0);
        for (name, value) in self.iter() {
            key.add(name, value);
        }
        key
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    /// Sorts by name; drops `__name__`; the last of a repeated name wins.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut pairs: Vec<(K, V)> = pairs
            .into_iter()
            .filter(|(n, _)| n.as_ref() != "__name__")
            .collect();
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut text = String::with_capacity(
            pairs
                .iter()
                .map(|(n, v)| n.as_ref().len() + v.as_ref().len())
                .sum(),
        );
        let mut ends: Vec<u32> = Vec::with_capacity(pairs.len() * 2);
        for (i, (name, value)) in pairs.iter().enumerate() {
            let repeated = pairs
                .get(i + 1)
                .is_some_and(|(next, _)| next.as_ref() == name.as_ref());
            if repeated {
                continue;
            }
            let (name, value) = (name.as_ref(), value.as_ref());
            // Offsets are u32: a label set past 4 GiB keeps the labels that fit.
            let Ok(value_end) = u32::try_from(text.len() + name.len() + value.len()) else {
                break;
            };
            text.push_str(name);
            ends.push(value_end - value.len() as u32);
            text.push_str(value);
            ends.push(value_end);
        }
        Self {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Pair by pair, as a sorted map of the same labels would order.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'de> Deserialize<'de> for Labels {
    /// Reads the names and values straight into one buffer (no string per
    /// label). Prometheus sends them sorted; any other order is sorted here.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Labels, A::Error> {
                let mut text = String::new();
                // (name start, name end, value end) per label, in answer order.
                let mut spans: Vec<(usize, usize, usize)> = Vec::new();
                loop {
                    let start = text.len();
                    if map.next_key_seed(AppendStr(&mut text))?.is_none() {
                        break;
                    }
                    let name_end = text.len();
                    map.next_value_seed(AppendStr(&mut text))?;
                    if &text[start..name_end] == "__name__" {
                        text.truncate(start);
                    } else {
                        spans.push((start, name_end, text.len()));
                    }
                }
                super::answer::tally_series(text.len(), spans.len())?;
                let name = |&(a, b, _): &(usize, usize, usize)| &text[a..b];
                let sorted = spans.windows(2).all(|w| name(&w[0]) < name(&w[1]));
                if !sorted || u32::try_from(text.len()).is_err() {
                    return Ok(spans
                        .iter()
                        .map(|&(a, b, c)| (&text[a..b], &text[b..c]))
                        .collect());
                }
                let ends = spans
                    .iter()
                    .flat_map(|&(_, b, c)| [b as u32, c as u32])
                    .collect();
                Ok(Labels {
                    text: text.into_boxed_str(),
                    ends,
                })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Appends a JSON string to a buffer, allocating nothing of its own.
struct AppendStr<'a>(&'a mut String);

impl<'de> serde::de::DeserializeSeed<'de> for AppendStr<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AppendStr<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// A series' identity: an order-independent 128-bit hash of its labels
/// (`__name__` left out, as in [`Labels`]), read straight from an answer
/// without keeping the labels. A label name repeated in an answer (which
/// Prometheus never sends) is hashed twice, while [`Labels`] keeps its last
/// value, so the two keys of such a series differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey(u128);

impl SeriesKey {
    fn add(&mut self, name: &str, value: &str) {
        use std::hash::{Hash, Hasher};
        if name == "__name__" {
            return;
        }
        let half = |salt: u8| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (salt, name, value).hash(&mut h);
            h.finish()
        };
        // A sum of per-label hashes: the same whatever order the labels come in.
        self.0 = self
            .0
            .wrapping_add((u128::from(half(1)) << 64) | u128::from(half(2)));
    }
}

impl<'de> Deserialize<'de> for SeriesKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SeriesKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SeriesKey, A::Error> {
                let mut key = SeriesKey(0);
                let mut pair = String::new();
                let mut labels = 0;
                while map.next_key_seed(AppendStr(&mut pair))?.is_some() {
                    let name_end = pair.len();
                    map.next_value_seed(AppendStr(&mut pair))?;
                    key.add(&pair[..name_end], &pair[name_end..]);
                    pair.clear();
                    labels += 1;
                }
                // Only the key is held, whatever the labels' length.
                super::answer::tally_series(0, labels)?;
                Ok(key)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_without_name_and_keyed_like_the_answer() {
        let labels: Labels = [("uuid", "a"), ("__name__", "m"), ("instance", "h:9100")]
            .into_iter()
            .collect();
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("instance", "h:9100"), ("uuid", "a")]
        );
        assert_eq!(labels.get("uuid"), Some("a"));
        assert_eq!(labels.get("__name__"), None);
        let parsed: SeriesKey =
            serde_json::from_str(r#"{"uuid":"a","instance":"h:9100","__name__":"x"}"#).unwrap();
        assert_eq!(labels.key(), parsed);
        let parsed: Labels =
            serde_json::from_str(r#"{"uuid":"a","__name__":"x","instance":"h:9100"}"#).unwrap();
        assert_eq!(parsed, labels);
    }

    #[test]
    fn unsorted_answers_are_sorted_and_the_last_repeated_name_wins() {
        let parsed: Labels =
            serde_json::from_str(r#"{"uuid":"a","instance":"h","__name__":"m","instance":"g"}"#)
                .unwrap();
        assert_eq!(
            parsed.iter().collect::<Vec<_>>(),
            [("instance", "g"), ("uuid", "a")]
        );
        let built: Labels = [("instance", "g"), ("uuid", "a")].into_iter().collect();
        assert_eq!(parsed, built);
        assert_eq!(parsed.key(), built.key());
    }

    #[test]
    fn empty_values_and_order_like_a_map() {
        let a: Labels = [("a", ""), ("b", "1")].into_iter().collect();
        let b: Labels = [("a", "x")].into_iter().collect();
        assert_eq!(a.get("a"), Some(""));
        assert!(a < b, "(a,\"\") sorts before (a,\"x\")");
        assert_ne!(a.key(), b.key());
    }
}
