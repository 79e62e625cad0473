//! Builds the WebAssembly guests the host embeds or tests against.
//!
//! Modelled on wasmtime's `crates/test-programs/artifacts/build.rs`: a nested
//! `cargo build --release --target wasm32-wasip2` compiles
//!
//! * every builtin plugin under `plugins/` (one invocation per plugin: the
//!   SDK's `model` and `format` features are exclusive, and one invocation
//!   for two plugins would unify them), and
//! * the test guests under `tests/guests/` (`misbehave`, the containment
//!   tests' model; `v0_1_model`, a model built against the frozen
//!   `wattson:plugin@0.1.0`; `v0_1_format`, a format built against it;
//!   `v0_2_model` and `v0_2_format`, the same for `wattson:plugin@0.2.0`),
//!
//! into `<workspace target dir>/guests`, a directory of its own so the nested
//! cargo never waits on the lock the outer build holds. It then writes
//! `$OUT_DIR/builtins.rs`, which the host `include!`s:
//!
//! ```ignore
//! pub static BUILTINS: &[Builtin] = &[Builtin { name: "caso-json", kind: PluginKind::Format, wasm: include_bytes!("…/caso_json.wasm") }, …];
//! ```
//!
//! and sets `WATTSON_TEST_GUEST_<NAME>` to the path of each test guest's
//! `.wasm` (`WATTSON_TEST_GUEST_MISBEHAVE`, `WATTSON_TEST_GUEST_V0_1_MODEL`).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The guests' target triple.
const TARGET: &str = "wasm32-wasip2";

/// Environment of the outer build that must not reach the nested one: flags
/// meant for the host target (`-C target-cpu=native`, sanitizers, …), the
/// target dir settings (`CARGO_TARGET_DIR` is set explicitly), and wrappers that only make sense for the
/// outer workspace (`cargo clippy` sets `RUSTC_WORKSPACE_WRAPPER`).
const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
];

/// Test guests under `tests/guests/`, each its own workspace; the crate name
/// is the directory name and the artifact's stem.
const TEST_GUESTS: &[&str] = &[
    "misbehave",
    "v0_1_format",
    "v0_1_model",
    "v0_2_format",
    "v0_2_model",
];

/// A builtin plugin crate found under `plugins/`.
struct Plugin {
    /// Package name, also the builtin's name (`caso-json`).
    name: String,
    /// `Model` or `Format`: the host's `PluginKind` variant.
    kind: &'static str,
    /// File stem of the built component (`caso_json`).
    artifact: String,
}

fn main() {
    let manifest_dir = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"),
    );
    let root = manifest_dir
        .parent()
        .expect("the host crate lives one level below the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let plugins_dir = root.join("plugins");
    let guests_dir = root.join("tests/guests");

    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=WATTSON_GUEST_TOOLCHAIN");
    rerun_if_changed(&root.join("wit/since_v0.1.0"));
    rerun_if_changed(&root.join("wit/since_v0.2.0"));
    rerun_if_changed(&root.join("wit/since_v0.3.0"));
    for file in ["Cargo.toml", "Cargo.lock", "sdk/Cargo.toml", "sdk/src"] {
        rerun_if_changed(&plugins_dir.join(file));
    }
    for guest in TEST_GUESTS {
        for file in ["Cargo.toml", "Cargo.lock", "src"] {
            rerun_if_changed(&guests_dir.join(guest).join(file));
        }
    }

    check_target_installed();

    let guests_target = workspace_target_dir(&root).join("guests");
    let artifacts = guests_target.join(TARGET).join("release");

    let plugins = find_plugins(&plugins_dir);
    for plugin in &plugins {
        cargo_build(&plugins_dir, &guests_target, Some(&plugin.name));
    }
    for guest in TEST_GUESTS {
        cargo_build(&guests_dir.join(guest), &guests_target, None);
    }

    let mut code = String::from(
        "/// Builtin plugins compiled from plugins/*, embedded in the binary.\n\
         pub static BUILTINS: &[Builtin] = &[\n",
    );
    for plugin in &plugins {
        let wasm = existing(artifacts.join(format!("{}.wasm", plugin.artifact)));
        writeln!(
            code,
            "    Builtin {{ name: {:?}, kind: PluginKind::{}, wasm: include_bytes!({:?}) }},",
            plugin.name,
            plugin.kind,
            path_str(&wasm),
        )
        .expect("writing to a String cannot fail");
    }
    code.push_str("];\n");
    let builtins = out_dir.join("builtins.rs");
    fs::write(&builtins, code).unwrap_or_else(|e| panic!("writing {}: {e}", builtins.display()));

    for guest in TEST_GUESTS {
        let wasm = existing(artifacts.join(format!("{guest}.wasm")));
        println!(
            "cargo:rustc-env=WATTSON_TEST_GUEST_{}={}",
            guest.to_uppercase(),
            path_str(&wasm)
        );
    }
}

