/* The ledger test fixture (contract in ledger_fixture.h): a ledger on a
 * real store in a temporary directory, batches at chosen times, builders and
 * raw reads of the store.  Nothing here knows a test's expectations. */
#include "ledger_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "tmpdir.h"

/* ---------------------------------------------------------------------------
 * Open, close, apply */

void fixture_open_dir(const char *dir, struct store **s, struct ledger **l)
{
    char *err = NULL;
    int rv = store_open(dir, s, &err);
    if (rv != 0) {
        fprintf(stderr, "store_open %s: %s\n", dir, err != NULL ? err : "?");
    }
    free(err);
    assert_int_equal(rv, 0);
    err = NULL;
    rv = ledger_open(*s, l, &err);
    if (rv != 0) {
        fprintf(stderr, "ledger_open: %s\n", err != NULL ? err : "?");
    }
    free(err);
    assert_int_equal(rv, 0);
}

void fixture_close_dir(struct store *s, struct ledger *l)
{
    ledger_close(l);
    store_close(s);
}

void fixture_reopen(struct ledger_fixture *f)
{
    fixture_close_dir(f->s, f->l);
    f->s = NULL;
    f->l = NULL;
    fixture_open_dir(f->dir, &f->s, &f->l);
}

int fixture_setup(void **state)
{
    struct ledger_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    /* Room left in dir for the subdirectories some tests make. */
    assert_int_equal(tmpdir_make(f->dir, sizeof(f->dir) - 32, "ledger_fixture"), 0);
    fixture_open_dir(f->dir, &f->s, &f->l);
    *state = f;
    return 0;
}

