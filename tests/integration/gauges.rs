//! G1 against a real Prometheus: an IPMI-style host power gauge scraped every
//! 15 s off the window edges, with a 3-minute gap (bridged) and a 10-minute gap
//! (not bridged, uncovered). Expected values come from integrating the
//! interpolant millisecond by millisecond, a different method from the code's.

use std::path::Path;

use wattson::policy::{Policy, Source};
use wattson::runtime::{GaugeSpec, IdlePowerSpec, KeyKind, Measurement, Unit};
use wattson::sources::prometheus::{
    Client, PrometheusConfig, ReadPath, measure_gauge, measure_vm_gauge,
};
use wattson::window::Window;

use super::data::{HOUR, MAX_GAP_MS, MIN, Rng, T0, g1, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::support::gather_from;

fn power_series(host: &str, seed: u64, gaps: &[(i64, i64)]) -> TestSeries {
    TestSeries {
        labels: vec![("instance".into(), format!("{host}:9290"))],
        samples: power_samples(seed, T0, T0 + 4 * HOUR, gaps),
    }
}

/// Power in watts every 15 s (±0.4 s jitter, per-series phase), uniformly
/// 180–300 W: noisier than real hosts or VMs, the worst case for estimates.
fn power_samples(seed: u64, from: i64, to: i64, gaps: &[(i64, i64)]) -> Vec<(i64, f64)> {
    let mut rng = Rng::new(seed);
    let mut samples = Vec::new();
    let mut t = from + (rng.next_f64() * 15_000.0) as i64;
    while t <= to {
        let ts = t + ((rng.next_f64() - 0.5) * 800.0) as i64;
        if !gaps.iter().any(|&(a, b)| ts >= a && ts < b) {
            samples.push((ts, 180.0 + 120.0 * rng.next_f64()));
        }
        t += 15_000;
    }
    samples
}

#[test]
fn host_power_is_integrated_exactly_and_gaps_are_reported() {
    let hosts = [
        power_series("cmp-01", 51, &[]),
        power_series("cmp-02", 52, &[(T0 + 90 * MIN, T0 + 93 * MIN)]),
        power_series("cmp-03", 53, &[(T0 + 100 * MIN, T0 + 110 * MIN)]),
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[],
        &[("ipmi_dcmi_power_consumption_watts", &hosts)],
    ));
    let client = Client::new(PrometheusConfig::with_url(&prometheus.url)).unwrap();
    let window = Window::new(T0 + HOUR + 7_777, T0 + 2 * HOUR + 7_777).unwrap();
    let got = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(measure_gauge(
            &client,
            "ipmi_dcmi_power_consumption_watts",
            window,
            MAX_GAP_MS,
        ))
        .unwrap();
    assert_eq!(got.len(), 3);
    for (series, host) in got.iter().zip(&hosts) {
        let (joules, covered_s) = g1(&host.samples, window.start_ms, window.end_ms);
        assert!(
            rel_err(series.integral.value, joules) <= 1e-9,
            "{:?}: {} J, reference {joules} J",
            series.labels,
            series.integral.value
        );
        assert!(
            (series.integral.covered_s - covered_s).abs() < 1e-6,
            "{covered_s}"
        );
    }
    assert_eq!(got[0].integral.covered_s, 3600.0, "no gap: fully covered");
    assert_eq!(
        got[1].integral.covered_s, 3600.0,
        "a 3-minute gap is bridged"
    );
    let uncovered = 3600.0 - got[2].integral.covered_s;
    assert!(
        (600.0..=630.0).contains(&uncovered),
        "the 10-minute gap is uncovered: {uncovered} s"
    );
    // avg_over_time × |W| (what a naive tool does) fills the gap: it is high here.
    let naive = prometheus.query(
        "avg_over_time(ipmi_dcmi_power_consumption_watts{instance=\"cmp-03:9290\"}[3600s]) * 3600",
        window.end_ms,
    );
    assert!(naive[0].1 > got[2].integral.value * 1.1);
}