/// The outer workspace's target dir: `CARGO_TARGET_DIR` (relative to the
/// workspace root when relative) or `<root>/target`. A `build.target-dir` set
/// in a cargo config file is not visible here; the guests then go to
/// `<root>/target/guests`, which is still separate from any profile dir.
fn workspace_target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Fails the build early, with the fix, when the guest target is missing.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut command = Command::new(&rustc);
    if let Some(toolchain) = guest_toolchain() {
        command = Command::new("rustc");
        command.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    let output = command
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|e| panic!("running `{} --print sysroot`: {e}", rustc.to_string_lossy()));
    assert!(
        output.status.success(),
        "`{} --print sysroot` failed: {}",
        rustc.to_string_lossy(),
        String::from_utf8_lossy(&output.stderr)
    );
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let target_lib = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib");
    assert!(
        target_lib.is_dir(),
        "the Rust target {TARGET} is not installed (no {}): the builtin plugins are \
         WebAssembly components built for it. Install it with `rustup target add {TARGET}`.",
        target_lib.display()
    );
}

/// `WATTSON_GUEST_TOOLCHAIN`: a rustup toolchain that builds the guests
/// instead of the one building the host (the fuzz targets build the host
/// with nightly, whose wasm32-wasip2 std may not be published).
fn guest_toolchain() -> Option<String> {
    env::var("WATTSON_GUEST_TOOLCHAIN")
        .ok()
        .filter(|t| !t.is_empty())
}

/// Every `plugins/<dir>/Cargo.toml` but the SDK's, with its
/// `[package.metadata.wattson] kind`, sorted by name.
fn find_plugins(plugins_dir: &Path) -> Vec<Plugin> {
    let entries = fs::read_dir(plugins_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", plugins_dir.display()));
    let mut plugins = Vec::new();
    for entry in entries {
        let dir = entry
            .unwrap_or_else(|e| panic!("reading {}: {e}", plugins_dir.display()))
            .path();
        let manifest_path = dir.join("Cargo.toml");
        if dir.file_name().is_some_and(|n| n == "sdk") || !manifest_path.is_file() {
            continue;
        }
        rerun_if_changed(&manifest_path);
        rerun_if_changed(&dir.join("src"));
        plugins.push(read_plugin(&manifest_path));
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    plugins
}

fn read_plugin(manifest_path: &Path) -> Plugin {
    let text = fs::read_to_string(manifest_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifest_path.display()));
    let manifest: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("parsing {}: {e}", manifest_path.display()));
    let package = manifest
        .get("package")
        .and_then(toml::Value::as_table)
        .unwrap_or_else(|| panic!("{}: no [package]", manifest_path.display()));
    let name = package
        .get("name")
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{}: no package.name", manifest_path.display()))
        .to_owned();
    let kind = package
        .get("metadata")
        .and_then(|m| m.get("wattson"))
        .and_then(|w| w.get("kind"))
        .and_then(toml::Value::as_str);
    let kind = match kind {
        Some("model") => "Model",
        Some("format") => "Format",
        other => panic!(
            "{}: [package.metadata.wattson] kind must be \"model\" or \"format\", found {other:?}",
            manifest_path.display()
        ),
    };
    let artifact = manifest
        .get("lib")
        .and_then(|lib| lib.get("name"))
        .and_then(toml::Value::as_str)
        .map_or_else(|| name.replace('-', "_"), str::to_owned);
    Plugin {
        name,
        kind,
        artifact,
    }
}

/// `cargo build --release --target wasm32-wasip2 [-p package]` in the
/// workspace at `dir`, with its own target dir and a scrubbed environment.
fn cargo_build(dir: &Path, target_dir: &Path, package: Option<&str>) {
    let mut cmd = match guest_toolchain() {
        // `cargo +nightly fuzz`: the guests are built by another toolchain.
        Some(toolchain) => {
            let mut cmd = Command::new("cargo");
            cmd.env("RUSTUP_TOOLCHAIN", toolchain)
                .env_remove("RUSTC")
                .env_remove("CARGO");
            cmd
        }
        None => Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
    };
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", target_dir)
        // The nested cargo's stdout must not be read as build-script directives.
        .stdout(Stdio::from(std::io::stderr()));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    if let Some(package) = package {
        cmd.args(["--package", package]);
    }
    eprintln!("running: {cmd:?}");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        status.success(),
        "building the guests in {} failed: {cmd:?} exited with {status}",
        dir.display()
    );
}

fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path_str(path));
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "the nested cargo build produced no {}",
        path.display()
    );
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("path is not UTF-8: {}", path.display()))
}
