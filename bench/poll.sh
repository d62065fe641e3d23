#!/usr/bin/env bash
# Benchmark of subscriptions (issue 12): eventstore.poll against a
# read_all consumer on the same cluster, in the same run.  Method:
# bench/POLL.md.
#
#   bash bench/poll.sh [--quick]   (as root on Debian bookworm; ~6 min, --quick ~2 min)
#
# (a) CPU per poll that finds nothing (caught-up subscription, unfiltered
#     and stream_prefix-filtered with other streams' events stored) against
#     an empty read_all(head, 1000);
# (b) append -> poll latency p50/p99 at a fixed rate against a read_all
#     consumer loop;
# (c) catch-up of N events in pages of 1,000 through poll + ack against
#     read_all + checkpoint row.
# Builds and installs the extension from a copy of the committed tree
# (BENCH_SOURCE=worktree: the work tree as it is), starts a private
# throwaway cluster as postgres on its own port and socket directory,
# prints the tables and writes them between the results markers of
# bench/POLL.md.  Raw output goes to bench/out/poll/.
#
# Knobs (environment; --quick sets the smaller defaults in brackets):
#   BENCH_EVENTS=1000000 [100000]   events of the catch-up (c)
#   BENCH_TX_EVENTS=10              events per appending transaction in (c)
#   BENCH_CATCHUP_ROUNDS=2          catch-up rounds per consumer
#   BENCH_IDLE_EVENTS=20000         other streams' events stored before (a)
#   BENCH_IDLE_SECONDS=5 [3] BENCH_IDLE_ROUNDS=3 [2]   (a): seconds per run, rounds
#   BENCH_LAT_SECONDS=15 [8] BENCH_LAT_ROUNDS=2 [1] BENCH_LAT_RATE=1000 BENCH_LAT_IDLE_MS=1
#   BENCH_ONLY=                     one part only: empty, latency or catchup
#                                   (results then go nowhere unless BENCH_DOC names a file)
#   BENCH_DOC=bench/POLL.md (none: nowhere)  BENCH_KEEP=0  BENCH_SOURCE=head  BENCH_PORT
BENCH_NAME=poll
QUICK=0
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        *) echo "usage: bash bench/poll.sh [--quick]" >&2; exit 1 ;;
    esac
done
. "$(dirname "$0")/feed/common.sh"

if [ $QUICK = 1 ]; then
    EVENTS=${BENCH_EVENTS:-100000}
    IDLE_SECS=${BENCH_IDLE_SECONDS:-3}; IDLE_ROUNDS=${BENCH_IDLE_ROUNDS:-2}
    LAT_SECS=${BENCH_LAT_SECONDS:-8}; LAT_ROUNDS=${BENCH_LAT_ROUNDS:-1}
else
    EVENTS=${BENCH_EVENTS:-1000000}
    IDLE_SECS=${BENCH_IDLE_SECONDS:-5}; IDLE_ROUNDS=${BENCH_IDLE_ROUNDS:-3}
    LAT_SECS=${BENCH_LAT_SECONDS:-15}; LAT_ROUNDS=${BENCH_LAT_ROUNDS:-2}
fi
TX_EVENTS=${BENCH_TX_EVENTS:-10}
CU_ROUNDS=${BENCH_CATCHUP_ROUNDS:-2}
IDLE_EVENTS=${BENCH_IDLE_EVENTS:-20000}
LAT_RATE=${BENCH_LAT_RATE:-1000}
LAT_IDLE=${BENCH_LAT_IDLE_MS:-1}
ONLY=${BENCH_ONLY:-}
case $ONLY in
    '') DOC=${BENCH_DOC:-$bench/POLL.md} ;;
    empty | latency | catchup) DOC=${BENCH_DOC:-none} ;;
    *) echo "BENCH_ONLY must be empty, latency or catchup" >&2; exit 1 ;;
esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
t_start=$(date +%s)
machine=$(bench_machine)

echo "== build and cluster ($work, port $port)"
bench_build
bench_cluster
bench_extension -f "$bench/poll/setup.sql"

