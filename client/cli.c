/* The `coalition` command-line tool: one libcoalition call per invocation
 * (the `cluster` commands ask every node of the configuration), printed as
 * short human lines or, with --json, as exactly one JSON object on stdout.
 * Exit status: 0 ok, 1 rejected by the ledger, 2 usage error, 3 node
 * unreachable or timed out. */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "coalition.h"

enum {
    EXIT_OK = 0,
    EXIT_REJECTED = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
};

#define CLI_TIMEOUT_MS_DEFAULT 5000
/* Verification replays the whole ledger, so it gets longer unless the user
 * chose a timeout. */
#define CLI_VERIFY_TIMEOUT_MS_DEFAULT 60000
/* A membership change is answered once it is committed; making a node a
 * voter first lets it catch up with the log, which can take a while. */
#define CLI_CLUSTER_CHANGE_TIMEOUT_MS_DEFAULT 30000
#define CLI_HEX_LEN                           (2 * COALITION_HASH_LEN + 1)
/* The cluster commands ask every node in turn: each gets a short timeout
 * (unless --timeout-ms is given) so that a dead node does not stall them. */
#define CLI_NODE_TIMEOUT_MS_DEFAULT 1000
#define CLI_CHECK_WAIT_S_DEFAULT    10
#define CLI_CHECK_WAIT_S_MAX        86400
#define CLI_CHECK_POLL_MS           200

/* Command options; each command accepts a subset (struct command). */
enum opt_index {
    OPT_ID,
    OPT_NAME,
    OPT_CARD,
    OPT_TXN,
    OPT_PARTNER,
    OPT_MEMBER,
    OPT_POINTS,
    OPT_REASON,
    OPT_OF,
    OPT_FROM,
    OPT_TO,
    OPT_LIMIT,
    OPT_CONSISTENT, /* a flag: no value */
    OPT_RAFT,
    OPT_CLIENT,
    OPT_ROLE,
    OPT_WAIT_S,
    OPT_COUNT
};

#define BIT(i) (1u << (i))

static const char *const opt_names[OPT_COUNT] = {
    [OPT_ID] = "id",
    [OPT_NAME] = "name",
    [OPT_CARD] = "card",
    [OPT_TXN] = "txn",
    [OPT_PARTNER] = "partner",
    [OPT_MEMBER] = "member",
    [OPT_POINTS] = "points",
    [OPT_REASON] = "reason",
    [OPT_OF] = "of",
    [OPT_FROM] = "from",
    [OPT_TO] = "to",
    [OPT_LIMIT] = "limit",
    [OPT_CONSISTENT] = "consistent",
    [OPT_RAFT] = "raft",
    [OPT_CLIENT] = "client",
    [OPT_ROLE] = "role",
    [OPT_WAIT_S] = "wait-s",
};
_Static_assert(OPT_COUNT <= 32, "options are bits of an unsigned");

/* Options that take no value; a->v[] holds "1" when one is given. */
#define FLAG_OPTS BIT(OPT_CONSISTENT)

/* getopt_long values of the global options (also accepted after a command)
 * and the base of the command options. */
enum {
    GOPT_NODE = 0x100,
    GOPT_JSON,
    GOPT_TIMEOUT,
    GOPT_CMD_BASE = 0x200,
};

struct cli {
    const char *node;
    bool json;
    int timeout_ms; /* 0: not given, use the command's default */
    struct coalition_client *client;
};

struct args {
    const char *v[OPT_COUNT]; /* borrowed from argv; NULL when not given */
    int64_t points;           /* --points, 0 when not given */
    uint32_t limit;           /* --limit, 0 when not given */
    uint64_t node_id;         /* cluster commands: --id, 0 when not given */
    enum coalition_role role; /* --role, standby when not given */
    uint32_t wait_s;          /* --wait-s, CLI_CHECK_WAIT_S_DEFAULT when not given */
};

struct command {
    const char *name;
    const char *sub; /* second word ("add"), or NULL */
    unsigned allowed;
    unsigned required;
    int (*run)(struct cli *cli, const struct args *a);
    const char *synopsis;
    const char *help;
};

/* ------------------------------------------------------------------------
 * Output helpers */

/* A JSON string even for bytes that are not valid UTF-8 (a name truncated
 * inside a character, say): those become '?'. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL) {
        return j;
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return json_string("");
    }
    for (char *p = copy; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80) {
            *p = '?';
        }
    }
    j = json_string(copy);
    free(copy);
    return j != NULL ? j : json_string("");
}

static json_t *jint(int64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *juint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *jhash(const uint8_t hash[COALITION_HASH_LEN])
{
    char hex[CLI_HEX_LEN];
    coalition_hash_hex(hash, hex);
    return json_string(hex);
}

/* Prints `obj` (consumed) as the one JSON object of stdout. */
static void json_print(json_t *obj)
{
    assert(obj != NULL);
    char *s = json_dumps(obj, JSON_COMPACT);
    if (s != NULL) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(obj);
}

static json_t *json_error_object(int code, const char *message)
{
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(coalition_errname(code)));
    json_object_set_new(err, "message", jstr(message));
    return err;
}

static int exit_code_for(int code)
{
    assert(code != 0);
    if (code == COALITION_E_UNREACHABLE || code == COALITION_E_TIMEOUT) {
        return EXIT_UNREACHABLE;
    }
    return EXIT_REJECTED;
}

/* The message that goes with `code`: the node's (or the library's) if there
 * is one, else the table's. */
static const char *error_message(const struct cli *cli, int code)
{
    if (cli->client != NULL) {
        const char *m = coalition_client_errmsg(cli->client);
        if (m[0] != '\0') {
            return m;
        }
    }
    return coalition_strerror(code);
}

/* The leader hint that came with the last answer, or "". */
static const char *leader_hint(const struct cli *cli)
{
    return cli->client != NULL ? coalition_client_leader_hint(cli->client) : "";
}

/* Reports a failed call and returns the exit status for it.  A leader hint
 * (with NOT_LEADER or UNAVAILABLE) is passed on: the user can go there. */
static int report_error(const struct cli *cli, int code, const char *message)
{
    const char *hint = leader_hint(cli);
    if (cli->json) {
        json_t *obj = json_object();
        json_t *err = json_error_object(code, message);
        if (hint[0] != '\0') {
            json_object_set_new(err, "leader_hint", jstr(hint));
        }
        json_object_set_new(obj, "error", err);
        json_print(obj);
    } else if (hint[0] != '\0') {
        fprintf(stderr, "error: %s: %s (leader: %s)\n", coalition_errname(code), message, hint);
    } else {
        fprintf(stderr, "error: %s: %s\n", coalition_errname(code), message);
    }
    return exit_code_for(code);
}

static void print_main_usage(FILE *out);

/* Reports a usage error for `cmd` (NULL: the command line as a whole). */
static int usage_error(const struct cli *cli, const struct command *cmd, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "error", json_error_object(COALITION_E_INVALID_ARGUMENT, msg));
        json_print(obj);
    }
    fprintf(stderr, "coalition: %s\n", msg);
    if (cmd != NULL) {
        fprintf(stderr, "usage: coalition %s\n", cmd->synopsis);
        fprintf(stderr, "try 'coalition help %s%s%s'\n", cmd->name, cmd->sub ? " " : "",
                cmd->sub ? cmd->sub : "");
    } else {
        fputs("try 'coalition --help'\n", stderr);
    }
    return EXIT_USAGE;
}

/* ISO-8601 UTC time of a ledger timestamp, to the second. */
static void format_time(uint64_t time_ms, char out[32])
{
    time_t secs = (time_t)(time_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, 32, "%" PRIu64, time_ms);
    }
}

/* ------------------------------------------------------------------------
 * Number parsing: strict base 10, no blanks, no trailing bytes. */

