/* Cluster glue around canonical raft 0.15 (contract in cluster.h): the
 * fail-stop raft_io wrapper, the state machine callbacks (apply, snapshot,
 * restore), start-up (bootstrap, single node, join, restart), proposals,
 * barriers, membership changes and the node directory.  Client requests and
 * forwarding live in server.c and forward.c. */
#include "cluster.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "bytes.h"
#include "errors.h"

#define CLUSTER_TICK_MS           100
#define CLUSTER_ANNOUNCE_RETRY_MS 500
#define CLUSTER_VOTERS_WANTED     3
#define SNAPSHOT_MAGIC            "COALSNP1"
#define SNAPSHOT_CHUNK            ((size_t)4 << 20)
#define RESTORE_BATCH_KEYS        10000
#define ENTRY_HEADER_LEN          8     /* u64 length of the packed Batch in a raft entry */
#define REFUSALS_LOG_MAX          20    /* refused membership changes logged ... */
#define REFUSALS_LOG_WINDOW_MS    10000 /* ... per this many ms */
#define REFUSALS_REPEAT_MS        60000 /* the same refusal again: logged once per this */

#define CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The wall clock in ms since the epoch (signatures of membership changes
 * carry it; this is not apply code). */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Raft's error codes seen by a client. */
static int from_raft(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOTLEADER:
        return COALITION_E_NOT_LEADER;
    case RAFT_CANTCHANGE:
        return COALITION_E_BUSY;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
        return COALITION_E_ALREADY_EXISTS;
    case RAFT_BADID:
    case RAFT_BADROLE:
    case RAFT_NOTFOUND:
        return COALITION_E_INVALID_ARGUMENT;
    case RAFT_NOMEM:
        return COALITION_E_NOMEM;
    default:
        return COALITION_E_UNAVAILABLE;
    }
}

static void cluster_fatal(struct cluster *c, const char *what, int raft_rv)
{
    fprintf(stderr, "coalitiond: raft %s failed: %s (%s)\n", what, raft_strerror(raft_rv),
            raft_errmsg(&c->raft));
    c->on_fatal(COALITION_E_STORAGE);
}

/* ---------------------------------------------------------------------------
 * The fail-stop raft_io: raft talks to `c->io`, which forwards every call to
 * raft_uv (`c->uv_io`).  A failed append, truncate, snapshot write, term or
 * vote write stops the node: raft 0.15 can otherwise reuse an index after a
 * failed append (upstream issue 320).  A restart recovers from disk. */

static struct cluster *io_cluster(struct raft_io *io)
{
    return io->impl;
}

/* raft's callbacks find raft through io->data: the inner io needs it too. */
static struct raft_io *io_inner(struct raft_io *io)
{
    struct cluster *c = io_cluster(io);
    c->uv_io.data = io->data;
    return &c->uv_io;
}

static int io_result(struct raft_io *io, int rv)
{
    if (rv != 0) {
        memcpy(io->errmsg, io_cluster(io)->uv_io.errmsg, sizeof(io->errmsg));
    }
    return rv;
}

static void io_must(struct raft_io *io, const char *what, int rv)
{
    struct cluster *c = io_cluster(io);
    if (rv != 0 && !c->closing && rv != RAFT_CANCELED) {
        cluster_fatal(c, what, rv);
    }
}

static int io_init(struct raft_io *io, raft_id id, const char *address)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->init(in, id, address));
}

/* raft_uv 0.15 can report its close twice (its "all closed?" check passes
 * again when a late completion, such as a segment being prepared, comes in
 * during close); raft's callback frees raft's memory, so a second call is a
 * double free (seen under ASan in 1 of ~10 shutdowns).  Pass raft's callback
 * on once only. */
static void io_close_done(struct raft_io *inner)
{
    struct cluster *c = CONTAINER_OF(inner, struct cluster, uv_io);
    if (c->io_closed) {
        fprintf(stderr, "coalitiond: raft_uv reported its close twice; the second is ignored\n");
        return;
    }
    c->io_closed = true;
    c->raft_close_cb(&c->io);
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct cluster *c = io_cluster(io);
    struct raft_io *in = io_inner(io);
    assert(c->raft_close_cb == NULL);
    c->raft_close_cb = cb;
    in->close(in, io_close_done);
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->load(in, term, voted_for, snapshot, start_index, entries, n_entries));
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->start(in, msecs, tick, recv));
}

static int io_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->bootstrap(in, conf));
}

static int io_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->recover(in, conf));
}

static int io_set_term(struct raft_io *io, raft_term term)
{
    struct raft_io *in = io_inner(io);
    int rv = io_result(io, in->set_term(in, term));
    io_must(io, "set_term", rv);
    return rv;
}

static int io_set_vote(struct raft_io *io, raft_id server_id)
{
    struct raft_io *in = io_inner(io);
    int rv = io_result(io, in->set_vote(in, server_id));
    io_must(io, "set_vote", rv);
    return rv;
}

static int io_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->send(in, req, message, cb)); /* network errors are normal */
}

/* A request of ours handed to raft_uv in place of raft's own. */
struct io_shadow_append {
    struct raft_io_append inner;
    struct raft_io_append *outer;
    raft_io_append_cb cb;
    struct raft_io *io;
};

static void io_append_done(struct raft_io_append *inner, int status)
{
    struct io_shadow_append *s = CONTAINER_OF(inner, struct io_shadow_append, inner);
    struct raft_io_append *outer = s->outer;
    raft_io_append_cb cb = s->cb;
    struct raft_io *io = s->io;
    free(s);
    io_must(io, "log append", status);
    cb(outer, status);
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct raft_io *in = io_inner(io);
    struct io_shadow_append *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return RAFT_NOMEM;
    }
    s->outer = req;
    s->cb = cb;
    s->io = io;
    req->cb = cb;
    int rv = io_result(io, in->append(in, &s->inner, entries, n, io_append_done));
    if (rv != 0) {
        free(s);
        io_must(io, "log append", rv);
    }
    return rv;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    struct raft_io *in = io_inner(io);
    int rv = io_result(io, in->truncate(in, index));
    io_must(io, "log truncate", rv);
    return rv;
}

