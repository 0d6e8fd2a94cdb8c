/* redis.c: hiredis async connection with reconnect, on the libevent loop. */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "log.h"
#include "redis.h"


#define OMNI_REDIS_BACKOFF_MIN_MS  100
#define OMNI_REDIS_BACKOFF_MAX_MS  2000

struct omni_redis {
    struct event_base  *base;
    redisAsyncContext  *ctx;
    char               *host;       /* numeric address, or NULL for unix */
    char               *path;       /* unix socket path */
    int                 port;
    char               *password;
    int                 connected;
    int                 closing;
    int                 backoff_ms;
    struct event        retry;
};

typedef struct {
    omni_redis_ping_pt  cb;
    void               *arg;
    int                 done;       /* cb already called (timed out) */
    struct event        timer;
} omni_redis_ping_t;


static void omni_redis_connect(omni_redis_t *r);


static void
omni_redis_schedule(omni_redis_t *r)
{
    struct timeval  tv;
    int             ms;

    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2
                                  : OMNI_REDIS_BACKOFF_MIN_MS;
    if (r->backoff_ms > OMNI_REDIS_BACKOFF_MAX_MS) {
        r->backoff_ms = OMNI_REDIS_BACKOFF_MAX_MS;
    }
    ms = r->backoff_ms + rand() % (r->backoff_ms / 4 + 1);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(&r->retry, &tv);
}


static void
omni_redis_retry(evutil_socket_t fd, short what, void *arg)
{
    omni_redis_connect(arg);
}


static void
omni_redis_auth_done(redisAsyncContext *ctx, void *reply, void *privdata)
{
    redisReply *rep = reply;

    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        omni_log(OMNI_LOG_ERROR, "redis AUTH failed", NULL);
        redisAsyncDisconnect(ctx);
    }
}


static void
omni_redis_on_connect(const redisAsyncContext *ctx, int status)
{
    omni_redis_t *r = ctx->data;
    char          buf[256];

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        omni_log(OMNI_LOG_WARN, "redis connect failed", "\"error\":\"%s\"",
                 omni_log_escape(buf, sizeof(buf), ctx->errstr));
        r->ctx = NULL;
        if (!r->closing) {
            omni_redis_schedule(r);
        }
        return;
    }

    r->connected = 1;
    r->backoff_ms = 0;
    omni_log(OMNI_LOG_INFO, "redis connected", NULL);
}


static void
omni_redis_on_disconnect(const redisAsyncContext *ctx, int status)
{
    omni_redis_t *r = ctx->data;
    char          buf[256];

    r->ctx = NULL;
    r->connected = 0;
    if (r->closing) {
        return;
    }
    omni_log(OMNI_LOG_WARN, "redis disconnected", "\"error\":\"%s\"",
             omni_log_escape(buf, sizeof(buf),
                             status == REDIS_OK ? "closed" : ctx->errstr));
    omni_redis_schedule(r);
}


static void
omni_redis_connect(omni_redis_t *r)
{
    redisAsyncContext *ctx;

    ctx = r->path ? redisAsyncConnectUnix(r->path)
                  : redisAsyncConnect(r->host, r->port);
    if (ctx == NULL || ctx->err) {
        char buf[256];

        omni_log(OMNI_LOG_WARN, "redis connect failed", "\"error\":\"%s\"",
                 omni_log_escape(buf, sizeof(buf),
                                 ctx ? ctx->errstr : "out of memory"));
        if (ctx) {
            redisAsyncFree(ctx);
        }
        omni_redis_schedule(r);
        return;
    }

    ctx->data = r;
    r->ctx = ctx;
    redisLibeventAttach(ctx, r->base);
    redisAsyncSetConnectCallback(ctx, omni_redis_on_connect);
    redisAsyncSetDisconnectCallback(ctx, omni_redis_on_disconnect);

    /* queued before anything else, so every command runs authenticated */
    if (r->password) {
        redisAsyncCommand(ctx, omni_redis_auth_done, NULL, "AUTH %s",
                          r->password);
    }
}


