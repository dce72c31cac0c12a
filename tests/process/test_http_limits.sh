#!/usr/bin/env bash
# The HTTP API's limits against one abusive client: from 127.0.0.2 it holds
# more connections than conns_per_addr, trickles request heads (slowloris),
# sends heads over http_header_max, bodies over http_body_max (with a length
# and chunked) and bytes that are not HTTP, all at once, while a
# well-behaved POS client on 127.0.0.1 makes 50 sequential requests.  The
# client's p95 latency during the abuse must stay within 3x (or +100 ms) of
# its p95 alone, every one of its requests must succeed, and the abuser must
# get 503, 408, 431, 413 and 400 as it deserves (tests/lib/http_abuse.py;
# the oversized and broken requests come from its second address, 127.0.0.3).
# Then: an idle connection is closed after idle_timeout_ms, a keep-alive
# connection in use is not, and /metrics counts the refusals and timeouts.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=tests/lib/http_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/http_lib.sh"

command -v python3 >/dev/null || fail "python3 is not installed (scripts/deps.sh)"
CONNS_PER_ADDR=16
REQUEST_TIMEOUT_MS=1500
IDLE_TIMEOUT_MS=2500
mapfile -t PORTS < <(free_port 3)
start_http_node "$TEST_TMP/node" "${PORTS[0]}" "${PORTS[1]}" --raft "127.0.0.1:${PORTS[2]}" \
    --set limits.conns_per_addr=$CONNS_PER_ADDR \
    --set limits.request_timeout_ms=$REQUEST_TIMEOUT_MS \
    --set limits.idle_timeout_ms=$IDLE_TIMEOUT_MS \
    --set limits.http_header_max=4096 --set limits.http_body_max=4096 \
    --set limits.partner_rps=0

hexpect 201 POST /v1/members '{"member":"alice"}' m1
hexpect 200 POST /v1/awards '{"member":"alice","points":100}' a1

log "abuse from 127.0.0.2 while a POS on 127.0.0.1 works"
if ! timeout 60 python3 "$SOURCE_DIR/tests/lib/http_abuse.py" "${PORTS[1]}" "$API_KEY" alice \
    "$CONNS_PER_ADDR" "$REQUEST_TIMEOUT_MS" "$IDLE_TIMEOUT_MS" >"$TEST_TMP/abuse.log" 2>&1; then
    cat "$TEST_TMP/abuse.log" >&2
    fail "http_abuse.py: a check failed"
fi
sed "s/^/[$TEST_NAME]   /" "$TEST_TMP/abuse.log"

log "metrics count what was refused"
hexpect 200 GET /metrics "" "" -
metric() {
    grep -E "^$1 " <<<"$HBODY" | awk '{print $2}'
}
(($(metric 'coalition_http_connections_refused_total\{limit="per_address"\}') > 0)) ||
    fail "no per-address refusal counted"
(($(metric 'coalition_http_timeouts_total\{kind="request"\}') > 0)) || fail "no request timeout counted"
(($(metric 'coalition_http_timeouts_total\{kind="idle"\}') > 0)) || fail "no idle timeout counted"
grep -qE '^coalition_http_requests_total\{route="none",code="431"\} [1-9]' <<<"$HBODY" ||
    fail "no 431 counted"
grep -qE '^coalition_http_requests_total\{route="none",code="413"\} [1-9]' <<<"$HBODY" ||
    fail "no 413 counted"

log "the node still serves and stops cleanly"
hexpect 200 GET /v1/members/alice/balance
expect_eq "$(hjson .points)" 100 "balance after the abuse"
stop_node TERM
expect_eq "$EXIT_CODE" 0 "exit status after SIGTERM"
log "PASS"
