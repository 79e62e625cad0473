//! The builtin models end to end: `wattson extract` against a real
//! Prometheus backfilled with node_exporter's RAPL counters (two sockets, a
//! wrap, a dram gap), ipmi_exporter's power (a gap longer than 300 s) and the
//! libvirt exporter's CPU time (a VM that starts, one that stops, one that
//! migrates between hosts, a zero-CPU VM, a host with no VMs). The expected
//! joules are ENERGY.md's definitions applied to the generated samples here;
//! Kepler, tdp-estimate and Scaphandre on data of their own.

use std::collections::HashMap;

use super::data::{HOUR, MIN, Rng, T0, c1, g1, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::support::ok;
use super::wattson::{command, extract, secs, write_policy};

/// The window every test extracts: the second hour.
const W0: i64 = T0 + HOUR;
const W1: i64 = T0 + 2 * HOUR;
/// RAPL wrap ranges (µJ), as `max_energy_range_uj` says.
const PACKAGE_RANGE_UJ: u64 = 262_143_328_850;
const DRAM_RANGE_UJ: u64 = 65_712_999_613;

/// A counter scraped every 15 s (per-series phase, ±0.4 s jitter) from
/// `from` to `to`, growing by `rate` per second (±10 % noise), wrapping at
/// `range`, with no samples in `gap`.
fn counter(
    labels: &[(&str, String)],
    seed: u64,
    (from, to): (i64, i64),
    initial: f64,
    rate: f64,
    range: f64,
    gap: (i64, i64),
) -> TestSeries {
    let mut rng = Rng::new(seed);
    let mut value = initial;
    let mut samples = Vec::new();
    let mut last: Option<i64> = None;
    let mut t = from + (rng.next_f64() * 15_000.0) as i64;
    while t <= to {
        let ts = t + ((rng.next_f64() - 0.5) * 800.0) as i64;
        if !(gap.0..gap.1).contains(&ts) {
            if let Some(prev) = last {
                let dt = (ts - prev) as f64 / 1000.0;
                value = (value + dt * rate * (0.9 + 0.2 * rng.next_f64())) % range;
            }
            // Exporters print µJ / ns resolution.
            samples.push((ts, (value * 1e6).round() / 1e6));
            last = Some(ts);
        }
        t += 15_000;
    }
    TestSeries {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        samples,
    }
}

/// C1 (C1w with `range`) of ENERGY.md with its span over the test window:
/// (increase, span s).
fn c1_span(samples: &[(i64, f64)], range: Option<f64>) -> Option<(f64, f64)> {
    c1_span_in(samples, range, W0, W1)
}

/// [`c1_span`] over `[start, end]`.
fn c1_span_in(
    samples: &[(i64, f64)],
    range: Option<f64>,
    start: i64,
    end: i64,
) -> Option<(f64, f64)> {
    let base = samples.iter().rfind(|(t, _)| *t <= start).copied();
    let used: Vec<(i64, f64)> = base
        .into_iter()
        .chain(
            samples
                .iter()
                .filter(|(t, _)| *t > start && *t <= end)
                .copied(),
        )
        .collect();
    if used.len() < 2 && base.is_some() || used.is_empty() {
        return None;
    }
    let increase = used
        .windows(2)
        .map(|p| match (p[1].1 >= p[0].1, range) {
            (true, _) => p[1].1 - p[0].1,
            // A drop across more than the 300 s gap limit may be a reboot: a reset.
            (false, Some(r)) if p[1].0 - p[0].0 <= 300_000 => p[1].1 + r - p[0].1,
            (false, _) => p[1].1,
        })
        .sum();
    let span = (used[used.len() - 1].0 - used[0].0) as f64 / 1000.0;
    Some((increase, span))
}

/// One VM's CPU-time series on one host.
struct Cpu {
    uuid: &'static str,
    host: &'static str,
    life: (i64, i64),
    initial: f64,
    rate: f64,
    vcpus: u32,
}

const VMS: [Cpu; 6] = [
    // Runs throughout on cmp-01.
    Cpu {
        uuid: "00000000-0000-4000-8000-000000000001",
        host: "cmp-01",
        life: (T0, T0 + 3 * HOUR),
        initial: 5_000.0,
        rate: 1.5,
        vcpus: 4,
    },
    // Starts 20 minutes into the window.
    Cpu {
        uuid: "00000000-0000-4000-8000-000000000002",
        host: "cmp-01",
        life: (W0 + 20 * MIN, T0 + 3 * HOUR),
        initial: 0.0,
        rate: 0.5,
        vcpus: 2,
    },
    // Stops 40 minutes into the window.
    Cpu {
        uuid: "00000000-0000-4000-8000-000000000003",
        host: "cmp-02",
        life: (T0, W0 + 40 * MIN),
        initial: 70_000.0,
        rate: 2.0,
        vcpus: 8,
    },
    // Live-migrates from cmp-01 to cmp-02 half way (its counter restarts there).
    Cpu {
        uuid: "00000000-0000-4000-8000-000000000004",
        host: "cmp-01",
        life: (T0, W0 + 30 * MIN),
        initial: 900.0,
        rate: 1.0,
        vcpus: 2,
    },
    Cpu {
        uuid: "00000000-0000-4000-8000-000000000004",
        host: "cmp-02",
        life: (W0 + 30 * MIN + 12_000, T0 + 3 * HOUR),
        initial: 0.0,
        rate: 1.0,
        vcpus: 2,
    },
    // Uses no CPU at all.
    Cpu {
        uuid: "00000000-0000-4000-8000-000000000005",
        host: "cmp-02",
        life: (T0, T0 + 3 * HOUR),
        initial: 123.4,
        rate: 0.0,
        vcpus: 1,
    },
];

/// The CPU-time and vCPU series of [`VMS`].
fn cpu_series() -> (Vec<TestSeries>, Vec<TestSeries>) {
    let mut cpu = Vec::new();
    let mut vcpus = Vec::new();
    for (i, vm) in VMS.iter().enumerate() {
        let labels = [
            ("instance", format!("{}:9177", vm.host)),
            ("project_id", "p-physics".to_owned()),
            ("uuid", vm.uuid.to_owned()),
        ];
        cpu.push(counter(
            &labels,
            100 + i as u64,
            vm.life,
            vm.initial,
            vm.rate,
            f64::INFINITY,
            (0, 0),
        ));
        let mut size = counter(&labels, 200 + i as u64, vm.life, 0.0, 0.0, 1.0, (0, 0));
        size.samples
            .iter_mut()
            .for_each(|s| s.1 = f64::from(vm.vcpus));
        vcpus.push(size);
    }
    (cpu, vcpus)
}

/// Each placement of ENERGY.md: (uuid, host, cpu s, presence s, vcpus);
/// presence is the CPU-time series' C1 span, clipped to the window's length.
fn placements(cpu: &[TestSeries]) -> Vec<(&'static str, &'static str, f64, f64, f64)> {
    VMS.iter()
        .zip(cpu)
        .filter_map(|(vm, s)| {
            let (cpu_s, span) = c1_span(&s.samples, None)?;
            let presence = span.min((W1 - W0) as f64 / 1000.0);
            Some((vm.uuid, vm.host, cpu_s, presence, f64::from(vm.vcpus)))
        })
        .collect()
}

/// ENERGY.md's share with `idle = "vcpus"`: per VM, Σ over its placements of
/// D_h × cpu / C_h + I_h × vcpus·presence / Σ vcpus·presence.
fn vcpu_shares(
    placements: &[(&'static str, &'static str, f64, f64, f64)],
    hosts: &HashMap<&str, (f64, f64)>,
) -> HashMap<String, f64> {
    let mut want: HashMap<String, f64> = HashMap::new();
    for (uuid, host, cpu, presence, vcpus) in placements {
        let (e_h, i_h) = hosts[host];
        let on_host = placements.iter().filter(|p| p.1 == *host);
        let c_h: f64 = on_host.clone().map(|p| p.2).sum();
        let w_h: f64 = on_host.map(|p| p.3 * p.4).sum();
        *want.entry((*uuid).to_owned()).or_default() +=
            (e_h - i_h) * cpu / c_h + i_h * vcpus * presence / w_h;
    }
    want
}

fn policy(model: &str, extra: &str) -> String {
    format!(
        r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"
[inventory]
project_label = "project_id"
meta_metric = ""
memory_metric = ""
host_label = "instance"
host_regex = '^([^:.]+)'
{extra}
[model]
plugin = "{model}"
[[outputs]]
format = "jsonl"
"#
    )
}

/// `wattson extract --dry-run` of the test window with `--host-summary`
/// beside the policy: the run, and the summary's lines.
fn extract_with_summary(
    policy: &std::path::Path,
    url: &str,
) -> (std::process::Output, Vec<serde_json::Value>) {
    let summary = policy.with_file_name("hosts.jsonl");
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(policy)
        .args(["--prometheus", url])
        .args(["--from", &secs(W0), "--to", &secs(W1)])
        .arg("--host-summary")
        .arg(&summary)
        .output()
        .unwrap();
    let lines = std::fs::read_to_string(&summary)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

/// Parses jsonl records into {uuid: record}, asserting the run succeeded.
fn records(out: &std::process::Output) -> HashMap<String, serde_json::Value> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wattson failed: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (r["vm_uuid"].as_str().unwrap().to_owned(), r)
        })
        .collect()
}