static bool parse_int64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return false;
    }
    for (const char *q = p; *q != '\0'; q++) {
        if (*q < '0' || *q > '9') {
            return false;
        }
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    int64_t v = 0;
    if (s[0] == '-' || !parse_int64(s, &v) || (uint64_t)v > max) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* ------------------------------------------------------------------------
 * Commands */

/* Empty table cells show as "-" so that columns stay readable. */
static const char *or_dash(const char *s)
{
    return s[0] != '\0' ? s : "-";
}

static int run_status(struct cli *cli, const struct args *a)
{
    (void)a;
    struct coalition_status st;
    int rv = coalition_client_status(cli->client, &st);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "node_id", juint(st.node_id));
        json_object_set_new(obj, "role", jstr(st.role));
        json_object_set_new(obj, "applied_seq", juint(st.applied_seq));
        json_object_set_new(obj, "applied_index", juint(st.applied_index));
        json_object_set_new(obj, "head_hash", jhash(st.head_hash));
        json_object_set_new(obj, "leader_id", juint(st.leader_id));
        json_object_set_new(obj, "membership", jstr(st.membership));
        json_object_set_new(obj, "last_index", juint(st.last_index));
        json_print(obj);
    } else {
        char hex[CLI_HEX_LEN];
        coalition_hash_hex(st.head_hash, hex);
        printf("node id:       %" PRIu64 "\n", st.node_id);
        printf("role:          %s\n", st.role);
        printf("membership:    %s\n", or_dash(st.membership));
        if (st.leader_id != 0) {
            printf("leader id:     %" PRIu64 "\n", st.leader_id);
        } else {
            printf("leader id:     none known\n");
        }
        printf("applied seq:   %" PRIu64 "\n", st.applied_seq);
        printf("applied index: %" PRIu64 "\n", st.applied_index);
        printf("last index:    %" PRIu64 "\n", st.last_index);
        printf("head hash:     %s\n", hex);
    }
    return EXIT_OK;
}

/* Submits one transaction and prints its result. */
static int submit_txn(struct cli *cli, const struct coalition_txn *t)
{
    struct coalition_txn_result r;
    int rv = coalition_client_txn(cli->client, t, &r);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "txn", jstr(t->txn_id));
        json_object_set_new(obj, "seq", juint(r.seq));
        json_object_set_new(obj, "duplicate", json_boolean(r.duplicate));
        json_object_set_new(obj, "points", jint(r.points));
        json_object_set_new(obj, "time_ms", juint(r.time_ms));
        json_print(obj);
    } else if (r.duplicate) {
        printf("duplicate: txn %s already applied as seq %" PRIu64 "\n", t->txn_id, r.seq);
    } else {
        printf("ok: txn %s seq %" PRIu64 " points %" PRId64 "\n", t->txn_id, r.seq, r.points);
    }
    return EXIT_OK;
}

static int run_partner_add(struct cli *cli, const struct args *a)
{
    /* The partner's own id is a natural idempotency key: it can join once. */
    struct coalition_txn t = {
        .kind = COALITION_TXN_PARTNER_ADD,
        .partner = a->v[OPT_ID],
        .name = a->v[OPT_NAME],
        .txn_id = a->v[OPT_TXN] != NULL ? a->v[OPT_TXN] : a->v[OPT_ID],
    };
    return submit_txn(cli, &t);
}

static int run_member_add(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_MEMBER_ADD,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_ID],
        .card = a->v[OPT_CARD],
        .txn_id = a->v[OPT_TXN] != NULL ? a->v[OPT_TXN] : a->v[OPT_ID],
    };
    return submit_txn(cli, &t);
}

static int run_award_redeem(struct cli *cli, const struct args *a, enum coalition_txn_kind kind)
{
    struct coalition_txn t = {
        .kind = kind,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_MEMBER],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .points = a->points,
    };
    return submit_txn(cli, &t);
}

static int run_award(struct cli *cli, const struct args *a)
{
    return run_award_redeem(cli, a, COALITION_TXN_AWARD);
}

static int run_redeem(struct cli *cli, const struct args *a)
{
    return run_award_redeem(cli, a, COALITION_TXN_REDEEM);
}

static int run_reverse(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_REVERSE, /* points 0: all that is left */
        .partner = a->v[OPT_PARTNER],
        .of_txn = a->v[OPT_OF],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .points = a->points,
    };
    return submit_txn(cli, &t);
}

static int run_transfer(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_TRANSFER,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_FROM],
        .member_to = a->v[OPT_TO],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .points = a->points,
    };
    return submit_txn(cli, &t);
}

static int run_balance(struct cli *cli, const struct args *a)
{
    const char *member = a->v[OPT_MEMBER];
    struct coalition_balance b;
    coalition_client_set_consistent(cli->client, a->v[OPT_CONSISTENT] != NULL);
    int rv = coalition_client_balance(cli->client, member, &b);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "member", jstr(member));
        json_object_set_new(obj, "points", jint(b.points));
        json_object_set_new(obj, "as_of_seq", juint(b.as_of_seq));
        json_print(obj);
    } else {
        printf("member %s: %" PRId64 " points (as of seq %" PRIu64 ")\n", member, b.points,
               b.as_of_seq);
    }
    return EXIT_OK;
}

enum { HIST_COLS = 8, HIST_CELL = 32 };

/* The cells of one history row; numbers are formatted into `buf`. */
static void history_row(const struct coalition_history_item *it, char buf[2][HIST_CELL],
                        const char *cells[HIST_COLS])
{
    snprintf(buf[0], HIST_CELL, "%" PRIu64, it->seq);
    format_time(it->time_ms, buf[1]);
    cells[0] = buf[0];
    cells[1] = buf[1];
    cells[2] = coalition_txn_kind_name(it->kind);
    cells[3] = or_dash(it->partner);
    cells[4] = or_dash(it->txn_id);
    cells[5] = NULL; /* delta: printed as a signed number */
    cells[6] = or_dash(it->counterparty);
    cells[7] = or_dash(it->reason);
}

static void history_print_table(const struct coalition_history *h)
{
    static const char *const heads[HIST_COLS] = {"SEQ", "TIME (UTC)", "KIND",         "PARTNER",
                                                 "TXN", "DELTA",      "COUNTERPARTY", "REASON"};
    int width[HIST_COLS];
    for (size_t c = 0; c < HIST_COLS; c++) {
        width[c] = (int)strlen(heads[c]);
    }
    for (size_t i = 0; i < h->len; i++) {
        char buf[2][HIST_CELL];
        const char *cells[HIST_COLS];
        history_row(&h->items[i], buf, cells);
        char delta[HIST_CELL];
        int dlen = snprintf(delta, sizeof(delta), "%+" PRId64, h->items[i].delta);
        if (dlen > width[5]) {
            width[5] = dlen;
        }
        for (size_t c = 0; c < HIST_COLS - 1; c++) {
            int len = cells[c] != NULL ? (int)strlen(cells[c]) : 0;
            if (len > width[c]) {
                width[c] = len;
            }
        }
    }
    /* seq and delta right-aligned, the rest left; the last column unpadded. */
    printf("%*s  %-*s  %-*s  %-*s  %-*s  %*s  %-*s  %s\n", width[0], heads[0], width[1], heads[1],
           width[2], heads[2], width[3], heads[3], width[4], heads[4], width[5], heads[5], width[6],
           heads[6], heads[7]);
    for (size_t i = 0; i < h->len; i++) {
        char buf[2][HIST_CELL];
        const char *cells[HIST_COLS];
        history_row(&h->items[i], buf, cells);
        printf("%*s  %-*s  %-*s  %-*s  %-*s  %+*" PRId64 "  %-*s  %s\n", width[0], cells[0],
               width[1], cells[1], width[2], cells[2], width[3], cells[3], width[4], cells[4],
               width[5], h->items[i].delta, width[6], cells[6], cells[7]);
    }
}
static int run_history(struct cli *cli, const struct args *a)
{
    const char *member = a->v[OPT_MEMBER];
    struct coalition_history h;
    coalition_client_set_consistent(cli->client, a->v[OPT_CONSISTENT] != NULL);
    int rv = coalition_client_history(cli->client, member, a->limit, &h);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    if (cli->json) {
        json_t *obj = json_object();
        json_t *items = json_array();
        json_object_set_new(obj, "member", jstr(member));
        for (size_t i = 0; i < h.len; i++) {
            const struct coalition_history_item *it = &h.items[i];
            json_t *o = json_object();
            json_object_set_new(o, "seq", juint(it->seq));
            json_object_set_new(o, "time_ms", juint(it->time_ms));
            json_object_set_new(o, "kind", json_string(coalition_txn_kind_name(it->kind)));
            json_object_set_new(o, "partner", jstr(it->partner));
            json_object_set_new(o, "txn", jstr(it->txn_id));
            json_object_set_new(o, "delta", jint(it->delta));
            json_object_set_new(o, "counterparty", jstr(it->counterparty));
            json_object_set_new(o, "reason", jstr(it->reason));
            json_array_append_new(items, o);
        }
        json_object_set_new(obj, "items", items);
        json_print(obj);
    } else if (h.len == 0) {
        printf("member %s: no entries\n", member);
    } else {
        history_print_table(&h);
    }
    coalition_history_free(&h);
    return EXIT_OK;
}

