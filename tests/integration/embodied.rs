//! `[embodied]` on records from a real extract (ENERGY.md "Embodied
//! carbon"): each host's kg CO2e over its life, split among its VMs by
//! `(vcpus / V + memory / M) / 2` of its capacity for the seconds they were
//! there. The libvirt exporter's CPU time places the VMs (one migrates),
//! node_exporter's series give the capacity of hosts the policy leaves
//! without one; the expected grams are the formula applied here to the
//! generated samples.

use std::collections::HashMap;

use super::data::{HOUR, MIN, Rng, T0, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::wattson::{command, extract, extract_with, secs, write_policy};

/// The window extracted: the second hour.
pub(super) const W0: i64 = T0 + HOUR;
pub(super) const W1: i64 = T0 + 2 * HOUR;
pub(super) const SECONDS_PER_YEAR: f64 = 8760.0 * 3600.0;

/// One VM's CPU-time series on one host.
pub(super) struct Cpu {
    pub(super) uuid: &'static str,
    pub(super) host: &'static str,
    life: (i64, i64),
    pub(super) vcpus: u32,
    pub(super) memory_mib: u64,
}

pub(super) const VMS: [Cpu; 10] = [
    // ENERGY.md's example: a (all hour) and b (half of it) on cmp-01.
    Cpu {
        uuid: "a",
        host: "cmp-01",
        life: (T0, T0 + 3 * HOUR),
        vcpus: 8,
        memory_mib: 32_768,
    },
    Cpu {
        uuid: "b",
        host: "cmp-01",
        life: (W0 + 30 * MIN, T0 + 3 * HOUR),
        vcpus: 4,
        memory_mib: 8_192,
    },
    // Migrates from cmp-01 to cmp-03 (another figure and life) 20 minutes in.
    Cpu {
        uuid: "m",
        host: "cmp-01",
        life: (T0, W0 + 20 * MIN),
        vcpus: 8,
        memory_mib: 16_384,
    },
    Cpu {
        uuid: "m",
        host: "cmp-03",
        life: (W0 + 20 * MIN + 9_000, T0 + 3 * HOUR),
        vcpus: 8,
        memory_mib: 16_384,
    },
    // Two VMs the size of cmp-02 each: overcommitted two to one.
    Cpu {
        uuid: "o1",
        host: "cmp-02",
        life: (T0, T0 + 3 * HOUR),
        vcpus: 8,
        memory_mib: 16_384,
    },
    Cpu {
        uuid: "o2",
        host: "cmp-02",
        life: (T0, T0 + 3 * HOUR),
        vcpus: 8,
        memory_mib: 16_384,
    },
    // cmp-04's capacity is node_exporter's; cmp-05's is not known.
    Cpu {
        uuid: "n",
        host: "cmp-04",
        life: (T0, T0 + 3 * HOUR),
        vcpus: 4,
        memory_mib: 8_192,
    },
    Cpu {
        uuid: "u",
        host: "cmp-05",
        life: (T0, T0 + 3 * HOUR),
        vcpus: 4,
        memory_mib: 8_192,
    },
    // Stops two minutes before the window: completed in it with 0 J and
    // 0 g, so the project's sums stay known (ENERGY.md "Record status").
    Cpu {
        uuid: "s",
        host: "cmp-01",
        life: (T0, W0 - 2 * MIN),
        vcpus: 2,
        memory_mib: 4_096,
    },
    // No [embodied.hosts] glob matches edge-01.
    Cpu {
        uuid: "e",
        host: "edge-01",
        life: (T0, T0 + 3 * HOUR),
        vcpus: 2,
        memory_mib: 4_096,
    },
];

/// (kg CO2e, lifetime years, capacity (vCPUs, MiB)) per host, as the
/// policy below says; cmp-04's capacity is measured.
fn hosts() -> HashMap<&'static str, (f64, f64, (f64, f64))> {
    HashMap::from([
        ("cmp-01", (900.0, 4.0, (96.0, 262_144.0))),
        ("cmp-02", (900.0, 4.0, (8.0, 16_384.0))),
        ("cmp-03", (1500.0, 5.0, (64.0, 524_288.0))),
        ("cmp-04", (1200.0, 6.0, (32.0, 131_072.0))),
    ])
}

