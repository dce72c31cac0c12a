#!/usr/bin/env bash
# Partition: two of three nodes are frozen with SIGSTOP, so the third is cut
# off from any majority.  A write through the isolated node must fail with
# UNAVAILABLE or NOT_LEADER within a bounded time and never report ok; a
# plain read still answers from its local state.  After SIGCONT the cluster
# takes writes through every node again within about 15 s and every node
# agrees.  Done twice: with a follower isolated, then with the leader
# isolated (its two followers frozen).  A write that failed this way has an
# unknown fate; retrying it with the same txn id applies it exactly once.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ANSWER_MAX_MS=${PARTITION_ANSWER_MAX_MS:-10000}
RECOVER_S=${PARTITION_RECOVER_S:-15}

start_cluster 3
expect_exit 0 cli_on 1 partner add --id coffee --name "Bean Coffee"
expect_exit 0 cli_on 1 member add --id alice
ALICE=0
for i in 1 2 3; do
    expect_exit 0 cli_on "$i" award --partner coffee --member alice --points 100 --txn "pre-$i"
    ALICE=$((ALICE + 100))
done
cluster_agrees 30

# write_must_fail NODE TXN: an award through NODE must be answered, within
# ANSWER_MAX_MS, with exit 1 and UNAVAILABLE or NOT_LEADER.
write_must_fail() {
    local node=$1 txn=$2 t0 ms code
    t0=$(now_ms)
    run cli_on "$node" --json --timeout-ms 30000 award --partner coffee --member alice \
        --points 1 --txn "$txn"
    ms=$(($(now_ms) - t0))
    code=$(json_get code "$OUT$ERR")
    log "award $txn through isolated node $node: exit $RC, ${code:-no code}, after $ms ms"
    if [[ $RC == 0 ]]; then
        fail "award $txn through isolated node $node reported ok: $OUT"
    fi
    if [[ $RC != 1 || ($code != UNAVAILABLE && $code != NOT_LEADER) ]]; then
        fail "award $txn through isolated node $node: expected exit 1 with UNAVAILABLE or" \
            "NOT_LEADER, got exit $RC: $OUT $ERR"
    fi
    ((ms < ANSWER_MAX_MS)) || fail "award $txn through isolated node $node took $ms ms"
}

# write_ok_within NODE TXN DEADLINE_MS: retries an award through NODE until
# it is accepted (new or duplicate), failing the test at DEADLINE_MS.
write_ok_within() {
    local node=$1 txn=$2 deadline=$3
    while :; do
        run cli_on "$node" --json --timeout-ms 5000 award --partner coffee --member alice \
            --points 1 --txn "$txn"
        [[ $RC == 0 ]] && return 0
        (($(now_ms) < deadline)) ||
            fail "award $txn through node $node still failing ${RECOVER_S}s after SIGCONT:" \
                "exit $RC $OUT $ERR"
        sleep 0.2
    done
}

# isolate NODE CASE: freezes the other two nodes, checks that NODE refuses
# writes and still serves reads, thaws them and checks recovery.
isolate() {
    local iso=$1 name=$2 i frozen=()
    for i in 1 2 3; do
        [[ $i == "$iso" ]] || frozen+=("$i")
    done
    log "$name: freeze nodes ${frozen[*]}, node $iso is cut off"
    for i in "${frozen[@]}"; do
        pause_member "$i"
    done

    write_must_fail "$iso" "$name-1"
    # Again, now that the isolated node has certainly noticed.
    write_must_fail "$iso" "$name-2"

    expect_exit 0 cli_on "$iso" --json --timeout-ms 5000 balance --member alice
    expect_eq "$(json_get points)" "$ALICE" "balance read on isolated node $iso"
    expect_exit 0 cli_on "$iso" --json --timeout-ms 5000 status
    log "isolated node $iso says role $(json_get role), leader $(json_get leader_id)"
    # A leader that cannot reach a majority steps down (it refused writes
    # above, so it has had well over an election timeout to notice).
    [[ $(json_get role) != leader ]] || fail "isolated node $iso still says it is the leader"

    for i in "${frozen[@]}"; do
        resume_member "$i"
    done
    local deadline=$(($(now_ms) + RECOVER_S * 1000)) t0
    t0=$(now_ms)
    # The failed writes, retried with their txn ids: applied exactly once.
    write_ok_within "$iso" "$name-1" "$deadline"
    write_ok_within "$iso" "$name-2" "$deadline"
    ALICE=$((ALICE + 2))
    for i in 1 2 3; do
        write_ok_within "$i" "$name-after-$i" "$deadline"
        ALICE=$((ALICE + 1))
    done
    log "$name: writes through every node again $(($(now_ms) - t0)) ms after SIGCONT"
    cluster_agrees 30
    for i in 1 2 3; do
        expect_exit 0 cli_on "$i" --json balance --member alice
        expect_eq "$(json_get points)" "$ALICE" "alice's balance on node $i after $name"
    done
}

FOLLOWER=$(a_follower)
isolate "$FOLLOWER" follower-cut-off
wait_leader 20
isolate "$LEADER" leader-cut-off
wait_leader 20
verify_everywhere

stop_cluster
log "PASS"
