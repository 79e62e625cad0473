//! The plugin interface's versions: components built against the frozen
//! `wattson:plugin@0.1.0` and `@0.2.0` load, inspect, attribute and render
//! in an extract beside the 0.3.0 builtins (more 0.2.0 components: the
//! Python model and JavaScript format of `polyglot.rs`); each released WIT
//! has one copy, which the SDK carries.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::data::{HOUR, METRIC, MIN, T0, VmShape, c1, rel_err};
use super::support::{counters_in_prometheus, ok};
use super::wattson::{command, extract, extract_as, joules_by_vm, secs, write_policy};

const V0_1_MODEL: &str = env!("WATTSON_TEST_GUEST_V0_1_MODEL");
const V0_1_FORMAT: &str = env!("WATTSON_TEST_GUEST_V0_1_FORMAT");
const V0_2_MODEL: &str = env!("WATTSON_TEST_GUEST_V0_2_MODEL");
const V0_2_FORMAT: &str = env!("WATTSON_TEST_GUEST_V0_2_FORMAT");

/// sha256 of `wit/since_v0.1.0/plugin.wit` as released: a frozen version
/// never changes (components built against it must keep loading).
const V0_1_0_SHA256: &str = "02568aeb208b370ab1c2fa2843a9ae1ca82402e6f91a2a6fedea95d1e395caf3";
/// sha256 of `wit/since_v0.2.0/plugin.wit` as released (frozen since 0.3.0).
const V0_2_0_SHA256: &str = "1f5fcd1d67c1ce27a0e3fcc6b96c8b5b64e6fdc453f6282f2bb6f893c081374b";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_v0_1_model_attributes_in_an_extract_beside_v0_3_formats() {
    model_in_an_extract(V0_1_MODEL, "v0.1-joules");
}

#[test]
fn a_v0_2_model_attributes_in_an_extract_beside_v0_3_formats() {
    model_in_an_extract(V0_2_MODEL, "v0.2-joules");
}

