#!/usr/bin/env bash
# The per-VM gauge path: `scaphandre` on N VMs over HOSTS hypervisors × H
# hours (default 10000 × 24, 500 hosts, a scrape every STEP=30 s) from a real
# Prometheus, by each read path (READS, default both), against the floor
# measured in the same run: one avg_over_time() over the same per-VM series
# (best of REPEAT). scripts/gen-scaphandre.py writes the data and ENERGY.md's
# G1 on it; wattson's records are compared with it. Prints the times, the
# ratio, the largest relative error and wattson's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}; H=${2:-24}; HOSTS=${HOSTS:-500}; STEP=${STEP:-30}; REPEAT=${REPEAT:-3}
peer=$(cd ../shared/peers/caso && pwd)
work=$(mktemp -d /tmp/wattson-scaphandre.XXXXXX)
source scripts/bench-common.sh

to=1748822400   # 2025-06-02T00:00:00Z
from=$((to - H * 3600))
python3 scripts/gen-scaphandre.py --n-vms "$N" --hosts "$HOSTS" --from "$from" --to "$to" \
    --step "$STEP" --out "$work/data.om" --truth "$work/truth.json" >&2
start_prometheus "$work/data.om"
rm -f "$work/data.om"

selector='scaph_process_power_consumption_microwatts{exe=~"qemu-system-x86_64|qemu-kvm",vmname!=""}'
python3 - "$url" "$to" "$((to - from))" "$REPEAT" "$selector" <<'PY' > "$work/floor"
import json, sys, time, urllib.parse, urllib.request
url, t1, w, repeat, selector = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
q = f"avg_over_time({selector}[{w}s])"
best = None
for _ in range(repeat):
    s = time.perf_counter()
    body = urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t1}), timeout=600).read()
    n = len(json.loads(body)["data"]["result"])
    e = time.perf_counter() - s
    best = e if best is None else min(best, e)
print(f"{best:.4f} {n}")
PY
read -r floor_s floor_series < "$work/floor"

for read in ${READS:-remote-read promql}; do
    time_extract "$work/wattson.jsonl" \
        --policy policies/scaphandre.toml --prometheus "$url" \
        --set "prometheus.read=\"$read\"" --from "$from" --to "$to"
    accuracy=$(python3 - "$work/wattson.jsonl" "$work/truth.json" <<'PY'
import json, sys
want = json.load(open(sys.argv[2]))
have = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    have[r["vm_uuid"]] = r["energy_joules"]
missing = sorted(set(want) - set(have)); extra = sorted(set(have) - set(want))
err = max(abs(have[u] - want[u]) / max(abs(want[u]), 1e-300) for u in want if u in have)
print(f"records={len(have)} truth={len(want)} missing={len(missing)} extra={len(extra)} max_rel_err={err:.3e}")
PY
)
    echo "wattson read=$read n_vms=$N hosts=$HOSTS hours=$H wattson_s=$best floor_s=$floor_s floor_series=$floor_series wattson/floor=$(awk -v a="$best" -v b="$floor_s" 'BEGIN{printf "%.2f", a/b}') peak_rss_mb=$(( rss / 1024 )) $accuracy"
done
