/* billing.c: targets, budgets and the usage ledger of the chat turn and
 * the LLM gateway (billing.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "io/clients.h"
#include "io/log.h"
#include "services/chat/billing.h"

#define OMNI_LEDGER_MAX 5000 /* rows held; more are dropped */
#define OMNI_LEDGER_BATCH 100

static int omni_ledger_stmt;
static omni_outbound_t *omni_billing_out;

static struct {
    struct evbuffer *rows;
    int nrows, flushing;
    struct event *timer;
    unsigned long long dropped;
} omni_ledger;

/* The generation, then the key's GCRA buckets (limits.c), then the
 * budgets; nothing is taken unless all allow. KEYS: generation, tokens and
 * requests buckets, budgets. ARGV: the generation planned with (-1: any,
 * -2: only read it), tokens per minute, tokens taken, requests per minute,
 * tokens and cost reserved, each budget's limits. */
static const char omni_llm_admit_lua[] =
    "local g = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local want = tonumber(ARGV[1])\n"
    "if want == -2 or (want >= 0 and want ~= g) then return {4, g} end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
    "local nt, nr\n"
    "local function ahead(k, c, l)\n"
    "  local v = tonumber(redis.call('GET', k) or '0')\n"
    "  if v < now then v = now end\n"
    "  return v + c * 60000 / l\n"
    "end\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  nt = ahead(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[2]))\n"
    "  if nt - now > 60000 then\n"
    "    return {1, math.ceil((nt - now - 60000) / 1000)}\n"
    "  end\n"
    "end\n"
    "if tonumber(ARGV[4]) > 0 then\n"
    "  nr = ahead(KEYS[3], 1, tonumber(ARGV[4]))\n"
    "  if nr - now > 60000 then\n"
    "    return {2, math.ceil((nr - now - 60000) / 1000)}\n"
    "  end\n"
    "end\n"
    "local rt, rc = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "for i = 4, #KEYS do\n"
    "  local lt, lc = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])\n"
    "  local ut = tonumber(redis.call('HGET', KEYS[i], 't') or '0')\n"
    "  local uc = tonumber(redis.call('HGET', KEYS[i], 'c') or '0')\n"
    "  if (lt >= 0 and ut + rt > lt) or (lc >= 0 and uc + rc > lc) then\n"
    "    return {3, i - 3}\n"
    "  end\n"
    "end\n"
    "if nt then redis.call('SET', KEYS[2], string.format('%.3f', nt), 'PX',\n"
    "  math.ceil(nt - now) + 1000) end\n"
    "if nr then redis.call('SET', KEYS[3], string.format('%.3f', nr), 'PX',\n"
    "  math.ceil(nr - now) + 1000) end\n"
    "for i = 4, #KEYS do\n"
    "  redis.call('HINCRBY', KEYS[i], 't', rt)\n"
    "  redis.call('HINCRBY', KEYS[i], 'c', rc)\n"
    "  redis.call('EXPIRE', KEYS[i], 172800)\n"
    "end\n"
    "return {0, g}\n";


int omni_billing_init(void)
{
    omni_ledger_stmt = omni_db_statement("chat_ledger_insert",
        "INSERT INTO omnichat.llm_usage (at, user_id, api_key_id, project_id,"
        " conversation_id, message_id, provider, model, model_id,"
        " price_version, provider_request_id, input_tokens, output_tokens,"
        " cached_tokens, cost, status, estimated, latency_ms)"
        " SELECT to_timestamp(x.at / 1000000.0), x.user_id, x.api_key_id,"
        "  x.project_id, x.conversation_id, x.message_id, x.provider, x.model,"
        "  x.model_id, x.price_version, x.provider_request_id, x.input_tokens,"
        "  x.output_tokens, x.cached_tokens, x.cost, x.status, x.estimated,"
        "  x.latency_ms"
        " FROM jsonb_to_recordset($1::jsonb) AS x(at bigint, user_id text,"
        "  api_key_id uuid, project_id uuid, conversation_id uuid,"
        "  message_id uuid, provider text, model text, model_id uuid,"
        "  price_version int, provider_request_id text, input_tokens int,"
        "  output_tokens int, cached_tokens int, cost numeric, status text,"
        "  estimated boolean, latency_ms int)");
    return omni_ledger_stmt < 0 ? -1 : 0;
}


