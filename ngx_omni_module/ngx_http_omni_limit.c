
/*
 * Omni gateway module: the one Redis round trip of a request. jti
 * revocation, API-key lookup and every GCRA limit of the location go to
 * Redis in one call of omni_limit.lua; the request waits in the preaccess
 * phase, under its own timer, and resumes with the decision. When Redis is
 * slow or down, "omni_redis_fail" decides; when it answers without a
 * decision, a jti is still checked, on its own.
 *
 * The requests of this worker that need the script in one pass of the
 * event loop share one call (omni_limit_batch.lua): they are queued, and a
 * posted event, which runs after the pass's I/O events, sends them
 * together. An idle gateway thus sends each request's call in the pass
 * that made it, and a busy one sends fewer, larger calls. Identical
 * requests of a call (the same keys and limits) go as one group with a
 * count: Redis answers the group with the state it found, once, and the
 * module decides its requests one after the other from it, as the script
 * did for the state it left. So Redis's work per request falls as the
 * load rises.
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


/* at most this many requests in one call: its keys and arguments stay
 * bounded, and so does the time Redis spends on it */
#define NGX_HTTP_OMNI_BATCH_MAX  32

#ifndef NGX_HTTP_OMNI_INFLIGHT_MAX
#define NGX_HTTP_OMNI_INFLIGHT_MAX  1
#endif


/*
 * What a request has in flight. The script is the round trip; EXISTS
 * follows only a failure, or stands for it when a jti is all to check:
 *
 *   SCRIPT (queued, then in a batch) --error or no decision,
 *                                      with a jti--> REVOKED
 *   EXISTS: no limits, no API key
 */
typedef enum {
    NGX_HTTP_OMNI_SENT_SCRIPT = 0,
    NGX_HTTP_OMNI_SENT_EXISTS,
    NGX_HTTP_OMNI_SENT_REVOKED
} ngx_http_omni_sent_e;


/* the request a Redis reply belongs to; NULL once the request gave up */
typedef struct {
    ngx_http_request_t         *r;
    ngx_http_omni_sent_e        sent;
    ngx_msec_t                  start;
    ngx_queue_t                 queue;          /* while queued */
    ngx_uint_t                  queued;
    ngx_uint_t                  apikey;         /* its reply has ids */
    ngx_uint_t                  nlimits;
    ngx_http_omni_limit_t      *limits;
} ngx_http_omni_pending_t;


/* A group's answer: the clock and the limits' states as Redis found
 * them, each request of the group decided in turn */
typedef struct {
    int64_t                     now;
    ngx_uint_t                  n;
    omni_gcra_item_t            items[NGX_HTTP_OMNI_MAX_LIMITS];
} ngx_http_omni_group_t;


/* One script call for several requests, malloc'd with the command in
 * Redis's protocol: a NOSCRIPT answer (or, to FCALL, a function Redis no
 * longer has) sends it again as EVAL, when some of its requests may be
 * gone. */
typedef struct {
    ngx_uint_t                  n;
    ngx_uint_t                  ngroups;
    ngx_uint_t                  eval;
    ngx_uint_t                  fcall;
    ngx_uint_t                  argc;
    u_char                     *cmd;  /* FCALL name or EVALSHA sha, args */
    size_t                      len;
    u_char                     *args;  /* past the sha or the name */
    ngx_http_omni_pending_t    *pending[NGX_HTTP_OMNI_BATCH_MAX];
    u_char                      count[NGX_HTTP_OMNI_BATCH_MAX];
} ngx_http_omni_batch_t;


static void ngx_http_omni_limit_enqueue(ngx_http_request_t *r,
    ngx_http_omni_pending_t *pending);
static void ngx_http_omni_limit_flush(ngx_event_t *ev);
static ngx_http_omni_batch_t *ngx_http_omni_limit_batch(void);
static u_char *ngx_http_omni_limit_uint(u_char *p, size_t n);
static u_char *ngx_http_omni_limit_arg(u_char *p, u_char *data, size_t len);
static u_char *ngx_http_omni_limit_int_arg(u_char *p, ngx_uint_t n);
static ngx_int_t ngx_http_omni_limit_send_batch(
    ngx_http_omni_batch_t *batch);
