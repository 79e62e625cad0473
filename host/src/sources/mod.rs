//! Inputs: one module per place measurements come from.
//!
//! * [`prometheus`]: counters over any window, exactly (C1), from a Prometheus-compatible API.
//! * [`counter`]: the C1 arithmetic itself, shared by every counter source.

pub mod counter;
pub mod prometheus;
