#!/usr/bin/env bash
# Diagnostic for bench/FEED.md: is read_all's extra CPU in a full catch-up
# the C library handing each page's tuplestore memory back to the kernel
# and faulting it in again?  Loads 200k events, runs the catch-up readers
# (es, plain, plain_srf: CPU ms and minor page faults per pass), restarts
# the cluster with glibc's trimming and mmap thresholds raised through the
# environment, and runs them again.  ~3 minutes.
#
#   bash bench/feed/malloc_trim.sh          (as root)
BENCH_NAME=malloc_trim
. "$(dirname "$0")/common.sh"
bench_build
bench_cluster
bench_extension -f "$bench/feed/load.sql" -f "$bench/feed/catchup.sql"
q -c "CALL feedbench.load(1, 2000, 10, 10, 0, 1, 100)"
q -c "VACUUM ANALYZE eventstore.events"
passes() {
    qa -c "SELECT feedbench.catchup('es', 'all'), feedbench.catchup('plain', 'all'), feedbench.catchup('plain_srf', 'all')" >/dev/null
    for r in 1 2 3; do
        for rd in es plain plain_srf; do
            qa -F ' ' -c "SELECT '$1', '$rd', events, round(cpu_ms) || ' ms cpu', minflt || ' minor faults' FROM feedbench.catchup('$rd', 'all')"
        done
    done
}
passes "glibc defaults:"
runuser -u postgres -- pg_ctl -D "$work/data" -m fast -w stop >/dev/null
runuser -u postgres -- env MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=67108864 MALLOC_MMAP_THRESHOLD_=1073741824 \
    pg_ctl -D "$work/data" -w start -l "$work/server.log" >/dev/null
passes "no trimming:"
