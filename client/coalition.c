/* libcoalition (client/coalition.h): one non-blocking TCP connection to a
 * coalitiond node, an output queue of packed request frames and a frame
 * decoder for the answers.  Synchronous calls are a submit plus a wait for
 * that request id; pipelined callers submit, flush and poll themselves. */
#include "coalition.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"

/* Limits on what one client holds: requests submitted and not answered, and
 * bytes queued and not yet written.  Exceeding one returns COALITION_E_BUSY. */
#define CLIENT_OUTSTANDING_MAX ((size_t)65536)
#define CLIENT_QUEUE_BYTES_MAX ((size_t)64 << 20)
/* Bytes read from the socket at once (one decoder chunk). */
#define CLIENT_READ_CHUNK 65536
#define CLIENT_ERRMSG_LEN 256
#define CLIENT_HOST_MAX   256
#define CLIENT_PORT_MAX   32
/* Addresses in one comma-separated node list. */
#define CLIENT_ADDRS_MAX 64

_Static_assert(COALITION_HASH_LEN == 32, "hashes are BLAKE2b-256");
_Static_assert((int)COALITION_TXN_TRANSFER == (int)COALITION__TXN_KIND__TXN_TRANSFER,
               "public txn kinds mirror coalition.TxnKind");
_Static_assert((int)COALITION_TXN_PARTNER_ADD == (int)COALITION__TXN_KIND__TXN_PARTNER_ADD,
               "public txn kinds mirror coalition.TxnKind");
_Static_assert((int)COALITION_ROLE_STANDBY == (int)COALITION__NODE_ROLE__ROLE_STANDBY &&
                   (int)COALITION_ROLE_VOTER == (int)COALITION__NODE_ROLE__ROLE_VOTER &&
                   (int)COALITION_ROLE_SPARE == (int)COALITION__NODE_ROLE__ROLE_SPARE,
               "public roles mirror coalition.NodeRole");
_Static_assert((int)COALITION_CLUSTER_ADD == (int)COALITION__CLUSTER_CHANGE_REQUEST__OP__ADD &&
                   (int)COALITION_CLUSTER_ASSIGN ==
                       (int)COALITION__CLUSTER_CHANGE_REQUEST__OP__ASSIGN &&
                   (int)COALITION_CLUSTER_REMOVE ==
                       (int)COALITION__CLUSTER_CHANGE_REQUEST__OP__REMOVE &&
                   (int)COALITION_CLUSTER_JOIN == (int)COALITION__CLUSTER_CHANGE_REQUEST__OP__JOIN,
               "public cluster ops mirror coalition.ClusterChangeRequest.Op");
_Static_assert(COALITION_ADDR_MAX + 1 >= CLIENT_HOST_MAX + CLIENT_PORT_MAX - 32,
               "an address buffer holds a host and a port");

