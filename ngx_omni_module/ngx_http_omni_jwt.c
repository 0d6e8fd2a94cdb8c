
/*
 * Omni gateway module: the bearer token. Found in the configured sources
 * or the Authorization header, verified (or found in the cache of verified
 * tokens), its claims turned into the identity a request carries.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_http_omni_module.h"


#define NGX_HTTP_OMNI_CLAIM_MAX  4096


static ngx_int_t ngx_http_omni_jwt_claim_value(ngx_http_request_t *r,
    omni_jwt_t *jwt, const char *path, ngx_str_t *value);
static ngx_int_t ngx_http_omni_jwt_roles(ngx_http_request_t *r,
    omni_jwt_t *jwt, const char *path, ngx_str_t *roles);
static ngx_int_t ngx_http_omni_jwt_extract(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx,
    omni_jwt_t *jwt);


static ngx_uint_t  ngx_http_omni_jwt_decision[] = {
    NGX_HTTP_OMNI_ALLOW,                    /* OMNI_JWT_OK */
    NGX_HTTP_OMNI_DENY_MALFORMED,           /* OMNI_JWT_MALFORMED */
    NGX_HTTP_OMNI_DENY_BAD_SIGNATURE,       /* OMNI_JWT_BAD_SIGNATURE */
    NGX_HTTP_OMNI_DENY_EXPIRED,             /* OMNI_JWT_EXPIRED */
    NGX_HTTP_OMNI_DENY_NOT_YET_VALID,       /* OMNI_JWT_NOT_YET_VALID */
    NGX_HTTP_OMNI_DENY_WRONG_ISSUER,        /* OMNI_JWT_WRONG_ISSUER */
    NGX_HTTP_OMNI_DENY_WRONG_AUDIENCE       /* OMNI_JWT_WRONG_AUDIENCE */
};


/*
 * The token from the configured sources in order, else from
 * "Authorization: Bearer". NGX_DECLINED when there is none.
 */

ngx_int_t
ngx_http_omni_jwt_find_token(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *token)
{
    u_char                    *p, *last;
    ngx_uint_t                 i;
    ngx_table_elt_t           *h;
    ngx_http_complex_value_t  *cv;

    if (olcf->token_sources) {
        cv = olcf->token_sources->elts;

        for (i = 0; i < olcf->token_sources->nelts; i++) {
            if (ngx_http_complex_value(r, &cv[i], token) != NGX_OK) {
                return NGX_ERROR;
            }

            if (token->len) {
                return NGX_OK;
            }
        }

        return NGX_DECLINED;
    }

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p = h->value.data + sizeof("Bearer ") - 1;
    last = h->value.data + h->value.len;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    token->data = p;
    token->len = last - p;

    return NGX_OK;
}


/*
 * Fills ctx->values from the cache or a full verification. Returns
 * NGX_HTTP_OMNI_ALLOW, a deny decision with *why set, or NGX_ERROR.
 */

