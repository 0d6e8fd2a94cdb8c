/* test_wire.c: the providers' wire formats against hand-written golden
 * streams, each fed whole and split at every byte boundary. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "services/chat/wire.h"
#include "unit.h"

/* OpenAI: a text reply, then the usage chunk with choices: [] */
static const char openai_text[] =
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":"
    "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],"
    "\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":"
    "{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":"
    "{\"content\":\"lo \\u00e9\"},\"finish_reason\":\"stop\"}]}\r\n\r\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{"
    "\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,"
    "\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n"
    "data: [DONE]\n\n";

/* OpenAI: two parallel tool calls whose deltas interleave */
static const char openai_tools[] =
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":"
    "\"function\",\"function\":{\"name\":\"fx__echo\",\"arguments\":\"\"}}]}"
    "}]}\n\n"
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
    "[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{"
    "\"name\":\"fx__add\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n"
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
    "[{\"index\":0,\"function\":{\"arguments\":\"{\\\"text\\\":\\\"hi\\\"}\"}"
    "}]}}]}\n\n"
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
    "[{\"index\":1,\"function\":{\"arguments\":\"1,\\\"b\\\":2}\"}}]},"
    "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":30,"
    "\"completion_tokens\":20}}\n\n"
    "data: [DONE]\n\n";

/* Anthropic: text and a tool use; message_delta's usage is cumulative */
static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":"
    "\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{"
    "\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}"
    "\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
    "{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"Let me \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"check.\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
    "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"fx__echo\","
    "\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{\\\"text\\\": \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"\\\"hi\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"tool_use\"},\"usage\":{\"output_tokens\":10}}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"tool_use\"},\"usage\":{\"output_tokens\":17}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static const char anthropic_error[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\","
    "\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"partial\"}}\n\n"
    "event: error\n"
    "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
    "\"message\":\"Overloaded\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\" ignored\"}}\n\n";

typedef struct {
    char text[256];
    size_t len;
    int calls;
} seen_t;

static int on_text(void *arg, const char *s, size_t n)
{
    seen_t *seen = arg;

    if (seen->len + n < sizeof(seen->text)) {
        memcpy(seen->text + seen->len, s, n);
        seen->len += n;
    }
    seen->calls++;
    return 0;
}

/* Feeds s cut at cut (0: whole) into w, which the caller frees. */
static int feed_cut(omni_wire_t *w, omni_wire_kind_t kind, const char *s,
    size_t cut, seen_t *seen)
{
    size_t n = strlen(s);
    int rc;

    omni_wire_init(w, kind);
    memset(seen, 0, sizeof(*seen));
    w->on_text = on_text;
    w->arg = seen;
    if (cut == 0 || cut >= n) {
        return omni_wire_feed(w, s, n);
    }
    rc = omni_wire_feed(w, s, cut);
    return rc != 0 ? rc : omni_wire_feed(w, s + cut, n - cut);
}

static int args_are(const omni_wire_tool_t *t, const char *id, const char *name,
    const char *args)
{
    return t->id.buf && strcmp(t->id.buf, id) == 0 && t->name.buf
           && strcmp(t->name.buf, name) == 0 && t->args.buf
           && strcmp(t->args.buf, args) == 0;
}

static void test_openai_text_stream_with_usage_chunk(void)
{
    omni_wire_t w;
    seen_t seen;
    size_t cut;

    for (cut = 0; cut < sizeof(openai_text) - 1; cut++) {
        CHECK_EQ_INT(
            feed_cut(&w, OMNI_WIRE_OPENAI, openai_text, cut, &seen), 0);
        CHECK_STR_EQ(w.text.buf, "Hello \xc3\xa9");
        CHECK_EQ_INT(seen.len, w.text.len);
        CHECK(memcmp(seen.text, w.text.buf, seen.len) == 0);
        CHECK_EQ_INT(w.input_tokens, 12);
        CHECK_EQ_INT(w.output_tokens, 3);
        CHECK_EQ_INT(w.cached_tokens, 4);
        CHECK(w.have_usage && w.done);
        CHECK_STR_EQ(w.finish, "stop");
        CHECK_STR_EQ(w.request_id, "chatcmpl-1");
        CHECK_STR_EQ(w.error, "");
        CHECK_EQ_INT(w.ntools, 0);
        omni_wire_free(&w);
    }
}

static void test_openai_parallel_tool_calls_assembled_per_index(void)
{
    omni_wire_t w;
    seen_t seen;
    size_t cut;

    for (cut = 0; cut < sizeof(openai_tools) - 1; cut++) {
        CHECK_EQ_INT(
            feed_cut(&w, OMNI_WIRE_OPENAI, openai_tools, cut, &seen), 0);
        CHECK_EQ_INT(w.ntools, 2);
        CHECK(args_are(&w.tools[0], "call_a", "fx__echo", "{\"text\":\"hi\"}"));
        CHECK(args_are(&w.tools[1], "call_b", "fx__add", "{\"a\":1,\"b\":2}"));
        CHECK_STR_EQ(w.finish, "tool_calls");
        CHECK_EQ_INT(w.input_tokens, 30);
        CHECK_EQ_INT(w.output_tokens, 20);
        CHECK_EQ_INT(w.text.len, 0);
        omni_wire_free(&w);
    }
}