uint64_t omni_billing_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


uint64_t omni_billing_wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}


/* --- the ledger ----------------------------------------------------------- */

static void omni_ledger_flushed(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_ledger.flushing = 0;
    if (st != OMNI_DB_OK) {
        omni_log(OMNI_LOG_WARN, "cannot store LLM usage rows", "\"status\":%d",
            (int)st);
    }
}


static void omni_ledger_flush(evutil_socket_t fd, short what, void *arg)
{
    struct evbuffer *b = omni_ledger.rows;
    const char *values[1];

    if (omni_ledger.nrows == 0 || omni_ledger.flushing) {
        return;
    }
    evbuffer_add(b, "]", 2);
    values[0] = (const char *)evbuffer_pullup(b, -1);
    if (omni_db_query(omni_clients.db, omni_ledger_stmt, 1, values,
            omni_ledger_flushed, NULL)
        == OMNI_DB_OK) {
        omni_ledger.flushing = 1;
    } else {
        omni_log(OMNI_LOG_WARN, "LLM usage rows lost: Postgres unavailable",
            "\"rows\":%d", omni_ledger.nrows);
    }
    evbuffer_drain(b, evbuffer_get_length(b));
    omni_ledger.nrows = 0;
}


int omni_billing_start(void)
{
    struct timeval tv = {0, 500000};
    omni_outbound_config_t cfg = {0};

    cfg.max_bytes = 16 * 1024 * 1024;
    cfg.timeout_ms = 300000;
    /* streams last seconds to minutes: a provider holds many at once */
    cfg.max_inflight = 4096;
    cfg.max_per_host = 2048;
    omni_billing_out = omni_outbound_create(omni_clients.base, &cfg);
    omni_ledger.rows = evbuffer_new();
    omni_ledger.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_ledger_flush, NULL);
    if (omni_billing_out == NULL || omni_ledger.rows == NULL
        || omni_ledger.timer == NULL) {
        return -1;
    }
    event_add(omni_ledger.timer, &tv);
    return 0;
}


void omni_billing_stop(void)
{
    if (omni_ledger.timer != NULL) {
        omni_ledger_flush(-1, 0, NULL);
        event_free(omni_ledger.timer);
        omni_ledger.timer = NULL;
    }
    omni_outbound_destroy(omni_billing_out);
    omni_billing_out = NULL;
}


omni_outbound_t *omni_billing_outbound(void)
{
    return omni_billing_out;
}


void omni_billing_json_str(struct evbuffer *b, const char *k, const char *v)
{
    evbuffer_add_printf(b, ",\"%s\":", k);
    if (v == NULL || v[0] == '\0') {
        evbuffer_add(b, "null", 4);
    } else {
        omni_json_put_string(b, v, strlen(v));
    }
}


int64_t omni_billing_cost(
    const omni_llm_target_t *t, int64_t in, int64_t out, int64_t cached)
{
    double c = ((double)(in - cached) * t->in + (double)cached * t->cached
                   + (double)out * t->out)
               * 1000.0;

    return c > 0 ? llround(c) : 0;
}


