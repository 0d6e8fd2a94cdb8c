/* redis.c: hiredis async connection with reconnect, deadlines and a bound
 * on commands in flight, on the libevent loop. With
 * "sentinel://HOST:PORT,.../MASTER" every (re)connection first asks the
 * Sentinels in turn where the master is and checks with ROLE that it is;
 * the Sentinel's link stays open, subscribed to "+switch-master", and a
 * failover drops the master's link at once (the old master takes writes
 * until Sentinel demotes it, seconds later, and loses them then), as does
 * a -READONLY reply; the next connection asks again. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "io/log.h"
#include "io/redis.h"


#define OMNI_REDIS_BACKOFF_MIN_MS 100
#define OMNI_REDIS_BACKOFF_MAX_MS 2000
#define OMNI_REDIS_CAP_LOG_S 10

typedef struct {
    redisCallbackFn *fn;
    void *privdata;
    uint64_t sent_ms;
} omni_redis_cmd_t;

struct omni_redis {
    struct event_base *base;
    redisAsyncContext *ctx;
    char *host; /* numeric address, or NULL for unix */
    char *path; /* unix socket path */
    int port;
    char *password;
    int connected;
    int closing;
    int torn_down; /* we are closing it: no "closed" log */
    int backoff_ms;
    struct event retry;

    /* Redis answers in the order it was asked: the commands in flight,
     * oldest first, in a ring of `cap`; the oldest one's deadline is the
     * connection's (hiredis 0.14 has no async timeouts) */
    int timeout_ms;
    omni_redis_cmd_t *ring;
    int cap;
    int head;
    int count;
    uint64_t connect_ms;
    struct event deadline;
    uint64_t timeouts;
    uint64_t rejected;
    time_t cap_logged;

    /* Sentinel: whom to ask, the link asking, and the answer */
    char **sentinel_host;
    int *sentinel_port;
    int nsentinels;
    char *master_name;
    redisAsyncContext *sentinel;
    redisAsyncContext *watch; /* subscribed to +switch-master */
    struct event sentinel_deadline;
    int sentinel_next;
    int sentinel_tried;
    char master_host[INET6_ADDRSTRLEN];
    int master_port;
    int switched; /* told where by +switch-master */
};

typedef struct {
    omni_redis_ping_pt cb;
    void *arg;
    int done; /* cb already called (timed out) */
    struct event timer;
} omni_redis_ping_t;


static void omni_redis_connect(omni_redis_t *r);
static void omni_redis_connect_to(omni_redis_t *r, const char *host, int port);
static void omni_redis_sentinel_ask(omni_redis_t *r);


static void omni_redis_schedule(omni_redis_t *r)
{
    struct timeval tv;
    int ms;

    r->backoff_ms =
        r->backoff_ms ? r->backoff_ms * 2 : OMNI_REDIS_BACKOFF_MIN_MS;
    if (r->backoff_ms > OMNI_REDIS_BACKOFF_MAX_MS) {
        r->backoff_ms = OMNI_REDIS_BACKOFF_MAX_MS;
    }
    ms = r->backoff_ms + rand() % (r->backoff_ms / 4 + 1);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(&r->retry, &tv);
}


static void omni_redis_retry(evutil_socket_t fd, short what, void *arg)
{
    omni_redis_connect(arg);
}


static uint64_t omni_redis_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static void omni_redis_arm(omni_redis_t *r, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    evtimer_add(&r->deadline, &tv);
}


/* Redis stalls (SIGSTOP, a partition, a slow script): close the connection
 * so every command waiting on it fails now, and connect afresh. */
static void omni_redis_tear_down(omni_redis_t *r, const char *waiting_for)
{
    redisAsyncContext *ctx = r->ctx;

    r->timeouts++;
    omni_log(OMNI_LOG_WARN, "redis did not answer in time; reconnecting",
        "\"waiting_for\":\"%s\",\"pending\":%d,\"timeout_ms\":%d", waiting_for,
        r->count, r->timeout_ms);
    r->ctx = NULL;
    r->connected = 0;
    r->torn_down = 1;
    /* calls every waiting callback with a NULL reply, then
     * omni_redis_on_disconnect if it had connected */
    redisAsyncFree(ctx);
    r->torn_down = 0;
    if (!r->closing && !evtimer_pending(&r->retry, NULL)) {
        omni_redis_schedule(r);
    }
}


