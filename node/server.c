/* The TCP front of coalitiond (contract in server.h): connections, frame
 * decoding, request dispatch (served here, proposed through the batcher on
 * the leader, or forwarded to the leader), and coalesced response writes.
 * Ledger logic lives in ledger.c, ordering in batcher.c and cluster.c. */
#include "server.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "bytes.h"
#include "errors.h"
#include "frame.h"
#include "outbuf.h"
#include "report.h"

#define SERVER_READ_BUF (64 * 1024)

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;   /* a client */
        uv_pipe_t pipe; /* a forwarding channel from another node (server_adopt_channel) */
    } h;                /* first: the handle's address is the conn's */
    struct server *srv;
    struct conn *prev, *next;
    struct frame_decoder dec;
    struct outbuf out; /* responses */
    size_t inflight;   /* requests answered later (writes, verify, forwarded) */
    int refs;          /* the handle + one per request in flight + the write */
    bool reading, closing, close_after_flush, processing, told_slow;
};

/* A request whose answer comes later (a write, a verify). */
struct op {
    struct batcher_req breq; /* first */
    struct conn *conn;
    Coalition__Request *req; /* owned */
    uv_work_t work;          /* verify, settlement, report: a full scan */
    struct ledger_verify_report rep;
    int scan_rv;
    Coalition__SettlementResult *settlement; /* owned, report_settlement_free */
    Coalition__ReportResult *report;         /* owned, report_kpi_free */
    Coalition__Txn ident;                    /* identify: the hashed transaction */
    ProtobufCBinaryData ident_keys[2];
    uint8_t ident_hash[2][IDENTITY_HASH_LEN];
    struct forward_req freq;         /* forwarded to the leader */
    struct cluster_op cop;           /* barrier or membership change */
    Coalition__TxnList *list;        /* a signed group's transactions (owned) */
    struct ledger_result *results;   /* a signed group's results (owned) */
    struct op *sign_next;            /* waiting to be signed by this node */
    char partner[LEDGER_ID_MAX + 1]; /* identify: the partner it acts for */
};

/* Writes this node signed for its partner in one loop iteration: one
 * signature, one group, routed to the leader like a tool's signed group. */
struct sgroup {
    struct batcher_req breq; /* first */
    struct server *srv;
    Coalition__SignedGroup g;
    struct op **ops; /* n, each waiting for results[i] */
    size_t n;
    struct ledger_result *results;
    Coalition__Request fwd;
    struct forward_req freq;
};

static uint8_t server_read_buf[SERVER_READ_BUF];

static void conn_flush(struct conn *c);
static void conn_close(struct conn *c);
static void conn_maybe_resume(struct conn *c);

static void conn_unref(struct conn *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0) {
        return;
    }
    frame_decoder_close(&c->dec);
    outbuf_close(&c->out);
    free(c);
}

static void conn_on_close(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    struct server *s = c->srv;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->n_conns--;
    conn_unref(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    uv_read_stop(&c->h.stream);
    uv_close(&c->h.handle, conn_on_close);
}

/* Packs `resp` as a frame straight into the output buffer. */
static void conn_send(struct conn *c, const Coalition__Response *resp)
{
    if (c->closing) {
        return;
    }
    size_t len = coalition__response__get_packed_size(resp);
    uint8_t *p = len <= FRAME_PAYLOAD_MAX ? outbuf_reserve(&c->out, FRAME_HEADER_LEN + len) : NULL;
    if (p == NULL) {
        conn_close(c);
        return;
    }
    bytes_put_be32(p, (uint32_t)len);
    coalition__response__pack(resp, p + FRAME_HEADER_LEN);
    outbuf_commit(&c->out, FRAME_HEADER_LEN + len);
    conn_flush(c);
}

static void conn_send_error(struct conn *c, uint64_t id, int code)
{
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    resp.id = id;
    resp.code = code;
    resp.message = (char *)coalition_strerror(code);
    conn_send(c, &resp);
}

static void conn_on_write(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    outbuf_written(&c->out);
    if (status < 0) {
        conn_close(c);
    } else {
        conn_flush(c);
        conn_maybe_resume(c);
    }
    conn_unref(c);
}

/* Hands the accumulated output to libuv, one write at a time; responses
 * that arrive meanwhile are coalesced into the next write. */
static void conn_flush(struct conn *c)
{
    if (c->closing) {
        return;
    }
    if (outbuf_pending(&c->out) == 0 && !c->out.writing) {
        if (c->close_after_flush) {
            conn_close(c);
        }
        return;
    }
    int rv = outbuf_flush(&c->out, &c->h.stream, c, conn_on_write);
    if (rv < 0) {
        conn_close(c);
    } else if (rv == 1) {
        c->refs++;
    }
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = (char *)server_read_buf;
    buf->len = sizeof(server_read_buf);
}

static void conn_read_start(struct conn *c);

/* Bookkeeping when a deferred request completes; frees the op and its
 * request. */
static void op_finish(struct op *op)
{
    struct conn *c = op->conn;
    assert(c->inflight > 0);
    c->inflight--;
    conn_maybe_resume(c);
    if (op->req != NULL) {
        coalition__request__free_unpacked(op->req, NULL);
    }
    if (op->list != NULL) {
        coalition__txn_list__free_unpacked(op->list, NULL);
    }
    free(op->results);
    free(op);
    conn_unref(c);
}

/* Takes ownership of `req` (freed by op_finish). */
static struct op *op_create(struct conn *c, Coalition__Request *req)
{
    struct op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return NULL;
    }
    op->conn = c;
    op->req = req;
    c->refs++;
    c->inflight++;
    return op;
}

/* op_create, or, if memory ran out, answer NOMEM and free `req`. */
static struct op *op_start(struct conn *c, Coalition__Request *req)
{
    struct op *op = op_create(c, req);
    if (op == NULL) {
        conn_send_error(c, req->id, COALITION_E_NOMEM);
        coalition__request__free_unpacked(req, NULL);
    }
    return op;
}

/* An error answer that tells the client where the leader is, if known. */
static void conn_send_error_hint(struct conn *c, uint64_t id, int code, const char *hint)
{
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    resp.id = id;
    resp.code = code;
    resp.message = (char *)coalition_strerror(code);
    resp.leader_hint = (char *)(hint != NULL ? hint : "");
    conn_send(c, &resp);
}

/* The wire form of an accepted transaction's outcome (strings borrowed from
 * txn_id and r). */
