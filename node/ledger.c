/* The ledger state machine (contract in ledger.h): validation, the apply of
 * every entry type, reads (balance, history) and the full verify.  State
 * lives in the store under one-byte key prefixes:
 *
 *   'm' "head"                 seq(8) hash(32) applied_index(8) time_ms(8)
 *   'm' "rules"                Rules (tiers, expiry, hold timeout)
 *   'p' partner                PartnerRecord (with its Program)
 *   'M' member                 MemberRecord (cards, lookup keys, tier)
 *   'c' card                   member id
 *   'k' hash32                 member id (keyed hash of a phone or email)
 *   'a' kind ':' id            balance, int64 big-endian; kind i (partner
 *                              issuance), r (partner redemptions), x
 *                              (partner expired), m (member), h (member held)
 *   'l' member 0 origin8 seq8  Lot: points of one issuer, oldest first
 *   'E' member 0 time8 seq8    points earned (rolling 12-month tier window)
 *   'X' due8 type ...          due work for the leader's sweeper (see below)
 *   't' partner 0 txn_id       TxnRecord (idempotency, reversals, holds)
 *   'e' seq8                   hash(32) + packed Entry (the hash chain)
 *   'h' member 0 seq8          (empty) history index
 *   'n' id8                    NodeInfo: the node directory (cluster)
 *   'm' "admin"                the coalition admin's Ed25519 public key (INIT)
 *   'K' key_id                 ApiKeyRecord: an API key of a partner (hashed)
 *
 * Authorization (docs/security.md): a transaction of a replicated batch acts
 * for the signer of its SignedGroup, verified here with the key recorded on
 * the ledger; only scheduled kinds and the genesis INIT come unsigned.
 *
 * Nothing here reads a clock, randomness or node identity. */
#include "ledger.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "bytes.h"
#include "date.h"
#include "errors.h"
#include "rules.h"

#define LEDGER_DIGEST_LEN          16
#define LEDGER_KEY_MAX             160
#define LEDGER_HEAD_LEN            (8 + LEDGER_HASH_LEN + 8 + 8)
#define LEDGER_HISTORY_MEMBERS_MAX 2

_Static_assert(LEDGER_KEY_MAX > 2 + 2 * LEDGER_ID_MAX + 16, "keys fit the key buffer");
_Static_assert(LEDGER_RULE_LEN == RULES_RULE_LEN, "rule descriptions fit");

static const char LEDGER_HEAD_KEY[] = "mhead";
/* Present while a snapshot replaces the store (see ledger_restore_begin). */
static const char LEDGER_RESTORE_KEY[] = "mrestore";
static const char LEDGER_ADMIN_KEY[] = "madmin";

struct posting;

struct ledger {
    struct store *store;      /* borrowed */
    struct store_batch *wb;   /* reused for every batch */
    struct ledger_head head;  /* as of the last applied batch */
    struct posting *postings; /* reused for every transaction (owned) */
    size_t cap_postings;
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
    F_PURCHASE = 1 << 8,
    F_PAID = 1 << 9,
    F_CATEGORY = 1 << 10,
    F_TIMEOUT = 1 << 11,
    F_PROGRAM = 1 << 12,
    F_RULES = 1 << 13,
    F_OLD_CARD = 1 << 14,
    F_KEYS = 1 << 15,
    F_PUBKEY = 1 << 16,
    F_KEY_ID = 1 << 17,
    F_KEY_HASH = 1 << 18,
};

static unsigned fields_allowed(Coalition__TxnKind kind)
{
    /* Admin kinds may name the partner that asked (attribution). */
    const unsigned admin = F_PARTNER | F_TXN | F_MEMBER;
    switch (kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
        return F_PARTNER | F_NAME | F_TXN | F_PUBKEY;
    case COALITION__TXN_KIND__TXN_INIT:
        return F_PUBKEY;
    case COALITION__TXN_KIND__TXN_APIKEY_ADD:
        return F_PARTNER | F_TXN | F_KEY_ID | F_KEY_HASH;
    case COALITION__TXN_KIND__TXN_APIKEY_REVOKE:
        return F_PARTNER | F_TXN | F_KEY_ID;
    case COALITION__TXN_KIND__TXN_MEMBER_ADD:
        return admin | F_CARD;
    case COALITION__TXN_KIND__TXN_AWARD:
        return F_PARTNER | F_TXN | F_MEMBER | F_POINTS | F_PURCHASE | F_PAID | F_CATEGORY;
    case COALITION__TXN_KIND__TXN_REDEEM:
        return F_PARTNER | F_TXN | F_MEMBER | F_POINTS;
    case COALITION__TXN_KIND__TXN_HOLD:
        return F_PARTNER | F_TXN | F_MEMBER | F_POINTS | F_TIMEOUT;
    case COALITION__TXN_KIND__TXN_REVERSE:
    case COALITION__TXN_KIND__TXN_CAPTURE:
        return F_PARTNER | F_TXN | F_OF_TXN | F_POINTS;
    case COALITION__TXN_KIND__TXN_RELEASE:
        return F_PARTNER | F_TXN | F_OF_TXN;
    case COALITION__TXN_KIND__TXN_TRANSFER:
        return F_PARTNER | F_TXN | F_MEMBER | F_MEMBER_TO | F_POINTS;
    case COALITION__TXN_KIND__TXN_PROGRAM_SET:
        return F_PARTNER | F_TXN | F_PROGRAM;
    case COALITION__TXN_KIND__TXN_RULES_SET:
        return F_PARTNER | F_TXN | F_RULES;
    case COALITION__TXN_KIND__TXN_CARD_ADD:
        return admin | F_CARD;
    case COALITION__TXN_KIND__TXN_CARD_REPLACE:
        return admin | F_CARD | F_OLD_CARD;
    case COALITION__TXN_KIND__TXN_IDENTIFY:
        return admin | F_KEYS;
    case COALITION__TXN_KIND__TXN_MERGE:
        return admin | F_MEMBER_TO;
    case COALITION__TXN_KIND__TXN_ERASE:
        return admin;
    case COALITION__TXN_KIND__TXN_EXPIRE:
    case COALITION__TXN_KIND__TXN_TIER_REVIEW:
        return F_MEMBER;
    case COALITION__TXN_KIND__TXN_HOLD_TIMEOUT:
        return F_PARTNER | F_OF_TXN;
    default:
        return 0;
    }
}

/* Fields every kind needs (ids among them are checked for their form). */
static unsigned fields_required(Coalition__TxnKind kind)
{
    unsigned allowed = fields_allowed(kind);
    switch (kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
        return F_PARTNER | F_NAME;
    case COALITION__TXN_KIND__TXN_MEMBER_ADD:
        return F_MEMBER;
    case COALITION__TXN_KIND__TXN_AWARD:
        return F_PARTNER | F_TXN | F_MEMBER; /* and points or a purchase */
    case COALITION__TXN_KIND__TXN_REVERSE:
    case COALITION__TXN_KIND__TXN_CAPTURE:
        return allowed & ~F_POINTS; /* 0 points: all that is left */
    case COALITION__TXN_KIND__TXN_HOLD:
        return allowed & ~F_TIMEOUT;
    case COALITION__TXN_KIND__TXN_RULES_SET:
    case COALITION__TXN_KIND__TXN_CARD_ADD:
    case COALITION__TXN_KIND__TXN_CARD_REPLACE:
    case COALITION__TXN_KIND__TXN_IDENTIFY:
    case COALITION__TXN_KIND__TXN_MERGE:
    case COALITION__TXN_KIND__TXN_ERASE:
    case COALITION__TXN_KIND__TXN_APIKEY_REVOKE: /* the admin revokes without a partner */
        return allowed & ~F_PARTNER;
    default:
        return allowed;
    }
}

/* The fields set in t, as F_ bits. */
static unsigned fields_present(const Coalition__Txn *t)
{
    return (empty(t->partner) ? 0u : F_PARTNER) | (empty(t->txn_id) ? 0u : F_TXN) |
           (empty(t->member) ? 0u : F_MEMBER) | (empty(t->member_to) ? 0u : F_MEMBER_TO) |
           (t->points == 0 ? 0u : F_POINTS) | (empty(t->of_txn) ? 0u : F_OF_TXN) |
           (empty(t->name) ? 0u : F_NAME) | (empty(t->card) ? 0u : F_CARD) |
           (t->purchase_cents == 0 ? 0u : F_PURCHASE) | (t->paid_points_cents == 0 ? 0u : F_PAID) |
           (empty(t->category) ? 0u : F_CATEGORY) | (t->timeout_s == 0 ? 0u : F_TIMEOUT) |
           (t->program == NULL ? 0u : F_PROGRAM) | (t->rules == NULL ? 0u : F_RULES) |
           (empty(t->old_card) ? 0u : F_OLD_CARD) | (t->n_lookup_keys == 0 ? 0u : F_KEYS) |
           (t->public_key.len == 0 ? 0u : F_PUBKEY) | (empty(t->key_id) ? 0u : F_KEY_ID) |
           (t->key_hash.len == 0 ? 0u : F_KEY_HASH);
}

/* Every id field present is well formed. */
static bool ids_ok(const Coalition__Txn *t)
{
    const char *ids[] = {t->partner, t->txn_id, t->member,  t->member_to,
                         t->of_txn,  t->card,   t->old_card};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        if (!empty(ids[i]) && !ledger_id_ok(ids[i])) {
            return false;
        }
    }
    return empty(t->category) || ledger_id_ok(t->category);
}

static bool public_key_ok(const Coalition__Txn *t)
{
    return t->public_key.len == AUTH_PUBLIC_LEN && auth_public_valid(t->public_key.data);
}

/* An API key id: AUTH_KEY_ID_HEX lower-case hex digits. */
static bool key_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f'))) {
            return false;
        }
    }
    return n == AUTH_KEY_ID_HEX;
}

