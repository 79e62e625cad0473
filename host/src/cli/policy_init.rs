//! `wattson policy init`: a first policy from what a site's Prometheus
//! really holds. It looks for each meter family's metrics, picks the best
//! model they allow (a per-VM meter first, then a host meter split by CPU
//! time, then an estimate), finds the label that names hosts across them,
//! asks whether remote read answers, and writes the shipped, commented
//! policy of that model with the site's URL, host label and findings.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use toml_edit::{DocumentMut, value};

use super::{EXIT_CONFIG, EXIT_SOURCE, Failure};
use crate::policy::{Policy, Source};
use crate::sources::prometheus::{Client, PrometheusConfig, PrometheusError};

/// Arguments of `wattson policy init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The site's Prometheus (or another PromQL store).
    #[arg(long, value_name = "URL")]
    prometheus: String,
    /// On a hypervisor: libvirt, to describe VMs from their domains (`qemu:///system`).
    #[arg(long, value_name = "URI")]
    libvirt: Option<String>,
    /// Write the policy here (refused if the file exists) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// A metric family wattson reads.
struct Family {
    /// What it is, for people.
    what: &'static str,
    /// The metric that shows it is there.
    metric: &'static str,
}

const LIBVIRT_ENERGY: Family = Family {
    what: "the libvirt exporter's per-VM energy counter",
    metric: "libvirt_domain_info_energy_consumption_joules_total",
};
const KEPLER: Family = Family {
    what: "Kepler's per-VM energy",
    metric: "kepler_vm_cpu_joules_total",
};
const SCAPHANDRE: Family = Family {
    what: "Scaphandre's per-process power",
    metric: "scaph_process_power_consumption_microwatts",
};
const IPMI: Family = Family {
    what: "the hosts' wall power (ipmi_exporter, DCMI)",
    metric: "ipmi_dcmi_power_consumption_watts",
};
const RAPL: Family = Family {
    what: "node_exporter's RAPL counters",
    metric: "node_rapl_package_joules_total",
};
const CPU_TIME: Family = Family {
    what: "the libvirt exporter's per-VM CPU time",
    metric: "libvirt_domain_info_cpu_time_seconds_total",
};
/// Every family looked for, in the order they are said.
const FAMILIES: [&Family; 6] = [
    &LIBVIRT_ENERGY,
    &KEPLER,
    &SCAPHANDRE,
    &IPMI,
    &RAPL,
    &CPU_TIME,
];

const META: &str = "libvirt_domain_info_meta";
const NODE_CPU: &str = "node_cpu_seconds_total";

/// A model wattson can run on what was found: its shipped policy, the
/// families it reads, why it is chosen and what a better one would need.
struct Choice {
    plugin: &'static str,
    policy: &'static str,
    reads: &'static [&'static Family],
    why: &'static str,
    better: Option<&'static str>,
}

/// In order of preference: a meter per VM, then a host meter split by CPU
/// time (wall power is the whole host; RAPL is CPU and memory only), then
/// an estimate.
const CHOICES: [Choice; 6] = [
    Choice {
        plugin: "libvirt-joules",
        policy: include_str!("../../../policies/libvirt-joules.toml"),
        reads: &[&LIBVIRT_ENERGY],
        why: "each VM has its own energy counter: its joules are measured, not shared out",
        better: None,
    },
    Choice {
        plugin: "kepler",
        policy: include_str!("../../../policies/kepler.toml"),
        reads: &[&KEPLER],
        why: "Kepler measures each VM's package and DRAM energy",
        better: Some("a per-VM energy counter (the libvirt exporter's) is exact per VM"),
    },
    Choice {
        plugin: "scaphandre",
        policy: include_str!("../../../policies/scaphandre.toml"),
        reads: &[&SCAPHANDRE],
        why: "Scaphandre measures each VM's qemu process",
        better: Some("a per-VM energy counter (the libvirt exporter's) is exact per VM"),
    },
    Choice {
        plugin: "ipmi-share",
        policy: include_str!("../../../policies/ipmi-share.toml"),
        reads: &[&IPMI, &CPU_TIME],
        why: "each host's wall power is split between its VMs by CPU time, idle power as well",
        better: Some(
            "a per-VM meter (libvirt exporter energy, Kepler or Scaphandre) measures VMs directly",
        ),
    },
    Choice {
        plugin: "rapl-share",
        policy: include_str!("../../../policies/rapl-share.toml"),
        reads: &[&RAPL, &CPU_TIME],
        why: "each host's RAPL energy (CPU packages and DRAM) is split between its VMs by CPU time",
        better: Some(
            "the hosts' wall power (ipmi_exporter) covers the whole host, not only CPU and memory",
        ),
    },
    Choice {
        plugin: "tdp-estimate",
        policy: include_str!("../../../policies/tdp-estimate.toml"),
        reads: &[&CPU_TIME],
        why: "no meter was found: energy is estimated from vCPUs and CPU use (marked `estimated`)",
        better: Some("any meter: RAPL (node_exporter) or wall power (ipmi_exporter) per host"),
    },
];

