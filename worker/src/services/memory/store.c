/* store.c: one operation on the Omnex store, from a REST route or an MCP
 * tool:
 *
 *   start --(search, semantic|hybrid)--> EMBED the query --> SCAN --> QUERY
 *         --(otherwise)----------------------------------------------> QUERY
 *   SCAN: pages of the owner's vectors of the model and dimension (in
 *         namespace, matching filter), read as bytes in id order, each
 *         page's cosine similarities folded into a top-n heap: exact, and
 *         memory bounded by one page whatever the namespace's size
 *   QUERY: omnex.api() (with the top list) --> done(status, body)
 *
 * A search's query, mode and k are checked here, before a provider is
 * asked for an embedding; everything else is checked by omnex.api(). */
#include <arpa/inet.h>
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
#define OMNI_MEM_PAGE_BYTES (4 * 1024 * 1024) /* vectors per scan query */

typedef struct {
    double s;
    unsigned char id[16];
} omni_mem_hit_t;

typedef struct {
    omni_arena_t arena;
    const char *values[9];
    char limit[16];
    omni_memory_done_pt done;
    void *arg;
    int status; /* an answer decided before the query */
    const char *answer;
    /* a semantic scan */
    float *q;
    int dim;
    const char *ns, *filter;
    omni_mem_hit_t *heap; /* the n best so far, worst on top */
    int n, nheap, page;
    char last[40], page_text[16];
} omni_mem_op_t;

static int omni_mem_stmt, omni_mem_scan_ns, omni_mem_scan_all;
static int omni_mem_ctx_get, omni_mem_mem_get;

static void omni_mem_scan(omni_mem_op_t *op);


