/* outbound.h: HTTP client for MCP servers and LLM providers: libcurl's
 * multi interface driven by the process's libevent loop (no thread of
 * ours, no blocking call; names resolve on curl's resolver threads).
 *
 * One omni_outbound_t per process. Connections are kept and reused per
 * host; HTTP/2 is negotiated over TLS (ALPN) and multiplexed; TLS peers are
 * always verified (there is no switch to turn that off); proxies come from
 * the standard environment variables (http_proxy, https_proxy, no_proxy;
 * libcurl ignores upper-case HTTP_PROXY on purpose). Only http:// and
 * https:// URLs are accepted; redirects are not followed.
 *
 * Every request ends with exactly one on_done, always called from the loop
 * (never inside omni_out_request, omni_out_resume or omni_out_cancel),
 * unless it is cancelled first: then no callback at all. */
#ifndef OMNI_OUTBOUND_H
#define OMNI_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

#include "lib/hist.h"

struct event_base;

typedef enum {
    OMNI_OUT_OK = 0,
    OMNI_OUT_CONNECT,    /* no request sent: resolve, TCP or TLS handshake
                            failed or missed the connect deadline */
    OMNI_OUT_TLS,        /* TLS failed: unknown CA, wrong name, handshake */
    OMNI_OUT_TIMEOUT,    /* the request's deadline or idle time passed */
    OMNI_OUT_TOO_LARGE,  /* the response body is over max_bytes */
    OMNI_OUT_RESET,      /* the connection broke before the response ended */
    OMNI_OUT_CANCELLED,  /* counted only: cancelled requests get no on_done */
    OMNI_OUT_OVERLOADED, /* too many requests in flight: answer 503 */
    OMNI_OUT_PROTOCOL,   /* the peer spoke something that is not HTTP */
    OMNI_OUT_INTERNAL    /* out of memory, a libcurl failure of ours */
} omni_out_error_t;

#define OMNI_OUT_NERRORS 10

typedef struct {
    const char *ca_file;     /* PEM file of trusted CAs; NULL: the system's */
    int max_inflight;        /* requests in flight per process; 0: 256 */
    int max_per_host;        /* requests in flight per host; 0: 64 */
    int max_idle;            /* connections kept open; 0: 64 */
    long connect_timeout_ms; /* default connect deadline; 0: 5000 */
    long timeout_ms;         /* default request deadline; 0: 30000 */
    size_t max_bytes;        /* default response body cap; 0: 8 MiB */
} omni_outbound_config_t;

typedef struct omni_outbound_s omni_outbound_t;
typedef struct omni_out_req_s omni_out_req_t;

typedef struct {
    omni_out_error_t error;
    const char *detail; /* what failed, for logs ("" when OK); never a URL */
    long status;        /* final HTTP status, 0 when none arrived */
    int http_version;   /* 1 or 2; 0 when no response arrived */
    uint64_t bytes;     /* body bytes delivered to on_data */
    uint64_t latency_us;
} omni_out_result_t;

/* The final response's head has arrived (1xx are skipped). Headers can be
 * read with omni_out_header() from here until on_done. Any HTTP status is
 * a success for this client: the caller judges 4xx/5xx. */
typedef void (*omni_out_headers_pt)(void *arg, omni_out_req_t *q, long status);

/* A piece of the body, in order, as it arrives (len > 0; buf is only valid
 * during the call). Return 0 for more, 1 to pause: no more on_data until
 * omni_out_resume() (the transfer stops reading; the peer feels TCP
 * back-pressure). on_done may still come while paused when the body had
 * no more bytes. */
typedef int (*omni_out_data_pt)(
    void *arg, omni_out_req_t *q, const char *buf, size_t len);

/* The end. res is valid during the call only; q is freed when it returns
 * (calling omni_out_cancel(q) from inside on_done is a harmless no-op). */
typedef void (*omni_out_done_pt)(void *arg, const omni_out_result_t *res);

