//! The Debian package `scripts/package-deb.sh` builds with cargo-deb (from
//! the binary under test): what it installs (the plugin SDK and the WIT
//! among it, which a plugin builds against), its maintainer scripts, and
//! lintian without errors.

use std::path::Path;
use std::process::Command;

#[test]
fn the_deb_holds_the_binary_docs_units_and_makes_its_user() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("scripts/package-deb.sh"))
        // The binary `cargo test` built: no cargo build inside cargo test.
        .env("PROFILE", "dev")
        .env("NO_BUILD", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(said.lines())
        .find(|l| l.ends_with(".deb"))
        .map(|l| root.join(l.trim()))
        .unwrap_or_else(|| panic!("no .deb named: {said}"));
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in [
        "./usr/bin/wattson",
        "./usr/share/man/man1/wattson.1.gz",
        "./usr/share/man/man1/wattson-daemon.1.gz",
        "./usr/share/man/man1/wattson-extract.1.gz",
        "./usr/share/bash-completion/completions/wattson",
        "./usr/share/zsh/vendor-completions/_wattson",
        "./usr/share/fish/vendor_completions.d/wattson.fish",
        "./lib/systemd/system/wattson-daemon.service",
        "./lib/systemd/system/wattson-extract.service",
        "./lib/systemd/system/wattson-extract.timer",
        "./usr/share/doc/wattson/policies/daemon.toml",
        "./usr/share/doc/wattson/policies/from-daemon.toml",
        "./usr/share/doc/wattson/examples/prometheus/wattson-rules.yml",
        "./usr/share/doc/wattson/examples/grafana/wattson-dashboard.json",
        "./usr/share/doc/wattson/changelog.Debian.gz",
        "./usr/share/wattson/sdk/Cargo.toml",
        "./usr/share/wattson/sdk/src/lib.rs",
        "./usr/share/wattson/sdk/wit/since_v0.3.0/plugin.wit",
        "./usr/share/wattson/wit/since_v0.3.0/plugin.wit",
        "./usr/share/wattson/wit/since_v0.2.0/plugin.wit",
        "./usr/share/wattson/wit/since_v0.1.0/plugin.wit",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "{path} missing:\n{listing}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let control = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(control.success());
    let postinst = std::fs::read_to_string(dir.path().join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group --home /var/lib/wattson"));
    assert!(postinst.contains("install -d -o wattson -g wattson -m 0750 /var/lib/wattson"));
    let control = std::fs::read_to_string(dir.path().join("control")).unwrap();
    assert!(control.contains("libvirt0"), "{control}");

    // A plugin author with only the package: `plugins new` against the
    // installed SDK (a standalone crate, `cargo package`d) builds untouched.
    let installed = tempfile::tempdir().unwrap();
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(installed.path())
        .status()
        .unwrap();
    assert!(unpacked.success());
    let sdk = installed.path().join("usr/share/wattson/sdk");
    let work = tempfile::tempdir().unwrap();
    super::support::ok(
        &super::wattson::command()
            .args(["plugins", "new", "from-package", "--kind", "model", "--dir"])
            .arg(work.path())
            .arg("--sdk")
            .arg(&sdk)
            .output()
            .unwrap(),
    );
    let manifest = std::fs::read_to_string(work.path().join("from-package/Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&sdk.canonicalize().unwrap().display().to_string()),
        "{manifest}"
    );
    let build = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(work.path().join("from-package"))
        .env("CARGO_TARGET_DIR", root.join("target/scaffold"))
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo");
    assert!(build.success(), "a plugin builds against the packaged SDK");
    if !super::support::require_tool("lintian", "apt install lintian (scripts/setup.sh)") {
        return;
    }
    let lintian = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&lintian.stdout);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{report}");
}
