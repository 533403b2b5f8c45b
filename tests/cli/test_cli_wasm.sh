#!/usr/bin/env bash
# test_cli_wasm.sh - integration test of the real `isoflow` binary's
# `wasm validate|info|run` subcommands: exact stdout, stderr and exit codes
# on the example modules (examples/wasm) and on small modules assembled here
# with wat2wasm (traps, imports, WASI calls by hand, multi-value, floats,
# fuel and memory limits, bad input).  WASI C programs: tests/wasi.
# Usage: tests/cli/test_cli_wasm.sh ISOFLOW_BIN EXAMPLES_WASM_DIR
set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 ISOFLOW_BIN EXAMPLES_WASM_DIR" >&2
    exit 2
fi
bin=$1
ex=$2
command -v wat2wasm >/dev/null || { echo "wat2wasm missing (scripts/deps.sh)" >&2; exit 1; }

. "$(dirname "$0")/../common/testlib.sh"

wat() { # wat NAME TEXT: assembles $tmp/NAME.wasm with a name section.
    printf '%s\n' "$2" >"$tmp/$1.wat"
    wat2wasm --debug-names "$tmp/$1.wat" -o "$tmp/$1.wasm" ||
        { echo "wat2wasm failed on $1" >&2; exit 1; }
}

size_of() { wc -c <"$1" | tr -d ' '; }

# ---------------------------------------------------------------------------
# Modules assembled for the test.
wat calc '(module
  (func $adder (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add)
  (func $div (export "div") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.div_s)
  (func $boom (export "boom") unreachable)
  (func $deep (export "deep") (param i32) (result i32)
    local.get 0 call $deep)
  (func $pair (export "pair") (result i32 i64)
    i32.const -1 i64.const 0x7fffffffffffffff)
  (func $pi (export "pi") (result f64) f64.const 3.141592653589793)
  (func $half (export "half") (param f32) (result f32)
    local.get 0 f32.const 0.5 f32.mul)
  (func $inc64 (export "inc64") (param i64) (result i64)
    local.get 0 i64.const 1 i64.add)
  (memory (export "mem") 1 2)
  (global (export "g") (mut i32) (i32.const 7)))'
wat wasi '(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func (param i32 i32 i32 i32) (result i32)))
  (func (export "_start")))'
wat wasihello '(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept"
    (func $sock_accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func $hello (export "hello") (result i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.add (i32.load (i32.const 8)) (i32.const 4)))
  (func (export "sock") (result i32)
    (call $sock_accept (i32.const 0) (i32.const 0) (i32.const 0)))
  (func (export "_start") (drop (call $hello))))'
wat wasiexit '(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "_start") (call $exit (i32.const 42)) unreachable))'
wat wasibad '(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32) (result i32)))
  (func (export "_start")))'
wat grow '(module (memory 2)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))'
wat envimp '(module (import "env" "foo" (func)) (func (export "f")))'
wat start '(module (global (export "g") i32 (i32.const 1))
  (func $s (export "_start")))'
printf '\0asm\1\0\0\0\1\5\1\x60\0' >"$tmp/trunc.wasm" # type section cut short
printf 'not a wasm module' >"$tmp/garbage.wasm"

calc=$tmp/calc.wasm

# ---------------------------------------------------------------------------
# Top level.
run "$bin" --version
[ $rc -eq 0 ] && [[ "$out" =~ ^isoflow\ [0-9] ]] && ok ||
    bad "--version" "rc=$rc out=$out"
run "$bin" --help
[ $rc -eq 0 ] && [[ "$out" == *wasm* ]] && ok || bad "--help" "rc=$rc out=$out"

# validate
check "validate calc" 0 "$calc: valid (8 functions, $(size_of "$calc") bytes)" "" \
    -- "$bin" wasm validate "$calc"
run "$bin" wasm validate "$tmp/trunc.wasm"
[ $rc -eq 1 ] && [ -z "$out" ] && [[ "$err" == "isoflow: $tmp/trunc.wasm: "?* ]] &&
    ok || bad "validate truncated" "rc=$rc out=$out err=$err"
run "$bin" wasm validate "$tmp/garbage.wasm"
[ $rc -eq 1 ] && [ -z "$out" ] && [[ "$err" == "isoflow: $tmp/garbage.wasm: "?* ]] &&
    ok || bad "validate garbage" "rc=$rc out=$out err=$err"
