#!/bin/sh
# What the tests, the C tools, the kernel module test and the benchmarks need
# from Debian's packages, installed when missing, so that nothing has to skip
# for want of it.  `make test` (and so CI), `make kmod-test`, `make check`,
# `make fuzz` and `make bench` run it first with the groups they need:
#
#   tests/install-packages.sh [tests] [tools] [kmod] [journal] [web]
#
# Where that cannot be done, what needs the package is skipped with the
# reason, and in CI (CI=true) it fails: so only CI stops here.
set -u

# Per group: what is needed (a command, a path pattern, or @check below) and
# the package that has it.
tests="
/usr/lib/postgresql/*/bin/initdb postgresql
setpriv util-linux
runuser util-linux
dmesg util-linux
mount mount
systemd-analyze systemd
journalctl systemd
/usr/share/zoneinfo/Europe/Berlin tzdata
sqlite3 sqlite3
"
# clang with libFuzzer and the sanitizers (kext/fuzz, the static analyzer),
# llvm (coverage figures) and spin (the protocol model, kext/model).
tools="
@fuzzer clang
@fuzzer libclang-rt-dev
llvm-profdata llvm
llvm-cov llvm
spin spin
"
# Debian's kernel and its headers, qemu and a static busybox (make kmod-test).
kmod="
@kernel linux-image-amd64
@kernel linux-headers-amd64
qemu-system-x86_64 qemu-system-x86
/bin/busybox busybox-static
/usr/lib/x86_64-linux-gnu/libc.a libc6-dev
"
# systemd-journal-remote: the time-spec tests and bench/versus_journal.py.
journal="
systemd-analyze systemd
journalctl systemd
/lib/systemd/systemd-journal-remote systemd-journal-remote
"
# Headless Chromium and its WebDriver (tests/test_web.py drives kextlog web).
web="
chromium chromium
chromedriver chromium-driver
"

fail() {
    echo "install-packages: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "install-packages: what needs them will be skipped" >&2
    exit 0
}

# clang can build a libFuzzer target with the sanitizers.
fuzzer() {
    dir=$(mktemp -d) || return 1
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
        > "$dir/t.c"
    clang -fsanitize=fuzzer,address,undefined "$dir/t.c" -o "$dir/t" >/dev/null 2>&1
    ok=$?
    rm -rf "$dir"
    return $ok
}

# The kernel of Debian's headers package, booted by kmod-test, and its headers.
kernel() {
    kver=$(make -s --no-print-directory -C "$(dirname "$0")/../kmod" kernel-version 2>/dev/null)
    [ -n "$kver" ] && [ -e "/boot/vmlinuz-$kver" ] && [ -e "/lib/modules/$kver/build/Makefile" ]
}

have() {
    case "$1" in
        @*) "${1#@}" ;;
        /*) ls $1 >/dev/null 2>&1 ;;  # unquoted: a pattern
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

[ $# -gt 0 ] || set -- tests
needs=""
for group in "$@"; do
    case "$group" in
        tests | tools | kmod | journal | web) eval "needs=\"\$needs\$$group\"" ;;
        *) echo "install-packages: unknown group $group" >&2; exit 2 ;;
    esac
done

missing=$(echo "$needs" | while read -r need package; do
    [ -n "$need" ] && ! have "$need" && echo "$package"
done | sort -u | tr '\n' ' ')
missing=${missing% }
[ -z "$missing" ] && exit 0
command -v apt-get >/dev/null 2>&1 || fail "missing $missing, and there is no apt-get"
[ "$(id -u)" -eq 0 ] || fail "missing $missing; installing needs root (apt-get install $missing)"
echo "install-packages: apt-get install $missing" >&2
# shellcheck disable=SC2086
{ apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } ||
    fail "apt-get install $missing failed"
still=$(echo "$needs" | while read -r need package; do
    [ -n "$need" ] && ! have "$need" && echo "$need"
done | tr '\n' ' ')
still=${still% }
[ -z "$still" ] || fail "still no $still after installing $missing"
