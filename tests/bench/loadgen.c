/* coalition-loadgen: the benchmark and crash-test driver, built on
 * libcoalition.  One thread multiplexes N client connections with poll(2);
 * each keeps up to `depth` transactions in flight.  Three modes: --setup
 * creates the benchmark's partners and members, the default mode runs the
 * award/redeem workload of /work/shared/bench/README.md and reports
 * throughput and latency, and --check-log resubmits every transaction an
 * earlier run acknowledged to prove that none was lost.  --node may list
 * several nodes of one coalition: connections are spread over them
 * round-robin (setup goes through the first).  With --key-dir every
 * transaction is signed as its partner (DIR/<partner>.key; partner admission
 * as the coalition admin, DIR/admin.key); with --api-key every request
 * carries that key and the load comes from its partner alone (the node
 * signs).  A request refused with RATE_LIMITED changed nothing: its
 * connection pauses LG_RATE_HOLDOFF_NS and sends the same transaction again
 * (same txn id), so setup and check-log finish under any partner limit and
 * a timed load counts only what the node accepted. */
/* ppoll(2), for sub-millisecond pacing, is a GNU extension. */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coalition.h"

#define LG_CLIENTS_MAX        1024
#define LG_NODES_MAX          16
#define LG_NODE_ADDR_MAX      256 /* bytes in one "host:port" */
#define LG_DEPTH_MAX          1024
#define LG_MEMBERS_MAX        10000000u
#define LG_PARTNERS_MAX       999u
#define LG_SETUP_DEPTH_MIN    16
#define LG_SETUP_POINTS       1000
#define LG_AMOUNT_MAX         500
#define LG_AWARD_PERCENT      80
#define LG_TIMEOUT_MS         10000    /* connect and per-call timeout of each client */
#define LG_IDLE_MS            10000    /* give up when nothing is answered this long */
#define LG_DRAIN_MS           15000    /* how long to wait for answers after the run */
#define LG_FLUSH_EVERY_NS     5000000  /* re-push queued requests at least this often */
#define LG_HOLDOFF_NS         10000000 /* a connection told UNAVAILABLE waits this long */
#define LG_RATE_HOLDOFF_NS    20000000 /* and one told RATE_LIMITED, before it resends */
#define LG_LATENCIES_MAX      200000000u
#define LG_MISMATCH_PRINT_MAX 20
#define LG_SETUP_PARTNER      "SETUP"
#define LG_ADMIN_KEY_NAME     "admin"
#define LG_KEYS_MAX           (LG_PARTNERS_MAX + 2) /* the partners, SETUP and the admin */
#define LG_PATH_MAX           4096
#define LG_NS_PER_S           1000000000ull

#define LG_CODES_LEN 64 /* answers are counted per code, |code| < LG_CODES_LEN; others apart */

enum lg_mode { LG_MODE_LOAD, LG_MODE_SETUP, LG_MODE_CHECK };

struct lg_options {
    const char *node; /* as given: one "host:port" or a comma-separated list */
    char nodes[LG_NODES_MAX][LG_NODE_ADDR_MAX];
    unsigned n_nodes;
    unsigned clients;
    unsigned depth;
    double duration_s;
    unsigned members;
    unsigned partners;
    double rate_tps;
    enum lg_mode mode;
    const char *ack_log;
    const char *check_log;
    uint64_t seed;
    bool seed_set;
    const char *key_dir;     /* sign every transaction with keys from here (NULL: no) */
    const char *api_key;     /* send this API key with every request (NULL: none) */
    const char *api_partner; /* --partner: the only partner used (with --api-key, the key's) */
};

/* A partner's (or the admin's, name "") secret key read from --key-dir.
 * Its second half is the public key. */
struct lg_key {
    char name[COALITION_ID_MAX + 1];
    uint8_t sk[COALITION_SECRET_KEY_LEN];
};

/* Keys read so far, each once (the table only grows). */
static struct lg_key lg_keys[LG_KEYS_MAX];
static size_t lg_n_keys;

/* The key of `name` ("" for the admin) from dir, read on first use.
 * Returns NULL (message printed) if it cannot be read. */