static ngx_uint_t ngx_http_omni_limit_lost(ngx_http_omni_batch_t *batch,
    redisReply *rep);
static ngx_uint_t ngx_http_omni_limit_error_is(redisReply *rep,
    const char *prefix);
static void ngx_http_omni_limit_batch_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static ngx_int_t ngx_http_omni_limit_send(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_http_omni_pending_t *pending);
static ngx_int_t ngx_http_omni_limit_group(ngx_http_omni_group_t *group,
    ngx_http_omni_pending_t *first, redisReply **e);
static void ngx_http_omni_limit_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_omni_limit_answer(ngx_http_omni_pending_t *pending,
    redisReply *rep, omni_gcra_result_t *res);
static void ngx_http_omni_limit_failure(ngx_http_request_t *r,
    ngx_http_omni_pending_t *pending, redisReply *rep);
static ngx_int_t ngx_http_omni_limit_decision(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, redisReply *rep, omni_gcra_result_t *res);
static void ngx_http_omni_limit_timeout(ngx_event_t *ev);
static void ngx_http_omni_limit_resume(ngx_http_request_t *r);


/*
 * omni_limit_batch.lua defines run(KEYS, ARGV); it goes to Redis in two
 * forms. The function library (Redis 7 and later) is loaded once per
 * connection and called by FCALL: what the file defines is made once, not
 * on every call, a third of the script's time. The script, the file and a
 * return, is for a Redis without functions (EVALSHA) and for one that has
 * lost both (EVAL).
 */
#define NGX_HTTP_OMNI_LIMIT_SCRIPT_TAIL  "\nreturn run(KEYS, ARGV)\n"

/* omni_limit_<the first 16 hex digits of the file's SHA-1> */
#define NGX_HTTP_OMNI_LIMIT_FUNCTION_LEN  (sizeof("omni_limit_") - 1 + 16)

static u_char  ngx_http_omni_limit_script_text[
    sizeof(OMNI_LIMIT_BATCH_LUA) - 1
    + sizeof(NGX_HTTP_OMNI_LIMIT_SCRIPT_TAIL)];

static u_char  ngx_http_omni_limit_library_text[
    sizeof("#!lua name=\n") - 1 + NGX_HTTP_OMNI_LIMIT_FUNCTION_LEN
    + sizeof(OMNI_LIMIT_BATCH_LUA) - 1
    + sizeof("\nredis.register_function('', run)\n") - 1
    + NGX_HTTP_OMNI_LIMIT_FUNCTION_LEN];
static size_t  ngx_http_omni_limit_library_len;

static u_char  ngx_http_omni_limit_function[
    NGX_HTTP_OMNI_LIMIT_FUNCTION_LEN];
static u_char  ngx_http_omni_limit_sha[SHA_DIGEST_LENGTH * 2 + 1];

/* the library is loaded on this worker's Redis connection: FCALL */
static ngx_uint_t   ngx_http_omni_limit_fcall;

/* this worker's requests waiting for the end of the pass */
static ngx_queue_t  ngx_http_omni_limit_queue;
static ngx_event_t  ngx_http_omni_limit_flush_event;

/* this worker's script calls awaiting their reply */
static ngx_uint_t   ngx_http_omni_limit_inflight;


