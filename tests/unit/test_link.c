/* Unit tests of node/link.c on a real libuv loop and real TCP on loopback.
 * This file plays raft: it listens and connects through the transport's
 * vtable and reads and writes the streams it gets, as raft_uv does.  Raw
 * TCP clients and a relay (which can flip a byte) stand in for hostile
 * peers.  Covered: bytes both ways, the peer's id and address, untrusted keys
 * on either side, the wrong node at an address, a node without a key, a
 * tampered handshake (refused both ways), a tampered record (only that link dies), garbage and
 * silent clients (the bound on pending handshakes, the timeout; a good peer still gets in),
 * backpressure with a stalled reader, nothing listening, and close with
 * connects, handshakes and links in flight. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/uv.h>
#include <sodium.h>
#include <uv.h>

#include "errors.h"
#include "link.h"
#include "ports.h"

#define PEERS_MAX     4
#define STREAMS_MAX   16
#define RAW_MAX       16
#define BIG_LEN       ((size_t)3 << 20)
#define RUN_LIMIT_MS  5000
#define HELLO_C_BYTES 337 /* magic 8, key 32, ephemeral 32, id 8, channel 1, address 256 */
#define FINISH_BYTES  88  /* signature 64, stream header 24 */

/* ---- raft's side of a link ------------------------------------------------ */

struct rstream {
    uv_stream_t *s; /* raft_malloc'd by the transport; we close and raft_free it */
    raft_id peer_id;
    char peer_addr[64];
    uint8_t *rx;
    size_t rx_len, rx_cap;
    bool eof;
    bool closed;
    bool reading;
    int write_status; /* last write callback's status */
    size_t writes_done;
};

struct peer {
    struct raft_uv_transport t;
    raft_id id;
    char addr[64];
    uint8_t pk[LINK_PUBLIC_LEN], sk[LINK_SECRET_LEN];
    uint8_t trusts[PEERS_MAX][LINK_PUBLIC_LEN];
    size_t n_trusts;
    struct rstream *accepted[STREAMS_MAX];
    size_t n_accepted;
    struct rstream *channels[STREAMS_MAX]; /* forwarding channels accepted */
    size_t n_channels;
    bool initialized, listening, close_done;
    size_t connect_cbs_before_close; /* connect callbacks seen when close's fired */
};

struct creq {
    struct raft_uv_connect req;
    bool done;
    int status;
    size_t cbs;
    struct rstream *stream;
    uint64_t done_at_ms;
};

/* A raw TCP client (garbage, silent) or one side of the relay. */
struct raw {
    uv_tcp_t tcp;
    uv_connect_t conn;
    bool connected, eof, closed, in_use;
    size_t rx;
    struct raw *other; /* relay: where to forward */
    size_t forwarded;  /* relay: bytes forwarded this way */
    long flip_at;      /* relay: flip this byte (offset), -1 = never */
};

struct fixture {
    uv_loop_t loop;
    struct peer peers[PEERS_MAX];
    size_t connect_cbs;
    struct raw raws[RAW_MAX];
    uv_tcp_t relay_listener;
    bool relay_open;
    uv_tcp_t mute; /* a listener that never accepts */
    bool mute_open;
    char relay_addr[64];
    long relay_flip_at;
    uint8_t *big;                        /* BIG_LEN bytes of pattern */
    bool no_channel_accept;              /* peers started now refuse forwarding channels */
    struct rstream *opened[STREAMS_MAX]; /* forwarding channels we opened */
    size_t n_opened;
};

static struct fixture *FX;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* A loopback port free a moment ago, from below the ephemeral range
 * (tests/lib/ports.h): no outgoing connection takes it before it is bound. */
static int free_port(void)
{
    unsigned port = ports_free();
    assert_true(port != 0);
    return (int)port;
}

/* Runs the loop until pred(arg) or RUN_LIMIT_MS (or limit_ms if > 0). */
static void on_run_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static bool run_until_ms(bool (*pred)(void *), void *arg, unsigned limit_ms)
{
    bool expired = false;
    uv_timer_t timer;
    uv_timer_init(&FX->loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, on_run_timer, limit_ms, 0);
    while (!(pred != NULL && pred(arg)) && !expired) {
        uv_run(&FX->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&FX->loop, UV_RUN_NOWAIT);
    return pred != NULL && pred(arg);
}

static bool run_until(bool (*pred)(void *), void *arg)
{
    return run_until_ms(pred, arg, RUN_LIMIT_MS);
}

/* ---- raft-side streams ---------------------------------------------------- */

static void rs_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct rstream *rs = h->data;
    (void)suggested;
    if (rs->rx_cap - rs->rx_len < 65536) {
        rs->rx_cap = rs->rx_cap * 2 + 65536;
        rs->rx = realloc(rs->rx, rs->rx_cap);
        assert_non_null(rs->rx);
    }
    buf->base = (char *)rs->rx + rs->rx_len;
    buf->len = rs->rx_cap - rs->rx_len;
}

