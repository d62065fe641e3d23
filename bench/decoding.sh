#!/usr/bin/env bash
# Benchmark of logical decoding (issue 4): the 'eventstore' output plugin
# against wal2json (format-version 2) and test_decoding on the same WAL,
# and the end-to-end latency append -> poll of a subscription against
# consumers polling the table.  Method: bench/DECODING.md.
#
#   bash bench/decoding.sh        (as root on Debian bookworm; ~8-12 min)
#
# Builds and installs the extension from a copy of the committed tree
# (BENCH_SOURCE=worktree: the work tree as it is), starts a private
# throwaway cluster as postgres on its own port and socket directory,
# measures, prints the tables and writes them between the results markers
# of bench/DECODING.md.  Raw output goes to bench/out/decoding/.
#
# Knobs (environment):
#   BENCH_SINGLE=1000000    events of workload (a), one transaction each
#   BENCH_BATCH_TX=1000 BENCH_BATCH_SIZE=1000   workload (b)
#   BENCH_PEEK_ROUNDS=3     timed peeks per slot and workload (+1 warm-up)
#   BENCH_LAT_SECONDS=15 BENCH_LAT_ROUNDS=2 BENCH_LAT_RATE=1000 BENCH_LAT_IDLE_MS=1
#   BENCH_ONLY=             one part only: peek (throughput, with callgrind) or
#                           latency; the results then go nowhere unless
#                           BENCH_DOC names a file (they would replace the
#                           whole results section)
#   BENCH_DOC=bench/DECODING.md (none: nowhere)  BENCH_KEEP=0  BENCH_SOURCE=head
BENCH_NAME=decoding
. "$(dirname "$0")/feed/common.sh"

SINGLE=${BENCH_SINGLE:-1000000}
BATCH_TX=${BENCH_BATCH_TX:-1000}
BATCH_SIZE=${BENCH_BATCH_SIZE:-1000}
PEEK_ROUNDS=${BENCH_PEEK_ROUNDS:-3}
LAT_SECS=${BENCH_LAT_SECONDS:-15}
LAT_ROUNDS=${BENCH_LAT_ROUNDS:-2}
LAT_RATE=${BENCH_LAT_RATE:-1000}
LAT_IDLE=${BENCH_LAT_IDLE_MS:-1}
ONLY=${BENCH_ONLY:-}
case $ONLY in
    '') DOC=${BENCH_DOC:-$bench/DECODING.md} ;;
    peek | latency) DOC=${BENCH_DOC:-none} ;;
    *) echo "BENCH_ONLY must be peek or latency" >&2; exit 1 ;;
esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
t_start=$(date +%s)
machine=$(bench_machine)

echo "== build and cluster ($work, port $port)"
bench_build
bench_cluster
bench_extension -f "$bench/decoding/setup.sql"

# The three slots and the options each peek passes.
PLUGINS=(eventstore wal2json test_decoding)
declare -A OPTS=(
    [eventstore]="'format-version', '1'"
    [wal2json]="'format-version', '2'"
    [test_decoding]="'skip-empty-xacts', '1'"
)

raw="$out/peek.tsv"
: >"$raw"
declare -A EVENTS TXS WAL GEN

# workload name, generator calls (one per worker)...
run_workload() {
    local wl=$1; shift
    echo "== workload $wl: create the slots, generate, decode"
    for p in "${PLUGINS[@]}"; do
        qa -c "SELECT pg_create_logical_replication_slot('dec_$p', '$p')" >/dev/null
    done
    local lsn0 lsn1 n0 n1 t0 t1
    lsn0=$(qa -c "SELECT pg_current_wal_lsn()")
    n0=$(qa -c "SELECT count(*) FROM eventstore.events")
    t0=$(date +%s.%N)
    # synchronous_commit=off: the WAL is the same, without waiting for a flush per commit
    for call in "$@"; do q -c "SET synchronous_commit = off" -c "$call" & done
    wait
    t1=$(date +%s.%N)
    lsn1=$(qa -c "SELECT pg_current_wal_insert_lsn()")   # insert, not write: async commits included
    n1=$(qa -c "SELECT count(*) FROM eventstore.events")
    EVENTS[$wl]=$((n1 - n0))
    WAL[$wl]=$(qa -c "SELECT pg_size_pretty(pg_wal_lsn_diff('$lsn1', '$lsn0'))")
    GEN[$wl]=$(echo "$t1 - $t0" | bc)
    printf '   %d events generated in %.1f s; %s of WAL\n' "${EVENTS[$wl]}" "${GEN[$wl]}" "${WAL[$wl]}"
    q -c CHECKPOINT
    # warm-up (round 0, not counted), then rounds in rotating plugin order
    local r i k p res
    for ((r = 0; r <= PEEK_ROUNDS; r++)); do
        for ((i = 0; i < 3; i++)); do
            k=$(((i + r) % 3))
            p=${PLUGINS[$k]}
            res=$(qa -F $'\t' -c "SELECT out_rows, out_bytes, wall_ms, cpu_ms FROM decbench.peek('dec_$p', '$lsn1', ${OPTS[$p]})")
            printf '%s\t%s\t%s\t%s\n' "$wl" "$p" "$r" "$res" >>"$raw"
            printf '   %-14s round %d: %s\n' "$p" "$r" "$(echo "$res" | awk -F'\t' '{ printf "%8d rows %6.1f MB  wall %7.0f ms  cpu %7.0f ms", $1, $2 / 1e6, $3, $4 }')"
        done
    done
    for p in "${PLUGINS[@]}"; do
        qa -c "SELECT pg_drop_replication_slot('dec_$p')" >/dev/null
    done
    q -c CHECKPOINT
}

