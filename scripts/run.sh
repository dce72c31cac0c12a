#!/usr/bin/env bash
# Runs a local three-node Coalition Ledger (scripts/cluster.sh, data in
# ./run/cluster) and walks a short demo through the `coalition` CLI: two
# partners, a member with a card, an award through node 1, a redemption
# through node 2, the balance on node 3, the cluster's status and a check
# that all three nodes hold the same ledger.  The nodes keep running in the
# background until `scripts/run.sh stop`.
#
#   scripts/run.sh          build (release, build/), (re)start the nodes, demo
#   scripts/run.sh stop     stop the nodes started here
#   scripts/run.sh status   which nodes run, and what the cluster says
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD=build
RUN_DIR=run
CLUSTER_DIR=$RUN_DIR/cluster
BASE_PORT=${COALITION_BASE_PORT:-7400}
NODES=3
CLI=$BUILD/coalition
CLUSTER=(scripts/cluster.sh --dir "$CLUSTER_DIR" --build "$BUILD" --partners coffee,books,fuel)
# The CLI signs every write with the partner's (or the admin's) key from here.
export COALITION_KEY_DIR=$CLUSTER_DIR/keys

node_addr() { echo "127.0.0.1:$((BASE_PORT + 2 * ($1 - 1)))"; }
http_addr() { echo "127.0.0.1:$((BASE_PORT + 80 + $1 - 1))"; }

