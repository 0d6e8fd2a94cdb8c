/* auth.c: accounts and sessions: register, login, refresh (rotation with
 * reuse detection), logout, me, and the JWKS the gateway can verify with. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "lib/encode.h"
#include "io/clients.h"
#include "io/log.h"
#include "io/offload.h"
#include "services/auth/auth.h"
#include "services/auth/auth_input.h"
#include "services/auth/password.h"


#define OMNI_REFRESH_PREFIX "omr_"
#define OMNI_REFRESH_LEN (4 + OMNI_B64URL_LEN(32)) /* 47 */
#define OMNI_JTI_BYTES 16
/* a revoked jti outlives its token by the gateways' clock leeway */
#define OMNI_REVOKE_MARGIN 60

static struct {
    const omni_config_t *cfg;
    omni_signer_t *signer;
} omni_auth;

static int omni_login_email_stmt, omni_login_username_stmt,
    omni_login_issue_stmt, omni_register_stmt, omni_refresh_stmt,
    omni_logout_stmt, omni_me_stmt;


/* --- configuration ------------------------------------------------------ */

static int omni_auth_write_jwks(
    const char *path, const char *jwks, char *err, size_t errlen)
{
    char tmp[4096];
    FILE *f;
    int ok;

    if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid())
        >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "OMNI_JWKS_FILE: path too long");
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "OMNI_JWKS_FILE=%s: cannot write: %s", path,
            strerror(errno));
        return -1;
    }
    ok = fprintf(f, "%s\n", jwks) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "OMNI_JWKS_FILE=%s: cannot write: %s", path,
            strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}


int omni_auth_configure(const omni_config_t *cfg, char *err, size_t errlen)
{
    omni_signer_t *s;

    if (cfg->jwt_private_key == NULL) {
        snprintf(err, errlen, "OMNI_JWT_PRIVATE_KEY is required but not set");
        return -1;
    }
    s = omni_signer_load(cfg->jwt_private_key, cfg->jwt_kid, err, errlen);
    if (s == NULL) {
        /* name the setting: "OMNI_JWT_PRIVATE_KEY=/path: why" */
        if (strncmp(err, cfg->jwt_private_key, strlen(cfg->jwt_private_key))
            == 0) {
            char why[512];

            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errlen, "OMNI_JWT_PRIVATE_KEY=%s", why);
        }
        return -1;
    }
    if (cfg->jwks_file
        && omni_auth_write_jwks(
               cfg->jwks_file, omni_signer_jwks(s), err, errlen)
               != 0) {
        omni_signer_free(s);
        return -1;
    }
    if (omni_password_set_iterations((unsigned)cfg->password_iterations) != 0) {
        snprintf(err, errlen, "OMNI_PASSWORD_ITERATIONS out of range");
        omni_signer_free(s);
        return -1;
    }
    /* the old key may still be read by nobody: workers are separate
     * processes with their own copy */
    omni_signer_free(omni_auth.signer);
    omni_auth.signer = s;
    omni_auth.cfg = cfg;
    return 0;
}


const omni_signer_t *omni_auth_signer(void)
{
    return omni_auth.signer;
}


/* --- shared by the auth handlers ---------------------------------------- */

void omni_auth_user_json(struct evbuffer *b, PGresult *res, int row)
{
    evbuffer_add(b, "{\"id\":", 6);
    omni_api_put_text(b, res, row, 0);
    evbuffer_add(b, ",\"email\":", 9);
    omni_api_put_text(b, res, row, 1);
    evbuffer_add(b, ",\"username\":", 12);
    omni_api_put_text(b, res, row, 2);
    evbuffer_add(b, ",\"role\":", 8);
    omni_api_put_text(b, res, row, 3);
    evbuffer_add_printf(b, ",\"is_active\":%s,\"created_at\":",
        PQgetvalue(res, row, 4)[0] == 't' ? "true" : "false");
    omni_api_put_text(b, res, row, 5);
    evbuffer_add(b, ",\"last_login_at\":", 17);
    omni_api_put_text(b, res, row, 6);
    evbuffer_add(b, "}", 1);
}


int64_t omni_auth_revoke_ttl(int64_t exp)
{
    return exp - (int64_t)time(NULL) + OMNI_REVOKE_MARGIN;
}


void omni_auth_revoke_one(omni_api_redis_t *b, const char *jti, int64_t exp)
{
    char key[160], ttl[24];
    const char *argv[5] = {"SET", key, "1", "EX", ttl};
    int64_t left = omni_auth_revoke_ttl(exp);

    if (left <= 0 || strlen(jti) > 128) {
        return;
    }
    snprintf(key, sizeof(key), "omni:revoked:%s", jti);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)left);
    omni_api_redis_cmd(b, 5, argv);
}


