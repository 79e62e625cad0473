//! Running the `wattson` binary as an operator would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test, with a shared compile cache so tests do not recompile plugins.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wattson"));
    cmd.env("WATTSON_CACHE_DIR", cache_dir());
    cmd.env("WATTSON_LOG", "warn");
    cmd
}

fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("wattson-test-plugin-cache")
}

/// Writes a policy file into `dir`.
pub fn write_policy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write policy");
    path
}

/// A minimal policy using `libvirt-joules` with its defaults.
pub const BASIC_POLICY: &str = r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"

[prometheus]
url = "http://127.0.0.1:9"

[model]
plugin = "libvirt-joules"

[[outputs]]
format = "jsonl"
"#;

/// Runs `wattson extract --dry-run --format jsonl` and returns the output.
pub fn extract(policy: &Path, url: &str, from_ms: i64, to_ms: i64) -> Output {
    extract_as(policy, url, from_ms, to_ms, "jsonl")
}

/// Runs `wattson extract --dry-run --format FORMAT` and returns the output.
pub fn extract_as(policy: &Path, url: &str, from_ms: i64, to_ms: i64, format: &str) -> Output {
    extract_command(policy, url, from_ms, to_ms, format)
        .output()
        .expect("run wattson")
}

/// Runs `wattson extract --dry-run --format jsonl` with `--set` overrides.
pub fn extract_with(policy: &Path, url: &str, from_ms: i64, to_ms: i64, sets: &[&str]) -> Output {
    let mut command = extract_command(policy, url, from_ms, to_ms, "jsonl");
    for set in sets {
        command.args(["--set", set]);
    }
    command.output().expect("run wattson")
}

fn extract_command(policy: &Path, url: &str, from_ms: i64, to_ms: i64, format: &str) -> Command {
    let mut command = dry_run(policy, url, from_ms, to_ms);
    command.args(["--format", format]);
    command
}

/// `wattson extract --dry-run` of the policy's own outputs, not yet run.
pub fn dry_run(policy: &Path, url: &str, from_ms: i64, to_ms: i64) -> Command {
    let mut command = command();
    command
        .args(["extract", "--dry-run", "--policy"])
        .arg(policy)
        .args(["--prometheus", url])
        .args(["--from", &secs(from_ms), "--to", &secs(to_ms)]);
    command
}

/// Unix seconds with milliseconds, as `--from`/`--to` take them.
pub fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The jsonl records a run printed, asserting it succeeded.
pub fn jsonl_records(output: &Output) -> Vec<serde_json::Value> {
    assert!(
        output.status.success(),
        "wattson failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a JSON record per line"))
        .collect()
}

/// Parses jsonl records into (vm uuid, window start, joules), sorted by VM
/// and window, asserting the run succeeded.
pub fn joules_by_vm_and_window(output: &Output) -> Vec<(String, String, f64)> {
    let mut joules: Vec<(String, String, f64)> = jsonl_records(output)
        .iter()
        .map(|record| {
            (
                record["vm_uuid"].as_str().expect("vm_uuid").to_owned(),
                record["start"].as_str().expect("start").to_owned(),
                record["energy_joules"].as_f64().expect("energy_joules"),
            )
        })
        .collect();
    joules.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    joules
}

/// Parses jsonl records into {vm uuid: joules}, asserting the run succeeded.
pub fn joules_by_vm(output: &Output) -> HashMap<String, f64> {
    jsonl_records(output)
        .iter()
        .map(|record| {
            (
                record["vm_uuid"].as_str().expect("vm_uuid").to_owned(),
                record["energy_joules"].as_f64().expect("energy_joules"),
            )
        })
        .collect()
}
