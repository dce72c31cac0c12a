/* Node configuration (contract in config.h): defaults, the INI file read
 * with libinih, one setter shared by the file and the command line, the
 * parsing of addresses and peer lists, and the whole-configuration check.
 * Every value is checked strictly: a typo is an error, never a default. */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#define CONFIG_DEFAULT_DATA   "./coalition-data"
#define CONFIG_DEFAULT_LISTEN "127.0.0.1:7400"

/* Bounds of the numeric settings.  Raft needs an election timeout well above
 * network round trips and a heartbeat below it (checked in config_validate,
 * so that the command line may set them in any order). */
#define CONFIG_ELECTION_MS_MIN  100u
#define CONFIG_ELECTION_MS_MAX  60000u
#define CONFIG_HEARTBEAT_MS_MIN 10u
#define CONFIG_HEARTBEAT_MS_MAX 60000u
#define CONFIG_FORWARD_MS_MIN   100u
#define CONFIG_FORWARD_MS_MAX   600000u
#define CONFIG_THRESHOLD_MIN    2u
#define CONFIG_SNAPSHOT_MAX     1000000000u
#define CONFIG_HOST_NAME_MAX    253 /* longest DNS name */

_Static_assert(CONFIG_HEARTBEAT_MS_MIN < CONFIG_ELECTION_MS_MIN,
               "some heartbeat must fit below the smallest election timeout");
_Static_assert(INET6_ADDRSTRLEN + sizeof("[]:65535") <= CONFIG_ADDR_MAX,
               "any IPv6 address with a port must fit");
_Static_assert(CONFIG_PEERS_MAX >= 1, "a coalition has at least one voter");

/* Formats an error into err (which may be NULL or empty) and returns -1. */
static int config_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int config_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Strict unsigned decimal: digits only (no sign, space or suffix), no
 * overflow.  Returns true and *out on success. */
static bool parse_u64(const char *s, uint64_t *out)
{
    assert(s != NULL && out != NULL);
    if (*s == '\0') {
        return false;
    }
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* A host name in the usual sense: labels of letters, digits and '-' (not
 * first or last) separated by single dots.  IPv4 literals are checked
 * separately, since they also look like names. */
static bool valid_host_name(const char *h, size_t len)
{
    if (len == 0 || len > CONFIG_HOST_NAME_MAX) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = h[i];
        if (ch == '.') {
            if (label == 0 || h[i - 1] == '-') {
                return false;
            }
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)ch) && ch != '-') {
            return false;
        }
        if (ch == '-' && label == 0) {
            return false;
        }
        if (++label > 63) {
            return false;
        }
    }
    return label > 0 && h[len - 1] != '-';
}

/* True if every character is a digit or a dot: such a host must be a valid
 * IPv4 address, not a name ("1.2.3.999" is a typo, not a host). */
static bool looks_numeric(const char *h, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (h[i] != '.' && (h[i] < '0' || h[i] > '9')) {
            return false;
        }
    }
    return true;
}

int config_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    if (addr == NULL) {
        return -1;
    }
    size_t len = strnlen(addr, CONFIG_ADDR_MAX);
    if (len == 0 || len >= CONFIG_ADDR_MAX) {
        return -1;
    }
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        return -1;
    }
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    char tmp[CONFIG_ADDR_MAX];
    if (addr[0] == '[') {
        /* "[v6]:port": the bracket must close right before the colon. */
        if (hlen < 3 || addr[hlen - 1] != ']') {
            return -1;
        }
        h = addr + 1;
        hlen -= 2;
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, tmp, &a6) != 1) {
            return -1;
        }
    } else {
        if (hlen == 0 || memchr(addr, ':', hlen) != NULL) {
            return -1; /* a bare IPv6 address needs brackets */
        }
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        if (looks_numeric(tmp, hlen)) {
            struct in_addr a4;
            if (inet_pton(AF_INET, tmp, &a4) != 1) {
                return -1;
            }
        } else if (!valid_host_name(tmp, hlen)) {
            return -1;
        }
    }
    uint64_t p = 0;
    if (!parse_u64(colon + 1, &p) || p < 1 || p > 65535) {
        return -1;
    }
    if (host != NULL) {
        if (hlen >= hostlen) {
            return -1;
        }
        memcpy(host, tmp, hlen + 1);
    }
    if (port != NULL) {
        *port = (int)p;
    }
    return 0;
}

