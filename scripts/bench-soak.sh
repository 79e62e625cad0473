#!/usr/bin/env bash
# A week of daemon in minutes (issue 33): the soak test of
# tests/integration/soak.rs, in a release build and alone in its process (so
# the RSS it measures is the daemon's loop and nothing else), over HOURS
# simulated hours at DOMAINS libvirt test-driver domains.
#
#   ./scripts/bench-soak.sh [HOURS=168] [DOMAINS=1000]
#
# The test prints the samples taken, the records delivered, and the peak of
# daemon.json's size and of the RSS per simulated day; it asserts every joule
# (1e-9), each window delivered once, and (from three days on) the last
# day's peaks within 10 % of the first's (RSS) and second's (state).
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=${1:-168}
DOMAINS=${2:-1000}
cargo test --release --locked --test integration --no-run 2>&1 | tail -1
start=$(date +%s.%N)
WATTSON_SOAK_HOURS=$HOURS WATTSON_SOAK_DOMAINS=$DOMAINS \
    cargo test --release --locked --test integration -- --exact \
    soak::a_week_of_daemon_keeps_every_joule_and_ships_each_window_once \
    --nocapture --test-threads 1 2>&1 | grep -E '^soak:|test result|panicked|assert'
echo "wall: $(echo "$(date +%s.%N) - $start" | bc) s for $HOURS simulated hours"
