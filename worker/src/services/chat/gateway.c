/* gateway.c: the LLM gateway, POST /v1/chat/completions (OpenAI wire
 * format) and POST /v1/messages (Anthropic), GET /v1/models, so that the
 * providers' own SDKs work through Omni by changing their base URL.
 *
 *   START ─> ADMITTED (one Redis script: the generation of the admin
 *     │        state, the API key's tokens and requests per minute, the
 *     │        budgets, all taken or none) ── over: 429 (Retry-After)
 *     │          │ stale (or no plan cached) ^
 *     │          v                           │
 *     │        PLANNED (Postgres: targets of the model name or alias, the
 *     │          caller's budgets, the key's limits; cached per process
 *     │          under the generation read before it) ───┘
 *     v
 *   CALL <─ fallback (failed before the client's first byte)
 *     └─> CALLED ─> answer (passed through) or error
 *
 * A call whose plan is cached makes one Redis round trip before the
 * provider is called; an admin change bumps the generation after writing
 * Postgres (chat.c), so the very next call on any process plans again.
 * Redis unavailable: the plan comes from Postgres; the key's limits go
 * unchecked (as the module's), budgets answer 503.
 *
 * A target of the caller's own format gets the body as sent with the
 * model replaced by the target's, and the answer comes back as the
 * provider wrote it, a stream chunk by chunk, read by the wire parsers on
 * the way for the ledger. A target of the other format gets the request
 * translated (wire.c writes it) and the answer is rewritten in the
 * caller's format from what the parser read: text as it arrives, tool
 * calls whole at the end, usage and finish reasons mapped. Every attempt is one
 * ledger row tagged with the user and the API key. Once the client has had a
 * byte no other target is tried; a stream that fails after that ends with an
 * error in the caller's format (OpenAI: an error chunk, Anthropic: an error
 * event) and never with a normal end. Errors before it are answered in
 * the caller's format with the statuses the SDKs retry on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/json.h"
#include "io/clients.h"
#include "io/log.h"
#include "io/outbound.h"
#include "http/api.h"
#include "services/chat/billing.h"
#include "services/chat/gateway.h"
#include "services/chat/limits.h"
#include "services/chat/wire.h"

#define OMNI_GW_MAX_BODY (4 * 1024 * 1024)

#define OMNI_GW_PLANS 4096 /* plans cached per process; more: all dropped */

enum {
    OMNI_GW_START = 0,
    OMNI_GW_ADMITTED,
    OMNI_GW_PLANNED,
    OMNI_GW_CALLED,
    OMNI_GW_LISTED
};

/* A plan (gateway_plan's JSON) of user, model and API key, as of gen. */
typedef struct omni_gw_plan_s {
    struct omni_gw_plan_s *next;
    int64_t gen;
    time_t stored; /* CLOCK_MONOTONIC_COARSE seconds */
    size_t klen, len;
    char *key, *text;
} omni_gw_plan_t;

typedef struct {
    omni_req_t *r;
    omni_wire_kind_t fmt; /* the caller's */
    const char *user, *api_key, *model;
    int stream;
    int64_t max_tokens, input_estimate;

    omni_llm_target_t *targets;
    int ntargets, target;
    omni_budgets_t bud;
    omni_llm_limits_t lim;
    const char *plan_key;
    size_t plan_klen;
    int64_t gen;     /* of the plan held; -2: none */
    int admit_reply; /* omni_llm_admit's */
    int fresh;       /* the plan held came from Postgres in this call */
    int replans;
    uint64_t admitted_us, sent_us; /* since the request came: timings */

    omni_out_req_t *q;
    omni_wire_t w;
    struct evbuffer *body; /* a non-streamed or error body */
    int sse_body;
    long http_status;
    char retry_after[16];
    omni_out_error_t out_error;
    uint64_t attempt_ms, attempt_wall_us, latency_ms;

    omni_wire_kind_t tkind; /* the target's: translated when not fmt */
    int include_usage;      /* OpenAI stream_options.include_usage */
    int text_open;          /* a translated Anthropic text block began */
    int started;            /* the client has had its first byte */
    int gone;               /* the client went away */
    int provider_said;      /* the provider's own error event went through */
    struct event *wake;
} omni_gw_t;

static int omni_gw_plan_stmt, omni_gw_models_stmt;
static omni_gw_plan_t *omni_gw_plans[1024];
static int omni_gw_nplans;

static void omni_gw_event(omni_gw_t *t, const char *name, const char *fmt,
    const char *s, size_t n, const char *tail);
static void omni_gw_message_start(omni_gw_t *t);


/* Where the time to the client's first byte went (debug level). */
static void omni_gw_first_byte(omni_gw_t *t)
{
    omni_log(OMNI_LOG_DEBUG, "LLM gateway first byte",
        "\"admitted_us\":%llu,\"sent_us\":%llu,\"first_us\":%llu,"
        "\"replans\":%d,\"request_id\":\"%s\"",
        (unsigned long long)t->admitted_us, (unsigned long long)t->sent_us,
        (unsigned long long)omni_req_since_us(t->r), t->replans,
        t->r->request_id);
}


int omni_gateway_init(void)
{
    omni_gw_plan_stmt = omni_db_statement(
        "llm_gateway_plan", "SELECT omnichat.gateway_plan($1, $2, $3)");
    omni_gw_models_stmt = omni_db_statement(
        "llm_gateway_catalog", "SELECT omnichat.gateway_catalog()");
    return omni_gw_plan_stmt < 0 || omni_gw_models_stmt < 0 ? -1 : 0;
}


/* --- errors in the caller's format ---------------------------------------- */

static void omni_gw_error(omni_req_t *r, omni_wire_kind_t fmt, int status,
    const char *type, const char *code, const char *message)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    if (fmt == OMNI_WIRE_ANTHROPIC) {
        evbuffer_add_printf(b, "{\"type\":\"error\",\"error\":{\"type\":");
        omni_json_put_string(b, type, strlen(type));
        evbuffer_add_printf(b, ",\"message\":");
        omni_json_put_string(b, message, strlen(message));
        evbuffer_add_printf(b, "}}\n");
    } else {
        evbuffer_add_printf(b, "{\"error\":{\"message\":");
        omni_json_put_string(b, message, strlen(message));
        evbuffer_add_printf(b, ",\"type\":");
        omni_json_put_string(b, type, strlen(type));
        evbuffer_add_printf(b, ",\"param\":null,\"code\":");
        omni_json_put_string(b, code, strlen(code));
        evbuffer_add_printf(b, "}}\n");
    }
    omni_respond(r, status, "application/json", b);
    evbuffer_free(b);
}


/* The error type each format gives a status. */
static const char *omni_gw_type(omni_wire_kind_t fmt, int status)
{
    switch (status) {
    case 400:
    case 413:
    case 422:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return fmt == OMNI_WIRE_ANTHROPIC ? "permission_error"
                                          : "permission_denied";
    case 404:
        return fmt == OMNI_WIRE_ANTHROPIC ? "not_found_error"
                                          : "invalid_request_error";
    case 429:
        return fmt == OMNI_WIRE_ANTHROPIC ? "rate_limit_error" : "rate_limit";
    case 503:
        return fmt == OMNI_WIRE_ANTHROPIC ? "overloaded_error" : "server_error";
    default:
        return fmt == OMNI_WIRE_ANTHROPIC ? "api_error" : "server_error";
    }
}


static void omni_gw_fail(omni_req_t *r, omni_wire_kind_t fmt, int status,
    const char *code, const char *message)
{
    omni_gw_error(r, fmt, status, omni_gw_type(fmt, status), code, message);
}


/* --- the attempt ---------------------------------------------------------- */

static void omni_gw_free(omni_gw_t *t)
{
    if (t->q != NULL) {
        omni_out_cancel(t->q);
        t->q = NULL;
    }
    omni_budgets_settle(&t->bud);
    omni_llm_limits_settle(&t->lim, t->bud.billed_tokens);
    omni_wire_free(&t->w);
    if (t->body != NULL) {
        evbuffer_free(t->body);
        t->body = NULL;
    }
    if (t->wake != NULL) {
        event_free(t->wake);
        t->wake = NULL;
    }
}


