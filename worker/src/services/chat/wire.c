/* wire.c: OpenAI Chat Completions and Anthropic Messages responses
 * (streamed and whole), error bodies, and request bodies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/arena.h"
#include "lib/json.h"
#include "services/chat/wire.h"

#define OMNI_WIRE_MAX_EVENT (2 * 1024 * 1024)


static int omni_wire_put(
    omni_wire_buf_t *b, const char *s, size_t n, size_t max)
{
    char *p;
    size_t cap;

    if (n == 0) {
        return 0;
    }
    if (b->len + n > max) {
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->buf, cap);
        if (p == NULL) {
            return -1;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return 0;
}


static int omni_wire_bad(omni_wire_t *w, const char *what)
{
    snprintf(w->error, sizeof(w->error), "bad_response");
    snprintf(w->message, sizeof(w->message), "%s", what);
    return OMNI_WIRE_BAD;
}


static void omni_wire_copy(char *dst, size_t size, const omni_json_t *v)
{
    const char *s = omni_json_string(v);

    if (s != NULL) {
        snprintf(dst, size, "%s", s);
    }
}


static int64_t omni_wire_int(const omni_json_t *v)
{
    int64_t n = 0;

    if (!omni_json_int(v, &n) || n < 0 || n > (int64_t)1 << 40) {
        return -1;
    }
    return n;
}


/* Reads an error object ({message, type}) into w. */
static void omni_wire_error_obj(omni_wire_t *w, const omni_json_t *e)
{
    const char *type = omni_json_string(omni_json_get(e, "type"));
    const char *code = omni_json_string(omni_json_get(e, "code"));

    snprintf(w->error, sizeof(w->error), "%s",
        type != NULL   ? type
        : code != NULL ? code
                       : "provider_error");
    omni_wire_copy(w->message, sizeof(w->message), omni_json_get(e, "message"));
    if (omni_json_string(e) != NULL) {
        omni_wire_copy(w->message, sizeof(w->message), e);
    }
}


static int omni_wire_text(omni_wire_t *w, const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    if (omni_wire_put(&w->text, s, n, OMNI_WIRE_MAX_TEXT) != 0) {
        return omni_wire_bad(w, "the reply's text is too long");
    }
    return w->on_text != NULL ? w->on_text(w->arg, s, n) : 0;
}


/* The tool call of index, created on first sight; NULL when too many. */
static omni_wire_tool_t *omni_wire_tool(omni_wire_t *w, int index)
{
    int i;

    for (i = 0; i < w->ntools; i++) {
        if (w->tools[i].index == index) {
            return &w->tools[i];
        }
    }
    if (w->ntools == OMNI_WIRE_MAX_TOOLS) {
        return NULL;
    }
    memset(&w->tools[w->ntools], 0, sizeof(w->tools[0]));
    w->tools[w->ntools].index = index;
    return &w->tools[w->ntools++];
}


static int omni_wire_tool_put(omni_wire_buf_t *b, const omni_json_t *v)
{
    const char *s = omni_json_string(v);

    return s == NULL ? 0 : omni_wire_put(b, s, strlen(s), OMNI_WIRE_MAX_ARGS);
}


/* OpenAI usage: prompt_tokens (cached included), completion_tokens,
 * prompt_tokens_details.cached_tokens. Whichever chunk carries it. */
static void omni_wire_openai_usage(omni_wire_t *w, const omni_json_t *u)
{
    int64_t in, out, cached;

    if (u == NULL || u->type != OMNI_JSON_OBJECT) {
        return;
    }
    in = omni_wire_int(omni_json_get(u, "prompt_tokens"));
    out = omni_wire_int(omni_json_get(u, "completion_tokens"));
    cached = omni_wire_int(omni_json_get(
        omni_json_get(u, "prompt_tokens_details"), "cached_tokens"));
    if (in >= 0) {
        w->input_tokens = in;
        w->have_usage = 1;
    }
    if (out >= 0) {
        w->output_tokens = out;
        w->have_usage = 1;
    }
    if (cached >= 0) {
        w->cached_tokens = cached;
    }
}


/* Anthropic usage: input_tokens excludes the cache's, so the cache reads
 * and writes are added to it; values are cumulative: the last one wins. */
