/* test_httpwire.c: HTTP/1.1 request heads and chunked bodies as the worker
 * frames them (lib/httpwire.h): what is read, and what is refused with
 * which status. */
#include <stdio.h>
#include <string.h>

#include "lib/httpwire.h"
#include "unit.h"

static omni_wire_request_t w;
static const char *why;

static long parse(const char *s)
{
    why = NULL;
    return omni_wire_parse_request(s, strlen(s), &w, &why);
}

/* header i's name and value are exactly name and value */
static int header_is(int i, const char *name, const char *value)
{
    return i < w.nheaders && w.headers[i].name_len == strlen(name)
           && memcmp(w.headers[i].name, name, strlen(name)) == 0
           && w.headers[i].value_len == strlen(value)
           && memcmp(w.headers[i].value, value, strlen(value)) == 0;
}

static void test_a_get_is_read_whole(void)
{
    const char *s = "GET /api/v1/config/k?x=1 HTTP/1.1\r\nHost: w\r\n"
                    "X-Request-Id:  abc \r\n\r\nNEXT";

    CHECK_EQ_INT(parse(s), (long)(strlen(s) - 4));
    CHECK(w.method_len == 3 && memcmp(w.method, "GET", 3) == 0);
    CHECK(w.target_len == 20
          && memcmp(w.target, "/api/v1/config/k?x=1", 20) == 0);
    CHECK_EQ_INT(w.minor, 1);
    CHECK_EQ_INT(w.nheaders, 2);
    CHECK(header_is(0, "Host", "w"));
    CHECK(header_is(1, "X-Request-Id", "abc"));
    CHECK_EQ_INT(w.content_length, -1);
    CHECK(w.keep_alive && !w.chunked && !w.expect_continue);
}

static void test_every_prefix_of_a_head_is_incomplete(void)
{
    const char *s =
        "POST /mcp HTTP/1.1\r\nHost: w\r\nContent-Length: 2\r\n\r\n";
    size_t i;

    for (i = 0; i < strlen(s); i++) {
        CHECK_EQ_INT(omni_wire_parse_request(s, i, &w, &why), 0);
    }
    CHECK_EQ_INT(parse(s), (long)strlen(s));
    CHECK_EQ_INT(w.content_length, 2);
}

static void test_bare_lf_ends_lines_and_leading_empty_lines_are_skipped(void)
{
    const char *s = "\r\n\nGET / HTTP/1.1\nHost: w\n\n";

    CHECK_EQ_INT(parse(s), (long)strlen(s));
    CHECK(w.target_len == 1 && w.target[0] == '/');
    CHECK(header_is(0, "Host", "w"));
}

