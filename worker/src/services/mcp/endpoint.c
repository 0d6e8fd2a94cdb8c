/* endpoint.c: /mcp, one MCP server (Streamable HTTP) aggregating every
 * registered server's tools for the caller, speaking both generations;
 * /mcp/<server> is one server's, unprefixed, with its resources and
 * prompts passed through.
 *
 *   POST: START ──legacy, has a session──> SESSION (Redis GET) ──┐
 *           │  ──initialize──> CREATED (Redis SET) ──> answer    │
 *           │  ──modern (headers checked)───────────────────────>├─> dispatch
 *           │                                                    v
 *     tools/list ──> LISTED (query) ──> answer (a page)
 *     tools/call ──plain name──> CALLING (call.c's steps; progress as SSE)
 *                   CALLING ──a legacy session's input_required──> INPUT
 *                   (its requests asked on the stream) ──answers──┘
 *                ──omni__<tool> (/mcp/omni: <tool>)──> BUILTIN_CALLED
 *                                     (memory.h's tool call) ──> answer
 *                ──hashed name, or a plain one missed──> RESOLVED (query)
 *                                                 ──> CALLING ──> answer
 *     resources/..., prompts/... (/mcp/<server>) ──> UPSTREAM (query)
 *                                 ──> FORWARDED (the upstream) ──> answer
 *     resources/subscribe (/mcp/<server>) ──> UPSTREAM ──> FORWARDED
 *                                   ──> SUBSCRIBED (Redis SADD) ──> answer
 *     resources/unsubscribe ──> UNSUBSCRIBED (Redis SREM) ──> answer
 *     notifications/cancelled ──> CANCEL_STORED (Redis SET) ──> 202
 *     a response to a request relayed to the client ──> ANSWER_STORED
 *                 (Redis SET, unless this process runs the call) ──> 202
 *
 *   GET: START ──> STREAM_READ (Redis GET) ──> STREAMING (list_changed
 *        when the caller's list changed, resources/updated)
 *   DELETE: START ──> DELETE_READ (Redis GET) ──> DELETED (Redis DEL)
 *
 * Legacy (2025-03-26 .. 2025-11-25): initialize mints a session kept in
 * Redis (any process or replica serves its next request), DELETE ends it.
 * Modern (2026-07-28): no session; every request carries the version in
 * MCP-Protocol-Version and _meta, and Mcp-Method / Mcp-Name agreeing with
 * the body. A legacy call is cancelled by notifications/cancelled (which
 * may reach another process: it is stored in Redis, and each process
 * polls for the calls it runs every 25 ms); any call by the client
 * closing its connection. An upstream's sampling, elicitation or roots
 * request during a legacy call goes to the client on the call's stream
 * under an id of ours; the client's answer comes back like a
 * cancellation (here, or through Redis to the process running the
 * call). A 2026-07-28 upstream's InputRequiredResult passes through to a
 * modern client whole but for its requestState, which the client gets
 * wrapped (endpoint.h: bound to the caller, the server and the tool,
 * prompt or URI, for 10 minutes) and whose retry's is opened before the
 * upstream gets its own (the name and the role decide the call as
 * always); a legacy session is asked its inputRequests in the same way,
 * and the call is made again with the answers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "lib/encode.h"
#include "io/clients.h"
#include "io/db.h"
#include "io/log.h"
#include "services/mcp/call.h"
#include "services/mcp/endpoint.h"
#include "services/mcp/registry.h"
#include "services/mcp/relay.h"
#include "services/mcp/state.h"
#include "services/mcp/upstream.h"
#include "services/memory/memory.h"

#define OMNI_EP_MAX_BODY (1024 * 1024)
#define OMNI_EP_PAGE 100
#define OMNI_EP_SESSION_TTL "3600"
#define OMNI_EP_MAX_LIVE 128
#define OMNI_EP_HEADER_MISMATCH -32020
#define OMNI_EP_MAX_STREAMS 256
#define OMNI_EP_KEEPALIVE_S 20
#define OMNI_EP_MAX_ASKS 4
/* a legacy session's answers to a 2026-07-28 upstream's input requests:
 * how long they are awaited (the answers kept in Redis live 120 s), and
 * how many rounds one call may take */
#define OMNI_EP_INPUT_WAIT_S 110
#define OMNI_EP_MAX_ROUNDS 4
#define OMNI_EP_MAX_POLLED (OMNI_EP_MAX_LIVE * 2)
/* the capabilities a legacy client declared (kept with its session) */
#define OMNI_EP_SAMPLING 1
#define OMNI_EP_ELICITATION 2
#define OMNI_EP_ROOTS 4
#define OMNI_EP_STREAM_TICK_MS 250
#define OMNI_EP_MAX_URI 1024

/* An upstream's resources/updated (relay.c) for the sessions subscribed
 * to it, each given it in a list its GET stream pops. Two processes
 * watching the same server (each its own upstream session) both hear of
 * one change: the first says it. */
#define OMNI_EP_UPDATED_SCRIPT                                                 \
    "if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', 250) then"             \
    " return 0 end "                                                           \
    "for _, s in ipairs(redis.call('SMEMBERS', KEYS[1])) do"                   \
    " local k = 'omni:mcp:notes:' .. s"                                        \
    " redis.call('RPUSH', k, ARGV[1]) redis.call('LTRIM', k, -100, -1)"        \
    " redis.call('EXPIRE', k, 60) end return 1"
/* the built-in server (services/memory's tools); the registry refuses
 * the name */
#define OMNI_EP_BUILTIN OMNI_MCP_BUILTIN

#define OMNI_EP_VERSIONS                                                       \
    "[\"2026-07-28\",\"2025-11-25\",\"2025-06-18\",\"2025-03-26\"]"

enum {
    OMNI_EP_START = 0,
    OMNI_EP_SESSION,
    OMNI_EP_CREATED,
    OMNI_EP_LISTED,
    OMNI_EP_RESOLVED,
    OMNI_EP_CALLING,
    OMNI_EP_INPUT,
    OMNI_EP_BUILTIN_CALLED,
    OMNI_EP_CANCEL_STORED,
    OMNI_EP_ANSWER_STORED,
    OMNI_EP_SUBSCRIBED,
    OMNI_EP_UNSUBSCRIBED,
    OMNI_EP_UPSTREAM,
    OMNI_EP_FORWARDED,
    OMNI_EP_DELETE_READ,
    OMNI_EP_DELETED,
    OMNI_EP_STREAM_READ,
    OMNI_EP_STREAMING
};

typedef struct omni_ep_s omni_ep_t;

/* What tools/list shows one (role, scope) of the open GET streams, as a
 * hash: a catalog change is told only to the streams whose list changed */
typedef struct {
    int used, refs, querying, again, changed, known;
    char role[64];
    char scope[33]; /* "" for /mcp */
    uint64_t hash;
} omni_ep_view_t;

#define OMNI_EP_VIEWS 32

struct omni_ep_s {
    omni_req_t *r;
    int modern;
    const char *version;
    char session[64];
    int new_session;
    const omni_json_t *root, *id, *params;
    const char *method;
    const char *scope; /* /mcp/<server>: that server alone, unprefixed */
    int streaming, gone;
    /* Redis and Postgres answers, valid while the handler runs on them */
    int redis_pending, redis_failed;
    const char *redis_str;
    /* omni:mcp:gen read with a tools/call's session (0: unset), for the
     * call, when gen_read */
    long long gen;
    int gen_read;
    int db_status;
    PGresult *res;
    /* tools/call */
    const char *server, *tool;
    int direct; /* tool taken from the name as it is */
    omni_mcp_call_t *call;
    int builtin_status; /* the built-in tool's REST status and body */
    const char *builtin_json;
    size_t builtin_len;
    omni_mcp_upstream_t u; /* resources, prompts: the scope's server */
    omni_mcp_rpc_t *rpc;
    omni_mcp_reply_t rep;
    const omni_json_t *progress_token;
    char id_text[96];
    omni_ep_t *next;
    uint64_t seq;
    int live;
    int caps; /* OMNI_EP_SAMPLING | ... */
    /* the upstream's requests relayed to the client, awaiting its answer
     * (which may reach another process: then it comes through Redis) */
    struct {
        omni_mcp_ask_t *ask; /* NULL: a free slot, or an input request's */
        const char *key;     /* an input request's key (INPUT), or NULL */
        const char *answer;  /* its answer: 'r' or 'e', then the object */
        char id[48];         /* the id the client sees */
    } asks[OMNI_EP_MAX_ASKS];
    /* INPUT: the requestState member for the retry (or NULL), the rounds
     * made, the timer ending the wait */
    const char *input_state;
    int rounds;
    /* what a requestState given to the client is bound to (endpoint.h's
     * bound but the caller): the server's id, the method, the name */
    const char *bind[3];
    struct event *input_timer;
    /* GET: the session's notification stream */
    omni_ep_t *snext;
    time_t last_write;
    omni_ep_view_t *view; /* NULL: told of every change (no room) */
    int fixed;            /* /mcp/omni: its list never changes */
};

static int omni_ep_list_stmt, omni_ep_resolve_stmt, omni_ep_server_stmt;
static char **omni_ep_origins;

static struct {
    omni_ep_t *head;
    int count, polling;
    uint64_t seq;
    struct event *timer;
    /* what each key of the poll's MGET is: a call's cancellation (ask
     * -1) or the answer to one of its relayed requests */
    struct {
        uint64_t seq;
        int ask;
    } polled[OMNI_EP_MAX_POLLED];
    char keys[OMNI_EP_MAX_POLLED][192];
    int npolled;
} omni_ep_live;

/* the open GET streams of this process, told of catalog changes (the
 * generation in omni:mcp:gen that state.c follows, read here each tick
 * while a stream is open). The last generation read is kept while no
 * stream is open: a stream's view takes its baseline list when it opens,
 * so a generation that moved meanwhile costs one re-read of the list, and
 * a change right after the stream opened is never taken for the
 * baseline. */
static struct {
    omni_ep_t *head;
    int count, reading;
    long long gen; /* -1: not read yet */
    struct event *timer;
} omni_ep_streams = {.gen = -1};

static omni_ep_view_t omni_ep_views[OMNI_EP_VIEWS];

#define OMNI_EP_ROLE_FILTER                                                    \
    " ($1 = 'admin' OR ((cardinality(s.roles) = 0 OR $1 = ANY (s.roles))"      \
    "  AND (NOT s.tool_roles ? t.name OR s.tool_roles->t.name ? $1)))"


int omni_mcp_endpoint_init(void)
{
    omni_ep_list_stmt = omni_db_statement("mcp_endpoint_list",
        "SELECT s.name, t.name, t.definition::text"
        " FROM omni2.mcp_servers AS s"
        " JOIN omni2.mcp_tools AS t ON t.server_id = s.id"
        " LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = s.id"
        " WHERE s.enabled AND t.status = 'active'"
        "  AND coalesce(b.state, 'closed') <> 'open' AND" OMNI_EP_ROLE_FILTER
        "  AND ($2::text IS NULL OR s.name = $2)"
        " ORDER BY s.name, t.name");
    omni_ep_resolve_stmt = omni_db_statement("mcp_endpoint_resolve",
        "SELECT t.name FROM omni2.mcp_servers AS s"
        " JOIN omni2.mcp_tools AS t ON t.server_id = s.id"
        " WHERE s.name = $2 AND" OMNI_EP_ROLE_FILTER);
    omni_ep_server_stmt = omni_db_statement("mcp_endpoint_server",
        "SELECT " OMNI_MCP_UPSTREAM_COLUMNS ","
        " $1 = 'admin' OR cardinality(s.roles) = 0 OR $1 = ANY (s.roles)"
        " FROM omni2.mcp_servers AS s"
        " LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = s.id"
        " WHERE s.name = $2");
    return omni_ep_list_stmt < 0 || omni_ep_resolve_stmt < 0
                   || omni_ep_server_stmt < 0
               ? -1
               : 0;
}


int omni_mcp_endpoint_configure(const omni_config_t *cfg)
{
    const char *p = cfg->mcp_origins;
    char **list;
    size_t n = 0, len;

    if (omni_mcp_cursor_key(omni_mcp_secret_key, 32) != 0) {
        return -1;
    }
    list = calloc(64, sizeof(char *));
    if (list == NULL) {
        return -1;
    }
    if (omni_ep_origins != NULL) {
        for (n = 0; omni_ep_origins[n] != NULL; n++) {
            free(omni_ep_origins[n]);
        }
        free(omni_ep_origins);
        n = 0;
    }
    while (p != NULL && *p && n < 63) {
        p += strspn(p, " ,");
        len = strcspn(p, " ,");
        if (len > 0) {
            list[n++] = strndup(p, len);
        }
        p += len;
    }
    omni_ep_origins = list;
    return 0;
}


/* --- answers -------------------------------------------------------------- */

static void omni_ep_unlive(omni_ep_t *ep)
{
    omni_ep_t **pp;

    if (!ep->live) {
        return;
    }
    for (pp = &omni_ep_live.head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ep) {
            *pp = ep->next;
            omni_ep_live.count--;
            break;
        }
    }
    ep->live = 0;
}


static void omni_ep_stream(omni_ep_t *ep)
{
    if (!ep->streaming) {
        ep->streaming = 1;
        omni_respond_start(ep->r, 200, "text/event-stream");
    }
}


static void omni_ep_event(omni_ep_t *ep, struct evbuffer *msg)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    evbuffer_add(b, "event: message\ndata: ", 21);
    evbuffer_add_buffer(b, msg);
    evbuffer_add(b, "\n\n", 2);
    omni_respond_chunk(ep->r, b);
    evbuffer_free(b);
}


