//! The sandbox: guests built from source (tests/guests/misbehave) that loop,
//! grow memory, overflow the stack, panic, return too much or return bad
//! joules each fail with an error naming the plugin and the reason, within the
//! time limit + 1 s, and the same host process then runs a good plugin.

use std::time::{Duration, Instant};

use wattson::runtime::{
    AttributionInput, Limits, Measured, Param, ParamValue, Placement, PluginError, Reading,
    Runtime, Vm, Window,
};

const MISBEHAVE: &str = env!("WATTSON_TEST_GUEST_MISBEHAVE");

fn vm(uuid: &str) -> Vm {
    Vm {
        uuid: uuid.into(),
        vcpus: Some(2),
        memory_mb: None,
    }
}

fn input() -> AttributionInput {
    let reading = |value| {
        Some(Reading {
            value,
            span_s: 3600.0,
            covered_s: 3600.0,
        })
    };
    AttributionInput {
        window: Window {
            start_ms: 0,
            end_ms: 3_600_000,
        },
        vms: vec![vm("a"), vm("b"), vm("c")],
        details: vec![],
        hosts: vec![],
        placements: (0..3)
            .map(|vm| Placement {
                vm,
                host: None,
                presence_s: 3600.0,
                cpu_s: None,
                assigned: true,
            })
            .collect(),
        measurements: vec![Measured {
            name: "energy".into(),
            vms: vec![reading(10.0), reading(20.5), reading(0.25)],
            hosts: vec![],
            placements: vec![reading(10.0), reading(20.5), reading(0.25)],
        }],
        gpus: vec![],
    }
}

fn params(mode: &str) -> Vec<Param> {
    vec![
        Param {
            name: "metric".into(),
            value: ParamValue::Text("m".into()),
        },
        Param {
            name: "mode".into(),
            value: ParamValue::Choice(mode.into()),
        },
        Param {
            name: "huge_mb".into(),
            value: ParamValue::Integer(4),
        },
    ]
}

fn limits() -> Limits {
    Limits {
        timeout_ms: 1000,
        memory_mib: 32,
        fuel: None,
        output_mib: 1,
    }
}

/// Runs `mode`, expects an error mentioning `reason`, then checks the runtime still works.
fn contained(runtime: &Runtime, mode: &str, reason: &[&str]) {
    let model = runtime.load_model(MISBEHAVE).expect("load misbehave");
    let started = Instant::now();
    let err = model
        .attribute(&input(), &params(mode))
        .expect_err(&format!("mode {mode} must fail"));
    let elapsed = started.elapsed();
    let message = err.to_string();
    assert!(
        message.contains("plugin `misbehave`"),
        "{mode}: the error must name the plugin: {message}"
    );
    assert!(
        reason.iter().any(|r| message.contains(r)),
        "{mode}: expected one of {reason:?} in: {message}"
    );
    assert!(
        elapsed < Duration::from_millis(limits().timeout_ms + 1000),
        "{mode}: took {elapsed:?}"
    );
    let ok = model
        .attribute(&input(), &params("ok"))
        .expect("a well-behaved call after a failure");
    assert_eq!(ok.placements.len(), 3, "{mode}: the good call must work");
    assert!(matches!(
        err,
        PluginError::Trapped { .. } | PluginError::BadOutput { .. } | PluginError::Failed { .. }
    ));
}

