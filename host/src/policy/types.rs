//! The policy's tables, as serde reads them (unknown keys are errors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::error::{PolicyError, Problem, Source};
use super::overrides::{self, Override};
use super::rules::{RuleConfig, pin_problem};
use crate::config::{ConfigProblem, Validate};
use crate::messengers::MessengerConfig;
use crate::runtime::Limits;
use crate::sources::inventory::{InventoryConfig, InventorySource};
use crate::sources::prometheus::PrometheusConfig;
use crate::sources::rapl::RaplConfig;
use crate::state::StateConfig;

/// A whole policy file.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Who is reporting.
    pub site: SiteConfig,
    /// Where measurements come from.
    #[serde(default)]
    #[schemars(with = "Option<PrometheusConfig>")]
    pub prometheus: Option<Spanned<PrometheusConfig>>,
    /// Where VMs, their owners and lifetimes come from, and how hosts are keyed.
    #[serde(default)]
    pub inventory: InventoryConfig,
    /// Window alignment and length.
    #[serde(default)]
    pub window: WindowConfig,
    /// Where `rapl` measurements come from.
    #[serde(default)]
    pub rapl: RaplConfig,
    /// Where a model's `host-power` measurement comes from.
    #[serde(default)]
    pub host_power: HostPowerConfig,
    /// `[gpu]`: where a model's `gpu` measurement comes from; without it,
    /// no GPU energy is read.
    #[serde(default)]
    pub gpu: Option<crate::sources::gpu::GpuConfig>,
    /// Static idle power per host: a host key or a regex matching whole host
    /// keys → watts, the first match in the policy's order. Hosts not listed
    /// get it measured ("auto", `docs/ENERGY.md#idle-power`).
    #[serde(default)]
    pub idle_power: IdlePowerConfig,
    /// The attribution model of every VM placement no rule matches
    /// (optional when there are rules: then every placement must match one).
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Other models for the placements they match, first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Sandbox limits for every plugin call.
    #[serde(default)]
    pub limits: Limits,
    /// Plugin runtime settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Where records go: format + messenger pairs.
    #[serde(default)]
    pub outputs: Vec<OutputConfig>,
    /// Where run state lives.
    #[serde(default)]
    pub state: StateConfig,
    /// `[carbon]`: PUE and grid carbon intensity on every record.
    #[serde(default)]
    pub carbon: Option<crate::pipeline::CarbonConfig>,
    /// `[embodied]`: each host's manufacturing emissions, split among its
    /// VMs by their share of its capacity (`extract`'s records).
    #[serde(default)]
    pub embodied: Option<crate::pipeline::EmbodiedConfig>,
    /// `[daemon]`: sampling, shipping and the HTTP server of `wattson daemon`.
    #[serde(default)]
    pub daemon: Option<super::daemon::DaemonConfig>,
    /// `[nova]`: the OpenStack cloud `[inventory] source = "nova"` reads.
    #[serde(default)]
    pub nova: Option<crate::sources::openstack::NovaConfig>,
    /// `[opennebula]`: the front-end `[inventory] source = "opennebula"` reads.
    #[serde(default)]
    pub opennebula: Option<crate::sources::opennebula::OpenNebulaConfig>,
    /// Project (id or name) → VO / FQAN, like cASO's voms.json.
    #[serde(default)]
    pub vo_map: BTreeMap<String, String>,
    /// Fail a window that would silently give no records because nothing
    /// says which VMs to measure (no series of the model's VM measurements
    /// in it, or a per-VM template without an inventory), instead of
    /// warning. `extract --strict` sets it.
    #[serde(default)]
    pub strict: bool,
    /// The file this policy came from.
    #[serde(skip)]
    pub source: Option<Arc<Source>>,
    /// That file's canonical path (symlinks resolved), which its state
    /// directory is claimed for; none for a policy not read from a file.
    #[serde(skip)]
    file: Option<PathBuf>,
}

/// `[site]`: identity written into every record.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// GOCDB site name, e.g. `CESGA`.
    pub name: String,
    /// The compute service's endpoint or name, e.g. `https://keystone.example.org:5000/v3`.
    pub compute_service: String,
    /// APEL CloudType, e.g. `OpenStack`, `OpenNebula`.
    #[serde(default = "default_cloud_type")]
    pub cloud_type: String,
}

fn default_cloud_type() -> String {
    "OpenStack".into()
}

