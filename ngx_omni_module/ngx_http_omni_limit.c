
/*
 * Omni gateway module: the one Redis round trip of a request. jti
 * revocation, API-key lookup and every GCRA limit of the location go to
 * Redis as one EVALSHA of omni_limit.lua; the request waits in the
 * preaccess phase, under its own timer, and resumes with the decision.
 * When Redis is slow or down, "omni_redis_fail" decides; when it answers
 * without a decision, a jti is still checked, on its own.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "ngx_http_omni_module.h"
#include "omni_gcra.h"
#include "omni_limit_lua.h"


/*
 * What a request has in flight. EVALSHA is the round trip; the others
 * follow only a failure, or stand for it when a jti is all to check:
 *
 *   EVALSHA --NOSCRIPT--> EVAL
 *   EVALSHA, EVAL --error or no decision, with a jti--> REVOKED
 *   EXISTS: no limits, no API key
 */
typedef enum {
    NGX_HTTP_OMNI_SENT_EVALSHA = 0,
    NGX_HTTP_OMNI_SENT_EVAL,
    NGX_HTTP_OMNI_SENT_EXISTS,
    NGX_HTTP_OMNI_SENT_REVOKED
} ngx_http_omni_sent_e;


/* the request a Redis reply belongs to; NULL once the request gave up */
typedef struct {
    ngx_http_request_t         *r;
    ngx_http_omni_sent_e        sent;
    ngx_msec_t                  start;
} ngx_http_omni_pending_t;


static ngx_int_t ngx_http_omni_limit_send(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_http_omni_pending_t *pending);
static void ngx_http_omni_limit_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_omni_limit_failure(ngx_http_request_t *r,
    ngx_http_omni_pending_t *pending, redisReply *rep);
static ngx_int_t ngx_http_omni_limit_decision(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, redisReply *rep);
static void ngx_http_omni_limit_timeout(ngx_event_t *ev);
static void ngx_http_omni_limit_resume(ngx_http_request_t *r);
static void ngx_http_omni_limit_cleanup(void *data);


static u_char  ngx_http_omni_limit_sha[SHA_DIGEST_LENGTH * 2 + 1];


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


/* omni_limit zone=NAME [cost=N]: resolved to the zone in merge */

char *
ngx_http_omni_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_int_t                n;
    ngx_str_t               *value;
    ngx_uint_t               i;
    ngx_http_omni_limit_t   *limit;

    value = cf->args->elts;

    if (olcf->limits == NULL) {
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
    }

    return NGX_OK;
}


/* omni_redis_fail open | closed | local [nodes=N] */

char *
ngx_http_omni_redis_fail(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (olcf->redis_fail != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "open") == 0) {
        olcf->redis_fail = NGX_HTTP_OMNI_FAIL_OPEN;

    } else if (ngx_strcmp(value[1].data, "closed") == 0) {
        olcf->redis_fail = NGX_HTTP_OMNI_FAIL_CLOSED;

    } else if (ngx_strcmp(value[1].data, "local") == 0) {
        olcf->redis_fail = NGX_HTTP_OMNI_FAIL_LOCAL;
        olcf->redis_nodes = 1;

        if (cf->args->nelts == 3) {
            if (ngx_strncmp(value[2].data, "nodes=", 6) != 0) {
                goto invalid;
            }

            n = ngx_atoi(value[2].data + 6, value[2].len - 6);
            if (n == NGX_ERROR || n == 0 || n > 1000) {
                goto invalid;
            }

            olcf->redis_nodes = n;
        }

        return NGX_CONF_OK;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected open, "
                           "closed or local", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\"", &value[2],
                       &cmd->name);
    return NGX_CONF_ERROR;
}


void
ngx_http_omni_limit_init_sha(void)
{
    u_char  md[SHA_DIGEST_LENGTH];

    SHA1((u_char *) OMNI_LIMIT_LUA, sizeof(OMNI_LIMIT_LUA) - 1, md);
    ngx_hex_dump(ngx_http_omni_limit_sha, md, SHA_DIGEST_LENGTH);
    ngx_http_omni_limit_sha[SHA_DIGEST_LENGTH * 2] = '\0';
}


