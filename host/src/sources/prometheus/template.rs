//! PromQL templates (cASO-style `{{uuid}}` queries), rendered with minijinja.
//!
//! A template that uses a per-VM variable (`uuid`, `name`, `project`, `host`)
//! runs once per VM, concurrently (bounded by `[prometheus] concurrency`); one
//! that uses only window variables (`window`, `start`, `end`) runs once per
//! window and its series are matched to VMs by a label. The value of a query
//! is taken as it is: a template's arithmetic is its author's.

use std::collections::{BTreeMap, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};
use minijinja::{Environment, UndefinedBehavior, Value};

use super::client::{Client, PrometheusError};
use crate::window::Window;

/// Variables that differ from VM to VM.
const PER_VM: [&str; 4] = ["uuid", "name", "project", "host"];
/// Variables of the window, the same for every VM.
const PER_WINDOW: [&str; 3] = ["window", "start", "end"];

/// Why a template cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Not valid minijinja, or it names a variable wattson does not provide.
    #[error("PromQL template `{template}`: {reason}")]
    Invalid {
        /// The template as written.
        template: String,
        /// What is wrong.
        reason: String,
    },
    /// The query failed.
    #[error(transparent)]
    Query(#[from] PrometheusError),
}

/// A parsed PromQL template.
pub struct QueryTemplate {
    env: Environment<'static>,
    source: String,
    per_vm: bool,
}

impl std::fmt::Debug for QueryTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryTemplate")
            .field("source", &self.source)
            .field("per_vm", &self.per_vm)
            .finish()
    }
}

/// What a per-VM template may say of one VM.
#[derive(Clone, Debug, Default)]
pub struct VmVars {
    /// The VM's uuid.
    pub uuid: String,
    /// Its libvirt domain name, when known.
    pub name: Option<String>,
    /// Its project id, when known.
    pub project: Option<String>,
    /// Its host key, when known.
    pub host: Option<String>,
}

/// The value of a template for one VM (per-VM form) or one series (batched form).
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateValue {
    /// The VM's uuid (per-VM) or the value of the key label (batched).
    pub key: String,
    /// The query's value (the sum of the series it returned, per-VM).
    pub value: f64,
}

/// A template's values over a window.
#[derive(Clone, Debug, Default)]
pub struct TemplateReadings {
    /// One per VM or series that had a value.
    pub values: Vec<TemplateValue>,
    /// Per-VM queries that returned nothing (the VM gets no reading, never 0).
    pub empty: usize,
    /// Queries sent.
    pub queries: usize,
}

impl QueryTemplate {
    /// Parses `source`; refuses syntax errors and variables wattson does not provide.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let invalid = |reason: String| TemplateError::Invalid {
            template: source.to_owned(),
            reason,
        };
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Values land inside PromQL string literals: escape what would end them.
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(s) => {
                let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
                out.write_str(&escaped).map_err(minijinja::Error::from)
            }
            None => minijinja::escape_formatter(out, state, value),
        });
        env.add_template_owned("query", source.to_owned())
            .map_err(|e| invalid(e.to_string()))?;
        let used = env
            .get_template("query")
            .map_err(|e| invalid(e.to_string()))?
            .undeclared_variables(false);
        let mut unknown: Vec<&String> = used
            .iter()
            .filter(|v| !PER_VM.contains(&v.as_str()) && !PER_WINDOW.contains(&v.as_str()))
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            return Err(invalid(format!(
                "unknown variable {}; wattson provides {} (per VM) and {} (per window)",
                unknown
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                PER_VM.join(", "),
                PER_WINDOW.join(", ")
            )));
        }
        let per_vm = used.iter().any(|v| PER_VM.contains(&v.as_str()));
        Ok(Self {
            env,
            source: source.to_owned(),
            per_vm,
        })
    }

    /// Whether the template uses a per-VM variable (and so runs once per VM).
    pub fn is_per_vm(&self) -> bool {
        self.per_vm
    }

    /// The PromQL for one VM (or, with `vm` = None, for the window).
    pub fn render(&self, window: Window, vm: Option<&VmVars>) -> Result<String, TemplateError> {
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::new();
        let length_ms = window.len_ms();
        let length = if length_ms % 1000 == 0 {
            format!("{}s", length_ms / 1000)
        } else {
            format!("{length_ms}ms")
        };
        ctx.insert("window", Value::from(length));
        ctx.insert("start", seconds(window.start_ms));
        ctx.insert("end", seconds(window.end_ms));
        if let Some(vm) = vm {
            ctx.insert("uuid", Value::from(vm.uuid.as_str()));
            let optional = |v: &Option<String>| v.as_deref().map_or(Value::UNDEFINED, Value::from);
            ctx.insert("name", optional(&vm.name));
            ctx.insert("project", optional(&vm.project));
            ctx.insert("host", optional(&vm.host));
        }
        self.env
            .get_template("query")
            .and_then(|t| t.render(ctx))
            .map_err(|e| TemplateError::Invalid {
                template: self.source.clone(),
                reason: match vm {
                    Some(vm) => format!("for VM {}: {e}", vm.uuid),
                    None => e.to_string(),
                },
            })
    }
}