/* Sends the JSON-RPC message in b (freed here) and frees the request. */
static void omni_ep_send(omni_ep_t *ep, int status, struct evbuffer *b)
{
    omni_req_t *r = ep->r;

    omni_ep_unlive(ep);
    if (ep->input_timer != NULL) {
        event_free(ep->input_timer);
        ep->input_timer = NULL;
    }
    if (ep->streaming) {
        if (b != NULL) {
            omni_ep_event(ep, b);
            evbuffer_free(b);
        }
        omni_respond_end(r);
        return;
    }
    if (ep->new_session) {
        omni_respond_header(r, "Mcp-Session-Id", ep->session);
    }
    if (b == NULL) {
        omni_respond(r, status, "application/json", NULL);
        return;
    }
    omni_respond(r, status, "application/json", b);
    evbuffer_free(b);
}


static struct evbuffer *omni_ep_head(omni_ep_t *ep)
{
    struct evbuffer *b = evbuffer_new();

    if (b != NULL) {
        evbuffer_add(b, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
        omni_json_write(b, ep->id);
    }
    return b;
}


static void omni_ep_error(
    omni_ep_t *ep, int status, int code, const char *message, const char *data)
{
    struct evbuffer *b = omni_ep_head(ep);

    if (b != NULL) {
        evbuffer_add_printf(b, ",\"error\":{\"code\":%d,\"message\":", code);
        omni_json_put_string(b, message, strlen(message));
        if (data != NULL) {
            evbuffer_add_printf(b, ",\"data\":%s", data);
        }
        evbuffer_add(b, "}}", 2);
    }
    omni_ep_send(ep, status, b);
}


/* {"jsonrpc","id","result":{ + (modern) resultType + members + }} where
 * members is JSON text without braces (may be empty). */
static void omni_ep_result(omni_ep_t *ep, const char *members)
{
    struct evbuffer *b = omni_ep_head(ep);

    if (b != NULL) {
        evbuffer_add_printf(b, ",\"result\":{%s%s%s}}",
            ep->modern ? "\"resultType\":\"complete\"" : "",
            ep->modern && *members ? "," : "", members);
    }
    omni_ep_send(ep, 200, b);
}


/* Writes the upstream's requestState wrapped for the caller and ep->bind:
 * 1, or 0 when it cannot be (no binding, out of memory). */
static int omni_ep_wrap_state(
    omni_ep_t *ep, struct evbuffer *b, const omni_json_t *state)
{
    const char *bound[4], *id = omni_req_identity(ep->r)->id;
    char *wrapped;

    if (ep->bind[0] == NULL || ep->bind[1] == NULL || ep->bind[2] == NULL) {
        return 0;
    }
    bound[0] = id ? id : "";
    memcpy(bound + 1, ep->bind, sizeof(ep->bind));
    wrapped =
        omni_mcp_state_wrap(&ep->r->arena, bound, state->u.str.ptr, time(NULL));
    if (wrapped == NULL) {
        return 0;
    }
    omni_json_put_string(b, wrapped, strlen(wrapped));
    return 1;
}


/* The same with an object from an upstream. A 2026-07-28 client gets the
 * upstream's resultType (an InputRequiredResult passes through whole),
 * "complete" when an older upstream gave none; a legacy client gets no
 * resultType, and an error for a result its protocol cannot carry. */
static void omni_ep_result_json(omni_ep_t *ep, const omni_json_t *obj)
{
    const char *type = omni_json_string(omni_json_get(obj, "resultType"));
    struct evbuffer *b;
    char msg[512];
    size_t i;
    int first = 1, hints = 0;

    if (!ep->modern && type != NULL && strcmp(type, "complete") != 0) {
        /* a multi round-trip request needs the client to retry with the
         * input asked for: a 2025 session has no such exchange */
        snprintf(msg, sizeof(msg),
            "%.128s: the MCP server answered resultType %.32s (a 2026-07-28 "
            "multi round-trip request) that this %.16s session cannot be "
            "asked (a capability it did not declare, no event stream, or "
            "too many rounds); call it with protocol 2026-07-28",
            omni_json_string(omni_json_get(ep->params, "name"))
                ? omni_json_string(omni_json_get(ep->params, "name"))
                : ep->method,
            type, ep->version);
        omni_ep_error(ep, 200, -32603, msg, NULL);
        return;
    }
    b = omni_ep_head(ep);
    if (b == NULL) {
        omni_ep_send(ep, 200, NULL);
        return;
    }
    evbuffer_add(b, ",\"result\":{", 11);
    if (ep->modern) {
        evbuffer_add(b, "\"resultType\":", 13);
        omni_json_put_string(
            b, type ? type : "complete", strlen(type ? type : "complete"));
        first = 0;
        /* 2026-07-28 lists and reads carry caching hints: an upstream
         * that gives no ttlMs is not cached, and the scope is always
         * private, whatever the upstream says: what a caller may see
         * depends on its role here, so no shared cache may keep it */
        hints = (type == NULL || strcmp(type, "complete") == 0)
                && (strstr(ep->method, "/list") != NULL
                    || strcmp(ep->method, "resources/read") == 0);
        if (hints && omni_json_get(obj, "ttlMs") == NULL) {
            evbuffer_add_printf(b, ",\"ttlMs\":0");
        }
        if (hints) {
            evbuffer_add_printf(b, ",\"cacheScope\":\"private\"");
        }
    }
    for (i = 0;
         obj != NULL && obj->type == OMNI_JSON_OBJECT && i < obj->u.obj.len;
         i++) {
        if (strcmp(obj->u.obj.keys[i], "resultType") == 0
            || (ep->modern && hints
                && strcmp(obj->u.obj.keys[i], "cacheScope") == 0)) {
            continue;
        }
        if (!first) {
            evbuffer_add(b, ",", 1);
        }
        first = 0;
        omni_json_put_string(b, obj->u.obj.keys[i], strlen(obj->u.obj.keys[i]));
        evbuffer_add(b, ":", 1);
        if (strcmp(obj->u.obj.keys[i], "requestState") == 0
            && obj->u.obj.values[i]->type == OMNI_JSON_STRING) {
            /* the upstream sees every caller as Omni: its state goes out
             * bound to this one, so no other can continue the request */
            if (!omni_ep_wrap_state(ep, b, obj->u.obj.values[i])) {
                evbuffer_free(b);
                omni_ep_error(ep, 200, -32603,
                    "the MCP server's requestState cannot be passed on", NULL);
                return;
            }
            continue;
        }
        omni_json_write(b, obj->u.obj.values[i]);
    }
    evbuffer_add(b, "}}", 2);
    omni_ep_send(ep, 200, b);
}


/* A request's own input for a 2026-07-28 upstream (call.h's
 * omni_mcp_call_input): the client capabilities an upstream may ask
 * input of, and a 2026-07-28 retry's inputResponses and requestState as
 * members of params (NULL when absent). A 2026-07-28 client's are those
 * it declared (sampling, elicitation, roots); a legacy session's those it
 * declared at initialize when relay is set (its tools/call, whose
 * InputRequiredResult Omni relays to it), else none. The requestState is
 * checked but left out of input: the client's is Omni's wrapping, which
 * call.c or omni_ep_forward opens. -1 when a member has the wrong type
 * (the client is answered). */
static int omni_ep_input(
    omni_ep_t *ep, int relay, const char **caps, const char **input)
{
    static const char *const kinds[] = {"sampling", "elicitation", "roots"};
    static const int flags[] = {
        OMNI_EP_SAMPLING, OMNI_EP_ELICITATION, OMNI_EP_ROOTS};
    const omni_json_t *meta, *declared, *v, *responses, *state;
    const char *accept = omni_req_header(ep->r, "Accept");
    struct evbuffer *b;
    size_t i;
    int first = 1;

    *caps = NULL;
    *input = NULL;
    responses = omni_json_get(ep->params, "inputResponses");
    state = omni_json_get(ep->params, "requestState");
    if (ep->modern && responses != NULL
        && responses->type != OMNI_JSON_OBJECT) {
        omni_ep_error(ep, 200, -32602,
            "params.inputResponses: expected an object of the answers to "
            "inputRequests",
            NULL);
        return -1;
    }
    if (ep->modern && state != NULL && state->type != OMNI_JSON_STRING) {
        omni_ep_error(ep, 200, -32602,
            "params.requestState: expected the string the server gave", NULL);
        return -1;
    }
    if (!ep->modern
        && (!relay || ep->session[0] == '\0' || accept == NULL
            || strstr(accept, "text/event-stream") == NULL)) {
        return 0;
    }
    meta = omni_json_get(ep->params, "_meta");
    declared =
        omni_json_get(meta, "io.modelcontextprotocol/clientCapabilities");
    b = evbuffer_new();
    if (b == NULL) {
        return 0;
    }
    evbuffer_add(b, "{", 1);
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        v = omni_json_get(declared, kinds[i]);
        if (ep->modern ? v == NULL || v->type != OMNI_JSON_OBJECT
                       : !(ep->caps & flags[i])) {
            continue;
        }
        evbuffer_add_printf(b, "%s\"%s\":", first ? "" : ",", kinds[i]);
        if (ep->modern) {
            omni_json_write(b, v);
        } else {
            evbuffer_add(b, "{}", 2);
        }
        first = 0;
    }
    evbuffer_add(b, "}", 1);
    *caps = omni_arena_strndup(&ep->r->arena,
        (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_drain(b, evbuffer_get_length(b));
    if (responses != NULL) {
        evbuffer_add(b, "\"inputResponses\":", 17);
        omni_json_write(b, responses);
    }
    if (ep->modern && evbuffer_get_length(b) > 0) {
        *input = omni_arena_strndup(&ep->r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    }
    evbuffer_free(b);
    return 0;
}


/* An HTTP-level refusal that is not a JSON-RPC message's answer. */
static void omni_ep_refuse(
    omni_req_t *r, int status, int code, const char *message)
{
    struct evbuffer *b = evbuffer_new();

    if (b != NULL) {
        evbuffer_add_printf(b,
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":%d,"
            "\"message\":",
            code);
        omni_json_put_string(b, message, strlen(message));
        evbuffer_add(b, "}}", 2);
    }
    omni_respond(r, status, "application/json", b);
    if (b != NULL) {
        evbuffer_free(b);
    }
}


/* --- checks --------------------------------------------------------------- */

static int omni_ep_legacy_version(const char *v)
{
    return v != NULL
           && (strcmp(v, "2025-11-25") == 0 || strcmp(v, "2025-06-18") == 0
               || strcmp(v, "2025-03-26") == 0);
}


/* ^[a-z0-9][a-z0-9-]{0,31}$, the registry's rule */
static int omni_ep_server_name(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= 32 && s[0] != '-'
           && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}


/* 1 for http(s)://<loopback>[:port] */
static int omni_ep_loopback_origin(const char *origin)
{
    const char *h = strstr(origin, "://");
    size_t n;

    if (h == NULL) {
        return 0;
    }
    h += 3;
    n = strcspn(h, ":/");
    return (n == 9 && strncmp(h, "localhost", 9) == 0)
           || (n == 9 && strncmp(h, "127.0.0.1", 9) == 0)
           || strncmp(h, "[::1]", 5) == 0;
}


/* An Origin is allowed when configured (OMNI_MCP_ALLOWED_ORIGINS: the
 * gateway's public origins), or when it is the loopback origin the
 * request came to. A foreign Host naming itself in Origin (DNS rebinding)
 * is not enough. Absent: not a browser. */
static int omni_ep_origin_ok(omni_req_t *r)
{
    const char *origin = omni_req_header(r, "Origin");
    const char *host = omni_req_header(r, "X-Forwarded-Host");
    const char *p;
    int i;

    if (origin == NULL) {
        return 1;
    }
    for (i = 0; omni_ep_origins != NULL && omni_ep_origins[i] != NULL; i++) {
        if (strcasecmp(origin, omni_ep_origins[i]) == 0) {
            return 1;
        }
    }
    if (host == NULL) {
        host = omni_req_header(r, "Host");
    }
    p = strstr(origin, "://");
    return host != NULL && p != NULL && strcasecmp(p + 3, host) == 0
           && omni_ep_loopback_origin(origin);
}


/* The client's message in ep: 0, or -1 after answering. */
static int omni_ep_parse(omni_req_t *r, omni_ep_t *ep)
{
    omni_json_limits_t limits = {OMNI_EP_MAX_BODY, 64};
    size_t len;
    const char *text = omni_req_body(r, &len);
    const char *ct = omni_req_header(r, "Content-Type"), *p;
    const omni_json_t *v;
    char err[160];

    if (len > OMNI_EP_MAX_BODY) {
        omni_ep_refuse(r, 413, -32600, "the request body is larger than 1 MiB");
        return -1;
    }
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        omni_ep_refuse(r, 415, -32600, "Content-Type must be application/json");
        return -1;
    }
    for (p = text; p < text + len && strchr(" \t\r\n", *p); p++) {
    }
    if (p < text + len && *p == '[') {
        omni_ep_refuse(r, 400, -32600,
            "JSON-RPC batches are not supported: send one message per "
            "request");
        return -1;
    }
    ep->root = omni_json_parse(&r->arena, text, len, &limits, err, sizeof(err));
    if (ep->root == NULL) {
        omni_ep_refuse(r, 400, -32700, err);
        return -1;
    }
    if (ep->root->type != OMNI_JSON_OBJECT
        || omni_json_string(omni_json_get(ep->root, "jsonrpc")) == NULL
        || strcmp(omni_json_string(omni_json_get(ep->root, "jsonrpc")), "2.0")
               != 0) {
        omni_ep_refuse(r, 400, -32600,
            "expected a JSON-RPC 2.0 message (an object with \"jsonrpc\": "
            "\"2.0\")");
        return -1;
    }
    ep->id = omni_json_get(ep->root, "id");
    if (ep->id != NULL && ep->id->type != OMNI_JSON_STRING
        && !(ep->id->type == OMNI_JSON_NUMBER && ep->id->u.num.is_int)) {
        omni_ep_refuse(r, 400, -32600, "id: expected a string or an integer");
        return -1;
    }
    v = omni_json_get(ep->root, "method");
    ep->method = omni_json_string(v);
    if (v != NULL && ep->method == NULL) {
        ep->id = NULL;
        omni_ep_refuse(r, 400, -32600, "method: expected a string");
        return -1;
    }
    ep->params = omni_json_get(ep->root, "params");
    if (ep->params != NULL && ep->params->type != OMNI_JSON_OBJECT) {
        omni_ep_error(ep, 400, -32602, "params: expected an object", NULL);
        return -1;
    }
    return 0;
}


/* The 2026-07-28 rules: headers and body agree. 0, or -1 after answering. */
static int omni_ep_check_modern(omni_req_t *r, omni_ep_t *ep)
{
    const char *hmethod = omni_req_header(r, "Mcp-Method");
    const char *hname = omni_req_header(r, "Mcp-Name");
    const omni_json_t *meta = omni_json_get(ep->params, "_meta");
    const char *pv = omni_json_string(
        omni_json_get(meta, "io.modelcontextprotocol/protocolVersion"));
    const char *name = NULL;
    char msg[200];

    if (ep->method == NULL) {
        return 0;
    }
    if (hmethod == NULL || strcmp(hmethod, ep->method) != 0) {
        snprintf(msg, sizeof(msg),
            "HeaderMismatch: Mcp-Method %s the body's method %.64s",
            hmethod ? "disagrees with" : "is missing; expected", ep->method);
        omni_ep_error(ep, 400, OMNI_EP_HEADER_MISMATCH, msg, NULL);
        return -1;
    }
    if (strncmp(ep->method, "notifications/", 14) != 0) {
        if (meta == NULL || pv == NULL
            || omni_json_get(meta, "io.modelcontextprotocol/clientCapabilities")
                   == NULL) {
            snprintf(msg, sizeof(msg),
                "params._meta: io.modelcontextprotocol/%s is required in "
                "2026-07-28",
                pv == NULL ? "protocolVersion" : "clientCapabilities");
            omni_ep_error(ep, 400, -32602, msg, NULL);
            return -1;
        }
        if (strcmp(pv, OMNI_MCP_MODERN) != 0) {
            omni_ep_error(ep, 400, OMNI_EP_HEADER_MISMATCH,
                "HeaderMismatch: params._meta "
                "io.modelcontextprotocol/protocolVersion disagrees with "
                "MCP-Protocol-Version",
                NULL);
            return -1;
        }
    }
    if (strcmp(ep->method, "tools/call") == 0
        || strcmp(ep->method, "prompts/get") == 0) {
        name = omni_json_string(omni_json_get(ep->params, "name"));
    } else if (strcmp(ep->method, "resources/read") == 0) {
        name = omni_json_string(omni_json_get(ep->params, "uri"));
    } else {
        return 0;
    }
    if (hname == NULL || name == NULL || strcmp(hname, name) != 0) {
        snprintf(msg, sizeof(msg), "HeaderMismatch: Mcp-Name %s the body's %s",
            hname ? "disagrees with" : "is missing for",
            strcmp(ep->method, "resources/read") == 0 ? "params.uri"
                                                      : "params.name");
        omni_ep_error(ep, 400, OMNI_EP_HEADER_MISMATCH, msg, NULL);
        return -1;
    }
    return 0;
}


/* --- Redis and Postgres, re-entering the handler ------------------------- */

static void omni_ep_redis_reply(redisAsyncContext *ac, void *reply, void *arg)
{
    omni_ep_t *ep = arg;
    redisReply *rep = reply;

    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        ep->redis_failed++;
    } else if (rep->type == REDIS_REPLY_STRING && ep->redis_str == NULL) {
        ep->redis_str = omni_arena_strndup(&ep->r->arena, rep->str, rep->len);
    }
    if (--ep->redis_pending == 0) {
        omni_http_resume(ep->r);
    }
}


static void omni_ep_gen_reply(redisAsyncContext *ac, void *reply, void *arg)
{
    omni_ep_t *ep = arg;
    redisReply *rep = reply;

    if (rep != NULL
        && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL)) {
        ep->gen = rep->type == REDIS_REPLY_NIL ? 0 : atoll(rep->str);
        ep->gen_read = 1;
    }
    if (--ep->redis_pending == 0) {
        omni_http_resume(ep->r);
    }
}


