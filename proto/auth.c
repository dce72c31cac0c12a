/* Keys and signatures shared by node and client (contract in auth.h):
 * libsodium Ed25519 and BLAKE2b, hex key files, SignedGroup signing and
 * verification, API keys.  No ledger state and no network I/O here. */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "errors.h"

_Static_assert(AUTH_PUBLIC_LEN == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key");
_Static_assert(AUTH_SECRET_LEN == crypto_sign_SECRETKEYBYTES, "Ed25519 secret key");
_Static_assert(AUTH_SIG_LEN == crypto_sign_BYTES, "Ed25519 signature");

#define AUTH_KEY_ID_LEN (AUTH_KEY_ID_HEX / 2)

/* The order L of the Ed25519 base point, little-endian. */
static const uint8_t auth_order[32] = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

int auth_init(void)
{
    return sodium_init() < 0 ? COALITION_E_INTERNAL : 0;
}

static int fail(char *err, size_t errlen, int code, const char *what, const char *path)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s: %s", path, what);
    }
    return code;
}

int auth_hex_decode(const char *hex, uint8_t *out, size_t len)
{
    assert(hex != NULL && out != NULL);
    while (*hex == ' ' || *hex == '\t') {
        hex++;
    }
    size_t n = strlen(hex);
    while (n > 0 &&
           (hex[n - 1] == '\n' || hex[n - 1] == '\r' || hex[n - 1] == ' ' || hex[n - 1] == '\t')) {
        n--;
    }
    size_t got = 0;
    const char *end = NULL;
    if (n != 2 * len || sodium_hex2bin(out, len, hex, n, NULL, &got, &end) != 0 || got != len ||
        end != hex + n) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    return 0;
}

void auth_hex_encode(const uint8_t *in, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, in, len);
}

/* Reads a small text file (at most cap-1 bytes) into buf. */
static int read_small(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return fail(err, errlen, COALITION_E_STORAGE, strerror(errno), path);
    }
    size_t n = fread(buf, 1, cap - 1, f);
    bool more = !ferror(f) && fgetc(f) != EOF;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        return fail(err, errlen, COALITION_E_STORAGE, "read error", path);
    }
    if (more) {
        return fail(err, errlen, COALITION_E_INVALID_ARGUMENT, "file too large for a key", path);
    }
    buf[n] = '\0';
    return 0;
}

/* Writes `text` to a new file (never over an existing one) with `mode`. */
static int write_new(const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) {
        return fail(err, errlen, errno == EEXIST ? COALITION_E_ALREADY_EXISTS : COALITION_E_STORAGE,
                    errno == EEXIST ? "exists; refusing to overwrite a key" : strerror(errno),
                    path);
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int rv = (w == (ssize_t)len && fsync(fd) == 0) ? 0 : COALITION_E_STORAGE;
    if (close(fd) != 0) {
        rv = COALITION_E_STORAGE;
    }
    return rv == 0 ? 0 : fail(err, errlen, rv, "write failed", path);
}

int auth_keygen(const char *prefix, uint8_t pk[AUTH_PUBLIC_LEN], char *err, size_t errlen)
{
    assert(prefix != NULL && pk != NULL);
    char path[4096];
    uint8_t sk[AUTH_SECRET_LEN];
    char hex[2 * AUTH_SECRET_LEN + 2];
    crypto_sign_keypair(pk, sk);
    if (snprintf(path, sizeof(path), "%s.key", prefix) >= (int)sizeof(path)) {
        return fail(err, errlen, COALITION_E_INVALID_ARGUMENT, "path too long", prefix);
    }
    auth_hex_encode(sk, sizeof(sk), hex);
    strcat(hex, "\n");
    sodium_memzero(sk, sizeof(sk));
    int rv = write_new(path, hex, 0600, err, errlen);
    sodium_memzero(hex, sizeof(hex));
    if (rv != 0) {
        return rv;
    }
    snprintf(path, sizeof(path), "%s.pub", prefix);
    auth_hex_encode(pk, AUTH_PUBLIC_LEN, hex);
    strcat(hex, "\n");
    return write_new(path, hex, 0644, err, errlen);
}

