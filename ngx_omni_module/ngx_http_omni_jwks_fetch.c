
/*
 * Omni gateway module: "omni_jwt_jwks URL", fetched in the background by
 * one nginx worker at a time and shared with the others through shared
 * memory. A lease in the zone decides which worker fetches; it stores the
 * body only once it parses, and every worker's timer parses a newer body
 * off the request path. A request never waits for a fetch:
 *
 *   [resolve] -> CONNECT -> [HANDSHAKE: certificate and host checked]
 *   -> SEND -> RECV (the response, up to the close or its Content-Length)
 *
 * all within one deadline. HTTP/1.0 is asked for so that the body is never
 * chunked. The host is resolved when the configuration is read, as
 * proxy_pass does; with a "resolver" an https host name is resolved again
 * before every fetch, an http:// one never: it must stay on loopback.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


#define NGX_HTTP_OMNI_JWKS_CONNECT    0
#define NGX_HTTP_OMNI_JWKS_HANDSHAKE  1
#define NGX_HTTP_OMNI_JWKS_SEND       2
#define NGX_HTTP_OMNI_JWKS_RECV       3

/* room for the status line and headers before the body */
#define NGX_HTTP_OMNI_JWKS_HEADER     8192


static ngx_int_t ngx_http_omni_jwks_loopback(ngx_url_t *u);
static ngx_int_t ngx_http_omni_jwks_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_omni_jwks_url_cleanup(void *data);
static void ngx_http_omni_jwks_load(ngx_http_omni_jwks_t *jwks,
    ngx_log_t *log);
static void ngx_http_omni_jwks_fetch_start(ngx_http_omni_jwks_t *jwks,
    ngx_log_t *log);
static void ngx_http_omni_jwks_fetch_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_omni_jwks_fetch_connect(ngx_http_omni_jwks_t *jwks,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name);
static void ngx_http_omni_jwks_fetch_next(ngx_http_omni_jwks_t *jwks);
static void ngx_http_omni_jwks_fetch_handler(ngx_event_t *ev);
static void ngx_http_omni_jwks_fetch_run(ngx_http_omni_jwks_t *jwks);
static void ngx_http_omni_jwks_fetch_handshake(ngx_connection_t *c);
static ngx_int_t ngx_http_omni_jwks_check_host(ngx_connection_t *c,
    ngx_str_t *host);
static void ngx_http_omni_jwks_fetch_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_omni_jwks_fetch_header(ngx_http_omni_jwks_t *jwks,
    const char **why);
static void ngx_http_omni_jwks_fetch_done(ngx_http_omni_jwks_t *jwks);
static void ngx_http_omni_jwks_fetch_failed(ngx_http_omni_jwks_t *jwks,
    const char *why);
static void ngx_http_omni_jwks_fetch_close(ngx_http_omni_jwks_t *jwks,
    ngx_msec_t next);


static ngx_str_t  ngx_http_omni_jwks_system_ca =
    ngx_string("/etc/ssl/certs/ca-certificates.crt");