int64_t omni_ledger_append(const omni_ledger_row_t *row,
    const omni_llm_target_t *g, omni_wire_t *w, int64_t input_estimate,
    omni_budgets_t *bud)
{
    struct evbuffer *b = omni_ledger.rows;
    int64_t in = w->input_tokens, out = w->output_tokens, cost;
    size_t args = 0;
    int estimated = 0, i;

    if (w->events > 0 && (!w->have_usage || !w->done || w->error[0] != '\0')) {
        /* a reply that did not finish (cut, abandoned, failed): the
         * provider's last counts may be partial (Anthropic's message_start
         * says 1 output token), so output is at least what arrived, input
         * the estimate when none came */
        for (i = 0; i < w->ntools; i++) {
            args += w->tools[i].args.len;
        }
        if (in == 0) {
            in = input_estimate;
            estimated = 1;
        }
        if ((int64_t)((w->text.len + args + 3) / 4) > out) {
            out = (int64_t)((w->text.len + args + 3) / 4);
            estimated = 1;
        }
    }
    cost = omni_billing_cost(g, in, out, w->cached_tokens);
    if (bud != NULL) {
        bud->billed_tokens += in + out;
        bud->billed_cost += cost;
    }
    w->input_tokens = in;
    w->output_tokens = out;
    if (b == NULL) {
        return cost;
    }
    if (omni_ledger.nrows >= OMNI_LEDGER_MAX) {
        omni_ledger.dropped++;
        return cost;
    }
    evbuffer_add(b, omni_ledger.nrows++ ? "," : "[", 1);
    evbuffer_add_printf(b, "{\"at\":%llu", (unsigned long long)row->at_us);
    omni_billing_json_str(b, "user_id", row->user);
    omni_billing_json_str(b, "api_key_id", row->api_key);
    omni_billing_json_str(b, "project_id", row->project);
    omni_billing_json_str(b, "conversation_id", row->conv);
    omni_billing_json_str(b, "message_id", row->message);
    omni_billing_json_str(b, "provider", g->provider);
    omni_billing_json_str(b, "model", g->model);
    omni_billing_json_str(b, "model_id", g->model_id);
    omni_billing_json_str(b, "provider_request_id", w->request_id);
    evbuffer_add_printf(b,
        ",\"price_version\":%d,\"input_tokens\":%lld,\"output_tokens\":%lld,"
        "\"cached_tokens\":%lld,\"cost\":%lld.%09lld,\"status\":\"%s\","
        "\"estimated\":%s,\"latency_ms\":%llu}",
        g->price_version, (long long)in, (long long)out,
        (long long)w->cached_tokens, (long long)(cost / 1000000000),
        (long long)(cost % 1000000000), row->status,
        estimated ? "true" : "false", (unsigned long long)row->latency_ms);
    if (omni_ledger.nrows >= OMNI_LEDGER_BATCH) {
        omni_ledger_flush(-1, 0, NULL);
    }
    return cost;
}


/* --- targets -------------------------------------------------------------- */

static const char *omni_billing_str(const omni_json_t *o, const char *k)
{
    return omni_json_string(omni_json_get(o, k));
}


static double omni_billing_num(const omni_json_t *o, const char *k)
{
    double d = 0;

    omni_json_double(omni_json_get(o, k), &d);
    return d;
}


int omni_billing_targets(
    omni_arena_t *a, const omni_json_t *arr, omni_llm_target_t **out)
{
    int n =
        arr != NULL && arr->type == OMNI_JSON_ARRAY ? (int)arr->u.arr.len : 0;
    omni_llm_target_t *t = omni_arena_alloc(a, sizeof(*t) * (n + 1));
    const omni_json_t *e;
    int i;

    if (t == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        omni_llm_target_t *g = &t[i];

        e = arr->u.arr.items[i];
        g->provider = omni_billing_str(e, "provider");
        g->type = omni_billing_str(e, "type");
        g->base_url = omni_billing_str(e, "base_url");
        g->key_env = omni_billing_str(e, "api_key_env");
        g->key_file = omni_billing_str(e, "api_key_file");
        g->model = omni_billing_str(e, "model");
        g->model_id = omni_billing_str(e, "model_id");
        g->max_output_tokens = (int)omni_billing_num(e, "max_output_tokens");
        g->price_version = (int)omni_billing_num(e, "price_version");
        g->in = omni_billing_num(e, "input");
        g->out = omni_billing_num(e, "output");
        g->cached = omni_billing_num(e, "cached");
    }
    *out = t;
    return n;
}


/* Key files read again at most this often: a rotated secret (a Kubernetes
 * Secret's volume swaps its files) is in use within it, and a turn does
 * not open, read and close a file before its provider call. */
#define OMNI_KEY_FILE_TTL_MS 2000
#define OMNI_KEY_FILES 16

typedef struct {
    char path[512];
    char key[4096];
    size_t len;
    int ok; /* the file could be read */
    uint64_t read_ms;
} omni_key_file_t;

static omni_key_file_t omni_key_files[OMNI_KEY_FILES];

