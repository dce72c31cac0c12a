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

struct ledger;

/* Outcome of one transaction of a batch.  Every node computes the same. */
struct ledger_result {
    int code;         /* 0 or a negative COALITION_E_* code */
    uint64_t seq;     /* entry sequence number (original's if duplicate) */
    bool duplicate;   /* already applied earlier: nothing changed now */
    int64_t points;   /* points the entry moved */
    uint64_t time_ms; /* time of the entry (original's if duplicate) */
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

/* Applies one replicated batch: its transactions as ledger_apply does, and
 * its node directory updates, in the same atomic write.  Same returns. */
int ledger_apply_batch(struct ledger *l, uint64_t index, const Coalition__Batch *batch,
                       struct ledger_result *results);

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

/* Spendable points of `member` in committed state.  0 or UNKNOWN_MEMBER. */
int ledger_balance(struct ledger *l, const char *member, int64_t *points);

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