static void rs_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rstream *rs = s->data;
    (void)buf;
    if (nread > 0) {
        rs->rx_len += (size_t)nread;
    } else if (nread < 0) {
        rs->eof = true;
        uv_read_stop(s);
        rs->reading = false;
    }
}

static struct rstream *rs_new(uv_stream_t *s, raft_id id, const char *addr)
{
    struct rstream *rs = calloc(1, sizeof(*rs));
    assert_non_null(rs);
    rs->s = s;
    rs->peer_id = id;
    snprintf(rs->peer_addr, sizeof(rs->peer_addr), "%s", addr != NULL ? addr : "");
    s->data = rs;
    assert_int_equal(uv_read_start(s, rs_alloc, rs_read), 0);
    rs->reading = true;
    return rs;
}

static void rs_closed(uv_handle_t *h)
{
    struct rstream *rs = h->data;
    rs->closed = true;
    raft_free(h); /* as raft does */
}

static void rs_close(struct rstream *rs)
{
    if (rs != NULL && rs->s != NULL && !uv_is_closing((uv_handle_t *)rs->s)) {
        uv_close((uv_handle_t *)rs->s, rs_closed);
    }
}

static void rs_written(uv_write_t *w, int status)
{
    struct rstream *rs = w->data;
    rs->write_status = status;
    rs->writes_done++;
    free(w);
}

/* Writes len bytes (borrowed: must outlive the write) to raft's stream. */
static int rs_write(struct rstream *rs, const void *p, size_t len)
{
    uv_write_t *w = malloc(sizeof(*w));
    assert_non_null(w);
    w->data = rs;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int rv = uv_write(w, rs->s, &b, 1, rs_written);
    if (rv != 0) {
        free(w);
    }
    return rv;
}

/* ---- peers ---------------------------------------------------------------- */

static bool peer_trusts(void *data, const uint8_t pk[LINK_PUBLIC_LEN])
{
    struct peer *p = data;
    for (size_t i = 0; i < p->n_trusts; i++) {
        if (memcmp(p->trusts[i], pk, LINK_PUBLIC_LEN) == 0) {
            return true;
        }
    }
    return false;
}

static void trust(struct peer *p, const struct peer *other)
{
    assert_true(p->n_trusts < PEERS_MAX);
    memcpy(p->trusts[p->n_trusts++], other->pk, LINK_PUBLIC_LEN);
}

static void on_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
    struct peer *p = t->data;
    assert_false(p->close_done);
    assert_true(p->n_accepted < STREAMS_MAX);
    p->accepted[p->n_accepted++] = rs_new(stream, id, address);
}

/* A connected socketpair end from the link module, as a stream of ours
 * (raft_malloc'd so that rs_closed frees it as it frees raft's). */
static struct rstream *rs_from_fd(int fd, raft_id id)
{
    uv_pipe_t *p = raft_malloc(sizeof(*p));
    assert_non_null(p);
    assert_int_equal(uv_pipe_init(&FX->loop, p, 0), 0);
    assert_int_equal(uv_pipe_open(p, fd), 0);
    return rs_new((uv_stream_t *)p, id, NULL);
}

static void on_channel(void *data, raft_id peer_id, const uint8_t peer_pk[LINK_PUBLIC_LEN], int fd)
{
    struct peer *p = data;
    assert_true(p->n_channels < STREAMS_MAX);
    assert_true(peer_trusts(p, peer_pk));
    p->channels[p->n_channels++] = rs_from_fd(fd, peer_id);
}

/* `from` opens a forwarding channel to node want_id at addr; returns our
 * end (0 from link_channel_open asserted). */
static struct rstream *channel_open(struct peer *from, raft_id want_id, const char *addr)
{
    int fd = -1;
    assert_int_equal(link_channel_open(&from->t, want_id, addr, &fd), 0);
    assert_true(fd >= 0);
    assert_true(FX->n_opened < STREAMS_MAX);
    struct rstream *rs = rs_from_fd(fd, want_id);
    FX->opened[FX->n_opened++] = rs;
    return rs;
}

/* A peer with a fresh key, listening on a free loopback port.  Trusts no
 * one yet.  key=false: no key at all. */
static void peer_start_opts(struct peer *p, raft_id id, bool key, unsigned timeout_ms,
                            unsigned pending_max)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%d", free_port());
    crypto_sign_keypair(p->pk, p->sk);
    struct link_config cfg = {.secret_key = key ? p->sk : NULL,
                              .trusted = peer_trusts,
                              .trusted_data = p,
                              .handshake_timeout_ms = timeout_ms,
                              .pending_max = pending_max,
                              .channel_accept = FX->no_channel_accept ? NULL : on_channel,
                              .channel_data = p};
    p->t.data = p;
    assert_int_equal(link_transport_init(&p->t, &FX->loop, &cfg), 0);
    assert_ptr_equal(p->t.data, p);
    p->initialized = true;
    assert_int_equal(p->t.init(&p->t, id, p->addr), 0);
    assert_int_equal(p->t.listen(&p->t, on_accept), 0);
    p->listening = true;
}

static void peer_start(struct peer *p, raft_id id)
{
    peer_start_opts(p, id, true, 0, 0);
}

