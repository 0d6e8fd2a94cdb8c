/*
 * omni_jwt_parse.c: a compact JWS split and decoded, strictly: the header's
 * alg, kid, typ and crit, the payload's NumericDates.
 */


#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"


static int omni_jwt_strcaseeq(const char *a, const char *b);
static omni_jwt_status_t omni_jwt_decode_json(const char *seg, size_t len,
    yajl_val *out, const char *what, const char **why);
static omni_jwt_status_t omni_jwt_parse_header(omni_jwt_t *jwt,
    const char **why);
static omni_jwt_status_t omni_jwt_numeric(yajl_val payload,
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
omni_jwt_decode_json(const char *seg, size_t len, yajl_val *out,
    const char *what, const char **why)
{
    int             hdr, rc;
    size_t          n;
    yajl_val        v;
    unsigned char  *buf;

    hdr = (what[0] == 'h');
    *out = NULL;

    if (len == 0) {
        *why = hdr ? "empty header" : "empty payload";
        return OMNI_JWT_MALFORMED;
    }

    buf = malloc(len / 4 * 3 + 3);
    if (buf == NULL) {
        *why = "out of memory";
        return OMNI_JWT_MALFORMED;
    }

    if (omni_jwt_base64url_decode(buf, &n, seg, len) != 0) {
        free(buf);
        *why = hdr ? "header is not base64url" : "payload is not base64url";
        return OMNI_JWT_MALFORMED;
    }

    if (omni_jwt_json_scan(buf, n, why) != 0) {
        free(buf);
        return OMNI_JWT_MALFORMED;
    }

    buf[n] = '\0';
    v = yajl_tree_parse((const char *) buf, NULL, 0);
    free(buf);

    if (v == NULL) {
        *why = hdr ? "header is not JSON" : "payload is not JSON";
        return OMNI_JWT_MALFORMED;
    }

    *out = v;

    if (!YAJL_IS_OBJECT(v)) {
        *why = hdr ? "header is not a JSON object"
                   : "payload is not a JSON object";
        return OMNI_JWT_MALFORMED;
    }

    rc = omni_jwt_json_dups(v);

    if (rc != 0) {
        *why = (rc < 0) ? "out of memory"
               : hdr ? "duplicate member in header"
                     : "duplicate member in payload";
        return OMNI_JWT_MALFORMED;
    }

    return OMNI_JWT_OK;
}


static omni_jwt_status_t
omni_jwt_parse_header(omni_jwt_t *jwt, const char **why)
{
    int       alg;
    yajl_val  v;

    v = omni_jwt_member(jwt->header, "alg", 3);

    if (v == NULL) {
        *why = "alg missing";
        return OMNI_JWT_MALFORMED;
    }

    if (!YAJL_IS_STRING(v)) {
        *why = "unsupported alg";
        return OMNI_JWT_MALFORMED;
    }

    alg = omni_jwt_alg_parse(v->u.string, strlen(v->u.string));

    if (alg < 0) {
        *why = "unsupported alg";
        return OMNI_JWT_MALFORMED;
    }

    jwt->alg = (omni_jwt_alg_t) alg;

    if (omni_jwt_member(jwt->header, "crit", 4) != NULL) {
        *why = "crit header not supported";
        return OMNI_JWT_MALFORMED;
    }

    v = omni_jwt_member(jwt->header, "kid", 3);

    if (v != NULL) {
        if (!YAJL_IS_STRING(v)) {
            *why = "kid is not a string";
            return OMNI_JWT_MALFORMED;
        }

        if (strlen(v->u.string) > OMNI_JWT_MAX_KID) {
            *why = "kid too long";
            return OMNI_JWT_MALFORMED;
        }

        jwt->kid = v->u.string;
    }

    v = omni_jwt_member(jwt->header, "typ", 3);

    if (v != NULL) {
        if (!YAJL_IS_STRING(v)
            || !(omni_jwt_strcaseeq(v->u.string, "JWT")
                 || omni_jwt_strcaseeq(v->u.string, "application/jwt")
                 || omni_jwt_strcaseeq(v->u.string, "at+jwt")
                 || omni_jwt_strcaseeq(v->u.string, "application/at+jwt")))
        {
            *why = "unsupported typ";
            return OMNI_JWT_MALFORMED;
        }
    }

    return OMNI_JWT_OK;
}


static omni_jwt_status_t
omni_jwt_numeric(yajl_val payload, const char *name, int *has,
    double *value, const char **why)
{
    yajl_val  v;

    v = omni_jwt_member(payload, name, strlen(name));

    if (v == NULL) {
        return OMNI_JWT_OK;
    }

    /* yajl leaves DOUBLE_VALID unset on overflow and underflow (1e999) */

    if (!YAJL_IS_DOUBLE(v) || !isfinite(v->u.number.d)) {
        *why = (name[0] == 'e') ? "exp is not a number"
               : (name[0] == 'n') ? "nbf is not a number"
                                  : "iat is not a number";
        return OMNI_JWT_MALFORMED;
    }

    *has = 1;
    *value = v->u.number.d;

    return OMNI_JWT_OK;
}


omni_jwt_status_t
omni_jwt_parse(omni_jwt_t *jwt, const char *token, size_t len,
    const char **why)
{
    size_t              i, dots[2], ndots, slen;
    const char         *w;
    omni_jwt_status_t   rc;

    memset(jwt, 0, sizeof(*jwt));
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

    for (i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 2) {
                ndots++;
                break;
            }
            dots[ndots++] = i;
        }
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

    rc = omni_jwt_decode_json(token, dots[0], &jwt->header, "header", &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_parse_header(jwt, &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_decode_json(token + dots[0] + 1, dots[1] - dots[0] - 1,
                              &jwt->payload, "payload", &w);
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    rc = omni_jwt_numeric(jwt->payload, "exp", &jwt->has_exp, &jwt->exp, &w);
    if (rc == OMNI_JWT_OK) {
        rc = omni_jwt_numeric(jwt->payload, "nbf", &jwt->has_nbf, &jwt->nbf,
                              &w);
    }
    if (rc == OMNI_JWT_OK) {
        rc = omni_jwt_numeric(jwt->payload, "iat", &jwt->has_iat, &jwt->iat,
                              &w);
    }
    if (rc != OMNI_JWT_OK) {
        goto done;
    }

    jwt->sig = malloc(slen / 4 * 3 + 3);
    if (jwt->sig == NULL) {
        w = "out of memory";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

    if (omni_jwt_base64url_decode(jwt->sig, &jwt->sig_len,
                                  token + dots[1] + 1, slen)
        != 0)
    {
        w = "signature is not base64url";
        rc = OMNI_JWT_MALFORMED;
        goto done;
    }

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


void
omni_jwt_free(omni_jwt_t *jwt)
{
    if (jwt == NULL) {
        return;
    }

    yajl_tree_free(jwt->header);
    yajl_tree_free(jwt->payload);
    free(jwt->sig);

    memset(jwt, 0, sizeof(*jwt));
    jwt->alg = OMNI_JWT_NALGS;
}
