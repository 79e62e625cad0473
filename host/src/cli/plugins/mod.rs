//! `wattson plugins list|inspect|new|test`.

mod fixture;
mod new;

use std::path::PathBuf;

use clap::Subcommand;

use super::{EXIT_PLUGIN, Failure, cache_dir};
use crate::runtime::{
    BUILTINS, KeyKind, Limits, Measurement, Model, ParamSpec, PluginError, PluginKind, Quality,
    Runtime, kind_name, unit_name, value_text,
};

/// `wattson plugins …`
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the builtin plugins.
    #[command(
        after_help = "Examples:\n  wattson plugins list\n  wattson plugins list | grep model"
    )]
    List,
    /// Print what a plugin's describe() says: a builtin name or a .wasm path.
    #[command(after_help = "Examples:\n  \
        wattson plugins inspect rapl-share\n  \
        wattson plugins inspect ./target/wasm32-wasip2/release/my_model.wasm")]
    Inspect {
        /// Builtin name or path to a component.
        plugin: String,
    },
    /// Start a plugin of your own: a Rust crate (outside this repository)
    /// on the plugin SDK, with a fixture that `plugins test` passes.
    #[command(after_help = "Examples:\n  \
        wattson plugins new site-share --kind model\n  \
        wattson plugins new site-csv --kind format --dir ~/src --sdk ~/src/wattson/plugins/sdk")]
    New {
        /// The plugin's name (lower case, digits, `-`).
        name: String,
        /// Model or format.
        #[arg(long, value_enum)]
        kind: new::Kind,
        /// Where the crate's directory is made (default: here).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The `wattson-plugin` SDK crate (default: the one this binary was built from).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Run a model on a JSON window fixture, or a format on JSON records,
    /// under the real sandbox and limits, with the host's checks.
    #[command(after_help = "Examples:\n  \
        wattson plugins test target/wasm32-wasip2/release/site_share.wasm --input fixture.json\n  \
        wattson plugins test rapl-share --input window.json --set idle='\"host\"' --json")]
    Test {
        /// Builtin name or path to a component.
        plugin: String,
        /// The fixture: an attribution input (model) or a list of records (format).
        #[arg(long, value_name = "FILE.json")]
        input: PathBuf,
        /// Set a parameter (repeatable): NAME=VALUE, the value as in a policy.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `plugins` subcommand.
pub fn run(command: PluginsCommand) -> Result<(), Failure> {
    let runtime = Runtime::new(Limits::default(), cache_dir(None))
        .map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
    match command {
        PluginsCommand::List => {
            outln!("{:<16} {:<7} {:<8} DESCRIPTION", "NAME", "KIND", "VERSION");
            for builtin in BUILTINS {
                let (version, description) = match builtin.kind {
                    PluginKind::Model => runtime
                        .load_model(builtin.name)
                        .map(|m| (m.info().version.clone(), m.info().description.clone())),
                    PluginKind::Format => runtime
                        .load_format(builtin.name)
                        .map(|f| (f.info().version.clone(), f.info().description.clone())),
                }
                .map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
                outln!(
                    "{:<16} {:<7} {:<8} {description}",
                    builtin.name,
                    builtin.kind.to_string(),
                    version
                );
            }
            Ok(())
        }
        PluginsCommand::New {
            name,
            kind,
            dir,
            sdk,
        } => {
            let root = new::scaffold(&name, kind, dir.as_deref(), sdk.as_deref())?;
            eprintln!(
                "created {}: cd there, `cargo build --release`, then `wattson plugins test target/wasm32-wasip2/release/{}.wasm --input fixture.json`",
                root.display(),
                name.replace('-', "_")
            );
            Ok(())
        }
        PluginsCommand::Test {
            plugin,
            input,
            set,
            json,
        } => {
            let builtin_format = BUILTINS
                .iter()
                .any(|b| b.name == plugin && b.kind == PluginKind::Format);
            let model = if builtin_format {
                Err(None)
            } else {
                runtime.load_model(&plugin).map_err(Some)
            };
            match model {
                Ok(model) => fixture::model(&model, &input, &set, json),
                Err(
                    None
                    | Some(PluginError::OtherWorld {
                        is: PluginKind::Format,
                        ..
                    }),
                ) => {
                    let format = runtime
                        .load_format(&plugin)
                        .map_err(|e| Failure::new(EXIT_PLUGIN, e))?;
                    fixture::format(&format, &input, &set, json)
                }
                Err(Some(e)) => Err(Failure::new(EXIT_PLUGIN, e)),
            }
        }
        PluginsCommand::Inspect { plugin } => {
            let model_error = match runtime.load_model(&plugin) {
                Ok(model) => {
                    inspect_model(&model);
                    return Ok(());
                }
                Err(e) => e,
            };
            let format = match runtime.load_format(&plugin) {
                Ok(format) => format,
                // A model that failed to load is reported as a model.
                Err(PluginError::OtherWorld {
                    is: PluginKind::Model,
                    ..
                }) => {
                    return Err(Failure::new(EXIT_PLUGIN, model_error));
                }
                Err(e) => return Err(Failure::new(EXIT_PLUGIN, e)),
            };
            let info = format.info();
            outln!(
                "{}\nkind: format\nsha256: {}\nwit: {}\nname: {}\nversion: {}\nmedia type: {}\nextension: {}\n{}",
                format.id(),
                format.id().sha256,
                format.wit_version(),
                info.name,
                info.version,
                info.media_type,
                info.extension,
                info.description
            );
            print_params(&info.params);
            Ok(())
        }
    }
}

fn inspect_model(model: &Model) {
    let info = model.info();
    outln!(
        "{}\nkind: model\nsha256: {}\nwit: {}\nname: {}\nversion: {}\nquality: {}\n{}",
        model.id(),
        model.id().sha256,
        model.wit_version(),
        info.name,
        info.version,
        match info.quality {
            Quality::Measured => "measured",
            Quality::Estimated => "estimated",
        },
        info.description
    );
    outln!("measurements:");
    for m in &info.measurements {
        outln!("  {}", describe_measurement(m));
    }
    print_params(&info.params);
    if let Some(c) = &info.conservation {
        let total = match (&c.gpu, c.gpu_in_meter) {
            (None, _) => c.measurement.clone(),
            (Some(gpu), false) => format!("{} + the GPUs of `{gpu}`", c.measurement),
            (Some(gpu), true) => format!("{} (which counts the GPUs of `{gpu}`)", c.measurement),
        };
        outln!(
            "conservation: per host, placements + unattributed = {total} (tolerance {:e})",
            c.tolerance
        );
        if let Some(gpu) = &c.gpu {
            outln!(
                "  and their GPU parts = the GPUs of `{gpu}` (unless its `gpu` parameter is \"ignore\")"
            );
        }
    }
}

fn print_params(params: &[ParamSpec]) {
    outln!("params:");
    for p in params {
        let default = p.default.as_ref().map_or("required".to_owned(), |d| {
            format!("default {}", value_text(d))
        });
        outln!(
            "  {} ({}, {default}): {}",
            p.name,
            kind_name(&p.kind),
            p.description
        );
    }
}

fn describe_measurement(m: &Measurement) -> String {
    match m {
        Measurement::Counter(c) => format!(
            "counter `{}`: {} keyed by label `{}` ({}), in {}{}",
            c.name,
            c.selector,
            c.key_label,
            key_word(c.key),
            unit_name(c.unit),
            c.wrap_range
                .map_or(String::new(), |r| format!(", wraps at {r}"))
        ),
        Measurement::Gauge(g) => format!(
            "gauge `{}`: {} keyed by label `{}` ({}), in {}",
            g.name,
            g.selector,
            g.key_label,
            key_word(g.key),
            unit_name(g.unit)
        ),
        Measurement::Template(t) => {
            format!(
                "template `{}`: {} (in {})",
                t.name,
                t.query,
                unit_name(t.unit)
            )
        }
        Measurement::Rapl(r) if r.zones.is_empty() => format!(
            "rapl `{}`: the default zones (package and dram; psys where there is no package)",
            r.name
        ),
        Measurement::Rapl(r) => format!("rapl `{}`: zones {}", r.name, r.zones.join(", ")),
        Measurement::HostPower(h) => {
            format!("host-power `{}` (the host's wall-power meter)", h.name)
        }
        Measurement::CpuTime(name) => format!("cpu-time `{name}`"),
        Measurement::IdlePower(i) => {
            format!("idle-power `{}` of `{}` ({})", i.name, i.meter, i.setting)
        }
        Measurement::Inventory => {
            "inventory (VM names, projects, users, flavors, labels)".to_owned()
        }
        Measurement::Gpu(g) => format!("gpu `{}` (each host's GPUs and their holders)", g.name),
    }
}

/// What a key kind's label holds, in words.
fn key_word(key: KeyKind) -> &'static str {
    match key {
        KeyKind::Uuid => "the VM's uuid",
        KeyKind::Vmname => "the VM's libvirt domain name",
        KeyKind::Host => "the host",
    }
}