/* Copies item [s, s+len) without surrounding blanks into out (cap bytes).
 * False if it does not fit. */
static bool copy_trimmed(const char *s, size_t len, char *out, size_t cap)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }
    if (len >= cap) {
        return false;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

/* Two addresses name the same endpoint: same port, same host ignoring case
 * (names are case-insensitive; numeric forms are compared as written). */
static bool same_addr(const char *a, const char *b)
{
    char ha[CONFIG_ADDR_MAX], hb[CONFIG_ADDR_MAX];
    int pa = 0, pb = 0;
    if (config_split_addr(a, ha, sizeof(ha), &pa) != 0 ||
        config_split_addr(b, hb, sizeof(hb), &pb) != 0) {
        return strcmp(a, b) == 0;
    }
    return pa == pb && strcasecmp(ha, hb) == 0;
}

int config_parse_peers(const char *s, struct config_peer *out, size_t max, size_t *n, char *err,
                       size_t errlen)
{
    assert(s != NULL && n != NULL);
    assert(out != NULL || max == 0);
    size_t count = 0;
    const char *p = s;
    /* An empty (or blank) list is no peers at all. */
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '\0') {
        *n = 0;
        return 0;
    }
    p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[CONFIG_ADDR_MAX + 32];
        if (!copy_trimmed(p, len, item, sizeof(item))) {
            return config_fail(err, errlen, "peer %zu: too long", count + 1);
        }
        if (item[0] == '\0') {
            return config_fail(err, errlen, "peer %zu: empty (expected ID=HOST:PORT)", count + 1);
        }
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            return config_fail(err, errlen, "peer '%s': expected ID=HOST:PORT", item);
        }
        *eq = '\0';
        const char *addr = eq + 1;
        uint64_t id = 0;
        if (!parse_u64(item, &id) || id == 0) {
            return config_fail(err, errlen, "peer '%s=%s': id must be a number >= 1", item, addr);
        }
        if (strlen(addr) >= CONFIG_ADDR_MAX) {
            return config_fail(err, errlen, "peer %llu: address too long (at most %d bytes)",
                               (unsigned long long)id, CONFIG_ADDR_MAX - 1);
        }
        if (config_split_addr(addr, NULL, 0, NULL) != 0) {
            return config_fail(err, errlen, "peer %llu: bad address '%s' (expected HOST:PORT)",
                               (unsigned long long)id, addr);
        }
        if (count >= max) {
            return config_fail(err, errlen, "too many peers (at most %zu)", max);
        }
        for (size_t i = 0; i < count; i++) {
            if (out[i].id == id) {
                return config_fail(err, errlen, "peer %llu given twice", (unsigned long long)id);
            }
            if (same_addr(out[i].addr, addr)) {
                return config_fail(err, errlen, "peers %llu and %llu have the same address %s",
                                   (unsigned long long)out[i].id, (unsigned long long)id, addr);
            }
        }
        out[count].id = id;
        memcpy(out[count].addr, addr, strlen(addr) + 1);
        count++;
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    assert(count >= 1 && count <= max);
    *n = count;
    return 0;
}

