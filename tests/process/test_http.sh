#!/usr/bin/env bash
# The HTTP/JSON API of a real coalitiond through curl: every route, the CLI's
# JSON shapes, status codes and stable error codes of every rejection,
# idempotent and conflicting retries, API keys, keep-alive, pipelined
# requests answered in order, /health, /metrics and the per-partner rate
# limit mapped to 429.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=tests/lib/http_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/http_lib.sh"

mapfile -t PORTS < <(free_port 3)
HPORT=${PORTS[1]}
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TEST_TMP/identity.key"
start_http_node "$TEST_TMP/node" "${PORTS[0]}" "$HPORT" --raft "127.0.0.1:${PORTS[2]}" \
    --identity-key "$TEST_TMP/identity.key"

log "health and metrics need no key"
hexpect 200 GET /health "" "" -
expect_eq "$(hjson .role)" leader "health role"
expect_eq "$(hjson .node_id)" 1 "health node_id"
[[ $(hjson .applied_index) =~ ^[1-9][0-9]*$ ]] || fail "health: applied_index in $HBODY"
[[ $(hjson .leader_id) == 1 ]] || fail "health: leader_id in $HBODY"

log "authentication"
hexpect 401 GET /v1/members/alice/balance "" "" -
herror_is UNAUTHENTICATED
hexpect 401 GET /v1/members/alice/balance "" "" "not-a-key"
herror_is UNAUTHENTICATED
# Well formed, but the node does not know it.
hexpect 401 GET /v1/members/alice/balance "" "" "0123456789abcdef.$(printf '%064d' 0)"
herror_is UNAUTHENTICATED
hexpect 401 POST /v1/awards '{"member":"alice","points":5}' k1 "0123456789abcdef.$(printf '%064d' 0)"
herror_is UNAUTHENTICATED

log "members: created, retried, conflicting, existing"
hexpect 201 POST /v1/members '{"member":"alice","card":"4000-0001"}' m-alice
expect_eq "$(hjson .txn)" m-alice "member txn"
expect_eq "$(hjson .duplicate)" false "member duplicate"
SEQ_ALICE=$(hjson .seq)
hexpect 200 POST /v1/members '{"member":"alice","card":"4000-0001"}' m-alice
expect_eq "$(hjson .duplicate)" true "retried member add"
expect_eq "$(hjson .seq)" "$SEQ_ALICE" "retried member add seq"
# The same key for another body: refused (the member exists).
hexpect 409 POST /v1/members '{"member":"alice","card":"4000-9999"}' m-alice
hexpect 409 POST /v1/members '{"member":"alice"}' m-alice-2
herror_is ALREADY_EXISTS
hexpect 201 POST /v1/members '{"member":"bob"}' m-bob
hexpect 400 POST /v1/members '{"member":"carol"}'
herror_is INVALID_ARGUMENT

log "awards, redemptions, balance"
hexpect 200 POST /v1/awards '{"member":"alice","points":500,"reason":"latte x5"}' a1
expect_eq "$(hjson .points)" 500 "award points"
[[ $(hjson .time_ms) =~ ^[1-9][0-9]*$ ]] || fail "award: time_ms in $HBODY"
hexpect 200 POST /v1/awards '{"member":"alice","points":500,"reason":"latte x5"}' a1
expect_eq "$(hjson .duplicate)" true "retried award"
hexpect 409 POST /v1/awards '{"member":"alice","points":501}' a1
herror_is CONFLICT
hexpect 422 POST /v1/redemptions '{"member":"alice","points":5000}' r-big
herror_is INSUFFICIENT_POINTS
hexpect 200 POST /v1/redemptions '{"member":"alice","points":200}' r1
expect_eq "$(hjson .points)" 200 "redeemed"
hexpect 200 GET /v1/members/alice/balance
expect_eq "$(hjson .member)" alice "balance member"
expect_eq "$(hjson .points)" 300 "balance after award and redemption"
expect_eq "$(hjson .held)" 0 "held"
[[ $(hjson .as_of_seq) =~ ^[0-9]+$ ]] || fail "balance: as_of_seq in $HBODY"
hexpect 200 "GET" "/v1/members/alice/balance?at=2030-01-01"
expect_eq "$(hjson .at)" 2030-01-01T00:00:00.000Z "balance at"
hexpect 404 GET /v1/members/nobody/balance
herror_is UNKNOWN_MEMBER
hexpect 400 GET "/v1/members/alice/balance?at=yesterday"
herror_is INVALID_ARGUMENT
hexpect 404 POST /v1/awards '{"member":"nobody","points":5}' a-nobody
herror_is UNKNOWN_MEMBER

