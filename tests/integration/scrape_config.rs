//! `wattson scrape-config`: the output, embedded in a minimal
//! `prometheus.yml`, passes `promtool check config`, and a real Prometheus
//! started with it scrapes a test exporter (which asks for the bearer token)
//! and labels its series with `host_id`.

use std::process::Command;

use super::http::serve;
use super::prometheus::Prometheus;
use super::support::ok;
use super::wattson::command;

const TOKEN: &str = "scrape-me";

/// A `/metrics` endpoint answering 401 without the bearer token.
fn exporter() -> String {
    let url = serve(|request| {
        let authorized = request
            .authorization
            .is_some_and(|a| a.ends_with(&format!("Bearer {TOKEN}")));
        if authorized {
            let body = "# TYPE wattson_vm_energy_joules_total counter\nwattson_vm_energy_joules_total{uuid=\"u1\"} 42\n";
            (200, "text/plain; version=0.0.4", body.as_bytes().to_vec())
        } else {
            (401, "application/json", b"{}".to_vec())
        }
    });
    url.trim_start_matches("http://").to_owned()
}

#[test]
fn the_generated_config_passes_promtool_and_prometheus_scrapes_with_host_id() {
    let dir = tempfile::tempdir().unwrap();
    let address = exporter();
    let hosts = dir.path().join("hosts.txt");
    // Host 7 is the test exporter; host 2 is down (its `up` is 0).
    std::fs::write(
        &hosts,
        format!("# host_id name[:port]\n7 {address}\n2 127.0.0.1:9\n"),
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let out = command()
        .args(["scrape-config", "--hosts"])
        .arg(&hosts)
        .arg("--token-file")
        .arg(&token)
        .output()
        .unwrap();
    ok(&out);
    let yaml = String::from_utf8(out.stdout).unwrap();

    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, Prometheus::config("1s", &yaml)).unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}\n{yaml}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let prometheus = Prometheus::with_scrape_configs("1s", &yaml);
    let series = prometheus.wait_for("wattson_vm_energy_joules_total", 1);
    assert_eq!(series[0].0["host_id"], "7", "{series:?}");
    assert_eq!(series[0].0["job"], "wattson");
    assert_eq!(series[0].1, 42.0);
    let down = prometheus.wait_for("up{host_id=\"2\"} == 0", 1);
    assert_eq!(down[0].0["instance"], "127.0.0.1:9");

    // OpenNebula's host list, for Scaphandre: the default port 8080.
    let xml = dir.path().join("hosts.xml");
    std::fs::write(
        &xml,
        "<HOST_POOL><HOST><ID>4</ID><NAME>kvm-04</NAME><STATE>2</STATE></HOST></HOST_POOL>",
    )
    .unwrap();
    let out = command()
        .args(["scrape-config", "--target", "scaphandre", "--one-xml"])
        .arg(&xml)
        .output()
        .unwrap();
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(
        yaml.contains("- job_name: 'scaphandre'")
            && yaml.contains("['kvm-04:8080']")
            && yaml.contains("host_id: '4'")
            && !yaml.contains("authorization"),
        "{yaml}"
    );

    // A bad line is named with its file and line.
    std::fs::write(&hosts, "7 kvm-07\nkvm-08\n").unwrap();
    let out = command()
        .args(["scrape-config", "--hosts"])
        .arg(&hosts)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hosts.txt:2: \"kvm-08\""), "{stderr}");
}

/// `wattson scrape-config --hosts FILE` and its output.
fn scrape_config(args: &[&str], file: &std::path::Path) -> std::process::Output {
    command()
        .arg("scrape-config")
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

/// Two hosts with one id would have their series told apart by nothing:
/// refused, naming both lines, in a host list and in `onehost list -x`.
#[test]
fn a_duplicate_host_id_is_refused_naming_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "# id name\n7 kvm-07\n8 kvm-08\n\n7 kvm-17:9100\n").unwrap();
    let out = scrape_config(&["--hosts"], &hosts);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no configuration is printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hosts.txt:5: host id \"7\" is also the id of the host on line 2"),
        "{stderr}"
    );

    let xml = dir.path().join("hosts.xml");
    std::fs::write(
        &xml,
        "<HOST_POOL>\n<HOST><ID>3</ID><NAME>kvm-a</NAME></HOST>\n<HOST><ID>4</ID><NAME>kvm-b</NAME></HOST>\n<HOST><ID>3</ID><NAME>kvm-c</NAME></HOST>\n</HOST_POOL>\n",
    )
    .unwrap();
    let out = scrape_config(&["--one-xml"], &xml);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hosts.xml:4: host id \"3\" is also the id of the host on line 2"),
        "{stderr}"
    );
}

/// IPv6 hosts, bare or in brackets, with or without a port, become
/// `[address]:port` targets that `promtool check config` accepts; an
/// unbracketed IPv6 address with a port is refused with the way to write it.
#[test]
fn ipv6_hosts_become_bracketed_targets_with_their_ports() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(
        &hosts,
        "2 2001:db8::2\n5 [2001:db8::5]\n6 [2001:db8::6]:9100\n7 kvm-07:9999\n8 ::1\n",
    )
    .unwrap();
    let out = scrape_config(&["--hosts"], &hosts);
    ok(&out);
    let yaml = String::from_utf8(out.stdout).unwrap();
    for target in [
        "['[2001:db8::2]:9847']",
        "['[2001:db8::5]:9847']",
        "['[2001:db8::6]:9100']",
        "['kvm-07:9999']",
        "['[::1]:9847']",
    ] {
        assert!(yaml.contains(target), "{target} in\n{yaml}");
    }
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, Prometheus::config("1s", &yaml)).unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}\n{yaml}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // OpenNebula may name a host by its address, bracketed or not.
    let xml = dir.path().join("hosts.xml");
    std::fs::write(
        &xml,
        "<HOST_POOL><HOST><ID>1</ID><NAME>fd00::1</NAME></HOST><HOST><ID>2</ID><NAME>[fd00::2]</NAME></HOST></HOST_POOL>",
    )
    .unwrap();
    let out = scrape_config(&["--target", "node", "--one-xml"], &xml);
    ok(&out);
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(
        yaml.contains("['[fd00::1]:9100']") && yaml.contains("['[fd00::2]:9100']"),
        "{yaml}"
    );

    for (line, said) in [
        ("3 2001:db8::3:9100x", "write it in brackets"),
        ("3 [2001:db8::3]9100", "expected `[ipv6]:port`"),
        ("3 [kvm-03]:9100", "brackets hold an IPv6 address"),
        ("3 [2001:db8::3]:http", "\"http\" is not a port"),
    ] {
        std::fs::write(&hosts, format!("{line}\n")).unwrap();
        let out = scrape_config(&["--hosts"], &hosts);
        assert_eq!(out.status.code(), Some(2), "{line}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("hosts.txt:1: ") && stderr.contains(said),
            "{line}: {stderr}"
        );
    }
}
