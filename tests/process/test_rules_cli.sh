#!/usr/bin/env bash
# Drives the real `coalition` CLI against a real coalitiond for the coalition
# rules: rules and program files, purchase awards (category, campaign, tier,
# minimum, part paid with points), locked points, holds (capture, release,
# timeout), balances and expiring points at a later date, cards, phone and
# email lookups, merge, erase, and the settlement and KPI reports in text,
# --json and --csv, with their rejections.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

KEY=$TEST_TMP/identity.key
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$KEY"
PORT=$(free_port)
# The node signs for coffee: phone and email are hashed on the node a POS
# talks to with its API key (docs/security.md).
partner_keygen coffee
SIGNS=(--partner coffee --partner-key "$KEY_DIR/coffee.key")
start_node "$TEST_TMP/node1" "$PORT" --identity-key "$KEY" "${SIGNS[@]}"

# write_ok ARGS...: a write that must be accepted as new.
write_ok() {
    expect_exit 0 cli --json "$@"
    expect_eq "$(json_get duplicate)" false "duplicate of '$*'"
}

# award_is POINTS RULE ARGS...: a purchase award and what it earned.
award_is() {
    local points=$1 rule=$2
    shift 2
    write_ok award "$@"
    expect_eq "$(json_get points)" "$points" "points of award $*"
    expect_eq "$(json_get rule)" "$rule" "rule of award $*"
}

# field_is NAME VALUE [WHAT]: a field of the last JSON output.
field_is() {
    expect_eq "$(json_get "$1")" "$2" "${3:-$1}"
}

# The time of day the node stamped last, and dates relative to it.
NOW_MS=0
now_from_out() {
    NOW_MS=$(json_get time_ms)
    [[ $NOW_MS =~ ^[1-9][0-9]*$ ]] || fail "no time_ms in $OUT"
}
# at_plus SPEC: NOW plus a GNU date offset ("15 days", "25 months"), as
# YYYY-MM-DDTHH:MM:SSZ.
at_plus() {
    date -u -d "$(date -u -d "@$((NOW_MS / 1000))" '+%F %T') UTC $1" +%FT%TZ
}
# day_plus SPEC: the same as a day, YYYY-MM-DD.
day_plus() {
    date -u -d "$(date -u -d "@$((NOW_MS / 1000))" '+%F %T') UTC $1" +%F
}

log "partners, members, rules"
write_ok partner add --id coffee --name "Bean Coffee"
now_from_out
write_ok partner add --id books --name "Page Books"
write_ok partner add --id fuel --name "Fuel Stop"
write_ok member add --id alice --card 4000-0001
write_ok member add --id bob
write_ok member add --id carol --card 4000-0003
write_ok member add --id dave
write_ok member add --id erin

cat >"$TEST_TMP/rules.json" <<'EOF'
{"tiers": [{"name": "Silver", "threshold": 1000, "multiplier_pct": 110},
           {"name": "Gold", "threshold": 5000, "multiplier_pct": 125}],
 "expiry_months": 24, "hold_timeout_s": 900}
EOF
expect_exit 0 cli --json rules set --txn rules1 --file "$TEST_TMP/rules.json"
field_is duplicate false
# Files are checked before anything is sent: exit 2, the key named.
cat >"$TEST_TMP/rules-bad.json" <<'EOF'
{"tiers": [{"name": "Silver", "threshold": 1000, "mult": 110}]}
EOF
expect_exit 2 cli rules set --txn rules2 --file "$TEST_TMP/rules-bad.json"
expect_contains "$ERR" "unknown key 'tiers[0].mult'" "rules file with an unknown key"
expect_exit 2 cli --json rules set --txn rules2 --file "$TEST_TMP/no-such-file.json"
field_is code INVALID_ARGUMENT "missing rules file"
# What only the node checks: thresholds must ascend.
cat >"$TEST_TMP/rules-desc.json" <<'EOF'
{"tiers": [{"name": "Gold", "threshold": 5000}, {"name": "Silver", "threshold": 1000}]}
EOF
expect_error 1 INVALID_ARGUMENT rules set --txn rules3 --file "$TEST_TMP/rules-desc.json"

