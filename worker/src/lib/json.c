/* json.c: yajl callbacks that build a bounded arena tree, and JSON output. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_parse.h>

#include "lib/json.h"

#define JSON_DEFAULT_DEPTH 64
#define JSON_KEY_SHOWN 64  /* bytes of a key quoted in an error message */
#define JSON_DUP_LINEAR 16 /* objects up to this size: pairwise key check */

/* One member of a container still being parsed. Members of every open
 * container share one malloc'd stack and are copied into the arena, at
 * their final size, when the container closes: no quadratic regrowth and
 * no dead copies left in the arena. */
typedef struct {
    const char *key; /* NULL inside arrays */
    omni_json_t *value;
} json_slot_t;

typedef struct {
    omni_json_t *node;
    size_t base; /* index of the container's first slot */
} json_frame_t;

typedef struct {
    omni_arena_t *arena;
    yajl_handle yajl;
    const char *text;
    size_t len;
    size_t mark; /* input offset just past the previous token */
    int max_depth;

    omni_json_t *root;
    size_t root_end; /* input offset just past the root value */
    int completing;  /* inside yajl_complete_parse() */
    const char *key; /* pending object key */

    json_slot_t *slots;
    size_t nslots;
    size_t slots_cap;

    json_frame_t *frames;
    int depth;
    int frames_cap;

    const char **scratch; /* key copy for duplicate detection */
    size_t scratch_cap;

    char *err;
    size_t errlen;
    int failed; /* err holds our reason, not yajl's */
} json_parser_t;

/* Output goes through a small staging buffer so that punctuation and
 * escapes do not cost one evbuffer_add() each. */
typedef struct {
    struct evbuffer *out;
    size_t n;
    int failed;
    char buf[1024];
} json_out_t;


static void json_fail(json_parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void json_fail(json_parser_t *p, const char *fmt, ...)
{
    va_list ap;

    if (p->failed)
        return;
    p->failed = 1;
    if (p->errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
}

/* The RFC 8259 escape of a control character, '"' or '\\' into esc;
 * returns its length (2 or 6). */
static size_t json_escape(unsigned char c, char esc[6])
{
    static const char hex[] = "0123456789abcdef";

    esc[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        esc[1] = (char)c;
        return 2;
    case '\b':
        esc[1] = 'b';
        return 2;
    case '\f':
        esc[1] = 'f';
        return 2;
    case '\n':
        esc[1] = 'n';
        return 2;
    case '\r':
        esc[1] = 'r';
        return 2;
    case '\t':
        esc[1] = 't';
        return 2;
    default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 0xF];
        return 6;
    }
}

/* Writes a key (valid UTF-8) for an error message: escaped like JSON so the
 * message stays on one line, cut after JSON_KEY_SHOWN bytes on a character
 * boundary. */
static void json_show_key(char *out, size_t size, const char *key)
{
    const unsigned char *u = (const unsigned char *)key;
    size_t o = 0, n;
    char esc[6];
    int k;

    while (*u != '\0' && o < JSON_KEY_SHOWN) {
        if (*u < 0x20 || *u == '"' || *u == '\\') {
            n = json_escape(*u, esc);
            if (o + n >= size)
                break;
            memcpy(out + o, esc, n);
            o += n;
            u++;
            continue;
        }
        k = omni_utf8_seq((const char *)u, strlen((const char *)u));
        n = (size_t)(k > 0 ? k : -k);
        if (o + n >= size)
            break;
        memcpy(out + o, u, n);
        o += n;
        u += n;
    }
    out[o] = '\0';
}

static omni_json_t *json_node(
    json_parser_t *p, omni_json_type_t type, size_t extra)
{
    omni_json_t *v;

    v = omni_arena_alloc(p->arena, sizeof(*v) + extra);
    if (v == NULL) {
        json_fail(p, "out of memory");
        return NULL;
    }
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}

/* yajl_complete_parse() feeds yajl a lone " " and counts bytes in that: a
 * root finished then (only a bare number can be) ends the whole text. */
static void json_root_done(json_parser_t *p)
{
    p->root_end = p->completing ? p->len : yajl_get_bytes_consumed(p->yajl);
}

/* Attaches a finished value to the open container, or makes it the root. */
static int json_add(json_parser_t *p, omni_json_t *v)
{
    json_slot_t *slots;
    size_t cap;

    if (v == NULL)
        return 0;
    if (p->depth == 0) {
        p->root = v;
        json_root_done(p);
        return 1;
    }
    if (p->nslots == p->slots_cap) {
        cap = p->slots_cap ? p->slots_cap * 2 : 64;
        slots = realloc(p->slots, cap * sizeof(*slots));
        if (slots == NULL) {
            json_fail(p, "out of memory");
            return 0;
        }
        p->slots = slots;
        p->slots_cap = cap;
    }
    p->slots[p->nslots].key = p->key;
    p->slots[p->nslots].value = v;
    p->nslots++;
    p->key = NULL;
    return 1;
}

/* h points at four hex digits, already checked by yajl's lexer. */
static unsigned json_hex4(const char *h)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++)
        v = v * 16
            + (unsigned)(h[i] <= '9' ? h[i] - '0' : (h[i] | 0x20) - 'a' + 10);
    return v;
}

