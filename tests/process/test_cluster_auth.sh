#!/usr/bin/env bash
# Membership changes are authenticated on the leader (docs/security.md):
# `cluster add/assign/remove` must be signed by the coalition admin key, a
# node's --join by its own link key, trusted as the links trust keys.  On a
# three-node cluster:
#  - an unsigned `cluster add` / `remove` (to the leader, and through a
#    follower) is refused with UNAUTHENTICATED, one signed with a partner's
#    key with FORBIDDEN; the configuration stays as it was and the leader
#    logs each refusal;
#  - a keyless node that starts with --join is not added at all, nor is a
#    node whose key nobody trusts (the leader's log names its key);
#  - a node with a trusted key joins and receives the ledger;
#  - a signed `cluster add`, captured on the wire and sent again after the
#    node was removed, is refused as a replay, also by the next leader
#    (which never saw its nonce: it refuses what was signed before it took
#    office); the same request with its raft address changed is refused as
#    forged.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

RELAY=$BUILD_DIR/coalition-relay
[[ -x $RELAY ]] || fail "$RELAY is not built"

# Nodes 1..3 bootstrap; 4 (no key), 5 (untrusted key) and 6 (trusted) join.
cluster_ports 6
CLUSTER_ARGS=(--election-timeout-ms 2500) # a stall of this machine must not move the leader
for i in 1 2 3; do
    start_member "$i"
done
wait_leader 20 1 2 3
wait_genesis cli_on "$LEADER"
FOLLOWER=$(a_follower)
log "leader node $LEADER, follower node $FOLLOWER"

# ids_in_config: node ids in the leader's configuration, sorted, one line.
ids_in_config() {
    local out
    out=$(cli_on "$LEADER" --json --timeout-ms 2000 cluster status) || fail "cluster status: $out"
    json_all id "$out" | sort -n | tr '\n' ' '
}

# refusals: lines in the members' logs saying a membership change was refused.
refusals() {
    cat "$TEST_TMP"/node[123].log | grep -c "membership change refused" || true
}

# unsigned ARGS...: the CLI against node I without a key directory.
unsigned_on() {
    local i=$1
    shift
    COALITION_KEY_DIR= "$COALITION" --node "$(node_addr "$i")" "$@"
}

# expect_code NAME: the JSON error code in OUT/ERR of the last run is NAME.
expect_code() {
    local got
    got=$(json_get code "$OUT$ERR")
    [[ $got == "$1" ]] || fail "expected error code $1, got '$got'
stdout: $OUT
stderr: $ERR"
}

CONFIG0=$(ids_in_config)
expect_eq "$CONFIG0" "1 2 3 " "configuration at start"

log "unsigned membership changes are refused, to the leader and through a follower"
before=$(refusals)
expect_exit 1 unsigned_on "$LEADER" --json cluster add --id 7 --raft 127.0.0.1:1 --role voter
expect_code UNAUTHENTICATED
expect_contains "$OUT" "--key-dir" "the CLI's hint"
expect_exit 1 unsigned_on "$FOLLOWER" --json cluster add --id 9 --raft 127.0.0.1:2 --role spare
expect_code UNAUTHENTICATED
expect_exit 1 unsigned_on "$LEADER" --json cluster remove --id "$FOLLOWER"
expect_code UNAUTHENTICATED
expect_exit 1 unsigned_on "$LEADER" --json cluster assign --id "$FOLLOWER" --role spare
expect_code UNAUTHENTICATED
expect_eq "$(ids_in_config)" "$CONFIG0" "configuration after unsigned changes"
expect_eq "$(role_in_config "$FOLLOWER")" voter "the follower's role after an unsigned assign"
after=$(refusals)
((after >= before + 4)) || fail "the leader logged $((after - before)) refusals, expected 4"
expect_contains "$(cat "$TEST_TMP/node$LEADER.log")" "add of node 7" "the leader's log"
expect_contains "$(cat "$TEST_TMP/node$LEADER.log")" "not signed (UNAUTHENTICATED)" \
    "the leader's log"

log "a change signed by a partner's key (not the admin's) is forbidden"
WRONG=$TEST_TMP/wrong-keys
mkdir -p "$WRONG"
partner_keygen node5
cp "$KEY_DIR/node5.key" "$WRONG/admin.key"
expect_exit 1 env COALITION_KEY_DIR="$WRONG" "$COALITION" --node "$(node_addr "$LEADER")" \
    --json cluster remove --id "$FOLLOWER"
