/* outbound.c: libcurl multi on the libevent loop (see io/outbound.h).
 *
 * A request's states:
 *
 *   omni_out_request ──over a cap──> REJECTED ──next turn──> on_done
 *        │  (inside a libcurl callback: QUEUED ──next turn──┐)
 *        v                                                  v
 *     RUNNING <──────── resume, next turn ── RESUMING <── PAUSED
 *        │    on_data returned 1 ──────────────────────────^
 *        v
 *      DONE: on_done, then freed
 *
 * libcurl forbids removing a handle from inside its own callbacks, so a
 * cancel issued there only marks the request (its callbacks then abort the
 * transfer) and puts it on the doomed list, emptied as soon as libcurl
 * returns. Calls into libcurl that can run our callbacks are counted in
 * o->in_curl for that reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/log.h"
#include "io/outbound.h"

#define OUT_MAX_HOSTS 64
/* a released response's rest: at most this much, this soon, else its
 * connection is closed instead of kept */
#define OUT_DRAIN_BYTES (64 * 1024)
#define OUT_DRAIN_MS 200
#define OUT_SPARE 32 /* finished easy handles kept for the next requests */

typedef enum {
    OUT_REJECTED,
    OUT_QUEUED,
    OUT_RUNNING,
    OUT_PAUSED,
    OUT_RESUMING,
    OUT_DONE
} out_state_t;

typedef struct out_sock_s out_sock_t;

struct out_sock_s {
    struct event ev;
    short flags; /* as added */
    out_sock_t *prev, *next;
};

struct omni_outbound_s {
    struct event_base *base;
    CURLM *multi;
    struct event timer;
    struct event reap;
    omni_outbound_config_t cfg;
    char *ca_file;
    int in_curl;
    int inflight;
    omni_out_req_t *all;    /* every live request, for destroy */
    omni_out_req_t *doomed; /* cancelled inside a libcurl callback */
    out_sock_t *socks;
    int nhosts;
    omni_out_host_stats_t hosts[OUT_MAX_HOSTS];
    CURL *spare[OUT_SPARE];
    int nspare;
};

struct omni_out_req_s {
    omni_outbound_t *o;
    CURL *easy;
    struct curl_slist *headers;
    omni_out_host_stats_t *host;
    omni_out_spec_t spec;
    void *arg;
    out_state_t state;
    omni_out_error_t why; /* set when we refuse or abort it ourselves */
    int cancelled;
    int added;    /* in the multi handle */
    int counted;  /* holds an in-flight slot */
    int headed;   /* on_headers delivered */
    int released; /* omni_out_release(): the rest is read and dropped */
    uint64_t drain_from;
    char *body;
    int attempts;       /* libcurl's tries at sending it */
    int resend_refused; /* a second try refused: not idempotent */
    size_t max_bytes;
    uint64_t bytes;
    uint64_t start_us;
    struct event ev; /* next-turn work: REJECTED, QUEUED, RESUMING */
    omni_out_req_t *prev, *next, *doomed_next;
    char detail[CURL_ERROR_SIZE];
};

static int out_curl_users;

static const char *const out_error_names[OMNI_OUT_NERRORS] = {"ok", "connect",
    "tls", "timeout", "too_large", "reset", "cancelled", "overloaded",
    "protocol", "internal"};


const char *omni_out_error_name(omni_out_error_t e)
{
    if ((unsigned)e >= OMNI_OUT_NERRORS)
        return "internal";
    return out_error_names[e];
}

static uint64_t out_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static omni_out_host_stats_t *out_host(omni_outbound_t *o, const char *key)
{
    int i;

    for (i = 0; i < o->nhosts; i++) {
        if (strcmp(o->hosts[i].host, key) == 0)
            return &o->hosts[i];
    }
    if (o->nhosts == OUT_MAX_HOSTS - 1) {
        /* the last slot takes every host past the table */
        snprintf(o->hosts[o->nhosts].host, sizeof(o->hosts[0].host), "other");
        o->nhosts++;
    }
    if (o->nhosts == OUT_MAX_HOSTS)
        return &o->hosts[OUT_MAX_HOSTS - 1];
    snprintf(o->hosts[o->nhosts].host, sizeof(o->hosts[0].host), "%s", key);
    return &o->hosts[o->nhosts++];
}

