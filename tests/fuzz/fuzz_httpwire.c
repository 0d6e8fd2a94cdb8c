/* fuzz_httpwire.c: libFuzzer target for the worker's HTTP/1.1 framing
 * (lib/httpwire.h).
 *
 * Request heads: whatever the bytes, the parse answers within them; a
 * head's fields lie inside it and are well formed; a head parses the same
 * alone as with bytes after it; any prefix of an incomplete input is
 * incomplete, and an error seen in a prefix stays the same error with
 * more bytes (only complete lines are judged).
 *
 * Chunked bodies: decoded whole, one byte at a time, and in three pieces
 * cut where the input's first bytes say, the three give the same bytes and
 * the same end; and a successful decode equals what an independent
 * whole-buffer reading of RFC 9112 7.1 gives. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/httpwire.h"

/* the line of the broken property, then a crash libFuzzer keeps */
#define FAIL()                                                                 \
    do {                                                                       \
        fprintf(stderr, "fuzz_httpwire.c:%d: property broken\n", __LINE__);    \
        abort();                                                               \
    } while (0)

static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int inside(const uint8_t *buf, size_t len, const char *p, size_t n)
{
    return (const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + len;
}

static void check_head(const uint8_t *buf, long rc, omni_wire_request_t *w)
{
    size_t i;
    int h;

    if (buf[rc - 1] != '\n'
        || !inside(buf, (size_t)rc, w->method, w->method_len)
        || !inside(buf, (size_t)rc, w->target, w->target_len)
        || w->method_len == 0 || w->target_len == 0 || w->target[0] != '/'
        || (w->minor != 0 && w->minor != 1)) {
        FAIL();
    }
    for (i = 0; i < w->method_len; i++) {
        if (!tchar((unsigned char)w->method[i])) {
            FAIL();
        }
    }
    for (i = 0; i < w->target_len; i++) {
        if ((unsigned char)w->target[i] <= 0x20
            || (unsigned char)w->target[i] >= 0x7f) {
            FAIL();
        }
    }
    for (h = 0; h < w->nheaders; h++) {
        const omni_wire_header_t *x = &w->headers[h];

        if (x->name_len == 0 || !inside(buf, (size_t)rc, x->name, x->name_len)
            || !inside(buf, (size_t)rc, x->value, x->value_len)
            || x->name[x->name_len] != ':') {
            FAIL();
        }
        for (i = 0; i < x->name_len; i++) {
            if (!tchar((unsigned char)x->name[i])) {
                FAIL();
            }
        }
        for (i = 0; i < x->value_len; i++) {
            unsigned char c = (unsigned char)x->value[i];

            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                FAIL();
            }
        }
        if (x->value_len > 0
            && (x->value[0] == ' ' || x->value[0] == '\t'
                || x->value[x->value_len - 1] == ' '
                || x->value[x->value_len - 1] == '\t')) {
            FAIL();
        }
    }
    if (w->content_length < -1 || (w->chunked && w->content_length >= 0)
        || (w->chunked && w->minor != 1)
        || (w->expect_continue && w->minor != 1)) {
        FAIL();
    }
}

static int same_head(const omni_wire_request_t *a, const omni_wire_request_t *b)
{
    int h;

    if (a->method != b->method || a->method_len != b->method_len
        || a->target != b->target || a->target_len != b->target_len
        || a->minor != b->minor || a->nheaders != b->nheaders
        || a->content_length != b->content_length || a->chunked != b->chunked
        || a->keep_alive != b->keep_alive
        || a->expect_continue != b->expect_continue) {
        return 0;
    }
    for (h = 0; h < a->nheaders; h++) {
        if (a->headers[h].name != b->headers[h].name
            || a->headers[h].name_len != b->headers[h].name_len
            || a->headers[h].value != b->headers[h].value
            || a->headers[h].value_len != b->headers[h].value_len) {
            return 0;
        }
    }
    return 1;
}

static void fuzz_head(const uint8_t *buf, size_t len, size_t cut)
{
    static omni_wire_request_t full, part;
    const char *why = NULL, *why2 = NULL;
    long rc, rc2;

    rc = omni_wire_parse_request((const char *)buf, len, &full, &why);
    if (rc > (long)len) {
        FAIL();
    }
    if (rc < 0) {
        if (why == NULL
            || (rc != -400 && rc != -431 && rc != -501 && rc != -505)) {
            FAIL();
        }
    }
    if (rc > 0) {
        check_head(buf, rc, &full);
        rc2 = omni_wire_parse_request(
            (const char *)buf, (size_t)rc, &part, &why2);
        if (rc2 != rc || !same_head(&full, &part)) {
            FAIL();
        }
    }

    /* a prefix */
    if (cut > len) {
        cut = len;
    }
    rc2 = omni_wire_parse_request((const char *)buf, cut, &part, &why2);
    if (rc > 0 && cut < (size_t)rc && rc2 != 0) {
        FAIL(); /* a complete head's prefix is incomplete */
    }
    if (rc == 0 && rc2 != 0) {
        FAIL();
    }
    if (rc2 < 0 && rc != rc2) {
        FAIL(); /* an error in a prefix is the whole's error */
    }
}

/* The rest of a line from *i (at most 4096 characters, no controls but
 * HTAB) through its CRLF or LF: 0 with *i after it, 1 incomplete, -1 bad */
