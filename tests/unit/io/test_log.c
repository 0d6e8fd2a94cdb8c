/* test_log.c: JSON-line logging and its string escaping. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/json.h"
#include "io/log.h"
#include "unit.h"

/* Runs omni_log with stderr pointed at a temporary file and returns what
 * was written (static buffer; "" when nothing). */
#define CAPTURE(out, call)                                                     \
    do {                                                                       \
        FILE *tmp_ = tmpfile();                                                \
        int saved_ = dup(STDERR_FILENO);                                       \
        size_t n_;                                                             \
        CHECK(tmp_ != NULL && saved_ >= 0);                                    \
        fflush(stderr);                                                        \
        dup2(fileno(tmp_), STDERR_FILENO);                                     \
        call;                                                                  \
        dup2(saved_, STDERR_FILENO);                                           \
        close(saved_);                                                         \
        rewind(tmp_);                                                          \
        n_ = fread(out, 1, sizeof(out) - 1, tmp_);                             \
        out[n_] = '\0';                                                        \
        fclose(tmp_);                                                          \
    } while (0)

static void test_escape_leaves_plain_text_alone(void)
{
    char buf[64];

    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), "GET /api/v1/users"),
        "GET /api/v1/users");
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), ""), "");
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), NULL), "");
}

static void test_escape_quotes_backslashes_and_controls(void)
{
    char buf[64];

    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), "a\"b\\c"), "a\\\"b\\\\c");
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), "1\n2\r3\t4\b5\f"),
        "1\\n2\\r3\\t4\\b5\\f");
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), "\x01\x1b[31m"),
        "\\u0001\\u001b[31m");
}

static void test_escape_keeps_utf8_and_replaces_invalid_bytes(void)
{
    char buf[64];

    CHECK_STR_EQ(
        omni_log_escape(buf, sizeof(buf), "caf\xc3\xa9 \xf0\x9f\x98\x80"),
        "caf\xc3\xa9 \xf0\x9f\x98\x80");
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf),
                     "a\xff"
                     "b\xc3"),
        "a\xef\xbf\xbd"
        "b\xef\xbf\xbd");
}

static void test_escape_truncates_without_splitting(void)
{
    char buf[6];

    /* "ab\n" needs 4 bytes: room for "ab" and "\n" but not the next one */
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), "ab\n\ncd"), "ab\\n");
    CHECK_STR_EQ(
        omni_log_escape(buf, sizeof(buf), "abc\xc3\xa9"), "abc\xc3\xa9");
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), "abcd\xc3\xa9"), "abcd");
    CHECK_STR_EQ(omni_log_escape(buf, sizeof(buf), "\x01"), "");
    CHECK_STR_EQ(omni_log_escape(buf, 1, "abc"), "");
}

static void test_parse_level_accepts_the_four_names(void)
{
    omni_log_level_t l = OMNI_LOG_ERROR;

    CHECK_EQ_INT(omni_log_parse_level("debug", &l), 0);
    CHECK_EQ_INT(l, OMNI_LOG_DEBUG);
    CHECK_EQ_INT(omni_log_parse_level("WARN", &l), 0);
    CHECK_EQ_INT(l, OMNI_LOG_WARN);
    CHECK_EQ_INT(omni_log_parse_level("info", &l), 0);
    CHECK_EQ_INT(l, OMNI_LOG_INFO);
    CHECK_EQ_INT(omni_log_parse_level("error", &l), 0);
    CHECK_EQ_INT(l, OMNI_LOG_ERROR);
    CHECK_EQ_INT(omni_log_parse_level("verbose", &l), -1);
    CHECK_EQ_INT(omni_log_parse_level("", &l), -1);
    CHECK_EQ_INT(omni_log_parse_level(NULL, &l), -1);
    CHECK_EQ_INT(l, OMNI_LOG_ERROR);
}

