
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


typedef struct {
    u_char                      color;
    u_char                      pad[3];
    uint32_t                    len;        /* of data */
    ngx_queue_t                 queue;
    time_t                      expires;
    u_char                      key[SHA256_DIGEST_LENGTH];
    /* data: per field, a uint16_t length then the bytes */
    u_char                      data[1];
} ngx_http_omni_cache_node_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;      /* most recently used first */
} ngx_http_omni_cache_sh_t;


typedef struct {
    ngx_http_omni_cache_sh_t   *sh;
    ngx_slab_pool_t            *shpool;
} ngx_http_omni_cache_t;


static ngx_int_t ngx_http_omni_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_omni_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_rbtree_node_t *ngx_http_omni_cache_lookup(
    ngx_http_omni_cache_t *cache, u_char *key);
static void ngx_http_omni_cache_evict(ngx_http_omni_cache_t *cache,
    ngx_uint_t n, time_t now);


#define ngx_http_omni_cache_node(node)                                       \
    ((ngx_http_omni_cache_node_t *) &(node)->color)


char *
ngx_http_omni_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *omcf = conf;

    u_char                 *p;
    ssize_t                 size;
    ngx_str_t              *value, name, s;
    ngx_uint_t              i;
    ngx_http_omni_cache_t  *cache;

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

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_cache_t));
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

    omcf->cache_zone->init = ngx_http_omni_cache_init_zone;
    omcf->cache_zone->data = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_omni_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_omni_cache_t *ocache = data;

    size_t                  len;
    ngx_http_omni_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload keeps the entries: the policy ids of a new
         * configuration may differ, so old entries simply age out */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_omni_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_omni_cache_insert);
    ngx_queue_init(&cache->sh->queue);

    len = sizeof(" in omni_jwt_cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in omni_jwt_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_omni_cache_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t           **p;
    ngx_http_omni_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            cn = ngx_http_omni_cache_node(node);
            cnt = ngx_http_omni_cache_node(temp);

            p = (ngx_memcmp(cn->key, cnt->key, SHA256_DIGEST_LENGTH) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_rbtree_node_t *
ngx_http_omni_cache_lookup(ngx_http_omni_cache_t *cache, u_char *key)
{
    ngx_int_t                    rc;
    ngx_rbtree_key_t             hash;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_http_omni_cache_node_t  *cn;

    ngx_memcpy(&hash, key, sizeof(ngx_rbtree_key_t));

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        cn = ngx_http_omni_cache_node(node);

        rc = ngx_memcmp(key, cn->key, SHA256_DIGEST_LENGTH);

        if (rc == 0) {
            return node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Copies a hit's fields into ctx. NGX_OK on a live hit, NGX_DECLINED on a
 * miss (an expired entry is removed), NGX_ERROR on allocation failure.
 */

ngx_int_t
ngx_http_omni_cache_get(ngx_http_request_t *r, u_char *key,
    ngx_http_omni_ctx_t *ctx)
{
    u_char                      *p, *last;
    uint16_t                     len;
    ngx_uint_t                   i;
    ngx_rbtree_node_t           *node;
    ngx_http_omni_cache_t       *cache;
    ngx_http_omni_main_conf_t   *omcf;
    ngx_http_omni_cache_node_t  *cn;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    cache = omcf->cache_zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = ngx_http_omni_cache_lookup(cache, key);

    if (node == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    cn = ngx_http_omni_cache_node(node);

    /* like exp: not accepted on or after the second it names */
    if (cn->expires <= ngx_time()) {
        ngx_queue_remove(&cn->queue);
        ngx_rbtree_delete(&cache->sh->rbtree, node);
        ngx_slab_free_locked(cache->shpool, node);
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    p = ngx_pnalloc(r->pool, cn->len);
    if (p == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_ERROR;
    }

    ngx_memcpy(p, cn->data, cn->len);
    last = p + cn->len;

    ngx_shmtx_unlock(&cache->shpool->mutex);

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
    u_char                      *p;
    size_t                       len, n;
    uint16_t                     vlen;
    ngx_uint_t                   i;
    ngx_rbtree_node_t           *node;
    ngx_http_omni_cache_t       *cache;
    ngx_http_omni_main_conf_t   *omcf;
    ngx_http_omni_cache_node_t  *cn;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    cache = omcf->cache_zone->data;

    len = 0;

    for (i = 0; i < ctx->nvalues; i++) {
        if (ctx->values[i].len > 0xffff) {
            return;
        }

        len += sizeof(uint16_t) + ctx->values[i].len;
    }

    n = offsetof(ngx_rbtree_node_t, color)
        + offsetof(ngx_http_omni_cache_node_t, data) + len;

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* another worker may have verified the same token meanwhile */
    if (ngx_http_omni_cache_lookup(cache, key) != NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    ngx_http_omni_cache_evict(cache, 1, ngx_time());

    node = ngx_slab_alloc_locked(cache->shpool, n);

    if (node == NULL) {
        ngx_http_omni_cache_evict(cache, 16, 0);

        node = ngx_slab_alloc_locked(cache->shpool, n);
        if (node == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return;
        }
    }

    cn = ngx_http_omni_cache_node(node);

    ngx_memcpy(&node->key, key, sizeof(ngx_rbtree_key_t));
    ngx_memcpy(cn->key, key, SHA256_DIGEST_LENGTH);
    cn->expires = expires;
    cn->len = (uint32_t) len;

    p = cn->data;

    for (i = 0; i < ctx->nvalues; i++) {
        vlen = (uint16_t) ctx->values[i].len;
        ngx_memcpy(p, &vlen, sizeof(uint16_t));
        p += sizeof(uint16_t);
        p = ngx_cpymem(p, ctx->values[i].data, vlen);
    }

    ngx_rbtree_insert(&cache->sh->rbtree, node);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * From the least recently used end: drops up to n entries that expired
 * before now, or, with now == 0, up to n entries whatever their age.
 */

static void
ngx_http_omni_cache_evict(ngx_http_omni_cache_t *cache, ngx_uint_t n,
    time_t now)
{
    ngx_queue_t                 *q;
    ngx_rbtree_node_t           *node;
    ngx_http_omni_cache_node_t  *cn;

    while (n-- && !ngx_queue_empty(&cache->sh->queue)) {

        q = ngx_queue_last(&cache->sh->queue);
        cn = ngx_queue_data(q, ngx_http_omni_cache_node_t, queue);

        if (now && cn->expires > now) {
            return;
        }

        node = (ngx_rbtree_node_t *)
                   ((u_char *) cn - offsetof(ngx_rbtree_node_t, color));

        ngx_queue_remove(q);
        ngx_rbtree_delete(&cache->sh->rbtree, node);
        ngx_slab_free_locked(cache->shpool, node);
    }
}
