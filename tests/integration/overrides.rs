//! `--set KEY=VALUE` on the commands that read a policy: an override goes
//! through the policy's validation, its problems name `--set KEY`, and the
//! file's own problems keep their `file:line:column`.

use super::data::{HOUR, T0, VmShape, c1, counter_series, rel_err};
use super::prometheus::{Prometheus, openmetrics};
use super::wattson::{command, extract_with, joules_by_vm, write_policy};

const POLICY: &str = "[site]\nname = \"S\"\ncompute_service = \"c\"\n\n[model]\nplugin = \"libvirt-joules\"\n\n[model.params]\nkey_label = \"uuid\"\n\n[window]\nstep_secs = 3600\n";

fn check(text: &str, sets: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(dir.path(), "site.toml", text);
    let mut cmd = command();
    cmd.args(["policy", "check"]).arg(&path);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn overrides_pass_the_same_checks_as_the_file() {
    let (code, out) = check(
        POLICY,
        &[
            "model.params.metric=\"kepler_vm_cpu_joules_total\"",
            "window.step_secs=900",
            // A table the policy does not have is created.
            "inventory.libvirt_uri=\"test:///default\"",
        ],
    );
    assert_eq!(code, 0, "{out}");

    // A parameter of the wrong type, named by its --set.
    let (code, out) = check(POLICY, &["model.params.metric=5"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--set model.params.metric: "), "{out}");
    assert!(
        out.contains("expected a string, found integer `5`"),
        "{out}"
    );

    // Out of range, and an unknown key in a table it creates: both at once.
    let (code, out) = check(POLICY, &["window.max_window_secs=60", "carbn.pue=1.5"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--set carbn.pue: "), "{out}");
    assert!(out.contains("unknown field `carbn`"), "{out}");

    let (code, out) = check(POLICY, &["window.max_window_secs=60"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--set window.max_window_secs: ")
            && out.contains("must be at least window.step_secs"),
        "{out}"
    );
}

#[test]
fn the_files_own_problems_keep_their_lines_around_overrides() {
    // `metric` is added to [model.params] (a line inserted above [window]);
    // the file's bad value on its line 12 is still reported there.
    let bad = POLICY.replace("step_secs = 3600", "step_secs = \"1h\"");
    let (code, out) = check(&bad, &["model.params.metric=\"m_total\""]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("site.toml:12:13"), "{out}");
    assert!(out.contains("key `window.step_secs`"), "{out}");
}

#[test]
fn an_override_that_is_not_toml_says_how_to_write_it() {
    let (code, out) = check(POLICY, &["model.params.idle=vcpus"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--set model.params.idle: "), "{out}");
    assert!(
        out.contains("a string needs quotes: --set model.params.idle='\"vcpus\"'"),
        "{out}"
    );
    let (code, out) = check(POLICY, &["window.step_secs"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is not KEY=VALUE"), "{out}");
}

#[test]
fn extract_measures_what_the_override_names() {
    let shape = VmShape {
        uuid: "vm-a",
        project: "p1",
        from_ms: T0,
        to_ms: T0 + 2 * HOUR,
        resets_at: &[],
        gaps: &[],
        initial: 7.0,
        seed: 31,
    };
    let series = counter_series(&shape);
    // The data under another metric name than the policy's default.
    let prometheus = Prometheus::start(&openmetrics(&[(
        "kepler_vm_joules",
        std::slice::from_ref(&series),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "site.toml", POLICY);
    let (from, to) = (T0 + HOUR, T0 + 2 * HOUR);
    let run = |sets: &[&str]| extract_with(&policy, &prometheus.url, from, to, sets);
    // Without the override the policy's metric has no data: no records, and
    // a warning that names the selector and the server instead of silence,
    // once for a run of three such windows.
    let none = extract_with(&policy, &prometheus.url, T0, T0 + 3 * HOUR, &[]);
    assert!(none.status.success() && none.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("WARN")
            && stderr.matches("so no records: no series of").count() == 1
            && stderr.contains("libvirt_domain_info_energy_consumption_joules_total")
            && stderr.contains(&prometheus.url),
        "{stderr}"
    );
    // --strict makes it a failed window, named, with nothing on stdout.
    let strict = extract_with(&policy, &prometheus.url, from, to, &["strict=true"]);
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(
        !strict.status.success() && strict.stdout.is_empty() && stderr.contains("no VM in"),
        "{:?}: {stderr}",
        strict.status
    );
    let got = joules_by_vm(&run(&["model.params.metric=\"kepler_vm_joules_total\""]));
    let want = c1(&series.samples, from, to).unwrap();
    assert!(
        rel_err(got["vm-a"], want) <= 1e-9,
        "{} vs {want}",
        got["vm-a"]
    );
}

/// Overrides reach model params and rules: `rules.N.…` indexes `[[rules]]`,
/// and a bad value or index names its `--set` and what to write.
#[test]
fn overrides_reach_model_params_and_rules() {
    let policy = format!(
        "{POLICY}\n[inventory]\nhost_label = \"instance\"\n\n[[rules]]\nmatch = {{ host = \"gpu-*\" }}\nplugin = \"ipmi-share\"\n"
    );
    let (code, out) = check(
        &policy,
        &[
            "rules.0.params.idle=\"memory\"",
            "rules.0.match.host=\"a100-*\"",
        ],
    );
    assert_eq!(code, 0, "{out}");

    let (code, out) = check(&policy, &["rules.0.params.idle=\"cores\""]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--set rules.0.params.idle:")
            && out.contains("expected one of \"none\", \"host\", \"equal\", \"vcpus\" or \"memory\", found \"cores\""),
        "{out}"
    );

    let (code, out) = check(&policy, &["rules.2.plugin=\"rapl-share\""]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("`rules` holds 1 table(s)") && out.contains("--set rules.0.KEY=VALUE"),
        "{out}"
    );

    let (code, out) = check(
        &policy,
        &["model.plugin=\"rapl-share\"", "model.params.idle=\"host\""],
    );
    // rapl-share has no `key_label` param: the file's own key is reported where it is.
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("site.toml:9:1") && out.contains("model.params.key_label"),
        "{out}"
    );
}

/// `--set rules.0.…` on a policy without `[[rules]]` says --set cannot add
/// an entry (not serde's "expected a sequence"); `--format` says which
/// `--set outputs.…` it makes moot.
#[test]
fn overrides_that_cannot_apply_say_why() {
    let (code, out) = check(POLICY, &["rules.0.plugin=\"libvirt-joules\""]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--set rules.0.plugin") && out.contains("the policy has no [[rules]]"),
        "{out}"
    );
    assert!(!out.contains("expected a sequence"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let with_output = format!("{POLICY}\n[[outputs]]\nformat = \"apel-energy\"\n");
    let path = write_policy(dir.path(), "site.toml", &with_output);
    let out = command()
        .args(["extract", "--dry-run", "--format", "csv", "--policy"])
        .arg(&path)
        .args(["--set", "outputs.0.params.wire=\"apel\""])
        .args([
            "--prometheus",
            "http://127.0.0.1:1",
            "--from",
            "0",
            "--to",
            "60",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--format csv replaces the policy's outputs")
            && stderr.contains("--set outputs.0.params.wire has no effect"),
        "{stderr}"
    );
}