static int omni_ep_redis(omni_ep_t *ep, int argc, const char **argv)
{
    if (omni_redis_command_argv(
            omni_clients.redis, omni_ep_redis_reply, ep, argc, argv, NULL)
        != 0) {
        return -1;
    }
    ep->redis_pending++;
    return 0;
}


static void omni_ep_db_done(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_ep_t *ep = arg;

    ep->db_status = st;
    ep->res = res;
    omni_http_resume(ep->r);
}


static int omni_ep_query(
    omni_ep_t *ep, int stmt, int n, const char *const *values)
{
    return omni_db_query(omni_clients.db, stmt, n, values, omni_ep_db_done, ep)
                   == OMNI_DB_OK
               ? 0
               : -1;
}


static const char *omni_ep_role(omni_req_t *r)
{
    const char *role = omni_req_identity(r)->role;

    return role ? role : "";
}


/* --- methods -------------------------------------------------------------- */

/* what /mcp offers: tools (and logging, relayed); /mcp/<server> passes
 * its server's resources, prompts and completions through as well */
static const char *omni_ep_capabilities(omni_ep_t *ep)
{
    if (ep->scope == NULL || strcmp(ep->scope, OMNI_EP_BUILTIN) == 0) {
        return "{\"tools\":{\"listChanged\":true},\"logging\":{}}";
    }
    /* subscriptions need a session's GET stream: legacy only */
    return ep->modern ? "{\"tools\":{\"listChanged\":true},\"logging\":{},"
                        "\"resources\":{},\"prompts\":{},\"completions\":{}}"
                      : "{\"tools\":{\"listChanged\":true},\"logging\":{},"
                        "\"resources\":{\"subscribe\":true},\"prompts\":{},"
                        "\"completions\":{}}";
}


static void omni_ep_initialize(omni_ep_t *ep)
{
    char members[768];

    snprintf(members, sizeof(members),
        "\"protocolVersion\":\"%s\",\"capabilities\":%s,"
        "\"serverInfo\":{\"name\":\"omni\",\"title\":\"Omni MCP gateway\","
        "\"version\":\"1.0.0\"},\"instructions\":\"%s\"",
        ep->version, omni_ep_capabilities(ep),
        ep->scope ? "One MCP server behind Omni's gateway."
                  : "Tools of every MCP server you may use, named "
                    "<server>__<tool>.");
    omni_ep_result(ep, members);
}


static void omni_ep_discover(omni_ep_t *ep)
{
    char members[768];

    snprintf(members, sizeof(members),
        "\"ttlMs\":0,\"cacheScope\":\"public\","
        "\"supportedVersions\":" OMNI_EP_VERSIONS ",\"capabilities\":%s,"
        "\"serverInfo\":{\"name\":\"omni\",\"title\":\"Omni MCP gateway\","
        "\"version\":\"1.0.0\"}",
        omni_ep_capabilities(ep));
    omni_ep_result(ep, members);
}


/* Writes a definition with its name replaced. */
static void omni_ep_put_tool(
    struct evbuffer *b, const char *name, const omni_json_t *d)
{
    size_t i;

    evbuffer_add(b, "{\"name\":", 8);
    omni_json_put_string(b, name, strlen(name));
    for (i = 0; d != NULL && d->type == OMNI_JSON_OBJECT && i < d->u.obj.len;
         i++) {
        /* the catalog stores absent members as null, which clients
         * reject (annotations must be an object) */
        if (strcmp(d->u.obj.keys[i], "name") == 0
            || d->u.obj.values[i]->type == OMNI_JSON_NULL) {
            continue;
        }
        evbuffer_add(b, ",", 1);
        omni_json_put_string(b, d->u.obj.keys[i], strlen(d->u.obj.keys[i]));
        evbuffer_add(b, ":", 1);
        omni_json_write(b, d->u.obj.values[i]);
    }
    if (omni_json_get(d, "inputSchema") == NULL
        || omni_json_get(d, "inputSchema")->type == OMNI_JSON_NULL) {
        evbuffer_add(b, ",\"inputSchema\":{\"type\":\"object\"}", 32);
    }
    evbuffer_add(b, "}", 1);
}


static int omni_ep_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}


/* The built-in server's tools when the listing has them (every role's:
 * each operation is on the caller's own data), or NULL. */
static const omni_json_t *omni_ep_builtins(omni_req_t *r, omni_ep_t *ep)
{
    const char *text = omni_memory_tools_json();
    const omni_json_t *t;

    if (ep->scope != NULL && strcmp(ep->scope, OMNI_EP_BUILTIN) != 0) {
        return NULL;
    }
    t = omni_json_parse(&r->arena, text, strlen(text), NULL, NULL, 0);
    return t != NULL && t->type == OMNI_JSON_ARRAY ? t : NULL;
}


/* One page of the tools: the rows of the list query (res; NULL on
 * /mcp/omni) and the built-in server's, sorted by exposed name. */
static void omni_ep_tools_page(omni_req_t *r, omni_ep_t *ep)
{
    PGresult *res = ep->res;
    const char *cursor = omni_json_string(omni_json_get(ep->params, "cursor"));
    const char *role = omni_ep_role(r);
    const omni_json_t *builtins = omni_ep_builtins(r, ep), *def;
    char **names, cur[OMNI_MCP_CURSOR_LEN + 1];
    struct evbuffer *b;
    unsigned offset = 0, shown = 0, seen = 0;
    int n = res != NULL ? PQntuples(res) : 0, i, k, nb;

    if (omni_json_get(ep->params, "cursor") != NULL
        && (cursor == NULL
            || omni_mcp_cursor_check(role, cursor, &offset) != 0)) {
        omni_ep_error(ep, 200, -32602,
            "params.cursor: not a cursor this server gave out", NULL);
        return;
    }
    /* "<exposed name>\0<row>" sorted: a stable order whatever Postgres
     * returns, and duplicates (two tools mapping to one name) next to
     * each other so the second is left out */
    nb = builtins != NULL ? (int)builtins->u.arr.len : 0;
    names = omni_arena_alloc(&r->arena, sizeof(char *) * (n + nb + 1));
    b = omni_ep_head(ep);
    if (names == NULL || b == NULL) {
        omni_ep_error(ep, 200, -32603, "out of memory", NULL);
        if (b != NULL) {
            evbuffer_free(b);
        }
        return;
    }
    k = 0;
    for (i = 0; i < n; i++) {
        char name[OMNI_MCP_NAME_MAX + 1];
        const char *id;

        if (omni_mcp_state_down(PQgetvalue(res, i, 0), &id)
            || strcmp(PQgetvalue(res, i, 0), OMNI_EP_BUILTIN) == 0) {
            /* (a server registered as "omni" before the name was
             * reserved is hidden by the built-in one) */
            continue;
        }
        if (ep->scope != NULL) {
            snprintf(name, sizeof(name), "%s", PQgetvalue(res, i, 1));
        } else {
            omni_mcp_tool_name(
                PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), name);
        }
        names[k] = omni_arena_alloc(&r->arena, OMNI_MCP_NAME_MAX + 16);
        if (names[k] == NULL) {
            continue;
        }
        snprintf(names[k], OMNI_MCP_NAME_MAX + 16, "%s%c%d", name, '\0', i);
        k++;
    }
    /* the built-in server's are rows n.. */
    for (i = 0; i < nb; i++) {
        char name[OMNI_MCP_NAME_MAX + 1];
        const char *tool =
            omni_json_string(omni_json_get(builtins->u.arr.items[i], "name"));

        names[k] = omni_arena_alloc(&r->arena, OMNI_MCP_NAME_MAX + 16);
        if (tool == NULL || names[k] == NULL) {
            continue;
        }
        if (ep->scope != NULL) {
            snprintf(name, sizeof(name), "%s", tool);
        } else {
            omni_mcp_tool_name(OMNI_EP_BUILTIN, tool, name);
        }
        snprintf(names[k], OMNI_MCP_NAME_MAX + 16, "%s%c%d", name, '\0', n + i);
        k++;
    }
    qsort(names, k, sizeof(char *), omni_ep_name_cmp);
    evbuffer_add(b, ",\"result\":{", 11);
    if (ep->modern) {
        /* the list depends on the caller's role */
        evbuffer_add_printf(b, "\"resultType\":\"complete\",\"ttlMs\":0,"
                               "\"cacheScope\":\"private\",");
    }
    evbuffer_add(b, "\"tools\":[", 9);
    for (i = 0; i < k; i++) {
        int row = atoi(names[i] + strlen(names[i]) + 1);

        if (i > 0 && strcmp(names[i], names[i - 1]) == 0) {
            continue;
        }
        if (seen++ < offset) {
            continue;
        }
        if (shown == OMNI_EP_PAGE) {
            break;
        }
        if (shown++) {
            evbuffer_add(b, ",", 1);
        }
        if (row >= n) {
            def = builtins->u.arr.items[row - n];
        } else {
            def = omni_json_parse(&r->arena, PQgetvalue(res, row, 2),
                (size_t)PQgetlength(res, row, 2), NULL, NULL, 0);
        }
        omni_ep_put_tool(b, names[i], def);
    }
    evbuffer_add(b, "]", 1);
    if (i < k) {
        omni_mcp_cursor_make(role, offset + shown, cur);
        evbuffer_add_printf(b, ",\"nextCursor\":\"%s\"", cur);
    }
    evbuffer_add(b, "}}", 2);
    omni_ep_send(ep, 200, b);
}


