//! Plugin parameters: the policy's values checked against a plugin's
//! `describe()`, with defaults applied, and `${param}` placeholders in the
//! measurements a model declares.

use std::collections::BTreeMap;

use super::{Bounds, ChoiceSpec, Measurement, Param, ParamKind, ParamSpec, ParamValue};

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
            Some(value) => match convert(&spec.kind, value) {
                Ok(v) => v,
                Err(reason) => {
                    problems.push(ParamProblem {
                        param: spec.name.clone(),
                        reason,
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
                            kind_name(&spec.kind),
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

/// The policy's TOML value as a value of `kind`, or why it is not one
/// (naming the value and everything the kind allows).
fn convert(kind: &ParamKind, value: &toml::Value) -> Result<ParamValue, String> {
    let found = || match value {
        toml::Value::String(s) => format!("found {s:?}"),
        other => format!("found {} `{other}`", other.type_str()),
    };
    let mismatch = || format!("expected {}, {}", kind_name(kind), found());
    match (kind, value) {
        (ParamKind::Text, toml::Value::String(s)) => Ok(ParamValue::Text(s.clone())),
        (ParamKind::Number(bounds), _) => number(value)
            .filter(|x| within(bounds, *x))
            .map(ParamValue::Number)
            .ok_or_else(mismatch),
        (ParamKind::Integer(bounds), toml::Value::Integer(x)) if within(bounds, *x as f64) => {
            Ok(ParamValue::Integer(*x))
        }
        (ParamKind::Flag, toml::Value::Boolean(b)) => Ok(ParamValue::Flag(*b)),
        (ParamKind::Choice(choice), toml::Value::String(s)) if choice.values.contains(s) => {
            Ok(ParamValue::Choice(s.clone()))
        }
        (
            ParamKind::Choice(ChoiceSpec {
                or_number: Some(bounds),
                ..
            }),
            _,
        ) => number(value)
            .filter(|x| within(bounds, *x))
            .map(ParamValue::Number)
            .ok_or_else(mismatch),
        (ParamKind::NumberTable(bounds), toml::Value::Table(table)) => table
            .iter()
            .map(|(pattern, v)| match number(v) {
                Some(x) if within(bounds, x) => Ok((pattern.clone(), x)),
                _ => Err(format!(
                    "expected {}, found {} `{v}` at {pattern:?}",
                    kind_name(kind),
                    v.type_str()
                )),
            })
            .collect::<Result<_, _>>()
            .map(ParamValue::Table),
        _ => Err(mismatch()),
    }
}

/// A TOML integer or float as f64.
fn number(value: &toml::Value) -> Option<f64> {
    match value {
        toml::Value::Float(x) if x.is_finite() => Some(*x),
        toml::Value::Integer(x) => Some(*x as f64),
        _ => None,
    }
}

fn within(bounds: &Bounds, x: f64) -> bool {
    bounds.min.is_none_or(|min| x >= min) && bounds.max.is_none_or(|max| x <= max)
}

/// How a kind is named in messages, with its domain: every allowed word of
/// a choice, and the bounds of a number.
pub fn kind_name(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Text => "a string".to_owned(),
        ParamKind::Number(bounds) => format!("a number{}", bounds_text(bounds)),
        ParamKind::Integer(bounds) => format!("an integer{}", bounds_text(bounds)),
        ParamKind::Flag => "true or false".to_owned(),
        ParamKind::Choice(choice) => {
            let words: Vec<String> = choice.values.iter().map(|v| format!("{v:?}")).collect();
            let words = match words.len() {
                0 => String::new(),
                1 => words[0].clone(),
                n => format!("one of {} or {}", words[..n - 1].join(", "), words[n - 1]),
            };
            match &choice.or_number {
                Some(bounds) => format!("{words} or a number{}", bounds_text(bounds)),
                None => words,
            }
        }
        ParamKind::NumberTable(bounds) => format!(
            "a table of patterns to numbers{} (e.g. {{ \"gpu-*\" = 4.0, \"*\" = 3.5 }})",
            bounds_text(bounds)
        ),
    }
}

fn bounds_text(bounds: &Bounds) -> String {
    match (bounds.min, bounds.max) {
        (None, None) => String::new(),
        (Some(min), None) => format!(" ≥ {min}"),
        (None, Some(max)) => format!(" ≤ {max}"),
        (Some(min), Some(max)) => format!(" from {min} to {max}"),
    }
}

/// A parameter value as text, for `${param}` substitution and display.
pub fn value_text(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(s) | ParamValue::Choice(s) => s.clone(),
        ParamValue::Number(x) => x.to_string(),
        ParamValue::Integer(x) => x.to_string(),
        ParamValue::Flag(b) => b.to_string(),
        ParamValue::Table(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k:?} = {v}"))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
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

/// Whether the model's `gpu` parameter is `ignore` (the builtins'
/// `gpu = "passthrough" | "ignore"`): its `gpu` measurements are then not
/// made and it attributes no GPUs, as a model that declares none.
pub fn gpus_ignored(params: &[Param]) -> bool {
    params.iter().any(|p| {
        p.name == "gpu"
            && matches!(&p.value, ParamValue::Choice(w) | ParamValue::Text(w) if w == "ignore")
    })
}

/// The model's measurements with `${param}` placeholders filled in, without
/// its `gpu` ones where its `gpu` parameter is `ignore` ([`gpus_ignored`]).
pub fn expand_measurements(
    measurements: &[Measurement],
    params: &[Param],
) -> Result<Vec<Measurement>, String> {
    let sub = |s: &str| substitute(s, params);
    let ignored = gpus_ignored(params);
    measurements
        .iter()
        .filter(|m| !(ignored && matches!(m, Measurement::Gpu(_))))
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
                Measurement::Rapl(r) => {
                    let mut r = r.clone();
                    r.zones = r.zones.iter().map(|z| sub(z)).collect::<Result<_, _>>()?;
                    Measurement::Rapl(r)
                }
                Measurement::IdlePower(i) => {
                    let mut i = i.clone();
                    i.meter = sub(&i.meter)?;
                    i.setting = sub(&i.setting)?;
                    Measurement::IdlePower(i)
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
                kind: ParamKind::Number(Bounds {
                    min: None,
                    max: None,
                }),
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

    fn spec(name: &str, kind: ParamKind) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            description: String::new(),
            kind,
            default: None,
        }
    }

    #[test]
    fn checks_choices_bounds_and_tables() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let specs = vec![
            spec(
                "idle",
                ParamKind::Choice(ChoiceSpec {
                    values: words(&["none", "host", "equal"]),
                    or_number: None,
                }),
            ),
            spec(
                "idle_power",
                ParamKind::Choice(ChoiceSpec {
                    values: words(&["auto"]),
                    or_number: Some(Bounds {
                        min: Some(0.0),
                        max: None,
                    }),
                }),
            ),
            spec(
                "max_w",
                ParamKind::NumberTable(Bounds {
                    min: Some(0.0),
                    max: Some(1000.0),
                }),
            ),
            spec(
                "huge_mb",
                ParamKind::Integer(Bounds {
                    min: Some(1.0),
                    max: Some(64.0),
                }),
            ),
        ];
        let toml = |text: &str| -> BTreeMap<String, toml::Value> { toml::from_str(text).unwrap() };
        let ok = resolve_params(
            &specs,
            &toml("idle = \"host\"\nidle_power = 35\nmax_w = { \"gpu-*\" = 4.5, \"*\" = 3 }\nhuge_mb = 8"),
        )
        .unwrap();
        assert_eq!(ok[0].value, ParamValue::Choice("host".into()));
        assert_eq!(ok[1].value, ParamValue::Number(35.0));
        // The policy's order, not sorted: the first matching pattern wins.
        assert_eq!(
            ok[2].value,
            ParamValue::Table(vec![("gpu-*".into(), 4.5), ("*".into(), 3.0)])
        );
        let auto = resolve_params(
            &specs,
            &toml("idle = \"none\"\nidle_power = \"auto\"\nmax_w = {}\nhuge_mb = 1"),
        )
        .unwrap();
        assert_eq!(auto[1].value, ParamValue::Choice("auto".into()));

        let problems = resolve_params(
            &specs,
            &toml("idle = \"cpus\"\nidle_power = -5\nmax_w = { \"*\" = \"x\" }\nhuge_mb = 65"),
        )
        .unwrap_err();
        let reasons: Vec<&str> = problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "expected one of \"none\", \"host\" or \"equal\", found \"cpus\"",
                "expected \"auto\" or a number ≥ 0, found integer `-5`",
                "expected a table of patterns to numbers from 0 to 1000 (e.g. { \"gpu-*\" = 4.0, \"*\" = 3.5 }), found string `\"x\"` at \"*\"",
                "expected an integer from 1 to 64, found integer `65`",
            ]
        );
    }
}
