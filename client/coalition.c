/* libcoalition (client/coalition.h): one non-blocking TCP connection to a
 * coalitiond node, an output queue of packed request frames and a frame
 * decoder for the answers.  Synchronous calls are a submit plus a wait for
 * that request id (with the retries the caller asked for); pipelined callers
 * submit, flush and poll themselves.  Transactions go out as a plain Txn or,
 * with a signer set, as a SignedGroup of one Txn (proto/auth.c signs). */
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

#include <sodium.h>

#include "auth.h"
#include "frame.h"
#include "program_pb.h"

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
/* Pauses between the retries of a synchronous call: doubling from the first
 * to the last. */
#define CLIENT_RETRY_PAUSE_MS_FIRST 50
#define CLIENT_RETRY_PAUSE_MS_MAX   1000
#define CLIENT_RETRIES_MAX          1000

_Static_assert(COALITION_HASH_LEN == 32, "hashes are BLAKE2b-256");
#define CLIENT_KIND_MIRRORS_(name)                                                                 \
    _Static_assert((int)COALITION_TXN_##name == (int)COALITION__TXN_KIND__TXN_##name,              \
                   "public txn kinds mirror coalition.TxnKind: " #name);
CLIENT_KIND_MIRRORS_(PARTNER_ADD)
CLIENT_KIND_MIRRORS_(MEMBER_ADD)
CLIENT_KIND_MIRRORS_(AWARD)
CLIENT_KIND_MIRRORS_(REDEEM)
CLIENT_KIND_MIRRORS_(REVERSE)
CLIENT_KIND_MIRRORS_(TRANSFER)
CLIENT_KIND_MIRRORS_(PROGRAM_SET)
CLIENT_KIND_MIRRORS_(RULES_SET)
CLIENT_KIND_MIRRORS_(HOLD)
CLIENT_KIND_MIRRORS_(CAPTURE)
CLIENT_KIND_MIRRORS_(RELEASE)
CLIENT_KIND_MIRRORS_(CARD_ADD)
CLIENT_KIND_MIRRORS_(CARD_REPLACE)
CLIENT_KIND_MIRRORS_(IDENTIFY)
CLIENT_KIND_MIRRORS_(MERGE)
CLIENT_KIND_MIRRORS_(ERASE)
CLIENT_KIND_MIRRORS_(EXPIRE)
CLIENT_KIND_MIRRORS_(HOLD_TIMEOUT)
CLIENT_KIND_MIRRORS_(TIER_REVIEW)
CLIENT_KIND_MIRRORS_(INIT)
CLIENT_KIND_MIRRORS_(APIKEY_ADD)
CLIENT_KIND_MIRRORS_(APIKEY_REVOKE)
#undef CLIENT_KIND_MIRRORS_
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
_Static_assert(COALITION_PUBLIC_KEY_LEN == AUTH_PUBLIC_LEN &&
                   COALITION_SECRET_KEY_LEN == AUTH_SECRET_LEN &&
                   COALITION_HASH_LEN == AUTH_HASH_LEN && COALITION_KEY_ID_MAX == AUTH_KEY_ID_HEX,
               "public key sizes are proto/auth.h's");
_Static_assert(COALITION_API_KEY_MAX >= AUTH_API_KEY_LEN, "an API key fits");

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
    unsigned retries; /* synchronous calls: extra attempts after a failure */
    /* Request.api_key of every request; "" sends none. */
    char api_key[COALITION_API_KEY_MAX + 1];
    /* With `signing`, transactions go out as SignedGroups of `signer` ("":
     * the admin) signed with sk (wiped when no longer needed). */
    bool signing;
    char signer[COALITION_ID_MAX + 1];
    uint8_t sk[COALITION_SECRET_KEY_LEN];
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
    sodium_memzero(c->sk, sizeof(c->sk));
    sodium_memzero(c->api_key, sizeof(c->api_key));
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

int coalition_client_set_api_key(struct coalition_client *c, const char *api_key)
{
    assert(c != NULL);
    size_t len = api_key != NULL ? strlen(api_key) : 0;
    if (len > COALITION_API_KEY_MAX) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "an API key has at most %d bytes",
                           COALITION_API_KEY_MAX);
    }
    sodium_memzero(c->api_key, sizeof(c->api_key));
    if (len > 0) {
        memcpy(c->api_key, api_key, len);
    }
    assert(c->api_key[len] == '\0');
    return 0;
}

