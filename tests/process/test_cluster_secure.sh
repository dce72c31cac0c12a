#!/usr/bin/env bash
# Raft links between nodes are authenticated and encrypted (node/link.c):
# three nodes with their own keys, each trusting the others through
# --trusted-keys, elect a leader and replicate writes while every raft byte
# between them passes through a relay that captures it (coalition-relay; no
# tcpdump here).  A member id written through the cluster is on every node's
# disk but never in the captured traffic, which does carry the link
# handshake's magic; the same for a write sent to a follower, which forwards
# it to the leader over an encrypted channel of the same links.  Then
# outsiders: a node with a key nobody trusts that bootstraps itself as a
# fourth voter is refused by every member (their logs say so) and gets no
# data; a node without a key refuses every link itself; a keyless node that
# asks to join through the client port is refused by the leader (an
# unsigned JOIN), is not added to the configuration and receives nothing.
# The cluster keeps its leader and keeps serving throughout.
# (tests/process/test_cluster_auth.sh covers signed membership changes.)
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

RELAY=$BUILD_DIR/coalition-relay
[[ -x $RELAY ]] || fail "$RELAY is not built"
KEYS=$TEST_TMP/linkkeys
CAPTURE=$TEST_TMP/capture.bin
mkdir -p "$KEYS"

for name in n1 n2 n3 intruder; do
    expect_exit 0 "$COALITION" keygen --out "$KEYS/$name"
done
cat "$KEYS/n1.pub" "$KEYS/n2.pub" "$KEYS/n3.pub" >"$KEYS/trusted"

# Ports for nodes 1..4 (4: the outsider) and one relay port per member.
cluster_ports 4
mapfile -t RELAY_PORT < <(free_port 3)
relay_addr() { printf '127.0.0.1:%s' "${RELAY_PORT[$(($1 - 1))]}"; }

"$RELAY" "$CAPTURE" "${RELAY_PORT[0]}=$(raft_addr 1)" "${RELAY_PORT[1]}=$(raft_addr 2)" \
    "${RELAY_PORT[2]}=$(raft_addr 3)" >"$TEST_TMP/relay.out" 2>"$TEST_TMP/relay.log" &
track_pid $!
for _ in $(seq 50); do
    [[ -s $TEST_TMP/relay.out ]] && break
    sleep 0.1
done
expect_contains "$(cat "$TEST_TMP/relay.out")" ready "relay start"

# Node I knows itself by its own raft address and every other member by
# that member's relay: every raft connection goes through a relay.  (So the
# members disagree on each other's raft addresses: a follower's directory
# announcement is refused with ALREADY_EXISTS, and `cluster check`, which
# needs the directory, is not used here; writes go to the leader.)
bootstrap_via_relays() {
    local i=$1 j list=''
    for j in 1 2 3; do
        if ((j == i)); then
            list+=${list:+,}$j=$(raft_addr "$j")
        else
            list+=${list:+,}$j=$(relay_addr "$j")
        fi
    done
    printf '%s' "$list"
}

# wait_same_seq: until nodes 1..3 report the leader's applied_seq.
wait_same_seq() {
    local want got i deadline=$(($(now_ms) + 20000))
    expect_exit 0 cli_on "$LEADER" --json status
    want=$(json_get applied_seq)
    for i in 1 2 3; do
        while :; do
            got=$(json_get applied_seq "$(cli_on "$i" --json status 2>/dev/null || true)")
            [[ $got == "$want" ]] && break
            (($(now_ms) < deadline)) || fail "node $i is at seq '$got', the leader at $want"
            sleep 0.1
        done
    done
    log "nodes 1..3 all applied seq $want"
}

member_key_args() {
    printf '%s\n' --partner "node$1" --partner-key "$KEYS/n$1.key" --trusted-keys "$KEYS/trusted"
}

# An election timeout well above a stall of this loaded machine: the test
# checks that the leader stays the same while outsiders knock.
CLUSTER_ARGS=(--election-timeout-ms 2500)
for i in 1 2 3; do
    mapfile -t args < <(member_key_args "$i")
    start_member "$i" --bootstrap "$(bootstrap_via_relays "$i")" "${args[@]}"
done
wait_leader 30 1 2 3
wait_genesis cli_on "$LEADER"
log "leader is node $LEADER; every raft link goes through the relay"
FIRST_LEADER=$LEADER

MARKER="zqx-secret-member-$RANDOM$RANDOM"
before=$(stat -c %s "$CAPTURE")
expect_exit 0 cli_on "$LEADER" member add --id "$MARKER"
for k in $(seq 20); do
    expect_exit 0 cli_on "$LEADER" member add --id "bulk-member-$k-$MARKER"
done
wait_same_seq
after=$(stat -c %s "$CAPTURE")
log "relay captured $((after - before)) bytes during the writes ($after in all)"
((after - before > 2000)) || fail "the relay saw only $((after - before)) bytes of replication"

log "the marker is on every node's disk (the raft log is not compressed) ..."
for i in 1 2 3; do
    grep -rqaF "$MARKER" "$TEST_TMP/node$i" || fail "node $i does not hold $MARKER: not replicated?"
done
log "... but never on the wire"
grep -qaF "COALNK02" "$CAPTURE" || fail "the capture does not even hold the link handshake"
if grep -qaF "$MARKER" "$CAPTURE"; then
    fail "member id $MARKER crossed a raft link in plaintext"
