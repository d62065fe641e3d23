#!/usr/bin/env bash
# The eventstore demo: installs what is missing, builds and installs the
# extension, starts a private throwaway cluster under demo/data on port
# 54329, runs the scenario in demo/*.sql, and stops the cluster.
#
#   scripts/demo.sh            run and stop
#   scripts/demo.sh --keep     leave the cluster running and print how to connect
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/deps.sh"
. "$here/scripts/cluster.sh"
es_install_deps

keep=false
[ "${1:-}" = "--keep" ] && keep=true
port=54329
dir="$here/demo/data"
export ES_SOCKET_DIR="$dir"

build=$(mktemp -d /tmp/eventstore-build.XXXXXX)
rsync -a --exclude .git --exclude demo/data --exclude '*.o' --exclude '*.so' "$here/" "$build/"
make -s -C "$build" >/dev/null
make -s -C "$build" install >/dev/null
rm -rf "$build"

es_cluster_stop "$dir" 2>/dev/null || true
rm -rf "$dir"                      # every run starts clean
es_cluster_start "$dir" "$port"
trap '$keep || es_cluster_stop "$dir"' EXIT

es_psql "$port" -d postgres -c "CREATE DATABASE demo" >/dev/null
es_psql "$port" -d demo -f "$here/demo/basics.sql"

if $keep; then
    echo
    echo "cluster left running: runuser -u postgres -- psql -h $dir -p $port demo"
    echo "stop it with: runuser -u postgres -- $PGBIN/pg_ctl -D $dir/data stop"
fi
