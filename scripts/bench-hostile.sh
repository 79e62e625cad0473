#!/usr/bin/env bash
# Hostile Prometheus answers (issue 33): the release `wattson extract`
# (policies/libvirt-joules.toml, default [prometheus] settings) against
#   (a) the normal run: the peer harness' N VMs × H hours (default 100000 × 1,
#       ../shared/peers/caso), on each read path;
#   (b) scripts/hostile-prometheus.py in each MODES mode (default: big endless
#       empty series labels), on each read path.
# Prints, per run: exit code, wall time, peak RSS (/usr/bin/time %M) and its
# ratio to the normal run's peak on the same path, and wattson's last error
# line. Needs the peer harness (as bench-caso.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}; H=${2:-1}; REPEAT=${REPEAT:-2}
PEER_MODES=" "
source scripts/bench-peer.sh

# run NAME ARGS...: one extract; sets code, secs, rss (KB), said (last ERROR line).
run() {
    local name=$1
    shift
    code=0
    WATTSON_LOG=warn /usr/bin/time -f "%M %e" -o "$work/time" "$wattson" extract "$@" \
        --dry-run --format jsonl > "$work/$name.jsonl" 2> "$work/$name.err" || code=$?
    read -r rss secs < <(tail -1 "$work/time")
    said=$( (grep -E 'ERROR|error' "$work/$name.err" || true) | tail -1 | cut -c1-400)
}

reads=${READS:-remote-read promql}
declare -A normal
for read in $reads; do
    best_rss=0
    for _ in $(seq 1 "$REPEAT"); do
        run "normal-$read" --policy policies/libvirt-joules.toml --prometheus "$url" \
            --set "prometheus.read=\"$read\"" --from "$from" --to "$to"
        [ "$code" = 0 ] || { cat "$work/normal-$read.err" >&2; exit 1; }
        best_rss=$(( rss > best_rss ? rss : best_rss ))
    done
    normal[$read]=$best_rss
    echo "normal read=$read n_vms=$N hours=$H records=$(wc -l < "$work/normal-$read.jsonl") peak_rss_mb=$(( best_rss / 1024 )) secs=$secs"
done

# The stand-in's samples sit in the middle of the window.
t_ms=$(( ($(date -u -d "$from" +%s) + $(date -u -d "$to" +%s)) * 500 ))
for mode in ${MODES:-big endless empty series labels}; do
    python3 scripts/hostile-prometheus.py "$mode" "$t_ms" > "$work/port" &
    server=$!
    for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
    hostile="http://127.0.0.1:$(cat "$work/port")"
    for read in $reads; do
        run "$mode-$read" --policy policies/libvirt-joules.toml --prometheus "$hostile" \
            --set "prometheus.read=\"$read\"" --from "$from" --to "$to"
        ratio=$(awk -v a="$rss" -v b="${normal[$read]}" 'BEGIN{printf "%.2f", a/b}')
        echo "hostile mode=$mode read=$read exit=$code secs=$secs peak_rss_mb=$(( rss / 1024 )) ratio_to_normal=$ratio"
        echo "  said: $said"
    done
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -f "$work/port"
done
