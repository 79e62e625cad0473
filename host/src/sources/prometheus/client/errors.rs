//! The errors a [`Client`] names: each says the endpoint, the query and,
//! for a bound, the setting to change.

use super::Client;
use crate::error_chain::error_chain;
use crate::sources::prometheus::answer::Cut;
use crate::sources::prometheus::{Conflict, PrometheusError};

impl Client {
    /// The error for an answer to `query` that passed a bound.
    pub(in crate::sources::prometheus) fn cut(&self, query: &str, cut: Cut) -> PrometheusError {
        match cut {
            Cut::Series => self.too_many_series(query),
            Cut::Decoded => PrometheusError::TooMuchDecoded {
                url: self.base.clone(),
                query: query.to_owned(),
                limit_mib: self.config.max_decoded_mib,
            },
            Cut::Label { after, start } => PrometheusError::LabelTooLong {
                url: self.base.clone(),
                query: query.to_owned(),
                label: format!("`{after}` = \"{start}…\""),
                limit_kib: self.config.max_label_kib,
            },
        }
    }

    /// Two values of `series` at one instant in the answer to `query`.
    pub(in crate::sources::prometheus) fn conflicting(
        &self,
        query: &str,
        series: &str,
        conflict: Conflict,
    ) -> PrometheusError {
        PrometheusError::Conflicting {
            url: self.base.clone(),
            query: query.to_owned(),
            series: series.chars().take(300).collect(),
            t_ms: conflict.t_ms,
            first: conflict.first,
            second: conflict.second,
        }
    }

    /// The answer to `query` has more than `max_series` series.
    pub(in crate::sources::prometheus) fn too_many_series(&self, query: &str) -> PrometheusError {
        PrometheusError::TooManySeries {
            url: self.base.clone(),
            query: query.to_owned(),
            limit: self.config.max_series,
        }
    }

    /// The answer to `query` passed `max_response_mib`.
    pub(in crate::sources::prometheus) fn too_large(&self, query: &str) -> PrometheusError {
        PrometheusError::TooLarge {
            url: self.base.clone(),
            query: query.to_owned(),
            limit_mib: self.config.max_response_mib,
        }
    }

    pub(super) fn unreachable(&self, query: &str, error: reqwest::Error) -> PrometheusError {
        let reason = if error.is_timeout() {
            // reqwest's own message says less than the configured limit.
            let timed_out = format!("timed out after {} s", self.config.timeout_secs);
            match std::error::Error::source(&error) {
                Some(cause) => format!("{timed_out}: {}", error_chain(cause)),
                None => timed_out,
            }
        } else {
            error_chain(&error)
        };
        PrometheusError::Unreachable {
            url: self.base.clone(),
            query: query.to_owned(),
            reason,
        }
    }

    pub(super) fn bad_answer(&self, query: &str, reason: String) -> PrometheusError {
        PrometheusError::BadAnswer {
            url: self.base.clone(),
            query: query.to_owned(),
            reason,
        }
    }
}
