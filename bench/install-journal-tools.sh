#!/bin/sh
# journalctl and systemd-analyze (Debian's systemd) and systemd-journal-remote,
# installed from Debian's packages when missing: the time-spec tests compare
# kextlog with them, and bench/versus_journal.py stores its workload in a
# journal too.  Where they cannot be installed, the tests that need them are
# skipped (and fail in CI, CI=true), so only CI stops here.
set -u
have() {
    command -v systemd-analyze && command -v journalctl \
        && { test -x /usr/lib/systemd/systemd-journal-remote || test -x /lib/systemd/systemd-journal-remote; }
} >/dev/null 2>&1
have && exit 0
fail() {
    echo "install-journal-tools: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "install-journal-tools: the tests that compare with journalctl will be skipped" >&2
    exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "systemd-journal-remote is not installed and there is no apt-get"
[ "$(id -u)" -eq 0 ] || fail "installing systemd-journal-remote needs root (apt-get install systemd systemd-journal-remote)"
echo "install-journal-tools: apt-get install systemd systemd-journal-remote" >&2
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd systemd-journal-remote; } \
    || fail "apt-get install systemd systemd-journal-remote failed"
have || fail "no journalctl, systemd-analyze or systemd-journal-remote after installing them"
