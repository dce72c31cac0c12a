/* coalition-example-pos: a checkout at a point-of-sale terminal, written
 * against libcoalition's public header only (client/coalition.h), as a POS
 * integrator would.  It finds the member by card, awards points for the
 * purchase, takes points as a discount in two steps (hold, then capture),
 * refunds the purchase (gives the discount back, reverses the award) and
 * shows the balance.  Every write is retried with the same transaction id
 * after TIMEOUT, UNREACHABLE, UNAVAILABLE, NOT_LEADER, BUSY or RATE_LIMITED:
 * the node answers a retry of a write it already applied with the original
 * result (duplicate), so a retry never books twice.  Run it again with the same --txn-prefix and
 * every write is answered as a duplicate.
 *
 *   coalition-example-pos --node H:P[,H:P...] --card CARD
 *       --partner P (--api-key KEY | --key FILE)
 *       [--purchase-cents N] [--discount-points N] [--no-refund]
 *       [--txn-prefix ID] [--timeout-ms N] [--attempts N] [--step-pause-ms N]
 *       [--library-retries]
 *
 * Output: one line per step, then a final line
 *   RESULT member=M awarded=N captured=N returned=N refunded=N balance=N
 *          duplicates=N retries=N node=H:P
 * Exit status: 0 done, 1 a step was refused, 2 usage, 3 no node answered. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coalition.h"

#define POS_TIMEOUT_MS_DEFAULT 2000
#define POS_ATTEMPTS_DEFAULT   10
#define POS_ATTEMPTS_MAX       100
#define POS_PAUSE_MS_FIRST     100 /* between attempts, doubling */
#define POS_PAUSE_MS_MAX       2000
#define POS_TXN_MAX            (COALITION_ID_MAX - 8) /* the prefix, leaving room for "-capture" */

struct pos_options {
    const char *node;
    const char *card;
    const char *api_key;
    const char *partner;
    const char *key_file;
    const char *txn_prefix;
    int64_t purchase_cents;
    int64_t discount_points;
    bool refund;
    int step_pause_ms;    /* the cashier's time between two steps */
    bool library_retries; /* let libcoalition retry instead of our loops */
    int timeout_ms;
    unsigned attempts;
};

struct pos {
    struct coalition_client *client;
    const struct pos_options *opt;
    /* What the node signs for us (API key) or we sign as: the partner the
     * writes are for. */
    const char *partner;
    unsigned attempts; /* of our own per step: 1 when the library retries */
    unsigned retries;
    unsigned duplicates;
};

