/* The ledger state machine (contract in ledger.h): validation, the apply of
 * every entry type, reads (balance, history) and the full verify.  State
 * lives in the store under one-byte key prefixes:
 *
 *   'm' "head"                 seq(8) hash(32) applied_index(8) time_ms(8)
 *   'p' partner                PartnerRecord
 *   'M' member                 MemberRecord
 *   'c' card                   member id
 *   'a' kind ':' id            balance, int64 big-endian; kind i (partner
 *                              issuance), r (partner redemptions), m (member)
 *   'l' member 0 origin8 seq8  Lot: points of one issuer, oldest first
 *   't' partner 0 txn_id       TxnRecord (idempotency, reversals)
 *   'e' seq8                   hash(32) + packed Entry (the hash chain)
 *   'h' member 0 seq8          (empty) history index
 *   'n' id8                    NodeInfo: the node directory (cluster)
 *
 * Nothing here reads a clock, randomness or node identity. */
#include "ledger.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bytes.h"
#include "errors.h"

#define LEDGER_DIGEST_LEN          16
#define LEDGER_KEY_MAX             160
#define LEDGER_HEAD_LEN            (8 + LEDGER_HASH_LEN + 8 + 8)
#define LEDGER_POSTINGS_MAX        2
#define LEDGER_HISTORY_MEMBERS_MAX 2

_Static_assert(LEDGER_KEY_MAX > 2 + 2 * LEDGER_ID_MAX + 16, "keys fit the key buffer");

static const char LEDGER_HEAD_KEY[] = "mhead";
/* Present while a snapshot replaces the store (see ledger_restore_begin). */
static const char LEDGER_RESTORE_KEY[] = "mrestore";

struct ledger {
    struct store *store;     /* borrowed */
    struct store_batch *wb;  /* reused for every batch */
    struct ledger_head head; /* as of the last applied batch */
};

/* ---------------------------------------------------------------------------
 * Keys and encodings */

struct key {
    uint8_t buf[LEDGER_KEY_MAX];
    size_t len;
};

static void key_init(struct key *k, char tag)
{
    k->buf[0] = (uint8_t)tag;
    k->len = 1;
}

static void key_add(struct key *k, const void *data, size_t len)
{
    assert(k->len + len <= sizeof(k->buf));
    memcpy(k->buf + k->len, data, len);
    k->len += len;
}

static void key_add_str(struct key *k, const char *s)
{
    key_add(k, s, strlen(s));
}

static void key_add_u64(struct key *k, uint64_t v)
{
    uint8_t b[8];
    bytes_put_be64(b, v);
    key_add(k, b, sizeof(b));
}

/* 'a' kind ':' id */
static void key_account(struct key *k, char kind, const char *id)
{
    key_init(k, 'a');
    char pfx[2] = {kind, ':'};
    key_add(k, pfx, sizeof(pfx));
    key_add_str(k, id);
}

/* tag id 0, the prefix of every key of one member or partner */
static void key_owner(struct key *k, char tag, const char *id)
{
    key_init(k, tag);
    key_add_str(k, id);
    key_add(k, "", 1);
}

static void key_entry(struct key *k, uint64_t seq)
{
    key_init(k, 'e');
    key_add_u64(k, seq);
}

static void account_name(char *out, size_t cap, char kind, const char *id)
{
    int n = snprintf(out, cap, "%c:%s", kind, id);
    assert(n > 0 && (size_t)n < cap);
    (void)n;
}

/* ---------------------------------------------------------------------------
 * Validation (stateless) */

static bool ledger_id_ok(const char *s)
{
    if (s == NULL) {
        return false;
    }
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok || n >= LEDGER_ID_MAX) {
            return false;
        }
    }
    return n > 0;
}

