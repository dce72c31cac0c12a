#!/usr/bin/env bash
# Runs a local Coalition Ledger cluster of N coalitiond nodes on loopback.
# Node i listens for clients on port P+2(i-1) and for raft on P+2(i-1)+1,
# keeps its data in DIR/node$i, its log in DIR/node$i.log and its pid in
# DIR/node$i.pid.  Nodes 1..3 bootstrap the coalition together; nodes 4..N
# join it through node 1.  It uses the binaries in BUILD (default build/;
# scripts/run.sh builds them).  Node i also serves the HTTP/JSON API on port
# P+80+(i-1).
# Keys (docs/security.md) live in DIR/keys: the coalition admin's key pair
# (admin.key, admin.pub; the coalition's genesis records admin.pub), and one
# key pair per node, named after the partner the node signs for (--partners;
# default node1, node2, ...), which is also its raft link key; DIR/keys/trusted
# lists the node keys.  Use `coalition --key-dir DIR/keys` to sign writes.
#
#   scripts/cluster.sh start [N] [options] [-- NODE ARGS...]
#                              start N nodes (default 3), wait for a leader
#   scripts/cluster.sh stop [options]     stop every node of DIR
#   scripts/cluster.sh status [options]   which nodes run, `cluster status`
#     --dir DIR        data, logs and pids (default ./run/cluster)
#     --base-port P    first client port (default 7400)
#     --build DIR      where coalitiond and coalition are (default ./build)
#     --partners A,B,. the partners nodes 1, 2, ... sign for (default nodeI)
#     NODE ARGS        extra coalitiond options for every node
#                      (e.g. -- --snapshot-threshold 64)
# start remembers N and P in DIR/cluster.conf, so stop and status find the
# same nodes without repeating them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

START_TIMEOUT_S=15
STOP_TIMEOUT_S=10
HOST=127.0.0.1

usage() {
    # The comment block at the top of this file.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

die() {
    echo "cluster: $*" >&2
    exit 1
}

CMD=
N=
DIR=run/cluster
BASE_PORT=
BUILD=${COALITION_BUILD:-build}
NODE_ARGS=()
PARTNERS=()
while (($# > 0)); do
    case $1 in
    --dir)
        DIR=${2:?--dir needs a directory}
        shift 2
        ;;
    --base-port)
        BASE_PORT=${2:?--base-port needs a port}
        shift 2
        ;;
    --build)
        BUILD=${2:?--build needs a directory}
        shift 2
        ;;
    --partners)
        IFS=, read -r -a PARTNERS <<<"${2:?--partners needs names}"
        shift 2
        ;;
    --)
        shift
        NODE_ARGS=("$@")
        break
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    [0-9]*)
        N=$1
        shift
        ;;
    start | stop | status | help)
        [[ -z $CMD ]] || {
            echo "cluster: two commands: $CMD and $1" >&2
            exit 2
        }
        CMD=$1
        shift
        ;;
    *)
        echo "cluster: unknown argument $1" >&2
        usage >&2
        exit 2
        ;;
    esac
done
case $CMD in
start | stop | status) ;;
help)
    usage
    exit 0
    ;;
*)
    echo "cluster: no command (start, stop or status)" >&2
    usage >&2
    exit 2
    ;;
esac

CONF=$DIR/cluster.conf
# What an earlier start recorded, unless given now.
if [[ -f $CONF ]]; then
    saved_n=$(sed -n 's/^nodes=//p' "$CONF")
    saved_port=$(sed -n 's/^base_port=//p' "$CONF")
    if [[ $CMD != start ]]; then
        N=${N:-$saved_n}
        BASE_PORT=${BASE_PORT:-$saved_port}
    fi
fi
N=${N:-3}
BASE_PORT=${BASE_PORT:-7400}
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1 || N > 16)); then
    die "N must be 1..16, not '$N'"
fi
if ! [[ $BASE_PORT =~ ^[0-9]+$ ]] || ((BASE_PORT < 1 || BASE_PORT + 2 * N > 65536)); then
    die "--base-port '$BASE_PORT' is not a port that leaves room for $N nodes"
fi
COALITIOND=$BUILD/coalitiond
CLI=$BUILD/coalition

client_addr() { echo "$HOST:$((BASE_PORT + 2 * ($1 - 1)))"; }
http_addr() { echo "$HOST:$((BASE_PORT + 80 + $1 - 1))"; }
KEYS=$DIR/keys

# The partner node I signs for.
partner_of() { echo "${PARTNERS[$1 - 1]:-node$1}"; }

