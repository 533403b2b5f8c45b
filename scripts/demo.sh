#!/usr/bin/env bash
# demo.sh BUILD_DIR [SECONDS] - what `make demo` runs: the home CO2 system
# of examples/home.  Checks the flow and prints its graph per layer
# (`isoflow check`), runs every layer in this process for SECONDS (default
# 20) with the live status line (`isoflow run`; the LED log lines show the
# actuations reaching their rooms), then summarises what came out: readings,
# averages stored, advice given, LEDs blinked.  Exits 1 when the flow does
# not check or run, or when nothing reached the stores.  The WebAssembly
# engine showcase that `make demo` used to run is scripts/demo_wasm.sh.
set -u

BUILD_DIR=${1:-build/release}
SECONDS_TO_RUN=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOME_DIR=$ROOT/examples/home

ISOFLOW=$BUILD_DIR/isoflow
if [ ! -x "$ISOFLOW" ]; then
    echo "demo: no isoflow binary under '$BUILD_DIR' (run 'make build')" >&2
    exit 1
fi
STAGES=$(cd "$BUILD_DIR/stages" 2>/dev/null && pwd)
if [ -z "$STAGES" ] || [ ! -f "$STAGES/room_sensor.wasm" ]; then
    echo "demo: no stages under '$BUILD_DIR/stages' (run 'make build')" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/isoflow-demo.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

# The flow as shipped when its `stages` link points at this build;
# otherwise a copy beside a link to this build's stages.
FLOW=$HOME_DIR/home.flow
OUT=$HOME_DIR/out
if [ "$(cd "$HOME_DIR/stages" 2>/dev/null && pwd -P)" != \
     "$(cd "$STAGES" && pwd -P)" ]; then
    cp "$FLOW" "$TMP/home.flow"
    ln -s "$STAGES" "$TMP/stages"
    mkdir -p "$TMP/out"
    FLOW=$TMP/home.flow
    OUT=$TMP/out
fi
rm -f "$OUT/advice.jsonl" "$OUT/averages.jsonl"
REL=${FLOW#"$ROOT"/}

line() { printf '%s\n' "------------------------------------------------------------------------------"; }

echo
echo "isoflow — the home CO2 system: 10 rooms, device -> edge -> cloud -> LED"
line
echo "\$ isoflow check $REL"
if ! (cd "$ROOT" && "$ISOFLOW" check "$REL"); then
    echo "demo: the flow does not check" >&2
    exit 1
fi
echo
echo "\$ isoflow run $REL --duration $SECONDS_TO_RUN"
# The live status line goes to the terminal; stage logs are kept too.
(cd "$ROOT" && "$ISOFLOW" run "$REL" --duration "$SECONDS_TO_RUN" \
    --stats-json "$TMP/stats.json" --dead-letter "$TMP/dead.jsonl") \
    2> >(tee "$TMP/run.log" >&2)
rc=$?
wait
echo
line
if [ $rc -ne 0 ]; then
    echo "demo: isoflow run exited $rc"
    exit 1
fi

count() { [ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0; }
averages=$(count "$OUT/averages.jsonl")
advice=$(count "$OUT/advice.jsonl")
blinks=$(grep -c 'LED blinking' "$TMP/run.log")
produced=$(sed -n 's/^{[^[]*"produced":\([0-9]*\).*/\1/p' "$TMP/stats.json")
rooms=$(sed -n 's/.*"room":"\([^"]*\)","advice".*/\1/p' "$OUT/advice.jsonl" \
        2>/dev/null | sort -u | tr '\n' ' ')
echo "summary: ${produced:-?} readings from 10 rooms in ${SECONDS_TO_RUN} s;" \
     "$averages averages stored ($OUT/averages.jsonl);"
echo "         $advice times 'open the window' advised, $blinks LED blinks" \
     "in the rooms: ${rooms:-none}"
if [ "$averages" -eq 0 ]; then
    echo "demo: nothing reached the cloud store" >&2
    exit 1
fi
if [ "$advice" != "$blinks" ]; then
    echo "demo: $advice advice but $blinks LED blinks" >&2
    exit 1
fi
echo "demo: OK"
exit 0