/// Per-VM gauges: by remote read, exact G1 for every VM; by PromQL, raw
/// samples at the edges only, sums in between, within the documented 1e-2 of
/// G1, and every VM with a gap, a start or a stop is detected, fetched raw
/// and exact.
#[test]
fn vm_power_from_edges_and_sums_is_close_and_gaps_are_detected() {
    let end_of_data = T0 + 4 * HOUR;
    let vm = |uuid: &str, seed, from, to, gaps: &[(i64, i64)]| TestSeries {
        labels: vec![("uuid".into(), uuid.into())],
        samples: power_samples(seed, from, to, gaps),
    };
    let vms = [
        vm("a-steady", 61, T0, end_of_data, &[]),
        vm("b-steady", 62, T0, end_of_data, &[]),
        vm("c-steady", 63, T0, end_of_data, &[]),
        vm("d-steady", 64, T0, end_of_data, &[]),
        // Not bridged (> max_gap): uncovered, and must be found although only sums cross it.
        vm(
            "e-gap-10min",
            65,
            T0,
            end_of_data,
            &[(T0 + 100 * MIN, T0 + 110 * MIN)],
        ),
        // Bridged by G1 (< max_gap).
        vm(
            "f-gap-3min",
            66,
            T0,
            end_of_data,
            &[(T0 + 95 * MIN, T0 + 98 * MIN)],
        ),
        vm("g-starts", 67, T0 + 85 * MIN, end_of_data, &[]),
        vm("h-stops", 68, T0, T0 + 140 * MIN, &[]),
        vm(
            "i-gap-at-start",
            69,
            T0,
            end_of_data,
            &[(T0 + 58 * MIN, T0 + 66 * MIN)],
        ),
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(&[], &[("vm_power_watts", &vms)]));
    let window = Window::new(T0 + HOUR + 1_234, T0 + 3 * HOUR + 1_234).unwrap();
    let measure = |read: ReadPath| {
        let mut config = PrometheusConfig::with_url(&prometheus.url);
        config.read = read;
        let client = Client::new(config).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(measure_vm_gauge(
                &client,
                "vm_power_watts",
                "uuid",
                window,
                MAX_GAP_MS,
            ))
            .unwrap()
    };
    // Remote read: every sample of every VM at the price of one read, so
    // every VM gets exact G1.
    let exact = measure(ReadPath::RemoteRead);
    assert_eq!(exact.series.len(), vms.len());
    for (series, vm) in exact.series.iter().zip(&vms) {
        let (joules, covered_s) = g1(&vm.samples, window.start_ms, window.end_ms);
        let err = rel_err(series.integral.value, joules);
        assert!(err <= 1e-9, "{:?}: {err:e}", vm.labels);
        assert!((series.integral.covered_s - covered_s).abs() < 1.0);
    }
    // PromQL: raw samples at the edges only, sums in between.
    let got = measure(ReadPath::Promql);
    assert_eq!(got.series.len(), vms.len());
    assert_eq!(
        got.raw_fetched, 5,
        "the four steady VMs need no raw samples; the five others do"
    );
    let mut worst = 0.0_f64;
    for (series, vm) in got.series.iter().zip(&vms) {
        let uuid = &vm.labels[0].1;
        assert_eq!(series.labels.get("uuid"), Some(uuid.as_str()));
        let (joules, covered_s) = g1(&vm.samples, window.start_ms, window.end_ms);
        let err = rel_err(series.integral.value, joules);
        if uuid.ends_with("steady") {
            worst = worst.max(err);
            assert!(
                err <= 1e-2,
                "{uuid}: {} J, G1 {joules} J",
                series.integral.value
            );
        } else {
            assert!(
                err <= 1e-9,
                "{uuid} (raw): {} J, G1 {joules} J",
                series.integral.value
            );
        }
        assert!(
            (series.integral.covered_s - covered_s).abs() < 1.0,
            "{uuid}: covered {} s, G1 {covered_s} s",
            series.integral.covered_s
        );
    }
    assert!(
        worst < 1e-3,
        "the estimate is far inside its 1e-2 bound on 15 s scrapes: {worst:e}"
    );
    eprintln!("per-VM gauge estimate, worst relative error vs G1: {worst:e}");
}

