#!/usr/bin/env bash
# convert.sh - converts the WebAssembly spec test suite (*.wast) into the JSON
# + .wasm form that spec_driver runs, using wabt's wast2json.
#
# Usage: convert.sh SRC_DIR OUT_DIR
#   Every SRC_DIR/NAME.wast becomes OUT_DIR/NAME.json (plus NAME.N.wasm and
#   NAME.N.wat).  A file whose JSON is newer than its .wast is skipped.
#   Set WAST2JSON to use another wast2json binary.
set -u

if [ "$#" -ne 2 ]; then
    echo "usage: $0 SRC_DIR OUT_DIR" >&2
    exit 2
fi
src=$1
out=$2
w2j=${WAST2JSON:-wast2json}

if ! command -v "$w2j" >/dev/null 2>&1; then
    echo "convert.sh: $w2j not found (install wabt: apt-get install wabt)" >&2
    exit 1
fi
if [ ! -d "$src" ]; then
    echo "convert.sh: source directory $src does not exist" >&2
    exit 1
fi
mkdir -p "$out" || { echo "convert.sh: cannot create $out" >&2; exit 1; }

converted=0
uptodate=0
found=0
for wast in "$src"/*.wast; do
    [ -f "$wast" ] || continue
    found=$((found + 1))
    name=$(basename "$wast" .wast)
    json=$out/$name.json
    if [ -f "$json" ] && [ "$json" -nt "$wast" ]; then
        uptodate=$((uptodate + 1))
        continue
    fi
    if ! "$w2j" "$wast" -o "$json"; then
        # A partial JSON would look up to date next time: remove it.
        rm -f "$json"
        echo "convert.sh: wast2json failed on $wast" >&2
        exit 1
    fi
    converted=$((converted + 1))
done

if [ "$found" -eq 0 ]; then
    echo "convert.sh: no .wast files in $src" >&2
    exit 1
fi
echo "convert.sh: $found files: $converted converted, $uptodate up to date, in $out"
exit 0
