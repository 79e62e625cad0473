//! `[[rules]]`: which model a VM's placement gets. The first rule whose
//! `match` holds wins; placements no rule matches get `[model]`. Values are
//! globs (globset syntax: `*`, `?`, `[a-c]`, `{a,b}`).
//!
//! ```toml
//! [[rules]]
//! match = { host = "gpu-*", project = ["physics", "chem"] }
//! plugin = "ipmi-share"
//! [[rules]]
//! match = { "label.aggregate" = "kepler" }
//! plugin = "/etc/wattson/plugins/site-model.wasm"
//! sha256 = "…"
//! ```

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigProblem, Validate};
use crate::runtime::VmDetails;

/// One `[[rules]]` entry as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// What a placement must have: every key holds (a value is a glob or a
    /// list of globs, any of which may match).
    #[serde(rename = "match")]
    #[schemars(with = "BTreeMap<String, MatchValue>")]
    pub matches: Spanned<BTreeMap<String, Spanned<MatchValue>>>,
    /// A builtin name or a path to a `.wasm` component.
    #[schemars(with = "String")]
    pub plugin: Spanned<String>,
    /// Parameters, checked against the plugin's `describe()`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: BTreeMap<String, Spanned<toml::Value>>,
    /// The component's sha256: one with another hash is refused.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sha256: Option<Spanned<String>>,
}

/// A glob or a list of globs.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "must be a glob (a string, e.g. \"cmp-*\") or a list of globs, e.g. [\"a*\", \"b\"]"
)]
pub enum MatchValue {
    /// One glob.
    One(String),
    /// Any of these globs.
    Any(Vec<String>),
}

/// What a match key looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// The host key.
    Host,
    /// The project id or name.
    Project,
    /// The VM's name.
    Name,
    /// The flavor's name.
    Flavor,
    /// A label of the VM's series (`label.<key>`).
    Label(String),
}

impl Field {
    /// The key's field, or why it is not one.
    fn parse(key: &str) -> Result<Self, String> {
        match key {
            "host" => Ok(Self::Host),
            "project" => Ok(Self::Project),
            "name" => Ok(Self::Name),
            "flavor" => Ok(Self::Flavor),
            _ => match key.strip_prefix("label.") {
                Some(label) if !label.is_empty() => Ok(Self::Label(label.to_owned())),
                _ => Err(format!(
                    "`{key}` is not a match key: use host, project, name, flavor or \
                     \"label.<key>\" (quoted, e.g. \"label.aggregate\")"
                )),
            },
        }
    }
}

/// A rule's `match`, checked.
#[derive(Clone, Debug)]
pub struct Matcher(Vec<(Field, GlobSet)>);

impl Matcher {
    /// Checks a rule's `match` table; problems name `match.<key>`.
    pub(crate) fn new(rule: &RuleConfig) -> Result<Self, ConfigProblem> {
        let key = |name: &str| format!("match.{name}");
        if rule.matches.get_ref().is_empty() {
            return Err(ConfigProblem::new(
                "match",
                "an empty match would take every VM: give the model to all VMs with [model] instead",
            )
            .at(rule.matches.span()));
        }
        let mut fields = Vec::new();
        for (name, value) in rule.matches.get_ref() {
            let problem = |message: String| ConfigProblem::new(key(name), message).at(value.span());
            let field = Field::parse(name).map_err(problem)?;
            let globs = match value.get_ref() {
                MatchValue::One(glob) => std::slice::from_ref(glob),
                MatchValue::Any(globs) if !globs.is_empty() => &globs[..],
                MatchValue::Any(_) => {
                    return Err(problem("an empty list matches nothing".to_owned()));
                }
            };
            let set = globs
                .iter()
                .try_fold(GlobSetBuilder::new(), |mut set, g| {
                    set.add(Glob::new(g)?);
                    Ok::<_, globset::Error>(set)
                })
                .and_then(|set| set.build())
                .map_err(|e| problem(e.to_string()))?;
            fields.push((field, set));
        }
        Ok(Self(fields))
    }