void config_defaults(struct config *c)
{
    assert(c != NULL);
    memset(c, 0, sizeof(*c));
    c->id = 1;
    memcpy(c->data, CONFIG_DEFAULT_DATA, sizeof(CONFIG_DEFAULT_DATA));
    memcpy(c->listen, CONFIG_DEFAULT_LISTEN, sizeof(CONFIG_DEFAULT_LISTEN));
    c->snapshot_threshold = 8192;
    c->snapshot_trailing = 2048;
    c->election_timeout_ms = 1000;
    c->heartbeat_timeout_ms = 100;
    c->forward_timeout_ms = 3000;
    c->http_header_max = 16384;
    c->http_body_max = 65536;
    c->idle_timeout_ms = 30000;
    c->request_timeout_ms = 10000;
    c->conns_per_addr = 64;
    c->partner_rps = 2000;
}

/* Sets a string field of capacity cap; `check_addr`: value must be a valid
 * HOST:PORT, or empty if `may_be_empty`. */
static int set_string(char *field, size_t cap, const char *section, const char *key,
                      const char *value, bool check_addr, bool may_be_empty, char *err,
                      size_t errlen)
{
    size_t len = strlen(value);
    if (len >= cap) {
        return config_fail(err, errlen, "[%s] %s: too long (at most %zu bytes)", section, key,
                           cap - 1);
    }
    if (len == 0 && !may_be_empty) {
        return config_fail(err, errlen, "[%s] %s: must not be empty", section, key);
    }
    if (len > 0 && check_addr && config_split_addr(value, NULL, 0, NULL) != 0) {
        return config_fail(err, errlen,
                           "[%s] %s: bad address '%s' (expected HOST:PORT or [IPV6]:PORT, "
                           "port 1..65535)",
                           section, key, value);
    }
    memcpy(field, value, len + 1);
    return 0;
}

static int set_unsigned(unsigned *field, unsigned min, unsigned max, const char *section,
                        const char *key, const char *value, char *err, size_t errlen)
{
    uint64_t v = 0;
    if (!parse_u64(value, &v)) {
        return config_fail(err, errlen, "[%s] %s: '%s' is not an unsigned number", section, key,
                           value);
    }
    if (v < min || v > max) {
        return config_fail(err, errlen, "[%s] %s: must be %u..%u, got %s", section, key, min, max,
                           value);
    }
    *field = (unsigned)v;
    return 0;
}

