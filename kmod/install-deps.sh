#!/bin/sh
# `make kmod-test` boots Debian's kernel in qemu with the modules built
# against its headers: install the kernel image and headers, qemu and a
# static busybox from Debian's packages when one is missing.  Where that
# cannot be done the test is skipped with the reason (and fails in CI,
# CI=true), so only CI stops here.
set -u
have() {
    kver=$(make -s --no-print-directory -C "$(dirname "$0")" kernel-version) && [ -n "$kver" ] &&
        [ -e "/boot/vmlinuz-$kver" ] && [ -e "/lib/modules/$kver/build/Makefile" ] &&
        command -v qemu-system-x86_64 >/dev/null 2>&1 && [ -x /bin/busybox ] &&
        [ -e /usr/lib/x86_64-linux-gnu/libc.a ]
}
have && exit 0
fail() {
    echo "kmod install-deps: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "kmod install-deps: the kernel module test will be skipped" >&2
    exit 0
}
PACKAGES="linux-image-amd64 linux-headers-amd64 qemu-system-x86 busybox-static libc6-dev"
command -v apt-get >/dev/null 2>&1 || fail "no apt-get to install $PACKAGES"
[ "$(id -u)" -eq 0 ] || fail "installing $PACKAGES needs root"
echo "kmod install-deps: apt-get install $PACKAGES" >&2
{ apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES; } ||
    fail "apt-get install $PACKAGES failed"
have || fail "the kernel image, its headers, qemu or busybox are still missing after the install"