typedef struct {
    const char *method;         /* NULL: GET, or POST when there is a body */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* NULL-terminated "Name: value", or NULL */
    const char *body;           /* copied; NULL when body_len is 0 */
    size_t body_len;
    long timeout_ms;         /* whole request; 0: the config's */
    long connect_timeout_ms; /* 0: the config's */
    long idle_timeout_ms;    /* no byte for this long fails (rounded up to
                                seconds; paused time excluded); 0: none */
    size_t max_bytes;        /* 0: the config's */
    /* 0 (tools/call, completions): sent at most once. libcurl silently
     * resends a request whose reused connection died before any response
     * byte; for these that second attempt is refused before it is sent
     * (CURLOPT_PREREQFUNCTION), and the request fails with
     * OMNI_OUT_RESET instead of repeating the call. */
    int idempotent;
    omni_out_headers_pt on_headers; /* may be NULL */
    omni_out_data_pt on_data;       /* may be NULL: the body is dropped */
    omni_out_done_pt on_done;       /* required */
} omni_out_spec_t;

/* Per upstream ("scheme://host:port") counters, for the metrics code. */
typedef struct {
    char host[128]; /* "other" for hosts past the table's 64 entries */
    uint64_t requests;
    uint64_t errors[OMNI_OUT_NERRORS]; /* by outcome; [OMNI_OUT_OK] too */
    uint64_t latency[OMNI_HIST_BUCKETS];
    int inflight;
} omni_out_host_stats_t;

/* Creates the client on base. cfg may be NULL (all defaults); its strings
 * are copied. Returns NULL when libcurl cannot start or memory runs out.
 * Free with omni_outbound_destroy(). */
omni_outbound_t *omni_outbound_create(
    struct event_base *base, const omni_outbound_config_t *cfg);

/* Starts a request; arg is passed to its callbacks. Returns the request, or
 * NULL (no callback follows) when the spec is unusable: no url or on_done,
 * a URL libcurl cannot parse, a scheme other than http/https, or out of
 * memory. Over the in-flight caps it still returns a request, whose on_done
 * then reports OMNI_OUT_OVERLOADED from the loop. The request belongs to
 * the client: the caller drops its pointer at on_done or cancel. */
omni_out_req_t *omni_out_request(
    omni_outbound_t *o, const omni_out_spec_t *spec, void *arg);

/* The value of response header name (case-insensitive; the last one when
 * repeated), or NULL. Valid until the next call for q or on_done. */
const char *omni_out_header(omni_out_req_t *q, const char *name);

/* Lifts a pause asked for by on_data; on_data resumes from the loop. A
 * no-op when q is not paused. */
void omni_out_resume(omni_out_req_t *q);

/* Abandons q: no callback of q runs after this returns, q is freed, and
 * its connection is closed (an HTTP/2 stream is reset). Safe from inside
 * any callback, of q or of another request. */
void omni_out_cancel(omni_out_req_t *q);

/* The caller has what it needs of q's response (say the JSON-RPC answer
 * on an event stream the server is about to end): no callback of q runs
 * after this returns and the caller drops its pointer, but the client
 * reads and discards the rest of the body so the connection is kept for
 * the next request; when the rest does not end within 200 ms or 64 KiB
 * the connection is closed as omni_out_cancel() would. q no longer counts
 * as in flight. Safe from inside any callback. */
void omni_out_release(omni_out_req_t *q);

/* Requests in flight (including paused ones). */
int omni_outbound_inflight(const omni_outbound_t *o);

/* Sets *hosts to the per-host counters and returns how many there are.
 * The array stays valid (entries are only added) until destroy. */
int omni_outbound_stats(
    const omni_outbound_t *o, const omni_out_host_stats_t **hosts);

/* "ok", "connect", "tls", "timeout", "too_large", "reset", "cancelled",
 * "overloaded", "protocol", "internal". */
const char *omni_out_error_name(omni_out_error_t e);

/* Cancels every request (no callbacks), closes the connections, frees o.
 * Not from inside a callback. NULL is a no-op. */
void omni_outbound_destroy(omni_outbound_t *o);

#endif