int auth_load_secret(const char *path, uint8_t sk[AUTH_SECRET_LEN], char *err, size_t errlen)
{
    assert(path != NULL && sk != NULL);
    char buf[2 * AUTH_SECRET_LEN + 16];
    int rv = read_small(path, buf, sizeof(buf), err, errlen);
    if (rv == 0 && auth_hex_decode(buf, sk, AUTH_SECRET_LEN) != 0) {
        rv = fail(err, errlen, COALITION_E_INVALID_ARGUMENT,
                  "not a secret key (expected 128 hex digits)", path);
    }
    if (rv == 0) {
        /* The second half must be the public key of the first. */
        uint8_t pk[AUTH_PUBLIC_LEN], again[AUTH_SECRET_LEN];
        crypto_sign_seed_keypair(pk, again, sk);
        if (sodium_memcmp(again, sk, AUTH_SECRET_LEN) != 0) {
            rv = fail(err, errlen, COALITION_E_INVALID_ARGUMENT, "damaged secret key", path);
        }
        sodium_memzero(again, sizeof(again));
    }
    sodium_memzero(buf, sizeof(buf));
    return rv;
}

int auth_load_public(const char *hex_or_path, uint8_t pk[AUTH_PUBLIC_LEN], char *err, size_t errlen)
{
    assert(hex_or_path != NULL && pk != NULL);
    int rv = 0;
    if (auth_hex_decode(hex_or_path, pk, AUTH_PUBLIC_LEN) != 0) {
        char buf[2 * AUTH_PUBLIC_LEN + 16];
        rv = read_small(hex_or_path, buf, sizeof(buf), err, errlen);
        if (rv == 0 && auth_hex_decode(buf, pk, AUTH_PUBLIC_LEN) != 0) {
            rv = fail(err, errlen, COALITION_E_INVALID_ARGUMENT,
                      "not a public key (expected 64 hex digits)", hex_or_path);
        }
    }
    if (rv == 0 && !auth_public_valid(pk)) {
        rv = fail(err, errlen, COALITION_E_INVALID_ARGUMENT, "not a valid Ed25519 public key",
                  hex_or_path);
    }
    return rv;
}

int auth_load_public_list(const char *path, uint8_t (**out)[AUTH_PUBLIC_LEN], size_t *n, char *err,
                          size_t errlen)
{
    assert(path != NULL && out != NULL && n != NULL);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return fail(err, errlen, COALITION_E_STORAGE, strerror(errno), path);
    }
    uint8_t(*keys)[AUTH_PUBLIC_LEN] = NULL;
    size_t count = 0, cap = 0;
    char line[256];
    int rv = 0;
    unsigned lineno = 0;
    while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0') {
            continue;
        }
        if (count == cap) {
            size_t ncap = cap == 0 ? 8 : 2 * cap;
            void *grown = realloc(keys, ncap * sizeof(*keys));
            if (grown == NULL) {
                rv = COALITION_E_NOMEM;
                break;
            }
            keys = grown;
            cap = ncap;
        }
        if (auth_hex_decode(p, keys[count], AUTH_PUBLIC_LEN) != 0 ||
            !auth_public_valid(keys[count])) {
            char what[64];
            snprintf(what, sizeof(what), "line %u: not a public key", lineno);
            rv = fail(err, errlen, COALITION_E_INVALID_ARGUMENT, what, path);
            break;
        }
        count++;
    }
    if (rv == 0 && ferror(f)) {
        rv = fail(err, errlen, COALITION_E_STORAGE, "read error", path);
    }
    fclose(f);
    if (rv != 0) {
        free(keys);
        return rv;
    }
    *out = keys;
    *n = count;
    return 0;
}

bool auth_public_valid(const uint8_t pk[AUTH_PUBLIC_LEN])
{
    return crypto_core_ed25519_is_valid_point(pk) == 1;
}

/* The signed message: context, NUL, then the packed TxnList.  Hashed first
 * (Ed25519ph-style prehash with BLAKE2b-512) so that a large group needs no
 * copy. */
