/* api.c: helpers every API handler shares. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "api.h"
#include "log.h"
#include "routes.h"
#include "server.h"


static void
omni_api_db_done(void *arg, omni_db_status_t status, PGresult *res)
{
    omni_req_t *r = arg;

    r->db_status = status;
    r->db_res = res;
    omni_routes[r->route].handler(r);
}


int
omni_api_query(omni_req_t *r, int stmt, int nparams,
    const char *const *values)
{
    omni_db_status_t st;

    st = omni_db_query(omni_server.db, stmt, nparams, values,
                       omni_api_db_done, r);
    if (st != OMNI_DB_OK) {
        r->db_status = st;
        r->db_res = NULL;
        omni_api_db_failed(r);
        return -1;
    }
    return 0;
}


void
omni_api_db_failed(omni_req_t *r)
{
    char buf[512];

    switch (r->db_status) {
    case OMNI_DB_TIMEOUT:
        omni_respond_error(r, 503, "database_timeout",
                           "the database did not answer in time");
        return;

    case OMNI_DB_ERROR:
        omni_log(OMNI_LOG_ERROR, "query failed",
                 "\"request_id\":\"%s\",\"error\":\"%s\"", r->request_id,
                 omni_log_escape(buf, sizeof(buf),
                                 PQresultErrorMessage(r->db_res)));
        omni_respond_error(r, 500, "internal_error",
                           "internal error (request id %s)", r->request_id);
        return;

    default:
        omni_respond_error(r, 503, "database_unavailable",
                           "the database is unavailable; retry shortly");
        return;
    }
}


void
omni_api_json(omni_req_t *r, int status, struct evbuffer *body)
{
    omni_respond(r, status, "application/json", body);
}


int
omni_api_put_text(struct evbuffer *out, PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return evbuffer_add(out, "null", 4);
    }
    return omni_json_put_string(out, PQgetvalue(res, row, col),
                                (size_t) PQgetlength(res, row, col));
}


int
omni_api_limit(omni_req_t *r)
{
    const char  *v = omni_req_arg(r, "limit");
    char        *end;
    long         n;

    if (v == NULL) {
        return 50;
    }
    n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1 || n > 500) {
        omni_respond_error(r, 400, "invalid_parameter",
                           "limit must be an integer from 1 to 500");
        return -1;
    }
    return (int) n;
}