fi
if grep -qaF "bulk-member-" "$CAPTURE"; then
    fail "a member id prefix crossed a raft link in plaintext"
fi
for i in 1 2 3; do
    grep -q "up from node" "$TEST_TMP/node$i.log" || fail "node $i logged no authenticated link"
done

log "a write through a follower reaches the leader over an encrypted forwarding channel"
FOLLOWER=$(a_follower)
FWD_MARKER="zqx-forwarded-member-$RANDOM$RANDOM"
expect_exit 0 cli_on "$FOLLOWER" member add --id "$FWD_MARKER"
expect_exit 0 cli_on "$FOLLOWER" --json balance --member "$FWD_MARKER" --consistent
wait_same_seq
grep -q "forwarding channel up from node $FOLLOWER" "$TEST_TMP/node$LEADER.log" ||
    fail "the leader logged no forwarding channel from node $FOLLOWER"
for i in 1 2 3; do
    grep -rqaF "$FWD_MARKER" "$TEST_TMP/node$i" || fail "node $i does not hold $FWD_MARKER"
done
if grep -qaF "$FWD_MARKER" "$CAPTURE"; then
    fail "a forwarded member id crossed between nodes in plaintext"
fi

# ---- outsiders ---------------------------------------------------------------

# start_outsider DATA ARGS...: coalitiond as node 4 on its ports, in the
# background (log node4.log), until it answers status.
start_outsider() {
    local data=$1
    shift
    local log_file=$TEST_TMP/node4.log
    echo "=== $(date '+%T') start outsider $*" >>"$log_file"
    "$COALITIOND" --id 4 --data "$data" --listen "$(node_addr 4)" --raft "$(raft_addr 4)" "$@" \
        >>"$log_file" 2>&1 &
    MEMBER_PID[4]=$!
    track_pid "${MEMBER_PID[4]}"
    for _ in $(seq 150); do
        proc_exited "${MEMBER_PID[4]}" && fail "the outsider exited while starting"
        cli_on 4 --timeout-ms 1000 status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "the outsider did not answer status"
}

refusals() {
    cat "$TEST_TMP"/node[123].log | grep -c "refused: the connecting node's key" || true
}

log "an outsider with a key nobody trusts bootstraps itself as a fourth voter"
refused_before=$(refusals)
start_outsider "$TEST_TMP/out-untrusted" --bootstrap \
    "1=$(raft_addr 1),2=$(raft_addr 2),3=$(raft_addr 3),4=$(raft_addr 4)" \
    --partner intruder --partner-key "$KEYS/intruder.key" --trusted-keys "$KEYS/trusted"
# It campaigns after an election timeout and tries to reach everyone.
deadline=$(($(now_ms) + 15000))
until (($(refusals) > refused_before)) &&
    grep -qF "$(cat "$KEYS/intruder.pub")" "$TEST_TMP"/node[123].log; do
    (($(now_ms) < deadline)) || fail "no member logged refusing the outsider's key (by name)"
    sleep 0.2
done
expect_exit 0 cli_on 4 --json status
[[ $(json_get role) != leader ]] || fail "the outsider became a leader"
expect_exit 0 cli_on "$LEADER" member add --id "after-untrusted-$MARKER"
wait_leader 10 1 2 3
expect_eq "$LEADER" "$FIRST_LEADER" "leader after the untrusted outsider"
stop_member 4
if grep -rqaF "$MARKER" "$TEST_TMP/out-untrusted"; then
    fail "the untrusted outsider received ledger data"
fi

log "an outsider without a key refuses every link itself"
start_outsider "$TEST_TMP/out-nokey" --bootstrap \
    "1=$(raft_addr 1),2=$(raft_addr 2),3=$(raft_addr 3),4=$(raft_addr 4)"
wait_log 10 "the keyless node's log" "has no partner key" "$TEST_TMP/node4.log"
stop_member 4
if grep -rqaF "$MARKER" "$TEST_TMP/out-nokey"; then
    fail "the keyless outsider received ledger data"
fi

log "a keyless node asking to join through the client port is not added"
start_outsider "$TEST_TMP/out-join" --join "$(node_addr "$LEADER")"
wait_log 10 "the leader refusing the keyless node's join" \
    "join of node 4 .*not signed (UNAUTHENTICATED)" "$TEST_TMP/node$LEADER.log"
sleep 2 # a few more attempts (every 500 ms)
expect_eq "$(role_in_config 4)" "" "the keyless joiner's role in the configuration"
expect_exit 0 cli_on "$LEADER" member add --id "after-join-$MARKER"
if grep -rqaF "$MARKER" "$TEST_TMP/out-join"; then
    fail "the keyless joiner received ledger data"
fi
expect_exit 0 cli_on 4 --json status
expect_eq "$(json_get applied_seq)" 0 "ledger entries the keyless joiner applied"
expect_eq "$(json_get membership)" none "the keyless joiner's own view of its membership"
stop_member 4

wait_leader 10 1 2 3
expect_eq "$LEADER" "$FIRST_LEADER" "leader after the outsiders"
wait_same_seq
if grep -qaF "$MARKER" "$CAPTURE"; then
    fail "member id $MARKER crossed a raft link in plaintext"
fi
stop_cluster
log "ok"
