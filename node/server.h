/* The network front of coalitiond: a libuv TCP server speaking frames
 * (proto/frame.h).  It decodes requests, answers reads from this node's
 * state, hands writes to the batcher on the leader or forwards them to the
 * leader elsewhere, and relays their results.
 * Limits: frame size, connections, requests in flight per connection. */
#ifndef COALITION_SERVER_H
#define COALITION_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "batcher.h"
#include "cluster.h"
#include "forward.h"
#include "identity.h"
#include "ledger.h"
#include "store.h"

#define SERVER_CONNECTIONS_MAX 4096
#define SERVER_INFLIGHT_MAX    4096 /* per connection; reading pauses beyond */
#define SERVER_VERIFIES_MAX    1    /* full replays at once; more get BUSY */
#define SERVER_OUT_MAX                                                                             \
    ((size_t)8 << 20) /* answers queued per connection; reading pauses beyond                      \
                       */

struct conn;

struct server {
    /* private */
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct ledger *ledger;
    struct store *store;
    struct batcher *batcher;
    struct cluster *cluster;
    struct forwarder *forwarder;
    const struct identity_key *identity;
    struct conn *conns;
    uint64_t node_id;
    size_t n_conns;
    bool closing;
    int verifies_running;
};

/* What the server serves from; all borrowed, must outlive the server. */
struct server_deps {
    uint64_t node_id;
    struct ledger *ledger;
    struct store *store;
    struct batcher *batcher;
    struct cluster *cluster;
    struct forwarder *forwarder;
    const struct identity_key *identity; /* not loaded: no phone/email lookups */
};

/* Binds `host`:`port` and starts accepting.  Returns 0 or a negative libuv
 * error (uv_strerror). */
int server_start(struct server *s, uv_loop_t *loop, const char *host, int port,
                 const struct server_deps *deps);

/* Asks the node at `to_addr` (client address) to add this node to the
 * configuration or record its addresses (a JOIN request, forwarded to the
 * leader).  Used by cluster.c through its send_join hook. */
void server_send_join(struct cluster *c, const char *to_addr);

/* Stops accepting and reading; responses already under way are still
 * delivered.  Then server_idle() tells when server_close may run. */
void server_stop(struct server *s);
bool server_idle(const struct server *s);
/* Closes every handle; the loop then runs to completion. */
void server_close(struct server *s);

#endif
