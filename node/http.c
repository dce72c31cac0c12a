/* The HTTP/JSON front (contract in http.h): connections and their limits,
 * the queue that answers pipelined requests in order, the trip of each
 * request to this node's frame port, /health and /metrics.  Parsing and
 * JSON live in http_routes.c, the counters in metrics.c. */
#include "http.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "errors.h"
#include "http_routes.h"
#include "outbuf.h"

#define HTTP_READ_BUF (64 * 1024)
#define HTTP_IN_HIGH  (256 * 1024) /* unparsed bytes kept; reading pauses beyond */
#define HTTP_HEAD_MAX 256          /* bytes of a response's status line and headers */
#define HTTP_ADDR_LEN 16           /* IPv6 bytes; IPv4 uses the first 4 */
#define HTTP_BACKLOG  1024

_Static_assert(HTTP_IN_HIGH >= HTTP_READ_BUF, "a whole read fits before reading pauses");

/* Open connections of one remote address. */
struct http_addr {
    uint8_t bytes[HTTP_ADDR_LEN];
    uint8_t len;
    unsigned conns;
    struct http_addr *next;
};

/* One request of a connection, from its last byte to its answer. */
struct http_req {
    struct forward_req freq; /* data = this */
    struct http_server *srv;
    struct http_conn *conn; /* NULL once the connection went away */
    struct http_req *next;  /* the connection's queue, in arrival order */
    struct route_call call;
    uint64_t start_ns;
    int status;
    char *body; /* owned; NULL until answered */
    size_t body_len;
    const char *content_type;
    bool done, waiting, close_after;
    bool write; /* not a GET: later requests wait for its answer */
};

struct http_conn {
    uv_tcp_t tcp; /* first: the handle's address is the conn's */
    uv_timer_t timer;
    struct http_server *srv;
    struct http_conn *prev, *next;
    struct http_addr *addr; /* NULL once released */
    struct route_parser parser;
    char *in; /* bytes read and not parsed yet */
    size_t in_len, in_cap;
    struct http_req *head, *tail;
    size_t queued;
    size_t writes_waiting; /* requests with `write` sent to the node */
    struct outbuf out;
    uint64_t active_ms;  /* last time something happened */
    uint64_t started_ms; /* when the request being parsed began */
    int refs;            /* the two handles + requests waiting + the write */
    bool reading, closing, no_more, close_after_flush, processing, timing_request;
};

static char http_read_buf[HTTP_READ_BUF];

static void conn_process(struct http_conn *c);
static void conn_arm_timer(struct http_conn *c);

/* ---- remote addresses --------------------------------------------------- */

static size_t addr_hash(const uint8_t *b, size_t len)
{
    return (size_t)(bytes_fnv1a(BYTES_FNV1A_INIT, b, len) % HTTP_ADDR_BUCKETS);
}

/* The address entry of `tcp`'s peer, created if needed, with its count
 * raised.  NULL (and nothing counted) if the peer is unknown or memory ran
 * out; *over is set when the address already has its quota. */
static struct http_addr *addr_take(struct http_server *s, uv_tcp_t *tcp, bool *over)
{
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    *over = false;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &len) != 0) {
        return NULL;
    }
    uint8_t key[HTTP_ADDR_LEN];
    size_t klen = 0;
    if (sa.ss_family == AF_INET) {
        memcpy(key, &((struct sockaddr_in *)&sa)->sin_addr, 4);
        klen = 4;
    } else if (sa.ss_family == AF_INET6) {
        memcpy(key, &((struct sockaddr_in6 *)&sa)->sin6_addr, 16);
        klen = 16;
    } else {
        return NULL;
    }
    size_t b = addr_hash(key, klen);
    struct http_addr *a = s->addrs[b];
    while (a != NULL && (a->len != klen || memcmp(a->bytes, key, klen) != 0)) {
        a = a->next;
    }
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL) {
            return NULL;
        }
        memcpy(a->bytes, key, klen);
        a->len = (uint8_t)klen;
        a->next = s->addrs[b];
        s->addrs[b] = a;
    }
    if (a->conns >= s->deps.conns_per_addr) {
        *over = true;
        if (a->conns == 0) {
            /* A limit of 0 admits nobody; forget the entry. */
            s->addrs[b] = a->next;
            free(a);
        }
        return NULL;
    }
    a->conns++;
    return a;
}

