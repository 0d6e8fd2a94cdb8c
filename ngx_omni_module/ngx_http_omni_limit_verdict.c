
/*
 * Omni gateway module: what the round trip's answer does to a request.
 * A revoked token or a bad API key is rejected, an exhausted limit gets
 * 429 with Retry-After, a pass carries the rate-limit headers of SPEC 5;
 * without an answer "omni_redis_fail" decides.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


static ngx_int_t ngx_http_omni_limit_headers(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx);


/*
 * The request is back with Redis's verdict (or a failure). Returns
 * NGX_DECLINED to go on, or what the access handler returns for a
 * rejection.
 */

ngx_int_t
ngx_http_omni_limit_finish(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    if (ctx->jti_unknown) {
        /* Redis answers, but could not say whether the token is revoked;
         * the fail modes are for a Redis out of reach */
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_UNAVAILABLE,
                                    "token revocation cannot be checked "
                                    "now");
    }

    if (ctx->failed && olcf->redis_fail == NGX_HTTP_OMNI_FAIL_LOCAL
        && !ctx->apikey.len)
    {
        /* this node enforces its share of every limit on its own; a jti
         * was checked when Redis answered at all, else the revocation
         * list is out of reach */
        ngx_http_omni_metrics_fail(NGX_HTTP_OMNI_FAIL_LOCAL);

        if (ngx_http_omni_local_check(r, olcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->failed = 0;
    }

    if (ctx->failed) {
        switch (olcf->redis_fail) {

        case NGX_HTTP_OMNI_FAIL_CLOSED:
            ngx_http_omni_metrics_fail(NGX_HTTP_OMNI_FAIL_CLOSED);
            return ngx_http_omni_reject(r, ctx,
                                        NGX_HTTP_OMNI_DENY_UNAVAILABLE,
                                        "the rate limiter is unavailable");

        default:
            /* open: an API key cannot be resolved without Redis */
            ngx_http_omni_metrics_fail(NGX_HTTP_OMNI_FAIL_OPEN);

            if (ctx->apikey.len) {
                return ngx_http_omni_reject(r, ctx,
                                            NGX_HTTP_OMNI_DENY_UNAVAILABLE,
                                            "API keys cannot be checked now");
            }

            return NGX_DECLINED;
        }
    }

    switch (ctx->verdict) {

    case 2:
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_REVOKED,
                                    "the token has been revoked");

    case 3:
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_BAD_APIKEY,
                                    "unknown API key");

    case 4:
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_BAD_APIKEY,
                                    "expired API key");

    case 0:
        if (ngx_http_omni_limit_headers(r, olcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%L", ctx->retry_after < 0
                                   ? (int64_t) 86400
                                   : (ctx->retry_after + 999) / 1000)
                       - p;

        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_RATE_LIMITED,
                                    "too many requests");

    default:
        if (ngx_http_omni_limit_headers(r, olcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }
}


/* The rate-limit headers of SPEC 5 for the tightest limit. */

static ngx_int_t
ngx_http_omni_limit_headers(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    u_char                 *p;
    time_t                  reset;
    ngx_str_t               values[5];
    ngx_uint_t              i;
    ngx_table_elt_t        *h;
    ngx_http_omni_limit_t  *limit;

    static ngx_str_t  names[] = {
        ngx_string("X-RateLimit-Limit"),
        ngx_string("X-RateLimit-Remaining"),
        ngx_string("X-RateLimit-Reset"),
        ngx_string("RateLimit-Policy"),
        ngx_string("RateLimit")
    };

    if (olcf->limits == NULL || ctx->tightest < 1
        || (ngx_uint_t) ctx->tightest > olcf->limits->nelts)
    {
        return NGX_OK;
    }

    limit = (ngx_http_omni_limit_t *) olcf->limits->elts + ctx->tightest - 1;

    reset = (time_t) ((ctx->reset + 999) / 1000);

    p = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN + NGX_TIME_T_LEN
                             + sizeof("limit=, remaining=, reset=") - 1
                             + limit->capacity.len + NGX_INT64_LEN
                             + NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    values[0] = limit->capacity;

    values[1].data = p;
    p = ngx_sprintf(p, "%L", ctx->remaining);
    values[1].len = p - values[1].data;

    values[2].data = p;
    p = ngx_sprintf(p, "%T", reset);
    values[2].len = p - values[2].data;

    values[3] = limit->policy;

    values[4].data = p;
    p = ngx_sprintf(p, "limit=%V, remaining=%V, reset=%V", &values[0],
                    &values[1], &values[2]);
    values[4].len = p - values[4].data;

    for (i = 0; i < 5; i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = names[i];
        h->value = values[i];
    }

    return NGX_OK;
}
