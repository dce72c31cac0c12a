#!/usr/bin/env bash
# Benchmarks coalitiond with coalition-loadgen on the workload of
# /work/shared/bench/README.md (10,000 members with 1,000 points, 20
# partners, 80% awards / 20% redemptions, durable commit): closed loop with
# 1 client and with 64 clients, then 64 clients open loop at half the
# 64-client peak to show p99 latency at half load.  With --nodes 3 the same
# runs go to a three-node raft cluster on this machine (clients spread
# round-robin over the nodes, the 1-client run through node 1); --nodes 1,3
# does both and prints them side by side.  Release build in build-bench/
# (-O2, no sanitizers); node data and results in ./bench-out/.
#
# Partner security is on, as in production: the script makes a coalition
# admin key and a key pair for every partner (bench-out/keys-STAMP/), starts
# the nodes with --admin-public-key (and, for three nodes, their link keys),
# and the load generator signs every transaction as its partner (--key-dir):
# one Ed25519 signature per transaction, checked by the node.  With --auth
# api-key (one node only) the load goes the way a POS sends it instead: with
# an API key of partner P01, which the node signs for (one signature per
# batch); every award and redemption is then P01's.
#
#   scripts/bench.sh [--duration S] [--depth D] [--nodes LIST] [--auth MODE] [--pg] [--keep]
#     --duration S  seconds per run (default 10)
#     --depth D     requests in flight per client (default 1)
#     --nodes LIST  cluster sizes to run, 1 and/or 3, comma-separated (default 1)
#     --auth MODE   signed (default: the load generator signs each transaction)
#                   or api-key (the node signs; --nodes 1 only)
#     --pg          also run the PostgreSQL baseline (shared/bench/pg_baseline.sh)
#                   with DURATION=S, and print its SUMMARY line
#     --keep        keep the nodes' data directories
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=10
DEPTH=1
PG=0
KEEP=0
NODES_LIST=1
AUTH=signed
MEMBERS=10000
PARTNERS=20
BUILD=build-bench
OUT_DIR=bench-out
PG_BASELINE=$ROOT/../shared/bench/pg_baseline.sh
START_TIMEOUT_S=20

