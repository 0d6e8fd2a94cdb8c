/* httpwire.c: HTTP/1.1 request heads and chunked bodies (RFC 9112), strict
 * where a lenient reading could let two parsers see different requests:
 * no whitespace before a colon, no obsolete line folding, no bare CR, one
 * Content-Length value, never both Content-Length and Transfer-Encoding. */
#include <string.h>

#include "lib/httpwire.h"


/* RFC 9110 5.6.2 tchar */
static const unsigned char omni_wire_tchar[256] = {
    ['!'] = 1,
    ['#'] = 1,
    ['$'] = 1,
    ['%'] = 1,
    ['&'] = 1,
    ['\''] = 1,
    ['*'] = 1,
    ['+'] = 1,
    ['-'] = 1,
    ['.'] = 1,
    ['^'] = 1,
    ['_'] = 1,
    ['`'] = 1,
    ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1,
    ['1'] = 1,
    ['2'] = 1,
    ['3'] = 1,
    ['4'] = 1,
    ['5'] = 1,
    ['6'] = 1,
    ['7'] = 1,
    ['8'] = 1,
    ['9'] = 1,
    ['A'] = 1,
    ['B'] = 1,
    ['C'] = 1,
    ['D'] = 1,
    ['E'] = 1,
    ['F'] = 1,
    ['G'] = 1,
    ['H'] = 1,
    ['I'] = 1,
    ['J'] = 1,
    ['K'] = 1,
    ['L'] = 1,
    ['M'] = 1,
    ['N'] = 1,
    ['O'] = 1,
    ['P'] = 1,
    ['Q'] = 1,
    ['R'] = 1,
    ['S'] = 1,
    ['T'] = 1,
    ['U'] = 1,
    ['V'] = 1,
    ['W'] = 1,
    ['X'] = 1,
    ['Y'] = 1,
    ['Z'] = 1,
    ['a'] = 1,
    ['b'] = 1,
    ['c'] = 1,
    ['d'] = 1,
    ['e'] = 1,
    ['f'] = 1,
    ['g'] = 1,
    ['h'] = 1,
    ['i'] = 1,
    ['j'] = 1,
    ['k'] = 1,
    ['l'] = 1,
    ['m'] = 1,
    ['n'] = 1,
    ['o'] = 1,
    ['p'] = 1,
    ['q'] = 1,
    ['r'] = 1,
    ['s'] = 1,
    ['t'] = 1,
    ['u'] = 1,
    ['v'] = 1,
    ['w'] = 1,
    ['x'] = 1,
    ['y'] = 1,
    ['z'] = 1,
};

#define OMNI_WIRE_MAX_METHOD 32
#define OMNI_WIRE_MAX_DIGITS 18 /* a length that fits int64_t */


/* The line starting at p: its length without the CRLF (or LF), the line
 * with its end in *next. 0 when no LF yet, -1 on a CR not before the LF. */
static long omni_wire_line(
    const char *p, const char *end, size_t *len, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    const char *cr;
    size_t n;

    if (lf == NULL) {
        return 0;
    }
    n = (size_t)(lf - p);
    if (n > 0 && p[n - 1] == '\r') {
        n--;
    }
    cr = memchr(p, '\r', n);
    if (cr != NULL) {
        return -1;
    }
    *len = n;
    *next = lf + 1;
    return 1;
}


static int omni_wire_ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b), i;

    if (alen != blen) {
        return 0;
    }
    for (i = 0; i < alen; i++) {
        char c = a[i];

        if (c >= 'A' && c <= 'Z') {
            c = (char)(c + 32);
        }
        if (c != b[i]) {
            return 0;
        }
    }
    return 1;
}


