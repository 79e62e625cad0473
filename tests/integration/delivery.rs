//! Delivery that never loses or doubles a record: crashes (abort, as kill -9)
//! at several points of a multi-window run, a messenger that is down, the run
//! lock, and a dry run that leaves the state untouched.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;

use super::data::{HOUR, METRIC, MIN, T0, VmShape, c1, counter_series};
use super::prometheus::{Prometheus, TestSeries, openmetrics};
use super::support::ok;
use super::wattson::{command, secs, write_policy};

pub struct Site {
    pub prometheus: Prometheus,
    /// Each VM's uuid and joules counter.
    pub series: Vec<(String, TestSeries)>,
}

pub fn site() -> Site {
    let shapes = [
        VmShape {
            uuid: "vm-1",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 9 * HOUR,
            resets_at: &[T0 + 4 * HOUR + 7 * MIN],
            gaps: &[],
            initial: 1e5,
            seed: 21,
        },
        VmShape {
            uuid: "vm-2",
            project: "p1",
            from_ms: T0,
            to_ms: T0 + 9 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 2e5,
            seed: 22,
        },
        VmShape {
            uuid: "vm-3",
            project: "p2",
            from_ms: T0 + 3 * HOUR + 30 * MIN,
            to_ms: T0 + 9 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 0.0,
            seed: 23,
        },
        VmShape {
            uuid: "vm-4",
            project: "p2",
            from_ms: T0,
            to_ms: T0 + 6 * HOUR + 10 * MIN,
            resets_at: &[],
            gaps: &[],
            initial: 5e4,
            seed: 24,
        },
        VmShape {
            uuid: "vm-5",
            project: "p3",
            from_ms: T0,
            to_ms: T0 + 9 * HOUR,
            resets_at: &[],
            gaps: &[],
            initial: 7e5,
            seed: 25,
        },
    ];
    let series: Vec<_> = shapes.iter().map(counter_series).collect();
    Site {
        prometheus: Prometheus::start(&openmetrics(&[(METRIC, &series)])),
        series: shapes
            .iter()
            .map(|s| s.uuid.to_owned())
            .zip(series)
            .collect(),
    }
}

/// The windows both runs cover: first run [2h, 3h]; second (now = 8h, max 2 h) [3h,5h] [5h,7h] [7h,8h].
const WINDOWS: [(i64, i64); 4] = [
    (T0 + 2 * HOUR, T0 + 3 * HOUR),
    (T0 + 3 * HOUR, T0 + 5 * HOUR),
    (T0 + 5 * HOUR, T0 + 7 * HOUR),
    (T0 + 7 * HOUR, T0 + 8 * HOUR),
];

/// (vm, window start) of every record C1 says must exist.
pub fn expected(site: &Site) -> Vec<(String, i64)> {
    expected_in(site, &WINDOWS)
}

/// (vm, window start) of every record C1 says `windows` hold, sorted.
pub fn expected_in(site: &Site, windows: &[(i64, i64)]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for &(start, end) in windows {
        for (uuid, s) in &site.series {
            if c1(&s.samples, start, end).is_some() {
                out.push((uuid.clone(), start));
            }
        }
    }
    out.sort();
    out
}

