/* The forwarder (contract in forward.h): one connection from a follower to
 * the leader (a forwarding channel over the authenticated links, or TCP to
 * a client address), requests pipelined on it under the
 * forwarder's own ids, answers matched back by id, and a timer that answers
 * UNAVAILABLE whatever the leader does not answer in time.  Callbacks never
 * run inside forwarder_send: failures found there wait for the next tick. */
#include "forward.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"
#include "frame.h"
#include "outbuf.h"

#define FORWARD_READ_BUF       (64 * 1024)
#define FORWARD_OUT_MAX        ((size_t)64 << 20) /* bytes queued for a leader not reading */
#define FORWARD_TICK_MS_MAX    100                /* deadlines are checked this often, at most */
#define FORWARD_TICK_MS_MIN    10
#define FORWARD_TABLE_MIN_BITS 6 /* first size of a connection's id table: 64 */

_Static_assert(FORWARD_ADDR_MAX >= 21 + CONFIG_ADDR_MAX, "an id, '@' and a raft address fit");
_Static_assert(FORWARD_INFLIGHT_MAX <= SIZE_MAX / 4, "the id table can hold every request");
_Static_assert(FORWARD_OUT_MAX >= FRAME_HEADER_LEN + FRAME_PAYLOAD_MAX, "the largest frame fits");
_Static_assert(FORWARD_OUT_MAX <= UINT_MAX, "one write takes the whole output (uv_buf_t len)");

/* One connection to one address.  Once replaced or lost it is detached
 * (f == NULL): its requests have moved to the forwarder's failed list and it
 * only waits for libuv to release it. */
struct forwarder_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;   /* to a "HOST:PORT" */
        uv_pipe_t pipe; /* a channel to an "ID@HOST:PORT" (forwarder.dial) */
    } h;                /* first: the handle's address is the conn's */
    uv_connect_t connect;
    struct forwarder *f; /* NULL once detached */
    char addr[FORWARD_ADDR_MAX];
    uint64_t started_ms; /* when the connect began */
    struct frame_decoder dec;
    struct outbuf out;           /* request frames */
    struct forward_req *reqs;    /* in flight, in send order (so by deadline) */
    struct forward_req **table;  /* the same, by id: open addressing */
    size_t table_cap, table_len; /* table_cap == 1 << table_bits, or 0 */
    unsigned table_bits;
    int refs; /* the handle + the connect + the write in progress */
    bool connected, closing;
    uint8_t rbuf[FORWARD_READ_BUF];
};

/* ---- request lists ------------------------------------------------------
 * A list is a pointer to its first request; the first request's prev is the
 * last one (so appending is O(1)), the last one's next is NULL. */

static void list_append(struct forward_req **head, struct forward_req *r)
{
    r->next = NULL;
    if (*head == NULL) {
        r->prev = r;
        *head = r;
        return;
    }
    struct forward_req *tail = (*head)->prev;
    tail->next = r;
    r->prev = tail;
    (*head)->prev = r;
}

static void list_remove(struct forward_req **head, struct forward_req *r)
{
    assert(*head != NULL);
    if (r == *head) {
        *head = r->next;
        if (*head != NULL) {
            (*head)->prev = r->prev;
        }
    } else {
        r->prev->next = r->next;
        if (r->next != NULL) {
            r->next->prev = r->prev;
        } else {
            (*head)->prev = r->prev;
        }
    }
    r->prev = r->next = NULL;
}

/* Moves every request of *from to the end of *to. */
static void list_splice(struct forward_req **to, struct forward_req **from)
{
    if (*from == NULL) {
        return;
    }
    if (*to == NULL) {
        *to = *from;
    } else {
        struct forward_req *to_tail = (*to)->prev;
        struct forward_req *from_tail = (*from)->prev;
        to_tail->next = *from;
        (*from)->prev = to_tail;
        (*to)->prev = from_tail;
    }
    *from = NULL;
}

/* ---- the id table of a connection ---------------------------------------
 * Open addressing with linear probing.  Ids are mixed (Fibonacci hashing)
 * before use: consecutive ids taken modulo the capacity would form one long
 * run, and removing from the front of it would scan the whole run. */

static size_t table_home(uint64_t id, unsigned bits)
{
    assert(bits > 0 && bits < 64);
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits));
}