/* Checks what yajl lets through: its UTF-8 check accepts overlong forms,
 * surrogates and code points above U+10FFFF, and its \u decoder pairs a
 * high surrogate with whatever \u escape follows. The raw token is found
 * from the byte count: it ends at the closing quote just consumed and opens
 * at the first quote after the previous token (only whitespace and , : [ {
 * can lie between). */
static int json_check_string(
    json_parser_t *p, const unsigned char *s, size_t len)
{
    size_t end = yajl_get_bytes_consumed(p->yajl);
    const char *open, *raw;
    size_t rawlen, i, at;
    unsigned cp;
    int k;

    if (end > p->len || end <= p->mark || p->text[end - 1] != '"'
        || (open = memchr(p->text + p->mark, '"', end - p->mark)) == NULL
        || open == p->text + end - 1) {
        json_fail(p, "malformed JSON: internal error locating a string");
        return 0;
    }
    at = (size_t)(open - p->text);
    raw = open + 1;
    rawlen = (size_t)(p->text + end - 1 - raw);

    /* escapes always shrink the text, so equal lengths mean none */
    if (rawlen != len) {
        for (i = 0; i + 1 < rawlen; i++) {
            if (raw[i] != '\\')
                continue;
            if (raw[i + 1] != 'u') {
                i++;
                continue;
            }
            if (i + 6 > rawlen)
                break;
            cp = json_hex4(raw + i + 2);
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                goto unpaired;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 12 > rawlen || raw[i + 6] != '\\' || raw[i + 7] != 'u')
                    goto unpaired;
                cp = json_hex4(raw + i + 8);
                if (cp < 0xDC00 || cp > 0xDFFF)
                    goto unpaired;
                i += 6;
            }
            i += 5;
        }
    }

    if (memchr(s, '\0', len) != NULL) {
        json_fail(p, "\\u0000 in string at byte %zu is not supported", at);
        return 0;
    }
    for (i = 0; i < len; i += (size_t)k) {
        if (s[i] < 0x80) {
            k = 1;
            continue;
        }
        k = omni_utf8_seq((const char *)s + i, len - i);
        if (k < 0) {
            json_fail(p, "invalid UTF-8 in string at byte %zu", at);
            return 0;
        }
    }
    return 1;

unpaired:
    json_fail(p, "invalid \\u escape at byte %zu: unpaired surrogate", at);
    return 0;
}

static int json_on_null(void *ctx)
{
    json_parser_t *p = ctx;
    int ok = json_add(p, json_node(p, OMNI_JSON_NULL, 0));

    p->mark = yajl_get_bytes_consumed(p->yajl);
    return ok;
}

static int json_on_boolean(void *ctx, int b)
{
    json_parser_t *p = ctx;
    omni_json_t *v = json_node(p, OMNI_JSON_BOOL, 0);

    if (v != NULL)
        v->u.boolean = b ? 1 : 0;
    p->mark = yajl_get_bytes_consumed(p->yajl);
    return json_add(p, v);
}

