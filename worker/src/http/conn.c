/* conn.c: the worker's HTTP/1.1 connections, written for the one client
 * that matters, nginx's keepalive upstream connections: a connection's
 * read interest stays registered for its whole life (no epoll_ctl per
 * request), a read is one recv() into the connection's buffer (no
 * FIONREAD), an answer is one writev() as soon as it is complete, and the
 * request's head is parsed in place (no allocation per header). A client
 * that leaves mid-answer is seen at once: its EOF arrives on the same
 * read interest. */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>

#include "http/conn.h"

#define OMNI_CONN_BUF 4096       /* a connection's first buffer */
#define OMNI_CONN_READ_MIN 1024  /* less room than this: it grows */
#define OMNI_CONN_MAX_HEAD 32768 /* a request's head at most */
#define OMNI_CONN_KEEP_BUF 65536 /* larger buffers go after a request */
#define OMNI_CONN_AHEAD 65536    /* pipelined bytes read ahead at most */
#define OMNI_CONN_LINGER_S 2     /* reading after a closing answer */

enum {
    OMNI_CONN_HEAD,   /* waiting for a request's head */
    OMNI_CONN_BODY,   /* its body */
    OMNI_CONN_ANSWER, /* http.c answers it */
    OMNI_CONN_FLUSH,  /* the answer is complete, still being written */
    OMNI_CONN_LINGER  /* closing: our side shut, the client's read out */
};

struct omni_conn {
    int fd;
    int state;
    struct event rd; /* EV_READ | EV_PERSIST, the idle timeout */
    struct event wr; /* while the output waits for the socket */
    int reading;     /* rd is added */
    int writing;     /* wr is added */
    int gone;        /* the client closed or a write failed */
    int keep_alive;  /* after the answer being written */
    char *in;        /* the current request, then bytes read ahead */
    size_t in_len, in_cap;
    size_t head_len;       /* of the current request */
    const char *parsed_in; /* c->in when the head was parsed */
    size_t req_len;        /* head and body as received */
    int saved;             /* the byte the body's NUL covers, or -1 */
    omni_wire_chunked_t chunk;
    int continued; /* 100 Continue sent */
    struct evbuffer *out;
    void *owner; /* the answering request, told when the client goes */
    omni_conn_t *prev, *next; /* every open connection */
    omni_conn_request_t req;
};

static struct {
    struct event_base *base;
    struct evconnlistener *listener;
    omni_conn_listen_t cfg;
    const struct timeval *idle; /* a common timeout: O(1) to re-arm */
    omni_conn_t *open;
    time_t date_at;
    char date[64]; /* "Date: ...\r\n" of date_at */
} omni_conn;


static void omni_conn_on_read(evutil_socket_t fd, short what, void *arg);
static void omni_conn_on_write(evutil_socket_t fd, short what, void *arg);
static void omni_conn_process(omni_conn_t *c);