if want peek; then
    run_workload single "CALL decbench.gen_single($SINGLE, 0, 2)" "CALL decbench.gen_single($SINGLE, 1, 2)"
    run_workload batch "CALL decbench.gen_batch($BATCH_TX, $BATCH_SIZE, 0, 2)" "CALL decbench.gen_batch($BATCH_TX, $BATCH_SIZE, 1, 2)"
    TXS[single]=${EVENTS[single]}
    TXS[batch]=$BATCH_TX
fi

# --- latency -------------------------------------------------------------------
if want latency; then
    cat >"$out/lat_writer.sql" <<'EOF'
\set sid random(1, 1000)
SELECT * FROM eventstore.append_event('lat-' || :sid, 'Tick', jsonb_build_object('t', clock_timestamp()));
EOF
    chmod 644 "$out/lat_writer.sql"
    CONSUMERS=(sub readall plain)
    echo "== latency: writer pgbench -R $LAT_RATE for ${LAT_SECS}s, consumer polls (idle sleep ${LAT_IDLE} ms); $LAT_ROUNDS rounds"
    for ((r = 1; r <= LAT_ROUNDS; r++)); do
        for ((i = 0; i < 3; i++)); do
            c=${CONSUMERS[$(((i + r - 1) % 3))]}
            if [ "$c" = sub ]; then
                q -c "SELECT eventstore.drop_subscription('lat') FROM eventstore.subscription WHERE name = 'lat'" >/dev/null
                q -c "SELECT eventstore.create_subscription('lat')" >/dev/null
            fi
            q -c CHECKPOINT
            q -c "CALL decbench.consume('$c', $r, $LAT_SECS + 3, $LAT_IDLE)" &
            cpid=$!
            sleep 1
            pgb -n -c 4 -j 2 -R "$LAT_RATE" -T "$LAT_SECS" -M prepared -f "$out/lat_writer.sql" bench \
                >"$out/lat_writer.$c.$r.txt" 2>&1 || { tail "$out/lat_writer.$c.$r.txt" >&2; exit 1; }
            wait $cpid
            written=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out/lat_writer.$c.$r.txt")
            qa -F $'\t' -c "SELECT consumer, round, polls, empty_polls, events, $written, poll_ms_sum, poll_ms_max, coalesce(lag_kb_sum, 0), coalesce(lag_kb_max, 0), cpu_ms
                              FROM decbench.polls WHERE consumer = '$c' AND round = $r" >>"$out/lat_polls.tsv"
            qa -F ' ' -c "SELECT '   $c round $r:', count(*) || ' events of $written written,',
                                 'p50', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1),
                                 'p95', round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1),
                                 'p99', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1), 'ms'
                            FROM decbench.latency WHERE consumer = '$c' AND round = $r"
        done
    done
    q -c "SELECT eventstore.drop_subscription('lat')" >/dev/null
fi