/// `[host_power]`: the hosts' wall-power meter that a model's `host-power`
/// measurement reads in `extract`: a Prometheus gauge in watts keyed by
/// `[inventory] host_label` (ipmi_exporter's by default).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPowerConfig {
    /// PromQL selector of the power gauge, watts.
    #[serde(default = "default_host_power_metric")]
    pub metric: String,
    /// The daemon's local meter: a command (program and arguments, no
    /// shell) printing `Instantaneous power reading: <N> Watts`.
    #[serde(default = "default_host_power_command")]
    pub command: Vec<String>,
}

fn default_host_power_command() -> Vec<String> {
    ["ipmitool", "dcmi", "power", "reading"]
        .map(String::from)
        .to_vec()
}

impl Default for HostPowerConfig {
    fn default() -> Self {
        Self {
            metric: default_host_power_metric(),
            command: default_host_power_command(),
        }
    }
}

fn default_host_power_metric() -> String {
    "ipmi_dcmi_power_consumption_watts".into()
}

/// `[window]`: how runs cut time.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window alignment and the default first window, seconds.
    #[serde(default = "default_step_secs")]
    pub step_secs: u64,
    /// Longest window one run extracts at once; longer gaps since lastrun are
    /// cut into several windows, oldest first, each committed on its own.
    #[serde(default = "default_max_window_secs")]
    pub max_window_secs: u64,
    /// How long after a window's end its data is complete in Prometheus
    /// (scrape interval + scrape timeout + remote-write lag): a run never
    /// extracts a window that ended less than this ago.
    #[serde(default = "default_delay_secs")]
    pub delay_secs: u64,
}

/// The longest window a policy may ask for: a year (366 days).
const MAX_WINDOW_SECS: u64 = 366 * 86_400;

fn default_delay_secs() -> u64 {
    120
}

fn default_max_window_secs() -> u64 {
    86_400
}

fn default_step_secs() -> u64 {
    3600
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            step_secs: default_step_secs(),
            max_window_secs: default_max_window_secs(),
            delay_secs: default_delay_secs(),
        }
    }
}

impl Validate for WindowConfig {
    /// A step of 0, a longest window above a year or below the step.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.max_window_secs > MAX_WINDOW_SECS {
            problems.push(ConfigProblem::new(
                "max_window_secs",
                format!(
                    "{} s is more than a year ({MAX_WINDOW_SECS} s); a longer gap since the \
                     last run is extracted in several windows anyway",
                    self.max_window_secs
                ),
            ));
        } else if self.max_window_secs < self.step_secs {
            problems.push(ConfigProblem::new(
                "max_window_secs",
                "must be at least window.step_secs",
            ));
        }
        if self.step_secs == 0 {
            problems.push(ConfigProblem::new("step_secs", "must be at least 1 second"));
        }
        problems
    }
}

/// `[idle_power]`: static idle power per host, a host key or a regex
/// matching whole host keys → watts, the first match in the policy's order
/// (a map would sort them).
#[derive(Debug, Default, schemars::JsonSchema)]
#[schemars(transparent)]
pub struct IdlePowerConfig(#[schemars(with = "BTreeMap<String, f64>")] Vec<(String, Spanned<f64>)>);

impl<'de> Deserialize<'de> for IdlePowerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::config::in_order(
            deserializer,
            "a table of host keys or regexes → watts (e.g. \"cmp-0[1-4]\" = 95.0)",
        )
        .map(Self)
    }
}

impl IdlePowerConfig {
    /// Each pattern and its watts, in the policy's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0
            .iter()
            .map(|(pattern, watts)| (pattern.as_str(), *watts.get_ref()))
    }
}

impl Validate for IdlePowerConfig {
    /// A pattern that is not a regex; watts below 0 or not a number.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (host, watts) in &self.0 {
            let key = format!("\"{host}\"");
            if let Err(e) = regex::Regex::new(&format!("^(?:{host})$")) {
                problems.push(
                    ConfigProblem::new(&key, format!("not a host key or a valid regex: {e}"))
                        .at(watts.span()),
                );
            }
            if !(watts.get_ref().is_finite() && *watts.get_ref() >= 0.0) {
                problems.push(
                    ConfigProblem::new(key, "must be a number of watts, 0 or more")
                        .at(watts.span()),
                );
            }
        }
        problems
    }
}