# make_keys: the admin key pair, a key pair for each node's partner, and the
# trusted file, once.
make_keys() {
    local i p
    mkdir -p "$KEYS"
    [[ -f $KEYS/admin.key ]] || "$CLI" keygen --out "$KEYS/admin" >/dev/null
    for ((i = 1; i <= N; i++)); do
        p=$(partner_of "$i")
        [[ -f $KEYS/$p.key ]] || "$CLI" keygen --out "$KEYS/$p" >/dev/null
        grep -qxF "$(<"$KEYS/$p.pub")" "$KEYS/trusted" 2>/dev/null || cat "$KEYS/$p.pub" >>"$KEYS/trusted"
    done
}
raft_addr() { echo "$HOST:$((BASE_PORT + 2 * ($1 - 1) + 1))"; }

# The pid of node I if it is a running coalitiond started from DIR (not a
# zombie that its parent has yet to reap).
running_pid() {
    local pidfile=$DIR/node$1.pid pid comm stat
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
    [[ $comm == coalitiond ]] || return 1
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ $stat != Z* && $stat != X* ]] || return 1
    echo "$pid"
}

# Node ids with a pid file in DIR, in order.
pidfile_nodes() {
    local f id ids=()
    for f in "$DIR"/node*.pid; do
        [[ -f $f ]] || continue
        id=${f##*/node}
        id=${id%.pid}
        [[ $id =~ ^[0-9]+$ ]] && ids+=("$id")
    done
    ((${#ids[@]} == 0)) || printf '%s\n' "${ids[@]}" | sort -n
}

# Any node's client address that answers, for cluster-wide commands.
answering_addr() {
    local i
    for ((i = 1; i <= N; i++)); do
        if "$CLI" --node "$(client_addr "$i")" --timeout-ms 1000 status >/dev/null 2>&1; then
            client_addr "$i"
            return 0
        fi
    done
    return 1
}

bootstrap_list() {
    local i list=''
    for ((i = 1; i <= N && i <= 3; i++)); do
        list+=${list:+,}$i=$(raft_addr "$i")
    done
    echo "$list"
}

# start_one I ARGS...: starts node I (unless it already runs) in its own
# session, so that a Ctrl-C in the caller's terminal does not reach it.
start_one() {
    local i=$1 pid
    shift
    if pid=$(running_pid "$i"); then
        echo "node $i is already running (pid $pid)"
        return 0
    fi
    mkdir -p "$DIR/node$i"
    # One identity key for the local coalition (phone/email lookups).
    if [[ ! -s $DIR/identity.key ]]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/identity.key")
    fi
    local p
    p=$(partner_of "$i")
    local args=(--id "$i" --data "$DIR/node$i" --listen "$(client_addr "$i")"
        --raft "$(raft_addr "$i")" --identity-key "$DIR/identity.key" --http "$(http_addr "$i")"
        --admin-public-key "$(<"$KEYS/admin.pub")" --partner "$p" --partner-key "$KEYS/$p.key"
        --trusted-keys "$KEYS/trusted" "$@" "${NODE_ARGS[@]}")
    echo "=== $(date '+%F %T') coalitiond ${args[*]}" >>"$DIR/node$i.log"
    setsid "$COALITIOND" "${args[@]}" >>"$DIR/node$i.log" 2>&1 </dev/null &
    echo "$!" >"$DIR/node$i.pid"
    echo "node $i: pid $!, client $(client_addr "$i"), raft $(raft_addr "$i"), HTTP $(http_addr "$i"), signs for $p, log $DIR/node$i.log"
}

# wait_answer I DEADLINE: until node I answers `status`, or fail at DEADLINE
# (in $SECONDS).
wait_answer() {
    local i=$1 deadline=$2
    until "$CLI" --node "$(client_addr "$i")" --timeout-ms 1000 status >/dev/null 2>&1; do
        if ! running_pid "$i" >/dev/null || ((SECONDS >= deadline)); then
            echo "cluster: node $i did not come up on $(client_addr "$i"); last lines of" \
                "$DIR/node$i.log:" >&2
            tail -n 20 "$DIR/node$i.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# The leader id in `coalition --json cluster status` of the first node that
# answers; 0 if there is none yet.
leader_id() {
    local addr out id
    addr=$(answering_addr) || {
        echo 0
        return 0
    }
    out=$("$CLI" --node "$addr" --json --timeout-ms 2000 cluster status 2>/dev/null) || true
    id=$(grep -oE '"leader_id"[[:space:]]*:[[:space:]]*[0-9]+' <<<"$out" | head -n 1 |
        grep -oE '[0-9]+$') || true
    echo "${id:-0}"
}

wait_leader() {
    local deadline=$1 id
    while :; do
        id=$(leader_id)
        if ((id != 0)); then
            echo "leader: node $id"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "cluster: no leader within ${START_TIMEOUT_S}s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# wait_directory DEADLINE: until every node lists all N nodes with their
# client addresses in `cluster status` (a node announces its address in the
# replicated directory once it knows a leader; followers forward writes to
# the leader's address).
wait_directory() {
    local deadline=$1 i out ids addrs
    for ((i = 1; i <= N; i++)); do
        while :; do
            out=$("$CLI" --node "$(client_addr "$i")" --json --timeout-ms 2000 cluster status \
                2>/dev/null) || true
            ids=$(grep -oE '"id":[0-9]+' <<<"$out" | wc -l) || true
            addrs=$(grep -oE '"client_addr":"[^"]+"' <<<"$out" | wc -l) || true
            ((ids == N && addrs == N)) && break
            if ((SECONDS >= deadline)); then
                echo "cluster: node $i does not list $N nodes with client addresses: $out" >&2
                return 1
            fi
            sleep 0.1
        done
    done
}

cmd_start() {
    [[ -x $COALITIOND && -x $CLI ]] ||
        die "$COALITIOND or $CLI is not built (scripts/run.sh builds them; or give --build DIR)"
    mkdir -p "$DIR"
    printf 'nodes=%s\nbase_port=%s\n' "$N" "$BASE_PORT" >"$CONF"
    make_keys
    local i first=$((N < 3 ? N : 3)) deadline=$((SECONDS + START_TIMEOUT_S))
    for ((i = 1; i <= first; i++)); do
        if ((N == 1)); then
            start_one "$i"
        else
            start_one "$i" --bootstrap "$(bootstrap_list)"
        fi
    done
    for ((i = 1; i <= first; i++)); do
        wait_answer "$i" "$deadline" || return 1
    done
    wait_leader "$deadline" || return 1
    # Nodes beyond the first three join through node 1 (a node restarted
    # on its data is already a member; --join is then not needed again).
    for ((i = 4; i <= N; i++)); do
        if [[ -d $DIR/node$i && -n $(ls -A "$DIR/node$i") ]]; then
            start_one "$i"
        else
            start_one "$i" --join "$(client_addr 1)"
        fi
    done
    deadline=$((SECONDS + START_TIMEOUT_S))
    for ((i = 4; i <= N; i++)); do
        wait_answer "$i" "$deadline" || return 1
    done
    wait_directory "$deadline" || return 1
    echo "cluster of $N up: data, logs and pids in $DIR"
}

cmd_stop() {
    local i pid pids=() ids=()
    for i in $(pidfile_nodes); do
        if pid=$(running_pid "$i"); then
            echo "stopping node $i (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            ids+=("$i")
        else
            rm -f "$DIR/node$i.pid"
        fi
    done
    if ((${#pids[@]} == 0)); then
        echo "no node of $DIR is running"
        return 0
    fi
    local deadline=$((SECONDS + STOP_TIMEOUT_S)) alive k
    while :; do
        alive=0
        for i in "${ids[@]}"; do
            running_pid "$i" >/dev/null && alive=$((alive + 1))
        done
        ((alive == 0)) && break
        if ((SECONDS >= deadline)); then
            for k in "${!pids[@]}"; do
                if running_pid "${ids[$k]}" >/dev/null; then
                    echo "node ${ids[$k]} (pid ${pids[$k]}) did not stop within" \
                        "${STOP_TIMEOUT_S}s; sending SIGKILL" >&2
                    kill -KILL "${pids[$k]}" 2>/dev/null || true
                fi
            done
            break
        fi
        sleep 0.1
    done
    for i in "${ids[@]}"; do
        rm -f "$DIR/node$i.pid"
    done
    echo "stopped (data and logs kept in $DIR)"
}

cmd_status() {
    local i pid up=0
    for ((i = 1; i <= N; i++)); do
        if pid=$(running_pid "$i"); then
            echo "node $i: running, pid $pid, client $(client_addr "$i"), raft $(raft_addr "$i")"
            up=$((up + 1))
        else
            echo "node $i: not running (client $(client_addr "$i"))"
        fi
    done
    ((up > 0)) || return 1
    [[ -x $CLI ]] || die "$CLI is not built"
    local addr
    if ! addr=$(answering_addr); then
        echo "no node answers"
        return 1
    fi
    echo
    echo "\$ coalition --node $addr cluster status"
    "$CLI" --node "$addr" cluster status
}

case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
esac