static void test_line_is_one_json_object_with_the_fields(void)
{
    static char out[8192];
    char err[128];
    omni_arena_t a;
    omni_json_t *v;
    const char *ts;
    int64_t pid = 0, port = 0;

    omni_log_set_level(OMNI_LOG_INFO);
    CAPTURE(out, omni_log(OMNI_LOG_INFO, "listening \"now\"",
                     "\"addr\":\"%s\",\"port\":%d", "127.0.0.1", 8080));
    CHECK(strlen(out) > 0);
    CHECK(out[strlen(out) - 1] == '\n');
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);
    omni_arena_init(&a, 0);
    v = omni_json_parse(&a, out, strlen(out), NULL, err, sizeof(err));
    CHECK(v != NULL);
    CHECK_STR_EQ(omni_json_string(omni_json_get(v, "level")), "info");
    CHECK_STR_EQ(
        omni_json_string(omni_json_get(v, "msg")), "listening \"now\"");
    CHECK_STR_EQ(omni_json_string(omni_json_get(v, "addr")), "127.0.0.1");
    CHECK(omni_json_int(omni_json_get(v, "port"), &port));
    CHECK_EQ_INT(port, 8080);
    CHECK(omni_json_int(omni_json_get(v, "pid"), &pid));
    CHECK_EQ_INT(pid, getpid());
    /* 2024-05-01T12:34:56.789Z */
    ts = omni_json_string(omni_json_get(v, "ts"));
    CHECK(ts != NULL);
    CHECK_EQ_INT(strlen(ts), 24);
    CHECK(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    omni_arena_free(&a);
}

static void test_levels_below_the_threshold_are_dropped(void)
{
    static char out[8192];

    omni_log_set_level(OMNI_LOG_WARN);
    CAPTURE(out, omni_log(OMNI_LOG_INFO, "hidden", NULL));
    CHECK_STR_EQ(out, "");
    CAPTURE(out, omni_log(OMNI_LOG_ERROR, "shown", NULL));
    CHECK(strstr(out, "\"level\":\"error\"") != NULL);
    omni_log_set_level(OMNI_LOG_INFO);
}

static void test_oversized_fields_keep_the_line_valid_and_short(void)
{
    static char out[16384];
    char *big = malloc(10000);
    char err[128];
    omni_arena_t a;
    omni_json_t *v;
    const char *kept;

    CHECK(big != NULL);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    CAPTURE(out, omni_log(OMNI_LOG_ERROR, "big", "\"blob\":\"%s\"", big));
    free(big);
    CHECK(strlen(out) <= 4096);
    omni_arena_init(&a, 0);
    v = omni_json_parse(&a, out, strlen(out), NULL, err, sizeof(err));
    CHECK(v != NULL);
    kept = omni_json_string(omni_json_get(v, "fields_truncated"));
    CHECK(kept != NULL);
    CHECK(strncmp(kept, "\"blob\":\"xxx", 11) == 0);
    omni_arena_free(&a);
}

static void test_logging_preserves_errno(void)
{
    static char out[8192];

    errno = ENOENT;
    CAPTURE(out, omni_log(OMNI_LOG_ERROR, "open failed", NULL));
    CHECK_EQ_INT(errno, ENOENT);
}

UNIT_MAIN(UNIT_TEST(test_escape_leaves_plain_text_alone),
    UNIT_TEST(test_escape_quotes_backslashes_and_controls),
    UNIT_TEST(test_escape_keeps_utf8_and_replaces_invalid_bytes),
    UNIT_TEST(test_escape_truncates_without_splitting),
    UNIT_TEST(test_parse_level_accepts_the_four_names),
    UNIT_TEST(test_line_is_one_json_object_with_the_fields),
    UNIT_TEST(test_levels_below_the_threshold_are_dropped),
    UNIT_TEST(test_oversized_fields_keep_the_line_valid_and_short),
    UNIT_TEST(test_logging_preserves_errno))
