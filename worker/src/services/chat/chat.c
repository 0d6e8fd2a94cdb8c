/* chat.c: the chat service's CRUD routes. Each route is one call of
 * omnichat.api() (sql/009_chat.sql), which validates the body, filters
 * every object by its owner and returns the status and JSON answer; this
 * file checks the role, the list arguments and the identity it passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "io/log.h"
#include "http/api.h"
#include "services/chat/billing.h"
#include "services/chat/chat.h"
#include "services/chat/gateway.h"
#include "services/chat/turn.h"

#define OMNI_CHAT_ADMIN 0x1  /* admin role only */
#define OMNI_CHAT_BODY 0x2   /* passes the JSON body */
#define OMNI_CHAT_LIST 0x4   /* passes limit and cursor */
#define OMNI_CHAT_ARGS 0x8   /* passes from, to, group_by as the body */
#define OMNI_CHAT_WRITE 0x10 /* changes objects: not for viewers */
#define OMNI_CHAT_GW 0x20    /* omnichat.gateway_api(): aliases, limits */

/* An admin change's answer, held while the plans' generation is bumped. */
typedef struct {
    int status;
    const char *body;
    size_t len;
} omni_chat_answer_t;

static int omni_chat_api_stmt, omni_chat_gw_stmt;


static int omni_chat_init(void)
{
    omni_chat_api_stmt = omni_db_statement("chat_api",
        "SELECT a.status, a.body FROM omnichat.api($1, $2, $3, $4,"
        " $5::int, $6::uuid, $7::boolean) AS a");
    omni_chat_gw_stmt = omni_db_statement("chat_gateway_api",
        "SELECT a.status, a.body FROM omnichat.gateway_api($1, $2, $3, $4,"
        " $5::int, $6::uuid, $7::boolean) AS a");
    return omni_chat_api_stmt < 0 || omni_chat_gw_stmt < 0
                   || omni_gateway_init() != 0
               ? -1
               : omni_turn_init();
}


static void omni_chat_stop(void (*done)(void *arg), void *arg)
{
    omni_turn_stop();
    done(arg);
}


/* The body as JSON text in the arena, or NULL after answering 503. */
static const char *omni_chat_body(omni_req_t *r)
{
    struct evbuffer *b = evbuffer_new();
    const char *text = NULL;

    if (b != NULL && omni_json_write(b, r->json) == 0) {
        text = omni_arena_strndup(&r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    }
    if (b != NULL) {
        evbuffer_free(b);
    }
    if (text == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
    }
    return text;
}


/* The query arguments of a usage summary as a JSON object in the arena,
 * or NULL after answering 503. */
static const char *omni_chat_args(omni_req_t *r)
{
    static const char *const names[] = {"from", "to", "group_by"};
    struct evbuffer *b = evbuffer_new();
    const char *text = NULL, *v, *sep = "";
    size_t i;

    if (b == NULL) {
        goto failed;
    }
    evbuffer_add(b, "{", 1);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        v = omni_req_arg(r, names[i]);
        if (v != NULL) {
            evbuffer_add_printf(b, "%s\"%s\":", sep, names[i]);
            omni_json_put_string(b, v, strlen(v));
            sep = ",";
        }
    }
    evbuffer_add(b, "}", 1);
    text = omni_arena_strndup(&r->arena, (const char *)evbuffer_pullup(b, -1),
        evbuffer_get_length(b));

failed:
    if (b != NULL) {
        evbuffer_free(b);
    }
    if (text == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
    }
    return text;
}


