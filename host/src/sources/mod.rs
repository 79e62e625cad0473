//! Inputs: one module per place measurements come from.
//!
//! * [`prometheus`]: counters over any window, exactly (C1), from a Prometheus-compatible API.
//! * [`counter`]: the C1 arithmetic itself, shared by every counter source.
//! * [`gauge`]: the G1 arithmetic, shared by every gauge source.

pub mod counter;
pub mod gauge;
pub mod prometheus;
pub mod rapl;
