/* settings.c: the dashboard's key-value settings store
 * (omni2_dashboard.dashboard_config, /api/v1/config) and per-user
 * preferences. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "io/log.h"
#include "http/api.h"
#include "services/dashboard/activity.h"
#include "services/dashboard/dashboard.h"


#define OMNI_SETTINGS_COLUMNS                                                  \
    "key, value::text, description, " OMNI_SQL_TIMESTAMP(                      \
        "updated_at") ", updated_by"

/* serialized preferences per user */
#define OMNI_PREFERENCES_MAX 65536

static int omni_settings_get_stmt, omni_settings_list_stmt,
    omni_settings_put_stmt;
static int omni_prefs_get_stmt, omni_prefs_put_stmt;


int omni_settings_init(void)
{
    omni_settings_get_stmt = omni_db_statement_brief("config_get",
        "SELECT " OMNI_SETTINGS_COLUMNS
        " FROM omni2_dashboard.dashboard_config WHERE key = $1");

    omni_settings_list_stmt = omni_db_statement("config_list",
        "SELECT " OMNI_SETTINGS_COLUMNS " FROM omni2_dashboard.dashboard_config"
        " WHERE $1::text IS NULL OR key > $1"
        " ORDER BY key LIMIT $2::int");

    omni_settings_put_stmt = omni_db_statement("config_put",
        "SELECT " OMNI_SETTINGS_COLUMNS ", old_value::text, changed"
        " FROM omni2_dashboard.put_config($1, $2::jsonb, $3)");

    omni_prefs_get_stmt = omni_db_statement_brief("preferences_get",
        "SELECT preferences::text, " OMNI_SQL_TIMESTAMP(
            "updated_at") " FROM omni2_dashboard.user_preferences WHERE "
                          "user_id = $1");

    omni_prefs_put_stmt = omni_db_statement_brief("preferences_put",
        "INSERT INTO omni2_dashboard.user_preferences AS p"
        " (user_id, preferences) VALUES ($1, $2::jsonb)"
        " ON CONFLICT (user_id) DO UPDATE SET"
        " preferences = excluded.preferences, updated_at = now()"
        " RETURNING preferences::text, " OMNI_SQL_TIMESTAMP("updated_at"));

    if (omni_settings_get_stmt < 0 || omni_settings_list_stmt < 0
        || omni_settings_put_stmt < 0 || omni_prefs_get_stmt < 0
        || omni_prefs_put_stmt < 0) {
        return -1;
    }
    return 0;
}


static int omni_settings_admin(omni_req_t *r)
{
    return omni_req_identity(r)->rank == OMNI_ROLE_ADMIN;
}


/* 422 {"error":"invalid_value","message":...,"field":...} */
static void omni_settings_invalid(
    omni_req_t *r, const char *field, const char *msg)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        omni_respond_error(r, 422, "invalid_value", "%s", msg);
        return;
    }
    evbuffer_add(b, "{\"error\":\"invalid_value\",\"message\":", 35);
    omni_json_put_string(b, msg, strlen(msg));
    evbuffer_add(b, ",\"field\":", 9);
    omni_json_put_string(b, field, strlen(field));
    evbuffer_add(b, "}\n", 2);
    omni_api_json(r, 422, b);
    evbuffer_free(b);
}


/* The request body as compact JSON text in the arena, or NULL after
 * answering 503. */
static const char *omni_settings_body(omni_req_t *r, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    const char *text = NULL;

    if (b != NULL && omni_json_write(b, r->json) == 0) {
        *len = evbuffer_get_length(b);
        text = omni_arena_strndup(
            &r->arena, (const char *)evbuffer_pullup(b, -1), *len);
    }
    if (b != NULL) {
        evbuffer_free(b);
    }
    if (text == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
    }
    return text;
}


/* --- configuration ------------------------------------------------------ */

/* One row as {"key":..,"value":<jsonb>,...}; secrets in the value are
 * hidden unless `admin`. */
