/* turn.c: the chat turn, POST /api/v1/conversations/{id}/messages
 * {content, stream?, tools?}.
 *
 *   START ─> BEGUN (the plan, read-only: history, targets, budgets; the
 *              │        tools too unless a list is kept: offer.c)
 *              v
 *            OFFER (omni:mcp:gen, read beside the plan: the kept list, or
 *              │    OFFERED: the list queried when the generation moved)
 *              │ budgets?
 *              ├──────> RESERVED (Redis, atomic: input + max_tokens)
 *              │           │ over: 429 budget_exceeded
 *              v           v
 *            CALL <─ fallback (failed before the client's first byte)
 *              └─> CALLED ─ tool calls, rounds left ─> TOOLS (MCP, parallel)
 *                    │                                  │ results
 *                    │           RESERVED (budgets) or CALL <─┘
 *                    └─ reply, failure or client gone ─> SAVED ─> answer
 *
 * Every provider attempt is one ledger row (ok, error, fallback,
 * client_disconnected), appended in batches. Streaming answers SSE
 * (delta, tool_call, tool_result, usage, done | error) as the provider's
 * text arrives; once the client has had a byte no other target is tried,
 * and a failure ends the stream with an error event, the partial reply
 * saved and billed. A client that goes away cancels the provider's
 * transfer and the tool calls at once; the turn still saves and bills.
 * Reservations are settled (spent replaces reserved) when the turn ends.
 *
 * The user's message (the question) is not in the plan's round trip, the
 * one the provider call waits for: it is saved (turn_ask, under an id
 * chosen here) on another connection, sent beside the provider call or
 * the budgets' reservation; sent beside the plan, its backend slowed the
 * plan's on 2 cores more than it saved. The turn waits for it only before
 * it reads the provider's outcome (CALLED) or ends early, so a question is
 * saved before its answer and before the client hears of a failure. A
 * save that fails cancels the provider's transfer and ends the turn (404
 * when the conversation went away meanwhile, else 503), nothing billed
 * that the client did not get. Two turns of one conversation no longer
 * wait for each other: each sends its own question last (and the other's
 * if it was saved first), and all four messages are saved. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/json.h"
#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "io/outbound.h"
#include "io/publish.h"
#include "http/api.h"
#include "services/chat/billing.h"
#include "services/chat/builtin.h"
#include "services/chat/offer.h"
#include "services/chat/turn.h"
#include "services/chat/wire.h"
#include "services/mcp/mcp.h"

#define OMNI_TURN_MAX_CONTENT 100000 /* characters of a user message */

enum {
    OMNI_TURN_START = 0,
    OMNI_TURN_BEGUN,
    OMNI_TURN_OFFER,
    OMNI_TURN_OFFERED,
    OMNI_TURN_RESERVED,
    OMNI_TURN_CALL,
    OMNI_TURN_CALLED,
    OMNI_TURN_TOOLS,
    OMNI_TURN_SAVED
};

typedef struct omni_turn_s omni_turn_t;

enum {
    OMNI_TURN_ASK_PENDING = 0,
    OMNI_TURN_ASK_OK,
    OMNI_TURN_ASK_NOT_FOUND,
    OMNI_TURN_ASK_NO_MODEL,
    OMNI_TURN_ASK_FAILED
};

/* The question's save; on the heap, as its answer may come after the turn
 * ended (then t is NULL and the callback frees it). */
typedef struct {
    omni_turn_t *t;
    int state;
    int waiting; /* the turn goes on when it answers */
} omni_turn_ask_t;

typedef struct {
    omni_turn_t *t;
    omni_mcp_tool_call_t *call;
    const char *text;
    int is_error, done;
} omni_turn_result_t;

struct omni_turn_s {
    omni_req_t *r;
    const char *user, *role, *conv, *content, *project, *system, *only;
    int stream;

    omni_wire_tooldef_t *tools; /* offered to the model */
    omni_offer_gen_t *gen;      /* omni:mcp:gen read beside the plan */
    char offer_key[512];        /* its (role, filter); "" when too long */
    const char *offer;          /* the MCP tools' JSON array text */
    int offer_asked;            /* the plan was asked for the list */
    int gen_waited;             /* OFFER waits for gen's answer */
    int ntools, round, max_rounds, msgcap;
    omni_turn_result_t results[OMNI_WIRE_MAX_TOOLS];
    int nresults, pending_tools;
    int ran_tools;          /* the last attempt's calls were run (and shown) */
    struct evbuffer *saved; /* this turn's messages for turn_save */
    int64_t sum_in, sum_out, sum_cached;

    omni_llm_target_t *targets;
    int ntargets, target;
    omni_wire_msg_t *msgs;
    int nmsgs;
    int64_t input_estimate;

    omni_budgets_t bud;
    omni_turn_ask_t *ask;
    int asked;      /* the question's save was started */
    int uncallable; /* the attempt could not start */
    char mid[37];   /* the user's message */

    omni_out_req_t *q;
    omni_wire_t w;
    struct evbuffer *body; /* a non-streamed or error body */
    int sse_body;          /* the provider answered text/event-stream */
    long http_status;
    char retry_after[16]; /* the provider's Retry-After of a 429 */
    omni_out_error_t out_error;
    uint64_t attempt_ms, attempt_wall_us, latency_ms;
    uint64_t asked_us, begun_us, sent_us; /* since the request came */

    int ok;      /* the last attempt succeeded */
    int started; /* the client has had its first byte */
    int gone;    /* the client went away */
    int live;    /* counted in omni_turn_mem.live */
    struct event *wake;
    struct event *watch; /* looks for a client gone while nothing is
                            written (a slow first token, a whole reply) */
};

static int omni_turn_plan_stmt, omni_turn_ask_stmt, omni_turn_save_stmt;

/* Turns under way and their high-water mark since the heap was last
 * trimmed. A burst of streams (each with its outbound transfer and
 * buffers) leaves the heap fragmented: what it used is free again but
 * glibc cannot give it back past a live allocation above it, so RSS
 * stays at the burst's peak. Once the burst has mostly ended,
 * malloc_trim() returns the free pages. */
static struct {
    int live, high;
    int again; /* trimmed with turns left: once more when none are */
    struct event *timer;
} omni_turn_mem;

#define OMNI_TURN_TRIM_BURST 32 /* turns at once that make a burst */

int omni_turn_init(void)
{
    omni_turn_plan_stmt = omni_db_statement("chat_turn_plan",
        "SELECT t.status, t.body, t.tools FROM omnichat.turn_plan($1, $2,"
        " $3::uuid, $4::int, $5, $6::jsonb, $7::boolean) AS t");
    omni_turn_ask_stmt = omni_db_statement("chat_turn_ask",
        "SELECT omnichat.turn_ask($1, $2::uuid, $3::uuid, $4)");
    omni_turn_save_stmt = omni_db_statement(
        "chat_turn_save", "SELECT omnichat.turn_save($1, $2::uuid, $3::jsonb)");
    return omni_turn_plan_stmt < 0 || omni_turn_ask_stmt < 0
                   || omni_turn_save_stmt < 0 || omni_offer_init() != 0
               ? -1
               : omni_billing_init();
}


