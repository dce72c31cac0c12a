#!/usr/bin/env bash
# Runs the example POS (client/examples/pos.c, coalition-example-pos) against
# a real coalitiond that enforces partner security: checkouts signed by the
# POS itself and sent with an API key (the node signs), a node list whose
# first address is dead (failover), a rerun with the same transaction ids
# (all duplicates), retries through a node that stops answering for a while
# (SIGSTOP: TIMEOUT, then the same txn ids again), and refused checkouts (a
# forged signer, a bad or revoked API key).  After each, the member's balance
# must be exactly what the checkouts add up to.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

POS=$BUILD_DIR/coalition-example-pos
[[ -x $POS ]] || fail "$POS is not built"

# Keys: the shared helpers when they are there (KEY_DIR with admin.key, nodes
# started with --admin-public-key, `cli` signing from KEY_DIR), else the same
# made here.
if ! declare -F partner_keygen >/dev/null; then
    KEY_DIR=$TEST_TMP/keys
    mkdir -p "$KEY_DIR"
    "$COALITION" keygen --out "$KEY_DIR/admin" >/dev/null
    partner_keygen() { "$COALITION" keygen --out "$KEY_DIR/$1" >/dev/null; }
    cli() { "$COALITION" --node "127.0.0.1:$NODE_PORT" --key-dir "$KEY_DIR" "$@"; }
    ADMIN_ARGS=(--admin-public-key "$(<"$KEY_DIR/admin.pub")")
else
    ADMIN_ARGS=()
fi
partner_keygen shop
partner_keygen other

mapfile -t PORTS < <(free_port 3)
PORT=${PORTS[0]}
DEAD_PORT=${PORTS[1]} # nothing listens here
# The node signs for partner "shop": API keys of shop work on it.
start_node "$TEST_TMP/node1" "$PORT" --raft "127.0.0.1:${PORTS[2]}" "${ADMIN_ARGS[@]}" \
    --partner shop --partner-key "$KEY_DIR/shop.key"
NODES=127.0.0.1:$DEAD_PORT,127.0.0.1:$PORT

balance_is() {
    expect_exit 0 cli --json balance --member "$1" --consistent
    expect_eq "$(json_get points)" "$2" "balance of $1"
}

# pos_ok ARGS...: a checkout that must succeed; RESULT fields in R_*.
pos_ok() {
    expect_exit 0 "$POS" --node "$NODES" --card card-1 --partner shop "$@"
    local line
    line=$(grep '^RESULT ' <<<"$OUT") || fail "no RESULT line: $OUT"
    for f in member awarded captured returned refunded balance duplicates retries node; do
        local v
        v=$(grep -oE " $f=[^ ]*" <<<" ${line#RESULT}" | cut -d= -f2)
        printf -v "R_$f" '%s' "$v"
    done
}

log "setup through the CLI, signed from $KEY_DIR"
expect_exit 0 cli partner add shop --name "Corner Shop"
expect_exit 0 cli partner add other --name "Other Shop"
expect_exit 0 cli member add --id m1 --card card-1 --partner shop
expect_exit 0 cli award --partner shop --member m1 --points 1000 --txn seed
balance_is m1 1000

log "a signed checkout with a refund, through a node list whose first node is dead"
pos_ok --key "$KEY_DIR/shop.key" --txn-prefix c1 --purchase-cents 12345 --discount-points 50
expect_eq "$R_member" m1 "member found by card"
expect_eq "$R_awarded" 123 "points for 123.45 (1 point per unit, no program)"
expect_eq "$R_captured" 50 "discount captured"
expect_eq "$R_returned" 50 "discount given back"
expect_eq "$R_refunded" 123 "award reversed"
expect_eq "$R_balance" 1000 "balance after a refunded checkout"
expect_eq "$R_duplicates" 0 "duplicates on the first run"
expect_eq "$R_node" "127.0.0.1:$PORT" "the node the POS failed over to"
balance_is m1 1000

log "a kept purchase, then the same checkout again: all duplicates, nothing booked twice"
pos_ok --key "$KEY_DIR/shop.key" --txn-prefix c2 --purchase-cents 20000 --discount-points 30 \
    --no-refund
expect_eq "$R_awarded" 200 "points for 200.00"
expect_eq "$R_balance" 1170 "1000 + 200 - 30"
balance_is m1 1170
pos_ok --key "$KEY_DIR/shop.key" --txn-prefix c2 --purchase-cents 20000 --discount-points 30 \
    --no-refund
expect_eq "$R_duplicates" 3 "award, hold and capture answered as duplicates"
expect_eq "$R_awarded" 200 "a duplicate answers the original points"
expect_eq "$R_balance" 1170 "balance after the rerun"
balance_is m1 1170

log "with an API key: the node signs for its partner"
if declare -F api_key_for >/dev/null; then
    KEY=$(api_key_for shop)
else
    KEY=$(cli apikey create --partner shop 2>/dev/null)
fi
[[ $KEY =~ ^[0-9a-f]{16}\.[0-9a-f]{64}$ ]] || fail "not an API key: '$KEY'"
pos_ok --api-key "$KEY" --txn-prefix c3 --purchase-cents 5000 --discount-points 20 --no-refund
expect_eq "$R_awarded" 50 "points for 50.00"
expect_eq "$R_balance" 1200 "1170 + 50 - 20"
balance_is m1 1200

