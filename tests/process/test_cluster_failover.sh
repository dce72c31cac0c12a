#!/usr/bin/env bash
# Failover: the leader of three nodes is killed with SIGKILL while load runs
# through all three; twice, the second time the leader that took over.  The
# other two elect a new leader and keep taking writes; the killed node
# restarts on its data and catches up.  No
# acknowledged transaction is lost: resubmitting each one through the
# cluster returns it as a duplicate with the seq it was acknowledged with,
# every node agrees (`cluster check`), and every node verifies.  Errors for
# requests in flight at the dead leader are expected (their fate is unknown
# and they are not in the ack log).
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ROUNDS=${FAILOVER_ROUNDS:-2}
ACKS_MIN=${FAILOVER_ACKS_MIN:-300}
ELECTION_MAX_MS=${FAILOVER_ELECTION_MAX_MS:-10000}
MEMBERS=1000
PARTNERS=10

start_cluster 3
NODES=$(all_addrs)

log "setup through node 1: $PARTNERS partners, $MEMBERS members"
expect_exit 0 "$LOADGEN" --node "$(node_addr 1)" --setup --members "$MEMBERS" \
    --partners "$PARTNERS" --clients 8 --depth 16

ALL_ACKS=$TEST_TMP/acks-all.txt
: >"$ALL_ACKS"

# wait_acks FILE N WHAT: waits (at most 30 s) until FILE has N lines.
wait_acks() {
    local deadline=$(($(now_ms) + 30000))
    while (($(wc -l <"$1") < $2)); do
        proc_exited "$LG_PID" && fail "the load generator stopped $3"
        (($(now_ms) < deadline)) || fail "fewer than $2 acks after 30 s $3"
        sleep 0.05
    done
}

for round in $(seq "$ROUNDS"); do
    ACKS=$TEST_TMP/acks-$round.txt
    LG_LOG=$TEST_TMP/loadgen-$round.log
    : >"$ACKS"
    log "round $round: load over all three nodes with an ack log"
    "$LOADGEN" --node "$NODES" --clients 6 --depth 4 --duration 60 --members "$MEMBERS" \
        --partners "$PARTNERS" --ack-log "$ACKS" >"$LG_LOG" 2>&1 &
    LG_PID=$!
    track_pid "$LG_PID"

    # Kill once enough acks are in, at a moment chosen by the load.
    wait_acks "$ACKS" $((ACKS_MIN + RANDOM % ACKS_MIN)) "before the kill"
    OLD_LEADER=$LEADER
    acked_before=$(wc -l <"$ACKS")
    log "round $round: kill -9 the leader, node $OLD_LEADER, after $acked_before acks"
    KILL_MS=$(now_ms)
    stop_member "$OLD_LEADER" KILL
    expect_eq "$EXIT_CODE" 137 "exit status of node $OLD_LEADER after SIGKILL"

    read -r -a SURVIVORS <<<"$(running_members)"
    wait_leader 20 "${SURVIVORS[@]}"
    ELECTION_MS=$(($(now_ms) - KILL_MS))
    [[ $LEADER != "$OLD_LEADER" ]] || fail "node $OLD_LEADER is dead but still the leader"
    log "round $round: node $LEADER is the new leader after ${ELECTION_MS} ms"
    ((ELECTION_MS <= ELECTION_MAX_MS)) || fail "election took ${ELECTION_MS} ms"

    # The survivors keep taking writes from the clients that still have a node.
    wait_acks "$ACKS" $(($(wc -l <"$ACKS") + ACKS_MIN)) "after the failover"
    kill -TERM "$LG_PID"
    wait_exit "$LG_PID" 30 || fail "the load generator did not stop"
    expect_eq "$EXIT_CODE" 0 "load generator exit status (ack-log mode)"
    grep -q '^RESULT ' "$LG_LOG" || fail "no RESULT line from the load generator"
    acked=$(wc -l <"$ACKS")
    log "round $round: $acked acknowledged, $((acked - acked_before)) after the kill;" \
        "$(grep -c 'connection failed' "$LG_LOG" || true) connections failed;" \
        "$(grep 'answers:' "$LG_LOG" || echo 'no error answers')"
    cat "$ACKS" >>"$ALL_ACKS"

    log "round $round: restart node $OLD_LEADER on its data; it catches up"
    start_member "$OLD_LEADER"
    cluster_agrees 30

    ACKED=$(wc -l <"$ALL_ACKS")
    log "round $round: every one of the $ACKED acknowledged transactions is there, same seq"
    expect_exit 0 "$LOADGEN" --node "$(node_addr "$OLD_LEADER")" --clients 4 --depth 16 \
        --check-log "$ALL_ACKS"
    expect_contains "$OUT" "$ACKED checked, $ACKED present" "check-log through node $OLD_LEADER"
    # The check only found duplicates: still every node agrees.
    cluster_agrees 30
    LAST_SEQ=$(awk '{ if ($6 > m) m = $6 } END { print m + 0 }' "$ALL_ACKS")
    for i in 1 2 3; do
        expect_exit 0 cli_on "$i" --json status
        applied=$(json_get applied_seq)
        ((applied >= LAST_SEQ)) ||
            fail "node $i: applied_seq $applied is behind the acked seq $LAST_SEQ"
    done
    # Every node evaluates expiry and locks at the same instant.
    AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    expect_same_everywhere "balance of M000001" balance --member M000001 --at "$AT"
    verify_everywhere
    wait_leader 20
done

log "writes work through every node after the failover"
for i in 1 2 3; do
    expect_exit 0 cli_on "$i" --json award --partner P01 --member M000002 --points 1 \
        --txn "after-$i"
    expect_eq "$(json_get duplicate)" false "award after the failover through node $i"
done

stop_cluster
log "PASS"
