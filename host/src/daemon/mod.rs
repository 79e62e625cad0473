//! `wattson daemon`: on a hypervisor, samples libvirt and the local meters
//! every interval, attributes each interval with the policy's models,
//! accumulates per-VM joules (persisted across restarts) and serves them
//! over HTTP; SIGHUP or a changed policy file reloads, SIGTERM stops.
//!
//! The sampling loop runs on its own thread (libvirt and the plugins block);
//! the HTTP server and the signal handlers on a small tokio runtime.

mod clock;
mod gpu;
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
pub use clock::{Clock, Control, SystemClock};
pub use gpu::{Card, GpuSources, Held};
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
    /// The state directory cannot be made.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Another daemon runs this policy.
    #[error(
        "another `wattson daemon` runs this policy ({} holds {}): one daemon per policy; stop \
         it first, or give this one its own [state] dir",
        holder.map_or_else(|| "a process".to_owned(), |pid| format!("PID {pid}")),
        lock.display()
    )]
    AlreadyRunning {
        /// The lock file.
        lock: PathBuf,
        /// The PID that holds it, where it wrote one.
        holder: Option<u32>,
    },
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
    make_sources: &mut MakeSources,
) -> Result<Loaded, DaemonError> {
    let bound = crate::policy::bind(&policy, runtime)?;
    // BoaviztAPI's figures: asked once per (re)load.
    if let Some(embodied) = &bound.embodied {
        embodied.ask_blocking(&policy.state_dir());
    }
    let plan = crate::pipeline::Plan::new(&bound);
    let problems = plan_problems(&policy, plan.measurements());
    if !problems.is_empty() {
        return Err(DaemonError::NotLocal {
            path: options.policy.display().to_string(),
            problems,
        });
    }
    let sources = make_sources(&policy, plan.measurements());
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
        gpu: policy
            .gpu
            .as_ref()
            .map(|g| GpuSources::new(g, reads(|m| matches!(m, Measurement::Gpu(_))))),
    }
}

/// Builds the local sources of a policy's measurements ([`sources`] when
/// the daemon runs; tests swap in CPU times and meters of their own).
pub type MakeSources = Box<dyn FnMut(&Policy, &[Measurement]) -> Sources + Send>;

/// A started daemon: its policy loaded and bound, its state directory
/// locked, its counters loaded, a first sample taken. [`Daemon::sample`]
/// runs the loop; [`run`] serves HTTP beside it.
pub struct Daemon {
    options: DaemonOptions,
    runtime: crate::runtime::Runtime,
    make_sources: MakeSources,
    shared: Arc<Shared>,
    state: DaemonState,
    interval_ms: i64,
    /// When shipping is next due (0: at the first tick, for what earlier
    /// runs left in the spool).
    next_ship_ms: i64,
    /// The policy file's modification time at the last (re)load.
    modified: Option<SystemTime>,
    /// `daemon.lock`, held until the daemon is dropped.
    _lock: crate::state::RunLock,
}

