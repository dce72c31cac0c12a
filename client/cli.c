/* The `coalition` command-line tool: one libcoalition call per invocation,
 * printed as short human lines or, with --json, as exactly one JSON object on
 * stdout.  Exit status: 0 ok, 1 rejected by the ledger, 2 usage error, 3 node
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
#define CLI_HEX_LEN                   (2 * COALITION_HASH_LEN + 1)

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
    OPT_COUNT
};

#define BIT(i) (1u << (i))

static const char *const opt_names[OPT_COUNT] = {
    [OPT_ID] = "id",         [OPT_NAME] = "name",       [OPT_CARD] = "card",
    [OPT_TXN] = "txn",       [OPT_PARTNER] = "partner", [OPT_MEMBER] = "member",
    [OPT_POINTS] = "points", [OPT_REASON] = "reason",   [OPT_OF] = "of",
    [OPT_FROM] = "from",     [OPT_TO] = "to",           [OPT_LIMIT] = "limit",
};

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

/* Reports a failed call and returns the exit status for it. */
static int report_error(const struct cli *cli, int code, const char *message)
{
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "error", json_error_object(code, message));
        json_print(obj);
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

static const char *kind_name(enum coalition_txn_kind kind)
{
    switch (kind) {
    case COALITION_TXN_PARTNER_ADD:
        return "partner_add";
    case COALITION_TXN_MEMBER_ADD:
        return "member_add";
    case COALITION_TXN_AWARD:
        return "award";
    case COALITION_TXN_REDEEM:
        return "redeem";
    case COALITION_TXN_REVERSE:
        return "reverse";
    case COALITION_TXN_TRANSFER:
        return "transfer";
    }
    return "unknown";
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
        json_print(obj);
    } else {
        char hex[CLI_HEX_LEN];
        coalition_hash_hex(st.head_hash, hex);
        printf("node id:       %" PRIu64 "\n", st.node_id);
        printf("role:          %s\n", st.role);
        printf("applied seq:   %" PRIu64 "\n", st.applied_seq);
        printf("applied index: %" PRIu64 "\n", st.applied_index);
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

/* Empty table cells show as "-" so that columns stay readable. */
static const char *or_dash(const char *s)
{
    return s[0] != '\0' ? s : "-";
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
    cells[2] = kind_name(it->kind);
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
            json_object_set_new(o, "kind", json_string(kind_name(it->kind)));
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

#define WRITE_OPTS (BIT(OPT_PARTNER) | BIT(OPT_TXN))

static const struct command commands[] = {
    {"status", NULL, 0, 0, run_status, "status",
     "Shows the node: id, raft role, applied sequence and index, chain head hash.\n"},
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
    {"balance", NULL, BIT(OPT_MEMBER), BIT(OPT_MEMBER), run_balance, "balance --member M",
     "Shows the points member M can spend.\n"},
    {"history", NULL, BIT(OPT_MEMBER) | BIT(OPT_LIMIT), BIT(OPT_MEMBER), run_history,
     "history --member M [--limit N]",
     "Lists the entries that touched member M, newest first (default 20, at\n"
     "most 1000).\n"},
    {"verify", NULL, 0, 0, run_verify, "verify",
     "Asks the node to replay and check its whole ledger: hash chain, double\n"
     "entry, balances.  Exit status 1 if it finds a broken entry.\n"},
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
          "  --node HOST:PORT  node to talk to\n"
          "  --json            print exactly one JSON object on stdout\n"
          "  --timeout-ms N    connect and answer timeout (default 5000; verify 60000)\n"
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
            longopts[n++] =
                (struct option){opt_names[i], required_argument, NULL, GOPT_CMD_BASE + i};
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
            a->v[c - GOPT_CMD_BASE] = optarg;
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
    return 0;
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
                print_command_help(cmd);
                return EXIT_OK;
            }
            return usage_error(cli, cmd, "'%s' needs a subcommand", name);
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
        timeout_ms =
            cmd->run == run_verify ? CLI_VERIFY_TIMEOUT_MS_DEFAULT : CLI_TIMEOUT_MS_DEFAULT;
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
