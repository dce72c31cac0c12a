#!/usr/bin/env bash
# Benchmarks one coalitiond with coalition-loadgen on the workload of
# /work/shared/bench/README.md (10,000 members with 1,000 points, 20
# partners, 80% awards / 20% redemptions, durable commit): closed loop with
# 1 client and with 64 clients, then 64 clients open loop at half the
# 64-client peak to show p99 latency at half load.  Release build in
# build-bench/ (-O2, no sanitizers); node data and results in ./bench-out/.
#
#   scripts/bench.sh [--duration S] [--depth D] [--pg] [--keep] [--nodes N]
#     --duration S  seconds per run (default 10)
#     --depth D     requests in flight per client (default 1)
#     --pg          also run the PostgreSQL baseline (shared/bench/pg_baseline.sh)
#                   with DURATION=S, and print its SUMMARY line
#     --keep        keep the node's data directory
#     --nodes N     cluster size; only 1 is supported for now
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=10
DEPTH=1
PG=0
KEEP=0
NODES=1
MEMBERS=10000
PARTNERS=20
BUILD=build-bench
OUT_DIR=bench-out
PG_BASELINE=$ROOT/../shared/bench/pg_baseline.sh

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

while (($# > 0)); do
    case $1 in
    --duration)
        DURATION=${2:?--duration needs seconds}
        shift 2
        ;;
    --depth)
        DEPTH=${2:?--depth needs a number}
        shift 2
        ;;
    --pg)
        PG=1
        shift
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    --nodes)
        NODES=${2:?--nodes needs a number}
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "bench: unknown option $1" >&2
        usage >&2
        exit 2
        ;;
    esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || {
    echo "bench: --duration must be a whole number of seconds >= 1" >&2
    exit 2
}
[[ $DEPTH =~ ^[0-9]+$ && $DEPTH -ge 1 ]] || {
    echo "bench: --depth must be >= 1" >&2
    exit 2
}
if [[ $NODES != 1 ]]; then
    echo "bench: --nodes $NODES: not yet supported (one node only for now)" >&2
    exit 2
fi

scripts/deps.sh
echo "bench: building (release, -O2, no sanitizers) in $BUILD/ ..."
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
if ! {
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
        -DCOALITION_SANITIZE=OFF -DCOALITION_WERROR=OFF &&
        cmake --build "$BUILD" -j2 --target coalitiond coalition_cli coalition-loadgen freeport
} >"$OUT_DIR/build-$STAMP.log" 2>&1; then
    tail -n 40 "$OUT_DIR/build-$STAMP.log" >&2
    echo "bench: build failed (see $OUT_DIR/build-$STAMP.log)" >&2
    exit 1
fi

PORT=$("$BUILD/freeport")
NODE=127.0.0.1:$PORT
DATA=$OUT_DIR/data-$STAMP
LOG=$OUT_DIR/node-$STAMP.log
RESULTS=$OUT_DIR/results-$STAMP.txt
NODE_PID=

# True if our child PID has exited (gone, or a zombie not yet reaped).
proc_exited() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    [[ $stat == Z* || $stat == X* ]]
}

stop_node() {
    [[ -n $NODE_PID ]] || return 0
    kill -TERM "$NODE_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while ! proc_exited "$NODE_PID"; do
        if ((SECONDS >= deadline)); then
            echo "bench: coalitiond did not stop within 10 s; killing it" >&2
            kill -KILL "$NODE_PID" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=
}

cleanup() {
    local rc=$?
    stop_node
    if ((KEEP == 0)); then
        rm -rf "$DATA"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$DATA"
"$BUILD/coalitiond" --data "$DATA" --listen "$NODE" >"$LOG" 2>&1 &
NODE_PID=$!
deadline=$((SECONDS + 15))
until "$BUILD/coalition" --node "$NODE" status >/dev/null 2>&1; do
    if ! kill -0 "$NODE_PID" 2>/dev/null || ((SECONDS >= deadline)); then
        tail -n 20 "$LOG" >&2
        echo "bench: coalitiond did not come up" >&2
        exit 1
    fi
    sleep 0.1
done

{
    echo "# coalition bench $STAMP: $(nproc) cores, $(uname -r), data on" \
        "$(df -T "$DATA" | awk 'NR==2 { print $2 }'), ${DURATION}s per run, depth $DEPTH"
} | tee "$RESULTS"

echo "bench: setup ($PARTNERS partners, $MEMBERS members with 1000 points) ..."
"$BUILD/coalition-loadgen" --node "$NODE" --setup --members "$MEMBERS" --partners "$PARTNERS" \
    --clients 16 --depth 16 | tee -a "$RESULTS"

# load NAME ARGS...: one loadgen run; its RESULT line goes to results, the
# human summary to the terminal.
declare -A RESULT_LINE
load() {
    local name=$1
    shift
    echo "bench: $name ..."
    local out
    out=$("$BUILD/coalition-loadgen" --node "$NODE" --members "$MEMBERS" \
        --partners "$PARTNERS" --duration "$DURATION" --depth "$DEPTH" "$@") || {
        printf '%s\n' "$out"
        echo "bench: $name failed" >&2
        exit 1
    }
    printf '%s\n' "$out" | grep -v '^RESULT' || true
    RESULT_LINE[$name]=$(printf '%s\n' "$out" | grep '^RESULT')
    echo "RESULT run=$name ${RESULT_LINE[$name]#RESULT }" | tee -a "$RESULTS"
}

field() {
    local line=$1 key=$2
    grep -o " $key=[^ ]*" <<<" $line" | head -n 1 | cut -d= -f2
}

load c1 --clients 1
load c64 --clients 64
PEAK=$(field "${RESULT_LINE[c64]}" tps)
HALF=$((${PEAK%.*} / 2))
((HALF > 0)) || HALF=1
load c64-half --clients 64 --rate "$HALF"

stop_node

echo
echo "=== Coalition Ledger, one node, durable commit (${DURATION}s per run, depth $DEPTH) ==="
printf '%-10s %8s %10s %9s %8s %9s %9s %9s\n' run clients offered tps errors p50_ms p99_ms \
    p999_ms | tee -a "$RESULTS"
for name in c1 c64 c64-half; do
    line=${RESULT_LINE[$name]}
    offered=max
    [[ $name == c64-half ]] && offered=$HALF
    printf '%-10s %8s %10s %9s %8s %9.2f %9.2f %9.2f\n' "$name" "$(field "$line" clients)" \
        "$offered" "$(field "$line" tps)" "$(field "$line" errors)" \
        "$(awk "BEGIN { print $(field "$line" p50_us) / 1000 }")" \
        "$(awk "BEGIN { print $(field "$line" p99_us) / 1000 }")" \
        "$(awk "BEGIN { print $(field "$line" p999_us) / 1000 }")" | tee -a "$RESULTS"
done

if ((PG == 1)); then
    if [[ ! -x $PG_BASELINE && ! -f $PG_BASELINE ]]; then
        echo "bench: --pg: $PG_BASELINE not found" >&2
        exit 1
    fi
    echo
    echo "bench: PostgreSQL baseline (DURATION=$DURATION) ..."
    PG_OUT=$OUT_DIR/pg-$STAMP.log
    DURATION=$DURATION bash "$PG_BASELINE" 2>&1 | tee "$PG_OUT" | grep -v '^SUMMARY'
    grep '^SUMMARY' "$PG_OUT" | tail -n 1 | tee -a "$RESULTS"
fi
echo
echo "bench: results in $RESULTS"
