//! One sandboxed call: a fresh `Store` with the limits set, and the mapping of
//! traps to reasons an operator can read.

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::error::{PluginError, PluginId};
use super::limits::Limits;
use super::state::PluginState;
use super::{Runtime, TICKS_PER_SEC};

/// Runs `f` in a fresh sandbox (store) under `runtime`'s limits; a trap or a
/// broken limit becomes a [`PluginError`] naming the plugin.
pub(crate) fn sandboxed<R>(
    runtime: &Runtime,
    id: &PluginId,
    f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    let _ticking = runtime.inner.ticker.running();
    let mut store = new_store(runtime, id);
    f(&mut store).map_err(|e| trapped(id, &store, runtime.limits(), e))
}

/// A store ready for instantiation and one call, under `runtime`'s limits.
fn new_store(runtime: &Runtime, id: &PluginId) -> Store<PluginState> {
    let limits = runtime.limits();
    let state = PluginState::new(Arc::from(id.name.as_str()), limits.memory_bytes());
    let mut store = Store::new(&runtime.inner.engine, state);
    store.limiter(|s| &mut s.memory);
    let ticks = limits
        .timeout_ms
        .saturating_mul(TICKS_PER_SEC)
        .div_ceil(1000)
        .max(1);
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    if let Some(fuel) = limits.fuel {
        // Fuel metering is on exactly when `limits.fuel` is set (see `Runtime::new`).
        let _ = store.set_fuel(fuel);
    }
    store
}

/// Turns a wasmtime error from instantiation or a call into a [`PluginError`].
fn trapped(
    id: &PluginId,
    store: &Store<PluginState>,
    limits: &Limits,
    error: wasmtime::Error,
) -> PluginError {
    let stderr = store.data().stderr_text();
    let reason = if store.data().memory.refused {
        format!("exceeded its memory limit of {} MiB", limits.memory_mib)
    } else {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "exceeded its time limit of {} ms (stuck in a loop?) and was stopped",
                limits.timeout_ms
            ),
            Some(Trap::OutOfFuel) => format!(
                "ran out of fuel ({} units) and was stopped",
                limits.fuel.unwrap_or_default()
            ),
            Some(Trap::StackOverflow) => "overflowed its stack (unbounded recursion?)".to_owned(),
            Some(Trap::MemoryOutOfBounds) if stderr.is_empty() => {
                "accessed memory out of bounds (a stack overflow in deep recursion looks like this)"
                    .to_owned()
            }
            Some(Trap::UnreachableCodeReached) if stderr.contains("panicked") => {
                format!("panicked: {}", panic_message(&stderr))
            }
            Some(trap) => format!("trapped: {trap}"),
            None => format!("failed: {error:#}"),
        }
    };
    let reason = if stderr.is_empty() || reason.starts_with("panicked") {
        reason
    } else {
        format!("{reason}; its stderr: {}", tail(&stderr, 500))
    };
    PluginError::Trapped {
        plugin: id.clone(),
        reason,
    }
}

/// The line after Rust's `panicked at file:line:col:` header, or the whole text.
fn panic_message(stderr: &str) -> String {
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let rest: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
            let location = line.split("panicked at").nth(1).unwrap_or("").trim();
            return format!(
                "{} (at {})",
                rest.join(" ").trim(),
                location.trim_end_matches(':')
            );
        }
    }
    tail(stderr, 500)
}

fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}
