//! `http`: each payload POSTed to a URL with the format's media type and an
//! optional bearer token (from an environment variable or a file, never
//! logged). Timeouts, connection errors and 5xx are retried with exponential
//! backoff; a 4xx fails at once with the server's answer in the error. A
//! payload the server accepted is noted in its journal, so a crash before the
//! spool's bookkeeping does not post it again.

use std::path::PathBuf;
use std::time::Duration;

use super::{DeliveryError, Messenger, Payload};
use crate::error_chain::error_chain;

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
            let retryable = match answer(request.send(), false)? {
                Answer::Ok(_) => return Ok(()),
                Answer::Status(status, body) => {
                    return Err(format!(
                        "HTTP {status}: {body} (not retried: fix the request or the credentials)"
                    ));
                }
                Answer::Retry(reason) => reason,
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

/// What an HTTP receiver answered, sorted for retrying.
pub(super) enum Answer {
    /// 2xx, and the body.
    Ok(String),
    /// A 4xx other than 408/429, and the first 500 characters of the body.
    Status(reqwest::StatusCode, String),
    /// Timeout, connection error, 5xx, 408, 429: worth another attempt.
    Retry(String),
}

/// Sorts a receiver's answer; a redirect is an error (it would turn a POST
/// into a GET without the payload). `hide_url` reports transport errors
/// without their URL (one that carries a secret).
pub(super) fn answer(
    response: reqwest::Result<reqwest::blocking::Response>,
    hide_url: bool,
) -> Result<Answer, String> {
    let response = match response {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Ok(Answer::Retry("timed out".into())),
        Err(e) if hide_url => return Ok(Answer::Retry(error_chain(&e.without_url()))),
        Err(e) => return Ok(Answer::Retry(error_chain(&e))),
    };
    let status = response.status();
    let body: String = response
        .text()
        .unwrap_or_default()
        .chars()
        .take(500)
        .collect();
    let body = body.trim().to_owned();
    Ok(if status.is_success() {
        Answer::Ok(body)
    } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        Answer::Retry(format!("HTTP {status}: {body}"))
    } else if status.is_redirection() {
        return Err(format!(
            "HTTP {status}: {body} (a redirect: point `url` at the final address)"
        ));
    } else {
        Answer::Status(status, body)
    })
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
