#!/usr/bin/env bash
# The daemon's footprint (issue 19): N libvirt test-driver domains with nova
# metadata, a powercap fixture tree whose counters advance, `[daemon]
# interval_secs` 10, /metrics scraped every 15 s for MINUTES minutes; with
# SLOW=1 a websocket client on /stream that never reads.
#
#   ./scripts/bench-daemon.sh [N=1000] [MINUTES=10]            # both runs, slow client last
#   SLOW=0 ./scripts/bench-daemon.sh 1000 10                  # one run, no websocket client
#
# Prints the daemon's average CPU (% of one core, from /proc/PID/stat over
# the scraped period), its peak RSS (VmHWM), the /metrics response time
# (median and max over the scrapes, curl's time_total) and the intervals
# attributed. Needs a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
MINUTES=${2:-10}
if [[ -z "${SLOW:-}" ]]; then
    SLOW=0 "$0" "$N" "$MINUTES"
    SLOW=1 "$0" "$N" "$MINUTES"
    exit
fi
BIN=target/release/wattson
[[ -x $BIN ]] || { echo "build it first: cargo build --release" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'kill $DAEMON $BUMP ${WS:-} 2>/dev/null || true; wait $DAEMON 2>/dev/null || true; rm -rf "$TMP"' EXIT

python3 - "$TMP" "$N" <<'PY'
import os, sys, uuid
tmp, n = sys.argv[1], int(sys.argv[2])
dom = """  <domain type="test">
    <name>instance-{i:08x}</name>
    <uuid>{u}</uuid>
    <memory unit="KiB">{mem}</memory>
    <vcpu placement="static">{vcpus}</vcpu>
    <metadata>
      <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:name>vm-{i}</nova:name>
        <nova:flavor name="m1.{vcpus}"><nova:memory>{mb}</nova:memory><nova:disk>20</nova:disk><nova:vcpus>{vcpus}</nova:vcpus></nova:flavor>
        <nova:owner>
          <nova:user uuid="{user}">user-{p}</nova:user>
          <nova:project uuid="{proj}">project-{p}</nova:project>
        </nova:owner>
      </nova:instance>
    </metadata>
    <os><type arch="x86_64">hvm</type></os>
  </domain>
"""
with open(os.path.join(tmp, "node.xml"), "w") as f:
    f.write('<?xml version="1.0"?>\n<node>\n  <cpu><mhz>2400</mhz><model>x86_64</model><active>64</active><nodes>1</nodes><sockets>2</sockets><cores>16</cores><threads>2</threads></cpu>\n  <memory>1073741824</memory>\n')
    for i in range(n):
        vcpus = [1, 2, 4, 8][i % 4]
        p = i % 40
        f.write(dom.format(i=i, u=uuid.uuid5(uuid.NAMESPACE_DNS, f"vm{i}"), vcpus=vcpus,
                           mb=vcpus * 2048, mem=vcpus * 2048 * 1024, p=p,
                           user=uuid.uuid5(uuid.NAMESPACE_DNS, f"u{p}").hex,
                           proj=uuid.uuid5(uuid.NAMESPACE_DNS, f"p{p}").hex))
    f.write("</node>\n")
root = os.path.join(tmp, "sys/devices/virtual/powercap/intel-rapl")
cls = os.path.join(tmp, "sys/class/powercap")
os.makedirs(cls)
for rel, name in [("intel-rapl:0", "package-0"), ("intel-rapl:0/intel-rapl:0:0", "dram"),
                  ("intel-rapl:1", "package-1"), ("intel-rapl:1/intel-rapl:1:0", "dram")]:
    d = os.path.join(root, rel)
    os.makedirs(d)
    for k, v in [("name", name), ("energy_uj", "1000000"), ("max_energy_range_uj", "262143328850"), ("enabled", "1")]:
        open(os.path.join(d, k), "w").write(v + "\n")
    os.symlink(d, os.path.join(cls, rel.split("/")[-1]))
PY

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$TMP/daemon.toml" <<TOML
[site]
name = "BENCH"
compute_service = "https://keystone.bench:5000/v3"
[inventory]
libvirt_uri = "test://$TMP/node.xml"
[rapl]
powercap_root = "$TMP/sys/class/powercap"
[model]
plugin = "rapl-share"
[model.params]
idle = "vcpus"
idle_power = "auto"
[daemon]
interval_secs = 10
listen = "127.0.0.1:$PORT"
[[outputs]]
format = "jsonl"
[outputs.messenger]
type = "file"
directory = "$TMP/out"
[state]
dir = "$TMP/state"
TOML

# RAPL counters advance: ~200 W per package, ~20 W per dram.
(e=1000000; while true; do e=$((e + 5000000)); for z in "$TMP"/sys/class/powercap/intel-rapl:*; do
    [[ -f $z/energy_uj ]] && echo $((e * ($(cat "$z/name" | grep -q dram && echo 1 || echo 10)))) > "$z/energy_uj"; done; sleep 5; done) &
BUMP=$!
WATTSON_LOG=${WATTSON_LOG:-warn} $BIN daemon --policy "$TMP/daemon.toml" &
DAEMON=$!
until curl -sf "127.0.0.1:$PORT/healthz" > /dev/null; do sleep 0.2; done
if [[ $SLOW == 1 ]]; then
    # Upgrades to a websocket, then never reads.
    python3 - "$PORT" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
assert b" 101 " in s.recv(1024)
time.sleep(100000)
PY
    WS=$!
fi
sleep 12   # the first intervals
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$DAEMON/stat"; }
c0=$(cpu); t0=$(date +%s.%N)
times=()
end=$(( $(date +%s) + MINUTES * 60 ))
while (( $(date +%s) < end )); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' "127.0.0.1:$PORT/metrics")")
    sleep 15
done
c1=$(cpu); t1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON/status")
intervals=$(curl -s "127.0.0.1:$PORT/metrics" | awk '/^wattson_daemon_intervals_total/ {print $2}')
printf '%s\n' "${times[@]}" | sort -n > "$TMP/times"
python3 - "$c0" "$c1" "$t0" "$t1" "$HZ" "$hwm" "$intervals" "$TMP/times" "$N" "$SLOW" <<'PY'
import sys
c0, c1, t0, t1, hz, hwm, intervals, times, n, slow = sys.argv[1:]
ts = [float(x) for x in open(times).read().split()]
cpu = (float(c1) - float(c0)) / float(hz) / (float(t1) - float(t0)) * 100
print(f"domains={n} slow_ws_client={slow} wall={float(t1)-float(t0):.0f}s cpu={cpu:.2f}% of one core "
      f"peak_rss={int(hwm)/1024:.1f}MB metrics_median={sorted(ts)[len(ts)//2]*1000:.1f}ms "
      f"metrics_max={max(ts)*1000:.1f}ms scrapes={len(ts)} intervals={intervals}")
PY