/* The cached entry of path, read again when older than the TTL (the
 * oldest slot is taken for a path not seen yet); NULL when path is too
 * long to cache. */
static const omni_key_file_t *omni_key_file(const char *path)
{
    uint64_t now = omni_billing_now_ms();
    size_t i, slot = 0, n;
    FILE *f;

    if (strlen(path) >= sizeof(omni_key_files[0].path)) {
        return NULL;
    }
    for (i = 0; i < OMNI_KEY_FILES; i++) {
        if (strcmp(omni_key_files[i].path, path) == 0) {
            slot = i;
            break;
        }
        if (omni_key_files[i].read_ms < omni_key_files[slot].read_ms) {
            slot = i;
        }
    }
    if (i < OMNI_KEY_FILES
        && now - omni_key_files[slot].read_ms < OMNI_KEY_FILE_TTL_MS) {
        return &omni_key_files[slot];
    }
    snprintf(
        omni_key_files[slot].path, sizeof(omni_key_files[0].path), "%s", path);
    omni_key_files[slot].read_ms = now;
    omni_key_files[slot].ok = 0;
    omni_key_files[slot].len = 0;
    if ((f = fopen(path, "r")) == NULL) {
        return &omni_key_files[slot];
    }
    n = fread(
        omni_key_files[slot].key, 1, sizeof(omni_key_files[0].key) - 1, f);
    fclose(f);
    while (n > 0
           && (omni_key_files[slot].key[n - 1] == '\n'
               || omni_key_files[slot].key[n - 1] == '\r'
               || omni_key_files[slot].key[n - 1] == ' ')) {
        n--;
    }
    omni_key_files[slot].len = n;
    omni_key_files[slot].ok = 1;
    return &omni_key_files[slot];
}


const char *omni_billing_key(omni_arena_t *a, const omni_llm_target_t *g)
{
    const omni_key_file_t *k;

    if (g->key_env != NULL) {
        return getenv(g->key_env);
    }
    if (g->key_file == NULL || (k = omni_key_file(g->key_file)) == NULL
        || !k->ok) {
        return NULL;
    }
    return omni_arena_strndup(a, k->key, k->len);
}


omni_out_req_t *omni_provider_call(omni_req_t *r, const omni_llm_target_t *g,
    omni_wire_kind_t kind, const char *version, struct evbuffer *body,
    int stream, omni_out_spec_t *spec, void *arg)
{
    const char *headers[4], *key = omni_billing_key(&r->arena, g);
    char url[1024], auth[4200], ver[128];
    omni_out_req_t *q;

    snprintf(url, sizeof(url), "%s/v1/%s", g->base_url,
        kind == OMNI_WIRE_OPENAI ? "chat/completions" : "messages");
    headers[0] = "Content-Type: application/json";
    if (kind == OMNI_WIRE_OPENAI) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
            key != NULL ? key : "");
        headers[1] = auth;
        headers[2] = NULL;
    } else {
        snprintf(auth, sizeof(auth), "x-api-key: %s", key != NULL ? key : "");
        snprintf(ver, sizeof(ver), "anthropic-version: %.64s",
            version != NULL ? version : "2023-06-01");
        headers[1] = auth;
        headers[2] = ver;
        headers[3] = NULL;
    }
    if (key == NULL) {
        omni_log(OMNI_LOG_WARN, "LLM provider key not found",
            "\"provider\":\"%s\",\"request_id\":\"%s\"", g->provider,
            r->request_id);
    }
    spec->method = "POST";
    spec->url = url;
    spec->headers = headers;
    spec->body = (const char *)evbuffer_pullup(body, -1);
    spec->body_len = evbuffer_get_length(body);
    spec->timeout_ms = 300000;
    spec->connect_timeout_ms = 5000;
    /* a stream is silent only between chunks; a whole answer comes at
     * once, after as long as the model writes (within the 300 s) */
    spec->idle_timeout_ms = stream ? 60000 : 0;
    q = omni_out_request(omni_billing_outbound(), spec, arg);
    explicit_bzero(auth, sizeof(auth));
    return q;
}


/* --- budgets -------------------------------------------------------------- */

