/* test_tools.c: the built-in MCP server's tools (services/memory/memory.h):
 * their definitions, and calls answered once, from the loop, with the
 * REST route's status and error naming the field. No database here: a
 * call that gets as far as a query is answered 503. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "io/clients.h"
#include "services/memory/memory.h"
#include "unit.h"

static omni_arena_t arena;
static int calls, returned;
static int got_status;
static char got_json[512];


static omni_json_t *parse(const char *text)
{
    char err[128];

    return omni_json_parse(&arena, text, strlen(text), NULL, err, sizeof(err));
}


static void done(void *arg, int status, const char *json, size_t len)
{
    calls++;
    got_status = status;
    snprintf(got_json, sizeof(got_json), "%.*s", (int)len, json);
    /* never inside omni_memory_tool_call() */
    if (!returned) {
        got_status = -1;
    }
}


/* Calls tool with args as user "u1" (or nobody); runs the loop until the
 * answer. Returns the status; got_json holds the answer. */
static int call(const char *tool, const char *args, const char *user)
{
    omni_identity_t id = {0};

    id.id = user;
    calls = 0;
    returned = 0;
    got_status = 0;
    got_json[0] = '\0';
    if (omni_memory_tool_call(&id, tool, args ? parse(args) : NULL, done, NULL)
        != 0) {
        return -2;
    }
    returned = 1;
    while (calls == 0) {
        event_base_loop(omni_clients.base, EVLOOP_ONCE);
    }
    event_base_loop(omni_clients.base, EVLOOP_NONBLOCK);
    return calls == 1 ? got_status : -3;
}


static const omni_json_t *tool(const omni_json_t *tools, const char *name)
{
    size_t i;

    for (i = 0; i < tools->u.arr.len; i++) {
        const char *n =
            omni_json_string(omni_json_get(tools->u.arr.items[i], "name"));

        if (n != NULL && strcmp(n, name) == 0) {
            return tools->u.arr.items[i];
        }
    }
    return NULL;
}


static int hint(const omni_json_t *t, const char *name)
{
    int b = 0;

    omni_json_bool(omni_json_get(omni_json_get(t, "annotations"), name), &b);
    return b;
}


static void test_the_seven_tools_have_schemas_and_hints(void)
{
    static const char *const names[] = {"context_put", "context_get",
        "context_list", "context_delete", "memory_add", "memory_search",
        "memory_delete"};
    const omni_json_t *tools = parse(omni_memory_tools_json()), *t, *schema;
    size_t i;

    CHECK(tools != NULL && tools->type == OMNI_JSON_ARRAY);
    CHECK_EQ_INT(tools->u.arr.len, 7);
    for (i = 0; i < 7; i++) {
        t = tool(tools, names[i]);
        CHECK(t != NULL);
        schema = omni_json_get(t, "inputSchema");
        CHECK_STR_EQ(omni_json_string(omni_json_get(schema, "type")), "object");
        CHECK(omni_json_get(schema, "properties") != NULL);
        CHECK(omni_json_string(omni_json_get(t, "description")) != NULL);
    }
    CHECK(hint(tool(tools, "context_get"), "readOnlyHint"));
    CHECK(hint(tool(tools, "context_list"), "readOnlyHint"));
    CHECK(hint(tool(tools, "memory_search"), "readOnlyHint"));
    CHECK(!hint(tool(tools, "memory_add"), "readOnlyHint"));
    CHECK(hint(tool(tools, "context_put"), "idempotentHint"));
    CHECK(!hint(tool(tools, "memory_add"), "idempotentHint"));
}


static void test_an_unknown_tool_is_refused_without_a_callback(void)
{
    CHECK_EQ_INT(call("memory_get_all", "{}", "u1"), -2);
    CHECK_EQ_INT(calls, 0);
}


static void test_a_call_without_a_user_is_401(void)
{
    CHECK_EQ_INT(call("context_get", "{}", NULL), 401);
    CHECK(strstr(got_json, "missing_credentials") != NULL);
}


static void test_bad_arguments_name_the_field(void)
{
    CHECK_EQ_INT(
        call("context_get", "{\"namespace\":5,\"key\":\"k\"}", "u1"), 400);
    CHECK(strstr(got_json, "\"field\":\"namespace\"") != NULL);
    CHECK_EQ_INT(call("memory_delete", "{}", "u1"), 400);
    CHECK(strstr(got_json, "\"field\":\"id\"") != NULL);
    CHECK_EQ_INT(call("context_list", "{\"limit\":0}", "u1"), 400);
    CHECK(strstr(got_json, "\"field\":\"limit\"") != NULL);
    CHECK_EQ_INT(call("memory_search", "{\"query\":\" \"}", "u1"), 422);
    CHECK(strstr(got_json, "\"field\":\"query\"") != NULL);
    CHECK_EQ_INT(
        call("memory_search", "{\"query\":\"x\",\"k\":101}", "u1"), 422);
    CHECK(strstr(got_json, "\"field\":\"k\"") != NULL);
    CHECK_EQ_INT(call("memory_search", "[1]", "u1"), 400);
}


static void test_semantic_search_without_a_model_names_mode(void)
{
    CHECK_EQ_INT(
        call("memory_search", "{\"query\":\"x\",\"mode\":\"semantic\"}", "u1"),
        422);
    CHECK(strstr(got_json, "\"field\":\"mode\"") != NULL);
    CHECK(strstr(got_json, "OMNI_EMBEDDING_MODEL") != NULL);
}


static void test_a_good_call_reaches_the_database(void)
{
    CHECK_EQ_INT(
        call("context_get", "{\"namespace\":\"n\",\"key\":\"k\"}", "u1"), 503);
    CHECK(strstr(got_json, "database_unavailable") != NULL);
    CHECK_EQ_INT(call("memory_search", "{\"query\":\"x\"}", "u1"), 503);
}


int main(void)
{
    int rc;

    omni_arena_init(&arena, 0);
    omni_clients.base = event_base_new();
    rc = unit_run(__FILE__,
        (unit_test_t[]){UNIT_TEST(test_the_seven_tools_have_schemas_and_hints),
            UNIT_TEST(test_an_unknown_tool_is_refused_without_a_callback),
            UNIT_TEST(test_a_call_without_a_user_is_401),
            UNIT_TEST(test_bad_arguments_name_the_field),
            UNIT_TEST(test_semantic_search_without_a_model_names_mode),
            UNIT_TEST(test_a_good_call_reaches_the_database)},
        6);
    event_base_free(omni_clients.base);
    omni_arena_free(&arena);
    return rc;
}
