#!/usr/bin/env bash
# A bad client does not disturb the others: while a well-behaved load runs,
# raw connections send an oversized frame header, a zero-length frame,
# garbage that is not a protobuf message, a truncated frame, and a stalled
# half header.  The node must close the oversized connection, keep serving
# the load without a single error, and answer the CLI afterwards.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

PORT=$(free_port)
start_node "$TEST_TMP/node1" "$PORT"
NODE=127.0.0.1:$PORT
CONNECT_TIMEOUT_S=5

# send_raw FD BYTES: writes BYTES (with \xHH escapes) to an open /dev/tcp fd.  In a
# subshell so that a write to a closed socket (SIGPIPE) cannot kill the test.
send_raw() {
    (printf '%b' "$2" >&"$1") 2>/dev/null || true
}

# expect_closed FD WHAT: the node must close the connection (EOF) within
# CONNECT_TIMEOUT_S; whatever it sent before (an error frame) is ignored.
expect_closed() {
    local rc=0
    timeout "$CONNECT_TIMEOUT_S" cat <&"$1" >/dev/null 2>&1 || rc=$?
    if ((rc == 124)); then
        fail "$2: the node did not close the connection within ${CONNECT_TIMEOUT_S}s"
    fi
}

cli partner add --id coffee --name "Bean Coffee" >/dev/null
cli member add --id alice >/dev/null
expect_exit 0 "$LOADGEN" --node "$NODE" --setup --members 200 --partners 4 --clients 2

log "a well-behaved load in the background"
LG_LOG=$TEST_TMP/loadgen.log
"$LOADGEN" --node "$NODE" --clients 4 --depth 2 --duration 4 --members 200 --partners 4 \
    >"$LG_LOG" 2>&1 &
LG_PID=$!
track_pid "$LG_PID"

log "a stalled client holding half a header"
exec 7<>"/dev/tcp/127.0.0.1/$PORT"
send_raw 7 '\x00\x00'

log "oversized frame header"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
send_raw 3 '\xff\xff\xff\xff'
expect_closed 3 "oversized frame"
exec 3<&-
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
# Just over the limit (1 MiB + 1), followed by some of the announced bytes.
send_raw 3 '\x00\x10\x00\x01xxxxxxxxxxxxxxxx'
expect_closed 3 "frame one byte over the limit"
exec 3<&-

log "zero-length frame"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
send_raw 3 '\x00\x00\x00\x00'
expect_closed 3 "zero-length frame"
exec 3<&-

log "garbage payload"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
send_raw 3 '\x00\x00\x00\x08\xff\xff\xff\xff\xff\xff\xff\xff'
# The framing is intact, so the node may answer BAD_FRAME and keep the
# connection or close it; either way it must not hang up on anyone else.
exec 3<&-

log "a request with no operation, then garbage, then a truncated frame"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
send_raw 3 '\x00\x00\x00\x02\x08\x01'
send_raw 3 '\x00\x00\x00\x05hello'
send_raw 3 '\x00\x00\x01\x00truncated'
exec 3<&-

log "plain text (an HTTP request) on the frame port"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
send_raw 3 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
expect_closed 3 "HTTP request on the frame port"
exec 3<&-

log "many connections opened and dropped"
for _ in $(seq 50); do
    exec 3<>"/dev/tcp/127.0.0.1/$PORT"
    send_raw 3 '\x00\x00\x00'
    exec 3<&-
done

log "the others were not disturbed"
wait_exit "$LG_PID" 30 || fail "the background load did not finish"
expect_eq "$EXIT_CODE" 0 "background load exit status"
grep -q '^RESULT .* errors=0 ' "$LG_LOG" || fail "the background load saw errors: $(tail -n 3 "$LG_LOG")"
committed=$(grep -o 'committed=[0-9]*' "$LG_LOG" | cut -d= -f2)
((committed > 0)) || fail "the background load committed nothing"

expect_exit 0 cli status
expect_exit 0 cli --json award --partner coffee --member alice --points 10 --txn after-bad
expect_eq "$(json_get duplicate)" false "award after the bad clients"
exec 7<&-
expect_exit 0 cli --json balance --member alice
expect_eq "$(json_get points)" 10 "balance after the bad clients"
expect_exit 0 cli verify

stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after SIGTERM"
log "PASS"
