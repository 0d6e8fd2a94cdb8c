
/*
 * Omni gateway module: directives, configuration, phase registration.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_omni_module.h"


static ngx_int_t ngx_http_omni_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_omni_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_omni_init_process(ngx_cycle_t *cycle);
static void *ngx_http_omni_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_omni_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_omni_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_omni_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_omni_merge_fields(ngx_conf_t *cf,
    ngx_http_omni_loc_conf_t *conf);
static ngx_uint_t ngx_http_omni_conf_enum(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_str_t *value, ngx_conf_enum_t *e,
    const char *expected);
static char *ngx_http_omni_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf, const char *expected);
static char *ngx_http_omni_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_omni_redis_fail(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_omni_strings(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_omni_jwt_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_omni_claim(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_omni_headers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/* omni_auth: "jwt apikey" is the one pair, the values' union */
static ngx_conf_enum_t  ngx_http_omni_auth_modes[] = {
    { ngx_string("off"), NGX_HTTP_OMNI_AUTH_OFF },
    { ngx_string("jwt"), NGX_CONF_BITMASK_SET|NGX_HTTP_OMNI_AUTH_JWT },
    { ngx_string("apikey"), NGX_CONF_BITMASK_SET|NGX_HTTP_OMNI_AUTH_APIKEY },
    { ngx_string("optional"), NGX_CONF_BITMASK_SET|NGX_HTTP_OMNI_AUTH_JWT
                              |NGX_HTTP_OMNI_AUTH_OPTIONAL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_omni_redis_fail_modes[] = {
    { ngx_string("open"), NGX_HTTP_OMNI_FAIL_OPEN },
    { ngx_string("closed"), NGX_HTTP_OMNI_FAIL_CLOSED },
    { ngx_string("local"), NGX_HTTP_OMNI_FAIL_LOCAL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_omni_headers_modes[] = {
    { ngx_string("on"), 1 },
    { ngx_string("off"), 0 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_omni_authorization_modes[] = {
    { ngx_string("authorization=keep"), 0 },
    { ngx_string("authorization=remove"), 1 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_omni_commands[] = {

    { ngx_string("omni_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_omni_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_omni_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_auth"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_omni_auth,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, auth),
      &ngx_http_omni_auth_modes },

    { ngx_string("omni_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_omni_jwt_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_jwt_jwks"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_omni_jwt_jwks,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_omni_strings,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, issuers),
      NULL },

    { ngx_string("omni_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_omni_strings,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, audiences),
      NULL },

    { ngx_string("omni_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, leeway),
      NULL },

    { ngx_string("omni_jwt_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_omni_jwt_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_jwt_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_omni_jwt_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_omni_redis_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_omni_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_omni_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_redis_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_omni_redis_fail,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, redis_fail),
      &ngx_http_omni_redis_fail_modes },

    { ngx_string("omni_apikey_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, apikey_header),
      NULL },

    { ngx_string("omni_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_omni_claim,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_roles_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, roles_claim),
      NULL },

    /* also inside limit_except: a role for the methods that change data */
    { ngx_string("omni_require_role"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF|NGX_CONF_1MORE,
      ngx_http_omni_require_role,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_omni_headers,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, headers),
      &ngx_http_omni_headers_modes },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_omni_module_ctx = {
    ngx_http_omni_preconfiguration,        /* preconfiguration */
    ngx_http_omni_postconfiguration,       /* postconfiguration */

    ngx_http_omni_create_main_conf,        /* create main configuration */
    ngx_http_omni_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_omni_create_loc_conf,         /* create location configuration */
    ngx_http_omni_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_omni_module = {
    NGX_MODULE_V1,
    &ngx_http_omni_module_ctx,             /* module context */
    ngx_http_omni_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_omni_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_omni_redis_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_omni_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_omni_keys_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_omni_redis_init_process(cycle);
}


static ngx_int_t
ngx_http_omni_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_omni_add_variables(cf);
}


static ngx_int_t
ngx_http_omni_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * preaccess, not access: "satisfy any" must not let a request past
     * the identity checks, and limits (next to limit_req) come after them
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_omni_access_handler;

    ngx_http_omni_limit_init_script();

    if (ngx_http_omni_local_init_conf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_omni_metrics_init_conf(cf);
}


static void *
ngx_http_omni_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_main_conf_t));
    if (omcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     omcf->status_locations = 0;
     *     omcf->cache_zone = NULL;
     */

    omcf->cache_ttl = NGX_CONF_UNSET;
    omcf->redis_timeout = 50;

    if (RAND_bytes(omcf->cache_salt, sizeof(omcf->cache_salt)) != 1) {
        return NULL;
    }

    if (ngx_array_init(&omcf->claim_vars, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK
        || ngx_array_init(&omcf->claim_headers, cf->pool, 4,
                          sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&omcf->jwks, cf->pool, 1,
                          sizeof(ngx_http_omni_jwks_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return omcf;
}


/*
 * The $omni_jwt_claim_NAME variables referenced anywhere are known once the
 * http block is read, before its locations are merged.
 */

static char *
ngx_http_omni_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_omni_main_conf_t *omcf = conf;

    ngx_str_t                  *var;
    ngx_uint_t                  i;
    ngx_http_variable_t        *v;
    ngx_http_core_main_conf_t  *cmcf;

    static ngx_str_t  prefix = ngx_string("omni_jwt_claim_");

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if (v[i].name.len <= prefix.len
            || ngx_strncmp(v[i].name.data, prefix.data, prefix.len) != 0)
        {
            continue;
        }

        var = ngx_array_push(&omcf->claim_vars);
        if (var == NULL) {
            return NGX_CONF_ERROR;
        }

        var->len = v[i].name.len - prefix.len;
        var->data = ngx_pnalloc(cf->pool, var->len + 1);
        if (var->data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(var->data, v[i].name.data + prefix.len, var->len);
        var->data[var->len] = '\0';
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_omni_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_omni_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->auth = 0;
     *     conf->roles_claim = { 0, NULL };
     *     conf->apikey_header = { 0, NULL };
     *     conf->fields = NULL;
     */

    conf->status = NGX_CONF_UNSET;
    conf->metrics = NGX_CONF_UNSET;
    conf->headers = NGX_CONF_UNSET_UINT;
    conf->remove_authorization = NGX_CONF_UNSET_UINT;
    conf->redis_fail = NGX_CONF_UNSET_UINT;
    conf->redis_nodes = NGX_CONF_UNSET_UINT;
    conf->leeway = NGX_CONF_UNSET;
    conf->keys = NGX_CONF_UNSET_PTR;
    conf->jwks = NGX_CONF_UNSET_PTR;
    conf->issuers = NGX_CONF_UNSET_PTR;
    conf->audiences = NGX_CONF_UNSET_PTR;
    conf->token_sources = NGX_CONF_UNSET_PTR;
    conf->claims = NGX_CONF_UNSET_PTR;
    conf->require_roles = NGX_CONF_UNSET_PTR;
    conf->limits = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_omni_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_omni_loc_conf_t *prev = parent;
    ngx_http_omni_loc_conf_t *conf = child;

    ngx_uint_t                  roles_here;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_omni_main_conf_t  *omcf;

    roles_here = conf->require_roles != NGX_CONF_UNSET_PTR
                 && conf->require_roles != NULL;

    ngx_conf_merge_value(conf->status, prev->status, 0);
    ngx_conf_merge_value(conf->metrics, prev->metrics, 0);
    ngx_conf_merge_bitmask_value(conf->auth, prev->auth,
                                 NGX_HTTP_OMNI_AUTH_OFF);
    ngx_conf_merge_uint_value(conf->headers, prev->headers, 1);
    ngx_conf_merge_uint_value(conf->remove_authorization,
                              prev->remove_authorization, 0);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 0);
    ngx_conf_merge_str_value(conf->roles_claim, prev->roles_claim, "");

    /* a location with keys of its own inherits none of either kind */
    if (conf->keys == NGX_CONF_UNSET_PTR && conf->jwks == NGX_CONF_UNSET_PTR) {
        conf->keys = prev->keys;
        conf->jwks = prev->jwks;
    }

    ngx_conf_merge_ptr_value(conf->keys, NGX_CONF_UNSET_PTR, NULL);
    ngx_conf_merge_ptr_value(conf->jwks, NGX_CONF_UNSET_PTR, NULL);
    ngx_conf_merge_ptr_value(conf->issuers, prev->issuers, NULL);
    ngx_conf_merge_ptr_value(conf->audiences, prev->audiences, NULL);
    ngx_conf_merge_ptr_value(conf->token_sources, prev->token_sources, NULL);
    ngx_conf_merge_ptr_value(conf->claims, prev->claims, NULL);
    ngx_conf_merge_ptr_value(conf->require_roles, prev->require_roles, NULL);
    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);

    if (conf->redis_fail == NGX_CONF_UNSET_UINT) {
        conf->redis_fail = prev->redis_fail;
        conf->redis_nodes = prev->redis_nodes;
    }

    if (conf->redis_fail == NGX_CONF_UNSET_UINT) {
        conf->redis_fail = NGX_HTTP_OMNI_FAIL_OPEN;
        conf->redis_nodes = 1;
    }

    ngx_conf_merge_str_value(conf->apikey_header, prev->apikey_header,
                             "X-API-Key");

    if (ngx_http_omni_limit_merge(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /*
     * a content handler is not inherited by nested locations, but the
     * implicit location of "limit_except" must keep answering like its
     * parent: installed here, as ngx_http_proxy_merge_loc_conf() does
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->lmt_excpt && clcf->handler == NULL && conf->status) {
        clcf->handler = ngx_http_omni_status_handler;
    }

    if (conf->auth == NGX_HTTP_OMNI_AUTH_OFF) {
        if (roles_here) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"omni_require_role\" needs \"omni_auth jwt\" "
                               "or \"omni_auth optional\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

    if ((conf->auth & NGX_HTTP_OMNI_AUTH_APIKEY) && !omcf->redis_configured) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_auth apikey\" needs \"omni_redis\": "
                           "API keys are looked up there");
        return NGX_CONF_ERROR;
    }

    if ((conf->auth & NGX_HTTP_OMNI_AUTH_JWT)
        && (conf->keys == NULL || conf->keys->nelts == 0)
        && conf->jwks == NULL
        && clcf->name.len != 0)
    {
        /* a server-level omni_auth may leave keys to its locations; a
         * request matching no location is then refused at run time */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_auth\" verifies tokens here but no "
                           "\"omni_jwt_key\" or \"omni_jwt_jwks\" is set");
        return NGX_CONF_ERROR;
    }

    omcf->jwt_locations++;

    return ngx_http_omni_merge_fields(cf, conf);
}


/*
 * Every field a verified request carries: the built-in identity, the
 * omni_claim headers (one naming a built-in header replaces it) and the
 * claims that $omni_jwt_claim_NAME variables read.
 */

static char *
ngx_http_omni_merge_fields(ngx_conf_t *cf, ngx_http_omni_loc_conf_t *conf)
{
    ngx_str_t                  *var;
    ngx_uint_t                  i, j, n;
    ngx_http_omni_claim_t      *f, *c;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

    n = NGX_HTTP_OMNI_NFIELDS + omcf->claim_vars.nelts
        + (conf->claims ? conf->claims->nelts : 0);

    conf->fields = ngx_array_create(cf->pool, n,
                                    sizeof(ngx_http_omni_claim_t));
    if (conf->fields == NULL) {
        return NGX_CONF_ERROR;
    }

    f = ngx_array_push_n(conf->fields, NGX_HTTP_OMNI_NFIELDS);
    if (f == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(f, NGX_HTTP_OMNI_NFIELDS * sizeof(ngx_http_omni_claim_t));

    f[NGX_HTTP_OMNI_F_USER_ID].kind = NGX_HTTP_OMNI_CLAIM_PATH;
    ngx_str_set(&f[NGX_HTTP_OMNI_F_USER_ID].path, "sub");
    ngx_str_set(&f[NGX_HTTP_OMNI_F_USER_ID].header, "X-User-Id");
    ngx_str_set(&f[NGX_HTTP_OMNI_F_USER_ID].lowcase, "x-user-id");

    f[NGX_HTTP_OMNI_F_USERNAME].kind = NGX_HTTP_OMNI_CLAIM_USERNAME;
    ngx_str_set(&f[NGX_HTTP_OMNI_F_USERNAME].header, "X-User-Username");
    ngx_str_set(&f[NGX_HTTP_OMNI_F_USERNAME].lowcase, "x-user-username");

    f[NGX_HTTP_OMNI_F_ROLE].kind = NGX_HTTP_OMNI_CLAIM_ROLE;
    ngx_str_set(&f[NGX_HTTP_OMNI_F_ROLE].header, "X-User-Role");
    ngx_str_set(&f[NGX_HTTP_OMNI_F_ROLE].lowcase, "x-user-role");

    f[NGX_HTTP_OMNI_F_ROLES].kind = NGX_HTTP_OMNI_CLAIM_ROLES;

    f[NGX_HTTP_OMNI_F_JTI].kind = NGX_HTTP_OMNI_CLAIM_PATH;
    ngx_str_set(&f[NGX_HTTP_OMNI_F_JTI].path, "jti");

    for (i = 0; i < NGX_HTTP_OMNI_NFIELDS; i++) {
        f[i].hash = ngx_hash_key(f[i].lowcase.data, f[i].lowcase.len);
    }

    if (conf->claims) {
        c = conf->claims->elts;

        for (i = 0; i < conf->claims->nelts; i++) {

            for (j = 0; j < NGX_HTTP_OMNI_NFIELDS; j++) {
                f = conf->fields->elts;

                if (f[j].lowcase.len == c[i].lowcase.len
                    && ngx_strcmp(f[j].lowcase.data, c[i].lowcase.data) == 0)
                {
                    /* omni_claim names a built-in header: it now says */
                    f[j].kind = NGX_HTTP_OMNI_CLAIM_PATH;
                    f[j].path = c[i].path;
                    break;
                }
            }

            if (j < NGX_HTTP_OMNI_NFIELDS) {
                continue;
            }

            f = ngx_array_push(conf->fields);
            if (f == NULL) {
                return NGX_CONF_ERROR;
            }

            *f = c[i];
        }
    }

    var = omcf->claim_vars.elts;

    for (i = 0; i < omcf->claim_vars.nelts; i++) {
        f = ngx_array_push(conf->fields);
        if (f == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(f, sizeof(ngx_http_omni_claim_t));
        f->kind = NGX_HTTP_OMNI_CLAIM_PATH;
        f->path = var[i];
    }

    return NGX_CONF_OK;
}


/*
 * A value of the table e, NGX_CONF_UNSET_UINT after a message naming the
 * directive and what it takes, which ngx_conf_set_enum_slot() does not.
 */

static ngx_uint_t
ngx_http_omni_conf_enum(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *value,
    ngx_conf_enum_t *e, const char *expected)
{
    for ( /* void */ ; e->name.len; e++) {
        if (e->name.len == value->len
            && ngx_strcmp(e->name.data, value->data) == 0)
        {
            return e->value;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\": expected %s",
                       value, &cmd->name, expected);

    return NGX_CONF_UNSET_UINT;
}


/* ngx_conf_set_enum_slot() for the first argument, with that message */

static char *
ngx_http_omni_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf,
    const char *expected)
{
    char  *p = conf;

    ngx_str_t   *value;
    ngx_uint_t  *np;

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    *np = ngx_http_omni_conf_enum(cf, cmd, &value[1], cmd->post, expected);

    return *np == NGX_CONF_UNSET_UINT ? NGX_CONF_ERROR : NGX_CONF_OK;
}


/* omni_auth off | jwt | apikey | jwt apikey | optional */

static char *
ngx_http_omni_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, mode;

    static const char  expected[] = "off, jwt, apikey, \"jwt apikey\" or "
                                    "optional";

    if (olcf->auth != 0) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        mode = ngx_http_omni_conf_enum(cf, cmd, &value[i], cmd->post,
                                       expected);
        if (mode == NGX_CONF_UNSET_UINT) {
            return NGX_CONF_ERROR;
        }

        olcf->auth |= mode;
    }

    if (cf->args->nelts == 3
        && olcf->auth != (NGX_CONF_BITMASK_SET|NGX_HTTP_OMNI_AUTH_JWT
                          |NGX_HTTP_OMNI_AUTH_APIKEY))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V %V\" in \"%V\": expected %s",
                           &value[1], &value[2], &cmd->name, expected);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* omni_redis_fail open | closed | local [nodes=N] */

static char *
ngx_http_omni_redis_fail(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    char       *rv;
    ngx_int_t   n;
    ngx_str_t  *value;

    rv = ngx_http_omni_conf_set_enum(cf, cmd, conf, "open, closed or local");
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;
    olcf->redis_nodes = 1;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (olcf->redis_fail != NGX_HTTP_OMNI_FAIL_LOCAL
        || ngx_strncmp(value[2].data, "nodes=", 6) != 0)
    {
        goto invalid;
    }

    n = ngx_atoi(value[2].data + 6, value[2].len - 6);
    if (n == NGX_ERROR || n == 0 || n > 1000) {
        goto invalid;
    }

    olcf->redis_nodes = n;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\"", &value[2],
                       &cmd->name);
    return NGX_CONF_ERROR;
}


/* A list of strings, NUL-terminated for omni_jwt: issuers, audiences. */

static char *
ngx_http_omni_strings(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char        **s;
    ngx_str_t    *value;
    ngx_uint_t    i;
    ngx_array_t **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    *a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(char *));
    if (*a == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0) {
            return "has an empty value";
        }

        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        /* configuration strings are NUL-terminated by the parser */
        *s = (char *) value[i].data;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_omni_jwt_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    if (olcf->token_sources != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    olcf->token_sources = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_http_complex_value_t));
    if (olcf->token_sources == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        cv = ngx_array_push(olcf->token_sources);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (cv->lengths == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" takes variables, e.g. "
                               "$cookie_omni_token; \"%V\" is plain text",
                               &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_omni_claim(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    u_char                     *p;
    ngx_str_t                  *value, *owned;
    ngx_uint_t                  i;
    ngx_http_omni_claim_t      *c;
    ngx_http_omni_main_conf_t  *omcf;

    value = cf->args->elts;

    for (i = 0; i < value[2].len; i++) {
        p = &value[2].data[i];

        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\" in \"%V\"",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0 || value[2].len == 0) {
        return "has an empty value";
    }

    if (olcf->claims == NGX_CONF_UNSET_PTR) {
        olcf->claims = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_omni_claim_t));
        if (olcf->claims == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    c = ngx_array_push(olcf->claims);
    if (c == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(c, sizeof(ngx_http_omni_claim_t));

    c->kind = NGX_HTTP_OMNI_CLAIM_PATH;
    c->path = value[1];
    c->header = value[2];

    c->lowcase.len = value[2].len;
    c->lowcase.data = ngx_pnalloc(cf->pool, value[2].len + 1);
    if (c->lowcase.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_strlow(c->lowcase.data, value[2].data, value[2].len);
    c->lowcase.data[c->lowcase.len] = '\0';
    c->hash = ngx_hash_key(c->lowcase.data, c->lowcase.len);

    /* stripped from every request, not only where this claim is set */
    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);
    owned = omcf->claim_headers.elts;

    for (i = 0; i < omcf->claim_headers.nelts; i++) {
        if (owned[i].len == c->lowcase.len
            && ngx_strcmp(owned[i].data, c->lowcase.data) == 0)
        {
            return NGX_CONF_OK;
        }
    }

    owned = ngx_array_push(&omcf->claim_headers);
    if (owned == NULL) {
        return NGX_CONF_ERROR;
    }

    *owned = c->lowcase;

    return NGX_CONF_OK;
}


/* omni_headers on | off [authorization=keep|remove] */

static char *
ngx_http_omni_headers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    char       *rv;
    ngx_str_t  *value;

    rv = ngx_http_omni_conf_set_enum(cf, cmd, conf, "on or off");
    if (rv != NGX_CONF_OK || cf->args->nelts == 2) {
        return rv;
    }

    value = cf->args->elts;

    olcf->remove_authorization = ngx_http_omni_conf_enum(cf, cmd, &value[2],
                                     ngx_http_omni_authorization_modes,
                                     "authorization=keep or "
                                     "authorization=remove");
    if (olcf->remove_authorization == NGX_CONF_UNSET_UINT) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
