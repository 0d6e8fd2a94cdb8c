
/*
 * Omni gateway module: the per-request decision. Strip identity headers,
 * find the token, verify it (or find it in the cache), authorize roles,
 * inject the verified identity.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_http_omni_module.h"


#define NGX_HTTP_OMNI_CLAIM_MAX  4096


static ngx_int_t ngx_http_omni_after_redis(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
static ngx_int_t ngx_http_omni_complete(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
static void ngx_http_omni_find_apikey(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *key);
static ngx_int_t ngx_http_omni_find_token(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *token);
static ngx_int_t ngx_http_omni_verify(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx,
    ngx_str_t *token, const char **why);
static ngx_int_t ngx_http_omni_roles(ngx_http_request_t *r, omni_jwt_t *jwt,
    const char *path, ngx_str_t *roles);
static ngx_int_t ngx_http_omni_extract(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx,
    omni_jwt_t *jwt);
static ngx_int_t ngx_http_omni_has_role(ngx_http_omni_loc_conf_t *olcf,
    ngx_str_t *roles);


static ngx_uint_t  ngx_http_omni_status_decision[] = {
    NGX_HTTP_OMNI_ALLOW,                    /* OMNI_JWT_OK */
    NGX_HTTP_OMNI_DENY_MALFORMED,           /* OMNI_JWT_MALFORMED */
    NGX_HTTP_OMNI_DENY_BAD_SIGNATURE,       /* OMNI_JWT_BAD_SIGNATURE */
    NGX_HTTP_OMNI_DENY_EXPIRED,             /* OMNI_JWT_EXPIRED */
    NGX_HTTP_OMNI_DENY_NOT_YET_VALID,       /* OMNI_JWT_NOT_YET_VALID */
    NGX_HTTP_OMNI_DENY_WRONG_ISSUER,        /* OMNI_JWT_WRONG_ISSUER */
    NGX_HTTP_OMNI_DENY_WRONG_AUDIENCE       /* OMNI_JWT_WRONG_AUDIENCE */
};