int coalition_client_set_signer(struct coalition_client *c, const char *signer, const uint8_t *sk)
{
    assert(c != NULL);
    if (signer != NULL && sk == NULL) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "a signer needs its secret key");
    }
    if (signer != NULL && strlen(signer) > COALITION_ID_MAX) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "a signer id has at most %d bytes",
                           COALITION_ID_MAX);
    }
    if (signer != NULL && auth_init() != 0) {
        return client_fail(c, COALITION_E_INTERNAL, "libsodium did not initialize");
    }
    sodium_memzero(c->sk, sizeof(c->sk));
    c->signing = signer != NULL;
    copy_str(c->signer, sizeof(c->signer), signer);
    if (signer != NULL) {
        memcpy(c->sk, sk, sizeof(c->sk));
    }
    return 0;
}

int coalition_secret_key_load(const char *path, uint8_t sk[COALITION_SECRET_KEY_LEN], char *err,
                              size_t errlen)
{
    assert(path != NULL && sk != NULL);
    assert(err != NULL || errlen == 0);
    if (auth_init() != 0) {
        if (errlen > 0) {
            snprintf(err, errlen, "libsodium did not initialize");
        }
        return COALITION_E_INTERNAL;
    }
    char msg[CLIENT_ERRMSG_LEN] = "";
    int rv = auth_load_secret(path, sk, msg, sizeof(msg));
    if (rv != 0) {
        sodium_memzero(sk, COALITION_SECRET_KEY_LEN);
        if (errlen > 0) {
            snprintf(err, errlen, "%s", msg);
        }
    }
    return rv;
}

void coalition_client_set_retries(struct coalition_client *c, unsigned retries)
{
    assert(c != NULL);
    c->retries = retries < CLIENT_RETRIES_MAX ? retries : CLIENT_RETRIES_MAX;
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
    /* Borrowed until packed below. */
    req->api_key = c->api_key[0] != '\0' ? c->api_key : (char *)"";
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
 * *out (caller frees) whatever the node's code, or a local error.  After a
 * timeout the connection is dropped: its late answer would only be
 * discarded, and a node that does not answer is not the one to ask next. */
static int client_call_once(struct coalition_client *c, Coalition__Request *req,
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
        bool write = req->op_case == COALITION__REQUEST__OP_TXN ||
                     req->op_case == COALITION__REQUEST__OP_GROUP ||
                     req->op_case == COALITION__REQUEST__OP_IDENTIFY;
        client_disconnect(c);
        return client_fail(c, COALITION_E_TIMEOUT, "no answer from %s within %d ms%s", c->node,
                           c->timeout_ms, write ? "; retry with the same transaction id" : "");
    }
    assert((*out)->id == id);
    return 0;
}

/* The code of an answer that says "ask again later or elsewhere": the
 * node's own, or the one transaction's of a signed request. */
static int answer_code(const Coalition__Response *resp)
{
    if (resp->code != 0 || resp->n_group_results == 0 || resp->group_results[0] == NULL) {
        return resp->code;
    }
    return resp->group_results[0]->code;
}

static bool code_retryable(int code)
{
    return code == COALITION_E_TIMEOUT || code == COALITION_E_UNREACHABLE ||
           code == COALITION_E_UNAVAILABLE || code == COALITION_E_NOT_LEADER ||
           code == COALITION_E_BUSY || code == COALITION_E_RATE_LIMITED;
}

static void pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* client_call_once, repeated up to c->retries more times while the call
 * fails in a way that a retry may cure (code_retryable).  The same request
 * goes again: a write keeps its txn id, so the node answers a retry of a
 * write that was applied with the original result.  With several addresses
 * each retry starts from the next one.  Membership changes are not
 * retried: the first may have been made. */
static int client_call(struct coalition_client *c, Coalition__Request *req,
                       Coalition__Response **out)
{
    unsigned retries = req->op_case == COALITION__REQUEST__OP_CLUSTER_CHANGE ? 0 : c->retries;
    int wait_ms = CLIENT_RETRY_PAUSE_MS_FIRST;
    for (unsigned attempt = 0;; attempt++) {
        *out = NULL;
        int rv = client_call_once(c, req, out);
        int code = rv != 0 ? rv : answer_code(*out);
        if (attempt >= retries || !code_retryable(code)) {
            return rv;
        }
        if (*out != NULL) {
            frame_free_response(*out);
            *out = NULL;
        }
        if (c->n_addrs > 1) {
            client_disconnect(c);
            c->cur = (c->cur + 1) % c->n_addrs;
            c->node = c->addrs[c->cur];
        }
        pause_ms(wait_ms);
        wait_ms = wait_ms * 2 < CLIENT_RETRY_PAUSE_MS_MAX ? wait_ms * 2 : CLIENT_RETRY_PAUSE_MS_MAX;
    }
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

/* A Txn in protobuf form with room for a program or rules.  Its strings and
 * arrays are borrowed from the coalition_txn it was made from: valid only
 * while that is, which is long enough to pack it. */
struct txn_pb {
    Coalition__Txn txn;
    struct program_pb program;
    Coalition__Rules rules;
    Coalition__Tier tiers[COALITION_TIERS_MAX];
    Coalition__Tier *tier_ptrs[COALITION_TIERS_MAX];
};

/* Checks the length of id number `i` of a program or rules (`field`). */
static int check_id_at(struct coalition_client *c, const char *field, size_t i, const char *s)
{
    if (s != NULL && strlen(s) > COALITION_ID_MAX) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "%s %zu is longer than %d bytes", field,
                           i, COALITION_ID_MAX);
    }
    return 0;
}