const char *
ngx_http_omni_limit_script(size_t *len)
{
    *len = sizeof(OMNI_LIMIT_LUA) - 1;
    return OMNI_LIMIT_LUA;
}


/*
 * Whether this request needs the round trip: limits here, an API key to
 * resolve, or a JWT jti to check against revocation.
 */

ngx_uint_t
ngx_http_omni_limit_needed(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    if (!omcf->redis_configured) {
        return 0;
    }

    return (olcf->limits != NULL && olcf->limits->nelts > 0)
           || ctx->apikey.len
           || (ctx->authenticated
               && ctx->values[NGX_HTTP_OMNI_F_JTI].len > 0);
}


static ngx_int_t
ngx_http_omni_limit_send(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_http_omni_pending_t *pending)
{
    size_t  len;

    switch (pending->sent) {

    case NGX_HTTP_OMNI_SENT_EXISTS:
    case NGX_HTTP_OMNI_SENT_REVOKED:
        /* KEYS[1] alone: the numkeys slot before it becomes the command */
        ctx->argv[2] = "EXISTS";
        ctx->argvlen[2] = 6;

        return ngx_http_omni_redis_command(ngx_http_omni_limit_reply,
                                           pending, 2, &ctx->argv[2],
                                           &ctx->argvlen[2]);

    case NGX_HTTP_OMNI_SENT_EVAL:
        ctx->argv[0] = "EVAL";
        ctx->argvlen[0] = 4;
        ctx->argv[1] = (char *) ngx_http_omni_limit_script(&len);
        ctx->argvlen[1] = len;
        break;

    default: /* NGX_HTTP_OMNI_SENT_EVALSHA */
        ctx->argv[0] = "EVALSHA";
        ctx->argvlen[0] = 7;
        ctx->argv[1] = (char *) ngx_http_omni_limit_sha;
        ctx->argvlen[1] = SHA_DIGEST_LENGTH * 2;
    }

    return ngx_http_omni_redis_command(ngx_http_omni_limit_reply, pending,
                                       ctx->argc, ctx->argv, ctx->argvlen);
}


/* Whether a limit is keyed by the user an API key resolves to, which
 * only Redis knows: the script completes its key. */

static ngx_uint_t
ngx_http_omni_limit_by_user(ngx_http_omni_ctx_t *ctx,
    ngx_http_omni_zone_t *zone)
{
    return zone->key == NULL
           && !(ctx->authenticated
                && ctx->values[NGX_HTTP_OMNI_F_USER_ID].len)
           && ctx->apikey.len;
}


/*
 * What a limit's state is keyed by: the zone's key= value, else the
 * verified user, else nothing yet (by_user above). An empty key= value
 * and an anonymous request count by client address, as
 * $binary_remote_addr: one shared bucket for every request without the
 * header would throttle them all together, and skipping the limit, as
 * limit_req does, would let a client opt out of it by leaving the
 * header out.
 */

static ngx_int_t
ngx_http_omni_limit_key(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_http_omni_zone_t *zone, ngx_str_t *key)
{
    if (zone->key) {
        if (ngx_http_complex_value(r, zone->key, key) != NGX_OK) {
            return NGX_ERROR;
        }

        if (key->len) {
            return NGX_OK;
        }

    } else if (ngx_http_omni_limit_by_user(ctx, zone)) {
        ngx_str_null(key);
        return NGX_OK;

    } else if (ctx->authenticated
               && ctx->values[NGX_HTTP_OMNI_F_USER_ID].len)
    {
        *key = ctx->values[NGX_HTTP_OMNI_F_USER_ID];
        return NGX_OK;
    }

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        key->data = (u_char *) &((struct sockaddr_in *)
                                 r->connection->sockaddr)->sin_addr;
        key->len = 4;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        key->data = (u_char *) &((struct sockaddr_in6 *)
                                 r->connection->sockaddr)->sin6_addr;
        key->len = 16;
        break;
#endif

    default:
        *key = r->connection->addr_text;
    }

    return NGX_OK;
}


/*
 * Builds the call and sends it. NGX_AGAIN: the request waits for the
 * reply or its timer; NGX_DECLINED: Redis cannot be asked, ctx->failed
 * says so and the fail mode decides.
 */

