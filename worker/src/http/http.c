/* http.c: request lifecycle on libevent's evhttp: who may ask, route, parse,
 * answer, account. */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "io/log.h"
#include "http/http.h"
#include "http/metrics.h"


#define OMNI_HTTP_SECRET_HEADER "X-Omni-Gateway-Secret"
#define OMNI_HTTP_REFUSED_UIDS 16
#define OMNI_HTTP_REFUSED_LOG_S 60
#define OMNI_HTTP_PEERS 256 /* a power of two */
#define OMNI_HTTP_FREE_REQS 64

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define OMNI_HTTP_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define OMNI_HTTP_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define OMNI_HTTP_POISON(p, n) ((void)(p), (void)(n))
#define OMNI_HTTP_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct {
    long uid;
    time_t logged;
} omni_http_refused_t;

static struct {
    const omni_route_t *routes;
    int nroutes;
    omni_json_limits_t limits;
    int inflight;
    int draining;
    void (*drained)(void *);
    void *drained_arg;
    uint64_t rng[2];
    omni_observer_pt observers[OMNI_HTTP_MAX_OBSERVERS];
    int nobservers;

    /* who is believed: the peer of a unix socket by its uid, and with a
     * secret configured, only requests carrying it */
    int unix_socket;
    long gateway_uid;
    long self_uid;
    int nsecrets;
    unsigned char secret_md[OMNI_GATEWAY_SECRETS_MAX][EVP_MAX_MD_SIZE];
    omni_http_refused_t refused[OMNI_HTTP_REFUSED_UIDS];
    const struct bufferevent *peers[OMNI_HTTP_PEERS];

    omni_req_t *free_reqs;
    int nfree_reqs;

    void (*on_accept)(void *);
    void *on_accept_arg;
} omni_http;


static uint64_t omni_http_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


uint64_t omni_req_since_us(const omni_req_t *r)
{
    return (omni_http_now_ns() - r->start_ns) / 1000;
}


/* xorshift128+: request ids need to be unique, not secret */
static uint64_t omni_http_rand(void)
{
    uint64_t s1 = omni_http.rng[0], s0 = omni_http.rng[1];

    omni_http.rng[0] = s0;
    s1 ^= s1 << 23;
    omni_http.rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return omni_http.rng[1] + s0;
}


static void omni_http_hex64(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    for (i = 15; i >= 0; i--) {
        out[i] = hex[v & 0xf];
        v >>= 4;
    }
}


static void omni_http_request_id(omni_req_t *r)
{
    const char *id = omni_req_header(r, "X-Request-Id");
    size_t i, n;

    if (id != NULL) {
        n = strlen(id);
        for (i = 0; i < n && i < 128; i++) {
            char c = id[i];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                    || (c >= '0' && c <= '9') || c == '-' || c == '_'
                    || c == '.' || c == ':')) {
                break;
            }
        }
        if (n > 0 && i == n) {
            memcpy(r->request_id, id, n + 1);
            return;
        }
    }

    omni_http_hex64(r->request_id, omni_http_rand());
    omni_http_hex64(r->request_id + 16, omni_http_rand());
    r->request_id[32] = '\0';
}


static const char *omni_http_method(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}


const char *omni_req_header(omni_req_t *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}


static int omni_http_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}


/* Decodes a query component (+ is a space); NULL on a bad escape or NUL. */
static char *omni_http_decode_arg(omni_arena_t *a, const char *s, size_t len)
{
    char *out = omni_arena_alloc(a, len + 1);
    size_t i, n = 0;

    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= len) {
                return NULL;
            }
            hi = omni_http_hex(s[i + 1]);
            lo = omni_http_hex(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0) {
                return NULL;
            }
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}


const char *omni_req_arg(omni_req_t *r, const char *name)
{
    const char *p = r->query, *amp, *eq;
    size_t nlen = strlen(name);

    while (p && *p) {
        amp = strchr(p, '&');
        if (amp == NULL) {
            amp = p + strlen(p);
        }
        eq = memchr(p, '=', amp - p);
        if (eq && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            return omni_http_decode_arg(&r->arena, eq + 1, amp - eq - 1);
        }
        if (eq == NULL && (size_t)(amp - p) == nlen
            && memcmp(p, name, nlen) == 0) {
            return "";
        }
        p = *amp ? amp + 1 : amp;
    }
    return NULL;
}