static void omni_wire_anthropic_usage(omni_wire_t *w, const omni_json_t *u)
{
    int64_t in, out, read, created;

    if (u == NULL || u->type != OMNI_JSON_OBJECT) {
        return;
    }
    in = omni_wire_int(omni_json_get(u, "input_tokens"));
    out = omni_wire_int(omni_json_get(u, "output_tokens"));
    read = omni_wire_int(omni_json_get(u, "cache_read_input_tokens"));
    created = omni_wire_int(omni_json_get(u, "cache_creation_input_tokens"));
    if (in >= 0) {
        w->input_tokens =
            in + (read > 0 ? read : 0) + (created > 0 ? created : 0);
        w->cached_tokens = read > 0 ? read : 0;
        w->have_usage = 1;
    }
    if (out >= 0) {
        w->output_tokens = out;
        w->have_usage = 1;
    }
}


/* One OpenAI chunk or whole response (message instead of delta). */
static int omni_wire_openai(omni_wire_t *w, const omni_json_t *j, int whole)
{
    const omni_json_t *choices, *c, *d, *calls, *tc, *fn;
    omni_wire_tool_t *t;
    const char *s;
    int64_t index;
    size_t i, k;
    int rc;

    if (j->type != OMNI_JSON_OBJECT) {
        return omni_wire_bad(w, "a chunk that is not a JSON object");
    }
    if (omni_json_get(j, "error") != NULL) {
        omni_wire_error_obj(w, omni_json_get(j, "error"));
        return 0;
    }
    omni_wire_copy(
        w->request_id, sizeof(w->request_id), omni_json_get(j, "id"));
    omni_wire_openai_usage(w, omni_json_get(j, "usage"));
    choices = omni_json_get(j, "choices");
    if (choices == NULL || choices->type != OMNI_JSON_ARRAY) {
        if (omni_json_get(j, "usage") != NULL) {
            w->events++;
            return 0;
        }
        return omni_wire_bad(w, "a chunk without choices");
    }
    w->events++;
    for (i = 0; i < choices->u.arr.len; i++) {
        c = choices->u.arr.items[i];
        d = omni_json_get(c, whole ? "message" : "delta");
        omni_wire_copy(
            w->finish, sizeof(w->finish), omni_json_get(c, "finish_reason"));
        s = omni_json_string(omni_json_get(d, "content"));
        if (s != NULL && (rc = omni_wire_text(w, s, strlen(s))) != 0) {
            return rc;
        }
        calls = omni_json_get(d, "tool_calls");
        if (calls == NULL || calls->type != OMNI_JSON_ARRAY) {
            continue;
        }
        for (k = 0; k < calls->u.arr.len; k++) {
            tc = calls->u.arr.items[k];
            index = (int64_t)k;
            if (!whole && !omni_json_int(omni_json_get(tc, "index"), &index)) {
                return omni_wire_bad(w, "a tool call delta without an index");
            }
            if (index < 0 || index > 1000
                || (t = omni_wire_tool(w, (int)index)) == NULL) {
                return omni_wire_bad(w, "too many tool calls");
            }
            fn = omni_json_get(tc, "function");
            if (omni_wire_tool_put(&t->id, omni_json_get(tc, "id")) != 0
                || omni_wire_tool_put(&t->name, omni_json_get(fn, "name")) != 0
                || omni_wire_tool_put(&t->args, omni_json_get(fn, "arguments"))
                       != 0) {
                return omni_wire_bad(w, "a tool call is too long");
            }
        }
    }
    return 0;
}


/* Appends a tool_use block's input object as the call's arguments. */
static int omni_wire_input(omni_wire_tool_t *t, const omni_json_t *input)
{
    struct evbuffer *b;
    int rc = -1;

    if (input == NULL
        || (input->type == OMNI_JSON_OBJECT && input->u.obj.len == 0)) {
        return 0;
    }
    b = evbuffer_new();
    if (b != NULL && omni_json_write(b, input) == 0) {
        rc = omni_wire_put(&t->args, (const char *)evbuffer_pullup(b, -1),
            evbuffer_get_length(b), OMNI_WIRE_MAX_ARGS);
    }
    if (b != NULL) {
        evbuffer_free(b);
    }
    return rc;
}


