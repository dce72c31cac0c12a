/* The `coalition` command-line tool: one libcoalition call per invocation
 * (the `cluster` commands ask every node of the configuration), printed as
 * short human lines or, with --json, as exactly one JSON object on stdout
 * (settlement and report also as CSV).  It also reads program and rules
 * files (JSON) into the library's structs, makes partner key pairs and API
 * keys (proto/auth.h), and signs each write with the key of its partner (or
 * the admin's) from --key-dir.  Exit status: 0 ok, 1 rejected by the ledger,
 * 2 usage error, 3 node unreachable or timed out. */
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
#include <sodium.h>

#include "auth.h"
#include "coalition.h"
#include "date.h"
#include "program_json.h"
#include "program_pb.h"

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
/* Settlement and KPI reports read every entry of their window. */
#define CLI_REPORT_TIMEOUT_MS_DEFAULT 60000
#define CLI_HEX_LEN                   (2 * COALITION_HASH_LEN + 1)
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
    OPT_PURCHASE_CENTS,
    OPT_PAID_POINTS_CENTS,
    OPT_CATEGORY,
    OPT_TIMEOUT_S,
    OPT_HOLD,
    OPT_AT,
    OPT_WITHIN,
    OPT_FILE,
    OPT_OLD,
    OPT_PHONE,
    OPT_EMAIL,
    OPT_INTO,
    OPT_ALL, /* a flag */
    OPT_CSV, /* a flag */
    OPT_PUBLIC_KEY,
    OPT_OUT,
    OPT_KEY_ID,
    OPT_COUNT
};

#define BIT(i) ((uint64_t)1 << (i))

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
    [OPT_PURCHASE_CENTS] = "purchase-cents",
    [OPT_PAID_POINTS_CENTS] = "paid-points-cents",
    [OPT_CATEGORY] = "category",
    [OPT_TIMEOUT_S] = "timeout-s",
    [OPT_HOLD] = "hold",
    [OPT_AT] = "at",
    [OPT_WITHIN] = "within",
    [OPT_FILE] = "file",
    [OPT_OLD] = "old",
    [OPT_PHONE] = "phone",
    [OPT_EMAIL] = "email",
    [OPT_INTO] = "into",
    [OPT_ALL] = "all",
    [OPT_CSV] = "csv",
    [OPT_PUBLIC_KEY] = "public-key",
    [OPT_OUT] = "out",
    [OPT_KEY_ID] = "key-id",
};
_Static_assert(OPT_COUNT <= 64, "options are bits of a uint64_t");

/* Options that take no value; a->v[] holds "1" when one is given. */
#define FLAG_OPTS (BIT(OPT_CONSISTENT) | BIT(OPT_ALL) | BIT(OPT_CSV))

/* getopt_long values of the global options (also accepted after a command)
 * and the base of the command options. */
enum {
    GOPT_NODE = 0x100,
    GOPT_JSON,
    GOPT_TIMEOUT,
    GOPT_KEY_DIR,
    GOPT_API_KEY,
    GOPT_CMD_BASE = 0x200,
};

/* Key files in --key-dir: <partner>.key and .pub, admin.key for the
 * coalition admin. */
#define CLI_ADMIN_KEY_NAME "admin"
#define CLI_PATH_MAX       4096

struct cli {
    const char *node;
    bool json;
    int timeout_ms;      /* 0: not given, use the command's default */
    const char *key_dir; /* --key-dir or $COALITION_KEY_DIR; NULL: writes are not signed */
    const char *api_key; /* --api-key or $COALITION_API_KEY; NULL: none sent */
    struct coalition_client *client;
};

/* The API key every client of this run sends (cli.api_key): the cluster
 * commands make clients of their own deep inside. */
static const char *cli_api_key;

/* A program or rules file as read by `program set` and `rules set`: the
 * structs borrow their strings from `doc`, which is owned (json_decref). */
struct rules_file {
    json_t *doc;
    struct coalition_program program;
    struct coalition_category_rate categories[COALITION_CATEGORIES_MAX];
    struct coalition_campaign campaigns[COALITION_CAMPAIGNS_MAX];
    struct coalition_rules rules;
    struct coalition_tier tiers[COALITION_TIERS_MAX];
};

struct args {
    const char *v[OPT_COUNT]; /* borrowed from argv; NULL when not given */
    int64_t points;           /* --points, 0 when not given */
    uint32_t limit;           /* --limit, 0 when not given */
    uint64_t node_id;         /* cluster commands: --id, 0 when not given */
    enum coalition_role role; /* --role, standby when not given */
    uint32_t wait_s;          /* --wait-s, CLI_CHECK_WAIT_S_DEFAULT when not given */
    int64_t purchase_cents;   /* --purchase-cents, 0 when not given */
    int64_t paid_points_cents;
    uint32_t timeout_s;   /* --timeout-s, 0 when not given */
    uint32_t within_days; /* --within */
    /* Dates of the commands whose --at, --from and --to are dates (struct
     * command's date_opts); 0 when not given. */
    uint64_t at_ms;
    uint64_t from_ms;
    uint64_t to_ms;
    struct rules_file file; /* --file of program set, rules set */
    /* partner add: the partner's public key (--public-key, or ID.pub in
     * --key-dir), read before any connection is made. */
    uint8_t public_key[COALITION_PUBLIC_KEY_LEN];
};

struct command {
    const char *name;
    const char *sub; /* second word ("add"), or NULL */
    uint64_t allowed;
    uint64_t required;
    int (*run)(struct cli *cli, const struct args *a);
    const char *synopsis;
    const char *help;
    uint64_t date_opts; /* options among --at, --from, --to that are dates here */
    /* Checks that go beyond allowed and required (one option of a pair, a
     * file to read), before any connection is made; NULL if none.  Returns
     * 0 or the exit status of the usage error it reported. */
    int (*check)(struct cli *cli, const struct command *cmd, struct args *a);
    /* The option one bare argument stands for ("partner add P": --id P), or
     * 0 if the command takes none. */
    uint64_t positional;
    bool offline; /* runs without a node (keygen) */
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

/* Prints `obj` (consumed) as the one JSON object of stdout.  The only reals
 * are percentages with one decimal: 15 significant digits print them as
 * written ("33.3", not "33.299999999999997"). */
static void json_print(json_t *obj)
{
    assert(obj != NULL);
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(15));
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

/* A time as ISO 8601 UTC text in JSON, or null for 0 (none). */
static json_t *jdate(uint64_t ms)
{
    if (ms == 0) {
        return json_null();
    }
    char text[DATE_TEXT_LEN];
    date_format(ms, text);
    return json_string(text);
}

/* A string in JSON, or null for "" (none). */
static json_t *jstr_or_null(const char *s)
{
    return s[0] != '\0' ? jstr(s) : json_null();
}

/* ------------------------------------------------------------------------
 * Money and rates: integers only.  Point values are in thousandths of a cent
 * (mc); a currency unit is 100 cents = 100000 mc. */

enum { MONEY_TEXT_LEN = 32 };

/* `cents` as currency units with two decimals ("-12.34"). */
static void format_cents(int64_t cents, char out[MONEY_TEXT_LEN])
{
    uint64_t mag = cents < 0 ? (uint64_t)(-(cents + 1)) + 1 : (uint64_t)cents;
    snprintf(out, MONEY_TEXT_LEN, "%s%" PRIu64 ".%02u", cents < 0 ? "-" : "", mag / 100,
             (unsigned)(mag % 100));
}

/* `mc` thousandths of a cent as currency units with two decimals, rounded to
 * the nearest cent, halves away from zero (1500 mc is "0.02", -1500 mc is
 * "-0.02"); exact integer arithmetic, never "-0.00". */
static void format_mc(int64_t mc, char out[MONEY_TEXT_LEN])
{
    uint64_t mag = mc < 0 ? (uint64_t)(-(mc + 1)) + 1 : (uint64_t)mc;
    uint64_t cents = mag / 1000 + (mag % 1000 >= 500 ? 1 : 0);
    snprintf(out, MONEY_TEXT_LEN, "%s%" PRIu64 ".%02u", mc < 0 && cents > 0 ? "-" : "", cents / 100,
             (unsigned)(cents % 100));
}

/* num / den as tenths of a percent (permille), rounded half up; false when
 * den is 0 or less (no rate).  Exact for operands below 2^53; larger ones
 * are scaled down first (a relative error below 2^-49, far below the printed
 * precision). */
static bool rate_permille(int64_t num, int64_t den, int64_t *out)
{
    if (den <= 0) {
        return false;
    }
    bool neg = num < 0;
    uint64_t n = neg ? (uint64_t)(-(num + 1)) + 1 : (uint64_t)num;
    uint64_t d = (uint64_t)den;
    while (n >= ((uint64_t)1 << 53) || d >= ((uint64_t)1 << 53)) {
        n >>= 4;
        d >>= 4;
    }
    if (d == 0) {
        return false;
    }
    uint64_t q = n / d;
    uint64_t r = n % d;
    /* r < d < 2^53, so r * 1000 + d / 2 stays below 2^63 */
    uint64_t permille = q * 1000 + (r * 1000 + d / 2) / d;
    *out = neg ? -(int64_t)permille : (int64_t)permille;
    return true;
}

static bool rate_of_counts(uint64_t num, uint64_t den, int64_t *out)
{
    if (num > (uint64_t)INT64_MAX || den > (uint64_t)INT64_MAX) {
        num >>= 1;
        den >>= 1;
    }
    return rate_permille((int64_t)num, (int64_t)den, out);
}

/* A rate as "33.3%" or "n/a". */
static void format_rate(bool have, int64_t permille, char out[MONEY_TEXT_LEN])
{
    if (!have) {
        snprintf(out, MONEY_TEXT_LEN, "n/a");
        return;
    }
    uint64_t mag = permille < 0 ? (uint64_t)(-(permille + 1)) + 1 : (uint64_t)permille;
    snprintf(out, MONEY_TEXT_LEN, "%s%" PRIu64 ".%u%%", permille < 0 ? "-" : "", mag / 10,
             (unsigned)(mag % 10));
}

/* A rate in JSON: a percentage with one decimal, or null. */
static json_t *jrate(bool have, int64_t permille)
{
    return have ? json_real((double)permille / 10.0) : json_null();
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

/* coalition_client_create, then the run's API key (cli_api_key) on the new
 * client. */
static int cli_client_create(const char *node, int timeout_ms, struct coalition_client **out)
{
    int rv = coalition_client_create(node, timeout_ms, out);
    if (rv == 0 && cli_api_key != NULL) {
        rv = coalition_client_set_api_key(*out, cli_api_key);
        if (rv != 0) {
            coalition_client_destroy(*out);
            *out = NULL;
        }
    }
    return rv;
}

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

/* Prints the result of write `txn_id`: the points and, for a purchase
 * award, the rule that set them. */
static int print_txn_result(const struct cli *cli, const char *txn_id,
                            const struct coalition_txn_result *r)
{
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "txn", jstr(txn_id));
        json_object_set_new(obj, "seq", juint(r->seq));
        json_object_set_new(obj, "duplicate", json_boolean(r->duplicate));
        json_object_set_new(obj, "points", jint(r->points));
        json_object_set_new(obj, "time_ms", juint(r->time_ms));
        json_object_set_new(obj, "rule", jstr(r->rule));
        json_print(obj);
        return EXIT_OK;
    }
    if (r->duplicate) {
        printf("duplicate: txn %s already applied as seq %" PRIu64, txn_id, r->seq);
    } else {
        printf("ok: txn %s seq %" PRIu64 " points %" PRId64, txn_id, r->seq, r->points);
    }
    if (r->rule[0] != '\0') {
        printf(" (rule %s)", r->rule);
    }
    putchar('\n');
    return EXIT_OK;
}