void omni_billing_budgets(omni_budgets_t *b, const omni_json_t *arr,
    const omni_llm_target_t *g, int ng, int64_t input_estimate,
    int64_t max_tokens)
{
    const omni_json_t *e, *v;
    size_t i;
    int k;

    for (i = 0; arr != NULL && arr->type == OMNI_JSON_ARRAY
                && i < arr->u.arr.len && b->n < 4;
         i++) {
        e = arr->u.arr.items[i];
        b->keys[b->n] = omni_billing_str(e, "key");
        v = omni_json_get(e, "tokens_per_day");
        b->tokens[b->n] = v == NULL || v->type == OMNI_JSON_NULL
                              ? -1
                              : (int64_t)omni_billing_num(e, "tokens_per_day");
        v = omni_json_get(e, "cost_per_day");
        b->cost[b->n] =
            v == NULL || v->type == OMNI_JSON_NULL
                ? -1
                : llround(omni_billing_num(e, "cost_per_day") * 1e9);
        b->n++;
    }

    /* the worst case of any target: input + max_tokens at list price */
    for (k = 0; k < ng; k++) {
        int64_t out = max_tokens > 0 && max_tokens < g[k].max_output_tokens
                          ? max_tokens
                          : g[k].max_output_tokens;
        int64_t c = omni_billing_cost(&g[k], input_estimate, out, 0);

        if (input_estimate + out > b->reserve_tokens) {
            b->reserve_tokens = input_estimate + out;
        }
        if (c > b->reserve_cost) {
            b->reserve_cost = c;
        }
    }
}


static void omni_budgets_key(char *buf, size_t size, const char *key)
{
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    snprintf(buf, size, "omni:budget:%s:%04d%02d%02d", key, tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday);
}


static void omni_budgets_ignore(redisAsyncContext *c, void *reply, void *arg)
{
}


typedef struct {
    omni_budgets_t *b;
    omni_llm_limits_t *l;
    int64_t *cur;
    int *reply;
    int count; /* counts a reservation made in b->reserved */
    omni_req_t *r;
} omni_admit_wait_t;


static void omni_llm_admitted(redisAsyncContext *c, void *reply, void *arg)
{
    omni_admit_wait_t *wt = arg;
    redisReply *rep = reply;
    int code;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2
        || rep->element[0]->type != REDIS_REPLY_INTEGER
        || rep->element[1]->type != REDIS_REPLY_INTEGER) {
        *wt->reply = -1;
        wt->b->reply = -1;
        omni_http_resume(wt->r);
        return;
    }
    code = (int)rep->element[0]->integer;
    *wt->reply = code;
    wt->b->reply = 0;
    switch (code) {
    case 0:
        *wt->cur = rep->element[1]->integer;
        wt->l->pending = wt->l->tpm > 0 || wt->l->rpm > 0;
        if (wt->b->n > 0 && wt->count) {
            wt->b->reserved++;
        }
        break;
    case 1:
    case 2:
        wt->l->retry_after =
            rep->element[1]->integer < 1 ? 1 : (int)rep->element[1]->integer;
        break;
    case 3:
        wt->b->reply = (int)rep->element[1]->integer;
        break;
    default:
        *wt->cur = rep->element[1]->integer;
        break;
    }
    omni_http_resume(wt->r);
}


