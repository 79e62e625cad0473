//! `[opennebula]`: how wattson reaches an OpenNebula front-end.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConfigProblem, Validate};

/// `[opennebula]` of a policy: the XML-RPC endpoint and a user whose token
/// comes only from `token_env`/`token_file`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenNebulaConfig {
    /// The XML-RPC endpoint, e.g. `http://one-frontend:2633/RPC2`.
    pub endpoint: String,
    /// The user (in the `oneadmin` group, to see every user's VMs).
    #[serde(default = "default_user")]
    pub user: String,
    /// Environment variable holding the user's password or login token.
    pub token_env: Option<String>,
    /// File holding it (first line).
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the endpoint's certificate.
    pub ca_file: Option<PathBuf>,
    /// Seconds one call may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Attempts per call on a connection error, a timeout or a 5xx.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_user() -> String {
    "oneadmin".into()
}

fn default_timeout_secs() -> f64 {
    60.0
}

fn default_attempts() -> u32 {
    3
}

impl Validate for OpenNebulaConfig {
    /// A URL that is not one, no token or two, zero attempts or timeout.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        match reqwest::Url::parse(&self.endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(_) => problems.push(ConfigProblem::new(
                "endpoint",
                "the scheme must be http or https",
            )),
            Err(e) => problems.push(ConfigProblem::new(
                "endpoint",
                format!(
                    "`{}` is not a URL ({e}); e.g. \"http://one-frontend:2633/RPC2\"",
                    self.endpoint
                ),
            )),
        }
        match (&self.token_env, &self.token_file) {
            (None, None) => problems.push(ConfigProblem::new(
                "token_env",
                "give the user's password or token by token_env or token_file",
            )),
            (Some(_), Some(_)) => problems.push(ConfigProblem::new(
                "token_file",
                "give the token by token_env or by token_file, not both",
            )),
            _ => {}
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            problems.push(ConfigProblem::new(
                "timeout_secs",
                "must be a positive number of seconds",
            ));
        }
        if self.attempts == 0 {
            problems.push(ConfigProblem::new("attempts", "must be at least 1"));
        }
        problems
    }
}