static omni_out_error_t out_map(CURLcode code, int sent)
{
    switch (code) {
    case CURLE_OK:
        return OMNI_OUT_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return OMNI_OUT_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return sent ? OMNI_OUT_TIMEOUT : OMNI_OUT_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return OMNI_OUT_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return OMNI_OUT_TOO_LARGE;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2_STREAM:
    case CURLE_SEND_FAIL_REWIND:
        return OMNI_OUT_RESET;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_RANGE_ERROR:
    case CURLE_TOO_MANY_REDIRECTS:
        return OMNI_OUT_PROTOCOL;
    default:
        return OMNI_OUT_INTERNAL;
    }
}

/* Takes q out of libcurl and the client's lists and returns its in-flight
 * slot. Must not run inside a libcurl callback. */
static void out_detach(omni_out_req_t *q)
{
    omni_outbound_t *o = q->o;

    if (q->added) {
        curl_multi_remove_handle(o->multi, q->easy);
        q->added = 0;
    }
    if (q->counted) {
        o->inflight--;
        q->host->inflight--;
        q->counted = 0;
    }
    event_del(&q->ev);
    if (q->prev)
        q->prev->next = q->next;
    else
        o->all = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

static void out_free(omni_out_req_t *q)
{
    omni_outbound_t *o = q->o;

    /* a reset handle is as new but for its allocations */
    if (q->easy && o->nspare < OUT_SPARE) {
        curl_easy_reset(q->easy);
        o->spare[o->nspare++] = q->easy;
    } else if (q->easy) {
        curl_easy_cleanup(q->easy);
    }
    curl_slist_free_all(q->headers);
    free(q->body);
    free(q);
}

static void out_count(omni_out_req_t *q, omni_out_error_t err, uint64_t us)
{
    q->host->requests++;
    q->host->errors[err]++;
    if (err != OMNI_OUT_CANCELLED && err != OMNI_OUT_OVERLOADED)
        q->host->latency[omni_hist_bucket(us)]++;
}

static void out_drop(omni_out_req_t *q)
{
    out_count(q, OMNI_OUT_CANCELLED, out_now_us() - q->start_us);
    out_detach(q);
    out_free(q);
}

/* The request's end: counts it, logs a failure, calls on_done unless it
 * was cancelled, frees it. */
/* Where a request's time went, from libcurl's clocks (µs since it was
 * added): connected and about to send, the first response byte, the end.
 * The debug line "outbound timings". */
static void out_log_timings(omni_out_req_t *q, const omni_out_result_t *res)
{
    curl_off_t pre = 0, first = 0, total = 0;

    curl_easy_getinfo(q->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
    curl_easy_getinfo(q->easy, CURLINFO_STARTTRANSFER_TIME_T, &first);
    curl_easy_getinfo(q->easy, CURLINFO_TOTAL_TIME_T, &total);
    omni_log(OMNI_LOG_DEBUG, "outbound timings",
        "\"pretransfer_us\":%lld,\"first_byte_us\":%lld,\"total_us\":%lld,"
        "\"done_us\":%llu",
        (long long)pre, (long long)first, (long long)total,
        (unsigned long long)res->latency_us);
}

/* The time the request was given in all (its own, or the client's). */
static long out_timeout_ms(const omni_out_req_t *q)
{
    return q->spec.timeout_ms > 0 ? q->spec.timeout_ms : q->o->cfg.timeout_ms;
}


static void out_finish(omni_out_req_t *q, CURLcode code)
{
    omni_out_result_t res;
    curl_off_t pretransfer = 0;
    long version = 0;
    char host[160], detail[2 * CURL_ERROR_SIZE];

    if (q->cancelled) {
        out_drop(q);
        return;
    }
    memset(&res, 0, sizeof(res));
    res.latency_us = out_now_us() - q->start_us;
    res.bytes = q->bytes;
    if (q->easy) {
        curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &res.status);
        curl_easy_getinfo(q->easy, CURLINFO_HTTP_VERSION, &version);
        curl_easy_getinfo(q->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    }
    res.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : version ? 1 : 0;
    res.error = q->why != OMNI_OUT_OK ? q->why : out_map(code, pretransfer > 0);
    /* a connect cut short by the request's whole deadline, not by its
     * connect limit, is that deadline's timeout: the host may be fine,
     * the caller had no time left (one that waited 992 ms of 1000 for
     * another's MCP initialize connects with 8 ms) */
    if (res.error == OMNI_OUT_CONNECT && code == CURLE_OPERATION_TIMEDOUT
        && res.latency_us >= (uint64_t)out_timeout_ms(q) * 1000)
        res.error = OMNI_OUT_TIMEOUT;
    if (res.error != OMNI_OUT_OK && q->detail[0] == '\0')
        snprintf(q->detail, sizeof(q->detail), "%s", curl_easy_strerror(code));
    if (q->resend_refused)
        snprintf(q->detail, sizeof(q->detail),
            "connection closed before any response; a non-idempotent "
            "request is not sent again");
    res.detail = res.error == OMNI_OUT_OK ? "" : q->detail;

    out_count(q, res.error, res.latency_us);
    out_detach(q);
    if (res.error != OMNI_OUT_OK && !q->released) {
        /* refusals are counted; a line each would flood the log when
         * overloaded, when it can least afford it */
        omni_log(
            res.error == OMNI_OUT_OVERLOADED ? OMNI_LOG_DEBUG : OMNI_LOG_WARN,
            "outbound request failed",
            "\"upstream\":\"%s\",\"error\":\"%s\",\"detail\":\"%s\","
            "\"curl\":%d,\"status\":%ld,\"ms\":%llu",
            omni_log_escape(host, sizeof(host), q->host->host),
            omni_out_error_name(res.error),
            omni_log_escape(detail, sizeof(detail), q->detail), (int)code,
            res.status, (unsigned long long)(res.latency_us / 1000));
    }
    if (q->easy && omni_log_enabled(OMNI_LOG_DEBUG))
        out_log_timings(q, &res);
    q->state = OUT_DONE;
    q->spec.on_done(q->arg, &res);
    out_free(q);
}

static void out_reap_doomed(omni_outbound_t *o)
{
    omni_out_req_t *q;

    while ((q = o->doomed) != NULL) {
        o->doomed = q->doomed_next;
        out_drop(q);
    }
}

/* After libcurl returns: drop what was cancelled inside it, then finish
 * what completed. */
static void out_after_curl(omni_outbound_t *o)
{
    CURLMsg *msg;
    omni_out_req_t *q;
    CURLcode code;
    int left;

    if (o->in_curl)
        return;
    out_reap_doomed(o);
    while ((msg = curl_multi_info_read(o->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        code = msg->data.result;
        q = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
        if (q != NULL)
            out_finish(q, code);
    }
}

static void out_socket_action(omni_outbound_t *o, curl_socket_t fd, int what)
{
    int running;

    o->in_curl++;
    curl_multi_socket_action(o->multi, fd, what, &running);
    o->in_curl--;
    out_after_curl(o);
}

static void out_on_socket(evutil_socket_t fd, short what, void *arg)
{
    int action = 0;

    if (what & EV_READ)
        action |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        action |= CURL_CSELECT_OUT;
    out_socket_action(arg, fd, action);
}

static void out_on_timer(evutil_socket_t fd, short what, void *arg)
{
    out_socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void out_on_reap(evutil_socket_t fd, short what, void *arg)
{
    out_after_curl(arg);
}

static int out_sock_cb(
    CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    omni_outbound_t *o = userp;
    out_sock_t *s = socketp;
    short flags = EV_PERSIST;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_del(&s->ev);
            if (s->prev)
                s->prev->next = s->next;
            else
                o->socks = s->next;
            if (s->next)
                s->next->prev = s->prev;
            free(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->next = o->socks;
        if (o->socks)
            o->socks->prev = s;
        o->socks = s;
        curl_multi_assign(o->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        flags |= EV_READ;
    if (what & CURL_POLL_OUT)
        flags |= EV_WRITE;
    if (s->flags == flags)
        return 0; /* unchanged: no epoll_ctl */
    if (s->flags != 0)
        event_del(&s->ev);
    s->flags = flags;
    event_assign(&s->ev, o->base, fd, flags, out_on_socket, o);
    event_add(&s->ev, NULL);
    return 0;
}

static int out_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    omni_outbound_t *o = userp;
    struct timeval tv;

    if (timeout_ms < 0) {
        evtimer_del(&o->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(&o->timer, &tv);
    return 0;
}

static void out_headers_once(omni_out_req_t *q)
{
    long status = 0;

    if (q->headed)
        return;
    q->headed = 1;
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
    if (q->spec.on_headers)
        q->spec.on_headers(q->arg, q, status);
}

static size_t out_header_cb(char *buf, size_t size, size_t n, void *arg)
{
    omni_out_req_t *q = arg;
    long status = 0;

    if (q->cancelled)
        return 0;
    /* the blank line that ends a head; 1xx heads are not the response */
    if (n > 0 && (buf[0] == '\r' || buf[0] == '\n') && !q->headed) {
        curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200)
            out_headers_once(q);
    }
    return q->cancelled ? 0 : size * n;
}

static size_t out_write_cb(char *buf, size_t size, size_t n, void *arg)
{
    omni_out_req_t *q = arg;
    size_t len = size * n;

    if (q->cancelled)
        return 0;
    if (q->state == OUT_PAUSED || q->state == OUT_RESUMING)
        return CURL_WRITEFUNC_PAUSE;
    if (len > q->max_bytes - q->bytes) {
        q->why = OMNI_OUT_TOO_LARGE;
        snprintf(q->detail, sizeof(q->detail),
            "response body over max_bytes (%zu)", q->max_bytes);
        return 0;
    }
    out_headers_once(q);
    if (q->cancelled)
        return 0;
    q->bytes += len;
    if (q->released) {
        if (q->bytes - q->drain_from > OUT_DRAIN_BYTES)
            omni_out_cancel(q);
        return q->cancelled ? 0 : len;
    }
    if (q->spec.on_data != NULL && q->spec.on_data(q->arg, q, buf, len) == 1
        && q->state == OUT_RUNNING)
        q->state = OUT_PAUSED;
    return q->cancelled ? 0 : len;
}

/* Before each attempt at sending q (CURLOPT_PREREQFUNCTION): a second one
 * is libcurl's silent resend after its reused connection died, refused
 * for a request that must reach the upstream at most once. */
static int out_prereq_cb(void *arg, char *primary_ip, char *local_ip,
    int primary_port, int local_port)
{
    omni_out_req_t *q = arg;

    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (q->cancelled)
        return CURL_PREREQFUNC_ABORT;
    if (q->attempts++ > 0 && !q->spec.idempotent) {
        q->why = OMNI_OUT_RESET;
        q->resend_refused = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static void out_drain_deadline(omni_out_req_t *q)
{
    struct timeval tv = {0, OUT_DRAIN_MS * 1000};

    event_add(&q->ev, &tv);
}

static void out_on_req_event(evutil_socket_t fd, short what, void *arg)
{
    omni_out_req_t *q = arg;
    omni_outbound_t *o = q->o;

    switch (q->state) {
    case OUT_REJECTED:
        out_finish(q, CURLE_OK);
        return;
    case OUT_QUEUED:
        if (curl_multi_add_handle(o->multi, q->easy) != CURLM_OK) {
            q->why = OMNI_OUT_INTERNAL;
            snprintf(q->detail, sizeof(q->detail), "curl_multi_add_handle");
            out_finish(q, CURLE_OK);
            return;
        }
        q->added = 1;
        q->state = OUT_RUNNING;
        return;
    case OUT_RESUMING:
        q->state = OUT_RUNNING;
        if (q->released)
            out_drain_deadline(q);
        o->in_curl++;
        curl_easy_pause(q->easy, CURLPAUSE_CONT);
        o->in_curl--;
        out_after_curl(o);
        return;
    default:
        /* a released response's deadline: its rest did not come */
        if (q->released)
            omni_out_cancel(q);
        return;
    }
}

/* Sets the easy handle's options; 0, or -1 when libcurl refuses one. */
static int out_setup(omni_out_req_t *q, const omni_out_spec_t *spec)
{
    omni_outbound_t *o = q->o;
    const char *method = spec->method;
    long timeout, connect_timeout, idle_s;
    CURLcode rc = CURLE_OK;
    struct curl_slist *l;
    size_t i;
    CURL *e = q->easy;

#define OUT_SET(opt, val)                                                      \
    do {                                                                       \
        if (rc == CURLE_OK)                                                    \
            rc = curl_easy_setopt(e, opt, val);                                \
    } while (0)

    timeout = spec->timeout_ms > 0 ? spec->timeout_ms : o->cfg.timeout_ms;
    connect_timeout = spec->connect_timeout_ms > 0 ? spec->connect_timeout_ms
                                                   : o->cfg.connect_timeout_ms;

    OUT_SET(CURLOPT_URL, spec->url);
    OUT_SET(CURLOPT_PRIVATE, (void *)q);
    OUT_SET(CURLOPT_ERRORBUFFER, q->detail);
    OUT_SET(CURLOPT_NOSIGNAL, 1L);
    OUT_SET(CURLOPT_PROTOCOLS_STR, "http,https");
    OUT_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    OUT_SET(CURLOPT_FOLLOWLOCATION, 0L);
    OUT_SET(CURLOPT_TIMEOUT_MS, timeout);
    OUT_SET(CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
    if (spec->idle_timeout_ms > 0) {
        idle_s = (spec->idle_timeout_ms + 999) / 1000;
        OUT_SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
        OUT_SET(CURLOPT_LOW_SPEED_TIME, idle_s);
    }
    if (q->max_bytes <= (size_t)INT64_MAX)
        OUT_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)q->max_bytes);
    OUT_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    OUT_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file != NULL) {
        OUT_SET(CURLOPT_CAINFO, o->ca_file);
        OUT_SET(CURLOPT_PROXY_CAINFO, o->ca_file);
    }
    OUT_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* over TLS, wait for ALPN and share an HTTP/2 connection rather than
     * open one per request; libcurl 7.88 wakes waiters of a plain HTTP/1.1
     * connection only when its transfer ends (a stream may never end) */
    if (strncasecmp(spec->url, "https:", 6) == 0)
        OUT_SET(CURLOPT_PIPEWAIT, 1L);
    OUT_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    OUT_SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    OUT_SET(CURLOPT_HEADERFUNCTION, out_header_cb);
    OUT_SET(CURLOPT_HEADERDATA, (void *)q);
    OUT_SET(CURLOPT_WRITEFUNCTION, out_write_cb);
    OUT_SET(CURLOPT_WRITEDATA, (void *)q);

    if (method == NULL)
        method = spec->body_len ? "POST" : "GET";
    if (spec->body_len || strcmp(method, "POST") == 0) {
        /* the body as POSTFIELDS: libcurl writes a body under 64 KiB in the
         * same send() as the request head, so the upstream reads one
         * segment and parses once (through a read callback the body went
         * in a second send(), and Node servers woke and parsed twice) */
        OUT_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body_len);
        OUT_SET(CURLOPT_POSTFIELDS, q->body != NULL ? q->body : "");
    } else if (strcmp(method, "HEAD") == 0) {
        OUT_SET(CURLOPT_NOBODY, 1L);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0
        && strcmp(method, "HEAD") != 0)
        OUT_SET(CURLOPT_CUSTOMREQUEST, method);
    /* libcurl silently sends a request again when its reused connection
     * died before any response byte; every attempt passes through here */
    OUT_SET(CURLOPT_PREREQFUNCTION, out_prereq_cb);
    OUT_SET(CURLOPT_PREREQDATA, (void *)q);
    /* a body-less one gains nothing from a reused connection worth the
     * failed call when it died: it takes a fresh one */
    if (!spec->idempotent && spec->body_len == 0)
        OUT_SET(CURLOPT_FRESH_CONNECT, 1L);

    /* no Expect: 100-continue round trip before the body */
    q->headers = curl_slist_append(NULL, "Expect:");
    if (q->headers == NULL)
        return -1;
    for (i = 0; spec->headers != NULL && spec->headers[i] != NULL; i++) {
        l = curl_slist_append(q->headers, spec->headers[i]);
        if (l == NULL)
            return -1;
        q->headers = l;
    }
    OUT_SET(CURLOPT_HTTPHEADER, q->headers);

#undef OUT_SET
    return rc == CURLE_OK ? 0 : -1;
}

/* "scheme://host:port" of url into key; 0, or -1 when url is not an
 * http(s) URL libcurl can parse. */
static int out_host_key(const char *url, char *key, size_t size)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;

    if (u == NULL)
        return -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto failed;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)
               != CURLUE_OK)
        goto failed;
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
        goto failed;
    snprintf(key, size, "%s://%s:%s", scheme, host, port);
    rc = 0;
failed:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

omni_out_req_t *omni_out_request(
    omni_outbound_t *o, const omni_out_spec_t *spec, void *arg)
{
    omni_out_req_t *q;
    char key[sizeof(o->hosts[0].host)];

    if (spec == NULL || spec->url == NULL || spec->on_done == NULL
        || (spec->body_len && spec->body == NULL))
        return NULL;
    if (out_host_key(spec->url, key, sizeof(key)) != 0)
        return NULL;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->o = o;
    q->spec = *spec;
    q->arg = arg;
    q->host = out_host(o, key);
    q->start_us = out_now_us();
    q->max_bytes = spec->max_bytes ? spec->max_bytes : o->cfg.max_bytes;
    event_assign(&q->ev, o->base, -1, 0, out_on_req_event, q);
    q->next = o->all;
    if (o->all)
        o->all->prev = q;
    o->all = q;

    if (o->inflight >= o->cfg.max_inflight
        || q->host->inflight >= o->cfg.max_per_host) {
        q->state = OUT_REJECTED;
        q->why = OMNI_OUT_OVERLOADED;
        snprintf(q->detail, sizeof(q->detail),
            o->inflight >= o->cfg.max_inflight
                ? "%d requests in flight in this process (max_inflight)"
                : "%d requests in flight to this host (max_per_host)",
            o->inflight >= o->cfg.max_inflight ? o->inflight
                                               : q->host->inflight);
        event_active(&q->ev, EV_TIMEOUT, 1);
        return q;
    }

    if (spec->body_len) {
        q->body = malloc(spec->body_len);
        if (q->body == NULL)
            goto failed;
        memcpy(q->body, spec->body, spec->body_len);
    }
    q->spec.body = q->body;
    q->spec.headers = NULL;
    q->spec.url = NULL;
    q->spec.method = NULL;
    q->easy = o->nspare > 0 ? o->spare[--o->nspare] : curl_easy_init();
    if (q->easy == NULL || out_setup(q, spec) != 0)
        goto failed;

    o->inflight++;
    q->host->inflight++;
    q->counted = 1;
    if (o->in_curl) {
        /* libcurl is running one of our callbacks: add on the next turn */
        q->state = OUT_QUEUED;
        event_active(&q->ev, EV_TIMEOUT, 1);
        return q;
    }
    if (curl_multi_add_handle(o->multi, q->easy) != CURLM_OK)
        goto failed;
    q->added = 1;
    q->state = OUT_RUNNING;
    return q;

failed:
    out_detach(q);
    out_free(q);
    return NULL;
}

const char *omni_out_header(omni_out_req_t *q, const char *name)
{
    struct curl_header *h = NULL;

    if (q->easy == NULL
        || curl_easy_header(q->easy, name, 0, CURLH_HEADER, -1, &h)
               != CURLHE_OK)
        return NULL;
    return h->value;
}

void omni_out_resume(omni_out_req_t *q)
{
    if (q == NULL || q->cancelled || q->state != OUT_PAUSED)
        return;
    q->state = OUT_RESUMING;
    event_active(&q->ev, EV_TIMEOUT, 1);
}

void omni_out_cancel(omni_out_req_t *q)
{
    omni_outbound_t *o;

    if (q == NULL || q->cancelled || q->state == OUT_DONE)
        return;
    o = q->o;
    q->cancelled = 1;
    if (o->in_curl && q->added) {
        /* inside a libcurl callback: the handle cannot leave yet */
        q->doomed_next = o->doomed;
        o->doomed = q;
        event_del(&q->ev);
        event_active(&o->reap, EV_TIMEOUT, 1);
        return;
    }
    out_drop(q);
}

static void out_released_done(void *arg, const omni_out_result_t *res)
{
}

void omni_out_release(omni_out_req_t *q)
{
    omni_outbound_t *o;

    if (q == NULL || q->cancelled || q->state == OUT_DONE || q->released)
        return;
    if (q->state != OUT_RUNNING && q->state != OUT_PAUSED) {
        omni_out_cancel(q);
        return;
    }
    o = q->o;
    q->released = 1;
    q->spec.on_headers = NULL;
    q->spec.on_data = NULL;
    q->spec.on_done = out_released_done;
    q->arg = NULL;
    q->drain_from = q->bytes;
    if (q->counted) {
        o->inflight--;
        q->host->inflight--;
        q->counted = 0;
    }
    if (q->state == OUT_PAUSED) {
        q->state = OUT_RESUMING;
        event_active(&q->ev, EV_TIMEOUT, 1);
        return;
    }
    out_drain_deadline(q);
}

int omni_outbound_inflight(const omni_outbound_t *o)
{
    return o->inflight;
}

int omni_outbound_stats(
    const omni_outbound_t *o, const omni_out_host_stats_t **hosts)
{
    *hosts = o->hosts;
    return o->nhosts;
}

omni_outbound_t *omni_outbound_create(
    struct event_base *base, const omni_outbound_config_t *cfg)
{
    omni_outbound_t *o;

    if (out_curl_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return NULL;
    out_curl_users++;

    o = calloc(1, sizeof(*o));
    if (o == NULL)
        goto failed;
    o->base = base;
    if (cfg != NULL)
        o->cfg = *cfg;
    if (o->cfg.max_inflight <= 0)
        o->cfg.max_inflight = 256;
    if (o->cfg.max_per_host <= 0)
        o->cfg.max_per_host = 64;
    if (o->cfg.max_idle <= 0)
        o->cfg.max_idle = 64;
    if (o->cfg.connect_timeout_ms <= 0)
        o->cfg.connect_timeout_ms = 5000;
    if (o->cfg.timeout_ms <= 0)
        o->cfg.timeout_ms = 30000;
    if (o->cfg.max_bytes == 0)
        o->cfg.max_bytes = 8 * 1024 * 1024;
    if (o->cfg.ca_file != NULL) {
        o->ca_file = strdup(o->cfg.ca_file);
        if (o->ca_file == NULL)
            goto failed;
    }
    o->cfg.ca_file = NULL;

    o->multi = curl_multi_init();
    if (o->multi == NULL)
        goto failed;
    evtimer_assign(&o->timer, base, out_on_timer, o);
    event_assign(&o->reap, base, -1, 0, out_on_reap, o);
    if (curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, out_sock_cb)
            != CURLM_OK
        || curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o) != CURLM_OK
        || curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, out_timer_cb)
               != CURLM_OK
        || curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o) != CURLM_OK
        || curl_multi_setopt(
               o->multi, CURLMOPT_MAXCONNECTS, (long)o->cfg.max_idle)
               != CURLM_OK
        || curl_multi_setopt(o->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
               (long)o->cfg.max_per_host)
               != CURLM_OK
        || curl_multi_setopt(o->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
               (long)o->cfg.max_inflight)
               != CURLM_OK
        || curl_multi_setopt(
               o->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX)
               != CURLM_OK)
        goto failed;
    return o;

failed:
    if (o != NULL) {
        if (o->multi != NULL)
            curl_multi_cleanup(o->multi);
        free(o->ca_file);
        free(o);
    }
    if (--out_curl_users == 0)
        curl_global_cleanup();
    return NULL;
}

void omni_outbound_destroy(omni_outbound_t *o)
{
    out_sock_t *s;

    if (o == NULL)
        return;
    o->doomed = NULL;
    while (o->all != NULL) {
        o->all->cancelled = 1;
        out_drop(o->all);
    }
    curl_multi_cleanup(o->multi);
    while (o->nspare > 0)
        curl_easy_cleanup(o->spare[--o->nspare]);
    while ((s = o->socks) != NULL) {
        o->socks = s->next;
        event_del(&s->ev);
        free(s);
    }
    evtimer_del(&o->timer);
    event_del(&o->reap);
    free(o->ca_file);
    free(o);
    if (--out_curl_users == 0)
        curl_global_cleanup();
}
