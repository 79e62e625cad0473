//! GPUs end to end (docs/ENERGY.md#gpus): [`super::gpu`]'s scenario with
//! each GPU host's RAPL counters, wall power and VMs' CPU time, vCPUs,
//! memory and projects, backfilled into a real Prometheus and run through
//! `wattson extract` (records and `--host-summary`) and `wattson report`.
//! Every expected number is the test's: a card's and its holdings' joules
//! from the independent reference ([`super::gpu::reference`]), hosts' energy
//! by C1 and G1, each VM's part by ENERGY.md's share rule with
//! `idle = "none"`, carbon and embodied grams by their formulas.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Output;

use super::data::{Rng, c1, g1};
use super::embodied::{SECONDS_PER_YEAR, presence};
use super::gpu::{
    COUNTER, CPU, Card, END, GAUGE, GpuSeries, INFO, W0, W1, close, gpu_series, labels, reference,
    scenario, scrapes, share_of,
};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::support::{ok, require_tool};
use super::wattson::{command, dry_run, secs, write_policy};

const HOSTS: [&str; 3] = ["gpu-01", "gpu-02", "gpu-03"];

/// Who each VM of the scenario is: (project, vCPUs, memory MiB, CPU s per s).
fn vm_meta(uuid: &str) -> (&'static str, u32, u64, f64) {
    match uuid {
        "x" => ("p-ml", 16, 65_536, 3.2),
        "y" => ("p-bio", 8, 32_768, 1.1),
        "p" => ("p-ml", 8, 32_768, 2.4),
        "q" => ("p-ml", 4, 16_384, 0.7),
        "v" => ("p-chem", 4, 16_384, 1.6),
        "z" => ("p-bio", 8, 32_768, 2.0),
        other => panic!("no VM {other} in the scenario"),
    }
}

/// The scenario in a running Prometheus, and what the test knows of it.
struct Site {
    prometheus: Prometheus,
    /// VM uuid → (host, CPU s in W by C1, presence s in W).
    vms: BTreeMap<&'static str, (&'static str, f64, f64)>,
    /// Host → E_h of its RAPL zones (C1 of each, summed).
    rapl: HashMap<&'static str, f64>,
    /// Host → E_h of its wall power (G1).
    wall: HashMap<&'static str, f64>,
    /// Host → G_h, the sum of its cards' energy.
    gpus: HashMap<&'static str, f64>,
    /// VM uuid → its GPU joules: Σ over its holdings of joules × share.
    gpu_j: HashMap<&'static str, f64>,
    /// VMs holding a vGPU or a MIG instance.
    shared: Vec<&'static str>,
}

impl Site {
    /// Host → Σ of CPU s of every VM on it (C_h).
    fn cpu_on(&self, host: &str) -> f64 {
        self.vms.values().filter(|v| v.0 == host).map(|v| v.1).sum()
    }

    /// What stays at `host` of its GPUs: G_h less its VMs' parts.
    fn unheld(&self, host: &str) -> f64 {
        let held: f64 = self
            .vms
            .iter()
            .filter(|(_, v)| v.0 == host)
            .map(|(uuid, _)| self.gpu_j[uuid])
            .sum();
        self.gpus[host] - held
    }

    /// VM `uuid`'s joules by rapl-share (`wall`: by ipmi-share), idle =
    /// "none": its CPU part of E_h (less G_h for a wall meter) plus its GPUs'.
    fn share(&self, uuid: &str, wall: bool) -> f64 {
        let (host, cpu, _) = self.vms[uuid];
        let cpu_part = if wall {
            (self.wall[host] - self.gpus[host]) * cpu / self.cpu_on(host)
        } else {
            self.rapl[host] * cpu / self.cpu_on(host)
        };
        cpu_part + self.gpu_j[uuid]
    }
}

/// A RAPL counter of one zone (J, µJ resolution) every 15 s over the three
/// hours, at about `watts`.
fn rapl_zone(instance: &str, path: &str, seed: u64, watts: f64) -> TestSeries {
    let mut rng = Rng::new(seed);
    let mut value = 10_000.0 + 1_000.0 * seed as f64;
    let times = scrapes(seed, (super::data::T0, END), true);
    let mut last = times[0];
    let samples = times
        .into_iter()
        .map(|t| {
            value += (t - last) as f64 / 1000.0 * watts * (0.9 + 0.2 * rng.next_f64());
            last = t;
            (t, (value * 1e6).round() / 1e6)
        })
        .collect();
    TestSeries {
        labels: labels(&[
            ("index", "0"),
            ("instance", instance),
            ("path", &format!("/sys/class/powercap/{path}")),
        ]),
        samples,
    }
}

