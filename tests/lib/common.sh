# shellcheck shell=bash
# Shared helpers for the process tests (tests/process/test_*.sh), which drive
# the real coalitiond, coalition CLI and coalition-loadgen binaries.  Source
# it after `set -euo pipefail`.  It makes a fresh temporary directory, starts
# and stops processes by pid, and on exit stops every process it started and
# removes the directory.  ctest passes BUILD_DIR and SOURCE_DIR.
#
#   start_node DATA_DIR PORT [ARGS...]   start a single node (a free raft port
#                                unless ARGS has --raft), wait until it answers
#   stop_node [SIGNAL]           signal the node (TERM), reap it, set EXIT_CODE
#   cli ARGS...                  the CLI against the current node
#   run ARGS...                  run a command, keep OUT, ERR and RC (never fails)
#   expect_exit CODE ARGS...     run, and fail unless it exits with CODE
#   expect_eq ACTUAL EXPECTED WHAT, expect_contains TEXT NEEDLE WHAT
#   json_get NAME [TEXT]         first value of "NAME" in JSON text (default $OUT)
#   fail MESSAGE                 print the message, the logs, and exit 1
#
# Keys (docs/security.md): $KEY_DIR holds the coalition admin's key pair
# (admin.key, admin.pub) and partner key pairs; COALITION_KEY_DIR points the
# CLI at it, so every write the CLI sends is signed (by the partner it names,
# or by the admin).  Every node gets --admin-public-key; start_node and
# start_cluster wait until the genesis entry is applied.
#   partner_keygen NAME          make $KEY_DIR/NAME.key and .pub (once); `cli
#                                partner add NAME` does it by itself
#   api_key_for PARTNER [I]      a fresh API key issued by PARTNER (through node
#                                I of a cluster, or the single node)
#   Cluster node I runs with --partner nodeI --partner-key $KEY_DIR/nodeI.key
#   (its link key) and --trusted-keys $KEY_DIR/trusted (keys of nodes 1..9).
#
# Clusters (node i = 1..N on loopback, client port node_port i, raft port
# raft_port i, data $TEST_TMP/node$i, log $TEST_TMP/node$i.log):
#   start_cluster N [ARGS...]    start N nodes (1..3 bootstrap, the rest join
#                                node 1) with ARGS for every node; wait_leader
#   start_member I [ARGS...]     (re)start node I as before (bootstrap list or
#                                --join), wait until it answers status
#   stop_member I [SIGNAL]       signal node I (TERM) and reap it, set EXIT_CODE
#   pause_member I, resume_member I   SIGSTOP / SIGCONT
#   cli_on I ARGS...             the CLI against node I
#   node_port I, raft_port I, node_addr I, raft_addr I, all_addrs
#   running_members              ids of nodes started, alive and not paused
#   wait_leader [TIMEOUT_S] [I...]   until the nodes agree on a leader: LEADER
#   leader_of I                  the leader id node I reports (0 if none)
#   a_follower                   a running node other than $LEADER
#   wait_directory [TIMEOUT_S]   until every node lists every node with its
#                                client address
#   cluster_agrees [WAIT_S] [I]  `cluster check` through node I must exit 0
#   role_in_config I, wait_role I ROLE [TIMEOUT_S]   voter, standby, spare

if [[ -z ${SOURCE_DIR:-} ]]; then
    SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fi
BUILD_DIR=${BUILD_DIR:-$SOURCE_DIR/build-test}
COALITIOND=$BUILD_DIR/coalitiond
COALITION=$BUILD_DIR/coalition
LOADGEN=$BUILD_DIR/coalition-loadgen
FREEPORT=$BUILD_DIR/freeport
NODE_START_TIMEOUT_S=${NODE_START_TIMEOUT_S:-15}
NODE_STOP_TIMEOUT_S=${NODE_STOP_TIMEOUT_S:-10}

for bin in "$COALITIOND" "$COALITION" "$LOADGEN" "$FREEPORT"; do
    if [[ ! -x $bin ]]; then
        echo "FAIL: $bin is not built (BUILD_DIR=$BUILD_DIR)" >&2
        exit 1
    fi