struct io_shadow_put {
    struct raft_io_snapshot_put inner;
    struct raft_io_snapshot_put *outer;
    raft_io_snapshot_put_cb cb;
    struct raft_io *io;
};

static void io_snapshot_put_done(struct raft_io_snapshot_put *inner, int status)
{
    struct io_shadow_put *s = CONTAINER_OF(inner, struct io_shadow_put, inner);
    struct raft_io_snapshot_put *outer = s->outer;
    raft_io_snapshot_put_cb cb = s->cb;
    struct raft_io *io = s->io;
    free(s);
    io_must(io, "snapshot write", status);
    cb(outer, status);
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct raft_io *in = io_inner(io);
    struct io_shadow_put *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return RAFT_NOMEM;
    }
    s->outer = req;
    s->cb = cb;
    s->io = io;
    req->cb = cb;
    int rv =
        io_result(io, in->snapshot_put(in, trailing, &s->inner, snapshot, io_snapshot_put_done));
    if (rv != 0) {
        free(s);
        io_must(io, "snapshot write", rv);
    }
    return rv;
}

static int io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->snapshot_get(in, req, cb));
}

static raft_time io_time(struct raft_io *io)
{
    struct raft_io *in = io_inner(io);
    return in->time(in);
}

static int io_random(struct raft_io *io, int min, int max)
{
    struct raft_io *in = io_inner(io);
    return in->random(in, min, max);
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    struct raft_io *in = io_inner(io);
    return io_result(io, in->async_work(in, req, cb));
}

static void io_wrap(struct cluster *c)
{
    struct raft_io *io = &c->io;
    memset(io, 0, sizeof(*io));
    /* raft_uv 0.15 implements async_work but still says version 1; raft
     * wants version 2 before it takes snapshots asynchronously. */
    io->version = c->uv_io.async_work != NULL ? 2 : c->uv_io.version;
    io->impl = c;
    io->init = io_init;
    io->close = io_close;
    io->load = io_load;
    io->start = io_start;
    io->bootstrap = io_bootstrap;
    io->recover = io_recover;
    io->set_term = io_set_term;
    io->set_vote = io_set_vote;
    io->send = io_send;
    io->append = io_append;
    io->truncate = io_truncate;
    io->snapshot_put = io_snapshot_put;
    io->snapshot_get = io_snapshot_get;
    io->time = io_time;
    io->random = io_random;
    io->async_work = io_async_work;
}

/* ---------------------------------------------------------------------------
 * The node directory, cached from the ledger's 'n' records. */

static struct cluster_directory_entry *dir_find(struct cluster *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_dir; i++) {
        if (c->dir[i].id == id) {
            return &c->dir[i];
        }
    }
    return NULL;
}

static void dir_put(void *data, const Coalition__NodeInfo *info)
{
    struct cluster *c = data;
    struct cluster_directory_entry *e = dir_find(c, info->id);
    if (e == NULL) {
        if (c->n_dir == CLUSTER_NODES_MAX) {
            return; /* beyond what we track; the ledger still has it */
        }
        e = &c->dir[c->n_dir++];
        e->id = info->id;
    }
    snprintf(e->raft_addr, sizeof(e->raft_addr), "%s", info->raft_addr);
    snprintf(e->client_addr, sizeof(e->client_addr), "%s", info->client_addr);
}

static int dir_reload(struct cluster *c)
{
    c->n_dir = 0;
    return ledger_nodes_each(c->ledger, dir_put, c);
}

/* ---------------------------------------------------------------------------
 * The state machine */

/* Applies one committed entry: a packed Batch.  A batch this node proposed
 * gets its results written into the waiting proposal. */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct cluster *c = fsm->data;
    raft_index index = raft_last_applied(&c->raft) + 1;
    *result = NULL;
    const uint8_t *p8 = buf->base;
    uint64_t len = buf->len >= ENTRY_HEADER_LEN ? bytes_get_be64(p8) : UINT64_MAX;
    Coalition__Batch *b = len <= buf->len - ENTRY_HEADER_LEN
                              ? coalition__batch__unpack(NULL, len, p8 + ENTRY_HEADER_LEN)
                              : NULL;
    if (b == NULL) {
        /* A committed entry that does not decode: the log is corrupt. */
        fprintf(stderr, "coalitiond: raft entry %llu does not decode\n", (unsigned long long)index);
        c->on_fatal(COALITION_E_STORAGE);
        return RAFT_MALFORMED;
    }
    struct cluster_proposal *p = NULL;
    if (b->proposer == c->id) {
        struct cluster_proposal **pp = &c->inflight;
        while (*pp != NULL && !((*pp)->number == b->proposal && (*pp)->req.index == index)) {
            pp = &(*pp)->next;
        }
        if (*pp != NULL) {
            p = *pp;
            *pp = p->next;
            if (*pp == NULL) {
                c->inflight_tail = pp;
            }
            p->next = NULL;
        }
    }
    /* Results matter only to the proposer; elsewhere they are not kept. */
    int rv = ledger_apply_batch(c->ledger, index, b, p != NULL ? p->results : NULL,
                                p != NULL ? p->n : 0);
    if (rv < 0) {
        coalition__batch__free_unpacked(b, NULL);
        c->on_fatal(rv);
        return RAFT_IOERR;
    }
    for (size_t i = 0; i < b->n_nodes; i++) {
        dir_put(c, b->nodes[i]);
    }
    coalition__batch__free_unpacked(b, NULL);
    /* rv == 1: already applied before a restart; a proposal of ours cannot
     * be (its index is new), so results are only missing for others'. */
    *result = p;
    return 0;
}

/* Snapshot header: magic, ledger applied index, number of records. */
#define SNAPSHOT_HEADER_LEN (8 + 8 + 8)

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs);

