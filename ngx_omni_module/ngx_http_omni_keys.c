
/*
 * Omni gateway module: "omni_jwt_key" and "omni_jwt_jwks", verification keys
 * parsed once, at configuration time, and bound to their algorithms.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


static ngx_int_t ngx_http_omni_keys_add(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_omni_loc_conf_t *olcf, omni_jwt_key_t *keys, ngx_uint_t n);
static void ngx_http_omni_keys_cleanup(void *data);


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

    char             err[512];
    size_t           nkeys, i;
    ngx_str_t       *value, file;
    omni_jwt_key_t  *keys;

    value = cf->args->elts;

    /*
     * refresh= is accepted for the SPEC's syntax; until the background
     * re-read lands the file is read at start-up and on reload
     */
    if (cf->args->nelts == 3
        && (ngx_strncmp(value[2].data, "refresh=", 8) != 0
            || ngx_parse_time(&(ngx_str_t) { value[2].len - 8,
                                             value[2].data + 8 }, 1)
               == (time_t) NGX_ERROR))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"", &value[2],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (omni_jwt_jwks_load(&keys, &nkeys, (char *) file.data, err,
                           sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name,
                           err);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_omni_keys_add(cf, cmd, olcf, keys, nkeys) != NGX_OK) {
        for (i = 0; i < nkeys; i++) {
            omni_jwt_key_free(&keys[i]);
        }

        free(keys);
        return NGX_CONF_ERROR;
    }

    /* the keys were copied into the location's array */
    free(keys);

    return NGX_CONF_OK;
}


/* Appends keys to the location's set, refusing a kid seen there before. */

static ngx_int_t
ngx_http_omni_keys_add(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_omni_loc_conf_t *olcf, omni_jwt_key_t *keys, ngx_uint_t n)
{
    ngx_uint_t                  i, j;
    omni_jwt_key_t             *k, *have;
    ngx_pool_cleanup_t         *cln;
    ngx_http_omni_main_conf_t  *omcf;

    if (olcf->keys == NGX_CONF_UNSET_PTR) {
        olcf->keys = ngx_array_create(cf->pool, 4, sizeof(omni_jwt_key_t));
        if (olcf->keys == NULL) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < n; i++) {
        have = olcf->keys->elts;

        for (j = 0; j < olcf->keys->nelts; j++) {
            if (keys[i].kid[0] != '\0'
                && ngx_strcmp(have[j].kid, keys[i].kid) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\": duplicate kid \"%s\": every "
                                   "key of a location needs its own kid",
                                   &cmd->name, keys[i].kid);
                return NGX_ERROR;
            }
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
