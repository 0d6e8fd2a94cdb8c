
/*
 * Omni gateway module: "omni_redis", one hiredis async connection per nginx
 * worker process, driven by nginx's event loop. hiredis asks for read and
 * write interest through its ev hooks; they map to the events of an
 * ngx_connection_t around hiredis's socket. The connection is opened in
 * init_process (never in the master) and reopened with backoff and jitter.
 *
 * With "sentinel://HOST:PORT,.../MASTER" each (re)connection first asks
 * the Sentinels in turn for the master's address (one link of its own,
 * same event hooks), connects there and checks with ROLE that it is the
 * master. The Sentinel's link stays open, subscribed to "+switch-master":
 * when a failover promotes a replica, the master's link is dropped at once
 * and the next connection asks again, rather than writing on to the old
 * master until Sentinel demotes it (seconds later; what it took then is
 * lost). A -READONLY reply (the master demoted under us) drops the link
 * too.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "ngx_http_omni_module.h"


#define NGX_HTTP_OMNI_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_OMNI_REDIS_BACKOFF_MAX  5000
#define NGX_HTTP_OMNI_SENTINEL_TIMEOUT   1000


typedef struct {
    redisAsyncContext          *ctx;
    ngx_connection_t           *conn;
    ngx_event_t                 reconnect;
    ngx_msec_t                  backoff;
    ngx_uint_t                  connected;
    ngx_uint_t                  closing;
    ngx_uint_t                  writing;        /* a command being queued */
    ngx_uint_t                  want_write;
    ngx_event_t                 flush;          /* the pass's commands go */
    ngx_log_t                  *log;
    ngx_http_omni_main_conf_t  *omcf;

    /* Sentinel: the link asking, whom, and the answer */
    redisAsyncContext          *sentinel;
    redisAsyncContext          *watch;          /* subscribed */
    ngx_event_t                 sentinel_timer;
    ngx_uint_t                  sentinel_next;
    ngx_uint_t                  sentinel_tried;
    ngx_uint_t                  switched;       /* told where, by a watch */
    u_char                      master_host[NGX_INET6_ADDRSTRLEN + 1];
    int                         master_port;
} ngx_http_omni_redis_t;


static char *ngx_http_omni_redis_sentinels(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_http_omni_main_conf_t *omcf, ngx_str_t *addr);
static void ngx_http_omni_redis_connect(ngx_http_omni_redis_t *rd);
static void ngx_http_omni_redis_connect_master(ngx_http_omni_redis_t *rd,
    char *host, int port);
static void ngx_http_omni_redis_role_done(redisAsyncContext *ctx,
    void *reply, void *privdata);
static void ngx_http_omni_redis_send_library(redisAsyncContext *ctx);
static void ngx_http_omni_redis_library_done(redisAsyncContext *ctx,
    void *reply, void *privdata);
static void ngx_http_omni_sentinel_ask(ngx_http_omni_redis_t *rd);
static void ngx_http_omni_sentinel_failed(ngx_http_omni_redis_t *rd);
static void ngx_http_omni_sentinel_message(redisAsyncContext *ctx,
    void *reply, void *privdata);
static ngx_int_t ngx_http_omni_sentinel_switch(ngx_http_omni_redis_t *rd,
    u_char *p, u_char *last);
static void ngx_http_omni_redis_schedule(ngx_http_omni_redis_t *rd);
static void ngx_http_omni_redis_write_now(ngx_http_omni_redis_t *rd);
static void ngx_http_omni_redis_flush(ngx_event_t *ev);


/* one per worker process */
static ngx_http_omni_redis_t  ngx_http_omni_redis;

static char  ngx_http_omni_redis_script_load[] = "SCRIPT LOAD";