static void on_transport_closed(struct raft_uv_transport *t)
{
    struct peer *p = t->data;
    assert_false(p->close_done);
    p->close_done = true;
    p->connect_cbs_before_close = FX->connect_cbs;
}

static bool peer_closed(void *arg)
{
    return ((struct peer *)arg)->close_done;
}

/* As raft_uv does: close raft's streams, then the transport. */
static void peer_stop(struct peer *p)
{
    if (!p->initialized) {
        return;
    }
    for (size_t i = 0; i < p->n_accepted; i++) {
        rs_close(p->accepted[i]);
    }
    for (size_t i = 0; i < p->n_channels; i++) {
        rs_close(p->channels[i]);
    }
    if (p->listening && !p->close_done) {
        p->t.close(&p->t, on_transport_closed);
        assert_true(run_until(peer_closed, p));
    }
    link_transport_close(&p->t);
    p->initialized = false;
}

static void on_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
    struct creq *c = req->data;
    c->cbs++;
    FX->connect_cbs++;
    assert_int_equal(c->cbs, 1); /* exactly once */
    c->done = true;
    c->status = status;
    c->done_at_ms = now_ms();
    if (status == 0) {
        assert_non_null(stream);
        c->stream = rs_new(stream, 0, NULL);
    } else {
        assert_null(stream);
    }
}

static bool creq_done(void *arg)
{
    return ((struct creq *)arg)->done;
}

/* from connects to `to` (expecting raft id want_id); returns the connect()
 * return value. */
static int connect_to(struct peer *from, struct creq *c, raft_id want_id, const char *addr)
{
    memset(c, 0, sizeof(*c));
    c->req.data = c;
    return from->t.connect(&from->t, &c->req, want_id, addr, on_connect);
}

struct rx_wait {
    struct rstream *rs;
    size_t len;
};

static bool rx_has(void *arg)
{
    struct rx_wait *w = arg;
    return w->rs->rx_len >= w->len || w->rs->eof;
}

static bool rs_eof(void *arg)
{
    return ((struct rstream *)arg)->eof;
}

static bool rs_write_failed(void *arg)
{
    return ((struct rstream *)arg)->write_status < 0;
}

/* Waits for exactly `len` bytes equal to p on rs. */
static void expect_rx(struct rstream *rs, const uint8_t *p, size_t len)
{
    struct rx_wait w = {rs, len};
    assert_true(run_until(rx_has, &w));
    assert_int_equal(rs->rx_len, len);
    assert_memory_equal(rs->rx, p, len);
}

/* ---- raw clients and the relay -------------------------------------------- */

static struct raw *raw_new(void)
{
    for (size_t i = 0; i < RAW_MAX; i++) {
        if (!FX->raws[i].in_use) {
            struct raw *r = &FX->raws[i];
            memset(r, 0, sizeof(*r));
            r->in_use = true;
            r->flip_at = -1;
            uv_tcp_init(&FX->loop, &r->tcp);
            r->tcp.data = r;
            return r;
        }
    }
    fail_msg("too many raw sockets");
    return NULL;
}

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[65536];
    (void)h;
    (void)suggested;
    buf->base = sink;
    buf->len = sizeof(sink);
}

static void raw_closed(uv_handle_t *h)
{
    ((struct raw *)h->data)->closed = true;
}

static void raw_close(struct raw *r)
{
    if (r->in_use && !uv_is_closing((uv_handle_t *)&r->tcp)) {
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
    }
}

struct fwd {
    uv_write_t w;
    size_t len;
    char data[];
};

static void fwd_done(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    if (nread < 0) {
        r->eof = true;
        uv_read_stop(s);
        if (r->other != NULL) {
            raw_close(r->other); /* relay: pass the close on */
            raw_close(r);
        }
        return;
    }
    r->rx += (size_t)nread;
    if (r->other == NULL || nread == 0) {
        return;
    }
    struct fwd *f = malloc(sizeof(*f) + (size_t)nread);
    assert_non_null(f);
    memcpy(f->data, buf->base, (size_t)nread);
    if (r->flip_at >= 0 && (size_t)r->flip_at >= r->forwarded &&
        (size_t)r->flip_at < r->forwarded + (size_t)nread) {
        f->data[(size_t)r->flip_at - r->forwarded] ^= 0x01;
    }
    r->forwarded += (size_t)nread;
    uv_buf_t b = uv_buf_init(f->data, (unsigned)nread);
    if (uv_is_closing((uv_handle_t *)&r->other->tcp) ||
        uv_write(&f->w, (uv_stream_t *)&r->other->tcp, &b, 1, fwd_done) != 0) {
        free(f);
    }
}

static void raw_on_connect(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    if (status != 0) {
        r->eof = true;
        if (r->other != NULL) {
            raw_close(r->other);
        }
        raw_close(r);
        return;
    }
    r->connected = true;
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    if (r->other != NULL) {
        uv_read_start((uv_stream_t *)&r->other->tcp, raw_alloc, raw_read);
    }
}