static void txn_result_fill(Coalition__TxnResult *tr, const char *txn_id,
                            const struct ledger_result *r)
{
    coalition__txn_result__init(tr);
    tr->txn_id = (char *)txn_id;
    tr->seq = r->seq;
    tr->duplicate = r->duplicate;
    tr->points = r->points;
    tr->time_ms = r->time_ms;
    tr->rule = (char *)r->rule;
}

static void op_on_txn(struct batcher_req *breq)
{
    struct op *op = (struct op *)breq;
    const struct ledger_result *r = &breq->result;
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__TxnResult tr;
    resp.id = op->req->id;
    resp.code = r->code;
    resp.message = (char *)coalition_strerror(r->code);
    if (r->code == 0) {
        txn_result_fill(&tr, op->breq.txn->txn_id, r);
        resp.result_case = COALITION__RESPONSE__RESULT_TXN;
        resp.txn = &tr;
    }
    conn_send(op->conn, &resp);
    op_finish(op);
}

/* The leader's answer to a forwarded request, relayed under the client's
 * own request id. */
static void op_on_forwarded(struct forward_req *freq, int code, const Coalition__Response *resp)
{
    struct op *op = freq->data;
    if (code != 0) {
        conn_send_error_hint(op->conn, op->req->id, code, NULL);
    } else {
        Coalition__Response copy = *resp;
        copy.id = op->req->id;
        conn_send(op->conn, &copy);
    }
    op_finish(op);
}

/* For requests only the leader may serve.  Returns true if this node is the
 * leader and should serve `req` itself; otherwise answers or forwards it
 * (taking ownership of req) and returns false. */
static bool leader_only(struct conn *c, Coalition__Request *req)
{
    struct server *s = c->srv;
    if (cluster_is_leader(s->cluster)) {
        return true;
    }
    char addr[FORWARD_ADDR_MAX];
    uint64_t leader = cluster_leader_link(s->cluster, addr, sizeof(addr));
    if (req->forwarded || leader == 0 || addr[0] == '\0') {
        /* A forwarded request is not forwarded again (the sender's view of
         * the leader is stale); without a known leader nobody can serve.
         * The hint is the leader's client address, for clients. */
        char hint[CONFIG_ADDR_MAX];
        cluster_leader(s->cluster, hint, sizeof(hint));
        conn_send_error_hint(
            c, req->id, req->forwarded ? COALITION_E_NOT_LEADER : COALITION_E_UNAVAILABLE, hint);
        coalition__request__free_unpacked(req, NULL);
        return false;
    }
    struct op *op = op_start(c, req);
    if (op == NULL) {
        return false;
    }
    op->freq.data = op;
    forwarder_send(s->forwarder, addr, req, &op->freq, op_on_forwarded);
    return false;
}

static void handle_status(struct conn *c, uint64_t id)
{
    struct ledger_head h;
    ledger_get_head(c->srv->ledger, &h);
    struct cluster_status cs;
    cluster_get_status(c->srv->cluster, &cs);
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__StatusResult st = COALITION__STATUS_RESULT__INIT;
    resp.id = id;
    resp.message = "";
    st.node_id = c->srv->node_id;
    st.role = (char *)cs.state;
    st.membership = (char *)cs.membership;
    st.leader_id = cs.leader_id;
    st.last_index = cs.last_index;
    st.applied_seq = h.seq;
    st.applied_index = h.applied_index;
    st.head_hash.data = h.hash;
    st.head_hash.len = sizeof(h.hash);
    resp.result_case = COALITION__RESPONSE__RESULT_STATUS;
    resp.status = &st;
    conn_send(c, &resp);
}

/* Reads evaluate expiry and locks at the given instant or this node's
 * clock: not part of the replicated state, so a clock is fine here. */
static uint64_t read_time(const struct conn *c, uint64_t at_ms)
{
    return at_ms != 0 ? at_ms : batcher_now_ms(c->srv->batcher);
}

static void handle_balance(struct conn *c, uint64_t id, const Coalition__BalanceRequest *br)
{
    struct ledger_balance lb;
    int rv = ledger_balance_at(c->srv->ledger, read_time(c, br->at_ms), br->member, &lb);
    if (rv != 0) {
        conn_send_error(c, id, rv);
        return;
    }
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__BalanceResult b = COALITION__BALANCE_RESULT__INIT;
    resp.id = id;
    resp.message = "";
    b.member = br->member;
    b.points = lb.points;
    b.held = lb.held;
    b.locked = lb.locked;
    b.tier = lb.tier;
    b.next_tier = lb.next_tier;
    b.to_next_tier = lb.to_next_tier;
    b.earned_12m = lb.earned_12m;
    b.at_ms = lb.at_ms;
    b.as_of_seq = lb.as_of_seq;
    resp.result_case = COALITION__RESPONSE__RESULT_BALANCE;
    resp.balance = &b;
    conn_send(c, &resp);
}

static void handle_expiring(struct conn *c, uint64_t id, const Coalition__ExpiringRequest *er)
{
    uint64_t at = read_time(c, er->at_ms);
    Coalition__ExpiringLot *items = NULL;
    size_t n = 0;
    int rv = er->within_days > 3660
                 ? COALITION_E_INVALID_ARGUMENT
                 : ledger_expiring(c->srv->ledger, er->member, at,
                                   at + (uint64_t)er->within_days * 86400000, &items, &n);
    Coalition__ExpiringLot **ptrs = rv == 0 ? calloc(n + 1, sizeof(*ptrs)) : NULL;
    if (rv == 0 && ptrs == NULL) {
        rv = COALITION_E_NOMEM;
    }
    if (rv != 0) {
        ledger_expiring_free(items, n);
        conn_send_error(c, id, rv);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = &items[i];
    }
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__ExpiringResult er_out = COALITION__EXPIRING_RESULT__INIT;
    resp.id = id;
    resp.message = "";
    er_out.member = er->member;
    er_out.n_lots = n;
    er_out.lots = ptrs;
    er_out.at_ms = at;
    resp.result_case = COALITION__RESPONSE__RESULT_EXPIRING;
    resp.expiring = &er_out;
    conn_send(c, &resp);
    free(ptrs);
    ledger_expiring_free(items, n);
}

