/* The network front of coalitiond: a libuv TCP server speaking frames
 * (proto/frame.h).  It decodes requests, answers reads from this node's
 * state, hands writes to the batcher on the leader or forwards them to the
 * leader elsewhere, and relays their results.
 * Writes are authenticated (docs/security.md): a group a tool signed is
 * passed on as it is; a POS write with an API key of this node's partner is
 * signed here, one signature for what arrived in one loop iteration.
 * Limits: frame size, connections, requests in flight per connection,
 * requests per partner per second. */
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

#define SERVER_RATES 256 /* partners tracked by the rate limiter */

struct conn;
struct op;

/* A partner's request budget (token bucket). */
struct server_rate {
    char partner[LEDGER_ID_MAX + 1];
    double tokens;
    uint64_t at_ms;
};

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
    /* signing for this node's partner (docs/security.md) */
    bool signs;
    char partner[LEDGER_ID_MAX + 1];
    uint8_t partner_sk[64];
    struct op *sign_pending, **sign_tail; /* writes to sign at the end of this iteration */
    uv_check_t sign_check;
    unsigned partner_rps;
    struct server_rate rates[SERVER_RATES];
    int join_refused_code; /* the last refusal of our JOIN that was logged */
    uint64_t join_logged_ms;
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
    const char *partner;                 /* the partner this node signs for, or NULL */
    const uint8_t *partner_sk;           /* its Ed25519 secret key (64 bytes, copied) */
    unsigned partner_rps;                /* requests per partner per second, 0 = no limit */
};

/* Binds `host`:`port` and starts accepting.  Returns 0 or a negative libuv
 * error (uv_strerror). */
int server_start(struct server *s, uv_loop_t *loop, const char *host, int port,
                 const struct server_deps *deps);

/* Asks the node at `to_addr` (client address) to add this node to the
 * configuration or record its addresses (a JOIN request, forwarded to the
 * leader).  Used by cluster.c through its send_join hook. */
void server_send_join(struct cluster *c, const char *to_addr);

/* link_channel_cb (node/link.h) for the server: serves a forwarding channel
 * from node `peer_id` (authenticated by the link) on `fd` (owned from now
 * on) like a client connection.  `data` is the struct server. */
void server_adopt_channel(void *data, uint64_t peer_id, const uint8_t *peer_pk, int fd);

/* Stops accepting and reading; responses already under way are still
 * delivered.  Then server_idle() tells when server_close may run. */
void server_stop(struct server *s);
bool server_idle(const struct server *s);
/* Closes every handle; the loop then runs to completion. */
void server_close(struct server *s);

#endif
