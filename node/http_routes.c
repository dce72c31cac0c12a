/* The HTTP/JSON API without sockets (contract in http_routes.h): the
 * http-parser callbacks that collect one request under the limits, the
 * route table, query and body translation into a Coalition__Request, and
 * the JSON answers (shaped like the CLI's --json output). */
#include "http_routes.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "date.h"
#include "errors.h"
#include "program_json.h"
#include "rules.h"

#define API_KEY_ID_HEX      16
#define API_KEY_SECRET_HEX  64
#define HISTORY_LIMIT_MAX   1000
#define WITHIN_DAYS_MAX     3660
#define WITHIN_DAYS_DEFAULT 30

_Static_assert(ROUTE_COUNT < 32, "route ids fit a bit set");

/* ---- names -------------------------------------------------------------- */

static const char *const route_names[ROUTE_COUNT] = {
    [ROUTE_NONE] = "none",
    [ROUTE_HEALTH] = "GET /health",
    [ROUTE_METRICS] = "GET /metrics",
    [ROUTE_MEMBER_ADD] = "POST /v1/members",
    [ROUTE_BALANCE] = "GET /v1/members/{id}/balance",
    [ROUTE_HISTORY] = "GET /v1/members/{id}/history",
    [ROUTE_EXPIRING] = "GET /v1/members/{id}/expiring",
    [ROUTE_IDENTIFY] = "POST /v1/members/{id}/identify",
    [ROUTE_CARD] = "POST /v1/members/{id}/cards",
    [ROUTE_LOOKUP] = "GET /v1/lookup",
    [ROUTE_AWARD] = "POST /v1/awards",
    [ROUTE_REDEEM] = "POST /v1/redemptions",
    [ROUTE_HOLD] = "POST /v1/holds",
    [ROUTE_CAPTURE] = "POST /v1/holds/{txn}/capture",
    [ROUTE_RELEASE] = "POST /v1/holds/{txn}/release",
    [ROUTE_REVERSE] = "POST /v1/reversals",
    [ROUTE_SETTLEMENT] = "GET /v1/settlement",
    [ROUTE_REPORT] = "GET /v1/reports",
    [ROUTE_PROGRAM_SET] = "PUT /v1/program",
    [ROUTE_TRANSFER] = "POST /v1/transfers",
    [ROUTE_PROGRAM_GET] = "GET /v1/program",
};

const char *route_name(enum route_id r)
{
    if ((unsigned)r >= ROUTE_COUNT) {
        return "none";
    }
    return route_names[r];
}

int route_status_for(int code)
{
    switch (code) {
    case 0:
        return 200;
    case COALITION_E_INVALID_ARGUMENT:
    case COALITION_E_INVALID_AMOUNT:
    case COALITION_E_BAD_FRAME:
        return 400;
    case COALITION_E_UNAUTHENTICATED:
        return 401;
    case COALITION_E_FORBIDDEN:
        return 403;
    case COALITION_E_UNKNOWN_PARTNER:
    case COALITION_E_UNKNOWN_MEMBER:
    case COALITION_E_UNKNOWN_TXN:
    case COALITION_E_UNKNOWN_CARD:
    case COALITION_E_NOT_FOUND:
        return 404;
    case COALITION_E_REQUEST_TIMEOUT:
        return 408;
    case COALITION_E_CONFLICT:
    case COALITION_E_ALREADY_EXISTS:
    case COALITION_E_HOLD_CLOSED:
        return 409;
    case COALITION_E_FRAME_TOO_LARGE:
        return 413;
    case COALITION_E_INSUFFICIENT_POINTS:
    case COALITION_E_REVERSAL_EXCEEDS:
    case COALITION_E_POINTS_SPENT:
    case COALITION_E_NOT_REVERSIBLE:
    case COALITION_E_OVERFLOW:
    case COALITION_E_NO_POINTS_EARNED:
    case COALITION_E_MEMBER_CLOSED:
    case COALITION_E_NOTHING_DUE:
    case COALITION_E_OPEN_HOLDS:
        return 422;
    case COALITION_E_RATE_LIMITED:
        return 429;
    case COALITION_E_UNAVAILABLE:
    case COALITION_E_NOT_LEADER:
    case COALITION_E_TIMEOUT:
    case COALITION_E_UNREACHABLE:
    case COALITION_E_BUSY:
    case COALITION_E_NOMEM:
    case COALITION_E_IDENTITY_UNAVAILABLE:
        return 503;
    default:
        return 500; /* STORAGE, VERIFY_FAILED, INTERNAL, unknown */
    }
}

