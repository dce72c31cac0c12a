/* Unit tests of node/forward.c on a real libuv loop and real TCP on
 * loopback: a small leader stand-in in this file accepts connections,
 * decodes requests (checking that they are marked forwarded) and answers,
 * holds, reorders, drops or garbles them as each test needs.  Covered:
 * answers in and out of order, lost connections, nothing listening, bad
 * addresses, timeouts and late answers, a moving leader, BUSY, protocol
 * errors, closing with requests in flight or from inside a callback, and
 * that no callback ever runs inside forwarder_send. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "errors.h"
#include "forward.h"
#include "frame.h"
#include "ports.h"

/* ---- the leader stand-in ------------------------------------------------ */

enum tserver_mode {
    T_ANSWER,       /* answer each request at once */
    T_HOLD,         /* keep requests unanswered (tserver_release answers them) */
    T_REVERSE,      /* hold until `release_at` are held, then answer newest first */
    T_CLOSE,        /* close the connection once `close_after` requests arrived */
    T_ID0,          /* answer with id 0 (a protocol error) */
    T_GARBAGE,      /* send a frame with length 0 */
    T_ANSWER_FIRST, /* answer the first `answer_first` requests, hold the rest */
    T_NOREAD,       /* accept, never read */
};

struct tserver;

struct tconn {
    uv_tcp_t tcp; /* first */
    struct tserver *s;
    struct frame_decoder dec;
    struct tconn *next;
    bool closed;
};

struct held {
    struct tconn *c;
    uint64_t id;
    char msg[64];
};

struct tserver {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    int port;
    char addr[64];
    enum tserver_mode mode;
    size_t release_at, close_after, answer_first;
    size_t received, connections, eofs, not_forwarded;
    struct tconn *conns;
    struct held *held;
    size_t n_held, cap_held;
};

struct twrite {
    uv_write_t w;
    uint8_t *buf;
};

static void twrite_done(uv_write_t *w, int status)
{
    (void)status;
    struct twrite *tw = (struct twrite *)w;
    free(tw->buf);
    free(tw);
}

static void tconn_write(struct tconn *c, uint8_t *buf, size_t len)
{
    if (c->closed) {
        free(buf);
        return;
    }
    struct twrite *tw = calloc(1, sizeof(*tw));
    assert_non_null(tw);
    tw->buf = buf;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&tw->w, (uv_stream_t *)&c->tcp, &b, 1, twrite_done) != 0) {
        free(buf);
        free(tw);
    }
}

static void tconn_answer(struct tconn *c, uint64_t id, const char *msg)
{
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    resp.id = id;
    resp.code = 0;
    resp.message = (char *)msg;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(frame_pack_response(&resp, &buf, &len), 0);
    tconn_write(c, buf, len);
}

static void tconn_on_close(uv_handle_t *h)
{
    struct tconn *c = (struct tconn *)h;
    struct tserver *s = c->s;
    for (struct tconn **p = &s->conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    size_t j = 0;
    for (size_t i = 0; i < s->n_held; i++) {
        if (s->held[i].c != c) {
            s->held[j++] = s->held[i];
        }
    }
    s->n_held = j;
    frame_decoder_close(&c->dec);
    free(c);
}

static void tconn_close(struct tconn *c)
{
    if (!c->closed) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, tconn_on_close);
    }
}

static void tserver_hold(struct tserver *s, struct tconn *c, uint64_t id, const char *msg)
{
    if (s->n_held == s->cap_held) {
        s->cap_held = s->cap_held > 0 ? s->cap_held * 2 : 64;
        s->held = realloc(s->held, s->cap_held * sizeof(*s->held));
        assert_non_null(s->held);
    }
    struct held *h = &s->held[s->n_held++];
    h->c = c;
    h->id = id;
    snprintf(h->msg, sizeof(h->msg), "%s", msg);
}

/* Answers every held request, oldest first (or newest first). */
static void tserver_release(struct tserver *s, bool newest_first)
{
    for (size_t i = 0; i < s->n_held; i++) {
        struct held *h = &s->held[newest_first ? s->n_held - 1 - i : i];
        tconn_answer(h->c, h->id, h->msg);
    }
    s->n_held = 0;
}