int omni_mem_store_init(void)
{
    omni_mem_stmt = omni_db_statement("memory_api",
        "SELECT a.status, a.body FROM omnex.api($1, $2, $3, $4, $5,"
        " $6::int, $7, $8, $9) AS a");
    /* A page is the next rows of the owner (and namespace) in id order,
     * the index's order, whatever matches: the planner must not see the
     * model and filter conditions (it guesses them rare, then prefers
     * sorting every row of the namespace for each page). A row that does
     * not match comes back without its vector. */
    omni_mem_scan_ns = omni_db_statement_binary("memory_scan_ns",
        "SELECT p.id, CASE WHEN p.embedding_model = $4"
        " AND p.metadata @> $3::jsonb THEN p.embedding_packed END"
        " FROM (SELECT id, embedding_model, metadata, embedding_packed"
        " FROM omnex.memories WHERE owner = $1 AND namespace = $2"
        " AND id > $5::uuid ORDER BY id LIMIT $6::int) AS p ORDER BY p.id");
    omni_mem_scan_all = omni_db_statement_binary("memory_scan_all",
        "SELECT p.id, CASE WHEN p.embedding_model = $3"
        " AND p.metadata @> $2::jsonb THEN p.embedding_packed END"
        " FROM (SELECT id, embedding_model, metadata, embedding_packed"
        " FROM omnex.memories WHERE owner = $1"
        " AND id > $4::uuid ORDER BY id LIMIT $5::int) AS p ORDER BY p.id");
    /* the point reads, without omnex.api()'s subtransaction (5x its
     * cost): their arguments are checked here */
    omni_mem_ctx_get = omni_db_statement("memory_context_get",
        "SELECT omnex.context_json(c)::text FROM omnex.contexts AS c"
        " WHERE c.owner = $1 AND c.namespace = $2 AND c.key = $3");
    omni_mem_mem_get = omni_db_statement("memory_memory_get",
        "SELECT omnex.memory_json(m, $3)::text FROM omnex.memories AS m"
        " WHERE m.owner = $1 AND m.id = $2::uuid");
    return omni_mem_stmt < 0 || omni_mem_scan_ns < 0 || omni_mem_scan_all < 0
                   || omni_mem_ctx_get < 0 || omni_mem_mem_get < 0
               ? -1
               : 0;
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


/* Whether a is worse than b: a lower score, or the same and a later id. */
static int omni_mem_worse(const omni_mem_hit_t *a, const omni_mem_hit_t *b)
{
    return a->s < b->s || (a->s == b->s && memcmp(a->id, b->id, 16) > 0);
}


static void omni_mem_sift_down(omni_mem_hit_t *h, int n, int i)
{
    omni_mem_hit_t t;
    int c;

    for (;;) {
        c = 2 * i + 1;
        if (c >= n) {
            return;
        }
        if (c + 1 < n && omni_mem_worse(&h[c + 1], &h[c])) {
            c++;
        }
        if (!omni_mem_worse(&h[c], &h[i])) {
            return;
        }
        t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}


static void omni_mem_offer(omni_mem_op_t *op, const omni_mem_hit_t *hit)
{
    omni_mem_hit_t *h = op->heap, t;
    int i, p;

    if (op->nheap < op->n) {
        i = op->nheap++;
        h[i] = *hit;
        while (i > 0) {
            p = (i - 1) / 2;
            if (!omni_mem_worse(&h[i], &h[p])) {
                break;
            }
            t = h[i];
            h[i] = h[p];
            h[p] = t;
            i = p;
        }
        return;
    }
    if (omni_mem_worse(&h[0], hit)) {
        h[0] = *hit;
        omni_mem_sift_down(h, op->nheap, 0);
    }
}


static void omni_mem_uuid_text(const unsigned char *id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int i, o = 0;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[id[i] >> 4];
        out[o++] = hex[id[i] & 15];
    }
    out[o] = '\0';
}


/* The heap, best first, as [["id", score], ...] for omnex.api(). */
static void omni_mem_top_list(omni_mem_op_t *op)
{
    struct evbuffer *b = evbuffer_new();
    omni_mem_hit_t t;
    char id[40];
    int n = op->nheap, i;

    if (b == NULL) {
        omni_mem_finish(op, 503,
            "{\"error\":\"overloaded\",\"message\":\"out of memory\"}");
        return;
    }
    /* heap sort: the worst goes to the end each round */
    for (i = n - 1; i > 0; i--) {
        t = op->heap[0];
        op->heap[0] = op->heap[i];
        op->heap[i] = t;
        omni_mem_sift_down(op->heap, i, 0);
    }
    evbuffer_add(b, "[", 1);
    for (i = 0; i < n; i++) {
        omni_mem_uuid_text(op->heap[i].id, id);
        evbuffer_add_printf(
            b, "%s[\"%s\",%.9g]", i ? "," : "", id, op->heap[i].s);
    }
    evbuffer_add(b, "]", 1);
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


static void omni_mem_scanned(void *arg, omni_db_status_t status, PGresult *res)
{
    omni_mem_op_t *op = arg;
    const unsigned char *v;
    omni_mem_hit_t hit;
    uint32_t bits;
    float f;
    double dot;
    int rows, i, j;

    if (status != OMNI_DB_OK) {
        if (status == OMNI_DB_ERROR) {
            omni_log(OMNI_LOG_ERROR, "memory scan failed", NULL);
        }
        omni_mem_finish(op, status == OMNI_DB_ERROR ? 500 : 503,
            status == OMNI_DB_ERROR
                ? "{\"error\":\"internal_error\",\"message\":\"internal "
                  "error\"}"
                : "{\"error\":\"database_unavailable\",\"message\":\"the "
                  "database is unavailable\"}");
        return;
    }
    rows = PQntuples(res);
    for (i = 0; i < rows; i++) {
        /* another model's, another dimension, or not matching the filter */
        if (PQgetlength(res, i, 0) != 16
            || PQgetlength(res, i, 1) != 4 * op->dim) {
            continue;
        }
        v = (const unsigned char *)PQgetvalue(res, i, 1);
        dot = 0;
        for (j = 0; j < op->dim; j++) {
            memcpy(&bits, v + 4 * j, 4);
            bits = ntohl(bits);
            memcpy(&f, &bits, 4);
            dot += (double)f * op->q[j];
        }
        hit.s = dot;
        memcpy(hit.id, PQgetvalue(res, i, 0), 16);
        omni_mem_offer(op, &hit);
    }
    if (rows < op->page) {
        omni_mem_top_list(op);
        return;
    }
    omni_mem_uuid_text(
        (const unsigned char *)PQgetvalue(res, rows - 1, 0), op->last);
    omni_mem_scan(op);
}


static void omni_mem_scan(omni_mem_op_t *op)
{
    const char *values[7];
    omni_db_status_t st;
    int n = 0, stmt;

    values[n++] = op->values[1];
    if (op->ns != NULL) {
        values[n++] = op->ns;
    }
    values[n++] = op->filter;
    values[n++] = op->values[8];
    values[n++] = op->last;
    values[n++] = op->page_text;
    stmt = op->ns != NULL ? omni_mem_scan_ns : omni_mem_scan_all;
    st = omni_db_query(omni_clients.db, stmt, n, values, omni_mem_scanned, op);
    if (st != OMNI_DB_OK) {
        omni_mem_finish(op, 503,
            st == OMNI_DB_BUSY
                ? "{\"error\":\"overloaded\",\"message\":\"too many queries "
                  "wait for the database\"}"
                : "{\"error\":\"database_unavailable\",\"message\":\"the "
                  "database is unavailable\"}");
    }
}


static void omni_mem_embedded(
    void *arg, int status, const char *msg, float *const *vecs, int n, int dim)
{
    omni_mem_op_t *op = arg;

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
    op->dim = dim;
    op->q = omni_arena_alloc(&op->arena, sizeof(float) * (size_t)dim);
    op->heap = omni_arena_alloc(&op->arena, sizeof(omni_mem_hit_t) * op->n);
    if (op->q == NULL || op->heap == NULL) {
        omni_mem_finish(op, 503,
            "{\"error\":\"overloaded\",\"message\":\"out of memory\"}");
        return;
    }
    memcpy(op->q, vecs[0], sizeof(float) * (size_t)dim);
    op->page = OMNI_MEM_PAGE_BYTES / (4 * dim);
    if (op->page < 64) {
        op->page = 64;
    }
    snprintf(op->page_text, sizeof(op->page_text), "%d", op->page);
    snprintf(
        op->last, sizeof(op->last), "00000000-0000-0000-0000-000000000000");
    omni_mem_scan(op);
}


/* A search: 0 with *text the query to embed (NULL for a text search), or
 * -1 after failing op. */
static int omni_mem_search_check(
    omni_mem_op_t *op, const omni_json_t *body, const char **text)
{
    const omni_json_t *q = omni_json_get(body, "query");
    const omni_json_t *m = omni_json_get(body, "mode");
    const omni_json_t *k = omni_json_get(body, "k");
    const omni_json_t *ns, *filter;
    struct evbuffer *b;
    const char *mode, *s;
    int64_t n, kn = 10;

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
    if (k != NULL && k->type != OMNI_JSON_NULL) {
        kn = n;
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
    ns = omni_json_get(body, "namespace");
    filter = omni_json_get(body, "filter");
    if ((ns != NULL && ns->type != OMNI_JSON_NULL
            && (ns->type != OMNI_JSON_STRING || ns->u.str.len > 128
                || ns->u.str.len == 0
                || strspn(ns->u.str.ptr, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
                                         "klmnopqrstuvwxyz0123456789._-")
                       != ns->u.str.len))
        || (filter != NULL && filter->type != OMNI_JSON_NULL
            && filter->type != OMNI_JSON_OBJECT)) {
        return 0; /* omnex.api() names the field */
    }
    op->ns = ns != NULL && ns->type == OMNI_JSON_STRING ? ns->u.str.ptr : NULL;
    op->filter = "{}";
    if (filter != NULL && filter->type == OMNI_JSON_OBJECT) {
        b = evbuffer_new();
        if (b == NULL || omni_json_write(b, filter) != 0) {
            if (b != NULL) {
                evbuffer_free(b);
            }
            omni_mem_fail(op, 503, "overloaded", NULL, "out of memory");
            return -1;
        }
        op->filter = omni_arena_strndup(&op->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
    }
    op->n = strcmp(mode, "semantic") == 0 ? (int)kn
                                          : (4 * kn > 50 ? 4 * (int)kn : 50);
    if (op->ns != NULL) {
        op->ns = omni_arena_strndup(&op->arena, op->ns, strlen(op->ns));
    }
    if (op->filter == NULL
        || (ns != NULL && ns->type == OMNI_JSON_STRING && op->ns == NULL)) {
        omni_mem_fail(op, 503, "overloaded", NULL, "out of memory");
        return -1;
    }
    *text = s;
    return 0;
}


static const char *omni_mem_copy(omni_mem_op_t *op, const char *s)
{
    return s ? omni_arena_strndup(&op->arena, s, strlen(s)) : NULL;
}


/* Whether s is a namespace or key: ^[A-Za-z0-9._-]{1,128}$. */
static int omni_mem_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    return n >= 1 && n <= 128
           && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789._-")
                  == n;
}


static int omni_mem_uuid_ok(const char *s)
{
    size_t i;

    if (s == NULL || strlen(s) != 36) {
        return 0;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23
                ? s[i] != '-'
                : strchr("0123456789abcdefABCDEF", s[i]) == NULL
                      || s[i] == '\0') {
            return 0;
        }
    }
    return 1;
}


/* A point read's 404, as omnex.api() words it. */
static void omni_mem_not_found(omni_mem_op_t *op)
{
    char msg[400];

    if (strcmp(op->values[0], "contexts.get") == 0) {
        snprintf(msg, sizeof(msg), "no context \"%s\" in namespace \"%s\"",
            op->values[3], op->values[2]);
    } else {
        snprintf(msg, sizeof(msg), "no memory \"%.64s\"", op->values[3]);
    }
    omni_mem_fail(op, 404, "not_found", NULL, msg);
}


static void omni_mem_got(void *arg, omni_db_status_t status, PGresult *res)
{
    omni_mem_op_t *op = arg;

    if (status == OMNI_DB_OK && PQntuples(res) == 0) {
        omni_mem_not_found(op);
        return;
    }
    if (status != OMNI_DB_OK || PQntuples(res) != 1) {
        omni_mem_queried(
            arg, status == OMNI_DB_OK ? OMNI_DB_ERROR : status, NULL);
        return;
    }
    omni_mem_finish(op, 200, PQgetvalue(res, 0, 0));
}


/* contexts.get and memories.get: 0 when handled here, 1 for omnex.api(). */
static int omni_mem_point_read(omni_mem_op_t *op)
{
    const char *values[3];
    omni_db_status_t st;
    int stmt;

    if (strcmp(op->values[0], "contexts.get") == 0) {
        if (!omni_mem_name_ok(op->values[2])
            || !omni_mem_name_ok(op->values[3])) {
            return 1; /* omnex.api() names the field */
        }
        stmt = omni_mem_ctx_get;
        values[0] = op->values[1];
        values[1] = op->values[2];
        values[2] = op->values[3];
    } else if (strcmp(op->values[0], "memories.get") == 0) {
        if (op->values[3] == NULL) {
            return 1;
        }
        if (!omni_mem_uuid_ok(op->values[3])) {
            omni_mem_not_found(op);
            return 0;
        }
        stmt = omni_mem_mem_get;
        values[0] = op->values[1];
        values[1] = op->values[3];
        values[2] = op->values[8];
    } else {
        return 1;
    }
    st = omni_db_query(omni_clients.db, stmt, 3, values, omni_mem_got, op);
    if (st != OMNI_DB_OK) {
        omni_mem_fail(op, 503,
            st == OMNI_DB_BUSY ? "overloaded" : "database_unavailable", NULL,
            st == OMNI_DB_BUSY ? "too many queries wait for the database"
                               : "the database is unavailable");
    }
    return 0;
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
    if (omni_mem_point_read(op) == 0) {
        return 0;
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
