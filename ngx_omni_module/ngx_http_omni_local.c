
/*
 * Omni gateway module: "omni_redis_fail local". While Redis cannot answer,
 * each limit is enforced by this node alone, in shared memory, with the
 * same GCRA code (omni_gcra.c) at 1/N of its rate and burst. State is the
 * key's TAT, under the same key name Redis uses, evicted when it expires
 * or, when the zone is full, least recently used first
 * (ngx_http_omni_shm.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


#define NGX_HTTP_OMNI_LOCAL_SIZE  (1024 * 1024)


ngx_int_t
ngx_http_omni_local_init_conf(ngx_conf_t *cf)
{
    ngx_str_t                   name = ngx_string("omni_limits_local");
    ngx_shm_zone_t             *zone;
    ngx_http_omni_shm_t        *local;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

    if (!omcf->redis_configured) {
        return NGX_OK;
    }

    local = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_shm_t));
    if (local == NULL) {
        return NGX_ERROR;
    }

    zone = ngx_shared_memory_add(cf, &name, NGX_HTTP_OMNI_LOCAL_SIZE,
                                 &ngx_http_omni_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_omni_shm_init_zone;
    zone->data = local;
    omcf->local_zone = zone;

    return NGX_OK;
}


/*
 * Decides the request's limits on this node. The keys are the Redis keys
 * already built in ctx->argv (KEYS[3..]); the state of each is its TAT.
 * Fills ctx like a Redis reply; NGX_ERROR only on invalid limits.
 */

ngx_int_t
ngx_http_omni_local_check(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    size_t                      i, n;
    u_char                     *key;
    int64_t                     now, now_ms;
    struct timeval              tv;
    omni_gcra_item_t            items[NGX_HTTP_OMNI_MAX_LIMITS];
    omni_gcra_result_t          res;
    ngx_http_omni_shm_t        *local;
    ngx_http_omni_limit_t      *limits;
    ngx_http_omni_shm_entry_t  *e;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    local = omcf->local_zone->data;

    n = olcf->limits ? olcf->limits->nelts : 0;
    limits = n ? olcf->limits->elts : NULL;

    /* the GCRA needs microseconds: nginx's cached time moves once per
     * event-loop pass, and a pass that serves a batch of requests would
     * see them all arrive at the same instant */
    ngx_gettimeofday(&tv);
    now = (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
    now_ms = now / 1000;

    ngx_shmtx_lock(&local->shpool->mutex);

    for (i = 0; i < n; i++) {
        if (omni_gcra_limit_per_node(&limits[i].zone->limit,
                                     (int64_t) olcf->redis_nodes,
                                     &items[i].limit)
            != 0)
        {
            items[i].limit = limits[i].zone->limit;
        }

        items[i].cost = (int64_t) limits[i].cost;
        items[i].tat = 0;

        key = (u_char *) ctx->argv[5 + i];
        e = ngx_http_omni_shm_get(local, key, ctx->argvlen[5 + i], now_ms);

        if (e != NULL) {
            ngx_memcpy(&items[i].tat, ngx_http_omni_shm_value(e),
                       sizeof(int64_t));
        }
    }

    if (omni_gcra_check_all(items, n, now, &res) != 0) {
        ngx_shmtx_unlock(&local->shpool->mutex);
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {

        if (items[i].ttl_us <= 0) {
            continue;
        }

        /* looked up again: storing one state may have evicted another */
        key = (u_char *) ctx->argv[5 + i];
        e = ngx_http_omni_shm_get(local, key, ctx->argvlen[5 + i], now_ms);

        if (e == NULL) {
            e = ngx_http_omni_shm_add(local, key, ctx->argvlen[5 + i],
                                      sizeof(int64_t), 0, now_ms);
            if (e == NULL) {
                continue;
            }
        }

        ngx_memcpy(ngx_http_omni_shm_value(e), &items[i].tat,
                   sizeof(int64_t));
        e->expires = now_ms + (items[i].ttl_us + 999) / 1000;
    }

    ngx_shmtx_unlock(&local->shpool->mutex);

    ctx->verdict = res.allowed;
    ctx->remaining = res.remaining;
    ctx->retry_after = omni_gcra_ms(res.retry_after_us);
    ctx->reset = omni_gcra_ms(res.reset_us);
    ctx->tightest = res.index + 1;

    return NGX_OK;
}
