/* HTTP API counters and the Prometheus text exposition (contract in
 * metrics.h).  Metric names start with coalition_; times are in seconds,
 * as Prometheus expects, counted in microseconds here. */
#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

static const int metrics_statuses[METRICS_STATUSES - 1] = {
    200, 201, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 431, 500, 503, 504,
};
_Static_assert(sizeof(metrics_statuses) / sizeof(metrics_statuses[0]) == METRICS_STATUSES - 1,
               "the last slot is 'other'");

static const uint64_t metrics_bucket_ms[METRICS_BUCKETS - 1] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
};
_Static_assert(sizeof(metrics_bucket_ms) / sizeof(metrics_bucket_ms[0]) == METRICS_BUCKETS - 1,
               "the last bucket is +Inf");

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i < METRICS_STATUSES - 1; i++) {
        if (metrics_statuses[i] == status) {
            return i;
        }
    }
    return METRICS_STATUSES - 1;
}

void metrics_observe(struct metrics *m, enum route_id route, int http_status, uint64_t latency_us)
{
    assert((unsigned)route < ROUTE_COUNT);
    m->requests[route][status_slot(http_status)]++;
    size_t b = 0;
    while (b < METRICS_BUCKETS - 1 && latency_us > metrics_bucket_ms[b] * 1000) {
        b++;
    }
    m->latency[route][b]++;
    m->latency_sum_us[route] += latency_us;
    m->latency_count[route]++;
}

