
/*
 * Omni gateway module: a map in shared memory, bytes to bytes, with an
 * expiry per entry and LRU eviction when the zone is full, as in
 * ngx_http_limit_req_module. The verified-token cache and the per-node
 * limits of "omni_redis_fail local" are both such maps.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


static void ngx_http_omni_shm_insert_node(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


#define ngx_http_omni_shm_entry(node)                                        \
    ((ngx_http_omni_shm_entry_t *) &(node)->color)

#define ngx_http_omni_shm_rbnode(entry)                                      \
    ((ngx_rbtree_node_t *)                                                   \
         ((u_char *) (entry) - offsetof(ngx_rbtree_node_t, color)))


/* Milliseconds since the epoch: expiries outlive a worker's clock. */

int64_t
ngx_http_omni_shm_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


ngx_int_t
ngx_http_omni_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_omni_shm_t *oshm = data;

    ngx_http_omni_shm_t  *shm;

    shm = shm_zone->data;

    if (oshm) {
        /* a reload keeps the entries */
        shm->sh = oshm->sh;
        shm->shpool = oshm->shpool;
        return NGX_OK;
    }

    shm->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm->sh = shm->shpool->data;
        return NGX_OK;
    }

    shm->sh = ngx_slab_alloc(shm->shpool, sizeof(ngx_http_omni_shm_sh_t));
    if (shm->sh == NULL) {
        return NGX_ERROR;
    }

    shm->shpool->data = shm->sh;

    ngx_rbtree_init(&shm->sh->rbtree, &shm->sh->sentinel,
                    ngx_http_omni_shm_insert_node);
    ngx_queue_init(&shm->sh->queue);

    shm->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_omni_shm_insert_node(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_http_omni_shm_entry_t   *e, *et;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            e = ngx_http_omni_shm_entry(node);
            et = ngx_http_omni_shm_entry(temp);

            p = (ngx_memn2cmp(e->data, et->data, e->key_len, et->key_len) < 0)
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


static void
ngx_http_omni_shm_free(ngx_http_omni_shm_t *shm, ngx_http_omni_shm_entry_t *e)
{
    ngx_queue_remove(&e->queue);
    ngx_rbtree_delete(&shm->sh->rbtree, ngx_http_omni_shm_rbnode(e));
    ngx_slab_free_locked(shm->shpool, ngx_http_omni_shm_rbnode(e));
}


/*
 * The live entry for key, made the most recently used; an expired one is
 * removed. Call with the zone's mutex held.
 */

ngx_http_omni_shm_entry_t *
ngx_http_omni_shm_get(ngx_http_omni_shm_t *shm, u_char *key, size_t len,
    int64_t now)
{
    ngx_int_t                   rc;
    ngx_rbtree_key_t            hash;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_omni_shm_entry_t  *e;

    hash = ngx_crc32_short(key, len);
    node = shm->sh->rbtree.root;
    sentinel = shm->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        e = ngx_http_omni_shm_entry(node);
        rc = ngx_memn2cmp(key, e->data, len, e->key_len);

        if (rc != 0) {
            node = (rc < 0) ? node->left : node->right;
            continue;
        }

        if (e->expires <= now) {
            ngx_http_omni_shm_free(shm, e);
            return NULL;
        }

        ngx_queue_remove(&e->queue);
        ngx_queue_insert_head(&shm->sh->queue, &e->queue);

        return e;
    }

    return NULL;
}


/*
 * From the least recently used end: up to n expired entries, or, with
 * any, up to n entries whatever their age. Mutex held.
 */

static void
ngx_http_omni_shm_evict(ngx_http_omni_shm_t *shm, ngx_uint_t n,
    ngx_uint_t any, int64_t now)
{
    ngx_queue_t                *q;
    ngx_http_omni_shm_entry_t  *e;

    while (n-- && !ngx_queue_empty(&shm->sh->queue)) {
        q = ngx_queue_last(&shm->sh->queue);
        e = ngx_queue_data(q, ngx_http_omni_shm_entry_t, queue);

        if (!any && e->expires > now) {
            return;
        }

        ngx_http_omni_shm_free(shm, e);
    }
}


/*
 * A new entry for key (which must not be in the map) with room for
 * value_len bytes at ngx_http_omni_shm_value(e), the most recently used.
 * NULL when even evicting old entries makes no room. Mutex held.
 */

ngx_http_omni_shm_entry_t *
ngx_http_omni_shm_add(ngx_http_omni_shm_t *shm, u_char *key, size_t len,
    size_t value_len, int64_t expires, int64_t now)
{
    size_t                      n;
    ngx_rbtree_node_t          *node;
    ngx_http_omni_shm_entry_t  *e;

    if (len > 0xffff || value_len > 0xffffffff) {
        return NULL;
    }

    n = offsetof(ngx_rbtree_node_t, color)
        + offsetof(ngx_http_omni_shm_entry_t, data) + len + value_len;

    ngx_http_omni_shm_evict(shm, 1, 0, now);

    node = ngx_slab_alloc_locked(shm->shpool, n);

    if (node == NULL) {
        ngx_http_omni_shm_evict(shm, 16, 1, now);

        node = ngx_slab_alloc_locked(shm->shpool, n);
        if (node == NULL) {
            return NULL;
        }
    }

    node->key = ngx_crc32_short(key, len);

    e = ngx_http_omni_shm_entry(node);
    e->key_len = (u_short) len;
    e->value_len = (uint32_t) value_len;
    e->expires = expires;
    ngx_memcpy(e->data, key, len);

    ngx_rbtree_insert(&shm->sh->rbtree, node);
    ngx_queue_insert_head(&shm->sh->queue, &e->queue);

    return e;
}