static const struct lg_key *lg_key_get(const char *dir, const char *name)
{
    for (size_t i = 0; i < lg_n_keys; i++) {
        if (strcmp(lg_keys[i].name, name) == 0) {
            return &lg_keys[i];
        }
    }
    if (lg_n_keys == LG_KEYS_MAX) {
        fprintf(stderr, "loadgen: more than %d keys\n", LG_KEYS_MAX);
        return NULL;
    }
    char path[LG_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.key", dir, name[0] != '\0' ? name : LG_ADMIN_KEY_NAME);
    struct lg_key *k = &lg_keys[lg_n_keys];
    char err[LG_PATH_MAX + 128];
    if (coalition_secret_key_load(path, k->sk, err, sizeof err) != 0) {
        fprintf(stderr, "loadgen: %s\n", err);
        return NULL;
    }
    snprintf(k->name, sizeof k->name, "%s", name);
    lg_n_keys++;
    return k;
}

/* One transaction to send, with everything needed to log or check it. */
struct lg_job {
    enum coalition_txn_kind kind;
    char partner[COALITION_ID_MAX + 1];
    char txn_id[COALITION_ID_MAX + 1];
    char member[COALITION_ID_MAX + 1];
    char name[COALITION_ID_MAX + 1];
    int64_t points;
    uint64_t expect_seq; /* --check-log: the seq the first answer gave */
    uint64_t t0_ns;      /* when its latency starts (submit or due time) */
};

struct lg_slot {
    bool used;
    bool waiting; /* refused with RATE_LIMITED: to be resent as it is */
    uint64_t request_id;
    struct lg_job job;
};

struct lg_conn {
    struct coalition_client *client;
    bool dead;
    size_t inflight;
    size_t waiting; /* slots to resend (RATE_LIMITED), not counted in inflight */
    uint64_t last_flush_ns;
    uint64_t hold_until_ns; /* starts no job before this (0: not held) */
    struct lg_slot *slots;  /* `depth` of them */
    const char *key_dir;    /* sign with keys from here (opt->key_dir), or NULL */
};

/* A source of jobs and a sink for their answers: one per mode. */
struct lg_source {
    /* Fills *job and returns 1; returns 0 if no job is due yet (rate
     * pacing), -1 when there are no more jobs. */
    int (*next)(struct lg_source *src, uint64_t now_ns, struct lg_job *job);
    void (*answer)(struct lg_source *src, const struct lg_job *job, int code,
                   const struct coalition_txn_result *res, uint64_t now_ns);
    /* Time the next job is due, for the poll timeout; 0 if not paced. */
    uint64_t (*due_ns)(struct lg_source *src);
};

/* Everything a run counts. */
struct lg_stats {
    uint64_t submitted;
    uint64_t answers; /* answers received, of any code */
    uint64_t committed;
    uint64_t duplicates;
    uint64_t rejected; /* expected business rejections */
    uint64_t errors;   /* failed submits, lost requests, unexpected codes */
    uint64_t conn_failures;
    uint64_t rate_limited; /* RATE_LIMITED answers; resent unless the run ended */
    uint64_t by_code[LG_CODES_LEN];
    uint64_t by_code_other; /* codes beyond the table */
    uint32_t *lat_us;
    size_t lat_len;
    size_t lat_cap;
};

static volatile sig_atomic_t lg_interrupted;

static void lg_on_signal(int sig)
{
    (void)sig;
    lg_interrupted = 1;
}

static uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * LG_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: small, fast, and reproducible from --seed. */
static uint64_t lg_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [1, n]; n > 0.  The modulo bias is negligible for our n. */
static unsigned lg_rand_upto(uint64_t *state, unsigned n)
{
    assert(n > 0);
    return (unsigned)(lg_rand(state) % n) + 1;
}

static void lg_member_id(unsigned i, char *out)
{
    snprintf(out, COALITION_ID_MAX + 1, "M%06u", i);
}

static void lg_partner_id(unsigned i, char *out)
{
    snprintf(out, COALITION_ID_MAX + 1, "P%02u", i);
}

static void lg_count_code(struct lg_stats *st, int code)
{
    int i = code < 0 ? -code : code;
    if (i >= LG_CODES_LEN) {
        st->by_code_other++;
        return;
    }
    st->by_code[i]++;
}

/* Records one latency; silently stops recording past LG_LATENCIES_MAX (the
 * counters still count).  Returns false only when out of memory. */
static bool lg_record_latency(struct lg_stats *st, uint64_t ns)
{
    if (st->lat_len == st->lat_cap) {
        if (st->lat_cap >= LG_LATENCIES_MAX) {
            return true;
        }
        size_t cap = st->lat_cap ? st->lat_cap * 2 : 65536;
        uint32_t *p = realloc(st->lat_us, cap * sizeof *p);
        if (p == NULL) {
            return false;
        }
        st->lat_us = p;
        st->lat_cap = cap;
    }
    uint64_t us = ns / 1000;
    st->lat_us[st->lat_len++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    return true;
}

static int lg_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array; 0 if empty. */
static uint32_t lg_percentile(const uint32_t *sorted, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return sorted[rank - 1];
}

/* ---- connections and the pipelined runner -------------------------------- */

static void lg_conns_destroy(struct lg_conn *conns, unsigned n)
{
    if (conns == NULL) {
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        if (conns[i].client != NULL) {
            coalition_client_destroy(conns[i].client);
        }
        free(conns[i].slots);
    }
    free(conns);
}

/* Opens n connections with `depth` slots each; connection i goes to
 * nodes[i % n_nodes] (the first n_nodes entries of opt->nodes, n_nodes >= 1).
 * Returns NULL (message printed) if any connection or allocation fails. */
static struct lg_conn *lg_conns_create(const struct lg_options *opt, unsigned n_nodes, unsigned n,
                                       unsigned depth)
{
    assert(n_nodes >= 1 && n_nodes <= opt->n_nodes);
    struct lg_conn *conns = calloc(n, sizeof *conns);
    if (conns == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        conns[i].slots = calloc(depth, sizeof *conns[i].slots);
        if (conns[i].slots == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            lg_conns_destroy(conns, n);
            return NULL;
        }
        const char *node = opt->nodes[i % n_nodes];
        int rv = coalition_client_create(node, LG_TIMEOUT_MS, &conns[i].client);
        if (rv != 0) {
            fprintf(stderr, "loadgen: cannot connect to %s: %s (%s)\n", node,
                    coalition_strerror(rv), coalition_errname(rv));
            conns[i].client = NULL;
            lg_conns_destroy(conns, n);
            return NULL;
        }
        conns[i].key_dir = opt->key_dir;
        if (opt->api_key != NULL) {
            rv = coalition_client_set_api_key(conns[i].client, opt->api_key);
            if (rv != 0) {
                fprintf(stderr, "loadgen: --api-key: %s\n", coalition_strerror(rv));
                lg_conns_destroy(conns, n);
                return NULL;
            }
        }
    }
    return conns;
}

/* A connection broke: every request in flight on it is lost. */
static void lg_conn_fail(struct lg_conn *conn, unsigned depth, int code, struct lg_stats *st)
{
    if (conn->dead) {
        return;
    }
    fprintf(stderr, "loadgen: connection failed: %s (%s), %zu requests in flight lost\n",
            coalition_strerror(code), coalition_errname(code), conn->inflight);
    conn->dead = true;
    st->conn_failures++;
    st->errors += conn->inflight + conn->waiting;
    for (unsigned i = 0; i < depth; i++) {
        conn->slots[i].used = false;
        conn->slots[i].waiting = false;
    }
    conn->inflight = 0;
    conn->waiting = 0;
}

static struct lg_slot *lg_slot_free(struct lg_conn *conn, unsigned depth)
{
    for (unsigned i = 0; i < depth; i++) {
        if (!conn->slots[i].used) {
            return &conn->slots[i];
        }
    }
    return NULL;
}

/* The slot of the request in flight with this id, or NULL. */
static struct lg_slot *lg_slot_find(struct lg_conn *conn, unsigned depth, uint64_t request_id)
{
    for (unsigned i = 0; i < depth; i++) {
        struct lg_slot *slot = &conn->slots[i];
        if (slot->used && !slot->waiting && slot->request_id == request_id) {
            return slot;
        }
    }
    return NULL;
}

/* A slot waiting to be resent, or NULL. */
static struct lg_slot *lg_slot_waiting(struct lg_conn *conn, unsigned depth)
{
    for (unsigned i = 0; i < depth && conn->waiting > 0; i++) {
        if (conn->slots[i].waiting) {
            assert(conn->slots[i].used);
            return &conn->slots[i];
        }
    }
    return NULL;
}

/* Reads every answer `conn` has ready and hands each to the source. */
static void lg_conn_drain(struct lg_conn *conn, unsigned depth, struct lg_source *src,
                          struct lg_stats *st, short revents)
{
    bool got = false;
    for (;;) {
        uint64_t request_id = 0;
        int code = 0;
        struct coalition_txn_result res;
        memset(&res, 0, sizeof res);
        int rv = coalition_client_poll(conn->client, 0, &request_id, &code, &res);
        if (rv < 0) {
            lg_conn_fail(conn, depth, rv, st);
            return;
        }
        if (rv == 0) {
            break;
        }
        got = true;
        st->answers++;
        uint64_t now = lg_now_ns();
        struct lg_slot *slot = lg_slot_find(conn, depth, request_id);
        if (slot == NULL) {
            fprintf(stderr, "loadgen: answer to unknown request %" PRIu64 "\n", request_id);
            st->errors++;
            continue;
        }
        conn->inflight--;
        if (code == COALITION_E_RATE_LIMITED) {
            /* Nothing was applied: the partner's budget is spent.  The
             * same job (same txn id, latency still counted from its first
             * send) goes again once the bucket has refilled a little. */
            lg_count_code(st, code);
            st->rate_limited++;
            slot->waiting = true;
            conn->waiting++;
            conn->hold_until_ns = now + LG_RATE_HOLDOFF_NS;
            continue;
        }
        slot->used = false;
        src->answer(src, &slot->job, code, &res, now);
        /* A cluster without a leader (an election, a partition) answers at
         * once: without a pause every client would spin on it and starve
         * the nodes that are trying to recover on the same machine. */
        if (code == COALITION_E_UNAVAILABLE || code == COALITION_E_NOT_LEADER ||
            code == COALITION_E_BUSY) {
            conn->hold_until_ns = now + LG_HOLDOFF_NS;
        }
    }
    if (!got && (revents & (POLLHUP | POLLERR)) != 0) {
        lg_conn_fail(conn, depth, COALITION_E_UNREACHABLE, st);
    }
}

/* Queues the slot's job on `conn`, signed from conn->key_dir when it is
 * not NULL. */
static int lg_submit(struct lg_conn *conn, struct lg_slot *slot, struct lg_stats *st)
{
    const char *key_dir = conn->key_dir;
    struct coalition_txn txn;
    memset(&txn, 0, sizeof txn);
    const struct lg_job *job = &slot->job;
    txn.kind = job->kind;
    txn.partner = job->partner;
    txn.txn_id = job->txn_id;
    txn.member = job->member[0] ? job->member : NULL;
    txn.name = job->name[0] ? job->name : NULL;
    txn.points = job->points;
    if (key_dir != NULL) {
        /* A partner is admitted by the admin, with the public key that will
         * verify its own writes; everything else is signed by its partner. */
        bool admit = job->kind == COALITION_TXN_PARTNER_ADD;
        const struct lg_key *signer = lg_key_get(key_dir, admit ? "" : job->partner);
        const struct lg_key *subject = admit ? lg_key_get(key_dir, job->partner) : signer;
        if (signer == NULL || subject == NULL) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        if (admit) {
            txn.public_key = subject->sk + COALITION_SECRET_KEY_LEN - COALITION_PUBLIC_KEY_LEN;
        }
        int rv = coalition_client_set_signer(conn->client, signer->name, signer->sk);
        if (rv != 0) {
            return rv;
        }
    }
    uint64_t request_id = 0;
    int rv = coalition_client_submit(conn->client, &txn, &request_id);
    if (rv != 0) {
        return rv;
    }
    slot->used = true;
    slot->request_id = request_id;
    conn->inflight++;
    st->submitted++;
    return 0;
}

/* Runs jobs from `src` over the connections until the source is exhausted
 * and every answer is in, or until `end_ns` (0: no end) after which no new
 * job starts and answers are awaited for at most LG_DRAIN_MS.  Returns the
 * time the run ended. */
static uint64_t lg_run(struct lg_conn *conns, unsigned n, unsigned depth, struct lg_source *src,
                       struct lg_stats *st, uint64_t end_ns)
{
    struct pollfd *pfds = calloc(n, sizeof *pfds);
    unsigned *pidx = calloc(n, sizeof *pidx);
    if (pfds == NULL || pidx == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        free(pfds);
        free(pidx);
        st->errors++;
        return lg_now_ns();
    }
    bool exhausted = false;
    bool stopping = false;
    uint64_t drain_end_ns = 0;
    unsigned rr = 0;
    uint64_t now = lg_now_ns();
    uint64_t progress_ns = now; /* last answer, or last time nothing was due */
    uint64_t answers_seen = st->answers;

    for (;;) {
        now = lg_now_ns();
        if (!stopping && ((end_ns != 0 && now >= end_ns) || lg_interrupted)) {
            stopping = true;
            drain_end_ns = now + (uint64_t)LG_DRAIN_MS * 1000000ull;
        }

        /* Resend what was refused with RATE_LIMITED, then start every job
         * that is due, round-robin over free slots. */
        bool slots_full = false;
        unsigned alive = 0;
        size_t waiting = 0;
        for (unsigned i = 0; i < n; i++) {
            alive += conns[i].dead ? 0 : 1;
            waiting += conns[i].waiting;
        }
        if (alive == 0) {
            break;
        }
        while (!stopping && (!exhausted || waiting > 0)) {
            unsigned tried = 0;
            struct lg_conn *conn = NULL;
            for (; tried < n; tried++) {
                struct lg_conn *cand = &conns[(rr + tried) % n];
                bool has_room = !exhausted && cand->inflight + cand->waiting < depth;
                if (!cand->dead && cand->hold_until_ns <= now && (cand->waiting > 0 || has_room)) {
                    conn = cand;
                    break;
                }
            }
            if (conn == NULL) {
                slots_full = true;
                break;
            }
            struct lg_slot *slot = lg_slot_waiting(conn, depth);
            if (slot != NULL) {
                slot->waiting = false;
                conn->waiting--;
                waiting--;
            } else {
                slot = lg_slot_free(conn, depth);
                assert(slot != NULL);
                int r = src->next(src, now, &slot->job);
                if (r < 0) {
                    exhausted = true;
                    continue;
                }
                if (r == 0) {
                    break;
                }
                if (slot->job.t0_ns == 0) {
                    slot->job.t0_ns = now;
                }
            }
            rr = (unsigned)((rr + tried + 1) % n);
            int rv = lg_submit(conn, slot, st);
            if (rv != 0) {
                fprintf(stderr, "loadgen: submit failed: %s (%s)\n", coalition_strerror(rv),
                        coalition_errname(rv));
                st->errors++;
                lg_conn_fail(conn, depth, rv, st);
                continue;
            }
            /* Push at once so that latency counts from the send. */
            rv = coalition_client_flush(conn->client);
            conn->last_flush_ns = now;
            if (rv != 0) {
                lg_conn_fail(conn, depth, rv, st);
            }
        }

        /* Requests a flush could not write completely go out here. */
        size_t inflight = 0;
        unsigned npfd = 0;
        for (unsigned i = 0; i < n; i++) {
            struct lg_conn *conn = &conns[i];
            if (conn->dead || conn->inflight == 0) {
                continue;
            }
            if (now - conn->last_flush_ns > LG_FLUSH_EVERY_NS) {
                conn->last_flush_ns = now;
                int rv = coalition_client_flush(conn->client);
                if (rv != 0) {
                    lg_conn_fail(conn, depth, rv, st);
                    continue;
                }
            }
            inflight += conn->inflight;
            pfds[npfd].fd = coalition_client_fd(conn->client);
            pfds[npfd].events = POLLIN;
            pfds[npfd].revents = 0;
            pidx[npfd] = i;
            npfd++;
        }
        if (inflight == 0 && (stopping || (exhausted && waiting == 0))) {
            break;
        }
        if (inflight == 0 || st->answers != answers_seen) {
            answers_seen = st->answers;
            progress_ns = now;
        } else if (now - progress_ns > (uint64_t)LG_IDLE_MS * 1000000ull) {
            fprintf(stderr, "loadgen: no answer for %d ms, %zu requests in flight: giving up\n",
                    LG_IDLE_MS, inflight);
            st->errors += inflight;
            break;
        }
        if (stopping && now >= drain_end_ns) {
            fprintf(stderr, "loadgen: %zu requests unanswered after %d ms\n", inflight,
                    LG_DRAIN_MS);
            st->errors += inflight;
            break;
        }

        /* Sleep until an answer, the next paced job, or the end.  A job that
         * is due while every slot is busy waits for an answer: no spinning. */
        uint64_t wake_ns = now + 10000000ull;
        uint64_t due = src->due_ns ? src->due_ns(src) : 0;
        if (!stopping && !exhausted && !slots_full && due != 0 && due < wake_ns) {
            wake_ns = due;
        }
        if (!stopping && end_ns != 0 && end_ns < wake_ns) {
            wake_ns = end_ns;
        }
        uint64_t wait_ns = wake_ns > now ? wake_ns - now : 0;
        struct timespec timeout = {.tv_sec = (time_t)(wait_ns / LG_NS_PER_S),
                                   .tv_nsec = (long)(wait_ns % LG_NS_PER_S)};
        if (npfd == 0) {
            if (wait_ns > 0) {
                nanosleep(&timeout, NULL);
            }
            continue;
        }
        int ready = ppoll(pfds, npfd, &timeout, NULL);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "loadgen: poll: %s\n", strerror(errno));
            st->errors++;
            break;
        }
        for (unsigned k = 0; k < npfd && ready > 0; k++) {
            if (pfds[k].revents == 0) {
                continue;
            }
            ready--;
            lg_conn_drain(&conns[pidx[k]], depth, src, st, pfds[k].revents);
        }
    }
    free(pfds);
    free(pidx);
    return lg_now_ns();
}

