//! One run's session with Keystone: a token (requested once, renewed on a
//! 401), the catalog's compute endpoint, and GETs retried with backoff.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::NovaConfig;
use crate::sources::cloud::{CloudError, Secret, http_client, send};

/// The compute API microversion asked for: 2.47 embeds each server's flavor.
/// A Nova older than that (Ocata and before) answers 406; the session then
/// asks at the base version, where each server names its flavor by id.
pub const MICROVERSION: &str = "2.47";

/// A Keystone token and what its catalog says.
#[derive(Clone, Debug)]
struct Token {
    id: Secret,
    compute_url: String,
}

/// A session with one cloud for one run.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    config: NovaConfig,
    token: Mutex<Option<Token>>,
    /// Nova refused [`MICROVERSION`] (406): asked at its base version since.
    base_version: std::sync::atomic::AtomicBool,
}

impl Session {
    /// A session for `config`; checks its TLS settings, does no I/O.
    pub fn new(config: &NovaConfig) -> Result<Self, CloudError> {
        Ok(Self {
            http: http_client(
                &config.auth_url,
                config.timeout_secs,
                config.ca_file.as_deref(),
            )?,
            config: config.clone(),
            token: Mutex::new(None),
            base_version: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// `[nova]` of the policy.
    pub fn config(&self) -> &NovaConfig {
        &self.config
    }

    /// Keystone's v3 base URL.
    pub fn identity_url(&self) -> String {
        let base = self.config.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            base.to_owned()
        } else {
            format!("{base}/v3")
        }
    }

    /// The compute endpoint (authenticating first if need be).
    pub async fn compute_url(&self) -> Result<String, CloudError> {
        Ok(self.token().await?.compute_url)
    }

    /// `GET url` as JSON with the token, retried on a connection error, a
    /// timeout or a 5xx, the token renewed once on a 401, asked again at the
    /// base version when Nova refuses [`MICROVERSION`].
    pub async fn get(&self, url: &str) -> Result<Value, CloudError> {
        use std::sync::atomic::Ordering;
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            let base_version = self.base_version.load(Ordering::Relaxed);
            let response = send(url, self.config.attempts, || {
                let request = self
                    .http
                    .get(url)
                    .header("X-Auth-Token", &token.id.0)
                    .header("Accept", "application/json");
                if base_version {
                    request
                } else {
                    request
                        .header("OpenStack-API-Version", format!("compute {MICROVERSION}"))
                        .header("X-OpenStack-Nova-API-Version", MICROVERSION)
                }
            })
            .await?;
            match response.status() {
                StatusCode::NOT_ACCEPTABLE if !base_version => {
                    tracing::info!(
                        endpoint = url,
                        "Nova does not speak compute microversion {MICROVERSION} (it answered 406): \
                         asking at its base version, each flavor looked up by id once per run"
                    );
                    self.base_version.store(true, Ordering::Relaxed);
                }
                StatusCode::UNAUTHORIZED if !renewed => {
                    tracing::debug!(
                        endpoint = url,
                        "the token was refused: requesting a new one"
                    );
                    *self.token.lock().await = None;
                    renewed = true;
                }
                status if status.is_success() => {
                    return response.json().await.map_err(|e| CloudError::Unparsable {
                        endpoint: url.to_owned(),
                        reason: e.to_string(),
                    });
                }
                status => return Err(status_error(url, status, response).await),
            }
        }
    }

    /// The current token, requested when there is none.
    async fn token(&self) -> Result<Token, CloudError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref() {
            return Ok(token.clone());
        }
        let token = self.authenticate().await?;
        *held = Some(token.clone());
        Ok(token)
    }

