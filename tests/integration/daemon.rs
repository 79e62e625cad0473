//! The daemon on this host's stand-ins: the libvirt test driver (a copy of
//! the node fixture, edited to remove a domain), a powercap fixture tree
//! with the real layout whose counters the test advances (one wraps), and
//! CPU times fed by the test (the test driver's are the clock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wattson::daemon::{Engine, MetricsFormat, Shared, Sources, render_metrics, sources};
use wattson::pipeline::Plan;
use wattson::policy::Policy;
use wattson::runtime::{Limits, Runtime};
use wattson::sources::libvirt::{CpuTimes, LibvirtError};

use super::data::rel_err;
use super::rapl::{RANGE, ZONES, bump, powercap_tree};

/// Running domains of the fixture (nova, paused nova, OpenNebula, bare).
pub(super) const RUNNING: [&str; 4] = [
    "c5a2b3d4-1e2f-4a5b-8c9d-0e1f2a3b4c5d",
    "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5e",
    "e7c4d5f6-3041-4c7d-8ebf-203142536475",
    "f8d5e6a7-4152-4d8e-9fc0-314253647586",
];

/// CPU seconds the test sets.
#[derive(Clone, Default)]
struct FedCpu(Arc<Mutex<BTreeMap<String, f64>>>);

impl CpuTimes for FedCpu {
    fn cpu_seconds(&self) -> Result<BTreeMap<String, f64>, LibvirtError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// A node fixture copy under `dir`; returns its test:// URI.
pub(super) fn node_copy(dir: &Path) -> (PathBuf, String) {
    let fixture: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "libvirt",
        "node.xml",
    ]
    .iter()
    .collect();
    let copy = dir.join("node.xml");
    std::fs::copy(fixture, &copy).unwrap();
    let uri = format!("test://{}", copy.display());
    (copy, uri)
}

/// Removes the domain named `name` from a node file.
pub(super) fn remove_domain(node: &Path, name: &str) {
    let text = std::fs::read_to_string(node).unwrap();
    let at = text.find(&format!("<name>{name}</name>")).unwrap();
    let start = text[..at].rfind("<domain").unwrap();
    let end = at + text[at..].find("</domain>").unwrap() + "</domain>".len();
    std::fs::write(node, format!("{}{}", &text[..start], &text[end..])).unwrap();
}

pub(super) fn daemon_policy(dir: &Path, uri: &str, powercap: &Path, idle: &str) -> String {
    format!(
        r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"

[inventory]
libvirt_uri = "{uri}"

[rapl]
powercap_root = "{}"

[model]
plugin = "rapl-share"
[model.params]
idle = "{idle}"
idle_power = "auto"

[daemon]
host = "cmp-01"
interval_secs = 10
ship_every_secs = 3600

[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "file"
directory = "{}"

[state]
dir = "{}"
"#,
        powercap.display(),
        dir.join("out").display(),
        dir.join("state").display()
    )
}

fn start_engine(policy_path: &Path, cpu: &FedCpu, cache: &Path) -> (Engine, Arc<Shared>) {
    let policy = Policy::load(policy_path).unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.to_owned())).unwrap();
    let bound = wattson::policy::bind(&policy, &runtime).unwrap();
    let mut sources: Sources = sources(&policy, Plan::new(&bound).measurements());
    sources.cpu_times = Some(Box::new(cpu.clone()));
    let shared = Shared::new(100, None);
    let engine = Engine::new(policy, bound, sources, "cmp-01".into(), Arc::clone(&shared)).unwrap();
    (engine, shared)
}

