#!/bin/bash
# test_backlog.sh ISOFLOW STAGES_DIR - credits across the edge -> cloud hop
# (docs/NODES.md "Credits across the edge"): cloud, edge and 3 device nodes
# over mutual TLS; the devices run a demand source (credits 16) as fast as
# the edge grants, the cloud's sink path is slow (delay 5 ms: ~200 msg/s).
# The edge withholds the credits it owes the devices while its backlog
# toward the cloud exceeds ISOFLOW_NET_BACKLOG=200: its spool toward the
# cloud stays near that bound (not the millions the devices could make),
# each device's in-flight stays within its window, and every seq reaches
# the cloud exactly once.
set -u
BIN=$1
SD=$(cd "$2" && pwd)
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/log/*; do echo "== $f"; tail -8 "$f"; done >&2; exit 1; }

mkdir -p "$T/log" "$T/certs" "$T/out"
ln -s "$SD" "$T/stages"
"$BIN" ca init "$T/ca" >/dev/null || fail "ca init"
for n in cloud:cloud edge:edge room-0:device room-1:device room-2:device; do
    "$BIN" ca issue "$T/ca" "${n%%:*}" --role "${n##*:}" --out "$T/certs" \
        >/dev/null || fail "ca issue $n"
done
cp "$T/ca/ca.crt" "$T/certs/"

BOUND=200
declare -A PID
start() { # start NAME
    ISOFLOW_NET_BACKLOG=$BOUND "$BIN" node --flow "$T/b.flow" --name "$1" \
        --certs "$T/certs" --state "$T/state" --quiet --workers 1 \
        --stats-json "$T/stats-$1.json" >>"$T/log/$1" 2>&1 &
    PID[$1]=$!
    PIDS+=($!)
}
stop() { kill -TERM "${PID[$1]}"; wait "${PID[$1]}" || fail "$1 exit status $?"; }

pc=$((20000 + RANDOM % 20000))
cat > "$T/b.flow" <<FLOW
devices rooms "room-%d" x 3 connect edge
node cloud @cloud listen "127.0.0.1:$pc"
node edge  @edge  listen "127.0.0.1:$((pc + 1))" connect cloud
stage src   @rooms wasm "stages/nd_source.wasm" config "stop_at=$(( $(date +%s) + 5 ))"
stage pass  @edge  sample 1
stage slow  @cloud delay 5
stage store @cloud jsonl "out/store.jsonl"
flow f: demand(src credits 16) ~> [pass, slow, store]
FLOW
start cloud; start edge
for d in room-0 room-1 room-2; do start $d; done
sleep 6  # the sources stop producing after ~5 s
for d in room-0 room-1 room-2; do stop $d; done
# Let the cloud work off the edge's backlog (<= ~250 at ~200/s).
for i in $(seq 1 40); do
    sleep 0.25
    n=$(wc -l < "$T/out/store.jsonl" 2>/dev/null || echo 0)
    p=0
    for d in room-0 room-1 room-2; do
        p=$((p + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["produced"])' "$T/stats-$d.json")))
    done
    [ "$n" -ge "$p" ] && break
done
stop edge; stop cloud

line=$(grep "backlog to cloud: at most" "$T/log/edge" | tail -1) ||
    fail "the edge logged no backlog figure"
max=$(sed -E 's/.*at most ([0-9]+) records.*/\1/' <<<"$line")
echo "edge: $line"
# The bound, plus what the devices may still send on credits already
# granted (3 x 16) and the messages between the edge's stages.
[ "$max" -ge 100 ] && [ "$max" -le $((BOUND + 3 * 16 + 32)) ] ||
    fail "edge backlog toward the cloud reached $max (bound $BOUND)"

python3 - "$T" <<'PY' || fail "exactly-once check"
import json, sys, collections
t = sys.argv[1]
seqs = collections.defaultdict(list)
for line in open(f"{t}/out/store.jsonl"):
    j = json.loads(line)
    seqs[j["origin"]].append(j["seq"])
ok, total = True, 0
for d in ("room-0", "room-1", "room-2"):
    n = json.load(open(f"{t}/stats-{d}.json"))["produced"]
    total += n
    if seqs[d] != list(range(1, n + 1)):
        print(f"{d}: produced {n}, stored {len(seqs[d])} "
              f"({len(set(seqs[d]))} distinct)", file=sys.stderr)
        ok = False
    print(d, n)
# ~200 msg/s at the cloud for ~5 s plus the bound: held back (the edge's
# own path would take tens of thousands a second).
if not 300 <= total <= 2500:
    print(f"total produced {total}: not held to the cloud's rate",
          file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
PY
for d in room-0 room-1 room-2; do
    line=$(grep "demand src: at most" "$T/log/$d" | tail -1) ||
        fail "$d logged no in-flight figure"
    infl=$(sed -E 's/.*at most ([0-9]+) in flight.*/\1/' <<<"$line")
    [ "$infl" -ge 1 ] && [ "$infl" -le 16 ] ||
        fail "$d had $infl in flight, window 16"
done
echo "node-backlog: ok"
