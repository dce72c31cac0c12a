/* coalitiond: command line and config file, start-up (data directory,
 * storage, ledger check, raft), the libuv loop, and clean shutdown on
 * SIGINT/SIGTERM.  The work itself lives in server.c (network), batcher.c
 * (group commit), cluster.c (raft), forward.c and ledger.c. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "batcher.h"
#include "sweeper.h"
#include "auth.h"
#include "cluster.h"
#include "config.h"
#include "errors.h"
#include "forward.h"
#include "http.h"
#include "ledger.h"
#include "server.h"
#include "store.h"

#define SHUTDOWN_POLL_MS 10

/* This node's keys: its partner's secret key (it signs its POS writes with
 * it, and it is the node's raft link key), the admin key (genesis, and
 * trusted for links) and the link keys trusted from a file. */
struct node_keys {
    bool has_secret;
    uint8_t secret[AUTH_SECRET_LEN]; /* partner_key_file */
    bool has_admin;
    uint8_t admin[AUTH_PUBLIC_LEN];      /* admin_public_key */
    uint8_t (*trusted)[AUTH_PUBLIC_LEN]; /* trusted_keys_file (malloc'd) */
    size_t n_trusted;
    struct ledger *ledger; /* partner keys on the ledger (borrowed) */
};

struct node {
    uv_loop_t loop;
    struct config cfg;
    struct store *store;
    struct ledger *ledger;
    struct cluster cluster;
    struct forwarder forwarder;
    struct batcher batcher;
    struct sweeper sweeper;
    struct identity_key identity;
    struct server server;
    struct node_keys keys;   /* signing, genesis and raft links */
    struct http_server http; /* only with cfg.http */
    uv_signal_t sigint, sigterm;
    uv_timer_t shutdown_timer;
    bool stopping;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: coalitiond [options]\n"
                 "Runs a Coalition Ledger node.  With no options: a single-node coalition with\n"
                 "data in ./coalition-data, clients on 127.0.0.1:7400, raft on 127.0.0.1:7401.\n"
                 "\n"
                 "  --config FILE              INI file ([node] and [raft] keys as below, with _\n"
                 "                             for -); options on the command line win\n"
                 "  --id N                     node id, unique in the coalition (default 1)\n"
                 "  --data DIR                 data directory (created if missing)\n"
                 "  --listen HOST:PORT         client address (frames; default 127.0.0.1:7400)\n"
                 "  --raft HOST:PORT           raft address for the other nodes (default: the\n"
                 "                             client port + 1)\n"
                 "  --bootstrap ID=HOST:PORT,...  start a new coalition with these voters (their\n"
                 "                             raft addresses; this node among them); ignored on\n"
                 "                             a restart\n"
                 "  --join HOST:PORT           join an existing coalition through the client\n"
                 "                             address of any member\n"
                 "  --snapshot-threshold N     raft entries between snapshots (default 8192)\n"
                 "  --snapshot-trailing N      entries kept in the log after one (default 2048)\n"
                 "  --election-timeout-ms N    raft election timeout (default 1000)\n"
                 "  --heartbeat-timeout-ms N   raft heartbeat (default 100)\n"
                 "  --forward-timeout-ms N     answer requests forwarded to the leader within\n"
                 "                             this time, or UNAVAILABLE (default 3000)\n"
                 "  --identity-key FILE        coalition identity key (64 hex digits, the same\n"
                 "                             on every node) for phone and email lookups\n"
                 "  --http HOST:PORT           serve the HTTP/JSON API there (default: none)\n"
                 "  --admin-public-key HEX|FILE coalition admin key (coalition keygen); a new\n"
                 "                             coalition records it in its first entry\n"
                 "  --partner ID               the partner this node signs writes for\n"
                 "  --partner-key FILE         that partner's secret key (coalition keygen)\n"
                 "  --trusted-keys FILE        public keys (hex, one per line) of peer nodes\n"
                 "                             trusted before the ledger lists them\n"
                 "  --set SECTION.KEY=VALUE    any config file key, e.g. limits.partner_rps=0\n"
                 "  --help                     this text\n"
                 "\n"
                 "Without --bootstrap or --join a new data directory becomes a one-node\n"
                 "coalition.  SIGINT or SIGTERM stops the node cleanly.\n");
}

