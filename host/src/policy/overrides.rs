//! `--set KEY=VALUE`: a policy key overridden on the command line by its
//! dotted path, with a TOML value.
//!
//! Overrides are applied to the policy's text with `toml_edit` (which keeps
//! the file's own lines as they are, replacing a value in place or adding the
//! key, and a missing table, where it belongs), so the result goes through
//! exactly the validation the file does. A line map then says, for every line
//! of the result, which line of the file it is, or which `--set` made it, so
//! every problem still names `file:line:column`, or `--set KEY`.

use std::fmt;
use std::str::FromStr;

use toml_edit::{DocumentMut, ImDocument, Item, Key, Value};

/// One `--set KEY=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The dotted key, e.g. `model.params.metric`.
    pub key: String,
    /// The TOML value as typed, e.g. `"kepler_vm_cpu_joules_total"` or `900`.
    pub value: String,
}

impl FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => Ok(Self {
                key: key.trim().to_owned(),
                value: value.trim().to_owned(),
            }),
            _ => Err(format!(
                "`{s}` is not KEY=VALUE (e.g. --set window.step_secs=900, \
                 --set model.params.metric='\"kepler_vm_cpu_joules_total\"')"
            )),
        }
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--set {}={}", self.key, self.value)
    }
}

/// Where a line of the overridden text comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// Line `n` (1-based) of the file.
    File(usize),
    /// Written by `--set KEY`.
    Set(String),
}

/// An override that cannot be applied, and why.
#[derive(Debug, PartialEq)]
pub struct OverrideProblem {
    /// The override's key.
    pub key: String,
    /// What is wrong, and how to write it.
    pub message: String,
}