char *
ngx_http_omni_redis_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *omcf = conf;

    u_char      *p, text[NGX_SOCKADDR_STRLEN];
    size_t       len;
    ngx_str_t   *value, s;
    ngx_int_t    n;
    ngx_uint_t   i;
    ngx_url_t    u;

    if (omcf->redis_configured) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "sentinel://", 11) == 0) {
        if (ngx_http_omni_redis_sentinels(cf, cmd, omcf, &value[1])
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        goto parameters;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 6379;

    /* resolved here, once: hiredis 0.14 would block in getaddrinfo */
    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"%V\": %s",
                           &value[1], &cmd->name,
                           u.err ? u.err : "expected host:port or unix:/path");
        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" resolves to no address",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

#if (NGX_HAVE_UNIX_DOMAIN)
    if (u.addrs[0].sockaddr->sa_family == AF_UNIX) {
        struct sockaddr_un  *sun = (struct sockaddr_un *) u.addrs[0].sockaddr;

        len = ngx_strlen(sun->sun_path);
        omcf->redis_path.data = ngx_pnalloc(cf->pool, len + 1);
        if (omcf->redis_path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(omcf->redis_path.data, sun->sun_path, len + 1);
        omcf->redis_path.len = len;

    } else
#endif
    {
        len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, text,
                            NGX_SOCKADDR_STRLEN, 0);

        omcf->redis_host.data = ngx_pnalloc(cf->pool, len + 1);
        if (omcf->redis_host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(omcf->redis_host.data, text, len);
        *p = '\0';
        omcf->redis_host.len = len;
        omcf->redis_port = ngx_inet_get_port(u.addrs[0].sockaddr);
    }

parameters:

    omcf->redis_addr = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            omcf->redis_password.data = value[i].data + 9;
            omcf->redis_password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);

            if (n == NGX_ERROR || n > 1000000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid db \"%V\" in \"%V\"", &value[i],
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            omcf->redis_db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            omcf->redis_timeout = ngx_parse_time(&s, 0);

            if (omcf->redis_timeout == (ngx_msec_t) NGX_ERROR
                || omcf->redis_timeout == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid timeout \"%V\" in \"%V\"",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"", &value[i],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    omcf->redis_configured = 1;

    return NGX_CONF_OK;
}


/* "sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER", each resolved now */

static char *
ngx_http_omni_redis_sentinels(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_omni_main_conf_t *omcf, ngx_str_t *addr)
{
    u_char                *p, *last, *comma, *slash;
    u_char                 text[NGX_SOCKADDR_STRLEN];
    size_t                 len;
    ngx_url_t              u;
    ngx_http_omni_addr_t  *a;

    p = addr->data + sizeof("sentinel://") - 1;
    last = addr->data + addr->len;
    slash = ngx_strlchr(p, last, '/');

    if (slash == NULL || slash == p || slash + 1 == last) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"%V\": expected "
                           "sentinel://HOST:PORT[,HOST:PORT...]/MASTER",
                           addr, &cmd->name);
        return NGX_CONF_ERROR;
    }

    len = last - slash - 1;

    omcf->redis_master.data = ngx_pnalloc(cf->pool, len + 1);
    if (omcf->redis_master.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(omcf->redis_master.data, slash + 1, len);
    omcf->redis_master.data[len] = '\0';
    omcf->redis_master.len = len;

    omcf->redis_sentinels = ngx_array_create(cf->pool, 3,
                                             sizeof(ngx_http_omni_addr_t));
    if (omcf->redis_sentinels == NULL) {
        return NGX_CONF_ERROR;
    }

    while (p < slash) {
        comma = ngx_strlchr(p, slash, ',');

        if (comma == NULL) {
            comma = slash;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url.data = p;
        u.url.len = comma - p;
        u.default_port = 26379;

        /* resolved here, once: hiredis 0.14 would block in getaddrinfo */
        if (u.url.len == 0 || ngx_parse_url(cf->pool, &u) != NGX_OK
            || u.naddrs == 0 || u.addrs[0].sockaddr->sa_family == AF_UNIX)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid Sentinel \"%*s\" in \"%V\": "
                               "expected host:port", comma - p, p,
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, text,
                            NGX_SOCKADDR_STRLEN, 0);

        a = ngx_array_push(omcf->redis_sentinels);
        if (a == NULL) {
            return NGX_CONF_ERROR;
        }

        a->host.data = ngx_pnalloc(cf->pool, len + 1);
        if (a->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(a->host.data, text, len);
        a->host.data[len] = '\0';
        a->host.len = len;
        a->port = ngx_inet_get_port(u.addrs[0].sockaddr);

        p = comma + 1;
    }

    return NGX_CONF_OK;
}


/* hiredis's ev hooks: read and write interest on nginx's events */

static void
ngx_http_omni_redis_add_read(void *data)
{
    ngx_http_omni_redis_t  *rd = data;

    /* level-triggered: hiredis reads one buffer per call, and anything
     * left must raise the event again */
    if (!rd->conn->read->active) {
        (void) ngx_add_event(rd->conn->read, NGX_READ_EVENT,
                             NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_omni_redis_del_read(void *data)
{
    ngx_http_omni_redis_t  *rd = data;

    if (rd->conn->read->active) {
        (void) ngx_del_event(rd->conn->read, NGX_READ_EVENT, 0);
    }
}


/* A command queued by ngx_http_omni_redis_command() or _formatted() is
 * written by them (at once, or when the pass ends); write interest is
 * asked for only when the socket takes less. */

static void
ngx_http_omni_redis_add_write(void *data)
{
    ngx_http_omni_redis_t  *rd = data;

    rd->want_write = 1;

    if (!rd->writing && !rd->conn->write->active) {
        (void) ngx_add_event(rd->conn->write, NGX_WRITE_EVENT,
                             NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_omni_redis_del_write(void *data)
{
    ngx_http_omni_redis_t  *rd = data;

    rd->want_write = 0;

    if (rd->conn->write->active) {
        (void) ngx_del_event(rd->conn->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_omni_redis_cleanup(void *data)
{
    ngx_http_omni_redis_t  *rd = data;

    ngx_connection_t  *c;

    c = rd->conn;

    if (c == NULL) {
        return;
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    /* hiredis closes the socket itself: close it exactly once */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
    rd->conn = NULL;
}


static void
ngx_http_omni_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_http_omni_redis_t  *rd = c->data;

    if (rd->ctx) {
        redisAsyncHandleRead(rd->ctx);
    }
}


static void
ngx_http_omni_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_http_omni_redis_t  *rd = c->data;

    if (rd->ctx) {
        redisAsyncHandleWrite(rd->ctx);
    }
}


static void
ngx_http_omni_redis_on_connect(const redisAsyncContext *ctx, int status)
{
    ngx_http_omni_redis_t  *rd = ctx->data;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omni: redis %V: connect failed: %s",
                      &rd->omcf->redis_addr, ctx->errstr);

        /* hiredis frees the context after this callback */
        rd->ctx = NULL;
        ngx_http_omni_redis_schedule(rd);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, rd->log, 0, "omni: redis %V: connected",
                  &rd->omcf->redis_addr);

    rd->connected = 1;
    rd->backoff = 0;
}


static void
ngx_http_omni_redis_on_disconnect(const redisAsyncContext *ctx, int status)
{
    ngx_http_omni_redis_t  *rd = ctx->data;

    rd->ctx = NULL;
    rd->connected = 0;

    if (rd->closing) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "omni: redis %V: disconnected: %s",
                  &rd->omcf->redis_addr,
                  status == REDIS_OK ? "closed" : ctx->errstr);

    ngx_http_omni_redis_schedule(rd);
}


static void
ngx_http_omni_redis_setup_done(redisAsyncContext *ctx, void *reply,
    void *privdata)
{
    redisReply             *rep = reply;
    ngx_http_omni_redis_t  *rd = ctx->data;

    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "omni: redis %V: %s failed%s%*s",
                      &rd->omcf->redis_addr, (char *) privdata,
                      rep ? ": " : "", rep ? (size_t) rep->len : 0,
                      rep ? rep->str : "");

        /* without AUTH or SELECT no command would be right; without the
         * script, EVALSHA's NOSCRIPT sends its text, and a Redis that
         * refuses it still answers for revoked tokens */
        if (rep == NULL || privdata != ngx_http_omni_redis_script_load) {
            redisAsyncDisconnect(ctx);
        }
    }
}


static void
ngx_http_omni_redis_connect(ngx_http_omni_redis_t *rd)
{
    ngx_http_omni_main_conf_t  *omcf;

    omcf = rd->omcf;

    if (omcf->redis_sentinels && rd->switched) {
        rd->switched = 0;
        ngx_http_omni_redis_connect_master(rd, (char *) rd->master_host,
                                           rd->master_port);
        return;
    }

    if (omcf->redis_sentinels) {
        rd->sentinel_tried = 0;
        ngx_http_omni_sentinel_ask(rd);
        return;
    }

    ngx_http_omni_redis_connect_master(rd,
        omcf->redis_path.len ? NULL : (char *) omcf->redis_host.data,
        (int) omcf->redis_port);
}


/* host NULL: the unix socket */

static void
ngx_http_omni_redis_connect_master(ngx_http_omni_redis_t *rd, char *host,
    int port)
{
    size_t                      len;
    const char                 *script;
    ngx_connection_t           *c;
    redisAsyncContext          *ctx;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = rd->omcf;

    ctx = host ? redisAsyncConnect(host, port)
               : redisAsyncConnectUnix((char *) omcf->redis_path.data);

    if (ctx == NULL || ctx->err) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omni: redis %V: connect failed: %s",
                      &omcf->redis_addr, ctx ? ctx->errstr : "no memory");

        if (ctx) {
            redisAsyncFree(ctx);
        }

        ngx_http_omni_redis_schedule(rd);
        return;
    }

    c = ngx_get_connection(ctx->c.fd, rd->log);
    if (c == NULL) {
        redisAsyncFree(ctx);
        ngx_http_omni_redis_schedule(rd);
        return;
    }

    c->data = rd;
    c->read->handler = ngx_http_omni_redis_read_handler;
    c->write->handler = ngx_http_omni_redis_write_handler;
    c->read->log = rd->log;
    c->write->log = rd->log;

    rd->conn = c;
    rd->ctx = ctx;

    ctx->data = rd;
    ctx->ev.data = rd;
    ctx->ev.addRead = ngx_http_omni_redis_add_read;
    ctx->ev.delRead = ngx_http_omni_redis_del_read;
    ctx->ev.addWrite = ngx_http_omni_redis_add_write;
    ctx->ev.delWrite = ngx_http_omni_redis_del_write;
    ctx->ev.cleanup = ngx_http_omni_redis_cleanup;

    redisAsyncSetConnectCallback(ctx, ngx_http_omni_redis_on_connect);
    redisAsyncSetDisconnectCallback(ctx, ngx_http_omni_redis_on_disconnect);

    /* hiredis notices the connect completing on the first writable event;
     * ask for it even when no command is queued yet */
    ngx_http_omni_redis_add_write(rd);

    /* queued first: every later command runs authenticated, in its db */

    if (omcf->redis_password.len) {
        redisAsyncCommand(ctx, ngx_http_omni_redis_setup_done, "AUTH",
                          "AUTH %b", omcf->redis_password.data,
                          omcf->redis_password.len);
    }

    if (omcf->redis_db) {
        redisAsyncCommand(ctx, ngx_http_omni_redis_setup_done, "SELECT",
                          "SELECT %d", (int) omcf->redis_db);
    }

    /* what a Sentinel said may be stale already */
    if (omcf->redis_sentinels) {
        redisAsyncCommand(ctx, ngx_http_omni_redis_role_done, NULL, "ROLE");
    }

    /* so that the first EVALSHA finds it; NOSCRIPT later is handled too */
    script = ngx_http_omni_limit_script(&len);
    redisAsyncCommand(ctx, ngx_http_omni_redis_setup_done,
                      ngx_http_omni_redis_script_load, "SCRIPT LOAD %b",
                      script, len);

    /* FCALL once this answers: this may be another Redis than the last */
    ngx_http_omni_limit_use_function(0);
    ngx_http_omni_redis_send_library(ctx);
}


/* the limit script's function library, once Redis has lost it */

void
ngx_http_omni_redis_load_library(void)
{
    ngx_http_omni_redis_t  *rd = &ngx_http_omni_redis;

    if (rd->ctx != NULL) {
        ngx_http_omni_redis_send_library(rd->ctx);
    }
}


static void
ngx_http_omni_redis_send_library(redisAsyncContext *ctx)
{
    size_t       len;
    const char  *library;

    library = ngx_http_omni_limit_library(&len);
    redisAsyncCommand(ctx, ngx_http_omni_redis_library_done, NULL,
                      "FUNCTION LOAD %b", library, len);
}


/*
 * Loaded, or loaded already (by another gateway: the name is the text's
 * hash): FCALL from now on. A Redis before 7.0 has no FUNCTION, a Redis
 * user may be refused it: the script goes by EVALSHA, as it always could.
 */

static void
ngx_http_omni_redis_library_done(redisAsyncContext *ctx, void *reply,
    void *privdata)
{
    redisReply             *rep = reply;
    ngx_http_omni_redis_t  *rd = ctx->data;

    if (rep == NULL) {
        return;
    }

    if (rep->type != REDIS_REPLY_ERROR
        || (rep->len > sizeof("ERR Library '") - 1
            && ngx_strncmp(rep->str, "ERR Library '",
                           sizeof("ERR Library '") - 1) == 0
            && ngx_strstr(rep->str, "already exists") != NULL))
    {
        ngx_http_omni_limit_use_function(1);
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "omni: redis %V: FUNCTION LOAD failed: %*s; the limit "
                  "script runs by EVALSHA", &rd->omcf->redis_addr,
                  (size_t) rep->len, rep->str);
}


static void
ngx_http_omni_redis_role_done(redisAsyncContext *ctx, void *reply,
    void *privdata)
{
    redisReply             *rep = reply;
    ngx_http_omni_redis_t  *rd = ctx->data;

    if (rep == NULL) {
        return;
    }

    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0
        && rep->element[0]->type == REDIS_REPLY_STRING
        && rep->element[0]->len == 6
        && ngx_strncmp(rep->element[0]->str, "master", 6) == 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "omni: redis %s:%d is not the master of \"%V\"; asking "
                  "the Sentinels again", rd->master_host, rd->master_port,
                  &rd->omcf->redis_master);

    redisAsyncDisconnect(ctx);
}


/* the Sentinel link's hooks: ev.data is its ngx_connection_t */

static void
ngx_http_omni_sentinel_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_omni_sentinel_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_omni_sentinel_add_write(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_omni_sentinel_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_omni_sentinel_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_omni_sentinel_del_read(c);
    ngx_http_omni_sentinel_del_write(c);

    /* hiredis closes the socket itself */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}


static void
ngx_http_omni_sentinel_read(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_omni_sentinel_write(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


/*
 * Whichever of the link's callbacks (or the timer) comes first while
 * rd->sentinel is still this link decides; the others find it gone.
 */

static void
ngx_http_omni_sentinel_on_connect(const redisAsyncContext *ctx, int status)
{
    ngx_http_omni_redis_t  *rd = ctx->data;

    if (status == REDIS_OK || rd->sentinel != ctx) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "omni: redis Sentinel %s:%d: connect failed: %s",
                  ctx->c.tcp.host, ctx->c.tcp.port, ctx->errstr);

    rd->sentinel = NULL;
    ngx_http_omni_sentinel_failed(rd);
}


static void
ngx_http_omni_sentinel_on_disconnect(const redisAsyncContext *ctx,
    int status)
{
    ngx_http_omni_redis_t  *rd = ctx->data;

    if (rd->watch == ctx) {
        rd->watch = NULL;

        if (!rd->closing) {
            ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                          "omni: redis Sentinel %s:%d: the link watching "
                          "for a failover closed",
                          ctx->c.tcp.host, ctx->c.tcp.port);
        }

        return;
    }

    if (rd->sentinel != ctx) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "omni: redis Sentinel %s:%d: closed before it answered",
                  ctx->c.tcp.host, ctx->c.tcp.port);

    rd->sentinel = NULL;
    ngx_http_omni_sentinel_failed(rd);
}


static void
ngx_http_omni_sentinel_timeout(ngx_event_t *ev)
{
    ngx_http_omni_redis_t  *rd = ev->data;

    redisAsyncContext  *ctx;

    ctx = rd->sentinel;

    if (ctx == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "omni: redis Sentinel %s:%d did not answer in time",
                  ctx->c.tcp.host, ctx->c.tcp.port);

    rd->sentinel = NULL;
    redisAsyncFree(ctx);
    ngx_http_omni_sentinel_failed(rd);
}


static void
ngx_http_omni_sentinel_reply(redisAsyncContext *ctx, void *reply,
    void *privdata)
{
    redisReply             *rep = reply;
    ngx_http_omni_redis_t  *rd = ctx->data;

    ngx_int_t           port;
    redisReply         *host;
    redisAsyncContext  *watch;
#if (NGX_HAVE_INET6)
    u_char        inaddr6[16];
#endif

    if (rd->sentinel != ctx) {
        return;
    }

    rd->sentinel = NULL;

    if (rd->sentinel_timer.timer_set) {
        ngx_del_timer(&rd->sentinel_timer);
    }

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2
        || rep->element[0]->type != REDIS_REPLY_STRING
        || rep->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omni: redis Sentinel %s:%d does not know master "
                      "\"%V\"", ctx->c.tcp.host, ctx->c.tcp.port,
                      &rd->omcf->redis_master);
        goto failed;
    }

    host = rep->element[0];
    port = ngx_atoi((u_char *) rep->element[1]->str, rep->element[1]->len);

    /* a name would make hiredis block in getaddrinfo: numeric only */
    if (host->len == 0 || host->len > NGX_INET6_ADDRSTRLEN
        || port < 1 || port > 65535
        || (ngx_inet_addr((u_char *) host->str, host->len) == INADDR_NONE
#if (NGX_HAVE_INET6)
            && ngx_inet6_addr((u_char *) host->str, host->len, inaddr6)
               != NGX_OK
#endif
           ))
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omni: redis Sentinel %s:%d: master \"%V\" at "
                      "\"%*s:%*s\", not a numeric address",
                      ctx->c.tcp.host, ctx->c.tcp.port,
                      &rd->omcf->redis_master, (size_t) host->len,
                      host->str, (size_t) rep->element[1]->len,
                      rep->element[1]->str);
        goto failed;
    }

    if (rd->master_port != port
        || ngx_strncmp(rd->master_host, host->str, host->len) != 0
        || rd->master_host[host->len] != '\0')
    {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "omni: redis master \"%V\" is at %*s:%i",
                      &rd->omcf->redis_master, (size_t) host->len,
                      host->str, port);
    }

    ngx_memcpy(rd->master_host, host->str, host->len);
    rd->master_host[host->len] = '\0';
    rd->master_port = (int) port;

    if (rd->watch) {
        watch = rd->watch;
        rd->watch = NULL;
        redisAsyncDisconnect(watch);
    }

    if (redisAsyncCommand(ctx, ngx_http_omni_sentinel_message, NULL,
                          "SUBSCRIBE +switch-master")
        == REDIS_OK)
    {
        rd->watch = ctx;

    } else {
        redisAsyncDisconnect(ctx);
    }

    rd->sentinel_tried = 0;
    ngx_http_omni_redis_connect_master(rd, (char *) rd->master_host,
                                       rd->master_port);
    return;

