//! A state directory belongs to one policy file: two policy files with the
//! same stem in different directories, on one `[state] dir`, would share
//! lastrun and the spool (the second skipping the first one's windows, or
//! delivering its payloads). The second is refused, naming both files and
//! what to do; a policy file moved on purpose takes its state over by the
//! command the message gives; a symlink to the policy is the policy.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::data::{HOUR, MIN, T0};
use super::delivery::{expected_in, file_receipts, lastrun, run, site};
use super::support::ok;
use super::wattson::command;

/// `dir/<sub>/site.toml`: the test site, hourly windows, jsonl files into
/// `files`, state under `dir/state` keyed by the stem (no `[state] name`).
fn policy(dir: &Path, sub: &str, url: &str, files: &Path) -> PathBuf {
    let path = dir.join(sub).join("site.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"

[prometheus]
url = "{url}"

[window]
step_secs = 3600

[model]
plugin = "libvirt-joules"

[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "file"
directory = "{files}"

[state]
dir = "{state}"
"#,
            files = files.display(),
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
    path
}

/// Exit 2, naming the state directory, both policy files and the fixes.
fn refused<'a>(out: &'a Output, owner: &Path, policy: &Path, dir: &Path) -> &'a Output {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let marker = dir.join("state/site/policy-file");
    for part in [
        format!("state directory {}", dir.join("state/site").display()),
        format!("belongs to the policy {}", owner.display()),
        format!("not to {}", policy.display()),
        "`[state] name".to_owned(),
        format!("`rm {}`", marker.display()),
    ] {
        assert!(stderr.contains(&part), "`{part}` missing in: {stderr}");
    }
    assert_eq!(stderr.matches("error:").count(), 1, "one error: {stderr}");
    out
}

#[test]
fn a_second_policy_with_the_same_stem_is_refused_the_first_ones_state() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    // Canonical: the temporary directory may sit behind a symlink.
    let dir = dir.path().canonicalize().unwrap();
    let (files_a, files_b) = (dir.join("files-a"), dir.join("files-b"));
    let a = policy(&dir, "a", &site.prometheus.url, &files_a);
    let b = policy(&dir, "b", &site.prometheus.url, &files_b);
    let marker = dir.join("state/site/policy-file");

    ok(&run(&a, T0 + 3 * HOUR + 5 * MIN, None));
    let first = [(T0 + 2 * HOUR, T0 + 3 * HOUR)];
    assert_eq!(file_receipts(&files_a).0, expected_in(&site, &first));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("{}\n", a.display()),
        "the first run claims the directory"
    );

    // Before the marker, b's run found a's lastrun and extracted nothing.
    refused(&run(&b, T0 + 3 * HOUR + 5 * MIN, None), &a, &b, &dir);
    assert!(!files_b.exists(), "b delivered nothing");
    assert_eq!(lastrun(&dir), T0 + 3 * HOUR);
    for sub in ["list", "retry"] {
        let out = command()
            .args(["spool", sub, "--policy"])
            .arg(&b)
            .output()
            .unwrap();
        refused(&out, &a, &b, &dir);
    }
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&b)
        .output()
        .unwrap();
    refused(&out, &a, &b, &dir);
    let out = command()
        .args(["daemon", "--listen", "127.0.0.1:0", "--policy"])
        .arg(&b)
        .output()
        .unwrap();
    refused(&out, &a, &b, &dir);

    // The fix the message gives: b's own state, from its first window.
    let out = command()
        .args(["extract", "--set", "state.name=\"site-b\"", "--policy"])
        .arg(&b)
        .args(["--now", &super::wattson::secs(T0 + 3 * HOUR + 5 * MIN)])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(file_receipts(&files_b).0, expected_in(&site, &first));

    // a moved on purpose: refused (a no longer exists), then taken over by
    // the command the message gives, going on from a's lastrun.
    let moved = dir.join("c/site.toml");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&a, &moved).unwrap();
    let out = run(&moved, T0 + 4 * HOUR + 5 * MIN, None);
    let stderr = String::from_utf8_lossy(&refused(&out, &a, &moved, &dir).stderr).into_owned();
    assert!(stderr.contains("(which no longer exists)"), "{stderr}");
    std::fs::remove_file(&marker).unwrap();
    ok(&run(&moved, T0 + 4 * HOUR + 5 * MIN, None));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("{}\n", moved.display())
    );
    let (got, ids) = file_receipts(&files_a);
    let two = [first[0], (T0 + 3 * HOUR, T0 + 4 * HOUR)];
    assert_eq!(got, expected_in(&site, &two), "each record once");
    assert!(ids.values().all(|&n| n == 1));

    // Through a symlink with the same stem: the same policy file.
    let link = dir.join("d/site.toml");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&moved, &link).unwrap();
    ok(&run(&link, T0 + 5 * HOUR + 5 * MIN, None));
    assert_eq!(lastrun(&dir), T0 + 5 * HOUR);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("{}\n", moved.display())
    );
}