struct coalition_client {
    int fd;           /* -1 while disconnected; reconnected by the next call */
    int timeout_ms;   /* connect and per-call answer timeout */
    const char *node; /* addrs[cur]: the address in use, for reconnects and messages */
    char *addr_buf;   /* the node list with its commas replaced by NULs */
    const char *addrs[CLIENT_ADDRS_MAX];
    size_t n_addrs;
    size_t cur;
    bool consistent;  /* set Request.consistent on balance and history */
    uint64_t next_id; /* ids increase from 1 and are never reused */
    size_t outstanding;
    struct frame_decoder in;
    uint8_t *out; /* queued frames: [out_start, out_len) not yet written */
    size_t out_start;
    size_t out_len;
    size_t out_cap;
    char errmsg[CLIENT_ERRMSG_LEN];
    char leader_hint[COALITION_ADDR_MAX + 1];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    int rv = clock_gettime(CLOCK_MONOTONIC, &ts);
    assert(rv == 0);
    (void)rv;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - now_ms();
    if (left <= 0) {
        return 0;
    }
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* Records the message of a failed call and returns its code. */
static int client_fail(struct coalition_client *c, int code, const char *fmt, ...)
{
    assert(code < 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return code;
}

/* Copies the C string `src` into `dst` of `size` bytes, truncating. */
static void copy_str(char *dst, size_t size, const char *src)
{
    assert(dst != NULL && size > 0);
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= size) {
        n = size - 1;
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

static void copy_hash(uint8_t dst[COALITION_HASH_LEN], const ProtobufCBinaryData *src)
{
    memset(dst, 0, COALITION_HASH_LEN);
    if (src->data != NULL) {
        memcpy(dst, src->data, src->len < COALITION_HASH_LEN ? src->len : COALITION_HASH_LEN);
    }
}

/* Drops the connection and everything in flight on it. */
static void client_disconnect(struct coalition_client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    frame_decoder_close(&c->in);
    frame_decoder_init(&c->in, FRAME_PAYLOAD_MAX);
    c->out_start = 0;
    c->out_len = 0;
    c->outstanding = 0;
}

/* Splits "host:port" (or "[v6]:port") into its parts. */
static int split_node(const char *node, char host[CLIENT_HOST_MAX], char port[CLIENT_PORT_MAX])
{
    const char *colon = strrchr(node, ':');
    if (colon == NULL || colon[1] == '\0') {
        return -1;
    }
    const char *h = node;
    size_t hlen = (size_t)(colon - node);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    size_t plen = strlen(colon + 1);
    if (hlen == 0 || hlen >= CLIENT_HOST_MAX || plen >= CLIENT_PORT_MAX) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, plen + 1);
    return 0;
}

/* Connects one address without blocking past the deadline.  Returns the
 * connected non-blocking socket or -1 with errno set. */
static int connect_addr(const struct addrinfo *ai, int64_t deadline_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            goto err;
        }
        for (;;) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = poll(&pfd, 1, remaining_ms(deadline_ms));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                goto err;
            }
            if (n == 0) {
                errno = ETIMEDOUT;
                goto err;
            }
            break;
        }
        int soerr = 0;
        socklen_t slen = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0) {
            goto err;
        }
        if (soerr != 0) {
            errno = soerr;
            goto err;
        }
    }
    int one = 1;
    /* Frames are small and latency matters at a till: no Nagle delay. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;

err:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Connects to one address ("host:port") within the client's timeout.
 * Returns the socket, or -1 with c->errmsg set and *code the error. */
static int connect_node(struct coalition_client *c, const char *node, int *code)
{
    char host[CLIENT_HOST_MAX];
    char port[CLIENT_PORT_MAX];
    if (split_node(node, host, port) != 0) {
        *code = client_fail(c, COALITION_E_INVALID_ARGUMENT, "node address '%s' is not host:port",
                            node);
        return -1;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        *code = client_fail(c, COALITION_E_UNREACHABLE, "cannot resolve %s: %s", node,
                            gai_strerror(gai));
        return -1;
    }
    int64_t deadline_ms = now_ms() + c->timeout_ms;
    int err = ECONNREFUSED;
    int fd = -1;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = connect_addr(ai, deadline_ms);
        if (fd >= 0) {
            break;
        }
        err = errno;
        if (remaining_ms(deadline_ms) == 0) {
            break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        *code = client_fail(c, COALITION_E_UNREACHABLE, "cannot connect to %s: %s", node,
                            strerror(err));
    }
    return fd;
}

/* (Re)connects within the client's timeout per address: the address in use
 * first, then the others of the list in order. */
static int client_connect(struct coalition_client *c)
{
    assert(c->fd < 0);
    assert(c->n_addrs > 0 && c->cur < c->n_addrs);
    int code = COALITION_E_UNREACHABLE;
    for (size_t i = 0; i < c->n_addrs; i++) {
        size_t k = (c->cur + i) % c->n_addrs;
        int fd = connect_node(c, c->addrs[k], &code);
        if (fd >= 0) {
            c->fd = fd;
            c->cur = k;
            c->node = c->addrs[k];
            c->errmsg[0] = '\0'; /* an earlier address may have failed */
            return 0;
        }
        if (code == COALITION_E_INVALID_ARGUMENT) {
            return code;
        }
    }
    if (c->n_addrs > 1) {
        char last[CLIENT_ERRMSG_LEN];
        memcpy(last, c->errmsg, sizeof(last));
        return client_fail(c, code, "none of %zu nodes reachable; last: %s", c->n_addrs, last);
    }
    return code;
}

/* Splits the comma-separated node list into c->addrs.  Returns 0 or
 * INVALID_ARGUMENT (an empty or malformed entry, too many entries). */
static int client_set_addrs(struct coalition_client *c, const char *list)
{
    c->addr_buf = strdup(list);
    if (c->addr_buf == NULL) {
        return COALITION_E_NOMEM;
    }
    c->n_addrs = 0;
    char *p = c->addr_buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        char host[CLIENT_HOST_MAX];
        char port[CLIENT_PORT_MAX];
        if (c->n_addrs == CLIENT_ADDRS_MAX || strlen(p) > COALITION_ADDR_MAX ||
            split_node(p, host, port) != 0) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        c->addrs[c->n_addrs++] = p;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    c->cur = 0;
    c->node = c->addrs[0];
    return 0;
}