/// `[model]`: the attribution model and its parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A builtin name (`libvirt-joules`) or a path to a `.wasm` component.
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

impl Validate for ModelConfig {
    /// A pin that is not a sha256 (the plugin and its parameters are
    /// checked when it loads).
    fn problems(&self) -> Vec<ConfigProblem> {
        self.sha256
            .as_ref()
            .and_then(pin_problem)
            .into_iter()
            .collect()
    }
}

/// `[runtime]`: plugin runtime settings.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Compiled-plugin cache; default `$XDG_CACHE_HOME/wattson` or `~/.cache/wattson`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

/// `[[outputs]]`: one format rendered, one messenger delivering.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// The output's name (default: its format's): spooled payloads are
    /// delivered by name, with the messenger the policy gives it now.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// A builtin format name (`caso-json`) or a path to a `.wasm` component.
    #[schemars(with = "String")]
    pub format: Spanned<String>,
    /// Format parameters.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: BTreeMap<String, Spanned<toml::Value>>,
    /// The format component's sha256: one with another hash is refused.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sha256: Option<Spanned<String>>,
    /// Where payloads go.
    #[serde(default)]
    pub messenger: MessengerConfig,
}

impl OutputConfig {
    /// The output's name: its `name`, else its format.
    pub fn name(&self) -> &str {
        self.name.as_ref().unwrap_or(&self.format).get_ref()
    }
}

impl Validate for OutputConfig {
    /// The messenger's settings, and a format the messenger cannot send
    /// (both shown at the output's format); a pin that is not a sha256.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems: Vec<ConfigProblem> = self
            .messenger
            .problems()
            .into_iter()
            .map(|p| p.within("messenger").at(self.format.span()))
            .collect();
        if let MessengerConfig::GreendigitCim(_) = self.messenger {
            let format = self.format.get_ref();
            let apel_text = self
                .params
                .get("wire")
                .is_some_and(|w| w.get_ref().as_str() == Some("apel"));
            if (!format.ends_with(".wasm") && format != "apel-energy") || apel_text {
                problems.push(
                    ConfigProblem::new(
                        "format",
                        "greendigit-cim posts cASO's EnergyRecords as JSON: use format = \"apel-energy\" (wire \"json\", the default)",
                    )
                    .at(self.format.span()),
                );
            }
        }
        problems.extend(self.sha256.as_ref().and_then(pin_problem));
        problems
    }
}