failed:

    redisAsyncDisconnect(ctx);
    ngx_http_omni_sentinel_failed(rd);
}


/*
 * "+switch-master NAME OLD-IP OLD-PORT NEW-IP NEW-PORT": drop the link to
 * the old master; the next connection asks where the master is now.
 */

static void
ngx_http_omni_sentinel_message(redisAsyncContext *ctx, void *reply,
    void *privdata)
{
    redisReply             *rep = reply;
    ngx_http_omni_redis_t  *rd = ctx->data;

    u_char     *p, *last;
    ngx_str_t  *name;

    if (rep == NULL || rd->watch != ctx || rep->type != REDIS_REPLY_ARRAY
        || rep->elements != 3
        || rep->element[0]->type != REDIS_REPLY_STRING
        || rep->element[2]->type != REDIS_REPLY_STRING
        || ngx_strcmp(rep->element[0]->str, "message") != 0)
    {
        return;
    }

    name = &rd->omcf->redis_master;
    p = (u_char *) rep->element[2]->str;
    last = p + rep->element[2]->len;

    if ((size_t) (last - p) <= name->len
        || ngx_strncmp(p, name->data, name->len) != 0
        || p[name->len] != ' ')
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "omni: redis Sentinel: failover of \"%V\": %*s",
                  name, (size_t) (last - p - name->len - 1),
                  p + name->len + 1);

    /*
     * the new address, taken as it is: another Sentinel, asked now, may
     * not know of the failover yet and name the old master, which is a
     * master still until it is demoted
     */
    if (ngx_http_omni_sentinel_switch(rd, p + name->len + 1, last)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omni: redis Sentinel: a \"+switch-master\" "
                      "message not understood; asking the Sentinels");
    }

    if (rd->ctx && !(rd->ctx->c.flags & REDIS_DISCONNECTING)) {
        redisAsyncDisconnect(rd->ctx);
    }
}