int coalition_client_create(const char *node, int timeout_ms, struct coalition_client **out)
{
    assert(out != NULL);
    if (node == NULL || timeout_ms <= 0) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct coalition_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return COALITION_E_NOMEM;
    }
    c->fd = -1;
    int rv = client_set_addrs(c, node);
    if (rv != 0) {
        free(c->addr_buf);
        free(c);
        return rv;
    }
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    frame_decoder_init(&c->in, FRAME_PAYLOAD_MAX);
    rv = client_connect(c);
    if (rv != 0) {
        coalition_client_destroy(c);
        return rv;
    }
    *out = c;
    return 0;
}

void coalition_client_destroy(struct coalition_client *c)
{
    if (c == NULL) {
        return;
    }
    client_disconnect(c);
    frame_decoder_close(&c->in);
    free(c->out);
    free(c->addr_buf);
    free(c);
}

const char *coalition_client_errmsg(const struct coalition_client *c)
{
    assert(c != NULL);
    return c->errmsg;
}

const char *coalition_client_node(const struct coalition_client *c)
{
    assert(c != NULL);
    return c->node;
}

const char *coalition_client_leader_hint(const struct coalition_client *c)
{
    assert(c != NULL);
    return c->leader_hint;
}

void coalition_client_set_consistent(struct coalition_client *c, bool consistent)
{
    assert(c != NULL);
    c->consistent = consistent;
}

/* Every public call starts with no message and no leader hint. */
static void client_begin(struct coalition_client *c)
{
    c->errmsg[0] = '\0';
    c->leader_hint[0] = '\0';
}

int coalition_client_fd(const struct coalition_client *c)
{
    assert(c != NULL);
    return c->fd;
}

size_t coalition_client_outstanding(const struct coalition_client *c)
{
    assert(c != NULL);
    return c->outstanding;
}

/* Appends one request to the output queue, giving it the next id.  Connects
 * first if the connection was lost. */
static int client_queue(struct coalition_client *c, Coalition__Request *req, uint64_t *id)
{
    if (c->fd < 0) {
        int rv = client_connect(c);
        if (rv != 0) {
            return rv;
        }
    }
    if (c->outstanding >= CLIENT_OUTSTANDING_MAX) {
        return client_fail(c, COALITION_E_BUSY, "%zu requests in flight: poll for answers first",
                           c->outstanding);
    }
    req->id = c->next_id;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    int rv = frame_pack_request(req, &frame, &frame_len);
    if (rv != 0) {
        return client_fail(c, rv, "%s", coalition_strerror(rv));
    }
    size_t queued = c->out_len - c->out_start;
    if (queued + frame_len > CLIENT_QUEUE_BYTES_MAX) {
        free(frame);
        return client_fail(c, COALITION_E_BUSY, "%zu bytes queued: flush or poll first", queued);
    }
    if (c->out_cap - c->out_len < frame_len) {
        if (c->out_start > 0) {
            memmove(c->out, c->out + c->out_start, queued);
            c->out_start = 0;
            c->out_len = queued;
        }
        if (c->out_cap - c->out_len < frame_len) {
            size_t cap = c->out_cap > 0 ? c->out_cap : 4096;
            while (cap < queued + frame_len) {
                cap *= 2;
            }
            uint8_t *buf = realloc(c->out, cap);
            if (buf == NULL) {
                free(frame);
                return client_fail(c, COALITION_E_NOMEM, "out of memory");
            }
            c->out = buf;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, frame, frame_len);
    c->out_len += frame_len;
    free(frame);

    *id = c->next_id++;
    c->outstanding++;
    assert(c->out_start <= c->out_len && c->out_len <= c->out_cap);
    return 0;
}

/* Writes what the socket takes now.  Returns 0 or UNREACHABLE. */
static int client_write(struct coalition_client *c)
{
    while (c->out_start < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_start, c->out_len - c->out_start,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            int err = errno;
            client_disconnect(c);
            return client_fail(c, COALITION_E_UNREACHABLE, "connection to %s lost: %s", c->node,
                               strerror(err));
        }
        c->out_start += (size_t)n;
    }
    if (c->out_start == c->out_len) {
        c->out_start = 0;
        c->out_len = 0;
    }
    return 0;
}