static int omni_http_peer_allowed(long uid)
{
    return uid == 0 || uid == omni_http.self_uid
           || (omni_http.gateway_uid >= 0 && uid == omni_http.gateway_uid);
}


/* Logs a refused peer at most once a minute per uid: a misconfigured
 * gateway would otherwise log every request. */
static void omni_http_log_refused(long uid, long pid)
{
    time_t now = time(NULL);
    omni_http_refused_t *e = &omni_http.refused[0];
    int i;

    for (i = 0; i < OMNI_HTTP_REFUSED_UIDS; i++) {
        omni_http_refused_t *c = &omni_http.refused[i];

        if (c->logged != 0 && c->uid == uid) {
            if (now - c->logged < OMNI_HTTP_REFUSED_LOG_S) {
                return;
            }
            e = c;
            break;
        }
        if (c->logged < e->logged) {
            e = c;
        }
    }
    e->uid = uid;
    e->logged = now;
    omni_log(OMNI_LOG_WARN, "connection refused: the peer is not the gateway",
        "\"peer_uid\":%ld,\"peer_pid\":%ld,\"setting\":"
        "\"OMNI_GATEWAY_USER\"",
        uid, pid);
}


static const struct bufferevent **omni_http_peer_slot(
    const struct bufferevent *bev)
{
    uint64_t h = (uint64_t)(uintptr_t)bev * 0x9E3779B97F4A7C15ull;

    return &omni_http.peers[h >> 56 & (OMNI_HTTP_PEERS - 1)];
}


/* evhttp makes every accepted connection's bufferevent here: a new one
 * may sit where a closed connection's did, so whatever was believed of
 * that address is forgotten before its first request. */
static struct bufferevent *omni_http_new_bev(struct event_base *base, void *arg)
{
    struct bufferevent *bev =
        bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    const struct bufferevent **slot;

    if (omni_http.on_accept != NULL) {
        omni_http.on_accept(omni_http.on_accept_arg);
    }
    if (bev == NULL) {
        /* evhttp makes one itself, unseen here */
        memset(omni_http.peers, 0, sizeof(omni_http.peers));
        return NULL;
    }
    slot = omni_http_peer_slot(bev);
    if (*slot == bev) {
        *slot = NULL;
    }
    return bev;
}


void omni_http_on_accept(void (*fn)(void *), void *arg)
{
    omni_http.on_accept = fn;
    omni_http.on_accept_arg = arg;
}


/* A unix-socket peer that is not root, us or the gateway's user gets its
 * connection closed unanswered. evhttp (libevent 2.1) has no hook at
 * accept, so this runs on a connection's first request, before anything
 * reads it; the allowed connection is remembered by its bufferevent (see
 * omni_http_new_bev), so its next requests cost no system call. Returns
 * 0 when the peer may ask, -1 after refusing it. */
static int omni_http_check_peer(struct evhttp_request *ev)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
    socklen_t len = sizeof(cred);
    const struct bufferevent **slot;
    struct bufferevent *bev;
    evutil_socket_t fd;

    if (!omni_http.unix_socket || evcon == NULL) {
        return 0;
    }
    bev = evhttp_connection_get_bufferevent(evcon);
    slot = omni_http_peer_slot(bev);
    if (*slot == bev) {
        return 0;
    }
    fd = bufferevent_getfd(bev);
    if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0
        && omni_http_peer_allowed((long)cred.uid)) {
        *slot = bev;
        return 0;
    }

    omni_metrics_gateway_refused();
    omni_http_log_refused((long)cred.uid, (long)cred.pid);
    /* the reply fails to go out and libevent frees the connection */
    if (fd >= 0) {
        shutdown(fd, SHUT_RDWR);
    }
    evhttp_send_error(ev, 403, NULL);
    return -1;
}


static int omni_http_secret_matches(const char *v)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int i, match = 0;

    if (v == NULL
        || EVP_Digest(v, strlen(v), md, &n, EVP_sha256(), NULL) != 1) {
        return 0;
    }
    /* digests of equal length, every one compared: the time says nothing
     * about the secret nor about which of them matched */
    for (i = 0; i < omni_http.nsecrets; i++) {
        match |= CRYPTO_memcmp(md, omni_http.secret_md[i], n) == 0;
    }
    return match;
}