int omni_auth_revoke_arrays(
    omni_api_redis_t *b, const char *jtis, const char *exps)
{
    char jti[160], exp[32];
    int n = 0;

    while (jtis && exps
           && (jtis = omni_auth_array_next(jtis, jti, sizeof(jti))) != NULL
           && (exps = omni_auth_array_next(exps, exp, sizeof(exp))) != NULL) {
        omni_auth_revoke_one(b, jti, strtoll(exp, NULL, 10));
        n++;
    }
    return n;
}


/* --- off-loop work: password hashing and token signing -------------------- */

typedef struct {
    omni_req_t *r;
    const char *password; /* hash it, or verify it against stored */
    size_t plen;
    int make_hash;
    const char *stored; /* NULL: unknown account, dummy work */
    const char *claims; /* sign these once verified (or if no
                           password) */
    size_t clen;
    int verified;
    int failed;
    char *token; /* malloc'd by the signer */
    char hash[OMNI_PASSWORD_HASH_MAX];
} omni_auth_job_t;


static void omni_auth_job_work(void *arg)
{
    omni_auth_job_t *j = arg;

    if (j->make_hash) {
        j->failed = omni_password_hash(j->password, j->plen,
                        (unsigned)omni_auth.cfg->password_iterations, j->hash,
                        sizeof(j->hash))
                    != 0;
        return;
    }
    if (j->password == NULL) {
        j->verified = 1;
    } else if (j->stored) {
        j->verified =
            omni_password_verify(j->password, j->plen, j->stored) == 1;
    } else {
        omni_password_dummy_verify(j->password, j->plen);
    }
    if (j->verified && j->claims) {
        j->token = omni_signer_sign(omni_auth.signer, j->claims, j->clen);
        j->failed = j->token == NULL;
    }
}


static void omni_auth_job_done(void *arg)
{
    omni_auth_job_t *j = arg;
    char *t = j->token;

    /* keep the token in the request's arena, free the signer's copy */
    if (t) {
        j->token = omni_arena_strndup(&j->r->arena, t, strlen(t));
        j->failed = j->token == NULL;
        free(t);
    }
    omni_http_resume(j->r);
}


/* Starts j; on a full queue answers 503 and returns -1. */
static int omni_auth_job_submit(omni_auth_job_t *j)
{
    if (omni_offload_submit(omni_auth_job_work, omni_auth_job_done, j) != 0) {
        omni_respond_error(j->r, 503, "overloaded",
            "too many sign-ins in progress; retry shortly");
        return -1;
    }
    return 0;
}


/* --- token pairs ---------------------------------------------------------- */

typedef struct {
    omni_auth_job_t job;
    char user_id[40];
    char username[256]; /* preferred_username */
    char role[16];
    int active;
    char jti[OMNI_B64URL_LEN(OMNI_JTI_BYTES) + 1];
    char refresh[OMNI_REFRESH_LEN + 1];
    char refresh_hash[65];
    char old_hash[65];
    int64_t iat, exp, refresh_exp;
    const char *outcome;
} omni_auth_ctx_t;


static omni_auth_ctx_t *omni_auth_ctx(omni_req_t *r)
{
    if (r->data == NULL) {
        r->data = omni_arena_alloc(&r->arena, sizeof(omni_auth_ctx_t));
        if (r->data) {
            memset(r->data, 0, sizeof(omni_auth_ctx_t));
            ((omni_auth_ctx_t *)r->data)->job.r = r;
        }
    }
    return r->data;
}


/* Fresh jti, refresh token and lifetimes for a new pair. */
static int omni_auth_new_pair(omni_auth_ctx_t *c)
{
    unsigned char raw[OMNI_JTI_BYTES];

    c->iat = (int64_t)time(NULL);
    c->exp = c->iat + omni_auth.cfg->access_token_ttl;
    c->refresh_exp = c->iat + omni_auth.cfg->refresh_token_ttl;
    if (omni_random_token("", sizeof(raw), c->jti, sizeof(c->jti)) != 0
        || omni_random_token(
               OMNI_REFRESH_PREFIX, 32, c->refresh, sizeof(c->refresh))
               != 0
        || omni_sha256_hex(c->refresh, strlen(c->refresh), c->refresh_hash)
               != 0) {
        return -1;
    }
    return 0;
}


/* The access token's claims (SPEC 6) as JSON in the arena. */
static int omni_auth_claims(omni_req_t *r, omni_auth_ctx_t *c)
{
    const omni_config_t *cfg = omni_auth.cfg;
    struct evbuffer *b = evbuffer_new();
    size_t n;
    int rc = -1;

    if (b == NULL) {
        return -1;
    }
    evbuffer_add(b, "{\"iss\":", 7);
    omni_json_put_string(b, cfg->jwt_issuer, strlen(cfg->jwt_issuer));
    evbuffer_add(b, ",\"aud\":", 7);
    omni_json_put_string(b, cfg->jwt_audience, strlen(cfg->jwt_audience));
    evbuffer_add_printf(
        b, ",\"sub\":\"%s\",\"preferred_username\":", c->user_id);
    omni_json_put_string(b, c->username, strlen(c->username));
    evbuffer_add_printf(b,
        ",\"role\":\"%s\",\"jti\":\"%s\",\"iat\":%lld,"
        "\"exp\":%lld}",
        c->role, c->jti, (long long)c->iat, (long long)c->exp);
    n = evbuffer_get_length(b);
    c->job.claims =
        omni_arena_strndup(&r->arena, (char *)evbuffer_pullup(b, -1), n);
    c->job.clen = n;
    if (c->job.claims) {
        rc = 0;
    }
    evbuffer_free(b);
    return rc;
}