/* Checks particular to a kind, after the field sets. */
static int validate_kind(const Coalition__Txn *t)
{
    switch (t->kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
        return ledger_text_ok(t->name, true) && (t->public_key.len == 0 || public_key_ok(t))
                   ? 0
                   : COALITION_E_INVALID_ARGUMENT;
    case COALITION__TXN_KIND__TXN_INIT:
        return public_key_ok(t) ? 0 : COALITION_E_INVALID_ARGUMENT;
    case COALITION__TXN_KIND__TXN_APIKEY_ADD:
        return key_id_ok(t->key_id) && t->key_hash.len == AUTH_HASH_LEN
                   ? 0
                   : COALITION_E_INVALID_ARGUMENT;
    case COALITION__TXN_KIND__TXN_APIKEY_REVOKE:
        return key_id_ok(t->key_id) ? 0 : COALITION_E_INVALID_ARGUMENT;
    case COALITION__TXN_KIND__TXN_AWARD:
        if (t->purchase_cents != 0) {
            /* Points come from the rules; the purchase is checked there. */
            return t->points == 0 && t->purchase_cents > 0 && t->paid_points_cents >= 0
                       ? 0
                       : COALITION_E_INVALID_ARGUMENT;
        }
        if (t->paid_points_cents != 0 || !empty(t->category)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return ledger_amount_ok(t->points) ? 0 : COALITION_E_INVALID_AMOUNT;
    case COALITION__TXN_KIND__TXN_REDEEM:
    case COALITION__TXN_KIND__TXN_TRANSFER:
        if (t->member_to != NULL && t->member != NULL && strcmp(t->member, t->member_to) == 0) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return ledger_amount_ok(t->points) ? 0 : COALITION_E_INVALID_AMOUNT;
    case COALITION__TXN_KIND__TXN_HOLD:
        if (t->timeout_s > RULES_HOLD_TIMEOUT_MAX_S) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return ledger_amount_ok(t->points) ? 0 : COALITION_E_INVALID_AMOUNT;
    case COALITION__TXN_KIND__TXN_REVERSE:
    case COALITION__TXN_KIND__TXN_CAPTURE:
        return t->points == 0 || ledger_amount_ok(t->points) ? 0 : COALITION_E_INVALID_AMOUNT;
    case COALITION__TXN_KIND__TXN_PROGRAM_SET:
        return rules_program_validate(t->program);
    case COALITION__TXN_KIND__TXN_RULES_SET:
        return rules_validate(t->rules);
    case COALITION__TXN_KIND__TXN_CARD_REPLACE:
        return strcmp(t->card, t->old_card) != 0 ? 0 : COALITION_E_INVALID_ARGUMENT;
    case COALITION__TXN_KIND__TXN_IDENTIFY:
        if (t->n_lookup_keys > LEDGER_LOOKUP_KEYS_MAX) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        for (size_t i = 0; i < t->n_lookup_keys; i++) {
            if (t->lookup_keys[i].len != LEDGER_HASH_LEN) {
                return COALITION_E_INVALID_ARGUMENT;
            }
        }
        return 0;
    case COALITION__TXN_KIND__TXN_MERGE:
        return strcmp(t->member, t->member_to) != 0 ? 0 : COALITION_E_INVALID_ARGUMENT;
    default:
        return 0;
    }
}

int ledger_validate(const Coalition__Txn *t)
{
    if (t == NULL) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    /* Only what the kind uses, everything it needs, nothing the schema does
     * not know, and every id well formed: an entry stays small (it is kept
     * forever and sent to every node). */
    unsigned present = fields_present(t);
    unsigned allowed = fields_allowed(t->kind);
    unsigned required = fields_required(t->kind);
    if (allowed == 0 || t->base.n_unknown_fields != 0 || (present & ~allowed) != 0 ||
        (present & required) != required || !ledger_text_ok(t->reason, false) || !ids_ok(t)) {
        /* A missing amount is reported as such. */
        if (allowed != 0 && (present & ~allowed) == 0 && (required & F_POINTS) &&
            !(present & F_POINTS) && ((present | F_POINTS) & required) == required) {
            return COALITION_E_INVALID_AMOUNT;
        }
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (t->kind == COALITION__TXN_KIND__TXN_AWARD && !(present & (F_POINTS | F_PURCHASE))) {
        return COALITION_E_INVALID_AMOUNT;
    }
    return validate_kind(t);
}

/* True for kinds only the leader's scheduler may submit. */
bool ledger_kind_scheduled(int kind)
{
    return kind == COALITION__TXN_KIND__TXN_EXPIRE ||
           kind == COALITION__TXN_KIND__TXN_HOLD_TIMEOUT ||
           kind == COALITION__TXN_KIND__TXN_TIER_REVIEW;
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

/* Reads and decodes a protobuf record: through the batch `b` (what the
 * apply sees) or, with b NULL, from the committed state of `st`.  *out is
 * the caller's to free.  0, STORE_NOT_FOUND, STORAGE (does not decode) or
 * an error. */
static int state_get_msg(struct store *st, struct store_batch *b, const struct key *k,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    void *v = NULL;
    size_t len = 0;
    int rv = b != NULL ? store_batch_get(b, k->buf, k->len, &v, &len)
                       : store_get(st, NULL, k->buf, k->len, &v, &len);
    if (rv != 0) {
        return rv;
    }
    *out = protobuf_c_message_unpack(desc, NULL, len, v);
    free(v);
    return *out != NULL ? 0 : COALITION_E_STORAGE;
}

/* Reads and unpacks a protobuf record.  0 with *out (free with
 * protobuf_c_message_free_unpacked), STORE_NOT_FOUND or a storage error (a
 * record that does not decode is corrupt storage). */
static int batch_get_msg(struct store_batch *b, const struct key *k,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    return state_get_msg(NULL, b, k, desc, out);
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
    free(l->postings);
    free(l);
}

void ledger_get_head(const struct ledger *l, struct ledger_head *out)
{
    *out = l->head;
}

/* ---------------------------------------------------------------------------
 * Apply */

/* new = bal + delta, within int64 and, for members, never negative. */
static bool add_checked(int64_t bal, int64_t delta, int64_t *out)
{
    return !__builtin_add_overflow(bal, delta, out);
}

/* One posting of the entry being built.  Names are "<kind>:<id>". */
struct posting {
    char debit[LEDGER_ID_MAX + 3];
    char credit[LEDGER_ID_MAX + 3];
    char issuer[LEDGER_ID_MAX + 1];
    int64_t amount;
};

/* One transaction being applied. */
/* Whom a transaction acts for. */
enum actor {
    ACTOR_TRUSTED,  /* ledger_apply: a caller that authorized it (tools, tests) */
    ACTOR_UNSIGNED, /* Batch.txns: only scheduled kinds and the genesis INIT */
    ACTOR_SIGNED,   /* a verified SignedGroup: acts for apply.actor */
};

struct apply {
    struct ledger *l;
    struct store_batch *b;
    uint64_t time_ms;
    const Coalition__Txn *txn;
    struct ledger_result *res;
    uint8_t digest[LEDGER_DIGEST_LEN];
    struct posting *postings; /* the ledger's, grown by add_posting */
    size_t n_postings, cap_postings;
    const char *history[LEDGER_HISTORY_MEMBERS_MAX];
    size_t n_history;
    /* Recorded in the entry: the earning rule, and a tier change. */
    char rule[LEDGER_RULE_LEN];
    const char *tier_member; /* non-NULL when the entry changes this member's tier */
    char tier[LEDGER_ID_MAX + 1];
    char holder[LEDGER_ID_MAX + 1]; /* a reversal's member after merges */
    enum actor actor_kind;
    const char *actor; /* ACTOR_SIGNED: the signer ("" = coalition admin) */
};

/* A business rejection: not a failure of the apply. */
static int reject(struct apply *a, int code)
{
    assert(code < 0);
    a->res->code = code;
    return 0;
}

/* Records a posting, merged into an earlier one with the same accounts and
 * issuer.  0 or NOMEM. */
static int add_posting(struct apply *a, char debit_kind, const char *debit, char credit_kind,
                       const char *credit, const char *issuer, int64_t amount)
{
    assert(amount > 0);
    struct posting p;
    account_name(p.debit, sizeof(p.debit), debit_kind, debit);
    account_name(p.credit, sizeof(p.credit), credit_kind, credit);
    snprintf(p.issuer, sizeof(p.issuer), "%s", issuer);
    for (size_t i = 0; i < a->n_postings; i++) {
        struct posting *q = &a->postings[i];
        if (strcmp(q->debit, p.debit) == 0 && strcmp(q->credit, p.credit) == 0 &&
            strcmp(q->issuer, p.issuer) == 0) {
            /* Both were checked against account balances: no overflow. */
            return add_checked(q->amount, amount, &q->amount) ? 0 : COALITION_E_OVERFLOW;
        }
    }
    if (a->n_postings == a->cap_postings) {
        size_t cap = a->cap_postings == 0 ? 4 : a->cap_postings * 2;
        struct posting *grown = realloc(a->postings, cap * sizeof(*grown));
        if (grown == NULL) {
            return COALITION_E_NOMEM;
        }
        a->postings = grown;
        a->cap_postings = cap;
    }
    p.amount = amount;
    a->postings[a->n_postings++] = p;
    return 0;
}

static uint64_t next_seq(const struct apply *a)
{
    return a->l->head.seq + 1;
}

/* Appends the entry for the current transaction: next seq, chained hash,
 * history index for the members it touches.  Updates the in-memory head, so
 * it is the last step of an accepted transaction (what follows only writes
 * records keyed by the new seq). */
static int append_entry(struct apply *a)
{
    struct ledger_head *h = &a->l->head;
    Coalition__Entry e = COALITION__ENTRY__INIT;
    e.seq = h->seq + 1;
    e.time_ms = a->time_ms;
    e.prev_hash.data = h->hash;
    e.prev_hash.len = LEDGER_HASH_LEN;
    e.txn = (Coalition__Txn *)a->txn;
    e.rule = a->rule;
    if (a->tier_member != NULL) {
        e.tier_member = (char *)a->tier_member;
        e.tier = a->tier;
    }
    Coalition__Posting *items = calloc(a->n_postings + 1, sizeof(*items));
    Coalition__Posting **ptrs = calloc(a->n_postings + 1, sizeof(*ptrs));
    if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        return COALITION_E_NOMEM;
    }
    for (size_t i = 0; i < a->n_postings; i++) {
        coalition__posting__init(&items[i]);
        items[i].debit = a->postings[i].debit;
        items[i].credit = a->postings[i].credit;
        items[i].issuer = a->postings[i].issuer;
        items[i].amount = a->postings[i].amount;
        ptrs[i] = &items[i];
    }
    e.n_postings = a->n_postings;
    e.postings = ptrs;

    size_t body = coalition__entry__get_packed_size(&e);
    uint8_t *buf = malloc(LEDGER_HASH_LEN + body);
    if (buf == NULL) {
        free(items);
        free(ptrs);
        return COALITION_E_NOMEM;
    }
    coalition__entry__pack(&e, buf + LEDGER_HASH_LEN);
    free(items);
    free(ptrs);
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
    snprintf(a->res->rule, sizeof(a->res->rule), "%s", a->rule);
    return 0;
}

static void history_add(struct apply *a, const char *member)
{
    assert(a->n_history < LEDGER_HISTORY_MEMBERS_MAX);
    a->history[a->n_history++] = member;
}

/* The idempotency key of a transaction: (partner or "", txn_id). */
static void key_txn(struct key *k, const char *partner, const char *txn_id)
{
    key_owner(k, 't', partner != NULL ? partner : "");
    key_add_str(k, txn_id);
}

/* Looks up (partner, txn_id).  Returns 0 if the transaction is new (and
 * nothing is set), 0 with res filled if it is a duplicate or a conflict
 * (then *done is true), or a storage error. */
static int check_idempotency(struct apply *a, bool *done)
{
    *done = false;
    struct key k;
    key_txn(&k, a->txn->partner, a->txn->txn_id);
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
        snprintf(a->res->rule, sizeof(a->res->rule), "%s", rec->rule);
    }
    coalition__txn_record__free_unpacked(rec, NULL);
    return 0;
}

/* Stores the record of the current (accepted) transaction; call after
 * append_entry so that the seq is known. */
static int put_txn_record(struct apply *a, Coalition__TxnRecord *rec)
{
    struct key k;
    key_txn(&k, a->txn->partner, a->txn->txn_id);
    rec->seq = a->res->seq;
    rec->time_ms = a->time_ms;
    rec->digest.data = a->digest;
    rec->digest.len = LEDGER_DIGEST_LEN;
    rec->kind = a->txn->kind;
    return batch_put_msg(a->b, &k, &rec->base);
}

/* Accounts that are created by their first posting: held points of a
 * member, expired points of an issuer. */
static bool account_lazy(char kind)
{
    return kind == 'h' || kind == 'x';
}

/* Members' accounts may not go below zero. */
static bool account_of_member(char kind)
{
    return kind == 'm' || kind == 'h';
}

/* Moves `amount` from one account to another: rejects (via res) overflow and
 * a member account going negative.  The accounts must exist (lazy kinds
 * start at zero).  0 or a storage error. */
static int move(struct apply *a, char dk, const char *did, char ck, const char *cid, int64_t amount)
{
    struct key fk, tk;
    int64_t fb = 0, tb = 0;
    key_account(&fk, dk, did);
    key_account(&tk, ck, cid);
    int rv = batch_get_i64(a->b, &fk, &fb);
    if (rv == STORE_NOT_FOUND && account_lazy(dk)) {
        fb = 0, rv = 0;
    }
    if (rv != 0) {
        return rv == STORE_NOT_FOUND ? COALITION_E_STORAGE : rv;
    }
    rv = batch_get_i64(a->b, &tk, &tb);
    if (rv == STORE_NOT_FOUND && account_lazy(ck)) {
        tb = 0, rv = 0;
    }
    if (rv != 0) {
        return rv == STORE_NOT_FOUND ? COALITION_E_STORAGE : rv;
    }
    int64_t nf = 0, nt = 0;
    if (!add_checked(fb, -amount, &nf) || !add_checked(tb, amount, &nt)) {
        return reject(a, COALITION_E_OVERFLOW);
    }
    if (account_of_member(dk) && nf < 0) {
        return reject(a, COALITION_E_INSUFFICIENT_POINTS);
    }
    batch_put_i64(a->b, &fk, nf);
    batch_put_i64(a->b, &tk, nt);
    return 0;
}

/* move() and its posting. */
static int post(struct apply *a, char dk, const char *did, char ck, const char *cid,
                const char *issuer, int64_t amount)
{
    int rv = move(a, dk, did, ck, cid, amount);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    return add_posting(a, dk, did, ck, cid, issuer, amount);
}

/* move() of the sum of `uses` (field `points` or, with restored, the part
 * given back), one posting per issuer. */
static int post_uses(struct apply *a, char dk, const char *did, char ck, const char *cid,
                     Coalition__LotUse *const *uses, size_t n, const int64_t *amounts)
{
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!add_checked(total, amounts[i], &total)) {
            return reject(a, COALITION_E_OVERFLOW);
        }
    }
    int rv = total > 0 ? move(a, dk, did, ck, cid, total) : 0;
    for (size_t i = 0; rv == 0 && a->res->code == 0 && i < n; i++) {
        if (amounts[i] > 0) {
            rv = add_posting(a, dk, did, ck, cid, uses[i]->issuer, amounts[i]);
        }
    }
    return rv;
}

/* ---------------------------------------------------------------------------
 * Lots and the due index
 *
 * 'X' due8 type rest: what the leader must schedule at `due`: 'l' + lot key
 * (without its tag) for an expiring lot, 'h' partner 0 txn for a hold that
 * times out, 'T' member for a tier review.  A due key exists exactly as long
 * as what it points at. */

static void key_due(struct key *k, uint64_t due, char type)
{
    key_init(k, 'X');
    key_add_u64(k, due);
    key_add(k, &type, 1);
}

static void key_lot_due(struct key *k, uint64_t expires_ms, const struct key *lot_key)
{
    key_due(k, expires_ms, 'l');
    key_add(k, lot_key->buf + 1, lot_key->len - 1);
}

static void key_hold_due(struct key *k, uint64_t deadline_ms, const char *partner,
                         const char *txn_id)
{
    key_due(k, deadline_ms, 'h');
    key_add_str(k, partner);
    key_add(k, "", 1);
    key_add_str(k, txn_id);
}

static void key_tier_due(struct key *k, uint64_t review_ms, const char *member)
{
    key_due(k, review_ms, 'T');
    key_add_str(k, member);
}

static void lot_key_make(struct key *k, const char *member, uint64_t origin, uint64_t arrival)
{
    key_owner(k, 'l', member);
    key_add_u64(k, origin);
    key_add_u64(k, arrival);
}

static bool lot_expired(const Coalition__Lot *lot, uint64_t t)
{
    return lot->expires_ms != 0 && t >= lot->expires_ms;
}

