
/*
 * Omni gateway module: "omni_jwt_key" and "omni_jwt_jwks", verification keys
 * parsed at configuration time and bound to their algorithms. A JWKS file is
 * watched by a timer in each worker (stat(): device, inode, size, mtime, so
 * a Kubernetes Secret's "..data" symlink swap counts) and parsed again, off
 * the request path, only when it changed; a file that does not parse keeps
 * the set read before. A URL's set comes through the same timer from
 * ngx_http_omni_jwks_fetch.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


static ngx_int_t ngx_http_omni_keys_add(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_omni_loc_conf_t *olcf, omni_jwt_key_t *keys, ngx_uint_t n);
static ngx_int_t ngx_http_omni_keys_duplicate(ngx_conf_t *cf,
    ngx_command_t *cmd, omni_jwt_key_t *have, size_t n, omni_jwt_key_t *key);
static void ngx_http_omni_keys_cleanup(void *data);
static uint64_t ngx_http_omni_jwks_version(ngx_file_info_t *fi);
static void ngx_http_omni_jwks_timer(ngx_event_t *ev);
static void ngx_http_omni_jwks_check(ngx_http_omni_jwks_t *jwks,
    ngx_log_t *log);
static void ngx_http_omni_jwks_free(omni_jwt_key_t *keys, size_t n);
static void ngx_http_omni_jwks_cleanup(void *data);


char *
ngx_http_omni_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    char            *algs, *kid, err[512];
    ngx_str_t       *value, file;
    ngx_uint_t       i;
    omni_jwt_key_t   key;

    value = cf->args->elts;

    ngx_str_null(&file);
    algs = NULL;
    kid = NULL;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "file=", 5) == 0) {
            file.data = value[i].data + 5;
            file.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "alg=", 4) == 0) {
            algs = (char *) value[i].data + 4;
            continue;
        }

        if (ngx_strncmp(value[i].data, "kid=", 4) == 0) {
            kid = (char *) value[i].data + 4;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"", &value[i],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs file=PATH", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (omni_jwt_key_load(&key, (char *) file.data, algs, kid, err,
                          sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name,
                           err);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_omni_keys_add(cf, cmd, olcf, &key, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_omni_jwt_jwks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    char                        err[512], *rv;
    size_t                      i;
    ngx_str_t                  *value, s, ca;
    ngx_uint_t                  n;
    ngx_msec_t                 *t;
    ngx_file_info_t             fi;
    ngx_pool_cleanup_t         *cln;
    ngx_http_omni_jwks_t       *jwks, **slot;
    ngx_http_omni_main_conf_t  *omcf;

    if (olcf->jwks != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    jwks = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_jwks_t));
    if (jwks == NULL) {
        return NGX_CONF_ERROR;
    }

    jwks->refresh = 60000;
    jwks->min_refresh = 10000;
    jwks->timeout = 5000;
    ngx_str_null(&ca);

    for (n = 2; n < cf->args->nelts; n++) {

        if (ngx_strncmp(value[n].data, "ca=", 3) == 0) {
            ca.data = value[n].data + 3;
            ca.len = value[n].len - 3;

            if (ca.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[n].data, "timeout=", 8) == 0) {
            s.data = value[n].data + 8;
            s.len = value[n].len - 8;
            t = &jwks->timeout;

        } else if (ngx_strncmp(value[n].data, "refresh=", 8) == 0) {
            s.data = value[n].data + 8;
            s.len = value[n].len - 8;
            t = &jwks->refresh;

        } else if (ngx_strncmp(value[n].data, "min_refresh=", 12) == 0) {
            s.data = value[n].data + 12;
            s.len = value[n].len - 12;
            t = &jwks->min_refresh;

        } else {
            goto invalid;
        }

        *t = ngx_parse_time(&s, 0);

        if (*t == (ngx_msec_t) NGX_ERROR || *t == 0) {
            goto invalid;
        }
    }

    jwks->path = value[1];

    if (ngx_strncasecmp(value[1].data, (u_char *) "http://", 7) == 0
        || ngx_strncasecmp(value[1].data, (u_char *) "https://", 8) == 0)
    {
        omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

        /* one fetcher and one shared copy per URL, however many users */
        slot = omcf->jwks.elts;

        for (i = 0; i < omcf->jwks.nelts; i++) {
            if (slot[i]->url
                && slot[i]->path.len == jwks->path.len
                && ngx_strncmp(slot[i]->path.data, jwks->path.data,
                               jwks->path.len)
                   == 0)
            {
                if (slot[i]->refresh != jwks->refresh
                    || slot[i]->min_refresh != jwks->min_refresh
                    || slot[i]->timeout != jwks->timeout
                    || slot[i]->ca.len != ca.len
                    || ngx_strncmp(slot[i]->ca.data, ca.data, ca.len) != 0)
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "\"%V\": \"%V\" is fetched once for "
                                       "every location: give it the same "
                                       "parameters everywhere", &cmd->name,
                                       &jwks->path);
                    return NGX_CONF_ERROR;
                }

                olcf->jwks = slot[i];
                return NGX_CONF_OK;
            }
        }

        jwks->ca = ca;

        rv = ngx_http_omni_jwks_url(cf, jwks, &ca);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        slot = ngx_array_push(&omcf->jwks);
        if (slot == NULL) {
            return NGX_CONF_ERROR;
        }

        *slot = jwks;
        jwks->omcf = omcf;
        olcf->jwks = jwks;

        return NGX_CONF_OK;
    }

    if (ca.len || jwks->timeout != 5000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": ca= and timeout= are for a URL, "
                           "not a file", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &jwks->path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* stat() first: a change after it is seen by the first check */
    if (ngx_file_info(jwks->path.data, &fi) != NGX_FILE_ERROR) {
        jwks->version = ngx_http_omni_jwks_version(&fi);
    }

    if (omni_jwt_jwks_load(&jwks->keys, &jwks->nkeys,
                           (char *) jwks->path.data, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name,
                           err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_http_omni_jwks_free(jwks->keys, jwks->nkeys);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_omni_jwks_cleanup;
    cln->data = jwks;

    olcf->jwks = jwks;

    if (olcf->keys != NGX_CONF_UNSET_PTR) {
        for (i = 0; i < jwks->nkeys; i++) {
            if (ngx_http_omni_keys_duplicate(cf, cmd, olcf->keys->elts,
                                             olcf->keys->nelts,
                                             &jwks->keys[i])
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

    slot = ngx_array_push(&omcf->jwks);
    if (slot == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = jwks;
    jwks->omcf = omcf;

    omcf->keys_loaded += jwks->nkeys;
    omcf->key_parses += jwks->nkeys;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\"", &value[n],
                       &cmd->name);
    return NGX_CONF_ERROR;
}


/* Appends keys to the location's set, refusing a kid seen there before. */

static ngx_int_t
ngx_http_omni_keys_add(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_omni_loc_conf_t *olcf, omni_jwt_key_t *keys, ngx_uint_t n)
{
    ngx_uint_t                  i;
    omni_jwt_key_t             *k;
    ngx_pool_cleanup_t         *cln;
    ngx_http_omni_main_conf_t  *omcf;

    if (olcf->keys == NGX_CONF_UNSET_PTR) {
        olcf->keys = ngx_array_create(cf->pool, 4, sizeof(omni_jwt_key_t));
        if (olcf->keys == NULL) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_omni_keys_duplicate(cf, cmd, olcf->keys->elts,
                                         olcf->keys->nelts, &keys[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (olcf->jwks != NGX_CONF_UNSET_PTR
            && ngx_http_omni_keys_duplicate(cf, cmd, olcf->jwks->keys,
                                            olcf->jwks->nkeys, &keys[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        k = ngx_array_push(olcf->keys);
        if (k == NULL) {
            return NGX_ERROR;
        }

        *k = keys[i];

        /* the array may move as it grows: free by value, not pointer */
        cln->handler = ngx_http_omni_keys_cleanup;
        cln->data = ngx_palloc(cf->pool, sizeof(omni_jwt_key_t));
        if (cln->data == NULL) {
            cln->handler = NULL;
            return NGX_ERROR;
        }

        ngx_memcpy(cln->data, k, sizeof(omni_jwt_key_t));
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);
    omcf->keys_loaded += n;
    omcf->key_parses += n;

    return NGX_OK;
}


static void
ngx_http_omni_keys_cleanup(void *data)
{
    omni_jwt_key_free(data);
}


static ngx_int_t
ngx_http_omni_keys_duplicate(ngx_conf_t *cf, ngx_command_t *cmd,
    omni_jwt_key_t *have, size_t n, omni_jwt_key_t *key)
{
    size_t  i;

    if (key->kid[0] == '\0') {
        return NGX_OK;
    }

    for (i = 0; i < n; i++) {
        if (ngx_strcmp(have[i].kid, key->kid) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": duplicate kid \"%s\": every "
                               "key of a location needs its own kid",
                               &cmd->name, key->kid);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The location's fixed keys first, then its JWKS; a refusal names the
 * more telling reason ("unknown kid" only when no key has the kid).
 */

omni_jwt_status_t
ngx_http_omni_keys_verify(ngx_http_omni_loc_conf_t *olcf, omni_jwt_t *jwt,
    const char **why)
{
    const char            *first;
    omni_jwt_status_t      st;
    ngx_http_omni_jwks_t  *jwks;

    st = OMNI_JWT_BAD_SIGNATURE;
    first = NULL;

    if (olcf->keys && olcf->keys->nelts) {
        st = omni_jwt_verify(jwt, olcf->keys->elts, olcf->keys->nelts, why);

        if (st == OMNI_JWT_OK || olcf->jwks == NULL) {
            return st;
        }

        first = *why;
    }

    jwks = olcf->jwks;

    st = omni_jwt_verify(jwt, jwks->keys, jwks->nkeys, why);

    if (st != OMNI_JWT_BAD_SIGNATURE) {
        return st;
    }

    if (ngx_strcmp(*why, "unknown kid") == 0) {

        if (first) {
            *why = first;
        }

        if (jwks->url) {
            ngx_http_omni_jwks_fetch_soon(jwks);
            return st;
        }

        /* a key published ahead of its first token: look again soon */
        if (ngx_current_msec - jwks->checked >= jwks->min_refresh
            && jwks->timer.timer_set && !ngx_exiting)
        {
            jwks->checked = ngx_current_msec;
            ngx_add_timer(&jwks->timer, 1);
        }
    }

    return st;
}


/* What a cached verification depends on besides the configuration. */

uint64_t
ngx_http_omni_keys_version(ngx_http_omni_loc_conf_t *olcf)
{
    return olcf->jwks ? olcf->jwks->version : 0;
}


ngx_int_t
ngx_http_omni_keys_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_http_omni_jwks_t      **jwks;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    if (omcf == NULL) {
        return NGX_OK;
    }

    jwks = omcf->jwks.elts;

    for (i = 0; i < omcf->jwks.nelts; i++) {
        jwks[i]->timer.handler = ngx_http_omni_jwks_timer;
        jwks[i]->timer.data = jwks[i];
        jwks[i]->timer.log = cycle->log;

        /* a pending check must not keep a quitting worker alive */
        jwks[i]->timer.cancelable = 1;

        jwks[i]->checked = ngx_current_msec;

        if (jwks[i]->url) {
            /* before the first request: the set another worker stored
             * (a reload, a respawn), or the first fetch */
            ngx_http_omni_jwks_fetch_tick(jwks[i], cycle->log);
            ngx_add_timer(&jwks[i]->timer, ngx_min(jwks[i]->refresh, 1000));
            continue;
        }

        ngx_add_timer(&jwks[i]->timer, jwks[i]->refresh);
    }

    return NGX_OK;
}


static void
ngx_http_omni_jwks_timer(ngx_event_t *ev)
{
    ngx_http_omni_jwks_t  *jwks = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (jwks->url) {
        /* cheap when nothing is due: shared memory is read, not locked */
        ngx_http_omni_jwks_fetch_tick(jwks, ev->log);
        ngx_add_timer(ev, ngx_min(jwks->refresh, 1000));
        return;
    }

    ngx_http_omni_jwks_check(jwks, ev->log);

    ngx_add_timer(ev, jwks->refresh);
}


static void
ngx_http_omni_jwks_check(ngx_http_omni_jwks_t *jwks, ngx_log_t *log)
{
    char              err[512];
    size_t            nkeys;
    uint64_t          version;
    omni_jwt_key_t   *keys;
    ngx_file_info_t   fi;

    jwks->checked = ngx_current_msec;

    if (ngx_file_info(jwks->path.data, &fi) == NGX_FILE_ERROR) {

        /* logged once, not on every tick */
        if (jwks->failed != 1) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "omni_jwt_jwks: " ngx_file_info_n " \"%V\" "
                          "failed; keeping the %uz keys read before",
                          &jwks->path, jwks->nkeys);
            ngx_http_omni_metrics_jwks(1);
            jwks->failed = 1;
        }

        return;
    }

    if (jwks->failed == 1) {
        jwks->failed = 0;
    }

    version = ngx_http_omni_jwks_version(&fi);

    if (version == jwks->version || version == jwks->failed) {
        return;
    }

    if (omni_jwt_jwks_load(&keys, &nkeys, (char *) jwks->path.data, err,
                           sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "omni_jwt_jwks: %s; keeping the %uz keys read before",
                      err, jwks->nkeys);
        ngx_http_omni_metrics_jwks(1);
        jwks->failed = version;
        return;
    }

    ngx_http_omni_jwks_swap(jwks, keys, nkeys, version);
    jwks->failed = 0;

    ngx_http_omni_metrics_jwks(0);

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "omni_jwt_jwks: \"%V\" changed: %uz keys", &jwks->path,
                  nkeys);
}


/* The new set in place of the old, between two requests. */

void
ngx_http_omni_jwks_swap(ngx_http_omni_jwks_t *jwks, omni_jwt_key_t *keys,
    size_t nkeys, uint64_t version)
{
    ngx_http_omni_main_conf_t  *omcf;

    omcf = jwks->omcf;
    omcf->keys_loaded += nkeys - jwks->nkeys;

    ngx_http_omni_jwks_free(jwks->keys, jwks->nkeys);

    jwks->keys = keys;
    jwks->nkeys = nkeys;
    jwks->version = version;
}


/*
 * FNV-1a over what identifies the file's content: never 0 or 1, which
 * stand for "not read" and "stat() failed"
 */

static uint64_t
ngx_http_omni_jwks_version(ngx_file_info_t *fi)
{
    u_char    *p;
    size_t     i;
    uint64_t   h, id[5];

    id[0] = (uint64_t) fi->st_dev;
    id[1] = (uint64_t) fi->st_ino;
    id[2] = (uint64_t) fi->st_size;
    id[3] = (uint64_t) fi->st_mtim.tv_sec;
    id[4] = (uint64_t) fi->st_mtim.tv_nsec;

    p = (u_char *) id;
    h = 0xcbf29ce484222325ULL;

    for (i = 0; i < sizeof(id); i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }

    return h > 1 ? h : h + 2;
}


static void
ngx_http_omni_jwks_free(omni_jwt_key_t *keys, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        omni_jwt_key_free(&keys[i]);
    }

    free(keys);
}


static void
ngx_http_omni_jwks_cleanup(void *data)
{
    ngx_http_omni_jwks_t  *jwks = data;

    ngx_http_omni_jwks_free(jwks->keys, jwks->nkeys);
}
