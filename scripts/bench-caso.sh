#!/usr/bin/env bash
# Side by side with cASO 5.2.2 on the same Prometheus (../shared/peers/caso):
# N VMs × H hours (default 1000 × 24). Runs the peer harness with KEEP=1 (cASO
# timed, ground truth written, server left up), then in the same session:
# wattson extract --dry-run --format jsonl (best of REPEAT), the batched floor
# (floor.py, best of REPEAT before wattson and after), and compare.py on
# wattson's joules. Prints the ratios and wattson's peak RSS. CASO=0 skips
# cASO (for 10k/100k VMs, where it would take minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}; H=${2:-24}; REPEAT=${REPEAT:-3}
PEER_MODES=gauge
[ "${CASO:-1}" = 1 ] || PEER_MODES=" "
source scripts/bench-peer.sh
caso_s=$( (grep '^caso_peer' "$work/peer.txt" || true) | tail -1 | sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p')
caso_s=${caso_s:-nan}

# The floor is timed before and after wattson, and the best of both counts:
# this machine's speed drifts by tens of percent over minutes, and the floor
# gets every chance to be at its fastest.
floor() {
    python3 "$peer/floor.py" --prometheus-url "$url" --from "$from" --to "$to" --repeat "$REPEAT" --out "$work/floor.json" | tail -1 | sed -n 's/.*floor_s=\([0-9.]*\).*/\1/p'
}
floor_before=$(floor)

# wattson by each read path (READS, default both): remote read of the raw
# chunks, and the batched PromQL recipe.
declare -A best_of rss_of cmp_of
for read in ${READS:-remote-read promql}; do
    time_extract "$work/wattson.jsonl" \
        --policy policies/libvirt-joules.toml --prometheus "$url" \
        --set "prometheus.read=\"$read\"" --from "$from" --to "$to"
    python3 - "$work/wattson.jsonl" "$work/wattson.json" <<'PY'
import json, sys
out = {}
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        out[r["vm_uuid"]] = r["energy_joules"]
json.dump(out, open(sys.argv[2], "w"))
PY
    best_of[$read]=$best; rss_of[$read]=$rss
    cmp_of[$read]=$(python3 "$peer/compare.py" --truth "$truth" --got "$work/wattson.json" --unit J --label "wattson-$read" 2>&1 | tail -1)
done
floor_after=$(floor)
floor_s=$(awk -v a="$floor_before" -v b="$floor_after" 'BEGIN{print (a < b ? a : b)}')
echo "floor before=$floor_before after=$floor_after best=$floor_s"

for read in ${READS:-remote-read promql}; do
    best=${best_of[$read]}
    echo "wattson read=$read n_vms=$N hours=$H wattson_s=$best floor_s=$floor_s caso_s=$caso_s peak_rss_mb=$(( ${rss_of[$read]} / 1024 ))"
    echo "ratios read=$read wattson/floor=$(awk -v a="$best" -v b="$floor_s" 'BEGIN{printf "%.2f", a/b}') caso/wattson=$(awk -v a="$caso_s" -v b="$best" 'BEGIN{printf "%.1f", a/b}')"
    echo "accuracy ${cmp_of[$read]}"
done
echo "Prometheus left running at $url: stop it with $peer/prom.sh stop <data dir> <port> (see above)" >&2