/* "OLD-IP OLD-PORT NEW-IP NEW-PORT": the new master is where to connect */

static ngx_int_t
ngx_http_omni_sentinel_switch(ngx_http_omni_redis_t *rd, u_char *p,
    u_char *last)
{
    u_char      *host, *sp;
    size_t       len;
    ngx_int_t    port;
    ngx_uint_t   i;
#if (NGX_HAVE_INET6)
    u_char       inaddr6[16];
#endif

    for (i = 0; i < 2; i++) {
        p = ngx_strlchr(p, last, ' ');

        if (p == NULL) {
            return NGX_ERROR;
        }

        p++;
    }

    host = p;
    sp = ngx_strlchr(p, last, ' ');

    if (sp == NULL) {
        return NGX_ERROR;
    }

    len = sp - host;
    port = ngx_atoi(sp + 1, last - sp - 1);

    if (len == 0 || len > NGX_INET6_ADDRSTRLEN || port < 1 || port > 65535
        || (ngx_inet_addr(host, len) == INADDR_NONE
#if (NGX_HAVE_INET6)
            && ngx_inet6_addr(host, len, inaddr6) != NGX_OK
#endif
           ))
    {
        return NGX_ERROR;
    }

    ngx_memcpy(rd->master_host, host, len);
    rd->master_host[len] = '\0';
    rd->master_port = (int) port;
    rd->switched = 1;

    return NGX_OK;
}