static void omni_auth_respond_pair(omni_req_t *r, omni_auth_ctx_t *c)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b,
        "{\"access_token\":\"%s\",\"refresh_token\":\"%s\","
        "\"token_type\":\"Bearer\",\"expires_in\":%d}\n",
        c->job.token, c->refresh, omni_auth.cfg->access_token_ttl);
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


/* Copies the identity columns (id, email, username, role) of a row. */
static void omni_auth_ctx_user(omni_auth_ctx_t *c, PGresult *res, int col)
{
    const char *username = PQgetisnull(res, 0, col + 2)
                               ? PQgetvalue(res, 0, col + 1)
                               : PQgetvalue(res, 0, col + 2);

    snprintf(c->user_id, sizeof(c->user_id), "%s", PQgetvalue(res, 0, col));
    snprintf(c->username, sizeof(c->username), "%s", username);
    snprintf(c->role, sizeof(c->role), "%s", PQgetvalue(res, 0, col + 3));
}


/* --- statements ----------------------------------------------------------- */

int omni_auth_init(void)
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

    omni_refresh_stmt = omni_db_statement("auth_refresh",
        "SELECT outcome, user_id, email, username, role, jtis, exps"
        " FROM auth_service.rotate_refresh($1, $2, $3, $4::bigint,"
        " $5::bigint)");

    omni_logout_stmt = omni_db_statement("auth_logout",
        "SELECT jtis, exps FROM auth_service.logout($1, $2::uuid,"
        " $3::bigint)");

    omni_me_stmt = omni_db_statement("auth_me",
        "SELECT " OMNI_USER_COLUMNS " FROM auth_service.users u"
        " WHERE u.id = $1::uuid");

    return omni_login_email_stmt < 0 || omni_login_username_stmt < 0
                   || omni_login_issue_stmt < 0 || omni_register_stmt < 0
                   || omni_refresh_stmt < 0 || omni_logout_stmt < 0
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


/* --- POST /auth/login -------------------------------------------------------
 */

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


/* --- POST /auth/refresh -----------------------------------------------------
 */

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


/* --- POST /auth/logout
 * -------------------------------------------------------- */

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
        e = (int64_t)time(NULL) + omni_auth.cfg->access_token_ttl;
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


/* --- GET /auth/me
 * ------------------------------------------------------------- */

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


/* --- GET /.well-known/jwks.json
 * ------------------------------------------------ */

void omni_auth_jwks(omni_req_t *r)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b, "%s\n", omni_signer_jwks(omni_auth.signer));
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


/* --- the service ------------------------------------------------------- */

static const omni_route_t omni_auth_routes[] = {
    {"POST", "/auth/register", omni_auth_register, OMNI_ROUTE_JSON_OBJECT},
    {"POST", "/auth/login", omni_auth_login, OMNI_ROUTE_JSON_OBJECT},
    {"POST", "/auth/refresh", omni_auth_refresh, OMNI_ROUTE_JSON_OBJECT},
    {"POST", "/auth/logout", omni_auth_logout, OMNI_ROUTE_IDENTITY},
    {"GET", "/auth/me", omni_auth_me, OMNI_ROUTE_IDENTITY},
    {"GET", "/.well-known/jwks.json", omni_auth_jwks, 0},
    {"POST", "/api/v1/api-keys", omni_apikeys_create,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT},
    {"GET", "/api/v1/api-keys", omni_apikeys_list, OMNI_ROUTE_IDENTITY},
    {"DELETE", "/api/v1/api-keys/{id}", omni_apikeys_delete,
        OMNI_ROUTE_IDENTITY},
    {"GET", "/api/v1/users", omni_users_list, OMNI_ROUTE_IDENTITY},
    {"PATCH", "/api/v1/users/{id}", omni_users_update,
        OMNI_ROUTE_IDENTITY | OMNI_ROUTE_JSON_OBJECT},
};


static int omni_auth_service_init(void)
{
    return omni_auth_init() != 0 || omni_apikeys_init() != 0
                   || omni_users_init() != 0
               ? -1
               : 0;
}


static int omni_auth_start(void)
{
    return omni_apikeys_start_sync(omni_clients.base);
}


const omni_service_t omni_auth_service = {
    "auth",
    omni_auth_routes,
    sizeof(omni_auth_routes) / sizeof(omni_auth_routes[0]),
    omni_auth_service_init,
    omni_auth_configure,
    omni_auth_start,
    NULL,
};
