/* Group commit on the leader (contract in batcher.h): at the end of every
 * loop iteration the queued transactions are proposed as batches; results
 * come back from the state machine through cluster.c. */
#include "batcher.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"

/* One proposed batch and the requests waiting for it: unsigned transactions
 * first, then the groups, as the state machine returns results. */
struct batcher_proposal {
    struct cluster_proposal p; /* first */
    struct batcher *b;
    struct batcher_req **reqs; /* n_reqs, in result order */
    size_t n_reqs;
    Coalition__Txn **txns;
    Coalition__SignedGroup **groups;
    struct ledger_result *results;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Results a request waits for. */
static size_t req_size(const struct batcher_req *r)
{
    return r->group != NULL ? r->n : 1;
}

static struct ledger_result *req_results(struct batcher_req *r)
{
    return r->group != NULL ? r->results : &r->result;
}

static void fail_req(struct batcher_req *r, int code)
{
    struct ledger_result *res = req_results(r);
    for (size_t i = 0; i < req_size(r); i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].code = code;
    }
    r->cb(r);
}

static void proposal_free(struct batcher_proposal *bp)
{
    free(bp->reqs);
    free(bp->txns);
    free(bp->groups);
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
    size_t at = 0;
    for (size_t i = 0; i < bp->n_reqs; i++) {
        struct batcher_req *r = bp->reqs[i];
        size_t n = req_size(r);
        if (status == 0) {
            assert(at + n <= p->n);
            memcpy(req_results(r), bp->results + at, n * sizeof(*bp->results));
            r->cb(r);
        } else {
            fail_req(r, status);
        }
        at += n;
    }
    proposal_free(bp);
}

/* Takes queued requests up to BATCHER_BATCH_MAX transactions (at least one
 * request) and proposes them as one batch. */
static void batcher_propose_some(struct batcher *b)
{
    size_t n_reqs = 0, n_txns = 0, n_groups = 0, n_results = 0;
    for (struct batcher_req *r = b->pending; r != NULL; r = r->next) {
        if (n_reqs > 0 && n_results + req_size(r) > BATCHER_BATCH_MAX) {
            break;
        }
        n_reqs++;
        n_results += req_size(r);
        n_groups += r->group != NULL;
        n_txns += r->group == NULL;
    }
    struct batcher_proposal *bp = calloc(1, sizeof(*bp));
    bool ok = bp != NULL;
    if (ok) {
        bp->reqs = calloc(n_reqs, sizeof(*bp->reqs));
        bp->txns = calloc(n_txns + 1, sizeof(*bp->txns));
        bp->groups = calloc(n_groups + 1, sizeof(*bp->groups));
        bp->results = calloc(n_results, sizeof(*bp->results));
        ok = bp->reqs != NULL && bp->txns != NULL && bp->groups != NULL && bp->results != NULL;
    }
    /* Unsigned transactions first, then groups: the order of the results. */
    size_t ti = 0, gi = 0;
    struct batcher_req *groups_first = NULL, **groups_tail = &groups_first;
    for (size_t i = 0; i < n_reqs; i++) {
        struct batcher_req *r = b->pending;
        b->pending = r->next;
        r->next = NULL;
        if (!ok) {
            fail_req(r, COALITION_E_NOMEM);
        } else if (r->group == NULL) {
            bp->reqs[bp->n_reqs++] = r;
            bp->txns[ti++] = r->txn;
        } else {
            *groups_tail = r;
            groups_tail = &r->next;
        }
    }
    for (struct batcher_req *r = groups_first, *next = NULL; r != NULL; r = next) {
        next = r->next;
        r->next = NULL;
        bp->reqs[bp->n_reqs++] = r;
        bp->groups[gi++] = r->group;
    }
    if (b->pending == NULL) {
        b->pending_tail = &b->pending;
    }
    if (!ok) {
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
    batch.n_txns = n_txns;
    batch.txns = bp->txns;
    batch.n_groups = n_groups;
    batch.groups = bp->groups;
    bp->b = b;
    bp->p.results = bp->results;
    bp->p.n = n_results;
    int rv = cluster_propose(b->cluster, &batch, &bp->p, batcher_on_applied);
    if (rv != 0) {
        for (size_t i = 0; i < bp->n_reqs; i++) {
            fail_req(bp->reqs[i], rv == COALITION_E_NOT_LEADER ? COALITION_E_UNAVAILABLE : rv);
        }
        proposal_free(bp);
        return;
    }
    b->inflight++;
    b->stats.batches++;
    b->stats.txns += n_results;
    b->stats.groups += n_groups;
    b->stats.batch_max_seen =
        n_results > b->stats.batch_max_seen ? n_results : b->stats.batch_max_seen;
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
    assert(req != NULL && req->cb != NULL);
    assert((req->txn != NULL) != (req->group != NULL));
    assert(req->group == NULL || (req->n > 0 && req->results != NULL));
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
