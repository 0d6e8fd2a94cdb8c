
/*
 * Omni gateway module: identity headers. Every header the gateway owns
 * is removed from the client's request (any case, every copy): X-User-*,
 * X-Token-*, every header an omni_claim names anywhere in the
 * configuration, and, where the module reads it, the API key. Then the
 * verified values are added, so the upstream sees exactly one copy of
 * each, set by the gateway.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


/* SPEC rule 3: no client-sent X-User-* reaches the upstream, whatever
 * follows the prefix; X-Token-* tell the worker about the token */
static ngx_str_t  ngx_http_omni_owned_prefixes[] = {
    ngx_string("x-user-"),
    ngx_string("x-token-")
};


static ngx_uint_t
ngx_http_omni_is_owned(ngx_http_request_t *r, ngx_http_omni_loc_conf_t *olcf,
    ngx_table_elt_t *h)
{
    ngx_str_t                  *name;
    ngx_uint_t                  i;
    ngx_http_omni_main_conf_t  *omcf;

    if ((olcf->auth & NGX_HTTP_OMNI_AUTH_APIKEY)
        && h->key.len == olcf->apikey_header.len
        && ngx_strncasecmp(h->key.data, olcf->apikey_header.data,
                           h->key.len) == 0)
    {
        return 1;
    }

    if (!olcf->headers) {
        return 0;
    }

    for (i = 0; i < sizeof(ngx_http_omni_owned_prefixes)
                    / sizeof(ngx_str_t); i++)
    {
        name = &ngx_http_omni_owned_prefixes[i];

        if (h->key.len >= name->len
            && ngx_strncasecmp(h->key.data, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    /* a claim header of another location is no less forgeable here */
    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    name = omcf->claim_headers.elts;

    for (i = 0; i < omcf->claim_headers.nelts; i++) {
        if (h->key.len == name[i].len
            && ngx_strncasecmp(h->key.data, name[i].data, name[i].len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


typedef ngx_uint_t (*ngx_http_omni_header_pt)(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_table_elt_t *h);


/*
 * ngx_list_t cannot delete: when a header is to go, the list is rebuilt
 * without it. The old elements stay in the pool, so pointers nginx keeps
 * to known headers (Host, Authorization) remain valid.
 */

static ngx_int_t
ngx_http_omni_headers_drop(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_header_pt drop)
{
    ngx_uint_t        i, found;
    ngx_list_t        headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *copy;

    found = 0;
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

        if (drop(r, olcf, &h[i])) {
            found = 1;
            break;
        }
    }

    if (!found) {
        return NGX_OK;
    }

    if (ngx_list_init(&headers, r->pool, 20, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

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

        if (drop(r, olcf, &h[i])) {
            /* the name alone: the value may be a credential */
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "omni: removed header \"%V\"", &h[i].key);
            continue;
        }

        copy = ngx_list_push(&headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = h[i];
    }

    r->headers_in.headers = headers;

    /* the copied list's first part moved: so must its last pointer */
    if (headers.last == &headers.part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_omni_headers_strip(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf)
{
    return ngx_http_omni_headers_drop(r, olcf, ngx_http_omni_is_owned);
}


/* A claim value may hold anything; a header value must not hold CR, LF. */

static ngx_uint_t
ngx_http_omni_header_safe(ngx_str_t *value)
{
    u_char  *p, *last;

    last = value->data + value->len;

    for (p = value->data; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_http_omni_headers_inject(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    ngx_uint_t              i;
    ngx_table_elt_t        *h;
    ngx_http_omni_claim_t  *f;

    f = ctx->fields->elts;

    for (i = 0; i < ctx->nvalues; i++) {

        if (f[i].header.len == 0 || ctx->values[i].len == 0) {
            continue;
        }

        if (!ngx_http_omni_header_safe(&ctx->values[i])) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "omni: claim for \"%V\" holds control characters,"
                          " header not set", &f[i].header);
            continue;
        }

        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->key = f[i].header;
        h->value = ctx->values[i];
        h->lowcase_key = f[i].lowcase.data;
        h->hash = f[i].hash;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_omni_is_authorization(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_table_elt_t *h)
{
    return h->key.len == sizeof("Authorization") - 1
           && ngx_strncasecmp(h->key.data, (u_char *) "Authorization",
                              sizeof("Authorization") - 1) == 0;
}


/* With "authorization=remove" the verified token stays at the gateway. */

ngx_int_t
ngx_http_omni_headers_remove_authorization(ngx_http_request_t *r)
{
    if (ngx_http_omni_headers_drop(r, NULL, ngx_http_omni_is_authorization)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_in.authorization = NULL;

    return NGX_OK;
}
