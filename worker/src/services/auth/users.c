/* users.c: user administration (admin only): list users, change a user's
 * role (which revokes their live access tokens and lowers their API keys)
 * or deactivate them (which revokes their sessions and API keys). */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "services/auth/auth.h"


static int omni_users_list_stmt, omni_users_update_stmt, omni_users_get_stmt;

/* sets the role of a mirrored key only if the mirror entry still exists,
 * so a lost entry is not recreated half-filled */
static const char omni_users_lower_key_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.call('HSET', KEYS[1], 'role', ARGV[1]) end return 0";


int omni_users_init(void)
{
    omni_users_list_stmt = omni_db_statement("users_list",
        "SELECT " OMNI_USER_COLUMNS " FROM auth_service.users u"
        " WHERE $1::uuid IS NULL OR (u.created_at, u.id) >"
        " (SELECT c.created_at, c.id FROM auth_service.users c"
        " WHERE c.id = $1::uuid)"
        " ORDER BY u.created_at, u.id LIMIT $2::int");

    omni_users_update_stmt = omni_db_statement("users_update",
        "SELECT outcome, jtis, exps, keys_removed, keys_lowered"
        " FROM auth_service.update_user($1::uuid, $2::uuid, $3,"
        " $4::boolean)");

    omni_users_get_stmt = omni_db_statement("users_get",
        "SELECT " OMNI_USER_COLUMNS " FROM auth_service.users u"
        " WHERE u.id = $1::uuid");

    return omni_users_list_stmt < 0 || omni_users_update_stmt < 0
                   || omni_users_get_stmt < 0
               ? -1
               : 0;
}


/* the gateway requires the role; the worker checks it again */
static int omni_users_admin(omni_req_t *r)
{
    if (omni_req_identity(r)->rank != OMNI_ROLE_ADMIN) {
        omni_respond_error(
            r, 403, "forbidden", "user administration needs the admin role");
        return 0;
    }
    return 1;
}


static void omni_users_item(
    omni_req_t *r, struct evbuffer *b, PGresult *res, int row)
{
    omni_auth_user_json(b, res, row);
}