char *
ngx_http_omni_jwks_url(ngx_conf_t *cf, ngx_http_omni_jwks_t *jwks,
    ngx_str_t *ca)
{
    u_char              *p;
    size_t               size;
    ngx_str_t            name, *uri;
    ngx_url_t            u;
    ngx_uint_t           https;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;

    https = (jwks->path.data[4] == 's' || jwks->path.data[4] == 'S');

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = jwks->path.data + (https ? 8 : 7);
    u.url.len = jwks->path.len - (https ? 8 : 7);
    u.default_port = https ? 443 : 80;
    u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_jwt_jwks\": %s in \"%V\"",
                           u.err ? u.err : "invalid URL", &jwks->path);
        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_jwt_jwks\": no address for \"%V\"",
                           &u.host);
        return NGX_CONF_ERROR;
    }

    if (!https && ngx_http_omni_jwks_loopback(&u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_jwt_jwks\": http:// is allowed only to a "
                           "loopback address, and \"%V\" is not one: use "
                           "https://", &u.host);
        return NGX_CONF_ERROR;
    }

    if (https) {
        if (ca->len == 0) {
            *ca = ngx_http_omni_jwks_system_ca;
        }

        if (ngx_conf_full_name(cf->cycle, ca, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (ngx_file_info(ca->data, &fi) == NGX_FILE_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "\"omni_jwt_jwks\": the CA bundle \"%V\" "
                               "for \"%V\" cannot be read", ca,
                               &jwks->path);
            return NGX_CONF_ERROR;
        }

        jwks->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
        if (jwks->ssl == NULL) {
            return NGX_CONF_ERROR;
        }

        jwks->ssl->log = cf->log;

        if (ngx_ssl_create(jwks->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            ngx_ssl_cleanup_ctx(jwks->ssl);
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_ssl_cleanup_ctx;
        cln->data = jwks->ssl;

        if (ngx_ssl_trusted_certificate(cf, jwks->ssl, ca, 5) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else if (ca->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_jwt_jwks\": ca= is for an https:// URL");
        return NGX_CONF_ERROR;
    }

    jwks->url = 1;
    jwks->addrs = u.addrs;
    jwks->naddrs = u.naddrs;
    jwks->host = u.host;
    jwks->port = u.port;
    jwks->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    jwks->resolve = https && u.host.data[0] != '['
                    && ngx_inet_addr(u.host.data, u.host.len) == INADDR_NONE;

    uri = &u.uri;

    if (uri->len == 0) {
        ngx_str_set(uri, "/");
    }

    size = sizeof("GET  HTTP/1.0" CRLF "Host: :65535" CRLF
                  "Accept: application/json" CRLF
                  "User-Agent: omni-gateway" CRLF
                  "Connection: close" CRLF CRLF) - 1
           + uri->len + u.host.len;

    p = ngx_pnalloc(cf->pool, size);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    jwks->request.data = p;

    p = ngx_sprintf(p, "GET %V HTTP/1.0" CRLF "Host: %V", uri, &u.host);

    if (u.port != u.default_port) {
        p = ngx_sprintf(p, ":%d", (int) u.port);
    }

    p = ngx_cpymem(p, CRLF "Accept: application/json" CRLF
                   "User-Agent: omni-gateway" CRLF
                   "Connection: close" CRLF CRLF,
                   sizeof(CRLF "Accept: application/json" CRLF
                          "User-Agent: omni-gateway" CRLF
                          "Connection: close" CRLF CRLF) - 1);

    jwks->request.len = p - jwks->request.data;

    /* named by the URL: a reload keeps what was fetched for it */
    name.len = sizeof("omni_jwks ") - 1 + jwks->path.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(name.data, "omni_jwks %V", &jwks->path);

    size = ngx_align(sizeof(ngx_http_omni_jwks_sh_t), ngx_pagesize)
           + 16 * ngx_pagesize;

    jwks->zone = ngx_shared_memory_add(cf, &name, size,
                                       &ngx_http_omni_module);
    if (jwks->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    jwks->zone->init = ngx_http_omni_jwks_init_zone;
    jwks->zone->data = jwks;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_omni_jwks_url_cleanup;
    cln->data = jwks;

    return NGX_CONF_OK;
}


/* Every address of the host on loopback (127.0.0.0/8, ::1). */

static ngx_int_t
ngx_http_omni_jwks_loopback(ngx_url_t *u)
{
    ngx_uint_t            i;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    for (i = 0; i < u->naddrs; i++) {

        switch (u->addrs[i].sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
        case AF_INET6:
            sin6 = (struct sockaddr_in6 *) u->addrs[i].sockaddr;

            if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
                return NGX_DECLINED;
            }

            break;
#endif

        case AF_INET:
            sin = (struct sockaddr_in *) u->addrs[i].sockaddr;

            if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
                return NGX_DECLINED;
            }

            break;

        default:
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_jwks_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_omni_jwks_t *ojwks = data;

    ngx_http_omni_jwks_t  *jwks;

    jwks = shm_zone->data;

    if (ojwks) {
        /* a reload keeps the last good set and the lease */
        jwks->sh = ojwks->sh;
        jwks->shpool = ojwks->shpool;
        return NGX_OK;
    }

    jwks->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        jwks->sh = jwks->shpool->data;
        return NGX_OK;
    }

    jwks->sh = ngx_slab_calloc(jwks->shpool, sizeof(ngx_http_omni_jwks_sh_t));
    if (jwks->sh == NULL) {
        return NGX_ERROR;
    }

    jwks->shpool->data = jwks->sh;

    return NGX_OK;
}


static void
ngx_http_omni_jwks_url_cleanup(void *data)
{
    ngx_http_omni_jwks_t  *jwks = data;

    ngx_http_omni_jwks_swap(jwks, NULL, 0, 0);
}


/*
 * A tick of the worker's timer: take up a set another worker stored, and
 * fetch when one is due and no worker holds the lease.
 */

void
ngx_http_omni_jwks_fetch_tick(ngx_http_omni_jwks_t *jwks, ngx_log_t *log)
{
    int64_t                   now;
    ngx_http_omni_jwks_sh_t  *sh;

    sh = jwks->sh;

    if (sh->version != jwks->version && sh->version != jwks->failed) {
        ngx_http_omni_jwks_load(jwks, log);
    }

    /* a fetch of this worker's is under way */
    if (jwks->pool || ngx_exiting) {
        return;
    }

    now = ngx_http_omni_shm_now();

    if (now < (int64_t) sh->next || now < (int64_t) sh->lease) {
        return;
    }

    ngx_shmtx_lock(&jwks->shpool->mutex);

    if (now < (int64_t) sh->next || now < (int64_t) sh->lease) {
        ngx_shmtx_unlock(&jwks->shpool->mutex);
        return;
    }

    /* a worker that dies while fetching loses the lease in time */
    sh->lease = now + jwks->timeout + 1000;
    sh->started = now;

    ngx_shmtx_unlock(&jwks->shpool->mutex);

    ngx_http_omni_jwks_fetch_start(jwks, log);
}


/*
 * A token named a kid no key has: a fetch one min_refresh after the last
 * one began, or this worker's timer at once when another worker already
 * stored a newer set. The request itself does not wait.
 */

void
ngx_http_omni_jwks_fetch_soon(ngx_http_omni_jwks_t *jwks)
{
    int64_t                   now, due;
    ngx_msec_t                delay;
    ngx_http_omni_jwks_sh_t  *sh;

    sh = jwks->sh;

    if (!jwks->timer.timer_set || ngx_exiting) {
        return;
    }

    if (sh->version != jwks->version && sh->version != jwks->failed) {
        ngx_add_timer(&jwks->timer, 1);
        return;
    }

    now = ngx_http_omni_shm_now();
    due = (int64_t) sh->started + jwks->min_refresh;

    if (due < now) {
        due = now;
    }

    if ((int64_t) sh->next > due) {
        ngx_shmtx_lock(&jwks->shpool->mutex);

        if ((int64_t) sh->next > due) {
            sh->next = due;
        }

        ngx_shmtx_unlock(&jwks->shpool->mutex);
    }

    delay = (ngx_msec_t) ((int64_t) sh->next > now ? sh->next - now : 1);

    /* never later than the tick already armed */
    if ((ngx_msec_int_t) (jwks->timer.timer.key - ngx_current_msec)
        > (ngx_msec_int_t) delay)
    {
        ngx_add_timer(&jwks->timer, delay);
    }
}


/* The stored body, copied under the lock and parsed outside it. */

static void
ngx_http_omni_jwks_load(ngx_http_omni_jwks_t *jwks, ngx_log_t *log)
{
    char                      err[512];
    u_char                   *text;
    size_t                    len, nkeys;
    uint64_t                  version;
    omni_jwt_key_t           *keys;
    ngx_http_omni_jwks_sh_t  *sh;

    sh = jwks->sh;

    text = ngx_alloc(NGX_HTTP_OMNI_JWKS_MAX + 1, log);
    if (text == NULL) {
        return;
    }

    ngx_shmtx_lock(&jwks->shpool->mutex);

    version = sh->version;
    len = sh->len;
    ngx_memcpy(text, sh->body, len + 1);

    ngx_shmtx_unlock(&jwks->shpool->mutex);

    if (omni_jwt_jwks_parse(&keys, &nkeys, (char *) text, len,
                            (char *) jwks->path.data, err, sizeof(err))
        != 0)
    {
        /* the fetcher parsed it before storing it: not seen in practice */
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "omni_jwt_jwks: %s; keeping the %uz keys read before",
                      err, jwks->nkeys);
        jwks->failed = version;
        ngx_free(text);
        return;
    }

    ngx_free(text);

    ngx_http_omni_jwks_swap(jwks, keys, nkeys, version);

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "omni_jwt_jwks: \"%V\": took up %uz keys another worker "
                  "fetched", &jwks->path, nkeys);
}


static void
ngx_http_omni_jwks_fetch_start(ngx_http_omni_jwks_t *jwks, ngx_log_t *log)
{
    ngx_addr_t          *addr;
    ngx_resolver_ctx_t  *ctx;

    jwks->deadline.handler = ngx_http_omni_jwks_fetch_timeout;
    jwks->deadline.data = jwks;
    jwks->deadline.log = log;

    jwks->pool = ngx_create_pool(1024, log);
    if (jwks->pool == NULL) {
        goto failed;
    }

    jwks->buf = ngx_create_temp_buf(jwks->pool, NGX_HTTP_OMNI_JWKS_HEADER
                                                + NGX_HTTP_OMNI_JWKS_MAX + 1);
    if (jwks->buf == NULL) {
        goto failed;
    }

    /* the NUL after the body */
    jwks->buf->end--;

    jwks->sent = 0;
    jwks->body = NULL;
    jwks->length = -1;
    jwks->state = NGX_HTTP_OMNI_JWKS_CONNECT;

    ngx_add_timer(&jwks->deadline, jwks->timeout);

    ctx = NULL;

    if (jwks->resolve && jwks->clcf->resolver) {
        ctx = ngx_resolve_start(jwks->clcf->resolver, NULL);
        if (ctx == NULL) {
            goto failed;
        }
    }

    jwks->addr = 0;
    jwks->resolved = 0;

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        addr = &jwks->addrs[0];
        ngx_http_omni_jwks_fetch_connect(jwks, addr->sockaddr, addr->socklen,
                                         &addr->name);
        return;
    }

    ctx->name = jwks->host;
    ctx->handler = ngx_http_omni_jwks_fetch_resolved;
    ctx->data = jwks;
    ctx->timeout = jwks->clcf->resolver_timeout;

    jwks->resolving = ctx;

    /* the handler may have run already, from the resolver's cache */
    if (ngx_resolve_name(ctx) != NGX_OK) {
        jwks->resolving = NULL;
        goto failed;
    }

    return;

failed:

    ngx_http_omni_jwks_fetch_failed(jwks, "cannot start");
}


