/* auth.c: the auth service: its routes, its settings and signing key, the
 * JWKS the gateway can verify with, and what its handlers share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "io/clients.h"
#include "services/auth/auth.h"
#include "services/auth/auth_input.h"
#include "services/auth/password.h"


/* a revoked jti outlives its token by the gateways' clock leeway */
#define OMNI_REVOKE_MARGIN 60

/* A SIGHUP with a new key keeps the one it replaces in the JWKS until the
 * last token it signed has expired (and the gateways' leeway), so tokens
 * issued before the rotation still verify. A restart publishes the current
 * key only: the way to cut off a leaked key at once. */
static struct {
    const omni_config_t *cfg;
    omni_signer_t *signer;
    omni_signer_t *previous; /* NULL, or retired until previous_until */
    time_t previous_until;
    char *jwks; /* the current key, then the previous one */
} omni_auth;


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
    omni_signer_t *s, *previous, *drop[2] = {NULL, NULL};
    time_t now = time(NULL), until;
    char *jwks = NULL;

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

    previous = omni_auth.previous;
    until = omni_auth.previous_until;
    if (omni_auth.signer
        && strcmp(omni_signer_kid(omni_auth.signer), omni_signer_kid(s)) != 0) {
        drop[0] = previous;
        previous = omni_auth.signer;
        until = now + cfg->access_token_ttl + OMNI_REVOKE_MARGIN;
    } else {
        drop[0] = omni_auth.signer;
    }
    if (previous && now >= until) {
        drop[1] = previous;
        previous = NULL;
    }

    jwks = omni_signer_jwks_with(s, previous);
    if (jwks == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }
    if (cfg->jwks_file
        && omni_auth_write_jwks(cfg->jwks_file, jwks, err, errlen) != 0) {
        goto failed;
    }
    if (omni_password_set_iterations((unsigned)cfg->password_iterations) != 0) {
        snprintf(err, errlen, "OMNI_PASSWORD_ITERATIONS out of range");
        goto failed;
    }
    /* the keys dropped may still be read by nobody: workers are separate
     * processes with their own copy */
    omni_signer_free(drop[0]);
    omni_signer_free(drop[1]);
    free(omni_auth.jwks);
    omni_auth.signer = s;
    omni_auth.previous = previous;
    omni_auth.previous_until = until;
    omni_auth.jwks = jwks;
    omni_auth.cfg = cfg;
    return 0;

failed:

    free(jwks);
    omni_signer_free(s);
    return -1;
}


const omni_signer_t *omni_auth_signer(void)
{
    return omni_auth.signer;
}


const omni_config_t *omni_auth_settings(void)
{
    return omni_auth.cfg;
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


/* --- GET /.well-known/jwks.json ------------------------------------------- */

void omni_auth_jwks(omni_req_t *r)
{
    struct evbuffer *b = evbuffer_new();

    /* the file keeps a retired key until the next reload; this drops it
     * as soon as its tokens have expired */
    evbuffer_add_printf(b, "%s\n",
        omni_auth.previous && time(NULL) < omni_auth.previous_until
            ? omni_auth.jwks
            : omni_signer_jwks(omni_auth.signer));
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
    return omni_accounts_init() != 0 || omni_sessions_init() != 0
                   || omni_apikeys_init() != 0 || omni_users_init() != 0
               ? -1
               : 0;
}


static int omni_auth_start(void)
{
    return omni_apikeys_start_sync(omni_clients.base);
}


const omni_service_t omni_auth_service = {.name = "auth",
    OMNI_SERVICE_ROUTES(omni_auth_routes),
    .init = omni_auth_service_init,
    .configure = omni_auth_configure,
    .start = omni_auth_start};
