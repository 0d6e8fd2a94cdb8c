/* call.c: POST /api/v1/mcp/tools/call {server, tool, arguments} -> the
 * upstream's CallToolResult.
 *
 *   LOAD ──row, allowed──> CALL ──reply──> SAVE (breaker) ──> ANSWER
 *                           ^  └─failure, retryable, time left──> WAIT
 *                           └─────────────── backoff timer ───────┘
 *
 * Only tools annotated readOnlyHint or idempotentHint are retried; any
 * other call is sent once (the outbound client never resends it either),
 * so it reaches the upstream at most once. The breaker fails the call at
 * once while open; each transport outcome moves it. Every call is queued
 * for mcp_performance.tool_calls, written in batches. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "http/metrics.h"
#include "http/api.h"
#include "services/mcp/call.h"
#include "services/mcp/state.h"
#include "services/mcp/upstream.h"

#define OMNI_CALL_ATTEMPTS 3
#define OMNI_PERF_MAX_ROWS 2000

enum {
    OMNI_CALL_LOAD = 0,
    OMNI_CALL_LOADED,
    OMNI_CALL_CALLED,
    OMNI_CALL_WAITED,
    OMNI_CALL_SAVED
};

typedef struct {
    omni_mcp_upstream_t u;
    const char *tool, *params;
    int retryable, attempts;
    omni_mcp_rpc_t *rpc;
    omni_mcp_reply_t rep;
    struct event *timer;
    uint64_t start_ms;
} omni_call_t;

static int omni_call_load_stmt, omni_perf_stmt;

static struct {
    struct evbuffer *rows;
    int nrows, flushing;
    struct event *timer;
    unsigned long long dropped;
} omni_perf;


int omni_mcp_call_init(void)
{
    omni_call_load_stmt = omni_db_statement("mcp_call_load",
        "SELECT " OMNI_MCP_UPSTREAM_COLUMNS ", t.status,"
        " coalesce((t.definition->'annotations'->>'readOnlyHint')::boolean"
        "  OR (t.definition->'annotations'->>'idempotentHint')::boolean,"
        "  false),"
        " $3 = 'admin' OR ((cardinality(s.roles) = 0 OR $3 = ANY (s.roles))"
        "  AND (NOT s.tool_roles ? $4 OR s.tool_roles->$4 ? $3))"
        " FROM omni2.mcp_servers AS s"
        " LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = s.id"
        " LEFT JOIN omni2.mcp_tools AS t ON t.server_id = s.id"
        "  AND t.name = $4"
        " WHERE ($1::uuid IS NOT NULL AND s.id = $1::uuid"
        "  OR $1 IS NULL AND s.name = $2)");

    omni_perf_stmt = omni_db_statement("mcp_perf_insert",
        "INSERT INTO mcp_performance.tool_calls (at, server_id, tool, user_id,"
        " latency_us, outcome, bytes_in, bytes_out)"
        " SELECT to_timestamp(x.at / 1000.0), x.server_id, x.tool, x.user_id,"
        "  x.latency_us, x.outcome, x.bytes_in, x.bytes_out"
        " FROM jsonb_to_recordset($1::jsonb) AS x(at bigint, server_id uuid,"
        "  tool text, user_id text, latency_us bigint, outcome text,"
        "  bytes_in bigint, bytes_out bigint)");
    return omni_call_load_stmt < 0 || omni_perf_stmt < 0 ? -1 : 0;
}


/* --- the batched records -------------------------------------------------- */

static void omni_perf_flush(evutil_socket_t fd, short what, void *arg);


static void omni_perf_flushed(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_perf.flushing = 0;
    if (st != OMNI_DB_OK) {
        omni_log(OMNI_LOG_WARN, "cannot store MCP call records",
            "\"status\":%d", (int)st);
    }
}


