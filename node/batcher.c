/* Group commit on the leader (contract in batcher.h): at the end of every
 * loop iteration the queued transactions are proposed as batches; results
 * come back from the state machine through cluster.c. */
#include "batcher.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"

/* One proposed batch and the requests waiting for it. */
struct batcher_proposal {
    struct cluster_proposal p; /* first */
    struct batcher *b;
    struct batcher_req **reqs;
    Coalition__Txn **txns;
    struct ledger_result *results;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fail_req(struct batcher_req *r, int code)
{
    memset(&r->result, 0, sizeof(r->result));
    r->result.code = code;
    r->cb(r);
}

static void proposal_free(struct batcher_proposal *bp)
{
    free(bp->reqs);
    free(bp->txns);
    free(bp->results);
    free(bp);
}

static void batcher_on_applied(struct cluster_proposal *p, int status)
{
    struct batcher_proposal *bp = (struct batcher_proposal *)p;
    struct batcher *b = bp->b;
    assert(b->inflight > 0);
    b->inflight--;
    if (status != 0) {
        b->stats.failed++;
    }
    for (size_t i = 0; i < p->n; i++) {
        struct batcher_req *r = bp->reqs[i];
        if (status == 0) {
            r->result = bp->results[i];
            r->cb(r);
        } else {
            fail_req(r, status);
        }
    }
    proposal_free(bp);
}

/* Takes up to BATCHER_BATCH_MAX queued transactions and proposes them. */
static void batcher_propose_some(struct batcher *b)
{
    size_t n = 0;
    for (struct batcher_req *r = b->pending; r != NULL && n < BATCHER_BATCH_MAX; r = r->next) {
        n++;
    }
    struct batcher_proposal *bp = calloc(1, sizeof(*bp));
    if (bp != NULL) {
        bp->reqs = calloc(n, sizeof(*bp->reqs));
        bp->txns = calloc(n, sizeof(*bp->txns));
        bp->results = calloc(n, sizeof(*bp->results));
    }
    for (size_t i = 0; i < n; i++) {
        struct batcher_req *r = b->pending;
        b->pending = r->next;
        r->next = NULL;
        if (bp != NULL && bp->reqs != NULL && bp->txns != NULL && bp->results != NULL) {
            bp->reqs[i] = r;
            bp->txns[i] = r->txn;
        } else {
            fail_req(r, COALITION_E_NOMEM);
        }
    }
    if (b->pending == NULL) {
        b->pending_tail = &b->pending;
    }
    if (bp == NULL || bp->reqs == NULL || bp->txns == NULL || bp->results == NULL) {
        if (bp != NULL) {
            proposal_free(bp);
        }
        return;
    }
    /* The leader stamps the time; it never goes backwards here. */
    struct ledger_head head;
    ledger_get_head(b->ledger, &head);
    uint64_t now = wall_ms();
    uint64_t floor_ms = head.time_ms > b->last_time_ms ? head.time_ms : b->last_time_ms;
    b->last_time_ms = now > floor_ms ? now : floor_ms;
    Coalition__Batch batch = COALITION__BATCH__INIT;
    batch.time_ms = b->last_time_ms;
    batch.n_txns = n;
    batch.txns = bp->txns;
    bp->b = b;
    bp->p.results = bp->results;
    bp->p.n = n;
    int rv = cluster_propose(b->cluster, &batch, &bp->p, batcher_on_applied);
    if (rv != 0) {
        for (size_t i = 0; i < n; i++) {
            fail_req(bp->reqs[i], rv == COALITION_E_NOT_LEADER ? COALITION_E_UNAVAILABLE : rv);
        }
        proposal_free(bp);
        return;
    }
    b->inflight++;
    b->stats.batches++;
    b->stats.txns += n;
    b->stats.batch_max_seen = n > b->stats.batch_max_seen ? n : b->stats.batch_max_seen;
}

static void batcher_on_check(uv_check_t *h)
{
    struct batcher *b = h->data;
    while (b->pending != NULL && b->inflight < BATCHER_INFLIGHT_MAX) {
        batcher_propose_some(b);
    }
}

int batcher_init(struct batcher *b, uv_loop_t *loop, struct cluster *c, struct ledger *l)
{
    *b = (struct batcher){.cluster = c, .ledger = l};
    b->pending_tail = &b->pending;
    uv_check_init(loop, &b->check);
    b->check.data = b;
    uv_check_start(&b->check, batcher_on_check);
    return 0;
}

void batcher_close(struct batcher *b)
{
    assert(batcher_idle(b));
    uv_close((uv_handle_t *)&b->check, NULL);
}

void batcher_submit(struct batcher *b, struct batcher_req *req)
{
    assert(req != NULL && req->cb != NULL && req->txn != NULL);
    req->next = NULL;
    *b->pending_tail = req;
    b->pending_tail = &req->next;
}

bool batcher_idle(const struct batcher *b)
{
    return b->pending == NULL && b->inflight == 0;
}

uint64_t batcher_now_ms(const struct batcher *b)
{
    uint64_t now = wall_ms();
    return now > b->last_time_ms ? now : b->last_time_ms;
}
