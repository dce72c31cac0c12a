/* Unit tests of node/report.c on a real RocksDB store in a fresh temporary
 * directory.  Entries are written straight into the store (key 'e' + seq,
 * value BLAKE2b-256 + packed Entry, as the ledger stores them), so that each
 * test states exactly which postings the report sees: flows valued at the
 * issuer's point value as of each entry, reversals netting, breakage, window
 * boundaries, outstanding and liability, net positions summing to zero, KPI
 * counts and retention, top flows, the rejections, and a seeded random ledger
 * checked against an in-test model.  One test applies real transactions
 * through ledger_apply and checks the statement against the ledger's own
 * account balances and lots. */
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

#include "tmpdir.h"
#include <sodium.h>

#include "bytes.h"
#include "errors.h"
#include "ledger.h"
#include "report.h"
#include "rules.h"
#include "store.h"

#define TXN_KIND(name) COALITION__TXN_KIND__TXN_##name
/* The point value of a partner that never set a program. */
#define DPV ((int64_t)RULES_DEFAULT_POINT_VALUE_MC)

/* A fresh store in its own temporary directory, and the chain written so
 * far. */
struct report_fixture {
    char dir[PATH_MAX];
    struct store *s;
    uint64_t seq;     /* last entry written */
    uint8_t prev[32]; /* its hash */
    uint64_t time_ms; /* its time */
};

static int setup(void **state)
{
    struct report_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tmpdir_make(f->dir, sizeof(f->dir) - 32, "test_report"), 0);
    char *err = NULL;
    int rv = store_open(f->dir, &f->s, &err);
    if (rv != 0) {
        fprintf(stderr, "store_open %s: %s\n", f->dir, err != NULL ? err : "?");
    }
    free(err);
    assert_int_equal(rv, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct report_fixture *f = *state;
    store_close(f->s);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Writing entries */

/* One posting as the test states it: account names and the issuer. */
struct post {
    const char *debit, *credit, *issuer;
    int64_t amount;
};

/* Writes the raw record `val` under entry key `seq`. */
static void put_raw(struct report_fixture *f, uint64_t seq, const void *val, size_t vlen)
{
    uint8_t key[9] = {'e'};
    bytes_put_be64(key + 1, seq);
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    store_batch_put(b, key, sizeof(key), val, vlen);
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    store_batch_destroy(b);
}

/* Appends entry seq+1 at `time_ms` (never before the last one) with the
 * transaction `t` (borrowed) and `n` postings. */
static uint64_t put_entry(struct report_fixture *f, uint64_t time_ms, Coalition__Txn *t,
                          const struct post *posts, size_t n)
{
    assert_true(time_ms >= f->time_ms);
    assert_true(n <= 8);
    Coalition__Posting p[8];
    Coalition__Posting *pp[8];
    for (size_t i = 0; i < n; i++) {
        coalition__posting__init(&p[i]);
        p[i].debit = (char *)posts[i].debit;
        p[i].credit = (char *)posts[i].credit;
        p[i].issuer = (char *)(posts[i].issuer != NULL ? posts[i].issuer : "");
        p[i].amount = posts[i].amount;
        pp[i] = &p[i];
    }
    Coalition__Entry e;
    coalition__entry__init(&e);
    e.seq = f->seq + 1;
    e.time_ms = time_ms;
    e.prev_hash.data = f->prev;
    e.prev_hash.len = sizeof(f->prev);
    e.txn = t;
    e.postings = pp;
    e.n_postings = n;
    size_t len = coalition__entry__get_packed_size(&e);
    uint8_t *val = malloc(32 + len);
    assert_non_null(val);
    assert_int_equal(coalition__entry__pack(&e, val + 32), len);
    crypto_generichash(val, 32, val + 32, len, NULL, 0);
    put_raw(f, e.seq, val, 32 + len);
    memcpy(f->prev, val, 32);
    free(val);
    f->seq = e.seq;
    f->time_ms = time_ms;
    return f->seq;
}

static Coalition__Txn txn(Coalition__TxnKind kind, const char *partner, const char *member)
{
    Coalition__Txn t;
    coalition__txn__init(&t);
    t.kind = kind;
    t.partner = (char *)partner;
    t.member = (char *)(member != NULL ? member : "");
    return t;
}

/* Account name "<kind>:<id>" in a static ring of buffers (enough for the
 * postings of one entry). */
static const char *acct(char kind, const char *id)
{
    static char ring[16][80];
    static unsigned next;
    char *b = ring[next++ % 16];
    snprintf(b, sizeof(ring[0]), "%c:%s", kind, id);
    return b;
}

static uint64_t partner_add(struct report_fixture *f, uint64_t t_ms, const char *p)
{
    Coalition__Txn t = txn(TXN_KIND(PARTNER_ADD), p, NULL);
    t.name = (char *)p;
    return put_entry(f, t_ms, &t, NULL, 0);
}

static uint64_t program_set(struct report_fixture *f, uint64_t t_ms, const char *p,
                            uint64_t value_mc)
{
    Coalition__Program prog;
    coalition__program__init(&prog);
    prog.point_value_mc = value_mc;
    Coalition__Txn t = txn(TXN_KIND(PROGRAM_SET), p, NULL);
    t.program = &prog;
    return put_entry(f, t_ms, &t, NULL, 0);
}

/* AWARD by p to m; a purchase if cents > 0. */
static uint64_t award(struct report_fixture *f, uint64_t t_ms, const char *p, const char *m,
                      int64_t points, int64_t cents)
{
    Coalition__Txn t = txn(TXN_KIND(AWARD), p, m);
    t.purchase_cents = cents;
    struct post post = {acct('i', p), acct('m', m), p, points};
    return put_entry(f, t_ms, &t, &post, 1);
}

/* REDEEM at q of `points` of issuer `iss` held by m. */
static uint64_t redeem(struct report_fixture *f, uint64_t t_ms, const char *q, const char *m,
                       const char *iss, int64_t points)
{
    Coalition__Txn t = txn(TXN_KIND(REDEEM), q, m);
    struct post post = {acct('m', m), acct('r', q), iss, points};
    return put_entry(f, t_ms, &t, &post, 1);
}

/* REVERSE by q of a redemption: `points` of issuer `iss` back to m. */
static uint64_t reverse_redeem(struct report_fixture *f, uint64_t t_ms, const char *q,
                               const char *m, const char *iss, int64_t points)
{
    Coalition__Txn t = txn(TXN_KIND(REVERSE), q, NULL);
    struct post post = {acct('r', q), acct('m', m), iss, points};
    return put_entry(f, t_ms, &t, &post, 1);
}

static uint64_t reverse_award(struct report_fixture *f, uint64_t t_ms, const char *p, const char *m,
                              int64_t points)
{
    Coalition__Txn t = txn(TXN_KIND(REVERSE), p, NULL);
    struct post post = {acct('m', m), acct('i', p), p, points};
    return put_entry(f, t_ms, &t, &post, 1);
}

static uint64_t expire(struct report_fixture *f, uint64_t t_ms, const char *m, const char *iss,
                       int64_t points)
{
    Coalition__Txn t = txn(TXN_KIND(EXPIRE), "", m);
    struct post post = {acct('m', m), acct('x', iss), iss, points};
    return put_entry(f, t_ms, &t, &post, 1);
}

static uint64_t hold(struct report_fixture *f, uint64_t t_ms, const char *q, const char *m,
                     const char *iss, int64_t points)
{
    Coalition__Txn t = txn(TXN_KIND(HOLD), q, m);
    struct post post = {acct('m', m), acct('h', m), iss, points};
    return put_entry(f, t_ms, &t, &post, 1);
}

/* CAPTURE at q of a hold of m (the txn names no member, as the ledger's). */
static uint64_t capture(struct report_fixture *f, uint64_t t_ms, const char *q, const char *m,
                        const char *iss, int64_t points)
{
    Coalition__Txn t = txn(TXN_KIND(CAPTURE), q, NULL);
    struct post post = {acct('h', m), acct('r', q), iss, points};
    return put_entry(f, t_ms, &t, &post, 1);
}

/* ---------------------------------------------------------------------------
 * Reading results */

static const Coalition__SettlementFlow *find_flow(const Coalition__SettlementResult *r,
                                                  const char *issuer, const char *redeemer)
{
    for (size_t i = 0; i < r->n_flows; i++) {
        if (strcmp(r->flows[i]->issuer, issuer) == 0 &&
            strcmp(r->flows[i]->redeemer, redeemer) == 0) {
            return r->flows[i];
        }
    }
    return NULL;
}

static const Coalition__PartnerPosition *find_pos(const Coalition__SettlementResult *r,
                                                  const char *partner)
{
    for (size_t i = 0; i < r->n_partners; i++) {
        if (strcmp(r->partners[i]->partner, partner) == 0) {
            return r->partners[i];
        }
    }
    return NULL;
}

static void assert_flow(const Coalition__SettlementFlow *fl, const char *issuer,
                        const char *redeemer, int64_t points, int64_t value_mc)
{
    assert_non_null(fl);
    assert_string_equal(fl->issuer, issuer);
    assert_string_equal(fl->redeemer, redeemer);
    assert_int_equal(fl->points, points);
    assert_int_equal(fl->value_mc, value_mc);
}

static Coalition__SettlementResult *settle(struct report_fixture *f, uint64_t from, uint64_t to)
{
    Coalition__SettlementResult *r = NULL;
    assert_int_equal(report_settlement(f->s, from, to, &r), 0);
    assert_non_null(r);
    assert_int_equal(r->from_ms, from);
    assert_int_equal(r->to_ms, to);
    return r;
}

static Coalition__ReportResult *kpi(struct report_fixture *f, const char *partner, uint64_t from,
                                    uint64_t to)
{
    Coalition__ReportResult *r = NULL;
    assert_int_equal(report_kpi(f->s, partner, from, to, &r), 0);
    assert_non_null(r);
    assert_string_equal(r->partner, partner);
    assert_int_equal(r->from_ms, from);
    assert_int_equal(r->to_ms, to);
    return r;
}

/* The identities every statement must satisfy: each partner's outstanding
 * is its issued total minus its points redeemed anywhere (the flows with it
 * as issuer) minus its breakage; net = receivable - payable; receivable and
 * payable are its cross-partner flows; nets sum to zero; flows are sorted. */
/* The payments settle the statement: each names two different partners and
 * a positive value, no pair is paid twice (either way), and what each
 * partner receives minus what it pays is its net. */
static void assert_payments_net(const Coalition__SettlementResult *r)
{
    assert_true(r->n_payments <= r->n_flows);
    for (size_t i = 0; i < r->n_payments; i++) {
        const Coalition__SettlementPayment *pm = r->payments[i];
        assert_true(pm->value_mc > 0);
        assert_true(strcmp(pm->payer, pm->payee) != 0);
        for (size_t j = 0; j < i; j++) {
            const Coalition__SettlementPayment *o = r->payments[j];
            bool same = strcmp(o->payer, pm->payer) == 0 && strcmp(o->payee, pm->payee) == 0;
            bool back = strcmp(o->payer, pm->payee) == 0 && strcmp(o->payee, pm->payer) == 0;
            assert_false(same || back);
        }
    }
    for (size_t i = 0; i < r->n_partners; i++) {
        const char *name = r->partners[i]->partner;
        int64_t in = 0, out = 0;
        for (size_t j = 0; j < r->n_payments; j++) {
            in += strcmp(r->payments[j]->payee, name) == 0 ? r->payments[j]->value_mc : 0;
            out += strcmp(r->payments[j]->payer, name) == 0 ? r->payments[j]->value_mc : 0;
        }
        assert_int_equal(in - out, r->partners[i]->net_mc);
    }
}

static void assert_payment(const Coalition__SettlementPayment *pm, const char *payer,
                           const char *payee, int64_t value_mc)
{
    assert_string_equal(pm->payer, payer);
    assert_string_equal(pm->payee, payee);
    assert_int_equal(pm->value_mc, value_mc);
}

static void assert_statement_consistent(const Coalition__SettlementResult *r)
{
    int64_t net_sum = 0;
    for (size_t i = 0; i < r->n_partners; i++) {
        const Coalition__PartnerPosition *p = r->partners[i];
        if (i > 0) {
            assert_true(strcmp(r->partners[i - 1]->partner, p->partner) < 0);
        }
        int64_t recv = 0, pay = 0, redeemed_at = 0;
        for (size_t j = 0; j < r->n_flows; j++) {
            const Coalition__SettlementFlow *fl = r->flows[j];
            bool cross = strcmp(fl->issuer, fl->redeemer) != 0;
            if (strcmp(fl->redeemer, p->partner) == 0) {
                redeemed_at += fl->points;
                recv += cross ? fl->value_mc : 0;
            }
            if (cross && strcmp(fl->issuer, p->partner) == 0) {
                pay += fl->value_mc;
            }
        }
        assert_int_equal(p->receivable_mc, recv);
        assert_int_equal(p->payable_mc, pay);
        assert_int_equal(p->redeemed_at, redeemed_at);
        assert_int_equal(p->net_mc, recv - pay);
        net_sum += p->net_mc;
    }
    assert_int_equal(net_sum, 0);
    assert_payments_net(r);
    for (size_t j = 0; j < r->n_flows; j++) {
        assert_true(r->flows[j]->points != 0 || r->flows[j]->value_mc != 0);
        if (j > 0) {
            int c = strcmp(r->flows[j - 1]->issuer, r->flows[j]->issuer);
            assert_true(c < 0 ||
                        (c == 0 && strcmp(r->flows[j - 1]->redeemer, r->flows[j]->redeemer) < 0));
        }
    }
}

/* ---------------------------------------------------------------------------
 * Tests */

static void test_report_rejects_empty_window(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 10, "A");
    Coalition__SettlementResult *sr = (void *)&sr;
    Coalition__ReportResult *kr = (void *)&kr;
    assert_int_equal(report_settlement(f->s, 10, 10, &sr), COALITION_E_INVALID_ARGUMENT);
    assert_int_equal(report_settlement(f->s, 11, 10, &sr), COALITION_E_INVALID_ARGUMENT);
    assert_ptr_equal(sr, (void *)&sr);
    assert_int_equal(report_kpi(f->s, "", 10, 10, &kr), COALITION_E_INVALID_ARGUMENT);
    assert_int_equal(report_kpi(f->s, "A", 20, 10, &kr), COALITION_E_INVALID_ARGUMENT);
    assert_ptr_equal(kr, (void *)&kr);
}