static void
ngx_http_omni_jwks_fetch_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_http_omni_jwks_t *jwks = ctx->data;

    u_char               *p;
    ngx_str_t            *name;
    socklen_t             socklen;
    ngx_resolver_addr_t  *addr;
    struct sockaddr      *sockaddr;

    jwks->resolving = NULL;

    if (ctx->state) {
        ngx_log_error(NGX_LOG_ERR, jwks->deadline.log, 0,
                      "omni_jwt_jwks: \"%V\" could not be resolved (%i: %s)",
                      &ctx->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));
        ngx_resolve_name_done(ctx);
        ngx_http_omni_jwks_fetch_failed(jwks, "cannot resolve the host");
        return;
    }

    jwks->resolved = 1;

    addr = &ctx->addrs[ngx_random() % ctx->naddrs];

    sockaddr = ngx_palloc(jwks->pool, addr->socklen);
    name = ngx_palloc(jwks->pool, sizeof(ngx_str_t));
    p = ngx_pnalloc(jwks->pool, NGX_SOCKADDR_STRLEN);

    if (sockaddr == NULL || name == NULL || p == NULL) {
        ngx_resolve_name_done(ctx);
        ngx_http_omni_jwks_fetch_failed(jwks, "cannot start");
        return;
    }

    socklen = addr->socklen;
    ngx_memcpy(sockaddr, addr->sockaddr, socklen);

    ngx_resolve_name_done(ctx);

    ngx_inet_set_port(sockaddr, jwks->port);

    name->data = p;
    name->len = ngx_sock_ntop(sockaddr, socklen, p, NGX_SOCKADDR_STRLEN, 1);

    ngx_http_omni_jwks_fetch_connect(jwks, sockaddr, socklen, name);
}


