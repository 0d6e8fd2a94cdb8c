/* call.c: a tool call, as POST /api/v1/mcp/tools/call {server, tool,
 * arguments} and /mcp's tools/call (endpoint.c) make it.
 *
 *   LOAD ──row, allowed──> CALL ──reply──> SAVE (breaker) ──> ANSWER
 *                           ^  └─failure, retryable, time left──> WAIT
 *                           └─────────────── backoff timer ───────┘
 *
 * Only tools annotated readOnlyHint or idempotentHint are retried; any
 * other call is sent once (the outbound client never resends it either),
 * so it reaches the upstream at most once. The breaker fails the call at
 * once while open; each transport outcome moves it. Every call is queued
 * for mcp_performance.tool_calls (perf.c), written in batches.
 *
 * LOAD's row (server, tool, the role's right, breaker) is kept per process
 * with the omni:mcp:gen generation read before it was queried; each call
 * reads the generation (one Redis GET, far cheaper than the query) and
 * uses the kept row while it has not moved. Whoever changes a server, its
 * roles, a tool's status or a breaker's state writes Postgres and then
 * bumps the generation, so the very next call sees the change. Rows
 * without the tool are not kept (a tool the catalog adds is found at
 * once); without Redis every call queries. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "http/metrics.h"
#include "http/api.h"
#include "services/mcp/call.h"
#include "services/mcp/endpoint.h"
#include "services/mcp/perf.h"
#include "services/mcp/state.h"
#include "services/mcp/upstream.h"

#define OMNI_CALL_ATTEMPTS 3
#define OMNI_CALL_CACHE 256 /* kept rows; a colliding key replaces one */

enum {
    OMNI_CALL_LOAD = 0,
    OMNI_CALL_GEN,
    OMNI_CALL_LOADED,
    OMNI_CALL_CALLED,
    OMNI_CALL_WAITED,
    OMNI_CALL_SAVED
};

struct omni_mcp_call_s {
    int state;
    omni_req_t *r;
    int db_status;
    PGresult *res;
    omni_mcp_upstream_t u;
    const char *server, *tool, *params, *caps;
    const char *wrapped; /* a retry's requestState as sent, or NULL */
    int retryable, attempts, cancelled;
    omni_mcp_note_pt note;
    void *note_arg;
    omni_mcp_rpc_t *rpc;
    omni_mcp_reply_t rep;
    struct event *timer;
    uint64_t start_ms;
    long long gen; /* -1: unknown (the row is not kept) */
    int gen_given; /* gen was read by the caller (omni_mcp_call_gen) */
    omni_mcp_outcome_t out;
    /* µs since the request came (the debug line "mcp call timings"):
     * generation read, row ready, sent upstream, upstream answered */
    uint64_t gen_us, row_us, sent_us, replied_us;
};

typedef omni_mcp_call_t omni_call_t;

/* a LOAD row as read at generation gen; key is "role\ntool\nserver" */
typedef struct {
    char *key;
    long long gen;
    PGresult *res;
} omni_call_kept_t;

static int omni_call_load_stmt;
static omni_call_kept_t omni_call_kept[OMNI_CALL_CACHE];


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

    return omni_call_load_stmt < 0 || omni_mcp_perf_init() != 0 ? -1 : 0;
}


/* --- the records ------------------------------------------------------- */