static void omni_perf_flush(evutil_socket_t fd, short what, void *arg)
{
    struct evbuffer *b;
    const char *values[1];

    if (omni_perf.nrows == 0 || omni_perf.flushing) {
        return;
    }
    b = omni_perf.rows;
    evbuffer_add(b, "]", 2);
    values[0] = (const char *)evbuffer_pullup(b, -1);
    if (omni_db_query(
            omni_clients.db, omni_perf_stmt, 1, values, omni_perf_flushed, NULL)
        == OMNI_DB_OK) {
        omni_perf.flushing = 1;
    } else {
        omni_log(OMNI_LOG_WARN, "MCP call records lost: Postgres unavailable",
            "\"rows\":%d", omni_perf.nrows);
    }
    evbuffer_drain(b, evbuffer_get_length(b));
    omni_perf.nrows = 0;
}


int omni_mcp_perf_start(void)
{
    struct timeval tv = {1, 0};

    omni_perf.rows = evbuffer_new();
    omni_perf.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_perf_flush, NULL);
    if (omni_perf.rows == NULL || omni_perf.timer == NULL) {
        return -1;
    }
    event_add(omni_perf.timer, &tv);
    return 0;
}


void omni_mcp_perf_stop(void)
{
    if (omni_perf.timer != NULL) {
        omni_perf_flush(-1, 0, NULL);
        event_free(omni_perf.timer);
        omni_perf.timer = NULL;
    }
}


static void omni_perf_add(omni_req_t *r, omni_call_t *c, const char *outcome)
{
    static const char *const names[] = {"ok", "tool_error", "rpc_error",
        "upstream_error", "timeout", "unavailable"};
    struct evbuffer *b = omni_perf.rows;
    const char *user = omni_req_identity(r)->id;
    int k;

    if (c->start_ms == 0) { /* refused before it was sent */
        c->start_ms = (uint64_t)omni_mcp_now_ms();
    }

    for (k = 0; k < OMNI_METRICS_MCP_OUTCOMES; k++) {
        if (strcmp(outcome, names[k]) == 0) {
            omni_metrics_mcp_call((omni_metrics_mcp_outcome_t)k,
                c->start_ms
                    ? (uint64_t)(omni_mcp_now_ms() - (int64_t)c->start_ms)
                          * 1000
                    : 0);
        }
    }

    if (b == NULL) {
        return;
    }
    if (omni_perf.nrows >= OMNI_PERF_MAX_ROWS) {
        omni_perf.dropped++;
        return;
    }
    evbuffer_add(b, omni_perf.nrows++ ? "," : "[", 1);
    evbuffer_add_printf(b,
        "{\"at\":%lld,\"server_id\":\"%s\",\"tool\":", (long long)c->start_ms,
        c->u.id);
    omni_json_put_string(b, c->tool, strlen(c->tool));
    evbuffer_add(b, ",\"user_id\":", 11);
    if (user != NULL) {
        omni_json_put_string(b, user, strlen(user));
    } else {
        evbuffer_add(b, "null", 4);
    }
    evbuffer_add_printf(b,
        ",\"latency_us\":%llu,\"outcome\":\"%s\",\"bytes_in\":%llu,"
        "\"bytes_out\":%llu}",
        (unsigned long long)(omni_mcp_now_ms() - (int64_t)c->start_ms) * 1000,
        outcome, (unsigned long long)c->rep.bytes_in,
        (unsigned long long)c->rep.bytes_out);
    if (omni_perf.nrows >= 100) {
        omni_perf_flush(-1, 0, NULL);
    }
}


/* A call refused before anything was loaded (the server known down) */
static void omni_perf_refused(
    omni_req_t *r, const char *id, const char *tool, const char *outcome)
{
    omni_call_t t;

    memset(&t, 0, sizeof(t));
    snprintf(t.u.id, sizeof(t.u.id), "%s", id);
    t.tool = tool;
    omni_perf_add(r, &t, outcome);
}


/* --- the call ------------------------------------------------------------- */

static void omni_call_replied(void *arg, const omni_mcp_reply_t *rep)
{
    omni_req_t *r = arg;
    omni_call_t *c = r->data;

    c->rpc = NULL;
    c->rep = *rep;
    omni_http_resume(r);
}


