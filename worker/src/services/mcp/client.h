/* client.h: one JSON-RPC exchange with an MCP upstream over Streamable
 * HTTP, speaking whichever protocol generation the upstream answers. */
#ifndef OMNI_MCP_CLIENT_H
#define OMNI_MCP_CLIENT_H

#include <stdint.h>

#include "lib/arena.h"
#include "lib/json.h"
#include "io/outbound.h"

#define OMNI_MCP_MODERN "2026-07-28"
#define OMNI_MCP_LEGACY "2025-11-25"

typedef struct {
    const char *id; /* server id (text) */
    const char *url;
    const char *const *headers; /* "Name: value", NULL-terminated, or NULL */
    long timeout_ms;
    /* a 2026-07-28 request's _meta clientCapabilities (JSON text of an
     * object: what Omni's own client can answer), or NULL for {} */
    const char *caps;
} omni_mcp_target_t;

typedef struct {
    /* a JSON-RPC response arrived: result or error is set */
    const omni_json_t *result;
    const omni_json_t *error; /* {code, message, data?} */
    /* otherwise what went wrong, for a 502/504 message */
    const char *failure;
    int timeout; /* the deadline passed (504) */
    int unsent;  /* the final request surely never reached the upstream */
    const char *protocol; /* the revision spoken */
    uint64_t bytes_out, bytes_in, latency_us;
} omni_mcp_reply_t;

typedef void (*omni_mcp_reply_pt)(void *arg, const omni_mcp_reply_t *rep);

/* A notification the upstream sent while answering (progress, logging);
 * valid during the call. */
typedef void (*omni_mcp_note_pt)(void *arg, const omni_json_t *note);

typedef struct omni_mcp_rpc_s omni_mcp_rpc_t;

/* Sends method with params (the text of a JSON object, or NULL) to the
 * target: first learns the generation (server/discover; else initialize
 * and a session), remembered per server in this process. name is the
 * Mcp-Name header's value (the tool of tools/call), or NULL. The final
 * request is sent at most once unless idempotent. The reply's JSON is
 * allocated from arena, which must outlive the exchange. done is called
 * exactly once from the loop, unless cancelled. NULL when out of memory
 * or the client is not started (nothing is called). */
omni_mcp_rpc_t *omni_mcp_rpc(const omni_mcp_target_t *t, const char *method,
    const char *name, const char *params, int idempotent, omni_arena_t *arena,
    omni_mcp_note_pt note, omni_mcp_reply_pt done, void *arg);

/* params is an object without "_meta": the client writes _meta itself
 * (the 2026-07-28 members, and a progressToken when note is set). */

/* A request the upstream sends while answering a call (sampling/
 * createMessage, elicitation/create, roots/list) reaches note like a
 * notification (it has an "id"). Unless note takes it (omni_mcp_ask_take,
 * during note), the upstream is answered -32601 at once. A taken request
 * is answered with omni_mcp_ask_answer on the session it came on. */
typedef struct omni_mcp_ask_s omni_mcp_ask_t;

/* During note for a request: the handle to answer it, from the exchange's
 * arena (valid as long as that arena); NULL otherwise. */
omni_mcp_ask_t *omni_mcp_ask_take(void);

/* Posts the JSON-RPC response to the request: result or error (JSON text
 * of an object; exactly one is non-NULL). 0, or -1. */
int omni_mcp_ask_answer(
    const omni_mcp_ask_t *a, const char *result, const char *error);

/* Abandons it: no callback after this; a legacy session is told with
 * notifications/cancelled when the call was under way. */
void omni_mcp_rpc_cancel(omni_mcp_rpc_t *c);

/* The per-process client (mcp.c's start and stop). */
int omni_mcp_client_start(struct event_base *base, const char *ca_file);
void omni_mcp_client_stop(void);

/* Forgets what this process knows of a server: generation, session. */
void omni_mcp_client_forget(const char *id);

/* This process's legacy session with a server (relay.c opens its GET
 * stream): 0 with session and protocol copied, or -1 when there is none. */
int omni_mcp_client_session(
    const char *id, char *session, size_t n, char *protocol, size_t pn);

/* "legacy", "modern", or NULL when not learned yet in this process. */
const char *omni_mcp_client_generation(const char *id);

#endif
