//! Any text as a policy file: parsed and checked, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wattson::policy::{Policy, Source};

fuzz_target!(|text: &str| {
    let _ = Policy::parse(Source::new(Path::new("fuzz.toml"), text.to_owned()));
});