static void test_report_empty_ledger(void **state)
{
    struct report_fixture *f = *state;
    Coalition__SettlementResult *r = settle(f, 0, UINT64_MAX);
    assert_int_equal(r->through_seq, 0);
    assert_int_equal(r->n_flows, 0);
    assert_int_equal(r->n_partners, 0);
    report_settlement_free(r);

    Coalition__ReportResult *k = kpi(f, "", 0, 1000);
    assert_int_equal(k->through_seq, 0);
    assert_int_equal(k->active_members + k->purchasers + k->previous_active + k->purchases, 0);
    assert_int_equal(k->points_issued, 0);
    assert_int_equal(k->outstanding, 0);
    assert_int_equal(k->n_top_flows, 0);
    report_kpi_free(k);

    Coalition__ReportResult *none = NULL;
    assert_int_equal(report_kpi(f->s, "A", 0, 1000, &none), COALITION_E_UNKNOWN_PARTNER);
    assert_null(none);
}

/* A redemption is valued at its issuer's point value as of its entry: a
 * PROGRAM_SET in the middle of the window changes the value from that entry
 * on.  Flows at the issuer itself are listed but owe nothing. */
static void test_report_flows_value_follows_program(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 1000, "A");
    partner_add(f, 1000, "B");
    partner_add(f, 1000, "C");
    program_set(f, 1000, "A", 2000);
    program_set(f, 1000, "B", 500);
    award(f, 1100, "A", "m1", 100, 0);
    award(f, 1100, "B", "m2", 50, 0);
    redeem(f, 1500, "B", "m1", "A", 10); /* before the window: totals only */
    redeem(f, 2000, "B", "m1", "A", 20); /* 20 x 2000 */
    program_set(f, 3000, "A", 3000);
    redeem(f, 3000, "C", "m1", "A", 30);                /* 30 x 3000 */
    redeem(f, 3500, "B", "m1", "A", 5);                 /* 5 x 3000 */
    redeem(f, 3600, "A", "m2", "B", 10);                /* 10 x 500 */
    uint64_t last = redeem(f, 3700, "A", "m1", "A", 7); /* A's own: 7 x 3000 */
    redeem(f, 5000, "C", "m1", "A", 9);                 /* at to_ms: not counted */

    Coalition__SettlementResult *r = settle(f, 2000, 5000);
    assert_int_equal(r->through_seq, last);
    assert_int_equal(r->n_flows, 4);
    assert_flow(r->flows[0], "A", "A", 7, 21000);
    assert_flow(r->flows[1], "A", "B", 25, 40000 + 15000);
    assert_flow(r->flows[2], "A", "C", 30, 90000);
    assert_flow(r->flows[3], "B", "A", 10, 5000);

    assert_int_equal(r->n_partners, 3);
    const Coalition__PartnerPosition *a = r->partners[0], *b = r->partners[1], *c = r->partners[2];
    assert_string_equal(a->partner, "A");
    assert_string_equal(b->partner, "B");
    assert_string_equal(c->partner, "C");
    assert_int_equal(a->receivable_mc, 5000);
    assert_int_equal(a->payable_mc, 145000);
    assert_int_equal(a->net_mc, -140000);
    assert_int_equal(a->redeemed_at, 17);
    assert_int_equal(a->issued, 0);
    assert_int_equal(a->issued_total, 100);
    assert_int_equal(a->outstanding, 100 - (10 + 25 + 30 + 7));
    assert_int_equal(a->liability_mc, 28 * 3000); /* the value at to_ms */
    assert_int_equal(b->receivable_mc, 55000);
    assert_int_equal(b->payable_mc, 5000);
    assert_int_equal(b->net_mc, 50000);
    assert_int_equal(b->redeemed_at, 25);
    assert_int_equal(b->redeemed_total, 35);
    assert_int_equal(b->outstanding, 40);
    assert_int_equal(b->liability_mc, 40 * 500);
    assert_int_equal(c->net_mc, 90000);
    assert_int_equal(c->redeemed_at, 30);
    assert_int_equal(c->outstanding, 0);
    /* A owes B 55000 and B owes A 5000: A pays the difference; A's own
     * points redeemed at A owe nothing. */
    assert_int_equal(r->n_payments, 2);
    assert_payment(r->payments[0], "A", "B", 50000);
    assert_payment(r->payments[1], "A", "C", 90000);
    assert_statement_consistent(r);
    report_settlement_free(r);

    /* Before A's change, A's points are worth 2000; C never set a program. */
    r = settle(f, 0, 3000);
    assert_int_equal(r->n_flows, 1);
    assert_flow(r->flows[0], "A", "B", 30, 60000);
    assert_int_equal(find_pos(r, "A")->liability_mc, 70 * 2000);
    report_settlement_free(r);
    award(f, 6000, "C", "m3", 4, 0);
    r = settle(f, 0, 7000);
    assert_int_equal(find_pos(r, "C")->liability_mc, 4 * RULES_DEFAULT_POINT_VALUE_MC);
    assert_statement_consistent(r);
    report_settlement_free(r);
}