int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen)
{
    assert(c != NULL && section != NULL && key != NULL && value != NULL);
    if (strcmp(section, "node") == 0) {
        if (strcmp(key, "id") == 0) {
            uint64_t id = 0;
            if (!parse_u64(value, &id) || id == 0) {
                return config_fail(err, errlen, "[node] id: must be a number >= 1, got '%s'",
                                   value);
            }
            c->id = id;
            return 0;
        }
        if (strcmp(key, "data") == 0) {
            return set_string(c->data, sizeof(c->data), section, key, value, false, false, err,
                              errlen);
        }
        if (strcmp(key, "listen") == 0) {
            return set_string(c->listen, sizeof(c->listen), section, key, value, true, false, err,
                              errlen);
        }
        if (strcmp(key, "raft") == 0) {
            return set_string(c->raft, sizeof(c->raft), section, key, value, true, true, err,
                              errlen);
        }
        if (strcmp(key, "identity_key_file") == 0) {
            return set_string(c->identity_key_file, sizeof(c->identity_key_file), section, key,
                              value, false, true, err, errlen);
        }
        if (strcmp(key, "http") == 0) {
            return set_string(c->http, sizeof(c->http), section, key, value, true, true, err,
                              errlen);
        }
        if (strcmp(key, "join") == 0) {
            return set_string(c->join, sizeof(c->join), section, key, value, true, true, err,
                              errlen);
        }
        if (strcmp(key, "bootstrap") == 0) {
            /* Parsed aside, so that a bad list leaves the old one in place. */
            struct config_peer peers[CONFIG_PEERS_MAX];
            size_t n = 0;
            char why[CONFIG_ADDR_MAX + 128];
            if (config_parse_peers(value, peers, CONFIG_PEERS_MAX, &n, why, sizeof(why)) != 0) {
                return config_fail(err, errlen, "[node] bootstrap: %s", why);
            }
            memcpy(c->bootstrap, peers, n * sizeof(peers[0]));
            c->n_bootstrap = n;
            return 0;
        }
    } else if (strcmp(section, "raft") == 0) {
        if (strcmp(key, "snapshot_threshold") == 0) {
            return set_unsigned(&c->snapshot_threshold, CONFIG_THRESHOLD_MIN, CONFIG_SNAPSHOT_MAX,
                                section, key, value, err, errlen);
        }
        if (strcmp(key, "snapshot_trailing") == 0) {
            return set_unsigned(&c->snapshot_trailing, 0, CONFIG_SNAPSHOT_MAX, section, key, value,
                                err, errlen);
        }
        if (strcmp(key, "election_timeout_ms") == 0) {
            return set_unsigned(&c->election_timeout_ms, CONFIG_ELECTION_MS_MIN,
                                CONFIG_ELECTION_MS_MAX, section, key, value, err, errlen);
        }
        if (strcmp(key, "heartbeat_timeout_ms") == 0) {
            return set_unsigned(&c->heartbeat_timeout_ms, CONFIG_HEARTBEAT_MS_MIN,
                                CONFIG_HEARTBEAT_MS_MAX, section, key, value, err, errlen);
        }
        if (strcmp(key, "forward_timeout_ms") == 0) {
            return set_unsigned(&c->forward_timeout_ms, CONFIG_FORWARD_MS_MIN,
                                CONFIG_FORWARD_MS_MAX, section, key, value, err, errlen);
        }
    } else if (strcmp(section, "security") == 0) {
        if (strcmp(key, "admin_public_key") == 0) {
            /* Hex or a file holding it: checked when loaded (auth_load_public). */
            return set_string(c->admin_public_key, sizeof(c->admin_public_key), section, key, value,
                              false, true, err, errlen);
        }
        if (strcmp(key, "partner") == 0) {
            return set_string(c->partner, sizeof(c->partner), section, key, value, false, true, err,
                              errlen);
        }
        if (strcmp(key, "partner_key_file") == 0) {
            return set_string(c->partner_key_file, sizeof(c->partner_key_file), section, key, value,
                              false, true, err, errlen);
        }
        if (strcmp(key, "trusted_keys_file") == 0) {
            return set_string(c->trusted_keys_file, sizeof(c->trusted_keys_file), section, key,
                              value, false, true, err, errlen);
        }
    } else if (strcmp(section, "limits") == 0) {
        static const struct {
            const char *name;
            size_t offset;
            unsigned min, max;
        } limits[] = {
            {"http_header_max", offsetof(struct config, http_header_max), 1024, 1u << 20},
            {"http_body_max", offsetof(struct config, http_body_max), 1024, 1u << 20},
            {"idle_timeout_ms", offsetof(struct config, idle_timeout_ms), 100, 3600000},
            {"request_timeout_ms", offsetof(struct config, request_timeout_ms), 100, 600000},
            {"conns_per_addr", offsetof(struct config, conns_per_addr), 1, 65536},
            {"partner_rps", offsetof(struct config, partner_rps), 0, 10000000},
        };
        for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
            if (strcmp(key, limits[i].name) == 0) {
                unsigned *field = (unsigned *)(void *)((char *)c + limits[i].offset);
                return set_unsigned(field, limits[i].min, limits[i].max, section, key, value, err,
                                    errlen);
            }
        }
    } else {
        return config_fail(err, errlen,
                           "unknown section [%s] (expected [node], [raft], [security] or "
                           "[limits])",
                           section);
    }
    return config_fail(err, errlen, "[%s] %s: unknown key", section, key);
}

/* ---- the file --------------------------------------------------------- */

/* Keys a file may set, to refuse one given twice (a likely copy-paste
 * mistake; the command line is the place to override). */