/// Idle power (ENERGY.md): the least average over the window's whole minutes
/// of a host's power gauge, skipping minutes it does not fully cover; a
/// static `[idle_power]` for hosts matching a pattern, the first in the
/// policy's order.
/// Gathers the hosts' IPMI power (`power`) and its idle power by `setting`
/// (`idle`) over `window`: each host's idle power, the hosts being `hosts`.
fn idle_powers(
    policy: &Policy,
    url: &str,
    window: Window,
    setting: &str,
    hosts: &[&str],
) -> Vec<f64> {
    let measurements = [
        Measurement::Gauge(GaugeSpec {
            name: "power".into(),
            selector: "ipmi_dcmi_power_consumption_watts".into(),
            key_label: "instance".into(),
            key: KeyKind::Host,
            unit: Unit::Watts,
            max_gap_s: None,
        }),
        Measurement::IdlePower(IdlePowerSpec {
            name: "idle".into(),
            meter: "power".into(),
            setting: setting.into(),
        }),
    ];
    let gathered = gather_from(policy, &measurements, url, window);
    assert_eq!(gathered.input.hosts, hosts);
    let idle = &gathered.input.measurements[1];
    assert_eq!(idle.name, "idle");
    idle.hosts.iter().map(|r| r.unwrap().value).collect()
}

#[test]
fn idle_power_is_the_quietest_fully_covered_minute() {
    // cmp-01: noisy 180–300 W with a quiet stretch (35–59 W), fully covered.
    // cmp-02: never below 180 W, with a 10-minute gap: the minutes in the gap
    // must be skipped, not counted as near 0 W.
    let a: Vec<(i64, f64)> = power_samples(81, T0, T0 + 3 * HOUR, &[])
        .into_iter()
        .map(|(t, v)| {
            let quiet = (T0 + 70 * MIN..T0 + 78 * MIN).contains(&t);
            (t, if quiet { 35.0 + (v - 180.0) / 5.0 } else { v })
        })
        .collect();
    let gap = (T0 + 80 * MIN, T0 + 90 * MIN);
    let b = power_samples(82, T0, T0 + 3 * HOUR, &[gap]);
    // cmp-02's second PSU, labelled with another port: the same host key, so
    // its idle power is the least minute of both meters summed.
    let b2 = power_samples(84, T0, T0 + 3 * HOUR, &[]);
    let c = power_samples(83, T0, T0 + 3 * HOUR, &[]);
    let series = |instance: &str, samples: &[(i64, f64)]| TestSeries {
        labels: vec![("instance".into(), instance.into())],
        samples: samples.to_vec(),
    };
    let hosts = [
        series("cmp-01:9290", &a),
        series("cmp-02:9290", &b),
        series("cmp-02:9291", &b2),
        series("cmp-90:9290", &c),
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[],
        &[("ipmi_dcmi_power_consumption_watts", &hosts)],
    ));
    let window = Window::new(T0 + HOUR + 20_500, T0 + 2 * HOUR + 20_500).unwrap();

    // The rule applied here: every whole UTC minute inside the window (it
    // starts 20.5 s past one: 59 of them), integrated millisecond by
    // millisecond; a minute counts only if every meter of the host fully
    // covers it.
    let first_minute = (window.start_ms + MIN - 1) / MIN * MIN;
    let expected = |meters: &[&Vec<(i64, f64)>]| {
        (0..)
            .map(|k| first_minute + k * MIN)
            .take_while(|from| from + MIN <= window.end_ms)
            .filter_map(|from| {
                meters.iter().try_fold(0.0, |watts, samples| {
                    let (joules, covered_s) = g1(samples, from, from + MIN);
                    (covered_s == 60.0).then_some(watts + joules / 60.0)
                })
            })
            .reduce(f64::min)
            .unwrap()
    };

    let text = r#"
[site]
name = "S"
compute_service = "c"
[inventory]
host_label = "instance"
host_regex = '^([^:]+)'
[idle_power]
"cmp-9[0-9]" = 95.5
"cmp-9.*" = 70.0
[model]
plugin = "libvirt-joules"
"#;
    let policy = Policy::parse(Source::new(Path::new("idle.toml"), text.into())).unwrap();
    let got = idle_powers(
        &policy,
        &prometheus.url,
        window,
        "auto",
        &["cmp-01", "cmp-02", "cmp-90"],
    );
    let meters: [&[&Vec<(i64, f64)>]; 2] = [&[&a], &[&b, &b2]];
    for (host, (got, meters)) in ["cmp-01", "cmp-02"].iter().zip(got.iter().zip(meters)) {
        let want = expected(meters);
        assert!(
            rel_err(*got, want) <= 1e-9,
            "{host}: idle {got} W, rule {want} W"
        );
    }
    assert!(
        got[0] < 60.0,
        "cmp-01's quiet minutes are found: {}",
        got[0]
    );
    assert!(
        got[1] > 100.0,
        "cmp-02's quiet stretch is in a gap, not measurable: {}",
        got[1]
    );
    assert_eq!(
        got[2], 95.5,
        "cmp-90 has the static idle power of the first pattern in the policy's order (the \
         second, which also matches, sorts first)"
    );
}

