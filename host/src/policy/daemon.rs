//! `[daemon]`: how often the daemon samples and ships, where it listens and
//! who may read it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConfigProblem, Validate};

/// `[daemon]` of a policy (all optional).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Seconds between samples of libvirt and the meters (1 or more).
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Records are shipped per window of this many seconds, aligned to it as
    /// extract's windows are to `[window] step_secs`.
    #[serde(default = "default_ship_every_secs")]
    pub ship_every_secs: u64,
    /// Address of the HTTP server (`--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Environment variable holding the bearer token every endpoint but
    /// `/healthz` asks for.
    pub token_env: Option<String>,
    /// File holding that token (first line).
    pub token_file: Option<PathBuf>,
    /// Per-interval records `/download` keeps.
    #[serde(default = "default_download_rows")]
    pub download_rows: usize,
    /// The host key on every series and record (default: the hostname up
    /// to its first dot).
    pub host: Option<String>,
    /// The file holding the kernel's boot id, read at every sample: a
    /// changed id means the host rebooted, and the first sample after it is
    /// a new baseline (`docs/ENERGY.md#a-reboot-is-not-a-wrap`).
    #[serde(default = "default_boot_id_file")]
    pub boot_id_file: PathBuf,
    /// The file holding the host's CPU time (`/proc/stat`), read at every
    /// sample: the utilisation `idle_power = "fit"` draws its line against.
    #[serde(default = "default_proc_stat_file")]
    pub proc_stat_file: PathBuf,
    /// How far back the daemon learns a host's idle power from (`auto`:
    /// the least minute; `fit`: the line), seconds; kept across restarts.
    #[serde(default = "default_idle_horizon_secs")]
    pub idle_horizon_secs: u64,
    /// How long a VM's counter is kept after it was last measured, seconds
    /// (default a day). One that comes back later starts again at 0, which
    /// Prometheus and C1 read as a counter reset; a shorter time keeps
    /// `daemon.json` small on hosts where VMs come and go.
    #[serde(default = "default_forget_after_secs")]
    pub forget_after_secs: u64,
    /// Whether `/metrics` also serves the libvirt/nova exporter's series
    /// (`libvirt_nova_instance_*`, seed 002) that existing dashboards read.
    /// `promtool check metrics` complains about their names (`_kb` units,
    /// a gauge ending in `_count`): `false` leaves them out.
    #[serde(default = "default_compat_series")]
    pub compat_series: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_interval_secs(),
            ship_every_secs: default_ship_every_secs(),
            listen: default_listen(),
            token_env: None,
            token_file: None,
            download_rows: default_download_rows(),
            host: None,
            boot_id_file: default_boot_id_file(),
            proc_stat_file: default_proc_stat_file(),
            idle_horizon_secs: default_idle_horizon_secs(),
            forget_after_secs: default_forget_after_secs(),
            compat_series: default_compat_series(),
        }
    }
}

fn default_boot_id_file() -> PathBuf {
    PathBuf::from("/proc/sys/kernel/random/boot_id")
}

fn default_proc_stat_file() -> PathBuf {
    PathBuf::from(crate::sources::proc_stat::DEFAULT_PATH)
}

fn default_compat_series() -> bool {
    true
}

fn default_idle_horizon_secs() -> u64 {
    7 * 86_400
}

/// The longest idle-power horizon: a year (366 days).
const MAX_IDLE_HORIZON_SECS: u64 = 366 * 86_400;

fn default_forget_after_secs() -> u64 {
    86_400
}

fn default_interval_secs() -> u64 {
    10
}

fn default_ship_every_secs() -> u64 {
    3600
}

fn default_listen() -> String {
    "127.0.0.1:9847".into()
}

fn default_download_rows() -> usize {
    100
}

/// The longest interval or ship window: a day.
const MAX_SECS: u64 = 86_400;