static void handle_lookup(struct conn *c, uint64_t id, const Coalition__LookupRequest *lr)
{
    const struct identity_key *k = c->srv->identity;
    bool card = lr->card[0] != '\0', phone = lr->phone[0] != '\0', email = lr->email[0] != '\0';
    char member[LEDGER_ID_MAX + 1];
    uint8_t hash[IDENTITY_HASH_LEN];
    int rv = 0;
    if (card + phone + email != 1) {
        rv = COALITION_E_INVALID_ARGUMENT;
    } else if (card) {
        rv = ledger_lookup_card(c->srv->ledger, lr->card, member);
    } else {
        rv = phone ? identity_hash_phone(k, lr->phone, hash)
                   : identity_hash_email(k, lr->email, hash);
        if (rv == 0) {
            rv = ledger_lookup_key(c->srv->ledger, hash, member);
        }
    }
    if (rv != 0) {
        conn_send_error(c, id, rv);
        return;
    }
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__LookupResult lres = COALITION__LOOKUP_RESULT__INIT;
    resp.id = id;
    resp.message = "";
    lres.member = member;
    resp.result_case = COALITION__RESPONSE__RESULT_LOOKUP;
    resp.lookup = &lres;
    conn_send(c, &resp);
}

/* The partner whose API key the request carries: 0, UNAUTHENTICATED
 * (missing, malformed, unknown or revoked) or a storage error. */
static int request_partner(struct server *s, const Coalition__Request *req,
                           char partner[LEDGER_ID_MAX + 1])
{
    char id[AUTH_KEY_ID_HEX + 1];
    uint8_t hash[AUTH_HASH_LEN];
    if (req->api_key == NULL || req->api_key[0] == '\0') {
        return COALITION_E_UNAUTHENTICATED;
    }
    int rv = auth_api_key_parse(req->api_key, id, hash);
    return rv != 0 ? rv : ledger_api_key_partner(s->ledger, id, hash, partner);
}

/* A partner's program: the one named, or the API key's partner when none
 * is (ProgramRequest in proto/coalition.proto). */
static void handle_program(struct conn *c, const Coalition__Request *req)
{
    const char *partner = req->program->partner;
    char keyed[LEDGER_ID_MAX + 1];
    int rv = 0;
    if (partner[0] == '\0') {
        rv = req->api_key != NULL && req->api_key[0] != '\0' ? request_partner(c->srv, req, keyed)
                                                             : COALITION_E_INVALID_ARGUMENT;
        partner = keyed;
    }
    Coalition__Program *prog = NULL;
    if (rv == 0) {
        rv = ledger_program(c->srv->ledger, partner, &prog);
    }
    if (rv != 0) {
        conn_send_error(c, req->id, rv);
        return;
    }
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__ProgramResult pres = COALITION__PROGRAM_RESULT__INIT;
    resp.id = req->id;
    resp.message = "";
    pres.partner = (char *)partner;
    pres.program = prog;
    resp.result_case = COALITION__RESPONSE__RESULT_PROGRAM;
    resp.program = &pres;
    conn_send(c, &resp);
    ledger_program_free(prog);
}

static void handle_history(struct conn *c, uint64_t id, const Coalition__HistoryRequest *hr)
{
    Coalition__HistoryItem *items = NULL;
    size_t n = 0;
    int rv = ledger_history(c->srv->ledger, hr->member, hr->limit, &items, &n);
    if (rv != 0) {
        conn_send_error(c, id, rv);
        return;
    }
    Coalition__HistoryItem **ptrs = calloc(n > 0 ? n : 1, sizeof(*ptrs));
    if (ptrs == NULL) {
        ledger_history_free(items, n);
        conn_send_error(c, id, COALITION_E_NOMEM);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = &items[i];
    }
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__HistoryResult hres = COALITION__HISTORY_RESULT__INIT;
    resp.id = id;
    resp.message = "";
    hres.member = hr->member;
    hres.n_items = n;
    hres.items = ptrs;
    resp.result_case = COALITION__RESPONSE__RESULT_HISTORY;
    resp.history = &hres;
    conn_send(c, &resp);
    free(ptrs);
    ledger_history_free(items, n);
}

/* Answers a read from this node's state. */
static void handle_read(struct conn *c, const Coalition__Request *req)
{
    switch (req->op_case) {
    case COALITION__REQUEST__OP_BALANCE:
        handle_balance(c, req->id, req->balance);
        break;
    case COALITION__REQUEST__OP_EXPIRING:
        handle_expiring(c, req->id, req->expiring);
        break;
    case COALITION__REQUEST__OP_LOOKUP:
        handle_lookup(c, req->id, req->lookup);
        break;
    case COALITION__REQUEST__OP_PROGRAM:
        handle_program(c, req);
        break;
    default:
        handle_history(c, req->id, req->history);
        break;
    }
}

static void op_on_barrier(void *data, int status)
{
    struct op *op = data;
    if (status != 0) {
        conn_send_error(op->conn, op->req->id, status);
    } else {
        handle_read(op->conn, op->req);
    }
    op_finish(op);
}

/* A linearizable read: on the leader, after a raft barrier. */
static void handle_consistent_read(struct conn *c, Coalition__Request *req)
{
    if (!leader_only(c, req)) {
        return;
    }
    struct op *op = op_start(c, req);
    if (op == NULL) {
        return;
    }
    int rv = cluster_barrier(c->srv->cluster, &op->cop, op_on_barrier, op);
    if (rv != 0) {
        conn_send_error(c, req->id, rv);
        op_finish(op);
    }
}

/* On a pool thread: reads only a snapshot of the store. */
static void scan_work(uv_work_t *w)
{
    struct op *op = w->data;
    struct store *st = op->conn->srv->store;
    const Coalition__Request *req = op->req;
    switch (req->op_case) {
    case COALITION__REQUEST__OP_SETTLEMENT:
        op->scan_rv = report_settlement(st, req->settlement->from_ms, req->settlement->to_ms,
                                        &op->settlement);
        break;
    case COALITION__REQUEST__OP_REPORT:
        op->scan_rv = report_kpi(st, req->report->partner, req->report->from_ms, req->report->to_ms,
                                 &op->report);
        break;
    default:
        op->scan_rv = ledger_verify(st, &op->rep);
        break;
    }
}

