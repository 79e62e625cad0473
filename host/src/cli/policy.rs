//! `wattson policy check`: everything a run would load, without gathering or
//! sending; `wattson policy init` (in `policy_init`): a first policy.

use std::path::PathBuf;

use clap::Subcommand;

use super::{EXIT_CONFIG, EXIT_SOURCE, Failure};
use crate::pipeline;
use crate::policy::{self, Override, Policy};

/// `wattson policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse a policy, load its plugins and check their parameters.
    #[command(after_help = "Examples:\n  \
        wattson policy check /etc/wattson/site.toml\n  \
        wattson policy check site.toml --set model.params.metric='\"kepler_vm_cpu_joules_total\"'\n  \
        wattson policy check site.toml --explain --from 2025-06-01T00:00:00Z --to 2025-06-01T01:00:00Z")]
    Check {
        /// The policy file.
        file: PathBuf,
        /// Override a policy key by its dotted path with a TOML value (repeatable):
        /// --set window.step_secs=900, --set model.params.metric='"m_total"'.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
        /// Run the real inventory of a window through the rules and print, per
        /// VM placement (uuid, name, host, project), the rule and model it gets.
        #[arg(long)]
        explain: bool,
        /// With --explain: query this Prometheus instead of the policy's.
        #[arg(long, value_name = "URL", requires = "explain")]
        prometheus: Option<String>,
        /// With --explain: window start, RFC 3339 or unix seconds (default: one step before --to).
        #[arg(long, requires = "explain")]
        from: Option<String>,
        /// With --explain: window end (default: now, aligned down to the step).
        #[arg(long, requires = "explain")]
        to: Option<String>,
    },
    /// Write a first policy from what a Prometheus holds: the best model its
    /// meters allow, the label that names hosts, and why.
    #[command(after_help = "Examples:\n  \
        wattson policy init --prometheus http://prometheus:9090 -o site.toml\n  \
        wattson policy init --prometheus http://127.0.0.1:9090 --libvirt qemu:///system")]
    Init(super::policy_init::InitArgs),
    /// Print every key of every policy table (type, default, description)
    /// and every builtin plugin's parameters, from the code.
    Reference {
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: ReferenceFormat,
    },
}

/// `policy reference --format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReferenceFormat {
    /// Markdown, as the book's policy reference.
    Markdown,
}

/// Logs what the plan warns of (once per run), then fails with every problem
/// a window would hit with the bound model's measurements (no I/O), located
/// at the policy's `[model] plugin`; for the daemon (`daemon`), what it
/// cannot measure locally.
pub(super) fn check_plan(
    policy: &Policy,
    bound: &policy::Bound,
    daemon: bool,
) -> Result<(), Failure> {
    // `[model]`, then each rule: where it is named, and what it measures.
    let models = policy
        .model
        .iter()
        .zip(&bound.model)
        .map(|(config, bound)| ("model".to_owned(), &config.plugin, &bound.measurements))
        .chain(
            policy
                .rules
                .iter()
                .zip(&bound.rules)
                .enumerate()
                .map(|(i, (rule, bound))| {
                    (format!("rules[{i}]"), &rule.plugin, &bound.measurements)
                }),
        );
    let mut problems = Vec::new();
    for (key, plugin, measurements) in models {
        let found = if daemon {
            crate::daemon::plan_problems(policy, measurements)
        } else {
            for warning in crate::pipeline::plan_warnings(policy, measurements) {
                tracing::warn!("{warning}");
            }
            crate::pipeline::plan_problems(policy, measurements)
        };
        // A problem of the policy as a whole (no libvirt) is said once.
        let found: Vec<String> = found
            .into_iter()
            .filter(|m| !problems.iter().any(|p: &policy::Problem| &p.message == m))
            .collect();
        problems.extend(found.into_iter().map(|message| match policy.source() {
            Some(source) => policy::Problem::at(source, plugin.span(), Some(key.clone()), message),
            None => policy::Problem {
                location: None,
                key: Some(key.clone()),
                message,
            },
        }));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        EXIT_CONFIG,
        policy::PolicyError::Invalid(problems),
    ))
}

/// For a daemon's policy: what this machine lacks that the daemon reads
/// (a powercap tree where a model reads RAPL, `[host_power] command`
/// answering where a model reads `host-power`, `[gpu] command` answering, a
/// libvirt it can open), as
/// warnings: the policy may well be checked elsewhere than on a hypervisor.
fn warn_unlike_a_hypervisor(policy: &Policy, bound: &policy::Bound) {
    let reads = |what: fn(&crate::runtime::Measurement) -> bool| {
        bound
            .model
            .iter()
            .flat_map(|m| m.measurements.iter())
            .chain(bound.rules.iter().flat_map(|r| r.measurements.iter()))
            .any(what)
    };
    if reads(|m| matches!(m, crate::runtime::Measurement::Rapl(_))) {
        let root = policy.rapl.powercap_root.as_ref().map_or_else(
            || std::path::PathBuf::from(crate::sources::rapl::DEFAULT_ROOT),
            |r| r.get_ref().clone(),
        );
        if let Err(e) = crate::sources::rapl::discover(&root) {
            tracing::warn!(
                "{e}: the daemon could not read RAPL on this machine (fine if this is not the \
                 hypervisor it runs on)"
            );
        }
    }
    if reads(|m| matches!(m, crate::runtime::Measurement::HostPower(_))) {
        use crate::sources::ipmi::PowerMeter as _;
        let command = policy.host_power.command.clone();
        if let Err(e) = crate::sources::ipmi::IpmiCommand::new(command).watts() {
            tracing::warn!(
                "{e}: the daemon could not read the host's power on this machine with \
                 [host_power] command (fine if this is not the hypervisor it runs on)"
            );
        }
    }
    if let Some(gpu) = &policy.gpu {
        use crate::sources::gpu::GpuMeter as _;
        if let Err(e) = crate::sources::gpu::SmiCommand::new(gpu.command.clone()).read() {
            tracing::warn!(
                "{e}: the daemon could not read the GPUs on this machine with [gpu] command \
                 (fine if this is not the hypervisor it runs on)"
            );
        }
    }
    if let Some(uri) = &policy.inventory.libvirt_uri
        && let Err(e) = crate::sources::libvirt::Libvirt::open(uri)
    {
        tracing::warn!(
            "{e}: the daemon could not read libvirt on this machine (fine if this is not the \
             hypervisor it runs on)"
        );
    }
}

