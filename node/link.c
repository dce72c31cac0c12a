/* Authenticated, encrypted links between nodes (contract in link.h): the
 * raft_uv_transport vtable, forwarding channels on the same port, the
 * handshake on each TCP connection, and the proxy between a socketpair end
 * (raft's, or the forwarder's / server's for a channel) and the TCP
 * connection (secretstream records, bounded queues).  Key files and the
 * trusted set live elsewhere (main.c, proto/auth).
 *
 * The connecting node is the kx "client" C, the accepting one the "server"
 * S.  All integers are big-endian.
 *   C -> S  HELLO_C  magic[8] ed_pk[32] eph_pk[32] raft_id[8] channel[1]
 *                    address[256]
 *   S -> C  HELLO_S  magic[8] ed_pk[32] eph_pk[32] raft_id[8] ss_header[24]
 *                    sig[64] = Ed25519(S, H("server", HELLO_C, HELLO_S[0..104)))
 *   C -> S  FINISH   sig[64] = Ed25519(C, H("client", HELLO_C, HELLO_S, ss_header))
 *                    ss_header[24]
 *   S -> C  record(WELCOME), then records both ways: len[4] ciphertext[len]
 * H is BLAKE2b-512 keyed with nothing, prefixed with LINK_CONTEXT.  Session
 * keys: crypto_kx on the ephemeral keys, each hashed with the handshake so
 * far (HELLO_C and HELLO_S up to the raft id).  C checks that S has the raft
 * id it meant to reach; each side checks the other's key with the trust
 * callback before it checks the signature. */
#include "link.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "errors.h"

#define LINK_CONTEXT "coalition-link-v2"
#define LINK_MAGIC   "COALNK02"
#define MAGIC_LEN    8
#define HEADER_LEN   crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define ABYTES       crypto_secretstream_xchacha20poly1305_ABYTES
#define SIG_LEN      crypto_sign_BYTES
#define KX_LEN       crypto_kx_PUBLICKEYBYTES
#define HASH_LEN     crypto_generichash_BYTES_MAX

#define HELLO_C_ID      (MAGIC_LEN + LINK_PUBLIC_LEN + KX_LEN) /* offsets in HELLO_C */
#define HELLO_C_CHAN    (HELLO_C_ID + 8)
#define HELLO_C_ADDR    (HELLO_C_CHAN + 1)
#define HELLO_C_LEN     (HELLO_C_ADDR + LINK_ADDR_MAX)
#define HELLO_S_KEYED   (MAGIC_LEN + LINK_PUBLIC_LEN + KX_LEN + 8) /* what the keys hash */
#define HELLO_S_SIGNED  (HELLO_S_KEYED + HEADER_LEN)
#define HELLO_S_LEN     (HELLO_S_SIGNED + SIG_LEN)
#define FINISH_LEN      (SIG_LEN + HEADER_LEN)
#define RECORD_LEN_LEN  4
#define RECORD_MAX      (RECORD_LEN_LEN + ABYTES + LINK_CHUNK_MAX)
#define WELCOME_BYTE    0x57 /* the one plaintext byte of the first record */
#define CHANNEL_RAFT    'R'  /* what a link carries: raft's stream ... */
#define CHANNEL_FORWARD 'F'  /* ... or a forwarding channel (frames) */

#define LOG_WINDOW_MS  10000
#define LOG_WINDOW_MAX 20

