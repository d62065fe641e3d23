#!/usr/bin/env bash
# Benchmark of the gap-safe global feed (issue 3): catch-up reads through
# read_all / read_category against the equivalent plain SELECTs, and the
# cost of the in-flight registry on appends.  Method: bench/FEED.md.
#
#   bash bench/feed.sh            (as root on Debian bookworm; ~8-12 min)
#
# Builds and installs the extension from a copy of the committed tree
# (BENCH_SOURCE=worktree: the work tree as it is), starts a private
# throwaway cluster as postgres on its own port and socket directory,
# loads the log through eventstore.append, measures, prints the tables and
# writes them between the results markers of bench/FEED.md.  Raw output
# goes to bench/out/feed/ (ignored by git).
#
# Knobs (environment):
#   BENCH_STREAMS=10000 BENCH_PER_STREAM=100   the log: streams x events
#   BENCH_ROUNDS=5          catch-up rounds per reader (alternating order)
#   BENCH_REG_ROUNDS=5      registry on/off rounds (synchronous_commit=off)
#   BENCH_REG_ROUNDS_SYNC=3 registry on/off rounds (synchronous_commit=on)
#   BENCH_REG_SECONDS=10    seconds per pgbench run
#   BENCH_CALLGRIND=auto    instruction counts of one catch-up page run per
#                           reader under callgrind (auto: if valgrind exists;
#                           0: skip; needs ~1 min)
#   BENCH_DOC=bench/FEED.md where to put the results (none: nowhere)
#   BENCH_KEEP=0            1: keep the cluster and work directory
#   BENCH_SOURCE=head       or worktree
BENCH_NAME=feed
. "$(dirname "$0")/feed/common.sh"
# a benchmark build: eventstore.debug_skip_registry exists only there
export BENCHMARK=1

NSTREAMS=${BENCH_STREAMS:-10000}
PER_STREAM=${BENCH_PER_STREAM:-100}
ROUNDS=${BENCH_ROUNDS:-5}
REG_ROUNDS=${BENCH_REG_ROUNDS:-5}
REG_ROUNDS_SYNC=${BENCH_REG_ROUNDS_SYNC:-3}
REG_SECS=${BENCH_REG_SECONDS:-10}
CALLGRIND=${BENCH_CALLGRIND:-auto}
DOC=${BENCH_DOC:-$bench/FEED.md}
CLIENTS=8
JOBS=2
t_start=$(date +%s)
machine=$(bench_machine)

echo "== build and cluster ($work, port $port)"
bench_build
bench_cluster
bench_extension -f "$bench/feed/load.sql" -f "$bench/feed/catchup.sql"

# --- load ---------------------------------------------------------------------
total=$((NSTREAMS * PER_STREAM))
echo "== load: $NSTREAMS streams x $PER_STREAM events = $total events (eventstore.append, 1000 events a transaction, 2 loaders)"
t0=$(date +%s.%N)
for w in 0 1; do
    q -c "CALL feedbench.load(1, $NSTREAMS, $((PER_STREAM / 10)), 10, $w, 2, 100)" &
done
wait
t1=$(date +%s.%N)
load_s=$(echo "$t1 - $t0" | bc)
n=$(qa -c "SELECT count(*) FROM eventstore.events")
[ "$n" = "$total" ] || { echo "loaded $n events, expected $total" >&2; exit 1; }
printf '   %d events in %.1f s (%.0f events/s)\n' "$total" "$load_s" "$(echo "$total / $load_s" | bc -l)"
q -c "VACUUM ANALYZE eventstore.events" -c CHECKPOINT
size=$(qa -c "SELECT pg_size_pretty(pg_total_relation_size('eventstore.events'))")

# The plans of the plain queries (as PL/pgSQL runs them, with a parameter).
{
    for w in all cat type1 type2; do
        case $w in
            all) cond="TRUE" ;;
            cat) cond="eventstore.category(e.stream) = 'payment'" ;;
            type1) cond="e.event_type = ANY ('{Noted}'::text[])" ;;
            type2) cond="e.event_type = ANY ('{Noted,Moved}'::text[])" ;;
        esac
        echo "-- $w"
        qa -c "EXPLAIN SELECT * FROM eventstore.events AS e WHERE $cond AND e.global_position > 500000 ORDER BY e.global_position LIMIT 1000"
    done
} >"$out/plans.txt"