/* Checks `p` (counts, arrays, text lengths) and fills pb->program from it
 * (borrowed). */
static int program_to_pb(struct coalition_client *c, const struct coalition_program *p,
                         struct txn_pb *pb)
{
    if (p->n_categories > COALITION_CATEGORIES_MAX || p->n_campaigns > COALITION_CAMPAIGNS_MAX) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT,
                           "a program has at most %d categories and %d campaigns",
                           COALITION_CATEGORIES_MAX, COALITION_CAMPAIGNS_MAX);
    }
    if ((p->n_categories > 0 && p->categories == NULL) ||
        (p->n_campaigns > 0 && p->campaigns == NULL)) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "program arrays missing");
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        int rv = check_id_at(c, "category", i, p->categories[i].category);
        if (rv != 0) {
            return rv;
        }
    }
    for (size_t i = 0; i < p->n_campaigns; i++) {
        int rv = check_id_at(c, "campaign id", i, p->campaigns[i].id);
        if (rv == 0) {
            rv = check_id_at(c, "campaign category", i, p->campaigns[i].category);
        }
        if (rv != 0) {
            return rv;
        }
    }
    program_pb_view(p, &pb->program);
    return 0;
}

/* Fills pb->rules from `r` (borrowed). */
static int rules_to_pb(struct coalition_client *c, const struct coalition_rules *r,
                       struct txn_pb *pb)
{
    if (r->n_tiers > COALITION_TIERS_MAX) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "the rules have at most %d tiers",
                           COALITION_TIERS_MAX);
    }
    if (r->n_tiers > 0 && r->tiers == NULL) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT, "rules tiers missing");
    }
    Coalition__Rules *ru = &pb->rules;
    coalition__rules__init(ru);
    ru->expiry_months = r->expiry_months;
    ru->hold_timeout_s = r->hold_timeout_s;
    for (size_t i = 0; i < r->n_tiers; i++) {
        int rv = check_id_at(c, "tier name", i, r->tiers[i].name);
        if (rv != 0) {
            return rv;
        }
        coalition__tier__init(&pb->tiers[i]);
        pb->tiers[i].name = str_or_empty(r->tiers[i].name);
        pb->tiers[i].threshold = r->tiers[i].threshold;
        pb->tiers[i].multiplier_pct = r->tiers[i].multiplier_pct;
        pb->tier_ptrs[i] = &pb->tiers[i];
    }
    ru->n_tiers = r->n_tiers;
    ru->tiers = r->n_tiers > 0 ? pb->tier_ptrs : NULL;
    return 0;
}

/* Validates what can be checked locally and fills `pb` with borrowed
 * strings from `t`.  Kinds a client cannot submit as a Txn are refused:
 * IDENTIFY (coalition_client_identify sends raw values that only the node
 * hashes) and the kinds the leader schedules. */