/* Slot i of ep awaits the client's answer. */
static int omni_ep_awaits(const omni_ep_t *ep, int i)
{
    return ep->asks[i].ask != NULL
           || (ep->asks[i].key != NULL && ep->asks[i].answer == NULL);
}


/* The capability a request of the upstream's needs, or 0. */
static int omni_ep_ask_cap(const char *method)
{
    return strcmp(method, "sampling/createMessage") == 0 ? OMNI_EP_SAMPLING
           : strcmp(method, "elicitation/create") == 0   ? OMNI_EP_ELICITATION
           : strcmp(method, "roots/list") == 0           ? OMNI_EP_ROOTS
                                                         : 0;
}


/* The upstream asks the client (sampling, elicitation, roots) during a
 * legacy call: relayed on the call's stream under an id of ours, when the
 * client declared the capability and can be reached; otherwise left to
 * client.c, which answers the upstream -32601. */
static void omni_ep_ask(
    omni_ep_t *ep, const char *method, const omni_json_t *params)
{
    int cap = omni_ep_ask_cap(method), i;
    struct evbuffer *b;
    char id[40];

    if (cap == 0 || !(ep->caps & cap) || !ep->live || ep->gone) {
        return;
    }
    for (i = 0; i < OMNI_EP_MAX_ASKS
                && (ep->asks[i].ask != NULL || ep->asks[i].key != NULL);
         i++) {
    }
    if (i == OMNI_EP_MAX_ASKS
        || omni_random_token("", 18, id, sizeof(id)) != 0) {
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        return;
    }
    ep->asks[i].ask = omni_mcp_ask_take();
    if (ep->asks[i].ask == NULL) {
        evbuffer_free(b);
        return;
    }
    snprintf(ep->asks[i].id, sizeof(ep->asks[i].id), "omni-%s", id);
    evbuffer_add_printf(b,
        "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"%s\",\"params\":",
        ep->asks[i].id, method);
    if (params != NULL && params->type == OMNI_JSON_OBJECT) {
        omni_json_write(b, params);
    } else {
        evbuffer_add(b, "{}", 2);
    }
    evbuffer_add(b, "}", 1);
    omni_ep_stream(ep);
    omni_ep_event(ep, b);
    evbuffer_free(b);
}


/* The client's answer (text: 'r' or 'e', then the result or error
 * object) to the relayed request in slot i goes to the upstream. */
static void omni_ep_ask_answer(omni_ep_t *ep, int i, const char *text)
{
    omni_mcp_ask_t *a = ep->asks[i].ask;
    int j;

    if (ep->asks[i].key != NULL) {
        /* an input request's: the call is made again once all are in */
        ep->asks[i].answer =
            omni_arena_strndup(&ep->r->arena, text, strlen(text));
        if (ep->asks[i].answer == NULL) {
            ep->asks[i].answer =
                "e{\"code\":-32603,\"message\":\"out of memory\"}";
        }
        for (j = 0; j < OMNI_EP_MAX_ASKS && !omni_ep_awaits(ep, j); j++) {
        }
        if (j == OMNI_EP_MAX_ASKS) {
            event_active(ep->input_timer, EV_TIMEOUT, 0);
        }
        return;
    }
    ep->asks[i].ask = NULL;
    if (text[0] == 'r') {
        omni_mcp_ask_answer(a, text + 1, NULL);
    } else {
        omni_mcp_ask_answer(a, NULL, text + 1);
    }
}


/* An upstream's notification during a call: progress (with the client's
 * token) and log messages go to the client on the request's stream. */
