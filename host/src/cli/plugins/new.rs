//! `wattson plugins new`: a Rust plugin crate, outside this repository, that
//! builds for `wasm32-wasip2` against the SDK by path and passes
//! `wattson plugins test` on the fixture it comes with, untouched.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::super::{EXIT_CONFIG, Failure};
use crate::runtime::{
    AttributionInput, EnergyRecord, Measured, Placement, Quality, Reading, RecordQuality, Status,
    Vm, Window,
};

/// The kind of plugin to scaffold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// An attribution model (world `attribution-model`).
    Model,
    /// An output format (world `output-format`).
    Format,
}

/// The SDK this binary was built with (its source tree's `plugins/sdk`).
const BUILT_WITH_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// The SDK the Debian package installs (`scripts/package-deb.sh`).
const INSTALLED_SDK: &str = "/usr/share/wattson/sdk";

/// 2025-06-01T00:00:00Z, the fixtures' window start.
const T0: i64 = 1_748_736_000_000;

/// Writes the crate; returns its directory.
pub fn scaffold(
    name: &str,
    kind: Kind,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> Result<PathBuf, Failure> {
    let config = |e: anyhow::Error| Failure::new(EXIT_CONFIG, e);
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(config(anyhow::anyhow!(
            "plugin name {name:?}: use lower-case letters, digits and `-`, starting with a letter (e.g. `site-share`)"
        )));
    }
    // Given, else the source tree's, else the installed package's.
    let sdk = sdk.unwrap_or_else(|| {
        [BUILT_WITH_SDK, INSTALLED_SDK]
            .into_iter()
            .map(Path::new)
            .find(|p| p.join("Cargo.toml").is_file())
            .unwrap_or(Path::new(INSTALLED_SDK))
    });
    let sdk = sdk.canonicalize().map_err(|e| {
        config(anyhow::anyhow!(
            "the plugin SDK is not at {} ({e}): pass --sdk DIR, the `wattson-plugin` crate (plugins/sdk in wattson's source, /usr/share/wattson/sdk from the Debian package)",
            sdk.display()
        ))
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        return Err(config(anyhow::anyhow!(
            "{} has no Cargo.toml: --sdk must name the `wattson-plugin` crate (plugins/sdk in wattson's source, /usr/share/wattson/sdk from the Debian package)",
            sdk.display()
        )));
    }
    let mut root = dir.unwrap_or(Path::new(".")).join(name);
    if root.exists() && root.read_dir().map_or(true, |mut d| d.next().is_some()) {
        return Err(config(anyhow::anyhow!(
            "{} exists and is not empty: choose another name or --dir",
            root.display()
        )));
    }
    std::fs::create_dir_all(&root)
        .and_then(|()| root.canonicalize())
        .map(|canonical| root = canonical)
        .with_context(|| format!("cannot create {}", root.display()))
        .map_err(|e| Failure::new(1, e))?;
    let crate_name = name.replace('-', "_");
    let (kind_name, source, fixture, fixture_text, policy) = match kind {
        Kind::Model => (
            "model",
            include_str!("templates/model.rs.tmpl"),
            serde_json::to_string_pretty(&model_fixture()),
            "one window's attribution input (what the host measured for the model)",
            format!(
                "[model]\nplugin = \"{}\"\nsha256 = \"…\"",
                root.join(format!("target/wasm32-wasip2/release/{crate_name}.wasm"))
                    .display()
            ),
        ),
        Kind::Format => (
            "format",
            include_str!("templates/format.rs.tmpl"),
            serde_json::to_string_pretty(&format_fixture()),
            "a list of energy records (what the host hands a format)",
            format!(
                "[[outputs]]\nformat = \"{}\"",
                root.join(format!("target/wasm32-wasip2/release/{crate_name}.wasm"))
                    .display()
            ),
        ),
    };
    let fixture = fixture.map_err(|e| Failure::new(1, e))?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{kind}}", kind_name)
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{fixture}}", fixture_text)
            .replace("{{policy}}", &policy)
    };
    let files = [
        (
            "Cargo.toml",
            fill(include_str!("templates/Cargo.toml.tmpl")),
        ),
        (
            ".cargo/config.toml",
            include_str!("templates/cargo-config.toml.tmpl").to_owned(),
        ),
        ("src/lib.rs", fill(source)),
        ("fixture.json", fixture + "\n"),
        ("README.md", fill(include_str!("templates/README.md.tmpl"))),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (file, text) in files {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))
                .map_err(|e| Failure::new(1, e))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(|e| Failure::new(1, e))?;
    }
    // The lock of the SDK's workspace (a source tree) or of the packaged
    // SDK (installed): versions of its dependencies known to build.
    if let Some(lock) = [
        sdk.parent().map(|p| p.join("Cargo.lock")),
        Some(sdk.join("Cargo.lock")),
    ]
    .into_iter()
    .flatten()
    .find(|l| l.is_file())
    {
        std::fs::copy(&lock, root.join("Cargo.lock"))
            .with_context(|| format!("cannot copy {}", lock.display()))
            .map_err(|e| Failure::new(1, e))?;
    }
    Ok(root)
}

