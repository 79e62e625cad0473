//! Integration tests: the `wattson` binary and library against a real
//! Prometheus (backfilled by promtool), guest components built from source,
//! and policy files an operator might get wrong.

mod agree;
mod carbon;
mod cim;
mod containment;
mod daemon;
mod data;
mod delivery;
mod exactness;
mod examples;
mod extract_cli;
mod formats;
mod gauges;
mod http;
mod inventory;
mod libvirt;
mod models;
mod overrides;
mod package;
mod policy_errors;
mod polyglot;
mod prometheus;
mod prometheus_errors;
mod rapl;
mod receivers;
mod remote_read;
mod report;
mod scaffold;
mod scrape_config;
mod shares;
mod templates;
mod victoria;
mod wattson;
mod wit_versions;

/// Whether `tool`, an external program a test needs, is on `PATH`; if not,
/// see [`missing_tool`].
pub fn require_tool(tool: &str, install: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if !found {
        missing_tool(tool, install);
    }
    found
}

/// A tool a test needs is missing: without `CI` in the environment the test
/// is skipped, saying so; with it, the test fails, saying how to install it.
pub fn missing_tool(tool: &str, install: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but `{tool}` is missing: {install}");
    }
    eprintln!("SKIPPED: `{tool}` is missing: {install}");
}