static void omni_redis_deadline(evutil_socket_t fd, short what, void *arg)
{
    omni_redis_t *r = arg;
    uint64_t now = omni_redis_now_ms(), due;

    if (r->ctx == NULL) {
        return;
    }
    if (!r->connected) {
        due = r->connect_ms + (uint64_t)r->timeout_ms;
        if (now >= due) {
            omni_redis_tear_down(r, "connect");
        } else {
            omni_redis_arm(r, due - now);
        }
        return;
    }
    if (r->count == 0) {
        return;
    }
    /* armed lazily: the command it was armed for may be answered */
    due = r->ring[r->head].sent_ms + (uint64_t)r->timeout_ms;
    if (now >= due) {
        omni_redis_tear_down(r, "reply");
    } else {
        omni_redis_arm(r, due - now);
    }
}


static void omni_redis_reply(
    redisAsyncContext *ctx, void *reply, void *privdata)
{
    omni_redis_t *r = privdata;
    omni_redis_cmd_t c;

    if (r->count == 0) {
        return;
    }
    c = r->ring[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    if (reply != NULL) {
        redisReply *rep = reply;

        r->backoff_ms = 0;
        if (rep->type == REDIS_REPLY_ERROR && r->nsentinels > 0
            && strstr(rep->str, "READONLY") != NULL && r->ctx == ctx
            && !(ctx->c.flags & REDIS_DISCONNECTING)) {
            omni_log(OMNI_LOG_WARN,
                "redis answered READONLY: no longer the master; asking the "
                "Sentinels again",
                "\"host\":\"%s\",\"port\":%d", r->master_host, r->master_port);
            /* after the replies already on their way */
            redisAsyncDisconnect(ctx);
        }
    }
    if (c.fn != NULL) {
        c.fn(ctx, reply, c.privdata);
    }
}


/* 0 when a command may be sent now; -1 when not connected or when `cap`
 * commands already wait for their replies (logged now and then). */
static int omni_redis_admit(omni_redis_t *r)
{
    time_t now;

    if (r == NULL || !r->connected || r->ctx == NULL) {
        return -1;
    }
    if (r->count < r->cap) {
        return 0;
    }
    r->rejected++;
    now = time(NULL);
    if (now - r->cap_logged >= OMNI_REDIS_CAP_LOG_S) {
        r->cap_logged = now;
        omni_log(OMNI_LOG_WARN,
            "redis: too many commands waiting for "
            "replies; failing new ones",
            "\"pending\":%d,\"setting\":\"OMNI_REDIS_PENDING_MAX\"", r->count);
    }
    return -1;
}


static void omni_redis_sent(
    omni_redis_t *r, redisCallbackFn *fn, void *privdata)
{
    omni_redis_cmd_t *c = &r->ring[(r->head + r->count) % r->cap];

    c->fn = fn;
    c->privdata = privdata;
    c->sent_ms = omni_redis_now_ms();
    r->count++;
    if (!evtimer_pending(&r->deadline, NULL)) {
        omni_redis_arm(r, (uint64_t)r->timeout_ms);
    }
}


static void omni_redis_auth_done(
    redisAsyncContext *ctx, void *reply, void *privdata)
{
    redisReply *rep = reply;

    /* NULL: the connection is gone already */
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        omni_log(OMNI_LOG_ERROR, "redis AUTH failed",
            "\"setting\":\"OMNI_REDIS_PASSWORD\"");
        redisAsyncDisconnect(ctx);
    }
}


static void omni_redis_on_connect(const redisAsyncContext *ctx, int status)
{
    omni_redis_t *r = ctx->data;
    char buf[256];

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

    /* the backoff resets with the first reply: a stalled Redis still
     * accepts connections */
    r->connected = 1;
    omni_log(OMNI_LOG_INFO, "redis connected", NULL);
}


static void omni_redis_on_disconnect(const redisAsyncContext *ctx, int status)
{
    omni_redis_t *r = ctx->data;
    char buf[256];

    r->ctx = NULL;
    r->connected = 0;
    if (r->closing) {
        return;
    }
    if (!r->torn_down) {
        omni_log(OMNI_LOG_WARN, "redis disconnected", "\"error\":\"%s\"",
            omni_log_escape(
                buf, sizeof(buf), status == REDIS_OK ? "closed" : ctx->errstr));
    }
    omni_redis_schedule(r);
}


