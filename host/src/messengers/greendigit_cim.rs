//! `greendigit-cim`: EGI GreenDIGIT's CIM service, as cASO 5.2.2's
//! `GreenDIGITEnergyMessenger` talks to it. A bearer token comes from
//! `GET {url}{token_path}?email=…&password=…` (`{access_token, token_type,
//! expires_in}`; the service wants the password in the query string, so
//! plain `http://` is refused unless `allow_insecure`); each payload (the
//! `apel-energy` format's JSON lines, one cASO EnergyRecord each) is POSTed
//! to `{url}{submit_path}` as one JSON array.
//!
//! The token is kept until shortly before `expires_in`; a 401 on submit
//! fetches a new one once and retries; timeouts, connection errors and 5xx
//! are retried with exponential backoff; any other 4xx fails at once with the
//! service's answer. A submit the service accepted is noted in the payload's
//! journal, so a crash before the spool's bookkeeping does not post it again.
//! The password is read when a token is needed and appears in no log, error
//! or `Debug` output (request errors are reported without their URL).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::http::{Answer, answer};
use super::{DeliveryError, Messenger, Payload};

/// A token is renewed this long before the service said it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Where the password comes from.
#[derive(Clone, Debug)]
pub enum Password {
    /// This environment variable.
    Env(String),
    /// This file (trailing whitespace trimmed).
    File(PathBuf),
}

/// Settings of a [`GreenDigitCim`] messenger.
#[derive(Clone, Debug)]
pub struct CimSettings {
    /// Base URL, e.g. `https://greendigit-cim.sztaki.hu`.
    pub url: String,
    /// Path of the token endpoint.
    pub token_path: String,
    /// Path of the submit endpoint.
    pub submit_path: String,
    /// The account's email.
    pub email: String,
    /// The account's password.
    pub password: Password,
    /// Per-request timeout, seconds.
    pub timeout_secs: f64,
    /// Retries after a timeout, connection error or 5xx.
    pub retries: u32,
    /// First retry delay, milliseconds; doubles each retry.
    pub backoff_ms: u64,
}

/// Posts cASO EnergyRecords to GreenDIGIT CIM.
#[derive(Debug)]
pub struct GreenDigitCim {
    settings: CimSettings,
    client: Result<reqwest::blocking::Client, String>,
    token: Option<Token>,
}

/// A bearer token and when to stop using it.
struct Token {
    value: String,
    renew_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// How one request went.
enum Outcome<T> {
    Done(T),
    /// The bearer token was refused (401 on submit).
    Unauthorized,
    /// Worth another attempt (timeout, connection error, 5xx, 408, 429).
    Retry(String),
}

impl GreenDigitCim {
    /// A messenger for `settings`.
    pub fn new(settings: CimSettings) -> Self {
        let client = reqwest::blocking::Client::builder()
            .timeout(crate::timeout::from_secs(settings.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string());
        Self {
            settings,
            client,
            token: None,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.settings.url.trim_end_matches('/'))
    }

    /// Runs `attempt` until it is done, fails for good, or the retries are spent.
    fn retrying<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Result<Outcome<T>, String>,
    ) -> Result<Outcome<T>, String> {
        let mut n = 0;
        loop {
            match attempt()? {
                Outcome::Retry(reason) if n < self.settings.retries => {
                    tracing::warn!(url = %self.settings.url, attempt = n + 1, "{what}: {reason}; retrying");
                    std::thread::sleep(
                        Duration::from_millis(self.settings.backoff_ms) * 2u32.saturating_pow(n),
                    );
                    n += 1;
                }
                Outcome::Retry(reason) => {
                    return Err(format!("{what}: {reason} (after {} attempts)", n + 1));
                }
                done => return Ok(done),
            }
        }
    }

