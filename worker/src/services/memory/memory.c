/* memory.c: the memory service: its REST routes (SPEC 6 "Contexts and
 * memories") and its table. A route runs one store operation (store.c)
 * for the caller the gateway identified and answers what it returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "io/clients.h"
#include "http/api.h"
#include "services/memory/embed.h"
#include "services/memory/memory.h"
#include "services/memory/store.h"

#define OMNI_MEM_BODY 0x1 /* passes the JSON body */
#define OMNI_MEM_LIST 0x2 /* passes namespace, tag, prefix, limit, cursor */
#define OMNI_MEM_CURSOR_MAX 512

typedef struct {
    int status;
    const char *body;
    size_t len;
} omni_mem_answer_t;


static void omni_mem_answered(
    void *arg, int status, const char *json, size_t len)
{
    omni_req_t *r = arg;
    omni_mem_answer_t *a = r->data;

    a->status = status;
    a->body = omni_arena_strndup(&r->arena, json, len);
    a->len = len;
    omni_http_resume(r);
}


/* The list's query arguments as a JSON object in the arena, or NULL after
 * answering 503. */
static omni_json_t *omni_mem_list_args(omni_req_t *r)
{
    static const char *const names[] = {"namespace", "tag", "prefix"};
    omni_json_t *o, *v;
    const char *s;
    size_t i, n = 0;

    o = omni_arena_alloc(&r->arena, sizeof(*o));
    if (o == NULL) {
        goto failed;
    }
    o->type = OMNI_JSON_OBJECT;
    o->u.obj.keys = omni_arena_alloc(&r->arena, sizeof(char *) * 3);
    o->u.obj.values = omni_arena_alloc(&r->arena, sizeof(omni_json_t *) * 3);
    if (o->u.obj.keys == NULL || o->u.obj.values == NULL) {
        goto failed;
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        s = omni_req_arg(r, names[i]);
        if (s == NULL) {
            continue;
        }
        v = omni_arena_alloc(&r->arena, sizeof(*v));
        if (v == NULL) {
            goto failed;
        }
        v->type = OMNI_JSON_STRING;
        v->u.str.ptr = s;
        v->u.str.len = strlen(s);
        o->u.obj.keys[n] = names[i];
        o->u.obj.values[n++] = v;
    }
    o->u.obj.len = n;
    return o;

failed:
    omni_respond_error(r, 503, "overloaded", "out of memory");
    return NULL;
}


static void omni_mem_route(omni_req_t *r, const char *op, int flags)
{
    const omni_identity_t *id;
    omni_mem_answer_t *a;
    omni_mem_args_t args = {0};

    switch (r->state) {

    case 0:
        id = omni_req_identity(r);
        if (id->id == NULL) {
            omni_respond_error(
                r, 401, "missing_credentials", "this route needs a user");
            return;
        }
        a = omni_arena_alloc(&r->arena, sizeof(*a));
        if (a == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        r->data = a;
        args.op = op;
        args.owner = id->id;
        if (strncmp(op, "contexts.", 9) == 0) {
            args.ns = omni_req_param(r, 0);
            args.key = omni_req_param(r, 1);
        } else {
            args.key = omni_req_param(r, 0);
        }
        if (flags & OMNI_MEM_BODY) {
            args.body = r->json;
        }
        if (flags & OMNI_MEM_LIST) {
            args.limit = omni_api_limit(r);
            if (args.limit < 0) {
                return;
            }
            args.cursor = omni_req_arg(r, "cursor");
            if (args.cursor != NULL
                && strlen(args.cursor) > OMNI_MEM_CURSOR_MAX) {
                omni_respond_error(r, 400, "invalid_parameter",
                    "cursor: not a cursor this list gave");
                return;
            }
            args.body = omni_mem_list_args(r);
            if (args.body == NULL) {
                return;
            }
        }
        r->state = 1;
        if (omni_mem_run(&args, omni_mem_answered, r) != 0) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
        }
        return;

    default:
        a = r->data;
        if (a->body == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        omni_api_json_text(r, a->status, a->body, a->len);
        return;
    }
}


#define OMNI_MEM_ROUTE(fn, op, flags)                                          \
    static void fn(omni_req_t *r)                                              \
    {                                                                          \
        omni_mem_route(r, op, flags);                                          \
    }

OMNI_MEM_ROUTE(omni_mem_contexts_list, "contexts.list", OMNI_MEM_LIST)
OMNI_MEM_ROUTE(omni_mem_contexts_put, "contexts.put", OMNI_MEM_BODY)
OMNI_MEM_ROUTE(omni_mem_contexts_get, "contexts.get", 0)
OMNI_MEM_ROUTE(omni_mem_contexts_delete, "contexts.delete", 0)
OMNI_MEM_ROUTE(omni_mem_memories_add, "memories.add", OMNI_MEM_BODY)
OMNI_MEM_ROUTE(omni_mem_memories_search, "memories.search", OMNI_MEM_BODY)
OMNI_MEM_ROUTE(omni_mem_memories_get, "memories.get", 0)
OMNI_MEM_ROUTE(omni_mem_memories_delete, "memories.delete", 0)

#define OMNI_MEM_ID OMNI_ROUTE_IDENTITY
#define OMNI_MEM_JSON (OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT)

static const omni_route_t omni_mem_routes[] = {
    {"GET", "/api/v1/contexts", omni_mem_contexts_list, OMNI_MEM_ID},
    {"PUT", "/api/v1/contexts/{namespace}/{key}", omni_mem_contexts_put,
        OMNI_MEM_JSON},
    {"GET", "/api/v1/contexts/{namespace}/{key}", omni_mem_contexts_get,
        OMNI_MEM_ID},
    {"DELETE", "/api/v1/contexts/{namespace}/{key}", omni_mem_contexts_delete,
        OMNI_MEM_ID},
    {"POST", "/api/v1/memories", omni_mem_memories_add, OMNI_MEM_JSON},
    {"POST", "/api/v1/memories/search", omni_mem_memories_search,
        OMNI_MEM_JSON},
    {"GET", "/api/v1/memories/{id}", omni_mem_memories_get, OMNI_MEM_ID},
    {"DELETE", "/api/v1/memories/{id}", omni_mem_memories_delete, OMNI_MEM_ID},
};


static int omni_mem_init(void)
{
    return omni_mem_store_init() != 0 || omni_mem_embed_init() != 0 ? -1 : 0;
}


static int omni_mem_configure(
    const omni_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->embedding_model != NULL && strlen(cfg->embedding_model) > 200) {
        snprintf(err, errlen, "OMNI_EMBEDDING_MODEL: longer than 200 bytes");
        return -1;
    }
    omni_mem_embed_configure(cfg->embedding_model);
    return 0;
}


static int omni_mem_start(void)
{
    return omni_mem_embed_start();
}


static void omni_mem_stop(void (*done)(void *arg), void *arg)
{
    omni_mem_embed_stop();
    done(arg);
}


const omni_service_t omni_memory_service = {.name = "memory",
    OMNI_SERVICE_ROUTES(omni_mem_routes),
    .init = omni_mem_init,
    .configure = omni_mem_configure,
    .start = omni_mem_start,
    .stop = omni_mem_stop};
