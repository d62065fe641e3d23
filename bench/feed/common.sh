#!/usr/bin/env bash
# Shared by bench/feed.sh, bench/decoding.sh and bench/projection.sh: build and install the
# extension from a private copy of the tree, start a private throwaway
# cluster as the postgres user on its own port and socket directory, and
# small helpers (psql, pgbench, medians).  Sourced, not run.
#
# Uses scripts/deps.sh (es_install_deps) and scripts/cluster.sh
# (es_cluster_start / es_cluster_stop / es_psql).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="$here/bench"
. "$here/scripts/deps.sh"
. "$here/scripts/cluster.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: the cluster is started as the postgres user" >&2
    exit 1
fi
es_install_deps
PATH="$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir):$PATH"

KEEP=${BENCH_KEEP:-0}
work=$(mktemp -d "/tmp/eventstore-${BENCH_NAME:-bench}.XXXXXX")
chmod 755 "$work"
port=${BENCH_PORT:-$((55000 + RANDOM % 1000))}
export ES_SOCKET_DIR="$work"
out="$bench/out/${BENCH_NAME:-bench}"      # raw output; bench/out/ is ignored by git
rm -rf "$out"
mkdir -p "$out"
chmod 777 "$out"

bench_cleanup() {
    if [ "$KEEP" = 1 ]; then
        echo "kept: $work (port $port, socket $work)"
        return
    fi
    es_cluster_stop "$work" >/dev/null 2>&1 ||
        runuser -u postgres -- pg_ctl -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap bench_cleanup EXIT

# Build and install from a copy: no build products in the repo.
bench_build() {
    # BENCH_SOURCE=head (default): the committed tree (git archive HEAD), so
    # edits in progress in the work tree cannot break or skew a run;
    # BENCH_SOURCE=worktree: the work tree as it is, uncommitted edits too.
    mkdir -p "$work/src"
    if [ "${BENCH_SOURCE:-head}" = worktree ]; then
        rsync -a --exclude .git --exclude bench/out --exclude demo/data --exclude tmp_check \
            --exclude tmp_check_iso --exclude results --exclude output_iso \
            --exclude '*.o' --exclude '*.so' --exclude '*.bc' "$here/" "$work/src/"
    else
        git -C "$here" archive HEAD | tar -x -C "$work/src"
    fi
    make -s -C "$work/src" >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
    make -s -C "$work/src" install >>"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
    commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ "${BENCH_SOURCE:-head}" = worktree ] &&
        [ -n "$(git -C "$here" status --porcelain -- src sql 2>/dev/null | head -1)" ]; then
        commit="$commit (+ uncommitted changes in src/ or sql/)"
    fi
}

# The library and SQL script live in the system's PostgreSQL directories,
# which other jobs on this machine may install into too, at any time.  So:
# install, (re)start the cluster (the postmaster loads the library), CREATE
# EXTENSION (reads the script), and accept only if neither installed file
# was replaced in between (same inode as right after our install);
# otherwise undo and try again.
_es_inodes() { stat -c %i "$(pg_config --pkglibdir)/eventstore.so" \
                   "$(pg_config --sharedir)/extension/eventstore--$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$here/eventstore.control").sql" 2>/dev/null | tr '\n' ' '; }
bench_extension() { # extra psql args (-f file ...) run right after CREATE EXTENSION
    local attempt before
    for attempt in 1 2 3 4 5 6 7 8; do
        make -s -C "$work/src" install >>"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
        before=$(_es_inodes)
        runuser -u postgres -- pg_ctl -D "$work/data" -m fast -w restart -l "$work/server.log" >/dev/null
        if q -c "CREATE EXTENSION eventstore" "$@" >>"$out/setup.log" 2>&1 && [ "$(_es_inodes)" = "$before" ]; then
            return 0
        fi
        echo "   another job replaced the installed eventstore meanwhile; again (attempt $attempt)"
        q -c "DROP EXTENSION IF EXISTS eventstore CASCADE" >/dev/null 2>&1 || true
        sleep $((RANDOM % 5 + 1))
    done
    echo "could not get this build installed and loaded; see $out/setup.log" >&2
    exit 1
}

# The cluster: scripts/cluster.sh's settings plus benchmark settings.  The
# last setting of a name wins, so output_plugin_libraries here adds wal2json.
bench_cluster() {
    es_cluster_start "$work" "$port" \
        "output_plugin_libraries = 'pgoutput, test_decoding, eventstore, wal2json'" \
        "shared_buffers = 1GB" \
        "max_wal_size = 16GB" \
        "checkpoint_timeout = 1h" \
        "autovacuum = off" \
        "work_mem = 64MB" \
        "max_connections = 50" \
        "$@"
    es_psql "$port" -d postgres -c "CREATE DATABASE bench"
}

q() { es_psql "$port" -d bench "$@"; }                 # psql on the bench database
qa() { es_psql "$port" -d bench -At "$@"; }           # ... unaligned, tuples only
pgb() { runuser -u postgres -- env PATH="$PATH" ${PGOPTIONS:+PGOPTIONS="$PGOPTIONS"} \
            pgbench -h "$work" -p "$port" "$@"; }

# median of numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench_machine() {
    echo "$(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
}

# bench_report DOC FILE...: print the result files (empty or missing ones
# skipped), each after a blank line, and put them between DOC's
# "<!-- results:begin -->" and "<!-- results:end -->" markers (DOC "none":
# nowhere).
bench_report() {
    local doc=$1 f
    shift
    for f in "$@"; do [ -s "$f" ] && { echo; cat "$f"; }; done
    if [ "$doc" != none ] && [ -f "$doc" ] && grep -q '<!-- results:begin -->' "$doc"; then
        {
            sed '/<!-- results:begin -->/q' "$doc"
            for f in "$@"; do [ -s "$f" ] && { echo; cat "$f"; }; done
            echo
            sed -n '/<!-- results:end -->/,$p' "$doc"
        } >"$doc.new"
        mv "$doc.new" "$doc"
        echo
        echo "results written to ${doc#"$here/"}; raw output in ${out#"$here/"}/"
    fi
    return 0
}