done

TEST_NAME=$(basename "$0" .sh)
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/coalition-$TEST_NAME.XXXXXX")
TRACKED_PIDS=()
NODE_PID=
NODE_PORT=
NODE_LOG=
OUT=
ERR=
RC=0
EXIT_CODE=0

log() {
    printf '[%s] %s\n' "$TEST_NAME" "$*"
}

# ---- keys ------------------------------------------------------------------

KEY_DIR=$TEST_TMP/keys
mkdir -p "$KEY_DIR"
"$COALITION" keygen --out "$KEY_DIR/admin" >/dev/null || {
    echo "FAIL: coalition keygen" >&2
    exit 1
}
ADMIN_PUB=$(<"$KEY_DIR/admin.pub")
export COALITION_KEY_DIR=$KEY_DIR

partner_keygen() {
    [[ -f $KEY_DIR/$1.key ]] || "$COALITION" keygen --out "$KEY_DIR/$1" >/dev/null
}

# $LOADGEN signs from $KEY_DIR too: a wrapper that makes the key pairs of the
# load generator's partners (SETUP, P01..P20) on first use.
LOADGEN_BIN=$LOADGEN
LOADGEN=$TEST_TMP/loadgen
cat >"$LOADGEN" <<EOF_LOADGEN
#!/usr/bin/env bash
set -e
if [[ ! -f "$KEY_DIR/P20.key" ]]; then
    for p in SETUP P01 P02 P03 P04 P05 P06 P07 P08 P09 P10 P11 P12 P13 P14 P15 P16 P17 P18 P19 P20; do
        [[ -f "$KEY_DIR/\$p.key" ]] || "$COALITION" keygen --out "$KEY_DIR/\$p" >/dev/null
    done
fi
exec "$LOADGEN_BIN" --key-dir "$KEY_DIR" "\$@"
EOF_LOADGEN
chmod +x "$LOADGEN"

