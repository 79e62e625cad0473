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

fn mismatch(name: &str, wanted: &str, got: &ParamValue) -> String {
    let got = match got {
        ParamValue::Text(_) => "text",
        ParamValue::Number(_) => "a number",
        ParamValue::Integer(_) => "an integer",
        ParamValue::Flag(_) => "a flag",
    };
    format!("parameter `{name}` is {got}, expected {wanted}")
}
