/* call.h: a tool call (the breaker, retries of idempotent tools only,
 * timeouts, the batched records), for POST /api/v1/mcp/tools/call and for
 * /mcp's tools/call. */
#ifndef OMNI_MCP_CALL_H
#define OMNI_MCP_CALL_H

#include "lib/json.h"
#include "http/http.h"
#include "services/mcp/client.h"
#include "services/mcp/perf.h"

int omni_mcp_call_init(void);
void omni_mcp_tools_call(omni_req_t *r);

typedef struct omni_mcp_call_s omni_mcp_call_t;

/* How a call ended: status 200 with the upstream's result (a
 * CallToolResult, or a 2026-07-28 InputRequiredResult), or the
 * HTTP status, code and message of the REST error (403 forbidden, 404
 * not_found, 409 tool_quarantined, 502 upstream_error /
 * upstream_rpc_error with the upstream's error object in rpc_error, 503
 * mcp_server_unavailable, 504 upstream_timeout, 499 cancelled, 503
 * "database" with r->db_status and r->db_res set for
 * omni_api_db_failed). */
typedef struct {
    int status;
    const char *code;
    char message[320];
    const omni_json_t *result;
    const omni_json_t *rpc_error;
    const char *server_id; /* once the server is loaded, else NULL */
} omni_mcp_outcome_t;

/* A call of tool on server (name or id) for r's caller, with args (an
 * object, or NULL for none), in r's arena. note (may be NULL) receives the
 * upstream's notifications while it runs (progress: the upstream is then
 * sent a progressToken). NULL when out of memory. */
omni_mcp_call_t *omni_mcp_call_new(omni_req_t *r, const char *server,
    const char *tool, const omni_json_t *args, omni_mcp_note_pt note,
    void *note_arg);

/* A 2026-07-28 client's own part of the call, passed to a 2026-07-28
 * upstream as it was sent: caps (JSON text of the clientCapabilities an
 * upstream may ask input of, or NULL for none) and input (JSON text of
 * the members a retry adds to params, "inputResponses":{..},
 * "requestState":"..", or NULL). Omni reads neither: the tool and the
 * caller's role decide the call as any other. Before the first step; 0,
 * or -1 when out of memory. */
int omni_mcp_call_input(
    omni_mcp_call_t *c, const char *caps, const char *input);

/* A 2026-07-28 retry's requestState as the client sent it, wrapped by
 * Omni (endpoint.h's omni_mcp_state_wrap): once the server is loaded it
 * is opened for the caller, the server's id and the tool, and the
 * upstream gets its own state; one that does not open ends the call
 * before anything is sent, status 400 invalid_request_state. Before the
 * first step. */
void omni_mcp_call_state(omni_mcp_call_t *c, const char *wrapped);

/* The MCP generation (omni:mcp:gen, 0 when unset) as the caller read it
 * after the request arrived, in a round trip of its own (/mcp reads it
 * with the session): the call does not read it again. Before the first
 * step. */
void omni_mcp_call_gen(omni_mcp_call_t *c, long long gen);

/* Runs the call: the route's handler calls it first and each time it is
 * re-entered while the call is under way. 0: waiting (the handler will be
 * re-entered); 1: over, *out says how. */
int omni_mcp_call_step(
    omni_req_t *r, omni_mcp_call_t *c, const omni_mcp_outcome_t **out);

/* The client gave up: an upstream exchange under way is abandoned (a
 * legacy upstream is told with notifications/cancelled); the handler is
 * re-entered, now or once pending I/O completes, and the outcome is 499
 * cancelled. */
void omni_mcp_call_cancel(omni_mcp_call_t *c);

#endif
