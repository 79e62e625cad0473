//! Components from other toolchains: a Python model (componentize-py) and a
//! JavaScript format (componentize-js), built in the test from
//! `examples/plugins` against `wit/since_v0.2.0`, load and run in the
//! host's sandbox under the default limits, although they import WASI clocks,
//! filesystem, sockets and more at other 0.2.x minors than wasmtime ships.
//! Each test is skipped, saying so, only if its tool cannot be installed
//! (and fails instead where `CI` is set).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wattson::runtime::{
    AttributionInput, EnergyRecord, Limits, Measured, Param, ParamValue, Placement, Quality,
    Reading, RecordQuality, Runtime, Status, Vm, Window,
};

use super::support::ok;
use super::wattson::{command, write_policy};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds both components once per test run; None (with the reason printed)
/// when a tool cannot be installed here, a panic then if `CI` is set.
fn built() -> Option<&'static PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    let built = BUILT
        .get_or_init(|| {
            let out = repo().join("target/polyglot");
            let status = Command::new("bash")
                .arg(repo().join("examples/plugins/build.sh"))
                .arg(repo().join("wit/since_v0.2.0"))
                .arg(&out)
                .status()
                .expect("run examples/plugins/build.sh");
            match status.code() {
                Some(0) => Some(out),
                // The tools could not be installed: build.sh said why.
                Some(77) => None,
                _ => panic!("examples/plugins/build.sh failed: {status}"),
            }
        })
        .as_ref();
    if built.is_none() {
        super::support::missing_tool(
            "componentize-py / componentize-js",
            "examples/plugins/build.sh installs them with python3 (venv, pip) and npm \
             (apt install python3-venv npm); its message above says what failed",
        );
    }
    built
}

/// A runtime with the default limits and a compile cache kept between runs
/// (each component takes seconds to compile).
fn runtime() -> Runtime {
    let cache = repo().join("target/polyglot/.compiled");
    Runtime::new(Limits::default(), Some(cache)).expect("runtime")
}

fn input() -> AttributionInput {
    let vm = |uuid: &str| Vm {
        uuid: uuid.into(),
        vcpus: Some(2),
        memory_mb: Some(2048),
    };
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
        hosts: vec!["cmp-01".into()],
        placements: (0..3)
            .map(|vm| Placement {
                vm,
                host: Some(0),
                presence_s: 3600.0,
                cpu_s: None,
                assigned: true,
            })
            .collect(),
        measurements: vec![Measured {
            name: "energy".into(),
            vms: vec![reading(10.5), None, reading(0.25)],
            hosts: vec![None],
            placements: vec![reading(10.5), None, reading(0.25)],
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
    ]
}

#[test]
fn a_python_model_loads_and_attributes_in_the_sandbox() {
    let Some(dir) = built() else { return };
    let runtime = runtime();
    let model = runtime
        .load_model(dir.join("model.wasm").to_str().unwrap())
        .expect("the componentize-py model loads");
    assert_eq!(model.info().name, "py-counter");
    assert_eq!(model.wit_version().as_str(), "0.2.0");

    let got = model.attribute(&input(), &params("double")).unwrap();
    let joules: Vec<(u32, f64)> = got
        .placements
        .iter()
        .map(|p| (p.placement, p.joules))
        .collect();
    // VM b has no reading: no entry (never 0); the others twice their counter.
    assert_eq!(joules, vec![(0, 21.0), (2, 0.5)]);

    // An hour's sleep returns at once: clocks do not move, waits are ready.
    let started = Instant::now();
    let got = model.attribute(&input(), &params("sleep")).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(got.placements.len(), 2);
}

#[test]
fn a_python_models_choice_is_checked_by_policy_check() {
    let Some(dir) = built() else { return };
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        policy_dir.path(),
        "py.toml",
        &format!(
            "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[prometheus]\nurl = \"http://127.0.0.1:9\"\n\n[model]\nplugin = \"{}\"\nparams = {{ mode = \"triple\" }}\n\n[state]\ndir = \"{}\"\n",
            dir.join("model.wasm").display(),
            policy_dir.path().display()
        ),
    );
    let out = command()
        .env(
            "WATTSON_CACHE_DIR",
            repo().join("target/polyglot/.compiled"),
        )
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("py.toml:10:"), "{stderr}");
    assert!(stderr.contains("model.params.mode"), "{stderr}");
    assert!(
        stderr.contains(r#"expected one of "exact", "double" or "sleep", found "triple""#),
        "{stderr}"
    );
}

