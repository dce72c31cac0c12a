/* Unit tests of the coalition rules as the ledger state machine applies them
 * (node/ledger.c on a real store, tests/lib/ledger_fixture.h): purchase
 * awards under a partner's program (categories, campaigns, minimum), tiers
 * over the rolling 12-month window and their scheduled review, expiry and
 * its sweep, pending (locked) points, holds (capture, release, timeout),
 * refunds, member identity (cards, lookup keys, merge, erase), refunds
 * after a merge and of expired unswept lots, a retried purchase award,
 * scheduled kinds with nothing due, and a seeded random run over three years
 * checked with ledger_verify and against the settlement report.  Every time is a
 * batch time chosen here: the ledger reads no clock. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "date.h"
#include "errors.h"
#include "ledger.h"
#include "ledger_fixture.h"
#include "report.h"
#include "rules.h"
#include "store.h"

#define DAY_MS  UINT64_C(86400000)
#define HOUR_MS UINT64_C(3600000)
#define MIN_MS  UINT64_C(60000)

/* An instant from its ISO 8601 text (UTC). */
static uint64_t at(const char *iso)
{
    uint64_t ms = 0;
    assert_int_equal(date_parse(iso, &ms), 0);
    return ms;
}

/* Partners shop, fuel and air (no program), members alice (card
 * card-alice), bob (card card-bob), carol and dave, at `t`. */
static void seed(struct ledger_fixture *f, uint64_t t)
{
    Coalition__Txn txns[] = {
        tx_partner("shop", "Shop"),       tx_partner("fuel", "Fuel"),   tx_partner("air", "Air"),
        tx_member("alice", "card-alice"), tx_member("bob", "card-bob"), tx_member("carol", NULL),
        tx_member("dave", NULL),
    };
    size_t n = sizeof(txns) / sizeof(txns[0]);
    struct ledger_result res[sizeof(txns) / sizeof(txns[0])];
    fixture_apply_batch(f, t, txns, n, res);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(res[i].code, 0);
    }
}

/* Sets the coalition rules at `t`: tiers (names, thresholds, multipliers;
 * n_tiers of them), expiry and hold timeout. */
static void set_rules(struct ledger_fixture *f, uint64_t t, const char *txn_id,
                      const char *const *names, const int64_t *thresholds, const uint32_t *pcts,
                      size_t n_tiers, uint32_t expiry_months, uint32_t hold_timeout_s)
{
    Coalition__Tier tiers[4];
    Coalition__Tier *tp[4];
    assert_true(n_tiers <= 4);
    for (size_t i = 0; i < n_tiers; i++) {
        coalition__tier__init(&tiers[i]);
        tiers[i].name = (char *)names[i];
        tiers[i].threshold = thresholds[i];
        tiers[i].multiplier_pct = pcts[i];
        tp[i] = &tiers[i];
    }
    Coalition__Rules r = COALITION__RULES__INIT;
    r.n_tiers = n_tiers;
    r.tiers = n_tiers > 0 ? tp : NULL;
    r.expiry_months = expiry_months;
    r.hold_timeout_s = hold_timeout_s;
    fixture_expect_ok(f, t, tx_rules_set(txn_id, &r));
}

static void set_expiry(struct ledger_fixture *f, uint64_t t, const char *txn_id, uint32_t months)
{
    set_rules(f, t, txn_id, NULL, NULL, NULL, 0, months, 0);
}

/* Silver from 100 points (x1.5), Gold from 300 (x2). */
static void set_tiers(struct ledger_fixture *f, uint64_t t, const char *txn_id,
                      uint32_t expiry_months)
{
    const char *names[] = {"Silver", "Gold"};
    const int64_t thresholds[] = {100, 300};
    const uint32_t pcts[] = {150, 200};
    set_rules(f, t, txn_id, names, thresholds, pcts, 2, expiry_months, 0);
}

/* Asserts posting i of entry e. */
static void expect_posting(const Coalition__Entry *e, size_t i, const char *debit,
                           const char *credit, int64_t amount, const char *issuer)
{
    assert_true(i < e->n_postings);
    assert_string_equal(e->postings[i]->debit, debit);
    assert_string_equal(e->postings[i]->credit, credit);
    assert_int_equal(e->postings[i]->amount, amount);
    assert_string_equal(e->postings[i]->issuer, issuer);
}

/* The due work ledger_due_each lists, owned here until due_free. */
#define DUE_MAX 64
struct due_list {
    Coalition__Txn *txns[DUE_MAX];
    size_t n;
};

static int due_collect(void *data, Coalition__Txn *txn)
{
    struct due_list *d = data;
    assert_true(d->n < DUE_MAX);
    d->txns[d->n++] = txn;
    return 0;
}

static void due_free(struct due_list *d)
{
    for (size_t i = 0; i < d->n; i++) {
        ledger_txn_free(d->txns[i]);
    }
    d->n = 0;
}

static void due_load(struct ledger_fixture *f, uint64_t now_ms, struct due_list *d)
{
    d->n = 0;
    assert_int_equal(ledger_due_each(f->l, now_ms, DUE_MAX, due_collect, d), 0);
}

/* How many pieces of due work of `kind` at now_ms name `who` (the member,
 * or for HOLD_TIMEOUT the hold's txn id of partner `partner`). */
static size_t due_count(struct ledger_fixture *f, uint64_t now_ms, Coalition__TxnKind kind,
                        const char *partner, const char *who)
{
    struct due_list d;
    due_load(f, now_ms, &d);
    size_t n = 0;
    for (size_t i = 0; i < d.n; i++) {
        const Coalition__Txn *t = d.txns[i];
        if (t->kind != kind) {
            continue;
        }
        if (kind == COALITION__TXN_KIND__TXN_HOLD_TIMEOUT) {
            n += strcmp(t->partner, partner) == 0 && strcmp(t->of_txn, who) == 0;
        } else {
            n += strcmp(t->member, who) == 0;
        }
    }
    due_free(&d);
    return n;
}

static size_t due_total(struct ledger_fixture *f, uint64_t now_ms)
{
    struct due_list d;
    due_load(f, now_ms, &d);
    size_t n = d.n;
    due_free(&d);
    return n;
}

/* ---------------------------------------------------------------------------
 * 1. Purchase awards */

/* Applies a purchase award and asserts its points and rule: in the result,
 * the balance, the issuer's account, the entry (rule, one posting with the
 * issuer) and the award's record. */
static void expect_purchase(struct ledger_fixture *f, uint64_t t_ms, Coalition__Txn t,
                            int64_t points, const char *rule)
{
    int64_t before = fixture_balance(f, t.member);
    int64_t issued = fixture_account(f->s, 'i', t.partner);
    struct ledger_result r = fixture_expect_ok(f, t_ms, t);
    assert_int_equal(r.points, points);
    assert_string_equal(r.rule, rule);
    assert_int_equal(fixture_balance(f, t.member), before + points);
    assert_int_equal(fixture_account(f->s, 'i', t.partner), issued - points);

    Coalition__Entry *e = fixture_entry(f->s, r.seq, NULL);
    assert_string_equal(e->rule, rule);
    assert_int_equal(e->time_ms, t_ms);
    assert_int_equal(e->txn->purchase_cents, t.purchase_cents);
    assert_int_equal(e->n_postings, 1);
    char debit[80], credit[80];
    snprintf(debit, sizeof(debit), "i:%s", t.partner);
    snprintf(credit, sizeof(credit), "m:%s", t.member);
    expect_posting(e, 0, debit, credit, points, t.partner);
    coalition__entry__free_unpacked(e, NULL);

    Coalition__TxnRecord *rec = fixture_txn_record(f->s, t.partner, t.txn_id);
    assert_non_null(rec);
    assert_int_equal(rec->points, points);
    coalition__txn_record__free_unpacked(rec, NULL);
}

static void test_ledger_rules_purchase_awards(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-01-15T10:00:00Z");
    const uint64_t s = at("2024-02-01T00:00:00Z"); /* campaign dbl: [s, e) */
    const uint64_t e = at("2024-03-01T00:00:00Z");
    seed(f, t0);

    /* 2 points per currency unit; fuel x3; dbl doubles everything in
     * February; fuelbonus adds 5 points to fuel for ten days from e;
     * purchases under 5.00 earn nothing. */
    Coalition__CategoryRate fuel = COALITION__CATEGORY_RATE__INIT;
    fuel.category = "fuel";
    fuel.multiplier_pct = 300;
    Coalition__CategoryRate *cats[] = {&fuel};
    Coalition__Campaign dbl = COALITION__CAMPAIGN__INIT;
    dbl.id = "dbl";
    dbl.start_ms = s;
    dbl.end_ms = e;
    dbl.multiplier_pct = 200;
    Coalition__Campaign bonus = COALITION__CAMPAIGN__INIT;
    bonus.id = "fuelbonus";
    bonus.start_ms = e;
    bonus.end_ms = e + 10 * DAY_MS;
    bonus.bonus_points = 5;
    bonus.category = "fuel";
    Coalition__Campaign *camps[] = {&dbl, &bonus};
    Coalition__Program p = COALITION__PROGRAM__INIT;
    p.point_value_mc = 500;
    p.base_rate_milli = 2000;
    p.n_categories = 1;
    p.categories = cats;
    p.n_campaigns = 2;
    p.campaigns = camps;
    p.min_purchase_cents = 500;
    fixture_expect_ok(f, t0, tx_program_set("shop", "prog-1", &p));

    /* Outside every campaign. */
    expect_purchase(f, t0, tx_purchase("shop", "b1", "alice", 1234, 0, NULL), 24, "base");
    expect_purchase(f, t0, tx_purchase("shop", "b2", "alice", 1234, 0, "fuel"), 74,
                    "category:fuel");
    expect_purchase(f, t0, tx_purchase("shop", "b3", "alice", 1234, 234, NULL), 20, "base");
    expect_purchase(f, t0, tx_purchase("shop", "b4", "alice", 1234, 0, "books"), 24, "base");

    /* The campaign's first and last millisecond, and its end. */
    expect_purchase(f, s - 1, tx_purchase("shop", "c0", "alice", 1234, 0, NULL), 24, "base");
    expect_purchase(f, s, tx_purchase("shop", "c1", "alice", 1234, 0, NULL), 49, "campaign:dbl");
    expect_purchase(f, s, tx_purchase("shop", "c2", "alice", 1234, 0, "fuel"), 148,
                    "category:fuel,campaign:dbl");
    expect_purchase(f, e - 1, tx_purchase("shop", "c3", "alice", 1234, 0, NULL), 49,
                    "campaign:dbl");
    expect_purchase(f, e, tx_purchase("shop", "c4", "alice", 1234, 0, NULL), 24, "base");
    /* A bonus campaign for one category only. */
    expect_purchase(f, e, tx_purchase("shop", "c5", "alice", 1234, 0, "fuel"), 79,
                    "category:fuel,campaign:fuelbonus");
    expect_purchase(f, e + 10 * DAY_MS, tx_purchase("shop", "c6", "alice", 1234, 0, "fuel"), 74,
                    "category:fuel");

    const uint64_t t1 = e + 20 * DAY_MS;
    /* The minimum purchase: exactly met earns, a cent short earns nothing
     * and changes nothing; the whole purchase counts towards the minimum,
     * the part paid with points does not earn. */
    expect_purchase(f, t1, tx_purchase("shop", "m1", "alice", 500, 0, NULL), 10, "base");
    fixture_expect_reject(f, t1, tx_purchase("shop", "m2", "alice", 499, 0, NULL),
                          COALITION_E_NO_POINTS_EARNED);
    expect_purchase(f, t1, tx_purchase("shop", "m3", "alice", 500, 100, NULL), 8, "base");
    fixture_expect_reject(f, t1, tx_purchase("shop", "m4", "alice", 600, 600, NULL),
                          COALITION_E_NO_POINTS_EARNED);
    /* A rejected purchase left no record: its id is still free. */
    assert_null(fixture_txn_record(f->s, "shop", "m2"));
    expect_purchase(f, t1, tx_purchase("shop", "m2", "alice", 5000, 0, NULL), 100, "base");

    /* A partner without a program earns one point per currency unit. */
    expect_purchase(f, t1, tx_purchase("fuel", "d1", "bob", 1999, 0, NULL), 19, "base");

    /* A plain award still works, and carries no rule. */
    struct ledger_result r = fixture_expect_ok(f, t1, tx_award("shop", "plain", "bob", 7));
    assert_int_equal(r.points, 7);
    assert_string_equal(r.rule, "");
    Coalition__Entry *en = fixture_entry(f->s, r.seq, NULL);
    assert_string_equal(en->rule, "");
    coalition__entry__free_unpacked(en, NULL);
    assert_int_equal(fixture_balance(f, "bob"), 19 + 7);

    /* Points and a purchase, or purchase fields without a purchase. */
    Coalition__Txn both = tx_purchase("shop", "x1", "bob", 1000, 0, NULL);
    both.points = 5;
    fixture_expect_reject(f, t1, both, COALITION_E_INVALID_ARGUMENT);
    Coalition__Txn cat_only = tx_award("shop", "x2", "bob", 5);
    cat_only.category = "fuel";
    fixture_expect_reject(f, t1, cat_only, COALITION_E_INVALID_ARGUMENT);
    Coalition__Txn paid_only = tx_award("shop", "x3", "bob", 5);
    paid_only.paid_points_cents = 100;
    fixture_expect_reject(f, t1, paid_only, COALITION_E_INVALID_ARGUMENT);

    assert_int_equal(fixture_balance(f, "alice"),
                     24 + 74 + 20 + 24 + 24 + 49 + 148 + 49 + 24 + 79 + 74 + 10 + 8 + 100);
    fixture_verify_ok(f);
}