static void scan_done(uv_work_t *w, int status)
{
    struct op *op = w->data;
    struct conn *c = op->conn;
    c->srv->verifies_running--;
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    resp.id = op->req->id;
    resp.code = status != 0 ? COALITION_E_INTERNAL : op->scan_rv;
    resp.message = (char *)coalition_strerror(resp.code);
    if (resp.code == 0 && op->settlement != NULL) {
        resp.result_case = COALITION__RESPONSE__RESULT_SETTLEMENT;
        resp.settlement = op->settlement;
    } else if (resp.code == 0 && op->report != NULL) {
        resp.result_case = COALITION__RESPONSE__RESULT_REPORT;
        resp.report = op->report;
    }
    if (op->req->op_case != COALITION__REQUEST__OP_VERIFY) {
        conn_send(c, &resp);
        report_settlement_free(op->settlement);
        report_kpi_free(op->report);
        op_finish(op);
        return;
    }
    Coalition__VerifyResult vr = COALITION__VERIFY_RESULT__INIT;
    resp.message = resp.code == COALITION_E_VERIFY_FAILED ? op->rep.detail
                                                          : (char *)coalition_strerror(resp.code);
    vr.entries_checked = op->rep.entries_checked;
    vr.accounts_checked = op->rep.accounts_checked;
    vr.broken_seq = op->rep.broken_seq;
    vr.head_hash.data = op->rep.head_hash;
    vr.head_hash.len = LEDGER_HASH_LEN;
    vr.state_digest.data = op->rep.state_digest;
    vr.state_digest.len = LEDGER_HASH_LEN;
    if (resp.code == 0 || resp.code == COALITION_E_VERIFY_FAILED) {
        resp.result_case = COALITION__RESPONSE__RESULT_VERIFY;
        resp.verify = &vr;
    }
    conn_send(c, &resp);
    op_finish(op);
}

/* Verify, settlement and KPI reports replay entries on a pool thread. */
static void handle_scan(struct conn *c, Coalition__Request *req)
{
    /* A replay reads the whole store and holds a snapshot and a counter per
     * account; libuv's 4 pool threads also do raft's disk work.  One at a
     * time. */
    if (c->srv->verifies_running >= SERVER_VERIFIES_MAX) {
        conn_send_error(c, req->id, COALITION_E_BUSY);
        coalition__request__free_unpacked(req, NULL);
        return;
    }
    struct op *op = op_start(c, req);
    if (op == NULL) {
        return;
    }
    op->work.data = op;
    c->srv->verifies_running++;
    if (uv_queue_work(c->srv->loop, &op->work, scan_work, scan_done) != 0) {
        c->srv->verifies_running--;
        conn_send_error(c, req->id, COALITION_E_INTERNAL);
        op_finish(op);
    }
}

/* ---------------------------------------------------------------------------
 * Authentication, rate limits and signing (docs/security.md) */

/* Kinds only the coalition admin may submit (a partner's API key cannot). */
static bool admin_only(int kind)
{
    return kind == COALITION__TXN_KIND__TXN_PARTNER_ADD ||
           kind == COALITION__TXN_KIND__TXN_RULES_SET || kind == COALITION__TXN_KIND__TXN_MERGE ||
           kind == COALITION__TXN_KIND__TXN_ERASE;
}

/* Takes one request from `partner`'s budget (a token bucket refilled at
 * partner_rps per second, holding at most one second's worth).  False if
 * the partner is over its rate. */
static bool rate_take(struct server *s, const char *partner)
{
    if (s->partner_rps == 0) {
        return true;
    }
    uint64_t h = bytes_fnv1a(BYTES_FNV1A_INIT, partner, strlen(partner));
    struct server_rate *r = NULL;
    for (size_t i = 0; i < 8 && r == NULL; i++) {
        struct server_rate *slot = &s->rates[(h + i) % SERVER_RATES];
        if (strcmp(slot->partner, partner) == 0) {
            r = slot;
        }
    }
    uint64_t now = uv_now(s->loop);
    double cap = (double)s->partner_rps;
    if (r == NULL) {
        /* New (or evicted): a full bucket in its home slot. */
        r = &s->rates[h % SERVER_RATES];
        snprintf(r->partner, sizeof(r->partner), "%s", partner);
        r->tokens = cap;
        r->at_ms = now;
    }
    r->tokens += (double)(now - r->at_ms) * cap / 1000.0;
    r->tokens = r->tokens > cap ? cap : r->tokens;
    r->at_ms = now;
    if (r->tokens < 1.0) {
        return false;
    }
    r->tokens -= 1.0;
    return true;
}

/* Answers a write or identify request that failed before ordering. */
static void refuse(struct conn *c, Coalition__Request *req, int code)
{
    conn_send_error(c, req->id, code);
    coalition__request__free_unpacked(req, NULL);
}

/* A POS write with an API key: the key's partner (into `partner`) must be
 * the one this node signs for, and t must name it or no partner (the caller
 * then sets it).  0 or the code to refuse with. */
static int authorize_api_write(struct server *s, const Coalition__Request *req,
                               const Coalition__Txn *t, char partner[LEDGER_ID_MAX + 1])
{
    int rv = request_partner(s, req, partner);
    if (rv != 0) {
        return rv;
    }
    if (!s->signs || strcmp(partner, s->partner) != 0 || admin_only(t->kind)) {
        return COALITION_E_FORBIDDEN;
    }
    if (t->partner != NULL && t->partner[0] != '\0' && strcmp(t->partner, partner) != 0) {
        return COALITION_E_FORBIDDEN;
    }
    return rate_take(s, partner) ? 0 : COALITION_E_RATE_LIMITED;
}

/* Queues op (whose breq.txn is set) to be signed at the end of this loop
 * iteration. */
static void sign_queue(struct server *s, struct op *op)
{
    op->sign_next = NULL;
    *s->sign_tail = op;
    s->sign_tail = &op->sign_next;
}

static void sgroup_free(struct sgroup *sg)
{
    auth_group_clear(&sg->g);
    free(sg->ops);
    free(sg->results);
    free(sg);
}

/* Every op of the group gets its result (or `code` for all, with the
 * leader hint); then the group is freed. */
static void sgroup_finish(struct sgroup *sg, int code)
{
    for (size_t i = 0; i < sg->n; i++) {
        struct op *op = sg->ops[i];
        if (code != 0) {
            memset(&op->breq.result, 0, sizeof(op->breq.result));
            op->breq.result.code = code;
        } else {
            op->breq.result = sg->results[i];
        }
        op_on_txn(&op->breq);
    }
    sgroup_free(sg);
}

static void sgroup_on_applied(struct batcher_req *breq)
{
    sgroup_finish((struct sgroup *)breq, 0);
}