void
ngx_http_omni_limit_init_script(void)
{
    u_char  *p, md[SHA_DIGEST_LENGTH];

    p = ngx_cpymem(ngx_http_omni_limit_script_text, OMNI_LIMIT_BATCH_LUA,
                   sizeof(OMNI_LIMIT_BATCH_LUA) - 1);
    ngx_memcpy(p, NGX_HTTP_OMNI_LIMIT_SCRIPT_TAIL,
               sizeof(NGX_HTTP_OMNI_LIMIT_SCRIPT_TAIL) - 1);

    SHA1(ngx_http_omni_limit_script_text,
         sizeof(ngx_http_omni_limit_script_text) - 1, md);
    ngx_hex_dump(ngx_http_omni_limit_sha, md, SHA_DIGEST_LENGTH);
    ngx_http_omni_limit_sha[SHA_DIGEST_LENGTH * 2] = '\0';

    /* the file's own hash names the library: two gateway versions that
     * share a Redis during a rolling upgrade call each its own */
    SHA1((u_char *) OMNI_LIMIT_BATCH_LUA, sizeof(OMNI_LIMIT_BATCH_LUA) - 1,
         md);
    p = ngx_cpymem(ngx_http_omni_limit_function, "omni_limit_",
                   sizeof("omni_limit_") - 1);
    ngx_hex_dump(p, md, 8);

    p = ngx_cpymem(ngx_http_omni_limit_library_text, "#!lua name=",
                   sizeof("#!lua name=") - 1);
    p = ngx_cpymem(p, ngx_http_omni_limit_function,
                   NGX_HTTP_OMNI_LIMIT_FUNCTION_LEN);
    *p++ = LF;
    p = ngx_cpymem(p, OMNI_LIMIT_BATCH_LUA, sizeof(OMNI_LIMIT_BATCH_LUA) - 1);
    p = ngx_cpymem(p, "\nredis.register_function('",
                   sizeof("\nredis.register_function('") - 1);
    p = ngx_cpymem(p, ngx_http_omni_limit_function,
                   NGX_HTTP_OMNI_LIMIT_FUNCTION_LEN);
    p = ngx_cpymem(p, "', run)\n", sizeof("', run)\n") - 1);
    ngx_http_omni_limit_library_len = p - ngx_http_omni_limit_library_text;
}


const char *
ngx_http_omni_limit_script(size_t *len)
{
    *len = sizeof(ngx_http_omni_limit_script_text) - 1;
    return (const char *) ngx_http_omni_limit_script_text;
}


const char *
ngx_http_omni_limit_library(size_t *len)
{
    *len = ngx_http_omni_limit_library_len;
    return (const char *) ngx_http_omni_limit_library_text;
}


/* The library is loaded on the connection (FUNCTION LOAD answered), or
 * the connection is new, or Redis has lost it. */

void
ngx_http_omni_limit_use_function(ngx_uint_t on)
{
    ngx_http_omni_limit_fcall = on;
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


/* EXISTS KEYS[1] alone: the numkeys slot before it becomes the command */

static ngx_int_t
ngx_http_omni_limit_send(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_http_omni_pending_t *pending)
{
    ctx->argv[2] = "EXISTS";
    ctx->argvlen[2] = 6;

    return ngx_http_omni_redis_command(ngx_http_omni_limit_reply, pending,
                                       2, &ctx->argv[2], &ctx->argvlen[2]);
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
    size_t                      n, i, j, nlimits;
    ngx_str_t                   key;
    ngx_http_omni_limit_t      *limits;
    ngx_http_omni_pending_t    *pending;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    nlimits = olcf->limits ? olcf->limits->nelts : 0;
    limits = olcf->limits ? olcf->limits->elts : NULL;

    /* as a call of its own: EVALSHA sha numkeys KEYS... now ARGV...; a
     * batch copies KEYS and ARGV from here */
    n = 3 + 2 + nlimits + 1 + 4 * nlimits;
    ctx->nlimits = nlimits;

    ctx->argv = ngx_palloc(r->pool, n * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, n * sizeof(size_t));
    if (ctx->argv == NULL || ctx->argvlen == NULL) {
        return NGX_ERROR;
    }

    /* argv[2], numkeys, is EXISTS's slot alone: a batch counts its own */
    i = 2;
    ctx->argv[i] = "";
    ctx->argvlen[i++] = 0;

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
        for (j = 0; j < 3; j++) {
            ctx->argv[i] = (char *) limits[n].args[j].data;
            ctx->argvlen[i++] = limits[n].args[j].len;
        }

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

    pending->queued = 0;
    pending->apikey = (ctx->apikey.len > 0);
    pending->nlimits = nlimits;
    pending->limits = limits;

    if (nlimits == 0 && ctx->apikey.len == 0) {
        /* only a jti to check: EXISTS is the whole script's answer, for a
         * fraction of its cost in Redis */
        pending->sent = NGX_HTTP_OMNI_SENT_EXISTS;

        if (ngx_http_omni_limit_send(r, ctx, pending) != NGX_OK) {
            ngx_free(pending);
            ctx->failed = NGX_HTTP_OMNI_REDIS_DOWN;
            return NGX_DECLINED;
        }

    } else {
        pending->sent = NGX_HTTP_OMNI_SENT_SCRIPT;
        ngx_http_omni_limit_enqueue(r, pending);
    }

    ctx->pending = pending;

    /* hiredis 0.14 has no async timeout: arm our own */
    ctx->timer.handler = ngx_http_omni_limit_timeout;
    ctx->timer.data = r;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, omcf->redis_timeout);

    return NGX_AGAIN;
}


