#!/usr/bin/env bash
# The fetch tests' servers (tests/servers/), for `make test` only: PostgreSQL + PostGIS from Debian (15 on
# Debian 12, the release's own on later ones) and a venv of their own, build/stac-venv, with
# stac-fastapi-pgstac, pypgstac and rangehttpserver pinned in tests/servers/requirements.txt (test
# infrastructure, kept out of the project's venv; `make demo` does not need them). Idempotent. Where they
# cannot be installed the fetch tests skip with the reason, except under CI=true, where this fails.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "${STARS_NO_SERVERS:-0}" = "1" ] && exit 0
fail() {
    echo "test-servers: $1" >&2
    [ "${CI:-}" = "true" ] && exit 1
    echo "test-servers: the fetch tests will skip" >&2
    exit 0
}
pg=""
for v in 15 16 17 18; do
    dpkg-query -W -f='${Status}' "postgresql-$v-postgis-3" 2>/dev/null | grep -q "install ok installed" && pg=$v && break
done
if [ -z "$pg" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    for attempt in cached updated; do  # a fresh machine's apt lists may be empty until an update
        for v in 15 16 17 18; do
            apt-cache show "postgresql-$v-postgis-3" >/dev/null 2>&1 && pg=$v && break
        done
        [ -n "$pg" ] || [ "$attempt" = updated ] || $SUDO apt-get update -qq
        [ -z "$pg" ] || break
    done
    if [ -n "$pg" ]; then
        echo "test-servers: installing postgresql-$pg and postgresql-$pg-postgis-3 (the fetch tests' STAC server)"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-$pg" "postgresql-$pg-postgis-3" \
            || fail "apt-get could not install postgresql-$pg-postgis-3"
    else
        fail "no postgresql-*-postgis-3 package in apt's sources"
    fi
fi
SERVERS=build/stac-venv
if [ ! -f "$SERVERS/.stars-setup" ] || [ tests/servers/requirements.txt -nt "$SERVERS/.stars-setup" ]; then
    echo "test-servers: making $SERVERS (the fetch tests' STAC and asset servers)"
    /usr/bin/python3 -m venv --clear "$SERVERS" && \
        "$SERVERS/bin/pip" install -q --disable-pip-version-check -r tests/servers/requirements.txt \
        || fail "the pinned servers (tests/servers/requirements.txt) did not install into $SERVERS"
    touch "$SERVERS/.stars-setup"
fi