/* ---------------------------------------------------------------------------
 * 2. Tiers */

static void expect_tier(struct ledger_fixture *f, uint64_t at_ms, const char *member,
                        int64_t earned, const char *tier, const char *next, int64_t to_next)
{
    struct ledger_balance b = fixture_balance_at(f, at_ms, member);
    assert_int_equal(b.earned_12m, earned);
    assert_string_equal(b.tier, tier);
    assert_string_equal(b.next_tier, next);
    assert_int_equal(b.to_next_tier, to_next);
}

/* Asserts entry `seq` records a tier change of `member` to `tier`, or (tier
 * NULL) no tier change. */
static void expect_entry_tier(struct ledger_fixture *f, uint64_t seq, const char *member,
                              const char *tier)
{
    Coalition__Entry *e = fixture_entry(f->s, seq, NULL);
    if (tier == NULL) {
        assert_string_equal(e->tier_member, "");
        assert_string_equal(e->tier, "");
    } else {
        assert_string_equal(e->tier_member, member);
        assert_string_equal(e->tier, tier);
    }
    coalition__entry__free_unpacked(e, NULL);
}

/* The packed bytes of `p`, to compare two programs field by field. */
static size_t program_packed(const Coalition__Program *p, uint8_t *buf, size_t cap)
{
    size_t n = coalition__program__get_packed_size(p);
    assert_true(n <= cap);
    assert_int_equal(coalition__program__pack(p, buf), n);
    return n;
}

static void expect_program(struct ledger_fixture *f, const char *partner,
                           const Coalition__Program *want)
{
    Coalition__Program *got = NULL;
    assert_int_equal(ledger_program(f->l, partner, &got), 0);
    assert_non_null(got);
    uint8_t a[1024], b[1024];
    size_t na = program_packed(want, a, sizeof(a));
    size_t nb = program_packed(got, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    ledger_program_free(got);
}

static void test_ledger_rules_program_read(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-01-15T10:00:00Z");
    seed(f, t0);
    Coalition__Program *p = (Coalition__Program *)1;
    assert_int_equal(ledger_program(f->l, "nobody", &p), COALITION_E_UNKNOWN_PARTNER);
    assert_null(p);
    assert_int_equal(ledger_program(f->l, "", &p), COALITION_E_INVALID_ARGUMENT);
    assert_int_equal(ledger_program(f->l, "bad id", &p), COALITION_E_INVALID_ARGUMENT);

    /* Never set: the defaults, and they earn exactly what the apply gives a
     * partner without a program (the same points, the same lock). */
    Coalition__Program defaults = COALITION__PROGRAM__INIT;
    defaults.point_value_mc = 1000;
    defaults.base_rate_milli = 1000;
    expect_program(f, "shop", &defaults);
    Coalition__Program *eff = NULL;
    assert_int_equal(ledger_program(f->l, "shop", &eff), 0);
    int64_t points = 0;
    char rule[RULES_RULE_LEN];
    assert_int_equal(
        rules_award_points(eff, t0, 4599, 0, "books", "", 100, &points, rule, sizeof(rule)), 0);
    assert_int_equal(rules_unlock_ms(eff, t0), t0);
    ledger_program_free(eff);
    expect_purchase(f, t0, tx_purchase("shop", "d1", "alice", 4599, 0, "books"), points, "base");

    /* Set: the program of the last PROGRAM_SET, after a restart too; another
     * partner's is untouched. */
    Coalition__CategoryRate books = COALITION__CATEGORY_RATE__INIT;
    books.category = "books";
    books.multiplier_pct = 150;
    Coalition__CategoryRate *cats[] = {&books};
    Coalition__Campaign summer = COALITION__CAMPAIGN__INIT;
    summer.id = "summer";
    summer.start_ms = at("2026-07-01T00:00:00Z");
    summer.end_ms = at("2026-09-01T00:00:00Z");
    summer.multiplier_pct = 150;
    summer.category = "books";
    Coalition__Campaign *camps[] = {&summer};
    Coalition__Program set = COALITION__PROGRAM__INIT;
    set.point_value_mc = 500;
    set.base_rate_milli = 2000;
    set.n_categories = 1;
    set.categories = cats;
    set.n_campaigns = 1;
    set.campaigns = camps;
    set.min_purchase_cents = 500;
    set.lock_days = 14;
    fixture_expect_ok(f, t0, tx_program_set("shop", "prog-1", &set));
    expect_program(f, "shop", &set);
    expect_program(f, "fuel", &defaults);
    fixture_reopen(f);
    expect_program(f, "shop", &set);

    /* A second program replaces the first as a whole. */
    Coalition__Program plain = COALITION__PROGRAM__INIT;
    plain.point_value_mc = 2000;
    plain.base_rate_milli = 0;
    fixture_expect_ok(f, t0, tx_program_set("shop", "prog-2", &plain));
    expect_program(f, "shop", &plain);
}

static void test_ledger_rules_tier_thresholds_and_multiplier(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-03-01T09:00:00Z");
    seed(f, t0);
    set_tiers(f, t0, "rules-1", 0);

    /* One point short, then the threshold exactly. */
    struct ledger_result r = fixture_expect_ok(f, t0, tx_award("shop", "a1", "carol", 99));
    expect_entry_tier(f, r.seq, "carol", NULL);
    expect_tier(f, t0, "carol", 99, "", "Silver", 1);
    r = fixture_expect_ok(f, t0 + 1, tx_award("shop", "a2", "carol", 1));
    expect_entry_tier(f, r.seq, "carol", "Silver");
    expect_tier(f, t0 + 1, "carol", 100, "Silver", "Gold", 200);
    Coalition__MemberRecord *m = fixture_member_record(f->s, "carol");
    assert_string_equal(m->tier, "Silver");
    assert_int_equal(m->review_ms, date_add_months(t0, 12)); /* when a1 ages out */
    coalition__member_record__free_unpacked(m, NULL);

    /* Silver multiplies a later purchase: 100.00 at 1 point per unit, x1.5. */
    const uint64_t t1 = t0 + DAY_MS;
    expect_purchase(f, t1, tx_purchase("fuel", "p1", "carol", 10000, 0, NULL), 150,
                    "base,tier:Silver");
    expect_tier(f, t1, "carol", 250, "Silver", "Gold", 50);
    /* A plain award is not multiplied. */
    r = fixture_expect_ok(f, t1, tx_award("shop", "a3", "carol", 49));
    assert_int_equal(r.points, 49);
    expect_entry_tier(f, r.seq, "carol", NULL);
    r = fixture_expect_ok(f, t1, tx_award("shop", "a4", "carol", 1));
    expect_entry_tier(f, r.seq, "carol", "Gold");
    expect_tier(f, t1, "carol", 300, "Gold", "", 0);
    expect_purchase(f, t1 + 1, tx_purchase("fuel", "p2", "carol", 10000, 0, NULL), 200,
                    "base,tier:Gold");
    expect_tier(f, t1 + 1, "carol", 500, "Gold", "", 0);

    /* A member below every tier: no multiplier, no tier in the rule. */
    expect_purchase(f, t1 + 1, tx_purchase("fuel", "p3", "dave", 10000, 0, NULL), 100, "base");
    fixture_verify_ok(f);
}

static void test_ledger_rules_tier_window_and_review(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-01-01T00:00:00Z");
    const uint64_t t1 = at("2024-02-29T12:00:00Z");
    const uint64_t t2 = at("2024-06-01T08:00:00Z");
    /* 12 months after a leap day: the day is clamped to Feb 28. */
    const uint64_t drop = at("2025-02-28T12:00:00Z");
    assert_int_equal(date_add_months(t1, 12), drop);
    seed(f, t0);
    set_tiers(f, t0, "rules-1", 0);

    struct ledger_result r = fixture_expect_ok(f, t1, tx_award("shop", "b1", "bob", 100));
    expect_entry_tier(f, r.seq, "bob", "Silver");
    fixture_expect_ok(f, t2, tx_award("shop", "b2", "bob", 50));
    expect_tier(f, t2, "bob", 150, "Silver", "Gold", 150);

    /* b1 counts up to the last millisecond before its anniversary. */
    expect_tier(f, drop - 1, "bob", 150, "Silver", "Gold", 150);
    expect_tier(f, drop, "bob", 50, "", "Silver", 50);

    /* The review is due exactly then, and only then does it do anything. */
    assert_int_equal(due_count(f, drop - 1, COALITION__TXN_KIND__TXN_TIER_REVIEW, NULL, "bob"), 0);
    assert_int_equal(due_count(f, drop, COALITION__TXN_KIND__TXN_TIER_REVIEW, NULL, "bob"), 1);
    fixture_expect_reject(f, drop - 1, tx_tier_review("bob"), COALITION_E_NOTHING_DUE);
    r = fixture_expect_ok(f, drop, tx_tier_review("bob"));
    expect_entry_tier(f, r.seq, "bob", "");
    Coalition__Entry *e = fixture_entry(f->s, r.seq, NULL);
    assert_int_equal(e->n_postings, 0);
    coalition__entry__free_unpacked(e, NULL);
    Coalition__MemberRecord *m = fixture_member_record(f->s, "bob");
    assert_string_equal(m->tier, "");
    assert_int_equal(m->review_ms, 0);
    coalition__member_record__free_unpacked(m, NULL);
    assert_int_equal(due_count(f, drop, COALITION__TXN_KIND__TXN_TIER_REVIEW, NULL, "bob"), 0);
    fixture_expect_reject(f, drop, tx_tier_review("bob"), COALITION_E_NOTHING_DUE);
    /* Points are not touched by the tier window. */
    assert_int_equal(fixture_balance(f, "bob"), 150);
    fixture_verify_ok(f);
}

static void test_ledger_rules_tier_reversal_lowers_earned(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-04-10T10:00:00Z");
    seed(f, t0);
    set_tiers(f, t0, "rules-1", 0);
    fixture_expect_ok(f, t0, tx_award("shop", "a1", "alice", 60));
    fixture_expect_ok(f, t0, tx_award("fuel", "a2", "alice", 40));
    expect_tier(f, t0, "alice", 100, "Silver", "Gold", 200);

    /* A partial reversal takes the member below the threshold again. */
    struct ledger_result r = fixture_expect_ok(f, t0 + HOUR_MS, tx_reverse("fuel", "r1", "a2", 1));
    assert_int_equal(r.points, 1);
    expect_entry_tier(f, r.seq, "alice", "");
    expect_tier(f, t0 + HOUR_MS, "alice", 99, "", "Silver", 1);
    Coalition__MemberRecord *m = fixture_member_record(f->s, "alice");
    assert_string_equal(m->tier, "");
    assert_int_equal(m->review_ms, 0);
    coalition__member_record__free_unpacked(m, NULL);
    /* ... and the rest of it. */
    fixture_expect_ok(f, t0 + HOUR_MS, tx_reverse("fuel", "r2", "a2", 0));
    expect_tier(f, t0 + HOUR_MS, "alice", 60, "", "Silver", 40);
    assert_int_equal(fixture_balance(f, "alice"), 60);
    fixture_verify_ok(f);
}

/* ---------------------------------------------------------------------------
 * 3. Expiry and pending points */

static void test_ledger_rules_expiry(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-08-01T00:00:00Z");
    const uint64_t t1 = at("2024-08-31T08:00:00Z");
    const uint64_t x = at("2025-02-28T08:00:00Z"); /* t1 + 6 months, clamped */
    const uint64_t t2 = t1 + 30 * DAY_MS;
    seed(f, t0);
    set_expiry(f, t0, "rules-1", 6);

    fixture_expect_ok(f, t1, tx_award("shop", "a1", "alice", 100));
    fixture_expect_ok(f, t2, tx_award("fuel", "a2", "alice", 40));
    struct fixture_lot lots[4];
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 2);
    assert_int_equal(lots[0].expires_ms, x);
    assert_int_equal(lots[0].earned_ms, t1);
    assert_int_equal(lots[1].expires_ms, date_add_months(t2, 6));

    /* Gone at the instant, before any sweep; there a millisecond before. */
    struct ledger_balance b = fixture_balance_at(f, x - 1, "alice");
    assert_int_equal(b.points, 140);
    assert_int_equal(b.locked, 0);
    b = fixture_balance_at(f, x, "alice");
    assert_int_equal(b.points, 40);
    assert_int_equal(b.locked, 0);
    assert_int_equal(fixture_balance(f, "alice"), 140); /* not swept yet */

    /* The sweep has nothing to do a millisecond before. */
    assert_int_equal(due_count(f, x - 1, COALITION__TXN_KIND__TXN_EXPIRE, NULL, "alice"), 0);
    fixture_expect_reject(f, x - 1, tx_expire("alice"), COALITION_E_NOTHING_DUE);

    /* A redemption at the instant cannot use them. */
    fixture_expect_reject(f, x, tx_redeem("air", "r1", "alice", 41),
                          COALITION_E_INSUFFICIENT_POINTS);
    fixture_expect_ok(f, x, tx_redeem("air", "r2", "alice", 10));
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 2);
    assert_int_equal(lots[0].left, 100); /* the expired lot was skipped */
    assert_int_equal(lots[1].left, 30);

    /* The sweep is due exactly then. */
    assert_int_equal(due_count(f, x, COALITION__TXN_KIND__TXN_EXPIRE, NULL, "alice"), 1);
    struct ledger_result r = fixture_expect_ok(f, x, tx_expire("alice"));
    assert_int_equal(r.points, 100);
    assert_int_equal(fixture_account(f->s, 'x', "shop"), 100);
    assert_int_equal(fixture_account(f->s, 'x', "fuel"), 0);
    assert_int_equal(fixture_account(f->s, 'm', "alice"), 30);
    Coalition__Entry *e = fixture_entry(f->s, r.seq, NULL);
    assert_int_equal(e->n_postings, 1);
    expect_posting(e, 0, "m:alice", "x:shop", 100, "shop");
    coalition__entry__free_unpacked(e, NULL);
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 1);
    assert_string_equal(lots[0].issuer, "fuel");
    assert_int_equal(due_count(f, x, COALITION__TXN_KIND__TXN_EXPIRE, NULL, "alice"), 0);
    fixture_expect_reject(f, x, tx_expire("alice"), COALITION_E_NOTHING_DUE);
    b = fixture_balance_at(f, x, "alice");
    assert_int_equal(b.points, 30);

    /* The second lot goes at its own time. */
    const uint64_t x2 = date_add_months(t2, 6);
    assert_int_equal(due_count(f, x2, COALITION__TXN_KIND__TXN_EXPIRE, NULL, "alice"), 1);
    r = fixture_expect_ok(f, x2, tx_expire("alice"));
    assert_int_equal(r.points, 30);
    assert_int_equal(fixture_account(f->s, 'x', "fuel"), 30);
    assert_int_equal(fixture_balance(f, "alice"), 0);
    fixture_verify_ok(f);
}