static const char *const config_keys[] = {
    "node.id",
    "node.data",
    "node.listen",
    "node.raft",
    "node.bootstrap",
    "node.join",
    "node.identity_key_file",
    "node.http",
    "security.admin_public_key",
    "security.partner",
    "security.partner_key_file",
    "security.trusted_keys_file",
    "limits.http_header_max",
    "limits.http_body_max",
    "limits.idle_timeout_ms",
    "limits.request_timeout_ms",
    "limits.conns_per_addr",
    "limits.partner_rps",
    "raft.snapshot_threshold",
    "raft.snapshot_trailing",
    "raft.election_timeout_ms",
    "raft.heartbeat_timeout_ms",
    "raft.forward_timeout_ms",
};
#define CONFIG_N_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* True if `full` is "section.name". */
static bool key_is(const char *full, const char *section, const char *name)
{
    size_t slen = strlen(section);
    return strncmp(full, section, slen) == 0 && full[slen] == '.' &&
           strcmp(full + slen + 1, name) == 0;
}

/* State of one config_load_file. */
struct config_file {
    struct config *c;
    FILE *fp;
    int lineno;    /* line last handed to inih */
    int err_line;  /* first line with an error found here (0: none) */
    int long_line; /* first line too long for inih (0: none) */
    int line_max;  /* longest line inih takes, in bytes */
    char err[512]; /* message for err_line */
    bool seen[CONFIG_N_KEYS];
};

/* inih's reader: one line per call, like fgets, but with leading blanks
 * removed (inih would otherwise take an indented line as the continuation
 * of the previous value) and a line too long for inih's buffer flagged and
 * skipped instead of being split into two lines. */
static char *config_read_line(char *str, int num, void *stream)
{
    struct config_file *cf = stream;
    assert(num > 2);
    cf->line_max = num - 2;
    int ch = getc(cf->fp);
    if (ch == EOF) {
        return NULL;
    }
    cf->lineno++;
    while (ch == ' ' || ch == '\t') {
        ch = getc(cf->fp);
    }
    int len = 0;
    bool too_long = false;
    while (ch != EOF && ch != '\n') {
        if (len < num - 2) {
            str[len++] = (char)ch;
        } else {
            too_long = true;
        }
        ch = getc(cf->fp);
    }
    if (too_long) {
        if (cf->long_line == 0) {
            cf->long_line = cf->lineno;
        }
        len = 0; /* an empty line: inih ignores it */
    } else if (len > 0 && str[0] == '[') {
        /* A section header: refuse unknown ones even if they hold no key. */
        char *close = memchr(str, ']', (size_t)len);
        size_t nlen = close != NULL ? (size_t)(close - str - 1) : 0;
        if (close != NULL && !(nlen == 4 && memcmp(str + 1, "node", 4) == 0) &&
            !(nlen == 4 && memcmp(str + 1, "raft", 4) == 0) && cf->err_line == 0) {
            cf->err_line = cf->lineno;
            snprintf(cf->err, sizeof(cf->err), "unknown section [%.*s] (expected [node] or [raft])",
                     (int)nlen, str + 1);
        }
    }
    str[len++] = '\n';
    str[len] = '\0';
    return str;
}