    /// A valid token: the cached one, or a new one from the service.
    fn token(&mut self) -> Result<String, String> {
        if let Some(token) = &self.token
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        let password = match &self.settings.password {
            Password::Env(var) => crate::secrets::read(Some(var), None),
            Password::File(path) => crate::secrets::read(None, Some(path)),
        }?
        .ok_or("no password: set password_env or password_file")?;
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = self.endpoint(&self.settings.token_path);
        let email = self.settings.email.clone();
        let outcome = self.retrying("token request", || {
            let response = client
                .get(&url)
                .query(&[("email", email.as_str()), ("password", password.as_str())])
                .send();
            Ok(match answer(response, true)? {
                Answer::Ok(body) => Outcome::Done(body),
                Answer::Status(status, body) if matches!(status.as_u16(), 401 | 403) => {
                    return Err(format!(
                        "the service refused the email and password (HTTP {status}: {body}): check email and the password's source"
                    ));
                }
                Answer::Status(status, body) => {
                    return Err(format!("HTTP {status}: {body} (not retried)"));
                }
                Answer::Retry(reason) => Outcome::Retry(reason),
            })
        })?;
        let Outcome::Done(body) = outcome else {
            return Err("token request: no answer".into());
        };
        let parsed: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| format!("token request: the answer is not JSON ({e})"))?;
        let value = parsed
            .get("access_token")
            .or_else(|| parsed.get("token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or("token request: the answer has no access_token")?
            .to_owned();
        let lifetime = parsed
            .get("expires_in")
            .and_then(serde_json::Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(Duration::ZERO, |s| {
                Duration::from_secs_f64(s.min(86_400.0)).saturating_sub(RENEW_BEFORE)
            });
        self.token = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + lifetime,
        });
        Ok(value)
    }

    /// POSTs `body` with a token; a refused token is renewed once.
    fn submit(&mut self, body: &[u8]) -> Result<(), String> {
        let mut renewed = false;
        loop {
            let token = self.token()?;
            let client = self.client.as_ref().map_err(Clone::clone)?;
            let url = self.endpoint(&self.settings.submit_path);
            let outcome = self.retrying("submit", || {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_vec())
                    .send();
                Ok(match answer(response, true)? {
                    Answer::Ok(_) => Outcome::Done(()),
                    Answer::Status(status, _) if status.as_u16() == 401 => Outcome::Unauthorized,
                    Answer::Status(status, body) => {
                        return Err(format!(
                            "HTTP {status}: {body} (not retried: fix the records or the account)"
                        ));
                    }
                    Answer::Retry(reason) => Outcome::Retry(reason),
                })
            })?;
            match outcome {
                Outcome::Done(()) => return Ok(()),
                Outcome::Unauthorized if !renewed => {
                    tracing::info!(url = %self.settings.url, "the token was refused (HTTP 401); fetching a new one");
                    self.token = None;
                    renewed = true;
                }
                _ => {
                    return Err(
                        "HTTP 401 with a new token too: check that the account may submit".into(),
                    );
                }
            }
        }
    }
}

/// The payload as one JSON array: `apel-energy`'s lines (one object each)
/// joined, or an array as it is.
fn json_array(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the payload is not UTF-8".to_owned())?;
    let not_records = |e: String| {
        format!(
            "the payload is not JSON records ({e}): greendigit-cim posts the apel-energy format's records (wire = \"json\")"
        )
    };
    if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<serde_json::Map<String, serde_json::Value>>>(text)
            .map_err(|e| not_records(e.to_string()))?;
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'[');
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
            .map_err(|e| not_records(format!("line {}: {e}", i + 1)))?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(line.trim().as_bytes());
    }
    out.push(b']');
    Ok(out)
}

impl Messenger for GreenDigitCim {
    fn name(&self) -> String {
        format!("greendigit-cim {}", self.settings.url)
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        if super::accepted_before(payload) {
            tracing::info!(messenger = %self.name(), "the service accepted this payload before the last run stopped: not posted again");
            return Ok(());
        }
        json_array(payload.bytes)
            .and_then(|body| self.submit(&body))
            .map_err(|reason| DeliveryError {
                messenger: self.name(),
                reason,
            })?;
        super::note_accepted(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_become_one_array_and_other_text_is_refused() {
        let lines = b"{\"a\":1}\n{\"b\":2}\n";
        assert_eq!(json_array(lines).unwrap(), b"[{\"a\":1},{\"b\":2}]");
        assert_eq!(json_array(b"[{\"a\":1}]").unwrap(), b"[{\"a\":1}]");
        let e = json_array(b"APEL-energy-message: v0.1\nSiteName: S\n").unwrap_err();
        assert!(e.contains("wire = \"json\""), "{e}");
    }

    #[test]
    fn debug_shows_no_password_or_token() {
        let mut cim = GreenDigitCim::new(CimSettings {
            url: "https://cim.example.org".into(),
            token_path: "/t".into(),
            submit_path: "/s".into(),
            email: "a@example.org".into(),
            password: Password::Env("CIM_PASSWORD".into()),
            timeout_secs: 1.0,
            retries: 0,
            backoff_ms: 1,
        });
        cim.token = Some(Token {
            value: "secret-token".into(),
            renew_at: Instant::now(),
        });
        let debug = format!("{cim:?}");
        assert!(!debug.contains("secret-token"), "{debug}");
    }
}
