//! Plugin parameters: the policy's values checked against a plugin's
//! `describe()`, with defaults applied, and `${param}` placeholders in the
//! measurements a model declares.

use std::collections::BTreeMap;

use super::bindings::{Measurement, Param, ParamKind, ParamSpec, ParamValue};

/// One thing wrong with the parameters a policy gives a plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamProblem {
    /// The parameter.
    pub param: String,
    /// What is wrong, and what is expected.
    pub reason: String,
}

/// Checks `given` against `specs`: unknown names, wrong types and missing
/// required parameters are problems (all of them reported); defaults fill the rest.
pub fn resolve_params(
    specs: &[ParamSpec],
    given: &BTreeMap<String, toml::Value>,
) -> Result<Vec<Param>, Vec<ParamProblem>> {
    let mut problems = Vec::new();
    for name in given.keys() {
        if !specs.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            problems.push(ParamProblem {
                param: name.clone(),
                reason: format!(
                    "unknown parameter; this plugin takes: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
    }
    let mut params = Vec::with_capacity(specs.len());
    for spec in specs {
        let value = match given.get(&spec.name) {
            Some(value) => match convert(spec.kind, value) {
                Some(v) => v,
                None => {
                    problems.push(ParamProblem {
                        param: spec.name.clone(),
                        reason: format!(
                            "expected {}, found {} `{value}`",
                            kind_name(spec.kind),
                            value.type_str()
                        ),
                    });
                    continue;
                }
            },
            None => match &spec.default {
                Some(default) => default.clone(),
                None => {
                    problems.push(ParamProblem {
                        param: spec.name.clone(),
                        reason: format!(
                            "required ({}): {}",
                            kind_name(spec.kind),
                            spec.description
                        ),
                    });
                    continue;
                }
            },
        };
        params.push(Param {
            name: spec.name.clone(),
            value,
        });
    }
    if problems.is_empty() {
        Ok(params)
    } else {
        Err(problems)
    }
}

fn convert(kind: ParamKind, value: &toml::Value) -> Option<ParamValue> {
    Some(match (kind, value) {
        (ParamKind::Text, toml::Value::String(s)) => ParamValue::Text(s.clone()),
        (ParamKind::Number, toml::Value::Float(x)) => ParamValue::Number(*x),
        (ParamKind::Number, toml::Value::Integer(x)) => ParamValue::Number(*x as f64),
        (ParamKind::Integer, toml::Value::Integer(x)) => ParamValue::Integer(*x),
        (ParamKind::Flag, toml::Value::Boolean(b)) => ParamValue::Flag(*b),
        _ => return None,
    })
}

/// How a kind is named in messages.
pub fn kind_name(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Text => "a string",
        ParamKind::Number => "a number",
        ParamKind::Integer => "an integer",
        ParamKind::Flag => "true or false",
    }
}

/// A parameter value as text, for `${param}` substitution and display.
pub fn value_text(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(s) => s.clone(),
        ParamValue::Number(x) => x.to_string(),
        ParamValue::Integer(x) => x.to_string(),
        ParamValue::Flag(b) => b.to_string(),
    }
}

/// Replaces every `${name}` in `text` by the value of parameter `name`.
pub fn substitute(text: &str, params: &[Param]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("${") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let name = &after[..close];
        let param = params
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("`{text}` refers to `${{{name}}}`, which is not a parameter"))?;
        out.push_str(&value_text(&param.value));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The model's measurements with `${param}` placeholders filled in.
pub fn expand_measurements(
    measurements: &[Measurement],
    params: &[Param],
) -> Result<Vec<Measurement>, String> {
    let sub = |s: &str| substitute(s, params);
    measurements
        .iter()
        .map(|m| {
            Ok(match m {
                Measurement::Counter(c) => {
                    let mut c = c.clone();
                    c.selector = sub(&c.selector)?;
                    c.key_label = sub(&c.key_label)?;
                    Measurement::Counter(c)
                }
                Measurement::Gauge(g) => {
                    let mut g = g.clone();
                    g.selector = sub(&g.selector)?;
                    g.key_label = sub(&g.key_label)?;
                    Measurement::Gauge(g)
                }
                Measurement::Template(t) => {
                    let mut t = t.clone();
                    t.query = sub(&t.query)?;
                    t.key_label = t.key_label.as_deref().map(sub).transpose()?;
                    Measurement::Template(t)
                }
                other => other.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, v: &str) -> Param {
        Param {
            name: name.into(),
            value: ParamValue::Text(v.into()),
        }
    }

    #[test]
    fn substitutes_placeholders() {
        let p = [text("metric", "m_total"), text("key", "uuid")];
        assert_eq!(
            substitute("${metric}{job=\"x\"}", &p).unwrap(),
            "m_total{job=\"x\"}"
        );
        assert!(substitute("${nope}", &p).is_err());
        assert!(substitute("${metric", &p).is_err());
    }

    #[test]
    fn resolves_defaults_types_and_unknowns() {
        let specs = vec![
            ParamSpec {
                name: "metric".into(),
                description: "counter".into(),
                kind: ParamKind::Text,
                default: Some(ParamValue::Text("m".into())),
            },
            ParamSpec {
                name: "pue".into(),
                description: "facility factor".into(),
                kind: ParamKind::Number,
                default: None,
            },
        ];
        let mut given = BTreeMap::new();
        given.insert("pue".to_owned(), toml::Value::Integer(1));
        let got = resolve_params(&specs, &given).unwrap();
        assert_eq!(got[0].value, ParamValue::Text("m".into()));
        assert_eq!(got[1].value, ParamValue::Number(1.0));
        given.insert("pue".to_owned(), toml::Value::String("x".into()));
        given.insert("bogus".to_owned(), toml::Value::Boolean(true));
        let problems = resolve_params(&specs, &given).unwrap_err();
        assert_eq!(problems.len(), 2);
    }
}
