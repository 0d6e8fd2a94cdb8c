/* endpoint.h: /mcp, the aggregated MCP server clients talk to. */
#ifndef OMNI_MCP_ENDPOINT_H
#define OMNI_MCP_ENDPOINT_H

#include <stddef.h>

#include "http/http.h"

#define OMNI_MCP_NAME_MAX 64
#define OMNI_MCP_CURSOR_LEN 40

int omni_mcp_endpoint_init(void);
int omni_mcp_endpoint_configure(const omni_config_t *cfg);
int omni_mcp_endpoint_start(void);
void omni_mcp_endpoint_stop(void);

void omni_mcp_endpoint_post(omni_req_t *r);
void omni_mcp_endpoint_delete(omni_req_t *r);
void omni_mcp_endpoint_get(omni_req_t *r);

/* The cursor key: derived from secret[0..len), or random when secret is
 * NULL (then only the processes forked after share it). 0, or -1. */
int omni_mcp_cursor_key(const unsigned char *secret, size_t len);

/* The name /mcp gives tool of server: "<server>__<tool>" when that matches
 * ^[A-Za-z0-9_-]{1,64}$; otherwise its first 55 characters with the others
 * made '_', then '_' and 8 hex digits of a SHA-256 of both names (stable,
 * and different for different inputs but by a 2^-32 chance). Pure. */
void omni_mcp_tool_name(
    const char *server, const char *tool, char out[OMNI_MCP_NAME_MAX + 1]);

/* An opaque cursor for the page starting at offset of the list scope
 * names (the caller's role), signed with the cursor key; check gives the
 * offset back: 0, or -1 for a cursor this key did not sign for scope. */
void omni_mcp_cursor_make(
    const char *scope, unsigned offset, char out[OMNI_MCP_CURSOR_LEN + 1]);
int omni_mcp_cursor_check(
    const char *scope, const char *cursor, unsigned *offset);

#endif