/* On the loop: freeze a view of the store; the work happens in
 * fsm_snapshot_async on a worker thread. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster *c = fsm->data;
    if (c->snap != NULL) {
        return RAFT_BUSY;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct ledger_head head;
    ledger_get_head(c->ledger, &head);
    c->snap = store_snapshot_create(c->store);
    c->snap_index = head.applied_index;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->snap_loop_us =
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
    *bufs = NULL;
    *n_bufs = 0;
    if (fsm->snapshot_async == NULL) {
        return fsm_snapshot_async(fsm, bufs, n_bufs); /* on the loop, then */
    }
    return 0;
}

/* Appends a buffer to the snapshot's array.  0 or RAFT_NOMEM. */
static int snap_push(struct raft_buffer **bufs, unsigned *n, uint8_t *base, size_t len)
{
    struct raft_buffer *grown = realloc(*bufs, (*n + 1) * sizeof(**bufs));
    if (grown == NULL) {
        return RAFT_NOMEM;
    }
    *bufs = grown;
    grown[*n].base = base;
    grown[*n].len = len;
    (*n)++;
    return 0;
}

/* On a worker thread: make the store durable up to the snapshot (raft will
 * trim its log after it), then serialize every key and value of the frozen
 * view: [klen u32][vlen u32][key][value]..., in 4 MiB buffers. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster *c = fsm->data;
    assert(c->snap != NULL);
    uint64_t t0 = now_ms();
    if (store_sync(c->store) != 0) {
        return RAFT_IOERR;
    }
    uint8_t *header = malloc(SNAPSHOT_HEADER_LEN);
    if (header == NULL || snap_push(bufs, n_bufs, header, SNAPSHOT_HEADER_LEN) != 0) {
        free(header);
        return RAFT_NOMEM;
    }
    struct store_iter *it = NULL;
    if (store_iter_create(c->store, NULL, c->snap, "", 0, &it) != 0) {
        return RAFT_NOMEM;
    }
    uint64_t count = 0;
    uint8_t *chunk = NULL;
    size_t used = 0, cap = 0;
    int rv = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const void *k = store_iter_key(it, &klen);
        const void *v = store_iter_value(it, &vlen);
        size_t need = 8 + klen + vlen;
        if (chunk != NULL && used + need > cap) {
            if ((rv = snap_push(bufs, n_bufs, chunk, used)) != 0) {
                break;
            }
            chunk = NULL;
        }
        if (chunk == NULL) {
            cap = need > SNAPSHOT_CHUNK ? need : SNAPSHOT_CHUNK;
            chunk = malloc(cap);
            used = 0;
            if (chunk == NULL) {
                rv = RAFT_NOMEM;
                break;
            }
        }
        uint8_t *p = chunk + used;
        bytes_put_be32(p, (uint32_t)klen);
        bytes_put_be32(p + 4, (uint32_t)vlen);
        memcpy(p + 8, k, klen);
        memcpy(p + 8 + klen, v, vlen);
        used += need;
        count++;
    }
    if (rv == 0 && store_iter_status(it) != 0) {
        rv = RAFT_IOERR;
    }
    store_iter_destroy(it);
    if (rv == 0 && chunk != NULL) {
        rv = snap_push(bufs, n_bufs, chunk, used);
    } else if (chunk != NULL) {
        free(chunk);
    }
    memcpy(header, SNAPSHOT_MAGIC, 8);
    bytes_put_be64(header + 8, c->snap_index);
    bytes_put_be64(header + 16, count);
    size_t bytes = 0;
    for (unsigned i = 0; i < *n_bufs; i++) {
        bytes += (*bufs)[i].len;
    }
    fprintf(stderr,
            "coalitiond: snapshot at ledger index %llu: %llu records, %zu bytes, %llu us on "
            "the loop, %llu ms on a worker thread\n",
            (unsigned long long)c->snap_index, (unsigned long long)count, bytes,
            (unsigned long long)c->snap_loop_us, (unsigned long long)(now_ms() - t0));
    return rv;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster *c = fsm->data;
    for (unsigned i = 0; i < *n_bufs; i++) {
        free((*bufs)[i].base);
    }
    free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    if (c->snap != NULL) {
        store_snapshot_release(c->store, c->snap);
        c->snap = NULL;
    }
    return 0;
}

/* Deletes every key of the store but the restore mark, in batches, walking
 * it once (an iterator sees the store as it was when created, so the
 * deletes written meanwhile do not slow it down). */