static void omni_redis_role_done(
    redisAsyncContext *ctx, void *reply, void *privdata)
{
    omni_redis_t *r = ctx->data;
    redisReply *rep = reply;

    if (rep == NULL
        || (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0
            && rep->element[0]->type == REDIS_REPLY_STRING
            && strcmp(rep->element[0]->str, "master") == 0)) {
        return;
    }
    omni_log(OMNI_LOG_WARN,
        "redis is not the master; asking the Sentinels again",
        "\"host\":\"%s\",\"port\":%d", r->master_host, r->master_port);
    redisAsyncDisconnect(ctx);
}


static void omni_redis_connect(omni_redis_t *r)
{
    if (r->nsentinels > 0 && r->switched) {
        r->switched = 0;
        omni_redis_connect_to(r, r->master_host, r->master_port);
        return;
    }
    if (r->nsentinels > 0) {
        r->sentinel_tried = 0;
        omni_redis_sentinel_ask(r);
        return;
    }
    omni_redis_connect_to(r, r->host, r->port);
}


/* host NULL: the unix socket */
static void omni_redis_connect_to(omni_redis_t *r, const char *host, int port)
{
    redisAsyncContext *ctx;

    ctx = host ? redisAsyncConnect(host, port) : redisAsyncConnectUnix(r->path);
    if (ctx == NULL || ctx->err) {
        char buf[256];

        omni_log(OMNI_LOG_WARN, "redis connect failed", "\"error\":\"%s\"",
            omni_log_escape(
                buf, sizeof(buf), ctx ? ctx->errstr : "out of memory"));
        if (ctx) {
            redisAsyncFree(ctx);
        }
        omni_redis_schedule(r);
        return;
    }

    ctx->data = r;
    r->ctx = ctx;
    r->connect_ms = omni_redis_now_ms();
    omni_redis_arm(r, (uint64_t)r->timeout_ms);
    redisLibeventAttach(ctx, r->base);
    redisAsyncSetConnectCallback(ctx, omni_redis_on_connect);
    redisAsyncSetDisconnectCallback(ctx, omni_redis_on_disconnect);

    /* queued before anything else, so every command runs authenticated */
    if (r->password) {
        redisAsyncCommand(
            ctx, omni_redis_auth_done, NULL, "AUTH %s", r->password);
    }
    /* what a Sentinel said may be stale already */
    if (r->nsentinels > 0) {
        redisAsyncCommand(ctx, omni_redis_role_done, NULL, "ROLE");
    }
}


/* --- Sentinel ------------------------------------------------------------
 * Whichever of the asking link's callbacks (or its deadline) comes first
 * while r->sentinel is still that link decides; the others find it gone.
 */

/* The next Sentinel now; after a round of them, the backoff. */
static void omni_redis_sentinel_failed(omni_redis_t *r)
{
    evtimer_del(&r->sentinel_deadline);
    if (r->closing) {
        return;
    }
    r->sentinel_next++;
    if (++r->sentinel_tried >= r->nsentinels) {
        r->sentinel_tried = 0;
        omni_redis_schedule(r);
        return;
    }
    omni_redis_sentinel_ask(r);
}


static void omni_redis_sentinel_on_connect(
    const redisAsyncContext *ctx, int status)
{
    omni_redis_t *r = ctx->data;
    char buf[256];

    if (status == REDIS_OK || r->sentinel != ctx) {
        return;
    }
    omni_log(OMNI_LOG_WARN, "redis Sentinel connect failed",
        "\"host\":\"%s\",\"port\":%d,\"error\":\"%s\"", ctx->c.tcp.host,
        ctx->c.tcp.port, omni_log_escape(buf, sizeof(buf), ctx->errstr));
    r->sentinel = NULL;
    omni_redis_sentinel_failed(r);
}


static void omni_redis_sentinel_on_disconnect(
    const redisAsyncContext *ctx, int status)
{
    omni_redis_t *r = ctx->data;

    if (r->watch == ctx) {
        r->watch = NULL;
        if (!r->closing) {
            omni_log(OMNI_LOG_WARN,
                "redis Sentinel: the link watching for a failover closed",
                "\"host\":\"%s\",\"port\":%d", ctx->c.tcp.host,
                ctx->c.tcp.port);
        }
        return;
    }
    if (r->sentinel != ctx) {
        return;
    }
    omni_log(OMNI_LOG_WARN, "redis Sentinel closed before it answered",
        "\"host\":\"%s\",\"port\":%d", ctx->c.tcp.host, ctx->c.tcp.port);
    r->sentinel = NULL;
    omni_redis_sentinel_failed(r);
}


