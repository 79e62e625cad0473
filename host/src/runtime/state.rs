//! What a plugin's `Store` holds: an empty WASI context (no files, network,
//! environment, arguments; clocks frozen in case a later linker grants them),
//! a captured stderr, the memory cap, and the plugin's name for its log lines.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::Level;
use super::bindings::model::wattson::plugin::host;

/// Bytes of a guest's stderr kept (a panic message lands there).
const STDERR_CAPACITY: usize = 16 * 1024;
/// Log lines a single call may emit before the rest are dropped.
const MAX_LOG_LINES: u32 = 1000;
/// Longest log line kept, bytes.
const MAX_LOG_LINE: usize = 4096;

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

impl host::Host for PluginState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return Ok(());
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
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
        if self.log_lines == MAX_LOG_LINES {
            tracing::warn!(
                plugin,
                "more than {MAX_LOG_LINES} log lines in one call; the rest are dropped"
            );
        }
        Ok(())
    }
}

// Type-only interfaces: nothing to implement.
impl super::bindings::model::wattson::plugin::types::Host for PluginState {}
impl super::bindings::model::wattson::plugin::model::Host for PluginState {}
impl super::bindings::format::wattson::plugin::format::Host for PluginState {}

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
