#!/usr/bin/env bash
# test_wasi.sh - integration test of WASI through the real `isoflow wasm run`:
# the C programs of tests/wasi/*.c compiled with wasi-libc, checked for
# exact stdout, stderr and exit codes (arguments, environment, stdin, exit
# codes, traps named by function, fuel, timeout, memory cap, call depth, the
# file-system sandbox with its three escapes, and the other file calls).
# Usage: tests/wasi/test_wasi.sh ISOFLOW_BIN WASI_WASM_DIR
set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 ISOFLOW_BIN WASI_WASM_DIR" >&2
    exit 2
fi
bin=$1
w=$2
for m in hello exitcode stdin_count trap_deep spin grow recurse files fsops; do
    [ -f "$w/$m.wasm" ] || { echo "missing $w/$m.wasm" >&2; exit 1; }
done

. "$(dirname "$0")/../common/testlib.sh"

run_wasm() { run "$bin" wasm run "$@"; }

# ---------------------------------------------------------------------------
# Arguments and environment: argv[0] is the file's base name, the host's
# environment is not passed, --env is.
check "hello args" 0 $'hello from wasm, argc=3\narg[1]=one\narg[2]=two words' "" \
    -- "$bin" wasm run "$w/hello.wasm" one "two words"
check "hello env" 0 $'hello from wasm, argc=1\nGREETING=hi' "" \
    -- "$bin" wasm run --env GREETING=hi "$w/hello.wasm"
check "hello env=" 0 $'hello from wasm, argc=2\narg[1]=x\nGREETING=a=b' "" \
    -- "$bin" wasm run --env=GREETING=a=b "$w/hello.wasm" x
GREETING=from-host check "host env hidden" 0 "hello from wasm, argc=1" "" \
    -- "$bin" wasm run "$w/hello.wasm"
check "hello options end" 0 $'hello from wasm, argc=2\narg[1]=--fuel' "" \
    -- "$bin" wasm run "$w/hello.wasm" --fuel

# Startup time of a WASI program (the sanitizer build is slow to start):
# the timeout limit below is judged against it.
startup=1000000
for _ in 1 2 3; do
    run_wasm "$w/hello.wasm"
    [ "$ms" -lt "$startup" ] && startup=$ms
done

# ---------------------------------------------------------------------------
# Exit codes through proc_exit.
for code in 0 7 255; do
    check "exit $code" "$code" "" "exiting with $code" \
        -- "$bin" wasm run "$w/exitcode.wasm" "$code"
done

# ---------------------------------------------------------------------------
# Standard input.
printf '12 30\nabc 8\n\n' >"$tmp/in1"
stdin=$tmp/in1
check "stdin small" 0 "bytes=13 lines=3 sum=50" "" \
    -- "$bin" wasm run "$w/stdin_count.wasm"
seq 1 10000 >"$tmp/in2"
stdin=$tmp/in2
check "stdin 10000 lines" 0 "bytes=$(wc -c <"$tmp/in2" | tr -d ' ') lines=10000 sum=50005000" "" \
    -- "$bin" wasm run "$w/stdin_count.wasm"
stdin=/dev/null
check "stdin empty" 0 "bytes=0 lines=0 sum=0" "" \
    -- "$bin" wasm run "$w/stdin_count.wasm"
out=$(printf '1\n2\n3' | "$bin" wasm run "$w/stdin_count.wasm" 2>&1)
[ "$out" = "bytes=5 lines=2 sum=6" ]
expect_ok "stdin pipe" $? "got $(printf %q "$out")"

# ---------------------------------------------------------------------------
# Traps: named by function, exit 3, output before the trap kept.
check "trap deep" 3 "about to trap" \
    "isoflow: trap: unreachable in function deep_fault" \
    -- "$bin" wasm run "$w/trap_deep.wasm"
check "recursion" 3 "recursing" \
    "isoflow: trap: call stack exhausted in function down" \
    -- "$bin" wasm run "$w/recurse.wasm"

