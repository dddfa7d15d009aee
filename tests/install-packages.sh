#!/bin/sh
# What the tests need from Debian's packages, installed when missing, so
# that no test has to skip for want of it: `make test` (and so CI) and
# `make bench` run this first.  Where that cannot be done, the tests that
# need it are skipped with the reason, and in CI (CI=true) they fail: so
# only CI stops here.
set -u

# command or file the tests use, and the package that has it
NEEDS="
/usr/lib/postgresql/*/bin/initdb postgresql
setpriv util-linux
runuser util-linux
dmesg util-linux
mount mount
systemd-analyze systemd
/usr/share/zoneinfo/Europe/Berlin tzdata
sqlite3 sqlite3
"

fail() {
    echo "install-packages: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "install-packages: the tests that need them will be skipped" >&2
    exit 0
}

have() {
    case "$1" in
        /*) ls $1 >/dev/null 2>&1 ;;  # unquoted: a pattern
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

missing=$(echo "$NEEDS" | while read -r need package; do
    [ -n "$need" ] && ! have "$need" && echo "$package"
done | sort -u | tr '\n' ' ')
[ -z "$missing" ] && exit 0
command -v apt-get >/dev/null 2>&1 || fail "missing $missing, and there is no apt-get"
[ "$(id -u)" -eq 0 ] || fail "missing $missing; installing needs root (apt-get install $missing)"
echo "install-packages: apt-get install $missing" >&2
# shellcheck disable=SC2086
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } \
    || fail "apt-get install $missing failed"
echo "$NEEDS" | while read -r need package; do
    [ -z "$need" ] || have "$need" || fail "no $need after installing $package"
done