static int run_verify(struct cli *cli, const struct args *a)
{
    (void)a;
    struct coalition_verify v;
    int rv = coalition_client_verify(cli->client, &v);
    if (rv != 0 && rv != COALITION_E_VERIFY_FAILED) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    bool ok = rv == 0;
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "ok", json_boolean(ok));
        json_object_set_new(obj, "entries_checked", juint(v.entries_checked));
        json_object_set_new(obj, "accounts_checked", juint(v.accounts_checked));
        json_object_set_new(obj, "head_hash", jhash(v.head_hash));
        json_object_set_new(obj, "state_digest", jhash(v.state_digest));
        json_object_set_new(obj, "broken_seq", juint(v.broken_seq));
        if (!ok) {
            json_object_set_new(obj, "error", json_error_object(rv, error_message(cli, rv)));
        }
        json_print(obj);
        return ok ? EXIT_OK : EXIT_REJECTED;
    }
    char head[CLI_HEX_LEN];
    char digest[CLI_HEX_LEN];
    coalition_hash_hex(v.head_hash, head);
    coalition_hash_hex(v.state_digest, digest);
    if (ok) {
        printf("ok: ledger verified\n");
    } else {
        printf("FAILED: first broken entry seq %" PRIu64 "\n", v.broken_seq);
    }
    printf("entries checked:  %" PRIu64 "\n", v.entries_checked);
    printf("accounts checked: %" PRIu64 "\n", v.accounts_checked);
    printf("head hash:        %s\n", head);
    printf("state digest:     %s\n", digest);
    if (!ok) {
        fflush(stdout);
        return report_error(cli, rv, error_message(cli, rv));
    }
    return EXIT_OK;
}

/* ------------------------------------------------------------------------
 * Cluster commands: ask the node for the raft configuration, then ask every
 * node in it directly. */

static int64_t mono_ms(void)
{
    struct timespec ts;
    int rv = clock_gettime(CLOCK_MONOTONIC, &ts);
    assert(rv == 0);
    (void)rv;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* One node of the configuration as seen from here. */
struct probe {
    const struct coalition_cluster_node *cfg; /* borrowed from the cluster */
    struct coalition_client *client;          /* short-timeout client, or NULL */
    bool answered;                            /* the last status call succeeded */
    int code;                                 /* else its error */
    char errmsg[320];
    struct coalition_status st; /* valid when answered */
    /* cluster check only */
    bool compared; /* a replicating node with a client address */
    bool verified; /* v is valid */
    struct coalition_verify v;
};

/* Records a failed call to the probe's node. */
static void probe_fail(struct probe *p, int code, const char *msg)
{
    assert(code != 0);
    p->answered = false;
    p->code = code;
    snprintf(p->errmsg, sizeof(p->errmsg), "%s", msg);
}

/* The message of a failed call on `c` (NULL: its creation failed). */
static void call_error(struct probe *p, const struct coalition_client *c, int code)
{
    const char *m = c != NULL ? coalition_client_errmsg(c) : "";
    char msg[320];
    if (m[0] == '\0') {
        snprintf(msg, sizeof(msg), "%s (%s)", coalition_strerror(code), p->cfg->client_addr);
        m = msg;
    }
    probe_fail(p, code, m);
}

/* Asks the probe's node for its status (connecting first if needed).
 * Returns true if it answered as the node it should be. */
static bool probe_status(struct probe *p, int timeout_ms)
{
    if (p->cfg->client_addr[0] == '\0') {
        probe_fail(p, COALITION_E_UNREACHABLE, "no client address announced");
        return false;
    }
    if (p->client == NULL) {
        int rv = coalition_client_create(p->cfg->client_addr, timeout_ms, &p->client);
        if (rv != 0) {
            p->client = NULL;
            call_error(p, NULL, rv);
            return false;
        }
    }
    int rv = coalition_client_status(p->client, &p->st);
    if (rv != 0) {
        call_error(p, p->client, rv);
        return false;
    }
    if (p->st.node_id != p->cfg->id) {
        char msg[320];
        snprintf(msg, sizeof(msg), "%s answers as node %" PRIu64, p->cfg->client_addr,
                 p->st.node_id);
        probe_fail(p, COALITION_E_INVALID_ARGUMENT, msg);
        return false;
    }
    p->answered = true;
    p->code = 0;
    p->errmsg[0] = '\0';
    return true;
}

static void probes_destroy(struct probe *probes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        coalition_client_destroy(probes[i].client);
    }
    free(probes);
}

/* The timeout for one call to one node of the cluster. */
static int node_timeout_ms(const struct cli *cli)
{
    return cli->timeout_ms > 0 ? cli->timeout_ms : CLI_NODE_TIMEOUT_MS_DEFAULT;
}

/* The leader's view of the configuration, if `cl` (from a follower) names
 * a leader with a client address that answers; else `cl` stays as it is.  A
 * follower's view can be stale: a node removed from the configuration never
 * hears of it and still lists itself. */
static void cluster_fetch_leader(const struct cli *cli, struct coalition_cluster *cl)
{
    if (cl->leader_id == 0 || cl->leader_id == cl->node_id) {
        return;
    }
    const char *addr = NULL;
    for (size_t i = 0; i < cl->len; i++) {
        if (cl->nodes[i].id == cl->leader_id && cl->nodes[i].client_addr[0] != '\0') {
            addr = cl->nodes[i].client_addr;
        }
    }
    struct coalition_client *c = NULL;
    if (addr == NULL || coalition_client_create(addr, node_timeout_ms(cli), &c) != 0) {
        return;
    }
    struct coalition_cluster lc;
    if (coalition_client_cluster_status(c, &lc) == 0) {
        if (lc.node_id == lc.leader_id) {
            coalition_cluster_free(cl);
            *cl = lc;
        } else {
            coalition_cluster_free(&lc); /* no longer the leader: keep the first view */
        }
    }
    coalition_client_destroy(c);
}

/* Gets the configuration (the leader's view when the node we are connected
 * to knows the leader, else that node's own) and makes one (unconnected)
 * probe per node.  Returns EXIT_OK or the exit status of the error it
 * reported. */