/* ------------------------------------------------------------------------
 * Keys and signatures */

/* Kinds only the coalition admin may submit: signed with admin.key. */
static bool admin_kind(enum coalition_txn_kind kind)
{
    return kind == COALITION_TXN_PARTNER_ADD || kind == COALITION_TXN_RULES_SET ||
           kind == COALITION_TXN_MERGE || kind == COALITION_TXN_ERASE;
}

/* Kinds that are always signed from --key-dir, even with --api-key: the
 * node signs only for its partner, never as the admin, and an API key does
 * not issue or revoke API keys. */
static bool always_signed_kind(enum coalition_txn_kind kind)
{
    return admin_kind(kind) || kind == COALITION_TXN_APIKEY_ADD ||
           kind == COALITION_TXN_APIKEY_REVOKE;
}

/* DIR/NAME.EXT into path.  Refuses names that would leave DIR. */
static bool key_path(const struct cli *cli, const char *name, const char *ext,
                     char path[CLI_PATH_MAX])
{
    assert(cli->key_dir != NULL);
    if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) {
        return false;
    }
    int n = snprintf(path, CLI_PATH_MAX, "%s/%s.%s", cli->key_dir, name, ext);
    return n > 0 && n < CLI_PATH_MAX;
}

/* Sets the client's signer for write `t`: with --key-dir, the admin (admin
 * kinds, or no partner) or t->partner, with its key file; none without
 * --key-dir, or with --api-key for a kind the node may sign.  Returns 0 or
 * the exit status of the usage error it reported (a key that cannot be
 * read). */
static int cli_set_signer(struct cli *cli, const struct coalition_txn *t)
{
    if (cli->key_dir == NULL || (cli->api_key != NULL && !always_signed_kind(t->kind))) {
        return 0;
    }
    bool admin = admin_kind(t->kind) || t->partner == NULL || t->partner[0] == '\0';
    const char *name = admin ? CLI_ADMIN_KEY_NAME : t->partner;
    char path[CLI_PATH_MAX];
    if (!key_path(cli, name, "key", path)) {
        return usage_error(cli, NULL, "partner id '%s' cannot name a key file in %s", name,
                           cli->key_dir);
    }
    uint8_t sk[COALITION_SECRET_KEY_LEN];
    char err[CLI_PATH_MAX + 128];
    int rv = coalition_secret_key_load(path, sk, err, sizeof(err));
    if (rv != 0) {
        return usage_error(cli, NULL, "no key to sign for %s: %s",
                           admin ? "the coalition admin" : t->partner, err);
    }
    rv = coalition_client_set_signer(cli->client, admin ? "" : t->partner, sk);
    sodium_memzero(sk, sizeof(sk));
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    return 0;
}

/* Submits one transaction (signed as cli_set_signer says) and gives its
 * result in *r.  Returns 0, or the exit status of the error it reported. */
static int cli_txn(struct cli *cli, const struct coalition_txn *t, struct coalition_txn_result *r)
{
    int rv = cli_set_signer(cli, t);
    if (rv != 0) {
        return rv;
    }
    rv = coalition_client_txn(cli->client, t, r);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    return 0;
}

/* Submits one transaction and prints its result. */
static int submit_txn(struct cli *cli, const struct coalition_txn *t)
{
    struct coalition_txn_result r;
    int rv = cli_txn(cli, t, &r);
    if (rv != 0) {
        return rv;
    }
    return print_txn_result(cli, t->txn_id, &r);
}

/* `keygen --out PREFIX`: a new key pair in PREFIX.key (0600) and
 * PREFIX.pub; prints the public key.  Runs without a node. */
static int run_keygen(struct cli *cli, const struct args *a)
{
    const char *prefix = a->v[OPT_OUT];
    uint8_t pk[COALITION_PUBLIC_KEY_LEN];
    char err[CLI_PATH_MAX + 128] = "";
    int rv = auth_init();
    if (rv == 0) {
        rv = auth_keygen(prefix, pk, err, sizeof(err));
    }
    if (rv != 0) {
        return report_error(cli, rv, err[0] != '\0' ? err : coalition_strerror(rv));
    }
    char hex[AUTH_PUBLIC_HEX + 1];
    auth_hex_encode(pk, sizeof(pk), hex);
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "public_key", jstr(hex));
        char path[CLI_PATH_MAX];
        snprintf(path, sizeof(path), "%s.key", prefix);
        json_object_set_new(obj, "key_file", jstr(path));
        snprintf(path, sizeof(path), "%s.pub", prefix);
        json_object_set_new(obj, "public_key_file", jstr(path));
        json_print(obj);
    } else {
        printf("%s\n", hex);
    }
    return EXIT_OK;
}

/* partner add: the public key from --public-key (hex or a file), else
 * ID.pub in --key-dir; none is a usage error. */
static int check_partner_add(struct cli *cli, const struct command *cmd, struct args *a)
{
    const char *src = a->v[OPT_PUBLIC_KEY];
    char path[CLI_PATH_MAX];
    if (src == NULL && cli->key_dir != NULL) {
        if (!key_path(cli, a->v[OPT_ID], "pub", path)) {
            return usage_error(cli, cmd, "partner id '%s' cannot name a key file in %s",
                               a->v[OPT_ID], cli->key_dir);
        }
        src = path;
    }
    if (src == NULL) {
        return usage_error(cli, cmd,
                           "a partner needs a public key: give --public-key HEX|FILE, or "
                           "--key-dir with %s.pub in it",
                           a->v[OPT_ID]);
    }
    char err[CLI_PATH_MAX + 128] = "";
    if (auth_load_public(src, a->public_key, err, sizeof(err)) != 0) {
        return usage_error(cli, cmd, "%s", err);
    }
    return 0;
}

static int run_partner_add(struct cli *cli, const struct args *a)
{
    /* The partner's own id is a natural idempotency key: it can join once. */
    struct coalition_txn t = {
        .kind = COALITION_TXN_PARTNER_ADD,
        .partner = a->v[OPT_ID],
        .name = a->v[OPT_NAME],
        .txn_id = a->v[OPT_TXN] != NULL ? a->v[OPT_TXN] : a->v[OPT_ID],
        .public_key = a->public_key,
    };
    return submit_txn(cli, &t);
}

/* apikey create and revoke are signed with the partner's own key. */
static int check_apikey(struct cli *cli, const struct command *cmd, struct args *a)
{
    if (cli->key_dir == NULL) {
        return usage_error(cli, cmd,
                           "API keys are issued and revoked with the partner's key: "
                           "give --key-dir (or set COALITION_KEY_DIR)");
    }
    return 0;
}

/* `apikey create --partner P`: a new API key made here; the ledger gets
 * only its id and the hash of its secret, so the key is printed once and
 * cannot be shown again. */
static int run_apikey_create(struct cli *cli, const struct args *a)
{
    char key[AUTH_API_KEY_LEN + 1];
    char key_id[AUTH_KEY_ID_HEX + 1];
    uint8_t hash[AUTH_HASH_LEN];
    if (auth_init() != 0) {
        return report_error(cli, COALITION_E_INTERNAL, "libsodium did not initialize");
    }
    auth_api_key_new(key, key_id, hash);
    char txn_id[COALITION_ID_MAX + 1];
    snprintf(txn_id, sizeof(txn_id), "apikey-%s", key_id);
    struct coalition_txn t = {
        .kind = COALITION_TXN_APIKEY_ADD,
        .partner = a->v[OPT_PARTNER],
        .txn_id = a->v[OPT_TXN] != NULL ? a->v[OPT_TXN] : txn_id,
        .key_id = key_id,
        .key_hash = hash,
    };
    struct coalition_txn_result r;
    int rv = cli_txn(cli, &t, &r);
    if (rv == 0) {
        if (cli->json) {
            json_t *obj = json_object();
            json_object_set_new(obj, "api_key", jstr(key));
            json_object_set_new(obj, "key_id", jstr(key_id));
            json_object_set_new(obj, "partner", jstr(t.partner));
            json_object_set_new(obj, "txn", jstr(t.txn_id));
            json_object_set_new(obj, "seq", juint(r.seq));
            json_print(obj);
        } else {
            /* The key alone on stdout, for KEY=$(coalition apikey create ...). */
            printf("%s\n", key);
            fprintf(stderr,
                    "ok: API key %s of partner %s (txn %s seq %" PRIu64
                    "); keep it now, it cannot be shown again\n",
                    key_id, t.partner, t.txn_id, r.seq);
        }
    }
    sodium_memzero(key, sizeof(key));
    return rv;
}

static int run_apikey_revoke(struct cli *cli, const struct args *a)
{
    const char *key_id = a->v[OPT_KEY_ID];
    char txn_id[COALITION_ID_MAX + 1];
    snprintf(txn_id, sizeof(txn_id), "apikey-revoke-%.32s", key_id);
    struct coalition_txn t = {
        .kind = COALITION_TXN_APIKEY_REVOKE,
        .partner = a->v[OPT_PARTNER],
        .txn_id = a->v[OPT_TXN] != NULL ? a->v[OPT_TXN] : txn_id,
        .key_id = key_id,
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

/* An award of --points, or of what --purchase-cents earns under the
 * partner's program (check_award: exactly one of the two). */
static int run_award(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_AWARD,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_MEMBER],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .points = a->points,
        .purchase_cents = a->purchase_cents,
        .paid_points_cents = a->paid_points_cents,
        .category = a->v[OPT_CATEGORY],
    };
    return submit_txn(cli, &t);
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
    int rv = coalition_client_balance_at(cli->client, member, a->at_ms, &b);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "member", jstr(member));
        json_object_set_new(obj, "points", jint(b.points));
        json_object_set_new(obj, "as_of_seq", juint(b.as_of_seq));
        json_object_set_new(obj, "held", jint(b.held));
        json_object_set_new(obj, "locked", jint(b.locked));
        json_object_set_new(obj, "tier", jstr_or_null(b.tier));
        json_object_set_new(obj, "next_tier", jstr_or_null(b.next_tier));
        json_object_set_new(obj, "to_next_tier",
                            b.next_tier[0] != '\0' ? jint(b.to_next_tier) : json_null());
        json_object_set_new(obj, "earned_12m", jint(b.earned_12m));
        json_object_set_new(obj, "at", jdate(b.at_ms));
        json_print(obj);
        return EXIT_OK;
    }
    printf("member %s: %" PRId64 " points (as of seq %" PRIu64 ")\n", member, b.points,
           b.as_of_seq);
    printf("held:       %" PRId64 "\n", b.held);
    printf("locked:     %" PRId64 "\n", b.locked);
    printf("tier:       %s (earned in 12 months: %" PRId64 ")\n",
           b.tier[0] != '\0' ? b.tier : "none", b.earned_12m);
    if (b.next_tier[0] != '\0') {
        printf("next tier:  %s in %" PRId64 " points\n", b.next_tier, b.to_next_tier);
    } else {
        printf("next tier:  none\n");
    }
    if (b.at_ms != 0) {
        char at[DATE_TEXT_LEN];
        date_format(b.at_ms, at);
        printf("at:         %s\n", at);
    }
    return EXIT_OK;
}