fn assert_joules(records: &HashMap<String, serde_json::Value>, want: &HashMap<String, f64>) {
    let mut got: Vec<&String> = records.keys().collect();
    let mut expected: Vec<&String> = want.keys().collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "one record per VM present in the window");
    for (uuid, joules) in want {
        let energy = records[uuid]["energy_joules"].as_f64().unwrap();
        assert!(
            rel_err(energy, *joules) < 1e-9,
            "{uuid}: {energy} J, ENERGY.md says {joules} J"
        );
    }
}

/// node_exporter's RAPL counters of cmp-01..03: per host package-0,
/// package-1, dram-0, dram-1. cmp-01's package-1 starts 63 minutes of energy
/// short of its range, so it wraps early in the window; cmp-02's dram-0 has a
/// 4-minute scrape gap.
fn rapl_series() -> (Vec<TestSeries>, Vec<TestSeries>) {
    let package_range = PACKAGE_RANGE_UJ as f64 / 1e6;
    let dram_range = DRAM_RANGE_UJ as f64 / 1e6;
    let mut package = Vec::new();
    let mut dram = Vec::new();
    for (h, host) in ["cmp-01", "cmp-02", "cmp-03"].into_iter().enumerate() {
        let seed = 10 * h as u64;
        for socket in 0..2u64 {
            let labels = |path: String| {
                [
                    ("index", socket.to_string()),
                    ("instance", format!("{host}:9100")),
                    ("path", format!("/sys/class/powercap/{path}")),
                ]
            };
            let wraps = host == "cmp-01" && socket == 1;
            let initial = if wraps {
                package_range - 80.0 * (63.0 * 60.0)
            } else {
                1_000.0 * (socket + 1) as f64
            };
            package.push(counter(
                &labels(format!("intel-rapl:{socket}")),
                seed + socket,
                (T0, T0 + 3 * HOUR),
                initial,
                80.0 + 20.0 * socket as f64,
                package_range,
                (0, 0),
            ));
            let gap = if host == "cmp-02" && socket == 0 {
                (W0 + 10 * MIN, W0 + 14 * MIN)
            } else {
                (0, 0)
            };
            dram.push(counter(
                &labels(format!("intel-rapl:{socket}:0")),
                seed + 5 + socket,
                (T0, T0 + 3 * HOUR),
                50.0,
                6.0,
                dram_range,
                gap,
            ));
        }
    }
    (package, dram)
}

/// Per host of [`rapl_series`]: E_h = C1w of its four zones, and I_h =
/// P_idle x the zones' span (the longest), P_idle = `idle_watts(host)`.
fn rapl_hosts(
    package: &[TestSeries],
    dram: &[TestSeries],
    idle_watts: impl Fn(&str) -> f64,
) -> HashMap<&'static str, (f64, f64)> {
    let package_range = PACKAGE_RANGE_UJ as f64 / 1e6;
    let dram_range = DRAM_RANGE_UJ as f64 / 1e6;
    let mut hosts = HashMap::new();
    for (h, host) in ["cmp-01", "cmp-02", "cmp-03"].into_iter().enumerate() {
        let zones = [
            (&package[2 * h], package_range),
            (&package[2 * h + 1], package_range),
            (&dram[2 * h], dram_range),
            (&dram[2 * h + 1], dram_range),
        ];
        let measured: Vec<(f64, f64)> = zones
            .iter()
            .map(|(s, r)| c1_span(&s.samples, Some(*r)).unwrap())
            .collect();
        let e_h: f64 = measured.iter().map(|m| m.0).sum();
        let span = measured.iter().map(|m| m.1).fold(0.0, f64::max);
        let watts = idle_watts(host);
        assert!(watts * span < e_h, "idle below the host's energy");
        hosts.insert(host, (e_h, watts * span));
    }
    hosts
}

