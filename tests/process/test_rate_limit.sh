#!/usr/bin/env bash
# The per-partner rate limit limits, and a client that honours RATE_LIMITED
# loses nothing.  The node allows each partner RPS requests per second; the
# load generator offers far more.  Its setup (every request from one
# partner) must still create every member and award, by waiting and
# resending the refused requests with the same txn ids; a timed load of one
# partner must commit no more than the bucket allows; and every
# acknowledged transaction must be on the ledger once.  (CI once failed
# here: a fast machine made the setup outrun the default 2000/s, and the
# load generator took RATE_LIMITED for a failure.)
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

RPS=100
MEMBERS=300
DURATION=3
PORT=$(free_port)
start_node "$TEST_TMP/node1" "$PORT" --set "limits.partner_rps=$RPS"
NODE=127.0.0.1:$PORT

log "setup of $MEMBERS members at $RPS requests/s for the setup partner"
expect_exit 0 "$LOADGEN" --node "$NODE" --setup --members "$MEMBERS" --partners 1 \
    --clients 4 --depth 16
expect_contains "$OUT" "members: $MEMBERS created" "setup members"
expect_contains "$OUT" "awards: $MEMBERS created" "setup awards"
retried=$(sed -n 's/.*rate-limited \([0-9]*\) times.*/\1/p' <<<"$OUT" | tail -1)
log "setup: ${retried:-no} RATE_LIMITED answers, each resent"
((${retried:-0} > 0)) || fail "the setup was never rate limited: the test proves nothing"

log "a ${DURATION} s load of one partner, with an ack log"
ACKS=$TEST_TMP/acks.txt
expect_exit 0 "$LOADGEN" --node "$NODE" --clients 8 --depth 8 --duration "$DURATION" \
    --members "$MEMBERS" --partners 1 --ack-log "$ACKS"
result=$(grep '^RESULT ' <<<"$OUT") || fail "no RESULT line"
committed=$(sed 's/.* committed=\([0-9]*\).*/\1/' <<<"$result")
rejected=$(sed 's/.* rejected=\([0-9]*\).*/\1/' <<<"$result")
errors=$(sed 's/.* errors=\([0-9]*\).*/\1/' <<<"$result")
seconds=$(sed 's/.* seconds=\([0-9.]*\).*/\1/' <<<"$result")
answered=$((committed + rejected))
# A full bucket (RPS) plus RPS per second of the run; +1 s for rounding.
allowed=$(awk -v r="$RPS" -v s="$seconds" 'BEGIN { printf "%d", r + r * (s + 1) }')
log "load: $answered answered ($committed committed) in $seconds s, at most $allowed allowed"
expect_eq "$errors" 0 "load errors"
((answered <= allowed)) || fail "$answered answered in $seconds s: the limit of $RPS/s did not hold"
((answered >= RPS)) || fail "only $answered answered: not even the first full bucket"
grep -q 'RATE_LIMITED=' <<<"$OUT" || fail "the load was never rate limited"
expect_eq "$(wc -l <"$ACKS")" "$committed" "ack log lines"

log "every acknowledged transaction is on the ledger, with its seq"
expect_exit 0 "$LOADGEN" --node "$NODE" --clients 2 --depth 16 --check-log "$ACKS"
expect_contains "$OUT" "$committed checked, $committed present" "check-log summary"
expect_exit 0 cli verify

stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after SIGTERM"
log "PASS"