static int omni_http_identity_header(const char *name)
{
    return strncasecmp(name, "X-User-", 7) == 0
           || strncasecmp(name, "X-Token-", 8) == 0;
}


/* Whether the request comes from the gateway; the secret header is gone
 * either way, and an untrusted request's X-User-* and X-Token-* too, so no
 * handler can read an identity the gateway did not vouch for. */
static int omni_http_trusted(omni_req_t *r)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    struct evkeyval *kv;
    int trusted = 1;

    if (omni_http.nsecrets > 0) {
        trusted = omni_http_secret_matches(
            evhttp_find_header(h, OMNI_HTTP_SECRET_HEADER));
    }
    while (evhttp_remove_header(h, OMNI_HTTP_SECRET_HEADER) == 0) {
        /* every copy */
    }
    if (trusted) {
        return 1;
    }

    omni_metrics_gateway_untrusted();
    for (kv = TAILQ_FIRST(h); kv != NULL;) {
        if (omni_http_identity_header(kv->key)) {
            evhttp_remove_header(h, kv->key);
            kv = TAILQ_FIRST(h);
            continue;
        }
        kv = TAILQ_NEXT(kv, next);
    }
    return 0;
}


/* Requests are reused, each with its arena's first block: the loop
 * answers one request after another, and each would otherwise cost a
 * calloc, a 4 KiB malloc and their frees. */
static omni_req_t *omni_http_req_new(void)
{
    omni_req_t *r = omni_http.free_reqs;
    omni_arena_t arena;

    if (r == NULL) {
        r = calloc(1, sizeof(omni_req_t));
        if (r != NULL) {
            omni_arena_init(&r->arena, 4096);
        }
        return r;
    }
    OMNI_HTTP_UNPOISON(r, sizeof(*r));
    omni_http.free_reqs = r->data;
    omni_http.nfree_reqs--;
    arena = r->arena;
    memset(r, 0, sizeof(*r));
    r->arena = arena;
    return r;
}


static void omni_http_req_free(omni_req_t *r)
{
    if (omni_http.nfree_reqs == OMNI_HTTP_FREE_REQS) {
        omni_arena_free(&r->arena);
        free(r);
        return;
    }
#if defined(__SANITIZE_ADDRESS__)
    omni_arena_free(&r->arena);
#else
    omni_arena_reset(&r->arena);
#endif
    r->data = omni_http.free_reqs;
    omni_http.free_reqs = r;
    omni_http.nfree_reqs++;
    /* a use after the answer still shows under ASan */
    OMNI_HTTP_POISON(r, sizeof(*r));
}


static void omni_http_finish(omni_req_t *r, int status)
{
    char path[256];
    uint64_t us = omni_req_since_us(r);
    int i;

    omni_metrics_request(r->route, status, us);
    for (i = 0; i < omni_http.nobservers; i++) {
        omni_http.observers[i](r->route, status, us);
    }

    if (omni_log_enabled(OMNI_LOG_INFO)) {
        omni_log(OMNI_LOG_INFO, "request",
            "\"request_id\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
            "\"route\":\"%s\",\"status\":%d,\"duration_ms\":%.3f",
            r->request_id, r->method,
            omni_log_escape(path, sizeof(path), r->path),
            omni_metrics_route_label(r->route), status, us / 1000.0);
    }

    omni_http_req_free(r);
}


/* A request stops counting as in flight once its response is written out
 * (or its client is gone): a draining process must not exit before. */
static void omni_http_done(void)
{
    if (--omni_http.inflight == 0 && omni_http.drained) {
        void (*cb)(void *) = omni_http.drained;

        omni_http.drained = NULL;
        cb(omni_http.drained_arg);
    }
}


static void omni_http_written(struct evhttp_request *ev, void *arg)
{
    omni_http_done();
}


static void omni_http_closed(struct evhttp_connection *evcon, void *arg)
{
    omni_req_t *r = arg;
    void (*cb)(void *) = r->on_close;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    r->on_close = NULL;
    if (r->close_ev != NULL) {
        event_free(r->close_ev);
        r->close_ev = NULL;
    }
    if (cb != NULL) {
        cb(r->on_close_arg);
    }
}