static int txn_to_pb(struct coalition_client *c, const struct coalition_txn *t, struct txn_pb *pb)
{
    if (t->kind == COALITION_TXN_IDENTIFY) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT,
                           "identify is sent with coalition_client_identify, not as a Txn");
    }
    if (t->kind >= COALITION_TXN_EXPIRE && t->kind <= COALITION_TXN_TIER_REVIEW) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT,
                           "%s entries are scheduled by the leader, not submitted",
                           coalition_txn_kind_name(t->kind));
    }
    if (t->kind == COALITION_TXN_INIT) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT,
                           "init is recorded by the bootstrap node, not submitted");
    }
    if (t->kind < COALITION_TXN_PARTNER_ADD ||
        (t->kind > COALITION_TXN_ERASE && t->kind != COALITION_TXN_APIKEY_ADD &&
         t->kind != COALITION_TXN_APIKEY_REVOKE)) {
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
        {"old_card", t->old_card, COALITION_ID_MAX}, {"category", t->category, COALITION_ID_MAX},
        {"reason", t->reason, COALITION_REASON_MAX}, {"name", t->name, COALITION_REASON_MAX},
        {"key id", t->key_id, COALITION_ID_MAX},
    };
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        int rv = check_len(c, checks[i].field, checks[i].value, checks[i].max);
        if (rv != 0) {
            return rv;
        }
    }
    Coalition__Txn *tx = &pb->txn;
    coalition__txn__init(tx);
    if (t->program != NULL) {
        int rv = program_to_pb(c, t->program, pb);
        if (rv != 0) {
            return rv;
        }
        tx->program = &pb->program.program;
    }
    if (t->rules != NULL) {
        int rv = rules_to_pb(c, t->rules, pb);
        if (rv != 0) {
            return rv;
        }
        tx->rules = &pb->rules;
    }
    tx->kind = (Coalition__TxnKind)t->kind;
    tx->partner = str_or_empty(t->partner);
    tx->txn_id = str_or_empty(t->txn_id);
    tx->member = str_or_empty(t->member);
    tx->member_to = str_or_empty(t->member_to);
    tx->of_txn = str_or_empty(t->of_txn);
    tx->reason = str_or_empty(t->reason);
    tx->name = str_or_empty(t->name);
    tx->card = str_or_empty(t->card);
    tx->old_card = str_or_empty(t->old_card);
    tx->points = t->points;
    tx->purchase_cents = t->purchase_cents;
    tx->paid_points_cents = t->paid_points_cents;
    tx->category = str_or_empty(t->category);
    tx->timeout_s = t->timeout_s;
    tx->key_id = str_or_empty(t->key_id);
    /* protobuf-c only reads these while packing. */
    if (t->public_key != NULL) {
        tx->public_key.data = (uint8_t *)t->public_key;
        tx->public_key.len = COALITION_PUBLIC_KEY_LEN;
    }
    if (t->key_hash != NULL) {
        tx->key_hash.data = (uint8_t *)t->key_hash;
        tx->key_hash.len = COALITION_HASH_LEN;
    }
    return 0;
}

/* Queues the transaction in `pb` (borrowed): a plain Txn, or with a signer
 * set a SignedGroup of that one Txn, signed here. */
static int client_queue_txn(struct coalition_client *c, struct txn_pb *pb, uint64_t *id)
{
    Coalition__Request req = COALITION__REQUEST__INIT;
    if (!c->signing) {
        req.op_case = COALITION__REQUEST__OP_TXN;
        req.txn = &pb->txn;
        return client_queue(c, &req, id);
    }
    Coalition__SignedGroup group;
    Coalition__Txn *one = &pb->txn;
    int rv = auth_group_make(&group, c->signer, &one, 1, c->sk);
    if (rv != 0) {
        return client_fail(c, rv, "cannot sign: %s", coalition_strerror(rv));
    }
    req.op_case = COALITION__REQUEST__OP_GROUP;
    req.group = &group;
    rv = client_queue(c, &req, id);
    auth_group_clear(&group);
    return rv;
}

static void txn_result_from_pb(struct coalition_txn_result *out, const Coalition__TxnResult *r)
{
    out->seq = r->seq;
    out->duplicate = r->duplicate != 0;
    out->points = r->points;
    out->time_ms = r->time_ms;
    copy_str(out->rule, sizeof(out->rule), r->rule);
}

/* A successful response without the result the request asked for. */
static int client_missing_result(struct coalition_client *c)
{
    return client_fail(c, COALITION_E_BAD_FRAME, "response from %s has no result", c->node);
}

/* The outcome of a transaction from its answer, whichever way it was sent:
 * a signed request is answered in group_results (one per transaction: we
 * send one), a plain one in `txn`.  Returns 0 with *out filled, or the
 * node's code (message kept) or BAD_FRAME.  *out is zeroed first. */
