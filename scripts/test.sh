#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test twice: in the normal build and in an
# AddressSanitizer + UndefinedBehaviorSanitizer build; then runs each libFuzzer target briefly
# (clang, build-fuzz; OW_FUZZ_SECONDS per target, default 12). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
jobs="$(nproc)"

echo "== build (RelWithDebInfo) =="
bash scripts/build.sh build
echo "== tests (RelWithDebInfo) =="
(cd build && ctest --output-on-failure --timeout 600 -j1)

echo "== build (ASan+UBSan) =="
OW_SANITIZE=ON bash scripts/build.sh build-asan
echo "== tests (ASan+UBSan) =="
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The engine benchmark's quick mode only proves the benchmark runs; under the sanitizers it is
# slow and proves nothing more, so it runs in the normal build only; valgrind cannot run ASan code.
(cd build-asan && ctest --output-on-failure --timeout 900 -j1 -E '^(bench_|valgrind_)')
echo "== fuzz (clang, libFuzzer + ASan+UBSan, ${OW_FUZZ_SECONDS:-12} s per target) =="
# Every parser of outside bytes, from its committed corpus (tests/fuzz/README.md). A finding fails
# the run; the input is in build-fuzz/artifacts/<target>/.
bash tests/fuzz/run.sh --seconds "${OW_FUZZ_SECONDS:-12}" --build build-fuzz
echo "== all tests passed (normal and ASan+UBSan builds, fuzz targets), jobs=$jobs =="
