/* identity.h: who the gateway says is asking. The one reader of the
 * identity headers (X-User-Id, X-User-Username, X-User-Role, X-Token-Id,
 * X-Token-Expires); a request the gateway did not vouch for has lost them
 * before any handler runs (http.c), so every field is then NULL. */
#ifndef OMNI_IDENTITY_H
#define OMNI_IDENTITY_H

#include "lib/router.h"

typedef struct {
    const char *id;       /* X-User-Id as the gateway sent it, or NULL */
    const char *user_id;  /* id when it is a UUID (a registered user), or
                             NULL */
    const char *username; /* X-User-Username, or NULL */
    const char *role;     /* X-User-Role, or NULL */
    int rank;             /* omni_role_rank(role) */
    const char *jti;      /* X-Token-Id: the token's id, or NULL */
    const char *exp;      /* X-Token-Expires as sent, or NULL: whoever needs
                             it as a number checks it */
} omni_identity_t;

/* The caller's identity, read once per request and kept with it. Never
 * NULL; valid until the request is answered. */
const omni_identity_t *omni_req_identity(omni_req_t *r);

/* Rank of a role: viewer 1, user 2, developer 3, admin 4, else 0 (NULL
 * included). Pure. */
#define OMNI_ROLE_ADMIN 4
int omni_role_rank(const char *role);

#endif
