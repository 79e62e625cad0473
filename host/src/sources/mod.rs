//! Inputs: one module per place measurements come from. The arithmetic they
//! share (C1, G1, idle power) is [`crate::energy`]'s.
//!
//! * [`prometheus`]: counters over any window, exactly (C1), from a Prometheus-compatible API.
//! * [`libvirt`]: the domains of a hypervisor, with nova/OpenNebula metadata.
//! * [`rapl`]: local RAPL powercap zones.
//! * [`ipmi`]: the host's wall power, read locally through IPMI DCMI (`ipmitool`).
//! * [`proc_stat`]: the host's CPU busy time, read locally (`/proc/stat`).
//! * [`openstack`]: VMs, projects and lifetimes from Nova and Keystone ([`cloud`]).
//! * [`opennebula`]: VMs, groups and host stays from OpenNebula's XML-RPC API.
//! * [`carbon_intensity`]: the grid's carbon intensity over a window, static or from Prometheus.
//!
//! [`owner`] is who a VM belongs to, whichever source said so.

pub mod carbon_intensity;
pub mod cloud;
pub mod command;
pub mod gpu;
pub mod inventory;
pub mod ipmi;
pub mod libvirt;
pub mod opennebula;
pub mod openstack;
pub mod owner;
pub mod proc_stat;
pub mod prometheus;
pub mod rapl;
