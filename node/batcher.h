/* The batcher: group commit for one node.  Transactions submitted during one
 * loop iteration are applied together as one ledger batch (one WriteBatch);
 * the write-ahead log is synced on a worker thread, many batches per sync,
 * and no transaction is reported before the sync that covers it is done.
 * The loop never waits for the disk.  Replication (raft) plugs in here. */
#ifndef COALITION_BATCHER_H
#define COALITION_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "ledger.h"
#include "store.h"

/* Largest number of transactions in one ledger batch. */
#define BATCHER_BATCH_MAX 4096

struct batcher_req;
typedef void (*batcher_cb)(struct batcher_req *req);

/* A transaction (or a durability barrier) in flight.  Caller-allocated; must
 * stay valid until its callback runs. */
struct batcher_req {
    Coalition__Txn *txn;         /* public: borrowed until cb; NULL = barrier */
    struct ledger_result result; /* read-only: set before cb */
    batcher_cb cb;               /* public */
    struct batcher_req *next;    /* private */
    uint64_t gen;                /* private: write generation it waits for */
};

struct batcher_stats {
    uint64_t batches; /* ledger batches applied */
    uint64_t txns;    /* transactions applied (accepted or rejected) */
    uint64_t syncs;   /* WAL syncs */
    uint64_t batch_max_seen;
    uint64_t sync_us_total; /* time spent in WAL syncs */
    uint64_t sync_us_max;
};

struct batcher {
    /* private */
    uv_loop_t *loop;
    struct ledger *ledger;
    struct store *store;
    uv_check_t check;
    uv_work_t sync_work;
    struct batcher_req *pending, **pending_tail;
    size_t pending_len;
    struct batcher_req *waiting, **waiting_tail;
    uint64_t written_gen, synced_gen, sync_target;
    int sync_rv;
    uint64_t sync_us;
    bool syncing;
    uint64_t next_index;
    uint64_t last_time_ms;
    Coalition__Txn **txns;
    struct ledger_result *results;
    void (*on_fatal)(int code);
    /* read-only */
    struct batcher_stats stats;
};

/* Starts a batcher on `loop` for `l` stored in `s` (all borrowed).  on_fatal
 * is called if the ledger cannot be written or synced: the node must stop
 * without acknowledging anything more (fail-stop). */
int batcher_init(struct batcher *b, uv_loop_t *loop, struct ledger *l, struct store *s,
                 void (*on_fatal)(int code));
/* Closes the check handle.  Call only when batcher_idle(). */
void batcher_close(struct batcher *b);

/* Queues a transaction, or a barrier when req->txn is NULL: a barrier's
 * callback runs once everything applied before it is durable. */
void batcher_submit(struct batcher *b, struct batcher_req *req);

/* True when everything applied so far is synced (a read may be answered
 * now); false while a sync that covers it is still to come. */
bool batcher_durable(const struct batcher *b);

/* True when nothing is queued, being applied or waiting for a sync. */
bool batcher_idle(const struct batcher *b);

#endif
