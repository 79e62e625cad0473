//! `[nova]`: how wattson reaches an OpenStack cloud's Keystone and Nova.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConfigProblem, Validate};

/// `[nova]` of a policy: Keystone v3 credentials (a password or an
/// application credential; secrets only by `*_env`/`*_file`) and how to
/// pick the compute endpoint from the token's catalog.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NovaConfig {
    /// Keystone's v3 URL, e.g. `https://keystone.example.org:5000/v3`.
    pub auth_url: String,
    /// User name (password authentication).
    pub username: Option<String>,
    /// The user's domain.
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    /// The project the token is scoped to (password authentication).
    pub project_name: Option<String>,
    /// The project's domain.
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (first line).
    pub password_file: Option<PathBuf>,
    /// Application credential id (instead of a user and password).
    pub application_credential_id: Option<String>,
    /// Environment variable holding the application credential's secret.
    pub application_credential_secret_env: Option<String>,
    /// File holding the application credential's secret.
    pub application_credential_secret_file: Option<PathBuf>,
    /// Which of the catalog's endpoints to use: `public`, `internal` or `admin`.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The catalog region; any when unset.
    pub region: Option<String>,
    /// PEM file of the CA that signed Keystone's and Nova's certificates.
    pub ca_file: Option<PathBuf>,
    /// Servers per page of `servers/detail`.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Pages read at most: a listing longer than that is cut and reported.
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Seconds one request may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Attempts per request on a connection error, a timeout or a 5xx.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Also read user names (`GET /v3/users`, which needs the admin role).
    #[serde(default)]
    pub user_names: bool,
}

fn default_domain() -> String {
    "Default".into()
}

fn default_interface() -> String {
    "public".into()
}

fn default_page_size() -> u32 {
    1000
}

fn default_max_pages() -> u32 {
    1000
}

fn default_timeout_secs() -> f64 {
    30.0
}

fn default_attempts() -> u32 {
    3
}

impl Validate for NovaConfig {
    /// A URL that is not one, credentials that are incomplete or given
    /// twice, an unknown interface, zero pages, attempts or timeout; no I/O.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        match reqwest::Url::parse(&self.auth_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(_) => problems.push(ConfigProblem::new(
                "auth_url",
                "the scheme must be http or https".to_owned(),
            )),
            Err(e) => problems.push(ConfigProblem::new(
                "auth_url",
                format!(
                    "`{}` is not a URL ({e}); e.g. \"https://keystone:5000/v3\"",
                    self.auth_url
                ),
            )),
        }
        let app = self.application_credential_id.is_some();
        let secret = self.application_credential_secret_env.is_some()
            || self.application_credential_secret_file.is_some();
        let password = self.password_env.is_some() || self.password_file.is_some();
        if app {
            if !secret {
                problems.push(ConfigProblem::new("application_credential_secret_env",
                    "an application credential needs its secret: application_credential_secret_env \
                     or application_credential_secret_file"
                        .to_owned(),
                ));
            }
        } else if self.username.is_none() || !password || self.project_name.is_none() {
            problems.push(ConfigProblem::new(
                "username",
                "give username, password_env (or password_file) and project_name, or \
                 application_credential_id with its secret"
                    .to_owned(),
            ));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            problems.push(ConfigProblem::new(
                "password_file",
                "give the password by password_env or by password_file, not both".to_owned(),
            ));
        }
        if !matches!(self.interface.as_str(), "public" | "internal" | "admin") {
            problems.push(ConfigProblem::new(
                "interface",
                format!("`{}` is not one of public, internal, admin", self.interface),
            ));
        }
        if self.page_size == 0 {
            problems.push(ConfigProblem::new(
                "page_size",
                "must be at least 1".to_owned(),
            ));
        }
        if self.max_pages == 0 {
            problems.push(ConfigProblem::new(
                "max_pages",
                "must be at least 1".to_owned(),
            ));
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            problems.push(ConfigProblem::new(
                "timeout_secs",
                "must be a positive number of seconds".to_owned(),
            ));
        }
        if self.attempts == 0 {
            problems.push(ConfigProblem::new(
                "attempts",
                "must be at least 1".to_owned(),
            ));
        }
        problems
    }
}