static void test_ledger_rules_expiring_soonest_first(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t1 = at("2024-08-31T08:00:00Z");
    const uint64_t t2 = at("2024-09-30T08:00:00Z");
    seed(f, t1);
    set_expiry(f, t1, "rules-1", 6);
    fixture_expect_ok(f, t1, tx_award("shop", "a1", "bob", 70)); /* expires 2025-02-28 */
    set_expiry(f, t2, "rules-2", 3);
    fixture_expect_ok(f, t2, tx_award("air", "a2", "bob", 20)); /* expires 2024-12-30 */
    const uint64_t xa = at("2025-02-28T08:00:00Z");
    const uint64_t xb = at("2024-12-30T08:00:00Z");

    Coalition__ExpiringLot *items = NULL;
    size_t n = 0;
    /* Within 200 days: both, the later-earned lot first. */
    assert_int_equal(ledger_expiring(f->l, "bob", t2, t2 + 200 * DAY_MS, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].issuer, "air");
    assert_int_equal(items[0].points, 20);
    assert_int_equal(items[0].expires_ms, xb);
    assert_int_equal(items[0].earned_ms, t2);
    assert_string_equal(items[1].issuer, "shop");
    assert_int_equal(items[1].points, 70);
    assert_int_equal(items[1].expires_ms, xa);
    ledger_expiring_free(items, n);
    /* Within 91 days: up to exactly xb. */
    assert_int_equal(xb, t2 + 91 * DAY_MS);
    assert_int_equal(ledger_expiring(f->l, "bob", t2, t2 + 91 * DAY_MS, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].expires_ms, xb);
    ledger_expiring_free(items, n);
    assert_int_equal(ledger_expiring(f->l, "bob", t2, t2 + 91 * DAY_MS - 1, &items, &n), 0);
    assert_int_equal(n, 0);
    ledger_expiring_free(items, n);
    /* At xb that lot has expired (even unswept) and is not listed. */
    assert_int_equal(ledger_expiring(f->l, "bob", xb, xb + 365 * DAY_MS, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].expires_ms, xa);
    ledger_expiring_free(items, n);
    assert_int_equal(ledger_expiring(f->l, "nobody", t2, xa, &items, &n),
                     COALITION_E_UNKNOWN_MEMBER);
}

static void test_ledger_rules_pending_points(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-05-05T05:05:05Z");
    seed(f, t0);
    Coalition__Program p = COALITION__PROGRAM__INIT;
    p.point_value_mc = 1000;
    p.base_rate_milli = 1000;
    p.lock_days = 14;
    fixture_expect_ok(f, t0, tx_program_set("air", "prog-1", &p));
    const uint64_t u = t0 + 14 * DAY_MS;

    fixture_expect_ok(f, t0, tx_award("air", "a1", "dave", 30));
    expect_purchase(f, t0, tx_purchase("air", "a2", "dave", 1000, 0, NULL), 10, "base");
    fixture_expect_ok(f, t0, tx_award("shop", "a3", "dave", 5)); /* no program: no lock */
    struct fixture_lot lots[4];
    assert_int_equal(fixture_lots(f->s, "dave", lots, 4), 3);
    assert_int_equal(lots[0].unlock_ms, u);
    assert_int_equal(lots[1].unlock_ms, u);
    assert_int_equal(lots[2].unlock_ms, t0);

    struct ledger_balance b = fixture_balance_at(f, u - 1, "dave");
    assert_int_equal(b.points, 5);
    assert_int_equal(b.locked, 40);
    assert_int_equal(fixture_balance(f, "dave"), 45);
    fixture_expect_reject(f, u - 1, tx_redeem("shop", "r1", "dave", 6),
                          COALITION_E_INSUFFICIENT_POINTS);
    fixture_expect_reject(f, u - 1, tx_transfer("shop", "t1", "dave", "carol", 6),
                          COALITION_E_INSUFFICIENT_POINTS);
    fixture_expect_reject(f, u - 1, tx_hold("shop", "h1", "dave", 6, 0),
                          COALITION_E_INSUFFICIENT_POINTS);
    b = fixture_balance_at(f, u, "dave");
    assert_int_equal(b.points, 45);
    assert_int_equal(b.locked, 0);
    fixture_expect_ok(f, u, tx_redeem("shop", "r1", "dave", 45));
    assert_int_equal(fixture_balance(f, "dave"), 0);
    fixture_verify_ok(f);
}

/* ---------------------------------------------------------------------------
 * 4. Holds */

static void expect_member(struct ledger_fixture *f, uint64_t at_ms, const char *member,
                          int64_t points, int64_t held)
{
    struct ledger_balance b = fixture_balance_at(f, at_ms, member);
    assert_int_equal(b.points, points);
    assert_int_equal(b.held, held);
    assert_int_equal(fixture_account(f->s, 'm', member), points);
    assert_int_equal(fixture_account(f->s, 'h', member), held);
}

static bool hold_closed(struct ledger_fixture *f, const char *partner, const char *txn_id)
{
    Coalition__TxnRecord *rec = fixture_txn_record(f->s, partner, txn_id);
    assert_non_null(rec);
    bool closed = rec->closed;
    coalition__txn_record__free_unpacked(rec, NULL);
    return closed;
}

