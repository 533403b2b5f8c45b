#!/bin/bash
# test_link_modes.sh ISOFLOW STAGES_DIR - demand and pull across links
# (docs/NODES.md): cloud, edge and 3 device nodes over mutual TLS.
# Demand: the devices produce as fast as the edge grants credits (window 4)
# and the edge stage is slow (delay 20 ms); each device's in-flight never
# exceeds 4 and every seq reaches the cloud exactly once.  Pull: the edge
# asks every 100 ms; each device answers exactly the asks it took, and the
# cloud stores exactly those messages.
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

mkdir -p "$T/log" "$T/certs"
ln -s "$SD" "$T/stages"
"$BIN" ca init "$T/ca" >/dev/null || fail "ca init"
for n in cloud:cloud edge:edge room-0:device room-1:device room-2:device; do
    "$BIN" ca issue "$T/ca" "${n%%:*}" --role "${n##*:}" --out "$T/certs" \
        >/dev/null || fail "ca issue $n"
done
cp "$T/ca/ca.crt" "$T/certs/"

declare -A PID
start() { # start CASE NAME
    "$BIN" node --flow "$T/$1.flow" --name "$2" --certs "$T/certs" \
        --state "$T/state-$1" --quiet --workers 1 \
        --stats-json "$T/stats-$1-$2.json" >>"$T/log/$1-$2" 2>&1 &
    PID[$2]=$!
    PIDS+=($!)
}
stop() { kill -TERM "${PID[$1]}"; wait "${PID[$1]}" || fail "$1 exit status $?"; }

# run CASE FLOW_TAIL SECONDS [STOP_AT_OFFSET] [RESTART_EDGE]: writes the
# flow, runs the 5 nodes for SECONDS + 3 (with RESTART_EDGE, the edge is
# killed with -9 after 2 s and restarted 1 s later), stops them (devices first, so that the edge and the
# cloud take everything).  The source stops producing after STOP_AT_OFFSET
# seconds (default SECONDS).
run() {
    local pc=$((20000 + RANDOM % 20000))
    mkdir -p "$T/out-$1"
    cat > "$T/$1.flow" <<FLOW
devices rooms "room-%d" x 3 connect edge
node cloud @cloud listen "127.0.0.1:$pc"
node edge  @edge  listen "127.0.0.1:$((pc + 1))" connect cloud
stage src   @rooms wasm "stages/nd_source.wasm" config "stop_at=$(( $(date +%s) + ${4:-$3} ))"
$2
stage store @cloud jsonl "out-$1/store.jsonl"
FLOW
    start "$1" cloud; start "$1" edge
    for d in room-0 room-1 room-2; do start "$1" $d; done
    if [ -n "${5:-}" ]; then # the edge killed (-9) and restarted
        sleep 2; kill -9 "${PID[edge]}"; wait "${PID[edge]}" 2>/dev/null
        sleep 1; start "$1" edge; sleep $(( $3 ))
    else
        sleep $(( $3 + 3 ))
    fi
    for d in room-0 room-1 room-2; do stop $d; done
    stop edge; stop cloud
}

# check CASE: per device, stored seqs are exactly 1..produced in file order;
# prints "DEVICE PRODUCED" lines.
check() {
    python3 - "$T" "$1" <<'PY' || fail "$1: exactly-once check"
import json, sys, collections
t, case = sys.argv[1], sys.argv[2]
seqs = collections.defaultdict(list)
for line in open(f"{t}/out-{case}/store.jsonl"):
    j = json.loads(line)
    seqs[j["origin"]].append(j["seq"])
ok = True
for d in ("room-0", "room-1", "room-2"):
    n = json.load(open(f"{t}/stats-{case}-{d}.json"))["produced"]
    if seqs[d] != list(range(1, n + 1)):
        print(f"{case} {d}: produced {n}, stored {len(seqs[d])} "
              f"({len(set(seqs[d]))} distinct)", file=sys.stderr)
        ok = False
    print(d, n)
sys.exit(0 if ok else 1)
PY
}

# Demand: 3 devices x window 4 against a 20 ms edge stage (50 msg/s); the
# edge is killed and restarted on the way: the grant is re-established.
run demand "stage slow  @edge  delay 20
flow f: demand(src credits 4) ~> [slow, store]" 4 4 restart
out=$(check demand) || exit 1
echo "$out"
total=0
for d in room-0 room-1 room-2; do
    n=$(awk -v d=$d '$1 == d {print $2}' <<<"$out")
    total=$((total + n))
    line=$(grep "demand src: at most" "$T/log/demand-$d" | tail -1) ||
        fail "demand: $d logged no in-flight figure"
    infl=$(sed -E 's/.*at most ([0-9]+) in flight.*/\1/' <<<"$line")
    win=$(sed -E 's/.*window ([0-9]+).*/\1/' <<<"$line")
    [ "$win" = 4 ] || fail "demand: $d window $win, want 4"
    [ "$infl" -ge 1 ] && [ "$infl" -le 4 ] ||
        fail "demand: $d had $infl in flight, window 4"
done
# The edge's 20 ms stage caps the total at ~50/s over the 4 s less the
# second the edge was away: the devices were held back (unbounded, they
# would produce millions).
[ "$total" -ge 60 ] && [ "$total" -le 250 ] ||
    fail "demand: $total messages in 4 s through a 50/s edge stage"

# Pull: the edge asks every 100 ms for about 6 s; the source answers every
# ask (no stop_at in reach): produced == asks taken, exactly.
run pull "stage pass  @edge  sample 1
flow f: pull(src every 100ms) ~> [pass, store]" 3 100000
out=$(check pull) || exit 1
echo "$out"
for d in room-0 room-1 room-2; do
    n=$(awk -v d=$d '$1 == d {print $2}' <<<"$out")
    asks=$(sed -nE 's/.*pull src: ([0-9]+) asks taken.*/\1/p' "$T/log/pull-$d")
    sent=$(sed -nE "s/.*pull: ([0-9]+) asks sent to $d\$/\\1/p" "$T/log/pull-edge")
    echo "$d: $asks asks taken, $sent sent by the edge, $n produced"
    [ -n "$asks" ] && [ -n "$sent" ] || fail "pull: no ask figures for $d"
    [ "$n" -ge 35 ] && [ "$n" -le 65 ] ||
        fail "pull: $d produced $n in ~6 s of asks every 100 ms"
    [ "$asks" = "$n" ] && [ "$sent" -ge "$asks" ] ||
        fail "pull: $d took $asks asks, edge sent $sent, produced $n"
done
echo "node-link-modes: ok"
