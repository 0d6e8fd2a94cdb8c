/* identity.c: the gateway's identity headers, read in one place. */
#include <string.h>

#include "lib/uuid.h"
#include "http/http.h"
#include "http/identity.h"


const omni_identity_t *omni_req_identity(omni_req_t *r)
{
    omni_identity_t *id = &r->identity;

    if (r->identity_read) {
        return id;
    }
    r->identity_read = 1;
    id->id = omni_req_header(r, "X-User-Id");
    id->user_id = omni_uuid_valid(id->id) ? id->id : NULL;
    id->username = omni_req_header(r, "X-User-Username");
    id->role = omni_req_header(r, "X-User-Role");
    id->rank = omni_role_rank(id->role);
    id->jti = omni_req_header(r, "X-Token-Id");
    id->exp = omni_req_header(r, "X-Token-Expires");
    return id;
}


int omni_role_rank(const char *role)
{
    static const char *roles[] = {"viewer", "user", "developer", "admin"};
    int i;

    for (i = 0; role && i < 4; i++) {
        if (strcmp(role, roles[i]) == 0) {
            return i + 1;
        }
    }
    return 0;
}