static int store_wipe(struct store *s)
{
    struct store_batch *b = NULL;
    int rv = store_batch_create(s, &b);
    if (rv != 0) {
        return rv;
    }
    struct store_iter *it = NULL;
    if ((rv = store_iter_create(s, NULL, NULL, "", 0, &it)) != 0) {
        store_batch_destroy(b);
        return rv;
    }
    size_t n = 0;
    for (store_iter_seek_first(it); rv == 0 && store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0;
        const void *k = store_iter_key(it, &klen);
        if (ledger_is_restore_mark(k, klen)) {
            continue;
        }
        store_batch_delete(b, k, klen);
        if (++n == RESTORE_BATCH_KEYS) {
            rv = store_batch_write(s, b, false);
            store_batch_clear(b);
            n = 0;
        }
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    if (rv == 0 && n > 0) {
        rv = store_batch_write(s, b, false);
    }
    store_iter_destroy(it);
    store_batch_destroy(b);
    return rv;
}

/* Loads the records of a snapshot into an empty store. */
static int store_load(struct store *s, const uint8_t *p, size_t len, uint64_t count)
{
    struct store_batch *b = NULL;
    int rv = store_batch_create(s, &b);
    if (rv != 0) {
        return rv;
    }
    size_t n = 0;
    uint64_t seen = 0;
    while (rv == 0 && len > 0) {
        if (len < 8) {
            rv = COALITION_E_BAD_FRAME;
            break;
        }
        size_t klen = bytes_get_be32(p);
        size_t vlen = bytes_get_be32(p + 4);
        if (len - 8 < klen || len - 8 - klen < vlen) {
            rv = COALITION_E_BAD_FRAME;
            break;
        }
        store_batch_put(b, p + 8, klen, p + 8 + klen, vlen);
        p += 8 + klen + vlen;
        len -= 8 + klen + vlen;
        seen++;
        if (++n == RESTORE_BATCH_KEYS || len == 0) {
            rv = store_batch_write(s, b, false);
            store_batch_clear(b);
            n = 0;
        }
    }
    store_batch_destroy(b);
    if (rv == 0 && seen != count) {
        rv = COALITION_E_BAD_FRAME;
    }
    return rv;
}

/* Replaces the state with a snapshot unless ours is already as new (raft
 * restores the last snapshot at every start, and our store usually holds
 * more than it).  Takes ownership of buf->base. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cluster *c = fsm->data;
    const uint8_t *p = buf->base;
    int rv = 0;
    if (buf->len < SNAPSHOT_HEADER_LEN || memcmp(p, SNAPSHOT_MAGIC, 8) != 0) {
        fprintf(stderr, "coalitiond: snapshot is not ours or is damaged\n");
        raft_free(buf->base);
        return RAFT_MALFORMED;
    }
    uint64_t index = bytes_get_be64(p + 8);
    uint64_t count = bytes_get_be64(p + 16);
    struct ledger_head head;
    ledger_get_head(c->ledger, &head);
    if (index > head.applied_index) {
        fprintf(stderr, "coalitiond: restoring snapshot at index %llu (%llu records)\n",
                (unsigned long long)index, (unsigned long long)count);
        uint64_t t0 = now_ms();
        /* Marked first (synced): a crash before the end leaves an empty
         * ledger, which raft fills from the snapshot again at restart. */
        rv = ledger_restore_begin(c->ledger);
        if (rv == 0) {
            rv = store_wipe(c->store);
        }
        if (rv == 0) {
            rv = store_load(c->store, p + SNAPSHOT_HEADER_LEN, buf->len - SNAPSHOT_HEADER_LEN,
                            count);
        }
        char *err = NULL;
        if (rv == 0) {
            rv = ledger_restore_end(c->ledger, &err);
        }
        if (rv == 0) {
            rv = dir_reload(c);
        }
        fprintf(stderr, "coalitiond: snapshot restored in %llu ms (loop thread)\n",
                (unsigned long long)(now_ms() - t0));
        if (rv != 0) {
            fprintf(stderr, "coalitiond: snapshot restore failed: %s %s\n", coalition_strerror(rv),
                    err != NULL ? err : "");
            free(err);
            raft_free(buf->base);
            c->on_fatal(rv); /* the store is half replaced: stop */
            return RAFT_IOERR;
        }
    }
    raft_free(buf->base);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Proposals */

static void proposal_done(struct raft_apply *req, int status, void *result)
{
    struct cluster_proposal *p = CONTAINER_OF(req, struct cluster_proposal, req);
    int code = from_raft(status);
    if (status == 0 && result != p) {
        code = COALITION_E_UNAVAILABLE; /* applied, but results went astray */
    }
    if (code != 0) {
        /* Still queued if it never reached apply: unlink it. */
        struct cluster *owner = req->data;
        struct cluster_proposal **pp = &owner->inflight;
        while (*pp != NULL && *pp != p) {
            pp = &(*pp)->next;
        }
        if (*pp == p) {
            *pp = p->next;
            if (*pp == NULL) {
                owner->inflight_tail = pp;
            }
        }
        if (code == COALITION_E_NOT_LEADER) {
            code = COALITION_E_UNAVAILABLE; /* outcome unknown: retry */
        }
    }
    p->cb(p, code);
}

int cluster_propose(struct cluster *c, Coalition__Batch *batch, struct cluster_proposal *p,
                    cluster_proposal_cb cb)
{
    assert(batch != NULL && p != NULL && cb != NULL);
    assert(p->n >= batch->n_txns);
    if (c->closing || raft_state(&c->raft) != RAFT_LEADER) {
        return COALITION_E_NOT_LEADER;
    }
    p->cb = cb;
    p->number = c->next_proposal++;
    p->next = NULL;
    batch->proposer = c->id;
    batch->proposal = p->number;
    /* raft_uv 0.15 pads an entry to 8 bytes when it writes a segment but
     * does not expect the padding when it reads a closed one back: an entry
     * whose length is not a multiple of 8 makes the segment unreadable after
     * a restart (found by tests/process/test_restart.sh).  So an entry is
     * [protobuf length, u64][packed Batch][zeros up to a multiple of 8]. */
    size_t len = coalition__batch__get_packed_size(batch);
    size_t total = ENTRY_HEADER_LEN + ((len + 7) & ~(size_t)7);
    struct raft_buffer buf = {.base = raft_malloc(total), .len = total};
    if (buf.base == NULL) {
        return COALITION_E_NOMEM;
    }
    memset(buf.base, 0, total);
    bytes_put_be64(buf.base, len);
    coalition__batch__pack(batch, (uint8_t *)buf.base + ENTRY_HEADER_LEN);
    p->req.data = c;
    int rv = raft_apply(&c->raft, &p->req, &buf, 1, proposal_done);
    if (rv != 0) {
        raft_free(buf.base); /* ownership passes only on success */
        return from_raft(rv);
    }
    *c->inflight_tail = p;
    c->inflight_tail = &p->next;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Barriers and membership changes */

static void op_barrier_done(struct raft_barrier *req, int status)
{
    struct cluster_op *op = CONTAINER_OF(req, struct cluster_op, barrier);
    op->cb(op->data, status == 0 ? 0 : COALITION_E_UNAVAILABLE);
}

int cluster_barrier(struct cluster *c, struct cluster_op *op, cluster_done_cb cb, void *data)
{
    memset(op, 0, sizeof(*op));
    op->c = c;
    op->cb = cb;
    op->data = data;
    if (c->closing) {
        return COALITION_E_UNAVAILABLE;
    }
    return from_raft(raft_barrier(&c->raft, &op->barrier, op_barrier_done));
}

static const char *role_name(int role);

static const struct raft_server *config_find(struct cluster *c, uint64_t id)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id == id) {
            return &conf->servers[i];
        }
    }
    return NULL;
}

static unsigned config_voters(struct cluster *c)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    unsigned n = 0;
    for (unsigned i = 0; i < conf->n; i++) {
        n += conf->servers[i].role == RAFT_VOTER;
    }
    return n;
}