log "the node stops answering for a while: TIMEOUT, then the same txn ids again"
# The cashier takes 2 s before each write: the node is stopped after the
# member was found, so the award goes to a node that does not answer.
"$POS" --node "127.0.0.1:$PORT" --card card-1 --partner shop --key "$KEY_DIR/shop.key" \
    --txn-prefix c4 --purchase-cents 10000 --discount-points 10 --no-refund \
    --timeout-ms 300 --attempts 40 --step-pause-ms 2000 \
    >"$TEST_TMP/pos-c4.out" 2>"$TEST_TMP/pos-c4.err" &
POS_PID=$!
track_pid "$POS_PID"
deadline=$(($(now_ms) + 10000))
until grep -q '^member m1' "$TEST_TMP/pos-c4.out"; do
    (($(now_ms) < deadline)) || fail "the POS did not find the member: $(<"$TEST_TMP/pos-c4.err")"
    sleep 0.02
done
kill -STOP "$NODE_PID"
sleep 3 # past the award, due 2 s after the member was found
kill -CONT "$NODE_PID"
wait_exit "$POS_PID" 60 || fail "the POS did not finish after the node came back"
OUT=$(<"$TEST_TMP/pos-c4.out")
ERR=$(<"$TEST_TMP/pos-c4.err")
expect_eq "$EXIT_CODE" 0 "POS exit status after retries (stderr: $ERR)"
expect_contains "$ERR" "award (txn c4-award): TIMEOUT" "the award timed out"
line=$(grep '^RESULT ' <<<"$OUT") || fail "no RESULT line: $OUT"
[[ $line =~ \ retries=([0-9]+) ]] && ((BASH_REMATCH[1] > 0)) || fail "no retries in: $line"
expect_contains "$line" " awarded=100 " "award after retries"
expect_contains "$line" " balance=1290 " "1200 + 100 - 10, once"
balance_is m1 1290
expect_exit 0 cli --json history --member m1 --limit 50
n=$(grep -o '"txn":"c4-award"' <<<"$OUT" | wc -l)
expect_eq "$n" 1 "entries of the retried award in the history"

log "the same with the library's retries (coalition_client_set_retries)"
"$POS" --node "127.0.0.1:$PORT" --card card-1 --partner shop --key "$KEY_DIR/shop.key" \
    --txn-prefix c5 --purchase-cents 10000 --discount-points 10 --no-refund \
    --timeout-ms 300 --attempts 40 --step-pause-ms 2000 --library-retries \
    >"$TEST_TMP/pos-c5.out" 2>"$TEST_TMP/pos-c5.err" &
POS_PID=$!
track_pid "$POS_PID"
deadline=$(($(now_ms) + 10000))
until grep -q '^member m1' "$TEST_TMP/pos-c5.out"; do
    (($(now_ms) < deadline)) || fail "the POS did not find the member: $(<"$TEST_TMP/pos-c5.err")"
    sleep 0.02
done
kill -STOP "$NODE_PID"
sleep 3
kill -CONT "$NODE_PID"
wait_exit "$POS_PID" 60 || fail "the POS did not finish after the node came back"
OUT=$(<"$TEST_TMP/pos-c5.out")
expect_eq "$EXIT_CODE" 0 "POS exit status with library retries (stderr: $(<"$TEST_TMP/pos-c5.err"))"
line=$(grep '^RESULT ' <<<"$OUT") || fail "no RESULT line: $OUT"
expect_contains "$line" " awarded=100 " "award after library retries"
expect_contains "$line" " balance=1380 " "1290 + 100 - 10, once"
balance_is m1 1380
expect_exit 0 cli --json history --member m1 --limit 50
n=$(grep -o '"txn":"c5-award"' <<<"$OUT" | wc -l)
expect_eq "$n" 1 "entries of the award the library retried"

log "refused checkouts change nothing"
# Signs as "other" with shop's key: the signature does not verify.
expect_exit 1 "$POS" --node "127.0.0.1:$PORT" --card card-1 --partner other \
    --key "$KEY_DIR/shop.key" --txn-prefix f1 --attempts 1
expect_contains "$ERR" "UNAUTHENTICATED" "forged signer"
# An API key that was never issued.
BAD_KEY=0123456789abcdef.$(printf '%064d' 0)
expect_exit 1 "$POS" --node "127.0.0.1:$PORT" --card card-1 --partner shop --api-key "$BAD_KEY" \
    --txn-prefix f2 --attempts 1
expect_contains "$ERR" "UNAUTHENTICATED" "unknown API key"
# shop's key used for partner other: the node signs only for shop.
expect_exit 1 "$POS" --node "127.0.0.1:$PORT" --card card-1 --partner other --api-key "$KEY" \
    --txn-prefix f3 --attempts 1
[[ $ERR == *FORBIDDEN* || $ERR == *UNAUTHENTICATED* ]] ||
    fail "API key of shop used for other: expected FORBIDDEN, got: $ERR"
# A revoked key.
expect_exit 0 cli apikey revoke --partner shop "${KEY%%.*}"
expect_exit 1 "$POS" --node "127.0.0.1:$PORT" --card card-1 --partner shop --api-key "$KEY" \
    --txn-prefix f4 --attempts 1
expect_contains "$ERR" "UNAUTHENTICATED" "revoked API key"
balance_is m1 1380

log "the ledger verifies"
expect_exit 0 cli verify
log "ok"
