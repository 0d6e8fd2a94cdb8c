/* auth.h: the auth service (its table, for core/services.c) and what its
 * parts share: auth.c (settings, JWKS), accounts.c (register, login, me),
 * sessions.c (refresh, logout), apikeys.c, users.c. */
#ifndef OMNI_AUTH_H
#define OMNI_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "io/config.h"
#include "http/api.h"
#include "http/service.h"
#include "services/auth/signer.h"

extern const omni_service_t omni_auth_service;

/* Loads the signing key and the auth settings of cfg and, when
 * OMNI_JWKS_FILE is set, writes the JWKS there (atomically). Called by the
 * master at start-up and on reload; on failure the previous settings stay
 * and err names the bad setting. */
int omni_auth_configure(const omni_config_t *cfg, char *err, size_t errlen);

/* Register the statements of each part; before the pools are created. 0,
 * or -1 when the statement table is full. */
int omni_accounts_init(void);
int omni_sessions_init(void);
int omni_apikeys_init(void);
int omni_users_init(void);

/* Starts this process's periodic re-sync of the API-key mirror in Redis.
 * 0, or -1 when the timer cannot be armed. */
struct event_base;
int omni_apikeys_start_sync(struct event_base *base);

/* handlers (the routes in auth.c) */
void omni_auth_register(omni_req_t *r);
void omni_auth_login(omni_req_t *r);
void omni_auth_refresh(omni_req_t *r);
void omni_auth_logout(omni_req_t *r);
void omni_auth_me(omni_req_t *r);
void omni_auth_jwks(omni_req_t *r);
void omni_apikeys_create(omni_req_t *r);
void omni_apikeys_list(omni_req_t *r);
void omni_apikeys_delete(omni_req_t *r);
void omni_users_list(omni_req_t *r);
void omni_users_update(omni_req_t *r);

/* The signing key in use (loaded by the master, inherited by workers). */
const omni_signer_t *omni_auth_signer(void);

/* The settings the last successful omni_auth_configure took. */
const omni_config_t *omni_auth_settings(void);

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
