/* http.c: the request life cycle over http/conn.c's connections: who may
 * ask, route, parse, answer, account. */
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

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "io/log.h"
#include "http/conn.h"
#include "http/http.h"
#include "http/metrics.h"


#define OMNI_HTTP_SECRET_HEADER "X-Omni-Gateway-Secret"
#define OMNI_HTTP_REFUSED_UIDS 16
#define OMNI_HTTP_REFUSED_LOG_S 60
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
    struct evbuffer *head; /* an answer's head, built then sent */

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


/* The methods served; others are answered 501 (RFC 9110 9.1). */
static int omni_http_method_known(const char *m)
{
    static const char *const known[] = {
        "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"};
    size_t i;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(m, known[i]) == 0) {
            return 1;
        }
    }
    return 0;
}


const char *omni_req_header(omni_req_t *r, const char *name)
{
    const omni_wire_request_t *w = &r->in->wire;
    int i;

    for (i = 0; i < w->nheaders; i++) {
        if (w->headers[i].name_len != 0
            && strcasecmp(w->headers[i].name, name) == 0) {
            return w->headers[i].value;
        }
    }
    return NULL;
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


void omni_http_on_accept(void (*fn)(void *), void *arg)
{
    omni_http.on_accept = fn;
    omni_http.on_accept_arg = arg;
}


void omni_http_accepted(void)
{
    if (omni_http.on_accept != NULL) {
        omni_http.on_accept(omni_http.on_accept_arg);
    }
}


/* A unix-socket peer that is not root, us or the gateway's user gets its
 * connection closed unanswered, at accept, before a byte of it is read. */
int omni_http_peer_check(long uid, long pid)
{
    if (!omni_http.unix_socket || omni_http_peer_allowed(uid)) {
        return 0;
    }
    omni_metrics_gateway_refused();
    omni_http_log_refused(uid, pid);
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
    omni_wire_request_t *w = &r->in->wire;
    int i, trusted = 1;

    if (omni_http.nsecrets > 0) {
        trusted = omni_http_secret_matches(
            omni_req_header(r, OMNI_HTTP_SECRET_HEADER));
    }
    for (i = 0; i < w->nheaders; i++) {
        omni_wire_header_t *h = &w->headers[i];

        if (h->name_len != 0
            && (strcasecmp(h->name, OMNI_HTTP_SECRET_HEADER) == 0
                || (!trusted && omni_http_identity_header(h->name)))) {
            h->name_len = 0; /* every copy */
        }
    }
    if (!trusted) {
        omni_metrics_gateway_untrusted();
    }
    return trusted;
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


void omni_http_answer_in(void)
{
    omni_http.inflight++;
}


/* A request stops counting as in flight once its answer is written out
 * (or its client is gone): a draining process must not exit before. */
void omni_http_answer_out(void)
{
    if (--omni_http.inflight == 0 && omni_http.drained) {
        void (*cb)(void *) = omni_http.drained;

        omni_http.drained = NULL;
        cb(omni_http.drained_arg);
    }
}


void omni_http_client_left(void *arg)
{
    omni_req_t *r = arg;
    void (*cb)(void *) = r->on_close;

    r->client_gone = 1;
    r->on_close = NULL;
    if (cb != NULL) {
        cb(r->on_close_arg);
    }
}


int omni_req_on_close(omni_req_t *r, void (*cb)(void *arg), void *arg)
{
    if (r->client_gone) {
        r->on_close = NULL;
        return cb == NULL ? 0 : -1;
    }
    r->on_close = cb;
    r->on_close_arg = arg;
    return 0;
}


const char *omni_req_body(omni_req_t *r, size_t *len)
{
    *len = r->in->body_len;
    return r->in->body;
}


int omni_req_client_gone(omni_req_t *r)
{
    return r->client_gone || omni_conn_gone(r->conn, 1);
}


/* Whether the connection serves another request after this answer. */
static int omni_http_keep_alive(omni_req_t *r)
{
    return !omni_http.draining && omni_conn_keep_alive(r->conn);
}


/* The status line and the headers every answer carries, into the head
 * buffer; the caller adds its framing and the blank line. */
static void omni_http_head(omni_req_t *r, int status, const char *content_type)
{
    struct evbuffer *h = omni_http.head;

    omni_conn_head(h, r->conn, status);
    evbuffer_add_printf(h,
        "Content-Type: %s\r\nX-Request-Id: %s\r\nCache-Control: no-store\r\n",
        content_type, r->request_id);
    if (r->out_headers != NULL) {
        evbuffer_add(h, r->out_headers, r->out_headers_len);
    }
    if (!omni_http_keep_alive(r)) {
        /* draining: nginx moves to another process for its next request */
        evbuffer_add(h, "Connection: close\r\n", 19);
    } else if (omni_conn_minor(r->conn) == 0) {
        evbuffer_add(h, "Connection: keep-alive\r\n", 24);
    }
}


void omni_respond_start(omni_req_t *r, int status, const char *content_type)
{
    r->stream_status = status;
    r->chunked = omni_conn_minor(r->conn) == 1;
    omni_http_head(r, status, content_type);
    /* HTTP/1.0 has no chunks: the close ends the body */
    evbuffer_add_printf(omni_http.head, "X-Accel-Buffering: no\r\n%s\r\n",
        r->chunked ? "Transfer-Encoding: chunked\r\n" : "");
    if (!r->chunked) {
        r->close_after = 1;
    }
    omni_conn_send(r->conn, omni_http.head);
}


void omni_respond_chunk(omni_req_t *r, struct evbuffer *body)
{
    size_t n = evbuffer_get_length(body);
    char size[24];
    int len;

    if (n == 0 || r->head_only) {
        evbuffer_drain(body, n);
        return;
    }
    /* a stream's chunk (a chat delta) goes out now */
    if (r->chunked) {
        len = snprintf(size, sizeof(size), "%zx\r\n", n);
        evbuffer_prepend(body, size, (size_t)len);
        evbuffer_add(body, "\r\n", 2);
    }
    omni_conn_send(r->conn, body);
    evbuffer_drain(body, evbuffer_get_length(body));
}


void omni_respond_end(omni_req_t *r)
{
    omni_conn_t *c = r->conn;
    int keep = omni_http_keep_alive(r) && !r->close_after;

    r->on_close = NULL;
    if (r->chunked && !r->head_only) {
        evbuffer_add(omni_http.head, "0\r\n\r\n", 5);
        omni_conn_send(c, omni_http.head);
    }
    omni_http_finish(r, r->stream_status);
    omni_conn_finish(c, keep);
}


void omni_respond(
    omni_req_t *r, int status, const char *content_type, struct evbuffer *body)
{
    omni_conn_t *c = r->conn;
    size_t n = body != NULL ? evbuffer_get_length(body) : 0;
    int keep = omni_http_keep_alive(r);

    r->on_close = NULL;
    omni_http_head(r, status, content_type);
    if (status == 204 || status == 304) {
        /* RFC 9110 8.6: no length and no body */
        evbuffer_add(omni_http.head, "\r\n", 2);
    } else {
        evbuffer_add_printf(omni_http.head, "Content-Length: %zu\r\n\r\n", n);
    }
    if (r->head_only || status == 204 || status == 304) {
        /* HEAD: the length a GET would have had, no body */
        if (body != NULL) {
            evbuffer_drain(body, n);
        }
    } else if (n > 0) {
        evbuffer_add_buffer(omni_http.head, body);
    }
    omni_conn_send(c, omni_http.head);
    omni_http_finish(r, status);
    omni_conn_finish(c, keep);
}


void omni_respond_header(omni_req_t *r, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char *p;

    /* a value from elsewhere (an upstream's Retry-After) must not split
     * the head */
    if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL) {
        omni_log(OMNI_LOG_WARN, "answer header dropped: CR or LF in it",
            "\"request_id\":\"%s\"", r->request_id);
        return;
    }
    p = omni_arena_alloc(&r->arena, r->out_headers_len + nl + vl + 5);
    if (p == NULL) {
        return;
    }
    if (r->out_headers_len > 0) {
        memcpy(p, r->out_headers, r->out_headers_len);
    }
    memcpy(p + r->out_headers_len, name, nl);
    memcpy(p + r->out_headers_len + nl, ": ", 2);
    memcpy(p + r->out_headers_len + nl + 2, value, vl);
    memcpy(p + r->out_headers_len + nl + 2 + vl, "\r\n", 2);
    r->out_headers = p;
    r->out_headers_len += nl + vl + 4;
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
    size_t len = r->in->body_len;
    char err[256];

    if (!omni_http_is_json(omni_req_header(r, "Content-Type"))) {
        omni_respond_error(r, 415, "unsupported_media_type",
            "request body must be application/json");
        return -1;
    }

    r->json = omni_json_parse(
        &r->arena, r->in->body, len, &omni_http.limits, err, sizeof(err));
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


void omni_http_dispatch(omni_conn_t *c, omni_conn_request_t *in)
{
    omni_req_t *r;
    const char *problem;
    char *query;
    omni_route_match_t m;
    int i, trusted;

    r = omni_http_req_new();
    if (r == NULL) {
        /* out of memory: the connection ends without an answer */
        omni_conn_finish(c, 0);
        return;
    }
    r->conn = c;
    r->in = in;
    omni_conn_set_owner(c, r);
    r->start_ns = omni_http_now_ns();
    r->route = -1;
    r->method = in->wire.method;
    r->head_only = strcmp(r->method, "HEAD") == 0;
    /* nginx picks the location from the normalised path but forwards the
     * raw one: a path the two could read differently is not served */
    problem = omni_router_path_problem(in->wire.target);
    query = strchr(in->wire.target, '?');
    if (query != NULL) {
        *query++ = '\0';
    }
    r->path = in->wire.target;
    r->query = query;
    omni_http_request_id(r);
    trusted = omni_http_trusted(r);

    if (!omni_http_method_known(r->method)) {
        omni_respond_error(r, 501, "not_implemented",
            "method %s is not implemented", r->method);
        return;
    }
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
        omni_respond_header(r, "Allow", m.allow);
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


int omni_http_attach(
    const omni_route_t *routes, int nroutes, const omni_config_t *cfg)
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

    omni_http.head = evbuffer_new();
    return omni_http.head != NULL ? 0 : -1;
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
