//! Binding a policy to its plugins: load each plugin it names and check the
//! parameters given against the plugin's own `describe()`.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::error::{PolicyError, Problem, Source};
use super::types::{MessengerConfig, Policy};
use crate::runtime::{
    Format, Measurement, Model, Param, ParamSpec, Runtime, expand_measurements, resolve_params,
};
use crate::sources::prometheus::QueryTemplate;

/// A policy's plugins, loaded, with checked parameters.
pub struct Bound {
    /// The attribution model.
    pub model: Model,
    /// Its parameters, defaults applied.
    pub model_params: Vec<Param>,
    /// Its measurements with `${param}` placeholders filled in.
    pub measurements: Vec<Measurement>,
    /// Formats and their messengers, in policy order.
    pub outputs: Vec<BoundOutput>,
}

/// One `[[outputs]]` entry, bound.
pub struct BoundOutput {
    /// The format.
    pub format: Format,
    /// Its parameters, defaults applied.
    pub params: Vec<Param>,
    /// Where its payloads go.
    pub messenger: MessengerConfig,
}

/// Loads every plugin the policy names and checks their parameters; reports all problems at once.
pub fn bind(policy: &Policy, runtime: &Runtime) -> Result<Bound, PolicyError> {
    let fallback;
    let source = match policy.source() {
        Some(s) => s.as_ref(),
        None => {
            fallback = Source {
                path: "<policy>".into(),
                text: String::new(),
                origins: Vec::new(),
            };
            &fallback
        }
    };
    let mut problems = Vec::new();

    let model_ref = &policy.model.plugin;
    let model = match runtime.load_model(model_ref.get_ref()) {
        Ok(model) => Some(model),
        Err(e) => {
            problems.push(at(source, model_ref.span(), "model.plugin", e.to_string()));
            None
        }
    };
    let mut model_params = Vec::new();
    let mut measurements = Vec::new();
    if let Some(model) = &model
        && let Some(params) = check_params(
            source,
            &model.info().params,
            &policy.model.params,
            model_ref,
            "model.params",
            &model.id().to_string(),
            &mut problems,
        )
    {
        match expand_measurements(&model.info().measurements, &params) {
            Ok(m) => {
                for t in m.iter().filter_map(|m| match m {
                    Measurement::Template(t) => Some(t),
                    _ => None,
                }) {
                    if let Err(e) = QueryTemplate::parse(&t.query) {
                        problems.push(at(
                            source,
                            model_ref.span(),
                            "model.params",
                            format!("{}: {e}", model.id()),
                        ));
                    }
                }
                measurements = m;
            }
            Err(e) => problems.push(at(
                source,
                model_ref.span(),
                "model.params",
                format!("{}: {e}", model.id()),
            )),
        }
        model_params = params;
    }

    let mut outputs = Vec::new();
    for (i, output) in policy.outputs.iter().enumerate() {
        let key = format!("outputs[{i}]");
        match runtime.load_format(output.format.get_ref()) {
            Ok(format) => {
                let params = check_params(
                    source,
                    &format.info().params,
                    &output.params,
                    &output.format,
                    &format!("{key}.params"),
                    &format.id().to_string(),
                    &mut problems,
                );
                if let Some(params) = params {
                    outputs.push(BoundOutput {
                        format,
                        params,
                        messenger: output.messenger.clone(),
                    });
                }
            }
            Err(e) => problems.push(at(
                source,
                output.format.span(),
                &format!("{key}.format"),
                e.to_string(),
            )),
        }
    }

    match model {
        Some(model) if problems.is_empty() => Ok(Bound {
            model,
            model_params,
            measurements,
            outputs,
        }),
        _ => Err(PolicyError::Invalid(problems)),
    }
}

fn check_params(
    source: &Source,
    specs: &[ParamSpec],
    given: &BTreeMap<String, Spanned<toml::Value>>,
    plugin: &Spanned<String>,
    key: &str,
    plugin_name: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Param>> {
    let values: BTreeMap<String, toml::Value> = given
        .iter()
        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
        .collect();
    match resolve_params(specs, &values) {
        Ok(params) => Some(params),
        Err(found) => {
            for p in found {
                let span = given.get(&p.param).map_or(plugin.span(), |v| v.span());
                problems.push(at(
                    source,
                    span,
                    &format!("{key}.{}", p.param),
                    format!("{plugin_name}: {}", p.reason),
                ));
            }
            None
        }
    }
}

/// A problem at a span; spans of values set on the command line are empty at 0.
fn at(source: &Source, span: Range<usize>, key: &str, message: String) -> Problem {
    if span == (0..0) {
        return Problem {
            location: Some("command line".into()),
            key: Some(key.to_owned()),
            message,
        };
    }
    Problem::at(source, span, Some(key.to_owned()), message)
}