/* Payments net each pair of partners: an even pair pays nothing, the larger
 * debt decides who pays, and a partner's points redeemed at itself owe
 * nothing. */
static void test_report_payments_net_pairs(void **state)
{
    struct report_fixture *f = *state;
    const char *names[] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; i++) {
        partner_add(f, 1000, names[i]);
    }
    for (int i = 0; i < 4; i++) {
        award(f, 1100, names[i], "m1", 1000, 0);
    }
    redeem(f, 2000, "B", "m1", "A", 40); /* A owes B 40 */
    redeem(f, 2001, "A", "m1", "B", 40); /* B owes A 40: even */
    redeem(f, 2002, "D", "m1", "C", 10); /* C owes D 10 */
    redeem(f, 2003, "C", "m1", "D", 25); /* D owes C 25: D pays 15 */
    redeem(f, 2004, "C", "m1", "C", 99); /* C's own */

    Coalition__SettlementResult *r = settle(f, 0, 3000);
    assert_int_equal(r->n_flows, 5);
    assert_int_equal(r->n_payments, 1);
    assert_payment(r->payments[0], "D", "C", 15 * RULES_DEFAULT_POINT_VALUE_MC);
    assert_statement_consistent(r);
    report_settlement_free(r);

    /* No cross-partner flow at all: no payment. */
    r = settle(f, 2004, 3000);
    assert_int_equal(r->n_flows, 1);
    assert_int_equal(r->n_payments, 0);
    assert_statement_consistent(r);
    report_settlement_free(r);
}

/* Reversals of awards and of redemptions net against them; a flow reversed
 * to nothing is not listed; a reversal in a later window is a negative
 * flow there. */
static void test_report_reversals_net(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 500, "A");
    partner_add(f, 500, "B");
    award(f, 1000, "A", "m1", 100, 0);
    award(f, 1000, "B", "m1", 10, 0);
    reverse_award(f, 1100, "A", "m1", 30);
    /* One redemption spending both issuers' points: two postings. */
    Coalition__Txn t = txn(TXN_KIND(REDEEM), "B", "m1");
    struct post both[] = {{"m:m1", "r:B", "A", 40}, {"m:m1", "r:B", "B", 10}};
    put_entry(f, 1200, &t, both, 2);
    Coalition__Txn rev = txn(TXN_KIND(REVERSE), "B", NULL);
    struct post back[] = {{"r:B", "m:m1", "A", 15}, {"r:B", "m:m1", "B", 10}};
    put_entry(f, 1300, &rev, back, 2);
    reverse_redeem(f, 2000, "B", "m1", "A", 5);

    Coalition__SettlementResult *r = settle(f, 1000, 2000);
    assert_int_equal(r->n_flows, 1); /* (B, B) netted to zero */
    assert_flow(r->flows[0], "A", "B", 25, 25 * DPV);
    const Coalition__PartnerPosition *a = find_pos(r, "A"), *b = find_pos(r, "B");
    assert_int_equal(a->issued, 70);
    assert_int_equal(a->outstanding, 70 - 25);
    assert_int_equal(b->issued, 10);
    assert_int_equal(b->redeemed_at, 25);
    assert_int_equal(b->outstanding, 10);
    assert_int_equal(b->net_mc, 25 * DPV);
    assert_statement_consistent(r);
    report_settlement_free(r);

    r = settle(f, 2000, 3000);
    assert_int_equal(r->n_flows, 1);
    assert_flow(r->flows[0], "A", "B", -5, -5 * DPV);
    a = find_pos(r, "A");
    b = find_pos(r, "B");
    assert_int_equal(a->net_mc, 5 * DPV);
    assert_int_equal(b->net_mc, -5 * DPV);
    assert_int_equal(b->redeemed_at, -5);
    assert_int_equal(b->redeemed_total, 20);
    assert_int_equal(a->outstanding, 70 - 20);
    assert_statement_consistent(r);
    report_settlement_free(r);
}

/* Expired points are the issuer's breakage: they leave its outstanding and
 * its liability. */