_Static_assert(HELLO_C_LEN <= RECORD_MAX, "handshake messages fit the input buffer");
_Static_assert(HELLO_S_LEN <= RECORD_MAX, "handshake messages fit the input buffer");
_Static_assert(crypto_kx_SESSIONKEYBYTES == crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "kx session keys are secretstream keys");
_Static_assert(LINK_PUBLIC_LEN == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key size");
_Static_assert(LINK_SECRET_LEN == crypto_sign_SECRETKEYBYTES, "Ed25519 secret key size");
_Static_assert(LINK_QUEUE_LOW < LINK_QUEUE_HIGH, "low water mark below high");

enum conn_state {
    C_CONNECTING, /* out: TCP connect in flight */
    C_HELLO_S,    /* out: HELLO_C sent, waiting for HELLO_S */
    C_WELCOME,    /* out: FINISH sent, waiting for the first record */
    A_HELLO_C,    /* in: waiting for HELLO_C */
    A_FINISH,     /* in: HELLO_S sent, waiting for FINISH */
    UP,           /* authenticated: proxying */
    DEAD,         /* handles closing; freed when the last one is closed */
};

struct link_transport;

/* One TCP connection, in or out, from its first byte to its close. */
struct conn {
    struct link_transport *lt;
    enum conn_state state;
    bool outbound;
    uint8_t channel;             /* CHANNEL_RAFT or CHANNEL_FORWARD */
    bool pending_in;             /* counted in lt->n_pending_in */
    struct raft_uv_connect *req; /* out: raft's request until its callback */
    int status;                  /* out: what req->cb gets if the connection dies */
    raft_id want_id;             /* out: the raft id we meant to reach */
    int open_handles;
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake deadline */
    uv_connect_t connect;
    uv_pipe_t pipe; /* our end of the socketpair (raft's: UP only; a channel's: from the dial) */
    bool pipe_open;
    char remote[64]; /* "ip:port" of the other end, for logs */
    /* handshake */
    uint8_t eph_pk[KX_LEN], eph_sk[crypto_kx_SECRETKEYBYTES];
    uint8_t hello_c[HELLO_C_LEN];
    uint8_t hello_s[HELLO_S_LEN];
    uint8_t rx_key[crypto_kx_SESSIONKEYBYTES]; /* in: until the client's stream header */
    uint8_t peer_pk[LINK_PUBLIC_LEN];
    raft_id peer_id;
    char peer_addr[LINK_ADDR_MAX];
    crypto_secretstream_xchacha20poly1305_state tx, rx;
    /* net -> raft */
    uint8_t *in; /* RECORD_MAX bytes */
    size_t in_len;
    size_t pipe_queued; /* bytes written to raft's end, not yet done */
    bool tcp_paused;
    /* raft -> net */
    uint8_t *out_plain; /* LINK_CHUNK_MAX bytes, the pipe's read buffer */
    size_t net_queued;  /* bytes written to TCP, not yet done */
    bool pipe_paused;
    struct conn *prev, *next;
};

struct link_transport {
    struct raft_uv_transport *t;
    uv_loop_t *loop;
    raft_id id;
    char address[LINK_ADDR_MAX];
    bool has_key;
    uint8_t sk[LINK_SECRET_LEN];
    uint8_t pk[LINK_PUBLIC_LEN];
    link_trusted_cb trusted;
    void *trusted_data;
    unsigned handshake_timeout_ms;
    unsigned pending_max;
    uv_tcp_t listener;
    bool listener_open;
    raft_uv_accept_cb accept_cb;
    link_channel_cb channel_accept; /* NULL: channels refused */
    void *channel_data;
    struct conn *head, *tail; /* oldest first */
    size_t n_conns;
    size_t n_pending_in;
    bool closing;
    bool close_fired;
    raft_uv_transport_close_cb close_cb;
    struct link_stats stats;
    uint64_t log_window_start_ms;
    unsigned log_in_window;
    unsigned log_suppressed;
};

/* A write of ours, to TCP or to raft's end: the bytes follow. */
struct wreq {
    uv_write_t req;
    struct conn *c;
    size_t len;
    bool to_net;
    uint8_t data[];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* At most LOG_WINDOW_MAX lines per LOG_WINDOW_MS: a refused peer retries every
 * second, a hostile one faster. */
static void link_log(struct link_transport *lt, const struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void link_log(struct link_transport *lt, const struct conn *c, const char *fmt, ...)
{
    uint64_t t_ms = now_ms();
    if (t_ms >= lt->log_window_start_ms + LOG_WINDOW_MS) {
        if (lt->log_suppressed > 0) {
            fprintf(stderr, "coalitiond: link: %u more messages suppressed\n", lt->log_suppressed);
        }
        lt->log_window_start_ms = t_ms;
        lt->log_in_window = 0;
        lt->log_suppressed = 0;
    }
    if (lt->log_in_window >= LOG_WINDOW_MAX) {
        lt->log_suppressed++;
        return;
    }
    lt->log_in_window++;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c != NULL) {
        fprintf(stderr, "coalitiond: link %s %s: %s\n", c->outbound ? "to" : "from", c->remote,
                msg);
    } else {
        fprintf(stderr, "coalitiond: link: %s\n", msg);
    }
}

static void key_hex(const uint8_t pk[LINK_PUBLIC_LEN], char out[2 * LINK_PUBLIC_LEN + 1])
{
    sodium_bin2hex(out, 2 * LINK_PUBLIC_LEN + 1, pk, LINK_PUBLIC_LEN);
}

/* ---------------------------------------------------------------------------
 * Connection lifetime */

static void transport_maybe_closed(struct link_transport *lt)
{
    if (!lt->closing || lt->close_fired || lt->listener_open || lt->head != NULL) {
        return;
    }
    lt->close_fired = true;
    if (lt->close_cb != NULL) {
        lt->close_cb(lt->t);
    }
}

static void conn_unlink(struct conn *c)
{
    struct link_transport *lt = c->lt;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        lt->head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        lt->tail = c->prev;
    }
    c->prev = c->next = NULL;
    assert(lt->n_conns > 0);
    lt->n_conns--;
}

static void conn_free(struct conn *c)
{
    struct link_transport *lt = c->lt;
    struct raft_uv_connect *req = c->req;
    int status = c->status;
    assert(c->open_handles == 0);
    assert(c->state == DEAD);
    assert(!c->pending_in);
    conn_unlink(c);
    sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
    sodium_memzero(c->rx_key, sizeof(c->rx_key));
    sodium_memzero(&c->tx, sizeof(c->tx));
    sodium_memzero(&c->rx, sizeof(c->rx));
    free(c->in);
    free(c->out_plain);
    free(c);
    /* raft's contract: a connect request that did not give a stream ends
     * with its callback, once our handles are closed, never twice. */
    if (req != NULL) {
        assert(status != 0);
        req->cb(req, NULL, status);
    }
    transport_maybe_closed(lt);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    assert(c->open_handles > 0);
    if (--c->open_handles == 0) {
        conn_free(c);
    }
}

static void conn_leave_pending(struct conn *c)
{
    if (c->pending_in) {
        c->pending_in = false;
        assert(c->lt->n_pending_in > 0);
        c->lt->n_pending_in--;
    }
}

/* Ends a connection in any state but DEAD: closes its handles (pending
 * writes are cancelled), and for an outgoing one not yet up, raft's callback
 * gets `status` (RAFT_CANCELED while the transport closes) once they are
 * closed.  `why` (may be NULL) goes to the log. */
static void conn_kill(struct conn *c, int status, const char *why)
{
    assert(c->state != DEAD);
    if (why != NULL) {
        link_log(c->lt, c, "%s", why);
    }
    c->state = DEAD;
    c->status = c->lt->closing ? RAFT_CANCELED : status;
    conn_leave_pending(c);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    if (c->pipe_open) {
        uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
    }
}

static struct conn *conn_new(struct link_transport *lt, bool outbound)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->in = malloc(RECORD_MAX);
    if (c->in == NULL) {
        free(c);
        return NULL;
    }
    c->lt = lt;
    c->outbound = outbound;
    c->status = RAFT_NOCONNECTION;
    snprintf(c->remote, sizeof(c->remote), "?");
    uv_tcp_init(lt->loop, &c->tcp);
    uv_timer_init(lt->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->prev = lt->tail;
    if (lt->tail != NULL) {
        lt->tail->next = c;
    } else {
        lt->head = c;
    }
    lt->tail = c;
    lt->n_conns++;
    return c;
}

static void conn_on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    assert(c->state != UP && c->state != DEAD);
    c->lt->stats.handshake_timeout++;
    conn_kill(c, RAFT_NOCONNECTION, "handshake timed out");
}