/// Warns of a `file` messenger's fixed name that node_exporter's textfile
/// collector would not read (a warning: another reader may want that name).
fn warn_textfile_names(policy: &Policy) {
    for (i, output) in policy.outputs.iter().enumerate() {
        if let Some(name) = output.messenger.fixed_file_name()
            && !name.ends_with(".prom")
        {
            tracing::warn!(
                "outputs[{i}].messenger: name {name:?} does not end in .prom, and node_exporter's \
                 textfile collector reads only *.prom files (fine if another reader takes it)"
            );
        }
    }
}

/// Runs a `policy` subcommand.
pub fn run(command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Init(args) => super::policy_init::run(args),
        PolicyCommand::Reference {
            format: ReferenceFormat::Markdown,
        } => {
            outln!("{}", super::policy_reference::markdown()?.trim_end());
            Ok(())
        }
        PolicyCommand::Check {
            file,
            set,
            explain,
            prometheus,
            from,
            to,
        } => {
            let mut policy =
                Policy::load_with(&file, &set).map_err(|e| Failure::new(EXIT_CONFIG, e))?;
            if let Some(url) = &prometheus {
                policy.override_prometheus(url);
            }
            let bound = super::bind(&policy)?;
            // A policy with `[daemon]` is the daemon's.
            check_plan(&policy, &bound, policy.daemon.is_some())?;
            if policy.daemon.is_some() {
                warn_unlike_a_hypervisor(&policy, &bound);
            }
            check_destinations(&policy)?;
            warn_textfile_names(&policy);
            if explain {
                return explain_rules(&policy, &bound, from.as_deref(), to.as_deref());
            }
            let model = bound.model.as_ref().map_or_else(
                || "no [model]".to_owned(),
                |m| format!("model {} {}", m.model.info().name, m.model.info().version),
            );
            outln!(
                "{}: ok ({model}, {} rule(s), {} output(s))",
                file.display(),
                bound.rules.len(),
                bound.outputs.len()
            );
            Ok(())
        }
    }
}

/// `policy check --explain`: the rule and model of every placement in the window.
fn explain_rules(
    policy: &Policy,
    bound: &policy::Bound,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(), Failure> {
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    let step_ms = policy.window.step_secs as i64 * 1000;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let aligned_ms = now_ms - now_ms.rem_euclid(step_ms);
    let window = match crate::window::from_args(from, to, step_ms, now_ms) {
        Ok(Some(window)) => Ok(window),
        Ok(None) => crate::window::Window::new(aligned_ms - step_ms, aligned_ms),
        Err(e) => Err(e),
    }
    .map_err(|e| config(e.into()))?;
    let (prometheus, tokio) = super::prometheus(policy)?;
    let placements = tokio
        .block_on(pipeline::explain(
            policy,
            bound,
            prometheus.as_ref(),
            window,
        ))
        .map_err(|e| Failure::new(EXIT_SOURCE, e))?;
    if placements.is_empty() {
        tracing::warn!(
            "no VM has data in {window}: nothing to explain (pick a window with --from/--to)"
        );
        return Ok(());
    }
    let cell = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 6]> = placements
        .iter()
        .map(|p| {
            [
                p.uuid.clone(),
                cell(&p.name),
                cell(&p.host),
                cell(&p.project),
                p.rule.clone(),
                p.model.clone(),
            ]
        })
        .collect();
    let header = ["UUID", "NAME", "HOST", "PROJECT", "RULE", "MODEL"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", line.join("  ").trim_end());
    }
    let uncovered = placements.iter().filter(|p| p.rule == "-").count();
    if uncovered > 0 {
        return Err(Failure::new(
            EXIT_CONFIG,
            anyhow::anyhow!(
                "{uncovered} VM placement(s) above match no rule and the policy has no [model]: \
                 extract would fail their windows. Add [model], or a rule that matches them"
            ),
        ));
    }
    Ok(())
}

/// Fails with every `file`/`ssm` directory that cannot be created or written
/// (`extract` only warns: a messenger that is down keeps its payloads spooled).
fn check_destinations(policy: &Policy) -> Result<(), Failure> {
    let problems: Vec<policy::Problem> = destination_problems(policy)
        .into_iter()
        .map(|(i, message)| {
            let key = Some(format!("outputs[{i}].messenger"));
            match policy.source() {
                Some(source) => {
                    policy::Problem::at(source, policy.outputs[i].format.span(), key, message)
                }
                None => policy::Problem {
                    location: None,
                    key,
                    message,
                },
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            EXIT_CONFIG,
            policy::PolicyError::Invalid(problems),
        ))
    }
}

/// (output index, problem) of every destination that cannot be written.
pub(super) fn destination_problems(policy: &Policy) -> Vec<(usize, String)> {
    policy
        .outputs
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.messenger.check_destination().err().map(|e| (i, e)))
        .collect()
}