/* ---- load mode ------------------------------------------------------------ */

struct lg_load {
    struct lg_source src;
    const struct lg_options *opt;
    struct lg_stats *st;
    uint64_t rng;
    uint64_t next_txn;
    char run_id[32];
    uint64_t start_ns;
    uint64_t interval_ns; /* 0: closed loop */
    uint64_t next_due_ns;
    FILE *ack;
};

static int lg_load_next(struct lg_source *src, uint64_t now_ns, struct lg_job *job)
{
    struct lg_load *ld = (struct lg_load *)src;
    uint64_t t0 = 0;
    if (ld->interval_ns != 0) {
        if (now_ns < ld->next_due_ns) {
            return 0;
        }
        t0 = ld->next_due_ns;
        ld->next_due_ns += ld->interval_ns;
    }
    memset(job, 0, sizeof *job);
    job->t0_ns = t0;
    bool award = lg_rand_upto(&ld->rng, 100) <= LG_AWARD_PERCENT;
    job->kind = award ? COALITION_TXN_AWARD : COALITION_TXN_REDEEM;
    unsigned partner = lg_rand_upto(&ld->rng, ld->opt->partners);
    if (ld->opt->api_partner != NULL) {
        /* An API key speaks for one partner. */
        snprintf(job->partner, sizeof job->partner, "%s", ld->opt->api_partner);
    } else {
        lg_partner_id(partner, job->partner);
    }
    lg_member_id(lg_rand_upto(&ld->rng, ld->opt->members), job->member);
    job->points = lg_rand_upto(&ld->rng, LG_AMOUNT_MAX);
    snprintf(job->txn_id, sizeof job->txn_id, "lg-%s-%" PRIu64, ld->run_id, ld->next_txn++);
    return 1;
}

