#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) in
# build-fuzz/ and runs each for a bounded time, starting from a temporary copy
# of its seed corpus tests/fuzz/corpus/<target> and of the reproducers kept
# in tests/fuzz/crashes/<target>-* (new inputs the fuzzer finds are never
# written into the source tree).  Exits non-zero if the build
# fails or any target crashes, leaks, times out or fails a check; the
# reproducer's path is printed and it is kept.
#
# Usage: scripts/fuzz.sh [--seconds N] [--target NAME]... [--keep-corpus DIR]
#   --seconds N        run each target N seconds (default 60)
#   --target NAME      run only NAME (frame, request, rules, http, or fuzz_NAME);
#                      may be repeated; default: every tests/fuzz/fuzz_*.c
#   --keep-corpus DIR  grow the corpus in DIR/<target> (outside git) and keep
#                      it for the next run, instead of a throw-away copy
# Environment: BUILD (default build-fuzz), JOBS (default 2), CC (default
# clang).  Replay one input: build-fuzz/fuzz_<target> FILE.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() {
    sed -n '/^# Usage:/,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

SECONDS_EACH=60
TARGETS=()
KEEP=""
while (($# > 0)); do
    case $1 in
    --seconds)
        [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || usage
        SECONDS_EACH=$2
        shift 2
        ;;
    --target)
        [[ $# -ge 2 ]] || usage
        TARGETS+=("${2#fuzz_}")
        shift 2
        ;;
    --keep-corpus)
        [[ $# -ge 2 ]] || usage
        KEEP=$2
        shift 2
        ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
done

if ((${#TARGETS[@]} == 0)); then
    for src in tests/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        TARGETS+=("${name#fuzz_}")
    done
fi
for t in "${TARGETS[@]}"; do
    if [[ ! -f tests/fuzz/fuzz_$t.c ]]; then
        echo "fuzz: no target '$t' (tests/fuzz/fuzz_$t.c)" >&2
        exit 2
    fi
done

# Largest input per target: a frame stream holds at least one largest frame
# (1 MiB payload + 4-byte header) after the 4 parameter bytes of fuzz_frame;
# a request or a rule set is far smaller than a frame.
max_len() {
    case $1 in
    frame) echo $((1048576 + 4 + 4)) ;;
    *) echo 65536 ;;
    esac
}

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null ||
    [[ ! -f $("$CC" -print-file-name=libclang_rt.fuzzer-x86_64.a) ]]; then
    echo "fuzz: needs clang and libFuzzer (Debian: clang libclang-rt-14-dev); run scripts/deps.sh as root" >&2
    exit 1
fi

BUILD=${BUILD:-build-fuzz}
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCOALITION_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]/#/fuzz_}"

WORK=$(mktemp -d /tmp/coalition-fuzz.XXXXXX)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${TARGETS[@]}"; do
    if [[ -n $KEEP ]]; then
        corpus=$KEEP/$t
    else
        corpus=$WORK/corpus/$t
    fi
    mkdir -p "$corpus" "$WORK/artifacts/$t"
    if [[ -d tests/fuzz/corpus/$t ]]; then
        cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    # Every reproducer kept in tests/fuzz/crashes (named <target>-...) runs
    # again first: a finding once fixed stays fixed.
    for f in tests/fuzz/crashes/"$t"-*; do
        [[ -f $f ]] && cp "$f" "$corpus/crash-$(basename "$f")"
    done
    log=$WORK/fuzz_$t.log
    echo "fuzz: fuzz_$t for ${SECONDS_EACH}s (corpus $corpus, log $log)"
    rc=0
    "$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$WORK/artifacts/$t/" "$corpus" >"$log" 2>&1 || rc=$?
    # The last status line: executions, coverage (cov: edges, ft: features),
    # corpus size and speed.
    grep -E '^#[0-9]+' "$log" | tail -n 1 | sed "s/^/fuzz: fuzz_$t: /" || true
    artifacts=$(find "$WORK/artifacts/$t" -type f)
    if ((rc != 0)) || [[ -n $artifacts ]]; then
        failed+=("$t")
        grep -E -A 30 '^==[0-9]+==ERROR|runtime error|check failed|deadly signal' "$log" |
            head -n 60 >&2 || true
        echo "fuzz: fuzz_$t FAILED (exit $rc); log: $log" >&2
        for a in $artifacts; do
            echo "fuzz: reproducer: $a  (replay: $BUILD/fuzz_$t $a)" >&2
        done
    fi
done

if ((${#failed[@]} > 0)); then
    echo "fuzz: failed: ${failed[*]}; kept $WORK" >&2
    exit 1
fi
rm -rf "$WORK"
echo "fuzz: ${TARGETS[*]}: no crash in ${SECONDS_EACH}s each"
