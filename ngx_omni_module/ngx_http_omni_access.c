
/*
 * Omni gateway module: the per-request decision, in the preaccess phase.
 * Strip identity headers, authenticate (ngx_http_omni_jwt.c, or an API
 * key resolved in Redis), authorize roles (ngx_http_omni_rbac.c), make the
 * one Redis round trip (ngx_http_omni_limit.c), inject the identity. The
 * decision is taken once per main request: its context outlives internal
 * redirects.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_http_omni_module.h"


static ngx_http_omni_ctx_t *ngx_http_omni_create_ctx(ngx_http_request_t *r);
static void ngx_http_omni_ctx_cleanup(void *data);
static ngx_int_t ngx_http_omni_decide(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
static ngx_int_t ngx_http_omni_redirected(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
static ngx_int_t ngx_http_omni_after_redis(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
static ngx_int_t ngx_http_omni_complete(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
static ngx_int_t ngx_http_omni_authorize(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);
static ngx_uint_t ngx_http_omni_needs_credentials(
    ngx_http_omni_loc_conf_t *olcf);
static ngx_uint_t ngx_http_omni_find_apikey(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *key);


/* The worker mints API keys with this prefix; a JWT never has it (its
 * first segment is base64url of "{"), so "Authorization: Bearer omk_..."
 * (how the OpenAI SDK sends a key) is unambiguous. */
static ngx_str_t  ngx_http_omni_apikey_prefix = ngx_string("omk_");


ngx_int_t
ngx_http_omni_access_handler(ngx_http_request_t *r)
{
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    ctx = ngx_http_omni_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_omni_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    switch (ctx->state) {

    case NGX_HTTP_OMNI_STATE_START:
        return ngx_http_omni_decide(r, olcf, ctx);

    case NGX_HTTP_OMNI_STATE_REDIS:
        return NGX_AGAIN;

    case NGX_HTTP_OMNI_STATE_REPLIED:
        ctx->state = NGX_HTTP_OMNI_STATE_DONE;
        return ngx_http_omni_after_redis(r, olcf, ctx);

    default: /* NGX_HTTP_OMNI_STATE_DONE */
        return ngx_http_omni_redirected(r, olcf, ctx);
    }
}


/*
 * The main request's context. An internal redirect zeroes every module's
 * context; ours lives on as the data of its pool cleanup and is found
 * there again, as the realip module finds its own.
 */

ngx_http_omni_ctx_t *
ngx_http_omni_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_omni_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);

    if (ctx != NULL || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_omni_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_omni_module);
            return ctx;
        }
    }

    return NULL;
}


static ngx_http_omni_ctx_t *
ngx_http_omni_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_omni_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_omni_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_omni_ctx_t));

    cln->handler = ngx_http_omni_ctx_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_omni_module);

    return ctx;
}


static void
ngx_http_omni_ctx_cleanup(void *data)
{
    ngx_http_omni_ctx_t  *ctx = data;

    ngx_http_omni_limit_abandon(ctx);
}


