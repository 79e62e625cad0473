# Sourced by the bench scripts, from the repository root, with REPEAT set:
# builds the release binary (sets wattson) and defines the helpers below.
cargo build --release --locked --bin wattson >&2
wattson=$PWD/target/release/wattson

# time_extract OUT ARGS...: runs `wattson extract ARGS... --dry-run --format
# jsonl > OUT` REPEAT times (WATTSON_LOG=warn); sets best (the fastest wall
# time, s) and rss (the largest peak RSS, KB). Needs work (a scratch dir).
time_extract() {
    local out=$1 t0 t1 s
    shift
    best=""; rss=0
    for _ in $(seq 1 "$REPEAT"); do
        t0=$(date +%s.%N)
        WATTSON_LOG=warn /usr/bin/time -f %M -o "$work/rss" "$wattson" extract "$@" \
            --dry-run --format jsonl > "$out"
        t1=$(date +%s.%N)
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')
        best=$(awk -v a="$s" -v b="${best:-1e9}" 'BEGIN{print (a<b)?a:b}')
        rss=$(awk -v a="$(cat "$work/rss")" -v b="$rss" 'BEGIN{print (a>b)?a:b}')
    done
}

# start_prometheus OM: backfills the OpenMetrics file OM into $work/prom and
# serves it on a free loopback port (sets port and url) until the script
# exits, when the server stops and $work is removed. Needs peer and work.
start_prometheus() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$peer/prom.sh" start "$work/prom" "$port" "$1" >&2
    trap '"$peer/prom.sh" stop "$work/prom" "$port" >&2 || true; rm -rf "$work"' EXIT
    url="http://127.0.0.1:$port"
}