/// One hour on one host: two VMs with a joules counter each (`energy`, what
/// the model template declares).
fn model_fixture() -> AttributionInput {
    let vm = |uuid: &str, vcpus| Vm {
        uuid: uuid.to_owned(),
        vcpus: Some(vcpus),
        memory_mb: Some(4096),
    };
    let reading = |joules| {
        Some(Reading {
            value: joules,
            span_s: 3585.0,
            covered_s: 3585.0,
        })
    };
    let placement = |vm| Placement {
        vm,
        host: Some(0),
        presence_s: 3600.0,
        cpu_s: None,
        assigned: true,
    };
    AttributionInput {
        window: Window {
            start_ms: T0,
            end_ms: T0 + 3_600_000,
        },
        vms: vec![
            vm("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1001", 2),
            vm("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1002", 4),
        ],
        details: Vec::new(),
        hosts: vec!["cmp-01".to_owned()],
        placements: vec![placement(0), placement(1)],
        measurements: vec![Measured {
            name: "energy".to_owned(),
            vms: vec![reading(151_200.0), reading(424_800.0)],
            hosts: vec![None],
            placements: vec![reading(151_200.0), reading(424_800.0)],
        }],
        gpus: Vec::new(),
    }
}

/// Two records of one window, as the host builds them.
fn format_fixture() -> Vec<EnergyRecord> {
    let record = |n: u32, uuid: &str, joules: f64| EnergyRecord {
        id: format!("9f0e2a6e-0000-5000-8000-00000000000{n}"),
        site: "MY-SITE".to_owned(),
        cloud_type: "OpenStack".to_owned(),
        compute_service: "https://keystone.example.org:5000/v3".to_owned(),
        vm_uuid: uuid.to_owned(),
        vm_name: Some(format!("vm-{n}")),
        project_id: Some("a1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned()),
        project_name: Some("astro".to_owned()),
        user_id: None,
        user_name: None,
        user_dn: None,
        fqan: Some("vo.example.org".to_owned()),
        host: Some("cmp-01".to_owned()),
        flavor: Some("m1.large".to_owned()),
        start_ms: T0,
        end_ms: T0 + 3_600_000,
        joules,
        wall_s: 3600.0,
        cpu_s: Some(5400.0),
        vcpus: Some(4),
        memory_mb: Some(8192),
        status: Status::Running,
        quality: RecordQuality {
            kind: Quality::Measured,
            meters: vec!["counter:libvirt_domain_info_energy_consumption_joules_total".to_owned()],
            covered_s: None,
        },
        pue: Some(1.3),
        ci_g: Some(210.0),
        cfp_g: Some(joules / 3.6e6 * 1.3 * 210.0),
        ci_covered_s: None,
        model: "libvirt-joules".to_owned(),
        model_version: "0.1.0".to_owned(),
        gpu_j: None,
        embodied_g: None,
        embodied_source: None,
    };
    vec![
        record(1, "5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1001", 151_200.0),
        record(2, "5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1002", 424_800.0),
    ]
}
