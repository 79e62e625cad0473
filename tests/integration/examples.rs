//! The operator files under `examples/`: Prometheus accepts the scrape job
//! and the alert rules, the Grafana dashboard and the rules name only series
//! the daemon exports, and systemd accepts the units.

use std::path::{Path, PathBuf};
use std::process::Command;

use wattson::daemon::{MetricsFormat, Snapshot, render_metrics};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every `wattson_…` series name in `text`.
fn wattson_names(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"wattson_[a-z_]+").unwrap();
    let mut names: Vec<String> = re.find_iter(text).map(|m| m.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn prometheus_accepts_the_scrape_job_and_the_alert_rules_of_exported_series() {
    let dir = tempfile::tempdir().unwrap();
    let rules = examples().join("prometheus/wattson-rules.yml");
    std::fs::copy(&rules, dir.path().join("wattson-rules.yml")).unwrap();
    let job = std::fs::read_to_string(examples().join("prometheus/wattson.yml")).unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 15s\nrule_files: [wattson-rules.yml]\n{job}"),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = render_metrics(&Snapshot::default(), MetricsFormat::Text, 0);
    let dashboard =
        std::fs::read_to_string(examples().join("grafana/wattson-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert!(json["panels"].as_array().unwrap().len() >= 4);
    let text = dashboard + &std::fs::read_to_string(&rules).unwrap();
    for name in wattson_names(&text) {
        assert!(
            exported.contains(&format!("# TYPE {name} ")),
            "{name} is not a series the daemon exports"
        );
    }
}

#[test]
fn systemd_accepts_the_units() {
    let units = examples().join("systemd");
    let daemon = std::fs::read_to_string(units.join("wattson-daemon.service")).unwrap();
    for line in [
        "ExecStart=/usr/bin/wattson daemon --policy /etc/wattson/daemon.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=wattson",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/wattson",
        "NoNewPrivileges=yes",
    ] {
        assert!(daemon.lines().any(|l| l == line), "{line}");
    }
    let timer = std::fs::read_to_string(units.join("wattson-extract.timer")).unwrap();
    assert!(timer.contains("OnCalendar="));
    if !super::support::require_tool("systemd-analyze", "apt install systemd") {
        return;
    }
    // systemd checks that the binary exists: point the units at one that does.
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "wattson-daemon.service",
        "wattson-extract.service",
        "wattson-extract.timer",
    ] {
        let text = std::fs::read_to_string(units.join(name))
            .unwrap()
            .replace("/usr/bin/wattson", env!("CARGO_BIN_EXE_wattson"));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("wattson-daemon.service"))
        .arg(dir.path().join("wattson-extract.service"))
        .arg(dir.path().join("wattson-extract.timer"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn every_command_help_ends_with_examples_that_parse() {
    for command in [
        &["extract"][..],
        &["daemon"],
        &["inventory"],
        &["policy", "check"],
        &["plugins", "list"],
        &["plugins", "inspect"],
        &["spool", "list"],
        &["spool", "retry"],
        &["spool", "drop"],
    ] {
        let out = super::wattson::command()
            .args(command)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        let (_, examples) = help
            .split_once("Example")
            .unwrap_or_else(|| panic!("`wattson {}` --help has no examples", command.join(" ")));
        for line in examples
            .lines()
            .filter(|l| l.trim_start().starts_with("wattson "))
        {
            assert!(
                line.contains(&format!("wattson {}", command.join(" "))),
                "{command:?}: {line}"
            );
        }
    }
}