static size_t table_find(const struct forwarder_conn *c, uint64_t id)
{
    if (c->table_cap == 0) {
        return SIZE_MAX;
    }
    size_t mask = c->table_cap - 1;
    for (size_t i = table_home(id, c->table_bits);; i = (i + 1) & mask) {
        if (c->table[i] == NULL) {
            return SIZE_MAX;
        }
        if (c->table[i]->id == id) {
            return i;
        }
    }
}

static void table_put(struct forward_req **table, size_t cap, unsigned bits, struct forward_req *r)
{
    assert(cap == (size_t)1 << bits);
    size_t mask = cap - 1;
    size_t i = table_home(r->id, bits);
    while (table[i] != NULL) {
        i = (i + 1) & mask;
    }
    table[i] = r;
}

/* Adds r (whose id is not in the table).  0 or COALITION_E_NOMEM. */
static int table_insert(struct forwarder_conn *c, struct forward_req *r)
{
    assert(r->id != 0 && table_find(c, r->id) == SIZE_MAX);
    if ((c->table_len + 1) * 2 > c->table_cap) {
        unsigned bits = c->table_cap > 0 ? c->table_bits + 1 : FORWARD_TABLE_MIN_BITS;
        size_t cap = (size_t)1 << bits;
        struct forward_req **t = calloc(cap, sizeof(*t));
        if (t == NULL) {
            return COALITION_E_NOMEM;
        }
        for (size_t i = 0; i < c->table_cap; i++) {
            if (c->table[i] != NULL) {
                table_put(t, cap, bits, c->table[i]);
            }
        }
        free(c->table);
        c->table = t;
        c->table_cap = cap;
        c->table_bits = bits;
    }
    table_put(c->table, c->table_cap, c->table_bits, r);
    c->table_len++;
    return 0;
}

/* Removes the entry at slot i, shifting later entries of its probe run
 * back so that every entry stays reachable from its home slot. */
static void table_remove_at(struct forwarder_conn *c, size_t i)
{
    assert(i < c->table_cap && c->table[i] != NULL && c->table_len > 0);
    size_t mask = c->table_cap - 1;
    c->table[i] = NULL;
    c->table_len--;
    for (size_t j = (i + 1) & mask; c->table[j] != NULL; j = (j + 1) & mask) {
        size_t home = table_home(c->table[j]->id, c->table_bits);
        /* The entry at j may stay if its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            c->table[i] = c->table[j];
            c->table[j] = NULL;
            i = j;
        }
    }
}

/* ---- connections -------------------------------------------------------- */

static void forwarder_schedule_failed(struct forwarder *f);
static void forwarder_maybe_closed(struct forwarder *f);
static void conn_flush(struct forwarder_conn *c);

static void conn_unref(struct forwarder_conn *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0) {
        return;
    }
    assert(c->f == NULL && c->reqs == NULL && c->table_len == 0);
    frame_decoder_close(&c->dec);
    free(c->table);
    outbuf_close(&c->out);
    free(c);
}

static void conn_on_close(uv_handle_t *h)
{
    struct forwarder_conn *c = (struct forwarder_conn *)h;
    struct forwarder *f = c->f;
    if (f != NULL) {
        /* Only forwarder_close leaves a closing connection attached: it
         * waits for this handle before calling back. */
        assert(f->closing && f->conn == c);
        c->f = NULL;
        f->conn = NULL;
        forwarder_maybe_closed(f);
    }
    conn_unref(c);
}

/* Moves the connection's requests to the failed list and closes the handle.
 * With `detach`, the forwarder forgets the connection at once. */
static void conn_shutdown(struct forwarder_conn *c, bool detach)
{
    struct forwarder *f = c->f;
    assert(f != NULL && f->conn == c && !c->closing);
    list_splice(&f->failed, &c->reqs);
    if (c->table_cap > 0) {
        memset(c->table, 0, c->table_cap * sizeof(c->table[0]));
    }
    c->table_len = 0;
    c->closing = true;
    uv_close(&c->h.handle, conn_on_close);
    if (detach) {
        c->f = NULL;
        f->conn = NULL;
        forwarder_schedule_failed(f);
    }
}

/* The connection is lost or useless: its requests fail with UNAVAILABLE
 * (at the next tick) and the next send opens a new one. */
static void conn_drop(struct forwarder_conn *c)
{
    if (c->f != NULL && !c->closing) {
        conn_shutdown(c, true);
    }
}

static void conn_on_write(uv_write_t *w, int status)
{
    struct forwarder_conn *c = w->data;
    outbuf_written(&c->out);
    if (status < 0) {
        conn_drop(c);
    } else {
        conn_flush(c);
    }
    conn_unref(c);
}

/* Hands the accumulated output to libuv, one write at a time; requests
 * sent meanwhile are coalesced into the next write. */
static void conn_flush(struct forwarder_conn *c)
{
    if (!c->connected || c->closing || c->f == NULL) {
        return;
    }
    int rv = outbuf_flush(&c->out, &c->h.stream, c, conn_on_write);
    if (rv < 0) {
        conn_drop(c);
    } else if (rv == 1) {
        c->refs++;
    }
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct forwarder_conn *c = (struct forwarder_conn *)h;
    buf->base = (char *)c->rbuf;
    buf->len = sizeof(c->rbuf);
}

/* One answer from the leader.  False if the connection must go. */
static bool conn_on_response(struct forwarder_conn *c, Coalition__Response *resp)
{
    struct forwarder *f = c->f;
    assert(f != NULL);
    if (resp->id == 0) {
        return false; /* the leader could not read our stream */
    }
    size_t slot = table_find(c, resp->id);
    if (slot == SIZE_MAX) {
        return true; /* timed out already: the late answer is dropped */
    }
    struct forward_req *r = c->table[slot];
    table_remove_at(c, slot);
    list_remove(&c->reqs, r);
    assert(f->inflight > 0);
    f->inflight--;
    r->cb(r, 0, resp);
    return true;
}

static void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct forwarder_conn *c = (struct forwarder_conn *)stream;
    if (c->f == NULL || c->closing) {
        return;
    }
    if (nread < 0) {
        conn_drop(c); /* EOF, reset: the fate of what is in flight is unknown */
        return;
    }
    if (nread == 0) {
        return;
    }
    if (frame_decoder_feed(&c->dec, buf->base, (size_t)nread) != 0) {
        conn_drop(c);
        return;
    }
    /* A callback may close or replace this connection: stop reading then. */
    while (c->f != NULL && !c->closing) {
        const uint8_t *payload = NULL;
        size_t len = 0;
        int rv = frame_decoder_next(&c->dec, &payload, &len);
        if (rv == 0) {
            return;
        }
        Coalition__Response *resp = NULL;
        if (rv < 0 || frame_unpack_response(payload, len, &resp) != 0) {
            conn_drop(c);
            return;
        }
        bool ok = conn_on_response(c, resp);
        frame_free_response(resp);
        if (!ok) {
            conn_drop(c);
            return;
        }
    }
}