static void op_finish(struct cluster_op *op, int code)
{
    static const char *const ops[] = {"add", "assign", "remove", "join"};
    const char *name = op->op >= 0 && op->op <= 3 ? ops[op->op] : "change";
    if (code == 0) {
        fprintf(stderr, "coalitiond: membership %s of node %llu done (%s)\n", name,
                (unsigned long long)op->id, role_name(op->role));
    } else {
        fprintf(stderr, "coalitiond: membership %s of node %llu failed: %s\n", name,
                (unsigned long long)op->id, coalition_errname(code));
    }
    op->cb(op->data, code);
}

static void op_dir_done(struct cluster_proposal *p, int status)
{
    struct cluster_op *op = p->data;
    op_finish(op, status);
}

/* Last step of ADD/JOIN: record the node's addresses in the directory. */
static void op_record(struct cluster_op *op)
{
    struct cluster *c = op->c;
    struct cluster_directory_entry *e = dir_find(c, op->id);
    if (op->client_addr[0] == '\0' || (e != NULL && strcmp(e->client_addr, op->client_addr) == 0 &&
                                       strcmp(e->raft_addr, op->raft_addr) == 0)) {
        op_finish(op, 0);
        return;
    }
    Coalition__NodeInfo info = COALITION__NODE_INFO__INIT;
    Coalition__NodeInfo *infos[1] = {&info};
    info.id = op->id;
    info.raft_addr = op->raft_addr;
    info.client_addr = op->client_addr;
    Coalition__Batch batch = COALITION__BATCH__INIT;
    batch.time_ms = 0;
    batch.n_nodes = 1;
    batch.nodes = infos;
    memset(&op->dir, 0, sizeof(op->dir));
    op->dir.data = op;
    int rv = cluster_propose(c, &batch, &op->dir, op_dir_done);
    if (rv != 0) {
        op_finish(op, rv);
    }
}

static void op_assign_done(struct raft_change *req, int status)
{
    struct cluster_op *op = CONTAINER_OF(req, struct cluster_op, change);
    if (status != 0) {
        op_finish(op, from_raft(status));
        return;
    }
    if (op->op == COALITION__CLUSTER_CHANGE_REQUEST__OP__ASSIGN) {
        op_finish(op, 0);
        return;
    }
    op_record(op);
}

static void op_assign(struct cluster_op *op)
{
    const struct raft_server *s = config_find(op->c, op->id);
    if (s != NULL && s->role == op->role) {
        op_assign_done(&op->change, 0);
        return;
    }
    int rv = raft_assign(&op->c->raft, &op->change, op->id, op->role, op_assign_done);
    if (rv != 0) {
        op_finish(op, from_raft(rv));
    }
}

static void op_add_done(struct raft_change *req, int status)
{
    struct cluster_op *op = CONTAINER_OF(req, struct cluster_op, change);
    if (status != 0) {
        op_finish(op, from_raft(status));
        return;
    }
    if (op->role == RAFT_SPARE) {
        op_record(op);
    } else {
        op_assign(op);
    }
}

/* raft_add, then (op_add_done) the role, then the directory.  0 or a raft
 * error. */
static int op_add_start(struct cluster_op *op)
{
    if (op->raft_addr[0] == '\0') {
        return RAFT_BADID;
    }
    return raft_add(&op->c->raft, &op->change, op->id, op->raft_addr, op_add_done);
}

static void op_remove_done(struct raft_change *req, int status)
{
    struct cluster_op *op = CONTAINER_OF(req, struct cluster_op, change);
    op_finish(op, from_raft(status));
}

/* The slot of refusal `sig` if it was logged recently, else the slot
 * logged longest ago (or an empty one). */
static struct cluster_refusal *refusal_slot(struct cluster *c, uint64_t sig)
{
    struct cluster_refusal *oldest = &c->refusals_recent[0];
    for (size_t i = 0; i < CLUSTER_REFUSALS_RECENT; i++) {
        struct cluster_refusal *r = &c->refusals_recent[i];
        if (r->sig == sig) {
            return r;
        }
        if (r->logged_ms < oldest->logged_ms) {
            oldest = r;
        }
    }
    return oldest;
}

/* One line per refused membership change: the same refusal again (a node
 * asks to join twice a second) once per REFUSALS_REPEAT_MS, and at most
 * REFUSALS_LOG_MAX lines per REFUSALS_LOG_WINDOW_MS. */
static void change_log_refusal(struct cluster *c, const Coalition__ClusterChangeRequest *req,
                               int code, const char *why)
{
    static const char *const ops[] = {"add", "assign", "remove", "join"};
    const char *op = (unsigned)req->op < sizeof(ops) / sizeof(ops[0]) ? ops[req->op] : "unknown";
    const char *raft_addr = req->raft_addr ? req->raft_addr : "";
    const char *client_addr = req->client_addr ? req->client_addr : "";
    char key[AUTH_PUBLIC_HEX + 1] = "none";
    if (req->public_key.data != NULL && req->public_key.len == AUTH_PUBLIC_LEN) {
        auth_hex_encode(req->public_key.data, AUTH_PUBLIC_LEN, key);
    }
    uint64_t sig = bytes_fnv1a(BYTES_FNV1A_INIT, op, strlen(op) + 1);
    sig = bytes_fnv1a(sig, &req->id, sizeof(req->id));
    sig = bytes_fnv1a(sig, raft_addr, strlen(raft_addr) + 1);
    sig = bytes_fnv1a(sig, client_addr, strlen(client_addr) + 1);
    sig = bytes_fnv1a(sig, key, strlen(key));
    sig = bytes_fnv1a(sig, &code, sizeof(code));
    sig = bytes_fnv1a(sig, why, strlen(why));
    sig = sig != 0 ? sig : 1; /* 0: an empty slot */

    uint64_t t = now_ms();
    struct cluster_refusal *slot = refusal_slot(c, sig);
    if (slot->sig == sig && t - slot->logged_ms < REFUSALS_REPEAT_MS) {
        slot->repeats++;
        return;
    }
    if (t - c->refusals_since_ms >= REFUSALS_LOG_WINDOW_MS) {
        if (c->refusals_quiet > 0) {
            fprintf(stderr, "coalitiond: %u more membership changes refused, not logged\n",
                    c->refusals_quiet);
        }
        c->refusals_since_ms = t;
        c->refusals_logged = 0;
        c->refusals_quiet = 0;
    }
    if (c->refusals_logged >= REFUSALS_LOG_MAX) {
        c->refusals_quiet++;
        return;
    }
    c->refusals_logged++;
    unsigned repeats = slot->sig == sig ? slot->repeats : 0;
    *slot = (struct cluster_refusal){.sig = sig, .logged_ms = t, .repeats = 0};
    char again[64] = "";
    if (repeats > 0) {
        snprintf(again, sizeof(again), " (and %u times more since it was last logged)", repeats);
    }
    fprintf(stderr,
            "coalitiond: membership change refused: %s of node %llu (raft %.64s, client %.64s) "
            "signed by key %s: %s (%s)%s\n",
            op, (unsigned long long)req->id, raft_addr, client_addr, key, why,
            coalition_errname(code), again);
}