# --- catch-up -----------------------------------------------------------------
raw="$out/catchup.tsv"
: >"$raw"
pass() { # reader what round
    local r
    r=$(qa -F $'\t' -c "SELECT events, pages, wall_ms, cpu_ms, minflt FROM feedbench.catchup('$1', '$2')")
    printf '%s\t%s\t%s\t%s\n' "$2" "$1" "$3" "$r" >>"$raw"
    printf '   %-6s %-10s round %d: %s\n' "$2" "$1" "$3" "$(echo "$r" | awk -F'\t' '{ printf "%7d events  wall %7.0f ms  cpu %7.0f ms  %7d minor faults", $1, $3, $4, $5 }')"
}
CASES=(all cat type1 type2)
echo "== catch-up: page through the log 1000 at a time, server-side; $ROUNDS rounds, order alternating"
echo "   warm-up"
for w in "${CASES[@]}"; do qa -c "SELECT feedbench.catchup('es', '$w'), feedbench.catchup('plain', '$w')" >/dev/null; done
for ((r = 1; r <= ROUNDS; r++)); do
    for w in "${CASES[@]}"; do
        if ((r % 2)); then pass es "$w" $r; pass plain "$w" $r; else pass plain "$w" $r; pass es "$w" $r; fi
    done
    # diagnostics: where does read_all's extra time go?
    pass plain_srf all $r
    pass plain_head all $r
done

# --- cost of the registry on appends --------------------------------------------
cat >"$out/append_event.sql" <<'EOF'
\set sid random(1, 10000)
SELECT * FROM eventstore.append_event('reg-' || :sid, 'Ticked', '{"amount": 42, "currency": "EUR", "note": "registry benchmark"}', '{}');
EOF
chmod 644 "$out/append_event.sql"
regraw="$out/registry.tsv"
: >"$regraw"
# CPU time of the server's backends that have exited: the postmaster's
# cutime + cstime, in clock ticks (the pgbench backends exit at its end).
pm_cpu() { awk '{ print $16 + $17 }' "/proc/$(head -1 "$work/data/postmaster.pid")/stat"; }
hz=$(getconf CLK_TCK)
reg_one() { # sync skip round
    local log="$out/registry.$1.skip_$2.$3.txt" tps n c0 c1 us
    q -c CHECKPOINT
    sleep 0.5
    c0=$(pm_cpu)
    PGOPTIONS="-c synchronous_commit=$1 -c eventstore.debug_skip_registry=$2" \
        pgb -n -c $CLIENTS -j $JOBS -T "$REG_SECS" -M prepared -f "$out/append_event.sql" bench >"$log" 2>&1 ||
        { tail -20 "$log" >&2; exit 1; }
    sleep 0.5
    c1=$(pm_cpu)
    grep -q '^number of failed transactions: 0 ' "$log" || { grep -E 'failed|abort' "$log" >&2; exit 1; }
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$log")
    n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
    us=$(echo "($c1 - $c0) * 1000000 / $hz / $n" | bc -l)
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$tps" "$us" >>"$regraw"
    printf '   synchronous_commit=%-3s debug_skip_registry=%-3s round %d: %8.1f tps  %6.1f us server cpu / append\n' "$1" "$2" "$3" "$tps" "$us"
}
for sync in off on; do
    if [ $sync = off ]; then nr=$REG_ROUNDS; else nr=$REG_ROUNDS_SYNC; fi
    echo "== registry cost: pgbench $CLIENTS clients, single-event append_event to a random stream of 10000, synchronous_commit=$sync, ${REG_SECS}s x $nr rounds each"
    for ((r = 1; r <= nr; r++)); do
        if ((r % 2)); then reg_one $sync off $r; reg_one $sync on $r; else reg_one $sync on $r; reg_one $sync off $r; fi
    done
done

