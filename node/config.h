/* Node configuration: defaults, an INI file (libinih) and the parsing of
 * address lists.  Command-line options (node/main.c) override the file.  No
 * I/O other than reading the file. */
#ifndef COALITION_CONFIG_H
#define COALITION_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_ADDR_MAX  256 /* "host:port" */
#define CONFIG_PATH_MAX  4096
#define CONFIG_PEERS_MAX 16

struct config_peer {
    uint64_t id;
    char addr[CONFIG_ADDR_MAX];
};

struct config {
    uint64_t id;                                    /* node id, >= 1 (default 1) */
    char data[CONFIG_PATH_MAX];                     /* data directory (default ./coalition-data) */
    char listen[CONFIG_ADDR_MAX];                   /* client address (default 127.0.0.1:7400) */
    char raft[CONFIG_ADDR_MAX];                     /* raft address ("" = listen port + 1) */
    struct config_peer bootstrap[CONFIG_PEERS_MAX]; /* first voters of a new coalition */
    size_t n_bootstrap;
    char join[CONFIG_ADDR_MAX];              /* client address of a member to join ("" = none) */
    unsigned snapshot_threshold;             /* raft entries between snapshots (default 8192) */
    unsigned snapshot_trailing;              /* entries kept after a snapshot (default 2048) */
    unsigned election_timeout_ms;            /* default 1000 */
    unsigned heartbeat_timeout_ms;           /* default 100 */
    unsigned forward_timeout_ms;             /* answer forwarded requests within (default 3000) */
    char identity_key_file[CONFIG_PATH_MAX]; /* coalition identity key ("" = none) */
};

/* Fills every field with its default. */
void config_defaults(struct config *c);

/* Reads an INI file over *c: section [node] with keys id, data, listen,
 * raft, bootstrap, join, identity_key_file; section [raft] with snapshot_threshold,
 * snapshot_trailing, election_timeout_ms, heartbeat_timeout_ms,
 * forward_timeout_ms.  Unknown sections or keys, bad numbers, or values too
 * long are errors.  Returns 0, or -1 with a message in err naming the file,
 * line and key. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Sets one key by name (as in the file; section "node" or "raft").  The
 * command line uses this too.  0 or -1 with a message. */
int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen);

/* Parses "1=host:port,2=host:port" into out (at most max).  Ids must be >= 1
 * and distinct, addresses valid host:port.  0 or -1 with a message. */
int config_parse_peers(const char *s, struct config_peer *out, size_t max, size_t *n, char *err,
                       size_t errlen);

/* Splits "host:port" (IPv6 as "[::1]:port").  0 or -1. */
int config_split_addr(const char *addr, char *host, size_t hostlen, int *port);

/* Checks the whole configuration: id >= 1; listen and raft parse; if
 * bootstrap is given it contains this node's id with this node's raft
 * address; bootstrap and join are not both given.  0 or -1 with message. */
int config_validate(const struct config *c, char *err, size_t errlen);

#endif
