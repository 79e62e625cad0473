//! `lastrun`: the end of the last window delivered everywhere.

use std::path::Path;

use super::{StateError, write_atomic};
use crate::window::format_ms;

pub(crate) fn read(path: &Path) -> Result<Option<i64>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(super::io(path)(e)),
    };
    text.split_whitespace()
        .next()
        .and_then(|ms| ms.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| StateError::Corrupt {
            path: path.to_owned(),
            reason: format!("expected `<end ms> <RFC 3339>`, found `{}`", text.trim()),
        })
}

pub(crate) fn write(path: &Path, end_ms: i64) -> Result<(), StateError> {
    write_atomic(path, format!("{end_ms} {}\n", format_ms(end_ms)).as_bytes())
}
