/* test_registry_rules.c: the pure checks of an MCP server's fields, here
 * header values given by secret name. */
#include <string.h>

#include "services/mcp/registry.h"
#include "unit.h"

static omni_arena_t arena;

/* omni_mcp_server_check of a POST body; the status (0 when valid), the
 * field and message in *field / *msg, and the parsed input in *in */
static int check(
    const char *text, omni_mcp_server_in_t *in, char **field, char **msg)
{
    static char f[64], m[256];
    char err[128];
    omni_json_t *v;
    int status = 0;

    v = omni_json_parse(&arena, text, strlen(text), NULL, err, sizeof(err));
    if (v == NULL) {
        return -1;
    }
    f[0] = m[0] = '\0';
    *field = f;
    *msg = m;
    if (omni_mcp_server_check(
            v, 0, &arena, in, &status, f, sizeof(f), m, sizeof(m))
        == 0) {
        return 0;
    }
    return status;
}

#define BODY(h)                                                                \
    "{\"name\":\"a\",\"url\":\"http://127.0.0.1/mcp\",\"headers\":" h "}"

static void test_secret_names(void)
{
    CHECK(omni_mcp_secret_name_valid("secret_env", "MCP_SECRET_TOKEN"));
    CHECK(omni_mcp_secret_name_valid("secret_env", "MCP_SECRET_A_1"));
    CHECK(!omni_mcp_secret_name_valid("secret_env", "MCP_SECRET_"));
    CHECK(!omni_mcp_secret_name_valid("secret_env", "PGPASSWORD"));
    CHECK(!omni_mcp_secret_name_valid("secret_env", "OMNI_DATABASE_URL"));
    CHECK(!omni_mcp_secret_name_valid("secret_env", "MCP_SECRET_lower"));
    CHECK(!omni_mcp_secret_name_valid("secret_env",
        "MCP_SECRET_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAA"));
    CHECK(omni_mcp_secret_name_valid("secret_file", "upstream-token"));
    CHECK(omni_mcp_secret_name_valid("secret_file", "tls.key_2"));
    CHECK(!omni_mcp_secret_name_valid("secret_file", ""));
    CHECK(!omni_mcp_secret_name_valid("secret_file", ".."));
    CHECK(!omni_mcp_secret_name_valid("secret_file", "..data"));
    CHECK(!omni_mcp_secret_name_valid("secret_file", "a/b"));
    CHECK(!omni_mcp_secret_name_valid("secret_file", "/etc/passwd"));
    CHECK(!omni_mcp_secret_name_valid("secret_file", "a b"));
    CHECK(!omni_mcp_secret_name_valid("secret_vault", "a"));
}

static void test_references_are_accepted_beside_values(void)
{
    omni_mcp_server_in_t in;
    char *field, *msg;

    CHECK_EQ_INT(check(BODY("{\"Authorization\":{\"secret_file\":\"tok\"},"
                            "\"X-Key\":{\"secret_env\":\"MCP_SECRET_K\"},"
                            "\"X-Plain\":\"v\"}"),
                     &in, &field, &msg),
        0);
    CHECK(in.headers != NULL);
    CHECK(in.secret_files == 1);
    CHECK_STR_EQ(in.header_names, "{Authorization,X-Key,X-Plain}");
    CHECK_EQ_INT(check(BODY("{\"X-Key\":{\"secret_env\":\"MCP_SECRET_K\"}}"),
                     &in, &field, &msg),
        0);
    CHECK(in.secret_files == 0);
}

static void test_bad_references_name_the_header(void)
{
    static const struct {
        const char *body;
        int status;
    } cases[] = {
        {BODY("{\"Authorization\":{}}"), 400},
        {BODY("{\"Authorization\":{\"secret_file\":5}}"), 400},
        {BODY("{\"Authorization\":{\"vault\":\"x\"}}"), 400},
        {BODY("{\"Authorization\":{\"secret_file\":\"a\","
              "\"secret_env\":\"MCP_SECRET_A\"}}"),
            400},
        {BODY("{\"Authorization\":{\"secret_file\":\"../x\"}}"), 422},
        {BODY("{\"Authorization\":{\"secret_env\":\"HOME\"}}"), 422},
        {BODY("{\"Authorization\":[\"x\"]}"), 400},
    };
    omni_mcp_server_in_t in;
    char *field, *msg;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_EQ_INT(check(cases[i].body, &in, &field, &msg), cases[i].status);
        CHECK_STR_EQ(field, "headers");
        CHECK(strstr(msg, "Authorization") != NULL);
    }
}

static void test_the_builtin_servers_name_is_reserved(void)
{
    omni_mcp_server_in_t in;
    char *field, *msg;

    CHECK_EQ_INT(check("{\"name\":\"omni\",\"url\":\"http://127.0.0.1/mcp\"}",
                     &in, &field, &msg),
        422);
    CHECK_STR_EQ(field, "name");
    CHECK(strstr(msg, "reserved") != NULL);
    /* only that name: one that begins with it is any server's */
    CHECK_EQ_INT(check("{\"name\":\"omni-2\",\"url\":\"http://127.0.0.1/mcp\"}",
                     &in, &field, &msg),
        0);
}

int main(void)
{
    static const unit_test_t tests[] = {UNIT_TEST(test_secret_names),
        UNIT_TEST(test_references_are_accepted_beside_values),
        UNIT_TEST(test_bad_references_name_the_header),
        UNIT_TEST(test_the_builtin_servers_name_is_reserved)};
    int rc;

    omni_arena_init(&arena, 1 << 16);
    rc = unit_run(__FILE__, tests, sizeof(tests) / sizeof(tests[0]));
    omni_arena_free(&arena);
    return rc;
}
