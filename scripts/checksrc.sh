#!/usr/bin/env bash
# checksrc.sh - fails (exit 1) when C sources use banned functions, listing
# every offending file:line.  Usage: scripts/checksrc.sh [DIR...] (default:
# src/ of the repository).  Banned everywhere: strcpy, strcat, sprintf,
# vsprintf, gets, atoi, atol, atof (unbounded or unchecked; use snprintf,
# memcpy with a length, strtol/strtoull/strtod).  In src/wasm/ the raw
# allocator (malloc, calloc, realloc, free) is banned outside alloc.c: the
# engine allocates through iw__malloc & co. so that OOM can be tested.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then set -- "$root/src"; fi

banned='(^|[^A-Za-z0-9_.>])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atof)[[:space:]]*\('
rawalloc='(^|[^A-Za-z0-9_.>])(malloc|calloc|realloc|free)[[:space:]]*\('

# Drops whole-line comments (" * ...", "// ...", "/* ... */") so prose may
# name the banned functions.
strip_comments() {
    grep -vE '^[^:]*:[0-9]+:[[:space:]]*(\*|//|/\*)' || true
}

status=0
report() {
    local what=$1 hits=$2
    if [ -n "$hits" ]; then
        while IFS= read -r line; do
            echo "checksrc: $what: $line"
        done <<< "$hits"
        status=1
    fi
}

nfiles=0
while IFS= read -r f; do
    nfiles=$((nfiles + 1))
    hits=$(grep -nHE "$banned" "$f" | strip_comments || true)
    report "banned function" "$hits"
    case "$f" in
        */src/wasm/alloc.c) ;;
        */src/wasm/*)
            hits=$(grep -nHE "$rawalloc" "$f" | strip_comments || true)
            report "raw allocation (use iw__malloc & co.)" "$hits"
            ;;
    esac
done < <(find "$@" -type f \( -name '*.c' -o -name '*.h' \) | sort)

if [ $nfiles -eq 0 ]; then
    echo "checksrc: no C sources under $*" >&2
    exit 1
fi

if [ $status -eq 0 ]; then
    echo "checksrc: $nfiles files clean"
fi
exit $status
