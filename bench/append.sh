#!/usr/bin/env bash
# Append and stream-read benchmark (issue 2): eventstore.append_event,
# eventstore.append and eventstore.read_stream against a plain-SQL baseline
# measured in the same run on the same throwaway cluster; reports medians
# and ratios.
#
#   bash bench/append.sh              (as root on Debian bookworm)
#
# Installs what is missing (scripts/deps.sh), builds and installs the
# extension from a copy of the committed tree in /tmp, starts a private
# cluster (scripts/cluster.sh) as the postgres user on its own port and
# socket directory, runs every measurement as alternating A/B rounds of
# pgbench, prints the table, writes it to bench/results-append.md, then
# stops and removes the cluster.  Raw pgbench output goes to
# bench/out/append/ (ignored by git).  Method: bench/README.md.
#
# Knobs (environment):
#   BENCH_ROUNDS=3          A/B rounds per measurement
#   BENCH_SECONDS=15        seconds per run of the prepared single-event appends
#   BENCH_SHORT_SECONDS=10  seconds per run of every other measurement
#   BENCH_CLIENTS=8 BENCH_JOBS=2
#   BENCH_SOURCE=head       head: the committed tree (git archive HEAD), so edits
#                           in progress cannot break or skew a run; worktree: the
#                           work tree as it is, uncommitted edits too
#   BENCH_MAIN=1            0: skip the main measurements
#   BENCH_VARIANTS=0        1: also run the diagnostic variants
#   BENCH_PROFILE=0         1: also perf-profile the backends, append and read
#   BENCH_ONLY=             space-separated case ids to run (e.g. "read_prep v_read_count")
#   BENCH_MALLOC_KEEP=0     1: the cluster's processes keep freed heap memory
#                           (glibc MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_,
#                           MALLOC_TOP_PAD_): shows what returning memory to the
#                           kernel and faulting it in again costs a query
#   BENCH_KEEP=0            1: keep the cluster and the work directory
#   BENCH_RESULTS=bench/results-append.md
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bench="$here/bench"
. "$here/scripts/deps.sh"
. "$here/scripts/cluster.sh"
es_install_deps
PATH="$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir):$PATH"

ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-15}
SHORT=${BENCH_SHORT_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-8}
JOBS=${BENCH_JOBS:-2}
SOURCE=${BENCH_SOURCE:-head}
MAIN=${BENCH_MAIN:-1}
VARIANTS=${BENCH_VARIANTS:-0}
PROFILE=${BENCH_PROFILE:-0}
KEEP=${BENCH_KEEP:-0}
ONLY=${BENCH_ONLY:-}
MALLOC_KEEP=${BENCH_MALLOC_KEEP:-0}
RESULTS=${BENCH_RESULTS:-$bench/results-append.md}
NSTREAMS=10000          # streams of the append benchmarks
PREFILL=10              # events per stream before the run: 100k in all
READ_STREAMS=20         # streams of the read benchmark ...
READ_LEN=1000           # ... with this many events each
BATCH=100               # events per batch append

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: the cluster is started as the postgres user" >&2
    exit 1
fi

t_start=$(date +%s)
load_start=$(cut -d" " -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/eventstore-bench-append.XXXXXX)
chmod 755 "$work"
out="$bench/out/append"     # bench/out/ is shared by the benchmarks: only ours
rm -rf "$out"
mkdir -p "$out"
pgdata="$work/data"
sock="$work"                # es_cluster_start puts the socket in its directory
export ES_SOCKET_DIR="$sock"
port=${BENCH_PORT:-$((54000 + RANDOM % 1000))}

as_pg() { runuser -u postgres -- env PATH="$PATH" "$@"; }

cleanup() {
    if [ "$KEEP" = 1 ]; then
        echo "kept: $work (PGHOST=$sock PGPORT=$port PGUSER=postgres, database bench)"
        return
    fi
    es_cluster_stop "$work" >/dev/null 2>&1 ||
        as_pg pg_ctl -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- build from a private copy --------------------------------------------------
mkdir -p "$work/src"
if [ "$SOURCE" != worktree ]; then
    echo "== build HEAD ($work)"
    git -C "$here" archive HEAD | tar -x -C "$work/src"
    commit=$(git -C "$here" rev-parse --short HEAD)
else
    echo "== build work tree ($work)"
    rsync -a --exclude .git --exclude tmp_check --exclude tmp_check_iso \
        --exclude results --exclude output_iso --exclude bench/out \
        --exclude '*.o' --exclude '*.so' --exclude '*.bc' "$here/" "$work/src/"
    commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$here" status --porcelain -- src sql Makefile eventstore.control 2>/dev/null)" ]; then
        commit="$commit + uncommitted changes in src/ or sql/"
    fi