/* One Anthropic event (its data; the type is the data's "type"). */
static int omni_wire_anthropic(omni_wire_t *w, const omni_json_t *j)
{
    const char *type = omni_json_string(omni_json_get(j, "type"));
    const omni_json_t *m, *cb, *d;
    omni_wire_tool_t *t;
    const char *s;
    int64_t index = 0;

    if (type == NULL) {
        return omni_wire_bad(w, "an event without a type");
    }
    if (strcmp(type, "ping") == 0 || strcmp(type, "content_block_stop") == 0) {
        return 0;
    }
    if (strcmp(type, "error") == 0) {
        omni_wire_error_obj(w, omni_json_get(j, "error"));
        return 0;
    }
    if (strcmp(type, "message_stop") == 0) {
        w->done = 1;
        return 0;
    }
    w->events++;
    if (strcmp(type, "message_start") == 0) {
        m = omni_json_get(j, "message");
        omni_wire_copy(
            w->request_id, sizeof(w->request_id), omni_json_get(m, "id"));
        omni_wire_anthropic_usage(w, omni_json_get(m, "usage"));
        return 0;
    }
    if (strcmp(type, "message_delta") == 0) {
        omni_wire_copy(w->finish, sizeof(w->finish),
            omni_json_get(omni_json_get(j, "delta"), "stop_reason"));
        omni_wire_anthropic_usage(w, omni_json_get(j, "usage"));
        return 0;
    }
    if (strcmp(type, "content_block_start") != 0
        && strcmp(type, "content_block_delta") != 0) {
        return 0; /* event types added later are ignored, as documented */
    }
    if (!omni_json_int(omni_json_get(j, "index"), &index) || index < 0
        || index > 1000) {
        return omni_wire_bad(w, "a content block without an index");
    }
    if (strcmp(type, "content_block_start") == 0) {
        cb = omni_json_get(j, "content_block");
        s = omni_json_string(omni_json_get(cb, "type"));
        if (s != NULL && strcmp(s, "text") == 0) {
            s = omni_json_string(omni_json_get(cb, "text"));
            return s != NULL ? omni_wire_text(w, s, strlen(s)) : 0;
        }
        if (s == NULL || strcmp(s, "tool_use") != 0) {
            return 0;
        }
        t = omni_wire_tool(w, (int)index);
        if (t == NULL) {
            return omni_wire_bad(w, "too many tool calls");
        }
        if (omni_wire_tool_put(&t->id, omni_json_get(cb, "id")) != 0
            || omni_wire_tool_put(&t->name, omni_json_get(cb, "name")) != 0
            || omni_wire_input(t, omni_json_get(cb, "input")) != 0) {
            return omni_wire_bad(w, "a tool call is too long");
        }
        return 0;
    }
    d = omni_json_get(j, "delta");
    s = omni_json_string(omni_json_get(d, "type"));
    if (s != NULL && strcmp(s, "text_delta") == 0) {
        s = omni_json_string(omni_json_get(d, "text"));
        return s != NULL ? omni_wire_text(w, s, strlen(s)) : 0;
    }
    if (s != NULL && strcmp(s, "input_json_delta") == 0) {
        t = omni_wire_tool(w, (int)index);
        if (t == NULL
            || omni_wire_tool_put(&t->args, omni_json_get(d, "partial_json"))
                   != 0) {
            return omni_wire_bad(w, "a tool call is too long");
        }
    }
    return 0;
}


static int omni_wire_json(omni_wire_t *w, const char *s, size_t n, int whole)
{
    omni_json_limits_t lim = {OMNI_WIRE_MAX_EVENT, 64};
    omni_arena_t a;
    omni_json_t *j;
    char err[128];
    int rc;

    omni_arena_init(&a, 8192);
    j = omni_json_parse(&a, s, n, &lim, err, sizeof(err));
    if (j == NULL) {
        rc = omni_wire_bad(w, "an event whose data is not JSON");
    } else if (w->kind == OMNI_WIRE_OPENAI) {
        rc = omni_wire_openai(w, j, whole);
    } else if (whole) {
        rc = OMNI_WIRE_BAD;
    } else {
        rc = omni_wire_anthropic(w, j);
    }
    omni_arena_free(&a);
    return rc;
}


static int omni_wire_event(void *arg, const omni_sse_event_t *ev)
{
    omni_wire_t *w = arg;

    if (w->error[0] != '\0' || w->done) {
        return 0; /* nothing counts after the end */
    }
    if (w->kind == OMNI_WIRE_OPENAI && ev->data_len == 6
        && memcmp(ev->data, "[DONE]", 6) == 0) {
        w->done = 1;
        return 0;
    }
    return omni_wire_json(w, ev->data, ev->data_len, 0);
}