static int client_txn_answer(struct coalition_client *c, const Coalition__Response *resp,
                             struct coalition_txn_result *out)
{
    memset(out, 0, sizeof(*out));
    int rv = client_code(c, resp);
    if (rv != 0) {
        return rv;
    }
    if (resp->n_group_results > 0) {
        const Coalition__GroupTxnResult *g = resp->group_results[0];
        if (resp->n_group_results != 1 || g == NULL) {
            return client_fail(c, COALITION_E_BAD_FRAME,
                               "%s answered one transaction with %zu results", c->node,
                               resp->n_group_results);
        }
        if (g->code != 0) {
            /* The transaction's own verdict: the answer's message is about
             * the request as a whole (which went through). */
            int code = g->code < 0 ? g->code : COALITION_E_INTERNAL;
            return client_fail(c, code, "%s", coalition_strerror(code));
        }
        if (g->txn == NULL) {
            return client_missing_result(c);
        }
        txn_result_from_pb(out, g->txn);
        return 0;
    }
    if (resp->result_case != COALITION__RESPONSE__RESULT_TXN) {
        return client_missing_result(c);
    }
    txn_result_from_pb(out, resp->txn);
    return 0;
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
    struct txn_pb pb;
    int rv = txn_to_pb(c, txn, &pb);
    if (rv != 0) {
        return rv;
    }
    Coalition__SignedGroup group;
    Coalition__Request req = COALITION__REQUEST__INIT;
    if (c->signing) {
        /* Signed once: every retry sends the same bytes. */
        Coalition__Txn *one = &pb.txn;
        rv = auth_group_make(&group, c->signer, &one, 1, c->sk);
        if (rv != 0) {
            return client_fail(c, rv, "cannot sign: %s", coalition_strerror(rv));
        }
        req.op_case = COALITION__REQUEST__OP_GROUP;
        req.group = &group;
    } else {
        req.op_case = COALITION__REQUEST__OP_TXN;
        req.txn = &pb.txn;
    }
    Coalition__Response *resp = NULL;
    rv = client_call(c, &req, &resp);
    if (c->signing) {
        auth_group_clear(&group);
    }
    if (rv == 0) {
        rv = client_txn_answer(c, resp, out);
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
    return coalition_client_balance_at(c, member, 0, out);
}

int coalition_client_balance_at(struct coalition_client *c, const char *member, uint64_t at_ms,
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
    breq.at_ms = at_ms;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_BALANCE;
    req.balance = &breq;
    req.consistent = c->consistent;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_BALANCE, &resp);
    if (rv == 0) {
        const Coalition__BalanceResult *b = resp->balance;
        memset(out, 0, sizeof(*out));
        out->points = b->points;
        out->as_of_seq = b->as_of_seq;
        out->held = b->held;
        out->locked = b->locked;
        copy_str(out->tier, sizeof(out->tier), b->tier);
        copy_str(out->next_tier, sizeof(out->next_tier), b->next_tier);
        out->to_next_tier = b->to_next_tier;
        out->earned_12m = b->earned_12m;
        out->at_ms = b->at_ms;
    }
    frame_free_response(resp);
    return rv;
}

int coalition_client_expiring(struct coalition_client *c, const char *member, uint32_t within_days,
                              uint64_t at_ms, struct coalition_expiring *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    memset(out, 0, sizeof(*out));
    int rv = check_len(c, "member", member, COALITION_ID_MAX);
    if (rv != 0) {
        return rv;
    }
    Coalition__ExpiringRequest ereq = COALITION__EXPIRING_REQUEST__INIT;
    ereq.member = str_or_empty(member);
    ereq.within_days = within_days;
    ereq.at_ms = at_ms;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_EXPIRING;
    req.expiring = &ereq;
    req.consistent = c->consistent;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_EXPIRING, &resp);
    if (rv == 0) {
        const Coalition__ExpiringResult *r = resp->expiring;
        out->at_ms = r->at_ms;
        if (r->n_lots > 0) {
            out->lots = calloc(r->n_lots, sizeof(*out->lots));
            if (out->lots == NULL) {
                rv = client_fail(c, COALITION_E_NOMEM, "out of memory");
            } else {
                out->len = r->n_lots;
                for (size_t i = 0; i < r->n_lots; i++) {
                    const Coalition__ExpiringLot *src = r->lots[i];
                    struct coalition_expiring_lot *dst = &out->lots[i];
                    copy_str(dst->issuer, sizeof(dst->issuer), src->issuer);
                    dst->points = src->points;
                    dst->earned_ms = src->earned_ms;
                    dst->expires_ms = src->expires_ms;
                }
            }
        }
    }
    frame_free_response(resp);
    assert(rv != 0 || out->len == 0 || out->lots != NULL);
    return rv;
}

void coalition_expiring_free(struct coalition_expiring *e)
{
    if (e == NULL) {
        return;
    }
    free(e->lots);
    e->lots = NULL;
    e->len = 0;
}

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int coalition_client_lookup(struct coalition_client *c, const char *card, const char *phone,
                            const char *email, char member[COALITION_ID_MAX + 1])
{
    assert(c != NULL && member != NULL);
    client_begin(c);
    member[0] = '\0';
    if ((int)nonempty(card) + (int)nonempty(phone) + (int)nonempty(email) != 1) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT,
                           "a lookup takes exactly one of card, phone and email");
    }
    int rv = check_len(c, "card", card, COALITION_ID_MAX);
    if (rv == 0) {
        rv = check_len(c, "phone", phone, COALITION_CONTACT_MAX);
    }
    if (rv == 0) {
        rv = check_len(c, "email", email, COALITION_CONTACT_MAX);
    }
    if (rv != 0) {
        return rv;
    }
    Coalition__LookupRequest lreq = COALITION__LOOKUP_REQUEST__INIT;
    lreq.card = str_or_empty(card);
    lreq.phone = str_or_empty(phone);
    lreq.email = str_or_empty(email);
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_LOOKUP;
    req.lookup = &lreq;
    req.consistent = c->consistent;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_LOOKUP, &resp);
    if (rv == 0 && !nonempty(resp->lookup->member)) {
        rv = client_missing_result(c);
    }
    if (rv == 0) {
        copy_str(member, COALITION_ID_MAX + 1, resp->lookup->member);
    }
    frame_free_response(resp);
    return rv;
}