impl Daemon {
    /// Loads and binds the policy, takes the state lock (a second daemon
    /// on the same policy is refused here, before it reads or writes any
    /// state), loads the counters and takes a first sample at `clock`'s
    /// now, so the counters (and the interval since the last run's last
    /// sample) are there before the first scrape.
    pub fn start(
        options: DaemonOptions,
        mut make_sources: MakeSources,
        clock: &mut dyn Clock,
    ) -> Result<Self, DaemonError> {
        let policy = Policy::load_with(&options.policy, &options.overrides)?;
        let state_dir = policy.state_dir();
        state_dir.create()?;
        let lock = state_dir.lock_daemon().map_err(|e| match e {
            crate::state::StateError::Locked { path, holder } => {
                DaemonError::AlreadyRunning { lock: path, holder }
            }
            other => other.into(),
        })?;
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
        } = prepare(&options, policy, &runtime, &mut make_sources)?;
        let shared = Shared::new(
            config.download_rows,
            config.token().map_err(DaemonError::Token)?,
        );
        let mut state = DaemonState::new(
            policy,
            bound,
            sources,
            config.host_key(),
            Arc::clone(&shared),
        )?;
        state.tick(clock.now_ms());
        Ok(Self {
            modified: modified_at(&options.policy),
            options,
            runtime,
            make_sources,
            shared,
            state,
            interval_ms: config.interval_secs as i64 * 1000,
            next_ship_ms: 0,
            _lock: lock,
        })
    }

    /// What the HTTP server reads.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The working state (tests read its ledger).
    pub fn state(&self) -> &DaemonState {
        &self.state
    }

    /// Samples on every multiple of the interval, ships each closed window,
    /// and reloads on [`Control::Reload`] or a changed policy file, until
    /// `clock` says stop: then a last sample and a last shipping. Nothing
    /// stops it early: failures are logged, counted and retried.
    pub fn sample(&mut self, clock: &mut dyn Clock) {
        loop {
            let now = clock.now_ms();
            // Ticks fall on multiples of the interval, as scrapes do.
            let next = (now.div_euclid(self.interval_ms) + 1) * self.interval_ms;
            match clock.wait_until(next) {
                Some(Control::Stop) => {
                    tracing::info!("stopping: a last sample, then exit");
                    self.state.tick(clock.now_ms());
                    ship(&mut self.state, clock.now_ms());
                    return;
                }
                Some(Control::Reload) => {
                    self.reload();
                    continue;
                }
                None => {}
            }
            if modified_at(&self.options.policy) != self.modified {
                tracing::info!(policy = %self.options.policy.display(), "the policy file changed: reloading");
                self.reload();
            }
            let now = clock.now_ms();
            self.state.tick(now);
            // Shipping blocks sampling while a messenger answers: only when a
            // window has closed, or a minute after a failure.
            if now >= self.next_ship_ms {
                let step_ms = self.state.policy.daemon_config().ship_every_secs as i64 * 1000;
                self.next_ship_ms = if ship(&mut self.state, now) {
                    (now.div_euclid(step_ms) + 1) * step_ms
                } else {
                    now + SHIP_RETRY_MS
                };
            }
        }
    }

    /// Loads the policy again; a bad one is logged and the running one kept.
    fn reload(&mut self) {
        self.modified = modified_at(&self.options.policy);
        let options = &self.options;
        let loaded = Policy::load_with(&options.policy, &options.overrides)
            .map_err(DaemonError::from)
            .and_then(|policy| prepare(options, policy, &self.runtime, &mut self.make_sources))
            .and_then(|l| {
                let token = l.config.token().map_err(DaemonError::Token)?;
                Ok((l, token))
            });
        let (loaded, token) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!("reload refused, the running policy stays: {e}");
                return;
            }
        };
        if let Ok(mut slot) = self.shared.token.write() {
            *slot = token;
        }
        if let Ok(mut rows) = self.shared.ring_rows.write() {
            *rows = loaded.config.download_rows;
        }
        self.interval_ms = loaded.config.interval_secs as i64 * 1000;
        if options.listen.is_none()
            && loaded.config.listen != self.state.policy.daemon_config().listen
        {
            tracing::warn!(
                listen = %loaded.config.listen,
                "[daemon] listen changed: the server keeps its address until the daemon restarts"
            );
        }
        let host = loaded.config.host_key();
        self.state
            .reload(loaded.policy, loaded.bound, loaded.sources, host);
        tracing::info!(policy = %options.policy.display(), "policy reloaded");
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: DaemonOptions) -> Result<(), DaemonError> {
    let (control, controls) = mpsc::channel();
    let mut clock = SystemClock::new(controls);
    let mut daemon = Daemon::start(options, Box::new(sources), &mut clock)?;
    let config = daemon.state.policy.daemon_config();
    let listen = daemon
        .options
        .listen
        .clone()
        .unwrap_or(config.listen.clone());

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
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let spool = daemon.state.policy.state_dir();
    let app = App {
        shared: Arc::clone(daemon.shared()),
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
        policy = %daemon.options.policy.display(),
        interval_secs = config.interval_secs,
        "daemon started"
    );
    daemon.sample(&mut clock);
    let _ = stop_server.send(());
    let _ = tokio.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
    tokio.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("daemon stopped");
    Ok(())
}

/// How long after a failed delivery shipping is tried again.
const SHIP_RETRY_MS: i64 = 60_000;

/// Ships what is due; a failure (a messenger, or a spool that cannot be
/// written) is logged and counted, its windows stay in the ledger or the
/// spool for the next try. Returns whether every messenger accepted.
fn ship(state: &mut DaemonState, now_ms: i64) -> bool {
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
            state.health.last_ship_ms = Some(now_ms);
        }
        Err(e) => {
            state.health.messenger_failures += 1;
            tracing::warn!("shipping: {e}");
        }
    }
    state.persist();
    state.publish();
    ok
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
