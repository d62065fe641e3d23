#!/usr/bin/env bash
# Functions to run a private throwaway PostgreSQL 15 cluster configured for
# eventstore (DESIGN.md section 1).  Sourced by demo.sh and bench scripts.
#
#   es_cluster_start DIR PORT [extra postgresql.conf lines...]
#   es_cluster_stop DIR
#   es_psql PORT [psql args...]        runs psql as postgres against it
PGBIN=$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir)

es_cluster_start() {
    local dir="$1" port="$2"; shift 2
    mkdir -p "$dir"
    chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
        {
            echo "port = $port"
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '$dir'"
            echo "shared_preload_libraries = 'eventstore'"
            echo "wal_level = logical"
            echo "max_replication_slots = 10"
            echo "max_wal_senders = 10"
            echo "output_plugin_libraries = 'pgoutput, test_decoding, eventstore'"
            for line in "$@"; do echo "$line"; done
        } >> "$dir/data/postgresql.conf"
    fi
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

es_cluster_stop() {
    local dir="$1"
    [ -f "$dir/data/postmaster.pid" ] || return 0
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

es_psql() {
    local port="$1"; shift
    runuser -u postgres -- "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "${ES_SOCKET_DIR:-/tmp}" -p "$port" "$@"
}