static int cluster_fetch(struct cli *cli, struct coalition_cluster *cl, struct probe **probes)
{
    int rv = coalition_client_cluster_status(cli->client, cl);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    cluster_fetch_leader(cli, cl);
    *probes = calloc(cl->len > 0 ? cl->len : 1, sizeof(**probes));
    if (*probes == NULL) {
        coalition_cluster_free(cl);
        return report_error(cli, COALITION_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < cl->len; i++) {
        (*probes)[i].cfg = &cl->nodes[i];
    }
    return EXIT_OK;
}

static const char *role_name(enum coalition_role role)
{
    const char *name = coalition_role_name(role);
    return name != NULL ? name : "unknown";
}

/* What the table shows as the node's state. */
static const char *probe_state(const struct probe *p)
{
    if (p->answered) {
        return p->st.role;
    }
    if (p->cfg->client_addr[0] == '\0') {
        return "unknown";
    }
    return p->code == COALITION_E_UNREACHABLE || p->code == COALITION_E_TIMEOUT ? "unreachable"
                                                                                : "error";
}

/* The leader: as the asked node knows it, else as a node says of itself. */
static uint64_t cluster_leader(const struct coalition_cluster *cl, const struct probe *probes)
{
    if (cl->leader_id != 0) {
        return cl->leader_id;
    }
    for (size_t i = 0; i < cl->len; i++) {
        if (probes[i].answered && strcmp(probes[i].st.role, "leader") == 0) {
            return probes[i].cfg->id;
        }
    }
    return 0;
}

enum { CL_COLS = 8, CL_CELL = 32 };

static void cluster_row(const struct probe *p, uint64_t leader_id, char num[3][CL_CELL],
                        const char *cells[CL_COLS])
{
    snprintf(num[0], CL_CELL, "%" PRIu64, p->cfg->id);
    snprintf(num[1], CL_CELL, "%" PRIu64, p->st.applied_index);
    snprintf(num[2], CL_CELL, "%" PRIu64, p->st.applied_seq);
    cells[0] = num[0];
    cells[1] = or_dash(p->cfg->raft_addr);
    cells[2] = or_dash(p->cfg->client_addr);
    cells[3] = role_name(p->cfg->role);
    cells[4] = probe_state(p);
    cells[5] = p->answered ? num[1] : "-";
    cells[6] = p->answered ? num[2] : "-";
    cells[7] = p->cfg->id == leader_id ? "*" : "";
}

static void cluster_print_table(const struct coalition_cluster *cl, const struct probe *probes,
                                uint64_t leader_id)
{
    static const char *const heads[CL_COLS] = {"ID",          "RAFT ADDRESS", "CLIENT ADDRESS",
                                               "ROLE",        "STATE",        "APPLIED INDEX",
                                               "APPLIED SEQ", "LEADER"};
    int width[CL_COLS];
    for (size_t c = 0; c < CL_COLS; c++) {
        width[c] = (int)strlen(heads[c]);
    }
    for (size_t i = 0; i < cl->len; i++) {
        char num[3][CL_CELL];
        const char *cells[CL_COLS];
        cluster_row(&probes[i], leader_id, num, cells);
        for (size_t c = 0; c < CL_COLS; c++) {
            int len = (int)strlen(cells[c]);
            if (len > width[c]) {
                width[c] = len;
            }
        }
    }
    if (leader_id != 0) {
        printf("leader: node %" PRIu64 " (as seen by node %" PRIu64 ")\n", leader_id, cl->node_id);
    } else {
        printf("leader: none known (as seen by node %" PRIu64 ")\n", cl->node_id);
    }
    /* Numbers right-aligned, the rest left; the last column unpadded. */
    printf("%*s  %-*s  %-*s  %-*s  %-*s  %*s  %*s  %s\n", width[0], heads[0], width[1], heads[1],
           width[2], heads[2], width[3], heads[3], width[4], heads[4], width[5], heads[5], width[6],
           heads[6], heads[7]);
    for (size_t i = 0; i < cl->len; i++) {
        char num[3][CL_CELL];
        const char *cells[CL_COLS];
        cluster_row(&probes[i], leader_id, num, cells);
        printf("%*s  %-*s  %-*s  %-*s  %-*s  %*s  %*s%s%s\n", width[0], cells[0], width[1],
               cells[1], width[2], cells[2], width[3], cells[3], width[4], cells[4], width[5],
               cells[5], width[6], cells[6], cells[7][0] != '\0' ? "  " : "", cells[7]);
    }
    for (size_t i = 0; i < cl->len; i++) {
        if (!probes[i].answered) {
            printf("node %" PRIu64 ": %s\n", probes[i].cfg->id, probes[i].errmsg);
        }
    }
}

static int run_cluster_status(struct cli *cli, const struct args *a)
{
    (void)a;
    struct coalition_cluster cl;
    struct probe *probes = NULL;
    int rv = cluster_fetch(cli, &cl, &probes);
    if (rv != EXIT_OK) {
        return rv;
    }
    for (size_t i = 0; i < cl.len; i++) {
        (void)probe_status(&probes[i], node_timeout_ms(cli));
    }
    uint64_t leader_id = cluster_leader(&cl, probes);
    if (cli->json) {
        json_t *obj = json_object();
        json_t *nodes = json_array();
        json_object_set_new(obj, "leader_id", juint(leader_id));
        json_object_set_new(obj, "node_id", juint(cl.node_id));
        for (size_t i = 0; i < cl.len; i++) {
            const struct probe *p = &probes[i];
            json_t *o = json_object();
            json_object_set_new(o, "id", juint(p->cfg->id));
            json_object_set_new(o, "raft_addr", jstr(p->cfg->raft_addr));
            json_object_set_new(o, "client_addr", jstr(p->cfg->client_addr));
            json_object_set_new(o, "role", jstr(role_name(p->cfg->role)));
            json_object_set_new(o, "state", jstr(probe_state(p)));
            json_object_set_new(o, "applied_index",
                                p->answered ? juint(p->st.applied_index) : json_null());
            json_object_set_new(o, "applied_seq",
                                p->answered ? juint(p->st.applied_seq) : json_null());
            json_object_set_new(o, "reachable", json_boolean(p->answered));
            if (!p->answered) {
                json_object_set_new(o, "error", jstr(p->errmsg));
            }
            json_array_append_new(nodes, o);
        }
        json_object_set_new(obj, "nodes", nodes);
        json_print(obj);
    } else {
        cluster_print_table(&cl, probes, leader_id);
    }
    probes_destroy(probes, cl.len);
    coalition_cluster_free(&cl);
    return EXIT_OK;
}

/* Where the nodes of a check disagree. */
struct differ {
    bool found;
    uint64_t node; /* the first node that is not with the majority */
    uint64_t seq;  /* the first entry where it differs (or where it was seen) */
    char why[160];
};

/* Index of the probe whose key (`len` bytes from `key`) most of the compared
 * nodes that answered share; ties go to the earlier node.  Returns n if no
 * compared node answered. */
static size_t majority(const struct probe *probes, size_t n,
                       const uint8_t *(*key)(const struct probe *), size_t len)
{
    size_t best = n;
    size_t best_votes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!probes[i].compared || !probes[i].answered) {
            continue;
        }
        size_t votes = 0;
        for (size_t j = 0; j < n; j++) {
            if (probes[j].compared && probes[j].answered &&
                memcmp(key(&probes[i]), key(&probes[j]), len) == 0) {
                votes++;
            }
        }
        if (votes > best_votes) {
            best = i;
            best_votes = votes;
        }
    }
    return best;
}

/* Check keys: the verify report (entries checked, head, digest) and the
 * entry hash at the compared seq (kept in v.head_hash in fallback mode). */
static const uint8_t *key_verify(const struct probe *p)
{
    return (const uint8_t *)&p->v;
}

static const uint8_t *key_head(const struct probe *p)
{
    return p->v.head_hash;
}

/* Finds the first entry in [1, hi] where node a's chain differs from node
 * b's, knowing that they differ at hi.  Equal hashes at s mean equal entries
 * up to s, so a bisection suffices.  Returns hi if a call fails. */