sub_create() { q -c "SELECT eventstore.create_subscription($1)" >/dev/null; }
sub_drop() { q -c "SELECT eventstore.drop_subscription(name) FROM eventstore.subscription WHERE name = '$1'" >/dev/null; }
# poll + ack until a poll comes back empty
sub_drain() { q -c "CALL pollbench.catchup('drain', 0, 'poll', '$1', 0, 1000)" -c "DELETE FROM pollbench.runs WHERE what = 'drain'"; }

table="$out/table.md"
: >"$table"

# --- (a) empty polls -----------------------------------------------------------
if want empty; then
    echo "== (a) empty polls: $IDLE_EVENTS events of other streams, then $IDLE_ROUNDS rounds of ${IDLE_SECS}s per variant"
    sub_create "'idle_all'"
    sub_create "'idle_cat', stream_prefix => 'wanted-'"
    q -c "CALL pollbench.gen('other', $IDLE_EVENTS, 1)"
    q -c "CALL pollbench.gen('wanted', 10, 1)"      # a few events the filtered one delivers
    sub_drain idle_all
    sub_drain idle_cat
    q -c CHECKPOINT
    head=$(qa -c "SELECT eventstore.head_position()")
    # variant id, procedure kind, argument (poll: subscription; read_all: prefix or NULL)
    VARIANTS=("poll_all poll 'idle_all'" "poll_cat poll 'idle_cat'" "ra_all read_all NULL" "ra_cat read_all 'wanted-'")
    declare -A PGB_SQL=(
        [poll_all]="SELECT count(*) FROM eventstore.poll('idle_all');"
        [poll_cat]="SELECT count(*) FROM eventstore.poll('idle_cat');"
        [ra_all]="SELECT count(*) FROM eventstore.read_all($head, 1000);"
        [ra_cat]="SELECT count(*) FROM eventstore.read_all($head, 1000, 'wanted-');"
    )
    for v in "${!PGB_SQL[@]}"; do echo "${PGB_SQL[$v]}" >"$out/empty_$v.sql"; chmod 644 "$out/empty_$v.sql"; done
    : >"$out/empty_pgbench.tsv"
    # warm-up
    for v in "${VARIANTS[@]}"; do set -- $v; q -c "CALL pollbench.empty('$1', 0, '$2', $3, 1)"; done
    for ((r = 1; r <= IDLE_ROUNDS; r++)); do
        for ((i = 0; i < 4; i++)); do
            set -- ${VARIANTS[$(((i + r - 1) % 4))]}
            q -c "CALL pollbench.empty('$1', $r, '$2', $3, $IDLE_SECS)"
            pgb -n -c 1 -j 1 -T "$IDLE_SECS" -M prepared -f "$out/empty_$1.sql" bench >"$out/empty_pgbench.$1.$r.txt" 2>&1 ||
                { tail "$out/empty_pgbench.$1.$r.txt" >&2; exit 1; }
            lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out/empty_pgbench.$1.$r.txt")
            printf '%s\t%s\t%s\n' "$1" "$r" "$lat" >>"$out/empty_pgbench.tsv"
            qa -F $'\t' -c "SELECT calls, events, round((cpu_ms / calls)::numeric, 3), round((wall_ms / calls)::numeric, 3) FROM pollbench.runs
                             WHERE part = 'empty' AND what = '$1' AND round = $r" |
                awk -F'\t' -v v="$1" -v r="$r" -v l="$lat" '{ printf "   %-8s round %d: %7d calls (%d events), cpu %6.3f ms, wall %6.3f ms per call; pgbench -c 1 latency %s ms\n", v, r, $1, $2, $3, $4, l }'
        done
    done
    lsn_lag=$(qa -c "SELECT string_agg(s.name || ' ' || pg_size_pretty(pg_wal_lsn_diff(r.confirmed_flush_lsn, r.restart_lsn)), ', ')
                       FROM eventstore.subscription AS s JOIN pg_replication_slots AS r USING (slot_name)")
    sub_drop idle_all
    sub_drop idle_cat
    {
        echo "(a) A call that finds nothing, one transaction each: a caught-up subscription (unfiltered, and with stream_prefix 'wanted-'),"
        echo "after $IDLE_EVENTS events of other streams (and 10 wanted ones) were delivered and acknowledged; against an empty read_all(head, 1000)"
        echo "(with the same prefix for the filtered row). In-server loop (a procedure, COMMIT after every call) for ${IDLE_SECS}s per run, then"
        echo "pgbench -n -c 1 -M prepared -T $IDLE_SECS with the same statement; $IDLE_ROUNDS rounds in rotating order, medians."
        echo "CPU = the backend's CPU time (/proc/self/schedstat) over the loop / calls. Slot restart lag at the end: $lsn_lag."
        echo
        echo "| call | **backend CPU ms per call** | wall ms per call (in-server loop) | pgbench latency ms (1 client) | **poll / read_all (CPU)** | poll / read_all (pgbench) | CPU ms rounds |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
        for pair in "all poll_all ra_all" "cat poll_cat ra_cat"; do
            set -- $pair
            for v in "$2" "$3"; do
                cpu=$(qa -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_ms / calls) FROM pollbench.runs WHERE part = 'empty' AND what = '$v' AND round > 0")
                wall=$(qa -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY wall_ms / calls) FROM pollbench.runs WHERE part = 'empty' AND what = '$v' AND round > 0")
                rounds=$(qa -c "SELECT string_agg(round((cpu_ms / calls)::numeric, 3)::text, ' ' ORDER BY round) FROM pollbench.runs WHERE part = 'empty' AND what = '$v' AND round > 0")
                lat=$(awk -F'\t' -v v="$v" '$1 == v { print $3 }' "$out/empty_pgbench.tsv" | median)
                case $v in
                    poll_all) d="\`count(*) FROM eventstore.poll('idle_all')\` (unfiltered)" ;;
                    poll_cat) d="\`count(*) FROM eventstore.poll('idle_cat')\` (stream_prefix 'wanted-')" ;;
                    ra_all) d="\`count(*) FROM eventstore.read_all(head, 1000)\`" ;;
                    ra_cat) d="\`count(*) FROM eventstore.read_all(head, 1000, 'wanted-')\`" ;;
                esac
                if [ "$v" = "$2" ]; then
                    pc=$cpu; pl=$lat
                    printf '| %s | **%.3f** | %.3f | %.3f | | | %s |\n' "$d" "$cpu" "$wall" "$lat" "$rounds"
                else
                    awk -v d="$d" -v c="$cpu" -v w="$wall" -v l="$lat" -v pc="$pc" -v pl="$pl" -v rr="$rounds" \
                        'BEGIN { printf "| %s | **%.3f** | %.3f | %.3f | **%.1f** | %.1f | %s |\n", d, c, w, l, pc / c, pl / l, rr }'
                fi
            done
        done
        echo
        echo "Target for the C poll: <= 0.5 ms of backend CPU per empty poll."
    } >>"$table"