static void tconn_on_request(struct tconn *c, const Coalition__Request *req)
{
    struct tserver *s = c->s;
    s->received++;
    if (!req->forwarded) {
        s->not_forwarded++;
    }
    const char *msg = req->txn != NULL ? req->txn->txn_id : "status";
    switch (s->mode) {
    case T_ANSWER:
        tconn_answer(c, req->id, msg);
        break;
    case T_HOLD:
        tserver_hold(s, c, req->id, msg);
        break;
    case T_REVERSE:
        tserver_hold(s, c, req->id, msg);
        if (s->n_held == s->release_at) {
            tserver_release(s, true);
        }
        break;
    case T_CLOSE:
        if (s->received >= s->close_after) {
            tconn_close(c);
        }
        break;
    case T_ID0:
        tconn_answer(c, 0, "BAD_FRAME");
        break;
    case T_GARBAGE: {
        uint8_t *zero = calloc(1, FRAME_HEADER_LEN);
        assert_non_null(zero);
        tconn_write(c, zero, FRAME_HEADER_LEN);
        break;
    }
    case T_NOREAD:
        break;
    case T_ANSWER_FIRST:
        if (s->received <= s->answer_first) {
            tconn_answer(c, req->id, msg);
        } else {
            tserver_hold(s, c, req->id, msg);
        }
        break;
    }
}

static void tconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

static void tconn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct tconn *c = (struct tconn *)stream;
    if (nread < 0) {
        if (nread == UV_EOF) {
            c->s->eofs++;
        }
        tconn_close(c);
    } else if (nread > 0 && !c->closed) {
        assert_int_equal(frame_decoder_feed(&c->dec, buf->base, (size_t)nread), 0);
        const uint8_t *payload = NULL;
        size_t len = 0;
        while (!c->closed && frame_decoder_next(&c->dec, &payload, &len) == 1) {
            Coalition__Request *req = NULL;
            assert_int_equal(frame_unpack_request(payload, len, &req), 0);
            tconn_on_request(c, req);
            frame_free_request(req);
        }
    }
    free(buf->base);
}

static void tserver_on_connection(uv_stream_t *listener, int status)
{
    struct tserver *s = listener->data;
    assert_int_equal(status, 0);
    struct tconn *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->s = s;
    frame_decoder_init(&c->dec, FRAME_PAYLOAD_MAX);
    assert_int_equal(uv_tcp_init(s->loop, &c->tcp), 0);
    c->next = s->conns;
    s->conns = c;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
    s->connections++;
    if (s->mode != T_NOREAD) {
        assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, tconn_alloc, tconn_on_read), 0);
    }
}

/* Listens on 127.0.0.1, port chosen by the kernel. */
static void tserver_start(struct tserver *s, uv_loop_t *loop, enum tserver_mode mode)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->mode = mode;
    struct sockaddr_in sa;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, tserver_on_connection), 0);
    struct sockaddr_storage name;
    int namelen = sizeof(name);
    assert_int_equal(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name, &namelen), 0);
    s->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
    s->listening = true;
}

static void tserver_stop(struct tserver *s)
{
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, NULL);
    }
    for (struct tconn *c = s->conns; c != NULL; c = c->next) {
        tconn_close(c);
    }
}

/* ---- fixture ------------------------------------------------------------ */

struct rec;

struct fx {
    uv_loop_t loop;
    uv_timer_t guard; /* keeps UV_RUN_ONCE from blocking while we wait */
    struct forwarder f;
    bool f_open, f_closed;
    size_t f_closed_with_calls; /* callbacks run when the close callback ran */
    size_t f_closed_inflight;   /* forwarder_inflight then: must be 0 */
    struct tserver a, b;
    bool in_send;
    size_t cb_in_send; /* callbacks that ran inside forwarder_send: must stay 0 */
    size_t calls;      /* callbacks so far */
    size_t late_calls; /* a second callback for one request: must stay 0 */
    /* Optional actions from inside a callback. */
    bool close_in_cb;
    bool send_in_cb;
    struct rec *extra;
};

