/* metrics.c: shared-memory counters and their Prometheus exposition. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "lib/hist.h"
#include "http/metrics.h"


#define OMNI_METRICS_STATUSES 500 /* 100..599 */
#define OMNI_METRICS_UNMATCHED OMNI_METRICS_MAX_ROUTES

typedef struct {
    int32_t pid; /* 0: slot unused */
    int32_t inflight;
    int32_t redis_up;
    int32_t pg_size, pg_ready, pg_busy, pg_connecting, pg_queued;
    int32_t pg_queue_max;
    uint64_t pg_queries, pg_errors, pg_timeouts, pg_unavailable;
    uint64_t pg_pipelined;
    int32_t redis_pending, redis_pending_max;
    uint64_t redis_timeouts, redis_rejected;
} omni_metrics_proc_t;

typedef struct {
    uint64_t gateway_refused;   /* unix peers not the gateway */
    uint64_t gateway_untrusted; /* requests without the secret */
    uint64_t events[3];         /* by omni_publish_outcome_t */
    uint64_t mcp_calls[OMNI_METRICS_MCP_OUTCOMES];
    uint64_t mcp_call_us[OMNI_METRICS_MCP_OUTCOMES];
    uint64_t mcp_probes[2];      /* failed, ok */
    uint64_t mcp_transitions[2]; /* closed, opened */
    uint64_t requests[OMNI_METRICS_MAX_ROUTES + 1][OMNI_METRICS_STATUSES];
    uint64_t hist[OMNI_METRICS_MAX_ROUTES + 1][OMNI_HIST_BUCKETS];
    uint64_t sum_us[OMNI_METRICS_MAX_ROUTES + 1];
    omni_metrics_proc_t procs[OMNI_METRICS_MAX_PROCS];
} omni_metrics_shm_t;

static omni_metrics_shm_t *omni_shm;
static int (*omni_metrics_extras[4])(struct evbuffer *out);
static const char *const omni_metrics_mcp_names[] = {"ok", "tool_error",
    "rpc_error", "upstream_error", "timeout", "unavailable"};
static int omni_metrics_slot = -1;
static int omni_metrics_nroutes;
static char omni_metrics_labels[OMNI_METRICS_MAX_ROUTES][96];