/* yajl has checked the grammar: -?digits(.digits)?([eE][+-]?digits)? */
static int json_on_number(void *ctx, const char *s, size_t len)
{
    json_parser_t *p = ctx;
    omni_json_t *v = json_node(p, OMNI_JSON_NUMBER, len + 1);
    const char *c = s, *e = s + len;
    uint64_t mag = 0, limit;
    char *text;
    int digit, neg = s[0] == '-';

    p->mark = yajl_get_bytes_consumed(p->yajl);
    if (v == NULL)
        return 0;
    text = (char *)(v + 1);
    memcpy(text, s, len);
    text[len] = '\0';
    v->u.num.text = text;

    v->u.num.is_int = memchr(s, '.', len) == NULL && memchr(s, 'e', len) == NULL
                      && memchr(s, 'E', len) == NULL;
    if (v->u.num.is_int) {
        c += neg;
        limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (; c < e; c++) {
            digit = *c - '0';
            if (mag > (limit - (uint64_t)digit) / 10) {
                v->u.num.is_int = 0;
                break;
            }
            mag = mag * 10 + (uint64_t)digit;
        }
    }
    if (v->u.num.is_int) {
        /* -(2^63) has no positive counterpart in int64 */
        v->u.num.i = neg && mag > 0 ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
        v->u.num.d = (double)v->u.num.i;
    } else {
        /* the worker never calls setlocale(), so '.' is the radix */
        v->u.num.d = strtod(text, NULL);
    }
    return json_add(p, v);
}

static int json_on_string(void *ctx, const unsigned char *s, size_t len)
{
    json_parser_t *p = ctx;
    omni_json_t *v;
    char *str;

    if (!json_check_string(p, s, len))
        return 0;
    p->mark = yajl_get_bytes_consumed(p->yajl);
    v = json_node(p, OMNI_JSON_STRING, len + 1);
    if (v == NULL)
        return 0;
    str = (char *)(v + 1);
    memcpy(str, s, len);
    str[len] = '\0';
    v->u.str.ptr = str;
    v->u.str.len = len;
    return json_add(p, v);
}

static int json_on_key(void *ctx, const unsigned char *s, size_t len)
{
    json_parser_t *p = ctx;

    if (!json_check_string(p, s, len))
        return 0;
    p->mark = yajl_get_bytes_consumed(p->yajl);
    p->key = omni_arena_strndup(p->arena, (const char *)s, len);
    if (p->key == NULL) {
        json_fail(p, "out of memory");
        return 0;
    }
    return 1;
}

static int json_open(json_parser_t *p, omni_json_type_t type)
{
    omni_json_t *v;
    json_frame_t *frames;
    int cap;

    p->mark = yajl_get_bytes_consumed(p->yajl);
    if (p->depth >= p->max_depth) {
        json_fail(p, "JSON nesting deeper than %d levels", p->max_depth);
        return 0;
    }
    v = json_node(p, type, 0);
    if (!json_add(p, v))
        return 0;
    if (p->depth == p->frames_cap) {
        cap = p->frames_cap ? p->frames_cap * 2 : 16;
        frames = realloc(p->frames, (size_t)cap * sizeof(*frames));
        if (frames == NULL) {
            json_fail(p, "out of memory");
            return 0;
        }
        p->frames = frames;
        p->frames_cap = cap;
    }
    p->frames[p->depth].node = v;
    p->frames[p->depth].base = p->nslots;
    p->depth++;
    return 1;
}

static int json_on_start_map(void *ctx)
{
    return json_open(ctx, OMNI_JSON_OBJECT);
}

static int json_on_start_array(void *ctx)
{
    return json_open(ctx, OMNI_JSON_ARRAY);
}

static int json_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns the first repeated key, or NULL. Small objects (the usual
 * request body) are checked pairwise; big ones are sorted so a hostile body
 * with 100k keys costs n log n, not n^2. */
