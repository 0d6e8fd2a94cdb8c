/* test_sse.c: the SSE parser against the WHATWG spec's examples and rules,
 * fed whole, byte by byte and split at every position. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/sse.h"
#include "unit.h"

/* Dispatched events as "type{data}#id;" with LF, CR and NUL escaped. */
typedef struct {
    char out[4096];
    size_t len;
    int stop_after; /* return 7 from the n-th event (0 = never) */
    int seen;
} collect_t;

static void put(collect_t *c, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n && c->len + 3 < sizeof(c->out); i++) {
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '\0') {
            c->out[c->len++] = '\\';
            c->out[c->len++] = s[i] == '\n' ? 'n' : s[i] == '\r' ? 'r' : '0';
        } else {
            c->out[c->len++] = s[i];
        }
    }
    c->out[c->len] = '\0';
}

static int on_event(void *arg, const omni_sse_event_t *ev)
{
    collect_t *c = arg;

    if (strlen(ev->type) != ev->type_len || strlen(ev->id) != ev->id_len
        || ev->data[ev->data_len] != '\0')
        put(c, "BAD-TERMINATION", 15);
    put(c, ev->type, ev->type_len);
    put(c, "{", 1);
    put(c, ev->data, ev->data_len);
    put(c, "}#", 2);
    put(c, ev->id, ev->id_len);
    put(c, ";", 1);
    c->seen++;
    return c->stop_after && c->seen == c->stop_after ? 7 : 0;
}

/* Parses s (n bytes) in pieces cut at the given offsets (ascending, end
 * with n); returns the events and sets *rc to the first non-zero return. */
static const char *parse_cuts(
    const char *s, size_t n, const size_t *cuts, size_t ncuts, int *rc)
{
    static collect_t c;
    omni_sse_t p;
    size_t from = 0, i;

    memset(&c, 0, sizeof(c));
    omni_sse_init(&p, 0, on_event, &c);
    *rc = 0;
    for (i = 0; i < ncuts && *rc == 0; i++) {
        *rc = omni_sse_feed(&p, s + from, cuts[i] - from);
        from = cuts[i];
    }
    omni_sse_free(&p);
    return c.out;
}

static const char *parse(const char *s)
{
    size_t n = strlen(s);
    int rc;

    return parse_cuts(s, n, &n, 1, &rc);
}

/* 1 when s gives `want` whole, byte by byte, and cut at every position
 * and every pair of positions. */
static int same_at_every_split(const char *s, size_t n, const char *want)
{
    size_t cuts[3], i, j;
    int rc;

    cuts[0] = n;
    if (strcmp(parse_cuts(s, n, cuts, 1, &rc), want) != 0)
        return 0;
    for (i = 0; i <= n; i++) {
        for (j = i; j <= n; j++) {
            cuts[0] = i;
            cuts[1] = j;
            cuts[2] = n;
            if (strcmp(parse_cuts(s, n, cuts, 3, &rc), want) != 0) {
                fprintf(stderr, "    differs when cut at %zu and %zu\n", i, j);
                return 0;
            }
        }
    }
    {
        size_t *each = malloc((n + 1) * sizeof(*each));
        int ok;

        for (i = 0; i < n; i++)
            each[i] = i + 1;
        each[n] = n;
        ok = strcmp(parse_cuts(s, n, each, n + 1, &rc), want) == 0;
        free(each);
        if (!ok)
            return 0;
    }
    return 1;
}

static void test_spec_stock_example_joins_data_lines_with_lf(void)
{
    CHECK_STR_EQ(parse("data: YHOO\ndata: +2\ndata: 10\n\n"),
        "message{YHOO\\n+2\\n10}#;");
}

static void test_spec_ids_example_sets_resets_and_drops_unfinished(void)
{
    /* the third block never gets its blank line: not dispatched */
    CHECK_STR_EQ(parse(": test stream\n\n"
                       "data: first event\nid: 1\n\n"
                       "data:second event\nid\n\n"
                       "data:  third event\n"),
        "message{first event}#1;message{second event}#;");
}

static void test_spec_empty_data_example(void)
{
    /* "data" alone is an empty data line; "data\ndata" is one LF; the
     * last block is unfinished */
    CHECK_STR_EQ(
        parse("data\n\ndata\ndata\n\ndata:"), "message{}#;message{\\n}#;");
}

static void test_spec_space_example_strips_one_leading_space(void)
{
    CHECK_STR_EQ(
        parse("data:test\n\ndata: test\n\n"), "message{test}#;message{test}#;");
    CHECK_STR_EQ(parse("data:  two\n\n"), "message{ two}#;");
    CHECK_STR_EQ(parse("data:\ttab\n\n"), "message{\ttab}#;");
}

