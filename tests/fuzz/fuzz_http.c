/* libFuzzer target for the HTTP/JSON API without sockets (node/http_routes.h):
 * a byte stream is fed to the request parser in chunks of sizes derived from
 * the input, every complete request is routed and translated, and every
 * accepted translation is packed, unpacked and packed again to the same
 * bytes, its Txn checked by ledger_validate, and answered from a made-up
 * node response (error and success) whose JSON must parse.  Checks: no
 * crash or leak; parser and translation errors are codes of the table with
 * the statuses route_status_for and the contract allow; limits hold.
 *
 * Input layout: byte 0 picks http_header_max (64 << (b % 8)), byte 1
 * http_body_max (16 << (b % 9)), byte 2 the largest chunk (1 << (b % 12)),
 * byte 3 seeds the chunk sizes and the made-up response codes; the rest is
 * the byte stream. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "errors.h"
#include "http_routes.h"
#include "ledger.h"
#include "rules.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_PARAMS_LEN 4

static bool code_known(int code)
{
    return code < 0 && strcmp(coalition_errname(code), "UNKNOWN_ERROR") != 0;
}

/* The body is a JSON error object naming `code`. */
static void check_error_body(const char *body, int code)
{
    CHECK(body != NULL);
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    CHECK(o != NULL);
    const char *name = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
    CHECK(name != NULL && strcmp(name, coalition_errname(code)) == 0);
    json_decref(o);
}

/* Packs, unpacks and packs again: the same bytes. */
static void check_repack(const Coalition__Request *req)
{
    size_t len = coalition__request__get_packed_size(req);
    uint8_t *a = malloc(len + 1);
    CHECK(a != NULL);
    CHECK(coalition__request__pack(req, a) == len);
    Coalition__Request *back = coalition__request__unpack(NULL, len, a);
    CHECK(back != NULL);
    CHECK(back->op_case == req->op_case);
    CHECK(strcmp(back->api_key, req->api_key) == 0);
    size_t len2 = coalition__request__get_packed_size(back);
    CHECK(len2 == len);
    uint8_t *b = malloc(len2 + 1);
    CHECK(b != NULL);
    CHECK(coalition__request__pack(back, b) == len2);
    CHECK(memcmp(a, b, len) == 0);
    coalition__request__free_unpacked(back, NULL);
    free(a);
    free(b);
}

/* A made-up node answer of the kind the route expects, with texts taken
 * from the request, turned into JSON. */
