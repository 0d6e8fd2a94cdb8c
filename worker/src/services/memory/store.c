/* store.c: one operation on the Omnex store, from a REST route or an MCP
 * tool:
 *
 *   start --(search, mode semantic|hybrid)--> EMBED the query --> QUERY
 *         --(otherwise)-----------------------------------------> QUERY
 *   QUERY: omnex.api() --> done(status, body)
 *
 * A search's query, mode and k are checked here, before a provider is
 * asked for an embedding; everything else is checked by omnex.api(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/arena.h"
#include "io/clients.h"
#include "io/log.h"
#include "services/memory/embed.h"
#include "services/memory/store.h"

#define OMNI_MEM_QUERY_MAX 4096

typedef struct {
    omni_arena_t arena;
    const char *values[9];
    char limit[16];
    omni_memory_done_pt done;
    void *arg;
    int status; /* an answer decided before the query */
    const char *answer;
} omni_mem_op_t;

static int omni_mem_stmt;


int omni_mem_store_init(void)
{
    omni_mem_stmt = omni_db_statement("memory_api",
        "SELECT a.status, a.body FROM omnex.api($1, $2, $3, $4, $5,"
        " $6::int, $7, $8::real[], $9) AS a");
    return omni_mem_stmt < 0 ? -1 : 0;
}


static void omni_mem_finish(omni_mem_op_t *op, int status, const char *body)
{
    op->done(op->arg, status, body, strlen(body));
    omni_arena_free(&op->arena);
    free(op);
}


static void omni_mem_deferred(evutil_socket_t fd, short what, void *arg)
{
    omni_mem_op_t *op = arg;

    omni_mem_finish(op, op->status, op->answer);
}


