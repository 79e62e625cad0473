//! Policy mistakes an operator makes: each message names file:line:column and the key.

use std::path::Path;

use super::wattson::{command, write_policy};

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(dir.path(), "site.toml", text);
    let out = command()
        .args(["policy", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

const HEAD: &str = "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n";

#[test]
fn good_policy_passes() {
    let (code, stderr) = check(&format!("{HEAD}[model]\nplugin = \"libvirt-joules\"\n"));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn syntax_error_is_located() {
    let (code, stderr) = check(&format!("{HEAD}[model\nplugin = \"libvirt-joules\"\n"));
    assert_eq!(code, 2);
    assert!(stderr.contains("site.toml:5:"), "{stderr}");
}

#[test]
fn unknown_key_is_located_and_named() {
    let (code, stderr) = check(&format!(
        "{HEAD}[model]\nplugin = \"libvirt-joules\"\nparmas = {{}}\n"
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("site.toml:7:1"), "{stderr}");
    assert!(stderr.contains("parmas"), "{stderr}");
    assert!(stderr.contains("key `model.parmas`"), "{stderr}");
}

#[test]
fn wrong_type_is_located_and_named() {
    let (code, stderr) = check(&format!(
        "{HEAD}[window]\nstep_secs = \"1h\"\n\n[model]\nplugin = \"libvirt-joules\"\n"
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("site.toml:6:13"), "{stderr}");
    assert!(stderr.contains("key `window.step_secs`"), "{stderr}");
}

#[test]
fn out_of_range_values_are_located_and_named_all_at_once() {
    let (code, stderr) = check(&format!(
        "{HEAD}[window]\nstep_secs = 3600\nmax_window_secs = 600\n\n[limits]\n  memory_mib = 0\n\n[model]\nplugin = \"libvirt-joules\"\n"
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("site.toml:7:1") && stderr.contains("key `window.max_window_secs`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("site.toml:10:3") && stderr.contains("key `limits.memory_mib`"),
        "{stderr}"
    );
}

#[test]
fn missing_plugin_is_located_and_named() {
    let (code, stderr) = check(&format!("{HEAD}[model]\nplugin = \"libvirt-jules\"\n"));
    assert_eq!(code, 2);
    assert!(stderr.contains("site.toml:6:10"), "{stderr}");
    assert!(stderr.contains("key `model.plugin`"), "{stderr}");
    assert!(
        stderr.contains("libvirt-joules"),
        "lists the builtins: {stderr}"
    );
}

#[test]
fn bad_plugin_params_are_located_and_named() {
    let (code, stderr) = check(&format!(
        "{HEAD}[model]\nplugin = \"libvirt-joules\"\n\n[model.params]\nmetric = 42\nkey_lable = \"uuid\"\n"
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("site.toml:9:10"), "{stderr}");
    assert!(stderr.contains("key `model.params.metric`"), "{stderr}");
    assert!(stderr.contains("expected a string"), "{stderr}");
    assert!(
        stderr.contains("key `model.params.key_lable`"),
        "both problems at once: {stderr}"
    );
}

#[test]
fn bad_url_and_format_are_named() {
    let (code, stderr) = check(&format!(
        "{HEAD}[prometheus]\nurl = \"localhost:9090\"\n\n[model]\nplugin = \"libvirt-joules\"\n"
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("prometheus.url"), "{stderr}");
    let (code, stderr) = check(&format!(
        "{HEAD}[model]\nplugin = \"libvirt-joules\"\n\n[[outputs]]\nformat = \"caso-jsn\"\n"
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("key `outputs[0].format`"), "{stderr}");
}

#[test]
fn a_window_longer_than_a_year_is_refused_not_clamped() {
    // 2^63 s used to wrap around to 1 ms windows.
    let (code, stderr) = check(&format!(
        "{HEAD}[window]\nmax_window_secs = 9223372036854775807\n\n[model]\nplugin = \"libvirt-joules\"\n"
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("site.toml:6:1") && stderr.contains("key `window.max_window_secs`"),
        "{stderr}"
    );
    assert!(stderr.contains("more than a year (31622400 s)"), "{stderr}");
}

/// Every policy shipped in `policies/` passes `policy check` on a machine with
/// no RAPL and no libvirtd, once the secrets it names are set; what is
/// missing there (RAPL wrap ranges) is a warning on stderr, not an error. A
/// delivery secret that is not set is an error naming it.
#[test]
fn every_shipped_policy_passes_policy_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let check = || {
            let mut check = command();
            check
                .args(["policy", "check"])
                .arg(&path)
                .env_remove("PROMETHEUS_TOKEN")
                .env_remove("GREENDIGIT_CIM_PASSWORD");
            check
        };
        let out = check()
            .env("GREENDIGIT_CIM_PASSWORD", "set-by-the-site")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "daemon" {
            // No powercap there (forced) and, here, no libvirtd: ok, with warnings.
            let out = check()
                .args(["--set", "rapl.powercap_root=\"/nonexistent/powercap\""])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(
                stderr.contains("WARN") && stderr.contains("could not read RAPL on this machine"),
                "{stderr}"
            );
        }
        if name == "greendigit-cim" {
            let out = check().output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{stderr}");
            assert!(
                stderr.contains("GREENDIGIT_CIM_PASSWORD is not set")
                    && stderr.contains("greendigit-cim.toml:"),
                "{stderr}"
            );
        }
        if name == "rapl-share" {
            assert!(
                stderr.contains("WARN") && stderr.contains("max_energy_range_uj"),
                "{stderr}"
            );
        }
        checked.push(name);
    }
    checked.sort();
    for policy in [
        "rapl-share",
        "ipmi-share",
        "scaphandre",
        "tdp-estimate",
        "kepler",
        "tenant-metrics",
    ] {
        assert!(checked.iter().any(|c| c == policy), "{checked:?}");
    }
}

/// `[[rules]]` mistakes, all at once: an unknown match key, an empty match,
/// a glob that does not parse and a pin that is not a sha256 (found before
/// any plugin loads); then an unknown plugin, a bad param value of a rule's
/// model and a pin of another component (found when the plugins load).
#[test]
fn rule_mistakes_are_located_and_named() {
    let (code, stderr) = check(&format!(
        r#"{HEAD}[model]
plugin = "libvirt-joules"
[[rules]]
match = {{ hostname = "gpu-*" }}
plugin = "libvirt-joules"
[[rules]]
match = {{}}
plugin = "libvirt-joules"
[[rules]]
match = {{ flavor = "m1.[large" }}
plugin = "libvirt-joules"
[[rules]]
match = {{ project = ["physics", "chem"] }}
plugin = "rapl-share"
sha256 = "abc"
"#
    ));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[
            (
                "site.toml:8:22",
                "key `rules[0].match.hostname`: `hostname` is not a match key",
            ),
            ("site.toml:11:9", "an empty match would take every VM"),
            (
                "site.toml:14:20",
                "key `rules[2].match.flavor`: error parsing glob",
            ),
            (
                "site.toml:19:10",
                "key `rules[3].sha256`: not a sha256 (64 hex digits)",
            ),
        ],
    );

    let (code, stderr) = check(&format!(
        r#"{HEAD}[model]
plugin = "libvirt-joules"
[[rules]]
match = {{ flavor = "m1.*" }}
plugin = "rapl-sahre"
[[rules]]
match = {{ project = ["physics", "chem"] }}
plugin = "rapl-share"
params = {{ idle = "cores" }}
[[rules]]
match = {{ host = "gpu-*" }}
plugin = "ipmi-share"
sha256 = "{}"
"#,
        "0".repeat(64)
    ));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[
            ("site.toml:9:10", "key `rules[0].plugin`"),
            (
                "site.toml:13:19",
                "key `rules[1].params.idle`: plugin `rapl-share`",
            ),
            ("site.toml:17:10", "key `rules[2].sha256`"),
        ],
    );
    assert!(stderr.contains("not the pinned 0000"), "{stderr}");
    assert!(stderr.contains("\"vcpus\" or \"memory\""), "{stderr}");
}

/// An output's format is pinned like a model: a pin that is not a sha256
/// is refused before loading, another component's hash when it loads, and
/// the right hash (as `plugins inspect` prints it) passes.
#[test]
fn an_outputs_format_is_pinned_by_sha256() {
    let output = |pin: &str| {
        format!(
            "{HEAD}[model]\nplugin = \"libvirt-joules\"\n[[outputs]]\nformat = \"jsonl\"\nsha256 = \"{pin}\"\n"
        )
    };
    let (code, stderr) = check(&output("abc"));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[(
            "site.toml:9:10",
            "key `outputs[0].sha256`: not a sha256 (64 hex digits)",
        )],
    );
    let (code, stderr) = check(&output(&"0".repeat(64)));
    assert_eq!(code, 2, "{stderr}");
    located(&stderr, &[("site.toml:9:10", "key `outputs[0].sha256`")]);
    assert!(stderr.contains("`jsonl` has sha256 "), "{stderr}");
    assert!(stderr.contains("not the pinned 0000"), "{stderr}");

    let inspect = command()
        .args(["plugins", "inspect", "jsonl"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    let sha256 = text
        .lines()
        .find_map(|l| l.strip_prefix("sha256: "))
        .unwrap_or_else(|| panic!("no sha256 line: {text}"));
    let (code, stderr) = check(&output(&sha256.to_uppercase()));
    assert_eq!(code, 0, "{stderr}");
}

/// Each (file:line:column, text) is on one line of `stderr`.
fn located(stderr: &str, expected: &[(&str, &str)]) {
    for (at, what) in expected {
        assert!(
            stderr.lines().any(|l| l.contains(at) && l.contains(what)),
            "no `{what}` at {at}: {stderr}"
        );
    }
}

/// Spooled payloads are delivered by output name: two outputs of one name
/// are refused at the second, saying what to add.
#[test]
fn two_outputs_of_one_name_are_refused() {
    let (code, stderr) = check(&format!(
        "{HEAD}[model]\nplugin = \"libvirt-joules\"\n[[outputs]]\nformat = \"jsonl\"\n[[outputs]]\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"/tmp\"\n"
    ));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[(
            "site.toml:10:10",
            "key `outputs[1].name`: another output is named `jsonl`",
        )],
    );
    let (code, stderr) = check(&format!(
        "{HEAD}[model]\nplugin = \"libvirt-joules\"\n[[outputs]]\nformat = \"jsonl\"\n[[outputs]]\nname = \"archive\"\nformat = \"jsonl\"\n"
    ));
    assert_eq!(code, 0, "{stderr}");
}

/// Messenger settings that would fail every delivery, and a host-keyed
/// measurement with no host for the VMs, are found by `policy check`.
#[test]
fn messengers_and_host_keys_are_checked_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file").unwrap();
    let (code, stderr) = check(&format!(
        r#"{HEAD}[model]
plugin = "libvirt-joules"
[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "http"
url = "accounting.example.org/records"
[[outputs]]
format = "csv"
[outputs.messenger]
type = "http"
url = "ftp://accounting.example.org/"
"#
    ));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[
            (
                "site.toml:8:10",
                "key `outputs[0].messenger`: url \"accounting.example.org/records\" is not a URL",
            ),
            ("site.toml:13:10", "has scheme `ftp`"),
        ],
    );

    // Found with I/O by policy check: a directory under a plain file.
    let (code, stderr) = check(&format!(
        "{HEAD}[model]\nplugin = \"libvirt-joules\"\n[[outputs]]\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"{}\"\n",
        blocker.join("records").display()
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("site.toml:8:10") && stderr.contains("is not a directory"),
        "{stderr}"
    );

    // Scaphandre's host gauge without a host for the VMs.
    let (code, stderr) = check(&format!("{HEAD}[model]\nplugin = \"scaphandre\"\n"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`host_power` is read per host") && stderr.contains("host_label"),
        "{stderr}"
    );
}

#[test]
fn a_policy_without_model_or_rules_says_what_to_add() {
    let (code, stderr) = check(HEAD);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("key `model`: the policy names no model: add [model]"),
        "{stderr}"
    );
}

/// A rule's match value of the wrong type names the rule by its index and
/// says what a match value is, not serde's enum.
#[test]
fn a_rule_match_of_the_wrong_type_names_the_rule() {
    let (code, stderr) = check(&format!(
        "{HEAD}[model]\nplugin = \"libvirt-joules\"\n\n[[rules]]\nmatch = {{ host = \"a\" }}\n\
         plugin = \"libvirt-joules\"\n\n[[rules]]\nmatch = {{ \"label.aggregate\" = 5 }}\n\
         plugin = \"libvirt-joules\"\n"
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("site.toml:13:31"), "{stderr}");
    assert!(stderr.contains("key `rules[1].match`"), "{stderr}");
    assert!(
        stderr.contains("must be a glob") && !stderr.contains("untagged"),
        "{stderr}"
    );
}

/// A file or ssm messenger's `mode` is octal permission bits: a string that
/// is not, or an integer beyond 0777 (`640` is decimal), is refused where the
/// messenger is; `"0640"` and `0o640` pass.
#[test]
fn a_messenger_mode_that_is_not_permission_bits_is_located() {
    let policy = |mode: &str| {
        format!(
            "{HEAD}[model]\nplugin = \"libvirt-joules\"\n[[outputs]]\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"/tmp\"\nmode = {mode}\n"
        )
    };
    let (code, stderr) = check(&policy("\"0999\""));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[(
            "site.toml:9:1",
            "mode \"0999\" is not octal permission bits",
        )],
    );
    let (code, stderr) = check(&policy("640"));
    assert_eq!(code, 2, "{stderr}");
    located(&stderr, &[("site.toml:9:1", "mode 640 is 0o1200")]);
    for good in ["\"0640\"", "0o640", "\"600\""] {
        let (code, stderr) = check(&policy(good));
        assert_eq!(code, 0, "{good}: {stderr}");
    }
}

/// A file messenger's fixed `name` (node_exporter's textfile collector): a
/// plain file name; a `*.prom` file of a format that stamps its samples is
/// refused where the stamp is asked for, or at the format when it is the
/// format's default; two outputs onto one file are refused; a name not
/// ending in `.prom` passes with a warning.
#[test]
fn a_textfile_name_is_checked_with_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let textfile = dir.path().join("textfile");
    let output = |format: &str, params: &str, name: &str| {
        format!(
            "[[outputs]]\nformat = \"{format}\"\nparams = {{ {params} }}\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"{}\"\nname = \"{name}\"\n",
            textfile.display()
        )
    };
    let policy = |outputs: &str| format!("{HEAD}[model]\nplugin = \"libvirt-joules\"\n{outputs}");
    for (format, params) in [
        ("tenant-metrics", ""),
        ("openmetrics", "timestamps = false"),
    ] {
        let (code, stderr) = check(&policy(&output(format, params, "wattson.prom")));
        assert_eq!(code, 0, "{format}: {stderr}");
        assert!(!stderr.contains("WARN"), "{format}: {stderr}");
    }

    let (code, stderr) = check(&policy(&output(
        "tenant-metrics",
        "timestamps = true",
        "wattson.prom",
    )));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[(
            "site.toml:9:25",
            "key `outputs[0].params.timestamps`: format `tenant-metrics` stamps every sample with \
             the window's end (timestamps = true), and node_exporter's textfile collector skips",
        )],
    );
    let (code, stderr) = check(&policy(&output("openmetrics", "", "wattson.prom")));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[(
            "site.toml:8:10",
            "key `outputs[0].format`: format `openmetrics` stamps every sample with the window's \
             end (timestamps = true, its default)",
        )],
    );

    let (code, stderr) = check(&policy(&output("tenant-metrics", "", "sub/wattson.prom")));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[(
            "site.toml:8:10",
            "key `outputs[0].messenger`: name \"sub/wattson.prom\" holds a path separator",
        )],
    );

    // Another reader than node_exporter may want another name: a warning.
    let (code, stderr) = check(&policy(&output("openmetrics", "", "wattson.om")));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("outputs[0].messenger: name \"wattson.om\" does not end in .prom"),
        "{stderr}"
    );

    // Two outputs replacing one file.
    let two = output("tenant-metrics", "", "wattson.prom")
        + &output("openmetrics", "timestamps = false", "wattson.prom");
    let (code, stderr) = check(&policy(&two));
    assert_eq!(code, 2, "{stderr}");
    located(
        &stderr,
        &[(
            "site.toml:15:10",
            "key `outputs[1].messenger.name`: another output's file messenger writes",
        )],
    );
}