check "validate missing" 1 "" \
    "isoflow: cannot read $tmp/nope.wasm: No such file or directory" \
    -- "$bin" wasm validate "$tmp/nope.wasm"

# info
run "$bin" wasm info "$calc"
[ $rc -eq 0 ] && ok || bad "info calc exit" "rc=$rc err=$err"
has_line "info module" "module:    $calc"
has_line "info size" "size:      $(size_of "$calc") bytes"
has_line "info functions" "functions: 8 (0 imported, 8 defined)"
has_line "info start" "start:     none"
has_line "info imports" "imports (0):"
has_line "info exports" "exports (10):"
has_line "info add" "$(printf '  %-24s %s' add 'func (i32, i32) -> (i32)  [func #0 "adder"]')"
has_line "info boom" "$(printf '  %-24s %s' boom 'func () -> ()  [func #2]')"
has_line "info pair" "$(printf '  %-24s %s' pair 'func () -> (i32, i64)  [func #4]')"
has_line "info mem" "$(printf '  %-24s %s' mem 'memory 1..2 pages')"
has_line "info g" "$(printf '  %-24s %s' g 'global mut i32')"
run "$bin" wasm info "$tmp/wasi.wasm"
has_line "info wasi import" "$(printf '  %-24s %s' wasi_snapshot_preview1.fd_write 'func (i32, i32, i32, i32) -> (i32)  [func #0]')"

# run: results
check "run add" 0 "5" "" -- "$bin" wasm run --invoke add "$calc" 2 3
check "run add hex/neg" 0 "13" "" -- "$bin" wasm run --invoke add "$calc" 0x10 -3
check "run add wraps" 0 "-2147483648" "" \
    -- "$bin" wasm run --invoke add "$calc" 2147483647 1
check "run pair" 0 $'-1\n9223372036854775807' "" -- "$bin" wasm run --invoke pair "$calc"
check "run pi" 0 "3.1415926535897931" "" -- "$bin" wasm run --invoke pi "$calc"
check "run half" 0 "1.5" "" -- "$bin" wasm run --invoke half "$calc" 3
check "run half inf" 0 "inf" "" -- "$bin" wasm run --invoke half "$calc" inf
check "run inc64" 0 "-9223372036854775808" "" \
    -- "$bin" wasm run --invoke inc64 "$calc" 9223372036854775807
check "run _start" 0 "" "" -- "$bin" wasm run "$tmp/start.wasm"

# run: traps (exit 3, function named from the name section)
check "trap unreachable" 3 "" "isoflow: trap: unreachable in function boom" \
    -- "$bin" wasm run --invoke boom "$calc"
check "trap div zero" 3 "" "isoflow: trap: integer divide by zero in function div" \
    -- "$bin" wasm run --invoke div "$calc" 1 0
check "trap overflow" 3 "" "isoflow: trap: integer overflow in function div" \
    -- "$bin" wasm run --invoke div "$calc" -2147483648 -1
check "trap stack" 3 "" "isoflow: trap: call stack exhausted in function deep" \
    -- "$bin" wasm run --invoke deep "$calc" 1

# run: usage and link errors
check "run arg count" 2 "" "isoflow: add expects 2 arguments (i32, i32), got 1" \
    -- "$bin" wasm run --invoke add "$calc" 1
check "run bad arg" 2 "" "isoflow: add: argument 2: 'x' is not a valid i32" \
    -- "$bin" wasm run --invoke add "$calc" 1 x
run "$bin" wasm run --invoke nope "$calc"
[ $rc -eq 1 ] && [ -z "$out" ] &&
    [[ "$err" == "isoflow: $calc: no exported function 'nope'"* ]] && ok ||
    bad "run no export" "rc=$rc out=$out err=$err"
check "run wasi" 0 "" "" -- "$bin" wasm run "$tmp/wasi.wasm"
check "run wasi hello" 0 "hi" "" -- "$bin" wasm run "$tmp/wasihello.wasm"
check "run wasi exit" 42 "" "" -- "$bin" wasm run "$tmp/wasiexit.wasm"
check "run wasi --invoke" 0 $'hi\n7' "" \
    -- "$bin" wasm run --invoke hello "$tmp/wasihello.wasm"
check "run wasi enosys" 0 "52" "" \
    -- "$bin" wasm run --invoke sock "$tmp/wasihello.wasm"
check "run wasi bad type" 1 "" \
    "isoflow: $tmp/wasibad.wasm: wasi_snapshot_preview1.fd_write: incompatible import type" \
    -- "$bin" wasm run "$tmp/wasibad.wasm"