impl Policy {
    /// Reads and checks a policy file (no plugin loading, no network).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        Self::load_with(path, &[])
    }

    /// Reads a policy file, applies `--set` overrides, and checks the result
    /// as [`Policy::load`] does; problems name the file's line or the `--set`.
    pub fn load_with(path: &Path, overrides: &[Override]) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Read {
            path: path.to_owned(),
            error,
        })?;
        let (text, origins) = overrides::apply(&text, overrides).map_err(|problems| {
            PolicyError::Invalid(
                problems
                    .into_iter()
                    .map(|p| Problem {
                        location: Some(format!("--set {}", p.key)),
                        key: None,
                        message: p.message,
                    })
                    .collect(),
            )
        })?;
        let mut policy = Self::parse(Source::with_origins(path, text, origins))?;
        policy.file = Some(
            std::fs::canonicalize(path)
                .or_else(|_| std::path::absolute(path))
                .map_err(|error| PolicyError::Read {
                    path: path.to_owned(),
                    error,
                })?,
        );
        Ok(policy)
    }

    /// Parses and checks policy text.
    pub fn parse(source: Arc<Source>) -> Result<Self, PolicyError> {
        let mut policy: Policy = toml::from_str(&source.text).map_err(|e| {
            let problem = match e.span() {
                Some(span) => Problem::at(&source, span, None, e.message().trim()),
                None => Problem::in_file(&source, None, e.message().trim()),
            };
            PolicyError::Invalid(vec![problem])
        })?;
        let mut problems: Vec<Problem> = policy
            .sections()
            .into_iter()
            .flat_map(|(section, config)| {
                config
                    .problems()
                    .into_iter()
                    .map(|p| Problem::of_section(&source, section, p))
            })
            .collect();
        problems.extend(policy.cross_section_problems(&source));
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }
        policy.source = Some(source);
        Ok(policy)
    }

    /// Every section that checks itself, by its key.
    fn sections(&self) -> [(&'static str, &dyn Validate); 15] {
        [
            ("prometheus", &self.prometheus),
            ("inventory", &self.inventory),
            ("idle_power", &self.idle_power),
            ("outputs", &self.outputs),
            ("model", &self.model),
            ("rules", &self.rules),
            ("rapl", &self.rapl),
            ("gpu", &self.gpu),
            ("window", &self.window),
            ("carbon", &self.carbon),
            ("embodied", &self.embodied),
            ("daemon", &self.daemon),
            ("limits", &self.limits),
            ("nova", &self.nova),
            ("opennebula", &self.opennebula),
        ]
    }

    /// What no section can see alone: no model at all, and two outputs of
    /// one name.
    fn cross_section_problems(&self, source: &Source) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.model.is_none() && self.rules.is_empty() {
            problems.push(Problem::in_file(
                source,
                Some("model".into()),
                "the policy names no model: add [model] with plugin = \"…\" (e.g. \
                 \"libvirt-joules\"), the model of every VM, or [[rules]] that match every VM",
            ));
        }
        let missing = match self.inventory.source {
            InventorySource::Nova if self.nova.is_none() => Some(
                "\"nova\" reads the cloud that a [nova] table names: add one with auth_url and \
                 credentials (see policies/nova.toml)",
            ),
            InventorySource::OpenNebula if self.opennebula.is_none() => Some(
                "\"opennebula\" reads the front-end that an [opennebula] table names: add one \
                 with endpoint, user and token_env or token_file (see \
                 policies/opennebula-scaphandre.toml)",
            ),
            _ => None,
        };
        if let Some(message) = missing {
            problems.push(Problem::of_section(
                source,
                "inventory",
                ConfigProblem::new("source", message),
            ));
        }
        for (i, output) in self.outputs.iter().enumerate() {
            if self.outputs[..i].iter().any(|o| o.name() == output.name()) {
                let span = output.name.as_ref().unwrap_or(&output.format).span();
                problems.push(Problem::at(
                    source,
                    span,
                    Some(format!("outputs[{i}].name")),
                    format!(
                        "another output is named `{}`: give each output its own `name = \"…\"` \
                         (spooled payloads are delivered by output name)",
                        output.name()
                    ),
                ));
            }
            let file = |o: &OutputConfig| match &o.messenger {
                MessengerConfig::File {
                    directory,
                    name: Some(name),
                    ..
                } => Some(directory.join(name)),
                _ => None,
            };
            if let Some(path) = file(output)
                && self.outputs[..i]
                    .iter()
                    .any(|o| file(o).as_ref() == Some(&path))
            {
                problems.push(Problem::at(
                    source,
                    output.format.span(),
                    Some(format!("outputs[{i}].messenger.name")),
                    format!(
                        "another output's file messenger writes {} too, and each would replace \
                         the other's payload: give each output its own name",
                        path.display()
                    ),
                ));
            }
        }
        problems
    }

    /// The file this policy came from (for messages).
    pub fn source(&self) -> Option<&Arc<Source>> {
        self.source.as_ref()
    }

    /// Points the policy at another Prometheus (`--prometheus URL`), keeping its other settings.
    pub fn override_prometheus(&mut self, url: &str) {
        let config = match self.prometheus.take() {
            Some(p) => PrometheusConfig {
                url: url.to_owned(),
                ..p.into_inner()
            },
            None => PrometheusConfig::with_url(url),
        };
        self.prometheus = Some(Spanned::new(0..0, config));
    }

    /// `[daemon]`, or its defaults.
    pub fn daemon_config(&self) -> super::daemon::DaemonConfig {
        self.daemon.clone().unwrap_or_default()
    }

    /// The state directory of this policy.
    pub fn state_dir(&self) -> crate::state::StateDir {
        let name = self.state.name.clone().unwrap_or_else(|| {
            self.source()
                .and_then(|s| s.path.file_stem())
                .map_or_else(|| "policy".to_owned(), |s| s.to_string_lossy().into_owned())
        });
        crate::state::StateDir::new(&self.state.dir, &name, self.file.as_deref())
    }

    /// Replaces the outputs with one builtin format on stdout (`--format NAME`).
    pub fn override_format(&mut self, format: &str) {
        self.outputs = vec![OutputConfig {
            name: None,
            format: Spanned::new(0..0, format.to_owned()),
            params: BTreeMap::new(),
            sha256: None,
            messenger: MessengerConfig::Stdout,
        }];
    }
}