const POLICY: &str = r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"
[inventory]
meta_metric = ""
host_label = "instance"
host_regex = '^([^:.]+)'
[model]
plugin = "tdp-estimate"
[embodied]
lifetime_years = 6
[embodied.hosts."cmp-01"]
kg_co2e = 900
lifetime_years = 4
capacity = { vcpus = 96, memory_gb = 256 }
[embodied.hosts."cmp-02"]
kg_co2e = 900.0
lifetime_years = 4
capacity = { vcpus = 8, memory_gb = 16 }
[embodied.hosts."cmp-03"]
kg_co2e = 1500
lifetime_years = 5
capacity = { vcpus = 64, memory_gb = 512 }
[embodied.hosts."cmp-*"]
kg_co2e = 1200
"#;

/// Samples every 15 s over `life` (a per-series phase, ±0.4 s jitter),
/// each `value(t)`.
fn scraped(
    labels: &[(&str, &str)],
    seed: u64,
    life: (i64, i64),
    value: impl Fn(i64) -> f64,
) -> TestSeries {
    let mut rng = Rng::new(seed);
    let mut samples = Vec::new();
    let mut t = life.0 + (rng.next_f64() * 15_000.0) as i64;
    while t <= life.1 {
        let ts = t + ((rng.next_f64() - 0.5) * 800.0) as i64;
        samples.push((ts, value(ts)));
        t += 15_000;
    }
    TestSeries {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        samples,
    }
}

/// ENERGY.md's presence: the C1 span (base to last sample in the window),
/// at most the window.
pub(super) fn presence(samples: &[(i64, f64)]) -> f64 {
    let base = samples.iter().rfind(|(t, _)| *t <= W0).map(|s| s.0);
    let inside: Vec<i64> = samples
        .iter()
        .filter(|(t, _)| *t > W0 && *t <= W1)
        .map(|s| s.0)
        .collect();
    let (Some(first), Some(last)) = (base.or(inside.first().copied()), inside.last()) else {
        return 0.0;
    };
    let span = (*last - first) as f64 / 1000.0;
    span.min((W1 - W0) as f64 / 1000.0)
}

/// The libvirt exporter's and node_exporter's series of the test.
pub(super) fn prometheus() -> (Prometheus, Vec<TestSeries>) {
    let mut cpu = Vec::new();
    let mut vcpus = Vec::new();
    let mut memory = Vec::new();
    for (i, vm) in VMS.iter().enumerate() {
        let instance = format!("{}:9177", vm.host);
        // p2 holds the VMs that get no embodied_g.
        let project = if matches!(vm.uuid, "u" | "e") {
            "p2"
        } else {
            "p1"
        };
        let labels = [
            ("instance", instance.as_str()),
            ("project_id", project),
            ("uuid", vm.uuid),
        ];
        let start = vm.life.0;
        cpu.push(scraped(&labels, 10 + i as u64, vm.life, |t| {
            (t - start) as f64 / 2000.0
        }));
        vcpus.push(scraped(&labels, 30 + i as u64, vm.life, |_| {
            f64::from(vm.vcpus)
        }));
        memory.push(scraped(&labels, 50 + i as u64, vm.life, |_| {
            vm.memory_mib as f64 * 1_048_576.0
        }));
    }
    // cmp-04: 32 logical CPUs and 128 GiB, from node_exporter.
    let whole = (T0, T0 + 3 * HOUR);
    let cores: Vec<String> = (0..32).map(|c| c.to_string()).collect();
    let mut node_cpu: Vec<TestSeries> = cores
        .iter()
        .enumerate()
        .flat_map(|(c, cpu)| {
            ["idle", "user"]
                .into_iter()
                .enumerate()
                .map(move |(m, mode)| {
                    scraped(
                        &[
                            ("cpu", cpu.as_str()),
                            ("instance", "cmp-04:9100"),
                            ("mode", mode),
                        ],
                        1000 + 2 * c as u64 + m as u64,
                        whole,
                        |t| (t - T0) as f64 / 2000.0,
                    )
                })
        })
        .collect();
    // cmp-01 has node_exporter too: the policy's capacity wins.
    node_cpu.push(scraped(
        &[("cpu", "0"), ("instance", "cmp-01:9100"), ("mode", "idle")],
        2000,
        whole,
        |t| (t - T0) as f64 / 1000.0,
    ));
    let mem_total = vec![
        scraped(&[("instance", "cmp-04:9100")], 3000, whole, |_| {
            131_072.0 * 1_048_576.0
        }),
        scraped(&[("instance", "cmp-01:9100")], 3001, whole, |_| 1_048_576.0),
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            ("libvirt_domain_info_cpu_time_seconds", &cpu),
            ("node_cpu_seconds", &node_cpu),
        ],
        &[
            ("libvirt_domain_info_virtual_cpus", &vcpus),
            ("libvirt_domain_info_maximum_memory_bytes", &memory),
            ("node_memory_MemTotal_bytes", &mem_total),
        ],
    ));
    (prometheus, cpu)
}