static void
ngx_http_omni_sentinel_ask(ngx_http_omni_redis_t *rd)
{
    ngx_connection_t      *c;
    redisAsyncContext     *ctx;
    ngx_http_omni_addr_t  *a;

    a = rd->omcf->redis_sentinels->elts;
    a = &a[rd->sentinel_next % rd->omcf->redis_sentinels->nelts];

    ctx = redisAsyncConnect((char *) a->host.data, a->port);

    if (ctx == NULL || ctx->err) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omni: redis Sentinel %V:%d: connect failed: %s",
                      &a->host, (int) a->port,
                      ctx ? ctx->errstr : "no memory");

        if (ctx) {
            redisAsyncFree(ctx);
        }

        ngx_http_omni_sentinel_failed(rd);
        return;
    }

    c = ngx_get_connection(ctx->c.fd, rd->log);
    if (c == NULL) {
        redisAsyncFree(ctx);
        ngx_http_omni_sentinel_failed(rd);
        return;
    }

    c->data = ctx;
    c->read->handler = ngx_http_omni_sentinel_read;
    c->write->handler = ngx_http_omni_sentinel_write;
    c->read->log = rd->log;
    c->write->log = rd->log;

    rd->sentinel = ctx;

    ctx->data = rd;
    ctx->ev.data = c;
    ctx->ev.addRead = ngx_http_omni_sentinel_add_read;
    ctx->ev.delRead = ngx_http_omni_sentinel_del_read;
    ctx->ev.addWrite = ngx_http_omni_sentinel_add_write;
    ctx->ev.delWrite = ngx_http_omni_sentinel_del_write;
    ctx->ev.cleanup = ngx_http_omni_sentinel_cleanup;

    redisAsyncSetConnectCallback(ctx, ngx_http_omni_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ctx,
                                    ngx_http_omni_sentinel_on_disconnect);

    ngx_http_omni_sentinel_add_write(c);

    redisAsyncCommand(ctx, ngx_http_omni_sentinel_reply, NULL,
                      "SENTINEL get-master-addr-by-name %s",
                      rd->omcf->redis_master.data);

    ngx_add_timer(&rd->sentinel_timer, NGX_HTTP_OMNI_SENTINEL_TIMEOUT);
}