/// The metric's value for `uuid` in a text-format scrape.
fn value_of(scrape: &str, metric: &str, uuid: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(&format!("{metric}{{uuid=\"{uuid}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn counters_follow_the_share_arithmetic_across_a_wrap_a_removal_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let devices = powercap_tree(&tmp.path().join("sys"));
    let (node, uri) = node_copy(tmp.path());
    let policy = tmp.path().join("daemon.toml");
    std::fs::write(
        &policy,
        daemon_policy(
            tmp.path(),
            &uri,
            &tmp.path().join("sys/class/powercap"),
            "none",
        ),
    )
    .unwrap();
    let cpu = FedCpu::default();
    // Zones by path under intel-rapl/, their energy now (µJ).
    let mut energy: BTreeMap<&str, u64> = ZONES.iter().map(|z| (z.0, z.2)).collect();
    let mut cpu_s: BTreeMap<&str, f64> = RUNNING.iter().map(|u| (*u, 100.0)).collect();
    let set = |energy: &BTreeMap<&str, u64>, cpu_s: &BTreeMap<&str, f64>| {
        for (rel, value) in energy {
            bump(&devices, rel, *value);
        }
        *cpu.0.lock().unwrap() = cpu_s.iter().map(|(u, s)| (u.to_string(), *s)).collect();
    };
    set(&energy, &cpu_s);
    let (mut engine, shared) = start_engine(&policy, &cpu, &cache);
    let t0 = 1_800_000_003_000_i64;
    engine.tick(t0).unwrap();

    // Expected joules per VM, by ENERGY.md: each interval's host energy
    // (package + dram zones, never core; C1w across the wrap) split by the
    // interval's CPU seconds (idle = "none").
    let mut expected: BTreeMap<&str, f64> = BTreeMap::new();
    let mut host_total = 0.0;
    let steps: [(u64, [f64; 4]); 4] = [
        (40_000_000, [3.0, 1.0, 0.5, 0.0]),
        (55_000_000, [2.0, 2.0, 2.0, 2.0]),
        (10_000_000, [0.0, 0.0, 0.0, 7.5]),
        (70_000_000, [1.25, 0.0, 4.0, 0.75]),
    ];
    for (k, (step_uj, cpu_step)) in steps.iter().enumerate() {
        let mut e_h = 0.0;
        for (rel, name, _, _) in ZONES {
            // Each zone advances by its own amount; package-1 wraps at the first step.
            let inc = step_uj / (1 + rel.len() as u64 % 3);
            let v = energy.get_mut(rel).unwrap();
            *v = (*v + inc) % RANGE;
            if name != "core" {
                e_h += inc as f64 / 1e6;
            }
        }
        let total_cpu: f64 = cpu_step.iter().sum();
        for (uuid, step) in RUNNING.iter().zip(cpu_step) {
            *cpu_s.get_mut(uuid).unwrap() += step;
            *expected.entry(uuid).or_default() += e_h * step / total_cpu;
        }
        host_total += e_h;
        set(&energy, &cpu_s);
        engine.tick(t0 + 10_000 * (k as i64 + 1)).unwrap();
    }
    for uuid in RUNNING {
        let got = engine.ledger().vm_joules[uuid];
        assert!(
            rel_err(got, expected[uuid]) < 1e-12,
            "{uuid}: {got} vs {}",
            expected[uuid]
        );
    }
    let attributed: f64 = engine.ledger().vm_joules.values().sum();
    assert!(rel_err(attributed + engine.ledger().unattributed_joules, host_total) < 1e-12);
    let meters: f64 = engine.ledger().meter_joules.values().sum();
    assert!(
        rel_err(meters, host_total) < 1e-12,
        "{meters} vs {host_total}"
    );

    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    let nova = RUNNING[0];
    let got = value_of(&scrape, "wattson_vm_energy_joules_total", nova).unwrap();
    assert!(rel_err(got, expected[nova]) < 1e-12, "{scrape}");
    assert!(scrape.contains("libvirtname=\"one-42\""), "{scrape}");
    // The last interval: 70 mJ-ish over 10 s, split by CPU.
    let watts = value_of(&scrape, "wattson_vm_power_watts", RUNNING[2]).unwrap();
    assert!(watts > 0.0);

    // A removed domain's series are gone at the next scrape; its counter is kept.
    remove_domain(&node, "one-42");
    let removed = RUNNING[2];
    cpu_s.remove(removed);
    set(&energy, &cpu_s);
    engine.tick(t0 + 50_000).unwrap();
    let scrape = render_metrics(&shared.snapshot(), MetricsFormat::Text, 0);
    assert!(!scrape.contains(removed), "{scrape}");
    assert!(!scrape.contains("one-42"), "{scrape}");

    // A restart keeps every counter, and the interval across it is measured.
    let before: BTreeMap<String, f64> = engine.ledger().vm_joules.clone();
    drop(engine);
    let inc = 20_000_000;
    let mut e_h = 0.0;
    for (rel, name, _, _) in ZONES {
        *energy.get_mut(rel).unwrap() += inc;
        if name != "core" {
            e_h += inc as f64 / 1e6;
        }
    }
    for uuid in [RUNNING[0], RUNNING[1], RUNNING[3]] {
        *cpu_s.get_mut(uuid).unwrap() += 1.0;
    }
    set(&energy, &cpu_s);
    let (mut engine, _) = start_engine(&policy, &cpu, &cache);
    engine.tick(t0 + 80_000).unwrap();
    for uuid in [RUNNING[0], RUNNING[1], RUNNING[3]] {
        let got = engine.ledger().vm_joules[uuid];
        let want = before[uuid] + e_h / 3.0;
        assert!(rel_err(got, want) < 1e-12, "{uuid}: {got} vs {want}");
    }
    assert_eq!(engine.ledger().vm_joules[removed], before[removed]);
}