ngx_int_t
ngx_http_omni_jwt_verify(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx,
    ngx_str_t *token, const char **why)
{
    u_char                      key[SHA256_DIGEST_LENGTH];
    time_t                      now, expires;
    ngx_int_t                   rc;
    omni_jwt_status_t           st;
    ngx_http_omni_main_conf_t  *omcf;

    /* ~100 KB that parsing fills in place: one a process (a worker
     * verifies one token at a time), off the stack */
    static omni_jwt_t           jwt;

    if (token->len > OMNI_JWT_MAX_TOKEN) {
        *why = "token longer than 8192 bytes";
        return NGX_HTTP_OMNI_DENY_MALFORMED;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    ngx_memzero(key, sizeof(key));

    if (omcf->cache_zone) {
        rc = ngx_http_omni_cache_get(r, olcf, token, ctx, key);

        if (rc == NGX_OK) {
            ngx_http_omni_metrics_cache(1);
            return NGX_HTTP_OMNI_ALLOW;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_http_omni_metrics_cache(0);
    }

    if ((olcf->keys == NULL || olcf->keys->nelts == 0)
        && olcf->jwks == NULL)
    {
        *why = "no verification key for this location";
        return NGX_HTTP_OMNI_DENY_BAD_SIGNATURE;
    }

    now = ngx_time();

    st = omni_jwt_parse(&jwt, (char *) token->data, token->len, why);

    if (st == OMNI_JWT_OK) {
        st = ngx_http_omni_keys_verify(olcf, &jwt, why);
    }

    if (st == OMNI_JWT_OK) {
        st = omni_jwt_check_claims(&jwt, now, olcf->leeway,
                   olcf->issuers ? olcf->issuers->elts : NULL,
                   olcf->issuers ? olcf->issuers->nelts : 0,
                   olcf->audiences ? olcf->audiences->elts : NULL,
                   olcf->audiences ? olcf->audiences->nelts : 0, why);
    }

    if (st != OMNI_JWT_OK) {
        omni_jwt_free(&jwt);
        return ngx_http_omni_jwt_decision[st];
    }

    rc = ngx_http_omni_jwt_extract(r, olcf, ctx, &jwt);

    expires = now + omcf->cache_ttl;

    if (jwt.has_exp && jwt.exp + olcf->leeway < (double) expires) {
        expires = (time_t) (jwt.exp + olcf->leeway);
    }

    omni_jwt_free(&jwt);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (omcf->cache_zone && expires > now) {
        ngx_http_omni_cache_put(r, olcf, token, key, expires, ctx);
    }

    return NGX_HTTP_OMNI_ALLOW;
}


static ngx_int_t
ngx_http_omni_jwt_claim_value(ngx_http_request_t *r, omni_jwt_t *jwt,
    const char *path, ngx_str_t *value)
{
    int    n;
    u_char buf[NGX_HTTP_OMNI_CLAIM_MAX];

    n = omni_jwt_claim(jwt, path, (char *) buf, sizeof(buf));

    if (n <= 0) {
        ngx_str_null(value);
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(r->pool, n);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, buf, n);
    value->len = n;

    return NGX_OK;
}


/*
 * The roles claim (a string or an array of strings, by dotted path),
 * comma-joined. A role holding a comma cannot be told apart from two roles
 * in that form, so it is ignored, as are non-string elements.
 */

static ngx_int_t
ngx_http_omni_jwt_roles(ngx_http_request_t *r, omni_jwt_t *jwt,
    const char *path, ngx_str_t *roles)
{
    u_char                  *p;
    char                     copy[256], *dot;
    size_t                   len, i, n, count;
    const char              *parts[17], *s;
    const omni_json_node_t  *v, *e, *first;

    len = ngx_strlen(path);

    if (len >= sizeof(copy)) {
        return NGX_DECLINED;
    }

    ngx_memcpy(copy, path, len + 1);

    n = 0;
    parts[n++] = copy;

    for (dot = copy; (dot = ngx_strchr(dot, '.')) != NULL && n < 16; ) {
        *dot++ = '\0';
        parts[n++] = dot;
    }

    parts[n] = NULL;

    v = omni_jwt_get(jwt, parts);

    if (v == NULL) {
        return NGX_DECLINED;
    }

    if (v->type == OMNI_JSON_STRING) {
        first = v;
        count = 1;

    } else if (v->type == OMNI_JSON_ARRAY) {
        first = v + 1;
        count = v->count;

    } else {
        return NGX_DECLINED;
    }

    len = 0;

    for (e = first, i = 0; i < count; e = &jwt->nodes[e->end], i++) {
        if (e->type == OMNI_JSON_STRING) {
            len += e->len + 1;
        }
    }

    roles->data = ngx_pnalloc(r->pool, len);
    if (len && roles->data == NULL) {
        return NGX_ERROR;
    }

    p = roles->data;

    for (e = first, i = 0; i < count; e = &jwt->nodes[e->end], i++) {
        if (e->type != OMNI_JSON_STRING) {
            continue;
        }

        s = jwt->text + e->str;

        if (e->len == 0 || ngx_strlchr((u_char *) s, (u_char *) s + e->len,
                                       ',')
                           != NULL)
        {
            continue;
        }

        if (p != roles->data) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, s, e->len);
    }

    roles->len = p - roles->data;

    return roles->len ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_omni_jwt_extract(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx,
    omni_jwt_t *jwt)
{
    u_char                 *comma;
    ngx_int_t               rc;
    ngx_uint_t              i;
    ngx_str_t              *roles;
    ngx_http_omni_claim_t  *f;

    f = olcf->fields->elts;

    /* the roles first: the primary role is derived from them */
    roles = &ctx->values[NGX_HTTP_OMNI_F_ROLES];

    if (olcf->roles_claim.len) {
        rc = ngx_http_omni_jwt_roles(r, jwt, (char *) olcf->roles_claim.data,
                                 roles);

    } else {
        rc = ngx_http_omni_jwt_roles(r, jwt, "role", roles);

        if (rc == NGX_DECLINED) {
            rc = ngx_http_omni_jwt_roles(r, jwt, "roles", roles);
        }
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    for (i = 0; i < olcf->fields->nelts; i++) {

        switch (f[i].kind) {

        case NGX_HTTP_OMNI_CLAIM_ROLES:
            continue;

        case NGX_HTTP_OMNI_CLAIM_ROLE:
            ctx->values[i] = *roles;
            comma = ngx_strlchr(roles->data, roles->data + roles->len, ',');
            if (comma) {
                ctx->values[i].len = comma - roles->data;
            }
            continue;

        case NGX_HTTP_OMNI_CLAIM_USERNAME:
            rc = ngx_http_omni_jwt_claim_value(r, jwt, "preferred_username",
                                           &ctx->values[i]);
            if (rc == NGX_DECLINED) {
                rc = ngx_http_omni_jwt_claim_value(r, jwt, "username",
                                               &ctx->values[i]);
            }
            break;

        default:
            rc = ngx_http_omni_jwt_claim_value(r, jwt, (char *) f[i].path.data,
                                           &ctx->values[i]);
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