static void omni_chat_call(omni_req_t *r, const char *op, int flags)
{
    const omni_identity_t *id;
    const char *values[7];
    omni_chat_answer_t *a;
    char limit[16];
    int n, status;

    switch (r->state) {

    case 0:
        id = omni_req_identity(r);
        if (id->id == NULL) {
            omni_respond_error(
                r, 401, "missing_credentials", "this route needs a user");
            return;
        }
        if ((flags & OMNI_CHAT_ADMIN) && id->rank != OMNI_ROLE_ADMIN) {
            omni_respond_error(r, 403, "forbidden",
                "LLM providers, aliases, limits and budgets need the admin "
                "role");
            return;
        }
        if ((flags & OMNI_CHAT_WRITE) && id->rank < 2) {
            omni_respond_error(r, 403, "forbidden",
                "the viewer role cannot change chat objects");
            return;
        }
        values[0] = op;
        values[1] = id->id;
        values[2] = omni_req_param(r, 0);
        values[3] = NULL;
        values[4] = NULL;
        values[5] = NULL;
        if (flags & OMNI_CHAT_BODY) {
            values[3] = omni_chat_body(r);
            if (values[3] == NULL) {
                return;
            }
        }
        if (flags & OMNI_CHAT_ARGS) {
            values[3] = omni_chat_args(r);
            if (values[3] == NULL) {
                return;
            }
        }
        if (flags & OMNI_CHAT_LIST) {
            n = omni_api_limit(r);
            if (n < 0 || omni_api_cursor(r, &values[5]) != 0) {
                return;
            }
            snprintf(limit, sizeof(limit), "%d", n);
            values[4] = limit;
        }
        values[6] = id->rank == OMNI_ROLE_ADMIN ? "true" : "false";
        r->state = 1;
        omni_api_query(r,
            flags & OMNI_CHAT_GW ? omni_chat_gw_stmt : omni_chat_api_stmt, 7,
            values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK || PQntuples(r->db_res) != 1) {
            omni_api_db_failed(r);
            return;
        }
        status = atoi(PQgetvalue(r->db_res, 0, 0));
        if ((flags & OMNI_CHAT_ADMIN) && strcmp(r->method, "GET") != 0
            && status >= 200 && status < 300) {
            /* the change is in Postgres: every process plans again from
             * its next call, and the admin's answer waits for that */
            a = omni_arena_alloc(&r->arena, sizeof(*a));
            if (a == NULL) {
                omni_respond_error(r, 503, "overloaded", "out of memory");
                return;
            }
            a->status = status;
            a->len = (size_t)PQgetlength(r->db_res, 0, 1);
            a->body = omni_arena_strndup(
                &r->arena, PQgetvalue(r->db_res, 0, 1), a->len);
            r->data = a;
            r->state = 2;
            if (a->body != NULL && omni_llm_gen_bump(r) == 0) {
                return;
            }
            omni_log(OMNI_LOG_WARN,
                "LLM plans not invalidated: Redis unavailable", NULL);
            if (a->body == NULL) {
                omni_respond_error(r, 503, "overloaded", "out of memory");
                return;
            }
            /* fall through */
        } else {
            omni_api_json_text(r, status, PQgetvalue(r->db_res, 0, 1),
                (size_t)PQgetlength(r->db_res, 0, 1));
            return;
        }

    default:
        a = r->data;
        omni_api_json_text(r, a->status, a->body, a->len);
        return;
    }
}


#define OMNI_CHAT_ROUTE(fn, op, flags)                                         \
    static void fn(omni_req_t *r)                                              \
    {                                                                          \
        omni_chat_call(r, op, flags);                                          \
    }