static const char *json_duplicate(json_parser_t *p, const char **keys, size_t n)
{
    const char **tmp;
    size_t i, j;

    if (n <= JSON_DUP_LINEAR) {
        for (i = 1; i < n; i++)
            for (j = 0; j < i; j++)
                if (strcmp(keys[i], keys[j]) == 0)
                    return keys[i];
        return NULL;
    }
    if (n > p->scratch_cap) {
        tmp = realloc(p->scratch, n * sizeof(*tmp));
        if (tmp == NULL) {
            json_fail(p, "out of memory");
            return NULL;
        }
        p->scratch = tmp;
        p->scratch_cap = n;
    }
    memcpy(p->scratch, keys, n * sizeof(*keys));
    qsort(p->scratch, n, sizeof(*p->scratch), json_key_cmp);
    for (i = 1; i < n; i++)
        if (strcmp(p->scratch[i], p->scratch[i - 1]) == 0)
            return p->scratch[i];
    return NULL;
}

static int json_on_end(void *ctx)
{
    json_parser_t *p = ctx;
    json_frame_t *f = &p->frames[--p->depth];
    omni_json_t *v = f->node;
    size_t n = p->nslots - f->base;
    json_slot_t *slot;
    char shown[JSON_KEY_SHOWN + 8];
    const char *dup;
    size_t i;

    p->mark = yajl_get_bytes_consumed(p->yajl);
    p->nslots = f->base;
    if (p->depth == 0)
        json_root_done(p);
    if (n == 0)
        return 1;
    slot = p->slots + f->base; /* slots is NULL until a first member */

    if (v->type == OMNI_JSON_ARRAY) {
        v->u.arr.items = omni_arena_alloc(p->arena, n * sizeof(omni_json_t *));
        if (v->u.arr.items == NULL)
            goto nomem;
        for (i = 0; i < n; i++)
            v->u.arr.items[i] = slot[i].value;
        v->u.arr.len = n;
        return 1;
    }

    v->u.obj.keys = omni_arena_alloc(p->arena, n * sizeof(const char *));
    v->u.obj.values = omni_arena_alloc(p->arena, n * sizeof(omni_json_t *));
    if (v->u.obj.keys == NULL || v->u.obj.values == NULL)
        goto nomem;
    for (i = 0; i < n; i++) {
        v->u.obj.keys[i] = slot[i].key;
        v->u.obj.values[i] = slot[i].value;
    }
    v->u.obj.len = n;
    dup = json_duplicate(p, v->u.obj.keys, n);
    if (dup != NULL) {
        json_show_key(shown, sizeof(shown), dup);
        json_fail(p, "duplicate key \"%s\"", shown);
        return 0;
    }
    return !p->failed;

nomem:
    json_fail(p, "out of memory");
    return 0;
}

static const yajl_callbacks json_callbacks = {
    .yajl_null = json_on_null,
    .yajl_boolean = json_on_boolean,
    .yajl_number = json_on_number,
    .yajl_string = json_on_string,
    .yajl_start_map = json_on_start_map,
    .yajl_map_key = json_on_key,
    .yajl_end_map = json_on_end,
    .yajl_start_array = json_on_start_array,
    .yajl_end_array = json_on_end,
};

/* Turns yajl's "parse error: premature EOF\n" into
 * "malformed JSON at byte N: premature EOF". */
static void json_yajl_error(json_parser_t *p, size_t at)
{
    unsigned char *msg;
    const char *what;
    size_t n;

    msg = yajl_get_error(p->yajl, 0, (const unsigned char *)p->text, p->len);
    what = msg ? (const char *)msg : "syntax error";
    if (strncmp(what, "parse error: ", 13) == 0)
        what += 13;
    else if (strncmp(what, "lexical error: ", 15) == 0)
        what += 15;
    n = strcspn(what, "\n");
    json_fail(p, "malformed JSON at byte %zu: %.*s", at, (int)n, what);
    if (msg != NULL)
        yajl_free_error(p->yajl, msg);
}

static int json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Frees the parse-time scaffolding; the tree itself lives in the arena. */
static void json_release(json_parser_t *p)
{
    if (p->yajl != NULL)
        yajl_free(p->yajl);
    free(p->slots);
    free(p->frames);
    free(p->scratch);
}

