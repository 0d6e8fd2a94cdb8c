
/*
 * Omni gateway module: limits as configured. "omni_limit_zone" defines a
 * GCRA limit, "omni_limit" applies zones to a location (or lifts them with
 * "off"), and merge binds each to its zone so that nginx -t names an
 * unknown one.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"
#include "omni_gcra.h"


static ngx_int_t ngx_http_omni_limit_texts(ngx_conf_t *cf,
    ngx_http_omni_limit_t *l);


/* omni_limit_zone NAME rate=Nr/s|Nr/m|Nr/h [burst=B] [key=$var] */

char *
ngx_http_omni_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *omcf = conf;

    u_char                            *p;
    int64_t                            period, requests;
    ngx_int_t                          n;
    ngx_str_t                         *value, s;
    ngx_uint_t                         i;
    ngx_http_omni_zone_t              *zone, *z;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (omcf->zones.nelts == 0
        && ngx_array_init(&omcf->zones, cf->pool, 4,
                          sizeof(ngx_http_omni_zone_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    z = omcf->zones.elts;

    for (i = 0; i < omcf->zones.nelts; i++) {
        if (z[i].name.len == value[1].len
            && ngx_strncmp(z[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": zone \"%V\" is already defined",
                               &cmd->name, &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    for (i = 0; i < value[1].len; i++) {
        p = &value[1].data[i];

        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": invalid zone name \"%V\"",
                               &cmd->name, &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    zone = ngx_array_push(&omcf->zones);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(zone, sizeof(ngx_http_omni_zone_t));
    zone->name = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (s.len < 4 || ngx_strncmp(s.data + s.len - 3, "r/", 2) != 0) {
                goto bad_rate;
            }

            switch (s.data[s.len - 1]) {
            case 's':
                period = 1000000;
                break;
            case 'm':
                period = 60000000;
                break;
            case 'h':
                period = INT64_C(3600000000);
                break;
            default:
                goto bad_rate;
            }

            n = ngx_atoi(s.data, s.len - 3);
            if (n == NGX_ERROR || n == 0) {
                goto bad_rate;
            }

            requests = n;
            zone->limit.interval = omni_gcra_interval(requests, period);
            if (zone->limit.interval < 0) {
                goto bad_rate;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst \"%V\" in \"%V\"",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            zone->limit.burst = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            zone->key = ngx_palloc(cf->pool,
                                   sizeof(ngx_http_complex_value_t));
            if (zone->key == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
            ccv.cf = cf;
            ccv.value = &s;
            ccv.complex_value = zone->key;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"", &value[i],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (zone->limit.interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs rate=Nr/s, Nr/m or Nr/h",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (!omni_gcra_limit_valid(&zone->limit)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": rate and burst of zone \"%V\" are out "
                           "of range", &cmd->name, &zone->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

bad_rate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid rate \"%V\" in \"%V\": expected Nr/s, Nr/m "
                       "or Nr/h, at most 1000000r/s", &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/* omni_limit zone=NAME [cost=N] | off: resolved to the zone in merge */

char *
ngx_http_omni_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_int_t                n;
    ngx_str_t               *value;
    ngx_uint_t               i;
    ngx_http_omni_limit_t   *limit;

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        if (olcf->limits != NGX_CONF_UNSET_PTR) {
            return "cannot combine \"off\" with zones";
        }

        /* a nested location lifts the limits it inherits */
        olcf->limits = NULL;
        return NGX_CONF_OK;
    }

    if (olcf->limits == NULL) {
        return "cannot combine \"off\" with zones";
    }

    if (olcf->limits == NGX_CONF_UNSET_PTR) {
        olcf->limits = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_omni_limit_t));
        if (olcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (olcf->limits->nelts == NGX_HTTP_OMNI_MAX_LIMITS) {
        return "is repeated too often: 8 limits at most";
    }

    limit = ngx_array_push(olcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(limit, sizeof(ngx_http_omni_limit_t));
    limit->cost = 1;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            limit->zone_name.data = value[i].data + 5;
            limit->zone_name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cost=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n == NGX_ERROR || n == 0 || n > OMNI_GCRA_MAX_COST) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid cost \"%V\" in \"%V\"",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            limit->cost = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"", &value[i],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (limit->zone_name.len == 0) {
        return "needs zone=NAME";
    }

    return NGX_CONF_OK;
}


/* Binds every omni_limit of a location to its zone: unknown zones fail. */

ngx_int_t
ngx_http_omni_limit_merge(ngx_conf_t *cf, ngx_http_omni_loc_conf_t *conf)
{
    ngx_uint_t                  i, j;
    ngx_http_omni_zone_t       *z;
    ngx_http_omni_limit_t      *l;
    ngx_http_omni_main_conf_t  *omcf;

    if (conf->limits == NULL) {
        return NGX_OK;
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);

    if (!omcf->redis_configured) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_limit\" needs \"omni_redis\"");
        return NGX_ERROR;
    }

    l = conf->limits->elts;
    z = omcf->zones.elts;

    for (i = 0; i < conf->limits->nelts; i++) {

        if (l[i].zone != NULL) {
            continue;
        }

        for (j = 0; j < omcf->zones.nelts; j++) {
            if (z[j].name.len == l[i].zone_name.len
                && ngx_strncmp(z[j].name.data, l[i].zone_name.data,
                               z[j].name.len) == 0)
            {
                l[i].zone = &z[j];
                break;
            }
        }

        if (l[i].zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"omni_limit\": unknown zone \"%V\"",
                               &l[i].zone_name);
            return NGX_ERROR;
        }

        if ((int64_t) l[i].cost > l[i].zone->limit.burst + 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"omni_limit\": cost %ui exceeds zone \"%V\"'s"
                               " burst + 1: no request could ever pass",
                               l[i].cost, &l[i].zone_name);
            return NGX_ERROR;
        }

        if (ngx_http_omni_limit_texts(cf, &l[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_limit_texts(ngx_conf_t *cf, ngx_http_omni_limit_t *l)
{
    u_char   *p;
    int64_t   capacity;
    time_t    window;

    p = ngx_pnalloc(cf->pool, 5 * NGX_INT64_LEN + sizeof(";w="));
    if (p == NULL) {
        return NGX_ERROR;
    }

    capacity = l->zone->limit.burst + 1;
    window = (time_t) ((capacity * l->zone->limit.interval + 999999)
                       / 1000000);

    l->args[0].data = p;
    p = ngx_sprintf(p, "%L", l->zone->limit.interval);
    l->args[0].len = p - l->args[0].data;

    l->args[1].data = p;
    p = ngx_sprintf(p, "%L", l->zone->limit.burst);
    l->args[1].len = p - l->args[1].data;

    l->args[2].data = p;
    p = ngx_sprintf(p, "%ui", l->cost);
    l->args[2].len = p - l->args[2].data;

    l->capacity.data = p;
    p = ngx_sprintf(p, "%L", capacity);
    l->capacity.len = p - l->capacity.data;

    l->policy.data = p;
    p = ngx_sprintf(p, "%L;w=%T", capacity, window);
    l->policy.len = p - l->policy.data;

    return NGX_OK;
}
