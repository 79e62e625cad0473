#!/usr/bin/env bash
# The demo: sets everything up, generates a small data set, backfills it into
# a local Prometheus on a free 127.0.0.1 port, runs `wattson extract` with
# policies/demo.toml over one hour, prints the records, stops Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --locked --bin wattson
wattson=target/debug/wattson

work=$(mktemp -d /tmp/wattson-demo.XXXXXX)
pid=""
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

python3 examples/demo/gen.py "$work/demo.om"
promtool tsdb create-blocks-from openmetrics "$work/demo.om" "$work/data" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" \
    >"$work/prometheus.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
    sleep 0.2
done
echo "demo Prometheus on http://127.0.0.1:$port (pid $pid); data 2025-06-01T00:00:00Z..06:00:00Z" >&2

# The records of one window, as a cASO receiver would get them...
echo "== wattson extract, one window (caso-json records)" >&2
"$wattson" extract --policy policies/demo.toml --prometheus "http://127.0.0.1:$port" \
    --from 2025-06-01T04:00:00Z --to 2025-06-01T05:00:00Z
# ...and the whole period per project and per VM, as accounting asks for it.
echo "== wattson report, the whole period" >&2
"$wattson" --log warn report --policy policies/demo.toml --prometheus "http://127.0.0.1:$port" \
    --from 2025-06-01T00:00:00Z --to 2025-06-01T06:00:00Z
"$wattson" --log warn report --policy policies/demo.toml --prometheus "http://127.0.0.1:$port" \
    --from 2025-06-01T00:00:00Z --to 2025-06-01T06:00:00Z --by vm
