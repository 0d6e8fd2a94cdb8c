/* test_json.c: bounded parsing, number classification and JSON output. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "lib/json.h"
#include "unit.h"

static char err[256];

static omni_json_t *parse_n(omni_arena_t *a, const char *s, size_t len)
{
    omni_json_limits_t lim = {1048576, 32};

    return omni_json_parse(a, s, len, &lim, err, sizeof(err));
}

static omni_json_t *parse(omni_arena_t *a, const char *s)
{
    return parse_n(a, s, strlen(s));
}

/* Drains buf into out as a C string; out is big enough in every test. */
static const char *drain(struct evbuffer *buf, char *out, size_t size)
{
    size_t n = evbuffer_get_length(buf);

    if (n >= size)
        n = size - 1;
    evbuffer_remove(buf, out, n);
    out[n] = '\0';
    return out;
}

static const char *write_tree(const omni_json_t *v, char *out, size_t size)
{
    struct evbuffer *buf = evbuffer_new();

    if (buf == NULL || omni_json_write(buf, v) != 0)
        return NULL;
    drain(buf, out, size);
    evbuffer_free(buf);
    return out;
}

static const char *put_string(const char *s, size_t len, char *out, size_t size)
{
    struct evbuffer *buf = evbuffer_new();

    if (buf == NULL || omni_json_put_string(buf, s, len) != 0)
        return NULL;
    drain(buf, out, size);
    evbuffer_free(buf);
    return out;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_parses_every_scalar_type(void)
{
    omni_arena_t a;
    omni_json_t *v;
    int b = -1;

    omni_arena_init(&a, 0);
    v = parse(&a, "null");
    CHECK(v != NULL && v->type == OMNI_JSON_NULL);
    v = parse(&a, "true");
    CHECK(omni_json_bool(v, &b));
    CHECK_EQ_INT(b, 1);
    v = parse(&a, "false");
    CHECK(omni_json_bool(v, &b));
    CHECK_EQ_INT(b, 0);
    v = parse(&a, "42");
    CHECK(v != NULL && v->type == OMNI_JSON_NUMBER);
    CHECK_STR_EQ(v->u.num.text, "42");
    v = parse(&a, "\"hi\"");
    CHECK_STR_EQ(omni_json_string(v), "hi");
    CHECK_EQ_INT(v->u.str.len, 2);
    omni_arena_free(&a);
}

static void test_parses_nested_objects_and_arrays(void)
{
    omni_arena_t a;
    omni_json_t *v;
    const omni_json_t *m;
    int64_t i = 0;

    omni_arena_init(&a, 0);
    v = parse(&a, "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\","
                  "\"content\":\"hi\"},[],{}],\"n\":2,\"stream\":false}");
    CHECK(v != NULL);
    CHECK(v->type == OMNI_JSON_OBJECT);
    CHECK_EQ_INT(v->u.obj.len, 4);
    CHECK_STR_EQ(v->u.obj.keys[0], "model");
    CHECK_STR_EQ(v->u.obj.keys[3], "stream");
    CHECK_STR_EQ(omni_json_string(omni_json_get(v, "model")), "gpt");
    CHECK(omni_json_int(omni_json_get(v, "n"), &i));
    CHECK_EQ_INT(i, 2);
    m = omni_json_get(v, "messages");
    CHECK(m != NULL && m->type == OMNI_JSON_ARRAY);
    CHECK_EQ_INT(m->u.arr.len, 3);
    CHECK_STR_EQ(
        omni_json_string(omni_json_get(m->u.arr.items[0], "content")), "hi");
    CHECK(m->u.arr.items[1]->type == OMNI_JSON_ARRAY);
    CHECK_EQ_INT(m->u.arr.items[1]->u.arr.len, 0);
    CHECK(m->u.arr.items[2]->type == OMNI_JSON_OBJECT);
    CHECK_EQ_INT(m->u.arr.items[2]->u.obj.len, 0);
    CHECK(omni_json_get(v, "missing") == NULL);
    omni_arena_free(&a);
}

static void test_empty_containers_at_the_top_level(void)
{
    omni_arena_t a;
    omni_json_t *v;

    omni_arena_init(&a, 0);
    v = parse(&a, "[]");
    CHECK(v != NULL && v->type == OMNI_JSON_ARRAY);
    CHECK_EQ_INT(v->u.arr.len, 0);
    v = parse(&a, "{}");
    CHECK(v != NULL && v->type == OMNI_JSON_OBJECT);
    CHECK_EQ_INT(v->u.obj.len, 0);
    omni_arena_free(&a);
}

static void test_whitespace_around_the_value_is_accepted(void)
{
    omni_arena_t a;

    omni_arena_init(&a, 0);
    CHECK(parse(&a, " \r\n\t[ 1 , { \"a\" : 2 } ]\n ") != NULL);
    CHECK(parse(&a, "  7  ") != NULL);
    omni_arena_free(&a);
}

static void test_round_trip_is_compact_and_keeps_order_and_number_text(void)
{
    omni_arena_t a;
    omni_json_t *v;
    char out[512];

    omni_arena_init(&a, 0);
    v = parse(&a, "{ \"b\" : [1, 2.50, -0, 1E3, true,false,null, "
                  "{\"x\":\"y\"}], \"a\" : {} , \"c\":[] }");
    CHECK(v != NULL);
    CHECK_STR_EQ(write_tree(v, out, sizeof(out)),
        "{\"b\":[1,2.50,-0,1E3,true,false,null,{\"x\":\"y\"}],\"a\":{},"
        "\"c\":[]}");
    omni_arena_free(&a);
}

static void test_escapes_are_decoded(void)
{
    omni_arena_t a;
    omni_json_t *v;

    omni_arena_init(&a, 0);
    v = parse(&a, "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\"");
    CHECK(v != NULL);
    CHECK_STR_EQ(omni_json_string(v),
        "\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    omni_arena_free(&a);
}

static void test_strings_after_escaped_strings_are_checked_in_place(void)
{
    omni_arena_t a;
    omni_json_t *v;

    /* several escaped strings in a row: each is located in the raw input */
    omni_arena_init(&a, 0);
    v = parse(&a, "[\"a\\\"b\", 12, \"\\u00e9\",{\"k\\n\":\"\\ud83d\\ude00\"},"
                  "true,\"\\u0041\"]");
    CHECK(v != NULL);
    CHECK_STR_EQ(omni_json_string(v->u.arr.items[0]), "a\"b");
    CHECK_STR_EQ(omni_json_string(v->u.arr.items[2]), "\xc3\xa9");
    CHECK_STR_EQ(omni_json_string(omni_json_get(v->u.arr.items[3], "k\n")),
        "\xf0\x9f\x98\x80");
    CHECK_STR_EQ(omni_json_string(v->u.arr.items[5]), "A");
    v = parse(&a, "[\"\\u0041\", \"\\ud800\"]");
    CHECK(v == NULL);
    CHECK(starts_with(err, "invalid \\u escape at byte 11"));
    omni_arena_free(&a);
}

static void test_escaped_key_is_found_by_its_decoded_text(void)
{
    omni_arena_t a;
    omni_json_t *v;
    int64_t i = 0;

    omni_arena_init(&a, 0);
    v = parse(&a, "{\"caf\\u00e9\":1}");
    CHECK(omni_json_int(omni_json_get(v, "caf\xc3\xa9"), &i));
    CHECK_EQ_INT(i, 1);
    omni_arena_free(&a);
}

static void test_invalid_utf8_is_rejected(void)
{
    static const char *const bad[] = {
        "\"\xff\"",                 /* never valid */
        "\"\xc0\x80\"",             /* overlong NUL */
        "\"\xe0\x80\xaf\"",         /* overlong '/' */
        "\"\xed\xa0\x80\"",         /* UTF-16 surrogate */
        "\"\xf4\x90\x80\x80\"",     /* above U+10FFFF */
        "\"\xf8\x88\x80\x80\x80\"", /* five-byte form */
        "\"\xe2\x82\"",             /* truncated */
        "{\"\xc0\xaf\":1}",         /* in a key */
    };
    omni_arena_t a;
    size_t i;

    omni_arena_init(&a, 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(parse(&a, bad[i]) == NULL);
        CHECK(strstr(err, "UTF") != NULL);
    }
    CHECK(parse(&a, "\"\xc0\x80\"") == NULL);
    CHECK_STR_EQ(err, "invalid UTF-8 in string at byte 0");
    omni_arena_free(&a);
}

static void test_unpaired_surrogate_escapes_are_rejected(void)
{
    static const char *const bad[] = {
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"x\\ud800y\"",
        "\"\\ud800\\u0041\"", /* yajl would silently make U+10041 */
        "\"\\ud800\\ud800\"",
        "\"\\ude00\\ud83d\"",
        "{\"\\udbff\":1}",
        "\"\\ud800\\n\"",
    };
    omni_arena_t a;
    size_t i;

    omni_arena_init(&a, 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(parse(&a, bad[i]) == NULL);
        CHECK(starts_with(err, "invalid \\u escape at byte "));
    }
    CHECK(parse(&a, "\"\\uD83D\\uDE00 \\\\ud800\"") != NULL);
    omni_arena_free(&a);
}

static void test_nul_character_is_rejected(void)
{
    omni_arena_t a;

    omni_arena_init(&a, 0);
    CHECK(parse(&a, "\"a\\u0000b\"") == NULL);
    CHECK_STR_EQ(err, "\\u0000 in string at byte 0 is not supported");
    CHECK(parse(&a, "{\"a\\u0000\":1}") == NULL);
    /* a raw NUL is a control character: yajl rejects it */
    CHECK(parse_n(&a, "\"a\0b\"", 5) == NULL);
    CHECK(starts_with(err, "malformed JSON at byte "));
    omni_arena_free(&a);
}

/* depth arrays, each holding the next, around a 0 */
static char *nested(size_t depth, char open, char close)
{
    char *s = malloc(2 * depth + 2);
    size_t i;

    if (s == NULL)
        return NULL;
    for (i = 0; i < depth; i++) {
        s[i] = open;
        s[depth + 1 + i] = close;
    }
    s[depth] = '0';
    s[2 * depth + 1] = '\0';
    return s;
}

static void test_depth_exactly_at_the_limit_is_accepted(void)
{
    omni_arena_t a;
    char *s = nested(32, '[', ']');

    CHECK(s != NULL);
    omni_arena_init(&a, 0);
    CHECK(parse(&a, s) != NULL);
    omni_arena_free(&a);
    free(s);
}

static void test_depth_beyond_the_limit_is_rejected(void)
{
    omni_arena_t a;
    char *s = nested(33, '[', ']');
    const char *obj = "{\"a\":{\"a\":{\"a\":1}}}";
    omni_json_limits_t two = {0, 2};

    CHECK(s != NULL);
    omni_arena_init(&a, 0);
    CHECK(parse(&a, s) == NULL);
    CHECK_STR_EQ(err, "JSON nesting deeper than 32 levels");
    CHECK(
        omni_json_parse(&a, obj, strlen(obj), &two, err, sizeof(err)) == NULL);
    CHECK_STR_EQ(err, "JSON nesting deeper than 2 levels");
    omni_arena_free(&a);
    free(s);
}

static void test_default_depth_is_64_and_huge_nesting_is_cheap(void)
{
    omni_arena_t a;
    char *ok = nested(64, '[', ']');
    char *deep = nested(1000000, '[', ']');
    omni_json_limits_t dflt = {0, 0};

    CHECK(ok != NULL && deep != NULL);
    omni_arena_init(&a, 0);
    CHECK(omni_json_parse(&a, ok, strlen(ok), &dflt, err, sizeof(err)));
    CHECK(omni_json_parse(&a, ok, strlen(ok), NULL, err, sizeof(err)));
    CHECK(!omni_json_parse(&a, deep, strlen(deep), NULL, err, sizeof(err)));
    CHECK_STR_EQ(err, "JSON nesting deeper than 64 levels");
    omni_arena_free(&a);
    free(ok);
    free(deep);
}

static void test_size_limit_is_checked_before_parsing(void)
{
    omni_arena_t a;
    omni_json_limits_t ten = {10, 0};
    size_t big = 1048577;
    char *s = malloc(big);

    CHECK(s != NULL);
    omni_arena_init(&a, 0);
    CHECK(omni_json_parse(&a, "[1,2,3,45]", 10, &ten, err, sizeof(err)));
    CHECK(!omni_json_parse(&a, "[1,2,3,456]", 11, &ten, err, sizeof(err)));
    CHECK_STR_EQ(err, "JSON body larger than 10 bytes");
    memset(s, ' ', big);
    CHECK(parse_n(&a, s, big) == NULL);
    CHECK_STR_EQ(err, "JSON body larger than 1048576 bytes");
    omni_arena_free(&a);
    free(s);
}

static void test_duplicate_keys_are_rejected(void)
{
    omni_arena_t a;

    omni_arena_init(&a, 0);
    CHECK(parse(&a, "{\"a\":1,\"a\":2}") == NULL);
    CHECK_STR_EQ(err, "duplicate key \"a\"");
    CHECK(parse(&a, "{\"x\":{\"role\":\"user\",\"role\":\"admin\"}}") == NULL);
    CHECK_STR_EQ(err, "duplicate key \"role\"");
    /* the same text spelled with an escape is the same key */
    CHECK(parse(&a, "{\"ab\":1,\"a\\u0062\":2}") == NULL);
    CHECK_STR_EQ(err, "duplicate key \"ab\"");
    /* the message stays one line whatever the key holds */
    CHECK(parse(&a, "{\"a\\n\\\"\\u0001\":1,\"a\\n\\\"\\u0001\":2}") == NULL);
    CHECK_STR_EQ(err, "duplicate key \"a\\n\\\"\\u0001\"");
    /* the same key in different objects is fine */
    CHECK(parse(&a, "{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}]}") != NULL);
    omni_arena_free(&a);
}

static void test_duplicate_key_in_a_large_object_is_found(void)
{
    omni_arena_t a;
    size_t n = 1000, i, off = 0, size = n * 16 + 32;
    char *s = malloc(size);

    CHECK(s != NULL);
    s[off++] = '{';
    for (i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, size - off, "\"k%zu\":%zu,", i, i);
    off += (size_t)snprintf(s + off, size - off, "\"k500\":0}");
    omni_arena_init(&a, 0);
    CHECK(parse_n(&a, s, off) == NULL);
    CHECK_STR_EQ(err, "duplicate key \"k500\"");
    /* without the repeat it parses */
    off -= strlen("\"k500\":0}");
    s[off - 1] = '}';
    CHECK(parse_n(&a, s, off) != NULL);
    omni_arena_free(&a);
    free(s);
}

static void test_long_duplicate_key_is_clipped_in_the_message(void)
{
    omni_arena_t a;
    char s[1200], key[501];

    memset(key, 'k', 500);
    key[500] = '\0';
    snprintf(s, sizeof(s), "{\"%s\":1,\"%s\":2}", key, key);
    omni_arena_init(&a, 0);
    CHECK(parse(&a, s) == NULL);
    CHECK(starts_with(err, "duplicate key \"kkkk"));
    CHECK(strlen(err) < 100);
    omni_arena_free(&a);
}

static void test_trailing_garbage_is_rejected(void)
{
    static const char *const bad[] = {
        "[1] x",
        "{} {}",
        "1 2",
        "[1]]",
        "\"a\"\"b\"",
        "null,",
        "01",
    };
    omni_arena_t a;
    size_t i;

    omni_arena_init(&a, 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(parse(&a, bad[i]) == NULL);
        CHECK(starts_with(err, "malformed JSON at byte "));
    }
    CHECK(parse(&a, "[1] x") == NULL);
    CHECK_STR_EQ(err, "malformed JSON at byte 5: trailing garbage");
    /* yajl 2.1 alone accepts these: the garbage never becomes a token */
    CHECK(parse(&a, "{} \"x") == NULL);
    CHECK_STR_EQ(err, "malformed JSON at byte 3: trailing garbage");
    CHECK(parse(&a, "2\"@\\ud820") == NULL);
    CHECK_STR_EQ(err, "malformed JSON at byte 1: trailing garbage");
    CHECK(parse(&a, "[1]\n\"unterminated") == NULL);
    CHECK(parse(&a, "\"a\" \"b") == NULL);
    CHECK(parse(&a, "7") != NULL);
    CHECK(parse(&a, "7 \n") != NULL);
    omni_arena_free(&a);
}

static void test_empty_body_is_rejected(void)
{
    omni_arena_t a;

    omni_arena_init(&a, 0);
    CHECK(parse(&a, "") == NULL);
    CHECK_STR_EQ(err, "empty body");
    CHECK(parse(&a, " \r\n\t ") == NULL);
    CHECK_STR_EQ(err, "empty body");
    omni_arena_free(&a);
}

static void test_malformed_json_names_the_byte(void)
{
    static const char *const bad[] = {
        "[1,]",
        "{\"a\" 1}",
        "{a:1}",
        "tru",
        "'a'",
        "/* c */ 1",
        "NaN",
        "[1,",
        "{\"a\":",
        "\"open",
        "-",
        "1.",
        ".5",
        "+1",
        "[1 2]",
        "{,}",
        "\"\\x\"",
        "\"\\u12\"",
        "\"tab\there\"",
    };
    omni_arena_t a;
    size_t i;

    omni_arena_init(&a, 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(parse(&a, bad[i]) == NULL);
        CHECK(starts_with(err, "malformed JSON at byte "));
        CHECK(strchr(err, '\n') == NULL);
    }
    CHECK(parse(&a, "[1,") == NULL);
    CHECK_STR_EQ(err, "malformed JSON at byte 3: premature EOF");
    omni_arena_free(&a);
}

static void test_error_buffer_is_always_terminated(void)
{
    omni_arena_t a;
    char small[8];

    omni_arena_init(&a, 0);
    memset(small, 'x', sizeof(small));
    CHECK(omni_json_parse(&a, "[1,]", 4, NULL, small, sizeof(small)) == NULL);
    CHECK(strlen(small) == sizeof(small) - 1);
    CHECK(omni_json_parse(&a, "[1,]", 4, NULL, NULL, 0) == NULL);
    CHECK(omni_json_parse(&a, "[1]", 3, NULL, small, sizeof(small)) != NULL);
    CHECK_STR_EQ(small, "");
    omni_arena_free(&a);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec)
           + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_huge_array_and_object_parse_in_linear_time(void)
{
    omni_arena_t a;
    size_t n = 100000, i, off = 0, size = n * 24 + 16;
    char *arr = malloc(size), *obj = malloc(size);
    struct timespec t0;
    omni_json_t *v;
    int64_t last = 0;

    CHECK(arr != NULL && obj != NULL);
    arr[off++] = '[';
    for (i = 0; i < n; i++)
        off += (size_t)snprintf(arr + off, size - off, "%zu,", i);
    arr[off - 1] = ']';
    omni_arena_init(&a, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    v = parse_n(&a, arr, off);
    CHECK(v != NULL && v->type == OMNI_JSON_ARRAY);
    CHECK_EQ_INT(v->u.arr.len, n);
    CHECK(omni_json_int(v->u.arr.items[n - 1], &last));
    CHECK_EQ_INT(last, n - 1);

    off = 0;
    obj[off++] = '{';
    for (i = 0; i < n; i++)
        off += (size_t)snprintf(obj + off, size - off, "\"%zu\":%zu,", i, i);
    obj[off - 1] = '}';
    /* 1.3 MB: over the 1 MiB limit parse_n() applies */
    v = omni_json_parse(&a, obj, off, NULL, err, sizeof(err));
    CHECK(v != NULL && v->type == OMNI_JSON_OBJECT);
    CHECK_EQ_INT(v->u.obj.len, n);
    /* quadratic growth or key checks would take minutes here, even
     * without sanitizers; linear work takes well under a second */
    CHECK(seconds_since(&t0) < 5.0);
    omni_arena_free(&a);
    free(arr);
    free(obj);
}

static void test_number_classification(void)
{
    static const struct {
        const char *text;
        int is_int;
        int64_t i;
        double d;
    } cases[] = {
        {"0", 1, 0, 0.0},
        {"-0", 1, 0, 0.0},
        {"17", 1, 17, 17.0},
        {"-17", 1, -17, -17.0},
        {"9223372036854775807", 1, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", 0, 0, 9223372036854775808.0},
        {"-9223372036854775809", 0, 0, -9223372036854775809.0},
        {"99999999999999999999999", 0, 0, 1e23},
        {"1.0", 0, 0, 1.0},
        {"1e2", 0, 0, 100.0},
        {"1E-2", 0, 0, 0.01},
        {"-2.5e+3", 0, 0, -2500.0},
    };
    omni_arena_t a;
    omni_json_t *v;
    int64_t i;
    double d;
    size_t k;

    omni_arena_init(&a, 0);
    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        v = parse(&a, cases[k].text);
        CHECK(v != NULL && v->type == OMNI_JSON_NUMBER);
        CHECK_STR_EQ(v->u.num.text, cases[k].text);
        CHECK_EQ_INT(v->u.num.is_int, cases[k].is_int);
        i = 12345;
        CHECK_EQ_INT(omni_json_int(v, &i), cases[k].is_int);
        CHECK_EQ_INT(i, cases[k].is_int ? cases[k].i : 12345);
        CHECK(omni_json_double(v, &d));
        CHECK(d == cases[k].d);
    }
    /* beyond double range: still a number, text kept for round trips */
    v = parse(&a, "[1e400]");
    CHECK(v != NULL);
    CHECK(isinf(v->u.arr.items[0]->u.num.d));
    CHECK_STR_EQ(v->u.arr.items[0]->u.num.text, "1e400");
    omni_arena_free(&a);
}

static void test_accessors_refuse_other_types(void)
{
    omni_arena_t a;
    omni_json_t *v;
    int64_t i = 7;
    double d = 7;
    int b = 7;

    omni_arena_init(&a, 0);
    v = parse(&a, "[\"1\", 1, true, null]");
    CHECK(v != NULL);
    CHECK(omni_json_string(v->u.arr.items[1]) == NULL);
    CHECK(!omni_json_int(v->u.arr.items[0], &i));
    CHECK(!omni_json_double(v->u.arr.items[2], &d));
    CHECK(!omni_json_bool(v->u.arr.items[1], &b));
    CHECK(!omni_json_bool(v->u.arr.items[3], &b));
    CHECK(i == 7 && d == 7 && b == 7);
    CHECK(omni_json_get(v, "0") == NULL);
    CHECK(omni_json_get(NULL, "a") == NULL);
    CHECK(omni_json_string(NULL) == NULL);
    CHECK(!omni_json_int(NULL, &i));
    omni_arena_free(&a);
}

static void test_writer_escapes_quotes_backslashes_and_controls(void)
{
    char out[256];

    CHECK_STR_EQ(
        put_string("a\"b\\c/d", 7, out, sizeof(out)), "\"a\\\"b\\\\c/d\"");
    CHECK_STR_EQ(
        put_string("\b\f\n\r\t", 5, out, sizeof(out)), "\"\\b\\f\\n\\r\\t\"");
    CHECK_STR_EQ(put_string("\x01\x1f\x7f", 3, out, sizeof(out)),
        "\"\\u0001\\u001f\x7f\"");
    CHECK_STR_EQ(put_string("a\0b", 3, out, sizeof(out)), "\"a\\u0000b\"");
    CHECK_STR_EQ(put_string("", 0, out, sizeof(out)), "\"\"");
}

static void test_writer_passes_valid_utf8_through(void)
{
    const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf";
    char out[64], want[64];

    snprintf(want, sizeof(want), "\"%s\"", s);
    CHECK_STR_EQ(put_string(s, strlen(s), out, sizeof(out)), want);
}

static void test_writer_replaces_invalid_utf8_with_u_fffd(void)
{
    char out[64];

    CHECK_STR_EQ(put_string("a\xff"
                            "b",
                     3, out, sizeof(out)),
        "\"a\xef\xbf\xbd"
        "b\"");
    /* one U+FFFD per maximal ill-formed subpart (Unicode 3.9) */
    CHECK_STR_EQ(
        put_string("\xe2\x82", 2, out, sizeof(out)), "\"\xef\xbf\xbd\"");
    CHECK_STR_EQ(put_string("\xc0\x80", 2, out, sizeof(out)),
        "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR_EQ(put_string("\xed\xa0\x80", 3, out, sizeof(out)),
        "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR_EQ(put_string("\xf4\x90\x80\x80", 4, out, sizeof(out)),
        "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK_STR_EQ(put_string("\xf0\x9f\x98"
                            "!",
                     4, out, sizeof(out)),
        "\"\xef\xbf\xbd!\"");
}

static void test_writer_output_of_any_bytes_parses_back(void)
{
    omni_arena_t a;
    char in[256], out[2048];
    int i;

    /* every byte value except NUL, which the parser refuses by policy */
    for (i = 1; i < 256; i++)
        in[i - 1] = (char)i;
    omni_arena_init(&a, 0);
    CHECK(parse(&a, put_string(in, 255, out, sizeof(out))) != NULL);
    omni_arena_free(&a);
}

static void test_writer_handles_long_strings_across_its_buffer(void)
{
    size_t n = 3000, i;
    char *in = malloc(2 * n + 1), *out = malloc(4 * n), *want = malloc(4 * n);

    CHECK(in != NULL && out != NULL && want != NULL);
    for (i = 0; i < n; i++) {
        in[i] = (char)('a' + i % 26);
        in[n + 1 + i] = i % 100 == 0 ? '\n' : 'z';
    }
    in[n] = '"';
    want[0] = '"';
    memcpy(want + 1, in, n);
    memcpy(want + 1 + n, "\\\"", 2);
    size_t w = n + 3;
    for (i = 0; i < n; i++) {
        if (in[n + 1 + i] == '\n') {
            memcpy(want + w, "\\n", 2);
            w += 2;
        } else {
            want[w++] = 'z';
        }
    }
    want[w++] = '"';
    want[w] = '\0';
    CHECK_STR_EQ(put_string(in, 2 * n + 1, out, 4 * n), want);
    free(in);
    free(out);
    free(want);
}

static void test_write_round_trips_through_the_parser(void)
{
    omni_arena_t a;
    omni_json_t *v;
    char once[512], twice[512];
    const char *doc =
        "{\"q\\\"\":\"line\\nnext \\u00e9 \\ud83d\\ude00 \\u001f\","
        "\"n\":[-1.5e-7,0,9223372036854775808],\"t\":true}";

    omni_arena_init(&a, 0);
    v = parse(&a, doc);
    CHECK(v != NULL);
    CHECK(write_tree(v, once, sizeof(once)) != NULL);
    v = parse(&a, once);
    CHECK(v != NULL);
    CHECK(write_tree(v, twice, sizeof(twice)) != NULL);
    CHECK_STR_EQ(once, twice);
    CHECK_STR_EQ(omni_json_string(omni_json_get(v, "q\"")),
        "line\nnext \xc3\xa9 \xf0\x9f\x98\x80 \x1f");
    omni_arena_free(&a);
}

static void test_write_handles_null_and_hand_built_numbers(void)
{
    omni_json_t n = {.type = OMNI_JSON_NUMBER};
    char out[64];

    CHECK_STR_EQ(write_tree(NULL, out, sizeof(out)), "null");
    n.u.num.is_int = 1;
    n.u.num.i = INT64_MIN;
    CHECK_STR_EQ(write_tree(&n, out, sizeof(out)), "-9223372036854775808");
    n.u.num.is_int = 0;
    n.u.num.d = 0.5;
    CHECK_STR_EQ(write_tree(&n, out, sizeof(out)), "0.5");
    n.u.num.d = INFINITY;
    CHECK_STR_EQ(write_tree(&n, out, sizeof(out)), "null");
}

UNIT_MAIN(UNIT_TEST(test_parses_every_scalar_type),
    UNIT_TEST(test_parses_nested_objects_and_arrays),
    UNIT_TEST(test_empty_containers_at_the_top_level),
    UNIT_TEST(test_whitespace_around_the_value_is_accepted),
    UNIT_TEST(test_round_trip_is_compact_and_keeps_order_and_number_text),
    UNIT_TEST(test_escapes_are_decoded),
    UNIT_TEST(test_strings_after_escaped_strings_are_checked_in_place),
    UNIT_TEST(test_escaped_key_is_found_by_its_decoded_text),
    UNIT_TEST(test_invalid_utf8_is_rejected),
    UNIT_TEST(test_unpaired_surrogate_escapes_are_rejected),
    UNIT_TEST(test_nul_character_is_rejected),
    UNIT_TEST(test_depth_exactly_at_the_limit_is_accepted),
    UNIT_TEST(test_depth_beyond_the_limit_is_rejected),
    UNIT_TEST(test_default_depth_is_64_and_huge_nesting_is_cheap),
    UNIT_TEST(test_size_limit_is_checked_before_parsing),
    UNIT_TEST(test_duplicate_keys_are_rejected),
    UNIT_TEST(test_duplicate_key_in_a_large_object_is_found),
    UNIT_TEST(test_long_duplicate_key_is_clipped_in_the_message),
    UNIT_TEST(test_trailing_garbage_is_rejected),
    UNIT_TEST(test_empty_body_is_rejected),
    UNIT_TEST(test_malformed_json_names_the_byte),
    UNIT_TEST(test_error_buffer_is_always_terminated),
    UNIT_TEST(test_huge_array_and_object_parse_in_linear_time),
    UNIT_TEST(test_number_classification),
    UNIT_TEST(test_accessors_refuse_other_types),
    UNIT_TEST(test_writer_escapes_quotes_backslashes_and_controls),
    UNIT_TEST(test_writer_passes_valid_utf8_through),
    UNIT_TEST(test_writer_replaces_invalid_utf8_with_u_fffd),
    UNIT_TEST(test_writer_output_of_any_bytes_parses_back),
    UNIT_TEST(test_writer_handles_long_strings_across_its_buffer),
    UNIT_TEST(test_write_round_trips_through_the_parser),
    UNIT_TEST(test_write_handles_null_and_hand_built_numbers))