static void raw_connect(struct raw *r, const char *addr)
{
    char host[32];
    int port;
    assert_int_equal(sscanf(addr, "%31[^:]:%d", host, &port), 2);
    struct sockaddr_in a;
    uv_ip4_addr(host, port, &a);
    r->conn.data = r;
    assert_int_equal(uv_tcp_connect(&r->conn, &r->tcp, (struct sockaddr *)&a, raw_on_connect), 0);
}

static bool raw_connected(void *arg)
{
    return ((struct raw *)arg)->connected;
}

static bool raw_eof(void *arg)
{
    return ((struct raw *)arg)->eof;
}

static void raw_send(struct raw *r, const void *p, size_t len)
{
    struct fwd *f = malloc(sizeof(*f) + len);
    assert_non_null(f);
    memcpy(f->data, p, len);
    uv_buf_t b = uv_buf_init(f->data, (unsigned)len);
    assert_int_equal(uv_write(&f->w, (uv_stream_t *)&r->tcp, &b, 1, fwd_done), 0);
}

/* The relay: each connection to it is forwarded to `target`; bytes from the
 * connecting side are flipped at FX->relay_flip_at. */
static const char *RELAY_TARGET;

static void relay_on_connection(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    struct raw *in = raw_new();
    assert_int_equal(uv_accept(server, (uv_stream_t *)&in->tcp), 0);
    struct raw *out = raw_new();
    in->other = out;
    out->other = in;
    in->flip_at = FX->relay_flip_at;
    raw_connect(out, RELAY_TARGET);
}

static void relay_start(const char *target, long flip_at)
{
    RELAY_TARGET = target;
    FX->relay_flip_at = flip_at;
    int port = free_port();
    snprintf(FX->relay_addr, sizeof(FX->relay_addr), "127.0.0.1:%d", port);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_init(&FX->loop, &FX->relay_listener);
    assert_int_equal(uv_tcp_bind(&FX->relay_listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&FX->relay_listener, 16, relay_on_connection), 0);
    FX->relay_open = true;
}

/* ---- fixture -------------------------------------------------------------- */

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    assert_true(sodium_init() >= 0);
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->big = malloc(BIG_LEN);
    assert_non_null(fx->big);
    for (size_t i = 0; i < BIG_LEN; i++) {
        fx->big[i] = (uint8_t)(i * 7 + (i >> 11));
    }
    FX = fx;
    *state = fx;
    return 0;
}

static void free_rs(struct rstream *rs)
{
    if (rs != NULL) {
        free(rs->rx);
        free(rs);
    }
}