# keys_for_args ARGS...: `partner add ID` in a CLI command line needs ID's key
# pair in $KEY_DIR; made here if missing.
keys_for_args() {
    local i j args=("$@")
    for ((i = 0; i + 2 < ${#args[@]}; i++)); do
        if [[ ${args[i]} == partner && ${args[i + 1]} == add ]]; then
            for ((j = i + 2; j + 1 < ${#args[@]}; j++)); do
                if [[ ${args[j]} == --id ]]; then
                    partner_keygen "${args[j + 1]}"
                    return 0
                fi
            done
            [[ ${args[i + 2]} == -* ]] || partner_keygen "${args[i + 2]}"
            return 0
        fi
    done
}

# Milliseconds on the wall clock (for deadlines).
now_ms() {
    local t=${EPOCHREALTIME//[.,]/}
    echo $((t / 1000))
}

track_pid() {
    TRACKED_PIDS+=("$1")
}

untrack_pid() {
    local pid keep=()
    for pid in "${TRACKED_PIDS[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    TRACKED_PIDS=("${keep[@]}")
}

# True if process PID has exited (gone, or a zombie waiting to be reaped).
proc_exited() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    [[ $stat == Z* || $stat == X* ]]
}

# wait_exit PID TIMEOUT_S: waits for our child PID to exit and sets
# EXIT_CODE.  If it has not exited in time it is killed with SIGKILL and
# reaped, and wait_exit returns 1.
wait_exit() {
    local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
    while ! proc_exited "$pid"; do
        if (($(now_ms) >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            untrack_pid "$pid"
            EXIT_CODE=137
            return 1
        fi
        sleep 0.05
    done
    EXIT_CODE=0
    wait "$pid" 2>/dev/null || EXIT_CODE=$?
    untrack_pid "$pid"
    return 0
}

show_logs() {
    local f
    for f in "$TEST_TMP"/*.log; do
        [[ -f $f ]] || continue
        echo "----- last lines of $(basename "$f") -----" >&2
        tail -n 40 "$f" >&2
    done
}

cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM
    # SIGCONT first: a node a test stopped with SIGSTOP would not see SIGTERM.
    for pid in "${TRACKED_PIDS[@]}"; do
        proc_exited "$pid" || kill -CONT "$pid" 2>/dev/null
    done
    for pid in "${TRACKED_PIDS[@]}"; do
        proc_exited "$pid" || kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${TRACKED_PIDS[@]}"; do
        wait_exit "$pid" 5 || echo "[$TEST_NAME] pid $pid ignored SIGTERM, killed" >&2
    done
    # A node that crashed or leaked on its way out fails the test too: the
    # sanitizers report into the node logs.
    local report
    report=$(grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" \
        "$TEST_TMP"/*.log "$TEST_TMP"/*/*.log 2>/dev/null | head -3)
    if [[ -n $report ]]; then
        echo "[$TEST_NAME] FAIL: sanitizer report in $report" >&2
        grep -h -A12 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" $report | head -40 >&2
        rc=1
    fi
    if ((rc != 0)); then
        show_logs
        echo "[$TEST_NAME] FAILED (temp dir was $TEST_TMP)" >&2
    fi
    if [[ -n ${KEEP_TMP:-} ]]; then
        echo "[$TEST_NAME] kept $TEST_TMP" >&2
    else
        rm -rf "$TEST_TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "[$TEST_NAME] FAIL: $*" >&2
    exit 1
}

# free_port [COUNT]: one free loopback port (or COUNT of them, one per line),
# below the ephemeral range and never one handed out earlier in this test
# (freeport records them in $TEST_TMP/.ports), so ports picked in separate
# calls differ even before they are bound.
# shellcheck disable=SC2120
free_port() {
    "$FREEPORT" --record "$TEST_TMP/.ports" "${1:-1}"
}

# run ARGS...: runs a command; its stdout lands in OUT, stderr in ERR and its
# exit status in RC.  Never fails itself.
run() {
    local errfile=$TEST_TMP/.stderr
    RC=0
    OUT=$("$@" 2>"$errfile") || RC=$?
    ERR=$(<"$errfile")
}

# The CLI against the node started last.
cli() {
    keys_for_args "$@"
    "$COALITION" --node "127.0.0.1:$NODE_PORT" "$@"
}

# wait_genesis CLI_FN [ARGS...]: waits until the node CLI_FN ARGS talks to has
# applied the genesis entry (seq 1): before it no write can be verified.
wait_genesis() {
    local deadline=$(($(now_ms) + NODE_START_TIMEOUT_S * 1000)) out seq
    while :; do
        out=$("$@" --json --timeout-ms 1000 status 2>/dev/null) || true
        seq=$(json_get applied_seq "$out")
        [[ $seq =~ ^[0-9]+$ ]] && ((seq >= 1)) && return 0
        if (($(now_ms) >= deadline)); then
            fail "no genesis entry within ${NODE_START_TIMEOUT_S}s: $out"
        fi
        sleep 0.05
    done
}

# api_key_for PARTNER [I]: prints a new API key issued by PARTNER.
api_key_for() {
    local out
    if [[ -n ${2:-} ]]; then
        out=$(cli_on "$2" --json apikey create --partner "$1") || fail "apikey create: $out"
    else
        out=$(cli --json apikey create --partner "$1") || fail "apikey create: $out"
    fi
    json_get api_key "$out"
}

# Raft port of each single node's data directory: the node's default (the
# client port + 1) may be taken, so start_node picks a free one, the same
# for every start on that data.
declare -A NODE_RAFT_PORT=()

# start_node DATA_DIR PORT [EXTRA ARGS...]: starts a single-node coalitiond
# in the background (log: $TEST_TMP/node-PORT.log, appended across restarts)
# and waits until it answers `coalition status`.
start_node() {
    local data=$1 port=$2
    shift 2
    NODE_PORT=$port
    NODE_LOG=$TEST_TMP/node-$port.log
    local raft=()
    if [[ " $* " != *" --raft "* ]]; then
        if [[ -z ${NODE_RAFT_PORT[$data]:-} ]]; then
            NODE_RAFT_PORT[$data]=$(free_port) # never the client port free_port gave
        fi
        raft=(--raft "127.0.0.1:${NODE_RAFT_PORT[$data]}")
    fi
    echo "=== $(date '+%T') start coalitiond --data $data --listen 127.0.0.1:$port" \
        "${raft[*]} $*" >>"$NODE_LOG"
    "$COALITIOND" --data "$data" --listen "127.0.0.1:$port" "${raft[@]}" \
        --admin-public-key "$ADMIN_PUB" "$@" >>"$NODE_LOG" 2>&1 &
    NODE_PID=$!
    track_pid "$NODE_PID"
    local deadline=$(($(now_ms) + NODE_START_TIMEOUT_S * 1000))
    while :; do
        if proc_exited "$NODE_PID"; then
            wait_exit "$NODE_PID" 1 || true
            fail "coalitiond exited with $EXIT_CODE while starting"
        fi
        if cli status >/dev/null 2>&1; then
            wait_genesis cli
            log "node up on port $port (pid $NODE_PID)"
            return 0
        fi
        if (($(now_ms) >= deadline)); then
            fail "coalitiond did not answer status within ${NODE_START_TIMEOUT_S}s"
        fi
        sleep 0.1
    done
}

# stop_node [SIGNAL]: sends SIGNAL (default TERM) to the node and reaps it;
# EXIT_CODE is its exit status.  Fails the test if it does not exit within
# NODE_STOP_TIMEOUT_S.
stop_node() {
    local sig=${1:-TERM}
    kill "-$sig" "$NODE_PID"
    if ! wait_exit "$NODE_PID" "$NODE_STOP_TIMEOUT_S"; then
        fail "coalitiond (pid $NODE_PID) did not exit within ${NODE_STOP_TIMEOUT_S}s of SIG$sig"
    fi
    echo "=== $(date '+%T') node exited with $EXIT_CODE after SIG$sig" >>"$NODE_LOG"
    NODE_PID=
}

expect_eq() {
    local actual=$1 expected=$2 what=${3:-value}
    if [[ $actual != "$expected" ]]; then
        fail "$what: expected '$expected', got '$actual'"
    fi
}

expect_contains() {
    local text=$1 needle=$2 what=${3:-output}
    if [[ $text != *"$needle"* ]]; then
        fail "$what: expected to contain '$needle', got: $text"
    fi
}

# wait_log SECONDS WHAT PATTERN FILE...: waits until the grep PATTERN (a
# basic regular expression) matches a line of one of FILEs; fails with WHAT
# after SECONDS.  For log lines that come when a process gets round to them.
wait_log() {
    local secs=$1 what=$2 pattern=$3
    local deadline=$(($(now_ms) + secs * 1000))
    shift 3
    until grep -q -- "$pattern" "$@" 2>/dev/null; do
        (($(now_ms) < deadline)) || fail "$what: no line matching '$pattern' within $secs s"
        sleep 0.1
    done
}

# expect_exit CODE ARGS...: runs ARGS (OUT/ERR/RC as with `run`) and fails
# unless it exits with CODE.
expect_exit() {
    local code=$1
    shift
    run "$@"
    if [[ $RC != "$code" ]]; then
        fail "'$*' exited $RC, expected $code
stdout: $OUT
stderr: $ERR"
    fi
}

# json_get NAME [TEXT]: the first value of "NAME" in TEXT (default $OUT),
# without quotes; empty if absent.  Good enough for the CLI's flat objects.
json_get() {
    local name=$1 text=${2-$OUT} m
    m=$(grep -oE "\"$name\"[[:space:]]*:[[:space:]]*(\"[^\"]*\"|[^,}[:space:]]+)" <<<"$text" |
        head -n 1) || true
    m=${m#*:}
    m=${m#"${m%%[![:space:]]*}"}
    m=${m#\"}
    m=${m%\"}
    printf '%s' "$m"
}

# json_all NAME [TEXT]: every value of "NAME", one per line, in order.
json_all() {
    local name=$1 text=${2-$OUT}
    grep -oE "\"$name\"[[:space:]]*:[[:space:]]*(\"[^\"]*\"|[^,}[:space:]]+)" <<<"$text" |
        sed -E 's/^[^:]*:[[:space:]]*//; s/^"//; s/"$//' || true
}

# expect_error CODE_EXIT NAME ARGS...: runs the CLI with --json and ARGS and
# requires exit CODE_EXIT and the error code NAME in its JSON error object.
expect_error() {
    local code=$1 name=$2
    shift 2
    expect_exit "$code" cli --json "$@"
    local got
    got=$(json_get code "$OUT$ERR")
    if [[ $got != "$name" ]]; then
        fail "'coalition --json $*': expected error code $name, got '$got'
stdout: $OUT
stderr: $ERR"
    fi
    # A message a cashier's screen could show: never empty, never "OK".
    got=$(json_get message "$OUT$ERR")
    if [[ -z $got || $got == OK ]]; then
        fail "'coalition --json $*': error $name came with the message '$got'
stdout: $OUT
stderr: $ERR"
    fi
}

# ---- clusters ---------------------------------------------------------------

CLUSTER_N=0
CLUSTER_ARGS=()   # given to every node by start_cluster
MEMBER_PID=()     # index: node id; empty when not running
MEMBER_PAUSED=()  # index: node id; 1 while SIGSTOPped
MEMBER_CPORT=()
MEMBER_RPORT=()
MEMBER_JOIN=()    # index: node id; client address it joined through, if it did
LEADER=

node_port() { printf '%s' "${MEMBER_CPORT[$1]}"; }
raft_port() { printf '%s' "${MEMBER_RPORT[$1]}"; }
node_addr() { printf '127.0.0.1:%s' "${MEMBER_CPORT[$1]}"; }
raft_addr() { printf '127.0.0.1:%s' "${MEMBER_RPORT[$1]}"; }

# all_addrs: every node's client address, comma-separated (for loadgen).
all_addrs() {
    local i list=''
    for ((i = 1; i <= CLUSTER_N; i++)); do
        list+=${list:+,}$(node_addr "$i")
    done
    printf '%s' "$list"
}

# The --bootstrap list: the raft addresses of nodes 1..min(N,3).
bootstrap_list() {
    local i list='' n=$((CLUSTER_N < 3 ? CLUSTER_N : 3))
    for ((i = 1; i <= n; i++)); do
        list+=${list:+,}$i=$(raft_addr "$i")
    done
    printf '%s' "$list"
}

# cli_on I ARGS...: the CLI against node I.
cli_on() {
    local i=$1
    shift
    keys_for_args "$@"
    "$COALITION" --node "$(node_addr "$i")" "$@"
}

# True if node I was started and has not exited.
member_alive() {
    [[ -n ${MEMBER_PID[$1]:-} ]] && ! proc_exited "${MEMBER_PID[$1]}"
}

# running_members: ids of the nodes that are alive and not paused, one line.
running_members() {
    local i ids=()
    for ((i = 1; i <= CLUSTER_N; i++)); do
        if member_alive "$i" && [[ ${MEMBER_PAUSED[$i]:-0} != 1 ]]; then
            ids+=("$i")
        fi
    done
    echo "${ids[*]}"
}

# cluster_ports N: picks 2N free ports (client and raft port of each node).
cluster_ports() {
    local n=$1 i ports
    mapfile -t ports < <(free_port $((2 * n)))
    ((${#ports[@]} == 2 * n)) || fail "freeport gave ${#ports[@]} ports, wanted $((2 * n))"
    CLUSTER_N=$n
    cluster_keys
    for ((i = 1; i <= n; i++)); do
        MEMBER_CPORT[i]=${ports[2 * (i - 1)]}
        MEMBER_RPORT[i]=${ports[2 * (i - 1) + 1]}
        MEMBER_PID[i]=
        MEMBER_PAUSED[i]=0
        MEMBER_JOIN[i]=
    done
}

# start_member I [ARGS...]: starts node I in the background with the
# cluster's arguments and ARGS: nodes 1..3 with the bootstrap list, others
# (and a node started once with --join) with --join through MEMBER_JOIN[I],
# unless ARGS has --join or --bootstrap itself.  Waits until it answers
# `coalition status`.  The log ($TEST_TMP/nodeI.log) is appended to.
start_member() {
    local i=$1
    shift
    local extra=("$@") mode=()
    if [[ " ${extra[*]} " != *" --join "* && " ${extra[*]} " != *" --bootstrap "* ]]; then
        if [[ -n ${MEMBER_JOIN[$i]} ]]; then
            mode=(--join "${MEMBER_JOIN[$i]}")
        elif ((i <= 3)); then
            mode=(--bootstrap "$(bootstrap_list)")
        else
            mode=(--join "$(node_addr 1)")
        fi
    fi
    local log_file=$TEST_TMP/node$i.log
    local args=(--id "$i" --data "$TEST_TMP/node$i" --listen "$(node_addr "$i")"
        --raft "$(raft_addr "$i")" "${mode[@]}" --admin-public-key "$ADMIN_PUB"
        --partner "node$i" --partner-key "$KEY_DIR/node$i.key" --trusted-keys "$KEY_DIR/trusted"
        "${CLUSTER_ARGS[@]}" "${extra[@]}")
    echo "=== $(date '+%T') start coalitiond ${args[*]}" >>"$log_file"
    "$COALITIOND" "${args[@]}" >>"$log_file" 2>&1 &
    MEMBER_PID[i]=$!
    MEMBER_PAUSED[i]=0
    track_pid "${MEMBER_PID[$i]}"
    local deadline=$(($(now_ms) + NODE_START_TIMEOUT_S * 1000))
    while :; do
        if proc_exited "${MEMBER_PID[$i]}"; then
            wait_exit "${MEMBER_PID[$i]}" 1 || true
            MEMBER_PID[i]=
            fail "node $i exited with $EXIT_CODE while starting"
        fi
        if cli_on "$i" --timeout-ms 1000 status >/dev/null 2>&1; then
            log "node $i up: client $(node_addr "$i"), raft $(raft_addr "$i"), pid ${MEMBER_PID[$i]}"
            return 0
        fi
        if (($(now_ms) >= deadline)); then
            fail "node $i did not answer status within ${NODE_START_TIMEOUT_S}s"
        fi
        sleep 0.1
    done
}

# stop_member I [SIGNAL]: sends SIGNAL (default TERM) to node I and reaps it;
# EXIT_CODE is its exit status.  A paused node is continued first (after a
# KILL, which needs no continuing).  Fails the test if it does not exit
# within NODE_STOP_TIMEOUT_S.
stop_member() {
    local i=$1 sig=${2:-TERM} pid=${MEMBER_PID[$1]}
    [[ -n $pid ]] || fail "stop_member $i: node $i is not running"
    kill "-$sig" "$pid"
    if [[ ${MEMBER_PAUSED[$i]} == 1 && $sig != KILL ]]; then
        kill -CONT "$pid" 2>/dev/null || true
    fi
    if ! wait_exit "$pid" "$NODE_STOP_TIMEOUT_S"; then
        fail "node $i (pid $pid) did not exit within ${NODE_STOP_TIMEOUT_S}s of SIG$sig"
    fi
    echo "=== $(date '+%T') node $i exited with $EXIT_CODE after SIG$sig" >>"$TEST_TMP/node$i.log"
    MEMBER_PID[i]=
    MEMBER_PAUSED[i]=0
}

pause_member() {
    kill -STOP "${MEMBER_PID[$1]}"
    MEMBER_PAUSED[$1]=1
    log "node $1 paused (SIGSTOP)"
}

resume_member() {
    kill -CONT "${MEMBER_PID[$1]}"
    MEMBER_PAUSED[$1]=0
    log "node $1 resumed (SIGCONT)"
}

# leader_of I: the leader id that node I reports in `status` (0 if none, or
# if it does not answer within a second).
leader_of() {
    local out id
    out=$(cli_on "$1" --json --timeout-ms 1000 status 2>/dev/null) || {
        echo 0
        return 0
    }
    id=$(json_get leader_id "$out")
    [[ $id =~ ^[0-9]+$ ]] || id=0
    echo "$id"
}

# role_of I: the raft state node I reports (leader, follower, candidate,
# unavailable), or "" if it does not answer.
role_of() {
    local out
    out=$(cli_on "$1" --json --timeout-ms 1000 status 2>/dev/null) || return 0
    json_get role "$out"
}

# wait_leader [TIMEOUT_S] [I...]: waits until nodes I (default: every running
# node) all name the same leader, and that node is running and says it is the
# leader.  Sets LEADER; fails the test after TIMEOUT_S (default 15).
wait_leader() {
    local timeout_s=${1:-15}
    shift || true
    local nodes=("$@")
    if ((${#nodes[@]} == 0)); then
        read -r -a nodes <<<"$(running_members)"
    fi
    local deadline=$(($(now_ms) + timeout_s * 1000)) i lid agreed seen
    while :; do
        agreed=
        seen=
        for i in "${nodes[@]}"; do
            lid=$(leader_of "$i")
            seen+=" $i:$lid"
            if [[ $lid == 0 || (-n $agreed && $lid != "$agreed") ]]; then
                agreed=
                break
            fi
            agreed=$lid
        done
        if [[ -n $agreed ]] && ((agreed <= CLUSTER_N)) &&
            [[ " $(running_members) " == *" $agreed "* && $(role_of "$agreed") == leader ]]; then
            LEADER=$agreed
            return 0
        fi
        if (($(now_ms) >= deadline)); then
            fail "no agreed leader among nodes ${nodes[*]} within ${timeout_s}s (node:leader$seen)"
        fi
        sleep 0.2
    done
}

# a_follower: the first running node that is not $LEADER.
a_follower() {
    local i
    for i in $(running_members); do
        if [[ $i != "$LEADER" ]]; then
            echo "$i"
            return 0
        fi
    done
    fail "no running follower"
}

# wait_directory [TIMEOUT_S]: waits until `cluster status` through every
# running node lists CLUSTER_N nodes, each with its client address (a node
# announces it in the replicated directory once a leader is known; clients
# get the leader's as a hint).
wait_directory() {
    local timeout_s=${1:-15} out='' ids addrs i ready
    local deadline=$(($(now_ms) + timeout_s * 1000))
    while :; do
        ready=1
        for i in $(running_members); do
            out=$(cli_on "$i" --json --timeout-ms 2000 cluster status 2>/dev/null) || true
            ids=$(json_all id "$out" | wc -l)
            addrs=$(json_all client_addr "$out" | grep -c . || true)
            if ((ids != CLUSTER_N || addrs != CLUSTER_N)); then
                ready=0
                break
            fi
        done
        ((ready == 1)) && return 0
        if (($(now_ms) >= deadline)); then
            fail "node $i does not list $CLUSTER_N nodes with client addresses within" \
                "${timeout_s}s: $out"
        fi
        sleep 0.1
    done
}

# role_in_config I [VIA]: node I's role (voter, standby, spare) in `cluster
# status` through node VIA (default $LEADER); empty if not listed.
role_in_config() {
    local out obj
    out=$(cli_on "${2:-$LEADER}" --json --timeout-ms 2000 cluster status 2>/dev/null) || return 0
    obj=$(grep -oE "\{\"id\":$1,[^}]*\}" <<<"$out" | head -n 1) || true
    json_get role "$obj"
}

# wait_role I ROLE [TIMEOUT_S]: waits until node I has ROLE in the leader's
# configuration (a node that joins is added as a spare, catches up, then is
# promoted).
wait_role() {
    local i=$1 role=$2 timeout_s=${3:-30} got
    local deadline=$(($(now_ms) + timeout_s * 1000))
    while :; do
        got=$(role_in_config "$i")
        [[ $got == "$role" ]] && return 0
        if (($(now_ms) >= deadline)); then
            fail "node $i is '$got' in the configuration after ${timeout_s}s, expected $role"
        fi
        sleep 0.2
    done
}

# cluster_keys: link keys of nodes 1..9 ($KEY_DIR/nodeI.key) and the file of
# their public keys every node trusts.
cluster_keys() {
    local i
    [[ -f $KEY_DIR/trusted ]] && return 0
    for ((i = 1; i <= 9; i++)); do
        partner_keygen "node$i"
        cat "$KEY_DIR/node$i.pub" >>"$KEY_DIR/trusted"
    done
}

# start_cluster N [ARGS...]: N nodes with ARGS each (kept in CLUSTER_ARGS for
# restarts).  Nodes 1..min(N,3) bootstrap together; the others join through
# node 1 once there is a leader.  Returns once every node is listed with its
# client address.  Sets LEADER.
start_cluster() {
    local n=$1 i
    shift
    CLUSTER_ARGS=("$@")
    cluster_ports "$n"
    for ((i = 1; i <= n && i <= 3; i++)); do
        start_member "$i"
    done
    wait_leader 20
    wait_genesis cli_on "$LEADER"
    for ((i = 4; i <= n; i++)); do
        MEMBER_JOIN[i]=$(node_addr 1)
        start_member "$i"
    done
    wait_directory 20
    log "cluster of $n up, leader node $LEADER"
}

# stop_cluster: SIGTERM to every running node; each must exit with 0.
stop_cluster() {
    local i
    for ((i = 1; i <= CLUSTER_N; i++)); do
        if [[ -n ${MEMBER_PID[$i]} ]]; then
            stop_member "$i" TERM
            expect_eq "$EXIT_CODE" 0 "exit status of node $i after SIGTERM"
        fi
    done
}

# cluster_agrees [WAIT_S] [I]: `coalition cluster check --wait-s WAIT_S`
# (default 30) through node I (default: the first running node) must exit 0
# with every node at the same applied index, head hash and state digest.
cluster_agrees() {
    local wait_s=${1:-30} i=${2:-}
    if [[ -z $i ]]; then
        read -r i _ <<<"$(running_members)"
    fi
    # The check itself waits up to --wait-s for unreachable or unannounced
    # nodes; asking again covers the node the check is sent to restarting
    # meanwhile.
    local deadline=$(($(now_ms) + wait_s * 1000)) left_s
    while :; do
        left_s=$(((deadline - $(now_ms)) / 1000))
        ((left_s >= 1)) || left_s=1
        run cli_on "$i" --json cluster check --wait-s "$left_s"
        [[ $RC == 3 && $(now_ms) -lt $deadline ]] || break
        sleep 0.5
    done
    if [[ $RC != 0 ]]; then
        fail "cluster check through node $i exited $RC
stdout: $OUT
stderr: $ERR"
    fi
    # Converged and compared by state digest, not only by the hash of the
    # last entry every node has.
    expect_eq "$(json_get agree)" true "cluster check: agree"
    [[ $(json_get state_digest) =~ ^[0-9a-f]{64}$ ]] ||
        fail "cluster check: the nodes did not converge on one index within ${wait_s}s: $OUT"
}

# expect_same_everywhere WHAT ARGS...: runs `coalition --json ARGS` on every
# running node and requires identical output; leaves it in OUT.
expect_same_everywhere() {
    local what=$1 i first='' first_node=''
    shift
    for i in $(running_members); do
        expect_exit 0 cli_on "$i" --json "$@"
        if [[ -z $first_node ]]; then
            first=$OUT
            first_node=$i
        elif [[ $OUT != "$first" ]]; then
            fail "$what differs: node $first_node says $first, node $i says $OUT"
        fi
    done
}

# verify_everywhere: `coalition verify` passes on every running node, with
# the same head hash and state digest.
verify_everywhere() {
    local i head='' digest=''
    for i in $(running_members); do
        expect_exit 0 cli_on "$i" --json verify
        expect_eq "$(json_get ok)" true "verify on node $i"
        if [[ -z $head ]]; then
            head=$(json_get head_hash)
            digest=$(json_get state_digest)
        else
            expect_eq "$(json_get head_hash)" "$head" "verify head_hash on node $i"
            expect_eq "$(json_get state_digest)" "$digest" "verify state_digest on node $i"
        fi
    done
}