void omni_wire_init(omni_wire_t *w, omni_wire_kind_t kind)
{
    memset(w, 0, sizeof(*w));
    w->kind = kind;
    omni_sse_init(&w->sse, OMNI_WIRE_MAX_EVENT, omni_wire_event, w);
}


int omni_wire_feed(omni_wire_t *w, const char *buf, size_t len)
{
    int rc = omni_sse_feed(&w->sse, buf, len);

    if (rc == OMNI_SSE_TOO_LARGE) {
        return omni_wire_bad(w, "an event larger than 2 MiB");
    }
    return rc;
}


/* An Anthropic message: content blocks and usage, whole. */
static int omni_wire_anthropic_body(omni_wire_t *w, const omni_json_t *j)
{
    const omni_json_t *content, *b;
    omni_wire_tool_t *t;
    const char *type, *s;
    size_t i;
    int rc;

    if (omni_json_get(j, "error") != NULL) {
        omni_wire_error_obj(w, omni_json_get(j, "error"));
        return 0;
    }
    content = omni_json_get(j, "content");
    if (content == NULL || content->type != OMNI_JSON_ARRAY) {
        return omni_wire_bad(w, "a message without content");
    }
    omni_wire_copy(
        w->request_id, sizeof(w->request_id), omni_json_get(j, "id"));
    omni_wire_copy(
        w->finish, sizeof(w->finish), omni_json_get(j, "stop_reason"));
    omni_wire_anthropic_usage(w, omni_json_get(j, "usage"));
    w->events++;
    for (i = 0; i < content->u.arr.len; i++) {
        b = content->u.arr.items[i];
        type = omni_json_string(omni_json_get(b, "type"));
        if (type != NULL && strcmp(type, "text") == 0) {
            s = omni_json_string(omni_json_get(b, "text"));
            if (s != NULL && (rc = omni_wire_text(w, s, strlen(s))) != 0) {
                return rc;
            }
        } else if (type != NULL && strcmp(type, "tool_use") == 0) {
            t = omni_wire_tool(w, (int)i);
            if (t == NULL
                || omni_wire_tool_put(&t->id, omni_json_get(b, "id")) != 0
                || omni_wire_tool_put(&t->name, omni_json_get(b, "name")) != 0
                || omni_wire_input(t, omni_json_get(b, "input")) != 0) {
                return omni_wire_bad(w, "too many or too long tool calls");
            }
        }
    }
    w->done = 1;
    return 0;
}


int omni_wire_body(omni_wire_t *w, const char *buf, size_t len)
{
    omni_json_limits_t lim = {OMNI_WIRE_MAX_EVENT * 4, 64};
    omni_arena_t a;
    omni_json_t *j;
    char err[128];
    int rc;

    if (w->kind == OMNI_WIRE_OPENAI) {
        rc = omni_wire_json(w, buf, len, 1);
        if (rc == 0 && w->error[0] == '\0') {
            w->done = 1;
        }
        return rc;
    }
    omni_arena_init(&a, 8192);
    j = omni_json_parse(&a, buf, len, &lim, err, sizeof(err));
    rc = j != NULL && j->type == OMNI_JSON_OBJECT
             ? omni_wire_anthropic_body(w, j)
             : omni_wire_bad(w, "a body that is not a JSON object");
    omni_arena_free(&a);
    return rc;
}


void omni_wire_error_body(
    omni_wire_t *w, long status, const char *buf, size_t len)
{
    omni_json_limits_t lim = {65536, 16};
    const omni_json_t *e;
    omni_arena_t a;
    omni_json_t *j;
    char err[128];

    snprintf(w->error, sizeof(w->error), "http_%ld", status);
    snprintf(
        w->message, sizeof(w->message), "the provider answered %ld", status);
    omni_arena_init(&a, 4096);
    j = omni_json_parse(&a, buf, len, &lim, err, sizeof(err));
    e = omni_json_get(j, "error");
    if (e != NULL
        && (e->type == OMNI_JSON_OBJECT || e->type == OMNI_JSON_STRING)) {
        omni_wire_error_obj(w, e);
    }
    omni_arena_free(&a);
}


void omni_wire_free(omni_wire_t *w)
{
    int i;

    omni_sse_free(&w->sse);
    free(w->text.buf);
    for (i = 0; i < w->ntools; i++) {
        free(w->tools[i].id.buf);
        free(w->tools[i].name.buf);
        free(w->tools[i].args.buf);
    }
    memset(w, 0, sizeof(*w));
}


