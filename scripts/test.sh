#!/usr/bin/env bash
# Builds Coalition Ledger with AddressSanitizer, UndefinedBehaviorSanitizer
# and warnings as errors in build-test/, then runs every test (the cmocka unit
# tests and the process tests that start real nodes) with ctest, then runs
# each fuzz target briefly (scripts/fuzz.sh).  Exits non-zero if the build,
# any test or any fuzz target fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

scripts/deps.sh

BUILD=${BUILD:-build-test}
JOBS=${JOBS:-2}

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCOALITION_SANITIZE=ON -DCOALITION_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ctest's own timeout per test is 300 s (CMakeLists.txt); the whole run must
# stay well under 20 minutes on 2 cores.
cd "$BUILD"
ctest --output-on-failure --timeout 300 "$@"

# Then a little fuzzing (scripts/fuzz.sh: clang build in build-fuzz, every
# target FUZZ_SECONDS seconds, 10 by default; 0 skips it).
cd "$ROOT"
if [[ ${FUZZ_SECONDS:-10} != 0 ]]; then
    scripts/fuzz.sh --seconds "${FUZZ_SECONDS:-10}"
fi
