/* dashboard.c: the dashboard's configuration store (omni2_dashboard). */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "api.h"
#include "routes.h"


#define OMNI_CONFIG_COLUMNS                                                  \
    "key, value::text, description,"                                         \
    " to_char(updated_at AT TIME ZONE 'UTC',"                                \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), updated_by"

static int omni_config_get_stmt, omni_config_list_stmt, omni_config_put_stmt;


int
omni_dashboard_init(void)
{
    omni_config_get_stmt = omni_db_statement("config_get",
        "SELECT " OMNI_CONFIG_COLUMNS
        " FROM omni2_dashboard.dashboard_config WHERE key = $1");

    omni_config_list_stmt = omni_db_statement("config_list",
        "SELECT " OMNI_CONFIG_COLUMNS
        " FROM omni2_dashboard.dashboard_config"
        " WHERE $1::text IS NULL OR key > $1"
        " ORDER BY key LIMIT $2::int");

    omni_config_put_stmt = omni_db_statement("config_put",
        "INSERT INTO omni2_dashboard.dashboard_config AS c"
        " (key, value, updated_by) VALUES ($1, $2::jsonb, $3)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
        " updated_at = now(), updated_by = excluded.updated_by"
        " RETURNING " OMNI_CONFIG_COLUMNS);

    return omni_config_get_stmt < 0 || omni_config_list_stmt < 0
           || omni_config_put_stmt < 0 ? -1 : 0;
}


/* One row as {"key":..,"value":<jsonb as is>,...}. */
static void
omni_config_row(struct evbuffer *b, PGresult *res, int row)
{
    evbuffer_add(b, "{\"key\":", 7);
    omni_api_put_text(b, res, row, 0);
    evbuffer_add(b, ",\"value\":", 9);
    /* jsonb's text form is valid JSON */
    evbuffer_add(b, PQgetvalue(res, row, 1), PQgetlength(res, row, 1));
    evbuffer_add(b, ",\"description\":", 15);
    omni_api_put_text(b, res, row, 2);
    evbuffer_add(b, ",\"updated_at\":", 14);
    omni_api_put_text(b, res, row, 3);
    evbuffer_add(b, ",\"updated_by\":", 14);
    omni_api_put_text(b, res, row, 4);
    evbuffer_add(b, "}", 1);
}


static int
omni_config_key_valid(const char *k)
{
    size_t i, n = strlen(k);

    if (n == 0 || n > 64 || k[0] < 'a' || k[0] > 'z') {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9')
              || k[i] == '_'))
        {
            return 0;
        }
    }
    return 1;
}


void
omni_config_get(omni_req_t *r)
{
    const char       *key = omni_req_param(r, 0);
    struct evbuffer  *b;

    switch (r->state) {

    case 0:
        r->state = 1;
        omni_api_query(r, omni_config_get_stmt, 1, &key);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(r, 404, "not_found",
                               "no configuration key \"%.64s\"", key);
            return;
        }
        b = evbuffer_new();
        omni_config_row(b, r->db_res, 0);
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}


void
omni_config_list(omni_req_t *r)
{
    const char       *values[2];
    char              limit[16];
    int               n, i, rows;
    struct evbuffer  *b;

    n = omni_api_limit(r);
    if (n < 0) {
        return;
    }

    switch (r->state) {

    case 0:
        /* one row more than asked tells whether there is a next page */
        snprintf(limit, sizeof(limit), "%d", n + 1);
        values[0] = omni_req_arg(r, "cursor");
        values[1] = limit;
        r->state = 1;
        omni_api_query(r, omni_config_list_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        rows = PQntuples(r->db_res);
        b = evbuffer_new();
        evbuffer_add(b, "{\"items\":[", 10);
        for (i = 0; i < rows && i < n; i++) {
            if (i) {
                evbuffer_add(b, ",", 1);
            }
            omni_config_row(b, r->db_res, i);
        }
        evbuffer_add(b, "],\"next_cursor\":", 16);
        if (rows > n) {
            omni_api_put_text(b, r->db_res, n - 1, 0);
        } else {
            evbuffer_add(b, "null", 4);
        }
        evbuffer_add(b, "}\n", 2);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}


void
omni_config_put(omni_req_t *r)
{
    const char       *key = omni_req_param(r, 0), *role, *values[3];
    struct evbuffer  *b;

    switch (r->state) {

    case 0:
        /* the gateway enforces the role; the worker checks it again */
        role = omni_req_header(r, "X-User-Role");
        if (role == NULL || strcmp(role, "admin") != 0) {
            omni_respond_error(r, 403, "forbidden",
                               "changing configuration needs the admin role");
            return;
        }
        if (!omni_config_key_valid(key)) {
            omni_respond_error(r, 422, "invalid_value",
                               "key: expected 1-64 characters of a-z, 0-9 "
                               "and _, starting with a letter");
            return;
        }
        if (r->json->type != OMNI_JSON_OBJECT) {
            omni_respond_error(r, 422, "invalid_value",
                               "value: expected a JSON object");
            return;
        }

        b = evbuffer_new();
        if (b == NULL || omni_json_write(b, r->json) != 0
            || evbuffer_add(b, "", 1) != 0)
        {
            if (b) {
                evbuffer_free(b);
            }
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        values[0] = key;
        values[1] = (const char *) evbuffer_pullup(b, -1);
        values[2] = omni_req_header(r, "X-User-Id");
        r->state = 1;
        /* parameters are copied: the buffer can go at once */
        omni_api_query(r, omni_config_put_stmt, 3, values);
        evbuffer_free(b);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        b = evbuffer_new();
        omni_config_row(b, r->db_res, 0);
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}
