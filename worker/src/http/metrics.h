/* metrics.h: request and pool counters in memory shared by all processes. */
#ifndef OMNI_METRICS_H
#define OMNI_METRICS_H

#include <stdint.h>
#include "lib/router.h"
#include "io/db.h"
#include "io/publish.h"
#include "io/redis.h"

struct evbuffer;

#define OMNI_METRICS_MAX_ROUTES 128
#define OMNI_METRICS_MAX_PROCS 256

/* Maps the shared region; call in the master before forking. Returns 0, or
 * -1 when mmap fails (fatal at start-up). */
int omni_metrics_init(const omni_route_t *routes, int nroutes);

/* Claims the per-process gauge slot `slot` for this process. */
void omni_metrics_attach(int slot);

/* Counts one finished request: route index (-1 = no route), HTTP status,
 * latency. Lock-free atomics; never fails. */
void omni_metrics_request(int route, int status, uint64_t us);

/* Publishes this process's gauges. */
void omni_metrics_gauges(
    const omni_db_stats_t *db, int inflight, const omni_redis_stats_t *redis);

/* Counts a unix-socket peer refused, a request without the gateway's
 * secret. Lock-free; never fail. */
void omni_metrics_gateway_refused(void);
void omni_metrics_gateway_untrusted(void);

/* Counts one event's fate (io/publish.h). Lock-free; never fails. */
void omni_metrics_event(omni_publish_outcome_t outcome);

/* MCP gateway counters (services/mcp): a tool call's outcome (an
 * omni_metrics_mcp_outcome_t) and latency, a probe's result, a breaker
 * transition seen by the process that made it. Lock-free; never fail. */
typedef enum {
    OMNI_METRICS_MCP_OK = 0,
    OMNI_METRICS_MCP_TOOL_ERROR,
    OMNI_METRICS_MCP_RPC_ERROR,
    OMNI_METRICS_MCP_UPSTREAM_ERROR,
    OMNI_METRICS_MCP_TIMEOUT,
    OMNI_METRICS_MCP_UNAVAILABLE,
    OMNI_METRICS_MCP_OUTCOMES
} omni_metrics_mcp_outcome_t;
void omni_metrics_mcp_call(omni_metrics_mcp_outcome_t outcome, uint64_t us);
void omni_metrics_mcp_probe(int ok);
void omni_metrics_mcp_breaker(int opened);

/* A writer of more lines, called at the end of omni_metrics_prometheus in
 * the answering process (at most 4; 0, or -1 when full). */
int omni_metrics_extra(int (*fn)(struct evbuffer *out));

/* Clears a dead process's gauges (master, after reaping it). */
void omni_metrics_release(int slot);

/* Appends the Prometheus text exposition of everything. 0, or -1 when the
 * buffer cannot grow. */
int omni_metrics_prometheus(struct evbuffer *out);

/* Route label for metrics and rollups: "GET /api/v1/config/{key}", or
 * "unmatched" for -1. */
const char *omni_metrics_route_label(int route);

#endif
