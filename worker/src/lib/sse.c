/* sse.c: Server-Sent Events parser, byte-exact to the WHATWG rules. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lib/sse.h"

#define SSE_DEFAULT_MAX (1024 * 1024)

static const unsigned char sse_bom[3] = {0xEF, 0xBB, 0xBF};


void omni_sse_init(
    omni_sse_t *p, size_t max_bytes, omni_sse_event_pt on_event, void *arg)
{
    memset(p, 0, sizeof(*p));
    p->on_event = on_event;
    p->arg = arg;
    p->max_bytes = max_bytes ? max_bytes : SSE_DEFAULT_MAX;
    p->retry_ms = -1;
}

void omni_sse_free(omni_sse_t *p)
{
    free(p->line.buf);
    free(p->data.buf);
    free(p->type.buf);
    free(p->id.buf);
    memset(&p->line, 0, sizeof(p->line));
    memset(&p->data, 0, sizeof(p->data));
    memset(&p->type, 0, sizeof(p->type));
    memset(&p->id, 0, sizeof(p->id));
}

/* Appends n bytes to b, keeping b NUL-terminated, unless the parser would
 * then hold more than max_bytes. */
static int sse_append(omni_sse_t *p, omni_sse_buf_t *b, const char *s, size_t n)
{
    size_t held = p->line.len + p->data.len + p->type.len + p->id.len;
    size_t cap;
    char *grown;

    if (n > p->max_bytes || held > p->max_bytes - n)
        return OMNI_SSE_TOO_LARGE;
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        grown = realloc(b->buf, cap);
        if (grown == NULL)
            return OMNI_SSE_TOO_LARGE;
        b->buf = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return 0;
}

static int sse_dispatch(omni_sse_t *p)
{
    omni_sse_event_t ev;
    int rc;

    if (p->data.len == 0) {
        p->type.len = 0;
        return 0;
    }
    /* every data line was stored with its LF: drop the last one */
    p->data.len--;
    p->data.buf[p->data.len] = '\0';

    ev.data = p->data.buf;
    ev.data_len = p->data.len;
    ev.type = p->type.len ? p->type.buf : "message";
    ev.type_len = p->type.len ? p->type.len : 7;
    ev.id = p->id.len ? p->id.buf : "";
    ev.id_len = p->id.len;

    rc = p->on_event(p->arg, &ev);
    p->data.len = 0;
    p->type.len = 0;
    return rc;
}

static int sse_field_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(name, want, n) == 0;
}

static void sse_retry(omni_sse_t *p, const char *v, size_t n)
{
    long long ms = 0;
    size_t i;

    if (n == 0)
        return;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
    }
    for (i = 0; i < n; i++) {
        if (ms > (LLONG_MAX - 9) / 10)
            ms = LLONG_MAX;
        else
            ms = ms * 10 + (v[i] - '0');
    }
    p->retry_ms = ms;
}

static int sse_line(omni_sse_t *p, const char *l, size_t n)
{
    const char *colon, *value;
    size_t name_len, value_len;
    int rc;

    if (n == 0)
        return sse_dispatch(p);
    if (l[0] == ':')
        return 0;

    colon = memchr(l, ':', n);
    if (colon != NULL) {
        name_len = (size_t)(colon - l);
        value = colon + 1;
        value_len = n - name_len - 1;
        if (value_len > 0 && value[0] == ' ') {
            value++;
            value_len--;
        }
    } else {
        name_len = n;
        value = l + n;
        value_len = 0;
    }

    if (sse_field_is(l, name_len, "event")) {
        p->type.len = 0;
        return sse_append(p, &p->type, value, value_len);
    }
    if (sse_field_is(l, name_len, "data")) {
        rc = sse_append(p, &p->data, value, value_len);
        return rc ? rc : sse_append(p, &p->data, "\n", 1);
    }
    if (sse_field_is(l, name_len, "id")) {
        if (memchr(value, '\0', value_len) != NULL)
            return 0;
        p->id.len = 0;
        return sse_append(p, &p->id, value, value_len);
    }
    if (sse_field_is(l, name_len, "retry"))
        sse_retry(p, value, value_len);
    return 0;
}

static int sse_bytes(omni_sse_t *p, const char *buf, size_t len)
{
    size_t i = 0, k;
    int rc;

    while (i < len) {
        if (p->after_cr) {
            p->after_cr = 0;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        for (k = i; k < len && buf[k] != '\r' && buf[k] != '\n'; k++)
            ;
        if (k == len)
            return sse_append(p, &p->line, buf + i, len - i);

        if (p->line.len) {
            rc = sse_append(p, &p->line, buf + i, k - i);
            if (rc == 0)
                rc = sse_line(p, p->line.buf, p->line.len);
            p->line.len = 0;
        } else {
            rc = sse_line(p, buf + i, k - i);
        }
        if (buf[k] == '\r')
            p->after_cr = 1;
        i = k + 1;
        if (rc)
            return rc;
    }
    return 0;
}

int omni_sse_feed(omni_sse_t *p, const char *buf, size_t len)
{
    size_t i = 0;
    int matched, rc;

    while (p->bom < 3 && i < len) {
        if ((unsigned char)buf[i] == sse_bom[p->bom]) {
            p->bom++;
            i++;
            continue;
        }
        /* not a BOM after all: what looked like its start is content */
        matched = p->bom;
        p->bom = 3;
        rc = sse_bytes(p, (const char *)sse_bom, (size_t)matched);
        if (rc)
            return rc;
    }
    return sse_bytes(p, buf + i, len - i);
}