struct rec {
    struct forward_req req;
    struct fx *fx;
    size_t index;
    int called;
    int code;
    int resp_code;
    uint64_t resp_id;
    size_t order;
    char msg[64];
    char want[64];
};

static void guard_tick(uv_timer_t *t)
{
    (void)t;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->guard), 0);
    *state = fx;
    return 0;
}

static void fx_forwarder_closed(struct forwarder *f)
{
    struct fx *fx = (struct fx *)((char *)f - offsetof(struct fx, f));
    fx->f_closed = true;
    fx->f_closed_with_calls = fx->calls;
    fx->f_closed_inflight = forwarder_inflight(f);
}

static void fx_start(struct fx *fx, uint64_t timeout_ms)
{
    assert_int_equal(forwarder_init(&fx->f, &fx->loop, timeout_ms), 0);
    fx->f_open = true;
}

static void fx_close_forwarder(struct fx *fx)
{
    if (fx->f_open) {
        fx->f_open = false;
        forwarder_close(&fx->f, fx_forwarder_closed);
    }
}

static uint64_t now_ms(struct fx *fx)
{
    uv_update_time(&fx->loop);
    return uv_now(&fx->loop);
}

/* Runs the loop until *done (or a generous limit, which fails the test). */
static void run_until(struct fx *fx, bool (*done)(struct fx *fx, void *arg), void *arg,
                      uint64_t limit_ms)
{
    uint64_t start = now_ms(fx);
    uv_timer_start(&fx->guard, guard_tick, 5, 5);
    while (!done(fx, arg)) {
        if (now_ms(fx) - start > limit_ms) {
            uv_timer_stop(&fx->guard);
            fail_msg("condition not reached within %llu ms", (unsigned long long)limit_ms);
        }
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&fx->guard);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(struct fx *fx, uint64_t ms)
{
    uint64_t start = now_ms(fx);
    uv_timer_start(&fx->guard, guard_tick, 5, 5);
    while (now_ms(fx) - start < ms) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&fx->guard);
}

static bool calls_reach(struct fx *fx, void *arg)
{
    return fx->calls >= *(size_t *)arg;
}

static bool received_reach(struct fx *fx, void *arg)
{
    return fx->a.received >= *(size_t *)arg;
}

static bool forwarder_is_closed(struct fx *fx, void *arg)
{
    (void)arg;
    return fx->f_closed;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    fx_close_forwarder(fx);
    tserver_stop(&fx->a);
    tserver_stop(&fx->b);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&fx->loop);
    free(fx->a.held);
    free(fx->b.held);
    free(fx->extra);
    free(fx);
    assert_int_equal(rv, 0); /* every handle and request released */
    return 0;
}

static void rec_cb(struct forward_req *req, int code, const Coalition__Response *resp)
{
    struct rec *r = req->data;
    struct fx *fx = r->fx;
    if (fx->in_send) {
        fx->cb_in_send++;
    }
    if (r->called++ > 0) {
        fx->late_calls++;
        return;
    }
    r->code = code;
    r->order = fx->calls++;
    if (code == 0) {
        r->resp_id = resp->id;
        r->resp_code = resp->code;
        snprintf(r->msg, sizeof(r->msg), "%s", resp->message);
    } else if (resp != NULL) {
        fx->late_calls++; /* a failure carries no response */
    }
    if (fx->close_in_cb) {
        fx->close_in_cb = false;
        fx_close_forwarder(fx);
    }
    if (fx->send_in_cb && fx->extra != NULL) {
        fx->send_in_cb = false;
        Coalition__Request m = COALITION__REQUEST__INIT;
        Coalition__StatusRequest st = COALITION__STATUS_REQUEST__INIT;
        m.op_case = COALITION__REQUEST__OP_STATUS;
        m.status = &st;
        fx->extra->fx = fx;
        fx->extra->req.data = fx->extra;
        fx->in_send = true;
        forwarder_send(&fx->f, fx->a.addr[0] != '\0' ? fx->a.addr : "127.0.0.1:1", &m,
                       &fx->extra->req, rec_cb);
        fx->in_send = false;
    }
}

