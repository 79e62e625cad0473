#!/usr/bin/env bash
# Sets up (idempotently) and runs every check: formatting, clippy, and the
# whole test suite (unit tests, and integration tests against a real
# Prometheus and sandboxed guest plugins built from source, Rust, Python and
# JavaScript ones: examples/plugins/build.sh installs componentize-py and
# componentize-js under target/polyglot with pip and npm).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)
for guest in tests/guests/misbehave tests/guests/v0_1_model tests/guests/v0_1_format \
    tests/guests/v0_2_model tests/guests/v0_2_format; do
    (cd "$guest" && cargo fmt --all -- --check)
done
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --all-targets --features failpoints -- -D warnings
# The SDK and builtins, both worlds' features at once, as a site's workspace lints them.
(cd plugins && CARGO_TARGET_DIR="$PWD/../target/guests" \
    cargo clippy --locked --target wasm32-wasip2 --workspace -- -D warnings)
docs/book/check-links.sh; mdbook build docs/book; mdbook test docs/book  # the book: links, build, code blocks (each fails the script: no && under set -e)
# The crash tests need the failpoints a release build does not have.
cargo test --locked --features failpoints
