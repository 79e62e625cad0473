//! Fixtures several test files share: an external tool a test needs, a
//! wattson run that must succeed, a Prometheus backfilled with VMs' joules
//! counters, a gather of one window as extract does it, the cloud APIs'
//! stand-ins ([`standin`]), and node_exporter's textfile collector
//! ([`node_exporter`]).

pub mod gpu_reference;
pub mod node_exporter;
pub mod standin;

use std::process::Output;

use wattson::pipeline::{GatherPlan, Gathered, gather};
use wattson::policy::Policy;
use wattson::runtime::Measurement;
use wattson::sources::prometheus::{Client, PrometheusConfig};
use wattson::window::Window;

use super::data::{HOUR, METRIC, T0, VmShape, counter_series};
use super::prometheus::{Prometheus, TestSeries, openmetrics};

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

/// Asserts that a wattson run succeeded, showing its exit status and stderr
/// if not; returns its stderr.
pub fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "wattson failed ({}): {stderr}",
        out.status
    );
    stderr
}

/// The joules counters of `shapes`, in a started Prometheus.
pub fn counters_in_prometheus(shapes: &[VmShape<'_>]) -> (Vec<TestSeries>, Prometheus) {
    let series: Vec<TestSeries> = shapes.iter().map(counter_series).collect();
    let prometheus = Prometheus::start(&openmetrics(&[(METRIC, &series)]));
    (series, prometheus)
}

/// One VM's joules counter over two hours from T0 (15 s scrapes, a reset at
/// `reset_at`), in a started Prometheus.
pub fn one_vm(uuid: &str, seed: u64, reset_at: i64) -> (TestSeries, Prometheus) {
    let (mut series, prometheus) = counters_in_prometheus(&[VmShape {
        uuid,
        project: "p1",
        from_ms: T0,
        to_ms: T0 + 2 * HOUR,
        resets_at: &[reset_at],
        gaps: &[],
        initial: 5.0,
        seed,
    }]);
    (series.remove(0), prometheus)
}

/// Gathers `measurements` over `window` from the Prometheus at `url`, as
/// extract plans and gathers them for `policy`.
pub fn gather_from(
    policy: &Policy,
    measurements: &[Measurement],
    url: &str,
    window: Window,
) -> Gathered {
    let client = Client::new(PrometheusConfig::with_url(url)).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(gather(
            &GatherPlan::new(policy, measurements, Some(&client)).unwrap(),
            window,
        ))
        .unwrap()
}