static void omni_settings_row(
    omni_req_t *r, struct evbuffer *b, PGresult *res, int row, int admin)
{
    evbuffer_add(b, "{\"key\":", 7);
    omni_api_put_text(b, res, row, 0);
    evbuffer_add(b, ",\"value\":", 9);
    if (admin) {
        /* jsonb's text form is valid JSON */
        evbuffer_add(b, PQgetvalue(res, row, 1), PQgetlength(res, row, 1));
    } else {
        omni_redact_write(b, PQgetvalue(res, row, 0), PQgetvalue(res, row, 1),
            (size_t)PQgetlength(res, row, 1), &r->arena);
    }
    evbuffer_add(b, ",\"description\":", 15);
    omni_api_put_text(b, res, row, 2);
    evbuffer_add(b, ",\"updated_at\":", 14);
    omni_api_put_text(b, res, row, 3);
    evbuffer_add(b, ",\"updated_by\":", 14);
    omni_api_put_text(b, res, row, 4);
    evbuffer_add(b, "}", 1);
}


static int omni_settings_key_valid(const char *k)
{
    size_t i, n = strlen(k);

    if (n == 0 || n > 64 || k[0] < 'a' || k[0] > 'z') {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9')
                || k[i] == '_')) {
            return 0;
        }
    }
    return 1;
}


void omni_settings_get(omni_req_t *r)
{
    const char *key = omni_req_param(r, 0);
    struct evbuffer *b;

    switch (r->state) {

    case 0:
        r->state = 1;
        omni_api_query(r, omni_settings_get_stmt, 1, &key);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(
                r, 404, "not_found", "no configuration key \"%.64s\"", key);
            return;
        }
        b = evbuffer_new();
        omni_settings_row(r, b, r->db_res, 0, omni_settings_admin(r));
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}


static void omni_settings_item(
    omni_req_t *r, struct evbuffer *b, PGresult *res, int row)
{
    omni_settings_row(r, b, res, row, omni_settings_admin(r));
}


void omni_settings_list(omni_req_t *r)
{
    omni_api_page_t page = {
        omni_settings_list_stmt, 0, 0, NULL, omni_settings_item};

    omni_api_list_page(r, &page, 0, NULL);
}


/* The change is committed whether or not its event could be stored (a
 * failure is logged by activity.c): answer either way. */
static void omni_settings_recorded(void *arg, int ok)
{
    omni_settings_put(arg);
}


/* Queues the feed event of a change: {"key","old","new"} with secrets
 * hidden (the feed goes to every role); the full values are in
 * config_audit. 0 when queued (the handler is called again). */
static int omni_settings_record(omni_req_t *r, PGresult *res)
{
    const char *key = PQgetvalue(res, 0, 0);
    const char *user = omni_req_identity(r)->id;
    struct evbuffer *b = evbuffer_new();
    char summary[128];
    int rc = -1;

    if (b == NULL) {
        return -1;
    }
    evbuffer_add(b, "{\"key\":", 7);
    omni_json_put_string(b, key, strlen(key));
    evbuffer_add(b, ",\"old\":", 7);
    if (PQgetisnull(res, 0, 5)) {
        evbuffer_add(b, "null", 4);
    } else {
        omni_redact_write(b, key, PQgetvalue(res, 0, 5),
            (size_t)PQgetlength(res, 0, 5), &r->arena);
    }
    evbuffer_add(b, ",\"new\":", 7);
    omni_redact_write(b, key, PQgetvalue(res, 0, 1),
        (size_t)PQgetlength(res, 0, 1), &r->arena);
    if (evbuffer_add(b, "}", 2) == 0) {
        snprintf(summary, sizeof(summary), "configuration %s changed", key);
        rc = omni_activity_record("config.updated", user, summary,
            (const char *)evbuffer_pullup(b, -1), omni_settings_recorded, r);
    }
    evbuffer_free(b);
    return rc;
}


