/* embed.c: memories' embeddings. A call asks the provider of the configured
 * model (looked up in omnichat's registry, kept for 10 s) for the vectors
 * of up to 64 texts on the outbound client, and answers them unit length.
 * The queue is the table: each process claims up to 32 memories without a
 * vector of the model (omnex.embed_claim, SKIP LOCKED, so processes and
 * replicas share the work), embeds them and stores the vectors; one batch
 * in flight per process, so the work in memory is bounded whatever the
 * backlog. A batch lost to a crash or a provider failure is claimed again
 * from 30 s later, one memory at a time (omnex.embed_claim): an
 * acknowledged memory is never left unembedded, and one the provider
 * refuses holds back no other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/arena.h"
#include "lib/json.h"
#include "io/clients.h"
#include "io/log.h"
#include "io/outbound.h"
#include "services/memory/embed.h"
#include "services/memory/vectors.h"

#define OMNI_EMBED_MAX 64
#define OMNI_EMBED_BATCH 32
#define OMNI_EMBED_TICK_MS 1000
#define OMNI_EMBED_CACHE_MS 10000
#define OMNI_EMBED_TIMEOUT_MS 30000
#define OMNI_EMBED_MAX_BODY (32 * 1024 * 1024)

typedef struct {
    omni_arena_t arena;
    char **texts;
    int n;
    omni_mem_embed_pt done;
    void *arg;
    struct evbuffer *body;
    long status;
    const char *failure; /* a failure answered from the loop */
} omni_embed_call_t;

static struct {
    char model[256];
    int configured;
    int stmt_embedder, stmt_claim, stmt_store;
    omni_outbound_t *out;
    /* the provider of the model, as last looked up */
    char url[600];
    char key[1024];
    int found;
    int64_t fetched_ms;
} omni_embed;

static struct {
    int busy; /* a batch is being claimed, embedded or stored */
    int again;
    int stopped;
    int n;
    char ids[OMNI_EMBED_BATCH][40];
    struct event *timer;
} omni_queue;

static void omni_embed_send(omni_embed_call_t *c);
static void omni_queue_run(void);


static int64_t omni_embed_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int omni_mem_embed_init(void)
{
    omni_embed.stmt_embedder = omni_db_statement("memory_embedder",
        "SELECT base_url, api_key_env, api_key_file FROM omnex.embedder($1)");
    omni_embed.stmt_claim = omni_db_statement("memory_embed_claim",
        "SELECT id, content FROM omnex.embed_claim($1, $2::int)");
    omni_embed.stmt_store = omni_db_statement(
        "memory_embed_store", "SELECT omnex.embed_store($1, $2)");
    return omni_embed.stmt_embedder < 0 || omni_embed.stmt_claim < 0
                   || omni_embed.stmt_store < 0
               ? -1
               : 0;
}


void omni_mem_embed_configure(const char *model)
{
    omni_embed.configured = model != NULL && model[0] != '\0';
    snprintf(omni_embed.model, sizeof(omni_embed.model), "%s",
        omni_embed.configured ? model : "");
    omni_embed.fetched_ms = 0;
}


const char *omni_mem_model(void)
{
    return omni_embed.configured ? omni_embed.model : NULL;
}


static void omni_embed_free(omni_embed_call_t *c)
{
    if (c->body != NULL) {
        evbuffer_free(c->body);
    }
    omni_arena_free(&c->arena);
    free(c);
}


static void omni_embed_fail(omni_embed_call_t *c, int status, const char *msg)
{
    c->done(c->arg, status, msg, NULL, 0, 0);
    omni_embed_free(c);
}


static void omni_embed_deferred(evutil_socket_t fd, short what, void *arg)
{
    omni_embed_call_t *c = arg;

    omni_embed_fail(c, 503, c->failure);
}


/* Fails c from the loop: never inside omni_mem_embed(). */
static void omni_embed_defer(omni_embed_call_t *c, const char *failure)
{
    c->failure = failure;
    if (event_base_once(
            omni_clients.base, -1, EV_TIMEOUT, omni_embed_deferred, c, NULL)
        != 0) {
        omni_log(OMNI_LOG_ERROR, "cannot schedule a callback", NULL);
        abort();
    }
}