static void test_report_expiry_breakage(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 0, "A");
    program_set(f, 0, "A", 2000);
    award(f, 1000, "A", "m1", 100, 0);
    award(f, 1000, "A", "m2", 50, 0);
    expire(f, 1500, "m1", "A", 30);
    expire(f, 2500, "m2", "A", 50);

    Coalition__SettlementResult *r = settle(f, 1000, 2000);
    const Coalition__PartnerPosition *a = find_pos(r, "A");
    assert_int_equal(a->issued, 150);
    assert_int_equal(a->expired, 30);
    assert_int_equal(a->expired_total, 30);
    assert_int_equal(a->outstanding, 120);
    assert_int_equal(a->liability_mc, 240000);
    assert_int_equal(r->n_flows, 0);
    report_settlement_free(r);

    r = settle(f, 2000, 3000);
    a = find_pos(r, "A");
    assert_int_equal(a->issued, 0);
    assert_int_equal(a->issued_total, 150);
    assert_int_equal(a->expired, 50);
    assert_int_equal(a->expired_total, 80);
    assert_int_equal(a->outstanding, 70);
    assert_int_equal(a->outstanding, a->issued_total - a->redeemed_total - a->expired_total);
    report_settlement_free(r);

    Coalition__ReportResult *k = kpi(f, "A", 1000, 2000);
    assert_int_equal(k->points_expired, 30);
    assert_int_equal(k->points_issued, 150);
    assert_int_equal(k->outstanding, 120);
    assert_int_equal(k->liability_mc, 240000);
    report_kpi_free(k);
}

/* An entry at from_ms is in the window, one at to_ms is not; a partner
 * admitted at to_ms is not listed yet. */
static void test_report_window_boundaries(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 500, "A");        /* seq 1 */
    award(f, 999, "A", "m1", 1, 0);  /* 2 */
    award(f, 1000, "A", "m1", 2, 0); /* 3 */
    award(f, 1999, "A", "m1", 4, 0); /* 4 */
    partner_add(f, 2000, "B");       /* 5 */
    award(f, 2000, "A", "m1", 8, 0); /* 6 */
    /* Postings naming a partner that was never admitted (the ledger never
     * writes one) do not make it a partner of the statement. */
    award(f, 3000, "Z", "m1", 16, 0); /* 7 */

    Coalition__SettlementResult *r = settle(f, 1000, 2000);
    assert_int_equal(r->through_seq, 4);
    assert_int_equal(r->n_partners, 1);
    assert_int_equal(r->partners[0]->issued, 2 + 4);
    assert_int_equal(r->partners[0]->issued_total, 1 + 2 + 4);
    assert_int_equal(r->partners[0]->outstanding, 7);
    report_settlement_free(r);

    r = settle(f, 1000, 2001);
    assert_int_equal(r->through_seq, 6);
    assert_int_equal(r->n_partners, 2);
    assert_string_equal(r->partners[1]->partner, "B");
    assert_int_equal(r->partners[0]->issued, 14);
    report_settlement_free(r);

    r = settle(f, 0, 500); /* before the first entry */
    assert_int_equal(r->through_seq, 0);
    assert_int_equal(r->n_partners, 0);
    report_settlement_free(r);

    r = settle(f, 999, 1000);
    assert_int_equal(r->through_seq, 2);
    assert_int_equal(r->partners[0]->issued, 1);
    report_settlement_free(r);

    r = settle(f, 5000, 6000); /* after the last entry: totals only */
    assert_int_equal(r->through_seq, 7);
    assert_int_equal(r->n_partners, 2);
    assert_null(find_pos(r, "Z"));
    assert_int_equal(r->partners[0]->issued, 0);
    assert_int_equal(r->partners[0]->outstanding, 15);
    report_settlement_free(r);

    /* A KPI report needs a partner admitted before to_ms. */
    Coalition__ReportResult *k = NULL;
    assert_int_equal(report_kpi(f->s, "B", 1000, 2000, &k), COALITION_E_UNKNOWN_PARTNER);
    assert_int_equal(report_kpi(f->s, "Z", 1000, 5000, &k), COALITION_E_UNKNOWN_PARTNER);
    assert_null(k);
    k = kpi(f, "B", 1000, 2001);
    assert_int_equal(k->points_issued, 0);
    report_kpi_free(k);
    k = kpi(f, "", 0, 5000); /* the coalition's figures: admitted partners only */
    assert_int_equal(k->points_issued, 15);
    assert_int_equal(k->outstanding, 15);
    report_kpi_free(k);
}

/* Purchases, repeat purchasers, activity by purchase or redemption (a
 * capture counts, through its held-points posting) and retention against
 * the previous window of the same length. */
static void test_report_kpi_counts(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 0, "A");
    partner_add(f, 0, "B");
    /* Previous window [0, 10000). */
    award(f, 1000, "A", "m1", 5, 500);
    award(f, 1500, "A", "m2", 50, 0); /* points only: not a purchase */
    redeem(f, 2000, "A", "m2", "A", 10);
    award(f, 3000, "B", "m3", 20, 700);
    award(f, 4000, "A", "m4", 5, 400);
    /* The window [10000, 20000). */
    award(f, 10000, "A", "m1", 10, 1000);
    award(f, 12000, "A", "m1", 30, 3000);
    award(f, 13000, "A", "m2", 20, 2000);
    hold(f, 14000, "A", "m3", "B", 8);
    capture(f, 15000, "A", "m3", "B", 8);
    award(f, 16000, "A", "m5", 25, 0);
    award(f, 17000, "B", "m6", 7, 900);
    award(f, 17500, "A", "m7", 5, 0);
    redeem(f, 18000, "B", "m7", "A", 5);
    award(f, 20000, "A", "m8", 5, 100); /* at to_ms */

    Coalition__ReportResult *k = kpi(f, "A", 10000, 20000);
    assert_int_equal(k->purchases, 3);
    assert_int_equal(k->purchase_cents, 6000);
    assert_int_equal(k->purchasers, 2);
    assert_int_equal(k->repeat_purchasers, 1);
    assert_int_equal(k->active_members, 3);   /* m1, m2, m3 */
    assert_int_equal(k->previous_active, 3);  /* m1, m2, m4 */
    assert_int_equal(k->retained_members, 2); /* m1, m2 */
    assert_int_equal(k->points_issued, 10 + 30 + 20 + 25 + 5);
    assert_int_equal(k->points_redeemed, 8);
    assert_int_equal(k->through_seq, f->seq - 1);
    report_kpi_free(k);

    k = kpi(f, "", 10000, 20000);
    assert_int_equal(k->purchases, 4);
    assert_int_equal(k->purchase_cents, 6900);
    assert_int_equal(k->purchasers, 3);
    assert_int_equal(k->repeat_purchasers, 1);
    assert_int_equal(k->active_members, 5);   /* m1, m2, m3, m6, m7 */
    assert_int_equal(k->previous_active, 4);  /* m1, m2, m3, m4 */
    assert_int_equal(k->retained_members, 3); /* m1, m2, m3 */
    assert_int_equal(k->points_issued, 90 + 7);
    assert_int_equal(k->points_redeemed, 8 + 5);
    /* The coalition's figures are the sums of the statement's. */
    Coalition__SettlementResult *r = settle(f, 10000, 20000);
    int64_t outstanding = 0, liability = 0;
    for (size_t i = 0; i < r->n_partners; i++) {
        outstanding += r->partners[i]->outstanding;
        liability += r->partners[i]->liability_mc;
    }
    assert_int_equal(k->outstanding, outstanding);
    assert_int_equal(k->liability_mc, liability);
    report_settlement_free(r);
    report_kpi_free(k);

    /* The previous window is clamped at 0: [0, 0) and [0, 3000). */
    k = kpi(f, "A", 0, 10000);
    assert_int_equal(k->previous_active, 0);
    assert_int_equal(k->active_members, 3); /* m1, m2 (redemption), m4 */
    assert_int_equal(k->purchasers, 2);
    report_kpi_free(k);
    k = kpi(f, "A", 3000, 10000);
    assert_int_equal(k->previous_active, 2); /* m1, m2 */
    assert_int_equal(k->active_members, 1);  /* m4 */
    assert_int_equal(k->retained_members, 0);
    report_kpi_free(k);
    /* A window of only the previous length's tail: [13000, 16000) after
     * [10000, 13000). */
    k = kpi(f, "A", 13000, 16000);
    assert_int_equal(k->previous_active, 1); /* m1 */
    assert_int_equal(k->active_members, 2);  /* m2, m3 */
    assert_int_equal(k->retained_members, 0);
    report_kpi_free(k);
}

/* The largest cross-partner flows of the window by points, ties by issuer
 * then redeemer, at most five; own redemptions and negative flows are not
 * among them. */
