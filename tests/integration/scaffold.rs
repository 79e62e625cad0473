//! A site's own plugins: `wattson plugins new` scaffolds a model and a format
//! crate outside the repository; each builds for wasm32-wasip2 against the
//! SDK untouched, passes `wattson plugins test` on its own fixture, and runs
//! in a real extract (the model pinned by sha256).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::data::{HOUR, T0, c1, rel_err};
use super::support::ok;
use super::support::one_vm;
use super::wattson::{command, dry_run, extract, jsonl_records, write_policy};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Scaffolds `name` in `dir` and builds it; returns the component.
fn new_and_build(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let out = command()
        .args(["plugins", "new", name, "--kind", kind, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    ok(&out);
    let crate_dir = dir.join(name);
    let target = repo().join("target/scaffold");
    let build = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo");
    assert!(build.success(), "{name} builds untouched");
    target.join(format!(
        "wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    ))
}

fn plugins_test(component: &Path, fixture: &Path, args: &[&str]) -> std::process::Output {
    command()
        .args(["plugins", "test"])
        .arg(component)
        .arg("--input")
        .arg(fixture)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_scaffolded_model_and_format_build_pass_plugins_test_and_run_in_an_extract() {
    let dir = tempfile::tempdir().unwrap();
    let model = new_and_build(dir.path(), "site-share", "model");
    let fixture = dir.path().join("site-share/fixture.json");

    // The fixture as written: its two readings, times the default factor 1.
    let out = plugins_test(&model, &fixture, &["--json"]);
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    let joules: Vec<f64> = json["attribution"]["placements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["joules"].as_f64().unwrap())
        .collect();
    assert_eq!(joules, [151_200.0, 424_800.0]);
    // A parameter set on the command line, and one out of its range.
    let out = plugins_test(&model, &fixture, &["--set", "factor=1.5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("226800.000"),
        "{text}"
    );
    let out = plugins_test(&model, &fixture, &["--set", "factor=20"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--set factor"));
    // A broken fixture is named with its line and column.
    std::fs::write(dir.path().join("bad.json"), "{\n  \"window\": 3\n}\n").unwrap();
    let out = plugins_test(&model, &dir.path().join("bad.json"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.json:2:"), "{stderr}");

    // The format on its fixture.
    let format = new_and_build(dir.path(), "site-text", "format");
    let out = plugins_test(
        &format,
        &dir.path().join("site-text/fixture.json"),
        &["--set", "separator=\";\""],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    ok(&out);
    assert!(
        text.contains("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1001;2025-06-01T00:00:00.000Z;2025-06-01T01:00:00.000Z;0.042\n"),
        "{text}"
    );

    // Both in a real extract: the model pinned, the format an output.
    let (series, prometheus) = one_vm("vm-site", 9, T0 + HOUR + 600_000);
    let sha256 = {
        let out = Command::new("sha256sum").arg(&model).output().unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    };
    let policy = write_policy(
        dir.path(),
        "site.toml",
        &format!(
            "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[model]\nplugin = \"{}\"\nsha256 = \"{sha256}\"\n\n[model.params]\nfactor = 2.0\n\n[[outputs]]\nformat = \"{}\"\n",
            model.display(),
            format.display()
        ),
    );
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let want = 2.0 * c1(&series.samples, from, to).unwrap();
    let records = jsonl_records(&extract(&policy, &prometheus.url, from, to));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["model"], "site-share");
    let got = records[0]["energy_joules"].as_f64().unwrap();
    assert!(rel_err(got, want) < 1e-12, "{got} vs {want}");
    let out = dry_run(&policy, &prometheus.url, from, to)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    ok(&out);
    assert!(
        text.starts_with("vm-site 2025-06-01T01:00:00.000Z 2025-06-01T02:00:00.000Z "),
        "{text}"
    );
    let kwh: f64 = text.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(rel_err(kwh, want / 3.6e6) < 1e-12);
}
