/* The ledger state machine: partners, members, double-entry accounts, point
 * lots and the hash-chained entries, kept in a store (node/store.h).  State
 * is a pure function of the ordered batches applied: apply code reads no
 * clock, no randomness and nothing node-specific.  No I/O other than the
 * store, no libuv, no networking lives here. */
#ifndef COALITION_LEDGER_H
#define COALITION_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coalition.pb-c.h"
#include "store.h"

#define LEDGER_HASH_LEN        32
#define LEDGER_ID_MAX          64  /* bytes in an id (partner, member, card, txn) */
#define LEDGER_REASON_MAX      200 /* bytes in a reason or name */
#define LEDGER_POINTS_MAX      1000000000000LL
#define LEDGER_HISTORY_DEFAULT 20
#define LEDGER_HISTORY_MAX     1000
#define LEDGER_RULE_LEN        224 /* bytes of an earning rule description (with NUL) */
#define LEDGER_CARDS_MAX       16  /* cards of one member */
#define LEDGER_LOOKUP_KEYS_MAX 4   /* lookup keys (hashed phone, email) of one member */

struct ledger;

/* Outcome of one transaction of a batch.  Every node computes the same. */
struct ledger_result {
    int code;                   /* 0 or a negative COALITION_E_* code */
    uint64_t seq;               /* entry sequence number (original's if duplicate) */
    bool duplicate;             /* already applied earlier: nothing changed now */
    int64_t points;             /* points the entry moved */
    uint64_t time_ms;           /* time of the entry (original's if duplicate) */
    char rule[LEDGER_RULE_LEN]; /* purchase award: the rule that applied */
};

/* Where the ledger stands: the last entry and the last applied batch. */
struct ledger_head {
    uint64_t seq;                  /* last accepted entry, 0 if none */
    uint8_t hash[LEDGER_HASH_LEN]; /* its hash; all zero if none */
    uint64_t applied_index;        /* last applied batch (raft index) */
    uint64_t time_ms;              /* time of the last applied batch */
};

struct ledger_verify_report {
    uint64_t entries_checked;
    uint64_t accounts_checked;
    uint64_t broken_seq; /* first bad entry, 0 if none or n/a */
    uint8_t head_hash[LEDGER_HASH_LEN];
    uint8_t state_digest[LEDGER_HASH_LEN];
    char detail[256]; /* what failed, empty when ok */
};

/* Opens the ledger held in `s` (borrowed; must outlive the ledger), loads
 * its head and runs the cheap start-up check (head entry hash, meta).
 * Returns 0, COALITION_E_VERIFY_FAILED (detail in *errmsg, malloc'd) or
 * COALITION_E_STORAGE/NOMEM. */
int ledger_open(struct store *s, struct ledger **out, char **errmsg);
void ledger_close(struct ledger *l);

/* Checks what can be checked without state: kind, ids, amounts, lengths.
 * Returns 0 or the code the ledger would reject it with. */
int ledger_validate(const Coalition__Txn *txn);

/* True for the kinds the leader schedules (expiry, hold timeout, tier
 * review); a client may not submit them. */
bool ledger_kind_scheduled(int kind);

/* Applies one ordered batch: `txns` (borrowed) in order, at time `time_ms`
 * stamped by the orderer, as batch number `index` (strictly increasing; a
 * batch whose index is <= the applied index is skipped and returns 1, for
 * replay after restart).  results[i] receives the outcome of txns[i]; a
 * rejected transaction changes nothing.  All effects, and the new applied
 * index, are written in one atomic store write (not synced: call store_sync
 * before acknowledging).  Returns 0, 1 (skipped), or a negative code on a
 * storage failure, after which the ledger must be closed (fail-stop). */
int ledger_apply(struct ledger *l, uint64_t index, uint64_t time_ms, Coalition__Txn *const *txns,
                 size_t n, struct ledger_result *results);

/* Applies one replicated batch, in the same atomic write: its unsigned
 * transactions (only scheduled kinds and the genesis INIT are accepted
 * there; anything else is UNAUTHENTICATED), then each signed group (its
 * signature verified with the signer's key on the ledger, each transaction
 * authorized for the signer: docs/security.md), then its node directory
 * updates.  results (n_results slots) receives the outcome of each
 * transaction in that order, as far as it has room; NULL keeps none.  Same
 * returns as ledger_apply. */
int ledger_apply_batch(struct ledger *l, uint64_t index, const Coalition__Batch *batch,
                       struct ledger_result *results, size_t n_results);

/* Committed-state lookups for authentication (any thread that owns the
 * ledger's loop):
 * - ledger_initialized: the admin key is recorded (INIT applied);
 * - ledger_signer_key: the key verifying `signer`'s groups ("" = admin):
 *   0 or UNAUTHENTICATED (unknown, no key) or an error;
 * - ledger_api_key_partner: the partner whose valid, unrevoked API key has
 *   id `key_id` and secret hash `hash`: 0 (partner filled) or
 *   UNAUTHENTICATED or an error;
 * - ledger_key_trusted: pk is the admin's or a partner's key. */
bool ledger_initialized(struct ledger *l);
int ledger_signer_key(struct ledger *l, const char *signer, uint8_t pk[32]);
int ledger_api_key_partner(struct ledger *l, const char *key_id, const uint8_t hash[32],
                           char partner[LEDGER_ID_MAX + 1]);
int ledger_key_trusted(struct ledger *l, const uint8_t pk[32], bool *trusted);

/* Calls fn for every node directory entry (borrowed for the call), in id
 * order.  0 or a storage error. */