static bool lot_spendable(const Coalition__Lot *lot, uint64_t t)
{
    return lot->left > 0 && !lot_expired(lot, t) && t >= lot->unlock_ms;
}

/* Writes a lot and its due key.  0 or NOMEM. */
static int lot_put(struct apply *a, const struct key *k, const Coalition__Lot *lot)
{
    assert(lot->left > 0);
    if (lot->expires_ms != 0) {
        struct key dk;
        key_lot_due(&dk, lot->expires_ms, k);
        store_batch_put(a->b, dk.buf, dk.len, "", 0);
    }
    return batch_put_msg(a->b, k, &lot->base);
}

static void lot_delete(struct apply *a, const struct key *k, const Coalition__Lot *lot)
{
    if (lot->expires_ms != 0) {
        struct key dk;
        key_lot_due(&dk, lot->expires_ms, k);
        store_batch_delete(a->b, dk.buf, dk.len);
    }
    store_batch_delete(a->b, k->buf, k->len);
}

/* Writes the lot with `left` points, or deletes it at zero. */
static int lot_set_left(struct apply *a, const struct key *k, Coalition__Lot *lot, int64_t left)
{
    assert(left >= 0);
    lot->left = left;
    if (left == 0) {
        lot_delete(a, k, lot);
        return 0;
    }
    return lot_put(a, k, lot);
}

/* Adds `points` to the lot under `k`, created as `like` describes (issuer,
 * times) if absent.  0 or an error. */
static int lot_add(struct apply *a, const struct key *k, const Coalition__Lot *like, int64_t points)
{
    Coalition__Lot *lot = NULL;
    int rv = batch_get_msg(a->b, k, &coalition__lot__descriptor, (ProtobufCMessage **)&lot);
    if (rv != 0 && rv != STORE_NOT_FOUND) {
        return rv;
    }
    Coalition__Lot fresh = *like;
    fresh.left = points;
    if (lot != NULL && !add_checked(lot->left, points, &fresh.left)) {
        rv = COALITION_E_OVERFLOW;
    } else {
        rv = lot_put(a, k, &fresh);
    }
    if (lot != NULL) {
        coalition__lot__free_unpacked(lot, NULL);
    }
    return rv;
}

/* A lot as stored, with its key. */
struct lot_item {
    struct key key;
    Coalition__Lot *lot;
};

static void lots_free(struct lot_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        coalition__lot__free_unpacked(items[i].lot, NULL);
    }
    free(items);
}

/* Decodes one record of a prefix scan into `item`: 0 or an error. */
typedef int (*collect_fn)(void *item, const struct key *k, const void *v, size_t vlen);

/* Every record under `pfx`, in key order, from the batch `b` (pending writes
 * included) or else a snapshot, decoded into a malloc'd array of `size`-byte
 * items.  *out and *n_out are set even on failure (the items decoded so
 * far), so that the caller frees them the one way it knows.  0 or an error. */
static int prefix_collect(struct store *s, struct store_batch *b, const struct store_snapshot *snap,
                          const struct key *pfx, size_t size, collect_fn decode, void **out,
                          size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    struct store_iter *it = NULL;
    int rv = store_iter_create(s, b, snap, pfx->buf, pfx->len, &it);
    if (rv != 0) {
        return rv;
    }
    uint8_t *items = NULL;
    size_t n = 0, cap = 0;
    for (store_iter_seek_first(it); rv == 0 && store_iter_valid(it); store_iter_next(it)) {
        struct key k;
        size_t vlen = 0;
        const void *kp = store_iter_key(it, &k.len);
        const void *vp = store_iter_value(it, &vlen);
        if (k.len > sizeof(k.buf)) {
            rv = COALITION_E_STORAGE;
            break;
        }
        memcpy(k.buf, kp, k.len);
        if (n == cap) {
            cap = cap == 0 ? 8 : cap * 2;
            uint8_t *grown = realloc(items, cap * size);
            if (grown == NULL) {
                rv = COALITION_E_NOMEM;
                break;
            }
            items = grown;
        }
        if ((rv = decode(items + n * size, &k, vp, vlen)) == 0) {
            n++;
        }
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    *out = items;
    *n_out = n;
    return rv;
}

static int lot_decode(void *item, const struct key *k, const void *v, size_t vlen)
{
    struct lot_item *li = item;
    Coalition__Lot *lot = coalition__lot__unpack(NULL, vlen, v);
    if (lot == NULL || lot->left <= 0) {
        if (lot != NULL) {
            coalition__lot__free_unpacked(lot, NULL);
        }
        return COALITION_E_STORAGE;
    }
    li->key = *k;
    li->lot = lot;
    return 0;
}

/* Every lot of `member`, oldest first (see prefix_collect).  *out is
 * malloc'd (lots_free).  0 or an error. */
static int lots_load(struct store *s, struct store_batch *b, const struct store_snapshot *snap,
                     const char *member, struct lot_item **out, size_t *n_out)
{
    struct key pfx;
    key_owner(&pfx, 'l', member);
    void *items = NULL;
    size_t n = 0;
    int rv = prefix_collect(s, b, snap, &pfx, sizeof(struct lot_item), lot_decode, &items, &n);
    if (rv != 0) {
        lots_free(items, n);
        return rv;
    }
    *out = items;
    *n_out = n;
    return 0;
}

static void free_uses(Coalition__LotUse **uses, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(uses[i]);
    }
    free(uses);
}

/* A use of `points` of lot `it` (malloc'd with its strings inline). */
static Coalition__LotUse *use_make(const struct lot_item *it, int64_t points)
{
    size_t ilen = strlen(it->lot->issuer) + 1;
    Coalition__LotUse *use = malloc(sizeof(*use) + it->key.len + ilen);
    if (use == NULL) {
        return NULL;
    }
    coalition__lot_use__init(use);
    uint8_t *tail = (uint8_t *)(use + 1);
    memcpy(tail, it->key.buf, it->key.len);
    use->lot_key.data = tail;
    use->lot_key.len = it->key.len;
    use->issuer = (char *)tail + it->key.len;
    memcpy(use->issuer, it->lot->issuer, ilen);
    use->earned_ms = it->lot->earned_ms;
    use->expires_ms = it->lot->expires_ms;
    use->unlock_ms = it->lot->unlock_ms;
    use->points = points;
    return use;
}

/* Takes `points` from `member`'s spendable lots (unlocked, unexpired at the
 * entry's time), oldest first, recording each use in *uses (malloc'd array of
 * malloc'd LotUse, freed by free_uses even on failure).  Returns 0,
 * INSUFFICIENT_POINTS via res, or an error. */
static int lots_take(struct apply *a, const char *member, int64_t points, Coalition__LotUse ***uses,
                     size_t *n_uses)
{
    *uses = NULL;
    *n_uses = 0;
    struct lot_item *lots = NULL;
    size_t n_lots = 0;
    int rv = lots_load(a->l->store, a->b, NULL, member, &lots, &n_lots);
    if (rv != 0) {
        return rv;
    }
    Coalition__LotUse **u = calloc(n_lots + 1, sizeof(*u));
    size_t n = 0;
    int64_t need = points;
    rv = u == NULL ? COALITION_E_NOMEM : 0;
    for (size_t i = 0; rv == 0 && need > 0 && i < n_lots; i++) {
        if (!lot_spendable(lots[i].lot, a->time_ms)) {
            continue;
        }
        int64_t take = lots[i].lot->left < need ? lots[i].lot->left : need;
        if ((u[n] = use_make(&lots[i], take)) == NULL) {
            rv = COALITION_E_NOMEM;
            break;
        }
        n++;
        need -= take;
    }
    if (rv == 0 && need > 0) {
        rv = reject(a, COALITION_E_INSUFFICIENT_POINTS);
    }
    for (size_t i = 0, j = 0; rv == 0 && a->res->code == 0 && i < n_lots && j < n; i++) {
        if (lots[i].key.len != u[j]->lot_key.len ||
            memcmp(lots[i].key.buf, u[j]->lot_key.data, lots[i].key.len) != 0) {
            continue;
        }
        rv = lot_set_left(a, &lots[i].key, lots[i].lot, lots[i].lot->left - u[j]->points);
        j++;
    }
    lots_free(lots, n_lots);
    *uses = u;
    *n_uses = n;
    return rv;
}

/* Gives back `amounts[i]` of each use to the lot it came from (recreated
 * with its issuer and times if it was emptied), under `holder` when the
 * member was merged into another one since (NULL: the lot's own member).
 * 0 or an error. */
static int lots_restore(struct apply *a, Coalition__LotUse *const *uses, size_t n,
                        const int64_t *amounts, const char *holder)
{
    for (size_t i = 0; i < n; i++) {
        if (amounts[i] <= 0) {
            continue;
        }
        struct key lk;
        size_t klen = uses[i]->lot_key.len;
        if (klen > sizeof(lk.buf) || klen < 1 + 16 + 2) {
            return COALITION_E_STORAGE;
        }
        if (holder != NULL) {
            const uint8_t *tail = uses[i]->lot_key.data + klen - 16;
            lot_key_make(&lk, holder, bytes_get_be64(tail), bytes_get_be64(tail + 8));
        } else {
            lk.len = klen;
            memcpy(lk.buf, uses[i]->lot_key.data, klen);
        }
        Coalition__Lot like = COALITION__LOT__INIT;
        like.issuer = uses[i]->issuer;
        like.earned_ms = uses[i]->earned_ms;
        like.expires_ms = uses[i]->expires_ms;
        like.unlock_ms = uses[i]->unlock_ms;
        int rv = lot_add(a, &lk, &like, amounts[i]);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Members, programs, rules, tiers */

static void key_member(struct key *k, const char *member)
{
    key_init(k, 'M');
    key_add_str(k, member);
}

/* Reads a member record.  0 with *rec (free_unpacked), or 0 with *rec NULL
 * and the rejection in res (UNKNOWN_MEMBER; MEMBER_CLOSED when `open` is
 * required and the member was merged or erased), or a storage error. */
static int member_get(struct apply *a, const char *member, bool open, Coalition__MemberRecord **rec)
{
    struct key k;
    key_member(&k, member);
    *rec = NULL;
    int rv =
        batch_get_msg(a->b, &k, &coalition__member_record__descriptor, (ProtobufCMessage **)rec);
    if (rv == STORE_NOT_FOUND) {
        return reject(a, COALITION_E_UNKNOWN_MEMBER);
    }
    if (rv == 0 && open && (!empty((*rec)->merged_into) || (*rec)->erased)) {
        coalition__member_record__free_unpacked(*rec, NULL);
        *rec = NULL;
        return reject(a, COALITION_E_MEMBER_CLOSED);
    }
    return rv;
}

/* Cards and lookup keys to write in place of a record's own (borrowed). */
struct member_ids {
    char **cards;
    size_t n_cards;
    ProtobufCBinaryData *keys;
    size_t n_keys;
};

/* Writes rec, with `tier` and `ids` in place of its own when not NULL (rec
 * itself is left as it was: its strings belong to its unpacked allocation). */
/* The member that holds `member`'s points now: itself, or the member it was
 * merged into (followed through later merges).  out has LEDGER_ID_MAX + 1
 * bytes.  0 or an error (the records of a txn's member must exist). */
static int member_holder(struct apply *a, const char *member, char *out)
{
    snprintf(out, LEDGER_ID_MAX + 1, "%s", member);
    for (int hops = 0; hops < 64; hops++) {
        struct key k;
        key_member(&k, out);
        Coalition__MemberRecord *rec = NULL;
        int rv = batch_get_msg(a->b, &k, &coalition__member_record__descriptor,
                               (ProtobufCMessage **)&rec);
        if (rv != 0) {
            return rv == STORE_NOT_FOUND ? COALITION_E_STORAGE : rv;
        }
        bool merged = !empty(rec->merged_into);
        if (merged) {
            snprintf(out, LEDGER_ID_MAX + 1, "%s", rec->merged_into);
        }
        coalition__member_record__free_unpacked(rec, NULL);
        if (!merged) {
            return 0;
        }
    }
    return COALITION_E_STORAGE; /* merges cannot form a cycle: both ends must be open */
}

static int member_write(struct apply *a, const char *member, Coalition__MemberRecord *rec,
                        const char *tier, const struct member_ids *ids)
{
    Coalition__MemberRecord copy = *rec;
    if (tier != NULL) {
        copy.tier = (char *)tier;
    }
    if (ids != NULL) {
        copy.cards = ids->cards;
        copy.n_cards = ids->n_cards;
        copy.lookup_keys = ids->keys;
        copy.n_lookup_keys = ids->n_keys;
    }
    struct key k;
    key_member(&k, member);
    return batch_put_msg(a->b, &k, &copy.base);
}

/* The coalition rules ("mrules"); *out NULL if never set.  0 or an error. */
static const char LEDGER_RULES_KEY[] = "mrules";

static int rules_load(struct store *s, struct store_batch *b, const struct store_snapshot *snap,
                      Coalition__Rules **out)
{
    void *v = NULL;
    size_t len = 0;
    *out = NULL;
    int rv = b != NULL
                 ? store_batch_get(b, LEDGER_RULES_KEY, sizeof(LEDGER_RULES_KEY) - 1, &v, &len)
                 : store_get(s, snap, LEDGER_RULES_KEY, sizeof(LEDGER_RULES_KEY) - 1, &v, &len);
    if (rv == STORE_NOT_FOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    *out = coalition__rules__unpack(NULL, len, v);
    free(v);
    return *out != NULL ? 0 : COALITION_E_STORAGE;
}

static void rules_free(Coalition__Rules *r)
{
    if (r != NULL) {
        coalition__rules__free_unpacked(r, NULL);
    }
}

/* Earned points of a member, kept for the rolling 12-month tier window:
 * 'E' member 0 time8 seq8 -> int64 points (net of reversals).  A record
 * counts at t while earned <= t < earned + 12 months. */
struct earn {
    struct key key;
    uint64_t time_ms;
    int64_t points;
};

static void key_earn(struct key *k, const char *member, uint64_t time_ms, uint64_t seq)
{
    key_owner(k, 'E', member);
    key_add_u64(k, time_ms);
    key_add_u64(k, seq);
}

static uint64_t earn_ages_out(uint64_t time_ms)
{
    return date_add_months(time_ms, 12);
}

static int earn_decode(void *item, const struct key *k, const void *v, size_t vlen)
{
    struct earn *e = item;
    size_t pfx_len = k->len - 16; /* 'E' member 0 */
    if (k->len < 16 + 3 || k->buf[pfx_len - 1] != '\0' || vlen != 8) {
        return COALITION_E_STORAGE;
    }
    e->key = *k;
    e->time_ms = bytes_get_be64(k->buf + pfx_len);
    e->points = (int64_t)bytes_get_be64(v);
    return 0;
}

/* Every earn record of `member`, oldest first (malloc'd).  0 or an error. */
static int earns_load(struct store *s, struct store_batch *b, const struct store_snapshot *snap,
                      const char *member, struct earn **out, size_t *n_out)
{
    struct key pfx;
    key_owner(&pfx, 'E', member);
    void *items = NULL;
    size_t n = 0;
    int rv = prefix_collect(s, b, snap, &pfx, sizeof(struct earn), earn_decode, &items, &n);
    if (rv != 0) {
        free(items);
        return rv;
    }
    *out = items;
    *n_out = n;
    return 0;
}

/* Points of the records that count at t. */
static int64_t earned_at(const struct earn *e, size_t n, uint64_t t)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].time_ms <= t && t < earn_ages_out(e[i].time_ms)) {
            sum += e[i].points; /* bounded: each <= 1e12, at most one per entry */
        }
    }
    return sum;
}