/* GET /api/v1/users */
void omni_users_list(omni_req_t *r)
{
    const char *values[2];
    char limit[16];
    int n;

    n = omni_api_limit(r);
    if (n < 0) {
        return;
    }

    switch (r->state) {

    case 0:
        if (!omni_users_admin(r)) {
            return;
        }
        if (omni_api_cursor(r, &values[0]) != 0) {
            return;
        }
        snprintf(limit, sizeof(limit), "%d", n + 1);
        values[1] = limit;
        r->state = 1;
        omni_api_query(r, omni_users_list_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_api_list(r, n, 0, omni_users_item);
        return;
    }
}


/* Adds one command per element of a Postgres array of key hashes. */
static void omni_users_keys(
    omni_api_redis_t *b, const char *arr, const char *role)
{
    char key[96], hash[80];
    const char *p = arr, *del[2] = {"DEL", key};
    const char *lower[6] = {
        "EVAL", omni_users_lower_key_lua, "1", key, role, NULL};
    size_t n;

    while (p && *p && *p != '}') {
        p++; /* '{' or ',' */
        n = strcspn(p, ",}");
        if (n == 0 || n >= sizeof(hash)) {
            return;
        }
        memcpy(hash, p, n);
        hash[n] = '\0';
        p += n;
        snprintf(key, sizeof(key), "omni:apikey:%s", hash);
        if (role) {
            omni_api_redis_cmd(b, 5, lower);
        } else {
            omni_api_redis_cmd(b, 2, del);
        }
    }
}


/* Answers the refusals of auth_service.update_user; 0 when outcome is ok.
 * The actor's role is the one in the database at the time of the change,
 * never the one their token or key still carries. */
static int omni_users_refused(omni_req_t *r, const char *outcome)
{
    if (strcmp(outcome, "ok") == 0) {
        return 0;
    }
    if (strcmp(outcome, "not_found") == 0) {
        omni_respond_error(r, 404, "not_found", "no such user");
    } else if (strcmp(outcome, "forbidden") == 0) {
        omni_respond_error(r, 403, "forbidden",
            "user administration needs an active admin; "
            "your account is no longer one");
    } else if (strcmp(outcome, "above") == 0) {
        omni_respond_error(
            r, 403, "insufficient_role", "role: above your own current role");
    } else if (strcmp(outcome, "self_role") == 0) {
        omni_respond_error(r, 422, "invalid_value",
            "role: an admin cannot change their own role");
    } else {
        omni_respond_error(r, 422, "invalid_value",
            "is_active: an admin cannot deactivate their "
            "own account");
    }
    return 1;
}


/* PATCH /api/v1/users/{id} {role?, is_active?} */
void omni_users_update(omni_req_t *r)
{
    const char *id = omni_req_param(r, 0), *role = NULL;
    const char *values[4];
    const omni_json_t *v;
    omni_api_redis_t *b;
    PGresult *res;
    struct evbuffer *out;
    int active = -1;

    switch (r->state) {

    case 0:
        if (!omni_users_admin(r)) {
            return;
        }
        if (omni_req_identity(r)->user_id == NULL) {
            omni_respond_error(r, 403, "forbidden",
                "user administration needs a registered "
                "admin");
            return;
        }
        if (!omni_uuid_valid(id)) {
            omni_respond_error(r, 404, "not_found", "no such user");
            return;
        }
        if (omni_api_field_string(r, "role", 0, &role) != 0) {
            return;
        }
        if (role && omni_role_rank(role) == 0) {
            omni_respond_error(r, 422, "invalid_value",
                "role: expected "
                "admin, developer, user or viewer");
            return;
        }
        v = omni_json_get(r->json, "is_active");
        if (v && v->type != OMNI_JSON_NULL && !omni_json_bool(v, &active)) {
            omni_respond_error(
                r, 400, "invalid_field", "is_active: expected true or false");
            return;
        }
        if (role == NULL && active < 0) {
            omni_respond_error(r, 422, "invalid_value",
                "role: expected role and/or is_active");
            return;
        }
        values[0] = omni_req_identity(r)->user_id;
        values[1] = id;
        values[2] = role;
        values[3] = active < 0 ? NULL : active ? "true" : "false";
        r->state = 1;
        omni_api_query(r, omni_users_update_stmt, 4, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        res = r->db_res;
        if (omni_users_refused(r, PQgetvalue(res, 0, 0))) {
            return;
        }
        b = omni_api_redis_begin(r);
        if (b == NULL) {
            return;
        }
        omni_auth_revoke_arrays(b,
            PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
            PQgetvalue(res, 0, 2));
        if (!PQgetisnull(res, 0, 3)) {
            omni_users_keys(b, PQgetvalue(res, 0, 3), NULL);
        }
        if (!PQgetisnull(res, 0, 4)) {
            omni_api_field_string(r, "role", 0, &role);
            omni_users_keys(b, PQgetvalue(res, 0, 4), role);
        }
        r->state = 2;
        omni_api_redis_end(b, OMNI_AUTH_REDIS_TIMEOUT_MS);
        return;

    case 2:
        if (r->redis_failed) {
            omni_respond_error(r, 503, "redis_unavailable",
                "the change is saved but the gateway may "
                "still accept the user's tokens or keys; "
                "repeat the request");
            return;
        }
        omni_log(OMNI_LOG_INFO, "user updated",
            "\"user_id\":\"%s\",\"by\":\"%s\"", id,
            omni_req_identity(r)->user_id);
        r->state = 3;
        omni_api_query(r, omni_users_get_stmt, 1, &id);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        out = evbuffer_new();
        omni_auth_user_json(out, r->db_res, 0);
        evbuffer_add(out, "\n", 1);
        omni_api_json(r, 200, out);
        evbuffer_free(out);
        return;
    }
}