static void test_anthropic_stream_takes_last_cumulative_usage(void)
{
    omni_wire_t w;
    seen_t seen;
    size_t cut;

    for (cut = 0; cut < sizeof(anthropic_stream) - 1; cut++) {
        CHECK_EQ_INT(
            feed_cut(&w, OMNI_WIRE_ANTHROPIC, anthropic_stream, cut, &seen), 0);
        CHECK_STR_EQ(w.text.buf, "Let me check.");
        CHECK_EQ_INT(w.ntools, 1);
        CHECK(
            args_are(&w.tools[0], "toolu_1", "fx__echo", "{\"text\": \"hi\"}"));
        CHECK_EQ_INT(w.input_tokens, 30); /* 25 + 5 read from the cache */
        CHECK_EQ_INT(w.cached_tokens, 5);
        CHECK_EQ_INT(w.output_tokens, 17); /* the last, not 1 + 10 + 17 */
        CHECK_STR_EQ(w.finish, "tool_use");
        CHECK_STR_EQ(w.request_id, "msg_1");
        CHECK(w.done);
        omni_wire_free(&w);
    }
}

static void test_anthropic_error_event_ends_the_stream(void)
{
    omni_wire_t w;
    seen_t seen;
    size_t cut;

    for (cut = 0; cut < sizeof(anthropic_error) - 1; cut++) {
        CHECK_EQ_INT(
            feed_cut(&w, OMNI_WIRE_ANTHROPIC, anthropic_error, cut, &seen), 0);
        CHECK_STR_EQ(w.error, "overloaded_error");
        CHECK_STR_EQ(w.message, "Overloaded");
        CHECK_STR_EQ(w.text.buf, "partial");
        CHECK_EQ_INT(w.input_tokens, 9);
        CHECK(!w.done);
        omni_wire_free(&w);
    }
}

static void test_openai_error_chunk_mid_stream(void)
{
    static const char s[] =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"ab\"}}]}\n\n"
        "data: {\"error\":{\"message\":\"server had an error\",\"type\":"
        "\"server_error\"}}\n\n";
    omni_wire_t w;
    seen_t seen;

    CHECK_EQ_INT(feed_cut(&w, OMNI_WIRE_OPENAI, s, 0, &seen), 0);
    CHECK_STR_EQ(w.error, "server_error");
    CHECK_STR_EQ(w.message, "server had an error");
    CHECK_STR_EQ(w.text.buf, "ab");
    omni_wire_free(&w);
}

static void test_garbage_is_a_bad_response(void)
{
    static const char *const bad[] = {
        "data: hello\n\n",
        "data: [1,2]\n\n",
        "data: {\"choices\":7}\n\n",
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"x\"}]}}]}"
        "\n\n",
    };
    omni_wire_t w;
    seen_t seen;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(
            feed_cut(&w, OMNI_WIRE_OPENAI, bad[i], 0, &seen), OMNI_WIRE_BAD);
        CHECK_STR_EQ(w.error, "bad_response");
        omni_wire_free(&w);
    }
    CHECK_EQ_INT(feed_cut(&w, OMNI_WIRE_ANTHROPIC, "data: {}\n\n", 0, &seen),
        OMNI_WIRE_BAD);
    omni_wire_free(&w);
}

static void test_whole_bodies(void)
{
    static const char oa[] =
        "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"choices\":[{"
        "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{"
        "\"name\":\"fx__echo\",\"arguments\":\"{}\"}}]},\"finish_reason\":"
        "\"tool_calls\"}],\"usage\":{\"prompt_tokens\":5,"
        "\"completion_tokens\":7}}";
    static const char an[] =
        "{\"id\":\"msg_9\",\"type\":\"message\",\"content\":[{\"type\":"
        "\"text\","
        "\"text\":\"Hi\"},{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"a\","
        "\"input\":{\"x\":1}}],\"stop_reason\":\"tool_use\",\"usage\":{"
        "\"input_tokens\":3,\"output_tokens\":4}}";
    omni_wire_t w;

    omni_wire_init(&w, OMNI_WIRE_OPENAI);
    CHECK_EQ_INT(omni_wire_body(&w, oa, sizeof(oa) - 1), 0);
    CHECK_EQ_INT(w.ntools, 1);
    CHECK(args_are(&w.tools[0], "c1", "fx__echo", "{}"));
    CHECK_EQ_INT(w.output_tokens, 7);
    CHECK_STR_EQ(w.request_id, "chatcmpl-9");
    omni_wire_free(&w);

    omni_wire_init(&w, OMNI_WIRE_ANTHROPIC);
    CHECK_EQ_INT(omni_wire_body(&w, an, sizeof(an) - 1), 0);
    CHECK_STR_EQ(w.text.buf, "Hi");
    CHECK(args_are(&w.tools[0], "t1", "a", "{\"x\":1}"));
    CHECK_EQ_INT(w.input_tokens, 3);
    CHECK_EQ_INT(w.output_tokens, 4);
    omni_wire_free(&w);
}

