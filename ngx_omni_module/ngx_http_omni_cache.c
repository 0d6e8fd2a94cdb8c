
/*
 * Omni gateway module: "omni_jwt_cache", verified tokens in shared memory.
 * Keyed by SHA-256(location policy, token); an entry holds only the fields
 * headers and variables need and expires no later than the token. LRU
 * eviction when the zone is full, as in ngx_http_limit_req_module.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_http_omni_module.h"


char *
ngx_http_omni_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *omcf = conf;

    u_char                 *p;
    ssize_t                 size;
    ngx_str_t              *value, name, s;
    ngx_uint_t              i;
    ngx_http_omni_shm_t    *cache;

    if (omcf->cache_zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ngx_str_null(&name);
    size = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\" in \"%V\": "
                                   "expected zone=NAME:SIZE", &value[i],
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\" in \"%V\"",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" of \"%V\" is too small: at "
                                   "least %uzk", &name, &cmd->name,
                                   8 * ngx_pagesize / 1024);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            omcf->cache_ttl = ngx_parse_time(&s, 1);

            if (omcf->cache_ttl == (time_t) NGX_ERROR
                || omcf->cache_ttl == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid ttl \"%V\" in \"%V\"",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"", &value[i],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (omcf->cache_ttl == NGX_CONF_UNSET) {
        omcf->cache_ttl = 300;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_shm_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    omcf->cache_zone = ngx_shared_memory_add(cf, &name, size,
                                             &ngx_http_omni_module);
    if (omcf->cache_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (omcf->cache_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    omcf->cache_zone->init = ngx_http_omni_shm_init_zone;
    omcf->cache_zone->data = cache;

    return NGX_CONF_OK;
}


/*
 * Copies a hit's fields into ctx. NGX_OK on a live hit, NGX_DECLINED on a
 * miss (an expired entry is removed), NGX_ERROR on allocation failure.
 */

ngx_int_t
ngx_http_omni_cache_get(ngx_http_request_t *r, u_char *key,
    ngx_http_omni_ctx_t *ctx)
{
    u_char                     *p, *last;
    uint16_t                    len;
    ngx_uint_t                  i;
    ngx_http_omni_shm_t        *cache;
    ngx_http_omni_shm_entry_t  *e;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    cache = omcf->cache_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* like exp, an entry is not accepted from the second it names */
    e = ngx_http_omni_shm_get(cache, key, SHA256_DIGEST_LENGTH,
                              ngx_http_omni_shm_now());

    if (e == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, e->value_len);
    if (p == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_ERROR;
    }

    ngx_memcpy(p, ngx_http_omni_shm_value(e), e->value_len);
    last = p + e->value_len;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    /* per field, a uint16_t length then the bytes */

    for (i = 0; i < ctx->nvalues; i++) {
        if (p + sizeof(uint16_t) > last) {
            /* written under another field list: treat as a miss */
            return NGX_DECLINED;
        }

        ngx_memcpy(&len, p, sizeof(uint16_t));
        p += sizeof(uint16_t);

        if (p + len > last) {
            return NGX_DECLINED;
        }

        ctx->values[i].data = p;
        ctx->values[i].len = len;
        p += len;
    }

    return NGX_OK;
}


void
ngx_http_omni_cache_put(ngx_http_request_t *r, u_char *key, time_t expires,
    ngx_http_omni_ctx_t *ctx)
{
    u_char                     *p;
    size_t                      len;
    int64_t                     now;
    uint16_t                    vlen;
    ngx_uint_t                  i;
    ngx_http_omni_shm_t        *cache;
    ngx_http_omni_shm_entry_t  *e;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    cache = omcf->cache_zone->data;

    len = 0;

    for (i = 0; i < ctx->nvalues; i++) {
        if (ctx->values[i].len > 0xffff) {
            return;
        }

        len += sizeof(uint16_t) + ctx->values[i].len;
    }

    now = ngx_http_omni_shm_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* another worker may have verified the same token meanwhile */
    if (ngx_http_omni_shm_get(cache, key, SHA256_DIGEST_LENGTH, now) != NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    e = ngx_http_omni_shm_add(cache, key, SHA256_DIGEST_LENGTH, len,
                              (int64_t) expires * 1000, now);
    if (e == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    p = ngx_http_omni_shm_value(e);

    for (i = 0; i < ctx->nvalues; i++) {
        vlen = (uint16_t) ctx->values[i].len;
        ngx_memcpy(p, &vlen, sizeof(uint16_t));
        p += sizeof(uint16_t);
        p = ngx_cpymem(p, ctx->values[i].data, vlen);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}
