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

/* Bytes in a partner, member, card or txn id, and in a category, campaign
 * id or tier name. */
#define COALITION_ID_MAX      64
#define COALITION_REASON_MAX  200 /* bytes in a reason text */
#define COALITION_RULE_MAX    223 /* bytes in a TxnResult rule: "category:C,campaign:ID,tier:T" */
#define COALITION_CONTACT_MAX 254 /* bytes in a phone number or email address */
/* Entries in a program or rules the library sends at most (the node's limits). */
#define COALITION_CATEGORIES_MAX 32
#define COALITION_CAMPAIGNS_MAX  32
#define COALITION_TIERS_MAX      8
#define COALITION_POINTS_MAX     1000000000000LL
#define COALITION_HASH_LEN       32
/* Ed25519 keys (libsodium's layout: a secret key is the 32-byte seed followed
 * by the 32-byte public key). */
#define COALITION_PUBLIC_KEY_LEN 32
#define COALITION_SECRET_KEY_LEN 64
#define COALITION_KEY_ID_MAX     16  /* hex digits of an API key's id */
#define COALITION_API_KEY_MAX    128 /* bytes in an API key the library sends */
#define COALITION_DEFAULT_NODE   "127.0.0.1:7400"

struct coalition_client;

/* Kinds of ledger transactions (same numbers as coalition.TxnKind). */
enum coalition_txn_kind {
    COALITION_TXN_PARTNER_ADD = 1,
    COALITION_TXN_MEMBER_ADD = 2,
    COALITION_TXN_AWARD = 3,
    COALITION_TXN_REDEEM = 4,
    COALITION_TXN_REVERSE = 5,
    COALITION_TXN_TRANSFER = 6,
    COALITION_TXN_PROGRAM_SET = 7,   /* partner replaces its earning program */
    COALITION_TXN_RULES_SET = 8,     /* admin: replaces the coalition rules */
    COALITION_TXN_HOLD = 9,          /* partner reserves points of a member */
    COALITION_TXN_CAPTURE = 10,      /* partner redeems (part of) its hold of_txn */
    COALITION_TXN_RELEASE = 11,      /* partner gives its hold of_txn back */
    COALITION_TXN_CARD_ADD = 12,     /* admin: member gets another card */
    COALITION_TXN_CARD_REPLACE = 13, /* admin: member's old_card becomes card */
    COALITION_TXN_IDENTIFY = 14,     /* submitted with coalition_client_identify only */
    COALITION_TXN_MERGE = 15,        /* admin: member is merged into member_to */
    COALITION_TXN_ERASE = 16,        /* admin: member's cards and lookup keys erased */
    /* Scheduled by the leader; seen in history, never submitted. */
    COALITION_TXN_EXPIRE = 17,
    COALITION_TXN_HOLD_TIMEOUT = 18,
    COALITION_TXN_TIER_REVIEW = 19,
    /* Genesis: the bootstrap node records the coalition admin key.  Never
     * submitted by a client. */
    COALITION_TXN_INIT = 20,
    COALITION_TXN_APIKEY_ADD = 21,    /* partner issues API key key_id (key_hash stored) */
    COALITION_TXN_APIKEY_REVOKE = 22, /* partner (or admin) revokes API key key_id */
};

/* A partner's earning program (coalition.Program).  Money in cents, rates
 * and multipliers in fixed point; strings and arrays are borrowed for the
 * duration of the call. */
struct coalition_category_rate {
    const char *category;
    uint32_t multiplier_pct; /* 100 = x1 */
};

/* Active from start_ms (inclusive) to end_ms (exclusive), for one category
 * or (NULL or "") every purchase. */
struct coalition_campaign {
    const char *id;
    uint64_t start_ms;
    uint64_t end_ms;
    uint32_t multiplier_pct; /* 0 or 100: no multiplier */
    int64_t bonus_points;
    const char *category;
};