/// Unix seconds of `ms`, as PromQL accepts them (`@ 1700000000.5`).
fn seconds(ms: i64) -> Value {
    if ms % 1000 == 0 {
        Value::from(ms / 1000)
    } else {
        Value::from(ms as f64 / 1000.0)
    }
}

/// Evaluates `template` at the window's end: once per VM of `vms` (at most
/// `concurrency` queries in flight) if it is per-VM, else once, keyed by `key_label`.
pub async fn measure_template(
    client: &Client,
    template: &QueryTemplate,
    key_label: &str,
    vms: &[VmVars],
    window: Window,
    concurrency: usize,
) -> Result<TemplateReadings, TemplateError> {
    if !template.is_per_vm() {
        let query = template.render(window, None)?;
        let series = client.query(&query, window.end_ms).await?;
        let mut seen = HashSet::new();
        let values = series
            .into_iter()
            .filter_map(|s| {
                let key = s.labels.get(key_label)?.to_owned();
                let value = s.samples.last()?.value;
                value.is_finite().then_some(TemplateValue { key, value })
            })
            .filter(|v| seen.insert(v.key.clone()))
            .collect();
        return Ok(TemplateReadings {
            values,
            empty: 0,
            queries: 1,
        });
    }
    let queries: Vec<(String, String)> = vms
        .iter()
        .map(|vm| Ok((vm.uuid.clone(), template.render(window, Some(vm))?)))
        .collect::<Result<_, TemplateError>>()?;
    let sent = queries.len();
    let answers: Vec<(String, Option<f64>)> = stream::iter(queries)
        .map(|(uuid, query)| async move {
            let series = client.query(&query, window.end_ms).await?;
            let values: Vec<f64> = series
                .iter()
                .filter_map(|s| s.samples.last().map(|x| x.value))
                .filter(|v| v.is_finite())
                .collect();
            let value = (!values.is_empty()).then(|| values.iter().sum());
            Ok::<_, PrometheusError>((uuid, value))
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let empty = answers.iter().filter(|(_, v)| v.is_none()).count();
    Ok(TemplateReadings {
        values: answers
            .into_iter()
            .filter_map(|(key, value)| Some(TemplateValue { key, value: value? }))
            .collect(),
        empty,
        queries: sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_003_600_000,
        }
    }

    #[test]
    fn per_vm_variables_make_a_per_vm_template() {
        let t = QueryTemplate::parse(r#"sum(m{uuid=~"{{uuid}}"}[{{window}}])"#).unwrap();
        assert!(t.is_per_vm());
        let vm = VmVars {
            uuid: "abc".into(),
            ..VmVars::default()
        };
        assert_eq!(
            t.render(window(), Some(&vm)).unwrap(),
            r#"sum(m{uuid=~"abc"}[3600s])"#
        );
        let t = QueryTemplate::parse("sum by (uuid) (increase(m[{{window}}] @ {{end}}))").unwrap();
        assert!(!t.is_per_vm());
        assert_eq!(
            t.render(window(), None).unwrap(),
            "sum by (uuid) (increase(m[3600s] @ 1700003600))"
        );
    }

    #[test]
    fn odd_windows_and_quotes_render_as_valid_promql() {
        let t = QueryTemplate::parse(r#"m{name="{{name}}"}[{{window}}] @ {{start}}"#).unwrap();
        let w = Window {
            start_ms: 1_500,
            end_ms: 2_750,
        };
        let vm = VmVars {
            uuid: "u".into(),
            name: Some(r#"a "quoted" \ name"#.into()),
            ..VmVars::default()
        };
        assert_eq!(
            t.render(w, Some(&vm)).unwrap(),
            r#"m{name="a \"quoted\" \\ name"}[1250ms] @ 1.5"#
        );
    }

    #[test]
    fn unknown_variables_and_bad_syntax_are_refused() {
        let e = QueryTemplate::parse("m{uuid=\"{{ uid }}\"}").unwrap_err();
        assert!(e.to_string().contains("unknown variable `uid`"), "{e}");
        let e = QueryTemplate::parse("m{uuid=\"{{ uuid }\"}").unwrap_err();
        assert!(e.to_string().contains("PromQL template"), "{e}");
    }

    #[test]
    fn a_missing_per_vm_value_names_the_vm() {
        let t = QueryTemplate::parse(r#"m{project="{{project}}"}"#).unwrap();
        let vm = VmVars {
            uuid: "u-1".into(),
            ..VmVars::default()
        };
        let e = t.render(window(), Some(&vm)).unwrap_err();
        assert!(e.to_string().contains("for VM u-1"), "{e}");
    }
}