static void test_ledger_rules_hold_capture_release(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-07-01T10:00:00Z");
    seed(f, t0);
    set_expiry(f, t0, "rules-1", 12);
    fixture_expect_ok(f, t0, tx_award("shop", "a1", "alice", 100));
    fixture_expect_ok(f, t0 + 1, tx_award("fuel", "a2", "alice", 50));
    struct fixture_lot orig[2], lots[4];
    assert_int_equal(fixture_lots(f->s, "alice", orig, 2), 2);

    /* A hold reserves: spendable down, held up; lots taken oldest first. */
    const uint64_t t1 = t0 + DAY_MS;
    struct ledger_result r = fixture_expect_ok(f, t1, tx_hold("shop", "h1", "alice", 120, 600));
    assert_int_equal(r.points, 120);
    expect_member(f, t1, "alice", 30, 120);
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 1);
    assert_int_equal(lots[0].left, 30);
    assert_int_equal(lots[0].origin, orig[1].origin);
    Coalition__TxnRecord *rec = fixture_txn_record(f->s, "shop", "h1");
    assert_int_equal(rec->deadline_ms, t1 + 600 * 1000);
    assert_false(rec->closed);
    coalition__txn_record__free_unpacked(rec, NULL);
    Coalition__Entry *e = fixture_entry(f->s, r.seq, NULL);
    assert_int_equal(e->n_postings, 2);
    expect_posting(e, 0, "m:alice", "h:alice", 100, "shop");
    expect_posting(e, 1, "m:alice", "h:alice", 20, "fuel");
    coalition__entry__free_unpacked(e, NULL);

    /* Another partner cannot touch it; more than held cannot be captured. */
    fixture_expect_reject(f, t1, tx_capture("fuel", "c0", "h1", 10), COALITION_E_UNKNOWN_TXN);
    fixture_expect_reject(f, t1, tx_capture("shop", "c0", "h1", 121),
                          COALITION_E_INSUFFICIENT_POINTS);

    /* Capture part: the partner's redemptions take it, the rest goes back to
     * the very lots it came from (same origin, earning time and expiry). */
    int64_t redeemed = fixture_account(f->s, 'r', "shop");
    r = fixture_expect_ok(f, t1 + MIN_MS, tx_capture("shop", "c1", "h1", 50));
    assert_int_equal(r.points, 50);
    assert_int_equal(fixture_account(f->s, 'r', "shop"), redeemed + 50);
    expect_member(f, t1 + MIN_MS, "alice", 100, 0);
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(lots[i].origin, orig[i].origin);
        assert_int_equal(lots[i].arrival, orig[i].arrival);
        assert_int_equal(lots[i].earned_ms, orig[i].earned_ms);
        assert_int_equal(lots[i].expires_ms, orig[i].expires_ms);
        assert_string_equal(lots[i].issuer, orig[i].issuer);
    }
    assert_int_equal(lots[0].left, 50);
    assert_int_equal(lots[1].left, 50);
    assert_true(hold_closed(f, "shop", "h1"));
    e = fixture_entry(f->s, r.seq, NULL);
    expect_posting(e, 0, "h:alice", "r:shop", 50, "shop");
    expect_posting(e, 1, "h:alice", "m:alice", 50, "shop");
    expect_posting(e, 2, "h:alice", "m:alice", 20, "fuel");
    assert_int_equal(e->n_postings, 3);
    coalition__entry__free_unpacked(e, NULL);

    /* A closed hold: capture, release again, the timeout has nothing to do
     * and is no longer listed. */
    fixture_expect_reject(f, t1 + MIN_MS, tx_capture("shop", "c2", "h1", 0),
                          COALITION_E_HOLD_CLOSED);
    fixture_expect_reject(f, t1 + MIN_MS, tx_release("shop", "l1", "h1"), COALITION_E_HOLD_CLOSED);
    const uint64_t deadline1 = t1 + 600 * 1000;
    assert_int_equal(due_count(f, deadline1, COALITION__TXN_KIND__TXN_HOLD_TIMEOUT, "shop", "h1"),
                     0);
    fixture_expect_reject(f, deadline1, tx_hold_timeout("shop", "h1"), COALITION_E_NOTHING_DUE);

    /* The capture reverses like a redemption: points back to their lots. */
    r = fixture_expect_ok(f, deadline1, tx_reverse("shop", "rv1", "c1", 0));
    assert_int_equal(r.points, 50);
    assert_int_equal(fixture_account(f->s, 'r', "shop"), redeemed);
    expect_member(f, deadline1, "alice", 150, 0);
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 2);
    assert_int_equal(lots[0].left, 100);
    assert_int_equal(lots[0].expires_ms, orig[0].expires_ms);
    assert_int_equal(lots[1].left, 50);
    fixture_expect_reject(f, deadline1, tx_reverse("shop", "rv2", "c1", 1),
                          COALITION_E_REVERSAL_EXCEEDS);

    /* Release gives everything back; then the hold is closed. */
    const uint64_t t2 = t1 + DAY_MS;
    fixture_expect_ok(f, t2, tx_hold("fuel", "h2", "alice", 40, 0));
    expect_member(f, t2, "alice", 110, 40);
    r = fixture_expect_ok(f, t2 + 1, tx_release("fuel", "l2", "h2"));
    assert_int_equal(r.points, 40);
    expect_member(f, t2 + 1, "alice", 150, 0);
    assert_int_equal(fixture_account(f->s, 'r', "fuel"), 0);
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 2);
    assert_int_equal(lots[0].left, 100);
    assert_int_equal(lots[1].left, 50);
    fixture_expect_reject(f, t2 + 2, tx_capture("fuel", "c3", "h2", 0), COALITION_E_HOLD_CLOSED);
    fixture_expect_reject(f, t2 + 2, tx_reverse("fuel", "rv3", "l2", 0),
                          COALITION_E_NOT_REVERSIBLE);
    /* A hold itself is not reversible either: it is captured or released. */
    fixture_expect_reject(f, t2 + 2, tx_reverse("fuel", "rv4", "h2", 0),
                          COALITION_E_NOT_REVERSIBLE);
    fixture_verify_ok(f);
}

static void test_ledger_rules_hold_timeout(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-07-01T10:00:00Z");
    seed(f, t0);
    fixture_expect_ok(f, t0, tx_award("shop", "a1", "bob", 100));

    /* An explicit timeout of 60 s. */
    const uint64_t t1 = t0 + HOUR_MS;
    const uint64_t d = t1 + 60 * 1000;
    fixture_expect_ok(f, t1, tx_hold("air", "h1", "bob", 30, 60));
    assert_int_equal(due_count(f, d - 1, COALITION__TXN_KIND__TXN_HOLD_TIMEOUT, "air", "h1"), 0);
    assert_int_equal(due_count(f, d, COALITION__TXN_KIND__TXN_HOLD_TIMEOUT, "air", "h1"), 1);
    fixture_expect_reject(f, d - 1, tx_hold_timeout("air", "h1"), COALITION_E_NOTHING_DUE);
    /* A capture at the deadline is too late, even before the timeout ran. */
    fixture_expect_reject(f, d, tx_capture("air", "c1", "h1", 0), COALITION_E_HOLD_CLOSED);
    struct ledger_result r = fixture_expect_ok(f, d, tx_hold_timeout("air", "h1"));
    assert_int_equal(r.points, 30);
    expect_member(f, d, "bob", 100, 0);
    assert_int_equal(fixture_account(f->s, 'r', "air"), 0);
    assert_true(hold_closed(f, "air", "h1"));
    assert_int_equal(due_count(f, d, COALITION__TXN_KIND__TXN_HOLD_TIMEOUT, "air", "h1"), 0);
    fixture_expect_reject(f, d, tx_hold_timeout("air", "h1"), COALITION_E_NOTHING_DUE);
    fixture_expect_reject(f, d, tx_capture("air", "c1", "h1", 0), COALITION_E_HOLD_CLOSED);
    fixture_expect_reject(f, d, tx_release("air", "l1", "h1"), COALITION_E_HOLD_CLOSED);

    /* A capture a millisecond before the deadline still works. */
    fixture_expect_ok(f, d, tx_hold("air", "h2", "bob", 10, 1));
    fixture_expect_ok(f, d + 999, tx_capture("air", "c2", "h2", 0));
    assert_int_equal(fixture_account(f->s, 'r', "air"), 10);
    expect_member(f, d + 999, "bob", 90, 0);

    /* Timeouts: no rules -> 900 s; the rules' default; at most 7 days. */
    const uint64_t t2 = t1 + DAY_MS;
    fixture_expect_ok(f, t2, tx_hold("air", "h3", "bob", 1, 0));
    Coalition__TxnRecord *rec = fixture_txn_record(f->s, "air", "h3");
    assert_int_equal(rec->deadline_ms, t2 + 900 * 1000);
    coalition__txn_record__free_unpacked(rec, NULL);
    set_rules(f, t2, "rules-1", NULL, NULL, NULL, 0, 0, 300);
    fixture_expect_ok(f, t2, tx_hold("air", "h4", "bob", 1, 0));
    rec = fixture_txn_record(f->s, "air", "h4");
    assert_int_equal(rec->deadline_ms, t2 + 300 * 1000);
    coalition__txn_record__free_unpacked(rec, NULL);
    fixture_expect_ok(f, t2, tx_hold("air", "h5", "bob", 1, 7 * 86400));
    rec = fixture_txn_record(f->s, "air", "h5");
    assert_int_equal(rec->deadline_ms, t2 + UINT64_C(7) * DAY_MS);
    coalition__txn_record__free_unpacked(rec, NULL);
    fixture_expect_reject(f, t2, tx_hold("air", "h6", "bob", 1, 7 * 86400 + 1),
                          COALITION_E_INVALID_ARGUMENT);
    expect_member(f, t2, "bob", 87, 3);

    /* Every timeout due at once is listed, soonest first. */
    struct due_list dl;
    due_load(f, t2 + UINT64_C(7) * DAY_MS, &dl);
    assert_int_equal(dl.n, 3);
    assert_string_equal(dl.txns[0]->of_txn, "h4");
    assert_string_equal(dl.txns[1]->of_txn, "h3");
    assert_string_equal(dl.txns[2]->of_txn, "h5");
    due_free(&dl);
    fixture_verify_ok(f);
}

/* ---------------------------------------------------------------------------
 * 5. Refunds */

static void test_ledger_rules_refund_award_after_partial_spend(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-09-10T10:00:00Z");
    seed(f, t0);
    set_tiers(f, t0, "rules-1", 12);
    fixture_expect_ok(f, t0, tx_award("shop", "a1", "alice", 100));
    fixture_expect_ok(f, t0 + HOUR_MS, tx_redeem("fuel", "r1", "alice", 60));
    const uint64_t t1 = t0 + DAY_MS;

    /* More than is left of the award's lot: refused, nothing changes. */
    fixture_expect_reject(f, t1, tx_reverse("shop", "v1", "a1", 41), COALITION_E_POINTS_SPENT);
    /* 0 means all that is left of the award (100), also more than the lot. */
    fixture_expect_reject(f, t1, tx_reverse("shop", "v1", "a1", 0), COALITION_E_POINTS_SPENT);
    fixture_expect_reject(f, t1, tx_reverse("shop", "v1", "a1", 101), COALITION_E_REVERSAL_EXCEEDS);
    assert_int_equal(fixture_balance(f, "alice"), 40);
    assert_int_equal(fixture_account(f->s, 'i', "shop"), -100);

    /* What is left can be reversed. */
    struct ledger_result r = fixture_expect_ok(f, t1, tx_reverse("shop", "v1", "a1", 40));
    assert_int_equal(r.points, 40);
    assert_int_equal(fixture_balance(f, "alice"), 0);
    assert_int_equal(fixture_account(f->s, 'i', "shop"), -60);
    Coalition__Entry *e = fixture_entry(f->s, r.seq, NULL);
    assert_int_equal(e->n_postings, 1);
    expect_posting(e, 0, "m:alice", "i:shop", 40, "shop");
    coalition__entry__free_unpacked(e, NULL);
    Coalition__TxnRecord *rec = fixture_txn_record(f->s, "shop", "a1");
    assert_int_equal(rec->reversed, 40);
    coalition__txn_record__free_unpacked(rec, NULL);
    struct fixture_lot lots[2];
    assert_int_equal(fixture_lots(f->s, "alice", lots, 2), 0);
    expect_tier(f, t1, "alice", 60, "", "Silver", 40);
    fixture_expect_reject(f, t1, tx_reverse("shop", "v2", "a1", 1), COALITION_E_POINTS_SPENT);
    fixture_verify_ok(f);
}

