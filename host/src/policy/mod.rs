//! The TOML policy: one file says everything a run needs.
//!
//! [`Policy::load`] parses and checks what needs no I/O (unknown keys, types,
//! URLs); [`Policy::load_with`] does the same after `--set` overrides
//! ([`Override`]); [`bind`] loads the plugins it names and checks their
//! parameters against each plugin's `describe()`. `wattson policy check` runs
//! both. Every problem names `file:line:column` (or the `--set`) and the key.

mod bind;
mod error;
mod overrides;
mod rules;
mod types;

pub use bind::{Bound, BoundModel, BoundOutput, BoundRule, bind};
pub use overrides::Override;
pub use rules::{Field, MatchValue, Matcher, RuleConfig};

/// A timeout a policy gives in seconds, as a `Duration`: at least 1 ms, and
/// an hour for a value too large or not finite.
pub fn timeout(secs: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(secs.max(0.001))
        .unwrap_or(std::time::Duration::from_secs(3600))
}
pub use error::{PolicyError, Problem, Source};
pub use types::{
    InventoryConfig, MessengerConfig, ModelConfig, OutputConfig, Policy, RuntimeConfig, SiteConfig,
    StateConfig, WindowConfig,
};