struct coalition_program {
    uint64_t point_value_mc;  /* settlement value: thousandths of a cent per point */
    uint64_t base_rate_milli; /* points per currency unit (100 cents), x1000 */
    const struct coalition_category_rate *categories; /* n_categories of them */
    size_t n_categories;                              /* at most COALITION_CATEGORIES_MAX */
    const struct coalition_campaign *campaigns;       /* n_campaigns of them */
    size_t n_campaigns;                               /* at most COALITION_CAMPAIGNS_MAX */
    int64_t min_purchase_cents;                       /* smaller purchases earn nothing */
    uint32_t lock_days; /* awarded points unlock after this many days */
};

struct coalition_tier {
    const char *name;
    int64_t threshold;       /* points earned in the rolling 12 months */
    uint32_t multiplier_pct; /* on points earned from purchases; 100 = x1 */
};

/* The coalition-wide rules (coalition.Rules). */
struct coalition_rules {
    const struct coalition_tier *tiers; /* ascending thresholds; n_tiers of them */
    size_t n_tiers;                     /* at most COALITION_TIERS_MAX */
    uint32_t expiry_months;             /* 0: points never expire */
    uint32_t hold_timeout_s;            /* default hold timeout (0: the node's, 900) */
};

/* A transaction to submit.  Strings (and program, rules) are borrowed for the
 * duration of the call; unused ones may be NULL, unused numbers 0.  See
 * docs/protocol.md for which fields each kind needs. */
struct coalition_txn {
    enum coalition_txn_kind kind;
    const char *partner;
    const char *txn_id;
    const char *member;
    const char *member_to; /* TRANSFER destination; MERGE: the surviving member */
    const char *of_txn;    /* REVERSE: the original; CAPTURE, RELEASE: the hold */
    const char *reason;
    const char *name;
    const char *card;     /* MEMBER_ADD, CARD_ADD; CARD_REPLACE: the new card */
    const char *old_card; /* CARD_REPLACE */
    int64_t points;       /* REVERSE, CAPTURE: 0 means all that is left */
    /* Purchase-based AWARD: points 0, the node computes them. */
    int64_t purchase_cents;
    int64_t paid_points_cents; /* part of the purchase paid with points */
    const char *category;
    uint32_t timeout_s;                      /* HOLD: 0 means the coalition's default */
    const struct coalition_program *program; /* PROGRAM_SET */
    const struct coalition_rules *rules;     /* RULES_SET */
    /* PARTNER_ADD: the new partner's Ed25519 public key,
     * COALITION_PUBLIC_KEY_LEN bytes (NULL: none, which the node refuses
     * once the coalition has an admin key). */
    const uint8_t *public_key;
    const char *key_id;      /* APIKEY_ADD, APIKEY_REVOKE: COALITION_KEY_ID_MAX hex digits */
    const uint8_t *key_hash; /* APIKEY_ADD: COALITION_HASH_LEN bytes, BLAKE2b-256 of the secret */
};

struct coalition_txn_result {
    uint64_t seq;     /* global sequence number of the entry */
    bool duplicate;   /* true if this txn id was already applied */
    int64_t points;   /* points moved by the entry */
    uint64_t time_ms; /* time stamped when the entry was ordered */
    /* Purchase AWARD: the rule that set the points ("base", "category:C",
     * "campaign:ID", with ",tier:T" when a tier multiplier applied); "" for
     * other kinds.  Truncated to COALITION_RULE_MAX bytes. */
    char rule[COALITION_RULE_MAX + 1];
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
    int64_t points; /* spendable now: unlocked, unexpired, not held */
    uint64_t as_of_seq;
    int64_t held;                         /* reserved by open holds */
    int64_t locked;                       /* pending: not unlocked yet */
    char tier[COALITION_ID_MAX + 1];      /* "" below every tier */
    char next_tier[COALITION_ID_MAX + 1]; /* "" at the top */
    int64_t to_next_tier;                 /* points to earn to reach next_tier */
    int64_t earned_12m;                   /* earned in the rolling 12 months */
    uint64_t at_ms;                       /* the time the balance was computed for */
};

/* A lot of points that expires soon. */
struct coalition_expiring_lot {
    char issuer[COALITION_ID_MAX + 1]; /* the partner whose points they are */
    int64_t points;
    uint64_t earned_ms;
    uint64_t expires_ms;
};