#[test]
fn misbehaving_plugins_are_contained() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(limits(), Some(cache.path().to_owned())).unwrap();
    contained(&runtime, "loop", &["time limit of 1000 ms"]);
    contained(&runtime, "grow", &["memory limit of 32 MiB"]);
    contained(
        &runtime,
        "recurse",
        &["overflowed its stack", "out of bounds"],
    );
    contained(
        &runtime,
        "panic",
        &["panicked: misbehave: deliberate panic"],
    );
    contained(&runtime, "huge", &["output limit"]);
    contained(&runtime, "nan", &["NaN joules"]);
    contained(&runtime, "negative", &["negative energy"]);
    contained(&runtime, "inf", &["inf joules"]);
    contained(
        &runtime,
        "unknown-placement",
        &["placement 3 is not one of the 3 placements"],
    );
    contained(&runtime, "duplicate-placement", &["listed more than once"]);

    // The good builtin still runs in this process, with exact values.
    let good = runtime.load_model("libvirt-joules").unwrap();
    let got = good
        .attribute(
            &input(),
            &[
                Param {
                    name: "metric".into(),
                    value: ParamValue::Text("m".into()),
                },
                Param {
                    name: "key_label".into(),
                    value: ParamValue::Text("uuid".into()),
                },
            ],
        )
        .unwrap();
    let joules: Vec<f64> = got.placements.iter().map(|v| v.joules).collect();
    assert_eq!(joules, vec![10.0, 20.5, 0.25]);
}

#[test]
fn fuel_limit_stops_a_loop() {
    let runtime = Runtime::new(
        Limits {
            fuel: Some(50_000_000),
            timeout_ms: 10_000,
            ..limits()
        },
        None,
    )
    .unwrap();
    let model = runtime.load_model(MISBEHAVE).unwrap();
    let err = model.attribute(&input(), &params("loop")).unwrap_err();
    assert!(err.to_string().contains("ran out of fuel"), "{err}");
}

#[test]
fn cached_plugins_load_from_disk() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.path().to_owned())).unwrap();
    runtime.load_model("libvirt-joules").unwrap();
    let files: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "one compiled artifact cached");
    // A second runtime (a new cron run) loads it from the cache.
    let again = Runtime::new(Limits::default(), Some(cache.path().to_owned())).unwrap();
    again.load_model("libvirt-joules").unwrap();
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);

    // Proof that it is a hit, not a recompile: put another model's compiled
    // artifact under libvirt-joules' name; a run that reads the cache gets
    // that model.
    let other = tempfile::tempdir().unwrap();
    Runtime::new(Limits::default(), Some(other.path().to_owned()))
        .unwrap()
        .load_model("prometheus-query")
        .unwrap();
    let swapped = std::fs::read_dir(other.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let cached = files[0].as_ref().unwrap().path();
    std::fs::copy(swapped.path(), &cached).unwrap();
    let hit = Runtime::new(Limits::default(), Some(cache.path().to_owned()))
        .unwrap()
        .load_model("libvirt-joules")
        .unwrap();
    assert_eq!(
        hit.info().name,
        "prometheus-query",
        "the cached artifact was used"
    );
}

#[test]
fn a_panicking_model_fails_the_window_not_the_host() {
    use super::data::{HOUR, METRIC, T0, VmShape, counter_series};
    use super::prometheus::{Prometheus, openmetrics};
    use super::wattson::{command, secs, write_policy};

    let shape = VmShape {
        uuid: "vm-1",
        project: "p",
        from_ms: T0,
        to_ms: T0 + 2 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 1.0,
        seed: 41,
    };
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &[counter_series(&shape)])]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "site.toml",
        &format!(
            "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[model]\nplugin = \"{MISBEHAVE}\"\n\n[model.params]\nmode = \"panic\"\n\n[state]\ndir = \"{}\"\n",
            dir.path().join("state").display()
        ),
    );
    let out = command()
        .args(["extract", "--policy"])
        .arg(&policy)
        .args([
            "--prometheus",
            &prometheus.url,
            "--now",
            &secs(T0 + 2 * HOUR),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "plugin error, not a host crash: {stderr}"
    );
    assert!(stderr.contains("plugin `misbehave`"), "{stderr}");
    assert!(
        stderr.contains("panicked: misbehave: deliberate panic"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("state/site/lastrun").exists(),
        "nothing marked done"
    );
}

#[test]
fn a_cache_directory_others_can_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.path().to_owned())).unwrap();
    runtime.load_model("libvirt-joules").unwrap();
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "compiled in memory, nothing cached in a world-writable directory"
    );
}
