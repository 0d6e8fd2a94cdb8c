/* call.h: POST /api/v1/mcp/tools/call and its batched records. */
#ifndef OMNI_MCP_CALL_H
#define OMNI_MCP_CALL_H

#include "http/http.h"

int omni_mcp_call_init(void);
void omni_mcp_tools_call(omni_req_t *r);

/* the per-process batch of mcp_performance rows: flushed every second and
 * at 100 rows, at most 2000 held (beyond that rows are dropped, counted) */
int omni_mcp_perf_start(void);
void omni_mcp_perf_stop(void);

#endif
