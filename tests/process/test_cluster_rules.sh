#!/usr/bin/env bash
# The coalition rules on three real nodes: a purchase award computed from the
# partner's program and the member's tier, tiers, phone lookup through the
# identity key (hashed on the leader, the same lookup on every node), a hold
# released by the leader's sweeper when it times out (an ordered entry), a
# partial capture and its refund, and then every node prints the identical
# settlement statement and KPI report, whose figures are checked against what
# was done.  Ends with cluster check and verify on every node.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

IDKEY=$TEST_TMP/identity.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$IDKEY"
start_cluster 3 --identity-key "$IDKEY"

log "partners, programs, coalition rules, members"
expect_exit 0 cli_on 1 partner add --id coffee --name "Bean Coffee"
expect_exit 0 cli_on 2 partner add --id books --name "Page Books"
cat >"$TEST_TMP/coffee.json" <<'EOF'
{"point_value_mc": 1000, "base_rate_milli": 1000, "categories": {"food": 200},
 "min_purchase_cents": 100}
EOF
cat >"$TEST_TMP/books.json" <<'EOF'
{"point_value_mc": 500, "base_rate_milli": 2000}
EOF
cat >"$TEST_TMP/rules.json" <<'EOF'
{"tiers": [{"name": "Silver", "threshold": 100, "multiplier_pct": 110},
           {"name": "Gold", "threshold": 1000, "multiplier_pct": 125}],
 "expiry_months": 24, "hold_timeout_s": 600}
EOF
expect_exit 0 cli_on 1 program set --partner coffee --txn prog-1 --file "$TEST_TMP/coffee.json"
expect_exit 0 cli_on 3 program set --partner books --txn prog-1 --file "$TEST_TMP/books.json"
expect_exit 0 cli_on 2 rules set --txn rules-1 --file "$TEST_TMP/rules.json"
# A consistent program read on a follower goes to the leader (a barrier
# there): it sees the program just set through node 3.
expect_exit 0 cli_on "$(a_follower)" --json program show --partner books --consistent
expect_eq "$(json_get base_rate_milli)" 2000 "books' program, read consistently on a follower"
expect_eq "$(json_get point_value_mc)" 500 "books' point value, read consistently on a follower"
expect_exit 0 cli_on 1 member add --id alice --card 4000-0001
expect_exit 0 cli_on 2 member add --id bob

log "a purchase award follows the program: 123.45 of food at x2 is 246 points"
expect_exit 0 cli_on 3 --json award --partner coffee --member alice --purchase-cents 12345 \
    --category food --txn sale-1
expect_eq "$(json_get points)" 246 "points of the food purchase"
expect_eq "$(json_get rule)" "category:food" "rule of the food purchase"
expect_error 1 NO_POINTS_EARNED --node "$(node_addr 1)" award --partner coffee --member bob \
    --purchase-cents 99 --txn sale-small
log "246 points earned make alice Silver; a later purchase earns x1.1"
expect_exit 0 cli_on 2 --json balance --member alice --consistent
expect_eq "$(json_get tier)" Silver "alice's tier"
expect_eq "$(json_get next_tier)" Gold "alice's next tier"
expect_eq "$(json_get to_next_tier)" $((1000 - 246)) "points alice needs for Gold"
# books: 2 points per unit; 50.00 of which 10.00 paid with points: 40 x 2 x 1.1.
expect_exit 0 cli_on 1 --json award --partner books --member alice --purchase-cents 5000 \
    --paid-points-cents 1000 --txn sale-2
expect_eq "$(json_get points)" 88 "points of a purchase partly paid with points, Silver"
expect_eq "$(json_get rule)" "base,tier:Silver" "rule of the Silver purchase"

log "identify alice by phone through a follower; any format finds her on every node"
# The follower hashes the phone and signs for its own partner, with the API
# key of a POS of that partner (nothing raw is forwarded).
F=$(a_follower)
expect_exit 0 cli_on 1 partner add --id "node$F" --name "Node $F shop"
POS_KEY=$(api_key_for "node$F" 1)
cluster_agrees # the follower knows the key
expect_exit 0 cli_on "$F" --api-key "$POS_KEY" identify --member alice \
    --phone "+44 20 7946 0001" --txn id-1