/* A result that came back from the leader in a GroupTxnResult. */
static void result_from_wire(const Coalition__GroupTxnResult *gr, struct ledger_result *out)
{
    memset(out, 0, sizeof(*out));
    out->code = gr->code;
    if (gr->code == 0 && gr->txn != NULL) {
        out->seq = gr->txn->seq;
        out->duplicate = gr->txn->duplicate;
        out->points = gr->txn->points;
        out->time_ms = gr->txn->time_ms;
        snprintf(out->rule, sizeof(out->rule), "%s", gr->txn->rule != NULL ? gr->txn->rule : "");
    }
}

static void sgroup_on_forwarded(struct forward_req *freq, int code, const Coalition__Response *resp)
{
    struct sgroup *sg = freq->data;
    if (code == 0 && resp->code != 0) {
        code = resp->code;
    }
    if (code == 0 && resp->n_group_results != sg->n) {
        code = COALITION_E_UNAVAILABLE;
    }
    for (size_t i = 0; code == 0 && i < sg->n; i++) {
        result_from_wire(resp->group_results[i], &sg->results[i]);
    }
    sgroup_finish(sg, code);
}

/* Sends a group to be ordered: into the batcher on the leader, forwarded to
 * the leader elsewhere. */
static void sgroup_route(struct sgroup *sg)
{
    struct server *s = sg->srv;
    if (cluster_is_leader(s->cluster)) {
        sg->breq.group = &sg->g;
        sg->breq.n = sg->n;
        sg->breq.results = sg->results;
        sg->breq.cb = sgroup_on_applied;
        batcher_submit(s->batcher, &sg->breq);
        return;
    }
    char addr[FORWARD_ADDR_MAX];
    if (cluster_leader_link(s->cluster, addr, sizeof(addr)) == 0 || addr[0] == '\0') {
        sgroup_finish(sg, COALITION_E_UNAVAILABLE);
        return;
    }
    coalition__request__init(&sg->fwd);
    sg->fwd.op_case = COALITION__REQUEST__OP_GROUP;
    sg->fwd.group = &sg->g;
    sg->freq.data = sg;
    forwarder_send(s->forwarder, addr, &sg->fwd, &sg->freq, sgroup_on_forwarded);
}

/* End of a loop iteration: signs what this node's partner wrote during it,
 * up to BATCHER_BATCH_MAX transactions per signature. */
static void server_on_sign_check(uv_check_t *h)
{
    struct server *s = h->data;
    while (s->sign_pending != NULL) {
        size_t n = 0;
        for (struct op *op = s->sign_pending; op != NULL && n < BATCHER_BATCH_MAX;
             op = op->sign_next) {
            n++;
        }
        struct sgroup *sg = calloc(1, sizeof(*sg));
        Coalition__Txn **txns = calloc(n, sizeof(*txns));
        if (sg != NULL) {
            sg->srv = s;
            sg->ops = calloc(n, sizeof(*sg->ops));
            sg->results = calloc(n, sizeof(*sg->results));
        }
        bool ok = sg != NULL && txns != NULL && sg->ops != NULL && sg->results != NULL;
        for (size_t i = 0; i < n; i++) {
            struct op *op = s->sign_pending;
            s->sign_pending = op->sign_next;
            if (ok) {
                sg->ops[i] = op;
                txns[i] = op->breq.txn;
            } else {
                conn_send_error(op->conn, op->req->id, COALITION_E_NOMEM);
                op_finish(op);
            }
        }
        if (s->sign_pending == NULL) {
            s->sign_tail = &s->sign_pending;
        }
        if (ok) {
            sg->n = n;
            int rv = auth_group_make(&sg->g, s->partner, txns, n, s->partner_sk);
            if (rv != 0) {
                sgroup_finish(sg, rv);
            } else {
                sgroup_route(sg);
            }
        } else if (sg != NULL) {
            sgroup_free(sg);
        }
        free(txns);
    }
}

static void handle_txn(struct conn *c, Coalition__Request *req)
{
    /* Checked here before ordering, and again when applied.  Scheduled kinds
     * come only from the leader's sweeper, INIT only from genesis. */
    Coalition__Txn *t = req->txn;
    char partner[LEDGER_ID_MAX + 1];
    int rv = ledger_kind_scheduled(t->kind) || t->kind == COALITION__TXN_KIND__TXN_INIT
                 ? COALITION_E_INVALID_ARGUMENT
                 : authorize_api_write(c->srv, req, t, partner);
    if (rv == 0 && (t->partner == NULL || t->partner[0] == '\0')) {
        char *copy = strdup(partner); /* freed with the request */
        rv = copy != NULL ? 0 : COALITION_E_NOMEM;
        t->partner = copy != NULL ? copy : t->partner;
    }
    if (rv == 0) {
        rv = ledger_validate(t);
    }
    if (rv != 0) {
        refuse(c, req, rv);
        return;
    }
    struct op *op = op_start(c, req);
    if (op != NULL) {
        op->breq.txn = t;
        op->breq.cb = op_on_txn;
        sign_queue(c->srv, op);
    }
}

/* The answer to a signed group: one result per transaction. */
static void op_on_group(struct batcher_req *breq)
{
    struct op *op = (struct op *)breq;
    size_t n = breq->n;
    Coalition__GroupTxnResult *items = calloc(n, sizeof(*items));
    Coalition__GroupTxnResult **ptrs = calloc(n, sizeof(*ptrs));
    Coalition__TxnResult *trs = calloc(n, sizeof(*trs));
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    resp.id = op->req->id;
    if (items == NULL || ptrs == NULL || trs == NULL) {
        resp.code = COALITION_E_NOMEM;
    } else {
        /* Unknown outcome for all (leadership lost): said once, for retry. */
        bool all_unavailable = true;
        for (size_t i = 0; i < n; i++) {
            const struct ledger_result *r = &op->results[i];
            all_unavailable &= r->code == COALITION_E_UNAVAILABLE;
            coalition__group_txn_result__init(&items[i]);
            items[i].code = r->code;
            if (r->code == 0) {
                txn_result_fill(&trs[i], op->list->txns[i]->txn_id, r);
                items[i].txn = &trs[i];
            }
            ptrs[i] = &items[i];
        }
        resp.code = all_unavailable ? COALITION_E_UNAVAILABLE : 0;
        resp.n_group_results = n;
        resp.group_results = ptrs;
    }
    resp.message = (char *)coalition_strerror(resp.code);
    conn_send(op->conn, &resp);
    free(items);
    free(ptrs);
    free(trs);
    op_finish(op);
}