#[test]
fn rapl_share_splits_package_and_dram_by_cpu_time() {
    let (cpu, vcpus) = cpu_series();
    let (package, dram) = rapl_series();
    let wrapped = package[1]
        .samples
        .windows(2)
        .filter(|p| p[1].1 < p[0].1 && (W0..W1).contains(&p[1].0))
        .count();
    assert_eq!(wrapped, 1, "cmp-01's package-1 wraps once in the window");

    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            ("node_rapl_package_joules", &package),
            ("node_rapl_dram_joules", &dram),
            ("libvirt_domain_info_cpu_time_seconds", &cpu),
        ],
        &[("libvirt_domain_info_virtual_cpus", &vcpus)],
    ));

    let hosts = rapl_hosts(
        &package,
        &dram,
        |host| if host == "cmp-02" { 30.0 } else { 55.0 },
    );
    let want = vcpu_shares(&placements(&cpu), &hosts);

    let dir = tempfile::tempdir().unwrap();
    let text = policy(
        "rapl-share",
        &format!(
            "[rapl]\nmax_energy_range_uj = {{ package = {PACKAGE_RANGE_UJ}, dram = {DRAM_RANGE_UJ} }}\n\
             [idle_power]\n\"cmp-02\" = 30.0\n",
        ),
    ) + "[model.params]\nidle = \"vcpus\"\nidle_power = 55\n";
    let path = write_policy(dir.path(), "rapl-share.toml", &text);
    let (out, summaries) = extract_with_summary(&path, &prometheus.url);
    let records = records(&out);
    assert_joules(&records, &want);

    // One summary line per host with a meter, cmp-03 (no VMs) included.
    let lines: HashMap<String, serde_json::Value> = summaries
        .into_iter()
        .map(|v| (v["host"].as_str().unwrap().to_owned(), v))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (host, vms) in [("cmp-01", 3), ("cmp-02", 3), ("cmp-03", 0)] {
        let line = &lines[host];
        let (e_h, i_h) = hosts[host];
        let field = |k: &str| line[k].as_f64().unwrap();
        assert!(rel_err(field("energy_joules"), e_h) < 1e-12, "{line}");
        assert_eq!(line["vms"], vms, "{line}");
        assert_eq!(line["model"], "rapl-share");
        assert_eq!(line["window_start"], "2025-06-01T01:00:00.000Z");
        assert!(field("conservation_rel_err") < 1e-9, "{line}");
        if vms > 0 {
            assert!(rel_err(field("idle_joules"), i_h) < 1e-12, "{line}");
            assert!(rel_err(field("attributed_joules"), e_h) < 1e-9, "{line}");
            assert!(field("unattributed_joules") < 1e-6 * e_h, "{line}");
        } else {
            assert_eq!(field("attributed_joules"), 0.0);
            assert!(rel_err(line["reasons"]["no-vms"].as_f64().unwrap(), e_h) < 1e-12);
        }
    }

    // Status from the CPU-time series, quality from the meters.
    let status = |i: usize| records[VMS[i].uuid]["status"].as_str().unwrap().to_owned();
    assert_eq!(
        [status(0), status(1), status(2), status(3), status(5)],
        ["running", "started", "completed", "running", "running"]
    );
    assert_eq!(records[VMS[0].uuid]["quality"], "measured");
    let meters = records[VMS[0].uuid]["meters"].to_string();
    assert!(
        meters.contains("rapl:package") && meters.contains("rapl:dram"),
        "{meters}"
    );
    // The migrated VM's wall time is the union of its two placements.
    let migrated: f64 = placements(&cpu)
        .iter()
        .filter(|p| p.0 == VMS[3].uuid)
        .map(|p| p.3)
        .sum();
    let wall = records[VMS[3].uuid]["wall_s"].as_f64().unwrap();
    assert!((wall - migrated).abs() < 1e-9, "{wall} != {migrated}");
}

/// cmp-03's RAPL counters (package-0 and dram-0) stop at `down` and count
/// again from 0 at `up`, as after a reboot; `seeds` make the new samples.
fn reboot_cmp_03(
    package: &mut [TestSeries],
    dram: &mut [TestSeries],
    (down, up): (i64, i64),
    seeds: (u64, u64),
) {
    for (series, seed, rate) in [
        (&mut package[4], seeds.0, 80.0),
        (&mut dram[4], seeds.1, 6.0),
    ] {
        series.samples.retain(|(t, _)| *t < down);
        let after = counter(&[], seed, (up, T0 + 3 * HOUR), 0.0, rate, 1e12, (0, 0));
        series.samples.extend(after.samples);
    }
}

/// rapl-share with both zones' ranges and `idle = "none"`, extracted over the
/// test window with a host summary: its stderr (the run must succeed) and
/// the summary's lines.
fn rapl_share_without_idle(url: &str) -> (String, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let text = policy(
        "rapl-share",
        &format!(
            "[rapl]\nmax_energy_range_uj = {{ package = {PACKAGE_RANGE_UJ}, dram = {DRAM_RANGE_UJ} }}\n"
        ),
    ) + "[model.params]\nidle = \"none\"\n";
    let path = write_policy(dir.path(), "rapl-share.toml", &text);
    let (out, summaries) = extract_with_summary(&path, url);
    (ok(&out), summaries)
}

/// cmp-03 reboots 20 minutes into the window: node_exporter is not scraped
/// for 7 minutes, and its RAPL counters count again from 0. The drop is a
/// reset (the new value counts), not a wrap (which would add most of a
/// 262 kJ range that never happened).
#[test]
fn a_rapl_counter_set_back_across_a_scrape_gap_is_a_reset_not_a_wrap() {
    let (cpu, vcpus) = cpu_series();
    let (mut package, mut dram) = rapl_series();
    let (down, up) = (W0 + 20 * MIN, W0 + 27 * MIN);
    reboot_cmp_03(&mut package, &mut dram, (down, up), (91, 92));
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            ("node_rapl_package_joules", &package),
            ("node_rapl_dram_joules", &dram),
            ("libvirt_domain_info_cpu_time_seconds", &cpu),
        ],
        &[("libvirt_domain_info_virtual_cpus", &vcpus)],
    ));
    let hosts = rapl_hosts(&package, &dram, |_| 0.0);
    let (e_h, _) = hosts["cmp-03"];
    assert!(
        e_h < 4.0 * 200.0 * 3600.0,
        "the test's own C1 has no phantom energy: {e_h} J"
    );

    let (_, summaries) = rapl_share_without_idle(&prometheus.url);
    let line = summaries
        .iter()
        .find(|l| l["host"] == "cmp-03")
        .unwrap_or_else(|| panic!("no summary line for cmp-03: {summaries:?}"));
    let got = line["energy_joules"].as_f64().unwrap();
    assert!(
        rel_err(got, e_h) < 1e-12,
        "cmp-03: {got} J, ENERGY.md says {e_h} J (a phantom wrap adds {} J)",
        got - e_h
    );
    // The hosts without a reboot are as before.
    let got = summaries.iter().find(|l| l["host"] == "cmp-01").unwrap()["energy_joules"]
        .as_f64()
        .unwrap();
    assert!(rel_err(got, hosts["cmp-01"].0) < 1e-12);
}

