//! `http`: each payload POSTed to a URL with the format's media type and an
//! optional bearer token (from an environment variable or a file, never
//! logged). Timeouts, connection errors and 5xx are retried with exponential
//! backoff; a 4xx fails at once with the server's answer in the error. A
//! payload the server accepted is noted in its journal, so a crash before the
//! spool's bookkeeping does not post it again.

use std::path::PathBuf;
use std::time::Duration;

use super::{DeliveryError, Messenger, Payload};

/// Where the bearer token comes from.
#[derive(Clone)]
pub enum Token {
    /// No Authorization header.
    None,
    /// Read from this environment variable.
    Env(String),
    /// Read from this file (trailing whitespace trimmed).
    File(PathBuf),
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// POSTs payloads.
#[derive(Debug)]
pub struct Http {
    url: String,
    token: Token,
    retries: u32,
    backoff: Duration,
    client: Result<reqwest::blocking::Client, String>,
}

impl Http {
    /// A messenger posting to `url`.
    pub fn new(url: &str, token: Token, timeout_secs: f64, retries: u32, backoff_ms: u64) -> Self {
        // A redirect would turn the POST into a GET without the payload: refuse it.
        let client = reqwest::blocking::Client::builder()
            .timeout(crate::timeout::from_secs(timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string());
        Self {
            url: url.to_owned(),
            token,
            retries,
            backoff: Duration::from_millis(backoff_ms),
            client,
        }
    }

    fn bearer(&self) -> Result<Option<String>, String> {
        match &self.token {
            Token::None => Ok(None),
            Token::Env(var) => crate::secrets::read(Some(var), None),
            Token::File(path) => crate::secrets::read(None, Some(path)),
        }
    }

    fn post(&self, payload: &Payload<'_>) -> Result<(), String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let bearer = self.bearer()?;
        let mut attempt = 0;
        loop {
            let mut request = client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, payload.media_type)
                .body(payload.bytes.to_vec());
            if let Some(token) = &bearer {
                request = request.bearer_auth(token);
            }
            let retryable = match request.send() {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let body: String = response
                        .text()
                        .unwrap_or_default()
                        .chars()
                        .take(500)
                        .collect();
                    let message = format!("HTTP {status}: {}", body.trim());
                    let retry_client_error = status.as_u16() == 408 || status.as_u16() == 429;
                    if status.is_redirection() {
                        return Err(format!(
                            "{message} (a redirect: point `url` at the final address)"
                        ));
                    }
                    if status.is_client_error() && !retry_client_error {
                        return Err(format!(
                            "{message} (not retried: fix the request or the credentials)"
                        ));
                    }
                    message
                }
                Err(e) if e.is_timeout() => "timed out".to_owned(),
                Err(e) => error_chain(&e),
            };
            if attempt >= self.retries {
                return Err(format!("{retryable} (after {} attempts)", attempt + 1));
            }
            tracing::warn!(url = %self.url, attempt = attempt + 1, "{retryable}; retrying");
            std::thread::sleep(self.backoff * 2u32.saturating_pow(attempt));
            attempt += 1;
        }
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl Messenger for Http {
    fn name(&self) -> String {
        format!("http {}", self.url)
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        if super::accepted_before(payload) {
            tracing::info!(messenger = %self.name(), "the receiver accepted this payload before the last run stopped: not posted again");
            return Ok(());
        }
        self.post(payload).map_err(|reason| DeliveryError {
            messenger: self.name(),
            reason,
        })?;
        super::note_accepted(payload);
        Ok(())
    }
}