static void omni_ep_note(void *arg, const omni_json_t *note)
{
    omni_ep_t *ep = arg;
    const char *method = omni_json_string(omni_json_get(note, "method"));
    const omni_json_t *params = omni_json_get(note, "params");
    const char *accept = omni_req_header(ep->r, "Accept");
    struct evbuffer *b;
    size_t i;
    int first = 1;

    if (method == NULL || ep->gone || accept == NULL
        || strstr(accept, "text/event-stream") == NULL) {
        return;
    }
    if (omni_json_get(note, "id") != NULL) {
        omni_ep_ask(ep, method, params);
        return;
    }
    if (strcmp(method, "notifications/progress") != 0
        && strcmp(method, "notifications/message") != 0) {
        return;
    }
    if (strcmp(method, "notifications/progress") == 0
        && ep->progress_token == NULL) {
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(
        b, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":{", method);
    if (strcmp(method, "notifications/progress") == 0) {
        evbuffer_add(b, "\"progressToken\":", 16);
        omni_json_write(b, ep->progress_token);
        first = 0;
    }
    for (i = 0; params != NULL && params->type == OMNI_JSON_OBJECT
                && i < params->u.obj.len;
         i++) {
        if (strcmp(params->u.obj.keys[i], "progressToken") == 0) {
            continue;
        }
        if (!first) {
            evbuffer_add(b, ",", 1);
        }
        first = 0;
        omni_json_put_string(
            b, params->u.obj.keys[i], strlen(params->u.obj.keys[i]));
        evbuffer_add(b, ":", 1);
        omni_json_write(b, params->u.obj.values[i]);
    }
    evbuffer_add(b, "}}", 2);
    omni_ep_stream(ep);
    omni_ep_event(ep, b);
    evbuffer_free(b);
}


static void omni_ep_closed(void *arg)
{
    omni_req_t *r = arg;
    omni_ep_t *ep = r->data;

    ep->gone = 1;
    if (r->state == OMNI_EP_CALLING && ep->call != NULL) {
        /* re-enters the handler, which answers (to nobody) */
        omni_mcp_call_cancel(ep->call);
    } else if (r->state == OMNI_EP_INPUT) {
        event_active(ep->input_timer, EV_TIMEOUT, 0);
    }
}


/* notifications/cancelled for a call: it ends without an answer */
static void omni_ep_stop(omni_ep_t *ep)
{
    if (ep->r->state == OMNI_EP_CALLING) {
        omni_mcp_call_cancel(ep->call);
    } else if (ep->r->state == OMNI_EP_INPUT) {
        ep->gone = 1;
        event_active(ep->input_timer, EV_TIMEOUT, 0);
    }
}


static void omni_ep_call_text_error(omni_ep_t *ep, const char *message)
{
    struct evbuffer *b = omni_ep_head(ep);

    if (b != NULL) {
        evbuffer_add_printf(b,
            ",\"result\":{%s\"content\":[{\"type\":\"text\","
            "\"text\":",
            ep->modern ? "\"resultType\":\"complete\"," : "");
        omni_json_put_string(b, message, strlen(message));
        evbuffer_add(b, "}],\"isError\":true}}", 19);
    }
    omni_ep_send(ep, 200, b);
}


static void omni_ep_resolve(omni_req_t *r, omni_ep_t *ep);
static void omni_ep_call_answer(omni_ep_t *ep, const omni_mcp_outcome_t *out);


static int omni_ep_input_required(const omni_json_t *result)
{
    const char *type = omni_json_string(omni_json_get(result, "resultType"));

    return type != NULL && strcmp(type, "input_required") == 0;
}


static void omni_ep_input_woken(evutil_socket_t fd, short what, void *arg)
{
    omni_ep_t *ep = arg;

    omni_http_resume(ep->r);
}


/* A 2026-07-28 upstream's InputRequiredResult for a legacy session: its
 * inputRequests go to the client on the call's stream under ids of ours,
 * as an upstream's requests during a call do, and once every answer is in
 * (here, or through Redis from another process) the call is made again
 * with them as inputResponses, and the requestState. Nothing is kept but
 * in this request. -1 when the session cannot be asked (the client then
 * gets an error naming the result). */
static int omni_ep_input_relay(omni_ep_t *ep, const omni_json_t *result)
{
    const omni_json_t *asks = omni_json_get(result, "inputRequests");
    const omni_json_t *state = omni_json_get(result, "requestState");
    struct timeval tv = {0, 0};
    const char *method;
    struct evbuffer *b;
    char id[40];
    size_t i, n;
    int k = 0;

    n = asks != NULL && asks->type == OMNI_JSON_OBJECT ? asks->u.obj.len : 0;
    if (!ep->live || ep->gone || ep->rounds >= OMNI_EP_MAX_ROUNDS
        || n > OMNI_EP_MAX_ASKS
        || (asks != NULL && asks->type != OMNI_JSON_OBJECT)
        || (state != NULL && state->type != OMNI_JSON_STRING)) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        method =
            omni_json_string(omni_json_get(asks->u.obj.values[i], "method"));
        if (method == NULL || !(ep->caps & omni_ep_ask_cap(method))) {
            return -1;
        }
    }
    if (ep->input_timer == NULL) {
        ep->input_timer =
            evtimer_new(omni_clients.base, omni_ep_input_woken, ep);
    }
    b = evbuffer_new();
    if (ep->input_timer == NULL || b == NULL) {
        if (b != NULL) {
            evbuffer_free(b);
        }
        return -1;
    }
    ep->input_state = NULL;
    if (state != NULL) {
        evbuffer_add(b, ",\"requestState\":", 16);
        omni_json_write(b, state);
        ep->input_state = omni_arena_strndup(&ep->r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    for (i = 0; i < n; i++, k++) {
        while (k < OMNI_EP_MAX_ASKS && ep->asks[k].ask != NULL) {
            k++; /* an upstream's request (a legacy one's) awaits */
        }
        if (k == OMNI_EP_MAX_ASKS
            || omni_random_token("", 18, id, sizeof(id)) != 0) {
            break;
        }
        snprintf(ep->asks[k].id, sizeof(ep->asks[k].id), "omni-%s", id);
        ep->asks[k].key = asks->u.obj.keys[i];
        ep->asks[k].answer = NULL;
        evbuffer_add_printf(b,
            "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":", ep->asks[k].id);
        omni_json_write(b, omni_json_get(asks->u.obj.values[i], "method"));
        evbuffer_add(b, ",\"params\":", 10);
        if (omni_json_get(asks->u.obj.values[i], "params") != NULL) {
            omni_json_write(b, omni_json_get(asks->u.obj.values[i], "params"));
        } else {
            evbuffer_add(b, "{}", 2);
        }
        evbuffer_add(b, "}", 1);
        omni_ep_stream(ep);
        omni_ep_event(ep, b);
    }
    evbuffer_free(b);
    if (i < n) {
        /* not all could be asked: an error below, nothing left waiting */
        for (k = 0; k < OMNI_EP_MAX_ASKS; k++) {
            ep->asks[k].key = NULL;
        }
        return -1;
    }
    ep->rounds++;
    ep->r->state = OMNI_EP_INPUT;
    tv.tv_sec = n > 0 ? OMNI_EP_INPUT_WAIT_S : 0;
    evtimer_add(ep->input_timer, &tv);
    return 0;
}


/* INPUT, re-entered when every answer is in, the wait is over, or the
 * client left or cancelled: the call is made again with the answers. */
static void omni_ep_input_retry(omni_req_t *r, omni_ep_t *ep)
{
    const omni_json_t *args = omni_json_get(ep->params, "arguments");
    const omni_mcp_outcome_t *out;
    const char *caps, *input, *own;
    struct evbuffer *b;
    char msg[200];
    int i, first = 1;

    event_del(ep->input_timer);
    if (ep->gone) {
        omni_ep_stream(ep);
        omni_ep_send(ep, 200, NULL);
        return;
    }
    for (i = 0; i < OMNI_EP_MAX_ASKS; i++) {
        if (ep->asks[i].key == NULL) {
            continue;
        }
        if (ep->asks[i].answer == NULL || ep->asks[i].answer[0] != 'r') {
            snprintf(msg, sizeof(msg),
                "the MCP server's request %.64s (of its input_required "
                "result) was %s",
                ep->asks[i].key,
                ep->asks[i].answer == NULL ? "not answered in time"
                                           : "answered with an error");
            omni_ep_error(ep, 200, -32603, msg, NULL);
            return;
        }
    }
    b = evbuffer_new();
    if (b == NULL) {
        omni_ep_error(ep, 200, -32603, "out of memory", NULL);
        return;
    }
    for (i = 0; i < OMNI_EP_MAX_ASKS; i++) {
        if (ep->asks[i].key == NULL) {
            continue;
        }
        evbuffer_add_printf(b, "%s", first ? "\"inputResponses\":{" : ",");
        omni_json_put_string(b, ep->asks[i].key, strlen(ep->asks[i].key));
        evbuffer_add_printf(b, ":%s", ep->asks[i].answer + 1);
        ep->asks[i].key = NULL;
        first = 0;
    }
    /* input_state opens with a comma */
    evbuffer_add_printf(b, "%s%s", first ? "" : "}",
        ep->input_state == NULL ? ""
        : first                 ? ep->input_state + 1
                                : ep->input_state);
    input = omni_arena_strndup(&r->arena, (const char *)evbuffer_pullup(b, -1),
        evbuffer_get_length(b));
    evbuffer_free(b);
    if (omni_ep_input(ep, 1, &caps, &own) != 0) {
        return;
    }
    ep->call =
        omni_mcp_call_new(r, ep->server, ep->tool, args, omni_ep_note, ep);
    if (input == NULL || ep->call == NULL
        || omni_mcp_call_input(ep->call, caps, input) != 0) {
        omni_ep_error(ep, 200, -32603, "out of memory", NULL);
        return;
    }
    r->state = OMNI_EP_CALLING;
    if (omni_mcp_call_step(r, ep->call, &out)) {
        omni_ep_call_answer(ep, out);
    }
}


static void omni_ep_call_answer(omni_ep_t *ep, const omni_mcp_outcome_t *out)
{
    struct evbuffer *b;
    char msg[400];

    switch (out->status) {

    case 200:
        if (!ep->modern && omni_ep_input_required(out->result)
            && omni_ep_input_relay(ep, out->result) == 0) {
            return;
        }
        ep->bind[0] = out->server_id;
        ep->bind[1] = "tools/call";
        ep->bind[2] = ep->tool;
        omni_ep_result_json(ep, out->result);
        return;

    case 400:
        /* a requestState that did not open: nothing was sent */
        omni_ep_error(ep, 200, -32602, out->message, NULL);
        return;

    case 404:
        if (ep->direct && !ep->gone) {
            /* not that literal tool: maybe a hashed name */
            omni_ep_unlive(ep);
            omni_ep_resolve(ep->r, ep);
            return;
        }
        /* fall through */
    case 403:
        snprintf(msg, sizeof(msg), "Unknown tool: %.128s",
            omni_json_string(omni_json_get(ep->params, "name")));
        omni_ep_error(ep, 200, -32602, msg, NULL);
        return;

    case 499:
        /* a cancelled request gets no response: the stream just ends */
        omni_ep_stream(ep);
        omni_ep_send(ep, 200, NULL);
        return;

    default:
        if (out->rpc_error != NULL) {
            b = omni_ep_head(ep);
            if (b != NULL) {
                evbuffer_add(b, ",\"error\":", 9);
                omni_json_write(b, out->rpc_error);
                evbuffer_add(b, "}", 1);
            }
            omni_ep_send(ep, 200, b);
            return;
        }
        if (strcmp(out->code, "database") == 0) {
            omni_ep_error(
                ep, 200, -32603, "the database is unavailable; retry", NULL);
            return;
        }
        omni_ep_call_text_error(ep, out->message);
        return;
    }
}


/* Starts tools/call once the name is resolved to a server's tool. */
static void omni_ep_call_start(omni_req_t *r, omni_ep_t *ep)
{
    const omni_json_t *args = omni_json_get(ep->params, "arguments");
    const omni_json_t *meta = omni_json_get(ep->params, "_meta");
    const omni_mcp_outcome_t *out;
    const char *caps, *input, *state;
    struct evbuffer *b;

    if (ep->gone) {
        /* the client left while the name was resolved: nothing to call */
        omni_ep_send(ep, 200, NULL);
        return;
    }
    if (args != NULL && args->type != OMNI_JSON_OBJECT) {
        omni_ep_error(
            ep, 200, -32602, "params.arguments: expected an object", NULL);
        return;
    }
    if (omni_ep_input(ep, 1, &caps, &input) != 0) {
        return;
    }
    ep->progress_token = omni_json_get(meta, "progressToken");
    ep->call =
        omni_mcp_call_new(r, ep->server, ep->tool, args, omni_ep_note, ep);
    if (ep->call == NULL || omni_mcp_call_input(ep->call, caps, input) != 0) {
        omni_ep_error(ep, 200, -32603, "out of memory", NULL);
        return;
    }
    if (ep->gen_read) {
        omni_mcp_call_gen(ep->call, ep->gen);
    }
    if (ep->modern) {
        state = omni_json_string(omni_json_get(ep->params, "requestState"));
        if (state != NULL) {
            omni_mcp_call_state(ep->call, state);
        }
    }
    if (!ep->modern && ep->id != NULL && ep->session[0]
        && omni_ep_live.count < OMNI_EP_MAX_LIVE) {
        b = evbuffer_new();
        if (b != NULL) {
            omni_json_write(b, ep->id);
            snprintf(ep->id_text, sizeof(ep->id_text), "%.*s",
                (int)evbuffer_get_length(b),
                (const char *)evbuffer_pullup(b, -1));
            evbuffer_free(b);
            ep->seq = ++omni_ep_live.seq;
            ep->next = omni_ep_live.head;
            omni_ep_live.head = ep;
            omni_ep_live.count++;
            ep->live = 1;
        }
    }
    omni_req_on_close(r, omni_ep_closed, r);
    r->state = OMNI_EP_CALLING;
    if (omni_mcp_call_step(r, ep->call, &out)) {
        omni_ep_call_answer(ep, out);
    }
}


/* The built-in tool's end (memory.h), from the loop: its REST answer is
 * kept for the handler, re-entered in BUILTIN_CALLED. */
static void omni_ep_builtin_done(
    void *arg, int status, const char *json, size_t len)
{
    omni_ep_t *ep = arg;

    ep->builtin_status = status;
    ep->builtin_json = omni_arena_strndup(&ep->r->arena, json, len);
    ep->builtin_len = ep->builtin_json != NULL ? len : 0;
    omni_http_resume(ep->r);
}


/* Calls tool of the built-in server as the caller, whose id owns what it
 * reads and writes. */
static void omni_ep_builtin_call(omni_req_t *r, omni_ep_t *ep, const char *tool)
{
    char msg[200];

    r->state = OMNI_EP_BUILTIN_CALLED;
    if (omni_memory_tool_call(omni_req_identity(r), tool,
            omni_json_get(ep->params, "arguments"), omni_ep_builtin_done, ep)
        != 0) {
        snprintf(msg, sizeof(msg), "Unknown tool: %.128s",
            omni_json_string(omni_json_get(ep->params, "name")));
        omni_ep_error(ep, 200, -32602, msg, NULL);
    }
}


/* The REST answer as a CallToolResult: the body as text (and as
 * structuredContent when an object); a 4xx or 5xx is a tool error whose
 * text names the field, as REST does. */
static void omni_ep_builtin_answer(omni_ep_t *ep)
{
    const char *json = ep->builtin_json;
    struct evbuffer *b;

    if (json == NULL) {
        omni_ep_error(ep, 200, -32603, "out of memory", NULL);
        return;
    }
    b = omni_ep_head(ep);
    if (b == NULL) {
        omni_ep_send(ep, 200, NULL);
        return;
    }
    evbuffer_add_printf(b,
        ",\"result\":{%s\"content\":[{\"type\":\"text\","
        "\"text\":",
        ep->modern ? "\"resultType\":\"complete\"," : "");
    omni_json_put_string(b, json, ep->builtin_len);
    evbuffer_add(b, "}]", 2);
    if (ep->builtin_len > 0 && json[0] == '{') {
        evbuffer_add(b, ",\"structuredContent\":", 21);
        evbuffer_add(b, json, ep->builtin_len);
    }
    evbuffer_add_printf(
        b, ",\"isError\":%s}}", ep->builtin_status >= 400 ? "true" : "false");
    omni_ep_send(ep, 200, b);
}


static void omni_ep_resolved(omni_req_t *r, omni_ep_t *ep)
{
    PGresult *res = ep->res;
    const char *want = omni_json_string(omni_json_get(ep->params, "name"));
    char name[OMNI_MCP_NAME_MAX + 1], msg[200];
    int i, n;

    if (ep->db_status != OMNI_DB_OK) {
        omni_ep_error(
            ep, 200, -32603, "the database is unavailable; retry", NULL);
        return;
    }
    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        omni_mcp_tool_name(ep->server, PQgetvalue(res, i, 0), name);
        if (strcmp(name, want) == 0) {
            ep->tool = omni_arena_strndup(&r->arena, PQgetvalue(res, i, 0),
                (size_t)PQgetlength(res, i, 0));
            omni_ep_call_start(r, ep);
            return;
        }
    }
    snprintf(msg, sizeof(msg), "Unknown tool: %.128s", want);
    omni_ep_error(ep, 200, -32602, msg, NULL);
}


/* Polls Redis for notifications/cancelled another process stored for a
 * call this one runs. */
static void omni_ep_polled(redisAsyncContext *ac, void *reply, void *arg)
{
    redisReply *rep = reply;
    omni_ep_t *ep;
    const char *argv[2];
    size_t i;
    int k;

    omni_ep_live.polling = 0;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (i = 0; i < rep->elements && i < (size_t)omni_ep_live.npolled; i++) {
        if (rep->element[i]->type != REDIS_REPLY_STRING
            || rep->element[i]->len == 0) {
            continue;
        }
        k = omni_ep_live.polled[i].ask;
        for (ep = omni_ep_live.head; ep != NULL; ep = ep->next) {
            if (ep->seq != omni_ep_live.polled[i].seq) {
                continue;
            }
            if (k >= 0) {
                /* the answer is the user's: not kept in Redis longer */
                if (omni_ep_awaits(ep, k)) {
                    omni_ep_ask_answer(ep, k, rep->element[i]->str);
                }
                argv[0] = "DEL";
                argv[1] = omni_ep_live.keys[i];
                omni_redis_command_argv(
                    omni_clients.redis, NULL, NULL, 2, argv, NULL);
                break;
            }
            omni_ep_unlive(ep);
            omni_ep_stop(ep);
            break;
        }
    }
}


static void omni_ep_poll(evutil_socket_t fd, short what, void *arg)
{
    const char *argv[OMNI_EP_MAX_POLLED + 1];
    char(*keys)[192] = omni_ep_live.keys;
    omni_ep_t *ep;
    int n = 0, i;

    if (omni_ep_live.head == NULL || omni_ep_live.polling) {
        return;
    }
    argv[n] = "MGET";
    for (ep = omni_ep_live.head; ep != NULL && n < OMNI_EP_MAX_POLLED;
         ep = ep->next) {
        for (i = -1; i < OMNI_EP_MAX_ASKS && n < OMNI_EP_MAX_POLLED; i++) {
            if (i < 0) {
                snprintf(keys[n], sizeof(keys[n]), "omni:mcp:cancel:%s:%s",
                    ep->session, ep->id_text);
            } else if (omni_ep_awaits(ep, i)) {
                snprintf(keys[n], sizeof(keys[n]), "omni:mcp:answer:%s:%s",
                    ep->session, ep->asks[i].id);
            } else {
                continue;
            }
            omni_ep_live.polled[n].seq = ep->seq;
            omni_ep_live.polled[n].ask = i;
            argv[n + 1] = keys[n];
            n++;
        }
    }
    omni_ep_live.npolled = n;
    if (omni_redis_command_argv(
            omni_clients.redis, omni_ep_polled, NULL, n + 1, argv, NULL)
        == 0) {
        omni_ep_live.polling = 1;
    }
}


/* notifications/cancelled: the call here is stopped at once; one
 * elsewhere learns it from Redis. 0 when a Redis write is under way. */
static int omni_ep_cancel(omni_ep_t *ep)
{
    const omni_json_t *rid = omni_json_get(ep->params, "requestId");
    struct evbuffer *b;
    const char *argv[5];
    char key[192], text[96];
    omni_ep_t *e;

    if (rid == NULL || ep->session[0] == '\0') {
        return -1;
    }
    b = evbuffer_new();
    if (b == NULL) {
        return -1;
    }
    omni_json_write(b, rid);
    snprintf(text, sizeof(text), "%.*s", (int)evbuffer_get_length(b),
        (const char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    for (e = omni_ep_live.head; e != NULL; e = e->next) {
        if (strcmp(e->session, ep->session) == 0
            && strcmp(e->id_text, text) == 0) {
            omni_ep_unlive(e);
            omni_ep_stop(e);
            return -1;
        }
    }
    snprintf(key, sizeof(key), "omni:mcp:cancel:%s:%s", ep->session, text);
    argv[0] = "SET";
    argv[1] = key;
    argv[2] = "1";
    argv[3] = "EX";
    argv[4] = "60";
    return omni_ep_redis(ep, 5, argv);
}


/* The client answers a request relayed to it: to the upstream from here
 * when this process runs the call, else stored for the process that
 * does (omni_ep_poll). -1 when there is nothing to wait for. */
static int omni_ep_answer_in(omni_ep_t *ep)
{
    const char *id = omni_json_string(ep->id);
    const omni_json_t *result = omni_json_get(ep->root, "result");
    const omni_json_t *error = omni_json_get(ep->root, "error");
    struct evbuffer *b;
    const char *argv[5];
    char key[192], *text;
    omni_ep_t *e;
    int i;

    if (id == NULL || strncmp(id, "omni-", 5) != 0 || strlen(id) >= 48
        || ep->session[0] == '\0'
        || (result == NULL || result->type != OMNI_JSON_OBJECT)
               == (error == NULL || error->type != OMNI_JSON_OBJECT)) {
        return -1;
    }
    b = evbuffer_new();
    if (b == NULL) {
        return -1;
    }
    evbuffer_add(b, result != NULL ? "r" : "e", 1);
    omni_json_write(b, result != NULL ? result : error);
    text = omni_arena_strndup(&ep->r->arena,
        (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    if (text == NULL) {
        return -1;
    }
    for (e = omni_ep_live.head; e != NULL; e = e->next) {
        if (strcmp(e->session, ep->session) != 0) {
            continue;
        }
        for (i = 0; i < OMNI_EP_MAX_ASKS; i++) {
            if (omni_ep_awaits(e, i) && strcmp(e->asks[i].id, id) == 0) {
                omni_ep_ask_answer(e, i, text);
                return -1;
            }
        }
    }
    snprintf(key, sizeof(key), "omni:mcp:answer:%s:%s", ep->session, id);
    argv[0] = "SET";
    argv[1] = key;
    argv[2] = text;
    argv[3] = "EX";
    argv[4] = "120";
    return omni_ep_redis(ep, 5, argv);
}


/* resources and prompts of /mcp/<server>: passed to that server as they
 * are (the aggregated /mcp offers tools only). */
static int omni_ep_forwarded_method(const char *m)
{
    return strcmp(m, "resources/list") == 0
           || strcmp(m, "resources/subscribe") == 0
           || strcmp(m, "resources/templates/list") == 0
           || strcmp(m, "resources/read") == 0 || strcmp(m, "prompts/list") == 0
           || strcmp(m, "prompts/get") == 0
           || strcmp(m, "completion/complete") == 0;
}


static void omni_ep_forward_replied(void *arg, const omni_mcp_reply_t *rep)
{
    omni_ep_t *ep = arg;

    ep->rpc = NULL;
    ep->rep = *rep;
    omni_http_resume(ep->r);
}


static void omni_ep_forward_closed(void *arg)
{
    omni_req_t *r = arg;
    omni_ep_t *ep = r->data;

    ep->gone = 1;
    if (ep->rpc != NULL) {
        omni_mcp_rpc_cancel(ep->rpc);
        ep->rpc = NULL;
        memset(&ep->rep, 0, sizeof(ep->rep));
        ep->rep.failure = "the client went away";
        omni_http_resume(r);
    }
}


/* The scope's server is loaded: sends the method on. */
static void omni_ep_forward(omni_req_t *r, omni_ep_t *ep)
{
    PGresult *res = ep->res;
    struct evbuffer *b;
    const char *name = NULL, *params, *caps, *input, *bound[4], *state;
    const char *wrapped =
        omni_json_string(omni_json_get(ep->params, "requestState"));
    char msg[200];
    size_t i;
    int first = 1, rc = 0;

    if (ep->db_status != OMNI_DB_OK) {
        omni_ep_error(
            ep, 200, -32603, "the database is unavailable; retry", NULL);
        return;
    }
    if (PQntuples(res) == 0
        || PQgetvalue(res, 0, OMNI_MCP_UPSTREAM_NCOLS)[0] != 't') {
        snprintf(
            msg, sizeof(msg), "no MCP server %.64s for your role", ep->scope);
        omni_ep_error(ep, 200, -32602, msg, NULL);
        return;
    }
    /* params go on whole: a retry's inputResponses too, and the
     * upstream's own requestState from the wrapped one */
    if (omni_ep_input(ep, 0, &caps, &input) != 0) {
        return;
    }
    if (omni_mcp_upstream_parse(&r->arena, res, 0, &ep->u) != 0) {
        omni_ep_error(ep, 200, -32603, "the server cannot be reached", NULL);
        return;
    }
    if (strcmp(ep->method, "prompts/get") == 0) {
        name = omni_json_string(omni_json_get(ep->params, "name"));
    } else if (strcmp(ep->method, "resources/read") == 0) {
        name = omni_json_string(omni_json_get(ep->params, "uri"));
    }
    ep->bind[0] = ep->u.id;
    ep->bind[1] = ep->method;
    ep->bind[2] = name ? name : "";
    if (wrapped != NULL) {
        bound[0] = omni_req_identity(r)->id ? omni_req_identity(r)->id : "";
        memcpy(bound + 1, ep->bind, sizeof(ep->bind));
        rc = omni_mcp_state_open(&r->arena, bound, wrapped, time(NULL), &state);
    }
    if (omni_json_get(ep->params, "requestState") != NULL && wrapped == NULL) {
        rc = -1;
    }
    if (rc == -2) {
        snprintf(msg, sizeof(msg),
            "params.requestState: expired (a state is good for %d seconds); "
            "send the request again without it",
            OMNI_MCP_STATE_TTL);
    }
    if (rc != 0) {
        omni_ep_error(ep, 200, -32602,
            rc == -2 ? msg
                     : "params.requestState: not a state this server gave you "
                       "for this request (another user's, another request's, "
                       "or altered)",
            NULL);
        return;
    }
    ep->u.target.caps = caps;
    if (!ep->u.enabled
        || !omni_breaker_allow(&ep->u.breaker, omni_mcp_now_ms(), NULL)) {
        snprintf(msg, sizeof(msg), "MCP server %s is unavailable", ep->scope);
        omni_ep_error(ep, 200, -32603, msg, NULL);
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        omni_ep_error(ep, 200, -32603, "out of memory", NULL);
        return;
    }
    evbuffer_add(b, "{", 1);
    for (i = 0; ep->params != NULL && i < ep->params->u.obj.len; i++) {
        if (strcmp(ep->params->u.obj.keys[i], "_meta") == 0) {
            continue;
        }
        if (!first) {
            evbuffer_add(b, ",", 1);
        }
        first = 0;
        omni_json_put_string(
            b, ep->params->u.obj.keys[i], strlen(ep->params->u.obj.keys[i]));
        evbuffer_add(b, ":", 1);
        if (wrapped != NULL
            && strcmp(ep->params->u.obj.keys[i], "requestState") == 0) {
            omni_json_put_string(b, state, strlen(state));
            continue;
        }
        omni_json_write(b, ep->params->u.obj.values[i]);
    }
    evbuffer_add(b, "}", 1);
    params = omni_arena_strndup(&r->arena, (const char *)evbuffer_pullup(b, -1),
        evbuffer_get_length(b));
    evbuffer_free(b);
    r->state = OMNI_EP_FORWARDED;
    ep->rpc = omni_mcp_rpc(&ep->u.target, ep->method, name, params, 1,
        &r->arena, NULL, omni_ep_forward_replied, ep);
    if (ep->rpc == NULL) {
        omni_ep_error(ep, 200, -32603, "cannot send to the server", NULL);
        return;
    }
    omni_req_on_close(r, omni_ep_forward_closed, r);
}


static void omni_ep_forward_answer(omni_ep_t *ep)
{
    struct evbuffer *b;
    char msg[300];

    if (ep->gone) {
        omni_ep_send(ep, 200, NULL);
        return;
    }
    if (ep->rep.failure != NULL) {
        snprintf(
            msg, sizeof(msg), "MCP server %s: %s", ep->scope, ep->rep.failure);
        omni_ep_error(ep, 200, -32603, msg, NULL);
        return;
    }
    if (ep->rep.error != NULL) {
        b = omni_ep_head(ep);
        if (b != NULL) {
            evbuffer_add(b, ",\"error\":", 9);
            omni_json_write(b, ep->rep.error);
            evbuffer_add(b, "}", 1);
        }
        omni_ep_send(ep, 200, b);
        return;
    }
    omni_ep_result_json(ep, ep->rep.result);
}


/* omni:mcp:sub:<server>:<uri>, the sessions subscribed to a resource */
static void omni_ep_sub_key(
    char *key, size_t n, const char *scope, const char *uri)
{
    snprintf(key, n, "omni:mcp:sub:%s:%s", scope, uri);
}


/* The upstream took the subscription: this session is told of changes
 * from now on, through this process's watch of the server. */
static void omni_ep_subscribe(omni_req_t *r, omni_ep_t *ep)
{
    const char *uri = omni_json_string(omni_json_get(ep->params, "uri"));
    char key[OMNI_EP_MAX_URI + 64];
    const char *argv[4];

    omni_mcp_relay_watch(ep->scope, &ep->u.target);
    omni_ep_sub_key(key, sizeof(key), ep->scope, uri);
    argv[0] = "SADD";
    argv[1] = key;
    argv[2] = ep->session;
    r->state = OMNI_EP_SUBSCRIBED;
    if (omni_ep_redis(ep, 3, argv) != 0) {
        omni_ep_error(ep, 200, -32603,
            "subscriptions are unavailable (Redis); retry", NULL);
        return;
    }
    argv[0] = "EXPIRE";
    argv[2] = OMNI_EP_SESSION_TTL;
    omni_ep_redis(ep, 3, argv);
}


static void omni_ep_unsubscribe(omni_req_t *r, omni_ep_t *ep, const char *uri)
{
    char key[OMNI_EP_MAX_URI + 64];
    const char *argv[3];

    omni_ep_sub_key(key, sizeof(key), ep->scope, uri);
    argv[0] = "SREM";
    argv[1] = key;
    argv[2] = ep->session;
    r->state = OMNI_EP_UNSUBSCRIBED;
    if (omni_ep_redis(ep, 3, argv) != 0) {
        omni_ep_error(ep, 200, -32603,
            "subscriptions are unavailable (Redis); retry", NULL);
    }
}


/* relay.c heard an upstream say uri changed. */
static void omni_ep_updated(const char *scope, const char *uri)
{
    char key[OMNI_EP_MAX_URI + 64], once[OMNI_EP_MAX_URI + 64];
    struct evbuffer *b = evbuffer_new();
    const char *argv[6];
    char *note;

    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b, "{\"jsonrpc\":\"2.0\",\"method\":"
                           "\"notifications/resources/updated\","
                           "\"params\":{\"uri\":");
    omni_json_put_string(b, uri, strlen(uri));
    evbuffer_add(b, "}}", 3); /* with the NUL */
    note = (char *)evbuffer_pullup(b, -1);
    omni_ep_sub_key(key, sizeof(key), scope, uri);
    snprintf(once, sizeof(once), "omni:mcp:updated:%s:%s", scope, uri);
    argv[0] = "EVAL";
    argv[1] = OMNI_EP_UPDATED_SCRIPT;
    argv[2] = "2";
    argv[3] = key;
    argv[4] = once;
    argv[5] = note;
    omni_redis_command_argv(omni_clients.redis, NULL, NULL, 6, argv, NULL);
    evbuffer_free(b);
}


/* 1 when <server>__<tool> is the name /mcp gives tool (no hashing). */
static int omni_ep_plain_name(const char *server, const char *tool)
{
    char name[OMNI_MCP_NAME_MAX + 1];

    omni_mcp_tool_name(server, tool, name);
    return strlen(name) == strlen(server) + 2 + strlen(tool)
           && strcmp(name + strlen(server) + 2, tool) == 0;
}


/* Finds which of the server's tools (that the role may call) has the
 * requested name: the hashed names need it. */
static void omni_ep_resolve(omni_req_t *r, omni_ep_t *ep)
{
    const char *values[2];

    values[0] = omni_ep_role(r);
    values[1] = ep->server;
    ep->direct = 0;
    ep->call = NULL;
    r->state = OMNI_EP_RESOLVED;
    if (omni_ep_query(ep, omni_ep_resolve_stmt, 2, values) != 0) {
        omni_ep_error(
            ep, 200, -32603, "the database is unavailable; retry", NULL);
    }
}


/* Runs the method; the session (legacy) or headers (modern) are checked. */
static void omni_ep_dispatch(omni_req_t *r, omni_ep_t *ep)
{
    const char *values[2], *name;
    const char *sep;
    char msg[200];

    if (ep->method == NULL || ep->id == NULL) {
        /* a notification, or the answer to a request we never send */
        if (ep->method != NULL
            && strcmp(ep->method, "notifications/cancelled") == 0) {
            r->state = OMNI_EP_CANCEL_STORED;
            if (omni_ep_cancel(ep) == 0) {
                return;
            }
        }
        if (ep->method == NULL && ep->id != NULL) {
            r->state = OMNI_EP_ANSWER_STORED;
            if (omni_ep_answer_in(ep) == 0) {
                return;
            }
        }
        omni_respond(r, 202, "application/json", NULL);
        return;
    }
    if (ep->modern
        && (strcmp(ep->method, "initialize") == 0
            || strcmp(ep->method, "ping") == 0
            || strcmp(ep->method, "logging/setLevel") == 0)) {
        snprintf(msg, sizeof(msg), "Method not found: %s is not part of %s",
            ep->method, OMNI_MCP_MODERN);
        omni_ep_error(ep, 404, -32601, msg, NULL);
        return;
    }
    if (strcmp(ep->method, "ping") == 0) {
        omni_ep_result(ep, "");
        return;
    }
    if (strcmp(ep->method, "initialize") == 0) {
        omni_ep_initialize(ep);
        return;
    }
    if (strcmp(ep->method, "server/discover") == 0) {
        omni_ep_discover(ep);
        return;
    }
    if (strcmp(ep->method, "logging/setLevel") == 0) {
        /* upstreams' log messages are relayed whatever the level */
        omni_ep_result(ep, "");
        return;
    }
    if (strcmp(ep->method, "tools/list") == 0) {
        if (ep->scope != NULL && strcmp(ep->scope, OMNI_EP_BUILTIN) == 0) {
            ep->res = NULL;
            omni_ep_tools_page(r, ep);
            return;
        }
        values[0] = omni_ep_role(r);
        values[1] = ep->scope;
        r->state = OMNI_EP_LISTED;
        if (omni_ep_query(ep, omni_ep_list_stmt, 2, values) != 0) {
            omni_ep_error(
                ep, 200, -32603, "the database is unavailable; retry", NULL);
        }
        return;
    }
    if (strcmp(ep->method, "tools/call") == 0) {
        name = omni_json_string(omni_json_get(ep->params, "name"));
        if (name == NULL) {
            omni_ep_error(
                ep, 200, -32602, "params.name: expected the tool's name", NULL);
            return;
        }
        omni_req_on_close(r, omni_ep_closed, r);
        if (ep->scope != NULL && strcmp(ep->scope, OMNI_EP_BUILTIN) == 0) {
            omni_ep_builtin_call(r, ep, name);
            return;
        }
        if (ep->scope == NULL
            && strncmp(name, OMNI_EP_BUILTIN "__", sizeof(OMNI_EP_BUILTIN) + 1)
                   == 0) {
            omni_ep_builtin_call(r, ep, name + sizeof(OMNI_EP_BUILTIN) + 1);
            return;
        }
        if (ep->scope != NULL) {
            /* the call's own checks refuse what the role may not call */
            ep->server = ep->scope;
            ep->tool = name;
            omni_ep_call_start(r, ep);
            return;
        }
        sep = strstr(name, "__");
        if (sep == NULL || sep == name || sep - name > 32) {
            snprintf(msg, sizeof(msg), "Unknown tool: %.128s", name);
            omni_ep_error(ep, 200, -32602, msg, NULL);
            return;
        }
        ep->server = omni_arena_strndup(&r->arena, name, sep - name);
        if (omni_ep_plain_name(ep->server, sep + 2)) {
            /* most names are <server>__<tool> as they are: the call's own
             * query checks them; only a miss needs the resolution */
            ep->tool = sep + 2;
            ep->direct = 1;
            omni_ep_call_start(r, ep);
            return;
        }
        omni_ep_resolve(r, ep);
        return;
    }
    if (strcmp(ep->method, "resources/subscribe") == 0
        || strcmp(ep->method, "resources/unsubscribe") == 0) {
        name = omni_json_string(omni_json_get(ep->params, "uri"));
        if (ep->scope == NULL || strcmp(ep->scope, OMNI_EP_BUILTIN) == 0
            || ep->modern) {
            snprintf(msg, sizeof(msg),
                "Method not found: %s needs a session of /mcp/<server>",
                ep->method);
            omni_ep_error(ep, ep->modern ? 404 : 200, -32601, msg, NULL);
            return;
        }
        if (name == NULL || strlen(name) > OMNI_EP_MAX_URI) {
            omni_ep_error(ep, 200, -32602,
                "params.uri: expected the resource's URI (at most 1024 "
                "characters)",
                NULL);
            return;
        }
        if (strcmp(ep->method, "resources/unsubscribe") == 0) {
            /* the upstream session is shared by this process's clients:
             * only this session stops hearing of it */
            omni_ep_unsubscribe(r, ep, name);
            return;
        }
    }
    if (ep->scope != NULL && strcmp(ep->scope, OMNI_EP_BUILTIN) != 0
        && omni_ep_forwarded_method(ep->method)) {
        values[0] = omni_ep_role(r);
        values[1] = ep->scope;
        r->state = OMNI_EP_UPSTREAM;
        if (omni_ep_query(ep, omni_ep_server_stmt, 2, values) != 0) {
            omni_ep_error(
                ep, 200, -32603, "the database is unavailable; retry", NULL);
        }
        return;
    }
    snprintf(msg, sizeof(msg), "Method not found: %.64s", ep->method);
    omni_ep_error(ep, ep->modern ? 404 : 200, -32601, msg, NULL);
}


/* The session's value in Redis: "<version> <user id> <capabilities>"
 * (OMNI_EP_SAMPLING | ..., in decimal). */
static int omni_ep_session_ok(omni_req_t *r, omni_ep_t *ep, const char *v)
{
    const char *user = omni_req_identity(r)->id;
    const char *sp = v ? strchr(v, ' ') : NULL;
    const char *caps;
    size_t n;

    if (sp == NULL || user == NULL) {
        return 0;
    }
    caps = strchr(sp + 1, ' ');
    n = caps != NULL ? (size_t)(caps - sp - 1) : strlen(sp + 1);
    if (n != strlen(user) || strncmp(sp + 1, user, n) != 0) {
        return 0;
    }
    ep->caps = caps != NULL ? atoi(caps + 1) : 0;
    ep->version = omni_arena_strndup(&r->arena, v, sp - v);
    return ep->version != NULL;
}


static int omni_ep_new_session(omni_req_t *r, omni_ep_t *ep)
{
    const omni_json_t *pv = omni_json_get(ep->params, "protocolVersion");
    const omni_json_t *caps;
    const char *argv[6], *user = omni_req_identity(r)->id;
    char key[96], *value;

    ep->version = omni_ep_legacy_version(omni_json_string(pv))
                      ? omni_json_string(pv)
                      : OMNI_MCP_LEGACY;
    if (omni_random_token("", 24, ep->session, sizeof(ep->session)) != 0) {
        return -1;
    }
    caps = omni_json_get(ep->params, "capabilities");
    ep->caps =
        (omni_json_get(caps, "sampling") != NULL ? OMNI_EP_SAMPLING : 0)
        | (omni_json_get(caps, "elicitation") != NULL ? OMNI_EP_ELICITATION : 0)
        | (omni_json_get(caps, "roots") != NULL ? OMNI_EP_ROOTS : 0);
    value = omni_arena_alloc(&r->arena, strlen(user) + 40);
    if (value == NULL) {
        return -1;
    }
    sprintf(value, "%s %s %d", ep->version, user, ep->caps);
    snprintf(key, sizeof(key), "omni:mcp:session:%s", ep->session);
    argv[0] = "SET";
    argv[1] = key;
    argv[2] = value;
    argv[3] = "EX";
    argv[4] = OMNI_EP_SESSION_TTL;
    ep->new_session = 1;
    return omni_ep_redis(ep, 5, argv);
}


/* START: who, which generation, the session. */
static void omni_ep_start(omni_req_t *r)
{
    omni_ep_t *ep;
    const char *hv = omni_req_header(r, "MCP-Protocol-Version");
    const char *sid = omni_req_header(r, "Mcp-Session-Id");
    const char *argv[3];
    char key[128], data[320];

    if (!omni_ep_origin_ok(r)) {
        omni_ep_refuse(
            r, 403, -32600, "Origin is not allowed (OMNI_MCP_ALLOWED_ORIGINS)");
        return;
    }
    if (omni_req_identity(r)->id == NULL) {
        omni_respond_error(r, 401, "missing_credentials",
            "/mcp needs a bearer token or an API key");
        return;
    }
    ep = omni_arena_alloc(&r->arena, sizeof(*ep));
    if (ep == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    memset(ep, 0, sizeof(*ep));
    ep->r = r;
    r->data = ep;
    ep->scope = omni_req_param(r, 0);
    if (ep->scope != NULL && !omni_ep_server_name(ep->scope)) {
        omni_respond_error(
            r, 404, "not_found", "no MCP server may be named %.64s", ep->scope);
        return;
    }
    if (omni_ep_parse(r, ep) != 0) {
        return;
    }

    if (hv != NULL && strcmp(hv, OMNI_MCP_MODERN) == 0) {
        ep->modern = 1;
        ep->version = OMNI_MCP_MODERN;
        if (omni_ep_check_modern(r, ep) == 0) {
            omni_ep_dispatch(r, ep);
        }
        return;
    }
    if (ep->method != NULL && strcmp(ep->method, "initialize") == 0) {
        r->state = OMNI_EP_CREATED;
        if (omni_ep_new_session(r, ep) != 0) {
            ep->new_session = 0;
            omni_ep_error(ep, 503, -32603,
                "sessions are unavailable (Redis); retry, or use 2026-07-28",
                NULL);
        }
        return;
    }
    if (hv != NULL && !omni_ep_legacy_version(hv)) {
        snprintf(data, sizeof(data),
            "{\"supported\":" OMNI_EP_VERSIONS ",\"requested\":");
        {
            struct evbuffer *b = evbuffer_new();

            if (b != NULL) {
                evbuffer_add(b, data, strlen(data));
                omni_json_put_string(b, hv, strlen(hv) < 64 ? strlen(hv) : 64);
                evbuffer_add(b, "}", 1);
                snprintf(data, sizeof(data), "%.*s",
                    (int)evbuffer_get_length(b),
                    (const char *)evbuffer_pullup(b, -1));
                evbuffer_free(b);
            }
        }
        omni_ep_error(ep, 400, -32602, "Unsupported protocol version", data);
        return;
    }
    if (sid == NULL) {
        omni_ep_error(ep, 400, -32600,
            "Mcp-Session-Id is required (initialize first), or send "
            "MCP-Protocol-Version: 2026-07-28 for a stateless request",
            NULL);
        return;
    }
    if (strlen(sid) >= sizeof(ep->session)
        || strspn(sid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz012"
                       "3456789-_")
               != strlen(sid)) {
        omni_ep_error(ep, 404, -32001, "Session not found", NULL);
        return;
    }
    snprintf(ep->session, sizeof(ep->session), "%s", sid);
    snprintf(key, sizeof(key), "omni:mcp:session:%s", sid);
    argv[0] = "GET";
    argv[1] = key;
    r->state = OMNI_EP_SESSION;
    if (omni_ep_redis(ep, 2, argv) == 0) {
        argv[0] = "EXPIRE";
        argv[2] = OMNI_EP_SESSION_TTL;
        omni_ep_redis(ep, 3, argv);
        /* a call's generation (call.c) in the same round trip: read after
         * the request arrived, it is as fresh as the call's own read */
        if (ep->method != NULL && strcmp(ep->method, "tools/call") == 0
            && omni_redis_command(omni_clients.redis, omni_ep_gen_reply, ep,
                   "GET omni:mcp:gen")
                   == 0) {
            ep->redis_pending++;
        }
        return;
    }
    omni_ep_error(
        ep, 503, -32603, "sessions are unavailable (Redis); retry", NULL);
}


void omni_mcp_endpoint_post(omni_req_t *r)
{
    omni_ep_t *ep = r->data;
    const omni_mcp_outcome_t *out;

    switch (r->state) {

    case OMNI_EP_START:
        omni_ep_start(r);
        return;

    case OMNI_EP_SESSION:
        if (ep->redis_failed) {
            omni_ep_error(ep, 503, -32603,
                "sessions are unavailable (Redis); retry", NULL);
            return;
        }
        if (!omni_ep_session_ok(r, ep, ep->redis_str)) {
            omni_ep_error(ep, 404, -32001, "Session not found", NULL);
            return;
        }
        omni_ep_dispatch(r, ep);
        return;

    case OMNI_EP_CREATED:
        if (ep->redis_failed) {
            ep->new_session = 0;
            omni_ep_error(ep, 503, -32603,
                "sessions are unavailable (Redis); retry, or use 2026-07-28",
                NULL);
            return;
        }
        omni_ep_initialize(ep);
        return;

    case OMNI_EP_LISTED:
        if (ep->db_status != OMNI_DB_OK) {
            omni_ep_error(
                ep, 200, -32603, "the database is unavailable; retry", NULL);
            return;
        }
        omni_ep_tools_page(r, ep);
        return;

    case OMNI_EP_RESOLVED:
        omni_ep_resolved(r, ep);
        return;

    case OMNI_EP_CALLING:
        if (omni_mcp_call_step(r, ep->call, &out)) {
            omni_ep_call_answer(ep, out);
        }
        return;

    case OMNI_EP_INPUT:
        omni_ep_input_retry(r, ep);
        return;

    case OMNI_EP_BUILTIN_CALLED:
        omni_ep_builtin_answer(ep);
        return;

    case OMNI_EP_UPSTREAM:
        omni_ep_forward(r, ep);
        return;

    case OMNI_EP_FORWARDED:
        if (strcmp(ep->method, "resources/subscribe") == 0 && !ep->gone
            && ep->rep.failure == NULL && ep->rep.error == NULL) {
            omni_ep_subscribe(r, ep);
            return;
        }
        omni_ep_forward_answer(ep);
        return;

    case OMNI_EP_SUBSCRIBED:
    case OMNI_EP_UNSUBSCRIBED:
        if (ep->redis_failed) {
            omni_ep_error(ep, 200, -32603,
                "subscriptions are unavailable (Redis); retry", NULL);
            return;
        }
        omni_ep_result(ep, "");
        return;

    default: /* CANCEL_STORED, ANSWER_STORED */
        omni_respond(r, 202, "application/json", NULL);
        return;
    }
}


static void omni_ep_stream_unlink(omni_ep_t *ep);
static void omni_ep_view_put(omni_ep_view_t *v);


/* Ends this process's streams of session (all of them when NULL). */
static void omni_ep_streams_end(const char *session)
{
    omni_ep_t *ep, *next;

    for (ep = omni_ep_streams.head; ep != NULL; ep = next) {
        next = ep->snext;
        if (session == NULL || strcmp(ep->session, session) == 0) {
            omni_ep_stream_unlink(ep);
            omni_respond_end(ep->r);
        }
    }
}


/* DELETE and GET: reads the session sid names; its answer resumes the
 * handler in state next (omni_ep_session_found then judges it). */
static void omni_ep_session_read(omni_req_t *r, const char *sid, int next)
{
    omni_ep_t *ep = omni_arena_alloc(&r->arena, sizeof(*ep));
    const char *argv[2];
    char key[128];

    if (ep == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    memset(ep, 0, sizeof(*ep));
    ep->r = r;
    r->data = ep;
    snprintf(ep->session, sizeof(ep->session), "%.63s", sid);
    snprintf(key, sizeof(key), "omni:mcp:session:%.64s", sid);
    argv[0] = "GET";
    argv[1] = key;
    r->state = next;
    if (omni_ep_redis(ep, 2, argv) != 0) {
        omni_ep_refuse(r, 503, -32603, "sessions are unavailable (Redis)");
    }
}


/* 1 when the session read found the caller's own session; otherwise the
 * request is answered (503 without Redis, 404 for any other session). */
static int omni_ep_session_found(omni_req_t *r, omni_ep_t *ep)
{
    if (ep->redis_failed) {
        omni_ep_refuse(r, 503, -32603, "sessions are unavailable (Redis)");
        return 0;
    }
    if (!omni_ep_session_ok(r, ep, ep->redis_str)) {
        omni_ep_refuse(r, 404, -32001, "Session not found");
        return 0;
    }
    return 1;
}


void omni_mcp_endpoint_delete(omni_req_t *r)
{
    omni_ep_t *ep = r->data;
    const char *sid = omni_req_header(r, "Mcp-Session-Id");
    const char *argv[2];
    char key[128];

    switch (r->state) {

    case OMNI_EP_START:
        if (!omni_ep_origin_ok(r)) {
            omni_ep_refuse(r, 403, -32600,
                "Origin is not allowed (OMNI_MCP_ALLOWED_ORIGINS)");
            return;
        }
        if (sid == NULL) {
            omni_ep_refuse(r, 400, -32600, "Mcp-Session-Id is required");
            return;
        }
        omni_ep_session_read(r, sid, OMNI_EP_DELETE_READ);
        return;

    case OMNI_EP_DELETE_READ:
        if (!omni_ep_session_found(r, ep)) {
            return;
        }
        snprintf(key, sizeof(key), "omni:mcp:session:%.64s", ep->session);
        argv[0] = "DEL";
        argv[1] = key;
        r->state = OMNI_EP_DELETED;
        if (omni_ep_redis(ep, 2, argv) != 0) {
            omni_ep_refuse(r, 503, -32603, "sessions are unavailable (Redis)");
        }
        return;

    default:
        if (ep->redis_failed) {
            omni_ep_refuse(r, 503, -32603, "sessions are unavailable (Redis)");
            return;
        }
        omni_ep_streams_end(ep->session);
        omni_respond(r, 204, "application/json", NULL);
        return;
    }
}


/* --- GET: a legacy session's notification stream ------------------------ */

static void omni_ep_stream_unlink(omni_ep_t *ep)
{
    omni_ep_t **pp;

    for (pp = &omni_ep_streams.head; *pp != NULL; pp = &(*pp)->snext) {
        if (*pp == ep) {
            *pp = ep->snext;
            omni_ep_streams.count--;
            omni_ep_view_put(ep->view);
            ep->view = NULL;
            return;
        }
    }
}


static void omni_ep_stream_closed(void *arg)
{
    omni_req_t *r = arg;
    omni_ep_t *ep = r->data;

    omni_ep_stream_unlink(ep);
    omni_respond_end(r);
}


static void omni_ep_stream_write(omni_ep_t *ep, const char *text)
{
    struct evbuffer *b = evbuffer_new();

    if (b != NULL) {
        evbuffer_add(b, text, strlen(text));
        omni_respond_chunk(ep->r, b);
        evbuffer_free(b);
    }
    ep->last_write = time(NULL);
}


#define OMNI_EP_LIST_CHANGED                                                   \
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":"                   \
    "\"notifications/tools/list_changed\"}\n\n"

/* Tells the streams of view (every stream without one when NULL). */
static void omni_ep_view_notify(omni_ep_view_t *v)
{
    omni_ep_t *ep;

    for (ep = omni_ep_streams.head; ep != NULL; ep = ep->snext) {
        if (ep->view == v && !ep->fixed) {
            omni_ep_stream_write(ep, OMNI_EP_LIST_CHANGED);
        }
    }
}


/* FNV-1a over what the list query's rows show (names and definitions of
 * the servers this process does not see down), in the query's order. */
static uint64_t omni_ep_view_hash(PGresult *res)
{
    uint64_t h = 14695981039346656037ull;
    const char *id, *p;
    int i, col, n = PQntuples(res);

    for (i = 0; i < n; i++) {
        if (omni_mcp_state_down(PQgetvalue(res, i, 0), &id)) {
            continue;
        }
        for (col = 0; col < 3; col++) {
            for (p = PQgetvalue(res, i, col); *p; p++) {
                h = (h ^ (unsigned char)*p) * 1099511628211ull;
            }
            h = (h ^ 0xff) * 1099511628211ull;
        }
    }
    return h;
}


static void omni_ep_view_check(omni_ep_view_t *v, int changed);


static void omni_ep_view_done(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_ep_view_t *v = arg;
    uint64_t h;

    v->querying = 0;
    if (v->refs == 0) {
        memset(v, 0, sizeof(*v));
        return;
    }
    if (st == OMNI_DB_OK) {
        h = omni_ep_view_hash(res);
        if (v->changed && (!v->known || h != v->hash)) {
            omni_ep_view_notify(v);
        }
        v->hash = h;
        v->known = 1;
    } else {
        /* cannot tell: a client re-listing needlessly is the cheap error */
        if (v->changed) {
            omni_ep_view_notify(v);
        }
        v->known = 0;
    }
    v->changed = 0;
    if (v->again) {
        v->again = 0;
        omni_ep_view_check(v, 1);
    }
}


/* Reads the view's list now: changed says the catalog changed since the
 * last read (then its streams are told if the list differs). */
static void omni_ep_view_check(omni_ep_view_t *v, int changed)
{
    const char *values[2];

    v->changed |= changed;
    if (v->querying) {
        v->again = 1;
        return;
    }
    values[0] = v->role;
    values[1] = v->scope[0] ? v->scope : NULL;
    if (omni_db_query(
            omni_clients.db, omni_ep_list_stmt, 2, values, omni_ep_view_done, v)
        == OMNI_DB_OK) {
        v->querying = 1;
        return;
    }
    if (v->changed) {
        omni_ep_view_notify(v);
    }
    v->changed = 0;
    v->known = 0;
}


/* The view of a new stream (a new one is read at once, for the
 * baseline), or NULL when the table is full. */
static omni_ep_view_t *omni_ep_view_get(const char *role, const char *scope)
{
    omni_ep_view_t *v, *free_slot = NULL;
    int i;

    for (i = 0; i < OMNI_EP_VIEWS; i++) {
        v = &omni_ep_views[i];
        if (v->used && strcmp(v->role, role) == 0
            && strcmp(v->scope, scope) == 0) {
            v->refs++;
            return v;
        }
        if (!v->used && free_slot == NULL) {
            free_slot = v;
        }
    }
    if (free_slot == NULL || strlen(role) >= sizeof(free_slot->role)) {
        return NULL;
    }
    v = free_slot;
    memset(v, 0, sizeof(*v));
    v->used = 1;
    v->refs = 1;
    snprintf(v->role, sizeof(v->role), "%s", role);
    snprintf(v->scope, sizeof(v->scope), "%s", scope);
    omni_ep_view_check(v, 0);
    return v;
}


static void omni_ep_view_put(omni_ep_view_t *v)
{
    if (v != NULL && --v->refs == 0 && !v->querying) {
        memset(v, 0, sizeof(*v));
    }
}


static void omni_ep_stream_gen(redisAsyncContext *ac, void *reply, void *arg)
{
    redisReply *rep = reply;
    long long gen;
    int i;

    omni_ep_streams.reading = 0;
    if (rep == NULL
        || (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_NIL)) {
        return;
    }
    gen = rep->type == REDIS_REPLY_NIL ? 0 : atoll(rep->str);
    if (omni_ep_streams.gen >= 0 && gen != omni_ep_streams.gen) {
        omni_ep_view_notify(NULL);
        for (i = 0; i < OMNI_EP_VIEWS; i++) {
            if (omni_ep_views[i].used && omni_ep_views[i].refs > 0) {
                omni_ep_view_check(&omni_ep_views[i], 1);
            }
        }
    }
    omni_ep_streams.gen = gen;
}


/* The notes (resources/updated) popped for the stream whose seq is arg. */
static void omni_ep_stream_notes(redisAsyncContext *ac, void *reply, void *arg)
{
    redisReply *rep = reply;
    uint64_t seq = (uint64_t)(uintptr_t)arg;
    omni_ep_t *ep;
    struct evbuffer *b;
    size_t i;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (ep = omni_ep_streams.head; ep != NULL && ep->seq != seq;
         ep = ep->snext) {
    }
    if (ep == NULL) {
        /* the stream closed meanwhile: the notes are lost with it */
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        return;
    }
    for (i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_STRING) {
            evbuffer_add(b, "event: message\ndata: ", 21);
            evbuffer_add(b, rep->element[i]->str, rep->element[i]->len);
            evbuffer_add(b, "\n\n", 2);
        }
    }
    if (evbuffer_get_length(b) > 0) {
        omni_respond_chunk(ep->r, b);
        ep->last_write = time(NULL);
    }
    evbuffer_free(b);
}


static void omni_ep_stream_gen_read(void)
{
    if (!omni_ep_streams.reading
        && omni_redis_command(
               omni_clients.redis, omni_ep_stream_gen, NULL, "GET omni:mcp:gen")
               == 0) {
        omni_ep_streams.reading = 1;
    }
}


static void omni_ep_stream_tick(evutil_socket_t fd, short what, void *arg)
{
    time_t now = time(NULL);
    omni_ep_t *ep;

    if (omni_http_draining()) {
        /* an open stream would keep a draining process alive */
        omni_ep_streams_end(NULL);
        return;
    }
    if (omni_ep_streams.head == NULL) {
        return;
    }
    for (ep = omni_ep_streams.head; ep != NULL; ep = ep->snext) {
        char key[128];
        const char *argv[3];

        if (now - ep->last_write >= OMNI_EP_KEEPALIVE_S) {
            omni_ep_stream_write(ep, ": keep-alive\n\n");
        }
        snprintf(key, sizeof(key), "omni:mcp:notes:%s", ep->session);
        argv[0] = "LPOP";
        argv[1] = key;
        argv[2] = "100";
        omni_redis_command_argv(omni_clients.redis, omni_ep_stream_notes,
            (void *)(uintptr_t)ep->seq, 3, argv, NULL);
    }
    omni_ep_stream_gen_read();
}


void omni_mcp_endpoint_get(omni_req_t *r)
{
    omni_ep_t *ep = r->data;
    const char *sid = omni_req_header(r, "Mcp-Session-Id");
    const char *accept = omni_req_header(r, "Accept");

    switch (r->state) {

    case OMNI_EP_START:
        if (!omni_ep_origin_ok(r)) {
            omni_ep_refuse(r, 403, -32600,
                "Origin is not allowed (OMNI_MCP_ALLOWED_ORIGINS)");
            return;
        }
        if (sid == NULL) {
            omni_respond_header(r, "Allow", "POST, DELETE");
            omni_ep_refuse(r, 405, -32600,
                "GET opens a session's notification stream: "
                "Mcp-Session-Id is required");
            return;
        }
        if (accept == NULL || strstr(accept, "text/event-stream") == NULL) {
            omni_ep_refuse(
                r, 406, -32600, "Accept must include text/event-stream");
            return;
        }
        if (omni_ep_streams.count >= OMNI_EP_MAX_STREAMS) {
            omni_ep_refuse(r, 503, -32603,
                "too many notification streams on this process; retry");
            return;
        }
        omni_ep_session_read(r, sid, OMNI_EP_STREAM_READ);
        return;

    case OMNI_EP_STREAM_READ:
        if (!omni_ep_session_found(r, ep)) {
            return;
        }
        r->state = OMNI_EP_STREAMING;
        ep->streaming = 1;
        ep->seq = ++omni_ep_live.seq;
        ep->scope = omni_req_param(r, 0);
        ep->fixed =
            ep->scope != NULL && strcmp(ep->scope, OMNI_EP_BUILTIN) == 0;
        ep->view = ep->fixed ? NULL
                             : omni_ep_view_get(omni_ep_role(r),
                                 ep->scope != NULL ? ep->scope : "");
        omni_respond_start(r, 200, "text/event-stream");
        ep->snext = omni_ep_streams.head;
        omni_ep_streams.head = ep;
        omni_ep_streams.count++;
        if (omni_ep_streams.gen < 0) {
            /* the first stream of this process: its baseline generation
             * is asked before the client can change anything */
            omni_ep_stream_gen_read();
        }
        omni_ep_stream_write(ep, ": stream open\n\n");
        omni_req_on_close(r, omni_ep_stream_closed, r);
        return;

    default:
        return;
    }
}


int omni_mcp_endpoint_start(void)
{
    struct timeval tv = {0, 25000}, tick = {0, OMNI_EP_STREAM_TICK_MS * 1000};

    omni_ep_live.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_ep_poll, NULL);
    omni_ep_streams.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_ep_stream_tick, NULL);
    if (omni_ep_live.timer == NULL || omni_ep_streams.timer == NULL) {
        return -1;
    }
    event_add(omni_ep_live.timer, &tv);
    event_add(omni_ep_streams.timer, &tick);
    return omni_mcp_relay_start(
        omni_clients.base, omni_clients.cfg->mcp_ca_file, omni_ep_updated);
}


void omni_mcp_endpoint_stop(void)
{
    omni_mcp_relay_stop();
    if (omni_ep_streams.timer != NULL) {
        event_free(omni_ep_streams.timer);
        omni_ep_streams.timer = NULL;
    }
    if (omni_ep_live.timer != NULL) {
        event_free(omni_ep_live.timer);
        omni_ep_live.timer = NULL;
    }
}