fn policy(dir: &Path, url: &str, files: &Path) -> PathBuf {
    delivery_policy(
        dir,
        url,
        &format!(
            r#"
[vo_map]
p1 = "vo.one.example"
p2 = "vo.two.example"

[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "file"
directory = "{files}"

[[outputs]]
format = "apel-energy"
[outputs.params]
batch_size = 2
[outputs.messenger]
type = "ssm"
queue = "{ssm}"
"#,
            files = files.display(),
            ssm = dir.join("ssm").display(),
        ),
    )
}

/// The delivery tests' policy: the test site, `url`, hourly windows of at
/// most 2 h, libvirt-joules, state under `dir/state/site`, and `outputs`.
pub fn delivery_policy(dir: &Path, url: &str, outputs: &str) -> PathBuf {
    write_policy(
        dir,
        "site.toml",
        &format!(
            r#"
[site]
name = "TEST-SITE"
compute_service = "https://keystone.test:5000/v3"

[prometheus]
url = "{url}"

[window]
step_secs = 3600
max_window_secs = 7200

[model]
plugin = "libvirt-joules"
{outputs}
[state]
dir = "{state}"
name = "site"
"#,
            state = dir.join("state").display(),
        ),
    )
}

pub fn run(policy: &Path, now_ms: i64, crash_at: Option<&str>) -> Output {
    let mut cmd = command();
    cmd.args(["extract", "--policy"])
        .arg(policy)
        .args(["--now", &secs(now_ms)]);
    if let Some(point) = crash_at {
        cmd.env("WATTSON_CRASH_AT", point);
    }
    cmd.output().expect("run wattson")
}

/// (vm, window start) → how many times the file receiver got it, keyed by record id too.
pub fn file_receipts(files: &Path) -> (Vec<(String, i64)>, HashMap<String, usize>) {
    let mut keys = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for entry in std::fs::read_dir(files).unwrap() {
        let path = entry.unwrap().path();
        // Temporaries are written aside, where a pickup that globs the
        // directory does not see them.
        if path.file_name().is_some_and(|n| n == ".wattson-tmp") {
            assert!(path.is_dir(), "{path:?}");
            continue;
        }
        assert!(
            path.extension().is_some_and(|e| e == "jsonl"),
            "stray file {path:?}"
        );
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            *ids.entry(r["id"].as_str().unwrap().to_owned()).or_default() += 1;
            let start = chrono::DateTime::parse_from_rfc3339(r["start"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            keys.push((r["vm_uuid"].as_str().unwrap().to_owned(), start));
        }
    }
    keys.sort();
    (keys, ids)
}

/// (vm, window start) of every record in the SSM queue (dirq layout checked).
fn ssm_receipts(queue: &Path) -> Vec<(String, i64)> {
    let mut keys = Vec::new();
    for dir in std::fs::read_dir(queue).unwrap() {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // dirq ignores hidden directories (wattson's staging area)
        }
        assert!(
            name.len() == 8 && name.chars().all(|c| c.is_ascii_hexdigit()),
            "dirq dir {name}"
        );
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.len() == 14 && name.chars().all(|c| c.is_ascii_hexdigit()),
                "dirq element {name}"
            );
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let r: serde_json::Value = serde_json::from_str(line).unwrap();
                let start =
                    chrono::DateTime::parse_from_rfc3339(r["StartExecTime"].as_str().unwrap())
                        .unwrap()
                        .timestamp_millis();
                keys.push((r["ExecUnitID"].as_str().unwrap().to_owned(), start));
            }
        }
    }
    keys.sort();
    keys
}