void omni_settings_put(omni_req_t *r)
{
    const char *key = omni_req_param(r, 0), *values[3];
    char field[128], msg[256];
    size_t len;
    struct evbuffer *b;

    switch (r->state) {

    case 0:
        /* whatever the gateway checked, the worker checks the role */
        if (!omni_settings_admin(r)) {
            omni_respond_error(r, 403, "forbidden",
                "changing configuration needs the admin role");
            return;
        }
        if (!omni_settings_key_valid(key)) {
            omni_settings_invalid(r, "key",
                "key: expected 1-64 characters of a-z, "
                "0-9 and _, starting with a letter");
            return;
        }
        if (omni_settings_check(
                key, r->json, field, sizeof(field), msg, sizeof(msg))
            != 0) {
            omni_settings_invalid(r, field, msg);
            return;
        }
        values[0] = key;
        values[1] = omni_settings_body(r, &len);
        if (values[1] == NULL) {
            return;
        }
        values[2] = omni_req_identity(r)->id;
        r->state = 1;
        omni_api_query(r, omni_settings_put_stmt, 3, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        b = evbuffer_new();
        omni_settings_row(r, b, r->db_res, 0, 1);
        evbuffer_add(b, "\n", 1);
        r->data = omni_arena_strndup(&r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        r->state = 2;
        if (r->data != NULL && PQgetvalue(r->db_res, 0, 6)[0] == 't'
            && omni_settings_record(r, r->db_res) == 0) {
            /* answered once the event is in the feed: a client reading
             * the feed next finds it */
            evbuffer_free(b);
            return;
        }
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;

    default:
        b = evbuffer_new();
        evbuffer_add(b, r->data, strlen(r->data));
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}


/* --- preferences -------------------------------------------------------- */

static void omni_prefs_answer(omni_req_t *r, const char *user)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add(b, "{\"user_id\":", 11);
    omni_json_put_string(b, user, strlen(user));
    evbuffer_add(b, ",\"preferences\":", 15);
    if (PQntuples(r->db_res) == 0) {
        evbuffer_add(b, "{},\"updated_at\":null}\n", 22);
    } else {
        evbuffer_add(
            b, PQgetvalue(r->db_res, 0, 0), PQgetlength(r->db_res, 0, 0));
        evbuffer_add(b, ",\"updated_at\":", 14);
        omni_api_put_text(b, r->db_res, 0, 1);
        evbuffer_add(b, "}\n", 2);
    }
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


/* The caller's user id, or NULL after answering 401. */
static const char *omni_prefs_user(omni_req_t *r)
{
    const char *user = omni_req_identity(r)->id;

    if (user == NULL || *user == '\0') {
        omni_respond_error(r, 401, "missing_credentials",
            "preferences belong to a user: no X-User-Id "
            "from the gateway");
        return NULL;
    }
    return user;
}


void omni_preferences_get(omni_req_t *r)
{
    const char *user = omni_prefs_user(r);

    if (user == NULL) {
        return;
    }
    switch (r->state) {

    case 0:
        r->state = 1;
        omni_api_query(r, omni_prefs_get_stmt, 1, &user);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_prefs_answer(r, user);
        return;
    }
}


void omni_preferences_put(omni_req_t *r)
{
    const char *user = omni_prefs_user(r), *values[2];
    size_t len;

    if (user == NULL) {
        return;
    }
    switch (r->state) {

    case 0:
        if (r->json->type != OMNI_JSON_OBJECT) {
            omni_settings_invalid(
                r, "preferences", "preferences: expected a JSON object");
            return;
        }
        values[0] = user;
        values[1] = omni_settings_body(r, &len);
        if (values[1] == NULL) {
            return;
        }
        if (len > OMNI_PREFERENCES_MAX) {
            omni_respond_error(r, 413, "payload_too_large",
                "preferences: %zu bytes, more than %d", len,
                OMNI_PREFERENCES_MAX);
            return;
        }
        r->state = 1;
        omni_api_query(r, omni_prefs_put_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_prefs_answer(r, user);
        return;
    }
}