const char *route_reason(int http_status)
{
    switch (http_status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* ---- text checks -------------------------------------------------------- */

/* True if s[0..len) is valid UTF-8 without control characters (and so
 * without NUL): what may go into a protobuf string and back out as JSON. */
static bool text_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n = 0;
        unsigned min = 0, cp = 0;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, min = 0x80, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, min = 0x800, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* Percent-decodes s[0..len) ('+' is a space when `plus`) into a malloc'd
 * string.  NULL if an escape is bad, the result is too long or not text. */
static char *decode(const char *s, size_t len, bool plus)
{
    if (len > 3 * ROUTE_TEXT_MAX) {
        return NULL;
    }
    char *out = malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        out[n++] = c;
    }
    out[n] = '\0';
    if (n > ROUTE_TEXT_MAX || !text_ok(out, n)) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- the parser --------------------------------------------------------- */

void route_msg_free(struct route_msg *m)
{
    free(m->url);
    free(m->authorization);
    free(m->idempotency_key);
    free(m->body);
    memset(m, 0, sizeof(*m));
}

/* Appends to a NUL-terminated malloc'd buffer of length *len.  False if
 * memory ran out. */
static bool append(char **buf, size_t *len, const char *at, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);
    if (p == NULL) {
        return false;
    }
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
    return true;
}

static struct route_parser *rp_of(http_parser *p)
{
    return (struct route_parser *)p->data;
}

/* Refuses the request from inside a callback.  -1, not 1: a 1 from
 * on_headers_complete would mean "no body" to http-parser. */
static int refuse(struct route_parser *rp, int status)
{
    rp->err_status = status;
    return -1;
}

/* The head grew by `n` bytes of a token (`sep` more for the separators
 * around it, which http-parser does not hand over): 431 past the limit. */
static int head_grew(struct route_parser *rp, size_t n, size_t sep)
{
    rp->head_bytes += n + sep;
    if (rp->head_bytes > rp->lim.header_max) {
        return refuse(rp, 431);
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct route_parser *rp = rp_of(p);
    route_msg_free(&rp->msg);
    rp->in_message = true;
    rp->headers_done = false;
    rp->field_len = 0;
    rp->field_long = false;
    rp->value = NULL;
    rp->value_len = 0;
    rp->last_was_value = false;
    rp->head_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct route_parser *rp = rp_of(p);
    if (rp->msg.url_len + n > rp->lim.header_max) {
        return refuse(rp, 431);
    }
    if (!append(&rp->msg.url, &rp->msg.url_len, at, n)) {
        return refuse(rp, 503);
    }
    /* "GET " and " HTTP/1.1\r\n" around the first piece of the URL. */
    return head_grew(rp, n, rp->msg.url_len == n ? 16 : 0);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct route_parser *rp = rp_of(p);
    bool first = rp->last_was_value || (rp->field_len == 0 && !rp->field_long);
    if (rp->last_was_value) {
        rp->field_len = 0;
        rp->field_long = false;
        rp->value = NULL;
        rp->last_was_value = false;
    }
    if (rp->field_len + n > ROUTE_FIELD_MAX) {
        rp->field_long = true;
    } else {
        memcpy(rp->field + rp->field_len, at, n);
        rp->field_len += n;
        rp->field[rp->field_len] = '\0';
    }
    /* ": " and "\r\n" around each header line. */
    return head_grew(rp, n, first ? 4 : 0);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct route_parser *rp = rp_of(p);
    if (!rp->last_was_value) {
        rp->last_was_value = true;
        rp->value = NULL;
        rp->value_len = 0;
        if (!rp->field_long) {
            if (strcasecmp(rp->field, "authorization") == 0) {
                rp->value = &rp->msg.authorization;
            } else if (strcasecmp(rp->field, "idempotency-key") == 0) {
                rp->value = &rp->msg.idempotency_key;
            }
        }
        if (rp->value != NULL && *rp->value != NULL) {
            return refuse(rp, 400); /* given twice: which one is meant? */
        }
        if (rp->value != NULL && !append(rp->value, &rp->value_len, "", 0)) {
            return refuse(rp, 503);
        }
    }
    if (rp->value != NULL && !append(rp->value, &rp->value_len, at, n)) {
        return refuse(rp, 503);
    }
    return head_grew(rp, n, 0);
}

static int on_headers_complete(http_parser *p)
{
    struct route_parser *rp = rp_of(p);
    rp->headers_done = true;
    rp->msg.method = (int)p->method;
    /* Without a body http-parser's content_length is ULLONG_MAX or 0. */
    if ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > rp->lim.body_max) {
        return refuse(rp, 413);
    }
    rp->msg.keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct route_parser *rp = rp_of(p);
    if (rp->msg.body_len + n > rp->lim.body_max) {
        return refuse(rp, 413);
    }
    if (!append(&rp->msg.body, &rp->msg.body_len, at, n)) {
        return refuse(rp, 503);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct route_parser *rp = rp_of(p);
    rp->complete = true;
    /* One request at a time: the caller answers it (in order) before the
     * next one is parsed. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings route_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void route_parser_init(struct route_parser *rp, const struct route_limits *lim)
{
    assert(rp != NULL && lim != NULL);
    assert(lim->header_max > 0 && lim->body_max > 0);
    memset(rp, 0, sizeof(*rp));
    http_parser_init(&rp->p, HTTP_REQUEST);
    rp->p.data = rp;
    rp->lim = *lim;
}

void route_parser_close(struct route_parser *rp)
{
    route_msg_free(&rp->msg);
}

bool route_parser_busy(const struct route_parser *rp)
{
    return rp->in_message && !rp->failed;
}

int route_parser_feed(struct route_parser *rp, const char *data, size_t len, size_t *consumed,
                      struct route_msg *out, int *http_status, int *code)
{
    assert(rp != NULL && data != NULL && len > 0 && consumed != NULL && out != NULL);
    *consumed = 0;
    if (rp->failed) {
        *http_status = 400;
        *code = COALITION_E_INVALID_ARGUMENT;
        return -1;
    }
    bool head_before = rp->in_message && !rp->headers_done;
    rp->p.data = rp;
    size_t n = http_parser_execute(&rp->p, &route_settings, data, len);
    assert(n <= len);
    enum http_errno e = HTTP_PARSER_ERRNO(&rp->p);
    if (rp->complete) {
        assert(e == HPE_PAUSED);
        http_parser_pause(&rp->p, 0);
        rp->complete = false;
        rp->in_message = false;
        rp->header_bytes = 0;
        *out = rp->msg;
        memset(&rp->msg, 0, sizeof(rp->msg));
        *consumed = n;
        if (rp->p.upgrade) {
            /* Upgrade and CONNECT: http-parser stops reading the stream. */
            route_msg_free(out);
            rp->failed = true;
            *http_status = 400;
            *code = COALITION_E_INVALID_ARGUMENT;
            return -1;
        }
        return 1;
    }
    if (e != HPE_OK || rp->err_status != 0) {
        rp->failed = true;
        *http_status = rp->err_status != 0 ? rp->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
        *code = *http_status == 413 || *http_status == 431 ? COALITION_E_FRAME_TOO_LARGE
                : *http_status == 503                      ? COALITION_E_NOMEM
                                                           : COALITION_E_INVALID_ARGUMENT;
        return -1;
    }
    assert(n == len);
    /* A head that trickles in whitespace that http-parser does not count
     * still counts here. */
    if (head_before && !rp->headers_done) {
        rp->header_bytes += n;
        if (rp->header_bytes > rp->lim.header_max) {
            rp->failed = true;
            *http_status = 431;
            *code = COALITION_E_FRAME_TOO_LARGE;
            return -1;
        }
    }
    *consumed = n;
    return 0;
}

/* ---- translation -------------------------------------------------------- */

/* Keeps `s` (malloc'd) until route_call_free; returns it, or NULL (and
 * frees it) if there is no room. */
