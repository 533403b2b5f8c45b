#!/bin/bash
# test_device_crash.sh ISOFLOW STAGES_DIR - a device node killed with
# SIGKILL while it sends (every 5 ms) and started again: at the cloud its
# seqs are unique and in order, everything up to the last one stored
# before the crash is there without a hole (a device writes each message
# to its spool before handing it over), the restarted process continues
# above every seq the first one may have used, and everything it produced
# arrives; the other device is untouched (exactly 1..N).
set -u
BIN=$1
SD=$(cd "$2" && pwd)
. "$(dirname "$0")/../common/testlib.sh"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

PC=$((20000 + RANDOM % 20000))
mkdir -p "$tmp/out" "$tmp/log"
STOP_AT=$(( $(date +%s) + 7 ))
cat > "$tmp/n.flow" <<FLOW
devices rooms "room-%d" x 2 connect edge
node cloud @cloud listen "127.0.0.1:$PC"
node edge  @edge  listen "127.0.0.1:$((PC + 1))" connect cloud
stage src   @rooms wasm "$SD/nd_source.wasm" config "stop_at=$STOP_AT"
stage pass  @edge  sample 1
stage store @cloud jsonl "out/store.jsonl"
flow f: push(src every 5ms) ~> [pass, store]
FLOW
declare -A PID
start() { # start NAME RUN
    "$BIN" node --flow "$tmp/n.flow" --name "$1" --insecure \
        --state "$tmp/state" --quiet --workers 1 \
        --stats-json "$tmp/stats-$1-$2.json" >>"$tmp/log/$1" 2>&1 &
    PID[$1]=$!
    PIDS+=($!)
}
stop() {
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}"
    expect "$1 exit status" 0 $?
}
start cloud 1
start edge 1
sleep 0.3
start room-0 1
start room-1 1
sleep 2
kill -9 "${PID[room-0]}"
wait "${PID[room-0]}" 2>/dev/null
sleep 0.5
start room-0 2
while [ "$(date +%s)" -le "$STOP_AT" ]; do sleep 0.2; done
sleep 1
stop room-0
stop room-1
sleep 0.5
stop edge
stop cloud
python3 - "$tmp" <<'PY' >"$tmp/check.out" 2>&1
import json, sys, collections
t = sys.argv[1]
rows = collections.defaultdict(list)
for line in open(t + "/out/store.jsonl"):
    j = json.loads(line)
    rows[j["origin"]].append(j["seq"])
p1 = json.load(open(t + "/stats-room-1-1.json"))["produced"]
p0 = json.load(open(t + "/stats-room-0-2.json"))["produced"]
s1, s0 = rows["room-1"], rows["room-0"]
assert s1 == list(range(1, p1 + 1)), "room-1 not exactly 1..%d" % p1
assert s0 == sorted(set(s0)), "room-0: duplicates or out of order"
# The restarted process's seqs: the last p0 stored, consecutive.
after, before = s0[len(s0) - p0:], s0[:len(s0) - p0]
assert after == list(range(after[0], after[0] + p0)), "room-0 after restart"
assert before and before == list(range(1, len(before) + 1)), "room-0 before crash has a hole"
print("room-0: %d stored before the crash (1..%d), %d after (from %d); "
      "room-1: %d" % (len(before), before[-1], p0, after[0], p1))
PY
expect_ok "seqs after a device kill -9" $? "$(cat "$tmp/check.out")"
cat "$tmp/check.out"
finish node-device-crash
