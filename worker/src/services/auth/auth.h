/* auth.h: what the auth handlers (auth.c, apikeys.c, users.c) share. */
#ifndef OMNI_AUTH_H
#define OMNI_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "http/api.h"
#include "io/config.h"
#include "services/auth/signer.h"

/* Loads the signing key and the auth settings of cfg and, when
 * OMNI_JWKS_FILE is set, writes the JWKS there (atomically). Called by the
 * master at start-up and on reload; on failure the previous settings stay
 * and err names the bad setting. */
int omni_auth_configure(const omni_config_t *cfg, char *err, size_t errlen);

/* Registers the auth statements; before the pools are created. */
int omni_auth_init(void);

/* The signing key in use (loaded by the master, inherited by workers). */
const omni_signer_t *omni_auth_signer(void);

/* 1 when s is a UUID in its canonical text form (any hex case). */
int omni_auth_uuid(const char *s);

/* Rank of a role: viewer 1, user 2, developer 3, admin 4, else 0. */
int omni_auth_role_rank(const char *role);

/* The caller's identity from the gateway's headers: the user id when it is
 * a UUID (a registered user), else NULL. */
const char *omni_auth_caller(omni_req_t *r);

/* The `cursor` argument of a list keyed by UUID: 0 and *out set (NULL
 * when absent); otherwise it has answered 400 invalid_parameter and
 * returns -1. */
int omni_auth_cursor(omni_req_t *r, const char **out);

/* A body field: 0 and *out set (NULL when absent and optional); otherwise
 * it has answered 400 missing_field / invalid_field naming the field and
 * returns -1. */
int omni_auth_field_string(
    omni_req_t *r, const char *name, int required, const char **out);

/* The user columns every user answer renders, in this order, and how. */
#define OMNI_USER_COLUMNS                                                      \
    "u.id, u.email, u.username, u.role, u.is_active,"                          \
    " to_char(u.created_at AT TIME ZONE 'UTC',"                                \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"                                   \
    " to_char(u.last_login_at AT TIME ZONE 'UTC',"                             \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define OMNI_USER_NCOLUMNS 7

void omni_auth_user_json(struct evbuffer *b, struct pg_result *res, int row);

/* Adds SET omni:revoked:<jti> 1 EX <exp - now + margin> to batch b for
 * each access token of the Postgres text arrays jtis / exps (as returned
 * by auth_service.revoke_family), skipping expired ones. Returns the
 * number of commands added. */
int omni_auth_revoke_arrays(
    omni_api_redis_t *b, const char *jtis, const char *exps);

/* Adds the revocation of one access token (jti, exp unix seconds). */
void omni_auth_revoke_one(omni_api_redis_t *b, const char *jti, int64_t exp);

/* Seconds omni:revoked:<jti> is kept for a token expiring at exp: its
 * remaining lifetime plus the gateways' clock leeway; <= 0 when there is
 * nothing left to revoke. */
int64_t omni_auth_revoke_ttl(int64_t exp);

/* How long Redis commands of an auth request may take. */
#define OMNI_AUTH_REDIS_TIMEOUT_MS 1000

#endif
