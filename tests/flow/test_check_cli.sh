#!/usr/bin/env bash
# test_check_cli.sh - integration test of `isoflow check`: the printed graph
# and summary of a good flow (builtin stages only), --devices, a bad flow's
# positioned error and exit code, usage errors.
# Usage: test_check_cli.sh path/to/isoflow
set -u
ISOFLOW=${1:?usage: test_check_cli.sh ISOFLOW}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

check() { # name expected actual
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1"
        echo "--- expected"; printf '%s\n' "$2"
        echo "--- got"; printf '%s\n' "$3"
        fails=$((fails + 1))
    else
        echo "ok: $1"
    fi
}

cat > "$work/t.flow" <<'FLOW'
devices rooms "room-%02d" x 4
stage sensor @rooms log every 500ms
stage keep   @edge  sample 2
stage out    @cloud jsonl "out/x.jsonl"
flow f: demand(sensor credits 4 policy drop-oldest buffer 8) <~> keep ~> out
FLOW
mkdir "$work/out"

out=$("$ISOFLOW" check "$work/t.flow" --devices rooms=12 2>&1); rc=$?
check "good flow exit code" 0 "$rc"
check "good flow output" "flow file $work/t.flow
devices rooms: 12 (room-00 .. room-11)

device layer
  stages
    sensor       log  12 instances (room-00 .. room-11)  every 500ms
  sources
    sensor       demand every 500ms credits 4 policy drop-oldest buffer 8  (flow f)
  links
    sensor <~> keep  (flow f)

edge layer
  stages
    keep         sample config \"2\"  1 instance
  links
    keep ~> out  (flow f)

cloud layer
  stages
    out          jsonl \"$work/out/x.jsonl\"  1 instance

$work/t.flow: ok (3 stages, 2 links, 12 devices)" "$out"

printf 'stage a @edge log every 1s\nflow f: push(a) ~> b\n' > "$work/bad.flow"
out=$("$ISOFLOW" check "$work/bad.flow" 2>&1 >/dev/null); rc=$?
check "bad flow exit code" 1 "$rc"
check "bad flow error" "$work/bad.flow:2:20: error: unknown stage \"b\" in flow \"f\"
  flow f: push(a) ~> b
                     ^ expected a declared stage" "$out"

out=$("$ISOFLOW" check "$work/t.flow" --devices halls=2 2>&1); rc=$?
check "unknown device group exit code" 1 "$rc"
check "unknown device group message" "isoflow: option '--devices': cannot give device group 'halls' 2 devices in $work/t.flow (invalid argument: no such device group, a single named device, too many devices or duplicate names)" "$out"

out=$("$ISOFLOW" check 2>&1 >/dev/null); rc=$?
check "no file exit code" 2 "$rc"
out=$("$ISOFLOW" check --devices rooms=0 "$work/t.flow" 2>&1); rc=$?
check "bad --devices exit code" 2 "$rc"
check "bad --devices message" "isoflow: option '--devices': N must be from 1 to 100000, got '0'" "$out"
out=$("$ISOFLOW" check "$work/none.flow" 2>&1); rc=$?
check "missing file exit code" 1 "$rc"
check "missing file message" "$work/none.flow: error: cannot open: No such file or directory" "$out"


# isoflow stages: the list of kinds, one kind's documentation, an unknown kind.
out=$("$ISOFLOW" stages 2>&1); rc=$?
check "stages exit code" 0 "$rc"
check "stages lists sample" "  sample   forwards every Nth message" "$(printf '%s\n' "$out" | grep '^  sample ')"
check "stages kinds" "wasm native log jsonl null sample rate filter delay" "$(printf '%s\n' "$out" | tail -n +2 | awk '{printf "%s%s", sep, $1; sep=" "}')"
out=$("$ISOFLOW" stages sample 2>&1); rc=$?
check "stages sample exit code" 0 "$rc"
check "stages sample title" "sample - forwards every Nth message" "$(printf '%s\n' "$out" | head -1)"
out=$("$ISOFLOW" stages nope 2>&1); rc=$?
check "stages unknown exit code" 2 "$rc"
check "stages unknown message" "isoflow: unknown stage kind 'nope' (see 'isoflow stages')" "$out"

[ $fails -eq 0 ] && echo "all isoflow check tests passed"
exit $((fails > 0))
