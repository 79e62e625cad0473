//! PromQL templates (`prometheus-query`): a cASO-style per-VM `{{uuid}}`
//! query run once per VM of the inventory, and the batched form run once per
//! window, give the same numbers, which the test computes from its samples.

use std::collections::HashMap;

use super::data::{HOUR, METRIC, MIN, T0, VmShape, counter_series, rel_err};
use super::prometheus::{Prometheus, TestSeries, openmetrics_with_gauges};
use super::support::ok;
use super::wattson::{command, joules_by_vm, secs, write_policy};

/// The libvirt exporter's info series for `uuid`, scraped every 30 s over [from, to].
fn info(uuid: &str, name: &str, from: i64, to: i64) -> TestSeries {
    TestSeries {
        labels: vec![
            ("uuid".into(), uuid.into()),
            ("instance_name".into(), name.into()),
            ("project_uuid".into(), format!("proj-{name}")),
        ],
        samples: (0..)
            .map(|i| (from + i * 30_000 + 4_321, 1.0))
            .take_while(|(t, _)| *t <= to)
            .collect(),
    }
}

fn policy(query: &str, unit: &str) -> String {
    format!(
        r#"
[site]
name = "TEST-SITE"
compute_service = "c"

[prometheus]
url = "http://127.0.0.1:9"
concurrency = 4

[model]
plugin = "prometheus-query"
params = {{ query = '{query}', unit = "{unit}" }}
"#
    )
}

#[test]
fn per_vm_and_batched_templates_give_the_values_of_their_queries() {
    let shapes = [
        VmShape {
            uuid: "tpl-steady",
            project: "p",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 5e4,
            seed: 71,
        },
        // A reset inside the window: the query's own arithmetic decides.
        VmShape {
            uuid: "tpl-reset",
            project: "p",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[T0 + HOUR + 17 * MIN],
            gaps: &[],
            initial: 9e4,
            seed: 72,
        },
        // Appears mid-window.
        VmShape {
            uuid: "tpl-late",
            project: "p",
            from_ms: T0 + HOUR + 25 * MIN,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 0.0,
            seed: 73,
        },
        // Stale: stopped an hour before the window.
        VmShape {
            uuid: "tpl-stale",
            project: "p",
            from_ms: T0,
            to_ms: T0 + 10 * MIN,
            resets_at: &[],
            gaps: &[],
            initial: 1e3,
            seed: 74,
        },
    ];
    let counters: Vec<TestSeries> = shapes.iter().map(counter_series).collect();
    let infos = vec![
        info("tpl-steady", "steady", T0, T0 + 3 * HOUR),
        info("tpl-reset", "reset", T0, T0 + 3 * HOUR),
        info("tpl-late", "late", T0 + HOUR + 25 * MIN, T0 + 3 * HOUR),
        // In the inventory, but its energy series is missing: no value, no record (never 0).
        info("tpl-no-energy", "ghost", T0, T0 + 3 * HOUR),
    ];
    let prometheus = Prometheus::start(&openmetrics_with_gauges(
        &[(METRIC, &counters)],
        &[("libvirt_domain_info_meta", &infos)],
    ));
    let (start, end) = (T0 + HOUR, T0 + 2 * HOUR);

    // Expected: max_over_time over [start, end] of each series' samples, in Wh.
    let expected: HashMap<&str, f64> = shapes
        .iter()
        .zip(&counters)
        .filter_map(|(shape, series)| {
            let max = series
                .samples
                .iter()
                .filter(|(t, _)| *t >= start && *t <= end)
                .map(|(_, v)| *v)
                .reduce(f64::max)?;
            Some((shape.uuid, max * 3600.0))
        })
        .collect();
    assert_eq!(
        expected.len(),
        3,
        "the stale VM has no sample in the window"
    );

    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, query: &str| {
        let policy = write_policy(dir.path(), name, &policy(query, "Wh"));
        command()
            .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
            .arg(&policy)
            .args(["--prometheus", &prometheus.url])
            .args(["--from", &secs(start), "--to", &secs(end)])
            .output()
            .unwrap()
    };
    let per_vm = run(
        "per-vm.toml",
        &format!(r#"max_over_time({METRIC}_total{{uuid="{{{{uuid}}}}"}}[{{{{window}}}}])"#),
    );
    let warnings = String::from_utf8_lossy(&per_vm.stderr).into_owned();
    let per_vm = joules_by_vm(&per_vm);
    let batched = joules_by_vm(&run(
        "batched.toml",
        &format!("max_over_time({METRIC}_total[{{{{window}}}}] @ {{{{end}}}})"),
    ));
    for (label, got) in [("per-VM", &per_vm), ("batched", &batched)] {
        assert_eq!(got.len(), expected.len(), "{label}: {got:?}");
        for (uuid, want) in &expected {
            let err = rel_err(got[*uuid], *want);
            assert!(
                err < 1e-12,
                "{label} {uuid}: got {} want {want}",
                got[*uuid]
            );
        }
    }
    assert!(
        warnings.contains("1 of 4 VMs have no value"),
        "the VM without data is reported: {warnings}"
    );

    // A unit the model does not know is a policy error before any query,
    // located, naming the parameter, the value and every allowed value.
    let policy = write_policy(dir.path(), "unit.toml", &policy("up", "MJ"));
    let out = command()
        .args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(start), "--to", &secs(end)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unit.toml:12:"), "{stderr}");
    assert!(stderr.contains("model.params.unit"), "{stderr}");
    assert!(
        stderr.contains(r#"expected one of "J", "Wh" or "kWh", found "MJ""#),
        "{stderr}"
    );
}

#[test]
fn template_mistakes_are_refused_before_any_query() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "bad.toml",
        &policy(r#"sum(m{uuid="{{ vm_uuid }}"})"#, "kWh"),
    );
    let out = command()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("unknown variable `vm_uuid`"),
        "{stderr}"
    );
    assert!(stderr.contains("prometheus-query"), "{stderr}");
}

#[test]
fn a_per_vm_template_with_no_vm_to_run_for_is_not_silent() {
    // cASO's default template against a Prometheus without the info series
    // that lists VMs: cASO sends nothing and exits 0.
    let series = counter_series(&VmShape {
        uuid: "vm-a",
        project: "p",
        from_ms: T0,
        to_ms: T0 + 2 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 1.0,
        seed: 71,
    });
    let prometheus = Prometheus::start(&openmetrics_with_gauges(&[(METRIC, &[series])], &[]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "caso.toml",
        &policy(
            r#"sum(increase(libvirt_domain_info_energy_consumption_joules_total{uuid="{{uuid}}"}[{{window}}]))"#,
            "J",
        ),
    );
    let run = |strict: bool| {
        let mut cmd = command();
        cmd.args(["extract", "--dry-run", "--format", "jsonl", "--policy"])
            .arg(&policy)
            .args(["--prometheus", &prometheus.url])
            .args(["--from", &secs(T0 + HOUR), "--to", &secs(T0 + 2 * HOUR)]);
        if strict {
            cmd.arg("--strict");
        }
        cmd.output().unwrap()
    };
    let out = run(false);
    let stderr = ok(&out);
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("WARN") && stderr.contains("per-VM template has no VM to run for"),
        "{stderr}"
    );
    assert!(
        stderr.contains("libvirt_domain_info_meta") && stderr.contains("--strict"),
        "it says where VMs come from and what to set: {stderr}"
    );
    let out = run(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("per-VM template has no VM to run for"),
        "{stderr}"
    );
}