/* Closes everything and checks that the loop has no handle left. */
static int teardown(void **state)
{
    struct fixture *fx = *state;
    for (size_t i = 0; i < fx->n_opened; i++) {
        rs_close(fx->opened[i]);
    }
    for (size_t i = 0; i < PEERS_MAX; i++) {
        peer_stop(&fx->peers[i]);
    }
    for (size_t i = 0; i < RAW_MAX; i++) {
        raw_close(&fx->raws[i]);
    }
    if (fx->relay_open) {
        uv_close((uv_handle_t *)&fx->relay_listener, NULL);
    }
    if (fx->mute_open) {
        uv_close((uv_handle_t *)&fx->mute, NULL);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (size_t i = 0; i < PEERS_MAX; i++) {
        for (size_t j = 0; j < fx->peers[i].n_accepted; j++) {
            free_rs(fx->peers[i].accepted[j]);
        }
        for (size_t j = 0; j < fx->peers[i].n_channels; j++) {
            free_rs(fx->peers[i].channels[j]);
        }
    }
    for (size_t i = 0; i < fx->n_opened; i++) {
        free_rs(fx->opened[i]);
    }
    free(fx->big);
    free(fx);
    FX = NULL;
    return 0;
}

/* Connect streams are freed by the test that made them (after teardown's
 * loop run has closed them). */
static struct creq *CREQS[8];
static size_t N_CREQS;

static struct creq *creq_new(void)
{
    struct creq *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    assert_true(N_CREQS < 8);
    CREQS[N_CREQS++] = c;
    return c;
}

static void creqs_close(void)
{
    for (size_t i = 0; i < N_CREQS; i++) {
        if (CREQS[i]->stream != NULL) {
            rs_close(CREQS[i]->stream);
        }
    }
}

static int teardown_all(void **state)
{
    creqs_close();
    int rv = teardown(state);
    for (size_t i = 0; i < N_CREQS; i++) {
        free_rs(CREQS[i]->stream);
        free(CREQS[i]);
    }
    N_CREQS = 0;
    return rv;
}

/* A and B trust each other; A connects to B; returns the request. */
static struct creq *link_up(struct peer *a, struct peer *b)
{
    struct creq *c = creq_new();
    assert_int_equal(connect_to(a, c, b->id, b->addr), 0);
    assert_true(run_until(creq_done, c));
    assert_int_equal(c->status, 0);
    return c;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_link_bytes_both_ways(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(a, b);
    trust(b, a);
    struct creq *c = link_up(a, b);
    assert_int_equal(b->n_accepted, 1);
    struct rstream *in = b->accepted[0];
    /* B's raft learns who connected from the authenticated handshake. */
    assert_int_equal(in->peer_id, 1);
    assert_string_equal(in->peer_addr, a->addr);

    /* A -> B: 3 MiB in one write (many records); B -> A: 100 KiB. */
    assert_int_equal(rs_write(c->stream, fx->big, BIG_LEN), 0);
    expect_rx(in, fx->big, BIG_LEN);
    assert_int_equal(rs_write(in, fx->big + 5, 100000), 0);
    expect_rx(c->stream, fx->big + 5, 100000);
    assert_int_equal(c->stream->write_status, 0);

    struct link_stats sa, sb;
    link_get_stats(&a->t, &sa);
    link_get_stats(&b->t, &sb);
    assert_int_equal(sa.links_out, 1);
    assert_int_equal(sb.links_in, 1);
    assert_int_equal(sa.bytes_sealed, BIG_LEN);
    assert_int_equal(sb.bytes_opened, BIG_LEN);
    assert_int_equal(sb.bytes_sealed, 100000 + 1); /* and the welcome byte */
    assert_int_equal(sa.bytes_opened, 100000);

    /* raft closes its end of the outgoing link: B's raft sees the end. */
    rs_close(c->stream);
    assert_true(run_until(rs_eof, in));
}

static void test_link_untrusted_server_refuses(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(a, b); /* B does not trust A */
    struct creq *c = creq_new();
    assert_int_equal(connect_to(a, c, 2, b->addr), 0);
    assert_true(run_until(creq_done, c));
    assert_int_equal(c->status, RAFT_NOCONNECTION);
    assert_int_equal(b->n_accepted, 0);
    struct link_stats sb;
    link_get_stats(&b->t, &sb);
    assert_int_equal(sb.refused_untrusted, 1);
    assert_int_equal(sb.links_in, 0);
}

static void test_link_untrusted_client_refuses(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(b, a); /* A does not trust B: it must not hand raft a link to B */
    struct creq *c = creq_new();
    assert_int_equal(connect_to(a, c, 2, b->addr), 0);
    assert_true(run_until(creq_done, c));
    assert_int_equal(c->status, RAFT_NOCONNECTION);
    struct link_stats sa;
    link_get_stats(&a->t, &sa);
    assert_int_equal(sa.refused_untrusted, 1);
    /* B never gets FINISH: no link reaches B's raft. */
    run_until_ms(NULL, NULL, 100);
    assert_int_equal(b->n_accepted, 0);
}

static void test_link_wrong_node_refused(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(a, b);
    trust(b, a);
    struct creq *c = creq_new();
    assert_int_equal(connect_to(a, c, 3, b->addr), 0); /* B is node 2 */
    assert_true(run_until(creq_done, c));
    assert_int_equal(c->status, RAFT_NOCONNECTION);
    assert_int_equal(b->n_accepted, 0);
}

static void test_link_no_key_refuses_both_ways(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *n = &fx->peers[1];
    peer_start(a, 1);
    peer_start_opts(n, 2, false, 0, 0); /* listens (raft starts) but has no key */
    trust(a, n);
    /* Out: refused at once, no callback (raft retries later). */
    struct creq *c = creq_new();
    assert_int_equal(connect_to(n, c, 1, a->addr), RAFT_NOCONNECTION);
    run_until_ms(NULL, NULL, 50);
    assert_false(c->done);
    assert_int_equal(a->n_accepted, 0);
    /* In: a keyed node cannot get a link to it. */
    struct creq *c2 = creq_new();
    assert_int_equal(connect_to(a, c2, 2, n->addr), 0);
    assert_true(run_until(creq_done, c2));
    assert_int_equal(c2->status, RAFT_NOCONNECTION);
    assert_int_equal(n->n_accepted, 0);
    struct link_stats sn;
    link_get_stats(&n->t, &sn);
    assert_int_equal(sn.refused_no_key, 2);
}

static void test_link_bad_key_config(void **state)
{
    (void)state;
    struct raft_uv_transport t;
    uint8_t pk[LINK_PUBLIC_LEN], sk[LINK_SECRET_LEN];
    crypto_sign_keypair(pk, sk);
    struct link_config cfg = {.secret_key = sk, .trusted = NULL};
    assert_int_equal(link_transport_init(&t, &FX->loop, &cfg), COALITION_E_INVALID_ARGUMENT);
    cfg.trusted = peer_trusts;
    sk[40] ^= 1; /* the public half does not match the seed */
    assert_int_equal(link_transport_init(&t, &FX->loop, &cfg), COALITION_E_INVALID_ARGUMENT);
    sk[40] ^= 1;
    assert_int_equal(link_transport_init(&t, &FX->loop, &cfg), 0);
    link_transport_close(&t); /* never started */
}

static void test_link_tampered_record_kills_only_that_link(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1], *c3 = &fx->peers[2];
    peer_start(a, 1);
    peer_start(b, 2);
    peer_start(c3, 3);
    trust(a, b);
    trust(b, a);
    trust(b, c3);
    trust(c3, b);
    /* A reaches B through the relay, which flips one bit in A's first data
     * record (after HELLO_C and FINISH, then a 4-byte length). */
    relay_start(b->addr, HELLO_C_BYTES + FINISH_BYTES + 4 + 20);
    struct creq *ca = creq_new();
    assert_int_equal(connect_to(a, ca, 2, fx->relay_addr), 0);
    assert_true(run_until(creq_done, ca));
    assert_int_equal(ca->status, 0); /* the handshake went through untouched */
    struct creq *cc = link_up(c3, b);
    assert_int_equal(b->n_accepted, 2);
    struct rstream *from_a = b->accepted[0]->peer_id == 1 ? b->accepted[0] : b->accepted[1];
    struct rstream *from_c = b->accepted[0]->peer_id == 3 ? b->accepted[0] : b->accepted[1];
    assert_int_equal(from_a->peer_id, 1);
    assert_int_equal(from_c->peer_id, 3);

    /* The tampered record is not delivered, B closes that link. */
    assert_int_equal(rs_write(ca->stream, fx->big, 1000), 0);
    assert_true(run_until(rs_eof, from_a));
    assert_int_equal(from_a->rx_len, 0);
    struct link_stats sb;
    link_get_stats(&b->t, &sb);
    assert_int_equal(sb.records_bad, 1);
    /* A's raft finds out on a later write, as with a dead TCP peer. */
    for (int i = 0; i < 50 && ca->stream->write_status == 0; i++) {
        rs_write(ca->stream, fx->big, 1000);
        run_until_ms(rs_write_failed, ca->stream, 100);
    }
    assert_true(ca->stream->write_status < 0);

    /* C's link to B is untouched. */
    assert_int_equal(rs_write(cc->stream, fx->big, 200000), 0);
    expect_rx(from_c, fx->big, 200000);
    assert_false(from_c->eof);
}

static void test_link_tampered_handshake_refused(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(a, b);
    trust(b, a);
    /* A bit of A's ephemeral key in HELLO_C: B signs a transcript A never
     * sent, so A refuses B's signature. */
    relay_start(b->addr, 8 + 32 + 5);
    struct creq *c1 = creq_new();
    assert_int_equal(connect_to(a, c1, 2, fx->relay_addr), 0);
    assert_true(run_until(creq_done, c1));
    assert_int_equal(c1->status, RAFT_NOCONNECTION);
    /* A bit of A's signature in FINISH: B refuses it. */
    fx->relay_flip_at = HELLO_C_BYTES + 10;
    struct creq *c2 = creq_new();
    assert_int_equal(connect_to(a, c2, 2, fx->relay_addr), 0);
    assert_true(run_until(creq_done, c2));
    assert_int_equal(c2->status, RAFT_NOCONNECTION);
    run_until_ms(NULL, NULL, 50);
    assert_int_equal(b->n_accepted, 0);
    struct link_stats sa, sb;
    link_get_stats(&a->t, &sa);
    link_get_stats(&b->t, &sb);
    assert_int_equal(sa.links_out, 0);
    assert_int_equal(sb.links_in, 0);
    assert_true(sa.handshake_failed >= 1); /* A: bad signature from B */
    assert_true(sb.handshake_failed >= 1); /* B: bad signature from A */
    /* Untouched, the same nodes link at once. */
    link_up(a, b);
    assert_int_equal(b->n_accepted, 1);
}

static void test_link_garbage_and_silent_clients_do_not_block(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start_opts(b, 2, true, 1500 /* ms */, 4 /* pending */);
    trust(a, b);
    trust(b, a);
    /* Six silent clients (more than B's 4 pending slots) and one that sends
     * garbage. */
    struct raw *silent[6];
    for (int i = 0; i < 6; i++) {
        silent[i] = raw_new();
        raw_connect(silent[i], b->addr);
        assert_true(run_until(raw_connected, silent[i]));
    }
    run_until_ms(NULL, NULL, 30);
    struct raw *garbage = raw_new();
    raw_connect(garbage, b->addr);
    assert_true(run_until(raw_connected, garbage));
    char junk[400];
    memset(junk, 'G', sizeof(junk));
    raw_send(garbage, junk, sizeof(junk));
    uint64_t t0 = now_ms();
    assert_true(run_until(raw_eof, garbage));
    /* At once, for its garbage, not at the 1.5 s timeout. */
    assert_true(now_ms() - t0 < 1000);
    struct link_stats sb;
    link_get_stats(&b->t, &sb);
    assert_int_equal(sb.handshake_failed, 1);

    /* A good node gets its link at once, well before any timeout. */
    t0 = now_ms();
    struct creq *c = link_up(a, b);
    assert_true(c->done_at_ms - t0 < 1000);
    assert_int_equal(rs_write(c->stream, "ping", 4), 0);
    expect_rx(b->accepted[0], (const uint8_t *)"ping", 4);

    /* The silent ones are gone by their deadline; the oldest were evicted. */
    for (int i = 0; i < 6; i++) {
        assert_true(run_until_ms(raw_eof, silent[i], 5000));
    }
    link_get_stats(&b->t, &sb);
    assert_true(sb.pending_evicted >= 2);
    assert_true(sb.handshake_timeout >= 1);
    assert_int_equal(sb.handshake_failed, 1); /* the garbage */
    assert_int_equal(sb.links_in, 1);
    assert_false(b->accepted[0]->eof); /* the good link lives on */
    assert_int_equal(link_conn_count(&b->t), 1);
}

/* The kernel completes the TCP handshake; nobody accepts or answers. */
static void mute_on_connection(uv_stream_t *server, int status)
{
    (void)server;
    (void)status;
}

static void mute_start(char *addr, size_t len)
{
    int port = free_port();
    snprintf(addr, len, "127.0.0.1:%d", port);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_init(&FX->loop, &FX->mute);
    FX->mute_open = true;
    assert_int_equal(uv_tcp_bind(&FX->mute, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&FX->mute, 4, mute_on_connection), 0);
}

static void test_link_handshake_timeout_on_connect(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0];
    peer_start_opts(a, 1, true, 300, 0);
    /* Something that takes TCP connections and never answers. */
    char addr[64];
    mute_start(addr, sizeof(addr));
    struct creq *c = creq_new();
    uv_update_time(&FX->loop); /* the timer starts from the loop's time */
    uint64_t t0 = now_ms();
    assert_int_equal(connect_to(a, c, 2, addr), 0);
    assert_true(run_until(creq_done, c));
    assert_int_equal(c->status, RAFT_NOCONNECTION);
    assert_true(now_ms() - t0 >= 250);
    struct link_stats sa_;
    link_get_stats(&a->t, &sa_);
    assert_int_equal(sa_.handshake_timeout, 1);
}

