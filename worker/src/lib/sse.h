/* sse.h: incremental Server-Sent Events parser (WHATWG HTML "event stream
 * interpretation"), fed with the body bytes as they arrive. */
#ifndef OMNI_SSE_H
#define OMNI_SSE_H

#include <stddef.h>

/* One dispatched event. Pointers are valid only during the callback. data
 * is the data lines joined with LF (no trailing LF); type is the last
 * "event:" value or "message"; id is the stream's last event ID (sticky
 * across events, "" when never set or reset by a bare "id"). The three
 * strings are NUL-terminated, and data may also contain NULs: use the
 * lengths. Bytes are passed through as received (no UTF-8 decoding). */
typedef struct {
    const char *type;
    size_t type_len;
    const char *data;
    size_t data_len;
    const char *id;
    size_t id_len;
} omni_sse_event_t;

/* Called for each dispatched event. Return 0 to go on, anything else to
 * stop: omni_sse_feed() then returns that value at once. */
typedef int (*omni_sse_event_pt)(void *arg, const omni_sse_event_t *ev);

typedef struct {
    char *buf;
    size_t len;
    size_t cap;
} omni_sse_buf_t;

typedef struct {
    omni_sse_event_pt on_event;
    void *arg;
    size_t max_bytes;    /* cap on line + pending event, see below */
    long long retry_ms;  /* last valid "retry:" value, -1 when none */
    int bom;             /* bytes of a leading BOM matched so far; 3 = done */
    int after_cr;        /* last byte was CR: a following LF ends nothing */
    omni_sse_buf_t line; /* the current line, when split across feeds */
    omni_sse_buf_t data; /* the data buffer, each line followed by LF */
    omni_sse_buf_t type; /* the event type buffer */
    omni_sse_buf_t id;   /* the last event ID buffer */
} omni_sse_t;

#define OMNI_SSE_TOO_LARGE (-1)

/* Prepares p. max_bytes bounds the memory the parser holds (an unfinished
 * line plus the data of the event being built, plus type and id); 0 means
 * 1 MiB. Never fails (buffers grow on demand). */
void omni_sse_init(
    omni_sse_t *p, size_t max_bytes, omni_sse_event_pt on_event, void *arg);

/* Parses len more bytes of the stream; chunk boundaries may fall anywhere
 * (inside a CRLF, a field name, a BOM). Returns 0; OMNI_SSE_TOO_LARGE when
 * the held bytes would exceed max_bytes or memory ran out (the stream
 * should be dropped: the parser's state is then undefined, only
 * omni_sse_free() may follow); or a callback's non-zero return. */
int omni_sse_feed(omni_sse_t *p, const char *buf, size_t len);

/* Frees the parser's buffers. An unfinished event at end of stream is
 * discarded, as the spec says. p may be re-initialised afterwards. */
void omni_sse_free(omni_sse_t *p);

#endif
