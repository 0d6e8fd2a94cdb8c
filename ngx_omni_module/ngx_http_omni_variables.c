
/*
 * Omni gateway module: $omni_* variables, for access logs, proxy_set_header,
 * map and the like.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


static ngx_int_t ngx_http_omni_field_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_omni_method_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_omni_decision_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_omni_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_omni_remaining_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_omni_vars[] = {

    { ngx_string("omni_user_id"), NULL, ngx_http_omni_field_variable,
      NGX_HTTP_OMNI_F_USER_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_username"), NULL, ngx_http_omni_field_variable,
      NGX_HTTP_OMNI_F_USERNAME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_role"), NULL, ngx_http_omni_field_variable,
      NGX_HTTP_OMNI_F_ROLE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_roles"), NULL, ngx_http_omni_field_variable,
      NGX_HTTP_OMNI_F_ROLES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_jti"), NULL, ngx_http_omni_field_variable,
      NGX_HTTP_OMNI_F_JTI, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_auth_method"), NULL, ngx_http_omni_method_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_decision"), NULL, ngx_http_omni_decision_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_limit_remaining"), NULL,
      ngx_http_omni_remaining_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_jwt_claim_"), NULL, ngx_http_omni_claim_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_omni_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_omni_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* The verified identity of the main request, if any. */

static ngx_http_omni_ctx_t *
ngx_http_omni_identity(ngx_http_request_t *r)
{
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_get_ctx(r);

    if (ctx == NULL || ctx->values == NULL || !ctx->authenticated) {
        return NULL;
    }

    return ctx;
}


static void
ngx_http_omni_set(ngx_http_variable_value_t *v, ngx_str_t *s)
{
    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
}


static ngx_int_t
ngx_http_omni_field_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_identity(r);

    if (ctx == NULL || ctx->values[data].len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_omni_set(v, &ctx->values[data]);

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_remaining_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p;
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_get_ctx(r);

    /* only after Redis (or the local fallback) decided this request's
     * limits */
    if (ctx == NULL || ctx->failed || ctx->tightest < 1) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%L", ctx->remaining) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_method_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_omni_ctx_t  *ctx;

    static ngx_str_t  jwt = ngx_string("jwt");
    static ngx_str_t  apikey = ngx_string("apikey");
    static ngx_str_t  none = ngx_string("none");

    ctx = ngx_http_omni_identity(r);

    ngx_http_omni_set(v, ctx == NULL ? &none
                         : ctx->via_apikey ? &apikey : &jwt);

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_decision_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_get_ctx(r);

    if (ctx == NULL || ctx->values == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_omni_set(v, &ngx_http_omni_decision_names[ctx->decision]);

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t              *name = (ngx_str_t *) data, claim;
    ngx_uint_t              i;
    ngx_http_omni_ctx_t    *ctx;
    ngx_http_omni_claim_t  *f;

    ctx = ngx_http_omni_identity(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    claim.data = name->data + sizeof("omni_jwt_claim_") - 1;
    claim.len = name->len - (sizeof("omni_jwt_claim_") - 1);

    f = ctx->fields->elts;

    for (i = NGX_HTTP_OMNI_NFIELDS; i < ctx->nvalues; i++) {
        if (f[i].header.len == 0 && f[i].path.len == claim.len
            && ngx_strncmp(f[i].path.data, claim.data, claim.len) == 0
            && ctx->values[i].len)
        {
            ngx_http_omni_set(v, &ctx->values[i]);
            return NGX_OK;
        }
    }

    v->not_found = 1;

    return NGX_OK;
}
