//! The limits every plugin call runs under (the `[limits]` table of a policy).

use serde::Deserialize;

use crate::config::{ConfigProblem, Validate};

/// Sandbox limits; every field has a default and can be set in the policy.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time per call, milliseconds (epoch interruption).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Linear memory per call, MiB (counts the guest's initial memory).
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Fuel (roughly, wasm instructions) per call; unset = no fuel metering.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Largest result a call may return, MiB.
    #[serde(default = "default_output_mib")]
    pub output_mib: u64,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_memory_mib() -> u64 {
    64
}

fn default_output_mib() -> u64 {
    64
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
            memory_mib: default_memory_mib(),
            fuel: None,
            output_mib: default_output_mib(),
        }
    }
}

impl Limits {
    pub(crate) fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    pub(crate) fn output_bytes(&self) -> usize {
        usize::try_from(self.output_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

impl Validate for Limits {
    /// A time or memory limit of 0 (no call could run).
    fn problems(&self) -> Vec<ConfigProblem> {
        [
            ("timeout_ms", self.timeout_ms),
            ("memory_mib", self.memory_mib),
        ]
        .into_iter()
        .filter(|(_, value)| *value == 0)
        .map(|(key, _)| ConfigProblem::new(key, "must be positive"))
        .collect()
    }
}