/// An older model (`plugin`, named `name`, a per-VM counter times `scale`)
/// in an extract with the 0.3.0 `jsonl` and `apel-energy` formats.
fn model_in_an_extract(plugin: &str, name: &str) {
    let shapes = [
        VmShape {
            uuid: "vm-a",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 2 * HOUR,
            resets_at: &[T0 + HOUR + 17 * MIN + 321],
            gaps: &[],
            initial: 52.0,
            seed: 101,
        },
        VmShape {
            uuid: "vm-b",
            project: "p2",
            from_ms: T0 + HOUR + 20 * MIN,
            to_ms: T0 + 2 * HOUR,
            resets_at: &[],
            gaps: &[(T0 + HOUR + 30 * MIN, T0 + HOUR + 34 * MIN)],
            initial: 0.0,
            seed: 102,
        },
    ];
    let (series, prometheus) = counters_in_prometheus(&shapes);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "v01.toml",
        &format!(
            r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"

[prometheus]
url = "http://127.0.0.1:9"

[model]
plugin = "{plugin}"
params = {{ metric = "{METRIC}_total", scale = 2.5 }}

[[outputs]]
format = "jsonl"
"#
        ),
    );
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let out = extract(&policy, &prometheus.url, from, to);
    let got = joules_by_vm(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    for (shape, s) in shapes.iter().zip(&series) {
        // ENERGY.md C1 of the test's own samples, times the model's scale.
        let expected = 2.5 * c1(&s.samples, from, to).unwrap();
        let joules = got[shape.uuid];
        assert!(
            rel_err(joules, expected) <= 1e-9,
            "{}: {joules} J, expected {expected} J",
            shape.uuid
        );
    }
    // The 0.3.0 records name the older model, and the latest status words.
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains(&format!(r#""model":"{name}""#)), "{line}");
    assert!(line.contains(r#""status":"running""#), "{line}");

    // The same window through a 0.3.0 apel-energy output: running is `started`.
    let out = extract_as(&policy, &prometheus.url, from, to, "apel-energy");
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(r#""Status":"started""#).count(), 2, "{text}");
}

#[test]
fn a_v0_1_format_renders_the_records_of_v0_3_models() {
    let lines = format_in_an_extract(V0_1_FORMAT);
    for line in &lines {
        assert_eq!(line[3], "-", "no gauge, no covered seconds: {line:?}");
    }
    // 0.1.0 knew `started` and `completed`: a running VM is `started` there.
    assert_eq!(lines[0][1], "started", "{lines:?}");
    assert_eq!(lines[1][1], "completed", "{lines:?}");
}

#[test]
fn a_v0_2_format_renders_the_records_of_v0_3_models() {
    let lines = format_in_an_extract(V0_2_FORMAT);
    // 0.2.0 has `running`, record quality and the model's name.
    for (line, status) in lines.iter().zip(["running", "completed"]) {
        assert_eq!(line.len(), 5, "{line:?}");
        assert_eq!(
            [&line[1], &line[3], &line[4]],
            [status, "measured", "libvirt-joules"],
            "{line:?}"
        );
    }
}

/// Two VMs' records (a running one, one that stops) of the 0.3.0
/// `libvirt-joules` rendered by an older format (`plugin`) that writes one
/// line per record, `<uuid> <status> <joules> …`: the lines split at spaces,
/// their uuids and joules checked against the test's own C1.
fn format_in_an_extract(plugin: &str) -> Vec<Vec<String>> {
    let shapes = [
        VmShape {
            uuid: "vm-a",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 3 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 5.0,
            seed: 111,
        },
        VmShape {
            uuid: "vm-b",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + HOUR + 30 * MIN,
            resets_at: &[],
            gaps: &[],
            initial: 5.0,
            seed: 112,
        },
    ];
    let (series, prometheus) = counters_in_prometheus(&shapes);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "v01-format.toml",
        &format!(
            "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[prometheus]\nurl = \"http://127.0.0.1:9\"\n\n[model]\nplugin = \"libvirt-joules\"\n\n[[outputs]]\nformat = \"{plugin}\"\n"
        ),
    );
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .args(["--from", &secs(from), "--to", &secs(to)])
        .output()
        .unwrap();
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for ((shape, s), line) in shapes.iter().zip(&series).zip(&lines) {
        assert_eq!(line[0], shape.uuid);
        let joules: f64 = line[2].parse().unwrap();
        let want = c1(&s.samples, from, to).unwrap();
        assert!(
            rel_err(joules, want) <= 1e-9,
            "{}: {joules} vs {want}",
            shape.uuid
        );
    }
    lines
}

#[test]
fn inspect_names_the_wit_version_a_component_was_built_for() {
    let inspect = |plugin: &str| {
        let out = command()
            .args(["plugins", "inspect", plugin])
            .output()
            .unwrap();
        ok(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let old = inspect(V0_1_MODEL);
    assert!(old.contains("wit: wattson:plugin@0.1.0"), "{old}");
    assert!(old.contains("scale (a number, default 1)"), "{old}");
    let new = inspect("libvirt-joules");
    assert!(new.contains("wit: wattson:plugin@0.3.0"), "{new}");
    let old_format = inspect(V0_1_FORMAT);
    assert!(
        old_format.contains("kind: format\nsha256: ")
            && old_format.contains("\nwit: wattson:plugin@0.1.0"),
        "{old_format}"
    );
    for (guest, kind) in [(V0_2_MODEL, "model"), (V0_2_FORMAT, "format")] {
        let text = inspect(guest);
        assert!(
            text.contains(&format!("kind: {kind}\n"))
                && text.contains("\nwit: wattson:plugin@0.2.0"),
            "{text}"
        );
    }
    let format = inspect("apel-energy");
    assert!(format.contains("wit: wattson:plugin@0.3.0"), "{format}");
    assert!(
        format.contains(r#"wire (one of "json" or "apel", default json)"#),
        "{format}"
    );
}

#[test]
fn a_released_wit_is_frozen_and_the_sdk_carries_the_same_files() {
    let wit = repo().join("wit");
    for (version, sha256) in [("0.1.0", V0_1_0_SHA256), ("0.2.0", V0_2_0_SHA256)] {
        let frozen = std::fs::read(wit.join(format!("since_v{version}/plugin.wit"))).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&frozen)),
            sha256,
            "wit/since_v{version} changed: a released version is frozen; put changes in a new \
             version"
        );
    }
    let sdk = repo().join("plugins/sdk/wit");
    let mut versions = 0;
    for entry in std::fs::read_dir(&wit).unwrap() {
        let dir = entry.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let relative = file.strip_prefix(&wit).unwrap();
            let carried = std::fs::read(sdk.join(relative))
                .unwrap_or_else(|e| panic!("the SDK does not carry {}: {e}", relative.display()));
            assert!(
                carried == std::fs::read(&file).unwrap(),
                "plugins/sdk/wit/{} differs from wit/{0}: keep one copy (plugins/sdk/wit links to ../../wit)",
                relative.display()
            );
        }
        versions += 1;
    }
    assert_eq!(versions, 3, "since_v0.1.0, since_v0.2.0 and since_v0.3.0");
}

#[test]
fn the_sdk_package_includes_the_wit() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(repo().join("plugins/sdk"))
        .output()
        .unwrap();
    ok(&out);
    let files = String::from_utf8_lossy(&out.stdout);
    for file in [
        "wit/since_v0.1.0/plugin.wit",
        "wit/since_v0.2.0/plugin.wit",
        "wit/since_v0.3.0/plugin.wit",
    ] {
        assert!(files.lines().any(|l| l == file), "{file} not in:\n{files}");
    }
}
