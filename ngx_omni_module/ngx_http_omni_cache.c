
/*
 * Omni gateway module: "omni_jwt_cache", verified tokens in shared memory.
 * Keyed by SHA-256(location policy, token); an entry holds only the fields
 * headers and variables need and expires no later than the token. LRU
 * eviction when the zone is full, as in ngx_http_limit_req_module.
 *
 * In front of it, each worker process keeps the tokens it met last in a
 * table of its own, matched on the whole token and the location's
 * configuration, with the same expiry: a hit there costs no digest, no
 * lock and no shared cache line. An entry is only ever made from a verified
 * token or a live shared entry, so it is never older news than the shared
 * cache; revocation is not cached at all (Redis is asked per request).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_http_omni_module.h"


/* a power of two; tokens longer than the limit go to the shared cache only,
 * so a worker's table holds at most 4096 * 2 KB */
#define NGX_HTTP_OMNI_LOCAL_SLOTS      4096
#define NGX_HTTP_OMNI_LOCAL_MAX_TOKEN  2048


typedef struct {
    u_char                     *data;           /* token, then values */
    void                       *olcf;
    uint64_t                    salt;           /* the load's, in part */
    int64_t                     expires;        /* ms since the epoch */
    uint32_t                    hash;
    uint32_t                    token_len;
    uint32_t                    len;
} ngx_http_omni_local_slot_t;


static ngx_int_t ngx_http_omni_cache_values(ngx_http_request_t *r,
    u_char *p, size_t len, ngx_http_omni_ctx_t *ctx);
static size_t ngx_http_omni_cache_encode(u_char *p,
    ngx_http_omni_ctx_t *ctx);
static ngx_http_omni_local_slot_t *ngx_http_omni_local_slot(void *olcf,
    ngx_str_t *token, uint32_t *hash);
static void ngx_http_omni_local_put(void *olcf, uint64_t salt,
    ngx_str_t *token, u_char *values, size_t len, int64_t expires);