static void omni_gw_on_headers(void *arg, omni_out_req_t *q, long status)
{
    omni_gw_t *t = arg;
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


static void omni_gw_stop_reading(omni_gw_t *t, omni_out_error_t e)
{
    omni_out_cancel(t->q);
    t->q = NULL;
    t->out_error = e;
    t->latency_ms = omni_billing_now_ms() - t->attempt_ms;
    event_add(t->wake, &(struct timeval){0, 0});
}


static int omni_gw_on_data(
    void *arg, omni_out_req_t *q, const char *buf, size_t len)
{
    omni_gw_t *t = arg;
    struct evbuffer *b;
    int rc;

    if (!t->sse_body) {
        if (evbuffer_get_length(t->body) + len > OMNI_GW_MAX_BODY) {
            snprintf(t->w.error, sizeof(t->w.error), "bad_response");
            snprintf(t->w.message, sizeof(t->w.message),
                "the provider's answer is larger than 4 MiB");
            omni_gw_stop_reading(t, OMNI_OUT_TOO_LARGE);
            return 0;
        }
        evbuffer_add(t->body, buf, len);
        return 0;
    }
    rc = omni_wire_feed(&t->w, buf, len);
    if (rc != 0 && t->w.error[0] == '\0') {
        snprintf(t->w.error, sizeof(t->w.error), "bad_response");
    }
    if (t->gone) {
        return 0;
    }
    if (t->tkind != t->fmt) {
        /* translated: on_text wrote the caller's chunks */
        if (rc != 0 || t->w.error[0] != '\0') {
            omni_gw_stop_reading(t, OMNI_OUT_PROTOCOL);
        }
        return 0;
    }
    /* the bytes as the provider wrote them: the caller speaks its format */
    if (!t->started) {
        t->started = 1;
        omni_respond_start(t->r, 200, "text/event-stream");
        omni_gw_first_byte(t);
    }
    b = evbuffer_new();
    if (b != NULL) {
        evbuffer_add(b, buf, len);
        omni_respond_chunk(t->r, b);
        evbuffer_free(b);
    }
    if (rc != 0) {
        omni_gw_stop_reading(t, OMNI_OUT_PROTOCOL);
    } else if (t->w.error[0] != '\0') {
        t->provider_said = 1;
        omni_gw_stop_reading(t, OMNI_OUT_PROTOCOL);
    }
    return 0;
}


static void omni_gw_on_done(void *arg, const omni_out_result_t *res)
{
    omni_gw_t *t = arg;

    t->q = NULL;
    t->out_error = res->error;
    t->latency_ms = omni_billing_now_ms() - t->attempt_ms;
    omni_http_resume(t->r);
}


static void omni_gw_woken(evutil_socket_t fd, short what, void *arg)
{
    omni_gw_t *t = arg;

    omni_http_resume(t->r);
}


static void omni_gw_client_gone(void *arg)
{
    omni_gw_t *t = arg;

    t->gone = 1;
    if (t->q != NULL) {
        omni_out_cancel(t->q);
        t->q = NULL;
        t->out_error = OMNI_OUT_CANCELLED;
        t->latency_ms = omni_billing_now_ms() - t->attempt_ms;
        event_add(t->wake, &(struct timeval){0, 0});
    }
}


/* The caller's body with "model" the target's. */
static int omni_gw_body(omni_gw_t *t, struct evbuffer *out, const char *model)
{
    const omni_json_t *j = t->r->json;
    size_t i;

    evbuffer_add(out, "{", 1);
    for (i = 0; i < j->u.obj.len; i++) {
        const char *k = j->u.obj.keys[i];

        if (i > 0) {
            evbuffer_add(out, ",", 1);
        }
        omni_json_put_string(out, k, strlen(k));
        evbuffer_add(out, ":", 1);
        if (strcmp(k, "model") == 0) {
            omni_json_put_string(out, model, strlen(model));
        } else if (omni_json_write(out, j->u.obj.values[i]) != 0) {
            return -1;
        }
    }
    evbuffer_add(out, "}", 1);
    return 0;
}


/* --- OpenAI caller, Anthropic target -------------------------------------- */

/* OpenAI content (a string, or parts of which the text ones count) as
 * text in the arena. */
static const char *omni_gw_text(omni_arena_t *a, const omni_json_t *v)
{
    struct evbuffer *b;
    const char *s;
    size_t i;

    if (v == NULL || v->type == OMNI_JSON_NULL) {
        return "";
    }
    if (v->type != OMNI_JSON_ARRAY) {
        s = omni_json_string(v);
        return s != NULL ? s : "";
    }
    if ((b = evbuffer_new()) == NULL) {
        return NULL;
    }
    for (i = 0; i < v->u.arr.len; i++) {
        s = omni_json_string(omni_json_get(v->u.arr.items[i], "text"));
        if (s != NULL) {
            evbuffer_add(b, s, strlen(s));
        }
    }
    s = omni_arena_strndup(
        a, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    return s;
}


/* The JSON text of v in the arena, or dflt when v is absent. */
static const char *omni_gw_json(
    omni_arena_t *a, const omni_json_t *v, const char *dflt)
{
    struct evbuffer *b;
    const char *s;

    if (v == NULL || v->type == OMNI_JSON_NULL) {
        return dflt;
    }
    if ((b = evbuffer_new()) == NULL || omni_json_write(b, v) != 0) {
        if (b != NULL) {
            evbuffer_free(b);
        }
        return NULL;
    }
    s = omni_arena_strndup(
        a, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    return s;
}


/* Appends the sampling options and tool_choice the Anthropic request
 * shares with the OpenAI one to its body (which ends with "}"). */
static int omni_gw_translate_options(const omni_json_t *j, struct evbuffer *out,
    int ntools, struct evbuffer *body)
{
    const omni_json_t *v, *stop = omni_json_get(j, "stop");
    const char *choice = NULL, *name = NULL;
    const char *p = (const char *)evbuffer_pullup(body, -1);
    size_t n = evbuffer_get_length(body);
    int parallel = 1;

    while (n > 0 && p[n - 1] != '}') {
        n--;
    }
    if (n == 0) {
        return -1;
    }
    evbuffer_add(out, p, n - 1);
    if ((v = omni_json_get(j, "temperature")) != NULL
        && v->type == OMNI_JSON_NUMBER) {
        evbuffer_add_printf(out, ",\"temperature\":");
        omni_json_write(out, v);
    }
    if ((v = omni_json_get(j, "top_p")) != NULL
        && v->type == OMNI_JSON_NUMBER) {
        evbuffer_add_printf(out, ",\"top_p\":");
        omni_json_write(out, v);
    }
    if (stop != NULL && stop->type == OMNI_JSON_STRING) {
        evbuffer_add_printf(out, ",\"stop_sequences\":[");
        omni_json_write(out, stop);
        evbuffer_add_printf(out, "]");
    } else if (stop != NULL && stop->type == OMNI_JSON_ARRAY
               && stop->u.arr.len > 0) {
        evbuffer_add_printf(out, ",\"stop_sequences\":");
        omni_json_write(out, stop);
    }
    v = omni_json_get(j, "parallel_tool_calls");
    if (v != NULL) {
        omni_json_bool(v, &parallel);
    }
    v = omni_json_get(j, "tool_choice");
    if (v != NULL && v->type == OMNI_JSON_STRING) {
        choice = omni_json_string(v);
        choice = strcmp(choice, "required") == 0 ? "any" : choice;
    } else if (v != NULL && v->type == OMNI_JSON_OBJECT) {
        name = omni_json_string(
            omni_json_get(omni_json_get(v, "function"), "name"));
        choice = name != NULL ? "tool" : NULL;
    }
    if (ntools > 0 && (choice != NULL || !parallel)
        && (choice == NULL || strcmp(choice, "auto") == 0
            || strcmp(choice, "any") == 0 || strcmp(choice, "none") == 0
            || strcmp(choice, "tool") == 0)) {
        evbuffer_add_printf(out, ",\"tool_choice\":{\"type\":\"%s\"",
            choice != NULL ? choice : "auto");
        if (name != NULL) {
            evbuffer_add_printf(out, ",\"name\":");
            omni_json_put_string(out, name, strlen(name));
        }
        if (!parallel && (choice == NULL || strcmp(choice, "none") != 0)) {
            evbuffer_add_printf(out, ",\"disable_parallel_tool_use\":true");
        }
        evbuffer_add_printf(out, "}");
    }
    evbuffer_add_printf(out, "}");
    return 0;
}


/* An OpenAI Chat Completions body as an Anthropic Messages request:
 * system and developer messages become the system prompt, assistant
 * tool_calls tool_use blocks, tool messages tool_result blocks, tools
 * their input_schema. 0, or -1. */
static int omni_gw_translate_request(
    omni_gw_t *t, struct evbuffer *out, const omni_llm_target_t *g)
{
    omni_arena_t *a = &t->r->arena;
    const omni_json_t *j = t->r->json, *arr, *e, *f, *calls;
    omni_wire_msg_t *msgs;
    omni_wire_tooldef_t *tools;
    struct evbuffer *sys = evbuffer_new(), *cb, *body;
    const char *role, *text, *system;
    int nmsgs = 0, ntools = 0, rc = -1;
    int64_t max = t->max_tokens > 0 && t->max_tokens < g->max_output_tokens
                      ? t->max_tokens
                      : g->max_output_tokens;
    size_t i, k;

    arr = omni_json_get(j, "messages");
    msgs = omni_arena_alloc(a,
        sizeof(*msgs)
            * (arr != NULL && arr->type == OMNI_JSON_ARRAY ? arr->u.arr.len + 1
                                                           : 1));
    if (sys == NULL || msgs == NULL) {
        goto failed;
    }
    for (i = 0;
         arr != NULL && arr->type == OMNI_JSON_ARRAY && i < arr->u.arr.len;
         i++) {
        e = arr->u.arr.items[i];
        role = omni_json_string(omni_json_get(e, "role"));
        text = omni_gw_text(a, omni_json_get(e, "content"));
        if (role == NULL || text == NULL) {
            goto failed;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            if (evbuffer_get_length(sys) > 0) {
                evbuffer_add(sys, "\n\n", 2);
            }
            evbuffer_add(sys, text, strlen(text));
            continue;
        }
        memset(&msgs[nmsgs], 0, sizeof(msgs[nmsgs]));
        msgs[nmsgs].role = role;
        msgs[nmsgs].content = text;
        msgs[nmsgs].tool_call_id =
            omni_json_string(omni_json_get(e, "tool_call_id"));
        calls = omni_json_get(e, "tool_calls");
        if (calls != NULL && calls->type == OMNI_JSON_ARRAY
            && calls->u.arr.len > 0) {
            /* [{id, name, arguments}], what wire.c writes as tool_use */
            if ((cb = evbuffer_new()) == NULL) {
                goto failed;
            }
            evbuffer_add(cb, "[", 1);
            for (k = 0; k < calls->u.arr.len; k++) {
                f = omni_json_get(calls->u.arr.items[k], "function");
                evbuffer_add_printf(cb, "%s{\"id\":", k ? "," : "");
                omni_json_write(cb, omni_json_get(calls->u.arr.items[k], "id"));
                evbuffer_add(cb, ",\"name\":", 8);
                omni_json_write(cb, omni_json_get(f, "name"));
                evbuffer_add(cb, ",\"arguments\":", 13);
                omni_json_write(cb, omni_json_get(f, "arguments"));
                evbuffer_add(cb, "}", 1);
            }
            evbuffer_add(cb, "]", 1);
            msgs[nmsgs].tool_calls = omni_arena_strndup(a,
                (const char *)evbuffer_pullup(cb, -1), evbuffer_get_length(cb));
            evbuffer_free(cb);
        }
        nmsgs++;
    }

    arr = omni_json_get(j, "tools");
    tools = omni_arena_alloc(a,
        sizeof(*tools)
            * (arr != NULL && arr->type == OMNI_JSON_ARRAY ? arr->u.arr.len + 1
                                                           : 1));
    if (tools == NULL) {
        goto failed;
    }
    for (i = 0;
         arr != NULL && arr->type == OMNI_JSON_ARRAY && i < arr->u.arr.len;
         i++) {
        f = omni_json_get(arr->u.arr.items[i], "function");
        tools[ntools].name = omni_json_string(omni_json_get(f, "name"));
        tools[ntools].description =
            omni_json_string(omni_json_get(f, "description"));
        tools[ntools].schema = omni_gw_json(
            a, omni_json_get(f, "parameters"), "{\"type\":\"object\"}");
        if (tools[ntools].name == NULL || tools[ntools].schema == NULL) {
            goto failed;
        }
        ntools++;
    }
    system = omni_arena_strndup(
        a, (const char *)evbuffer_pullup(sys, -1), evbuffer_get_length(sys));
    body = evbuffer_new();
    if (body == NULL) {
        goto failed;
    }
    rc = omni_wire_request(body, OMNI_WIRE_ANTHROPIC, g->model, system, msgs,
        nmsgs, tools, ntools, (int)max, t->stream);
    if (rc == 0) {
        rc = omni_gw_translate_options(j, out, ntools, body);
    }
    evbuffer_free(body);

failed:
    if (sys != NULL) {
        evbuffer_free(sys);
    }
    return rc;
}


/* One OpenAI stream chunk: data: {..."choices":[{"index":0,<choice>}]} */
static void omni_gw_chunk(
    omni_gw_t *t, const char *choice, const char *s, size_t n, const char *tail)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b,
        "data: {\"id\":\"chatcmpl-%.64s\",\"object\":\"chat.completion."
        "chunk\",\"created\":%lld,\"model\":",
        t->r->request_id, (long long)time(NULL));
    omni_json_put_string(b, t->model, strlen(t->model));
    evbuffer_add_printf(b, ",\"choices\":[{\"index\":0,%s", choice);
    if (s != NULL) {
        omni_json_put_string(b, s, n);
    }
    evbuffer_add_printf(b, "%s\n\n", tail);
    omni_respond_chunk(t->r, b);
    evbuffer_free(b);
}


static void omni_gw_translated_start(omni_gw_t *t)
{
    if (!t->started) {
        t->started = 1;
        omni_respond_start(t->r, 200, "text/event-stream");
        omni_gw_chunk(t,
            "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
            "\"finish_reason\":null",
            NULL, 0, "}]}");
    }
}


static int omni_gw_on_text(void *arg, const char *s, size_t n)
{
    omni_gw_t *t = arg;

    if (!t->stream || t->gone) {
        return 0;
    }
    if (t->fmt == OMNI_WIRE_ANTHROPIC) {
        omni_gw_message_start(t);
        if (!t->text_open) {
            t->text_open = 1;
            omni_gw_event(t, "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":0,"
                "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
                NULL, 0, NULL);
        }
        omni_gw_event(t, "content_block_delta",
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
            "\"type\":\"text_delta\",\"text\":",
            s, n, "}}");
        return 0;
    }
    omni_gw_translated_start(t);
    omni_gw_chunk(
        t, "\"delta\":{\"content\":", s, n, "},\"finish_reason\":null}]}");
    return 0;
}


static const char *omni_gw_finish(const omni_wire_t *w)
{
    if (strcmp(w->finish, "tool_use") == 0 || w->ntools > 0) {
        return "tool_calls";
    }
    if (strcmp(w->finish, "max_tokens") == 0) {
        return "length";
    }
    return "stop";
}


/* A tool call's members: "id":...,"type":"function","function":{...} */
static void omni_gw_tool_json(struct evbuffer *b, const omni_wire_tool_t *c)
{
    evbuffer_add_printf(b, "\"id\":");
    omni_json_put_string(b, c->id.buf ? c->id.buf : "", c->id.len);
    evbuffer_add_printf(b, ",\"type\":\"function\",\"function\":{\"name\":");
    omni_json_put_string(b, c->name.buf ? c->name.buf : "", c->name.len);
    evbuffer_add_printf(b, ",\"arguments\":");
    omni_json_put_string(
        b, c->args.buf ? c->args.buf : "{}", c->args.buf ? c->args.len : 2);
    evbuffer_add(b, "}", 1);
}


/* The translated answer's end: the last chunks of a stream, or the whole
 * chat.completion. */
static void omni_gw_translated_end(omni_gw_t *t)
{
    omni_req_t *r = t->r;
    struct evbuffer *b = evbuffer_new();
    char usage[160];
    int i;

    if (b == NULL) {
        omni_gw_free(t);
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    snprintf(usage, sizeof(usage),
        "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
        "\"total_tokens\":%lld}",
        (long long)t->w.input_tokens, (long long)t->w.output_tokens,
        (long long)(t->w.input_tokens + t->w.output_tokens));
    if (t->stream) {
        omni_gw_translated_start(t);
        for (i = 0; i < t->w.ntools; i++) {
            evbuffer_add_printf(
                b, "\"delta\":{\"tool_calls\":[{\"index\":%d,", i);
            omni_gw_tool_json(b, &t->w.tools[i]);
            evbuffer_add(b, "}]},\"finish_reason\":null", 24);
            evbuffer_add(b, "", 1);
            omni_gw_chunk(
                t, (const char *)evbuffer_pullup(b, -1), NULL, 0, "}]}");
            evbuffer_drain(b, evbuffer_get_length(b));
        }
        evbuffer_add_printf(
            b, "\"delta\":{},\"finish_reason\":\"%s\"", omni_gw_finish(&t->w));
        evbuffer_add(b, "", 1);
        omni_gw_chunk(t, (const char *)evbuffer_pullup(b, -1), NULL, 0, "}]}");
        evbuffer_drain(b, evbuffer_get_length(b));
        if (t->include_usage) {
            evbuffer_add_printf(b,
                "data: {\"id\":\"chatcmpl-%.64s\",\"object\":\"chat."
                "completion.chunk\",\"created\":%lld,\"model\":",
                r->request_id, (long long)time(NULL));
            omni_json_put_string(b, t->model, strlen(t->model));
            evbuffer_add_printf(b, ",\"choices\":[],%s}\n\n", usage);
        }
        evbuffer_add_printf(b, "data: [DONE]\n\n");
        omni_respond_chunk(r, b);
        evbuffer_free(b);
        omni_gw_free(t);
        omni_respond_end(r);
        return;
    }
    evbuffer_add_printf(b,
        "{\"id\":\"chatcmpl-%.64s\",\"object\":\"chat.completion\","
        "\"created\":%lld,\"model\":",
        r->request_id, (long long)time(NULL));
    omni_json_put_string(b, t->model, strlen(t->model));
    evbuffer_add_printf(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                           "\"assistant\",\"content\":");
    if (t->w.text.len > 0 || t->w.ntools == 0) {
        omni_json_put_string(
            b, t->w.text.buf ? t->w.text.buf : "", t->w.text.len);
    } else {
        evbuffer_add(b, "null", 4);
    }
    if (t->w.ntools > 0) {
        evbuffer_add(b, ",\"tool_calls\":[", 15);
        for (i = 0; i < t->w.ntools; i++) {
            if (i > 0) {
                evbuffer_add(b, ",", 1);
            }
            evbuffer_add(b, "{", 1);
            omni_gw_tool_json(b, &t->w.tools[i]);
            evbuffer_add(b, "}", 1);
        }
        evbuffer_add(b, "]", 1);
    }
    evbuffer_add_printf(
        b, "},\"finish_reason\":\"%s\"}],%s}\n", omni_gw_finish(&t->w), usage);
    omni_gw_free(t);
    omni_respond(r, 200, "application/json", b);
    evbuffer_free(b);
}


/* --- Anthropic caller, OpenAI target -------------------------------------- */

/* An Anthropic Messages body as an OpenAI Chat Completions request:
 * tool_use blocks become assistant tool_calls, tool_result blocks tool
 * messages, input_schema parameters, stop_sequences stop. 0, or -1. */
static int omni_gw_translate_anthropic(
    omni_gw_t *t, struct evbuffer *out, const omni_llm_target_t *g)
{
    omni_arena_t *a = &t->r->arena;
    const omni_json_t *j = t->r->json, *arr, *e, *c, *blk, *v;
    omni_wire_msg_t *msgs;
    omni_wire_tooldef_t *tools;
    struct evbuffer *body = NULL, *cb = NULL, *txt = NULL;
    const char *role, *type, *p;
    int nmsgs = 0, ntools = 0, ncalls, rc = -1;
    int64_t max = t->max_tokens > 0 && t->max_tokens < g->max_output_tokens
                      ? t->max_tokens
                      : g->max_output_tokens;
    size_t i, k, cap = 1, n;

    arr = omni_json_get(j, "messages");
    for (i = 0;
         arr != NULL && arr->type == OMNI_JSON_ARRAY && i < arr->u.arr.len;
         i++) {
        c = omni_json_get(arr->u.arr.items[i], "content");
        cap += 1 + (c != NULL && c->type == OMNI_JSON_ARRAY ? c->u.arr.len : 0);
    }
    msgs = omni_arena_alloc(a, sizeof(*msgs) * cap);
    if (msgs == NULL || (cb = evbuffer_new()) == NULL
        || (txt = evbuffer_new()) == NULL || (body = evbuffer_new()) == NULL) {
        goto failed;
    }
    for (i = 0;
         arr != NULL && arr->type == OMNI_JSON_ARRAY && i < arr->u.arr.len;
         i++) {
        e = arr->u.arr.items[i];
        role = omni_json_string(omni_json_get(e, "role"));
        c = omni_json_get(e, "content");
        if (role == NULL) {
            goto failed;
        }
        if (c == NULL || c->type != OMNI_JSON_ARRAY) {
            memset(&msgs[nmsgs], 0, sizeof(msgs[nmsgs]));
            msgs[nmsgs].role = role;
            msgs[nmsgs++].content = omni_gw_text(a, c);
            continue;
        }
        evbuffer_drain(cb, evbuffer_get_length(cb));
        evbuffer_drain(txt, evbuffer_get_length(txt));
        ncalls = 0;
        for (k = 0; k < c->u.arr.len; k++) {
            blk = c->u.arr.items[k];
            type = omni_json_string(omni_json_get(blk, "type"));
            if (type == NULL) {
                continue;
            }
            if (strcmp(type, "text") == 0
                && (p = omni_json_string(omni_json_get(blk, "text"))) != NULL) {
                evbuffer_add(txt, p, strlen(p));
            } else if (strcmp(type, "tool_use") == 0) {
                evbuffer_add(cb, ncalls++ ? ",{\"id\":" : "[{\"id\":", 7);
                omni_json_write(cb, omni_json_get(blk, "id"));
                evbuffer_add_printf(cb, ",\"name\":");
                omni_json_write(cb, omni_json_get(blk, "name"));
                evbuffer_add_printf(cb, ",\"arguments\":");
                p = omni_gw_json(a, omni_json_get(blk, "input"), "{}");
                if (p == NULL) {
                    goto failed;
                }
                omni_json_put_string(cb, p, strlen(p));
                evbuffer_add(cb, "}", 1);
            } else if (strcmp(type, "tool_result") == 0) {
                memset(&msgs[nmsgs], 0, sizeof(msgs[nmsgs]));
                msgs[nmsgs].role = "tool";
                msgs[nmsgs].tool_call_id =
                    omni_json_string(omni_json_get(blk, "tool_use_id"));
                msgs[nmsgs].content =
                    omni_gw_text(a, omni_json_get(blk, "content"));
                v = omni_json_get(blk, "is_error");
                if (v != NULL) {
                    omni_json_bool(v, &msgs[nmsgs].is_error);
                }
                if (msgs[nmsgs].content == NULL) {
                    goto failed;
                }
                nmsgs++;
            }
        }
        n = evbuffer_get_length(txt);
        if (n == 0 && ncalls == 0) {
            continue;
        }
        memset(&msgs[nmsgs], 0, sizeof(msgs[nmsgs]));
        msgs[nmsgs].role = role;
        msgs[nmsgs].content =
            omni_arena_strndup(a, (const char *)evbuffer_pullup(txt, -1), n);
        if (ncalls > 0) {
            evbuffer_add(cb, "]", 1);
            msgs[nmsgs].tool_calls = omni_arena_strndup(a,
                (const char *)evbuffer_pullup(cb, -1), evbuffer_get_length(cb));
        }
        nmsgs++;
    }

    arr = omni_json_get(j, "tools");
    tools = omni_arena_alloc(a,
        sizeof(*tools)
            * (arr != NULL && arr->type == OMNI_JSON_ARRAY ? arr->u.arr.len + 1
                                                           : 1));
    if (tools == NULL) {
        goto failed;
    }
    for (i = 0;
         arr != NULL && arr->type == OMNI_JSON_ARRAY && i < arr->u.arr.len;
         i++) {
        e = arr->u.arr.items[i];
        tools[ntools].name = omni_json_string(omni_json_get(e, "name"));
        tools[ntools].description =
            omni_json_string(omni_json_get(e, "description"));
        tools[ntools].schema = omni_gw_json(
            a, omni_json_get(e, "input_schema"), "{\"type\":\"object\"}");
        if (tools[ntools].name == NULL || tools[ntools].schema == NULL) {
            goto failed;
        }
        ntools++;
    }
    if (omni_wire_request(body, OMNI_WIRE_OPENAI, g->model,
            omni_gw_text(a, omni_json_get(j, "system")), msgs, nmsgs, tools,
            ntools, (int)max, t->stream)
        != 0) {
        goto failed;
    }
    p = (const char *)evbuffer_pullup(body, -1);
    n = evbuffer_get_length(body);
    while (n > 0 && p[n - 1] != '}') {
        n--;
    }
    if (n == 0) {
        goto failed;
    }
    evbuffer_add(out, p, n - 1);
    if ((v = omni_json_get(j, "temperature")) != NULL
        && v->type == OMNI_JSON_NUMBER) {
        evbuffer_add_printf(out, ",\"temperature\":");
        omni_json_write(out, v);
    }
    if ((v = omni_json_get(j, "top_p")) != NULL
        && v->type == OMNI_JSON_NUMBER) {
        evbuffer_add_printf(out, ",\"top_p\":");
        omni_json_write(out, v);
    }
    if ((v = omni_json_get(j, "stop_sequences")) != NULL
        && v->type == OMNI_JSON_ARRAY && v->u.arr.len > 0) {
        evbuffer_add_printf(out, ",\"stop\":");
        omni_json_write(out, v);
    }
    evbuffer_add(out, "}", 1);
    rc = 0;

failed:
    if (body != NULL) {
        evbuffer_free(body);
    }
    if (cb != NULL) {
        evbuffer_free(cb);
    }
    if (txt != NULL) {
        evbuffer_free(txt);
    }
    return rc;
}


/* One Anthropic stream event. */
static void omni_gw_event(omni_gw_t *t, const char *name, const char *fmt,
    const char *s, size_t n, const char *tail)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b, "event: %s\ndata: %s", name, fmt);
    if (s != NULL) {
        omni_json_put_string(b, s, n);
    }
    evbuffer_add_printf(b, "%s\n\n", tail != NULL ? tail : "");
    omni_respond_chunk(t->r, b);
    evbuffer_free(b);
}