static void test_ledger_rules_refund_redemption_keeps_expiry(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-01-31T10:00:00Z");
    const uint64_t t1 = at("2024-03-15T10:00:00Z");
    const uint64_t t2 = at("2024-05-01T10:00:00Z");
    seed(f, t0);
    set_expiry(f, t0, "rules-1", 12);
    fixture_expect_ok(f, t0, tx_award("shop", "b1", "bob", 100));
    fixture_expect_ok(f, t1, tx_award("air", "b2", "bob", 50));
    const uint64_t e1 = at("2025-01-31T10:00:00Z");
    const uint64_t e2 = at("2025-03-15T10:00:00Z");
    fixture_expect_ok(f, t2, tx_redeem("fuel", "rd", "bob", 120));
    struct fixture_lot lots[4];
    assert_int_equal(fixture_lots(f->s, "bob", lots, 4), 1);
    assert_int_equal(lots[0].left, 30);

    /* Part of it: the last lot taken is refilled first. */
    const uint64_t t3 = t2 + 10 * DAY_MS;
    struct ledger_result r = fixture_expect_ok(f, t3, tx_reverse("fuel", "v1", "rd", 70));
    assert_int_equal(r.points, 70);
    assert_int_equal(fixture_balance(f, "bob"), 100);
    assert_int_equal(fixture_account(f->s, 'r', "fuel"), 50);
    Coalition__Entry *e = fixture_entry(f->s, r.seq, NULL);
    assert_int_equal(e->n_postings, 2);
    expect_posting(e, 0, "r:fuel", "m:bob", 50, "shop");
    expect_posting(e, 1, "r:fuel", "m:bob", 20, "air");
    coalition__entry__free_unpacked(e, NULL);

    Coalition__ExpiringLot *items = NULL;
    size_t n = 0;
    assert_int_equal(ledger_expiring(f->l, "bob", t3, e2, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].issuer, "shop");
    assert_int_equal(items[0].points, 50);
    assert_int_equal(items[0].earned_ms, t0);
    assert_int_equal(items[0].expires_ms, e1);
    assert_string_equal(items[1].issuer, "air");
    assert_int_equal(items[1].points, 50);
    assert_int_equal(items[1].earned_ms, t1);
    assert_int_equal(items[1].expires_ms, e2);
    ledger_expiring_free(items, n);

    /* The rest, and the restored points expire at their original time. */
    r = fixture_expect_ok(f, t3, tx_reverse("fuel", "v2", "rd", 0));
    assert_int_equal(r.points, 50);
    assert_int_equal(fixture_balance(f, "bob"), 150);
    assert_int_equal(fixture_account(f->s, 'r', "fuel"), 0);
    assert_int_equal(fixture_lots(f->s, "bob", lots, 4), 2);
    assert_int_equal(lots[0].left, 100);
    assert_int_equal(lots[0].expires_ms, e1);
    assert_int_equal(lots[1].left, 50);
    assert_int_equal(lots[1].expires_ms, e2);
    assert_int_equal(fixture_balance_at(f, e1 - 1, "bob").points, 150);
    assert_int_equal(fixture_balance_at(f, e1, "bob").points, 50);
    assert_int_equal(due_count(f, e1, COALITION__TXN_KIND__TXN_EXPIRE, NULL, "bob"), 1);
    r = fixture_expect_ok(f, e1, tx_expire("bob"));
    assert_int_equal(r.points, 100);
    assert_int_equal(fixture_account(f->s, 'x', "shop"), 100);
    fixture_verify_ok(f);
}

/* ---------------------------------------------------------------------------
 * 6. Identity */

static void expect_card(struct ledger_fixture *f, const char *card, const char *member)
{
    char who[LEDGER_ID_MAX + 1] = "";
    int rv = ledger_lookup_card(f->l, card, who);
    if (member == NULL) {
        assert_int_equal(rv, COALITION_E_UNKNOWN_MEMBER);
    } else {
        assert_int_equal(rv, 0);
        assert_string_equal(who, member);
    }
}

static void expect_key(struct ledger_fixture *f, const uint8_t *key, const char *member)
{
    char who[LEDGER_ID_MAX + 1] = "";
    int rv = ledger_lookup_key(f->l, key, who);
    if (member == NULL) {
        assert_int_equal(rv, COALITION_E_UNKNOWN_MEMBER);
    } else {
        assert_int_equal(rv, 0);
        assert_string_equal(who, member);
    }
}

/* Four distinct 32-byte lookup keys. */
static uint8_t test_keys[4][LEDGER_HASH_LEN];

static ProtobufCBinaryData key_data(int i)
{
    memset(test_keys[i], 0xa0 + i, LEDGER_HASH_LEN);
    test_keys[i][0] = (uint8_t)i;
    ProtobufCBinaryData b = {LEDGER_HASH_LEN, test_keys[i]};
    return b;
}

static void test_ledger_rules_cards_and_keys(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-10-01T10:00:00Z");
    seed(f, t0);
    fixture_expect_ok(f, t0, tx_award("shop", "a1", "alice", 25));
    expect_card(f, "card-alice", "alice");

    fixture_expect_ok(f, t0, tx_card_add("ca1", "alice", "card-2"));
    expect_card(f, "card-2", "alice");
    expect_card(f, "card-alice", "alice");
    fixture_expect_reject(f, t0, tx_card_add("ca2", "alice", "card-bob"),
                          COALITION_E_ALREADY_EXISTS);
    fixture_expect_reject(f, t0, tx_card_add("ca3", "nobody", "card-9"),
                          COALITION_E_UNKNOWN_MEMBER);

    /* A replaced card stops at once; the new one leads to the same member
     * and balance. */
    fixture_expect_ok(f, t0, tx_card_replace("cr1", "alice", "card-alice", "card-3"));
    expect_card(f, "card-alice", NULL);
    expect_card(f, "card-3", "alice");
    expect_card(f, "card-2", "alice");
    assert_int_equal(fixture_balance(f, "alice"), 25);
    Coalition__MemberRecord *m = fixture_member_record(f->s, "alice");
    assert_int_equal(m->n_cards, 2);
    assert_string_equal(m->cards[0], "card-2");
    assert_string_equal(m->cards[1], "card-3");
    coalition__member_record__free_unpacked(m, NULL);
    fixture_expect_reject(f, t0, tx_card_replace("cr2", "alice", "card-bob", "card-4"),
                          COALITION_E_UNKNOWN_CARD);
    fixture_expect_reject(f, t0, tx_card_replace("cr3", "alice", "card-alice", "card-4"),
                          COALITION_E_UNKNOWN_CARD);
    fixture_expect_reject(f, t0, tx_card_replace("cr4", "alice", "card-2", "card-bob"),
                          COALITION_E_ALREADY_EXISTS);

    /* Lookup keys. */
    ProtobufCBinaryData k[4] = {key_data(0), key_data(1), key_data(2), key_data(3)};
    fixture_expect_ok(f, t0, tx_identify("id1", "alice", k, 2));
    expect_key(f, test_keys[0], "alice");
    expect_key(f, test_keys[1], "alice");
    expect_key(f, test_keys[2], NULL);
    fixture_expect_reject(f, t0, tx_identify("id2", "bob", &k[1], 1), COALITION_E_ALREADY_EXISTS);
    fixture_expect_ok(f, t0, tx_identify("id3", "bob", &k[2], 1));
    expect_key(f, test_keys[2], "bob");
    ProtobufCBinaryData short_key = {LEDGER_HASH_LEN - 1, test_keys[3]};
    fixture_expect_reject(f, t0, tx_identify("id4", "bob", &short_key, 1),
                          COALITION_E_INVALID_ARGUMENT);
    /* The member's keys become the new set: the dropped one stops. */
    ProtobufCBinaryData again[2] = {k[1], k[3]};
    fixture_expect_ok(f, t0, tx_identify("id5", "alice", again, 2));
    expect_key(f, test_keys[0], NULL);
    expect_key(f, test_keys[1], "alice");
    expect_key(f, test_keys[3], "alice");
    assert_int_equal(fixture_balance(f, "alice"), 25);
    fixture_verify_ok(f);
}

static void test_ledger_rules_merge(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-02-10T10:00:00Z");
    const uint64_t t1 = at("2024-04-10T10:00:00Z");
    seed(f, t0);
    set_tiers(f, t0, "rules-1", 12);
    ProtobufCBinaryData k[2] = {key_data(0), key_data(1)};
    fixture_expect_ok(f, t0, tx_identify("id1", "bob", &k[0], 1));
    fixture_expect_ok(f, t0, tx_identify("id2", "alice", &k[1], 1));
    fixture_expect_ok(f, t0, tx_award("shop", "b1", "bob", 80));
    fixture_expect_ok(f, t1, tx_award("fuel", "a1", "alice", 30));
    struct fixture_lot bob_lots[2], lots[4];
    assert_int_equal(fixture_lots(f->s, "bob", bob_lots, 2), 1);
    expect_tier(f, t1, "alice", 30, "", "Silver", 70);

    /* Not while bob has an open hold. */
    const uint64_t t2 = t1 + DAY_MS;
    fixture_expect_ok(f, t2, tx_hold("air", "h1", "bob", 10, 0));
    fixture_expect_reject(f, t2, tx_merge("mg1", "bob", "alice"), COALITION_E_OPEN_HOLDS);
    fixture_expect_ok(f, t2, tx_release("air", "l1", "h1"));
    fixture_expect_reject(f, t2, tx_merge("mg1", "bob", "bob"), COALITION_E_INVALID_ARGUMENT);
    fixture_expect_reject(f, t2, tx_merge("mg1", "bob", "nobody"), COALITION_E_UNKNOWN_MEMBER);

    struct ledger_result r = fixture_expect_ok(f, t2, tx_merge("mg1", "bob", "alice"));
    /* Points, with their lots as they were. */
    assert_int_equal(fixture_balance(f, "bob"), 0);
    assert_int_equal(fixture_balance(f, "alice"), 110);
    assert_int_equal(fixture_lots(f->s, "bob", lots, 4), 0);
    assert_int_equal(fixture_lots(f->s, "alice", lots, 4), 2);
    assert_string_equal(lots[0].issuer, "shop");
    assert_int_equal(lots[0].left, 80);
    assert_int_equal(lots[0].earned_ms, bob_lots[0].earned_ms);
    assert_int_equal(lots[0].expires_ms, bob_lots[0].expires_ms);
    assert_int_equal(lots[0].origin, bob_lots[0].origin);
    assert_string_equal(lots[1].issuer, "fuel");
    assert_int_equal(lots[1].left, 30);
    Coalition__Entry *e = fixture_entry(f->s, r.seq, NULL);
    assert_int_equal(e->n_postings, 1);
    expect_posting(e, 0, "m:bob", "m:alice", 80, "shop");
    /* Earned points: alice reaches Silver with bob's 80. */
    assert_string_equal(e->tier_member, "alice");
    assert_string_equal(e->tier, "Silver");
    coalition__entry__free_unpacked(e, NULL);
    expect_tier(f, t2, "alice", 110, "Silver", "Gold", 190);
    expect_tier(f, t2, "bob", 0, "", "Silver", 100);
    /* ... and bob's earnings still age out at their own time. */
    const uint64_t drop = date_add_months(t0, 12);
    expect_tier(f, drop - 1, "alice", 110, "Silver", "Gold", 190);
    expect_tier(f, drop, "alice", 30, "", "Silver", 70);
    assert_int_equal(due_count(f, drop, COALITION__TXN_KIND__TXN_TIER_REVIEW, NULL, "alice"), 1);
    /* Cards and keys. */
    expect_card(f, "card-bob", "alice");
    expect_card(f, "card-alice", "alice");
    expect_key(f, test_keys[0], "alice");
    expect_key(f, test_keys[1], "alice");
    Coalition__MemberRecord *m = fixture_member_record(f->s, "bob");
    assert_string_equal(m->merged_into, "alice");
    assert_int_equal(m->n_cards, 0);
    assert_int_equal(m->n_lookup_keys, 0);
    coalition__member_record__free_unpacked(m, NULL);
    m = fixture_member_record(f->s, "alice");
    assert_int_equal(m->n_cards, 2);
    assert_int_equal(m->n_lookup_keys, 2);
    coalition__member_record__free_unpacked(m, NULL);

    /* The absorbed record is closed. */
    fixture_expect_reject(f, t2, tx_award("shop", "b2", "bob", 1), COALITION_E_MEMBER_CLOSED);
    fixture_expect_reject(f, t2, tx_redeem("shop", "b3", "bob", 1), COALITION_E_MEMBER_CLOSED);
    fixture_expect_reject(f, t2, tx_transfer("shop", "b4", "alice", "bob", 1),
                          COALITION_E_MEMBER_CLOSED);
    fixture_expect_reject(f, t2, tx_merge("mg2", "bob", "carol"), COALITION_E_MEMBER_CLOSED);
    fixture_expect_reject(f, t2, tx_merge("mg3", "carol", "bob"), COALITION_E_MEMBER_CLOSED);
    fixture_expect_reject(f, t2, tx_card_add("ca1", "bob", "card-9"), COALITION_E_MEMBER_CLOSED);
    /* Its history stays. */
    Coalition__HistoryItem *items = NULL;
    size_t n = 0;
    assert_int_equal(ledger_history(f->l, "bob", 0, &items, &n), 0);
    assert_true(n >= 4);
    assert_int_equal(items[0].kind, COALITION__TXN_KIND__TXN_MERGE);
    assert_int_equal(items[0].delta, -80);
    ledger_history_free(items, n);
    fixture_verify_ok(f);
}

