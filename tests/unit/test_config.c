/* Unit tests of node/config.c: defaults, INI files written to a temporary
 * directory (a full file, comments and whitespace, every rejection with its
 * file:line:key message), command-line style overrides with config_set,
 * address and peer-list parsing, and the whole-configuration check. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "config.h"

/* A temporary directory for INI files, a configuration with defaults and an
 * error buffer. */
struct config_fixture {
    char dir[PATH_MAX];
    char path[PATH_MAX + 64];
    struct config c;
    char err[1024];
};

static int setup(void **state)
{
    struct config_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tmpdir_make(f->dir, sizeof(f->dir), "test_config"), 0);
    config_defaults(&f->c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct config_fixture *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Writes `text` to a new file in the fixture's directory; f->path names it. */
static const char *write_ini(struct config_fixture *f, const char *text)
{
    static unsigned counter;
    int n = snprintf(f->path, sizeof(f->path), "%s/c%u.ini", f->dir, counter++);
    assert_true(n > 0 && (size_t)n < sizeof(f->path));
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    return f->path;
}

/* Loads `text`, which must fail with a message that names the file, starts
 * with "path:line:" and contains `what`. */
static void expect_file_error(struct config_fixture *f, const char *text, int line,
                              const char *what)
{
    const char *path = write_ini(f, text);
    f->err[0] = '\0';
    assert_int_equal(config_load_file(&f->c, path, f->err, sizeof(f->err)), -1);
    char prefix[PATH_MAX + 96];
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    if (strncmp(f->err, prefix, strlen(prefix)) != 0 || strstr(f->err, what) == NULL) {
        fail_msg("message '%s' does not start with '%s' or lacks '%s'", f->err, prefix, what);
    }
}

/* config_set must fail with a message containing `what`. */
static void expect_set_error(struct config_fixture *f, const char *section, const char *key,
                             const char *value, const char *what)
{
    f->err[0] = '\0';
    assert_int_equal(config_set(&f->c, section, key, value, f->err, sizeof(f->err)), -1);
    if (strstr(f->err, what) == NULL) {
        fail_msg("config_set(%s, %s, '%s'): message '%s' lacks '%s'", section, key, value, f->err,
                 what);
    }
}

static void expect_valid(struct config_fixture *f)
{
    f->err[0] = '\0';
    int rv = config_validate(&f->c, f->err, sizeof(f->err));
    if (rv != 0) {
        fail_msg("config_validate: %s", f->err);
    }
}

static void expect_invalid(struct config_fixture *f, const char *what)
{
    f->err[0] = '\0';
    assert_int_equal(config_validate(&f->c, f->err, sizeof(f->err)), -1);
    if (strstr(f->err, what) == NULL) {
        fail_msg("config_validate: message '%s' lacks '%s'", f->err, what);
    }
}

static void set_ok(struct config_fixture *f, const char *section, const char *key,
                   const char *value)
{
    f->err[0] = '\0';
    if (config_set(&f->c, section, key, value, f->err, sizeof(f->err)) != 0) {
        fail_msg("config_set(%s, %s, '%s'): %s", section, key, value, f->err);
    }
}

/* ---- defaults, files, overrides --------------------------------------- */

static void test_config_defaults(void **state)
{
    struct config_fixture *f = *state;
    memset(&f->c, 0xab, sizeof(f->c));
    config_defaults(&f->c);
    assert_int_equal(f->c.id, 1);
    assert_string_equal(f->c.data, "./coalition-data");
    assert_string_equal(f->c.listen, "127.0.0.1:7400");
    assert_string_equal(f->c.raft, "");
    assert_int_equal(f->c.n_bootstrap, 0);
    assert_string_equal(f->c.join, "");
    assert_int_equal(f->c.snapshot_threshold, 8192);
    assert_int_equal(f->c.snapshot_trailing, 2048);
    assert_int_equal(f->c.election_timeout_ms, 1000);
    assert_int_equal(f->c.heartbeat_timeout_ms, 100);
    assert_int_equal(f->c.forward_timeout_ms, 3000);
    expect_valid(f);
}

static void test_config_full_file(void **state)
{
    struct config_fixture *f = *state;
    const char *path = write_ini(f, "[node]\n"
                                    "id = 2\n"
                                    "data = /var/lib/coalition/n2\n"
                                    "listen = 10.0.0.2:7400\n"
                                    "raft = 10.0.0.2:7401\n"
                                    "bootstrap = 1=10.0.0.1:7401,2=10.0.0.2:7401,3=10.0.0.3:7401\n"
                                    "\n"
                                    "[raft]\n"
                                    "snapshot_threshold = 4096\n"
                                    "snapshot_trailing = 512\n"
                                    "election_timeout_ms = 2000\n"
                                    "heartbeat_timeout_ms = 200\n"
                                    "forward_timeout_ms = 5000\n");
    assert_int_equal(config_load_file(&f->c, path, f->err, sizeof(f->err)), 0);
    assert_int_equal(f->c.id, 2);
    assert_string_equal(f->c.data, "/var/lib/coalition/n2");
    assert_string_equal(f->c.listen, "10.0.0.2:7400");
    assert_string_equal(f->c.raft, "10.0.0.2:7401");
    assert_int_equal(f->c.n_bootstrap, 3);
    for (size_t i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof(want), "10.0.0.%zu:7401", i + 1);
        assert_int_equal(f->c.bootstrap[i].id, i + 1);
        assert_string_equal(f->c.bootstrap[i].addr, want);
    }
    assert_string_equal(f->c.join, "");
    assert_int_equal(f->c.snapshot_threshold, 4096);
    assert_int_equal(f->c.snapshot_trailing, 512);
    assert_int_equal(f->c.election_timeout_ms, 2000);
    assert_int_equal(f->c.heartbeat_timeout_ms, 200);
    assert_int_equal(f->c.forward_timeout_ms, 5000);
    expect_valid(f);
}