check "run fuel" 3 "" "isoflow: trap: out of fuel in function deep" \
    -- "$bin" wasm run --fuel 100 --invoke deep "$calc" 1
# Bulk operations pay fuel by length (1 unit per 64 KiB): a short loop
# around a 16 MiB memory.fill cannot outrun the budget.
wat bulkfill '(module (memory 256)
  (func $fill_loop (export "fill_loop") (param i32) (result i32)
    (loop $l
      (memory.fill (i32.const 0) (i32.const 7) (i32.const 16777216))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (local.get 0)))
    (i32.load8_u (i32.const 99))))'
check "run fuel bulk" 3 "" "isoflow: trap: out of fuel in function fill_loop" \
    -- "$bin" wasm run --fuel 100000 --invoke fill_loop "$tmp/bulkfill.wasm" 1000000
check "run fuel bulk ok" 0 "7" "" \
    -- "$bin" wasm run --fuel 2000 --invoke fill_loop "$tmp/bulkfill.wasm" 4
check "run max-memory" 0 "-1" "" \
    -- "$bin" wasm run --max-memory 128K --invoke grow "$tmp/grow.wasm" 1
check "run max-memory ok" 0 "2" "" \
    -- "$bin" wasm run --max-memory 3p --invoke grow "$tmp/grow.wasm" 1
check "run env import" 1 "" "isoflow: $tmp/envimp.wasm: unresolved import env.foo" \
    -- "$bin" wasm run --invoke f "$tmp/envimp.wasm"
check "run unknown option" 2 "" \
    "isoflow: unknown option '--foo' (see 'isoflow wasm run --help')" \
    -- "$bin" wasm run --foo "$calc"
run "$bin" wasm run "$calc"
[ $rc -eq 1 ] && [[ "$err" == "isoflow: $calc: no '_start' export; use --invoke NAME"* ]] &&
    ok || bad "run without _start" "rc=$rc err=$err"
run "$bin" wasm run --invoke add "$tmp/trunc.wasm" 1 2
[ $rc -eq 1 ] && [[ "$err" == "isoflow: $tmp/trunc.wasm: "?* ]] && ok ||
    bad "run malformed" "rc=$rc err=$err"

# ---------------------------------------------------------------------------
# The example modules built from examples/wasm/*.c (expected values are the
# native C results).
examples=0
for w in "$ex"/*.wasm; do
    [ -e "$w" ] || continue
    examples=$((examples + 1))
    run "$bin" wasm validate "$w"
    [ $rc -eq 0 ] && [[ "$out" =~ ^"$w: valid ("[0-9]+" functions, $(size_of "$w") bytes)"$ ]] &&
        ok || bad "validate $w" "rc=$rc out=$out err=$err"
    run "$bin" wasm info "$w"
    [ $rc -eq 0 ] && ok || bad "info $w" "rc=$rc err=$err"
    has_line "info $w size" "size:      $(size_of "$w") bytes"
done
if [ $examples -eq 0 ]; then
    bad "no example .wasm files in $ex"
fi
if [ -e "$ex/fib.wasm" ]; then
    check "fib(10)" 0 "55" "" -- "$bin" wasm run --invoke fib "$ex/fib.wasm" 10
    check "fib(25)" 0 "75025" "" -- "$bin" wasm run --invoke fib "$ex/fib.wasm" 25
    run "$bin" wasm info "$ex/fib.wasm"
    matches "info fib export" '^  fib +func \(i32\) -> \(i(32|64)\)  \[func #[0-9]+'
fi
if [ -e "$ex/sieve.wasm" ]; then
    check "count_primes(100)" 0 "25" "" \
        -- "$bin" wasm run --invoke count_primes "$ex/sieve.wasm" 100
    check "count_primes(1000000)" 0 "78498" "" \
        -- "$bin" wasm run --invoke count_primes "$ex/sieve.wasm" 1000000
fi
if [ -e "$ex/mandel.wasm" ]; then
    check "mandel_checksum" 0 "8575320203237716442" "" \
        -- "$bin" wasm run --invoke mandel_checksum "$ex/mandel.wasm" 320 240 256
    check "mandel_area" 0 "1.5273763020833333" "" \
        -- "$bin" wasm run --invoke mandel_area "$ex/mandel.wasm" 320 240 256
fi

finish cli-wasm