# Infinite loop: fuel.
run_wasm --fuel 100000 "$w/spin.wasm"
[ "$rc" = 3 ] && [ "$out" = "spinning" ] &&
    [[ "$err" =~ ^"isoflow: trap: out of fuel in function "[A-Za-z_]*main$ ]]
expect_ok "spin fuel" $? "rc=$rc out=$(printf %q "$out") err=$(printf %q "$err")"

# Infinite loop: --timeout 200 must stop it within 100 ms of the limit
# (counted after the program's own startup).  The best of three runs is
# judged, so that a loaded machine does not fail the test by itself.
limit=$((200 + 100 + startup))
best=1000000
for _ in 1 2 3; do
    run_wasm --timeout 200 "$w/spin.wasm"
    if [ "$rc" = 3 ] && [ "$out" = "spinning" ] &&
        [[ "$err" =~ ^"isoflow: trap: timeout after 200 ms (interrupted) in function "[A-Za-z_]*main$ ]]; then
        [ "$ms" -lt "$best" ] && best=$ms
    else
        bad "spin timeout output" "rc=$rc out=$(printf %q "$out") err=$(printf %q "$err")"
        break
    fi
    [ "$best" -le "$limit" ] && break
done
[ "$best" -ge 200 ] && [ "$best" -le "$limit" ]
expect_ok "spin timeout time" $? "took ${best} ms, want 200..${limit} ms (startup ${startup} ms)"
echo "timeout 200 ms: stopped after ${best} ms (startup ${startup} ms)"

# A program that finishes first is not affected by --timeout.
check "timeout not reached" 0 "hello from wasm, argc=1" "" \
    -- "$bin" wasm run --timeout 60000 "$w/hello.wasm"

# A guest blocked in a host call (reading a pipe that stays open) cannot
# see the interrupt: the command gives up 1 s after the limit.
t0=$(now_ms)
"$bin" wasm run --timeout 200 "$w/stdin_count.wasm" >/dev/null 2>"$tmp/stderr" \
    < <(sleep 4)
rc=$?
ms=$(($(now_ms) - t0))
err=$(cat "$tmp/stderr")
[ "$rc" = 3 ] &&
    [ "$err" = "isoflow: timeout after 200 ms: the guest is blocked in a host call" ] &&
    [ "$ms" -lt 3500 ]
expect_ok "timeout blocked" $? "rc=$rc ms=$ms err=$(printf %q "$err")"

# ---------------------------------------------------------------------------
# Memory cap: malloc fails gracefully, the count follows the cap.
mib_of() { sed -n 's/^allocated \([0-9]*\) MiB before malloc failed (check \1)$/\1/p' <<<"$1"; }
run_wasm --max-memory 4M "$w/grow.wasm"
n4=$(mib_of "$out")
[ "$rc" = 0 ] && [ -z "$err" ] && [ -n "$n4" ] && [ "$n4" -ge 1 ] && [ "$n4" -le 3 ]
expect_ok "grow 4M" $? "rc=$rc out=$(printf %q "$out") err=$(printf %q "$err")"
run_wasm --max-memory 128p "$w/grow.wasm"
n8=$(mib_of "$out")
[ "$rc" = 0 ] && [ -n "$n8" ] && [ -n "$n4" ] && [ "$n8" -ge $((n4 + 3)) ] && [ "$n8" -le 7 ]
expect_ok "grow 128p" $? "rc=$rc out=$(printf %q "$out") (4M gave $n4)"
check "memory below module" 1 "" \
    "isoflow: $w/hello.wasm: memory 0: 2 pages exceed the store limit of 1" \
    -- "$bin" wasm run --max-memory 65536 "$w/hello.wasm"