/* ---------------------------------------------------------------------------
 * Writes, with the queued bytes counted for backpressure */

static void conn_pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void wreq_done(uv_write_t *w, int status)
{
    struct wreq *r = (struct wreq *)w;
    struct conn *c = r->c;
    if (r->to_net) {
        assert(c->net_queued >= r->len);
        c->net_queued -= r->len;
    } else {
        assert(c->pipe_queued >= r->len);
        c->pipe_queued -= r->len;
    }
    bool to_net = r->to_net;
    free(r);
    if (c->state == DEAD) {
        return; /* cancelled by the close */
    }
    if (status != 0) {
        conn_kill(c, RAFT_NOCONNECTION, NULL); /* the other end went away */
        return;
    }
    if (to_net && c->pipe_paused && c->net_queued <= LINK_QUEUE_LOW) {
        c->pipe_paused = false;
        uv_read_start((uv_stream_t *)&c->pipe, conn_pipe_alloc, conn_pipe_read);
    }
    if (!to_net && c->tcp_paused && c->pipe_queued <= LINK_QUEUE_LOW) {
        c->tcp_paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, conn_tcp_alloc, conn_tcp_read);
    }
}

/* Queues r (filled, r->len set) on the TCP connection or raft's end.  On a
 * failure the connection is killed; the caller must check c->state. */
static void conn_write(struct conn *c, struct wreq *r, bool to_net)
{
    r->c = c;
    r->to_net = to_net;
    uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)r->len);
    uv_stream_t *s = to_net ? (uv_stream_t *)&c->tcp : (uv_stream_t *)&c->pipe;
    int rv = uv_write(&r->req, s, &b, 1, wreq_done);
    if (rv != 0) {
        free(r);
        conn_kill(c, RAFT_NOCONNECTION, NULL);
        return;
    }
    if (to_net) {
        c->net_queued += r->len;
    } else {
        c->pipe_queued += r->len;
    }
}

static struct wreq *wreq_new(size_t len)
{
    struct wreq *r = malloc(sizeof(*r) + len);
    if (r != NULL) {
        r->len = len;
    }
    return r;
}

/* Seals `len` bytes into one record and sends it.  0, or -1 if the
 * connection was killed. */
static int conn_seal(struct conn *c, const uint8_t *plain, size_t len)
{
    assert(len <= LINK_CHUNK_MAX);
    struct wreq *r = wreq_new(RECORD_LEN_LEN + ABYTES + len);
    if (r == NULL) {
        conn_kill(c, RAFT_NOCONNECTION, "out of memory");
        return -1;
    }
    uint32_t n = htonl((uint32_t)(ABYTES + len));
    memcpy(r->data, &n, RECORD_LEN_LEN);
    crypto_secretstream_xchacha20poly1305_push(&c->tx, r->data + RECORD_LEN_LEN, NULL, plain, len,
                                               NULL, 0,
                                               crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    c->lt->stats.bytes_sealed += len;
    conn_write(c, r, true);
    return c->state == DEAD ? -1 : 0;
}

/* ---------------------------------------------------------------------------
 * The proxy: raft's bytes out, the peer's records in */

static void conn_pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    buf->base = (char *)c->out_plain;
    buf->len = LINK_CHUNK_MAX;
}

static void conn_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (c->state == DEAD) {
        return;
    }
    assert(c->state == UP);
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        /* raft closed its end: the link is over. */
        conn_kill(c, RAFT_NOCONNECTION, NULL);
        return;
    }
    if (conn_seal(c, c->out_plain, (size_t)nread) != 0) {
        return;
    }
    if (c->net_queued > LINK_QUEUE_HIGH) {
        c->pipe_paused = true;
        uv_read_stop((uv_stream_t *)&c->pipe);
    }
}

/* Opens the socketpair of a connection: ours into c->pipe (not read yet),
 * the other end's fd into *theirs (owned by the caller).  0 or -1 (nothing
 * left open). */
static int conn_open_pair(struct conn *c, int *theirs)
{
    assert(!c->pipe_open);
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        return -1;
    }
    c->out_plain = malloc(LINK_CHUNK_MAX);
    if (c->out_plain == NULL) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    uv_pipe_init(c->lt->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->pipe_open = true;
    c->open_handles++;
    if (uv_pipe_open(&c->pipe, fds[0]) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1; /* c->pipe is closed with the connection */
    }
    *theirs = fds[1];
    return 0;
}

static void raft_stream_closed_on_error(uv_handle_t *h)
{
    raft_free(h);
}

/* raft's end of the socketpair as the stream raft takes (raft_malloc'd:
 * raft uv_close()s and raft_free()s it).  Takes `fd` in every case; NULL on
 * failure. */
static uv_stream_t *raft_stream(struct conn *c, int fd)
{
    uv_pipe_t *theirs = raft_malloc(sizeof(*theirs));
    if (theirs == NULL) {
        close(fd);
        return NULL;
    }
    uv_pipe_init(c->lt->loop, theirs, 0);
    if (uv_pipe_open(theirs, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)theirs, raft_stream_closed_on_error);
        return NULL;
    }
    return (uv_stream_t *)theirs;
}

