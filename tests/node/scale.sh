#!/bin/bash
# scale.sh ISOFLOW LOADGEN N [SECONDS] [tls|plain] [GENERATORS] - the scale
# experiment (not a CTest test; docs/NODES.md, "Scale"): a cloud and an
# edge node and GENERATORS nd_loadgen processes (default: one per 16,000
# links; each needs a descriptor per link) holding N device links to the
# edge, each sending 1 message/s.  tls (default): certificates from a fresh
# CA, devices' issued in memory by nd_loadgen, generator k binding its
# sockets to 127.0.0.(k+2); plain: --insecure everywhere.  Prints the links
# the edge holds (established TCP connections on its port), the time to
# connect them all, its CPU use (share of one core) and RSS over the
# measuring window, and the messages the cloud stored.
set -u
BIN=$1 LG=$2 N=$3 SECS=${4:-20} MODE=${5:-tls}
NG=${6:-$(( (N + 15999) / 16000 ))}
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
if [ "$MODE" = tls ]; then
    "$BIN" ca init "$T/ca" >/dev/null || exit 1
    mkdir -p "$T/certs"; cp "$T/ca/ca.crt" "$T/certs/"
    for n in cloud edge; do
        "$BIN" ca issue "$T/ca" $n --role $n --out "$T/certs" >/dev/null || exit 1
    done
    SEC=(--certs "$T/certs"); LGSEC=(--ca "$T/ca")
else
    SEC=(--insecure); LGSEC=()
fi
for n in cloud edge; do
    "$BIN" node --flow "$T/n.flow" --name $n "${SEC[@]}" --state "$T/state" \
        --quiet --workers 1 --stats-json "$T/stats-$n.json" \
        >"$T/log-$n" 2>&1 &
    PIDS+=($!); eval "PID_$n=$!"
done
sleep 1
LGPIDS=()
per=$(( (N + NG - 1) / NG ))
t0=$(date +%s.%N)
for ((k = 0; k < NG; k++)); do
    first=$((k * per)); cnt=$per
    [ $((first + cnt)) -gt "$N" ] && cnt=$((N - first))
    "$LG" "${LGSEC[@]}" --from "127.0.0.$((k + 2))" "$T/n.flow" "127.0.0.1:$PE" \
        "$first" "$cnt" "room-%d" 1 1 $((SECS + 150)) >"$T/log-lg$k" 2>&1 &
    p=$!; LGPIDS+=($p); PIDS+=($p)
done
# Wait for the links (up to 120 s, or 15 s without progress), then measure.
last=0 still=0 c=0
for _ in $(seq 240); do
    c=$(ss -Htn state established "( sport = :$PE )" | wc -l)
    [ "$c" -ge "$N" ] && break
    if [ "$c" -le "$last" ]; then still=$((still + 1)); else still=0; fi
    [ "$still" -ge 30 ] && break
    last=$c
    sleep 0.5
done
t1=$(date +%s.%N)
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$PID_edge/stat"; }
k0=$(ticks); s0=$(date +%s.%N)
sleep "$SECS"
k1=$(ticks); s1=$(date +%s.%N)
c=$(ss -Htn state established "( sport = :$PE )" | wc -l)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID_edge/status")
hz=$(getconf CLK_TCK)
cpu=$(echo "($k1 - $k0) / $hz / ($s1 - $s0) * 100" | bc -l)
for p in "${LGPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
wait "${LGPIDS[@]}" 2>/dev/null
kill -TERM "$PID_edge"; wait "$PID_edge"
kill -TERM "$PID_cloud"; wait "$PID_cloud"
stored=$(python3 -c "import json;print(json.load(open('$T/stats-cloud.json'))['delivered'])")
printf 'edge with %d %s device links (%d generators): %d held after %.1f s, CPU %.1f%% of one core, RSS %.1f MB (%.1f KB/link); cloud stored %s\n' \
    "$N" "$MODE" "$NG" "$c" "$(echo "$t1 - $t0" | bc -l)" "$cpu" \
    "$(echo "$rss / 1024" | bc -l)" "$(echo "$rss / $N" | bc -l)" "$stored"
grep -v "^isoflow: warning\|insecure\|WARNING" "$T/log-edge" | head -5