static void test_ledger_rules_erase(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-02-10T10:00:00Z");
    seed(f, t0);
    ProtobufCBinaryData k[1] = {key_data(2)};
    fixture_expect_ok(f, t0, tx_card_add("ca1", "alice", "card-2"));
    fixture_expect_ok(f, t0, tx_identify("id1", "alice", k, 1));
    fixture_expect_ok(f, t0, tx_award("shop", "a1", "alice", 42));

    struct ledger_result r = fixture_expect_ok(f, t0 + 1, tx_erase("er1", "alice"));
    expect_card(f, "card-alice", NULL);
    expect_card(f, "card-2", NULL);
    expect_key(f, test_keys[2], NULL);
    assert_int_equal(fixture_balance(f, "alice"), 42);
    assert_int_equal(fixture_balance_at(f, t0 + 1, "alice").points, 42);
    Coalition__MemberRecord *m = fixture_member_record(f->s, "alice");
    assert_true(m->erased);
    assert_int_equal(m->n_cards, 0);
    assert_int_equal(m->n_lookup_keys, 0);
    coalition__member_record__free_unpacked(m, NULL);
    Coalition__HistoryItem *items = NULL;
    size_t n = 0;
    assert_int_equal(ledger_history(f->l, "alice", 0, &items, &n), 0);
    assert_int_equal(n, 5); /* enrolment, card, identify, award, erase */
    assert_int_equal(items[0].seq, r.seq);
    assert_int_equal(items[0].kind, COALITION__TXN_KIND__TXN_ERASE);
    assert_int_equal(items[1].kind, COALITION__TXN_KIND__TXN_AWARD);
    assert_int_equal(items[1].delta, 42);
    ledger_history_free(items, n);

    fixture_expect_reject(f, t0 + 2, tx_award("shop", "a2", "alice", 1), COALITION_E_MEMBER_CLOSED);
    fixture_expect_reject(f, t0 + 2, tx_erase("er2", "alice"), COALITION_E_MEMBER_CLOSED);
    fixture_expect_reject(f, t0 + 2, tx_identify("id2", "alice", k, 1), COALITION_E_MEMBER_CLOSED);
    /* The erased card and key are free for someone else. */
    fixture_expect_ok(f, t0 + 2, tx_card_add("ca2", "bob", "card-2"));
    expect_card(f, "card-2", "bob");
    fixture_expect_ok(f, t0 + 2, tx_identify("id3", "bob", k, 1));
    expect_key(f, test_keys[2], "bob");
    fixture_verify_ok(f);
}

/* ---------------------------------------------------------------------------
 * Refunds against merged members and expired lots */

/* B got A's lots: a refund of an award made to A claws back from that lot,
 * now B's.  Nothing was spent, so POINTS_SPENT would be wrong. */
static void test_ledger_rules_merge_then_reverse_award(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-03-01T10:00:00Z");
    seed(f, t0);
    set_expiry(f, t0, "rules-1", 12);
    fixture_expect_ok(f, t0, tx_award("shop", "b1", "bob", 80));
    fixture_expect_ok(f, t0 + 1, tx_merge("mg1", "bob", "alice"));
    assert_int_equal(fixture_balance(f, "alice"), 80);

    struct ledger_result r = fixture_apply(f, t0 + 2, tx_reverse("shop", "v1", "b1", 30));
    if (r.code != 0) {
        fail_msg("reversal of an award to a merged member: expected OK, got %s",
                 coalition_errname(r.code));
    }
    assert_int_equal(r.points, 30);
    assert_int_equal(fixture_balance(f, "alice"), 50);
    assert_int_equal(fixture_balance(f, "bob"), 0);
    assert_int_equal(fixture_account(f->s, 'i', "shop"), -50);
    struct fixture_lot lots[2];
    assert_int_equal(fixture_lots(f->s, "alice", lots, 2), 1);
    assert_int_equal(lots[0].left, 50);
    fixture_verify_ok(f);
}

/* A refund of a redemption made by A, after A was merged into B: the points
 * go back to B, who holds A's lots now, not to A's closed record where they
 * could never be spent (and would end as breakage). */
static void test_ledger_rules_merge_then_reverse_redemption(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-03-01T10:00:00Z");
    seed(f, t0);
    set_expiry(f, t0, "rules-1", 12);
    fixture_expect_ok(f, t0, tx_award("shop", "b1", "bob", 80));
    fixture_expect_ok(f, t0, tx_redeem("fuel", "r1", "bob", 30));
    fixture_expect_ok(f, t0 + 1, tx_merge("mg1", "bob", "alice"));
    assert_int_equal(fixture_balance(f, "alice"), 50);

    struct ledger_result r = fixture_apply(f, t0 + 2, tx_reverse("fuel", "v1", "r1", 0));
    assert_int_equal(r.code, 0);
    assert_int_equal(r.points, 30);
    int64_t bob = fixture_balance(f, "bob"), alice = fixture_balance(f, "alice");
    struct fixture_lot lots[2];
    size_t bob_lots = fixture_lots(f->s, "bob", lots, 2);
    if (bob != 0 || alice != 80 || bob_lots != 0) {
        fail_msg("refund after merge: expected alice 80, bob 0 with no lots; got alice %lld, "
                 "bob (closed) %lld with %zu lot(s)",
                 (long long)alice, (long long)bob, bob_lots);
    }
    fixture_verify_ok(f);
}

/* The award's lot expired at x and the sweep has not run yet: the points
 * are lost to expiry (balance_at no longer counts them), so the reversal is
 * refused as it is after the sweep (docs/rules.md, refunds). */
static void test_ledger_rules_reverse_award_expired_before_sweep(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t1 = at("2024-08-31T08:00:00Z");
    const uint64_t x = at("2025-02-28T08:00:00Z");
    seed(f, t1);
    set_expiry(f, t1, "rules-1", 6);
    fixture_expect_ok(f, t1, tx_award("shop", "a1", "alice", 100));
    assert_int_equal(fixture_balance_at(f, x, "alice").points, 0);
    /* Before the instant it is a plain refund. */
    fixture_expect_ok(f, x - 1, tx_reverse("shop", "v0", "a1", 10));

    struct ledger_result r = fixture_apply(f, x, tx_reverse("shop", "v1", "a1", 90));
    if (r.code != COALITION_E_POINTS_SPENT) {
        fail_msg("reversal of an expired, unswept award at its expiry: expected POINTS_SPENT "
                 "(as after the sweep), got %s; i:shop %lld, x:shop %lld",
                 coalition_errname(r.code), (long long)fixture_account(f->s, 'i', "shop"),
                 (long long)fixture_account(f->s, 'x', "shop"));
    }
    fixture_expect_ok(f, x, tx_expire("alice"));
    assert_int_equal(fixture_account(f->s, 'x', "shop"), 90);
    fixture_expect_reject(f, x, tx_reverse("shop", "v1", "a1", 90), COALITION_E_POINTS_SPENT);
    fixture_verify_ok(f);
}

/* A till that timed out retries the same purchase award: the duplicate
 * reports what the original did, its rule included (ledger_result.rule). */
static void test_ledger_rules_purchase_retry_reports_rule(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-03-01T10:00:00Z");
    seed(f, t0);
    set_tiers(f, t0, "rules-1", 0);
    fixture_expect_ok(f, t0, tx_award("shop", "a0", "alice", 100));
    struct ledger_result first =
        fixture_expect_ok(f, t0, tx_purchase("fuel", "p1", "alice", 10000, 0, NULL));
    assert_int_equal(first.points, 150);
    assert_string_equal(first.rule, "base,tier:Silver");

    uint64_t fp = fixture_fingerprint(f->s);
    struct ledger_result again =
        fixture_apply(f, t0 + MIN_MS, tx_purchase("fuel", "p1", "alice", 10000, 0, NULL));
    assert_int_equal(again.code, 0);
    assert_true(again.duplicate);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(again.time_ms, t0);
    assert_int_equal(again.points, 150);
    assert_int_equal(fixture_fingerprint(f->s), fp);
    if (strcmp(again.rule, first.rule) != 0) {
        fail_msg("retried purchase award: rule '%s', the original's was '%s'", again.rule,
                 first.rule);
    }
}

/* ---------------------------------------------------------------------------
 * Scheduled kinds with nothing due change nothing */

static void test_ledger_rules_scheduled_nothing_due(void **state)
{
    struct ledger_fixture *f = *state;
    const uint64_t t0 = at("2024-06-01T00:00:00Z");
    seed(f, t0);
    set_tiers(f, t0, "rules-1", 12);
    const uint64_t t1 = t0 + DAY_MS;
    const uint64_t later = date_add_months(t1, 12) - 1; /* before expiry and review */

    /* EXPIRE: no lots, an unknown member, unexpired lots. */
    fixture_expect_reject(f, t1, tx_expire("carol"), COALITION_E_NOTHING_DUE);
    fixture_expect_reject(f, t1, tx_expire("nobody"), COALITION_E_NOTHING_DUE);
    fixture_expect_ok(f, t1, tx_award("shop", "a1", "carol", 150));
    fixture_expect_reject(f, t1, tx_expire("carol"), COALITION_E_NOTHING_DUE);

    /* TIER_REVIEW: below every tier (no review), before the review. */
    fixture_expect_reject(f, t1, tx_tier_review("dave"), COALITION_E_NOTHING_DUE);
    fixture_expect_reject(f, t1, tx_tier_review("carol"), COALITION_E_NOTHING_DUE);

    /* HOLD_TIMEOUT: open before its deadline, then released. */
    fixture_expect_ok(f, t1, tx_hold("shop", "h1", "carol", 10, 100));
    fixture_expect_reject(f, t1, tx_hold_timeout("shop", "h1"), COALITION_E_NOTHING_DUE);
    fixture_expect_reject(f, t1 + 100 * 1000 - 1, tx_hold_timeout("shop", "h1"),
                          COALITION_E_NOTHING_DUE);
    fixture_expect_ok(f, t1 + 100 * 1000 - 1, tx_release("shop", "l1", "h1"));
    fixture_expect_reject(f, t1 + 100 * 1000, tx_hold_timeout("shop", "h1"),
                          COALITION_E_NOTHING_DUE);

    /* All in one batch, among accepted work: each rejected alone. */
    Coalition__Txn batch[] = {
        tx_expire("carol"),
        tx_award("shop", "a2", "dave", 5),
        tx_tier_review("carol"),
        tx_hold_timeout("shop", "h1"),
    };
    struct ledger_result res[4];
    uint64_t seq = fixture_head(f).seq;
    fixture_apply_batch(f, t1 + 200 * 1000, batch, 4, res);
    assert_int_equal(res[0].code, COALITION_E_NOTHING_DUE);
    assert_int_equal(res[1].code, 0);
    assert_int_equal(res[1].seq, seq + 1);
    assert_int_equal(res[2].code, COALITION_E_NOTHING_DUE);
    assert_int_equal(res[3].code, COALITION_E_NOTHING_DUE);
    assert_int_equal(fixture_head(f).seq, seq + 1);
    assert_int_equal(due_total(f, t1 + 200 * 1000), 0);

    /* A millisecond before the points expire and the tier is reviewed. */
    assert_int_equal(due_total(f, later), 0);
    fixture_expect_reject(f, later, tx_expire("carol"), COALITION_E_NOTHING_DUE);
    fixture_expect_reject(f, later, tx_tier_review("carol"), COALITION_E_NOTHING_DUE);
    assert_int_equal(fixture_balance(f, "carol"), 150);
    assert_int_equal(due_total(f, later + 1), 2); /* the expiry and the review */
    fixture_verify_ok(f);
}

/* ---------------------------------------------------------------------------
 * 7. A seeded random run over three years */

#define PROP_OPS      3000
#define PROP_PARTNERS 3
#define PROP_MEMBERS  6
#define PROP_REFS_MAX (PROP_OPS + 16)
#define PROP_KINDS    20

static const char *const prop_partner[PROP_PARTNERS] = {"p0", "p1", "p2"};
static const char *const prop_member[PROP_MEMBERS] = {"m0", "m1", "m2", "m3", "m4", "m5"};

/* An accepted transaction a later one may refer to. */
struct prop_ref {
    uint8_t partner;
    char id[16];
};