static void test_report_kpi_top_flows(void **state)
{
    struct report_fixture *f = *state;
    const char *ps[] = {"A", "B", "C", "D", "E"};
    for (size_t i = 0; i < 5; i++) {
        partner_add(f, 0, ps[i]);
        award(f, 0, ps[i], "m", 1000, 0);
    }
    redeem(f, 10, "B", "m", "E", 20); /* before the window */
    redeem(f, 100, "B", "m", "A", 50);
    redeem(f, 100, "A", "m", "B", 50);
    redeem(f, 100, "D", "m", "C", 70);
    redeem(f, 100, "C", "m", "A", 10);
    redeem(f, 100, "A", "m", "D", 50);
    redeem(f, 100, "A", "m", "E", 5);
    redeem(f, 100, "E", "m", "A", 1);
    redeem(f, 100, "A", "m", "A", 100);
    redeem(f, 100, "C", "m", "B", 60);
    reverse_redeem(f, 100, "B", "m", "E", 5);

    Coalition__ReportResult *k = kpi(f, "", 100, 200);
    assert_int_equal(k->n_top_flows, 5);
    assert_flow(k->top_flows[0], "C", "D", 70, 70 * DPV);
    assert_flow(k->top_flows[1], "B", "C", 60, 60 * DPV);
    assert_flow(k->top_flows[2], "A", "B", 50, 50 * DPV);
    assert_flow(k->top_flows[3], "B", "A", 50, 50 * DPV);
    assert_flow(k->top_flows[4], "D", "A", 50, 50 * DPV);
    report_kpi_free(k);

    k = kpi(f, "A", 100, 200);
    assert_int_equal(k->n_top_flows, 5);
    assert_flow(k->top_flows[0], "A", "B", 50, 50 * DPV);
    assert_flow(k->top_flows[1], "B", "A", 50, 50 * DPV);
    assert_flow(k->top_flows[2], "D", "A", 50, 50 * DPV);
    assert_flow(k->top_flows[3], "A", "C", 10, 10 * DPV);
    assert_flow(k->top_flows[4], "E", "A", 5, 5 * DPV); /* (A, E) 1 is sixth */
    report_kpi_free(k);

    k = kpi(f, "C", 100, 200);
    assert_int_equal(k->n_top_flows, 3);
    assert_flow(k->top_flows[0], "C", "D", 70, 70 * DPV);
    assert_flow(k->top_flows[1], "B", "C", 60, 60 * DPV);
    assert_flow(k->top_flows[2], "A", "C", 10, 10 * DPV);
    report_kpi_free(k);

    k = kpi(f, "E", 100, 200); /* (E, B) is -5 in the window */
    assert_int_equal(k->n_top_flows, 2);
    assert_flow(k->top_flows[0], "E", "A", 5, 5 * DPV);
    assert_flow(k->top_flows[1], "A", "E", 1, 1 * DPV);
    report_kpi_free(k);

    Coalition__SettlementResult *r = settle(f, 100, 200);
    assert_flow(find_flow(r, "E", "B"), "E", "B", -5, -5 * DPV);
    assert_flow(find_flow(r, "A", "A"), "A", "A", 100, 100 * DPV);
    assert_statement_consistent(r);
    report_settlement_free(r);
}

/* Hundreds of partners, flows and members: the tallies grow and rehash and
 * every figure survives it. */
static void test_report_many_partners_and_members(void **state)
{
    struct report_fixture *f = *state;
    enum { NP = 150, NM = 400, REPEAT = 70 };
    char p[NP][16], m[NM][16];
    for (int i = 0; i < NP; i++) {
        snprintf(p[i], sizeof(p[i]), "p%03d", NP - 1 - i); /* admitted in reverse order */
        partner_add(f, 0, p[i]);
    }
    for (int i = 0; i < NM; i++) {
        snprintf(m[i], sizeof(m[i]), "m%03d", i);
        award(f, 100, p[i % NP], m[i], 1000, 100 + i);
        if (i < REPEAT) {
            award(f, 100, p[i % NP], m[i], 1, 1);
        }
    }
    /* Member i spends at the next partner: flow (p[i], p[i+1]) of i+1. */
    for (int i = 0; i < NP; i++) {
        redeem(f, 200, p[(i + 1) % NP], m[i], p[i], i + 1);
    }
    Coalition__ReportResult *k = kpi(f, "", 100, 300);
    assert_int_equal(k->purchases, NM + REPEAT);
    assert_int_equal(k->purchasers, NM);
    assert_int_equal(k->repeat_purchasers, REPEAT);
    assert_int_equal(k->active_members, NM);
    assert_int_equal(k->purchase_cents, NM * 100 + NM * (NM - 1) / 2 + REPEAT);
    assert_int_equal(k->n_top_flows, REPORT_TOP_FLOWS_MAX);
    assert_int_equal(k->top_flows[0]->points, NP);
    assert_int_equal(k->top_flows[4]->points, NP - 4);
    report_kpi_free(k);

    Coalition__SettlementResult *r = settle(f, 0, 300);
    assert_int_equal(r->n_partners, NP);
    assert_int_equal(r->n_flows, NP);
    assert_statement_consistent(r);
    int64_t outstanding = 0;
    for (int i = 0; i < NP; i++) {
        /* p000 is partners[0] (sorted), and p[NP - 1] in the test's order. */
        const Coalition__PartnerPosition *pos = r->partners[i];
        int j = NP - 1 - i;
        assert_string_equal(pos->partner, p[j]);
        assert_flow(find_flow(r, p[j], p[(j + 1) % NP]), p[j], p[(j + 1) % NP], j + 1,
                    (j + 1) * DPV);
        outstanding += pos->outstanding;
    }
    assert_int_equal(outstanding, NM * 1000 + REPEAT - NP * (NP + 1) / 2);
    report_settlement_free(r);
}

/* Entries that cannot be read, or a redemption that does not say whose
 * points it moves, fail the report instead of giving a wrong one. */
static void test_report_rejects_bad_entries(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 0, "A");
    award(f, 0, "A", "m", 10, 0);
    redeem(f, 20, "A", "m", "", 5);
    Coalition__SettlementResult *r = NULL;
    assert_int_equal(report_settlement(f->s, 0, 30, &r), COALITION_E_VERIFY_FAILED);
    assert_null(r);
    /* Before that entry the ledger reads fine. */
    r = settle(f, 0, 10);
    assert_int_equal(r->through_seq, 2);
    report_settlement_free(r);
    r = NULL;

    /* A record too short to hold a hash, and one that does not decode, fail
     * every window (the scan cannot know their time). */
    put_raw(f, 3, "short", 5);
    assert_int_equal(report_settlement(f->s, 0, 10, &r), COALITION_E_VERIFY_FAILED);
    uint8_t junk[40];
    memset(junk, 0xff, sizeof(junk));
    put_raw(f, 3, junk, sizeof(junk));
    assert_int_equal(report_settlement(f->s, 0, 10, &r), COALITION_E_VERIFY_FAILED);
    assert_null(r);
    Coalition__ReportResult *k = NULL;
    assert_int_equal(report_kpi(f->s, "", 0, 10, &k), COALITION_E_VERIFY_FAILED);
    assert_null(k);
}

/* Figures that leave int64 are an error, not a wrapped number. */
static void test_report_rejects_overflow(void **state)
{
    struct report_fixture *f = *state;
    partner_add(f, 0, "A");
    partner_add(f, 0, "B");
    program_set(f, 0, "A", UINT64_MAX / 2); /* just under INT64_MAX mc a point */
    award(f, 0, "A", "m", 4, 0);
    Coalition__SettlementResult *r = NULL;
    Coalition__ReportResult *k = NULL;
    /* The liability of 4 such points. */
    assert_int_equal(report_settlement(f->s, 0, 10, &r), COALITION_E_OVERFLOW);
    assert_int_equal(report_kpi(f->s, "A", 0, 10, &k), COALITION_E_OVERFLOW);
    /* Once they are redeemed the liability is 0, but the flow's value is
     * still too large. */
    redeem(f, 20, "B", "m", "A", 4);
    assert_int_equal(report_settlement(f->s, 0, 30, &r), COALITION_E_OVERFLOW);
    assert_int_equal(report_settlement(f->s, 25, 30, &r), COALITION_E_OVERFLOW);
    assert_null(r);
    assert_null(k);
}