static void omni_call_woken(evutil_socket_t fd, short what, void *arg)
{
    omni_http_resume(arg);
}


/* 0 when the call is sent; -1 after answering */
static int omni_call_send(omni_req_t *r, omni_call_t *c)
{
    c->attempts++;
    memset(&c->rep, 0, sizeof(c->rep));
    c->rpc = omni_mcp_rpc(&c->u.target, "tools/call", c->tool, c->params,
        c->retryable, &r->arena, NULL, omni_call_replied, r);
    if (c->rpc == NULL) {
        omni_respond_error(
            r, 502, "upstream_error", "cannot send to the server's URL");
        return -1;
    }
    return 0;
}


static void omni_call_saved(void *arg)
{
    omni_http_resume(arg);
}


static void omni_call_answer(omni_req_t *r, omni_call_t *c)
{
    const omni_mcp_reply_t *rep = &c->rep;
    struct evbuffer *b;
    const omni_json_t *is_error;
    int failed = rep->failure != NULL;
    if (failed) {
        omni_perf_add(r, c, rep->timeout ? "timeout" : "upstream_error");
        omni_respond_error(r, rep->timeout ? 504 : 502,
            rep->timeout ? "upstream_timeout" : "upstream_error",
            "MCP server %s: %s", c->u.name, rep->failure);
        return;
    }
    b = evbuffer_new();
    if (rep->error != NULL) {
        omni_perf_add(r, c, "rpc_error");
        evbuffer_add(b, "{\"error\":\"upstream_rpc_error\",\"message\":", 40);
        omni_json_write(b, omni_json_get(rep->error, "message"));
        evbuffer_add(b, ",\"rpc_error\":", 13);
        omni_json_write(b, rep->error);
        evbuffer_add(b, "}\n", 2);
        omni_api_json(r, 502, b);
        evbuffer_free(b);
        return;
    }
    is_error = omni_json_get(rep->result, "isError");
    omni_perf_add(r, c,
        is_error && is_error->type == OMNI_JSON_BOOL && is_error->u.boolean
            ? "tool_error"
            : "ok");
    omni_json_write(b, rep->result);
    evbuffer_add(b, "\n", 1);
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


void omni_mcp_tools_call(omni_req_t *r)
{
    omni_call_t *c = r->data;
    const omni_json_t *args, *server;
    const char *values[4];
    struct evbuffer *b;
    struct timeval tv;
    PGresult *res;
    long left;
    int n = OMNI_MCP_UPSTREAM_NCOLS;

    switch (r->state) {

    case OMNI_CALL_LOAD:
        server = omni_json_get(r->json, "server");
        if (omni_json_string(server) == NULL) {
            omni_respond_error(r, 400,
                server ? "invalid_field" : "missing_field",
                "server: expected the server's name or id");
            return;
        }
        if (omni_api_field_string(r, "tool", 1, &values[3]) != 0) {
            return;
        }
        args = omni_json_get(r->json, "arguments");
        if (args != NULL && args->type != OMNI_JSON_OBJECT) {
            omni_respond_error(r, 400, "invalid_field",
                "arguments: expected an object of the tool's arguments");
            return;
        }
        /* known to be down (this process's copy, at most ~250 ms old):
         * refused without a query */
        if (omni_mcp_state_down(server->u.str.ptr, &values[0])) {
            omni_perf_refused(r, values[0], values[3], "unavailable");
            omni_respond_error(r, 503, "mcp_server_unavailable",
                "MCP server %.64s is down (circuit open)", server->u.str.ptr);
            return;
        }
        c = omni_arena_alloc(&r->arena, sizeof(*c));
        b = evbuffer_new();
        if (c == NULL || b == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        memset(c, 0, sizeof(*c));
        r->data = c;
        c->tool = values[3];
        evbuffer_add(b, "{\"name\":", 8);
        omni_json_put_string(b, c->tool, strlen(c->tool));
        evbuffer_add(b, ",\"arguments\":", 13);
        if (args != NULL) {
            omni_json_write(b, args);
        } else {
            evbuffer_add(b, "{}", 2);
        }
        evbuffer_add(b, "}", 1);
        c->params = omni_arena_strndup(&r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
        values[0] =
            omni_uuid_valid(server->u.str.ptr) ? server->u.str.ptr : NULL;
        values[1] = server->u.str.ptr;
        values[2] =
            omni_req_identity(r)->role ? omni_req_identity(r)->role : "";
        r->state = OMNI_CALL_LOADED;
        omni_api_query(r, omni_call_load_stmt, 4, values);
        return;

    case OMNI_CALL_LOADED:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        res = r->db_res;
        if (PQntuples(res) == 0) {
            omni_respond_error(r, 404, "not_found",
                "server: no MCP server %.64s",
                omni_json_string(omni_json_get(r->json, "server")));
            return;
        }
        if (omni_mcp_upstream_read(r, res, 0, &c->u) != 0) {
            return;
        }
        if (PQgetvalue(res, 0, n + 2)[0] != 't') {
            omni_perf_add(r, c, "forbidden");
            omni_respond_error(r, 403, "forbidden",
                "your role may not call %.128s on %s", c->tool, c->u.name);
            return;
        }
        if (!c->u.enabled) {
            omni_perf_add(r, c, "unavailable");
            omni_respond_error(r, 503, "mcp_server_unavailable",
                "MCP server %s is disabled", c->u.name);
            return;
        }
        if (PQgetisnull(res, 0, n)) {
            omni_respond_error(r, 404, "not_found",
                "tool: %s has no tool %.128s", c->u.name, c->tool);
            return;
        }
        if (strcmp(PQgetvalue(res, 0, n), "quarantined") == 0) {
            omni_perf_add(r, c, "quarantined");
            omni_respond_error(r, 409, "tool_quarantined",
                "tool %.128s of %s changed its definition and awaits an "
                "admin's approval",
                c->tool, c->u.name);
            return;
        }
        if (!omni_breaker_allow(&c->u.breaker, omni_mcp_now_ms(), NULL)) {
            omni_perf_add(r, c, "unavailable");
            omni_respond_error(r, 503, "mcp_server_unavailable",
                "MCP server %s is down (circuit open)", c->u.name);
            return;
        }
        c->retryable = PQgetvalue(res, 0, n + 1)[0] == 't';
        c->start_ms = (uint64_t)omni_mcp_now_ms();
        r->state = OMNI_CALL_CALLED;
        omni_call_send(r, c);
        return;

    case OMNI_CALL_CALLED:
        left = c->u.target.timeout_ms
               - (long)((uint64_t)omni_mcp_now_ms() - c->start_ms);
        if (c->rep.failure != NULL && !c->rep.timeout && c->retryable
            && c->attempts < OMNI_CALL_ATTEMPTS && left > 100L << c->attempts) {
            tv.tv_sec = 0;
            tv.tv_usec = (50L << (2 * c->attempts)) * 1000;
            c->timer = evtimer_new(omni_clients.base, omni_call_woken, r);
            if (c->timer != NULL && evtimer_add(c->timer, &tv) == 0) {
                r->state = OMNI_CALL_WAITED;
                return;
            }
        }
        /* the breaker is stored before the answer, so the caller's next
         * call (on any process) meets the state this one left */
        r->state = OMNI_CALL_SAVED;
        if (omni_mcp_breaker_outcome(&c->u, c->rep.failure == NULL)
            && omni_mcp_breaker_save(
                   &c->u, c->rep.failure == NULL, omni_call_saved, r)
                   == 0) {
            return;
        }
        omni_call_answer(r, c);
        return;

    case OMNI_CALL_SAVED:
        omni_call_answer(r, c);
        return;

    default:
        event_free(c->timer);
        c->timer = NULL;
        r->state = OMNI_CALL_CALLED;
        omni_call_send(r, c);
        return;
    }
}