static uint64_t first_differing_seq(struct probe *a, struct probe *b, uint64_t hi)
{
    assert(hi >= 1);
    uint64_t lo = 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint8_t ha[COALITION_HASH_LEN];
        uint8_t hb[COALITION_HASH_LEN];
        if (coalition_client_entry_hash(a->client, mid, ha) != 0 ||
            coalition_client_entry_hash(b->client, mid, hb) != 0) {
            return hi;
        }
        if (memcmp(ha, hb, sizeof(ha)) != 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return hi;
}

/* Asks every compared node for a full verification, on a connection with
 * the verification timeout.  A node whose ledger fails it differs at its
 * broken entry. */
static void check_verify(struct cli *cli, struct probe *probes, size_t n, struct differ *d)
{
    int timeout_ms = cli->timeout_ms > 0 ? cli->timeout_ms : CLI_VERIFY_TIMEOUT_MS_DEFAULT;
    for (size_t i = 0; i < n; i++) {
        struct probe *p = &probes[i];
        if (!p->compared || !p->answered) {
            continue;
        }
        struct coalition_client *c = NULL;
        int rv = coalition_client_create(p->cfg->client_addr, timeout_ms, &c);
        if (rv != 0) {
            call_error(p, NULL, rv);
            continue;
        }
        memset(&p->v, 0, sizeof(p->v));
        rv = coalition_client_verify(c, &p->v);
        if (rv == COALITION_E_VERIFY_FAILED && !d->found) {
            d->found = true;
            d->node = p->cfg->id;
            d->seq = p->v.broken_seq;
            snprintf(d->why, sizeof(d->why), "its ledger fails verification: %s",
                     coalition_client_errmsg(c));
        } else if (rv != 0 && rv != COALITION_E_VERIFY_FAILED) {
            call_error(p, c, rv);
        } else {
            p->verified = rv == 0;
        }
        coalition_client_destroy(c);
    }
}

/* Compares the verify reports of the compared nodes.  Returns false if they
 * were taken at different points of the log (the nodes kept applying), so
 * that they cannot be compared. */
static bool check_compare_verify(struct probe *probes, size_t n, struct differ *d)
{
    uint64_t entries = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        const struct probe *p = &probes[i];
        if (p->compared && p->answered) {
            if (!first && p->v.entries_checked != entries) {
                return false;
            }
            entries = p->v.entries_checked;
            first = false;
        }
    }
    size_t m = majority(probes, n, key_verify, sizeof(probes[0].v));
    for (size_t i = 0; i < n && m < n && !d->found; i++) {
        struct probe *p = &probes[i];
        if (!p->compared || !p->answered || memcmp(&p->v, &probes[m].v, sizeof(p->v)) == 0) {
            continue;
        }
        d->found = true;
        d->node = p->cfg->id;
        if (memcmp(p->v.head_hash, probes[m].v.head_hash, COALITION_HASH_LEN) != 0 && entries > 0) {
            d->seq = first_differing_seq(p, &probes[m], entries);
            snprintf(d->why, sizeof(d->why), "its entry differs from node %" PRIu64 "'s",
                     probes[m].cfg->id);
        } else {
            d->seq = entries;
            snprintf(d->why, sizeof(d->why),
                     "same entries as node %" PRIu64 " but a different state digest",
                     probes[m].cfg->id);
        }
    }
    return true;
}

/* Compares the hash of entry `seq` on every compared node (kept in
 * v.head_hash). */
static void check_compare_entry(struct probe *probes, size_t n, uint64_t seq, struct differ *d)
{
    for (size_t i = 0; i < n; i++) {
        struct probe *p = &probes[i];
        p->verified = false;
        memset(&p->v, 0, sizeof(p->v));
        if (!p->compared || !p->answered || seq == 0) {
            continue;
        }
        int rv = coalition_client_entry_hash(p->client, seq, p->v.head_hash);
        if (rv != 0) {
            call_error(p, p->client, rv);
        }
    }
    if (seq == 0) {
        return;
    }
    size_t m = majority(probes, n, key_head, COALITION_HASH_LEN);
    for (size_t i = 0; i < n && m < n && !d->found; i++) {
        struct probe *p = &probes[i];
        if (!p->compared || !p->answered ||
            memcmp(p->v.head_hash, probes[m].v.head_hash, COALITION_HASH_LEN) == 0) {
            continue;
        }
        d->found = true;
        d->node = p->cfg->id;
        d->seq = first_differing_seq(p, &probes[m], seq);
        snprintf(d->why, sizeof(d->why), "its entry differs from node %" PRIu64 "'s",
                 probes[m].cfg->id);
    }
}

/* Marks the nodes that are compared: a spare does not replicate the log, it
 * has nothing to compare. */
static void check_mark_compared(struct probe *probes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        probes[i].compared = probes[i].cfg->role != COALITION_ROLE_SPARE;
    }
}

/* Reads the configuration again (as cluster_fetch does), so that a node
 * that announced its client address since is asked too, and rebuilds the
 * probes on it, keeping the connection of a node whose client address did
 * not change.  Keeps `cl` and `probes` as they are if the configuration
 * cannot be read now. */
static void check_refetch(const struct cli *cli, struct coalition_cluster *cl,
                          struct probe **probes)
{
    struct coalition_cluster nc;
    if (coalition_client_cluster_status(cli->client, &nc) != 0) {
        return;
    }
    cluster_fetch_leader(cli, &nc);
    struct probe *np = calloc(nc.len > 0 ? nc.len : 1, sizeof(*np));
    if (np == NULL) {
        coalition_cluster_free(&nc);
        return;
    }
    struct probe *op = *probes;
    for (size_t i = 0; i < nc.len; i++) {
        np[i].cfg = &nc.nodes[i];
        for (size_t j = 0; j < cl->len; j++) {
            if (op[j].client != NULL && op[j].cfg->id == nc.nodes[i].id &&
                strcmp(op[j].cfg->client_addr, nc.nodes[i].client_addr) == 0) {
                np[i].client = op[j].client;
                op[j].client = NULL;
                break;
            }
        }
    }
    check_mark_compared(np, nc.len);
    probes_destroy(op, cl->len);
    coalition_cluster_free(cl);
    *cl = nc;
    *probes = np;
}

/* Polls the nodes, every CLI_CHECK_POLL_MS for up to wait_s seconds, until
 * every compared node answers and all are at one applied index.  A node
 * that cannot be reached or has not announced its client address is
 * usually restarting, or waiting for an election: the configuration is read
 * again before each new poll, to learn addresses announced since.  Returns
 * true if the compared nodes that answered (all of them, unless the time
 * ran out) are at one applied index. */
static bool check_poll(const struct cli *cli, struct coalition_cluster *cl, struct probe **probes,
                       uint32_t wait_s)
{
    int64_t deadline_ms = mono_ms() + (int64_t)wait_s * 1000;
    for (;;) {
        size_t n = cl->len;
        size_t answered = 0;
        size_t missing = 0;
        bool same = true;
        uint64_t index = 0;
        for (size_t i = 0; i < n; i++) {
            struct probe *p = &(*probes)[i];
            /* Spares are asked too, to show whether they answer. */
            bool ok = probe_status(p, node_timeout_ms(cli));
            if (!p->compared) {
                continue;
            }
            if (!ok) {
                missing++;
                continue;
            }
            if (answered > 0 && p->st.applied_index != index) {
                same = false;
            }
            index = p->st.applied_index;
            answered++;
        }
        if (missing == 0 && (answered == 0 || same)) {
            return answered > 0;
        }
        if (mono_ms() + CLI_CHECK_POLL_MS > deadline_ms) {
            return answered > 0 && same;
        }
        sleep_ms(CLI_CHECK_POLL_MS);
        check_refetch(cli, cl, probes);
    }
}