static int reference_line(const uint8_t *p, size_t len, size_t *i)
{
    size_t n = 0;

    for (; *i < len && p[*i] != '\n' && p[*i] != '\r'; (*i)++) {
        if ((p[*i] < 0x20 && p[*i] != '\t') || p[*i] == 0x7f || ++n > 4096) {
            return -1;
        }
    }
    if (*i == len || (p[*i] == '\r' && *i + 1 == len)) {
        return 1;
    }
    if (p[*i] == '\r' && p[*i + 1] != '\n') {
        return -1;
    }
    *i += p[*i] == '\r' ? 2 : 1;
    return 0;
}

/* RFC 9112 7.1, read whole: 0 done (*used, out), 1 incomplete, -1 bad */
static int reference_chunked(
    const uint8_t *p, size_t len, uint8_t *out, size_t *outlen, size_t *used)
{
    size_t i = 0, n = 0, digits;
    uint64_t size;
    int rc;

    for (;;) {
        size = 0;
        digits = 0;
        while (i < len && p[i] != 0 && strchr("0123456789abcdefABCDEF", p[i])) {
            if (size >> 59) {
                return -1;
            }
            size = size * 16
                   + (uint64_t)(p[i] <= '9'   ? p[i] - '0'
                                : p[i] >= 'a' ? p[i] - 'a' + 10
                                              : p[i] - 'A' + 10);
            i++;
            digits++;
        }
        if (i == len) {
            return 1;
        }
        if (digits == 0 || p[i] == 0 || !strchr(";\t\r\n ", p[i])) {
            return -1;
        }
        /* the extension, up to the line's end */
        rc = reference_line(p, len, &i);
        if (rc != 0) {
            return rc;
        }
        if (size == 0) {
            break;
        }
        if (len - i < size) {
            return 1;
        }
        memcpy(out + n, p + i, (size_t)size);
        n += (size_t)size;
        i += (size_t)size;
        if (i == len || (p[i] == '\r' && i + 1 == len)) {
            return 1;
        }
        if (p[i] == '\n') {
            i++;
        } else if (p[i] == '\r' && p[i + 1] == '\n') {
            i += 2;
        } else {
            return -1;
        }
    }
    /* trailer lines up to an empty one */
    for (;;) {
        size_t start = i;

        rc = reference_line(p, len, &i);
        if (rc != 0) {
            return rc;
        }
        if (i - start <= 2 && (i - start == 1 || p[start] == '\r')) {
            *outlen = n;
            *used = i;
            return 0;
        }
    }
}

/* 0 done, 1 incomplete, -1 bad; the data and the bytes used. Decoded in
 * place, as http/conn.c does: out is the input's own buffer. */
static int decode(const uint8_t *p, size_t len, const size_t *cuts, int ncuts,
    uint8_t *out, size_t *outlen, size_t *used)
{
    omni_wire_chunked_t st;
    const char *why = NULL;
    size_t at = 0;
    long n;
    int k;

    memset(&st, 0, sizeof(st));
    memcpy(out, p, len);
    *outlen = 0;
    for (k = 0; k <= ncuts && st.state != OMNI_WIRE_CHUNKED_DONE; k++) {
        size_t end = k < ncuts ? cuts[k] : len;

        if (end < at) {
            continue;
        }
        n = omni_wire_chunked(
            &st, (const char *)out + at, end - at, (char *)out, outlen, &why);
        if (n < 0) {
            if (why == NULL) {
                FAIL();
            }
            return -1;
        }
        at += (size_t)n;
    }
    *used = at;
    return st.state == OMNI_WIRE_CHUNKED_DONE ? 0 : 1;
}

static void fuzz_chunked(const uint8_t *p, size_t len, size_t c1, size_t c2)
{
    uint8_t *a = malloc(len + 1), *b = malloc(len + 1), *r = malloc(len + 1);
    size_t alen, blen, rlen = 0, aused, bused, rused = 0, i;
    size_t cuts[2] = {c1 < c2 ? c1 : c2, c1 < c2 ? c2 : c1};
    size_t *each = malloc((len + 1) * sizeof(size_t));
    int ra, rb, rr;

    if (a == NULL || b == NULL || r == NULL || each == NULL) {
        FAIL();
    }
    for (i = 0; i < len; i++) {
        each[i] = i;
    }
    ra = decode(p, len, cuts, 2, a, &alen, &aused);
    rb = decode(p, len, each, (int)len, b, &blen, &bused);
    rr = reference_chunked(p, len, r, &rlen, &rused);
    if (ra != rb || (ra != -1 && (alen != blen || memcmp(a, b, alen) != 0))
        || (ra == 0 && aused != bused) || alen > len) {
        FAIL();
    }
    if (ra != rr
        || (ra == 0
            && (alen != rlen || aused != rused || memcmp(a, r, alen) != 0))) {
        FAIL();
    }
    free(a);
    free(b);
    free(r);
    free(each);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t c1, c2;

    if (size < 3) {
        return 0;
    }
    c1 = data[1] % (size - 2);
    c2 = data[2] % (size - 2);
    if (data[0] & 1) {
        fuzz_chunked(data + 3, size - 3, c1, c2);
    } else {
        fuzz_head(data + 3, size - 3, c1);
    }
    return 0;
}
