/*
 * omni_jwt_parse.c: a compact JWS split and decoded, strictly: the header's
 * alg, kid, typ and crit, the payload's NumericDates.
 */


#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


static int omni_jwt_strcaseeq(const char *a, const char *b);
static omni_jwt_status_t omni_jwt_decode_json(omni_jwt_t *jwt,
    const char *seg, size_t len, const omni_json_node_t **out,
    const char *what, const char **why);
static omni_jwt_status_t omni_jwt_parse_header(omni_jwt_t *jwt,
    const char **why);
static int omni_jwt_small_integer(const char *s, size_t len, double *d);
static omni_jwt_status_t omni_jwt_numeric(omni_jwt_t *jwt,
    const char *name, int *has, double *value, const char **why);


static int
omni_jwt_strcaseeq(const char *a, const char *b)
{
    unsigned char  ca, cb;

    do {
        ca = (unsigned char) *a++;
        cb = (unsigned char) *b++;

        if (ca >= 'A' && ca <= 'Z') {
            ca = (unsigned char) (ca + 32);
        }

        if (cb >= 'A' && cb <= 'Z') {
            cb = (unsigned char) (cb + 32);
        }

        if (ca != cb) {
            return 0;
        }

    } while (ca != '\0');

    return 1;
}


/* A base64url segment holding a JSON object; what is "header"/"payload",
 * and the static reasons below name it. */

static omni_jwt_status_t
omni_jwt_decode_json(omni_jwt_t *jwt, const char *seg, size_t len,
    const omni_json_node_t **out, const char *what, const char **why)
{
    int                      hdr, rc;
    size_t                   n;
    const omni_json_node_t  *v;

    hdr = (what[0] == 'h');
    *out = NULL;

    if (len == 0) {
        *why = hdr ? "empty header" : "empty payload";
        return OMNI_JWT_MALFORMED;
    }

    if (len / 4 * 3 + 3 > sizeof(jwt->json)
        || omni_jwt_base64url_decode(jwt->json, &n, seg, len) != 0)
    {
        *why = hdr ? "header is not base64url" : "payload is not base64url";
        return OMNI_JWT_MALFORMED;
    }

    rc = omni_jwt_json_parse(jwt, jwt->json, n, &v);

    if (rc == OMNI_JWT_JSON_BAD || rc == OMNI_JWT_JSON_FULL) {
        /* what the scan refuses (a NUL, \u0000, a comment, depth) is named
         * first; JSON it passes can only be refused as not JSON */
        if (omni_jwt_json_scan(jwt->json, n, why) == 0) {
            *why = (rc == OMNI_JWT_JSON_FULL) ? "JSON too large"
                   : hdr ? "header is not JSON" : "payload is not JSON";
        }

        return OMNI_JWT_MALFORMED;
    }

    *out = v;

    if (v->type != OMNI_JSON_OBJECT) {
        *why = hdr ? "header is not a JSON object"
                   : "payload is not a JSON object";
        return OMNI_JWT_MALFORMED;
    }

    if (rc == OMNI_JWT_JSON_DUP) {
        *why = hdr ? "duplicate member in header"
                   : "duplicate member in payload";
        return OMNI_JWT_MALFORMED;
    }

    return OMNI_JWT_OK;
}


static omni_jwt_status_t
omni_jwt_parse_header(omni_jwt_t *jwt, const char **why)
{
    int                      alg;
    const char              *t;
    const omni_json_node_t  *v;

    v = omni_jwt_node_member(jwt, jwt->header, "alg", 3);

    if (v == NULL) {
        *why = "alg missing";
        return OMNI_JWT_MALFORMED;
    }

    if (v->type != OMNI_JSON_STRING) {
        *why = "unsupported alg";
        return OMNI_JWT_MALFORMED;
    }

    alg = omni_jwt_alg_parse(jwt->text + v->str, v->len);

    if (alg < 0) {
        *why = "unsupported alg";
        return OMNI_JWT_MALFORMED;
    }

    jwt->alg = (omni_jwt_alg_t) alg;

    if (omni_jwt_node_member(jwt, jwt->header, "crit", 4) != NULL) {
        *why = "crit header not supported";
        return OMNI_JWT_MALFORMED;
    }

    v = omni_jwt_node_member(jwt, jwt->header, "kid", 3);

    if (v != NULL) {
        if (v->type != OMNI_JSON_STRING) {
            *why = "kid is not a string";
            return OMNI_JWT_MALFORMED;
        }

        if (v->len > OMNI_JWT_MAX_KID) {
            *why = "kid too long";
            return OMNI_JWT_MALFORMED;
        }

        jwt->kid = jwt->text + v->str;
    }

    v = omni_jwt_node_member(jwt, jwt->header, "typ", 3);

    if (v != NULL) {
        t = jwt->text + v->str;

        if (v->type != OMNI_JSON_STRING
            || !(omni_jwt_strcaseeq(t, "JWT")
                 || omni_jwt_strcaseeq(t, "application/jwt")
                 || omni_jwt_strcaseeq(t, "at+jwt")
                 || omni_jwt_strcaseeq(t, "application/at+jwt")))
        {
            *why = "unsupported typ";
            return OMNI_JWT_MALFORMED;
        }
    }

    return OMNI_JWT_OK;
}


