/* conn.h: the worker's HTTP/1.1 connections: accept, read, frame requests
 * (lib/httpwire.h), write answers, keep alive, close. One request at a
 * time per connection; pipelined ones wait their turn in its buffer. */
#ifndef OMNI_CONN_H
#define OMNI_CONN_H

#include <stddef.h>
#include <sys/time.h>

#include "lib/httpwire.h"

struct event_base;
struct evbuffer;

typedef struct omni_conn omni_conn_t;

/* The request a connection is answering: what http.c reads of it. The
 * target, header names and values are NUL-terminated in place; a header
 * whose name_len is 0 has been removed. */
typedef struct omni_conn_request_t {
    omni_wire_request_t wire;
    char *body; /* NUL-terminated; the decoded chunked body too */
    size_t body_len;
} omni_conn_request_t;

typedef struct {
    int fd;              /* a listening socket, non-blocking */
    struct timeval idle; /* a connection quiet this long is closed; a
                            write that stalls this long too */
    size_t max_body;     /* larger bodies are answered 413 */
    int check_peer;      /* a unix socket: the peer's uid is checked */
} omni_conn_listen_t;

/* Starts accepting on l->fd; 0, or -1. */
int omni_conn_listen(struct event_base *base, const omni_conn_listen_t *l);

/* Stops accepting (the fd is closed); open connections go on. */
void omni_conn_unlisten(void);

/* Closes every connection (at exit, after the clients whose callbacks
 * may still answer). */
void omni_conn_close_all(void);

/* The listener (for core/balance.c's pacing), or NULL. */
struct evconnlistener *omni_conn_listener(void);

/* --- what conn.c calls in http.c ---------------------------------------- */

/* Called for every connection accepted, in libevent's accept loop. */
void omni_http_accepted(void);

/* A unix-socket peer's uid and pid: 0 when it may ask, -1 to close it. */
int omni_http_peer_check(long uid, long pid);

/* A whole request on c: http.c answers it now or later through
 * omni_conn_send and omni_conn_finish. */
void omni_http_dispatch(omni_conn_t *c, omni_conn_request_t *req);

/* The client of the request being answered on c is gone (its peer closed,
 * or a write failed): arg is what omni_conn_set_owner gave. */
void omni_http_client_left(void *arg);

/* A request is taken (answer_in) and its answer wholly written or its
 * client gone (answer_out): what counts as in flight. */
void omni_http_answer_in(void);
void omni_http_answer_out(void);

/* --- what http.c calls -----------------------------------------------------
 */

/* arg is told (omni_http_client_left) when the client leaves mid-answer. */
void omni_conn_set_owner(omni_conn_t *c, void *arg);

/* HTTP/1.<minor> of the request, and whether the connection may serve
 * another request after this one. */
int omni_conn_minor(const omni_conn_t *c);
int omni_conn_keep_alive(const omni_conn_t *c);

/* Appends data (drained) to the connection's output and writes what the
 * socket takes now; nothing when the client is gone. */
void omni_conn_send(omni_conn_t *c, struct evbuffer *data);

/* The request's answer is complete: once it is written the connection
 * reads the next request, or closes when keep_alive is 0. c must not be
 * used after. */
void omni_conn_finish(omni_conn_t *c, int keep_alive);

/* 1 when the client has gone; with look, a peek at the socket decides. */
int omni_conn_gone(omni_conn_t *c, int look);

/* The status line in the request's version and the Date header. */
void omni_conn_head(struct evbuffer *b, const omni_conn_t *c, int status);

#endif