/*
 * The request goes (or gives up): still queued, it leaves the queue; sent,
 * the reply on its way finds nobody.
 */

void
ngx_http_omni_limit_abandon(ngx_http_omni_ctx_t *ctx)
{
    ngx_http_omni_pending_t  *pending;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    pending = ctx->pending;

    if (pending == NULL) {
        return;
    }

    if (pending->queued) {
        ngx_queue_remove(&pending->queue);
        ngx_free(pending);

    } else {
        pending->r = NULL;
    }

    ctx->pending = NULL;
}


static void
ngx_http_omni_limit_enqueue(ngx_http_request_t *r,
    ngx_http_omni_pending_t *pending)
{
    ngx_event_t  *ev;

    ev = &ngx_http_omni_limit_flush_event;

    if (ev->handler == NULL) {
        ngx_queue_init(&ngx_http_omni_limit_queue);
        ev->handler = ngx_http_omni_limit_flush;
        ev->log = ngx_cycle->log;
    }

    ngx_queue_insert_tail(&ngx_http_omni_limit_queue, &pending->queue);
    pending->queued = 1;

    if (!ev->posted) {
        ngx_post_event(ev, &ngx_posted_events);
    }
}


/* The end of the pass: every queued request goes, in calls of at most
 * NGX_HTTP_OMNI_BATCH_MAX. */

static void
ngx_http_omni_limit_flush(ngx_event_t *ev)
{
    ngx_uint_t                i;
    ngx_http_request_t       *r;
    ngx_http_omni_ctx_t      *ctx;
    ngx_http_omni_batch_t    *batch;
    ngx_http_omni_pending_t  *pending;

    while (!ngx_queue_empty(&ngx_http_omni_limit_queue)
           && ngx_http_omni_limit_inflight < NGX_HTTP_OMNI_INFLIGHT_MAX)
    {
        batch = ngx_http_omni_limit_batch();

        if (batch != NULL && ngx_http_omni_limit_send_batch(batch) == NGX_OK)
        {
            ngx_http_omni_limit_inflight++;
            continue;
        }

        /* no memory, or the link went down since the requests came */

        for (i = 0; batch && i < batch->n; i++) {
            pending = batch->pending[i];
            r = pending->r;
            ngx_free(pending);

            ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);
            ctx->pending = NULL;
            ctx->failed = NGX_HTTP_OMNI_REDIS_DOWN;

            if (ctx->timer.timer_set) {
                ngx_del_timer(&ctx->timer);
            }

            ngx_http_omni_metrics_redis(NGX_HTTP_OMNI_REDIS_DOWN);
            ngx_http_omni_limit_resume(r);
        }

        if (batch == NULL) {
            return;
        }

        ngx_free(batch);
    }
}


/*
 * The call for the first NGX_HTTP_OMNI_BATCH_MAX queued requests, which
 * leave the queue, identical ones as one group; NULL when there is no
 * memory for it (they stay).
 */