static const struct {
    int status;
    const char *reason;
} omni_conn_reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {422, "Unprocessable Content"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {499, "Client Closed Request"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
};


/* RFC 9110 15's reason phrase (clients ignore it; people read it). */
static const char *omni_conn_reason(int status)
{
    size_t i;

    for (i = 0; i < sizeof(omni_conn_reasons) / sizeof(omni_conn_reasons[0]);
         i++) {
        if (omni_conn_reasons[i].status == status) {
            return omni_conn_reasons[i].reason;
        }
    }
    return status < 400 ? "OK" : "Error";
}


void omni_conn_head(struct evbuffer *b, const omni_conn_t *c, int status)
{
    time_t now = time(NULL);
    struct tm tm;

    /* the Date of a second is formatted once */
    if (now != omni_conn.date_at) {
        gmtime_r(&now, &tm);
        strftime(omni_conn.date, sizeof(omni_conn.date),
            "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        omni_conn.date_at = now;
    }
    evbuffer_add_printf(b, "HTTP/1.%d %d %s\r\n%s", c->req.wire.minor, status,
        omni_conn_reason(status), omni_conn.date);
}


int omni_conn_minor(const omni_conn_t *c)
{
    return c->req.wire.minor;
}


int omni_conn_keep_alive(const omni_conn_t *c)
{
    return c->req.wire.keep_alive;
}


void omni_conn_set_owner(omni_conn_t *c, void *arg)
{
    c->owner = arg;
}


static void omni_conn_free(omni_conn_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        omni_conn.open = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    /* also takes a pending activation off the loop's queue */
    event_del(&c->rd);
    event_del(&c->wr);
    close(c->fd);
    evbuffer_free(c->out);
    free(c->in);
    free(c);
}


/* The client is gone: nothing more is read or written. Never frees: the
 * loop learns of it through the read event (omni_conn_lost). */
static void omni_conn_drop(omni_conn_t *c)
{
    c->gone = 1;
    if (c->writing) {
        event_del(&c->wr);
        c->writing = 0;
    }
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    event_active(&c->rd, EV_READ, 0);
}


/* From the loop: a connection whose client is gone ends, or, while its
 * request is being answered, tells the request and waits for
 * omni_conn_finish. */
static void omni_conn_lost(omni_conn_t *c)
{
    void *owner = c->owner;

    c->gone = 1;
    if (c->reading) {
        event_del(&c->rd);
        c->reading = 0;
    }
    if (c->writing) {
        event_del(&c->wr);
        c->writing = 0;
    }
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    if (c->state == OMNI_CONN_ANSWER) {
        c->owner = NULL;
        if (owner != NULL) {
            omni_http_client_left(owner);
        }
        return;
    }
    if (c->state == OMNI_CONN_FLUSH) {
        omni_http_answer_out();
    }
    omni_conn_free(c);
}


/* Our side is shut; the client's bytes are read and dropped until it
 * closes or OMNI_CONN_LINGER_S pass, so an answer sent before its request
 * was read whole is not lost to a reset. */
static void omni_conn_linger(omni_conn_t *c)
{
    struct timeval tv = {OMNI_CONN_LINGER_S, 0};

    c->state = OMNI_CONN_LINGER;
    event_del(&c->rd);
    c->reading = 0;
    if (shutdown(c->fd, SHUT_WR) != 0) {
        omni_conn_free(c);
        return;
    }
    event_assign(&c->rd, omni_conn.base, c->fd, EV_READ | EV_PERSIST,
        omni_conn_on_read, c);
    if (event_add(&c->rd, &tv) != 0) {
        omni_conn_free(c);
        return;
    }
    c->reading = 1;
}


/* The answer is complete and written: the connection reads the next
 * request (already in the buffer: on the loop's next turn, so pipelined
 * requests never nest), or closes. */
static void omni_conn_flushed(omni_conn_t *c)
{
    size_t rest;

    omni_http_answer_out();
    if (!c->keep_alive) {
        omni_conn_linger(c);
        return;
    }

    /* the request's bytes go; bytes read ahead stay for the next */
    if (c->saved >= 0) {
        c->in[c->req_len] = (char)c->saved;
        c->saved = -1;
    }
    rest = c->in_len - c->req_len;
    if (rest > 0) {
        memmove(c->in, c->in + c->req_len, rest);
    }
    c->in_len = rest;
    c->req_len = c->head_len = 0;
    c->continued = 0;
    memset(&c->chunk, 0, sizeof(c->chunk));
    c->state = OMNI_CONN_HEAD;
    if (c->in_cap > OMNI_CONN_KEEP_BUF && rest < OMNI_CONN_BUF) {
        char *small = malloc(OMNI_CONN_BUF);

        if (small != NULL) {
            memcpy(small, c->in, rest);
            free(c->in);
            c->in = small;
            c->in_cap = OMNI_CONN_BUF;
        }
    }
    if (!c->reading) {
        c->reading = event_add(&c->rd, omni_conn.idle) == 0;
    }
    if (rest > 0) {
        event_active(&c->rd, EV_READ, 0);
    }
}


/* Writes what the socket takes; the rest waits for it. -1 when the client
 * is gone (omni_conn_drop'ped). */
static int omni_conn_write(omni_conn_t *c)
{
    int n;

    while (evbuffer_get_length(c->out) > 0) {
        n = evbuffer_write(c->out, c->fd);
        if (n > 0) {
            continue;
        }
        if (n == 0) {
            break; /* nothing taken: wait for the socket */
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        }
        omni_conn_drop(c);
        return -1;
    }
    if (evbuffer_get_length(c->out) > 0) {
        if (!c->writing) {
            c->writing = event_add(&c->wr, &omni_conn.cfg.idle) == 0;
        }
    } else if (c->writing) {
        event_del(&c->wr);
        c->writing = 0;
    }
    return 0;
}


static void omni_conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    omni_conn_t *c = arg;

    c->writing = 0;
    if (what & EV_TIMEOUT) {
        omni_conn_lost(c); /* the client stopped reading */
        return;
    }
    if (omni_conn_write(c) == 0 && !c->writing && c->state == OMNI_CONN_FLUSH) {
        omni_conn_flushed(c);
    }
}


void omni_conn_send(omni_conn_t *c, struct evbuffer *data)
{
    if (c->gone) {
        evbuffer_drain(data, evbuffer_get_length(data));
        return;
    }
    evbuffer_add_buffer(c->out, data);
    if (!c->writing) {
        omni_conn_write(c);
    }
}


void omni_conn_finish(omni_conn_t *c, int keep_alive)
{
    c->owner = NULL;
    c->state = OMNI_CONN_FLUSH;
    if (c->gone) {
        omni_http_answer_out();
        omni_conn_free(c);
        return;
    }
    c->keep_alive = keep_alive;
    if (!c->writing) {
        omni_conn_flushed(c);
    }
}


int omni_conn_gone(omni_conn_t *c, int look)
{
    char b;
    ssize_t n;

    if (c->gone || !look) {
        return c->gone;
    }
    n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0
           || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
               && errno != EINTR);
}