static void check_answers(const struct route_call *call, uint8_t seed)
{
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    int status = 0;
    char *body = NULL;

    /* An error answer: any code of the table, 1..35. */
    resp.code = -(int)(1 + seed % 35);
    CHECK(route_respond(call, &resp, &status, &body) == 0);
    CHECK(status == route_status_for(resp.code) && status >= 400);
    check_error_body(body, resp.code);
    free(body);

    resp.code = 0;
    Coalition__TxnResult tr = COALITION__TXN_RESULT__INIT;
    Coalition__BalanceResult br = COALITION__BALANCE_RESULT__INIT;
    Coalition__HistoryItem hi = COALITION__HISTORY_ITEM__INIT;
    Coalition__HistoryItem *his[1] = {&hi};
    Coalition__HistoryResult hr = COALITION__HISTORY_RESULT__INIT;
    Coalition__ExpiringLot el = COALITION__EXPIRING_LOT__INIT;
    Coalition__ExpiringLot *els[1] = {&el};
    Coalition__ExpiringResult er = COALITION__EXPIRING_RESULT__INIT;
    Coalition__LookupResult lr = COALITION__LOOKUP_RESULT__INIT;
    Coalition__SettlementFlow fl = COALITION__SETTLEMENT_FLOW__INIT;
    Coalition__SettlementFlow *fls[1] = {&fl};
    Coalition__PartnerPosition pp = COALITION__PARTNER_POSITION__INIT;
    Coalition__PartnerPosition *pps[1] = {&pp};
    Coalition__SettlementResult sr = COALITION__SETTLEMENT_RESULT__INIT;
    Coalition__ReportResult rr = COALITION__REPORT_RESULT__INIT;
    Coalition__CategoryRate cr = COALITION__CATEGORY_RATE__INIT;
    Coalition__CategoryRate *crs[1] = {&cr};
    Coalition__Campaign cp = COALITION__CAMPAIGN__INIT;
    Coalition__Campaign *cps[1] = {&cp};
    Coalition__Program pg = COALITION__PROGRAM__INIT;
    Coalition__ProgramResult pr = COALITION__PROGRAM_RESULT__INIT;
    const Coalition__Request *req = &call->req;
    switch (req->op_case) {
    case COALITION__REQUEST__OP_TXN:
    case COALITION__REQUEST__OP_IDENTIFY:
        tr.txn_id =
            req->op_case == COALITION__REQUEST__OP_TXN ? req->txn->txn_id : req->identify->txn_id;
        tr.points = req->op_case == COALITION__REQUEST__OP_TXN ? req->txn->points : 0;
        tr.duplicate = seed & 1;
        tr.rule = req->op_case == COALITION__REQUEST__OP_TXN ? req->txn->category : "";
        resp.result_case = COALITION__RESPONSE__RESULT_TXN;
        resp.txn = &tr;
        break;
    case COALITION__REQUEST__OP_BALANCE:
        br.member = req->balance->member;
        br.at_ms = req->balance->at_ms;
        br.tier = req->balance->member;
        br.next_tier = seed & 1 ? "gold" : "";
        resp.result_case = COALITION__RESPONSE__RESULT_BALANCE;
        resp.balance = &br;
        break;
    case COALITION__REQUEST__OP_HISTORY:
        hr.member = req->history->member;
        hi.kind = (Coalition__TxnKind)(seed % 40);
        hi.txn_id = req->history->member;
        hr.items = his;
        hr.n_items = 1;
        resp.result_case = COALITION__RESPONSE__RESULT_HISTORY;
        resp.history = &hr;
        break;
    case COALITION__REQUEST__OP_EXPIRING:
        er.member = req->expiring->member;
        el.points = INT64_MAX;
        er.lots = els;
        er.n_lots = 1;
        er.at_ms = req->expiring->at_ms;
        resp.result_case = COALITION__RESPONSE__RESULT_EXPIRING;
        resp.expiring = &er;
        break;
    case COALITION__REQUEST__OP_LOOKUP:
        lr.member = req->lookup->card;
        resp.result_case = COALITION__RESPONSE__RESULT_LOOKUP;
        resp.lookup = &lr;
        break;
    case COALITION__REQUEST__OP_SETTLEMENT:
        sr.from_ms = req->settlement->from_ms;
        sr.to_ms = req->settlement->to_ms;
        sr.flows = fls;
        sr.n_flows = 1;
        sr.partners = pps;
        sr.n_partners = 1;
        resp.result_case = COALITION__RESPONSE__RESULT_SETTLEMENT;
        resp.settlement = &sr;
        break;
    case COALITION__REQUEST__OP_REPORT:
        rr.partner = req->report->partner;
        rr.top_flows = fls;
        rr.n_top_flows = seed & 1;
        resp.result_case = COALITION__RESPONSE__RESULT_REPORT;
        resp.report = &rr;
        break;
    case COALITION__REQUEST__OP_PROGRAM:
        /* Texts from the request, extreme numbers and dates by the seed. */
        pr.partner = req->program->partner;
        cr.category = req->program->partner;
        cr.multiplier_pct = seed & 1 ? UINT32_MAX : 150;
        cp.id = req->program->partner;
        cp.category = req->program->partner;
        cp.start_ms = seed & 2 ? UINT64_MAX : 0;
        cp.end_ms = seed & 4 ? UINT64_MAX : 1;
        cp.bonus_points = seed & 8 ? INT64_MAX : 0;
        pg.point_value_mc = seed & 16 ? INT64_MAX : 1000; /* the writer's largest */
        pg.base_rate_milli = seed & 32 ? INT64_MAX : 1000;
        pg.min_purchase_cents = seed & 64 ? INT64_MAX : 0;
        pg.lock_days = seed & 128 ? UINT32_MAX : 0;
        pg.categories = crs;
        pg.n_categories = seed & 1;
        pg.campaigns = cps;
        pg.n_campaigns = (seed >> 1) & 1;
        pr.program = &pg;
        resp.result_case = COALITION__RESPONSE__RESULT_PROGRAM;
        resp.program = &pr;
        break;
    default:
        CHECK(0 && "a translated request without an operation");
    }
    CHECK(route_respond(call, &resp, &status, &body) == 0);
    CHECK(status == 200 || status == 201);
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    CHECK(o != NULL && json_is_object(o));
    json_decref(o);
    free(body);

    if (req->op_case == COALITION__REQUEST__OP_PROGRAM) {
        /* A program no ledger holds (a number above INT64_MAX or below 0,
         * which the program file cannot carry) is the node's fault: 500. */
        switch (seed % 3) {
        case 0:
            pg.point_value_mc = (uint64_t)INT64_MAX + 1 + seed;
            break;
        case 1:
            pg.min_purchase_cents = -1 - seed;
            break;
        default:
            cp.bonus_points = -1 - seed;
            pg.n_campaigns = 1;
            break;
        }
        CHECK(route_respond(call, &resp, &status, &body) == 0);
        CHECK(status == 500);
        check_error_body(body, COALITION_E_INTERNAL);
        free(body);
    }

    /* An answer of the wrong kind is an internal error, not a crash. */
    Coalition__Response wrong = COALITION__RESPONSE__INIT;
    CHECK(route_respond(call, &wrong, &status, &body) == 0);
    CHECK(status == 500);
    check_error_body(body, COALITION_E_INTERNAL);
    free(body);
}

