/* Group commit for one node (contract in batcher.h): at the end of every
 * loop iteration, apply what is queued as batches, sync the WAL once, then
 * report every result.  The sync runs on the loop thread on purpose: the
 * requests that arrive meanwhile could not be reported before the next sync
 * anyway, and a hand-off to another thread costs two wake-ups per batch
 * (measured: p50 at one client 0.46 ms with a worker thread, 0.24 ms
 * inline; docs/benchmarks.md). */
#include "batcher.h"

#include <assert.h>
#include <stdlib.h>
#include <time.h>

#include "errors.h"

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Applies up to BATCHER_BATCH_MAX queued transactions as one batch and
 * moves them to *done (in order).  0 or a storage error. */
static int batcher_apply_some(struct batcher *b, struct batcher_req ***done_tail)
{
    size_t n = 0;
    for (struct batcher_req *r = b->pending; r != NULL && n < BATCHER_BATCH_MAX; r = r->next) {
        b->txns[n++] = r->txn;
    }
    assert(n > 0);
    /* The orderer stamps the time; it never goes backwards. */
    uint64_t now_ms = clock_us(CLOCK_REALTIME) / 1000u;
    b->last_time_ms = now_ms > b->last_time_ms ? now_ms : b->last_time_ms;
    int rv = ledger_apply(b->ledger, b->next_index, b->last_time_ms, b->txns, n, b->results);
    if (rv < 0) {
        return rv;
    }
    assert(rv == 0);
    b->next_index++;
    b->stats.batches++;
    b->stats.txns += n;
    if (n > b->stats.batch_max_seen) {
        b->stats.batch_max_seen = n;
    }
    for (size_t i = 0; i < n; i++) {
        struct batcher_req *r = b->pending;
        b->pending = r->next;
        r->result = b->results[i];
        r->next = NULL;
        **done_tail = r;
        *done_tail = &r->next;
    }
    if (b->pending == NULL) {
        b->pending_tail = &b->pending;
    }
    return 0;
}

static void batcher_on_check(uv_check_t *h)
{
    struct batcher *b = h->data;
    if (b->pending == NULL) {
        return;
    }
    struct batcher_req *done = NULL, **done_tail = &done;
    int rv = 0;
    while (rv == 0 && b->pending != NULL) {
        rv = batcher_apply_some(b, &done_tail);
    }
    if (rv == 0) {
        uint64_t t0 = clock_us(CLOCK_MONOTONIC);
        rv = store_sync(b->store);
        uint64_t us = clock_us(CLOCK_MONOTONIC) - t0;
        b->stats.syncs++;
        b->stats.sync_us_total += us;
        b->stats.sync_us_max = us > b->stats.sync_us_max ? us : b->stats.sync_us_max;
    }
    if (rv != 0) {
        b->on_fatal(rv); /* does not return */
        return;
    }
    while (done != NULL) {
        struct batcher_req *r = done;
        done = r->next;
        r->cb(r);
    }
}

int batcher_init(struct batcher *b, uv_loop_t *loop, struct ledger *l, struct store *s,
                 void (*on_fatal)(int code))
{
    *b = (struct batcher){.ledger = l, .store = s, .on_fatal = on_fatal};
    b->pending_tail = &b->pending;
    struct ledger_head head;
    ledger_get_head(l, &head);
    b->next_index = head.applied_index + 1;
    b->last_time_ms = head.time_ms;
    b->txns = calloc(BATCHER_BATCH_MAX, sizeof(*b->txns));
    b->results = calloc(BATCHER_BATCH_MAX, sizeof(*b->results));
    if (b->txns == NULL || b->results == NULL) {
        free(b->txns);
        free(b->results);
        return COALITION_E_NOMEM;
    }
    uv_check_init(loop, &b->check);
    b->check.data = b;
    uv_check_start(&b->check, batcher_on_check);
    return 0;
}

void batcher_close(struct batcher *b)
{
    assert(batcher_idle(b));
    uv_close((uv_handle_t *)&b->check, NULL);
    free(b->txns);
    free(b->results);
    b->txns = NULL;
    b->results = NULL;
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
    return b->pending == NULL;
}