/* Called on the leader (each tick and before a change is checked): in a
 * new term, forget the nonces and refuse every change signed before now.
 * What another leader accepted, or this node before a restart, is not in
 * this memory; a change signed before this leader took office is therefore
 * refused rather than possibly replayed.  0 or COALITION_E_NOMEM. */
static int replay_new_term(struct cluster *c)
{
    if (c->replay.e != NULL && c->replay_term == c->raft.current_term) {
        return 0;
    }
    if (c->replay.e == NULL &&
        auth_replay_init(&c->replay, CLUSTER_REPLAY_CACHE, AUTH_CLUSTER_WINDOW_MS) != 0) {
        return COALITION_E_NOMEM;
    }
    auth_replay_reset(&c->replay, wall_ms());
    c->replay_term = c->raft.current_term;
    return 0;
}

/* Authenticates a membership change on the leader (cluster.h): the
 * signature, whose key it is, then the clock and the nonce (last, so that
 * only authorized requests fill the replay cache).  0 or the code to
 * answer, logged. */
static int change_authenticate(struct cluster *c, const Coalition__ClusterChangeRequest *req)
{
    const char *why = NULL;
    int rv = auth_cluster_verify(req);
    if (rv != 0) {
        why = req->signature.len == 0 ? "not signed" : "bad signature";
    } else if (req->op == COALITION__CLUSTER_CHANGE_REQUEST__OP__JOIN) {
        if (c->member_trusted == NULL ||
            !c->member_trusted(c->member_trusted_data, req->public_key.data)) {
            rv = COALITION_E_FORBIDDEN;
            why = "the key is not trusted (trusted_keys_file, the admin key, or a partner key on "
                  "the ledger)";
        }
    } else {
        uint8_t admin[AUTH_PUBLIC_LEN];
        if (ledger_signer_key(c->ledger, "", admin) != 0) {
            rv = COALITION_E_UNAVAILABLE;
            why = "the ledger holds no admin key yet (no genesis entry)";
        } else if (sodium_memcmp(admin, req->public_key.data, AUTH_PUBLIC_LEN) != 0) {
            rv = COALITION_E_FORBIDDEN;
            why = "not the coalition admin key";
        }
    }
    if (rv == 0 && replay_new_term(c) != 0) {
        return COALITION_E_NOMEM;
    }
    if (rv == 0) {
        rv = auth_replay_check(&c->replay, req->nonce.data, req->nonce.len, req->time_ms, wall_ms(),
                               &why);
    }
    if (rv != 0) {
        change_log_refusal(c, req, rv, why);
    }
    return rv;
}

void cluster_sign_join(struct cluster *c, Coalition__ClusterChangeRequest *req,
                       struct auth_cluster_sig *sig)
{
    if (c->has_key) {
        auth_cluster_sign(req, wall_ms(), c->key, sig);
    }
}

int cluster_change(struct cluster *c, const Coalition__ClusterChangeRequest *req,
                   struct cluster_op *op, cluster_done_cb cb, void *data)
{
    memset(op, 0, sizeof(*op));
    op->c = c;
    op->cb = cb;
    op->data = data;
    op->op = req->op;
    op->id = req->id;
    op->role = (int)req->role;
    if (c->closing) {
        return COALITION_E_UNAVAILABLE;
    }
    if (raft_state(&c->raft) != RAFT_LEADER) {
        return COALITION_E_NOT_LEADER;
    }
    int arv = change_authenticate(c, req);
    if (arv != 0) {
        return arv;
    }
    if (req->id == 0 ||
        (op->role != RAFT_VOTER && op->role != RAFT_STANDBY && op->role != RAFT_SPARE)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if ((req->raft_addr != NULL && strlen(req->raft_addr) >= sizeof(op->raft_addr)) ||
        (req->client_addr != NULL && strlen(req->client_addr) >= sizeof(op->client_addr))) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    snprintf(op->raft_addr, sizeof(op->raft_addr), "%s", req->raft_addr ? req->raft_addr : "");
    snprintf(op->client_addr, sizeof(op->client_addr), "%s",
             req->client_addr ? req->client_addr : "");
    const struct raft_server *s = config_find(c, req->id);
    int rv = 0;
    switch (req->op) {
    case COALITION__CLUSTER_CHANGE_REQUEST__OP__JOIN:
        if (s != NULL) {
            if (op->raft_addr[0] != '\0' && strcmp(s->address, op->raft_addr) != 0) {
                return COALITION_E_ALREADY_EXISTS; /* that id lives elsewhere */
            }
            snprintf(op->raft_addr, sizeof(op->raft_addr), "%s", s->address);
            if (s->role == RAFT_SPARE && req->role != COALITION__NODE_ROLE__ROLE_SPARE) {
                /* A joining node added, but whose promotion did not finish (a
                 * long catch-up, e.g. a big snapshot): try again now. */
                op->role = config_voters(c) < CLUSTER_VOTERS_WANTED ? RAFT_VOTER : RAFT_STANDBY;
                op_assign(op);
                return 0;
            }
            op_record(op);
            return 0;
        }
        /* A new node votes until there are enough voters. */
        op->role = config_voters(c) < CLUSTER_VOTERS_WANTED ? RAFT_VOTER : RAFT_STANDBY;
        rv = op_add_start(op);
        break;
    case COALITION__CLUSTER_CHANGE_REQUEST__OP__ADD:
        rv = op_add_start(op);
        break;
    case COALITION__CLUSTER_CHANGE_REQUEST__OP__ASSIGN:
        if (s == NULL) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        op_assign(op);
        return 0;
    case COALITION__CLUSTER_CHANGE_REQUEST__OP__REMOVE:
        if (s == NULL) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        rv = raft_remove(&c->raft, &op->change, op->id, op_remove_done);
        break;
    default:
        return COALITION_E_INVALID_ARGUMENT;
    }
    return from_raft(rv);
}

/* ---------------------------------------------------------------------------
 * Status */

static const char *role_name(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_STANDBY:
        return "standby";
    case RAFT_SPARE:
        return "spare";
    default:
        return "none";
    }
}