static struct rec *recs_new(struct fx *fx, size_t n)
{
    struct rec *r = calloc(n, sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) {
        r[i].fx = fx;
        r[i].index = i;
        r[i].req.data = &r[i];
    }
    return r;
}

/* Forwards an award whose txn id is "t<index>" and checks that the caller's
 * message is left as it was. */
static void send_rec(struct fx *fx, const char *addr, struct rec *r)
{
    snprintf(r->want, sizeof(r->want), "t%zu", r->index);
    Coalition__Txn txn = COALITION__TXN__INIT;
    txn.kind = COALITION__TXN_KIND__TXN_AWARD;
    txn.partner = "coffee";
    txn.txn_id = r->want;
    txn.member = "alice";
    txn.points = 5;
    Coalition__Request m = COALITION__REQUEST__INIT;
    m.id = 777;
    m.op_case = COALITION__REQUEST__OP_TXN;
    m.txn = &txn;
    size_t calls = fx->calls;
    fx->in_send = true;
    forwarder_send(&fx->f, addr, &m, &r->req, rec_cb);
    fx->in_send = false;
    assert_int_equal(fx->calls, calls);
    assert_int_equal(r->called, 0);
    assert_int_equal(m.id, 777);
    assert_false(m.forwarded);
    assert_ptr_equal(m.txn, &txn);
}

static void send_all(struct fx *fx, const char *addr, struct rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        send_rec(fx, addr, &r[i]);
    }
}

static void wait_calls(struct fx *fx, size_t n, uint64_t limit_ms)
{
    run_until(fx, calls_reach, &n, limit_ms);
}

static void check_answered(struct rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].called, 1);
        assert_int_equal(r[i].code, 0);
        assert_int_equal(r[i].resp_code, 0);
        assert_string_equal(r[i].msg, r[i].want);
        assert_true(r[i].resp_id == r[i].req.id); /* the forwarder's id */
    }
}

static void check_failed(struct rec *r, size_t n, int code)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].called, 1);
        assert_int_equal(r[i].code, code);
    }
}

static void check_clean(struct fx *fx)
{
    assert_int_equal(fx->cb_in_send, 0);
    assert_int_equal(fx->late_calls, 0);
    assert_int_equal(fx->f_closed_inflight, 0);
    assert_int_equal(fx->a.not_forwarded, 0);
    assert_int_equal(fx->b.not_forwarded, 0);
}

/* ---- tests -------------------------------------------------------------- */

static void test_forward_one_request(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, 2000);
    tserver_start(&fx->a, &fx->loop, T_ANSWER);
    struct rec *r = recs_new(fx, 1);
    send_rec(fx, fx->a.addr, r);
    assert_int_equal(forwarder_inflight(&fx->f), 1);
    wait_calls(fx, 1, 2000);
    check_answered(r, 1);
    assert_int_not_equal(r->req.id, 777);
    assert_int_equal(fx->a.received, 1);
    assert_int_equal(forwarder_inflight(&fx->f), 0);
    check_clean(fx);
    free(r);
}

static void test_forward_pipelined_out_of_order(void **state)
{
    struct fx *fx = *state;
    enum { N = 1000 };
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_REVERSE);
    fx->a.release_at = N;
    struct rec *r = recs_new(fx, N);
    send_all(fx, fx->a.addr, r, N);
    assert_int_equal(forwarder_inflight(&fx->f), N);
    wait_calls(fx, N, 5000);
    check_answered(r, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(r[i].order, N - 1 - i); /* newest answered first */
    }
    assert_int_equal(fx->a.connections, 1);
    assert_int_equal(forwarder_inflight(&fx->f), 0);
    check_clean(fx);
    free(r);
}

static void test_forward_connection_lost_then_reconnects(void **state)
{
    struct fx *fx = *state;
    enum { N = 10 };
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_CLOSE);
    fx->a.close_after = N;
    struct rec *r = recs_new(fx, N + 1);
    uint64_t start = now_ms(fx);
    send_all(fx, fx->a.addr, r, N);
    wait_calls(fx, N, 2000);
    assert_true(now_ms(fx) - start < 1000); /* not the timeout */
    check_failed(r, N, COALITION_E_UNAVAILABLE);
    assert_int_equal(forwarder_inflight(&fx->f), 0);

    fx->a.mode = T_ANSWER;
    send_rec(fx, fx->a.addr, &r[N]);
    wait_calls(fx, N + 1, 2000);
    check_answered(&r[N], 1);
    assert_int_equal(fx->a.connections, 2);
    check_clean(fx);
    free(r);
}

