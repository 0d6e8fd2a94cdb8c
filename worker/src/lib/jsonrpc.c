/* jsonrpc.c: checks and classifies upstream JSON-RPC messages
 * (jsonrpc.h). */
#include <stdio.h>
#include <string.h>

#include "lib/jsonrpc.h"


static int omni_rpc_fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return -1;
}


int omni_rpc_parse(omni_arena_t *arena, const char *text, size_t len,
    size_t max_bytes, omni_rpc_msg_t *m, char *err, size_t errlen)
{
    omni_json_limits_t lim = {max_bytes, 64};
    const omni_json_t *v, *method;
    char perr[128];

    memset(m, 0, sizeof(*m));
    m->root = omni_json_parse(arena, text, len, &lim, perr, sizeof(perr));
    if (m->root == NULL) {
        snprintf(err, errlen, "not JSON: %s", perr);
        return -1;
    }
    if (m->root->type == OMNI_JSON_ARRAY) {
        return omni_rpc_fail(err, errlen, "a JSON-RPC batch, not a message");
    }
    if (m->root->type != OMNI_JSON_OBJECT) {
        return omni_rpc_fail(err, errlen, "not a JSON-RPC message object");
    }
    v = omni_json_get(m->root, "jsonrpc");
    if (omni_json_string(v) == NULL || strcmp(v->u.str.ptr, "2.0") != 0) {
        return omni_rpc_fail(err, errlen, "jsonrpc is not \"2.0\"");
    }
    m->id = omni_json_get(m->root, "id");
    if ((m->id == NULL || m->id->type == OMNI_JSON_NULL)
        && omni_json_get(m->root, "method") == NULL
        && omni_json_get(m->root, "error") != NULL) {
        /* an error about a request the server could not read: JSON-RPC
         * gives it "id": null; servers built on the SDK's examples
         * (server-everything) leave the id out, and their error is the
         * only account of why */
        m->id = NULL;
        m->error = omni_json_get(m->root, "error");
    } else if (m->id != NULL && m->id->type != OMNI_JSON_STRING
               && !(m->id->type == OMNI_JSON_NUMBER && m->id->u.num.is_int)) {
        return omni_rpc_fail(err, errlen, "id is not an integer or a string");
    }
    method = omni_json_get(m->root, "method");
    if (method != NULL) {
        m->method = omni_json_string(method);
        if (m->method == NULL) {
            return omni_rpc_fail(err, errlen, "method is not a string");
        }
        m->params = omni_json_get(m->root, "params");
        if (m->params != NULL && m->params->type != OMNI_JSON_OBJECT
            && m->params->type != OMNI_JSON_ARRAY) {
            return omni_rpc_fail(err, errlen, "params is not structured");
        }
        m->kind = m->id ? OMNI_RPC_REQUEST : OMNI_RPC_NOTIFICATION;
        return 0;
    }
    if (m->id == NULL && m->error == NULL) {
        return omni_rpc_fail(err, errlen, "a response without an id");
    }
    m->result = omni_json_get(m->root, "result");
    m->error = omni_json_get(m->root, "error");
    if ((m->result == NULL) == (m->error == NULL)) {
        return omni_rpc_fail(
            err, errlen, "a response needs exactly one of result and error");
    }
    if (m->result != NULL) {
        if (m->result->type != OMNI_JSON_OBJECT) {
            return omni_rpc_fail(err, errlen, "result is not an object");
        }
        m->kind = OMNI_RPC_RESULT;
        return 0;
    }
    if (m->error->type != OMNI_JSON_OBJECT
        || !omni_json_int(omni_json_get(m->error, "code"), &m->code)
        || (m->message = omni_json_string(omni_json_get(m->error, "message")))
               == NULL) {
        return omni_rpc_fail(
            err, errlen, "error is not {code: integer, message: string}");
    }
    m->kind = OMNI_RPC_ERROR;
    return 0;
}


int omni_rpc_id_is(const omni_rpc_msg_t *m, int64_t id)
{
    int64_t got;

    return m->id != NULL && omni_json_int(m->id, &got) && got == id;
}
