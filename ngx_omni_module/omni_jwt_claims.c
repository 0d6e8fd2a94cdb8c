/*
 * omni_jwt_claims.c: the registered claims checked (exp, nbf, iat, iss, aud,
 * sub) and any claim read by dotted path as header-safe text.
 */


#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


static int omni_jwt_append(char *buf, size_t size, size_t *pos,
    const char *s, size_t n);
static int omni_jwt_append_scalar(const omni_jwt_t *jwt, char *buf,
    size_t size, size_t *pos, const omni_json_node_t *v);


omni_jwt_status_t
omni_jwt_check_claims(const omni_jwt_t *jwt, time_t now, time_t leeway,
    const char *const *issuers, size_t nissuers,
    const char *const *audiences, size_t naudiences, const char **why)
{
    int                      found;
    size_t                   i, j;
    double                   t, lw;
    const char              *w;
    omni_jwt_status_t        rc;
    const omni_json_node_t  *v, *e;

    if (jwt->payload == NULL) {
        rc = OMNI_JWT_MALFORMED;
        w = "token not parsed";
        goto done;
    }

    t = (double) now;
    lw = (leeway > 0) ? (double) leeway : 0.0;

    /* RFC 7519 4.1.4: valid only before exp, so expired at exp itself */

    if (jwt->has_exp && t >= jwt->exp + lw) {
        rc = OMNI_JWT_EXPIRED;
        w = "token expired";
        goto done;
    }

    if (jwt->has_nbf && t + lw < jwt->nbf) {
        rc = OMNI_JWT_NOT_YET_VALID;
        w = "token not yet valid (nbf)";
        goto done;
    }

    if (jwt->has_iat && t + lw < jwt->iat) {
        rc = OMNI_JWT_NOT_YET_VALID;
        w = "token issued in the future (iat)";
        goto done;
    }

    if (nissuers > 0) {
        v = omni_jwt_node_member(jwt, jwt->payload, "iss", 3);

        if (v == NULL || v->type != OMNI_JSON_STRING) {
            rc = OMNI_JWT_WRONG_ISSUER;
            w = "iss claim missing";
            goto done;
        }

        for (i = 0; i < nissuers; i++) {
            if (issuers[i] != NULL
                && strcmp(issuers[i], jwt->text + v->str) == 0)
            {
                break;
            }
        }

        if (i == nissuers) {
            rc = OMNI_JWT_WRONG_ISSUER;
            w = "issuer not accepted";
            goto done;
        }
    }

    if (naudiences > 0) {
        v = omni_jwt_node_member(jwt, jwt->payload, "aud", 3);
        found = 0;

        if (v != NULL && v->type == OMNI_JSON_STRING) {
            for (i = 0; i < naudiences && !found; i++) {
                found = (audiences[i] != NULL
                         && strcmp(audiences[i], jwt->text + v->str) == 0);
            }

        } else if (v != NULL && v->type == OMNI_JSON_ARRAY) {
            for (e = v + 1, j = 0; j < v->count && !found;
                 e = &jwt->nodes[e->end], j++)
            {
                if (e->type != OMNI_JSON_STRING) {
                    continue;
                }

                for (i = 0; i < naudiences && !found; i++) {
                    found = (audiences[i] != NULL
                             && strcmp(audiences[i], jwt->text + e->str)
                                == 0);
                }
            }

        } else {
            rc = OMNI_JWT_WRONG_AUDIENCE;
            w = "aud claim missing";
            goto done;
        }

        if (!found) {
            rc = OMNI_JWT_WRONG_AUDIENCE;
            w = "audience not accepted";
            goto done;
        }
    }

    v = omni_jwt_node_member(jwt, jwt->payload, "sub", 3);

    if (v == NULL || v->type != OMNI_JSON_STRING || v->len == 0) {
        rc = OMNI_JWT_MALFORMED;
        w = "sub claim missing";
        goto done;
    }

    rc = OMNI_JWT_OK;
    w = NULL;

done:

    if (why != NULL) {
        *why = w;
    }

    return rc;
}


/* Appends n bytes of s unless they would not fit or hold a control
 * character (the text goes into upstream request headers). */

static int
omni_jwt_append(char *buf, size_t size, size_t *pos, const char *s,
    size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return -1;
        }
    }

    if (n >= size - *pos) {
        return -1;
    }

    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';

    return 0;
}


static int
omni_jwt_append_scalar(const omni_jwt_t *jwt, char *buf, size_t size,
    size_t *pos, const omni_json_node_t *v)
{
    switch (v->type) {
    case OMNI_JSON_STRING:
    case OMNI_JSON_NUMBER:
        return omni_jwt_append(buf, size, pos, jwt->text + v->str, v->len);
    case OMNI_JSON_TRUE:
        return omni_jwt_append(buf, size, pos, "true", 4);
    case OMNI_JSON_FALSE:
        return omni_jwt_append(buf, size, pos, "false", 5);
    default:
        return -1;
    }
}


int
omni_jwt_claim(const omni_jwt_t *jwt, const char *path, char *buf,
    size_t buflen)
{
    size_t                   i, pos, seg;
    const char              *p, *dot;
    const omni_json_node_t  *v, *w;

    if (buflen == 0 || buf == NULL) {
        return -1;
    }

    buf[0] = '\0';

    if (jwt->payload == NULL || path == NULL || path[0] == '\0') {
        return -1;
    }

    if (buflen > INT_MAX) {
        buflen = INT_MAX;
    }

    v = jwt->payload;
    p = path;

    for ( ;; ) {
        if (*p == '\0') {
            return -1;
        }

        /* a member named by the whole rest ("https://x.example/roles")
         * wins over descending at its first dot */

        w = omni_jwt_node_member(jwt, v, p, strlen(p));
        if (w != NULL) {
            v = w;
            break;
        }

        dot = strchr(p, '.');
        if (dot == NULL) {
            return -1;
        }

        seg = (size_t) (dot - p);
        if (seg == 0) {
            return -1;
        }

        v = omni_jwt_node_member(jwt, v, p, seg);
        if (v == NULL || v->type != OMNI_JSON_OBJECT) {
            return -1;
        }

        p = dot + 1;
    }

    pos = 0;

    if (v->type == OMNI_JSON_ARRAY) {
        for (w = v + 1, i = 0; i < v->count; w = &jwt->nodes[w->end], i++) {
            if ((i > 0 && omni_jwt_append(buf, buflen, &pos, ",", 1) != 0)
                || omni_jwt_append_scalar(jwt, buf, buflen, &pos, w) != 0)
            {
                buf[0] = '\0';
                return -1;
            }
        }

    } else if (omni_jwt_append_scalar(jwt, buf, buflen, &pos, v) != 0) {
        buf[0] = '\0';
        return -1;
    }

    return (int) pos;
}
