/* sessions.c: a session's life after login: refresh (rotation with
 * reuse detection) and logout. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "io/log.h"
#include "services/auth/auth.h"
#include "services/auth/auth_input.h"
#include "services/auth/tokens.h"


static int omni_refresh_stmt, omni_logout_stmt;


int omni_sessions_init(void)
{
    omni_refresh_stmt = omni_db_statement("auth_refresh",
        "SELECT outcome, user_id, email, username, role, jtis, exps"
        " FROM auth_service.rotate_refresh($1, $2, $3, $4::bigint,"
        " $5::bigint)");

    omni_logout_stmt = omni_db_statement("auth_logout",
        "SELECT jtis, exps FROM auth_service.logout($1, $2::uuid,"
        " $3::bigint)");
    return omni_refresh_stmt < 0 || omni_logout_stmt < 0 ? -1 : 0;
}


/* --- POST /auth/refresh --------------------------------------------------- */

void omni_auth_refresh(omni_req_t *r)
{
    omni_auth_ctx_t *c = omni_auth_ctx(r);
    const char *token, *values[5];
    char exp[24], rexp[24];
    omni_api_redis_t *b;
    PGresult *res;

    if (c == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }

    switch (r->state) {

    case 0:
        if (omni_api_field_string(r, "refresh_token", 1, &token) != 0) {
            return;
        }
        if (!omni_auth_token_format(token, OMNI_REFRESH_PREFIX)) {
            omni_respond_error(
                r, 401, "invalid_token", "refresh_token: not a refresh token");
            return;
        }
        if (omni_sha256_hex(token, strlen(token), c->old_hash) != 0
            || omni_auth_new_pair(c) != 0) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        snprintf(exp, sizeof(exp), "%lld", (long long)c->exp);
        snprintf(rexp, sizeof(rexp), "%lld", (long long)c->refresh_exp);
        values[0] = c->old_hash;
        values[1] = c->refresh_hash;
        values[2] = c->jti;
        values[3] = exp;
        values[4] = rexp;
        r->state = 1;
        omni_api_query(r, omni_refresh_stmt, 5, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        res = r->db_res;
        c->outcome = omni_arena_strndup(
            &r->arena, PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
        if (c->outcome == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        if (strcmp(c->outcome, "ok") == 0) {
            omni_auth_ctx_user(c, res, 1);
            if (omni_auth_claims(r, c) != 0) {
                omni_respond_error(r, 503, "overloaded", "out of memory");
                return;
            }
            r->state = 2;
            omni_auth_job_submit(&c->job);
            return;
        }
        if (strcmp(c->outcome, "invalid") == 0) {
            omni_respond_error(
                r, 401, "invalid_token", "refresh_token: unknown");
            return;
        }
        if (strcmp(c->outcome, "expired") == 0) {
            omni_respond_error(r, 401, "token_expired",
                "refresh_token: expired; sign in again");
            return;
        }
        /* reused or revoked: the family's access tokens go too */
        b = omni_api_redis_begin(r);
        if (b == NULL) {
            return;
        }
        omni_auth_revoke_arrays(
            b, PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6));
        r->state = 3;
        omni_api_redis_end(b, OMNI_AUTH_REDIS_TIMEOUT_MS);
        return;

    case 2:
        if (c->job.failed || c->job.token == NULL) {
            omni_respond_error(r, 500, "internal_error",
                "cannot sign the token (request id %s)", r->request_id);
            return;
        }
        omni_auth_respond_pair(r, c);
        return;

    default:
        if (r->redis_failed) {
            omni_log(OMNI_LOG_WARN,
                "refresh family revoked but Redis did not "
                "take every access token",
                "\"request_id\":\"%s\",\"failed\":%d", r->request_id,
                r->redis_failed);
        }
        if (strcmp(c->outcome, "reused") == 0) {
            omni_log(OMNI_LOG_WARN, "refresh token reused: family revoked",
                "\"request_id\":\"%s\"", r->request_id);
            omni_respond_error(r, 401, "token_reused",
                "refresh_token: already used; every token "
                "of this session is revoked");
            return;
        }
        omni_respond_error(
            r, 401, "token_revoked", "refresh_token: revoked; sign in again");
        return;
    }
}


/* --- POST /auth/logout ---------------------------------------------------- */

/* The token's jti and exp come from the gateway (X-Token-Id,
 * X-Token-Expires). An exp that is not a whole number of seconds is
 * refused rather than guessed: a revocation shorter than the token's life
 * would answer 204 and let the token work again later. */
void omni_auth_logout(omni_req_t *r)
{
    const char *jti = omni_req_identity(r)->jti;
    const char *exp = omni_req_identity(r)->exp;
    const char *values[3];
    char until[24];
    omni_api_redis_t *b;
    int64_t e = 0;

    if (jti == NULL || *jti == '\0' || strlen(jti) > 128) {
        omni_respond_error(r, 400, "invalid_request",
            "logout needs a bearer token with a jti");
        return;
    }
    if (exp && *exp && omni_auth_numeric_date(exp, &e) != 0) {
        omni_respond_error(r, 400, "invalid_request",
            "exp: the token's expiry is not a whole number "
            "of seconds since 1970; it cannot be revoked");
        return;
    }
    if (e <= 0) {
        /* no exp: revoke for as long as a token of ours could live */
        e = (int64_t)time(NULL) + omni_auth_settings()->access_token_ttl;
    }

    switch (r->state) {

    case 0:
        snprintf(until, sizeof(until), "%lld", (long long)e);
        values[0] = jti;
        values[1] = omni_req_identity(r)->user_id;
        values[2] = until;
        r->state = 1;
        omni_api_query(r, omni_logout_stmt, 3, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        b = omni_api_redis_begin(r);
        if (b == NULL) {
            return;
        }
        omni_auth_revoke_one(b, jti, e);
        omni_auth_revoke_arrays(
            b, PQgetvalue(r->db_res, 0, 0), PQgetvalue(r->db_res, 0, 1));
        r->state = 2;
        omni_api_redis_end(b, OMNI_AUTH_REDIS_TIMEOUT_MS);
        return;

    default:
        if (r->redis_failed) {
            omni_respond_error(r, 503, "redis_unavailable",
                "the token could not be revoked; retry");
            return;
        }
        omni_log(OMNI_LOG_INFO, "logout", "\"jti\":\"%s\"", jti);
        omni_respond(r, 204, "application/json", NULL);
        return;
    }
}