static void test_link_nothing_listening(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0];
    peer_start(a, 1);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    struct creq *c = creq_new();
    assert_int_equal(connect_to(a, c, 2, addr), 0);
    assert_true(run_until(creq_done, c));
    assert_int_equal(c->status, RAFT_NOCONNECTION);
    assert_int_equal(link_conn_count(&a->t), 0);
    assert_int_equal(connect_to(a, c, 2, "not-an-address"), RAFT_NOCONNECTION);
}

static void test_link_close_cancels_connects_and_handshakes(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(a, b);
    trust(b, a);
    struct creq *up = link_up(a, b); /* one link up */
    /* A connect stuck in its handshake: to a listener that never accepts. */
    char addr[64];
    mute_start(addr, sizeof(addr));
    struct creq *stuck = creq_new();
    assert_int_equal(connect_to(a, stuck, 3, addr), 0);
    /* And an incoming handshake in progress at A (a silent client). */
    struct raw *silent = raw_new();
    raw_connect(silent, a->addr);
    assert_true(run_until(raw_connected, silent));
    run_until_ms(NULL, NULL, 50);
    assert_int_equal(link_conn_count(&a->t), 3);
    assert_false(stuck->done);

    /* raft_uv closes: its streams first, then the transport. */
    rs_close(up->stream);
    size_t before = fx->connect_cbs;
    a->t.close(&a->t, on_transport_closed);
    assert_false(stuck->done); /* never from inside close() */
    assert_true(run_until(peer_closed, a));
    assert_true(stuck->done);
    assert_int_equal(stuck->status, RAFT_CANCELED);
    /* The connect callback came before the transport's close callback. */
    assert_int_equal(a->connect_cbs_before_close, before + 1);
    assert_int_equal(link_conn_count(&a->t), 0);
    assert_true(run_until(raw_eof, silent));
    assert_true(run_until(rs_eof, b->accepted[0]));
}