/* Reads one chunk into the decoder.  Returns 1 if bytes arrived, 0 if none
 * were ready, or UNREACHABLE/NOMEM (the connection is then dropped). */
static int client_read(struct coalition_client *c)
{
    uint8_t chunk[CLIENT_READ_CHUNK];
    for (;;) {
        ssize_t n = recv(c->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n > 0) {
            int rv = frame_decoder_feed(&c->in, chunk, (size_t)n);
            if (rv != 0) {
                client_disconnect(c);
                return client_fail(c, rv, "out of memory");
            }
            return 1;
        }
        if (n == 0) {
            client_disconnect(c);
            return client_fail(c, COALITION_E_UNREACHABLE, "connection closed by %s", c->node);
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        int err = errno;
        client_disconnect(c);
        return client_fail(c, COALITION_E_UNREACHABLE, "connection to %s lost: %s", c->node,
                           strerror(err));
    }
}

/* Takes the next buffered response, if a whole one is there.  Returns 1 with
 * *out (caller frees), 0 if none is complete, or a negative code after which
 * the connection is dropped: a frame we cannot decode, or the node's
 * connection-level error (id 0: our stream was bad, it closes). */
static int client_next_response(struct coalition_client *c, Coalition__Response **out)
{
    const uint8_t *payload = NULL;
    size_t payload_len = 0;
    int rv = frame_decoder_next(&c->in, &payload, &payload_len);
    if (rv == 0) {
        return 0;
    }
    if (rv < 0) {
        client_disconnect(c);
        return client_fail(c, rv, "bad frame from %s: %s", c->node, coalition_strerror(rv));
    }
    Coalition__Response *resp = NULL;
    rv = frame_unpack_response(payload, payload_len, &resp);
    if (rv != 0) {
        client_disconnect(c);
        return client_fail(c, rv, "undecodable response from %s", c->node);
    }
    if (resp->id == 0) {
        int code = resp->code < 0 ? resp->code : COALITION_E_BAD_FRAME;
        client_fail(c, code, "%s",
                    resp->message[0] != '\0' ? resp->message : coalition_strerror(code));
        frame_free_response(resp);
        client_disconnect(c);
        return code;
    }
    if (c->outstanding > 0) {
        c->outstanding--;
    }
    *out = resp;
    return 1;
}

/* Waits up to timeout_ms for the response to `want_id` (0: any request),
 * writing queued requests meanwhile.  Responses to other ids are discarded.
 * Returns 1 with *out, 0 on timeout, or a negative code if the connection
 * failed. */
static int client_await(struct coalition_client *c, int timeout_ms, uint64_t want_id,
                        Coalition__Response **out)
{
    assert(timeout_ms >= 0);
    int64_t deadline_ms = now_ms() + timeout_ms;
    for (;;) {
        if (c->fd < 0) {
            return client_fail(c, COALITION_E_UNREACHABLE, "not connected to %s", c->node);
        }
        Coalition__Response *resp = NULL;
        int rv = client_next_response(c, &resp);
        if (rv < 0) {
            return rv;
        }
        if (rv == 1) {
            if (want_id == 0 || resp->id == want_id) {
                *out = resp;
                return 1;
            }
            frame_free_response(resp);
            continue;
        }
        rv = client_write(c);
        if (rv != 0) {
            return rv;
        }
        rv = client_read(c);
        if (rv < 0) {
            return rv;
        }
        if (rv == 1) {
            continue;
        }
        int wait_ms = remaining_ms(deadline_ms);
        if (wait_ms == 0) {
            return 0;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (c->out_start < c->out_len) {
            pfd.events |= POLLOUT;
        }
        int n = poll(&pfd, 1, wait_ms);
        if (n < 0 && errno != EINTR) {
            int err = errno;
            client_disconnect(c);
            return client_fail(c, COALITION_E_UNREACHABLE, "poll: %s", strerror(err));
        }
    }
}

/* The node's verdict: 0, or its negative code with its message kept.  Keeps
 * the leader hint that came with the answer. */
static int client_code(struct coalition_client *c, const Coalition__Response *resp)
{
    copy_str(c->leader_hint, sizeof(c->leader_hint), resp->leader_hint);
    if (resp->code == 0) {
        return 0;
    }
    int code = resp->code < 0 ? resp->code : COALITION_E_INTERNAL;
    return client_fail(c, code, "%s",
                       resp->message[0] != '\0' ? resp->message : coalition_strerror(code));
}

/* One synchronous round trip: queue, then wait for this id.  Returns 0 with
 * *out (caller frees) whatever the node's code, or a local error. */
static int client_call(struct coalition_client *c, Coalition__Request *req,
                       Coalition__Response **out)
{
    uint64_t id = 0;
    int rv = client_queue(c, req, &id);
    if (rv != 0) {
        return rv;
    }
    rv = client_await(c, c->timeout_ms, id, out);
    if (rv < 0) {
        return rv;
    }
    if (rv == 0) {
        /* Only a write has a transaction id to retry with. */
        return client_fail(
            c, COALITION_E_TIMEOUT, "no answer from %s within %d ms%s", c->node, c->timeout_ms,
            req->op_case == COALITION__REQUEST__OP_TXN ? "; retry with the same transaction id"
                                                       : "");
    }
    assert((*out)->id == id);
    return 0;
}

static int check_len(struct coalition_client *c, const char *field, const char *s, size_t max)
{
    if (s != NULL && strlen(s) > max) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "%s is longer than %zu bytes", field,
                           max);
    }
    return 0;
}