static int run_cluster_check(struct cli *cli, const struct args *a)
{
    struct coalition_cluster cl;
    struct probe *probes = NULL;
    int rv = cluster_fetch(cli, &cl, &probes);
    if (rv != EXIT_OK) {
        return rv;
    }
    check_mark_compared(probes, cl.len);
    bool converged = check_poll(cli, &cl, &probes, a->wait_s);
    size_t n = cl.len;
    struct differ d = {.found = false};
    bool by_verify = false;
    if (converged) {
        check_verify(cli, probes, n, &d);
        by_verify = d.found || check_compare_verify(probes, n, &d);
    }
    /* Not converged (or moved on while verifying): compare the chains at the
     * last entry that every node has. */
    uint64_t seq = 0;
    bool have_seq = false;
    for (size_t i = 0; i < n; i++) {
        const struct probe *p = &probes[i];
        if (p->compared && p->answered && (!have_seq || p->st.applied_seq < seq)) {
            seq = p->st.applied_seq;
            have_seq = true;
        }
    }
    if (!by_verify) {
        check_compare_entry(probes, n, seq, &d);
    }

    size_t agreeing = 0;
    size_t missing = 0;
    const struct probe *ref = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct probe *p = &probes[i];
        if (!p->compared) {
            continue;
        }
        if (p->answered) {
            agreeing++;
            if (ref == NULL || (d.found && ref->cfg->id == d.node)) {
                ref = p;
            }
        } else {
            missing++;
        }
    }
    if (by_verify && ref != NULL) {
        seq = ref->v.entries_checked;
    }
    bool agree = !d.found && agreeing > 0;
    char head[CLI_HEX_LEN] = "";
    char digest[CLI_HEX_LEN] = "";
    if (ref != NULL) {
        coalition_hash_hex(ref->v.head_hash, head);
        coalition_hash_hex(ref->v.state_digest, digest);
    }
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "agree", json_boolean(agree));
        json_object_set_new(obj, "index",
                            by_verify && ref != NULL ? juint(ref->st.applied_index) : json_null());
        json_object_set_new(obj, "seq", juint(seq));
        json_object_set_new(obj, "head_hash", agree && seq > 0 ? jstr(head) : json_null());
        json_object_set_new(obj, "state_digest", agree && by_verify ? jstr(digest) : json_null());
        json_t *nodes = json_array();
        for (size_t i = 0; i < n; i++) {
            const struct probe *p = &probes[i];
            json_t *o = json_object();
            json_object_set_new(o, "id", juint(p->cfg->id));
            json_object_set_new(o, "role", jstr(role_name(p->cfg->role)));
            json_object_set_new(o, "compared", json_boolean(p->compared));
            json_object_set_new(o, "reachable", json_boolean(p->answered));
            json_object_set_new(o, "applied_index",
                                p->answered ? juint(p->st.applied_index) : json_null());
            json_object_set_new(o, "applied_seq",
                                p->answered ? juint(p->st.applied_seq) : json_null());
            bool hashed = p->compared && p->answered && seq > 0;
            json_object_set_new(o, "head_hash", hashed ? jhash(p->v.head_hash) : json_null());
            json_object_set_new(o, "state_digest",
                                hashed && by_verify ? jhash(p->v.state_digest) : json_null());
            if (!p->answered) {
                json_object_set_new(o, "error", jstr(p->errmsg));
            }
            json_array_append_new(nodes, o);
        }
        json_object_set_new(obj, "nodes", nodes);
        if (d.found) {
            json_t *o = json_object();
            json_object_set_new(o, "node", juint(d.node));
            json_object_set_new(o, "seq", juint(d.seq));
            json_object_set_new(o, "reason", jstr(d.why));
            json_object_set_new(obj, "differ", o);
        } else {
            json_object_set_new(obj, "differ", json_null());
        }
        json_print(obj);
    } else {
        if (d.found) {
            const struct probe *p = NULL;
            for (size_t i = 0; i < n; i++) {
                if (probes[i].cfg->id == d.node) {
                    p = &probes[i];
                }
            }
            assert(p != NULL);
            printf("differ: node %" PRIu64 " at seq %" PRIu64 " (its applied index %" PRIu64
                   ", seq %" PRIu64 "): %s\n",
                   d.node, d.seq, p->st.applied_index, p->st.applied_seq, d.why);
        } else if (agreeing > 0 && by_verify) {
            printf("agree: %zu node%s at index %" PRIu64 ", seq %" PRIu64 ", head %s, digest %s\n",
                   agreeing, agreeing == 1 ? "" : "s", ref->st.applied_index, seq, head, digest);
        } else if (agreeing > 0) {
            printf("agree: %zu node%s at seq %" PRIu64 ", head %s (applied indexes did not "
                   "converge in %" PRIu32 " s: compared entry hashes, not state digests)\n",
                   agreeing, agreeing == 1 ? "" : "s", seq, seq > 0 ? head : "-", a->wait_s);
        } else {
            printf("no node answered\n");
        }
        for (size_t i = 0; i < n; i++) {
            const struct probe *p = &probes[i];
            if (!p->compared) {
                printf("not compared: node %" PRIu64 " (spare: it holds no log)\n", p->cfg->id);
            } else if (!p->answered) {
                printf("%s: node %" PRIu64 " (%s): %s\n",
                       p->cfg->client_addr[0] == '\0' ? "no client address" : "unreachable",
                       p->cfg->id, or_dash(p->cfg->client_addr), p->errmsg);
            }
        }
    }
    probes_destroy(probes, n);
    coalition_cluster_free(&cl);
    if (d.found) {
        return EXIT_REJECTED;
    }
    return missing > 0 || agreeing == 0 ? EXIT_UNREACHABLE : EXIT_OK;
}

/* Sends one membership change and prints "ok" once the leader made it. */
static int cluster_change(struct cli *cli, enum coalition_cluster_op op, const struct args *a)
{
    int rv = coalition_client_cluster_change(cli->client, op, a->node_id, a->v[OPT_RAFT],
                                             a->v[OPT_CLIENT], a->role);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    static const char *const op_names[] = {
        [COALITION_CLUSTER_ADD] = "add",
        [COALITION_CLUSTER_ASSIGN] = "assign",
        [COALITION_CLUSTER_REMOVE] = "remove",
        [COALITION_CLUSTER_JOIN] = "join",
    };
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "ok", json_true());
        json_object_set_new(obj, "op", json_string(op_names[op]));
        json_object_set_new(obj, "id", juint(a->node_id));
        if (op != COALITION_CLUSTER_REMOVE) {
            json_object_set_new(obj, "role", json_string(role_name(a->role)));
        }
        json_print(obj);
    } else {
        printf("ok\n");
    }
    return EXIT_OK;
}

static int run_cluster_add(struct cli *cli, const struct args *a)
{
    return cluster_change(cli, COALITION_CLUSTER_ADD, a);
}

static int run_cluster_assign(struct cli *cli, const struct args *a)
{
    return cluster_change(cli, COALITION_CLUSTER_ASSIGN, a);
}

static int run_cluster_remove(struct cli *cli, const struct args *a)
{
    return cluster_change(cli, COALITION_CLUSTER_REMOVE, a);
}

#define WRITE_OPTS (BIT(OPT_PARTNER) | BIT(OPT_TXN))

