
/*
 * Omni gateway module: the "omni_status" content handler, a JSON report of
 * what this nginx worker runs and what the module has configured, and the
 * helpers every response of the module is sent with.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


static ngx_str_t  ngx_http_omni_json_type = ngx_string("application/json");

static ngx_str_t  ngx_http_omni_status_not_allowed = ngx_string(
    "{\"error\":\"method_not_allowed\","
    "\"message\":\"omni_status answers GET and HEAD only\"}\n");


ngx_int_t
ngx_http_omni_status_handler(ngx_http_request_t *r)
{
    u_char                     *p;
    size_t                      len;
    ngx_int_t                   rc;
    ngx_str_t                   body;
    ngx_uint_t                  i;
    ngx_core_conf_t            *ccf;
    ngx_table_elt_t            *h;
    ngx_atomic_uint_t           decisions[NGX_HTTP_OMNI_NDECISIONS];
    ngx_atomic_uint_t           hits, misses;
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

        return ngx_http_omni_send_json(r, NGX_HTTP_NOT_ALLOWED,
                                       &ngx_http_omni_status_not_allowed);
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    ngx_http_omni_metrics_snapshot(decisions, &hits, &misses);

    len = 1024 + NGX_HTTP_OMNI_NDECISIONS * (32 + NGX_ATOMIC_T_LEN)
          + (omcf->cache_zone ? omcf->cache_zone->shm.name.len : 0)
          + omcf->redis_addr.len;

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body.data,
                    "{\"module\":\"ngx_http_omni_module\","
                    "\"version\":\"" NGX_HTTP_OMNI_VERSION "\","
                    "\"nginx\":\"" NGINX_VERSION "\","
                    "\"pid\":%P,"
                    "\"worker_processes\":%i,"
                    "\"configured\":{"
                    "\"status_locations\":%ui,"
                    "\"jwt_locations\":%ui,"
                    "\"keys_loaded\":%ui,"
                    "\"jwt_cache\":",
                    ngx_pid, ccf->worker_processes,
                    omcf->status_locations, omcf->jwt_locations,
                    omcf->keys_loaded);

    if (omcf->cache_zone) {
        p = ngx_sprintf(p, "{\"zone\":\"%V\",\"size\":%uz,\"ttl\":%T}",
                        &omcf->cache_zone->shm.name,
                        omcf->cache_zone->shm.size, omcf->cache_ttl);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    if (omcf->redis_configured) {
        p = ngx_sprintf(p, ",\"redis\":{\"addr\":\"%V\",\"db\":%ui,"
                        "\"timeout_ms\":%M,\"connected\":%s}",
                        &omcf->redis_addr, omcf->redis_db,
                        omcf->redis_timeout,
                        ngx_http_omni_redis_connected() ? "true" : "false");

    } else {
        p = ngx_cpymem(p, ",\"redis\":null", sizeof(",\"redis\":null") - 1);
    }

    /* at configuration loads; a JWKS file read again counts in metrics */
    p = ngx_sprintf(p, "},\"key_parses\":%ui,"
                    "\"jwt_cache_lookups\":{\"hits\":%uA,\"misses\":%uA},"
                    "\"decisions\":{",
                    omcf->key_parses, hits, misses);

    for (i = 0; i < NGX_HTTP_OMNI_NDECISIONS; i++) {
        p = ngx_sprintf(p, "%s\"%V\":%uA", i ? "," : "",
                        &ngx_http_omni_decision_names[i], decisions[i]);
    }

    p = ngx_cpymem(p, "}}\n", 3);

    body.len = p - body.data;

    return ngx_http_omni_send_json(r, NGX_HTTP_OK, &body);
}


ngx_int_t
ngx_http_omni_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    return ngx_http_omni_send(r, status, &ngx_http_omni_json_type, body);
}


ngx_int_t
ngx_http_omni_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *type,
    ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
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