bool cluster_is_leader(struct cluster *c)
{
    return !c->closing && raft_state(&c->raft) == RAFT_LEADER;
}

uint64_t cluster_leader(struct cluster *c, char *addr, size_t addrlen)
{
    raft_id id = 0;
    const char *raft_addr = NULL;
    if (addr != NULL && addrlen > 0) {
        addr[0] = '\0';
    }
    if (c->closing) {
        return 0;
    }
    raft_leader(&c->raft, &id, &raft_addr);
    const struct cluster_directory_entry *e = dir_find(c, id);
    if (id != 0 && e != NULL && addr != NULL) {
        snprintf(addr, addrlen, "%s", e->client_addr);
    }
    return id;
}

uint64_t cluster_leader_link(struct cluster *c, char *addr, size_t addrlen)
{
    assert(addr != NULL && addrlen > 0);
    raft_id id = 0;
    const char *raft_addr = NULL;
    addr[0] = '\0';
    if (c->closing) {
        return 0;
    }
    raft_leader(&c->raft, &id, &raft_addr);
    if (id != 0 && raft_addr != NULL) {
        snprintf(addr, addrlen, "%llu@%s", (unsigned long long)id, raft_addr);
    }
    return id;
}

void cluster_get_status(struct cluster *c, struct cluster_status *out)
{
    static const char *const states[] = {"unavailable", "follower", "candidate", "leader"};
    int st = raft_state(&c->raft);
    out->state = st >= 0 && st <= RAFT_LEADER ? states[st] : "unavailable";
    const struct raft_server *s = config_find(c, c->id);
    out->membership = s != NULL ? role_name(s->role) : "none";
    out->leader_id = cluster_leader(c, NULL, 0);
    out->last_index = raft_last_index(&c->raft);
    out->last_applied = raft_last_applied(&c->raft);
}

size_t cluster_nodes(struct cluster *c, struct cluster_node *out, size_t max)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    size_t n = 0;
    for (unsigned i = 0; i < conf->n && n < max; i++) {
        const struct raft_server *s = &conf->servers[i];
        struct cluster_node *o = &out[n++];
        o->id = s->id;
        o->role = s->role;
        snprintf(o->raft_addr, sizeof(o->raft_addr), "%s", s->address);
        const struct cluster_directory_entry *e = dir_find(c, s->id);
        snprintf(o->client_addr, sizeof(o->client_addr), "%s", e != NULL ? e->client_addr : "");
    }
    return n;
}

/* ---------------------------------------------------------------------------
 * Keeping the directory current: the leader records itself; a node that is
 * missing (or joining) asks the leader, through the node's forwarder. */

static void announce_done(struct cluster_proposal *p, int status)
{
    struct cluster *c = p->data;
    free(p);
    c->announce = NULL;
    (void)status; /* the next tick retries if needed */
}

static bool dir_is_current(struct cluster *c)
{
    const struct cluster_directory_entry *e = dir_find(c, c->id);
    return e != NULL && strcmp(e->client_addr, c->client_addr) == 0 &&
           strcmp(e->raft_addr, c->raft_addr) == 0;
}

/* A node started with --join asks to be promoted until it has been a voter
 * or standby once (an operator may make it a spare later). */
bool cluster_wants_promotion(struct cluster *c)
{
    const struct raft_server *me = config_find(c, c->id);
    if (me != NULL && me->role != RAFT_SPARE) {
        c->joined = true;
    }
    return c->join_addr[0] != '\0' && !c->joined;
}

static void cluster_on_tick(uv_timer_t *t)
{
    struct cluster *c = t->data;
    if (!c->closing && raft_state(&c->raft) == RAFT_LEADER) {
        (void)replay_new_term(c); /* NOMEM: retried by the next change */
    }
    if (c->closing || (dir_is_current(c) && !cluster_wants_promotion(c))) {
        return;
    }
    if (cluster_is_leader(c)) {
        if (c->announce != NULL) {
            return;
        }
        struct cluster_proposal *p = calloc(1, sizeof(*p));
        if (p == NULL) {
            return;
        }
        Coalition__NodeInfo info = COALITION__NODE_INFO__INIT;
        Coalition__NodeInfo *infos[1] = {&info};
        info.id = c->id;
        info.raft_addr = c->raft_addr;
        info.client_addr = c->client_addr;
        Coalition__Batch batch = COALITION__BATCH__INIT;
        batch.n_nodes = 1;
        batch.nodes = infos;
        p->data = c;
        c->announce = p;
        if (cluster_propose(c, &batch, p, announce_done) != 0) {
            c->announce = NULL;
            free(p);
        }
        return;
    }
    /* Not leader: ask to be recorded (or added, when joining). */
    uint64_t t_ms = now_ms();
    if (t_ms < c->announced_at_ms + CLUSTER_ANNOUNCE_RETRY_MS || c->send_join == NULL) {
        return;
    }
    char addr[CONFIG_ADDR_MAX];
    cluster_leader(c, addr, sizeof(addr));
    const char *to = addr[0] != '\0' ? addr : NULL;
    if (to == NULL && config_find(c, c->id) == NULL && c->join_addr[0] != '\0') {
        to = c->join_addr; /* not a member yet: any member will forward it */
    }
    if (to == NULL) {
        return;
    }
    c->announced_at_ms = t_ms;
    c->send_join(c, to);
}