static const struct command commands[] = {
    {"status", NULL, 0, 0, run_status, "status",
     "Shows the node: id, raft state (leader, follower, candidate, unavailable),\n"
     "membership (voter, standby, spare, none), the leader it knows, applied\n"
     "sequence and index, last log index, chain head hash.\n"},
    {"partner", "add", BIT(OPT_ID) | BIT(OPT_NAME) | BIT(OPT_TXN), BIT(OPT_ID) | BIT(OPT_NAME),
     run_partner_add, "partner add --id P --name NAME [--txn ID]",
     "Admits partner P to the coalition.  --txn defaults to P, so repeating the\n"
     "same command is answered as a duplicate.\n"},
    {"member", "add", BIT(OPT_ID) | BIT(OPT_CARD) | BIT(OPT_TXN) | BIT(OPT_PARTNER), BIT(OPT_ID),
     run_member_add, "member add --id M [--card CARD] [--partner P] [--txn ID]",
     "Enrolls member M, optionally with a card number.  --partner names the\n"
     "enrolling partner; --txn defaults to M.\n"},
    {"award", NULL, WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS), run_award,
     "award --partner P --member M --points N --txn ID [--reason TEXT]",
     "Partner P awards N points to member M.  Retrying with the same --txn is\n"
     "safe: the node answers with the original sequence number.\n"},
    {"redeem", NULL, WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS), run_redeem,
     "redeem --partner P --member M --points N --txn ID [--reason TEXT]",
     "Member M spends N points at partner P.\n"},
    {"reverse", NULL, WRITE_OPTS | BIT(OPT_OF) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_OF), run_reverse,
     "reverse --partner P --of TXN --txn ID [--points N] [--reason TEXT]",
     "Partner P reverses its own award or redemption TXN (a refund).  Without\n"
     "--points, all that is left of TXN is reversed.\n"},
    {"transfer", NULL, WRITE_OPTS | BIT(OPT_FROM) | BIT(OPT_TO) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_FROM) | BIT(OPT_TO) | BIT(OPT_POINTS), run_transfer,
     "transfer --partner P --from M1 --to M2 --points N --txn ID [--reason TEXT]",
     "Member M1 gives N points to member M2, submitted by partner P.\n"},
    {"balance", NULL, BIT(OPT_MEMBER) | BIT(OPT_CONSISTENT), BIT(OPT_MEMBER), run_balance,
     "balance --member M [--consistent]",
     "Shows the points member M can spend.  The node asked answers from its own\n"
     "state, which may lag the leader; with --consistent the leader answers\n"
     "after a raft barrier (a follower forwards the read), so every write\n"
     "acknowledged before is seen.\n"},
    {"history", NULL, BIT(OPT_MEMBER) | BIT(OPT_LIMIT) | BIT(OPT_CONSISTENT), BIT(OPT_MEMBER),
     run_history, "history --member M [--limit N] [--consistent]",
     "Lists the entries that touched member M, newest first (default 20, at\n"
     "most 1000).  --consistent as for balance.\n"},
    {"verify", NULL, 0, 0, run_verify, "verify",
     "Asks the node to replay and check its whole ledger: hash chain, double\n"
     "entry, balances.  Exit status 1 if it finds a broken entry.\n"},
    {"cluster", "status", 0, 0, run_cluster_status, "cluster status",
     "Asks the node for the raft configuration (the leader's, if the node knows\n"
     "the leader), then every node with a client address for its status (1 s\n"
     "each unless --timeout-ms is given): id, addresses, role (voter, standby,\n"
     "spare), state (leader, follower, candidate, unavailable, or\n"
     "unreachable), applied index and sequence.\n"},
    {"cluster", "check", BIT(OPT_WAIT_S), 0, run_cluster_check, "cluster check [--wait-s S]",
     "Checks that the nodes of the configuration hold the same ledger.  Polls\n"
     "every node until they report one applied index (up to S seconds, default\n"
     "10), then compares their verification reports (head hash, state\n"
     "digest); if they never converge, compares the hash of the last entry\n"
     "they all have.  Spares hold no log and are not compared.  Exit status 0\n"
     "if they agree, 1 if a node differs (named, with the first entry where it\n"
     "does), 3 if a node cannot be asked.\n"},
    {"cluster", "add", BIT(OPT_ID) | BIT(OPT_RAFT) | BIT(OPT_CLIENT) | BIT(OPT_ROLE),
     BIT(OPT_ID) | BIT(OPT_RAFT), run_cluster_add,
     "cluster add --id N --raft HOST:PORT [--client HOST:PORT] [--role R]",
     "Adds node N, reachable by its peers at the raft address, with role R\n"
     "(voter, standby or spare; default standby).  The leader makes the change\n"
     "(a follower forwards it); \"ok\" once it is made.\n"},
    {"cluster", "assign", BIT(OPT_ID) | BIT(OPT_ROLE), BIT(OPT_ID) | BIT(OPT_ROLE),
     run_cluster_assign, "cluster assign --id N --role R",
     "Gives node N the role R: voter, standby or spare.\n"},
    {"cluster", "remove", BIT(OPT_ID), BIT(OPT_ID), run_cluster_remove, "cluster remove --id N",
     "Removes node N from the configuration.\n"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name, const char *sub)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0 &&
            (sub == NULL || (commands[i].sub != NULL && strcmp(commands[i].sub, sub) == 0))) {
            return &commands[i];
        }
    }
    return NULL;
}

static void print_main_usage(FILE *out)
{
    fputs("usage: coalition [--node HOST:PORT] [--json] [--timeout-ms N] COMMAND [options]\n"
          "\n"
          "Talks to a coalitiond node (default: $COALITION_NODE, else " COALITION_DEFAULT_NODE
          ").\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(out, "  %s\n", commands[i].synopsis);
    }
    fputs("  help [COMMAND]\n"
          "\n"
          "options:\n"
          "  --node HOST:PORT  node to talk to (a comma-separated list: the first\n"
          "                    that answers)\n"
          "  --json            print exactly one JSON object on stdout\n"
          "  --timeout-ms N    connect and answer timeout (default 5000; verify 60000;\n"
          "                    cluster add/assign/remove 30000; cluster status/check\n"
          "                    1000 for each node they ask)\n"
          "\n"
          "exit status: 0 ok, 1 rejected by the ledger, 2 usage error,\n"
          "             3 node unreachable or no answer in time\n",
          out);
}

static void print_command_help(const struct command *cmd)
{
    printf("usage: coalition [--node HOST:PORT] [--json] [--timeout-ms N] %s\n\n%s", cmd->synopsis,
           cmd->help);
}

/* ------------------------------------------------------------------------
 * Command line */

/* Handles a global option seen anywhere on the line.  Returns 0 or the exit
 * status of a usage error. */
static int global_option(struct cli *cli, const struct command *cmd, int opt, const char *arg)
{
    switch (opt) {
    case GOPT_NODE:
        cli->node = arg;
        return 0;
    case GOPT_JSON:
        cli->json = true;
        return 0;
    case GOPT_TIMEOUT: {
        uint64_t v = 0;
        if (!parse_uint(arg, INT32_MAX, &v) || v == 0) {
            return usage_error(cli, cmd, "--timeout-ms '%s' is not a positive whole number", arg);
        }
        cli->timeout_ms = (int)v;
        return 0;
    }
    default:
        assert(false);
        return EXIT_USAGE;
    }
}

#define GLOBAL_LONG_OPTIONS                                                                        \
    {"node", required_argument, NULL, GOPT_NODE}, {"json", no_argument, NULL, GOPT_JSON},          \
        {"timeout-ms", required_argument, NULL, GOPT_TIMEOUT},                                     \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* The message for getopt's '?' or ':' at argv[optind - 1]. */
static int bad_option(struct cli *cli, const struct command *cmd, int argc, char **argv, int c)
{
    const char *what = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':') {
        return usage_error(cli, cmd, "option '%s' needs a value", what);
    }
    if (optopt != 0 && optopt < 0x100) {
        return usage_error(cli, cmd, "unknown option '-%c'", optopt);
    }
    return usage_error(cli, cmd, "unknown option '%s'", what);
}

/* Parses a command's options from argv (argv[0] is the command word).
 * Returns 0, -1 if help was asked for (printed), or a usage exit status. */