expect_code FORBIDDEN
expect_contains "$(cat "$TEST_TMP/node$LEADER.log")" \
    "signed by key $(cat "$KEY_DIR/node5.pub"): not the coalition admin key (FORBIDDEN)" \
    "the leader's log"
expect_eq "$(ids_in_config)" "$CONFIG0" "configuration after a change signed by a partner"

# Before the joiners below: each is refused twice a second, and the leader
# logs at most 20 refusals per 10 s, so the lines this part looks for
# could be left out of the log after them.
log "a signed change captured on the wire is refused when sent again"
RELAY_PORT=$(free_port)
CAPTURE=$TEST_TMP/capture.bin
"$RELAY" "$CAPTURE" "$RELAY_PORT=$(node_addr "$LEADER")" >"$TEST_TMP/relay.out" \
    2>"$TEST_TMP/relay.log" &
track_pid $!
for _ in $(seq 50); do
    [[ -s $TEST_TMP/relay.out ]] && break
    sleep 0.1
done
expect_contains "$(cat "$TEST_TMP/relay.out")" ready "relay start"
SPARE_RAFT=127.0.0.1:$(free_port)
expect_exit 0 "$COALITION" --node "127.0.0.1:$RELAY_PORT" cluster add --id 8 --raft "$SPARE_RAFT" \
    --role spare
expect_eq "$(role_in_config 8)" spare "node 8 added (signed, through the relay)"
expect_exit 0 cli_on "$LEADER" cluster remove --id 8
expect_eq "$(ids_in_config)" "$CONFIG0" "configuration after removing node 8"

# resend CAPTURE ADDR [OLD NEW]: sends the first frame of CAPTURE (the
# client's request) to ADDR on a new connection, with the bytes OLD replaced
# by NEW (same length) if given; prints the answer's code.
resend() {
    python3 - "$@" <<'EOF_PY'
import socket, struct, sys
cap = open(sys.argv[1], 'rb').read()
n = struct.unpack('>I', cap[:4])[0]
frame = bytearray(cap[:4 + n])
if len(sys.argv) > 3:
    old, new = sys.argv[3].encode(), sys.argv[4].encode()
    i = frame.find(old)
    assert i >= 0 and len(old) == len(new), 'bytes to replace not found'
    frame[i:i + len(old)] = new
host, port = sys.argv[2].rsplit(':', 1)
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(frame)
buf = b''
while len(buf) < 4 or len(buf) < 4 + struct.unpack('>I', buf[:4])[0]:
    more = s.recv(65536)
    assert more, 'connection closed before an answer'
    buf += more
payload = buf[4:4 + struct.unpack('>I', buf[:4])[0]]

def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if c < 0x80:
            return v, i

i, code = 0, 0
while i < len(payload):
    key, i = varint(payload, i)
    field, wt = key >> 3, key & 7
    if wt == 0:
        v, i = varint(payload, i)
        if field == 2:  # Response.code, sint32
            code = (v >> 1) ^ -(v & 1)
    elif wt == 2:
        ln, i = varint(payload, i)
        i += ln
    elif wt == 1:
        i += 8
    elif wt == 5:
        i += 4
print(code)
EOF_PY
}

grep -qaF "$SPARE_RAFT" "$CAPTURE" || fail "the capture does not hold the cluster add"
before=$(refusals)
expect_exit 0 resend "$CAPTURE" "$(node_addr "$LEADER")"
expect_eq "$OUT" -31 "answer code to the replayed cluster add (UNAUTHENTICATED)"
expect_contains "$(cat "$TEST_TMP/node$LEADER.log")" "a replay (nonce already used)" \
    "the leader's log"
# The same request naming another raft address: the signature no longer fits.
FORGED_RAFT=${SPARE_RAFT%?}$(((${SPARE_RAFT: -1} + 1) % 10))
expect_exit 0 resend "$CAPTURE" "$(node_addr "$LEADER")" "$SPARE_RAFT" "$FORGED_RAFT"
expect_eq "$OUT" -31 "answer code to the forged cluster add (UNAUTHENTICATED)"
expect_contains "$(cat "$TEST_TMP/node$LEADER.log")" "bad signature (UNAUTHENTICATED)" \
    "the leader's log"
after=$(refusals)
((after >= before + 2)) || fail "the leader logged $((after - before)) refusals, expected 2"
expect_eq "$(ids_in_config)" "$CONFIG0" "configuration after the replay and the forgery"