int coalition_client_identify(struct coalition_client *c, const char *member, const char *phone,
                              const char *email, const char *txn_id,
                              struct coalition_txn_result *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    if (!nonempty(phone) && !nonempty(email)) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT,
                           "identify needs a phone number or an email address");
    }
    int rv = check_len(c, "member", member, COALITION_ID_MAX);
    if (rv == 0) {
        rv = check_len(c, "txn id", txn_id, COALITION_ID_MAX);
    }
    if (rv == 0) {
        rv = check_len(c, "phone", phone, COALITION_CONTACT_MAX);
    }
    if (rv == 0) {
        rv = check_len(c, "email", email, COALITION_CONTACT_MAX);
    }
    if (rv != 0) {
        return rv;
    }
    Coalition__IdentifyRequest ireq = COALITION__IDENTIFY_REQUEST__INIT;
    ireq.member = str_or_empty(member);
    ireq.phone = str_or_empty(phone);
    ireq.email = str_or_empty(email);
    ireq.txn_id = str_or_empty(txn_id);
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_IDENTIFY;
    req.identify = &ireq;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_TXN, &resp);
    if (rv == 0) {
        txn_result_from_pb(out, resp->txn);
    }
    frame_free_response(resp);
    return rv;
}

static void flow_from_pb(struct coalition_flow *dst, const Coalition__SettlementFlow *src)
{
    copy_str(dst->issuer, sizeof(dst->issuer), src->issuer);
    copy_str(dst->redeemer, sizeof(dst->redeemer), src->redeemer);
    dst->points = src->points;
    dst->value_mc = src->value_mc;
}

/* A malloc'd copy of `n` flows (NULL for none).  Returns 0 or NOMEM. */
static int flows_from_pb(struct coalition_client *c, Coalition__SettlementFlow *const *src,
                         size_t n, struct coalition_flow **out)
{
    *out = NULL;
    if (n == 0) {
        return 0;
    }
    struct coalition_flow *flows = calloc(n, sizeof(*flows));
    if (flows == NULL) {
        return client_fail(c, COALITION_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        flow_from_pb(&flows[i], src[i]);
    }
    *out = flows;
    return 0;
}

/* A window [from_ms, to_ms) must hold at least one instant. */
static int check_window(struct coalition_client *c, uint64_t from_ms, uint64_t to_ms)
{
    if (from_ms >= to_ms) {
        return client_fail(c, COALITION_E_INVALID_ARGUMENT,
                           "the window must end after it starts (from %" PRIu64 " to %" PRIu64
                           " ms)",
                           from_ms, to_ms);
    }
    return 0;
}

int coalition_client_settlement(struct coalition_client *c, uint64_t from_ms, uint64_t to_ms,
                                struct coalition_settlement *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    memset(out, 0, sizeof(*out));
    int rv = check_window(c, from_ms, to_ms);
    if (rv != 0) {
        return rv;
    }
    Coalition__SettlementRequest sreq = COALITION__SETTLEMENT_REQUEST__INIT;
    sreq.from_ms = from_ms;
    sreq.to_ms = to_ms;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_SETTLEMENT;
    req.settlement = &sreq;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_SETTLEMENT, &resp);
    if (rv == 0) {
        const Coalition__SettlementResult *r = resp->settlement;
        out->from_ms = r->from_ms;
        out->to_ms = r->to_ms;
        out->through_seq = r->through_seq;
        rv = flows_from_pb(c, r->flows, r->n_flows, &out->flows);
        if (rv == 0) {
            out->n_flows = r->n_flows;
        }
        if (rv == 0 && r->n_partners > 0) {
            out->partners = calloc(r->n_partners, sizeof(*out->partners));
            if (out->partners == NULL) {
                rv = client_fail(c, COALITION_E_NOMEM, "out of memory");
            }
        }
        for (size_t i = 0; rv == 0 && i < r->n_partners; i++) {
            const Coalition__PartnerPosition *src = r->partners[i];
            struct coalition_position *dst = &out->partners[i];
            copy_str(dst->partner, sizeof(dst->partner), src->partner);
            dst->issued = src->issued;
            dst->redeemed_at = src->redeemed_at;
            dst->expired = src->expired;
            dst->outstanding = src->outstanding;
            dst->liability_mc = src->liability_mc;
            dst->receivable_mc = src->receivable_mc;
            dst->payable_mc = src->payable_mc;
            dst->net_mc = src->net_mc;
            dst->issued_total = src->issued_total;
            dst->redeemed_total = src->redeemed_total;
            dst->expired_total = src->expired_total;
            out->n_partners = i + 1;
        }
        if (rv == 0 && r->n_payments > 0) {
            out->payments = calloc(r->n_payments, sizeof(*out->payments));
            if (out->payments == NULL) {
                rv = client_fail(c, COALITION_E_NOMEM, "out of memory");
            }
        }
        for (size_t i = 0; rv == 0 && i < r->n_payments; i++) {
            const Coalition__SettlementPayment *src = r->payments[i];
            struct coalition_payment *dst = &out->payments[i];
            copy_str(dst->payer, sizeof(dst->payer), src->payer);
            copy_str(dst->payee, sizeof(dst->payee), src->payee);
            dst->value_mc = src->value_mc;
            out->n_payments = i + 1;
        }
        if (rv != 0) {
            coalition_settlement_free(out);
        }
    }
    frame_free_response(resp);
    return rv;
}