log "programs"
cat >"$TEST_TMP/coffee.json" <<EOF
{"point_value_mc": 1000, "base_rate_milli": 1000, "categories": {"food": 200},
 "campaigns": [{"id": "launch", "start": "$(day_plus "-1 day")", "end": "$(day_plus "30 days")",
                "multiplier_pct": 150, "bonus_points": 0, "category": "food"}],
 "min_purchase_cents": 500, "lock_days": 0}
EOF
expect_exit 0 cli --json program set --partner coffee --txn prog1 \
    --file "$TEST_TMP/coffee.json"
cat >"$TEST_TMP/books.json" <<'EOF'
{"point_value_mc": 2000, "base_rate_milli": 2000, "lock_days": 14}
EOF
write_ok program set --partner books --txn prog1 --file "$TEST_TMP/books.json"
cat >"$TEST_TMP/bad-date.json" <<'EOF'
{"point_value_mc": 1000, "campaigns": [{"id": "x", "start": "2026-02-30", "end": "2026-03-01"}]}
EOF
expect_exit 2 cli program set --partner coffee --txn prog2 --file "$TEST_TMP/bad-date.json"
expect_contains "$ERR" "campaigns[0].start" "program file with a bad date"
echo '{"point_value_mc": 1000, "colour": "red"}' >"$TEST_TMP/colour.json"
expect_exit 2 cli program set --partner coffee --txn prog2 --file "$TEST_TMP/colour.json"
expect_contains "$ERR" "unknown key 'colour'" "program file with an unknown key"
echo '{"point_value_mc": 0}' >"$TEST_TMP/zero.json"
expect_error 1 INVALID_ARGUMENT program set --partner coffee --txn prog3 --file "$TEST_TMP/zero.json"
partner_keygen nopartner
expect_error 1 UNAUTHENTICATED program set --partner nopartner --txn prog4 \
    --file "$TEST_TMP/books.json"

log "program show: the program set, in the file's shape (set, show, set again, show: equal)"
# program_shown PARTNER JSON: `program show --json` prints exactly JSON (any key order).
program_shown() {
    expect_exit 0 cli --json program show --partner "$1"
    expect_eq "$(jq -cS . <<<"$OUT")" "$(jq -cS . <<<"$2")" "program show --partner $1"
}
# Every key of the file, its dates written in full.
program_shown coffee "$(jq '.campaigns |= map(.start += "T00:00:00.000Z" | .end += "T00:00:00.000Z")' \
    "$TEST_TMP/coffee.json")"
printf '%s\n' "$OUT" >"$TEST_TMP/coffee-shown.json"
write_ok program set --partner coffee --txn prog5 --file "$TEST_TMP/coffee-shown.json"
program_shown coffee "$(<"$TEST_TMP/coffee-shown.json")"
# Absent keys are 0, as the reader took them.
program_shown books '{"point_value_mc":2000,"base_rate_milli":2000,"categories":{},"campaigns":[],
    "min_purchase_cents":0,"lock_days":14}'
# Never set: the defaults the ledger applies (1 cent per point, 1 point per unit).
program_shown fuel '{"point_value_mc":1000,"base_rate_milli":1000,"categories":{},"campaigns":[],
    "min_purchase_cents":0,"lock_days":0}'
expect_exit 0 cli --json program show --partner fuel --consistent
field_is base_rate_milli 1000 "consistent program show"
expect_exit 0 cli program show --partner coffee
expect_contains "$OUT" "partner coffee" "program show in text"
expect_contains "$OUT" "launch" "program show in text: the campaign"
expect_error 1 UNKNOWN_PARTNER program show --partner nobody
expect_exit 2 cli program show
expect_exit 2 cli program show --partner coffee --txn x

log "purchase awards: base, category and campaign, minimum, paid with points, tier"
# 1 point per currency unit at coffee; food x2, the launch campaign x1.5 on food.
award_is 100 base --partner coffee --member alice --txn p1 --purchase-cents 10000
award_is 300 category:food,campaign:launch --partner coffee --member alice --txn p2 \
    --purchase-cents 10000 --category food
