#!/usr/bin/env bash
# PUT /v1/program and POST /v1/transfers on a real coalitiond through curl,
# checked by their effects: an award for a purchase earns the new program's
# rate (base, category, campaign); a transfer moves points between two
# members (both balances), a retry is a duplicate that changes nothing, a
# transfer over the balance is 422 and changes nothing; a partner's API key
# cannot set another partner's program (and that program stays as it was).
# GET /v1/program reads back what PUT set (the defaults before), the key's
# partner's or, with ?partner=, any partner's; its body PUT again sets the
# same program.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=tests/lib/http_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/http_lib.sh"

mapfile -t PORTS < <(free_port 3)
start_http_node "$TEST_TMP/node" "${PORTS[0]}" "${PORTS[1]}" --raft "127.0.0.1:${PORTS[2]}"

# balance_of MEMBER: spendable points, through the HTTP API.
balance_of() {
    hexpect 200 GET "/v1/members/$1/balance"
    hjson .points
}

hexpect 201 POST /v1/members '{"member":"alice"}' m-alice
hexpect 201 POST /v1/members '{"member":"bob"}' m-bob

# program_is JSON: GET /v1/program answered exactly JSON (keys in any order).
program_is() {
    expect_eq "$(jq -cS . <<<"$HBODY")" "$(jq -cS . <<<"$1")" "${2:-GET /v1/program}"
}
DEFAULTS='{"point_value_mc":1000,"base_rate_milli":1000,"categories":{},"campaigns":[],"min_purchase_cents":0,"lock_days":0}'

log "before any program: 1 point per currency unit, and GET /v1/program says so"
hexpect 200 GET /v1/program
program_is "$DEFAULTS" "the default program"
hexpect 200 POST /v1/awards '{"member":"alice","purchase_cents":10000}' a-before
expect_eq "$(hjson .points)" 100 "default rate: 100.00 earns"
expect_eq "$(hjson .rule)" base "default rule"

log "PUT /v1/program: the CLI's program file as the body"
PROGRAM='{"point_value_mc":1000,"base_rate_milli":3000,"categories":{"books":200},"min_purchase_cents":500,"lock_days":0}'
hexpect 200 PUT /v1/program "$PROGRAM" prog-1
expect_eq "$(hjson .txn)" prog-1 "program txn"
expect_eq "$(hjson .duplicate)" false "program duplicate"
PROG_SEQ=$(hjson .seq)
[[ $PROG_SEQ =~ ^[1-9][0-9]*$ ]] || fail "program: seq in $HBODY"
hexpect 200 POST /v1/awards '{"member":"alice","purchase_cents":10000}' a-after
expect_eq "$(hjson .points)" 300 "base_rate_milli 3000: 100.00 earns 300"
expect_eq "$(hjson .rule)" base "rule after the program"
hexpect 200 POST /v1/awards '{"member":"alice","purchase_cents":10000,"category":"books"}' a-books
expect_eq "$(hjson .points)" 600 "books x2"
expect_eq "$(hjson .rule)" category:books "category rule"
hexpect 422 POST /v1/awards '{"member":"alice","purchase_cents":499}' a-small
herror_is NO_POINTS_EARNED

log "retries of PUT /v1/program"
hexpect 200 PUT /v1/program "$PROGRAM" prog-1
expect_eq "$(hjson .duplicate)" true "retried program"
expect_eq "$(hjson .seq)" "$PROG_SEQ" "retried program seq"
hexpect 409 PUT /v1/program '{"point_value_mc":1000,"base_rate_milli":9000}' prog-1
herror_is CONFLICT
hexpect 200 POST /v1/awards '{"member":"alice","purchase_cents":10000}' a-after-retry
expect_eq "$(hjson .points)" 300 "the refused retry changed nothing"

