
/*
 * Omni gateway module: "omni_redis_fail local". While Redis cannot answer,
 * each limit is enforced by this node alone, in shared memory, with the
 * same GCRA code (omni_gcra.c) at 1/N of its rate and burst. State is the
 * key's TAT, under the same key name Redis uses, evicted when it expires
 * or, when the zone is full, least recently used first.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


#define NGX_HTTP_OMNI_LOCAL_SIZE  (1024 * 1024)


typedef struct {
    u_char                      color;
    u_char                      pad;
    u_short                     len;
    ngx_queue_t                 queue;
    int64_t                     tat;
    ngx_msec_t                  expires;     /* ngx_current_msec based */
    u_char                      key[1];
} ngx_http_omni_local_node_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;
} ngx_http_omni_local_sh_t;


typedef struct {
    ngx_http_omni_local_sh_t   *sh;
    ngx_slab_pool_t            *shpool;
} ngx_http_omni_local_t;


static ngx_int_t ngx_http_omni_local_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_omni_local_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


#define ngx_http_omni_local_node(node)                                       \
    ((ngx_http_omni_local_node_t *) &(node)->color)


ngx_int_t
ngx_http_omni_local_init_conf(ngx_conf_t *cf)
{
    ngx_str_t                   name = ngx_string("omni_limits_local");
    ngx_shm_zone_t             *zone;
    ngx_http_omni_local_t      *local;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

    if (!omcf->redis_configured) {
        return NGX_OK;
    }

    local = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_local_t));
    if (local == NULL) {
        return NGX_ERROR;
    }

    zone = ngx_shared_memory_add(cf, &name, NGX_HTTP_OMNI_LOCAL_SIZE,
                                 &ngx_http_omni_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_omni_local_init_zone;
    zone->data = local;
    omcf->local_zone = zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_local_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_omni_local_t *olocal = data;

    ngx_http_omni_local_t  *local;

    local = shm_zone->data;

    if (olocal) {
        local->sh = olocal->sh;
        local->shpool = olocal->shpool;
        return NGX_OK;
    }

    local->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        local->sh = local->shpool->data;
        return NGX_OK;
    }

    local->sh = ngx_slab_alloc(local->shpool,
                               sizeof(ngx_http_omni_local_sh_t));
    if (local->sh == NULL) {
        return NGX_ERROR;
    }

    local->shpool->data = local->sh;

    ngx_rbtree_init(&local->sh->rbtree, &local->sh->sentinel,
                    ngx_http_omni_local_insert);
    ngx_queue_init(&local->sh->queue);

    return NGX_OK;
}


static void
ngx_http_omni_local_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t           **p;
    ngx_http_omni_local_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            ln = ngx_http_omni_local_node(node);
            lnt = ngx_http_omni_local_node(temp);

            p = (ngx_memn2cmp(ln->key, lnt->key, ln->len, lnt->len) < 0)
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


static ngx_http_omni_local_node_t *
ngx_http_omni_local_lookup(ngx_http_omni_local_t *local, u_char *key,
    size_t len, uint32_t hash)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_http_omni_local_node_t  *ln;

    node = local->sh->rbtree.root;
    sentinel = local->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        ln = ngx_http_omni_local_node(node);
        rc = ngx_memn2cmp(key, ln->key, len, (size_t) ln->len);

        if (rc == 0) {
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_omni_local_free(ngx_http_omni_local_t *local,
    ngx_http_omni_local_node_t *ln)
{
    ngx_rbtree_node_t  *node;

    node = (ngx_rbtree_node_t *)
               ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));

    ngx_queue_remove(&ln->queue);
    ngx_rbtree_delete(&local->sh->rbtree, node);
    ngx_slab_free_locked(local->shpool, node);
}


/* From the least recently used end: expired states, or n of any age. */

static void
ngx_http_omni_local_evict(ngx_http_omni_local_t *local, ngx_uint_t n,
    ngx_uint_t any)
{
    ngx_queue_t                 *q;
    ngx_http_omni_local_node_t  *ln;

    while (n-- && !ngx_queue_empty(&local->sh->queue)) {
        q = ngx_queue_last(&local->sh->queue);
        ln = ngx_queue_data(q, ngx_http_omni_local_node_t, queue);

        if (!any && (ngx_msec_int_t) (ln->expires - ngx_current_msec) > 0) {
            return;
        }

        ngx_http_omni_local_free(local, ln);
    }
}