#[test]
fn each_vm_gets_its_hosts_embodied_grams_for_its_share_and_time() {
    let (prometheus, cpu) = prometheus();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", POLICY);
    let out = extract(&policy, &prometheus.url, W0, W1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let records: HashMap<String, serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| (r["vm_uuid"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(records.len(), 9, "{records:?}");
    assert_eq!(records["s"]["status"], "completed", "{}", records["s"]);
    assert_eq!(records["s"]["energy_joules"], 0.0, "{}", records["s"]);

    // e_i = r_h × s_i × presence_i per placement, then Σ per VM; cmp-02's
    // VMs hold twice its capacity: scaled to r_h × |W| together.
    let hosts = hosts();
    let mut placed: Vec<(&str, &str, f64)> = Vec::new();
    for (vm, series) in VMS.iter().zip(&cpu) {
        let Some(&(kg, years, (v, m))) = hosts.get(vm.host) else {
            continue;
        };
        let rate = kg * 1000.0 / (years * SECONDS_PER_YEAR);
        let share = (f64::from(vm.vcpus) / v + vm.memory_mib as f64 / m) / 2.0;
        placed.push((vm.uuid, vm.host, rate * share * presence(&series.samples)));
    }
    let held_02: f64 = placed.iter().filter(|p| p.1 == "cmp-02").map(|p| p.2).sum();
    let whole_02 = 900_000.0 / (4.0 * SECONDS_PER_YEAR) * 3600.0;
    assert!(held_02 > whole_02 * 1.9, "{held_02} vs {whole_02}");
    let mut want: HashMap<&str, f64> = HashMap::new();
    for (uuid, host, e) in placed {
        let scale = if host == "cmp-02" {
            whole_02 / held_02
        } else {
            1.0
        };
        *want.entry(uuid).or_default() += e * scale;
    }
    for (uuid, grams) in &want {
        let record = &records[*uuid];
        let got = record["embodied_g"]
            .as_f64()
            .unwrap_or_else(|| panic!("{uuid}: no embodied_g in {record}"));
        assert!(rel_err(got, *grams) < 1e-9, "{uuid}: {got} vs {grams}");
        assert_eq!(record["embodied_source"], "static", "{record}");
    }
    // The worked example's VM a, present all hour: 2.675513699 g.
    assert!((want["a"] - 2.675_513_699).abs() < 1e-9, "{}", want["a"]);
    // b was there half the hour; m paid cmp-01's rate, then cmp-03's.
    let b_presence = presence(&cpu[1].samples);
    assert!((1700.0..1810.0).contains(&b_presence), "{b_presence}");
    assert!(want.contains_key("m") && want.contains_key("n"));
    // The overcommitted VMs: half the host's hour each.
    assert!(rel_err(want["o1"] + want["o2"], whole_02) < 1e-12);
    assert!(
        stderr.contains("overcommit") && stderr.contains("cmp-02"),
        "{stderr}"
    );

    // No figure or no capacity: no embodied_g (never 0), one warning each.
    for uuid in ["u", "e"] {
        let record = &records[uuid];
        assert!(
            record.get("embodied_g").is_none() && record.get("embodied_source").is_none(),
            "{record}"
        );
    }
    assert!(
        stderr.contains("match no [embodied.hosts] glob") && stderr.contains("edge-01"),
        "{stderr}"
    );
    assert!(
        stderr.contains("capacity is not known") && stderr.contains("cmp-05"),
        "{stderr}"
    );

    // Two windows in one run: the lacking hosts are warned of once.
    let out = extract_with(
        &policy,
        &prometheus.url,
        W0,
        T0 + 3 * HOUR,
        &["window.max_window_secs=3600"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("match no [embodied.hosts] glob").count(),
        1,
        "{stderr}"
    );

    // The report: p1's embodied grams and its total (operational +
    // embodied); p2's records lack embodied_g, so both are blank, not 0.
    let out = command()
        .args(["report", "--format", "json", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(W0), "--to", &secs(W1)])
        .args(["--set", "carbon.intensity_g_per_kwh=100"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let project = |id: &str| {
        report["tenant_usages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["tenant_id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {report}"))
            .clone()
    };
    let p1 = project("p1");
    let embodied: f64 = want.values().sum();
    let got = p1["total_embodied_g"].as_f64().unwrap();
    assert!(rel_err(got, embodied) < 1e-9, "{got} vs {embodied}");
    let operational = p1["total_carbon_g"].as_f64().unwrap();
    let total = p1["total_g"].as_f64().unwrap();
    assert!(rel_err(total, operational + embodied) < 1e-9, "{p1}");
    let p2 = project("p2");
    assert!(
        p2["total_embodied_g"].is_null() && p2["total_g"].is_null(),
        "{p2}"
    );
    assert!(p2["total_carbon_g"].is_number(), "{p2}");
    assert!(report["total_embodied_g"].is_null(), "{report}");
}

fn check(embodied: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(
        dir.path(),
        "site.toml",
        &format!(
            "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[model]\nplugin = \"libvirt-joules\"\n\n{embodied}"
        ),
    );
    let out = command()
        .args(["policy", "check"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_check_names_the_file_and_key_of_bad_embodied_settings() {
    let (code, stderr) = check(
        "[embodied]\nlifetime_years = 4\n[embodied.hosts.\"cmp-*\"]\nkg_co2e = 1500\ncapacity = { vcpus = 96, memory_gb = 384 }\n",
    );
    assert_eq!(code, 0, "{stderr}");

    let (code, stderr) = check("[embodied.hosts.\"cmp-*\"]\nkg_co2e = -5\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("site.toml:9:11")
            && stderr.contains("key `embodied.hosts.\"cmp-*\".kg_co2e`")
            && stderr.contains("0 or more"),
        "{stderr}"
    );

    let (code, stderr) = check("[embodied]\nlifetime_years = 0\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("site.toml:9:18")
            && stderr.contains("key `embodied.lifetime_years`")
            && stderr.contains("more than 0"),
        "{stderr}"
    );

    let (code, stderr) = check("[embodied.hosts.\"cmp-*\"]\nkg_co2e = 1\nlifetime = 5\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("site.toml:10:1")
            && stderr.contains("unknown field `lifetime`")
            && stderr.contains("embodied.hosts"),
        "{stderr}"
    );

    // A BoaviztAPI entry is checked without asking it (nothing listens on port 9).
    let (code, stderr) = check(
        "[embodied.hosts.\"gpu-*\"]\nboavizta = { url = \"http://127.0.0.1:9\", archetype = \"platfom_gpucompute_medium\" }\n",
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = check(
        "[embodied.hosts.\"gpu-*\"]\nkg_co2e = 1\nboavizta = { url = \"127.0.0.1:5000\", config = { cpu = {} } }\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("key `embodied.hosts.\"gpu-*\".boavizta`")
            && stderr.contains("kg_co2e or by boavizta, not both"),
        "{stderr}"
    );
    let (code, stderr) = check(
        "[embodied.hosts.\"gpu-*\"]\nboavizta = { url = \"127.0.0.1:5000\", config = { cpu = {} } }\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("key `embodied.hosts.\"gpu-*\".boavizta.url`")
            && stderr.contains("key `embodied.hosts.\"gpu-*\".boavizta.config`")
            && stderr.contains("has cpu"),
        "{stderr}"
    );

    let (code, stderr) = check("[embodied.hosts.\"cmp-*\"]\nlifetime_years = 5\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("key `embodied.hosts.\"cmp-*\"`") && stderr.contains("add kg_co2e"),
        "{stderr}"
    );
}