enum { HIST_COLS = 8, HIST_CELL = 32 };

/* The cells of one history row; numbers are formatted into `buf`. */
static void history_row(const struct coalition_history_item *it, char buf[2][HIST_CELL],
                        const char *cells[HIST_COLS])
{
    _Static_assert(HIST_CELL >= DATE_TEXT_LEN, "a history cell holds a date");
    snprintf(buf[0], HIST_CELL, "%" PRIu64, it->seq);
    date_format(it->time_ms, buf[1]);
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
 * Tables and CSV for the rules commands */

enum { CELL_LEN = 72 }; /* an id (64 bytes), a number or a date */

/* A table of text cells printed with aligned columns: numbers right-aligned
 * (bit c of `right`), the rest left, the last column unpadded. */
struct table {
    size_t cols;
    size_t rows;
    const char *const *heads;
    unsigned right;
    char (*cells)[CELL_LEN]; /* rows * cols; owned */
};

static bool table_init(struct table *t, size_t cols, const char *const *heads, unsigned right,
                       size_t rows)
{
    assert(cols > 0 && cols <= 32);
    t->cols = cols;
    t->rows = rows;
    t->heads = heads;
    t->right = right;
    t->cells = calloc(rows > 0 ? rows * cols : 1, sizeof(*t->cells));
    return t->cells != NULL;
}

static void table_free(struct table *t)
{
    free(t->cells);
    t->cells = NULL;
}

static void table_set(struct table *t, size_t row, size_t col, const char *fmt, ...)
{
    assert(row < t->rows && col < t->cols);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->cells[row * t->cols + col], CELL_LEN, fmt, ap);
    va_end(ap);
}

static void table_print_row(const struct table *t, const int *width, const char *const *cells)
{
    for (size_t c = 0; c < t->cols; c++) {
        bool last = c + 1 == t->cols;
        const char *sep = last ? "\n" : "  ";
        if (t->right & BIT(c)) {
            printf("%*s%s", width[c], cells[c], sep);
        } else if (last) {
            printf("%s%s", cells[c], sep);
        } else {
            printf("%-*s%s", width[c], cells[c], sep);
        }
    }
}

static void table_print(const struct table *t)
{
    int width[32];
    for (size_t c = 0; c < t->cols; c++) {
        width[c] = (int)strlen(t->heads[c]);
        for (size_t r = 0; r < t->rows; r++) {
            int len = (int)strlen(t->cells[r * t->cols + c]);
            if (len > width[c]) {
                width[c] = len;
            }
        }
    }
    table_print_row(t, width, t->heads);
    const char *cells[32];
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            cells[c] = t->cells[r * t->cols + c];
        }
        table_print_row(t, width, cells);
    }
}

/* One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
 * break, quotes doubled. */
static void csv_field(const char *s, bool last)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, stdout);
    } else {
        putchar('"');
        for (const char *p = s; *p != '\0'; p++) {
            if (*p == '"') {
                putchar('"');
            }
            putchar(*p);
        }
        putchar('"');
    }
    putchar(last ? '\n' : ',');
}

/* A table as CSV: its heads (lower case for CSV tables) as the header line,
 * then its rows. */
static void table_print_csv(const struct table *t)
{
    for (size_t c = 0; c < t->cols; c++) {
        csv_field(t->heads[c], c + 1 == t->cols);
    }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            csv_field(t->cells[r * t->cols + c], c + 1 == t->cols);
        }
    }
}

static int report_nomem(const struct cli *cli)
{
    return report_error(cli, COALITION_E_NOMEM, coalition_strerror(COALITION_E_NOMEM));
}

/* ------------------------------------------------------------------------
 * Holds, expiring points, programs and rules, cards and identity */

static int run_hold(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_HOLD,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_MEMBER],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .points = a->points,
        .timeout_s = a->timeout_s,
    };
    return submit_txn(cli, &t);
}

static int run_capture(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_CAPTURE, /* points 0: all that is held */
        .partner = a->v[OPT_PARTNER],
        .of_txn = a->v[OPT_HOLD],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .points = a->points,
    };
    return submit_txn(cli, &t);
}

static int run_release(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_RELEASE,
        .partner = a->v[OPT_PARTNER],
        .of_txn = a->v[OPT_HOLD],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
    };
    return submit_txn(cli, &t);
}

static int run_expiring(struct cli *cli, const struct args *a)
{
    const char *member = a->v[OPT_MEMBER];
    struct coalition_expiring e;
    coalition_client_set_consistent(cli->client, a->v[OPT_CONSISTENT] != NULL);
    int rv = coalition_client_expiring(cli->client, member, a->within_days, a->at_ms, &e);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    int64_t total = 0;
    for (size_t i = 0; i < e.len; i++) {
        if (__builtin_add_overflow(total, e.lots[i].points, &total)) {
            total = INT64_MAX; /* beyond any real balance: shown as the most there can be */
        }
    }
    char at[DATE_TEXT_LEN];
    date_format(e.at_ms, at);
    if (cli->json) {
        json_t *obj = json_object();
        json_t *lots = json_array();
        json_object_set_new(obj, "member", jstr(member));
        json_object_set_new(obj, "within_days", juint(a->within_days));
        json_object_set_new(obj, "at", jdate(e.at_ms));
        json_object_set_new(obj, "total", jint(total));
        for (size_t i = 0; i < e.len; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "issuer", jstr(e.lots[i].issuer));
            json_object_set_new(o, "points", jint(e.lots[i].points));
            json_object_set_new(o, "earned", jdate(e.lots[i].earned_ms));
            json_object_set_new(o, "expires", jdate(e.lots[i].expires_ms));
            json_array_append_new(lots, o);
        }
        json_object_set_new(obj, "lots", lots);
        json_print(obj);
        coalition_expiring_free(&e);
        return EXIT_OK;
    }
    if (e.len == 0) {
        printf("member %s: no points expire within %" PRIu32 " days of %s\n", member,
               a->within_days, at);
        coalition_expiring_free(&e);
        return EXIT_OK;
    }
    static const char *const heads[] = {"ISSUER", "POINTS", "EARNED (UTC)", "EXPIRES (UTC)"};
    struct table t;
    if (!table_init(&t, 4, heads, BIT(1), e.len)) {
        coalition_expiring_free(&e);
        return report_nomem(cli);
    }
    for (size_t i = 0; i < e.len; i++) {
        char earned[DATE_TEXT_LEN];
        char expires[DATE_TEXT_LEN];
        date_format(e.lots[i].earned_ms, earned);
        date_format(e.lots[i].expires_ms, expires);
        table_set(&t, i, 0, "%s", e.lots[i].issuer);
        table_set(&t, i, 1, "%" PRId64, e.lots[i].points);
        table_set(&t, i, 2, "%s", earned);
        table_set(&t, i, 3, "%s", expires);
    }
    printf("member %s: %" PRId64 " points expire within %" PRIu32 " days of %s\n", member, total,
           a->within_days, at);
    table_print(&t);
    table_free(&t);
    coalition_expiring_free(&e);
    return EXIT_OK;
}

static int run_program_set(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_PROGRAM_SET,
        .partner = a->v[OPT_PARTNER],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .program = &a->file.program,
    };
    return submit_txn(cli, &t);
}

static int run_rules_set(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_RULES_SET,
        .partner = a->v[OPT_PARTNER],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
        .rules = &a->file.rules,
    };
    return submit_txn(cli, &t);
}

static int run_card_add(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_CARD_ADD,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_MEMBER],
        .card = a->v[OPT_CARD],
        .txn_id = a->v[OPT_TXN],
    };
    return submit_txn(cli, &t);
}

static int run_card_replace(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_CARD_REPLACE,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_MEMBER],
        .old_card = a->v[OPT_OLD],
        .card = a->v[OPT_CARD],
        .txn_id = a->v[OPT_TXN],
    };
    return submit_txn(cli, &t);
}

static int run_merge(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_MERGE, /* member is absorbed by member_to */
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_MEMBER],
        .member_to = a->v[OPT_INTO],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
    };
    return submit_txn(cli, &t);
}

static int run_erase(struct cli *cli, const struct args *a)
{
    struct coalition_txn t = {
        .kind = COALITION_TXN_ERASE,
        .partner = a->v[OPT_PARTNER],
        .member = a->v[OPT_MEMBER],
        .txn_id = a->v[OPT_TXN],
        .reason = a->v[OPT_REASON],
    };
    return submit_txn(cli, &t);
}

static int run_identify(struct cli *cli, const struct args *a)
{
    struct coalition_txn_result r;
    int rv = coalition_client_identify(cli->client, a->v[OPT_MEMBER], a->v[OPT_PHONE],
                                       a->v[OPT_EMAIL], a->v[OPT_TXN], &r);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    return print_txn_result(cli, a->v[OPT_TXN], &r);
}

static void print_program(const struct coalition_partner_program *pp)
{
    const struct coalition_program *p = &pp->program;
    printf("partner %s\n", pp->partner);
    printf("point value:        %" PRIu64 " mc (thousandths of a cent) per point\n",
           p->point_value_mc);
    printf("base rate:          %" PRIu64 ".%03" PRIu64 " points per currency unit\n",
           p->base_rate_milli / 1000, p->base_rate_milli % 1000);
    printf("minimum purchase:   %" PRId64 " cents\n", p->min_purchase_cents);
    printf("lock:               %" PRIu32 " days\n", p->lock_days);
    printf("categories:        ");
    for (size_t i = 0; i < p->n_categories; i++) {
        printf(" %s x%" PRIu32 "%%", p->categories[i].category, p->categories[i].multiplier_pct);
    }
    printf("%s\n", p->n_categories == 0 ? " none" : "");
    if (p->n_campaigns == 0) {
        printf("campaigns:          none\n");
        return;
    }
    printf("\ncampaigns\n%-16s %-24s %-24s %10s %10s  %s\n", "ID", "START (UTC)", "END (UTC)",
           "MULTIPLIER", "BONUS", "CATEGORY");
    for (size_t i = 0; i < p->n_campaigns; i++) {
        const struct coalition_campaign *c = &p->campaigns[i];
        char start[DATE_TEXT_LEN], end[DATE_TEXT_LEN];
        date_format(c->start_ms, start);
        date_format(c->end_ms, end);
        printf("%-16s %-24s %-24s %9" PRIu32 "%% %10" PRId64 "  %s\n", c->id, start, end,
               c->multiplier_pct, c->bonus_points, c->category[0] != '\0' ? c->category : "(any)");
    }
}

