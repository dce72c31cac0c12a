/* The HTTP/JSON front of coalitiond: a libuv TCP server that parses HTTP/1.1
 * (keep-alive, pipelined requests answered in order), translates each
 * request (http_routes.h) into a Coalition__Request and sends it to this
 * node's own frame port through a forwarder, so that authentication,
 * routing to the leader and batching stay in server.c.  GET /health and
 * GET /metrics are answered here.  Limits: header and body size, idle and
 * request timeouts, connections per remote address and in total, requests
 * pipelined per connection, output queued per connection. */
#ifndef COALITION_HTTP_H
#define COALITION_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "batcher.h"
#include "cluster.h"
#include "config.h"
#include "forward.h"
#include "metrics.h"

#define HTTP_CONNECTIONS_MAX 4096 /* open HTTP connections; more are closed at once */
#define HTTP_PIPELINE_MAX    32   /* requests of one connection under way; parsing waits */
#define HTTP_OUT_MAX         ((size_t)1 << 20) /* unsent answer bytes; parsing waits */
#define HTTP_ADDR_BUCKETS    256               /* hash table of remote addresses */

/* What the HTTP front serves from.  Pointers are borrowed, read only, and
 * must outlive the server. */
struct http_deps {
    uint64_t node_id;
    const char *node_addr;         /* this node's frame address (cfg listen) */
    struct cluster *cluster;       /* status and indexes for /health, /metrics */
    const struct batcher *batcher; /* batch statistics for /metrics */
    uint64_t node_timeout_ms;      /* a request unanswered by the node this long: 503 */
    size_t header_max;             /* bytes of request line + headers: 431 beyond */
    size_t body_max;               /* bytes of a body: 413 beyond */
    uint64_t idle_timeout_ms;      /* close a connection with nothing under way */
    uint64_t request_timeout_ms;   /* a started request must arrive whole in time: 408 */
    unsigned conns_per_addr;       /* open connections per remote address */
};

struct http_conn;
struct http_addr;

struct http_server {
    /* private */
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct forwarder fwd; /* to node_addr, as a client */
    struct http_deps deps;
    char node_addr[CONFIG_ADDR_MAX];
    struct http_conn *conns;
    size_t n_conns;
    size_t inflight; /* requests sent to the node and not answered */
    struct http_addr *addrs[HTTP_ADDR_BUCKETS];
    bool started, stopping, closed;
    /* read-only */
    struct metrics metrics;
};

/* Listens on `addr` ("host:port", numeric) and serves.  Returns 0, or a
 * negative libuv error (uv_strerror) with nothing left open. */
int http_start(struct http_server *s, uv_loop_t *loop, const char *addr,
               const struct http_deps *deps);

/* Stops accepting and reading (shutdown, step one); answers already under
 * way are still delivered.  http_idle() tells when http_close may run. */
void http_stop(struct http_server *s);
bool http_idle(const struct http_server *s);
/* Closes every handle (the forwarder too); the loop then runs to the end. */
void http_close(struct http_server *s);

#endif