omni_redis_t *
omni_redis_create(struct event_base *base, const char *addr,
    const char *password, char *err, size_t errlen)
{
    omni_redis_t     *r;
    struct addrinfo   hints, *res = NULL;
    char              host[256], ip[64];
    const char       *colon;
    int               rc;

    r = calloc(1, sizeof(omni_redis_t));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->base = base;
    evtimer_assign(&r->retry, base, omni_redis_retry, r);
    r->password = password ? strdup(password) : NULL;

    if (strncmp(addr, "unix:", 5) == 0) {
        r->path = strdup(addr + 5);
        goto connect;
    }

    colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr
        || (size_t) (colon - addr) >= sizeof(host))
    {
        snprintf(err, errlen, "OMNI_REDIS_ADDR=%s: expected host:port or "
                 "unix:/path", addr);
        goto failed;
    }
    memcpy(host, addr, colon - addr);
    host[colon - addr] = '\0';
    r->port = atoi(colon + 1);
    if (r->port <= 0 || r->port > 65535) {
        snprintf(err, errlen, "OMNI_REDIS_ADDR=%s: bad port", addr);
        goto failed;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof(ip),
                               NULL, 0, NI_NUMERICHOST) != 0)
    {
        snprintf(err, errlen, "OMNI_REDIS_ADDR=%s: cannot resolve %s: %s",
                 addr, host, rc ? gai_strerror(rc) : "no address");
        goto failed;
    }
    freeaddrinfo(res);
    r->host = strdup(ip);

connect:

    omni_redis_connect(r);
    return r;

failed:

    if (res) {
        freeaddrinfo(res);
    }
    free(r->password);
    free(r);
    return NULL;
}


int
omni_redis_connected(omni_redis_t *r)
{
    return r->connected;
}


int
omni_redis_command(omni_redis_t *r, redisCallbackFn *fn, void *privdata,
    const char *fmt, ...)
{
    va_list  ap;
    int      rc;

    if (!r->connected || r->ctx == NULL) {
        return -1;
    }
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ctx, fn, privdata, fmt, ap);
    va_end(ap);
    return rc == REDIS_OK ? 0 : -1;
}


int
omni_redis_command_argv(omni_redis_t *r, redisCallbackFn *fn, void *privdata,
    int argc, const char **argv, const size_t *argvlen)
{
    if (!r->connected || r->ctx == NULL) {
        return -1;
    }
    return redisAsyncCommandArgv(r->ctx, fn, privdata, argc, argv, argvlen)
           == REDIS_OK ? 0 : -1;
}


static void
omni_redis_ping_timeout(evutil_socket_t fd, short what, void *arg)
{
    omni_redis_ping_t *p = arg;

    /* the reply may still come: omni_redis_pong frees p then */
    p->done = 1;
    p->cb(p->arg, 0);
}


static void
omni_redis_pong(redisAsyncContext *ctx, void *reply, void *privdata)
{
    omni_redis_ping_t  *p = privdata;
    redisReply         *rep = reply;

    if (!p->done) {
        evtimer_del(&p->timer);
        p->cb(p->arg, rep != NULL && rep->type == REDIS_REPLY_STATUS);
    }
    free(p);
}


void
omni_redis_ping(omni_redis_t *r, int timeout_ms, omni_redis_ping_pt cb,
    void *arg)
{
    omni_redis_ping_t  *p;
    struct timeval      tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

    p = calloc(1, sizeof(omni_redis_ping_t));
    if (p == NULL) {
        cb(arg, 0);
        return;
    }
    p->cb = cb;
    p->arg = arg;
    if (omni_redis_command(r, omni_redis_pong, p, "PING") != 0) {
        free(p);
        cb(arg, 0);
        return;
    }
    evtimer_assign(&p->timer, r->base, omni_redis_ping_timeout, p);
    evtimer_add(&p->timer, &tv);
}


void
omni_redis_free(omni_redis_t *r)
{
    r->closing = 1;
    evtimer_del(&r->retry);
    if (r->ctx) {
        redisAsyncFree(r->ctx);
    }
    free(r->host);
    free(r->path);
    free(r->password);
    free(r);
}
