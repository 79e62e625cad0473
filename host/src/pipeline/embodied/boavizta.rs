//! A host entry's figure from a running BoaviztAPI
//! (`docs/ENERGY.md#embodied-carbon`): the server's whole-life manufacture
//! (`impacts.gwp.embedded.value`, kgCO2eq) and life
//! (`verbose.hours_life_time.value`, hours), asked once per run per entry
//! (`GET /v1/server/?archetype=…`, or `POST /v1/server/` with a
//! configuration), the answer kept under the state directory.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error_chain::error_chain;

/// How long one request may take (the cloud APIs' and Prometheus's default).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Milliseconds in a day of `cache_days`.
const DAY_MS: i64 = 86_400_000;

/// The longest part of an error answer's body a warning quotes.
const BODY_EXCERPT: usize = 300;

/// What a host entry asks BoaviztAPI about.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// One of its server archetypes (`GET /v1/server/?archetype=…`).
    Archetype(String),
    /// A server configuration (`POST /v1/server/` with it as the body).
    Config(Map<String, Value>),
}

/// What BoaviztAPI said of a server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Answer {
    /// The server's manufacture, kg CO2e (`impacts.gwp.embedded.value`).
    pub kg_co2e: f64,
    /// Its life, hours (`verbose.hours_life_time.value`), where given.
    pub hours_life_time: Option<f64>,
}

/// Why BoaviztAPI gave no figure.
#[derive(Debug, thiserror::Error)]
pub enum BoaviztaError {
    /// No answer: refused, timed out, not HTTP.
    #[error("it cannot be reached ({0}): check that BoaviztAPI runs at that URL")]
    Unreachable(String),
    /// The archetype is not one of BoaviztAPI's (404).
    #[error(
        "it knows no server archetype {0:?} (404): pick one of GET /v1/server/archetypes, or \
         describe the server with config = {{ … }} instead of archetype"
    )]
    UnknownArchetype(String),
    /// Another status than 200.
    #[error("it answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// A 200 without the figure.
    #[error("its answer has no number at impacts.gwp.embedded.value ({0})")]
    NoValue(String),
}

/// One host entry's BoaviztAPI, and its answer once asked.
#[derive(Debug)]
pub struct Boavizta {
    /// The API's base URL, without a trailing `/`.
    url: String,
    /// What is asked.
    request: Request,
    /// `boavizta:<archetype>` or `boavizta:config`.
    source: String,
    /// The answer of this run: unset until asked, None when none came.
    answer: OnceLock<Option<Answer>>,
}

impl Boavizta {
    /// An entry's API at `url` (checked: http or https), asked `request`.
    pub fn new(url: &str, request: Request) -> Self {
        let source = match &request {
            Request::Archetype(name) => format!("boavizta:{name}"),
            Request::Config(_) => "boavizta:config".to_owned(),
        };
        Self {
            url: url.trim_end_matches('/').to_owned(),
            request,
            source,
            answer: OnceLock::new(),
        }
    }

    /// The base URL, as warnings name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The records' `embodied_source`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// This run's answer, once asked and where one came.
    pub fn answer(&self) -> Option<Answer> {
        self.answer.get().copied().flatten()
    }

    /// Whether it was asked in this run already.
    pub fn asked(&self) -> bool {
        self.answer.get().is_some()
    }

    /// The request's URL: `/v1/server/` with `criteria=gwp&verbose=true`
    /// (and `archetype=…`); no `duration`, so the whole life.
    fn endpoint(&self) -> Result<reqwest::Url, BoaviztaError> {
        let mut url = reqwest::Url::parse(&format!("{}/v1/server/", self.url))
            .map_err(|e| BoaviztaError::Unreachable(e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            if let Request::Archetype(name) = &self.request {
                query.append_pair("archetype", name);
            }
            query.append_pair("criteria", "gwp");
            query.append_pair("verbose", "true");
        }
        Ok(url)
    }

    /// The cache file's name: sha256 of the URL and the request.
    pub fn cache_name(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.url.as_bytes());
        hash.update(b"\n");
        match &self.request {
            Request::Archetype(name) => hash.update(format!("archetype={name}").as_bytes()),
            Request::Config(config) => {
                hash.update(b"config=");
                hash.update(Value::Object(config.clone()).to_string().as_bytes());
            }
        }
        format!("{}.json", hex::encode(hash.finalize()))
    }

    /// Asks the API (or takes a cached answer younger than `cache_days`
    /// from `cache`, the state directory's `embodied/`), keeps the answer
    /// for this run and writes it to `cache` where that directory's parent
    /// exists. Returns why there is none; asked once per run.
    pub async fn ask(
        &self,
        http: &reqwest::Client,
        cache: Option<&Path>,
        cache_days: u32,
        now_ms: i64,
    ) -> Result<Answer, BoaviztaError> {
        let file = cache.map(|dir| dir.join(self.cache_name()));
        let cached = match (&file, cache_days) {
            (Some(file), 1..) => cached(file, now_ms - i64::from(cache_days) * DAY_MS),
            _ => None,
        };
        let outcome = match cached {
            Some(answer) => Ok(answer),
            None => self.fetch(http).await.and_then(|body| {
                let answer = parse(&body)?;
                if let Some(file) = &file {
                    self.keep(file, body, now_ms);
                }
                Ok(answer)
            }),
        };
        let _ = self.answer.set(outcome.as_ref().ok().copied());
        outcome
    }