/// Labels that may name a host, most explicit first.
const HOST_LABELS: [&str; 5] = ["host", "hostname", "node", "host_id", "instance"];

/// What the site's Prometheus holds.
struct Found {
    names: BTreeSet<String>,
    remote_read: bool,
}

/// Runs `wattson policy init`.
pub fn run(args: InitArgs) -> Result<(), Failure> {
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    if let Some(path) = args.output.as_ref().filter(|p| p.exists()) {
        return Err(config(anyhow::anyhow!(
            "{} exists: give another -o FILE, or remove it first",
            path.display()
        )));
    }
    let client =
        Client::new(PrometheusConfig::with_url(&args.prometheus)).map_err(|e| config(e.into()))?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, e))?;
    let source = |e: PrometheusError| Failure::new(EXIT_SOURCE, e);
    let found = tokio.block_on(async {
        Ok::<_, PrometheusError>(Found {
            names: client
                .label_values("__name__", None)
                .await?
                .into_iter()
                .collect(),
            remote_read: client.remote_read_answers().await,
        })
    });
    let found = found.map_err(source)?;
    let present = |f: &Family| found.names.contains(f.metric);
    let Some(choice) = CHOICES.iter().find(|c| c.reads.iter().all(|f| present(f))) else {
        let looked: Vec<String> = FAMILIES
            .iter()
            .map(|f| format!("  {} ({})", f.metric, f.what))
            .collect();
        return Err(config(anyhow::anyhow!(
            "{} holds none of the metrics wattson can attribute energy from ({} metric names \
             there). It looked for:\n{}\nScrape one of these exporters into it, then run \
             `wattson policy init` again; no file was written",
            client.url(),
            found.names.len(),
            looked.join("\n")
        )));
    };
    let metrics: Vec<&str> = choice.reads.iter().map(|f| f.metric).collect();
    let (host_label, values) = tokio
        .block_on(host_label(&client, &metrics))
        .map_err(source)?;
    let text = policy(&args, choice, &found, host_label.as_deref(), &values);
    check(&text, args.output.as_deref())?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| {
                Failure::new(1, anyhow::anyhow!("cannot write {}: {e}", path.display()))
            })?;
            eprintln!(
                "wrote {}: model {} ({}). Next: set [site] and [[outputs]], then \
                 `wattson policy check {0}` and `wattson extract --policy {0} --dry-run`",
                path.display(),
                choice.plugin,
                choice.why
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
    }
    Ok(())
}

/// The first label of [`HOST_LABELS`] every one of `metrics` carries, with
/// its values on the first of them.
async fn host_label(
    client: &Client,
    metrics: &[&str],
) -> Result<(Option<String>, Vec<String>), PrometheusError> {
    for label in HOST_LABELS {
        let mut first = None;
        for metric in metrics {
            let values = client.label_values(label, Some(metric)).await?;
            if values.is_empty() {
                first = None;
                break;
            }
            first.get_or_insert(values);
        }
        if let Some(values) = first {
            return Ok((Some(label.to_owned()), values));
        }
    }
    Ok((None, Vec::new()))
}