/* The next Sentinel now; after a round of them, the backoff. */

static void
ngx_http_omni_sentinel_failed(ngx_http_omni_redis_t *rd)
{
    if (rd->sentinel_timer.timer_set) {
        ngx_del_timer(&rd->sentinel_timer);
    }

    if (rd->closing) {
        return;
    }

    rd->sentinel_next++;

    if (++rd->sentinel_tried >= rd->omcf->redis_sentinels->nelts) {
        rd->sentinel_tried = 0;
        ngx_http_omni_redis_schedule(rd);
        return;
    }

    ngx_http_omni_sentinel_ask(rd);
}


static void
ngx_http_omni_redis_reconnect(ngx_event_t *ev)
{
    ngx_http_omni_redis_connect(ev->data);
}


static void
ngx_http_omni_redis_schedule(ngx_http_omni_redis_t *rd)
{
    ngx_msec_t  delay;

    if (rd->closing || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    rd->backoff = rd->backoff ? ngx_min(rd->backoff * 2,
                                        NGX_HTTP_OMNI_REDIS_BACKOFF_MAX)
                              : NGX_HTTP_OMNI_REDIS_BACKOFF_MIN;

    /* jitter: the workers of every gateway must not reconnect in step */
    delay = rd->backoff + (ngx_msec_t) ngx_random() % (rd->backoff / 4 + 1);

    ngx_add_timer(&rd->reconnect, delay);
}


ngx_int_t
ngx_http_omni_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_omni_redis_t      *rd = &ngx_http_omni_redis;
    ngx_http_omni_main_conf_t  *omcf;

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    if (omcf == NULL || !omcf->redis_configured) {
        return NGX_OK;
    }

    ngx_memzero(rd, sizeof(ngx_http_omni_redis_t));

    rd->omcf = omcf;
    rd->log = cycle->log;
    rd->reconnect.handler = ngx_http_omni_redis_reconnect;
    rd->reconnect.data = rd;
    rd->reconnect.log = cycle->log;

    /* a pending reconnect must not keep a quitting worker alive */
    rd->reconnect.cancelable = 1;

    rd->sentinel_timer.handler = ngx_http_omni_sentinel_timeout;
    rd->sentinel_timer.data = rd;
    rd->sentinel_timer.log = cycle->log;
    rd->sentinel_timer.cancelable = 1;

    ngx_http_omni_redis_connect(rd);

    return NGX_OK;
}