/// `idle_power = "fit"` on a host that never idles (55–95 % CPU, 110 W idle +
/// 90 W at full load): the least minute is far above idle, the intercept of
/// power against node_exporter's CPU utilisation recovers it to 2 %. A host
/// without CPU time falls back to its least minute.
#[test]
fn idle_power_fit_recovers_a_busy_hosts_idle_power() {
    let (idle_w, dynamic_w, cores) = (110.0, 90.0, 4usize);
    // Utilisation drifts slowly (periods of 17 and 7 minutes).
    let u = |t: i64| {
        let m = (t - T0) as f64 / 60_000.0;
        0.75 + 0.12 * (m * std::f64::consts::TAU / 17.0).sin()
            + 0.07 * (m * std::f64::consts::TAU / 7.0).cos()
    };
    let mut rng = Rng::new(77);
    let power: Vec<(i64, f64)> = (0..4 * 360)
        .map(|k| T0 + 3_300 + k * 10_000)
        .map(|t| (t, idle_w + dynamic_w * u(t) + (rng.next_f64() - 0.5) * 4.0))
        .collect();
    // CPU seconds per core and mode, scraped every 15 s: busy = u, idle = 1 − u,
    // integrated finely between scrapes.
    let mut cpu = Vec::new();
    for core in 0..cores {
        for mode in ["user", "idle"] {
            let mut value = 1_000.0;
            let mut samples = Vec::new();
            let mut t = T0 + 6_100 + core as i64 * 1_000;
            while t <= T0 + 4 * HOUR {
                samples.push((t, (value * 1e3_f64).round() / 1e3));
                for ms in (0..15_000).step_by(100) {
                    let busy = u(t + ms);
                    value += 0.1 * if mode == "user" { busy } else { 1.0 - busy };
                }
                t += 15_000;
            }
            cpu.push(TestSeries {
                labels: vec![
                    ("cpu".into(), core.to_string()),
                    ("instance".into(), "cmp-01:9100".into()),
                    ("mode".into(), mode.into()),
                ],
                samples,
            });
        }
    }
    let meters = [
        TestSeries {
            labels: vec![("instance".into(), "cmp-01.bmc:9290".into())],
            samples: power.clone(),
        },
        TestSeries {
            labels: vec![("instance".into(), "cmp-02.bmc:9290".into())],
            samples: power.clone(),
        },
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[("node_cpu_seconds", &cpu)],
        &[("ipmi_dcmi_power_consumption_watts", &meters)],
    ));
    let window = Window::new(T0 + HOUR, T0 + 2 * HOUR).unwrap();
    let text = r#"
[site]
name = "S"
compute_service = "c"
[inventory]
host_label = "instance"
host_regex = '^([^:.]+)'
[model]
plugin = "libvirt-joules"
"#;
    let policy = Policy::parse(Source::new(Path::new("fit.toml"), text.into())).unwrap();
    let idle_of = |setting: &str| {
        idle_powers(
            &policy,
            &prometheus.url,
            window,
            setting,
            &["cmp-01", "cmp-02"],
        )
    };
    let fit = idle_of("fit");
    let auto = idle_of("auto");
    assert!(
        rel_err(fit[0], idle_w) < 0.02,
        "fit: {} W against the simulated {idle_w} W (auto says {} W)",
        fit[0],
        auto[0]
    );
    assert!(auto[0] > idle_w + 0.4 * dynamic_w, "auto: {} W", auto[0]);
    eprintln!(
        "idle power of a busy host: fit {} W, auto {} W, simulated {idle_w} W",
        fit[0], auto[0]
    );
    // cmp-02 has no CPU time: the least minute, as auto.
    assert_eq!(fit[1], auto[1]);
}
