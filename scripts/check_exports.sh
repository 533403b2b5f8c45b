#!/usr/bin/env bash
# check_exports.sh - verifies that a static libisoflow exports only public
# API symbols: every defined GLOBAL/WEAK symbol with DEFAULT visibility must
# carry a public module prefix (iw_ now; fl_, nt_, dp_ later) and never the
# internal double-underscore form (iw__).  Compiler/sanitizer-generated
# names starting with "__" or "." are ignored.
# Usage: scripts/check_exports.sh path/to/libisoflow.a
set -euo pipefail

lib=${1:?usage: check_exports.sh LIB.a}
public='^(iw|fl|nt|dp)_[A-Za-z0-9]'
internal='^(iw|fl|nt|dp)__'

# readelf -sW columns: Num: Value Size Type Bind Vis Ndx Name
syms=$(readelf -sW "$lib" | awk '
    ($5 == "GLOBAL" || $5 == "WEAK") && $6 == "DEFAULT" && $7 != "UND" \
        && NF >= 8 { print $8 }' | sort -u)

bad=0
count=0
while IFS= read -r s; do
    [ -z "$s" ] && continue
    case "$s" in __* | .*) continue ;; esac
    if [[ "$s" =~ $internal ]] || ! [[ "$s" =~ $public ]]; then
        echo "check_exports: non-API symbol exported: $s"
        bad=1
    else
        count=$((count + 1))
    fi
done <<< "$syms"

if [ $count -eq 0 ]; then
    echo "check_exports: no public symbols found in $lib" >&2
    exit 1
fi
[ $bad -eq 0 ] && echo "check_exports: $count public symbols, no internal ones"
exit $bad