pub fn lastrun(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join("state/site/lastrun"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn crashes_lose_nothing_and_double_nothing() {
    let site = site();
    let want = expected(&site);
    for crash in [
        None,
        Some("after-spool"),
        Some("mid-delivery:3"),
        Some("mid-delivery:6"),
        Some("before-lastrun:2"),
        // The file messenger's temporary written, not yet renamed: the
        // clean run after removes it (its writer is gone).
        Some("file-temporary:2"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let policy = policy(dir.path(), &site.prometheus.url, &files);
        ok(&run(&policy, T0 + 3 * HOUR + 5 * MIN, None));
        assert_eq!(
            lastrun(dir.path()),
            T0 + 3 * HOUR,
            "first run: the last whole step"
        );
        if let Some(point) = crash {
            let out = run(&policy, T0 + 8 * HOUR + 30 * MIN, Some(point));
            assert!(!out.status.success(), "{point}: the run must have crashed");
        }
        ok(&run(&policy, T0 + 8 * HOUR + 30 * MIN, None));
        let (file_keys, ids) = file_receipts(&files);
        assert_eq!(
            file_keys, want,
            "{crash:?}: file receiver, every record exactly once"
        );
        assert!(
            ids.values().all(|&n| n == 1),
            "{crash:?}: record ids unique"
        );
        assert_eq!(
            ssm_receipts(&dir.path().join("ssm")),
            want,
            "{crash:?}: ssm queue, exactly once"
        );
        assert_eq!(lastrun(dir.path()), T0 + 8 * HOUR, "{crash:?}: lastrun");
        let spool: Vec<_> = std::fs::read_dir(dir.path().join("state/site/spool"))
            .unwrap()
            .collect();
        assert!(spool.is_empty(), "{crash:?}: spool drained");
        let temporaries: Vec<_> = std::fs::read_dir(files.join(".wattson-tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(temporaries.is_empty(), "{crash:?}: left {temporaries:?}");
        // Nothing new: a further run sends nothing again.
        ok(&run(&policy, T0 + 8 * HOUR + 40 * MIN, None));
        assert_eq!(file_receipts(&files).0.len(), want.len());
    }
}

#[test]
fn a_messenger_that_is_down_keeps_its_payloads_and_does_not_block_the_others() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    // The file messenger's directory is blocked by a plain file: it cannot deliver.
    let files = dir.path().join("files");
    std::fs::write(&files, "not a directory").unwrap();
    let policy = policy(dir.path(), &site.prometheus.url, &files);

    let out = run(&policy, T0 + 3 * HOUR + 5 * MIN, None);
    assert_eq!(out.status.code(), Some(5), "delivery error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("file {}", files.display())),
        "{stderr}"
    );
    assert!(stderr.contains("stay in the spool"), "{stderr}");
    let out = run(&policy, T0 + 8 * HOUR + 30 * MIN, None);
    assert_eq!(out.status.code(), Some(5));
    // The ssm receiver got every window meanwhile; lastrun waits for the file messenger.
    assert_eq!(ssm_receipts(&dir.path().join("ssm")), expected(&site));
    assert_eq!(lastrun(dir.path()), T0 + 2 * HOUR);

    // Back up: the next run delivers the spool first, and nothing twice.
    std::fs::remove_file(&files).unwrap();
    ok(&run(&policy, T0 + 8 * HOUR + 30 * MIN, None));
    assert_eq!(file_receipts(&files).0, expected(&site));
    assert_eq!(ssm_receipts(&dir.path().join("ssm")), expected(&site));
    assert_eq!(lastrun(dir.path()), T0 + 8 * HOUR);
}

#[test]
fn a_second_run_is_refused_while_one_holds_the_lock() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &site.prometheus.url, &dir.path().join("files"));
    let lock_dir = dir.path().join("state/site");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let lock = std::fs::File::create(lock_dir.join("lock")).unwrap();
    lock.try_lock().unwrap();
    let out = run(&policy, T0 + 3 * HOUR, None);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another wattson run"));
    drop(lock);
    ok(&run(&policy, T0 + 3 * HOUR, None));
}

#[test]
fn dry_run_changes_no_state() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let policy = policy(dir.path(), &site.prometheus.url, &files);
    ok(&run(&policy, T0 + 3 * HOUR, None));
    let before = snapshot(dir.path());
    let out = command()
        .args(["extract", "--dry-run", "--policy"])
        .arg(&policy)
        .args(["--now", &secs(T0 + 8 * HOUR)])
        .output()
        .unwrap();
    ok(&out);
    assert!(!out.stdout.is_empty(), "dry run prints what would be sent");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "state, spool and receivers byte-identical"
    );
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.clone(), Vec::new());
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "lock") {
                // Each run that takes the lock writes its PID there.
                out.insert(path.clone(), Vec::new());
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Delivered files have the policy's `mode` whatever the process' umask
/// (the systemd units set `UMask=0077`): the file messenger's default 0640,
/// an ssm queue's `mode = "0604"`; a directory a messenger creates gets the
/// mode with `x` where `r` is, so the reader can reach the files.
#[test]
fn delivered_files_have_the_policys_mode_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let (files, queue) = (dir.path().join("files"), dir.path().join("queue"));
    let outputs = format!(
        "[[outputs]]\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"{}\"\n\
         [[outputs]]\nformat = \"apel-energy\"\n[outputs.messenger]\ntype = \"ssm\"\nqueue = \"{}\"\nmode = \"0604\"\n",
        files.display(),
        queue.display()
    );
    let policy = delivery_policy(dir.path(), &site.prometheus.url, &outputs);
    let run = command();
    let out = std::process::Command::new("sh")
        .args(["-c", "umask 077 && exec \"$@\"", "sh"])
        .arg(run.get_program())
        .envs(run.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .args(["extract", "--policy"])
        .arg(&policy)
        .args(["--now", &secs(T0 + 3 * HOUR + 5 * MIN)])
        .output()
        .unwrap();
    ok(&out);
    let mode = |path: &Path| {
        let bits = std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        format!("{bits:04o}")
    };
    let entries = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect()
    };
    assert_eq!(
        mode(&files),
        "0750",
        "the file messenger made its directory"
    );
    let delivered = entries(&files);
    assert!(!delivered.is_empty());
    for file in &delivered {
        assert_eq!(mode(file), "0640", "{}", file.display());
    }
    let minutes = entries(&queue);
    assert!(!minutes.is_empty());
    for minute in &minutes {
        assert_eq!(mode(minute), "0705", "{}", minute.display());
        for message in entries(minute) {
            assert_eq!(mode(&message), "0604", "{}", message.display());
        }
    }
}