/* evhttp stops reading a connection once its request is in, so it would
 * learn that the peer left only when the answer fails to go out. This
 * watches the socket: at EOF (a peek reads 0 bytes, so nothing else is
 * pending) evhttp is handed the EOF its reader would have met: it
 * detaches the request and closes the connection, which calls
 * omni_http_closed. */
static void omni_http_peek(evutil_socket_t fd, short what, void *arg)
{
    omni_req_t *r = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(r->close_ev, NULL);
        return;
    }
    if (n > 0 || evcon == NULL) {
        return; /* bytes we may not read early, or already detached */
    }
    bufferevent_trigger_event(evhttp_connection_get_bufferevent(evcon),
        BEV_EVENT_READING | BEV_EVENT_EOF, 0);
}


static void omni_http_forget_close(omni_req_t *r);


int omni_req_on_close(omni_req_t *r, void (*cb)(void *arg), void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    struct bufferevent *bev;

    if (evcon == NULL) {
        r->on_close = NULL;
        return -1;
    }
    if (cb == NULL) {
        omni_http_forget_close(r);
        return 0;
    }
    r->on_close = cb;
    r->on_close_arg = arg;
    evhttp_connection_set_closecb(evcon, omni_http_closed, r);
    bev = evhttp_connection_get_bufferevent(evcon);
    if (cb != NULL && r->close_ev == NULL && bev != NULL
        && bufferevent_getfd(bev) >= 0) {
        r->close_ev = event_new(evhttp_connection_get_base(evcon),
            bufferevent_getfd(bev), EV_READ, omni_http_peek, r);
        if (r->close_ev != NULL) {
            event_add(r->close_ev, NULL);
        }
    }
    return 0;
}


int omni_req_client_gone(omni_req_t *r)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    struct bufferevent *bev;
    evutil_socket_t fd;
    ssize_t n;
    char c;

    if (evcon == NULL) {
        return 1;
    }
    bev = evhttp_connection_get_bufferevent(evcon);
    fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    if (fd < 0) {
        return 0;
    }
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0
           || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
               && errno != EINTR);
}


static void omni_http_forget_close(omni_req_t *r)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);

    if (r->on_close != NULL && evcon != NULL) {
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    }
    r->on_close = NULL;
    if (r->close_ev != NULL) {
        event_free(r->close_ev);
        r->close_ev = NULL;
    }
}


void omni_respond_start(omni_req_t *r, int status, const char *content_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);

    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "X-Request-Id", r->request_id);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    if (omni_http.draining) {
        evhttp_add_header(h, "Connection", "close");
    }
    r->stream_status = status;
    if (evhttp_request_get_connection(r->ev) != NULL) {
        evhttp_send_reply_start(r->ev, status, NULL);
    }
}


static void omni_http_flush(struct evhttp_connection *evcon);


void omni_respond_chunk(omni_req_t *r, struct evbuffer *body)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);

    if (evcon != NULL) {
        evhttp_send_reply_chunk(r->ev, body);
        /* a stream's chunk (a chat delta) goes out now, not on the loop's
         * next turn; evhttp's write callback has nothing to do for one */
        omni_http_flush(evcon);
    }
    evbuffer_drain(body, evbuffer_get_length(body));
}


void omni_respond_end(omni_req_t *r)
{
    struct evhttp_request *ev = r->ev;

    omni_http_forget_close(r);
    if (evhttp_request_get_connection(ev) == NULL) {
        /* the client is gone: libevent frees the request (and the path r
         * points into) in send_reply_end, so r is accounted first */
        omni_http_finish(r, r->stream_status);
        evhttp_send_reply_end(ev);
        omni_http_done();
        return;
    }
    evhttp_request_set_on_complete_cb(ev, omni_http_written, NULL);
    evhttp_send_reply_end(ev);
    omni_http_finish(r, r->stream_status);
}


/* evhttp writes an answer on the loop's next turn, once epoll says the
 * socket takes it: write interest on, then off and read interest back, two
 * epoll_ctl calls a request. The socket nearly always takes it at once:
 * then evhttp hears it went out as from its own write, the next request is
 * read, and the interest changes cancel out within this turn. Anything
 * else (a partial write, an error) is left to evhttp's write. */
