#!/bin/sh
# `make test` runs the store's tests on PostgreSQL too: install the server
# from Debian's packages when it is missing.  Where that cannot be done the
# PostgreSQL tests are skipped with the reason (and fail in CI, CI=true),
# so only CI stops here.
set -u
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
fail() {
    echo "install-postgres: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "install-postgres: the PostgreSQL tests will be skipped" >&2
    exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "PostgreSQL is not installed and there is no apt-get"
[ "$(id -u)" -eq 0 ] || fail "PostgreSQL is not installed; installing it needs root (apt-get install postgresql)"
echo "install-postgres: apt-get install postgresql" >&2
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
    || fail "apt-get install postgresql failed"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || fail "no initdb after installing postgresql"