static void test_config_partial_file_keeps_defaults(void **state)
{
    struct config_fixture *f = *state;
    const char *path = write_ini(f, "[node]\njoin = 10.0.0.1:7400\n");
    assert_int_equal(config_load_file(&f->c, path, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->c.join, "10.0.0.1:7400");
    assert_int_equal(f->c.id, 1);
    assert_string_equal(f->c.listen, "127.0.0.1:7400");
    assert_int_equal(f->c.election_timeout_ms, 1000);
    expect_valid(f);
}

static void test_config_empty_file(void **state)
{
    struct config_fixture *f = *state;
    const char *path = write_ini(f, "");
    assert_int_equal(config_load_file(&f->c, path, f->err, sizeof(f->err)), 0);
    struct config d;
    config_defaults(&d);
    assert_memory_equal(&f->c, &d, sizeof(d));
}

static void test_config_overrides_after_load(void **state)
{
    struct config_fixture *f = *state;
    const char *path = write_ini(f, "[node]\n"
                                    "id = 2\n"
                                    "listen = 127.0.0.1:7500\n"
                                    "join = 127.0.0.1:7400\n"
                                    "[raft]\n"
                                    "election_timeout_ms = 2000\n");
    assert_int_equal(config_load_file(&f->c, path, f->err, sizeof(f->err)), 0);
    /* As the command line does: --id 3 --listen ... --join "" */
    set_ok(f, "node", "id", "3");
    set_ok(f, "node", "listen", "127.0.0.1:7600");
    set_ok(f, "node", "join", "");
    set_ok(f, "node", "bootstrap", "3=127.0.0.1:7601");
    set_ok(f, "raft", "election_timeout_ms", "500");
    assert_int_equal(f->c.id, 3);
    assert_string_equal(f->c.listen, "127.0.0.1:7600");
    assert_string_equal(f->c.join, "");
    assert_int_equal(f->c.n_bootstrap, 1);
    assert_int_equal(f->c.election_timeout_ms, 500);
    expect_valid(f);
    /* An override may set a key the file already set, and an empty list
     * clears the bootstrap. */
    set_ok(f, "node", "bootstrap", "");
    assert_int_equal(f->c.n_bootstrap, 0);
}

static void test_config_comments_and_whitespace(void **state)
{
    struct config_fixture *f = *state;
    const char *path = write_ini(f, "; a comment\n"
                                    "# another comment\n"
                                    "\n"
                                    "   \n"
                                    "[node]   ; the node section\n"
                                    "  id=4\n"
                                    "\tlisten   =   127.0.0.1:7410   ; client port\n"
                                    "    # indented comment\n"
                                    "    data = /tmp/with space/d\r\n"
                                    "bootstrap = 4=127.0.0.1:7411 , 5=127.0.0.1:7421\n"
                                    "\n"
                                    "  [raft]\n"
                                    "  heartbeat_timeout_ms = 150\n"
                                    "  election_timeout_ms = 1500");
    int rv = config_load_file(&f->c, path, f->err, sizeof(f->err));
    if (rv != 0) {
        fail_msg("config_load_file: %s", f->err);
    }
    assert_int_equal(f->c.id, 4);
    assert_string_equal(f->c.listen, "127.0.0.1:7410");
    assert_string_equal(f->c.data, "/tmp/with space/d");
    assert_int_equal(f->c.n_bootstrap, 2);
    assert_string_equal(f->c.bootstrap[1].addr, "127.0.0.1:7421");
    assert_int_equal(f->c.heartbeat_timeout_ms, 150);
    assert_int_equal(f->c.election_timeout_ms, 1500);
    expect_valid(f);
}

/* ---- file errors ------------------------------------------------------ */

static void test_config_missing_file(void **state)
{
    struct config_fixture *f = *state;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/nothing.ini", f->dir);
    assert_int_equal(config_load_file(&f->c, path, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, path));
    assert_non_null(strstr(f->err, "cannot open"));
}

static void test_config_unknown_key(void **state)
{
    struct config_fixture *f = *state;
    expect_file_error(f, "[node]\nid = 2\nlisten_addr = 127.0.0.1:1\n", 3,
                      "[node] listen_addr: unknown key");
    expect_file_error(f, "[raft]\nelection_timeout = 1000\n", 2,
                      "[raft] election_timeout: unknown key");
    /* A key of the other section. */
    expect_file_error(f, "[raft]\nid = 2\n", 2, "[raft] id: unknown key");
    expect_set_error(f, "node", "ID", "2", "unknown key");
}

static void test_config_unknown_section(void **state)
{
    struct config_fixture *f = *state;
    expect_file_error(f, "[node]\nid = 2\n[nodes]\nid = 3\n", 3, "unknown section [nodes]");
    /* Even with no key in it. */
    expect_file_error(f, "[node]\nid = 2\n\n[cluster]\n", 4, "unknown section [cluster]");
    expect_set_error(f, "server", "id", "2", "unknown section [server]");
}

static void test_config_key_outside_section(void **state)
{
    struct config_fixture *f = *state;
    expect_file_error(f, "id = 2\n[node]\n", 1, "id: outside a section");
}

static void test_config_syntax_error(void **state)
{
    struct config_fixture *f = *state;
    expect_file_error(f, "[node]\nid = 2\nlisten\n", 3, "syntax error");
    expect_file_error(f, "[node\nid = 2\n", 1, "syntax error");
}

static void test_config_first_error_wins(void **state)
{
    struct config_fixture *f = *state;
    expect_file_error(f, "[node]\nid = x\nbogus = 1\n", 2, "[node] id");
    expect_file_error(f, "[node]\nbogus\nid = x\n", 2, "syntax error");
}

static void test_config_key_given_twice(void **state)
{
    struct config_fixture *f = *state;
    expect_file_error(f, "[node]\nid = 2\nlisten = 127.0.0.1:1\nid = 3\n", 4,
                      "[node] id: given twice");
}

static void test_config_bad_number(void **state)
{
    struct config_fixture *f = *state;
    static const char *const bad[] = {
        "abc", "-1", "+5", "1.5", "0x10", "12ms", "1 000", "", "18446744073709551616",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_set_error(f, "node", "id", bad[i], "[node] id");
        expect_set_error(f, "raft", "election_timeout_ms", bad[i], "[raft] election_timeout_ms");
        expect_set_error(f, "raft", "snapshot_trailing", bad[i], "[raft] snapshot_trailing");
    }
    expect_set_error(f, "raft", "forward_timeout_ms", "4294967296", "must be");
    expect_file_error(f, "[raft]\nsnapshot_threshold = 10k\n", 2,
                      "[raft] snapshot_threshold: '10k' is not an unsigned number");
    /* Nothing was changed by the failures. */
    assert_int_equal(f->c.id, 1);
    assert_int_equal(f->c.election_timeout_ms, 1000);
    /* The largest id is fine, leading zeros too. */
    set_ok(f, "node", "id", "18446744073709551615");
    assert_true(f->c.id == UINT64_MAX);
    set_ok(f, "raft", "election_timeout_ms", "0300");
    assert_int_equal(f->c.election_timeout_ms, 300);
}

static void test_config_out_of_bounds(void **state)
{
    struct config_fixture *f = *state;
    expect_set_error(f, "node", "id", "0", "[node] id: must be a number >= 1");
    expect_set_error(f, "raft", "election_timeout_ms", "99", "must be 100..60000");
    expect_set_error(f, "raft", "election_timeout_ms", "60001", "must be 100..60000");
    expect_set_error(f, "raft", "heartbeat_timeout_ms", "9", "must be 10..");
    expect_set_error(f, "raft", "snapshot_threshold", "1", "must be 2..");
    expect_set_error(f, "raft", "snapshot_threshold", "0", "must be 2..");
    expect_set_error(f, "raft", "snapshot_trailing", "1000000001", "must be 0..");
    expect_set_error(f, "raft", "forward_timeout_ms", "99", "must be 100..");
    expect_set_error(f, "raft", "forward_timeout_ms", "600001", "must be 100..");
    expect_file_error(f, "[raft]\n\nelection_timeout_ms = 50\n", 3,
                      "[raft] election_timeout_ms: must be 100..60000, got 50");
    /* The edges themselves are accepted. */
    set_ok(f, "raft", "election_timeout_ms", "100");
    set_ok(f, "raft", "heartbeat_timeout_ms", "10");
    set_ok(f, "raft", "snapshot_threshold", "2");
    set_ok(f, "raft", "snapshot_trailing", "0");
    set_ok(f, "raft", "forward_timeout_ms", "100");
    expect_valid(f);
}

static void test_config_too_long(void **state)
{
    struct config_fixture *f = *state;
    char big[CONFIG_PATH_MAX + 10];
    memset(big, 'd', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_set_error(f, "node", "data", big, "[node] data: too long");
    /* The longest path that fits is taken. */
    big[CONFIG_PATH_MAX - 1] = '\0';
    set_ok(f, "node", "data", big);
    assert_int_equal(strlen(f->c.data), CONFIG_PATH_MAX - 1);

    char addr[CONFIG_ADDR_MAX + 16];
    memset(addr, 'a', sizeof(addr));
    memcpy(addr + CONFIG_ADDR_MAX, ":7400", 6);
    expect_set_error(f, "node", "listen", addr, "[node] listen: too long");
    expect_set_error(f, "node", "join", addr, "[node] join: too long");

    /* A line longer than the INI reader takes is refused, not split. */
    char text[600];
    int n = snprintf(text, sizeof(text), "[node]\ndata = /%0400d\nid = 2\n", 0);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    expect_file_error(f, text, 2, "line too long");
    expect_set_error(f, "node", "data", "", "[node] data: must not be empty");
}

static void test_config_bad_address(void **state)
{
    struct config_fixture *f = *state;
    static const char *const bad[] = {
        "127.0.0.1",    "127.0.0.1:0",   "127.0.0.1:65536", ":7400",        "host:",
        "::1:7400",     "[::1]7400",     "[::1:7400",       "[zz::1]:7400", "1.2.3.999:7400",
        "a b:7400",     "-host:7400",    "host-.x:7400",    "a..b:7400",    "[]:7400",
        "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1: 80",   "host:80x",     "[1.2.3.4]:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_set_error(f, "node", "listen", bad[i], "[node] listen: bad address");
        expect_set_error(f, "node", "raft", bad[i], "[node] raft: bad address");
        expect_set_error(f, "node", "join", bad[i], "[node] join: bad address");
    }
    expect_file_error(f, "[node]\nlisten = 127.0.0.1:0\n", 2, "[node] listen: bad address");
    expect_set_error(f, "node", "listen", "", "[node] listen: must not be empty");
    assert_string_equal(f->c.listen, "127.0.0.1:7400");
}

/* ---- addresses and peers ---------------------------------------------- */

static void test_config_split_addr(void **state)
{
    (void)state;
    char host[CONFIG_ADDR_MAX];
    int port = 0;
    assert_int_equal(config_split_addr("127.0.0.1:7400", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7400);
    assert_int_equal(config_split_addr("[::1]:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1);
    assert_int_equal(config_split_addr("[fe80::1:2]:65535", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1:2");
    assert_int_equal(port, 65535);
    assert_int_equal(config_split_addr("node-2.coalition.example:7400", host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "node-2.coalition.example");
    assert_int_equal(config_split_addr("localhost:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 80);

    /* Bad ones leave the outputs alone. */
    strcpy(host, "unchanged");
    port = 42;
    assert_int_equal(config_split_addr("127.0.0.1:0", host, sizeof(host), &port), -1);
    assert_int_equal(config_split_addr("127.0.0.1:65536", host, sizeof(host), &port), -1);
    assert_int_equal(config_split_addr("127.0.0.1", host, sizeof(host), &port), -1);
    assert_int_equal(config_split_addr("", host, sizeof(host), &port), -1);
    assert_int_equal(config_split_addr("::1:80", host, sizeof(host), &port), -1);
    assert_string_equal(host, "unchanged");
    assert_int_equal(port, 42);
    /* A host buffer too small is an error, not a truncation. */
    char small[4];
    assert_int_equal(config_split_addr("10.0.0.1:80", small, sizeof(small), &port), -1);
    assert_int_equal(config_split_addr("a.b:80", small, sizeof(small), &port), 0);
    assert_string_equal(small, "a.b");
}

static void test_config_parse_peers(void **state)
{
    (void)state;
    struct config_peer p[CONFIG_PEERS_MAX];
    size_t n = 99;
    char err[256];
    assert_int_equal(
        config_parse_peers("1=127.0.0.1:7401", p, CONFIG_PEERS_MAX, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].id, 1);
    assert_string_equal(p[0].addr, "127.0.0.1:7401");
    assert_int_equal(config_parse_peers(" 7=[::1]:9000 ,  3=host.example:9001,12=10.1.2.3:9002 ", p,
                                        CONFIG_PEERS_MAX, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(p[0].id, 7);
    assert_string_equal(p[0].addr, "[::1]:9000");
    assert_int_equal(p[1].id, 3);
    assert_string_equal(p[1].addr, "host.example:9001");
    assert_int_equal(p[2].id, 12);
    assert_string_equal(p[2].addr, "10.1.2.3:9002");
    assert_int_equal(config_parse_peers("", p, CONFIG_PEERS_MAX, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
}

static void expect_peers_error(const char *s, size_t max, const char *what)
{
    struct config_peer p[CONFIG_PEERS_MAX + 1];
    size_t n = 99;
    char err[256] = "";
    assert_int_equal(config_parse_peers(s, p, max, &n, err, sizeof(err)), -1);
    assert_int_equal(n, 99);
    if (strstr(err, what) == NULL) {
        fail_msg("config_parse_peers('%s'): message '%s' lacks '%s'", s, err, what);
    }
}

static void test_config_peers_errors(void **state)
{
    (void)state;
    expect_peers_error("1=127.0.0.1:1,1=127.0.0.1:2", CONFIG_PEERS_MAX, "peer 1 given twice");
    expect_peers_error("0=127.0.0.1:1", CONFIG_PEERS_MAX, "id must be a number >= 1");
    expect_peers_error("x=127.0.0.1:1", CONFIG_PEERS_MAX, "id must be a number >= 1");
    expect_peers_error("-1=127.0.0.1:1", CONFIG_PEERS_MAX, "id must be a number >= 1");
    expect_peers_error("127.0.0.1:1", CONFIG_PEERS_MAX, "expected ID=HOST:PORT");
    expect_peers_error("1=127.0.0.1:1,2", CONFIG_PEERS_MAX, "expected ID=HOST:PORT");
    expect_peers_error("1=127.0.0.1", CONFIG_PEERS_MAX, "peer 1: bad address");
    expect_peers_error("1=127.0.0.1:0", CONFIG_PEERS_MAX, "peer 1: bad address");
    expect_peers_error("1=", CONFIG_PEERS_MAX, "peer 1: bad address");
    expect_peers_error("1=127.0.0.1:1,,2=127.0.0.1:2", CONFIG_PEERS_MAX, "peer 2: empty");
    expect_peers_error("1=127.0.0.1:1,", CONFIG_PEERS_MAX, "peer 2: empty");
    expect_peers_error("1=127.0.0.1:1,2=127.0.0.1:1", CONFIG_PEERS_MAX, "the same address");
    expect_peers_error("1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3", 2, "too many peers");

    char many[CONFIG_PEERS_MAX * 32 + 64] = "";
    for (int i = 1; i <= CONFIG_PEERS_MAX + 1; i++) {
        char one[40];
        snprintf(one, sizeof(one), "%s%d=127.0.0.1:%d", i > 1 ? "," : "", i, 9000 + i);
        strcat(many, one);
    }
    expect_peers_error(many, CONFIG_PEERS_MAX, "too many peers (at most 16)");
}

static void test_config_bootstrap_errors_in_file(void **state)
{
    struct config_fixture *f = *state;
    expect_file_error(f, "[node]\nbootstrap = 1=127.0.0.1:7401,1=127.0.0.1:7402\n", 2,
                      "[node] bootstrap: peer 1 given twice");
    expect_file_error(f, "[node]\nbootstrap = 0=127.0.0.1:7401\n", 2, "[node] bootstrap: peer");
    expect_file_error(f, "[node]\nbootstrap = 127.0.0.1:7401\n", 2,
                      "[node] bootstrap: peer '127.0.0.1:7401': expected ID=HOST:PORT");
    expect_file_error(f, "[node]\nbootstrap = 1=nowhere\n", 2, "[node] bootstrap: peer 1: bad");
    /* A bad list leaves the previous one in place. */
    set_ok(f, "node", "bootstrap", "1=127.0.0.1:7401");
    expect_set_error(f, "node", "bootstrap", "1=127.0.0.1:7401,2=x", "bad address");
    assert_int_equal(f->c.n_bootstrap, 1);
    assert_string_equal(f->c.bootstrap[0].addr, "127.0.0.1:7401");
}

/* ---- the whole configuration ------------------------------------------ */

static void test_config_validate_bootstrap(void **state)
{
    struct config_fixture *f = *state;
    /* Default raft address: listen port + 1. */
    set_ok(f, "node", "bootstrap", "1=127.0.0.1:7401,2=127.0.0.1:7501");
    expect_valid(f);
    set_ok(f, "node", "id", "2");
    expect_invalid(f, "node 2 is at 127.0.0.1:7501 there but this node's raft address is "
                      "127.0.0.1:7401");
    set_ok(f, "node", "raft", "127.0.0.1:7501");
    expect_valid(f);
    set_ok(f, "node", "id", "3");
    expect_invalid(f, "[node] bootstrap: does not contain this node (id 3)");
    /* IPv6 with the default raft port. */
    set_ok(f, "node", "id", "1");
    set_ok(f, "node", "raft", "");
    set_ok(f, "node", "listen", "[::1]:7400");
    set_ok(f, "node", "bootstrap", "1=[::1]:7401");
    expect_valid(f);
}

static void test_config_validate_bootstrap_and_join(void **state)
{
    struct config_fixture *f = *state;
    set_ok(f, "node", "join", "127.0.0.1:7500");
    expect_valid(f);
    set_ok(f, "node", "bootstrap", "1=127.0.0.1:7401");
    expect_invalid(f, "bootstrap and join");
    const char *path =
        write_ini(f, "[node]\njoin = 127.0.0.1:7500\nbootstrap = 1=127.0.0.1:7401\n");
    config_defaults(&f->c);
    assert_int_equal(config_load_file(&f->c, path, f->err, sizeof(f->err)), 0);
    expect_invalid(f, "bootstrap and join");
}

static void test_config_validate_addresses(void **state)
{
    struct config_fixture *f = *state;
    set_ok(f, "node", "raft", "127.0.0.1:7400");
    expect_invalid(f, "raft and listen are the same address");
    set_ok(f, "node", "raft", "");
    set_ok(f, "node", "listen", "127.0.0.1:65535");
    expect_invalid(f, "listen port + 1");
    set_ok(f, "node", "raft", "127.0.0.1:9000");
    expect_valid(f);
    /* Fields set directly (not through config_set) are checked too. */
    strcpy(f->c.listen, "nonsense");
    expect_invalid(f, "[node] listen: bad address");
    config_defaults(&f->c);
    f->c.id = 0;
    expect_invalid(f, "[node] id");
    config_defaults(&f->c);
    f->c.data[0] = '\0';
    expect_invalid(f, "[node] data");
}

/* Host names are not resolved by the raft transport or the forwarder, so
 * they are refused at start rather than failing quietly later. */
static void test_config_validate_numeric_addresses(void **state)
{
    struct config_fixture *f = *state;
    set_ok(f, "node", "join", "leader.example:7400");
    expect_invalid(f, "[node] join: 'leader.example:7400' must be a numeric IP address");
    set_ok(f, "node", "join", "10.0.0.5:7400");
    expect_valid(f);
    set_ok(f, "node", "join", "");
    set_ok(f, "node", "listen", "localhost:7400");
    expect_invalid(f, "[node] listen: 'localhost:7400' must be a numeric IP address");
    set_ok(f, "node", "listen", "[::1]:7400");
    expect_valid(f);
    set_ok(f, "node", "listen", "127.0.0.1:7400");
    set_ok(f, "node", "raft", "node1.example:7401");
    expect_invalid(f, "[node] raft: 'node1.example:7401' must be a numeric IP address");
    set_ok(f, "node", "raft", "127.0.0.1:7401");
    set_ok(f, "node", "bootstrap", "1=127.0.0.1:7401,2=node2.example:7403");
    expect_invalid(f, "[node] bootstrap: 'node2.example:7403' must be a numeric IP address");
}

static void test_config_validate_timeouts(void **state)
{
    struct config_fixture *f = *state;
    /* Each is in bounds alone; together the heartbeat is not below the
     * election timeout. */
    set_ok(f, "raft", "heartbeat_timeout_ms", "1000");
    expect_invalid(f, "below election_timeout_ms");
    set_ok(f, "raft", "election_timeout_ms", "1001");
    expect_valid(f);
    f->c.snapshot_threshold = 1;
    expect_invalid(f, "snapshot_threshold");
    config_defaults(&f->c);
    f->c.election_timeout_ms = 50;
    expect_invalid(f, "election_timeout_ms");
    config_defaults(&f->c);
    f->c.forward_timeout_ms = 0;
    expect_invalid(f, "forward_timeout_ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_config_defaults),
        T(test_config_full_file),
        T(test_config_partial_file_keeps_defaults),
        T(test_config_empty_file),
        T(test_config_overrides_after_load),
        T(test_config_comments_and_whitespace),
        T(test_config_missing_file),
        T(test_config_unknown_key),
        T(test_config_unknown_section),
        T(test_config_key_outside_section),
        T(test_config_syntax_error),
        T(test_config_first_error_wins),
        T(test_config_key_given_twice),
        T(test_config_bad_number),
        T(test_config_out_of_bounds),
        T(test_config_too_long),
        T(test_config_bad_address),
        T(test_config_split_addr),
        T(test_config_parse_peers),
        T(test_config_peers_errors),
        T(test_config_bootstrap_errors_in_file),
        T(test_config_validate_bootstrap),
        T(test_config_validate_bootstrap_and_join),
        T(test_config_validate_addresses),
        T(test_config_validate_numeric_addresses),
        T(test_config_validate_timeouts),
#undef T
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