static void addr_release(struct http_server *s, struct http_addr *a)
{
    assert(a->conns > 0);
    if (--a->conns > 0) {
        return;
    }
    size_t b = addr_hash(a->bytes, a->len);
    struct http_addr **pp = &s->addrs[b];
    while (*pp != a) {
        pp = &(*pp)->next;
    }
    *pp = a->next;
    free(a);
}

/* ---- requests ----------------------------------------------------------- */

static void req_free(struct http_req *r)
{
    route_call_free(&r->call);
    free(r->body);
    free(r);
}

/* ---- connections -------------------------------------------------------- */

static void conn_unref(struct http_conn *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0) {
        return;
    }
    assert(c->head == NULL && c->addr == NULL);
    route_parser_close(&c->parser);
    outbuf_close(&c->out);
    free(c->in);
    free(c);
}

static void conn_on_close(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void conn_close(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    struct http_server *s = c->srv;
    c->closing = true;
    /* Requests the node still has are answered into the void (see
     * on_forwarded); the others go now. */
    struct http_req *r = c->head;
    while (r != NULL) {
        struct http_req *next = r->next;
        if (r->waiting) {
            r->conn = NULL;
            conn_unref(c); /* the request's reference */
        } else {
            req_free(r);
        }
        r = next;
    }
    c->head = c->tail = NULL;
    c->queued = 0;
    if (c->addr != NULL) {
        addr_release(s, c->addr);
        c->addr = NULL;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    assert(s->n_conns > 0);
    s->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    uv_close((uv_handle_t *)&c->timer, conn_on_close);
}

static void conn_on_write(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    outbuf_written(&c->out);
    if (status < 0) {
        conn_close(c);
    } else if (!c->closing) {
        c->active_ms = uv_now(c->srv->loop);
        int rv = outbuf_flush(&c->out, (uv_stream_t *)&c->tcp, c, conn_on_write);
        if (rv < 0) {
            conn_close(c);
        } else if (rv == 1) {
            c->refs++;
        } else if (c->close_after_flush) {
            conn_close(c);
        } else {
            conn_process(c); /* output drained: parsing may go on */
        }
    }
    conn_unref(c);
}

static void conn_flush(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    int rv = outbuf_flush(&c->out, (uv_stream_t *)&c->tcp, c, conn_on_write);
    if (rv < 0) {
        conn_close(c);
    } else if (rv == 1) {
        c->refs++;
    } else if (c->close_after_flush && !c->out.writing) {
        conn_close(c);
    }
}

/* Appends one answer to the output.  False if memory ran out. */
static bool conn_put_response(struct http_conn *c, const struct http_req *r)
{
    char head[HTTP_HEAD_MAX];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n",
                     r->status, route_reason(r->status), r->content_type, r->body_len,
                     r->status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
                     r->close_after ? "Connection: close\r\n" : "");
    assert(n > 0 && (size_t)n < sizeof(head));
    uint8_t *p = outbuf_reserve(&c->out, (size_t)n + r->body_len);
    if (p == NULL) {
        return false;
    }
    memcpy(p, head, (size_t)n);
    if (r->body_len > 0) {
        memcpy(p + n, r->body, r->body_len);
    }
    outbuf_commit(&c->out, (size_t)n + r->body_len);
    return true;
}

/* Sends the answers at the head of the queue that are ready, in order. */
static void conn_send_ready(struct http_conn *c)
{
    struct http_server *s = c->srv;
    while (!c->closing && c->head != NULL && c->head->done) {
        struct http_req *r = c->head;
        c->head = r->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        c->queued--;
        uint64_t us = (uv_hrtime() - r->start_ns) / 1000;
        metrics_observe(&s->metrics, r->call.route, r->status, us);
        bool ok = conn_put_response(c, r);
        if (r->close_after || !ok) {
            c->no_more = true;
            c->close_after_flush = true;
        }
        req_free(r);
        if (!ok) {
            break;
        }
    }
    conn_flush(c);
}

/* Answers `r` with `status` and a JSON (or, for metrics, text) body that
 * it takes over (NULL: out of memory, the connection is closed after). */
static void req_answer(struct http_req *r, int status, char *body, const char *content_type)
{
    assert(!r->done);
    r->done = true;
    r->status = status;
    r->content_type = content_type;
    if (body == NULL) {
        r->status = 503;
        r->close_after = true;
        body = strdup("{\"error\":{\"code\":\"NOMEM\",\"message\":\"Out of memory\"}}");
    }
    r->body = body;
    r->body_len = body != NULL ? strlen(body) : 0;
}

static void req_answer_error(struct http_req *r, int status, int code)
{
    req_answer(r, status, route_error_body(code, coalition_strerror(code)), "application/json");
}

static void on_forwarded(struct forward_req *freq, int code, const Coalition__Response *resp)
{
    struct http_req *r = freq->data;
    struct http_conn *c = r->conn;
    struct http_server *s = r->srv;
    assert(r->waiting && s->inflight > 0);
    r->waiting = false;
    s->inflight--;
    if (c != NULL && r->write) {
        assert(c->writes_waiting > 0);
        c->writes_waiting--;
    }
    if (c == NULL) {
        /* The connection closed meanwhile: only the bookkeeping is left. */
        req_free(r);
        return;
    }
    if (code != 0) {
        /* UNAVAILABLE (no answer in time, connection lost) or BUSY: the
         * client retries with the same Idempotency-Key. */
        req_answer_error(r, route_status_for(code), code);
    } else {
        int status = 500;
        char *body = NULL;
        route_respond(&r->call, resp, &status, &body);
        req_answer(r, status, body, "application/json");
    }
    c->active_ms = uv_now(s->loop);
    conn_send_ready(c);
    conn_process(c);
    conn_unref(c);
}

static void answer_health(struct http_server *s, struct http_req *r)
{
    struct cluster_status cs;
    cluster_get_status(s->deps.cluster, &cs);
    json_t *o =
        json_pack("{sIsssssIsIsIsI}", "node_id", (json_int_t)s->deps.node_id, "role", cs.state,
                  "membership", cs.membership, "leader_id", (json_int_t)cs.leader_id,
                  "commit_index", (json_int_t)s->deps.cluster->raft.commit_index, "applied_index",
                  (json_int_t)cs.last_applied, "last_index", (json_int_t)cs.last_index);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    req_answer(r, cs.leader_id != 0 ? 200 : 503, body, "application/json");
}

static void answer_metrics(struct http_server *s, struct http_req *r)
{
    struct cluster_status cs;
    cluster_get_status(s->deps.cluster, &cs);
    const struct batcher_stats *bs = &s->deps.batcher->stats;
    struct metrics_node n = {
        .node_id = s->deps.node_id,
        .role = cs.state,
        .leader_id = cs.leader_id,
        .commit_index = s->deps.cluster->raft.commit_index,
        .applied_index = cs.last_applied,
        .last_index = cs.last_index,
        .batches = bs->batches,
        .batch_txns = bs->txns,
        .batches_failed = bs->failed,
        .batch_max_seen = bs->batch_max_seen,
        .http_conns = s->n_conns,
        .http_inflight = s->inflight,
    };
    char *text = NULL;
    size_t len = 0;
    if (metrics_render(&s->metrics, &n, &text, &len) != 0) {
        text = NULL;
    }
    req_answer(r, 200, text, "text/plain; version=0.0.4; charset=utf-8");
}

/* Starts answering one complete request (taken over), in order behind the
 * connection's earlier ones. */
static void conn_dispatch(struct http_conn *c, struct route_msg *m)
{
    struct http_server *s = c->srv;
    struct http_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        route_msg_free(m);
        c->no_more = true;
        conn_close(c);
        return;
    }
    r->srv = s;
    r->conn = c;
    r->start_ns = uv_hrtime();
    r->close_after = !m->keep_alive;
    r->write = m->method != HTTP_GET;
    if (c->tail != NULL) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    c->queued++;
    int status = 400;
    int rv = route_translate(m, &r->call, &status);
    route_msg_free(m);
    if (rv != 0) {
        req_answer_error(r, status, rv);
    } else if (r->call.route == ROUTE_HEALTH) {
        answer_health(s, r);
    } else if (r->call.route == ROUTE_METRICS) {
        answer_metrics(s, r);
    } else {
        r->waiting = true;
        r->freq.data = r;
        if (r->write) {
            c->writes_waiting++;
        }
        c->refs++;
        s->inflight++;
        forwarder_send(&s->fwd, s->node_addr, &r->call.req, &r->freq, on_forwarded);
    }
}