struct prop {
    struct ledger_fixture *f;
    uint64_t rng;
    uint64_t start_ms, now_ms;
    unsigned next_id;
    struct prop_ref awards[PROP_REFS_MAX]; /* AWARD */
    struct prop_ref spends[PROP_REFS_MAX]; /* REDEEM and CAPTURE */
    struct prop_ref holds[PROP_REFS_MAX];  /* HOLD */
    size_t n_awards, n_spends, n_holds;
    unsigned ok[PROP_KINDS];       /* accepted, by kind */
    unsigned rejected[PROP_KINDS]; /* rejected as the rules say, by kind */
};

static uint64_t prop_rand(struct prop *p)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return p->rng;
}

static uint64_t prop_below(struct prop *p, uint64_t n)
{
    assert_true(n > 0);
    return prop_rand(p) % n;
}

static int prop_partner_index(const char *id)
{
    for (int i = 0; i < PROP_PARTNERS; i++) {
        if (strcmp(id, prop_partner[i]) == 0) {
            return i;
        }
    }
    fail_msg("unknown partner %s", id);
    return -1;
}

/* Members active in the run's first year: all; second: four; then two, so
 * that the others' tiers drop and their points expire. */
static const char *prop_pick_member(struct prop *p)
{
    uint64_t year = (p->now_ms - p->start_ms) / (365 * DAY_MS);
    size_t active = year == 0 ? PROP_MEMBERS : year == 1 ? 4 : 2;
    return prop_member[prop_below(p, active)];
}

static void prop_ref_add(struct prop_ref *refs, size_t *n, int partner, const char *id)
{
    assert_true(*n < PROP_REFS_MAX);
    refs[*n].partner = (uint8_t)partner;
    snprintf(refs[*n].id, sizeof(refs[*n].id), "%s", id);
    (*n)++;
}

static void prop_count(struct prop *p, Coalition__TxnKind kind, int code)
{
    assert_true(kind < PROP_KINDS);
    if (code == 0) {
        p->ok[kind]++;
    } else {
        p->rejected[kind]++;
    }
}

/* Applies everything ledger_due_each lists at now, as the leader does, until
 * nothing is due.  Each piece of due work must be accepted, except an EXPIRE
 * that an earlier one of the same batch already did (NOTHING_DUE). */
static void prop_run_due(struct prop *p)
{
    for (int round = 0;; round++) {
        assert_true(round < 16);
        struct due_list d;
        due_load(p->f, p->now_ms, &d);
        if (d.n == 0) {
            return;
        }
        Coalition__Txn batch[DUE_MAX];
        struct ledger_result res[DUE_MAX];
        for (size_t i = 0; i < d.n; i++) {
            batch[i] = *d.txns[i];
        }
        fixture_apply_batch(p->f, p->now_ms, batch, d.n, res);
        for (size_t i = 0; i < d.n; i++) {
            bool again = res[i].code == COALITION_E_NOTHING_DUE &&
                         batch[i].kind == COALITION__TXN_KIND__TXN_EXPIRE;
            if (res[i].code != 0 && !again) {
                fail_msg("due kind %d (%s%s) at %llu: %s", (int)batch[i].kind, batch[i].member,
                         batch[i].of_txn, (unsigned long long)p->now_ms,
                         coalition_errname(res[i].code));
            }
            if (!again) {
                prop_count(p, batch[i].kind, res[i].code);
            }
        }
        due_free(&d);
    }
}

/* Asserts `code` is 0 or one of the n codes that follow. */
static void prop_expect(struct prop *p, const Coalition__Txn *t, int code, int n, ...)
{
    prop_count(p, t->kind, code);
    if (code == 0) {
        return;
    }
    va_list ap;
    va_start(ap, n);
    bool allowed = false;
    for (int i = 0; i < n; i++) {
        allowed = allowed || va_arg(ap, int) == code;
    }
    va_end(ap);
    if (!allowed) {
        fail_msg("kind %d '%s' at %llu: unexpected %s", (int)t->kind, t->txn_id,
                 (unsigned long long)p->now_ms, coalition_errname(code));
    }
}

/* An amount to spend from `member`: mostly what it has, sometimes more. */
static int64_t prop_amount(struct prop *p, const char *member)
{
    struct ledger_balance b = fixture_balance_at(p->f, p->now_ms, member);
    return 1 + (int64_t)prop_below(p, (uint64_t)(b.points + b.points / 4 + 10));
}

/* The programs: p0 plain; p1 2 points per unit, fuel x3, double points in
 * the run's second year, a minimum purchase; p2 half a point per unit, 10
 * bonus points per purchase, points locked for 3 days.  `value_mc` varies
 * the point value of p0. */
static void prop_set_program(struct prop *p, int partner, uint64_t value_mc)
{
    Coalition__CategoryRate fuel = COALITION__CATEGORY_RATE__INIT;
    fuel.category = "fuel";
    fuel.multiplier_pct = 300;
    Coalition__CategoryRate *cats[] = {&fuel};
    Coalition__Campaign c = COALITION__CAMPAIGN__INIT;
    Coalition__Campaign *camps[] = {&c};
    Coalition__Program prog = COALITION__PROGRAM__INIT;
    prog.point_value_mc = value_mc;
    switch (partner) {
    case 0:
        prog.base_rate_milli = 1000;
        break;
    case 1:
        prog.base_rate_milli = 2000;
        prog.n_categories = 1;
        prog.categories = cats;
        c.id = "dbl";
        c.start_ms = p->start_ms + 365 * DAY_MS;
        c.end_ms = p->start_ms + 540 * DAY_MS;
        c.multiplier_pct = 200;
        prog.n_campaigns = 1;
        prog.campaigns = camps;
        prog.min_purchase_cents = 100;
        break;
    default:
        prog.base_rate_milli = 500;
        c.id = "bonus";
        c.start_ms = p->start_ms;
        c.end_ms = p->start_ms + 4 * 365 * DAY_MS;
        c.bonus_points = 10;
        prog.n_campaigns = 1;
        prog.campaigns = camps;
        prog.lock_days = 3;
        break;
    }
    char id[16];
    snprintf(id, sizeof(id), "prog%u", p->next_id++);
    fixture_expect_ok(p->f, p->now_ms, tx_program_set(prop_partner[partner], id, &prog));
}

/* Silver from 2000 points (x1.25), Gold from 8000 (x1.5). */
static void prop_set_rules(struct prop *p, uint32_t expiry_months)
{
    const char *names[] = {"Silver", "Gold"};
    const int64_t thresholds[] = {2000, 8000};
    const uint32_t pcts[] = {125, 150};
    char id[16];
    snprintf(id, sizeof(id), "rules%u", p->next_id++);
    set_rules(p->f, p->now_ms, id, names, thresholds, pcts, 2, expiry_months, 600);
}

/* One random client operation at now. */
static void prop_step(struct prop *p)
{
    char id[16];
    snprintf(id, sizeof(id), "x%u", p->next_id++);
    int pi = (int)prop_below(p, PROP_PARTNERS);
    const char *partner = prop_partner[pi];
    const char *member = prop_pick_member(p);
    uint64_t roll = prop_below(p, 100);
    Coalition__Txn t;
    struct ledger_result r;
    if (roll < 18) {
        t = tx_award(partner, id, member, 1 + (int64_t)prop_below(p, 800));
        r = fixture_apply(p->f, p->now_ms, t);
        prop_expect(p, &t, r.code, 0);
        prop_ref_add(p->awards, &p->n_awards, pi, id);
    } else if (roll < 38) {
        static const char *const cats[] = {NULL, "fuel", "books"};
        int64_t cents = 50 + (int64_t)prop_below(p, 60000);
        int64_t paid = prop_below(p, 4) == 0 ? (int64_t)prop_below(p, (uint64_t)cents + 1) : 0;
        t = tx_purchase(partner, id, member, cents, paid, cats[prop_below(p, 3)]);
        r = fixture_apply(p->f, p->now_ms, t);
        prop_expect(p, &t, r.code, 1, COALITION_E_NO_POINTS_EARNED);
        if (r.code == 0) {
            prop_ref_add(p->awards, &p->n_awards, pi, id);
        }
    } else if (roll < 53) {
        t = tx_redeem(partner, id, member, prop_amount(p, member));
        r = fixture_apply(p->f, p->now_ms, t);
        prop_expect(p, &t, r.code, 1, COALITION_E_INSUFFICIENT_POINTS);
        if (r.code == 0) {
            prop_ref_add(p->spends, &p->n_spends, pi, id);
        }
    } else if (roll < 63) {
        static const uint32_t timeouts[] = {0, 30, 300, 3600, 86400};
        t = tx_hold(partner, id, member, prop_amount(p, member) / 2 + 1,
                    timeouts[prop_below(p, 5)]);
        r = fixture_apply(p->f, p->now_ms, t);
        prop_expect(p, &t, r.code, 1, COALITION_E_INSUFFICIENT_POINTS);
        if (r.code == 0) {
            prop_ref_add(p->holds, &p->n_holds, pi, id);
        }
        if (r.code == 0 && prop_below(p, 2) == 0) {
            /* The till finishes the sale within seconds (or the hold times
             * out first): capture part or all, or release. */
            char end_id[16];
            snprintf(end_id, sizeof(end_id), "x%u", p->next_id++);
            p->now_ms += prop_below(p, 40 * 1000);
            prop_run_due(p);
            int64_t pts = (int64_t)prop_below(p, (uint64_t)t.points + 1); /* 0: all */
            Coalition__Txn end = prop_below(p, 4) == 0 ? tx_release(partner, end_id, id)
                                                       : tx_capture(partner, end_id, id, pts);
            r = fixture_apply(p->f, p->now_ms, end);
            prop_expect(p, &end, r.code, 1, COALITION_E_HOLD_CLOSED);
            if (r.code == 0 && end.kind == COALITION__TXN_KIND__TXN_CAPTURE) {
                prop_ref_add(p->spends, &p->n_spends, pi, end_id);
            }
        }
    } else if (roll < 76 && p->n_holds > 0) {
        /* Capture or release one of the latest holds: mostly the latest
         * that is still open, sometimes any (likely closed). */
        size_t window = p->n_holds < 20 ? p->n_holds : 20;
        const struct prop_ref *h = &p->holds[p->n_holds - 1 - prop_below(p, window)];
        for (size_t i = 0; i < window && prop_below(p, 5) != 0; i++) {
            const struct prop_ref *c = &p->holds[p->n_holds - 1 - i];
            if (!hold_closed(p->f, prop_partner[c->partner], c->id)) {
                h = c;
                break;
            }
        }
        const char *hp = prop_partner[h->partner];
        if (roll < 71) {
            Coalition__TxnRecord *rec = fixture_txn_record(p->f->s, hp, h->id);
            assert_non_null(rec);
            int64_t pts =
                prop_below(p, 3) == 0 ? 0 : 1 + (int64_t)prop_below(p, (uint64_t)rec->points + 1);
            coalition__txn_record__free_unpacked(rec, NULL);
            t = tx_capture(hp, id, h->id, pts);
            r = fixture_apply(p->f, p->now_ms, t);
            prop_expect(p, &t, r.code, 2, COALITION_E_HOLD_CLOSED, COALITION_E_INSUFFICIENT_POINTS);
            if (r.code == 0) {
                prop_ref_add(p->spends, &p->n_spends, h->partner, id);
            }
        } else {
            t = tx_release(hp, id, h->id);
            r = fixture_apply(p->f, p->now_ms, t);
            prop_expect(p, &t, r.code, 1, COALITION_E_HOLD_CLOSED);
        }
    } else if (roll < 83 && p->n_awards > 0) {
        const struct prop_ref *a = &p->awards[prop_below(p, p->n_awards)];
        Coalition__TxnRecord *rec = fixture_txn_record(p->f->s, prop_partner[a->partner], a->id);
        assert_non_null(rec);
        int64_t pts = prop_below(p, 3) == 0 ? 0 : 1 + (int64_t)prop_below(p, (uint64_t)rec->points);
        coalition__txn_record__free_unpacked(rec, NULL);
        t = tx_reverse(prop_partner[a->partner], id, a->id, pts);
        r = fixture_apply(p->f, p->now_ms, t);
        prop_expect(p, &t, r.code, 2, COALITION_E_POINTS_SPENT, COALITION_E_REVERSAL_EXCEEDS);
    } else if (roll < 89 && p->n_spends > 0) {
        const struct prop_ref *s = &p->spends[prop_below(p, p->n_spends)];
        Coalition__TxnRecord *rec = fixture_txn_record(p->f->s, prop_partner[s->partner], s->id);
        assert_non_null(rec);
        int64_t pts = prop_below(p, 3) == 0 ? 0 : 1 + (int64_t)prop_below(p, (uint64_t)rec->points);
        coalition__txn_record__free_unpacked(rec, NULL);
        t = tx_reverse(prop_partner[s->partner], id, s->id, pts);
        r = fixture_apply(p->f, p->now_ms, t);
        prop_expect(p, &t, r.code, 1, COALITION_E_REVERSAL_EXCEEDS);
    } else if (roll < 97) {
        const char *to = prop_pick_member(p);
        if (strcmp(to, member) == 0) {
            to = member == prop_member[0] ? prop_member[1] : prop_member[0];
        }
        t = tx_transfer(partner, id, member, to, prop_amount(p, member));
        r = fixture_apply(p->f, p->now_ms, t);
        prop_expect(p, &t, r.code, 1, COALITION_E_INSUFFICIENT_POINTS);
    } else {
        /* p0's point value changes now and then (settlement values follow). */
        prop_set_program(p, 0, 500 + prop_below(p, 2000));
    }
}

