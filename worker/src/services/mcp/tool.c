/* tool.c: a tools/call made for another service (the chat turn's tool
 * loop), outside an HTTP request of its own: the same checks as POST
 * /api/v1/mcp/tools/call (role, tool_roles, enabled, quarantine, breaker),
 * sent once, never retried (the model decides what to do next). Recorded
 * in mcp_performance like the others once the server is known (perf.c).
 *
 *   LOAD (server row) ──allowed──> CALL ──reply──> done (breaker stored)
 *     └─refused──────────────────────────────────> done (is_error)
 *
 * The built-in server "omni" (contexts and memories, services/memory) has
 * no row: its tools run in this process, acting as the caller.
 *
 *   BUILTIN ──answer──> done (is_error for a 4xx/5xx) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/arena.h"
#include "lib/json.h"
#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "services/mcp/mcp.h"
#include "services/mcp/perf.h"
#include "services/mcp/registry.h"
#include "services/mcp/upstream.h"
#include "services/memory/memory.h"

struct omni_mcp_tool_call_s {
    omni_arena_t arena;
    const char *server, *tool, *params, *role, *user;
    int64_t start_ms; /* when it was sent */
    omni_mcp_upstream_t u;
    omni_mcp_rpc_t *rpc;
    int loading;   /* the server's row is being read */
    int builtin;   /* a built-in tool runs */
    int cancelled; /* while loading or builtin: freed at their end */
    int is_error;
    struct evbuffer *text;
    struct event *wake; /* runs done from the loop after a refusal */
    omni_mcp_tool_done_pt done;
    void *arg;
    omni_mcp_tool_progress_pt progress;
    void *progress_arg;
};

static int omni_mcp_tool_stmt;


int omni_mcp_tool_init(void)
{
    omni_mcp_tool_stmt = omni_db_statement("mcp_tool_load",
        "SELECT " OMNI_MCP_UPSTREAM_COLUMNS ", t.status,"
        " $2 = 'admin' OR ((cardinality(s.roles) = 0 OR $2 = ANY (s.roles))"
        "  AND (NOT s.tool_roles ? $3 OR s.tool_roles->$3 ? $2))"
        " FROM omni2.mcp_servers AS s"
        " LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = s.id"
        " LEFT JOIN omni2.mcp_tools AS t ON t.server_id = s.id"
        "  AND t.name = $3"
        " WHERE s.name = $1");
    return omni_mcp_tool_stmt < 0 ? -1 : 0;
}


static void omni_mcp_tool_free(omni_mcp_tool_call_t *c)
{
    if (c->text != NULL) {
        evbuffer_free(c->text);
    }
    if (c->wake != NULL) {
        event_free(c->wake);
    }
    omni_arena_free(&c->arena);
    free(c);
}


static void omni_mcp_tool_finish(evutil_socket_t fd, short what, void *arg)
{
    omni_mcp_tool_call_t *c = arg;

    evbuffer_add(c->text, "", 1);
    c->done(c->arg, c->is_error, (const char *)evbuffer_pullup(c->text, -1),
        evbuffer_get_length(c->text) - 1);
    omni_mcp_tool_free(c);
}


