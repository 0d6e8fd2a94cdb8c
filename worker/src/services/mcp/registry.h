/* registry.h: the MCP server registry (/api/v1/mcp/servers): handlers,
 * their statements, and the pure checks of a server's fields. */
#ifndef OMNI_MCP_REGISTRY_H
#define OMNI_MCP_REGISTRY_H

#include <stddef.h>

#include "lib/json.h"
#include "lib/seal.h"
#include "http/http.h"
#include "services/mcp/mcp.h"

/* the key sealing stored headers (mcp.c's configure); NULL when unset */
extern const unsigned char *omni_mcp_secret_key;

int omni_mcp_registry_init(void);

void omni_mcp_servers_list(omni_req_t *r);
void omni_mcp_server_get(omni_req_t *r);
void omni_mcp_server_create(omni_req_t *r);
void omni_mcp_server_update(omni_req_t *r);
void omni_mcp_server_delete(omni_req_t *r);

/* A server's fields from a POST (partial = 0) or PATCH (partial = 1) body,
 * as text parameters for the statements (NULL: absent). */
typedef struct {
    const char *name, *url, *timeout_ms, *enabled;
    const char *roles;      /* text[] literal */
    const char *tool_roles; /* JSON object text */
    const char *health;     /* JSON object text (PATCH: the members given) */
    int has_headers;        /* "headers" present (null clears them) */
    const omni_json_t *headers; /* the object, or NULL */
    const char *header_names;   /* text[] literal */
    int secret_files;           /* a value is {"secret_file": name} */
    const char *fields;         /* text[] literal of the members given */
} omni_mcp_server_in_t;

/* Checks body; fills in (strings from arena). 0; or -1 with *status 400
 * (missing or wrongly typed member) or 422 (invalid value), the member's
 * dotted name in field and a message naming it in msg. Pure. */
int omni_mcp_server_check(const omni_json_t *body, int partial,
    omni_arena_t *arena, omni_mcp_server_in_t *in, int *status, char *field,
    size_t fieldlen, char *msg, size_t msglen);

/* 1 when name may be referenced as kind: "secret_env" (MCP_SECRET_ and
 * 1-64 of A-Z 0-9 _: no other variable of the worker can be sent
 * upstream) or "secret_file" (a plain file name in OMNI_MCP_SECRETS_DIR).
 * Pure. */
int omni_mcp_secret_name_valid(const char *kind, const char *name);

/* 1 when url is an upstream the gateway may call: https://, or http://
 * to loopback or an in-cluster name (no dot, or ending in .svc or
 * .svc.cluster.local); no credentials, no fragment. Pure. */
int omni_mcp_url_allowed(const char *url, const char **why);

#endif