static void pos_pause(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* True for the failures after which the same request may simply be sent
 * again: the node did not answer, could not be reached, or could not order
 * writes just now (an election).  Anything else is the ledger's verdict. */
static bool pos_retryable(int code)
{
    return code == COALITION_E_TIMEOUT || code == COALITION_E_UNREACHABLE ||
           code == COALITION_E_UNAVAILABLE || code == COALITION_E_NOT_LEADER ||
           code == COALITION_E_BUSY || code == COALITION_E_RATE_LIMITED;
}

/* Submits `t` (the same struct, hence the same txn id, on every attempt)
 * until it gets an answer that is not retryable or attempts run out.  The
 * library connects again by itself (moving down the node list) when a
 * connection broke.  Returns 0 with *r, or the last error code. */
static int pos_write(struct pos *p, const char *step, const struct coalition_txn *t,
                     struct coalition_txn_result *r)
{
    if (p->opt->step_pause_ms > 0) {
        pos_pause(p->opt->step_pause_ms);
    }
    int pause_ms = POS_PAUSE_MS_FIRST;
    int rv = COALITION_E_UNREACHABLE;
    for (unsigned attempt = 1; attempt <= p->attempts; attempt++) {
        rv = coalition_client_txn(p->client, t, r);
        if (rv == 0) {
            if (r->duplicate) {
                p->duplicates++;
            }
            return 0;
        }
        if (!pos_retryable(rv) || attempt == p->attempts) {
            break;
        }
        fprintf(stderr, "pos: %s (txn %s): %s on %s, retrying with the same txn id\n", step,
                t->txn_id, coalition_errname(rv), coalition_client_node(p->client));
        p->retries++;
        pos_pause(pause_ms);
        pause_ms = pause_ms * 2 < POS_PAUSE_MS_MAX ? pause_ms * 2 : POS_PAUSE_MS_MAX;
    }
    fprintf(stderr, "pos: %s (txn %s) failed: %s: %s\n", step, t->txn_id, coalition_errname(rv),
            coalition_client_errmsg(p->client));
    return rv;
}

/* Reads are retried the same way: they change nothing. */
static int pos_lookup(struct pos *p, char member[COALITION_ID_MAX + 1])
{
    int rv = COALITION_E_UNREACHABLE;
    for (unsigned attempt = 1; attempt <= p->attempts; attempt++) {
        rv = coalition_client_lookup(p->client, p->opt->card, NULL, NULL, member);
        if (rv == 0 || !pos_retryable(rv) || attempt == p->attempts) {
            break;
        }
        fprintf(stderr, "pos: lookup: %s on %s, retrying\n", coalition_errname(rv),
                coalition_client_node(p->client));
        p->retries++;
        pos_pause(POS_PAUSE_MS_FIRST);
    }
    if (rv != 0) {
        fprintf(stderr, "pos: lookup of card %s failed: %s: %s\n", p->opt->card,
                coalition_errname(rv), coalition_client_errmsg(p->client));
    }
    return rv;
}

static int pos_balance(struct pos *p, const char *member, struct coalition_balance *b)
{
    int rv = COALITION_E_UNREACHABLE;
    for (unsigned attempt = 1; attempt <= p->attempts; attempt++) {
        rv = coalition_client_balance(p->client, member, b);
        if (rv == 0 || !pos_retryable(rv) || attempt == p->attempts) {
            break;
        }
        fprintf(stderr, "pos: balance: %s on %s, retrying\n", coalition_errname(rv),
                coalition_client_node(p->client));
        p->retries++;
        pos_pause(POS_PAUSE_MS_FIRST);
    }
    if (rv != 0) {
        fprintf(stderr, "pos: balance of %s failed: %s: %s\n", member, coalition_errname(rv),
                coalition_client_errmsg(p->client));
    }
    return rv;
}

static int exit_status(int code)
{
    return code == COALITION_E_TIMEOUT || code == COALITION_E_UNREACHABLE ||
                   code == COALITION_E_UNAVAILABLE || code == COALITION_E_NOT_LEADER
               ? 3
               : 1;
}

/* The checkout.  Transaction ids are the prefix and the step, so that a
 * rerun of the same checkout repeats the same transactions. */
static int pos_checkout(struct pos *p)
{
    const struct pos_options *opt = p->opt;
    char member[COALITION_ID_MAX + 1];
    char id_award[COALITION_ID_MAX + 1], id_hold[COALITION_ID_MAX + 1];
    char id_capture[COALITION_ID_MAX + 1], id_refund[COALITION_ID_MAX + 1];
    char id_return[COALITION_ID_MAX + 1];
    snprintf(id_award, sizeof(id_award), "%s-award", opt->txn_prefix);
    snprintf(id_hold, sizeof(id_hold), "%s-hold", opt->txn_prefix);
    snprintf(id_capture, sizeof(id_capture), "%s-capture", opt->txn_prefix);
    snprintf(id_refund, sizeof(id_refund), "%s-refund", opt->txn_prefix);
    snprintf(id_return, sizeof(id_return), "%s-return", opt->txn_prefix);

    /* 1. Who is it?  A consistent read: the card may have been linked a
     * moment ago through another node. */
    coalition_client_set_consistent(p->client, true);
    int rv = pos_lookup(p, member);
    if (rv != 0) {
        return exit_status(rv);
    }
    struct coalition_balance b;
    rv = pos_balance(p, member, &b);
    if (rv != 0) {
        return exit_status(rv);
    }
    printf("member %s (card %s): %" PRId64 " points%s%s\n", member, opt->card, b.points,
           b.tier[0] != '\0' ? ", tier " : "", b.tier);

    /* 2. Points for the purchase, as the partner's program says. */
    struct coalition_txn_result r;
    struct coalition_txn award = {
        .kind = COALITION_TXN_AWARD,
        .partner = p->partner,
        .member = member,
        .txn_id = id_award,
        .purchase_cents = opt->purchase_cents,
        .reason = "example POS purchase",
    };
    rv = pos_write(p, "award", &award, &r);
    if (rv != 0) {
        return exit_status(rv);
    }
    int64_t awarded = r.points;
    printf("award: +%" PRId64 " points for %" PRId64 " cents (rule %s, seq %" PRIu64 "%s)\n",
           awarded, opt->purchase_cents, r.rule[0] != '\0' ? r.rule : "-", r.seq,
           r.duplicate ? ", duplicate" : "");

    /* 3. A discount paid with points: hold them while the payment runs,
     * capture once it went through (release if it had failed). */
    int64_t captured = 0;
    if (opt->discount_points > 0) {
        struct coalition_txn hold = {
            .kind = COALITION_TXN_HOLD,
            .partner = p->partner,
            .member = member,
            .txn_id = id_hold,
            .points = opt->discount_points,
            .timeout_s = 300,
            .reason = "example POS discount",
        };
        rv = pos_write(p, "hold", &hold, &r);
        if (rv != 0) {
            return exit_status(rv);
        }
        printf("hold: %" PRId64 " points (seq %" PRIu64 "%s)\n", r.points, r.seq,
               r.duplicate ? ", duplicate" : "");
        struct coalition_txn capture = {
            .kind = COALITION_TXN_CAPTURE,
            .partner = p->partner,
            .of_txn = id_hold,
            .txn_id = id_capture,
            .points = 0, /* all of the hold */
        };
        rv = pos_write(p, "capture", &capture, &r);
        if (rv != 0) {
            return exit_status(rv);
        }
        captured = r.points;
        printf("capture: %" PRId64 " points redeemed (seq %" PRIu64 "%s)\n", captured, r.seq,
               r.duplicate ? ", duplicate" : "");
    }

    /* 4. The customer brings the goods back: the discount paid with points
     * is given back (the points return to the lots they came from), then the
     * award is reversed.  In this order: an award whose points were spent
     * cannot be clawed back (POINTS_SPENT), and the discount may have spent
     * them. */
    int64_t refunded = 0;
    int64_t returned = 0;
    if (opt->refund && captured > 0) {
        struct coalition_txn give_back = {
            .kind = COALITION_TXN_REVERSE,
            .partner = p->partner,
            .of_txn = id_capture,
            .txn_id = id_return,
            .points = 0, /* all of the capture */
            .reason = "example POS refund: discount",
        };
        rv = pos_write(p, "refund discount", &give_back, &r);
        if (rv != 0) {
            return exit_status(rv);
        }
        returned = r.points;
        printf("refund: capture %s reversed, %" PRId64 " points back to the member (seq %" PRIu64
               "%s)\n",
               id_capture, returned, r.seq, r.duplicate ? ", duplicate" : "");
    }
    if (opt->refund) {
        struct coalition_txn refund = {
            .kind = COALITION_TXN_REVERSE,
            .partner = p->partner,
            .of_txn = id_award,
            .txn_id = id_refund,
            .points = 0, /* all that is left of the award */
            .reason = "example POS refund",
        };
        rv = pos_write(p, "refund", &refund, &r);
        if (rv != 0) {
            return exit_status(rv);
        }
        refunded = r.points;
        printf("refund: award %s reversed, %" PRId64 " points taken back (seq %" PRIu64 "%s)\n",
               id_award, refunded, r.seq, r.duplicate ? ", duplicate" : "");
    }

    rv = pos_balance(p, member, &b);
    if (rv != 0) {
        return exit_status(rv);
    }
    printf("balance: %" PRId64 " points (held %" PRId64 ", locked %" PRId64 ")\n", b.points, b.held,
           b.locked);
    printf("RESULT member=%s awarded=%" PRId64 " captured=%" PRId64 " returned=%" PRId64
           " refunded=%" PRId64 " balance=%" PRId64 " duplicates=%u retries=%u node=%s\n",
           member, awarded, captured, returned, refunded, b.points, p->duplicates, p->retries,
           coalition_client_node(p->client));
    return 0;
}

static void pos_usage(FILE *out)
{
    fputs("usage: coalition-example-pos --node H:P[,H:P...] --card CARD --partner P\n"
          "         (--api-key KEY | --key FILE) [options]\n"
          "  --node LIST           coalition nodes, tried in order (failover)\n"
          "  --card CARD           the member's card\n"
          "  --api-key KEY         this terminal's API key (the node signs for its partner)\n"
          "  --partner P           the partner the writes are for (with --api-key: the\n"
          "                        key's partner; the node refuses any other)\n"
          "  --key FILE            sign each write with this secret key (coalition keygen)\n"
          "  --purchase-cents N    purchase amount (default 12345)\n"
          "  --discount-points N   points to take as a discount (default 50; 0: none)\n"
          "  --no-refund           keep the purchase (no reversal)\n"
          "  --txn-prefix ID       transaction ids ID-award, ID-hold, ... (default: from\n"
          "                        the time and pid; the same prefix repeats the checkout)\n"
          "  --timeout-ms N        per attempt (default 2000)\n"
          "  --attempts N          per step (default 10)\n"
          "  --step-pause-ms N     the cashier's time before each write (default 0)\n"
          "  --library-retries     let libcoalition retry (coalition_client_set_retries)\n"
          "                        instead of the POS's own loop\n",
          out);
}

static bool parse_num(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* 0 with *opt filled, 1 after --help, 2 on a usage error (printed). */
static int pos_parse(int argc, char **argv, struct pos_options *opt)
{
    enum {
        O_NODE = 0x100,
        O_CARD,
        O_API,
        O_PARTNER,
        O_KEY,
        O_CENTS,
        O_DISC,
        O_NOREF,
        O_PREFIX,
        O_TIMEOUT,
        O_ATTEMPTS,
        O_STEP_PAUSE,
        O_LIB_RETRIES,
    };
    static const struct option longopts[] = {
        {"node", required_argument, NULL, O_NODE},
        {"card", required_argument, NULL, O_CARD},
        {"api-key", required_argument, NULL, O_API},
        {"partner", required_argument, NULL, O_PARTNER},
        {"key", required_argument, NULL, O_KEY},
        {"purchase-cents", required_argument, NULL, O_CENTS},
        {"discount-points", required_argument, NULL, O_DISC},
        {"no-refund", no_argument, NULL, O_NOREF},
        {"txn-prefix", required_argument, NULL, O_PREFIX},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"attempts", required_argument, NULL, O_ATTEMPTS},
        {"step-pause-ms", required_argument, NULL, O_STEP_PAUSE},
        {"library-retries", no_argument, NULL, O_LIB_RETRIES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(opt, 0, sizeof(*opt));
    opt->node = COALITION_DEFAULT_NODE;
    opt->purchase_cents = 12345;
    opt->discount_points = 50;
    opt->refund = true;
    opt->timeout_ms = POS_TIMEOUT_MS_DEFAULT;
    opt->attempts = POS_ATTEMPTS_DEFAULT;
    int c;
    int64_t v = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_NODE:
            opt->node = optarg;
            break;
        case O_CARD:
            opt->card = optarg;
            break;
        case O_API:
            opt->api_key = optarg;
            break;
        case O_PARTNER:
            opt->partner = optarg;
            break;
        case O_KEY:
            opt->key_file = optarg;
            break;
        case O_CENTS:
            if (!parse_num(optarg, 1, INT64_MAX, &opt->purchase_cents)) {
                goto bad;
            }
            break;
        case O_DISC:
            if (!parse_num(optarg, 0, COALITION_POINTS_MAX, &opt->discount_points)) {
                goto bad;
            }
            break;
        case O_NOREF:
            opt->refund = false;
            break;
        case O_PREFIX:
            opt->txn_prefix = optarg;
            break;
        case O_TIMEOUT:
            if (!parse_num(optarg, 1, 3600000, &v)) {
                goto bad;
            }
            opt->timeout_ms = (int)v;
            break;
        case O_ATTEMPTS:
            if (!parse_num(optarg, 1, POS_ATTEMPTS_MAX, &v)) {
                goto bad;
            }
            opt->attempts = (unsigned)v;
            break;
        case O_LIB_RETRIES:
            opt->library_retries = true;
            break;
        case O_STEP_PAUSE:
            if (!parse_num(optarg, 0, 60000, &v)) {
                goto bad;
            }
            opt->step_pause_ms = (int)v;
            break;
        case 'h':
            pos_usage(stdout);
            return 1;
        default:
            pos_usage(stderr);
            return 2;
        }
    }
    if (optind < argc || opt->card == NULL || opt->partner == NULL ||
        (opt->api_key == NULL && opt->key_file == NULL)) {
        fprintf(stderr, "pos: give --card, --partner, and --api-key or --key\n");
        pos_usage(stderr);
        return 2;
    }
    if (opt->txn_prefix != NULL && strlen(opt->txn_prefix) > POS_TXN_MAX) {
        fprintf(stderr, "pos: --txn-prefix has at most %d bytes\n", POS_TXN_MAX);
        return 2;
    }
    return 0;
bad:
    fprintf(stderr, "pos: bad value '%s' for %s\n", optarg, argv[optind - 1]);
    return 2;
}

int main(int argc, char **argv)
{
    struct pos_options opt;
    /* One line per step, even into a pipe or a file. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rv = pos_parse(argc, argv, &opt);
    if (rv != 0) {
        return rv == 1 ? 0 : 2;
    }
    char prefix[POS_TXN_MAX + 1];
    if (opt.txn_prefix == NULL) {
        snprintf(prefix, sizeof(prefix), "pos-%lld-%d", (long long)time(NULL), (int)getpid());
        opt.txn_prefix = prefix;
    }

    struct pos p = {.opt = &opt, .partner = opt.partner, .attempts = opt.attempts};
    /* Connects to the first node of the list that answers. */
    rv = coalition_client_create(opt.node, opt.timeout_ms, &p.client);
    if (rv != 0) {
        fprintf(stderr, "pos: cannot reach %s: %s\n", opt.node, coalition_errname(rv));
        return rv == COALITION_E_INVALID_ARGUMENT ? 2 : 3;
    }
    if (opt.library_retries) {
        /* The same thing done by the library: every synchronous call is sent
         * again (same request, same txn id) after TIMEOUT, UNREACHABLE,
         * UNAVAILABLE, NOT_LEADER, BUSY or RATE_LIMITED, moving down the
         * node list. */
        coalition_client_set_retries(p.client, opt.attempts - 1);
        p.attempts = 1;
    }
    if (opt.api_key != NULL) {
        /* The key goes with every request; the node signs our writes. */
        rv = coalition_client_set_api_key(p.client, opt.api_key);
    }
    if (rv == 0 && opt.key_file != NULL) {
        /* We sign each write ourselves; the key is copied into the client
         * and wiped from our buffer at once. */
        uint8_t sk[COALITION_SECRET_KEY_LEN];
        char err[512];
        rv = coalition_secret_key_load(opt.key_file, sk, err, sizeof(err));
        if (rv != 0) {
            fprintf(stderr, "pos: %s\n", err);
        } else {
            rv = coalition_client_set_signer(p.client, opt.partner, sk);
        }
        explicit_bzero(sk, sizeof(sk));
    }
    if (rv != 0) {
        coalition_client_destroy(p.client);
        return 2;
    }
    rv = pos_checkout(&p);
    coalition_client_destroy(p.client);
    return rv;
}
