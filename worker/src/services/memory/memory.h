/* memory.h: contexts and memories (the Omnex store): the service's table,
 * for core/services.c, and the built-in MCP server "omni"'s tools, for the
 * /mcp endpoint (the one header of this service others may include). */
#ifndef OMNI_MEMORY_H
#define OMNI_MEMORY_H

#include <stddef.h>

#include "lib/json.h"
#include "http/identity.h"
#include "http/service.h"

extern const omni_service_t omni_memory_service;

/* The tools of the built-in server "omni" (context_put, context_get,
 * context_list, context_delete, memory_add, memory_search, memory_delete)
 * as the JSON array tools/list answers: name, description, inputSchema,
 * annotations. Static text; never NULL. */
const char *omni_memory_tools_json(void);

/* The end of a tool call: status as the REST route would answer (200, 201
 * or 204 for a success; 4xx/5xx otherwise) and json, the REST answer's
 * body (the {"error","message"} object on failure; "{}" for a 204), valid
 * during the call only. A 4xx is the caller's mistake (an MCP tool result
 * with isError); a 5xx the platform's. */
typedef void (*omni_memory_done_pt)(
    void *arg, int status, const char *json, size_t len);

/* Calls tool `name` with args (a JSON object; NULL is {}) acting as id
 * (its id owns what the call reads and writes; a NULL id->id is answered
 * 401). args need only live until this returns. done runs exactly once,
 * always from the loop, never inside this call. Returns 0; -1 when name is
 * not one of the tools above (done is then not called). */
int omni_memory_tool_call(const omni_identity_t *id, const char *name,
    const omni_json_t *args, omni_memory_done_pt done, void *arg);

#endif
