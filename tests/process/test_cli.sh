#!/usr/bin/env bash
# Drives the real `coalition` CLI against a real coalitiond: every command,
# human and --json output, idempotent and conflicting retries, reversals, and
# every rejection with its exit code and stable error code.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

mapfile -t PORTS < <(free_port 3)
PORT=${PORTS[0]}
DEAD_PORT=${PORTS[1]} # nothing listens here
start_node "$TEST_TMP/node1" "$PORT" --raft "127.0.0.1:${PORTS[2]}"

ACCEPTED=0 # entries accepted since the first award, to check seq numbering
LAST_SEQ=0

# write_ok ARGS...: a write that must be accepted as new; sets SEQ.
write_ok() {
    expect_exit 0 cli --json "$@"
    expect_eq "$(json_get duplicate)" false "duplicate of '$*'"
    SEQ=$(json_get seq)
    [[ $SEQ =~ ^[0-9]+$ ]] || fail "'$*': no seq in $OUT"
    if ((SEQ <= LAST_SEQ)); then
        fail "'$*': seq $SEQ not after $LAST_SEQ"
    fi
    LAST_SEQ=$SEQ
    ACCEPTED=$((ACCEPTED + 1))
}

# balance_is MEMBER POINTS: checks --json and the human output.
balance_is() {
    expect_exit 0 cli --json balance --member "$1"
    expect_eq "$(json_get member)" "$1" "balance --json member"
    expect_eq "$(json_get points)" "$2" "balance of $1"
    local as_of
    as_of=$(json_get as_of_seq)
    [[ $as_of =~ ^[0-9]+$ ]] || fail "balance --json: no as_of_seq in $OUT"
    expect_exit 0 cli balance --member "$1"
    [[ $OUT =~ (^|[^0-9])$2([^0-9]|$) ]] || fail "human balance of $1: no $2 in: $OUT"
}

log "partners and members"
write_ok partner add --id coffee --name "Bean Coffee"
write_ok partner add --id books --name "Page Books"
write_ok member add --id alice --card 4000-0001
SEQ_ALICE=$SEQ
write_ok member add --id bob
expect_error 1 ALREADY_EXISTS partner add --id coffee --name "Bean Coffee again"
expect_error 1 ALREADY_EXISTS member add --id alice

log "award, redeem, balance, history"
ACCEPTED=0
write_ok award --partner coffee --member alice --points 500 --txn a1 --reason "latte x5"
SEQ_A1=$SEQ
FIRST_SEQ=$SEQ
expect_eq "$(json_get points)" 500 "award points"
[[ $(json_get time_ms) =~ ^[1-9][0-9]*$ ]] || fail "award: no time_ms in $OUT"
write_ok redeem --partner books --member alice --points 200 --txn r1
SEQ_R1=$SEQ
expect_eq "$(json_get points)" 200 "redeem points"
balance_is alice 300
balance_is bob 0

expect_exit 0 cli --json history --member alice
HIST=$OUT
# Newest first; enrolment is an entry of the member's too (delta 0).
expect_eq "$(json_all delta "$HIST" | tr '\n' ' ')" "-200 500 0 " "history deltas"
expect_eq "$(json_all seq "$HIST" | tr '\n' ' ')" "$SEQ_R1 $SEQ_A1 $SEQ_ALICE " "history seqs"
expect_eq "$(json_all kind "$HIST" | tr '\n' ' ')" "redeem award member_add " "history kinds"
expect_eq "$(json_all txn "$HIST" | tr '\n' ' ')" "r1 a1 alice " "history txn ids"
expect_eq "$(json_all partner "$HIST" | tr '\n' ' ')" "books coffee  " "history partners"
expect_eq "$(json_get member "$HIST")" alice "history member"
expect_contains "$HIST" "latte x5" "history reason"
expect_exit 0 cli --json history --member alice --limit 1
expect_eq "$(json_all delta | tr '\n' ' ')" "-200 " "history --limit 1"
expect_exit 0 cli history --member alice
expect_contains "$OUT" a1 "human history"
expect_contains "$OUT" r1 "human history"

log "idempotent and conflicting retries"
expect_exit 0 cli --json award --partner coffee --member alice --points 500 --txn a1 \
    --reason "latte x5"
expect_eq "$(json_get duplicate)" true "retry of a1: duplicate"
expect_eq "$(json_get seq)" "$SEQ_A1" "retry of a1: seq"
expect_exit 0 cli --json redeem --partner books --member alice --points 200 --txn r1
expect_eq "$(json_get duplicate)" true "retry of r1: duplicate"
expect_eq "$(json_get seq)" "$SEQ_R1" "retry of r1: seq"
expect_error 1 CONFLICT award --partner coffee --member alice --points 501 --txn a1 \
    --reason "latte x5"
expect_error 1 CONFLICT award --partner coffee --member bob --points 500 --txn a1 \
    --reason "latte x5"
# The same txn id at another partner is another transaction.
write_ok award --partner books --member bob --points 5 --txn a1
balance_is alice 300
balance_is bob 5

log "transfer"
write_ok transfer --partner coffee --from alice --to bob --points 50 --txn x1
expect_eq "$(json_get points)" 50 "transfer points"
balance_is alice 250
balance_is bob 55
expect_error 1 INSUFFICIENT_POINTS transfer --partner coffee --from bob --to alice \
    --points 56 --txn x2