fi
make -s -C "$work/src" >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }

# The extension is installed where PostgreSQL looks for it, a place shared
# with every other build on this machine: install, start, CREATE EXTENSION,
# then check that the installed files are still ours (else retry).
pkglibdir=$(pg_config --pkglibdir)
extdir="$(pg_config --sharedir)/extension"
ours_installed() {
    cmp -s "$work/src/eventstore.so" "$pkglibdir/eventstore.so" &&
        cmp -s "$work/src/eventstore.control" "$extdir/eventstore.control" &&
        for f in "$work"/src/sql/eventstore--*.sql; do
            cmp -s "$f" "$extdir/$(basename "$f")" || return 1
        done
}

export PGHOST="$sock" PGPORT="$port" PGUSER=postgres
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -d bench "$@"; }

echo "== cluster (port $port)"
chown -R postgres: "$work"
cluster_start() {
    if [ "$MALLOC_KEEP" = 1 ]; then
        # inherited by pg_ctl (runuser keeps the environment), so by the
        # postmaster and every backend
        export MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TOP_PAD_=16777216
    fi
    es_cluster_start "$work" "$port" \
        "shared_buffers = 1GB" \
        "max_wal_size = 16GB" \
        "checkpoint_timeout = 1h" \
        "# no background vacuum in the middle of a measured run" \
        "autovacuum = off"
}
for try in 1 2 3; do
    make -s -C "$work/src" install >>"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
    cluster_start
    createdb bench
    if psql_q -c 'CREATE EXTENSION eventstore' && ours_installed; then break; fi
    echo "   another build replaced the installed eventstore meanwhile (try $try): again"
    dropdb bench
    es_cluster_stop "$work"
    if [ $try = 3 ]; then echo "could not get our build installed" >&2; exit 1; fi
done

echo "== prefill: $((NSTREAMS * PREFILL)) + $((READ_STREAMS * READ_LEN)) events in each table"
psql_q -v nstreams=$NSTREAMS -v prefill_per_stream=$PREFILL \
    -v read_streams=$READ_STREAMS -v read_len=$READ_LEN \
    -f "$bench/append/setup.sql" >"$out/setup.log"

# The batch scripts carry one literal JSON array of BATCH events (": " with
# a space: pgbench would take ":42" for a variable).
events=$(awk -v n=$BATCH 'BEGIN {
    printf "[";
    for (i = 1; i <= n; i++)
        printf "%s{\"type\": \"Type\", \"data\": {\"amount\": %d, \"currency\": \"EUR\", \"note\": \"benchmark batch payload\"}, \"metadata\": {\"correlation_id\": \"batch-%d\", \"causation_id\": \"batch-%d\"}}", (i > 1 ? ", " : ""), i, i, i - 1;
    printf "]" }')
mkdir -p "$work/append"
for side in es plain; do
    sed -e "s/@BATCH@/$BATCH/g" -e "s|@EVENTS@|$events|" \
        "$bench/append/${side}_append_batch.sql.in" >"$work/append/${side}_append_batch.sql"
done

# --- measurement ----------------------------------------------------------------
raw="$out/raw.tsv"
: >"$raw"
declare -a CASES=()
declare -A C_GROUP C_DESC C_ALABEL C_A C_BLABEL C_B C_PROTO C_SYNC C_SECS C_UNIT C_MULT

# add_case id group description A-label A-script B-label B-script protocol sync seconds unit rows-per-tx
add_case() {
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $1 "* ]]; then return; fi
    CASES+=("$1")
    C_GROUP[$1]=$2; C_DESC[$1]=$3; C_ALABEL[$1]=$4; C_A[$1]=$5; C_BLABEL[$1]=$6; C_B[$1]=$7
    C_PROTO[$1]=$8; C_SYNC[$1]=$9; C_SECS[$1]=${10}; C_UNIT[$1]=${11}; C_MULT[$1]=${12}
}