cluster_agrees # reads are local: every node has applied the identify
expect_same_everywhere "phone lookup" lookup --phone "+442079460001"
expect_eq "$(json_get member)" alice "member found by phone"
expect_error 1 UNKNOWN_MEMBER --node "$(node_addr 2)" lookup --phone "+44 20 7946 0002"
# The raft log is not compressed (RocksDB's tables may be): look everywhere.
if grep -rqa -e "7946 0001" -e "79460001" "$TEST_TMP"/node[0-9]; then
    fail "a raw phone number is stored in a node's data directory (ledger or raft log)"
fi

log "redeem at books, then a hold that times out is released by an entry"
expect_exit 0 cli_on 2 redeem --partner books --member alice --points 50 --txn red-1
expect_exit 0 cli_on 3 --json hold --partner books --member alice --points 30 --txn hold-1 \
    --timeout-s 3
expect_exit 0 cli_on 1 --json balance --member alice --consistent
expect_eq "$(json_get held)" 30 "held after the hold"
expect_eq "$(json_get points)" $((246 + 88 - 50 - 30)) "spendable during the hold"
deadline=$(($(now_ms) + 15000))
while :; do
    expect_exit 0 cli_on 1 --json balance --member alice --consistent
    [[ $(json_get held) == 0 ]] && break
    (($(now_ms) < deadline)) || fail "the hold was not released by the sweeper within 15 s: $OUT"
    sleep 0.3
done
expect_eq "$(json_get points)" $((246 + 88 - 50)) "spendable after the timeout"
expect_exit 0 cli_on 2 --json history --member alice --limit 1 --consistent
expect_contains "$OUT" hold_timeout "the release is an entry in alice's history"
expect_error 1 HOLD_CLOSED --node "$(node_addr 3)" capture --partner books --hold hold-1 \
    --txn cap-late

log "a hold captured in part, and the capture refunded in part"
expect_exit 0 cli_on 1 hold --partner coffee --member alice --points 40 --txn hold-2
expect_exit 0 cli_on 2 --json capture --partner coffee --hold hold-2 --points 25 --txn cap-2
expect_eq "$(json_get points)" 25 "captured points"
expect_exit 0 cli_on 3 reverse --partner coffee --of cap-2 --points 5 --txn refund-2
ALICE=$((246 + 88 - 50 - 25 + 5))
expect_exit 0 cli_on 1 --json balance --member alice --consistent
expect_eq "$(json_get points)" "$ALICE" "alice after capture and refund"
expect_eq "$(json_get held)" 0 "nothing held after the capture"

cluster_agrees
log "every node prints the same settlement statement and KPI report"
expect_same_everywhere "settlement" settlement --from 2020-01-01 --to 2100-01-01
SETTLEMENT=$OUT
# Redeemed: 50 at books, 25 - 5 at coffee; oldest lots first: coffee's 246.
expect_contains "$SETTLEMENT" '"issuer":"coffee","redeemer":"books","points":50,"value_mc":50000' \
    "coffee's points redeemed at books, valued at coffee's point value"
expect_contains "$SETTLEMENT" '"issuer":"coffee","redeemer":"coffee","points":20' \
    "coffee's own points redeemed at coffee, net of the refund"
CSV=''
for i in 1 2 3; do
    expect_exit 0 cli_on "$i" settlement --from 2020-01-01 --to 2100-01-01 --csv
    [[ -z $CSV || $OUT == "$CSV" ]] || fail "CSV settlement of node $i differs: $OUT
node 1: $CSV"
    CSV=$OUT
done
expect_same_everywhere "KPI report" report --all --from 2020-01-01 --to 2100-01-01
expect_eq "$(json_get purchases)" 2 "purchases in the report"
expect_eq "$(json_get points_issued)" $((246 + 88)) "points issued in the report"
expect_eq "$(json_get points_redeemed)" 70 "points redeemed in the report"
expect_eq "$(json_get outstanding)" "$ALICE" "outstanding points in the report"
expect_same_everywhere "KPI report for books" report --partner books --from 2020-01-01 \
    --to 2100-01-01
verify_everywhere
stop_cluster
log "ok"
