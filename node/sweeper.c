/* The sweeper (contract in sweeper.h): a libuv timer on the leader that
 * submits the ledger's due work as scheduled transactions.  Nothing here
 * decides what is due: ledger_due_each lists it and the apply checks it. */
#include "sweeper.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

struct sweeper_req {
    struct batcher_req breq; /* first: the callback gets it */
    struct sweeper *owner;
    Coalition__Txn *txn; /* owned, ledger_txn_free */
    struct sweeper_req *next;
};

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/* Already submitted and not yet answered. */
static bool sweeper_has(const struct sweeper *s, const Coalition__Txn *t)
{
    for (const struct sweeper_req *r = s->inflight; r != NULL; r = r->next) {
        if (r->txn->kind == t->kind && str_eq(r->txn->member, t->member) &&
            str_eq(r->txn->partner, t->partner) && str_eq(r->txn->of_txn, t->of_txn)) {
            return true;
        }
    }
    return false;
}

static void sweeper_done(struct batcher_req *breq)
{
    struct sweeper_req *r = (struct sweeper_req *)breq;
    struct sweeper *s = r->owner;
    for (struct sweeper_req **p = &s->inflight; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    assert(s->n_inflight > 0);
    s->n_inflight--;
    ledger_txn_free(r->txn);
    free(r);
}

/* ledger_due_each callback: takes `t`. */
static int sweeper_submit(void *data, Coalition__Txn *t)
{
    struct sweeper *s = data;
    if (sweeper_has(s, t)) {
        ledger_txn_free(t);
        return 0;
    }
    struct sweeper_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        ledger_txn_free(t);
        return COALITION_E_NOMEM;
    }
    r->owner = s;
    r->txn = t;
    r->breq.txn = t;
    r->breq.cb = sweeper_done;
    r->next = s->inflight;
    s->inflight = r;
    s->n_inflight++;
    s->submitted++;
    batcher_submit(s->batcher, &r->breq);
    return 0;
}

/* A new coalition's first entry: the admin key, unsigned (nothing can be
 * verified before it).  The state machine accepts it only once. */
static void sweeper_genesis(struct sweeper *s)
{
    Coalition__Txn *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return;
    }
    coalition__txn__init(t);
    t->kind = COALITION__TXN_KIND__TXN_INIT;
    t->public_key.data = s->genesis_pk; /* not freed by ledger_txn_free */
    t->public_key.len = sizeof(s->genesis_pk);
    (void)sweeper_submit(s, t);
}

static void sweeper_tick(uv_timer_t *timer)
{
    struct sweeper *s = timer->data;
    if (s->stopping || !cluster_is_leader(s->cluster) || s->n_inflight >= SWEEPER_INFLIGHT_MAX) {
        return;
    }
    if (s->has_genesis && !ledger_initialized(s->ledger)) {
        sweeper_genesis(s);
        return;
    }
    /* The leader's clock only proposes; the batch time decides. */
    int rv = ledger_due_each(s->ledger, batcher_now_ms(s->batcher),
                             SWEEPER_INFLIGHT_MAX - s->n_inflight, sweeper_submit, s);
    if (rv != 0) {
        fprintf(stderr, "coalitiond: sweeper: cannot read due work: %s\n", coalition_strerror(rv));
    }
}

int sweeper_init(struct sweeper *s, uv_loop_t *loop, struct cluster *c, struct ledger *l,
                 struct batcher *b)
{
    memset(s, 0, sizeof(*s));
    s->cluster = c;
    s->ledger = l;
    s->batcher = b;
    int rv = uv_timer_init(loop, &s->timer);
    if (rv != 0) {
        return rv;
    }
    s->timer.data = s;
    /* The first tick comes soon: a new coalition's genesis waits for it. */
    return uv_timer_start(&s->timer, sweeper_tick, SWEEPER_FIRST_MS, SWEEPER_INTERVAL_MS);
}

void sweeper_set_genesis(struct sweeper *s, const uint8_t admin_pk[32])
{
    memcpy(s->genesis_pk, admin_pk, sizeof(s->genesis_pk));
    s->has_genesis = true;
}

void sweeper_stop(struct sweeper *s)
{
    s->stopping = true;
    uv_timer_stop(&s->timer);
}

bool sweeper_idle(const struct sweeper *s)
{
    return s->n_inflight == 0;
}

void sweeper_close(struct sweeper *s)
{
    assert(sweeper_idle(s));
    uv_close((uv_handle_t *)&s->timer, NULL);
}