/* Applies "section.key=value" (--set). */
static int set_dotted(struct config *cfg, const char *arg, char *err, size_t errlen)
{
    char section[32];
    const char *dot = strchr(arg, '.');
    const char *eq = strchr(arg, '=');
    if (dot == NULL || eq == NULL || eq < dot || (size_t)(dot - arg) >= sizeof(section)) {
        snprintf(err, errlen, "expected SECTION.KEY=VALUE");
        return -1;
    }
    memcpy(section, arg, (size_t)(dot - arg));
    section[dot - arg] = '\0';
    char key[64];
    if ((size_t)(eq - dot - 1) >= sizeof(key)) {
        snprintf(err, errlen, "key too long");
        return -1;
    }
    memcpy(key, dot + 1, (size_t)(eq - dot - 1));
    key[eq - dot - 1] = '\0';
    return config_set(cfg, section, key, eq + 1, err, errlen);
}

/* Reads --config first, then applies every other option over it. */
static int parse_args(int argc, char **argv, struct config *cfg)
{
    enum {
        O_CONFIG = 256,
        O_ID,
        O_DATA,
        O_LISTEN,
        O_RAFT,
        O_BOOTSTRAP,
        O_JOIN,
        O_SNAP_THRESHOLD,
        O_SNAP_TRAILING,
        O_ELECTION,
        O_HEARTBEAT,
        O_FORWARD,
        O_IDENTITY,
        O_HTTP,
        O_ADMIN_KEY,
        O_PARTNER,
        O_PARTNER_KEY,
        O_TRUSTED,
        O_SET,
        O_HELP
    };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"id", required_argument, NULL, O_ID},
        {"data", required_argument, NULL, O_DATA},
        {"listen", required_argument, NULL, O_LISTEN},
        {"raft", required_argument, NULL, O_RAFT},
        {"bootstrap", required_argument, NULL, O_BOOTSTRAP},
        {"join", required_argument, NULL, O_JOIN},
        {"snapshot-threshold", required_argument, NULL, O_SNAP_THRESHOLD},
        {"snapshot-trailing", required_argument, NULL, O_SNAP_TRAILING},
        {"election-timeout-ms", required_argument, NULL, O_ELECTION},
        {"heartbeat-timeout-ms", required_argument, NULL, O_HEARTBEAT},
        {"forward-timeout-ms", required_argument, NULL, O_FORWARD},
        {"identity-key", required_argument, NULL, O_IDENTITY},
        {"http", required_argument, NULL, O_HTTP},
        {"admin-public-key", required_argument, NULL, O_ADMIN_KEY},
        {"partner", required_argument, NULL, O_PARTNER},
        {"partner-key", required_argument, NULL, O_PARTNER_KEY},
        {"trusted-keys", required_argument, NULL, O_TRUSTED},
        {"set", required_argument, NULL, O_SET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    /* Option -> (section, key) of the config file. */
    static const struct {
        int opt;
        const char *section, *key;
    } keys[] = {
        {O_ID, "node", "id"},
        {O_DATA, "node", "data"},
        {O_LISTEN, "node", "listen"},
        {O_RAFT, "node", "raft"},
        {O_BOOTSTRAP, "node", "bootstrap"},
        {O_JOIN, "node", "join"},
        {O_SNAP_THRESHOLD, "raft", "snapshot_threshold"},
        {O_SNAP_TRAILING, "raft", "snapshot_trailing"},
        {O_ELECTION, "raft", "election_timeout_ms"},
        {O_HEARTBEAT, "raft", "heartbeat_timeout_ms"},
        {O_FORWARD, "raft", "forward_timeout_ms"},
        {O_IDENTITY, "node", "identity_key_file"},
        {O_HTTP, "node", "http"},
        {O_ADMIN_KEY, "security", "admin_public_key"},
        {O_PARTNER, "security", "partner"},
        {O_PARTNER_KEY, "security", "partner_key_file"},
        {O_TRUSTED, "security", "trusted_keys_file"},
    };
    char err[512];
    config_defaults(cfg);
    for (int pass = 0; pass < 2; pass++) {
        optind = 1;
        int ch;
        while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
            if (ch == O_HELP) {
                usage(stdout);
                exit(0);
            }
            if (ch == '?' || ch == ':') {
                usage(stderr);
                return 2;
            }
            if (pass == 0) {
                if (ch == O_CONFIG && config_load_file(cfg, optarg, err, sizeof(err)) != 0) {
                    fprintf(stderr, "coalitiond: %s\n", err);
                    return 2;
                }
                continue;
            }
            if (ch == O_SET && set_dotted(cfg, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "coalitiond: --set %s: %s\n", optarg, err);
                return 2;
            }
            for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                if (keys[i].opt == ch &&
                    config_set(cfg, keys[i].section, keys[i].key, optarg, err, sizeof(err)) != 0) {
                    fprintf(stderr, "coalitiond: %s\n", err);
                    return 2;
                }
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "coalitiond: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (cfg->raft[0] == '\0') {
        /* Default raft address: the client host, next port. */
        char host[CONFIG_ADDR_MAX];
        int port = 0;
        if (config_split_addr(cfg->listen, host, sizeof(host), &port) == 0 && port < 65535) {
            snprintf(cfg->raft, sizeof(cfg->raft), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                     port + 1);
        }
    }
    if (config_validate(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "coalitiond: %s\n", err);
        return 2;
    }
    return 0;
}