static void omni_gw_message_start(omni_gw_t *t)
{
    struct evbuffer *b;

    if (t->started) {
        return;
    }
    t->started = 1;
    omni_respond_start(t->r, 200, "text/event-stream");
    b = evbuffer_new();
    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b,
        "event: message_start\ndata: {\"type\":\"message_start\","
        "\"message\":{\"id\":\"msg_%.64s\",\"type\":\"message\",\"role\":"
        "\"assistant\",\"model\":",
        t->r->request_id);
    omni_json_put_string(b, t->model, strlen(t->model));
    evbuffer_add_printf(b,
        ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n");
    omni_respond_chunk(t->r, b);
    evbuffer_free(b);
}


static const char *omni_gw_stop_reason(const omni_wire_t *w)
{
    if (strcmp(w->finish, "tool_calls") == 0 || w->ntools > 0) {
        return "tool_use";
    }
    if (strcmp(w->finish, "length") == 0) {
        return "max_tokens";
    }
    return "end_turn";
}


/* The Anthropic answer's end: the last events, or the whole message. */
static void omni_gw_anthropic_end(omni_gw_t *t)
{
    omni_req_t *r = t->r;
    struct evbuffer *b = evbuffer_new();
    int i, base = t->text_open ? 1 : 0;
    char err[64];

    if (b == NULL) {
        omni_gw_free(t);
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    if (t->stream) {
        omni_gw_message_start(t);
        if (t->text_open) {
            omni_gw_event(t, "content_block_stop",
                "{\"type\":\"content_block_stop\",\"index\":0}", NULL, 0, NULL);
        }
        for (i = 0; i < t->w.ntools; i++) {
            const omni_wire_tool_t *c = &t->w.tools[i];

            evbuffer_add_printf(b,
                "{\"type\":\"content_block_start\",\"index\":%d,"
                "\"content_block\":{\"type\":\"tool_use\",\"id\":",
                base + i);
            omni_json_put_string(b, c->id.buf ? c->id.buf : "", c->id.len);
            evbuffer_add_printf(b, ",\"name\":");
            omni_json_put_string(
                b, c->name.buf ? c->name.buf : "", c->name.len);
            evbuffer_add_printf(b, ",\"input\":{}}}");
            evbuffer_add(b, "", 1);
            omni_gw_event(t, "content_block_start",
                (const char *)evbuffer_pullup(b, -1), NULL, 0, NULL);
            evbuffer_drain(b, evbuffer_get_length(b));
            evbuffer_add_printf(b,
                "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":"
                "{\"type\":\"input_json_delta\",\"partial_json\":",
                base + i);
            evbuffer_add(b, "", 1);
            omni_gw_event(t, "content_block_delta",
                (const char *)evbuffer_pullup(b, -1),
                c->args.buf ? c->args.buf : "{}", c->args.buf ? c->args.len : 2,
                "}}");
            evbuffer_drain(b, evbuffer_get_length(b));
            evbuffer_add_printf(
                b, "{\"type\":\"content_block_stop\",\"index\":%d}", base + i);
            evbuffer_add(b, "", 1);
            omni_gw_event(t, "content_block_stop",
                (const char *)evbuffer_pullup(b, -1), NULL, 0, NULL);
            evbuffer_drain(b, evbuffer_get_length(b));
        }
        evbuffer_add_printf(b,
            "event: message_delta\ndata: {\"type\":\"message_delta\","
            "\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
            "\"usage\":{\"input_tokens\":%lld,\"output_tokens\":%lld}}\n\n"
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            omni_gw_stop_reason(&t->w), (long long)t->w.input_tokens,
            (long long)t->w.output_tokens);
        omni_respond_chunk(r, b);
        evbuffer_free(b);
        omni_gw_free(t);
        omni_respond_end(r);
        return;
    }
    evbuffer_add_printf(b,
        "{\"id\":\"msg_%.64s\",\"type\":\"message\",\"role\":\"assistant\","
        "\"model\":",
        r->request_id);
    omni_json_put_string(b, t->model, strlen(t->model));
    evbuffer_add_printf(b, ",\"content\":[");
    if (t->w.text.len > 0) {
        evbuffer_add_printf(b, "{\"type\":\"text\",\"text\":");
        omni_json_put_string(b, t->w.text.buf, t->w.text.len);
        evbuffer_add(b, "}", 1);
    }
    for (i = 0; i < t->w.ntools; i++) {
        const omni_wire_tool_t *c = &t->w.tools[i];

        evbuffer_add_printf(b, "%s{\"type\":\"tool_use\",\"id\":",
            i > 0 || t->w.text.len > 0 ? "," : "");
        omni_json_put_string(b, c->id.buf ? c->id.buf : "", c->id.len);
        evbuffer_add_printf(b, ",\"name\":");
        omni_json_put_string(b, c->name.buf ? c->name.buf : "", c->name.len);
        /* the arguments were checked as JSON by nobody: an object or {} */
        evbuffer_add_printf(b, ",\"input\":");
        if (c->args.len > 0 && c->args.buf[0] == '{'
            && omni_json_parse(
                   &r->arena, c->args.buf, c->args.len, NULL, err, sizeof(err))
                   != NULL) {
            evbuffer_add(b, c->args.buf, c->args.len);
        } else {
            evbuffer_add(b, "{}", 2);
        }
        evbuffer_add(b, "}", 1);
    }
    evbuffer_add_printf(b,
        "],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{"
        "\"input_tokens\":%lld,\"output_tokens\":%lld}}\n",
        omni_gw_stop_reason(&t->w), (long long)t->w.input_tokens,
        (long long)t->w.output_tokens);
    omni_gw_free(t);
    omni_respond(r, 200, "application/json", b);
    evbuffer_free(b);
}


static int omni_gw_call(omni_gw_t *t)
{
    const omni_llm_target_t *g = &t->targets[t->target];
    omni_out_spec_t spec = {0};
    const char *v;
    struct evbuffer *req;
    int rc = -1;

    t->tkind = strcmp(g->type, "anthropic") == 0 ? OMNI_WIRE_ANTHROPIC
                                                 : OMNI_WIRE_OPENAI;
    omni_wire_free(&t->w);
    omni_wire_init(&t->w, t->tkind);
    if (t->tkind != t->fmt) {
        t->w.on_text = omni_gw_on_text;
        t->w.arg = t;
    }
    evbuffer_drain(t->body, evbuffer_get_length(t->body));
    t->sse_body = 0;
    t->http_status = 0;
    t->retry_after[0] = '\0';
    t->out_error = OMNI_OUT_OK;
    t->attempt_ms = omni_billing_now_ms();
    t->attempt_wall_us = omni_billing_wall_us();
    t->latency_ms = 0;

    req = evbuffer_new();
    if (req == NULL
        || (t->tkind == t->fmt ? omni_gw_body(t, req, g->model)
               : t->fmt == OMNI_WIRE_OPENAI
                   ? omni_gw_translate_request(t, req, g)
                   : omni_gw_translate_anthropic(t, req, g))
               != 0) {
        goto failed;
    }
    /* the caller's API version and betas go on: its body is theirs */
    v = omni_req_header(t->r, "anthropic-version");
    if (v != NULL && strspn(v, "0123456789-") != strlen(v)) {
        v = NULL;
    }
    spec.on_headers = omni_gw_on_headers;
    spec.on_data = omni_gw_on_data;
    spec.on_done = omni_gw_on_done;
    t->q = omni_provider_call(t->r, g, t->tkind, v, req, t->stream, &spec, t);
    t->sent_us = omni_req_since_us(t->r);
    rc = t->q != NULL ? 0 : -1;

failed:
    if (req != NULL) {
        evbuffer_free(req);
    }
    return rc;
}


/* 1 when the attempt succeeded (its answer not yet sent when whole). */
static int omni_gw_outcome(omni_gw_t *t)
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
    if (!t->sse_body && omni_wire_body(&t->w, body, n) != 0) {
        return 0;
    }
    if (t->w.error[0] != '\0') {
        return 0;
    }
    if (t->sse_body && !t->w.done) {
        snprintf(t->w.error, sizeof(t->w.error), "upstream_error");
        snprintf(t->w.message, sizeof(t->w.message),
            "the provider's stream ended before its end");
        return 0;
    }
    return 1;
}


