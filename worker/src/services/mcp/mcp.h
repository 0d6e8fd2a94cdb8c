/* mcp.h: the MCP gateway service (registry, catalog, health, tool calls):
 * its table, for core/services.c. */
#ifndef OMNI_MCP_H
#define OMNI_MCP_H

#include "lib/json.h"
#include "http/service.h"

extern const omni_service_t omni_mcp_service;

/* The built-in server's name: its tools (services/memory) run in the
 * worker itself; no upstream may be registered under it. */
#define OMNI_MCP_BUILTIN "omni"

/* A tool call for another service (the chat turn's tool loop), made as
 * the caller (role; user, the X-User-Id its mcp_performance record names
 * and the built-in server's tools act for; NULL: none): name is
 * "<server>__<tool>" (the /mcp name), args the JSON object text of its
 * arguments (NULL or blank: {}). The checks of POST /api/v1/mcp/tools/call
 * apply (role, tool_roles, enabled, quarantine, breaker); it is sent once,
 * never retried. done(arg, is_error, text, len) is called exactly once, from
 * the loop, unless cancelled: text is the result's text content (or its JSON),
 * or why the call failed or was refused (arguments that are not a JSON object
 * included). NULL when out of memory (done is not called). */
typedef void (*omni_mcp_tool_done_pt)(
    void *arg, int is_error, const char *text, size_t len);
typedef struct omni_mcp_tool_call_s omni_mcp_tool_call_t;

omni_mcp_tool_call_t *omni_mcp_tool_call(const char *role, const char *user,
    const char *name, const char *args, omni_mcp_tool_done_pt done, void *arg);

/* The upstream's progress notifications of c (params: its progress,
 * total, message; valid during the call) go to progress(arg, params)
 * until done; set right after omni_mcp_tool_call, before the loop runs
 * (the call is sent from the loop). A built-in tool sends none. */
typedef void (*omni_mcp_tool_progress_pt)(void *arg, const omni_json_t *params);

void omni_mcp_tool_on_progress(
    omni_mcp_tool_call_t *c, omni_mcp_tool_progress_pt progress, void *arg);

/* Abandons c: done is not called. Not from inside done. */
void omni_mcp_tool_cancel(omni_mcp_tool_call_t *c);

/* The service's init registers the call's statement. */
int omni_mcp_tool_init(void);

#endif
