/* catalog.h: a server's tools, their approval, and the probe. */
#ifndef OMNI_MCP_CATALOG_H
#define OMNI_MCP_CATALOG_H

#include "http/http.h"

int omni_mcp_catalog_init(void);

void omni_mcp_server_tools(omni_req_t *r);
void omni_mcp_server_probe(omni_req_t *r);
void omni_mcp_tool_approve(omni_req_t *r);

int omni_mcp_breakers_init(void);
void omni_mcp_breakers_list(omni_req_t *r);

#endif