ngx_int_t
ngx_http_omni_limit_start(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    u_char                     *p;
    size_t                      n, i, nlimits;
    ngx_str_t                   key;
    ngx_pool_cleanup_t         *cln;
    ngx_http_omni_limit_t      *limits;
    ngx_http_omni_pending_t    *pending;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    nlimits = olcf->limits ? olcf->limits->nelts : 0;
    limits = olcf->limits ? olcf->limits->elts : NULL;

    /* EVALSHA sha numkeys KEYS... now ARGV... */
    n = 3 + 2 + nlimits + 1 + 4 * nlimits;

    ctx->argv = ngx_palloc(r->pool, n * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, n * sizeof(size_t));
    if (ctx->argv == NULL || ctx->argvlen == NULL) {
        return NGX_ERROR;
    }

    i = 2;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->argv[i] = (char *) p;
    ctx->argvlen[i++] = ngx_sprintf(p, "%uz", 2 + nlimits) - p;

    /* KEYS[1]: revocation of the JWT's jti */
    if (ctx->authenticated && ctx->values[NGX_HTTP_OMNI_F_JTI].len) {
        key = ctx->values[NGX_HTTP_OMNI_F_JTI];
        p = ngx_pnalloc(r->pool, sizeof("omni:revoked:") - 1 + key.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->argv[i] = (char *) p;
        ctx->argvlen[i++] = ngx_cpymem(ngx_cpymem(p, "omni:revoked:",
                                                  sizeof("omni:revoked:") - 1),
                                       key.data, key.len) - p;

    } else {
        ctx->argv[i] = "";
        ctx->argvlen[i++] = 0;
    }

    /* KEYS[2]: the API key, by its SHA-256 */
    if (ctx->apikey.len) {
        p = ngx_pnalloc(r->pool, sizeof("omni:apikey:") - 1
                                 + SHA256_DIGEST_LENGTH * 2);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->argv[i] = (char *) p;
        p = ngx_cpymem(p, "omni:apikey:", sizeof("omni:apikey:") - 1);
        p = ngx_hex_dump(p, ctx->apikey.data, ctx->apikey.len);
        ctx->argvlen[i] = p - (u_char *) ctx->argv[i];
        i++;

    } else {
        ctx->argv[i] = "";
        ctx->argvlen[i++] = 0;
    }

    /* KEYS[3..]: one state per limit */
    for (n = 0; n < nlimits; n++) {

        if (ngx_http_omni_limit_key(r, ctx, limits[n].zone, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        p = ngx_pnalloc(r->pool, sizeof("omni:rl:") + limits[n].zone->name.len
                                 + key.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->argv[i] = (char *) p;
        p = ngx_cpymem(p, "omni:rl:", sizeof("omni:rl:") - 1);
        p = ngx_cpymem(p, limits[n].zone->name.data,
                       limits[n].zone->name.len);
        *p++ = ':';
        p = ngx_cpymem(p, key.data, key.len);
        ctx->argvlen[i] = p - (u_char *) ctx->argv[i];
        i++;
    }

    /* ARGV[1]: now comes from Redis TIME */
    ctx->argv[i] = "";
    ctx->argvlen[i++] = 0;

    for (n = 0; n < nlimits; n++) {
        p = ngx_pnalloc(r->pool, 3 * (NGX_INT64_LEN + 1));
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->argv[i] = (char *) p;
        ctx->argvlen[i++] = ngx_sprintf(p, "%L", limits[n].zone->limit.interval)
                            - p;
        p += NGX_INT64_LEN + 1;

        ctx->argv[i] = (char *) p;
        ctx->argvlen[i++] = ngx_sprintf(p, "%L", limits[n].zone->limit.burst)
                            - p;
        p += NGX_INT64_LEN + 1;

        ctx->argv[i] = (char *) p;
        ctx->argvlen[i++] = ngx_sprintf(p, "%ui", limits[n].cost) - p;

        /* keyed by the user an API key resolves to: Redis completes it */
        ctx->argv[i] = ngx_http_omni_limit_by_user(ctx, limits[n].zone)
                       ? "1" : "0";
        ctx->argvlen[i++] = 1;
    }

    ctx->argc = i;

    if (!ngx_http_omni_redis_connected()) {
        ctx->failed = NGX_HTTP_OMNI_REDIS_DOWN;
        return NGX_DECLINED;
    }

    /* malloc'd: it outlives the request when the reply comes too late */
    pending = ngx_alloc(sizeof(ngx_http_omni_pending_t), r->connection->log);
    if (pending == NULL) {
        return NGX_ERROR;
    }

    pending->r = r;
    pending->start = ngx_current_msec;

    /* only a jti to check: EXISTS is the whole script's answer, for a
     * fraction of its cost in Redis */
    pending->sent = (nlimits == 0 && ctx->apikey.len == 0)
                    ? NGX_HTTP_OMNI_SENT_EXISTS : NGX_HTTP_OMNI_SENT_EVALSHA;

    if (ngx_http_omni_limit_send(r, ctx, pending) != NGX_OK) {
        ngx_free(pending);
        ctx->failed = NGX_HTTP_OMNI_REDIS_DOWN;
        return NGX_DECLINED;
    }

    ctx->pending = pending;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        pending->r = NULL;
        return NGX_ERROR;
    }

    cln->handler = ngx_http_omni_limit_cleanup;
    cln->data = r;

    /* hiredis 0.14 has no async timeout: arm our own */
    ctx->timer.handler = ngx_http_omni_limit_timeout;
    ctx->timer.data = r;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, omcf->redis_timeout);

    ctx->waiting = 1;

    return NGX_AGAIN;
}


static void
ngx_http_omni_limit_cleanup(void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);

    if (ctx == NULL) {
        return;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    /* a reply still on its way finds nobody */
    if (ctx->pending) {
        ((ngx_http_omni_pending_t *) ctx->pending)->r = NULL;
        ctx->pending = NULL;
    }
}


static void
ngx_http_omni_limit_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_http_omni_pending_t *pending = privdata;

    ngx_uint_t            again;
    redisReply           *rep = reply;
    ngx_http_request_t   *r;
    ngx_http_omni_ctx_t  *ctx;

    r = pending->r;

    if (r == NULL) {
        ngx_free(pending);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);

    ngx_http_omni_metrics_redis_latency(ngx_current_msec - pending->start);

    again = 0;

    switch (pending->sent) {

    case NGX_HTTP_OMNI_SENT_EVALSHA:
        if (rep != NULL && rep->type == REDIS_REPLY_ERROR && rep->len >= 8
            && ngx_strncmp(rep->str, "NOSCRIPT", 8) == 0)
        {
            /* SCRIPT FLUSH, a restart or a failover: send the text,
             * which caches the script again */
            pending->sent = NGX_HTTP_OMNI_SENT_EVAL;
            again = 1;
            break;
        }

        /* fall through */

    case NGX_HTTP_OMNI_SENT_EVAL:
        if (ngx_http_omni_limit_decision(r, ctx, rep) == NGX_OK) {
            break;
        }

        ngx_http_omni_limit_failure(r, pending, rep);

        if (rep != NULL && ctx->argvlen[3] > 0) {
            /* Redis answers, but with no decision: the limits fall to
             * omni_redis_fail, the token's revocation must not */
            pending->sent = NGX_HTTP_OMNI_SENT_REVOKED;
            again = 1;
            break;
        }

        ctx->failed = rep ? NGX_HTTP_OMNI_REDIS_ERROR
                          : NGX_HTTP_OMNI_REDIS_DOWN;
        break;

    default: /* NGX_HTTP_OMNI_SENT_EXISTS, NGX_HTTP_OMNI_SENT_REVOKED */

        if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
            if (rep->integer) {
                ctx->verdict = 2;

            } else if (pending->sent == NGX_HTTP_OMNI_SENT_REVOKED) {
                /* not revoked; the limits are still undecided */
                ctx->failed = NGX_HTTP_OMNI_REDIS_ERROR;

            } else {
                ctx->verdict = 1;
            }

            break;
        }

        ngx_http_omni_limit_failure(r, pending, rep);

        if (rep == NULL) {
            ctx->failed = NGX_HTTP_OMNI_REDIS_DOWN;
            break;
        }

        /* Redis answers, but not whether the token is revoked: no fail
         * mode may let it through */
        ctx->failed = NGX_HTTP_OMNI_REDIS_ERROR;
        ctx->jti_unknown = 1;
    }

    if (again) {
        if (ngx_http_omni_limit_send(r, ctx, pending) == NGX_OK) {
            return;
        }

        /* the link is going down */
        ngx_http_omni_metrics_redis(NGX_HTTP_OMNI_REDIS_DOWN);
        ctx->failed = NGX_HTTP_OMNI_REDIS_DOWN;
    }

    ctx->pending = NULL;
    ngx_free(pending);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_http_omni_limit_resume(r);
}