static void omni_gw_ledger(omni_gw_t *t, const char *status)
{
    omni_ledger_row_t row = {0};

    row.at_us = t->attempt_wall_us;
    row.latency_ms = t->latency_ms;
    row.user = t->user;
    row.api_key = t->api_key;
    row.status = status;
    omni_ledger_append(
        &row, &t->targets[t->target], &t->w, t->input_estimate, &t->bud);
}


/* A stream that failed after its first byte: an error in the caller's
 * format, then the end (never [DONE] or message_stop). */
static void omni_gw_stream_error(omni_gw_t *t)
{
    struct evbuffer *b = evbuffer_new();
    char msg[400];

    if (b != NULL && !t->provider_said) {
        snprintf(msg, sizeof(msg), "the provider's stream failed: %s%s%s",
            t->w.error, t->w.message[0] ? ": " : "", t->w.message);
        if (t->fmt == OMNI_WIRE_ANTHROPIC) {
            evbuffer_add_printf(b, "\n\nevent: error\ndata: {\"type\":"
                                   "\"error\",\"error\":{\"type\":"
                                   "\"api_error\",\"message\":");
        } else {
            evbuffer_add_printf(b, "\n\ndata: {\"error\":{\"message\":");
        }
        omni_json_put_string(b, msg, strlen(msg));
        evbuffer_add_printf(b, t->fmt == OMNI_WIRE_ANTHROPIC
                                   ? "}}\n\n"
                                   : ",\"type\":\"server_error\",\"param\":"
                                     "null,\"code\":\"upstream_error\"}}\n\n");
        omni_respond_chunk(t->r, b);
    }
    if (b != NULL) {
        evbuffer_free(b);
    }
}