static void group_digest(const uint8_t *txns, size_t len, uint8_t out[crypto_generichash_BYTES_MAX])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES_MAX);
    crypto_generichash_update(&st, (const uint8_t *)AUTH_GROUP_CONTEXT,
                              sizeof(AUTH_GROUP_CONTEXT)); /* includes the NUL */
    crypto_generichash_update(&st, txns, len);
    crypto_generichash_final(&st, out, crypto_generichash_BYTES_MAX);
}

void auth_group_sign(const uint8_t *txns, size_t len, const uint8_t sk[AUTH_SECRET_LEN],
                     uint8_t sig[AUTH_SIG_LEN])
{
    uint8_t d[crypto_generichash_BYTES_MAX];
    group_digest(txns, len, d);
    crypto_sign_detached(sig, NULL, d, sizeof(d), sk);
}

/* True if the little-endian scalar s is below the group order L. */
static bool scalar_canonical(const uint8_t s[32])
{
    for (int i = 31; i >= 0; i--) {
        if (s[i] != auth_order[i]) {
            return s[i] < auth_order[i];
        }
    }
    return false; /* s == L */
}

int auth_group_verify(const uint8_t *txns, size_t len, const uint8_t *sig, size_t sig_len,
                      const uint8_t pk[AUTH_PUBLIC_LEN])
{
    if (sig == NULL || sig_len != AUTH_SIG_LEN || !scalar_canonical(sig + 32) ||
        !auth_public_valid(pk)) {
        return COALITION_E_UNAUTHENTICATED;
    }
    uint8_t d[crypto_generichash_BYTES_MAX];
    group_digest(txns, len, d);
    return crypto_sign_verify_detached(sig, d, sizeof(d), pk) == 0 ? 0
                                                                   : COALITION_E_UNAUTHENTICATED;
}

int auth_group_make(Coalition__SignedGroup *g, const char *signer, Coalition__Txn *const *txns,
                    size_t n, const uint8_t sk[AUTH_SECRET_LEN])
{
    assert(g != NULL && signer != NULL && (txns != NULL || n == 0) && sk != NULL);
    Coalition__TxnList list = COALITION__TXN_LIST__INIT;
    list.n_txns = n;
    list.txns = (Coalition__Txn **)txns;
    size_t len = coalition__txn_list__get_packed_size(&list);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    uint8_t *sig = malloc(AUTH_SIG_LEN);
    if (buf == NULL || sig == NULL) {
        free(buf);
        free(sig);
        return COALITION_E_NOMEM;
    }
    coalition__txn_list__pack(&list, buf);
    auth_group_sign(buf, len, sk, sig);
    coalition__signed_group__init(g);
    g->signer = (char *)signer;
    g->txns.data = buf;
    g->txns.len = len;
    g->signature.data = sig;
    g->signature.len = AUTH_SIG_LEN;
    return 0;
}

void auth_group_clear(Coalition__SignedGroup *g)
{
    if (g == NULL) {
        return;
    }
    free(g->txns.data);
    free(g->signature.data);
    coalition__signed_group__init(g);
}

void auth_api_key_new(char *key, char *key_id, uint8_t hash[AUTH_HASH_LEN])
{
    uint8_t id[AUTH_KEY_ID_LEN], secret[AUTH_HASH_LEN];
    randombytes_buf(id, sizeof(id));
    randombytes_buf(secret, sizeof(secret));
    auth_hex_encode(id, sizeof(id), key_id);
    memcpy(key, key_id, AUTH_KEY_ID_HEX);
    key[AUTH_KEY_ID_HEX] = '.';
    auth_hex_encode(secret, sizeof(secret), key + AUTH_KEY_ID_HEX + 1);
    crypto_generichash(hash, AUTH_HASH_LEN, secret, sizeof(secret), NULL, 0);
    sodium_memzero(secret, sizeof(secret));
}

