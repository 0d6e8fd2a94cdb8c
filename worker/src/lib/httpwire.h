/* httpwire.h: HTTP/1.1 requests off the wire (RFC 9112): a request's head
 * parsed in place and a chunked body decoded. Pure code: the connection
 * layer (http/conn.c) owns the bytes and the socket. */
#ifndef OMNI_HTTPWIRE_H
#define OMNI_HTTPWIRE_H

#include <stddef.h>
#include <stdint.h>

#define OMNI_WIRE_MAX_HEADERS 100

typedef struct {
    const char *name;  /* into the parsed buffer, not NUL-terminated */
    const char *value; /* without the surrounding whitespace */
    uint32_t name_len;
    uint32_t value_len;
} omni_wire_header_t;

typedef struct {
    const char *method;
    const char *target; /* origin-form: starts with '/' */
    uint32_t method_len;
    uint32_t target_len;
    int minor; /* HTTP/1.<minor>, 0 or 1 */
    int nheaders;
    int64_t content_length; /* -1 when the request has none */
    unsigned chunked : 1;
    unsigned keep_alive : 1; /* by the version and Connection */
    unsigned expect_continue : 1;
    omni_wire_header_t headers[OMNI_WIRE_MAX_HEADERS];
} omni_wire_request_t;

/* Parses the request head at the start of buf: its length through the
 * blank line; 0 when the head is not complete yet; or minus the status to
 * answer (400 malformed, 431 too many header fields, 501 a transfer coding
 * other than chunked, 505 not HTTP/1.x) with *why saying what is wrong.
 * Only complete lines are judged, so 0 never hides an error later bytes
 * could not cure. A bare LF ends a line as CRLF does (RFC 9112 2.2). */
long omni_wire_parse_request(
    const char *buf, size_t len, omni_wire_request_t *req, const char **why);

#define OMNI_WIRE_CHUNKED_DONE 16

typedef struct {
    int state;     /* 0 at the start; OMNI_WIRE_CHUNKED_DONE at the end */
    uint64_t left; /* of the chunk being read */
    uint32_t line; /* bytes of the size or trailer line so far */
} omni_wire_chunked_t;

/* Decodes a chunked body: reads up to len bytes of in, appends the data
 * to out (which may be in itself: data is never longer than its coding)
 * and adds its length to *outlen. Returns the bytes of in consumed, or -1
 * when the coding is malformed (*why says how). Stops after the last chunk
 * and its trailer section (st->state == OMNI_WIRE_CHUNKED_DONE): bytes
 * after it belong to the next request. */
long omni_wire_chunked(omni_wire_chunked_t *st, const char *in, size_t len,
    char *out, size_t *outlen, const char **why);

#endif