/* An answer of the connection layer itself, to a request it cannot frame
 * or take: a JSON error, then the connection closes. */
static void omni_conn_refuse(
    omni_conn_t *c, int status, const char *code, const char *message)
{
    struct evbuffer *b = evbuffer_new();
    char body[256];
    int n;

    if (b == NULL) {
        omni_conn_free(c);
        return;
    }
    if (c->state == OMNI_CONN_HEAD && c->head_len == 0) {
        c->req.wire.minor = 1; /* a request line not understood */
    }
    n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}\n",
        code, message);
    omni_conn_head(b, c, status);
    evbuffer_add_printf(b,
        "Content-Type: application/json\r\nContent-Length: %d\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
        n, body);
    omni_http_answer_in();
    c->state = OMNI_CONN_FLUSH;
    c->keep_alive = 0;
    omni_conn_send(c, b);
    evbuffer_free(b);
    if (!c->gone && !c->writing) {
        omni_conn_flushed(c);
    }
}


static void omni_conn_too_large(omni_conn_t *c)
{
    omni_conn_refuse(c, 413, "payload_too_large",
        "the request body is larger than the worker takes "
        "(OMNI_MAX_BODY_BYTES)");
}


/* Room for want more bytes in c->in (and the NUL after them), the buffer
 * growing to limit at most. */
static int omni_conn_room(omni_conn_t *c, size_t want, size_t limit)
{
    size_t cap = c->in_cap;
    char *p;

    if (c->in_cap - c->in_len > want) {
        return 0;
    }
    while (cap - c->in_len <= want) {
        cap *= 2;
    }
    if (cap > limit) {
        cap = limit;
    }
    if (cap <= c->in_cap) {
        return -1;
    }
    p = realloc(c->in, cap);
    if (p == NULL) {
        return -1;
    }
    c->in = p;
    c->in_cap = cap;
    return 0;
}


/* NUL-terminates what http.c reads as C strings (the byte after each is
 * syntax already read) and hands the request over. */
static void omni_conn_dispatch(omni_conn_t *c)
{
    omni_wire_request_t *w = &c->req.wire;
    size_t end = c->head_len + c->req.body_len;
    int i;

    if (c->parsed_in != c->in) {
        /* the buffer grew for the body and moved: the head's fields point
         * into the old one; the same bytes parse the same */
        const char *why;

        omni_wire_parse_request(c->in, c->head_len, w, &why);
        c->parsed_in = c->in;
    }
    ((char *)w->method)[w->method_len] = '\0';
    ((char *)w->target)[w->target_len] = '\0';
    for (i = 0; i < w->nheaders; i++) {
        ((char *)w->headers[i].name)[w->headers[i].name_len] = '\0';
        ((char *)w->headers[i].value)[w->headers[i].value_len] = '\0';
    }
    /* the next request may begin right after the body: its first byte is
     * put back once this one is answered */
    c->saved = end < c->in_len ? (unsigned char)c->in[end] : -1;
    c->req.body = c->in + c->head_len;
    c->req.body[c->req.body_len] = '\0';
    c->state = OMNI_CONN_ANSWER;
    omni_http_answer_in();
    omni_http_dispatch(c, &c->req);
}