struct coalition_expiring {
    uint64_t at_ms; /* the time the node looked from */
    size_t len;
    struct coalition_expiring_lot *lots; /* soonest first; owned, see _free */
};

/* Points of `issuer`'s redeemed at `redeemer` in a settlement window. */
struct coalition_flow {
    char issuer[COALITION_ID_MAX + 1];
    char redeemer[COALITION_ID_MAX + 1];
    int64_t points;   /* net of reversals */
    int64_t value_mc; /* owed by issuer to redeemer, thousandths of a cent */
};

/* What `payer` pays `payee` once the flows between the two, both ways, are
 * netted (coalition.SettlementPayment): one per pair of partners that is not
 * even, as the node computes it. */
struct coalition_payment {
    char payer[COALITION_ID_MAX + 1];
    char payee[COALITION_ID_MAX + 1];
    int64_t value_mc; /* > 0, thousandths of a cent */
};

/* One partner's settlement figures (coalition.PartnerPosition). */
struct coalition_position {
    char partner[COALITION_ID_MAX + 1];
    int64_t issued;        /* in the window, net of reversals */
    int64_t redeemed_at;   /* redeemed at this partner, any issuer */
    int64_t expired;       /* this issuer's breakage in the window */
    int64_t outstanding;   /* this issuer's points held by members at to_ms */
    int64_t liability_mc;  /* outstanding x point value at to_ms */
    int64_t receivable_mc; /* owed to this partner by other issuers */
    int64_t payable_mc;    /* owed by this partner to other redeemers */
    int64_t net_mc;        /* receivable - payable (> 0: is paid) */
    int64_t issued_total;  /* from the start through to_ms */
    int64_t redeemed_total;
    int64_t expired_total;
};

/* Settlement over the entries with from_ms <= time < to_ms. */
struct coalition_settlement {
    uint64_t from_ms;
    uint64_t to_ms;
    uint64_t through_seq; /* last entry inside the window */
    size_t n_flows;
    struct coalition_flow *flows; /* issuer, redeemer order; owned */
    size_t n_partners;
    struct coalition_position *partners; /* partner order; owned */
    size_t n_payments;
    struct coalition_payment *payments; /* the node's netting of the flows; owned */
};

/* A partner's earning program as the ledger applies it
 * (coalition.ProgramResult): the last program the partner set, or the
 * defaults of one that never set any (point_value_mc 1000, base_rate_milli
 * 1000, the rest 0 or none). */
struct coalition_partner_program {
    char partner[COALITION_ID_MAX + 1];
    /* Its categories, campaigns and their texts are owned by this struct
     * (coalition_partner_program_free), not borrowed as in a txn. */
    struct coalition_program program;
    void *mem; /* private: what program points into */
};