static void test_forward_nothing_listening(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, 5000);
    /* A port that was free a moment ago, below the ephemeral range (so not
     * the source port of the connection to it). */
    unsigned port = ports_free();
    assert_true(port != 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);

    struct rec *r = recs_new(fx, 3);
    uint64_t start = now_ms(fx);
    send_all(fx, addr, r, 3);
    wait_calls(fx, 3, 2000);
    assert_true(now_ms(fx) - start < 1000);
    check_failed(r, 3, COALITION_E_UNAVAILABLE);
    assert_int_equal(forwarder_inflight(&fx->f), 0);
    check_clean(fx);
    free(r);
}

static void test_forward_bad_address(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, 5000);
    static const char *const bad[] = {
        "",
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "[::1",
        "leader.example:7400",
    };
    enum { N = sizeof(bad) / sizeof(bad[0]) };
    struct rec *r = recs_new(fx, N);
    uint64_t start = now_ms(fx);
    for (size_t i = 0; i < N; i++) {
        send_rec(fx, bad[i], &r[i]);
    }
    wait_calls(fx, N, 2000);
    assert_true(now_ms(fx) - start < 1000);
    check_failed(r, N, COALITION_E_UNAVAILABLE);
    check_clean(fx);
    free(r);
}

static void test_forward_timeout_and_late_answer(void **state)
{
    struct fx *fx = *state;
    enum { N = 3 };
    fx_start(fx, 200);
    tserver_start(&fx->a, &fx->loop, T_HOLD);
    struct rec *r = recs_new(fx, N + 1);
    uint64_t start = now_ms(fx);
    send_all(fx, fx->a.addr, r, N);
    wait_calls(fx, N, 3000);
    uint64_t took = now_ms(fx) - start;
    assert_true(took >= 190);
    assert_true(took < 2000); /* the 200 ms timeout, not the 3 s wait */
    check_failed(r, N, COALITION_E_UNAVAILABLE);
    assert_int_equal(fx->a.received, N);
    assert_int_equal(forwarder_inflight(&fx->f), 0);

    /* The answers come late: dropped, no second callback. */
    tserver_release(&fx->a, false);
    run_for(fx, 100);
    assert_int_equal(fx->calls, N);
    check_failed(r, N, COALITION_E_UNAVAILABLE);

    /* The connection itself still works. */
    fx->a.mode = T_ANSWER;
    send_rec(fx, fx->a.addr, &r[N]);
    wait_calls(fx, N + 1, 2000);
    check_answered(&r[N], 1);
    assert_int_equal(fx->a.connections, 1);
    check_clean(fx);
    free(r);
}

static void test_forward_switch_address(void **state)
{
    struct fx *fx = *state;
    enum { N = 5 };
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_HOLD);
    tserver_start(&fx->b, &fx->loop, T_ANSWER);
    struct rec *r = recs_new(fx, N + 1);
    send_all(fx, fx->a.addr, r, N);
    size_t n = N;
    run_until(fx, received_reach, &n, 2000);
    assert_int_equal(fx->calls, 0);

    /* The leader moved to b: a's requests fail, b's is answered. */
    send_rec(fx, fx->b.addr, &r[N]);
    wait_calls(fx, N + 1, 2000);
    check_failed(r, N, COALITION_E_UNAVAILABLE);
    check_answered(&r[N], 1);
    assert_int_equal(fx->b.received, 1);
    assert_int_equal(fx->b.connections, 1);
    /* a sees its connection closed; its held answers go nowhere. */
    run_for(fx, 50);
    assert_int_equal(fx->a.eofs, 1);
    assert_int_equal(fx->a.n_held, 0);
    check_clean(fx);
    free(r);
}