static void
ngx_http_omni_jwks_fetch_connect(ngx_http_omni_jwks_t *jwks,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc;

    pc = &jwks->peer;
    ngx_memzero(pc, sizeof(ngx_peer_connection_t));

    pc->sockaddr = sockaddr;
    pc->socklen = socklen;
    pc->name = name;
    pc->get = ngx_event_get_peer;
    pc->log = jwks->deadline.log;
    pc->log_error = NGX_ERROR_ERR;
    pc->tries = 1;

    rc = ngx_event_connect_peer(pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        pc->connection = NULL;
        ngx_http_omni_jwks_fetch_next(jwks);
        return;
    }

    c = pc->connection;
    c->data = jwks;
    c->pool = jwks->pool;
    c->read->handler = ngx_http_omni_jwks_fetch_handler;
    c->write->handler = ngx_http_omni_jwks_fetch_handler;

    ngx_http_omni_jwks_fetch_run(jwks);
}


/*
 * A connect that failed: the host's next address of the configuration
 * (localhost is often ::1 and 127.0.0.1), within the same deadline.
 */

static void
ngx_http_omni_jwks_fetch_next(ngx_http_omni_jwks_t *jwks)
{
    ngx_addr_t  *addr;

    if (jwks->peer.connection) {
        ngx_close_connection(jwks->peer.connection);
        jwks->peer.connection = NULL;
    }

    if (jwks->resolved || ++jwks->addr >= jwks->naddrs) {
        ngx_http_omni_jwks_fetch_failed(jwks, "cannot connect");
        return;
    }

    addr = &jwks->addrs[jwks->addr];

    ngx_http_omni_jwks_fetch_connect(jwks, addr->sockaddr, addr->socklen,
                                     &addr->name);
}