/// cmp-03 reboots fast, 20 minutes into the window: a 2-minute scrape gap,
/// within the gap limit, but node_exporter's `node_boot_time_seconds`
/// changes across it. The drop of its RAPL counters is a reset, not a wrap.
#[test]
fn a_rapl_drop_where_the_boot_time_changes_is_a_reset_not_a_wrap() {
    let (cpu, vcpus) = cpu_series();
    let (mut package, mut dram) = rapl_series();
    let (down, up) = (W0 + 20 * MIN, W0 + 22 * MIN);
    reboot_cmp_03(&mut package, &mut dram, (down, up), (93, 94));
    let boot_times: Vec<TestSeries> = ["cmp-01", "cmp-02", "cmp-03"]
        .iter()
        .map(|host| TestSeries {
            labels: vec![("instance".into(), format!("{host}:9100"))],
            samples: (0..3 * 240)
                .map(|k| T0 + 7_000 + k * 15_000)
                .filter(|t| *host != "cmp-03" || !(down..up).contains(t))
                .map(|t| {
                    let rebooted = *host == "cmp-03" && t >= up;
                    (
                        t,
                        if rebooted {
                            1_748_744_460.0
                        } else {
                            1_748_500_000.0
                        },
                    )
                })
                .collect(),
        })
        .collect();
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            ("node_rapl_package_joules", &package),
            ("node_rapl_dram_joules", &dram),
            ("libvirt_domain_info_cpu_time_seconds", &cpu),
        ],
        &[
            ("libvirt_domain_info_virtual_cpus", &vcpus),
            ("node_boot_time_seconds", &boot_times),
        ],
    ));
    // The rule: C1w, except that the drop across the reboot (the pair of
    // samples the boot time changed between) is a reset.
    let across_reboot = |samples: &[(i64, f64)], range: f64| {
        let used: Vec<(i64, f64)> = samples
            .iter()
            .rfind(|(t, _)| *t <= W0)
            .into_iter()
            .chain(samples.iter().filter(|(t, _)| *t > W0 && *t <= W1))
            .copied()
            .collect();
        used.windows(2)
            .map(
                |p| match (p[1].1 >= p[0].1, p[0].0 < down && p[1].0 >= up) {
                    (true, _) => p[1].1 - p[0].1,
                    (false, true) => p[1].1,
                    (false, false) => p[1].1 + range - p[0].1,
                },
            )
            .sum::<f64>()
    };
    let package_range = PACKAGE_RANGE_UJ as f64 / 1e6;
    let dram_range = DRAM_RANGE_UJ as f64 / 1e6;
    let zones = [
        (&package[4], package_range),
        (&package[5], package_range),
        (&dram[4], dram_range),
        (&dram[5], dram_range),
    ];
    let e_h: f64 = zones
        .iter()
        .map(|(z, r)| across_reboot(&z.samples, *r))
        .sum();
    let as_wraps: f64 = zones
        .iter()
        .map(|(z, r)| c1_span(&z.samples, Some(*r)).unwrap().0)
        .sum();
    assert!(as_wraps > e_h + 60_000.0, "{as_wraps} vs {e_h}");

    let (stderr, summaries) = rapl_share_without_idle(&prometheus.url);
    assert!(stderr.contains("rebooted"), "{stderr}");
    let energy = |host: &str| {
        summaries.iter().find(|l| l["host"] == host).unwrap()["energy_joules"]
            .as_f64()
            .unwrap()
    };
    let got = energy("cmp-03");
    assert!(
        rel_err(got, e_h) < 1e-12,
        "cmp-03: {got} J, ENERGY.md says {e_h} J (a phantom wrap adds {} J)",
        got - e_h
    );
    // cmp-01's package-1 still wraps, and is read as one.
    let hosts = rapl_hosts(&package, &dram, |_| 0.0);
    assert!(rel_err(energy("cmp-01"), hosts["cmp-01"].0) < 1e-12);
}

/// ipmi_exporter's wall power of cmp-01..03 every 15 s (per-host phase,
/// ±0.4 s jitter): idle around 150 W, with busy stretches around 260 W;
/// cmp-02's BMC is not scraped in `gap`.
fn bmc_power(gap: (i64, i64)) -> Vec<TestSeries> {
    ["cmp-01", "cmp-02", "cmp-03"]
        .into_iter()
        .enumerate()
        .map(|(h, host)| {
            let mut rng = Rng::new(300 + h as u64);
            let mut samples = Vec::new();
            let mut t = T0 + (rng.next_f64() * 15_000.0) as i64;
            while t <= T0 + 3 * HOUR {
                let ts = t + ((rng.next_f64() - 0.5) * 800.0) as i64;
                if !(host == "cmp-02" && (gap.0..gap.1).contains(&ts)) {
                    let busy = ((ts - T0) / (7 * MIN)) % 3 != 0;
                    let watts = if busy { 260.0 } else { 150.0 };
                    samples.push((ts, watts + 10.0 * rng.next_f64()));
                }
                t += 15_000;
            }
            TestSeries {
                labels: vec![("instance".into(), format!("{host}.bmc:9290"))],
                samples,
            }
        })
        .collect()
}

