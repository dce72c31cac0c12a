#!/usr/bin/env bash
# Fail-stop: when raft cannot write its log or a snapshot (here: its disk is
# full), the node stops at once instead of going on (raft 0.15 could reuse
# an index after a failed append, upstream issue 320).  After more room is
# given, a restart recovers every acknowledged transaction.  The raft
# directory is a small tmpfs, so this test needs root (mount); without it,
# it is skipped (exit 77) and says so.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

DATA=$TEST_TMP/node1
MNT=$DATA/raft
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=40m tmpfs "$MNT" 2>/dev/null; then
    echo "[$TEST_NAME] SKIPPED: cannot mount a tmpfs here (needs root)"
    exit 77
fi
# Unmount before the common cleanup removes the temp dir.
trap 'rc=$?; umount -l "$MNT" 2>/dev/null; (exit $rc); cleanup' EXIT

PORT=$(free_port)
start_node "$DATA" "$PORT" --set limits.partner_rps=0 # the setup is one partner
NODE=127.0.0.1:$PORT
expect_exit 0 "$LOADGEN" --node "$NODE" --setup --members 20000
log "load until the 40 MiB raft disk is full (every acknowledgement logged)"
ACKS=$TEST_TMP/acks
"$LOADGEN" --node "$NODE" --members 20000 --clients 16 --duration 120 --ack-log "$ACKS" \
    >"$TEST_TMP/load.out" 2>&1 &
LOAD_PID=$!
track_pid "$LOAD_PID"
wait_exit "$NODE_PID" 150 || fail "the node did not stop although its raft disk is full"
expect_eq "$EXIT_CODE" 1 "node exit status after a raft write failed"
grep -q "FATAL" "$NODE_LOG" || fail "the node stopped without saying FATAL"
grep -E "raft .* failed" "$NODE_LOG" | head -1 | sed "s/^/[$TEST_NAME] node said: /"
wait_exit "$LOAD_PID" 30 || true
acked=$(wc -l <"$ACKS")
log "$acked transactions acknowledged before the stop"
((acked >= 1000)) || fail "only $acked acknowledged: the test did not exercise much"

log "more room, restart: every acknowledged transaction is there"
mount -o remount,size=400m "$MNT"
start_node "$DATA" "$PORT" --set limits.partner_rps=0 # the setup is one partner
expect_exit 0 "$LOADGEN" --node "$NODE" --check-log "$ACKS"
expect_exit 0 cli verify
log "ok"