/* The handshake is done both ways: start the proxy and hand the other end
 * of the socketpair to raft, or to the channel's owner. */
static void conn_up(struct conn *c)
{
    struct link_transport *lt = c->lt;
    uv_timer_stop(&c->timer);
    conn_leave_pending(c);
    int fd = -1;
    bool dialed_channel = c->outbound && c->channel == CHANNEL_FORWARD; /* pair made at the dial */
    if (!dialed_channel && conn_open_pair(c, &fd) != 0) {
        conn_kill(c, RAFT_NOCONNECTION, "cannot open a socketpair");
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->pipe, conn_pipe_alloc, conn_pipe_read) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        conn_kill(c, RAFT_NOCONNECTION, "cannot read the socketpair");
        return;
    }
    c->state = UP;
    char hex[2 * LINK_PUBLIC_LEN + 1];
    key_hex(c->peer_pk, hex);
    const char *what = c->channel == CHANNEL_RAFT ? "link" : "forwarding channel";
    if (dialed_channel) {
        lt->stats.channels_out++;
        link_log(lt, c, "%s up to node %llu (key %.16s...)", what, (unsigned long long)c->peer_id,
                 hex);
        return; /* the forwarder holds the other end since the dial */
    }
    if (c->channel == CHANNEL_FORWARD) {
        lt->stats.channels_in++;
        link_log(lt, c, "%s up from node %llu at %s (key %.16s...)", what,
                 (unsigned long long)c->peer_id, c->peer_addr, hex);
        lt->channel_accept(lt->channel_data, c->peer_id, c->peer_pk, fd);
        return;
    }
    uv_stream_t *stream = raft_stream(c, fd);
    if (stream == NULL) {
        conn_kill(c, RAFT_NOCONNECTION, "cannot open raft's end of the socketpair");
        return;
    }
    if (c->outbound) {
        struct raft_uv_connect *req = c->req;
        c->req = NULL;
        lt->stats.links_out++;
        link_log(lt, c, "up to node %llu (key %.16s...)", (unsigned long long)c->peer_id, hex);
        req->cb(req, stream, 0);
    } else {
        lt->stats.links_in++;
        link_log(lt, c, "up from node %llu at %s (key %.16s...)", (unsigned long long)c->peer_id,
                 c->peer_addr, hex);
        lt->accept_cb(lt->t, c->peer_id, c->peer_addr, stream);
    }
}

/* One record of `len` bytes (length prefix excluded) at `p`.  0, or -1 if the
 * connection was killed. */
static int conn_open_record(struct conn *c, const uint8_t *p, size_t len)
{
    size_t plain_len = len - ABYTES;
    struct wreq *r = wreq_new(plain_len > 0 ? plain_len : 1);
    if (r == NULL) {
        conn_kill(c, RAFT_NOCONNECTION, "out of memory");
        return -1;
    }
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&c->rx, r->data, &mlen, &tag, p, len, NULL, 0) !=
            0 ||
        tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) {
        free(r);
        c->lt->stats.records_bad++;
        conn_kill(c, RAFT_NOCONNECTION, "a record failed authentication: link closed");
        return -1;
    }
    assert(mlen == plain_len);
    if (c->state == C_WELCOME) {
        bool ok = mlen == 1 && r->data[0] == WELCOME_BYTE;
        free(r);
        if (!ok) {
            c->lt->stats.handshake_failed++;
            conn_kill(c, RAFT_NOCONNECTION, "bad welcome record");
            return -1;
        }
        conn_up(c);
        return c->state == DEAD ? -1 : 0;
    }
    assert(c->state == UP);
    c->lt->stats.bytes_opened += mlen;
    if (mlen == 0) {
        free(r);
        return 0;
    }
    r->len = (size_t)mlen;
    conn_write(c, r, false);
    return c->state == DEAD ? -1 : 0;
}

/* ---------------------------------------------------------------------------
 * The handshake */

static void transcript_hash(uint8_t out[HASH_LEN], const char *role, const uint8_t *a, size_t alen,
                            const uint8_t *b, size_t blen, const uint8_t *d, size_t dlen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, HASH_LEN);
    crypto_generichash_update(&st, (const uint8_t *)LINK_CONTEXT, sizeof(LINK_CONTEXT));
    crypto_generichash_update(&st, (const uint8_t *)role, strlen(role) + 1);
    crypto_generichash_update(&st, a, alen);
    crypto_generichash_update(&st, b, blen);
    if (d != NULL) {
        crypto_generichash_update(&st, d, dlen);
    }
    crypto_generichash_final(&st, out, HASH_LEN);
}

/* The two secretstream keys from the kx session keys, bound to both hellos
 * (up to the server's raft id). */
static void derive_keys(struct conn *c, uint8_t rx[crypto_kx_SESSIONKEYBYTES],
                        uint8_t tx[crypto_kx_SESSIONKEYBYTES])
{
    uint8_t h[HASH_LEN];
    transcript_hash(h, "keys", c->hello_c, HELLO_C_LEN, c->hello_s, HELLO_S_KEYED, NULL, 0);
    uint8_t *keys[2] = {rx, tx};
    for (int i = 0; i < 2; i++) {
        uint8_t k[crypto_kx_SESSIONKEYBYTES];
        crypto_generichash(k, sizeof(k), h, sizeof(h), keys[i], crypto_kx_SESSIONKEYBYTES);
        memcpy(keys[i], k, sizeof(k));
        sodium_memzero(k, sizeof(k));
    }
}

