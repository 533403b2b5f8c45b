#!/usr/bin/env bash
# test_live_swap.sh ISOFLOW STAGES_DIR - live update on running nodes, the
# paths that succeed: cloud, edge and 3 device `isoflow node` processes over
# mutual TLS, devices pushing every 20 ms; `isoflow deploy` swaps the device
# stage (v2) on every device and the edge stage (v2) on the edge under that
# load; `isoflow versions` shows the active version; a restarted device
# comes back on v2; a v3 on one device and `isoflow rollback` back to v2.
# At the end, per device: every seq reached the cloud sink exactly once and
# in order, the stored messages switch from v1 to v2 once (never back), and
# the kv counter of the device stage continues across the swaps.
set -uo pipefail
BIN=$1
SD=$(cd "$2" && pwd)
. "$(dirname "$0")/../common/testlib.sh"
. "$(dirname "$0")/test_live_lib.sh"

live_setup 30
start_all

# The device stage v2 on every running device, under load.
deploy --group 'room-[0-2]' --stage tag "$T/m/lv_tag2.wasm" --watch 1
expect "deploy tag v2: exit" 0 "$rc"
for d in room-0 room-1 room-2; do
    matches "$d verified" "^$d: verified v1 sha256 [0-9a-f]{8} signed by release$"
    matches "$d swapped" "^$d: swapped v[0-9]+ -> v1 in [0-9.]+ ms \(pause [0-9.]+ ms\)$"
    matches "$d first" "^$d: first message on v1 after [0-9.]+ ms$"
    matches "$d healthy" "^$d: healthy after [0-9.]+ s \([0-9]+ calls\)$"
done
matches "deploy tag summary" "^deployed stage tag v1: 3 healthy, 0 rolled back, 0 rejected, 0 unreachable of 3 nodes in [0-9.]+ s$"

# The edge stage v2 on the edge.
# (--wait first: done at the first message on the new version.)
deploy --layer edge --stage etag "$T/m/lv_edge2.wasm" --watch 1 --wait first
expect "deploy etag v2: exit" 0 "$rc"
matches "edge first" "^edge: first message on v1 after [0-9.]+ ms$"
expect "edge: no healthy line with --wait first" 0 "$(grep -c 'healthy after' "$tmp/stdout")"
matches "deploy etag summary" "^deployed stage etag v1: 1 running, 0 rolled back, 0 rejected, 0 unreachable of 1 node in [0-9.]+ s$"

# versions: v1 (the lv_tag2 module) active on room-1.
sha2=$(sha256sum "$T/m/lv_tag2.wasm" | cut -c1-8)
size2=$(stat -c %s "$T/m/lv_tag2.wasm")
versions --node room-1 --stage tag
expect "versions: exit" 0 "$rc"
has_line "versions title" "stage tag on room-1: active version 1"
matches "versions active row" "^\* 1 +$sha2 +$size2  release +[0-9-]{10} [0-9:]{8}  active"
versions --node room-1 --stage tag --json
expect "versions --json: exit" 0 "$rc"
expect "versions --json: active, last outcome" "1 active" "$(python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
print(j["active"], j["versions"][-1]["outcome"])' <<<"$out")"

# A restarted device keeps its deployed version.
stop room-1; start room-1
sleep 2
versions --node room-1 --stage tag
expect "versions after restart: exit" 0 "$rc"
matches "versions after restart: v1 active" "^\* 1 +$sha2 "

# v3 on room-2, then `isoflow rollback` returns it to v1 (the v2 code).
deploy --node room-2 --stage tag "$T/m/lv_tag3.wasm" --watch 1
expect "deploy tag v3 on room-2: exit" 0 "$rc"
matches "deploy v3 summary" "^deployed stage tag v2: 1 healthy, "
sleep 1
# (--json: one object per line, the node's events as they came, "first"
# with the node's CLOCK_MONOTONIC, then the summary.)
rollback --node room-2 --stage tag --watch 1 --json
expect "rollback: exit" 0 "$rc"
expect "rollback --json: events and summary" \
    "room-2 swapped 2->1; first at_ns ok; healthy; summary 1 healthy" \
    "$(python3 -c '
import json, sys, time
ls = [json.loads(l) for l in sys.stdin.read().splitlines()]
ev = {j.get("event"): j for j in ls if "event" in j}
sw, fi, s = ev["swapped"], ev["first"], ls[-1]
ok = 0 < fi["at_ns"] <= time.monotonic_ns() and fi["node"] == "room-2"
print("%s swapped %d->%d; first at_ns %s; %s; summary %d %s" % (
    sw["node"], sw["from_version"], sw["version"], "ok" if ok else "bad",
    "healthy" if "healthy" in ev else "no healthy", s["healthy"],
    s["summary"] == "rolled back" and "healthy" or "?"))' <<<"$out" 2>&1)"

stop_all
if check_sink "room-0=1,2/e=1,2+n;room-1=1,2/e=1,2;room-2=1,2,3,2/e=1,2+n" \
    >"$T/sink" 2>&1; then
    ok
else
    bad "cloud sink per device" "$(cat "$T/sink")"
fi
cat "$T/sink"
live_finish deploy-live-swap