int fixture_teardown(void **state)
{
    struct ledger_fixture *f = *state;
    fixture_close_dir(f->s, f->l);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

void fixture_apply_batch(struct ledger_fixture *f, uint64_t time_ms, Coalition__Txn *txns, size_t n,
                         struct ledger_result *results)
{
    Coalition__Txn *ptrs[FIXTURE_BATCH_MAX];
    assert_true(n <= FIXTURE_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = &txns[i];
    }
    assert_int_equal(ledger_apply(f->l, ++f->index, time_ms, ptrs, n, results), 0);
    struct ledger_head h;
    ledger_get_head(f->l, &h);
    assert_int_equal(h.applied_index, f->index);
    assert_int_equal(h.time_ms, time_ms);
}

struct ledger_result fixture_apply(struct ledger_fixture *f, uint64_t time_ms, Coalition__Txn t)
{
    struct ledger_result r;
    memset(&r, 0x5a, sizeof(r));
    fixture_apply_batch(f, time_ms, &t, 1, &r);
    return r;
}

struct ledger_head fixture_head(const struct ledger_fixture *f)
{
    struct ledger_head h;
    ledger_get_head(f->l, &h);
    return h;
}

struct ledger_result fixture_expect_ok(struct ledger_fixture *f, uint64_t time_ms, Coalition__Txn t)
{
    struct ledger_head before = fixture_head(f);
    struct ledger_result r = fixture_apply(f, time_ms, t);
    if (r.code != 0) {
        fail_msg("kind %d txn '%s': expected OK, got %s", (int)t.kind, t.txn_id,
                 coalition_errname(r.code));
    }
    assert_false(r.duplicate);
    assert_int_equal(r.seq, before.seq + 1);
    assert_int_equal(r.time_ms, time_ms);
    struct ledger_head after = fixture_head(f);
    assert_int_equal(after.seq, before.seq + 1);
    assert_memory_not_equal(after.hash, before.hash, LEDGER_HASH_LEN);
    return r;
}

void fixture_expect_reject(struct ledger_fixture *f, uint64_t time_ms, Coalition__Txn t, int code)
{
    struct ledger_head before = fixture_head(f);
    uint64_t fp = fixture_fingerprint(f->s);
    struct ledger_result r = fixture_apply(f, time_ms, t);
    if (r.code != code) {
        fail_msg("kind %d txn '%s': expected %s, got %s", (int)t.kind, t.txn_id,
                 coalition_errname(code), coalition_errname(r.code));
    }
    assert_int_equal(r.seq, 0);
    assert_false(r.duplicate);
    struct ledger_head after = fixture_head(f);
    assert_int_equal(after.seq, before.seq);
    assert_memory_equal(after.hash, before.hash, LEDGER_HASH_LEN);
    assert_int_equal(after.applied_index, before.applied_index + 1);
    assert_int_equal(fixture_fingerprint(f->s), fp);
}

int64_t fixture_balance(struct ledger_fixture *f, const char *member)
{
    int64_t points = -1;
    assert_int_equal(ledger_balance(f->l, member, &points), 0);
    return points;
}

struct ledger_balance fixture_balance_at(struct ledger_fixture *f, uint64_t at_ms,
                                         const char *member)
{
    struct ledger_balance b;
    memset(&b, 0x5a, sizeof(b));
    int rv = ledger_balance_at(f->l, at_ms, member, &b);
    if (rv != 0) {
        fail_msg("ledger_balance_at %s: %s", member, coalition_errname(rv));
    }
    assert_int_equal(b.at_ms, at_ms);
    return b;
}

void fixture_verify_ok(struct ledger_fixture *f)
{
    struct ledger_verify_report rep;
    int rv = ledger_verify(f->s, &rep);
    if (rv != 0) {
        fail_msg("verify: %s at seq %llu: %s", coalition_errname(rv),
                 (unsigned long long)rep.broken_seq, rep.detail);
    }
    struct ledger_head h = fixture_head(f);
    assert_int_equal(rep.entries_checked, h.seq);
    assert_memory_equal(rep.head_hash, h.hash, LEDGER_HASH_LEN);
    assert_int_equal(rep.broken_seq, 0);
    assert_string_equal(rep.detail, "");
}

/* ---------------------------------------------------------------------------
 * Raw reads */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int64_t fixture_account(struct store *s, char kind, const char *id)
{
    char key[128];
    int n = snprintf(key, sizeof(key), "a%c:%s", kind, id);
    assert_true(n > 0 && (size_t)n < sizeof(key));
    void *v = NULL;
    size_t len = 0;
    int rv = store_get(s, NULL, key, (size_t)n, &v, &len);
    if (rv == STORE_NOT_FOUND && (kind == 'h' || kind == 'x')) {
        return 0;
    }
    if (rv != 0) {
        fail_msg("account %c:%s: %s", kind, id, rv == STORE_NOT_FOUND ? "absent" : "error");
    }
    assert_int_equal(len, 8);
    uint64_t x = get_be64(v);
    free(v);
    return (int64_t)x;
}

Coalition__Entry *fixture_entry(struct store *s, uint64_t seq, uint8_t hash[LEDGER_HASH_LEN])
{
    uint8_t key[9];
    key[0] = 'e';
    put_be64(key + 1, seq);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(store_get(s, NULL, key, sizeof(key), &v, &len), 0);
    assert_true(len > LEDGER_HASH_LEN);
    if (hash != NULL) {
        memcpy(hash, v, LEDGER_HASH_LEN);
    }
    Coalition__Entry *e =
        coalition__entry__unpack(NULL, len - LEDGER_HASH_LEN, (uint8_t *)v + LEDGER_HASH_LEN);
    free(v);
    assert_non_null(e);
    assert_int_equal(e->seq, seq);
    return e;
}

size_t fixture_lots(struct store *s, const char *member, struct fixture_lot *out, size_t cap)
{
    char pfx[LEDGER_ID_MAX + 2];
    size_t mlen = strlen(member);
    assert_true(mlen > 0 && mlen <= LEDGER_ID_MAX);
    pfx[0] = 'l';
    memcpy(pfx + 1, member, mlen);
    pfx[1 + mlen] = '\0';
    size_t plen = mlen + 2;
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, NULL, NULL, pfx, plen, &it), 0);
    size_t n = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = store_iter_key(it, &klen);
        const uint8_t *v = store_iter_value(it, &vlen);
        assert_int_equal(klen, plen + 16);
        Coalition__Lot *lot = coalition__lot__unpack(NULL, vlen, v);
        assert_non_null(lot);
        if (n < cap) {
            struct fixture_lot *o = &out[n];
            snprintf(o->issuer, sizeof(o->issuer), "%s", lot->issuer);
            o->left = lot->left;
            o->earned_ms = lot->earned_ms;
            o->expires_ms = lot->expires_ms;
            o->unlock_ms = lot->unlock_ms;
            o->origin = get_be64(k + plen);
            o->arrival = get_be64(k + plen + 8);
        }
        coalition__lot__free_unpacked(lot, NULL);
        n++;
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
    return n;
}