static void conn_on_connect(uv_connect_t *req, int status)
{
    struct forwarder_conn *c = req->data;
    if (c->f != NULL && !c->closing) {
        if (status < 0 || uv_read_start(&c->h.stream, conn_on_alloc, conn_on_read) != 0) {
            conn_drop(c); /* refused, unreachable: answered UNAVAILABLE */
        } else {
            c->connected = true;
            uv_tcp_nodelay(&c->h.tcp, 1);
            conn_flush(c);
        }
    }
    conn_unref(c);
}

/* A connection record for `addr`, current, its handle not yet open. */
static struct forwarder_conn *conn_new(struct forwarder *f, const char *addr)
{
    struct forwarder_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->f = f;
    c->refs = 1; /* the handle */
    memcpy(c->addr, addr, strlen(addr) + 1);
    c->started_ms = uv_now(f->loop);
    frame_decoder_init(&c->dec, FRAME_PAYLOAD_MAX);
    outbuf_init(&c->out);
    f->conn = c;
    return c;
}

/* "ID@HOST:PORT": a channel from f->dial, usable at once. */
static int conn_open_channel(struct forwarder *f, const char *addr, const char *at)
{
    char *end = NULL;
    errno = 0;
    unsigned long long id = strtoull(addr, &end, 10);
    if (end != at || id == 0 || errno != 0) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (f->dial == NULL) {
        return COALITION_E_UNAVAILABLE;
    }
    int fd = -1;
    int rv = f->dial(f->dial_data, (uint64_t)id, at + 1, &fd);
    if (rv != 0) {
        return rv;
    }
    struct forwarder_conn *c = conn_new(f, addr);
    if (c == NULL) {
        close(fd);
        return COALITION_E_NOMEM;
    }
    uv_pipe_init(f->loop, &c->h.pipe, 0);
    if (uv_pipe_open(&c->h.pipe, fd) != 0) {
        close(fd);
        conn_drop(c);
        return 0; /* the request fails at the tick */
    }
    if (uv_read_start(&c->h.stream, conn_on_alloc, conn_on_read) != 0) {
        conn_drop(c);
        return 0;
    }
    c->connected = true; /* the link holds what is written until it is up */
    return 0;
}

