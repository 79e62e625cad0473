//! What a plugin's `Store` holds: an empty WASI context (no files, network,
//! environment, arguments; frozen clocks; randomness from a fixed seed, so the
//! same input gives the same output), a captured stderr, the memory cap, and
//! the plugin's name for its log lines.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use rand::SeedableRng;

use super::wit::{latest, since_v0_1_0, since_v0_2_0};

/// Bytes of a guest's stderr kept (a panic message lands there).
const STDERR_CAPACITY: usize = 16 * 1024;
/// Log lines a single call may emit before the rest are dropped.
const MAX_LOG_LINES: u32 = 1000;
/// Longest log line kept, bytes.
const MAX_LOG_LINE: usize = 4096;
/// Seed of every call's randomness: plugins are pure functions of their input.
const RANDOM_SEED: u64 = 0x0077_6174_7473_6f6e;

/// Per-call store data.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) memory: MemoryCap,
    plugin: Arc<str>,
    log_lines: u32,
}

impl PluginState {
    pub(crate) fn new(plugin: Arc<str>, memory_bytes: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(rand::rngs::StdRng::seed_from_u64(RANDOM_SEED))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(RANDOM_SEED))
            .insecure_random_seed(u128::from(RANDOM_SEED))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory: MemoryCap {
                max_bytes: memory_bytes,
                total_bytes: 0,
                refused: false,
            },
            plugin,
            log_lines: 0,
        }
    }

    /// The store's resource table (WASI streams, pollables).
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// What the guest wrote to stderr, lossily decoded and trimmed.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl latest::model::wattson::plugin::host::Host for PluginState {
    fn log(&mut self, level: latest::Level, message: String) -> wasmtime::Result<()> {
        self.log_line(level, message);
        Ok(())
    }
}

impl since_v0_1_0::model::wattson::plugin::host::Host for PluginState {
    fn log(
        &mut self,
        level: since_v0_1_0::model::wattson::plugin::types::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        self.log_line(since_v0_1_0::level(level), message);
        Ok(())
    }
}

impl since_v0_2_0::model::wattson::plugin::host::Host for PluginState {
    fn log(
        &mut self,
        level: since_v0_2_0::model::wattson::plugin::types::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        self.log_line(since_v0_2_0::level(level), message);
        Ok(())
    }
}

impl PluginState {
    /// Logs a plugin's line through `tracing`, tagged with the plugin, within
    /// the per-call line count and length caps.
    fn log_line(&mut self, level: latest::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = &*self.plugin;
        match level {
            latest::Level::Trace => tracing::trace!(plugin, "{message}"),
            latest::Level::Debug => tracing::debug!(plugin, "{message}"),
            latest::Level::Info => tracing::info!(plugin, "{message}"),
            latest::Level::Warn => tracing::warn!(plugin, "{message}"),
            latest::Level::Error => tracing::error!(plugin, "{message}"),
        }
        if self.log_lines == MAX_LOG_LINES {
            tracing::warn!(
                plugin,
                "more than {MAX_LOG_LINES} log lines in one call; the rest are dropped"
            );
        }
    }
}

// Type-only interfaces: nothing to implement.
impl latest::model::wattson::plugin::types::Host for PluginState {}
impl latest::model::wattson::plugin::model::Host for PluginState {}
impl latest::format::wattson::plugin::format::Host for PluginState {}
impl since_v0_2_0::model::wattson::plugin::types::Host for PluginState {}
impl since_v0_2_0::model::wattson::plugin::model::Host for PluginState {}
impl since_v0_2_0::format::wattson::plugin::format::Host for PluginState {}
impl since_v0_1_0::model::wattson::plugin::types::Host for PluginState {}
impl since_v0_1_0::model::wattson::plugin::model::Host for PluginState {}
impl since_v0_1_0::format::wattson::plugin::format::Host for PluginState {}

/// Refuses linear-memory growth past a cap on the sum of all the call's
/// memories (a component has several) and remembers that it did, so the
/// resulting trap can be reported as what it is. Also bounds how many
/// instances, memories and tables one call may create.
pub struct MemoryCap {
    max_bytes: usize,
    total_bytes: usize,
    pub(crate) refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total_bytes - current.min(self.total_bytes) + desired;
        if total > self.max_bytes {
            self.refused = true;
            return Err(wasmtime::format_err!("memory limit reached"));
        }
        self.total_bytes = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Clocks that never move: a plugin is a pure function of its input.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}
