/* The HTTP/JSON API without sockets: HTTP/1.1 request parsing (Debian's
 * http-parser) under size limits, routing, the translation of a request
 * into a Coalition__Request, and of the node's Coalition__Response into a
 * status code and a JSON body (jansson).  Pure functions of their inputs, so
 * that tests/fuzz/fuzz_http.c can drive them; connections, timers and the
 * trip to the node live in http.c.  Routes and shapes: docs/openapi.yaml. */
#ifndef COALITION_HTTP_ROUTES_H
#define COALITION_HTTP_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <jansson.h>

#include "coalition.pb-c.h"

#define ROUTE_SEGMENTS_MAX 6   /* path segments we look at; more is 404 */
#define ROUTE_PARAMS_MAX   8   /* query parameters; more is 400 */
#define ROUTE_TEXT_MAX     254 /* decoded bytes of one path segment or query value */
#define ROUTE_FIELD_MAX    32  /* header names longer than this are ignored */

/* Every route.  ROUTE_NONE is "no route" (404, 405, or a request that could
 * not be parsed).  Merge and erase have no route: they need the coalition
 * admin's key, and a node signs API-key writes with its partner's key. */
enum route_id {
    ROUTE_NONE = 0,
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_MEMBER_ADD,
    ROUTE_BALANCE,
    ROUTE_HISTORY,
    ROUTE_EXPIRING,
    ROUTE_IDENTIFY,
    ROUTE_CARD,
    ROUTE_LOOKUP,
    ROUTE_AWARD,
    ROUTE_REDEEM,
    ROUTE_HOLD,
    ROUTE_CAPTURE,
    ROUTE_RELEASE,
    ROUTE_REVERSE,
    ROUTE_SETTLEMENT,
    ROUTE_REPORT,
    ROUTE_PROGRAM_SET,
    ROUTE_TRANSFER,
    ROUTE_PROGRAM_GET,
    ROUTE_COUNT
};

/* "POST /v1/awards" and so on (a metrics label); "none" for ROUTE_NONE.
 * Static storage. */
const char *route_name(enum route_id r);

struct route_limits {
    size_t header_max; /* request line + headers, bytes; more is 431 */
    size_t body_max;   /* body bytes; more is 413 */
};

/* One complete HTTP request.  Every pointer is owned (route_msg_free) and
 * NUL-terminated; absent headers are NULL. */
struct route_msg {
    int method; /* enum http_method */
    char *url;
    size_t url_len;
    char *authorization;
    char *idempotency_key;
    char *body;
    size_t body_len;
    bool keep_alive; /* the client wants the connection kept (HTTP/1.1 default) */
};

void route_msg_free(struct route_msg *m);

/* An incremental parser for one connection's byte stream: pipelined
 * requests come out one at a time. */
struct route_parser {
    /* private */
    http_parser p;
    struct route_limits lim;
    struct route_msg msg; /* being parsed */
    char field[ROUTE_FIELD_MAX + 1];
    size_t field_len;
    bool field_long;  /* the current header name is longer: ignored */
    char **value;     /* where the current header value goes, or NULL */
    size_t value_len; /* its length so far */
    bool last_was_value;
    bool in_message; /* between the first byte of a request and its end */
    bool headers_done;
    bool complete;
    size_t header_bytes; /* bytes fed while the current head was incomplete */
    size_t head_bytes;   /* bytes of its tokens, with their separators */
    int err_status;      /* set when a callback refused the request */
    bool failed;
};

/* Starts a parser with limits `lim` (copied). */
void route_parser_init(struct route_parser *rp, const struct route_limits *lim);
/* Frees what a partly parsed request holds. */
void route_parser_close(struct route_parser *rp);

/* Feeds `len` > 0 bytes (borrowed).  Returns:
 *   0  all consumed, no request complete yet (*consumed == len);
 *   1  a request is complete: it is moved into *out (free with
 *      route_msg_free) and *consumed bytes were used; feed the rest again;
 *  -1  the stream is not acceptable: *http_status is 400, 413 or 431 and
 *      *code the error code to send; nothing more may be fed.
 * The parser keeps no pointer into `data`. */
int route_parser_feed(struct route_parser *rp, const char *data, size_t len, size_t *consumed,
                      struct route_msg *out, int *http_status, int *code);

/* True while part of a request has arrived and not all of it. */
bool route_parser_busy(const struct route_parser *rp);

struct route_program;

/* A request translated for the node.  `req` is ready to pack when
 * route_translate returns 0 and route is not HEALTH or METRICS (served by
 * http.c).  The call owns what req points into (route_call_free). */
struct route_call {
    enum route_id route;
    Coalition__Request req;
    Coalition__Txn txn;
    Coalition__BalanceRequest balance;
    Coalition__HistoryRequest history;
    Coalition__ExpiringRequest expiring;
    Coalition__LookupRequest lookup;
    Coalition__IdentifyRequest identify;
    Coalition__SettlementRequest settlement;
    Coalition__ReportRequest report;
    Coalition__ProgramRequest program_get;
    struct route_program *program; /* PUT /v1/program: what txn.program points into */
    json_t *body;                  /* the parsed JSON body (strings in req borrow from it) */
    char *owned[8];                /* decoded path segments, query values, header copies */
    size_t n_owned;
};

/* Routes `m` (borrowed) and builds call->req: the Bearer key into api_key,
 * Idempotency-Key into the txn id, path, query and JSON body into the
 * operation.  Returns 0, or a negative code with *http_status set (404 no
 * route, 405 wrong method, 401 no or malformed key, 400 bad query, header or
 * body); call->route is set as far as it is known.  Always free the call
 * with route_call_free. */
int route_translate(const struct route_msg *m, struct route_call *call, int *http_status);
void route_call_free(struct route_call *call);

/* The HTTP status for an error code from proto/errors.h (0: 200). */
int route_status_for(int code);
/* "OK", "Not Found", ...; "Unknown" for a status not used here. */
const char *route_reason(int http_status);

/* The JSON error body {"error":{"code":NAME,"message":MSG}} as a malloc'd
 * NUL-terminated string (NULL if memory ran out). */
char *route_error_body(int code, const char *message);

/* The answer to `call` given the node's response `resp` (borrowed): sets
 * *http_status and *body (malloc'd JSON, NUL-terminated; the caller frees).
 * An error code in resp gives an error body.  Returns 0 or NOMEM. */
int route_respond(const struct route_call *call, const Coalition__Response *resp, int *http_status,
                  char **body);

#endif