/* The last attempt failed before the client's first byte. */
static void omni_gw_failed(omni_gw_t *t)
{
    omni_req_t *r = t->r;
    long st = t->http_status;
    char msg[400];

    snprintf(msg, sizeof(msg), "the provider failed: %s%s%s", t->w.error,
        t->w.message[0] ? ": " : "", t->w.message);
    if (t->out_error == OMNI_OUT_OK && t->tkind != t->fmt
        && (st == 400 || st == 404 || st == 413 || st == 422)) {
        omni_gw_free(t);
        omni_gw_fail(r, t->fmt, (int)st, "invalid_request", msg);
        return;
    }
    if (t->out_error == OMNI_OUT_OK
        && (st == 400 || st == 404 || st == 413 || st == 422)) {
        /* the request itself is wrong: the provider's own answer, in the
         * caller's format already */
        size_t n = evbuffer_get_length(t->body);
        struct evbuffer *b = evbuffer_new();

        if (b == NULL) {
            omni_gw_free(t);
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        evbuffer_add_buffer(b, t->body);
        omni_gw_free(t);
        if (n == 0) {
            evbuffer_free(b);
            omni_gw_fail(r, t->fmt, (int)st, "upstream_error", msg);
            return;
        }
        omni_respond(r, (int)st, "application/json", b);
        evbuffer_free(b);
        return;
    }
    omni_gw_free(t);
    if (st == 429) {
        if (t->retry_after[0] != '\0') {
            omni_respond_header(r, "Retry-After", t->retry_after);
        }
        omni_gw_fail(r, t->fmt, 429, "rate_limit_exceeded", msg);
        return;
    }
    if (t->out_error == OMNI_OUT_TIMEOUT) {
        omni_gw_fail(r, t->fmt, 504, "upstream_timeout", msg);
        return;
    }
    omni_gw_fail(r, t->fmt, 502, "upstream_error", msg);
}


/* Success: the whole answer as the provider wrote it, or the stream's end. */
static void omni_gw_done(omni_gw_t *t)
{
    omni_req_t *r = t->r;
    struct evbuffer *b;

    if (t->tkind != t->fmt) {
        if (t->fmt == OMNI_WIRE_ANTHROPIC) {
            omni_gw_anthropic_end(t);
        } else {
            omni_gw_translated_end(t);
        }
        return;
    }
    if (t->started) {
        omni_gw_free(t);
        omni_respond_end(r);
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        omni_gw_free(t);
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    evbuffer_add_buffer(b, t->body);
    omni_gw_free(t);
    omni_respond(r, 200, "application/json", b);
    evbuffer_free(b);
}


/* Reads the caller's body: model, stream, max_tokens; -1 after answering. */
static int omni_gw_read(omni_gw_t *t)
{
    const omni_json_t *j = t->r->json, *v;
    struct evbuffer *b;

    v = omni_json_get(j, "model");
    t->model = omni_json_string(v);
    if (t->model == NULL || t->model[0] == '\0' || strlen(t->model) > 256) {
        omni_gw_fail(t->r, t->fmt, 400, "invalid_model",
            "model: required, a model name (GET /v1/models lists them)");
        return -1;
    }
    v = omni_json_get(j, "stream");
    if (v != NULL && v->type != OMNI_JSON_NULL
        && !omni_json_bool(v, &t->stream)) {
        omni_gw_fail(t->r, t->fmt, 400, "invalid_stream",
            "stream: must be true or false");
        return -1;
    }
    v = omni_json_get(omni_json_get(j, "stream_options"), "include_usage");
    if (v != NULL) {
        omni_json_bool(v, &t->include_usage);
    }
    v = omni_json_get(j, "max_completion_tokens");
    if (v == NULL) {
        v = omni_json_get(j, "max_tokens");
    }
    if (v != NULL && v->type != OMNI_JSON_NULL
        && (!omni_json_int(v, &t->max_tokens) || t->max_tokens < 1)) {
        omni_gw_fail(t->r, t->fmt, 400, "invalid_max_tokens",
            "max_tokens: must be a positive integer");
        return -1;
    }
    /* ~4 characters a token, the whole body counted */
    b = evbuffer_new();
    if (b == NULL || omni_json_write(b, j) != 0) {
        if (b != NULL) {
            evbuffer_free(b);
        }
        omni_gw_fail(t->r, t->fmt, 503, "overloaded", "out of memory");
        return -1;
    }
    t->input_estimate = (int64_t)evbuffer_get_length(b) / 4 + 8;
    evbuffer_free(b);
    return 0;
}


/* --- the plans cached ----------------------------------------------------- */

static omni_gw_plan_t **omni_gw_plan_slot(const char *k, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    size_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    }
    return &omni_gw_plans[h
                          % (sizeof(omni_gw_plans) / sizeof(omni_gw_plans[0]))];
}


static time_t omni_gw_plan_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
}


