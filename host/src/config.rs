//! What every component's configuration shares: a check of its own settings
//! ([`Validate`]) and the problems it finds ([`ConfigProblem`]). Each section
//! of a policy validates itself; the policy only asks each section and
//! locates the answers in its file (`file:line:column`).

mod in_order;

use std::ops::Range;

use toml::Spanned;

pub use in_order::in_order;

/// A configuration that can say what is wrong with it before anything runs
/// (no network; a section may read a secret's file, as `[prometheus]` does).
pub trait Validate {
    /// Every problem with these settings, keys relative to this section.
    fn problems(&self) -> Vec<ConfigProblem>;
}

/// One thing wrong with a section's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigProblem {
    /// The key concerned, relative to the section (`timeout_secs`,
    /// `zones."cmp-*"`, `[2].messenger`); empty for the section as a whole.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
    /// Where in the policy text the problem is shown.
    pub place: Place,
}

/// Where a [`ConfigProblem`] is shown in the policy text.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// Where the file sets the key (`key = …` under its table's header),
    /// else the file as a whole.
    Key,
    /// A span of the text: a `Spanned` value's.
    Span(Range<usize>),
    /// The file as a whole.
    File,
}

impl ConfigProblem {
    /// A problem with `key`, shown where the file sets it.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            place: Place::Key,
        }
    }

    /// The same problem, shown at `span` of the text.
    pub fn at(self, span: Range<usize>) -> Self {
        Self {
            place: Place::Span(span),
            ..self
        }
    }

    /// The same problem, shown with the file as a whole.
    pub fn in_file(self) -> Self {
        Self {
            place: Place::File,
            ..self
        }
    }

    /// The same problem one level down, under `prefix` (a key or `[index]`).
    pub fn within(self, prefix: &str) -> Self {
        Self {
            key: join(prefix, &self.key),
            ..self
        }
    }
}

/// `key` under `prefix`: `prefix.key`, `prefix[i]…` for an index, or
/// `prefix` alone for an empty key.
pub fn join(prefix: &str, key: &str) -> String {
    if key.is_empty() {
        prefix.to_owned()
    } else if key.starts_with('[') {
        format!("{prefix}{key}")
    } else {
        format!("{prefix}.{key}")
    }
}

/// A section the policy may leave out has no problems when it does.
impl<T: Validate> Validate for Option<T> {
    fn problems(&self) -> Vec<ConfigProblem> {
        self.as_ref().map(T::problems).unwrap_or_default()
    }
}

/// A spanned section's problems without a place of their own are shown at it.
impl<T: Validate> Validate for Spanned<T> {
    fn problems(&self) -> Vec<ConfigProblem> {
        self.get_ref()
            .problems()
            .into_iter()
            .map(|p| match p.place {
                Place::Key => p.at(self.span()),
                _ => p,
            })
            .collect()
    }
}

/// An array of tables (`[[outputs]]`): each entry's problems under `[i]`.
impl<T: Validate> Validate for Vec<T> {
    fn problems(&self) -> Vec<ConfigProblem> {
        self.iter()
            .enumerate()
            .flat_map(|(i, entry)| {
                let index = format!("[{i}]");
                entry.problems().into_iter().map(move |p| p.within(&index))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_as_toml_writes_them() {
        assert_eq!(join("outputs", "[0].messenger"), "outputs[0].messenger");
        assert_eq!(join("carbon", "zones.\"cmp-*\""), "carbon.zones.\"cmp-*\"");
        assert_eq!(join("prometheus", ""), "prometheus");
    }
}
