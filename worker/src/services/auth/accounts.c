/* accounts.c: an account's own doors: register, login (a fresh token
 * pair) and me. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "io/log.h"
#include "services/auth/auth.h"
#include "services/auth/auth_input.h"
#include "services/auth/tokens.h"


static int omni_login_email_stmt, omni_login_username_stmt,
    omni_login_issue_stmt, omni_register_stmt, omni_me_stmt;


int omni_accounts_init(void)
{
    omni_login_email_stmt = omni_db_statement("auth_login_email",
        "SELECT u.id, u.email, u.username, u.role, u.is_active,"
        " u.password_hash FROM auth_service.users u"
        " WHERE lower(u.email) = lower($1)");

    omni_login_username_stmt = omni_db_statement("auth_login_username",
        "SELECT u.id, u.email, u.username, u.role, u.is_active,"
        " u.password_hash FROM auth_service.users u"
        " WHERE lower(u.username) = lower($1)");

    /* issued only if the user is still active with the role the token
     * carries: a role change or deactivation since the password was
     * checked is seen here, or waits for this row and then revokes it */
    omni_login_issue_stmt = omni_db_statement("auth_login_issue",
        "WITH u AS (SELECT id FROM auth_service.users WHERE id = $1::uuid"
        " AND is_active AND role = $6 FOR SHARE),"
        " t AS (INSERT INTO auth_service.refresh_tokens"
        " (family_id, user_id, token_hash, access_jti, access_expires_at,"
        " expires_at) SELECT gen_random_uuid(), u.id, $2, $3,"
        " to_timestamp($4::bigint), to_timestamp($5::bigint) FROM u)"
        " UPDATE auth_service.users SET last_login_at = now()"
        " WHERE id = (SELECT id FROM u) RETURNING id");

    omni_register_stmt = omni_db_statement("auth_register",
        "INSERT INTO auth_service.users AS u (email, username, password_hash)"
        " VALUES ($1, $2, $3) RETURNING " OMNI_USER_COLUMNS);

    omni_me_stmt = omni_db_statement("auth_me",
        "SELECT " OMNI_USER_COLUMNS " FROM auth_service.users u"
        " WHERE u.id = $1::uuid");
    return omni_login_email_stmt < 0 || omni_login_username_stmt < 0
                   || omni_login_issue_stmt < 0 || omni_register_stmt < 0
                   || omni_me_stmt < 0
               ? -1
               : 0;
}


/* --- POST /auth/register -------------------------------------------------- */

static int omni_auth_unique_violation(omni_req_t *r)
{
    const char *state, *constraint;

    if (r->db_status != OMNI_DB_ERROR) {
        return 0;
    }
    state = PQresultErrorField(r->db_res, PG_DIAG_SQLSTATE);
    if (state == NULL || strcmp(state, "23505") != 0) {
        return 0;
    }
    constraint = PQresultErrorField(r->db_res, PG_DIAG_CONSTRAINT_NAME);
    if (constraint && strcmp(constraint, "users_username_key") == 0) {
        omni_respond_error(r, 409, "conflict", "username: already taken");
    } else {
        omni_respond_error(r, 409, "conflict", "email: already registered");
    }
    return 1;
}


void omni_auth_register(omni_req_t *r)
{
    omni_auth_ctx_t *c = omni_auth_ctx(r);
    const char *email, *username, *password, *why, *values[3];
    struct evbuffer *b;

    if (c == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }

    switch (r->state) {

    case 0:
        if (omni_api_field_string(r, "email", 1, &email) != 0
            || omni_api_field_string(r, "password", 1, &password) != 0
            || omni_api_field_string(r, "username", 0, &username) != 0) {
            return;
        }
        if ((why = omni_auth_email_problem(email)) != NULL) {
            omni_respond_error(r, 422, "invalid_value", "email: %s", why);
            return;
        }
        if (username && (why = omni_auth_username_problem(username)) != NULL) {
            omni_respond_error(r, 422, "invalid_value", "username: %s", why);
            return;
        }
        c->job.plen = omni_json_get(r->json, "password")->u.str.len;
        if (omni_password_strength(password, c->job.plen, &why) != 0) {
            omni_respond_error(r, 422, "invalid_value", "password: %s", why);
            return;
        }
        c->job.password = password;
        c->job.make_hash = 1;
        r->state = 1;
        omni_auth_job_submit(&c->job);
        return;

    case 1:
        if (c->job.failed) {
            omni_respond_error(r, 500, "internal_error",
                "cannot hash the password (request id %s)", r->request_id);
            return;
        }
        omni_api_field_string(r, "email", 1, &values[0]);
        omni_api_field_string(r, "username", 0, &values[1]);
        values[2] = c->job.hash;
        r->state = 2;
        omni_api_query(r, omni_register_stmt, 3, values);
        return;

    default:
        if (omni_auth_unique_violation(r)) {
            return;
        }
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_log(OMNI_LOG_INFO, "user registered", "\"user_id\":\"%s\"",
            PQgetvalue(r->db_res, 0, 0));
        b = evbuffer_new();
        omni_auth_user_json(b, r->db_res, 0);
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 201, b);
        evbuffer_free(b);
        return;
    }
}


