//! Policy problems located in the file: `file:line:column`, the key, what is expected.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::overrides::Origin;
use crate::config::{ConfigProblem, Place, join};

/// The policy text, kept to turn byte spans into lines and columns.
#[derive(Debug)]
pub struct Source {
    /// The file as given.
    pub path: PathBuf,
    /// Its contents, with any `--set` overrides applied.
    pub text: String,
    /// Where each line of `text` comes from (empty: the file, line for line).
    pub origins: Vec<Origin>,
}

impl Source {
    /// Wraps a file's text.
    pub fn new(path: &Path, text: String) -> Arc<Self> {
        Self::with_origins(path, text, Vec::new())
    }

    /// Wraps a file's text with `--set` overrides applied, and the origin of each line.
    pub fn with_origins(path: &Path, text: String, origins: Vec<Origin>) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_owned(),
            text,
            origins,
        })
    }

    /// Where a byte offset of the text is: `file:line:column`, or `--set KEY`
    /// (and that key) for a line an override wrote.
    fn locate(&self, offset: usize) -> (String, Option<String>) {
        let (line, column) = self.line_col(offset);
        match self.origins.get(line - 1) {
            Some(Origin::Set(key)) => (format!("--set {key}"), Some(key.clone())),
            Some(Origin::File(line)) => (format!("{}:{line}:{column}", self.path.display()), None),
            None => (format!("{}:{line}:{column}", self.path.display()), None),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    /// Where `key = …` is set under the `[table]` header, as a byte offset
    /// (`None` for other layouts, such as inline tables or dotted keys).
    pub fn find_key(&self, table: &str, key: &str) -> Option<usize> {
        let mut offset = 0;
        let mut in_table = false;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                in_table = trimmed.trim_matches(|c| c == '[' || c == ']').trim() == table;
            } else if in_table
                && let Some((k, _)) = trimmed.split_once('=')
                && k.trim().trim_matches('"') == key
            {
                return Some(offset + (line.len() - line.trim_start().len()));
            }
            offset += line.len();
        }
        None
    }

    /// The dotted key at a byte offset, e.g. `model.params.metric`, read off the
    /// line and the nearest table header above it.
    pub fn key_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let header = |l: &str| -> Option<String> {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        };
        if let Some(h) = header(line) {
            return Some(h);
        }
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned());
        // Under `[[rules]]`, the key of the n-th entry is `rules[n]`.
        let before = &self.text[..line_start];
        let table = before
            .lines()
            .rev()
            .find(|l| header(l).is_some())
            .and_then(|l| {
                let name = header(l)?;
                if !l.trim().starts_with("[[") {
                    return Some(name);
                }
                let n = before
                    .lines()
                    .filter(|l| l.trim().starts_with("[[") && header(l).as_deref() == Some(&name))
                    .count();
                Some(format!("{name}[{}]", n.saturating_sub(1)))
            });
        match (table, key) {
            (Some(t), Some(k)) => Some(format!("{t}.{k}")),
            (None, Some(k)) => Some(k),
            (t, None) => t,
        }
    }
}

/// One thing wrong with a policy.
#[derive(Debug, Clone)]
pub struct Problem {
    /// `file:line:column`, when the problem has a place in the file.
    pub location: Option<String>,
    /// The key concerned, dotted (`model.params.metric`).
    pub key: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl Problem {
    /// A problem at a span of the file.
    pub fn at(
        source: &Source,
        span: Range<usize>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let (location, set_key) = source.locate(span.start);
        let key = match (key, set_key) {
            // `--set KEY` already names it.
            (Some(key), Some(set)) if key == set => None,
            (None, Some(_)) => None,
            (key, _) => key.or_else(|| source.key_at(span.start)),
        };
        Self {
            location: Some(location),
            key,
            message: message.into(),
        }
    }

    /// A section's own problem (keys relative to `section`), located: at
    /// its span, at its key's line, or with the file as a whole. A key into
    /// a sub-table (`zones."cmp-*"`) is found under `[section.zones]`, else
    /// at `zones = …` (an inline table) under `[section]`.
    pub fn of_section(source: &Source, section: &str, problem: ConfigProblem) -> Self {
        let ConfigProblem {
            key,
            message,
            place,
        } = problem;
        let dotted = join(section, &key);
        match place {
            Place::Span(span) => Self::at(source, span, Some(dotted), message),
            Place::File => Self::in_file(source, Some(dotted), message),
            Place::Key => {
                let offset = match key.split_once('.') {
                    Some((sub, name)) => source
                        .find_key(&format!("{section}.{sub}"), name.trim_matches('"'))
                        .or_else(|| source.find_key(section, sub)),
                    None => source.find_key(section, &key),
                };
                match offset {
                    Some(offset) => Self::at(source, offset..offset, Some(dotted), message),
                    None => Self::in_file(source, Some(dotted), message),
                }
            }
        }
    }

    /// A problem with the file as a whole.
    pub fn in_file(source: &Source, key: Option<String>, message: impl Into<String>) -> Self {
        Self {
            location: Some(source.path.display().to_string()),
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A policy that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("cannot read policy {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not the error chain).
        error: std::io::Error,
    },
    /// Syntax, keys, types, values, plugins or parameters are wrong.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys() {
        let src = Source::new(
            Path::new("p.toml"),
            "[site]\nname = \"x\"\n\n[model.params]\nmetric = 5\n".into(),
        );
        let offset = src.text.find('5').unwrap();
        assert_eq!(src.line_col(offset), (5, 10));
        assert_eq!(src.key_at(offset).as_deref(), Some("model.params.metric"));
        let src = Source::new(
            Path::new("p.toml"),
            "[[rules]]\nplugin = \"a\"\n[[rules]]\nmatch = { host = 5 }\n".into(),
        );
        let offset = src.text.find('5').unwrap();
        assert_eq!(src.key_at(offset).as_deref(), Some("rules[1].match"));
    }
}