/* A request that cannot be parsed: answered after those before it, then
 * the connection closes. */
static void conn_refuse(struct http_conn *c, int status, int code)
{
    struct http_req *r = calloc(1, sizeof(*r));
    c->no_more = true;
    if (r == NULL) {
        conn_close(c);
        return;
    }
    r->srv = c->srv;
    r->conn = c;
    r->start_ns = uv_hrtime();
    r->close_after = true;
    if (c->tail != NULL) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    c->queued++;
    req_answer_error(r, status, code);
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = http_read_buf;
    buf->len = sizeof(http_read_buf);
}

static void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_read(struct http_conn *c, bool on)
{
    if (c->closing || c->reading == on) {
        return;
    }
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read) != 0) {
            conn_close(c);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = on;
}

/* Parses what has arrived into requests while the connection has room for
 * more under way; then decides whether to read on. */
static void conn_process(struct http_conn *c)
{
    if (c->processing || c->closing) {
        return;
    }
    c->processing = true;
    size_t off = 0;
    /* Reads pipelined after a write wait for its answer, so that they see
     * it (RFC 9112 lets only safe methods run in parallel). */
    while (!c->closing && !c->no_more && off < c->in_len && c->queued < HTTP_PIPELINE_MAX &&
           c->writes_waiting == 0 && outbuf_pending(&c->out) < HTTP_OUT_MAX) {
        struct route_msg m;
        size_t used = 0;
        int status = 0, code = 0;
        int rv =
            route_parser_feed(&c->parser, c->in + off, c->in_len - off, &used, &m, &status, &code);
        off += used;
        if (rv == 1) {
            c->timing_request = false;
            conn_dispatch(c, &m);
        } else if (rv < 0) {
            conn_refuse(c, status, code);
        } else {
            assert(off == c->in_len);
        }
    }
    if (!c->closing) {
        if (off > 0) {
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
        }
        if (c->no_more) {
            c->in_len = 0; /* nothing after a refused request is read */
        }
        if (route_parser_busy(&c->parser) && !c->timing_request) {
            c->timing_request = true;
            c->started_ms = uv_now(c->srv->loop);
        }
        conn_send_ready(c);
    }
    if (!c->closing) {
        bool room = !c->no_more && !c->srv->stopping && c->in_len < HTTP_IN_HIGH &&
                    c->queued < HTTP_PIPELINE_MAX && outbuf_pending(&c->out) < HTTP_OUT_MAX;
        conn_read(c, room);
        conn_arm_timer(c);
    }
    c->processing = false;
}

