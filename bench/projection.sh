#!/usr/bin/env bash
# Benchmark of async projections (issue 5): how fast the background worker
# applies a handler to the log, against one hand-written INSERT ... SELECT
# of the same rows (the limit), and the lag under a steady append load.
# Method: bench/PROJECTION.md.
#
#   bash bench/projection.sh      (as root on Debian bookworm; ~3-5 min)
#
# Builds and installs the extension from a copy of the committed tree
# (BENCH_SOURCE=worktree: the work tree as it is), starts a private
# throwaway cluster as postgres with the projection worker on the bench
# database, loads the log through eventstore.append, measures, prints the
# table and writes it between the results markers of bench/PROJECTION.md.
# Raw output goes to bench/out/projection/ (ignored by git).
#
# Knobs (environment):
#   BENCH_STREAMS=200 BENCH_PER_STREAM=1000   the log: streams x events
#   BENCH_ROUNDS=3          projection / baseline rounds (alternating order)
#   BENCH_LOAD_RATE=500     steady load: pgbench -R (single-event appends/s)
#   BENCH_LOAD_SECONDS=20   steady load: duration (0: skip)
#   BENCH_DOC=bench/PROJECTION.md   where to put the results (none: nowhere)
#   BENCH_KEEP=0 BENCH_SOURCE=head  as in bench/feed.sh
BENCH_NAME=projection
. "$(dirname "$0")/feed/common.sh"

NSTREAMS=${BENCH_STREAMS:-200}
PER_STREAM=${BENCH_PER_STREAM:-1000}
ROUNDS=${BENCH_ROUNDS:-3}
RATE=${BENCH_LOAD_RATE:-500}
LOAD_SECS=${BENCH_LOAD_SECONDS:-20}
DOC=${BENCH_DOC:-$bench/PROJECTION.md}
t_start=$(date +%s)
machine=$(bench_machine)

echo "== build and cluster ($work, port $port)"
bench_build
bench_cluster "eventstore.worker_databases = 'bench'" "eventstore.worker_naptime = '100ms'" \
    "eventstore.worker_batch_size = 1000"
bench_extension -f "$bench/feed/load.sql" -f "$bench/projection/setup.sql"

# --- load (bench/feed/load.sql: 100 streams x 10 events = 1000 events a transaction) ---
total=$((NSTREAMS * PER_STREAM))
echo "== load: $NSTREAMS streams x $PER_STREAM events = $total events (eventstore.append, 1000 events a transaction)"
t0=$(date +%s.%N)
q -c "CALL feedbench.load(1, $NSTREAMS, $((PER_STREAM / 10)), 10, 0, 1, 100)"
load_s=$(echo "$(date +%s.%N) - $t0" | bc)
n=$(qa -c "SELECT count(*) FROM eventstore.events")
[ "$n" = "$total" ] || { echo "loaded $n events, expected $total" >&2; exit 1; }
printf '   %d events in %.1f s\n' "$total" "$load_s"
q -c "VACUUM ANALYZE eventstore.events" -c CHECKPOINT

# --- catch-up throughput: projection vs INSERT ... SELECT ------------------------
raw="$out/rounds.tsv"
: >"$raw"
proj_one() { # kind (projection | batch) round
    local s n handler=public.h
    [ "$1" = batch ] && handler='public.hb(eventstore.event[])' || handler='public.h(eventstore.event)'
    q -c "TRUNCATE public.rm" -c CHECKPOINT
    s=$(qa -c "CALL projbench.run_projection(300, '$handler')")
    n=$(qa -c "SELECT count(*) FROM public.rm")
    [ "$n" = "$total" ] || { echo "projection wrote $n rows, expected $total" >&2; exit 1; }
    printf '%s\t%s\t%s\n' "$1" "$2" "$s" >>"$raw"
    printf '   %-10s round %d: %7.2f s  %8.0f events/s\n' "$1" "$2" "$s" "$(echo "$total / $s" | bc -l)"
}
base_one() { # round
    local s
    q -c CHECKPOINT
    s=$(qa -c "CALL projbench.baseline()")
    printf 'baseline\t%s\t%s\n' "$1" "$s" >>"$raw"
    printf '   baseline   round %d: %7.2f s  %8.0f events/s\n' "$1" "$s" "$(echo "$total / $s" | bc -l)"
}
drop_p() { q -c "SELECT eventstore.drop_projection('p')" >/dev/null; }
echo "== catch-up of $total events: async projection (worker, batches of 1000), per-event handler and batch handler, vs INSERT ... SELECT; $ROUNDS rounds, order rotating"
for ((r = 1; r <= ROUNDS; r++)); do
    case $((r % 3)) in
        1) proj_one projection $r; drop_p; proj_one batch $r; base_one $r ;;
        2) base_one $r; proj_one batch $r; drop_p; proj_one projection $r ;;
        0) proj_one batch $r; base_one $r; drop_p; proj_one projection $r ;;
    esac
    ((r == ROUNDS)) || drop_p     # the last round's projection stays for the steady load
done

# --- lag under a steady append load -----------------------------------------------
lag_table=""
if [ "$LOAD_SECS" -gt 0 ]; then
    echo "== steady load: pgbench -R $RATE -T $LOAD_SECS, single-event append_event, while projection p runs; lag sampled every 200 ms"
    cat >"$out/append_event.sql" <<'EOS'