log "bad input"
hexpect 400 POST /v1/awards '{"member":"alice","points":0}' a-zero
herror_is INVALID_AMOUNT
hexpect 400 POST /v1/awards '{"member":"alice","points":-5}' a-neg
herror_is INVALID_AMOUNT
hexpect 400 POST /v1/awards '{"member":"alice","points":"5"}' a-str
herror_is INVALID_ARGUMENT
hexpect 400 POST /v1/awards '{"member":"alice","points":5,"colour":"red"}' a-field
herror_is INVALID_ARGUMENT
hexpect 400 POST /v1/awards '{"member":"alice","points":5' a-json
herror_is INVALID_ARGUMENT
hexpect 400 POST /v1/awards '[1,2]' a-array
hexpect 400 POST /v1/awards '{"member":"alice","member":"bob","points":5}' a-dup
hexpect 400 POST /v1/awards '{"member":"al\u0000ice","points":5}' a-nul
hexpect 404 GET /v1/nothing-here
herror_is NOT_FOUND
hexpect 404 GET /v2/members/alice/balance
hexpect 405 GET /v1/awards
herror_is NOT_FOUND
hexpect 405 POST /v1/members/alice/balance '{}' x1
hexpect 400 GET "/v1/members/alice/history?limit=0"
hexpect 400 GET "/v1/members/alice/history?limit=5&limit=6"
hexpect 400 GET "/v1/members/alice/history?colour=red"
hexpect 400 GET "/v1/members/al%zzice/balance"

log "holds: capture, release, timeouts of state"
hexpect 200 POST /v1/holds '{"member":"alice","points":100,"timeout_s":600}' h1
expect_eq "$(hjson .points)" 100 "held"
hexpect 200 GET /v1/members/alice/balance
expect_eq "$(hjson .held)" 100 "held in balance"
expect_eq "$(hjson .points)" 200 "spendable while held"
hexpect 200 POST /v1/holds/h1/capture '{"points":60}' c1
expect_eq "$(hjson .points)" 60 "captured"
hexpect 409 POST /v1/holds/h1/release '' rel1
herror_is HOLD_CLOSED
hexpect 404 POST /v1/holds/no-such-hold/capture '' c2
herror_is UNKNOWN_TXN
hexpect 200 POST /v1/holds '{"member":"alice","points":50}' h2
hexpect 200 POST /v1/holds/h2/release '' rel2
hexpect 200 POST /v1/holds/h2/release '' rel2
expect_eq "$(hjson .duplicate)" true "retried release"
hexpect 200 GET /v1/members/alice/balance
expect_eq "$(hjson .points)" 240 "after capture of 60 and a release"
expect_eq "$(hjson .held)" 0 "nothing held"

log "reversals"
hexpect 200 POST /v1/reversals '{"of_txn":"a1","points":40,"reason":"refund"}' v1
expect_eq "$(hjson .points)" 40 "reversed"
hexpect 422 POST /v1/reversals '{"of_txn":"a1","points":100000}' v2
herror_is REVERSAL_EXCEEDS
hexpect 404 POST /v1/reversals '{"of_txn":"nope"}' v3
herror_is UNKNOWN_TXN
hexpect 400 POST /v1/reversals '{"points":5}' v4
herror_is INVALID_ARGUMENT

log "history and expiring"
hexpect 200 GET "/v1/members/alice/history?limit=2"
expect_eq "$(hjson '.items | length')" 2 "history limit"
expect_eq "$(hjson '.items[0].kind')" reverse "newest first"
expect_eq "$(hjson '.items[0].txn')" v1 "history txn"
expect_eq "$(hjson '.items[0].delta')" -40 "history delta"
expect_eq "$(hjson '.items[0].partner')" acme "history partner"
hexpect 200 GET /v1/members/alice/history
[[ $(hjson '.items | length') -ge 6 ]] || fail "history: $HBODY"
hexpect 200 GET "/v1/members/alice/expiring?within_days=30"
expect_eq "$(hjson .member)" alice "expiring member"
expect_eq "$(hjson .within_days)" 30 "expiring within_days"
expect_eq "$(hjson .total)" 0 "nothing expires (no expiry rule)"
hexpect 400 GET "/v1/members/alice/expiring?within_days=99999"