expect_exit 0 cli award --partner coffee --member alice --txn p2 --purchase-cents 10000 \
    --category food
expect_contains "$OUT" "duplicate" "retry of p2"
expect_exit 0 cli --json award --partner coffee --member alice --txn p2 --purchase-cents 10000 \
    --category food
field_is duplicate true "retry of p2"
field_is points 300 "retry of p2: points"
expect_error 1 CONFLICT award --partner coffee --member alice --txn p2 --purchase-cents 10001 \
    --category food
award_is 10 base --partner coffee --member alice --txn p3 --purchase-cents 2000 \
    --paid-points-cents 1000
expect_error 1 NO_POINTS_EARNED award --partner coffee --member alice --txn e1 \
    --purchase-cents 499
expect_error 1 NO_POINTS_EARNED award --partner coffee --member alice --txn e2 \
    --purchase-cents 1000 --paid-points-cents 1000
expect_exit 2 cli award --partner coffee --member alice --txn e3 --points 5 --purchase-cents 500
expect_exit 2 cli award --partner coffee --member alice --txn e4
expect_exit 2 cli award --partner coffee --member alice --txn e5 --points 5 --category food
expect_exit 2 cli award --partner coffee --member alice --txn e6 --purchase-cents 5x

expect_exit 0 cli --json balance --member alice
field_is points 410 "alice's points"
field_is held 0
field_is locked 0
field_is tier null "alice's tier below Silver"
field_is next_tier Silver
field_is to_next_tier 590
field_is earned_12m 410
[[ $(json_get at) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z$ ]] || fail "balance at: $OUT"
award_is 600 category:food,campaign:launch --partner coffee --member alice --txn p4 \
    --purchase-cents 20000 --category food
expect_exit 0 cli --json balance --member alice
field_is tier Silver "alice's tier at 1010 points"
field_is next_tier Gold
field_is to_next_tier 3990
# Silver multiplies purchase points by 1.1.
expect_exit 0 cli award --partner coffee --member alice --txn p5 --purchase-cents 10000
expect_contains "$OUT" "points 110 (rule base,tier:Silver)" "human award output"
expect_exit 0 cli --json award --partner coffee --member alice --txn p5 --purchase-cents 10000
field_is duplicate true "retry of p5"
field_is points 110 "retry of p5: points"
expect_exit 0 cli balance --member alice
expect_contains "$OUT" "1120 points" "human balance"
expect_contains "$OUT" "Silver" "human balance tier"
expect_contains "$OUT" "Gold in 3880 points" "human balance next tier"

log "locked points (books: 14 days)"
award_is 100 base --partner books --member bob --txn b1 --purchase-cents 5000
expect_exit 0 cli --json balance --member bob
field_is points 0 "bob's spendable points"
field_is locked 100 "bob's locked points"
expect_exit 0 cli --json balance --member bob --at "$(at_plus "15 days")"
field_is points 100 "bob's points in 15 days"
field_is locked 0 "bob's locked points in 15 days"
expect_error 1 INSUFFICIENT_POINTS redeem --partner coffee --member bob --points 1 --txn rb1
expect_exit 2 cli balance --member bob --at tomorrow