/* Each comma-separated token of a header value, trimmed. */
static void omni_wire_tokens(const char *v, size_t len,
    void (*fn)(omni_wire_request_t *, const char *, size_t),
    omni_wire_request_t *req)
{
    size_t i = 0, start, stop;

    while (i <= len) {
        start = i;
        while (i < len && v[i] != ',') {
            i++;
        }
        stop = i;
        while (start < stop && (v[start] == ' ' || v[start] == '\t')) {
            start++;
        }
        while (stop > start && (v[stop - 1] == ' ' || v[stop - 1] == '\t')) {
            stop--;
        }
        if (stop > start) {
            fn(req, v + start, stop - start);
        }
        i++;
    }
}


static void omni_wire_connection_token(
    omni_wire_request_t *req, const char *t, size_t n)
{
    if (omni_wire_ieq(t, n, "close")) {
        req->keep_alive = 0;
    } else if (omni_wire_ieq(t, n, "keep-alive") && req->minor == 0) {
        req->keep_alive = 1;
    }
}


static long omni_wire_fail(const char **why, const char *what, long status)
{
    *why = what;
    return -status;
}


/* The request line: method SP request-target SP HTTP-version. */
static long omni_wire_request_line(
    const char *p, size_t n, omni_wire_request_t *req, const char **why)
{
    size_t i = 0, t;

    while (i < n && omni_wire_tchar[(unsigned char)p[i]]) {
        i++;
    }
    if (i == 0 || i == n || p[i] != ' ') {
        return omni_wire_fail(why, "malformed request line", 400);
    }
    if (i > OMNI_WIRE_MAX_METHOD) {
        return omni_wire_fail(why, "method too long", 501);
    }
    req->method = p;
    req->method_len = (uint32_t)i;

    t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f) {
        i++;
    }
    if (i == t || i == n || p[i] != ' ') {
        return omni_wire_fail(why, "malformed request line", 400);
    }
    if (p[t] != '/') {
        return omni_wire_fail(
            why, "the request target must be a path (origin-form)", 400);
    }
    req->target = p + t;
    req->target_len = (uint32_t)(i - t);

    i++;
    if (n - i == 8 && memcmp(p + i, "HTTP/1.", 7) == 0
        && (p[i + 7] == '0' || p[i + 7] == '1')) {
        req->minor = p[i + 7] - '0';
        req->keep_alive = req->minor == 1;
        return 0;
    }
    if (n - i == 8 && memcmp(p + i, "HTTP/", 5) == 0 && p[i + 5] >= '0'
        && p[i + 5] <= '9' && p[i + 6] == '.' && p[i + 7] >= '0'
        && p[i + 7] <= '9') {
        return omni_wire_fail(why, "HTTP version not supported", 505);
    }
    return omni_wire_fail(why, "malformed request line", 400);
}


/* Content-Length: 1*DIGIT, the same value however often it comes. */
static long omni_wire_content_length(
    omni_wire_request_t *req, const char *v, size_t n, const char **why)
{
    int64_t x = 0;
    size_t i;

    if (n == 0 || n > OMNI_WIRE_MAX_DIGITS) {
        return omni_wire_fail(why, "invalid Content-Length", 400);
    }
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return omni_wire_fail(why, "invalid Content-Length", 400);
        }
        x = x * 10 + (v[i] - '0');
    }
    if (req->content_length >= 0 && req->content_length != x) {
        return omni_wire_fail(why, "conflicting Content-Length values", 400);
    }
    req->content_length = x;
    return 0;
}


