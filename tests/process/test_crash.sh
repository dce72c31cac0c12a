#!/usr/bin/env bash
# The kill -9 test: a node killed mid-load loses no acknowledged transaction.
# Several load generator clients record every acknowledged transaction in an
# ack log; the node is killed with SIGKILL while they run, restarted on the
# same data directory, and every logged transaction is resubmitted: each
# must come back as a duplicate with the seq it was acknowledged with.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ROUNDS=${CRASH_ROUNDS:-3}
ACKS_MIN=${CRASH_ACKS_MIN:-500}
MEMBERS=2000
PARTNERS=10
PORT=$(free_port)
DATA=$TEST_TMP/node1
start_node "$DATA" "$PORT"
NODE=127.0.0.1:$PORT

log "setup: $PARTNERS partners, $MEMBERS members"
expect_exit 0 "$LOADGEN" --node "$NODE" --setup --members "$MEMBERS" --partners "$PARTNERS" \
    --clients 8 --depth 16

for round in $(seq "$ROUNDS"); do
    ACKS=$TEST_TMP/acks-$round.txt
    LG_LOG=$TEST_TMP/loadgen-$round.log
    : >"$ACKS"
    log "round $round: load with an ack log, then kill -9 the node"
    "$LOADGEN" --node "$NODE" --clients 8 --depth 4 --duration 60 --members "$MEMBERS" \
        --partners "$PARTNERS" --ack-log "$ACKS" >"$LG_LOG" 2>&1 &
    LG_PID=$!
    track_pid "$LG_PID"

    # Kill once enough acks are in, at a moment chosen by the load, not a sleep.
    want=$((2 * ACKS_MIN + RANDOM % (4 * ACKS_MIN)))
    deadline=$(($(now_ms) + 30000))
    while (($(wc -l <"$ACKS") < want)); do
        proc_exited "$LG_PID" && fail "the load generator stopped before the kill"
        (($(now_ms) < deadline)) || fail "fewer than $want acks after 30 s"
        sleep 0.05
    done
    stop_node KILL
    expect_eq "$EXIT_CODE" 137 "node exit status after SIGKILL"

    # The load generator sees its connections fail and exits 0 (ack-log mode).
    wait_exit "$LG_PID" 30 || fail "the load generator did not exit after the node died"
    expect_eq "$EXIT_CODE" 0 "load generator exit status"
    acked=$(wc -l <"$ACKS")
    ((acked >= ACKS_MIN)) || fail "only $acked acks recorded; the test would be vacuous"
    grep -q '^RESULT ' "$LG_LOG" || fail "no RESULT line from the load generator"
    log "round $round: $acked transactions acknowledged before the kill"

    log "round $round: restart and check every acknowledged transaction"
    start_node "$DATA" "$PORT"
    expect_exit 0 "$LOADGEN" --node "$NODE" --clients 4 --depth 16 --check-log "$ACKS"
    expect_contains "$OUT" "$acked checked, $acked present" "check-log summary"
    expect_exit 0 cli verify
    # The last acknowledged seq is at most what the node has applied.
    last_seq=$(awk '{ if ($6 > m) m = $6 } END { print m + 0 }' "$ACKS")
    expect_exit 0 cli --json status
    applied=$(json_get applied_seq)
    ((applied >= last_seq)) || fail "applied_seq $applied is behind the acked seq $last_seq"
done

log "the check itself catches a lost transaction"
BOGUS=$TEST_TMP/acks-bogus.txt
echo "award P01 never-acked-$$ M000001 10 1" >"$BOGUS"
expect_exit 1 "$LOADGEN" --node "$NODE" --clients 1 --check-log "$BOGUS"
expect_contains "$OUT" "1 lost or changed" "check-log of a never-acked transaction"

stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after SIGTERM"
log "PASS"