static void
ngx_http_omni_jwks_fetch_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_http_omni_jwks_fetch_run(c->data);
}


static void
ngx_http_omni_jwks_fetch_run(ngx_http_omni_jwks_t *jwks)
{
    int                err;
    u_char             name[256];
    ssize_t            n;
    ngx_int_t          rc;
    socklen_t          len;
    ngx_buf_t         *b;
    const char        *why;
    ngx_connection_t  *c;

    c = jwks->peer.connection;
    b = jwks->buf;

    for ( ;; ) {

        switch (jwks->state) {

        case NGX_HTTP_OMNI_JWKS_CONNECT:

            if (!c->write->ready) {
                return;
            }

            err = 0;
            len = sizeof(int);

            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
                == -1)
            {
                err = ngx_socket_errno;
            }

            if (err) {
                ngx_log_error(NGX_LOG_ERR, c->log, err,
                              "omni_jwt_jwks: connect() to %V failed",
                              jwks->peer.name);
                ngx_http_omni_jwks_fetch_next(jwks);
                return;
            }

            if (jwks->ssl == NULL) {
                jwks->state = NGX_HTTP_OMNI_JWKS_SEND;
                break;
            }

            if (ngx_ssl_create_connection(jwks->ssl, c, NGX_SSL_BUFFER
                                                        |NGX_SSL_CLIENT)
                != NGX_OK)
            {
                ngx_http_omni_jwks_fetch_failed(jwks, "no TLS connection");
                return;
            }

            /* SNI takes a name, never an address */
            if (ngx_inet_addr(jwks->host.data, jwks->host.len) == INADDR_NONE
                && jwks->host.data[0] != '['
                && jwks->host.len < sizeof(name))
            {
                ngx_cpystrn(name, jwks->host.data, jwks->host.len + 1);
                (void) SSL_set_tlsext_host_name(c->ssl->connection,
                                                (char *) name);
            }

            jwks->state = NGX_HTTP_OMNI_JWKS_HANDSHAKE;

            rc = ngx_ssl_handshake(c);

            if (rc == NGX_AGAIN) {
                c->ssl->handler = ngx_http_omni_jwks_fetch_handshake;
                return;
            }

            ngx_http_omni_jwks_fetch_handshake(c);
            return;

        case NGX_HTTP_OMNI_JWKS_HANDSHAKE:
            return;

        case NGX_HTTP_OMNI_JWKS_SEND:

            n = c->send(c, jwks->request.data + jwks->sent,
                        jwks->request.len - jwks->sent);

            if (n == NGX_ERROR) {
                ngx_http_omni_jwks_fetch_failed(jwks, "cannot send");
                return;
            }

            if (n == NGX_AGAIN || n == 0) {
                if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                    ngx_http_omni_jwks_fetch_failed(jwks, "cannot send");
                }

                return;
            }

            jwks->sent += n;

            if (jwks->sent == jwks->request.len) {
                jwks->state = NGX_HTTP_OMNI_JWKS_RECV;
            }

            break;

        case NGX_HTTP_OMNI_JWKS_RECV:

            if (b->last == b->end) {
                ngx_http_omni_jwks_fetch_failed(jwks,
                                                "the response is too large");
                return;
            }

            n = c->recv(c, b->last, b->end - b->last);

            if (n == NGX_AGAIN) {
                if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                    ngx_http_omni_jwks_fetch_failed(jwks, "cannot read");
                }

                return;
            }

            if (n == NGX_ERROR) {
                ngx_http_omni_jwks_fetch_failed(jwks, "cannot read");
                return;
            }

            if (n == 0) {
                if (jwks->body == NULL) {
                    ngx_http_omni_jwks_fetch_failed(jwks,
                                                    "the response was cut "
                                                    "short");
                    return;
                }

                if (jwks->length >= 0
                    && b->last - jwks->body != jwks->length)
                {
                    ngx_http_omni_jwks_fetch_failed(jwks,
                                                    "the body was cut short");
                    return;
                }

                ngx_http_omni_jwks_fetch_done(jwks);
                return;
            }

            b->last += n;

            if (jwks->body == NULL) {
                rc = ngx_http_omni_jwks_fetch_header(jwks, &why);

                if (rc == NGX_ERROR) {
                    ngx_http_omni_jwks_fetch_failed(jwks, why);
                    return;
                }

                if (rc == NGX_AGAIN) {
                    break;
                }
            }

            if (jwks->length >= 0 && b->last - jwks->body >= jwks->length) {
                /* a TLS server may close without close_notify: not waited */
                b->last = jwks->body + jwks->length;
                ngx_http_omni_jwks_fetch_done(jwks);
                return;
            }

            break;
        }
    }
}