/* Opens a connection to `addr` (numeric "host:port" or "[v6]:port", or
 * "ID@host:port" for a channel) and makes it current.  0, or a negative
 * code with nothing changed. */
static int conn_open(struct forwarder *f, const char *addr)
{
    assert(f->conn == NULL && !f->closing);
    if (strlen(addr) >= FORWARD_ADDR_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    const char *at = strchr(addr, '@');
    if (at != NULL) {
        return conn_open_channel(f, addr, at);
    }
    char host[FORWARD_ADDR_MAX];
    int port = 0;
    struct sockaddr_storage sa;
    if (config_split_addr(addr, host, sizeof(host), &port) != 0) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa) != 0) {
        /* Leader addresses come from `listen` settings, which the server
         * binds numerically; a name here cannot be a node's address. */
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct forwarder_conn *c = conn_new(f, addr);
    if (c == NULL) {
        return COALITION_E_NOMEM;
    }
    uv_tcp_init(f->loop, &c->h.tcp);
    c->connect.data = c;
    if (uv_tcp_connect(&c->connect, &c->h.tcp, (const struct sockaddr *)&sa, conn_on_connect) !=
        0) {
        /* Not even attempted: close it; the request fails at the tick. */
        conn_drop(c);
        return 0;
    }
    c->refs++; /* the connect */
    return 0;
}

/* Packs the request into the connection's output and records it.  0, or
 * COALITION_E_BUSY if the leader is not taking what was queued already, or
 * another negative code; nothing is changed on error. */
static int conn_queue(struct forwarder_conn *c, const Coalition__Request *msg,
                      struct forward_req *r)
{
    Coalition__Request copy = *msg; /* shallow: msg stays untouched */
    copy.id = r->id;
    copy.forwarded = !c->f->as_client;
    uint8_t *frame = NULL;
    size_t len = 0;
    int rv = frame_pack_request(&copy, &frame, &len);
    if (rv != 0) {
        return rv;
    }
    uint8_t *p = NULL;
    if (outbuf_pending(&c->out) + len > FORWARD_OUT_MAX) {
        rv = COALITION_E_BUSY;
    } else if ((p = outbuf_reserve(&c->out, len)) == NULL) {
        rv = COALITION_E_NOMEM;
    }
    if (rv == 0) {
        rv = table_insert(c, r);
    }
    if (rv == 0) {
        memcpy(p, frame, len);
        outbuf_commit(&c->out, len);
        list_append(&c->reqs, r);
    }
    free(frame);
    return rv;
}

/* ---- the forwarder ------------------------------------------------------ */

static uint64_t forwarder_tick_ms(const struct forwarder *f)
{
    uint64_t t = f->timeout_ms / 4;
    if (t < FORWARD_TICK_MS_MIN) {
        t = FORWARD_TICK_MS_MIN;
    }
    return t < FORWARD_TICK_MS_MAX ? t : FORWARD_TICK_MS_MAX;
}

/* Answers a request that was never answered by the leader. */
static void req_fail(struct forwarder *f, struct forward_req *r)
{
    assert(f->inflight > 0);
    f->inflight--;
    r->cb(r, r->id == 0 ? COALITION_E_BUSY : COALITION_E_UNAVAILABLE, NULL);
}

/* Answers the requests on the failed list.  Those that callbacks add
 * meanwhile wait for the next tick, so a caller that resends at once cannot
 * keep the loop here. */
static void forwarder_answer_failed(struct forwarder *f)
{
    struct forward_req *list = f->failed;
    f->failed = NULL;
    while (list != NULL) {
        struct forward_req *r = list;
        list_remove(&list, r);
        req_fail(f, r);
    }
}