/* Ends the call with an error text, from the loop. */
static void omni_mcp_tool_fail(omni_mcp_tool_call_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void omni_mcp_tool_fail(omni_mcp_tool_call_t *c, const char *fmt, ...)
{
    struct timeval now = {0, 0};
    va_list ap;

    c->is_error = 1;
    evbuffer_drain(c->text, evbuffer_get_length(c->text));
    va_start(ap, fmt);
    evbuffer_add_vprintf(c->text, fmt, ap);
    va_end(ap);
    evtimer_add(c->wake, &now);
}


static void omni_mcp_tool_record(
    omni_mcp_tool_call_t *c, const char *outcome, const omni_mcp_reply_t *rep)
{
    omni_mcp_perf_add(c->u.id, c->tool, c->user, c->start_ms, outcome,
        rep ? rep->bytes_in : 0, rep ? rep->bytes_out : 0);
}


static void omni_mcp_tool_replied(void *arg, const omni_mcp_reply_t *rep)
{
    omni_mcp_tool_call_t *c = arg;
    const omni_json_t *content, *item, *err;
    const char *s;
    size_t i;
    int n = 0;

    c->rpc = NULL;
    err = rep->failure || rep->error ? NULL
                                     : omni_json_get(rep->result, "isError");
    omni_mcp_tool_record(c,
        rep->failure ? (rep->timeout ? "timeout" : "upstream_error")
        : rep->error ? "rpc_error"
        : err != NULL && err->type == OMNI_JSON_BOOL && err->u.boolean
            ? "tool_error"
            : "ok",
        rep);
    if (omni_mcp_breaker_outcome(&c->u, rep->failure == NULL)) {
        omni_mcp_breaker_save(&c->u, rep->failure == NULL, NULL, NULL);
    }
    if (rep->failure != NULL) {
        omni_mcp_tool_fail(c, "MCP server %s: %s", c->server, rep->failure);
        return;
    }
    if (rep->error != NULL) {
        s = omni_json_string(omni_json_get(rep->error, "message"));
        omni_mcp_tool_fail(c, "MCP server %s: %s", c->server,
            s != NULL ? s : "JSON-RPC error");
        return;
    }
    err = omni_json_get(rep->result, "isError");
    c->is_error = err != NULL && err->type == OMNI_JSON_BOOL && err->u.boolean;
    content = omni_json_get(rep->result, "content");
    for (i = 0; content != NULL && content->type == OMNI_JSON_ARRAY
                && i < content->u.arr.len;
         i++) {
        item = content->u.arr.items[i];
        s = omni_json_string(omni_json_get(item, "text"));
        if (s != NULL) {
            evbuffer_add_printf(c->text, "%s%s", n++ ? "\n" : "", s);
        }
    }
    if (n == 0) {
        omni_json_write(c->text, rep->result);
    }
    omni_mcp_tool_finish(-1, 0, c);
}


static void omni_mcp_tool_note(void *arg, const omni_json_t *note)
{
    omni_mcp_tool_call_t *c = arg;
    const char *method = omni_json_string(omni_json_get(note, "method"));
    const omni_json_t *params = omni_json_get(note, "params");

    if (method != NULL && strcmp(method, "notifications/progress") == 0
        && params != NULL && params->type == OMNI_JSON_OBJECT) {
        c->progress(c->progress_arg, params);
    }
}


static void omni_mcp_tool_loaded(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_mcp_tool_call_t *c = arg;
    int n = OMNI_MCP_UPSTREAM_NCOLS;

    c->loading = 0;
    if (c->cancelled) {
        omni_mcp_tool_free(c);
        return;
    }
    if (st != OMNI_DB_OK || PQntuples(res) != 1) {
        omni_mcp_tool_fail(c, "%s",
            st != OMNI_DB_OK ? "the tool registry is unavailable"
                             : "no such MCP server");
        return;
    }
    if (omni_mcp_upstream_parse(&c->arena, res, 0, &c->u) != 0) {
        omni_mcp_tool_fail(c, "MCP server %s cannot be used", c->server);
        return;
    }
    /* refusals are recorded as POST /api/v1/mcp/tools/call records them */
    if (PQgetvalue(res, 0, n + 1)[0] != 't') {
        omni_mcp_tool_record(c, "forbidden", NULL);
        omni_mcp_tool_fail(c, "your role may not call %s", c->tool);
    } else if (!c->u.enabled) {
        omni_mcp_tool_record(c, "unavailable", NULL);
        omni_mcp_tool_fail(c, "MCP server %s is disabled", c->server);
    } else if (PQgetisnull(res, 0, n)) {
        omni_mcp_tool_fail(c, "%s has no tool %s", c->server, c->tool);
    } else if (strcmp(PQgetvalue(res, 0, n), "quarantined") == 0) {
        omni_mcp_tool_record(c, "quarantined", NULL);
        omni_mcp_tool_fail(c, "tool %s awaits an admin's approval", c->tool);
    } else if (!omni_breaker_allow(&c->u.breaker, omni_mcp_now_ms(), NULL)) {
        omni_mcp_tool_record(c, "unavailable", NULL);
        omni_mcp_tool_fail(c, "MCP server %s is down", c->server);
    } else {
        c->start_ms = omni_mcp_now_ms();
        c->rpc = omni_mcp_rpc(&c->u.target, "tools/call", c->tool, c->params, 0,
            &c->arena, c->progress != NULL ? omni_mcp_tool_note : NULL,
            omni_mcp_tool_replied, c);
        if (c->rpc == NULL) {
            omni_mcp_tool_fail(c, "MCP server %s cannot be called", c->server);
        }
    }
}


/* A built-in tool's answer: its REST body is the result's text. */
static void omni_mcp_tool_builtin_done(
    void *arg, int status, const char *json, size_t len)
{
    omni_mcp_tool_call_t *c = arg;

    c->builtin = 0;
    if (c->cancelled) {
        omni_mcp_tool_free(c);
        return;
    }
    c->is_error = status >= 400;
    evbuffer_add(c->text, json, len);
    omni_mcp_tool_finish(-1, 0, c);
}


static int omni_mcp_tool_builtin(omni_mcp_tool_call_t *c, const omni_json_t *j)
{
    omni_identity_t *id = omni_arena_alloc(&c->arena, sizeof(*id));

    if (id == NULL) {
        return -1;
    }
    memset(id, 0, sizeof(*id));
    id->id = c->user;
    id->user_id = c->user != NULL && omni_uuid_valid(c->user) ? c->user : NULL;
    id->role = c->role;
    id->rank = omni_role_rank(c->role);
    c->builtin = 1;
    if (omni_memory_tool_call(id, c->tool, j, omni_mcp_tool_builtin_done, c)
        != 0) {
        c->builtin = 0;
        omni_mcp_tool_fail(c, "no tool %.128s", c->tool);
    }
    return 0;
}


omni_mcp_tool_call_t *omni_mcp_tool_call(const char *role, const char *user,
    const char *name, const char *args, omni_mcp_tool_done_pt done, void *arg)
{
    omni_mcp_tool_call_t *c = calloc(1, sizeof(*c));
    const char *sep = name != NULL ? strstr(name, "__") : NULL;
    const char *values[3];
    struct evbuffer *b;
    omni_json_t *j = NULL;
    char err[128];

    if (c == NULL) {
        return NULL;
    }
    c->text = evbuffer_new();
    c->wake = evtimer_new(omni_clients.base, omni_mcp_tool_finish, c);
    if (c->text == NULL || c->wake == NULL) {
        omni_mcp_tool_free(c);
        return NULL;
    }
    omni_arena_init(&c->arena, 8192);
    c->done = done;
    c->arg = arg;
    if (sep == NULL || sep == name || sep[2] == '\0') {
        omni_mcp_tool_fail(c, "no tool %.128s", name ? name : "");
        return c;
    }
    c->server = omni_arena_strndup(&c->arena, name, (size_t)(sep - name));
    c->tool = omni_arena_strndup(&c->arena, sep + 2, strlen(sep + 2));
    c->role = omni_arena_strndup(&c->arena, role, strlen(role));
    c->user =
        user != NULL ? omni_arena_strndup(&c->arena, user, strlen(user)) : NULL;
    if (args != NULL && args[strspn(args, " \t\r\n")] != '\0') {
        j = omni_json_parse(
            &c->arena, args, strlen(args), NULL, err, sizeof(err));
        if (j == NULL || j->type != OMNI_JSON_OBJECT) {
            omni_mcp_tool_fail(c, "the arguments are not a JSON object: %s",
                j == NULL ? err : "another JSON value");
            return c;
        }
    }
    if (c->server != NULL && c->tool != NULL
        && strcmp(c->server, OMNI_MCP_BUILTIN) == 0) {
        if (omni_mcp_tool_builtin(c, j) != 0) {
            omni_mcp_tool_free(c);
            return NULL;
        }
        return c;
    }
    b = evbuffer_new();
    if (b == NULL || c->server == NULL || c->tool == NULL) {
        if (b != NULL) {
            evbuffer_free(b);
        }
        omni_mcp_tool_free(c);
        return NULL;
    }
    evbuffer_add(b, "{\"name\":", 8);
    omni_json_put_string(b, c->tool, strlen(c->tool));
    evbuffer_add(b, ",\"arguments\":", 13);
    if (j != NULL) {
        omni_json_write(b, j);
    } else {
        evbuffer_add(b, "{}", 2);
    }
    evbuffer_add(b, "}", 1);
    c->params = omni_arena_strndup(&c->arena,
        (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    values[0] = c->server;
    values[1] = c->role;
    values[2] = c->tool;
    if (omni_db_query(omni_clients.db, omni_mcp_tool_stmt, 3, values,
            omni_mcp_tool_loaded, c)
        != OMNI_DB_OK) {
        omni_mcp_tool_fail(c, "the tool registry is unavailable");
        return c;
    }
    c->loading = 1;
    return c;
}


void omni_mcp_tool_cancel(omni_mcp_tool_call_t *c)
{
    if (c->loading || c->builtin) {
        c->cancelled = 1;
        return;
    }
    if (c->rpc != NULL) {
        omni_mcp_rpc_cancel(c->rpc);
        omni_mcp_tool_record(c, "cancelled", NULL);
    }
    omni_mcp_tool_free(c);
}


void omni_mcp_tool_on_progress(
    omni_mcp_tool_call_t *c, omni_mcp_tool_progress_pt progress, void *arg)
{
    c->progress = progress;
    c->progress_arg = arg;
}
