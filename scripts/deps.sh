#!/usr/bin/env bash
# deps.sh - installs the Debian packages that isoflow's build, tests, demo and
# fuzzing need.  Idempotent and silent when everything is already installed;
# runs `apt-get update` at most once, and only when something is missing.
set -euo pipefail

# Package -> why we need it.
PACKAGES=(
    cmake                      # build system (>= 3.25)
    make                       # the Makefile wrapper / CMake generator
    gcc                        # default host compiler
    libc6-dev                  # C library headers for the host build
    pkgconf                    # finds cmocka and cJSON
    binutils                   # readelf for the exported-symbols check
    clang-19                   # compiles examples/stages to wasm; libFuzzer builds
    lld-19                     # wasm-ld for clang-19 --target=wasm32
    wasi-libc                  # --target=wasm32-wasi --sysroot=/usr
    libclang-rt-19-dev-wasm32  # compiler-rt builtins for wasm32
    libclang-rt-19-dev         # libFuzzer + sanitizer runtimes for clang-19
    wabt                       # wast2json (spec suite), wat2wasm
    libcjson-dev               # spec_driver reads wast2json output
    libcmocka-dev              # unit tests
    ninja-build                # optional faster generator
    python3                    # bench/run.py (make bench)
    libssl-dev                 # OpenSSL: TLS 1.3 links, certificates, Ed25519
    libuv1-dev                 # libuv: the nodes' event loop
)

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) missing+=("$p") ;;
    esac
done

# node (V8 + node:wasi) is the side-by-side baseline of `make bench`; any
# node on the PATH will do, else Debian's.
command -v node >/dev/null 2>&1 || missing+=(nodejs)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: not root and no sudo; install them as root" >&2
    exit 1
fi

echo "deps.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
echo "deps.sh: done"
