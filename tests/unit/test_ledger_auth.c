/* Authentication and authorization in the ledger state machine: replicated
 * batches (ledger_apply_batch) whose writes come in SignedGroups verified
 * with the keys recorded on the ledger, the genesis INIT, API keys, and what
 * each signer may do.  Real store on disk, real libsodium keys. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth.h"
#include "errors.h"
#include "ledger_fixture.h"
#include "tmpdir.h"

#define T0 1700000000000ull

struct keys {
    uint8_t admin_pk[AUTH_PUBLIC_LEN], admin_sk[AUTH_SECRET_LEN];
    uint8_t acme_pk[AUTH_PUBLIC_LEN], acme_sk[AUTH_SECRET_LEN];
    uint8_t bolt_pk[AUTH_PUBLIC_LEN], bolt_sk[AUTH_SECRET_LEN];
};

static struct keys K;

static int setup(void **state)
{
    assert_int_equal(auth_init(), 0);
    crypto_sign_keypair(K.admin_pk, K.admin_sk);
    crypto_sign_keypair(K.acme_pk, K.acme_sk);
    crypto_sign_keypair(K.bolt_pk, K.bolt_sk);
    return fixture_setup(state);
}

/* Applies one replicated batch of unsigned txns and groups; n_res results. */
static void apply_batch(struct ledger_fixture *f, Coalition__Txn **txns, size_t n_txns,
                        Coalition__SignedGroup **groups, size_t n_groups, struct ledger_result *res,
                        size_t n_res)
{
    Coalition__Batch b = COALITION__BATCH__INIT;
    b.time_ms = T0 + f->index;
    b.txns = txns;
    b.n_txns = n_txns;
    b.groups = groups;
    b.n_groups = n_groups;
    f->index++;
    assert_int_equal(ledger_apply_batch(f->l, f->index, &b, res, n_res), 0);
}

/* Signs `t` alone as `signer` with `sk` and applies it; returns its result. */
static struct ledger_result apply_signed(struct ledger_fixture *f, const char *signer,
                                         const uint8_t *sk, Coalition__Txn t)
{
    Coalition__Txn *one = &t;
    Coalition__SignedGroup g;
    assert_int_equal(auth_group_make(&g, signer, &one, 1, sk), 0);
    Coalition__SignedGroup *gp = &g;
    struct ledger_result res;
    apply_batch(f, NULL, 0, &gp, 1, &res, 1);
    auth_group_clear(&g);
    return res;
}

static struct ledger_result apply_unsigned(struct ledger_fixture *f, Coalition__Txn t)
{
    Coalition__Txn *one = &t;
    struct ledger_result res;
    apply_batch(f, &one, 1, NULL, 0, &res, 1);
    return res;
}

static Coalition__Txn tx_init(const uint8_t *pk)
{
    Coalition__Txn t = COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_INIT;
    t.public_key.data = (uint8_t *)pk;
    t.public_key.len = AUTH_PUBLIC_LEN;
    return t;
}

static Coalition__Txn tx_partner_key(const char *id, const uint8_t *pk)
{
    Coalition__Txn t = tx_partner(id, id);
    t.public_key.data = (uint8_t *)pk;
    t.public_key.len = AUTH_PUBLIC_LEN;
    return t;
}

static void expect_refused(struct ledger_fixture *f, const char *signer, const uint8_t *sk,
                           Coalition__Txn t, int code);

static void expect_refused_early(struct ledger_fixture *f, Coalition__Txn t)
{
    expect_refused(f, "acme", K.acme_sk, t, COALITION_E_FORBIDDEN);
}

/* Genesis, partners acme and bolt with their keys, member m1 with 100 points
 * from acme. */
static void coalition(struct ledger_fixture *f)
{
    assert_int_equal(apply_unsigned(f, tx_init(K.admin_pk)).code, 0);
    assert_true(ledger_initialized(f->l));
    assert_int_equal(apply_signed(f, "", K.admin_sk, tx_partner_key("acme", K.acme_pk)).code, 0);
    assert_int_equal(apply_signed(f, "", K.admin_sk, tx_partner_key("bolt", K.bolt_pk)).code, 0);
    /* A partner enrolls members in its own name, not in nobody's. */
    Coalition__Txn enroll = tx_member("m1", NULL);
    expect_refused_early(f, enroll);
    enroll.partner = "acme";
    assert_int_equal(apply_signed(f, "acme", K.acme_sk, enroll).code, 0);
    assert_int_equal(apply_signed(f, "acme", K.acme_sk, tx_award("acme", "a1", "m1", 100)).code, 0);
    assert_int_equal(fixture_balance(f, "m1"), 100);
}

