/* The batcher: group commit for one node.  Transactions that arrive during
 * one loop iteration are applied together as one ledger batch (one
 * WriteBatch), the write-ahead log is synced once for all of them, and only
 * then are their results reported.  While the node syncs, new requests wait
 * in the sockets and form the next batch.  Replication (raft) plugs in here. */
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

/* A transaction in flight.  Caller-allocated; must stay valid until its
 * callback runs. */
struct batcher_req {
    Coalition__Txn *txn;         /* public: borrowed until cb */
    struct ledger_result result; /* read-only: set before cb */
    batcher_cb cb;               /* public */
    struct batcher_req *next;    /* private */
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
    struct ledger *ledger;
    struct store *store;
    uv_check_t check;
    struct batcher_req *pending, **pending_tail;
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

/* Queues a transaction; its callback runs, with the result, once the batch
 * that holds it is applied and synced (at the end of this loop iteration). */
void batcher_submit(struct batcher *b, struct batcher_req *req);

/* True when nothing is queued. */
bool batcher_idle(const struct batcher *b);

#endif