#[test]
fn ipmi_share_splits_wall_power_and_reports_the_bmc_gap() {
    let (cpu, vcpus) = cpu_series();
    // cmp-02's BMC is not scraped for 8 minutes.
    let power = bmc_power((W0 + 25 * MIN, W0 + 33 * MIN));

    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[("libvirt_domain_info_cpu_time_seconds", &cpu)],
        &[
            ("libvirt_domain_info_virtual_cpus", &vcpus),
            ("ipmi_dcmi_power_consumption_watts", &power),
        ],
    ));

    // E_h = G1 over W; P_idle = the least average of the whole minutes G1
    // covers entirely; I_h = P_idle x G1's covered seconds.
    let mut hosts = HashMap::new();
    let mut covered = HashMap::new();
    for (h, host) in ["cmp-01", "cmp-02", "cmp-03"].into_iter().enumerate() {
        let (e_h, covered_s) = g1(&power[h].samples, W0, W1);
        let idle_w = (0..60)
            .filter_map(|k| {
                let (joules, c) = g1(&power[h].samples, W0 + k * MIN, W0 + (k + 1) * MIN);
                (c == 60.0).then_some(joules / 60.0)
            })
            .fold(f64::INFINITY, f64::min);
        hosts.insert(host, (e_h, idle_w * covered_s));
        covered.insert(host, covered_s);
    }
    assert!(
        covered["cmp-02"] < 3600.0 - 7.0 * 60.0,
        "the BMC gap is not bridged"
    );
    let want = vcpu_shares(&placements(&cpu), &hosts);

    let dir = tempfile::tempdir().unwrap();
    let text = policy("ipmi-share", "") + "[model.params]\nidle = \"vcpus\"\n";
    let path = write_policy(dir.path(), "ipmi-share.toml", &text);
    let records = records(&extract(&path, &prometheus.url, W0, W1));
    assert_joules(&records, &want);

    // The uncovered time is in the records of cmp-02's VMs, never filled.
    let covered_s = |i: usize| records[VMS[i].uuid]["covered_s"].as_f64();
    assert_eq!(covered_s(0), Some(covered["cmp-01"]));
    assert_eq!(covered_s(5), Some(covered["cmp-02"]));
    // The span-keeping C1 above agrees with the shared helper.
    assert_eq!(
        c1(&cpu[0].samples, W0, W1),
        c1_span(&cpu[0].samples, None).map(|c| c.0)
    );
}

/// A BMC gap longer than the gap limit across whole one-minute windows
/// (`docs/ENERGY.md#gauges`): a window in which cmp-02's meter covered no
/// time has no reading of it, wherever the samples around the gap fall, so
/// no host-summary line and no record for its VMs (never one of 0 J); a
/// window it partly covered has a reading whose covered seconds say how
/// much. Per window, ipmi-share with `idle = "vcpus"` and a static idle
/// power, computed here from the samples by ENERGY.md's rules.
#[test]
fn a_bmc_gap_across_whole_windows_gives_no_reading_and_no_record() {
    const IDLE_W: f64 = 140.0;
    let (cpu, vcpus) = cpu_series();
    // 8 minutes without a scrape, across VM 4's migration to cmp-02, off
    // the minutes.
    let power = bmc_power((W0 + 25 * MIN + 20_000, W0 + 33 * MIN + 10_000));
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[("libvirt_domain_info_cpu_time_seconds", &cpu)],
        &[
            ("libvirt_domain_info_virtual_cpus", &vcpus),
            ("ipmi_dcmi_power_consumption_watts", &power),
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let text = policy("ipmi-share", "")
        + &format!("[model.params]\nidle = \"vcpus\"\nidle_power = {IDLE_W}\n");
    let path = write_policy(dir.path(), "ipmi-share.toml", &text);
    let summary = dir.path().join("hosts.jsonl");
    let (from, to) = (W0 + 20 * MIN, W0 + 40 * MIN);
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&path)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(from), "--to", &secs(to)])
        .args(["--set", "window.step_secs=60"])
        .args(["--set", "window.max_window_secs=60"])
        .arg("--host-summary")
        .arg(&summary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wattson failed: {stderr}");
    let ms = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    // Records by (window start, uuid); summary lines by (window start, host).
    let mut records: HashMap<(i64, String), serde_json::Value> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (ms(&r["start"]), r["vm_uuid"].as_str().unwrap().to_owned());
        assert!(
            records.insert(key, r).is_none(),
            "one record per VM and window"
        );
    }
    let mut lines: HashMap<(i64, String), serde_json::Value> = HashMap::new();
    for line in std::fs::read_to_string(&summary).unwrap().lines() {
        let l: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            ms(&l["window_start"]),
            l["host"].as_str().unwrap().to_owned(),
        );
        assert!(
            lines.insert(key, l).is_none(),
            "one line per host and window"
        );
    }

    let (mut want_records, mut want_lines) = (0, 0);
    let (mut uncovered, mut partial) = (0, 0);
    for start in (from..to).step_by(MIN as usize) {
        let end = start + MIN;
        // G1 of each host's meter; a host with no covered time has no reading.
        let mut hosts: HashMap<&str, (f64, f64)> = HashMap::new();
        for (h, host) in ["cmp-01", "cmp-02", "cmp-03"].into_iter().enumerate() {
            let (e_h, covered_s) = g1(&power[h].samples, start, end);
            if host == "cmp-02" && covered_s == 0.0 {
                uncovered += 1;
            } else if host == "cmp-02" && covered_s < 60.0 {
                partial += 1;
            }
            let what = format!("[{}, {}] {host}", secs(start), secs(end));
            let line = lines.get(&(start, host.to_owned()));
            if covered_s == 0.0 {
                assert!(line.is_none(), "{what}: no reading, no line: {line:?}");
                continue;
            }
            let line = line.unwrap_or_else(|| panic!("{what}: a line"));
            let i_h = (IDLE_W * covered_s).min(e_h);
            for (key, want) in [("energy_joules", e_h), ("idle_joules", i_h)] {
                let got = line[key].as_f64().unwrap();
                assert!(
                    rel_err(got, want) < 1e-9,
                    "{what}: {key} {got}, want {want}"
                );
            }
            assert_eq!(
                line["covered_s"].as_f64(),
                Some(covered_s),
                "{what}: covered s"
            );
            hosts.insert(host, (e_h, covered_s));
            want_lines += 1;
        }
        // Each placement (uuid, host, cpu s, presence s, vcpus) by C1, and
        // its share where its host has a reading.
        let placements: Vec<(&str, &str, f64, f64, f64)> = VMS
            .iter()
            .zip(&cpu)
            .filter_map(|(vm, s)| {
                let (cpu_s, span) = c1_span_in(&s.samples, None, start, end)?;
                Some((vm.uuid, vm.host, cpu_s, span.min(60.0), f64::from(vm.vcpus)))
            })
            .collect();
        let mut want: HashMap<&str, (f64, Vec<&str>)> = HashMap::new();
        for &(uuid, host, cpu_s, presence, n) in &placements {
            let Some(&(e_h, covered_s)) = hosts.get(host) else {
                continue;
            };
            let i_h = (IDLE_W * covered_s).min(e_h);
            let on_host = placements.iter().filter(|p| p.1 == host);
            let c_h: f64 = on_host.clone().map(|p| p.2).sum();
            let w_h: f64 = on_host.map(|p| p.3 * p.4).sum();
            let mut joules = 0.0;
            if c_h > 0.0 {
                joules += (e_h - i_h) * cpu_s / c_h;
            }
            if w_h > 0.0 {
                joules += i_h * n * presence / w_h;
            }
            let vm = want.entry(uuid).or_default();
            vm.0 += joules;
            vm.1.push(host);
        }
        let mut got: Vec<&str> = records
            .keys()
            .filter(|(s, _)| *s == start)
            .map(|(_, uuid)| uuid.as_str())
            .collect();
        let mut expected: Vec<&str> = want.keys().copied().collect();
        got.sort();
        expected.sort();
        let what = format!("[{}, {}]", secs(start), secs(end));
        assert_eq!(got, expected, "{what}: records of the VMs measured");
        for (uuid, (joules, on)) in &want {
            let record = &records[&(start, (*uuid).to_owned())];
            let energy = record["energy_joules"].as_f64().unwrap();
            assert!(
                rel_err(energy, *joules) < 1e-9,
                "{what} {uuid}: {energy} J, ENERGY.md says {joules} J"
            );
            if let [host] = on.as_slice() {
                let covered_s = record["covered_s"].as_f64();
                assert_eq!(covered_s, Some(hosts[*host].1), "{what} {uuid}: covered s");
            }
        }
        want_records += want.len();
    }
    assert_eq!(records.len(), want_records, "no other records");
    assert_eq!(lines.len(), want_lines, "no other summary lines");
    assert!(uncovered >= 6, "{uncovered} windows inside the gap");
    assert_eq!(partial, 2, "a window partly covered at each end of the gap");
}