/* Where a member stands against the tier table at t. */
struct standing {
    int64_t earned;
    int tier;           /* index into rules->tiers, -1 below every tier */
    uint64_t review_ms; /* when the tier would drop with no new earning; 0 never */
};

static void standing_compute(const Coalition__Rules *rules, const struct earn *e, size_t n,
                             uint64_t t, struct standing *st)
{
    st->earned = earned_at(e, n, t);
    st->tier = rules != NULL ? rules_tier_index(rules, st->earned) : -1;
    st->review_ms = 0;
    if (st->tier < 0) {
        return;
    }
    int64_t threshold = rules->tiers[st->tier]->threshold;
    int64_t left = st->earned;
    /* Records age out in time order: the tier drops when what is left falls
     * below its threshold. */
    for (size_t i = 0; i < n; i++) {
        if (!(e[i].time_ms <= t && t < earn_ages_out(e[i].time_ms))) {
            continue;
        }
        left -= e[i].points;
        if (left < threshold) {
            st->review_ms = earn_ages_out(e[i].time_ms);
            return;
        }
    }
}

static const char *tier_name(const Coalition__Rules *rules, int tier)
{
    return tier >= 0 ? rules->tiers[tier]->name : "";
}

/* Recomputes `member`'s tier at the entry's time after its earnings
 * changed: drops records that aged out, moves the review due key, and when
 * the tier changes records it in the entry (a->tier_member).  Writes rec
 * (with `ids` if not NULL).  0 or an error. */
static int tier_refresh(struct apply *a, const char *member, Coalition__MemberRecord *rec,
                        const struct member_ids *ids)
{
    Coalition__Rules *rules = NULL;
    struct earn *e = NULL;
    size_t n = 0;
    int rv = rules_load(a->l->store, a->b, NULL, &rules);
    if (rv == 0) {
        rv = earns_load(a->l->store, a->b, NULL, member, &e, &n);
    }
    if (rv != 0) {
        rules_free(rules);
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        if (earn_ages_out(e[i].time_ms) <= a->time_ms || e[i].points == 0) {
            store_batch_delete(a->b, e[i].key.buf, e[i].key.len);
        }
    }
    struct standing st;
    standing_compute(rules, e, n, a->time_ms, &st);
    free(e);
    /* Most calls change nothing (no tiers, same tier): no rewrite then. */
    bool changed = ids != NULL;
    struct key dk;
    if (rec->review_ms != st.review_ms) {
        changed = true;
        if (rec->review_ms != 0) {
            key_tier_due(&dk, rec->review_ms, member);
            store_batch_delete(a->b, dk.buf, dk.len);
        }
        if (st.review_ms != 0) {
            key_tier_due(&dk, st.review_ms, member);
            store_batch_put(a->b, dk.buf, dk.len, "", 0);
        }
        rec->review_ms = st.review_ms;
    }
    const char *name = tier_name(rules, st.tier);
    if (strcmp(rec->tier != NULL ? rec->tier : "", name) != 0) {
        snprintf(a->tier, sizeof(a->tier), "%s", name);
        a->tier_member = member;
        changed = true;
    }
    rv = changed ? member_write(a, member, rec, name, ids) : 0;
    rules_free(rules);
    return rv;
}

/* Adds `points` (negative: a reversal) to the earn record (member, time,
 * seq).  0 or an error. */
static int earn_add(struct apply *a, const char *member, uint64_t time_ms, uint64_t seq,
                    int64_t points)
{
    struct key k;
    key_earn(&k, member, time_ms, seq);
    int64_t cur = 0;
    int rv = batch_get_i64(a->b, &k, &cur);
    if (rv == STORE_NOT_FOUND) {
        if (points < 0) {
            return 0; /* aged out and dropped already: nothing counts any more */
        }
        cur = 0, rv = 0;
    }
    if (rv != 0) {
        return rv;
    }
    cur += points;
    if (cur <= 0) {
        store_batch_delete(a->b, k.buf, k.len);
    } else {
        batch_put_i64(a->b, &k, cur);
    }
    return 0;
}

/* The member's tier multiplier at the entry's time, for a purchase. */
static int tier_for_purchase(struct apply *a, const char *member, const Coalition__Rules *rules,
                             const char **name, uint32_t *pct)
{
    *name = "";
    *pct = 100;
    if (rules == NULL || rules->n_tiers == 0) {
        return 0;
    }
    struct earn *e = NULL;
    size_t n = 0;
    int rv = earns_load(a->l->store, a->b, NULL, member, &e, &n);
    if (rv != 0) {
        return rv;
    }
    struct standing st;
    standing_compute(rules, e, n, a->time_ms, &st);
    free(e);
    if (st.tier >= 0) {
        *name = rules->tiers[st.tier]->name;
        *pct = rules->tiers[st.tier]->multiplier_pct;
    }
    return 0;
}

