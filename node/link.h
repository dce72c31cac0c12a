/* Authenticated, encrypted links between nodes: a raft_uv_transport (raft
 * 0.15, raft/uv.h) that raft_uv uses in place of raft_uv_tcp, and
 * forwarding channels on the same port.  Each TCP connection starts with a
 * handshake in which both nodes prove their Ed25519 node key (the partner
 * key) over fresh X25519 keys, and then carries libsodium secretstream
 * records (XChaCha20-Poly1305) in each direction.  The handshake says what
 * the connection carries: raft's stream, or a forwarding channel (the
 * frames a follower relays to the leader, node/forward.c).  Each side gets
 * one end of a socketpair per connection; this module proxies between the
 * other end and the TCP connection.  Which keys are trusted is the caller's
 * business (a callback); client traffic (frames, HTTP) does not go through
 * here.  Wire format and threat model: docs/security.md, "Links between
 * nodes". */
#ifndef COALITION_LINK_H
#define COALITION_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define LINK_PUBLIC_LEN           32         /* Ed25519 public key */
#define LINK_SECRET_LEN           64         /* Ed25519 secret key (libsodium: seed, public key) */
#define LINK_ADDR_MAX             256        /* raft address with its NUL, as CONFIG_ADDR_MAX */
#define LINK_CHUNK_MAX            65536      /* plaintext bytes in one record */
#define LINK_HANDSHAKE_TIMEOUT_MS 5000       /* default: a handshake must finish within */
#define LINK_PENDING_MAX          32         /* default: incoming handshakes at once */
#define LINK_CONNS_MAX            256        /* connections of one transport, any state */
#define LINK_QUEUE_HIGH           (1u << 20) /* bytes queued one way: stop reading */
#define LINK_QUEUE_LOW            (256u << 10) /* ... and read again below this */

/* True if `pk` (borrowed) is the key of a node we accept links with.  Called
 * on the loop thread, during handshakes, for both directions. */
typedef bool (*link_trusted_cb)(void *data, const uint8_t pk[LINK_PUBLIC_LEN]);

/* An authenticated forwarding channel from node `peer_id` (a claim: the
 * link proves the key `peer_pk`, borrowed for the call) is up.  `fd` is a
 * connected AF_UNIX stream socket, owned by the callee from now on (close()
 * it or hand it to libuv, e.g. uv_pipe_open): what the peer sends arrives on
 * it, what is written to it goes to the peer, and it reads EOF when the
 * link is over. */
typedef void (*link_channel_cb)(void *data, raft_id peer_id, const uint8_t peer_pk[LINK_PUBLIC_LEN],
                                int fd);

struct link_config {
    /* This node's Ed25519 secret key (borrowed, copied by init), or NULL: a
     * node without a key still listens, so that raft starts and a
     * single-node coalition runs, but refuses every link, in and out, with a
     * log line. */
    const uint8_t *secret_key;
    link_trusted_cb trusted; /* required when secret_key is set */
    void *trusted_data;
    link_channel_cb channel_accept; /* NULL: incoming forwarding channels are refused */
    void *channel_data;
    unsigned handshake_timeout_ms; /* 0: LINK_HANDSHAKE_TIMEOUT_MS */
    unsigned pending_max;          /* 0: LINK_PENDING_MAX */
};

/* Counters since init (read with link_get_stats; for tests and metrics). */
struct link_stats {
    uint64_t links_out;         /* outgoing links authenticated */
    uint64_t links_in;          /* incoming links authenticated and handed to raft */
    uint64_t channels_out;      /* forwarding channels opened by us and authenticated */
    uint64_t channels_in;       /* forwarding channels accepted and handed to channel_accept */
    uint64_t refused_untrusted; /* handshakes that named a key we do not trust */
    uint64_t refused_no_key;    /* links refused because this node has no key */
    uint64_t handshake_failed;  /* bad message, bad signature, wrong id, I/O error */
    uint64_t handshake_timeout; /* handshakes that did not finish in time */
    uint64_t pending_evicted;   /* pending handshakes dropped for a newer one */
    uint64_t records_bad;       /* records that failed to decrypt: link closed */
    uint64_t bytes_sealed;      /* plaintext bytes sent */
    uint64_t bytes_opened;      /* plaintext bytes received */
};

/* Sets up `t` (caller-allocated, like raft_uv_tcp_init) for raft_uv_init on
 * `loop`.  t->data is kept (raft_uv sets it).  Returns 0,
 * COALITION_E_INVALID_ARGUMENT (a key without a trust callback, or a key
 * that is not a valid Ed25519 key pair) or COALITION_E_NOMEM. */
int link_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                        const struct link_config *cfg);

/* Releases the memory of a transport initialized by link_transport_init,
 * once raft_uv has closed it (t->close's callback has fired) or if it was
 * never listened on or connected through.  Wipes the copy of the key. */
void link_transport_close(struct raft_uv_transport *t);

/* Opens a forwarding channel to node `id` at its raft `address` (borrowed),
 * through the same handshake and trust rule as raft's links (the peer must
 * prove it is node `id` with a trusted key).  On success *fd is a connected
 * AF_UNIX stream socket, owned by the caller, usable at once: bytes written
 * before the handshake is done wait in the socket and go out sealed once it
 * is; if the handshake fails or the link dies later, *fd reads EOF (nothing
 * is retried here).  Closing *fd ends the channel.  Returns 0,
 * COALITION_E_UNAVAILABLE (this node has no key, the transport is not
 * started or is closing), COALITION_E_INVALID_ARGUMENT (not a numeric
 * host:port), COALITION_E_BUSY (LINK_CONNS_MAX), COALITION_E_NOMEM or
 * COALITION_E_INTERNAL. */
int link_channel_open(struct raft_uv_transport *t, raft_id id, const char *address, int *fd);

void link_get_stats(const struct raft_uv_transport *t, struct link_stats *out);

/* Open connections in any state (handshaking or up); for tests. */
size_t link_conn_count(const struct raft_uv_transport *t);

#endif