int auth_api_key_parse(const char *key, char key_id[AUTH_KEY_ID_HEX + 1],
                       uint8_t hash[AUTH_HASH_LEN])
{
    if (key == NULL || strlen(key) != AUTH_API_KEY_LEN || key[AUTH_KEY_ID_HEX] != '.') {
        return COALITION_E_UNAUTHENTICATED;
    }
    uint8_t id[AUTH_KEY_ID_LEN], secret[AUTH_HASH_LEN];
    char idhex[AUTH_KEY_ID_HEX + 1];
    memcpy(idhex, key, AUTH_KEY_ID_HEX);
    idhex[AUTH_KEY_ID_HEX] = '\0';
    if (auth_hex_decode(idhex, id, sizeof(id)) != 0 ||
        auth_hex_decode(key + AUTH_KEY_ID_HEX + 1, secret, sizeof(secret)) != 0) {
        return COALITION_E_UNAUTHENTICATED;
    }
    /* Canonical lower-case id, whatever case the key came in. */
    auth_hex_encode(id, sizeof(id), key_id);
    crypto_generichash(hash, AUTH_HASH_LEN, secret, sizeof(secret), NULL, 0);
    sodium_memzero(secret, sizeof(secret));
    return 0;
}

bool auth_hash_equal(const uint8_t a[AUTH_HASH_LEN], const uint8_t b[AUTH_HASH_LEN])
{
    return sodium_memcmp(a, b, AUTH_HASH_LEN) == 0;
}

/* ---------------------------------------------------------------------------
 * Membership changes: the signed message and the replay cache. */

static void put_u32(crypto_generichash_state *st, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    crypto_generichash_update(st, b, sizeof(b));
}

static void put_u64(crypto_generichash_state *st, uint64_t v)
{
    put_u32(st, (uint32_t)(v >> 32));
    put_u32(st, (uint32_t)v);
}

/* A string with its 4-byte length (NULL reads as ""). */
static void put_str(crypto_generichash_state *st, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    put_u32(st, (uint32_t)len);
    if (len > 0) {
        crypto_generichash_update(st, (const uint8_t *)s, len);
    }
}

/* BLAKE2b-512 of the message a membership change signs (auth.h).  `nonce`
 * is AUTH_NONCE_LEN bytes. */
static void cluster_digest(const Coalition__ClusterChangeRequest *req, const uint8_t *nonce,
                           uint8_t out[crypto_generichash_BYTES_MAX])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES_MAX);
    crypto_generichash_update(&st, (const uint8_t *)AUTH_CLUSTER_CONTEXT,
                              sizeof(AUTH_CLUSTER_CONTEXT)); /* includes the NUL */
    put_u32(&st, (uint32_t)req->op);
    put_u64(&st, req->id);
    put_str(&st, req->raft_addr);
    put_str(&st, req->client_addr);
    put_u32(&st, (uint32_t)req->role);
    put_u64(&st, req->time_ms);
    crypto_generichash_update(&st, nonce, AUTH_NONCE_LEN);
    crypto_generichash_final(&st, out, crypto_generichash_BYTES_MAX);
}

void auth_cluster_sign(Coalition__ClusterChangeRequest *req, uint64_t time_ms,
                       const uint8_t sk[AUTH_SECRET_LEN], struct auth_cluster_sig *out)
{
    assert(req != NULL && sk != NULL && out != NULL);
    req->time_ms = time_ms;
    randombytes_buf(out->nonce, sizeof(out->nonce));
    memcpy(out->public_key, sk + AUTH_SECRET_LEN - AUTH_PUBLIC_LEN, AUTH_PUBLIC_LEN);
    uint8_t d[crypto_generichash_BYTES_MAX];
    cluster_digest(req, out->nonce, d);
    crypto_sign_detached(out->signature, NULL, d, sizeof(d), sk);
    req->public_key.data = out->public_key;
    req->public_key.len = AUTH_PUBLIC_LEN;
    req->nonce.data = out->nonce;
    req->nonce.len = AUTH_NONCE_LEN;
    req->signature.data = out->signature;
    req->signature.len = AUTH_SIG_LEN;
}

