//! Rendering: a window's records, chunk by chunk, through every output's
//! format. Chunks render in sandboxes of their own on up to one thread per
//! core while the caller builds the next chunk; payloads are handed on in
//! the order of the chunks, exactly as one thread would.

use std::collections::VecDeque;
use std::thread::{Scope, ScopedJoinHandle};

use super::PipelineError;
use crate::policy::Bound;
use crate::records::EnergyRecord;
use crate::runtime::PluginError;

/// Records per `render` call: a format sees at most this many at once, so a
/// window of 100,000 VMs fits a plugin's memory limit. A multiple of 1,000
/// (APEL's batch), so message batching is unchanged.
pub const RENDER_CHUNK: usize = 10_000;

/// Chunks rendering at once, at most: each holds its records, a sandbox and
/// its payloads (about 35 MB for 10,000 records in `jsonl`), and past a few
/// threads the building and handing on in order is what takes the time.
pub const RENDER_THREADS: usize = 4;

/// Takes a window's records: chunks of at most [`RENDER_CHUNK`] in uuid
/// order, then `finish` once, before the window is logged as done.
pub trait Chunks<E> {
    /// One chunk of records.
    fn chunk(&mut self, records: Vec<EnergyRecord>) -> Result<(), E>;
    /// After the last chunk.
    fn finish(&mut self) -> Result<(), E>;
}

impl<E, F: FnMut(Vec<EnergyRecord>) -> Result<(), E>> Chunks<E> for F {
    fn chunk(&mut self, records: Vec<EnergyRecord>) -> Result<(), E> {
        self(records)
    }

    fn finish(&mut self) -> Result<(), E> {
        Ok(())
    }
}

/// One chunk's payloads, each with its output's index (policy order).
type Payloads = Vec<(usize, Vec<u8>)>;

/// Renders chunks of records with every output's format and hands each
/// payload to `sink` with its output's index: chunk by chunk in the order
/// given, outputs in policy order. At most one chunk per core renders at a
/// time (each in fresh sandboxes; at most [`RENDER_THREADS`]), so at most
/// that many chunks' records and payloads are held. Lives in a [`std::thread::scope`]; an error stops the handing
/// on at the chunk it belongs to, as rendering in one thread would.
pub struct Renderer<'scope, 'env, S> {
    scope: &'scope Scope<'scope, 'env>,
    bound: &'env Bound,
    sink: S,
    /// Chunks rendering, oldest first.
    rendering: VecDeque<ScopedJoinHandle<'scope, Result<Payloads, PluginError>>>,
    /// How many may render at once.
    threads: usize,
}

impl<'scope, 'env, S, E> Renderer<'scope, 'env, S>
where
    S: FnMut(usize, Vec<u8>) -> Result<(), E>,
    E: From<PipelineError>,
{
    /// A renderer for `bound`'s outputs on `scope`'s threads: one per core,
    /// at most [`RENDER_THREADS`].
    pub fn new(scope: &'scope Scope<'scope, 'env>, bound: &'env Bound, sink: S) -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(RENDER_THREADS);
        Self {
            scope,
            bound,
            sink,
            rendering: VecDeque::with_capacity(threads),
            threads,
        }
    }

    /// Hands on the oldest chunk's payloads once it is rendered.
    fn hand_on_oldest(&mut self) -> Result<(), E> {
        let Some(rendering) = self.rendering.pop_front() else {
            return Ok(());
        };
        let payloads = rendering
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(PipelineError::from)?;
        for (output, payload) in payloads {
            (self.sink)(output, payload)?;
        }
        Ok(())
    }
}

impl<S, E> Chunks<E> for Renderer<'_, '_, S>
where
    S: FnMut(usize, Vec<u8>) -> Result<(), E>,
    E: From<PipelineError>,
{
    fn chunk(&mut self, records: Vec<EnergyRecord>) -> Result<(), E> {
        let bound = self.bound;
        self.rendering
            .push_back(self.scope.spawn(move || render(bound, &records)));
        // The caller builds the next chunk only while fewer render than
        // there are cores: no more records are held than can be rendered.
        while self.rendering.len() >= self.threads {
            self.hand_on_oldest()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), E> {
        while !self.rendering.is_empty() {
            self.hand_on_oldest()?;
        }
        Ok(())
    }
}

/// Every output's payloads for `records`, in policy order.
fn render(bound: &Bound, records: &[EnergyRecord]) -> Result<Payloads, PluginError> {
    let mut payloads = Vec::new();
    for (i, output) in bound.outputs.iter().enumerate() {
        let rendered = output.format.render(records, &output.params)?;
        payloads.extend(rendered.into_iter().map(|payload| (i, payload)));
    }
    Ok(payloads)
}
