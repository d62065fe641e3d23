#!/usr/bin/env bash
# Makes a private, relocated copy of the system's PostgreSQL 15 (binaries,
# libraries, share and server headers) under DIR and prints its pg_config.
# PostgreSQL finds its libdir and sharedir relative to its binaries, so
# building, installing and testing against the copy never touches the
# system's eventstore.so: several test or benchmark runs can go on at once.
#
#   PG_CONFIG=$(bash scripts/private-pg.sh /tmp/pg-a) bash scripts/test.sh
#
# The copy is made in a temporary directory and renamed into place, so an
# interrupted copy is never taken for a complete one.
set -euo pipefail
dir="${1:?usage: private-pg.sh DIR}"
if [ ! -x "$dir/usr/lib/postgresql/15/bin/pg_config" ]; then
    tmp=$(mktemp -d "$dir.tmp.XXXXXX")
    mkdir -p "$tmp/usr/lib/postgresql" "$tmp/usr/share/postgresql" "$tmp/usr/include"
    cp -a /usr/lib/postgresql/15 "$tmp/usr/lib/postgresql/"
    cp -a /usr/share/postgresql/15 "$tmp/usr/share/postgresql/"
    cp -a /usr/include/postgresql "$tmp/usr/include/"
    chmod 755 "$tmp"
    # another run may have finished the same copy meanwhile: keep theirs
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
echo "$dir/usr/lib/postgresql/15/bin/pg_config"