/// The policy text with `overrides` applied, and the origin of each of its
/// lines (empty: every line is the file's own). Text that does not parse is
/// returned as it is: its syntax error is what the policy parse reports.
pub fn apply(
    text: &str,
    overrides: &[Override],
) -> Result<(String, Vec<Origin>), Vec<OverrideProblem>> {
    if overrides.is_empty() {
        return Ok((text.to_owned(), Vec::new()));
    }
    let mut doc: DocumentMut = match text.parse() {
        Ok(doc) => doc,
        // The file's own syntax error is reported by the parse that follows.
        Err(_) => return Ok((text.to_owned(), Vec::new())),
    };
    let mut problems = Vec::new();
    let mut paths = Vec::with_capacity(overrides.len());
    for o in overrides {
        match set(&mut doc, o) {
            Ok(path) => paths.push((path, o.key.clone())),
            Err(message) => problems.push(OverrideProblem {
                key: o.key.clone(),
                message,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let new_text = doc.to_string();
    let origins = origins(text, &new_text, &paths);
    Ok((new_text, origins))
}

/// Sets one override in `doc`, creating missing tables; returns its key path.
fn set(doc: &mut DocumentMut, o: &Override) -> Result<Vec<Key>, String> {
    let path = Key::parse(&o.key).map_err(|e| {
        format!(
            "`{}` is not a dotted key{}; quote parts with dots: --set 'idle_power.\"cmp-0*\"=90'",
            o.key,
            match one_line(e.message()) {
                m if m.is_empty() => m,
                m => format!(" ({m})"),
            }
        )
    })?;
    let value: Value = o.value.parse().map_err(|e: toml_edit::TomlError| {
        format!(
            "`{}` is not a TOML value ({}); a string needs quotes: --set {}='\"{}\"'",
            o.value,
            one_line(e.message()),
            o.key,
            o.value
        )
    })?;
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    let mut table = doc.as_table_mut() as &mut dyn toml_edit::TableLike;
    let mut walked = Vec::new();
    let mut keys = parents.iter().peekable();
    while let Some(key) = keys.next() {
        walked.push(key.get().to_owned());
        // `rules.0.…` where the file has no `[[rules]]`: --set edits an entry, never adds one.
        let indexed = keys
            .peek()
            .is_some_and(|k| k.get().parse::<usize>().is_ok());
        if indexed && table.get(key.get()).is_none() {
            return Err(format!(
                "the policy has no [[{0}]]: --set can change the keys of a [[{0}]] entry the \
                 file has, not add one; add it to the file",
                walked.join(".")
            ));
        }
        let item = table.entry_format(key).or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        // `[[rules]]` and `[[outputs]]`: the next part is an index (`rules.0.plugin`).
        if let Item::ArrayOfTables(array) = item {
            let (len, array_path) = (array.len(), walked.join("."));
            let index = keys.next().and_then(|k| {
                walked.push(k.get().to_owned());
                k.get().parse::<usize>().ok()
            });
            table = index
                .and_then(|i| array.get_mut(i))
                .map(|t| t as &mut dyn toml_edit::TableLike)
                .ok_or_else(|| {
                    format!(
                        "`{array_path}` holds {len} table(s) in the policy: name one by its \
                         index from 0 (--set {array_path}.0.KEY=VALUE)"
                    )
                })?;
            continue;
        }
        table = item.as_table_like_mut().ok_or_else(|| {
            format!(
                "`{}` is a value in the policy, not a table that `{}` could be set in",
                walked.join("."),
                o.key
            )
        })?;
    }
    match table.get_mut(last.get()) {
        // In place: the file's line keeps its number.
        Some(item) if item.is_value() => {
            let decor = item.as_value().map(|v| v.decor().clone());
            let mut value = value;
            if let Some(decor) = decor {
                *value.decor_mut() = decor;
            }
            *item = Item::Value(value);
        }
        Some(_) => {
            return Err(format!(
                "`{}` is a table in the policy; set its keys one by one (--set {}.KEY=VALUE)",
                o.key, o.key
            ));
        }
        None => {
            table.insert(last.get(), Item::Value(value));
        }
    }
    Ok(path)
}

/// A parser's message on one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The origin of each line of `new` (a copy of `old` with overrides applied
/// at `paths`): the file's line where the two agree, else the `--set` whose
/// value is on that line or, for a table header it added, the first one below.
fn origins(old: &str, new: &str, paths: &[(Vec<Key>, String)]) -> Vec<Origin> {
    let set_lines: Vec<(usize, &str)> = match ImDocument::parse(new) {
        Ok(doc) => {
            let mut lines: Vec<(usize, &str)> = paths
                .iter()
                .filter_map(|(path, key)| {
                    let (last, parents) = path.split_last()?;
                    let mut table: &dyn toml_edit::TableLike = doc.as_table();
                    let mut parts = parents.iter();
                    while let Some(k) = parts.next() {
                        table = match table.get(k.get())? {
                            // An array of tables is indexed by the next part.
                            Item::ArrayOfTables(array) => {
                                array.get(parts.next()?.get().parse().ok()?)?
                            }
                            item => item.as_table_like()?,
                        };
                    }
                    let item = table.get(last.get())?;
                    let start = item.span()?.start;
                    Some((new[..start].matches('\n').count() + 1, key.as_str()))
                })
                .collect();
            lines.sort();
            lines
        }
        Err(_) => Vec::new(),
    };
    let set_at = |line: usize| {
        let key = set_lines
            .iter()
            .find(|(l, _)| *l >= line)
            .or(set_lines.last())
            .map_or("", |(_, k)| *k);
        Origin::Set(key.to_owned())
    };
    let diff = similar::TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for change in diff.iter_all_changes() {
        match (change.tag(), change.old_index(), change.new_index()) {
            (similar::ChangeTag::Equal, Some(old), Some(_)) => out.push(Origin::File(old + 1)),
            (similar::ChangeTag::Insert, _, Some(new)) => out.push(set_at(new + 1)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(key: &str, value: &str) -> Override {
        Override {
            key: key.into(),
            value: value.into(),
        }
    }

    const POLICY: &str = "[site]\nname = \"S\" # who\n\n[model]\nplugin = \"libvirt-joules\"\n\n[model.params]\nkey_label = \"uuid\"\n\n[window]\nstep_secs = 3600\n";

    #[test]
    fn replaces_in_place_adds_keys_and_tables_and_keeps_the_files_lines() {
        let (text, origins) = apply(
            POLICY,
            &[
                o("model.params.metric", "\"kepler_vm_cpu_joules_total\""),
                o("window.step_secs", "900"),
                o("carbon.pue", "1.5"),
            ],
        )
        .unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            parsed["model"]["params"]["metric"].as_str(),
            Some("kepler_vm_cpu_joules_total")
        );
        assert_eq!(
            parsed["model"]["params"]["key_label"].as_str(),
            Some("uuid")
        );
        assert_eq!(parsed["window"]["step_secs"].as_integer(), Some(900));
        assert_eq!(parsed["carbon"]["pue"].as_float(), Some(1.5));
        assert!(text.contains("name = \"S\" # who"), "{text}");
        // Every line knows where it came from.
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap();
        assert_eq!(origins[line_of("[window]")], Origin::File(10));
        assert_eq!(origins[line_of("key_label")], Origin::File(8));
        assert_eq!(
            origins[line_of("metric")],
            Origin::Set("model.params.metric".into())
        );
        assert_eq!(
            origins[line_of("step_secs")],
            Origin::Set("window.step_secs".into())
        );
        assert_eq!(
            origins[line_of("[carbon]")],
            Origin::Set("carbon.pue".into())
        );
    }

    #[test]
    fn says_how_to_write_what_it_cannot_apply() {
        let problems = apply(
            POLICY,
            &[o("model.params.idle", "vcpus"), o("site.name.x", "1")],
        )
        .unwrap_err();
        assert_eq!(problems[0].key, "model.params.idle");
        assert!(
            problems[0]
                .message
                .contains("a string needs quotes: --set model.params.idle='\"vcpus\"'"),
            "{}",
            problems[0].message
        );
        assert!(
            problems[1].message.contains("`site.name` is a value"),
            "{}",
            problems[1].message
        );
        assert_eq!(
            "window.step_secs".parse::<Override>().unwrap_err(),
            "`window.step_secs` is not KEY=VALUE (e.g. --set window.step_secs=900, --set model.params.metric='\"kepler_vm_cpu_joules_total\"')"
        );
    }
}