static char *str_or_empty(const char *s)
{
    /* protobuf-c only reads these while packing. */
    return (char *)(s != NULL ? s : "");
}

/* Validates what can be checked locally and fills `pb` with borrowed
 * strings from `t`. */
static int txn_to_pb(struct coalition_client *c, const struct coalition_txn *t, Coalition__Txn *pb)
{
    if (t->kind < COALITION_TXN_PARTNER_ADD || t->kind > COALITION_TXN_TRANSFER) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "unknown transaction kind %d",
                           (int)t->kind);
    }
    const struct {
        const char *field;
        const char *value;
        size_t max;
    } checks[] = {
        {"partner", t->partner, COALITION_ID_MAX},   {"txn id", t->txn_id, COALITION_ID_MAX},
        {"member", t->member, COALITION_ID_MAX},     {"member_to", t->member_to, COALITION_ID_MAX},
        {"of_txn", t->of_txn, COALITION_ID_MAX},     {"card", t->card, COALITION_ID_MAX},
        {"reason", t->reason, COALITION_REASON_MAX}, {"name", t->name, COALITION_REASON_MAX},
    };
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        int rv = check_len(c, checks[i].field, checks[i].value, checks[i].max);
        if (rv != 0) {
            return rv;
        }
    }
    coalition__txn__init(pb);
    pb->kind = (Coalition__TxnKind)t->kind;
    pb->partner = str_or_empty(t->partner);
    pb->txn_id = str_or_empty(t->txn_id);
    pb->member = str_or_empty(t->member);
    pb->member_to = str_or_empty(t->member_to);
    pb->of_txn = str_or_empty(t->of_txn);
    pb->reason = str_or_empty(t->reason);
    pb->name = str_or_empty(t->name);
    pb->card = str_or_empty(t->card);
    pb->points = t->points;
    return 0;
}

static void txn_result_from_pb(struct coalition_txn_result *out, const Coalition__TxnResult *r)
{
    out->seq = r->seq;
    out->duplicate = r->duplicate != 0;
    out->points = r->points;
    out->time_ms = r->time_ms;
}

/* A successful response without the result the request asked for. */
static int client_missing_result(struct coalition_client *c)
{
    return client_fail(c, COALITION_E_BAD_FRAME, "response from %s has no result", c->node);
}

/* Sends `req` and checks the answer: 0 when it has code 0 and the result
 * `want` (RESULT__NOT_SET: none expected), else the error.  Either way *resp
 * may hold the answer (NULL if none came): free it with frame_free_response. */
static int client_request(struct coalition_client *c, Coalition__Request *req,
                          Coalition__Response__ResultCase want, Coalition__Response **resp)
{
    *resp = NULL;
    int rv = client_call(c, req, resp);
    if (rv != 0) {
        return rv;
    }
    rv = client_code(c, *resp);
    if (rv == 0 && want != COALITION__RESPONSE__RESULT__NOT_SET && (*resp)->result_case != want) {
        rv = client_missing_result(c);
    }
    return rv;
}

int coalition_client_status(struct coalition_client *c, struct coalition_status *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    Coalition__StatusRequest sreq = COALITION__STATUS_REQUEST__INIT;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_STATUS;
    req.status = &sreq;
    Coalition__Response *resp = NULL;
    int rv = client_request(c, &req, COALITION__RESPONSE__RESULT_STATUS, &resp);
    if (rv == 0) {
        const Coalition__StatusResult *s = resp->status;
        memset(out, 0, sizeof(*out));
        out->node_id = s->node_id;
        copy_str(out->role, sizeof(out->role), s->role);
        out->applied_seq = s->applied_seq;
        out->applied_index = s->applied_index;
        copy_hash(out->head_hash, &s->head_hash);
        out->leader_id = s->leader_id;
        copy_str(out->membership, sizeof(out->membership), s->membership);
        out->last_index = s->last_index;
    }
    frame_free_response(resp);
    return rv;
}

