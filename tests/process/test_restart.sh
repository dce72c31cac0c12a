#!/usr/bin/env bash
# A clean restart loses nothing: after awards and redemptions, SIGTERM must
# stop the node with exit status 0 within a few seconds; a node restarted on
# the same data directory shows the same balances, history and head, keeps
# numbering where it stopped, still knows old txn ids, and verifies.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

PORT=$(free_port)
DATA=$TEST_TMP/node1
start_node "$DATA" "$PORT"

log "writes before the restart"
cli partner add --id coffee --name "Bean Coffee" >/dev/null
cli partner add --id books --name "Page Books" >/dev/null
for m in alice bob carol; do
    cli member add --id "$m" >/dev/null
done
for i in 1 2 3 4 5 6; do
    cli award --partner coffee --member alice --points $((i * 100)) --txn "a-alice-$i" >/dev/null
    cli award --partner books --member bob --points $((i * 10)) --txn "a-bob-$i" >/dev/null
done
cli redeem --partner books --member alice --points 250 --txn r-alice-1 >/dev/null
cli transfer --partner coffee --from alice --to carol --points 75 --txn x-1 >/dev/null
cli reverse --partner coffee --of a-alice-6 --txn rv-1 --points 100 >/dev/null
expect_exit 0 cli --json award --partner coffee --member bob --points 7 --txn a-bob-last
LAST_SEQ=$(json_get seq)

declare -A BAL HIST
for m in alice bob carol; do
    expect_exit 0 cli --json balance --member "$m"
    BAL[$m]=$(json_get points)
    expect_exit 0 cli --json history --member "$m" --limit 100
    HIST[$m]=$OUT
done
expect_eq "${BAL[alice]}" $((2100 - 250 - 75 - 100)) "alice before restart"
expect_eq "${BAL[bob]}" 217 "bob before restart"
expect_eq "${BAL[carol]}" 75 "carol before restart"
expect_exit 0 cli --json status
STATUS_SEQ=$(json_get applied_seq)
expect_eq "$STATUS_SEQ" "$LAST_SEQ" "applied_seq before restart"
expect_exit 0 cli --json verify
VERIFY_BEFORE=$OUT

log "SIGTERM: clean shutdown"
stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after SIGTERM"
expect_exit 3 cli status

log "restart on the same data"
start_node "$DATA" "$PORT"
for m in alice bob carol; do
    expect_exit 0 cli --json balance --member "$m"
    expect_eq "$(json_get points)" "${BAL[$m]}" "balance of $m after restart"
    expect_exit 0 cli --json history --member "$m" --limit 100
    expect_eq "$OUT" "${HIST[$m]}" "history of $m after restart"
done
expect_exit 0 cli --json status
expect_eq "$(json_get applied_seq)" "$LAST_SEQ" "applied_seq after restart"
expect_exit 0 cli --json verify
for field in head_hash state_digest entries_checked; do
    expect_eq "$(json_get "$field")" "$(json_get "$field" "$VERIFY_BEFORE")" \
        "verify $field after restart"
done

log "old txn ids are remembered, numbering continues"
expect_exit 0 cli --json award --partner coffee --member alice --points 300 --txn a-alice-3
expect_eq "$(json_get duplicate)" true "retry of a pre-restart award"
expect_exit 1 cli --json award --partner coffee --member alice --points 301 --txn a-alice-3
expect_eq "$(json_get code "$OUT$ERR")" CONFLICT "conflicting retry after restart"
expect_exit 0 cli --json award --partner coffee --member carol --points 1 --txn after-1
expect_eq "$(json_get duplicate)" false "first write after restart"
expect_eq "$(json_get seq)" $((LAST_SEQ + 1)) "seq of the first write after restart"

log "second restart, with SIGINT"
stop_node INT
expect_eq "$EXIT_CODE" 0 "node exit status after SIGINT"
start_node "$DATA" "$PORT"
expect_exit 0 cli --json balance --member carol
expect_eq "$(json_get points)" 76 "carol after the second restart"
expect_exit 0 cli verify

stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after the last SIGTERM"
log "PASS"
