/* libcoalition: the C client library a POS or tool links to talk to a
 * coalitiond node over TCP frames.  This is its one public header (it pulls in
 * the shared error table).  A client object is not thread-safe: use one per
 * thread.  All functions return 0 or a negative code from coalition_errors.h;
 * coalition_client_errmsg() gives the message that came with the last one. */
#ifndef COALITION_H
#define COALITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define COALITION_ID_MAX       64  /* bytes in a partner, member, card or txn id */
#define COALITION_REASON_MAX   200 /* bytes in a reason text */
#define COALITION_POINTS_MAX   1000000000000LL
#define COALITION_HASH_LEN     32
#define COALITION_DEFAULT_NODE "127.0.0.1:7400"

struct coalition_client;

/* Kinds of ledger transactions (same numbers as coalition.TxnKind). */
enum coalition_txn_kind {
    COALITION_TXN_PARTNER_ADD = 1,
    COALITION_TXN_MEMBER_ADD = 2,
    COALITION_TXN_AWARD = 3,
    COALITION_TXN_REDEEM = 4,
    COALITION_TXN_REVERSE = 5,
    COALITION_TXN_TRANSFER = 6,
};

/* A transaction to submit.  Strings are borrowed for the duration of the
 * call; unused ones may be NULL.  See the CLI (docs/protocol.md) for which
 * fields each kind needs. */
struct coalition_txn {
    enum coalition_txn_kind kind;
    const char *partner;
    const char *txn_id;
    const char *member;
    const char *member_to;
    const char *of_txn;
    const char *reason;
    const char *name;
    const char *card;
    int64_t points;
};

struct coalition_txn_result {
    uint64_t seq;     /* global sequence number of the entry */
    bool duplicate;   /* true if this txn id was already applied */
    int64_t points;   /* points moved by the entry */
    uint64_t time_ms; /* time stamped when the entry was ordered */
};

/* Strings in the status are truncated to fit; the node sends short words. */
struct coalition_status {
    uint64_t node_id;
    char role[16]; /* raft state: leader, follower, candidate or unavailable */
    uint64_t applied_seq;
    uint64_t applied_index;
    uint8_t head_hash[COALITION_HASH_LEN];
    uint64_t leader_id;  /* the leader this node knows of, 0 if none */
    char membership[16]; /* voter, standby, spare, or none (not in the configuration) */
    uint64_t last_index; /* last raft log index on this node */
};

/* Bytes in a node address ("host:port") held by the library. */
#define COALITION_ADDR_MAX 255

/* Roles of a node in the raft configuration (same numbers as
 * coalition.NodeRole and raft.h). */
enum coalition_role {
    COALITION_ROLE_STANDBY = 0, /* replicates the log, does not vote */
    COALITION_ROLE_VOTER = 1,   /* replicates and votes */
    COALITION_ROLE_SPARE = 2,   /* neither */
};

/* Membership changes (same numbers as coalition.ClusterChangeRequest.Op). */
enum coalition_cluster_op {
    COALITION_CLUSTER_ADD = 0,    /* add node id at raft_addr with role */
    COALITION_CLUSTER_ASSIGN = 1, /* give node id the role */
    COALITION_CLUSTER_REMOVE = 2, /* remove node id */
    COALITION_CLUSTER_JOIN = 3,   /* a new node asks to be added (the leader picks the role) */
};

struct coalition_cluster_node {
    uint64_t id;
    enum coalition_role role;
    char raft_addr[COALITION_ADDR_MAX + 1];
    char client_addr[COALITION_ADDR_MAX + 1]; /* "" if the node has not announced it yet */
};

/* The raft configuration as one node sees it. */
struct coalition_cluster {
    uint64_t node_id;   /* the node that answered */
    uint64_t leader_id; /* 0 if that node knows of no leader */
    size_t len;
    struct coalition_cluster_node *nodes; /* owned, see coalition_cluster_free */
};

struct coalition_balance {
    int64_t points;
    uint64_t as_of_seq;
};

struct coalition_history_item {
    uint64_t seq;
    uint64_t time_ms;
    enum coalition_txn_kind kind;
    int64_t delta; /* change of the member's balance */
    char partner[COALITION_ID_MAX + 1];
    char txn_id[COALITION_ID_MAX + 1];
    char counterparty[COALITION_ID_MAX + 1];
    char reason[COALITION_REASON_MAX + 1];
};

struct coalition_history {
    size_t len;
    struct coalition_history_item *items; /* newest first; owned, see _free */
};

struct coalition_verify {
    uint64_t entries_checked;
    uint64_t accounts_checked;
    uint64_t broken_seq; /* first broken entry if verification failed */
    uint8_t head_hash[COALITION_HASH_LEN];
    uint8_t state_digest[COALITION_HASH_LEN];
};

/* Connects to `node` ("host:port", borrowed) within timeout_ms; every later
 * call also waits at most timeout_ms for its answer.  `node` may also be a
 * comma-separated list ("h1:p1,h2:p2"): the client then connects to the
 * first address that answers, trying each for up to timeout_ms, and a later
 * reconnect (after the connection broke) starts again from the address it
 * was using.  On success *out is a new client to be released with
 * coalition_client_destroy.  Returns COALITION_E_INVALID_ARGUMENT if an
 * address is not host:port, COALITION_E_UNREACHABLE if no connection could be
 * made. */