/// The shipped `policies/kepler.toml`: Kepler's per-VM counter, package and
/// dram zones summed per `vm_id` (core is inside the package, never added).
#[test]
fn kepler_policy_sums_package_and_dram_per_vm() {
    let uuids = [VMS[0].uuid, VMS[1].uuid, VMS[2].uuid];
    let mut series = Vec::new();
    for (i, uuid) in uuids.iter().enumerate() {
        let life = VMS[i].life;
        for (z, (zone, watts)) in [("package", 40.0), ("dram", 5.0), ("core", 30.0)]
            .into_iter()
            .enumerate()
        {
            let labels = [
                ("instance", "cmp-01:28282".to_owned()),
                ("vm_id", (*uuid).to_owned()),
                ("zone", zone.to_owned()),
            ];
            series.push(counter(
                &labels,
                500 + 10 * i as u64 + z as u64,
                life,
                10.0,
                watts * (i + 1) as f64,
                f64::INFINITY,
                (0, 0),
            ));
        }
    }
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[("kepler_vm_cpu_joules", &series)],
        &[],
    ));
    let want: HashMap<String, f64> = uuids
        .iter()
        .enumerate()
        .map(|(i, uuid)| {
            let zones = &series[3 * i..3 * i + 2];
            let joules = zones.iter().filter_map(|s| c1(&s.samples, W0, W1)).sum();
            ((*uuid).to_owned(), joules)
        })
        .collect();
    let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/kepler.toml");
    let records = records(&extract(&policy, &prometheus.url, W0, W1));
    assert_joules(&records, &want);
}

/// The shipped `policies/tdp-estimate.toml` on the CPU-time data: every
/// placement estimated from ENERGY.md's formula, records marked estimated.
#[test]
fn tdp_estimate_policy_estimates_every_placement() {
    let (cpu, vcpus) = cpu_series();
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[("libvirt_domain_info_cpu_time_seconds", &cpu)],
        &[("libvirt_domain_info_virtual_cpus", &vcpus)],
    ));
    // No memory series: memory counts 0. Hosts match no pattern: CCF's
    // 0.74 W and 3.5 W per vCPU.
    let mut want: HashMap<String, f64> = HashMap::new();
    for (uuid, _, cpu_s, presence, vcpus) in placements(&cpu) {
        let util = (cpu_s / (vcpus * presence)).clamp(0.0, 1.0);
        *want.entry(uuid.to_owned()).or_default() +=
            vcpus * presence * (0.74 + util * (3.5 - 0.74));
    }
    let policy =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/tdp-estimate.toml");
    let out = command()
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(W0), "--to", &secs(W1)])
        .args(["--set", "inventory.memory_metric=\"\""])
        .output()
        .unwrap();
    let records = records(&out);
    assert_joules(&records, &want);
    assert!(records.values().all(|r| r["quality"] == "estimated"));
}