SOLO=${BENCH_SOLO_APPENDS:-10000}
echo "== registry cost in one backend: $SOLO single-event appends in a PL/pgSQL loop, a transaction each, synchronous_commit=off; CPU time; $REG_ROUNDS rounds"
solo_one() { # skip round
    local res
    res=$(qa -F $'\t' -c "SET synchronous_commit = off" -c "SET eventstore.debug_skip_registry = $1" \
              -c "CALL feedbench.append_loop($SOLO)")
    printf 'solo\t%s\t%s\t%s\n' "$1" "$2" "$res" >>"$regraw"
    printf '   debug_skip_registry=%-3s round %d: %s\n' "$1" "$2" "$(echo "$res" | awk -F'\t' '{ printf "wall %6.0f ms  cpu %6.0f ms  = %.1f us cpu per append", $2, $3, $3 * 1000 / $1 }')"
}
for ((r = 1; r <= REG_ROUNDS; r++)); do
    if ((r % 2)); then solo_one off $r; solo_one on $r; else solo_one on $r; solo_one off $r; fi
done

# --- report ---------------------------------------------------------------------
vals() { awk -F'\t' -v w="$1" -v r="$2" -v c="$3" '$1 == w && $2 == r { print $c }' "$raw"; }
med() { vals "$@" | median; }
rounds_list() { vals "$@" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }'; }
desc() {
    case $1 in
        all) echo "read_all(after, 1000) vs SELECT ... WHERE global_position > \$1 ORDER BY global_position LIMIT 1000" ;;
        cat) echo "read_category('payment', after, 1000) vs ... WHERE eventstore.category(stream) = 'payment' AND global_position > \$1 ..." ;;
        type1) echo "read_all(after, 1000, NULL, '{Noted}') vs ... WHERE event_type = ANY('{Noted}') AND global_position > \$1 ..." ;;
        type2) echo "read_all(after, 1000, NULL, '{Noted,Moved}') vs ... WHERE event_type = ANY('{Noted,Moved}') AND global_position > \$1 ..." ;;
    esac
}
table="$out/table.md"
{
    echo "Catch-up, paging 1000 events at a time from position 0 to the end, in one server-side PL/pgSQL loop; medians of $ROUNDS rounds."
    echo "Throughput ratio = plain time / eventstore time (> 1: eventstore faster); target >= 0.9."
    echo
    echo "| read | events | eventstore cpu ms | plain cpu ms | eventstore events/s (cpu) | plain events/s (cpu) | **ratio (cpu)** | ratio (wall) | eventstore cpu rounds | plain cpu rounds |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    for w in "${CASES[@]}"; do
        awk -v d="$(desc $w)" -v n="$(med $w es 4)" -v ec="$(med $w es 7)" -v pc="$(med $w plain 7)" \
            -v ew="$(med $w es 6)" -v pw="$(med $w plain 6)" -v er="$(rounds_list $w es 7)" -v pr="$(rounds_list $w plain 7)" \
            'BEGIN { printf "| %s | %d | %.0f | %.0f | %.0f | %.0f | **%.2f** | %.2f | %s | %s |\n", d, n, ec, pc, n / ec * 1000, n / pc * 1000, pc / ec, pw / ew, er, pr }'
    done
    echo
    echo "Diagnostics, reading everything (medians; minor page faults of the reading backend per pass):"
    echo
    echo "| reader | cpu ms | minor page faults |"
    echo "| --- | ---: | ---: |"
    echo "| eventstore.read_all | $(med all es 7 | xargs printf '%.0f') | $(med all es 8 | xargs printf '%.0f') |"
    echo "| plain SELECT | $(med all plain 7 | xargs printf '%.0f') | $(med all plain 8 | xargs printf '%.0f') |"
    echo "| the same SELECT behind a PL/pgSQL set-returning function (RETURN QUERY: a tuplestore per page) | $(med all plain_srf 7 | xargs printf '%.0f') | $(med all plain_srf 8 | xargs printf '%.0f') |"
    echo "| plain SELECT + eventstore.head_position() once a page | $(med all plain_head 7 | xargs printf '%.0f') | $(med all plain_head 8 | xargs printf '%.0f') |"
    echo
    echo "Cost of the in-flight registry: pgbench $CLIENTS clients / $JOBS threads, -M prepared, ${REG_SECS}s runs, append_event of one event to a random one of 10000 streams;"
    echo "alternating rounds, median tps; cost = 1 - registry/skip."
    echo
    echo "Server CPU / append = CPU time of the exited backends (postmaster cutime + cstime) / transactions: what the machine's other load cannot inflate much."
    echo
    echo "| synchronous_commit | registry on (tps) | debug_skip_registry = on (tps) | **tps ratio** | cost (tps) | registry on (us server cpu / append) | skip (us server cpu / append) | **cost (cpu)** | tps rounds on | tps rounds skip |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    for sync in off on; do
        on=$(awk -F'\t' -v s=$sync '$1 == s && $2 == "off" { print $4 }' "$regraw" | median)
        skip=$(awk -F'\t' -v s=$sync '$1 == s && $2 == "on" { print $4 }' "$regraw" | median)
        con=$(awk -F'\t' -v s=$sync '$1 == s && $2 == "off" { print $5 }' "$regraw" | median)
        csk=$(awk -F'\t' -v s=$sync '$1 == s && $2 == "on" { print $5 }' "$regraw" | median)
        ron=$(awk -F'\t' -v s=$sync '$1 == s && $2 == "off" { printf "%s%.0f", (n++ ? " " : ""), $4 }' "$regraw")
        rsk=$(awk -F'\t' -v s=$sync '$1 == s && $2 == "on" { printf "%s%.0f", (n++ ? " " : ""), $4 }' "$regraw")
        awk -v s=$sync -v a="$on" -v b="$skip" -v ca="$con" -v cb="$csk" -v ra="$ron" -v rb="$rsk" \
            'BEGIN { printf "| %s | %.0f | %.0f | **%.3f** | %.1f%% | %.1f | %.1f | **%.1f%%** | %s | %s |\n", s, a, b, a / b, (1 - a / b) * 100, ca, cb, (ca / cb - 1) * 100, ra, rb }'
    done
    son=$(awk -F'\t' '$1 == "solo" && $2 == "off" { print $6 * 1000 / $4 }' "$regraw" | median)
    ssk=$(awk -F'\t' '$1 == "solo" && $2 == "on" { print $6 * 1000 / $4 }' "$regraw" | median)
    ron=$(awk -F'\t' '$1 == "solo" && $2 == "off" { printf "%s%.1f", (n++ ? " " : ""), $6 * 1000 / $4 }' "$regraw")
    rsk=$(awk -F'\t' '$1 == "solo" && $2 == "on" { printf "%s%.1f", (n++ ? " " : ""), $6 * 1000 / $4 }' "$regraw")
    echo
    echo "One backend, $SOLO single-event appends in a PL/pgSQL loop with a COMMIT each (synchronous_commit=off), CPU time per append:"
    echo
    echo "| registry on (us cpu / append) | skip (us cpu / append) | **cost** | rounds on | rounds skip |"
    echo "| ---: | ---: | ---: | --- | --- |"
    awk -v a="$son" -v b="$ssk" -v ra="$ron" -v rb="$rsk" 'BEGIN { printf "| %.1f | %.1f | **%.1f%%** | %s | %s |\n", a, b, (a / b - 1) * 100, ra, rb }'
} >"$table"

