/* mcp.h: the MCP gateway service (registry, catalog, health, tool calls):
 * its table, for core/services.c. */
#ifndef OMNI_MCP_H
#define OMNI_MCP_H

#include "http/service.h"

extern const omni_service_t omni_mcp_service;

#endif
