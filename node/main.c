/* coalitiond: command line, start-up (data directory, storage, ledger check),
 * the libuv loop, and clean shutdown on SIGINT/SIGTERM.  The work itself
 * lives in server.c (network), batcher.c (group commit) and ledger.c. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <uv.h>

#include "batcher.h"
#include "errors.h"
#include "ledger.h"
#include "server.h"
#include "store.h"

#define DEFAULT_DATA     "./coalition-data"
#define DEFAULT_LISTEN   "127.0.0.1:7400"
#define SHUTDOWN_POLL_MS 10

struct node {
    uv_loop_t loop;
    struct store *store;
    struct ledger *ledger;
    struct batcher batcher;
    struct server server;
    uv_signal_t sigint, sigterm;
    uv_timer_t shutdown_timer;
    bool stopping;
};

struct options {
    const char *data;
    char host[256];
    int port;
    uint64_t node_id;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: coalitiond [options]\n"
            "Runs a Coalition Ledger node.  With no options: a single-node development\n"
            "coalition with data in " DEFAULT_DATA " serving on " DEFAULT_LISTEN ".\n"
            "\n"
            "  --data DIR          data directory (created if missing; default " DEFAULT_DATA ")\n"
            "  --listen HOST:PORT  client address (default " DEFAULT_LISTEN ")\n"
            "  --id N              node id reported by status (default 1)\n"
            "  --help              this text\n"
            "\n"
            "SIGINT or SIGTERM stops the node cleanly: answers under way are delivered,\n"
            "everything acknowledged is on disk.\n");
}

/* Splits "HOST:PORT" (IPv6 as "[::1]:PORT").  0 or -1. */
static int parse_hostport(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        return -1;
    }
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (hlen == 0 || hlen >= cap || *end != '\0' || end == colon + 1 || p < 0 || p > 65535) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"id", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->data = DEFAULT_DATA;
    o->node_id = 1;
    parse_hostport(DEFAULT_LISTEN, o->host, sizeof(o->host), &o->port);
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'd':
            o->data = optarg;
            break;
        case 'l':
            if (parse_hostport(optarg, o->host, sizeof(o->host), &o->port) != 0) {
                fprintf(stderr, "coalitiond: --listen wants HOST:PORT, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'i':
            o->node_id = strtoull(optarg, &end, 10);
            if (*end != '\0' || o->node_id == 0) {
                fprintf(stderr, "coalitiond: --id wants a positive integer\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "coalitiond: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* mkdir -p. */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
                return -1;
            }
            buf[i] = c;
        }
    }
    return 0;
}

static void on_fatal(int code)
{
    /* Fail-stop: nothing more may be acknowledged.  Whatever was synced is
     * recovered at the next start. */
    fprintf(stderr, "coalitiond: FATAL: %s (%s); stopping\n", coalition_strerror(code),
            coalition_errname(code));
    exit(1);
}

static void on_shutdown_poll(uv_timer_t *t)
{
    struct node *n = t->data;
    if (!server_idle(&n->server) || !batcher_idle(&n->batcher)) {
        return;
    }
    uv_timer_stop(t);
    server_close(&n->server);
    batcher_close(&n->batcher);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->shutdown_timer, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct node *n = sig->data;
    if (n->stopping) {
        return;
    }
    n->stopping = true;
    fprintf(stderr, "coalitiond: %s received, shutting down\n", strsignal(signum));
    server_stop(&n->server);
    uv_timer_start(&n->shutdown_timer, on_shutdown_poll, 0, SHUTDOWN_POLL_MS);
}

int main(int argc, char **argv)
{
    struct options o;
    int rv = parse_args(argc, argv, &o);
    if (rv != 0) {
        return rv;
    }
    /* A peer that disappears mid-write must not kill the node. */
    signal(SIGPIPE, SIG_IGN);

    char ledger_dir[4096];
    if (snprintf(ledger_dir, sizeof(ledger_dir), "%s/ledger", o.data) >= (int)sizeof(ledger_dir) ||
        make_dirs(o.data) != 0) {
        fprintf(stderr, "coalitiond: cannot create data directory '%s': %s\n", o.data,
                strerror(errno));
        return 1;
    }

    static struct node n;
    char *err = NULL;
    rv = store_open(ledger_dir, &n.store, &err);
    if (rv != 0) {
        fprintf(stderr, "coalitiond: cannot open storage in '%s': %s\n", ledger_dir,
                err != NULL ? err : coalition_strerror(rv));
        free(err);
        return 1;
    }
    rv = ledger_open(n.store, &n.ledger, &err);
    if (rv != 0) {
        fprintf(stderr, "coalitiond: the ledger in '%s' failed its start-up check: %s\n",
                ledger_dir, err != NULL ? err : coalition_strerror(rv));
        free(err);
        store_close(n.store);
        return 1;
    }
    struct ledger_head head;
    ledger_get_head(n.ledger, &head);

    uv_loop_init(&n.loop);
    rv = batcher_init(&n.batcher, &n.loop, n.ledger, n.store, on_fatal);
    if (rv == 0) {
        rv = server_start(&n.server, &n.loop, o.host, o.port, o.node_id, n.ledger, n.store,
                          &n.batcher);
        if (rv != 0) {
            fprintf(stderr, "coalitiond: cannot listen on %s:%d: %s\n", o.host, o.port,
                    uv_strerror(rv));
            rv = 1;
        }
    }
    if (rv != 0) {
        batcher_close(&n.batcher);
        uv_run(&n.loop, UV_RUN_DEFAULT);
        uv_loop_close(&n.loop);
        ledger_close(n.ledger);
        store_close(n.store);
        return 1;
    }
    uv_signal_init(&n.loop, &n.sigint);
    uv_signal_init(&n.loop, &n.sigterm);
    uv_timer_init(&n.loop, &n.shutdown_timer);
    n.sigint.data = n.sigterm.data = n.shutdown_timer.data = &n;
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);

    char hex[2 * LEDGER_HASH_LEN + 1];
    sodium_bin2hex(hex, sizeof(hex), head.hash, sizeof(head.hash));
    fprintf(stderr, "coalitiond: node %llu serving %s:%d, data %s, seq %llu, head %s\n",
            (unsigned long long)o.node_id, o.host, o.port, o.data, (unsigned long long)head.seq,
            hex);

    uv_run(&n.loop, UV_RUN_DEFAULT);
    fprintf(stderr,
            "coalitiond: %llu transactions in %llu batches (largest %llu), %llu log syncs "
            "(mean %llu us, max %llu us)\n",
            (unsigned long long)n.batcher.stats.txns, (unsigned long long)n.batcher.stats.batches,
            (unsigned long long)n.batcher.stats.batch_max_seen,
            (unsigned long long)n.batcher.stats.syncs,
            (unsigned long long)(n.batcher.stats.sync_us_total /
                                 (n.batcher.stats.syncs > 0 ? n.batcher.stats.syncs : 1)),
            (unsigned long long)n.batcher.stats.sync_us_max);
    rv = uv_loop_close(&n.loop);
    if (rv != 0) {
        fprintf(stderr, "coalitiond: loop closed with handles open: %s\n", uv_strerror(rv));
    }
    /* Everything acknowledged was synced by the batcher; sync once more so
     * that a clean stop leaves nothing for recovery to do. */
    store_sync(n.store);
    ledger_close(n.ledger);
    store_close(n.store);
    fprintf(stderr, "coalitiond: stopped\n");
    return 0;
}
