//! An error's message and its causes', as one line.

/// `error`'s message followed by each of its causes', `: `-joined: a TLS
/// certificate problem is a cause of reqwest's "error sending request", and
/// only the chain names it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