static uint64_t lg_load_due(struct lg_source *src)
{
    struct lg_load *ld = (struct lg_load *)src;
    return ld->interval_ns ? ld->next_due_ns : 0;
}

static void lg_load_answer(struct lg_source *src, const struct lg_job *job, int code,
                           const struct coalition_txn_result *res, uint64_t now_ns)
{
    struct lg_load *ld = (struct lg_load *)src;
    struct lg_stats *st = ld->st;
    lg_count_code(st, code);
    if (code == 0) {
        st->committed++;
        if (res->duplicate) {
            st->duplicates++;
        }
        if (ld->ack != NULL) {
            fprintf(ld->ack, "%s %s %s %s %" PRId64 " %" PRIu64 "\n",
                    coalition_txn_kind_name(job->kind), job->partner, job->txn_id, job->member,
                    job->points, res->seq);
        }
    } else if (code == COALITION_E_INSUFFICIENT_POINTS) {
        st->rejected++;
    } else {
        if (st->errors < LG_MISMATCH_PRINT_MAX) {
            fprintf(stderr, "loadgen: %s %s: unexpected %s\n", coalition_txn_kind_name(job->kind),
                    job->txn_id, coalition_errname(code));
        }
        st->errors++;
        return;
    }
    if (!lg_record_latency(st, now_ns - job->t0_ns)) {
        st->errors++;
    }
}