#define WRITES 16

static void test_link_backpressure_reaches_the_writer(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(a, b);
    trust(b, a);
    struct creq *c = link_up(a, b);
    struct rstream *in = b->accepted[0];
    /* B's raft stops reading; A's raft writes 16 x 3 MiB. */
    uv_read_stop(in->s);
    in->reading = false;
    for (int i = 0; i < WRITES; i++) {
        assert_int_equal(rs_write(c->stream, fx->big, BIG_LEN), 0);
    }
    run_until_ms(NULL, NULL, 500);
    /* The links' queues are bounded, so most of it still waits in A's raft
     * stream (kernel buffers hold some megabytes at most). */
    assert_int_equal(in->rx_len, 0);
    assert_true(c->stream->s->write_queue_size >= (size_t)(WRITES - 6) * BIG_LEN);
    assert_true(c->stream->writes_done <= 6);
    /* Reading again, everything arrives, in order. */
    assert_int_equal(uv_read_start(in->s, rs_alloc, rs_read), 0);
    in->reading = true;
    struct rx_wait w = {in, WRITES * BIG_LEN};
    assert_true(run_until_ms(rx_has, &w, 30000));
    assert_int_equal(in->rx_len, WRITES * BIG_LEN);
    for (int i = 0; i < WRITES; i++) {
        assert_memory_equal(in->rx + (size_t)i * BIG_LEN, fx->big, BIG_LEN);
    }
    assert_int_equal(c->stream->writes_done, WRITES);
    assert_int_equal(c->stream->write_status, 0);
}

