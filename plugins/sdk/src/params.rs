//! Typed access to the parameters of a call.

use crate::{Param, ParamValue};

/// The parameters of one call, as the host passes them: every declared
/// parameter is present (defaults applied) and has its declared kind.
///
/// The getters therefore fail only on a name the plugin did not declare or a
/// kind it did not declare, both plugin bugs; their `Err` is a readable
/// message that can be returned from `attribute` / `render` with `?`.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<Param>);

impl Params {
    /// Wraps the host's list.
    pub fn new(params: Vec<Param>) -> Self {
        Self(params)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.iter().find(|p| p.name == name).map(|p| &p.value)
    }

    /// The text parameter `name`.
    pub fn text(&self, name: &str) -> Result<&str, String> {
        match self.require(name)? {
            ParamValue::Text(s) => Ok(s),
            other => Err(mismatch(name, "text", other)),
        }
    }

    /// The number parameter `name` (an integer value is widened to f64).
    pub fn number(&self, name: &str) -> Result<f64, String> {
        match self.require(name)? {
            ParamValue::Number(n) => Ok(*n),
            ParamValue::Integer(i) => Ok(*i as f64),
            other => Err(mismatch(name, "a number", other)),
        }
    }

    /// The integer parameter `name`.
    pub fn integer(&self, name: &str) -> Result<i64, String> {
        match self.require(name)? {
            ParamValue::Integer(i) => Ok(*i),
            other => Err(mismatch(name, "an integer", other)),
        }
    }

    /// The word of the `choice` parameter `name` (one of its declared values).
    pub fn choice(&self, name: &str) -> Result<&str, String> {
        match self.require(name)? {
            ParamValue::Choice(s) => Ok(s),
            other => Err(mismatch(name, "a choice", other)),
        }
    }

    /// The value of a choice parameter that also accepts a number.
    pub fn setting(&self, name: &str) -> Result<Setting<'_>, String> {
        match self.require(name)? {
            ParamValue::Choice(s) => Ok(Setting::Word(s)),
            ParamValue::Number(x) => Ok(Setting::Number(*x)),
            ParamValue::Integer(x) => Ok(Setting::Number(*x as f64)),
            other => Err(mismatch(name, "a choice or a number", other)),
        }
    }

    /// The (pattern, number) pairs of the `number-table` parameter `name`,
    /// in the policy's order.
    pub fn table(&self, name: &str) -> Result<&[(String, f64)], String> {
        match self.require(name)? {
            ParamValue::Table(entries) => Ok(entries),
            other => Err(mismatch(name, "a table", other)),
        }
    }

    /// The number of the first pattern of table `name` that matches `key`
    /// (a host or a flavor) as a glob (`*`, `?`).
    pub fn lookup(&self, name: &str, key: &str) -> Result<Option<f64>, String> {
        Ok(self
            .table(name)?
            .iter()
            .find(|(pattern, _)| glob_match(pattern, key))
            .map(|(_, x)| *x))
    }

    /// The flag (boolean) parameter `name`.
    pub fn flag(&self, name: &str) -> Result<bool, String> {
        match self.require(name)? {
            ParamValue::Flag(b) => Ok(*b),
            other => Err(mismatch(name, "a flag", other)),
        }
    }

    /// All parameters, in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    /// The underlying list.
    pub fn into_inner(self) -> Vec<Param> {
        self.0
    }

    fn require(&self, name: &str) -> Result<&ParamValue, String> {
        self.get(name)
            .ok_or_else(|| format!("parameter `{name}` is missing (is it declared in describe()?)"))
    }
}

impl From<Vec<Param>> for Params {
    fn from(params: Vec<Param>) -> Self {
        Self(params)
    }
}

/// A choice parameter that also accepts a number: the word or the number given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Setting<'a> {
    /// One of the declared words, e.g. `auto`.
    Word(&'a str),
    /// A number within the declared bounds.
    Number(f64),
}

fn mismatch(name: &str, wanted: &str, got: &ParamValue) -> String {
    let got = match got {
        ParamValue::Text(_) => "text",
        ParamValue::Number(_) => "a number",
        ParamValue::Integer(_) => "an integer",
        ParamValue::Flag(_) => "a flag",
        ParamValue::Choice(_) => "a choice",
        ParamValue::Table(_) => "a table",
    };
    format!("parameter `{name}` is {got}, expected {wanted}")
}

/// Whether `text` matches the glob `pattern`: `*` any run of characters,
/// `?` one character, everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("gpu-*", "gpu-01"));
        assert!(glob_match("*", ""));
        assert!(glob_match("cmp-0?", "cmp-07"));
        assert!(glob_match("*-large*", "m1-large-x"));
        assert!(!glob_match("gpu-*", "cmp-01"));
        assert!(!glob_match("cmp-0?", "cmp-10"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}
