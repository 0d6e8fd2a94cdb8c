/* tokens.h: the auth service's token machinery (tokens.c), shared by
 * accounts.c and sessions.c. Not for other services. */
#ifndef OMNI_AUTH_TOKENS_H
#define OMNI_AUTH_TOKENS_H

#include <stdint.h>

#include "lib/encode.h"
#include "http/api.h"
#include "services/auth/password.h"

#define OMNI_REFRESH_PREFIX "omr_"
#define OMNI_REFRESH_LEN (4 + OMNI_B64URL_LEN(32)) /* 47 */
#define OMNI_JTI_BYTES 16

/* Work for the offload threads: hash a password, or verify one and then
 * sign claims. */
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

/* Runs j off the loop and re-enters j->r's handler when done. 0; or, on a
 * full queue, -1 after answering 503. */
int omni_auth_job_submit(omni_auth_job_t *j);

/* A sign-in in progress: the job and the pair being minted. */
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

/* The request's context (in its arena, zeroed on first use), or NULL when
 * out of memory. */
omni_auth_ctx_t *omni_auth_ctx(omni_req_t *r);

/* Fresh jti, refresh token and lifetimes for a new pair. 0, or -1 when
 * the random generator or the digest fails. */
int omni_auth_new_pair(omni_auth_ctx_t *c);

/* Puts the access token's claims (SPEC 6) as JSON in the arena, for the
 * job to sign. 0, or -1 when out of memory. */
int omni_auth_claims(omni_req_t *r, omni_auth_ctx_t *c);

/* Answers 200 with the pair. */
void omni_auth_respond_pair(omni_req_t *r, omni_auth_ctx_t *c);

/* Copies the identity columns (id, email, username, role) of row 0 from
 * column col on. */
void omni_auth_ctx_user(omni_auth_ctx_t *c, struct pg_result *res, int col);

#endif
