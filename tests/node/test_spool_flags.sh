#!/bin/bash
# test_spool_flags.sh ISOFLOW STAGES_DIR - the spool options of `isoflow
# node`: with the cloud away, an edge started with --spool-max 64K
# --spool-full drop-oldest --spool-sync always keeps its spool toward the
# cloud within 64 KiB by dropping the oldest records, logs how many, and
# after the cloud comes up delivers the rest: per seq the device produced,
# either stored once at the cloud (in order) or counted as dropped.  Also
# the exact refusals of bad values.
set -u
BIN=$1
SD=$(cd "$2" && pwd)
. "$(dirname "$0")/../common/testlib.sh"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

check "bad sync" 2 "" "isoflow: --spool-sync: expected none, batch or always, got 'sometimes'" \
    -- "$BIN" node --flow x.flow --name edge --spool-sync sometimes
check "bad full" 2 "" "isoflow: --spool-full: expected reject or drop-oldest, got 'newest'" \
    -- "$BIN" node --flow x.flow --name edge --spool-full newest
check "too small" 2 "" "isoflow: --spool-max: expected a size >= 64K (bytes, or with K/M/G), got '1K'" \
    -- "$BIN" node --flow x.flow --name edge --spool-max 1K

PC=$((20000 + RANDOM % 20000))
mkdir -p "$tmp/out" "$tmp/log"
STOP_AT=$(( $(date +%s) + 4 ))
cat > "$tmp/n.flow" <<FLOW
devices rooms "room-%d" x 1 connect edge
node cloud @cloud listen "127.0.0.1:$PC"
node edge  @edge  listen "127.0.0.1:$((PC + 1))" connect cloud
stage src   @rooms wasm "$SD/nd_source.wasm" config "stop_at=$STOP_AT"
stage pass  @edge  sample 1
stage store @cloud jsonl "out/store.jsonl"
flow f: push(src every 1ms) ~> [pass, store]
FLOW
declare -A PID
start() {
    local n=$1
    shift
    "$BIN" node --flow "$tmp/n.flow" --name "$n" --insecure \
        --state "$tmp/state" --quiet --workers 1 \
        --stats-json "$tmp/stats-$n.json" "$@" >>"$tmp/log/$n" 2>&1 &
    PID[$n]=$!
    PIDS+=($!)
}
stop() {
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}"
    expect "$1 exit status" 0 $?
}

start edge --spool-max 64K --spool-full drop-oldest --spool-sync always
sleep 0.3
start room-0
while [ "$(date +%s)" -le "$STOP_AT" ]; do sleep 0.2; done
sleep 0.5
stop room-0
segs=$(cat "$tmp"/state/edge/out-cloud/*.seg 2>/dev/null | wc -c)
expect_ok "edge spool within 64 KiB" "$([ "$segs" -gt 0 ] && [ "$segs" -le 65536 ]; echo $?)" \
    "segment bytes: $segs"
start cloud
sleep 2.5
stop edge
stop cloud
dropped=$(sed -n 's/.*spool to cloud was full: \([0-9]*\) oldest records dropped.*/\1/p' "$tmp/log/edge")
expect_ok "drops logged" "$([ -n "$dropped" ] && [ "$dropped" -gt 0 ]; echo $?)" \
    "$(tail -5 "$tmp/log/edge")"
python3 - "$tmp" "${dropped:-0}" <<'PY' >"$tmp/check.out" 2>&1
import json, sys
t, dropped = sys.argv[1], int(sys.argv[2])
produced = json.load(open(t + "/stats-room-0.json"))["produced"]
seqs = [json.loads(l)["seq"] for l in open(t + "/out/store.jsonl")]
print("produced", produced, "stored", len(seqs), "dropped", dropped)
assert produced > 1000, "too few produced"
assert seqs == sorted(set(seqs)), "duplicates or out of order"
assert len(seqs) + dropped == produced, "stored + dropped != produced"
# The oldest go: what is stored is the newest, up to the last seq.
assert seqs == list(range(produced - len(seqs) + 1, produced + 1)), "not the newest"
PY
expect_ok "stored + dropped = produced, newest kept" $? "$(cat "$tmp/check.out")"
cat "$tmp/check.out"
finish node-spool-flags