int auth_cluster_verify(const Coalition__ClusterChangeRequest *req)
{
    assert(req != NULL);
    if (req->public_key.data == NULL || req->public_key.len != AUTH_PUBLIC_LEN ||
        req->nonce.data == NULL || req->nonce.len != AUTH_NONCE_LEN ||
        req->signature.data == NULL || req->signature.len != AUTH_SIG_LEN ||
        !scalar_canonical(req->signature.data + 32) || !auth_public_valid(req->public_key.data)) {
        return COALITION_E_UNAUTHENTICATED;
    }
    uint8_t d[crypto_generichash_BYTES_MAX];
    cluster_digest(req, req->nonce.data, d);
    return crypto_sign_verify_detached(req->signature.data, d, sizeof(d), req->public_key.data) == 0
               ? 0
               : COALITION_E_UNAUTHENTICATED;
}

int auth_replay_init(struct auth_replay *r, size_t cap, uint64_t window_ms)
{
    assert(r != NULL && cap > 0);
    memset(r, 0, sizeof(*r));
    r->e = calloc(cap, sizeof(*r->e));
    if (r->e == NULL) {
        return COALITION_E_NOMEM;
    }
    r->cap = cap;
    r->window_ms = window_ms;
    return 0;
}

void auth_replay_free(struct auth_replay *r)
{
    if (r == NULL) {
        return;
    }
    free(r->e);
    memset(r, 0, sizeof(*r));
}

void auth_replay_reset(struct auth_replay *r, uint64_t floor_ms)
{
    assert(r != NULL);
    r->n = 0;
    r->floor_ms = floor_ms;
}

/* True if `t` is more than the window away from `now`, either way. */
static bool outside_window(uint64_t t, uint64_t now, uint64_t w)
{
    return t < now ? now - t > w : t - now > w;
}

#define REPLAY_BEFORE_FLOOR                                                                        \
    "signed before what the replay memory covers (a new leader, or a full cache)"

static int replay_refuse(const char **why, const char *reason)
{
    if (why != NULL) {
        *why = reason;
    }
    return COALITION_E_UNAUTHENTICATED;
}

int auth_replay_check(struct auth_replay *r, const uint8_t *nonce, size_t nonce_len,
                      uint64_t time_ms, uint64_t now_ms, const char **why)
{
    assert(r != NULL && r->e != NULL);
    if (nonce == NULL || nonce_len != AUTH_NONCE_LEN) {
        return replay_refuse(why, "no nonce");
    }
    if (outside_window(time_ms, now_ms, r->window_ms)) {
        return replay_refuse(why, "signed at a time too far from this node's clock");
    }
    if (time_ms <= r->floor_ms) {
        return replay_refuse(
            why, "signed before what the replay memory covers (a new leader, or a full cache)");
    }
    /* Drop what has left the window (compacting), look for the nonce. */
    size_t kept = 0;
    bool seen = false;
    for (size_t i = 0; i < r->n; i++) {
        if (r->e[i].time_ms < now_ms && now_ms - r->e[i].time_ms > r->window_ms) {
            continue;
        }
        seen = seen || sodium_memcmp(r->e[i].nonce, nonce, AUTH_NONCE_LEN) == 0;
        r->e[kept++] = r->e[i];
    }
    r->n = kept;
    if (seen) {
        return replay_refuse(why, "a replay (nonce already used)");
    }
    if (r->n == r->cap) {
        /* Full of live entries: forget the oldest and refuse from now on
         * anything not newer than it. */
        size_t oldest = 0;
        for (size_t i = 1; i < r->n; i++) {
            if (r->e[i].time_ms < r->e[oldest].time_ms) {
                oldest = i;
            }
        }
        if (r->e[oldest].time_ms > r->floor_ms) {
            r->floor_ms = r->e[oldest].time_ms;
        }
        r->e[oldest] = r->e[--r->n];
        if (time_ms <= r->floor_ms) {
            return replay_refuse(
                why, "signed before what the replay memory covers (a new leader, or a full cache)");
        }
    }
    memcpy(r->e[r->n].nonce, nonce, AUTH_NONCE_LEN);
    r->e[r->n].time_ms = time_ms;
    r->n++;
    return 0;
}
