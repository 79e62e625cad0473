//! wattson attributes the energy of cloud hosts to the virtual machines on
//! them and ships per-VM energy records to accounting systems.
//!
//! The host gathers measurements ([`sources`]), sandboxed WebAssembly plugins
//! ([`runtime`]) attribute joules and render records, [`messengers`] deliver
//! them; [`pipeline`] runs one window through those steps as a [`policy`] says.
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod energy;
mod error_chain;
mod failpoint;
pub mod messengers;
pub mod pipeline;
pub mod policy;
pub mod records;
pub mod report;
pub mod runtime;
pub mod secrets;
pub mod sources;
pub mod state;
pub mod timeout;
pub mod window;
