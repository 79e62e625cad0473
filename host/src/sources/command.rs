//! A local meter's command (`ipmitool dcmi power reading`, `nvidia-smi
//! --query-gpu=…`): run without a shell, killed after a timeout, its output
//! read whole.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a meter command may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `argv` (program and arguments) and returns what it printed. `key`
/// names the policy key that set it and `tool` what to install, for the
/// messages.
pub fn run(argv: &[String], key: &str, tool: &str) -> Result<String, String> {
    let shown = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err(format!("{key} is empty"));
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{shown}`: cannot run it: {e} (is {tool} installed?)"))?;
    // Read while it runs: a full pipe would block it past the timeout.
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{shown}` gave no answer in {} s: killed",
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("`{shown}`: {e}")),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        let said = if err.trim().is_empty() {
            out.trim()
        } else {
            err.trim()
        };
        return Err(format!("`{shown}` failed ({status}): {said}"));
    }
    Ok(out)
}