# ---------------------------------------------------------------------------
# File system: a granted directory, and the three escapes.
root=$tmp/root
mkdir -p "$root"
echo "secret outside" >"$tmp/outside.txt"
ln -s /etc "$root/escape"
files_ok="read: isoflow was here
list: note.txt found
dotdot: refused (Capabilities insufficient)
absolute: refused (Capabilities insufficient)
symlink: refused (Capabilities insufficient)"
check "files --dir" 0 "$files_ok" "" \
    -- "$bin" wasm run --dir "$root" "$w/files.wasm" "$root"
[ "$(cat "$root/note.txt")" = "isoflow was here" ] &&
    [ "$(cat "$tmp/outside.txt")" = "secret outside" ] &&
    [ "$(readlink "$root/escape")" = "/etc" ]
expect_ok "files on the host" $? "$(ls -la "$root" "$tmp")"
rm -f "$root/note.txt"
check "files --dir HOST:GUEST" 0 "$files_ok" "" \
    -- "$bin" wasm run --dir "$root:/data" "$w/files.wasm" /data
[ "$(cat "$root/note.txt" 2>&1)" = "isoflow was here" ]
expect_ok "files GUEST on the host" $? "$(ls -la "$root")"
rm -f "$root/note.txt"
check "files without --dir" 1 "write: failed (Capabilities insufficient)" "" \
    -- "$bin" wasm run "$w/files.wasm" /data
[ ! -e "$root/note.txt" ] && [ ! -e /data/note.txt ]
expect_ok "files without --dir wrote nothing" $?

# The other file calls (seek, positioned I/O, truncate, stat, mkdir, rename,
# unlink, rmdir, a 150-entry listing over several fd_readdir calls) and
# clocks, random bytes, a sleep: 28 checks, each printing "NAME: ok".
mkdir -p "$tmp/fs"
run_wasm --dir "$tmp/fs:/w" "$w/fsops.wasm" /w
nok=$(grep -c ': ok$' "$tmp/stdout")
[ "$rc" = 0 ] && [ -z "$err" ] && [ "$nok" = 28 ] &&
    [ "$(tail -n 1 "$tmp/stdout")" = "0 failures" ] &&
    [ -z "$(ls -A "$tmp/fs")" ]
expect_ok "fsops" $? "rc=$rc ok=$nok" "$(grep -v ': ok$' "$tmp/stdout")" "$err"

# ---------------------------------------------------------------------------
# Bad option values: one line naming the option, exit 2.
check "bad fuel" 2 "" "isoflow: option '--fuel' needs a whole number >= 0, got 'x'" \
    -- "$bin" wasm run --fuel x "$w/hello.wasm"
check "bad timeout" 2 "" \
    "isoflow: option '--timeout' needs milliseconds from 1 to 2147483647, got '0'" \
    -- "$bin" wasm run --timeout 0 "$w/hello.wasm"
check "bad max-memory" 2 "" \
    "isoflow: option '--max-memory' needs a size such as 65536, 512K, 4M, 1G or 16p (at most 4G), got '5G'" \
    -- "$bin" wasm run --max-memory 5G "$w/hello.wasm"
check "bad dir" 2 "" \
    "isoflow: option '--dir': cannot open directory '$tmp/nope': No such file or directory" \
    -- "$bin" wasm run --dir "$tmp/nope" "$w/hello.wasm"
check "bad env" 2 "" "isoflow: option '--env' needs KEY=VALUE, got 'GREETING'" \
    -- "$bin" wasm run --env GREETING "$w/hello.wasm"
check "missing value" 2 "" \
    "isoflow: option '--dir' needs a value (see 'isoflow wasm run --help')" \
    -- "$bin" wasm run --dir

# --help documents every option.
run "$bin" wasm run --help
miss=""
for o in --fuel --timeout --max-memory --dir --env --invoke --time; do
    grep -q -- "  $o " "$tmp/stdout" || miss="$miss $o"
done
[ "$rc" = 0 ] && [ -z "$miss" ]
expect_ok "run --help" $? "rc=$rc missing:$miss"

finish wasi