static void omni_perf_add(omni_req_t *r, omni_call_t *c, const char *outcome)
{
    omni_mcp_perf_add(c->u.id, c->tool, omni_req_identity(r)->id,
        (int64_t)c->start_ms, outcome, c->rep.bytes_in, c->rep.bytes_out);
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


/* --- the kept rows -------------------------------------------------------- */

static omni_call_kept_t *omni_call_slot(omni_call_t *c, char *key, size_t size)
{
    const char *role = omni_req_identity(c->r)->role;
    unsigned h = 5381;
    const char *p;

    snprintf(key, size, "%s\n%s\n%s", role ? role : "", c->tool, c->server);
    for (p = key; *p; p++) {
        h = h * 33 + (unsigned char)*p;
    }
    return &omni_call_kept[h % OMNI_CALL_CACHE];
}


static PGresult *omni_call_kept_row(omni_call_t *c)
{
    omni_call_kept_t *k;
    char key[512];

    if (c->gen < 0) {
        return NULL;
    }
    k = omni_call_slot(c, key, sizeof(key));
    return k->key != NULL && k->gen == c->gen && strcmp(k->key, key) == 0
               ? k->res
               : NULL;
}


/* res (a LOAD answer read at c->gen) kept, when it names the tool */
static void omni_call_keep(omni_call_t *c, PGresult *res)
{
    omni_call_kept_t *k;
    PGresult *copy;
    char key[512], *dup;

    if (c->gen < 0 || PQntuples(res) != 1
        || PQgetisnull(res, 0, OMNI_MCP_UPSTREAM_NCOLS)) {
        return;
    }
    k = omni_call_slot(c, key, sizeof(key));
    if (strlen(key) >= sizeof(key) - 1) {
        return;
    }
    copy = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
    dup = strdup(key);
    if (copy == NULL || dup == NULL) {
        PQclear(copy);
        free(dup);
        return;
    }
    free(k->key);
    PQclear(k->res);
    k->key = dup;
    k->gen = c->gen;
    k->res = copy;
}


/* --- the call ------------------------------------------------------------- */

static void omni_call_replied(void *arg, const omni_mcp_reply_t *rep)
{
    omni_call_t *c = arg;

    c->rpc = NULL;
    c->rep = *rep;
    omni_http_resume(c->r);
}


static void omni_call_woken(evutil_socket_t fd, short what, void *arg)
{
    omni_call_t *c = arg;

    omni_http_resume(c->r);
}


static void omni_call_saved(void *arg)
{
    omni_call_t *c = arg;

    omni_http_resume(c->r);
}


/* The load query's answer: the route's handler runs on it at once (res is
 * freed when this returns). c may be gone after the resume. */
static void omni_call_loaded(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_call_t *c = arg;

    if (st == OMNI_DB_OK) {
        omni_call_keep(c, res);
    }
    c->db_status = st;
    c->res = res;
    omni_http_resume(c->r);
}


static void omni_call_gen_read(redisAsyncContext *ctx, void *reply, void *arg)
{
    omni_call_t *c = arg;
    redisReply *rep = reply;

    c->gen = -1;
    if (rep != NULL && rep->type == REDIS_REPLY_NIL) {
        c->gen = 0;
    } else if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        c->gen = atoll(rep->str);
    }
    omni_http_resume(c->r);
}


