/* The batcher: group commit on the leader.  Transactions that arrive during
 * one loop iteration are proposed to raft together as one batch (one raft
 * entry, one WriteBatch on every node); several batches may be in flight.
 * Each transaction's result is reported once its batch is committed on a
 * majority and applied here. */
#ifndef COALITION_BATCHER_H
#define COALITION_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cluster.h"
#include "ledger.h"

/* Largest number of transactions in one batch (one raft entry; a single
 * larger group still goes alone).  raft keeps
 * up to snapshot threshold + trailing entries in memory, so this bounds the
 * log's memory: (8192 + 2048) x 1024 x ~150 bytes, about 1.5 GiB at worst. */
#define BATCHER_BATCH_MAX 1024
/* Batches proposed and not yet applied; more transactions wait. */
#define BATCHER_INFLIGHT_MAX 64

struct batcher_req;
typedef void (*batcher_cb)(struct batcher_req *req);

/* A transaction, or a signed group of them, in flight.  Caller-allocated;
 * must stay valid until its callback runs.  Exactly one of txn (unsigned:
 * only the kinds the leader schedules and the genesis INIT are accepted by
 * the state machine) and group is set. */
struct batcher_req {
    Coalition__Txn *txn;           /* public: borrowed until cb */
    Coalition__SignedGroup *group; /* public: borrowed until cb */
    size_t n;                      /* public: the group's transactions */
    struct ledger_result *results; /* public: group: n slots (caller's), set before cb */
    struct ledger_result result;   /* read-only: txn: set before cb; code UNAVAILABLE
                                      if the outcome is unknown (retry) */
    batcher_cb cb;                 /* public */
    struct batcher_req *next;      /* private */
};

struct batcher_stats {
    uint64_t batches; /* batches proposed */
    uint64_t txns;    /* transactions proposed */
    uint64_t groups;  /* signed groups proposed */
    uint64_t failed;  /* batches whose outcome was unknown (leadership lost) */
    uint64_t batch_max_seen;
};

struct batcher {
    /* private */
    struct cluster *cluster;
    struct ledger *ledger;
    uv_check_t check;
    struct batcher_req *pending, **pending_tail;
    size_t inflight;
    uint64_t last_time_ms;
    /* read-only */
    struct batcher_stats stats;
};

/* Starts a batcher on `loop` proposing through `c` (borrowed). */
int batcher_init(struct batcher *b, uv_loop_t *loop, struct cluster *c, struct ledger *l);
/* Closes the check handle.  Call only when batcher_idle(). */
void batcher_close(struct batcher *b);

/* Queues a transaction (call on the leader); its callback runs with the
 * result, or with UNAVAILABLE if this node is not (or stops being) the
 * leader before the outcome is known. */
void batcher_submit(struct batcher *b, struct batcher_req *req);

/* The time the next batch would be stamped with at the earliest (the
 * leader's clock, never below what was already stamped), in ms since the
 * epoch. */
uint64_t batcher_now_ms(const struct batcher *b);

/* True when nothing is queued or in flight. */
bool batcher_idle(const struct batcher *b);

#endif