# --- report --------------------------------------------------------------------
med() { awk -F'\t' -v w="$1" -v p="$2" -v c="$3" '$1 == w && $2 == p && $3 > 0 { print $c }' "$raw" | median; }
rl() { awk -F'\t' -v w="$1" -v p="$2" '$1 == w && $2 == p && $3 > 0 { printf "%s%.0f", (n++ ? " " : ""), $7 }' "$raw"; }
table="$out/table.md"
: >"$table"
want peek && {
    echo "Decoding the same WAL through three slots with pg_logical_slot_peek_changes (nothing consumed), count(*) and sum(octet_length) of the output;"
    echo "one warm-up peek then $PEEK_ROUNDS timed peeks per slot in rotating order; medians. events/s = events decoded / CPU time of the decoding backend."
    echo
    echo "| workload | plugin | output rows | output MB | cpu ms | wall ms | **events/s (cpu)** | events/s (wall) | **eventstore / plugin (cpu)** | eventstore / plugin (wall) | cpu ms rounds |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for wl in single batch; do
        case $wl in
            single) d="(a) ${EVENTS[single]} single-event transactions" ;;
            batch) d="(b) $BATCH_TX transactions x $BATCH_SIZE events" ;;
        esac
        es_cpu=$(med $wl eventstore 7); es_wall=$(med $wl eventstore 6)
        for p in "${PLUGINS[@]}"; do
            awk -v d="$d" -v p="$p" -v n="${EVENTS[$wl]}" -v rows="$(med $wl $p 4)" -v mb="$(med $wl $p 5)" \
                -v c="$(med $wl $p 7)" -v w="$(med $wl $p 6)" -v ec="$es_cpu" -v ew="$es_wall" -v rr="$(rl $wl $p)" \
                'BEGIN { printf "| %s | %s | %d | %.1f | %.0f | %.0f | **%.0f** | %.0f | %s | %s | %s |\n", d, p, rows, mb / 1e6, c, w, n / c * 1000, n / w * 1000,
                         (p == "eventstore" ? "1" : sprintf("**%.2f**", c / ec)), (p == "eventstore" ? "1" : sprintf("%.2f", w / ew)), rr }'
        done
    done
    echo
    echo "Generation (not a measurement of decoding): (a) ${GEN[single]%.*} s, ${WAL[single]} of WAL; (b) ${GEN[batch]%.*} s, ${WAL[batch]} of WAL (2 generator sessions each)."
} >>"$table"
want latency && {
    [ -s "$table" ] && echo
    echo "End-to-end latency at ~$LAT_RATE events/s (pgbench -R $LAT_RATE, 4 clients, single-event append_event whose data holds clock_timestamp());"
    echo "a consumer loop of poll + acknowledge + commit per iteration, sleeping ${LAT_IDLE} ms after an empty poll; latency = consumer clock_timestamp() when the poll"
    echo "returned - the writer's timestamp; $LAT_ROUNDS rounds of ${LAT_SECS}s per consumer, percentiles over all their events. CPU per poll: the consumer backend's"
    echo "CPU time (/proc/self/schedstat) over its whole loop / polls. Slot restart lag: confirmed_flush_lsn - restart_lsn after each poll, the WAL every poll decodes again."
    echo
    echo "| consumer | events received / written | written / s | polls (empty) | ms per poll (avg / max) | CPU ms per poll | slot restart lag KB (avg / max) | p50 ms | p95 ms | p99 ms | max ms | p50 vs plain |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    plain50=$(qa -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms) FROM decbench.latency WHERE consumer = 'plain'")
    for c in "${CONSUMERS[@]}"; do
        case $c in
            sub) d="subscription: eventstore.poll + ack (logical decoding)" ;;
            readall) d="eventstore.read_all(checkpoint, 1000) + checkpoint row" ;;
            plain) d="plain SELECT by position + checkpoint row (not gap-safe)" ;;
        esac
        pl=$(awk -F'\t' -v c=$c -v secs="$LAT_SECS" '$1 == c { p += $3; e += $4; n += $5; w += $6; ps += $7; if ($8 > pm) pm = $8; ls += $9; if ($10 > lm) lm = $10; cpu += $11; k++ }
              END { printf "%d / %d\t%.0f\t%d (%d)\t%.1f / %.0f\t%.2f\t%s", n, w, w / secs / k, p, e, ps / p, pm, cpu / p, (c == "sub" ? sprintf("%.0f / %.0f", ls / p, lm) : "-") }' "$out/lat_polls.tsv")
        qa -F $'\t' -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1),
                               round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1),
                               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms)::numeric, 1),
                               round(max(lat_ms)::numeric, 1),
                               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms) / $plain50)::numeric, 2)
                          FROM decbench.latency WHERE consumer = '$c'" |
            awk -F'\t' -v d="$d" -v pl="$pl" 'BEGIN { split(pl, a, "\t") } { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d, a[1], a[2], a[3], a[4], a[5], a[6], $1, $2, $3, $4, $5 }'
    done
} >>"$table"

# --- optional: instruction counts under callgrind --------------------------------
# Where does decoding time go?  A fresh set of slots over a small workload
# of each kind, then a single-user backend peeks one slot under callgrind.
# eventstore.so is built here with symbols: es_change (the plugin's change
# callback, formatting included) is known exactly; the rest of the
# eventstore peek is what any output plugin pays (WAL reading, reorder
# buffer, the SQL function's tuplestore), which bounds the ratio to
# wal2json.  (wal2json.so, test_decoding.so and postgres are stripped:
# their static functions show as addresses.)
CALLGRIND=${BENCH_CALLGRIND:-auto}
want peek || CALLGRIND=0
if [ "$CALLGRIND" = auto ]; then
    command -v valgrind >/dev/null && CALLGRIND=1 || CALLGRIND=0
