//! The TOML policy: one file says everything a run needs.
//!
//! [`Policy::load`] parses and checks what needs no I/O (unknown keys, types,
//! URLs); [`Policy::load_with`] does the same after `--set` overrides
//! ([`Override`]); [`bind`] loads the plugins it names and checks their
//! parameters against each plugin's `describe()`. `wattson policy check` runs
//! both. Every problem names `file:line:column` (or the `--set`) and the key.

mod bind;
mod daemon;
mod error;
mod overrides;
mod rules;
mod types;

pub use bind::{Bound, BoundModel, BoundOutput, BoundRule, bind};
pub use daemon::DaemonConfig;
pub use overrides::Override;
pub use rules::{Field, MatchValue, Matcher, RuleConfig};

pub use error::{PolicyError, Problem, Source};
pub use types::{
    IdlePowerConfig, ModelConfig, OutputConfig, Policy, RuntimeConfig, SiteConfig, WindowConfig,
};
// Each component's configuration lives beside it; the policy composes them.
pub use crate::messengers::MessengerConfig;
pub use crate::sources::inventory::InventoryConfig;
pub use crate::sources::rapl::RaplConfig;
pub use crate::state::StateConfig;
