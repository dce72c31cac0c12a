/* The forwarder: a follower's path to the leader.  Client requests that only
 * the leader may serve (writes, consistent reads, membership changes) are
 * sent over one connection to the leader, marked `forwarded`, and the
 * leader's answers are relayed back.  The connection is a forwarding channel
 * over the authenticated, encrypted links (node/link.c) when the address is
 * "ID@HOST:PORT" (the leader's raft id and raft address), or plain TCP to a
 * client port for "HOST:PORT" (a join, or the HTTP front talking to its own
 * node).  Nothing is retried
 * here: a request whose fate is unknown is answered UNAVAILABLE, and the
 * client retries with the same txn id (idempotent). */
#ifndef COALITION_FORWARD_H
#define COALITION_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "coalition.pb-c.h"

/* Bytes of an address with its NUL: "ID@" (up to 21) and a "host:port" of
 * up to CONFIG_ADDR_MAX. */
#define FORWARD_ADDR_MAX 277

/* Requests in flight to the leader; beyond it, forwarder_send answers BUSY. */
#define FORWARD_INFLIGHT_MAX 65536

struct forward_req;
struct forwarder;

/* Called exactly once per forwarded request.  On success code is 0 and
 * `resp` is the leader's answer (owned by the forwarder, valid only during
 * the callback; its id is the forwarder's, not the client's).  Otherwise
 * code is COALITION_E_UNAVAILABLE (no connection, connection lost, no answer
 * within the timeout, forwarder closing) or COALITION_E_BUSY, and resp is
 * NULL. */
typedef void (*forward_cb)(struct forward_req *req, int code, const Coalition__Response *resp);

/* One forwarded request.  Caller-allocated; must stay valid until its
 * callback runs. */
struct forward_req {
    void *data; /* public: for the caller */
    /* private */
    forward_cb cb;
    uint64_t id;
    uint64_t deadline_ms;
    struct forward_req *prev, *next;
};

struct forwarder_conn; /* private */

/* Opens a channel to node `id` at raft address `addr` (borrowed): 0 with
 * *fd a connected stream socket the forwarder then owns, or a negative
 * COALITION_E_* code (the request is answered with it, or UNAVAILABLE). */
typedef int (*forward_dial_fn)(void *data, uint64_t id, const char *addr, int *fd);

struct forwarder {
    /* public: set after forwarder_init to send requests as a client does,
     * without `forwarded` (the HTTP front talking to its own node) */
    bool as_client;
    /* public: how "ID@HOST:PORT" addresses are reached (NULL: they fail
     * with UNAVAILABLE) */
    forward_dial_fn dial;
    void *dial_data;
    /* private */
    uv_loop_t *loop;
    uint64_t timeout_ms;
    uv_timer_t timer;
    struct forwarder_conn *conn; /* current connection, or NULL */
    struct forward_req *failed;  /* to answer at the next tick (id 0: BUSY, else UNAVAILABLE) */
    uint64_t next_id;
    size_t inflight;
    bool closing;
    void (*close_cb)(struct forwarder *f);
};

/* Initialises a forwarder on `loop`; each request is answered within about
 * timeout_ms.  Returns 0 or a negative code. */
int forwarder_init(struct forwarder *f, uv_loop_t *loop, uint64_t timeout_ms);

/* Fails every request in flight with UNAVAILABLE, closes the connection and
 * handles, then calls cb (may be NULL).  The forwarder's memory may be
 * released after cb. */
void forwarder_close(struct forwarder *f, void (*cb)(struct forwarder *f));

/* Forwards `msg` (borrowed: packed before return, with a new request id and
 * forwarded = true, or false with as_client) to the node at `addr`
 * ("host:port" or "id@host:port", borrowed).  If the
 * current connection goes elsewhere it is closed first and its requests fail
 * with UNAVAILABLE; a connection is (re)opened as needed.  `cb` runs exactly
 * once, never before this function returns. */
void forwarder_send(struct forwarder *f, const char *addr, const Coalition__Request *msg,
                    struct forward_req *req, forward_cb cb);

/* Requests in flight. */
size_t forwarder_inflight(const struct forwarder *f);

#endif