/* `program show`: --json prints the program file `program set` reads (the
 * writer of GET /v1/program, proto/program_json.h). */
static int run_program_show(struct cli *cli, const struct args *a)
{
    struct coalition_partner_program pp;
    coalition_client_set_consistent(cli->client, a->v[OPT_CONSISTENT] != NULL);
    int rv = coalition_client_program(cli->client, a->v[OPT_PARTNER], &pp);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    if (cli->json) {
        struct program_pb pb;
        program_pb_view(&pp.program, &pb);
        json_t *obj = NULL;
        rv = program_json_write(&pb.program, &obj);
        if (rv != 0) {
            coalition_partner_program_free(&pp);
            return report_error(cli, rv, "the node's program cannot be written as JSON");
        }
        json_print(obj);
    } else {
        print_program(&pp);
    }
    coalition_partner_program_free(&pp);
    return EXIT_OK;
}

static int run_lookup(struct cli *cli, const struct args *a)
{
    char member[COALITION_ID_MAX + 1];
    coalition_client_set_consistent(cli->client, a->v[OPT_CONSISTENT] != NULL);
    int rv = coalition_client_lookup(cli->client, a->v[OPT_CARD], a->v[OPT_PHONE], a->v[OPT_EMAIL],
                                     member);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    if (cli->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "member", jstr(member));
        json_print(obj);
    } else {
        printf("member %s\n", member);
    }
    return EXIT_OK;
}

/* ------------------------------------------------------------------------
 * Settlement and KPI reports */

static json_t *json_flows(const struct coalition_flow *flows, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "issuer", jstr(flows[i].issuer));
        json_object_set_new(o, "redeemer", jstr(flows[i].redeemer));
        json_object_set_new(o, "points", jint(flows[i].points));
        json_object_set_new(o, "value_mc", jint(flows[i].value_mc));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* Flows as a table: issuer, redeemer, points, value_mc (CSV only), value. */
static bool flows_table(struct table *t, const struct coalition_flow *flows, size_t n, bool csv)
{
    static const char *const heads[] = {"ISSUER", "REDEEMER", "POINTS", "VALUE"};
    static const char *const csv_heads[] = {"issuer", "redeemer", "points", "value_mc", "value"};
    if (!table_init(t, csv ? 5 : 4, csv ? csv_heads : heads, csv ? 0 : BIT(2) | BIT(3), n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char value[MONEY_TEXT_LEN];
        format_mc(flows[i].value_mc, value);
        size_t c = 0;
        table_set(t, i, c++, "%s", flows[i].issuer);
        table_set(t, i, c++, "%s", flows[i].redeemer);
        table_set(t, i, c++, "%" PRId64, flows[i].points);
        if (csv) {
            table_set(t, i, c++, "%" PRId64, flows[i].value_mc);
        }
        table_set(t, i, c++, "%s", value);
    }
    return true;
}

/* Partner positions as a table; in CSV every figure, in text the window's. */
static bool positions_table(struct table *t, const struct coalition_settlement *s, bool csv)
{
    static const char *const heads[] = {"PARTNER",    "ISSUED",      "REDEEMED AT",
                                        "EXPIRED",    "OUTSTANDING", "LIABILITY",
                                        "RECEIVABLE", "PAYABLE",     "NET"};
    static const char *const csv_heads[] = {
        "partner",     "issued",       "redeemed_at",    "expired",
        "outstanding", "liability_mc", "receivable_mc",  "payable_mc",
        "net_mc",      "issued_total", "redeemed_total", "expired_total",
        "liability",   "receivable",   "payable",        "net"};
    size_t cols = csv ? sizeof(csv_heads) / sizeof(csv_heads[0]) : sizeof(heads) / sizeof(heads[0]);
    if (!table_init(t, cols, csv ? csv_heads : heads, csv ? 0u : ~1u, s->n_partners)) {
        return false;
    }
    for (size_t i = 0; i < s->n_partners; i++) {
        const struct coalition_position *p = &s->partners[i];
        char money[4][MONEY_TEXT_LEN];
        format_mc(p->liability_mc, money[0]);
        format_mc(p->receivable_mc, money[1]);
        format_mc(p->payable_mc, money[2]);
        format_mc(p->net_mc, money[3]);
        size_t c = 0;
        table_set(t, i, c++, "%s", p->partner);
        table_set(t, i, c++, "%" PRId64, p->issued);
        table_set(t, i, c++, "%" PRId64, p->redeemed_at);
        table_set(t, i, c++, "%" PRId64, p->expired);
        table_set(t, i, c++, "%" PRId64, p->outstanding);
        if (csv) {
            table_set(t, i, c++, "%" PRId64, p->liability_mc);
            table_set(t, i, c++, "%" PRId64, p->receivable_mc);
            table_set(t, i, c++, "%" PRId64, p->payable_mc);
            table_set(t, i, c++, "%" PRId64, p->net_mc);
            table_set(t, i, c++, "%" PRId64, p->issued_total);
            table_set(t, i, c++, "%" PRId64, p->redeemed_total);
            table_set(t, i, c++, "%" PRId64, p->expired_total);
        }
        for (size_t m = 0; m < 4; m++) {
            table_set(t, i, c++, "%s", money[m]);
        }
    }
    return true;
}

static void settlement_print_json(const struct coalition_settlement *s)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "from", jdate(s->from_ms));
    json_object_set_new(obj, "to", jdate(s->to_ms));
    json_object_set_new(obj, "from_ms", juint(s->from_ms));
    json_object_set_new(obj, "to_ms", juint(s->to_ms));
    json_object_set_new(obj, "through_seq", juint(s->through_seq));
    json_object_set_new(obj, "flows", json_flows(s->flows, s->n_flows));
    json_t *partners = json_array();
    for (size_t i = 0; i < s->n_partners; i++) {
        const struct coalition_position *p = &s->partners[i];
        json_t *o = json_object();
        json_object_set_new(o, "partner", jstr(p->partner));
        json_object_set_new(o, "issued", jint(p->issued));
        json_object_set_new(o, "redeemed_at", jint(p->redeemed_at));
        json_object_set_new(o, "expired", jint(p->expired));
        json_object_set_new(o, "outstanding", jint(p->outstanding));
        json_object_set_new(o, "liability_mc", jint(p->liability_mc));
        json_object_set_new(o, "receivable_mc", jint(p->receivable_mc));
        json_object_set_new(o, "payable_mc", jint(p->payable_mc));
        json_object_set_new(o, "net_mc", jint(p->net_mc));
        json_object_set_new(o, "issued_total", jint(p->issued_total));
        json_object_set_new(o, "redeemed_total", jint(p->redeemed_total));
        json_object_set_new(o, "expired_total", jint(p->expired_total));
        json_array_append_new(partners, o);
    }
    json_object_set_new(obj, "partners", partners);
    json_t *payments = json_array();
    for (size_t i = 0; i < s->n_payments; i++) {
        const struct coalition_payment *pay = &s->payments[i];
        json_t *o = json_object();
        json_object_set_new(o, "payer", jstr(pay->payer));
        json_object_set_new(o, "payee", jstr(pay->payee));
        json_object_set_new(o, "value_mc", jint(pay->value_mc));
        json_array_append_new(payments, o);
    }
    json_object_set_new(obj, "payments", payments);
    json_print(obj);
}

static int settlement_print_text(const struct cli *cli, const struct coalition_settlement *s)
{
    char from[DATE_TEXT_LEN];
    char to[DATE_TEXT_LEN];
    date_format(s->from_ms, from);
    date_format(s->to_ms, to);
    struct table flows;
    struct table positions;
    if (!flows_table(&flows, s->flows, s->n_flows, false)) {
        return report_nomem(cli);
    }
    if (!positions_table(&positions, s, false)) {
        table_free(&flows);
        return report_nomem(cli);
    }
    printf("settlement from %s to %s (through seq %" PRIu64 ")\n", from, to, s->through_seq);
    printf("\nflows (points of ISSUER redeemed at REDEEMER; VALUE owed by issuer)\n");
    if (s->n_flows == 0) {
        printf("none\n");
    } else {
        table_print(&flows);
    }
    printf("\npartners\n");
    if (s->n_partners == 0) {
        printf("none\n");
    } else {
        table_print(&positions);
    }
    /* The node nets the flows of each pair (node/report.c). */
    printf("\npayments (flows between each pair netted)\n");
    if (s->n_payments == 0) {
        printf("none\n");
    }
    for (size_t i = 0; i < s->n_payments; i++) {
        const struct coalition_payment *pay = &s->payments[i];
        char value[MONEY_TEXT_LEN];
        format_mc(pay->value_mc, value);
        printf("%s pays %s %s\n", pay->payer, pay->payee, value);
    }
    table_free(&flows);
    table_free(&positions);
    return EXIT_OK;
}

static int settlement_print_csv(const struct cli *cli, const struct coalition_settlement *s)
{
    struct table flows;
    struct table positions;
    if (!flows_table(&flows, s->flows, s->n_flows, true)) {
        return report_nomem(cli);
    }
    if (!positions_table(&positions, s, true)) {
        table_free(&flows);
        return report_nomem(cli);
    }
    table_print_csv(&flows);
    putchar('\n');
    table_print_csv(&positions);
    table_free(&flows);
    table_free(&positions);
    return EXIT_OK;
}

static int run_settlement(struct cli *cli, const struct args *a)
{
    struct coalition_settlement s;
    int rv = coalition_client_settlement(cli->client, a->from_ms, a->to_ms, &s);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    int status = EXIT_OK;
    if (cli->json) {
        settlement_print_json(&s);
    } else if (a->v[OPT_CSV] != NULL) {
        status = settlement_print_csv(cli, &s);
    } else {
        status = settlement_print_text(cli, &s);
    }
    coalition_settlement_free(&s);
    return status;
}

/* Derived KPIs of a report. */
struct kpis {
    bool have_repeat, have_retention, have_breakage, have_aov;
    int64_t repeat_permille;    /* repeat_purchasers / purchasers */
    int64_t retention_permille; /* retained_members / previous_active */
    int64_t breakage_permille;  /* points_expired / points_issued */
    int64_t aov_cents;          /* purchase_cents / purchases, rounded half up */
};

static void report_kpis(const struct coalition_report *r, struct kpis *k)
{
    k->have_repeat = rate_of_counts(r->repeat_purchasers, r->purchasers, &k->repeat_permille);
    k->have_retention =
        rate_of_counts(r->retained_members, r->previous_active, &k->retention_permille);
    k->have_breakage = rate_permille(r->points_expired, r->points_issued, &k->breakage_permille);
    k->have_aov = r->purchases > 0 && r->purchases <= (uint64_t)INT64_MAX;
    k->aov_cents = 0;
    if (k->have_aov) {
        int64_t n = (int64_t)r->purchases;
        int64_t q = r->purchase_cents / n;
        int64_t rem = r->purchase_cents % n;
        /* round half away from zero without overflow: compare 2*|rem| with n */
        uint64_t arem = rem < 0 ? (uint64_t)(-rem) : (uint64_t)rem;
        if (arem >= (uint64_t)n - arem) {
            q += r->purchase_cents < 0 ? -1 : 1;
        }
        k->aov_cents = q;
    }
}

