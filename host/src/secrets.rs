//! Secrets a policy names but never holds: bearer tokens and passwords come
//! from an environment variable or a file, read when needed, never logged.

use std::path::Path;

/// The secret in environment variable `env`, else in file `file` (trailing
/// whitespace trimmed); `None` when neither is named.
pub fn read(env: Option<&str>, file: Option<&Path>) -> Result<Option<String>, String> {
    if let Some(var) = env {
        return std::env::var(var)
            .map(|v| Some(v.trim().to_owned()))
            .map_err(|_| format!("environment variable {var} is not set"));
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|v| Some(v.trim().to_owned()))
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    Ok(None)
}