static void omni_redis_sentinel_timeout(
    evutil_socket_t fd, short what, void *arg)
{
    omni_redis_t *r = arg;
    redisAsyncContext *ctx = r->sentinel;

    if (ctx == NULL) {
        return;
    }
    omni_log(OMNI_LOG_WARN, "redis Sentinel did not answer in time",
        "\"host\":\"%s\",\"port\":%d", ctx->c.tcp.host, ctx->c.tcp.port);
    r->sentinel = NULL;
    redisAsyncFree(ctx);
    omni_redis_sentinel_failed(r);
}


/* "+switch-master NAME OLD-IP OLD-PORT NEW-IP NEW-PORT": drop the link to
 * the old master; the next connection asks where the master is now. */
static void omni_redis_sentinel_message(
    redisAsyncContext *ctx, void *reply, void *privdata)
{
    omni_redis_t *r = ctx->data;
    redisReply *rep = reply;
    size_t n = strlen(r->master_name);
    char buf[256], host[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    int port;

    if (rep == NULL || r->watch != ctx || rep->type != REDIS_REPLY_ARRAY
        || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING
        || rep->element[2]->type != REDIS_REPLY_STRING
        || strcmp(rep->element[0]->str, "message") != 0
        || strncmp(rep->element[2]->str, r->master_name, n) != 0
        || rep->element[2]->str[n] != ' ') {
        return;
    }
    omni_log(OMNI_LOG_WARN, "redis Sentinel: failover",
        "\"master\":\"%s\",\"switch\":\"%s\"", r->master_name,
        omni_log_escape(buf, sizeof(buf), rep->element[2]->str + n + 1));
    /* the new address, taken as it is: another Sentinel, asked now, may not
     * know of the failover yet and name the old master, which is a master
     * still until it is demoted */
    if (sscanf(rep->element[2]->str + n + 1, "%*s %*d %45s %d", host, &port)
            == 2
        && port > 0 && port <= 65535
        && (inet_pton(AF_INET, host, addr) == 1
            || inet_pton(AF_INET6, host, addr) == 1)) {
        snprintf(r->master_host, sizeof(r->master_host), "%s", host);
        r->master_port = port;
        r->switched = 1;
    }
    if (r->ctx != NULL && !(r->ctx->c.flags & REDIS_DISCONNECTING)) {
        redisAsyncDisconnect(r->ctx);
    }
}


static void omni_redis_sentinel_reply(
    redisAsyncContext *ctx, void *reply, void *privdata)
{
    omni_redis_t *r = ctx->data;
    redisReply *rep = reply;
    redisAsyncContext *watch;
    unsigned char addr[sizeof(struct in6_addr)];
    const char *host;
    int port;

    if (r->sentinel != ctx) {
        return;
    }
    r->sentinel = NULL;
    evtimer_del(&r->sentinel_deadline);

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2
        || rep->element[0]->type != REDIS_REPLY_STRING
        || rep->element[1]->type != REDIS_REPLY_STRING) {
        omni_log(OMNI_LOG_WARN, "redis Sentinel does not know the master",
            "\"host\":\"%s\",\"port\":%d,\"master\":\"%s\"", ctx->c.tcp.host,
            ctx->c.tcp.port, r->master_name);
        goto failed;
    }
    host = rep->element[0]->str;
    port = atoi(rep->element[1]->str);
    /* a name would make hiredis block in getaddrinfo: numeric only */
    if (port <= 0 || port > 65535
        || rep->element[0]->len >= sizeof(r->master_host)
        || (inet_pton(AF_INET, host, addr) != 1
            && inet_pton(AF_INET6, host, addr) != 1)) {
        omni_log(OMNI_LOG_WARN,
            "redis Sentinel names the master by no numeric address",
            "\"master\":\"%s\"", r->master_name);
        goto failed;
    }
    if (port != r->master_port || strcmp(host, r->master_host) != 0) {
        omni_log(OMNI_LOG_INFO, "redis master found through Sentinel",
            "\"master\":\"%s\",\"host\":\"%s\",\"port\":%d", r->master_name,
            host, port);
    }
    snprintf(r->master_host, sizeof(r->master_host), "%s", host);
    r->master_port = port;
    if (r->watch) {
        watch = r->watch;
        r->watch = NULL;
        redisAsyncDisconnect(watch);
    }
    if (redisAsyncCommand(
            ctx, omni_redis_sentinel_message, NULL, "SUBSCRIBE +switch-master")
        == REDIS_OK) {
        r->watch = ctx;
    } else {
        redisAsyncDisconnect(ctx);
    }
    r->sentinel_tried = 0;
    omni_redis_connect_to(r, r->master_host, r->master_port);
    return;

failed:

    redisAsyncDisconnect(ctx);
    omni_redis_sentinel_failed(r);
}