int metrics_render(const struct metrics *m, const struct metrics_node *n, char **out, size_t *len)
{
    assert(m != NULL && n != NULL && out != NULL && len != NULL);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL) {
        return COALITION_E_NOMEM;
    }
    fprintf(f, "# HELP coalition_http_requests_total HTTP requests answered, by route and "
               "status.\n# TYPE coalition_http_requests_total counter\n");
    for (size_t r = 0; r < ROUTE_COUNT; r++) {
        for (size_t s = 0; s < METRICS_STATUSES; s++) {
            if (m->requests[r][s] == 0) {
                continue;
            }
            char code[8];
            if (s < METRICS_STATUSES - 1) {
                snprintf(code, sizeof(code), "%d", metrics_statuses[s]);
            } else {
                snprintf(code, sizeof(code), "other");
            }
            fprintf(f, "coalition_http_requests_total{route=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                    route_name((enum route_id)r), code, m->requests[r][s]);
        }
    }
    fprintf(f, "# HELP coalition_http_request_duration_seconds Time from a request's last byte "
               "to its answer.\n# TYPE coalition_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < ROUTE_COUNT; r++) {
        if (m->latency_count[r] == 0) {
            continue;
        }
        const char *name = route_name((enum route_id)r);
        uint64_t cum = 0;
        for (size_t b = 0; b < METRICS_BUCKETS; b++) {
            cum += m->latency[r][b];
            if (b < METRICS_BUCKETS - 1) {
                fprintf(f,
                        "coalition_http_request_duration_seconds_bucket{route=\"%s\",le=\"%" PRIu64
                        ".%03" PRIu64 "\"} %" PRIu64 "\n",
                        name, metrics_bucket_ms[b] / 1000, metrics_bucket_ms[b] % 1000, cum);
            } else {
                fprintf(f,
                        "coalition_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                        "%" PRIu64 "\n",
                        name, cum);
            }
        }
        fprintf(f,
                "coalition_http_request_duration_seconds_sum{route=\"%s\"} %" PRIu64 ".%06" PRIu64
                "\n",
                name, m->latency_sum_us[r] / 1000000, m->latency_sum_us[r] % 1000000);
        fprintf(f, "coalition_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
                name, m->latency_count[r]);
    }
    fprintf(f,
            "# HELP coalition_http_connections Open HTTP connections.\n"
            "# TYPE coalition_http_connections gauge\ncoalition_http_connections %" PRIu64 "\n"
            "# HELP coalition_http_requests_in_flight HTTP requests waiting for the node.\n"
            "# TYPE coalition_http_requests_in_flight gauge\n"
            "coalition_http_requests_in_flight %" PRIu64 "\n"
            "# HELP coalition_http_connections_accepted_total HTTP connections accepted.\n"
            "# TYPE coalition_http_connections_accepted_total counter\n"
            "coalition_http_connections_accepted_total %" PRIu64 "\n"
            "# HELP coalition_http_connections_refused_total HTTP connections closed at once, by "
            "limit.\n# TYPE coalition_http_connections_refused_total counter\n"
            "coalition_http_connections_refused_total{limit=\"per_address\"} %" PRIu64 "\n"
            "coalition_http_connections_refused_total{limit=\"total\"} %" PRIu64 "\n"
            "# HELP coalition_http_timeouts_total HTTP connections closed by a timeout.\n"
            "# TYPE coalition_http_timeouts_total counter\n"
            "coalition_http_timeouts_total{kind=\"idle\"} %" PRIu64 "\n"
            "coalition_http_timeouts_total{kind=\"request\"} %" PRIu64 "\n",
            n->http_conns, n->http_inflight, m->conns_accepted, m->conns_refused_per_addr,
            m->conns_refused_total, m->timeouts_idle, m->timeouts_request);
    static const char *const roles[] = {"leader", "follower", "candidate", "unavailable"};
    fprintf(f, "# HELP coalition_raft_role 1 for this node's raft state.\n"
               "# TYPE coalition_raft_role gauge\n");
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        fprintf(f, "coalition_raft_role{role=\"%s\"} %d\n", roles[i],
                n->role != NULL && strcmp(n->role, roles[i]) == 0);
    }
    fprintf(f,
            "# HELP coalition_node_id This node's id.\n# TYPE coalition_node_id gauge\n"
            "coalition_node_id %" PRIu64 "\n"
            "# HELP coalition_raft_leader_id The leader this node knows of (0: none).\n"
            "# TYPE coalition_raft_leader_id gauge\ncoalition_raft_leader_id %" PRIu64 "\n"
            "# HELP coalition_raft_commit_index Highest raft index known committed.\n"
            "# TYPE coalition_raft_commit_index gauge\ncoalition_raft_commit_index %" PRIu64 "\n"
            "# HELP coalition_raft_applied_index Highest raft index applied here.\n"
            "# TYPE coalition_raft_applied_index gauge\ncoalition_raft_applied_index %" PRIu64 "\n"
            "# HELP coalition_raft_last_index Last raft index in this node's log.\n"
            "# TYPE coalition_raft_last_index gauge\ncoalition_raft_last_index %" PRIu64 "\n"
            "# HELP coalition_batcher_batches_total Batches proposed by this node as leader.\n"
            "# TYPE coalition_batcher_batches_total counter\n"
            "coalition_batcher_batches_total %" PRIu64 "\n"
            "# HELP coalition_batcher_txns_total Transactions proposed in those batches.\n"
            "# TYPE coalition_batcher_txns_total counter\n"
            "coalition_batcher_txns_total %" PRIu64 "\n"
            "# HELP coalition_batcher_batches_failed_total Batches whose outcome was unknown.\n"
            "# TYPE coalition_batcher_batches_failed_total counter\n"
            "coalition_batcher_batches_failed_total %" PRIu64 "\n"
            "# HELP coalition_batcher_batch_size_max Largest batch proposed (transactions).\n"
            "# TYPE coalition_batcher_batch_size_max gauge\n"
            "coalition_batcher_batch_size_max %" PRIu64 "\n",
            n->node_id, n->leader_id, n->commit_index, n->applied_index, n->last_index, n->batches,
            n->batch_txns, n->batches_failed, n->batch_max_seen);
    if (fclose(f) != 0 || buf == NULL) {
        free(buf);
        return COALITION_E_NOMEM;
    }
    *out = buf;
    *len = size;
    return 0;
}