/* ---------------------------------------------------------------------------
 * A seeded random ledger against a model */

#define PROP_PARTNERS 4
#define PROP_MEMBERS  12
#define PROP_OPS      600
#define PROP_EVENTS   (PROP_OPS * 8)

static const char *const prop_partner[PROP_PARTNERS] = {"p0", "p1", "p2", "p3"};
static const char *const prop_member[PROP_MEMBERS] = {"m0", "m1", "m2", "m3", "m4",  "m5",
                                                      "m6", "m7", "m8", "m9", "m10", "m11"};

/* What one posting did to the figures, with its time and value. */
enum prop_what { PROP_ISSUE, PROP_EXPIRE, PROP_FLOW, PROP_VALUE };
struct prop_event {
    uint64_t time_ms;
    enum prop_what what;
    int p, q;
    int64_t points, value_mc; /* PROP_VALUE: the new point value in value_mc */
};

struct prop_model {
    uint64_t rng;
    uint64_t pv[PROP_PARTNERS];
    int64_t spendable[PROP_MEMBERS][PROP_PARTNERS];
    int64_t held[PROP_MEMBERS][PROP_PARTNERS];
    int64_t redeemed[PROP_MEMBERS][PROP_PARTNERS][PROP_PARTNERS]; /* m, issuer, at */
    struct prop_event ev[PROP_EVENTS];
    size_t n_ev;
};

static uint64_t prop_rand(struct prop_model *md, uint64_t n)
{
    md->rng += 0x9e3779b97f4a7c15ull;
    uint64_t z = md->rng;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) % n;
}

static void prop_event(struct prop_model *md, uint64_t t, enum prop_what what, int p, int q,
                       int64_t points)
{
    assert_true(md->n_ev < PROP_EVENTS);
    md->ev[md->n_ev++] = (struct prop_event){t, what, p, q, points, points * (int64_t)md->pv[p]};
}

/* Checks the statement over [from, to) against the events. */
static void prop_check_window(struct report_fixture *f, const struct prop_model *md, uint64_t from,
                              uint64_t to)
{
    int64_t issued[PROP_PARTNERS] = {0}, issued_t[PROP_PARTNERS] = {0};
    int64_t expired[PROP_PARTNERS] = {0}, expired_t[PROP_PARTNERS] = {0};
    int64_t pts[PROP_PARTNERS][PROP_PARTNERS] = {{0}}, val[PROP_PARTNERS][PROP_PARTNERS] = {{0}};
    int64_t spent_t[PROP_PARTNERS] = {0}, redeemed_t[PROP_PARTNERS] = {0};
    uint64_t pv[PROP_PARTNERS];
    for (int i = 0; i < PROP_PARTNERS; i++) {
        pv[i] = RULES_DEFAULT_POINT_VALUE_MC;
    }
    for (size_t i = 0; i < md->n_ev && md->ev[i].time_ms < to; i++) {
        const struct prop_event *e = &md->ev[i];
        bool in = e->time_ms >= from;
        switch (e->what) {
        case PROP_ISSUE:
            issued_t[e->p] += e->points;
            issued[e->p] += in ? e->points : 0;
            break;
        case PROP_EXPIRE:
            expired_t[e->p] += e->points;
            expired[e->p] += in ? e->points : 0;
            break;
        case PROP_FLOW:
            spent_t[e->p] += e->points;
            redeemed_t[e->q] += e->points;
            pts[e->p][e->q] += in ? e->points : 0;
            val[e->p][e->q] += in ? e->value_mc : 0;
            break;
        case PROP_VALUE:
            pv[e->p] = (uint64_t)e->value_mc;
            break;
        }
    }
    Coalition__SettlementResult *r = settle(f, from, to);
    assert_statement_consistent(r);
    size_t n_flows = 0;
    for (int p = 0; p < PROP_PARTNERS; p++) {
        for (int q = 0; q < PROP_PARTNERS; q++) {
            const Coalition__SettlementFlow *fl = find_flow(r, prop_partner[p], prop_partner[q]);
            if (pts[p][q] == 0 && val[p][q] == 0) {
                assert_null(fl);
                continue;
            }
            n_flows++;
            assert_flow(fl, prop_partner[p], prop_partner[q], pts[p][q], val[p][q]);
        }
    }
    assert_int_equal(r->n_flows, n_flows);
    assert_int_equal(r->n_partners, PROP_PARTNERS);
    for (int p = 0; p < PROP_PARTNERS; p++) {
        const Coalition__PartnerPosition *pos = find_pos(r, prop_partner[p]);
        assert_non_null(pos);
        assert_int_equal(pos->issued, issued[p]);
        assert_int_equal(pos->issued_total, issued_t[p]);
        assert_int_equal(pos->expired, expired[p]);
        assert_int_equal(pos->expired_total, expired_t[p]);
        assert_int_equal(pos->redeemed_total, redeemed_t[p]);
        int64_t outstanding = issued_t[p] - spent_t[p] - expired_t[p];
        assert_int_equal(pos->outstanding, outstanding);
        assert_int_equal(pos->liability_mc, outstanding * (int64_t)pv[p]);
    }
    report_settlement_free(r);
}

