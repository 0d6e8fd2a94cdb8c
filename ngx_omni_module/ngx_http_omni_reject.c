
/*
 * Omni gateway module: a rejection. 401, 403, 429 or 503 with a JSON body
 * {"error", "message"} and, for 401 and 403, an RFC 6750 challenge.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


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