log "cards, identities, lookup"
hexpect 200 GET "/v1/lookup?card=4000-0001"
expect_eq "$(hjson .member)" alice "lookup by card"
hexpect 404 GET "/v1/lookup?card=5555"
hexpect 400 GET "/v1/lookup?card=4000-0001&phone=123"
hexpect 400 GET "/v1/lookup"
hexpect 200 POST /v1/members/bob/cards '{"card":"4000-0002"}' card-bob
hexpect 200 GET "/v1/lookup?card=4000-0002"
expect_eq "$(hjson .member)" bob "lookup by the new card"
hexpect 200 POST /v1/members/bob/cards '{"card":"4000-0003","old_card":"4000-0002"}' card-bob-2
hexpect 200 GET "/v1/lookup?card=4000-0003"
expect_eq "$(hjson .member)" bob "lookup by the replacement card"
hexpect 200 POST /v1/members/alice/identify '{"phone":"+44 20 7946 0000","email":"Ann@Example.com"}' id1
hexpect 200 GET "/v1/lookup?phone=%2B442079460000"
expect_eq "$(hjson .member)" alice "lookup by phone"
hexpect 200 GET "/v1/lookup?email=ann%40example.com"
expect_eq "$(hjson .member)" alice "lookup by email"
hexpect 400 POST /v1/members/alice/identify '{}' id2

log "purchase awards"
hexpect 200 POST /v1/awards '{"member":"bob","purchase_cents":1999,"category":"coffee"}' p1
expect_eq "$(hjson .rule)" base "purchase award rule"
P1_POINTS=$(hjson .points)
[[ $P1_POINTS =~ ^[1-9][0-9]*$ ]] || fail "purchase award points: $HBODY"
hexpect 200 POST /v1/awards '{"member":"bob","purchase_cents":1999,"category":"coffee"}' p1
expect_eq "$(hjson .duplicate)" true "retried purchase award"
expect_eq "$(hjson .rule)" base "retried purchase award rule"

log "settlement and reports"
hexpect 200 GET "/v1/settlement?from=2020-01-01&to=2100-01-01"
expect_eq "$(hjson '.partners[0].partner')" acme "settlement partner"
expect_eq "$(hjson '.partners[0].issued')" $((460 + P1_POINTS)) "issued net of the reversal"
expect_eq "$(hjson '.partners[0].redeemed_at')" 260 "redeemed at acme"
expect_eq "$(hjson '.flows[0].points')" 260 "flow"
hexpect 400 GET "/v1/settlement?from=2030-01-01&to=2020-01-01"
hexpect 400 GET "/v1/settlement?from=2020-01-01"
hexpect 200 GET "/v1/reports?partner=acme&from=2020-01-01&to=2100-01-01"
expect_eq "$(hjson .partner)" acme "report partner"
expect_eq "$(hjson .points_issued)" $((460 + P1_POINTS)) "report points issued"
expect_eq "$(hjson .points_redeemed)" 260 "report points redeemed"
hexpect 200 GET "/v1/reports?from=1577836800000&to=4102444800000"
expect_eq "$(hjson .partner)" null "coalition-wide report"

log "keep-alive: two requests, one connection"
run curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' "$HTTP_URL/health" "$HTTP_URL/health"
expect_eq "$(tr '\n' ' ' <<<"$OUT")" "1 0 " "connections opened for two requests"

log "pipelining: answers in order"
exec 3<>"/dev/tcp/127.0.0.1/$HPORT"
AUTH="Authorization: Bearer $API_KEY"
printf 'GET /v1/members/alice/balance HTTP/1.1\r\nHost: t\r\n%s\r\n\r\nGET /v1/nope HTTP/1.1\r\nHost: t\r\n%s\r\n\r\nPOST /v1/awards HTTP/1.1\r\nHost: t\r\n%s\r\nIdempotency-Key: pipe1\r\nContent-Length: 33\r\n\r\n{"member":"alice","points":1000}\nGET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /v1/members/alice/balance HTTP/1.1\r\nHost: t\r\n%s\r\nConnection: close\r\n\r\n' \
    "$AUTH" "$AUTH" "$AUTH" "$AUTH" >&3
