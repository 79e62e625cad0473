//! A TOML table read in the policy's order (a map would sort its keys),
//! for tables whose first matching key wins: the first written must be the
//! one tried first. toml's `preserve_order` keeps the file's order.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

/// The entries of a table in the order the policy writes them; `expecting`
/// says what the table should be, for a value that is not a table.
pub fn in_order<'de, D, V>(
    deserializer: D,
    expecting: &'static str,
) -> Result<Vec<(String, V)>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    /// Reads the table's entries as they come.
    struct InOrder<V> {
        expecting: &'static str,
        value: PhantomData<V>,
    }

    impl<'de, V: Deserialize<'de>> Visitor<'de> for InOrder<V> {
        type Value = Vec<(String, V)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }

    deserializer.deserialize_map(InOrder {
        expecting,
        value: PhantomData,
    })
}