/* Program KPIs for one partner or the whole coalition (coalition.ReportResult). */
struct coalition_report {
    char partner[COALITION_ID_MAX + 1]; /* "" for the whole coalition */
    uint64_t from_ms;
    uint64_t to_ms;
    uint64_t through_seq;
    uint64_t active_members;    /* with a purchase or redemption */
    uint64_t purchasers;        /* with a purchase award */
    uint64_t repeat_purchasers; /* ... with two or more */
    uint64_t retained_members;  /* active in the previous window and in this one */
    uint64_t previous_active;   /* active in the previous window of equal length */
    uint64_t purchases;
    int64_t purchase_cents;
    int64_t points_issued;
    int64_t points_redeemed;
    int64_t points_expired;
    int64_t outstanding; /* at to_ms */
    int64_t liability_mc;
    size_t n_top_flows;
    struct coalition_flow *top_flows; /* largest cross-partner flows first; owned */
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

/* Makes later balance, history, expiring and lookup calls consistent (true)
 * or not (false, the default).  A consistent read
 * is answered by the leader after a raft barrier (a follower forwards it), so
 * it sees every write acknowledged before it was sent; a plain read is
 * answered by the node asked, from its own applied state, which may lag the
 * leader. */
void coalition_client_set_consistent(struct coalition_client *c, bool consistent);

/* Partner security (docs/security.md).  A node accepts a write only if it is
 * attributed to a partner (or the coalition admin) in one of two ways:
 *
 *  - an API key: "<key_id>.<secret>", issued by a partner to a POS terminal.
 *    The node resolves it to the partner it signs for and signs the write
 *    itself.  Set it with coalition_client_set_api_key; it goes with every
 *    request, reads included.
 *  - a signer: the client signs each transaction itself with the partner's
 *    (or the admin's) Ed25519 secret key: every Txn is sent as a SignedGroup
 *    of that one transaction.  Set it with coalition_client_set_signer.
 *
 * Both may be set (the key then authenticates the reads, the signature the
 * writes).  Results come back the same way to the caller in both modes, for
 * synchronous and pipelined calls alike.  A refused key or signature is
 * COALITION_E_UNAUTHENTICATED, an action the signer may not take
 * COALITION_E_FORBIDDEN. */

/* Sends `api_key` with every later request; NULL or "" stops sending one.
 * The key is copied (the caller's buffer may be freed at once) and wiped on
 * coalition_client_destroy.  Returns 0, or COALITION_E_INVALID_ARGUMENT if it
 * is longer than COALITION_API_KEY_MAX bytes (nothing changes then).  The
 * library does not check its form: the node does. */
int coalition_client_set_api_key(struct coalition_client *c, const char *api_key);

/* Signs every later transaction (coalition_client_txn, _award, _redeem,
 * _submit) as `signer`: a partner id, or "" for the coalition admin, with
 * its secret key `sk` (COALITION_SECRET_KEY_LEN bytes, as in a key file of
 * `coalition keygen`; see coalition_secret_key_load).  signer NULL stops
 * signing (sk is then ignored and may be NULL).  Both are copied; the copy of
 * sk is wiped on coalition_client_destroy or the next call.  Returns 0, or
 * COALITION_E_INVALID_ARGUMENT (signer longer than COALITION_ID_MAX bytes, or
 * sk NULL with a signer; nothing changes then).  Signing takes some tens of
 * microseconds per transaction on the caller's thread.  The node checks that
 * each transaction's partner is the signer (an empty partner: the admin).
 * coalition_client_identify is not a Txn and is not signed. */
int coalition_client_set_signer(struct coalition_client *c, const char *signer, const uint8_t *sk);

/* Reads a secret key file written by `coalition keygen` (128 hex digits)
 * into sk (caller's buffer of COALITION_SECRET_KEY_LEN bytes).  `path` is
 * borrowed.  Returns 0, COALITION_E_INVALID_ARGUMENT (not a key) or
 * COALITION_E_STORAGE (cannot read it); `err` (errlen bytes, may be NULL
 * when errlen is 0) receives a message naming the file. */
int coalition_secret_key_load(const char *path, uint8_t sk[COALITION_SECRET_KEY_LEN], char *err,
                              size_t errlen);

/* Retries failed synchronous calls by themselves: a call that gets
 * COALITION_E_TIMEOUT, COALITION_E_UNREACHABLE, COALITION_E_UNAVAILABLE,
 * COALITION_E_NOT_LEADER, COALITION_E_BUSY or COALITION_E_RATE_LIMITED (from
 * the node, or for the one transaction of a signed request) is sent again, the same request with
 * the same txn id (safe: the node answers a retried write with the original result, duplicate set),
 * up to `retries` more times, after a pause that doubles from 50 ms up to 1 s.  Each attempt waits
 * timeout_ms.  Before a retry the client moves on to the next address of its list (with several
 * addresses). Default 0: a failed call returns at once.  Pipelined calls (submit/poll) are never
 * retried by the library. coalition_client_cluster_change is not retried either. */
void coalition_client_set_retries(struct coalition_client *c, unsigned retries);

/* Synchronous calls: send one request and wait for its answer. */
int coalition_client_status(struct coalition_client *c, struct coalition_status *out);
int coalition_client_txn(struct coalition_client *c, const struct coalition_txn *txn,
                         struct coalition_txn_result *out);
int coalition_client_award(struct coalition_client *c, const char *partner, const char *member,
                           int64_t points, const char *txn_id, const char *reason,
                           struct coalition_txn_result *out);
int coalition_client_redeem(struct coalition_client *c, const char *partner, const char *member,
                            int64_t points, const char *txn_id, struct coalition_txn_result *out);
/* Balance of `member` now.  Same as coalition_client_balance_at with at_ms 0. */
int coalition_client_balance(struct coalition_client *c, const char *member,
                             struct coalition_balance *out);
/* Balance of `member` with expiry and locks evaluated at at_ms (ms since the
 * epoch; 0: now, as the node's clock says).  out->at_ms is the time used. */
int coalition_client_balance_at(struct coalition_client *c, const char *member, uint64_t at_ms,
                                struct coalition_balance *out);
/* Lots of `member` that expire within `within_days` days of at_ms (0: now),
 * soonest first.  On success *out holds lots the caller releases with
 * coalition_expiring_free. */
int coalition_client_expiring(struct coalition_client *c, const char *member, uint32_t within_days,
                              uint64_t at_ms, struct coalition_expiring *out);
void coalition_expiring_free(struct coalition_expiring *e);
/* Finds the member with card `card`, or phone `phone`, or email `email`:
 * exactly one of the three is non-NULL and non-empty (INVALID_ARGUMENT
 * otherwise, nothing sent).  The node hashes a phone or email with the
 * coalition identity key (IDENTITY_UNAVAILABLE if it has none).  On success
 * `member` (caller's buffer) holds the id. */
int coalition_client_lookup(struct coalition_client *c, const char *card, const char *phone,
                            const char *email, char member[COALITION_ID_MAX + 1]);
/* Sets the lookup keys of `member` to its phone and email (at least one
 * non-empty).  Sent as Request.identify, not as a Txn: the node hashes the
 * raw values into a TXN_IDENTIFY before anything is ordered, so they never
 * enter the ledger.  A write: after TIMEOUT or UNREACHABLE retry with the same
 * txn_id. */
int coalition_client_identify(struct coalition_client *c, const char *member, const char *phone,
                              const char *email, const char *txn_id,
                              struct coalition_txn_result *out);
/* The settlement statement over [from_ms, to_ms), computed by the node asked
 * from its own committed state (through_seq says how far it reached).  On
 * success *out holds
 * flows, positions and payments the caller releases with
 * coalition_settlement_free. */
int coalition_client_settlement(struct coalition_client *c, uint64_t from_ms, uint64_t to_ms,
                                struct coalition_settlement *out);
void coalition_settlement_free(struct coalition_settlement *s);
/* KPIs of `partner` (NULL or "": the whole coalition) over [from_ms,
 * to_ms).  On success *out holds top flows the caller releases with
 * coalition_report_free. */
int coalition_client_report(struct coalition_client *c, const char *partner, uint64_t from_ms,
                            uint64_t to_ms, struct coalition_report *out);
void coalition_report_free(struct coalition_report *r);
/* The earning program of `partner` (NULL or "": the partner of the
 * client's API key, coalition_client_set_api_key; without one the node
 * answers INVALID_ARGUMENT).  Any partner's may be read; UNKNOWN_PARTNER
 * for one not admitted.  A consistent read when the client is set so.  On
 * success *out holds categories and campaigns the caller releases with
 * coalition_partner_program_free. */
int coalition_client_program(struct coalition_client *c, const char *partner,
                             struct coalition_partner_program *out);
void coalition_partner_program_free(struct coalition_partner_program *p);
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
 * bytes.  The request is signed with the signer's key
 * (coalition_client_set_signer; the signer id is not sent) at this host's
 * wall-clock time with a fresh nonce; the leader accepts ADD, ASSIGN and
 * REMOVE only from the coalition admin key and JOIN only from a key it
 * trusts for raft links, signed within 5 minutes of its clock and not seen
 * before.  Without a signer the request goes unsigned and is refused with
 * COALITION_E_UNAUTHENTICATED; another key is COALITION_E_FORBIDDEN.
 * Returns 0 once the leader has made the change. */
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

/* Lower-case name of a transaction kind ("award", "partner_add",
 * "program_set", "hold_timeout", ...: the TxnKind name without TXN_), as the
 * CLI's --json output and the load generator's logs spell it; "unknown" for
 * a value outside the enum.  Static storage. */
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
