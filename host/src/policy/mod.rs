//! The TOML policy: one file says everything a run needs.
//!
//! [`Policy::load`] parses and checks what needs no I/O (unknown keys, types,
//! URLs); [`bind`] loads the plugins it names and checks their parameters
//! against each plugin's `describe()`. `wattson policy check` runs both.
//! Every problem names `file:line:column` and the key.

mod bind;
mod error;
mod types;

pub use bind::{Bound, BoundOutput, bind};
pub use error::{PolicyError, Problem, Source};
pub use types::{
    InventoryConfig, MessengerConfig, ModelConfig, OutputConfig, Policy, RuntimeConfig, SiteConfig,
    StateConfig, WindowConfig,
};