/* A reply that is no answer: logged (never the keys) and counted. */

static void
ngx_http_omni_limit_failure(ngx_http_request_t *r,
    ngx_http_omni_pending_t *pending, redisReply *rep)
{
    static const char  *commands[] = { "EVALSHA", "EVAL", "EXISTS",
                                       "EXISTS" };

    if (rep == NULL) {
        /* the connection went down with the command queued; the adapter
         * logs why */
        ngx_http_omni_metrics_redis(NGX_HTTP_OMNI_REDIS_DOWN);
        return;
    }

    if (rep->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: redis %s failed: %*s", commands[pending->sent],
                      (size_t) rep->len, rep->str);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: redis %s: unexpected reply of type %d",
                      commands[pending->sent], rep->type);
    }

    ngx_http_omni_metrics_redis(NGX_HTTP_OMNI_REDIS_ERROR);
}


/*
 * The script's reply into ctx. NGX_ERROR: it is no decision (an error,
 * or a reply of another shape than omni_limit.lua's).
 */

static ngx_int_t
ngx_http_omni_limit_decision(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    redisReply *rep)
{
    size_t        i;
    ngx_str_t     s;
    redisReply  **e;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1
        || rep->element[0]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_ERROR;
    }

    e = rep->element;

    switch (e[0]->integer) {

    case 2:
    case 3:
    case 4:
        ctx->verdict = e[0]->integer;
        return NGX_OK;

    case 0:
    case 1:
        break;

    default:
        return NGX_ERROR;
    }

    if (rep->elements != 9) {
        return NGX_ERROR;
    }

    for (i = 1; i < 9; i++) {
        if (e[i]->type != (i < 5 ? REDIS_REPLY_INTEGER : REDIS_REPLY_STRING))
        {
            return NGX_ERROR;
        }
    }

    if (ctx->apikey.len) {
        /* key_id, user_id, username, role: copied, the reply goes */
        for (i = 0; i < 4; i++) {
            s.data = (u_char *) e[5 + i]->str;
            s.len = e[5 + i]->len;

            ctx->key_fields[i].data = ngx_pnalloc(r->pool, s.len + 1);
            if (ctx->key_fields[i].data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(ctx->key_fields[i].data, s.data, s.len);
            ctx->key_fields[i].len = s.len;
        }
    }

    ctx->verdict = e[0]->integer;
    ctx->remaining = e[1]->integer;
    ctx->retry_after = e[2]->integer;
    ctx->reset = e[3]->integer;
    ctx->tightest = e[4]->integer;

    return NGX_OK;
}