/// `spool list` is a table: each column starts where its heading does, on
/// every line, whatever the widths of the outputs' names and messengers.
#[test]
fn spool_list_columns_are_aligned() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "not a directory").unwrap();
    let outputs = format!(
        "[[outputs]]\nname = \"records\"\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"{blocked}\"\n\
         [[outputs]]\nname = \"an-archive-with-a-long-name\"\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"{blocked}/x\"\n",
        blocked = blocked.display()
    );
    let policy = delivery_policy(dir.path(), &site.prometheus.url, &outputs);
    let out = run(&policy, T0 + 4 * HOUR + 5 * MIN, None);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command()
        .args(["spool", "list", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    ok(&out);
    let listed = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines.len() >= 3, "a heading and two outputs: {listed}");
    // Where each heading starts (headings are two or more spaces apart).
    let heading = lines[0];
    let starts: Vec<usize> = heading
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || heading[..i].ends_with("  ")))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 7, "{heading}");
    for line in &lines[1..] {
        let chars: Vec<char> = line.chars().collect();
        for &at in &starts[1..] {
            assert!(
                chars.get(at - 1) == Some(&' ') && chars.get(at).is_some_and(|c| *c != ' '),
                "a column of this line does not start at {at}, under its heading:\n{listed}"
            );
        }
    }
}