static void test_report_property_random_ledger(void **state)
{
    struct report_fixture *f = *state;
    struct prop_model *md = calloc(1, sizeof(*md));
    assert_non_null(md);
    md->rng = 20240611;
    for (int p = 0; p < PROP_PARTNERS; p++) {
        md->pv[p] = RULES_DEFAULT_POINT_VALUE_MC;
        partner_add(f, 1000, prop_partner[p]);
    }
    uint64_t t = 1000;
    for (int op = 0; op < PROP_OPS; op++) {
        t += prop_rand(md, 3) * 10;
        int m = (int)prop_rand(md, PROP_MEMBERS), p = (int)prop_rand(md, PROP_PARTNERS),
            q = (int)prop_rand(md, PROP_PARTNERS);
        const char *M = prop_member[m], *P = prop_partner[p], *Q = prop_partner[q];
        int64_t have = md->spendable[m][p];
        int64_t x = have > 0 ? 1 + (int64_t)prop_rand(md, (uint64_t)have) : 0;
        switch (prop_rand(md, 10)) {
        case 0:
        case 1:
        case 2: {
            int64_t pts = 1 + (int64_t)prop_rand(md, 100);
            award(f, t, P, M, pts, (int64_t)prop_rand(md, 3) * 1000);
            md->spendable[m][p] += pts;
            prop_event(md, t, PROP_ISSUE, p, p, pts);
            break;
        }
        case 3:
        case 4: {
            /* A redemption at Q spending every issuer's points in turn. */
            struct post posts[PROP_PARTNERS];
            size_t n = 0;
            int64_t want = 1 + (int64_t)prop_rand(md, 120);
            for (int i = 0; i < PROP_PARTNERS && want > 0; i++) {
                int64_t take = md->spendable[m][i] < want ? md->spendable[m][i] : want;
                if (take > 0) {
                    posts[n++] = (struct post){acct('m', M), acct('r', Q), prop_partner[i], take};
                    md->spendable[m][i] -= take;
                    md->redeemed[m][i][q] += take;
                    prop_event(md, t, PROP_FLOW, i, q, take);
                    want -= take;
                }
            }
            if (n > 0) {
                Coalition__Txn tx = txn(TXN_KIND(REDEEM), Q, M);
                put_entry(f, t, &tx, posts, n);
            }
            break;
        }
        case 5: {
            int64_t red = md->redeemed[m][p][q];
            if (red > 0) {
                int64_t y = 1 + (int64_t)prop_rand(md, (uint64_t)red);
                reverse_redeem(f, t, Q, M, P, y);
                md->redeemed[m][p][q] -= y;
                md->spendable[m][p] += y;
                prop_event(md, t, PROP_FLOW, p, q, -y);
            }
            break;
        }
        case 6:
            if (x > 0) {
                reverse_award(f, t, P, M, x);
                md->spendable[m][p] -= x;
                prop_event(md, t, PROP_ISSUE, p, p, -x);
            }
            break;
        case 7:
            if (x > 0) {
                expire(f, t, M, P, x);
                md->spendable[m][p] -= x;
                prop_event(md, t, PROP_EXPIRE, p, p, x);
            }
            break;
        case 8:
            if (x > 0) {
                /* Hold; then capture part and release the rest, or keep
                 * it held (held points are still outstanding). */
                hold(f, t, Q, M, P, x);
                md->spendable[m][p] -= x;
                md->held[m][p] += x;
                if (prop_rand(md, 3) > 0) {
                    int64_t c = (int64_t)prop_rand(md, (uint64_t)x + 1);
                    if (c > 0) {
                        capture(f, t, Q, M, P, c);
                        md->redeemed[m][p][q] += c;
                        prop_event(md, t, PROP_FLOW, p, q, c);
                    }
                    if (x - c > 0) {
                        Coalition__Txn tx = txn(TXN_KIND(RELEASE), Q, NULL);
                        struct post back = {acct('h', M), acct('m', M), P, x - c};
                        put_entry(f, t, &tx, &back, 1);
                        md->spendable[m][p] += x - c;
                    }
                    md->held[m][p] -= x;
                }
            }
            break;
        default:
            if (prop_rand(md, 2) == 0 && x > 0) {
                int to = (m + 1 + (int)prop_rand(md, PROP_MEMBERS - 1)) % PROP_MEMBERS;
                Coalition__Txn tx = txn(TXN_KIND(TRANSFER), P, M);
                tx.member_to = (char *)prop_member[to];
                struct post move = {acct('m', M), acct('m', prop_member[to]), P, x};
                put_entry(f, t, &tx, &move, 1);
                md->spendable[m][p] -= x;
                md->spendable[to][p] += x;
            } else {
                uint64_t v = 1 + prop_rand(md, 5000);
                program_set(f, t, P, v);
                md->pv[p] = v;
                prop_event(md, t, PROP_VALUE, p, p, 0);
                md->ev[md->n_ev - 1].value_mc = (int64_t)v;
            }
            break;
        }
    }
    /* Through the end: each issuer's outstanding is exactly what members
     * hold of its points, spendable or held. */
    Coalition__SettlementResult *r = settle(f, 1000, t + 1);
    assert_int_equal(r->through_seq, f->seq);
    int64_t sum_out = 0, sum_issued = 0, sum_redeemed = 0, sum_expired = 0;
    for (int p = 0; p < PROP_PARTNERS; p++) {
        int64_t holds = 0;
        for (int m = 0; m < PROP_MEMBERS; m++) {
            holds += md->spendable[m][p] + md->held[m][p];
        }
        const Coalition__PartnerPosition *pos = find_pos(r, prop_partner[p]);
        assert_int_equal(pos->outstanding, holds);
        assert_int_equal(pos->liability_mc, holds * (int64_t)md->pv[p]);
        sum_out += pos->outstanding;
        sum_issued += pos->issued_total;
        sum_redeemed += pos->redeemed_total;
        sum_expired += pos->expired_total;
    }
    assert_int_equal(sum_out, sum_issued - sum_redeemed - sum_expired);
    report_settlement_free(r);
    prop_check_window(f, md, 1000, t + 1);
    for (int i = 0; i < 8; i++) {
        uint64_t a = 1000 + prop_rand(md, t - 1000 + 10);
        uint64_t b = 1000 + prop_rand(md, t - 1000 + 10);
        if (a == b) {
            b++;
        }
        prop_check_window(f, md, a < b ? a : b, a < b ? b : a);
    }
    free(md);
}

/* ---------------------------------------------------------------------------
 * Through the real ledger */

/* A transaction for ledger_apply (strings borrowed). */
static Coalition__Txn ltx(Coalition__TxnKind kind, const char *partner, const char *txn_id,
                          const char *member, int64_t points)
{
    Coalition__Txn t;
    coalition__txn__init(&t);
    t.kind = kind;
    t.partner = (char *)(partner != NULL ? partner : "");
    t.txn_id = (char *)(txn_id != NULL ? txn_id : "");
    t.member = (char *)(member != NULL ? member : "");
    t.points = points;
    return t;
}

/* Applies `txns` as the next batch at `time_ms`; every one must be accepted.
 * Returns the points of the last. */
static int64_t ledger_ok(struct ledger *l, uint64_t *index, uint64_t time_ms, Coalition__Txn *txns,
                         size_t n)
{
    Coalition__Txn *ptrs[16];
    struct ledger_result res[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = &txns[i];
    }
    assert_int_equal(ledger_apply(l, ++*index, time_ms, ptrs, n, res), 0);
    for (size_t i = 0; i < n; i++) {
        if (res[i].code != 0) {
            fprintf(stderr, "txn %zu (%s) rejected: %s\n", i, txns[i].txn_id,
                    coalition_errname(res[i].code));
        }
        assert_int_equal(res[i].code, 0);
        assert_false(res[i].duplicate);
    }
    return res[n - 1].points;
}

/* Sums of the stored account balances ('a' kind ':' id -> be64) by kind, and
 * the balance of one account. */
static int64_t stored_account(struct store *s, char kind, const char *id)
{
    char key[80];
    int n = snprintf(key, sizeof(key), "a%c:%s", kind, id);
    void *v = NULL;
    size_t vlen = 0;
    int rv = store_get(s, NULL, key, (size_t)n, &v, &vlen);
    if (rv == STORE_NOT_FOUND) {
        return 0;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(vlen, 8);
    int64_t bal = (int64_t)bytes_get_be64(v);
    free(v);
    return bal;
}

static int64_t stored_kind_sum(struct store *s, char kind)
{
    char prefix[3] = {'a', kind, ':'};
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, NULL, NULL, prefix, sizeof(prefix), &it), 0);
    int64_t sum = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t vlen = 0;
        const uint8_t *v = store_iter_value(it, &vlen);
        assert_int_equal(vlen, 8);
        sum += (int64_t)bytes_get_be64(v);
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
    return sum;
}

/* Points left in the stored lots ('l' keys: spendable points, not held)
 * of one issuer. */
static int64_t stored_lots_of(struct store *s, const char *issuer)
{
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, NULL, NULL, "l", 1, &it), 0);
    int64_t sum = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t vlen = 0;
        const uint8_t *v = store_iter_value(it, &vlen);
        Coalition__Lot *lot = coalition__lot__unpack(NULL, vlen, v);
        assert_non_null(lot);
        if (strcmp(lot->issuer, issuer) == 0) {
            sum += lot->left;
        }
        coalition__lot__free_unpacked(lot, NULL);
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
    return sum;
}

/* Real transactions through ledger_apply: the statement's flows and
 * positions are what the ledger did (lots spent oldest first across
 * issuers, a reversal restoring the last taken, a partial capture, a
 * transfer keeping the issuer, a program change, the expiry sweep), and its
 * totals equal the ledger's own account balances. */