static int conn_send_raw(struct conn *c, const uint8_t *p, size_t len)
{
    struct wreq *r = wreq_new(len);
    if (r == NULL) {
        conn_kill(c, RAFT_NOCONNECTION, "out of memory");
        return -1;
    }
    memcpy(r->data, p, len);
    conn_write(c, r, true);
    return c->state == DEAD ? -1 : 0;
}

static bool key_trusted(struct link_transport *lt, struct conn *c, const uint8_t *pk,
                        const char *who)
{
    if (lt->trusted(lt->trusted_data, pk)) {
        return true;
    }
    char hex[2 * LINK_PUBLIC_LEN + 1];
    key_hex(pk, hex);
    lt->stats.refused_untrusted++;
    char why[256];
    snprintf(why, sizeof(why), "refused: %s key %s is not trusted", who, hex);
    conn_kill(c, RAFT_NOCONNECTION, why);
    return false;
}

static void conn_fail_handshake(struct conn *c, const char *why)
{
    c->lt->stats.handshake_failed++;
    conn_kill(c, RAFT_NOCONNECTION, why);
}

/* S: HELLO_C is in c->hello_c. */
static void accept_on_hello_c(struct conn *c)
{
    struct link_transport *lt = c->lt;
    const uint8_t *p = c->hello_c;
    if (memcmp(p, LINK_MAGIC, MAGIC_LEN) != 0) {
        conn_fail_handshake(c, "not a coalition link (bad magic)");
        return;
    }
    memcpy(c->peer_pk, p + MAGIC_LEN, LINK_PUBLIC_LEN);
    const uint8_t *peer_eph = p + MAGIC_LEN + LINK_PUBLIC_LEN;
    c->peer_id = get_u64(p + HELLO_C_ID);
    c->channel = p[HELLO_C_CHAN];
    const char *addr = (const char *)p + HELLO_C_ADDR;
    size_t addr_len = strnlen(addr, LINK_ADDR_MAX);
    if (addr_len == 0 || addr_len == LINK_ADDR_MAX || c->peer_id == 0) {
        conn_fail_handshake(c, "bad hello (raft id or address)");
        return;
    }
    if (c->channel != CHANNEL_RAFT && c->channel != CHANNEL_FORWARD) {
        conn_fail_handshake(c, "bad hello (unknown channel)");
        return;
    }
    memcpy(c->peer_addr, addr, addr_len + 1);
    if (!key_trusted(lt, c, c->peer_pk, "the connecting node's")) {
        return;
    }
    uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
    crypto_kx_keypair(c->eph_pk, c->eph_sk);
    int rv = crypto_kx_server_session_keys(rx, tx, c->eph_pk, c->eph_sk, peer_eph);
    sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
    if (rv != 0) {
        conn_fail_handshake(c, "bad ephemeral key");
        return;
    }
    uint8_t *q = c->hello_s;
    memcpy(q, LINK_MAGIC, MAGIC_LEN);
    memcpy(q + MAGIC_LEN, lt->pk, LINK_PUBLIC_LEN);
    memcpy(q + MAGIC_LEN + LINK_PUBLIC_LEN, c->eph_pk, KX_LEN);
    put_u64(q + MAGIC_LEN + LINK_PUBLIC_LEN + KX_LEN, lt->id);
    derive_keys(c, rx, tx);
    crypto_secretstream_xchacha20poly1305_init_push(&c->tx, q + HELLO_S_KEYED, tx);
    /* rx waits for the client's stream header (FINISH). */
    memcpy(c->rx_key, rx, sizeof(rx));
    sodium_memzero(rx, sizeof(rx));
    sodium_memzero(tx, sizeof(tx));
    uint8_t h[HASH_LEN];
    transcript_hash(h, "server", c->hello_c, HELLO_C_LEN, q, HELLO_S_SIGNED, NULL, 0);
    crypto_sign_detached(q + HELLO_S_SIGNED, NULL, h, sizeof(h), lt->sk);
    if (conn_send_raw(c, q, HELLO_S_LEN) != 0) {
        return;
    }
    c->state = A_FINISH;
}

/* S: FINISH is at p. */
static void accept_on_finish(struct conn *c, const uint8_t *p)
{
    struct link_transport *lt = c->lt;
    uint8_t h[HASH_LEN];
    transcript_hash(h, "client", c->hello_c, HELLO_C_LEN, c->hello_s, HELLO_S_LEN, p + SIG_LEN,
                    HEADER_LEN);
    if (crypto_sign_verify_detached(p, h, sizeof(h), c->peer_pk) != 0) {
        conn_fail_handshake(c, "bad signature from the connecting node");
        return;
    }
    int rv = crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, p + SIG_LEN, c->rx_key);
    sodium_memzero(c->rx_key, sizeof(c->rx_key));
    if (rv != 0) {
        conn_fail_handshake(c, "bad stream header");
        return;
    }
    if ((c->channel == CHANNEL_RAFT ? lt->accept_cb == NULL : lt->channel_accept == NULL)) {
        conn_kill(c, RAFT_NOCONNECTION, NULL); /* nobody to take it (yet) */
        return;
    }
    uint8_t welcome = WELCOME_BYTE;
    if (conn_seal(c, &welcome, 1) != 0) {
        return;
    }
    conn_up(c);
}