static void omni_http_flush(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    int n;

    if (fd < 0 || evbuffer_get_length(out) == 0) {
        return;
    }
    /* only the bufferevent drains its output: it thaws it the same way */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n > 0 && evbuffer_get_length(out) == 0) {
        bufferevent_trigger(bev, EV_WRITE, 0);
    }
}


void omni_respond(
    omni_req_t *r, int status, const char *content_type, struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    struct evhttp_connection *evcon;

    omni_http_forget_close(r);
    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "X-Request-Id", r->request_id);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (omni_http.draining) {
        /* nginx moves to another process for its next request */
        evhttp_add_header(h, "Connection", "close");
    }

    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_HEAD && body) {
        evbuffer_drain(body, evbuffer_get_length(body));
    }

    if (evhttp_request_get_connection(r->ev) == NULL) {
        /* the client is gone: libevent frees the request (and the path r
         * points into) in send_reply, so r is accounted first */
        struct evhttp_request *ev = r->ev;

        omni_http_finish(r, status);
        evhttp_send_reply(ev, status, NULL, body);
        omni_http_done();
        return;
    }
    evcon = evhttp_request_get_connection(r->ev);
    evhttp_request_set_on_complete_cb(r->ev, omni_http_written, NULL);
    evhttp_send_reply(r->ev, status, NULL, body);
    omni_http_finish(r, status);
    omni_http_flush(evcon);
}


void omni_respond_header(omni_req_t *r, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}


void omni_respond_error(
    omni_req_t *r, int status, const char *code, const char *fmt, ...)
{
    struct evbuffer *b = evbuffer_new();
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (b != NULL) {
        evbuffer_add_printf(b, "{\"error\":\"%s\",\"message\":", code);
        omni_json_put_string(b, msg, strlen(msg));
        evbuffer_add(b, "}\n", 2);
    }
    omni_respond(r, status, "application/json", b);
    if (b != NULL) {
        evbuffer_free(b);
    }
}