ngx_int_t
ngx_http_omni_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  token, apikey;
    const char                *why;
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);

    if (ctx != NULL && ctx->done) {

        if (ctx->waiting) {
            return NGX_AGAIN;
        }

        if (ctx->replied && !ctx->resumed) {
            /* back from Redis */
            ctx->resumed = 1;
            return ngx_http_omni_after_redis(r, olcf, ctx);
        }

        return NGX_DECLINED;
    }

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_omni_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_omni_module);
    }

    ctx->done = 1;

    ngx_str_null(&apikey);

    if (olcf->auth & NGX_HTTP_OMNI_AUTH_APIKEY) {
        ngx_http_omni_find_apikey(r, olcf, &apikey);
    }

    /* SPEC rule 3: identity headers come from the gateway only; the API
     * key, read above, stays here */
    if ((olcf->headers || (olcf->auth & NGX_HTTP_OMNI_AUTH_APIKEY))
        && ngx_http_omni_headers_strip(r, olcf) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (olcf->auth == NGX_HTTP_OMNI_AUTH_OFF
        && (olcf->limits == NULL || olcf->limits->nelts == 0))
    {
        return NGX_DECLINED;
    }

    ctx->fields = olcf->fields;
    ctx->nvalues = olcf->fields ? olcf->fields->nelts : NGX_HTTP_OMNI_NFIELDS;
    ctx->values = ngx_pcalloc(r->pool, ctx->nvalues * sizeof(ngx_str_t));
    if (ctx->values == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = NGX_DECLINED;

    if (olcf->auth & NGX_HTTP_OMNI_AUTH_JWT) {
        rc = ngx_http_omni_find_token(r, olcf, &token);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (rc == NGX_OK) {
        rc = ngx_http_omni_verify(r, olcf, ctx, &token, &why);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_HTTP_OMNI_ALLOW) {
            return ngx_http_omni_reject(r, ctx, rc, why);
        }

        ctx->authenticated = 1;

        if (olcf->require_roles
            && !ngx_http_omni_has_role(olcf,
                                       &ctx->values[NGX_HTTP_OMNI_F_ROLES]))
        {
            return ngx_http_omni_reject(r, ctx,
                                        NGX_HTTP_OMNI_DENY_INSUFFICIENT_ROLE,
                                        "a required role is missing");
        }

    } else if (apikey.len) {
        /* kept as its SHA-256, never logged; resolved by Redis in the
         * round trip below */
        ctx->apikey.data = ngx_pnalloc(r->pool, SHA256_DIGEST_LENGTH);
        if (ctx->apikey.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        SHA256(apikey.data, apikey.len, ctx->apikey.data);
        ctx->apikey.len = SHA256_DIGEST_LENGTH;

    } else if (olcf->auth != NGX_HTTP_OMNI_AUTH_OFF
               && !((olcf->auth & NGX_HTTP_OMNI_AUTH_OPTIONAL)
                    && olcf->require_roles == NULL))
    {
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_MISSING,
                                    (olcf->auth & NGX_HTTP_OMNI_AUTH_APIKEY)
                                    ? "no bearer token or API key in the "
                                      "request"
                                    : "no bearer token in the request");
    }

    if (ngx_http_omni_limit_needed(r, olcf, ctx)) {
        rc = ngx_http_omni_limit_start(r, olcf, ctx);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* Redis cannot be asked: the fail mode decides at once */
        ngx_http_omni_metrics_redis(ctx->failed);
        ctx->resumed = 1;

        return ngx_http_omni_after_redis(r, olcf, ctx);
    }

    return ngx_http_omni_complete(r, olcf, ctx);
}


static ngx_int_t
ngx_http_omni_after_redis(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_omni_limit_finish(r, olcf, ctx);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_omni_complete(r, olcf, ctx);
}


/* The decision is "allow": identity from the API key, roles, headers. */

static ngx_int_t
ngx_http_omni_complete(ngx_http_request_t *r, ngx_http_omni_loc_conf_t *olcf,
    ngx_http_omni_ctx_t *ctx)
{
    u_char  *comma;

    if (ctx->apikey.len && !ctx->failed) {
        ctx->values[NGX_HTTP_OMNI_F_USER_ID] = ctx->key_fields[1];
        ctx->values[NGX_HTTP_OMNI_F_USERNAME] = ctx->key_fields[2];
        ctx->values[NGX_HTTP_OMNI_F_ROLES] = ctx->key_fields[3];
        ctx->values[NGX_HTTP_OMNI_F_ROLE] = ctx->key_fields[3];

        comma = ngx_strlchr(ctx->key_fields[3].data,
                            ctx->key_fields[3].data + ctx->key_fields[3].len,
                            ',');
        if (comma) {
            ctx->values[NGX_HTTP_OMNI_F_ROLE].len =
                                            comma - ctx->key_fields[3].data;
        }

        ctx->authenticated = 1;
        ctx->via_apikey = 1;

        if (olcf->require_roles
            && !ngx_http_omni_has_role(olcf,
                                       &ctx->values[NGX_HTTP_OMNI_F_ROLES]))
        {
            return ngx_http_omni_reject(r, ctx,
                                        NGX_HTTP_OMNI_DENY_INSUFFICIENT_ROLE,
                                        "a required role is missing");
        }
    }

    if (!ctx->authenticated) {
        if (olcf->auth != NGX_HTTP_OMNI_AUTH_OFF) {
            ctx->decision = NGX_HTTP_OMNI_ALLOW_ANONYMOUS;
            ngx_http_omni_metrics_decision(ctx->decision);
        }

        return NGX_DECLINED;
    }

    if (olcf->headers && ctx->fields
        && ngx_http_omni_headers_inject(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (olcf->remove_authorization
        && ngx_http_omni_headers_remove_authorization(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->decision = NGX_HTTP_OMNI_ALLOW;
    ngx_http_omni_metrics_decision(ctx->decision);

    return NGX_DECLINED;
}


/* The API key: the first non-empty copy of its header, else "". */

static void
ngx_http_omni_find_apikey(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *key)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == olcf->apikey_header.len
            && ngx_strncasecmp(h[i].key.data, olcf->apikey_header.data,
                               h[i].key.len) == 0
            && h[i].value.len > 0)
        {
            /* in the request's header buffers: it outlives the header */
            *key = h[i].value;
            return;
        }
    }
}


/*
 * The token from the configured sources in order, else from
 * "Authorization: Bearer". NGX_DECLINED when there is none.
 */

static ngx_int_t
ngx_http_omni_find_token(ngx_http_request_t *r,
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

static ngx_int_t
ngx_http_omni_verify(ngx_http_request_t *r, ngx_http_omni_loc_conf_t *olcf,
    ngx_http_omni_ctx_t *ctx, ngx_str_t *token, const char **why)
{
    u_char                      key[SHA256_DIGEST_LENGTH];
    u_char                     *p;
    u_char                      buf[16 + sizeof(ngx_uint_t)
                                    + OMNI_JWT_MAX_TOKEN];
    time_t                      now, expires;
    ngx_int_t                   rc;
    omni_jwt_t                  jwt;
    omni_jwt_status_t           st;
    ngx_http_omni_main_conf_t  *omcf;

    if (token->len > OMNI_JWT_MAX_TOKEN) {
        *why = "token longer than 8192 bytes";
        return NGX_HTTP_OMNI_DENY_MALFORMED;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    ngx_memzero(key, sizeof(key));

    if (omcf->cache_zone) {
        /* the location's policy is part of the key: the same token may be
         * valid under one location's checks and not another's */
        p = ngx_cpymem(buf, omcf->cache_salt, sizeof(omcf->cache_salt));
        p = ngx_cpymem(p, &olcf->policy, sizeof(olcf->policy));
        p = ngx_cpymem(p, token->data, token->len);
        SHA256(buf, p - buf, key);

        rc = ngx_http_omni_cache_get(r, key, ctx);

        if (rc == NGX_OK) {
            ngx_http_omni_metrics_cache(1);
            return NGX_HTTP_OMNI_ALLOW;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_http_omni_metrics_cache(0);
    }

    if (olcf->keys == NULL || olcf->keys->nelts == 0) {
        *why = "no verification key for this location";
        return NGX_HTTP_OMNI_DENY_BAD_SIGNATURE;
    }

    now = ngx_time();

    st = omni_jwt_parse(&jwt, (char *) token->data, token->len, why);

    if (st == OMNI_JWT_OK) {
        st = omni_jwt_verify(&jwt, olcf->keys->elts, olcf->keys->nelts, why);
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
        return ngx_http_omni_status_decision[st];
    }

    rc = ngx_http_omni_extract(r, olcf, ctx, &jwt);

    expires = now + omcf->cache_ttl;

    if (jwt.has_exp && jwt.exp + olcf->leeway < (double) expires) {
        expires = (time_t) (jwt.exp + olcf->leeway);
    }

    omni_jwt_free(&jwt);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (omcf->cache_zone && expires > now) {
        ngx_http_omni_cache_put(r, key, expires, ctx);
    }

    return NGX_HTTP_OMNI_ALLOW;
}


static ngx_int_t
ngx_http_omni_claim_value(ngx_http_request_t *r, omni_jwt_t *jwt,
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
ngx_http_omni_roles(ngx_http_request_t *r, omni_jwt_t *jwt, const char *path,
    ngx_str_t *roles)
{
    u_char       *p;
    char          copy[256], *dot;
    size_t        len, i, n, count;
    yajl_val      v, *items;
    const char   *parts[17];

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

    v = yajl_tree_get(jwt->payload, parts, yajl_t_any);

    if (YAJL_IS_STRING(v)) {
        items = &v;
        count = 1;

    } else if (YAJL_IS_ARRAY(v)) {
        items = v->u.array.values;
        count = v->u.array.len;

    } else {
        return NGX_DECLINED;
    }

    len = 0;

    for (i = 0; i < count; i++) {
        if (YAJL_IS_STRING(items[i])) {
            len += ngx_strlen(items[i]->u.string) + 1;
        }
    }

    roles->data = ngx_pnalloc(r->pool, len);
    if (len && roles->data == NULL) {
        return NGX_ERROR;
    }

    p = roles->data;

    for (i = 0; i < count; i++) {
        if (!YAJL_IS_STRING(items[i])) {
            continue;
        }

        len = ngx_strlen(items[i]->u.string);

        if (len == 0 || ngx_strchr(items[i]->u.string, ',') != NULL) {
            continue;
        }

        if (p != roles->data) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, items[i]->u.string, len);
    }

    roles->len = p - roles->data;

    return roles->len ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_omni_extract(ngx_http_request_t *r, ngx_http_omni_loc_conf_t *olcf,
    ngx_http_omni_ctx_t *ctx, omni_jwt_t *jwt)
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
        rc = ngx_http_omni_roles(r, jwt, (char *) olcf->roles_claim.data,
                                 roles);

    } else {
        rc = ngx_http_omni_roles(r, jwt, "role", roles);

        if (rc == NGX_DECLINED) {
            rc = ngx_http_omni_roles(r, jwt, "roles", roles);
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
            rc = ngx_http_omni_claim_value(r, jwt, "preferred_username",
                                           &ctx->values[i]);
            if (rc == NGX_DECLINED) {
                rc = ngx_http_omni_claim_value(r, jwt, "username",
                                               &ctx->values[i]);
            }
            break;

        default:
            rc = ngx_http_omni_claim_value(r, jwt, (char *) f[i].path.data,
                                           &ctx->values[i]);
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* Any one required role, or admin, among the comma-separated roles. */

static ngx_int_t
ngx_http_omni_has_role(ngx_http_omni_loc_conf_t *olcf, ngx_str_t *roles)
{
    u_char      *p, *last, *end;
    size_t       len;
    ngx_str_t   *need;
    ngx_uint_t   i;

    need = olcf->require_roles->elts;
    p = roles->data;
    last = roles->data + roles->len;

    while (p < last) {
        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        len = end - p;

        if (len == 5 && ngx_strncmp(p, "admin", 5) == 0) {
            return 1;
        }

        for (i = 0; i < olcf->require_roles->nelts; i++) {
            if (need[i].len == len && ngx_strncmp(need[i].data, p, len) == 0)
            {
                return 1;
            }
        }

        p = end + 1;
    }

    return 0;
}


/* 401 or 403 with a JSON body and an RFC 6750 challenge. */

ngx_int_t
ngx_http_omni_reject(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_uint_t decision, const char *why)
{
    size_t            len;
    u_char           *p;
    ngx_int_t         rc;
    ngx_uint_t        status;
    ngx_str_t         body;
    const char       *error;
    ngx_table_elt_t  *h;

    ctx->decision = decision;
    ngx_http_omni_metrics_decision(decision);

    switch (decision) {

    case NGX_HTTP_OMNI_DENY_MISSING:
        status = NGX_HTTP_UNAUTHORIZED;
        error = "missing_credentials";
        break;

    case NGX_HTTP_OMNI_DENY_EXPIRED:
        status = NGX_HTTP_UNAUTHORIZED;
        error = "token_expired";
        break;

    case NGX_HTTP_OMNI_DENY_INSUFFICIENT_ROLE:
        status = NGX_HTTP_FORBIDDEN;
        error = "insufficient_role";
        break;

    case NGX_HTTP_OMNI_DENY_REVOKED:
        status = NGX_HTTP_UNAUTHORIZED;
        error = "token_revoked";
        break;

    case NGX_HTTP_OMNI_DENY_RATE_LIMITED:
        status = NGX_HTTP_TOO_MANY_REQUESTS;
        error = "rate_limited";
        break;

    case NGX_HTTP_OMNI_DENY_UNAVAILABLE:
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        error = "limiter_unavailable";
        break;

    default:
        status = NGX_HTTP_UNAUTHORIZED;
        error = "invalid_token";
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "omni: %s: %s", error, why);

    /* why is one of omni_jwt's static reasons: no quote, no backslash */
    len = ngx_strlen(why);

    /* RFC 6750: a challenge with every 401 and 403, none with 429 or 503 */
    if (status == NGX_HTTP_UNAUTHORIZED || status == NGX_HTTP_FORBIDDEN) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");

        h->value.data = ngx_pnalloc(r->pool,
                                    sizeof("Bearer realm=\"omni\", "
                                           "error=\"insufficient_scope\", "
                                           "error_description=\"\"")
                                    + len);
        if (h->value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (decision == NGX_HTTP_OMNI_DENY_MISSING) {
            /* RFC 6750 3.1: no error code when credentials are absent */
            p = ngx_sprintf(h->value.data, "Bearer realm=\"omni\"");

        } else if (status == NGX_HTTP_FORBIDDEN) {
            p = ngx_sprintf(h->value.data, "Bearer realm=\"omni\", "
                            "error=\"insufficient_scope\"");

        } else {
            p = ngx_sprintf(h->value.data,
                            "Bearer realm=\"omni\", error=\"invalid_token\", "
                            "error_description=\"%s\"", why);
        }

        h->value.len = p - h->value.data;
    }

    body.data = ngx_pnalloc(r->pool,
                            sizeof("{\"error\":\"\",\"message\":\"\"}\n")
                            + ngx_strlen(error) + len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.len = ngx_sprintf(body.data, "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                           error, why)
               - body.data;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_omni_send_json(r, status, &body);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}
