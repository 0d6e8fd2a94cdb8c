/* catalog.h: a server's tools, their approval, and the probe. */
#ifndef OMNI_MCP_CATALOG_H
#define OMNI_MCP_CATALOG_H

#include <libpq-fe.h>

#include "http/http.h"
#include "services/mcp/upstream.h"

struct evbuffer;

int omni_mcp_catalog_init(void);

void omni_mcp_server_tools(omni_req_t *r);
void omni_mcp_server_probe(omni_req_t *r);
void omni_mcp_tool_approve(omni_req_t *r);

/* Appends a tools/list page's tools to tools ("[t,t,..." as *ntools
 * grows); the next cursor, or NULL. */
const char *omni_mcp_catalog_page(
    const omni_mcp_reply_t *rep, struct evbuffer *tools, int *ntools);

/* The statement storing a catalog: $1 server id, $2 the tools array, $3
 * the protocol; its rows are the tools it quarantined, then one with a
 * NULL tool when tools were added or removed, for
 * omni_mcp_catalog_quarantined. */
int omni_mcp_catalog_store_stmt(void);

/* Records the quarantines of a store's answer res and, when any row came,
 * bumps the MCP generation (kept call rows and /mcp's list_changed follow
 * it). 0 when done(arg) will be called once Redis counted the bump; -1
 * when nothing changed or done is NULL or the bump could not wait (done is
 * not called). */
int omni_mcp_catalog_quarantined(const omni_mcp_upstream_t *u, PGresult *res,
    void (*done)(void *arg), void *arg);

int omni_mcp_breakers_init(void);
void omni_mcp_breakers_list(omni_req_t *r);

#endif
