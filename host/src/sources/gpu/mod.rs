//! A hypervisor's GPUs: their addresses in one form ([`BusId`]), who holds
//! which (`<hostdev>` of the domain XML, [`holdings`]) and their energy
//! read now ([`GpuMeter`], nvidia-smi's CSV). GPU energy per VM is built on
//! these by the rules of `docs/ENERGY.md#gpus` (`crate::energy::gpu`).

mod bus_id;
mod config;
mod hostdev;
mod smi;

pub use bus_id::{BusId, NotABusId};
pub use config::{CounterUnit, DEFAULT_MIG_SLICES, DEFAULT_SYSFS_ROOT, GpuConfig, GpuKey};
pub use hostdev::{Holding, HostdevError, Mode, holdings, is_display};
pub use smi::{DEFAULT_COMMAND, GpuMeter, GpuSample, SmiCommand, parse};