impl Validate for DaemonConfig {
    /// Intervals, horizon and rows out of range, an address that does not
    /// parse, two token sources, an empty host.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if !(1..=MAX_SECS).contains(&self.interval_secs) {
            problems.push(ConfigProblem::new(
                "interval_secs",
                format!("must be between 1 and {MAX_SECS} seconds"),
            ));
        }
        if !(1..=MAX_SECS).contains(&self.ship_every_secs) {
            problems.push(ConfigProblem::new(
                "ship_every_secs",
                format!("must be between 1 and {MAX_SECS} seconds"),
            ));
        } else if self.ship_every_secs < self.interval_secs {
            problems.push(ConfigProblem::new(
                "ship_every_secs",
                "must be at least daemon.interval_secs",
            ));
        }
        if !(60..=MAX_IDLE_HORIZON_SECS).contains(&self.idle_horizon_secs) {
            problems.push(ConfigProblem::new(
                "idle_horizon_secs",
                format!(
                    "must be between 60 (one minute) and {MAX_IDLE_HORIZON_SECS} seconds (a \
                     year); the default is 604800 (7 days)"
                ),
            ));
        }
        if self.forget_after_secs < self.interval_secs {
            problems.push(ConfigProblem::new(
                "forget_after_secs",
                "must be at least daemon.interval_secs (a VM would be forgotten between two \
                 samples); the default is 86400 (a day)",
            ));
        }
        if let Err(e) = self.listen.parse::<SocketAddr>() {
            problems.push(ConfigProblem::new(
                "listen",
                format!(
                    "`{}` is not an address and port ({e}); e.g. \"127.0.0.1:9847\" or \"[::]:9847\"",
                    self.listen
                ),
            ));
        }
        if self.token_env.is_some() && self.token_file.is_some() {
            problems.push(ConfigProblem::new(
                "token_file",
                "give the token by token_env or by token_file, not both",
            ));
        }
        if self.download_rows == 0 {
            problems.push(ConfigProblem::new("download_rows", "must be at least 1"));
        }
        if self.host.as_deref().is_some_and(str::is_empty) {
            problems.push(ConfigProblem::new(
                "host",
                "is empty: leave it out to use the hostname",
            ));
        }
        problems
    }
}

impl DaemonConfig {
    /// The host key: `host`, else the hostname up to its first dot.
    pub fn host_key(&self) -> String {
        if let Some(host) = &self.host {
            return host.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(|h| h.trim().split('.').next().map(str::to_owned))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    }

    /// The bearer token, if one is configured: read from the environment or
    /// the file now (a reload reads it again).
    pub fn token(&self) -> Result<Option<String>, String> {
        if let Some(var) = &self.token_env {
            return match std::env::var(var) {
                Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_owned())),
                _ => Err(format!(
                    "[daemon] token_env = \"{var}\", but that environment variable is unset or empty"
                )),
            };
        }
        if let Some(path) = &self.token_file {
            return match std::fs::read_to_string(path) {
                Ok(text) => match text.lines().next().map(str::trim) {
                    Some(token) if !token.is_empty() => Ok(Some(token.to_owned())),
                    _ => Err(format!(
                        "[daemon] token_file {}: the file is empty",
                        path.display()
                    )),
                },
                Err(e) => Err(format!(
                    "[daemon] token_file {}: cannot read it: {e}",
                    path.display()
                )),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_named() {
        let config = DaemonConfig {
            interval_secs: 0,
            ship_every_secs: 5,
            listen: "localhost".into(),
            download_rows: 0,
            ..DaemonConfig::default()
        };
        let problems = config.problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["interval_secs", "listen", "download_rows"]);
        let config = DaemonConfig {
            interval_secs: 60,
            ship_every_secs: 30,
            ..DaemonConfig::default()
        };
        assert_eq!(config.problems()[0].key, "ship_every_secs");
        assert!(DaemonConfig::default().problems().is_empty());
    }
}