static ngx_http_omni_local_slot_t  *ngx_http_omni_local;


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
 * Copies a hit's fields into ctx: from this worker's table, else from the
 * shared zone, whose key (SHA-256 of the salt, the location's configuration,
 * its key set's version and the token) is then left in key for
 * ngx_http_omni_cache_put(). NGX_OK on a live hit, NGX_DECLINED on a miss
 * (an expired entry is removed), NGX_ERROR on allocation failure.
 */

ngx_int_t
ngx_http_omni_cache_get(ngx_http_request_t *r, void *olcf, ngx_str_t *token,
    ngx_http_omni_ctx_t *ctx, u_char *key)
{
    u_char                      *p;
    u_char                       buf[16 + sizeof(void *) + sizeof(uint64_t)
                                     + OMNI_JWT_MAX_TOKEN];
    size_t                       len;
    int64_t                      now, expires;
    uint32_t                     hash;
    uint64_t                     salt, version;
    ngx_http_omni_shm_t         *cache;
    ngx_http_omni_shm_entry_t   *e;
    ngx_http_omni_main_conf_t   *omcf;
    ngx_http_omni_local_slot_t  *slot;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    now = ngx_http_omni_shm_now();

    /* a configuration of a later load (nginx -s reload in a single
     * process) may sit where this one did: the salt tells them apart */
    ngx_memcpy(&salt, omcf->cache_salt, sizeof(salt));

    /* a JWKS file read again: its verifications made with the keys read
     * before do not count, so a key taken out stops passing at once */
    version = ngx_http_omni_keys_version(olcf);
    salt ^= version;

    slot = ngx_http_omni_local_slot(olcf, token, &hash);

    if (slot != NULL && slot->data != NULL && slot->hash == hash
        && slot->olcf == olcf && slot->salt == salt
        && slot->token_len == token->len
        && ngx_memcmp(slot->data, token->data, token->len) == 0)
    {
        /* like exp, an entry is not accepted from the second it names */
        if (slot->expires > now) {
            return ngx_http_omni_cache_values(r, slot->data + token->len,
                                              slot->len - token->len, ctx);
        }

        ngx_free(slot->data);
        slot->data = NULL;
    }

    cache = omcf->cache_zone->data;

    /* the location's configuration is part of the key: the same token may
     * be valid under one location's checks and not another's */
    p = ngx_cpymem(buf, omcf->cache_salt, sizeof(omcf->cache_salt));
    p = ngx_cpymem(p, &olcf, sizeof(olcf));
    p = ngx_cpymem(p, &version, sizeof(version));
    p = ngx_cpymem(p, token->data, token->len);
    SHA256(buf, p - buf, key);

    ngx_shmtx_lock(&cache->shpool->mutex);

    e = ngx_http_omni_shm_get(cache, key, SHA256_DIGEST_LENGTH, now);

    if (e == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    len = e->value_len;
    expires = e->expires;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_ERROR;
    }

    ngx_memcpy(p, ngx_http_omni_shm_value(e), len);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (ngx_http_omni_cache_values(r, p, len, ctx) != NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_http_omni_local_put(olcf, salt, token, p, len, expires);

    return NGX_OK;
}


/*
 * ctx->values from an entry's bytes: per field, a uint16_t length then
 * the bytes. The values are copied into the request's pool unless p is
 * there already. NGX_DECLINED when the entry was written under another
 * field list.
 */

static ngx_int_t
ngx_http_omni_cache_values(ngx_http_request_t *r, u_char *p, size_t len,
    ngx_http_omni_ctx_t *ctx)
{
    u_char      *last, *copy;
    uint16_t     n;
    ngx_uint_t   i;

    copy = ngx_pnalloc(r->pool, len);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(copy, p, len) - len;
    last = p + len;

    for (i = 0; i < ctx->nvalues; i++) {
        if (p + sizeof(uint16_t) > last) {
            return NGX_DECLINED;
        }

        ngx_memcpy(&n, p, sizeof(uint16_t));
        p += sizeof(uint16_t);

        if (p + n > last) {
            return NGX_DECLINED;
        }

        ctx->values[i].data = p;
        ctx->values[i].len = n;
        p += n;
    }

    return NGX_OK;
}


static size_t
ngx_http_omni_cache_encode(u_char *p, ngx_http_omni_ctx_t *ctx)
{
    u_char      *start;
    uint16_t     n;
    ngx_uint_t   i;

    start = p;

    for (i = 0; i < ctx->nvalues; i++) {
        n = (uint16_t) ctx->values[i].len;
        ngx_memcpy(p, &n, sizeof(uint16_t));
        p += sizeof(uint16_t);
        p = ngx_cpymem(p, ctx->values[i].data, n);
    }

    return p - start;
}


/*
 * A freshly verified token, expiring at expires (unix s), into the shared
 * zone under key (from ngx_http_omni_cache_get()) and this worker's table.
 */

void
ngx_http_omni_cache_put(ngx_http_request_t *r, void *olcf, ngx_str_t *token,
    u_char *key, time_t expires, ngx_http_omni_ctx_t *ctx)
{
    u_char                     *p;
    size_t                      len;
    int64_t                     now;
    uint64_t                    salt;
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
    e = ngx_http_omni_shm_get(cache, key, SHA256_DIGEST_LENGTH, now);

    if (e == NULL) {
        e = ngx_http_omni_shm_add(cache, key, SHA256_DIGEST_LENGTH, len,
                                  (int64_t) expires * 1000, now);
        if (e != NULL) {
            (void) ngx_http_omni_cache_encode(ngx_http_omni_shm_value(e),
                                              ctx);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return;
    }

    (void) ngx_http_omni_cache_encode(p, ctx);

    ngx_memcpy(&salt, omcf->cache_salt, sizeof(salt));
    salt ^= ngx_http_omni_keys_version(olcf);

    ngx_http_omni_local_put(olcf, salt, token, p, len,
                            (int64_t) expires * 1000);
}


/* The token's slot in this worker's table (made on first use), or NULL:
 * no table, or a token too long for it. */

static ngx_http_omni_local_slot_t *
ngx_http_omni_local_slot(void *olcf, ngx_str_t *token, uint32_t *hash)
{
    size_t     n;
    uint32_t   h;
    uintptr_t  conf;

    if (token->len > NGX_HTTP_OMNI_LOCAL_MAX_TOKEN) {
        return NULL;
    }

    if (ngx_http_omni_local == NULL) {
        ngx_http_omni_local = ngx_calloc(NGX_HTTP_OMNI_LOCAL_SLOTS
                                         * sizeof(ngx_http_omni_local_slot_t),
                                         ngx_cycle->log);
        if (ngx_http_omni_local == NULL) {
            return NULL;
        }
    }

    /* the tail is the signature: a JWT's least predictable bytes; the
     * slot is only a place, a hit compares the whole token */
    n = ngx_min(token->len, 64);
    h = ngx_murmur_hash2(token->data + token->len - n, n);

    conf = (uintptr_t) olcf;
    h ^= (uint32_t) (conf >> 4) * 0x9e3779b1;

    *hash = h;

    return &ngx_http_omni_local[h & (NGX_HTTP_OMNI_LOCAL_SLOTS - 1)];
}


static void
ngx_http_omni_local_put(void *olcf, uint64_t salt, ngx_str_t *token,
    u_char *values, size_t len, int64_t expires)
{
    u_char                      *p;
    uint32_t                     hash;
    ngx_http_omni_local_slot_t  *slot;

    slot = ngx_http_omni_local_slot(olcf, token, &hash);
    if (slot == NULL) {
        return;
    }

    p = ngx_alloc(token->len + len, ngx_cycle->log);
    if (p == NULL) {
        return;
    }

    if (slot->data) {
        ngx_free(slot->data);
    }

    ngx_memcpy(ngx_cpymem(p, token->data, token->len), values, len);

    slot->data = p;
    slot->olcf = olcf;
    slot->salt = salt;
    slot->expires = expires;
    slot->hash = hash;
    slot->token_len = (uint32_t) token->len;
    slot->len = (uint32_t) (token->len + len);
}