static void omni_redis_sentinel_ask(omni_redis_t *r)
{
    redisAsyncContext *ctx;
    int i = r->sentinel_next % r->nsentinels;
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};

    ctx = redisAsyncConnect(r->sentinel_host[i], r->sentinel_port[i]);
    if (ctx == NULL || ctx->err) {
        omni_log(OMNI_LOG_WARN, "redis Sentinel connect failed",
            "\"host\":\"%s\",\"port\":%d", r->sentinel_host[i],
            r->sentinel_port[i]);
        if (ctx) {
            redisAsyncFree(ctx);
        }
        omni_redis_sentinel_failed(r);
        return;
    }
    ctx->data = r;
    r->sentinel = ctx;
    redisLibeventAttach(ctx, r->base);
    redisAsyncSetConnectCallback(ctx, omni_redis_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ctx, omni_redis_sentinel_on_disconnect);
    redisAsyncCommand(ctx, omni_redis_sentinel_reply, NULL,
        "SENTINEL get-master-addr-by-name %s", r->master_name);
    evtimer_add(&r->sentinel_deadline, &tv);
}


/* host:port (or host alone: default_port) resolved once, at start-up, to a
 * numeric address in ip; 0, or -1 with err naming addr. */
static int omni_redis_resolve(const char *addr, const char *hostport,
    size_t len, int default_port, char *ip, size_t iplen, int *port, char *err,
    size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char host[256];
    const char *colon;
    int rc;

    if (len == 0 || len >= sizeof(host)) {
        snprintf(err, errlen, "OMNI_REDIS_ADDR=%s: expected host:port", addr);
        return -1;
    }
    memcpy(host, hostport, len);
    host[len] = '\0';
    colon = strrchr(host, ':');
    *port = default_port;
    if (colon != NULL) {
        *port = atoi(colon + 1);
        host[colon - host] = '\0';
    }
    if (host[0] == '\0' || *port <= 0 || *port > 65535) {
        snprintf(err, errlen,
            "OMNI_REDIS_ADDR=%s: expected host:port or unix:/path", addr);
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0
        || getnameinfo(res->ai_addr, res->ai_addrlen, ip, (socklen_t)iplen,
               NULL, 0, NI_NUMERICHOST)
               != 0) {
        snprintf(err, errlen, "OMNI_REDIS_ADDR=%s: cannot resolve %s: %s", addr,
            host, rc ? gai_strerror(rc) : "no address");
        if (res) {
            freeaddrinfo(res);
        }
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}


/* "sentinel://HOST:PORT[,HOST:PORT...]/MASTER" */
static int omni_redis_sentinels(
    omni_redis_t *r, const char *addr, char *err, size_t errlen)
{
    const char *p = addr + sizeof("sentinel://") - 1, *slash, *comma;
    char ip[64];
    int n = 1, i;

    slash = strchr(p, '/');
    if (slash == NULL || slash == p || slash[1] == '\0') {
        snprintf(err, errlen,
            "OMNI_REDIS_ADDR=%s: expected "
            "sentinel://HOST:PORT[,HOST:PORT...]/MASTER",
            addr);
        return -1;
    }
    for (comma = p; comma < slash; comma++) {
        n += *comma == ',';
    }
    r->master_name = strdup(slash + 1);
    r->sentinel_host = calloc((size_t)n, sizeof(char *));
    r->sentinel_port = calloc((size_t)n, sizeof(int));
    if (r->master_name == NULL || r->sentinel_host == NULL
        || r->sentinel_port == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        comma = memchr(p, ',', (size_t)(slash - p));
        if (comma == NULL) {
            comma = slash;
        }
        if (omni_redis_resolve(addr, p, (size_t)(comma - p), 26379, ip,
                sizeof(ip), &r->sentinel_port[i], err, errlen)
            != 0) {
            return -1;
        }
        r->sentinel_host[i] = strdup(ip);
        r->nsentinels++;
        if (r->sentinel_host[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        p = comma + 1;
    }
    return 0;
}


omni_redis_t *omni_redis_create(struct event_base *base, const char *addr,
    const char *password, int timeout_ms, int pending_max, char *err,
    size_t errlen)
{
    omni_redis_t *r;
    char ip[64];

    r = calloc(1, sizeof(omni_redis_t));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->base = base;
    evtimer_assign(&r->retry, base, omni_redis_retry, r);
    evtimer_assign(&r->deadline, base, omni_redis_deadline, r);
    evtimer_assign(&r->sentinel_deadline, base, omni_redis_sentinel_timeout, r);
    r->password = password ? strdup(password) : NULL;
    r->timeout_ms = timeout_ms;
    r->cap = pending_max;
    r->ring = calloc((size_t)pending_max, sizeof(omni_redis_cmd_t));
    if (r->ring == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    if (strncmp(addr, "unix:", 5) == 0) {
        r->path = strdup(addr + 5);
    } else if (strncmp(addr, "sentinel://", 11) == 0) {
        if (omni_redis_sentinels(r, addr, err, errlen) != 0) {
            goto failed;
        }
    } else {
        if (strchr(addr, ':') == NULL) {
            snprintf(err, errlen,
                "OMNI_REDIS_ADDR=%s: expected host:port, unix:/path or "
                "sentinel://HOST:PORT,.../MASTER",
                addr);
            goto failed;
        }
        if (omni_redis_resolve(addr, addr, strlen(addr), 6379, ip, sizeof(ip),
                &r->port, err, errlen)
            != 0) {
            goto failed;
        }
        r->host = strdup(ip);
    }

    omni_redis_connect(r);
    return r;

failed:

    omni_redis_free(r);
    return NULL;
}


int omni_redis_connected(omni_redis_t *r)
{
    return r != NULL && r->connected;
}


void omni_redis_stats(omni_redis_t *r, omni_redis_stats_t *st)
{
    if (r == NULL) {
        memset(st, 0, sizeof(*st));
        return;
    }
    st->connected = r->connected;
    st->pending = r->count;
    st->pending_max = r->cap;
    st->timeouts = r->timeouts;
    st->rejected = r->rejected;
}


int omni_redis_command(
    omni_redis_t *r, redisCallbackFn *fn, void *privdata, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (omni_redis_admit(r) != 0) {
        return -1;
    }
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ctx, omni_redis_reply, r, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        return -1;
    }
    omni_redis_sent(r, fn, privdata);
    return 0;
}


int omni_redis_command_argv(omni_redis_t *r, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    if (omni_redis_admit(r) != 0
        || redisAsyncCommandArgv(
               r->ctx, omni_redis_reply, r, argc, argv, argvlen)
               != REDIS_OK) {
        return -1;
    }
    omni_redis_sent(r, fn, privdata);
    return 0;
}


static void omni_redis_ping_timeout(evutil_socket_t fd, short what, void *arg)
{
    omni_redis_ping_t *p = arg;

    /* the reply may still come: omni_redis_pong frees p then */
    p->done = 1;
    p->cb(p->arg, 0);
}


static void omni_redis_pong(redisAsyncContext *ctx, void *reply, void *privdata)
{
    omni_redis_ping_t *p = privdata;
    redisReply *rep = reply;

    if (!p->done) {
        evtimer_del(&p->timer);
        p->cb(p->arg, rep != NULL && rep->type == REDIS_REPLY_STATUS);
    }
    free(p);
}


void omni_redis_ping(
    omni_redis_t *r, int timeout_ms, omni_redis_ping_pt cb, void *arg)
{
    omni_redis_ping_t *p;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

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


void omni_redis_free(omni_redis_t *r)
{
    redisAsyncContext *ctx;
    int i;

    r->closing = 1;
    evtimer_del(&r->retry);
    evtimer_del(&r->deadline);
    evtimer_del(&r->sentinel_deadline);
    if (r->sentinel) {
        ctx = r->sentinel;
        r->sentinel = NULL;
        redisAsyncFree(ctx);
    }
    if (r->watch) {
        ctx = r->watch;
        r->watch = NULL;
        redisAsyncFree(ctx);
    }
    if (r->ctx) {
        redisAsyncFree(r->ctx);
    }
    for (i = 0; i < r->nsentinels; i++) {
        free(r->sentinel_host[i]);
    }
    free(r->sentinel_host);
    free(r->sentinel_port);
    free(r->master_name);
    free(r->ring);
    free(r->host);
    free(r->path);
    free(r->password);
    free(r);
}