/* ---------------------------------------------------------------------------
 * Start and close */

static int make_dir(const char *path)
{
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

int cluster_start(struct cluster *c, uv_loop_t *loop, const struct config *cfg,
                  const char *raft_addr, const char *client_addr, struct ledger *l, struct store *s,
                  const struct link_config *link, void (*on_fatal)(int code), char *err,
                  size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->ledger = l;
    c->store = s;
    c->id = cfg->id;
    c->on_fatal = on_fatal;
    c->inflight_tail = &c->inflight;
    snprintf(c->raft_addr, sizeof(c->raft_addr), "%s", raft_addr);
    snprintf(c->client_addr, sizeof(c->client_addr), "%s", client_addr);
    snprintf(c->join_addr, sizeof(c->join_addr), "%s", cfg->join);
    /* Proposal numbers must not repeat across restarts (old entries of ours
     * are replayed): start from the wall clock in microseconds. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->next_proposal = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;

    char dir[CONFIG_PATH_MAX + 8];
    if (snprintf(dir, sizeof(dir), "%s/raft", cfg->data) >= (int)sizeof(dir) ||
        make_dir(dir) != 0) {
        snprintf(err, errlen, "cannot create raft directory in '%s': %s", cfg->data,
                 strerror(errno));
        return -1;
    }
    int rv = link_transport_init(&c->transport, loop, link);
    if (rv != 0) {
        snprintf(err, errlen, "raft transport: %s", coalition_strerror(rv));
        return -1;
    }
    rv = raft_uv_init(&c->uv_io, loop, dir, &c->transport);
    if (rv != 0) {
        snprintf(err, errlen, "raft storage in '%s': %s", dir, c->uv_io.errmsg);
        link_transport_close(&c->transport);
        return -1;
    }
    io_wrap(c);
    c->fsm.version = 3;
    c->fsm.data = c;
    c->fsm.apply = fsm_apply;
    c->fsm.snapshot = fsm_snapshot;
    c->fsm.restore = fsm_restore;
    c->fsm.snapshot_finalize = fsm_snapshot_finalize;
    c->fsm.snapshot_async = c->io.version >= 2 ? fsm_snapshot_async : NULL;
    rv = raft_init(&c->raft, &c->io, &c->fsm, c->id, c->raft_addr);
    if (rv != 0) {
        snprintf(err, errlen, "raft init: %s", raft_errmsg(&c->raft));
        raft_uv_close(&c->uv_io);
        link_transport_close(&c->transport);
        return -1;
    }
    raft_set_election_timeout(&c->raft, cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(&c->raft, cfg->heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&c->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&c->raft, cfg->snapshot_trailing);
    raft_set_pre_vote(&c->raft, true);

    /* A new coalition: the listed voters, or this node alone.  On a restart
     * raft says CANTBOOTSTRAP, which is normal.  A joining node starts
     * empty and is added by the leader. */
    if (cfg->join[0] == '\0') {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        rv = 0;
        if (cfg->n_bootstrap > 0) {
            for (size_t i = 0; rv == 0 && i < cfg->n_bootstrap; i++) {
                rv = raft_configuration_add(&conf, cfg->bootstrap[i].id, cfg->bootstrap[i].addr,
                                            RAFT_VOTER);
            }
        } else {
            rv = raft_configuration_add(&conf, c->id, c->raft_addr, RAFT_VOTER);
        }
        if (rv == 0) {
            rv = raft_bootstrap(&c->raft, &conf);
        }
        raft_configuration_close(&conf);
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
            snprintf(err, errlen, "raft bootstrap: %s", raft_strerror(rv));
            c->closing = true;
            raft_close(&c->raft, NULL);
            return -1;
        }
    }
    if ((rv = dir_reload(c)) != 0) {
        snprintf(err, errlen, "reading the node directory: %s", coalition_strerror(rv));
        c->closing = true;
        raft_close(&c->raft, NULL);
        return -1;
    }
    rv = raft_start(&c->raft);
    if (rv != 0) {
        const char *why = raft_errmsg(&c->raft);
        /* raft 0.15 often leaves the message empty (a raft port already in
         * use gives a bare "I/O error"): say what to check. */
        snprintf(err, errlen, "raft start on %s: %s%s%s (is the raft address in use?)",
                 c->raft_addr, raft_strerror(rv), why[0] != '\0' ? ": " : "", why);
        c->closing = true;
        raft_close(&c->raft, NULL);
        return -1;
    }
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, cluster_on_tick, CLUSTER_TICK_MS, CLUSTER_TICK_MS);
    if (link != NULL) {
        c->member_trusted = link->trusted;
        c->member_trusted_data = link->trusted_data;
        if (link->secret_key != NULL) {
            memcpy(c->key, link->secret_key, sizeof(c->key));
            c->has_key = true;
        }
    }
    return 0;
}

static void cluster_on_raft_closed(struct raft *r)
{
    struct cluster *c = CONTAINER_OF(r, struct cluster, raft);
    /* raft_uv's memory is released by cluster_free, once the loop has run
     * out: freeing it here, inside raft_uv's own close path, let libraft
     * touch freed memory (seen as a crash at shutdown under ASan). */
    if (c->close_cb != NULL) {
        c->close_cb(c);
    }
}

void cluster_free(struct cluster *c)
{
    sodium_memzero(c->key, sizeof(c->key));
    c->has_key = false;
    auth_replay_free(&c->replay);
    raft_uv_close(&c->uv_io);
    link_transport_close(&c->transport);
}

static void cluster_on_tick_closed(uv_handle_t *h)
{
    struct cluster *c = h->data;
    raft_close(&c->raft, cluster_on_raft_closed);
}

void cluster_close(struct cluster *c, void (*cb)(struct cluster *c))
{
    assert(!c->closing);
    c->closing = true;
    c->close_cb = cb;
    uv_close((uv_handle_t *)&c->tick, cluster_on_tick_closed);
}
