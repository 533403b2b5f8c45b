#!/usr/bin/env bash
# demo.sh BUILD_DIR [SECONDS] - what `make demo` runs: `isoflow demo
# --duration SECONDS` (default 30), the home CO2 system of examples/home as
# real processes (a cloud node, an edge node and 50 device nodes over mutual
# TLS on loopback, fresh certificates), with a live status line a second
# and a summary.  Exits with the demo's status (0: every node ran and
# stopped cleanly).  The single-process showcase of the same system is
# `isoflow run examples/home/home.flow`; the WebAssembly engine showcase is
# scripts/demo_wasm.sh.
set -u
BUILD_DIR=${1:-build/release}
SECONDS_TO_RUN=${2:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ISOFLOW=$BUILD_DIR/isoflow
if [ ! -x "$ISOFLOW" ]; then
    echo "demo: no isoflow binary under '$BUILD_DIR' (run 'make build')" >&2
    exit 1
fi
ISOFLOW=$(cd "$(dirname "$ISOFLOW")" && pwd)/isoflow
cd "$ROOT" && exec "$ISOFLOW" demo --duration "$SECONDS_TO_RUN" \
    --flow examples/home/home_nodes.flow