    /// One request; the answer's JSON on 200.
    async fn fetch(&self, http: &reqwest::Client) -> Result<Value, BoaviztaError> {
        let url = self.endpoint()?;
        let request = match &self.request {
            Request::Archetype(_) => http.get(url),
            Request::Config(config) => http.post(url).json(config),
        };
        let response = request
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| BoaviztaError::Unreachable(error_chain(&e.without_url())))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| BoaviztaError::Unreachable(error_chain(&e.without_url())))?;
        match (status.as_u16(), &self.request) {
            (200, _) => serde_json::from_str(&text)
                .map_err(|e| BoaviztaError::NoValue(format!("not JSON: {e}"))),
            (404, Request::Archetype(name)) => Err(BoaviztaError::UnknownArchetype(name.clone())),
            (status, _) => Err(BoaviztaError::Status {
                status,
                body: text.chars().take(BODY_EXCERPT).collect(),
            }),
        }
    }

    /// Writes `body` to `file` with when it was asked; a directory that
    /// cannot be made or a file that cannot be written is logged, never fatal.
    fn keep(&self, file: &Path, body: Value, now_ms: i64) {
        let Some(dir) = file.parent() else { return };
        // Only under a state directory that exists (a dry run makes none).
        if !dir.parent().is_some_and(Path::is_dir) {
            return;
        }
        let request = match &self.request {
            Request::Archetype(name) => serde_json::json!({ "archetype": name }),
            Request::Config(config) => serde_json::json!({ "config": config }),
        };
        let kept = serde_json::json!({
            "url": self.url,
            "request": request,
            "asked_at_ms": now_ms,
            "answer": body,
        });
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            let tmp = file.with_extension("json.tmp");
            std::fs::write(&tmp, kept.to_string())?;
            std::fs::rename(&tmp, file)
        });
        if let Err(e) = written {
            tracing::debug!(file = %file.display(), "BoaviztAPI's answer not cached: {e}");
        }
    }
}

/// The answer cached in `file`, if asked at or after `since_ms`.
fn cached(file: &Path, since_ms: i64) -> Option<Answer> {
    let text = std::fs::read_to_string(file).ok()?;
    let kept: Value = serde_json::from_str(&text).ok()?;
    let asked_at = kept.get("asked_at_ms")?.as_i64()?;
    if asked_at < since_ms {
        return None;
    }
    let answer = parse(kept.get("answer")?).ok()?;
    tracing::debug!(file = %file.display(), asked_at, "BoaviztAPI's cached answer used");
    Some(answer)
}

/// `impacts.gwp.embedded.value` (a number, 0 or more) and
/// `verbose.hours_life_time.value` (a number above 0, else left out).
pub fn parse(body: &Value) -> Result<Answer, BoaviztaError> {
    let embedded = body.pointer("/impacts/gwp/embedded/value");
    let kg_co2e = embedded
        .and_then(Value::as_f64)
        .filter(|kg| kg.is_finite() && *kg >= 0.0)
        .ok_or_else(|| {
            BoaviztaError::NoValue(match embedded {
                Some(v) => format!("it is {v}"),
                None => "it is missing".to_owned(),
            })
        })?;
    let hours_life_time = body
        .pointer("/verbose/hours_life_time/value")
        .and_then(Value::as_f64)
        .filter(|h| h.is_finite() && *h > 0.0);
    Ok(Answer {
        kg_co2e,
        hours_life_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A2's answer (BoaviztAPI 2.5.0, `platform_compute_medium`), cut down.
    fn answer() -> Value {
        serde_json::json!({
            "impacts": {"gwp": {"unit": "kgCO2eq", "embedded": {"value": 900.0, "min": 459.9},
                                "use": {"value": 7000.0}}},
            "verbose": {"hours_life_time": {"value": 35040.0, "unit": "hours"}}
        })
    }

    #[test]
    fn the_figure_and_life_are_read_where_boavizta_puts_them() {
        assert_eq!(
            parse(&answer()).unwrap(),
            Answer {
                kg_co2e: 900.0,
                hours_life_time: Some(35040.0)
            }
        );
        let mut no_life = answer();
        no_life["verbose"] = Value::Null;
        assert_eq!(parse(&no_life).unwrap().hours_life_time, None);
        let mut text = answer();
        text["impacts"]["gwp"]["embedded"]["value"] = "not implemented".into();
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("impacts.gwp.embedded.value") && e.contains("not implemented"),
            "{e}"
        );
        assert!(parse(&serde_json::json!({})).is_err());
    }

    #[test]
    fn the_request_and_its_cache_name_follow_the_entry() {
        let get = Boavizta::new("http://127.0.0.1:5000/", Request::Archetype("a b".into()));
        assert_eq!(
            get.endpoint().unwrap().as_str(),
            "http://127.0.0.1:5000/v1/server/?archetype=a+b&criteria=gwp&verbose=true"
        );
        assert_eq!(get.source(), "boavizta:a b");
        let post = Boavizta::new("http://127.0.0.1:5000", Request::Config(Map::new()));
        assert_eq!(
            post.endpoint().unwrap().as_str(),
            "http://127.0.0.1:5000/v1/server/?criteria=gwp&verbose=true"
        );
        assert_eq!(post.source(), "boavizta:config");
        assert_ne!(get.cache_name(), post.cache_name());
        assert_eq!(get.cache_name().len(), 64 + 5);
    }

    #[test]
    fn a_cached_answer_is_used_only_while_young_enough() {
        let dir = tempfile::tempdir().unwrap();
        let entry = Boavizta::new("http://127.0.0.1:9", Request::Archetype("x".into()));
        let file = dir.path().join("embodied").join(entry.cache_name());
        entry.keep(&file, answer(), 1_000);
        assert_eq!(cached(&file, 1_000).map(|a| a.kg_co2e), Some(900.0));
        assert_eq!(cached(&file, 1_001), None);
    }
}
