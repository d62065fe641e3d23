#!/usr/bin/env bash
# Runs every benchmark of eventstore, one after the other (about 35 minutes
# on 2 cores): appends and stream reads (append.sh), the global feed and
# the registry's cost (feed.sh), and logical decoding against wal2json and
# test_decoding (decoding.sh).  Each installs what it needs, uses its own
# throwaway cluster, and writes its figures: bench/results-append.md,
# bench/FEED.md, bench/DECODING.md.
#
#   bench/run.sh                 all of them
#   bench/run.sh feed decoding   some of them
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
status=0
for b in "${@:-append feed decoding projection}"; do
    for name in $b; do
        echo "=== bench/$name.sh"
        bash "$here/$name.sh" || { echo "bench/$name.sh failed"; status=1; }
    done
done
exit $status
