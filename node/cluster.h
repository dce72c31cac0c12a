/* Cluster glue around canonical raft (libraft 0.15, raft_uv + node/link):
 * the ledger is the raft state machine.  This module starts raft (new
 * coalition, single node, join or restart), proposes batches on the leader
 * and routes their results back, applies committed batches on every node,
 * takes and restores snapshots, changes membership (each change signed and
 * checked here, on the leader, before anything changes: docs/security.md),
 * keeps the node directory (who is reachable where) and stops the node on
 * any raft I/O failure (fail-stop, see the design brief on raft issue 320).
 * No client protocol lives here. */
#ifndef COALITION_CLUSTER_H
#define COALITION_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "ledger.h"
#include "link.h"
#include "store.h"

#define CLUSTER_NODES_MAX       64   /* servers in the configuration we track */
#define CLUSTER_REPLAY_CACHE    1024 /* nonces of accepted membership changes kept */
#define CLUSTER_REFUSALS_RECENT 16   /* distinct refusals whose repeats are not logged */

struct cluster;
struct cluster_proposal;

/* Called once per proposal: status 0 (results[] filled, in order of the
 * batch's transactions) or a negative COALITION_E_* code (NOT_LEADER,
 * UNAVAILABLE: the batch may or may not have been applied; retries with the
 * same txn ids are safe). */
typedef void (*cluster_proposal_cb)(struct cluster_proposal *p, int status);

/* A batch proposed by the leader.  Caller-allocated; valid until cb. */
struct cluster_proposal {
    void *data;                    /* public */
    struct ledger_result *results; /* public: n slots, filled before cb */
    size_t n;                      /* public: transactions in the batch */
    /* private */
    cluster_proposal_cb cb;
    struct raft_apply req;
    uint64_t number;
    struct cluster_proposal *next;
};

typedef void (*cluster_done_cb)(void *data, int status);

/* A membership change or a barrier in flight (private fields). */
struct cluster_op {
    struct cluster *c;
    struct raft_change change;
    struct raft_barrier barrier;
    Coalition__ClusterChangeRequest__Op op;
    uint64_t id;
    int role;
    char raft_addr[CONFIG_ADDR_MAX];
    char client_addr[CONFIG_ADDR_MAX];
    struct cluster_proposal dir; /* the directory update that ends a join */
    cluster_done_cb cb;
    void *data;
};

struct cluster_node {
    uint64_t id;
    int role; /* RAFT_VOTER, RAFT_STANDBY, RAFT_SPARE */
    char raft_addr[CONFIG_ADDR_MAX];
    char client_addr[CONFIG_ADDR_MAX]; /* "" if not in the directory */
};

struct cluster_directory_entry {
    uint64_t id;
    char raft_addr[CONFIG_ADDR_MAX];
    char client_addr[CONFIG_ADDR_MAX];
};

struct cluster {
    /* private */
    uv_loop_t *loop;
    struct ledger *ledger;
    struct store *store;
    struct raft raft;
    struct raft_io io;    /* the fail-stop wrapper raft talks to */
    struct raft_io uv_io; /* raft_uv, wrapped by `io` */
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    raft_io_close_cb raft_close_cb; /* raft's, called once (see io_close) */
    bool io_closed;
    uv_timer_t tick;
    uint64_t id;
    char raft_addr[CONFIG_ADDR_MAX];
    char client_addr[CONFIG_ADDR_MAX];
    char join_addr[CONFIG_ADDR_MAX];
    bool joined;              /* seen itself as voter or standby since a --join start */
    uint64_t announced_at_ms; /* when we last asked to be recorded */
    struct cluster_proposal *inflight, **inflight_tail;
    uint64_t next_proposal;
    struct cluster_directory_entry dir[CLUSTER_NODES_MAX];
    size_t n_dir;
    struct cluster_proposal *announce; /* our own directory update, if pending */
    void (*on_fatal)(int code);
    void (*send_join)(struct cluster *c, const char *to_addr); /* set by the node */
    void *send_join_data;
    struct store_snapshot *snap; /* being serialized */
    uint64_t snap_index;
    uint64_t snap_loop_us; /* time the loop spent starting it */
    bool closing;
    void (*close_cb)(struct cluster *c);
    /* Authenticating membership changes (cluster_change). */
    link_trusted_cb member_trusted; /* the links' trust rule, for JOIN keys */
    void *member_trusted_data;
    bool has_key;
    uint8_t key[AUTH_SECRET_LEN]; /* this node's link key: signs its JOINs */
    struct auth_replay replay;    /* allocated when first leader */
    raft_term replay_term;        /* the term `replay` belongs to */
    uint64_t refusals_since_ms;   /* log rate limit: window start */
    unsigned refusals_logged, refusals_quiet;
    /* The last refusals logged (what, when, how often repeated since), so a
     * refusal repeated (a joiner asks twice a second) is logged once a
     * minute; an empty slot has sig 0. */
    struct cluster_refusal {
        uint64_t sig, logged_ms;
        unsigned repeats;
    } refusals_recent[CLUSTER_REFUSALS_RECENT];
    void *data; /* public: for the node */
};