/*
 * Decides the request's limits on this node. The keys are the Redis keys
 * already built in ctx->argv (KEYS[3..]). Fills ctx like a Redis reply;
 * NGX_ERROR only when the zone cannot be used at all.
 */

ngx_int_t
ngx_http_omni_local_check(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    size_t                       i, n, len;
    int64_t                      now;
    uint32_t                     hash;
    ngx_time_t                  *tp;
    omni_gcra_item_t             items[NGX_HTTP_OMNI_MAX_LIMITS];
    omni_gcra_result_t           res;
    ngx_rbtree_node_t           *node;
    ngx_http_omni_limit_t       *limits;
    ngx_http_omni_local_t       *local;
    ngx_http_omni_main_conf_t   *omcf;
    ngx_http_omni_local_node_t  *ln, *found[NGX_HTTP_OMNI_MAX_LIMITS];

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    local = omcf->local_zone->data;

    n = olcf->limits ? olcf->limits->nelts : 0;
    limits = n ? olcf->limits->elts : NULL;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000000 + (int64_t) tp->msec * 1000;

    ngx_shmtx_lock(&local->shpool->mutex);

    ngx_http_omni_local_evict(local, 2, 0);

    for (i = 0; i < n; i++) {
        if (omni_gcra_limit_per_node(&limits[i].zone->limit,
                                     (int64_t) olcf->redis_nodes,
                                     &items[i].limit)
            != 0)
        {
            items[i].limit = limits[i].zone->limit;
        }

        items[i].cost = (int64_t) limits[i].cost;

        len = ngx_min(ctx->argvlen[5 + i], 0xffff);
        hash = ngx_crc32_short((u_char *) ctx->argv[5 + i], len);

        found[i] = ngx_http_omni_local_lookup(local,
                                              (u_char *) ctx->argv[5 + i],
                                              len, hash);

        items[i].tat = (found[i] && (ngx_msec_int_t)
                        (found[i]->expires - ngx_current_msec) > 0)
                       ? found[i]->tat : 0;
    }

    if (omni_gcra_check_all(items, n, now, &res) != 0) {
        ngx_shmtx_unlock(&local->shpool->mutex);
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {

        if (items[i].ttl_us <= 0) {
            continue;
        }

        ln = found[i];

        if (ln == NULL) {
            len = ngx_min(ctx->argvlen[5 + i], 0xffff);

            node = ngx_slab_alloc_locked(local->shpool,
                       offsetof(ngx_rbtree_node_t, color)
                       + offsetof(ngx_http_omni_local_node_t, key) + len);

            if (node == NULL) {
                ngx_http_omni_local_evict(local, 16, 1);

                node = ngx_slab_alloc_locked(local->shpool,
                           offsetof(ngx_rbtree_node_t, color)
                           + offsetof(ngx_http_omni_local_node_t, key) + len);
                if (node == NULL) {
                    continue;
                }
            }

            node->key = ngx_crc32_short((u_char *) ctx->argv[5 + i], len);
            ln = ngx_http_omni_local_node(node);
            ln->len = (u_short) len;
            ngx_memcpy(ln->key, ctx->argv[5 + i], len);

            ngx_rbtree_insert(&local->sh->rbtree, node);

        } else {
            ngx_queue_remove(&ln->queue);
        }

        ngx_queue_insert_head(&local->sh->queue, &ln->queue);
        ln->tat = items[i].tat;
        ln->expires = ngx_current_msec
                      + (ngx_msec_t) ((items[i].ttl_us + 999) / 1000);
    }

    ngx_shmtx_unlock(&local->shpool->mutex);

    ctx->verdict = res.allowed;
    ctx->remaining = res.remaining;
    ctx->retry_after = omni_gcra_ms(res.retry_after_us);
    ctx->reset = omni_gcra_ms(res.reset_us);
    ctx->tightest = res.index + 1;

    return NGX_OK;
}
