/* Group commit for one node (contract in batcher.h): pending queue, batch
 * apply on the loop thread, WAL sync on the libuv thread pool, release of
 * results in order once durable. */
#include "batcher.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "errors.h"

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void batcher_sync_start(struct batcher *b);
static void batcher_pump(struct batcher *b);

static void batcher_sync_work(uv_work_t *w)
{
    struct batcher *b = w->data;
    uint64_t t0 = mono_us();
    b->sync_rv = store_sync(b->store);
    b->sync_us = mono_us() - t0;
}

/* Releases every waiting request whose generation is now durable. */
static void batcher_release(struct batcher *b)
{
    while (b->waiting != NULL && b->waiting->gen <= b->synced_gen) {
        struct batcher_req *r = b->waiting;
        b->waiting = r->next;
        if (b->waiting == NULL) {
            b->waiting_tail = &b->waiting;
        }
        r->next = NULL;
        r->cb(r);
    }
}

static void batcher_sync_done(uv_work_t *w, int status)
{
    struct batcher *b = w->data;
    assert(b->syncing);
    b->syncing = false;
    if (status != 0 || b->sync_rv != 0) {
        b->on_fatal(status != 0 ? COALITION_E_INTERNAL : b->sync_rv);
        return;
    }
    b->stats.syncs++;
    b->stats.sync_us_total += b->sync_us;
    if (b->sync_us > b->stats.sync_us_max) {
        b->stats.sync_us_max = b->sync_us;
    }
    b->synced_gen = b->sync_target;
    batcher_pump(b);
}

static void batcher_sync_start(struct batcher *b)
{
    assert(!b->syncing && b->written_gen > b->synced_gen);
    b->syncing = true;
    b->sync_target = b->written_gen;
    int rv = uv_queue_work(b->loop, &b->sync_work, batcher_sync_work, batcher_sync_done);
    if (rv != 0) {
        b->on_fatal(COALITION_E_INTERNAL);
    }
}

static void batcher_wait(struct batcher *b, struct batcher_req *r)
{
    r->gen = b->written_gen;
    r->next = NULL;
    *b->waiting_tail = r;
    b->waiting_tail = &r->next;
}

/* Applies up to BATCHER_BATCH_MAX pending transactions as one batch. */
static void batcher_apply_some(struct batcher *b)
{
    size_t n = 0;
    struct batcher_req *first = b->pending;
    for (struct batcher_req *r = first; r != NULL && n < BATCHER_BATCH_MAX; r = r->next) {
        if (r->txn == NULL) {
            break; /* a barrier ends the batch */
        }
        b->txns[n++] = r->txn;
    }
    if (n > 0) {
        /* The orderer stamps the time; it never goes backwards. */
        uint64_t now = wall_ms();
        b->last_time_ms = now > b->last_time_ms ? now : b->last_time_ms;
        int rv = ledger_apply(b->ledger, b->next_index, b->last_time_ms, b->txns, n, b->results);
        if (rv < 0) {
            b->on_fatal(rv);
            return;
        }
        assert(rv == 0);
        b->next_index++;
        b->written_gen++;
        b->stats.batches++;
        b->stats.txns += n;
        if (n > b->stats.batch_max_seen) {
            b->stats.batch_max_seen = n;
        }
    }
    /* Move the applied requests (and a barrier that ended the batch) to the
     * waiting list, in order. */
    for (size_t i = 0; i < n; i++) {
        struct batcher_req *r = b->pending;
        b->pending = r->next;
        r->result = b->results[i];
        batcher_wait(b, r);
    }
    b->pending_len -= n;
    if (n == 0) {
        struct batcher_req *r = b->pending;
        assert(r != NULL && r->txn == NULL);
        b->pending = r->next;
        b->pending_len--;
        batcher_wait(b, r);
    }
    if (b->pending == NULL) {
        b->pending_tail = &b->pending;
    }
}

/* Applies what is queued and starts a sync for it.  While a sync is in
 * flight new transactions wait, so that everything that arrives during one
 * sync is applied as one batch when it ends (larger batches, less work per
 * transaction; they could not be released before the next sync anyway). */
static void batcher_pump(struct batcher *b)
{
    if (!b->syncing) {
        while (b->pending != NULL) {
            batcher_apply_some(b);
        }
        if (b->written_gen > b->synced_gen) {
            batcher_sync_start(b);
        }
    }
    /* Barriers that found nothing left to sync are released at once. */
    batcher_release(b);
}

static void batcher_on_check(uv_check_t *h)
{
    batcher_pump(h->data);
}

int batcher_init(struct batcher *b, uv_loop_t *loop, struct ledger *l, struct store *s,
                 void (*on_fatal)(int code))
{
    *b = (struct batcher){.loop = loop, .ledger = l, .store = s, .on_fatal = on_fatal};
    b->pending_tail = &b->pending;
    b->waiting_tail = &b->waiting;
    b->sync_work.data = b;
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
    assert(req != NULL && req->cb != NULL);
    req->next = NULL;
    *b->pending_tail = req;
    b->pending_tail = &req->next;
    b->pending_len++;
}

bool batcher_durable(const struct batcher *b)
{
    return b->pending == NULL && b->synced_gen == b->written_gen;
}

bool batcher_idle(const struct batcher *b)
{
    return b->pending == NULL && b->waiting == NULL && !b->syncing;
}