fi

# --- (b) latency ---------------------------------------------------------------
if want latency; then
    cat >"$out/lat_writer.sql" <<'SQL'
\set sid random(1, 1000)
SELECT * FROM eventstore.append_event('lat-' || :sid, 'Tick', jsonb_build_object('t', clock_timestamp()));
SQL
    chmod 644 "$out/lat_writer.sql"
    CONSUMERS=(poll read_all)
    echo "== (b) latency: writer pgbench -R $LAT_RATE for ${LAT_SECS}s, consumer loop (idle sleep ${LAT_IDLE} ms); $LAT_ROUNDS rounds"
    : >"$out/lat_polls.tsv"
    for ((r = 1; r <= LAT_ROUNDS; r++)); do
        for ((i = 0; i < 2; i++)); do
            c=${CONSUMERS[$(((i + r - 1) % 2))]}
            if [ "$c" = poll ]; then
                sub_drop lat
                sub_create "'lat'"
            fi
            q -c CHECKPOINT
            q -c "CALL pollbench.consume('$c', $r, 'lat', $LAT_SECS + 3, $LAT_IDLE)" &
            cpid=$!
            sleep 1
            pgb -n -c 4 -j 2 -R "$LAT_RATE" -T "$LAT_SECS" -M prepared -f "$out/lat_writer.sql" bench \
                >"$out/lat_writer.$c.$r.txt" 2>&1 || { tail "$out/lat_writer.$c.$r.txt" >&2; exit 1; }
            wait $cpid
            written=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out/lat_writer.$c.$r.txt")
            qa -F $'\t' -c "SELECT consumer, round, polls, empty_polls, events, $written, poll_ms_sum, poll_ms_max, cpu_ms
                              FROM pollbench.polls WHERE consumer = '$c' AND round = $r" >>"$out/lat_polls.tsv"
            qa -F ' ' -c "SELECT '   $c round $r:', count(*) || ' events of $written written,',
                                 'p50', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1),
                                 'p99', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1), 'ms'
                            FROM pollbench.latency WHERE consumer = '$c' AND round = $r"
        done
    done
    sub_drop lat
    {
        [ -s "$table" ] && echo
        echo "(b) Latency append -> consumer at ~$LAT_RATE events/s (pgbench -R $LAT_RATE, 4 clients, single-event append_event whose data holds clock_timestamp());"
        echo "a consumer loop (procedure) of fetch at most 1000 + acknowledge + COMMIT per iteration, sleeping ${LAT_IDLE} ms after an empty fetch;"
        echo "latency = the consumer's clock_timestamp() when the fetch returned - the writer's timestamp; $LAT_ROUNDS round(s) of ${LAT_SECS}s per consumer,"
        echo "in rotating order, percentiles over all events of a consumer. CPU per fetch: the consumer backend's CPU time over its loop / fetches."
        echo
        echo "| consumer | events received / written | fetches (empty) | ms per fetch (avg / max) | CPU ms per fetch | p50 ms | p95 ms | p99 ms | max ms | **p50 poll / read_all** | p99 poll / read_all |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        ra50=$(qa -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms) FROM pollbench.latency WHERE consumer = 'read_all'")
        ra99=$(qa -c "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms) FROM pollbench.latency WHERE consumer = 'read_all'")
        for c in poll read_all; do
            case $c in
                poll) d="subscription: \`eventstore.poll('lat', 1000)\` + \`eventstore.ack('lat')\`" ;;
                read_all) d="\`eventstore.read_all(checkpoint, 1000)\` + checkpoint row" ;;
            esac
            pl=$(awk -F'\t' -v c=$c '$1 == c { p += $3; e += $4; n += $5; w += $6; ps += $7; if ($8 > pm) pm = $8; cpu += $9 }
                  END { printf "%d / %d\t%d (%d)\t%.2f / %.0f\t%.3f", n, w, p, e, ps / p, pm, cpu / p }' "$out/lat_polls.tsv")
            qa -F $'\t' -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms)::numeric, 2),
                                   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lat_ms)::numeric, 2),
                                   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms)::numeric, 2),
                                   round(max(lat_ms)::numeric, 1),
                                   round((percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms) / $ra50)::numeric, 2),
                                   round((percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms) / $ra99)::numeric, 2)
                              FROM pollbench.latency WHERE consumer = '$c'" |
                awk -F'\t' -v d="$d" -v pl="$pl" -v c=$c 'BEGIN { split(pl, a, "\t") }
                    { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d, a[1], a[2], a[3], a[4], $1, $2, $3, $4,
                             (c == "poll" ? "**" $5 "**" : "1"), (c == "poll" ? $6 : "1") }'
        done
        echo
        echo "Target for the C poll: p50 poll / read_all <= 1.2."
    } >>"$table"
