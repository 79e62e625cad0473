//! Inputs: one module per place measurements come from.
//!
//! * [`prometheus`]: counters over any window, exactly (C1), from a Prometheus-compatible API.
//! * [`counter`]: the C1 arithmetic itself, shared by every counter source.
//! * [`gauge`]: the G1 arithmetic, shared by every gauge source.
//! * [`idle`]: a host's idle power from its meters (1-minute buckets).
//! * [`libvirt`]: the domains of a hypervisor, with nova/OpenNebula metadata.
//! * [`rapl`]: local RAPL powercap zones.

pub mod counter;
pub mod gauge;
pub mod idle;
pub mod inventory;
pub mod libvirt;
pub mod prometheus;
pub mod rapl;
