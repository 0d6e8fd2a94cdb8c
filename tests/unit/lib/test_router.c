/* test_router.c: route matching, {param} capture, 405 Allow, url decoding,
 * and the raw paths refused before routing (http.c). */
#include <string.h>

#include "lib/router.h"
#include "unit.h"

static const omni_route_t routes[] = {
    {"GET", "/api/v1/health", NULL, 0},
    {"GET", "/api/v1/config/{key}", NULL, 0},
    {"PUT", "/api/v1/config/{key}", NULL, OMNI_ROUTE_JSON_BODY},
    {"GET", "/api/v1/users/{id}/keys/{kid}", NULL, 0},
    {"POST", "/api/v1/users", NULL, OMNI_ROUTE_JSON_BODY},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static omni_route_result_t match(
    const char *method, const char *path, omni_route_match_t *m)
{
    memset(m, 0xa5, sizeof(*m));
    return omni_router_match(routes, NROUTES, method, path, strlen(path), m);
}

/* Whether param i of m is called name and holds exactly value. */
static int param_is(
    const omni_route_match_t *m, int i, const char *name, const char *value)
{
    return i < m->nparams && m->params[i].name_len == strlen(name)
           && memcmp(m->params[i].name, name, strlen(name)) == 0
           && m->params[i].value_len == strlen(value)
           && memcmp(m->params[i].value, value, strlen(value)) == 0;
}

static void test_exact_path_matches_its_route(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", "/api/v1/health", &m), OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 0);
    CHECK_EQ_INT(m.nparams, 0);
    CHECK_EQ_INT(match("POST", "/api/v1/users", &m), OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 4);
    CHECK_EQ_INT(m.nparams, 0);
}

static void test_prefix_or_longer_path_does_not_match(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", "/api/v1/heal", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(match("GET", "/api/v1/healthz", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(match("GET", "/api/v1/health/x", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(match("GET", "/api/v1", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(match("GET", "", &m), OMNI_ROUTE_NOT_FOUND);
}

static void test_path_len_bounds_the_path(void)
{
    const char *path = "/api/v1/health?verbose=1";
    omni_route_match_t m;

    CHECK_EQ_INT(omni_router_match(routes, NROUTES, "GET", path,
                     strlen("/api/v1/health"), &m),
        OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 0);
    CHECK_EQ_INT(omni_router_match(
                     routes, NROUTES, "GET", path, strlen("/api/v1/heal"), &m),
        OMNI_ROUTE_NOT_FOUND);
}

static void test_param_captures_segment_pointing_into_path(void)
{
    const char *path = "/api/v1/config/site.name";
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", path, &m), OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 1);
    CHECK_EQ_INT(m.nparams, 1);
    CHECK(param_is(&m, 0, "key", "site.name"));
    CHECK(m.params[0].value == path + strlen("/api/v1/config/"));
}

static void test_param_value_is_not_decoded(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(
        match("GET", "/api/v1/config/a%20b%2Fc", &m), OMNI_ROUTE_FOUND);
    CHECK(param_is(&m, 0, "key", "a%20b%2Fc"));
}

static void test_two_params_are_captured_in_order(void)
{
    const char *path = "/api/v1/users/42/keys/k-7";
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", path, &m), OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 3);
    CHECK_EQ_INT(m.nparams, 2);
    CHECK(param_is(&m, 0, "id", "42"));
    CHECK(param_is(&m, 1, "kid", "k-7"));
    CHECK(m.params[0].value == path + strlen("/api/v1/users/"));
    CHECK(m.params[1].value == path + strlen("/api/v1/users/42/keys/"));
}

static void test_trailing_slash_does_not_match(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", "/api/v1/health/", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(match("GET", "/api/v1/config/x/", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(match("POST", "/api/v1/users/", &m), OMNI_ROUTE_NOT_FOUND);
}

static void test_empty_segment_does_not_match_a_param(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", "/api/v1/config/", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(match("GET", "/api/v1/config", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(
        match("GET", "/api/v1/users//keys/k", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(
        match("GET", "/api/v1/users/1/keys/", &m), OMNI_ROUTE_NOT_FOUND);
}

static void test_param_does_not_span_segments(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", "/api/v1/config/a/b", &m), OMNI_ROUTE_NOT_FOUND);
}

static void test_first_matching_route_wins(void)
{
    static const omni_route_t table[] = {
        {"GET", "/api/v1/config/{key}", NULL, 0},
        {"GET", "/api/v1/config/special", NULL, 0},
        {"GET", "/api/v1/config/{other}", NULL, 0},
    };
    omni_route_match_t m;
    const char *path = "/api/v1/config/special";

    CHECK_EQ_INT(omni_router_match(table, 3, "GET", path, strlen(path), &m),
        OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 0);
    CHECK_EQ_INT(m.nparams, 1);
    CHECK(param_is(&m, 0, "key", "special"));

    /* a literal listed first beats a param listed later */
    CHECK_EQ_INT(omni_router_match(table + 1, 2, "GET", path, strlen(path), &m),
        OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 0);
    CHECK_EQ_INT(m.nparams, 0);
}

static void test_method_picks_among_routes_of_one_path(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("PUT", "/api/v1/config/k", &m), OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 2);
    CHECK(param_is(&m, 0, "key", "k"));
}

static void test_head_matches_a_get_route(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("HEAD", "/api/v1/health", &m), OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 0);
    CHECK_EQ_INT(match("HEAD", "/api/v1/config/k", &m), OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 1);
    CHECK(param_is(&m, 0, "key", "k"));
}