static int omni_http_is_json(const char *ct)
{
    size_t n = sizeof("application/json") - 1;

    return ct == NULL
           || (strncasecmp(ct, "application/json", n) == 0
               && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '));
}


static int omni_http_parse_body(omni_req_t *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t len = evbuffer_get_length(in);
    const char *text;
    char err[256];

    if (!omni_http_is_json(omni_req_header(r, "Content-Type"))) {
        omni_respond_error(r, 415, "unsupported_media_type",
            "request body must be application/json");
        return -1;
    }

    text = len ? (const char *)evbuffer_pullup(in, -1) : "";
    r->json = omni_json_parse(
        &r->arena, text, len, &omni_http.limits, err, sizeof(err));
    if (r->json == NULL) {
        omni_respond_error(r, 400, "invalid_json", "%s", err);
        return -1;
    }
    if ((omni_http.routes[r->route].flags & OMNI_ROUTE_JSON_OBJECT)
            == OMNI_ROUTE_JSON_OBJECT
        && r->json->type != OMNI_JSON_OBJECT) {
        omni_respond_error(r, 400, "invalid_json", "expected a JSON object");
        return -1;
    }
    return 0;
}


static void omni_http_handle(struct evhttp_request *ev, void *arg)
{
    omni_req_t *r;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path, *problem;
    omni_route_match_t m;
    int i, trusted;

    if (omni_http_check_peer(ev) != 0) {
        return;
    }

    r = omni_http_req_new();
    if (r == NULL) {
        evhttp_send_error(ev, 503, NULL);
        return;
    }
    omni_http.inflight++;
    r->ev = ev;
    r->start_ns = omni_http_now_ns();
    r->route = -1;
    r->method = omni_http_method(evhttp_request_get_command(ev));
    path = uri ? evhttp_uri_get_path(uri) : NULL;
    r->path = path && *path ? path : "/";
    r->query = uri ? evhttp_uri_get_query(uri) : NULL;
    omni_http_request_id(r);
    trusted = omni_http_trusted(r);

    /* nginx picks the location from the normalised path but forwards the
     * raw one: a path the two could read differently is not served */
    problem = omni_router_path_problem(evhttp_request_get_uri(ev));
    if (problem != NULL) {
        omni_respond_error(r, 400, "invalid_path", "%s", problem);
        return;
    }

    switch (omni_router_match(omni_http.routes, omni_http.nroutes, r->method,
        r->path, strlen(r->path), &m)) {
    case OMNI_ROUTE_NOT_FOUND:
        omni_respond_error(
            r, 404, "not_found", "no route for %s %s", r->method, r->path);
        return;

    case OMNI_ROUTE_BAD_METHOD:
        evhttp_add_header(
            evhttp_request_get_output_headers(ev), "Allow", m.allow);
        omni_respond_error(r, 405, "method_not_allowed",
            "%s is not allowed here; allowed: %s", r->method, m.allow);
        return;

    case OMNI_ROUTE_FOUND:
        break;
    }

    r->route = m.index;
    if (!trusted && (omni_http.routes[m.index].flags & OMNI_ROUTE_IDENTITY)) {
        omni_respond_error(r, 401, "missing_credentials",
            "this route needs the caller's identity from the "
            "gateway (X-Omni-Gateway-Secret missing or "
            "wrong)");
        return;
    }
    for (i = 0; i < m.nparams; i++) {
        char *v = omni_arena_alloc(&r->arena, m.params[i].value_len + 1);

        if (v == NULL
            || omni_url_decode(v, m.params[i].value, m.params[i].value_len)
                   < 0) {
            omni_respond_error(r, 400, "bad_request",
                "path parameter %.*s is not well encoded",
                (int)m.params[i].name_len, m.params[i].name);
            return;
        }
        r->params[i] = v;
    }

    if ((omni_http.routes[m.index].flags & OMNI_ROUTE_JSON_BODY)
        && omni_http_parse_body(r) != 0) {
        return;
    }

    omni_http.routes[m.index].handler(r);
}


int omni_http_attach(struct evhttp *http, const omni_route_t *routes,
    int nroutes, const omni_config_t *cfg)
{
    const char *secret = cfg->gateway_secret;
    int max_body = cfg->max_body_bytes;
    unsigned int n = 0;

    omni_http.routes = routes;
    omni_http.nroutes = nroutes;
    omni_http.limits.max_bytes = (size_t)max_body;
    omni_http.limits.max_depth = cfg->json_max_depth;
    omni_http.unix_socket = omni_config_listen_unix(cfg->listen);
    omni_http.gateway_uid = cfg->gateway_uid;
    omni_http.self_uid = (long)getuid();
    omni_http.nsecrets = 0;
    while (secret != NULL && *secret != '\0'
           && omni_http.nsecrets < OMNI_GATEWAY_SECRETS_MAX) {
        size_t len = strcspn(secret, "\n");

        if (EVP_Digest(secret, len, omni_http.secret_md[omni_http.nsecrets], &n,
                EVP_sha256(), NULL)
            != 1) {
            return -1;
        }
        omni_http.nsecrets++;
        secret += len + (secret[len] == '\n');
    }
    if (getrandom(omni_http.rng, sizeof(omni_http.rng), 0)
        != sizeof(omni_http.rng)) {
        omni_http.rng[0] = (uint64_t)omni_http_now_ns();
        omni_http.rng[1] = (uint64_t)getpid() << 32 | 0x9E3779B9u;
    }

    memset(omni_http.peers, 0, sizeof(omni_http.peers));
    evhttp_set_bevcb(http, omni_http_new_bev, NULL);
    evhttp_set_gencb(http, omni_http_handle, NULL);
    evhttp_set_max_body_size(http, max_body);
    evhttp_set_max_headers_size(http, 32768);
    evhttp_set_allowed_methods(http,
        EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT
            | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    return 0;
}


int omni_http_draining(void)
{
    return omni_http.draining;
}


int omni_http_inflight(void)
{
    return omni_http.inflight;
}


void omni_http_drain(void (*cb)(void *arg), void *arg)
{
    omni_http.draining = 1;
    if (omni_http.inflight == 0) {
        cb(arg);
        return;
    }
    omni_http.drained = cb;
    omni_http.drained_arg = arg;
}


int omni_http_observe(omni_observer_pt fn)
{
    if (omni_http.nobservers == OMNI_HTTP_MAX_OBSERVERS) {
        return -1;
    }
    omni_http.observers[omni_http.nobservers++] = fn;
    return 0;
}


void omni_http_resume(omni_req_t *r)
{
    omni_http.routes[r->route].handler(r);
}