static void lg_print_codes(const struct lg_stats *st)
{
    bool any = false;
    for (int i = 1; i < LG_CODES_LEN; i++) {
        if (st->by_code[i] != 0) {
            fprintf(stdout, "%s %s=%" PRIu64, any ? "," : "  answers:", coalition_errname(-i),
                    st->by_code[i]);
            any = true;
        }
    }
    if (st->by_code_other != 0) {
        fprintf(stdout, "%s other=%" PRIu64, any ? "," : "  answers:", st->by_code_other);
        any = true;
    }
    if (any) {
        fputc('\n', stdout);
    }
}

static int lg_mode_load(const struct lg_options *opt)
{
    struct lg_stats st;
    memset(&st, 0, sizeof st);
    struct lg_load ld;
    memset(&ld, 0, sizeof ld);
    ld.src.next = lg_load_next;
    ld.src.answer = lg_load_answer;
    ld.src.due_ns = lg_load_due;
    ld.opt = opt;
    ld.st = &st;
    ld.rng = opt->seed ? opt->seed : 1;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    snprintf(ld.run_id, sizeof ld.run_id, "%lx%03lx-%d", (unsigned long)wall.tv_sec,
             (unsigned long)(wall.tv_nsec / 1000000), (int)getpid());

    if (opt->ack_log != NULL) {
        ld.ack = fopen(opt->ack_log, "a");
        if (ld.ack == NULL) {
            fprintf(stderr, "loadgen: cannot open %s: %s\n", opt->ack_log, strerror(errno));
            return 1;
        }
        /* Line by line, so a watcher sees acks as they come. */
        setvbuf(ld.ack, NULL, _IOLBF, 0);
    }
    struct lg_conn *conns = lg_conns_create(opt, opt->n_nodes, opt->clients, opt->depth);
    if (conns == NULL) {
        if (ld.ack != NULL) {
            fclose(ld.ack);
        }
        return opt->ack_log != NULL ? 0 : 1;
    }

    ld.start_ns = lg_now_ns();
    if (opt->rate_tps > 0) {
        ld.interval_ns = (uint64_t)((double)LG_NS_PER_S / opt->rate_tps);
        if (ld.interval_ns == 0) {
            ld.interval_ns = 1;
        }
        ld.next_due_ns = ld.start_ns;
    }
    uint64_t end_ns = ld.start_ns + (uint64_t)(opt->duration_s * (double)LG_NS_PER_S);
    uint64_t stop_ns = lg_run(conns, opt->clients, opt->depth, &ld.src, &st, end_ns);
    lg_conns_destroy(conns, opt->clients);
    if (ld.ack != NULL && fclose(ld.ack) != 0) {
        fprintf(stderr, "loadgen: writing %s: %s\n", opt->ack_log, strerror(errno));
        st.errors++;
    }

    double seconds = (double)(stop_ns - ld.start_ns) / (double)LG_NS_PER_S;
    if (seconds <= 0) {
        seconds = 1e-9;
    }
    uint64_t answered = st.committed + st.rejected;
    double tps = (double)answered / seconds;
    if (st.lat_len > 0) {
        qsort(st.lat_us, st.lat_len, sizeof *st.lat_us, lg_cmp_u32);
    }
    uint32_t p50 = lg_percentile(st.lat_us, st.lat_len, 0.50);
    uint32_t p99 = lg_percentile(st.lat_us, st.lat_len, 0.99);
    uint32_t p999 = lg_percentile(st.lat_us, st.lat_len, 0.999);
    uint32_t pmax = st.lat_len ? st.lat_us[st.lat_len - 1] : 0;

    printf("loadgen: %u clients x depth %u", opt->clients, opt->depth);
    if (opt->n_nodes > 1) {
        printf(" over %u nodes", opt->n_nodes);
    }
    if (opt->rate_tps > 0) {
        printf(" at %.0f tps offered", opt->rate_tps);
    }
    printf(" for %.2f s (seed %" PRIu64 "): %" PRIu64 " committed, %" PRIu64
           " rejected (not enough points), %" PRIu64 " errors; %.0f tps; latency p50 %.2f ms, "
           "p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
           seconds, opt->seed, st.committed, st.rejected, st.errors, tps, p50 / 1000.0,
           p99 / 1000.0, p999 / 1000.0, pmax / 1000.0);
    lg_print_codes(&st);
    printf("RESULT clients=%u depth=%u committed=%" PRIu64 " rejected=%" PRIu64 " errors=%" PRIu64
           " seconds=%.2f tps=%.0f p50_us=%u p99_us=%u p999_us=%u nodes=%u rate_limited=%" PRIu64
           "\n",
           opt->clients, opt->depth, st.committed, st.rejected, st.errors, seconds, tps, p50, p99,
           p999, opt->n_nodes, st.rate_limited);
    fflush(stdout);
    free(st.lat_us);
    if (opt->ack_log != NULL) {
        return 0; /* the crash test breaks the node on purpose */
    }
    return st.errors != 0 || st.conn_failures != 0 ? 1 : 0;
}