fi
cg_summary=""
if [ "$CALLGRIND" = 1 ]; then
    CG_SINGLE=${BENCH_CG_SINGLE:-5000}
    CG_BATCH=${BENCH_CG_BATCH:-10}
    echo "== callgrind: peeks of $CG_SINGLE single-event transactions, and of $CG_BATCH x $BATCH_SIZE-event transactions, in a single-user backend"
    cg_summary="$out/callgrind.md"
    {
        echo "Instructions per event (callgrind, single-user backend, pg_logical_slot_peek_changes inclusive, one peek of the whole workload;"
        echo "eventstore's change callback es_change inclusive = the plugin's own work, writing its output row included; the rest = WAL reading,"
        echo "decoding, reorder buffer, SQL function, which every plugin pays on this WAL):"
        echo
        echo "| workload | plugin | instructions / event | es_change incl. / event | rest / event | ratio plugin / eventstore |"
        echo "| --- | --- | ---: | ---: | ---: | ---: |"
    } >"$cg_summary"
    for wl in single batch; do
        for p in "${PLUGINS[@]}"; do
            qa -c "SELECT pg_create_logical_replication_slot('cg_$p', '$p')" >/dev/null
        done
        if [ $wl = single ]; then
            q -c "SET synchronous_commit = off" -c "CALL decbench.gen_single($CG_SINGLE, 0, 1)"
            nev=$CG_SINGLE
        else
            q -c "SET synchronous_commit = off" -c "CALL decbench.gen_batch($CG_BATCH, $BATCH_SIZE, 0, 1)"
            nev=$((CG_BATCH * BATCH_SIZE))
        fi
        lsn=$(qa -c "SELECT pg_current_wal_insert_lsn()")
        es_cluster_stop "$work"
        for p in "${PLUGINS[@]}"; do
            f="$out/cg.$wl.$p"
            echo "SELECT count(*) FROM pg_logical_slot_peek_changes('cg_$p', '$lsn', NULL, ${OPTS[$p]});" >"$f.sql"
            chmod 644 "$f.sql"
            for attempt in 1 2 3 4 5 6; do
                make -s -C "$work/src" install >>"$out/build.log" 2>&1
                (cd "$out" && runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$f.out" \
                    "$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir)/postgres" --single -D "$work/data" -c work_mem=2GB bench <"$f.sql") >"$f.log" 2>&1 ||
                    { tail "$f.log" >&2; exit 1; }
                callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$f.out" 2>/dev/null >"$f.incl.txt"
                [ $p != eventstore ] || grep -q "$work/src/" "$f.incl.txt" && break
                echo "   another job's eventstore was loaded; again"
            done
            # the peek itself (pg_logical_slot_peek_changes inclusive), not the backend's start-up
            tot=$(awk '/:pg_logical_slot_peek_changes / { gsub(",", "", $1); print $1; exit }' "$f.incl.txt")
            # events decoded = rows of eventstore's output (the first plugin) on this WAL
            [ $p = eventstore ] && nev=$(sed -n 's/.*count = "\([0-9]*\)".*/\1/p' "$f.log")
            chg=$(awk '/:es_change / { gsub(",", "", $1); print $1; exit }' "$f.incl.txt")
            [ $p = eventstore ] && es_tot=$tot
            awk -v w="$wl" -v p=$p -v t="$tot" -v c="${chg:-}" -v n=$nev -v e="$es_tot" \
                'BEGIN { printf "| %s | %s | %.0f | %s | %s | %.2f |\n", (w == "single" ? "(a) " n " single-event transactions" : "(b) " n / 1000 " x 1000-event transactions"), p, t / n,
                         (c == "" ? "-" : sprintf("%.0f", c / n)), (c == "" ? "-" : sprintf("%.0f", (t - c) / n)), t / e }' >>"$cg_summary"
        done
        es_cluster_start "$work" "$port"
        for p in "${PLUGINS[@]}"; do
            qa -c "SELECT pg_drop_replication_slot('cg_$p')" >/dev/null
        done
    done
fi

t_end=$(date +%s)
pgver=$(runuser -u postgres -- postgres --version | awk '{ print $3 }')
w2jver=$(dpkg-query -W -f='${Version}' postgresql-15-wal2json 2>/dev/null || echo unknown)
header="$out/header.md"
{
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $commit; PostgreSQL $pgver; wal2json $w2jver"
    echo "- machine: $machine; shared by other jobs, hence CPU time (/proc/self/schedstat of the decoding backend) as the main figure"
    echo "- cluster: shared_buffers=1GB, work_mem=2GB for the peeks (the output stays in memory), autovacuum=off, fsync on"
    echo "- options: eventstore format-version=1; wal2json format-version=2 (defaults otherwise); test_decoding skip-empty-xacts=1"
    echo "- whole run: $((t_end - t_start)) s"
} >"$header"

bench_report "$DOC" "$header" "$table" "${cg_summary:-}"