log "bad programs: refused, nothing changes"
hexpect 400 PUT /v1/program '{"point_value_mc":0,"base_rate_milli":5000}' prog-bad-1
herror_is INVALID_ARGUMENT
hexpect 400 PUT /v1/program '{"point_value_mc":1000,"base_rate":5000}' prog-bad-2
herror_is INVALID_ARGUMENT
hexpect 400 PUT /v1/program '{"point_value_mc":1000,"base_rate_milli":-1}' prog-bad-3
hexpect 400 PUT /v1/program '{"point_value_mc":1000,"base_rate_milli":"5000"}' prog-bad-4
hexpect 400 PUT /v1/program '{"point_value_mc":1000,"categories":[200]}' prog-bad-5
hexpect 400 PUT /v1/program '{"point_value_mc":1000,"categories":{"books":"x2"}}' prog-bad-6
hexpect 400 PUT /v1/program \
    '{"point_value_mc":1000,"campaigns":[{"id":"c","start":"2030-01-01","end":"2020-01-01"}]}' prog-bad-7
herror_is INVALID_ARGUMENT
hexpect 400 PUT /v1/program \
    '{"point_value_mc":1000,"campaigns":[{"id":"c","start":"soon","end":"2030-01-01"}]}' prog-bad-8
hexpect 400 PUT /v1/program '{"point_value_mc":1000,"campaigns":[{"id":"c","end":"2030-01-01"}]}' \
    prog-bad-9
CATS=$(seq 1 33 | sed 's/.*/"c&":100/' | paste -sd, -)
hexpect 400 PUT /v1/program "{\"point_value_mc\":1000,\"categories\":{$CATS}}" prog-bad-10
hexpect 400 PUT /v1/program "$PROGRAM"
herror_is INVALID_ARGUMENT
hexpect 401 PUT /v1/program "$PROGRAM" prog-nokey -
herror_is UNAUTHENTICATED
hexpect 405 POST /v1/program "$PROGRAM" prog-post
log "GET /v1/program: the program set, every key present"
hexpect 200 GET /v1/program
program_is '{"point_value_mc":1000,"base_rate_milli":3000,"categories":{"books":200},"campaigns":[],"min_purchase_cents":500,"lock_days":0}'
hexpect 401 GET /v1/program "" "" -
herror_is UNAUTHENTICATED
hexpect 401 GET /v1/program "" "" not-a-key
herror_is UNAUTHENTICATED
hexpect 404 GET "/v1/program?partner=nobody"
herror_is UNKNOWN_PARTNER
hexpect 400 GET "/v1/program?partner="
herror_is INVALID_ARGUMENT
hexpect 400 GET "/v1/program?partner=bad%20id"
herror_is INVALID_ARGUMENT
hexpect 400 GET "/v1/program?member=alice"
herror_is INVALID_ARGUMENT
hexpect 400 GET /v1/program '{"partner":"acme"}'
herror_is INVALID_ARGUMENT
hexpect 200 POST /v1/awards '{"member":"alice","purchase_cents":10000}' a-after-bad
expect_eq "$(hjson .points)" 300 "refused programs changed nothing"

log "a campaign (dates as in the CLI's file)"
hexpect 200 PUT /v1/program \
    '{"point_value_mc":1000,"base_rate_milli":3000,"campaigns":[{"id":"always","start":"2020-01-01","end":"2100-01-01","multiplier_pct":200,"bonus_points":7}],"reason":"spring"}' \
    prog-2
hexpect 200 POST /v1/awards '{"member":"bob","purchase_cents":10000}' a-campaign
expect_eq "$(hjson .points)" 607 "x2 campaign plus a bonus of 7"
expect_eq "$(hjson .rule)" campaign:always "campaign rule"
hexpect 200 GET /v1/program
CAMPAIGN_PROGRAM='{"point_value_mc":1000,"base_rate_milli":3000,"categories":{},"campaigns":[{"id":"always","start":"2020-01-01T00:00:00.000Z","end":"2100-01-01T00:00:00.000Z","multiplier_pct":200,"bonus_points":7,"category":""}],"min_purchase_cents":0,"lock_days":0}'
program_is "$CAMPAIGN_PROGRAM" "the campaign program, dates written in full"
log "what GET /v1/program answers is a body for PUT /v1/program"
READ_BACK=$HBODY
hexpect 200 PUT /v1/program "$READ_BACK" prog-2-again
hexpect 200 GET /v1/program
program_is "$CAMPAIGN_PROGRAM" "the program read back and set again"
hexpect 200 PUT /v1/program \
    '{"point_value_mc":1000,"base_rate_milli":3000,"campaigns":[{"id":"over","start":"2020-01-01","end":"2020-02-01","multiplier_pct":500}]}' \
    prog-3
