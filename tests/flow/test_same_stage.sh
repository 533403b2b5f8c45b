#!/usr/bin/env bash
# test_same_stage.sh ISOFLOW STAGES_DIR FLOW_DIR - the same stage sources
# built as .wasm and as native .so give identical output: runs
# tests/flow/home_test.flow (every stage a wasm module) and the same flow
# with every stage switched to its native .so, then compares the three jsonl
# stores (raw readings, averages, advice) byte for byte after dropping the
# only wall-clock field (the jsonl wrapper's "ts"; the messages carry the
# sensor's simulated clock) and sorting (rooms interleave differently from
# run to run), and the LED log lines.  Exits 1 on any difference.
set -u

ISOFLOW=$1
STAGES=$2
FLOWDIR=$3

TMP=$(mktemp -d "${TMPDIR:-/tmp}/isoflow-same.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for s in room_sensor led cleaner aggregate window_advisor; do
    [ -f "$STAGES/$s.wasm" ] || fail "missing $STAGES/$s.wasm"
    [ -f "$STAGES/$s.so" ] || fail "missing $STAGES/$s.so"
done

# run KIND: runs the flow with wasm or native stages into $TMP/KIND.
run() {
    local d=$TMP/$1
    mkdir -p "$d/out"
    ln -s "$STAGES" "$d/stages"
    if [ "$1" = wasm ]; then
        cp "$FLOWDIR/home_test.flow" "$d/home.flow"
    else
        sed 's/ wasm "stages\/\([a-z_]*\)\.wasm"/ native "stages\/\1.so"/' \
            "$FLOWDIR/home_test.flow" >"$d/home.flow"
    fi
    "$ISOFLOW" run "$d/home.flow" --duration 6 --time-scale 100 --quiet \
        --dead-letter "$d/dead.jsonl" >"$d/run.out" 2>"$d/run.log" || {
        cat "$d/run.out" "$d/run.log" >&2
        fail "isoflow run ($1 stages) failed"
    }
    for f in readings averages advice; do
        sed 's/^\({"origin":[^,]*,"seq":[0-9]*\),"ts":[0-9]*,/\1,/' \
            "$d/out/$f.jsonl" | sort >"$d/$f.cmp"
    done
    grep 'LED blinking' "$d/run.log" | sort >"$d/leds.cmp"
}
run wasm
run native

[ "$(grep -c ' native "stages/' "$TMP/native/home.flow")" = 5 ] ||
    fail "the native flow does not use the 5 .so stages"
for f in readings averages advice leds; do
    a=$TMP/wasm/$f.cmp
    b=$TMP/native/$f.cmp
    [ -s "$a" ] || fail "$f: no output from the wasm run"
    grep -q '^{"origin":[^,]*,"seq":[0-9]*,"ts":' "$a" &&
        fail "$f: the wall-clock ts was not removed"
    cmp -s "$a" "$b" || {
        diff "$a" "$b" | head -10 >&2
        fail "$f differs between the wasm and the native stages"
    }
    echo "ok: $f identical ($(wc -l <"$a") lines)"
done
[ "$(wc -l <"$TMP/wasm/readings.cmp")" = 600 ] || fail "expected 600 readings"
echo "test_same_stage: wasm and native stages gave identical output"
exit 0
