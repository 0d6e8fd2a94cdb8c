/* tokens.c: what register, login and refresh share: password hashing and
 * token signing off the loop, and minting an access/refresh token pair. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "io/offload.h"
#include "services/auth/auth.h"
#include "services/auth/tokens.h"


/* --- off-loop work: password hashing and token signing -------------------- */

static void omni_auth_job_work(void *arg)
{
    omni_auth_job_t *j = arg;

    if (j->make_hash) {
        j->failed = omni_password_hash(j->password, j->plen,
                        (unsigned)omni_auth_settings()->password_iterations,
                        j->hash, sizeof(j->hash))
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
        j->token = omni_signer_sign(omni_auth_signer(), j->claims, j->clen);
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
int omni_auth_job_submit(omni_auth_job_t *j)
{
    if (omni_offload_submit(omni_auth_job_work, omni_auth_job_done, j) != 0) {
        omni_respond_error(j->r, 503, "overloaded",
            "too many sign-ins in progress; retry shortly");
        return -1;
    }
    return 0;
}


/* --- token pairs ---------------------------------------------------------- */


omni_auth_ctx_t *omni_auth_ctx(omni_req_t *r)
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
int omni_auth_new_pair(omni_auth_ctx_t *c)
{
    unsigned char raw[OMNI_JTI_BYTES];

    c->iat = (int64_t)time(NULL);
    c->exp = c->iat + omni_auth_settings()->access_token_ttl;
    c->refresh_exp = c->iat + omni_auth_settings()->refresh_token_ttl;
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
int omni_auth_claims(omni_req_t *r, omni_auth_ctx_t *c)
{
    const omni_config_t *cfg = omni_auth_settings();
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


void omni_auth_respond_pair(omni_req_t *r, omni_auth_ctx_t *c)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b,
        "{\"access_token\":\"%s\",\"refresh_token\":\"%s\","
        "\"token_type\":\"Bearer\",\"expires_in\":%d}\n",
        c->job.token, c->refresh, omni_auth_settings()->access_token_ttl);
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


/* Copies the identity columns (id, email, username, role) of a row. */
void omni_auth_ctx_user(omni_auth_ctx_t *c, PGresult *res, int col)
{
    const char *username = PQgetisnull(res, 0, col + 2)
                               ? PQgetvalue(res, 0, col + 1)
                               : PQgetvalue(res, 0, col + 2);

    snprintf(c->user_id, sizeof(c->user_id), "%s", PQgetvalue(res, 0, col));
    snprintf(c->username, sizeof(c->username), "%s", username);
    snprintf(c->role, sizeof(c->role), "%s", PQgetvalue(res, 0, col + 3));
}
