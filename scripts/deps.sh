#!/usr/bin/env bash
# Installs what building and testing eventstore needs on Debian bookworm,
# skipping what is already there.  Sourced by test.sh and demo.sh.
es_install_deps() {
    local pkgs=(postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
                libipc-run-perl libtap-parser-sourcehandler-pgtap-perl
                postgresql-15-wal2json make gcc rsync)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
            echo "need root to install packages (run as root or install them yourself)" >&2
            return 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    export PATH="$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir):$PATH"
}