static ngx_int_t
ngx_http_omni_decide(ngx_http_request_t *r, ngx_http_omni_loc_conf_t *olcf,
    ngx_http_omni_ctx_t *ctx)
{
    ngx_int_t    rc;
    ngx_str_t    token, apikey;
    ngx_uint_t   bearer_key;
    const char  *why;

    ctx->state = NGX_HTTP_OMNI_STATE_DONE;

    ngx_str_null(&apikey);
    bearer_key = 0;

    if (olcf->auth & NGX_HTTP_OMNI_AUTH_APIKEY) {
        bearer_key = ngx_http_omni_find_apikey(r, olcf, &apikey);
    }

    /* a key presented as a bearer credential stays here too, and is not
     * then taken for a token */
    if (bearer_key && ngx_http_omni_headers_remove_authorization(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* SPEC rule 3: identity headers come from the gateway only; the API
     * key, read above, stays here */
    if ((olcf->headers || (olcf->auth & NGX_HTTP_OMNI_AUTH_APIKEY))
        && ngx_http_omni_headers_strip(r, olcf) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (olcf->auth == NGX_HTTP_OMNI_AUTH_OFF && olcf->limits == NULL) {
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
        rc = ngx_http_omni_jwt_find_token(r, olcf, &token);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (rc == NGX_OK) {
        rc = ngx_http_omni_jwt_verify(r, olcf, ctx, &token, &why);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_HTTP_OMNI_ALLOW) {
            return ngx_http_omni_reject(r, ctx, rc, why);
        }

        ctx->authenticated = 1;

        rc = ngx_http_omni_authorize(r, olcf, ctx);

        if (rc != NGX_DECLINED) {
            return rc;
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

    } else if (ngx_http_omni_needs_credentials(olcf)) {
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_MISSING,
                                    (olcf->auth & NGX_HTTP_OMNI_AUTH_APIKEY)
                                    ? "no bearer token or API key in the "
                                      "request"
                                    : "no bearer token in the request");
    }

    if (ngx_http_omni_limit_needed(r, olcf, ctx)) {
        rc = ngx_http_omni_limit_start(r, olcf, ctx);

        if (rc == NGX_AGAIN) {
            ctx->state = NGX_HTTP_OMNI_STATE_REDIS;
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* Redis cannot be asked: the fail mode decides at once */
        ngx_http_omni_metrics_redis(ctx->failed);

        return ngx_http_omni_after_redis(r, olcf, ctx);
    }

    return ngx_http_omni_complete(r, olcf, ctx);
}


/*
 * Back in the phase after an internal redirect (error_page, try_files, a
 * named location): the request has been decided. The verified identity
 * stands and no limit is charged again, as with limit_req; the roles this
 * location requires are checked against it. A request let through without
 * credentials that now meets a location wanting them is decided here.
 */

static ngx_int_t
ngx_http_omni_redirected(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    if (ctx->authenticated) {
        return ngx_http_omni_authorize(r, olcf, ctx);
    }

    if (!ngx_http_omni_needs_credentials(olcf)) {
        return NGX_DECLINED;
    }

    ngx_memzero(ctx, sizeof(ngx_http_omni_ctx_t));

    return ngx_http_omni_decide(r, olcf, ctx);
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
    u_char     *comma;
    ngx_int_t   rc;

    if (ctx->apikey.len && !ctx->failed) {
        ctx->values[NGX_HTTP_OMNI_F_USER_ID] = ctx->key_fields[1];
        ctx->values[NGX_HTTP_OMNI_F_USERNAME] = ctx->key_fields[2];
        ctx->values[NGX_HTTP_OMNI_F_ROLES] = ctx->key_fields[3];
        ctx->values[NGX_HTTP_OMNI_F_ROLE] = ctx->key_fields[3];
        /* the key's id is its token id ($omni_jti) */
        ctx->values[NGX_HTTP_OMNI_F_JTI] = ctx->key_fields[0];

        comma = ngx_strlchr(ctx->key_fields[3].data,
                            ctx->key_fields[3].data + ctx->key_fields[3].len,
                            ',');
        if (comma) {
            ctx->values[NGX_HTTP_OMNI_F_ROLE].len =
                                            comma - ctx->key_fields[3].data;
        }

        ctx->authenticated = 1;
        ctx->via_apikey = 1;

        rc = ngx_http_omni_authorize(r, olcf, ctx);

        if (rc != NGX_DECLINED) {
            return rc;
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


/* The verified identity against the location's roles: NGX_DECLINED to go
 * on, or the rejection. */

static ngx_int_t
ngx_http_omni_authorize(ngx_http_request_t *r, ngx_http_omni_loc_conf_t *olcf,
    ngx_http_omni_ctx_t *ctx)
{
    if (ngx_http_omni_rbac_allows(olcf, &ctx->values[NGX_HTTP_OMNI_F_ROLES]))
    {
        return NGX_DECLINED;
    }

    return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_INSUFFICIENT_ROLE,
                                "a required role is missing");
}


/* "optional" lets a request without credentials through, unless roles are
 * required here */

static ngx_uint_t
ngx_http_omni_needs_credentials(ngx_http_omni_loc_conf_t *olcf)
{
    return olcf->auth != NGX_HTTP_OMNI_AUTH_OFF
           && !((olcf->auth & NGX_HTTP_OMNI_AUTH_OPTIONAL)
                && olcf->require_roles == NULL);
}


/*
 * The API key: the first non-empty copy of its header, else a bearer
 * credential with the key prefix, else "". Returns 1 when Authorization
 * holds such a credential (used or not: it is never a token).
 */

static ngx_uint_t
ngx_http_omni_find_apikey(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *key)
{
    ngx_str_t         v;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
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
            break;
        }
    }

    if (r->headers_in.authorization == NULL) {
        return 0;
    }

    v = r->headers_in.authorization->value;

    if (v.len <= sizeof("Bearer ") - 1 + ngx_http_omni_apikey_prefix.len
        || ngx_strncasecmp(v.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) != 0)
    {
        return 0;
    }

    v.data += sizeof("Bearer ") - 1;
    v.len -= sizeof("Bearer ") - 1;

    if (ngx_strncmp(v.data, ngx_http_omni_apikey_prefix.data,
                    ngx_http_omni_apikey_prefix.len) != 0)
    {
        return 0;
    }

    if (key->len == 0) {
        *key = v;
    }

    return 1;
}