int coalition_client_create(const char *node, int timeout_ms, struct coalition_client **out);
void coalition_client_destroy(struct coalition_client *c);

/* Message of the last failed call (from the node when it sent one).  Valid
 * until the next call on `c`. */
const char *coalition_client_errmsg(const struct coalition_client *c);

/* The address ("host:port") the client is connected to, or last tried.
 * Valid until the next call on `c`. */
const char *coalition_client_node(const struct coalition_client *c);

/* The leader hint of the last answer: the client address of the leader that
 * a node sends with NOT_LEADER or UNAVAILABLE, or "" if the last answer had
 * none (or no answer came).  Valid until the next call on `c`. */
const char *coalition_client_leader_hint(const struct coalition_client *c);

/* Makes later balance and history calls consistent (true) or not (false,
 * the default).  A consistent read is answered by the leader after a raft
 * barrier (a follower forwards it), so it sees every write acknowledged
 * before it was sent; a plain read is answered by the node asked, from its
 * own applied state, which may lag the leader. */
void coalition_client_set_consistent(struct coalition_client *c, bool consistent);

/* Synchronous calls: send one request and wait for its answer. */
int coalition_client_status(struct coalition_client *c, struct coalition_status *out);
int coalition_client_txn(struct coalition_client *c, const struct coalition_txn *txn,
                         struct coalition_txn_result *out);
int coalition_client_award(struct coalition_client *c, const char *partner, const char *member,
                           int64_t points, const char *txn_id, const char *reason,
                           struct coalition_txn_result *out);
int coalition_client_redeem(struct coalition_client *c, const char *partner, const char *member,
                            int64_t points, const char *txn_id, struct coalition_txn_result *out);
int coalition_client_balance(struct coalition_client *c, const char *member,
                             struct coalition_balance *out);
/* On success *out holds items the caller releases with
 * coalition_history_free.  limit 0 means the node's default (20). */
int coalition_client_history(struct coalition_client *c, const char *member, uint32_t limit,
                             struct coalition_history *out);
void coalition_history_free(struct coalition_history *h);
/* Asks the node to replay and check its whole ledger.  Returns 0 if it
 * verified, COALITION_E_VERIFY_FAILED (out->broken_seq set) if not. */
int coalition_client_verify(struct coalition_client *c, struct coalition_verify *out);

/* The raft configuration as the node sees it.  On success *out holds nodes
 * the caller releases with coalition_cluster_free. */
int coalition_client_cluster_status(struct coalition_client *c, struct coalition_cluster *out);
void coalition_cluster_free(struct coalition_cluster *cl);

/* Asks the leader (a follower forwards) to change the configuration: `op`
 * on node `id`.  raft_addr is needed for ADD and JOIN, client_addr is
 * optional (announced to the node directory), role counts for ADD and
 * ASSIGN; strings are borrowed, may be NULL, at most COALITION_ADDR_MAX
 * bytes.  Returns 0 once the leader has made the change. */
int coalition_client_cluster_change(struct coalition_client *c, enum coalition_cluster_op op,
                                    uint64_t id, const char *raft_addr, const char *client_addr,
                                    enum coalition_role role);

/* The hash of entry `seq` (from 1) on the node asked, to compare hash chains
 * across nodes: equal hashes at seq mean equal entries up to seq. */
int coalition_client_entry_hash(struct coalition_client *c, uint64_t seq,
                                uint8_t out[COALITION_HASH_LEN]);

/* "voter", "standby", "spare" (NULL for a value not in the enum); and back
 * (returns false for an unknown name). */
const char *coalition_role_name(enum coalition_role role);
bool coalition_role_parse(const char *name, enum coalition_role *out);

/* Lower-case name of a transaction kind ("award", "partner_add", ...), as
 * the CLI's --json output and the load generator's logs spell it;
 * "unknown" for a value outside the enum.  Static storage. */
const char *coalition_txn_kind_name(enum coalition_txn_kind kind);

/* Pipelining: queue many transactions, then collect their results in any
 * order.  submit queues the request (nothing is sent until flush or poll)
 * and returns its id in *request_id. */
int coalition_client_submit(struct coalition_client *c, const struct coalition_txn *txn,
                            uint64_t *request_id);
/* Writes queued requests without blocking; returns 0 even if some remain
 * queued (poll keeps writing them). */
int coalition_client_flush(struct coalition_client *c);
/* Waits up to timeout_ms (0: do not wait) for one answer to a submitted
 * request.  Returns 1 with *request_id, *code (0 or a negative error code)
 * and *out filled; 0 if none arrived in time; a negative code if the
 * connection failed (every outstanding request is then lost and should be
 * retried with the same txn id). */
int coalition_client_poll(struct coalition_client *c, int timeout_ms, uint64_t *request_id,
                          int *code, struct coalition_txn_result *out);
/* The socket, for callers that multiplex many clients with poll(2). */
int coalition_client_fd(const struct coalition_client *c);
/* Requests submitted and not yet answered. */
size_t coalition_client_outstanding(const struct coalition_client *c);

/* Hex of a hash into `out` (at least 2*COALITION_HASH_LEN+1 bytes). */
void coalition_hash_hex(const uint8_t hash[COALITION_HASH_LEN], char *out);

#endif