# --- optional: instruction counts under callgrind --------------------------------
cg_summary=""
if [ "$CALLGRIND" = auto ]; then
    command -v valgrind >/dev/null && CALLGRIND=1 || CALLGRIND=0
fi
if [ "$CALLGRIND" = 1 ]; then
    # Two single-user backends per reader, one reading 10 pages and one 110;
    # the difference is 100 pages (100000 events) with every one-time cost
    # (start-up, catalog caches, plans) cancelled out.  The postgres binary
    # is stripped: its static functions show as addresses.
    echo "== callgrind: instructions of 100 pages (100000 events) per reader, single-user backend"
    es_cluster_stop "$work"
    # "1,234 (12.3%)  file:function [object]" -> "1234<TAB>file:function [object]"
    cg_tsv() {
        awk '/^ *[0-9,]+ +\( *[0-9.]+%\) +/ { n = $1; gsub(",", "", n); l = $0
             sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", l); print n "\t" l }'
    }
    # cg_valgrind base kind: run base.sql in a single-user backend under
    # callgrind, tabulate, and retry (installing again) while the profile
    # shows another job's eventstore
    cg_valgrind() {
        local f=$1 attempt
        chmod 644 "$f.sql"
        for attempt in 1 2 3 4 5 6; do
            make -s -C "$work/src" install >>"$out/build.log" 2>&1
            (cd "$out" && runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$f.out" \
                "$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir)/postgres" --single -D "$work/data" bench <"$f.sql") >"$f.log" 2>&1 ||
                { tail "$f.log" >&2; exit 1; }
            callgrind_annotate --auto=no --threshold=100 "$f.out" 2>/dev/null | cg_tsv >"$f.self.tsv"
            callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$f.out" 2>/dev/null | cg_tsv >"$f.incl.tsv"
            if [ "$2" = plain ] || grep -q "$work/src/" "$f.incl.tsv"; then
                return 0
            fi
            echo "   $f: another job's eventstore was loaded; again"
        done
        echo "could not profile this build's eventstore" >&2
        exit 1
    }
    cg_run() { # reader pages
        local f="$out/cg.$1.$2"
        printf "SELECT feedbench.catchup('%s', 'all', %d);\n" "$1" "$2" >"$f.sql"
        cg_valgrind "$f" "$([ "$1" = es ] && echo es || echo plain)"
    }
    # difference 110 - 10 pages per function: file kind -> "instructions<TAB>function"
    cg_diff() {
        awk -F'\t' 'NR == FNR { a[$2] = $1; next } { d = $1 - a[$2]; if (d != 0) print d "\t" $2 }' \
            "$out/cg.$1.10.$2.tsv" "$out/cg.$1.110.$2.tsv" | sort -t$'\t' -k1,1 -nr
    }
    cg_summary="$out/callgrind.md"
    {
        echo "Instructions (callgrind) of a single-user backend reading 110 pages minus one reading 10 pages (100 pages = 100000 events, all columns):"
        echo
        echo "| reader | instructions per event | tuplestore_putvalues per event (incl.) | index_getnext_slot per event (incl.) |"
        echo "| --- | ---: | ---: | ---: |"
    } >"$cg_summary"
    for rd in es plain plain_srf; do
        cg_run $rd 10
        cg_run $rd 110
        cg_diff $rd self >"$out/cg.$rd.diff.self.tsv"
        cg_diff $rd incl >"$out/cg.$rd.diff.incl.tsv"
        tot=$(awk -F'\t' '$2 ~ /PROGRAM TOTALS/ { print $1 }' "$out/cg.$rd.diff.self.tsv")
        # events read by the 110-page run minus the 10-page one ("catchup = "(events,...")
        ev=$(( $(sed -n 's/.*catchup = "(\([0-9]*\),.*/\1/p' "$out/cg.$rd.110.log") -
               $(sed -n 's/.*catchup = "(\([0-9]*\),.*/\1/p' "$out/cg.$rd.10.log") ))
        [ "$ev" -gt 0 ] || ev=1
        ts=$(awk -F'\t' '$2 ~ /:tuplestore_putvalues / { print $1; exit }' "$out/cg.$rd.diff.incl.tsv")
        ig=$(awk -F'\t' '$2 ~ /:index_getnext_slot / { print $1; exit }' "$out/cg.$rd.diff.incl.tsv")
        awk -v r=$rd -v t="$tot" -v p="$ts" -v i="$ig" -v ev=$ev \
            'BEGIN { printf "| %s | %.0f | %s | %s |\n", r, t / ev, (p == "" ? "-" : sprintf("%.0f", p / ev)), (i == "" ? "-" : sprintf("%.0f", i / ev)) }' >>"$cg_summary"
    done
    {
        echo
        echo "Own instructions per event of the functions that differ most between eventstore and plain (bench/out/feed/cg.*.diff.self.tsv):"
        echo
        echo "| function | eventstore | plain | plain_srf |"
        echo "| --- | ---: | ---: | ---: |"
        awk -F'\t' -v ev=$ev '
            FILENAME ~ /cg\.es\./ { e[$2] = $1 } FILENAME ~ /cg\.plain\./ { p[$2] = $1 } FILENAME ~ /cg\.plain_srf\./ { s[$2] = $1 }
            END { for (f in e) if (f !~ /PROGRAM TOTALS/) { d = (e[f] - p[f]) / ev; if (d > 20 || d < -20) printf "%.0f\t%s\t%.0f\t%.0f\t%.0f\n", d, f, e[f] / ev, p[f] / ev, s[f] / ev } }' \
            "$out/cg.es.diff.self.tsv" "$out/cg.plain.diff.self.tsv" "$out/cg.plain_srf.diff.self.tsv" |
            sort -t$'\t' -k1,1 -nr | awk -F'\t' '{ f = $2; sub(/ \[.*/, "", f); printf "| `%s` | %s | %s | %s |\n", f, $3, $4, $5 }'
    } >>"$cg_summary"

    # The registry on the append path: 1000 single-event appends (1300 - 300)
    # with the registry on and skipped.
    for sk in off on; do
        for n in 300 1300; do
            f="$out/cg.append.skip_$sk.$n"
            printf "SET synchronous_commit = off;\nSET eventstore.debug_skip_registry = %s;\nCALL feedbench.append_loop(%d);\n" $sk $n >"$f.sql"
            cg_valgrind "$f" es
        done
    done
    fn() { # skip n function -> inclusive instructions
        awk -F'\t' -v f="$3" '$2 ~ f { print $1; exit }' "$out/cg.append.skip_$1.$2.incl.tsv"
    }
    {
        echo
        echo "The registry on the append path (callgrind, single-user backend, 1300 minus 300 single-event appends, a transaction each), instructions per append:"
        echo
        echo "| | total | EsAllocatePosition incl. | of which nextval_internal | es_xact_callback incl. | registry (EsAllocatePosition - nextval + callback) |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        for sk in off on; do
            awk -v l="$([ $sk = off ] && echo 'registry on' || echo 'debug_skip_registry = on')" \
                -v t0="$(fn $sk 300 'PROGRAM TOTALS')" -v t1="$(fn $sk 1300 'PROGRAM TOTALS')" \
                -v a0="$(fn $sk 300 ':EsAllocatePosition ')" -v a1="$(fn $sk 1300 ':EsAllocatePosition ')" \
                -v n0="$(fn $sk 300 ':nextval_internal ')" -v n1="$(fn $sk 1300 ':nextval_internal ')" \
                -v x0="$(fn $sk 300 ':es_xact_callback ')" -v x1="$(fn $sk 1300 ':es_xact_callback ')" \
                'BEGIN { k = 1000; printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", l, (t1 - t0) / k, (a1 - a0) / k, (n1 - n0) / k, (x1 - x0) / k, ((a1 - a0) - (n1 - n0) + (x1 - x0)) / k }'
        done
    } >>"$cg_summary"
fi

t_end=$(date +%s)
pgver=$(runuser -u postgres -- postgres --version | awk '{ print $3 }')
header="$out/header.md"
{
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $commit; PostgreSQL $pgver"
    echo "- machine: $machine; shared by other jobs, hence CPU time (/proc/self/schedstat of the reading backend) as the main figure"
    echo "- log: $total events, $NSTREAMS streams x $PER_STREAM, 4 categories, 5 event types; loaded through eventstore.append in $(printf '%.0f' "$load_s") s; table + indexes $size"
    echo "- cluster: shared_buffers=1GB, work_mem=64MB, autovacuum=off (VACUUM ANALYZE after loading), fsync on"
    echo "- whole run: $((t_end - t_start)) s"
}  >"$header"

{
    echo "Plans of the plain queries (EXPLAIN, after = 500000):"
    echo
    echo '```'
    cat "$out/plans.txt"
    echo '```'
} >"$out/plans.md"
bench_report "$DOC" "$header" "$table" "${cg_summary:-}" "$out/plans.md"