/* An admin change made while Redis was down bumped no generation: a plan
 * older than OMNI_GW_PLAN_MAX_AGE_S is read again, so such a change is
 * seen within that time rather than at the next change. */
#define OMNI_GW_PLAN_MAX_AGE_S 30

static const omni_gw_plan_t *omni_gw_plan_find(const char *k, size_t n)
{
    const omni_gw_plan_t *p;

    for (p = *omni_gw_plan_slot(k, n); p != NULL; p = p->next) {
        if (p->klen == n && memcmp(p->key, k, n) == 0) {
            return omni_gw_plan_clock() - p->stored < OMNI_GW_PLAN_MAX_AGE_S
                       ? p
                       : NULL;
        }
    }
    return NULL;
}


static void omni_gw_plan_store(
    const char *k, size_t n, int64_t gen, const char *text, size_t len)
{
    omni_gw_plan_t **slot = omni_gw_plan_slot(k, n), **pp, *p;
    size_t i;

    for (pp = slot; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->klen == n && memcmp((*pp)->key, k, n) == 0) {
            p = *pp;
            *pp = p->next;
            free(p);
            omni_gw_nplans--;
            break;
        }
    }
    if (omni_gw_nplans >= OMNI_GW_PLANS) {
        /* many callers or model names: start again rather than track age */
        for (i = 0; i < sizeof(omni_gw_plans) / sizeof(omni_gw_plans[0]); i++) {
            while ((p = omni_gw_plans[i]) != NULL) {
                omni_gw_plans[i] = p->next;
                free(p);
            }
        }
        omni_gw_nplans = 0;
    }
    p = malloc(sizeof(*p) + n + len + 1);
    if (p == NULL) {
        return;
    }
    p->key = (char *)(p + 1);
    p->text = p->key + n;
    memcpy(p->key, k, n);
    memcpy(p->text, text, len);
    p->text[len] = '\0';
    p->klen = n;
    p->len = len;
    p->gen = gen;
    p->stored = omni_gw_plan_clock();
    p->next = *slot;
    *slot = p;
    omni_gw_nplans++;
}


