//! `wattson daemon`: on a hypervisor, samples libvirt and the local meters
//! every interval, attributes each interval with the policy's models,
//! accumulates per-VM joules (persisted across restarts) and serves them
//! over HTTP; SIGHUP or a changed policy file reloads, SIGTERM stops.
//!
//! The sampling loop runs on its own thread (libvirt and the plugins block);
//! the HTTP server and the signal handlers on a small tokio runtime.

mod idle;
mod interval;
mod ledger;
mod metrics;
mod sample;
mod server;
mod ship;
mod tick;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

pub use crate::policy::DaemonConfig;
pub use crate::sources::ipmi::{IpmiCommand, PowerMeter, parse_dcmi};
pub use ledger::Ledger;
pub use metrics::{Format as MetricsFormat, render as render_metrics};
pub use sample::{Counters, Sample, Sources};
pub use server::{App, router};
pub use tick::{DaemonState, IntervalRecord, PersistError, Shared, Snapshot};

use crate::policy::{Bound, Override, Policy, PolicyError};
use crate::runtime::Measurement;
use crate::sources::libvirt::CpuTimes;
use crate::sources::rapl;

/// Why the daemon could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The policy's models need something the daemon cannot read locally.
    #[error("{path}: the daemon cannot run this policy:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    NotLocal {
        /// The policy file.
        path: String,
        /// Each measurement it cannot make.
        problems: Vec<String>,
    },
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] crate::runtime::PluginError),
    /// The token is configured but cannot be read.
    #[error("{0}")]
    Token(String),
    /// The address cannot be listened on.
    #[error(
        "cannot listen on {addr}: {error} (is another daemon running there? pick another with --listen or [daemon] listen)"
    )]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
    /// The counters cannot be persisted.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// The async runtime could not start.
    #[error("cannot start the HTTP server's runtime: {0}")]
    Runtime(std::io::Error),
}

/// What `wattson daemon` was asked.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The policy file.
    pub policy: PathBuf,
    /// `--set` overrides, applied again at each reload.
    pub overrides: Vec<Override>,
    /// `--listen`, over `[daemon] listen`.
    pub listen: Option<String>,
}

/// What the signal handlers ask of the sampling loop.
enum Control {
    Reload,
    Stop,
}

/// What the daemon cannot do with `measurements` of `policy`, found without
/// I/O: measurements with no local source, and no libvirt to read VMs from.
pub fn plan_problems(policy: &Policy, measurements: &[Measurement]) -> Vec<String> {
    let mut problems = interval::problems(measurements);
    if policy.inventory.libvirt_uri.is_none() {
        problems.push(
            "[inventory] libvirt_uri is not set: the daemon reads the VMs, their CPU time and metadata from the local libvirt; set libvirt_uri = \"qemu:///system\""
                .to_owned(),
        );
    }
    if let Some(metric) = policy
        .carbon
        .as_ref()
        .and_then(|c| c.intensity_metric.as_ref())
    {
        problems.push(format!(
            "[carbon] intensity_metric {metric:?} is read from Prometheus, which the daemon does not read: set intensity_g_per_kwh here, or leave carbon to the accounting host's `wattson extract` (policies/from-daemon.toml)"
        ));
    }
    problems
}

/// A policy ready to run: loaded, checked for local sources, bound, with
/// the sources its models read.
struct Loaded {
    policy: Policy,
    bound: Bound,
    config: DaemonConfig,
    sources: Sources,
}

/// Binds a loaded policy and checks that the daemon can measure what its
/// models need, as at start and at each reload.
fn prepare(
    options: &DaemonOptions,
    policy: Policy,
    runtime: &crate::runtime::Runtime,
) -> Result<Loaded, DaemonError> {
    let bound = crate::policy::bind(&policy, runtime)?;
    let plan = crate::pipeline::Plan::new(&bound);
    let problems = plan_problems(&policy, plan.measurements());
    if !problems.is_empty() {
        return Err(DaemonError::NotLocal {
            path: options.policy.display().to_string(),
            problems,
        });
    }
    let sources = sources(&policy, plan.measurements());
    let config = policy.daemon_config();
    Ok(Loaded {
        policy,
        bound,
        config,
        sources,
    })
}