/// A window spooled while an output's messenger was wrong is delivered by the
/// next run with the messenger the policy gives that output now; a run that
/// delivers a window from the spool does not render it again (`--from/--to`
/// included); an output removed from the policy keeps its payloads spooled
/// and says how to drop them; `spool list` shows them and `spool drop --yes`
/// removes only the window named, and lastrun moves on.
#[test]
fn spooled_payloads_go_by_output_name_with_the_current_messenger() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "not a directory").unwrap();
    let files = dir.path().join("files");
    let outputs = |directory: &Path| {
        format!(
            "[[outputs]]\nname = \"records\"\nformat = \"jsonl\"\n[outputs.messenger]\ntype = \"file\"\ndirectory = \"{}\"\n",
            directory.display()
        )
    };
    let policy = delivery_policy(dir.path(), &site.prometheus.url, &outputs(&blocked));
    let now = T0 + 3 * HOUR + 5 * MIN;
    let out = run(&policy, now, None);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lastrun(dir.path()), T0 + 2 * HOUR, "lastrun waits");

    // `spool list` shows the window, its output and the messenger it will use.
    let list = |policy: &Path| {
        let out = command()
            .args(["spool", "list", "--policy"])
            .arg(policy)
            .output()
            .unwrap();
        ok(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = list(&policy);
    assert!(
        listed.contains("2025-06-01T02:00:00.000Z")
            && listed.contains("records  0/1")
            && listed.contains(&format!("file {}", blocked.display())),
        "{listed}"
    );

    // The policy is fixed: the spooled window goes to the new directory, and
    // an explicit run of the same window in the same run is not rendered again.
    let policy = delivery_policy(dir.path(), &site.prometheus.url, &outputs(&files));
    let out = command()
        .args(["extract", "--policy"])
        .arg(&policy)
        .args(["--from", &secs(T0 + 2 * HOUR), "--to", &secs(T0 + 3 * HOUR)])
        .args(["--now", &secs(now)])
        .output()
        .unwrap();
    ok(&out);
    let (got, ids) = file_receipts(&files);
    let first: Vec<(String, i64)> = expected(&site)
        .into_iter()
        .filter(|(_, start)| *start == T0 + 2 * HOUR)
        .collect();
    assert_eq!(got, first);
    assert!(ids.values().all(|n| *n == 1), "each record once: {ids:?}");
    assert_eq!(
        lastrun(dir.path()),
        T0 + 3 * HOUR,
        "the tracked copy was delivered"
    );

    // A window spooled for output `records`, which is then renamed: its
    // payloads wait, the error says how to drop them, the new window goes.
    let policy = delivery_policy(dir.path(), &site.prometheus.url, &outputs(&blocked));
    let out = run(&policy, T0 + 4 * HOUR + 5 * MIN, None);
    assert_eq!(out.status.code(), Some(5));
    let policy = delivery_policy(
        dir.path(),
        &site.prometheus.url,
        &outputs(&files).replace("name = \"records\"", "name = \"energy\""),
    );
    let out = run(&policy, T0 + 5 * HOUR + 5 * MIN, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("output `records`"), "{stderr}");
    assert!(
        stderr.contains("is no longer in the policy") && stderr.contains("wattson spool drop"),
        "{stderr}"
    );
    assert_eq!(lastrun(dir.path()), T0 + 3 * HOUR);
    assert!(list(&policy).contains("(no longer in the policy)"));

    // Dropping needs --yes, touches only the window named, and lastrun moves on.
    let drop = |yes: bool| {
        let mut cmd = command();
        cmd.args(["spool", "drop", "--policy"])
            .arg(&policy)
            .args(["--window", &secs(T0 + 3 * HOUR)]);
        if yes {
            cmd.arg("--yes");
        }
        cmd.output().unwrap()
    };
    let out = drop(false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --yes"));
    let out = drop(true);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped 2025-06-01T03:00:00.000Z"));
    assert_eq!(
        lastrun(dir.path()),
        T0 + 5 * HOUR,
        "the windows after it were delivered"
    );
    assert!(list(&policy).contains("nothing spooled"));
}

/// A window of 25,000 VMs renders in chunks of 10,000 records, several at
/// once: what reaches the messengers is still chunk by chunk in uuid order,
/// every output's payload of a chunk in policy order, each record exact.
#[test]
fn a_large_window_goes_out_chunk_by_chunk_in_uuid_order() {
    use super::data::Rng;
    const VMS: usize = 25_000;
    let (start, end) = (T0 + HOUR, T0 + 2 * HOUR);
    let mut rng = Rng::new(7);
    let series: Vec<TestSeries> = (0..VMS)
        .map(|i| {
            let uuid = format!(
                "{:08x}-{:04x}-4000-8000-{i:012x}",
                (rng.next_f64() * f64::from(u32::MAX)) as u32,
                i % 0xffff
            );
            // One scrape before the window, two inside it off its edges;
            // every seventh VM restarted (its counter reset) in between.
            let first = 1000.0 + rng.next_f64() * 1e6;
            let middle = if i % 7 == 0 {
                rng.next_f64() * 500.0
            } else {
                first + rng.next_f64() * 4e5
            };
            let last = middle + rng.next_f64() * 4e5;
            TestSeries {
                labels: vec![
                    ("uuid".into(), uuid),
                    ("project_id".into(), format!("p{}", i % 5)),
                ],
                samples: vec![
                    (start - 13_000 - (i % 17) as i64 * 1000, first),
                    (start + 30 * MIN + 7_000, middle),
                    (end - 11_000 - (i % 13) as i64 * 1000, last),
                ],
            }
        })
        .collect();
    let mut expected: Vec<(String, f64)> = series
        .iter()
        .map(|s| {
            (
                s.labels[0].1.clone(),
                c1(&s.samples, start, end).expect("samples in the window"),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = delivery_policy(
        dir.path(),
        &prometheus.url,
        "[[outputs]]\nformat = \"jsonl\"\n\n[[outputs]]\nformat = \"csv\"\n",
    );
    let out = super::wattson::dry_run(&policy, &prometheus.url, start, end)
        .output()
        .expect("run wattson");
    ok(&out);
    let stdout = String::from_utf8(out.stdout).expect("utf-8");

    // Runs of jsonl lines and csv payloads (each opens with its header), in order.
    let mut blocks: Vec<(&str, usize)> = Vec::new();
    let (mut jsonl, mut csv) = (Vec::new(), Vec::new());
    for line in stdout.lines() {
        let kind = if line.starts_with('{') {
            "jsonl"
        } else {
            "csv"
        };
        if line.starts_with("id,site,") || blocks.last().is_none_or(|b| b.0 != kind) {
            blocks.push((kind, 0));
        }
        if let Some(block) = blocks.last_mut() {
            block.1 += 1;
        }
        if kind == "jsonl" {
            let r: serde_json::Value = serde_json::from_str(line).expect("a jsonl record");
            jsonl.push((
                r["vm_uuid"].as_str().unwrap_or_default().to_owned(),
                r["energy_joules"].as_f64().unwrap_or(f64::NAN),
            ));
        } else if !line.starts_with("id,site,") {
            csv.push(line.split(',').nth(4).unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        blocks,
        [
            ("jsonl", 10_000),
            ("csv", 10_001),
            ("jsonl", 10_000),
            ("csv", 10_001),
            ("jsonl", 5_000),
            ("csv", 5_001),
        ]
    );
    assert_eq!(jsonl.len(), VMS);
    for ((uuid, joules), (want_uuid, want)) in jsonl.iter().zip(&expected) {
        assert_eq!(uuid, want_uuid);
        assert!(
            (joules - want).abs() <= 1e-9 * want.abs(),
            "{uuid}: {joules} != {want}"
        );
    }
    let uuids: Vec<&String> = expected.iter().map(|(u, _)| u).collect();
    assert_eq!(csv.iter().collect::<Vec<_>>(), uuids);
}

/// A lastrun after now (the clock stepped back, or `--now` earlier than the
/// last run) is refused with a clear message, exit 2, and nothing changes;
/// at a later now the runs go on where they were.
#[test]
fn a_lastrun_in_the_future_is_refused_and_changes_nothing() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let policy = policy(dir.path(), &site.prometheus.url, &files);
    ok(&run(&policy, T0 + 3 * HOUR, None));
    let before = snapshot(dir.path());
    let out = run(&policy, T0 + HOUR, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("after now") && stderr.contains("the clock stepped back"),
        "{stderr}"
    );
    assert_eq!(snapshot(dir.path()), before, "nothing written");
    ok(&run(&policy, T0 + 4 * HOUR, None));
}

/// A size-limited tmpfs mounted for a test (root only), unmounted on drop.
pub(super) struct Tmpfs(pub(super) PathBuf);

impl Tmpfs {
    /// Mounts one of `size` (e.g. `256k`) at `at`; none when not root (a
    /// message says the test was skipped; under `CI` it fails instead).
    pub(super) fn mount(at: &Path, size: &str) -> Option<Self> {
        let uid = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            assert!(
                std::env::var_os("CI").is_none(),
                "the disk-full tests need root"
            );
            eprintln!("skipped: the disk-full tests mount a tmpfs, which needs root");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        Some(Self(at.to_owned()))
    }

    /// Fills it up with one file; returns that file.
    /// Remounts it read-only (`true`) or writable again.
    pub(super) fn read_only(&self, ro: bool) {
        let status = std::process::Command::new("mount")
            .args(["-o", if ro { "remount,ro" } else { "remount,rw" }])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {}", self.0.display());
    }

    pub(super) fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk, then a read-only one, under the file messenger and under
/// the state directory (spool, lastrun): each run fails with a message
/// naming the path and why (exit 5 for delivery, 1 for state), the previous
/// lastrun stays whole, and once space returns (or the disk is writable) the
/// next run delivers every record exactly once.
#[test]
fn a_full_disk_fails_clearly_and_then_delivers_each_record_once() {
    let site = site();
    let want = expected(&site);
    for (full, read_only) in [
        ("files", false),
        ("state", false),
        ("files", true),
        ("state", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let policy = policy(dir.path(), &site.prometheus.url, &files);
        let Some(tmpfs) = Tmpfs::mount(&dir.path().join(full), "512k") else {
            return;
        };
        ok(&run(&policy, T0 + 3 * HOUR + 5 * MIN, None));
        let before = std::fs::read(dir.path().join("state/site/lastrun")).unwrap();
        let filler = tmpfs.fill();
        if read_only {
            std::fs::remove_file(&filler).unwrap();
            tmpfs.read_only(true);
        }
        let out = run(&policy, T0 + 8 * HOUR + 30 * MIN, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = if full == "files" { 5 } else { 1 };
        assert_eq!(out.status.code(), Some(code), "{full}: {stderr}");
        let why = if read_only {
            "Read-only file system"
        } else {
            "No space left on device"
        };
        assert!(
            stderr.contains(&tmpfs.0.display().to_string()) && stderr.contains(why),
            "{full}: {stderr}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("state/site/lastrun")).unwrap(),
            before,
            "{full}: the previous lastrun is whole"
        );
        if read_only {
            tmpfs.read_only(false);
        } else {
            std::fs::remove_file(filler).unwrap();
        }
        ok(&run(&policy, T0 + 8 * HOUR + 30 * MIN, None));
        let (file_keys, ids) = file_receipts(&files);
        assert_eq!(file_keys, want, "{full}: every record exactly once");
        assert!(ids.values().all(|&n| n == 1), "{full}: record ids unique");
        assert_eq!(ssm_receipts(&dir.path().join("ssm")), want, "{full}: ssm");
        assert_eq!(lastrun(dir.path()), T0 + 8 * HOUR, "{full}: lastrun");
    }
}