Coalition__TxnRecord *fixture_txn_record(struct store *s, const char *partner, const char *txn_id)
{
    char key[2 + 2 * LEDGER_ID_MAX + 2];
    int n = snprintf(key, sizeof(key), "t%s", partner != NULL ? partner : "");
    assert_true(n > 0);
    size_t len = (size_t)n + 1; /* the 0 after the partner */
    size_t tlen = strlen(txn_id);
    assert_true(len + tlen <= sizeof(key));
    key[n] = '\0';
    memcpy(key + len, txn_id, tlen);
    len += tlen;
    void *v = NULL;
    size_t vlen = 0;
    int rv = store_get(s, NULL, key, len, &v, &vlen);
    if (rv == STORE_NOT_FOUND) {
        return NULL;
    }
    assert_int_equal(rv, 0);
    Coalition__TxnRecord *rec = coalition__txn_record__unpack(NULL, vlen, v);
    free(v);
    assert_non_null(rec);
    return rec;
}

Coalition__MemberRecord *fixture_member_record(struct store *s, const char *member)
{
    char key[LEDGER_ID_MAX + 2];
    int n = snprintf(key, sizeof(key), "M%s", member);
    assert_true(n > 1 && (size_t)n < sizeof(key));
    void *v = NULL;
    size_t len = 0;
    int rv = store_get(s, NULL, key, (size_t)n, &v, &len);
    if (rv == STORE_NOT_FOUND) {
        return NULL;
    }
    assert_int_equal(rv, 0);
    Coalition__MemberRecord *rec = coalition__member_record__unpack(NULL, len, v);
    free(v);
    assert_non_null(rec);
    return rec;
}

uint64_t fixture_fingerprint(struct store *s)
{
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, NULL, NULL, "", 0, &it), 0);
    uint64_t h = 1469598103934665603ull;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = store_iter_key(it, &klen);
        const uint8_t *v = store_iter_value(it, &vlen);
        if (klen == 5 && memcmp(k, "mhead", 5) == 0) {
            continue;
        }
        uint8_t lens[16];
        put_be64(lens, klen);
        put_be64(lens + 8, vlen);
        for (size_t i = 0; i < sizeof(lens); i++) {
            h = (h ^ lens[i]) * 1099511628211ull;
        }
        for (size_t i = 0; i < klen; i++) {
            h = (h ^ k[i]) * 1099511628211ull;
        }
        for (size_t i = 0; i < vlen; i++) {
            h = (h ^ v[i]) * 1099511628211ull;
        }
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
    return h;
}

/* ---------------------------------------------------------------------------
 * Builders */

static Coalition__Txn txn_new(Coalition__TxnKind kind)
{
    Coalition__Txn t;
    coalition__txn__init(&t);
    t.kind = kind;
    return t;
}

/* Sets a string field unless `s` is NULL (the field stays empty). */
static void set_str(char **field, const char *s)
{
    if (s != NULL) {
        *field = (char *)s;
    }
}

Coalition__Txn tx_partner(const char *partner, const char *name)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_PARTNER_ADD);
    set_str(&t.partner, partner);
    set_str(&t.name, name);
    return t;
}

Coalition__Txn tx_member(const char *member, const char *card)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_MEMBER_ADD);
    set_str(&t.member, member);
    set_str(&t.card, card);
    return t;
}

Coalition__Txn tx_award(const char *partner, const char *txn_id, const char *member, int64_t points)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_AWARD);
    set_str(&t.partner, partner);
    set_str(&t.txn_id, txn_id);
    set_str(&t.member, member);
    t.points = points;
    return t;
}

Coalition__Txn tx_purchase(const char *partner, const char *txn_id, const char *member,
                           int64_t purchase_cents, int64_t paid_points_cents, const char *category)
{
    Coalition__Txn t = tx_award(partner, txn_id, member, 0);
    t.purchase_cents = purchase_cents;
    t.paid_points_cents = paid_points_cents;
    set_str(&t.category, category);
    return t;
}