PIPE=$(timeout 10 cat <&3) || true
exec 3<&-
expect_eq "$(grep -o 'HTTP/1.1 [0-9]*' <<<"$PIPE" | tr '\n' ' ')" \
    "HTTP/1.1 200 HTTP/1.1 404 HTTP/1.1 200 HTTP/1.1 200 HTTP/1.1 200 " "pipelined statuses"
mapfile -t POINTS < <(grep -o '"member":"alice","points":[0-9]*' <<<"$PIPE" | grep -o '[0-9]*$')
expect_eq "${POINTS[*]}" "200 1200" "balances before and after the pipelined award"

log "other partners' transactions"
"$COALITION" keygen --out "$KEY_DIR/books" >/dev/null
hcli --json partner add books --name "Page Books" --public-key "$KEY_DIR/books.pub" >/dev/null
hexpect 403 POST /v1/awards '{"member":"alice","points":5,"partner":"books"}' forged1
herror_is FORBIDDEN

log "metrics"
hexpect 200 GET /metrics "" "" -
grep -q '^coalition_raft_role{role="leader"} 1$' <<<"$HBODY" || fail "metrics: raft role: $HBODY"
grep -q '^coalition_http_requests_total{route="POST /v1/awards",code="200"} [1-9]' <<<"$HBODY" ||
    fail "metrics: award requests"
grep -q '^coalition_http_requests_total{route="POST /v1/redemptions",code="422"} 1$' <<<"$HBODY" ||
    fail "metrics: the refused redemption"
grep -qE '^coalition_http_request_duration_seconds_count\{route="GET /v1/members/\{id\}/balance"\} [1-9]' \
    <<<"$HBODY" || fail "metrics: latency histogram"
grep -qE '^coalition_raft_commit_index [1-9]' <<<"$HBODY" || fail "metrics: commit index"
grep -qE '^coalition_raft_applied_index [1-9]' <<<"$HBODY" || fail "metrics: applied index"
grep -qE '^coalition_batcher_txns_total [1-9]' <<<"$HBODY" || fail "metrics: batcher txns"
grep -qE '^coalition_batcher_batch_size_max [1-9]' <<<"$HBODY" || fail "metrics: batch size"

log "per-partner rate limit: 429"
stop_node TERM
expect_eq "$EXIT_CODE" 0 "exit status after SIGTERM"
start_http_node "$TEST_TMP/node" "${PORTS[0]}" "$HPORT" --raft "127.0.0.1:${PORTS[2]}" \
    --set limits.partner_rps=5
CODES=$(seq 1 40 | xargs -P 20 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
    -H "Authorization: Bearer $API_KEY" "$HTTP_URL/v1/members/alice/balance" | sort | uniq -c)
log "40 reads at partner_rps=5: $(tr '\n' ' ' <<<"$CODES")"
grep -qE '^ *[0-9]+ 429$' <<<"$CODES" || fail "no 429 at 5 requests per second: $CODES"
grep -qE '^ *[0-9]+ 200$' <<<"$CODES" || fail "no request served at all: $CODES"
sleep 1.2
hexpect 200 GET /v1/members/alice/balance
hreq GET /v1/members/alice/balance
# Each round spends the bucket with 10 reads at once, then looks at one
# more answer: sequential requests alone may not outrun 5/s on a slow machine.
for i in $(seq 1 10); do
    seq 1 10 | xargs -P 10 -I{} curl -s -o /dev/null \
        -H "Authorization: Bearer $API_KEY" "$HTTP_URL/v1/members/alice/balance"
    hreq GET /v1/members/alice/balance
    [[ $HSTATUS == 429 ]] && break
done
expect_eq "$HSTATUS" 429 "status past the rate"
herror_is RATE_LIMITED

stop_node TERM
expect_eq "$EXIT_CODE" 0 "exit status after SIGTERM"
log "PASS"