static ngx_http_omni_batch_t *
ngx_http_omni_limit_batch(void)
{
    u_char                   *p, groups[2 * NGX_HTTP_OMNI_BATCH_MAX];
    size_t                    size;
    ngx_uint_t                n, i, j, g, argc, nkeys, nprofiles, ngroups;
    ngx_queue_t              *q;
    ngx_http_omni_ctx_t      *ctx, *pctx;
    ngx_http_omni_batch_t    *batch;
    ngx_http_omni_pending_t  *pending, *taken[NGX_HTTP_OMNI_BATCH_MAX];
    ngx_http_omni_ctx_t      *profiles[NGX_HTTP_OMNI_BATCH_MAX];
    ngx_http_omni_ctx_t      *firsts[NGX_HTTP_OMNI_BATCH_MAX];
    u_char                    group[NGX_HTTP_OMNI_BATCH_MAX];

    /* an argument is "$<len>\r\n<bytes>\r\n" */
#define NGX_HTTP_OMNI_ARG_SIZE  (1 + NGX_INT_T_LEN + 4)

    /* EVALSHA sha (or FCALL name) numkeys KEYS... now P profiles...
     * groups */
    argc = 6;
    nkeys = 0;
    nprofiles = 0;
    ngroups = 0;
    size = 1 + NGX_INT_T_LEN + 2
           + sizeof("EVALSHA") + SHA_DIGEST_LENGTH * 2
           + 6 * NGX_HTTP_OMNI_ARG_SIZE + 2 * NGX_INT_T_LEN
           + 2 * NGX_HTTP_OMNI_BATCH_MAX;
    n = 0;

    for (q = ngx_queue_head(&ngx_http_omni_limit_queue);
         q != ngx_queue_sentinel(&ngx_http_omni_limit_queue)
         && n < NGX_HTTP_OMNI_BATCH_MAX;
         q = ngx_queue_next(q))
    {
        pending = ngx_queue_data(q, ngx_http_omni_pending_t, queue);
        ctx = ngx_http_get_module_ctx(pending->r, ngx_http_omni_module);

        /* its limits' ARGV: the location's, the same pointers for every
         * request of it but the user-keyed flags, so one comparison of
         * the pointers finds the profile */
        for (j = 0; j < nprofiles; j++) {
            pctx = profiles[j];

            if (pctx->nlimits == ctx->nlimits
                && ngx_memcmp(&pctx->argv[pctx->argc - 4 * pctx->nlimits],
                              &ctx->argv[ctx->argc - 4 * ctx->nlimits],
                              4 * ctx->nlimits * sizeof(char *))
                   == 0)
            {
                break;
            }
        }

        if (j == nprofiles) {
            profiles[nprofiles++] = ctx;
            argc += 1 + 4 * ctx->nlimits;
            size += NGX_HTTP_OMNI_ARG_SIZE + NGX_INT_T_LEN;

            for (i = ctx->argc - 4 * ctx->nlimits; i < ctx->argc; i++) {
                size += NGX_HTTP_OMNI_ARG_SIZE + ctx->argvlen[i];
            }
        }

        /* a group: the same profile and the same KEYS, from argv[3] */
        for (g = 0; g < ngroups; g++) {
            pctx = firsts[g];

            if (groups[2 * g] != j + 1) {
                continue;
            }

            for (i = 3; i < 3 + 2 + ctx->nlimits; i++) {
                if (pctx->argvlen[i] != ctx->argvlen[i]
                    || ngx_memcmp(pctx->argv[i], ctx->argv[i],
                                  ctx->argvlen[i])
                       != 0)
                {
                    break;
                }
            }

            if (i == 3 + 2 + ctx->nlimits) {
                break;
            }
        }

        if (g == ngroups) {
            firsts[ngroups++] = ctx;
            groups[2 * g] = (u_char) (j + 1);
            groups[2 * g + 1] = 0;

            argc += 2 + ctx->nlimits;
            nkeys += 2 + ctx->nlimits;

            for (i = 3; i < 3 + 2 + ctx->nlimits; i++) {
                size += NGX_HTTP_OMNI_ARG_SIZE + ctx->argvlen[i];
            }
        }

        groups[2 * g + 1]++;
        group[n] = (u_char) g;
        taken[n++] = pending;
    }

    batch = ngx_alloc(sizeof(ngx_http_omni_batch_t) + size, ngx_cycle->log);
    if (batch == NULL) {
        return NULL;
    }

    batch->n = n;
    batch->ngroups = ngroups;
    batch->eval = 0;
    batch->fcall = ngx_http_omni_limit_fcall;
    batch->argc = argc;
    batch->cmd = (u_char *) (batch + 1);

    /* the requests, group after group, each in queue order */
    i = 0;

    for (g = 0; g < ngroups; g++) {
        batch->count[g] = groups[2 * g + 1];

        for (j = 0; j < n; j++) {
            if (group[j] == g) {
                pending = taken[j];
                ngx_queue_remove(&pending->queue);
                pending->queued = 0;
                batch->pending[i++] = pending;
            }
        }
    }

    p = ngx_sprintf(batch->cmd, "*%ui\r\n", argc);

    if (batch->fcall) {
        p = ngx_http_omni_limit_arg(p, (u_char *) "FCALL", 5);
        p = ngx_http_omni_limit_arg(p, ngx_http_omni_limit_function,
                                    NGX_HTTP_OMNI_LIMIT_FUNCTION_LEN);

    } else {
        p = ngx_http_omni_limit_arg(p, (u_char *) "EVALSHA", 7);
        p = ngx_http_omni_limit_arg(p, ngx_http_omni_limit_sha,
                                    SHA_DIGEST_LENGTH * 2);
    }

    batch->args = p;

    p = ngx_http_omni_limit_int_arg(p, nkeys);

    /* KEYS, a group's once, in group order */
    for (g = 0; g < ngroups; g++) {
        ctx = firsts[g];

        for (i = 3; i < 3 + 2 + ctx->nlimits; i++) {
            p = ngx_http_omni_limit_arg(p, (u_char *) ctx->argv[i],
                                        ctx->argvlen[i]);
        }
    }

    /* ARGV[1], now: Redis's own; the profiles; each group's profile and
     * count */
    p = ngx_http_omni_limit_arg(p, NULL, 0);
    p = ngx_http_omni_limit_int_arg(p, nprofiles);

    for (j = 0; j < nprofiles; j++) {
        ctx = profiles[j];

        p = ngx_http_omni_limit_int_arg(p, ctx->nlimits);

        for (i = ctx->argc - 4 * ctx->nlimits; i < ctx->argc; i++) {
            p = ngx_http_omni_limit_arg(p, (u_char *) ctx->argv[i],
                                        ctx->argvlen[i]);
        }
    }

    p = ngx_http_omni_limit_arg(p, groups, 2 * ngroups);

    batch->len = p - batch->cmd;

    return batch;
}