/* Reads gateway_plan's answer: the targets, budgets and key limits. */
static int omni_gw_plan(omni_gw_t *t, const char *text, size_t len)
{
    omni_arena_t *a = &t->r->arena;
    const omni_json_t *j;
    char err[128], msg[400];
    int all;

    memset(&t->bud, 0, sizeof(t->bud));
    j = omni_json_parse(a, text, len, NULL, err, sizeof(err));
    if (j == NULL
        || (all = omni_billing_targets(
                a, omni_json_get(j, "targets"), &t->targets))
               < 0) {
        omni_gw_free(t);
        omni_req_on_close(t->r, NULL, NULL);
        omni_gw_fail(t->r, t->fmt, 503, "overloaded", "out of memory");
        return -1;
    }
    if (all == 0) {
        omni_gw_free(t);
        omni_req_on_close(t->r, NULL, NULL);
        snprintf(msg, sizeof(msg),
            "The model `%.128s` does not exist or you do not have access to "
            "it (GET /v1/models lists the models).",
            t->model);
        omni_gw_fail(t->r, t->fmt, 404, "model_not_found", msg);
        return -1;
    }
    /* either format serves either caller: the other one is translated */
    t->ntargets = all;
    omni_billing_budgets(&t->bud, omni_json_get(j, "budgets"), t->targets,
        t->ntargets, t->input_estimate, t->max_tokens);
    omni_llm_limits_read(&t->lim, omni_json_get(j, "limits"), t->api_key);
    return 0;
}


/* Plans from the cache: 1 found, 0 not, -1 after answering. */
static int omni_gw_cached(omni_gw_t *t)
{
    omni_arena_t *a = &t->r->arena;
    const omni_gw_plan_t *p;
    size_t ul = strlen(t->user), ml = strlen(t->model);
    size_t kl = t->api_key != NULL ? strlen(t->api_key) : 0;
    char *k = omni_arena_alloc(a, ul + ml + kl + 2);
    const char *text;

    if (k == NULL) {
        return 0;
    }
    memcpy(k, t->user, ul);
    k[ul] = '\0';
    memcpy(k + ul + 1, t->model, ml);
    k[ul + 1 + ml] = '\0';
    memcpy(k + ul + ml + 2, t->api_key, kl);
    t->plan_key = k;
    t->plan_klen = ul + ml + kl + 2;
    t->gen = -2;
    p = omni_gw_plan_find(k, t->plan_klen);
    if (p == NULL) {
        return 0;
    }
    /* the entry may be replaced while this call waits */
    text = omni_arena_strndup(a, p->text, p->len);
    if (text == NULL) {
        return 0;
    }
    t->gen = p->gen;
    return omni_gw_plan(t, text, p->len) == 0 ? 1 : -1;
}