static void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;
    if (nread < 0) {
        conn_close(c); /* EOF or error: answers under way are dropped */
        return;
    }
    if (nread == 0 || c->no_more) {
        return;
    }
    if (c->in_len + (size_t)nread > c->in_cap) {
        size_t cap = c->in_len + (size_t)nread;
        char *p = realloc(c->in, cap);
        if (p == NULL) {
            conn_close(c);
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, buf->base, (size_t)nread);
    c->in_len += (size_t)nread;
    c->active_ms = uv_now(c->srv->loop);
    conn_process(c);
}

static void conn_on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    if (c->closing) {
        return;
    }
    struct http_server *s = c->srv;
    uint64_t now = uv_now(s->loop);
    if (c->timing_request && !c->no_more && now - c->started_ms >= s->deps.request_timeout_ms) {
        /* A request that does not arrive whole in time (slowloris). */
        s->metrics.timeouts_request++;
        conn_read(c, false);
        conn_refuse(c, 408, COALITION_E_REQUEST_TIMEOUT);
        conn_send_ready(c);
        if (!c->closing) {
            conn_arm_timer(c);
        }
        return;
    }
    if (now - c->active_ms >= s->deps.idle_timeout_ms) {
        /* Nothing moved for the idle time: nothing under way, or a client
         * that does not read its answers. */
        s->metrics.timeouts_idle++;
        conn_close(c);
        return;
    }
    conn_arm_timer(c);
}

/* Sets the timer to the next deadline: the request's if one is being
 * parsed, else the idle one.  Requests waiting for the node need no timer
 * of their own: the forwarder answers them in time. */