int ledger_nodes_each(struct ledger *l, void (*fn)(void *data, const Coalition__NodeInfo *node),
                      void *data);

/* The stored hash of entry `seq`: 0, INVALID_ARGUMENT if there is no such
 * entry, or a storage error. */
int ledger_entry_hash(struct ledger *l, uint64_t seq, uint8_t hash[LEDGER_HASH_LEN]);

/* A snapshot restore replaces the whole store in many unsynced writes.
 * ledger_restore_begin writes a mark (synced) and empties the head; until
 * ledger_restore_end syncs the store and removes the mark (synced), opening
 * this store gives an empty ledger (applied index 0), so that after a crash
 * raft restores its snapshot again instead of the node running on a half
 * loaded store.  Whoever empties the store must keep the mark
 * (ledger_is_restore_mark).  Both return 0 or a storage error. */
int ledger_restore_begin(struct ledger *l);
int ledger_restore_end(struct ledger *l, char **errmsg);
bool ledger_is_restore_mark(const void *key, size_t klen);

/* Re-reads the head from the store (after the store's content was replaced
 * by a snapshot) and runs the start-up check.  0 or as ledger_open. */
int ledger_reload(struct ledger *l, char **errmsg);

void ledger_get_head(const struct ledger *l, struct ledger_head *out);

/* The balance of `member`'s account in committed state: every point the
 * member holds that is not held at a till, including points not unlocked
 * yet and expired points the sweep has not taken yet (ledger_balance_at
 * tells what can be spent).  0, INVALID_ARGUMENT or UNKNOWN_MEMBER. */
int ledger_balance(struct ledger *l, const char *member, int64_t *points);

/* What a member has at `at_ms` (committed state): spendable points are
 * unlocked and not expired at that instant, whether or not the expiry sweep
 * ran; tier figures from the rolling 12-month window at that instant. */
struct ledger_balance {
    int64_t points; /* spendable now */
    int64_t held;   /* reserved by open holds */
    int64_t locked; /* pending: not unlocked yet */
    int64_t earned_12m;
    char tier[LEDGER_ID_MAX + 1];      /* "" below every tier */
    char next_tier[LEDGER_ID_MAX + 1]; /* "" at the top */
    int64_t to_next_tier;
    uint64_t at_ms;
    uint64_t as_of_seq;
};
int ledger_balance_at(struct ledger *l, uint64_t at_ms, const char *member,
                      struct ledger_balance *out);

/* Lots of `member` not expired at at_ms that expire by until_ms, soonest
 * first.  *items is malloc'd (ledger_expiring_free).  0, INVALID_ARGUMENT,
 * UNKNOWN_MEMBER or an error. */
int ledger_expiring(struct ledger *l, const char *member, uint64_t at_ms, uint64_t until_ms,
                    Coalition__ExpiringLot **items, size_t *n);
void ledger_expiring_free(Coalition__ExpiringLot *items, size_t n);

/* The member a card, or a lookup key (keyed hash of a phone or email, see
 * node/identity.h), belongs to.  0, UNKNOWN_MEMBER or an error. */
int ledger_lookup_card(struct ledger *l, const char *card, char member[LEDGER_ID_MAX + 1]);
int ledger_lookup_key(struct ledger *l, const uint8_t hash[LEDGER_HASH_LEN],
                      char member[LEDGER_ID_MAX + 1]);

/* The earning program `partner` earns under in committed state, exactly as
 * the apply uses it (purchase points, unlock times, settlement value): the
 * program of its last PROGRAM_SET, or, for a partner that never set one,
 * the rules engine's defaults (RULES_DEFAULT_POINT_VALUE_MC,
 * RULES_DEFAULT_BASE_RATE_MILLI, no categories, campaigns, minimum or
 * lock: what rules_award_points and rules_unlock_ms do with a NULL
 * program).  On success *out is a new program the caller releases with
 * ledger_program_free.  0, INVALID_ARGUMENT (not an id), UNKNOWN_PARTNER or
 * an error (*out NULL). */
int ledger_program(struct ledger *l, const char *partner, Coalition__Program **out);
void ledger_program_free(Coalition__Program *p);

/* Calls fn for up to `max` pieces of work due at or before now_ms in
 * committed state, oldest first, each as the scheduled transaction that
 * handles it (EXPIRE, HOLD_TIMEOUT, TIER_REVIEW).  fn takes ownership of
 * the transaction (ledger_txn_free) and returns 0 to go on or an error to
 * stop.  0 or an error. */
int ledger_due_each(struct ledger *l, uint64_t now_ms, size_t max,
                    int (*fn)(void *data, Coalition__Txn *txn), void *data);
void ledger_txn_free(Coalition__Txn *txn);

/* Up to `limit` (0: default, capped at LEDGER_HISTORY_MAX) entries touching
 * `member`, newest first.  On success *items is a malloc'd array of *n
 * items that the caller frees with ledger_history_free. */
int ledger_history(struct ledger *l, const char *member, uint32_t limit,
                   Coalition__HistoryItem **items, size_t *n);
void ledger_history_free(Coalition__HistoryItem *items, size_t n);

/* Replays every entry from a snapshot of `s`: hash chain, balances equal the
 * sum of their postings, sum of all balances zero, no member below zero,
 * lots add up to member balances; also computes the state digest.  Reads only
 * a snapshot, so it may run on another thread while batches are applied.
 * Returns 0 or COALITION_E_VERIFY_FAILED (report says where), or a storage
 * error. */
int ledger_verify(struct store *s, struct ledger_verify_report *rep);

#endif