void coalition_settlement_free(struct coalition_settlement *s)
{
    if (s == NULL) {
        return;
    }
    free(s->flows);
    free(s->partners);
    free(s->payments);
    s->flows = NULL;
    s->partners = NULL;
    s->payments = NULL;
    s->n_flows = 0;
    s->n_partners = 0;
    s->n_payments = 0;
}

int coalition_client_report(struct coalition_client *c, const char *partner, uint64_t from_ms,
                            uint64_t to_ms, struct coalition_report *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    memset(out, 0, sizeof(*out));
    int rv = check_len(c, "partner", partner, COALITION_ID_MAX);
    if (rv == 0) {
        rv = check_window(c, from_ms, to_ms);
    }
    if (rv != 0) {
        return rv;
    }
    Coalition__ReportRequest rreq = COALITION__REPORT_REQUEST__INIT;
    rreq.partner = str_or_empty(partner);
    rreq.from_ms = from_ms;
    rreq.to_ms = to_ms;
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_REPORT;
    req.report = &rreq;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_REPORT, &resp);
    if (rv == 0) {
        const Coalition__ReportResult *r = resp->report;
        copy_str(out->partner, sizeof(out->partner), r->partner);
        out->from_ms = r->from_ms;
        out->to_ms = r->to_ms;
        out->through_seq = r->through_seq;
        out->active_members = r->active_members;
        out->purchasers = r->purchasers;
        out->repeat_purchasers = r->repeat_purchasers;
        out->retained_members = r->retained_members;
        out->previous_active = r->previous_active;
        out->purchases = r->purchases;
        out->purchase_cents = r->purchase_cents;
        out->points_issued = r->points_issued;
        out->points_redeemed = r->points_redeemed;
        out->points_expired = r->points_expired;
        out->outstanding = r->outstanding;
        out->liability_mc = r->liability_mc;
        rv = flows_from_pb(c, r->top_flows, r->n_top_flows, &out->top_flows);
        if (rv == 0) {
            out->n_top_flows = r->n_top_flows;
        }
    }
    frame_free_response(resp);
    return rv;
}

void coalition_report_free(struct coalition_report *r)
{
    if (r == NULL) {
        return;
    }
    free(r->top_flows);
    r->top_flows = NULL;
    r->n_top_flows = 0;
}

/* What a coalition_partner_program points into: one block, as large as the
 * node's limits on a program allow (more is a bad answer). */
struct program_mem {
    struct coalition_category_rate cats[COALITION_CATEGORIES_MAX];
    struct coalition_campaign camps[COALITION_CAMPAIGNS_MAX];
    char cat_names[COALITION_CATEGORIES_MAX][COALITION_ID_MAX + 1];
    char camp_ids[COALITION_CAMPAIGNS_MAX][COALITION_ID_MAX + 1];
    char camp_cats[COALITION_CAMPAIGNS_MAX][COALITION_ID_MAX + 1];
};

/* A text of the node's program into `dst`; false if it is longer than an id
 * may be. */
static bool program_text(char dst[COALITION_ID_MAX + 1], const char *src)
{
    if (src != NULL && strlen(src) > COALITION_ID_MAX) {
        return false;
    }
    copy_str(dst, COALITION_ID_MAX + 1, src);
    return true;
}

/* Copies the node's program `src` into out->program (memory in out->mem).
 * 0, BAD_FRAME (over the limits) or NOMEM. */