/* Checks a group a tool signed itself (or a follower forwards): it decodes,
 * every transaction is one a client may send, and (on the leader, whose
 * state has everything acknowledged) the signature verifies with the
 * signer's key.  0 or the code to refuse with; *list on success. */
static int group_check(struct server *s, const Coalition__Request *req, Coalition__TxnList **list)
{
    const Coalition__SignedGroup *g = req->group;
    *list = g->signer != NULL && g->txns.len > 0
                ? coalition__txn_list__unpack(NULL, g->txns.len, g->txns.data)
                : NULL;
    if (*list == NULL || (*list)->n_txns == 0 || (*list)->n_txns > BATCHER_BATCH_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < (*list)->n_txns; i++) {
        const Coalition__Txn *t = (*list)->txns[i];
        int rv = ledger_kind_scheduled(t->kind) || t->kind == COALITION__TXN_KIND__TXN_INIT
                     ? COALITION_E_INVALID_ARGUMENT
                     : ledger_validate(t);
        if (rv != 0) {
            return rv;
        }
    }
    if (!cluster_is_leader(s->cluster)) {
        return 0; /* the leader checks the signature: a follower may lag */
    }
    uint8_t pk[AUTH_PUBLIC_LEN];
    int rv = ledger_signer_key(s->ledger, g->signer, pk);
    if (rv == 0) {
        rv = auth_group_verify(g->txns.data, g->txns.len, g->signature.data, g->signature.len, pk);
    }
    if (rv == 0 && !rate_take(s, g->signer)) {
        rv = COALITION_E_RATE_LIMITED;
    }
    return rv;
}

static void handle_group(struct conn *c, Coalition__Request *req)
{
    Coalition__TxnList *list = NULL;
    int rv = group_check(c->srv, req, &list);
    if (rv != 0) {
        if (list != NULL) {
            coalition__txn_list__free_unpacked(list, NULL);
        }
        refuse(c, req, rv);
        return;
    }
    size_t n = list->n_txns;
    if (!leader_only(c, req)) {
        coalition__txn_list__free_unpacked(list, NULL);
        return;
    }
    struct op *op = op_start(c, req);
    if (op == NULL) {
        coalition__txn_list__free_unpacked(list, NULL);
        return;
    }
    op->list = list;
    op->results = calloc(n, sizeof(*op->results));
    if (op->results == NULL) {
        conn_send_error(c, req->id, COALITION_E_NOMEM);
        op_finish(op);
        return;
    }
    op->breq.group = req->group;
    op->breq.n = n;
    op->breq.results = op->results;
    op->breq.cb = op_on_group;
    batcher_submit(c->srv->batcher, &op->breq);
}

/* Phone and email become keyed hashes here, on the node the POS talks to,
 * before anything is signed, forwarded or ordered: the raw values never
 * leave this node.  Needs an API key (the node signs the IDENTIFY). */
static void handle_identify(struct conn *c, Coalition__Request *req)
{
    struct server *s = c->srv;
    struct op *op = op_start(c, req);
    if (op == NULL) {
        return;
    }
    const Coalition__IdentifyRequest *ir = req->identify;
    Coalition__Txn *t = &op->ident;
    coalition__txn__init(t);
    t->kind = COALITION__TXN_KIND__TXN_IDENTIFY;
    t->member = ir->member;
    t->txn_id = ir->txn_id;
    t->lookup_keys = op->ident_keys;
    int rv = authorize_api_write(s, req, t, op->partner);
    t->partner = op->partner;
    if (rv == 0 && ir->phone[0] != '\0') {
        rv = identity_hash_phone(s->identity, ir->phone, op->ident_hash[t->n_lookup_keys]);
        op->ident_keys[t->n_lookup_keys] =
            (ProtobufCBinaryData){IDENTITY_HASH_LEN, op->ident_hash[t->n_lookup_keys]};
        t->n_lookup_keys++;
    }
    if (rv == 0 && ir->email[0] != '\0') {
        rv = identity_hash_email(s->identity, ir->email, op->ident_hash[t->n_lookup_keys]);
        op->ident_keys[t->n_lookup_keys] =
            (ProtobufCBinaryData){IDENTITY_HASH_LEN, op->ident_hash[t->n_lookup_keys]};
        t->n_lookup_keys++;
    }
    if (rv == 0) {
        rv = t->n_lookup_keys == 0 ? COALITION_E_INVALID_ARGUMENT : ledger_validate(t);
    }
    if (rv != 0) {
        conn_send_error(c, req->id, rv);
        op_finish(op);
        return;
    }
    op->breq.txn = t;
    op->breq.cb = op_on_txn;
    sign_queue(s, op);
}

static void handle_cluster_status(struct conn *c, uint64_t id)
{
    struct cluster_node nodes[CLUSTER_NODES_MAX];
    size_t n = cluster_nodes(c->srv->cluster, nodes, CLUSTER_NODES_MAX);
    Coalition__ClusterNode items[CLUSTER_NODES_MAX];
    Coalition__ClusterNode *ptrs[CLUSTER_NODES_MAX];
    for (size_t i = 0; i < n; i++) {
        coalition__cluster_node__init(&items[i]);
        items[i].id = nodes[i].id;
        items[i].raft_addr = nodes[i].raft_addr;
        items[i].client_addr = nodes[i].client_addr;
        items[i].role = (Coalition__NodeRole)nodes[i].role;
        ptrs[i] = &items[i];
    }
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__ClusterStatusResult cs = COALITION__CLUSTER_STATUS_RESULT__INIT;
    resp.id = id;
    resp.message = "";
    cs.node_id = c->srv->node_id;
    cs.leader_id = cluster_leader(c->srv->cluster, NULL, 0);
    cs.n_nodes = n;
    cs.nodes = ptrs;
    resp.result_case = COALITION__RESPONSE__RESULT_CLUSTER_STATUS;
    resp.cluster_status = &cs;
    conn_send(c, &resp);
}

static void op_on_change(void *data, int status)
{
    struct op *op = data;
    conn_send_error(op->conn, op->req->id, status); /* code 0 is the plain "ok" */
    op_finish(op);
}

static void handle_cluster_change(struct conn *c, Coalition__Request *req)
{
    if (!leader_only(c, req)) {
        return;
    }
    struct op *op = op_start(c, req);
    if (op == NULL) {
        return;
    }
    int rv = cluster_change(c->srv->cluster, req->cluster_change, &op->cop, op_on_change, op);
    if (rv != 0) {
        conn_send_error(c, req->id, rv);
        op_finish(op);
    }
}