/// The shipped policy of `choice`, pointed at the site, with a header that
/// says what was found, why this model, and what a better one needs.
fn policy(
    args: &InitArgs,
    choice: &Choice,
    found: &Found,
    host_label: Option<&str>,
    hosts: &[String],
) -> String {
    let mut doc: DocumentMut = choice
        .policy
        .parse()
        .expect("the shipped policies are TOML (tested)");
    doc["prometheus"]["url"] = value(&args.prometheus);
    let inventory = &mut doc["inventory"];
    if let Some(label) = host_label {
        inventory["host_label"] = value(label);
        // Exporters' `instance` is host:port: one key per host across them.
        if hosts.iter().any(|h| h.contains(':')) {
            inventory["host_regex"] = value("^([^:.]+)");
        } else if let Some(table) = inventory.as_table_like_mut() {
            table.remove("host_regex");
        }
        if choice.plugin == "scaphandre" {
            doc["model"]["params"]["host_label"] = value(label);
        }
    }
    if !found.names.contains(META) {
        doc["inventory"]["meta_metric"] = value("");
    }
    if let Some(uri) = &args.libvirt {
        doc["inventory"]["libvirt_uri"] = value(uri);
    }
    let present: Vec<String> = FAMILIES
        .iter()
        .filter(|f| found.names.contains(f.metric))
        .map(|f| format!("#   - {} ({})", f.metric, f.what))
        .collect();
    let mut header = vec![
        format!(
            "# Written by `wattson policy init` from {}.",
            args.prometheus
        ),
        "# Found there:".to_owned(),
    ];
    header.extend(present);
    if found.names.contains(META) {
        header.push(format!("#   - {META} (VM names, projects, users, flavors)"));
    }
    if found.names.contains(NODE_CPU) {
        header.push(format!(
            "#   - {NODE_CPU} (the hosts' CPU use: idle_power = \"fit\" can use it)"
        ));
    }
    if let Some(carbon) = found.names.iter().find(|n| n.contains("carbon_intensity")) {
        header.push(format!(
            "#   - {carbon}: a grid carbon intensity; see [carbon] below to put it on records"
        ));
    }
    header.push(format!(
        "# Model: {}, because {}.",
        choice.plugin, choice.why
    ));
    if let Some(better) = choice.better {
        header.push(format!("# Better, if you can add it: {better}."));
    }
    header.push(match host_label {
        Some(label) => format!(
            "# Hosts are named by `{label}` ({} value(s), e.g. {}).",
            hosts.len(),
            hosts.first().map_or("-", String::as_str)
        ),
        None => {
            "# No label names hosts on every series read: set [inventory] host_label.".to_owned()
        }
    });
    header.push(format!(
        "# Remote read: {}.",
        if found.remote_read {
            "answers (raw samples are read with it: [prometheus] read = \"auto\")"
        } else {
            "does not answer (PromQL is used)"
        }
    ));
    header.push(
        "# Next: set [site] (your GOCDB name and endpoint) and [[outputs]], then run\n\
         #   wattson policy check THIS_FILE && wattson extract --policy THIS_FILE --dry-run"
            .to_owned(),
    );
    format!("{}\n#\n{}", header.join("\n"), doc)
}

/// The policy parses and checks as `policy check` would (plugins bound);
/// a failure is a bug here, said as such, and nothing is written.
fn check(text: &str, path: Option<&std::path::Path>) -> Result<(), Failure> {
    let name = path.map_or_else(
        || PathBuf::from("policy-init.toml"),
        std::path::Path::to_path_buf,
    );
    let policy = Policy::parse(Source::new(&name, text.to_owned())).map_err(|e| {
        Failure::new(
            1,
            anyhow::anyhow!("policy init wrote a policy that does not parse (a bug): {e}"),
        )
    })?;
    let bound = super::bind(&policy)?;
    super::policy::check_plan(&policy, &bound, false)
}