/* The provider's key: from the environment or its secret file, read when
 * the provider is looked up (a rotated file takes effect within 10 s). */
static int omni_embed_key(const char *env, const char *file)
{
    const char *v = NULL;
    size_t n = 0;
    FILE *f;

    omni_embed.key[0] = '\0';
    if (env != NULL && env[0] != '\0') {
        v = getenv(env);
        if (v == NULL) {
            return -1;
        }
        snprintf(omni_embed.key, sizeof(omni_embed.key), "%s", v);
        return 0;
    }
    if (file != NULL && file[0] != '\0') {
        f = fopen(file, "r");
        if (f == NULL) {
            return -1;
        }
        n = fread(omni_embed.key, 1, sizeof(omni_embed.key) - 1, f);
        fclose(f);
        while (n > 0 && strchr(" \t\r\n", omni_embed.key[n - 1]) != NULL) {
            n--;
        }
        omni_embed.key[n] = '\0';
    }
    return 0;
}


static void omni_embed_looked_up(
    void *arg, omni_db_status_t status, PGresult *res)
{
    omni_embed_call_t *c = arg;
    const char *base;
    size_t len;

    if (status != OMNI_DB_OK) {
        omni_embed_fail(c, 503, "the database is unavailable");
        return;
    }
    omni_embed.found = 0;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        base = PQgetvalue(res, 0, 0);
        len = strlen(base);
        while (len > 0 && base[len - 1] == '/') {
            len--;
        }
        snprintf(omni_embed.url, sizeof(omni_embed.url), "%.*s/v1/embeddings",
            (int)len, base);
        if (omni_embed_key(
                PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
                PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2))
            == 0) {
            omni_embed.found = 1;
        } else {
            omni_log(OMNI_LOG_WARN, "embedding provider's key is unreadable",
                "\"model\":\"%s\"", omni_embed.model);
        }
    }
    omni_embed.fetched_ms = omni_embed_now_ms();
    omni_embed_send(c);
}


