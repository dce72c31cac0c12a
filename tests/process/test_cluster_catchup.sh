#!/usr/bin/env bash
# Catch-up: a follower stopped with SIGTERM misses writes and, restarted on
# its data, catches up from the leader's log.  Then a follower loses its
# data: it is killed, removed from the configuration, and started again with
# an empty data directory and --join; meanwhile enough is written for the
# leader to take snapshots and trim its log (small --snapshot-threshold), so
# the new node catches up from a snapshot.  Each time every node ends at the
# same index, head hash and state (`cluster check`), with the same balances.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

MEMBERS=300
PARTNERS=5
LOAD_S=${CATCHUP_LOAD_S:-3}

start_cluster 3 --snapshot-threshold 64 --snapshot-trailing 16
expect_exit 0 "$LOADGEN" --node "$(node_addr 1)" --setup --members "$MEMBERS" \
    --partners "$PARTNERS" --clients 4 --depth 16

# load NAME NODE...: LOAD_S seconds of awards and redemptions through the
# given nodes; every request must be answered.
load() {
    local name=$1 i list=''
    shift
    for i in "$@"; do
        list+=${list:+,}$(node_addr "$i")
    done
    expect_exit 0 "$LOADGEN" --node "$list" --clients 4 --depth 2 --duration "$LOAD_S" \
        --members "$MEMBERS" --partners "$PARTNERS"
    log "load $name through nodes $*: $(grep '^RESULT' <<<"$OUT")"
}

# same_state: after `cluster check`, every running node reports the same
# applied index, applied seq and head hash, balances and verification.
same_state() {
    local i field value check statuses=''
    cluster_agrees 60
    check=$OUT
    for i in $(running_members); do
        expect_exit 0 cli_on "$i" --json status
        statuses+="node $i: $OUT"$'\n'
    done
    for field in applied_index applied_seq head_hash; do
        value=
        while read -r i; do
            if [[ -z $value ]]; then
                value=$(json_get "$field" "$i")
            elif [[ $(json_get "$field" "$i") != "$value" ]]; then
                fail "$field differs after cluster check agreed
cluster check: $check
$statuses"
            fi
        done <<<"${statuses%$'\n'}"
    done
    for i in 1 17 $((MEMBERS / 2)) "$MEMBERS"; do
        # Every node evaluates expiry and locks at the same instant.
        AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
        expect_same_everywhere "balance of member $i" balance --member "$(printf 'M%06u' "$i")" --at "$AT"
    done
    verify_everywhere
}

# ---- a follower stops cleanly, misses writes, restarts -----------------------

STOPPED=$(a_follower)
log "stop follower $STOPPED (SIGTERM), write without it"
stop_member "$STOPPED" TERM
expect_eq "$EXIT_CODE" 0 "exit status of node $STOPPED after SIGTERM"
read -r -a UP <<<"$(running_members)"
load "without node $STOPPED" "${UP[@]}"
expect_exit 0 cli_on "$LEADER" --json status
INDEX_BEFORE=$(json_get applied_index)
log "leader node $LEADER is at applied index $INDEX_BEFORE"

log "restart node $STOPPED on its data"
start_member "$STOPPED"
same_state
expect_exit 0 cli_on "$STOPPED" --json status
INDEX_AFTER=$(json_get applied_index)
((INDEX_AFTER >= INDEX_BEFORE)) ||
    fail "node $STOPPED at applied index $INDEX_AFTER, the leader was at $INDEX_BEFORE"
log "node $STOPPED caught up to index $INDEX_AFTER"

# ---- a follower loses its data and joins again -------------------------------

wait_leader 20
WIPED=$(a_follower)
OTHER=
for i in $(running_members); do
    [[ $i == "$WIPED" || $i == "$LEADER" ]] || OTHER=$i
done
[[ -n $OTHER ]] || fail "no third node"
log "kill follower $WIPED, remove it through follower $OTHER, wipe its data"
stop_member "$WIPED" KILL
expect_exit 0 cli_on "$OTHER" --json cluster remove --id "$WIPED"
expect_exit 0 cli_on "$LEADER" --json cluster status
expect_eq "$(json_all id | sort -n | tr '\n' ' ')" "$(printf '%s\n' "$LEADER" "$OTHER" |
    sort -n | tr '\n' ' ')" "node ids after removing node $WIPED"
rm -rf "$TEST_TMP/node$WIPED"

log "write while node $WIPED is gone (the leader snapshots and trims its log)"
load "without node $WIPED" "$LEADER" "$OTHER"
snapshots=$(find "$TEST_TMP/node$LEADER" -name 'snapshot-*' ! -name '*.meta' | wc -l)
((snapshots > 0)) || fail "no snapshot file under node $LEADER's data after the load"
log "leader node $LEADER keeps $snapshots snapshot file(s)"

log "node $WIPED joins again with an empty data directory through node $OTHER"
MEMBER_JOIN[WIPED]=$(node_addr "$OTHER")
start_member "$WIPED"
load "while node $WIPED catches up" "$LEADER" "$OTHER"
# It joins as a spare, catches up, and is then promoted to voter (there are
# fewer than three voters); `cluster check` does not compare spares.
wait_role "$WIPED" voter 60
same_state
expect_exit 0 cli_on "$LEADER" --json cluster status
expect_eq "$(json_all id | sort -n | tr '\n' ' ')" "1 2 3 " "node ids after node $WIPED joined"
expect_eq "$(json_all role | grep -c '^voter$')" 3 "voters after node $WIPED joined"
installed=$(find "$TEST_TMP/node$WIPED" -name 'snapshot-*' | wc -l)
((installed > 0)) || fail "node $WIPED has no snapshot: it did not catch up from one"

log "a write through the rejoined node"
expect_exit 0 cli_on "$WIPED" --json award --partner P01 --member M000001 --points 5 --txn rejoined
expect_eq "$(json_get duplicate)" false "award through the rejoined node"
same_state

stop_cluster
log "PASS"