static void key_partner(struct key *k, const char *partner)
{
    key_init(k, 'p');
    key_add_str(k, partner);
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
    key_partner(&k, t->partner);
    Coalition__PartnerRecord *old = NULL;
    int rv =
        batch_get_msg(a->b, &k, &coalition__partner_record__descriptor, (ProtobufCMessage **)&old);
    if (rv == 0) {
        bool same = strcmp(old->name, t->name) == 0 && old->public_key.len == t->public_key.len &&
                    (t->public_key.len == 0 ||
                     memcmp(old->public_key.data, t->public_key.data, t->public_key.len) == 0);
        rv = admin_repeat(a, same, old->seq);
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
    rec.public_key = t->public_key;
    if ((rv = batch_put_msg(a->b, &k, &rec.base)) != 0) {
        return rv;
    }
    key_account(&k, 'i', t->partner);
    batch_put_i64(a->b, &k, 0);
    key_account(&k, 'r', t->partner);
    batch_put_i64(a->b, &k, 0);
    return 0;
}

static void key_card(struct key *k, const char *card)
{
    key_init(k, 'c');
    key_add_str(k, card);
}

/* Claims `card` for `member`: ALREADY_EXISTS via res if it is taken. */
static int card_claim(struct apply *a, const char *card, const char *member)
{
    struct key ck;
    key_card(&ck, card);
    void *v = NULL;
    size_t len = 0;
    int rv = store_batch_get(a->b, ck.buf, ck.len, &v, &len);
    if (rv == 0) {
        free(v);
        return reject(a, COALITION_E_ALREADY_EXISTS);
    }
    if (rv != STORE_NOT_FOUND) {
        return rv;
    }
    store_batch_put(a->b, ck.buf, ck.len, member, strlen(member));
    return 0;
}

static void card_unlink(struct apply *a, const char *card)
{
    struct key ck;
    key_card(&ck, card);
    store_batch_delete(a->b, ck.buf, ck.len);
}

static int apply_member_add(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    struct key k;
    key_member(&k, t->member);
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
    if (!empty(t->card) && ((rv = card_claim(a, t->card, t->member)) != 0 || a->res->code != 0)) {
        return rv;
    }
    history_add(a, t->member);
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

/* The partner's record (for its program).  0 with *rec, UNKNOWN_PARTNER via
 * res, or an error. */
static int partner_get(struct apply *a, const char *partner, Coalition__PartnerRecord **rec)
{
    struct key k;
    key_partner(&k, partner);
    *rec = NULL;
    int rv =
        batch_get_msg(a->b, &k, &coalition__partner_record__descriptor, (ProtobufCMessage **)rec);
    return rv == STORE_NOT_FOUND ? reject(a, COALITION_E_UNKNOWN_PARTNER) : rv;
}

/* The points of a purchase award, from the partner's program and the
 * member's tier; sets a->rule.  0 (points in *points or a rejection in res)
 * or an error. */
static int award_points(struct apply *a, const Coalition__Program *prog,
                        const Coalition__Rules *rules, int64_t *points)
{
    const Coalition__Txn *t = a->txn;
    const char *tname = "";
    uint32_t tpct = 100;
    int rv = tier_for_purchase(a, t->member, rules, &tname, &tpct);
    if (rv != 0) {
        return rv;
    }
    int code = rules_award_points(prog, a->time_ms, t->purchase_cents, t->paid_points_cents,
                                  t->category, tname, tpct, points, a->rule, sizeof(a->rule));
    return code != 0 ? reject(a, code) : 0;
}

static int apply_award(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__PartnerRecord *partner = NULL;
    Coalition__MemberRecord *member = NULL;
    Coalition__Rules *rules = NULL;
    int rv = partner_get(a, t->partner, &partner);
    if (rv == 0 && a->res->code == 0) {
        rv = member_get(a, t->member, true, &member);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = rules_load(a->l->store, a->b, NULL, &rules);
    }
    int64_t points = t->points;
    if (rv == 0 && a->res->code == 0 && t->purchase_cents != 0) {
        rv = award_points(a, partner->program, rules, &points);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = post(a, 'i', t->partner, 'm', t->member, t->partner, points);
    }
    uint64_t seq = next_seq(a);
    if (rv == 0 && a->res->code == 0) {
        rv = earn_add(a, t->member, a->time_ms, seq, points);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = tier_refresh(a, t->member, member, NULL);
    }
    Coalition__Lot lot = COALITION__LOT__INIT;
    lot.issuer = t->partner;
    lot.earned_ms = a->time_ms;
    lot.expires_ms = rules_expiry_ms(rules, a->time_ms);
    lot.unlock_ms = rules_unlock_ms(partner != NULL ? partner->program : NULL, a->time_ms);
    struct key lk;
    lot_key_make(&lk, t->member, seq, seq);
    if (rv == 0 && a->res->code == 0) {
        history_add(a, t->member);
        rv = append_entry(a);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = lot_add(a, &lk, &lot, points);
    }
    if (rv == 0 && a->res->code == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = t->member;
        rec.points = points;
        rec.lot_key.data = lk.buf;
        rec.lot_key.len = lk.len;
        rec.rule = a->rule;
        a->res->points = points;
        rv = put_txn_record(a, &rec);
    }
    rules_free(rules);
    if (partner != NULL) {
        coalition__partner_record__free_unpacked(partner, NULL);
    }
    if (member != NULL) {
        coalition__member_record__free_unpacked(member, NULL);
    }
    return rv;
}

/* Amounts of each use: its points. */
static int64_t *use_points(Coalition__LotUse *const *uses, size_t n)
{
    int64_t *v = calloc(n + 1, sizeof(*v));
    for (size_t i = 0; v != NULL && i < n; i++) {
        v[i] = uses[i]->points;
    }
    return v;
}

/* Redeem (member -> partner's redemptions), transfer (member -> member) and
 * hold (member -> member's held points) take lots oldest first. */
static int apply_spend(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__PartnerRecord *partner = NULL;
    Coalition__MemberRecord *from = NULL, *to = NULL;
    Coalition__Rules *rules = NULL;
    bool transfer = t->kind == COALITION__TXN_KIND__TXN_TRANSFER;
    bool hold = t->kind == COALITION__TXN_KIND__TXN_HOLD;
    /* The submitting partner must exist in every case. */
    int rv = partner_get(a, t->partner, &partner);
    if (rv == 0 && a->res->code == 0) {
        rv = member_get(a, t->member, true, &from);
    }
    if (rv == 0 && a->res->code == 0 && transfer) {
        rv = member_get(a, t->member_to, true, &to);
    }
    uint64_t deadline = 0;
    if (rv == 0 && a->res->code == 0 && hold) {
        uint32_t timeout = 0;
        rv = rules_load(a->l->store, a->b, NULL, &rules);
        int code = rv == 0 ? rules_hold_timeout_s(rules, t->timeout_s, &timeout) : 0;
        if (code != 0) {
            rv = reject(a, code);
        }
        deadline = a->time_ms + (uint64_t)timeout * 1000;
    }
    Coalition__LotUse **uses = NULL;
    size_t n_uses = 0;
    if (rv == 0 && a->res->code == 0) {
        rv = lots_take(a, t->member, t->points, &uses, &n_uses);
    }
    int64_t *amounts = use_points(uses, n_uses);
    if (rv == 0 && amounts == NULL) {
        rv = COALITION_E_NOMEM;
    }
    if (rv == 0 && a->res->code == 0) {
        char ck = transfer ? 'm' : hold ? 'h' : 'r';
        const char *cid = transfer ? t->member_to : hold ? t->member : t->partner;
        rv = post_uses(a, 'm', t->member, ck, cid, uses, n_uses, amounts);
    }
    if (rv == 0 && a->res->code == 0) {
        history_add(a, t->member);
        if (transfer) {
            history_add(a, t->member_to);
        }
        rv = append_entry(a);
    }
    /* A transfer moves the lots themselves: same issuer and times, keyed by
     * their origin so they are still spent oldest first. */
    for (size_t i = 0; transfer && rv == 0 && a->res->code == 0 && i < n_uses; i++) {
        assert(uses[i]->lot_key.len >= 16);
        uint64_t origin = bytes_get_be64(uses[i]->lot_key.data + uses[i]->lot_key.len - 16);
        struct key lk;
        lot_key_make(&lk, t->member_to, origin, a->res->seq);
        Coalition__Lot like = COALITION__LOT__INIT;
        like.issuer = uses[i]->issuer;
        like.earned_ms = uses[i]->earned_ms;
        like.expires_ms = uses[i]->expires_ms;
        like.unlock_ms = uses[i]->unlock_ms;
        rv = lot_add(a, &lk, &like, uses[i]->points);
    }
    if (rv == 0 && a->res->code == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = t->member;
        rec.points = t->points;
        rec.n_uses = n_uses;
        rec.uses = uses;
        rec.deadline_ms = deadline;
        a->res->points = t->points;
        rv = put_txn_record(a, &rec);
    }
    if (rv == 0 && a->res->code == 0 && hold) {
        struct key dk;
        key_hold_due(&dk, deadline, t->partner, t->txn_id);
        store_batch_put(a->b, dk.buf, dk.len, "", 0);
    }
    free(amounts);
    free_uses(uses, n_uses);
    rules_free(rules);
    if (partner != NULL) {
        coalition__partner_record__free_unpacked(partner, NULL);
    }
    if (from != NULL) {
        coalition__member_record__free_unpacked(from, NULL);
    }
    if (to != NULL) {
        coalition__member_record__free_unpacked(to, NULL);
    }
    return rv;
}

/* The record of this partner's transaction `txn_id`: 0 with *rec, or
 * UNKNOWN_TXN via res, or an error. */
static int txn_record_get(struct apply *a, const char *partner, const char *txn_id,
                          Coalition__TxnRecord **rec)
{
    struct key k;
    key_txn(&k, partner, txn_id);
    *rec = NULL;
    int rv = batch_get_msg(a->b, &k, &coalition__txn_record__descriptor, (ProtobufCMessage **)rec);
    return rv == STORE_NOT_FOUND ? reject(a, COALITION_E_UNKNOWN_TXN) : rv;
}

static int txn_record_put(struct apply *a, const char *partner, const char *txn_id,
                          Coalition__TxnRecord *rec)
{
    struct key k;
    key_txn(&k, partner, txn_id);
    return batch_put_msg(a->b, &k, &rec->base);
}

/* Ends an open hold: `capture` points go to the partner's redemptions (the
 * oldest uses first), the rest back to the lots they came from.  The
 * capture's own uses are returned in *captured (malloc'd, free_uses) so that
 * the capture can be reversed like a redemption.  0 or an error. */
static int hold_close(struct apply *a, Coalition__TxnRecord *hold, const char *partner,
                      const char *hold_txn, int64_t capture, Coalition__LotUse ***captured,
                      size_t *n_captured)
{
    size_t n = hold->n_uses;
    int64_t *cap = calloc(n + 1, sizeof(*cap));
    int64_t *back = calloc(n + 1, sizeof(*back));
    Coalition__LotUse **cu = calloc(n + 1, sizeof(*cu));
    int rv = cap == NULL || back == NULL || cu == NULL ? COALITION_E_NOMEM : 0;
    size_t ncu = 0;
    int64_t want = capture;
    for (size_t i = 0; rv == 0 && i < n; i++) {
        cap[i] = hold->uses[i]->points < want ? hold->uses[i]->points : want;
        back[i] = hold->uses[i]->points - cap[i];
        want -= cap[i];
        if (cap[i] > 0) {
            cu[ncu] = malloc(sizeof(**cu));
            if (cu[ncu] == NULL) {
                rv = COALITION_E_NOMEM;
                break;
            }
            *cu[ncu] = *hold->uses[i]; /* strings borrowed from hold */
            cu[ncu]->points = cap[i];
            cu[ncu]->restored = 0;
            ncu++;
        }
    }
    assert(rv != 0 || want == 0);
    if (rv == 0) {
        rv = post_uses(a, 'h', hold->member, 'r', partner, hold->uses, n, cap);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = post_uses(a, 'h', hold->member, 'm', hold->member, hold->uses, n, back);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = lots_restore(a, hold->uses, n, back, NULL);
    }
    if (rv == 0 && a->res->code == 0) {
        struct key dk;
        key_hold_due(&dk, hold->deadline_ms, partner, hold_txn);
        store_batch_delete(a->b, dk.buf, dk.len);
        hold->captured = capture;
        hold->closed = true;
        rv = txn_record_put(a, partner, hold_txn, hold);
    }
    free(cap);
    free(back);
    *captured = cu;
    *n_captured = ncu;
    return rv;
}

/* Capture, release and the scheduled timeout of a hold. */
static int apply_hold_end(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__TxnRecord *hold = NULL;
    int rv = txn_record_get(a, t->partner, t->of_txn, &hold);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    bool capture = t->kind == COALITION__TXN_KIND__TXN_CAPTURE;
    bool timeout = t->kind == COALITION__TXN_KIND__TXN_HOLD_TIMEOUT;
    int64_t points = capture ? (t->points != 0 ? t->points : hold->points) : 0;
    if (hold->kind != COALITION__TXN_KIND__TXN_HOLD) {
        rv = reject(a, COALITION_E_UNKNOWN_TXN);
    } else if (hold->closed) {
        rv = reject(a, timeout ? COALITION_E_NOTHING_DUE : COALITION_E_HOLD_CLOSED);
    } else if (timeout && a->time_ms < hold->deadline_ms) {
        rv = reject(a, COALITION_E_NOTHING_DUE);
    } else if (capture && a->time_ms >= hold->deadline_ms) {
        rv = reject(a, COALITION_E_HOLD_CLOSED); /* timed out; released by an entry */
    } else if (capture && points > hold->points) {
        rv = reject(a, COALITION_E_INSUFFICIENT_POINTS);
    }
    Coalition__LotUse **cu = NULL;
    size_t ncu = 0;
    if (rv == 0 && a->res->code == 0) {
        rv = hold_close(a, hold, t->partner, t->of_txn, points, &cu, &ncu);
    }
    if (rv == 0 && a->res->code == 0) {
        history_add(a, hold->member);
        rv = append_entry(a);
    }
    if (rv == 0 && a->res->code == 0 && !timeout) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = hold->member;
        rec.points = capture ? points : hold->points;
        rec.n_uses = capture ? ncu : 0;
        rec.uses = cu;
        a->res->points = rec.points;
        rv = put_txn_record(a, &rec);
    }
    if (timeout) {
        a->res->points = hold->points;
    }
    for (size_t i = 0; i < ncu; i++) {
        free(cu[i]);
    }
    free(cu);
    coalition__txn_record__free_unpacked(hold, NULL);
    return rv;
}

/* Reverses (part of) an award: claw the points back from the lot the award
 * created (wherever a merge moved it).  If the member already spent them, or
 * they expired (swept or not), the reversal is rejected with POINTS_SPENT:
 * the ledger never takes points the member does not have (docs/rules.md,
 * refunds). */
static int reverse_award(struct apply *a, Coalition__TxnRecord *orig, int64_t points)
{
    const char *holder = a->holder;
    int rv = member_holder(a, orig->member, a->holder);
    if (rv != 0) {
        return rv;
    }
    if (orig->lot_key.len < 16) {
        return COALITION_E_STORAGE;
    }
    uint64_t origin = bytes_get_be64(orig->lot_key.data + orig->lot_key.len - 16);
    struct lot_item *lots = NULL;
    size_t n = 0;
    if ((rv = lots_load(a->l->store, a->b, NULL, holder, &lots, &n)) != 0) {
        return rv;
    }
    /* The award's lots: those keyed by its origin, not expired. */
    int64_t left = 0;
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &lots[i].key;
        if (bytes_get_be64(k->buf + k->len - 16) == origin &&
            !lot_expired(lots[i].lot, a->time_ms)) {
            left += lots[i].lot->left;
        }
    }
    int64_t need = points;
    if (left < points) {
        rv = reject(a, COALITION_E_POINTS_SPENT);
    }
    for (size_t i = 0; rv == 0 && a->res->code == 0 && need > 0 && i < n; i++) {
        const struct key *k = &lots[i].key;
        if (bytes_get_be64(k->buf + k->len - 16) != origin ||
            lot_expired(lots[i].lot, a->time_ms)) {
            continue;
        }
        int64_t take = lots[i].lot->left < need ? lots[i].lot->left : need;
        rv = lot_set_left(a, k, lots[i].lot, lots[i].lot->left - take);
        need -= take;
    }
    lots_free(lots, n);
    if (rv == 0 && a->res->code == 0) {
        rv = post(a, 'm', holder, 'i', a->txn->partner, a->txn->partner, points);
    }
    /* The award's points no longer count towards the member's tier (a merge
     * moved the earn record with the points). */
    if (rv == 0 && a->res->code == 0) {
        rv = earn_add(a, holder, orig->time_ms, orig->seq, -points);
    }
    Coalition__MemberRecord *m = NULL;
    if (rv == 0 && a->res->code == 0) {
        rv = member_get(a, holder, false, &m);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = tier_refresh(a, holder, m, NULL);
    }
    if (m != NULL) {
        coalition__member_record__free_unpacked(m, NULL);
    }
    if (rv == 0 && a->res->code == 0 && strcmp(holder, orig->member) != 0) {
        history_add(a, holder);
    }
    return rv;
}

/* Reverses (part of) a redemption or capture: the points go back into the
 * lots they came from, last taken first, with their original issuer, expiry
 * and unlock time; to the member it was merged into, if it was. */
static int reverse_redeem(struct apply *a, Coalition__TxnRecord *orig, int64_t points)
{
    size_t n = orig->n_uses;
    int64_t *give = calloc(n + 1, sizeof(*give));
    if (give == NULL) {
        return COALITION_E_NOMEM;
    }
    int64_t left = points;
    for (size_t i = n; i-- > 0 && left > 0;) {
        int64_t room = orig->uses[i]->points - orig->uses[i]->restored;
        give[i] = room < left ? room : left;
        left -= give[i];
        orig->uses[i]->restored += give[i];
    }
    int rv = left != 0 ? COALITION_E_STORAGE : 0; /* uses must cover what was redeemed */
    const char *holder = a->holder;
    if (rv == 0) {
        rv = member_holder(a, orig->member, a->holder);
    }
    bool moved = rv == 0 && strcmp(holder, orig->member) != 0;
    if (rv == 0) {
        rv = post_uses(a, 'r', a->txn->partner, 'm', holder, orig->uses, n, give);
    }
    if (rv == 0 && a->res->code == 0) {
        rv = lots_restore(a, orig->uses, n, give, moved ? holder : NULL);
    }
    if (rv == 0 && a->res->code == 0 && moved) {
        history_add(a, holder);
    }
    free(give);
    return rv;
}