/* 1 and *d when s (a JSON number as written) is -?[0-9]{1,15} */

static int
omni_jwt_small_integer(const char *s, size_t len, double *d)
{
    int       neg;
    size_t    i;
    uint64_t  v;

    neg = (len > 0 && s[0] == '-');
    i = (size_t) neg;

    if (len == i || len - i > 15) {
        return 0;
    }

    for (v = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }

        v = v * 10 + (uint64_t) (s[i] - '0');
    }

    *d = neg ? -(double) v : (double) v;

    return 1;
}


static omni_jwt_status_t
omni_jwt_numeric(omni_jwt_t *jwt, const char *name, int *has,
    double *value, const char **why)
{
    char                    *end;
    double                   d;
    const omni_json_node_t  *v;

    v = omni_jwt_node_member(jwt, jwt->payload, name, strlen(name));

    if (v == NULL) {
        return OMNI_JWT_OK;
    }

    /* as yajl_tree: a number strtod() takes whole, without ERANGE (1e999,
     * 1e-999); an integer of at most 15 digits is exact in a double, so
     * it is read without strtod() (a NumericDate always is one) */

    d = 0;

    if (v->type == OMNI_JSON_NUMBER
        && omni_jwt_small_integer(jwt->text + v->str, v->len, &d))
    {
        /* d is set */

    } else if (v->type == OMNI_JSON_NUMBER) {
        errno = 0;
        end = NULL;
        d = strtod(jwt->text + v->str, &end);

        if (errno != 0 || end == NULL || *end != '\0') {
            d = NAN;
        }
    }

    if (v->type != OMNI_JSON_NUMBER || !isfinite(d)) {
        *why = (name[0] == 'e') ? "exp is not a number"
               : (name[0] == 'n') ? "nbf is not a number"
                                  : "iat is not a number";
        return OMNI_JWT_MALFORMED;
    }

    *has = 1;
    *value = d;

    return OMNI_JWT_OK;
}


omni_jwt_status_t
omni_jwt_parse(omni_jwt_t *jwt, const char *token, size_t len,
    const char **why)
{
    size_t              i, dots[2], ndots, slen;
    const char         *w, *dot;
    omni_jwt_status_t   rc;

    omni_jwt_free(jwt);
    dots[0] = 0;
    dots[1] = 0;
    jwt->alg = OMNI_JWT_NALGS;
    w = NULL;

    if (token == NULL || len == 0) {
        w = "empty token";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    if (len > OMNI_JWT_MAX_TOKEN) {
        w = "token too long";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    ndots = 0;
    i = 0;

    while (ndots < 3) {
        dot = memchr(token + i, '.', len - i);
        if (dot == NULL) {
            break;
        }

        if (ndots < 2) {
            dots[ndots] = (size_t) (dot - token);
        }

        ndots++;
        i = (size_t) (dot - token) + 1;
    }

    if (ndots != 2) {
        w = "token is not three dot-separated segments";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    slen = len - dots[1] - 1;

    if (slen == 0) {
        w = "empty signature";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    rc = omni_jwt_decode_json(jwt, token, dots[0], &jwt->header, "header",
                              &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_parse_header(jwt, &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_decode_json(jwt, token + dots[0] + 1,
                              dots[1] - dots[0] - 1, &jwt->payload,
                              "payload", &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_numeric(jwt, "exp", &jwt->has_exp, &jwt->exp, &w);
    if (rc == OMNI_JWT_OK) {
        rc = omni_jwt_numeric(jwt, "nbf", &jwt->has_nbf, &jwt->nbf, &w);
    }
    if (rc == OMNI_JWT_OK) {
        rc = omni_jwt_numeric(jwt, "iat", &jwt->has_iat, &jwt->iat, &w);
    }
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    if (slen / 4 * 3 + 3 > sizeof(jwt->sigbuf)
        || omni_jwt_base64url_decode(jwt->sigbuf, &jwt->sig_len,
                                     token + dots[1] + 1, slen)
           != 0)
    {
        w = "signature is not base64url";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    jwt->sig = jwt->sigbuf;

    jwt->signing_input = (const unsigned char *) token;
    jwt->signing_input_len = dots[1];

done:

    if (rc != OMNI_JWT_OK) {
        /* never a half-parsed token: verify refuses one without an alg */
        jwt->alg = OMNI_JWT_NALGS;
        jwt->kid = NULL;
        jwt->signing_input = NULL;
        jwt->signing_input_len = 0;
    }

    if (why != NULL) {
        *why = w;
    }

    return rc;
}


/* Clears what a parse sets: the buffers after the fields are left as they
 * are (only the nodes and text counted in use are ever read). */

void
omni_jwt_free(omni_jwt_t *jwt)
{
    if (jwt == NULL) {
        return;
    }

    memset(jwt, 0, offsetof(omni_jwt_t, nodes));
    jwt->alg = OMNI_JWT_NALGS;
}