#[test]
fn a_javascript_format_loads_and_renders_in_the_sandbox() {
    let Some(dir) = built() else { return };
    let runtime = runtime();
    let format = runtime
        .load_format(dir.join("format.wasm").to_str().unwrap())
        .expect("the componentize-js format loads");
    assert_eq!(format.info().name, "js-lines");
    assert_eq!(format.wit_version().as_str(), "0.2.0");
    let record = |uuid: &str, joules: f64, status| EnergyRecord {
        id: format!("id-{uuid}"),
        site: "S".into(),
        cloud_type: "OpenStack".into(),
        compute_service: "nova".into(),
        vm_uuid: uuid.into(),
        vm_name: None,
        project_id: None,
        project_name: None,
        user_id: None,
        user_name: None,
        user_dn: None,
        fqan: None,
        host: None,
        flavor: None,
        start_ms: 0,
        end_ms: 3_600_000,
        joules,
        wall_s: 3600.0,
        cpu_s: None,
        vcpus: None,
        memory_mb: None,
        status,
        quality: RecordQuality {
            kind: Quality::Measured,
            meters: vec![],
            covered_s: None,
        },
        pue: None,
        ci_g: None,
        cfp_g: None,
        ci_covered_s: None,
        model: "m".into(),
        model_version: "1".into(),
        gpu_j: None,
        embodied_g: None,
        embodied_source: None,
    };
    let payloads = format
        .render(
            &[
                record("vm-a", 1.5, Status::Running),
                record("vm-b", 2.0, Status::Completed),
            ],
            &[],
        )
        .unwrap();
    assert_eq!(payloads.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&payloads[0]),
        "vm-a 1.5 running\nvm-b 2 completed\n"
    );
}

#[test]
fn a_component_of_neither_world_says_why() {
    let Some(dir) = built() else { return };
    let runtime = runtime();
    let Err(err) = runtime.load_format(dir.join("model.wasm").to_str().unwrap()) else {
        panic!("a model is not a format");
    };
    let message = err.to_string();
    assert!(
        message.contains("is not a valid format component: it is an attribution-model component (wattson:plugin@0.2.0)"),
        "{message}"
    );
}

#[test]
fn the_examples_pass_plugins_test_on_their_fixtures_and_run_in_an_extract() {
    use super::data::{HOUR, T0, c1, rel_err};
    use super::support::one_vm;
    use super::wattson::dry_run;

    let Some(dir) = built() else { return };
    let examples = repo().join("examples/plugins");
    let cache = repo().join("target/polyglot/.compiled");
    let plugins_test = |component: &str, fixture: &str, args: &[&str]| {
        command()
            .env("WATTSON_CACHE_DIR", &cache)
            .args(["plugins", "test"])
            .arg(dir.join(component))
            .arg("--input")
            .arg(examples.join(fixture))
            .args(args)
            .output()
            .unwrap()
    };
    let out = plugins_test(
        "model.wasm",
        "python-model/fixture.json",
        &["--set", "mode=double", "--json"],
    );
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let joules: Vec<f64> = json["attribution"]["placements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["joules"].as_f64().unwrap())
        .collect();
    assert_eq!(
        joules,
        [302_400.0, 849_600.0],
        "the fixture's readings, doubled"
    );
    let out = plugins_test("format.wasm", "js-format/fixture.json", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    ok(&out);
    assert!(
        text.contains("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1001 151200 running\n"),
        "{text}"
    );

    // Both in a real extract against Prometheus.
    let (series, prometheus) = one_vm("vm-py", 17, T0 + HOUR + 1_000_000);
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        policy_dir.path(),
        "py.toml",
        &format!(
            "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[model]\nplugin = \"{}\"\nparams = {{ mode = \"double\" }}\n\n[[outputs]]\nformat = \"{}\"\n",
            dir.join("model.wasm").display(),
            dir.join("format.wasm").display()
        ),
    );
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let out = dry_run(&policy, &prometheus.url, from, to)
        .env("WATTSON_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    ok(&out);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{text}");
    assert_eq!(fields[0], "vm-py");
    let want = 2.0 * c1(&series.samples, from, to).unwrap();
    let got: f64 = fields[1].parse().unwrap();
    assert!(rel_err(got, want) < 1e-12, "{got} vs {want}");
}