static void handle_entry_hash(struct conn *c, uint64_t id, const Coalition__EntryHashRequest *er)
{
    uint8_t hash[LEDGER_HASH_LEN];
    int rv = ledger_entry_hash(c->srv->ledger, er->seq, hash);
    if (rv != 0) {
        conn_send_error(c, id, rv);
        return;
    }
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    Coalition__EntryHashResult eh = COALITION__ENTRY_HASH_RESULT__INIT;
    resp.id = id;
    resp.message = "";
    eh.seq = er->seq;
    eh.hash.data = hash;
    eh.hash.len = sizeof(hash);
    resp.result_case = COALITION__RESPONSE__RESULT_ENTRY_HASH;
    resp.entry_hash = &eh;
    conn_send(c, &resp);
}

/* Dispatches one decoded request; takes ownership of `req`. */
static void handle_request(struct conn *c, Coalition__Request *req)
{
    bool keyed = req->api_key != NULL && req->api_key[0] != '\0';
    if (keyed && req->op_case != COALITION__REQUEST__OP_TXN &&
        req->op_case != COALITION__REQUEST__OP_IDENTIFY) {
        /* A read with a key (the HTTP API always sends one): the key must be
         * valid, and counts against its partner's rate. */
        char partner[LEDGER_ID_MAX + 1];
        int rv = request_partner(c->srv, req, partner);
        if (rv == 0 && !rate_take(c->srv, partner)) {
            rv = COALITION_E_RATE_LIMITED;
        }
        if (rv != 0) {
            refuse(c, req, rv);
            return;
        }
    }
    switch (req->op_case) {
    case COALITION__REQUEST__OP_TXN:
        handle_txn(c, req);
        return; /* req handed on */
    case COALITION__REQUEST__OP_GROUP:
        handle_group(c, req);
        return;
    case COALITION__REQUEST__OP_VERIFY:
    case COALITION__REQUEST__OP_SETTLEMENT:
    case COALITION__REQUEST__OP_REPORT:
        handle_scan(c, req);
        return;
    case COALITION__REQUEST__OP_IDENTIFY:
        handle_identify(c, req);
        return;
    case COALITION__REQUEST__OP_CLUSTER_CHANGE:
        handle_cluster_change(c, req);
        return;
    case COALITION__REQUEST__OP_BALANCE:
    case COALITION__REQUEST__OP_HISTORY:
    case COALITION__REQUEST__OP_EXPIRING:
    case COALITION__REQUEST__OP_LOOKUP:
    case COALITION__REQUEST__OP_PROGRAM:
        if (req->consistent) {
            handle_consistent_read(c, req);
            return;
        }
        handle_read(c, req);
        break;
    case COALITION__REQUEST__OP_STATUS:
        handle_status(c, req->id);
        break;
    case COALITION__REQUEST__OP_CLUSTER_STATUS:
        handle_cluster_status(c, req->id);
        break;
    case COALITION__REQUEST__OP_ENTRY_HASH:
        handle_entry_hash(c, req->id, req->entry_hash);
        break;
    default:
        conn_send_error(c, req->id, COALITION_E_INVALID_ARGUMENT);
        break;
    }
    coalition__request__free_unpacked(req, NULL);
}

/* A protocol error: answer once with id 0, then close after the answer. */
static void conn_fail(struct conn *c, int code)
{
    conn_send_error(c, 0, code);
    c->close_after_flush = true;
    if (c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = false;
    }
    conn_flush(c);
}

/* True while the connection has enough under way: its unsent answers or its
 * deferred requests.  A client that sends without reading its answers must
 * not make the node buffer without bound. */
static bool conn_backed_up(const struct conn *c, size_t div)
{
    return outbuf_pending(&c->out) > SERVER_OUT_MAX / div ||
           c->inflight >= SERVER_INFLIGHT_MAX / div;
}

/* Handles the complete frames in the decoder until it is empty, the
 * connection backs up (then reading pauses; the frames wait in the decoder)
 * or fails. */
static void conn_process(struct conn *c)
{
    if (c->processing) {
        return; /* an answer completed inside a handler: the outer loop goes on */
    }
    c->processing = true;
    while (!c->closing && !c->close_after_flush) {
        if (conn_backed_up(c, 1)) {
            if (c->reading) {
                uv_read_stop(&c->h.stream);
                c->reading = false;
            }
            if (outbuf_pending(&c->out) > SERVER_OUT_MAX && !c->told_slow) {
                c->told_slow = true; /* once per connection */
                fprintf(stderr,
                        "coalitiond: a client is not reading its answers (%zu bytes unsent); "
                        "pausing its connection\n",
                        outbuf_pending(&c->out));
            }
            break;
        }
        const uint8_t *payload = NULL;
        size_t len = 0;
        int rv = frame_decoder_next(&c->dec, &payload, &len);
        if (rv == 0) {
            break;
        }
        if (rv < 0) {
            conn_fail(c, rv);
            break;
        }
        Coalition__Request *req = NULL;
        if (frame_unpack_request(payload, len, &req) != 0) {
            conn_fail(c, COALITION_E_BAD_FRAME);
            break;
        }
        handle_request(c, req);
    }
    c->processing = false;
}

/* Resumes a paused connection once what backed it up has halved. */
static void conn_maybe_resume(struct conn *c)
{
    if (c->reading || c->closing || c->close_after_flush || c->srv->closing ||
        conn_backed_up(c, 2)) {
        return;
    }
    conn_process(c);
    if (!c->reading && !c->closing && !c->close_after_flush && !conn_backed_up(c, 1)) {
        conn_read_start(c);
    }
}

static void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)stream;
    if (nread < 0) {
        conn_close(c); /* EOF or error: in-flight answers are dropped */
        return;
    }
    if (nread == 0 || c->close_after_flush) {
        return;
    }
    if (frame_decoder_feed(&c->dec, buf->base, (size_t)nread) != 0) {
        conn_fail(c, COALITION_E_NOMEM);
        return;
    }
    conn_process(c);
}

static void conn_read_start(struct conn *c)
{
    if (uv_read_start(&c->h.stream, conn_on_alloc, conn_on_read) == 0) {
        c->reading = true;
    } else {
        conn_close(c);
    }
}

static struct conn *conn_new(struct server *s)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->srv = s;
    c->refs = 1;
    frame_decoder_init(&c->dec, FRAME_PAYLOAD_MAX);
    outbuf_init(&c->out);
    return c;
}

