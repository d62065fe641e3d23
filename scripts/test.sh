#!/usr/bin/env bash
# Runs every test suite of eventstore: installs what is missing, builds with
# -Wall -Wextra -Werror, installs the extension, then runs the pg_regress
# (pgTAP), isolation and Perl TAP suites as the postgres user in a copy of
# the tree.  Ends with "N passed, N failed".
#
#   scripts/test.sh              all suites
#   scripts/test.sh regress      one suite: regress | isolation | tap
#   EXTRA_CFLAGS=-DUSE_ASSERT_CHECKING scripts/test.sh
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/deps.sh"
es_install_deps || exit 1

suites=("${@:-regress isolation tap}")
suites=(${suites[*]})

# Build and test in a private copy: parallel runs never share object files,
# and the postgres user owns everything it writes.
work=$(mktemp -d /tmp/eventstore-test.XXXXXX)
rsync -a --exclude .git --exclude tmp_check --exclude tmp_check_iso --exclude results \
    --exclude output_iso --exclude '*.o' --exclude '*.so' --exclude '*.bc' "$here/" "$work/"
cd "$work"
make -s PG_CFLAGS="-Wall -Wextra -Werror ${EXTRA_CFLAGS:-}" || { echo "0 passed, 1 failed"; exit 1; }
make -s install >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
chown -R postgres: "$work"
chmod 755 "$work"

passed=0
failed=0
status=0

# The layering check counts as one test: no cycle in the file call graph.
echo "=== layering"
if bash "$work/scripts/check-layering.sh"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
as_pg() { runuser -u postgres -- env -C "$work" PATH="$PATH" "$@"; }

for s in "${suites[@]}"; do
    echo "=== $s"
    case "$s" in
        regress)
            as_pg make -s installcheck ISOLATION= TAP_TESTS= > "$work/$s.log" 2>&1; rc=$?
            cat "$work/$s.log"
            p=$(grep -cE '\.\.\. ok' "$work/$s.log")
            f=$(grep -cE '\.\.\. FAILED' "$work/$s.log")
            [ $rc -ne 0 ] && [ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
            ;;
        isolation)
            as_pg make -s installcheck REGRESS= TAP_TESTS= > "$work/$s.log" 2>&1; rc=$?
            cat "$work/$s.log"
            p=$(grep -cE '\.\.\. ok' "$work/$s.log")
            f=$(grep -cE '\.\.\. FAILED' "$work/$s.log")
            [ $rc -ne 0 ] && [ -f "$work/output_iso/regression.diffs" ] && cat "$work/output_iso/regression.diffs"
            ;;
        tap)
            if ls "$work"/test/t/*.pl >/dev/null 2>&1; then
                as_pg make -s installcheck REGRESS= ISOLATION= PROVE_FLAGS="-v" > "$work/$s.log" 2>&1; rc=$?
                cat "$work/$s.log"
                p=$(grep -cE '^ok [0-9]+' "$work/$s.log")
                f=$(grep -E '^not ok [0-9]+' "$work/$s.log" | grep -vc '# TODO')
                if [ $rc -ne 0 ]; then
                    for l in "$work"/tmp_check/log/*; do echo "--- $l"; tail -n 50 "$l"; done
                fi
            else
                rc=0; p=0; f=0
            fi
            ;;
        *) echo "unknown suite $s"; rc=1; p=0; f=1 ;;
    esac
    # a missing or unreadable log counts as a failure, never as a pass
    [ -s "$work/$s.log" ] || { rc=1; echo "no output from suite $s"; }
    p=${p:-0}; f=${f:-0}
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)); failed=$((failed + f))
    [ $rc -ne 0 ] && status=1
done

[ "$passed" -eq 0 ] && { echo "no test passed: treating the run as failed"; status=1; }
[ $status -eq 0 ] && rm -rf "$work" || echo "test tree kept in $work"
echo "$passed passed, $failed failed"
exit $status