int coalition_client_txn(struct coalition_client *c, const struct coalition_txn *txn,
                         struct coalition_txn_result *out)
{
    assert(c != NULL && txn != NULL && out != NULL);
    client_begin(c);
    Coalition__Txn pb;
    int rv = txn_to_pb(c, txn, &pb);
    if (rv != 0) {
        return rv;
    }
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_TXN;
    req.txn = &pb;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_TXN, &resp);
    if (rv == 0) {
        txn_result_from_pb(out, resp->txn);
    }
    frame_free_response(resp);
    return rv;
}

int coalition_client_award(struct coalition_client *c, const char *partner, const char *member,
                           int64_t points, const char *txn_id, const char *reason,
                           struct coalition_txn_result *out)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_AWARD,
        .partner = partner,
        .member = member,
        .points = points,
        .txn_id = txn_id,
        .reason = reason,
    };
    return coalition_client_txn(c, &t, out);
}

int coalition_client_redeem(struct coalition_client *c, const char *partner, const char *member,
                            int64_t points, const char *txn_id, struct coalition_txn_result *out)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_REDEEM,
        .partner = partner,
        .member = member,
        .points = points,
        .txn_id = txn_id,
    };
    return coalition_client_txn(c, &t, out);
}

int coalition_client_balance(struct coalition_client *c, const char *member,
                             struct coalition_balance *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    int rv = check_len(c, "member", member, COALITION_ID_MAX);
    if (rv != 0) {
        return rv;
    }
    Coalition__BalanceRequest breq = COALITION__BALANCE_REQUEST__INIT;
    breq.member = str_or_empty(member);
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_BALANCE;
    req.balance = &breq;
    req.consistent = c->consistent;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_BALANCE, &resp);
    if (rv == 0) {
        out->points = resp->balance->points;
        out->as_of_seq = resp->balance->as_of_seq;
    }
    frame_free_response(resp);
    return rv;
}

int coalition_client_history(struct coalition_client *c, const char *member, uint32_t limit,
                             struct coalition_history *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    out->len = 0;
    out->items = NULL;
    int rv = check_len(c, "member", member, COALITION_ID_MAX);
    if (rv != 0) {
        return rv;
    }
    Coalition__HistoryRequest hreq = COALITION__HISTORY_REQUEST__INIT;
    hreq.member = str_or_empty(member);
    hreq.limit = limit;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_HISTORY;
    req.history = &hreq;
    req.consistent = c->consistent;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_HISTORY, &resp);
    if (rv == 0 && resp->history->n_items > 0) {
        size_t n = resp->history->n_items;
        struct coalition_history_item *items = calloc(n, sizeof(*items));
        if (items == NULL) {
            rv = client_fail(c, COALITION_E_NOMEM, "out of memory");
        } else {
            for (size_t i = 0; i < n; i++) {
                const Coalition__HistoryItem *src = resp->history->items[i];
                struct coalition_history_item *dst = &items[i];
                dst->seq = src->seq;
                dst->time_ms = src->time_ms;
                dst->kind = (enum coalition_txn_kind)src->kind;
                dst->delta = src->delta;
                copy_str(dst->partner, sizeof(dst->partner), src->partner);
                copy_str(dst->txn_id, sizeof(dst->txn_id), src->txn_id);
                copy_str(dst->counterparty, sizeof(dst->counterparty), src->counterparty);
                copy_str(dst->reason, sizeof(dst->reason), src->reason);
            }
            out->items = items;
            out->len = n;
        }
    }
    frame_free_response(resp);
    return rv;
}

void coalition_history_free(struct coalition_history *h)
{
    if (h == NULL) {
        return;
    }
    free(h->items);
    h->items = NULL;
    h->len = 0;
}