/* C: HELLO_S is in c->hello_s. */
static void connect_on_hello_s(struct conn *c)
{
    struct link_transport *lt = c->lt;
    const uint8_t *q = c->hello_s;
    if (memcmp(q, LINK_MAGIC, MAGIC_LEN) != 0) {
        conn_fail_handshake(c, "not a coalition link (bad magic)");
        return;
    }
    memcpy(c->peer_pk, q + MAGIC_LEN, LINK_PUBLIC_LEN);
    const uint8_t *peer_eph = q + MAGIC_LEN + LINK_PUBLIC_LEN;
    c->peer_id = get_u64(q + MAGIC_LEN + LINK_PUBLIC_LEN + KX_LEN);
    if (c->peer_id != c->want_id) {
        char why[128];
        snprintf(why, sizeof(why), "that address is node %llu, not node %llu",
                 (unsigned long long)c->peer_id, (unsigned long long)c->want_id);
        conn_fail_handshake(c, why);
        return;
    }
    if (!key_trusted(lt, c, c->peer_pk, "the node's")) {
        return;
    }
    uint8_t h[HASH_LEN];
    transcript_hash(h, "server", c->hello_c, HELLO_C_LEN, q, HELLO_S_SIGNED, NULL, 0);
    if (crypto_sign_verify_detached(q + HELLO_S_SIGNED, h, sizeof(h), c->peer_pk) != 0) {
        conn_fail_handshake(c, "bad signature from the node");
        return;
    }
    uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
    int rv = crypto_kx_client_session_keys(rx, tx, c->eph_pk, c->eph_sk, peer_eph);
    sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
    if (rv != 0) {
        conn_fail_handshake(c, "bad ephemeral key");
        return;
    }
    derive_keys(c, rx, tx);
    rv = crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, q + HELLO_S_KEYED, rx);
    uint8_t fin[FINISH_LEN];
    crypto_secretstream_xchacha20poly1305_init_push(&c->tx, fin + SIG_LEN, tx);
    sodium_memzero(rx, sizeof(rx));
    sodium_memzero(tx, sizeof(tx));
    if (rv != 0) {
        conn_fail_handshake(c, "bad stream header");
        return;
    }
    transcript_hash(h, "client", c->hello_c, HELLO_C_LEN, q, HELLO_S_LEN, fin + SIG_LEN,
                    HEADER_LEN);
    crypto_sign_detached(fin, NULL, h, sizeof(h), lt->sk);
    if (conn_send_raw(c, fin, FINISH_LEN) != 0) {
        return;
    }
    c->state = C_WELCOME;
}

/* Consumes what it can of c->in; stops when the connection dies. */
static void conn_process_input(struct conn *c)
{
    size_t off = 0;
    while (c->state != DEAD) {
        const uint8_t *p = c->in + off;
        size_t avail = c->in_len - off;
        if ((c->state == A_HELLO_C || c->state == C_HELLO_S) && avail >= MAGIC_LEN &&
            memcmp(p, LINK_MAGIC, MAGIC_LEN) != 0) {
            conn_fail_handshake(c, "not a coalition link (bad magic)");
            break;
        }
        if (c->state == A_HELLO_C) {
            if (avail < HELLO_C_LEN) {
                break;
            }
            memcpy(c->hello_c, p, HELLO_C_LEN);
            off += HELLO_C_LEN;
            accept_on_hello_c(c);
        } else if (c->state == A_FINISH) {
            if (avail < FINISH_LEN) {
                break;
            }
            off += FINISH_LEN;
            accept_on_finish(c, p);
        } else if (c->state == C_HELLO_S) {
            if (avail < HELLO_S_LEN) {
                break;
            }
            memcpy(c->hello_s, p, HELLO_S_LEN);
            off += HELLO_S_LEN;
            connect_on_hello_s(c);
        } else {
            assert(c->state == C_WELCOME || c->state == UP);
            if (avail < RECORD_LEN_LEN) {
                break;
            }
            uint32_t n;
            memcpy(&n, p, RECORD_LEN_LEN);
            size_t len = ntohl(n);
            if (len < ABYTES || len > ABYTES + LINK_CHUNK_MAX) {
                c->lt->stats.records_bad++;
                conn_kill(c, RAFT_NOCONNECTION, "bad record length: link closed");
                break;
            }
            if (avail < RECORD_LEN_LEN + len) {
                break;
            }
            off += RECORD_LEN_LEN + len;
            conn_open_record(c, p + RECORD_LEN_LEN, len);
        }
    }
    if (c->state == DEAD) {
        return;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    if (c->state == UP && c->pipe_queued > LINK_QUEUE_HIGH && !c->tcp_paused) {
        c->tcp_paused = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void conn_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    assert(c->in_len < RECORD_MAX);
    buf->base = (char *)c->in + c->in_len;
    buf->len = RECORD_MAX - c->in_len;
}

static void conn_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (c->state == DEAD || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (c->state != UP) {
            c->lt->stats.handshake_failed++;
            char why[128];
            snprintf(why, sizeof(why), "closed during the handshake: %s", uv_strerror((int)nread));
            conn_kill(c, RAFT_NOCONNECTION, why);
        } else {
            conn_kill(c, RAFT_NOCONNECTION, NULL);
        }
        return;
    }
    c->in_len += (size_t)nread;
    assert(c->in_len <= RECORD_MAX);
    conn_process_input(c);
}

static void conn_set_remote(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[48] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, port);
}

/* ---------------------------------------------------------------------------
 * Outgoing connections */