static void omni_turn_trim(evutil_socket_t fd, short what, void *arg)
{
    if ((omni_turn_mem.high >= OMNI_TURN_TRIM_BURST
            && omni_turn_mem.live <= omni_turn_mem.high / 4)
        || (omni_turn_mem.again && omni_turn_mem.live == 0)) {
        malloc_trim(0);
        omni_turn_mem.high = omni_turn_mem.live;
        omni_turn_mem.again = omni_turn_mem.live > 0;
    }
}


int omni_turn_start(void)
{
    struct timeval tv = {1, 0};

    omni_turn_mem.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_turn_trim, NULL);
    if (omni_turn_mem.timer == NULL) {
        return -1;
    }
    event_add(omni_turn_mem.timer, &tv);
    return omni_billing_start();
}


void omni_turn_stop(void)
{
    if (omni_turn_mem.timer != NULL) {
        event_free(omni_turn_mem.timer);
        omni_turn_mem.timer = NULL;
    }
    omni_billing_stop();
}


/* Queues the row of the attempt just ended and returns its cost. */
static int64_t omni_ledger_add(
    omni_turn_t *t, const char *status, const char *message_id)
{
    omni_ledger_row_t row = {0};
    int64_t cost;

    row.at_us = t->attempt_wall_us;
    row.latency_ms = t->latency_ms;
    row.user = t->user;
    row.project = t->project;
    row.conv = t->conv;
    row.message = message_id;
    row.status = status;
    cost = omni_ledger_append(
        &row, &t->targets[t->target], &t->w, t->input_estimate, &t->bud);
    t->sum_in += t->w.input_tokens;
    t->sum_out += t->w.output_tokens;
    t->sum_cached += t->w.cached_tokens;
    return cost;
}


/* --- the body and the plan ------------------------------------------------ */

static size_t omni_turn_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}


