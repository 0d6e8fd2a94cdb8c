/* http.h: the request object handlers see, and how they answer. */
#ifndef OMNI_HTTP_H
#define OMNI_HTTP_H

#include <stdint.h>
#include "lib/arena.h"
#include "lib/json.h"
#include "lib/router.h"
#include "io/config.h"
#include "http/identity.h"
#include "http/service.h"

struct evbuffer;
struct omni_conn;
struct omni_conn_request_t;

struct omni_req {
    struct omni_conn *conn;         /* http/conn.h */
    struct omni_conn_request_t *in; /* the request as it came */
    omni_arena_t arena;             /* freed when the response is sent */
    int route;                      /* index into the route table, or -1 */
    const char *method;
    const char *path;                          /* raw, without the query */
    const char *query;                         /* raw, or NULL */
    const char *params[OMNI_ROUTE_MAX_PARAMS]; /* decoded */
    omni_json_t *json; /* body, with OMNI_ROUTE_JSON_BODY */
    char request_id[130];
    uint64_t start_ns;
    int state;                /* the handler's state machine */
    int pending;              /* outstanding I/O of the handler */
    void *data;               /* handler's own state (arena) */
    int db_status;            /* omni_db_status_t of the last */
    struct pg_result *db_res; /* query, valid during re-entry */
    int redis_failed;         /* commands of the last batch that
                                 failed or timed out */
    omni_identity_t identity; /* omni_req_identity(), once read */
    int identity_read;
    void (*on_close)(void *arg); /* omni_req_on_close() */
    void *on_close_arg;
    int client_gone;   /* its connection's client has left */
    int head_only;     /* a HEAD request: no body goes out */
    int stream_status; /* omni_respond_start */
    int chunked;       /* the stream goes out in chunks */
    int close_after;   /* HTTP/1.0 stream: the close ends it */
    char *out_headers; /* omni_respond_header's, "Name: v\r\n"... */
    size_t out_headers_len;
};

/* Serves every request of `http` with the route table, believing only the
 * gateway: on a unix socket (cfg->listen) a peer that is not root, this
 * process's user or cfg->gateway_uid has its connection closed; with
 * cfg->gateway_secret set, a request without it in X-Omni-Gateway-Secret
 * loses its X-User-* and X-Token-* headers and OMNI_ROUTE_IDENTITY routes
 * answer it 401. Returns 0, or -1 when the secret cannot be digested. */
int omni_http_attach(
    const omni_route_t *routes, int nroutes, const omni_config_t *cfg);

/* fn(arg) is called for every connection accepted, inside libevent's
 * accept loop (core/balance.c paces it there); one at most. */
void omni_http_on_accept(void (*fn)(void *), void *arg);

/* Calls the request's route handler again: how a handler is re-entered
 * when the I/O it waits for completes. */
void omni_http_resume(omni_req_t *r);

/* Adds fn to the observers told of every answered request (service.h),
 * in this process. 0, or -1 when OMNI_HTTP_MAX_OBSERVERS are registered. */
#define OMNI_HTTP_MAX_OBSERVERS 4
int omni_http_observe(omni_observer_pt fn);

/* Route parameter by position in the pattern. */
#define omni_req_param(r, i) ((r)->params[i])

/* Request header value, or NULL. */
const char *omni_req_header(omni_req_t *r, const char *name);

/* The request's body (NUL-terminated, *len bytes; "" when it has none). */
const char *omni_req_body(omni_req_t *r, size_t *len);

/* µs since r arrived: where a request's time goes (the debug lines
 * "LLM gateway first byte", "chat turn first byte", "mcp call timings"). */
uint64_t omni_req_since_us(const omni_req_t *r);

/* Decoded query-string argument (in the arena), or NULL when absent. */
const char *omni_req_arg(omni_req_t *r, const char *name);

/* Answers with a JSON body (drained from `body`, which the caller still
 * owns and frees). The request object is freed: do not touch r after. */
void omni_respond(
    omni_req_t *r, int status, const char *content_type, struct evbuffer *body);

/* Adds a header to r's answer, before omni_respond* (copied). */
void omni_respond_header(omni_req_t *r, const char *name, const char *value);

/* {"error":code,"message":...} with the given status; message is printf. */
void omni_respond_error(omni_req_t *r, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A streamed answer (SSE): the status line and headers (with
 * X-Accel-Buffering: no) go out now, the body in chunks, each drained from
 * body (which the caller still owns); end sends the last chunk and frees
 * r. Chunks for a client that is gone are dropped; end is still owed. */
void omni_respond_start(omni_req_t *r, int status, const char *content_type);
void omni_respond_chunk(omni_req_t *r, struct evbuffer *body);
void omni_respond_end(omni_req_t *r);

/* cb(arg) runs once, from the loop, when the client's connection closes
 * before the answer is complete (a watch on the socket sees the peer's EOF
 * even while nothing is written); r stays valid and must still be answered
 * (the answer goes nowhere). Cleared by the answer; NULL cb removes it.
 * Returns 0, or -1 when the client is already gone (cb will not run). */
int omni_req_on_close(omni_req_t *r, void (*cb)(void *arg), void *arg);

/* 1 when the client's connection is gone or its peer has closed it
 * (looked at now, nothing read). Cheap: one recv(MSG_PEEK). */
int omni_req_client_gone(omni_req_t *r);

/* 1 once omni_http_drain has been called: long-lived answers (event
 * streams) should end so the process can exit. */
int omni_http_draining(void);

/* Requests being served now by this process. */
int omni_http_inflight(void);

/* From now on every response says Connection: close; cb runs when the last
 * in-flight request is answered (at once if none). */
void omni_http_drain(void (*cb)(void *arg), void *arg);

#endif