/* Applies t signed by signer and asserts it is refused with `code` and
 * changes nothing. */
static void expect_refused(struct ledger_fixture *f, const char *signer, const uint8_t *sk,
                           Coalition__Txn t, int code)
{
    uint64_t before = fixture_fingerprint(f->s);
    struct ledger_head h0 = fixture_head(f);
    struct ledger_result r = apply_signed(f, signer, sk, t);
    assert_int_equal(r.code, code);
    struct ledger_head h1 = fixture_head(f);
    assert_int_equal(h1.seq, h0.seq);
    assert_memory_equal(h1.hash, h0.hash, LEDGER_HASH_LEN);
    assert_int_equal(fixture_fingerprint(f->s), before);
}

static void test_genesis_once_and_unsigned(void **state)
{
    struct ledger_fixture *f = *state;
    assert_false(ledger_initialized(f->l));
    /* Before INIT nothing can be verified: an admin group is refused. */
    struct ledger_result r = apply_signed(f, "", K.admin_sk, tx_partner_key("acme", K.acme_pk));
    assert_int_equal(r.code, COALITION_E_UNAUTHENTICATED);
    assert_int_equal(apply_unsigned(f, tx_init(K.admin_pk)).code, 0);
    uint8_t pk[AUTH_PUBLIC_LEN];
    assert_int_equal(ledger_signer_key(f->l, "", pk), 0);
    assert_memory_equal(pk, K.admin_pk, AUTH_PUBLIC_LEN);
    /* A second INIT (another key) is refused and changes nothing. */
    uint64_t fp = fixture_fingerprint(f->s);
    assert_int_equal(apply_unsigned(f, tx_init(K.acme_pk)).code, COALITION_E_ALREADY_EXISTS);
    assert_int_equal(fixture_fingerprint(f->s), fp);
    assert_int_equal(ledger_signer_key(f->l, "", pk), 0);
    assert_memory_equal(pk, K.admin_pk, AUTH_PUBLIC_LEN);
    /* Client kinds never come unsigned in a replicated batch. */
    assert_int_equal(apply_unsigned(f, tx_partner_key("acme", K.acme_pk)).code,
                     COALITION_E_UNAUTHENTICATED);
    assert_int_equal(fixture_fingerprint(f->s), fp);
    /* And INIT never inside a group, even the admin's. */
    expect_refused(f, "", K.admin_sk, tx_init(K.bolt_pk), COALITION_E_FORBIDDEN);
}

static void test_partner_acts_only_for_itself(void **state)
{
    struct ledger_fixture *f = *state;
    coalition(f);
    /* bolt cannot award from acme's issuance, redeem into acme's account,
     * reverse acme's award or change acme's program. */
    expect_refused(f, "bolt", K.bolt_sk, tx_award("acme", "x1", "m1", 5), COALITION_E_FORBIDDEN);
    expect_refused(f, "bolt", K.bolt_sk, tx_redeem("acme", "x2", "m1", 5), COALITION_E_FORBIDDEN);
    expect_refused(f, "bolt", K.bolt_sk, tx_reverse("acme", "x3", "a1", 0), COALITION_E_FORBIDDEN);
    Coalition__Program prog = COALITION__PROGRAM__INIT;
    prog.point_value_mc = 1000;
    prog.base_rate_milli = 1000;
    expect_refused(f, "bolt", K.bolt_sk, tx_program_set("acme", "x4", &prog),
                   COALITION_E_FORBIDDEN);
    /* Coalition-level changes are the admin's. */
    Coalition__Rules rules = COALITION__RULES__INIT;
    expect_refused(f, "acme", K.acme_sk, tx_rules_set("x5", &rules), COALITION_E_FORBIDDEN);
    uint8_t pk[AUTH_PUBLIC_LEN], sk[AUTH_SECRET_LEN];
    crypto_sign_keypair(pk, sk);
    expect_refused(f, "acme", K.acme_sk, tx_partner_key("evil", pk), COALITION_E_FORBIDDEN);
    expect_refused(f, "acme", K.acme_sk, tx_merge("x6", "m1", "m2"), COALITION_E_FORBIDDEN);
    /* The admin admits a partner only with its key. */
    expect_refused(f, "", K.admin_sk, tx_partner("nokey", "No key"), COALITION_E_INVALID_ARGUMENT);
    /* bolt redeems acme's points into its own account: allowed. */
    assert_int_equal(apply_signed(f, "bolt", K.bolt_sk, tx_redeem("bolt", "r1", "m1", 30)).code, 0);
    assert_int_equal(fixture_account(f->s, 'r', "bolt"), 30);
    assert_int_equal(apply_signed(f, "", K.admin_sk, tx_rules_set("rs", &rules)).code, 0);
    fixture_verify_ok(f);
}