/* Reads the request body; answers and returns -1 when it is wrong. */
static int omni_turn_read_body(omni_req_t *r, omni_turn_t *t)
{
    const omni_json_t *j = r->json, *v;
    struct evbuffer *b;
    size_t i;

    for (i = 0; i < j->u.obj.len; i++) {
        const char *k = j->u.obj.keys[i];

        if (strcmp(k, "content") != 0 && strcmp(k, "stream") != 0
            && strcmp(k, "tools") != 0) {
            omni_respond_error(
                r, 422, "invalid_value", "%.64s: unknown field", k);
            return -1;
        }
    }
    v = omni_json_get(j, "content");
    if (v == NULL || v->type == OMNI_JSON_NULL) {
        omni_respond_error(r, 400, "missing_field", "content: required");
        return -1;
    }
    t->content = omni_json_string(v);
    if (t->content == NULL) {
        omni_respond_error(
            r, 400, "invalid_field", "content: must be a string");
        return -1;
    }
    if (t->content[strspn(t->content, " \t\r\n")] == '\0') {
        omni_respond_error(
            r, 422, "invalid_value", "content: must not be empty");
        return -1;
    }
    if (omni_turn_chars(t->content) > OMNI_TURN_MAX_CONTENT) {
        omni_respond_error(r, 422, "invalid_value",
            "content: longer than %d characters", OMNI_TURN_MAX_CONTENT);
        return -1;
    }
    v = omni_json_get(j, "stream");
    if (v != NULL && v->type != OMNI_JSON_NULL
        && !omni_json_bool(v, &t->stream)) {
        omni_respond_error(
            r, 400, "invalid_field", "stream: must be true or false");
        return -1;
    }
    v = omni_json_get(j, "tools");
    if (v != NULL && v->type != OMNI_JSON_NULL) {
        if (v->type != OMNI_JSON_ARRAY) {
            omni_respond_error(r, 400, "invalid_field",
                "tools: must be an array of tool names");
            return -1;
        }
        for (i = 0; i < v->u.arr.len; i++) {
            if (omni_json_string(v->u.arr.items[i]) == NULL) {
                omni_respond_error(
                    r, 400, "invalid_field", "tools[%zu]: must be a string", i);
                return -1;
            }
        }
        b = evbuffer_new();
        if (b == NULL || omni_json_write(b, v) != 0) {
            if (b != NULL) {
                evbuffer_free(b);
            }
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return -1;
        }
        t->only = omni_arena_strndup(&r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
    }
    return 0;
}


static const char *omni_turn_str(const omni_json_t *o, const char *k)
{
    return omni_json_string(omni_json_get(o, k));
}


/* Reads turn_plan's answer (but the tools: omni_turn_offer) into t, the
 * user's message appended to the history: 0, or -1 when out of memory. */
static int omni_turn_plan(omni_turn_t *t, const char *text, size_t len)
{
    omni_arena_t *a = &t->r->arena;
    const omni_json_t *j, *arr, *e;
    char err[128];
    int64_t n;
    size_t i;

    j = omni_json_parse(a, text, len, NULL, err, sizeof(err));
    if (j == NULL) {
        return -1;
    }
    t->project = omni_turn_str(j, "project_id");
    t->system = omni_turn_str(j, "system");
    if (omni_json_int(omni_json_get(j, "input_estimate"), &n)) {
        t->input_estimate = n;
    }

    t->ntargets =
        omni_billing_targets(a, omni_json_get(j, "targets"), &t->targets);
    if (t->ntargets < 0) {
        return -1;
    }

    if (omni_json_int(omni_json_get(j, "max_tool_rounds"), &n)) {
        t->max_rounds = (int)n;
    }

    arr = omni_json_get(j, "history");
    t->nmsgs = arr != NULL ? (int)arr->u.arr.len : 0;
    t->msgcap = t->nmsgs + 2 + t->max_rounds * (1 + OMNI_WIRE_MAX_TOOLS);
    t->msgs = omni_arena_alloc(a, sizeof(*t->msgs) * t->msgcap);
    if (t->msgs == NULL) {
        return -1;
    }
    for (i = 0; i < (size_t)t->nmsgs; i++) {
        struct evbuffer *b;
        omni_wire_msg_t *m = &t->msgs[i];

        e = arr->u.arr.items[i];
        memset(m, 0, sizeof(*m));
        m->role = omni_turn_str(e, "role");
        m->content = omni_turn_str(e, "content");
        m->tool_call_id = omni_turn_str(e, "tool_call_id");
        if (omni_json_get(e, "tool_calls") != NULL
            && (b = evbuffer_new()) != NULL) {
            omni_json_write(b, omni_json_get(e, "tool_calls"));
            m->tool_calls = omni_arena_strndup(a,
                (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
            evbuffer_free(b);
        }
    }
    memset(&t->msgs[t->nmsgs], 0, sizeof(t->msgs[0]));
    t->msgs[t->nmsgs].role = "user";
    t->msgs[t->nmsgs++].content = t->content;

    omni_billing_budgets(&t->bud, omni_json_get(j, "budgets"), t->targets,
        t->ntargets, t->input_estimate, 0);
    return 0;
}


/* Reads the MCP tools' list (t->offer, turn_tools()'s JSON) and the
 * built-in server's into t->tools: 0, or -1 when out of memory or the
 * list is not JSON. */
static int omni_turn_offer(omni_turn_t *t)
{
    omni_arena_t *a = &t->r->arena;
    const omni_json_t *arr, *e;
    const omni_wire_tooldef_t *builtin;
    int nbuiltin;
    char err[128];
    size_t i;

    arr =
        omni_json_parse(a, t->offer, strlen(t->offer), NULL, err, sizeof(err));
    if (arr == NULL || arr->type != OMNI_JSON_ARRAY) {
        return -1;
    }
    t->ntools = (int)arr->u.arr.len;
    nbuiltin = omni_chat_builtin_tools(&builtin);
    t->tools =
        omni_arena_alloc(a, sizeof(*t->tools) * (t->ntools + nbuiltin + 1));
    if (t->tools == NULL) {
        return -1;
    }
    for (i = 0; i < (size_t)t->ntools; i++) {
        struct evbuffer *b = evbuffer_new();

        e = arr->u.arr.items[i];
        t->tools[i].name = omni_turn_str(e, "name");
        t->tools[i].description = omni_turn_str(e, "description");
        if (b == NULL) {
            return -1;
        }
        omni_json_write(b, omni_json_get(e, "input_schema"));
        t->tools[i].schema = omni_arena_strndup(
            a, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
    }
    /* the built-in server's (every role's: they act on the caller's own
     * contexts and memories), narrowed like the others by `tools` */
    for (i = 0; i < (size_t)nbuiltin; i++) {
        char quoted[96];

        snprintf(quoted, sizeof(quoted), "\"%s\"", builtin[i].name);
        if (t->only == NULL || strstr(t->only, quoted) != NULL) {
            t->tools[t->ntools++] = builtin[i];
        }
    }
    return 0;
}


/* omni:mcp:gen answered: a turn waiting for it in OFFER goes on. */
static void omni_turn_gen_ready(void *arg)
{
    omni_turn_t *t = arg;

    if (t->gen_waited) {
        t->gen_waited = 0;
        omni_http_resume(t->r);
    }
}


/* --- the provider call ---------------------------------------------------- */

static void omni_turn_sse(
    omni_turn_t *t, const char *event, const char *fmt, const char *s, size_t n)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b, "event: %s\ndata: ", event);
    if (s != NULL) {
        evbuffer_add_printf(b, "{\"%s\":", fmt);
        omni_json_put_string(b, s, n);
        evbuffer_add(b, "}", 1);
    } else {
        evbuffer_add_printf(b, "%s", fmt);
    }
    evbuffer_add(b, "\n\n", 2);
    omni_respond_chunk(t->r, b);
    evbuffer_free(b);
}


static int omni_turn_on_text(void *arg, const char *s, size_t n)
{
    omni_turn_t *t = arg;
    struct evbuffer *b;
    char channel[64];

    if (!t->stream || t->gone) {
        return 0;
    }
    if (!t->started) {
        t->started = 1;
        omni_respond_start(t->r, 200, "text/event-stream");
        omni_log(OMNI_LOG_DEBUG, "chat turn first byte",
            "\"asked_us\":%llu,\"begun_us\":%llu,\"sent_us\":%llu,"
            "\"first_us\":%llu,\"request_id\":\"%s\"",
            (unsigned long long)t->asked_us, (unsigned long long)t->begun_us,
            (unsigned long long)t->sent_us,
            (unsigned long long)omni_req_since_us(t->r), t->r->request_id);
    }
    omni_turn_sse(t, "delta", "text", s, n);
    snprintf(channel, sizeof(channel), "conversation-%s", t->conv);
    b = evbuffer_new();
    if (b != NULL) {
        evbuffer_add(b, "{\"text\":", 8);
        omni_json_put_string(b, s, n);
        evbuffer_add(b, "}", 2); /* with its NUL */
        omni_publish(
            channel, "chat.delta", (const char *)evbuffer_pullup(b, -1));
        evbuffer_free(b);
    }
    return 0;
}


static void omni_turn_on_headers(void *arg, omni_out_req_t *q, long status)
{
    omni_turn_t *t = arg;
    const char *ct = omni_out_header(q, "Content-Type");
    const char *ra = omni_out_header(q, "Retry-After");

    t->http_status = status;
    if (status == 429 && ra != NULL && strlen(ra) < sizeof(t->retry_after)
        && strspn(ra, "0123456789") == strlen(ra)) {
        snprintf(t->retry_after, sizeof(t->retry_after), "%s", ra);
    }
    t->sse_body = status >= 200 && status < 300 && ct != NULL
                  && strncmp(ct, "text/event-stream", 17) == 0;
}


/* Ends the transfer from inside its own callback: a reply that went wrong
 * (garbage, an error event, over a cap) is not read to its end, which an
 * endless stream never reaches. */
static void omni_turn_stop_reading(omni_turn_t *t, omni_out_error_t e)
{
    omni_out_cancel(t->q);
    t->q = NULL;
    t->out_error = e;
    t->latency_ms = omni_billing_now_ms() - t->attempt_ms;
    event_add(t->wake, &(struct timeval){0, 0});
}


static int omni_turn_on_data(
    void *arg, omni_out_req_t *q, const char *buf, size_t len)
{
    omni_turn_t *t = arg;

    if (!t->sse_body) {
        if (evbuffer_get_length(t->body) + len > 4 * 1024 * 1024) {
            snprintf(t->w.error, sizeof(t->w.error), "bad_response");
            snprintf(t->w.message, sizeof(t->w.message),
                "the provider's answer is larger than 4 MiB");
            omni_turn_stop_reading(t, OMNI_OUT_TOO_LARGE);
            return 0;
        }
        evbuffer_add(t->body, buf, len);
        return 0;
    }
    if (omni_wire_feed(&t->w, buf, len) != 0 || t->w.error[0] != '\0') {
        omni_turn_stop_reading(t, OMNI_OUT_PROTOCOL);
    }
    return 0;
}


static void omni_turn_on_done(void *arg, const omni_out_result_t *res)
{
    omni_turn_t *t = arg;

    t->q = NULL;
    t->out_error = res->error;
    t->latency_ms = omni_billing_now_ms() - t->attempt_ms;
    omni_http_resume(t->r);
}


static void omni_turn_woken(evutil_socket_t fd, short what, void *arg)
{
    omni_turn_t *t = arg;

    omni_http_resume(t->r);
}


static void omni_turn_free_tools(omni_turn_t *t);
static void omni_turn_client_gone(void *arg);


static void omni_turn_watch(evutil_socket_t fd, short what, void *arg)
{
    omni_turn_t *t = arg;

    if (!t->gone && omni_req_client_gone(t->r)) {
        omni_req_on_close(t->r, NULL, NULL);
        omni_turn_client_gone(t);
    }
}

/* The client went away: the provider's transfer and the tool calls are
 * cancelled now; the turn goes on (bills, saves) from the loop. */
static void omni_turn_client_gone(void *arg)
{
    omni_turn_t *t = arg;
    struct timeval now = {0, 0};

    t->gone = 1;
    if (t->q != NULL) {
        omni_out_cancel(t->q);
        t->q = NULL;
        t->out_error = OMNI_OUT_CANCELLED;
        t->latency_ms = omni_billing_now_ms() - t->attempt_ms;
        event_add(t->wake, &now);
    }
    if (t->pending_tools > 0) {
        omni_turn_free_tools(t);
        event_add(t->wake, &now);
    }
}


/* Starts the attempt on t->target: 0, or -1 when it could not start. */
static int omni_turn_call(omni_turn_t *t)
{
    const omni_llm_target_t *g = &t->targets[t->target];
    omni_wire_kind_t kind = strcmp(g->type, "anthropic") == 0
                                ? OMNI_WIRE_ANTHROPIC
                                : OMNI_WIRE_OPENAI;
    omni_out_spec_t spec = {0};
    struct evbuffer *req;
    int rc = -1;

    omni_wire_free(&t->w);
    omni_wire_init(&t->w, kind);
    t->w.on_text = omni_turn_on_text;
    t->w.arg = t;
    evbuffer_drain(t->body, evbuffer_get_length(t->body));
    t->sse_body = 0;
    t->http_status = 0;
    t->retry_after[0] = '\0';
    t->out_error = OMNI_OUT_OK;
    t->ran_tools = 0;
    t->attempt_ms = omni_billing_now_ms();
    t->attempt_wall_us = omni_billing_wall_us();
    t->latency_ms = 0;

    req = evbuffer_new();
    if (req == NULL
        || omni_wire_request(req, kind, g->model, t->system, t->msgs, t->nmsgs,
               t->round < t->max_rounds ? t->tools : NULL,
               t->round < t->max_rounds ? t->ntools : 0, g->max_output_tokens,
               t->stream)
               != 0) {
        goto failed;
    }
    spec.on_headers = omni_turn_on_headers;
    spec.on_data = omni_turn_on_data;
    spec.on_done = omni_turn_on_done;
    t->q = omni_provider_call(t->r, g, kind, NULL, req, t->stream, &spec, t);
    if (t->sent_us == 0) {
        t->sent_us = omni_req_since_us(t->r);
    }
    rc = t->q != NULL ? 0 : -1;

failed:
    if (req != NULL) {
        evbuffer_free(req);
    }
    return rc;
}


/* Reads what the attempt left: 1 when it succeeded. */
static int omni_turn_outcome(omni_turn_t *t)
{
    size_t n = evbuffer_get_length(t->body);
    const char *body = n ? (const char *)evbuffer_pullup(t->body, -1) : "";

    if (t->out_error != OMNI_OUT_OK) {
        if (t->w.error[0] == '\0') {
            snprintf(t->w.error, sizeof(t->w.error), "%s",
                t->out_error == OMNI_OUT_TIMEOUT ? "timeout"
                                                 : "upstream_error");
            snprintf(t->w.message, sizeof(t->w.message),
                "the provider's transfer failed: %s",
                omni_out_error_name(t->out_error));
        }
        return 0;
    }
    if (t->http_status < 200 || t->http_status > 299) {
        omni_wire_error_body(&t->w, t->http_status, body, n);
        return 0;
    }
    if (!t->sse_body) {
        if (omni_wire_body(&t->w, body, n) != 0) {
            return 0;
        }
        if (t->stream && t->w.text.len > 0) {
            /* a provider that answered a stream request whole */
            omni_turn_on_text(t, t->w.text.buf, t->w.text.len);
        }
    }
    if (t->w.error[0] != '\0') {
        return 0;
    }
    if (!t->w.done) {
        snprintf(t->w.error, sizeof(t->w.error), "upstream_error");
        snprintf(t->w.message, sizeof(t->w.message),
            "the provider's stream ended before its end");
        return 0;
    }
    return 1;
}


/* --- saving and answering ------------------------------------------------- */

/* The model's tool calls as the JSON array [{id, name, arguments}], in
 * the arena; NULL when there are none. */
static const char *omni_turn_calls_json(omni_turn_t *t)
{
    struct evbuffer *b;
    const char *s;
    int i;

    if (t->w.ntools == 0 || (b = evbuffer_new()) == NULL) {
        return NULL;
    }
    evbuffer_add(b, "[", 1);
    for (i = 0; i < t->w.ntools; i++) {
        omni_wire_tool_t *c = &t->w.tools[i];

        evbuffer_add_printf(b, "%s{\"id\":", i ? "," : "");
        omni_json_put_string(b, c->id.buf ? c->id.buf : "", c->id.len);
        evbuffer_add_printf(b, ",\"name\":");
        omni_json_put_string(b, c->name.buf ? c->name.buf : "", c->name.len);
        evbuffer_add_printf(b, ",\"arguments\":");
        omni_json_put_string(b, c->args.buf ? c->args.buf : "", c->args.len);
        evbuffer_add(b, "}", 1);
    }
    evbuffer_add(b, "]", 1);
    s = omni_arena_strndup(&t->r->arena, (const char *)evbuffer_pullup(b, -1),
        evbuffer_get_length(b));
    evbuffer_free(b);
    return s;
}


/* Keeps the attempt's assistant message (with its usage) for turn_save. */
/* A random (version 4) UUID for a message the turn will save, so that
 * its ledger row, queued before the save, can name it. */
static void omni_turn_uuid(char out[37])
{
    unsigned char b[16];
    size_t i, k = 0;

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        /* the kernel's pool never runs dry after boot: only an old kernel */
        for (i = 0; i < sizeof(b); i++) {
            b[i] = (unsigned char)random();
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[k++] = '-';
        }
        k += (size_t)snprintf(out + k, 3, "%02x", b[i]);
    }
    out[36] = '\0';
}


static void omni_turn_keep(
    omni_turn_t *t, const char *status, const char *calls, const char *id)
{
    const omni_llm_target_t *g = &t->targets[t->target];
    struct evbuffer *b = t->saved;
    int64_t cost = omni_billing_cost(
        g, t->w.input_tokens, t->w.output_tokens, t->w.cached_tokens);

    evbuffer_add_printf(b,
        "%s{\"id\":\"%s\",\"role\":\"assistant\",\"content\":",
        evbuffer_get_length(b) ? "," : "", id);
    omni_json_put_string(b, t->w.text.buf ? t->w.text.buf : "", t->w.text.len);
    if (calls != NULL) {
        evbuffer_add_printf(b, ",\"tool_calls\":%s", calls);
    }
    evbuffer_add_printf(b,
        ",\"input_tokens\":%lld,\"output_tokens\":%lld,\"cached_tokens\":%lld,"
        "\"cost\":%lld.%09lld,\"latency_ms\":%llu,\"status\":\"%s\"",
        (long long)t->w.input_tokens, (long long)t->w.output_tokens,
        (long long)t->w.cached_tokens, (long long)(cost / 1000000000),
        (long long)(cost % 1000000000),
        (unsigned long long)(omni_billing_now_ms() - t->attempt_ms), status);
    omni_billing_json_str(b, "provider", g->provider);
    omni_billing_json_str(b, "model", g->model);
    omni_billing_json_str(b, "provider_request_id", t->w.request_id);
    evbuffer_add(b, "}", 1);
}


static void omni_turn_db_done(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_req_t *r = arg;

    r->db_status = st;
    r->db_res = res;
    omni_http_resume(r);
}


static void omni_turn_asked(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_turn_ask_t *a = arg;
    omni_turn_t *t = a->t;
    const char *v;

    if (t == NULL) {
        free(a);
        return;
    }
    if (st != OMNI_DB_OK || PQntuples(res) != 1) {
        v = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        a->state = OMNI_TURN_ASK_FAILED;
        omni_log(OMNI_LOG_ERROR, "chat turn: the user's message not saved",
            "\"status\":%d,\"sqlstate\":\"%s\",\"request_id\":\"%s\"", (int)st,
            v != NULL ? v : "", t->r->request_id);
    } else {
        v = PQgetvalue(res, 0, 0);
        a->state = strcmp(v, "ok") == 0         ? OMNI_TURN_ASK_OK
                   : strcmp(v, "no_model") == 0 ? OMNI_TURN_ASK_NO_MODEL
                                                : OMNI_TURN_ASK_NOT_FOUND;
    }
    if (a->waiting) {
        a->waiting = 0;
        omni_http_resume(t->r);
        return;
    }
    if (a->state != OMNI_TURN_ASK_OK && t->q != NULL) {
        /* no question, no answer: the provider's transfer stops now */
        omni_out_cancel(t->q);
        t->q = NULL;
        t->out_error = OMNI_OUT_CANCELLED;
        t->latency_ms = omni_billing_now_ms() - t->attempt_ms;
        event_add(t->wake, &(struct timeval){0, 0});
    }
}


/* Starts saving the user's message under t->mid. */
static void omni_turn_ask(omni_turn_t *t)
{
    const char *values[4];

    t->asked = 1;
    t->ask = calloc(1, sizeof(*t->ask));
    if (t->ask == NULL) {
        return; /* the turn answers 503 once the plan is in */
    }
    t->ask->t = t;
    values[0] = t->user;
    values[1] = t->conv;
    values[2] = t->mid;
    values[3] = t->content;
    if (omni_db_query(omni_clients.db, omni_turn_ask_stmt, 4, values,
            omni_turn_asked, t->ask)
        != OMNI_DB_OK) {
        t->ask->state = OMNI_TURN_ASK_FAILED;
    }
}


static int omni_turn_ask_state(omni_turn_t *t)
{
    if (!t->asked) {
        return OMNI_TURN_ASK_PENDING;
    }
    return t->ask != NULL ? t->ask->state : OMNI_TURN_ASK_FAILED;
}


/* 1 while the question's save is under way: the turn resumes once it has
 * answered. */
static int omni_turn_wait_ask(omni_turn_t *t)
{
    if (!t->asked) {
        omni_turn_ask(t);
    }
    if (omni_turn_ask_state(t) != OMNI_TURN_ASK_PENDING) {
        return 0;
    }
    t->ask->waiting = 1;
    return 1;
}


/* Queues a statement of the turn: 0; or -1 with r->db_status set and
 * nothing answered (the turn's own resources must go first: they live in
 * the request's arena, which an answer frees). */
static int omni_turn_query(
    omni_req_t *r, int stmt, int nparams, const char *const *values)
{
    omni_db_status_t st = omni_db_query(
        omni_clients.db, stmt, nparams, values, omni_turn_db_done, r);

    if (st != OMNI_DB_OK) {
        r->db_status = st;
        r->db_res = NULL;
        return -1;
    }
    return 0;
}


/* Sends this turn's messages to turn_save: 0, or -1 (nothing answered). */
static int omni_turn_save(omni_turn_t *t)
{
    const char *values[3];
    size_t n = evbuffer_get_length(t->saved);
    char *text = omni_arena_alloc(&t->r->arena, n + 3);

    if (text == NULL) {
        return -1;
    }
    text[0] = '[';
    evbuffer_copyout(t->saved, text + 1, n);
    text[n + 1] = ']';
    text[n + 2] = '\0';
    values[0] = t->user;
    values[1] = t->conv;
    values[2] = text;
    return omni_turn_query(t->r, omni_turn_save_stmt, 3, values);
}


/* A tool_call or tool_result: an SSE event when streaming, and published
 * on the conversation's channel (chat.tool_call, chat.tool_result) as the
 * loop's progress. */
static void omni_turn_sse_tool(omni_turn_t *t, const char *event,
    const char *id, const char *name, const char *key, const char *value,
    int is_error)
{
    struct evbuffer *j = evbuffer_new(), *b = NULL;
    char channel[64], type[32];
    size_t n;

    if (j == NULL) {
        return;
    }
    evbuffer_add_printf(j, "{\"id\":");
    omni_json_put_string(j, id ? id : "", id ? strlen(id) : 0);
    evbuffer_add_printf(j, ",\"name\":");
    omni_json_put_string(j, name ? name : "", name ? strlen(name) : 0);
    evbuffer_add_printf(j, ",\"%s\":", key);
    omni_json_put_string(j, value ? value : "", value ? strlen(value) : 0);
    if (strcmp(event, "tool_result") == 0) {
        evbuffer_add_printf(j, ",\"is_error\":%s", is_error ? "true" : "false");
    }
    evbuffer_add(j, "}", 2); /* with its NUL */
    n = evbuffer_get_length(j) - 1;
    snprintf(channel, sizeof(channel), "conversation-%s", t->conv);
    snprintf(type, sizeof(type), "chat.%s", event);
    omni_publish(channel, type, (const char *)evbuffer_pullup(j, -1));
    if (t->stream && !t->gone && (b = evbuffer_new()) != NULL) {
        if (!t->started) {
            t->started = 1;
            omni_respond_start(t->r, 200, "text/event-stream");
        }
        evbuffer_add_printf(b, "event: %s\ndata: ", event);
        evbuffer_add(b, evbuffer_pullup(j, -1), n);
        evbuffer_add(b, "\n\n", 2);
        omni_respond_chunk(t->r, b);
        evbuffer_free(b);
    }
    evbuffer_free(j);
}


static void omni_turn_tool_done(
    void *arg, int is_error, const char *text, size_t len)
{
    omni_turn_result_t *res = arg;
    omni_turn_t *t = res->t;

    res->call = NULL;
    res->done = 1;
    res->is_error = is_error;
    res->text = omni_arena_strndup(&t->r->arena, text, len);
    if (res->text == NULL) {
        res->text = "out of memory";
        res->is_error = 1;
    }
    if (--t->pending_tools == 0) {
        omni_http_resume(t->r);
    }
}


/* An MCP tool's progress notification during its call: a tool_progress
 * event {id, name, progress, total?, message?} on the stream and
 * chat.tool_progress on the conversation's channel. */
static void omni_turn_tool_progress(void *arg, const omni_json_t *params)
{
    omni_turn_result_t *res = arg;
    omni_turn_t *t = res->t;
    omni_wire_tool_t *c = &t->w.tools[res - t->results];
    static const char *const keys[] = {"progress", "total", "message"};
    struct evbuffer *j = evbuffer_new(), *b = NULL;
    const omni_json_t *v;
    char channel[64];
    size_t i, n;

    if (j == NULL) {
        return;
    }
    evbuffer_add_printf(j, "{\"id\":");
    omni_json_put_string(j, c->id.buf ? c->id.buf : "", c->id.len);
    evbuffer_add_printf(j, ",\"name\":");
    omni_json_put_string(j, c->name.buf ? c->name.buf : "", c->name.len);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        v = omni_json_get(params, keys[i]);
        if (v != NULL && v->type != OMNI_JSON_NULL && v->type != OMNI_JSON_ARRAY
            && v->type != OMNI_JSON_OBJECT) {
            evbuffer_add_printf(j, ",\"%s\":", keys[i]);
            omni_json_write(j, v);
        }
    }
    evbuffer_add(j, "}", 2); /* with its NUL */
    n = evbuffer_get_length(j) - 1;
    snprintf(channel, sizeof(channel), "conversation-%s", t->conv);
    omni_publish(
        channel, "chat.tool_progress", (const char *)evbuffer_pullup(j, -1));
    if (t->stream && !t->gone && (b = evbuffer_new()) != NULL) {
        if (!t->started) {
            t->started = 1;
            omni_respond_start(t->r, 200, "text/event-stream");
        }
        evbuffer_add_printf(b, "event: tool_progress\ndata: ");
        evbuffer_add(b, evbuffer_pullup(j, -1), n);
        evbuffer_add(b, "\n\n", 2);
        omni_respond_chunk(t->r, b);
        evbuffer_free(b);
    }
    evbuffer_free(j);
}