static void omni_gw_post(omni_req_t *r, omni_wire_kind_t fmt)
{
    omni_gw_t *t = r->data;
    const omni_identity_t *id;
    const char *values[3];
    char msg[300], ra[24];
    time_t now;
    int ok;

    switch (r->state) {

    case OMNI_GW_START:
        id = omni_req_identity(r);
        if (id->id == NULL) {
            omni_gw_fail(r, fmt, 401, "invalid_api_key",
                "an Omni API key or token is needed");
            return;
        }
        if (id->rank < 2) {
            omni_gw_fail(
                r, fmt, 403, "forbidden", "the viewer role cannot call models");
            return;
        }
        t = omni_arena_alloc(&r->arena, sizeof(*t));
        if (t == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        memset(t, 0, sizeof(*t));
        t->r = r;
        t->fmt = fmt;
        t->user = id->id;
        t->api_key = omni_req_header(r, "X-User-Api-Key-Id");
        if (t->api_key != NULL && t->api_key[0] == '\0') {
            t->api_key = NULL;
        }
        omni_wire_init(&t->w, fmt);
        if (omni_gw_read(t) != 0) {
            return;
        }
        r->data = t;
        t->body = evbuffer_new();
        t->wake = event_new(omni_clients.base, -1, 0, omni_gw_woken, t);
        if (t->body == NULL || t->wake == NULL) {
            omni_gw_free(t);
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        if (omni_req_on_close(r, omni_gw_client_gone, t) != 0) {
            t->gone = 1;
        }
        if (omni_gw_cached(t) < 0) {
            return;
        }
        /* fall through */

admit:
        r->state = OMNI_GW_ADMITTED;
        /* what the call may use: its input and the output it allows */
        if (omni_llm_admit(&t->bud, &t->lim,
                t->input_estimate + (t->max_tokens > 0 ? t->max_tokens : 0),
                t->replans >= 3 ? -1 : t->gen, &t->gen, &t->admit_reply, r)
            == 0) {
            return;
        }
        t->admit_reply = -1;
        /* fall through */

    case OMNI_GW_ADMITTED:
        if (t->admit_reply == 4
            || (t->admit_reply < 0 && !t->fresh && t->replans < 3)) {
            /* a stale plan, none, or Redis down: from Postgres */
            t->replans++;
            r->state = OMNI_GW_PLANNED;
            values[0] = t->user;
            values[1] = t->model;
            values[2] = t->api_key;
            omni_api_query(r, omni_gw_plan_stmt, 3, values);
            return;
        }
        if (t->admit_reply == 1 || t->admit_reply == 2) {
            omni_gw_free(t);
            omni_req_on_close(r, NULL, NULL);
            snprintf(ra, sizeof(ra), "%d", t->lim.retry_after);
            omni_respond_header(r, "Retry-After", ra);
            if (t->admit_reply == 1) {
                snprintf(msg, sizeof(msg),
                    "this API key's limit of %lld tokens per minute is "
                    "reached (this request may use %lld); retry in %d s",
                    (long long)t->lim.tpm, (long long)t->lim.taken,
                    t->lim.retry_after);
            } else {
                snprintf(msg, sizeof(msg),
                    "this API key's limit of %lld requests per minute is "
                    "reached; retry in %d s",
                    (long long)t->lim.rpm, t->lim.retry_after);
            }
            omni_gw_fail(r, fmt, 429, "rate_limit_exceeded", msg);
            return;
        }
        if (t->admit_reply == 3) {
            omni_gw_free(t);
            omni_req_on_close(r, NULL, NULL);
            /* the day's budget comes back at midnight UTC */
            now = time(NULL);
            snprintf(ra, sizeof(ra), "%ld", (long)(86400 - now % 86400));
            omni_respond_header(r, "Retry-After", ra);
            snprintf(msg, sizeof(msg),
                "the daily budget of %.160s is spent (this request may "
                "need %lld tokens)",
                t->bud.keys[t->bud.reply - 1],
                (long long)t->bud.reserve_tokens);
            omni_gw_fail(r, fmt, 429, "budget_exceeded", msg);
            return;
        }
        if (t->admit_reply < 0) {
            if (t->bud.n > 0) {
                omni_gw_free(t);
                omni_req_on_close(r, NULL, NULL);
                omni_gw_fail(r, fmt, 503, "budget_unavailable",
                    "budgets cannot be checked now");
                return;
            }
            if (t->lim.tpm > 0 || t->lim.rpm > 0) {
                /* as the module's limits: Redis down does not stop calls */
                omni_log(OMNI_LOG_WARN,
                    "API key limits unchecked: Redis unavailable",
                    "\"request_id\":\"%s\"", r->request_id);
            }
        }
        if (t->gone) {
            omni_gw_free(t);
            omni_respond_error(r, 499, "client_disconnected", "client gone");
            return;
        }
        t->admitted_us = omni_req_since_us(r);
        /* fall through */

call:
        r->state = OMNI_GW_CALLED;
        if (omni_gw_call(t) != 0) {
            omni_gw_free(t);
            omni_req_on_close(r, NULL, NULL);
            omni_gw_fail(
                r, fmt, 502, "upstream_error", "the provider cannot be called");
        }
        return;

    case OMNI_GW_PLANNED:
        if (r->db_status != OMNI_DB_OK || PQntuples(r->db_res) != 1) {
            omni_gw_free(t);
            omni_req_on_close(r, NULL, NULL);
            omni_api_db_failed(r);
            return;
        }
        if (omni_gw_plan(
                t, PQgetvalue(r->db_res, 0, 0), PQgetlength(r->db_res, 0, 0))
            != 0) {
            return;
        }
        t->fresh = 1;
        if (t->gen >= 0 && t->admit_reply == 4) {
            /* planned after the generation was read: as new as it */
            omni_gw_plan_store(t->plan_key, t->plan_klen, t->gen,
                PQgetvalue(r->db_res, 0, 0), PQgetlength(r->db_res, 0, 0));
        }
        goto admit;

    case OMNI_GW_CALLED:
        ok = !t->gone && omni_gw_outcome(t);
        if (t->gone) {
            omni_gw_ledger(t, "client_disconnected");
            omni_gw_free(t);
            if (t->started) {
                omni_respond_end(r);
            } else {
                omni_respond_error(r, 499, "client_disconnected", "gone");
            }
            return;
        }
        if (ok) {
            omni_gw_ledger(t, "ok");
            omni_req_on_close(r, NULL, NULL);
            omni_gw_done(t);
            return;
        }
        if (t->started) {
            omni_gw_ledger(t, "error");
            omni_req_on_close(r, NULL, NULL);
            omni_gw_stream_error(t);
            omni_gw_free(t);
            omni_respond_end(r);
            return;
        }
        if (t->target + 1 < t->ntargets
            && !(t->out_error == OMNI_OUT_OK
                 && (t->http_status == 400 || t->http_status == 404
                     || t->http_status == 413 || t->http_status == 422))) {
            omni_log(OMNI_LOG_WARN, "LLM provider failed, trying the next",
                "\"provider\":\"%s\",\"error\":\"%s\",\"request_id\":\"%s\"",
                t->targets[t->target].provider, t->w.error, r->request_id);
            omni_gw_ledger(t, "fallback");
            t->target++;
            goto call;
        }
        omni_gw_ledger(t, "error");
        omni_req_on_close(r, NULL, NULL);
        omni_gw_failed(t);
        return;
    }
}


void omni_gateway_openai(omni_req_t *r)
{
    omni_gw_post(r, OMNI_WIRE_OPENAI);
}


void omni_gateway_anthropic(omni_req_t *r)
{
    omni_gw_post(r, OMNI_WIRE_ANTHROPIC);
}


void omni_gateway_models(omni_req_t *r)
{
    struct evbuffer *b;

    switch (r->state) {
    case OMNI_GW_START:
        if (omni_req_identity(r)->id == NULL) {
            omni_gw_fail(r, OMNI_WIRE_OPENAI, 401, "invalid_api_key",
                "an Omni API key or token is needed");
            return;
        }
        r->state = OMNI_GW_LISTED;
        omni_api_query(r, omni_gw_models_stmt, 0, NULL);
        return;

    case OMNI_GW_LISTED:
        if (r->db_status != OMNI_DB_OK || PQntuples(r->db_res) != 1) {
            omni_api_db_failed(r);
            return;
        }
        b = evbuffer_new();
        if (b == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        evbuffer_add(
            b, PQgetvalue(r->db_res, 0, 0), PQgetlength(r->db_res, 0, 0));
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}