/* Answers op with an error from the loop. */
static void omni_mem_fail(omni_mem_op_t *op, int status, const char *code,
    const char *field, const char *msg)
{
    struct evbuffer *b = evbuffer_new();

    op->status = status;
    op->answer = "{\"error\":\"overloaded\",\"message\":\"out of memory\"}";
    if (b != NULL) {
        evbuffer_add_printf(b, "{\"error\":\"%s\",\"message\":", code);
        omni_json_put_string(b, msg, strlen(msg));
        if (field != NULL) {
            evbuffer_add_printf(b, ",\"field\":\"%s\"", field);
        }
        evbuffer_add(b, "}", 1);
        op->answer = omni_arena_strndup(&op->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
    }
    if (op->answer == NULL) {
        op->answer = "{\"error\":\"overloaded\",\"message\":\"out of memory\"}";
    }
    if (event_base_once(
            omni_clients.base, -1, EV_TIMEOUT, omni_mem_deferred, op, NULL)
        != 0) {
        omni_log(OMNI_LOG_ERROR, "cannot schedule a callback", NULL);
        abort();
    }
}


static void omni_mem_queried(void *arg, omni_db_status_t status, PGresult *res)
{
    omni_mem_op_t *op = arg;
    int st;

    if (status == OMNI_DB_ERROR) {
        omni_log(
            OMNI_LOG_ERROR, "omnex.api failed", "\"op\":\"%s\"", op->values[0]);
        omni_mem_finish(op, 500,
            "{\"error\":\"internal_error\",\"message\":\"internal error\"}");
        return;
    }
    if (status != OMNI_DB_OK || PQntuples(res) != 1) {
        omni_mem_finish(op, 503,
            status == OMNI_DB_TIMEOUT
                ? "{\"error\":\"database_timeout\",\"message\":"
                  "\"the database did not answer in time\"}"
                : "{\"error\":\"database_unavailable\",\"message\":"
                  "\"the database is unavailable\"}");
        return;
    }
    st = atoi(PQgetvalue(res, 0, 0));
    if (st == 201 && strcmp(op->values[0], "memories.add") == 0) {
        omni_mem_embed_kick();
    }
    omni_mem_finish(op, st, st == 204 ? "{}" : PQgetvalue(res, 0, 1));
}


static void omni_mem_query(omni_mem_op_t *op)
{
    omni_db_status_t st;

    st = omni_db_query(
        omni_clients.db, omni_mem_stmt, 9, op->values, omni_mem_queried, op);
    if (st != OMNI_DB_OK) {
        omni_mem_fail(op, 503,
            st == OMNI_DB_BUSY ? "overloaded" : "database_unavailable", NULL,
            st == OMNI_DB_BUSY ? "too many queries wait for the database"
                               : "the database is unavailable");
    }
}


static void omni_mem_embedded(
    void *arg, int status, const char *msg, float *const *vecs, int n, int dim)
{
    omni_mem_op_t *op = arg;
    struct evbuffer *b;
    int j;

    if (status != 0) {
        omni_mem_finish(op, status,
            status == 504 ? "{\"error\":\"upstream_timeout\",\"message\":\"the "
                            "embedding provider did not answer in time\"}"
            : status == 503
                ? "{\"error\":\"embedding_unavailable\",\"message\":\"no "
                  "embedding provider can be reached for the configured "
                  "model\"}"
                : "{\"error\":\"upstream_error\",\"message\":\"the embedding "
                  "provider failed\"}");
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        omni_mem_finish(op, 503,
            "{\"error\":\"overloaded\",\"message\":\"out of memory\"}");
        return;
    }
    evbuffer_add(b, "{", 1);
    for (j = 0; j < dim; j++) {
        evbuffer_add_printf(b, j ? ",%.9g" : "%.9g", (double)vecs[0][j]);
    }
    evbuffer_add(b, "}", 1);
    op->values[7] = omni_arena_strndup(&op->arena,
        (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    if (op->values[7] == NULL) {
        omni_mem_finish(op, 503,
            "{\"error\":\"overloaded\",\"message\":\"out of memory\"}");
        return;
    }
    omni_mem_query(op);
}


/* A search: 0 with *text the query to embed (NULL for a text search), or
 * -1 after failing op. */
static int omni_mem_search_check(
    omni_mem_op_t *op, const omni_json_t *body, const char **text)
{
    const omni_json_t *q = omni_json_get(body, "query");
    const omni_json_t *m = omni_json_get(body, "mode");
    const omni_json_t *k = omni_json_get(body, "k");
    const char *mode, *s;
    int64_t n;

    *text = NULL;
    if (q == NULL || q->type == OMNI_JSON_NULL) {
        omni_mem_fail(op, 400, "missing_field", "query", "query: required");
        return -1;
    }
    if (q->type != OMNI_JSON_STRING) {
        omni_mem_fail(
            op, 400, "invalid_field", "query", "query: must be a string");
        return -1;
    }
    s = q->u.str.ptr;
    if (strspn(s, " \t\r\n") == q->u.str.len) {
        omni_mem_fail(
            op, 422, "invalid_value", "query", "query: must not be empty");
        return -1;
    }
    if (q->u.str.len > OMNI_MEM_QUERY_MAX) {
        omni_mem_fail(
            op, 422, "invalid_value", "query", "query: longer than 4096 bytes");
        return -1;
    }
    if (k != NULL && k->type != OMNI_JSON_NULL
        && (!omni_json_int(k, &n) || n < 1 || n > 100)) {
        omni_mem_fail(op, k->type == OMNI_JSON_NUMBER ? 422 : 400,
            k->type == OMNI_JSON_NUMBER ? "invalid_value" : "invalid_field",
            "k", "k: an integer from 1 to 100");
        return -1;
    }
    if (m == NULL || m->type == OMNI_JSON_NULL) {
        mode = omni_mem_model() ? "hybrid" : "text";
    } else if (m->type != OMNI_JSON_STRING) {
        omni_mem_fail(op, 400, "invalid_field", "mode",
            "mode: must be a string (text, semantic or hybrid)");
        return -1;
    } else {
        mode = m->u.str.ptr;
    }
    if (strcmp(mode, "text") != 0 && strcmp(mode, "semantic") != 0
        && strcmp(mode, "hybrid") != 0) {
        omni_mem_fail(
            op, 422, "invalid_value", "mode", "mode: text, semantic or hybrid");
        return -1;
    }
    if (strcmp(mode, "text") == 0) {
        return 0;
    }
    if (omni_mem_model() == NULL) {
        omni_mem_fail(op, 422, "invalid_value", "mode",
            "mode: semantic and hybrid search need an embedding model and "
            "none is configured (OMNI_EMBEDDING_MODEL); use mode text");
        return -1;
    }
    *text = s;
    return 0;
}


static const char *omni_mem_copy(omni_mem_op_t *op, const char *s)
{
    return s ? omni_arena_strndup(&op->arena, s, strlen(s)) : NULL;
}


int omni_mem_run(const omni_mem_args_t *a, omni_memory_done_pt done, void *arg)
{
    omni_mem_op_t *op = calloc(1, sizeof(*op));
    struct evbuffer *b = NULL;
    const char *text = NULL;

    if (op == NULL) {
        return -1;
    }
    omni_arena_init(&op->arena, 0);
    op->done = done;
    op->arg = arg;
    snprintf(op->limit, sizeof(op->limit), "%d", a->limit);
    op->values[0] = omni_mem_copy(op, a->op);
    op->values[1] = omni_mem_copy(op, a->owner);
    op->values[2] = omni_mem_copy(op, a->ns);
    op->values[3] = omni_mem_copy(op, a->key);
    op->values[5] = op->limit;
    op->values[6] = omni_mem_copy(op, a->cursor);
    op->values[8] = omni_mem_model();
    if (a->body != NULL) {
        b = evbuffer_new();
        if (b == NULL || omni_json_write(b, a->body) != 0) {
            goto failed;
        }
        op->values[4] = omni_arena_strndup(&op->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
        b = NULL;
        if (op->values[4] == NULL) {
            goto failed;
        }
    }
    if (op->values[0] == NULL || op->values[1] == NULL) {
        goto failed;
    }
    if (strcmp(a->op, "memories.search") == 0) {
        if (omni_mem_search_check(op, a->body, &text) != 0) {
            return 0;
        }
        if (text != NULL) {
            if (omni_mem_embed(&text, 1, omni_mem_embedded, op) != 0) {
                omni_mem_fail(op, 503, "overloaded", NULL, "out of memory");
            }
            return 0;
        }
    }
    omni_mem_query(op);
    return 0;

failed:
    if (b != NULL) {
        evbuffer_free(b);
    }
    omni_arena_free(&op->arena);
    free(op);
    return -1;
}