/* Starts the model's tool calls, all at once. */
static void omni_turn_run_tools(omni_turn_t *t, const char *calls)
{
    const char *role = t->role != NULL ? t->role : "";
    omni_wire_msg_t *m = &t->msgs[t->nmsgs++];
    int i;

    memset(m, 0, sizeof(*m));
    m->role = "assistant";
    m->content = omni_arena_strndup(
        &t->r->arena, t->w.text.buf ? t->w.text.buf : "", t->w.text.len);
    m->tool_calls = calls;
    t->ran_tools = 1;
    t->nresults = t->w.ntools;
    t->pending_tools = t->w.ntools;
    for (i = 0; i < t->w.ntools; i++) {
        omni_wire_tool_t *c = &t->w.tools[i];
        omni_turn_result_t *res = &t->results[i];

        memset(res, 0, sizeof(*res));
        res->t = t;
        omni_turn_sse_tool(t, "tool_call", c->id.buf, c->name.buf, "arguments",
            c->args.buf, 0);
        res->call = omni_mcp_tool_call(
            role, t->user, c->name.buf, c->args.buf, omni_turn_tool_done, res);
        if (res->call == NULL) {
            omni_turn_tool_done(res, 1, "out of memory", 13);
        } else {
            omni_mcp_tool_on_progress(res->call, omni_turn_tool_progress, res);
        }
    }
}