hexpect 200 POST /v1/awards '{"member":"bob","purchase_cents":10000}' a-campaign-over
expect_eq "$(hjson .points)" 300 "a campaign that is over does not apply"

log "another partner's program: 403, and it stays as it was"
"$COALITION" keygen --out "$KEY_DIR/books" >/dev/null
hcli --json partner add books --name "Page Books" --public-key "$KEY_DIR/books.pub" >/dev/null
BOOKS_KEY=$(hcli --json apikey create --partner books | jq -r .api_key)
[[ $BOOKS_KEY =~ ^[0-9a-f]{16}\.[0-9a-f]{64}$ ]] || fail "no API key of books: '$BOOKS_KEY'"
# acme's key naming books.
hexpect 403 PUT /v1/program '{"point_value_mc":1000,"base_rate_milli":50000,"partner":"books"}' prog-x1
herror_is FORBIDDEN
# books' own key on acme's node (which signs only for acme).
hexpect 403 PUT /v1/program '{"point_value_mc":1000,"base_rate_milli":50000}' prog-x2 "$BOOKS_KEY"
herror_is FORBIDDEN
run hcli --json award --partner books --member alice --purchase-cents 10000 --txn b-award
[[ $RC == 0 ]] || fail "award of books: $OUT $ERR"
expect_eq "$(json_get points "$OUT")" 100 "books still earns the default rate"
hexpect 200 POST /v1/awards '{"member":"alice","purchase_cents":10000}' a-after-x
expect_eq "$(hjson .points)" 300 "acme's program is its own"
log "programs are not secret: ?partner= reads another partner's"
ACME_PROGRAM='{"point_value_mc":1000,"base_rate_milli":3000,"categories":{},"campaigns":[{"id":"over","start":"2020-01-01T00:00:00.000Z","end":"2020-02-01T00:00:00.000Z","multiplier_pct":500,"bonus_points":0,"category":""}],"min_purchase_cents":0,"lock_days":0}'
hexpect 200 GET "/v1/program?partner=books"
program_is "$DEFAULTS" "books never set one"
hexpect 200 GET "/v1/program?partner=acme"
program_is "$ACME_PROGRAM" "acme's, named"
# books' key (valid for reads on any node): its own, or acme's when named.
hexpect 200 GET /v1/program "" "" "$BOOKS_KEY"
program_is "$DEFAULTS" "books' key: books' program"
hexpect 200 GET "/v1/program?partner=acme" "" "" "$BOOKS_KEY"
program_is "$ACME_PROGRAM" "books' key reading acme's program"

log "POST /v1/transfers: points move from one member to the other"
A0=$(balance_of alice)
B0=$(balance_of bob)
log "before: alice $A0, bob $B0"
hexpect 200 POST /v1/transfers '{"member":"alice","member_to":"bob","points":250,"reason":"gift"}' t-1
expect_eq "$(hjson .txn)" t-1 "transfer txn"
expect_eq "$(hjson .points)" 250 "transferred"
expect_eq "$(hjson .duplicate)" false "transfer duplicate"
T_SEQ=$(hjson .seq)
expect_eq "$(balance_of alice)" $((A0 - 250)) "alice after the transfer"
expect_eq "$(balance_of bob)" $((B0 + 250)) "bob after the transfer"
hexpect 200 GET "/v1/members/bob/history?limit=1"
expect_eq "$(hjson '.items[0].kind')" transfer "bob's history"
expect_eq "$(hjson '.items[0].delta')" 250 "bob's history delta"
expect_eq "$(hjson '.items[0].counterparty')" alice "bob's history counterparty"