static void test_forged_signatures_change_nothing(void **state)
{
    struct ledger_fixture *f = *state;
    coalition(f);
    Coalition__Txn t = tx_award("acme", "f1", "m1", 50);
    Coalition__Txn *one = &t;
    Coalition__SignedGroup g;
    Coalition__SignedGroup *gp = &g;
    struct ledger_result r;

    /* Signed by bolt's key but claiming to be acme. */
    assert_int_equal(auth_group_make(&g, "acme", &one, 1, K.bolt_sk), 0);
    uint64_t fp = fixture_fingerprint(f->s);
    apply_batch(f, NULL, 0, &gp, 1, &r, 1);
    assert_int_equal(r.code, COALITION_E_UNAUTHENTICATED);
    auth_group_clear(&g);

    /* A flipped bit in the signed transactions. */
    assert_int_equal(auth_group_make(&g, "acme", &one, 1, K.acme_sk), 0);
    g.txns.data[g.txns.len - 1] ^= 1;
    apply_batch(f, NULL, 0, &gp, 1, &r, 1);
    assert_int_equal(r.code, COALITION_E_UNAUTHENTICATED);
    g.txns.data[g.txns.len - 1] ^= 1;

    /* A non-canonical signature: S + L verifies in lax implementations. */
    static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,       0xd6,
                                      0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, [31] = 0x10};
    uint8_t saved[AUTH_SIG_LEN];
    memcpy(saved, g.signature.data, AUTH_SIG_LEN);
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned v = g.signature.data[32 + i] + order[i] + carry;
        g.signature.data[32 + i] = (uint8_t)v;
        carry = v >> 8;
    }
    if (carry == 0) { /* S + L fits in 32 bytes (it does for almost every S) */
        apply_batch(f, NULL, 0, &gp, 1, &r, 1);
        assert_int_equal(r.code, COALITION_E_UNAUTHENTICATED);
    }
    memcpy(g.signature.data, saved, AUTH_SIG_LEN);

    /* An unknown signer. */
    g.signer = "nobody";
    apply_batch(f, NULL, 0, &gp, 1, &r, 1);
    assert_int_equal(r.code, COALITION_E_UNAUTHENTICATED);
    g.signer = "acme";
    assert_int_equal(fixture_fingerprint(f->s), fp);
    assert_int_equal(fixture_balance(f, "m1"), 100);

    /* The genuine group, then the same bytes replayed: applied once. */
    apply_batch(f, NULL, 0, &gp, 1, &r, 1);
    assert_int_equal(r.code, 0);
    assert_false(r.duplicate);
    uint64_t seq = r.seq;
    fp = fixture_fingerprint(f->s);
    apply_batch(f, NULL, 0, &gp, 1, &r, 1);
    assert_int_equal(r.code, 0);
    assert_true(r.duplicate);
    assert_int_equal(r.seq, seq);
    assert_int_equal(fixture_fingerprint(f->s), fp);
    assert_int_equal(fixture_balance(f, "m1"), 150);
    auth_group_clear(&g);
    fixture_verify_ok(f);
}

/* One batch: a partner is admitted in the admin's group and signs the next
 * group; results come in order, txns first. */
static void test_groups_in_one_batch(void **state)
{
    struct ledger_fixture *f = *state;
    assert_int_equal(apply_unsigned(f, tx_init(K.admin_pk)).code, 0);
    Coalition__Txn add = tx_partner_key("acme", K.acme_pk);
    Coalition__Txn mem = tx_member("m1", NULL);
    Coalition__Txn *admin_txns[] = {&add, &mem};
    Coalition__Txn aw1 = tx_award("acme", "a1", "m1", 10);
    Coalition__Txn aw2 = tx_award("bolt", "a2", "m1", 10); /* not acme's: refused */
    Coalition__Txn aw3 = tx_award("acme", "a3", "m1", 5);
    Coalition__Txn *acme_txns[] = {&aw1, &aw2, &aw3};
    Coalition__SignedGroup ga, gb;
    assert_int_equal(auth_group_make(&ga, "", admin_txns, 2, K.admin_sk), 0);
    assert_int_equal(auth_group_make(&gb, "acme", acme_txns, 3, K.acme_sk), 0);
    Coalition__SignedGroup *groups[] = {&ga, &gb};
    Coalition__Txn review = COALITION__TXN__INIT; /* unsigned: scheduled kind */
    review.kind = COALITION__TXN_KIND__TXN_TIER_REVIEW;
    review.member = "m1";
    Coalition__Txn *txns[] = {&review};
    struct ledger_result res[6];
    apply_batch(f, txns, 1, groups, 2, res, 6);
    assert_int_equal(res[1].code, 0);
    assert_int_equal(res[2].code, 0);
    assert_int_equal(res[3].code, 0);
    assert_int_equal(res[4].code, COALITION_E_FORBIDDEN);
    assert_int_equal(res[5].code, 0);
    assert_int_equal(fixture_balance(f, "m1"), 15);
    auth_group_clear(&ga);
    auth_group_clear(&gb);
}

