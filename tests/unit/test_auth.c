/* Unit tests of proto/auth.c: hex, key files (modes, refusing to overwrite,
 * damaged and foreign files), public key lists, group signing and
 * verification (a round trip, any flipped bit fails, a non-canonical S or a
 * bad public key is refused), API keys (form, parse, hash), and signed
 * membership changes (the exact message, any changed field or flipped bit
 * fails, S + L is refused) with the replay cache (clock window, exact
 * replays, a full cache, a reset). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "tmpdir.h"

#include "auth.h"
#include "errors.h"

/* A temporary directory for key files, a key pair made in memory and two
 * transactions to sign. */
struct auth_fixture {
    char dir[PATH_MAX];
    char prefix[PATH_MAX + 32];
    char path[PATH_MAX + 64];
    char err[PATH_MAX + 256];
    uint8_t pk[AUTH_PUBLIC_LEN];
    uint8_t sk[AUTH_SECRET_LEN];
    Coalition__Txn txn[2];
    Coalition__Txn *txns[2];
};

static int setup(void **state)
{
    struct auth_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(auth_init(), 0);
    assert_int_equal(tmpdir_make(f->dir, sizeof(f->dir), "test_auth"), 0);
    crypto_sign_keypair(f->pk, f->sk);
    for (int i = 0; i < 2; i++) {
        coalition__txn__init(&f->txn[i]);
        f->txn[i].kind = i == 0 ? COALITION__TXN_KIND__TXN_AWARD : COALITION__TXN_KIND__TXN_REDEEM;
        f->txn[i].partner = "P1";
        f->txn[i].member = "M1";
        f->txn[i].txn_id = i == 0 ? "t-award" : "t-redeem";
        f->txn[i].points = 100 + i;
        f->txns[i] = &f->txn[i];
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct auth_fixture *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* f->path = DIR/NAME. */
static const char *fixture_path(struct auth_fixture *f, const char *name)
{
    int n = snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
    assert_true(n > 0 && (size_t)n < sizeof(f->path));
    return f->path;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
}

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    assert_int_equal(fclose(fp), 0);
}

static void test_auth_hex_round_trip(void **state)
{
    (void)state;
    const uint8_t bytes[4] = {0x00, 0x7f, 0xab, 0xff};
    char hex[9];
    auth_hex_encode(bytes, sizeof(bytes), hex);
    assert_string_equal(hex, "007fabff");
    uint8_t back[4];
    assert_int_equal(auth_hex_decode(hex, back, sizeof(back)), 0);
    assert_memory_equal(back, bytes, sizeof(bytes));
    /* Upper case, surrounding blanks and a final newline are fine. */
    memset(back, 0, sizeof(back));
    assert_int_equal(auth_hex_decode("  007FABFF\n", back, sizeof(back)), 0);
    assert_memory_equal(back, bytes, sizeof(bytes));
}

static void test_auth_hex_refuses_bad_input(void **state)
{
    (void)state;
    uint8_t out[4];
    const char *bad[] = {
        "007fab",      /* too short */
        "007fabff00",  /* too long */
        "007fabfg",    /* not hex */
        "007f abff",   /* a blank inside */
        "",            /* nothing */
        "007fabff\nx", /* text after the newline */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(auth_hex_decode(bad[i], out, sizeof(out)), COALITION_E_INVALID_ARGUMENT);
    }
}

static void test_auth_keygen_files_and_modes(void **state)
{
    struct auth_fixture *f = *state;
    snprintf(f->prefix, sizeof(f->prefix), "%s/P1", f->dir);
    uint8_t pk[AUTH_PUBLIC_LEN];
    assert_int_equal(auth_keygen(f->prefix, pk, f->err, sizeof(f->err)), 0);
    assert_true(auth_public_valid(pk));

    struct stat st;
    assert_int_equal(stat(fixture_path(f, "P1.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char text[512];
    read_file(f->path, text, sizeof(text));
    assert_int_equal(strlen(text), 2 * AUTH_SECRET_LEN + 1); /* hex and a newline */
    assert_int_equal(text[2 * AUTH_SECRET_LEN], '\n');

    assert_int_equal(stat(fixture_path(f, "P1.pub"), &st), 0);
    assert_int_equal(st.st_mode & 0022, 0); /* nobody else may write it */
    read_file(f->path, text, sizeof(text));
    char hex[AUTH_PUBLIC_HEX + 1];
    auth_hex_encode(pk, sizeof(pk), hex);
    assert_int_equal(strncmp(text, hex, AUTH_PUBLIC_HEX), 0);

    /* The secret file holds the pair: its second half is the public key. */
    uint8_t sk[AUTH_SECRET_LEN];
    assert_int_equal(auth_load_secret(fixture_path(f, "P1.key"), sk, f->err, sizeof(f->err)), 0);
    assert_memory_equal(sk + 32, pk, AUTH_PUBLIC_LEN);
    /* And the public key loads from the file and from its hex. */
    uint8_t pk2[AUTH_PUBLIC_LEN];
    assert_int_equal(auth_load_public(fixture_path(f, "P1.pub"), pk2, f->err, sizeof(f->err)), 0);
    assert_memory_equal(pk2, pk, AUTH_PUBLIC_LEN);
    memset(pk2, 0, sizeof(pk2));
    assert_int_equal(auth_load_public(hex, pk2, f->err, sizeof(f->err)), 0);
    assert_memory_equal(pk2, pk, AUTH_PUBLIC_LEN);
}

static void test_auth_keygen_refuses_to_overwrite(void **state)
{
    struct auth_fixture *f = *state;
    snprintf(f->prefix, sizeof(f->prefix), "%s/admin", f->dir);
    uint8_t pk[AUTH_PUBLIC_LEN];
    assert_int_equal(auth_keygen(f->prefix, pk, f->err, sizeof(f->err)), 0);
    char before[512];
    read_file(fixture_path(f, "admin.key"), before, sizeof(before));

    uint8_t pk2[AUTH_PUBLIC_LEN];
    f->err[0] = '\0';
    assert_int_equal(auth_keygen(f->prefix, pk2, f->err, sizeof(f->err)),
                     COALITION_E_ALREADY_EXISTS);
    assert_non_null(strstr(f->err, "admin.key"));
    char after[512];
    read_file(fixture_path(f, "admin.key"), after, sizeof(after));
    assert_string_equal(after, before);

    /* A directory that does not exist is a storage error. */
    snprintf(f->prefix, sizeof(f->prefix), "%s/no/such/dir/x", f->dir);
    assert_int_equal(auth_keygen(f->prefix, pk2, f->err, sizeof(f->err)), COALITION_E_STORAGE);
}

static void test_auth_load_secret_refuses_bad_files(void **state)
{
    struct auth_fixture *f = *state;
    uint8_t sk[AUTH_SECRET_LEN];
    char hex[2 * AUTH_SECRET_LEN + 2];

    /* Missing. */
    f->err[0] = '\0';
    assert_int_equal(auth_load_secret(fixture_path(f, "none.key"), sk, f->err, sizeof(f->err)),
                     COALITION_E_STORAGE);
    assert_non_null(strstr(f->err, "none.key"));

    /* A public key where a secret one should be. */
    auth_hex_encode(f->pk, AUTH_PUBLIC_LEN, hex);
    write_file(fixture_path(f, "pub-as.key"), hex);
    assert_int_equal(auth_load_secret(f->path, sk, f->err, sizeof(f->err)),
                     COALITION_E_INVALID_ARGUMENT);

    /* Seed and public key that do not belong together. */
    uint8_t damaged[AUTH_SECRET_LEN];
    memcpy(damaged, f->sk, sizeof(damaged));
    damaged[40] ^= 0x01;
    auth_hex_encode(damaged, sizeof(damaged), hex);
    write_file(fixture_path(f, "damaged.key"), hex);
    assert_int_equal(auth_load_secret(f->path, sk, f->err, sizeof(f->err)),
                     COALITION_E_INVALID_ARGUMENT);

    /* Too large to be a key. */
    char big[1024];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    write_file(fixture_path(f, "big.key"), big);
    assert_int_equal(auth_load_secret(f->path, sk, f->err, sizeof(f->err)),
                     COALITION_E_INVALID_ARGUMENT);

    /* The right one, with a final newline. */
    auth_hex_encode(f->sk, AUTH_SECRET_LEN, hex);
    strcat(hex, "\n");
    write_file(fixture_path(f, "good.key"), hex);
    assert_int_equal(auth_load_secret(f->path, sk, f->err, sizeof(f->err)), 0);
    assert_memory_equal(sk, f->sk, AUTH_SECRET_LEN);
}

static void test_auth_load_public_list(void **state)
{
    struct auth_fixture *f = *state;
    uint8_t pk2[AUTH_PUBLIC_LEN], sk2[AUTH_SECRET_LEN];
    crypto_sign_keypair(pk2, sk2);
    char h1[AUTH_PUBLIC_HEX + 1], h2[AUTH_PUBLIC_HEX + 1];
    auth_hex_encode(f->pk, AUTH_PUBLIC_LEN, h1);
    auth_hex_encode(pk2, AUTH_PUBLIC_LEN, h2);
    char text[512];
    snprintf(text, sizeof(text), "# trusted nodes\n\n%s\n   %s\n# end\n", h1, h2);
    write_file(fixture_path(f, "trusted"), text);
    uint8_t(*keys)[AUTH_PUBLIC_LEN] = NULL;
    size_t n = 0;
    assert_int_equal(auth_load_public_list(f->path, &keys, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(keys[0], f->pk, AUTH_PUBLIC_LEN);
    assert_memory_equal(keys[1], pk2, AUTH_PUBLIC_LEN);
    free(keys);

    /* A line that is not a key names its line. */
    snprintf(text, sizeof(text), "%s\nnot-a-key\n", h1);
    write_file(fixture_path(f, "trusted-bad"), text);
    keys = NULL;
    assert_int_equal(auth_load_public_list(f->path, &keys, &n, f->err, sizeof(f->err)),
                     COALITION_E_INVALID_ARGUMENT);
    assert_non_null(strstr(f->err, "line 2"));
    assert_null(keys);
}

/* The group's TxnList unpacks to the transactions that were signed. */
static void test_auth_sign_verify_round_trip(void **state)
{
    struct auth_fixture *f = *state;
    Coalition__SignedGroup g;
    assert_int_equal(auth_group_make(&g, "P1", f->txns, 2, f->sk), 0);
    assert_string_equal(g.signer, "P1");
    assert_int_equal(g.signature.len, AUTH_SIG_LEN);
    assert_int_equal(
        auth_group_verify(g.txns.data, g.txns.len, g.signature.data, g.signature.len, f->pk), 0);

    Coalition__TxnList *list = coalition__txn_list__unpack(NULL, g.txns.len, g.txns.data);
    assert_non_null(list);
    assert_int_equal(list->n_txns, 2);
    assert_string_equal(list->txns[0]->txn_id, "t-award");
    assert_int_equal(list->txns[0]->kind, COALITION__TXN_KIND__TXN_AWARD);
    assert_string_equal(list->txns[1]->txn_id, "t-redeem");
    assert_int_equal(list->txns[1]->points, 101);
    coalition__txn_list__free_unpacked(list, NULL);

    /* Deterministic: signing the same transactions again gives the same
     * bytes, so a retried request is the same request. */
    Coalition__SignedGroup again;
    assert_int_equal(auth_group_make(&again, "P1", f->txns, 2, f->sk), 0);
    assert_int_equal(again.txns.len, g.txns.len);
    assert_memory_equal(again.txns.data, g.txns.data, g.txns.len);
    assert_memory_equal(again.signature.data, g.signature.data, AUTH_SIG_LEN);

    /* Another key does not verify it. */
    uint8_t pk2[AUTH_PUBLIC_LEN], sk2[AUTH_SECRET_LEN];
    crypto_sign_keypair(pk2, sk2);
    assert_int_equal(
        auth_group_verify(g.txns.data, g.txns.len, g.signature.data, g.signature.len, pk2),
        COALITION_E_UNAUTHENTICATED);
    auth_group_clear(&again);
    auth_group_clear(&g);
    assert_null(g.txns.data);
    assert_null(g.signature.data);
}

/* An empty group is a valid (if useless) signed message. */
static void test_auth_sign_verify_empty_group(void **state)
{
    struct auth_fixture *f = *state;
    Coalition__SignedGroup g;
    assert_int_equal(auth_group_make(&g, "", NULL, 0, f->sk), 0);
    assert_int_equal(g.txns.len, 0);
    assert_int_equal(
        auth_group_verify(g.txns.data, g.txns.len, g.signature.data, g.signature.len, f->pk), 0);
    auth_group_clear(&g);
}

static void test_auth_verify_flipped_bit_fails(void **state)
{
    struct auth_fixture *f = *state;
    Coalition__SignedGroup g;
    assert_int_equal(auth_group_make(&g, "P1", f->txns, 2, f->sk), 0);
    uint8_t *txns = g.txns.data;
    uint8_t *sig = g.signature.data;
    /* Every bit of the signed bytes. */
    for (size_t i = 0; i < g.txns.len * 8; i++) {
        txns[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(auth_group_verify(txns, g.txns.len, sig, AUTH_SIG_LEN, f->pk),
                         COALITION_E_UNAUTHENTICATED);
        txns[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* Every bit of the signature. */
    for (size_t i = 0; i < AUTH_SIG_LEN * 8; i++) {
        sig[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(auth_group_verify(txns, g.txns.len, sig, AUTH_SIG_LEN, f->pk),
                         COALITION_E_UNAUTHENTICATED);
        sig[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* Every bit of the public key. */
    for (size_t i = 0; i < AUTH_PUBLIC_LEN * 8; i++) {
        f->pk[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(auth_group_verify(txns, g.txns.len, sig, AUTH_SIG_LEN, f->pk),
                         COALITION_E_UNAUTHENTICATED);
        f->pk[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* A byte more or less of the message, a truncated or missing signature. */
    assert_int_equal(auth_group_verify(txns, g.txns.len - 1, sig, AUTH_SIG_LEN, f->pk),
                     COALITION_E_UNAUTHENTICATED);
    assert_int_equal(auth_group_verify(txns, g.txns.len, sig, AUTH_SIG_LEN - 1, f->pk),
                     COALITION_E_UNAUTHENTICATED);
    assert_int_equal(auth_group_verify(txns, g.txns.len, NULL, 0, f->pk),
                     COALITION_E_UNAUTHENTICATED);
    /* Untouched, it still verifies. */
    assert_int_equal(auth_group_verify(txns, g.txns.len, sig, AUTH_SIG_LEN, f->pk), 0);
    auth_group_clear(&g);
}

/* The order L of the Ed25519 group, little-endian. */
static const uint8_t group_order[32] = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

/* s += L, little-endian; S < L < 2^253 so it cannot overflow 256 bits. */
static void scalar_add_order(uint8_t s[32])
{
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned v = (unsigned)s[i] + group_order[i] + carry;
        s[i] = (uint8_t)v;
        carry = v >> 8;
    }
    assert_int_equal(carry, 0);
}

/* S + L is the same scalar mod L, so a lax verifier would accept it: a
 * second valid-looking signature of the same group (malleability). */
static void test_auth_verify_refuses_non_canonical_s(void **state)
{
    struct auth_fixture *f = *state;
    Coalition__SignedGroup g;
    assert_int_equal(auth_group_make(&g, "P1", f->txns, 2, f->sk), 0);
    uint8_t sig[AUTH_SIG_LEN];
    memcpy(sig, g.signature.data, AUTH_SIG_LEN);
    assert_int_equal(auth_group_verify(g.txns.data, g.txns.len, sig, AUTH_SIG_LEN, f->pk), 0);

    uint8_t malleated[AUTH_SIG_LEN];
    memcpy(malleated, sig, AUTH_SIG_LEN);
    scalar_add_order(malleated + 32);
    assert_memory_not_equal(malleated, sig, AUTH_SIG_LEN);
    assert_int_equal(auth_group_verify(g.txns.data, g.txns.len, malleated, AUTH_SIG_LEN, f->pk),
                     COALITION_E_UNAUTHENTICATED);

    /* S = L exactly, and S with the top bit set. */
    memcpy(malleated, sig, AUTH_SIG_LEN);
    memcpy(malleated + 32, group_order, 32);
    assert_int_equal(auth_group_verify(g.txns.data, g.txns.len, malleated, AUTH_SIG_LEN, f->pk),
                     COALITION_E_UNAUTHENTICATED);
    memcpy(malleated, sig, AUTH_SIG_LEN);
    malleated[63] |= 0x80;
    assert_int_equal(auth_group_verify(g.txns.data, g.txns.len, malleated, AUTH_SIG_LEN, f->pk),
                     COALITION_E_UNAUTHENTICATED);
    auth_group_clear(&g);
}

static void test_auth_refuses_bad_public_keys(void **state)
{
    struct auth_fixture *f = *state;
    uint8_t bad[5][AUTH_PUBLIC_LEN];
    memset(bad, 0, sizeof(bad));
    /* The identity point (0, 1): order 1. */
    bad[0][0] = 0x01;
    /* (0, -1): order 2.  y = p - 1 = 2^255 - 20. */
    memset(bad[1], 0xff, AUTH_PUBLIC_LEN);
    bad[1][0] = 0xec;
    bad[1][31] = 0x7f;
    /* y = 0: the points of order 4. */
    /* bad[2] stays all zero. */
    bad[3][31] = 0x80;
    /* y = p: not a canonical encoding. */
    memset(bad[4], 0xff, AUTH_PUBLIC_LEN);
    bad[4][0] = 0xed;
    bad[4][31] = 0x7f;

    Coalition__SignedGroup g;
    assert_int_equal(auth_group_make(&g, "P1", f->txns, 2, f->sk), 0);
    char hex[AUTH_PUBLIC_HEX + 1];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(auth_public_valid(bad[i]));
        assert_int_equal(
            auth_group_verify(g.txns.data, g.txns.len, g.signature.data, g.signature.len, bad[i]),
            COALITION_E_UNAUTHENTICATED);
        auth_hex_encode(bad[i], AUTH_PUBLIC_LEN, hex);
        uint8_t pk[AUTH_PUBLIC_LEN];
        assert_int_equal(auth_load_public(hex, pk, f->err, sizeof(f->err)),
                         COALITION_E_INVALID_ARGUMENT);
    }

    /* A y whose x would be a square root of a non-square: no point at all.
     * Found by search so that the test does not depend on a magic value. */
    uint8_t off[AUTH_PUBLIC_LEN];
    bool found = false;
    for (unsigned y = 2; y < 256 && !found; y++) {
        memset(off, 0, sizeof(off));
        off[0] = (uint8_t)y;
        found = !auth_public_valid(off);
    }
    assert_true(found);
    assert_int_equal(
        auth_group_verify(g.txns.data, g.txns.len, g.signature.data, g.signature.len, off),
        COALITION_E_UNAUTHENTICATED);
    /* A real key is valid. */
    assert_true(auth_public_valid(f->pk));
    auth_group_clear(&g);
}

static void test_auth_api_key_new_and_parse(void **state)
{
    (void)state;
    char key[AUTH_API_KEY_LEN + 1];
    char id[AUTH_KEY_ID_HEX + 1];
    uint8_t hash[AUTH_HASH_LEN];
    auth_api_key_new(key, id, hash);
    assert_int_equal(strlen(key), AUTH_API_KEY_LEN);
    assert_int_equal(strlen(id), AUTH_KEY_ID_HEX);
    assert_int_equal(key[AUTH_KEY_ID_HEX], '.');
    assert_int_equal(strncmp(key, id, AUTH_KEY_ID_HEX), 0);
    for (size_t i = 0; i < AUTH_API_KEY_LEN; i++) {
        if (i != AUTH_KEY_ID_HEX) {
            assert_non_null(strchr("0123456789abcdef", key[i]));
        }
    }

    char pid[AUTH_KEY_ID_HEX + 1];
    uint8_t phash[AUTH_HASH_LEN];
    assert_int_equal(auth_api_key_parse(key, pid, phash), 0);
    assert_string_equal(pid, id);
    assert_true(auth_hash_equal(phash, hash));

    /* The stored hash is BLAKE2b-256 of the secret's bytes. */
    uint8_t secret[32], expect[AUTH_HASH_LEN];
    assert_int_equal(auth_hex_decode(key + AUTH_KEY_ID_HEX + 1, secret, sizeof(secret)), 0);
    crypto_generichash(expect, sizeof(expect), secret, sizeof(secret), NULL, 0);
    assert_memory_equal(expect, hash, AUTH_HASH_LEN);

    /* Upper case parses to the same canonical id and hash. */
    char upper[AUTH_API_KEY_LEN + 1];
    for (size_t i = 0; i <= AUTH_API_KEY_LEN; i++) {
        upper[i] = (char)(key[i] >= 'a' && key[i] <= 'f' ? key[i] - 'a' + 'A' : key[i]);
    }
    assert_int_equal(auth_api_key_parse(upper, pid, phash), 0);
    assert_string_equal(pid, id);
    assert_true(auth_hash_equal(phash, hash));

    /* A different secret under the same id hashes differently. */
    char other[AUTH_API_KEY_LEN + 1];
    memcpy(other, key, sizeof(other));
    other[AUTH_API_KEY_LEN - 1] = other[AUTH_API_KEY_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(auth_api_key_parse(other, pid, phash), 0);
    assert_string_equal(pid, id);
    assert_false(auth_hash_equal(phash, hash));

    /* Two new keys differ. */
    char key2[AUTH_API_KEY_LEN + 1], id2[AUTH_KEY_ID_HEX + 1];
    uint8_t hash2[AUTH_HASH_LEN];
    auth_api_key_new(key2, id2, hash2);
    assert_string_not_equal(key2, key);
    assert_false(auth_hash_equal(hash2, hash));
}

static void test_auth_api_key_parse_refuses_malformed(void **state)
{
    (void)state;
    char key[AUTH_API_KEY_LEN + 1];
    char id[AUTH_KEY_ID_HEX + 1];
    uint8_t hash[AUTH_HASH_LEN];
    auth_api_key_new(key, id, hash);

    char bad[AUTH_API_KEY_LEN + 8];
    char pid[AUTH_KEY_ID_HEX + 1];
    uint8_t phash[AUTH_HASH_LEN];
    assert_int_equal(auth_api_key_parse(NULL, pid, phash), COALITION_E_UNAUTHENTICATED);
    assert_int_equal(auth_api_key_parse("", pid, phash), COALITION_E_UNAUTHENTICATED);
    /* No dot. */
    memcpy(bad, key, sizeof(key));
    bad[AUTH_KEY_ID_HEX] = 'a';
    assert_int_equal(auth_api_key_parse(bad, pid, phash), COALITION_E_UNAUTHENTICATED);
    /* One character short, one too many. */
    memcpy(bad, key, sizeof(key));
    bad[AUTH_API_KEY_LEN - 1] = '\0';
    assert_int_equal(auth_api_key_parse(bad, pid, phash), COALITION_E_UNAUTHENTICATED);
    snprintf(bad, sizeof(bad), "%s0", key);
    assert_int_equal(auth_api_key_parse(bad, pid, phash), COALITION_E_UNAUTHENTICATED);
    /* Not hex in the id, in the secret. */
    memcpy(bad, key, sizeof(key));
    bad[3] = 'g';
    assert_int_equal(auth_api_key_parse(bad, pid, phash), COALITION_E_UNAUTHENTICATED);
    memcpy(bad, key, sizeof(key));
    bad[AUTH_KEY_ID_HEX + 5] = 'z';
    assert_int_equal(auth_api_key_parse(bad, pid, phash), COALITION_E_UNAUTHENTICATED);
    /* The dot elsewhere: id of 15 digits, secret of 65. */
    memcpy(bad, key, sizeof(key));
    bad[AUTH_KEY_ID_HEX] = bad[AUTH_KEY_ID_HEX - 1];
    bad[AUTH_KEY_ID_HEX - 1] = '.';
    assert_int_equal(auth_api_key_parse(bad, pid, phash), COALITION_E_UNAUTHENTICATED);
}

/* A membership change as the CLI or a joining node makes it. */
static void cluster_req(Coalition__ClusterChangeRequest *req)
{
    coalition__cluster_change_request__init(req);
    req->op = COALITION__CLUSTER_CHANGE_REQUEST__OP__ADD;
    req->id = 4;
    req->raft_addr = "127.0.0.1:7504";
    req->client_addr = "127.0.0.1:7404";
    req->role = COALITION__NODE_ROLE__ROLE_VOTER;
}

#define T0_MS ((uint64_t)1700000000000) /* a wall-clock time for the tests */

static void test_auth_cluster_sign_verify(void **state)
{
    struct auth_fixture *f = *state;
    Coalition__ClusterChangeRequest req;
    struct auth_cluster_sig sig;
    cluster_req(&req);
    /* Unsigned: refused. */
    assert_int_equal(auth_cluster_verify(&req), COALITION_E_UNAUTHENTICATED);

    auth_cluster_sign(&req, T0_MS, f->sk, &sig);
    assert_int_equal(req.time_ms, T0_MS);
    assert_int_equal(req.public_key.len, AUTH_PUBLIC_LEN);
    assert_memory_equal(req.public_key.data, f->pk, AUTH_PUBLIC_LEN);
    assert_ptr_equal(req.public_key.data, sig.public_key);
    assert_int_equal(req.nonce.len, AUTH_NONCE_LEN);
    assert_int_equal(req.signature.len, AUTH_SIG_LEN);
    assert_int_equal(auth_cluster_verify(&req), 0);

    /* The signature is over the documented message: context and NUL, op,
     * id, raft_addr, client_addr, role, time_ms, nonce; BLAKE2b-512. */
    uint8_t msg[512], *p = msg;
    memcpy(p, "coalition-cluster-v1", 21);
    p += 21;
    const uint8_t fixed1[] = {0, 0, 0, 0, /* op ADD */ 0, 0, 0, 0, 0, 0, 0, 4, /* id */
                              0, 0, 0, 14};
    memcpy(p, fixed1, sizeof(fixed1));
    p += sizeof(fixed1);
    memcpy(p, "127.0.0.1:7504", 14);
    p += 14;
    const uint8_t len2[] = {0, 0, 0, 14};
    memcpy(p, len2, 4);
    p += 4;
    memcpy(p, "127.0.0.1:7404", 14);
    p += 14;
    const uint8_t role[] = {0, 0, 0, 1};
    memcpy(p, role, 4);
    p += 4;
    for (int i = 7; i >= 0; i--) {
        *p++ = (uint8_t)(T0_MS >> (8 * i));
    }
    memcpy(p, sig.nonce, AUTH_NONCE_LEN);
    p += AUTH_NONCE_LEN;
    uint8_t d[crypto_generichash_BYTES_MAX];
    crypto_generichash(d, sizeof(d), msg, (size_t)(p - msg), NULL, 0);
    assert_int_equal(crypto_sign_verify_detached(sig.signature, d, sizeof(d), f->pk), 0);

    /* Two signatures of the same change use different nonces. */
    Coalition__ClusterChangeRequest again;
    struct auth_cluster_sig sig2;
    cluster_req(&again);
    auth_cluster_sign(&again, T0_MS, f->sk, &sig2);
    assert_int_equal(auth_cluster_verify(&again), 0);
    assert_memory_not_equal(sig.nonce, sig2.nonce, AUTH_NONCE_LEN);
}

static void test_auth_cluster_tampered_fails(void **state)
{
    struct auth_fixture *f = *state;
    Coalition__ClusterChangeRequest req;
    struct auth_cluster_sig sig;
    cluster_req(&req);
    auth_cluster_sign(&req, T0_MS, f->sk, &sig);
    assert_int_equal(auth_cluster_verify(&req), 0);

    /* Every covered field, changed, breaks the signature. */
    Coalition__ClusterChangeRequest t = req;
    t.op = COALITION__CLUSTER_CHANGE_REQUEST__OP__REMOVE;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.id = 5;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.raft_addr = "127.0.0.1:7505";
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.client_addr = "";
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.client_addr = NULL; /* absent reads as "": still not what was signed */
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.role = COALITION__NODE_ROLE__ROLE_SPARE;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.time_ms = T0_MS + 1;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    /* Moving a string's boundary (length-prefixed) is not the same message. */
    t = req;
    t.raft_addr = "127.0.0.1:75047404";
    t.client_addr = "127.0.0.1:";
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);

    /* Any flipped bit of the nonce, the signature or the key. */
    uint8_t *fields[] = {sig.nonce, sig.signature, sig.public_key};
    size_t lens[] = {AUTH_NONCE_LEN, AUTH_SIG_LEN, AUTH_PUBLIC_LEN};
    for (size_t k = 0; k < 3; k++) {
        for (size_t bit = 0; bit < lens[k] * 8; bit++) {
            fields[k][bit / 8] ^= (uint8_t)(1u << (bit % 8));
            assert_int_equal(auth_cluster_verify(&req), COALITION_E_UNAUTHENTICATED);
            fields[k][bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
    }
    assert_int_equal(auth_cluster_verify(&req), 0);

    /* Wrong lengths, a missing field. */
    t = req;
    t.nonce.len = AUTH_NONCE_LEN - 1;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.signature.len = AUTH_SIG_LEN - 1;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);
    t = req;
    t.public_key.len = 0;
    t.public_key.data = NULL;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);

    /* Another key's signature under this key. */
    uint8_t pk2[AUTH_PUBLIC_LEN], sk2[AUTH_SECRET_LEN];
    crypto_sign_keypair(pk2, sk2);
    t = req;
    t.public_key.data = pk2;
    assert_int_equal(auth_cluster_verify(&t), COALITION_E_UNAUTHENTICATED);

    /* S + L (the same signature, malleated) is refused. */
    static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                      0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};
    uint8_t saved[AUTH_SIG_LEN];
    memcpy(saved, sig.signature, sizeof(saved));
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned v = (unsigned)sig.signature[32 + i] + order[i] + carry;
        sig.signature[32 + i] = (uint8_t)v;
        carry = v >> 8;
    }
    assert_int_equal(carry, 0); /* S < L < 2^253: S + L fits */
    assert_int_equal(auth_cluster_verify(&req), COALITION_E_UNAUTHENTICATED);
    memcpy(sig.signature, saved, sizeof(saved));
    assert_int_equal(auth_cluster_verify(&req), 0);
}

static void test_auth_replay_window_and_nonces(void **state)
{
    struct auth_fixture *f = *state;
    const uint64_t w = AUTH_CLUSTER_WINDOW_MS;
    struct auth_replay r;
    assert_int_equal(auth_replay_init(&r, 8, w), 0);
    Coalition__ClusterChangeRequest req;
    struct auth_cluster_sig sig;
    cluster_req(&req);
    auth_cluster_sign(&req, T0_MS, f->sk, &sig);
    const char *why = NULL;

    /* Accepted once; the exact same request again is a replay. */
    assert_int_equal(auth_replay_check(&r, req.nonce.data, req.nonce.len, req.time_ms, T0_MS, &why),
                     0);
    assert_int_equal(
        auth_replay_check(&r, req.nonce.data, req.nonce.len, req.time_ms, T0_MS + 1000, &why),
        COALITION_E_UNAUTHENTICATED);
    assert_non_null(why);
    assert_non_null(strstr(why, "replay"));
    /* ... still at the far end of the window. */
    assert_int_equal(
        auth_replay_check(&r, req.nonce.data, req.nonce.len, req.time_ms, T0_MS + w, NULL),
        COALITION_E_UNAUTHENTICATED);
    /* After the window the clock check refuses it. */
    why = NULL;
    assert_int_equal(
        auth_replay_check(&r, req.nonce.data, req.nonce.len, req.time_ms, T0_MS + w + 1, &why),
        COALITION_E_UNAUTHENTICATED);
    assert_non_null(strstr(why, "clock"));

    /* Times more than the window off either way are refused, at the edge
     * accepted. */
    uint8_t nonce[AUTH_NONCE_LEN];
    const uint64_t now = T0_MS + 100000;
    randombytes_buf(nonce, sizeof(nonce));
    assert_int_equal(auth_replay_check(&r, nonce, sizeof(nonce), now - w - 1, now, NULL),
                     COALITION_E_UNAUTHENTICATED);
    assert_int_equal(auth_replay_check(&r, nonce, sizeof(nonce), now + w + 1, now, NULL),
                     COALITION_E_UNAUTHENTICATED);
    assert_int_equal(auth_replay_check(&r, nonce, sizeof(nonce), now + w, now, NULL), 0);
    randombytes_buf(nonce, sizeof(nonce));
    assert_int_equal(auth_replay_check(&r, nonce, sizeof(nonce), now - w, now, NULL), 0);
    /* A nonce of the wrong length. */
    assert_int_equal(auth_replay_check(&r, nonce, sizeof(nonce) - 1, now, now, NULL),
                     COALITION_E_UNAUTHENTICATED);
    auth_replay_free(&r);
}

static void test_auth_replay_full_cache_never_forgets_live(void **state)
{
    (void)state;
    const uint64_t w = 1000;
    struct auth_replay r;
    assert_int_equal(auth_replay_init(&r, 4, w), 0);
    uint8_t nonces[6][AUTH_NONCE_LEN];
    for (size_t i = 0; i < 6; i++) {
        randombytes_buf(nonces[i], AUTH_NONCE_LEN);
    }
    const uint64_t now = T0_MS;
    /* Four live requests, at now-40 .. now-10: the cache is full. */
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            auth_replay_check(&r, nonces[i], AUTH_NONCE_LEN, now - 40 + 10 * i, now, NULL), 0);
    }
    assert_int_equal(r.n, 4);
    /* A fifth evicts the oldest (now-40) and raises the floor to it. */
    assert_int_equal(auth_replay_check(&r, nonces[4], AUTH_NONCE_LEN, now, now, NULL), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.floor_ms, now - 40);
    /* So the evicted one's replay is still refused, by the floor... */
    const char *why = NULL;
    assert_int_equal(auth_replay_check(&r, nonces[0], AUTH_NONCE_LEN, now - 40, now, &why),
                     COALITION_E_UNAUTHENTICATED);
    assert_non_null(why);
    /* ... as is a fresh request that is not newer than the floor. */
    assert_int_equal(auth_replay_check(&r, nonces[5], AUTH_NONCE_LEN, now - 45, now, NULL),
                     COALITION_E_UNAUTHENTICATED);
    /* The others are remembered. */
    for (size_t i = 1; i < 5; i++) {
        assert_int_equal(auth_replay_check(&r, nonces[i], AUTH_NONCE_LEN,
                                           i == 4 ? now : now - 40 + 10 * i, now, NULL),
                         COALITION_E_UNAUTHENTICATED);
    }
    /* Once they are out of the window they make room without raising the
     * floor further. */
    const uint64_t later = now + w + 1;
    assert_int_equal(auth_replay_check(&r, nonces[5], AUTH_NONCE_LEN, later, later, NULL), 0);
    assert_int_equal(r.floor_ms, now - 40);
    assert_true(r.n <= 4);

    /* A reset (a new leader) forgets the nonces but refuses anything signed
     * at or before its floor, so a forgotten nonce cannot come back. */
    auth_replay_reset(&r, later);
    assert_int_equal(r.n, 0);
    assert_int_equal(auth_replay_check(&r, nonces[5], AUTH_NONCE_LEN, later, later + 1, NULL),
                     COALITION_E_UNAUTHENTICATED);
    assert_int_equal(auth_replay_check(&r, nonces[5], AUTH_NONCE_LEN, later + 1, later + 1, NULL),
                     0);
    auth_replay_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_auth_hex_round_trip),
        T(test_auth_hex_refuses_bad_input),
        T(test_auth_keygen_files_and_modes),
        T(test_auth_keygen_refuses_to_overwrite),
        T(test_auth_load_secret_refuses_bad_files),
        T(test_auth_load_public_list),
        T(test_auth_sign_verify_round_trip),
        T(test_auth_sign_verify_empty_group),
        T(test_auth_verify_flipped_bit_fails),
        T(test_auth_verify_refuses_non_canonical_s),
        T(test_auth_refuses_bad_public_keys),
        T(test_auth_api_key_new_and_parse),
        T(test_auth_api_key_parse_refuses_malformed),
        T(test_auth_cluster_sign_verify),
        T(test_auth_cluster_tampered_fails),
        T(test_auth_replay_window_and_nonces),
        T(test_auth_replay_full_cache_never_forgets_live),
#undef T
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