/* a decimal number: ngx_sprintf() costs ten times as much, per argument */

static u_char *
ngx_http_omni_limit_uint(u_char *p, size_t n)
{
    u_char  *last, buf[NGX_INT_T_LEN];

    last = buf + NGX_INT_T_LEN;

    do {
        *--last = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, last, buf + NGX_INT_T_LEN - last);
}


static u_char *
ngx_http_omni_limit_arg(u_char *p, u_char *data, size_t len)
{
    *p++ = '$';
    p = ngx_http_omni_limit_uint(p, len);
    *p++ = CR;
    *p++ = LF;
    p = ngx_cpymem(p, data, len);
    *p++ = CR;
    *p++ = LF;

    return p;
}


static u_char *
ngx_http_omni_limit_int_arg(u_char *p, ngx_uint_t n)
{
    u_char  buf[NGX_INT_T_LEN];

    return ngx_http_omni_limit_arg(p, buf,
                                   ngx_http_omni_limit_uint(buf, n) - buf);
}


/* FCALL or EVALSHA, or with the text (EVAL) once Redis has lost what
 * they call */

static ngx_int_t
ngx_http_omni_limit_send_batch(ngx_http_omni_batch_t *batch)
{
    u_char      *cmd, *p;
    size_t       len, script_len;
    ngx_int_t    rc;
    const char  *script;

    if (!batch->eval) {
        return ngx_http_omni_redis_formatted(ngx_http_omni_limit_batch_reply,
                                             batch, batch->cmd, batch->len);
    }

    script = ngx_http_omni_limit_script(&script_len);
    len = 1 + NGX_INT_T_LEN + 2 + 2 * NGX_HTTP_OMNI_ARG_SIZE + 4 + script_len
          + batch->len - (batch->args - batch->cmd);

    cmd = ngx_alloc(len, ngx_cycle->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(cmd, "*%ui\r\n", batch->argc);
    p = ngx_http_omni_limit_arg(p, (u_char *) "EVAL", 4);
    p = ngx_http_omni_limit_arg(p, (u_char *) script, script_len);
    p = ngx_cpymem(p, batch->args, batch->len - (batch->args - batch->cmd));

    rc = ngx_http_omni_redis_formatted(ngx_http_omni_limit_batch_reply, batch,
                                       cmd, p - cmd);
    ngx_free(cmd);

    return rc;
}


/*
 * Whether Redis refused the call for lacking what it calls: NOSCRIPT to
 * EVALSHA; to FCALL, a library flushed or never replicated ("Function not
 * found"), which is loaded again, or FCALL taken away from the gateway's
 * Redis user (NOPERM), after which this connection calls EVALSHA.
 */

static ngx_uint_t
ngx_http_omni_limit_lost(ngx_http_omni_batch_t *batch, redisReply *rep)
{
    if (!batch->fcall) {
        return ngx_http_omni_limit_error_is(rep, "NOSCRIPT");
    }

    if (ngx_http_omni_limit_error_is(rep, "ERR Function not found")) {
        if (ngx_http_omni_limit_fcall) {
            ngx_http_omni_limit_fcall = 0;
            ngx_http_omni_redis_load_library();
        }

        return 1;
    }

    if (ngx_http_omni_limit_error_is(rep, "NOPERM")) {
        ngx_http_omni_limit_fcall = 0;
        return 1;
    }

    return 0;
}


static ngx_uint_t
ngx_http_omni_limit_error_is(redisReply *rep, const char *prefix)
{
    size_t  len;

    len = ngx_strlen(prefix);

    return rep->len >= len && ngx_strncmp(rep->str, prefix, len) == 0;
}


/*
 * A batch's reply, one flat array: each group gets its elements (one, the
 * answer of each of its requests, or 0, now, a state per limit and, with
 * an API key, four ids), or, when the call as a whole failed or the array
 * is short, the failure.
 */

static void
ngx_http_omni_limit_batch_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_omni_batch_t *batch = privdata;

    ngx_uint_t                i, j, k, g, count;
    redisReply               *rep = reply, *e, *one, slice;
    omni_gcra_result_t        res, *decided;
    ngx_http_omni_group_t     group, *grp;
    ngx_http_omni_pending_t  *first;

    static redisReply  short_reply = { .type = REDIS_REPLY_NIL };

    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && !batch->eval
        && ngx_http_omni_limit_lost(batch, rep))
    {
        /* SCRIPT FLUSH or FUNCTION FLUSH, a restart or a failover: send
         * the text, which caches the script again */
        batch->eval = 1;

        if (ngx_http_omni_limit_send_batch(batch) == NGX_OK) {
            return;
        }

        /* the link is going down */
        rep = NULL;
    }

    ngx_http_omni_limit_inflight--;

    k = 0;
    i = 0;

    for (g = 0; g < batch->ngroups; g++) {
        first = batch->pending[i];
        one = rep;
        grp = NULL;

        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
            one = &short_reply;

            if (k < rep->elements) {
                e = rep->element[k];
                count = (e->type == REDIS_REPLY_INTEGER && e->integer == 0)
                        ? 2 + first->nlimits + (first->apikey ? 4 : 0) : 1;

                if (k + count <= rep->elements) {
                    if (count > 1) {
                        if (ngx_http_omni_limit_group(&group, first,
                                                      &rep->element[k])
                            == NGX_OK)
                        {
                            grp = &group;

                            /* the ids, for each request of the group */
                            slice.type = REDIS_REPLY_ARRAY;
                            slice.elements = first->apikey ? 4 : 0;
                            slice.element = &rep->element[k + 2
                                                          + first->nlimits];
                            one = &slice;
                        }

                    } else if (e->type == REDIS_REPLY_INTEGER) {
                        slice.type = REDIS_REPLY_ARRAY;
                        slice.elements = 1;
                        slice.element = &rep->element[k];
                        one = &slice;

                    } else {
                        one = e;
                    }

                    k += count;
                }
            }
        }

        for (j = 0; j < batch->count[g]; j++) {
            decided = NULL;

            /* every request Redis counted, gone or not, moves the state
             * the next one sees */
            if (grp != NULL
                && omni_gcra_check_all(grp->items, grp->n, grp->now, &res)
                   == 0)
            {
                decided = &res;
            }

            ngx_http_omni_limit_answer(batch->pending[i++],
                                       (grp && !decided) ? &short_reply
                                                         : one,
                                       decided);
        }
    }

    ngx_free(batch);

    if (!ngx_queue_empty(&ngx_http_omni_limit_queue)
        && !ngx_http_omni_limit_flush_event.posted)
    {
        ngx_post_event(&ngx_http_omni_limit_flush_event, &ngx_posted_events);
    }
}


