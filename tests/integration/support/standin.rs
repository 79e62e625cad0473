//! A stand-in for a cloud's API (`tests/standins/*.py`), started on a free
//! port with its fixture and a faults file the test can change mid-run, and
//! the real client library that proves it faithful (`tests/standins/install.sh`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fixture of `tests/fixtures/`, as JSON.
pub fn fixture(name: &str) -> Value {
    let path = repo().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the fixture is JSON")
}

/// A running stand-in; killed when dropped.
pub struct StandIn {
    child: Child,
    /// Where it answers (what its `ready url=` line said).
    pub url: String,
    log: PathBuf,
    faults: PathBuf,
    _dir: tempfile::TempDir,
}

impl StandIn {
    /// Starts `tests/standins/<script>` on the fixture `tests/fixtures/<data>`.
    pub fn start(script: &str, data: &str) -> Self {
        Self::start_with(script, data, &[])
    }

    /// [`StandIn::start`] with more arguments for the script (`--tls CERT KEY`).
    pub fn start_with(script: &str, data: &str, args: &[&std::ffi::OsStr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (log, faults) = (
            dir.path().join("requests.jsonl"),
            dir.path().join("faults.json"),
        );
        std::fs::write(&faults, "{}").unwrap();
        let mut child = Command::new("python3")
            .arg(repo().join("tests/standins").join(script))
            .args(["--port", "0", "--data"])
            .arg(repo().join("tests/fixtures").join(data))
            .arg("--faults")
            .arg(&faults)
            .args(args)
            .env("STANDIN_LOG", &log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("ready url=")
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"))
            .to_owned();
        Self {
            child,
            url,
            log,
            faults,
            _dir: dir,
        }
    }

    /// Replaces the faults it serves with (read at every request).
    pub fn faults(&self, faults: Value) {
        std::fs::write(&self.faults, faults.to_string()).unwrap();
    }

    /// The requests logged so far (never a secret).
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python with the real client libraries (`tests/standins/install.sh`,
/// which `scripts/setup.sh` runs); under `CI` their absence fails the test.
pub fn client_python() -> Option<PathBuf> {
    let python = repo().join("target/standins-venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    let install = "bash tests/standins/install.sh (scripts/setup.sh runs it)";
    assert!(
        std::env::var_os("CI").is_none(),
        "the stand-ins' client libraries are missing: {install}"
    );
    eprintln!("skipped: the stand-ins' client libraries are missing: {install}");
    None
}

/// Runs `tests/standins/<check>` with the client libraries against `url`;
/// asserts it printed `ok …`.
pub fn check_with_client(check: &str, url: &str) {
    let Some(python) = client_python() else {
        return;
    };
    let out = Command::new(python)
        .arg(repo().join("tests/standins").join(check))
        .arg(url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "{check}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `wattson --log trace extract --dry-run --policy POLICY` of `[from_ms,
/// to_ms]` against `prometheus`, with the cloud's secret in the environment
/// (`secret`: variable, value) and `extra` arguments; traced, so a test can
/// look for the secret in everything it logged.
pub fn extract_traced(
    policy: &Path,
    prometheus: &str,
    (from_ms, to_ms): (i64, i64),
    secret: (&str, &str),
    extra: &[&str],
) -> std::process::Output {
    super::super::wattson::command()
        .args(["--log", "trace", "extract", "--dry-run", "--policy"])
        .arg(policy)
        .args(["--prometheus", prometheus])
        .args([
            "--from",
            &super::super::wattson::secs(from_ms),
            "--to",
            &super::super::wattson::secs(to_ms),
        ])
        .args(extra)
        .env(secret.0, secret.1)
        .output()
        .unwrap()
}