log "a retried transfer is a duplicate and moves nothing"
hexpect 200 POST /v1/transfers '{"member":"alice","member_to":"bob","points":250,"reason":"gift"}' t-1
expect_eq "$(hjson .duplicate)" true "retried transfer"
expect_eq "$(hjson .seq)" "$T_SEQ" "retried transfer seq"
hexpect 409 POST /v1/transfers '{"member":"alice","member_to":"bob","points":251}' t-1
herror_is CONFLICT
expect_eq "$(balance_of alice)" $((A0 - 250)) "alice after the retries"
expect_eq "$(balance_of bob)" $((B0 + 250)) "bob after the retries"

log "rejected transfers change nothing"
hexpect 422 POST /v1/transfers "{\"member\":\"alice\",\"member_to\":\"bob\",\"points\":$((A0 - 250 + 1))}" t-2
herror_is INSUFFICIENT_POINTS
hexpect 404 POST /v1/transfers '{"member":"alice","member_to":"nobody","points":1}' t-3
herror_is UNKNOWN_MEMBER
hexpect 400 POST /v1/transfers '{"member":"alice","member_to":"alice","points":1}' t-4
herror_is INVALID_ARGUMENT
hexpect 400 POST /v1/transfers '{"member":"alice","member_to":"bob","points":0}' t-5
herror_is INVALID_AMOUNT
hexpect 400 POST /v1/transfers '{"member":"alice","points":1}' t-6
herror_is INVALID_ARGUMENT
hexpect 400 POST /v1/transfers '{"member":"alice","to":"bob","points":1}' t-7
herror_is INVALID_ARGUMENT
hexpect 403 POST /v1/transfers '{"member":"alice","member_to":"bob","points":1,"partner":"books"}' t-8
herror_is FORBIDDEN
hexpect 403 POST /v1/transfers '{"member":"alice","member_to":"bob","points":1}' t-9 "$BOOKS_KEY"
herror_is FORBIDDEN
expect_eq "$(balance_of alice)" $((A0 - 250)) "alice after the refusals"
expect_eq "$(balance_of bob)" $((B0 + 250)) "bob after the refusals"
# All of it is allowed.
hexpect 200 POST /v1/transfers "{\"member\":\"alice\",\"member_to\":\"bob\",\"points\":$((A0 - 250))}" t-10
expect_eq "$(balance_of alice)" 0 "alice gave everything"
expect_eq "$(balance_of bob)" $((B0 + A0)) "bob has it"

log "settlement: GET /v1/settlement has the payments the CLI prints"
# bob holds points of acme and of books (alice's, transferred); redeeming at
# both partners makes flows both ways between them.
run hcli --json redeem --partner books --member bob --points 40 --txn b-redeem
[[ $RC == 0 ]] || fail "redeem at books: $OUT $ERR"
hexpect 200 POST /v1/redemptions '{"member":"bob","points":30}' r-acme
hexpect 200 GET "/v1/settlement?from=2020-01-01&to=2100-01-01"
HTTP_PAY=$(jq -cS .payments <<<"$HBODY")
# The one payment nets acme's points redeemed at books against books' at acme.
A2B=$(hjson '[.flows[] | select(.issuer=="acme" and .redeemer=="books") | .value_mc] | add // 0')
B2A=$(hjson '[.flows[] | select(.issuer=="books" and .redeemer=="acme") | .value_mc] | add // 0')
(( A2B != B2A )) || fail "no uneven flows between acme and books: $HBODY"
if ((A2B > B2A)); then WANT_PAY="acme books $((A2B - B2A))"; else WANT_PAY="books acme $((B2A - A2B))"; fi
expect_eq "$(hjson '.payments | length')" 1 "HTTP settlement payments"
expect_eq "$(hjson '.payments[0] | "\(.payer) \(.payee) \(.value_mc)"')" "$WANT_PAY" \
    "HTTP payment nets the flows"
run hcli --json settlement --from 2020-01-01 --to 2100-01-01
[[ $RC == 0 ]] || fail "CLI settlement: $OUT $ERR"
expect_eq "$HTTP_PAY" "$(jq -cS .payments <<<"$OUT")" "HTTP and CLI settlement payments"

log "the ledger agrees with itself"
run hcli verify
[[ $RC == 0 ]] || fail "verify: $OUT $ERR"

stop_node TERM
expect_eq "$EXIT_CODE" 0 "exit status after SIGTERM"
log "PASS"
