/* fuzz_json.c: libFuzzer target for the JSON parser and writer.
 *
 * Properties checked on every input:
 * - parsing never crashes; a failure always leaves a one-line reason;
 * - a parsed tree written out parses again to an equal tree;
 * - the parser finds the first unpaired \u surrogate exactly where an
 *   independent scan of the raw text does (it locates raw strings from
 *   yajl's byte count, which a mistake would silently misplace);
 * - omni_json_put_string() of arbitrary bytes is a valid JSON string that
 *   decodes back to the input when the input was valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/arena.h"
#include "lib/json.h"

static const omni_json_limits_t limits = {1048576, 32};

static int tree_equal(const omni_json_t *a, const omni_json_t *b)
{
    size_t i;

    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case OMNI_JSON_NULL:
        return 1;
    case OMNI_JSON_BOOL:
        return a->u.boolean == b->u.boolean;
    case OMNI_JSON_NUMBER:
        return strcmp(a->u.num.text, b->u.num.text) == 0
               && a->u.num.is_int == b->u.num.is_int
               && (!a->u.num.is_int || a->u.num.i == b->u.num.i);
    case OMNI_JSON_STRING:
        return a->u.str.len == b->u.str.len
               && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
    case OMNI_JSON_ARRAY:
        if (a->u.arr.len != b->u.arr.len)
            return 0;
        for (i = 0; i < a->u.arr.len; i++)
            if (!tree_equal(a->u.arr.items[i], b->u.arr.items[i]))
                return 0;
        return 1;
    case OMNI_JSON_OBJECT:
        if (a->u.obj.len != b->u.obj.len)
            return 0;
        for (i = 0; i < a->u.obj.len; i++)
            if (strcmp(a->u.obj.keys[i], b->u.obj.keys[i]) != 0
                || !tree_equal(a->u.obj.values[i], b->u.obj.values[i]))
                return 0;
        return 1;
    }
    return 0;
}

static int valid_utf8(const char *s, size_t len)
{
    size_t i = 0;
    int k;

    while (i < len) {
        k = omni_utf8_seq(s + i, len - i);
        if (k < 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

static int hex4(const uint8_t *h, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        if (h[i] >= '0' && h[i] <= '9')
            v = v * 16 + (unsigned)(h[i] - '0');
        else if ((h[i] | 0x20) >= 'a' && (h[i] | 0x20) <= 'f')
            v = v * 16 + (unsigned)((h[i] | 0x20) - 'a' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* Offset of the opening quote of the first string holding an unpaired
 * surrogate escape, or -1. Only meaningful on text yajl lexed cleanly up to
 * that string. */
static long first_unpaired(const uint8_t *s, size_t len)
{
    size_t i = 0, open = 0;
    unsigned cp, lo;
    int in = 0;

    while (i < len) {
        if (!in) {
            if (s[i] == '"') {
                in = 1;
                open = i;
            }
            i++;
            continue;
        }
        if (s[i] == '"') {
            in = 0;
            i++;
            continue;
        }
        if (s[i] != '\\' || i + 1 >= len) {
            i++;
            continue;
        }
        if (s[i + 1] != 'u' || i + 6 > len || !hex4(s + i + 2, &cp)) {
            i += 2;
            continue;
        }
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return (long)open;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 6 > len || s[i] != '\\' || s[i + 1] != 'u'
                || !hex4(s + i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return (long)open;
            i += 6;
        }
    }
    return -1;
}

static void check_unpaired(
    const uint8_t *data, size_t size, const omni_json_t *v, const char *err)
{
    static const char prefix[] = "invalid \\u escape at byte ";
    long at = first_unpaired(data, size);

    if (v != NULL && at != -1)
        abort();
    if (v == NULL && strncmp(err, prefix, sizeof(prefix) - 1) == 0
        && strtol(err + sizeof(prefix) - 1, NULL, 10) != at)
        abort();
    /* a duplicate-key message quotes the key, which may say anything */
    if (v == NULL && strstr(err, "internal error") != NULL
        && strncmp(err, "duplicate key", 13) != 0)
        abort();
}

static void check_round_trip(omni_arena_t *arena, const omni_json_t *v)
{
    struct evbuffer *out = evbuffer_new();
    const omni_json_t *again;
    char err[256];
    size_t len;
    char *text;

    if (out == NULL || omni_json_write(out, v) != 0)
        abort();
    len = evbuffer_get_length(out);
    text = (char *)evbuffer_pullup(out, -1);
    again = omni_json_parse(arena, text, len, &limits, err, sizeof(err));
    if (again == NULL || !tree_equal(v, again))
        abort();
    evbuffer_free(out);
}

static void check_put_string(omni_arena_t *arena, const char *s, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    const omni_json_t *v;
    char err[256];
    size_t n;
    char *text;

    if (out == NULL || omni_json_put_string(out, s, len) != 0)
        abort();
    n = evbuffer_get_length(out);
    text = (char *)evbuffer_pullup(out, -1);
    v = omni_json_parse(arena, text, n, NULL, err, sizeof(err));
    /* the writer escapes NUL as \u0000, which the parser refuses by policy */
    if (memchr(s, '\0', len) == NULL) {
        if (v == NULL || v->type != OMNI_JSON_STRING)
            abort();
        if (valid_utf8(s, len)
            && (v->u.str.len != len || memcmp(v->u.str.ptr, s, len) != 0))
            abort();
    }
    evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    omni_arena_t arena;
    omni_json_t *v;
    char err[256];

    /* small blocks exercise the arena's block boundaries */
    omni_arena_init(&arena, 512);
    memset(err, 'x', sizeof(err));
    v = omni_json_parse(&arena, text, size, &limits, err, sizeof(err));
    check_unpaired(data, size, v, err);
    if (v != NULL)
        check_round_trip(&arena, v);
    else if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0'
             || strchr(err, '\n') != NULL)
        abort();
    check_put_string(&arena, text, size);
    omni_arena_free(&arena);
    return 0;
}
