/* Counters of the HTTP API and their Prometheus text exposition (format
 * 0.0.4): requests by route and status, a latency histogram by route, and
 * gauges of the node (raft role and indexes, batcher batch sizes, HTTP
 * connections) that the caller samples.  No I/O, no libuv. */
#ifndef COALITION_METRICS_H
#define COALITION_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "http_routes.h"

/* HTTP statuses counted by name; any other is counted under "other". */
#define METRICS_STATUSES 17
/* Latency buckets (upper bounds, ms) of the request histogram, +Inf last. */
#define METRICS_BUCKETS 13

struct metrics {
    /* private */
    uint64_t requests[ROUTE_COUNT][METRICS_STATUSES];
    uint64_t latency[ROUTE_COUNT][METRICS_BUCKETS]; /* not cumulative */
    uint64_t latency_sum_us[ROUTE_COUNT];
    uint64_t latency_count[ROUTE_COUNT];
    /* read-write by the HTTP front */
    uint64_t conns_accepted;
    uint64_t conns_refused_per_addr; /* over conns_per_addr */
    uint64_t conns_refused_total;    /* over the total connection limit */
    uint64_t timeouts_idle;
    uint64_t timeouts_request;
};

/* What the node reports at the time of a scrape. */
struct metrics_node {
    uint64_t node_id;
    const char *role; /* leader, follower, candidate, unavailable */
    uint64_t leader_id;
    uint64_t commit_index, applied_index, last_index;
    uint64_t batches, batch_txns, batches_failed, batch_max_seen;
    uint64_t http_conns;
    uint64_t http_inflight;
};

void metrics_init(struct metrics *m);

/* Counts one answered request of `route` with `http_status` that took
 * `latency_us` from its last byte to its answer. */
void metrics_observe(struct metrics *m, enum route_id route, int http_status, uint64_t latency_us);

/* The exposition text of m and n: *out is malloc'd (the caller frees),
 * *len its length.  0 or COALITION_E_NOMEM. */
int metrics_render(const struct metrics *m, const struct metrics_node *n, char **out, size_t *len);

#endif
