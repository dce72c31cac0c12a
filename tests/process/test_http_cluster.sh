#!/usr/bin/env bash
# The HTTP API on every node of a three-node coalition: a POS talking to a
# follower gets its writes forwarded to the leader (the HTTP front sends as
# a client, not as a forwarding node, so the follower does not answer
# NOT_LEADER), reads on every node converge, and /health follows the
# leader: 503 on a node left without one, 200 again once a leader is back.
# Node I signs for partner nodeI (tests/lib/common.sh): the POS uses an API
# key of the partner of the node it talks to.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=tests/lib/http_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/http_lib.sh"

cluster_ports 3
mapfile -t HPORTS < <(free_port 3)
CLUSTER_ARGS=(--election-timeout-ms 2500) # a stall of this machine must not move the leader
for i in 1 2 3; do
    start_member "$i" --http "127.0.0.1:${HPORTS[i - 1]}"
done
wait_leader 20
wait_genesis cli_on "$LEADER"
wait_directory 20
FOLLOWER=$(a_follower)
P=node$FOLLOWER
cli_on "$LEADER" --json partner add "$P" --name "Store $FOLLOWER" \
    --public-key "$KEY_DIR/$P.pub" >/dev/null || fail "partner add $P"
API_KEY=$(api_key_for "$P" "$LEADER")
[[ $API_KEY =~ ^[0-9a-f]{16}\.[0-9a-f]{64}$ ]] || fail "no API key: '$API_KEY'"
http_on() {
    HTTP_URL=http://127.0.0.1:${HPORTS[$1 - 1]}
}
log "leader node $LEADER, writing through follower node $FOLLOWER"

http_on "$FOLLOWER"
# The key was issued through the leader: wait until the follower has it.
deadline=$(($(now_ms) + 10000))
while :; do
    hreq GET /v1/members/alice/balance
    [[ $HSTATUS == 401 ]] || break
    (($(now_ms) < deadline)) || fail "node $FOLLOWER does not know the API key: $HBODY"
    sleep 0.1
done
expect_eq "$HSTATUS" 404 "balance of a member not enrolled yet"
hexpect 200 GET /health "" "" -
expect_eq "$(hjson .role)" follower "follower's role"
expect_eq "$(hjson .leader_id)" "$LEADER" "follower's leader"
hexpect 201 POST /v1/members '{"member":"alice"}' m1
hexpect 200 POST /v1/awards '{"member":"alice","points":300}' a1
expect_eq "$(hjson .points)" 300 "award through a follower"
hexpect 200 POST /v1/awards '{"member":"alice","points":300}' a1
expect_eq "$(hjson .duplicate)" true "retry through a follower"
hexpect 422 POST /v1/redemptions '{"member":"alice","points":1000}' r1
herror_is INSUFFICIENT_POINTS

log "every node answers the balance"
for i in 1 2 3; do
    http_on "$i"
    deadline=$(($(now_ms) + 10000))
    while :; do
        hreq GET /v1/members/alice/balance
        [[ $HSTATUS == 200 && $(hjson .points) == 300 ]] && break
        (($(now_ms) < deadline)) || fail "node $i: balance $HSTATUS $HBODY"
        sleep 0.1
    done
done

log "health without a leader"
OTHER=
for i in 1 2 3; do
    [[ $i == "$LEADER" || $i == "$FOLLOWER" ]] || OTHER=$i
done
stop_member "$LEADER" TERM
stop_member "$OTHER" TERM
http_on "$FOLLOWER"
deadline=$(($(now_ms) + 15000))
while :; do
    hreq GET /health "" "" -
    [[ $HSTATUS == 503 ]] && break
    (($(now_ms) < deadline)) || fail "health on a node alone: $HSTATUS $HBODY"
    sleep 0.2
done
expect_eq "$(hjson .leader_id)" 0 "no leader"
hexpect 503 POST /v1/awards '{"member":"alice","points":5}' a2
log "a write without quorum: $HBODY"
start_member "$OTHER"
wait_leader 30
deadline=$(($(now_ms) + 15000))
while :; do
    hreq GET /health "" "" -
    [[ $HSTATUS == 200 ]] && break
    (($(now_ms) < deadline)) || fail "health after a new leader: $HSTATUS $HBODY"
    sleep 0.2
done
hexpect 200 POST /v1/awards '{"member":"alice","points":5}' a2
stop_cluster
log "PASS"