int omni_mem_embed(
    const char *const *texts, int n, omni_mem_embed_pt done, void *arg)
{
    const char *values[1] = {omni_embed.model};
    omni_embed_call_t *c;
    int i;

    if (!omni_embed.configured || n < 1 || n > OMNI_EMBED_MAX) {
        return -1;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    omni_arena_init(&c->arena, 0);
    c->done = done;
    c->arg = arg;
    c->n = n;
    c->texts = omni_arena_alloc(&c->arena, sizeof(char *) * (size_t)n);
    for (i = 0; c->texts != NULL && i < n; i++) {
        c->texts[i] = omni_arena_strndup(&c->arena, texts[i], strlen(texts[i]));
        if (c->texts[i] == NULL) {
            break;
        }
    }
    if (c->texts == NULL || i < n) {
        omni_embed_free(c);
        return -1;
    }
    if (omni_embed.fetched_ms != 0
        && omni_embed_now_ms() - omni_embed.fetched_ms < OMNI_EMBED_CACHE_MS) {
        omni_embed_send(c);
        return 0;
    }
    if (omni_db_query(omni_clients.db, omni_embed.stmt_embedder, 1, values,
            omni_embed_looked_up, c)
        != OMNI_DB_OK) {
        omni_embed_defer(c, "the database is unavailable");
    }
    return 0;
}


static int omni_embed_data(
    void *arg, omni_out_req_t *q, const char *buf, size_t len)
{
    omni_embed_call_t *c = arg;

    evbuffer_add(c->body, buf, len);
    return 0;
}


static void omni_embed_headers(void *arg, omni_out_req_t *q, long status)
{
    ((omni_embed_call_t *)arg)->status = status;
}


static void omni_embed_done(void *arg, const omni_out_result_t *res)
{
    omni_embed_call_t *c = arg;
    const char *why;
    float **vecs;
    char msg[128];
    int dim = 0;

    if (res->error != OMNI_OUT_OK) {
        omni_log(OMNI_LOG_WARN, "embedding provider failed",
            "\"model\":\"%s\",\"error\":\"%s\"", omni_embed.model,
            omni_out_error_name(res->error));
        omni_embed_fail(c,
            res->error == OMNI_OUT_TIMEOUT      ? 504
            : res->error == OMNI_OUT_OVERLOADED ? 503
                                                : 502,
            res->error == OMNI_OUT_TIMEOUT
                ? "the embedding provider did not answer in time"
                : "cannot reach the embedding provider");
        return;
    }
    if (c->status != 200) {
        omni_log(OMNI_LOG_WARN, "embedding provider refused",
            "\"model\":\"%s\",\"status\":%ld", omni_embed.model, c->status);
        snprintf(msg, sizeof(msg), "the embedding provider answered HTTP %ld",
            c->status);
        omni_embed_fail(c, 502, msg);
        return;
    }
    vecs = omni_vectors_parse(&c->arena,
        (const char *)evbuffer_pullup(c->body, -1),
        evbuffer_get_length(c->body), c->n, &dim, &why);
    if (vecs == NULL) {
        omni_embed_fail(c, 502, why);
        return;
    }
    c->done(c->arg, 0, NULL, vecs, c->n, dim);
    omni_embed_free(c);
}


static void omni_embed_send(omni_embed_call_t *c)
{
    const char *headers[3];
    char auth[1100];
    omni_out_spec_t spec = {0};
    struct evbuffer *req;
    int i, n = 0;

    if (!omni_embed.found) {
        omni_embed_defer(c, "no configured provider serves the embedding "
                            "model (OMNI_EMBEDDING_MODEL)");
        return;
    }
    req = evbuffer_new();
    c->body = evbuffer_new();
    if (req == NULL || c->body == NULL) {
        if (req != NULL) {
            evbuffer_free(req);
        }
        omni_embed_defer(c, "out of memory");
        return;
    }
    evbuffer_add_printf(req, "{\"model\":");
    omni_json_put_string(req, omni_embed.model, strlen(omni_embed.model));
    evbuffer_add_printf(req, ",\"input\":[");
    for (i = 0; i < c->n; i++) {
        if (i > 0) {
            evbuffer_add(req, ",", 1);
        }
        omni_json_put_string(req, c->texts[i], strlen(c->texts[i]));
    }
    evbuffer_add_printf(req, "],\"encoding_format\":\"float\"}");
    headers[n++] = "Content-Type: application/json";
    if (omni_embed.key[0] != '\0') {
        snprintf(
            auth, sizeof(auth), "Authorization: Bearer %s", omni_embed.key);
        headers[n++] = auth;
    }
    headers[n] = NULL;
    spec.method = "POST";
    spec.url = omni_embed.url;
    spec.headers = headers;
    spec.body = (const char *)evbuffer_pullup(req, -1);
    spec.body_len = evbuffer_get_length(req);
    spec.timeout_ms = OMNI_EMBED_TIMEOUT_MS;
    spec.max_bytes = OMNI_EMBED_MAX_BODY;
    spec.idempotent = 1;
    spec.on_headers = omni_embed_headers;
    spec.on_data = omni_embed_data;
    spec.on_done = omni_embed_done;
    if (omni_out_request(omni_embed.out, &spec, c) == NULL) {
        evbuffer_free(req);
        omni_embed_defer(c, "cannot reach the embedding provider");
        return;
    }
    evbuffer_free(req);
}


/* --- the queue ------------------------------------------------------------ */

static void omni_queue_idle(void)
{
    omni_queue.busy = 0;
    if (omni_queue.again && !omni_queue.stopped) {
        omni_queue_run();
    }
}


static void omni_queue_stored(void *arg, omni_db_status_t status, PGresult *res)
{
    if (status != OMNI_DB_OK) {
        omni_log(OMNI_LOG_WARN, "cannot store embeddings", "\"memories\":%d",
            omni_queue.n);
        omni_queue_idle();
        return;
    }
    /* there may be more waiting: claim until a claim finds none */
    omni_queue.again = 1;
    omni_queue_idle();
}


static void omni_queue_embedded(
    void *arg, int status, const char *msg, float *const *vecs, int n, int dim)
{
    struct evbuffer *b;
    const char *values[2];
    int i, j;

    if (status != 0 || omni_queue.stopped) {
        if (status != 0) {
            omni_log(OMNI_LOG_WARN, "cannot embed memories",
                "\"memories\":%d,\"status\":%d", omni_queue.n, status);
        }
        omni_queue.again = 0; /* the next tick tries again */
        omni_queue_idle();
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        omni_queue_idle();
        return;
    }
    evbuffer_add(b, "[", 1);
    for (i = 0; i < n; i++) {
        evbuffer_add_printf(b, "%s{\"id\":\"%s\",\"embedding\":[", i ? "," : "",
            omni_queue.ids[i]);
        for (j = 0; j < dim; j++) {
            evbuffer_add_printf(b, j ? ",%.9g" : "%.9g", (double)vecs[i][j]);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "]\0", 2); /* NUL-terminated for libpq */
    values[0] = omni_embed.model;
    values[1] = (const char *)evbuffer_pullup(b, -1);
    if (omni_db_query(omni_clients.db, omni_embed.stmt_store, 2, values,
            omni_queue_stored, NULL)
        != OMNI_DB_OK) {
        omni_queue_idle();
    }
    evbuffer_free(b);
}


static void omni_queue_claimed(
    void *arg, omni_db_status_t status, PGresult *res)
{
    const char *texts[OMNI_EMBED_BATCH];
    int i, n;

    n = status == OMNI_DB_OK ? PQntuples(res) : 0;
    if (n == 0 || n > OMNI_EMBED_BATCH || omni_queue.stopped) {
        omni_queue.again = 0;
        omni_queue_idle();
        return;
    }
    for (i = 0; i < n; i++) {
        snprintf(omni_queue.ids[i], sizeof(omni_queue.ids[i]), "%s",
            PQgetvalue(res, i, 0));
        texts[i] = PQgetvalue(res, i, 1);
    }
    omni_queue.n = n;
    if (omni_mem_embed(texts, n, omni_queue_embedded, NULL) != 0) {
        omni_queue_idle();
    }
}


static void omni_queue_run(void)
{
    const char *values[2];
    char limit[16];

    omni_queue.again = 0;
    if (omni_queue.busy || omni_queue.stopped || !omni_embed.configured
        || !omni_db_available(omni_clients.db)) {
        return;
    }
    snprintf(limit, sizeof(limit), "%d", OMNI_EMBED_BATCH);
    values[0] = omni_embed.model;
    values[1] = limit;
    if (omni_db_query(omni_clients.db, omni_embed.stmt_claim, 2, values,
            omni_queue_claimed, NULL)
        == OMNI_DB_OK) {
        omni_queue.busy = 1;
    }
}


static void omni_queue_tick(evutil_socket_t fd, short what, void *arg)
{
    omni_queue_run();
}


void omni_mem_embed_kick(void)
{
    if (omni_queue.busy) {
        omni_queue.again = 1;
        return;
    }
    omni_queue_run();
}


int omni_mem_embed_start(void)
{
    struct timeval tv = {
        OMNI_EMBED_TICK_MS / 1000, (OMNI_EMBED_TICK_MS % 1000) * 1000};

    omni_embed.out = omni_outbound_create(omni_clients.base, NULL);
    omni_queue.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_queue_tick, NULL);
    if (omni_embed.out == NULL || omni_queue.timer == NULL) {
        return -1;
    }
    return evtimer_add(omni_queue.timer, &tv);
}


void omni_mem_embed_stop(void)
{
    omni_queue.stopped = 1;
    if (omni_queue.timer != NULL) {
        event_free(omni_queue.timer);
        omni_queue.timer = NULL;
    }
}