static void test_error_bodies_of_both_providers(void)
{
    static const char oa[] = "{\"error\":{\"message\":\"Rate limit reached\","
                             "\"type\":\"requests\",\"code\":\"rate_limit\"}}";
    static const char an[] = "{\"type\":\"error\",\"error\":{\"type\":"
                             "\"rate_limit_error\",\"message\":\"slow down\"}}";
    omni_wire_t w;

    omni_wire_init(&w, OMNI_WIRE_OPENAI);
    omni_wire_error_body(&w, 429, oa, sizeof(oa) - 1);
    CHECK_STR_EQ(w.error, "requests");
    CHECK_STR_EQ(w.message, "Rate limit reached");
    omni_wire_free(&w);

    omni_wire_init(&w, OMNI_WIRE_ANTHROPIC);
    omni_wire_error_body(&w, 429, an, sizeof(an) - 1);
    CHECK_STR_EQ(w.error, "rate_limit_error");
    CHECK_STR_EQ(w.message, "slow down");
    omni_wire_free(&w);

    omni_wire_init(&w, OMNI_WIRE_OPENAI);
    omni_wire_error_body(&w, 500, "<html>", 6);
    CHECK_STR_EQ(w.error, "http_500");
    omni_wire_free(&w);
}

static char *request_text(omni_wire_kind_t kind, int stream)
{
    static const omni_wire_msg_t msgs[] = {
        {"user", "weather?", NULL, NULL, 0},
        {"assistant", "",
            "[{\"id\":\"t1\",\"name\":\"fx__w\","
            "\"arguments\":\"{\\\"c\\\":1}\"},"
            "{\"id\":\"t2\",\"name\":\"fx__w\","
            "\"arguments\":\"not json\"}]",
            NULL, 0},
        {"tool", "sunny", NULL, "t1", 0},
        {"tool", "bad arguments", NULL, "t2", 1},
    };
    static const omni_wire_tooldef_t tools[] = {
        {"fx__w", "weather", "{\"type\":\"object\"}"},
    };
    struct evbuffer *b = evbuffer_new();
    char *s;

    omni_wire_request(
        b, kind, "m1", "be brief", msgs, 4, tools, 1, 100, stream);
    s = calloc(1, evbuffer_get_length(b) + 1);
    evbuffer_remove(b, s, evbuffer_get_length(b));
    evbuffer_free(b);
    return s;
}

static void test_request_bodies(void)
{
    char *oa = request_text(OMNI_WIRE_OPENAI, 1);
    char *an = request_text(OMNI_WIRE_ANTHROPIC, 0);

    CHECK(strstr(oa, "\"stream_options\":{\"include_usage\":true}") != NULL);
    CHECK(strstr(oa, "{\"role\":\"system\",\"content\":\"be brief\"}") != NULL);
    CHECK(strstr(oa, "\"tool_call_id\":\"t2\"") != NULL);
    CHECK(strstr(oa, "\"arguments\":\"not json\"") != NULL);
    CHECK(strstr(oa, "\"parameters\":{\"type\":\"object\"}") != NULL);

    CHECK(strstr(an, "\"system\":\"be brief\"") != NULL);
    CHECK(strstr(an, "\"input\":{\"c\":1}") != NULL);
    CHECK(strstr(an, "\"input\":{}") != NULL); /* invalid arguments */
    /* both tool results in one user message */
    CHECK(strstr(an, "{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"tool_result\",\"tool_use_id\":\"t1\",\"content\":"
                     "\"sunny\",\"is_error\":false},{\"type\":\"tool_result\","
                     "\"tool_use_id\":\"t2\"")
          != NULL);
    CHECK(strstr(an, "\"input_schema\":{\"type\":\"object\"}") != NULL);
    CHECK(strstr(an, "stream_options") == NULL);
    free(oa);
    free(an);
}

UNIT_MAIN(UNIT_TEST(test_openai_text_stream_with_usage_chunk),
    UNIT_TEST(test_openai_parallel_tool_calls_assembled_per_index),
    UNIT_TEST(test_anthropic_stream_takes_last_cumulative_usage),
    UNIT_TEST(test_anthropic_error_event_ends_the_stream),
    UNIT_TEST(test_openai_error_chunk_mid_stream),
    UNIT_TEST(test_garbage_is_a_bad_response), UNIT_TEST(test_whole_bodies),
    UNIT_TEST(test_error_bodies_of_both_providers),
    UNIT_TEST(test_request_bodies))
