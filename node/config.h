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
#define CONFIG_ID_MAX    65 /* a partner id (64 bytes) and NUL */

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
    char http[CONFIG_ADDR_MAX];              /* HTTP/JSON API address ("" = no HTTP API) */
    /* [security] (docs/security.md) */
    char admin_public_key[CONFIG_PATH_MAX];  /* hex Ed25519, or a file with it; genesis */
    char partner[CONFIG_ID_MAX];             /* the partner this node signs for ("" = none) */
    char partner_key_file[CONFIG_PATH_MAX];  /* its Ed25519 secret key (coalition keygen) */
    char trusted_keys_file[CONFIG_PATH_MAX]; /* peer node keys trusted before the ledger knows them
                                              */
    /* [limits] */
    unsigned http_header_max;    /* bytes of request line + headers (default 16384) */
    unsigned http_body_max;      /* bytes of an HTTP body (default 65536) */
    unsigned idle_timeout_ms;    /* close a connection idle this long (default 30000) */
    unsigned request_timeout_ms; /* a started request must arrive whole within (default 10000) */
    unsigned conns_per_addr;     /* open client connections per remote address (default 64) */
    unsigned partner_rps;        /* requests per partner per second, 0 = unlimited (default 2000) */
};

/* Fills every field with its default. */
void config_defaults(struct config *c);

/* Reads an INI file over *c: section [node] with keys id, data, listen,
 * raft, bootstrap, join, identity_key_file, http; section [raft] with snapshot_threshold,
 * snapshot_trailing, election_timeout_ms, heartbeat_timeout_ms,
 * forward_timeout_ms; section [security] with admin_public_key, partner,
 * partner_key_file, trusted_keys_file; section [limits] with
 * http_header_max, http_body_max, idle_timeout_ms, request_timeout_ms,
 * conns_per_addr, partner_rps.  Unknown sections or keys, bad numbers, or values too
 * long are errors.  Returns 0, or -1 with a message in err naming the file,
 * line and key. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Sets one key by name (as in the file; section "node", "raft", "security" or "limits").  The
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