log "holds"
write_ok hold --partner books --member alice --points 200 --txn h1
expect_exit 0 cli --json balance --member alice
field_is points 920 "alice after hold h1"
field_is held 200 "alice's held points"
write_ok capture --partner books --hold h1 --points 150 --txn c1
field_is points 150 "captured"
expect_exit 0 cli --json balance --member alice
field_is points 970 "alice after capture (the rest back)"
field_is held 0
expect_error 1 HOLD_CLOSED capture --partner books --hold h1 --txn c1b
write_ok hold --partner books --member alice --points 100 --txn h2
write_ok release --partner books --hold h2 --txn rl1
expect_error 1 HOLD_CLOSED release --partner books --hold h2 --txn rl1b
expect_error 1 UNKNOWN_TXN capture --partner books --hold no-such-hold --txn c2
expect_error 1 UNKNOWN_TXN capture --partner coffee --hold h2 --txn c3
expect_error 1 INSUFFICIENT_POINTS hold --partner books --member alice --points 5000 --txn h3
expect_exit 0 cli --json balance --member alice
field_is points 970 "alice after release"
write_ok hold --partner books --member alice --points 30 --txn h4 --timeout-s 3
expect_exit 0 cli --json balance --member alice
field_is held 30 "hold h4"
deadline=$(($(now_ms) + 20000))
while :; do
    expect_exit 0 cli --json balance --member alice
    [[ $(json_get held) == 0 ]] && break
    (($(now_ms) < deadline)) || fail "hold h4 (3 s) not timed out after 20 s: $OUT"
    sleep 0.2
done
field_is points 970 "alice after hold h4 timed out"
expect_error 1 HOLD_CLOSED capture --partner books --hold h4 --txn c4
expect_exit 0 cli --json history --member alice --limit 10
KINDS=" $(json_all kind | tr '\n' ' ')"
for k in hold capture release hold_timeout award; do
    expect_contains "$KINDS" " $k " "alice's history kinds"
done

log "cross-partner redemptions"
write_ok redeem --partner fuel --member alice --points 100 --txn r1
write_ok award --partner fuel --member carol --points 400 --txn f1
write_ok redeem --partner coffee --member carol --points 100 --txn r2

log "expiry (24 months) seen at later dates"
expect_exit 0 cli --json expiring --member alice --within 30
expect_eq "$(json_all issuer | wc -l)" 0 "points expiring within 30 days now"
expect_exit 0 cli expiring --member alice --within 30
expect_contains "$OUT" "no points expire" "human expiring, none"
SOON=$(at_plus "24 months -10 days")
expect_exit 0 cli --json expiring --member alice --within 30 --at "$SOON"
field_is total 870 "alice's points expiring within 30 days of $SOON"
expect_eq "$(json_all issuer | sort -u | tr '\n' ' ')" "coffee " "issuers of alice's lots"
expect_eq "$(($(json_all points | paste -sd+)))" 870 "sum of the lots"
expect_exit 0 cli expiring --member alice --within 30 --at "$SOON"
expect_contains "$OUT" "870 points expire" "human expiring"
expect_contains "$OUT" "ISSUER" "human expiring table"
expect_exit 0 cli --json balance --member alice --at "$(at_plus "25 months")"
field_is points 0 "alice's points after 25 months"
expect_error 1 INVALID_ARGUMENT expiring --member alice --within 3661
expect_error 1 UNKNOWN_MEMBER expiring --member nobody --within 30
expect_exit 2 cli expiring --member alice --within -1

log "settlement"
FROM=$(day_plus "-1 day")
TO=$(day_plus "2 days")
expect_exit 0 cli --json settlement --from "$FROM" --to "$TO"
SET=$OUT
# coffee's points at books (150 captured) and at fuel (100); fuel's at coffee (100).
expect_eq "$(json_all issuer "$SET" | tr '\n' ' ')" "coffee coffee fuel " "flow issuers"
expect_eq "$(json_all redeemer "$SET" | tr '\n' ' ')" "books fuel coffee " "flow redeemers"
expect_eq "$(json_all value_mc "$SET" | head -3 | tr '\n' ' ')" "150000 100000 100000 " \
    "flow values (issuer's point value)"