static const char *omni_conn_error_code(long status)
{
    switch (status) {
    case 431:
        return "headers_too_large";
    case 501:
        return "not_implemented";
    case 505:
        return "http_version_not_supported";
    default:
        return "bad_request";
    }
}


/* Frames the request at the start of the buffer. */
static void omni_conn_process(omni_conn_t *c)
{
    omni_wire_request_t *w = &c->req.wire;
    size_t limit = OMNI_CONN_MAX_HEAD + omni_conn.cfg.max_body + 1;
    const char *why = "malformed request";
    size_t cl;
    long n;

    if (c->state == OMNI_CONN_HEAD) {
        n = omni_wire_parse_request(c->in, c->in_len, w, &why);
        if (n == 0 && c->in_len < OMNI_CONN_MAX_HEAD) {
            return;
        }
        if (n == 0 || n > OMNI_CONN_MAX_HEAD) {
            omni_conn_refuse(c, 431, "headers_too_large",
                "the request's head is larger than 32 KiB");
            return;
        }
        if (n < 0) {
            omni_conn_refuse(c, (int)-n, omni_conn_error_code(-n), why);
            return;
        }
        c->head_len = (size_t)n;
        c->parsed_in = c->in;
        c->req.body_len = 0;
        if (w->content_length > (int64_t)omni_conn.cfg.max_body) {
            omni_conn_too_large(c);
            return;
        }
        c->state = OMNI_CONN_BODY;
    }
    if (c->state != OMNI_CONN_BODY) {
        return;
    }

    if (w->chunked) {
        size_t at = c->head_len + c->req.body_len, rest;

        /* the coding not yet read starts where the decoded data ends:
         * what a chunk's framing took is given back to the buffer, so a
         * body of small chunks needs no more room than its data */
        n = omni_wire_chunked(&c->chunk, c->in + at, c->in_len - at,
            c->in + c->head_len, &c->req.body_len, &why);
        if (n < 0) {
            omni_conn_refuse(c, 400, "bad_request", why);
            return;
        }
        rest = c->in_len - at - (size_t)n;
        memmove(c->in + c->head_len + c->req.body_len, c->in + at + n, rest);
        c->in_len = c->head_len + c->req.body_len + rest;
        if (c->req.body_len > omni_conn.cfg.max_body) {
            omni_conn_too_large(c);
            return;
        }
        if (c->chunk.state == OMNI_WIRE_CHUNKED_DONE) {
            c->req_len = c->head_len + c->req.body_len;
            omni_conn_dispatch(c);
            return;
        }
    } else {
        cl = w->content_length > 0 ? (size_t)w->content_length : 0;
        if (c->in_len - c->head_len >= cl) {
            c->req.body_len = cl;
            c->req_len = c->head_len + cl;
            omni_conn_dispatch(c);
            return;
        }
        if (omni_conn_room(c, c->head_len + cl - c->in_len, limit) != 0) {
            omni_conn_refuse(c, 503, "unavailable", "out of memory");
            return;
        }
    }

    /* RFC 9110 10.1.1: the client waits for this before its body */
    if (w->expect_continue && !c->continued && c->in_len == c->head_len) {
        struct evbuffer *b = evbuffer_new();

        c->continued = 1;
        if (b != NULL) {
            evbuffer_add(b, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            omni_conn_send(c, b);
            evbuffer_free(b);
        }
    }
}


static void omni_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    omni_conn_t *c = arg;
    size_t limit = OMNI_CONN_MAX_HEAD + omni_conn.cfg.max_body + 1;
    char drop[4096];
    ssize_t n;

    if (c->gone) {
        omni_conn_lost(c);
        return;
    }
    if (c->state == OMNI_CONN_LINGER) {
        do {
            n = recv(fd, drop, sizeof(drop), 0);
        } while (n > 0);
        if ((what & EV_TIMEOUT) || n == 0
            || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            omni_conn_free(c);
        }
        return;
    }
    if (what & EV_TIMEOUT) {
        if (c->state == OMNI_CONN_HEAD || c->state == OMNI_CONN_BODY) {
            omni_conn_free(c); /* idle, or a request stalled half-way */
        }
        return; /* an answer is being made or written: not idle */
    }

    if (c->state == OMNI_CONN_ANSWER || c->state == OMNI_CONN_FLUSH) {
        /* nginx sends nothing while it waits for an answer but its EOF
         * when its client aborts: a peek tells which; a pipelined request
         * waits in the socket until this answer is out */
        n = recv(fd, drop, 1, MSG_PEEK);
        if (n == 0
            || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
                && errno != EINTR)) {
            omni_conn_lost(c);
        } else if (n > 0) {
            event_del(&c->rd);
            c->reading = 0;
        }
        return;
    }

    if (omni_conn_room(c, OMNI_CONN_READ_MIN, limit) != 0
        && c->in_cap - c->in_len < 2) {
        if (c->state == OMNI_CONN_BODY) {
            omni_conn_too_large(c);
        } else {
            omni_conn_refuse(c, 431, "headers_too_large",
                "the request's head is larger than 32 KiB");
        }
        return;
    }
    /* one byte stays free: the NUL after a body that ends the buffer */
    n = recv(fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (c->in_len > 0) {
                omni_conn_process(c); /* woken for a pipelined request */
            }
            return;
        }
        omni_conn_lost(c);
        return;
    }
    if (n == 0) {
        omni_conn_lost(c);
        return;
    }
    c->in_len += (size_t)n;
    omni_conn_process(c);
}