static const char *const report_csv_heads[] = {"partner",
                                               "from",
                                               "to",
                                               "through_seq",
                                               "active_members",
                                               "purchasers",
                                               "repeat_purchasers",
                                               "repeat_rate_pct",
                                               "retained_members",
                                               "previous_active",
                                               "retention_rate_pct",
                                               "purchases",
                                               "purchase_cents",
                                               "average_order_cents",
                                               "points_issued",
                                               "points_redeemed",
                                               "points_expired",
                                               "breakage_rate_pct",
                                               "outstanding",
                                               "liability_mc"};

static void report_print_json(const struct coalition_report *r, const struct kpis *k)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "partner", jstr_or_null(r->partner));
    json_object_set_new(obj, "from", jdate(r->from_ms));
    json_object_set_new(obj, "to", jdate(r->to_ms));
    json_object_set_new(obj, "from_ms", juint(r->from_ms));
    json_object_set_new(obj, "to_ms", juint(r->to_ms));
    json_object_set_new(obj, "through_seq", juint(r->through_seq));
    json_object_set_new(obj, "active_members", juint(r->active_members));
    json_object_set_new(obj, "purchasers", juint(r->purchasers));
    json_object_set_new(obj, "repeat_purchasers", juint(r->repeat_purchasers));
    json_object_set_new(obj, "repeat_rate_pct", jrate(k->have_repeat, k->repeat_permille));
    json_object_set_new(obj, "retained_members", juint(r->retained_members));
    json_object_set_new(obj, "previous_active", juint(r->previous_active));
    json_object_set_new(obj, "retention_rate_pct", jrate(k->have_retention, k->retention_permille));
    json_object_set_new(obj, "purchases", juint(r->purchases));
    json_object_set_new(obj, "purchase_cents", jint(r->purchase_cents));
    json_object_set_new(obj, "average_order_cents", k->have_aov ? jint(k->aov_cents) : json_null());
    json_object_set_new(obj, "points_issued", jint(r->points_issued));
    json_object_set_new(obj, "points_redeemed", jint(r->points_redeemed));
    json_object_set_new(obj, "points_expired", jint(r->points_expired));
    json_object_set_new(obj, "breakage_rate_pct", jrate(k->have_breakage, k->breakage_permille));
    json_object_set_new(obj, "outstanding", jint(r->outstanding));
    json_object_set_new(obj, "liability_mc", jint(r->liability_mc));
    json_object_set_new(obj, "top_flows", json_flows(r->top_flows, r->n_top_flows));
    json_print(obj);
}

static int report_print_csv(const struct cli *cli, const struct coalition_report *r,
                            const struct kpis *k)
{
    enum { N = sizeof(report_csv_heads) / sizeof(report_csv_heads[0]) };
    struct table t;
    struct table flows;
    if (!table_init(&t, N, report_csv_heads, 0, 1)) {
        return report_nomem(cli);
    }
    if (!flows_table(&flows, r->top_flows, r->n_top_flows, true)) {
        table_free(&t);
        return report_nomem(cli);
    }
    char from[DATE_TEXT_LEN];
    char to[DATE_TEXT_LEN];
    char rates[3][MONEY_TEXT_LEN];
    date_format(r->from_ms, from);
    date_format(r->to_ms, to);
    /* CSV rates without the % sign; empty when there is no rate. */
    const struct {
        bool have;
        int64_t permille;
    } rv[3] = {{k->have_repeat, k->repeat_permille},
               {k->have_retention, k->retention_permille},
               {k->have_breakage, k->breakage_permille}};
    for (size_t i = 0; i < 3; i++) {
        rates[i][0] = '\0';
        if (rv[i].have) {
            format_rate(true, rv[i].permille, rates[i]);
            rates[i][strlen(rates[i]) - 1] = '\0';
        }
    }
    size_t c = 0;
    table_set(&t, 0, c++, "%s", r->partner);
    table_set(&t, 0, c++, "%s", from);
    table_set(&t, 0, c++, "%s", to);
    table_set(&t, 0, c++, "%" PRIu64, r->through_seq);
    table_set(&t, 0, c++, "%" PRIu64, r->active_members);
    table_set(&t, 0, c++, "%" PRIu64, r->purchasers);
    table_set(&t, 0, c++, "%" PRIu64, r->repeat_purchasers);
    table_set(&t, 0, c++, "%s", rates[0]);
    table_set(&t, 0, c++, "%" PRIu64, r->retained_members);
    table_set(&t, 0, c++, "%" PRIu64, r->previous_active);
    table_set(&t, 0, c++, "%s", rates[1]);
    table_set(&t, 0, c++, "%" PRIu64, r->purchases);
    table_set(&t, 0, c++, "%" PRId64, r->purchase_cents);
    if (k->have_aov) {
        table_set(&t, 0, c++, "%" PRId64, k->aov_cents);
    } else {
        table_set(&t, 0, c++, "%s", "");
    }
    table_set(&t, 0, c++, "%" PRId64, r->points_issued);
    table_set(&t, 0, c++, "%" PRId64, r->points_redeemed);
    table_set(&t, 0, c++, "%" PRId64, r->points_expired);
    table_set(&t, 0, c++, "%s", rates[2]);
    table_set(&t, 0, c++, "%" PRId64, r->outstanding);
    table_set(&t, 0, c++, "%" PRId64, r->liability_mc);
    assert(c == N);
    table_print_csv(&t);
    putchar('\n');
    table_print_csv(&flows);
    table_free(&t);
    table_free(&flows);
    return EXIT_OK;
}

static int report_print_text(const struct cli *cli, const struct coalition_report *r,
                             const struct kpis *k)
{
    struct table flows;
    if (!flows_table(&flows, r->top_flows, r->n_top_flows, false)) {
        return report_nomem(cli);
    }
    char from[DATE_TEXT_LEN];
    char to[DATE_TEXT_LEN];
    date_format(r->from_ms, from);
    date_format(r->to_ms, to);
    char rate[MONEY_TEXT_LEN];
    char money[MONEY_TEXT_LEN];
    if (r->partner[0] != '\0') {
        printf("report for partner %s", r->partner);
    } else {
        printf("report for the whole coalition");
    }
    printf(" from %s to %s (through seq %" PRIu64 ")\n", from, to, r->through_seq);
    printf("active members:        %" PRIu64 "\n", r->active_members);
    format_rate(k->have_repeat, k->repeat_permille, rate);
    printf("repeat-purchase rate:  %s (%" PRIu64 " of %" PRIu64 " purchasers)\n", rate,
           r->repeat_purchasers, r->purchasers);
    format_rate(k->have_retention, k->retention_permille, rate);
    printf("retention rate:        %s (%" PRIu64 " of %" PRIu64
           " members active in the window before)\n",
           rate, r->retained_members, r->previous_active);
    if (k->have_aov) {
        format_cents(k->aov_cents, money);
    } else {
        snprintf(money, sizeof(money), "n/a");
    }
    char total[MONEY_TEXT_LEN];
    format_cents(r->purchase_cents, total);
    printf("average order value:   %s (%" PRIu64 " purchases, %s in all)\n", money, r->purchases,
           total);
    printf("points issued:         %" PRId64 "\n", r->points_issued);
    printf("points redeemed:       %" PRId64 "\n", r->points_redeemed);
    printf("points expired:        %" PRId64 "\n", r->points_expired);
    format_rate(k->have_breakage, k->breakage_permille, rate);
    printf("breakage rate:         %s\n", rate);
    printf("outstanding points:    %" PRId64 "\n", r->outstanding);
    format_mc(r->liability_mc, money);
    printf("liability:             %s\n", money);
    printf("\ntop flows\n");
    if (r->n_top_flows == 0) {
        printf("none\n");
    } else {
        table_print(&flows);
    }
    table_free(&flows);
    return EXIT_OK;
}

static int run_report(struct cli *cli, const struct args *a)
{
    struct coalition_report r;
    int rv = coalition_client_report(cli->client, a->v[OPT_PARTNER], a->from_ms, a->to_ms, &r);
    if (rv != 0) {
        return report_error(cli, rv, error_message(cli, rv));
    }
    struct kpis k;
    report_kpis(&r, &k);
    int status = EXIT_OK;
    if (cli->json) {
        report_print_json(&r, &k);
    } else if (a->v[OPT_CSV] != NULL) {
        status = report_print_csv(cli, &r, &k);
    } else {
        status = report_print_text(cli, &r, &k);
    }
    coalition_report_free(&r);
    return status;
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
        int rv = cli_client_create(p->cfg->client_addr, timeout_ms, &p->client);
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
    if (addr == NULL || cli_client_create(addr, node_timeout_ms(cli), &c) != 0) {
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
        int rv = cli_client_create(p->cfg->client_addr, timeout_ms, &c);
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

/* Sends one membership change, signed with the coalition admin's key from
 * --key-dir (DIR/admin.key), and prints "ok" once the leader made it.
 * Without --key-dir it goes unsigned, and the leader refuses it. */
static int cluster_change(struct cli *cli, enum coalition_cluster_op op, const struct args *a)
{
    if (cli->key_dir != NULL) {
        char path[CLI_PATH_MAX];
        uint8_t sk[COALITION_SECRET_KEY_LEN];
        char err[CLI_PATH_MAX + 128] = "the key directory's path is too long";
        if (!key_path(cli, CLI_ADMIN_KEY_NAME, "key", path) ||
            coalition_secret_key_load(path, sk, err, sizeof(err)) != 0) {
            return usage_error(cli, NULL, "no key to sign for the coalition admin: %s", err);
        }
        int rv = coalition_client_set_signer(cli->client, "", sk);
        sodium_memzero(sk, sizeof(sk));
        if (rv != 0) {
            return report_error(cli, rv, error_message(cli, rv));
        }
    }
    int rv = coalition_client_cluster_change(cli->client, op, a->node_id, a->v[OPT_RAFT],
                                             a->v[OPT_CLIENT], a->role);
    if (rv == COALITION_E_UNAUTHENTICATED && cli->key_dir == NULL) {
        return report_error(cli, rv,
                            "membership changes are signed by the coalition admin: give "
                            "--key-dir with admin.key in it (or set COALITION_KEY_DIR)");
    }
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

/* ------------------------------------------------------------------------
 * Program and rules files (JSON), read before any connection is made */

/* Where a file is being read, for messages that name the file and the key. */
struct file_ctx {
    const char *path;
    char err[256];
};

static bool file_fail(struct file_ctx *fc, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(fc->err, sizeof(fc->err), "%s: %s", fc->path, msg);
    return false;
}

/* Every key of `obj` (at `where`, "" for the top level) is one of `keys`. */
static bool file_known_keys(struct file_ctx *fc, json_t *obj, const char *where,
                            const char *const *keys, size_t n)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        (void)value;
        bool known = false;
        for (size_t i = 0; i < n && !known; i++) {
            known = strcmp(key, keys[i]) == 0;
        }
        if (!known) {
            return file_fail(fc, "unknown key '%s%s'", where, key);
        }
    }
    return true;
}

/* Reads integer `key` of `obj` in [min, max] into *out; leaves *out as it
 * is when the key is absent, unless it is `required`. */
static bool file_int(struct file_ctx *fc, json_t *obj, const char *where, const char *key,
                     bool required, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return required ? file_fail(fc, "missing key '%s%s'", where, key) : true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        return file_fail(fc, "'%s%s' must be a whole number from %" PRId64 " to %" PRId64, where,
                         key, min, max);
    }
    *out = (int64_t)json_integer_value(v);
    return true;
}

