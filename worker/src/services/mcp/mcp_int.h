/* mcp_int.h: what the MCP service's files share (not for other services:
 * they see services/mcp/mcp.h only). */
#ifndef OMNI_MCP_INT_H
#define OMNI_MCP_INT_H

#include "http/http.h"

/* A server was created, changed or deleted (id as text): its upstream
 * session is forgotten and its tools are read again in the background. */
void omni_mcp_changed(const char *id);

/* The {id} route parameter as the two values of a "by id or name"
 * statement: values[0] the UUID or NULL, values[1] the text. */
void omni_mcp_server_ref(omni_req_t *r, const char **values);

#endif