/// `scaphandre`: per-VM process power by vmname (nova and OpenNebula domain
/// names, through the info series), process series without vmname ignored,
/// a vmname the inventory does not know warned about; the rest of each
/// host's power stays at the host, and where the VMs exceed the host
/// (Scaphandre issue #163) nothing is clamped and the host summary shows it.
#[test]
fn scaphandre_measures_vms_by_vmname_and_leaves_the_rest_at_the_host() {
    let every_15s = |from: i64, value: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..720)
            .map(|k| from + k * 15_000)
            .map(|t| (t, value(t)))
            .collect()
    };
    let series = |labels: &[(&str, &str)], samples: Vec<(i64, f64)>| TestSeries {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        samples,
    };
    let vms = [
        (VMS[0].uuid, "instance-0000002a", "cmp-01", 40e6),
        (VMS[1].uuid, "one-42", "cmp-01", 12.5e6),
        (VMS[2].uuid, "instance-0000002c", "cmp-02", 90e6),
    ];
    let mut meta = Vec::new();
    let mut process = Vec::new();
    for (i, (uuid, domain, host, microwatts)) in vms.into_iter().enumerate() {
        let instance = format!("{host}:9177");
        meta.push(series(
            &[("domain", domain), ("instance", &instance), ("uuid", uuid)],
            every_15s(T0 + 1_000, &|_| 1.0),
        ));
        let exe = if i == 1 {
            "qemu-kvm"
        } else {
            "qemu-system-x86_64"
        };
        let scaph = format!("{host}:8080");
        // Constant power: G1 is power x 3,600 s, even from the per-VM
        // approximation.
        process.push(series(
            &[("exe", exe), ("instance", &scaph), ("vmname", domain)],
            every_15s(T0 + 4_321, &|_| microwatts),
        ));
    }
    // Not VMs: libvirtd, a qemu without vmname; and a VM nobody knows.
    process.push(series(
        &[("exe", "libvirtd"), ("instance", "cmp-01:8080")],
        every_15s(T0 + 2_000, &|_| 3e6),
    ));
    process.push(series(
        &[("exe", "qemu-system-x86_64"), ("instance", "cmp-01:8080")],
        every_15s(T0 + 2_500, &|_| 7e6),
    ));
    process.push(series(
        &[
            ("exe", "qemu-system-x86_64"),
            ("instance", "cmp-01:8080"),
            ("vmname", "instance-000000ff"),
        ],
        every_15s(T0 + 3_000, &|_| 5e6),
    ));
    let host_power = [
        series(
            &[("instance", "cmp-01:8080")],
            every_15s(T0 + 6_789, &|t| 250e6 + 50e6 * ((t / 60_000) % 7) as f64),
        ),
        series(
            &[("instance", "cmp-02:8080")],
            every_15s(T0 + 6_789, &|_| 60e6),
        ),
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[],
        &[
            ("libvirt_domain_info_meta", &meta),
            ("scaph_process_power_consumption_microwatts", &process),
            ("scaph_host_power_microwatts", &host_power),
        ],
    ));
    let want: HashMap<String, f64> = vms
        .iter()
        .map(|(uuid, _, _, microwatts)| ((*uuid).to_owned(), microwatts / 1e6 * 3600.0))
        .collect();
    // G1 of µW, in joules.
    let e_01 = g1(&host_power[0].samples, W0, W1).0 / 1e6;
    let e_02 = g1(&host_power[1].samples, W0, W1).0 / 1e6;

    let dir = tempfile::tempdir().unwrap();
    let text = policy("scaphandre", "").replace("meta_metric = \"\"\n", "");
    let path = write_policy(dir.path(), "scaphandre.toml", &text);
    let (out, summaries) = extract_with_summary(&path, &prometheus.url);
    let records = records(&out);
    assert_joules(&records, &want);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("instance-000000ff") && stderr.contains("match no VM"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exceeds the host's on 1 host(s)") && stderr.contains("cmp-02"),
        "{stderr}"
    );

    let lines: HashMap<String, serde_json::Value> = summaries
        .into_iter()
        .map(|v| (v["host"].as_str().unwrap().to_owned(), v))
        .collect();
    let field = |host: &str, k: &str| lines[host][k].as_f64().unwrap();
    // cmp-01: 52.5 W of VMs; the rest of its power is not the VMs'.
    let vms_01 = (40.0 + 12.5) * 3600.0;
    assert!(
        rel_err(field("cmp-01", "energy_joules"), e_01) < 1e-9,
        "{} {e_01}",
        lines["cmp-01"]
    );
    assert!(
        rel_err(
            lines["cmp-01"]["reasons"]["not-vms"].as_f64().unwrap(),
            e_01 - vms_01
        ) < 1e-9
    );
    assert_eq!(field("cmp-01", "excess_joules"), 0.0);
    // cmp-02: 90 W of VM on a host that says 60 W: 30 W x 3,600 s too many.
    assert!(rel_err(field("cmp-02", "attributed_joules"), 90.0 * 3600.0) < 1e-9);
    assert!(rel_err(field("cmp-02", "excess_joules"), 90.0 * 3600.0 - e_02) < 1e-9);
    assert!(rel_err(e_02, 60.0 * 3600.0) < 1e-9);
}

/// `[[rules]]`: the first match wins, else `[model]`. On cmp-01 a VM labelled
/// `aggregate = kepler` goes to `libvirt-joules` (its own counter) while
/// `rapl-share` splits the host: C_h and the idle weights still count it,
/// its share stays at the host (`other-model`). On cmp-02 a p-chem VM goes to
/// `tdp-estimate` by host and project (a list). The migrated VM stays with
/// `rapl-share` on both hosts.
#[test]
fn rules_give_each_placement_its_model() {
    let (mut cpu, vcpus) = cpu_series();
    cpu[0].labels.push(("aggregate".into(), "kepler".into()));
    for label in &mut cpu[2].labels {
        if label.0 == "project_id" {
            label.1 = "p-chem".into();
        }
    }
    let (package, dram) = rapl_series();
    let energy = counter(
        &[("uuid", VMS[0].uuid.to_owned())],
        77,
        VMS[0].life,
        3_000.0,
        42.0,
        f64::INFINITY,
        (0, 0),
    );
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            ("node_rapl_package_joules", &package),
            ("node_rapl_dram_joules", &dram),
            ("libvirt_domain_info_cpu_time_seconds", &cpu),
            (
                "libvirt_domain_info_energy_consumption_joules",
                std::slice::from_ref(&energy),
            ),
        ],
        &[("libvirt_domain_info_virtual_cpus", &vcpus)],
    ));

    // rapl-share over every placement, then the VMs other rules take out.
    let hosts = rapl_hosts(&package, &dram, |_| 55.0);
    let all = placements(&cpu);
    let mut want = vcpu_shares(&all, &hosts);
    let (v1, v3) = (VMS[0].uuid, VMS[2].uuid);
    let shares_taken = want[v1] + want[v3];
    want.insert(v1.to_owned(), c1(&energy.samples, W0, W1).unwrap());
    let (_, _, cpu_s, presence, n) = *all.iter().find(|p| p.0 == v3).unwrap();
    let util = (cpu_s / (n * presence)).clamp(0.0, 1.0);
    want.insert(v3.to_owned(), n * presence * (0.74 + util * (3.5 - 0.74)));

    let dir = tempfile::tempdir().unwrap();
    let text = policy(
        "rapl-share",
        &format!(
            "[rapl]\nmax_energy_range_uj = {{ package = {PACKAGE_RANGE_UJ}, dram = {DRAM_RANGE_UJ} }}\n"
        ),
    ) + r#"[model.params]