static void connect_on_tcp(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->state == DEAD) {
        return; /* killed meanwhile (timeout, close): its close reports */
    }
    assert(c->state == C_CONNECTING);
    if (status != 0) {
        /* Quiet: raft retries every second while a peer is down. */
        conn_kill(c, RAFT_NOCONNECTION, NULL);
        return;
    }
    conn_set_remote(c);
    uv_tcp_nodelay(&c->tcp, 1);
    struct link_transport *lt = c->lt;
    uint8_t *p = c->hello_c;
    memset(p, 0, HELLO_C_LEN);
    crypto_kx_keypair(c->eph_pk, c->eph_sk);
    memcpy(p, LINK_MAGIC, MAGIC_LEN);
    memcpy(p + MAGIC_LEN, lt->pk, LINK_PUBLIC_LEN);
    memcpy(p + MAGIC_LEN + LINK_PUBLIC_LEN, c->eph_pk, KX_LEN);
    put_u64(p + HELLO_C_ID, lt->id);
    p[HELLO_C_CHAN] = c->channel;
    memcpy(p + HELLO_C_ADDR, lt->address, strlen(lt->address));
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_tcp_alloc, conn_tcp_read) != 0) {
        conn_kill(c, RAFT_NOCONNECTION, NULL);
        return;
    }
    if (conn_send_raw(c, p, HELLO_C_LEN) != 0) {
        return;
    }
    c->state = C_HELLO_S;
}

static int parse_addr(const char *address, struct sockaddr_storage *ss)
{
    char host[LINK_ADDR_MAX];
    int port = 0;
    if (config_split_addr(address, host, sizeof(host), &port) != 0) {
        return -1;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
        return 0;
    }
    return -1;
}

/* Starts an outgoing connection to node `id` at `address` carrying
 * `channel`: *out is the connection, in C_CONNECTING with its handshake
 * timer running.  0, or a negative COALITION_E_* code with a reason in
 * `why` (why_len bytes) and nothing left behind. */
static int conn_dial(struct link_transport *lt, raft_id id, const char *address, uint8_t channel,
                     struct conn **out, char *why, size_t why_len)
{
    assert(!lt->closing && lt->id != 0);
    if (!lt->has_key) {
        lt->stats.refused_no_key++;
        link_log(lt, NULL,
                 "no link to node %llu at %s: this node has no partner key (partner_key_file)",
                 (unsigned long long)id, address);
        snprintf(why, why_len, "no partner key: links are refused");
        return COALITION_E_UNAVAILABLE;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (parse_addr(address, &ss) != 0) {
        snprintf(why, why_len, "bad raft address '%.200s'", address);
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (lt->n_conns >= LINK_CONNS_MAX) {
        snprintf(why, why_len, "too many links");
        return COALITION_E_BUSY;
    }
    struct conn *c = conn_new(lt, true);
    if (c == NULL) {
        snprintf(why, why_len, "out of memory");
        return COALITION_E_NOMEM;
    }
    c->state = C_CONNECTING;
    c->channel = channel;
    c->want_id = id;
    snprintf(c->remote, sizeof(c->remote), "%s", address);
    c->connect.data = c;
    int rv = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&ss, connect_on_tcp);
    if (rv != 0) {
        snprintf(why, why_len, "uv_tcp_connect(): %s", uv_strerror(rv));
        conn_kill(c, RAFT_NOCONNECTION, NULL);
        return COALITION_E_UNAVAILABLE;
    }
    uv_timer_start(&c->timer, conn_on_timeout, lt->handshake_timeout_ms, 0);
    *out = c;
    return 0;
}

/* raft_uv_transport->connect.  Same contract as raft_uv_tcp: 0 and cb
 * exactly once later (status 0 with a stream raft owns, RAFT_NOCONNECTION,
 * or RAFT_CANCELED when the transport closes first), or an error now and no
 * cb. */
static int lt_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct link_transport *lt = t->impl;
    struct conn *c = NULL;
    int rv = conn_dial(lt, id, address, CHANNEL_RAFT, &c, t->errmsg, sizeof(t->errmsg));
    if (rv != 0) {
        /* No callback for a synchronous failure: raft forgets the request. */
        return rv == COALITION_E_NOMEM ? RAFT_NOMEM : RAFT_NOCONNECTION;
    }
    req->cb = cb;
    c->req = req;
    return 0;
}

int link_channel_open(struct raft_uv_transport *t, raft_id id, const char *address, int *fd)
{
    assert(t != NULL && address != NULL && fd != NULL);
    struct link_transport *lt = t->impl;
    if (lt == NULL || lt->closing || lt->id == 0 || id == 0) {
        return COALITION_E_UNAVAILABLE;
    }
    struct conn *c = NULL;
    char why[256];
    int rv = conn_dial(lt, id, address, CHANNEL_FORWARD, &c, why, sizeof(why));
    if (rv != 0) {
        return rv;
    }
    if (conn_open_pair(c, fd) != 0) {
        conn_kill(c, RAFT_NOCONNECTION, "cannot open a socketpair for a forwarding channel");
        return COALITION_E_INTERNAL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Incoming connections */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Drops the oldest incoming connection still in its handshake. */
static void evict_oldest_pending(struct link_transport *lt)
{
    for (struct conn *c = lt->head; c != NULL; c = c->next) {
        if (c->pending_in) {
            lt->stats.pending_evicted++;
            conn_kill(c, RAFT_NOCONNECTION, "dropped: too many pending handshakes");
            return;
        }
    }
}

static void lt_on_connection(uv_stream_t *server, int status)
{
    struct link_transport *lt = server->data;
    if (lt->closing) {
        return;
    }
    if (status != 0) {
        link_log(lt, NULL, "accept on %s: %s", lt->address, uv_strerror(status));
        return;
    }
    struct conn *c = conn_new(lt, false);
    if (c == NULL) {
        /* Take it off the backlog and close it (libuv stops accepting on a
         * listener whose connection is not accepted). */
        uv_tcp_t *tmp = malloc(sizeof(*tmp));
        if (tmp != NULL) {
            uv_tcp_init(lt->loop, tmp);
            uv_accept(server, (uv_stream_t *)tmp);
            uv_close((uv_handle_t *)tmp, free_handle);
        }
        return;
    }
    c->state = A_HELLO_C;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_kill(c, RAFT_NOCONNECTION, NULL);
        return;
    }
    conn_set_remote(c);
    uv_tcp_nodelay(&c->tcp, 1);
    if (!lt->has_key) {
        lt->stats.refused_no_key++;
        conn_kill(c, RAFT_NOCONNECTION,
                  "refused: this node has no partner key (partner_key_file), so it takes no links");
        return;
    }
    if (lt->n_conns > LINK_CONNS_MAX) {
        conn_kill(c, RAFT_NOCONNECTION, "refused: too many links");
        return;
    }
    if (lt->n_pending_in >= lt->pending_max) {
        evict_oldest_pending(lt);
    }
    c->pending_in = true;
    lt->n_pending_in++;
    uv_timer_start(&c->timer, conn_on_timeout, lt->handshake_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_tcp_alloc, conn_tcp_read) != 0) {
        conn_kill(c, RAFT_NOCONNECTION, NULL);
    }
}

