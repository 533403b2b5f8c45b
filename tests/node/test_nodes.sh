#!/bin/bash
# test_nodes.sh ISOFLOW STAGES_DIR - cloud, edge and 3 device nodes as
# separate `isoflow node` processes over mutual TLS on loopback, sending
# continuously (every 20 ms, for 16 s).  Faults: kill -9 of the edge and restart, the cloud stopped
# for 3 s and restarted, a device restarted.  At the end, per device, every
# seq it produced is in the cloud sink exactly once and every actuation the
# cloud sent reached the device exactly once.  A device presenting a
# certificate of the wrong role is refused while the others keep running.
set -u
BIN=$1
SD=$(cd "$2" && pwd)
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/log/*; do echo "== $f"; tail -5 "$f"; done >&2; exit 1; }

PC=$((20000 + RANDOM % 20000)); PE=$((PC + 1))
mkdir -p "$T/out" "$T/log" "$T/certs"
ln -s "$SD" "$T/stages"
STOP_AT=$(( $(date +%s) + 16 ))   # the sources stop producing then
cat > "$T/n.flow" <<FLOW
devices rooms "room-%d" x 3 connect edge
node cloud @cloud listen "127.0.0.1:$PC"
node edge  @edge  listen "127.0.0.1:$PE" connect cloud
stage src   @rooms wasm "stages/nd_source.wasm" actuator led config "stop_at=$STOP_AT"
stage led   @rooms wasm "stages/nd_led.wasm"
stage pass  @edge  sample 1
stage act   @cloud wasm "stages/nd_cloud.wasm"
stage store @cloud jsonl "out/store.jsonl"
flow f: push(src every 20ms) <~> [pass, act, store]
FLOW
"$BIN" ca init "$T/ca" >/dev/null || fail "ca init"
for n in cloud:cloud edge:edge room-0:device room-1:device room-2:device; do
    "$BIN" ca issue "$T/ca" "${n%%:*}" --role "${n##*:}" --out "$T/certs" \
        >/dev/null || fail "ca issue $n"
done
cp "$T/ca/ca.crt" "$T/certs/"
# A device certificate with the role "edge": must be refused.
mkdir -p "$T/bad"
"$BIN" ca issue "$T/ca" room-0 --role edge --out "$T/bad" >/dev/null
cp "$T/ca/ca.crt" "$T/bad/"

declare -A PID
run=0
start() { # start NAME [CERTDIR]
    run=$((run + 1))
    "$BIN" node --flow "$T/n.flow" --name "$1" --certs "${2:-$T/certs}" \
        --state "$T/state" --quiet --workers 1 \
        --stats-json "$T/stats-$1-$run.json" >>"$T/log/$1" 2>&1 &
    PID[$1]=$!
    PIDS+=($!)
}
stop() { kill -TERM "${PID[$1]}"; wait "${PID[$1]}" || fail "$1 exit status $?"; }

start cloud; start edge
start room-0; start room-1; start room-2
sleep 3
# Fault 1: the edge is killed and restarted.
kill -9 "${PID[edge]}"; wait "${PID[edge]}" 2>/dev/null
sleep 1; start edge; sleep 2
# Fault 2: the cloud is stopped for 3 s.
stop cloud; sleep 3; start cloud; sleep 2
# Fault 3: a device is restarted.
stop room-1; sleep 1; start room-1; sleep 2
# Wrong role: refused, the others keep running.
"$BIN" node --flow "$T/n.flow" --name room-0 --certs "$T/bad" \
    --state "$T/badstate" --quiet --duration 2 >"$T/log/bad" 2>&1
grep -q "refused\|not accepted" "$T/log/bad" "$T/log/edge" ||
    fail "wrong-role certificate not refused"
# The sources stop at STOP_AT; let every message and actuation arrive.
while [ "$(date +%s)" -lt $((STOP_AT + 4)) ]; do sleep 0.5; done
for d in room-0 room-1 room-2; do stop $d; done
stop edge; stop cloud

python3 - "$T" <<'PY' || fail "exactly-once check"
import json, glob, re, sys, collections
t = sys.argv[1]
produced = collections.Counter()
for f in glob.glob(t + "/stats-room-*.json"):
    name = re.search(r"stats-(room-\d)-", f).group(1)
    produced[name] += json.load(open(f))["produced"]
seqs = collections.defaultdict(list)
for line in open(t + "/out/store.jsonl"):
    j = json.loads(line)
    seqs[j["origin"]].append(j["seq"])
acts = collections.defaultdict(list)
for f in glob.glob(t + "/log/room-*"):
    for line in open(f):
        m = re.search(r"act (room-\d) (\d+)", line)
        if m:
            acts[m.group(1)].append(int(m.group(2)))
ok = True
for d in ("room-0", "room-1", "room-2"):
    n = produced[d]
    s = sorted(seqs[d])
    want = list(range(1, n + 1))
    a = sorted(acts[d])
    want_a = [x for x in want if x % 3 == 0]
    print(f"{d}: produced {n}, stored {len(s)} ({len(set(s))} distinct), "
          f"actuations {len(a)} of {len(want_a)}")
    if n < 100 or s != want:
        missing = sorted(set(want) - set(s))[:10]
        dups = [x for x, c in collections.Counter(s).items() if c > 1][:10]
        print(f"  seqs wrong: missing {missing} dups {dups}")
        ok = False
    if a != want_a:
        missing = sorted(set(want_a) - set(a))[:10]
        dups = [x for x, c in collections.Counter(a).items() if c > 1][:10]
        print(f"  actuations wrong: missing {missing} dups {dups}")
        ok = False
sys.exit(0 if ok else 1)
PY
echo "node-exactly-once: ok"