static bool ledger_text_ok(const char *s, bool required)
{
    if (s == NULL || s[0] == '\0') {
        return !required;
    }
    size_t n = strlen(s);
    if (n > LEDGER_REASON_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

static bool ledger_amount_ok(int64_t points)
{
    return points >= 1 && points <= LEDGER_POINTS_MAX;
}

static bool empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* Fields each kind may carry (reason always may). */
enum {
    F_PARTNER = 1 << 0,
    F_TXN = 1 << 1,
    F_MEMBER = 1 << 2,
    F_MEMBER_TO = 1 << 3,
    F_POINTS = 1 << 4,
    F_OF_TXN = 1 << 5,
    F_NAME = 1 << 6,
    F_CARD = 1 << 7,
};

static unsigned fields_allowed(Coalition__TxnKind kind)
{
    switch (kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
        return F_PARTNER | F_NAME | F_TXN;
    case COALITION__TXN_KIND__TXN_MEMBER_ADD:
        return F_MEMBER | F_CARD | F_PARTNER | F_TXN;
    case COALITION__TXN_KIND__TXN_AWARD:
    case COALITION__TXN_KIND__TXN_REDEEM:
        return F_PARTNER | F_TXN | F_MEMBER | F_POINTS;
    case COALITION__TXN_KIND__TXN_REVERSE:
        return F_PARTNER | F_TXN | F_OF_TXN | F_POINTS;
    case COALITION__TXN_KIND__TXN_TRANSFER:
        return F_PARTNER | F_TXN | F_MEMBER | F_MEMBER_TO | F_POINTS;
    default:
        return 0;
    }
}

/* The fields set in t, as F_ bits. */
static unsigned fields_present(const Coalition__Txn *t)
{
    return (empty(t->partner) ? 0u : F_PARTNER) | (empty(t->txn_id) ? 0u : F_TXN) |
           (empty(t->member) ? 0u : F_MEMBER) | (empty(t->member_to) ? 0u : F_MEMBER_TO) |
           (t->points == 0 ? 0u : F_POINTS) | (empty(t->of_txn) ? 0u : F_OF_TXN) |
           (empty(t->name) ? 0u : F_NAME) | (empty(t->card) ? 0u : F_CARD);
}

int ledger_validate(const Coalition__Txn *t)
{
    if (t == NULL) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    /* Only what the kind uses, nothing the schema does not know, and every
     * optional id well formed: an entry stays small (it is kept forever and
     * sent to every node). */
    if (t->base.n_unknown_fields != 0 || (fields_present(t) & ~fields_allowed(t->kind)) != 0 ||
        !ledger_text_ok(t->reason, false) || (!empty(t->txn_id) && !ledger_id_ok(t->txn_id)) ||
        (!empty(t->partner) && !ledger_id_ok(t->partner))) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    switch (t->kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
        if (!ledger_id_ok(t->partner) || !ledger_text_ok(t->name, true)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return 0;
    case COALITION__TXN_KIND__TXN_MEMBER_ADD:
        if (!ledger_id_ok(t->member) || (!empty(t->card) && !ledger_id_ok(t->card))) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return 0;
    case COALITION__TXN_KIND__TXN_AWARD:
    case COALITION__TXN_KIND__TXN_REDEEM:
        if (!ledger_id_ok(t->partner) || !ledger_id_ok(t->member) || !ledger_id_ok(t->txn_id)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return ledger_amount_ok(t->points) ? 0 : COALITION_E_INVALID_AMOUNT;
    case COALITION__TXN_KIND__TXN_REVERSE:
        if (!ledger_id_ok(t->partner) || !ledger_id_ok(t->txn_id) || !ledger_id_ok(t->of_txn)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return t->points == 0 || ledger_amount_ok(t->points) ? 0 : COALITION_E_INVALID_AMOUNT;
    case COALITION__TXN_KIND__TXN_TRANSFER:
        if (!ledger_id_ok(t->partner) || !ledger_id_ok(t->member) || !ledger_id_ok(t->member_to) ||
            !ledger_id_ok(t->txn_id) || strcmp(t->member, t->member_to) == 0) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return ledger_amount_ok(t->points) ? 0 : COALITION_E_INVALID_AMOUNT;
    default:
        return COALITION_E_INVALID_ARGUMENT;
    }
}

/* ---------------------------------------------------------------------------
 * Typed reads and writes through the batch */

/* Decodes a stored balance (8 bytes, big-endian) and frees `v`. */
static int decode_i64(void *v, size_t len, int64_t *out)
{
    int rv = len == 8 ? 0 : COALITION_E_STORAGE;
    if (rv == 0) {
        *out = (int64_t)bytes_get_be64(v);
    }
    free(v);
    return rv;
}

/* Reads an int64 account balance.  0, STORE_NOT_FOUND or a storage error. */
static int batch_get_i64(struct store_batch *b, const struct key *k, int64_t *out)
{
    void *v = NULL;
    size_t len = 0;
    int rv = store_batch_get(b, k->buf, k->len, &v, &len);
    return rv != 0 ? rv : decode_i64(v, len, out);
}

static void batch_put_i64(struct store_batch *b, const struct key *k, int64_t v)
{
    uint8_t buf[8];
    bytes_put_be64(buf, (uint64_t)v);
    store_batch_put(b, k->buf, k->len, buf, sizeof(buf));
}

/* Reads and unpacks a protobuf record.  0 with *out (free with
 * protobuf_c_message_free_unpacked), STORE_NOT_FOUND or a storage error (a
 * record that does not decode is corrupt storage). */
static int batch_get_msg(struct store_batch *b, const struct key *k,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    void *v = NULL;
    size_t len = 0;
    int rv = store_batch_get(b, k->buf, k->len, &v, &len);
    if (rv != 0) {
        return rv;
    }
    *out = protobuf_c_message_unpack(desc, NULL, len, v);
    free(v);
    return *out != NULL ? 0 : COALITION_E_STORAGE;
}

/* Packs and puts a protobuf record.  0 or NOMEM. */
static int batch_put_msg(struct store_batch *b, const struct key *k, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t stack[512];
    uint8_t *buf = len <= sizeof(stack) ? stack : malloc(len);
    if (buf == NULL) {
        return COALITION_E_NOMEM;
    }
    protobuf_c_message_pack(m, buf);
    store_batch_put(b, k->buf, k->len, buf, len);
    if (buf != stack) {
        free(buf);
    }
    return 0;
}

/* BLAKE2b-128 of the packed transaction.  0 or NOMEM (fatal for the apply:
 * a node-local fallback would make replicas disagree). */
static int txn_digest(const Coalition__Txn *t, uint8_t out[LEDGER_DIGEST_LEN])
{
    size_t len = coalition__txn__get_packed_size(t);
    uint8_t stack[1024];
    uint8_t *buf = len <= sizeof(stack) ? stack : malloc(len);
    if (buf == NULL) {
        return COALITION_E_NOMEM;
    }
    coalition__txn__pack(t, buf);
    crypto_generichash(out, LEDGER_DIGEST_LEN, buf, len, NULL, 0);
    if (buf != stack) {
        free(buf);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Open, head */

static void head_encode(const struct ledger_head *h, uint8_t out[LEDGER_HEAD_LEN])
{
    bytes_put_be64(out, h->seq);
    memcpy(out + 8, h->hash, LEDGER_HASH_LEN);
    bytes_put_be64(out + 8 + LEDGER_HASH_LEN, h->applied_index);
    bytes_put_be64(out + 16 + LEDGER_HASH_LEN, h->time_ms);
}

static int head_decode(const uint8_t *p, size_t len, struct ledger_head *h)
{
    if (len != LEDGER_HEAD_LEN) {
        return COALITION_E_STORAGE;
    }
    h->seq = bytes_get_be64(p);
    memcpy(h->hash, p + 8, LEDGER_HASH_LEN);
    h->applied_index = bytes_get_be64(p + 8 + LEDGER_HASH_LEN);
    h->time_ms = bytes_get_be64(p + 16 + LEDGER_HASH_LEN);
    return 0;
}

/* Splits a stored entry into hash and body and checks the hash.  Returns 0
 * and the unpacked entry (caller frees) or VERIFY_FAILED with `why`. */
static int entry_decode(const uint8_t *v, size_t len, Coalition__Entry **out, uint8_t hash[32],
                        const char **why)
{
    if (len < LEDGER_HASH_LEN) {
        *why = "entry record too short";
        return COALITION_E_VERIFY_FAILED;
    }
    uint8_t computed[LEDGER_HASH_LEN];
    crypto_generichash(computed, sizeof(computed), v + LEDGER_HASH_LEN, len - LEDGER_HASH_LEN, NULL,
                       0);
    if (sodium_memcmp(computed, v, LEDGER_HASH_LEN) != 0) {
        *why = "entry hash does not match its contents";
        return COALITION_E_VERIFY_FAILED;
    }
    memcpy(hash, v, LEDGER_HASH_LEN);
    *out = coalition__entry__unpack(NULL, len - LEDGER_HASH_LEN, v + LEDGER_HASH_LEN);
    if (*out == NULL) {
        *why = "entry does not decode";
        return COALITION_E_VERIFY_FAILED;
    }
    return 0;
}

static char *strdup_msg(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

/* The cheap start-up check: the head entry exists, hashes to the recorded
 * head hash, and nothing follows it (not even when the head is 0: a lost head
 * record must not turn a ledger into an empty one). */
static int ledger_check_head(struct ledger *l, char **errmsg)
{
    const char *why = NULL;
    struct key k;
    void *v = NULL;
    size_t len = 0;
    int rv = 0;
    if (l->head.seq > 0) {
        key_entry(&k, l->head.seq);
        rv = store_get(l->store, NULL, k.buf, k.len, &v, &len);
        if (rv == STORE_NOT_FOUND) {
            why = "the head entry is missing";
        } else if (rv != 0) {
            return rv;
        } else {
            Coalition__Entry *e = NULL;
            uint8_t hash[LEDGER_HASH_LEN];
            if (entry_decode(v, len, &e, hash, &why) == 0) {
                if (e->seq != l->head.seq || memcmp(hash, l->head.hash, LEDGER_HASH_LEN) != 0) {
                    why = "the head entry does not match the recorded head";
                }
                coalition__entry__free_unpacked(e, NULL);
            }
            free(v);
        }
    }
    if (why == NULL) {
        key_entry(&k, l->head.seq + 1);
        rv = store_get(l->store, NULL, k.buf, k.len, &v, &len);
        if (rv == 0) {
            free(v);
            why = "an entry follows the recorded head";
        } else if (rv != STORE_NOT_FOUND) {
            return rv;
        }
    }
    if (why != NULL) {
        if (errmsg != NULL) {
            *errmsg = strdup_msg(why);
        }
        return COALITION_E_VERIFY_FAILED;
    }
    return 0;
}

int ledger_open(struct store *s, struct ledger **out, char **errmsg)
{
    assert(s != NULL && out != NULL);
    if (sodium_init() < 0) {
        return COALITION_E_INTERNAL;
    }
    struct ledger *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return COALITION_E_NOMEM;
    }
    l->store = s;
    int rv = store_batch_create(s, &l->wb);
    if (rv != 0) {
        free(l);
        return rv;
    }
    rv = ledger_reload(l, errmsg);
    if (rv != 0) {
        ledger_close(l);
        return rv;
    }
    *out = l;
    return 0;
}

void ledger_close(struct ledger *l)
{
    if (l == NULL) {
        return;
    }
    store_batch_destroy(l->wb);
    free(l);
}

void ledger_get_head(const struct ledger *l, struct ledger_head *out)
{
    *out = l->head;
}

/* ---------------------------------------------------------------------------
 * Apply */

/* One transaction being applied. */
struct apply {
    struct ledger *l;
    struct store_batch *b;
    uint64_t time_ms;
    const Coalition__Txn *txn;
    struct ledger_result *res;
    uint8_t digest[LEDGER_DIGEST_LEN];
    Coalition__Posting postings[LEDGER_POSTINGS_MAX];
    Coalition__Posting *posting_ptrs[LEDGER_POSTINGS_MAX];
    char accounts[LEDGER_POSTINGS_MAX * 2][LEDGER_ID_MAX + 3];
    size_t n_postings;
    const char *history[LEDGER_HISTORY_MEMBERS_MAX];
    size_t n_history;
};

/* A business rejection: not a failure of the apply. */
static int reject(struct apply *a, int code)
{
    assert(code < 0);
    a->res->code = code;
    return 0;
}

static void add_posting(struct apply *a, char debit_kind, const char *debit, char credit_kind,
                        const char *credit, int64_t amount)
{
    assert(a->n_postings < LEDGER_POSTINGS_MAX && amount > 0);
    size_t i = a->n_postings++;
    Coalition__Posting *p = &a->postings[i];
    coalition__posting__init(p);
    account_name(a->accounts[2 * i], sizeof(a->accounts[0]), debit_kind, debit);
    account_name(a->accounts[2 * i + 1], sizeof(a->accounts[0]), credit_kind, credit);
    p->debit = a->accounts[2 * i];
    p->credit = a->accounts[2 * i + 1];
    p->amount = amount;
    a->posting_ptrs[i] = p;
}

/* Appends the entry for the current transaction: next seq, chained hash,
 * history index for the members it touches.  Updates the in-memory head, so
 * it is the last step of an accepted transaction. */
static int append_entry(struct apply *a)
{
    struct ledger_head *h = &a->l->head;
    Coalition__Entry e = COALITION__ENTRY__INIT;
    e.seq = h->seq + 1;
    e.time_ms = a->time_ms;
    e.prev_hash.data = h->hash;
    e.prev_hash.len = LEDGER_HASH_LEN;
    e.txn = (Coalition__Txn *)a->txn;
    e.n_postings = a->n_postings;
    e.postings = a->posting_ptrs;

    size_t body = coalition__entry__get_packed_size(&e);
    uint8_t *buf = malloc(LEDGER_HASH_LEN + body);
    if (buf == NULL) {
        return COALITION_E_NOMEM;
    }
    coalition__entry__pack(&e, buf + LEDGER_HASH_LEN);
    crypto_generichash(buf, LEDGER_HASH_LEN, buf + LEDGER_HASH_LEN, body, NULL, 0);
    struct key k;
    key_entry(&k, e.seq);
    store_batch_put(a->b, k.buf, k.len, buf, LEDGER_HASH_LEN + body);
    for (size_t i = 0; i < a->n_history; i++) {
        key_owner(&k, 'h', a->history[i]);
        key_add_u64(&k, e.seq);
        store_batch_put(a->b, k.buf, k.len, "", 0);
    }
    h->seq = e.seq;
    memcpy(h->hash, buf, LEDGER_HASH_LEN);
    free(buf);
    a->res->code = 0;
    a->res->seq = e.seq;
    a->res->time_ms = a->time_ms;
    return 0;
}

/* Looks up (partner, txn_id).  Returns 0 if the transaction is new (and
 * nothing is set), 0 with res filled if it is a duplicate or a conflict
 * (then *done is true), or a storage error. */
static int check_idempotency(struct apply *a, bool *done)
{
    *done = false;
    struct key k;
    key_owner(&k, 't', a->txn->partner);
    key_add_str(&k, a->txn->txn_id);
    Coalition__TxnRecord *rec = NULL;
    int rv = batch_get_msg(a->b, &k, &coalition__txn_record__descriptor, (ProtobufCMessage **)&rec);
    if (rv == STORE_NOT_FOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    *done = true;
    if (rec->digest.len != LEDGER_DIGEST_LEN ||
        memcmp(rec->digest.data, a->digest, LEDGER_DIGEST_LEN) != 0) {
        a->res->code = COALITION_E_CONFLICT;
    } else {
        a->res->code = 0;
        a->res->duplicate = true;
        a->res->seq = rec->seq;
        a->res->points = rec->points;
        a->res->time_ms = rec->time_ms;
    }
    coalition__txn_record__free_unpacked(rec, NULL);
    return 0;
}

/* Stores the record of the current (accepted) transaction; call after
 * append_entry so that the seq is known. */
static int put_txn_record(struct apply *a, Coalition__TxnRecord *rec)
{
    struct key k;
    key_owner(&k, 't', a->txn->partner);
    key_add_str(&k, a->txn->txn_id);
    rec->seq = a->res->seq;
    rec->time_ms = a->time_ms;
    rec->digest.data = a->digest;
    rec->digest.len = LEDGER_DIGEST_LEN;
    rec->kind = a->txn->kind;
    return batch_put_msg(a->b, &k, &rec->base);
}

/* Reads an account that must exist: 0, or `missing` as a rejection code
 * through *code, or a storage error. */
static int get_account(struct apply *a, char kind, const char *id, int missing, struct key *k,
                       int64_t *bal, int *code)
{
    key_account(k, kind, id);
    int rv = batch_get_i64(a->b, k, bal);
    if (rv == STORE_NOT_FOUND) {
        *code = missing;
        return 0;
    }
    *code = 0;
    return rv;
}

/* new = bal + delta, within int64 and, for members, never negative. */
static bool add_checked(int64_t bal, int64_t delta, int64_t *out)
{
    return !__builtin_add_overflow(bal, delta, out);
}

static void lot_key_make(struct key *k, const char *member, uint64_t origin, uint64_t arrival)
{
    key_owner(k, 'l', member);
    key_add_u64(k, origin);
    key_add_u64(k, arrival);
}

/* Adds `points` of (issuer, earned_ms) to the lot under `k` (created if
 * absent).  0 or an error. */
static int lot_add(struct apply *a, const struct key *k, const char *issuer, uint64_t earned_ms,
                   int64_t points)
{
    Coalition__Lot *lot = NULL;
    int rv = batch_get_msg(a->b, k, &coalition__lot__descriptor, (ProtobufCMessage **)&lot);
    if (rv != 0 && rv != STORE_NOT_FOUND) {
        return rv;
    }
    Coalition__Lot fresh = COALITION__LOT__INIT;
    fresh.issuer = (char *)issuer;
    fresh.earned_ms = earned_ms;
    fresh.left = points;
    if (lot != NULL) {
        if (!add_checked(lot->left, points, &fresh.left)) {
            coalition__lot__free_unpacked(lot, NULL);
            return COALITION_E_OVERFLOW;
        }
    }
    rv = batch_put_msg(a->b, k, &fresh.base);
    if (lot != NULL) {
        coalition__lot__free_unpacked(lot, NULL);
    }
    return rv;
}

/* Takes `points` from `member`'s lots, oldest first, recording each use in
 * *uses (malloc'd array of malloc'd LotUse, freed by free_uses).  Returns 0,
 * INSUFFICIENT_POINTS via res if the lots do not cover it, or an error. */
static int lots_take(struct apply *a, const char *member, int64_t points, Coalition__LotUse ***uses,
                     size_t *n_uses)
{
    struct key pfx;
    key_owner(&pfx, 'l', member);
    struct store_iter *it = NULL;
    int rv = store_iter_create(a->l->store, a->b, NULL, pfx.buf, pfx.len, &it);
    if (rv != 0) {
        return rv;
    }
    /* First collect (the iterator must not outlive batch changes), then
     * write the reduced lots. */
    size_t cap = 4;
    Coalition__LotUse **u = malloc(cap * sizeof(*u));
    size_t n = 0;
    int64_t need = points;
    for (store_iter_seek_first(it); rv == 0 && need > 0 && store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const void *kp = store_iter_key(it, &klen);
        const void *vp = store_iter_value(it, &vlen);
        Coalition__Lot *lot = coalition__lot__unpack(NULL, vlen, vp);
        if (lot == NULL || u == NULL || lot->left <= 0 || klen > LEDGER_KEY_MAX) {
            if (lot != NULL) {
                coalition__lot__free_unpacked(lot, NULL);
            }
            rv = u == NULL ? COALITION_E_NOMEM : COALITION_E_STORAGE;
            break;
        }
        if (n == cap) {
            cap *= 2;
            Coalition__LotUse **grown = realloc(u, cap * sizeof(*u));
            if (grown == NULL) {
                coalition__lot__free_unpacked(lot, NULL);
                rv = COALITION_E_NOMEM;
                break;
            }
            u = grown;
        }
        Coalition__LotUse *use = malloc(sizeof(*use) + klen + strlen(lot->issuer) + 1);
        if (use == NULL) {
            coalition__lot__free_unpacked(lot, NULL);
            rv = COALITION_E_NOMEM;
            break;
        }
        coalition__lot_use__init(use);
        uint8_t *tail = (uint8_t *)(use + 1);
        memcpy(tail, kp, klen);
        use->lot_key.data = tail;
        use->lot_key.len = klen;
        use->issuer = (char *)tail + klen;
        strcpy(use->issuer, lot->issuer);
        use->earned_ms = lot->earned_ms;
        use->points = lot->left < need ? lot->left : need;
        need -= use->points;
        u[n++] = use;
        coalition__lot__free_unpacked(lot, NULL);
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    *uses = u;
    *n_uses = n;
    if (rv != 0) {
        return rv;
    }
    if (need > 0) {
        /* The balance said there were enough points but the lots disagree:
         * refuse rather than create points. */
        return reject(a, COALITION_E_INSUFFICIENT_POINTS);
    }
    for (size_t i = 0; i < n; i++) {
        Coalition__Lot *lot = NULL;
        struct key k;
        k.len = u[i]->lot_key.len;
        memcpy(k.buf, u[i]->lot_key.data, k.len);
        rv = batch_get_msg(a->b, &k, &coalition__lot__descriptor, (ProtobufCMessage **)&lot);
        if (rv != 0) {
            return rv == STORE_NOT_FOUND ? COALITION_E_STORAGE : rv;
        }
        lot->left -= u[i]->points;
        assert(lot->left >= 0);
        if (lot->left == 0) {
            store_batch_delete(a->b, k.buf, k.len);
        } else {
            rv = batch_put_msg(a->b, &k, &lot->base);
        }
        coalition__lot__free_unpacked(lot, NULL);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static void free_uses(Coalition__LotUse **uses, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(uses[i]);
    }
    free(uses);
}

/* Moves `points` between two accounts read earlier (keys and balances),
 * rejecting overflow and members going negative. */
static int move_points(struct apply *a, const struct key *from, int64_t from_bal,
                       bool from_is_member, const struct key *to, int64_t to_bal, int64_t points)
{
    int64_t nf = 0, nt = 0;
    if (!add_checked(from_bal, -points, &nf) || !add_checked(to_bal, points, &nt)) {
        return reject(a, COALITION_E_OVERFLOW);
    }
    if (from_is_member && nf < 0) {
        return reject(a, COALITION_E_INSUFFICIENT_POINTS);
    }
    batch_put_i64(a->b, from, nf);
    batch_put_i64(a->b, to, nt);
    return 0;
}

/* The time of entry `seq`, which a duplicate reports as its own.  0 or a
 * storage error (the entry of a stored record must exist). */
static int entry_time(struct apply *a, uint64_t seq, uint64_t *time_ms)
{
    struct key k;
    key_entry(&k, seq);
    void *v = NULL;
    size_t len = 0;
    int rv = store_batch_get(a->b, k.buf, k.len, &v, &len);
    if (rv != 0) {
        return rv == STORE_NOT_FOUND ? COALITION_E_STORAGE : rv;
    }
    Coalition__Entry *e = NULL;
    uint8_t hash[LEDGER_HASH_LEN];
    const char *why = NULL;
    rv = entry_decode(v, len, &e, hash, &why);
    free(v);
    if (rv != 0) {
        return COALITION_E_STORAGE;
    }
    *time_ms = e->time_ms;
    coalition__entry__free_unpacked(e, NULL);
    return 0;
}

/* An admission (partner, member) of an id that exists: the same request
 * again is a duplicate with the original's seq and time, another one is
 * ALREADY_EXISTS.  0 or a storage error. */
static int admin_repeat(struct apply *a, bool same, uint64_t old_seq)
{
    if (!same) {
        a->res->code = COALITION_E_ALREADY_EXISTS;
        return 0;
    }
    a->res->duplicate = true;
    a->res->seq = old_seq;
    return entry_time(a, old_seq, &a->res->time_ms);
}

static int apply_partner_add(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    struct key k;
    key_init(&k, 'p');
    key_add_str(&k, t->partner);
    Coalition__PartnerRecord *old = NULL;
    int rv =
        batch_get_msg(a->b, &k, &coalition__partner_record__descriptor, (ProtobufCMessage **)&old);
    if (rv == 0) {
        rv = admin_repeat(a, strcmp(old->name, t->name) == 0, old->seq);
        coalition__partner_record__free_unpacked(old, NULL);
        return rv;
    }
    if (rv != STORE_NOT_FOUND) {
        return rv;
    }
    if ((rv = append_entry(a)) != 0) {
        return rv;
    }
    Coalition__PartnerRecord rec = COALITION__PARTNER_RECORD__INIT;
    rec.name = t->name;
    rec.seq = a->res->seq;
    if ((rv = batch_put_msg(a->b, &k, &rec.base)) != 0) {
        return rv;
    }
    key_account(&k, 'i', t->partner);
    batch_put_i64(a->b, &k, 0);
    key_account(&k, 'r', t->partner);
    batch_put_i64(a->b, &k, 0);
    return 0;
}

static int apply_member_add(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    struct key k;
    key_init(&k, 'M');
    key_add_str(&k, t->member);
    Coalition__MemberRecord *old = NULL;
    int rv =
        batch_get_msg(a->b, &k, &coalition__member_record__descriptor, (ProtobufCMessage **)&old);
    if (rv == 0) {
        bool same = empty(t->card) ? old->n_cards == 0
                                   : old->n_cards == 1 && strcmp(old->cards[0], t->card) == 0;
        rv = admin_repeat(a, same, old->seq);
        coalition__member_record__free_unpacked(old, NULL);
        return rv;
    }
    if (rv != STORE_NOT_FOUND) {
        return rv;
    }
    struct key ck;
    if (!empty(t->card)) {
        key_init(&ck, 'c');
        key_add_str(&ck, t->card);
        void *v = NULL;
        size_t len = 0;
        rv = store_batch_get(a->b, ck.buf, ck.len, &v, &len);
        if (rv == 0) {
            free(v);
            return reject(a, COALITION_E_ALREADY_EXISTS);
        }
        if (rv != STORE_NOT_FOUND) {
            return rv;
        }
        store_batch_put(a->b, ck.buf, ck.len, t->member, strlen(t->member));
    }
    a->history[a->n_history++] = t->member;
    if ((rv = append_entry(a)) != 0) {
        return rv;
    }
    Coalition__MemberRecord rec = COALITION__MEMBER_RECORD__INIT;
    char *cards[1] = {t->card};
    rec.n_cards = empty(t->card) ? 0 : 1;
    rec.cards = cards;
    rec.seq = a->res->seq;
    if ((rv = batch_put_msg(a->b, &k, &rec.base)) != 0) {
        return rv;
    }
    key_account(&k, 'm', t->member);
    batch_put_i64(a->b, &k, 0);
    return 0;
}

static int apply_award(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    struct key ik, mk;
    int64_t ibal = 0, mbal = 0;
    int code = 0;
    int rv = get_account(a, 'i', t->partner, COALITION_E_UNKNOWN_PARTNER, &ik, &ibal, &code);
    if (rv != 0 || code != 0) {
        return rv != 0 ? rv : reject(a, code);
    }
    rv = get_account(a, 'm', t->member, COALITION_E_UNKNOWN_MEMBER, &mk, &mbal, &code);
    if (rv != 0 || code != 0) {
        return rv != 0 ? rv : reject(a, code);
    }
    if ((rv = move_points(a, &ik, ibal, false, &mk, mbal, t->points)) != 0 || a->res->code != 0) {
        return rv;
    }
    add_posting(a, 'i', t->partner, 'm', t->member, t->points);
    a->history[a->n_history++] = t->member;
    if ((rv = append_entry(a)) != 0) {
        return rv;
    }
    struct key lk;
    lot_key_make(&lk, t->member, a->res->seq, a->res->seq);
    if ((rv = lot_add(a, &lk, t->partner, a->time_ms, t->points)) != 0) {
        return rv;
    }
    Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
    rec.member = t->member;
    rec.points = t->points;
    rec.lot_key.data = lk.buf;
    rec.lot_key.len = lk.len;
    a->res->points = t->points;
    return put_txn_record(a, &rec);
}

/* Redeem (member -> partner's redemption account) and transfer (member ->
 * member) share the lot consumption. */
static int apply_spend(struct apply *a, bool transfer)
{
    const Coalition__Txn *t = a->txn;
    struct key fk, tk, pk;
    int64_t fbal = 0, tbal = 0, pbal = 0;
    int code = 0;
    /* The submitting partner must exist in both cases. */
    int rv = get_account(a, 'r', t->partner, COALITION_E_UNKNOWN_PARTNER, &pk, &pbal, &code);
    if (rv != 0 || code != 0) {
        return rv != 0 ? rv : reject(a, code);
    }
    rv = get_account(a, 'm', t->member, COALITION_E_UNKNOWN_MEMBER, &fk, &fbal, &code);
    if (rv != 0 || code != 0) {
        return rv != 0 ? rv : reject(a, code);
    }
    if (transfer) {
        rv = get_account(a, 'm', t->member_to, COALITION_E_UNKNOWN_MEMBER, &tk, &tbal, &code);
        if (rv != 0 || code != 0) {
            return rv != 0 ? rv : reject(a, code);
        }
    } else {
        tk = pk;
        tbal = pbal;
    }
    if (fbal < t->points) {
        return reject(a, COALITION_E_INSUFFICIENT_POINTS);
    }
    if ((rv = move_points(a, &fk, fbal, true, &tk, tbal, t->points)) != 0 || a->res->code != 0) {
        return rv;
    }
    Coalition__LotUse **uses = NULL;
    size_t n_uses = 0;
    rv = lots_take(a, t->member, t->points, &uses, &n_uses);
    if (rv != 0 || a->res->code != 0) {
        free_uses(uses, n_uses);
        return rv;
    }
    if (transfer) {
        add_posting(a, 'm', t->member, 'm', t->member_to, t->points);
        a->history[a->n_history++] = t->member;
        a->history[a->n_history++] = t->member_to;
    } else {
        add_posting(a, 'm', t->member, 'r', t->partner, t->points);
        a->history[a->n_history++] = t->member;
    }
    if ((rv = append_entry(a)) != 0) {
        free_uses(uses, n_uses);
        return rv;
    }
    /* A transfer moves the lots themselves: same issuer and earning time,
     * keyed by their origin so they are still spent oldest first. */
    for (size_t i = 0; transfer && rv == 0 && i < n_uses; i++) {
        assert(uses[i]->lot_key.len >= 16);
        uint64_t origin = bytes_get_be64(uses[i]->lot_key.data + uses[i]->lot_key.len - 16);
        struct key lk;
        lot_key_make(&lk, t->member_to, origin, a->res->seq);
        rv = lot_add(a, &lk, uses[i]->issuer, uses[i]->earned_ms, uses[i]->points);
    }
    if (rv == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = t->member;
        rec.points = t->points;
        rec.n_uses = n_uses;
        rec.uses = uses;
        a->res->points = t->points;
        rv = put_txn_record(a, &rec);
    }
    free_uses(uses, n_uses);
    return rv;
}

/* Reverses (part of) an award: claw the points back from the lot the award
 * created.  If the member already spent them, the reversal is rejected
 * (POINTS_SPENT): the ledger never takes points the member does not have. */
static int reverse_award(struct apply *a, Coalition__TxnRecord *orig, int64_t points)
{
    struct key lk, mk, ik;
    lk.len = orig->lot_key.len;
    if (lk.len > sizeof(lk.buf)) {
        return COALITION_E_STORAGE;
    }
    memcpy(lk.buf, orig->lot_key.data, lk.len);
    Coalition__Lot *lot = NULL;
    int rv = batch_get_msg(a->b, &lk, &coalition__lot__descriptor, (ProtobufCMessage **)&lot);
    if (rv == STORE_NOT_FOUND || (rv == 0 && lot->left < points)) {
        if (lot != NULL) {
            coalition__lot__free_unpacked(lot, NULL);
        }
        return reject(a, COALITION_E_POINTS_SPENT);
    }
    if (rv != 0) {
        return rv;
    }
    lot->left -= points;
    if (lot->left == 0) {
        store_batch_delete(a->b, lk.buf, lk.len);
    } else {
        rv = batch_put_msg(a->b, &lk, &lot->base);
    }
    coalition__lot__free_unpacked(lot, NULL);
    int64_t mbal = 0, ibal = 0;
    int code = 0;
    if (rv == 0) {
        rv = get_account(a, 'm', orig->member, COALITION_E_UNKNOWN_MEMBER, &mk, &mbal, &code);
    }
    if (rv == 0 && code == 0) {
        rv = get_account(a, 'i', a->txn->partner, COALITION_E_UNKNOWN_PARTNER, &ik, &ibal, &code);
    }
    if (rv != 0 || code != 0) {
        return rv != 0 ? rv : COALITION_E_STORAGE; /* the original's accounts must exist */
    }
    if ((rv = move_points(a, &mk, mbal, true, &ik, ibal, points)) != 0 || a->res->code != 0) {
        return rv;
    }
    add_posting(a, 'm', orig->member, 'i', a->txn->partner, points);
    return 0;
}

/* Reverses (part of) a redemption: the points go back into the lots they
 * came from, last taken first, with their original issuer and earning
 * time. */
static int reverse_redeem(struct apply *a, Coalition__TxnRecord *orig, int64_t points)
{
    struct key rk, mk;
    int64_t rbal = 0, mbal = 0;
    int code = 0;
    int rv = get_account(a, 'r', a->txn->partner, COALITION_E_UNKNOWN_PARTNER, &rk, &rbal, &code);
    if (rv == 0 && code == 0) {
        rv = get_account(a, 'm', orig->member, COALITION_E_UNKNOWN_MEMBER, &mk, &mbal, &code);
    }
    if (rv != 0 || code != 0) {
        return rv != 0 ? rv : COALITION_E_STORAGE;
    }
    if ((rv = move_points(a, &rk, rbal, false, &mk, mbal, points)) != 0 || a->res->code != 0) {
        return rv;
    }
    int64_t left = points;
    for (size_t i = orig->n_uses; i-- > 0 && left > 0;) {
        Coalition__LotUse *u = orig->uses[i];
        int64_t room = u->points - u->restored;
        int64_t give = room < left ? room : left;
        if (give <= 0) {
            continue;
        }
        struct key lk;
        if (u->lot_key.len > sizeof(lk.buf)) {
            return COALITION_E_STORAGE;
        }
        lk.len = u->lot_key.len;
        memcpy(lk.buf, u->lot_key.data, lk.len);
        if ((rv = lot_add(a, &lk, u->issuer, u->earned_ms, give)) != 0) {
            return rv;
        }
        u->restored += give;
        left -= give;
    }
    if (left != 0) {
        return COALITION_E_STORAGE; /* uses do not cover what was redeemed */
    }
    add_posting(a, 'r', a->txn->partner, 'm', orig->member, points);
    return 0;
}

static int apply_reverse(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    struct key ok;
    key_owner(&ok, 't', t->partner);
    key_add_str(&ok, t->of_txn);
    Coalition__TxnRecord *orig = NULL;
    int rv =
        batch_get_msg(a->b, &ok, &coalition__txn_record__descriptor, (ProtobufCMessage **)&orig);
    if (rv == STORE_NOT_FOUND) {
        return reject(a, COALITION_E_UNKNOWN_TXN);
    }
    if (rv != 0) {
        return rv;
    }
    int64_t remaining = orig->points - orig->reversed;
    int64_t points = t->points == 0 ? remaining : t->points;
    if (orig->kind != COALITION__TXN_KIND__TXN_AWARD &&
        orig->kind != COALITION__TXN_KIND__TXN_REDEEM) {
        rv = reject(a, COALITION_E_NOT_REVERSIBLE);
    } else if (points <= 0 || points > remaining) {
        rv = reject(a, COALITION_E_REVERSAL_EXCEEDS);
    } else if (orig->kind == COALITION__TXN_KIND__TXN_AWARD) {
        rv = reverse_award(a, orig, points);
    } else {
        rv = reverse_redeem(a, orig, points);
    }
    if (rv == 0 && a->res->code == 0) {
        orig->reversed += points;
        rv = batch_put_msg(a->b, &ok, &orig->base);
    }
    if (rv == 0 && a->res->code == 0) {
        a->history[a->n_history++] = orig->member;
        rv = append_entry(a);
    }
    if (rv == 0 && a->res->code == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = orig->member;
        rec.points = points;
        a->res->points = points;
        rv = put_txn_record(a, &rec);
    }
    coalition__txn_record__free_unpacked(orig, NULL);
    return rv;
}

/* Applies one transaction into the batch.  Returns 0 (outcome in a->res) or
 * a storage/memory error. */
static int apply_one(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    int code = ledger_validate(t);
    if (code != 0) {
        return reject(a, code);
    }
    bool financial = t->kind != COALITION__TXN_KIND__TXN_PARTNER_ADD &&
                     t->kind != COALITION__TXN_KIND__TXN_MEMBER_ADD;
    if (financial) {
        int rv = txn_digest(t, a->digest);
        if (rv != 0) {
            return rv;
        }
        bool done = false;
        rv = check_idempotency(a, &done);
        if (rv != 0 || done) {
            return rv;
        }
    }
    switch (t->kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
        return apply_partner_add(a);
    case COALITION__TXN_KIND__TXN_MEMBER_ADD:
        return apply_member_add(a);
    case COALITION__TXN_KIND__TXN_AWARD:
        return apply_award(a);
    case COALITION__TXN_KIND__TXN_REDEEM:
        return apply_spend(a, false);
    case COALITION__TXN_KIND__TXN_TRANSFER:
        return apply_spend(a, true);
    case COALITION__TXN_KIND__TXN_REVERSE:
        return apply_reverse(a);
    default:
        return reject(a, COALITION_E_INVALID_ARGUMENT);
    }
}

/* Writes the node directory entries of a batch ('n' id8 -> NodeInfo). */
static int apply_nodes(struct ledger *l, Coalition__NodeInfo *const *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct key k;
        key_init(&k, 'n');
        key_add_u64(&k, nodes[i]->id);
        int rv = batch_put_msg(l->wb, &k, &nodes[i]->base);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* The one apply path: transactions and directory updates of one batch, all
 * in one atomic write together with the new head. */
static int ledger_apply_all(struct ledger *l, uint64_t index, uint64_t time_ms,
                            Coalition__Txn *const *txns, size_t n,
                            Coalition__NodeInfo *const *nodes, size_t n_nodes,
                            struct ledger_result *results)
{
    assert(l != NULL && (n == 0 || (txns != NULL && results != NULL)));
    if (index <= l->head.applied_index) {
        return 1;
    }
    struct ledger_head before = l->head;
    store_batch_clear(l->wb);
    int rv = 0;
    for (size_t i = 0; i < n; i++) {
        struct apply a = {.l = l, .b = l->wb, .time_ms = time_ms, .txn = txns[i]};
        a.res = &results[i];
        memset(a.res, 0, sizeof(*a.res));
        struct ledger_head prev = l->head;
        store_batch_savepoint(l->wb);
        rv = apply_one(&a);
        if (rv != 0) {
            break;
        }
        if (a.res->code != 0) {
            store_batch_rollback(l->wb);
            l->head = prev;
            a.res->seq = 0;
            a.res->duplicate = false;
        } else {
            store_batch_release_savepoint(l->wb);
        }
        assert(a.res->code != 0 || a.res->seq > 0);
    }
    if (rv == 0) {
        rv = apply_nodes(l, nodes, n_nodes);
    }
    if (rv == 0) {
        l->head.applied_index = index;
        l->head.time_ms = time_ms;
        uint8_t hv[LEDGER_HEAD_LEN];
        head_encode(&l->head, hv);
        store_batch_put(l->wb, LEDGER_HEAD_KEY, sizeof(LEDGER_HEAD_KEY) - 1, hv, sizeof(hv));
        rv = store_batch_write(l->store, l->wb, false);
    }
    store_batch_clear(l->wb);
    if (rv != 0) {
        l->head = before;
        for (size_t i = 0; i < n; i++) {
            results[i].code = rv;
        }
    }
    return rv;
}

int ledger_apply(struct ledger *l, uint64_t index, uint64_t time_ms, Coalition__Txn *const *txns,
                 size_t n, struct ledger_result *results)
{
    return ledger_apply_all(l, index, time_ms, txns, n, NULL, 0, results);
}

int ledger_apply_batch(struct ledger *l, uint64_t index, const Coalition__Batch *batch,
                       struct ledger_result *results)
{
    assert(batch != NULL);
    return ledger_apply_all(l, index, batch->time_ms, batch->txns, batch->n_txns, batch->nodes,
                            batch->n_nodes, results);
}

int ledger_nodes_each(struct ledger *l, void (*fn)(void *data, const Coalition__NodeInfo *node),
                      void *data)
{
    struct store_iter *it = NULL;
    int rv = store_iter_create(l->store, NULL, NULL, "n", 1, &it);
    if (rv != 0) {
        return rv;
    }
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t vlen = 0;
        const void *vp = store_iter_value(it, &vlen);
        Coalition__NodeInfo *info = coalition__node_info__unpack(NULL, vlen, vp);
        if (info == NULL) {
            rv = COALITION_E_STORAGE;
            break;
        }
        fn(data, info);
        coalition__node_info__free_unpacked(info, NULL);
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    return rv;
}

int ledger_entry_hash(struct ledger *l, uint64_t seq, uint8_t hash[LEDGER_HASH_LEN])
{
    struct key k;
    key_entry(&k, seq);
    void *v = NULL;
    size_t len = 0;
    int rv = store_get(l->store, NULL, k.buf, k.len, &v, &len);
    if (rv == STORE_NOT_FOUND) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (rv != 0) {
        return rv;
    }
    if (len < LEDGER_HASH_LEN) {
        free(v);
        return COALITION_E_STORAGE;
    }
    memcpy(hash, v, LEDGER_HASH_LEN);
    free(v);
    return 0;
}

int ledger_reload(struct ledger *l, char **errmsg)
{
    struct ledger_head head = {0};
    void *v = NULL;
    size_t len = 0;
    int rv =
        store_get(l->store, NULL, LEDGER_RESTORE_KEY, sizeof(LEDGER_RESTORE_KEY) - 1, &v, &len);
    if (rv == 0) {
        /* A restore was cut short: whatever the store holds is not a state.
         * Empty (applied index 0), raft restores its snapshot again. */
        free(v);
        l->head = head;
        return 0;
    }
    if (rv != STORE_NOT_FOUND) {
        return rv;
    }
    rv = store_get(l->store, NULL, LEDGER_HEAD_KEY, sizeof(LEDGER_HEAD_KEY) - 1, &v, &len);
    if (rv == 0) {
        rv = head_decode(v, len, &head);
        free(v);
    } else if (rv == STORE_NOT_FOUND) {
        rv = 0;
    }
    if (rv != 0) {
        return rv;
    }
    l->head = head;
    return ledger_check_head(l, errmsg);
}

/* Writes (put) or removes the restore mark, synced. */
static int restore_mark(struct ledger *l, bool put)
{
    store_batch_clear(l->wb);
    if (put) {
        store_batch_put(l->wb, LEDGER_RESTORE_KEY, sizeof(LEDGER_RESTORE_KEY) - 1, "", 0);
    } else {
        store_batch_delete(l->wb, LEDGER_RESTORE_KEY, sizeof(LEDGER_RESTORE_KEY) - 1);
    }
    int rv = store_batch_write(l->store, l->wb, true);
    store_batch_clear(l->wb);
    return rv;
}

int ledger_restore_begin(struct ledger *l)
{
    int rv = restore_mark(l, true);
    if (rv == 0) {
        memset(&l->head, 0, sizeof(l->head));
    }
    return rv;
}

int ledger_restore_end(struct ledger *l, char **errmsg)
{
    int rv = store_sync(l->store); /* everything loaded is on disk first */
    if (rv == 0) {
        rv = restore_mark(l, false);
    }
    return rv == 0 ? ledger_reload(l, errmsg) : rv;
}

bool ledger_is_restore_mark(const void *key, size_t klen)
{
    return klen == sizeof(LEDGER_RESTORE_KEY) - 1 && memcmp(key, LEDGER_RESTORE_KEY, klen) == 0;
}

/* ---------------------------------------------------------------------------
 * Reads */

int ledger_balance(struct ledger *l, const char *member, int64_t *points)
{
    if (!ledger_id_ok(member)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct key k;
    key_account(&k, 'm', member);
    void *v = NULL;
    size_t len = 0;
    int rv = store_get(l->store, NULL, k.buf, k.len, &v, &len);
    if (rv == STORE_NOT_FOUND) {
        return COALITION_E_UNKNOWN_MEMBER;
    }
    return rv != 0 ? rv : decode_i64(v, len, points);
}

/* Fills a history item from an entry as seen by `member`. */
static int history_item_fill(Coalition__HistoryItem *it, const Coalition__Entry *e,
                             const char *member)
{
    char mine[LEDGER_ID_MAX + 3];
    account_name(mine, sizeof(mine), 'm', member);
    const Coalition__Txn *t = e->txn;
    int64_t delta = 0;
    const char *other = NULL;
    for (size_t i = 0; i < e->n_postings; i++) {
        const Coalition__Posting *p = e->postings[i];
        if (strcmp(p->credit, mine) == 0) {
            delta += p->amount;
            other = p->debit;
        }
        if (strcmp(p->debit, mine) == 0) {
            delta -= p->amount;
            other = p->credit;
        }
    }
    it->seq = e->seq;
    it->time_ms = e->time_ms;
    it->kind = t != NULL ? t->kind : COALITION__TXN_KIND__TXN_NONE;
    it->delta = delta;
    /* Account names are "<kind>:<id>": show the id. */
    it->counterparty = strdup_msg(other != NULL ? other + 2 : "");
    it->partner = strdup_msg(t != NULL ? t->partner : "");
    it->txn_id = strdup_msg(t != NULL ? t->txn_id : "");
    it->reason = strdup_msg(t != NULL ? t->reason : "");
    if (it->counterparty == NULL || it->partner == NULL || it->txn_id == NULL ||
        it->reason == NULL) {
        return COALITION_E_NOMEM;
    }
    return 0;
}

int ledger_history(struct ledger *l, const char *member, uint32_t limit,
                   Coalition__HistoryItem **items, size_t *n)
{
    if (!ledger_id_ok(member)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    int64_t bal = 0;
    int rv = ledger_balance(l, member, &bal);
    if (rv != 0) {
        return rv;
    }
    if (limit == 0) {
        limit = LEDGER_HISTORY_DEFAULT;
    }
    if (limit > LEDGER_HISTORY_MAX) {
        limit = LEDGER_HISTORY_MAX;
    }
    Coalition__HistoryItem *out = calloc(limit, sizeof(*out));
    if (out == NULL) {
        return COALITION_E_NOMEM;
    }
    struct key pfx;
    key_owner(&pfx, 'h', member);
    struct store_snapshot *snap = store_snapshot_create(l->store);
    struct store_iter *it = NULL;
    rv = store_iter_create(l->store, NULL, snap, pfx.buf, pfx.len, &it);
    size_t count = 0;
    if (rv == 0) {
        for (store_iter_seek_last(it); count < limit && store_iter_valid(it); store_iter_prev(it)) {
            size_t klen = 0;
            const uint8_t *kp = store_iter_key(it, &klen);
            struct key ek;
            key_entry(&ek, bytes_get_be64(kp + klen - 8));
            void *v = NULL;
            size_t vlen = 0;
            rv = store_get(l->store, snap, ek.buf, ek.len, &v, &vlen);
            if (rv != 0) {
                rv = rv == STORE_NOT_FOUND ? COALITION_E_STORAGE : rv;
                break;
            }
            Coalition__Entry *e = NULL;
            uint8_t hash[LEDGER_HASH_LEN];
            const char *why = NULL;
            rv = entry_decode(v, vlen, &e, hash, &why);
            free(v);
            if (rv != 0) {
                break;
            }
            coalition__history_item__init(&out[count]);
            rv = history_item_fill(&out[count], e, member);
            count++;
            coalition__entry__free_unpacked(e, NULL);
            if (rv != 0) {
                break;
            }
        }
        if (rv == 0) {
            rv = store_iter_status(it);
        }
        store_iter_destroy(it);
    }
    store_snapshot_release(l->store, snap);
    if (rv != 0) {
        ledger_history_free(out, count);
        return rv;
    }
    *items = out;
    *n = count;
    return 0;
}

void ledger_history_free(Coalition__HistoryItem *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].partner);
        free(items[i].txn_id);
        free(items[i].counterparty);
        free(items[i].reason);
    }
    free(items);
}

/* ---------------------------------------------------------------------------
 * Verify: a full replay from a snapshot */

/* Account sums recomputed from postings: an open-addressing table keyed by
 * account name. */
struct sums {
    char **names;
    int64_t *bal;
    bool *seen; /* matched against a stored account */
    size_t cap, len;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

static void sums_free(struct sums *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->names[i]);
    }
    free(s->names);
    free(s->bal);
    free(s->seen);
    memset(s, 0, sizeof(*s));
}

static int sums_init(struct sums *s, size_t cap)
{
    s->cap = cap;
    s->len = 0;
    s->names = calloc(cap, sizeof(*s->names));
    s->bal = calloc(cap, sizeof(*s->bal));
    s->seen = calloc(cap, sizeof(*s->seen));
    if (s->names == NULL || s->bal == NULL || s->seen == NULL) {
        sums_free(s);
        return COALITION_E_NOMEM;
    }
    return 0;
}

static size_t sums_slot(const struct sums *s, const char *name)
{
    size_t i = name_hash(name) & (s->cap - 1);
    while (s->names[i] != NULL && strcmp(s->names[i], name) != 0) {
        i = (i + 1) & (s->cap - 1);
    }
    return i;
}

static int sums_grow(struct sums *s)
{
    struct sums bigger;
    if (sums_init(&bigger, s->cap * 2) != 0) {
        return COALITION_E_NOMEM;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (s->names[i] != NULL) {
            size_t j = sums_slot(&bigger, s->names[i]);
            bigger.names[j] = s->names[i];
            bigger.bal[j] = s->bal[i];
            s->names[i] = NULL;
            bigger.len++;
        }
    }
    sums_free(s);
    *s = bigger;
    return 0;
}

/* Adds delta to `name`; false on overflow or no memory. */
static bool sums_add(struct sums *s, const char *name, int64_t delta)
{
    if ((s->len + 1) * 10 >= s->cap * 7 && sums_grow(s) != 0) {
        return false;
    }
    size_t i = sums_slot(s, name);
    if (s->names[i] == NULL) {
        s->names[i] = strdup_msg(name);
        if (s->names[i] == NULL) {
            return false;
        }
        s->len++;
    }
    return add_checked(s->bal[i], delta, &s->bal[i]);
}

struct verifier {
    struct store *store;
    struct store_snapshot *snap;
    struct ledger_verify_report *rep;
    struct sums sums;
    crypto_generichash_state digest;
};

static int verify_fail(struct verifier *v, uint64_t seq, const char *why)
{
    v->rep->broken_seq = seq;
    snprintf(v->rep->detail, sizeof(v->rep->detail), "%s", why);
    return COALITION_E_VERIFY_FAILED;
}

/* Walks the entries in order: contiguous seqs, hashes, chain, postings. */
static int verify_entries(struct verifier *v)
{
    struct store_iter *it = NULL;
    int rv = store_iter_create(v->store, NULL, v->snap, "e", 1, &it);
    if (rv != 0) {
        return rv;
    }
    uint8_t prev[LEDGER_HASH_LEN] = {0};
    uint64_t expect = 1;
    for (store_iter_seek_first(it); rv == 0 && store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *kp = store_iter_key(it, &klen);
        const uint8_t *vp = store_iter_value(it, &vlen);
        uint64_t seq = klen == 9 ? bytes_get_be64(kp + 1) : 0;
        if (seq != expect) {
            rv = verify_fail(v, expect, "entry sequence has a gap or a bad key");
            break;
        }
        Coalition__Entry *e = NULL;
        uint8_t hash[LEDGER_HASH_LEN];
        const char *why = NULL;
        if (entry_decode(vp, vlen, &e, hash, &why) != 0) {
            rv = verify_fail(v, seq, why);
            break;
        }
        if (e->seq != seq) {
            rv = verify_fail(v, seq, "entry records a different sequence number");
        } else if (e->prev_hash.len != LEDGER_HASH_LEN ||
                   memcmp(e->prev_hash.data, prev, LEDGER_HASH_LEN) != 0) {
            rv = verify_fail(v, seq, "hash chain broken: previous hash does not match");
        }
        for (size_t i = 0; rv == 0 && i < e->n_postings; i++) {
            const Coalition__Posting *p = e->postings[i];
            if (p->amount <= 0 || !sums_add(&v->sums, p->debit, -p->amount) ||
                !sums_add(&v->sums, p->credit, p->amount)) {
                rv = verify_fail(v, seq, "posting with a bad amount or an overflow");
            }
        }
        coalition__entry__free_unpacked(e, NULL);
        memcpy(prev, hash, LEDGER_HASH_LEN);
        v->rep->entries_checked++;
        expect++;
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    memcpy(v->rep->head_hash, prev, LEDGER_HASH_LEN);
    if (rv != 0) {
        return rv;
    }
    /* The recorded head must be the last entry. */
    void *hv = NULL;
    size_t hlen = 0;
    struct ledger_head head = {0};
    rv = store_get(v->store, v->snap, LEDGER_HEAD_KEY, sizeof(LEDGER_HEAD_KEY) - 1, &hv, &hlen);
    if (rv == 0) {
        rv = head_decode(hv, hlen, &head);
        free(hv);
    } else if (rv == STORE_NOT_FOUND) {
        rv = 0;
    }
    if (rv == 0 && (head.seq != expect - 1 || memcmp(head.hash, prev, LEDGER_HASH_LEN) != 0)) {
        rv = verify_fail(v, expect - 1, "recorded head does not match the last entry");
    }
    return rv;
}

/* Stored balances against the sums; total zero; members not negative.
 * Counts member accounts holding points in *nonzero_members. */
static int verify_accounts(struct verifier *v, uint64_t *nonzero_members)
{
    struct store_iter *it = NULL;
    int rv = store_iter_create(v->store, NULL, v->snap, "a", 1, &it);
    if (rv != 0) {
        return rv;
    }
    __int128 total = 0;
    size_t matched = 0;
    char name[LEDGER_KEY_MAX];
    for (store_iter_seek_first(it); rv == 0 && store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const char *kp = store_iter_key(it, &klen);
        const uint8_t *vp = store_iter_value(it, &vlen);
        if (vlen != 8 || klen < 3 || klen > sizeof(name)) {
            rv = verify_fail(v, 0, "malformed account record");
            break;
        }
        memcpy(name, kp + 1, klen - 1);
        name[klen - 1] = '\0';
        int64_t bal = (int64_t)bytes_get_be64(vp);
        size_t slot = sums_slot(&v->sums, name);
        int64_t expect = 0;
        if (v->sums.names[slot] != NULL) {
            expect = v->sums.bal[slot];
            v->sums.seen[slot] = true;
            matched++;
        }
        if (bal != expect) {
            snprintf(v->rep->detail, sizeof(v->rep->detail),
                     "account %s holds %lld but its postings sum to %lld", name, (long long)bal,
                     (long long)expect);
            rv = COALITION_E_VERIFY_FAILED;
            break;
        }
        if (name[0] == 'm' && bal < 0) {
            snprintf(v->rep->detail, sizeof(v->rep->detail), "member account %s is negative", name);
            rv = COALITION_E_VERIFY_FAILED;
            break;
        }
        if (name[0] == 'm' && bal != 0) {
            (*nonzero_members)++;
        }
        total += bal;
        v->rep->accounts_checked++;
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    if (rv == 0 && matched != v->sums.len) {
        rv = verify_fail(v, 0, "postings name an account that does not exist");
    }
    if (rv == 0 && total != 0) {
        rv = verify_fail(v, 0, "the sum of all balances is not zero");
    }
    return rv;
}

/* Lots, grouped by member (their key order), must add up to the balance. */
static int verify_lots(struct verifier *v, uint64_t nonzero_members)
{
    struct store_iter *it = NULL;
    int rv = store_iter_create(v->store, NULL, v->snap, "l", 1, &it);
    if (rv != 0) {
        return rv;
    }
    char member[LEDGER_ID_MAX + 1] = "";
    int64_t sum = 0;
    uint64_t members = 0;
    bool any = false;
    for (store_iter_seek_first(it);; store_iter_next(it)) {
        bool valid = store_iter_valid(it);
        size_t klen = 0, vlen = 0;
        const char *kp = valid ? store_iter_key(it, &klen) : NULL;
        size_t idlen = klen >= 18 ? klen - 18 : 0;
        bool same = valid && any && idlen == strlen(member) && memcmp(kp + 1, member, idlen) == 0;
        if (any && !same) {
            /* Close the previous member's group. */
            int64_t bal = 0;
            struct key ak;
            key_account(&ak, 'm', member);
            void *bv = NULL;
            size_t blen = 0;
            rv = store_get(v->store, v->snap, ak.buf, ak.len, &bv, &blen);
            if (rv == 0 && blen == 8) {
                bal = (int64_t)bytes_get_be64(bv);
            }
            free(bv);
            if (rv != 0 || bal != sum) {
                snprintf(v->rep->detail, sizeof(v->rep->detail),
                         "lots of member %s add up to %lld, balance is %lld", member,
                         (long long)sum, (long long)bal);
                rv = COALITION_E_VERIFY_FAILED;
                break;
            }
            if (sum != 0) {
                members++;
            }
            sum = 0;
        }
        if (!valid) {
            break;
        }
        if (idlen == 0 || idlen > LEDGER_ID_MAX || kp[1 + idlen] != '\0') {
            rv = verify_fail(v, 0, "malformed lot key");
            break;
        }
        memcpy(member, kp + 1, idlen);
        member[idlen] = '\0';
        any = true;
        const void *vp = store_iter_value(it, &vlen);
        Coalition__Lot *lot = coalition__lot__unpack(NULL, vlen, vp);
        if (lot == NULL || lot->left <= 0 || !add_checked(sum, lot->left, &sum)) {
            if (lot != NULL) {
                coalition__lot__free_unpacked(lot, NULL);
            }
            rv = verify_fail(v, 0, "malformed or empty lot");
            break;
        }
        coalition__lot__free_unpacked(lot, NULL);
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    if (rv == 0 && members != nonzero_members) {
        rv = verify_fail(v, 0, "a member holds points that no lot accounts for");
    }
    return rv;
}

/* BLAKE2b-256 over every key and value, length-prefixed, in key order: two
 * replicas with the same state have the same digest. */
static int verify_digest(struct verifier *v)
{
    struct store_iter *it = NULL;
    int rv = store_iter_create(v->store, NULL, v->snap, "", 0, &it);
    if (rv != 0) {
        return rv;
    }
    crypto_generichash_init(&v->digest, NULL, 0, LEDGER_HASH_LEN);
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const void *kp = store_iter_key(it, &klen);
        const void *vp = store_iter_value(it, &vlen);
        uint8_t lens[16];
        bytes_put_be64(lens, klen);
        bytes_put_be64(lens + 8, vlen);
        crypto_generichash_update(&v->digest, lens, sizeof(lens));
        crypto_generichash_update(&v->digest, kp, klen);
        crypto_generichash_update(&v->digest, vp, vlen);
    }
    rv = store_iter_status(it);
    store_iter_destroy(it);
    crypto_generichash_final(&v->digest, v->rep->state_digest, LEDGER_HASH_LEN);
    return rv;
}

int ledger_verify(struct store *s, struct ledger_verify_report *rep)
{
    assert(s != NULL && rep != NULL);
    memset(rep, 0, sizeof(*rep));
    struct verifier v = {.store = s, .rep = rep};
    int rv = sums_init(&v.sums, 1024);
    if (rv != 0) {
        return rv;
    }
    v.snap = store_snapshot_create(s);
    uint64_t nonzero_members = 0;
    rv = verify_entries(&v);
    if (rv == 0) {
        rv = verify_accounts(&v, &nonzero_members);
    }
    if (rv == 0) {
        rv = verify_lots(&v, nonzero_members);
    }
    if (rv == 0) {
        rv = verify_digest(&v);
    }
    store_snapshot_release(s, v.snap);
    sums_free(&v.sums);
    return rv;
}