static void omni_wire_str(struct evbuffer *out, const char *s)
{
    omni_json_put_string(out, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}


/* The arguments text of a call as a JSON object: itself when it is one,
 * else {} (a model's invalid arguments cannot be sent back as input). */
static void omni_wire_args_object(struct evbuffer *out, const char *args)
{
    omni_arena_t a;
    omni_json_t *j;
    char err[64];

    omni_arena_init(&a, 4096);
    j = args != NULL
            ? omni_json_parse(&a, args, strlen(args), NULL, err, sizeof(err))
            : NULL;
    if (j != NULL && j->type == OMNI_JSON_OBJECT) {
        omni_json_write(out, j);
    } else {
        evbuffer_add(out, "{}", 2);
    }
    omni_arena_free(&a);
}


/* Writes an assistant message's tool calls ([{id, name, arguments}]). */
static int omni_wire_calls(
    struct evbuffer *out, omni_wire_kind_t kind, const char *calls, int *n)
{
    const omni_json_t *c;
    omni_arena_t a;
    omni_json_t *j;
    char err[64];
    size_t i;
    int rc = -1;

    omni_arena_init(&a, 4096);
    j = omni_json_parse(&a, calls, strlen(calls), NULL, err, sizeof(err));
    if (j == NULL || j->type != OMNI_JSON_ARRAY) {
        goto failed;
    }
    for (i = 0; i < j->u.arr.len; i++) {
        c = j->u.arr.items[i];
        if (i > 0 || *n > 0) {
            evbuffer_add(out, ",", 1);
        }
        if (kind == OMNI_WIRE_OPENAI) {
            evbuffer_add_printf(out, "{\"type\":\"function\",\"id\":");
            omni_wire_str(out, omni_json_string(omni_json_get(c, "id")));
            evbuffer_add_printf(out, ",\"function\":{\"name\":");
            omni_wire_str(out, omni_json_string(omni_json_get(c, "name")));
            evbuffer_add_printf(out, ",\"arguments\":");
            omni_wire_str(out, omni_json_string(omni_json_get(c, "arguments")));
            evbuffer_add(out, "}}", 2);
        } else {
            evbuffer_add_printf(out, "{\"type\":\"tool_use\",\"id\":");
            omni_wire_str(out, omni_json_string(omni_json_get(c, "id")));
            evbuffer_add_printf(out, ",\"name\":");
            omni_wire_str(out, omni_json_string(omni_json_get(c, "name")));
            evbuffer_add_printf(out, ",\"input\":");
            omni_wire_args_object(
                out, omni_json_string(omni_json_get(c, "arguments")));
            evbuffer_add(out, "}", 1);
        }
        (*n)++;
    }
    rc = 0;

failed:
    omni_arena_free(&a);
    return rc;
}


static int omni_wire_openai_msgs(struct evbuffer *out, const char *system,
    const omni_wire_msg_t *msgs, int nmsgs)
{
    int i, n;

    evbuffer_add_printf(out, "\"messages\":[");
    if (system != NULL && system[0] != '\0') {
        evbuffer_add_printf(out, "{\"role\":\"system\",\"content\":");
        omni_wire_str(out, system);
        evbuffer_add(out, "},", 2);
    }
    for (i = 0; i < nmsgs; i++) {
        evbuffer_add_printf(out, "%s{\"role\":", i > 0 ? "," : "");
        omni_wire_str(out, msgs[i].role);
        evbuffer_add_printf(out, ",\"content\":");
        omni_wire_str(out, msgs[i].content);
        if (msgs[i].tool_call_id != NULL) {
            evbuffer_add_printf(out, ",\"tool_call_id\":");
            omni_wire_str(out, msgs[i].tool_call_id);
        }
        if (msgs[i].tool_calls != NULL) {
            n = 0;
            evbuffer_add_printf(out, ",\"tool_calls\":[");
            if (omni_wire_calls(out, OMNI_WIRE_OPENAI, msgs[i].tool_calls, &n)
                != 0) {
                return -1;
            }
            evbuffer_add(out, "]", 1);
        }
        evbuffer_add(out, "}", 1);
    }
    evbuffer_add(out, "]", 1);
    return 0;
}


/* Anthropic: tool results are blocks of a user message; consecutive ones
 * share one, and a user message right after them joins it. */
static int omni_wire_anthropic_msgs(
    struct evbuffer *out, const omni_wire_msg_t *msgs, int nmsgs)
{
    const char *open = NULL; /* the role of the message left open */
    int i, n;

    evbuffer_add_printf(out, "\"messages\":[");
    for (i = 0; i < nmsgs; i++) {
        const omni_wire_msg_t *m = &msgs[i];
        const char *role =
            strcmp(m->role, "assistant") == 0 ? "assistant" : "user";

        if (open != NULL && strcmp(open, role) != 0) {
            evbuffer_add(out, "]},", 3);
            open = NULL;
        } else if (open != NULL) {
            evbuffer_add(out, ",", 1);
        }
        if (open == NULL) {
            evbuffer_add_printf(out, "{\"role\":\"%s\",\"content\":[", role);
            open = role;
        }
        n = 0;
        if (strcmp(m->role, "tool") == 0) {
            evbuffer_add_printf(
                out, "{\"type\":\"tool_result\",\"tool_use_id\":");
            omni_wire_str(out, m->tool_call_id);
            evbuffer_add_printf(out, ",\"content\":");
            omni_wire_str(out, m->content);
            evbuffer_add_printf(
                out, ",\"is_error\":%s}", m->is_error ? "true" : "false");
            continue;
        }
        if (m->content != NULL && m->content[0] != '\0') {
            evbuffer_add_printf(out, "{\"type\":\"text\",\"text\":");
            omni_wire_str(out, m->content);
            evbuffer_add(out, "}", 1);
            n++;
        }
        if (m->tool_calls != NULL
            && omni_wire_calls(out, OMNI_WIRE_ANTHROPIC, m->tool_calls, &n)
                   != 0) {
            return -1;
        }
        if (n == 0) {
            evbuffer_add_printf(out, "{\"type\":\"text\",\"text\":\"\"}");
        }
    }
    if (open != NULL) {
        evbuffer_add(out, "]}", 2);
    }
    evbuffer_add(out, "]", 1);
    return 0;
}


int omni_wire_request(struct evbuffer *out, omni_wire_kind_t kind,
    const char *model, const char *system, const omni_wire_msg_t *msgs,
    int nmsgs, const omni_wire_tooldef_t *tools, int ntools, int max_tokens,
    int stream)
{
    int i;

    evbuffer_add_printf(out, "{\"model\":");
    omni_wire_str(out, model);
    evbuffer_add_printf(out, ",\"max_tokens\":%d,\"stream\":%s,", max_tokens,
        stream ? "true" : "false");
    if (kind == OMNI_WIRE_OPENAI) {
        if (stream) {
            evbuffer_add_printf(
                out, "\"stream_options\":{\"include_usage\":true},");
        }
        if (omni_wire_openai_msgs(out, system, msgs, nmsgs) != 0) {
            return -1;
        }
    } else {
        if (system != NULL && system[0] != '\0') {
            evbuffer_add_printf(out, "\"system\":");
            omni_wire_str(out, system);
            evbuffer_add(out, ",", 1);
        }
        if (omni_wire_anthropic_msgs(out, msgs, nmsgs) != 0) {
            return -1;
        }
    }
    if (ntools > 0) {
        evbuffer_add_printf(out, ",\"tools\":[");
        for (i = 0; i < ntools; i++) {
            evbuffer_add_printf(out, "%s{", i > 0 ? "," : "");
            if (kind == OMNI_WIRE_OPENAI) {
                evbuffer_add_printf(
                    out, "\"type\":\"function\",\"function\":{");
            }
            evbuffer_add_printf(out, "\"name\":");
            omni_wire_str(out, tools[i].name);
            evbuffer_add_printf(out, ",\"description\":");
            omni_wire_str(out, tools[i].description);
            evbuffer_add_printf(out, ",\"%s\":%s",
                kind == OMNI_WIRE_OPENAI ? "parameters" : "input_schema",
                tools[i].schema != NULL ? tools[i].schema
                                        : "{\"type\":\"object\"}");
            evbuffer_add(out, kind == OMNI_WIRE_OPENAI ? "}}" : "}",
                kind == OMNI_WIRE_OPENAI ? 2 : 1);
        }
        evbuffer_add(out, "]", 1);
    }
    evbuffer_add(out, "}", 1);
    return 0;
}
