#!/usr/bin/env bash
# Sets up (idempotently) and runs every check: formatting, clippy, and the
# whole test suite (unit tests, and integration tests against a real
# Prometheus and sandboxed guest plugins built from source).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)
(cd tests/guests/misbehave && cargo fmt --all -- --check)
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