static int config_on_key(void *user, const char *section, const char *name, const char *value)
{
    struct config_file *cf = user;
    if (cf->err_line != 0) {
        return 1; /* report the first error only; inih goes on reading */
    }
    char why[sizeof(cf->err)];
    if (section[0] == '\0') {
        snprintf(why, sizeof(why), "%s: outside a section (expected [node] or [raft] first)", name);
    } else if (config_set(cf->c, section, name, value, why, sizeof(why)) == 0) {
        /* config_set knows the key, so it is in the table. */
        size_t i = 0;
        while (i < CONFIG_N_KEYS && !key_is(config_keys[i], section, name)) {
            i++;
        }
        assert(i < CONFIG_N_KEYS);
        if (i >= CONFIG_N_KEYS || !cf->seen[i]) {
            if (i < CONFIG_N_KEYS) {
                cf->seen[i] = true;
            }
            return 1;
        }
        snprintf(why, sizeof(why), "[%s] %s: given twice", section, name);
    }
    cf->err_line = cf->lineno;
    memcpy(cf->err, why, sizeof(cf->err));
    return 0;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    assert(c != NULL && path != NULL);
    struct config_file cf = {.c = c};
    cf.fp = fopen(path, "r");
    if (cf.fp == NULL) {
        return config_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    }
    int rv = ini_parse_stream(config_read_line, &cf, config_on_key, &cf);
    bool read_error = ferror(cf.fp) != 0;
    fclose(cf.fp);
    if (read_error) {
        return config_fail(err, errlen, "%s: read error", path);
    }
    if (rv < 0) {
        return config_fail(err, errlen, "%s: cannot parse (out of memory)", path);
    }
    /* The first error by line wins: inih's own (syntax), a line too long,
     * or one found by config_set. */
    int first = rv;
    if (cf.long_line != 0 && (first == 0 || cf.long_line < first)) {
        first = cf.long_line;
    }
    if (cf.err_line != 0 && (first == 0 || cf.err_line < first)) {
        first = cf.err_line;
    }
    if (first == 0) {
        return 0;
    }
    if (first == cf.err_line) {
        return config_fail(err, errlen, "%s:%d: %s", path, first, cf.err);
    }
    if (first == cf.long_line) {
        return config_fail(err, errlen, "%s:%d: line too long (at most %d bytes)", path, first,
                           cf.line_max);
    }
    return config_fail(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path,
                       first);
}

/* ---- the whole configuration ----------------------------------------- */

