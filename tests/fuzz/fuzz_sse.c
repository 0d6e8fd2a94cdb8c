/* fuzz_sse.c: libFuzzer target for the SSE parser (lib/sse.h).
 *
 * Each input is parsed whole, byte by byte, and cut at two positions taken
 * from its own first bytes; the three must dispatch the same events and
 * leave the same retry value, and all must equal what an independent,
 * whole-buffer reading of the WHATWG rules (below) gives. A small cap is
 * also exercised: it must stop with OMNI_SSE_TOO_LARGE or agree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/sse.h"

typedef struct {
    char *buf;
    size_t len, cap;
} out_t;

static void out_put(out_t *o, const void *s, size_t n)
{
    if (n == 0)
        return;
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->buf = realloc(o->buf, o->cap);
        if (o->buf == NULL)
            abort();
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* length-prefixed so that no content can fake a separator */
static void out_field(out_t *o, const char *s, size_t n)
{
    uint32_t len = (uint32_t)n;

    out_put(o, &len, sizeof(len));
    out_put(o, s, n);
}

static int record(void *arg, const omni_sse_event_t *ev)
{
    out_t *o = arg;

    if (ev->data[ev->data_len] != '\0' || ev->type[ev->type_len] != '\0'
        || ev->id[ev->id_len] != '\0' || memchr(ev->id, '\0', ev->id_len))
        abort();
    out_field(o, ev->type, ev->type_len);
    out_field(o, ev->data, ev->data_len);
    out_field(o, ev->id, ev->id_len);
    return 0;
}

static long long parse_cuts(const uint8_t *d, size_t n, const size_t *cuts,
    size_t ncuts, size_t max, out_t *o, int *rc)
{
    omni_sse_t p;
    size_t from = 0, i;
    long long retry;

    omni_sse_init(&p, max, record, o);
    *rc = 0;
    for (i = 0; i < ncuts && *rc == 0; i++) {
        *rc = omni_sse_feed(&p, (const char *)d + from, cuts[i] - from);
        from = cuts[i];
    }
    retry = p.retry_ms;
    omni_sse_free(&p);
    return retry;
}

/* The reference: split the whole stream into lines first, then apply the
 * field rules, exactly as the spec words them. */
static long long reference(const uint8_t *d, size_t n, out_t *o)
{
    out_t data = {0}, type = {0}, id = {0};
    long long retry = -1;
    size_t i = 0, start, end, nl, c, vs;

    if (n >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
        i = 3;
    while (i < n) {
        start = i;
        while (i < n && d[i] != '\r' && d[i] != '\n')
            i++;
        if (i == n)
            break; /* an unterminated last line is discarded */
        end = i;
        nl = (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n') ? 2 : 1;
        i += nl;

        if (end == start) {
            if (data.len > 0) {
                out_field(o, type.len ? type.buf : "message",
                    type.len ? type.len : 7);
                out_field(o, data.buf, data.len - 1);
                out_field(o, id.buf, id.len);
            }
            data.len = 0;
            type.len = 0;
            continue;
        }
        if (d[start] == ':')
            continue;
        for (c = start; c < end && d[c] != ':'; c++)
            ;
        vs = c < end ? c + 1 : end;
        if (vs < end && d[vs] == ' ')
            vs++;
        if (c - start == 5 && memcmp(d + start, "event", 5) == 0) {
            type.len = 0;
            out_put(&type, d + vs, end - vs);
        } else if (c - start == 4 && memcmp(d + start, "data", 4) == 0) {
            out_put(&data, d + vs, end - vs);
            out_put(&data, "\n", 1);
        } else if (c - start == 2 && memcmp(d + start, "id", 2) == 0) {
            if (memchr(d + vs, 0, end - vs) == NULL) {
                id.len = 0;
                out_put(&id, d + vs, end - vs);
            }
        } else if (c - start == 5 && memcmp(d + start, "retry", 5) == 0) {
            size_t k;
            long long v = 0;

            for (k = vs; k < end && d[k] >= '0' && d[k] <= '9'; k++)
                v = v > (0x7fffffffffffffffLL - 9) / 10 ? 0x7fffffffffffffffLL
                                                        : v * 10 + (d[k] - '0');
            if (k == end && end > vs)
                retry = v;
        }
    }
    free(data.buf);
    free(type.buf);
    free(id.buf);
    return retry;
}

static void same(const out_t *a, const out_t *b, long long ra, long long rb)
{
    if (a->len != b->len || (a->len && memcmp(a->buf, b->buf, a->len) != 0)
        || ra != rb) {
        fprintf(stderr, "events or retry differ (%zu vs %zu bytes)\n", a->len,
            b->len);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    out_t whole = {0}, bytes = {0}, cut = {0}, ref = {0}, small = {0};
    size_t cuts[3], *each;
    long long r_whole, r_bytes, r_cut, r_ref;
    size_t i;
    int rc;

    cuts[0] = n;
    r_whole = parse_cuts(d, n, cuts, 1, 1 << 20, &whole, &rc);
    if (rc != 0)
        abort();

    each = malloc((n + 1) * sizeof(*each));
    if (each == NULL)
        abort();
    for (i = 0; i < n; i++)
        each[i] = i + 1;
    r_bytes = parse_cuts(d, n, each, n, 1 << 20, &bytes, &rc);
    free(each);
    if (rc != 0)
        abort();

    cuts[0] = n ? d[0] % (n + 1) : 0;
    cuts[1] = n > 1 ? d[1] % (n + 1) : 0;
    if (cuts[1] < cuts[0])
        cuts[1] = cuts[0];
    cuts[2] = n;
    r_cut = parse_cuts(d, n, cuts, 3, 1 << 20, &cut, &rc);
    if (rc != 0)
        abort();

    r_ref = reference(d, n, &ref);

    same(&whole, &ref, r_whole, r_ref);
    same(&bytes, &ref, r_bytes, r_ref);
    same(&cut, &ref, r_cut, r_ref);

    /* under a tiny cap, either it refuses or it agrees */
    cuts[0] = n;
    r_whole = parse_cuts(d, n, cuts, 1, 32, &small, &rc);
    if (rc == 0)
        same(&small, &ref, r_whole, r_ref);
    else if (rc != OMNI_SSE_TOO_LARGE)
        abort();

    free(whole.buf);
    free(bytes.buf);
    free(cut.buf);
    free(ref.buf);
    free(small.buf);
    return 0;
}
