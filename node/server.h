/* The network front of coalitiond: a libuv TCP server speaking frames
 * (proto/frame.h).  It decodes requests, answers reads from the ledger's
 * committed state, hands writes to the batcher and relays their results.
 * Limits: frame size, connections, requests in flight per connection. */
#ifndef COALITION_SERVER_H
#define COALITION_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "batcher.h"
#include "ledger.h"
#include "store.h"

#define SERVER_CONNECTIONS_MAX 4096
#define SERVER_INFLIGHT_MAX    4096 /* per connection; reading pauses beyond */

struct conn;

struct server {
    /* private */
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct ledger *ledger;
    struct store *store;
    struct batcher *batcher;
    struct conn *conns;
    uint64_t node_id;
    size_t n_conns;
    bool closing;
    int verifies_running;
};

/* Binds `host`:`port` and starts accepting.  ledger, store and batcher are
 * borrowed and must outlive the server.  Returns 0 or a negative libuv
 * error (uv_strerror). */
int server_start(struct server *s, uv_loop_t *loop, const char *host, int port, uint64_t node_id,
                 struct ledger *l, struct store *st, struct batcher *b);

/* Stops accepting and reading; responses already under way are still
 * delivered.  Then server_idle() tells when server_close may run. */
void server_stop(struct server *s);
bool server_idle(const struct server *s);
/* Closes every handle; the loop then runs to completion. */
void server_close(struct server *s);

#endif