static int lt_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct link_transport *lt = t->impl;
    assert(!lt->closing && !lt->listener_open);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (parse_addr(lt->address, &ss) != 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "bad raft address '%.200s' (numeric host:port)",
                 lt->address);
        return RAFT_INVALID;
    }
    lt->accept_cb = cb;
    uv_tcp_init(lt->loop, &lt->listener);
    lt->listener.data = lt;
    lt->listener_open = true;
    int rv = uv_tcp_bind(&lt->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&lt->listener, 128, lt_on_connection);
    }
    if (rv != 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "listen on %.200s: %s", lt->address,
                 uv_strerror(rv));
        return RAFT_IOERR; /* the listener is closed by t->close */
    }
    if (!lt->has_key) {
        link_log(lt, NULL,
                 "this node has no partner key (partner_key_file): it runs alone and refuses "
                 "every link to other nodes");
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * The transport */

static int lt_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct link_transport *lt = t->impl;
    assert(id > 0);
    if (strlen(address) >= LINK_ADDR_MAX) {
        snprintf(t->errmsg, sizeof(t->errmsg), "raft address too long");
        return RAFT_NAMETOOLONG;
    }
    lt->id = id;
    snprintf(lt->address, sizeof(lt->address), "%s", address);
    return 0;
}

static void lt_listener_closed(uv_handle_t *h)
{
    struct link_transport *lt = h->data;
    lt->listener_open = false;
    transport_maybe_closed(lt);
}

/* raft_uv_transport->close: stop listening, cancel pending connects (their
 * callbacks get RAFT_CANCELED), drop handshakes in progress and close every
 * link's proxy (raft has closed its ends already), then cb. */
static void lt_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct link_transport *lt = t->impl;
    assert(!lt->closing);
    lt->closing = true;
    lt->close_cb = cb;
    if (lt->listener_open) {
        uv_close((uv_handle_t *)&lt->listener, lt_listener_closed);
    }
    for (struct conn *c = lt->head; c != NULL; c = c->next) {
        if (c->state != DEAD) {
            conn_kill(c, RAFT_CANCELED, NULL);
        }
    }
    transport_maybe_closed(lt);
}

int link_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const struct link_config *cfg)
{
    assert(t != NULL && loop != NULL && cfg != NULL);
    if (sodium_init() < 0) {
        return COALITION_E_INTERNAL;
    }
    if (cfg->secret_key != NULL && cfg->trusted == NULL) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct link_transport *lt = calloc(1, sizeof(*lt));
    if (lt == NULL) {
        return COALITION_E_NOMEM;
    }
    if (cfg->secret_key != NULL) {
        /* The public half must be the one the seed gives. */
        uint8_t pk[LINK_PUBLIC_LEN], sk[LINK_SECRET_LEN];
        crypto_sign_seed_keypair(pk, sk, cfg->secret_key);
        bool ok = sodium_memcmp(pk, cfg->secret_key + 32, LINK_PUBLIC_LEN) == 0;
        sodium_memzero(sk, sizeof(sk));
        if (!ok) {
            free(lt);
            return COALITION_E_INVALID_ARGUMENT;
        }
        lt->has_key = true;
        memcpy(lt->sk, cfg->secret_key, LINK_SECRET_LEN);
        memcpy(lt->pk, pk, LINK_PUBLIC_LEN);
    }
    lt->t = t;
    lt->loop = loop;
    lt->trusted = cfg->trusted;
    lt->trusted_data = cfg->trusted_data;
    lt->channel_accept = cfg->channel_accept;
    lt->channel_data = cfg->channel_data;
    lt->handshake_timeout_ms =
        cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : LINK_HANDSHAKE_TIMEOUT_MS;
    lt->pending_max = cfg->pending_max > 0 ? cfg->pending_max : LINK_PENDING_MAX;
    void *data = t->data;
    memset(t, 0, sizeof(*t));
    t->data = data;
    t->impl = lt;
    t->init = lt_init;
    t->listen = lt_listen;
    t->connect = lt_connect;
    t->close = lt_close;
    return 0;
}

void link_transport_close(struct raft_uv_transport *t)
{
    struct link_transport *lt = t->impl;
    if (lt == NULL) {
        return;
    }
    /* Closed by raft_uv, or never started: nothing may be left open. */
    assert(lt->head == NULL && !lt->listener_open);
    sodium_memzero(lt->sk, sizeof(lt->sk));
    free(lt);
    t->impl = NULL;
}

void link_get_stats(const struct raft_uv_transport *t, struct link_stats *out)
{
    const struct link_transport *lt = t->impl;
    *out = lt->stats;
}

size_t link_conn_count(const struct raft_uv_transport *t)
{
    const struct link_transport *lt = t->impl;
    return lt->n_conns;
}