/* Into the server's list, once its handle is initialized (conn_on_close
 * takes it out). */
static void conn_link(struct conn *c)
{
    struct server *s = c->srv;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
}

static void server_on_connection(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    if (status < 0 || s->closing) {
        return;
    }
    struct conn *c = conn_new(s);
    if (c == NULL) {
        return;
    }
    uv_tcp_init(s->loop, &c->h.tcp);
    conn_link(c);
    if (uv_accept(listener, &c->h.stream) != 0 || s->n_conns > SERVER_CONNECTIONS_MAX) {
        conn_close(c); /* over the limit: the client sees the close */
        return;
    }
    uv_tcp_nodelay(&c->h.tcp, 1);
    conn_read_start(c);
}

void server_adopt_channel(void *data, uint64_t peer_id, const uint8_t *peer_pk, int fd)
{
    struct server *s = data;
    (void)peer_id;
    (void)peer_pk;
    /* Not started (yet, or ever: a failed start) or closing: refused. */
    struct conn *c = s->loop == NULL || s->closing ? NULL : conn_new(s);
    if (c == NULL) {
        close(fd); /* the peer sees the channel end: its requests fail UNAVAILABLE */
        return;
    }
    uv_pipe_init(s->loop, &c->h.pipe, 0);
    conn_link(c);
    if (uv_pipe_open(&c->h.pipe, fd) != 0) {
        close(fd);
        conn_close(c);
        return;
    }
    if (s->n_conns > SERVER_CONNECTIONS_MAX) {
        conn_close(c);
        return;
    }
    conn_read_start(c);
}

int server_start(struct server *s, uv_loop_t *loop, const char *host, int port,
                 const struct server_deps *deps)
{
    *s = (struct server){.loop = loop,
                         .ledger = deps->ledger,
                         .store = deps->store,
                         .batcher = deps->batcher,
                         .cluster = deps->cluster,
                         .forwarder = deps->forwarder,
                         .identity = deps->identity,
                         .node_id = deps->node_id,
                         .partner_rps = deps->partner_rps};
    s->sign_tail = &s->sign_pending;
    if (deps->partner != NULL && deps->partner[0] != '\0' && deps->partner_sk != NULL) {
        snprintf(s->partner, sizeof(s->partner), "%s", deps->partner);
        memcpy(s->partner_sk, deps->partner_sk, sizeof(s->partner_sk));
        s->signs = true;
    }
    uv_check_init(loop, &s->sign_check);
    s->sign_check.data = s;
    uv_check_start(&s->sign_check, server_on_sign_check);
    struct sockaddr_storage addr;
    int rv = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rv != 0) {
        rv = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    }
    if (rv != 0) {
        return rv;
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener, 1024, server_on_connection);
    }
    if (rv != 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_close((uv_handle_t *)&s->sign_check, NULL);
        s->closing = true;
    }
    return rv;
}

void server_stop(struct server *s)
{
    if (s->closing) {
        return;
    }
    s->closing = true;
    uv_close((uv_handle_t *)&s->listener, NULL);
    for (struct conn *c = s->conns; c != NULL; c = c->next) {
        if (c->reading) {
            uv_read_stop(&c->h.stream);
            c->reading = false;
        }
    }
}

bool server_idle(const struct server *s)
{
    if (s->verifies_running > 0) {
        return false;
    }
    for (const struct conn *c = s->conns; c != NULL; c = c->next) {
        if (!c->closing && (c->inflight > 0 || c->out.writing || outbuf_pending(&c->out) > 0)) {
            return false;
        }
    }
    return true;
}

void server_close(struct server *s)
{
    assert(s->closing);
    assert(s->sign_pending == NULL);
    if (!uv_is_closing((uv_handle_t *)&s->sign_check)) {
        uv_close((uv_handle_t *)&s->sign_check, NULL);
    }
    for (struct conn *c = s->conns; c != NULL; c = c->next) {
        conn_close(c);
    }
}

/* A JOIN (or directory) request of this node on its way to a member. */
struct join_req {
    struct forward_req freq;
    struct cluster *cluster;
};

static void join_done(struct forward_req *freq, int code, const Coalition__Response *resp)
{
    struct join_req *j = freq->data;
    struct cluster *c = j->cluster;
    if (code == 0 && resp->code == COALITION_E_NOT_LEADER && resp->leader_hint != NULL &&
        resp->leader_hint[0] != '\0') {
        /* That member knows better: ask the leader next time. */
        snprintf(c->join_addr, sizeof(c->join_addr), "%s", resp->leader_hint);
    } else if (code == 0 && resp->code != 0) {
        /* A refused joiner asks twice a second: say so when the answer
         * changes, and then once a minute. */
        struct server *s = c->send_join_data;
        uint64_t now = s->loop != NULL ? uv_now(s->loop) : 0;
        if (resp->code != s->join_refused_code || now - s->join_logged_ms >= 60000) {
            fprintf(stderr, "coalitiond: joining the coalition: %s: %s\n",
                    coalition_errname(resp->code),
                    resp->message != NULL && resp->message[0] != '\0'
                        ? resp->message
                        : coalition_strerror(resp->code));
            s->join_refused_code = resp->code;
            s->join_logged_ms = now;
        }
    }
    free(j);
}

void server_send_join(struct cluster *c, const char *to_addr)
{
    struct server *s = c->send_join_data;
    struct join_req *j = calloc(1, sizeof(*j));
    if (j == NULL || s->closing) {
        free(j);
        return;
    }
    j->cluster = c;
    j->freq.data = j;
    Coalition__ClusterChangeRequest change = COALITION__CLUSTER_CHANGE_REQUEST__INIT;
    change.op = COALITION__CLUSTER_CHANGE_REQUEST__OP__JOIN;
    change.id = c->id;
    change.raft_addr = c->raft_addr;
    change.client_addr = c->client_addr;
    /* VOTER: "promote me if I am still a spare"; SPARE: "only record me". */
    change.role = cluster_wants_promotion(c) ? COALITION__NODE_ROLE__ROLE_VOTER
                                             : COALITION__NODE_ROLE__ROLE_SPARE;
    struct auth_cluster_sig sig; /* the leader accepts only a signed JOIN */
    cluster_sign_join(c, &change, &sig);
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.op_case = COALITION__REQUEST__OP_CLUSTER_CHANGE;
    req.cluster_change = &change;
    forwarder_send(s->forwarder, to_addr, &req, &j->freq, join_done);
}