/// Builds the scenario's series, starts Prometheus on them, and works out
/// what ENERGY.md says of them.
fn site() -> Site {
    let (cards, scenario_vms) = scenario();
    let GpuSeries {
        counters,
        gauges,
        infos,
    } = gpu_series(&cards);
    let (mut cpu, mut vcpus, mut memory) = (Vec::new(), Vec::new(), Vec::new());
    let mut vms = BTreeMap::new();
    for (i, &(uuid, instance, life)) in scenario_vms.iter().enumerate() {
        let (project, size, mib, rate) = vm_meta(uuid);
        let l = labels(&[
            ("uuid", uuid),
            ("instance", instance),
            ("project_id", project),
        ]);
        let times = scrapes(700 + i as u64, life, true);
        let series = |value: &dyn Fn(i64) -> f64| TestSeries {
            labels: l.clone(),
            samples: times.iter().map(|&t| (t, value(t))).collect(),
        };
        let cpu_series = series(&|t| (t - life.0) as f64 / 1000.0 * rate);
        let host = HOSTS.into_iter().find(|h| instance.starts_with(h)).unwrap();
        let cpu_s = c1(&cpu_series.samples, W0, W1).unwrap();
        vms.insert(uuid, (host, cpu_s, presence(&cpu_series.samples)));
        cpu.push(cpu_series);
        vcpus.push(series(&|_| f64::from(size)));
        memory.push(series(&|_| mib as f64 * 1_048_576.0));
    }
    let (mut package, mut dram, mut power) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rapl, mut wall) = (HashMap::new(), HashMap::new());
    for (h, host) in HOSTS.into_iter().enumerate() {
        let instance = format!("{host}:9100");
        let p = rapl_zone(
            &instance,
            "intel-rapl:0",
            40 + h as u64,
            160.0 + 30.0 * h as f64,
        );
        let d = rapl_zone(&instance, "intel-rapl:0:0", 50 + h as u64, 18.0);
        let e_h = c1(&p.samples, W0, W1).unwrap() + c1(&d.samples, W0, W1).unwrap();
        rapl.insert(host, e_h);
        package.push(p);
        dram.push(d);
        // Wall power, every card and more: about 1400, 1100 and 800 W.
        let mut rng = Rng::new(60 + h as u64);
        let base = 1400.0 - 300.0 * h as f64;
        let samples: Vec<(i64, f64)> = scrapes(60 + h as u64, (super::data::T0, END), true)
            .into_iter()
            .map(|t| (t, base + 80.0 * rng.next_f64()))
            .collect();
        wall.insert(host, g1(&samples, W0, W1).0);
        power.push(TestSeries {
            labels: labels(&[("instance", &format!("{host}.bmc:9290"))]),
            samples,
        });
    }
    let (gpus, gpu_j, shared) = gpu_parts(&cards);
    let text = openmetrics_with_gauges(
        &[
            (CPU, &cpu),
            ("node_rapl_package_joules", &package),
            ("node_rapl_dram_joules", &dram),
        ],
        &[
            (COUNTER, &counters),
            (GAUGE, &gauges),
            (INFO, &infos),
            ("libvirt_domain_info_virtual_cpus", &vcpus),
            ("libvirt_domain_info_maximum_memory_bytes", &memory),
            ("ipmi_dcmi_power_consumption_watts", &power),
        ],
    );
    let site = Site {
        prometheus: Prometheus::start(&text),
        vms,
        rapl,
        wall,
        gpus,
        gpu_j,
        shared,
    };
    for host in HOSTS {
        assert!(
            site.wall[host] > 1.3 * site.gpus[host],
            "the wall holds the cards"
        );
    }
    site
}