idle = "vcpus"
idle_power = 55
[[rules]]
match = { "label.aggregate" = "kepler" }
plugin = "libvirt-joules"
[[rules]]
match = { host = "cmp-0[2-9]", project = ["p-bio", "p-chem"] }
plugin = "tdp-estimate"
sha256 = "TDP_SHA256"
[[rules]]
match = { "label.aggregate" = "*" }
plugin = "ipmi-share"
"#;
    // Pinned to the hash `plugins inspect` prints.
    let inspect = command()
        .args(["plugins", "inspect", "tdp-estimate"])
        .output()
        .unwrap();
    let inspect = String::from_utf8(inspect.stdout).unwrap();
    let sha256 = inspect
        .lines()
        .find_map(|l| l.strip_prefix("sha256: "))
        .expect("a sha256 line");
    let text = text.replace("TDP_SHA256", sha256);
    let path = write_policy(dir.path(), "rules.toml", &text);
    let (out, summaries) = extract_with_summary(&path, &prometheus.url);
    let records = records(&out);
    assert_joules(&records, &want);
    let model = |uuid: &str| records[uuid]["model"].as_str().unwrap().to_owned();
    assert_eq!(model(v1), "libvirt-joules", "first match wins");
    assert_eq!(model(v3), "tdp-estimate");
    assert_eq!(records[v3]["quality"], "estimated");
    assert_eq!(model(VMS[3].uuid), "rapl-share");

    // --explain: the rule and model of every placement, from the same data.
    let out = command()
        .args(["policy", "check"])
        .arg(&path)
        .args(["--explain", "--prometheus", &prometheus.url])
        .args(["--from", &secs(W0), "--to", &secs(W1)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    ok(&out);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["UUID", "NAME", "HOST", "PROJECT", "RULE", "MODEL"]
    );
    let explained = |uuid: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l[0] == uuid)
            .map(|l| format!("{} {} {} {}", l[2], l[3], l[4], l[5]))
            .collect()
    };
    assert_eq!(explained(v1), ["cmp-01 p-physics rules[0] libvirt-joules"]);
    assert_eq!(explained(v3), ["cmp-02 p-chem rules[1] tdp-estimate"]);
    assert_eq!(
        explained(VMS[3].uuid),
        [
            "cmp-01 p-physics model rapl-share",
            "cmp-02 p-physics model rapl-share"
        ],
        "a migrated VM: one line per host"
    );
    assert_eq!(lines.len(), 1 + 6, "{stdout}");

    // What rapl-share left at its hosts for the VMs other models took.
    let left: f64 = summaries
        .iter()
        .filter(|v| v["model"] == "rapl-share")
        .filter_map(|v| v["reasons"]["other-model"].as_f64())
        .sum();
    assert!(
        rel_err(left, shares_taken) < 1e-9,
        "{left} != {shares_taken}"
    );
}

/// On a hypervisor: `rapl-share` with `[inventory] libvirt_uri` (the libvirt
/// test driver), RAPL and CPU time from Prometheus, vCPUs and names from the
/// domains (Prometheus has no size series here).
#[test]
fn rapl_share_on_a_hypervisor_sizes_vms_from_libvirt() {
    let domains = [
        ("c5a2b3d4-1e2f-4a5b-8c9d-0e1f2a3b4c5d", 2.0, 1.2),
        ("d6b3c4e5-2f30-4b6c-9dae-1f20a3b4c5d6", 4.0, 0.3),
        ("e7c4d5f6-3041-4c7d-8ebf-203142536475", 1.0, 0.9),
    ];
    let cpu: Vec<TestSeries> = domains
        .iter()
        .enumerate()
        .map(|(i, (uuid, _, rate))| {
            let labels = [
                ("instance", "cmp-01:9177".to_owned()),
                ("uuid", (*uuid).to_owned()),
            ];
            counter(
                &labels,
                900 + i as u64,
                (T0, T0 + 3 * HOUR),
                10.0,
                *rate,
                f64::INFINITY,
                (0, 0),
            )
        })
        .collect();
    let (package, dram) = rapl_series();
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[
            ("node_rapl_package_joules", &package[..2]),
            ("node_rapl_dram_joules", &dram[..2]),
            ("libvirt_domain_info_cpu_time_seconds", &cpu),
        ],
        &[],
    ));
    let hosts = rapl_hosts(&package, &dram, |_| 40.0);
    let placements: Vec<_> = domains
        .iter()
        .zip(&cpu)
        .map(|((uuid, vcpus, _), s)| {
            let (cpu_s, span) = c1_span(&s.samples, None).unwrap();
            (*uuid, "cmp-01", cpu_s, span.min(3600.0), *vcpus)
        })
        .collect();
    let want = vcpu_shares(&placements, &hosts);

    let dir = tempfile::tempdir().unwrap();
    let text = policy(
        "rapl-share",
        &format!(
            "libvirt_uri = \"{}\"\nvcpus_metric = \"\"\n[rapl]\nmax_energy_range_uj = {{ package = {PACKAGE_RANGE_UJ}, dram = {DRAM_RANGE_UJ} }}\n",
            super::libvirt::fixture_uri()
        ),
    ) + "[model.params]\nidle = \"vcpus\"\nidle_power = 40\n";
    let path = write_policy(dir.path(), "hypervisor.toml", &text);
    let records = records(&extract(&path, &prometheus.url, W0, W1));
    assert_joules(&records, &want);
    let name = |uuid: &str| records[uuid]["vm_name"].as_str().map(str::to_owned);
    assert_eq!(
        name(domains[2].0).as_deref(),
        Some("ubuntu-vm"),
        "OpenNebula metadata"
    );
    assert_eq!(records[domains[1].0]["vcpus"], 4, "vCPUs from the domain");
}

/// A policy of rules alone: a placement no rule matches fails its window
/// (nothing delivered, the VMs named), `--explain` shows it with `-`, and a
/// catch-all rule covers it.
#[test]
fn rules_without_a_default_model_cover_every_vm_or_fail() {
    let (cpu, vcpus) = cpu_series();
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[("libvirt_domain_info_cpu_time_seconds", &cpu)],
        &[("libvirt_domain_info_virtual_cpus", &vcpus)],
    ));
    let dir = tempfile::tempdir().unwrap();
    let rules = "[[rules]]\nmatch = { host = \"cmp-01\" }\nplugin = \"tdp-estimate\"\n";
    let text = policy("tdp-estimate", "").replace("[model]\nplugin = \"tdp-estimate\"\n", rules);
    let path = write_policy(dir.path(), "rules-only.toml", &text);
    let out = extract(&path, &prometheus.url, W0, W1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("match no rule and the policy has no [model]")
            && stderr.contains(&format!("{} on cmp-02", VMS[2].uuid)),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing delivered");

    let out = command()
        .args(["policy", "check"])
        .arg(&path)
        .args(["--explain", "--prometheus", &prometheus.url])
        .args(["--from", &secs(W0), "--to", &secs(W1)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with(VMS[2].uuid)).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2..], ["-", "-"], "{line}");

    let text = text.replace(
        rules,
        &format!("{rules}[[rules]]\nmatch = {{ host = \"*\" }}\nplugin = \"tdp-estimate\"\n"),
    );
    let path = write_policy(dir.path(), "rules-only.toml", &text);
    let records = records(&extract(&path, &prometheus.url, W0, W1));
    assert_eq!(records.len(), 5, "every VM present in the window");
}