/* ---- setup mode ----------------------------------------------------------- */

enum lg_setup_phase { LG_PHASE_PARTNERS, LG_PHASE_MEMBERS, LG_PHASE_AWARDS };

struct lg_setup {
    struct lg_source src;
    const struct lg_options *opt;
    struct lg_stats *st;
    enum lg_setup_phase phase;
    unsigned next; /* next index to create in this phase */
    unsigned total;
    uint64_t created;
    uint64_t existed;
};

static int lg_setup_next(struct lg_source *src, uint64_t now_ns, struct lg_job *job)
{
    struct lg_setup *su = (struct lg_setup *)src;
    (void)now_ns;
    if (su->next >= su->total) {
        return -1;
    }
    unsigned i = su->next++;
    memset(job, 0, sizeof *job);
    switch (su->phase) {
    case LG_PHASE_PARTNERS:
        job->kind = COALITION_TXN_PARTNER_ADD;
        if (i == 0) {
            snprintf(job->partner, sizeof job->partner, "%s", LG_SETUP_PARTNER);
            snprintf(job->name, sizeof job->name, "Benchmark setup");
        } else {
            lg_partner_id(i, job->partner);
            snprintf(job->name, sizeof job->name, "Benchmark partner %u", i);
        }
        snprintf(job->txn_id, sizeof job->txn_id, "setup-partner-%u", i);
        break;
    case LG_PHASE_MEMBERS:
        job->kind = COALITION_TXN_MEMBER_ADD;
        snprintf(job->partner, sizeof job->partner, "%s", LG_SETUP_PARTNER);
        lg_member_id(i + 1, job->member);
        snprintf(job->txn_id, sizeof job->txn_id, "setup-member-%u", i + 1);
        break;
    case LG_PHASE_AWARDS:
        job->kind = COALITION_TXN_AWARD;
        snprintf(job->partner, sizeof job->partner, "%s", LG_SETUP_PARTNER);
        lg_member_id(i + 1, job->member);
        job->points = LG_SETUP_POINTS;
        snprintf(job->txn_id, sizeof job->txn_id, "setup-award-%u", i + 1);
        break;
    }
    return 1;
}

static void lg_setup_answer(struct lg_source *src, const struct lg_job *job, int code,
                            const struct coalition_txn_result *res, uint64_t now_ns)
{
    struct lg_setup *su = (struct lg_setup *)src;
    (void)now_ns;
    lg_count_code(su->st, code);
    if (code == 0 && !res->duplicate) {
        su->created++;
    } else if (code == 0 || code == COALITION_E_ALREADY_EXISTS) {
        su->existed++; /* a rerun: fine */
    } else {
        if (su->st->errors < LG_MISMATCH_PRINT_MAX) {
            fprintf(stderr, "loadgen: setup %s %s %s: %s\n", coalition_txn_kind_name(job->kind),
                    job->partner, job->member, coalition_errname(code));
        }
        su->st->errors++;
    }
}

static int lg_mode_setup(const struct lg_options *opt)
{
    unsigned depth = opt->depth < LG_SETUP_DEPTH_MIN ? LG_SETUP_DEPTH_MIN : opt->depth;
    /* Setup goes through the first node only: it is not measured, and its
     * phases then depend on one node's view alone. */
    struct lg_conn *conns = lg_conns_create(opt, 1, opt->clients, depth);
    if (conns == NULL) {
        return 1;
    }
    struct lg_stats st;
    memset(&st, 0, sizeof st);
    static const char *const names[] = {"partners", "members", "awards"};
    const unsigned totals[] = {opt->partners + 1, opt->members, opt->members};
    uint64_t start_ns = lg_now_ns();
    /* Phases run one after the other: a member must exist before it is
     * awarded, and pipelined requests on different connections may be
     * ordered any way. */
    for (int phase = LG_PHASE_PARTNERS; phase <= LG_PHASE_AWARDS && st.errors == 0; phase++) {
        struct lg_setup su;
        memset(&su, 0, sizeof su);
        su.src.next = lg_setup_next;
        su.src.answer = lg_setup_answer;
        su.opt = opt;
        su.st = &st;
        su.phase = (enum lg_setup_phase)phase;
        su.total = totals[phase];
        /* Partners go over one connection so the setup partner is first. */
        unsigned n = phase == LG_PHASE_PARTNERS ? 1 : opt->clients;
        lg_run(conns, n, phase == LG_PHASE_PARTNERS ? 1 : depth, &su.src, &st, 0);
        printf("setup: %s: %" PRIu64 " created, %" PRIu64 " already there\n", names[phase],
               su.created, su.existed);
        if (lg_interrupted) {
            st.errors++;
        }
    }
    lg_conns_destroy(conns, opt->clients);
    double seconds = (double)(lg_now_ns() - start_ns) / (double)LG_NS_PER_S;
    printf("setup: %u partners (+%s), %u members with %d points each, %.2f s, %" PRIu64
           " errors; rate-limited %" PRIu64 " times (each resent)\n",
           opt->partners, LG_SETUP_PARTNER, opt->members, LG_SETUP_POINTS, seconds, st.errors,
           st.rate_limited);
    return st.errors != 0 || st.conn_failures != 0 ? 1 : 0;
}

/* ---- check-log mode ------------------------------------------------------- */

struct lg_check {
    struct lg_source src;
    struct lg_stats *st;
    FILE *in;
    const char *path;
    unsigned long line_no;
    bool bad_input;
    uint64_t checked;
    uint64_t ok;
    uint64_t mismatched;
};

