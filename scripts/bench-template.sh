#!/usr/bin/env bash
# The per-VM template path (a cASO-style `{{uuid}}` query per VM) for N VMs
# (default 1000) over H hours (default 24), on the peer harness' Prometheus
# (../shared/peers/caso, cASO itself not run): wattson extract with the
# `prometheus-query` model and `[prometheus] concurrency` = 16 (the default),
# against the same extract with concurrency = 1 (the same queries one after
# another on one connection), best of REPEAT each, in the same session.
# RTTS (default "0 1 10") lists round trips in ms: for each one above 0 both
# runs go through scripts/latency-proxy.py, which adds that round trip to
# every request, as a Prometheus in another room or site would.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}; H=${2:-24}; REPEAT=${REPEAT:-3}
PEER_MODES=" "
source scripts/bench-peer.sh

policy() {
    cat > "$work/c$1.toml" <<TOML
[site]
name = "BENCH"
compute_service = "c"
[prometheus]
url = "$2"
concurrency = $1
[inventory]
# The peer data has no info series: the energy counter itself lists the VMs.
meta_metric = "libvirt_domain_info_energy_consumption_joules_total"
[model]
plugin = "prometheus-query"
[model.params]
query = 'sum(increase(libvirt_domain_info_energy_consumption_joules_total{uuid="{{uuid}}"}[{{window}}]))'
unit = "J"
TOML
    echo "$work/c$1.toml"
}

best_of() {
    local best="" t0 t1 s
    for _ in $(seq 1 "$REPEAT"); do
        t0=$(date +%s.%N)
        WATTSON_LOG=warn "$wattson" extract --policy "$1" --from "$from" --to "$to" \
            --dry-run --format jsonl > "$work/out.jsonl"
        t1=$(date +%s.%N)
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')
        best=$(awk -v a="$s" -v b="${best:-1e9}" 'BEGIN{print (a<b)?a:b}')
    done
    records=$(grep -c . "$work/out.jsonl")
    echo "$best $records"
}

proxy_pid=""
trap '[ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true' EXIT
for rtt in ${RTTS:-0 1 10}; do
    target=$url
    if [ "$rtt" != 0 ]; then
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        python3 scripts/latency-proxy.py "$port" "${url#http://}" "$rtt" > "$work/proxy.out" &
        proxy_pid=$!
        until grep -q ready "$work/proxy.out" 2>/dev/null; do sleep 0.1; done
        target=http://127.0.0.1:$port
    fi
    read -r conc conc_records <<<"$(best_of "$(policy 16 "$target")")"
    read -r seq seq_records <<<"$(best_of "$(policy 1 "$target")")"
    echo "template n_vms=$N hours=$H rtt_ms=$rtt concurrent16_s=$conc records=$conc_records sequential_s=$seq records=$seq_records ratio=$(awk -v a="$conc" -v b="$seq" 'BEGIN{printf "%.3f", a/b}')"
    if [ -n "$proxy_pid" ]; then kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=""; fi
done
echo "Prometheus left running at $url: stop it with $peer/prom.sh (see above)" >&2