int coalition_client_verify(struct coalition_client *c, struct coalition_verify *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    memset(out, 0, sizeof(*out));
    Coalition__VerifyRequest vreq = COALITION__VERIFY_REQUEST__INIT;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_VERIFY;
    req.verify = &vreq;
    Coalition__Response *resp = NULL;
    int rv = client_call(c, &req, &resp);
    if (rv != 0) {
        return rv;
    }
    /* A failed verification still carries the report (where it broke). */
    if (resp->result_case == COALITION__RESPONSE__RESULT_VERIFY) {
        const Coalition__VerifyResult *v = resp->verify;
        out->entries_checked = v->entries_checked;
        out->accounts_checked = v->accounts_checked;
        out->broken_seq = v->broken_seq;
        copy_hash(out->head_hash, &v->head_hash);
        copy_hash(out->state_digest, &v->state_digest);
    }
    rv = client_code(c, resp);
    if (rv == 0 && resp->result_case != COALITION__RESPONSE__RESULT_VERIFY) {
        rv = client_missing_result(c);
    }
    frame_free_response(resp);
    return rv;
}

int coalition_client_cluster_status(struct coalition_client *c, struct coalition_cluster *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    memset(out, 0, sizeof(*out));
    Coalition__ClusterStatusRequest creq = COALITION__CLUSTER_STATUS_REQUEST__INIT;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_CLUSTER_STATUS;
    req.cluster_status = &creq;
    Coalition__Response *resp = NULL;
    int rv = client_request(c, &req, COALITION__RESPONSE__RESULT_CLUSTER_STATUS, &resp);
    if (rv == 0) {
        const Coalition__ClusterStatusResult *r = resp->cluster_status;
        out->node_id = r->node_id;
        out->leader_id = r->leader_id;
        if (r->n_nodes > 0) {
            out->nodes = calloc(r->n_nodes, sizeof(*out->nodes));
            if (out->nodes == NULL) {
                rv = client_fail(c, COALITION_E_NOMEM, "out of memory");
            } else {
                out->len = r->n_nodes;
                for (size_t i = 0; i < r->n_nodes; i++) {
                    const Coalition__ClusterNode *src = r->nodes[i];
                    struct coalition_cluster_node *dst = &out->nodes[i];
                    dst->id = src->id;
                    /* Passed through as sent: a role this library does not
                     * know has no name (coalition_role_name gives NULL). */
                    dst->role = (enum coalition_role)src->role;
                    copy_str(dst->raft_addr, sizeof(dst->raft_addr), src->raft_addr);
                    copy_str(dst->client_addr, sizeof(dst->client_addr), src->client_addr);
                }
            }
        }
    }
    frame_free_response(resp);
    assert(rv != 0 || out->len == 0 || out->nodes != NULL);
    return rv;
}

void coalition_cluster_free(struct coalition_cluster *cl)
{
    if (cl == NULL) {
        return;
    }
    free(cl->nodes);
    cl->nodes = NULL;
    cl->len = 0;
}

int coalition_client_cluster_change(struct coalition_client *c, enum coalition_cluster_op op,
                                    uint64_t id, const char *raft_addr, const char *client_addr,
                                    enum coalition_role role)
{
    assert(c != NULL);
    client_begin(c);
    if ((int)op < (int)COALITION_CLUSTER_ADD || (int)op > (int)COALITION_CLUSTER_JOIN) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "unknown cluster change %d", (int)op);
    }
    if (coalition_role_name(role) == NULL) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "unknown role %d", (int)role);
    }
    if (id == 0) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "node id 0 is not valid");
    }
    if ((op == COALITION_CLUSTER_ADD || op == COALITION_CLUSTER_JOIN) &&
        (raft_addr == NULL || raft_addr[0] == '\0')) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "adding a node needs its raft address");
    }
    int rv = check_len(c, "raft address", raft_addr, COALITION_ADDR_MAX);
    if (rv == 0) {
        rv = check_len(c, "client address", client_addr, COALITION_ADDR_MAX);
    }
    if (rv != 0) {
        return rv;
    }
    Coalition__ClusterChangeRequest creq = COALITION__CLUSTER_CHANGE_REQUEST__INIT;
    creq.op = (Coalition__ClusterChangeRequest__Op)op;
    creq.id = id;
    creq.raft_addr = str_or_empty(raft_addr);
    creq.client_addr = str_or_empty(client_addr);
    creq.role = (Coalition__NodeRole)role;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_CLUSTER_CHANGE;
    req.cluster_change = &creq;
    Coalition__Response *resp = NULL;
    /* Success is an empty answer with code 0. */
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT__NOT_SET, &resp);
    frame_free_response(resp);
    return rv;
}