static enum coalition_txn_kind lg_kind_parse(const char *s)
{
    for (int k = COALITION_TXN_PARTNER_ADD; k <= COALITION_TXN_TRANSFER; k++) {
        if (strcmp(s, coalition_txn_kind_name((enum coalition_txn_kind)k)) == 0) {
            return (enum coalition_txn_kind)k;
        }
    }
    return 0;
}

static int lg_check_next(struct lg_source *src, uint64_t now_ns, struct lg_job *job)
{
    struct lg_check *ck = (struct lg_check *)src;
    (void)now_ns;
    char line[512];
    while (fgets(line, sizeof line, ck->in) != NULL) {
        ck->line_no++;
        if (line[0] == '\n' || line[0] == '#') {
            continue;
        }
        char kind[24];
        memset(job, 0, sizeof *job);
        int n = sscanf(line, "%23s %64s %64s %64s %" SCNd64 " %" SCNu64, kind, job->partner,
                       job->txn_id, job->member, &job->points, &job->expect_seq);
        job->kind = lg_kind_parse(kind);
        if (n != 6 || job->kind == 0) {
            fprintf(stderr, "loadgen: %s:%lu: not an ack line: %s", ck->path, ck->line_no, line);
            ck->bad_input = true;
            continue;
        }
        return 1;
    }
    return -1;
}

static void lg_check_answer(struct lg_source *src, const struct lg_job *job, int code,
                            const struct coalition_txn_result *res, uint64_t now_ns)
{
    struct lg_check *ck = (struct lg_check *)src;
    (void)now_ns;
    ck->checked++;
    if (code == 0 && res->duplicate && res->seq == job->expect_seq) {
        ck->ok++;
        return;
    }
    if (ck->mismatched < LG_MISMATCH_PRINT_MAX) {
        fprintf(stderr,
                "loadgen: LOST OR CHANGED: %s %s %s %s %" PRId64 " acked seq %" PRIu64
                ", now code %s duplicate %s seq %" PRIu64 "\n",
                coalition_txn_kind_name(job->kind), job->partner, job->txn_id, job->member,
                job->points, job->expect_seq, coalition_errname(code),
                res->duplicate ? "true" : "false", res->seq);
    }
    ck->mismatched++;
}

static int lg_mode_check(const struct lg_options *opt)
{
    struct lg_stats st;
    memset(&st, 0, sizeof st);
    struct lg_check ck;
    memset(&ck, 0, sizeof ck);
    ck.src.next = lg_check_next;
    ck.src.answer = lg_check_answer;
    ck.st = &st;
    ck.path = opt->check_log;
    ck.in = fopen(opt->check_log, "r");
    if (ck.in == NULL) {
        fprintf(stderr, "loadgen: cannot open %s: %s\n", opt->check_log, strerror(errno));
        return 1;
    }
    struct lg_conn *conns = lg_conns_create(opt, opt->n_nodes, opt->clients, opt->depth);
    if (conns == NULL) {
        fclose(ck.in);
        return 1;
    }
    lg_run(conns, opt->clients, opt->depth, &ck.src, &st, 0);
    lg_conns_destroy(conns, opt->clients);
    fclose(ck.in);
    printf("check-log: %" PRIu64 " checked, %" PRIu64 " present with the same seq, %" PRIu64
           " lost or changed, %" PRIu64 " errors; rate-limited %" PRIu64 " times (each resent)\n",
           ck.checked, ck.ok, ck.mismatched, st.errors, st.rate_limited);
    bool fail = ck.mismatched != 0 || st.errors != 0 || st.conn_failures != 0 || ck.bad_input ||
                lg_interrupted;
    return fail ? 1 : 0;
}

/* ---- options -------------------------------------------------------------- */

static void lg_usage(FILE *out)
{
    fprintf(out,
            "usage: coalition-loadgen [options]\n"
            "  --node HOST:PORT[,HOST:PORT...]\n"
            "                     node(s) to load (default %s); connections are spread\n"
            "                     round-robin over the nodes, --setup uses the first\n"
            "  --clients N        connections (default 64)\n"
            "  --depth D          requests in flight per connection (default 1)\n"
            "  --duration S       seconds to run (default 10)\n"
            "  --members N        members M000001.. (default 10000)\n"
            "  --partners N       partners P01.. (default 20)\n"
            "  --rate TPS         open-loop offered load, spread over the clients; latency\n"
            "                     then counts from each request's scheduled time\n"
            "                     (0 = closed loop, as fast as possible: the default)\n"
            "  --seed N           random seed (default: from time and pid)\n"
            "  --setup            create partners, members and their starting points, exit\n"
            "  --ack-log FILE     append every acknowledged transaction to FILE\n"
            "  --check-log FILE   resubmit FILE's transactions, require the same seq\n"
            "  --key-dir DIR      sign every transaction as its partner with DIR/<id>.key\n"
            "                     (P01.key.., SETUP.key; partners are admitted with\n"
            "                     DIR/admin.key and their public keys)\n"
            "  --api-key KEY      send this API key with every request: the node signs\n"
            "  --partner P        every award and redemption is P's (with --api-key: the\n"
            "                     key's partner; --api-partner is the same option)\n"
            "The last line of a load run is a machine-readable RESULT line.\n",
            COALITION_DEFAULT_NODE);
}

/* Parses an unsigned in [min, max]; false if not a number or out of range. */
static bool lg_parse_uint(const char *s, unsigned long long min, unsigned long long max,
                          unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    if (s[0] == '-') {
        return false;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool lg_parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
        return false;
    }
    *out = v;
    return true;
}

/* Splits opt->node ("host:port" or a comma-separated list of them) into
 * opt->nodes.  Returns false (message printed) on an empty item, an item too
 * long, or more than LG_NODES_MAX items. */
