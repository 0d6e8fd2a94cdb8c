
/*
 * Omni gateway module: the "omni_status" content handler, a JSON report of
 * what this nginx worker runs and what the module has configured.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


static ngx_int_t ngx_http_omni_status_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_buf_t *b);


static ngx_str_t  ngx_http_omni_status_not_allowed = ngx_string(
    "{\"error\":\"method_not_allowed\","
    "\"message\":\"omni_status answers GET and HEAD only\"}\n");


ngx_int_t
ngx_http_omni_status_handler(ngx_http_request_t *r)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_core_conf_t            *ccf;
    ngx_table_elt_t            *h;
    ngx_http_omni_main_conf_t  *omcf;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "GET, HEAD");

        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = ngx_http_omni_status_not_allowed.data;
        b->last = b->pos + ngx_http_omni_status_not_allowed.len;
        b->memory = 1;

        return ngx_http_omni_status_send(r, NGX_HTTP_NOT_ALLOWED, b);
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    len = sizeof("{\"module\":\"ngx_http_omni_module\",") - 1
          + sizeof("\"version\":\"" NGX_HTTP_OMNI_VERSION "\",") - 1
          + sizeof("\"nginx\":\"" NGINX_VERSION "\",") - 1
          + sizeof("\"pid\":,") - 1 + NGX_INT64_LEN
          + sizeof("\"worker_processes\":,") - 1 + NGX_INT_T_LEN
          + sizeof("\"configured\":{") - 1
          + sizeof("\"status_locations\":") - 1 + NGX_INT_T_LEN
          + sizeof("}}\n") - 1;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
                          "{\"module\":\"ngx_http_omni_module\","
                          "\"version\":\"" NGX_HTTP_OMNI_VERSION "\","
                          "\"nginx\":\"" NGINX_VERSION "\","
                          "\"pid\":%P,"
                          "\"worker_processes\":%i,"
                          "\"configured\":{"
                          "\"status_locations\":%ui"
                          "}}\n",
                          ngx_pid, ccf->worker_processes,
                          omcf->status_locations);

    return ngx_http_omni_status_send(r, NGX_HTTP_OK, b);
}


static ngx_int_t
ngx_http_omni_status_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


char *
ngx_http_omni_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_omni_main_conf_t  *omcf;

    if (olcf->status != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    olcf->status = 1;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);
    omcf->status_locations++;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_omni_status_handler;

    return NGX_CONF_OK;
}