/* --- POST /auth/login ----------------------------------------------------- */

void omni_auth_login(omni_req_t *r)
{
    omni_auth_ctx_t *c = omni_auth_ctx(r);
    const char *email, *username, *password, *values[6];
    char exp[24], rexp[24];

    if (c == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }

    switch (r->state) {

    case 0:
        if (omni_api_field_string(r, "email", 0, &email) != 0
            || omni_api_field_string(r, "username", 0, &username) != 0) {
            return;
        }
        if (email == NULL && username == NULL) {
            omni_respond_error(
                r, 400, "missing_field", "email: required (or username)");
            return;
        }
        if (omni_api_field_string(r, "password", 1, &password) != 0) {
            return;
        }
        r->state = 1;
        omni_api_query(r,
            email ? omni_login_email_stmt : omni_login_username_stmt, 1,
            email ? &email : &username);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_api_field_string(r, "password", 1, &c->job.password);
        c->job.plen = omni_json_get(r->json, "password")->u.str.len;
        if (PQntuples(r->db_res) == 1) {
            omni_auth_ctx_user(c, r->db_res, 0);
            c->active = PQgetvalue(r->db_res, 0, 4)[0] == 't';
            c->job.stored = omni_arena_strndup(&r->arena,
                PQgetvalue(r->db_res, 0, 5), PQgetlength(r->db_res, 0, 5));
            if (c->job.stored == NULL) {
                omni_respond_error(r, 503, "overloaded", "out of memory");
                return;
            }
            if (c->active
                && (omni_auth_new_pair(c) != 0
                    || omni_auth_claims(r, c) != 0)) {
                omni_respond_error(r, 500, "internal_error",
                    "cannot issue a token (request id %s)", r->request_id);
                return;
            }
        }
        r->state = 2;
        omni_auth_job_submit(&c->job);
        return;

    case 2:
        if (!c->job.verified) {
            omni_respond_error(r, 401, "invalid_credentials",
                "wrong email/username or password");
            return;
        }
        if (!c->active) {
            omni_respond_error(
                r, 403, "account_disabled", "this account is deactivated");
            return;
        }
        if (c->job.failed) {
            omni_respond_error(r, 500, "internal_error",
                "cannot sign the token (request id %s)", r->request_id);
            return;
        }
        snprintf(exp, sizeof(exp), "%lld", (long long)c->exp);
        snprintf(rexp, sizeof(rexp), "%lld", (long long)c->refresh_exp);
        values[0] = c->user_id;
        values[1] = c->refresh_hash;
        values[2] = c->jti;
        values[3] = exp;
        values[4] = rexp;
        values[5] = c->role;
        r->state = 3;
        omni_api_query(r, omni_login_issue_stmt, 6, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(r, 409, "conflict",
                "the account's role or status changed while "
                "signing in; sign in again");
            return;
        }
        omni_log(OMNI_LOG_INFO, "login", "\"user_id\":\"%s\",\"jti\":\"%s\"",
            c->user_id, c->jti);
        omni_auth_respond_pair(r, c);
        return;
    }
}


/* --- GET /auth/me --------------------------------------------------------- */

void omni_auth_me(omni_req_t *r)
{
    const char *user = omni_req_identity(r)->user_id;
    struct evbuffer *b;

    switch (r->state) {

    case 0:
        if (user == NULL) {
            omni_respond_error(
                r, 404, "not_found", "the caller is not a registered user");
            return;
        }
        r->state = 1;
        omni_api_query(r, omni_me_stmt, 1, &user);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(
                r, 404, "not_found", "the caller is not a registered user");
            return;
        }
        b = evbuffer_new();
        omni_auth_user_json(b, r->db_res, 0);
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}
