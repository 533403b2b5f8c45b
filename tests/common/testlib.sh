# testlib.sh - the shared prelude of isoflow's shell tests: a scratch
# directory removed at exit, pass/fail counting, and exact-output checks.
# Source it from a test script (after `set -uo pipefail`):
#     . "$(dirname "$0")/../common/testlib.sh"
# then end with `finish NAME` (prints "NAME: P passed, F failed" and exits
# non-zero when anything failed).
# shellcheck shell=bash

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }

# bad NAME DETAILS...: records a failure and prints it with its details.
bad() {
    fail=$((fail + 1))
    echo "FAIL: $1"
    shift
    for l in "$@"; do echo "  $l"; done
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run CMD...: runs the command (stdin from $stdin, default /dev/null),
# keeping stdout in $out, stderr in $err, the exit status in $rc and the
# wall time in $ms.
stdin=/dev/null
run() {
    local t0
    t0=$(now_ms)
    "$@" <"$stdin" >"$tmp/stdout" 2>"$tmp/stderr"
    rc=$?
    ms=$(($(now_ms) - t0))
    out=$(cat "$tmp/stdout")
    err=$(cat "$tmp/stderr")
}

# check NAME RC STDOUT STDERR -- CMD...: runs CMD and compares its exit
# status, stdout and stderr exactly.
check() {
    local name=$1 want_rc=$2 want_out=$3 want_err=$4
    shift 5
    run "$@"
    if [ "$rc" = "$want_rc" ] && [ "$out" = "$want_out" ] &&
        [ "$err" = "$want_err" ]; then
        ok
    else
        bad "$name: $*" "exit: want $want_rc, got $rc" \
            "stdout want: $(printf %q "$want_out")" \
            "stdout got:  $(printf %q "$out")" \
            "stderr want: $(printf %q "$want_err")" \
            "stderr got:  $(printf %q "$err")"
    fi
}

# expect NAME WANT GOT: exact comparison of two values.
expect() {
    if [ "$2" = "$3" ]; then ok; else bad "$1" "want: $2" "got:  $3"; fi
}

# expect_ok NAME STATUS DETAILS...: a pass when STATUS (the $? of a
# preceding [[ ]] or test) is 0, else a failure with DETAILS.
expect_ok() {
    local name=$1 res=$2
    shift 2
    if [ "$res" -eq 0 ]; then ok; else bad "$name" "$@"; fi
}

# has_line NAME LINE: the last run's stdout holds LINE exactly.
has_line() {
    if grep -qxF -- "$2" "$tmp/stdout"; then
        ok
    else
        bad "$1: missing line $(printf %q "$2")" "stdout: $(printf %q "$out")"
    fi
}

# matches NAME REGEX: the last run's stdout holds a line matching REGEX.
matches() {
    if grep -qE -- "$2" "$tmp/stdout"; then
        ok
    else
        bad "$1: no line matching $2" "stdout: $(printf %q "$out")"
    fi
}

# finish NAME: prints the summary; the exit status says whether all passed.
finish() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}