static void test_keep_alive_follows_version_and_connection(void)
{
    CHECK(parse("GET / HTTP/1.0\r\n\r\n") > 0);
    CHECK(!w.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
    CHECK(w.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n") > 0);
    CHECK(!w.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n") > 0);
    CHECK(w.keep_alive);
}

static void test_expect_100_continue_is_seen_in_http_1_1_only(void)
{
    CHECK(parse("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n"
                "Content-Length: 3\r\n\r\n")
          > 0);
    CHECK(w.expect_continue);
    CHECK(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n"
                "Content-Length: 3\r\n\r\n")
          > 0);
    CHECK(!w.expect_continue);
}

static void test_malformed_heads_are_400_naming_the_problem(void)
{
    static const struct {
        const char *head, *why;
    } bad[] = {
        {"GET /x HTTP/1.1\r\nHost : w\r\n\r\n", "malformed header field"},
        {"GET /x HTTP/1.1\r\nHost: w\r\n folded\r\n\r\n",
            "obsolete line folding"},
        {"GET /x HTTP/1.1\r\nHost: a\rb\r\n\r\n", "bare CR"},
        {"GET /x HTTP/1.1\r\nHost: a\001b\r\n\r\n",
            "control character in a header field"},
        {"GET /x HTTP/1.1\r\n: v\r\n\r\n", "malformed header field"},
        {"GET  /x HTTP/1.1\r\n\r\n", "malformed request line"},
        {"GET /x\r\n\r\n", "malformed request line"},
        {"GET http://h/x HTTP/1.1\r\n\r\n",
            "the request target must be a path (origin-form)"},
        {"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "conflicting Content-Length values"},
        {"GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "invalid Content-Length"},
        {"GET /x HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
            "invalid Content-Length"},
        {"POST /x HTTP/1.1\r\nContent-Length: 3\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding"},
        {"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding in HTTP/1.0"},
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(parse(bad[i].head), -400);
        CHECK_STR_EQ(why, bad[i].why);
    }
}

static void test_same_content_length_twice_is_one(void)
{
    CHECK(parse("PUT / HTTP/1.1\r\nContent-Length: 5\r\n"
                "content-length: 5\r\n\r\n")
          > 0);
    CHECK_EQ_INT(w.content_length, 5);
}

static void test_other_codings_are_501_and_other_versions_505(void)
{
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, "
                       "chunked\r\n\r\n"),
        -501);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
        -501);
    CHECK_EQ_INT(parse("GET / HTTP/2.0\r\n\r\n"), -505);
    CHECK_EQ_INT(parse("GET / HTTP/1.2\r\n\r\n"), -505);
    CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n") > 0);
    CHECK(w.chunked);
}

static void test_too_many_header_fields_are_431(void)
{
    static char head[8192];
    size_t n = 0;
    int i;

    n += (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\n");
    for (i = 0; i <= OMNI_WIRE_MAX_HEADERS; i++) {
        n += (size_t)snprintf(head + n, sizeof(head) - n, "X-%d: v\r\n", i);
    }
    snprintf(head + n, sizeof(head) - n, "\r\n");
    CHECK_EQ_INT(parse(head), -431);
}

/* s decoded in pieces of `step` bytes (0: whole), in place */
static long chunked(const char *s, size_t step, char *out, size_t *outlen,
    omni_wire_chunked_t *st)
{
    size_t len = strlen(s), at = 0;
    long n;

    memcpy(out, s, len + 1);
    memset(st, 0, sizeof(*st));
    *outlen = 0;
    while (at < len && st->state != OMNI_WIRE_CHUNKED_DONE) {
        size_t piece = step == 0 || len - at < step ? len - at : step;

        why = NULL;
        n = omni_wire_chunked(st, out + at, piece, out, outlen, &why);
        if (n < 0) {
            return -1;
        }
        at += (size_t)n;
    }
    return (long)at;
}

static void test_a_chunked_body_is_decoded_whole_or_byte_by_byte(void)
{
    const char *s = "4\r\nWiki\r\n5;ext=\"a b\"\r\npedia\r\nA\r\n in chunks\r\n"
                    "0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1";
    char out[128];
    size_t outlen, step;
    omni_wire_chunked_t st;

    for (step = 0; step < 4; step++) {
        CHECK_EQ_INT(chunked(s, step, out, &outlen, &st),
            (long)(strlen(s) - strlen("GET / HTTP/1.1")));
        CHECK(st.state == OMNI_WIRE_CHUNKED_DONE);
        CHECK(outlen == 19 && memcmp(out, "Wikipedia in chunks", 19) == 0);
    }
}

static void test_an_unfinished_chunked_body_waits(void)
{
    char out[64];
    size_t outlen;
    omni_wire_chunked_t st;

    CHECK_EQ_INT(chunked("5\r\nabc", 0, out, &outlen, &st), 6);
    CHECK(st.state != OMNI_WIRE_CHUNKED_DONE);
    CHECK(outlen == 3 && memcmp(out, "abc", 3) == 0);
    CHECK_EQ_INT(chunked("0\r\n", 0, out, &outlen, &st), 3);
    CHECK(st.state != OMNI_WIRE_CHUNKED_DONE);
}

static void test_malformed_chunked_codings_are_refused(void)
{
    static const struct {
        const char *coding, *why;
    } bad[] = {
        {"x\r\n", "malformed chunk size"},
        {"\r\n", "malformed chunk size"},
        {"0x5\r\nabcde\r\n0\r\n\r\n", "malformed chunk size"},
        {"3\r\nabcX\r\n", "chunk data not followed by CRLF"},
        {"3\rabc", "bare CR in chunked coding"},
        {"10000000000000000\r\n", "chunk size too large"},
        {"3;a\001\r\nabc\r\n", "control character in a chunk line"},
    };
    char out[64];
    size_t outlen, i;
    omni_wire_chunked_t st;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(chunked(bad[i].coding, 0, out, &outlen, &st), -1);
        CHECK_STR_EQ(why, bad[i].why);
    }
}

UNIT_MAIN(UNIT_TEST(test_a_get_is_read_whole),
    UNIT_TEST(test_every_prefix_of_a_head_is_incomplete),
    UNIT_TEST(test_bare_lf_ends_lines_and_leading_empty_lines_are_skipped),
    UNIT_TEST(test_keep_alive_follows_version_and_connection),
    UNIT_TEST(test_expect_100_continue_is_seen_in_http_1_1_only),
    UNIT_TEST(test_malformed_heads_are_400_naming_the_problem),
    UNIT_TEST(test_same_content_length_twice_is_one),
    UNIT_TEST(test_other_codings_are_501_and_other_versions_505),
    UNIT_TEST(test_too_many_header_fields_are_431),
    UNIT_TEST(test_a_chunked_body_is_decoded_whole_or_byte_by_byte),
    UNIT_TEST(test_an_unfinished_chunked_body_waits),
    UNIT_TEST(test_malformed_chunked_codings_are_refused))
