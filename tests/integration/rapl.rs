//! RAPL from a powercap fixture tree with the real layout: zones nested under
//! `devices/virtual/powercap/intel-rapl/`, each also a top-level symlink in
//! `class/powercap/`; two packages (one with its power limit disabled), a dram
//! zone each, a core zone that must not be added, and a wraparound.

use std::os::unix::fs::symlink;
use std::path::Path;

use wattson::sources::rapl::{discover, host_zones, joules_between, sample};

const RANGE: u64 = 262_143_328_850;

fn zone(dir: &Path, name: &str, energy_uj: u64, enabled: u8) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
    std::fs::write(dir.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    std::fs::write(dir.join("max_energy_range_uj"), format!("{RANGE}\n")).unwrap();
    std::fs::write(dir.join("enabled"), format!("{enabled}\n")).unwrap();
}

#[test]
fn package_and_dram_once_each_wrap_aware() {
    let tmp = tempfile::tempdir().unwrap();
    let devices = tmp.path().join("devices/virtual/powercap/intel-rapl");
    std::fs::create_dir_all(&devices).unwrap();
    std::fs::write(devices.join("enabled"), "1\n").unwrap();
    let zones = [
        ("intel-rapl:0", "package-0", 1_000_000_000, 1),
        ("intel-rapl:0/intel-rapl:0:0", "core", 600_000_000, 1),
        ("intel-rapl:0/intel-rapl:0:1", "dram", 50_000_000, 1),
        ("intel-rapl:1", "package-1", RANGE - 3_000_000, 0),
        ("intel-rapl:1/intel-rapl:1:0", "dram", 70_000_000, 1),
    ];
    let class = tmp.path().join("class/powercap");
    std::fs::create_dir_all(&class).unwrap();
    symlink(&devices, class.join("intel-rapl")).unwrap();
    for (rel, name, energy, enabled) in zones {
        let dir = devices.join(rel);
        zone(&dir, name, energy, enabled);
        let top = rel.rsplit('/').next().unwrap();
        symlink(&dir, class.join(top)).unwrap();
    }

    let all = discover(&class).unwrap();
    assert_eq!(
        all.len(),
        5,
        "each zone once, though reachable twice: {all:?}"
    );
    let host = host_zones(&all);
    let mut names: Vec<&str> = host.iter().map(|z| z.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["dram", "dram", "package-0", "package-1"],
        "core is inside the package"
    );

    let before = sample(&host).unwrap();
    // 12 J, 7 J on package-0 / its dram; package-1 wraps: 3 J to the top + 5 J after; 2 J on its dram.
    let bump = |rel: &str, value: u64| {
        std::fs::write(devices.join(rel).join("energy_uj"), format!("{value}\n")).unwrap();
    };
    bump("intel-rapl:0", 1_012_000_000);
    bump("intel-rapl:0/intel-rapl:0:0", 611_000_000);
    bump("intel-rapl:0/intel-rapl:0:1", 57_000_000);
    bump("intel-rapl:1", 5_000_000);
    bump("intel-rapl:1/intel-rapl:1:0", 72_000_000);
    let after = sample(&host).unwrap();
    let joules = joules_between(&host, &before, &after);
    assert!(
        (joules - (12.0 + 7.0 + 8.0 + 2.0)).abs() < 1e-9,
        "{joules} J"
    );
}

#[test]
fn an_empty_tree_says_what_to_check() {
    let tmp = tempfile::tempdir().unwrap();
    let err = discover(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("no RAPL zones") && err.contains("intel_rapl"),
        "{err}"
    );
}