omni_json_t *omni_json_parse(omni_arena_t *arena, const char *text, size_t len,
    const omni_json_limits_t *limits, char *err, size_t errlen)
{
    json_parser_t p;
    yajl_status st;
    size_t i;

    memset(&p, 0, sizeof(p));
    p.arena = arena;
    p.text = text;
    p.len = len;
    p.err = err;
    p.errlen = errlen;
    p.max_depth = JSON_DEFAULT_DEPTH;
    if (limits != NULL && limits->max_depth > 0)
        p.max_depth = limits->max_depth;
    if (errlen > 0)
        err[0] = '\0';

    if (limits != NULL && limits->max_bytes > 0 && len > limits->max_bytes) {
        json_fail(&p, "JSON body larger than %zu bytes", limits->max_bytes);
        return NULL;
    }
    for (i = 0; i < len; i++)
        if (!json_space(text[i]))
            break;
    if (i == len) {
        json_fail(&p, "empty body");
        return NULL;
    }

    /* yajl's defaults: UTF-8 checked, no comments, a single value (its
     * trailing-garbage check has a hole, closed below) */
    p.yajl = yajl_alloc(&json_callbacks, NULL, &p);
    if (p.yajl == NULL) {
        json_fail(&p, "out of memory");
        goto failed;
    }
    st = yajl_parse(p.yajl, (const unsigned char *)text, len);
    if (st == yajl_status_error) {
        json_yajl_error(&p, yajl_get_bytes_consumed(p.yajl));
        goto failed;
    }
    if (st == yajl_status_ok) {
        /* completion re-parses a lone " ": its byte count is meaningless */
        p.completing = 1;
        st = yajl_complete_parse(p.yajl);
        if (st == yajl_status_error) {
            json_yajl_error(&p, len);
            goto failed;
        }
    }
    if (st != yajl_status_ok || p.failed || p.root == NULL) {
        json_fail(&p, "malformed JSON: incomplete value");
        goto failed;
    }
    /* yajl only reports trailing garbage that lexes as a whole token: an
     * unterminated string after the value ({} "x) passes as "need more" */
    for (i = p.root_end; i < len; i++) {
        if (!json_space(text[i])) {
            json_fail(&p, "malformed JSON at byte %zu: trailing garbage", i);
            goto failed;
        }
    }
    json_release(&p);
    return p.root;

failed:
    json_release(&p);
    return NULL;
}

const omni_json_t *omni_json_get(const omni_json_t *obj, const char *key)
{
    size_t i;

    if (obj == NULL || obj->type != OMNI_JSON_OBJECT)
        return NULL;
    for (i = 0; i < obj->u.obj.len; i++)
        if (strcmp(obj->u.obj.keys[i], key) == 0)
            return obj->u.obj.values[i];
    return NULL;
}

const char *omni_json_string(const omni_json_t *v)
{
    if (v == NULL || v->type != OMNI_JSON_STRING)
        return NULL;
    return v->u.str.ptr;
}

int omni_json_int(const omni_json_t *v, int64_t *out)
{
    if (v == NULL || v->type != OMNI_JSON_NUMBER || !v->u.num.is_int)
        return 0;
    *out = v->u.num.i;
    return 1;
}

int omni_json_double(const omni_json_t *v, double *out)
{
    if (v == NULL || v->type != OMNI_JSON_NUMBER)
        return 0;
    *out = v->u.num.d;
    return 1;
}

int omni_json_bool(const omni_json_t *v, int *out)
{
    if (v == NULL || v->type != OMNI_JSON_BOOL)
        return 0;
    *out = v->u.boolean;
    return 1;
}