static void forwarder_on_tick(uv_timer_t *t)
{
    struct forwarder *f = t->data;
    assert(f != NULL && !f->closing);
    forwarder_answer_failed(f);
    uint64_t now = uv_now(f->loop);
    /* Requests past their deadline; the list is in deadline order.  Each
     * callback may replace the connection or close the forwarder. */
    while (!f->closing && f->conn != NULL && f->conn->reqs != NULL &&
           f->conn->reqs->deadline_ms <= now) {
        struct forwarder_conn *c = f->conn;
        struct forward_req *r = c->reqs;
        size_t slot = table_find(c, r->id);
        assert(slot != SIZE_MAX);
        table_remove_at(c, slot);
        list_remove(&c->reqs, r);
        req_fail(f, r);
    }
    if (f->closing) {
        return;
    }
    /* A connect that takes longer than a request may wait is abandoned, so
     * that the next request tries afresh rather than queueing behind it. */
    struct forwarder_conn *c = f->conn;
    if (c != NULL && !c->connected && now - c->started_ms >= f->timeout_ms) {
        conn_drop(c);
    }
    if (f->inflight == 0 && f->failed == NULL) {
        uv_timer_stop(&f->timer);
    }
}

/* Makes the next tick come at once, to answer the failed list. */
static void forwarder_schedule_failed(struct forwarder *f)
{
    if (f->closing) {
        return; /* answered when the handles are closed */
    }
    uint64_t tick = forwarder_tick_ms(f);
    uv_timer_start(&f->timer, forwarder_on_tick, 0, tick);
}

int forwarder_init(struct forwarder *f, uv_loop_t *loop, uint64_t timeout_ms)
{
    assert(f != NULL && loop != NULL);
    assert(timeout_ms > 0);
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->timeout_ms = timeout_ms;
    if (uv_timer_init(loop, &f->timer) != 0) {
        return COALITION_E_INTERNAL;
    }
    f->timer.data = f; /* NULL once closed */
    return 0;
}

/* Calls back when both the timer and the connection are closed, after
 * answering every request still waiting. */
static void forwarder_maybe_closed(struct forwarder *f)
{
    assert(f->closing);
    if (f->conn != NULL || f->timer.data != NULL) {
        return;
    }
    /* Callbacks may still send (they are answered here too). */
    while (f->failed != NULL) {
        forwarder_answer_failed(f);
    }
    assert(f->inflight == 0);
    void (*cb)(struct forwarder *) = f->close_cb;
    if (cb != NULL) {
        cb(f); /* f may be freed from here on */
    }
}

static void forwarder_on_timer_close(uv_handle_t *h)
{
    struct forwarder *f = h->data;
    f->timer.data = NULL;
    forwarder_maybe_closed(f);
}

void forwarder_close(struct forwarder *f, void (*cb)(struct forwarder *f))
{
    assert(f != NULL && !f->closing);
    f->closing = true;
    f->close_cb = cb;
    if (f->conn != NULL) {
        conn_shutdown(f->conn, false);
    }
    uv_close((uv_handle_t *)&f->timer, forwarder_on_timer_close);
}

void forwarder_send(struct forwarder *f, const char *addr, const Coalition__Request *msg,
                    struct forward_req *req, forward_cb cb)
{
    assert(f != NULL && addr != NULL && msg != NULL && req != NULL && cb != NULL);
    req->cb = cb;
    req->id = 0;
    req->prev = req->next = NULL;
    req->deadline_ms = uv_now(f->loop) + f->timeout_ms;
    bool busy = f->inflight >= FORWARD_INFLIGHT_MAX;
    f->inflight++;
    if (busy) {
        list_append(&f->failed, req); /* id 0: BUSY */
        forwarder_schedule_failed(f);
        return;
    }
    req->id = ++f->next_id;
    if (f->closing) {
        list_append(&f->failed, req); /* answered before the close callback */
        return;
    }
    if (f->conn != NULL && strcmp(f->conn->addr, addr) != 0) {
        conn_drop(f->conn); /* the leader moved */
    }
    int rv = f->conn != NULL ? 0 : conn_open(f, addr);
    if (rv == 0 && f->conn != NULL) {
        rv = conn_queue(f->conn, msg, req);
    }
    if (rv != 0 || f->conn == NULL) {
        if (rv == COALITION_E_BUSY) {
            req->id = 0; /* answered BUSY */
        }
        list_append(&f->failed, req);
        forwarder_schedule_failed(f);
        return;
    }
    conn_flush(f->conn);
    if (!uv_is_active((uv_handle_t *)&f->timer)) {
        uint64_t tick = forwarder_tick_ms(f);
        uv_timer_start(&f->timer, forwarder_on_tick, tick, tick);
    }
}

size_t forwarder_inflight(const struct forwarder *f)
{
    assert(f != NULL);
    return f->inflight;
}