/// G_h per host, each VM's GPU joules (Σ joules × share of its holdings,
/// the VM no series measures left out) and the VMs with a shared card, by
/// the reference.
#[allow(clippy::type_complexity)]
fn gpu_parts(
    cards: &[Card],
) -> (
    HashMap<&'static str, f64>,
    HashMap<&'static str, f64>,
    Vec<&'static str>,
) {
    let mut gpus: HashMap<&'static str, f64> = HashMap::new();
    let mut gpu_j: HashMap<&'static str, f64> = HashMap::new();
    let mut shared = Vec::new();
    for card in cards {
        let shares: Vec<f64> = card.holders.iter().map(share_of).collect();
        let (want, _) = reference(card, &shares);
        *gpus.entry(card.host).or_default() += want.energy;
        for ((h, share), (joules, _)) in card.holders.iter().zip(&shares).zip(&want.holders) {
            if h.vm == "ghost" {
                continue;
            }
            *gpu_j.entry(h.vm).or_default() += joules * share;
            if h.mode != "passthrough" && !shared.contains(&h.vm) {
                shared.push(h.vm);
            }
        }
    }
    (gpus, gpu_j, shared)
}

/// The policy of the site with `model` (and `extra` tables before it).
fn policy(extra: &str, model: &str) -> String {
    format!(
        r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"
[inventory]
project_label = "project_id"
meta_metric = ""
host_label = "instance"
host_regex = '^([^:.]+)'
[window]
step_secs = 3600
{extra}
{model}
[[outputs]]
format = "jsonl"
"#
    )
}

const RAPL_SHARE: &str = "[model]\nplugin = \"rapl-share\"\n[model.params]\nidle = \"none\"\n";
const IPMI_SHARE: &str = "[model]\nplugin = \"ipmi-share\"\n[model.params]\nidle = \"none\"\n";

/// `wattson extract --dry-run` of W with `--host-summary` (and `sets`): the
/// run and the summary's lines.
fn extract(dir: &Path, text: &str, url: &str, sets: &[&str]) -> (Output, Vec<serde_json::Value>) {
    let path = write_policy(dir, "site.toml", text);
    let summary = dir.join("hosts.jsonl");
    let _ = std::fs::remove_file(&summary);
    let mut cmd = dry_run(&path, url, W0, W1);
    cmd.arg("--host-summary").arg(&summary);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap();
    let lines = std::fs::read_to_string(&summary)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

/// The run's records by VM uuid (it must have succeeded).
fn records(out: &Output) -> HashMap<String, serde_json::Value> {
    ok(out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (r["vm_uuid"].as_str().unwrap().to_owned(), r)
        })
        .collect()
}

fn number(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number `{key}` in {v}"))
}

/// The records and host summary of a share model over the site: each VM's
/// joules and GPU part, its quality, and per host both laws.
fn check_share_model(site: &Site, text: &str, wall: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = extract(dir.path(), text, &site.prometheus.url, &[]);
    let records = records(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "(e.g. VM ghost on gpu-01 00000000:DA:00.0) have no placement on the card's host \
             in the window"
        ),
        "ghost's card stays at its host, said in one line: {stderr}"
    );
    let mut uuids: Vec<&str> = records.keys().map(String::as_str).collect();
    uuids.sort_unstable();
    assert_eq!(uuids, ["p", "q", "v", "x", "y", "z"], "ghost has no record");
    for (uuid, record) in &records {
        let uuid = uuid.as_str();
        let what = format!(
            "{uuid} ({})",
            if wall { "ipmi-share" } else { "rapl-share" }
        );
        close(
            number(record, "gpu_j"),
            site.gpu_j[uuid],
            &format!("{what} gpu_j"),
        );
        close(
            number(record, "energy_joules"),
            site.share(uuid, wall),
            &format!("{what} energy"),
        );
        let meters = record["meters"].to_string();
        assert!(meters.contains("\"gpu:"), "{what}: {meters}");
        let kind = if site.shared.contains(&uuid) {
            "estimated"
        } else {
            "measured"
        };
        assert_eq!(record["quality"], kind, "{what}: {record}");
    }
    assert!(
        site.shared.len() == 3,
        "p, q (MIG) and v (vGPU) share cards"
    );
    // Per host: what the model gave and left is E_h + G_h (RAPL: the cards
    // beside the meter) or E_h (wall: the cards inside it); the GPUs' rest
    // stays as no-vms.
    assert_eq!(summary.len(), 3, "{summary:?}");
    for line in &summary {
        let host = HOSTS
            .into_iter()
            .find(|h| line["host"] == *h)
            .unwrap_or_else(|| panic!("{line}"));
        let (e_h, total) = if wall {
            (site.wall[host], site.wall[host])
        } else {
            (site.rapl[host], site.rapl[host] + site.gpus[host])
        };
        close(number(line, "energy_joules"), e_h, &format!("{host} E_h"));
        let got = number(line, "attributed_joules") + number(line, "unattributed_joules");
        close(got, total, &format!("{host}: attributed + unattributed"));
        close(
            number(&line["reasons"], "no-vms"),
            site.unheld(host),
            &format!("{host}: GPUs no VM held"),
        );
        // The GPUs' own account: G_h, what the VMs held, what nobody did.
        close(
            number(line, "gpu_joules"),
            site.gpus[host],
            &format!("{host}: G_h"),
        );
        close(
            number(line, "gpu_attributed_joules"),
            site.gpus[host] - site.unheld(host),
            &format!("{host}: GPUs the VMs held"),
        );
        close(
            number(line, "gpu_unattributed_joules"),
            site.unheld(host),
            &format!("{host}: GPUs left at the host"),
        );
        assert_eq!(
            line["reasons"].as_object().unwrap().len(),
            1,
            "{host}: nothing but GPUs stays: {line}"
        );
        assert!(number(line, "conservation_rel_err") < 1e-9, "{line}");
    }
}