# script path as it is named in the report
script_name() {
    local f=$1
    f=${f#"$bench/"}
    f=${f#"$work/"}
    echo "$f"
}
pgb_args() { # script protocol seconds
    echo "-n -c $CLIENTS -j $JOBS -T $3 -M $2 -D nstreams=$NSTREAMS -D clients=$CLIENTS -D read_streams=$READ_STREAMS -f $1 bench"
}

# CPU time (clock ticks) of the postmaster's exited children: when a run's
# backends exit, the postmaster reaps them and the kernel adds their user
# and system time to its cutime and cstime.  The difference across a run,
# divided by the transactions pgbench counted, is the backends' CPU per
# transaction: far less sensitive to the other load on this machine than
# throughput is.  (Background processes do not exit and are not counted.)
clk_tck=$(getconf CLK_TCK)
child_ticks() { awk '{ print $16 + $17 }' "/proc/$(head -n 1 "$pgdata/postmaster.pid")/stat"; }

# run_one case side(A|B) round -> appends "case side round tps cpu_us_per_tx" to raw.tsv
run_one() {
    local c=$1 side=$2 r=$3 script log tps t0 t1 ntx cpu
    if [ "$side" = A ]; then script=${C_A[$c]}; else script=${C_B[$c]}; fi
    log="$out/$c.$side.$r.txt"
    psql_q -c CHECKPOINT
    sleep 0.2
    t0=$(child_ticks)
    # shellcheck disable=SC2046
    if ! PGOPTIONS="-c synchronous_commit=${C_SYNC[$c]}" \
        pgbench $(pgb_args "$script" "${C_PROTO[$c]}" "${C_SECS[$c]}") >"$log" 2>&1; then
        echo "pgbench failed ($c $side round $r):" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    if ! grep -q '^number of failed transactions: 0 ' "$log"; then
        echo "failed transactions in $c $side round $r:" >&2
        grep -E 'failed|abort' "$log" >&2
        exit 1
    fi
    sleep 0.2
    t1=$(child_ticks)
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$log")
    ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
    cpu=$(awk -v d=$((t1 - t0)) -v n="$ntx" -v hz="$clk_tck" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$side" "$r" "$tps" "$cpu" >>"$raw"
    if [ "$side" = A ]; then label=${C_ALABEL[$c]}; else label=${C_BLABEL[$c]}; fi
    printf '   round %d  %-40s %10.1f tps %9.1f us backend CPU per tx\n' "$r" "$label" "$tps" "$cpu"
}

# run_case case: ROUNDS rounds, the A/B order alternating so that neither
# side always runs first after the checkpoint or on the fuller table
run_case() {
    local c=$1 r
    echo "== ${C_DESC[$c]} (-M ${C_PROTO[$c]}, synchronous_commit=${C_SYNC[$c]}, ${C_SECS[$c]} s x $ROUNDS rounds each)"
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then run_one "$c" A $r; run_one "$c" B $r
        else run_one "$c" B $r; run_one "$c" A $r; fi
    done
}

P="$bench/append"
ES=eventstore
PL="plain SQL"
if [ "$MAIN" = 1 ]; then
    add_case single_prep_on main "single-event append" \
        "$ES" "$P/es_append_event.sql" "$PL" "$P/plain_append_event.sql" prepared on "$SECS" events/s 1
    add_case single_prep_off main "single-event append" \
        "$ES" "$P/es_append_event.sql" "$PL" "$P/plain_append_event.sql" prepared off "$SECS" events/s 1
    add_case single_simple_on main "single-event append" \
        "$ES" "$P/es_append_event.sql" "$PL" "$P/plain_append_event.sql" simple on "$SHORT" events/s 1
    add_case single_simple_off main "single-event append" \
        "$ES" "$P/es_append_event.sql" "$PL" "$P/plain_append_event.sql" simple off "$SHORT" events/s 1
    add_case batch_prep_off main "$BATCH-event batch append" \
        "$ES" "$work/append/es_append_batch.sql" "$PL" "$work/append/plain_append_batch.sql" prepared off "$SHORT" events/s $BATCH
    add_case read_prep main "read of a $READ_LEN-event stream" \
        "$ES" "$P/es_read_stream.sql" "$PL" "$P/plain_read_stream.sql" prepared off "$SHORT" rows/s $READ_LEN
fi
if [ "$VARIANTS" = 1 ]; then
    add_case v_given_id variant "append: client-supplied event_id" \
        "append_event(..., event_id => gen_random_uuid())" "$P/es_append_event_id.sql" \
        "append_event (id generated inside)" "$P/es_append_event.sql" prepared off "$SHORT" events/s 1
    add_case v_plain_lock variant "append: baseline + per-stream lock" \
        "plain + pg_advisory_xact_lock" "$P/plain_append_event_lock.sql" \
        "plain" "$P/plain_append_event.sql" prepared off "$SHORT" events/s 1
    add_case v_read_count variant "read, rows counted in the server, not sent" \
        "count(*) FROM read_stream(...)" "$P/es_read_count.sql" \
        "count(*) of the plain query" "$P/plain_read_count.sql" prepared off "$SHORT" rows/s $READ_LEN
    add_case v_read_srf variant "read: baseline behind a PL/pgSQL SRF" \
        "plain query in a PL/pgSQL SRF" "$P/plain_read_srf.sql" \
        "plain query" "$P/plain_read_stream.sql" prepared off "$SHORT" rows/s $READ_LEN
fi

# Warm-up, not measured: the first runs after the prefill would otherwise
# also pay for creating WAL segments that later runs recycle.
echo "== warm-up (5 s per side, not measured)"
for f in "$P/es_append_event.sql" "$P/plain_append_event.sql"; do
    psql_q -c CHECKPOINT
    # shellcheck disable=SC2046
    pgbench $(pgb_args "$f" prepared 5) >"$out/warmup.$(basename "$f" .sql).txt" 2>&1
done

for c in "${CASES[@]}"; do run_case "$c"; done

if ! ours_installed; then
    echo "note: another build replaced the installed eventstore during the run (the server kept ours loaded)"
fi

# --- optional profile ---------------------------------------------------------------
# perf on this cluster's pgbench backends only (the machine is shared)

# Inclusive shares of eventstore.so's functions.  When another build has
# replaced the installed file meanwhile, perf sees the mapping as deleted
# and cannot name its functions: map the addresses with our build's symbol
# table (nm) and the mapping's base from the perf data.
es_symbols() { # perf.data
    local data=$1 map start pgoff
    map=$(perf script -i "$data" --show-mmap-events 2>/dev/null |
        grep -m 1 -E 'PERF_RECORD_MMAP2.*r-xp .*/eventstore\.so' || true)
    if [ -z "$map" ]; then echo "(no samples in eventstore.so)"; return; fi
    start=$(sed -E 's/.*\[(0x[0-9a-f]+)\(0x[0-9a-f]+\) @ (0x[0-9a-f]+) .*/\1/' <<<"$map")
    pgoff=$(sed -E 's/.*\[(0x[0-9a-f]+)\(0x[0-9a-f]+\) @ (0x[0-9a-f]+) .*/\2/' <<<"$map")
    nm -n --defined-only "$work/src/eventstore.so" | awk '$2 ~ /^[tT]$/ { print $1, $3 }' >"$work/syms.txt"
    perf report -i "$data" --children --sort dso,symbol -g none --stdio 2>/dev/null |
        grep -E '^ +[0-9].*eventstore\.so' |
        awk '{ pct = $1; sub("%", "", pct); sym = ""
               for (i = 1; i <= NF; i++) if ($i == "[.]") { sym = $(i + 1); break }
               print pct, sym }' |
        while read -r pct sym; do
            if [[ $sym == 0x* ]]; then
                local off=$((sym - start + pgoff)) name="?" a n
                while read -r a n; do
                    (( 16#$a <= off )) || break
                    name=$n
                done <"$work/syms.txt"
                sym=$name
            fi
            echo "$sym $pct"
        done |
        awk '{ s[$1] += $2 } END { for (k in s) if (s[k] >= 0.1) printf "%8.2f%%  %s\n", s[k], k }' |
        sort -rn | head -n 20 || true
}
profile_one() { # name script
    local name=$1 script=$2 data="$work/perf.$1.data" pids
    psql_q -c CHECKPOINT
    # shellcheck disable=SC2046
    PGOPTIONS="-c synchronous_commit=off" \
        pgbench $(pgb_args "$script" prepared "$SHORT") >"$out/profile.$name.pgbench.txt" 2>&1 &
    local pgb=$!
    sleep 2
    pids=$(psql -X -At -d bench -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = 'pgbench'")
    perf record -q -g -F 999 -p "$pids" -o "$data" -- sleep $((SHORT - 4)) >/dev/null 2>&1 || true
    wait $pgb
    {
        echo "## $name: $(script_name "$script"), inclusive (children) share of backend CPU"
        echo "($(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out/profile.$name.pgbench.txt") tps under perf)"
        perf report -i "$data" --children --sort symbol -g none --percent-limit 1 --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | grep -v ' 0x0000' | head -n 60 || true
        echo
        echo "## $name: self share"
        perf report -i "$data" --no-children --sort dso,symbol -g none --percent-limit 0.5 --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -n 40 || true
        echo
        echo "## $name: functions of eventstore.so, inclusive share"
        es_symbols "$data"
    } >"$out/profile.$name.txt"
    echo "   $out/profile.$name.txt"
}
if [ "$PROFILE" = 1 ]; then
    if command -v perf >/dev/null && perf record -q -o /dev/null -- true >/dev/null 2>&1; then
        echo "== perf profiles (synchronous_commit=off, -M prepared)"
        profile_one append_es "$P/es_append_event.sql"
        profile_one append_plain "$P/plain_append_event.sql"
        profile_one read_es "$P/es_read_stream.sql"
        profile_one read_plain "$P/plain_read_stream.sql"
        profile_one read_count_es "$P/es_read_count.sql"
        profile_one read_count_plpgsql_srf "$P/plain_read_srf_count.sql"
    else
        echo "== perf is not usable here: no profile"
    fi
fi

# --- report ---------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# values case side column: that column of raw.tsv (4: tps, 5: CPU us per tx)
values() { awk -F'\t' -v c="$1" -v s="$2" -v k="$3" '$1 == c && $2 == s { printf "%.0f\n", $k }' "$raw"; }
# ratios case column: the ratio of each round, A/B for tps and B/A for CPU,
# so > 1 always means A is better.  A and B of a round ran back to back, so
# the ratio is paired and a drift of the machine's load mostly cancels out.
ratios() {
    awk -F'\t' -v c="$1" -v k="$2" '$1 == c { t[$2 "," $3] = $k; if ($3 > n) n = $3 }
        END { for (r = 1; r <= n; r++)
                  printf "%.2f\n", k == 4 ? t["A," r] / t["B," r] : t["B," r] / t["A," r] }' "$raw"
}

table() { # group column(4: throughput, 5: CPU)
    local g=$1 k=$2 c what
    if [ "$k" = 4 ]; then what="throughput"; else what="backend CPU us per transaction"; fi
    if [ "$g" = main ]; then
        if [ "$k" = 4 ]; then
            echo "| measurement | protocol | synchronous_commit | eventstore | plain SQL | ratio eventstore/plain | ratio per round | eventstore tps per round | plain tps per round |"
        else
            echo "| measurement | protocol | synchronous_commit | eventstore | plain SQL | ratio plain/eventstore | ratio per round | eventstore per round | plain per round |"
        fi
        echo "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |"
    else
        echo "| variant | A | B | A $what | B $what | ratio | ratio per round | A per round | B per round |"
        echo "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |"
    fi
    for c in "${CASES[@]}"; do
        [ "${C_GROUP[$c]}" = "$g" ] || continue
        awk -v g="$g" -v k="$k" -v d="${C_DESC[$c]}" -v la="${C_ALABEL[$c]}" -v lb="${C_BLABEL[$c]}" \
            -v p="${C_PROTO[$c]}" -v s="${C_SYNC[$c]}" -v u="${C_UNIT[$c]}" -v m="${C_MULT[$c]}" \
            -v a="$(values "$c" A $k | median)" -v b="$(values "$c" B $k | median)" \
            -v ra="$(values "$c" A $k | paste -sd' ')" -v rb="$(values "$c" B $k | paste -sd' ')" \
            -v q="$(ratios "$c" $k | median)" -v qs="$(ratios "$c" $k | paste -sd' ')" \
            'BEGIN {
                if (k == 4) { va = sprintf("%.0f %s", a * m, u); vb = sprintf("%.0f %s", b * m, u) }
                else { va = sprintf("%.0f us", a); vb = sprintf("%.0f us", b) }
                if (g == "main")
                    printf "| %s | %s | %s | %s | %s | **%.2f** | %s | %s | %s |\n", d, p, s, va, vb, q, qs, ra, rb
                else
                    printf "| %s (-M %s, synchronous_commit=%s) | %s | %s | %s | %s | **%.2f** | %s | %s | %s |\n", d, p, s, la, lb, va, vb, q, qs, ra, rb
            }'
    done
}

t_end=$(date +%s)
pgver=$(psql -X -At -d bench -c 'SHOW server_version')
{
    echo "# eventstore benchmark results"
    echo
    echo "Produced by \`bash bench/append.sh\` (method: bench/README.md)."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); eventstore built from: $commit; PostgreSQL $pgver"
    echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, shared with other work (load average $load_start at start, $(cut -d" " -f1-3 /proc/loadavg) at end); pgbench runs on the same machine"
    echo "- $CLIENTS clients, $JOBS threads; $ROUNDS alternating A/B rounds per row"
    echo "- prefill: $((NSTREAMS * PREFILL)) events in $NSTREAMS streams + $READ_STREAMS streams of $READ_LEN events, the same rows in both tables"
    echo "- cluster: shared_buffers=1GB, fsync=on, autovacuum=off, max_wal_size=16GB; CHECKPOINT before every run$([ "$MALLOC_KEEP" = 1 ] && echo "; BENCH_MALLOC_KEEP=1: MALLOC_TRIM_THRESHOLD_=MALLOC_MMAP_THRESHOLD_=256MB, MALLOC_TOP_PAD_=16MB for every server process")"
    echo "- whole run: $((t_end - t_start)) s"
    if [ "$MAIN" = 1 ]; then
        echo
        echo "## Throughput"
        echo
        table main 4
        echo
        echo "Throughputs are medians of the rounds. The ratio is the median of the per-round ratios (A and B"
        echo "of a round ran back to back, so a drift of the machine's load mostly cancels); > 1 means"
        echo "eventstore is faster than the plain-SQL baseline. Rows per transaction: 1 (single), $BATCH"
        echo "(batch: events/s = tps x $BATCH), $READ_LEN (read: rows/s = tps x $READ_LEN)."
        echo
        echo "## Backend CPU per transaction"
        echo
        table main 5
        echo
        echo "CPU time of the run's backends (user + system, from the postmaster's reaped-children times)"
        echo "divided by the transactions pgbench counted; background processes (WAL writer, checkpointer)"
        echo "are not included. Medians of the rounds; ratio plain/eventstore per round, > 1 means eventstore"
        echo "uses less CPU. This figure is much less disturbed by other load on the machine than throughput."
    fi
    if [ "$VARIANTS" = 1 ]; then
        echo
        echo "## Diagnostic variants (each A against B in the same run)"
        echo
        echo "Medians of the rounds; the ratio is the median of the per-round ratios, A/B for throughput and"
        echo "B/A for CPU, so > 1 always means A is faster or cheaper."
        echo
        table variant 4
        echo
        table variant 5
    fi
    echo
    echo "## Commands"
    echo
    echo "Each run: \`CHECKPOINT\`, then, as user postgres on the throwaway cluster, from bench/, with"
    echo "\`PGOPTIONS='-c synchronous_commit=on|off'\` as in the table:"
    echo
    echo '```'
    for c in "${CASES[@]}"; do
        echo "# ${C_DESC[$c]}, synchronous_commit=${C_SYNC[$c]}"
        for f in "${C_A[$c]}" "${C_B[$c]}"; do
            echo "pgbench $(pgb_args "$(script_name "$f")" "${C_PROTO[$c]}" "${C_SECS[$c]}")"
        done
    done
    echo '```'
    echo
    echo "append/*_append_batch.sql are generated by append.sh from append/*_append_batch.sql.in"
    echo "(one literal JSON array of $BATCH events)."
    if [ "$PROFILE" = 1 ]; then
        for f in "$out"/profile.*.txt; do
            case $f in *.pgbench.txt) continue ;; esac
            echo
            echo '```'
            cat "$f"
            echo '```'
        done
    fi
} >"$RESULTS"

echo
if [ "$MAIN" = 1 ]; then table main 4; echo; table main 5; echo; fi
if [ "$VARIANTS" = 1 ]; then table variant 4; echo; table variant 5; echo; fi
echo "Written to ${RESULTS#"$here/"}; raw pgbench output in bench/out/append/ ($((t_end - t_start)) s)"