/* ---- forwarding channels -------------------------------------------------- */

static void test_link_channel_bytes_both_ways(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1];
    peer_start(a, 1);
    peer_start(b, 2);
    trust(a, b);
    trust(b, a);
    /* Written at once, before the handshake: held, then sealed. */
    struct rstream *out = channel_open(a, 2, b->addr);
    assert_int_equal(rs_write(out, fx->big, BIG_LEN), 0);
    for (int i = 0; i < 100 && b->n_channels == 0; i++) {
        run_until_ms(NULL, NULL, 20);
    }
    assert_int_equal(b->n_channels, 1);
    struct rstream *in = b->channels[0];
    assert_int_equal(in->peer_id, 1); /* from the authenticated handshake */
    expect_rx(in, fx->big, BIG_LEN);
    assert_int_equal(rs_write(in, fx->big + 9, 70000), 0);
    expect_rx(out, fx->big + 9, 70000);
    /* A channel is not a raft link: raft's accept never saw it. */
    assert_int_equal(b->n_accepted, 0);
    struct link_stats sa, sb;
    link_get_stats(&a->t, &sa);
    link_get_stats(&b->t, &sb);
    assert_int_equal(sa.channels_out, 1);
    assert_int_equal(sb.channels_in, 1);
    assert_int_equal(sa.links_out, 0);
    assert_int_equal(sb.links_in, 0);
    assert_int_equal(sa.bytes_sealed, BIG_LEN);
    assert_int_equal(sb.bytes_opened, BIG_LEN);
    /* Closing our end ends the channel at the other node. */
    rs_close(out);
    assert_true(run_until(rs_eof, in));
}

/* The channel's fd reads EOF and the other node hands nothing over. */
static void expect_channel_refused(struct peer *from, raft_id want_id, struct peer *to)
{
    struct rstream *out = channel_open(from, want_id, to->addr);
    assert_int_equal(rs_write(out, "frame", 5), 0);
    assert_true(run_until(rs_eof, out));
    assert_int_equal(out->rx_len, 0);
    run_until_ms(NULL, NULL, 50);
    assert_int_equal(to->n_channels, 0);
    assert_int_equal(to->n_accepted, 0);
}

static void test_link_channel_refusals(void **state)
{
    struct fixture *fx = *state;
    struct peer *a = &fx->peers[0], *b = &fx->peers[1], *x = &fx->peers[2];
    peer_start(a, 1);
    peer_start(b, 2);
    peer_start(x, 3); /* trusted by nobody */
    trust(a, b);
    trust(b, a);
    trust(x, b);
    expect_channel_refused(x, 2, b); /* B does not trust X */
    expect_channel_refused(a, 3, b); /* B is node 2, not 3 */
    struct link_stats sb;
    link_get_stats(&b->t, &sb);
    assert_int_equal(sb.refused_untrusted, 1);
    assert_int_equal(sb.channels_in, 0);
    /* A node that takes no channels (no acceptor) refuses them too. */
    fx->no_channel_accept = true;
    struct peer *n = &fx->peers[3];
    peer_start(n, 4);
    trust(n, a);
    trust(a, n);
    expect_channel_refused(a, 4, n);
    /* Without a key there is no channel at all. */
    struct peer *k = &fx->peers[3];
    peer_stop(k);
    peer_start_opts(k, 4, false, 0, 0);
    int fd = -1;
    assert_int_equal(link_channel_open(&k->t, 1, a->addr, &fd), COALITION_E_UNAVAILABLE);
    assert_int_equal(link_channel_open(&a->t, 1, "not-an-address", &fd),
                     COALITION_E_INVALID_ARGUMENT);
    /* And a good channel still works next to all that. */
    struct rstream *out = channel_open(a, 2, b->addr);
    assert_int_equal(rs_write(out, "ping", 4), 0);
    for (int i = 0; i < 100 && b->n_channels == 0; i++) {
        run_until_ms(NULL, NULL, 20);
    }
    assert_int_equal(b->n_channels, 1);
    expect_rx(b->channels[0], (const uint8_t *)"ping", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_link_bytes_both_ways, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_untrusted_server_refuses, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_untrusted_client_refuses, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_wrong_node_refused, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_no_key_refuses_both_ways, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_bad_key_config, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_tampered_record_kills_only_that_link, setup,
                                        teardown_all),
        cmocka_unit_test_setup_teardown(test_link_tampered_handshake_refused, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_garbage_and_silent_clients_do_not_block, setup,
                                        teardown_all),
        cmocka_unit_test_setup_teardown(test_link_handshake_timeout_on_connect, setup,
                                        teardown_all),
        cmocka_unit_test_setup_teardown(test_link_nothing_listening, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_close_cancels_connects_and_handshakes, setup,
                                        teardown_all),
        cmocka_unit_test_setup_teardown(test_link_backpressure_reaches_the_writer, setup,
                                        teardown_all),
        cmocka_unit_test_setup_teardown(test_link_channel_bytes_both_ways, setup, teardown_all),
        cmocka_unit_test_setup_teardown(test_link_channel_refusals, setup, teardown_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
