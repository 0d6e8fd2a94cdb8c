/* jsonrpc.h: JSON-RPC 2.0 messages as MCP upstreams send them (one per
 * JSON body or SSE event), checked and classified. */
#ifndef OMNI_JSONRPC_H
#define OMNI_JSONRPC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/arena.h"
#include "lib/json.h"

typedef enum {
    OMNI_RPC_RESULT = 1,   /* a response with a result object */
    OMNI_RPC_ERROR,        /* a response with an error object */
    OMNI_RPC_NOTIFICATION, /* method, no id */
    OMNI_RPC_REQUEST       /* method and id: the server asks the client */
} omni_rpc_kind_t;

typedef struct {
    omni_rpc_kind_t kind;
    const omni_json_t *root;
    const omni_json_t *id;     /* number or string; NULL for notifications and
                                  for an error answering no readable request
                                  ("id": null, or no id) */
    const char *method;        /* notifications and requests */
    const omni_json_t *params; /* may be NULL */
    const omni_json_t *result; /* RESULT: an object */
    const omni_json_t *error;  /* ERROR: {code, message, data?} */
    int64_t code;              /* ERROR */
    const char *message;       /* ERROR */
} omni_rpc_msg_t;

/* Parses text[0..len) (at most max_bytes, nesting at most 64) into arena
 * and checks it is one JSON-RPC 2.0 message: an object with "jsonrpc":
 * "2.0"; a response has an id (integer or string) and exactly one of
 * "result" (an object) and "error" (an object with an integer code and a
 * string message), except an error, whose id may be null or missing.
 * Batches are refused. 0, or -1 with a short reason fit
 * for an error message in err. Pure. */
int omni_rpc_parse(omni_arena_t *arena, const char *text, size_t len,
    size_t max_bytes, omni_rpc_msg_t *m, char *err, size_t errlen);

/* 1 when the message's id is the integer id. */
int omni_rpc_id_is(const omni_rpc_msg_t *m, int64_t id);

#endif