int coalition_client_entry_hash(struct coalition_client *c, uint64_t seq,
                                uint8_t out[COALITION_HASH_LEN])
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    if (seq == 0) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "entries are numbered from 1");
    }
    Coalition__EntryHashRequest ereq = COALITION__ENTRY_HASH_REQUEST__INIT;
    ereq.seq = seq;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_ENTRY_HASH;
    req.entry_hash = &ereq;
    Coalition__Response *resp = NULL;
    int rv = client_request(c, &req, COALITION__RESPONSE__RESULT_ENTRY_HASH, &resp);
    if (rv == 0 &&
        (resp->entry_hash->seq != seq || resp->entry_hash->hash.len != COALITION_HASH_LEN)) {
        rv = client_fail(c, COALITION_E_BAD_FRAME,
                         "%s answered entry %" PRIu64 " with %zu hash bytes for seq %" PRIu64,
                         c->node, seq, resp->entry_hash->hash.len, resp->entry_hash->seq);
    }
    if (rv == 0) {
        memcpy(out, resp->entry_hash->hash.data, COALITION_HASH_LEN);
    }
    frame_free_response(resp);
    return rv;
}

const char *coalition_txn_kind_name(enum coalition_txn_kind kind)
{
    switch (kind) {
    case COALITION_TXN_PARTNER_ADD:
        return "partner_add";
    case COALITION_TXN_MEMBER_ADD:
        return "member_add";
    case COALITION_TXN_AWARD:
        return "award";
    case COALITION_TXN_REDEEM:
        return "redeem";
    case COALITION_TXN_REVERSE:
        return "reverse";
    case COALITION_TXN_TRANSFER:
        return "transfer";
    }
    return "unknown";
}

const char *coalition_role_name(enum coalition_role role)
{
    switch (role) {
    case COALITION_ROLE_STANDBY:
        return "standby";
    case COALITION_ROLE_VOTER:
        return "voter";
    case COALITION_ROLE_SPARE:
        return "spare";
    }
    return NULL;
}

bool coalition_role_parse(const char *name, enum coalition_role *out)
{
    assert(name != NULL && out != NULL);
    static const enum coalition_role roles[] = {COALITION_ROLE_STANDBY, COALITION_ROLE_VOTER,
                                                COALITION_ROLE_SPARE};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(name, coalition_role_name(roles[i])) == 0) {
            *out = roles[i];
            return true;
        }
    }
    return false;
}

int coalition_client_submit(struct coalition_client *c, const struct coalition_txn *txn,
                            uint64_t *request_id)
{
    assert(c != NULL && txn != NULL && request_id != NULL);
    client_begin(c);
    Coalition__Txn pb;
    int rv = txn_to_pb(c, txn, &pb);
    if (rv != 0) {
        return rv;
    }
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_TXN;
    req.txn = &pb;
    return client_queue(c, &req, request_id);
}

int coalition_client_flush(struct coalition_client *c)
{
    assert(c != NULL);
    client_begin(c);
    if (c->fd < 0) {
        return client_fail(c, COALITION_E_UNREACHABLE, "not connected to %s", c->node);
    }
    return client_write(c);
}

int coalition_client_poll(struct coalition_client *c, int timeout_ms, uint64_t *request_id,
                          int *code, struct coalition_txn_result *out)
{
    assert(c != NULL && request_id != NULL && code != NULL && out != NULL);
    client_begin(c);
    if (c->fd < 0) {
        return client_fail(c, COALITION_E_UNREACHABLE, "not connected to %s", c->node);
    }
    if (c->outstanding == 0 && c->out_start == c->out_len) {
        return 0; /* nothing can arrive */
    }
    Coalition__Response *resp = NULL;
    int rv = client_await(c, timeout_ms > 0 ? timeout_ms : 0, 0, &resp);
    if (rv <= 0) {
        return rv;
    }
    *request_id = resp->id;
    *code = client_code(c, resp);
    if (*code == 0 && resp->result_case != COALITION__RESPONSE__RESULT_TXN) {
        *code = client_missing_result(c);
    }
    memset(out, 0, sizeof(*out));
    if (resp->result_case == COALITION__RESPONSE__RESULT_TXN) {
        txn_result_from_pb(out, resp->txn);
    }
    frame_free_response(resp);
    return 1;
}

void coalition_hash_hex(const uint8_t hash[COALITION_HASH_LEN], char *out)
{
    static const char digits[] = "0123456789abcdef";
    assert(hash != NULL && out != NULL);
    for (size_t i = 0; i < COALITION_HASH_LEN; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 0x0f];
    }
    out[2 * COALITION_HASH_LEN] = '\0';
}