/// rapl-share with `[gpu]`: each VM's GPUs beside its part of RAPL's E_h;
/// ipmi-share: the wall's E_h less the cards split by CPU, the cards by
/// their holders.
#[test]
fn share_models_give_each_vm_its_gpus_through_extract() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let site = site();
    check_share_model(&site, &policy("[gpu]\n", RAPL_SHARE), false);
    check_share_model(&site, &policy("[gpu]\n", IPMI_SHARE), true);
}

/// `gpu = "ignore"` with `[gpu]` writes, byte for byte, the records of the
/// same policy without `[gpu]`: no `gpu_j`, no GPU energy.
#[test]
fn gpu_ignore_is_the_policy_without_gpus_byte_for_byte() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let site = site();
    let url = &site.prometheus.url;
    for model in [RAPL_SHARE, IPMI_SHARE] {
        let dir = tempfile::tempdir().unwrap();
        let (ignored, _) = extract(
            dir.path(),
            &policy("[gpu]\n", model),
            url,
            &["model.params.gpu=\"ignore\""],
        );
        let (without, _) = extract(dir.path(), &policy("", model), url, &[]);
        let records = records(&without);
        ok(&ignored);
        assert_eq!(records.len(), 6);
        let stdout = String::from_utf8_lossy(&ignored.stdout);
        assert!(
            !stdout.contains("gpu_j") && !stdout.contains("\"gpu:"),
            "{stdout}"
        );
        assert_eq!(stdout, String::from_utf8_lossy(&without.stdout));
    }
}