static void test_head_does_not_match_other_methods(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("HEAD", "/api/v1/users", &m), OMNI_ROUTE_BAD_METHOD);
    CHECK_STR_EQ(m.allow, "POST");
}

static void test_bad_method_lists_every_method_of_the_path(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(
        match("DELETE", "/api/v1/config/k", &m), OMNI_ROUTE_BAD_METHOD);
    CHECK_STR_EQ(m.allow, "GET, PUT");
    CHECK_EQ_INT(match("PUT", "/api/v1/health", &m), OMNI_ROUTE_BAD_METHOD);
    CHECK_STR_EQ(m.allow, "GET");
}

static void test_method_is_case_sensitive(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("get", "/api/v1/health", &m), OMNI_ROUTE_BAD_METHOD);
    CHECK_STR_EQ(m.allow, "GET");
}

static void test_unknown_path_is_not_found_with_empty_allow(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(match("GET", "/nope", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_STR_EQ(m.allow, "");
    CHECK_EQ_INT(m.nparams, 0);
    CHECK_EQ_INT(
        match("DELETE", "/api/v1/unknown/x", &m), OMNI_ROUTE_NOT_FOUND);
    CHECK_STR_EQ(m.allow, "");
}

static void test_empty_table_finds_nothing(void)
{
    omni_route_match_t m;

    CHECK_EQ_INT(
        omni_router_match(routes, 0, "GET", "/", 1, &m), OMNI_ROUTE_NOT_FOUND);
}

static void test_max_params_are_captured(void)
{
    static const omni_route_t table[] = {
        {"GET", "/{a}/{b}/{c}/{d}", NULL, 0},
    };
    omni_route_match_t m;
    const char *path = "/1/22/333/4444";

    CHECK_EQ_INT(OMNI_ROUTE_MAX_PARAMS, 4);
    CHECK_EQ_INT(omni_router_match(table, 1, "GET", path, strlen(path), &m),
        OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.nparams, 4);
    CHECK(param_is(&m, 0, "a", "1"));
    CHECK(param_is(&m, 1, "b", "22"));
    CHECK(param_is(&m, 2, "c", "333"));
    CHECK(param_is(&m, 3, "d", "4444"));
}

static void test_more_params_than_max_never_match(void)
{
    static const omni_route_t table[] = {
        {"GET", "/{a}/{b}/{c}/{d}/{e}", NULL, 0},
        {"GET", "/{a}/{b}/{c}/{d}/five", NULL, 0},
    };
    omni_route_match_t m;
    const char *path = "/1/2/3/4/5";
    const char *five = "/1/2/3/4/five";

    /* the fifth capture has no slot: the route is skipped, not overflowed */
    CHECK_EQ_INT(omni_router_match(table, 1, "GET", path, strlen(path), &m),
        OMNI_ROUTE_NOT_FOUND);
    CHECK(m.nparams <= OMNI_ROUTE_MAX_PARAMS);
    CHECK_EQ_INT(omni_router_match(table, 2, "GET", five, strlen(five), &m),
        OMNI_ROUTE_FOUND);
    CHECK_EQ_INT(m.index, 1);
    CHECK_EQ_INT(m.nparams, 4);
    CHECK(param_is(&m, 3, "d", "4"));
}

static const char *decode(const char *src, char *dst, int *n)
{
    *n = omni_url_decode(dst, src, strlen(src));
    return *n < 0 ? NULL : dst;
}

static void test_url_decode_plain_text_is_unchanged(void)
{
    char dst[64];
    int n;

    CHECK_STR_EQ(decode("site.name-1_x~", dst, &n), "site.name-1_x~");
    CHECK_EQ_INT(n, 14);
    /* a path is not a form: '+' stays '+' */
    CHECK_STR_EQ(decode("a+b", dst, &n), "a+b");
    CHECK_STR_EQ(decode("", dst, &n), "");
    CHECK_EQ_INT(n, 0);
}

static void test_url_decode_valid_escapes(void)
{
    char dst[64];
    int n;

    CHECK_STR_EQ(decode("a%20b", dst, &n), "a b");
    CHECK_EQ_INT(n, 3);
    CHECK_STR_EQ(decode("%41%42c", dst, &n), "ABc");
    CHECK_STR_EQ(decode("%4a%4A", dst, &n), "JJ");
    CHECK_STR_EQ(decode("%C3%A9", dst, &n), "\xc3\xa9");
    CHECK_EQ_INT(n, 2);
    /* decoded once, not twice */
    CHECK_STR_EQ(decode("%2541", dst, &n), "%41");
    CHECK_STR_EQ(decode("x%7e", dst, &n), "x~");
}

static void test_url_decode_respects_len(void)
{
    char dst[8];

    CHECK_EQ_INT(omni_url_decode(dst, "ab%20cd", 2), 2);
    CHECK_STR_EQ(dst, "ab");
    CHECK_EQ_INT(omni_url_decode(dst, "ab%20cd", 5), 3);
    CHECK_STR_EQ(dst, "ab ");
    /* an escape cut by len is truncated, even if the bytes follow */
    CHECK_EQ_INT(omni_url_decode(dst, "ab%20cd", 4), -1);
}

static void test_url_decode_rejects_encoded_slash_and_nul(void)
{
    char dst[64];
    int n;

    CHECK(decode("a%2Fb", dst, &n) == NULL);
    CHECK(decode("a%2fb", dst, &n) == NULL);
    CHECK(decode("%00", dst, &n) == NULL);
    CHECK(decode("abc%00", dst, &n) == NULL);
}

static void test_url_decode_rejects_truncated_escapes(void)
{
    char dst[64];
    int n;

    CHECK(decode("%", dst, &n) == NULL);
    CHECK(decode("%4", dst, &n) == NULL);
    CHECK(decode("abc%", dst, &n) == NULL);
    CHECK(decode("abc%4", dst, &n) == NULL);
}

static void test_url_decode_rejects_bad_hex(void)
{
    char dst[64];
    int n;

    CHECK(decode("%G1", dst, &n) == NULL);
    CHECK(decode("%1G", dst, &n) == NULL);
    CHECK(decode("%zz", dst, &n) == NULL);
    CHECK(decode("%-1", dst, &n) == NULL);
    CHECK(decode("% 1", dst, &n) == NULL);
    CHECK(decode("%%41", dst, &n) == NULL);
    CHECK(decode("%\xc3\xa9", dst, &n) == NULL);
}

/* What nginx forwards unchanged while it picks a location from the
 * normalised path: each must be refused before routing. */
static void test_path_tricks_are_refused(void)
{
    static const char *tricks[] = {
        "/api/v1/../v1/users",
        "/api/v1/config/..",
        "/api/v1/./config",
        "/api/v1/config/.",
        "/..",
        "/api/v1/..?x=1",
        "/api//v1/config",
        "//api/v1/config",
        "/api/v1/%2e%2e/v1/users",
        "/api/v1/%2E%2E/v1/users",
        "/api/v1/config/%2e",
        "/api/v1/config/a%2fb",
        "/api/v1/users%2F1",
        "/api/v1/config/a%5cb",
        "/api/v1/config/a%5Cb",
        "/api/v1/config/a\\b",
        "api/v1/config",
        "http://evil/api/v1/config",
        "",
    };
    size_t i;

    for (i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        if (omni_router_path_problem(tricks[i]) == NULL) {
            fprintf(stderr, "    accepted: \"%s\"\n", tricks[i]);
            CHECK(omni_router_path_problem(tricks[i]) != NULL);
        }
    }
    CHECK(omni_router_path_problem(NULL) != NULL);
}

static void test_path_problem_names_what_is_wrong(void)
{
    CHECK(strstr(omni_router_path_problem("/a//b"), "'//'") != NULL);
    CHECK(strstr(omni_router_path_problem("/a/../b"), "'..'") != NULL);
    CHECK(
        strstr(omni_router_path_problem("/a/%2F"), "percent-encoded") != NULL);
    CHECK(strstr(omni_router_path_problem("a"), "start with '/'") != NULL);
}

static void test_plain_paths_pass(void)
{
    static const char *plain[] = {
        "/",
        "/health",
        "/.well-known/jwks.json",
        "/api/v1/config/refresh_interval",
        "/api/v1/config/a.b",
        "/api/v1/config/...",
        "/api/v1/config/..x",
        "/api/v1/config/x..",
        "/api/v1/users/%41%42",
        "/api/v1/config/a%20b",
        "/api/v1/config?next=/../x%2F%2e%5c//",
        "/api/v1/config/%",
    };
    size_t i;

    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        if (omni_router_path_problem(plain[i]) != NULL) {
            fprintf(stderr, "    refused: \"%s\"\n", plain[i]);
            CHECK(omni_router_path_problem(plain[i]) == NULL);
        }
    }
}

UNIT_MAIN(UNIT_TEST(test_exact_path_matches_its_route),
    UNIT_TEST(test_prefix_or_longer_path_does_not_match),
    UNIT_TEST(test_path_len_bounds_the_path),
    UNIT_TEST(test_param_captures_segment_pointing_into_path),
    UNIT_TEST(test_param_value_is_not_decoded),
    UNIT_TEST(test_two_params_are_captured_in_order),
    UNIT_TEST(test_trailing_slash_does_not_match),
    UNIT_TEST(test_empty_segment_does_not_match_a_param),
    UNIT_TEST(test_param_does_not_span_segments),
    UNIT_TEST(test_first_matching_route_wins),
    UNIT_TEST(test_method_picks_among_routes_of_one_path),
    UNIT_TEST(test_head_matches_a_get_route),
    UNIT_TEST(test_head_does_not_match_other_methods),
    UNIT_TEST(test_bad_method_lists_every_method_of_the_path),
    UNIT_TEST(test_method_is_case_sensitive),
    UNIT_TEST(test_unknown_path_is_not_found_with_empty_allow),
    UNIT_TEST(test_empty_table_finds_nothing),
    UNIT_TEST(test_max_params_are_captured),
    UNIT_TEST(test_more_params_than_max_never_match),
    UNIT_TEST(test_url_decode_plain_text_is_unchanged),
    UNIT_TEST(test_url_decode_valid_escapes),
    UNIT_TEST(test_url_decode_respects_len),
    UNIT_TEST(test_url_decode_rejects_encoded_slash_and_nul),
    UNIT_TEST(test_url_decode_rejects_truncated_escapes),
    UNIT_TEST(test_url_decode_rejects_bad_hex),
    UNIT_TEST(test_path_tricks_are_refused),
    UNIT_TEST(test_path_problem_names_what_is_wrong),
    UNIT_TEST(test_plain_paths_pass))