expect_error 1 UNKNOWN_MEMBER transfer --partner coffee --from alice --to nobody \
    --points 1 --txn x3

log "reversals of an award"
write_ok award --partner coffee --member alice --points 100 --txn a2
balance_is alice 350
write_ok reverse --partner coffee --of a2 --txn rv1 --points 40
expect_eq "$(json_get points)" 40 "partial reversal points"
balance_is alice 310
write_ok reverse --partner coffee --of a2 --txn rv2
expect_eq "$(json_get points)" 60 "whole reversal takes what is left"
balance_is alice 250
write_ok award --partner coffee --member alice --points 10 --txn a3
expect_error 1 REVERSAL_EXCEEDS reverse --partner coffee --of a3 --txn rv3 --points 11
expect_error 1 UNKNOWN_TXN reverse --partner coffee --of no-such-txn --txn rv3b
# Only the partner that made a transaction can reverse it.
expect_error 1 UNKNOWN_TXN reverse --partner books --of a3 --txn rv3c
balance_is alice 260

log "reversals of a redemption"
write_ok redeem --partner books --member alice --points 100 --txn r2
balance_is alice 160
write_ok reverse --partner books --of r2 --txn rv4 --points 30
balance_is alice 190
expect_error 1 REVERSAL_EXCEEDS reverse --partner books --of r2 --txn rv5x --points 71
write_ok reverse --partner books --of r2 --txn rv5
expect_eq "$(json_get points)" 70 "whole reversal of the rest of r2"
balance_is alice 260
expect_exit 0 cli --json history --member alice --limit 3
expect_eq "$(json_all delta | tr '\n' ' ')" "70 30 -100 " "history after redemption reversals"

log "rejections"
expect_error 1 UNKNOWN_MEMBER award --partner coffee --member nobody --points 10 --txn e1
expect_error 1 UNKNOWN_MEMBER redeem --partner coffee --member nobody --points 10 --txn e2
expect_error 1 UNKNOWN_MEMBER balance --member nobody
# A key that no admitted partner has: the node cannot verify its signature.
partner_keygen nopartner
expect_error 1 UNAUTHENTICATED award --partner nopartner --member alice --points 10 --txn e3
expect_error 1 UNAUTHENTICATED redeem --partner nopartner --member alice --points 10 --txn e4
expect_error 1 INSUFFICIENT_POINTS redeem --partner books --member alice --points 261 --txn e5
expect_error 1 INVALID_AMOUNT award --partner coffee --member alice --points 0 --txn e6
expect_error 1 INVALID_AMOUNT award --partner coffee --member alice --points -5 --txn e7
expect_error 1 INVALID_AMOUNT award --partner coffee --member alice --points 1000000000001 \
    --txn e8
expect_error 1 INVALID_AMOUNT redeem --partner books --member alice --points 0 --txn e9
# The limit itself is allowed.
write_ok award --partner coffee --member bob --points 1000000000000 --txn big
balance_is bob 1000000000055
# A rejected transaction changed nothing, not even under its txn id: the
# same id can be used again once the request is valid.
write_ok redeem --partner books --member alice --points 60 --txn e5
balance_is alice 200
# Human output of an error names the code too.
expect_exit 1 cli redeem --partner books --member alice --points 100000 --txn e10
expect_contains "$OUT$ERR" INSUFFICIENT_POINTS "human error output"

log "usage errors (exit 2)"
expect_exit 2 "$COALITION" --node "127.0.0.1:$PORT"
expect_exit 2 cli frobnicate
expect_exit 2 cli award --partner coffee --member alice --points 10
expect_exit 2 cli award --partner coffee --member alice --txn u1
expect_exit 2 cli award --partner coffee --member alice --points ten --txn u2
expect_exit 2 cli partner add --name "No Id"
expect_exit 2 cli balance
expect_exit 2 cli reverse --partner coffee --txn u3
expect_exit 2 cli transfer --partner coffee --from alice --points 1 --txn u4
expect_exit 2 cli balance --member alice --bogus-flag
expect_exit 0 "$COALITION" --help

log "node unreachable (exit 3)"
expect_exit 3 "$COALITION" --node "127.0.0.1:$DEAD_PORT" status
expect_exit 3 "$COALITION" --node "127.0.0.1:$DEAD_PORT" --json balance --member alice
expect_eq "$(json_get code "$OUT$ERR")" UNREACHABLE "unreachable error code"
expect_exit 3 "$COALITION" --node "127.0.0.1:$DEAD_PORT" award --partner coffee \
    --member alice --points 1 --txn u5

log "status and verify"
expect_eq "$LAST_SEQ" $((FIRST_SEQ + ACCEPTED - 1)) "seq numbering (rejections take no seq)"
expect_exit 0 cli --json status
expect_eq "$(json_get applied_seq)" "$LAST_SEQ" "status --json applied_seq"
expect_exit 0 cli status
[[ $OUT =~ (^|[^0-9])$LAST_SEQ([^0-9]|$) ]] || fail "human status does not show seq $LAST_SEQ: $OUT"
expect_exit 0 cli verify
expect_exit 0 cli --json verify

stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after SIGTERM"
log "PASS"