static int apply_reverse(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__TxnRecord *orig = NULL;
    int rv = txn_record_get(a, t->partner, t->of_txn, &orig);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    int64_t remaining = orig->points - orig->reversed;
    int64_t points = t->points == 0 ? remaining : t->points;
    if (orig->kind == COALITION__TXN_KIND__TXN_AWARD) {
        rv = points <= 0 || points > remaining ? reject(a, COALITION_E_REVERSAL_EXCEEDS)
                                               : reverse_award(a, orig, points);
    } else if (orig->kind == COALITION__TXN_KIND__TXN_REDEEM ||
               orig->kind == COALITION__TXN_KIND__TXN_CAPTURE) {
        rv = points <= 0 || points > remaining ? reject(a, COALITION_E_REVERSAL_EXCEEDS)
                                               : reverse_redeem(a, orig, points);
    } else {
        rv = reject(a, COALITION_E_NOT_REVERSIBLE);
    }
    if (rv == 0 && a->res->code == 0) {
        orig->reversed += points;
        rv = txn_record_put(a, t->partner, t->of_txn, orig);
    }
    if (rv == 0 && a->res->code == 0) {
        history_add(a, orig->member);
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

/* Scheduled: every lot of the member that expired by the entry's time goes
 * to its issuer's expired (breakage) account.  NOTHING_DUE if none did. */
static int apply_expire(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    struct lot_item *lots = NULL;
    size_t n = 0;
    int rv = lots_load(a->l->store, a->b, NULL, t->member, &lots, &n);
    if (rv != 0) {
        return rv;
    }
    int64_t total = 0;
    for (size_t i = 0; rv == 0 && a->res->code == 0 && i < n; i++) {
        if (!lot_expired(lots[i].lot, a->time_ms)) {
            continue;
        }
        total += lots[i].lot->left;
        rv = post(a, 'm', t->member, 'x', lots[i].lot->issuer, lots[i].lot->issuer,
                  lots[i].lot->left);
        if (rv == 0 && a->res->code == 0) {
            lot_delete(a, &lots[i].key, lots[i].lot);
        }
    }
    lots_free(lots, n);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    if (total == 0) {
        return reject(a, COALITION_E_NOTHING_DUE);
    }
    history_add(a, t->member);
    a->res->points = total;
    return append_entry(a);
}

/* Scheduled: the member's tier as points age out of the 12-month window. */
static int apply_tier_review(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__MemberRecord *m = NULL;
    int rv = member_get(a, t->member, false, &m);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    if (m->review_ms == 0 || m->review_ms > a->time_ms) {
        rv = reject(a, COALITION_E_NOTHING_DUE);
    } else {
        rv = tier_refresh(a, t->member, m, NULL);
    }
    if (rv == 0 && a->res->code == 0) {
        history_add(a, t->member);
        rv = append_entry(a);
    }
    coalition__member_record__free_unpacked(m, NULL);
    return rv;
}

static int apply_program_set(struct apply *a)
{
    Coalition__PartnerRecord *p = NULL;
    int rv = partner_get(a, a->txn->partner, &p);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    Coalition__Program *old = p->program;
    p->program = a->txn->program;
    struct key k;
    key_partner(&k, a->txn->partner);
    rv = batch_put_msg(a->b, &k, &p->base);
    p->program = old;
    coalition__partner_record__free_unpacked(p, NULL);
    if (rv == 0) {
        rv = append_entry(a);
    }
    if (rv == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rv = put_txn_record(a, &rec);
    }
    return rv;
}

static int apply_rules_set(struct apply *a)
{
    struct key k;
    key_init(&k, LEDGER_RULES_KEY[0]);
    key_add_str(&k, LEDGER_RULES_KEY + 1);
    int rv = batch_put_msg(a->b, &k, &a->txn->rules->base);
    if (rv == 0) {
        rv = append_entry(a);
    }
    if (rv == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rv = put_txn_record(a, &rec);
    }
    return rv;
}

/* ---------------------------------------------------------------------------
 * Member identity: cards, lookup keys, merge, erase */

static bool member_has_card(const Coalition__MemberRecord *m, const char *card)
{
    for (size_t i = 0; i < m->n_cards; i++) {
        if (strcmp(m->cards[i], card) == 0) {
            return true;
        }
    }
    return false;
}

static void key_lookup(struct key *k, const ProtobufCBinaryData *hash)
{
    key_init(k, 'k');
    key_add(k, hash->data, hash->len);
}

/* Card add and replace: the card index follows; a replaced card stops
 * working at once and the balance stays with the member. */
static int apply_card(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    bool replace = t->kind == COALITION__TXN_KIND__TXN_CARD_REPLACE;
    Coalition__MemberRecord *m = NULL;
    int rv = member_get(a, t->member, true, &m);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    char **cards = calloc(m->n_cards + 1, sizeof(*cards));
    size_t n = 0;
    if (cards == NULL) {
        rv = COALITION_E_NOMEM;
    } else if (m->n_cards >= LEDGER_CARDS_MAX && !replace) {
        rv = reject(a, COALITION_E_INVALID_ARGUMENT);
    } else if (replace && !member_has_card(m, t->old_card)) {
        rv = reject(a, COALITION_E_UNKNOWN_CARD);
    } else {
        rv = card_claim(a, t->card, t->member);
    }
    if (rv == 0 && a->res->code == 0) {
        for (size_t i = 0; i < m->n_cards; i++) {
            if (!replace || strcmp(m->cards[i], t->old_card) != 0) {
                cards[n++] = m->cards[i];
            }
        }
        cards[n++] = t->card;
        if (replace) {
            card_unlink(a, t->old_card);
        }
        struct member_ids ids = {cards, n, m->lookup_keys, m->n_lookup_keys};
        rv = member_write(a, t->member, m, NULL, &ids);
    }
    if (rv == 0 && a->res->code == 0) {
        history_add(a, t->member);
        rv = append_entry(a);
    }
    if (rv == 0 && a->res->code == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = t->member;
        rv = put_txn_record(a, &rec);
    }
    free(cards);
    coalition__member_record__free_unpacked(m, NULL);
    return rv;
}

/* The member's lookup keys become the transaction's: old ones are dropped,
 * a key of another member is ALREADY_EXISTS. */
static int apply_identify(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__MemberRecord *m = NULL;
    int rv = member_get(a, t->member, true, &m);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    struct key k;
    for (size_t i = 0; i < m->n_lookup_keys; i++) {
        key_lookup(&k, &m->lookup_keys[i]);
        store_batch_delete(a->b, k.buf, k.len);
    }
    for (size_t i = 0; rv == 0 && a->res->code == 0 && i < t->n_lookup_keys; i++) {
        key_lookup(&k, &t->lookup_keys[i]);
        void *v = NULL;
        size_t len = 0;
        rv = store_batch_get(a->b, k.buf, k.len, &v, &len);
        if (rv == 0) {
            free(v);
            rv = reject(a, COALITION_E_ALREADY_EXISTS);
        } else if (rv == STORE_NOT_FOUND) {
            rv = 0;
            store_batch_put(a->b, k.buf, k.len, t->member, strlen(t->member));
        }
    }
    if (rv == 0 && a->res->code == 0) {
        struct member_ids ids = {m->cards, m->n_cards, t->lookup_keys, t->n_lookup_keys};
        rv = member_write(a, t->member, m, NULL, &ids);
    }
    if (rv == 0 && a->res->code == 0) {
        history_add(a, t->member);
        rv = append_entry(a);
    }
    if (rv == 0 && a->res->code == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = t->member;
        rv = put_txn_record(a, &rec);
    }
    coalition__member_record__free_unpacked(m, NULL);
    return rv;
}

/* Moves every lot and earn record of `from` to `to`.  0 or an error. */
static int merge_holdings(struct apply *a, const char *from, const char *to)
{
    struct lot_item *lots = NULL;
    size_t n = 0;
    int rv = lots_load(a->l->store, a->b, NULL, from, &lots, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; rv == 0 && a->res->code == 0 && i < n; i++) {
        const struct key *fk = &lots[i].key;
        uint64_t origin = bytes_get_be64(fk->buf + fk->len - 16);
        struct key lk;
        lot_key_make(&lk, to, origin, next_seq(a));
        rv = post(a, 'm', from, 'm', to, lots[i].lot->issuer, lots[i].lot->left);
        if (rv == 0 && a->res->code == 0) {
            lot_delete(a, fk, lots[i].lot);
            rv = lot_add(a, &lk, lots[i].lot, lots[i].lot->left);
        }
    }
    lots_free(lots, n);
    struct earn *e = NULL;
    if (rv == 0 && a->res->code == 0) {
        rv = earns_load(a->l->store, a->b, NULL, from, &e, &n);
    }
    for (size_t i = 0; rv == 0 && e != NULL && i < n; i++) {
        uint64_t seq = bytes_get_be64(e[i].key.buf + e[i].key.len - 8);
        store_batch_delete(a->b, e[i].key.buf, e[i].key.len);
        rv = earn_add(a, to, e[i].time_ms, seq, e[i].points);
    }
    free(e);
    return rv;
}

/* Two records of one person: `member` is absorbed into `member_to`, which
 * gets its points (same lots, same expiry), cards and lookup keys; the
 * absorbed record stays, closed, with its history. */
static int apply_merge(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__MemberRecord *from = NULL, *to = NULL;
    int rv = member_get(a, t->member, true, &from);
    if (rv == 0 && a->res->code == 0) {
        rv = member_get(a, t->member_to, true, &to);
    }
    int64_t held = 0;
    if (rv == 0 && a->res->code == 0) {
        struct key hk;
        key_account(&hk, 'h', t->member);
        rv = batch_get_i64(a->b, &hk, &held);
        rv = rv == STORE_NOT_FOUND ? 0 : rv;
        if (rv == 0 && held != 0) {
            rv = reject(a, COALITION_E_OPEN_HOLDS);
        }
    }
    if (rv == 0 && a->res->code == 0) {
        rv = merge_holdings(a, t->member, t->member_to);
    }
    char **cards = NULL;
    ProtobufCBinaryData *keys = NULL;
    if (rv == 0 && a->res->code == 0) {
        cards = calloc(from->n_cards + to->n_cards + 1, sizeof(*cards));
        keys = calloc(from->n_lookup_keys + to->n_lookup_keys + 1, sizeof(*keys));
        rv = cards == NULL || keys == NULL ? COALITION_E_NOMEM : 0;
    }
    if (rv == 0 && a->res->code == 0) {
        size_t nc = 0, nk = 0;
        for (size_t i = 0; i < to->n_cards; i++) {
            cards[nc++] = to->cards[i];
        }
        for (size_t i = 0; i < from->n_cards; i++) {
            struct key k;
            key_card(&k, from->cards[i]);
            store_batch_put(a->b, k.buf, k.len, t->member_to, strlen(t->member_to));
            cards[nc++] = from->cards[i];
        }
        for (size_t i = 0; i < to->n_lookup_keys; i++) {
            keys[nk++] = to->lookup_keys[i];
        }
        for (size_t i = 0; i < from->n_lookup_keys; i++) {
            struct key k;
            key_lookup(&k, &from->lookup_keys[i]);
            store_batch_put(a->b, k.buf, k.len, t->member_to, strlen(t->member_to));
            keys[nk++] = from->lookup_keys[i];
        }
        struct member_ids ids = {cards, nc, keys, nk};
        rv = tier_refresh(a, t->member_to, to, &ids);
        if (rv == 0) {
            Coalition__MemberRecord closed = *from;
            closed.merged_into = t->member_to;
            closed.tier = "";
            closed.review_ms = 0;
            if (from->review_ms != 0) {
                struct key dk;
                key_tier_due(&dk, from->review_ms, t->member);
                store_batch_delete(a->b, dk.buf, dk.len);
            }
            struct member_ids none = {0};
            rv = member_write(a, t->member, &closed, NULL, &none);
        }
    }
    if (rv == 0 && a->res->code == 0) {
        history_add(a, t->member);
        history_add(a, t->member_to);
        rv = append_entry(a);
    }
    if (rv == 0 && a->res->code == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = t->member;
        rv = put_txn_record(a, &rec);
    }
    free(cards);
    free(keys);
    if (from != NULL) {
        coalition__member_record__free_unpacked(from, NULL);
    }
    if (to != NULL) {
        coalition__member_record__free_unpacked(to, NULL);
    }
    return rv;
}

/* Erasure: the lookup keys and cards that lead to the person are deleted;
 * the pseudonymous member id, its balance and history stay auditable, and
 * the record is closed. */
static int apply_erase(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    Coalition__MemberRecord *m = NULL;
    int rv = member_get(a, t->member, true, &m);
    if (rv != 0 || a->res->code != 0) {
        return rv;
    }
    for (size_t i = 0; i < m->n_cards; i++) {
        card_unlink(a, m->cards[i]);
    }
    for (size_t i = 0; i < m->n_lookup_keys; i++) {
        struct key k;
        key_lookup(&k, &m->lookup_keys[i]);
        store_batch_delete(a->b, k.buf, k.len);
    }
    m->erased = true;
    struct member_ids none = {0};
    rv = member_write(a, t->member, m, NULL, &none);
    if (rv == 0) {
        history_add(a, t->member);
        rv = append_entry(a);
    }
    if (rv == 0) {
        Coalition__TxnRecord rec = COALITION__TXN_RECORD__INIT;
        rec.member = t->member;
        rv = put_txn_record(a, &rec);
    }
    coalition__member_record__free_unpacked(m, NULL);
    return rv;
}

/* Kinds whose (partner, txn_id) is an idempotency key; the admissions keep
 * their own rule (admin_repeat) and scheduled kinds are checked by state. */
static bool kind_has_txn_record(Coalition__TxnKind kind)
{
    switch (kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
    case COALITION__TXN_KIND__TXN_MEMBER_ADD:
    case COALITION__TXN_KIND__TXN_INIT:
    case COALITION__TXN_KIND__TXN_EXPIRE:
    case COALITION__TXN_KIND__TXN_HOLD_TIMEOUT:
    case COALITION__TXN_KIND__TXN_TIER_REVIEW:
        return false;
    default:
        return true;
    }
}

/* Applies one transaction into the batch.  Returns 0 (outcome in a->res) or
 * a storage/memory error. */
/* The coalition admin key: 0, STORE_NOT_FOUND before INIT, or an error.
 * Reads through the batch when b is given, else committed state. */
static int admin_key_get(struct ledger *l, struct store_batch *b, uint8_t pk[AUTH_PUBLIC_LEN])
{
    void *v = NULL;
    size_t len = 0;
    int rv =
        b != NULL
            ? store_batch_get(b, LEDGER_ADMIN_KEY, sizeof(LEDGER_ADMIN_KEY) - 1, &v, &len)
            : store_get(l->store, NULL, LEDGER_ADMIN_KEY, sizeof(LEDGER_ADMIN_KEY) - 1, &v, &len);
    if (rv != 0) {
        return rv;
    }
    rv = len == AUTH_PUBLIC_LEN ? 0 : COALITION_E_STORAGE;
    if (rv == 0) {
        memcpy(pk, v, AUTH_PUBLIC_LEN);
    }
    free(v);
    return rv;
}

/* The key that verifies `signer`'s groups: the admin's for "", else the
 * partner's.  0, UNAUTHENTICATED (unknown signer, or no key) or an error. */
static int signer_key_get(struct ledger *l, struct store_batch *b, const char *signer,
                          uint8_t pk[AUTH_PUBLIC_LEN])
{
    if (signer[0] == '\0') {
        int rv = admin_key_get(l, b, pk);
        return rv == STORE_NOT_FOUND ? COALITION_E_UNAUTHENTICATED : rv;
    }
    if (!ledger_id_ok(signer)) {
        return COALITION_E_UNAUTHENTICATED;
    }
    struct key k;
    key_partner(&k, signer);
    Coalition__PartnerRecord *rec = NULL;
    int rv = state_get_msg(l->store, b, &k, &coalition__partner_record__descriptor,
                           (ProtobufCMessage **)&rec);
    if (rv != 0) {
        return rv == STORE_NOT_FOUND ? COALITION_E_UNAUTHENTICATED : rv;
    }
    rv = rec->public_key.len == AUTH_PUBLIC_LEN ? 0 : COALITION_E_UNAUTHENTICATED;
    if (rv == 0) {
        memcpy(pk, rec->public_key.data, AUTH_PUBLIC_LEN);
    }
    coalition__partner_record__free_unpacked(rec, NULL);
    return rv;
}

/* Genesis: records the admin key, once. */
static int apply_init(struct apply *a)
{
    uint8_t pk[AUTH_PUBLIC_LEN];
    int rv = admin_key_get(a->l, a->b, pk);
    if (rv == 0) {
        return reject(a, COALITION_E_ALREADY_EXISTS);
    }
    if (rv != STORE_NOT_FOUND || (rv = append_entry(a)) != 0) {
        return rv;
    }
    store_batch_put(a->b, LEDGER_ADMIN_KEY, sizeof(LEDGER_ADMIN_KEY) - 1, a->txn->public_key.data,
                    AUTH_PUBLIC_LEN);
    return 0;
}

static void key_api(struct key *k, const char *key_id)
{
    key_init(k, 'K');
    key_add_str(k, key_id);
}

/* APIKEY_ADD (partner's own, new id) and APIKEY_REVOKE (own key, or any
 * key by the admin; revoking twice is accepted and changes nothing more). */
static int apply_api_key(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    struct key k;
    key_api(&k, t->key_id);
    Coalition__ApiKeyRecord *old = NULL;
    int rv =
        batch_get_msg(a->b, &k, &coalition__api_key_record__descriptor, (ProtobufCMessage **)&old);
    if (rv != 0 && rv != STORE_NOT_FOUND) {
        return rv;
    }
    if (t->kind == COALITION__TXN_KIND__TXN_APIKEY_ADD) {
        Coalition__PartnerRecord *partner = NULL;
        if (old != NULL) {
            coalition__api_key_record__free_unpacked(old, NULL);
            return reject(a, COALITION_E_ALREADY_EXISTS);
        }
        if ((rv = partner_get(a, t->partner, &partner)) != 0 || a->res->code != 0) {
            return rv;
        }
        coalition__partner_record__free_unpacked(partner, NULL);
        if ((rv = append_entry(a)) != 0) {
            return rv;
        }
        Coalition__ApiKeyRecord rec = COALITION__API_KEY_RECORD__INIT;
        rec.partner = t->partner;
        rec.hash = t->key_hash;
        rec.seq = a->res->seq;
        return batch_put_msg(a->b, &k, &rec.base);
    }
    if (old == NULL) {
        return reject(a, COALITION_E_INVALID_ARGUMENT);
    }
    if (!empty(t->partner) && strcmp(old->partner, t->partner) != 0) {
        coalition__api_key_record__free_unpacked(old, NULL);
        return reject(a, COALITION_E_FORBIDDEN);
    }
    if ((rv = append_entry(a)) == 0 && old->revoked_seq == 0) {
        old->revoked_seq = a->res->seq;
        rv = batch_put_msg(a->b, &k, &old->base);
    }
    coalition__api_key_record__free_unpacked(old, NULL);
    return rv;
}

/* May the actor do this?  0, UNAUTHENTICATED or FORBIDDEN (nothing is
 * recorded: a forged or misdirected request changes nothing). */
static int authorize(const struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    bool scheduled = ledger_kind_scheduled(t->kind);
    bool init = t->kind == COALITION__TXN_KIND__TXN_INIT;
    switch (a->actor_kind) {
    case ACTOR_TRUSTED:
        return 0;
    case ACTOR_UNSIGNED:
        return scheduled || init ? 0 : COALITION_E_UNAUTHENTICATED;
    case ACTOR_SIGNED:
        break;
    }
    assert(a->actor != NULL);
    if (scheduled || init) {
        return COALITION_E_FORBIDDEN;
    }
    bool admin = a->actor[0] == '\0';
    switch (t->kind) {
    case COALITION__TXN_KIND__TXN_PARTNER_ADD:
        /* The partner's key is what will verify its writes. */
        if (t->public_key.len == 0) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        return admin ? 0 : COALITION_E_FORBIDDEN;
    case COALITION__TXN_KIND__TXN_RULES_SET:
    case COALITION__TXN_KIND__TXN_MERGE:
    case COALITION__TXN_KIND__TXN_ERASE:
        return admin ? 0 : COALITION_E_FORBIDDEN;
    default:
        /* A partner acts in its own name; the admin without a partner. */
        return strcmp(t->partner != NULL ? t->partner : "", a->actor) == 0 ? 0
                                                                           : COALITION_E_FORBIDDEN;
    }
}

static int apply_one(struct apply *a)
{
    const Coalition__Txn *t = a->txn;
    int code = ledger_validate(t);
    if (code == 0) {
        code = authorize(a);
    }
    if (code != 0) {
        return reject(a, code);
    }
    if (kind_has_txn_record(t->kind)) {
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
    case COALITION__TXN_KIND__TXN_TRANSFER:
    case COALITION__TXN_KIND__TXN_HOLD:
        return apply_spend(a);
    case COALITION__TXN_KIND__TXN_CAPTURE:
    case COALITION__TXN_KIND__TXN_RELEASE:
    case COALITION__TXN_KIND__TXN_HOLD_TIMEOUT:
        return apply_hold_end(a);
    case COALITION__TXN_KIND__TXN_REVERSE:
        return apply_reverse(a);
    case COALITION__TXN_KIND__TXN_EXPIRE:
        return apply_expire(a);
    case COALITION__TXN_KIND__TXN_TIER_REVIEW:
        return apply_tier_review(a);
    case COALITION__TXN_KIND__TXN_PROGRAM_SET:
        return apply_program_set(a);
    case COALITION__TXN_KIND__TXN_RULES_SET:
        return apply_rules_set(a);
    case COALITION__TXN_KIND__TXN_CARD_ADD:
    case COALITION__TXN_KIND__TXN_CARD_REPLACE:
        return apply_card(a);
    case COALITION__TXN_KIND__TXN_IDENTIFY:
        return apply_identify(a);
    case COALITION__TXN_KIND__TXN_MERGE:
        return apply_merge(a);
    case COALITION__TXN_KIND__TXN_ERASE:
        return apply_erase(a);
    case COALITION__TXN_KIND__TXN_INIT:
        return apply_init(a);
    case COALITION__TXN_KIND__TXN_APIKEY_ADD:
    case COALITION__TXN_KIND__TXN_APIKEY_REVOKE:
        return apply_api_key(a);
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

/* Applies one transaction in its own savepoint: a rejection rolls back
 * whatever it wrote.  0 or a storage error (fatal). */
static int apply_in_savepoint(struct ledger *l, uint64_t time_ms, const Coalition__Txn *txn,
                              enum actor actor_kind, const char *actor, struct ledger_result *res)
{
    struct apply a = {.l = l,
                      .b = l->wb,
                      .time_ms = time_ms,
                      .txn = txn,
                      .res = res,
                      .postings = l->postings,
                      .cap_postings = l->cap_postings,
                      .actor_kind = actor_kind,
                      .actor = actor};
    memset(res, 0, sizeof(*res));
    struct ledger_head prev = l->head;
    store_batch_savepoint(l->wb);
    int rv = apply_one(&a);
    l->postings = a.postings; /* kept, maybe grown */
    l->cap_postings = a.cap_postings;
    if (rv != 0) {
        return rv;
    }
    if (res->code != 0) {
        store_batch_rollback(l->wb);
        l->head = prev;
        res->seq = 0;
        res->duplicate = false;
    } else {
        store_batch_release_savepoint(l->wb);
    }
    assert(res->code != 0 || res->seq > 0);
    return 0;
}

/* A signed group's transactions, or NULL if the group does not decode.
 * Free with coalition__txn_list__free_unpacked. */
static Coalition__TxnList *group_unpack(const Coalition__SignedGroup *g)
{
    if (g->signer == NULL || g->txns.len == 0) {
        return NULL;
    }
    return coalition__txn_list__unpack(NULL, g->txns.len, g->txns.data);
}

/* Where the outcome of the k-th transaction of a batch goes: the caller's
 * slot while there is one, else `spare` (not kept).  Every transaction is
 * applied either way: what is applied never depends on who is listening. */
static struct ledger_result *result_slot(struct ledger_result *results, size_t n_results, size_t k,
                                         struct ledger_result *spare)
{
    return results != NULL && k < n_results ? &results[k] : spare;
}

/* Applies a signed group at its place in the batch: its signature is
 * checked with the signer's key as of the transactions before it, then each
 * transaction acts for the signer.  A group that fails verification changes
 * nothing; each of its results says UNAUTHENTICATED.  Results go to slots
 * *k, *k+1, ... (see result_slot).  0 or a storage error. */
static int apply_group(struct ledger *l, uint64_t time_ms, const Coalition__SignedGroup *g,
                       struct ledger_result *results, size_t n_results, size_t *k)
{
    Coalition__TxnList *list = group_unpack(g);
    if (list == NULL) {
        return 0; /* nothing signed that decodes: no transactions */
    }
    uint8_t pk[AUTH_PUBLIC_LEN];
    int rv = signer_key_get(l, l->wb, g->signer, pk);
    int code = rv;
    if (rv == 0 || rv == COALITION_E_UNAUTHENTICATED) {
        rv = 0;
        if (code == 0) {
            code = auth_group_verify(g->txns.data, g->txns.len, g->signature.data, g->signature.len,
                                     pk);
        }
    }
    for (size_t i = 0; rv == 0 && i < list->n_txns; i++) {
        struct ledger_result spare;
        struct ledger_result *res = result_slot(results, n_results, (*k)++, &spare);
        if (code != 0) {
            memset(res, 0, sizeof(*res));
            res->code = code;
            continue;
        }
        rv = apply_in_savepoint(l, time_ms, list->txns[i], ACTOR_SIGNED, g->signer, res);
    }
    coalition__txn_list__free_unpacked(list, NULL);
    return rv;
}

/* The one apply path: transactions, signed groups and directory updates of
 * one batch, all in one atomic write together with the new head.  Outcomes
 * go to results[0..n_results) in order as far as there is room. */
static int ledger_apply_all(struct ledger *l, uint64_t index, uint64_t time_ms,
                            Coalition__Txn *const *txns, size_t n, enum actor txns_actor,
                            Coalition__SignedGroup *const *groups, size_t n_groups,
                            Coalition__NodeInfo *const *nodes, size_t n_nodes,
                            struct ledger_result *results, size_t n_results)
{
    assert(l != NULL && (n == 0 || txns != NULL));
    if (index <= l->head.applied_index) {
        return 1;
    }
    struct ledger_head before = l->head;
    store_batch_clear(l->wb);
    int rv = 0;
    size_t k = 0;
    for (size_t i = 0; rv == 0 && i < n; i++) {
        struct ledger_result spare;
        rv = apply_in_savepoint(l, time_ms, txns[i], txns_actor, NULL,
                                result_slot(results, n_results, k++, &spare));
    }
    for (size_t i = 0; rv == 0 && i < n_groups; i++) {
        rv = apply_group(l, time_ms, groups[i], results, n_results, &k);
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
        for (size_t i = 0; results != NULL && i < n_results; i++) {
            results[i].code = rv;
        }
    }
    return rv;
}

int ledger_apply(struct ledger *l, uint64_t index, uint64_t time_ms, Coalition__Txn *const *txns,
                 size_t n, struct ledger_result *results)
{
    return ledger_apply_all(l, index, time_ms, txns, n, ACTOR_TRUSTED, NULL, 0, NULL, 0, results,
                            n);
}

int ledger_apply_batch(struct ledger *l, uint64_t index, const Coalition__Batch *batch,
                       struct ledger_result *results, size_t n_results)
{
    assert(batch != NULL);
    return ledger_apply_all(l, index, batch->time_ms, batch->txns, batch->n_txns, ACTOR_UNSIGNED,
                            batch->groups, batch->n_groups, batch->nodes, batch->n_nodes, results,
                            n_results);
}

int ledger_signer_key(struct ledger *l, const char *signer, uint8_t pk[AUTH_PUBLIC_LEN])
{
    return signer_key_get(l, NULL, signer, pk);
}

bool ledger_initialized(struct ledger *l)
{
    uint8_t pk[AUTH_PUBLIC_LEN];
    return admin_key_get(l, NULL, pk) == 0;
}

int ledger_api_key_partner(struct ledger *l, const char *key_id, const uint8_t hash[AUTH_HASH_LEN],
                           char partner[LEDGER_ID_MAX + 1])
{
    struct key k;
    if (!key_id_ok(key_id)) {
        return COALITION_E_UNAUTHENTICATED;
    }
    key_api(&k, key_id);
    Coalition__ApiKeyRecord *rec = NULL;
    int rv = state_get_msg(l->store, NULL, &k, &coalition__api_key_record__descriptor,
                           (ProtobufCMessage **)&rec);
    if (rv != 0) {
        return rv == STORE_NOT_FOUND ? COALITION_E_UNAUTHENTICATED : rv;
    }
    rv = rec->revoked_seq == 0 && rec->hash.len == AUTH_HASH_LEN &&
                 auth_hash_equal(rec->hash.data, hash) && strlen(rec->partner) <= LEDGER_ID_MAX
             ? 0
             : COALITION_E_UNAUTHENTICATED;
    if (rv == 0) {
        strcpy(partner, rec->partner);
    }
    coalition__api_key_record__free_unpacked(rec, NULL);
    return rv;
}

int ledger_key_trusted(struct ledger *l, const uint8_t pk[AUTH_PUBLIC_LEN], bool *trusted)
{
    uint8_t admin[AUTH_PUBLIC_LEN];
    *trusted = false;
    int rv = admin_key_get(l, NULL, admin);
    if (rv == 0 && sodium_memcmp(admin, pk, AUTH_PUBLIC_LEN) == 0) {
        *trusted = true;
        return 0;
    }
    if (rv != 0 && rv != STORE_NOT_FOUND) {
        return rv;
    }
    struct store_iter *it = NULL;
    if ((rv = store_iter_create(l->store, NULL, NULL, "p", 1, &it)) != 0) {
        return rv;
    }
    for (store_iter_seek_first(it); store_iter_valid(it) && !*trusted; store_iter_next(it)) {
        size_t vlen = 0;
        const void *vp = store_iter_value(it, &vlen);
        Coalition__PartnerRecord *rec = coalition__partner_record__unpack(NULL, vlen, vp);
        if (rec == NULL) {
            rv = COALITION_E_STORAGE;
            break;
        }
        *trusted = rec->public_key.len == AUTH_PUBLIC_LEN &&
                   sodium_memcmp(rec->public_key.data, pk, AUTH_PUBLIC_LEN) == 0;
        coalition__partner_record__free_unpacked(rec, NULL);
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    return rv;
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

/* Reads an int64 account of the committed state; a missing lazy account is
 * 0.  0, STORE_NOT_FOUND or an error. */
static int account_read(struct store *s, const struct store_snapshot *snap, char kind,
                        const char *id, int64_t *out)
{
    struct key k;
    key_account(&k, kind, id);
    void *v = NULL;
    size_t len = 0;
    int rv = store_get(s, snap, k.buf, k.len, &v, &len);
    if (rv == STORE_NOT_FOUND && account_lazy(kind)) {
        *out = 0;
        return 0;
    }
    return rv != 0 ? rv : decode_i64(v, len, out);
}

int ledger_balance_at(struct ledger *l, uint64_t at_ms, const char *member,
                      struct ledger_balance *out)
{
    if (!ledger_id_ok(member)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    memset(out, 0, sizeof(*out));
    out->at_ms = at_ms;
    out->as_of_seq = l->head.seq;
    struct store_snapshot *snap = store_snapshot_create(l->store);
    int64_t total = 0;
    int rv = account_read(l->store, snap, 'm', member, &total);
    rv = rv == STORE_NOT_FOUND ? COALITION_E_UNKNOWN_MEMBER : rv;
    if (rv == 0) {
        rv = account_read(l->store, snap, 'h', member, &out->held);
    }
    struct lot_item *lots = NULL;
    size_t n = 0;
    if (rv == 0) {
        rv = lots_load(l->store, NULL, snap, member, &lots, &n);
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const Coalition__Lot *lot = lots[i].lot;
        if (lot_spendable(lot, at_ms)) {
            out->points += lot->left;
        } else if (!lot_expired(lot, at_ms)) {
            out->locked += lot->left;
        }
    }
    lots_free(lots, n);
    Coalition__Rules *rules = NULL;
    struct earn *e = NULL;
    if (rv == 0) {
        rv = rules_load(l->store, NULL, snap, &rules);
    }
    if (rv == 0) {
        rv = earns_load(l->store, NULL, snap, member, &e, &n);
    }
    if (rv == 0) {
        struct standing st;
        standing_compute(rules, e, n, at_ms, &st);
        out->earned_12m = st.earned;
        snprintf(out->tier, sizeof(out->tier), "%s", tier_name(rules, st.tier));
        if (rules != NULL && (size_t)(st.tier + 1) < rules->n_tiers) {
            const Coalition__Tier *next = rules->tiers[st.tier + 1];
            snprintf(out->next_tier, sizeof(out->next_tier), "%s", next->name);
            out->to_next_tier = next->threshold - st.earned;
        }
    }
    free(e);
    rules_free(rules);
    store_snapshot_release(l->store, snap);
    return rv;
}

int ledger_expiring(struct ledger *l, const char *member, uint64_t at_ms, uint64_t until_ms,
                    Coalition__ExpiringLot **items, size_t *n_items)
{
    if (!ledger_id_ok(member)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    int64_t total = 0;
    int rv = account_read(l->store, NULL, 'm', member, &total);
    if (rv != 0) {
        return rv == STORE_NOT_FOUND ? COALITION_E_UNKNOWN_MEMBER : rv;
    }
    struct lot_item *lots = NULL;
    size_t n = 0;
    if ((rv = lots_load(l->store, NULL, NULL, member, &lots, &n)) != 0) {
        return rv;
    }
    Coalition__ExpiringLot *out = calloc(n + 1, sizeof(*out));
    size_t count = 0;
    for (size_t i = 0; out != NULL && i < n; i++) {
        const Coalition__Lot *lot = lots[i].lot;
        if (lot->expires_ms == 0 || lot_expired(lot, at_ms) || lot->expires_ms > until_ms) {
            continue;
        }
        Coalition__ExpiringLot *x = &out[count++];
        coalition__expiring_lot__init(x);
        x->issuer = strdup_msg(lot->issuer);
        x->points = lot->left;
        x->earned_ms = lot->earned_ms;
        x->expires_ms = lot->expires_ms;
        if (x->issuer == NULL) {
            rv = COALITION_E_NOMEM;
            break;
        }
    }
    lots_free(lots, n);
    if (out == NULL || rv != 0) {
        ledger_expiring_free(out, count);
        return out == NULL ? COALITION_E_NOMEM : rv;
    }
    /* Soonest first (lots are in earning order; expiry rules may change). */
    for (size_t i = 1; i < count; i++) {
        Coalition__ExpiringLot x = out[i];
        size_t j = i;
        for (; j > 0 && out[j - 1].expires_ms > x.expires_ms; j--) {
            out[j] = out[j - 1];
        }
        out[j] = x;
    }
    *items = out;
    *n_items = count;
    return 0;
}

void ledger_expiring_free(Coalition__ExpiringLot *items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++) {
        free(items[i].issuer);
    }
    free(items);
}

/* Reads the member id stored under `k` (card or lookup key). */
static int lookup_read(struct ledger *l, const struct key *k, char member[LEDGER_ID_MAX + 1])
{
    void *v = NULL;
    size_t len = 0;
    int rv = store_get(l->store, NULL, k->buf, k->len, &v, &len);
    if (rv == STORE_NOT_FOUND) {
        return COALITION_E_UNKNOWN_MEMBER;
    }
    if (rv == 0 && (len == 0 || len > LEDGER_ID_MAX)) {
        rv = COALITION_E_STORAGE;
    }
    if (rv == 0) {
        memcpy(member, v, len);
        member[len] = '\0';
    }
    free(v);
    return rv;
}

int ledger_lookup_card(struct ledger *l, const char *card, char member[LEDGER_ID_MAX + 1])
{
    if (!ledger_id_ok(card)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct key k;
    key_card(&k, card);
    return lookup_read(l, &k, member);
}

int ledger_lookup_key(struct ledger *l, const uint8_t hash[LEDGER_HASH_LEN],
                      char member[LEDGER_ID_MAX + 1])
{
    ProtobufCBinaryData h = {LEDGER_HASH_LEN, (uint8_t *)hash};
    struct key k;
    key_lookup(&k, &h);
    return lookup_read(l, &k, member);
}

int ledger_program(struct ledger *l, const char *partner, Coalition__Program **out)
{
    assert(out != NULL);
    *out = NULL;
    if (!ledger_id_ok(partner)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct key k;
    key_partner(&k, partner);
    Coalition__PartnerRecord *rec = NULL;
    int rv = state_get_msg(l->store, NULL, &k, &coalition__partner_record__descriptor,
                           (ProtobufCMessage **)&rec);
    if (rv != 0) {
        return rv == STORE_NOT_FOUND ? COALITION_E_UNKNOWN_PARTNER : rv;
    }
    Coalition__Program *p = rec->program;
    rec->program = NULL; /* kept: it is the answer */
    coalition__partner_record__free_unpacked(rec, NULL);
    if (p == NULL) {
        /* Never set: what the apply does with a NULL program.  An empty
         * message from malloc, so that ledger_program_free frees both kinds
         * alike. */
        p = malloc(sizeof(*p));
        if (p == NULL) {
            return COALITION_E_NOMEM;
        }
        coalition__program__init(p);
        p->point_value_mc = RULES_DEFAULT_POINT_VALUE_MC;
        p->base_rate_milli = RULES_DEFAULT_BASE_RATE_MILLI;
    }
    *out = p;
    return 0;
}

void ledger_program_free(Coalition__Program *p)
{
    if (p != NULL) {
        coalition__program__free_unpacked(p, NULL);
    }
}

/* Turns one due key into the transaction that handles it.  0 and *txn (free
 * with coalition__txn__free_unpacked... built here with malloc'd strings,
 * freed by ledger_txn_free), 1 to skip a key that is not understood. */
static int due_txn(const uint8_t *k, size_t klen, Coalition__Txn **out)
{
    if (klen < 11) {
        return 1;
    }
    char type = (char)k[9];
    const char *rest = (const char *)k + 10;
    size_t rlen = klen - 10;
    Coalition__Txn *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return COALITION_E_NOMEM;
    }
    coalition__txn__init(t);
    const char *nul = memchr(rest, '\0', rlen);
    size_t first = nul != NULL ? (size_t)(nul - rest) : rlen;
    char *a = strndup(rest, first);
    char *b = nul != NULL && type == 'h' ? strndup(nul + 1, rlen - first - 1) : NULL;
    if (a == NULL || (type == 'h' && b == NULL)) {
        free(a), free(b), free(t);
        return type == 'h' && nul == NULL ? 1 : COALITION_E_NOMEM;
    }
    switch (type) {
    case 'l':
        t->kind = COALITION__TXN_KIND__TXN_EXPIRE;
        t->member = a;
        break;
    case 'T':
        t->kind = COALITION__TXN_KIND__TXN_TIER_REVIEW;
        t->member = a;
        break;
    case 'h':
        t->kind = COALITION__TXN_KIND__TXN_HOLD_TIMEOUT;
        t->partner = a;
        t->of_txn = b;
        break;
    default:
        free(a), free(b), free(t);
        return 1;
    }
    *out = t;
    return 0;
}

void ledger_txn_free(Coalition__Txn *t)
{
    if (t == NULL) {
        return;
    }
    /* Fields due_txn did not set still point at protobuf-c's empty string. */
    char *strs[] = {t->member, t->partner, t->of_txn};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (strs[i] != protobuf_c_empty_string) {
            free(strs[i]);
        }
    }
    free(t);
}

int ledger_due_each(struct ledger *l, uint64_t now_ms, size_t max,
                    int (*fn)(void *data, Coalition__Txn *txn), void *data)
{
    struct store_iter *it = NULL;
    int rv = store_iter_create(l->store, NULL, NULL, "X", 1, &it);
    if (rv != 0) {
        return rv;
    }
    size_t count = 0;
    for (store_iter_seek_first(it); rv == 0 && count < max && store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen = 0;
        const uint8_t *kp = store_iter_key(it, &klen);
        if (klen < 9 || bytes_get_be64(kp + 1) > now_ms) {
            break;
        }
        Coalition__Txn *t = NULL;
        int r = due_txn(kp, klen, &t);
        if (r < 0) {
            rv = r;
        } else if (r == 0) {
            count++;
            rv = fn(data, t); /* takes t */
        }
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    return rv;
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
    return bytes_fnv1a(BYTES_FNV1A_INIT, s, strlen(s));
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
        if ((name[0] == 'm' || name[0] == 'h') && bal < 0) {
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