static void test_no_data_line_means_no_event(void)
{
    CHECK_STR_EQ(parse("event: ping\n\nid: 5\n\n: hi\n\n\n\n"), "");
    /* the type set before an empty event does not leak into the next */
    CHECK_STR_EQ(parse("event: ping\n\ndata: x\n\n"), "message{x}#;");
}

static void test_event_type_applies_to_one_event(void)
{
    CHECK_STR_EQ(parse("event: delta\ndata: a\n\ndata: b\n\n"),
        "delta{a}#;message{b}#;");
    CHECK_STR_EQ(parse("event: one\nevent: two\ndata: a\n\n"), "two{a}#;");
    CHECK_STR_EQ(parse("event\ndata: a\n\n"), "message{a}#;");
}

static void test_id_is_sticky_and_ignored_with_nul(void)
{
    static const char s[] = "id: 7\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\n"
                            "id\ndata: d\n\n";
    size_t n = sizeof(s) - 1;
    int rc;

    CHECK_STR_EQ(parse_cuts(s, n, &n, 1, &rc),
        "message{a}#7;message{b}#7;message{c}#7;message{d}#;");
    CHECK_EQ_INT(rc, 0);
}

static void test_nul_in_data_is_kept(void)
{
    static const char s[] = "data: a\0b\n\n";
    size_t n = sizeof(s) - 1;
    int rc;

    CHECK_STR_EQ(parse_cuts(s, n, &n, 1, &rc), "message{a\\0b}#;");
}

static void test_retry_takes_only_digits(void)
{
    omni_sse_t p;
    collect_t c;

    memset(&c, 0, sizeof(c));
    omni_sse_init(&p, 0, on_event, &c);
    CHECK_EQ_INT(p.retry_ms, -1);
    CHECK_EQ_INT(omni_sse_feed(&p, "retry: 3000\n", 12), 0);
    CHECK_EQ_INT(p.retry_ms, 3000);
    CHECK_EQ_INT(omni_sse_feed(&p, "retry: 10a\nretry:\nretry: -5\n", 28), 0);
    CHECK_EQ_INT(p.retry_ms, 3000);
    CHECK_EQ_INT(omni_sse_feed(&p, "retry: 1.5\nretry:  7\n", 21), 0);
    CHECK_EQ_INT(p.retry_ms, 3000);
    CHECK_EQ_INT(omni_sse_feed(&p, "retry:0\n", 8), 0);
    CHECK_EQ_INT(p.retry_ms, 0);
    CHECK_EQ_INT(omni_sse_feed(&p, "retry: 99999999999999999999999\n", 31), 0);
    CHECK(p.retry_ms > 0);
    CHECK_EQ_INT(c.seen, 0);
    omni_sse_free(&p);
}

static void test_unknown_fields_and_comments_are_ignored(void)
{
    CHECK_STR_EQ(parse(":comment\nfoo: bar\nData: no\ndata : no\n"
                       "data: yes\n:another\n\n"),
        "message{yes}#;");
}

static void test_cr_lf_and_crlf_end_lines_alike(void)
{
    const char *want = "t{a\\nb}#1;message{c}#1;";

    CHECK_STR_EQ(
        parse("event: t\ndata: a\ndata: b\nid: 1\n\ndata: c\n\n"), want);
    CHECK_STR_EQ(
        parse("event: t\rdata: a\rdata: b\rid: 1\r\rdata: c\r\r"), want);
    CHECK_STR_EQ(
        parse("event: t\r\ndata: a\r\ndata: b\r\nid: 1\r\n\r\ndata: c\r\n\r\n"),
        want);
    CHECK_STR_EQ(
        parse("event: t\r\ndata: a\rdata: b\nid: 1\r\n\rdata: c\n\r\n"), want);
    /* LF CR is two line ends: a blank line */
    CHECK_STR_EQ(parse("data: a\n\rdata: b\n\n"), "message{a}#;message{b}#;");
}

static void test_cr_at_chunk_end_then_lf_is_one_line_end(void)
{
    static const char s[] = "data: a\r\ndata: b\r\n\r\n";
    size_t cuts[] = {8, sizeof(s) - 1};
    int rc;

    CHECK_STR_EQ(
        parse_cuts(s, sizeof(s) - 1, cuts, 2, &rc), "message{a\\nb}#;");
}