/* This node's raft address: c->raft, or the listen host with port + 1. */
static int effective_raft_addr(const struct config *c, char *out, size_t cap)
{
    if (c->raft[0] != '\0') {
        if (strlen(c->raft) >= cap) {
            return -1;
        }
        memcpy(out, c->raft, strlen(c->raft) + 1);
        return 0;
    }
    char host[CONFIG_ADDR_MAX];
    int port = 0;
    if (config_split_addr(c->listen, host, sizeof(host), &port) != 0 || port >= 65535) {
        return -1;
    }
    bool v6 = strchr(host, ':') != NULL;
    int n = snprintf(out, cap, v6 ? "[%s]:%d" : "%s:%d", host, port + 1);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* True if `addr` is host:port with a numeric IPv4 or IPv6 host: the raft
 * transport and the forwarder do not resolve names. */
static bool addr_is_numeric(const char *addr)
{
    char host[CONFIG_ADDR_MAX];
    int port = 0;
    unsigned char buf[sizeof(struct in6_addr)];
    return config_split_addr(addr, host, sizeof(host), &port) == 0 &&
           (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1);
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    assert(c != NULL);
    if (c->id == 0) {
        return config_fail(err, errlen, "[node] id: must be >= 1");
    }
    if (c->data[0] == '\0') {
        return config_fail(err, errlen, "[node] data: must not be empty");
    }
    if (config_split_addr(c->listen, NULL, 0, NULL) != 0) {
        return config_fail(err, errlen, "[node] listen: bad address '%s'", c->listen);
    }
    if (c->raft[0] != '\0' && config_split_addr(c->raft, NULL, 0, NULL) != 0) {
        return config_fail(err, errlen, "[node] raft: bad address '%s'", c->raft);
    }
    char raft[CONFIG_ADDR_MAX];
    if (effective_raft_addr(c, raft, sizeof(raft)) != 0) {
        return config_fail(err, errlen,
                           "[node] raft: not given and listen port + 1 is not a port; set it");
    }
    if (same_addr(raft, c->listen)) {
        return config_fail(err, errlen, "[node] raft and listen are the same address %s",
                           c->listen);
    }
    if (c->join[0] != '\0' && config_split_addr(c->join, NULL, 0, NULL) != 0) {
        return config_fail(err, errlen, "[node] join: bad address '%s'", c->join);
    }
    const char *names[] = {"listen", "raft", "join"};
    const char *addrs[] = {c->listen, raft, c->join};
    for (size_t i = 0; i < 3; i++) {
        if (addrs[i][0] != '\0' && !addr_is_numeric(addrs[i])) {
            return config_fail(err, errlen,
                               "[node] %s: '%s' must be a numeric IP address and port "
                               "(host names are not resolved)",
                               names[i], addrs[i]);
        }
    }
    for (size_t i = 0; i < c->n_bootstrap; i++) {
        if (!addr_is_numeric(c->bootstrap[i].addr)) {
            return config_fail(err, errlen,
                               "[node] bootstrap: '%s' must be a numeric IP address and port "
                               "(host names are not resolved)",
                               c->bootstrap[i].addr);
        }
    }
    if (c->n_bootstrap > 0 && c->join[0] != '\0') {
        return config_fail(err, errlen,
                           "[node] bootstrap and join: give one or the other (bootstrap starts "
                           "a new coalition, join enters an existing one)");
    }
    if (c->n_bootstrap > CONFIG_PEERS_MAX) {
        return config_fail(err, errlen, "[node] bootstrap: too many peers (at most %d)",
                           CONFIG_PEERS_MAX);
    }
    if (c->n_bootstrap > 0) {
        const struct config_peer *self = NULL;
        for (size_t i = 0; i < c->n_bootstrap; i++) {
            if (c->bootstrap[i].id == c->id) {
                self = &c->bootstrap[i];
            }
        }
        if (self == NULL) {
            return config_fail(err, errlen,
                               "[node] bootstrap: does not contain this node (id %llu)",
                               (unsigned long long)c->id);
        }
        if (!same_addr(self->addr, raft)) {
            return config_fail(err, errlen,
                               "[node] bootstrap: node %llu is at %s there but this node's "
                               "raft address is %s",
                               (unsigned long long)c->id, self->addr, raft);
        }
    }
    if (c->snapshot_threshold < CONFIG_THRESHOLD_MIN ||
        c->snapshot_threshold > CONFIG_SNAPSHOT_MAX) {
        return config_fail(err, errlen, "[raft] snapshot_threshold: must be %u..%u",
                           CONFIG_THRESHOLD_MIN, CONFIG_SNAPSHOT_MAX);
    }
    if (c->snapshot_trailing > CONFIG_SNAPSHOT_MAX) {
        return config_fail(err, errlen, "[raft] snapshot_trailing: must be at most %u",
                           CONFIG_SNAPSHOT_MAX);
    }
    if (c->election_timeout_ms < CONFIG_ELECTION_MS_MIN ||
        c->election_timeout_ms > CONFIG_ELECTION_MS_MAX) {
        return config_fail(err, errlen, "[raft] election_timeout_ms: must be %u..%u",
                           CONFIG_ELECTION_MS_MIN, CONFIG_ELECTION_MS_MAX);
    }
    if (c->heartbeat_timeout_ms < CONFIG_HEARTBEAT_MS_MIN ||
        c->heartbeat_timeout_ms >= c->election_timeout_ms) {
        return config_fail(err, errlen,
                           "[raft] heartbeat_timeout_ms: must be %u or more and below "
                           "election_timeout_ms (%u)",
                           CONFIG_HEARTBEAT_MS_MIN, c->election_timeout_ms);
    }
    if (c->forward_timeout_ms < CONFIG_FORWARD_MS_MIN ||
        c->forward_timeout_ms > CONFIG_FORWARD_MS_MAX) {
        return config_fail(err, errlen, "[raft] forward_timeout_ms: must be %u..%u",
                           CONFIG_FORWARD_MS_MIN, CONFIG_FORWARD_MS_MAX);
    }
    return 0;
}