\set sid random(1, 1000)
SELECT * FROM eventstore.append_event('live-' || :sid, 'Ticked', '{"amount": 42, "currency": "EUR"}', '{}');
EOS
    chmod 644 "$out/append_event.sql"
    lags="$out/lag.tsv"
    : >"$lags"
    pgb -n -c 4 -j 2 -R "$RATE" -T "$LOAD_SECS" -M prepared -f "$out/append_event.sql" bench >"$out/pgbench.log" 2>&1 &
    pgb_pid=$!
    tl0=$(date +%s.%N)
    while kill -0 $pgb_pid 2>/dev/null; do
        printf 'load\t%s\t%s\n' "$(echo "$(date +%s.%N) - $tl0" | bc)" "$(qa -c "SELECT lag FROM eventstore.projections WHERE name = 'p'")" >>"$lags"
        sleep 0.2
    done
    wait $pgb_pid || { tail -20 "$out/pgbench.log" >&2; exit 1; }
    # after the load: until lag is 0 (at most 10 s)
    ta0=$(date +%s.%N)
    back="no (still behind after 10 s)"
    while :; do
        el=$(echo "$(date +%s.%N) - $ta0" | bc)
        l=$(qa -c "SELECT lag FROM eventstore.projections WHERE name = 'p'")
        printf 'after\t%s\t%s\n' "$el" "$l" >>"$lags"
        if [ "$l" = 0 ]; then back=$(printf 'yes, %.1f s after pgbench ended' "$el"); break; fi
        (($(echo "$el > 10" | bc))) && break
        sleep 0.2
    done
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out/pgbench.log")
    nload=$(awk -F'\t' '$1 == "load"' "$lags" | wc -l)
    maxlag=$(awk -F'\t' '$1 == "load" { if ($3 > m) m = $3 } END { print m + 0 }' "$lags")
    p95=$(awk -F'\t' '$1 == "load" { print $3 }' "$lags" | sort -g | awk '{ v[NR] = $1 } END { i = int(NR * 0.95 + 0.999); if (i < 1) i = 1; print v[i] + 0 }')
    p50=$(awk -F'\t' '$1 == "load" { print $3 }' "$lags" | median)
    nrm=$(qa -c "SELECT count(*) FROM public.rm")
    nev=$(qa -c "SELECT count(*) FROM eventstore.events")
    printf '   %s tps; lag over %d samples: median %s, p95 %s, max %s positions; back to 0: %s; rm %s rows, log %s events\n' \
        "$tps" "$nload" "$p50" "$p95" "$maxlag" "$back" "$nrm" "$nev"
    lag_table="$out/lag.md"
    {
        echo "Lag under a steady load: pgbench -n -c 4 -j 2 -R $RATE -T $LOAD_SECS -M prepared, one append_event a transaction to a random one of 1000 streams,"
        echo "while projection p (caught up) runs; lag = head_position - checkpoint, sampled every 200 ms by a separate psql."
        echo
        echo "| achieved appends/s | samples | median lag | p95 lag | max lag | back to 0 after the load | rm rows = events |"
        echo "| ---: | ---: | ---: | ---: | ---: | --- | --- |"
        printf '| %.0f | %d | %s | %s | %s | %s | %s |\n' "$tps" "$nload" "$p50" "$p95" "$maxlag" "$back" \
            "$([ "$nrm" = "$nev" ] && echo "yes ($nrm)" || echo "no: $nrm of $nev")"
    } >"$lag_table"
fi

# --- report ---------------------------------------------------------------------
vals() { awk -F'\t' -v w="$1" '$1 == w { print $3 }' "$raw"; }
pm=$(vals projection | median)
pb=$(vals batch | median)
bm=$(vals baseline | median)
table="$out/table.md"
{
    echo "Catch-up of the whole log ($total events) into rm(event_id uuid primary key, stream, version, type); medians of $ROUNDS alternating rounds."
    echo "Ratio = projection events/s / baseline events/s (1 would be the worker as fast as one INSERT ... SELECT); targets (issue 12): per-event >= 0.5, batch >= 0.8."
    echo
    echo "| | median s | events/s | rounds (s) | ratio |"
    echo "| --- | ---: | ---: | --- | ---: |"
    awk -v s="$pm" -v b="$bm" -v n=$total -v r="$(vals projection | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 }')" \
        'BEGIN { printf "| async projection, handler h(e eventstore.event) per event, worker batches of 1000 | %.2f | %.0f | %s | **%.3f** |\n", s, n / s, r, b / s }'
    awk -v s="$pb" -v b="$bm" -v n=$total -v r="$(vals batch | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 }')" \
        'BEGIN { printf "| async projection, batch handler hb(events eventstore.event[]): INSERT ... SELECT FROM unnest(events) | %.2f | %.0f | %s | **%.3f** |\n", s, n / s, r, b / s }'
    awk -v s="$bm" -v n=$total -v r="$(vals baseline | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 }')" \
        'BEGIN { printf "| baseline: INSERT INTO rm2 SELECT ... ORDER BY global_position | %.2f | %.0f | %s | 1 |\n", s, n / s, r }'
} >"$table"

t_end=$(date +%s)
pgver=$(runuser -u postgres -- postgres --version | awk '{ print $3 }')
header="$out/header.md"
{
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $commit; PostgreSQL $pgver"
    echo "- machine: $machine; shared by other jobs: the ratio is the figure"
    echo "- log: $total events, $NSTREAMS streams x $PER_STREAM, loaded through eventstore.append (1000 events a transaction) in $(printf '%.0f' "$load_s") s"
    echo "- cluster: scripts/cluster.sh + shared_buffers=1GB, autovacuum=off, fsync on; eventstore.worker_databases='bench', worker_naptime=100ms, worker_batch_size=1000"
    echo "- whole run: $((t_end - t_start)) s"
} >"$header"

bench_report "$DOC" "$header" "$table" "${lag_table:-}"