/// The local sources a policy reads.
pub fn sources(policy: &Policy, measurements: &[Measurement]) -> Sources {
    let reads = |f: fn(&Measurement) -> bool| measurements.iter().any(f);
    let meter: Option<Box<dyn PowerMeter>> = reads(|m| matches!(m, Measurement::HostPower(_)))
        .then(|| Box::new(IpmiCommand::new(policy.host_power.command.clone())) as _);
    Sources {
        libvirt_uri: policy.inventory.libvirt_uri.clone(),
        cpu_times: test_cpu_times(),
        powercap_root: policy.rapl.powercap_root.as_ref().map_or_else(
            || PathBuf::from(rapl::DEFAULT_ROOT),
            |r| r.get_ref().clone(),
        ),
        zones: Vec::new(),
        meter,
        rapl_needed: reads(|m| matches!(m, Measurement::Rapl(_))),
        connection: None,
        metadata: sample::MetadataCache::new(sample::METADATA_MAX_AGE),
        boot_id_file: policy.daemon_config().boot_id_file.clone(),
        proc_stat_file: policy.daemon_config().proc_stat_file.clone(),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: DaemonOptions) -> Result<(), DaemonError> {
    let policy = Policy::load_with(&options.policy, &options.overrides)?;
    // The policy's own sandbox limits and compile cache.
    let runtime = crate::runtime::Runtime::new(
        policy.limits.clone(),
        policy
            .runtime
            .cache_dir
            .clone()
            .or_else(crate::runtime::default_cache_dir),
    )?;
    let Loaded {
        policy,
        bound,
        config,
        sources,
    } = prepare(&options, policy, &runtime)?;
    let listen = options.listen.clone().unwrap_or(config.listen.clone());
    let shared = Shared::new(
        config.download_rows,
        config.token().map_err(DaemonError::Token)?,
    );
    let host = config.host_key();
    let spool = policy.state_dir();
    let mut state = DaemonState::new(policy, bound, sources, host, Arc::clone(&shared))?;
    // A first sample before serving: the counters (and the interval since
    // the last run's last sample) are there at the first scrape.
    state.tick(now_ms());

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind(&listen))
        .map_err(|error| DaemonError::Listen {
            addr: listen.clone(),
            error,
        })?;
    let (control, controls) = mpsc::channel();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = App {
        shared: Arc::clone(&shared),
        spool_depth: Arc::new(move || spool_depth(&spool)),
    };
    let server = tokio.spawn(async move {
        server::serve(listener, router(app), async {
            let _ = server_stopped.await;
        })
        .await;
    });
    tokio.spawn(signals(control));
    tracing::info!(
        %listen,
        policy = %options.policy.display(),
        interval_secs = config.interval_secs,
        "daemon started"
    );

    let mut interval_ms = config.interval_secs as i64 * 1000;
    let mut modified = modified_at(&options.policy);
    // What earlier runs left in the spool goes at the first tick.
    let mut next_ship_ms = 0;
    loop {
        let now = now_ms();
        // Ticks fall on multiples of the interval, as scrapes do.
        let next = (now.div_euclid(interval_ms) + 1) * interval_ms;
        let wait = Duration::from_millis((next - now).max(0) as u64);
        match controls.recv_timeout(wait) {
            Ok(Control::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                tracing::info!("stopping: a last sample, then exit");
                state.tick(now_ms());
                ship(&mut state)?;
                break;
            }
            Ok(Control::Reload) => {
                reload(&options, &runtime, &mut state, &shared, &mut interval_ms);
                modified = modified_at(&options.policy);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let changed = modified_at(&options.policy);
        if changed != modified {
            modified = changed;
            tracing::info!(policy = %options.policy.display(), "the policy file changed: reloading");
            reload(&options, &runtime, &mut state, &shared, &mut interval_ms);
        }
        let now = now_ms();
        state.tick(now);
        // Shipping blocks sampling while a messenger answers: only when a
        // window has closed, or a minute after a failure.
        if now >= next_ship_ms {
            let step_ms = state.policy.daemon_config().ship_every_secs as i64 * 1000;
            next_ship_ms = if ship(&mut state)? {
                (now.div_euclid(step_ms) + 1) * step_ms
            } else {
                now + SHIP_RETRY_MS
            };
        }
    }
    let _ = stop_server.send(());
    let _ = tokio.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
    tokio.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("daemon stopped");
    Ok(())
}

/// Loads the policy again; a bad one is logged and the running one kept.
fn reload(
    options: &DaemonOptions,
    runtime: &crate::runtime::Runtime,
    state: &mut DaemonState,
    shared: &Shared,
    interval_ms: &mut i64,
) {
    let loaded = Policy::load_with(&options.policy, &options.overrides)
        .map_err(DaemonError::from)
        .and_then(|policy| prepare(options, policy, runtime))
        .and_then(|l| {
            let token = l.config.token().map_err(DaemonError::Token)?;
            Ok((l, token))
        });
    match loaded {
        Ok((
            Loaded {
                policy,
                bound,
                config,
                sources,
            },
            token,
        )) => {
            if let Ok(mut slot) = shared.token.write() {
                *slot = token;
            }
            if let Ok(mut rows) = shared.ring_rows.write() {
                *rows = config.download_rows;
            }
            *interval_ms = config.interval_secs as i64 * 1000;
            if options.listen.is_none() && config.listen != state.policy.daemon_config().listen {
                tracing::warn!(
                    listen = %config.listen,
                    "[daemon] listen changed: the server keeps its address until the daemon restarts"
                );
            }
            state.reload(policy, bound, sources, config.host_key());
            tracing::info!(policy = %options.policy.display(), "policy reloaded");
        }
        Err(e) => tracing::error!("reload refused, the running policy stays: {e}"),
    }
}

/// How long after a failed delivery shipping is tried again.
const SHIP_RETRY_MS: i64 = 60_000;

/// Ships what is due; a failure is logged and counted, its payloads stay
/// spooled for the next try. Returns whether every messenger accepted. Only
/// a ledger that cannot be saved stops the daemon.
fn ship(state: &mut DaemonState) -> Result<bool, PersistError> {
    let shipped = state.ship();
    let ok = shipped.is_ok();
    match shipped {
        Ok(report) => {
            if report.windows > 0 || report.delivered > 0 {
                tracing::info!(
                    windows = report.windows,
                    records = report.records,
                    delivered = report.delivered,
                    "shipped"
                );
            }
            state.health.last_ship_ms = Some(now_ms());
        }
        Err(e) => {
            state.health.messenger_failures += 1;
            tracing::warn!("shipping: {e}");
        }
    }
    state.save()?;
    state.publish();
    Ok(ok)
}

/// SIGTERM and SIGINT stop, SIGHUP reloads.
async fn signals(control: mpsc::Sender<Control>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        let what = tokio::select! {
            _ = term.recv() => Control::Stop,
            _ = int.recv() => Control::Stop,
            _ = hup.recv() => Control::Reload,
        };
        let stop = matches!(what, Control::Stop);
        if control.send(what).is_err() || stop {
            return;
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn modified_at(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Payloads waiting in the spool for a messenger.
fn spool_depth(state: &crate::state::StateDir) -> usize {
    state
        .spool()
        .pending()
        .map(|windows| windows.iter().map(|w| w.undelivered()).sum())
        .unwrap_or(0)
}

/// Tests only (builds with the `failpoints` feature): CPU seconds from the
/// file `WATTSON_TEST_CPU_TIMES` names (`<uuid> <seconds>` lines), read at
/// each sample, for the libvirt test driver, whose CPU times are the clock.
#[cfg(feature = "failpoints")]
fn test_cpu_times() -> Option<Box<dyn CpuTimes + Send>> {
    struct FileCpuTimes(PathBuf);
    impl CpuTimes for FileCpuTimes {
        fn cpu_seconds(
            &self,
        ) -> Result<std::collections::BTreeMap<String, f64>, crate::sources::libvirt::LibvirtError>
        {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            Ok(text
                .lines()
                .filter_map(|l| {
                    let (uuid, s) = l.split_once(' ')?;
                    Some((uuid.to_owned(), s.trim().parse().ok()?))
                })
                .collect())
        }
    }
    let path = std::env::var_os("WATTSON_TEST_CPU_TIMES")?;
    Some(Box::new(FileCpuTimes(path.into())))
}

/// Release builds read CPU time from libvirt only.
#[cfg(not(feature = "failpoints"))]
fn test_cpu_times() -> Option<Box<dyn CpuTimes + Send>> {
    None
}