/* What a batch does cannot depend on how many results the caller keeps: a
 * follower keeps none, the proposer all of them.  The same batches applied
 * with every result, with none, and with room for one give the same ledger. */
static void test_results_do_not_change_the_apply(void **state)
{
    struct ledger_fixture *f = *state;
    char dirs[2][PATH_MAX];
    struct store *s[2];
    struct ledger *l[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tmpdir_make(dirs[i], sizeof(dirs[i]) - 32, "ledger_auth_follower"), 0);
        fixture_open_dir(dirs[i], &s[i], &l[i]);
    }
    Coalition__Txn init = tx_init(K.admin_pk);
    Coalition__Txn add = tx_partner_key("acme", K.acme_pk);
    Coalition__Txn mem = tx_member("m1", NULL);
    Coalition__Txn aw1 = tx_award("acme", "a1", "m1", 10);
    Coalition__Txn aw2 = tx_award("acme", "a2", "m1", 7);
    Coalition__Txn *admin_txns[] = {&add, &mem};
    Coalition__Txn *acme_txns[] = {&aw1, &aw2};
    Coalition__SignedGroup ga, gb;
    assert_int_equal(auth_group_make(&ga, "", admin_txns, 2, K.admin_sk), 0);
    assert_int_equal(auth_group_make(&gb, "acme", acme_txns, 2, K.acme_sk), 0);
    Coalition__SignedGroup *groups[] = {&ga, &gb};
    Coalition__Txn *txns[] = {&init};
    Coalition__Batch b = COALITION__BATCH__INIT;
    b.time_ms = T0;
    b.txns = txns;
    b.n_txns = 1;
    b.groups = groups;
    b.n_groups = 2;
    struct ledger_result all[5], one[1];
    assert_int_equal(ledger_apply_batch(f->l, 1, &b, all, 5), 0);
    assert_int_equal(ledger_apply_batch(l[0], 1, &b, NULL, 0), 0);
    assert_int_equal(ledger_apply_batch(l[1], 1, &b, one, 1), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(all[i].code, 0);
    }
    assert_int_equal(one[0].code, 0);
    assert_int_equal(fixture_balance(f, "m1"), 17);
    struct ledger_head h, h0, h1;
    ledger_get_head(f->l, &h);
    ledger_get_head(l[0], &h0);
    ledger_get_head(l[1], &h1);
    assert_int_equal(h.seq, 5);
    assert_int_equal(h0.seq, h.seq);
    assert_int_equal(h1.seq, h.seq);
    assert_memory_equal(h0.hash, h.hash, LEDGER_HASH_LEN);
    assert_memory_equal(h1.hash, h.hash, LEDGER_HASH_LEN);
    assert_int_equal(fixture_fingerprint(s[0]), fixture_fingerprint(f->s));
    assert_int_equal(fixture_fingerprint(s[1]), fixture_fingerprint(f->s));
    for (int i = 0; i < 2; i++) {
        fixture_close_dir(s[i], l[i]);
        tmpdir_remove(dirs[i]);
    }
    auth_group_clear(&ga);
    auth_group_clear(&gb);
}

static Coalition__Txn tx_apikey(int kind, const char *partner, const char *txn_id,
                                const char *key_id, uint8_t *hash)
{
    Coalition__Txn t = COALITION__TXN__INIT;
    t.kind = kind;
    t.partner = (char *)(partner != NULL ? partner : "");
    t.txn_id = (char *)txn_id;
    t.key_id = (char *)key_id;
    if (hash != NULL) {
        t.key_hash.data = hash;
        t.key_hash.len = AUTH_HASH_LEN;
    }
    return t;
}