static int program_from_pb(struct coalition_client *c, const Coalition__Program *src,
                           struct coalition_partner_program *out)
{
    if (src->n_categories > COALITION_CATEGORIES_MAX ||
        src->n_campaigns > COALITION_CAMPAIGNS_MAX) {
        return client_fail(c, COALITION_E_BAD_FRAME, "%s sent a program over the limits", c->node);
    }
    struct program_mem *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return client_fail(c, COALITION_E_NOMEM, "out of memory");
    }
    bool ok = true;
    for (size_t i = 0; i < src->n_categories; i++) {
        ok = ok && program_text(m->cat_names[i], src->categories[i]->category);
        m->cats[i].category = m->cat_names[i];
        m->cats[i].multiplier_pct = src->categories[i]->multiplier_pct;
    }
    for (size_t i = 0; i < src->n_campaigns; i++) {
        const Coalition__Campaign *cp = src->campaigns[i];
        ok = ok && program_text(m->camp_ids[i], cp->id) &&
             program_text(m->camp_cats[i], cp->category);
        m->camps[i] = (struct coalition_campaign){.id = m->camp_ids[i],
                                                  .start_ms = cp->start_ms,
                                                  .end_ms = cp->end_ms,
                                                  .multiplier_pct = cp->multiplier_pct,
                                                  .bonus_points = cp->bonus_points,
                                                  .category = m->camp_cats[i]};
    }
    if (!ok) {
        free(m);
        return client_fail(c, COALITION_E_BAD_FRAME, "%s sent a program text over %d bytes",
                           c->node, COALITION_ID_MAX);
    }
    struct coalition_program *p = &out->program;
    p->point_value_mc = src->point_value_mc;
    p->base_rate_milli = src->base_rate_milli;
    p->categories = src->n_categories > 0 ? m->cats : NULL;
    p->n_categories = src->n_categories;
    p->campaigns = src->n_campaigns > 0 ? m->camps : NULL;
    p->n_campaigns = src->n_campaigns;
    p->min_purchase_cents = src->min_purchase_cents;
    p->lock_days = src->lock_days;
    out->mem = m;
    return 0;
}

int coalition_client_program(struct coalition_client *c, const char *partner,
                             struct coalition_partner_program *out)
{
    assert(c != NULL && out != NULL);
    client_begin(c);
    memset(out, 0, sizeof(*out));
    int rv = check_len(c, "partner", partner, COALITION_ID_MAX);
    if (rv != 0) {
        return rv;
    }
    Coalition__ProgramRequest preq = COALITION__PROGRAM_REQUEST__INIT;
    preq.partner = str_or_empty(partner);
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_PROGRAM;
    req.program = &preq;
    req.consistent = c->consistent;
    Coalition__Response *resp = NULL;
    rv = client_request(c, &req, COALITION__RESPONSE__RESULT_PROGRAM, &resp);
    if (rv == 0 && resp->program->program == NULL) {
        rv = client_missing_result(c);
    }
    if (rv == 0) {
        copy_str(out->partner, sizeof(out->partner), resp->program->partner);
        rv = program_from_pb(c, resp->program->program, out);
    }
    frame_free_response(resp);
    assert(rv != 0 || out->mem != NULL);
    return rv;
}

void coalition_partner_program_free(struct coalition_partner_program *p)
{
    if (p == NULL) {
        return;
    }
    free(p->mem);
    memset(&p->program, 0, sizeof(p->program));
    p->mem = NULL;
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
    struct auth_cluster_sig sig;
    if (c->signing) {
        /* The leader checks the key (the admin's for ADD/ASSIGN/REMOVE), the
         * time against its clock and that the nonce is new. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        auth_cluster_sign(&creq, (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u,
                          c->sk, &sig);
    }
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
    case COALITION_TXN_PROGRAM_SET:
        return "program_set";
    case COALITION_TXN_RULES_SET:
        return "rules_set";
    case COALITION_TXN_HOLD:
        return "hold";
    case COALITION_TXN_CAPTURE:
        return "capture";
    case COALITION_TXN_RELEASE:
        return "release";
    case COALITION_TXN_CARD_ADD:
        return "card_add";
    case COALITION_TXN_CARD_REPLACE:
        return "card_replace";
    case COALITION_TXN_IDENTIFY:
        return "identify";
    case COALITION_TXN_MERGE:
        return "merge";
    case COALITION_TXN_ERASE:
        return "erase";
    case COALITION_TXN_EXPIRE:
        return "expire";
    case COALITION_TXN_HOLD_TIMEOUT:
        return "hold_timeout";
    case COALITION_TXN_TIER_REVIEW:
        return "tier_review";
    case COALITION_TXN_INIT:
        return "init";
    case COALITION_TXN_APIKEY_ADD:
        return "apikey_add";
    case COALITION_TXN_APIKEY_REVOKE:
        return "apikey_revoke";
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
    struct txn_pb pb;
    int rv = txn_to_pb(c, txn, &pb);
    if (rv != 0) {
        return rv;
    }
    return client_queue_txn(c, &pb, request_id);
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
    *code = client_txn_answer(c, resp, out);
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
