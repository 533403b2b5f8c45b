#!/bin/bash
# scale.sh ISOFLOW LOADGEN N [SECONDS] - the scale experiment (not a CTest
# test; docs/NODES.md, "Scale"): a cloud and an edge node (--insecure,
# plaintext) and nd_loadgen holding N device links to the edge, each
# sending 1 message/s.  Prints the links the edge holds (established TCP
# connections on its port), its CPU use (share of one core) and RSS over
# the measuring window, and the messages the cloud stored.
set -u
BIN=$1 LG=$2 N=$3 SECS=${4:-20}
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
PC=$((20000 + RANDOM % 20000)); PE=$((PC + 1))
cat > "$T/n.flow" <<FLOW
devices rooms "room-%d" x $N connect edge
node cloud @cloud listen "127.0.0.1:$PC"
node edge  @edge  listen "127.0.0.1:$PE" connect cloud
stage src   @rooms null
stage pass  @edge  sample 1
stage store @cloud null
flow f: push(src every 1s) ~> [pass, store]
FLOW
for n in cloud edge; do
    "$BIN" node --flow "$T/n.flow" --name $n --insecure --state "$T/state" \
        --quiet --workers 1 --stats-json "$T/stats-$n.json" \
        >"$T/log-$n" 2>&1 &
    PIDS+=($!); eval "PID_$n=$!"
done
sleep 1
"$LG" "$T/n.flow" "127.0.0.1:$PE" 0 "$N" "room-%d" 1 1 $((SECS + 15)) \
    >"$T/log-lg" 2>&1 &
LGPID=$!; PIDS+=($LGPID)
# Wait for the links (up to 15 s), then measure SECS seconds.
for _ in $(seq 30); do
    c=$(ss -Htn state established "( sport = :$PE )" | wc -l)
    [ "$c" -ge "$N" ] && break
    sleep 0.5
done
ticks() { awk '{print $14 + $15}' "/proc/$PID_edge/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
sleep "$SECS"
t1=$(ticks); s1=$(date +%s.%N)
c=$(ss -Htn state established "( sport = :$PE )" | wc -l)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID_edge/status")
hz=$(getconf CLK_TCK)
cpu=$(echo "($t1 - $t0) / $hz / ($s1 - $s0) * 100" | bc -l)
wait $LGPID
grep -v WARNING "$T/log-lg"
kill -TERM "$PID_edge"; wait "$PID_edge"
kill -TERM "$PID_cloud"; wait "$PID_cloud"
stored=$(python3 -c "import json;print(json.load(open('$T/stats-cloud.json'))['delivered'])")
printf 'edge with %d device links: %d held, CPU %.1f%% of one core, RSS %.1f MB (%.1f KB/link); cloud stored %s\n' \
    "$N" "$c" "$cpu" "$(echo "$rss / 1024" | bc -l)" "$(echo "$rss / $N" | bc -l)" "$stored"
grep -v "^isoflow: warning\|insecure" "$T/log-edge" | head -5
