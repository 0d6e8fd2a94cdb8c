
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


static u_char  ngx_http_omni_limit_sha[SHA_DIGEST_LENGTH * 2 + 1];


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

    /* hiredis 0.14 has no async timeout: arm our own */
    ctx->timer.handler = ngx_http_omni_limit_timeout;
    ctx->timer.data = r;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, omcf->redis_timeout);

    return NGX_AGAIN;
}


/* The request goes (or gives up): a reply still on its way finds nobody. */

void
ngx_http_omni_limit_abandon(ngx_http_omni_ctx_t *ctx)
{
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

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

    ngx_http_omni_limit_abandon(ctx);

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
    ctx->state = NGX_HTTP_OMNI_STATE_REPLIED;

    c = r->connection;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}

