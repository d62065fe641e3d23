#!/usr/bin/env bash
# Derives the file-to-file call graph of src/*.o with nm (a symbol undefined
# in A and defined in B makes A -> B), prints it, and exits 1 when it has a
# cycle: no file may call into a file that calls back into it (src/README).
# Uses the object files there, building them first when any is missing.
#
#   scripts/check-layering.sh            (PG_CONFIG=... to build)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
objs=$(make -s -p -n PG_CONFIG="${PG_CONFIG:-pg_config}" 2>/dev/null | sed -n 's/^OBJS *[:]*= *//p' | tail -1)
[ -n "$objs" ] || objs=$(ls src/*.c | sed 's/\.c$/.o/')
for o in $objs; do
    [ -f "$o" ] || { make -s PG_CONFIG="${PG_CONFIG:-pg_config}" $objs >/dev/null; break; }
done
defs=$(mktemp); edges=$(mktemp); trap 'rm -f "$defs" "$edges"' EXIT
for o in $objs; do
    nm --defined-only "$o" | awk -v f="$(basename "$o" .o)" '$2 ~ /^[TDBRCGSV]$/ {print $3, f}'
done | sort -u > "$defs"
for o in $objs; do
    a=$(basename "$o" .o)
    nm -u "$o" | awk '{print $2}' | sort -u | join - "$defs" | awk -v a="$a" '$2 != a {print a, $2, $1}'
done > "$edges"
echo "file call graph (caller -> callee: symbols):"
awk '{k=$1" -> "$2; s[k]=(n[k]++) ? s[k]", "$3 : $3} END {for (k in s) print "  " k ": " s[k]}' "$edges" | sort
# tsort reports a loop on stderr when the graph has one
cyc=$(awk '{print $1, $2}' "$edges" | sort -u | tsort 2>&1 >/dev/null | grep -v 'input contains a loop' | sed 's/^tsort: /  /' || true)
if [ -n "$cyc" ]; then
    echo "layering: FAILED, cycle through:"
    echo "$cyc"
    exit 1
fi
echo "layering: ok (no cycles)"