usage() {
    # The comment block at the top of this file.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
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
        NODES_LIST=${2:?--nodes needs 1, 3 or 1,3}
        shift 2
        ;;
    --auth)
        AUTH=${2:?--auth needs signed or api-key}
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
IFS=, read -r -a SIZES <<<"$NODES_LIST"
((${#SIZES[@]} > 0)) || {
    echo "bench: --nodes needs 1, 3 or 1,3" >&2
    exit 2
}
for size in "${SIZES[@]}"; do
    if [[ $size != 1 && $size != 3 ]]; then
        echo "bench: --nodes $NODES_LIST: sizes 1 and 3 are supported" >&2
        exit 2
    fi
    if [[ $AUTH == api-key && $size != 1 ]]; then
        echo "bench: --auth api-key runs on one node only (--nodes 1)" >&2
        exit 2
    fi
done
if [[ $AUTH != signed && $AUTH != api-key ]]; then
    echo "bench: --auth is signed or api-key" >&2
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

RESULTS=$OUT_DIR/results-$STAMP.txt
KEYS=$OUT_DIR/keys-$STAMP
NODE_PIDS=()  # of the nodes running now
DATA_DIRS=()  # to remove at the end unless --keep
NODES=        # client addresses of the nodes running now, comma-separated

# True if our child PID has exited (gone, or a zombie not yet reaped).
proc_exited() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    [[ $stat == Z* || $stat == X* ]]
}

# Stops every node started here: SIGTERM, then SIGKILL after 10 s.
stop_nodes() {
    local pid
    ((${#NODE_PIDS[@]} > 0)) || return 0
    for pid in "${NODE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    local deadline=$((SECONDS + 10))
    for pid in "${NODE_PIDS[@]}"; do
        while ! proc_exited "$pid"; do
            if ((SECONDS >= deadline)); then
                echo "bench: coalitiond $pid did not stop within 10 s; killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
        wait "$pid" 2>/dev/null || true
    done
    NODE_PIDS=()
}

cleanup() {
    local rc=$? dir
    stop_nodes
    if ((KEEP == 0)); then
        for dir in "${DATA_DIRS[@]}"; do
            rm -rf "$dir"
        done
        rm -rf "$KEYS"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_up ADDR PID LOG: until the node at ADDR answers status.
wait_up() {
    local addr=$1 pid=$2 log_file=$3 deadline=$((SECONDS + START_TIMEOUT_S))
    until "$BUILD/coalition" --node "$addr" --timeout-ms 1000 status >/dev/null 2>&1; do
        if proc_exited "$pid" || ((SECONDS >= deadline)); then
            tail -n 20 "$log_file" >&2
            echo "bench: coalitiond on $addr did not come up" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# make_keys: the coalition admin, the setup partner, P01.. and the three
# nodes' link keys (with the file of trusted node keys) in $KEYS.
make_keys() {
    local name i
    mkdir -p "$KEYS"
    local names=(admin SETUP node1 node2 node3)
    for ((i = 1; i <= PARTNERS; i++)); do
        names+=("$(printf 'P%02d' "$i")")
    done
    for name in "${names[@]}"; do
        "$BUILD/coalition" keygen --out "$KEYS/$name" >/dev/null
    done
    cat "$KEYS"/node{1,2,3}.pub >"$KEYS/trusted"
    ADMIN_PUB=$(<"$KEYS/admin.pub")
}

# wait_genesis ADDR: until the node at ADDR has applied the genesis entry
# (the admin key) that its leader proposes after the first election.
wait_genesis() {
    local addr=$1 deadline=$((SECONDS + START_TIMEOUT_S)) out seq
    while :; do
        out=$("$BUILD/coalition" --node "$addr" --json --timeout-ms 1000 status 2>/dev/null) || true
        seq=$(grep -oE '"applied_seq"[[:space:]]*:[[:space:]]*[0-9]+' <<<"$out" |
            grep -oE '[0-9]+$') || true
        [[ -n $seq && $seq -ge 1 ]] && return 0
        if ((SECONDS >= deadline)); then
            echo "bench: $addr did not apply the genesis entry: $out" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# start_single: one node (a single-node coalition) on free ports.
start_single() {
    local ports data log_file
    mapfile -t ports < <("$BUILD/freeport" 2)
    data=$OUT_DIR/data-$STAMP
    log_file=$OUT_DIR/node-$STAMP.log
    DATA_DIRS+=("$data")
    mkdir -p "$data"
    "$BUILD/coalitiond" --data "$data" --listen "127.0.0.1:${ports[0]}" \
        --raft "127.0.0.1:${ports[1]}" --admin-public-key "$ADMIN_PUB" \
        --set limits.partner_rps=0 "${NODE_AUTH[@]}" >"$log_file" 2>&1 &
    NODE_PIDS=("$!")
    NODES=127.0.0.1:${ports[0]}
    wait_up "$NODES" "$!" "$log_file"
    wait_genesis "$NODES"
}

# start_cluster3: three nodes on free ports that bootstrap one coalition;
# waits until they agree on a leader.
start_cluster3() {
    local dir=$OUT_DIR/cluster-$STAMP ports i boot='' pid
    mapfile -t ports < <("$BUILD/freeport" 6)
    DATA_DIRS+=("$dir/node1" "$dir/node2" "$dir/node3")
    mkdir -p "$dir"
    for i in 1 2 3; do
        boot+=${boot:+,}$i=127.0.0.1:${ports[2 * i - 1]}
    done
    NODES=
    NODE_PIDS=()
    for i in 1 2 3; do
        mkdir -p "$dir/node$i"
        "$BUILD/coalitiond" --id "$i" --data "$dir/node$i" \
            --listen "127.0.0.1:${ports[2 * i - 2]}" --raft "127.0.0.1:${ports[2 * i - 1]}" \
            --bootstrap "$boot" --admin-public-key "$ADMIN_PUB" --partner "node$i" \
            --partner-key "$KEYS/node$i.key" --trusted-keys "$KEYS/trusted" \
            --set limits.partner_rps=0 >"$dir/node$i.log" 2>&1 &
        NODE_PIDS+=("$!")
        NODES+=${NODES:+,}127.0.0.1:${ports[2 * i - 2]}
    done
    IFS=, read -r -a addrs <<<"$NODES"
    for i in 0 1 2; do
        wait_up "${addrs[$i]}" "${NODE_PIDS[$i]}" "$dir/node$((i + 1)).log"
    done
    local deadline=$((SECONDS + START_TIMEOUT_S)) out leader
    while :; do
        out=$("$BUILD/coalition" --node "${addrs[0]}" --json --timeout-ms 1000 status \
            2>/dev/null) || true
        leader=$(grep -oE '"leader_id"[[:space:]]*:[[:space:]]*[0-9]+' <<<"$out" |
            grep -oE '[0-9]+$') || true
        [[ -n $leader && $leader != 0 ]] && break
        if ((SECONDS >= deadline)); then
            for pid in 1 2 3; do
                tail -n 20 "$dir/node$pid.log" >&2
            done
            echo "bench: the three nodes elected no leader within ${START_TIMEOUT_S}s" >&2
            exit 1
        fi
        sleep 0.2
    done
    # Followers forward writes to the leader's client address, which every
    # node learns from the replicated directory shortly after the election.
    local addr n_addrs
    for addr in "${addrs[@]}"; do
        while :; do
            out=$("$BUILD/coalition" --node "$addr" --json --timeout-ms 1000 cluster status \
                2>/dev/null) || true
            n_addrs=$(grep -oE '"client_addr":"[^"]+"' <<<"$out" | wc -l) || true
            ((n_addrs == 3)) && break
            if ((SECONDS >= deadline)); then
                echo "bench: $addr does not list the three client addresses: $out" >&2
                exit 1
            fi
            sleep 0.1
        done
    done
    for addr in "${addrs[@]}"; do
        wait_genesis "$addr"
    done
    echo "bench: three nodes up ($NODES), leader node $leader; logs in $dir/"
    LEADER_NOTE="leader node $leader; 1-client run through node 1"
}

# load CONFIG NAME ARGS...: one loadgen run against $NODES; its RESULT line
# goes to the results, the human summary to the terminal.
declare -A RESULT_LINE OFFERED
load() {
    local config=$1 name=$2
    shift 2
    echo "bench: $config $name ..."
    local out
    out=$("$BUILD/coalition-loadgen" --node "$NODES" --members "$MEMBERS" \
        --partners "$PARTNERS" --duration "$DURATION" --depth "$DEPTH" "${LOAD_AUTH[@]}" "$@") || {
        printf '%s\n' "$out"
        echo "bench: $config $name failed" >&2
        exit 1
    }
    printf '%s\n' "$out" | grep -v '^RESULT' || true
    RESULT_LINE[$config/$name]=$(printf '%s\n' "$out" | grep '^RESULT')
    echo "RESULT config=$config run=$name ${RESULT_LINE[$config/$name]#RESULT }" |
        tee -a "$RESULTS"
}

field() {
    local line=$1 key=$2
    grep -o " $key=[^ ]*" <<<" $line" | head -n 1 | cut -d= -f2
}

# bench_config SIZE: start SIZE nodes, set up, the three runs, stop.
bench_config() {
    local size=$1 config
    LEADER_NOTE=
    if ((size == 1)); then
        config=node1
        start_single
    else
        config=nodes3
        start_cluster3
    fi
    echo "# $config: $size node(s) on this machine${LEADER_NOTE:+ ($LEADER_NOTE)}" |
        tee -a "$RESULTS"
    echo "bench: setup ($PARTNERS partners, $MEMBERS members with 1000 points) ..."
    "$BUILD/coalition-loadgen" --node "$NODES" --setup --members "$MEMBERS" \
        --partners "$PARTNERS" --clients 16 --depth 16 --key-dir "$KEYS" | tee -a "$RESULTS"
    if [[ $AUTH == api-key ]]; then
        local key
        key=$("$BUILD/coalition" --node "$NODES" --key-dir "$KEYS" apikey create --partner P01 \
            2>/dev/null) || {
            echo "bench: could not issue an API key for P01" >&2
            exit 1
        }
        LOAD_AUTH=(--api-key "$key" --api-partner P01)
    fi
    load "$config" c1 --clients 1
    load "$config" c64 --clients 64
    local peak half
    peak=$(field "${RESULT_LINE[$config/c64]}" tps)
    half=$((${peak%.*} / 2))
    ((half > 0)) || half=1
    OFFERED[$config/c64-half]=$half
    load "$config" c64-half --clients 64 --rate "$half"
    stop_nodes
}

make_keys
NODE_AUTH=()
LOAD_AUTH=(--key-dir "$KEYS")
if [[ $AUTH == api-key ]]; then
    NODE_AUTH=(--partner P01 --partner-key "$KEYS/P01.key")
fi
DATA_FS=$(df -T "$OUT_DIR" | awk 'NR==2 { print $2 }')
echo "# coalition bench $STAMP: $(nproc) cores, $(uname -r), data on $DATA_FS," \
    "${DURATION}s per run, depth $DEPTH, nodes $NODES_LIST, auth $AUTH" | tee "$RESULTS"
for size in "${SIZES[@]}"; do
    bench_config "$size"
done

echo
echo "=== Coalition Ledger, durable commit (${DURATION}s per run, depth $DEPTH, auth $AUTH) ==="
printf '%-8s %-10s %8s %10s %9s %8s %9s %9s %9s\n' nodes run clients offered tps errors \
    p50_ms p99_ms p999_ms | tee -a "$RESULTS"
for size in "${SIZES[@]}"; do
    config=$([[ $size == 1 ]] && echo node1 || echo nodes3)
    for name in c1 c64 c64-half; do
        line=${RESULT_LINE[$config/$name]}
        printf '%-8s %-10s %8s %10s %9s %8s %9.2f %9.2f %9.2f\n' "$size" "$name" \
            "$(field "$line" clients)" "${OFFERED[$config/$name]:-max}" "$(field "$line" tps)" \
            "$(field "$line" errors)" \
            "$(awk "BEGIN { print $(field "$line" p50_us) / 1000 }")" \
            "$(awk "BEGIN { print $(field "$line" p99_us) / 1000 }")" \
            "$(awk "BEGIN { print $(field "$line" p999_us) / 1000 }")" | tee -a "$RESULTS"
    done
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
