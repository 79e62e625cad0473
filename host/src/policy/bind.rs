//! Binding a policy to its plugins: load each plugin it names and check the
//! parameters given against the plugin's own `describe()`.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::error::{PolicyError, Problem, Source};
use super::rules::Matcher;
use super::types::Policy;
use crate::messengers::MessengerConfig;
use crate::runtime::{
    Format, Measurement, Model, Param, ParamSpec, Runtime, expand_measurements, resolve_params,
};
use crate::sources::prometheus::QueryTemplate;

/// A policy's plugins, loaded, with checked parameters.
pub struct Bound {
    /// `[model]`: the model of every placement no rule matches; none when
    /// the policy has only rules (a placement none matches is an error).
    pub model: Option<BoundModel>,
    /// `[[rules]]`, in policy order: the first that matches a placement gives it its model.
    pub rules: Vec<BoundRule>,
    /// Formats and their messengers, in policy order.
    pub outputs: Vec<BoundOutput>,
    /// `[carbon]`, resolved once (its host patterns compiled).
    pub carbon: Option<crate::pipeline::Carbon>,
    /// `[embodied]`, resolved once (its host globs compiled).
    pub embodied: Option<crate::pipeline::Embodied>,
}

/// A model, loaded, with its checked parameters and its measurements.
pub struct BoundModel {
    /// The model.
    pub model: Model,
    /// Its parameters, defaults applied.
    pub params: Vec<Param>,
    /// Its measurements with `${param}` placeholders filled in.
    pub measurements: Vec<Measurement>,
}

/// One `[[rules]]` entry, bound.
pub struct BoundRule {
    /// What a placement must have.
    pub matcher: Matcher,
    /// The model it gets.
    pub model: Model,
    /// Its parameters, defaults applied.
    pub params: Vec<Param>,
    /// Its measurements with `${param}` placeholders filled in.
    pub measurements: Vec<Measurement>,
}

/// One `[[outputs]]` entry, bound.
pub struct BoundOutput {
    /// The output's name (spooled payloads are delivered by it).
    pub name: String,
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