/* mkdir -p. */
static int make_dirs(const char *path)
{
    char buf[CONFIG_PATH_MAX];
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

/* Loads the keys the configuration names, once: 0, or -1 with a message in
 * err.  A node without partner_key_file signs for nobody and refuses every
 * link (it can only run a coalition alone). */
static int node_keys_load(const struct config *cfg, struct node_keys *k, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    if (auth_init() != 0) {
        snprintf(err, errlen, "libsodium did not initialize");
        return -1;
    }
    if ((cfg->partner[0] != '\0') != (cfg->partner_key_file[0] != '\0')) {
        snprintf(err, errlen, "[security] partner and partner_key_file go together");
        return -1;
    }
    if (cfg->partner_key_file[0] != '\0') {
        if (auth_load_secret(cfg->partner_key_file, k->secret, err, errlen) != 0) {
            return -1;
        }
        k->has_secret = true;
    }
    if (cfg->admin_public_key[0] != '\0') {
        if (auth_load_public(cfg->admin_public_key, k->admin, err, errlen) != 0) {
            return -1;
        }
        k->has_admin = true;
    }
    if (cfg->trusted_keys_file[0] != '\0' &&
        auth_load_public_list(cfg->trusted_keys_file, &k->trusted, &k->n_trusted, err, errlen) !=
            0) {
        return -1;
    }
    return 0;
}

static void node_keys_clear(struct node_keys *k)
{
    sodium_memzero(k->secret, sizeof(k->secret));
    free(k->trusted);
    k->trusted = NULL;
    k->n_trusted = 0;
}

/* link_trusted_cb: the admin key, the keys of trusted_keys_file (nodes
 * trusted before the ledger knows them: a coalition's first nodes, a node
 * catching up) and the partner keys the ledger has recorded, as of the state
 * this node has applied.  A ledger read error trusts nothing. */
static bool link_key_trusted(void *data, const uint8_t pk[LINK_PUBLIC_LEN])
{
    const struct node_keys *k = data;
    if (k->has_admin && sodium_memcmp(k->admin, pk, AUTH_PUBLIC_LEN) == 0) {
        return true;
    }
    for (size_t i = 0; i < k->n_trusted; i++) {
        if (sodium_memcmp(k->trusted[i], pk, AUTH_PUBLIC_LEN) == 0) {
            return true;
        }
    }
    bool on_ledger = false;
    return k->ledger != NULL && ledger_key_trusted(k->ledger, pk, &on_ledger) == 0 && on_ledger;
}

/* link_channel_cb: a forwarding channel from another node is served like a
 * client connection. */
static void node_on_channel(void *data, raft_id peer_id, const uint8_t peer_pk[LINK_PUBLIC_LEN],
                            int fd)
{
    server_adopt_channel(data, peer_id, peer_pk, fd);
}

/* forward_dial_fn: the forwarder reaches the leader over the links. */
static int node_dial_channel(void *data, uint64_t id, const char *addr, int *fd)
{
    struct cluster *c = data;
    return link_channel_open(&c->transport, id, addr, fd);
}

static void on_fatal(int code)
{
    /* Fail-stop: nothing more may be acknowledged.  A restart recovers from
     * the raft log and the store. */
    fprintf(stderr, "coalitiond: FATAL: %s (%s); stopping\n", coalition_strerror(code),
            coalition_errname(code));
    fflush(stderr);
    /* _exit, not exit: worker threads may be inside RocksDB, whose static
     * destructors exit() would run under them. */
    _exit(1);
}

static void on_cluster_closed(struct cluster *c)
{
    struct node *n = c->data;
    uv_close((uv_handle_t *)&n->sigint, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->shutdown_timer, NULL);
}

static void on_shutdown_poll(uv_timer_t *t)
{
    struct node *n = t->data;
    /* Answers under way are delivered first.  Known limitation: a client
     * that never reads its answers delays this until it goes away (see
     * docs/architecture.md, "Durability and crashes"). */
    if (!http_idle(&n->http) || !server_idle(&n->server) || !sweeper_idle(&n->sweeper) ||
        !batcher_idle(&n->batcher)) {
        return;
    }
    uv_timer_stop(t);
    http_close(&n->http);
    server_close(&n->server);
    sweeper_close(&n->sweeper);
    batcher_close(&n->batcher);
    forwarder_close(&n->forwarder, NULL);
    cluster_close(&n->cluster, on_cluster_closed);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct node *n = sig->data;
    if (n->stopping) {
        return;
    }
    n->stopping = true;
    fprintf(stderr, "coalitiond: %s received, shutting down\n", strsignal(signum));
    /* HTTP first: its requests go through the frame port, which must still
     * answer those under way. */
    http_stop(&n->http);
    server_stop(&n->server);
    sweeper_stop(&n->sweeper);
    uv_timer_start(&n->shutdown_timer, on_shutdown_poll, 0, SHUTDOWN_POLL_MS);
}

int main(int argc, char **argv)
{
    static struct node n;
    int rv = parse_args(argc, argv, &n.cfg);
    if (rv != 0) {
        return rv;
    }
    const struct config *cfg = &n.cfg;
    /* A peer that disappears mid-write must not kill the node. */
    signal(SIGPIPE, SIG_IGN);

    char ledger_dir[CONFIG_PATH_MAX + 16];
    if (snprintf(ledger_dir, sizeof(ledger_dir), "%s/ledger", cfg->data) >=
            (int)sizeof(ledger_dir) ||
        make_dirs(cfg->data) != 0) {
        fprintf(stderr, "coalitiond: cannot create data directory '%s': %s\n", cfg->data,
                strerror(errno));
        return 1;
    }
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

    char errbuf[512];
    if (cfg->identity_key_file[0] != '\0' &&
        identity_key_load(&n.identity, cfg->identity_key_file, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "coalitiond: %s\n", errbuf);
        ledger_close(n.ledger);
        store_close(n.store);
        return 1;
    }
    if (node_keys_load(cfg, &n.keys, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "coalitiond: %s\n", errbuf);
        node_keys_clear(&n.keys);
        ledger_close(n.ledger);
        store_close(n.store);
        return 1;
    }
    n.keys.ledger = n.ledger;
    struct link_config link = {.secret_key = n.keys.has_secret ? n.keys.secret : NULL,
                               .trusted = link_key_trusted,
                               .trusted_data = &n.keys,
                               .channel_accept = node_on_channel,
                               .channel_data = &n.server};
    uv_loop_init(&n.loop);
    char host[CONFIG_ADDR_MAX];
    int port = 0;
    config_split_addr(cfg->listen, host, sizeof(host), &port); /* validated */
    rv = forwarder_init(&n.forwarder, &n.loop, cfg->forward_timeout_ms);
    n.forwarder.dial = node_dial_channel;
    n.forwarder.dial_data = &n.cluster;
    if (rv == 0) {
        rv = cluster_start(&n.cluster, &n.loop, cfg, cfg->raft, cfg->listen, n.ledger, n.store,
                           &link, on_fatal, errbuf, sizeof(errbuf));
        if (rv != 0) {
            fprintf(stderr, "coalitiond: %s\n", errbuf);
            forwarder_close(&n.forwarder, NULL);
        }
    }
    if (rv == 0) {
        n.cluster.data = &n;
        n.cluster.send_join = server_send_join;
        n.cluster.send_join_data = &n.server;
        batcher_init(&n.batcher, &n.loop, &n.cluster, n.ledger);
        struct server_deps deps = {.node_id = cfg->id,
                                   .ledger = n.ledger,
                                   .store = n.store,
                                   .batcher = &n.batcher,
                                   .cluster = &n.cluster,
                                   .forwarder = &n.forwarder,
                                   .identity = &n.identity,
                                   .partner = cfg->partner,
                                   .partner_sk = n.keys.has_secret ? n.keys.secret : NULL,
                                   .partner_rps = cfg->partner_rps};
        rv = sweeper_init(&n.sweeper, &n.loop, &n.cluster, n.ledger, &n.batcher);
        if (rv == 0 && n.keys.has_admin) {
            sweeper_set_genesis(&n.sweeper, n.keys.admin);
        }
        if (rv == 0) {
            rv = server_start(&n.server, &n.loop, host, port, &deps);
            if (rv != 0) {
                sweeper_close(&n.sweeper);
            }
        }
        const char *where = cfg->listen;
        if (rv == 0 && cfg->http[0] != '\0') {
            /* The HTTP API's requests reach the node through its own frame
             * port; the node may forward them to the leader, so they wait
             * a little longer than a forwarded request does. */
            struct http_deps hdeps = {.node_id = cfg->id,
                                      .node_addr = cfg->listen,
                                      .cluster = &n.cluster,
                                      .batcher = &n.batcher,
                                      .node_timeout_ms = (uint64_t)cfg->forward_timeout_ms + 2000,
                                      .header_max = cfg->http_header_max,
                                      .body_max = cfg->http_body_max,
                                      .idle_timeout_ms = cfg->idle_timeout_ms,
                                      .request_timeout_ms = cfg->request_timeout_ms,
                                      .conns_per_addr = cfg->conns_per_addr};
            rv = http_start(&n.http, &n.loop, cfg->http, &hdeps);
            if (rv != 0) {
                where = cfg->http;
                server_stop(&n.server);
                server_close(&n.server);
                sweeper_close(&n.sweeper);
            }
        }
        if (rv != 0) {
            fprintf(stderr, "coalitiond: cannot listen on %s: %s\n", where, uv_strerror(rv));
            batcher_close(&n.batcher);
            forwarder_close(&n.forwarder, NULL);
            cluster_close(&n.cluster, NULL);
        }
    }
    if (rv != 0) {
        uv_run(&n.loop, UV_RUN_DEFAULT);
        if (n.cluster.closing) {
            cluster_free(&n.cluster);
        }
        uv_loop_close(&n.loop);
        node_keys_clear(&n.keys);
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

    struct ledger_head head;
    ledger_get_head(n.ledger, &head);
    char hex[2 * LEDGER_HASH_LEN + 1];
    sodium_bin2hex(hex, sizeof(hex), head.hash, sizeof(head.hash));
    fprintf(stderr,
            "coalitiond: node %llu serving clients on %s%s%s, raft on %s, data %s, seq %llu, "
            "index %llu, head %s\n",
            (unsigned long long)cfg->id, cfg->listen, cfg->http[0] != '\0' ? ", HTTP on " : "",
            cfg->http, cfg->raft, cfg->data, (unsigned long long)head.seq,
            (unsigned long long)head.applied_index, hex);

    uv_run(&n.loop, UV_RUN_DEFAULT);
    fprintf(stderr, "coalitiond: proposed %llu transactions in %llu batches (largest %llu)\n",
            (unsigned long long)n.batcher.stats.txns, (unsigned long long)n.batcher.stats.batches,
            (unsigned long long)n.batcher.stats.batch_max_seen);
    cluster_free(&n.cluster);
    node_keys_clear(&n.keys);
    rv = uv_loop_close(&n.loop);
    if (rv != 0) {
        fprintf(stderr, "coalitiond: loop closed with handles open: %s\n", uv_strerror(rv));
    }
    /* Leave nothing for recovery to replay after a clean stop. */
    store_sync(n.store);
    ledger_close(n.ledger);
    store_close(n.store);
    fprintf(stderr, "coalitiond: stopped\n");
    return 0;
}