static char *keep(struct route_call *call, char *s)
{
    if (s == NULL || call->n_owned >= sizeof(call->owned) / sizeof(call->owned[0])) {
        free(s);
        return NULL;
    }
    call->owned[call->n_owned++] = s;
    return s;
}

struct query {
    char *key[ROUTE_PARAMS_MAX];
    char *value[ROUTE_PARAMS_MAX];
    size_t n;
};

static void query_free(struct query *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->key[i]);
        free(q->value[i]);
    }
    q->n = 0;
}

/* Splits "a=1&b=2" into decoded pairs.  A name given twice, too many, or an
 * undecodable one is an error. */
static int query_parse(const char *s, size_t len, struct query *q)
{
    q->n = 0;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != '&') {
            end++;
        }
        if (end > i) {
            const char *eq = memchr(s + i, '=', end - i);
            size_t klen = eq != NULL ? (size_t)(eq - (s + i)) : end - i;
            const char *v = eq != NULL ? eq + 1 : s + end;
            size_t vlen = eq != NULL ? (size_t)(s + end - v) : 0;
            if (q->n >= ROUTE_PARAMS_MAX) {
                return COALITION_E_INVALID_ARGUMENT;
            }
            char *k = decode(s + i, klen, true);
            char *val = k != NULL ? decode(v, vlen, true) : NULL;
            if (val == NULL) {
                free(k);
                return COALITION_E_INVALID_ARGUMENT;
            }
            for (size_t j = 0; j < q->n; j++) {
                if (strcmp(q->key[j], k) == 0) {
                    free(k);
                    free(val);
                    return COALITION_E_INVALID_ARGUMENT;
                }
            }
            q->key[q->n] = k;
            q->value[q->n] = val;
            q->n++;
        }
        i = end + 1;
    }
    return 0;
}

/* The value of `name`, or NULL. */
static const char *query_get(const struct query *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->key[i], name) == 0) {
            return q->value[i];
        }
    }
    return NULL;
}

/* Every parameter is one of `allowed` (NULL-terminated). */
static bool query_only(const struct query *q, const char *const *allowed)
{
    for (size_t i = 0; i < q->n; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL && !ok; a++) {
            ok = strcmp(q->key[i], *a) == 0;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Strict base-10 unsigned number up to max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 20) {
        return false;
    }
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* A time: milliseconds since the epoch or an ISO 8601 date or instant. */
static bool parse_time(const char *s, uint64_t *ms)
{
    return parse_u64(s, DATE_MS_MAX, ms) || date_parse(s, ms) == 0;
}

/* Fields a JSON body may have; the first not in `allowed` is an error. */
static bool body_only(const json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL && !ok; a++) {
            ok = strcmp(key, *a) == 0;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* A string field: absent or null leaves *out alone; anything but text is
 * an error. */
static int body_str(const json_t *obj, const char *name, char **out)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n || !text_ok(s, n)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    *out = (char *)s;
    return 0;
}

/* An integer field in [min, max]: absent or null leaves *out alone. */
static int body_int(const json_t *obj, const char *name, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    json_int_t i = json_integer_value(v);
    if (i < min || i > max) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    *out = (int64_t)i;
    return 0;
}

/* Path segments, decoded.  NOT_FOUND for a path that no route can have,
 * INVALID_ARGUMENT for one that does not decode. */
struct path {
    char *seg[ROUTE_SEGMENTS_MAX];
    size_t n;
};

static void path_free(struct path *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->seg[i]);
    }
    p->n = 0;
}

static int path_parse(const char *s, size_t len, struct path *p)
{
    p->n = 0;
    if (len == 0 || s[0] != '/') {
        return COALITION_E_NOT_FOUND;
    }
    size_t i = 1;
    while (i <= len) {
        size_t end = i;
        while (end < len && s[end] != '/') {
            end++;
        }
        if (p->n >= ROUTE_SEGMENTS_MAX) {
            return COALITION_E_NOT_FOUND;
        }
        char *seg = decode(s + i, end - i, false);
        if (seg == NULL) {
            return COALITION_E_INVALID_ARGUMENT; /* a bad escape, not text */
        }
        p->seg[p->n++] = seg;
        i = end + 1;
    }
    return 0;
}

static bool seg_is(const struct path *p, size_t i, const char *s)
{
    return i < p->n && strcmp(p->seg[i], s) == 0;
}

/* Finds the route of `p` for `method`: 0, NOT_FOUND (404) or, for a known
 * path with another method, INVALID_ARGUMENT with *status 405.  *arg is the
 * index of the path's id segment ({id} or {txn}), if any. */
static int route_match(const struct path *p, int method, enum route_id *route, size_t *arg,
                       int *status)
{
    enum route_id r = ROUTE_NONE;
    int want = HTTP_GET;
    *arg = 0;
    if (p->n == 1 && seg_is(p, 0, "health")) {
        r = ROUTE_HEALTH;
    } else if (p->n == 1 && seg_is(p, 0, "metrics")) {
        r = ROUTE_METRICS;
    } else if (p->n >= 2 && seg_is(p, 0, "v1")) {
        const char *s1 = p->seg[1];
        if (p->n == 2) {
            static const struct {
                const char *name;
                enum route_id route;
                int method;
            } flat[] = {
                {"members", ROUTE_MEMBER_ADD, HTTP_POST},
                {"lookup", ROUTE_LOOKUP, HTTP_GET},
                {"awards", ROUTE_AWARD, HTTP_POST},
                {"redemptions", ROUTE_REDEEM, HTTP_POST},
                {"holds", ROUTE_HOLD, HTTP_POST},
                {"reversals", ROUTE_REVERSE, HTTP_POST},
                {"settlement", ROUTE_SETTLEMENT, HTTP_GET},
                {"reports", ROUTE_REPORT, HTTP_GET},
                {"program", ROUTE_PROGRAM_GET, HTTP_GET},
                {"program", ROUTE_PROGRAM_SET, HTTP_PUT},
                {"transfers", ROUTE_TRANSFER, HTTP_POST},
            };
            /* A path may have a route per method: the one of `method`, else
             * (405) the path's last. */
            bool found = false;
            for (size_t i = 0; i < sizeof(flat) / sizeof(flat[0]) && !found; i++) {
                if (strcmp(s1, flat[i].name) == 0) {
                    r = flat[i].route;
                    want = flat[i].method;
                    found = want == method;
                }
            }
        } else if (p->n == 4 && strcmp(s1, "members") == 0 && p->seg[2][0] != '\0') {
            static const struct {
                const char *name;
                enum route_id route;
                int method;
            } sub[] = {
                {"balance", ROUTE_BALANCE, HTTP_GET},   {"history", ROUTE_HISTORY, HTTP_GET},
                {"expiring", ROUTE_EXPIRING, HTTP_GET}, {"identify", ROUTE_IDENTIFY, HTTP_POST},
                {"cards", ROUTE_CARD, HTTP_POST},
            };
            for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
                if (strcmp(p->seg[3], sub[i].name) == 0) {
                    r = sub[i].route;
                    want = sub[i].method;
                }
            }
            *arg = 2;
        } else if (p->n == 4 && strcmp(s1, "holds") == 0 && p->seg[2][0] != '\0') {
            if (seg_is(p, 3, "capture")) {
                r = ROUTE_CAPTURE;
            } else if (seg_is(p, 3, "release")) {
                r = ROUTE_RELEASE;
            }
            want = HTTP_POST;
            *arg = 2;
        }
    }
    *route = r;
    if (r == ROUTE_NONE) {
        *status = 404;
        return COALITION_E_NOT_FOUND;
    }
    if (method != want) {
        *status = 405;
        return COALITION_E_NOT_FOUND;
    }
    return 0;
}

