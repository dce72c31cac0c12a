#!/usr/bin/env bash
# Runs a local one-node Coalition Ledger and walks a short demo through the
# `coalition` CLI: two partners, a member with a card, an award at one
# partner, a redemption at the other, the balance and the history.  The node
# keeps running in the background (data in ./run/node1) until
# `scripts/run.sh stop`.
#
#   scripts/run.sh          build (release, build/), (re)start the node, demo
#   scripts/run.sh stop     stop the node started here
#   scripts/run.sh status   is it running, and what does it say
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD=build
RUN_DIR=run
DATA=$RUN_DIR/node1
LOG=$RUN_DIR/node1.log
PIDFILE=$RUN_DIR/node1.pid
LISTEN=${COALITION_LISTEN:-127.0.0.1:7400}
START_TIMEOUT_S=15
STOP_TIMEOUT_S=10
CLI=$BUILD/coalition

# The pid of the node this script started, if it is still running.
running_pid() {
    local pid comm
    [[ -f $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
    [[ $comm == coalitiond ]] || return 1
    echo "$pid"
}

stop_node() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        echo "no node running from scripts/run.sh"
        return 0
    fi
    echo "stopping coalitiond (pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT_S))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "coalitiond did not stop within ${STOP_TIMEOUT_S}s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$PIDFILE"
    echo "stopped (data kept in $DATA, log in $LOG)"
}

show_status() {
    local pid
    if pid=$(running_pid); then
        echo "coalitiond is running (pid $pid, listening on $LISTEN, data $DATA, log $LOG)"
        [[ -x $CLI ]] && "$CLI" --node "$LISTEN" status
    else
        echo "no node running from scripts/run.sh"
        return 1
    fi
}

build() {
    scripts/deps.sh
    echo "building (release) in $BUILD/ ..."
    mkdir -p "$RUN_DIR"
    if ! {
        cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCOALITION_SANITIZE=OFF &&
            cmake --build "$BUILD" -j2 --target coalitiond coalition_cli
    } >"$RUN_DIR/build.log" 2>&1; then
        tail -n 40 "$RUN_DIR/build.log" >&2
        echo "build failed; full output in $RUN_DIR/build.log" >&2
        exit 1
    fi
}

start_node() {
    if running_pid >/dev/null; then
        echo "a node from an earlier run is still up: restarting it on the new build"
        stop_node >/dev/null
    fi
    mkdir -p "$DATA"
    echo "=== $(date '+%F %T') starting coalitiond --data $DATA --listen $LISTEN" >>"$LOG"
    # setsid: a Ctrl-C in this terminal must not reach the background node.
    setsid "$BUILD/coalitiond" --data "$DATA" --listen "$LISTEN" >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until "$CLI" --node "$LISTEN" status >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "coalitiond did not come up on $LISTEN; last lines of $LOG:" >&2
            tail -n 20 "$LOG" >&2
            kill -TERM "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.1
    done
    echo "coalitiond is up: pid $pid, listening on $LISTEN, data in $DATA, log in $LOG"
}

# show_cmd ARGS...: prints "$ coalition ARGS" as one would type it.
show_cmd() {
    local arg line='$ coalition'
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:@=,+-]+$ ]]; then
            line+=" $arg"
        else
            line+=" \"$arg\""
        fi
    done
    echo
    echo "$line"
}

# demo ARGS...: shows a CLI command, then runs it.
demo() {
    show_cmd "$@"
    "$CLI" --node "$LISTEN" "$@"
}

# demo_add ARGS...: like demo, but "already registered" (a rerun) is fine.
demo_add() {
    local out rc=0
    show_cmd "$@"
    out=$("$CLI" --node "$LISTEN" "$@" 2>&1) || rc=$?
    printf '%s\n' "$out"
    if ((rc != 0)); then
        [[ $out == *ALREADY_EXISTS* || $out == *"already registered"* ]] || exit "$rc"
        echo "(already there from an earlier run: fine)"
    fi
}

run_demo() {
    local run_id
    run_id=$(date +%Y%m%d-%H%M%S)-$$
    echo
    echo "=== demo: a coffee chain and a bookshop share one point ledger ==="
    demo status
    demo_add partner add --id coffee --name "Bean Coffee"
    demo_add partner add --id books --name "Page Books"
    demo_add member add --id alice --card 4000-1234-5678
    demo award --partner coffee --member alice --points 500 --txn "demo-award-$run_id" \
        --reason "coffee beans"
    demo redeem --partner books --member alice --points 200 --txn "demo-redeem-$run_id"
    demo balance --member alice
    demo history --member alice --limit 5
    demo verify
}

usage_notes() {
    local pid
    pid=$(running_pid || echo "?")
    cat <<EOF

=== the node keeps running (pid $pid) ===
Use the CLI:
  export PATH="$ROOT/$BUILD:\$PATH"
  coalition status
  coalition award --partner coffee --member alice --points 50 --txn my-txn-1
  coalition award --partner coffee --member alice --points 50 --txn my-txn-1   # a retry: duplicate
  coalition --json balance --member alice
  coalition reverse --partner coffee --of my-txn-1 --txn my-refund-1
  coalition history --member alice
  coalition --help
(the CLI talks to 127.0.0.1:7400 unless given --node HOST:PORT)
Log: $ROOT/$LOG    Data: $ROOT/$DATA
Stop it:   scripts/run.sh stop
Status:    scripts/run.sh status
EOF
}

case "${1:-start}" in
start)
    build
    start_node
    run_demo
    usage_notes
    ;;
stop)
    stop_node
    ;;
status)
    show_status
    ;;
-h | --help | help)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    ;;
*)
    echo "usage: scripts/run.sh [start|stop|status]" >&2
    exit 2
    ;;
esac
