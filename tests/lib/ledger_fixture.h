/* A ledger on a real store in a fresh temporary directory, for the unit
 * tests of the ledger state machine: open, close and reopen, batches applied
 * at a time the test chooses, transaction builders, and raw reads of what
 * the ledger keeps in the store (accounts, lots, transaction records,
 * entries).  Test support only: failures are cmocka assertions. */
#ifndef COALITION_TEST_LEDGER_FIXTURE_H
#define COALITION_TEST_LEDGER_FIXTURE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coalition.pb-c.h"
#include "ledger.h"
#include "store.h"

/* A store and a ledger in their own temporary directory (removed by
 * fixture_teardown), and the index of the last batch applied through them. */
struct ledger_fixture {
    char dir[PATH_MAX];
    struct store *s;
    struct ledger *l;
    uint64_t index;
};

/* cmocka setup and teardown: *state becomes a fresh fixture (malloc'd, in a
 * new directory ledger_fixture.XXXXXX under $TMPDIR or /tmp), and is closed,
 * removed and freed. */
int fixture_setup(void **state);
int fixture_teardown(void **state);

/* Opens a store and a ledger in `dir` (borrowed); asserts success. */
void fixture_open_dir(const char *dir, struct store **s, struct ledger **l);
void fixture_close_dir(struct store *s, struct ledger *l);

/* Closes and reopens the fixture's store and ledger (durability). */
void fixture_reopen(struct ledger_fixture *f);

/* Applies `txns` (n <= FIXTURE_BATCH_MAX, borrowed) as the next batch at
 * `time_ms`, results in `results` (n of them); asserts the apply itself
 * succeeded and the head moved to the batch's index and time. */
#define FIXTURE_BATCH_MAX 128
void fixture_apply_batch(struct ledger_fixture *f, uint64_t time_ms, Coalition__Txn *txns, size_t n,
                         struct ledger_result *results);

/* Applies `t` alone as the next batch at `time_ms` and returns its result. */
struct ledger_result fixture_apply(struct ledger_fixture *f, uint64_t time_ms, Coalition__Txn t);

/* Applies `t` alone at `time_ms` and asserts it is accepted as a new entry
 * (not a duplicate, the next seq, stamped `time_ms`).  Returns the result. */
struct ledger_result fixture_expect_ok(struct ledger_fixture *f, uint64_t time_ms,
                                       Coalition__Txn t);

/* Applies `t` alone at `time_ms` and asserts it is rejected with `code` and
 * changes nothing but the applied index: same head seq and hash, same store
 * content (fixture_fingerprint). */
void fixture_expect_reject(struct ledger_fixture *f, uint64_t time_ms, Coalition__Txn t, int code);

struct ledger_head fixture_head(const struct ledger_fixture *f);

/* ledger_balance, asserted to succeed. */
int64_t fixture_balance(struct ledger_fixture *f, const char *member);

/* ledger_balance_at, asserted to succeed. */
struct ledger_balance fixture_balance_at(struct ledger_fixture *f, uint64_t at_ms,
                                         const char *member);

/* Runs ledger_verify and asserts it passes and covers every entry. */
void fixture_verify_ok(struct ledger_fixture *f);

/* ---------------------------------------------------------------------------
 * Raw reads of the store (key layout in node/ledger.c) */

/* The raw balance of account "<kind>:<id>".  The lazily created kinds (h
 * held, x expired) read as 0 while absent; any other absent account fails
 * the test. */
int64_t fixture_account(struct store *s, char kind, const char *id);

/* Entry `seq` decoded from 'e' + be64(seq) (32-byte hash + packed Entry);
 * its stored hash in `hash` if not NULL.  Free with
 * coalition__entry__free_unpacked. */
Coalition__Entry *fixture_entry(struct store *s, uint64_t seq, uint8_t hash[LEDGER_HASH_LEN]);

/* One lot as stored ('l' member 0 origin8 arrival8). */
struct fixture_lot {
    char issuer[LEDGER_ID_MAX + 1];
    int64_t left;
    uint64_t earned_ms, expires_ms, unlock_ms;
    uint64_t origin, arrival;
};

/* Up to `cap` lots of `member` in key order (oldest first) into `out`;
 * returns how many the member has (may exceed cap). */
size_t fixture_lots(struct store *s, const char *member, struct fixture_lot *out, size_t cap);

/* The transaction record of (partner, txn_id), or NULL if there is none.
 * Free with coalition__txn_record__free_unpacked. */
Coalition__TxnRecord *fixture_txn_record(struct store *s, const char *partner, const char *txn_id);

/* The member record of `member` ('M' member), or NULL if there is none.
 * Free with coalition__member_record__free_unpacked. */
Coalition__MemberRecord *fixture_member_record(struct store *s, const char *member);

/* FNV-1a over every key and value except the head record (which holds the
 * applied index): equal fingerprints mean nothing of the state changed. */
uint64_t fixture_fingerprint(struct store *s);

/* ---------------------------------------------------------------------------
 * Transaction builders.  Strings and messages are borrowed: they must
 * outlive the transaction.  NULL strings are left empty. */

Coalition__Txn tx_partner(const char *partner, const char *name);
Coalition__Txn tx_member(const char *member, const char *card);
Coalition__Txn tx_award(const char *partner, const char *txn_id, const char *member,
                        int64_t points);
/* A purchase AWARD: points from the partner's program (category may be
 * NULL). */
Coalition__Txn tx_purchase(const char *partner, const char *txn_id, const char *member,
                           int64_t purchase_cents, int64_t paid_points_cents, const char *category);
Coalition__Txn tx_redeem(const char *partner, const char *txn_id, const char *member,
                         int64_t points);
Coalition__Txn tx_transfer(const char *partner, const char *txn_id, const char *from,
                           const char *to, int64_t points);
Coalition__Txn tx_reverse(const char *partner, const char *txn_id, const char *of_txn,
                          int64_t points);
Coalition__Txn tx_hold(const char *partner, const char *txn_id, const char *member, int64_t points,
                       uint32_t timeout_s);
Coalition__Txn tx_capture(const char *partner, const char *txn_id, const char *hold_txn,
                          int64_t points);
Coalition__Txn tx_release(const char *partner, const char *txn_id, const char *hold_txn);
Coalition__Txn tx_program_set(const char *partner, const char *txn_id, Coalition__Program *p);
Coalition__Txn tx_rules_set(const char *txn_id, Coalition__Rules *r);
Coalition__Txn tx_card_add(const char *txn_id, const char *member, const char *card);
Coalition__Txn tx_card_replace(const char *txn_id, const char *member, const char *old_card,
                               const char *card);
/* keys: n 32-byte lookup keys (borrowed). */
Coalition__Txn tx_identify(const char *txn_id, const char *member, ProtobufCBinaryData *keys,
                           size_t n);
Coalition__Txn tx_merge(const char *txn_id, const char *member, const char *into);
Coalition__Txn tx_erase(const char *txn_id, const char *member);
/* The scheduled kinds, as the leader submits them. */
Coalition__Txn tx_expire(const char *member);
Coalition__Txn tx_hold_timeout(const char *partner, const char *hold_txn);
Coalition__Txn tx_tier_review(const char *member);

#endif
