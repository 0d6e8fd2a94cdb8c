
/*
 * Omni gateway module: roles. "omni_require_role" and the check that a
 * verified identity holds one of the roles a location requires; admin
 * satisfies every requirement.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


/* omni_require_role ROLE ... | off */

char *
ngx_http_omni_require_role(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_str_t   *value, *role;
    ngx_uint_t   i;

    if (olcf->require_roles != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* a nested location (or limit_except) lifts what it inherits */
    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        olcf->require_roles = NULL;
        return NGX_CONF_OK;
    }

    olcf->require_roles = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_str_t));
    if (olcf->require_roles == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0) {
            return "has an empty value";
        }

        if (ngx_strcmp(value[i].data, "off") == 0) {
            return "takes \"off\" alone";
        }

        role = ngx_array_push(olcf->require_roles);
        if (role == NULL) {
            return NGX_CONF_ERROR;
        }

        *role = value[i];
    }

    return NGX_CONF_OK;
}


/* Whether roles (comma-separated) meet the location's requirement: any one
 * required role, or admin; anything when nothing is required. */

ngx_uint_t
ngx_http_omni_rbac_allows(ngx_http_omni_loc_conf_t *olcf, ngx_str_t *roles)
{
    u_char      *p, *last, *end;
    size_t       len;
    ngx_str_t   *need;
    ngx_uint_t   i;

    if (olcf->require_roles == NULL) {
        return 1;
    }

    need = olcf->require_roles->elts;
    p = roles->data;
    last = roles->data + roles->len;

    while (p < last) {
        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        len = end - p;

        if (len == 5 && ngx_strncmp(p, "admin", 5) == 0) {
            return 1;
        }

        for (i = 0; i < olcf->require_roles->nelts; i++) {
            if (need[i].len == len && ngx_strncmp(need[i].data, p, len) == 0)
            {
                return 1;
            }
        }

        p = end + 1;
    }

    return 0;
}