expect_eq "$(json_all payer "$SET" | tr '\n' ' ')" "coffee " "payers (coffee and fuel are even)"
expect_eq "$(json_all payee "$SET" | tr '\n' ' ')" "books " "payees"
expect_eq "$(json_all partner "$SET" | tr '\n' ' ')" "books coffee fuel " "positions"
COFFEE=$(grep -o '{"partner":"coffee"[^}]*}' <<<"$SET")
expect_eq "$(json_get issued "$COFFEE")" 1120 "coffee issued"
expect_eq "$(json_get redeemed_at "$COFFEE")" 100 "redeemed at coffee"
expect_eq "$(json_get outstanding "$COFFEE")" 870 "coffee outstanding"
expect_eq "$(json_get liability_mc "$COFFEE")" 870000 "coffee liability"
expect_eq "$(json_get payable_mc "$COFFEE")" 250000 "coffee payable"
expect_eq "$(json_get receivable_mc "$COFFEE")" 100000 "coffee receivable"
expect_eq "$(json_get net_mc "$COFFEE")" -150000 "coffee net"
expect_exit 0 cli settlement --from "$FROM" --to "$TO"
expect_contains "$OUT" "coffee pays books 1.50" "human settlement payment"
expect_contains "$OUT" "REDEEMED AT" "human settlement positions"
expect_exit 0 cli settlement --from "$FROM" --to "$TO" --csv
expect_eq "$(head -n 1 <<<"$OUT")" "issuer,redeemer,points,value_mc,value" "flows CSV header"
expect_contains "$OUT" $'\ncoffee,books,150,150000,1.50\n' "flows CSV row"
expect_contains "$OUT" $'\n\npartner,issued,redeemed_at,expired,outstanding,' "positions CSV"
expect_contains "$OUT" $'\ncoffee,1120,100,0,870,870000,' "coffee CSV row"
# Nothing happened in 2020.
expect_exit 0 cli --json settlement --from 2020-01-01 --to 2020-02-01
expect_eq "$(json_all issuer | wc -l)" 0 "flows in 2020"
expect_exit 2 cli settlement --from "$TO" --to "$FROM"
expect_exit 2 cli --json settlement --from "$FROM" --to "$TO" --csv
expect_exit 2 cli settlement --from 2026-1-1 --to "$TO"

log "KPI reports"
expect_exit 0 cli --json report --partner coffee --from "$FROM" --to "$TO"
# coffee: alice bought 5 times (52000 cents), carol redeemed at coffee.
field_is partner coffee
field_is active_members 2
field_is purchasers 1
field_is repeat_purchasers 1
field_is repeat_rate_pct 100.0
field_is previous_active 0
field_is retention_rate_pct null "retention with no earlier activity"
field_is purchases 5
field_is purchase_cents 52000
field_is average_order_cents 10400
field_is points_issued 1120
field_is points_redeemed 100
field_is points_expired 0
field_is breakage_rate_pct 0.0
field_is outstanding 870
field_is liability_mc 870000
expect_eq "$(json_all points | tr '\n' ' ')" "150 100 100 " "coffee's top flows"
expect_exit 0 cli report --partner coffee --from "$FROM" --to "$TO"
expect_contains "$OUT" "average order value:   104.00" "human report: average order value"
expect_contains "$OUT" "retention rate:        n/a" "human report: retention n/a"
expect_contains "$OUT" "repeat-purchase rate:  100.0%" "human report: repeat rate"
expect_contains "$OUT" "liability:             8.70" "human report: liability"
expect_exit 0 cli --json report --all --from "$FROM" --to "$TO"
field_is partner null "the whole coalition"
field_is active_members 3
field_is purchasers 2
field_is repeat_rate_pct 50.0
field_is purchases 6
field_is average_order_cents 9500
field_is points_issued 1620
field_is points_redeemed 350
field_is outstanding 1270
field_is liability_mc 1370000
expect_exit 0 cli report --all --from "$FROM" --to "$TO" --csv
HEAD=$(head -n 1 <<<"$OUT")
ROW=$(sed -n 2p <<<"$OUT")
col() { # col NAME: the value of column NAME in ROW
    local i
    i=$(tr ',' '\n' <<<"$HEAD" | grep -nx "$1" | cut -d: -f1)
    [[ -n $i ]] || fail "no column $1 in $HEAD"
    cut -d, -f"$i" <<<"$ROW"
}
expect_eq "$(col partner)" "" "CSV partner of the whole coalition"
expect_eq "$(col repeat_rate_pct)" 50.0 "CSV repeat rate"
expect_eq "$(col retention_rate_pct)" "" "CSV retention rate n/a"
expect_eq "$(col average_order_cents)" 9500 "CSV average order"
expect_eq "$(col liability_mc)" 1370000 "CSV liability"
expect_contains "$OUT" $'\n\nissuer,redeemer,points,value_mc,value\n' "CSV top flows"
expect_error 1 UNKNOWN_PARTNER report --partner nobody --from "$FROM" --to "$TO"
expect_exit 2 cli report --from "$FROM" --to "$TO"
expect_exit 2 cli report --all --partner coffee --from "$FROM" --to "$TO"

