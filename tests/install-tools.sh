#!/bin/sh
# `make test` runs the kernel side's C tools too: clang with libFuzzer and the
# sanitizer runtimes (kext/fuzz, the static analyzer in `make -C kext
# check`), llvm (llvm-profdata, llvm-cov: coverage figures), and spin (the
# protocol model, kext/model).  Installs from Debian's packages what is
# missing.  Where that cannot be done the targets that need a tool say so and
# are skipped, except in CI (CI=true), where a missing tool is a failure.
set -u
fuzzer_works() {
    command -v clang >/dev/null 2>&1 || return 1
    dir=$(mktemp -d) || return 1
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
        > "$dir/t.c"
    clang -fsanitize=fuzzer,address,undefined "$dir/t.c" -o "$dir/t" >/dev/null 2>&1
    ok=$?
    rm -rf "$dir"
    return $ok
}
present() {
    fuzzer_works && command -v llvm-profdata >/dev/null 2>&1 && command -v llvm-cov >/dev/null 2>&1 \
        && command -v spin >/dev/null 2>&1
}
present && exit 0
fail() {
    echo "install-tools: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "install-tools: the C fuzzers, the static analyzer or the model check will be skipped" >&2
    exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "clang, libFuzzer, llvm or spin is missing and there is no apt-get"
[ "$(id -u)" -eq 0 ] || fail "clang, libFuzzer, llvm or spin is missing; installing them needs root"
echo "install-tools: apt-get install clang libclang-rt-dev llvm spin" >&2
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    clang libclang-rt-dev llvm spin; } || fail "apt-get install failed"
present || fail "clang cannot build a libFuzzer target, or llvm or spin is missing, after installing them"
