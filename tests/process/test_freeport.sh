#!/usr/bin/env bash
# freeport, which every process test uses to pick its ports, never hands a
# test the same port twice and never a port another process may take first:
# ports from many calls in one test (one record file) are all distinct, lie
# below the kernel's ephemeral range (where neither a bind to port 0 nor an
# outgoing connection's source port lands), and a port that is bound by a
# listener is never handed out.  (CI once failed when a second call gave a
# relay the port an earlier call had given a node.)
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range

log "200 calls of 1..8 ports in one test: all distinct, below $EPHEMERAL_LOW"
ALL=()
for i in $(seq 200); do
    mapfile -t got < <(free_port $((i % 8 + 1)))
    ((${#got[@]} == i % 8 + 1)) || fail "call $i gave ${#got[@]} ports, wanted $((i % 8 + 1))"
    ALL+=("${got[@]}")
done
for p in "${ALL[@]}"; do
    [[ $p =~ ^[0-9]+$ ]] || fail "not a port: $p"
    ((p >= 1024 && p < EPHEMERAL_LOW)) || fail "port $p is not below the ephemeral range"
done
DISTINCT=$(printf '%s\n' "${ALL[@]}" | sort -u | wc -l)
((DISTINCT == ${#ALL[@]})) || fail "$((${#ALL[@]} - DISTINCT)) ports handed out twice"
(($(wc -l <"$TEST_TMP/.ports") == ${#ALL[@]})) || fail "the record does not list every port"
log "${#ALL[@]} ports, all distinct"

log "a port a listener holds is never handed out"
PORT=$(free_port)
start_node "$TEST_TMP/node" "$PORT"
expect_exit 1 "$FREEPORT" --range "$PORT-$PORT"
expect_contains "$ERR" "no free port" "freeport on a range with only a bound port"
for _ in $(seq 20); do
    expect_exit 0 "$FREEPORT" --range "$((PORT - 1))-$PORT"
    expect_eq "$OUT" "$((PORT - 1))" "the one free port next to the node's"
done
log "and one handed out before (in the record) is not handed out again"
echo $((PORT - 1)) >"$TEST_TMP/record"
expect_exit 1 "$FREEPORT" --record "$TEST_TMP/record" --range "$((PORT - 1))-$PORT"
stop_node TERM

log "bad arguments are refused"
expect_exit 2 "$FREEPORT" 0
expect_exit 2 "$FREEPORT" 65
expect_exit 2 "$FREEPORT" --record
expect_exit 2 "$FREEPORT" 3 4
expect_exit 2 "$FREEPORT" --range 9-8
expect_exit 2 "$FREEPORT" --range 9-
expect_exit 2 "$FREEPORT" --range 10-70000
expect_exit 2 "$FREEPORT" --port 3
log "PASS"