static void test_forward_close_with_requests_in_flight(void **state)
{
    struct fx *fx = *state;
    enum { N = 100 };
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_HOLD);
    struct rec *r = recs_new(fx, N);
    send_all(fx, fx->a.addr, r, N);
    size_t n = N;
    run_until(fx, received_reach, &n, 2000);
    fx_close_forwarder(fx);
    assert_int_equal(fx->calls, 0); /* not inside forwarder_close */
    run_until(fx, forwarder_is_closed, NULL, 2000);
    check_failed(r, N, COALITION_E_UNAVAILABLE);
    assert_int_equal(fx->f_closed_with_calls, N); /* every request before the close callback */
    check_clean(fx);
    free(r);
}

static void test_forward_close_while_connecting(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_ANSWER);
    struct rec *r = recs_new(fx, 2);
    send_all(fx, fx->a.addr, r, 2);
    fx_close_forwarder(fx); /* the connect has not completed */
    run_until(fx, forwarder_is_closed, NULL, 2000);
    check_failed(r, 2, COALITION_E_UNAVAILABLE);
    check_clean(fx);
    free(r);
}

static void test_forward_close_inside_callback(void **state)
{
    struct fx *fx = *state;
    enum { N = 5 };
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_ANSWER_FIRST);
    fx->a.answer_first = 1;
    struct rec *r = recs_new(fx, N);
    fx->extra = recs_new(fx, 1);
    fx->close_in_cb = true; /* in the first callback */
    fx->send_in_cb = true;  /* and then send once more */
    send_all(fx, fx->a.addr, r, N);
    run_until(fx, forwarder_is_closed, NULL, 2000);
    check_answered(r, 1);
    check_failed(&r[1], N - 1, COALITION_E_UNAVAILABLE);
    /* Sent while closing: answered UNAVAILABLE before the close callback. */
    check_failed(fx->extra, 1, COALITION_E_UNAVAILABLE);
    assert_int_equal(fx->f_closed_with_calls, N + 1);
    check_clean(fx);
    free(r);
}

static void test_forward_close_inside_failure_callback(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, 5000);
    struct rec *r = recs_new(fx, 3);
    fx->close_in_cb = true;
    send_all(fx, "127.0.0.1:1", r, 3); /* nothing listens on port 1 */
    run_until(fx, forwarder_is_closed, NULL, 2000);
    check_failed(r, 3, COALITION_E_UNAVAILABLE);
    check_clean(fx);
    free(r);
}

static void test_forward_protocol_error(void **state)
{
    struct fx *fx = *state;
    enum { N = 3 };
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_ID0);
    struct rec *r = recs_new(fx, N + 2);
    send_all(fx, fx->a.addr, r, N);
    wait_calls(fx, N, 2000);
    check_failed(r, N, COALITION_E_UNAVAILABLE);

    /* A garbled frame also ends the connection. */
    fx->a.mode = T_GARBAGE;
    send_rec(fx, fx->a.addr, &r[N]);
    wait_calls(fx, N + 1, 2000);
    check_failed(&r[N], 1, COALITION_E_UNAVAILABLE);

    fx->a.mode = T_ANSWER;
    send_rec(fx, fx->a.addr, &r[N + 1]);
    wait_calls(fx, N + 2, 2000);
    check_answered(&r[N + 1], 1);
    assert_int_equal(fx->a.connections, 3);
    check_clean(fx);
    free(r);
}