/*
 * A group's answer: e[0] is 0, e[1] now, then a state per limit, all
 * integers in range, the ids strings. NGX_ERROR: it is no answer.
 */

static ngx_int_t
ngx_http_omni_limit_group(ngx_http_omni_group_t *group,
    ngx_http_omni_pending_t *first, redisReply **e)
{
    ngx_uint_t              i, n;
    ngx_http_omni_limit_t  *limit;

    n = first->nlimits;

    if (n > NGX_HTTP_OMNI_MAX_LIMITS || e[1]->type != REDIS_REPLY_INTEGER
        || e[1]->integer < 0 || e[1]->integer > OMNI_GCRA_MAX_TIME)
    {
        return NGX_ERROR;
    }

    group->now = e[1]->integer;
    group->n = n;

    for (i = 0; i < n; i++) {
        if (e[2 + i]->type != REDIS_REPLY_INTEGER || e[2 + i]->integer < 0) {
            return NGX_ERROR;
        }

        limit = &first->limits[i];

        group->items[i].limit = limit->zone->limit;
        group->items[i].cost = limit->cost;
        group->items[i].tat = e[2 + i]->integer;
        group->items[i].ttl_us = 0;
    }

    for (i = 0; first->apikey && i < 4; i++) {
        if (e[2 + n + i]->type != REDIS_REPLY_STRING) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* EXISTS's reply */

static void
ngx_http_omni_limit_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_http_omni_limit_answer(privdata, reply, NULL);
}


/*
 * A request's answer: res, its group's decision (rep holds the ids), or
 * rep alone.
 */

static void
ngx_http_omni_limit_answer(ngx_http_omni_pending_t *pending, redisReply *rep,
    omni_gcra_result_t *res)
{
    ngx_uint_t            again;
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

    case NGX_HTTP_OMNI_SENT_SCRIPT:
        if (ngx_http_omni_limit_decision(r, ctx, rep, res) == NGX_OK) {
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
    static const char  *commands[] = { "omni_limit.lua", "EXISTS",
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

        ngx_http_omni_redis_error((u_char *) rep->str, rep->len);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: redis %s: unexpected reply of type %d",
                      commands[pending->sent], rep->type);
    }

    ngx_http_omni_metrics_redis(NGX_HTTP_OMNI_REDIS_ERROR);
}


/*
 * The script's answer into ctx: res, the group's decision for this
 * request, and the ids in rep; else rep, {2}, {3} or {4}. NGX_ERROR: it is
 * no answer (an error, or a reply of another shape).
 */

static ngx_int_t
ngx_http_omni_limit_decision(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    redisReply *rep, omni_gcra_result_t *res)
{
    size_t        i;
    redisReply  **e;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    e = rep->element;

    if (res == NULL) {
        if (rep->elements != 1 || e[0]->type != REDIS_REPLY_INTEGER
            || e[0]->integer < 2 || e[0]->integer > 4)
        {
            return NGX_ERROR;
        }

        ctx->verdict = e[0]->integer;
        return NGX_OK;
    }

    if (rep->elements != (ctx->apikey.len ? 4 : 0)) {
        return NGX_ERROR;
    }

    /* key_id, user_id, username, role: copied, the reply goes */
    for (i = 0; i < rep->elements; i++) {
        ctx->key_fields[i].data = ngx_pnalloc(r->pool, e[i]->len + 1);
        if (ctx->key_fields[i].data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->key_fields[i].data, e[i]->str, e[i]->len);
        ctx->key_fields[i].len = e[i]->len;
    }

    ctx->verdict = res->allowed;
    ctx->remaining = res->remaining;
    ctx->retry_after = omni_gcra_ms(res->retry_after_us);
    ctx->reset = omni_gcra_ms(res->reset_us);
    ctx->tightest = res->index + 1;

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

