/* api.c: helpers every API handler shares. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>

#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "http/api.h"


static void omni_api_db_done(void *arg, omni_db_status_t status, PGresult *res)
{
    omni_req_t *r = arg;

    r->db_status = status;
    r->db_res = res;
    omni_http_resume(r);
}


int omni_api_query(
    omni_req_t *r, int stmt, int nparams, const char *const *values)
{
    omni_db_status_t st;

    st = omni_db_query(
        omni_clients.db, stmt, nparams, values, omni_api_db_done, r);
    if (st != OMNI_DB_OK) {
        r->db_status = st;
        r->db_res = NULL;
        omni_api_db_failed(r);
        return -1;
    }
    return 0;
}


struct omni_api_redis {
    omni_req_t *r; /* NULL once answered */
    int pending;   /* sent, no reply yet */
    int failed;
    int ended;
    struct event timer;
};


static void omni_api_redis_finish(omni_api_redis_t *b, int failed)
{
    omni_req_t *r = b->r;

    evtimer_del(&b->timer);
    b->r = NULL;
    if (b->pending == 0) {
        free(b);
    }
    r->redis_failed = failed;
    omni_http_resume(r);
}


static void omni_api_redis_reply(redisAsyncContext *c, void *reply, void *arg)
{
    omni_api_redis_t *b = arg;
    redisReply *rep = reply;

    b->pending--;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        b->failed++;
    }
    if (b->r == NULL) {
        if (b->pending == 0) {
            free(b);
        }
        return;
    }
    if (b->ended && b->pending == 0) {
        omni_api_redis_finish(b, b->failed);
    }
}


static void omni_api_redis_deadline(evutil_socket_t fd, short what, void *arg)
{
    omni_api_redis_t *b = arg;

    omni_api_redis_finish(b, b->failed + b->pending);
}


omni_api_redis_t *omni_api_redis_begin(omni_req_t *r)
{
    omni_api_redis_t *b = calloc(1, sizeof(*b));

    if (b == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return NULL;
    }
    b->r = r;
    evtimer_assign(&b->timer, omni_clients.base, omni_api_redis_deadline, b);
    return b;
}


void omni_api_redis_cmd(omni_api_redis_t *b, int argc, const char **argv)
{
    if (omni_redis_command_argv(
            omni_clients.redis, omni_api_redis_reply, b, argc, argv, NULL)
        != 0) {
        b->failed++;
        return;
    }
    b->pending++;
}


void omni_api_redis_end(omni_api_redis_t *b, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

    b->ended = 1;
    if (b->pending == 0) {
        /* nothing to wait for: re-enter from the loop, not from here */
        tv.tv_sec = 0;
        tv.tv_usec = 0;
    }
    evtimer_add(&b->timer, &tv);
}


void omni_api_db_failed(omni_req_t *r)
{
    char buf[512];

    switch (r->db_status) {
    case OMNI_DB_TIMEOUT:
        omni_respond_error(
            r, 503, "database_timeout", "the database did not answer in time");
        return;

    case OMNI_DB_ERROR:
        omni_log(OMNI_LOG_ERROR, "query failed",
            "\"request_id\":\"%s\",\"error\":\"%s\"", r->request_id,
            omni_log_escape(buf, sizeof(buf), PQresultErrorMessage(r->db_res)));
        omni_respond_error(r, 500, "internal_error",
            "internal error (request id %s)", r->request_id);
        return;

    default:
        omni_respond_error(r, 503, "database_unavailable",
            "the database is unavailable; retry shortly");
        return;
    }
}


void omni_api_json(omni_req_t *r, int status, struct evbuffer *body)
{
    omni_respond(r, status, "application/json", body);
}


void omni_api_json_text(omni_req_t *r, int status, const char *json, size_t len)
{
    struct evbuffer *b;

    if (status == 204) {
        omni_respond(r, 204, "application/json", NULL);
        return;
    }
    b = evbuffer_new();
    if (b == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    evbuffer_add(b, json, len);
    evbuffer_add(b, "\n", 1);
    omni_api_json(r, status, b);
    evbuffer_free(b);
}


int omni_api_put_text(struct evbuffer *out, PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return evbuffer_add(out, "null", 4);
    }
    return omni_json_put_string(
        out, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}


int omni_api_limit(omni_req_t *r)
{
    const char *v = omni_req_arg(r, "limit");
    char *end;
    long n;

    if (v == NULL) {
        return 50;
    }
    n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1 || n > 500) {
        omni_respond_error(r, 400, "invalid_parameter",
            "limit must be an integer from 1 to 500");
        return -1;
    }
    return (int)n;
}


void omni_api_list(
    omni_req_t *r, int limit, int cursor_col, omni_api_row_pt row)
{
    struct evbuffer *b = evbuffer_new();
    int i, rows = PQntuples(r->db_res);

    evbuffer_add(b, "{\"items\":[", 10);
    for (i = 0; i < rows && i < limit; i++) {
        if (i) {
            evbuffer_add(b, ",", 1);
        }
        row(r, b, r->db_res, i);
    }
    evbuffer_add(b, "],\"next_cursor\":", 16);
    if (rows > limit) {
        omni_api_put_text(b, r->db_res, limit - 1, cursor_col);
    } else {
        evbuffer_add(b, "null", 4);
    }
    evbuffer_add(b, "}\n", 2);
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


void omni_api_list_page(omni_req_t *r, const omni_api_page_t *page, int nvalues,
    const char *const *values)
{
    const char *params[OMNI_API_PAGE_MAX_VALUES + 2];
    char limit[16];
    int i, n = omni_api_limit(r);

    if (n < 0) {
        return;
    }
    switch (r->state) {

    case 0:
        if (page->allow != NULL && !page->allow(r)) {
            return;
        }
        for (i = 0; i < nvalues && i < OMNI_API_PAGE_MAX_VALUES; i++) {
            params[i] = values[i];
        }
        if (page->uuid_cursor) {
            if (omni_api_cursor(r, &params[i]) != 0) {
                return;
            }
        } else {
            params[i] = omni_req_arg(r, "cursor");
        }
        /* one row more than asked tells whether there is a next page */
        snprintf(limit, sizeof(limit), "%d", n + 1);
        params[i + 1] = limit;
        r->state = 1;
        omni_api_query(r, page->stmt, i + 2, params);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_api_list(r, n, page->cursor_col, page->row);
        return;
    }
}


int omni_api_cursor(omni_req_t *r, const char **out)
{
    *out = omni_req_arg(r, "cursor");
    if (*out && !omni_uuid_valid(*out)) {
        omni_respond_error(r, 400, "invalid_parameter",
            "cursor: not a cursor from next_cursor");
        return -1;
    }
    return 0;
}


int omni_api_field_string(
    omni_req_t *r, const char *name, int required, const char **out)
{
    const omni_json_t *v = omni_json_get(r->json, name);

    if (v == NULL || (!required && v->type == OMNI_JSON_NULL)) {
        if (required) {
            omni_respond_error(r, 400, "missing_field", "%s: required", name);
            return -1;
        }
        *out = NULL;
        return 0;
    }
    if (v->type != OMNI_JSON_STRING) {
        omni_respond_error(
            r, 400, "invalid_field", "%s: expected a string", name);
        return -1;
    }
    *out = v->u.str.ptr;
    return 0;
}