static bool file_u32(struct file_ctx *fc, json_t *obj, const char *where, const char *key,
                     uint32_t *out)
{
    int64_t v = *out;
    if (!file_int(fc, obj, where, key, false, 0, UINT32_MAX, &v)) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Reads string `key` of `obj` (borrowed from the document) into *out. */
static bool file_text(struct file_ctx *fc, json_t *obj, const char *where, const char *key,
                      bool required, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return required ? file_fail(fc, "missing key '%s%s'", where, key) : true;
    }
    if (!json_is_string(v)) {
        return file_fail(fc, "'%s%s' must be a string", where, key);
    }
    if (strlen(json_string_value(v)) > COALITION_ID_MAX) {
        return file_fail(fc, "'%s%s' is longer than %d bytes", where, key, COALITION_ID_MAX);
    }
    *out = json_string_value(v);
    return true;
}

/* Opens `path` as a JSON object.  Returns it (owned) or NULL with fc->err. */
static json_t *file_load(struct file_ctx *fc)
{
    json_error_t jerr;
    json_t *doc = json_load_file(fc->path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        if (jerr.line > 0) {
            file_fail(fc, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        } else {
            file_fail(fc, "%s", jerr.text);
        }
        return NULL;
    }
    if (!json_is_object(doc)) {
        file_fail(fc, "not a JSON object");
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Reads a program file (docs/protocol.md) into f->program with the reader
 * PUT /v1/program uses (proto/program_json.h); its texts stay borrowed from
 * f->doc. */
static bool program_read(struct file_ctx *fc, struct rules_file *f)
{
    _Static_assert(PROGRAM_JSON_TEXT_MAX == COALITION_ID_MAX, "one limit on ids");
    _Static_assert(PROGRAM_JSON_CATEGORIES_MAX == COALITION_CATEGORIES_MAX, "one limit");
    _Static_assert(PROGRAM_JSON_CAMPAIGNS_MAX == COALITION_CAMPAIGNS_MAX, "one limit");
    Coalition__Program *pb = NULL;
    char err[PROGRAM_JSON_ERR_LEN];
    if (program_json_read(f->doc, NULL, &pb, err) != 0) {
        return file_fail(fc, "%s", err);
    }
    struct coalition_program *p = &f->program;
    p->point_value_mc = pb->point_value_mc;
    p->base_rate_milli = pb->base_rate_milli;
    p->min_purchase_cents = pb->min_purchase_cents;
    p->lock_days = pb->lock_days;
    for (size_t i = 0; i < pb->n_categories; i++) {
        f->categories[i].category = pb->categories[i]->category;
        f->categories[i].multiplier_pct = pb->categories[i]->multiplier_pct;
    }
    p->n_categories = pb->n_categories;
    p->categories = f->categories;
    for (size_t i = 0; i < pb->n_campaigns; i++) {
        const Coalition__Campaign *src = pb->campaigns[i];
        f->campaigns[i] = (struct coalition_campaign){.id = src->id,
                                                      .start_ms = src->start_ms,
                                                      .end_ms = src->end_ms,
                                                      .multiplier_pct = src->multiplier_pct,
                                                      .bonus_points = src->bonus_points,
                                                      .category = src->category};
    }
    p->n_campaigns = pb->n_campaigns;
    p->campaigns = f->campaigns;
    program_json_free(pb); /* the texts are f->doc's */
    return true;
}

/* Reads a rules file (docs/protocol.md) into f->rules. */
static bool rules_read(struct file_ctx *fc, struct rules_file *f)
{
    static const char *const keys[] = {"tiers", "expiry_months", "hold_timeout_s"};
    static const char *const tier_keys[] = {"name", "threshold", "multiplier_pct"};
    json_t *doc = f->doc;
    struct coalition_rules *r = &f->rules;
    if (!file_known_keys(fc, doc, "", keys, sizeof(keys) / sizeof(keys[0])) ||
        !file_u32(fc, doc, "", "expiry_months", &r->expiry_months) ||
        !file_u32(fc, doc, "", "hold_timeout_s", &r->hold_timeout_s)) {
        return false;
    }
    json_t *tiers = json_object_get(doc, "tiers");
    if (tiers == NULL) {
        return true;
    }
    if (!json_is_array(tiers)) {
        return file_fail(fc, "'tiers' must be an array");
    }
    if (json_array_size(tiers) > COALITION_TIERS_MAX) {
        return file_fail(fc, "at most %d tiers", COALITION_TIERS_MAX);
    }
    for (size_t i = 0; i < json_array_size(tiers); i++) {
        json_t *obj = json_array_get(tiers, i);
        struct coalition_tier *t = &f->tiers[i];
        char where[32];
        snprintf(where, sizeof(where), "tiers[%zu].", i);
        if (!json_is_object(obj)) {
            return file_fail(fc, "tiers[%zu] must be an object", i);
        }
        t->multiplier_pct = 100;
        if (!file_known_keys(fc, obj, where, tier_keys, sizeof(tier_keys) / sizeof(tier_keys[0])) ||
            !file_text(fc, obj, where, "name", true, &t->name) ||
            !file_int(fc, obj, where, "threshold", true, 0, INT64_MAX, &t->threshold) ||
            !file_u32(fc, obj, where, "multiplier_pct", &t->multiplier_pct)) {
            return false;
        }
        r->n_tiers++;
    }
    r->tiers = f->tiers;
    return true;
}

/* `program set` and `rules set`: reads --file into a->file. */
static int check_file(struct cli *cli, const struct command *cmd, struct args *a)
{
    struct file_ctx fc = {.path = a->v[OPT_FILE], .err = ""};
    a->file.doc = file_load(&fc);
    if (a->file.doc == NULL) {
        return usage_error(cli, cmd, "%s", fc.err);
    }
    bool ok = cmd->run == run_program_set ? program_read(&fc, &a->file) : rules_read(&fc, &a->file);
    if (!ok) {
        json_decref(a->file.doc);
        a->file.doc = NULL;
        return usage_error(cli, cmd, "%s", fc.err);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Checks of option combinations */

static bool given(const struct args *a, enum opt_index i)
{
    return a->v[i] != NULL;
}

/* award: exactly one of --points and --purchase-cents; the purchase's
 * details only with a purchase. */
static int check_award(struct cli *cli, const struct command *cmd, struct args *a)
{
    if (given(a, OPT_POINTS) == given(a, OPT_PURCHASE_CENTS)) {
        return usage_error(cli, cmd, "give exactly one of --points and --purchase-cents");
    }
    if (!given(a, OPT_PURCHASE_CENTS) &&
        (given(a, OPT_PAID_POINTS_CENTS) || given(a, OPT_CATEGORY))) {
        return usage_error(cli, cmd, "--paid-points-cents and --category go with --purchase-cents");
    }
    return 0;
}

static int check_lookup(struct cli *cli, const struct command *cmd, struct args *a)
{
    if ((int)given(a, OPT_CARD) + (int)given(a, OPT_PHONE) + (int)given(a, OPT_EMAIL) != 1) {
        return usage_error(cli, cmd, "give exactly one of --card, --phone and --email");
    }
    return 0;
}

static int check_identify(struct cli *cli, const struct command *cmd, struct args *a)
{
    if (!given(a, OPT_PHONE) && !given(a, OPT_EMAIL)) {
        return usage_error(cli, cmd, "give --phone, --email or both");
    }
    return 0;
}

/* settlement and report: a window that holds an instant, one output
 * format. */
static int check_csv(struct cli *cli, const struct command *cmd, struct args *a)
{
    if (a->from_ms >= a->to_ms) {
        return usage_error(cli, cmd, "--to must be after --from (the window is from <= t < to)");
    }
    if (cli->json && given(a, OPT_CSV)) {
        return usage_error(cli, cmd, "give --json or --csv, not both");
    }
    return 0;
}

static int check_report(struct cli *cli, const struct command *cmd, struct args *a)
{
    if (given(a, OPT_PARTNER) == given(a, OPT_ALL)) {
        return usage_error(cli, cmd, "give exactly one of --partner and --all");
    }
    return check_csv(cli, cmd, a);
}

#define WRITE_OPTS (BIT(OPT_PARTNER) | BIT(OPT_TXN))

static const struct command commands[] = {
    {"status", NULL, 0, 0, run_status, "status",
     "Shows the node: id, raft state (leader, follower, candidate, unavailable),\n"
     "membership (voter, standby, spare, none), the leader it knows, applied\n"
     "sequence and index, last log index, chain head hash.\n",
     0, NULL, 0, false},
    {"keygen", NULL, BIT(OPT_OUT), BIT(OPT_OUT), run_keygen, "keygen --out PREFIX",
     "Makes an Ed25519 key pair for a partner (or, as admin, for the coalition\n"
     "admin): the secret key in PREFIX.key (mode 0600, 128 hex digits) and the\n"
     "public key in PREFIX.pub, and prints the public key.  Never overwrites a\n"
     "key file.  Needs no node.  In a --key-dir, name them <partner>.key and\n"
     "admin.key.\n",
     0, NULL, 0, true},
    {"partner", "add", BIT(OPT_ID) | BIT(OPT_NAME) | BIT(OPT_TXN) | BIT(OPT_PUBLIC_KEY),
     BIT(OPT_ID) | BIT(OPT_NAME), run_partner_add,
     "partner add P --name NAME [--public-key HEX|FILE] [--txn ID]",
     "Admits partner P to the coalition with its Ed25519 public key (64 hex\n"
     "digits, or a file holding them; default with --key-dir: DIR/P.pub).\n"
     "Signed with the admin key (DIR/admin.key).  P may also be given as\n"
     "--id P.  --txn defaults to P, so repeating the same command is answered\n"
     "as a duplicate.\n",
     0, check_partner_add, BIT(OPT_ID), false},
    {"apikey", "create", BIT(OPT_PARTNER) | BIT(OPT_TXN), BIT(OPT_PARTNER), run_apikey_create,
     "apikey create --partner P [--txn ID]",
     "Issues an API key for a POS terminal of partner P, signed with P's key\n"
     "from --key-dir.  The key is made here; the ledger records only its id\n"
     "and a hash of its secret.  Prints the key (\"<key id>.<secret>\") once on\n"
     "stdout; --json prints {\"api_key\":..,\"key_id\":..}.  It cannot be shown\n"
     "again.  --txn defaults to apikey-<key id>.\n",
     0, check_apikey, 0, false},
    {"apikey", "revoke", BIT(OPT_PARTNER) | BIT(OPT_KEY_ID) | BIT(OPT_TXN),
     BIT(OPT_PARTNER) | BIT(OPT_KEY_ID), run_apikey_revoke,
     "apikey revoke --partner P KEY_ID [--txn ID]",
     "Revokes partner P's API key KEY_ID (the 16 hex digits before the dot):\n"
     "it no longer authenticates.  Signed with P's key from --key-dir.  KEY_ID\n"
     "may also be given as --key-id.  --txn defaults to apikey-revoke-KEY_ID.\n",
     0, check_apikey, BIT(OPT_KEY_ID), false},
    {"member", "add", BIT(OPT_ID) | BIT(OPT_CARD) | BIT(OPT_TXN) | BIT(OPT_PARTNER), BIT(OPT_ID),
     run_member_add, "member add --id M [--card CARD] [--partner P] [--txn ID]",
     "Enrolls member M, optionally with a card number.  --partner names the\n"
     "enrolling partner; --txn defaults to M.\n",
     0, NULL, 0, false},
    {"award", NULL,
     WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS) | BIT(OPT_REASON) | BIT(OPT_PURCHASE_CENTS) |
         BIT(OPT_PAID_POINTS_CENTS) | BIT(OPT_CATEGORY),
     WRITE_OPTS | BIT(OPT_MEMBER), run_award,
     "award --partner P --member M --txn ID (--points N | --purchase-cents N\n"
     "        [--paid-points-cents N] [--category C]) [--reason TEXT]",
     "Partner P awards points to member M: N points, or what a purchase of N\n"
     "cents earns under P's program (the part paid with points earns nothing;\n"
     "--category selects a category rate and campaigns).  Shows the points and,\n"
     "for a purchase, the rule that set them.  Retrying with the same --txn is\n"
     "safe: the node answers with the original sequence number.\n",
     0, check_award, 0, false},
    {"redeem", NULL, WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS), run_redeem,
     "redeem --partner P --member M --points N --txn ID [--reason TEXT]",
     "Member M spends N points at partner P.\n", 0, NULL, 0, false},
    {"reverse", NULL, WRITE_OPTS | BIT(OPT_OF) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_OF), run_reverse,
     "reverse --partner P --of TXN --txn ID [--points N] [--reason TEXT]",
     "Partner P reverses its own award or redemption TXN (a refund).  Without\n"
     "--points, all that is left of TXN is reversed.\n",
     0, NULL, 0, false},
    {"transfer", NULL, WRITE_OPTS | BIT(OPT_FROM) | BIT(OPT_TO) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_FROM) | BIT(OPT_TO) | BIT(OPT_POINTS), run_transfer,
     "transfer --partner P --from M1 --to M2 --points N --txn ID [--reason TEXT]",
     "Member M1 gives N points to member M2, submitted by partner P.\n", 0, NULL, 0, false},
    {"balance", NULL, BIT(OPT_MEMBER) | BIT(OPT_CONSISTENT) | BIT(OPT_AT), BIT(OPT_MEMBER),
     run_balance, "balance --member M [--at DATE] [--consistent]",
     "Shows the points member M can spend now (or at DATE: expiry and locks\n"
     "evaluated then), the points held and still locked, the tier and the\n"
     "points to earn for the next one.  The node asked answers from its own\n"
     "state, which may lag the leader; with --consistent the leader answers\n"
     "after a raft barrier (a follower forwards the read), so every write\n"
     "acknowledged before is seen.  DATE: YYYY-MM-DD or\n"
     "YYYY-MM-DDTHH:MM:SS[.mmm]Z (UTC).\n",
     BIT(OPT_AT), NULL, 0, false},
    {"history", NULL, BIT(OPT_MEMBER) | BIT(OPT_LIMIT) | BIT(OPT_CONSISTENT), BIT(OPT_MEMBER),
     run_history, "history --member M [--limit N] [--consistent]",
     "Lists the entries that touched member M, newest first (default 20, at\n"
     "most 1000).  --consistent as for balance.\n",
     0, NULL, 0, false},
    {"hold", NULL,
     WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS) | BIT(OPT_TIMEOUT_S) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_MEMBER) | BIT(OPT_POINTS), run_hold,
     "hold --partner P --member M --points N --txn ID [--timeout-s S] [--reason TEXT]",
     "Partner P reserves N points of member M (the first step of a redemption\n"
     "at the till).  The hold ends by capture or release, or after S seconds\n"
     "(default: the coalition's hold timeout), when the points go back.\n",
     0, NULL, 0, false},
    {"capture", NULL, WRITE_OPTS | BIT(OPT_HOLD) | BIT(OPT_POINTS) | BIT(OPT_REASON),
     WRITE_OPTS | BIT(OPT_HOLD), run_capture,
     "capture --partner P --hold TXN --txn ID [--points N] [--reason TEXT]",
     "Partner P redeems N points of its hold TXN (default: all of it); the\n"
     "rest goes back to the member.\n",
     0, NULL, 0, false},
    {"release", NULL, WRITE_OPTS | BIT(OPT_HOLD) | BIT(OPT_REASON), WRITE_OPTS | BIT(OPT_HOLD),
     run_release, "release --partner P --hold TXN --txn ID [--reason TEXT]",
     "Partner P gives the points of its hold TXN back to the member.\n", 0, NULL, 0, false},
    {"expiring", NULL, BIT(OPT_MEMBER) | BIT(OPT_WITHIN) | BIT(OPT_AT) | BIT(OPT_CONSISTENT),
     BIT(OPT_MEMBER) | BIT(OPT_WITHIN), run_expiring,
     "expiring --member M --within DAYS [--at DATE] [--consistent]",
     "Lists member M's points that expire within DAYS days of now (or of\n"
     "DATE), soonest first: issuer, points, when earned, when they expire.\n",
     BIT(OPT_AT), NULL, 0, false},
    {"program", "set", WRITE_OPTS | BIT(OPT_FILE) | BIT(OPT_REASON), WRITE_OPTS | BIT(OPT_FILE),
     run_program_set, "program set --partner P --txn ID --file program.json [--reason TEXT]",
     "Replaces partner P's earning program with the one in the file (JSON, see\n"
     "docs/protocol.md): point value, base rate, category rates, campaigns,\n"
     "minimum purchase, lock days.  Unknown keys are an error.\n",
     0, check_file, 0, false},
    {"program", "show", BIT(OPT_PARTNER) | BIT(OPT_CONSISTENT), BIT(OPT_PARTNER), run_program_show,
     "program show --partner P [--consistent]",
     "Shows partner P's earning program as the ledger applies it: the one it\n"
     "set last, or the defaults (1 point per currency unit, a point worth 1\n"
     "cent) if it never set one.  --json prints the file `program set` reads.\n"
     "--consistent as for balance.\n",
     0, NULL, 0, false},
    {"rules", "set", BIT(OPT_PARTNER) | BIT(OPT_TXN) | BIT(OPT_FILE) | BIT(OPT_REASON),
     BIT(OPT_TXN) | BIT(OPT_FILE), run_rules_set,
     "rules set --txn ID --file rules.json [--partner P] [--reason TEXT]",
     "Replaces the coalition rules with those in the file (JSON, see\n"
     "docs/protocol.md): tiers, expiry in months, default hold timeout.\n"
     "Unknown keys are an error.\n",
     0, check_file, 0, false},
    {"card", "add", BIT(OPT_MEMBER) | BIT(OPT_CARD) | BIT(OPT_TXN) | BIT(OPT_PARTNER),
     BIT(OPT_MEMBER) | BIT(OPT_CARD) | BIT(OPT_TXN), run_card_add,
     "card add --member M --card CARD --txn ID [--partner P]", "Links another card to member M.\n",
     0, NULL, 0, false},
    {"card", "replace",
     BIT(OPT_MEMBER) | BIT(OPT_OLD) | BIT(OPT_CARD) | BIT(OPT_TXN) | BIT(OPT_PARTNER),
     BIT(OPT_MEMBER) | BIT(OPT_OLD) | BIT(OPT_CARD) | BIT(OPT_TXN), run_card_replace,
     "card replace --member M --old CARD1 --card CARD2 --txn ID [--partner P]",
     "Replaces member M's card CARD1 (lost, say) with CARD2; the balance\n"
     "stays with the member.\n",
     0, NULL, 0, false},
    {"identify", NULL, BIT(OPT_MEMBER) | BIT(OPT_PHONE) | BIT(OPT_EMAIL) | BIT(OPT_TXN),
     BIT(OPT_MEMBER) | BIT(OPT_TXN), run_identify,
     "identify --member M [--phone PHONE] [--email EMAIL] --txn ID",
     "Makes member M findable by phone number and/or email.  The node hashes\n"
     "them with the coalition identity key; the raw values never enter the\n"
     "ledger.  Needs --api-key: the node makes the entry and signs it for the\n"
     "key's partner (--key-dir cannot sign what the node hashes).\n",
     0, check_identify, 0, false},
    {"lookup", NULL, BIT(OPT_CARD) | BIT(OPT_PHONE) | BIT(OPT_EMAIL) | BIT(OPT_CONSISTENT), 0,
     run_lookup, "lookup (--card CARD | --phone PHONE | --email EMAIL) [--consistent]",
     "Finds the member with this card, phone number or email.\n", 0, check_lookup, 0, false},
    {"merge", NULL,
     BIT(OPT_MEMBER) | BIT(OPT_INTO) | BIT(OPT_TXN) | BIT(OPT_PARTNER) | BIT(OPT_REASON),
     BIT(OPT_MEMBER) | BIT(OPT_INTO) | BIT(OPT_TXN), run_merge,
     "merge --member A --into B --txn ID [--partner P] [--reason TEXT]",
     "Merges member A into member B (two records of one person): B gets A's\n"
     "points (same lots, same expiry), cards and phone/email keys; A is closed\n"
     "and keeps its history.  Refused while A has open holds.\n",
     0, NULL, 0, false},
    {"erase", NULL, BIT(OPT_MEMBER) | BIT(OPT_TXN) | BIT(OPT_PARTNER) | BIT(OPT_REASON),
     BIT(OPT_MEMBER) | BIT(OPT_TXN), run_erase,
     "erase --member M --txn ID [--partner P] [--reason TEXT]",
     "Erases member M's personal data (cards, phone and email keys) and closes\n"
     "the account.\n",
     0, NULL, 0, false},
    {"settlement", NULL, BIT(OPT_FROM) | BIT(OPT_TO) | BIT(OPT_CSV), BIT(OPT_FROM) | BIT(OPT_TO),
     run_settlement, "settlement --from DATE --to DATE [--csv]",
     "Who owes whom for the entries from DATE (inclusive) to DATE (exclusive):\n"
     "the flow matrix (points of an issuer redeemed at another partner and\n"
     "their value), each partner's issued, redeemed, expired and outstanding\n"
     "points, liability, receivable, payable and net, and the payment\n"
     "between each pair of partners.  Money in currency units with 2\n"
     "decimals; --json and --csv give the exact thousandths of a cent (mc).\n"
     "The node asked answers from its own state (through seq N says how far).\n",
     BIT(OPT_FROM) | BIT(OPT_TO), check_csv, 0, false},
    {"report", NULL, BIT(OPT_PARTNER) | BIT(OPT_ALL) | BIT(OPT_FROM) | BIT(OPT_TO) | BIT(OPT_CSV),
     BIT(OPT_FROM) | BIT(OPT_TO), run_report,
     "report (--partner P | --all) --from DATE --to DATE [--csv]",
     "Program KPIs of partner P (or of the whole coalition) for the entries\n"
     "from DATE (inclusive) to DATE (exclusive): active members, repeat-purchase\n"
     "rate, retention rate (against the window of equal length before),\n"
     "average order value, points issued, redeemed and expired, breakage rate,\n"
     "outstanding points, liability, top flows.  A rate is n/a when there is\n"
     "nothing to divide by.\n",
     BIT(OPT_FROM) | BIT(OPT_TO), check_report, 0, false},
    {"verify", NULL, 0, 0, run_verify, "verify",
     "Asks the node to replay and check its whole ledger: hash chain, double\n"
     "entry, balances.  Exit status 1 if it finds a broken entry.\n",
     0, NULL, 0, false},
    {"cluster", "status", 0, 0, run_cluster_status, "cluster status",
     "Asks the node for the raft configuration (the leader's, if the node knows\n"
     "the leader), then every node with a client address for its status (1 s\n"
     "each unless --timeout-ms is given): id, addresses, role (voter, standby,\n"
     "spare), state (leader, follower, candidate, unavailable, or\n"
     "unreachable), applied index and sequence.\n",
     0, NULL, 0, false},
    {"cluster", "check", BIT(OPT_WAIT_S), 0, run_cluster_check, "cluster check [--wait-s S]",
     "Checks that the nodes of the configuration hold the same ledger.  Polls\n"
     "every node until they report one applied index (up to S seconds, default\n"
     "10), then compares their verification reports (head hash, state\n"
     "digest); if they never converge, compares the hash of the last entry\n"
     "they all have.  Spares hold no log and are not compared.  Exit status 0\n"
     "if they agree, 1 if a node differs (named, with the first entry where it\n"
     "does), 3 if a node cannot be asked.\n",
     0, NULL, 0, false},
    {"cluster", "add", BIT(OPT_ID) | BIT(OPT_RAFT) | BIT(OPT_CLIENT) | BIT(OPT_ROLE),
     BIT(OPT_ID) | BIT(OPT_RAFT), run_cluster_add,
     "cluster add --id N --raft HOST:PORT [--client HOST:PORT] [--role R]",
     "Adds node N, reachable by its peers at the raft address, with role R\n"
     "(voter, standby or spare; default standby).  The leader makes the change\n"
     "(a follower forwards it); \"ok\" once it is made.  Signed with the\n"
     "coalition admin's key, admin.key in --key-dir: the leader refuses an\n"
     "unsigned change (UNAUTHENTICATED), another key (FORBIDDEN), and a change\n"
     "signed more than 5 minutes away from its clock or sent twice.\n",
     0, NULL, 0, false},
    {"cluster", "assign", BIT(OPT_ID) | BIT(OPT_ROLE), BIT(OPT_ID) | BIT(OPT_ROLE),
     run_cluster_assign, "cluster assign --id N --role R",
     "Gives node N the role R: voter, standby or spare.  Signed with admin.key\n"
     "from --key-dir, as cluster add.\n",
     0, NULL, 0, false},
    {"cluster", "remove", BIT(OPT_ID), BIT(OPT_ID), run_cluster_remove, "cluster remove --id N",
     "Removes node N from the configuration.  Signed with admin.key from\n"
     "--key-dir, as cluster add.\n",
     0, NULL, 0, false},
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
    fputs("usage: coalition [--node HOST:PORT] [--json] [--timeout-ms N] [--key-dir DIR]\n"
          "                 [--api-key KEY] COMMAND [options]\n"
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
          "  --key-dir DIR     sign every write (default: $COALITION_KEY_DIR): with\n"
          "                    DIR/<partner>.key for the partner's own writes, with\n"
          "                    DIR/admin.key for partner add, rules set, merge, erase,\n"
          "                    writes without --partner and cluster add/assign/remove\n"
          "  --api-key KEY     send this API key with every request (default:\n"
          "                    $COALITION_API_KEY); writes are then signed by the node\n"
          "                    for the key's partner, except the admin's and apikey\n"
          "                    commands, which --key-dir still signs\n"
          "\n"
          "exit status: 0 ok, 1 rejected by the ledger, 2 usage error,\n"
          "             3 node unreachable or no answer in time\n",
          out);
}

