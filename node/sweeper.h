/* The sweeper: on the leader, once a second, turns what the ledger says is
 * due (expired lots, holds that timed out, tier reviews; see
 * ledger_due_each) into scheduled transactions and submits them through the
 * batcher, so that they are ordered and applied like every other entry.  It
 * only proposes: whether something is really due is decided by the apply,
 * at the batch's time, identically on every node.  On a new coalition it
 * also proposes the genesis INIT (the admin key) first.  No ledger logic
 * here. */
#ifndef COALITION_SWEEPER_H
#define COALITION_SWEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "batcher.h"
#include "cluster.h"
#include "ledger.h"

#define SWEEPER_INTERVAL_MS  1000
#define SWEEPER_FIRST_MS     50
#define SWEEPER_INFLIGHT_MAX 256 /* scheduled transactions under way at once */

struct sweeper_req;

struct sweeper {
    /* private */
    uv_timer_t timer;
    struct cluster *cluster;
    struct ledger *ledger;
    struct batcher *batcher;
    struct sweeper_req *inflight; /* list */
    size_t n_inflight;
    bool stopping;
    bool has_genesis;
    uint8_t genesis_pk[32];
    /* read-only */
    uint64_t submitted; /* scheduled transactions submitted */
};

/* Starts the timer; all borrowed, must outlive the sweeper. */
int sweeper_init(struct sweeper *s, uv_loop_t *loop, struct cluster *c, struct ledger *l,
                 struct batcher *b);
/* Stops proposing; then sweeper_idle() tells when sweeper_close may run. */
/* Makes the leader of a coalition whose ledger has no admin key yet
 * propose the genesis INIT with `admin_pk` (copied). */
void sweeper_set_genesis(struct sweeper *s, const uint8_t admin_pk[32]);
void sweeper_stop(struct sweeper *s);
bool sweeper_idle(const struct sweeper *s);
void sweeper_close(struct sweeper *s);

#endif