/* Adds the tool results to the history and to what is saved. */
static void omni_turn_tool_results(omni_turn_t *t)
{
    struct evbuffer *b = t->saved;
    int i;

    for (i = 0; i < t->nresults; i++) {
        omni_wire_tool_t *c = &t->w.tools[i];
        omni_turn_result_t *res = &t->results[i];
        omni_wire_msg_t *m = &t->msgs[t->nmsgs++];
        const char *id = omni_arena_strndup(
            &t->r->arena, c->id.buf ? c->id.buf : "", c->id.len);

        memset(m, 0, sizeof(*m));
        m->role = "tool";
        m->content = res->text;
        m->tool_call_id = id;
        m->is_error = res->is_error;
        omni_turn_sse_tool(t, "tool_result", c->id.buf, c->name.buf, "content",
            res->text, res->is_error);
        evbuffer_add_printf(b, ",{\"role\":\"tool\",\"content\":");
        omni_json_put_string(b, res->text, strlen(res->text));
        evbuffer_add_printf(b, ",\"tool_call_id\":");
        omni_json_put_string(b, id ? id : "", id ? strlen(id) : 0);
        evbuffer_add_printf(
            b, ",\"status\":\"%s\"}", res->is_error ? "error" : "ok");
    }
}


static void omni_turn_free_tools(omni_turn_t *t)
{
    int i;

    for (i = 0; i < t->nresults; i++) {
        if (t->results[i].call != NULL) {
            omni_mcp_tool_cancel(t->results[i].call);
            t->results[i].call = NULL;
        }
    }
    t->pending_tools = 0;
}