log "cards"
write_ok card add --member alice --card 4000-0002 --txn ca1
expect_exit 0 cli --json lookup --card 4000-0002
field_is member alice "lookup of alice's new card"
write_ok card replace --member alice --old 4000-0001 --card 4000-0009 --txn cr1
expect_error 1 UNKNOWN_MEMBER lookup --card 4000-0001
expect_exit 0 cli lookup --card 4000-0009
expect_eq "$OUT" "member alice" "human lookup"
expect_error 1 UNKNOWN_CARD card replace --member alice --old 4000-0003 --card 4000-0010 \
    --txn cr2
expect_exit 0 cli --json balance --member alice
field_is points 870 "the balance stays with the member"
expect_exit 2 cli lookup --card 4000-0002 --email a@b.example
expect_exit 2 cli lookup

log "phone and email"
expect_error 1 UNAUTHENTICATED identify --member alice --phone "+44 20 7946 0000" --txn id1
COFFEE_KEY=$(api_key_for coffee)
expect_exit 0 cli --json --api-key "$COFFEE_KEY" identify --member alice \
    --phone "+44 20 7946 0000" --email "Alice@Example.com" --txn id1
field_is duplicate false
expect_exit 0 cli --json lookup --phone "+442079460000"
field_is member alice "lookup by phone (normalized)"
expect_exit 0 cli --json lookup --email "alice@example.com"
field_is member alice "lookup by email (normalized)"
expect_error 1 UNKNOWN_MEMBER lookup --phone "+15550000000"
expect_error 1 INVALID_ARGUMENT --api-key "$COFFEE_KEY" identify --member alice --phone 12 --txn id2
expect_exit 2 cli identify --member alice --txn id3

log "merge"
write_ok award --partner fuel --member dave --points 50 --txn f2
write_ok merge --member dave --into carol --txn mg1
expect_exit 0 cli --json balance --member carol
field_is points 350 "carol after absorbing dave"
expect_error 1 MEMBER_CLOSED award --partner fuel --member dave --points 1 --txn f3
write_ok award --partner fuel --member erin --points 20 --txn f4
write_ok hold --partner fuel --member erin --points 10 --txn h5
expect_error 1 OPEN_HOLDS merge --member erin --into carol --txn mg2
write_ok release --partner fuel --hold h5 --txn rl5
write_ok merge --member erin --into carol --txn mg2
expect_exit 0 cli --json balance --member carol
field_is points 370 "carol after absorbing erin"
expect_exit 2 cli merge --member erin --txn mg3

log "erase"
write_ok erase --member carol --txn er1
expect_error 1 UNKNOWN_MEMBER lookup --card 4000-0003
expect_error 1 MEMBER_CLOSED award --partner fuel --member carol --points 1 --txn f5

log "verify"
expect_exit 0 cli verify

stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after SIGTERM"

log "a node without the identity key"
start_node "$TEST_TMP/node1" "$PORT" "${SIGNS[@]}"
expect_exit 0 cli --json lookup --card 4000-0009
field_is member alice "card lookup without the identity key"
expect_error 1 IDENTITY_UNAVAILABLE lookup --phone "+442079460000"
expect_error 1 IDENTITY_UNAVAILABLE --api-key "$COFFEE_KEY" identify --member alice \
    --email a@b.example --txn id4
stop_node TERM
expect_eq "$EXIT_CODE" 0 "node exit status after SIGTERM"
log "PASS"