    let model = policy.model.as_ref().map(|config| {
        bind_model(
            source,
            runtime,
            ModelRef {
                plugin: &config.plugin,
                params: &config.params,
                sha256: config.sha256.as_ref(),
                key: "model",
            },
            &mut problems,
        )
    });
    let mut rules = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let key = format!("rules[{i}]");
        let bound = bind_model(
            source,
            runtime,
            ModelRef {
                plugin: &rule.plugin,
                params: &rule.params,
                sha256: rule.sha256.as_ref(),
                key: &key,
            },
            &mut problems,
        );
        let matcher = Matcher::new(rule)
            .map_err(|p| problems.push(Problem::of_section(source, &key, p)))
            .ok();
        if let (Some((model, params, measurements)), Some(matcher)) = (bound, matcher) {
            rules.push(BoundRule {
                matcher,
                model,
                params,
                measurements,
            });
        }
    }

    let mut outputs = Vec::new();
    for (i, output) in policy.outputs.iter().enumerate() {
        let key = format!("outputs[{i}]");
        match runtime.load_format(output.format.get_ref()) {
            Ok(format)
                if !pinned(
                    source,
                    output.sha256.as_ref(),
                    &output.format,
                    &format.id().sha256,
                    &key,
                    &mut problems,
                ) => {}
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
                if let Some(params) = &params {
                    textfile_problem(source, &key, output, &format, params, &mut problems);
                }
                if let Some(params) = params {
                    outputs.push(BoundOutput {
                        name: output.name().to_owned(),
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
        Some(None) => Err(PolicyError::Invalid(problems)),
        _ if !problems.is_empty() => Err(PolicyError::Invalid(problems)),
        model => Ok(Bound {
            model: model
                .flatten()
                .map(|(model, params, measurements)| BoundModel {
                    model,
                    params,
                    measurements,
                }),
            rules,
            outputs,
            // Checked when the policy was loaded.
            carbon: policy.carbon.as_ref().and_then(|c| c.resolve().ok()),
            embodied: policy.embodied.as_ref().and_then(|e| e.resolve().ok()),
        }),
    }
}

/// A `file` messenger writing one `*.prom` file (node_exporter's textfile
/// collector) for a format that stamps its samples (`timestamps` true, given
/// or by default): the collector skips a whole file with a timestamp.
fn textfile_problem(
    source: &Source,
    key: &str,
    output: &super::types::OutputConfig,
    format: &Format,
    params: &[Param],
    problems: &mut Vec<Problem>,
) {
    let Some(name) = output.messenger.fixed_file_name() else {
        return;
    };
    let stamps = params.iter().any(|p| {
        p.name == "timestamps" && matches!(p.value, crate::runtime::ParamValue::Flag(true))
    });
    if !(name.ends_with(".prom") && stamps) {
        return;
    }
    let given = output.params.get("timestamps");
    let (span, key) = match given {
        Some(value) => (value.span(), format!("{key}.params.timestamps")),
        None => (output.format.span(), format!("{key}.format")),
    };
    let why = if given.is_some() { "" } else { ", its default" };
    problems.push(at(
        source,
        span,
        &key,
        format!(
            "format `{}` stamps every sample with the window's end (timestamps = true{why}), and \
             node_exporter's textfile collector skips a whole *.prom file with a timestamp in it: \
             set params.timestamps = false, or give the messenger a name not ending in .prom",
            format.info().name
        ),
    ));
}

/// Where a model is named: `[model]` or one of `[[rules]]`.
struct ModelRef<'a> {
    plugin: &'a Spanned<String>,
    params: &'a BTreeMap<String, Spanned<toml::Value>>,
    sha256: Option<&'a Spanned<String>>,
    /// `model` or `rules[i]`.
    key: &'a str,
}

/// Loads a model, checks its pin and parameters and fills its measurements'
/// placeholders; problems go to `problems`.
fn bind_model(
    source: &Source,
    runtime: &Runtime,
    named: ModelRef<'_>,
    problems: &mut Vec<Problem>,
) -> Option<(Model, Vec<Param>, Vec<Measurement>)> {
    let key = named.key;
    let model = runtime
        .load_model(named.plugin.get_ref())
        .map_err(|e| {
            problems.push(at(
                source,
                named.plugin.span(),
                &format!("{key}.plugin"),
                e.to_string(),
            ))
        })
        .ok()?;
    if !pinned(
        source,
        named.sha256,
        named.plugin,
        &model.id().sha256,
        key,
        problems,
    ) {
        return None;
    }
    let params = check_params(
        source,
        &model.info().params,
        named.params,
        named.plugin,
        &format!("{key}.params"),
        &model.id().to_string(),
        problems,
    )?;
    let measurements = match expand_measurements(&model.info().measurements, &params) {
        Ok(m) => m,
        Err(e) => {
            problems.push(at(
                source,
                named.plugin.span(),
                &format!("{key}.params"),
                format!("{}: {e}", model.id()),
            ));
            return None;
        }
    };
    for t in measurements.iter().filter_map(|m| match m {
        Measurement::Template(t) => Some(t),
        _ => None,
    }) {
        if let Err(e) = QueryTemplate::parse(&t.query) {
            problems.push(at(
                source,
                named.plugin.span(),
                &format!("{key}.params"),
                format!("{}: {e}", model.id()),
            ));
        }
    }
    Some((model, params, measurements))
}

/// Whether a component loaded from `plugin` has the `pin`ned sha256 (or
/// none is pinned); a problem at `<key>.sha256` where it does not.
fn pinned(
    source: &Source,
    pin: Option<&Spanned<String>>,
    plugin: &Spanned<String>,
    sha256: &str,
    key: &str,
    problems: &mut Vec<Problem>,
) -> bool {
    let Some(pin) = pin.filter(|p| !p.get_ref().eq_ignore_ascii_case(sha256)) else {
        return true;
    };
    problems.push(at(
        source,
        pin.span(),
        &format!("{key}.sha256"),
        format!(
            "`{}` has sha256 {sha256}, not the pinned {}: the component changed since it was \
             pinned. Check where it came from, then pin the new hash",
            plugin.get_ref(),
            pin.get_ref()
        ),
    ));
    false
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