static void omni_turn_free(omni_turn_t *t)
{
    omni_offer_gen_drop(t->gen);
    t->gen = NULL;
    if (t->live) {
        t->live = 0;
        omni_turn_mem.live--;
    }
    if (t->q != NULL) {
        omni_out_cancel(t->q);
        t->q = NULL;
    }
    omni_turn_free_tools(t);
    if (t->ask != NULL) {
        if (t->ask->state == OMNI_TURN_ASK_PENDING) {
            t->ask->t = NULL;
        } else {
            free(t->ask);
        }
        t->ask = NULL;
    }
    if (t->saved != NULL) {
        evbuffer_free(t->saved);
        t->saved = NULL;
    }
    omni_budgets_settle(&t->bud);
    omni_wire_free(&t->w);
    if (t->body != NULL) {
        evbuffer_free(t->body);
        t->body = NULL;
    }
    if (t->wake != NULL) {
        event_free(t->wake);
        t->wake = NULL;
    }
    if (t->watch != NULL) {
        event_free(t->watch);
        t->watch = NULL;
    }
}


/* Ends the turn with an error: an SSE error event once streaming, else
 * the JSON answer. */
static void omni_turn_fail(
    omni_turn_t *t, int status, const char *code, const char *message)
{
    omni_req_t *r = t->r;
    struct evbuffer *b;

    omni_turn_free(t);
    if (!t->started) {
        omni_req_on_close(r, NULL, NULL);
        omni_respond_error(r, status, code, "%s", message);
        return;
    }
    b = evbuffer_new();
    if (b != NULL) {
        evbuffer_add_printf(b, "event: error\ndata: {\"error\":");
        omni_json_put_string(b, code, strlen(code));
        evbuffer_add_printf(b, ",\"message\":");
        omni_json_put_string(b, message, strlen(message));
        evbuffer_add(b, "}\n\n", 3);
        omni_respond_chunk(r, b);
        evbuffer_free(b);
    }
    omni_respond_end(r);
}


/* Ends a turn whose question could not be saved. */
static void omni_turn_ask_fail(omni_turn_t *t)
{
    char msg[128];

    switch (omni_turn_ask_state(t)) {
    case OMNI_TURN_ASK_NOT_FOUND:
        snprintf(msg, sizeof(msg), "no conversation \"%.64s\"", t->conv);
        omni_turn_fail(t, 404, "not_found", msg);
        return;
    case OMNI_TURN_ASK_NO_MODEL:
        omni_turn_fail(t, 422, "invalid_value",
            "model: no configured provider serves the conversation's model");
        return;
    default:
        omni_turn_fail(
            t, 503, "database_unavailable", "the message could not be saved");
    }
}


static void omni_turn_tool_events(omni_turn_t *t)
{
    struct evbuffer *b;
    int i;

    for (i = 0; i < t->w.ntools && t->started && !t->ran_tools; i++) {
        omni_wire_tool_t *c = &t->w.tools[i];

        b = evbuffer_new();
        if (b == NULL) {
            return;
        }
        evbuffer_add_printf(b, "event: tool_call\ndata: {\"id\":");
        omni_json_put_string(b, c->id.buf ? c->id.buf : "", c->id.len);
        evbuffer_add_printf(b, ",\"name\":");
        omni_json_put_string(b, c->name.buf ? c->name.buf : "", c->name.len);
        evbuffer_add_printf(b, ",\"arguments\":");
        omni_json_put_string(b, c->args.buf ? c->args.buf : "", c->args.len);
        evbuffer_add(b, "}\n\n", 3);
        omni_respond_chunk(t->r, b);
        evbuffer_free(b);
    }
}


/* The saved reply's answer: 201 with the message, or the stream's last
 * events. */