int omni_utf8_seq(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char lo = 0x80, hi = 0xBF;
    int need, k;

    /* Unicode table 3-7: the second byte's range depends on the first */
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        need = 1;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        need = 2;
        if (u[0] == 0xE0)
            lo = 0xA0;
        else if (u[0] == 0xED)
            hi = 0x9F;
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        need = 3;
        if (u[0] == 0xF0)
            lo = 0x90;
        else if (u[0] == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    for (k = 1; k <= need; k++) {
        if ((size_t)k >= len || u[k] < lo || u[k] > hi)
            return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

static void json_out_flush(json_out_t *o)
{
    if (o->n > 0 && !o->failed && evbuffer_add(o->out, o->buf, o->n) != 0)
        o->failed = 1;
    o->n = 0;
}

static void json_out_add(json_out_t *o, const void *data, size_t len)
{
    if (len > sizeof(o->buf) - o->n) {
        json_out_flush(o);
        if (len > sizeof(o->buf) / 2) {
            if (!o->failed && evbuffer_add(o->out, data, len) != 0)
                o->failed = 1;
            return;
        }
    }
    memcpy(o->buf + o->n, data, len);
    o->n += len;
}

static void json_out_string(json_out_t *o, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    char esc[6];
    int k;

    json_out_add(o, "\"", 1);
    while (i < len) {
        if (u[i] >= 0x20 && u[i] < 0x80 && u[i] != '"' && u[i] != '\\') {
            i++;
            continue;
        }
        if (u[i] >= 0x80) {
            k = omni_utf8_seq(s + i, len - i);
            if (k > 0) {
                i += (size_t)k;
                continue;
            }
            json_out_add(o, s + run, i - run);
            json_out_add(o, "\xEF\xBF\xBD", 3);
            i += (size_t)-k;
            run = i;
            continue;
        }
        json_out_add(o, s + run, i - run);
        json_out_add(o, esc, json_escape(u[i], esc));
        i++;
        run = i;
    }
    json_out_add(o, s + run, i - run);
    json_out_add(o, "\"", 1);
}

static void json_out_number(json_out_t *o, const omni_json_t *v)
{
    char buf[32];
    int n;

    if (v->u.num.text != NULL) {
        json_out_add(o, v->u.num.text, strlen(v->u.num.text));
        return;
    }
    if (v->u.num.is_int)
        n = snprintf(buf, sizeof(buf), "%" PRId64, v->u.num.i);
    else if (isfinite(v->u.num.d))
        n = snprintf(buf, sizeof(buf), "%.17g", v->u.num.d);
    else
        n = snprintf(buf, sizeof(buf), "null"); /* JSON has no inf/nan */
    json_out_add(o, buf, (size_t)n);
}

/* Recursion is bounded by the parser's depth limit for parsed trees. */
static void json_out_value(json_out_t *o, const omni_json_t *v)
{
    size_t i;

    if (v == NULL) {
        json_out_add(o, "null", 4);
        return;
    }
    switch (v->type) {
    case OMNI_JSON_NULL:
        json_out_add(o, "null", 4);
        break;
    case OMNI_JSON_BOOL:
        if (v->u.boolean)
            json_out_add(o, "true", 4);
        else
            json_out_add(o, "false", 5);
        break;
    case OMNI_JSON_NUMBER:
        json_out_number(o, v);
        break;
    case OMNI_JSON_STRING:
        json_out_string(o, v->u.str.ptr, v->u.str.len);
        break;
    case OMNI_JSON_ARRAY:
        json_out_add(o, "[", 1);
        for (i = 0; i < v->u.arr.len; i++) {
            if (i > 0)
                json_out_add(o, ",", 1);
            json_out_value(o, v->u.arr.items[i]);
        }
        json_out_add(o, "]", 1);
        break;
    case OMNI_JSON_OBJECT:
        json_out_add(o, "{", 1);
        for (i = 0; i < v->u.obj.len; i++) {
            if (i > 0)
                json_out_add(o, ",", 1);
            json_out_string(o, v->u.obj.keys[i], strlen(v->u.obj.keys[i]));
            json_out_add(o, ":", 1);
            json_out_value(o, v->u.obj.values[i]);
        }
        json_out_add(o, "}", 1);
        break;
    }
}

int omni_json_put_string(struct evbuffer *out, const char *s, size_t len)
{
    json_out_t o;

    o.out = out;
    o.n = 0;
    o.failed = 0;
    json_out_string(&o, s, len);
    json_out_flush(&o);
    return o.failed ? -1 : 0;
}

int omni_json_write(struct evbuffer *out, const omni_json_t *v)
{
    json_out_t o;

    o.out = out;
    o.n = 0;
    o.failed = 0;
    json_out_value(&o, v);
    json_out_flush(&o);
    return o.failed ? -1 : 0;
}
