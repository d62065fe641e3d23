#!/usr/bin/env bash
# Makes a private, relocated copy of the system's PostgreSQL 15 (binaries,
# libraries, share and server headers) under DIR and prints its pg_config.
# PostgreSQL finds its libdir and sharedir relative to its binaries, so
# building, installing and testing against the copy never touches the
# system's eventstore.so: several test or benchmark runs can go on at once.
#
#   PG_CONFIG=$(bash scripts/private-pg.sh /tmp/pg-a) bash scripts/test.sh
set -euo pipefail
dir="${1:?usage: private-pg.sh DIR}"
if [ ! -x "$dir/usr/lib/postgresql/15/bin/pg_config" ]; then
    mkdir -p "$dir/usr/lib/postgresql" "$dir/usr/share/postgresql" "$dir/usr/include"
    cp -a /usr/lib/postgresql/15 "$dir/usr/lib/postgresql/"
    cp -a /usr/share/postgresql/15 "$dir/usr/share/postgresql/"
    cp -a /usr/include/postgresql "$dir/usr/include/"
    chmod 755 "$dir"
fi
echo "$dir/usr/lib/postgresql/15/bin/pg_config"