static void test_leading_bom_is_stripped_once(void)
{
    CHECK_STR_EQ(parse("\xEF\xBB\xBF"
                       "data: a\n\n"),
        "message{a}#;");
    /* a second BOM is part of the first field's name: unknown field */
    CHECK_STR_EQ(parse("\xEF\xBB\xBF\xEF\xBB\xBF"
                       "data: a\n\ndata: b\n\n"),
        "message{b}#;");
    /* a BOM later in the stream is content */
    CHECK_STR_EQ(parse("data: \xEF\xBB\xBFx\n\n"), "message{\xEF\xBB\xBFx}#;");
    /* a partial BOM is content too */
    CHECK_STR_EQ(parse("\xEF\xBB"
                       "data: a\n\n\n"),
        "");
    CHECK_STR_EQ(parse("\xEF"
                       "\n"
                       "data: a\n\n"),
        "message{a}#;");
}

static void test_every_split_position_gives_the_same_events(void)
{
    static const char s[] = "\xEF\xBB\xBF: c\r\nevent: delta\r\n"
                            "data: he\rdata:llo\nid: 4\r\r"
                            "retry: 20\ndata\r\n\r\nid\ndata: x\r\n\n";
    const char *want = "delta{he\\nllo}#4;message{}#4;message{x}#;";

    CHECK(same_at_every_split(s, sizeof(s) - 1, want));
}

static void test_split_inside_crlf_pairs_of_mixed_stream(void)
{
    static const char s[] = "data:1\r\r\ndata:2\n\r\n\rdata:3\r\n\r\n";
    const char *want = "message{1}#;message{2}#;message{3}#;";

    CHECK(same_at_every_split(s, sizeof(s) - 1, want));
}

static void test_callback_can_stop_the_feed(void)
{
    omni_sse_t p;
    collect_t c;
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";

    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    omni_sse_init(&p, 0, on_event, &c);
    CHECK_EQ_INT(omni_sse_feed(&p, s, strlen(s)), 7);
    CHECK_EQ_INT(c.seen, 2);
    omni_sse_free(&p);
}

static void test_held_bytes_are_capped(void)
{
    omni_sse_t p;
    collect_t c;
    char big[300];

    memset(&c, 0, sizeof(c));
    memset(big, 'x', sizeof(big));
    omni_sse_init(&p, 256, on_event, &c);
    /* one long line with no end */
    CHECK_EQ_INT(omni_sse_feed(&p, big, sizeof(big)), OMNI_SSE_TOO_LARGE);
    omni_sse_free(&p);

    /* many short data lines of one event */
    omni_sse_init(&p, 256, on_event, &c);
    {
        int i, rc = 0;

        for (i = 0; i < 100 && rc == 0; i++)
            rc = omni_sse_feed(&p, "data: 0123456789\n", 17);
        CHECK_EQ_INT(rc, OMNI_SSE_TOO_LARGE);
        CHECK(i < 100);
    }
    omni_sse_free(&p);

    /* the same bytes as separate events stay under the cap */
    omni_sse_init(&p, 256, on_event, &c);
    {
        int i;

        for (i = 0; i < 100; i++)
            CHECK_EQ_INT(omni_sse_feed(&p, "data: 0123456789\n\n", 18), 0);
    }
    CHECK_EQ_INT(c.seen, 100);
    omni_sse_free(&p);
}

UNIT_MAIN(UNIT_TEST(test_spec_stock_example_joins_data_lines_with_lf),
    UNIT_TEST(test_spec_ids_example_sets_resets_and_drops_unfinished),
    UNIT_TEST(test_spec_empty_data_example),
    UNIT_TEST(test_spec_space_example_strips_one_leading_space),
    UNIT_TEST(test_no_data_line_means_no_event),
    UNIT_TEST(test_event_type_applies_to_one_event),
    UNIT_TEST(test_id_is_sticky_and_ignored_with_nul),
    UNIT_TEST(test_nul_in_data_is_kept),
    UNIT_TEST(test_retry_takes_only_digits),
    UNIT_TEST(test_unknown_fields_and_comments_are_ignored),
    UNIT_TEST(test_cr_lf_and_crlf_end_lines_alike),
    UNIT_TEST(test_cr_at_chunk_end_then_lf_is_one_line_end),
    UNIT_TEST(test_leading_bom_is_stripped_once),
    UNIT_TEST(test_every_split_position_gives_the_same_events),
    UNIT_TEST(test_split_inside_crlf_pairs_of_mixed_stream),
    UNIT_TEST(test_callback_can_stop_the_feed),
    UNIT_TEST(test_held_bytes_are_capped))