static void conn_arm_timer(struct http_conn *c)
{
    const struct http_server *s = c->srv;
    uint64_t now = uv_now(s->loop);
    uint64_t deadline = c->active_ms + s->deps.idle_timeout_ms;
    if (c->timing_request && !c->no_more) {
        uint64_t d = c->started_ms + s->deps.request_timeout_ms;
        deadline = d < deadline ? d : deadline;
    }
    if (c->head != NULL && c->head->waiting && !c->out.writing) {
        /* Waiting for the node: its answer (or the forwarder's timeout)
         * comes; check again after the idle time from now. */
        deadline = now + s->deps.idle_timeout_ms;
    }
    uv_timer_start(&c->timer, conn_on_timer, deadline > now ? deadline - now : 0, 0);
}

/* Refuses a connection over a limit: a 503 attempt without waiting, then
 * the close. */
static void conn_refuse_now(struct http_conn *c)
{
    static const char msg[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 73\r\nConnection: close\r\n\r\n"
        "{\"error\":{\"code\":\"BUSY\",\"message\":\"The node is overloaded, try again\"}}";
    uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    conn_close(c);
}

static void http_on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status < 0 || s->stopping) {
        return;
    }
    struct http_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->srv = s;
    route_parser_init(&c->parser, &(struct route_limits){.header_max = s->deps.header_max,
                                                         .body_max = s->deps.body_max});
    outbuf_init(&c->out);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->refs = 2; /* the two handles */
    c->active_ms = uv_now(s->loop);
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->n_conns > HTTP_CONNECTIONS_MAX) {
        s->metrics.conns_refused_total++;
        conn_refuse_now(c);
        return;
    }
    bool over = false;
    c->addr = addr_take(s, &c->tcp, &over);
    if (c->addr == NULL) {
        if (over) {
            s->metrics.conns_refused_per_addr++;
        }
        conn_refuse_now(c);
        return;
    }
    s->metrics.conns_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    conn_read(c, true);
    if (!c->closing) {
        conn_arm_timer(c);
    }
}

int http_start(struct http_server *s, uv_loop_t *loop, const char *addr,
               const struct http_deps *deps)
{
    assert(s != NULL && loop != NULL && addr != NULL && deps != NULL);
    assert(deps->cluster != NULL && deps->batcher != NULL && deps->node_addr != NULL);
    assert(deps->header_max > 0 && deps->body_max > 0 && deps->node_timeout_ms > 0);
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->deps = *deps;
    metrics_init(&s->metrics);
    if (strlen(deps->node_addr) >= sizeof(s->node_addr)) {
        return UV_EINVAL;
    }
    memcpy(s->node_addr, deps->node_addr, strlen(deps->node_addr) + 1);
    s->deps.node_addr = s->node_addr;
    if (s->deps.idle_timeout_ms == 0) {
        s->deps.idle_timeout_ms = UINT32_MAX; /* 0: no idle limit */
    }
    if (s->deps.request_timeout_ms == 0) {
        s->deps.request_timeout_ms = UINT32_MAX;
    }
    char host[CONFIG_ADDR_MAX];
    int port = 0;
    struct sockaddr_storage sa;
    if (config_split_addr(addr, host, sizeof(host), &port) != 0) {
        return UV_EINVAL;
    }
    int rv = uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
    if (rv != 0) {
        rv = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa);
    }
    if (rv != 0) {
        return rv;
    }
    if (forwarder_init(&s->fwd, loop, deps->node_timeout_ms) != 0) {
        return UV_ENOMEM;
    }
    /* Requests go to this node as a client's would: a follower forwards
     * them to the leader itself. */
    s->fwd.as_client = true;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener, HTTP_BACKLOG, http_on_connection);
    }
    if (rv != 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        forwarder_close(&s->fwd, NULL);
        s->stopping = s->closed = true;
        return rv;
    }
    s->started = true;
    return 0;
}

void http_stop(struct http_server *s)
{
    if (!s->started || s->stopping) {
        return;
    }
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, NULL);
    for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
        conn_read(c, false);
    }
}

bool http_idle(const struct http_server *s)
{
    if (!s->started) {
        return true;
    }
    if (s->inflight > 0) {
        return false;
    }
    for (const struct http_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->out.writing || outbuf_pending(&c->out) > 0) {
            return false;
        }
    }
    return true;
}

void http_close(struct http_server *s)
{
    if (!s->started || s->closed) {
        return;
    }
    assert(s->stopping);
    s->closed = true;
    while (s->conns != NULL) {
        conn_close(s->conns);
    }
    forwarder_close(&s->fwd, NULL);
}