static void omni_conn_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
    struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
    socklen_t len = sizeof(cred);
    omni_conn_t *c;

    omni_http_accepted();
    if (omni_conn.cfg.check_peer
        && (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0
            || omni_http_peer_check((long)cred.uid, (long)cred.pid) != 0)) {
        close(fd); /* unanswered */
        return;
    }

    c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->in = malloc(OMNI_CONN_BUF);
        c->out = evbuffer_new();
    }
    if (c == NULL || c->in == NULL || c->out == NULL) {
        if (c != NULL) { /* not yet on the list: freed here */
            free(c->in);
            if (c->out != NULL) {
                evbuffer_free(c->out);
            }
            free(c);
        }
        close(fd);
        return;
    }
    c->fd = fd;
    c->saved = -1;
    c->next = omni_conn.open;
    if (c->next != NULL) {
        c->next->prev = c;
    }
    omni_conn.open = c;
    c->in_cap = OMNI_CONN_BUF;
    c->state = OMNI_CONN_HEAD;
    event_assign(
        &c->rd, omni_conn.base, fd, EV_READ | EV_PERSIST, omni_conn_on_read, c);
    event_assign(&c->wr, omni_conn.base, fd, EV_WRITE, omni_conn_on_write, c);
    if (event_add(&c->rd, omni_conn.idle) != 0) {
        omni_conn_free(c);
        return;
    }
    c->reading = 1;
}


int omni_conn_listen(struct event_base *base, const omni_conn_listen_t *l)
{
    omni_conn.base = base;
    omni_conn.cfg = *l;
    omni_conn.idle = event_base_init_common_timeout(base, &omni_conn.cfg.idle);
    if (omni_conn.idle == NULL) {
        omni_conn.idle = &omni_conn.cfg.idle;
    }
    omni_conn.listener = evconnlistener_new(base, omni_conn_accept, NULL,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1, l->fd);
    return omni_conn.listener != NULL ? 0 : -1;
}


void omni_conn_unlisten(void)
{
    if (omni_conn.listener != NULL) {
        evconnlistener_free(omni_conn.listener);
        omni_conn.listener = NULL;
    }
}


struct evconnlistener *omni_conn_listener(void)
{
    return omni_conn.listener;
}


void omni_conn_close_all(void)
{
    while (omni_conn.open != NULL) {
        omni_conn_free(omni_conn.open);
    }
}
