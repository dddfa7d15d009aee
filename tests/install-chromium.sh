#!/bin/sh
# tests/test_web.py drives kextlog web with Debian's headless Chromium and
# its chromium-driver: install them when they are missing.  Where that
# cannot be done the browser tests are skipped with the reason (and fail in
# CI, CI=true), so only CI stops here.
set -u
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && exit 0
fail() {
    echo "install-chromium: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "install-chromium: the browser tests will be skipped" >&2
    exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "chromium is not installed and there is no apt-get"
[ "$(id -u)" -eq 0 ] || fail "chromium is not installed; installing it needs root (apt-get install chromium chromium-driver)"
echo "install-chromium: apt-get install chromium chromium-driver" >&2
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
    || fail "apt-get install chromium chromium-driver failed"
command -v chromedriver >/dev/null 2>&1 || fail "no chromedriver after installing chromium-driver"