static void test_forward_busy(void **state)
{
    struct fx *fx = *state;
    enum { N = FORWARD_INFLIGHT_MAX + 2 };
    fx_start(fx, 60000);
    tserver_start(&fx->a, &fx->loop, T_HOLD);
    struct rec *r = recs_new(fx, N);
    send_all(fx, fx->a.addr, r, N);
    assert_int_equal(forwarder_inflight(&fx->f), N);
    wait_calls(fx, 2, 2000);
    run_for(fx, 20);
    assert_int_equal(fx->calls, 2);
    check_failed(&r[FORWARD_INFLIGHT_MAX], 2, COALITION_E_BUSY);
    assert_int_equal(forwarder_inflight(&fx->f), FORWARD_INFLIGHT_MAX);
    size_t n = FORWARD_INFLIGHT_MAX;
    run_until(fx, received_reach, &n, 20000);
    /* Half are answered; room again for one more. */
    for (size_t i = 0; i < fx->a.n_held / 2; i++) {
        tconn_answer(fx->a.held[i].c, fx->a.held[i].id, fx->a.held[i].msg);
    }
    wait_calls(fx, 2 + FORWARD_INFLIGHT_MAX / 2, 20000);
    check_answered(r, FORWARD_INFLIGHT_MAX / 2);
    assert_int_equal(forwarder_inflight(&fx->f), FORWARD_INFLIGHT_MAX / 2);
    fx_close_forwarder(fx);
    run_until(fx, forwarder_is_closed, NULL, 20000);
    check_failed(&r[FORWARD_INFLIGHT_MAX / 2], FORWARD_INFLIGHT_MAX / 2, COALITION_E_UNAVAILABLE);
    check_clean(fx);
    free(r);
}

/* A listener whose accept queue is full: the kernel drops new SYNs, so a
 * connect neither succeeds nor fails until long after the timeout. */
static void test_forward_timeout_during_connect(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, 200);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    int fill[2];
    for (size_t i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fill[i] >= 0);
        int rv = connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
        assert_true(rv == 0 || errno == EINPROGRESS);
    }
    run_for(fx, 50);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));

    struct rec *r = recs_new(fx, 2);
    uint64_t start = now_ms(fx);
    send_all(fx, addr, r, 2);
    wait_calls(fx, 2, 3000);
    uint64_t took = now_ms(fx) - start;
    assert_true(took >= 190);
    assert_true(took < 2000); /* the 200 ms timeout, not the 3 s wait */
    check_failed(r, 2, COALITION_E_UNAVAILABLE);
    /* The stuck connect is abandoned (a peek at a private field); closing
     * is clean. */
    assert_null(fx->f.conn);
    fx_close_forwarder(fx);
    run_until(fx, forwarder_is_closed, NULL, 2000);
    close(fill[0]);
    close(fill[1]);
    close(lfd);
    check_clean(fx);
    free(r);
}

/* A leader that stops reading: the bytes queued for it are bounded, and
 * requests beyond the bound are answered BUSY. */
static void test_forward_output_bounded(void **state)
{
    struct fx *fx = *state;
    enum { N = 200 };
    fx_start(fx, 60000);
    tserver_start(&fx->a, &fx->loop, T_NOREAD);
    struct rec *r = recs_new(fx, N);
    size_t big_len = FRAME_PAYLOAD_MAX - 4096;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'r', big_len);
    big[big_len] = '\0';
    size_t busy = 0;
    for (size_t i = 0; i < N; i++) {
        Coalition__Txn txn = COALITION__TXN__INIT;
        txn.txn_id = "big";
        txn.reason = big;
        Coalition__Request m = COALITION__REQUEST__INIT;
        m.op_case = COALITION__REQUEST__OP_TXN;
        m.txn = &txn;
        snprintf(r[i].want, sizeof(r[i].want), "big");
        fx->in_send = true;
        forwarder_send(&fx->f, fx->a.addr, &m, &r[i].req, rec_cb);
        fx->in_send = false;
        /* Let the connect and the first writes happen. */
        run_for(fx, 1);
        busy = fx->calls;
    }
    free(big);
    assert_true(busy > 0);
    assert_true(busy < N);
    for (size_t i = 0; i < N; i++) {
        if (r[i].called) {
            assert_int_equal(r[i].code, COALITION_E_BUSY);
        }
    }
    fx_close_forwarder(fx);
    run_until(fx, forwarder_is_closed, NULL, 5000);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(r[i].called, 1);
    }
    check_clean(fx);
    free(r);
}

static void test_forward_idle_timer_stops(void **state)
{
    struct fx *fx = *state;
    fx_start(fx, 5000);
    tserver_start(&fx->a, &fx->loop, T_ANSWER);
    struct rec *r = recs_new(fx, 1);
    send_rec(fx, fx->a.addr, r);
    wait_calls(fx, 1, 2000);
    run_for(fx, 150);
    /* Nothing in flight: the deadline timer does not keep the loop busy. */
    assert_false(uv_is_active((uv_handle_t *)&fx->f.timer));
    check_clean(fx);
    free(r);
}

