#!/usr/bin/env bash
# The eventstore demo: installs what is missing, builds and installs the
# extension, starts a private throwaway cluster under demo/data on port
# 54329, runs the System Board scenario (demo/board/*.sql) and the API
# basics (demo/basics.sql), tails the events with pg_recvlogical, and stops
# the cluster.  Every run starts from an empty cluster.
#
#   scripts/demo.sh            run and stop
#   scripts/demo.sh --keep     leave the cluster running and print how to connect
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/deps.sh"
. "$here/scripts/cluster.sh"

keep=false
case "${1:-}" in
    --keep) keep=true ;;
    "") ;;
    *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: it installs packages, runs make install and starts a cluster as postgres" >&2
    exit 1
fi
es_install_deps

port=54329
dir="$here/demo/data"
export ES_SOCKET_DIR="$dir"
cd /   # the postgres user need not be able to enter the caller's directory
start=$(date +%s)

echo "== building and installing eventstore"
build=$(mktemp -d /tmp/eventstore-build.XXXXXX)
rsync -a --exclude .git --exclude demo/data --exclude bench/out --exclude 'tmp_check*' \
    --exclude '*.o' --exclude '*.so' --exclude '*.bc' "$here/" "$build/"
if ! make -C "$build" >"$build.log" 2>&1 || ! make -C "$build" install >>"$build.log" 2>&1; then
    cat "$build.log" >&2
    echo "build failed (log: $build.log)" >&2
    exit 1
fi
rm -rf "$build" "$build.log"

es_cluster_stop "$dir" 2>/dev/null || true
rm -rf "$dir"
echo "== starting a private cluster: $dir, port $port"
es_cluster_start "$dir" "$port" \
    "eventstore.worker_databases = 'demo'" \
    "eventstore.worker_naptime = '200ms'"
cleanup() {
    local rc=$?
    $keep || es_cluster_stop "$dir" || true
    [ $rc -eq 0 ] || echo "demo failed (server log: $dir/server.log)" >&2
}
trap cleanup EXIT

es_psql "$port" -d postgres -c "CREATE DATABASE demo TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
es_psql "$port" -d postgres -c "CREATE DATABASE basics TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
psql_demo() { es_psql "$port" -d demo -v cves_file="$here/demo/cves.json" "$@"; }
recvlogical() { runuser -u postgres -- "$PGBIN/pg_recvlogical" -h "$dir" -p "$port" -d demo --slot demo_tail "$@"; }

cat <<'EOF'

############################################################################
#  The System Board: three bounded contexts, one event store
#
#  System Management         system-{id}     SystemRegistered, SystemSecurityAlert
#  Vulnerability Management  vuln-scan-{id}  VulnScanInitiated, VulnerabilityDetected, VulnScanCompleted
#  Task Management           task-{id}       TaskCreated, TaskCompleted
#
#  They share no tables: each reacts to the others' events, delivered by a
#  subscription (a logical replication slot with the eventstore plugin).
#  Read models are projections (two inline, one async in the background worker).
############################################################################
EOF
psql_demo -f "$here/demo/board/1_setup.sql"
# an external consumer: a slot for pg_recvlogical, created before any event
recvlogical --create-slot -P eventstore
scenario_start=$(date +%s%N)
psql_demo -f "$here/demo/board/2_register.sql" -f "$here/demo/board/3_react.sql" \
          -f "$here/demo/board/4_read_models.sql" -f "$here/demo/board/5_causation.sql" \
          -f "$here/demo/board/6_redeliver.sql" -f "$here/demo/board/7_feed.sql"

echo
echo "== pg_recvlogical -P eventstore: the same events, streamed by logical decoding as JSON lines"
endpos=$(psql_demo -tA -c "SELECT pg_current_wal_lsn()")
tail="$dir/tail.jsonl"
runuser -u postgres -- touch "$tail"
timeout 30 runuser -u postgres -- "$PGBIN/pg_recvlogical" -h "$dir" -p "$port" -d demo --slot demo_tail \
    --start --no-loop --endpos "$endpos" -f "$tail"
recvlogical --drop-slot
echo "   $(wc -l <"$tail") lines in $tail, by type:"
grep -o '"type":"[A-Za-z]*"' "$tail" | sort | uniq -c | sort -rn | sed 's/^/   /'
echo "   the critical ones:"
grep -E '"type":"SystemSecurityAlert"|"severity": "critical"' "$tail" || true
scenario_end=$(date +%s%N)

cat <<'EOF'

############################################################################
#  The API basics (database "basics"): optimistic concurrency, idempotent
#  retries, stream reads and the global feed
############################################################################
EOF
es_psql "$port" -d basics -f "$here/demo/basics.sql"

echo
ms=$(( (scenario_end - scenario_start) / 1000000 ))
printf '== done in %ss (the scenario took %d.%01ds after the build and cluster start)\n' \
    "$(( $(date +%s) - start ))" $((ms / 1000)) $((ms % 1000 / 100))
if $keep; then
    echo "cluster left running: runuser -u postgres -- psql -h $dir -p $port demo"
    echo "stop it with: runuser -u postgres -- $PGBIN/pg_ctl -D $dir/data stop"
fi