static void check_request(const struct route_msg *m, const struct route_limits *lim, uint8_t seed)
{
    CHECK(m->url != NULL);
    CHECK(m->body_len <= lim->body_max);
    CHECK(m->body_len == 0 || (m->body != NULL && m->body[m->body_len] == '\0'));
    struct route_call call;
    int status = 0;
    int rv = route_translate(m, &call, &status);
    if (rv != 0) {
        CHECK(code_known(rv));
        CHECK(status == 400 || status == 401 || status == 404 || status == 405 || status == 503);
        CHECK(status != 401 || rv == COALITION_E_UNAUTHENTICATED);
        char *body = route_error_body(rv, coalition_strerror(rv));
        check_error_body(body, rv);
        free(body);
    } else if (call.route == ROUTE_HEALTH || call.route == ROUTE_METRICS) {
        CHECK(status == 200);
    } else {
        CHECK(status == 200);
        CHECK(call.route > ROUTE_METRICS && call.route < ROUTE_COUNT);
        CHECK(call.req.api_key != NULL && strlen(call.req.api_key) == 81);
        if (call.req.op_case == COALITION__REQUEST__OP_TXN) {
            const Coalition__Txn *t = call.req.txn;
            CHECK(t->txn_id[0] != '\0');
            /* PUT /v1/program carries a program within the rules' bounds,
             * and nothing else does. */
            CHECK((call.route == ROUTE_PROGRAM_SET) == (t->program != NULL));
            CHECK((call.route == ROUTE_PROGRAM_SET) ==
                  (t->kind == COALITION__TXN_KIND__TXN_PROGRAM_SET));
            CHECK((call.route == ROUTE_TRANSFER) == (t->kind == COALITION__TXN_KIND__TXN_TRANSFER));
            if (t->program != NULL) {
                CHECK(t->program->n_categories <= RULES_CATEGORIES_MAX);
                CHECK(t->program->n_campaigns <= RULES_CAMPAIGNS_MAX);
                CHECK(t->program->n_categories == 0 || t->program->categories != NULL);
                CHECK(t->program->n_campaigns == 0 || t->program->campaigns != NULL);
            }
            /* Only a transfer names a second member. */
            CHECK(call.route == ROUTE_TRANSFER || t->member_to[0] == '\0');
            int v = ledger_validate(t);
            CHECK(v == 0 || code_known(v));
        }
        check_repack(&call.req);
        check_answers(&call, seed);
    }
    route_call_free(&call);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PARAMS_LEN) {
        return 0;
    }
    struct route_limits lim = {.header_max = (size_t)64 << (data[0] % 8),
                               .body_max = (size_t)16 << (data[1] % 9)};
    size_t chunk_max = (size_t)1 << (data[2] % 12);
    uint32_t rng = 0x9e3779b9u ^ data[3];
    const char *stream = (const char *)data + FUZZ_PARAMS_LEN;
    size_t len = size - FUZZ_PARAMS_LEN;

    struct route_parser rp;
    route_parser_init(&rp, &lim);
    /* Bytes arrive in chunks; whatever a complete request leaves of a chunk
     * is fed again, as http.c does. */
    size_t pos = 0;
    bool failed = false;
    while (pos < len && !failed) {
        rng = rng * 1103515245u + 12345u;
        size_t n = 1 + (rng >> 8) % chunk_max;
        if (n > len - pos) {
            n = len - pos;
        }
        size_t off = 0;
        while (off < n) {
            struct route_msg m;
            size_t used = 0;
            int status = 0, code = 0;
            int rv = route_parser_feed(&rp, stream + pos + off, n - off, &used, &m, &status, &code);
            CHECK(used <= n - off);
            off += used;
            if (rv < 0) {
                CHECK(status == 400 || status == 413 || status == 431 || status == 503);
                CHECK(code_known(code));
                CHECK(route_status_for(code) == status || status == 431 || status == 503);
                failed = true;
                break;
            }
            if (rv == 0) {
                CHECK(off == n);
                break;
            }
            CHECK(rv == 1);
            check_request(&m, &lim, data[3]);
            route_msg_free(&m);
        }
        pos += n;
    }
    route_parser_close(&rp);
    return 0;
}
