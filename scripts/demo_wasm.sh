#!/usr/bin/env bash
# demo_wasm.sh BUILD_DIR - the WebAssembly engine showcase (`make demo` ran
# it before the flow engine; `make demo` now runs scripts/demo.sh, the home
# flow):
# describes one example module with `isoflow wasm info`, runs every example
# export with `isoflow wasm run --time`, compares each result with the
# expected value (and with a native build of the same C code when a host C
# compiler is available), and shows that a guest fault is contained as a
# trap.  Exits 1 when anything does not match.
set -u

BUILD_DIR=${1:-build/release}
if [ ! -d "$BUILD_DIR" ]; then
    echo "demo: build directory '$BUILD_DIR' not found (run 'make build')" >&2
    exit 1
fi

# Locate the command and the example modules (defaults from the CMake build:
# BUILD_DIR/isoflow and BUILD_DIR/examples/wasm/<name>.wasm).
ISOFLOW=$BUILD_DIR/isoflow
if [ ! -x "$ISOFLOW" ]; then
    ISOFLOW=$(find "$BUILD_DIR" -type f -name isoflow -perm -u+x 2>/dev/null |
              head -n 1)
fi
if [ -z "$ISOFLOW" ] || [ ! -x "$ISOFLOW" ]; then
    echo "demo: no isoflow binary under '$BUILD_DIR' (run 'make build')" >&2
    exit 1
fi
WASM_DIR=$BUILD_DIR/examples/wasm
if [ ! -f "$WASM_DIR/fib.wasm" ]; then
    found=$(find "$BUILD_DIR" -type f -name fib.wasm 2>/dev/null | head -n 1)
    [ -n "$found" ] && WASM_DIR=$(dirname "$found")
fi
for m in fib sieve mandel; do
    if [ ! -f "$WASM_DIR/$m.wasm" ]; then
        echo "demo: example $m.wasm not found under '$BUILD_DIR'" >&2
        exit 1
    fi
done

SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)/examples/wasm
TMP=$(mktemp -d "${TMPDIR:-/tmp}/isoflow-demo.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

# Native reference builds of the same sources (optional).
CC=${CC:-cc}
HAVE_NATIVE=0
if command -v "$CC" >/dev/null 2>&1; then
    HAVE_NATIVE=1
    for m in fib sieve mandel; do
        if ! "$CC" -std=c11 -O2 -DISOFLOW_NATIVE "$SRC_DIR/$m.c" \
                -o "$TMP/$m" 2>"$TMP/cc.log"; then
            HAVE_NATIVE=0
            echo "demo: native reference build failed, comparing with" \
                 "expected values only:" >&2
            cat "$TMP/cc.log" >&2
            break
        fi
    done
fi

now_ns() { date +%s%N; }

line() { printf '%s\n' "------------------------------------------------------------------------------"; }

echo
echo "isoflow — WebAssembly engine showcase (make demo shows the home flow)"
line
echo "engine: $("$ISOFLOW" --version)   binary: $ISOFLOW"
echo

echo "\$ isoflow wasm info sieve.wasm"
"$ISOFLOW" wasm info "$WASM_DIR/sieve.wasm" | sed 's/^/  /'
echo

# module  export  expected  args...
CASES=(
    "fib     fib              832040               30"
    "fib     fib_iter         2880067194370816120  90"
    "fib     fib_mod          577833               90 1000007"
    "sieve   count_primes     78498                1000000"
    "sieve   largest_prime    1999993              2000000"
    "mandel  mandel_checksum  8575320203237716442  320 240 256"
    "mandel  mandel_area      1.5273763020833333   320 240 256"
)

pass=0
fail=0
echo "Running each export in the interpreter (isoflow wasm run --time --invoke):"
printf '  %-34s %-21s %11s %10s  %s\n' "call" "result" "wasm call" "native" "check"
for c in "${CASES[@]}"; do
    read -r mod fn expected args <<<"$c"
    # shellcheck disable=SC2086  # args is a space-separated list on purpose
    set -- $args
    label="$fn(${args// /, })"
    got=$("$ISOFLOW" wasm run --time --invoke "$fn" "$WASM_DIR/$mod.wasm" "$@" \
          2>"$TMP/err")
    rc=$?
    calltime=$(sed -n 's/.*call \([0-9.]*\) ms.*/\1 ms/p' "$TMP/err")
    native="-"
    native_ok=1
    if [ "$HAVE_NATIVE" = 1 ]; then
        t0=$(now_ns)
        nat=$("$TMP/$mod" "$fn" "$@" 2>/dev/null)
        t1=$(now_ns)
        native=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f ms", (b - a) / 1e6 }')
        [ "$nat" = "$expected" ] || native_ok=0
    fi
    if [ $rc -eq 0 ] && [ "$got" = "$expected" ] && [ $native_ok = 1 ]; then
        verdict=OK
        pass=$((pass + 1))
    else
        verdict="MISMATCH (expected $expected"
        [ "$HAVE_NATIVE" = 1 ] && verdict="$verdict, native ${nat:-?}"
        verdict="$verdict, exit $rc)"
        fail=$((fail + 1))
        sed 's/^/      /' "$TMP/err"
    fi
    printf '  %-34s %-21s %11s %10s  %s\n' "$label" "${got:-?}" \
        "${calltime:--}" "$native" "$verdict"
done
[ "$HAVE_NATIVE" = 1 ] && echo "  (native: the same C compiled for the host, whole process timed)"
echo

echo "A guest fault stays inside the sandbox:"
echo "\$ isoflow wasm run --invoke fib_mod fib.wasm 90 0"
"$ISOFLOW" wasm run --invoke fib_mod "$WASM_DIR/fib.wasm" 90 0 >"$TMP/out" 2>"$TMP/err"
rc=$?
sed 's/^/  /' "$TMP/err"
if [ $rc -eq 3 ] && grep -q "integer divide by zero" "$TMP/err"; then
    echo "  exit status $rc (trap)                                             OK"
    pass=$((pass + 1))
else
    echo "  exit status $rc, expected 3 and 'integer divide by zero'          MISMATCH"
    fail=$((fail + 1))
fi
echo

line
if [ $fail -eq 0 ]; then
    echo "demo: all $pass checks OK"
    exit 0
fi
echo "demo: $fail of $((pass + fail)) checks MISMATCH"
exit 1