static int parse_command(struct cli *cli, const struct command *cmd, int argc, char **argv,
                         struct args *a)
{
    struct option longopts[OPT_COUNT + 5];
    size_t n = 0;
    for (int i = 0; i < OPT_COUNT; i++) {
        if (cmd->allowed & BIT(i)) {
            int has_arg = (FLAG_OPTS & BIT(i)) ? no_argument : required_argument;
            longopts[n++] = (struct option){opt_names[i], has_arg, NULL, GOPT_CMD_BASE + i};
        }
    }
    const struct option globals[] = {GLOBAL_LONG_OPTIONS, {NULL, 0, NULL, 0}};
    for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++) {
        longopts[n++] = globals[i];
    }
    assert(n <= sizeof(longopts) / sizeof(longopts[0]));

    memset(a, 0, sizeof(*a));
    optind = 0; /* glibc: restart scanning from argv[1] */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            print_command_help(cmd);
            return -1;
        }
        if (c == '?' || c == ':') {
            return bad_option(cli, cmd, argc, argv, c);
        }
        if (c >= GOPT_CMD_BASE && c < GOPT_CMD_BASE + OPT_COUNT) {
            a->v[c - GOPT_CMD_BASE] = optarg != NULL ? optarg : "1";
            continue;
        }
        int rv = global_option(cli, cmd, c, optarg);
        if (rv != 0) {
            return rv;
        }
    }
    if (optind < argc) {
        return usage_error(cli, cmd, "unexpected argument '%s'", argv[optind]);
    }
    for (int i = 0; i < OPT_COUNT; i++) {
        if ((cmd->required & BIT(i)) && a->v[i] == NULL) {
            return usage_error(cli, cmd, "missing --%s", opt_names[i]);
        }
    }
    /* Numbers are checked here, before any connection is made.  Points out
     * of the ledger's range still go to the node, which says why it rejects
     * them; only what is not an int64 at all is a usage error. */
    if (a->v[OPT_POINTS] != NULL && !parse_int64(a->v[OPT_POINTS], &a->points)) {
        return usage_error(cli, cmd, "--points '%s' is not a whole number", a->v[OPT_POINTS]);
    }
    uint64_t limit = 0;
    if (a->v[OPT_LIMIT] != NULL && !parse_uint(a->v[OPT_LIMIT], UINT32_MAX, &limit)) {
        return usage_error(cli, cmd, "--limit '%s' is not a whole number from 0 to %" PRIu32,
                           a->v[OPT_LIMIT], UINT32_MAX);
    }
    a->limit = (uint32_t)limit;
    /* In the cluster commands --id is a raft node id, a positive number. */
    if (strcmp(cmd->name, "cluster") == 0 && a->v[OPT_ID] != NULL &&
        (!parse_uint(a->v[OPT_ID], INT64_MAX, &a->node_id) || a->node_id == 0)) {
        return usage_error(cli, cmd, "--id '%s' is not a node id (a whole number from 1)",
                           a->v[OPT_ID]);
    }
    a->role = COALITION_ROLE_STANDBY;
    if (a->v[OPT_ROLE] != NULL && !coalition_role_parse(a->v[OPT_ROLE], &a->role)) {
        return usage_error(cli, cmd, "--role '%s' is not voter, standby or spare", a->v[OPT_ROLE]);
    }
    uint64_t wait_s = CLI_CHECK_WAIT_S_DEFAULT;
    if (a->v[OPT_WAIT_S] != NULL && !parse_uint(a->v[OPT_WAIT_S], CLI_CHECK_WAIT_S_MAX, &wait_s)) {
        return usage_error(cli, cmd, "--wait-s '%s' is not a whole number from 0 to %d",
                           a->v[OPT_WAIT_S], CLI_CHECK_WAIT_S_MAX);
    }
    a->wait_s = (uint32_t)wait_s;
    return 0;
}

/* The synopses of every command named `name` ("cluster status", ...). */
static void print_family_usage(FILE *out, const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            fprintf(out, "usage: coalition %s\n", commands[i].synopsis);
        }
    }
}

/* `coalition help [COMMAND [SUB]]`. */
static int run_help(struct cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        print_main_usage(stdout);
        return EXIT_OK;
    }
    const struct command *cmd = find_command(argv[1], argc > 2 ? argv[2] : NULL);
    if (cmd == NULL) {
        return usage_error(cli, NULL, "no command '%s'", argv[1]);
    }
    if (cmd->sub != NULL && argc == 2) {
        print_family_usage(stdout, cmd->name);
        return EXIT_OK;
    }
    print_command_help(cmd);
    return EXIT_OK;
}

/* Runs the command at argv[0] with a client connected to the node. */
static int run_command(struct cli *cli, int argc, char **argv)
{
    assert(argc >= 1);
    const char *name = argv[0];
    if (strcmp(name, "help") == 0) {
        return run_help(cli, argc, argv);
    }
    const struct command *cmd = find_command(name, NULL);
    if (cmd == NULL) {
        return usage_error(cli, NULL, "unknown command '%s'", name);
    }
    if (cmd->sub != NULL) {
        /* Two-word command: "partner add". */
        if (argc < 2 || argv[1][0] == '-') {
            if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                print_family_usage(stdout, name);
                return EXIT_OK;
            }
            int rv = usage_error(cli, NULL, "'%s' needs a subcommand", name);
            print_family_usage(stderr, name);
            return rv;
        }
        cmd = find_command(name, argv[1]);
        if (cmd == NULL) {
            return usage_error(cli, NULL, "unknown command '%s %s'", name, argv[1]);
        }
        argc--;
        argv++;
    }
    struct args a;
    int rv = parse_command(cli, cmd, argc, argv, &a);
    if (rv != 0) {
        return rv < 0 ? EXIT_OK : rv;
    }

    int timeout_ms = cli->timeout_ms;
    if (timeout_ms == 0) {
        timeout_ms = CLI_TIMEOUT_MS_DEFAULT;
        if (cmd->run == run_verify) {
            timeout_ms = CLI_VERIFY_TIMEOUT_MS_DEFAULT;
        } else if (cmd->run == run_cluster_add || cmd->run == run_cluster_assign ||
                   cmd->run == run_cluster_remove) {
            timeout_ms = CLI_CLUSTER_CHANGE_TIMEOUT_MS_DEFAULT;
        }
    }
    rv = coalition_client_create(cli->node, timeout_ms, &cli->client);
    if (rv == COALITION_E_INVALID_ARGUMENT) {
        return usage_error(cli, NULL, "--node '%s' is not HOST:PORT", cli->node);
    }
    if (rv != 0) {
        char msg[320];
        snprintf(msg, sizeof(msg), "%s (%s)", coalition_strerror(rv), cli->node);
        return report_error(cli, rv, msg);
    }
    rv = cmd->run(cli, &a);
    coalition_client_destroy(cli->client);
    cli->client = NULL;
    return rv;
}

int main(int argc, char **argv)
{
    struct cli cli = {.node = NULL, .json = false, .timeout_ms = 0, .client = NULL};
    /* Known before anything can fail, so that even a usage error is JSON. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            cli.json = true;
        }
    }
    const char *env_node = getenv("COALITION_NODE");
    cli.node = env_node != NULL && env_node[0] != '\0' ? env_node : COALITION_DEFAULT_NODE;

    static const struct option longopts[] = {GLOBAL_LONG_OPTIONS, {NULL, 0, NULL, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            print_main_usage(stdout);
            return EXIT_OK;
        }
        if (c == '?' || c == ':') {
            return bad_option(&cli, NULL, argc, argv, c);
        }
        int rv = global_option(&cli, NULL, c, optarg);
        if (rv != 0) {
            return rv;
        }
    }
    if (optind >= argc) {
        if (cli.json) {
            return usage_error(&cli, NULL, "no command");
        }
        print_main_usage(stderr);
        return EXIT_USAGE;
    }
    int rv = run_command(&cli, argc - optind, argv + optind);
    fflush(stdout);
    return rv;
}