# start_joiner I ARGS...: coalitiond as node I, joining through node 1, in
# the background with only ARGS for keys (log nodeI.log).
start_joiner() {
    local i=$1
    shift
    local log_file=$TEST_TMP/node$i.log
    echo "=== $(date '+%T') start joiner $i $*" >>"$log_file"
    "$COALITIOND" --id "$i" --data "$TEST_TMP/node$i" --listen "$(node_addr "$i")" \
        --raft "$(raft_addr "$i")" --join "$(node_addr 1)" --admin-public-key "$ADMIN_PUB" \
        "$@" >>"$log_file" 2>&1 &
    MEMBER_PID[i]=$!
    track_pid "${MEMBER_PID[$i]}"
    for _ in $(seq 150); do
        proc_exited "${MEMBER_PID[$i]}" && fail "joiner $i exited while starting"
        cli_on "$i" --timeout-ms 1000 status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "joiner $i did not answer status"
}

log "a node without a key asks to join: it is not added"
start_joiner 4
log "a node whose key nobody trusts asks to join: it is not added"
"$COALITION" keygen --out "$TEST_TMP/stranger" >/dev/null
start_joiner 5 --partner stranger --partner-key "$TEST_TMP/stranger.key" \
    --trusted-keys "$KEY_DIR/trusted"
STRANGER_PUB=$(<"$TEST_TMP/stranger.pub")
deadline=$(($(now_ms) + 15000))
until grep -q "join of node 4 .*signed by key none: not signed (UNAUTHENTICATED)" \
    "$TEST_TMP/node$LEADER.log" &&
    grep -q "join of node 5 .*signed by key $STRANGER_PUB: the key is not trusted.*(FORBIDDEN)" \
        "$TEST_TMP/node$LEADER.log"; do
    (($(now_ms) < deadline)) || fail "the leader did not log refusing the joins of nodes 4 and 5"
    sleep 0.2
done
sleep 2 # several more attempts each (every 500 ms)
expect_eq "$(ids_in_config)" "$CONFIG0" "configuration after refused joins"
# Each joiner asked again and again; the leader logs the same refusal once.
for i in 4 5; do
    n=$(grep -c "membership change refused: join of node $i " "$TEST_TMP/node$LEADER.log" || true)
    expect_eq "$n" 1 "lines of the leader's log refusing node $i's repeated join"
done
for i in 4 5; do
    expect_exit 0 cli_on "$i" --json status
    expect_eq "$(json_get membership)" none "membership node $i sees for itself"
    expect_eq "$(json_get applied_seq)" 0 "ledger entries node $i applied"
done
expect_contains "$(cat "$TEST_TMP/node4.log")" "UNAUTHENTICATED" "the keyless joiner's log"
expect_contains "$(cat "$TEST_TMP/node5.log")" "FORBIDDEN" "the untrusted joiner's log"
stop_member 4
stop_member 5

log "a node with a trusted key joins and receives the ledger"
expect_exit 0 cli_on "$LEADER" member add --id after-joins
MEMBER_JOIN[6]=$(node_addr 1)
start_member 6
wait_role 6 standby 30
deadline=$(($(now_ms) + 20000))
expect_exit 0 cli_on "$LEADER" --json status
want=$(json_get applied_seq)
until [[ $(json_get applied_seq "$(cli_on 6 --json status 2>/dev/null || true)") -ge $want ]]; do
    (($(now_ms) < deadline)) || fail "node 6 did not catch up to seq $want"
    sleep 0.2
done
expect_eq "$(ids_in_config)" "1 2 3 6 " "configuration after the trusted join"


log "a new leader, which never saw the nonce, refuses the captured change too"
OLD_LEADER=$LEADER
stop_member "$OLD_LEADER"
wait_leader 20
log "new leader node $LEADER"
expect_exit 0 resend "$CAPTURE" "$(node_addr "$LEADER")"
expect_eq "$OUT" -31 "answer code of the new leader to the replayed cluster add"
expect_contains "$(cat "$TEST_TMP/node$LEADER.log")" \
    "add of node 8 (raft $SPARE_RAFT, client ) signed by key $(tr -d '\n' <"$KEY_DIR/admin.pub"): signed before what the replay memory covers" \
    "the new leader's log"
expect_eq "$(ids_in_config)" "1 2 3 6 " "configuration after the replay to the new leader"
start_member "$OLD_LEADER"

log "the cluster still works"
expect_exit 0 cli_on "$FOLLOWER" member add --id after-replay
cluster_agrees 30 "$LEADER"
stop_cluster
log "ok"