# The one-node run.sh of earlier versions kept a node in run/node1: stop it,
# it holds port 7400.
stop_old_single_node() {
    local pidfile=$RUN_DIR/node1.pid pid comm
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && { read -r comm <"/proc/$pid/comm"; } 2>/dev/null &&
        [[ $comm == coalitiond ]]; then
        echo "stopping the one-node coalitiond of an earlier scripts/run.sh (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
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

start_nodes() {
    stop_old_single_node
    # Nodes from an earlier run restart on the new build, on their data.
    "${CLUSTER[@]}" stop >/dev/null
    echo "starting $NODES nodes (scripts/cluster.sh start $NODES --dir $CLUSTER_DIR) ..."
    "${CLUSTER[@]}" start "$NODES" --base-port "$BASE_PORT"
    # A new coalition's first entry records the admin key; writes wait for it.
    local deadline=$((SECONDS + 15))
    until "$CLI" --node "$(node_addr 1)" --json status 2>/dev/null | grep -qE '"applied_seq": *[1-9]'; do
        ((SECONDS < deadline)) || { echo "no genesis entry on node 1" >&2; exit 1; }
        sleep 0.1
    done
}

# show_cmd NODE ARGS...: prints "$ coalition --node ADDR ARGS" as one would
# type it.
show_cmd() {
    local arg line
    line="\$ coalition --node $(node_addr "$1")"
    shift
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

# demo NODE ARGS...: shows a CLI command against node NODE, then runs it.
demo() {
    local node=$1
    show_cmd "$@"
    shift
    "$CLI" --node "$(node_addr "$node")" "$@"
}

# demo_add NODE ARGS...: like demo, but "already registered" (a rerun) is
# fine.
demo_add() {
    local node=$1 out rc=0
    show_cmd "$@"
    shift
    out=$("$CLI" --node "$(node_addr "$node")" "$@" 2>&1) || rc=$?
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
    echo "=== demo: a coffee chain and a bookshop share one point ledger on three nodes ==="
    demo 1 status
    demo_add 1 partner add --id coffee --name "Bean Coffee"
    demo_add 1 partner add --id books --name "Page Books"
    demo_add 1 member add --id alice --card 4000-1234-5678
    echo
    echo "# the coffee chain awards through node 1, the bookshop redeems through node 2"
    demo 1 award --partner coffee --member alice --points 500 --txn "demo-award-$run_id" \
        --reason "coffee beans"
    demo 2 redeem --partner books --member alice --points 200 --txn "demo-redeem-$run_id"
    echo
    echo "# coalition rules: the bookshop's program earns 2 points per unit, 3 on books;"
    echo "# a purchase award computes its points, a hold at the till is captured in part"
    printf '%s\n' '{"point_value_mc": 800, "base_rate_milli": 2000, "categories": {"books": 150}}' \
        >"$CLUSTER_DIR/books-program.json"
    demo 1 program set --partner books --txn "demo-program-$run_id" --file "$CLUSTER_DIR/books-program.json"
    demo 2 award --partner books --member alice --purchase-cents 2599 --category books \
        --txn "demo-sale-$run_id"
    demo 3 hold --partner books --member alice --points 100 --txn "demo-hold-$run_id"
    demo 3 capture --partner books --hold "demo-hold-$run_id" --points 60 \
        --txn "demo-capture-$run_id"
    echo
    echo "# a POS of the bookshop uses node 2 (which signs for books) with an API key:"
    echo "# the phone number is hashed on node 2, then signed, ordered and replicated"
    local key
    key=$("$CLI" --node "$(node_addr 1)" --json apikey create --partner books |
        sed -E 's/.*"api_key": *"([^"]*)".*/\1/')
    echo "\$ coalition apikey create --partner books      -> a key shown once: ${key:0:20}..."
    "$CLI" --node "$(node_addr 1)" cluster check --wait-s 10 >/dev/null
    demo 2 --api-key "$key" identify --member alice --phone "+1 555 0100 123" --txn "demo-id-$run_id"
    demo 2 lookup --phone "+15550100123" --consistent
    echo
    echo "# the same POS over HTTP/JSON (docs/pos-integration.md): an award and a balance"
    echo "\$ curl -H 'Authorization: Bearer ...' -H 'Idempotency-Key: demo-http-$run_id' \\"
    echo "       -d '{\"member\":\"alice\",\"points\":25}' http://$(http_addr 2)/v1/awards"
    curl -sS -H "Authorization: Bearer $key" -H "Idempotency-Key: demo-http-$run_id" \
        -H 'Content-Type: application/json' -d '{"member":"alice","points":25}' \
        "http://$(http_addr 2)/v1/awards"
    echo
    curl -sS -H "Authorization: Bearer $key" "http://$(http_addr 2)/v1/members/alice/balance"
    echo
    echo
    echo "# node 3: a --consistent read asks the leader first, so it sees both"
    demo 3 balance --member alice --consistent
    demo 3 cluster status
    echo
    echo "# every node at the same index, with the same head hash and state digest"
    demo 3 cluster check --wait-s 10
    echo
    echo "# so node 3's own copy (a plain read, no round trip) says the same"
    demo 3 balance --member alice
    demo 3 history --member alice --limit 5
    echo
    echo "# who owes whom: the settlement statement and the program report"
    demo 3 settlement --from 2020-01-01 --to 2100-01-01
    demo 3 report --all --from 2020-01-01 --to 2100-01-01
    demo 3 verify
}

usage_notes() {
    cat <<EOF

=== the three nodes keep running ===
Node 1: $(node_addr 1)   node 2: $(node_addr 2)   node 3: $(node_addr 3)
HTTP/JSON API: http://$(http_addr 1), http://$(http_addr 2), http://$(http_addr 3)
  (POS terminals: coalition apikey create --partner books; docs/pos-integration.md)
Use the CLI (it talks to $(node_addr 1) unless given --node HOST:PORT):
  export PATH="$ROOT/$BUILD:\$PATH"
  export COALITION_KEY_DIR=$ROOT/$CLUSTER_DIR/keys   # signs writes (docs/security.md)
  coalition status
  coalition award --partner coffee --member alice --points 50 --txn my-txn-1
  coalition --node $(node_addr 2) award --partner coffee --member alice --points 50 --txn my-txn-1
      (a retry through another node: a duplicate with the same seq)
  coalition --node $(node_addr 3) --json balance --member alice
  coalition reverse --partner coffee --of my-txn-1 --txn my-refund-1
  coalition cluster status
  coalition cluster check
  coalition --help
Logs, data and pids: $ROOT/$CLUSTER_DIR/node{1,2,3}.log, node{1,2,3}/, node{1,2,3}.pid
Kill a node and watch the others carry on (a new leader if it was the leader):
  kill -9 \$(cat $CLUSTER_DIR/node1.pid); coalition --node $(node_addr 2) cluster status
  scripts/run.sh        # starts it again on its data, and reruns the demo
Stop them:  scripts/run.sh stop      Status:  scripts/run.sh status
More nodes, other ports: scripts/cluster.sh --help
EOF
}

case "${1:-start}" in
start)
    build
    start_nodes
    run_demo
    usage_notes
    ;;
stop)
    stop_old_single_node
    "${CLUSTER[@]}" stop
    ;;
status)
    "${CLUSTER[@]}" status
    ;;
-h | --help | help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    ;;
*)
    echo "usage: scripts/run.sh [start|stop|status]" >&2
    exit 2
    ;;
esac
