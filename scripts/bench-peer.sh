# Sourced by the bench scripts, from the repository root, with N, H and
# PEER_MODES set: sets up the peer harness (../shared/peers/caso) and the
# release binary, then runs the harness for N VMs × H hours with KEEP=1 (cASO
# timed in the modes PEER_MODES names; " " for none), leaving its Prometheus
# up. Sets peer, work, wattson, url, from, to and truth; the harness' own
# lines are in $work/peer.txt.
peer=$(cd ../shared/peers/caso && pwd)
work=$(mktemp -d /tmp/wattson-bench.XXXXXX)

"$peer/setup.sh" >/dev/null
source scripts/bench-common.sh

MODES="$PEER_MODES" FLOOR=0 KEEP=1 "$peer/run.sh" "$N" "$H" | tee "$work/peer.txt" >&2
line=$(grep '^prometheus url=' "$work/peer.txt")
url=$(sed -n 's/.*url=\([^ ]*\).*/\1/p' <<<"$line")
window=$(sed -n 's/.*window=\([^ ]*\).*/\1/p' <<<"$line")
truth=$(sed -n 's/.*truth=\([^ ]*\).*/\1/p' <<<"$line")
from=${window%%..*}; to=${window##*..}
