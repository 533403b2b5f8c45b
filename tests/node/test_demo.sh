#!/bin/bash
# test_demo.sh ISOFLOW - `isoflow demo --devices 5 --duration 8`: a cloud,
# an edge and 5 device nodes as processes over mutual TLS with a fresh CA.
# Checks the exit status, the summary (5 devices connected, readings at
# every layer, actuations > 0 with the seeded home scenario, latency
# measured) and that no process of the run is left afterwards.
set -u
BIN=$1
T=$(mktemp -d "${TMPDIR:-/tmp}/isoflow-test-demo.XXXXXX")
RUN=$T/run
cleanup() {
    pkill -9 -f -- "$RUN/" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; cat "$T/out" >&2; tail -n 5 "$RUN"/log/*.log >&2; exit 1; }

SECONDS=0
"$BIN" demo --devices 5 --duration 8 --dir "$RUN" >"$T/out" 2>&1
rc=$?
echo "demo took $SECONDS s"
[ $rc -eq 0 ] || fail "demo exited $rc"
num() { sed -n "s/$1/\\1/p" "$T/out" | head -1; }
grep -q '^  devices connected: 5 of 5$' "$T/out" || fail "not 5 devices connected"
produced=$(num '^  device layer: \([0-9]*\) readings produced.*')
sent=$(num '^  device layer: [0-9]* readings produced, \([0-9]*\) sent.*')
edge_in=$(num '^  edge layer: *\([0-9]*\) messages received.*')
edge_out=$(num '^  edge layer: .*, \([0-9]*\) sent (.*')
cloud_in=$(num '^  cloud layer: *\([0-9]*\) messages received.*')
stored=$(num '^  cloud layer: .*, \([0-9]*\) averages stored$')
acts=$(num '^  actuations delivered: \([0-9]*\) .*')
lat=$(num '^  end-to-end latency.* over \([0-9]*\) averages$')
echo "produced=$produced sent=$sent edge_in=$edge_in edge_out=$edge_out" \
     "cloud_in=$cloud_in stored=$stored actuations=$acts latency_samples=$lat"
# 5 devices at 10 readings/s for 8 s: about 400 (fewer under ASan).
[ "${produced:-0}" -ge 50 ] || fail "too few readings produced"
[ "$sent" = "$produced" ] || fail "devices sent $sent of $produced"
[ "${edge_in:-0}" -ge "$sent" ] || fail "edge received $edge_in < $sent"
# The edge sends every average twice (to window and store) and every
# actuation down to its device (delivered, or spooled when its device
# stopped first).
[ "${cloud_in:-0}" -gt 0 ] && [ "${edge_out:-0}" -ge "$((cloud_in + acts))" ] ||
    fail "edge sent $edge_out, cloud received $cloud_in, $acts actuations"
[ "${stored:-0}" -gt 0 ] || fail "nothing stored in the cloud"
[ "$((stored * 2))" -eq "$cloud_in" ] || fail "stored $stored of $cloud_in/2"
[ "${acts:-0}" -gt 0 ] || fail "no actuation delivered"
[ "$lat" = "$stored" ] || fail "latency over $lat of $stored averages"
grep -q '^demo: OK' "$T/out" || fail "no OK line"
# The live update half-way: verified, swapped, healthy, and v2 runs.
grep -q '^        deploy: edge: verified v1 sha256 [0-9a-f]* signed by demo$' "$T/out" ||
    fail "deploy: no verified line"
grep -q '^        deploy: edge: swapped v0 -> v1 in ' "$T/out" || fail "deploy: no swap"
grep -q '^        deploy: deployed stage clean v1: 1 healthy, 0 rolled back, 0 rejected, 0 unreachable of 1 node' "$T/out" ||
    fail "deploy: not healthy"
grep -q '^  live update: cleaner v2 deployed to the running edge$' "$T/out" ||
    fail "deploy: no summary line"
grep -q 'cleaner v2 running' "$RUN/log/edge.log" || fail "edge does not run cleaner v2"
grep -q '^\[ *[0-9]*s\] devices [0-9]*/5 | msg/s' "$T/out" || fail "no status line"
[ "$(wc -l <"$RUN/out/averages.jsonl")" -eq "$stored" ] || fail "store lines"
sleep 0.2
if pgrep -f -- "$RUN/" >/dev/null; then
    pgrep -af -- "$RUN/" >&2
    fail "processes left"
fi

# Killed with -9: its nodes die with it (PR_SET_PDEATHSIG).
"$BIN" demo --devices 2 --dir "$RUN-k" >"$T/out2" 2>&1 &
DP=$!
for _ in $(seq 100); do
    [ "$(pgrep -f -- "$RUN-k/" | wc -l)" -ge 4 ] && break
    sleep 0.1
done
[ "$(pgrep -f -- "$RUN-k/" | wc -l)" -ge 4 ] || fail "killed demo: nodes not started"
kill -9 $DP; wait $DP 2>/dev/null
sleep 0.5
if pgrep -f -- "$RUN-k/" >/dev/null; then
    pgrep -af -- "$RUN-k/" >&2
    pkill -9 -f -- "$RUN-k/"
    fail "processes left after kill -9 of the demo"
fi
rm -rf "$RUN-k"
echo "demo: ok"