static void test_report_matches_ledger_balances(void **state)
{
    struct report_fixture *f = *state;
    struct ledger *l = NULL;
    char *err = NULL;
    assert_int_equal(ledger_open(f->s, &l, &err), 0);
    uint64_t index = 0;
    const uint64_t t0 = 1700000000000ull, day = 86400000ull;

    Coalition__Program prog_a;
    coalition__program__init(&prog_a);
    prog_a.point_value_mc = 2000;
    Coalition__Rules rules;
    coalition__rules__init(&rules);
    rules.expiry_months = 1;
    Coalition__Txn setup_txns[9];
    const char *ps[] = {"A", "B", "C"}, *ms[] = {"m1", "m2", "m3"};
    for (int i = 0; i < 3; i++) {
        setup_txns[i] = ltx(TXN_KIND(PARTNER_ADD), ps[i], NULL, NULL, 0);
        setup_txns[i].name = (char *)ps[i];
        setup_txns[3 + i] = ltx(TXN_KIND(MEMBER_ADD), NULL, NULL, ms[i], 0);
    }
    setup_txns[6] = ltx(TXN_KIND(PROGRAM_SET), "A", "pa1", NULL, 0);
    setup_txns[6].program = &prog_a;
    setup_txns[7] = ltx(TXN_KIND(RULES_SET), NULL, "rules1", NULL, 0);
    setup_txns[7].rules = &rules;
    ledger_ok(l, &index, t0, setup_txns, 8);

    Coalition__Txn awards[5] = {
        ltx(TXN_KIND(AWARD), "A", "a1", "m1", 100), ltx(TXN_KIND(AWARD), "B", "b1", "m1", 50),
        ltx(TXN_KIND(AWARD), "C", "c1", "m2", 0),   ltx(TXN_KIND(AWARD), "A", "a2", "m3", 30),
        ltx(TXN_KIND(AWARD), "A", "a3", "m2", 40),
    };
    awards[2].purchase_cents = 10000; /* C has no program: 1 point a unit */
    ledger_ok(l, &index, t0 + 1000, awards, 5);
    /* 120 points of m1 at B: A's lot (older) first, then 20 of B's. */
    Coalition__Txn r1 = ltx(TXN_KIND(REDEEM), "B", "r1", "m1", 120);
    ledger_ok(l, &index, t0 + 2000, &r1, 1);
    /* B refunds 10: the last points taken (B's) go back. */
    Coalition__Txn rv1 = ltx(TXN_KIND(REVERSE), "B", "rv1", NULL, 10);
    rv1.of_txn = "r1";
    Coalition__Txn rv2 = ltx(TXN_KIND(REVERSE), "A", "rv2", NULL, 15);
    rv2.of_txn = "a3";
    Coalition__Txn rv[2] = {rv1, rv2};
    ledger_ok(l, &index, t0 + 3000, rv, 2);
    /* A hold of 40 at C captured for 25 (15 back); another of 5 stays open. */
    Coalition__Txn h[3] = {ltx(TXN_KIND(HOLD), "C", "h1", "m2", 40),
                           ltx(TXN_KIND(CAPTURE), "C", "cp1", NULL, 25),
                           ltx(TXN_KIND(HOLD), "C", "h2", "m2", 5)};
    h[1].of_txn = "h1";
    ledger_ok(l, &index, t0 + 4000, h, 3);
    Coalition__Txn t1 = ltx(TXN_KIND(TRANSFER), "A", "t1", "m3", 10);
    t1.member_to = "m1";
    ledger_ok(l, &index, t0 + 5000, &t1, 1);
    /* A's points are worth 3000 from here on. */
    Coalition__Program prog_a2 = prog_a;
    prog_a2.point_value_mc = 3000;
    Coalition__Txn later[2] = {ltx(TXN_KIND(PROGRAM_SET), "A", "pa2", NULL, 0),
                               ltx(TXN_KIND(REDEEM), "C", "r2", "m3", 20)};
    later[0].program = &prog_a2;
    ledger_ok(l, &index, t0 + 6000, later, 2);
    /* A month later the sweep expires what m1 has left: A's 10 moved to it
     * (a transfer keeps the lot's issuer and age) and B's 40. */
    Coalition__Txn ex = ltx(TXN_KIND(EXPIRE), NULL, NULL, "m1", 0);
    assert_int_equal(ledger_ok(l, &index, t0 + 40 * day, &ex, 1), 50);

    struct ledger_verify_report vrep;
    assert_int_equal(ledger_verify(f->s, &vrep), 0);

    /* Before the program change. */
    Coalition__SettlementResult *r = settle(f, t0, t0 + 5500);
    assert_int_equal(r->n_flows, 3);
    assert_flow(r->flows[0], "A", "B", 100, 100 * 2000);
    assert_flow(r->flows[1], "B", "B", 10, 10 * DPV);
    assert_flow(r->flows[2], "C", "C", 25, 25 * DPV);
    assert_statement_consistent(r);
    report_settlement_free(r);

    r = settle(f, t0, t0 + 41 * day);
    assert_int_equal(r->through_seq, vrep.entries_checked);
    assert_int_equal(r->n_flows, 4);
    assert_flow(r->flows[0], "A", "B", 100, 100 * 2000);
    assert_flow(r->flows[1], "A", "C", 20, 20 * 3000);
    assert_flow(r->flows[2], "B", "B", 10, 10 * DPV);
    assert_flow(r->flows[3], "C", "C", 25, 25 * DPV);
    assert_statement_consistent(r);
    const Coalition__PartnerPosition *a = find_pos(r, "A"), *b = find_pos(r, "B"),
                                     *c = find_pos(r, "C");
    assert_int_equal(a->issued, 100 + 30 + 40 - 15);
    assert_int_equal(a->expired, 10);
    assert_int_equal(a->outstanding, 25);
    assert_int_equal(a->liability_mc, 25 * 3000);
    assert_int_equal(a->net_mc, -(100 * 2000 + 20 * 3000));
    assert_int_equal(b->issued, 50);
    assert_int_equal(b->expired, 40);
    assert_int_equal(b->outstanding, 0);
    assert_int_equal(b->redeemed_at, 110);
    assert_int_equal(b->net_mc, 100 * 2000);
    assert_int_equal(c->issued, 100);
    assert_int_equal(c->outstanding, 75);
    assert_int_equal(c->redeemed_at, 45);
    assert_int_equal(c->net_mc, 20 * 3000);

    /* The statement's totals are the ledger's own balances: issuance
     * accounts hold minus what was issued, redemption and breakage accounts
     * what was redeemed at and expired from the partner, and the members'
     * accounts (spendable and held) hold every outstanding point; per
     * issuer, the lots hold it but for the open hold (5 of C's). */
    int64_t outstanding = 0;
    for (size_t i = 0; i < r->n_partners; i++) {
        const Coalition__PartnerPosition *p = r->partners[i];
        assert_int_equal(p->issued_total, -stored_account(f->s, 'i', p->partner));
        assert_int_equal(p->redeemed_total, stored_account(f->s, 'r', p->partner));
        assert_int_equal(p->expired_total, stored_account(f->s, 'x', p->partner));
        int64_t held = strcmp(p->partner, "C") == 0 ? 5 : 0;
        assert_int_equal(p->outstanding, stored_lots_of(f->s, p->partner) + held);
        outstanding += p->outstanding;
    }
    assert_int_equal(stored_account(f->s, 'h', "m2"), 5);
    assert_int_equal(outstanding, stored_kind_sum(f->s, 'm') + stored_kind_sum(f->s, 'h'));
    assert_int_equal(-stored_kind_sum(f->s, 'i'),
                     stored_kind_sum(f->s, 'r') + stored_kind_sum(f->s, 'x') + outstanding);
    report_settlement_free(r);

    /* KPIs: C's purchase and its redemptions (the capture, m3's). */
    Coalition__ReportResult *k = kpi(f, "C", t0, t0 + 41 * day);
    assert_int_equal(k->purchases, 1);
    assert_int_equal(k->purchase_cents, 10000);
    assert_int_equal(k->purchasers, 1);
    assert_int_equal(k->active_members, 2);
    assert_int_equal(k->points_issued, 100);
    assert_int_equal(k->points_redeemed, 45);
    assert_int_equal(k->n_top_flows, 1);
    assert_flow(k->top_flows[0], "A", "C", 20, 20 * 3000);
    report_kpi_free(k);
    k = kpi(f, "", t0, t0 + 41 * day);
    assert_int_equal(k->active_members, 3);
    assert_int_equal(k->points_expired, 50);
    assert_int_equal(k->outstanding, 100);
    report_kpi_free(k);

    ledger_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_report_rejects_empty_window),
        T(test_report_empty_ledger),
        T(test_report_flows_value_follows_program),
        T(test_report_payments_net_pairs),
        T(test_report_reversals_net),
        T(test_report_expiry_breakage),
        T(test_report_window_boundaries),
        T(test_report_kpi_counts),
        T(test_report_kpi_top_flows),
        T(test_report_many_partners_and_members),
        T(test_report_rejects_bad_entries),
        T(test_report_rejects_overflow),
        T(test_report_property_random_ledger),
        T(test_report_matches_ledger_balances),
#undef T
    };
    return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