/* Opens raft in `cfg->data`/raft for the ledger `l` kept in `s` (borrowed),
 * bootstrapping a new coalition if cfg says so and the log is empty, and
 * starts it.  `client_addr` is this node's client address (for the
 * directory).  `link` (borrowed for the call) sets up the authenticated,
 * encrypted links to the other nodes (node/link.h); the cluster also keeps
 * a copy of its secret key (to sign this node's JOINs, see
 * cluster_sign_join) and its trust callback and data (to check the key of a
 * JOIN on the leader), so link->trusted_data must outlive the cluster.
 * on_fatal is called on any raft I/O or apply failure and must not return.
 * Returns 0 or -1 with a message in err. */
int cluster_start(struct cluster *c, uv_loop_t *loop, const struct config *cfg,
                  const char *raft_addr, const char *client_addr, struct ledger *l, struct store *s,
                  const struct link_config *link, void (*on_fatal)(int code), char *err,
                  size_t errlen);

/* Closes raft: proposals and changes in flight fail with UNAVAILABLE; cb
 * runs when every handle is closed.  Then, after uv_run has returned,
 * cluster_free releases raft_uv's memory. */
void cluster_close(struct cluster *c, void (*cb)(struct cluster *c));
void cluster_free(struct cluster *c);

bool cluster_is_leader(struct cluster *c);
/* Leader id (0 if unknown) and its client address from the directory into
 * addr (empty if unknown). */
uint64_t cluster_leader(struct cluster *c, char *addr, size_t addrlen);
/* Leader id (0 if unknown) and "ID@RAFT_ADDR" into addr (addrlen > 0; empty
 * if unknown): where the forwarder opens a channel over the links. */
uint64_t cluster_leader_link(struct cluster *c, char *addr, size_t addrlen);

/* Proposes `batch` (borrowed; packed here with proposer fields set) on the
 * leader.  p->results must have room for every result: p->n is batch->n_txns plus the transactions
 * of its groups.  Returns 0 (cb will run) or NOT_LEADER / NOMEM (cb will not run). */
int cluster_propose(struct cluster *c, Coalition__Batch *batch, struct cluster_proposal *p,
                    cluster_proposal_cb cb);

/* A raft barrier on the leader: cb(data, 0) once everything committed before
 * it is applied here, else cb(data, NOT_LEADER/UNAVAILABLE). */
int cluster_barrier(struct cluster *c, struct cluster_op *op, cluster_done_cb cb, void *data);

/* Carries out a membership change on the leader (see ClusterChangeRequest):
 * returns 0 and cb(data, status) once, or a negative code (and no cb).  cb
 * may run before this function returns (nothing to change, or a step that
 * failed at once): callers must not touch `op` or `data` after a 0 return.
 * Before anything changes the request must be signed (auth_cluster_verify):
 * ADD, ASSIGN and REMOVE by the ledger's admin key, JOIN by a key the links'
 * trust callback accepts; its time within AUTH_CLUSTER_WINDOW_MS of this
 * node's clock, after this node became leader (this term), and its nonce
 * not seen in this term (the replay cache lives in memory).  Else
 * UNAUTHENTICATED (unsigned, bad signature, clock, replay), FORBIDDEN (a key
 * not allowed to make it) or UNAVAILABLE (no genesis yet: no admin key),
 * with a line on stderr. */
int cluster_change(struct cluster *c, const Coalition__ClusterChangeRequest *req,
                   struct cluster_op *op, cluster_done_cb cb, void *data);

/* Signs `req`, a JOIN about this node, with this node's key (the link key)
 * at the wall-clock time: req's signature fields point into *sig (caller's,
 * kept while req is used).  A node without a key leaves req unsigned; the
 * leader then refuses it. */
void cluster_sign_join(struct cluster *c, Coalition__ClusterChangeRequest *req,
                       struct auth_cluster_sig *sig);

/* True while this node, started with --join, has not yet been a voter or a
 * standby: its JOIN requests then ask the leader to promote it. */
bool cluster_wants_promotion(struct cluster *c);

/* This node's view for status. */
struct cluster_status {
    const char *state;      /* leader, follower, candidate, unavailable */
    const char *membership; /* voter, standby, spare, none */
    uint64_t leader_id;
    uint64_t last_index;
    uint64_t last_applied;
};
void cluster_get_status(struct cluster *c, struct cluster_status *out);

/* The raft configuration joined with the directory; returns the count. */
size_t cluster_nodes(struct cluster *c, struct cluster_node *out, size_t max);

#endif