/// `[[rules]]`: project p-ml's VMs on gpu-* hosts get rapl-share, the rest
/// ipmi-share; card 00000000:AF:00.0 of gpu-01 is handed from x (p-ml) to
/// y (p-bio), gpu-02's cards are held by p, q (p-ml) and v (p-chem). Each
/// holding's part reaches its VM once, in its own model; the other model's
/// view of the host keeps it as other-model; every card's energy is in the
/// records or at its host exactly once.
#[test]
fn rules_attribute_each_card_once_across_models() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let site = site();
    let rules = "[gpu]\n[[rules]]\nmatch = { host = \"gpu-*\", project = \"p-ml\" }\n\
                 plugin = \"rapl-share\"\nparams = { idle = \"none\" }\n";
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = extract(
        dir.path(),
        &policy(rules, IPMI_SHARE),
        &site.prometheus.url,
        &[],
    );
    let records = records(&out);
    assert_eq!(records.len(), 6);
    let rapl_vm = |uuid: &str| vm_meta(uuid).0 == "p-ml";
    let mut gpu_in_records = 0.0;
    for (uuid, record) in &records {
        let rapl = rapl_vm(uuid);
        let model = if rapl { "rapl-share" } else { "ipmi-share" };
        assert_eq!(record["model"], model, "{uuid}");
        close(number(record, "gpu_j"), site.gpu_j[uuid.as_str()], uuid);
        close(
            number(record, "energy_joules"),
            site.share(uuid, !rapl),
            &format!("{uuid} energy"),
        );
        gpu_in_records += number(record, "gpu_j");
    }
    assert!(
        site.gpu_j["x"] > 0.0 && site.gpu_j["y"] > 0.0,
        "a card of both models"
    );
    // Two views of every host, one per model.
    let line = |host: &str, model: &str| {
        summary
            .iter()
            .find(|l| l["host"] == host && l["model"] == model)
            .unwrap_or_else(|| panic!("no {model} line for {host}: {summary:?}"))
    };
    assert_eq!(summary.len(), 6, "{summary:?}");
    let mut unheld = 0.0;
    for host in HOSTS {
        let on_host: Vec<(&str, f64)> = site
            .vms
            .iter()
            .filter(|(_, v)| v.0 == host)
            .map(|(uuid, v)| (*uuid, v.1))
            .collect();
        let c_h = site.cpu_on(host);
        for (model, wall) in [("rapl-share", false), ("ipmi-share", true)] {
            let l = line(host, model);
            let what = format!("{host}, {model}'s view");
            let (e_h, total) = if wall {
                (site.wall[host], site.wall[host])
            } else {
                (site.rapl[host], site.rapl[host] + site.gpus[host])
            };
            let split = if wall { e_h - site.gpus[host] } else { e_h };
            // The other model's VMs: their CPU part and their GPUs' part.
            let others: f64 = on_host
                .iter()
                .filter(|(uuid, _)| rapl_vm(uuid) == wall)
                .map(|(uuid, cpu)| split * cpu / c_h + site.gpu_j[uuid])
                .sum();
            let mine: f64 = on_host
                .iter()
                .filter(|(uuid, _)| rapl_vm(uuid) != wall)
                .map(|(uuid, _)| site.share(uuid, wall))
                .sum();
            close(
                number(l, "attributed_joules"),
                mine,
                &format!("{what}: attributed"),
            );
            let got = number(l, "attributed_joules") + number(l, "unattributed_joules");
            close(got, total, &format!("{what}: attributed + unattributed"));
            let reasons = &l["reasons"];
            close(
                reasons["other-model"].as_f64().unwrap_or(0.0),
                others,
                &format!("{what}: other-model"),
            );
            close(
                number(reasons, "no-vms"),
                site.unheld(host),
                &format!("{what}: no-vms"),
            );
            assert!(number(l, "conservation_rel_err") < 1e-9, "{l}");
        }
        unheld += site.unheld(host);
    }
    let cards: f64 = site.gpus.values().sum();
    close(gpu_in_records + unheld, cards, "every card once");
}

/// Runs `wattson report` over W on the site's Prometheus.
fn report(policy: &Path, url: &str, args: &[&str]) -> Output {
    command()
        .args(["report", "--policy"])
        .arg(policy)
        .args(["--prometheus", url])
        .args(["--from", &secs(W0), "--to", &secs(W1)])
        .args(args)
        .output()
        .unwrap()
}

/// One VM's or project's expected figures: (kWh, GPU kWh, gCO2e, embodied
/// g, total g); embodied and total unknown where any VM lacks embodied grams.
type Want = (f64, f64, f64, Option<f64>, Option<f64>);