static void
ngx_http_omni_jwks_fetch_handshake(ngx_connection_t *c)
{
    long                   rc;
    ngx_http_omni_jwks_t  *jwks = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_omni_jwks_fetch_failed(jwks, "TLS handshake failed");
        return;
    }

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "omni_jwt_jwks: certificate of \"%V\" does not verify: "
                      "(%l:%s)", &jwks->host, rc,
                      X509_verify_cert_error_string(rc));
        ngx_http_omni_jwks_fetch_failed(jwks, "the certificate does not "
                                        "verify");
        return;
    }

    if (ngx_http_omni_jwks_check_host(c, &jwks->host) != NGX_OK) {
        ngx_http_omni_jwks_fetch_failed(jwks, "the certificate does not "
                                        "name the host");
        return;
    }

    c->read->handler = ngx_http_omni_jwks_fetch_handler;
    c->write->handler = ngx_http_omni_jwks_fetch_handler;

    jwks->state = NGX_HTTP_OMNI_JWKS_SEND;

    ngx_http_omni_jwks_fetch_run(jwks);
}


/* nginx 1.22's ngx_ssl_check_host() matches names only: an address here */

static ngx_int_t
ngx_http_omni_jwks_check_host(ngx_connection_t *c, ngx_str_t *host)
{
    int     rc;
    char    ip[NGX_SOCKADDR_STRLEN];
    X509   *cert;
    size_t  len;

    len = host->len;

    if (len > 2 && host->data[0] == '[') {
        ngx_memcpy(ip, host->data + 1, ngx_min(len - 2, sizeof(ip) - 1));
        ip[ngx_min(len - 2, sizeof(ip) - 1)] = '\0';

    } else if (ngx_inet_addr(host->data, len) != INADDR_NONE
               && len < sizeof(ip))
    {
        ngx_memcpy(ip, host->data, len);
        ip[len] = '\0';

    } else {
        return ngx_ssl_check_host(c, host);
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    rc = X509_check_ip_asc(cert, ip, 0);

    X509_free(cert);

    return rc == 1 ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_omni_jwks_fetch_timeout(ngx_event_t *ev)
{
    ngx_http_omni_jwks_fetch_failed(ev->data, "timed out");
}


/*
 * The status line and headers once they are all in: NGX_AGAIN until then;
 * only 200 is taken, and a chunked body (never sent to HTTP/1.0) refused.
 */

static ngx_int_t
ngx_http_omni_jwks_fetch_header(ngx_http_omni_jwks_t *jwks,
    const char **why)
{
    u_char     *p, *end, *line, *eol;
    ngx_buf_t  *b;

    b = jwks->buf;
    end = NULL;

    for (p = b->pos; p + 3 < b->last; p++) {
        if (p[0] == CR && p[1] == LF && p[2] == CR && p[3] == LF) {
            end = p + 2;
            break;
        }
    }

    if (end == NULL) {
        if (b->last - b->pos >= NGX_HTTP_OMNI_JWKS_HEADER) {
            *why = "the response header is too large";
            return NGX_ERROR;
        }

        return NGX_AGAIN;
    }

    p = b->pos;

    if (end - p < 12
        || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || p[8] != ' ')
    {
        *why = "not an HTTP response";
        return NGX_ERROR;
    }

    if (ngx_strncmp(p + 9, "200", 3) != 0 || (p[12] != ' ' && p[12] != CR)) {
        *why = "the response status is not 200";
        return NGX_ERROR;
    }

    for (line = p; line < end; line = eol + 2) {
        eol = ngx_strlchr(line, end, CR);

        if (eol == NULL) {
            break;
        }

        if (eol - line > 15
            && ngx_strncasecmp(line, (u_char *) "content-length:", 15) == 0)
        {
            p = line + 15;

            while (p < eol && (*p == ' ' || *p == '\t')) {
                p++;
            }

            jwks->length = ngx_atoof(p, eol - p);

            if (jwks->length < 0) {
                *why = "a bad Content-Length";
                return NGX_ERROR;
            }

            if (jwks->length > NGX_HTTP_OMNI_JWKS_MAX) {
                *why = "the body is too large";
                return NGX_ERROR;
            }
        }

        if (eol - line > 18
            && ngx_strncasecmp(line, (u_char *) "transfer-encoding:", 18)
               == 0)
        {
            *why = "a Transfer-Encoding was sent";
            return NGX_ERROR;
        }
    }

    jwks->body = end + 2;

    return NGX_OK;
}


/*
 * A whole body: stored for the other workers only once it parses; the
 * same body as before keeps the version (and the verified-token cache).
 */

static void
ngx_http_omni_jwks_fetch_done(ngx_http_omni_jwks_t *jwks)
{
    char                      err[512];
    size_t                    len, nkeys;
    uint64_t                  version;
    ngx_uint_t                same;
    omni_jwt_key_t           *keys;
    ngx_http_omni_jwks_sh_t  *sh;

    len = jwks->buf->last - jwks->body;

    if (len > NGX_HTTP_OMNI_JWKS_MAX) {
        ngx_http_omni_jwks_fetch_failed(jwks, "the body is too large");
        return;
    }

    *jwks->buf->last = '\0';

    if (omni_jwt_jwks_parse(&keys, &nkeys, (char *) jwks->body, len,
                            "the body", err, sizeof(err))
        != 0)
    {
        ngx_http_omni_jwks_fetch_failed(jwks, err);
        return;
    }

    sh = jwks->sh;

    ngx_shmtx_lock(&jwks->shpool->mutex);

    same = (sh->version && sh->len == len
            && ngx_memcmp(sh->body, jwks->body, len) == 0);

    if (!same) {
        ngx_memcpy(sh->body, jwks->body, len + 1);
        sh->len = len;
        sh->version++;
    }

    version = sh->version;

    ngx_shmtx_unlock(&jwks->shpool->mutex);

    ngx_http_omni_metrics_jwks_fetch(0);

    if (same && version == jwks->version) {
        while (nkeys) {
            omni_jwt_key_free(&keys[--nkeys]);
        }

        free(keys);

    } else {
        ngx_http_omni_jwks_swap(jwks, keys, nkeys, version);

        ngx_log_error(NGX_LOG_NOTICE, jwks->deadline.log, 0,
                      "omni_jwt_jwks: fetched \"%V\": %uz keys",
                      &jwks->path, nkeys);
    }

    ngx_http_omni_jwks_fetch_close(jwks, jwks->refresh);
}


static void
ngx_http_omni_jwks_fetch_failed(ngx_http_omni_jwks_t *jwks, const char *why)
{
    ngx_log_error(NGX_LOG_ERR, jwks->deadline.log, 0,
                  "omni_jwt_jwks: fetching \"%V\" failed: %s; keeping the "
                  "%uz keys fetched before", &jwks->path, why, jwks->nkeys);

    ngx_http_omni_metrics_jwks_fetch(1);

    /* soon again, but no sooner than a token's unknown kid could ask */
    ngx_http_omni_jwks_fetch_close(jwks,
                                   ngx_min(jwks->refresh, jwks->min_refresh));
}


static void
ngx_http_omni_jwks_fetch_close(ngx_http_omni_jwks_t *jwks, ngx_msec_t next)
{
    int64_t            now;
    ngx_connection_t  *c;

    if (jwks->resolving) {
        ngx_resolve_name_done(jwks->resolving);
        jwks->resolving = NULL;
    }

    c = jwks->peer.connection;

    if (c) {
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }

        ngx_close_connection(c);
        jwks->peer.connection = NULL;
    }

    if (jwks->deadline.timer_set) {
        ngx_del_timer(&jwks->deadline);
    }

    if (jwks->pool) {
        ngx_destroy_pool(jwks->pool);
        jwks->pool = NULL;
    }

    now = ngx_http_omni_shm_now();

    ngx_shmtx_lock(&jwks->shpool->mutex);

    jwks->sh->next = now + next;
    jwks->sh->lease = 0;

    ngx_shmtx_unlock(&jwks->shpool->mutex);
}