/* "Bearer <key_id>.<secret>": the key (malloc'd, without the blanks around
 * it), or NULL if absent or not of that form (the node checks whether it is
 * a valid key). */
static char *bearer_key(const char *auth)
{
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        return NULL;
    }
    const char *k = auth + 7;
    while (*k == ' ') {
        k++;
    }
    size_t n = strlen(k);
    while (n > 0 && k[n - 1] == ' ') {
        n--;
    }
    if (n != API_KEY_ID_HEX + 1 + API_KEY_SECRET_HEX || k[API_KEY_ID_HEX] != '.' ||
        !is_lower_hex(k, API_KEY_ID_HEX) ||
        !is_lower_hex(k + API_KEY_ID_HEX + 1, API_KEY_SECRET_HEX)) {
        return NULL;
    }
    return strndup(k, n);
}

/* The Txn fields a write's body may carry, by route. */
static int txn_from_body(struct route_call *call, const json_t *b, enum route_id r)
{
    static const char *const award[] = {"member",   "points", "purchase_cents", "paid_points_cents",
                                        "category", "reason", "partner",        NULL};
    static const char *const redeem[] = {"member", "points", "reason", "partner", NULL};
    static const char *const hold[] = {"member", "points", "timeout_s", "reason", "partner", NULL};
    static const char *const capture[] = {"points", "reason", "partner", NULL};
    static const char *const release[] = {"reason", "partner", NULL};
    static const char *const reverse[] = {"of_txn", "points", "reason", "partner", NULL};
    static const char *const transfer[] = {"member", "member_to", "points",
                                           "reason", "partner",   NULL};
    static const char *const member[] = {"member", "card", "partner", NULL};
    static const char *const card[] = {"card", "old_card", "partner", NULL};
    const char *const *allowed = NULL;
    Coalition__Txn *t = &call->txn;
    switch (r) {
    case ROUTE_AWARD:
        allowed = award;
        t->kind = COALITION__TXN_KIND__TXN_AWARD;
        break;
    case ROUTE_REDEEM:
        allowed = redeem;
        t->kind = COALITION__TXN_KIND__TXN_REDEEM;
        break;
    case ROUTE_HOLD:
        allowed = hold;
        t->kind = COALITION__TXN_KIND__TXN_HOLD;
        break;
    case ROUTE_CAPTURE:
        allowed = capture;
        t->kind = COALITION__TXN_KIND__TXN_CAPTURE;
        break;
    case ROUTE_RELEASE:
        allowed = release;
        t->kind = COALITION__TXN_KIND__TXN_RELEASE;
        break;
    case ROUTE_REVERSE:
        allowed = reverse;
        t->kind = COALITION__TXN_KIND__TXN_REVERSE;
        break;
    case ROUTE_TRANSFER:
        allowed = transfer;
        t->kind = COALITION__TXN_KIND__TXN_TRANSFER;
        break;
    case ROUTE_MEMBER_ADD:
        allowed = member;
        t->kind = COALITION__TXN_KIND__TXN_MEMBER_ADD;
        break;
    case ROUTE_CARD:
        allowed = card;
        t->kind = COALITION__TXN_KIND__TXN_CARD_ADD;
        break;
    default:
        assert(0 && "not a txn route");
        return COALITION_E_INTERNAL;
    }
    if (!body_only(b, allowed)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    int64_t points = 0, purchase = 0, paid = 0, timeout = 0;
    int rv = 0;
    /* Amounts are checked by the node (INVALID_AMOUNT); here only their
     * type and what the wire can carry. */
    if (rv == 0) {
        rv = body_int(b, "points", INT64_MIN, INT64_MAX, &points);
    }
    if (rv == 0) {
        rv = body_int(b, "purchase_cents", INT64_MIN, INT64_MAX, &purchase);
    }
    if (rv == 0) {
        rv = body_int(b, "paid_points_cents", INT64_MIN, INT64_MAX, &paid);
    }
    if (rv == 0) {
        rv = body_int(b, "timeout_s", 0, UINT32_MAX, &timeout);
    }
    if (rv == 0 && r != ROUTE_CARD) {
        rv = body_str(b, "member", &t->member);
    }
    if (rv == 0) {
        rv = body_str(b, "member_to", &t->member_to);
    }
    if (rv == 0) {
        rv = body_str(b, "partner", &t->partner);
    }
    if (rv == 0) {
        rv = body_str(b, "reason", &t->reason);
    }
    if (rv == 0) {
        rv = body_str(b, "category", &t->category);
    }
    if (rv == 0) {
        rv = body_str(b, "card", &t->card);
    }
    if (rv == 0) {
        rv = body_str(b, "old_card", &t->old_card);
    }
    if (rv == 0) {
        rv = body_str(b, "of_txn", &t->of_txn);
    }
    if (rv != 0) {
        return rv;
    }
    t->points = points;
    t->purchase_cents = purchase;
    t->paid_points_cents = paid;
    t->timeout_s = (uint32_t)timeout;
    if (r == ROUTE_CARD && t->old_card[0] != '\0') {
        t->kind = COALITION__TXN_KIND__TXN_CARD_REPLACE;
    }
    return 0;
}

/* A partner's program as PUT /v1/program carries it: what txn.program
 * points to.  (http_routes.h names only this type, so the program from
 * program_json_read sits behind it.) */
struct route_program {
    Coalition__Program *program; /* owned: program_json_free; texts borrow the body */
};

_Static_assert(PROGRAM_JSON_TEXT_MAX == RULES_TEXT_MAX, "one limit on program texts");
_Static_assert(PROGRAM_JSON_CATEGORIES_MAX == RULES_CATEGORIES_MAX, "one limit on categories");
_Static_assert(PROGRAM_JSON_CAMPAIGNS_MAX == RULES_CAMPAIGNS_MAX, "one limit on campaigns");

static void route_program_free(struct route_program *rp)
{
    if (rp != NULL) {
        program_json_free(rp->program);
        free(rp);
    }
}

/* PUT /v1/program: the body is the JSON object that `coalition program set
 * --file` reads (docs/protocol.md, "Program and rules files"), read by the
 * same reader (proto/program_json.h), plus the optional "reason" and
 * "partner" of every write.  Here only the shape is checked; what only the
 * ledger can judge (a point value of 0, a campaign that ends before it
 * starts, ...) is rules_program_validate's, on the node. */
static int program_from_body(struct route_call *call, const json_t *b)
{
    static const char *const extra[] = {"reason", "partner", NULL};
    assert(call->program == NULL);
    struct route_program *rp = calloc(1, sizeof(*rp));
    if (rp == NULL) {
        return COALITION_E_NOMEM;
    }
    call->program = rp; /* freed by route_call_free */
    int rv = program_json_read(b, extra, &rp->program, NULL);
    if (rv != 0) {
        return rv;
    }
    Coalition__Txn *t = &call->txn;
    t->kind = COALITION__TXN_KIND__TXN_PROGRAM_SET;
    t->program = rp->program;
    rv = body_str(b, "reason", &t->reason);
    if (rv == 0) {
        rv = body_str(b, "partner", &t->partner);
    }
    return rv;
}

/* The JSON object of a POST body ({} when empty). */
static int body_parse(struct route_call *call, const struct route_msg *m)
{
    if (m->body_len == 0) {
        call->body = json_object();
        return call->body != NULL ? 0 : COALITION_E_NOMEM;
    }
    json_error_t err;
    call->body = json_loadb(m->body, m->body_len, JSON_REJECT_DUPLICATES, &err);
    if (call->body == NULL || !json_is_object(call->body)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    return 0;
}

static int translate_read(struct route_call *call, const struct query *q, char *id)
{
    Coalition__Request *req = &call->req;
    uint64_t v = 0;
    switch (call->route) {
    case ROUTE_BALANCE: {
        static const char *const ok[] = {"at", NULL};
        const char *at = query_get(q, "at");
        if (!query_only(q, ok) || (at != NULL && !parse_time(at, &v))) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        call->balance.member = id;
        call->balance.at_ms = v;
        req->op_case = COALITION__REQUEST__OP_BALANCE;
        req->balance = &call->balance;
        return 0;
    }
    case ROUTE_HISTORY: {
        static const char *const ok[] = {"limit", NULL};
        const char *limit = query_get(q, "limit");
        if (!query_only(q, ok) ||
            (limit != NULL && (!parse_u64(limit, HISTORY_LIMIT_MAX, &v) || v == 0))) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        call->history.member = id;
        call->history.limit = (uint32_t)v;
        req->op_case = COALITION__REQUEST__OP_HISTORY;
        req->history = &call->history;
        return 0;
    }
    case ROUTE_EXPIRING: {
        static const char *const ok[] = {"within_days", "at", NULL};
        const char *days = query_get(q, "within_days");
        const char *at = query_get(q, "at");
        uint64_t d = WITHIN_DAYS_DEFAULT;
        if (!query_only(q, ok) || (days != NULL && !parse_u64(days, WITHIN_DAYS_MAX, &d)) ||
            (at != NULL && !parse_time(at, &v))) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        call->expiring.member = id;
        call->expiring.within_days = (uint32_t)d;
        call->expiring.at_ms = v;
        req->op_case = COALITION__REQUEST__OP_EXPIRING;
        req->expiring = &call->expiring;
        return 0;
    }
    case ROUTE_LOOKUP: {
        static const char *const ok[] = {"card", "phone", "email", NULL};
        if (!query_only(q, ok) || q->n != 1) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        char *value = keep(call, strdup(q->value[0]));
        if (value == NULL) {
            return COALITION_E_NOMEM;
        }
        if (strcmp(q->key[0], "card") == 0) {
            call->lookup.card = value;
        } else if (strcmp(q->key[0], "phone") == 0) {
            call->lookup.phone = value;
        } else {
            call->lookup.email = value;
        }
        req->op_case = COALITION__REQUEST__OP_LOOKUP;
        req->lookup = &call->lookup;
        return 0;
    }
    case ROUTE_SETTLEMENT:
    case ROUTE_REPORT: {
        static const char *const ok_s[] = {"from", "to", NULL};
        static const char *const ok_r[] = {"from", "to", "partner", NULL};
        uint64_t from = 0, to = 0;
        const char *partner = query_get(q, "partner");
        if (!query_only(q, call->route == ROUTE_SETTLEMENT ? ok_s : ok_r) ||
            !parse_time(query_get(q, "from"), &from) || !parse_time(query_get(q, "to"), &to) ||
            to <= from) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        if (call->route == ROUTE_SETTLEMENT) {
            call->settlement.from_ms = from;
            call->settlement.to_ms = to;
            req->op_case = COALITION__REQUEST__OP_SETTLEMENT;
            req->settlement = &call->settlement;
            return 0;
        }
        if (partner != NULL) {
            call->report.partner = keep(call, strdup(partner));
            if (call->report.partner == NULL) {
                return COALITION_E_NOMEM;
            }
        }
        call->report.from_ms = from;
        call->report.to_ms = to;
        req->op_case = COALITION__REQUEST__OP_REPORT;
        req->report = &call->report;
        return 0;
    }
    case ROUTE_PROGRAM_GET: {
        /* Absent: the node answers for the key's partner.  Any partner may
         * be named: programs are not secret between partners. */
        static const char *const ok[] = {"partner", NULL};
        const char *partner = query_get(q, "partner");
        if (!query_only(q, ok) || (partner != NULL && partner[0] == '\0')) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        call->program_get.partner = partner != NULL ? keep(call, strdup(partner)) : "";
        if (call->program_get.partner == NULL) {
            return COALITION_E_NOMEM;
        }
        req->op_case = COALITION__REQUEST__OP_PROGRAM;
        req->program = &call->program_get;
        return 0;
    }
    default:
        assert(0 && "not a read route");
        return COALITION_E_INTERNAL;
    }
}

static int translate_write(struct route_call *call, const struct route_msg *m,
                           const struct query *q, char *id)
{
    Coalition__Request *req = &call->req;
    const char *key = m->idempotency_key;
    size_t klen = key != NULL ? strlen(key) : 0;
    /* The txn id: what makes a retry safe, so every write needs one. */
    if (klen == 0 || klen > ROUTE_TEXT_MAX || !text_ok(key, klen) || q->n != 0) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    char *txn_id = keep(call, strdup(key));
    if (txn_id == NULL) {
        return COALITION_E_NOMEM;
    }
    int rv = body_parse(call, m);
    if (rv != 0) {
        return rv;
    }
    if (call->route == ROUTE_IDENTIFY) {
        static const char *const ok[] = {"phone", "email", NULL};
        Coalition__IdentifyRequest *ir = &call->identify;
        if (!body_only(call->body, ok)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        rv = body_str(call->body, "phone", &ir->phone);
        if (rv == 0) {
            rv = body_str(call->body, "email", &ir->email);
        }
        if (rv != 0) {
            return rv;
        }
        ir->member = id;
        ir->txn_id = txn_id;
        req->op_case = COALITION__REQUEST__OP_IDENTIFY;
        req->identify = ir;
        return 0;
    }
    rv = call->route == ROUTE_PROGRAM_SET ? program_from_body(call, call->body)
                                          : txn_from_body(call, call->body, call->route);
    if (rv != 0) {
        return rv;
    }
    Coalition__Txn *t = &call->txn;
    t->txn_id = txn_id;
    if (call->route == ROUTE_CARD) {
        t->member = id;
    } else if (call->route == ROUTE_CAPTURE || call->route == ROUTE_RELEASE) {
        t->of_txn = id;
    }
    req->op_case = COALITION__REQUEST__OP_TXN;
    req->txn = t;
    return 0;
}

static void call_init(struct route_call *call)
{
    memset(call, 0, sizeof(*call));
    coalition__request__init(&call->req);
    coalition__txn__init(&call->txn);
    coalition__balance_request__init(&call->balance);
    coalition__history_request__init(&call->history);
    coalition__expiring_request__init(&call->expiring);
    coalition__lookup_request__init(&call->lookup);
    coalition__identify_request__init(&call->identify);
    coalition__settlement_request__init(&call->settlement);
    coalition__report_request__init(&call->report);
    coalition__program_request__init(&call->program_get);
}

void route_call_free(struct route_call *call)
{
    for (size_t i = 0; i < call->n_owned; i++) {
        free(call->owned[i]);
    }
    route_program_free(call->program);
    if (call->body != NULL) {
        json_decref(call->body);
    }
    call_init(call);
}

static bool route_writes(enum route_id r)
{
    switch (r) {
    case ROUTE_MEMBER_ADD:
    case ROUTE_IDENTIFY:
    case ROUTE_CARD:
    case ROUTE_AWARD:
    case ROUTE_REDEEM:
    case ROUTE_HOLD:
    case ROUTE_CAPTURE:
    case ROUTE_RELEASE:
    case ROUTE_REVERSE:
    case ROUTE_TRANSFER:
    case ROUTE_PROGRAM_SET:
        return true;
    default:
        return false;
    }
}

int route_translate(const struct route_msg *m, struct route_call *call, int *http_status)
{
    assert(m != NULL && call != NULL && http_status != NULL);
    call_init(call);
    *http_status = 400;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (m->url == NULL || http_parser_parse_url(m->url, m->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct path p;
    struct query q = {.n = 0};
    char *id = NULL;
    int rv = path_parse(m->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, &p);
    size_t arg = 0;
    if (rv != 0) {
        path_free(&p);
        *http_status = rv == COALITION_E_NOT_FOUND ? 404 : 400;
        return rv;
    }
    rv = route_match(&p, m->method, &call->route, &arg, http_status);
    if (rv == 0 && (u.field_set & (1 << UF_QUERY))) {
        *http_status = 400;
        rv = query_parse(m->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len, &q);
    }
    if (rv == 0 && (call->route == ROUTE_HEALTH || call->route == ROUTE_METRICS)) {
        /* Served by the HTTP front itself, without a key. */
        rv = q.n == 0 ? 0 : COALITION_E_INVALID_ARGUMENT;
        goto done;
    }
    if (rv == 0) {
        char *key = bearer_key(m->authorization);
        if (key == NULL) {
            /* Absent or malformed; out of memory looks the same here. */
            *http_status = 401;
            rv = COALITION_E_UNAUTHENTICATED;
        } else {
            call->req.api_key = keep(call, key);
            rv = call->req.api_key != NULL ? 0 : COALITION_E_NOMEM;
        }
    }
    if (rv == 0 && arg != 0) {
        id = keep(call, strdup(p.seg[arg]));
        rv = id != NULL ? 0 : COALITION_E_NOMEM;
    }
    if (rv == 0) {
        *http_status = 400;
        if (route_writes(call->route)) {
            rv = translate_write(call, m, &q, id);
        } else if (m->body_len != 0) {
            rv = COALITION_E_INVALID_ARGUMENT; /* a GET with a body */
        } else {
            rv = translate_read(call, &q, id);
        }
    }
    if (rv == COALITION_E_NOMEM) {
        *http_status = 503;
    }
done:
    path_free(&p);
    query_free(&q);
    if (rv == 0) {
        *http_status = 200;
    }
    return rv;
}

/* ---- answers ------------------------------------------------------------ */

/* Text from the node as JSON: a string that is not UTF-8 becomes '?'s. */
static json_t *jstr(const char *s)
{
    if (s == NULL) {
        return json_string("");
    }
    json_t *j = json_string(s);
    if (j != NULL) {
        return j;
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return NULL;
    }
    for (char *p = copy; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80) {
            *p = '?';
        }
    }
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *jstr_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? jstr(s) : json_null();
}

static json_t *jint(int64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *juint(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v);
}

static json_t *jdate(uint64_t ms)
{
    if (ms == 0) {
        return json_null();
    }
    char text[DATE_TEXT_LEN];
    date_format(ms, text);
    return json_string(text);
}

/* "award" for TXN_AWARD: the enum's name, lower case, without "TXN_" (the
 * CLI's kind names). */
static json_t *jkind(int kind)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&coalition__txn_kind__descriptor, kind);
    if (v == NULL) {
        return json_string("unknown");
    }
    char name[64];
    const char *s = strncmp(v->name, "TXN_", 4) == 0 ? v->name + 4 : v->name;
    size_t n = 0;
    for (; s[n] != '\0' && n + 1 < sizeof(name); n++) {
        name[n] = (char)(s[n] >= 'A' && s[n] <= 'Z' ? s[n] - 'A' + 'a' : s[n]);
    }
    name[n] = '\0';
    return json_string(name);
}

/* Sets obj[name] = v; false (and v released) if that failed. */
static bool put(json_t *obj, const char *name, json_t *v)
{
    return v != NULL && json_object_set_new(obj, name, v) == 0;
}

char *route_error_body(int code, const char *message)
{
    json_t *obj = json_object();
    json_t *err = json_object();
    char *s = NULL;
    if (obj != NULL && err != NULL && put(err, "code", json_string(coalition_errname(code))) &&
        put(err, "message", jstr(message != NULL ? message : coalition_strerror(code)))) {
        json_t *e = err;
        err = NULL;
        if (put(obj, "error", e)) {
            s = json_dumps(obj, JSON_COMPACT);
        }
    }
    json_decref(err);
    json_decref(obj);
    return s;
}

static json_t *flows_json(Coalition__SettlementFlow *const *flows, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = json_object();
        bool ok = o != NULL && put(o, "issuer", jstr(flows[i]->issuer)) &&
                  put(o, "redeemer", jstr(flows[i]->redeemer)) &&
                  put(o, "points", jint(flows[i]->points)) &&
                  put(o, "value_mc", jint(flows[i]->value_mc));
        if (!ok || json_array_append_new(arr, o) != 0) {
            json_decref(ok ? NULL : o);
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* The netted payments of a settlement (report_settlement computes them). */
static json_t *payments_json(Coalition__SettlementPayment *const *pay, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = json_object();
        bool ok = o != NULL && put(o, "payer", jstr(pay[i]->payer)) &&
                  put(o, "payee", jstr(pay[i]->payee)) &&
                  put(o, "value_mc", jint(pay[i]->value_mc));
        if (!ok || json_array_append_new(arr, o) != 0) {
            json_decref(ok ? NULL : o);
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *txn_json(const Coalition__TxnResult *r)
{
    json_t *o = json_object();
    if (o == NULL || !put(o, "txn", jstr(r->txn_id)) || !put(o, "seq", juint(r->seq)) ||
        !put(o, "duplicate", json_boolean(r->duplicate)) || !put(o, "points", jint(r->points)) ||
        !put(o, "time_ms", juint(r->time_ms)) || !put(o, "rule", jstr(r->rule))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *balance_json(const Coalition__BalanceResult *b)
{
    json_t *o = json_object();
    if (o == NULL || !put(o, "member", jstr(b->member)) || !put(o, "points", jint(b->points)) ||
        !put(o, "as_of_seq", juint(b->as_of_seq)) || !put(o, "held", jint(b->held)) ||
        !put(o, "locked", jint(b->locked)) || !put(o, "tier", jstr_or_null(b->tier)) ||
        !put(o, "next_tier", jstr_or_null(b->next_tier)) ||
        !put(o, "to_next_tier",
             b->next_tier != NULL && b->next_tier[0] != '\0' ? jint(b->to_next_tier)
                                                             : json_null()) ||
        !put(o, "earned_12m", jint(b->earned_12m)) || !put(o, "at", jdate(b->at_ms)) ||
        !put(o, "at_ms", juint(b->at_ms))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *history_json(const Coalition__HistoryResult *h)
{
    json_t *o = json_object();
    json_t *items = json_array();
    if (o == NULL || items == NULL || !put(o, "member", jstr(h->member))) {
        json_decref(o);
        json_decref(items);
        return NULL;
    }
    for (size_t i = 0; i < h->n_items; i++) {
        const Coalition__HistoryItem *it = h->items[i];
        json_t *x = json_object();
        bool ok =
            x != NULL && put(x, "seq", juint(it->seq)) && put(x, "time_ms", juint(it->time_ms)) &&
            put(x, "kind", jkind(it->kind)) && put(x, "partner", jstr(it->partner)) &&
            put(x, "txn", jstr(it->txn_id)) && put(x, "delta", jint(it->delta)) &&
            put(x, "counterparty", jstr(it->counterparty)) && put(x, "reason", jstr(it->reason));
        if (!ok || json_array_append_new(items, x) != 0) {
            json_decref(ok ? NULL : x);
            json_decref(items);
            json_decref(o);
            return NULL;
        }
    }
    if (!put(o, "items", items)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *expiring_json(const Coalition__ExpiringResult *e, uint32_t within_days)
{
    json_t *o = json_object();
    json_t *lots = json_array();
    int64_t total = 0;
    if (o == NULL || lots == NULL) {
        json_decref(o);
        json_decref(lots);
        return NULL;
    }
    for (size_t i = 0; i < e->n_lots; i++) {
        const Coalition__ExpiringLot *l = e->lots[i];
        if (__builtin_add_overflow(total, l->points, &total)) {
            total = INT64_MAX; /* saturates, as the CLI's does */
        }
        json_t *x = json_object();
        bool ok = x != NULL && put(x, "issuer", jstr(l->issuer)) &&
                  put(x, "points", jint(l->points)) && put(x, "earned", jdate(l->earned_ms)) &&
                  put(x, "expires", jdate(l->expires_ms));
        if (!ok || json_array_append_new(lots, x) != 0) {
            json_decref(ok ? NULL : x);
            json_decref(lots);
            json_decref(o);
            return NULL;
        }
    }
    if (!put(o, "member", jstr(e->member)) || !put(o, "within_days", juint(within_days)) ||
        !put(o, "at", jdate(e->at_ms)) || !put(o, "total", jint(total)) || !put(o, "lots", lots)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *settlement_json(const Coalition__SettlementResult *s)
{
    json_t *o = json_object();
    json_t *partners = json_array();
    if (o == NULL || partners == NULL || !put(o, "from", jdate(s->from_ms)) ||
        !put(o, "to", jdate(s->to_ms)) || !put(o, "from_ms", juint(s->from_ms)) ||
        !put(o, "to_ms", juint(s->to_ms)) || !put(o, "through_seq", juint(s->through_seq)) ||
        !put(o, "flows", flows_json(s->flows, s->n_flows))) {
        json_decref(o);
        json_decref(partners);
        return NULL;
    }
    for (size_t i = 0; i < s->n_partners; i++) {
        const Coalition__PartnerPosition *p = s->partners[i];
        json_t *x = json_object();
        bool ok =
            x != NULL && put(x, "partner", jstr(p->partner)) && put(x, "issued", jint(p->issued)) &&
            put(x, "redeemed_at", jint(p->redeemed_at)) && put(x, "expired", jint(p->expired)) &&
            put(x, "outstanding", jint(p->outstanding)) &&
            put(x, "liability_mc", jint(p->liability_mc)) &&
            put(x, "receivable_mc", jint(p->receivable_mc)) &&
            put(x, "payable_mc", jint(p->payable_mc)) && put(x, "net_mc", jint(p->net_mc)) &&
            put(x, "issued_total", jint(p->issued_total)) &&
            put(x, "redeemed_total", jint(p->redeemed_total)) &&
            put(x, "expired_total", jint(p->expired_total));
        if (!ok || json_array_append_new(partners, x) != 0) {
            json_decref(ok ? NULL : x);
            json_decref(partners);
            json_decref(o);
            return NULL;
        }
    }
    if (!put(o, "partners", partners) ||
        !put(o, "payments", payments_json(s->payments, s->n_payments))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *report_json(const Coalition__ReportResult *r)
{
    json_t *o = json_object();
    if (o == NULL || !put(o, "partner", jstr_or_null(r->partner)) ||
        !put(o, "from", jdate(r->from_ms)) || !put(o, "to", jdate(r->to_ms)) ||
        !put(o, "from_ms", juint(r->from_ms)) || !put(o, "to_ms", juint(r->to_ms)) ||
        !put(o, "through_seq", juint(r->through_seq)) ||
        !put(o, "active_members", juint(r->active_members)) ||
        !put(o, "purchasers", juint(r->purchasers)) ||
        !put(o, "repeat_purchasers", juint(r->repeat_purchasers)) ||
        !put(o, "retained_members", juint(r->retained_members)) ||
        !put(o, "previous_active", juint(r->previous_active)) ||
        !put(o, "purchases", juint(r->purchases)) ||
        !put(o, "purchase_cents", jint(r->purchase_cents)) ||
        !put(o, "points_issued", jint(r->points_issued)) ||
        !put(o, "points_redeemed", jint(r->points_redeemed)) ||
        !put(o, "points_expired", jint(r->points_expired)) ||
        !put(o, "outstanding", jint(r->outstanding)) ||
        !put(o, "liability_mc", jint(r->liability_mc)) ||
        !put(o, "top_flows", flows_json(r->top_flows, r->n_top_flows))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int route_respond(const struct route_call *call, const Coalition__Response *resp, int *http_status,
                  char **body)
{
    assert(call != NULL && resp != NULL && http_status != NULL && body != NULL);
    *body = NULL;
    int code = resp->code;
    json_t *o = NULL;
    if (code == 0) {
        switch (resp->result_case) {
        case COALITION__RESPONSE__RESULT_TXN:
            o = txn_json(resp->txn);
            break;
        case COALITION__RESPONSE__RESULT_BALANCE:
            o = balance_json(resp->balance);
            break;
        case COALITION__RESPONSE__RESULT_HISTORY:
            o = history_json(resp->history);
            break;
        case COALITION__RESPONSE__RESULT_EXPIRING:
            o = expiring_json(resp->expiring, call->expiring.within_days);
            break;
        case COALITION__RESPONSE__RESULT_LOOKUP:
            o = json_object();
            if (o != NULL && !put(o, "member", jstr(resp->lookup->member))) {
                json_decref(o);
                o = NULL;
            }
            break;
        case COALITION__RESPONSE__RESULT_SETTLEMENT:
            o = settlement_json(resp->settlement);
            break;
        case COALITION__RESPONSE__RESULT_REPORT:
            o = report_json(resp->report);
            break;
        case COALITION__RESPONSE__RESULT_PROGRAM:
            /* The program file's shape (proto/program_json.h), as `coalition
             * program show --json` prints it and PUT /v1/program takes it. */
            code = program_json_write(resp->program->program, &o);
            code = code == COALITION_E_INVALID_ARGUMENT ? COALITION_E_INTERNAL : code;
            break;
        default:
            code = COALITION_E_INTERNAL; /* an answer of the wrong kind */
            break;
        }
        if (code == 0 && o == NULL) {
            code = COALITION_E_NOMEM;
        }
    }
    if (code != 0) {
        *http_status = route_status_for(code);
        *body = route_error_body(code, coalition_strerror(code));
        return *body != NULL ? 0 : COALITION_E_NOMEM;
    }
    *http_status = 200;
    if (call->route == ROUTE_MEMBER_ADD && resp->txn != NULL && !resp->txn->duplicate) {
        *http_status = 201;
    }
    *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return *body != NULL ? 0 : COALITION_E_NOMEM;
}