static bool lg_parse_nodes(struct lg_options *opt)
{
    opt->n_nodes = 0;
    const char *p = opt->node;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= LG_NODE_ADDR_MAX || strchr(p, ':') == NULL ||
            (size_t)(strchr(p, ':') - p) >= len) {
            fprintf(stderr, "coalition-loadgen: bad value for --node: '%s' (HOST:PORT[,...])\n",
                    opt->node);
            return false;
        }
        if (opt->n_nodes == LG_NODES_MAX) {
            fprintf(stderr, "coalition-loadgen: --node: more than %d nodes\n", LG_NODES_MAX);
            return false;
        }
        memcpy(opt->nodes[opt->n_nodes], p, len);
        opt->nodes[opt->n_nodes][len] = '\0';
        opt->n_nodes++;
        if (p[len] == '\0') {
            break;
        }
        p += len + 1;
    }
    assert(opt->n_nodes >= 1);
    return true;
}

/* Returns 0 with *opt filled, 1 for --help, 2 for a usage error (printed). */
static int lg_parse_options(int argc, char **argv, struct lg_options *opt)
{
    enum {
        OPT_NODE = 256,
        OPT_CLIENTS,
        OPT_DEPTH,
        OPT_DURATION,
        OPT_MEMBERS,
        OPT_PARTNERS,
        OPT_RATE,
        OPT_SEED,
        OPT_SETUP,
        OPT_ACK_LOG,
        OPT_CHECK_LOG,
        OPT_KEY_DIR,
        OPT_API_KEY,
        OPT_API_PARTNER,
        OPT_HELP,
    };
    static const struct option longopts[] = {
        {"node", required_argument, NULL, OPT_NODE},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"depth", required_argument, NULL, OPT_DEPTH},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"members", required_argument, NULL, OPT_MEMBERS},
        {"partners", required_argument, NULL, OPT_PARTNERS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"setup", no_argument, NULL, OPT_SETUP},
        {"ack-log", required_argument, NULL, OPT_ACK_LOG},
        {"check-log", required_argument, NULL, OPT_CHECK_LOG},
        {"key-dir", required_argument, NULL, OPT_KEY_DIR},
        {"api-key", required_argument, NULL, OPT_API_KEY},
        {"api-partner", required_argument, NULL, OPT_API_PARTNER},
        {"help", no_argument, NULL, OPT_HELP},
        {"partner", required_argument, NULL, OPT_API_PARTNER}, /* after the OPT_ order: an alias */
        {NULL, 0, NULL, 0},
    };
    memset(opt, 0, sizeof *opt);
    opt->node = COALITION_DEFAULT_NODE;
    opt->clients = 64;
    opt->depth = 1;
    opt->duration_s = 10;
    opt->members = 10000;
    opt->partners = 20;
    opt->mode = LG_MODE_LOAD;

    int c;
    unsigned long long v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case OPT_NODE:
            opt->node = optarg;
            break;
        case OPT_CLIENTS:
            ok = lg_parse_uint(optarg, 1, LG_CLIENTS_MAX, &v);
            opt->clients = (unsigned)v;
            break;
        case OPT_DEPTH:
            ok = lg_parse_uint(optarg, 1, LG_DEPTH_MAX, &v);
            opt->depth = (unsigned)v;
            break;
        case OPT_DURATION:
            ok = lg_parse_double(optarg, 0.001, 86400, &opt->duration_s);
            break;
        case OPT_MEMBERS:
            ok = lg_parse_uint(optarg, 1, LG_MEMBERS_MAX, &v);
            opt->members = (unsigned)v;
            break;
        case OPT_PARTNERS:
            ok = lg_parse_uint(optarg, 1, LG_PARTNERS_MAX, &v);
            opt->partners = (unsigned)v;
            break;
        case OPT_RATE:
            ok = lg_parse_double(optarg, 0, 1e9, &opt->rate_tps);
            break;
        case OPT_SEED:
            ok = lg_parse_uint(optarg, 0, UINT64_MAX, &v);
            opt->seed = v;
            opt->seed_set = true;
            break;
        case OPT_SETUP:
            opt->mode = LG_MODE_SETUP;
            break;
        case OPT_ACK_LOG:
            opt->ack_log = optarg;
            break;
        case OPT_CHECK_LOG:
            opt->check_log = optarg;
            opt->mode = LG_MODE_CHECK;
            break;
        case OPT_KEY_DIR:
            opt->key_dir = optarg;
            break;
        case OPT_API_KEY:
            opt->api_key = optarg;
            break;
        case OPT_API_PARTNER:
            ok = optarg[0] != '\0' && strlen(optarg) <= COALITION_ID_MAX;
            opt->api_partner = optarg;
            break;
        case OPT_HELP:
            lg_usage(stdout);
            return 1;
        default:
            lg_usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "coalition-loadgen: bad value for --%s: %s\n",
                    longopts[c - OPT_NODE].name, optarg);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "coalition-loadgen: unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    if (opt->check_log != NULL && (opt->ack_log != NULL || opt->mode != LG_MODE_CHECK)) {
        fprintf(stderr, "coalition-loadgen: --check-log excludes --setup and --ack-log\n");
        return 2;
    }
    if (opt->mode == LG_MODE_SETUP && opt->ack_log != NULL) {
        fprintf(stderr, "coalition-loadgen: --setup excludes --ack-log\n");
        return 2;
    }
    if (opt->api_key != NULL && opt->api_partner == NULL) {
        fprintf(stderr, "coalition-loadgen: --api-key needs --partner (the key's partner)\n");
        return 2;
    }
    if (opt->api_key != NULL && opt->key_dir != NULL && opt->mode != LG_MODE_SETUP) {
        fprintf(stderr, "coalition-loadgen: give --key-dir or --api-key, not both\n");
        return 2;
    }
    if (!lg_parse_nodes(opt)) {
        return 2;
    }
    if (!opt->seed_set) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt->seed =
            ((uint64_t)ts.tv_sec * LG_NS_PER_S + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct lg_options opt;
    int rv = lg_parse_options(argc, argv, &opt);
    if (rv != 0) {
        return rv == 1 ? 0 : rv;
    }
    /* A node that dies mid-write must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = lg_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    switch (opt.mode) {
    case LG_MODE_SETUP:
        return lg_mode_setup(&opt);
    case LG_MODE_CHECK:
        return lg_mode_check(&opt);
    case LG_MODE_LOAD:
        break;
    }
    return lg_mode_load(&opt);
}