/* ---- channels: "ID@HOST:PORT" through forwarder.dial ----------------------- */

struct dialer {
    size_t calls;
    uint64_t last_id;
    char last_addr[64];
    int fail_with; /* 0: connect a TCP socket to the address (a channel's stand-in) */
};

/* forward_dial_fn: a blocking loopback connect stands in for the link, which
 * hands over an already connected socket in the same way. */
static int test_dial(void *data, uint64_t id, const char *addr, int *fd)
{
    struct dialer *d = data;
    d->calls++;
    d->last_id = id;
    snprintf(d->last_addr, sizeof(d->last_addr), "%s", addr);
    if (d->fail_with != 0) {
        return d->fail_with;
    }
    const char *colon = strrchr(addr, ':');
    assert_non_null(colon);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    *fd = s;
    return 0;
}

static void test_forward_channel_addresses(void **state)
{
    struct fx *fx = *state;
    enum { N = 20 };
    fx_start(fx, 3000);
    tserver_start(&fx->a, &fx->loop, T_REVERSE);
    fx->a.release_at = N;
    struct dialer d = {0};
    char addr[96];
    snprintf(addr, sizeof(addr), "7@%s", fx->a.addr);

    /* Without a dialer a channel address cannot be reached. */
    struct rec *r = recs_new(fx, N + 6);
    send_rec(fx, addr, &r[0]);
    wait_calls(fx, 1, 2000);
    check_failed(r, 1, COALITION_E_UNAVAILABLE);

    /* With one: one dial for the whole pipeline, answers matched back. */
    fx->f.dial = test_dial;
    fx->f.dial_data = &d;
    for (size_t i = 1; i <= N; i++) {
        send_rec(fx, addr, &r[i]);
    }
    wait_calls(fx, N + 1, 3000);
    check_answered(&r[1], N);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.last_id, 7);
    assert_string_equal(d.last_addr, fx->a.addr);
    assert_int_equal(fx->a.connections, 1);

    /* A dial that fails answers its code's UNAVAILABLE (or BUSY) at once. */
    d.fail_with = COALITION_E_UNAVAILABLE;
    char other[96];
    snprintf(other, sizeof(other), "8@%s", fx->a.addr); /* the leader moved: a new dial */
    send_rec(fx, other, &r[N + 1]);
    wait_calls(fx, N + 2, 2000);
    check_failed(&r[N + 1], 1, COALITION_E_UNAVAILABLE);
    assert_int_equal(d.calls, 2);
    d.fail_with = COALITION_E_BUSY;
    send_rec(fx, other, &r[N + 2]);
    wait_calls(fx, N + 3, 2000);
    check_failed(&r[N + 2], 1, COALITION_E_BUSY);

    /* Ids that are not ids never reach the dialer. */
    static const char *const bad[] = {"@127.0.0.1:1", "0@127.0.0.1:1", "x7@127.0.0.1:1"};
    for (size_t i = 0; i < 3; i++) {
        send_rec(fx, bad[i], &r[N + 3 + i]);
    }
    wait_calls(fx, N + 6, 2000);
    check_failed(&r[N + 3], 3, COALITION_E_UNAVAILABLE);
    assert_int_equal(d.calls, 3);
    check_clean(fx);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_forward_one_request),
        T(test_forward_pipelined_out_of_order),
        T(test_forward_connection_lost_then_reconnects),
        T(test_forward_nothing_listening),
        T(test_forward_bad_address),
        T(test_forward_timeout_and_late_answer),
        T(test_forward_switch_address),
        T(test_forward_close_with_requests_in_flight),
        T(test_forward_close_while_connecting),
        T(test_forward_close_inside_callback),
        T(test_forward_close_inside_failure_callback),
        T(test_forward_protocol_error),
        T(test_forward_busy),
        T(test_forward_timeout_during_connect),
        T(test_forward_output_bounded),
        T(test_forward_idle_timer_stops),
        T(test_forward_channel_addresses),
#undef T
    };
    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
