/* test_jsonrpc.c: the JSON-RPC 2.0 messages MCP upstreams send, classified
 * as the client reads them, and the malformed ones refused with a reason. */
#include <stdio.h>
#include <string.h>

#include "lib/jsonrpc.h"
#include "unit.h"

static omni_arena_t arena;
static char why[128];

/* 0 or -1 from omni_rpc_parse of s into *m (why holds the reason). */
static int parse(const char *s, omni_rpc_msg_t *m)
{
    omni_arena_reset(&arena);
    why[0] = '\0';
    return omni_rpc_parse(&arena, s, strlen(s), 1 << 20, m, why, sizeof(why));
}

static void test_a_result_answers_its_id(void)
{
    omni_rpc_msg_t m;

    CHECK_EQ_INT(
        parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[]}}", &m),
        0);
    CHECK_EQ_INT(m.kind, OMNI_RPC_RESULT);
    CHECK(omni_rpc_id_is(&m, 7));
    CHECK(!omni_rpc_id_is(&m, 8));
    CHECK(m.result != NULL && m.error == NULL);
}

static void test_an_error_carries_its_code_and_message(void)
{
    omni_rpc_msg_t m;

    CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":"
                       "{\"code\":-32602,\"message\":\"bad args\"}}",
                     &m),
        0);
    CHECK_EQ_INT(m.kind, OMNI_RPC_ERROR);
    CHECK_EQ_INT(m.code, -32602);
    CHECK_STR_EQ(m.message, "bad args");
    CHECK(m.id != NULL);
}

/* JSON-RPC answers a request it could not read with "id": null; servers
 * built on the MCP SDK's examples (server-everything) leave the id out
 * when they refuse a session they do not know. Both are that error. */
static void test_an_error_without_a_usable_id_is_read(void)
{
    static const char *const texts[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
        "\"message\":\"Parse error\"}}",
        "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,\"message\":"
        "\"Bad Request: No valid session ID provided\"}}",
    };
    omni_rpc_msg_t m;
    size_t i;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        CHECK_EQ_INT(parse(texts[i], &m), 0);
        CHECK_EQ_INT(m.kind, OMNI_RPC_ERROR);
        CHECK(m.id == NULL);
        CHECK(m.message != NULL && m.message[0] != '\0');
        CHECK(!omni_rpc_id_is(&m, 0));
    }
    CHECK_EQ_INT(m.code, -32000);
}

static void test_notifications_and_requests_are_told_apart(void)
{
    omni_rpc_msg_t m;

    CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":"
                       "\"notifications/progress\",\"params\":{\"p\":1}}",
                     &m),
        0);
    CHECK_EQ_INT(m.kind, OMNI_RPC_NOTIFICATION);
    CHECK_STR_EQ(m.method, "notifications/progress");
    CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":"
                       "\"roots/list\"}",
                     &m),
        0);
    CHECK_EQ_INT(m.kind, OMNI_RPC_REQUEST);
    CHECK(omni_rpc_id_is(&m, 3));
}

static void test_malformed_messages_are_refused_with_a_reason(void)
{
    static const struct {
        const char *text, *reason;
    } bad[] = {
        {"nope", "not JSON"},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]", "batch"},
        {"\"2.0\"", "not a JSON-RPC message object"},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}", "jsonrpc"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}", "id is not"},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{}}", "id is not"},
        {"{\"jsonrpc\":\"2.0\",\"result\":{}}", "without an id"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}", "id is not"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", "exactly one"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,"
         "\"message\":\"x\"}}",
            "exactly one"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[]}", "result is not"},
        {"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":\"x\",\"message\":\"m\"}}",
            "error is not"},
        {"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1}}", "error is not"},
        {"{\"jsonrpc\":\"2.0\",\"method\":7}", "method is not"},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":1}", "params"},
    };
    omni_rpc_msg_t m;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i].text, &m) != -1
            || strstr(why, bad[i].reason) == NULL) {
            fprintf(stderr, "    %s: \"%s\"\n", bad[i].text, why);
            CHECK(!"refused with the reason");
        }
    }
}

static void test_a_message_over_the_limit_is_refused(void)
{
    const char *s = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"k\":\"v\"}}";
    omni_rpc_msg_t m;

    omni_arena_reset(&arena);
    CHECK_EQ_INT(
        omni_rpc_parse(&arena, s, strlen(s), 10, &m, why, sizeof(why)), -1);
    CHECK_EQ_INT(
        omni_rpc_parse(&arena, s, strlen(s), strlen(s), &m, why, sizeof(why)),
        0);
}

static void setup(void)
{
    omni_arena_init(&arena, 0);
}

int main(void)
{
    static const unit_test_t tests[] = {
        UNIT_TEST(test_a_result_answers_its_id),
        UNIT_TEST(test_an_error_carries_its_code_and_message),
        UNIT_TEST(test_an_error_without_a_usable_id_is_read),
        UNIT_TEST(test_notifications_and_requests_are_told_apart),
        UNIT_TEST(test_malformed_messages_are_refused_with_a_reason),
        UNIT_TEST(test_a_message_over_the_limit_is_refused),
    };
    int rc;

    setup();
    rc = unit_run(__FILE__, tests, sizeof(tests) / sizeof(tests[0]));
    omni_arena_free(&arena);
    return rc;
}
