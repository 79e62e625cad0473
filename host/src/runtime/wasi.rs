//! The WASI a plugin gets: every WASI 0.2 interface a component may import
//! (Rust's std, componentize-py and componentize-js import clocks,
//! filesystem, sockets, random and cli even when unused, at whichever 0.2.x
//! minor their toolchain ships; wasmtime resolves any 0.2.x import against
//! these), each deterministic and capability-free: no preopened directories,
//! no sockets (every address refused, no name lookup), an empty environment
//! and argument list, stdin empty, stdout and stderr into a bounded buffer,
//! randomness from a fixed seed, and clocks that never move whose waits are
//! ready at once, so a plugin can neither read the time nor hold the host
//! past its time limit in a host call.

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi_io::poll::{Pollable, subscribe};

use super::state::PluginState;

/// Adds every WASI 0.2 interface to `linker` (which must allow shadowing:
/// the monotonic clock is replaced by [`FrozenMonotonic`]).
pub(crate) fn add_to_linker(l: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(l)?;
    monotonic_clock::add_to_linker::<_, FrozenMonotonic<'static>>(l, |s| {
        FrozenMonotonic(s.table())
    })?;
    Ok(())
}

/// `wasi:clocks/monotonic-clock` at a fixed instant (0) whose subscriptions
/// are ready at once: a guest's `sleep` returns immediately instead of
/// blocking the host thread, where the time limit cannot interrupt it.
pub(crate) struct FrozenMonotonic<'a>(&'a mut ResourceTable);

impl HasData for FrozenMonotonic<'static> {
    type Data<'a> = FrozenMonotonic<'a>;
}

impl monotonic_clock::Host for FrozenMonotonic<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1_000_000_000)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.0.push(Ready)?;
        subscribe(self.0, ready)
    }

    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.0.push(Ready)?;
        subscribe(self.0, ready)
    }
}

/// A pollable that is always ready.
struct Ready;

#[wasmtime_wasi_io::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}
