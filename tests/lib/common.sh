# Shared helpers for the process tests (tests/process/test_*.sh), which drive
# the real coalitiond, coalition CLI and coalition-loadgen binaries.  Source
# it after `set -euo pipefail`.  It makes a fresh temporary directory, starts
# and stops processes by pid, and on exit stops every process it started and
# removes the directory.  ctest passes BUILD_DIR and SOURCE_DIR.
#
#   start_node DATA_DIR PORT     start a node, wait until `coalition status` answers
#   stop_node [SIGNAL]           signal the node (TERM), reap it, set EXIT_CODE
#   cli ARGS...                  the CLI against the current node
#   run ARGS...                  run a command, keep OUT, ERR and RC (never fails)
#   expect_exit CODE ARGS...     run, and fail unless it exits with CODE
#   expect_eq ACTUAL EXPECTED WHAT, expect_contains TEXT NEEDLE WHAT
#   json_get NAME [TEXT]         first value of "NAME" in JSON text (default $OUT)
#   fail MESSAGE                 print the message, the logs, and exit 1

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
    for pid in "${TRACKED_PIDS[@]}"; do
        proc_exited "$pid" || kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${TRACKED_PIDS[@]}"; do
        wait_exit "$pid" 5 || echo "[$TEST_NAME] pid $pid ignored SIGTERM, killed" >&2
    done
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

# free_port [COUNT]: one free loopback port (or COUNT of them, one per line).
# shellcheck disable=SC2120
free_port() {
    "$FREEPORT" "${1:-1}"
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
    "$COALITION" --node "127.0.0.1:$NODE_PORT" "$@"
}

# start_node DATA_DIR PORT [EXTRA ARGS...]: starts coalitiond in the
# background (log: $TEST_TMP/node-PORT.log, appended across restarts) and
# waits until it answers `coalition status`.
start_node() {
    local data=$1 port=$2
    shift 2
    NODE_PORT=$port
    NODE_LOG=$TEST_TMP/node-$port.log
    echo "=== $(date '+%T') start coalitiond --data $data --listen 127.0.0.1:$port $*" >>"$NODE_LOG"
    "$COALITIOND" --data "$data" --listen "127.0.0.1:$port" "$@" >>"$NODE_LOG" 2>&1 &
    NODE_PID=$!
    track_pid "$NODE_PID"
    local deadline=$(($(now_ms) + NODE_START_TIMEOUT_S * 1000))
    while :; do
        if proc_exited "$NODE_PID"; then
            wait_exit "$NODE_PID" 1 || true
            fail "coalitiond exited with $EXIT_CODE while starting"
        fi
        if cli status >/dev/null 2>&1; then
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
}