    /// Whether a placement on `host` of a VM described by `details` matches:
    /// every key holds, each by any of its globs.
    pub fn matches(&self, host: Option<&str>, details: &VmDetails) -> bool {
        self.0.iter().all(|(field, globs)| {
            let values: Vec<&str> = match field {
                Field::Host => host.into_iter().collect(),
                Field::Project => [&details.project_id, &details.project_name]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect(),
                Field::Name => details.name.as_deref().into_iter().collect(),
                Field::Flavor => details.flavor.as_deref().into_iter().collect(),
                Field::Label(label) => details
                    .labels
                    .iter()
                    .filter(|(k, _)| k == label)
                    .map(|(_, v)| v.as_str())
                    .collect(),
            };
            values.iter().any(|v| globs.is_match(v))
        })
    }

    /// Whether any key looks at the VM's labels (then the inventory must carry them).
    pub fn reads_labels(&self) -> bool {
        self.0.iter().any(|(f, _)| matches!(f, Field::Label(_)))
    }
}

impl Validate for RuleConfig {
    /// Its `match` table, and a pin that is not a sha256.
    fn problems(&self) -> Vec<ConfigProblem> {
        Matcher::new(self)
            .err()
            .into_iter()
            .chain(self.sha256.as_ref().and_then(pin_problem))
            .collect()
    }
}

/// A pin (`sha256`) that is not 64 hex digits.
pub(crate) fn pin_problem(pin: &Spanned<String>) -> Option<ConfigProblem> {
    let hex = pin.get_ref();
    (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        ConfigProblem::new(
            "sha256",
            "not a sha256 (64 hex digits): `wattson plugins inspect PLUGIN` prints it",
        )
        .at(pin.span())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(project: &str, name: &str, labels: &[(&str, &str)]) -> VmDetails {
        VmDetails {
            name: Some(name.into()),
            project_id: Some(format!("id-{project}")),
            project_name: Some(project.into()),
            user_id: None,
            user_name: None,
            flavor: Some("m1.large".into()),
            disk_gb: None,
            started_ms: None,
            ended_ms: None,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn matcher(fields: &[(Field, &[&str])]) -> Matcher {
        Matcher(
            fields
                .iter()
                .map(|(f, globs)| {
                    let mut set = GlobSetBuilder::new();
                    for g in *globs {
                        set.add(Glob::new(g).unwrap());
                    }
                    (f.clone(), set.build().unwrap())
                })
                .collect(),
        )
    }

    #[test]
    fn every_key_must_hold_by_any_of_its_globs() {
        let gpu_physics = matcher(&[
            (Field::Host, &["gpu-*"]),
            (Field::Project, &["physics", "chem"]),
        ]);
        let physics = details("physics", "sim-1", &[]);
        assert!(gpu_physics.matches(Some("gpu-07"), &physics));
        assert!(!gpu_physics.matches(Some("cmp-07"), &physics));
        assert!(!gpu_physics.matches(None, &physics));
        assert!(!gpu_physics.matches(Some("gpu-07"), &details("bio", "x", &[])));
        // A project matches by id too.
        assert!(matcher(&[(Field::Project, &["id-bio"])]).matches(None, &details("bio", "x", &[])));
        let kepler = matcher(&[(Field::Label("aggregate".into()), &["kepler"])]);
        assert!(kepler.matches(None, &details("p", "n", &[("aggregate", "kepler")])));
        assert!(!kepler.matches(None, &details("p", "n", &[("zone", "kepler")])));
        assert!(kepler.reads_labels() && !gpu_physics.reads_labels());
        let flavor = matcher(&[(Field::Flavor, &["m1.*"]), (Field::Name, &["sim-?"])]);
        assert!(flavor.matches(None, &physics));
    }
}
