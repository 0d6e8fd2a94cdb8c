/* fuzz_jsonrpc.c: libFuzzer target for the JSON-RPC message check that
 * every MCP upstream's answer goes through (lib/jsonrpc.c).
 *
 * Properties checked on every input:
 * - parsing never crashes; a refusal always leaves a one-line reason;
 * - an accepted message is consistent with its kind: a result is an
 *   object, an error has its object, message and integer code, a request
 *   and a notification have a method, responses and requests have an id
 *   (number or string; an error may answer "id": null);
 * - omni_rpc_id_is agrees with the id as parsed;
 * - the size limit is honoured: text longer than max_bytes is refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"
#include "lib/jsonrpc.h"

static void check_message(const omni_rpc_msg_t *m)
{
    if (m->root == NULL || m->root->type != OMNI_JSON_OBJECT)
        abort();
    if (m->id != NULL && m->id->type != OMNI_JSON_NUMBER
        && m->id->type != OMNI_JSON_STRING)
        abort();
    switch (m->kind) {
    case OMNI_RPC_RESULT:
        if (m->id == NULL || m->result == NULL
            || m->result->type != OMNI_JSON_OBJECT || m->error != NULL)
            abort();
        break;
    case OMNI_RPC_ERROR:
        if (m->error == NULL || m->error->type != OMNI_JSON_OBJECT
            || m->message == NULL || m->result != NULL)
            abort();
        break;
    case OMNI_RPC_REQUEST:
        if (m->id == NULL || m->method == NULL)
            abort();
        break;
    case OMNI_RPC_NOTIFICATION:
        if (m->id != NULL || m->method == NULL)
            abort();
        break;
    default:
        abort();
    }
    if (m->id != NULL && m->id->type == OMNI_JSON_NUMBER && m->id->u.num.is_int
        && !omni_rpc_id_is(m, m->id->u.num.i))
        abort();
    if ((m->id == NULL || m->id->type == OMNI_JSON_STRING)
        && omni_rpc_id_is(m, 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    omni_rpc_msg_t m;
    omni_arena_t arena;
    char err[128];
    size_t max = 4096;

    omni_arena_init(&arena, 512);
    memset(err, 'x', sizeof(err));
    memset(&m, 0, sizeof(m));
    if (omni_rpc_parse(&arena, text, size, max, &m, err, sizeof(err)) == 0) {
        if (size > max)
            abort();
        check_message(&m);
    } else if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0'
               || strchr(err, '\n') != NULL) {
        abort();
    }
    omni_arena_free(&arena);
    return 0;
}