static void omni_turn_answer(omni_turn_t *t, const char *msg, int ok)
{
    omni_req_t *r = t->r;
    struct evbuffer *b;
    const char *id;
    char idbuf[40] = "";

    id = msg != NULL ? strstr(msg, "\"id\": \"") : NULL;
    if (id != NULL && strlen(id) >= 7 + 36) {
        memcpy(idbuf, id + 7, 36);
    }
    if (!t->stream || (!t->started && t->gone)) {
        omni_turn_free(t);
        omni_req_on_close(r, NULL, NULL);
        b = evbuffer_new();
        if (b == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        evbuffer_add_printf(b, "%s\n", msg != NULL ? msg : "{}");
        omni_api_json(r, 201, b);
        evbuffer_free(b);
        return;
    }
    if (!t->started) {
        t->started = 1;
        omni_respond_start(r, 200, "text/event-stream");
    }
    omni_turn_tool_events(t);
    b = evbuffer_new();
    if (b != NULL) {
        evbuffer_add_printf(b,
            "event: usage\ndata: {\"input_tokens\":%lld,\"output_tokens\":%lld,"
            "\"cached_tokens\":%lld,\"cost\":%lld.%09lld}\n\n",
            (long long)t->sum_in, (long long)t->sum_out,
            (long long)t->sum_cached,
            (long long)(t->bud.billed_cost / 1000000000),
            (long long)(t->bud.billed_cost % 1000000000));
        if (ok) {
            evbuffer_add_printf(
                b, "event: done\ndata: {\"message_id\":\"%s\"}\n\n", idbuf);
        } else {
            evbuffer_add_printf(b, "event: error\ndata: {\"error\":");
            omni_json_put_string(b, t->w.error, strlen(t->w.error));
            evbuffer_add_printf(b, ",\"message\":");
            omni_json_put_string(b, t->w.message, strlen(t->w.message));
            evbuffer_add(b, "}\n\n", 3);
        }
        omni_respond_chunk(r, b);
        evbuffer_free(b);
    }
    omni_turn_free(t);
    omni_respond_end(r);
}


/* --- the state machine --------------------------------------------------- */

void omni_turn_post(omni_req_t *r)
{
    omni_turn_t *t = r->data;
    const omni_identity_t *id;
    const char *values[7];
    char chars[16];
    const char *status, *calls;
    char mid[37];
    char msg[400];
    int ok;

    switch (r->state) {

    case OMNI_TURN_START:
        id = omni_req_identity(r);
        if (id->id == NULL) {
            omni_respond_error(
                r, 401, "missing_credentials", "this route needs a user");
            return;
        }
        if (id->rank < 2) {
            omni_respond_error(r, 403, "forbidden",
                "the viewer role cannot change chat objects");
            return;
        }
        t = omni_arena_alloc(&r->arena, sizeof(*t));
        if (t == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        memset(t, 0, sizeof(*t));
        t->r = r;
        t->user = id->id;
        t->role = id->role != NULL ? id->role : "";
        t->conv = omni_req_param(r, 0);
        if (omni_turn_read_body(r, t) != 0) {
            return;
        }
        if (!omni_uuid_valid(t->conv)) {
            omni_respond_error(
                r, 404, "not_found", "no conversation \"%.64s\"", t->conv);
            return;
        }
        t->body = evbuffer_new();
        t->saved = evbuffer_new();
        t->wake = event_new(omni_clients.base, -1, 0, omni_turn_woken, t);
        if (t->body == NULL || t->saved == NULL || t->wake == NULL) {
            omni_turn_free(t);
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        omni_wire_init(&t->w, OMNI_WIRE_OPENAI);
        t->live = 1;
        if (++omni_turn_mem.live > omni_turn_mem.high) {
            omni_turn_mem.high = omni_turn_mem.live;
        }
        r->data = t;
        omni_turn_uuid(t->mid);
        snprintf(chars, sizeof(chars), "%zu", omni_turn_chars(t->content));
        values[0] = t->user;
        values[1] = t->conv;
        values[2] = t->mid;
        values[3] = chars;
        values[4] = t->role;
        values[5] = t->only;
        /* the tools come with the plan unless a list is kept for this
         * (role, filter) and the generation can be read to check it */
        if (omni_offer_key(t->offer_key, sizeof(t->offer_key), t->role, t->only)
            != 0) {
            t->offer_key[0] = '\0';
        }
        t->gen = omni_offer_gen_read(omni_turn_gen_ready, t);
        t->offer_asked = t->gen == NULL || t->offer_key[0] == '\0'
                         || !omni_offer_known(t->offer_key);
        values[6] = t->offer_asked ? "true" : "false";
        r->state = OMNI_TURN_BEGUN;
        if (omni_turn_query(r, omni_turn_plan_stmt, 7, values) != 0) {
            omni_turn_free(t);
            omni_api_db_failed(r);
            return;
        }
        t->asked_us = omni_req_since_us(r);
        return;

    case OMNI_TURN_BEGUN:
        if (r->db_status != OMNI_DB_OK || PQntuples(r->db_res) != 1) {
            omni_turn_free(t);
            omni_api_db_failed(r);
            return;
        }
        if (atoi(PQgetvalue(r->db_res, 0, 0)) != 200) {
            struct evbuffer *b = evbuffer_new();

            omni_turn_free(t);
            if (b == NULL) {
                omni_respond_error(r, 503, "overloaded", "out of memory");
                return;
            }
            evbuffer_add(
                b, PQgetvalue(r->db_res, 0, 1), PQgetlength(r->db_res, 0, 1));
            evbuffer_add(b, "\n", 1);
            omni_api_json(r, atoi(PQgetvalue(r->db_res, 0, 0)), b);
            evbuffer_free(b);
            return;
        }
        if (omni_turn_plan(
                t, PQgetvalue(r->db_res, 0, 1), PQgetlength(r->db_res, 0, 1))
                != 0
            || (t->offer_asked && !PQgetisnull(r->db_res, 0, 2)
                && (t->offer = omni_arena_strndup(&r->arena,
                        PQgetvalue(r->db_res, 0, 2),
                        PQgetlength(r->db_res, 0, 2)))
                       == NULL)) {
            omni_turn_free(t);
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        r->state = OMNI_TURN_OFFER;
        /* fall through */

    case OMNI_TURN_OFFER:
        if (t->offer == NULL && t->gen != NULL
            && !omni_offer_gen_done(t->gen)) {
            t->gen_waited = 1;
            return;
        }
        if (t->offer == NULL) {
            /* a list is kept: used while the generation has not moved,
             * else queried now, after the generation was read */
            t->offer =
                omni_offer_kept(t->offer_key, omni_offer_gen_value(t->gen));
            if (t->offer == NULL) {
                values[0] = t->role;
                values[1] = t->only;
                r->state = OMNI_TURN_OFFERED;
                if (omni_turn_query(r, omni_offer_stmt(), 2, values) != 0) {
                    omni_turn_free(t);
                    omni_api_db_failed(r);
                }
                return;
            }
        } else if (t->offer_key[0] != '\0' && !omni_offer_known(t->offer_key)
                   && omni_offer_gen_value(t->gen) >= 0) {
            /* the plan's list may predate the generation read beside it:
             * kept from a query sent after the read, off this turn's path */
            omni_offer_fill(
                t->offer_key, omni_offer_gen_value(t->gen), t->role, t->only);
        }
        /* fall through */

    case OMNI_TURN_OFFERED:
        if (r->state == OMNI_TURN_OFFERED) {
            if (r->db_status != OMNI_DB_OK || PQntuples(r->db_res) != 1
                || PQgetisnull(r->db_res, 0, 0)) {
                omni_turn_free(t);
                omni_api_db_failed(r);
                return;
            }
            omni_offer_keep(t->offer_key, omni_offer_gen_value(t->gen),
                PQgetvalue(r->db_res, 0, 0),
                (size_t)PQgetlength(r->db_res, 0, 0));
            t->offer = omni_arena_strndup(&r->arena,
                PQgetvalue(r->db_res, 0, 0), PQgetlength(r->db_res, 0, 0));
        }
        if (t->offer == NULL || omni_turn_offer(t) != 0) {
            omni_turn_free(t);
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        if (omni_turn_ask_state(t) > OMNI_TURN_ASK_OK) {
            omni_turn_ask_fail(t);
            return;
        }
        t->begun_us = omni_req_since_us(r);
        if (omni_req_on_close(r, omni_turn_client_gone, t) != 0) {
            t->gone = 1;
        }
        t->watch =
            event_new(omni_clients.base, -1, EV_PERSIST, omni_turn_watch, t);
        if (t->watch != NULL) {
            event_add(t->watch, &(struct timeval){0, 250000});
        }
        if (t->bud.n > 0) {
            omni_turn_ask(t);
            r->state = OMNI_TURN_RESERVED;
            if (omni_budgets_reserve(&t->bud, t->r) != 0) {
                t->bud.reply = -1;
                event_add(t->wake, &(struct timeval){0, 0});
            }
            return;
        }
        /* fall through */

    case OMNI_TURN_RESERVED:
        if (r->state == OMNI_TURN_RESERVED && t->round > 0
            && t->bud.reply != 0) {
            /* a later round of the tool loop: the turn ends here, what it
             * made so far saved */
            snprintf(t->w.error, sizeof(t->w.error), "%s",
                t->bud.reply > 0 ? "budget_exceeded" : "budget_unavailable");
            snprintf(t->w.message, sizeof(t->w.message),
                "the tool loop stopped: %s",
                t->bud.reply > 0 ? "the daily budget is spent"
                                 : "budgets cannot be checked now");
            r->state = OMNI_TURN_SAVED;
            t->ok = 0;
            if (omni_turn_save(t) != 0) {
                omni_turn_fail(t, 503, "database_unavailable",
                    "the reply could not be saved");
            }
            return;
        }
        if (omni_turn_ask_state(t) > OMNI_TURN_ASK_OK) {
            omni_turn_ask_fail(t);
            return;
        }
        if (r->state == OMNI_TURN_RESERVED) {
            if (t->bud.reply != 0 && omni_turn_wait_ask(t)) {
                return; /* the question is saved before the refusal */
            }
            if (t->bud.reply < 0) {
                omni_turn_fail(t, 503, "budget_unavailable",
                    "budgets cannot be checked now (Redis unavailable)");
                return;
            }
            if (t->bud.reply > 0) {
                snprintf(msg, sizeof(msg),
                    "the daily budget of %s is spent (this request may "
                    "need %lld tokens)",
                    t->bud.keys[t->bud.reply - 1],
                    (long long)t->bud.reserve_tokens);
                omni_turn_fail(t, 429, "budget_exceeded", msg);
                return;
            }
            t->bud.reserved++;
        }
        if (t->gone) {
            if (!t->asked) {
                omni_turn_ask(t); /* saved as before, for no one waiting */
            }
            omni_turn_fail(t, 499, "client_disconnected", "client gone");
            return;
        }
        /* fall through */

    case OMNI_TURN_CALL:
call:
        r->state = OMNI_TURN_CALLED;
        if (omni_turn_call(t) != 0) {
            /* answered from CALLED, once the question is saved */
            t->uncallable = 1;
            event_add(t->wake, &(struct timeval){0, 0});
        }
        if (!t->asked) {
            omni_turn_ask(t);
        }
        return;

    case OMNI_TURN_CALLED:
        if (omni_turn_wait_ask(t)) {
            return;
        }
        if (omni_turn_ask_state(t) != OMNI_TURN_ASK_OK) {
            if (t->started) {
                omni_ledger_add(t, "error", NULL); /* what the client had */
            }
            omni_turn_ask_fail(t);
            return;
        }
        if (t->uncallable) {
            omni_turn_fail(
                t, 502, "upstream_error", "the provider cannot be called");
            return;
        }
        ok = !t->gone && omni_turn_outcome(t);
        if (t->gone) {
            status = "client_disconnected";
        } else if (ok) {
            status = "ok";
        } else if (!t->started && t->target + 1 < t->ntargets) {
            omni_log(OMNI_LOG_WARN, "LLM provider failed, trying the next",
                "\"provider\":\"%s\",\"error\":\"%s\",\"request_id\":\"%s\"",
                t->targets[t->target].provider, t->w.error, r->request_id);
            omni_ledger_add(t, "fallback", NULL);
            t->target++;
            goto call;
        } else {
            status = "error";
        }
        if (!ok && !t->started && !t->gone && t->w.text.len == 0) {
            omni_ledger_add(t, status, NULL);
            snprintf(msg, sizeof(msg), "the provider failed: %s%s%s",
                t->w.error, t->w.message[0] ? ": " : "", t->w.message);
            if (t->retry_after[0] != '\0') {
                /* the provider's own advice, for a client that retries */
                omni_respond_header(r, "Retry-After", t->retry_after);
            }
            omni_turn_fail(t, t->out_error == OMNI_OUT_TIMEOUT ? 504 : 502,
                t->out_error == OMNI_OUT_TIMEOUT ? "upstream_timeout"
                                                 : "upstream_error",
                msg);
            return;
        }
        omni_turn_uuid(mid);
        omni_ledger_add(t, status, mid);
        calls = omni_turn_calls_json(t);
        omni_turn_keep(t, status, calls, mid);
        if (ok && calls != NULL && t->ntools > 0 && t->round < t->max_rounds) {
            r->state = OMNI_TURN_TOOLS;
            omni_turn_run_tools(t, calls);
            return;
        }
        r->state = OMNI_TURN_SAVED;
        t->ok = ok;
        if (omni_turn_save(t) != 0) {
            omni_turn_fail(
                t, 503, "database_unavailable", "the reply could not be saved");
        }
        return;

    case OMNI_TURN_TOOLS:
        if (t->pending_tools > 0 && !t->gone) {
            return; /* a spurious wake */
        }
        if (t->gone) {
            omni_turn_free_tools(t);
            r->state = OMNI_TURN_SAVED;
            t->ok = 0;
            if (omni_turn_save(t) != 0) {
                omni_turn_fail(t, 503, "database_unavailable",
                    "the reply could not be saved");
            }
            return;
        }
        omni_turn_tool_results(t);
        t->round++;
        if (t->bud.n > 0) {
            /* every round is a call of its own: reserved like the first */
            r->state = OMNI_TURN_RESERVED;
            if (omni_budgets_reserve(&t->bud, t->r) != 0) {
                t->bud.reply = -1;
                event_add(t->wake, &(struct timeval){0, 0});
            }
            return;
        }
        goto call;

    case OMNI_TURN_SAVED:
        if (r->db_status != OMNI_DB_OK || PQntuples(r->db_res) != 1) {
            if (t->started) {
                omni_turn_fail(t, 503, "database_unavailable",
                    "the reply could not be saved");
                return;
            }
            omni_turn_free(t);
            omni_api_db_failed(r);
            return;
        }
        omni_turn_answer(t,
            PQgetisnull(r->db_res, 0, 0) ? NULL : PQgetvalue(r->db_res, 0, 0),
            t->ok);
        return;
    }
}