/* What the framing headers say, once all are read. */
static long omni_wire_semantics(omni_wire_request_t *req, const char **why)
{
    int i, te = 0;

    for (i = 0; i < req->nheaders; i++) {
        const omni_wire_header_t *h = &req->headers[i];
        long rc;

        switch (h->name_len) {
        case 14:
            if (omni_wire_ieq(h->name, 14, "content-length")) {
                rc = omni_wire_content_length(req, h->value, h->value_len, why);
                if (rc != 0) {
                    return rc;
                }
            }
            break;
        case 17:
            if (omni_wire_ieq(h->name, 17, "transfer-encoding")) {
                /* only "chunked", alone and once: any other coding (or
                 * a list) is not implemented */
                if (te++ > 0
                    || !omni_wire_ieq(h->value, h->value_len, "chunked")) {
                    return omni_wire_fail(
                        why, "unsupported Transfer-Encoding", 501);
                }
                req->chunked = 1;
            }
            break;
        case 10:
            if (omni_wire_ieq(h->name, 10, "connection")) {
                omni_wire_tokens(
                    h->value, h->value_len, omni_wire_connection_token, req);
            }
            break;
        case 6:
            if (omni_wire_ieq(h->name, 6, "expect") && req->minor == 1
                && omni_wire_ieq(h->value, h->value_len, "100-continue")) {
                req->expect_continue = 1;
            }
            break;
        }
    }
    if (req->chunked && req->minor == 0) {
        return omni_wire_fail(why, "Transfer-Encoding in HTTP/1.0", 400);
    }
    if (req->chunked && req->content_length >= 0) {
        /* RFC 9112 6.3: the mark of request smuggling */
        return omni_wire_fail(
            why, "both Content-Length and Transfer-Encoding", 400);
    }
    return 0;
}


long omni_wire_parse_request(
    const char *buf, size_t len, omni_wire_request_t *req, const char **why)
{
    const char *p = buf, *end = buf + len, *next;
    size_t n, i, colon, vs, ve;
    long rc;

    req->nheaders = 0;
    req->content_length = -1;
    req->chunked = 0;
    req->keep_alive = 0;
    req->expect_continue = 0;

    /* RFC 9112 2.2: empty lines before the request line are ignored */
    while (p < end && (*p == '\r' || *p == '\n')) {
        if (*p == '\r' && (p + 1 == end || p[1] != '\n')) {
            if (p + 1 == end) {
                return 0;
            }
            return omni_wire_fail(why, "malformed request line", 400);
        }
        p += *p == '\r' ? 2 : 1;
    }

    rc = omni_wire_line(p, end, &n, &next);
    if (rc <= 0) {
        return rc == 0 ? 0 : omni_wire_fail(why, "bare CR", 400);
    }
    rc = omni_wire_request_line(p, n, req, why);
    if (rc != 0) {
        return rc;
    }
    p = next;

    for (;;) {
        rc = omni_wire_line(p, end, &n, &next);
        if (rc <= 0) {
            return rc == 0 ? 0 : omni_wire_fail(why, "bare CR", 400);
        }
        if (n == 0) {
            break;
        }
        if (p[0] == ' ' || p[0] == '\t') {
            return omni_wire_fail(why, "obsolete line folding", 400);
        }
        for (i = 0; i < n && omni_wire_tchar[(unsigned char)p[i]]; i++) {
        }
        if (i == 0 || i == n || p[i] != ':') {
            return omni_wire_fail(why, "malformed header field", 400);
        }
        if (req->nheaders == OMNI_WIRE_MAX_HEADERS) {
            return omni_wire_fail(why, "too many header fields", 431);
        }
        colon = i;
        vs = i + 1;
        while (vs < n && (p[vs] == ' ' || p[vs] == '\t')) {
            vs++;
        }
        ve = n;
        while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t')) {
            ve--;
        }
        for (i = vs; i < ve; i++) {
            unsigned char c = (unsigned char)p[i];

            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return omni_wire_fail(
                    why, "control character in a header field", 400);
            }
        }
        req->headers[req->nheaders].name = p;
        req->headers[req->nheaders].name_len = (uint32_t)colon;
        req->headers[req->nheaders].value = p + vs;
        req->headers[req->nheaders].value_len = (uint32_t)(ve - vs);
        req->nheaders++;
        p = next;
    }

    rc = omni_wire_semantics(req, why);
    if (rc != 0) {
        return rc;
    }
    return (long)(next - buf);
}