OMNI_CHAT_ROUTE(omni_chat_providers_list, "providers.list",
    OMNI_CHAT_ADMIN | OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(omni_chat_providers_create, "providers.create",
    OMNI_CHAT_ADMIN | OMNI_CHAT_BODY)
OMNI_CHAT_ROUTE(omni_chat_providers_get, "providers.get", OMNI_CHAT_ADMIN)
OMNI_CHAT_ROUTE(omni_chat_providers_update, "providers.update",
    OMNI_CHAT_ADMIN | OMNI_CHAT_BODY)
OMNI_CHAT_ROUTE(
    omni_chat_budgets_list, "budgets.list", OMNI_CHAT_ADMIN | OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(
    omni_chat_budgets_write, "budgets.write", OMNI_CHAT_ADMIN | OMNI_CHAT_BODY)
OMNI_CHAT_ROUTE(omni_chat_aliases_list, "aliases.list",
    OMNI_CHAT_GW | OMNI_CHAT_ADMIN | OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(omni_chat_aliases_create, "aliases.create",
    OMNI_CHAT_GW | OMNI_CHAT_ADMIN | OMNI_CHAT_BODY)
OMNI_CHAT_ROUTE(
    omni_chat_aliases_get, "aliases.get", OMNI_CHAT_GW | OMNI_CHAT_ADMIN)
OMNI_CHAT_ROUTE(omni_chat_aliases_update, "aliases.update",
    OMNI_CHAT_GW | OMNI_CHAT_ADMIN | OMNI_CHAT_BODY)
OMNI_CHAT_ROUTE(
    omni_chat_aliases_delete, "aliases.delete", OMNI_CHAT_GW | OMNI_CHAT_ADMIN)
OMNI_CHAT_ROUTE(omni_chat_limits_list, "limits.list",
    OMNI_CHAT_GW | OMNI_CHAT_ADMIN | OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(omni_chat_limits_put, "limits.put",
    OMNI_CHAT_GW | OMNI_CHAT_ADMIN | OMNI_CHAT_BODY)
OMNI_CHAT_ROUTE(
    omni_chat_limits_delete, "limits.delete", OMNI_CHAT_GW | OMNI_CHAT_ADMIN)
OMNI_CHAT_ROUTE(omni_chat_usage_summary, "usage.summary", OMNI_CHAT_ARGS)
OMNI_CHAT_ROUTE(omni_chat_projects_list, "projects.list", OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(omni_chat_projects_create, "projects.create",
    OMNI_CHAT_BODY | OMNI_CHAT_WRITE)
OMNI_CHAT_ROUTE(omni_chat_projects_get, "projects.get", 0)
OMNI_CHAT_ROUTE(omni_chat_projects_update, "projects.update",
    OMNI_CHAT_BODY | OMNI_CHAT_WRITE)
OMNI_CHAT_ROUTE(omni_chat_projects_delete, "projects.delete", OMNI_CHAT_WRITE)
OMNI_CHAT_ROUTE(omni_chat_prompts_list, "prompts.list", OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(omni_chat_prompts_create, "prompts.create",
    OMNI_CHAT_BODY | OMNI_CHAT_WRITE)
OMNI_CHAT_ROUTE(omni_chat_versions_create, "versions.create",
    OMNI_CHAT_BODY | OMNI_CHAT_WRITE)
OMNI_CHAT_ROUTE(
    omni_chat_conversations_list, "conversations.list", OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(omni_chat_conversations_create, "conversations.create",
    OMNI_CHAT_BODY | OMNI_CHAT_WRITE)
OMNI_CHAT_ROUTE(omni_chat_conversations_get, "conversations.get", 0)
OMNI_CHAT_ROUTE(
    omni_chat_conversations_delete, "conversations.delete", OMNI_CHAT_WRITE)
OMNI_CHAT_ROUTE(omni_chat_messages_list, "messages.list", OMNI_CHAT_LIST)
OMNI_CHAT_ROUTE(
    omni_chat_conversations_usage, "conversations.usage", OMNI_CHAT_LIST)

#define OMNI_CHAT_ID OMNI_ROUTE_IDENTITY
#define OMNI_CHAT_JSON (OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT)

static const omni_route_t omni_chat_routes[] = {
    {"GET", "/api/v1/llm/providers", omni_chat_providers_list, OMNI_CHAT_ID},
    {"POST", "/api/v1/llm/providers", omni_chat_providers_create,
        OMNI_CHAT_JSON},
    {"GET", "/api/v1/llm/providers/{id}", omni_chat_providers_get,
        OMNI_CHAT_ID},
    {"PATCH", "/api/v1/llm/providers/{id}", omni_chat_providers_update,
        OMNI_CHAT_JSON},
    {"GET", "/api/v1/llm/budgets", omni_chat_budgets_list, OMNI_CHAT_ID},
    {"POST", "/api/v1/llm/budgets", omni_chat_budgets_write, OMNI_CHAT_JSON},
    {"GET", "/api/v1/llm/aliases", omni_chat_aliases_list, OMNI_CHAT_ID},
    {"POST", "/api/v1/llm/aliases", omni_chat_aliases_create, OMNI_CHAT_JSON},
    {"GET", "/api/v1/llm/aliases/{id}", omni_chat_aliases_get, OMNI_CHAT_ID},
    {"PATCH", "/api/v1/llm/aliases/{id}", omni_chat_aliases_update,
        OMNI_CHAT_JSON},
    {"DELETE", "/api/v1/llm/aliases/{id}", omni_chat_aliases_delete,
        OMNI_CHAT_ID},
    {"GET", "/api/v1/llm/limits", omni_chat_limits_list, OMNI_CHAT_ID},
    {"PUT", "/api/v1/llm/limits/{id}", omni_chat_limits_put, OMNI_CHAT_JSON},
    {"DELETE", "/api/v1/llm/limits/{id}", omni_chat_limits_delete,
        OMNI_CHAT_ID},
    {"GET", "/api/v1/llm/usage", omni_chat_usage_summary, OMNI_CHAT_ID},
    {"GET", "/api/v1/projects", omni_chat_projects_list, OMNI_CHAT_ID},
    {"POST", "/api/v1/projects", omni_chat_projects_create, OMNI_CHAT_JSON},
    {"GET", "/api/v1/projects/{id}", omni_chat_projects_get, OMNI_CHAT_ID},
    {"PATCH", "/api/v1/projects/{id}", omni_chat_projects_update,
        OMNI_CHAT_JSON},
    {"DELETE", "/api/v1/projects/{id}", omni_chat_projects_delete,
        OMNI_CHAT_ID},
    {"GET", "/api/v1/projects/{id}/prompts", omni_chat_prompts_list,
        OMNI_CHAT_ID},
    {"POST", "/api/v1/projects/{id}/prompts", omni_chat_prompts_create,
        OMNI_CHAT_JSON},
    {"POST", "/api/v1/prompts/{id}/versions", omni_chat_versions_create,
        OMNI_CHAT_JSON},
    {"GET", "/api/v1/conversations", omni_chat_conversations_list,
        OMNI_CHAT_ID},
    {"POST", "/api/v1/conversations", omni_chat_conversations_create,
        OMNI_CHAT_JSON},
    {"GET", "/api/v1/conversations/{id}", omni_chat_conversations_get,
        OMNI_CHAT_ID},
    {"DELETE", "/api/v1/conversations/{id}", omni_chat_conversations_delete,
        OMNI_CHAT_ID},
    {"GET", "/api/v1/conversations/{id}/messages", omni_chat_messages_list,
        OMNI_CHAT_ID},
    {"POST", "/api/v1/conversations/{id}/messages", omni_turn_post,
        OMNI_CHAT_JSON},
    {"GET", "/api/v1/conversations/{id}/usage", omni_chat_conversations_usage,
        OMNI_CHAT_ID},
    {"POST", "/v1/chat/completions", omni_gateway_openai, OMNI_CHAT_JSON},
    {"POST", "/v1/messages", omni_gateway_anthropic, OMNI_CHAT_JSON},
    {"GET", "/v1/models", omni_gateway_models, OMNI_CHAT_ID},
};

const omni_service_t omni_chat_service = {
    .name = "chat",
    OMNI_SERVICE_ROUTES(omni_chat_routes),
    .init = omni_chat_init,
    .start = omni_turn_start,
    .stop = omni_chat_stop,
};