static void
ngx_http_omni_limit_timeout(ngx_event_t *ev)
{
    ngx_http_request_t   *r = ev->data;
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "omni: redis did not answer in time");

    ngx_http_omni_metrics_redis(NGX_HTTP_OMNI_REDIS_TIMEOUT);

    if (ctx->pending) {
        ((ngx_http_omni_pending_t *) ctx->pending)->r = NULL;
        ctx->pending = NULL;
    }

    ctx->failed = NGX_HTTP_OMNI_REDIS_TIMEOUT;

    /* commands are answered in order: one overdue means the link is
     * stuck, and a new one serves the requests that follow */
    ngx_http_omni_redis_teardown();

    ngx_http_omni_limit_resume(r);
}


static void
ngx_http_omni_limit_resume(ngx_http_request_t *r)
{
    ngx_connection_t     *c;
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);
    ctx->waiting = 0;
    ctx->replied = 1;

    c = r->connection;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/* The rate-limit headers of SPEC 5 for the tightest limit. */

static ngx_int_t
ngx_http_omni_limit_headers(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    u_char                 *p;
    time_t                  reset, window;
    int64_t                 capacity;
    ngx_uint_t              i;
    ngx_table_elt_t        *h;
    ngx_http_omni_limit_t  *limit;

    static ngx_str_t  names[] = {
        ngx_string("X-RateLimit-Limit"),
        ngx_string("X-RateLimit-Remaining"),
        ngx_string("X-RateLimit-Reset"),
        ngx_string("RateLimit-Policy"),
        ngx_string("RateLimit")
    };

    if (olcf->limits == NULL || ctx->tightest < 1
        || (ngx_uint_t) ctx->tightest > olcf->limits->nelts)
    {
        return NGX_OK;
    }

    limit = (ngx_http_omni_limit_t *) olcf->limits->elts + ctx->tightest - 1;

    capacity = limit->zone->limit.burst + 1;
    window = (time_t) ((capacity * limit->zone->limit.interval + 999999)
                       / 1000000);
    reset = (time_t) ((ctx->reset + 999) / 1000);

    for (i = 0; i < 5; i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = names[i];

        p = ngx_pnalloc(r->pool, 128);
        if (p == NULL) {
            return NGX_ERROR;
        }

        h->value.data = p;

        switch (i) {
        case 0:
            p = ngx_sprintf(p, "%L", capacity);
            break;
        case 1:
            p = ngx_sprintf(p, "%L", ctx->remaining);
            break;
        case 2:
            p = ngx_sprintf(p, "%T", reset);
            break;
        case 3:
            p = ngx_sprintf(p, "%L;w=%T", capacity, window);
            break;
        default:
            p = ngx_sprintf(p, "limit=%L, remaining=%L, reset=%T", capacity,
                            ctx->remaining, reset);
        }

        h->value.len = p - h->value.data;
    }

    return NGX_OK;
}