void
ngx_http_omni_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_omni_redis_t  *rd = &ngx_http_omni_redis;

    redisAsyncContext  *ctx;

    rd->closing = 1;

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    if (rd->sentinel_timer.timer_set) {
        ngx_del_timer(&rd->sentinel_timer);
    }

    if (rd->sentinel) {
        ctx = rd->sentinel;
        rd->sentinel = NULL;
        redisAsyncFree(ctx);
    }

    if (rd->watch) {
        ctx = rd->watch;
        rd->watch = NULL;
        redisAsyncFree(ctx);
    }

    if (rd->ctx) {
        redisAsyncFree(rd->ctx);
        rd->ctx = NULL;
    }
}


ngx_uint_t
ngx_http_omni_redis_connected(void)
{
    return ngx_http_omni_redis.connected;
}


ngx_int_t
ngx_http_omni_redis_command(void (*cb)(redisAsyncContext *, void *, void *),
    void *privdata, ngx_uint_t argc, char **argv, size_t *argvlen)
{
    int                     rc;
    ngx_http_omni_redis_t  *rd = &ngx_http_omni_redis;

    if (!rd->connected || rd->ctx == NULL) {
        return NGX_DECLINED;
    }

    rd->writing = 1;
    rc = redisAsyncCommandArgv(rd->ctx, cb, privdata, (int) argc,
                               (const char **) argv, argvlen);
    rd->writing = 0;

    if (rc != REDIS_OK) {
        return NGX_ERROR;
    }

    /* written when the pass ends, with every command the pass's other
     * requests queued: one write and one wake-up of Redis for them all
     * (a revocation-only check per request, otherwise one send each) */

    if (!rd->flush.posted) {
        rd->flush.handler = ngx_http_omni_redis_flush;
        rd->flush.data = rd;
        rd->flush.log = rd->log;
        ngx_post_event(&rd->flush, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_omni_redis_flush(ngx_event_t *ev)
{
    ngx_http_omni_redis_write_now(ev->data);
}


/*
 * The command just queued goes out now rather than in the next pass of
 * the loop: no write event to add and delete for each call. What the
 * socket does not take waits for the write event. A failed write tears
 * the link down here, answering every queued command with NULL, which
 * hiredis must not do inside one of its reply callbacks: there, the
 * write event is asked for as before.
 */

static void
ngx_http_omni_redis_write_now(ngx_http_omni_redis_t *rd)
{
    if (rd->ctx == NULL || !rd->want_write) {
        return;
    }

    if (!(rd->ctx->c.flags & REDIS_IN_CALLBACK)) {
        redisAsyncHandleWrite(rd->ctx);
    }

    if (rd->ctx != NULL && rd->want_write && rd->conn != NULL
        && !rd->conn->write->active)
    {
        (void) ngx_add_event(rd->conn->write, NGX_WRITE_EVENT,
                             NGX_LEVEL_EVENT);
    }
}


/* A command already in Redis's protocol. */

ngx_int_t
ngx_http_omni_redis_formatted(void (*cb)(redisAsyncContext *, void *,
    void *), void *privdata, u_char *cmd, size_t len)
{
    int                     rc;
    ngx_http_omni_redis_t  *rd = &ngx_http_omni_redis;

    if (!rd->connected || rd->ctx == NULL) {
        return NGX_DECLINED;
    }

    rd->writing = 1;
    rc = redisAsyncFormattedCommand(rd->ctx, cb, privdata, (char *) cmd, len);
    rd->writing = 0;

    if (rc != REDIS_OK) {
        return NGX_ERROR;
    }

    ngx_http_omni_redis_write_now(rd);

    return NGX_OK;
}


/*
 * A command overdue: the link is stuck (commands are answered in order).
 * Every command still queued gets a NULL reply; a new connection follows.
 */

void
ngx_http_omni_redis_teardown(void)
{
    ngx_http_omni_redis_t  *rd = &ngx_http_omni_redis;

    if (rd->ctx == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "omni: redis %V: a command is overdue, reconnecting",
                  &rd->omcf->redis_addr);

    redisAsyncFree(rd->ctx);
}


/*
 * An error reply of a command: "-READONLY" means the server was demoted
 * (a failover); with Sentinels the link is dropped once its replies are
 * in, and the next connection asks them where the master is now.
 */

void
ngx_http_omni_redis_error(u_char *text, size_t len)
{
    ngx_http_omni_redis_t  *rd = &ngx_http_omni_redis;

    if (rd->ctx == NULL || rd->omcf->redis_sentinels == NULL
        || (rd->ctx->c.flags & REDIS_DISCONNECTING)
        || ngx_strnstr(text, "READONLY", len) == NULL)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "omni: redis %s:%d answered READONLY: no longer the "
                  "master of \"%V\"; asking the Sentinels again",
                  rd->master_host, rd->master_port, &rd->omcf->redis_master);

    redisAsyncDisconnect(rd->ctx);
}