int omni_metrics_init(const omni_route_t *routes, int nroutes)
{
    int i;

    if (nroutes > OMNI_METRICS_MAX_ROUTES) {
        return -1;
    }
    omni_metrics_nroutes = nroutes;
    for (i = 0; i < nroutes; i++) {
        snprintf(omni_metrics_labels[i], sizeof(omni_metrics_labels[i]),
            "%s %s", routes[i].method, routes[i].pattern);
    }

    omni_shm = mmap(NULL, sizeof(omni_metrics_shm_t), PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (omni_shm == MAP_FAILED) {
        omni_shm = NULL;
        return -1;
    }
    return 0;
}


const char *omni_metrics_route_label(int route)
{
    if (route < 0 || route >= omni_metrics_nroutes) {
        return "unmatched";
    }
    return omni_metrics_labels[route];
}


void omni_metrics_attach(int slot)
{
    omni_metrics_slot = slot;
    memset(&omni_shm->procs[slot], 0, sizeof(omni_metrics_proc_t));
    omni_shm->procs[slot].pid = getpid();
}


void omni_metrics_release(int slot)
{
    memset(&omni_shm->procs[slot], 0, sizeof(omni_metrics_proc_t));
}


void omni_metrics_request(int route, int status, uint64_t us)
{
    int r = route < 0 ? OMNI_METRICS_UNMATCHED : route;

    if (status < 100 || status > 599) {
        status = 599;
    }
    __atomic_fetch_add(
        &omni_shm->requests[r][status - 100], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(
        &omni_shm->hist[r][omni_hist_bucket(us)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&omni_shm->sum_us[r], us, __ATOMIC_RELAXED);
}


void omni_metrics_gateway_refused(void)
{
    __atomic_fetch_add(&omni_shm->gateway_refused, 1, __ATOMIC_RELAXED);
}


void omni_metrics_gateway_untrusted(void)
{
    __atomic_fetch_add(&omni_shm->gateway_untrusted, 1, __ATOMIC_RELAXED);
}


void omni_metrics_event(omni_publish_outcome_t outcome)
{
    if ((unsigned)outcome < 3) {
        __atomic_fetch_add(&omni_shm->events[outcome], 1, __ATOMIC_RELAXED);
    }
}


void omni_metrics_mcp_call(omni_metrics_mcp_outcome_t outcome, uint64_t us)
{
    if ((unsigned)outcome < OMNI_METRICS_MCP_OUTCOMES) {
        __atomic_fetch_add(&omni_shm->mcp_calls[outcome], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(
            &omni_shm->mcp_call_us[outcome], us, __ATOMIC_RELAXED);
    }
}


void omni_metrics_mcp_probe(int ok)
{
    __atomic_fetch_add(&omni_shm->mcp_probes[ok != 0], 1, __ATOMIC_RELAXED);
}


void omni_metrics_mcp_breaker(int opened)
{
    __atomic_fetch_add(
        &omni_shm->mcp_transitions[opened != 0], 1, __ATOMIC_RELAXED);
}


int omni_metrics_extra(int (*fn)(struct evbuffer *out))
{
    size_t i;

    for (i = 0; i < sizeof(omni_metrics_extras) / sizeof(*omni_metrics_extras);
         i++) {
        if (omni_metrics_extras[i] == NULL || omni_metrics_extras[i] == fn) {
            omni_metrics_extras[i] = fn;
            return 0;
        }
    }
    return -1;
}


void omni_metrics_gauges(
    const omni_db_stats_t *db, int inflight, const omni_redis_stats_t *redis)
{
    omni_metrics_proc_t *p = &omni_shm->procs[omni_metrics_slot];

    p->inflight = inflight;
    p->redis_up = redis->connected;
    p->redis_pending = redis->pending;
    p->redis_pending_max = redis->pending_max;
    p->redis_timeouts = redis->timeouts;
    p->redis_rejected = redis->rejected;
    p->pg_size = db->size;
    p->pg_ready = db->ready;
    p->pg_busy = db->busy;
    p->pg_connecting = db->connecting;
    p->pg_queued = db->queued;
    p->pg_queue_max = db->queue_max;
    p->pg_queries = db->queries;
    p->pg_errors = db->errors;
    p->pg_timeouts = db->timeouts;
    p->pg_unavailable = db->unavailable;
    p->pg_pipelined = db->pipelined;
}


static uint64_t omni_metrics_load(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}


int omni_metrics_prometheus(struct evbuffer *out)
{
    int r, s, b, k, rc = 0;
    const char *label;

    rc |= evbuffer_add_printf(out,
              "# HELP omni_worker_requests_total Requests served, by route and "
              "status.\n# TYPE omni_worker_requests_total counter\n")
          < 0;

    for (r = 0; r <= OMNI_METRICS_MAX_ROUTES; r++) {
        label = omni_metrics_route_label(r == OMNI_METRICS_UNMATCHED ? -1 : r);
        if (r >= omni_metrics_nroutes && r != OMNI_METRICS_UNMATCHED) {
            continue;
        }
        for (s = 0; s < OMNI_METRICS_STATUSES; s++) {
            uint64_t n = omni_metrics_load(&omni_shm->requests[r][s]);

            if (n) {
                rc |=
                    evbuffer_add_printf(out,
                        "omni_worker_requests_total{route=\"%s\",status=\"%d\"}"
                        " %llu\n",
                        label, s + 100, (unsigned long long)n)
                    < 0;
            }
        }
    }

    rc |= evbuffer_add_printf(out,
              "# HELP omni_worker_request_duration_seconds Request latency.\n"
              "# TYPE omni_worker_request_duration_seconds histogram\n")
          < 0;

    for (r = 0; r <= OMNI_METRICS_MAX_ROUTES; r++) {
        uint64_t cum = 0, total = 0;

        if (r >= omni_metrics_nroutes && r != OMNI_METRICS_UNMATCHED) {
            continue;
        }
        for (b = 0; b < OMNI_HIST_BUCKETS; b++) {
            total += omni_metrics_load(&omni_shm->hist[r][b]);
        }
        if (total == 0) {
            continue;
        }
        label = omni_metrics_route_label(r == OMNI_METRICS_UNMATCHED ? -1 : r);

        /* Prometheus wants fixed bounds: every octave from 8 us to ~16 s,
         * which fall on bucket edges, so the counts are exact */
        b = 0;
        for (k = 3; k <= 24; k++) {
            uint64_t le = 1ull << k;

            while (b < OMNI_HIST_BUCKETS && omni_hist_upper(b) <= le) {
                cum += omni_metrics_load(&omni_shm->hist[r][b]);
                b++;
            }
            rc |=
                evbuffer_add_printf(out,
                    "omni_worker_request_duration_seconds_bucket{route=\"%s\","
                    "le=\"%g\"} %llu\n",
                    label, (double)le / 1e6, (unsigned long long)cum)
                < 0;
        }
        rc |=
            evbuffer_add_printf(out,
                "omni_worker_request_duration_seconds_bucket{route=\"%s\","
                "le=\"+Inf\"} %llu\n"
                "omni_worker_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                "omni_worker_request_duration_seconds_count{route=\"%s\"} "
                "%llu\n",
                label, (unsigned long long)total, label,
                (double)omni_metrics_load(&omni_shm->sum_us[r]) / 1e6, label,
                (unsigned long long)total)
            < 0;
    }

    rc |= evbuffer_add_printf(out,
              "# HELP omni_worker_pg_connections Postgres pool connections by "
              "state, per process.\n"
              "# TYPE omni_worker_pg_connections gauge\n")
          < 0;
    for (s = 0; s < OMNI_METRICS_MAX_PROCS; s++) {
        omni_metrics_proc_t *p = &omni_shm->procs[s];

        if (p->pid == 0) {
            continue;
        }
        rc |= evbuffer_add_printf(out,
                  "omni_worker_pg_connections{pid=\"%d\",state=\"busy\"} %d\n"
                  "omni_worker_pg_connections{pid=\"%d\",state=\"idle\"} %d\n"
                  "omni_worker_pg_connections{pid=\"%d\",state=\"connecting\"} "
                  "%d\n"
                  "omni_worker_pg_connections{pid=\"%d\",state=\"down\"} %d\n",
                  p->pid, p->pg_busy, p->pid, p->pg_ready - p->pg_busy, p->pid,
                  p->pg_connecting, p->pid,
                  p->pg_size - p->pg_ready - p->pg_connecting)
              < 0;
    }

#define OMNI_PROC_GAUGE(name, help, type, field, fmt)                          \
    rc |= evbuffer_add_printf(                                                 \
              out, "# HELP " name " " help "\n# TYPE " name " " type "\n")     \
          < 0;                                                                 \
    for (s = 0; s < OMNI_METRICS_MAX_PROCS; s++) {                             \
        omni_metrics_proc_t *p = &omni_shm->procs[s];                          \
        if (p->pid) {                                                          \
            rc |= evbuffer_add_printf(                                         \
                      out, name "{pid=\"%d\"} " fmt "\n", p->pid, p->field)    \
                  < 0;                                                         \
        }                                                                      \
    }

    OMNI_PROC_GAUGE("omni_worker_pg_queue_depth",
        "Queries waiting for a Postgres connection.", "gauge", pg_queued, "%d")
    OMNI_PROC_GAUGE("omni_worker_pg_queue_max", "Wait queue bound.", "gauge",
        pg_queue_max, "%d")
    OMNI_PROC_GAUGE("omni_worker_pg_queries_total", "Queries sent.", "counter",
        pg_queries, "%lu")
    OMNI_PROC_GAUGE("omni_worker_pg_pipelined_total",
        "Queries sent behind another on one connection in one batch.",
        "counter", pg_pipelined, "%lu")
    OMNI_PROC_GAUGE("omni_worker_pg_errors_total", "Queries Postgres rejected.",
        "counter", pg_errors, "%lu")
    OMNI_PROC_GAUGE("omni_worker_pg_timeouts_total", "Queries timed out.",
        "counter", pg_timeouts, "%lu")
    OMNI_PROC_GAUGE("omni_worker_pg_unavailable_total",
        "Queries refused while Postgres was down.", "counter", pg_unavailable,
        "%lu")
    OMNI_PROC_GAUGE("omni_worker_inflight_requests", "Requests being served.",
        "gauge", inflight, "%d")
    OMNI_PROC_GAUGE("omni_worker_redis_up", "Redis connection state.", "gauge",
        redis_up, "%d")
    OMNI_PROC_GAUGE("omni_worker_redis_pending",
        "Redis commands sent and not answered yet.", "gauge", redis_pending,
        "%d")
    OMNI_PROC_GAUGE("omni_worker_redis_pending_max",
        "Bound on them (OMNI_REDIS_PENDING_MAX).", "gauge", redis_pending_max,
        "%d")
    OMNI_PROC_GAUGE("omni_worker_redis_timeouts_total",
        "Times a command passed its deadline and the "
        "connection was torn down.",
        "counter", redis_timeouts, "%lu")
    OMNI_PROC_GAUGE("omni_worker_redis_rejected_total",
        "Commands failed at once: pending bound reached.", "counter",
        redis_rejected, "%lu")

#undef OMNI_PROC_GAUGE

    rc |=
        evbuffer_add_printf(out,
            "# HELP omni_worker_gateway_refused_total Unix-socket connections "
            "refused: the peer is not the gateway's user.\n"
            "# TYPE omni_worker_gateway_refused_total counter\n"
            "omni_worker_gateway_refused_total %llu\n"
            "# HELP omni_worker_gateway_untrusted_total Requests without the "
            "gateway's secret: identity headers dropped.\n"
            "# TYPE omni_worker_gateway_untrusted_total counter\n"
            "omni_worker_gateway_untrusted_total %llu\n"
            "# HELP omni_worker_events_total Events for subscribers by fate: "
            "sent to nchan, dropped (queue full), failed (refused or lost "
            "with a connection).\n"
            "# TYPE omni_worker_events_total counter\n"
            "omni_worker_events_total{outcome=\"sent\"} %llu\n"
            "omni_worker_events_total{outcome=\"dropped\"} %llu\n"
            "omni_worker_events_total{outcome=\"failed\"} %llu\n",
            (unsigned long long)omni_metrics_load(&omni_shm->gateway_refused),
            (unsigned long long)omni_metrics_load(&omni_shm->gateway_untrusted),
            (unsigned long long)omni_metrics_load(
                &omni_shm->events[OMNI_PUBLISH_SENT]),
            (unsigned long long)omni_metrics_load(
                &omni_shm->events[OMNI_PUBLISH_DROPPED]),
            (unsigned long long)omni_metrics_load(
                &omni_shm->events[OMNI_PUBLISH_FAILED]))
        < 0;

    rc |= evbuffer_add_printf(out,
              "# HELP omni_worker_mcp_calls_total MCP tool calls by outcome "
              "(unavailable: refused while the server's breaker is open).\n"
              "# TYPE omni_worker_mcp_calls_total counter\n")
          < 0;
    for (k = 0; k < OMNI_METRICS_MCP_OUTCOMES; k++) {
        rc |=
            evbuffer_add_printf(out,
                "omni_worker_mcp_calls_total{outcome=\"%s\"} %llu\n",
                omni_metrics_mcp_names[k],
                (unsigned long long)omni_metrics_load(&omni_shm->mcp_calls[k]))
            < 0;
    }
    rc |= evbuffer_add_printf(out,
              "# HELP omni_worker_mcp_call_seconds_sum Time spent in MCP tool "
              "calls by outcome.\n"
              "# TYPE omni_worker_mcp_call_seconds_sum counter\n")
          < 0;
    for (k = 0; k < OMNI_METRICS_MCP_OUTCOMES; k++) {
        rc |= evbuffer_add_printf(out,
                  "omni_worker_mcp_call_seconds_sum{outcome=\"%s\"} %.6f\n",
                  omni_metrics_mcp_names[k],
                  (double)omni_metrics_load(&omni_shm->mcp_call_us[k]) / 1e6)
              < 0;
    }
    rc |= evbuffer_add_printf(out,
              "# HELP omni_worker_mcp_probes_total MCP server probes "
              "(periodic and manual) by result.\n"
              "# TYPE omni_worker_mcp_probes_total counter\n"
              "omni_worker_mcp_probes_total{result=\"ok\"} %llu\n"
              "omni_worker_mcp_probes_total{result=\"failed\"} %llu\n"
              "# HELP omni_worker_mcp_breaker_transitions_total MCP circuit "
              "breakers opened and closed.\n"
              "# TYPE omni_worker_mcp_breaker_transitions_total counter\n"
              "omni_worker_mcp_breaker_transitions_total{to=\"open\"} %llu\n"
              "omni_worker_mcp_breaker_transitions_total{to=\"closed\"} "
              "%llu\n",
              (unsigned long long)omni_metrics_load(&omni_shm->mcp_probes[1]),
              (unsigned long long)omni_metrics_load(&omni_shm->mcp_probes[0]),
              (unsigned long long)omni_metrics_load(
                  &omni_shm->mcp_transitions[1]),
              (unsigned long long)omni_metrics_load(
                  &omni_shm->mcp_transitions[0]))
          < 0;
    for (k = 0; k < 4 && omni_metrics_extras[k] != NULL; k++) {
        rc |= omni_metrics_extras[k](out) != 0;
    }

    return rc ? -1 : 0;
}