enum {
    OMNI_WIRE_SIZE = 0, /* the chunk size's hex digits */
    OMNI_WIRE_EXT,      /* after them: extensions (ignored) up to the LF */
    OMNI_WIRE_DATA,     /* chunk data */
    OMNI_WIRE_DATA_END, /* the CRLF after it */
    OMNI_WIRE_TRAILER,  /* trailer lines (dropped) up to an empty one */
    OMNI_WIRE_LF        /* a CR was read: the LF must follow */
};

_Static_assert(OMNI_WIRE_CHUNKED_DONE > OMNI_WIRE_LF,
    "OMNI_WIRE_CHUNKED_DONE must differ from the states");

#define OMNI_WIRE_MAX_LINE 4096 /* an extension or a trailer line */


static int omni_wire_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}


/* A line ended (its LF read): where the state goes after it. */
static int omni_wire_chunk_line_end(omni_wire_chunked_t *st, int of)
{
    switch (of) {
    case OMNI_WIRE_EXT:
        return st->left ? OMNI_WIRE_DATA : OMNI_WIRE_TRAILER;
    case OMNI_WIRE_DATA_END:
        return OMNI_WIRE_SIZE;
    default: /* a trailer line: the empty one ends the body */
        return st->line == 0 ? OMNI_WIRE_CHUNKED_DONE : OMNI_WIRE_TRAILER;
    }
}


long omni_wire_chunked(omni_wire_chunked_t *st, const char *in, size_t len,
    char *out, size_t *outlen, const char **why)
{
    size_t i = 0, take;
    int d, next;
    char c;

    while (i < len && st->state != OMNI_WIRE_CHUNKED_DONE) {
        c = in[i];
        switch (st->state) {
        case OMNI_WIRE_SIZE:
            d = omni_wire_hex(c);
            if (d >= 0) {
                if (st->left >> 59) {
                    *why = "chunk size too large";
                    return -1;
                }
                st->left = st->left << 4 | (uint64_t)d;
                st->line++;
                i++;
                break;
            }
            if (st->line == 0
                || !(c == ';' || c == ' ' || c == '\t' || c == '\r'
                     || c == '\n')) {
                *why = "malformed chunk size";
                return -1;
            }
            st->state = OMNI_WIRE_EXT;
            st->line = 0;
            break; /* c again, as an extension's */

        case OMNI_WIRE_EXT:
        case OMNI_WIRE_TRAILER:
            if (c == '\n' || c == '\r') {
                next = omni_wire_chunk_line_end(st, st->state);
                if (c == '\r') {
                    /* the line's end is decided now, its LF must follow */
                    st->line = (uint32_t)next;
                    st->state = OMNI_WIRE_LF;
                } else {
                    st->state = next;
                    st->line = 0;
                }
                i++;
                break;
            }
            if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f) {
                *why = "control character in a chunk line";
                return -1;
            }
            if (++st->line > OMNI_WIRE_MAX_LINE) {
                *why = "chunk line too long";
                return -1;
            }
            i++;
            break;

        case OMNI_WIRE_LF:
            if (c != '\n') {
                *why = "bare CR in chunked coding";
                return -1;
            }
            st->state = (int)st->line;
            st->line = 0;
            i++;
            break;

        case OMNI_WIRE_DATA:
            take = len - i;
            if (take > st->left) {
                take = (size_t)st->left;
            }
            memmove(out + *outlen, in + i, take);
            *outlen += take;
            st->left -= take;
            i += take;
            if (st->left == 0) {
                st->state = OMNI_WIRE_DATA_END;
            }
            break;

        case OMNI_WIRE_DATA_END:
            if (c == '\r') {
                st->line = OMNI_WIRE_SIZE;
                st->state = OMNI_WIRE_LF;
            } else if (c == '\n') {
                st->state = OMNI_WIRE_SIZE;
                st->line = 0;
            } else {
                *why = "chunk data not followed by CRLF";
                return -1;
            }
            i++;
            break;

        default:
            *why = "chunked decoder misused";
            return -1;
        }
    }
    return (long)i;
}