/*
 * The request is back with Redis's verdict (or a failure). Returns
 * NGX_DECLINED to go on, or what the access handler returns for a
 * rejection.
 */

ngx_int_t
ngx_http_omni_limit_finish(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_http_omni_ctx_t *ctx)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    if (ctx->jti_unknown) {
        /* Redis answers, but could not say whether the token is revoked;
         * the fail modes are for a Redis out of reach */
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_UNAVAILABLE,
                                    "token revocation cannot be checked "
                                    "now");
    }

    if (ctx->failed && olcf->redis_fail == NGX_HTTP_OMNI_FAIL_LOCAL
        && !ctx->apikey.len)
    {
        /* this node enforces its share of every limit on its own; a jti
         * was checked when Redis answered at all, else the revocation
         * list is out of reach */
        ngx_http_omni_metrics_fail(NGX_HTTP_OMNI_FAIL_LOCAL);

        if (ngx_http_omni_local_check(r, olcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->failed = 0;
    }

    if (ctx->failed) {
        switch (olcf->redis_fail) {

        case NGX_HTTP_OMNI_FAIL_CLOSED:
            ngx_http_omni_metrics_fail(NGX_HTTP_OMNI_FAIL_CLOSED);
            return ngx_http_omni_reject(r, ctx,
                                        NGX_HTTP_OMNI_DENY_UNAVAILABLE,
                                        "the rate limiter is unavailable");

        default:
            /* open: an API key cannot be resolved without Redis */
            ngx_http_omni_metrics_fail(NGX_HTTP_OMNI_FAIL_OPEN);

            if (ctx->apikey.len) {
                return ngx_http_omni_reject(r, ctx,
                                            NGX_HTTP_OMNI_DENY_UNAVAILABLE,
                                            "API keys cannot be checked now");
            }

            return NGX_DECLINED;
        }
    }

    switch (ctx->verdict) {

    case 2:
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_REVOKED,
                                    "the token has been revoked");

    case 3:
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_BAD_APIKEY,
                                    "unknown API key");

    case 4:
        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_BAD_APIKEY,
                                    "expired API key");

    case 0:
        if (ngx_http_omni_limit_headers(r, olcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%L", ctx->retry_after < 0
                                   ? (int64_t) 86400
                                   : (ctx->retry_after + 999) / 1000)
                       - p;

        return ngx_http_omni_reject(r, ctx, NGX_HTTP_OMNI_DENY_RATE_LIMITED,
                                    "too many requests");

    default:
        if (ngx_http_omni_limit_headers(r, olcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }
}