static void print_command_help(const struct command *cmd)
{
    printf("usage: coalition [global options] %s\n\n%s\n"
           "global options: --node HOST:PORT, --json, --timeout-ms N, --key-dir DIR,\n"
           "--api-key KEY (see coalition --help)\n",
           cmd->synopsis, cmd->help);
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
    case GOPT_KEY_DIR:
        if (arg[0] == '\0') {
            return usage_error(cli, cmd, "--key-dir needs a directory");
        }
        cli->key_dir = arg;
        return 0;
    case GOPT_API_KEY:
        if (strlen(arg) > COALITION_API_KEY_MAX) {
            return usage_error(cli, cmd, "--api-key is longer than %d bytes",
                               COALITION_API_KEY_MAX);
        }
        cli->api_key = arg[0] != '\0' ? arg : NULL;
        return 0;
    default:
        assert(false);
        return EXIT_USAGE;
    }
}

#define GLOBAL_LONG_OPTIONS                                                                        \
    {"node", required_argument, NULL, GOPT_NODE}, {"json", no_argument, NULL, GOPT_JSON},          \
        {"timeout-ms", required_argument, NULL, GOPT_TIMEOUT},                                     \
        {"key-dir", required_argument, NULL, GOPT_KEY_DIR},                                        \
        {"api-key", required_argument, NULL, GOPT_API_KEY},                                        \
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
    struct option longopts[OPT_COUNT + 7];
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
    /* "-": a bare argument comes back as 1 wherever it stands. */
    while ((c = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            print_command_help(cmd);
            return -1;
        }
        if (c == '?' || c == ':') {
            return bad_option(cli, cmd, argc, argv, c);
        }
        if (c == 1) {
            int pos = cmd->positional != 0 ? __builtin_ctzll(cmd->positional) : -1;
            if (pos < 0 || a->v[pos] != NULL) {
                return usage_error(cli, cmd, "unexpected argument '%s'", optarg);
            }
            a->v[pos] = optarg;
            continue;
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
    if (given(a, OPT_PURCHASE_CENTS) &&
        !parse_int64(a->v[OPT_PURCHASE_CENTS], &a->purchase_cents)) {
        return usage_error(cli, cmd, "--purchase-cents '%s' is not a whole number",
                           a->v[OPT_PURCHASE_CENTS]);
    }
    if (given(a, OPT_PAID_POINTS_CENTS) &&
        !parse_int64(a->v[OPT_PAID_POINTS_CENTS], &a->paid_points_cents)) {
        return usage_error(cli, cmd, "--paid-points-cents '%s' is not a whole number",
                           a->v[OPT_PAID_POINTS_CENTS]);
    }
    const struct {
        enum opt_index opt;
        uint32_t *out;
    } u32s[] = {{OPT_TIMEOUT_S, &a->timeout_s}, {OPT_WITHIN, &a->within_days}};
    for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
        uint64_t v = 0;
        if (given(a, u32s[i].opt) && !parse_uint(a->v[u32s[i].opt], UINT32_MAX, &v)) {
            return usage_error(cli, cmd, "--%s '%s' is not a whole number from 0 to %" PRIu32,
                               opt_names[u32s[i].opt], a->v[u32s[i].opt], UINT32_MAX);
        }
        *u32s[i].out = (uint32_t)v;
    }
    const struct {
        enum opt_index opt;
        uint64_t *out;
    } dates[] = {{OPT_AT, &a->at_ms}, {OPT_FROM, &a->from_ms}, {OPT_TO, &a->to_ms}};
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        enum opt_index o = dates[i].opt;
        if ((cmd->date_opts & BIT(o)) && given(a, o) && date_parse(a->v[o], dates[i].out) != 0) {
            return usage_error(cli, cmd,
                               "--%s '%s' is not a date (YYYY-MM-DD or "
                               "YYYY-MM-DDTHH:MM:SS[.mmm]Z, UTC)",
                               opt_names[o], a->v[o]);
        }
    }
    if (cmd->check != NULL) {
        return cmd->check(cli, cmd, a);
    }
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
        } else if (cmd->run == run_settlement || cmd->run == run_report) {
            timeout_ms = CLI_REPORT_TIMEOUT_MS_DEFAULT;
        }
    }
    if (cmd->offline) {
        rv = cmd->run(cli, &a);
        json_decref(a.file.doc);
        return rv;
    }
    cli_api_key = cli->api_key;
    rv = cli_client_create(cli->node, timeout_ms, &cli->client);
    if (rv == COALITION_E_INVALID_ARGUMENT) {
        rv = usage_error(cli, NULL, "--node '%s' is not HOST:PORT", cli->node);
    } else if (rv != 0) {
        char msg[320];
        snprintf(msg, sizeof(msg), "%s (%s)", coalition_strerror(rv), cli->node);
        rv = report_error(cli, rv, msg);
    } else {
        rv = cmd->run(cli, &a);
        coalition_client_destroy(cli->client);
        cli->client = NULL;
    }
    json_decref(a.file.doc);
    return rv;
}

int main(int argc, char **argv)
{
    struct cli cli = {.node = NULL, .json = false, .timeout_ms = 0, .client = NULL};
    assert(cli.key_dir == NULL && cli.api_key == NULL);
    /* Known before anything can fail, so that even a usage error is JSON. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            cli.json = true;
        }
    }
    const char *env_node = getenv("COALITION_NODE");
    cli.node = env_node != NULL && env_node[0] != '\0' ? env_node : COALITION_DEFAULT_NODE;
    const char *env_key_dir = getenv("COALITION_KEY_DIR");
    cli.key_dir = env_key_dir != NULL && env_key_dir[0] != '\0' ? env_key_dir : NULL;
    const char *env_api_key = getenv("COALITION_API_KEY");
    cli.api_key = env_api_key != NULL && env_api_key[0] != '\0' ? env_api_key : NULL;
    if (cli.api_key != NULL && strlen(cli.api_key) > COALITION_API_KEY_MAX) {
        return usage_error(&cli, NULL, "COALITION_API_KEY is longer than %d bytes",
                           COALITION_API_KEY_MAX);
    }

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
