#!/usr/bin/env bash
# rapl-share on N VMs over HOSTS hypervisors × H hours (default 10000 × 24,
# 500 hosts, a scrape every STEP=60 s) from a real Prometheus, against the
# batched floor measured in the same run: one increase() over the CPU-time
# counter and one over the RAPL zones, issued at once (best of REPEAT each).
# scripts/gen-shares.py writes the data and ENERGY.md's answer; wattson's
# records are compared with it. Prints the times, the ratio, the largest
# relative error and wattson's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}; H=${2:-24}; HOSTS=${HOSTS:-500}; STEP=${STEP:-60}; REPEAT=${REPEAT:-3}
peer=$(cd ../shared/peers/caso && pwd)
work=$(mktemp -d /tmp/wattson-shares.XXXXXX)
source scripts/bench-common.sh

to=1748822400   # 2025-06-02T00:00:00Z
from=$((to - H * 3600))
python3 scripts/gen-shares.py --n-vms "$N" --hosts "$HOSTS" --from "$from" --to "$to" \
    --step "$STEP" --idle-w 80 --out "$work/data.om" --truth "$work/truth.json" >&2
start_prometheus "$work/data.om"

time_extract "$work/wattson.jsonl" \
    --policy policies/rapl-share.toml --prometheus "$url" \
    --set 'rapl.max_energy_range_uj={ package = 262143328850, dram = 65712999613 }' \
    --set model.params.idle='"vcpus"' --set model.params.idle_power=80 \
    --from "$from" --to "$to"

python3 - "$url" "$from" "$to" "$REPEAT" "$work/wattson.jsonl" "$work/truth.json" <<'PY'
import concurrent.futures, json, sys, time, urllib.parse, urllib.request
url, t0, t1, repeat, got, truth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
w = t1 - t0
queries = [
    f"increase(libvirt_domain_info_cpu_time_seconds_total[{w}s])",
    f'sum by (instance) (increase({{__name__=~"node_rapl_(package|dram)_joules_total"}}[{w}s]))',
]
def run(q):
    body = urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t1}), timeout=600).read()
    return len(json.loads(body)["data"]["result"])
best = None
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    for _ in range(repeat):
        s = time.perf_counter()
        list(pool.map(run, queries))
        e = time.perf_counter() - s
        best = e if best is None else min(best, e)
want = json.load(open(truth))
have = {}
for line in open(got):
    r = json.loads(line)
    have[r["vm_uuid"]] = r["energy_joules"]
missing = sorted(set(want) - set(have)); extra = sorted(set(have) - set(want))
err = max(abs(have[u] - want[u]) / max(abs(want[u]), 1e-300) for u in want if u in have)
print(f"floor_s={best:.4f} records={len(have)} truth={len(want)} missing={len(missing)} extra={len(extra)} max_rel_err={err:.3e}")
PY
echo "wattson n_vms=$N hosts=$HOSTS hours=$H step_s=$STEP wattson_s=$best peak_rss_mb=$(( rss / 1024 ))"