/* Ends the call with an error outcome: 1, for omni_mcp_call_step. */
static int omni_call_fail(omni_call_t *c, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int omni_call_fail(
    omni_call_t *c, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    c->out.status = status;
    c->out.code = code;
    va_start(ap, fmt);
    vsnprintf(c->out.message, sizeof(c->out.message), fmt, ap);
    va_end(ap);
    return 1;
}


static void omni_call_note(void *arg, const omni_json_t *note)
{
    omni_call_t *c = arg;

    c->note(c->note_arg, note);
}


/* 0 when the call is sent; 1 when it could not be (the outcome is set) */
static int omni_call_send(omni_call_t *c)
{
    c->sent_us = omni_req_since_us(c->r);
    c->attempts++;
    memset(&c->rep, 0, sizeof(c->rep));
    c->rpc = omni_mcp_rpc(&c->u.target, "tools/call", c->tool, c->params,
        c->retryable, &c->r->arena, c->note ? omni_call_note : NULL,
        omni_call_replied, c);
    if (c->rpc == NULL) {
        return omni_call_fail(
            c, 502, "upstream_error", "cannot send to the server's URL");
    }
    return 0;
}


static int omni_call_outcome(omni_call_t *c)
{
    const omni_mcp_reply_t *rep = &c->rep;
    const omni_json_t *is_error;

    if (c->cancelled) {
        omni_perf_add(c->r, c, "cancelled");
        return omni_call_fail(
            c, 499, "cancelled", "the call was cancelled by the client");
    }
    if (rep->failure != NULL) {
        omni_perf_add(c->r, c, rep->timeout ? "timeout" : "upstream_error");
        return omni_call_fail(c, rep->timeout ? 504 : 502,
            rep->timeout ? "upstream_timeout" : "upstream_error",
            "MCP server %s: %s", c->u.name, rep->failure);
    }
    if (rep->error != NULL) {
        omni_perf_add(c->r, c, "rpc_error");
        c->out.rpc_error = rep->error;
        return omni_call_fail(c, 502, "upstream_rpc_error", "%s",
            omni_json_string(omni_json_get(rep->error, "message"))
                ? omni_json_string(omni_json_get(rep->error, "message"))
                : "the upstream answered an error");
    }
    if (omni_log_enabled(OMNI_LOG_DEBUG)) {
        omni_log(OMNI_LOG_DEBUG, "mcp call timings",
            "\"gen_us\":%llu,\"row_us\":%llu,\"sent_us\":%llu,"
            "\"replied_us\":%llu,\"done_us\":%llu",
            (unsigned long long)c->gen_us, (unsigned long long)c->row_us,
            (unsigned long long)c->sent_us, (unsigned long long)c->replied_us,
            (unsigned long long)omni_req_since_us(c->r));
    }
    is_error = omni_json_get(rep->result, "isError");
    omni_perf_add(c->r, c,
        is_error && is_error->type == OMNI_JSON_BOOL && is_error->u.boolean
            ? "tool_error"
            : "ok");
    c->out.status = 200;
    c->out.result = rep->result;
    return 1;
}


omni_mcp_call_t *omni_mcp_call_new(omni_req_t *r, const char *server,
    const char *tool, const omni_json_t *args, omni_mcp_note_pt note,
    void *note_arg)
{
    omni_call_t *c = omni_arena_alloc(&r->arena, sizeof(*c));
    struct evbuffer *b = evbuffer_new();

    if (c == NULL || b == NULL) {
        if (b != NULL) {
            evbuffer_free(b);
        }
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    c->r = r;
    c->server = server;
    c->tool = tool;
    c->note = note;
    c->note_arg = note_arg;
    evbuffer_add(b, "{\"name\":", 8);
    omni_json_put_string(b, tool, strlen(tool));
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
    return c->params != NULL ? c : NULL;
}


int omni_mcp_call_input(omni_mcp_call_t *c, const char *caps, const char *input)
{
    size_t n = strlen(c->params), m;
    char *params;

    c->caps = caps;
    if (input == NULL || *input == '\0') {
        return 0;
    }
    /* params is an object: its closing brace gives way to the members */
    m = strlen(input);
    params = omni_arena_alloc(&c->r->arena, n + m + 2);
    if (params == NULL) {
        return -1;
    }
    memcpy(params, c->params, n - 1);
    params[n - 1] = ',';
    memcpy(params + n, input, m);
    params[n + m] = '}';
    params[n + m + 1] = '\0';
    c->params = params;
    return 0;
}


void omni_mcp_call_state(omni_mcp_call_t *c, const char *wrapped)
{
    c->wrapped = wrapped;
}


/* Opens the retry's requestState for this caller, server and tool and
 * adds the upstream's own to params: 0, or 1 with the outcome set. */
static int omni_call_open_state(omni_req_t *r, omni_call_t *c)
{
    const char *bound[4], *state = NULL, *id = omni_req_identity(r)->id;
    struct evbuffer *b;
    int rc;

    bound[0] = id ? id : "";
    bound[1] = c->u.id;
    bound[2] = "tools/call";
    bound[3] = c->tool;
    rc = omni_mcp_state_open(&r->arena, bound, c->wrapped, time(NULL), &state);
    if (rc == -2) {
        return omni_call_fail(c, 400, "invalid_request_state",
            "params.requestState: expired (a state is good for %d seconds); "
            "call the tool again without it",
            OMNI_MCP_STATE_TTL);
    }
    if (rc != 0) {
        return omni_call_fail(c, 400, "invalid_request_state",
            "params.requestState: not a state this server gave you for "
            "%.128s (another user's, another tool's or server's, or altered)",
            c->tool);
    }
    b = evbuffer_new();
    if (b == NULL) {
        return omni_call_fail(c, 500, "internal_error", "out of memory");
    }
    evbuffer_add(b, "\"requestState\":", 15);
    omni_json_put_string(b, state, strlen(state));
    evbuffer_add(b, "", 1);
    rc = omni_mcp_call_input(c, c->caps, (const char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    return rc != 0 ? omni_call_fail(c, 500, "internal_error", "out of memory")
                   : 0;
}


int omni_mcp_call_step(
    omni_req_t *r, omni_mcp_call_t *c, const omni_mcp_outcome_t **out)
{
    const char *values[4];
    struct timeval tv;
    PGresult *res;
    long left;
    int n = OMNI_MCP_UPSTREAM_NCOLS;

    *out = &c->out;
    switch (c->state) {

    case OMNI_CALL_LOAD:
        c->state = OMNI_CALL_GEN;
        if (c->gen_given) {
            return omni_mcp_call_step(r, c, out);
        }
        c->gen = -1;
        if (omni_clients.redis != NULL
            && omni_redis_command(omni_clients.redis, omni_call_gen_read, c,
                   "GET omni:mcp:gen")
                   == 0) {
            return 0;
        }
        /* without Redis the row is queried */
        /* fall through */

    case OMNI_CALL_GEN:
        c->gen_us = omni_req_since_us(r);
        if (c->cancelled) {
            return omni_call_outcome(c);
        }
        /* known to be down by this process's copy, taken at the current
         * generation: refused without a query. A copy of an older one
         * (up to 250 ms) may miss a breaker a probe has just closed on
         * another process: the row decides. */
        if (c->gen >= 0 && c->gen == omni_mcp_state_gen()
            && omni_mcp_state_down(c->server, &values[0])) {
            omni_perf_refused(r, values[0], c->tool, "unavailable");
            return omni_call_fail(c, 503, "mcp_server_unavailable",
                "MCP server %.64s is down (circuit open)", c->server);
        }
        c->state = OMNI_CALL_LOADED;
        res = omni_call_kept_row(c);
        if (res != NULL) {
            c->db_status = OMNI_DB_OK;
            c->res = res;
            return omni_mcp_call_step(r, c, out);
        }
        values[0] = omni_uuid_valid(c->server) ? c->server : NULL;
        values[1] = c->server;
        values[2] =
            omni_req_identity(r)->role ? omni_req_identity(r)->role : "";
        values[3] = c->tool;
        if (omni_db_query(omni_clients.db, omni_call_load_stmt, 4, values,
                omni_call_loaded, c)
            != OMNI_DB_OK) {
            r->db_status = OMNI_DB_UNAVAILABLE;
            r->db_res = NULL;
            return omni_call_fail(
                c, 503, "database", "the database did not answer the call");
        }
        return 0;

    case OMNI_CALL_LOADED:
        c->row_us = omni_req_since_us(r);
        res = c->res;
        c->res = NULL;
        if (c->db_status != OMNI_DB_OK) {
            /* r->db_status and r->db_res say how (omni_api_db_failed) */
            r->db_status = c->db_status;
            r->db_res = res;
            return omni_call_fail(
                c, 503, "database", "the database did not answer the call");
        }
        if (c->cancelled) {
            return omni_call_outcome(c);
        }
        if (PQntuples(res) == 0) {
            return omni_call_fail(
                c, 404, "not_found", "server: no MCP server %.64s", c->server);
        }
        switch (omni_mcp_upstream_parse(&r->arena, res, 0, &c->u)) {
        case 0:
            break;
        case -2:
            return omni_call_fail(c, 502, "upstream_error",
                "MCP server %s: a header's secret cannot be read (the "
                "worker's log says which and why)",
                c->u.name);
        default:
            return omni_call_fail(c, 500, "internal_error",
                "the server's stored headers cannot be opened");
        }
        if (PQgetvalue(res, 0, n + 2)[0] != 't') {
            omni_perf_add(r, c, "forbidden");
            return omni_call_fail(c, 403, "forbidden",
                "your role may not call %.128s on %s", c->tool, c->u.name);
        }
        if (!c->u.enabled) {
            omni_perf_add(r, c, "unavailable");
            return omni_call_fail(c, 503, "mcp_server_unavailable",
                "MCP server %s is disabled", c->u.name);
        }
        if (PQgetisnull(res, 0, n)) {
            return omni_call_fail(c, 404, "not_found",
                "tool: %s has no tool %.128s", c->u.name, c->tool);
        }
        if (strcmp(PQgetvalue(res, 0, n), "quarantined") == 0) {
            omni_perf_add(r, c, "quarantined");
            return omni_call_fail(c, 409, "tool_quarantined",
                "tool %.128s of %s changed its definition and awaits an "
                "admin's approval",
                c->tool, c->u.name);
        }
        c->out.server_id = c->u.id;
        if (c->wrapped != NULL && omni_call_open_state(r, c)) {
            return 1;
        }
        c->retryable = PQgetvalue(res, 0, n + 1)[0] == 't';
        c->u.target.caps = c->caps;
        if (!omni_breaker_allow(&c->u.breaker, omni_mcp_now_ms(), NULL)) {
            omni_perf_add(r, c, "unavailable");
            return omni_call_fail(c, 503, "mcp_server_unavailable",
                "MCP server %s is down (circuit open)", c->u.name);
        }
        c->start_ms = (uint64_t)omni_mcp_now_ms();
        c->state = OMNI_CALL_CALLED;
        return omni_call_send(c);

    case OMNI_CALL_CALLED:
        c->replied_us = omni_req_since_us(r);
        if (c->cancelled) {
            return omni_call_outcome(c);
        }
        left = c->u.target.timeout_ms
               - (long)((uint64_t)omni_mcp_now_ms() - c->start_ms);
        if (c->rep.failure != NULL && !c->rep.timeout && c->retryable
            && c->attempts < OMNI_CALL_ATTEMPTS && left > 100L << c->attempts) {
            tv.tv_sec = 0;
            tv.tv_usec = (50L << (2 * c->attempts)) * 1000;
            c->timer = evtimer_new(omni_clients.base, omni_call_woken, c);
            if (c->timer != NULL && evtimer_add(c->timer, &tv) == 0) {
                c->state = OMNI_CALL_WAITED;
                return 0;
            }
        }
        /* the breaker is stored before the answer, so the caller's next
         * call (on any process) meets the state this one left */
        c->state = OMNI_CALL_SAVED;
        if (omni_mcp_breaker_outcome(&c->u, c->rep.failure == NULL)
            && omni_mcp_breaker_save(
                   &c->u, c->rep.failure == NULL, omni_call_saved, c)
                   == 0) {
            return 0;
        }
        return omni_call_outcome(c);

    case OMNI_CALL_SAVED:
        return omni_call_outcome(c);

    default:
        event_free(c->timer);
        c->timer = NULL;
        if (c->cancelled) {
            return omni_call_outcome(c);
        }
        c->state = OMNI_CALL_CALLED;
        return omni_call_send(c);
    }
}


void omni_mcp_call_gen(omni_mcp_call_t *c, long long gen)
{
    c->gen = gen;
    c->gen_given = 1;
}


void omni_mcp_call_cancel(omni_mcp_call_t *c)
{
    c->cancelled = 1;
    if (c->rpc != NULL) {
        omni_mcp_rpc_cancel(c->rpc);
        c->rpc = NULL;
        omni_http_resume(c->r);
        return;
    }
    if (c->timer != NULL) {
        event_del(c->timer);
        omni_http_resume(c->r);
    }
}


/* --- POST /api/v1/mcp/tools/call ------------------------------------------ */

void omni_mcp_tools_call(omni_req_t *r)
{
    omni_call_t *c = r->data;
    const omni_mcp_outcome_t *out;
    const omni_json_t *args, *server;
    const char *tool;
    struct evbuffer *b;

    if (c == NULL) {
        server = omni_json_get(r->json, "server");
        if (omni_json_string(server) == NULL) {
            omni_respond_error(r, 400,
                server ? "invalid_field" : "missing_field",
                "server: expected the server's name or id");
            return;
        }
        if (omni_api_field_string(r, "tool", 1, &tool) != 0) {
            return;
        }
        args = omni_json_get(r->json, "arguments");
        if (args != NULL && args->type != OMNI_JSON_OBJECT) {
            omni_respond_error(r, 400, "invalid_field",
                "arguments: expected an object of the tool's arguments");
            return;
        }
        c = omni_mcp_call_new(r, server->u.str.ptr, tool, args, NULL, NULL);
        if (c == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        r->data = c;
    }
    if (!omni_mcp_call_step(r, c, &out)) {
        return;
    }
    if (out->status == 200) {
        b = evbuffer_new();
        omni_json_write(b, out->result);
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
    if (out->rpc_error != NULL) {
        b = evbuffer_new();
        evbuffer_add(b, "{\"error\":\"upstream_rpc_error\",\"message\":", 40);
        omni_json_write(b, omni_json_get(out->rpc_error, "message"));
        evbuffer_add(b, ",\"rpc_error\":", 13);
        omni_json_write(b, out->rpc_error);
        evbuffer_add(b, "}\n", 2);
        omni_api_json(r, 502, b);
        evbuffer_free(b);
        return;
    }
    if (strcmp(out->code, "database") == 0) {
        omni_api_db_failed(r);
        return;
    }
    omni_respond_error(r, out->status, out->code, "%s", out->message);
}