    /// `POST /v3/auth/tokens`: a password or an application credential.
    async fn authenticate(&self) -> Result<Token, CloudError> {
        let c = &self.config;
        let url = format!("{}/auth/tokens", self.identity_url());
        let credentials = |reason: String| CloudError::Credentials {
            endpoint: url.clone(),
            reason,
        };
        let body = match &c.application_credential_id {
            Some(id) => {
                let secret = crate::secrets::read(
                    c.application_credential_secret_env.as_deref(),
                    c.application_credential_secret_file.as_deref(),
                )
                .map_err(credentials)?
                .unwrap_or_default();
                json!({"auth": {"identity": {"methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret}}}})
            }
            None => {
                let password =
                    crate::secrets::read(c.password_env.as_deref(), c.password_file.as_deref())
                        .map_err(credentials)?
                        .unwrap_or_default();
                json!({"auth": {
                    "identity": {"methods": ["password"], "password": {"user": {
                        "name": c.username, "domain": {"name": c.user_domain_name},
                        "password": password}}},
                    "scope": {"project": {"name": c.project_name,
                        "domain": {"name": c.project_domain_name}}}}})
            }
        };
        let response = send(&url, c.attempts, || self.http.post(&url).json(&body)).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(match status {
                StatusCode::UNAUTHORIZED => credentials(
                    "Keystone refused the credentials (401): check the user, project and \
                     domains, or the application credential, and the secret"
                        .to_owned(),
                ),
                _ => status_error(&url, status, response).await,
            });
        }
        let id = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| CloudError::Unparsable {
                endpoint: url.clone(),
                reason: "no X-Subject-Token header in Keystone's answer".into(),
            })?;
        let answer: Value = response.json().await.map_err(|e| CloudError::Unparsable {
            endpoint: url.clone(),
            reason: e.to_string(),
        })?;
        let compute_url = catalog_endpoint(&answer, "compute", &c.interface, c.region.as_deref())
            .ok_or_else(|| CloudError::NoEndpoint {
            endpoint: url.clone(),
            interface: c.interface.clone(),
            region: c.region.clone(),
        })?;
        tracing::debug!(compute = compute_url, "authenticated with Keystone");
        Ok(Token {
            id: Secret(id),
            compute_url: compute_url.trim_end_matches('/').to_owned(),
        })
    }
}

/// The URL of the catalog's `kind` service at `interface` (in `region`).
fn catalog_endpoint(
    answer: &Value,
    kind: &str,
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    answer["token"]["catalog"]
        .as_array()?
        .iter()
        .filter(|service| service["type"] == kind)
        .flat_map(|service| service["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            e["interface"] == interface
                && region.is_none_or(|r| e["region"] == r || e["region_id"] == r)
        })
        .and_then(|e| e["url"].as_str())
        .map(str::to_owned)
}

/// An error for a non-success answer, with a short excerpt of its body.
async fn status_error(url: &str, status: StatusCode, response: reqwest::Response) -> CloudError {
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.chars().take(300).collect();
    if status == StatusCode::FORBIDDEN {
        return CloudError::Forbidden {
            endpoint: url.to_owned(),
            hint: "listing every project's servers (all_tenants) needs an account with the \
                   admin or reader role",
            body: excerpt,
        };
    }
    CloudError::Status {
        endpoint: url.to_owned(),
        status: status.as_u16(),
        body: excerpt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_gives_the_compute_endpoint_of_the_interface_and_region() {
        let answer = json!({"token": {"catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "region": "R1", "url": "http://k"}]},
            {"type": "compute", "endpoints": [
                {"interface": "public", "region": "R1", "url": "http://n1/v2.1"},
                {"interface": "internal", "region": "R1", "url": "http://n1-int/v2.1"},
                {"interface": "public", "region": "R2", "region_id": "R2", "url": "http://n2/v2.1"}]}]}});
        let find = |i, r| catalog_endpoint(&answer, "compute", i, r);
        assert_eq!(find("public", None).as_deref(), Some("http://n1/v2.1"));
        assert_eq!(
            find("internal", None).as_deref(),
            Some("http://n1-int/v2.1")
        );
        assert_eq!(
            find("public", Some("R2")).as_deref(),
            Some("http://n2/v2.1")
        );
        assert_eq!(find("admin", None), None);
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let token = Token {
            id: Secret("gAAAAAB-very-secret".into()),
            compute_url: "http://n".into(),
        };
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