Coalition__Txn tx_redeem(const char *partner, const char *txn_id, const char *member,
                         int64_t points)
{
    Coalition__Txn t = tx_award(partner, txn_id, member, points);
    t.kind = COALITION__TXN_KIND__TXN_REDEEM;
    return t;
}

Coalition__Txn tx_transfer(const char *partner, const char *txn_id, const char *from,
                           const char *to, int64_t points)
{
    Coalition__Txn t = tx_award(partner, txn_id, from, points);
    t.kind = COALITION__TXN_KIND__TXN_TRANSFER;
    set_str(&t.member_to, to);
    return t;
}

Coalition__Txn tx_reverse(const char *partner, const char *txn_id, const char *of_txn,
                          int64_t points)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_REVERSE);
    set_str(&t.partner, partner);
    set_str(&t.txn_id, txn_id);
    set_str(&t.of_txn, of_txn);
    t.points = points;
    return t;
}

Coalition__Txn tx_hold(const char *partner, const char *txn_id, const char *member, int64_t points,
                       uint32_t timeout_s)
{
    Coalition__Txn t = tx_award(partner, txn_id, member, points);
    t.kind = COALITION__TXN_KIND__TXN_HOLD;
    t.timeout_s = timeout_s;
    return t;
}

Coalition__Txn tx_capture(const char *partner, const char *txn_id, const char *hold_txn,
                          int64_t points)
{
    Coalition__Txn t = tx_reverse(partner, txn_id, hold_txn, points);
    t.kind = COALITION__TXN_KIND__TXN_CAPTURE;
    return t;
}

Coalition__Txn tx_release(const char *partner, const char *txn_id, const char *hold_txn)
{
    Coalition__Txn t = tx_reverse(partner, txn_id, hold_txn, 0);
    t.kind = COALITION__TXN_KIND__TXN_RELEASE;
    return t;
}

Coalition__Txn tx_program_set(const char *partner, const char *txn_id, Coalition__Program *p)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_PROGRAM_SET);
    set_str(&t.partner, partner);
    set_str(&t.txn_id, txn_id);
    t.program = p;
    return t;
}

Coalition__Txn tx_rules_set(const char *txn_id, Coalition__Rules *r)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_RULES_SET);
    set_str(&t.txn_id, txn_id);
    t.rules = r;
    return t;
}

Coalition__Txn tx_card_add(const char *txn_id, const char *member, const char *card)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_CARD_ADD);
    set_str(&t.txn_id, txn_id);
    set_str(&t.member, member);
    set_str(&t.card, card);
    return t;
}

Coalition__Txn tx_card_replace(const char *txn_id, const char *member, const char *old_card,
                               const char *card)
{
    Coalition__Txn t = tx_card_add(txn_id, member, card);
    t.kind = COALITION__TXN_KIND__TXN_CARD_REPLACE;
    set_str(&t.old_card, old_card);
    return t;
}

Coalition__Txn tx_identify(const char *txn_id, const char *member, ProtobufCBinaryData *keys,
                           size_t n)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_IDENTIFY);
    set_str(&t.txn_id, txn_id);
    set_str(&t.member, member);
    t.lookup_keys = keys;
    t.n_lookup_keys = n;
    return t;
}

Coalition__Txn tx_merge(const char *txn_id, const char *member, const char *into)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_MERGE);
    set_str(&t.txn_id, txn_id);
    set_str(&t.member, member);
    set_str(&t.member_to, into);
    return t;
}

Coalition__Txn tx_erase(const char *txn_id, const char *member)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_ERASE);
    set_str(&t.txn_id, txn_id);
    set_str(&t.member, member);
    return t;
}

Coalition__Txn tx_expire(const char *member)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_EXPIRE);
    set_str(&t.member, member);
    return t;
}

Coalition__Txn tx_hold_timeout(const char *partner, const char *hold_txn)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_HOLD_TIMEOUT);
    set_str(&t.partner, partner);
    set_str(&t.of_txn, hold_txn);
    return t;
}

Coalition__Txn tx_tier_review(const char *member)
{
    Coalition__Txn t = txn_new(COALITION__TXN_KIND__TXN_TIER_REVIEW);
    set_str(&t.member, member);
    return t;
}