fi

# --- (c) catch-up --------------------------------------------------------------
if want catchup; then
    echo "== (c) catch-up of $EVENTS events ($TX_EVENTS per transaction), pages of 1000, $CU_ROUNDS rounds"
    for ((r = 1; r <= CU_ROUNDS; r++)); do sub_drop "cu$r"; sub_create "'cu$r'"; done
    from=$(qa -c "SELECT eventstore.head_position()")
    t0=$(date +%s.%N)
    # two generator sessions, each its own streams
    q -c "SET synchronous_commit = off" -c "CALL pollbench.gen('cu-a', $((EVENTS / 2)), $TX_EVENTS)" &
    q -c "SET synchronous_commit = off" -c "CALL pollbench.gen('cu-b', $((EVENTS - EVENTS / 2)), $TX_EVENTS)" &
    wait
    gen_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.0f", a - b }')
    wal=$(qa -c "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), min(restart_lsn))) FROM pg_replication_slots")
    printf '   generated in %s s; %s of WAL behind the slots\n' "$gen_s" "$wal"
    sub_drop cuh
    sub_create "'cuh', from_position => $from"     # the same events, from the table (history)
    q -c CHECKPOINT
    for ((r = 1; r <= CU_ROUNDS; r++)); do
        if ((r % 2)); then order="poll read_all"; else order="read_all poll"; fi
        for c in $order; do
            if [ $c = poll ]; then
                q -c "CALL pollbench.catchup('poll', $r, 'poll', 'cu$r', 0, 1000)"
            else
                q -c "CALL pollbench.catchup('read_all', $r, 'read_all', NULL, $from, 1000)"
            fi
            qa -F $'\t' -c "SELECT calls, events, round(wall_ms::numeric), round(cpu_ms::numeric) FROM pollbench.runs WHERE part = 'catchup' AND what = '$c' AND round = $r" |
                awk -F'\t' -v c=$c -v r=$r '{ printf "   %-8s round %d: %d pages, %d events, wall %d ms, cpu %d ms: %.0f events/s (wall)\n", c, r, $1, $2, $3, $4, $2 / $3 * 1000 }'
        done
        sub_drop "cu$r"
    done
    q -c "CALL pollbench.catchup('poll_history', 1, 'poll', 'cuh', 0, 1000)"
    sub_drop cuh
    {
        [ -s "$table" ] && echo
        echo "(c) Catch-up of $EVENTS events (appended by 2 sessions, $TX_EVENTS events per transaction, after the subscriptions were created,"
        echo "so poll decodes them from the slot; WAL of the events: $wal; generation $gen_s s), pages of 1000, one transaction per page"
        echo "(poll + ack, or read_all + checkpoint row), until a page comes back empty. $CU_ROUNDS rounds (a fresh subscription each), alternating"
        echo "which consumer runs first; medians. Also, once: a subscription created afterwards with from_position before the events (poll"
        echo "then reads them from the table as history)."
        echo
        echo "| consumer | events | pages | wall ms | CPU ms | **events/s (wall)** | events/s (CPU) | **poll / read_all (events/s, wall)** | poll / read_all (CPU) | wall ms rounds |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        ra_w=$(qa -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY wall_ms) FROM pollbench.runs WHERE part = 'catchup' AND what = 'read_all'")
        ra_c=$(qa -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_ms) FROM pollbench.runs WHERE part = 'catchup' AND what = 'read_all'")
        for c in poll read_all poll_history; do
            case $c in
                poll) d="subscription (live, from the slot): \`poll(sub, 1000)\` + \`ack(sub)\`" ;;
                read_all) d="\`read_all(checkpoint, 1000)\` + checkpoint row" ;;
                poll_history) d="subscription, history (from_position): \`poll(sub, 1000)\` + \`ack(sub)\`" ;;
            esac
            qa -F $'\t' -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY events), percentile_cont(0.5) WITHIN GROUP (ORDER BY calls),
                                   percentile_cont(0.5) WITHIN GROUP (ORDER BY wall_ms), percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_ms),
                                   string_agg(round(wall_ms::numeric)::text, ' ' ORDER BY round)
                              FROM pollbench.runs WHERE part = 'catchup' AND what = '$c'" |
                awk -F'\t' -v d="$d" -v c=$c -v rw="$ra_w" -v rc="$ra_c" '{
                    printf "| %s | %d | %d | %.0f | %.0f | **%.0f** | %.0f | %s | %s | %s |\n", d, $1, $2, $3, $4, $1 / $3 * 1000, $1 / $4 * 1000,
                           (c == "read_all" ? "1" : sprintf("**%.2f**", rw / $3)), (c == "read_all" ? "1" : sprintf("%.2f", rc / $4)), $5 }'
        done
        echo
        echo "Target for the C poll: events/s poll / read_all >= 0.5 (live rows)."
    } >>"$table"
fi

# --- report --------------------------------------------------------------------
head_doc="$out/head.md"
{
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $commit; $(qa -c 'SHOW server_version' | sed 's/^/PostgreSQL /;s/ (.*//')$([ $QUICK = 1 ] && echo '; --quick')"
    echo "- machine: $machine; shared by other jobs, hence backend CPU time as the main figure of (a)"
    echo "- cluster: shared_buffers=1GB, autovacuum=off, fsync on, synchronous_commit on (off for the generators of (c))"
    echo "- whole run: $(($(date +%s) - t_start)) s"
} >"$head_doc"
bench_report "$DOC" "$head_doc" "$table"
