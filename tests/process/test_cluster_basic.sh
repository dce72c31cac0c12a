#!/usr/bin/env bash
# Three nodes replicate one ledger: writes through every node (a follower
# forwards to the leader and relays the answer), the same balances, status
# and verification on every node once `cluster check` agrees, a retry
# through another node is a duplicate with the same seq, and `cluster
# status` lists three voters and one leader.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

start_cluster 3 --election-timeout-ms 2500 # a stall of this machine must not move the leader
FOLLOWER=$(a_follower)
log "leader is node $LEADER, node $FOLLOWER is a follower"

log "cluster status lists three voters and one leader"
for i in 1 2 3; do
    expect_exit 0 cli_on "$i" --json cluster status
    expect_eq "$(json_all id | sort -n | tr '\n' ' ')" "1 2 3 " "node ids in cluster status from node $i"
    expect_eq "$(json_all role | grep -c '^voter$')" 3 "voters in cluster status from node $i"
    expect_eq "$(json_get leader_id)" "$LEADER" "leader id in cluster status from node $i"
    expect_eq "$(json_all state | sort | tr '\n' ' ')" "follower follower leader " \
        "node states in cluster status from node $i"
    for n in 1 2 3; do
        expect_contains "$OUT" "\"$(raft_addr "$n")\"" "raft address of node $n in cluster status"
    done
done
expect_exit 0 cli_on "$FOLLOWER" cluster status
expect_contains "$OUT" leader "human cluster status"
expect_contains "$OUT" voter "human cluster status"

log "setup through node 1, awards and redemptions through every node"
expect_exit 0 cli_on 1 partner add --id coffee --name "Bean Coffee"
expect_exit 0 cli_on 2 partner add --id books --name "Page Books"
expect_exit 0 cli_on 3 member add --id alice --card 4000-0001
expect_exit 0 cli_on 1 member add --id bob
LAST_SEQ=0
for round in 1 2; do
    for i in 1 2 3; do
        expect_exit 0 cli_on "$i" --json award --partner coffee --member alice \
            --points $((100 * i)) --txn "a-$round-$i"
        expect_eq "$(json_get duplicate)" false "award a-$round-$i through node $i: duplicate"
        seq=$(json_get seq)
        if ! [[ $seq =~ ^[0-9]+$ ]] || ((seq <= LAST_SEQ)); then
            fail "award through node $i: seq '$seq' not after $LAST_SEQ"
        fi
        LAST_SEQ=$seq
        expect_exit 0 cli_on "$i" --json redeem --partner books --member alice --points 10 \
            --txn "r-$round-$i"
        LAST_SEQ=$(json_get seq)
        expect_exit 0 cli_on "$i" --json transfer --partner books --from alice --to bob \
            --points 5 --txn "x-$round-$i"
        LAST_SEQ=$(json_get seq)
    done
done
# alice: 2 * (100 + 200 + 300) - 6 * 10 - 6 * 5; bob: 6 * 5.
ALICE=$((1200 - 60 - 30))
BOB=30

log "a write sent to follower $FOLLOWER is forwarded and answered"
expect_exit 0 cli_on "$FOLLOWER" --json award --partner coffee --member bob --points 7 \
    --txn via-follower
expect_eq "$(json_get duplicate)" false "forwarded award: duplicate"
FWD_SEQ=$(json_get seq)
((FWD_SEQ == LAST_SEQ + 1)) || fail "forwarded award: seq $FWD_SEQ, expected $((LAST_SEQ + 1))"
BOB=$((BOB + 7))
# A rejection is relayed too, with its code.
expect_exit 1 cli_on "$FOLLOWER" --json redeem --partner books --member bob --points 100000 \
    --txn too-much
expect_eq "$(json_get code "$OUT$ERR")" INSUFFICIENT_POINTS "forwarded rejection"
# The retry of a forwarded write through every other node is a duplicate.
for i in 1 2 3; do
    expect_exit 0 cli_on "$i" --json award --partner coffee --member bob --points 7 \
        --txn via-follower
    expect_eq "$(json_get duplicate)" true "retry of via-follower through node $i"
    expect_eq "$(json_get seq)" "$FWD_SEQ" "seq of the retry through node $i"
done
expect_exit 1 cli_on "$FOLLOWER" --json award --partner coffee --member bob --points 8 \
    --txn via-follower
expect_eq "$(json_get code "$OUT$ERR")" CONFLICT "conflicting retry through a follower"

log "cluster check agrees, then every node answers the same"
cluster_agrees 30
for i in 1 2 3; do
    expect_exit 0 cli_on "$i" --json balance --member alice
    expect_eq "$(json_get points)" "$ALICE" "alice's balance on node $i"
    expect_exit 0 cli_on "$i" --json balance --member bob
    expect_eq "$(json_get points)" "$BOB" "bob's balance on node $i"
    expect_exit 0 cli_on "$i" --json balance --member alice --consistent
    expect_eq "$(json_get points)" "$ALICE" "alice's consistent balance through node $i"
    expect_exit 0 cli_on "$i" --json status
    expect_eq "$(json_get applied_seq)" "$FWD_SEQ" "applied_seq on node $i"
    expect_eq "$(json_get leader_id)" "$LEADER" "leader_id on node $i"
done
expect_same_everywhere "history of alice" history --member alice --limit 100
expect_same_everywhere "history of bob" history --member bob --limit 100
verify_everywhere

log "clean shutdown of every node"
stop_cluster
log "PASS"
