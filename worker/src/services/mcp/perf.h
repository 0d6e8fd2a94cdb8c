/* perf.h: the records of every tool call this process makes (POST
 * /api/v1/mcp/tools/call, /mcp's tools/call, the chat turn's tool loop):
 * rows of mcp_performance.tool_calls, batched per process, and the call
 * counters of /metrics. */
#ifndef OMNI_MCP_PERF_H
#define OMNI_MCP_PERF_H

#include <stdint.h>

/* Registers the batch's statement; call before omni_db_create(). */
int omni_mcp_perf_init(void);

/* The per-process batch: flushed every second and at 100 rows, at most
 * 2000 held (beyond that rows are dropped, counted). */
int omni_mcp_perf_start(void);
void omni_mcp_perf_stop(void);

/* Records one call of tool on server server_id (a UUID) for user (NULL
 * when unknown), sent at start_ms (omni_mcp_now_ms(); 0: refused before
 * it was sent, so now), ended now with outcome: ok, tool_error,
 * rpc_error, upstream_error, timeout, unavailable, forbidden,
 * quarantined or cancelled; bytes as the exchange counted them. */
void omni_mcp_perf_add(const char *server_id, const char *tool,
    const char *user, int64_t start_ms, const char *outcome, uint64_t bytes_in,
    uint64_t bytes_out);

#endif