/// The report's rows (JSON and CSV, by project and by VM) against the
/// test's sums of ENERGY.md's figures.
#[test]
fn report_sums_gpu_energy_carbon_and_embodied_per_project_and_vm() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let site = site();
    let (ci, pue) = (250.0, 1.25);
    let (kg, years, vcpus, memory_gb) = (2500.0, 5.0, 128.0, 1024.0);
    let extra = format!(
        "[gpu]\n[carbon]\nintensity_g_per_kwh = {ci}\npue = {pue}\n[embodied]\n\
         [embodied.hosts.\"gpu-0[12]\"]\nkg_co2e = {kg}\nlifetime_years = {years}\n\
         capacity = {{ vcpus = {vcpus}, memory_gb = {memory_gb} }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(dir.path(), "site.toml", &policy(&extra, RAPL_SHARE));
    // Per VM, by ENERGY.md; gpu-03 matches no [embodied.hosts] glob.
    let rate = kg * 1000.0 / (years * SECONDS_PER_YEAR);
    let per_vm: BTreeMap<&str, Want> = site
        .vms
        .iter()
        .map(|(&uuid, &(host, _, presence))| {
            let joules = site.share(uuid, false);
            let (_, size, mib, _) = vm_meta(uuid);
            let carbon = joules / 3.6e6 * pue * ci;
            let embodied = (host != "gpu-03").then(|| {
                let share = (f64::from(size) / vcpus + mib as f64 / (memory_gb * 1024.0)) / 2.0;
                rate * share * presence
            });
            let want = (
                joules / 3.6e6,
                site.gpu_j[uuid] / 3.6e6,
                carbon,
                embodied,
                embodied.map(|e| e + carbon),
            );
            (uuid, want)
        })
        .collect();
    let mut per_project: BTreeMap<&str, Want> = BTreeMap::new();
    for (uuid, vm) in &per_vm {
        let p = per_project
            .entry(vm_meta(uuid).0)
            .or_insert((0.0, 0.0, 0.0, Some(0.0), Some(0.0)));
        p.0 += vm.0;
        p.1 += vm.1;
        p.2 += vm.2;
        p.3 = p.3.zip(vm.3).map(|(a, b)| a + b);
        p.4 = p.4.zip(vm.4).map(|(a, b)| a + b);
    }
    assert_eq!(
        per_project["p-bio"].3, None,
        "z on gpu-03 has no embodied grams"
    );
    assert!(
        per_project["p-ml"].1 > 0.1,
        "p-ml's GPUs: {:?}",
        per_project["p-ml"]
    );

    let url = &site.prometheus.url;
    for (by, key, list, want) in [
        ("project", "tenant_id", "tenant_usages", &per_project),
        ("vm", "instance_id", "usages", &per_vm),
    ] {
        // JSON: null where unknown, never 0.
        let out = report(&path, url, &["--by", by, "--format", "json"]);
        ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows = json[list].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "{by}: {json}");
        for row in rows {
            let id = row[key].as_str().unwrap();
            let w = want[id];
            let what = format!("--by {by} json, {id}");
            close(
                number(row, "total_energy_kwh"),
                w.0,
                &format!("{what}: kWh"),
            );
            close(
                number(row, "total_gpu_kwh"),
                w.1,
                &format!("{what}: GPU kWh"),
            );
            close(
                number(row, "total_carbon_g"),
                w.2,
                &format!("{what}: gCO2e"),
            );
            for (k, v) in [("total_embodied_g", w.3), ("total_g", w.4)] {
                match v {
                    Some(v) => close(number(row, k), v, &format!("{what}: {k}")),
                    None => assert!(row[k].is_null(), "{what}: {k} is unknown: {row}"),
                }
            }
        }
        // CSV: blank where unknown, never 0.
        let out = report(&path, url, &["--by", by, "--format", "csv"]);
        ok(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let mut seen = 0;
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            let w = want[cells[column(key)]];
            let what = format!("--by {by} csv, {}", cells[column(key)]);
            let cell = |name: &str| cells[column(name)];
            let value = |name: &str| cell(name).parse::<f64>().unwrap();
            close(value("energy_kwh"), w.0, &format!("{what}: kWh"));
            close(value("gpu_kwh"), w.1, &format!("{what}: GPU kWh"));
            close(value("carbon_g"), w.2, &format!("{what}: gCO2e"));
            for (k, v) in [("embodied_g", w.3), ("total_g", w.4)] {
                match v {
                    Some(v) => close(value(k), v, &format!("{what}: {k}")),
                    None => assert_eq!(cell(k), "", "{what}: {k} is blank"),
                }
            }
            seen += 1;
        }
        assert_eq!(seen, want.len(), "{text}");
    }
}

/// A guest model that gives a VM more GPU joules than its holdings (the
/// `misbehave` test guest's `gpu-excess`) fails the window, naming the host
/// whose GPU law it broke; nothing is written.
#[test]
fn a_model_breaking_the_gpu_law_fails_the_window_naming_the_host() {
    if !require_tool("promtool", "apt-get install prometheus (scripts/setup.sh)") {
        return;
    }
    let site = site();
    let model = format!(
        "[model]\nplugin = \"{}\"\n[model.params]\nmode = \"gpu-excess\"\nmetric = \"{CPU}_total\"\n",
        env!("WATTSON_TEST_GUEST_MISBEHAVE")
    );
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = extract(
        dir.path(),
        &policy("[gpu]\n", &model),
        &site.prometheus.url,
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{stderr}");
    assert!(
        stderr.contains("plugin `misbehave`")
            && stderr.contains("breaks GPU conservation on host `gpu-01`"),
        "{stderr}"
    );
}