static int omni_llm_admit_send(
    omni_admit_wait_t *wt, int64_t tokens, int64_t gen)
{
    const char *argv[3 + 3 + 4 + 6 + 8];
    char keys[2 + 4][160], nums[6 + 8][24];
    omni_budgets_t *b = wt->b;
    omni_llm_limits_t *l = wt->l;
    int argc = 0, i;

    l->taken = l->tpm > 0 && tokens > l->tpm ? l->tpm : tokens;
    argv[argc++] = "EVAL";
    argv[argc++] = omni_llm_admit_lua;
    snprintf(nums[0], sizeof(nums[0]), "%d", 3 + b->n);
    argv[argc++] = nums[0];
    argv[argc++] = OMNI_LLM_GEN_KEY;
    omni_llm_limits_keys(l, keys[0], keys[1], sizeof(keys[0]));
    argv[argc++] = keys[0];
    argv[argc++] = keys[1];
    for (i = 0; i < b->n; i++) {
        omni_budgets_key(keys[2 + i], sizeof(keys[0]), b->keys[i]);
        argv[argc++] = keys[2 + i];
    }
    snprintf(nums[1], sizeof(nums[0]), "%lld", (long long)gen);
    snprintf(nums[2], sizeof(nums[0]), "%lld", (long long)l->tpm);
    snprintf(nums[3], sizeof(nums[0]), "%lld", (long long)l->taken);
    snprintf(nums[4], sizeof(nums[0]), "%lld", (long long)l->rpm);
    snprintf(nums[5], sizeof(nums[0]), "%lld", (long long)b->reserve_tokens);
    snprintf(nums[6], sizeof(nums[0]), "%lld", (long long)b->reserve_cost);
    for (i = 1; i <= 6; i++) {
        argv[argc++] = nums[i];
    }
    for (i = 0; i < b->n; i++) {
        snprintf(
            nums[7 + 2 * i], sizeof(nums[0]), "%lld", (long long)b->tokens[i]);
        snprintf(
            nums[8 + 2 * i], sizeof(nums[0]), "%lld", (long long)b->cost[i]);
        argv[argc++] = nums[7 + 2 * i];
        argv[argc++] = nums[8 + 2 * i];
    }
    return omni_redis_command_argv(
        omni_clients.redis, omni_llm_admitted, wt, argc, argv, NULL);
}


int omni_llm_admit(omni_budgets_t *b, omni_llm_limits_t *l, int64_t tokens,
    int64_t gen, int64_t *cur, int *reply, omni_req_t *r)
{
    omni_admit_wait_t *wt = omni_arena_alloc(&r->arena, sizeof(*wt));

    if (wt == NULL) {
        return -1;
    }
    wt->b = b;
    wt->l = l;
    wt->cur = cur;
    wt->reply = reply;
    wt->count = 1;
    wt->r = r;
    return omni_llm_admit_send(wt, tokens, gen);
}


int omni_budgets_reserve(omni_budgets_t *b, omni_req_t *r)
{
    struct {
        omni_admit_wait_t wt;
        omni_llm_limits_t l;
        int64_t cur;
        int reply;
    } *x = omni_arena_alloc(&r->arena, sizeof(*x));

    if (x == NULL) {
        return -1;
    }
    memset(x, 0, sizeof(*x));
    x->wt.b = b;
    x->wt.l = &x->l;
    x->wt.cur = &x->cur;
    x->wt.reply = &x->reply;
    x->wt.r = r;
    return omni_llm_admit_send(&x->wt, 0, -1);
}


static void omni_llm_gen_bumped(redisAsyncContext *c, void *reply, void *arg)
{
    redisReply *rep = reply;

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        omni_log(OMNI_LOG_WARN, "LLM plans not invalidated: Redis unavailable",
            NULL);
    }
    omni_http_resume(arg);
}


int omni_llm_gen_bump(omni_req_t *r)
{
    return omni_redis_command(
        omni_clients.redis, omni_llm_gen_bumped, r, "INCR " OMNI_LLM_GEN_KEY);
}


void omni_budgets_settle(omni_budgets_t *b)
{
    char key[160], dt[24], dc[24];
    const char *argv[4];
    int i;

    if (!b->reserved) {
        return;
    }
    snprintf(dt, sizeof(dt), "%lld",
        (long long)(b->billed_tokens - b->reserve_tokens * b->reserved));
    snprintf(dc, sizeof(dc), "%lld",
        (long long)(b->billed_cost - b->reserve_cost * b->reserved));
    b->reserved = 0;
    for (i = 0; i < b->n; i++) {
        omni_budgets_key(key, sizeof(key), b->keys[i]);
        argv[0] = "HINCRBY";
        argv[1] = key;
        argv[2] = "t";
        argv[3] = dt;
        omni_redis_command_argv(
            omni_clients.redis, omni_budgets_ignore, NULL, 4, argv, NULL);
        argv[2] = "c";
        argv[3] = dc;
        omni_redis_command_argv(
            omni_clients.redis, omni_budgets_ignore, NULL, 4, argv, NULL);
    }
}
