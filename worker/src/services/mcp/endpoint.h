/* endpoint.h: /mcp, the aggregated MCP server clients talk to. */
#ifndef OMNI_MCP_ENDPOINT_H
#define OMNI_MCP_ENDPOINT_H

#include <stddef.h>
#include <time.h>

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

/* A 2026-07-28 upstream's requestState as Omni hands it to the client:
 * OMNI_MCP_STATE_PREFIX and the base64url of its expiry (now +
 * OMNI_MCP_STATE_TTL seconds), an HMAC-SHA256 under a key derived like the
 * cursor key, and the state; the HMAC covers bound (the caller's id, the
 * server's id, the method and the tool, prompt or URI; none NULL), the
 * expiry and the state. In a's memory; NULL when out of memory. */
#define OMNI_MCP_STATE_PREFIX "omni1."
#define OMNI_MCP_STATE_TTL 600
char *omni_mcp_state_wrap(
    omni_arena_t *a, const char *const bound[4], const char *state, time_t now);

/* The upstream's state back from what wrap gave for the same bound: 0
 * (*state set, in a's memory), -2 when expired, or -1 when it was not
 * made for bound by this key (another user, server or tool, altered, not
 * Omni's, or out of memory). The HMAC is compared in constant time. */
int omni_mcp_state_open(omni_arena_t *a, const char *const bound[4],
    const char *wrapped, time_t now, const char **state);

#endif