static void test_api_keys(void **state)
{
    struct ledger_fixture *f = *state;
    coalition(f);
    char key[AUTH_API_KEY_LEN + 1], id[AUTH_KEY_ID_HEX + 1], partner[LEDGER_ID_MAX + 1];
    uint8_t hash[AUTH_HASH_LEN], parsed[AUTH_HASH_LEN];
    auth_api_key_new(key, id, hash);
    assert_int_equal(auth_api_key_parse(key, id, parsed), 0);
    assert_memory_equal(parsed, hash, AUTH_HASH_LEN);
    assert_int_equal(ledger_api_key_partner(f->l, id, parsed, partner),
                     COALITION_E_UNAUTHENTICATED);
    /* bolt cannot issue a key in acme's name. */
    expect_refused(f, "bolt", K.bolt_sk,
                   tx_apikey(COALITION__TXN_KIND__TXN_APIKEY_ADD, "acme", "k1", id, hash),
                   COALITION_E_FORBIDDEN);
    assert_int_equal(
        apply_signed(f, "acme", K.acme_sk,
                     tx_apikey(COALITION__TXN_KIND__TXN_APIKEY_ADD, "acme", "k1", id, hash))
            .code,
        0);
    assert_int_equal(ledger_api_key_partner(f->l, id, parsed, partner), 0);
    assert_string_equal(partner, "acme");
    /* The same id again is refused; a wrong secret does not authenticate. */
    expect_refused(f, "acme", K.acme_sk,
                   tx_apikey(COALITION__TXN_KIND__TXN_APIKEY_ADD, "acme", "k2", id, hash),
                   COALITION_E_ALREADY_EXISTS);
    parsed[0] ^= 1;
    assert_int_equal(ledger_api_key_partner(f->l, id, parsed, partner),
                     COALITION_E_UNAUTHENTICATED);
    parsed[0] ^= 1;
    /* Only acme (or the admin) revokes it. */
    expect_refused(f, "bolt", K.bolt_sk,
                   tx_apikey(COALITION__TXN_KIND__TXN_APIKEY_REVOKE, "bolt", "k3", id, NULL),
                   COALITION_E_FORBIDDEN);
    assert_int_equal(ledger_api_key_partner(f->l, id, parsed, partner), 0);
    assert_int_equal(
        apply_signed(f, "acme", K.acme_sk,
                     tx_apikey(COALITION__TXN_KIND__TXN_APIKEY_REVOKE, "acme", "k4", id, NULL))
            .code,
        0);
    assert_int_equal(ledger_api_key_partner(f->l, id, parsed, partner),
                     COALITION_E_UNAUTHENTICATED);
    /* An admin revocation of bolt's key. */
    auth_api_key_new(key, id, hash);
    assert_int_equal(
        apply_signed(f, "bolt", K.bolt_sk,
                     tx_apikey(COALITION__TXN_KIND__TXN_APIKEY_ADD, "bolt", "k5", id, hash))
            .code,
        0);
    assert_int_equal(ledger_api_key_partner(f->l, id, hash, partner), 0);
    assert_string_equal(partner, "bolt");
    assert_int_equal(
        apply_signed(f, "", K.admin_sk,
                     tx_apikey(COALITION__TXN_KIND__TXN_APIKEY_REVOKE, NULL, "k6", id, NULL))
            .code,
        0);
    assert_int_equal(ledger_api_key_partner(f->l, id, hash, partner), COALITION_E_UNAUTHENTICATED);
    fixture_verify_ok(f);
}

static void test_trusted_keys(void **state)
{
    struct ledger_fixture *f = *state;
    bool yes = true;
    assert_int_equal(ledger_key_trusted(f->l, K.acme_pk, &yes), 0);
    assert_false(yes);
    coalition(f);
    assert_int_equal(ledger_key_trusted(f->l, K.acme_pk, &yes), 0);
    assert_true(yes);
    assert_int_equal(ledger_key_trusted(f->l, K.admin_pk, &yes), 0);
    assert_true(yes);
    uint8_t pk[AUTH_PUBLIC_LEN], sk[AUTH_SECRET_LEN];
    crypto_sign_keypair(pk, sk);
    assert_int_equal(ledger_key_trusted(f->l, pk, &yes), 0);
    assert_false(yes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_genesis_once_and_unsigned, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_partner_acts_only_for_itself, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_forged_signatures_change_nothing, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_groups_in_one_batch, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_api_keys, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_results_do_not_change_the_apply, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_trusted_keys, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