/* Each member's spendable and locked points at now are its whole account
 * (everything due was swept), its held points its h account, and its stored
 * tier the tier of its rolling window (every review due was done). */
static void prop_check_members(struct prop *p)
{
    for (size_t i = 0; i < PROP_MEMBERS; i++) {
        const char *m = prop_member[i];
        struct ledger_balance b = fixture_balance_at(p->f, p->now_ms, m);
        assert_int_equal(b.points + b.locked, fixture_account(p->f->s, 'm', m));
        assert_int_equal(b.held, fixture_account(p->f->s, 'h', m));
        Coalition__MemberRecord *rec = fixture_member_record(p->f->s, m);
        assert_non_null(rec);
        if (strcmp(rec->tier, b.tier) != 0) {
            fail_msg("member %s at %llu: stored tier '%s', window says '%s' (%lld earned)", m,
                     (unsigned long long)p->now_ms, rec->tier, b.tier, (long long)b.earned_12m);
        }
        coalition__member_record__free_unpacked(rec, NULL);
    }
}

/* Sums the values of a prefix of lots ('l', left by issuer) or open holds
 * ('t' records of kind HOLD not closed, their uses by issuer). */
static void prop_sum_lots(struct store *s, int64_t by_issuer[PROP_PARTNERS])
{
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, NULL, NULL, "l", 1, &it), 0);
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t vlen = 0;
        const void *v = store_iter_value(it, &vlen);
        Coalition__Lot *lot = coalition__lot__unpack(NULL, vlen, v);
        assert_non_null(lot);
        assert_true(lot->left > 0);
        by_issuer[prop_partner_index(lot->issuer)] += lot->left;
        coalition__lot__free_unpacked(lot, NULL);
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
}

static int64_t prop_sum_open_holds(struct store *s, int64_t by_issuer[PROP_PARTNERS])
{
    int64_t total = 0;
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, NULL, NULL, "t", 1, &it), 0);
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t vlen = 0;
        const void *v = store_iter_value(it, &vlen);
        Coalition__TxnRecord *rec = coalition__txn_record__unpack(NULL, vlen, v);
        assert_non_null(rec);
        if (rec->kind == COALITION__TXN_KIND__TXN_HOLD && !rec->closed) {
            int64_t sum = 0;
            for (size_t i = 0; i < rec->n_uses; i++) {
                by_issuer[prop_partner_index(rec->uses[i]->issuer)] += rec->uses[i]->points;
                sum += rec->uses[i]->points;
            }
            assert_int_equal(sum, rec->points);
            total += sum;
        }
        coalition__txn_record__free_unpacked(rec, NULL);
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
    return total;
}

static int64_t prop_sum_accounts(struct store *s, const char *prefix)
{
    int64_t total = 0;
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, NULL, NULL, prefix, strlen(prefix), &it), 0);
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t vlen = 0;
        const uint8_t *v = store_iter_value(it, &vlen);
        assert_int_equal(vlen, 8);
        uint64_t x = 0;
        for (int i = 0; i < 8; i++) {
            x = (x << 8) | v[i];
        }
        total += (int64_t)x;
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
    return total;
}

/* The settlement report from the start to far in the future against what
 * the store holds: for every issuer P, sum over Q of flow(P, Q) == issued -
 * outstanding - expired; outstanding == P's points in lots and open holds;
 * issued, expired and redeemed == P's i, x and r accounts; net positions sum
 * to zero. */
static void prop_check_settlement(struct prop *p)
{
    struct store *s = p->f->s;
    int64_t in_lots[PROP_PARTNERS] = {0}, in_holds[PROP_PARTNERS] = {0};
    prop_sum_lots(s, in_lots);
    int64_t held = prop_sum_open_holds(s, in_holds);
    assert_int_equal(held, prop_sum_accounts(s, "ah:"));

    Coalition__SettlementResult *res = NULL;
    assert_int_equal(report_settlement(s, 0, UINT64_MAX, &res), 0);
    assert_int_equal(res->through_seq, fixture_head(p->f).seq);
    assert_int_equal(res->n_partners, PROP_PARTNERS);
    int64_t net = 0;
    for (size_t i = 0; i < res->n_partners; i++) {
        const Coalition__PartnerPosition *pp = res->partners[i];
        int pi = prop_partner_index(pp->partner);
        int64_t flows = 0;
        for (size_t j = 0; j < res->n_flows; j++) {
            if (strcmp(res->flows[j]->issuer, pp->partner) == 0) {
                (void)prop_partner_index(res->flows[j]->redeemer);
                flows += res->flows[j]->points;
            }
        }
        if (flows != pp->issued_total - pp->outstanding - pp->expired_total ||
            pp->outstanding != in_lots[pi] + in_holds[pi]) {
            fail_msg("%s: flows %lld issued %lld outstanding %lld expired %lld; lots %lld "
                     "holds %lld",
                     pp->partner, (long long)flows, (long long)pp->issued_total,
                     (long long)pp->outstanding, (long long)pp->expired_total,
                     (long long)in_lots[pi], (long long)in_holds[pi]);
        }
        assert_int_equal(pp->issued_total, -fixture_account(s, 'i', pp->partner));
        assert_int_equal(pp->expired_total, fixture_account(s, 'x', pp->partner));
        assert_int_equal(pp->redeemed_total, fixture_account(s, 'r', pp->partner));
        /* The window is everything: window figures equal the totals. */
        assert_int_equal(pp->issued, pp->issued_total);
        assert_int_equal(pp->expired, pp->expired_total);
        net += pp->net_mc;
    }
    assert_int_equal(net, 0);
    report_settlement_free(res);
}

static void test_ledger_rules_property_random_ops(void **state)
{
    struct ledger_fixture *f = *state;
    struct prop *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->f = f;
    p->rng = UINT64_C(0x9e3779b97f4a7c15);
    p->start_ms = at("2022-01-01T00:00:00Z");
    p->now_ms = p->start_ms;

    Coalition__Txn setup[PROP_PARTNERS + PROP_MEMBERS];
    for (size_t i = 0; i < PROP_PARTNERS; i++) {
        setup[i] = tx_partner(prop_partner[i], prop_partner[i]);
    }
    for (size_t i = 0; i < PROP_MEMBERS; i++) {
        setup[PROP_PARTNERS + i] = tx_member(prop_member[i], NULL);
    }
    struct ledger_result res[PROP_PARTNERS + PROP_MEMBERS];
    fixture_apply_batch(f, p->now_ms, setup, PROP_PARTNERS + PROP_MEMBERS, res);
    for (size_t i = 0; i < PROP_PARTNERS + PROP_MEMBERS; i++) {
        assert_int_equal(res[i].code, 0);
    }
    prop_set_rules(p, 12);
    prop_set_program(p, 0, 1000);
    prop_set_program(p, 1, 500);
    prop_set_program(p, 2, 2000);

    for (unsigned op = 0; op < PROP_OPS; op++) {
        /* Mostly minutes apart (holds get captured), sometimes days. */
        p->now_ms +=
            prop_below(p, 10) < 7 ? prop_below(p, 5 * MIN_MS) : prop_below(p, 60 * HOUR_MS);
        prop_run_due(p);
        if (op == PROP_OPS / 2) {
            prop_set_rules(p, 18); /* later points last longer */
        }
        prop_step(p);
        if (op % 100 == 99) {
            prop_run_due(p);
            prop_check_members(p);
        }
        if (op % 1000 == 999) {
            fixture_verify_ok(f);
            prop_check_settlement(p);
        }
    }
    uint64_t years = (p->now_ms - p->start_ms) / (365 * DAY_MS);
    assert_true(years >= 2);

    /* Two years on every point has expired and every hold timed out. */
    p->now_ms += 2 * 366 * DAY_MS;
    prop_run_due(p);
    prop_check_members(p);
    fixture_verify_ok(f);
    prop_check_settlement(p);
    for (size_t i = 0; i < PROP_MEMBERS; i++) {
        assert_int_equal(fixture_balance(f, prop_member[i]), 0);
        assert_int_equal(fixture_account(f->s, 'h', prop_member[i]), 0);
    }

    /* Every kind happened, accepted, often enough to mean something. */
    static const Coalition__TxnKind kinds[] = {
        COALITION__TXN_KIND__TXN_AWARD,        COALITION__TXN_KIND__TXN_REDEEM,
        COALITION__TXN_KIND__TXN_REVERSE,      COALITION__TXN_KIND__TXN_TRANSFER,
        COALITION__TXN_KIND__TXN_HOLD,         COALITION__TXN_KIND__TXN_CAPTURE,
        COALITION__TXN_KIND__TXN_RELEASE,      COALITION__TXN_KIND__TXN_EXPIRE,
        COALITION__TXN_KIND__TXN_HOLD_TIMEOUT, COALITION__TXN_KIND__TXN_TIER_REVIEW,
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        print_message("kind %2d: %4u accepted, %4u rejected\n", (int)kinds[i], p->ok[kinds[i]],
                      p->rejected[kinds[i]]);
        assert_true(p->ok[kinds[i]] >= 5);
    }
    print_message("%llu entries over %llu days\n", (unsigned long long)fixture_head(f).seq,
                  (unsigned long long)((p->now_ms - p->start_ms) / DAY_MS));
    free(p);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_ledger_rules_purchase_awards),
        T(test_ledger_rules_program_read),
        T(test_ledger_rules_tier_thresholds_and_multiplier),
        T(test_ledger_rules_tier_window_and_review),
        T(test_ledger_rules_tier_reversal_lowers_earned),
        T(test_ledger_rules_expiry),
        T(test_ledger_rules_expiring_soonest_first),
        T(test_ledger_rules_pending_points),
        T(test_ledger_rules_hold_capture_release),
        T(test_ledger_rules_hold_timeout),
        T(test_ledger_rules_refund_award_after_partial_spend),
        T(test_ledger_rules_refund_redemption_keeps_expiry),
        T(test_ledger_rules_cards_and_keys),
        T(test_ledger_rules_merge),
        T(test_ledger_rules_erase),
        T(test_ledger_rules_merge_then_reverse_award),
        T(test_ledger_rules_merge_then_reverse_redemption),
        T(test_ledger_rules_reverse_award_expired_before_sweep),
        T(test_ledger_rules_purchase_retry_reports_rule),
        T(test_ledger_rules_scheduled_nothing_due),
        T(test_ledger_rules_property_random_ops),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
