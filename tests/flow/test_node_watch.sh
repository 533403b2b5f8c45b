#!/usr/bin/env bash
# test_node_watch.sh - `isoflow node --watch DIR`: on a running edge node, a
# changed DIR/STAGE.wasm is swapped in without a signature (with the
# development-mode warning), a trapping one is rolled back, and every
# message the device produced reaches the cloud exactly once, in order.
# usage: test_node_watch.sh ISOFLOW STAGES_DIR  (hs_source.wasm, sw_v.wasm,
# sw_trap.wasm)
set -uo pipefail
ISOFLOW=${1:?usage: test_node_watch.sh ISOFLOW STAGES_DIR}
S=${2:?usage: test_node_watch.sh ISOFLOW STAGES_DIR}
. "$(dirname "$0")/../common/testlib.sh"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

PC=$((20000 + RANDOM % 20000)); PE=$((PC + 1))
mkdir -p "$tmp/w"
cp "$S/sw_v.wasm" "$tmp/w/s.wasm"
cat >"$tmp/n.flow" <<FLOW
devices d "d-%d" x 1 connect edge
node cloud @cloud listen "127.0.0.1:$PC"
node edge  @edge  listen "127.0.0.1:$PE" connect cloud
stage src @d     wasm "$S/hs_source.wasm"
stage s   @edge  wasm "w/s.wasm"
stage out @cloud jsonl "out.jsonl"
flow f: push(src every 20ms) ~> s ~> out
FLOW
cd "$tmp" || exit 1
start() { # start NAME EXTRA...
    local n=$1
    shift
    "$ISOFLOW" node --flow n.flow --name "$n" --insecure --state st --quiet \
        --workers 1 --stats-json "stats-$n.json" "$@" >"log-$n" 2>&1 &
    PIDS+=($!)
    eval "pid_${n//-/_}=$!"
}
stop() { # stop NAME: SIGTERM, wait for the clean exit
    local v="pid_${1//-/_}"
    kill -TERM "${!v}" 2>/dev/null
    wait "${!v}"
    expect "$1 exit status" 0 $?
}
start cloud
start edge --watch w
sleep 0.3
start d-0
sleep 2
# v2: the same code, a newer file -> swapped in as version 2.
cp "$S/sw_v.wasm" w/s.wasm.tmp && touch -d '+1 sec' w/s.wasm.tmp &&
    mv w/s.wasm.tmp w/s.wasm
sleep 2
# v3 traps on every message -> rolled back to version 2 by itself.
cp "$S/sw_trap.wasm" w/s.wasm.tmp && mv w/s.wasm.tmp w/s.wasm
sleep 2
stop d-0
sleep 0.5
stop edge
stop cloud

grep -q "development mode, stage code is swapped in WITHOUT a signature check" log-edge
expect_ok "warning printed" $? "$(head -5 log-edge)"
grep -q "watch: stage 's' now runs version 2" log-edge
expect_ok "swapped to v2" $? "$(grep watch log-edge)"
grep -q "watch: stage 's' rolled back to version 2" log-edge
expect_ok "trapping v3 rolled back" $? "$(grep watch log-edge)"
# Every seq the device produced is stored once and in order, but for the
# message(s) that trapped on v3 (dead-lettered on the edge); versions 1 then
# 2 only.
python3 - <<'PY' >check.out 2>&1
import json
produced = json.load(open("stats-d-0.json"))["produced"]
dead = set()
try:
    for line in open("deadletter.jsonl"):
        dead.add(json.loads(line)["seq"])
except FileNotFoundError:
    pass
rows = [json.loads(l) for l in open("out.jsonl")]
seqs = [r["seq"] for r in rows if r["origin"] == "d-0"]
want = [s for s in range(1, produced + 1) if s not in dead]
vers = []
for r in rows:
    v = int(str(r["msg"]).split()[0])
    if not vers or vers[-1] != v:
        vers.append(v)
print("produced", produced, "stored", len(seqs), "dead", len(dead),
      "versions", vers)
assert produced >= 100, "too few messages"
assert seqs == want, "seqs differ"
assert len(dead) <= 2, "too many dead letters"
assert vers == [1, 2], "versions"
PY
expect_ok "exactly once, versions 1 then 2" $? "$(cat check.out)"
finish node-watch
