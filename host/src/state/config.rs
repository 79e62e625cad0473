//! `[state]`: where lastrun, the spool, the lock and the daemon's counters live.

use std::path::PathBuf;

use serde::Deserialize;

/// `[state]`: where run state lives.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory for lastrun, spool and lock (one subdirectory per policy).
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// Name of this policy's subdirectory; default: the policy file's stem.
    /// The subdirectory belongs to one policy file (it names it in
    /// `policy-file`): give two policy files with the same stem their own.
    #[serde(default)]
    pub name: Option<String>,
}

fn default_state_dir() -> PathBuf {
    "/var/lib/wattson".into()
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
            name: None,
        }
    }
}
