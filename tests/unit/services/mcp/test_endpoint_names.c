/* test_endpoint_names.c: /mcp's tool names (always
 * ^[A-Za-z0-9_-]{1,64}$, stable, distinct), its signed cursors and its
 * wrapped requestStates. */
#include <stdio.h>
#include <string.h>

#include "services/mcp/endpoint.h"
#include "unit.h"

static int valid(const char *n)
{
    size_t len = strlen(n);

    return len >= 1 && len <= 64
           && strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_-")
                  == len;
}

static void test_a_plain_name_is_server_and_tool(void)
{
    char out[OMNI_MCP_NAME_MAX + 1];

    omni_mcp_tool_name("files", "read_file", out);
    CHECK_STR_EQ(out, "files__read_file");
}

static void test_a_name_with_other_characters_is_hashed_and_valid(void)
{
    char a[OMNI_MCP_NAME_MAX + 1], b[OMNI_MCP_NAME_MAX + 1];

    omni_mcp_tool_name("files", "read.file", a);
    omni_mcp_tool_name("files", "read/file", b);
    CHECK(valid(a));
    CHECK(valid(b));
    CHECK(strncmp(a, "files__read_file_", 17) == 0);
    /* same prefix, different hash: no collision */
    CHECK(strcmp(a, b) != 0);
    /* and the literal read_file stays itself */
    omni_mcp_tool_name("files", "read_file", b);
    CHECK(strcmp(a, b) != 0);
}

static void test_a_long_name_is_cut_with_a_stable_hash(void)
{
    char a[OMNI_MCP_NAME_MAX + 1], b[OMNI_MCP_NAME_MAX + 1],
        c[OMNI_MCP_NAME_MAX + 1];
    const char *t1 = "a_tool_name_that_goes_on_and_on_and_on_and_on_and_on_1";
    const char *t2 = "a_tool_name_that_goes_on_and_on_and_on_and_on_and_on_2";

    omni_mcp_tool_name("a-server-with-a-long-name-0123456", t1, a);
    omni_mcp_tool_name("a-server-with-a-long-name-0123456", t1, b);
    omni_mcp_tool_name("a-server-with-a-long-name-0123456", t2, c);
    CHECK_EQ_INT((int)strlen(a), 64);
    CHECK(valid(a));
    CHECK_STR_EQ(a, b);
    CHECK(strcmp(a, c) != 0);
}

static void test_utf8_and_empty_tool_names_still_give_valid_names(void)
{
    char out[OMNI_MCP_NAME_MAX + 1];

    omni_mcp_tool_name("s", "\xc3\xa9t\xc3\xa9", out);
    CHECK(valid(out));
    omni_mcp_tool_name("s", "", out);
    CHECK(valid(out));
}

static void test_a_cursor_round_trips_and_refuses_tampering(void)
{
    char cur[OMNI_MCP_CURSOR_LEN + 1], bad[OMNI_MCP_CURSOR_LEN + 1];
    unsigned off = 0;

    CHECK_EQ_INT(omni_mcp_cursor_key((const unsigned char *)"k", 1), 0);
    omni_mcp_cursor_make("user", 100, cur);
    CHECK_EQ_INT((int)strlen(cur), OMNI_MCP_CURSOR_LEN);
    CHECK_EQ_INT(omni_mcp_cursor_check("user", cur, &off), 0);
    CHECK_EQ_INT((int)off, 100);
    /* another offset with the old signature */
    memcpy(bad, cur, sizeof(bad));
    bad[7] = bad[7] == '0' ? '1' : '0';
    CHECK_EQ_INT(omni_mcp_cursor_check("user", bad, &off), -1);
    /* another role's list */
    CHECK_EQ_INT(omni_mcp_cursor_check("admin", cur, &off), -1);
    /* another key */
    CHECK_EQ_INT(omni_mcp_cursor_key((const unsigned char *)"j", 1), 0);
    CHECK_EQ_INT(omni_mcp_cursor_check("user", cur, &off), -1);
    CHECK_EQ_INT(omni_mcp_cursor_check("user", "short", &off), -1);
    CHECK_EQ_INT(omni_mcp_cursor_check("user", "", &off), -1);
}

static void test_a_request_state_opens_only_for_its_binding(void)
{
    const char *alice[4] = {"u-alice", "s-1", "tools/call", "deploy"};
    const char *other[4];
    const char *state = NULL;
    const time_t now = 1800000000;
    char *w, bad[256];
    omni_arena_t a;
    size_t i, j;

    omni_arena_init(&a, 0);
    CHECK_EQ_INT(omni_mcp_cursor_key((const unsigned char *)"k", 1), 0);
    w = omni_mcp_state_wrap(&a, alice, "the \"upstream\" state", now);
    CHECK(w != NULL && strncmp(w, OMNI_MCP_STATE_PREFIX, 6) == 0);
    /* opaque: the upstream's state is not in it as it was */
    CHECK(strstr(w, "upstream") == NULL);
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, w, now + 5, &state), 0);
    CHECK_STR_EQ(state, "the \"upstream\" state");
    /* any other user, server, method or name */
    for (i = 0; i < 4; i++) {
        for (j = 0; j < 4; j++) {
            other[j] = alice[j];
        }
        other[i] = "x";
        CHECK_EQ_INT(omni_mcp_state_open(&a, other, w, now, &state), -1);
    }
    /* every character changed, or one removed or added */
    for (i = 6; i < strlen(w) && i < sizeof(bad) - 2; i++) {
        snprintf(bad, sizeof(bad), "%s", w);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        CHECK_EQ_INT(omni_mcp_state_open(&a, alice, bad, now, &state), -1);
    }
    snprintf(bad, sizeof(bad), "%sA", w);
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, bad, now, &state), -1);
    bad[strlen(w) - 1] = '\0';
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, bad, now, &state), -1);
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, "omni1.", now, &state), -1);
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, "", now, &state), -1);
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, w + 6, now, &state), -1);
    /* expired after OMNI_MCP_STATE_TTL seconds */
    CHECK_EQ_INT(
        omni_mcp_state_open(&a, alice, w, now + OMNI_MCP_STATE_TTL, &state), 0);
    CHECK_EQ_INT(
        omni_mcp_state_open(&a, alice, w, now + OMNI_MCP_STATE_TTL + 1, &state),
        -2);
    /* another key (a replica with another secret) */
    CHECK_EQ_INT(omni_mcp_cursor_key((const unsigned char *)"j", 1), 0);
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, w, now, &state), -1);
    /* an empty state round-trips */
    w = omni_mcp_state_wrap(&a, alice, "", now);
    CHECK(w != NULL);
    CHECK_EQ_INT(omni_mcp_state_open(&a, alice, w, now, &state), 0);
    CHECK_STR_EQ(state, "");
    omni_arena_free(&a);
}

UNIT_MAIN(UNIT_TEST(test_a_plain_name_is_server_and_tool),
    UNIT_TEST(test_a_name_with_other_characters_is_hashed_and_valid),
    UNIT_TEST(test_a_long_name_is_cut_with_a_stable_hash),
    UNIT_TEST(test_utf8_and_empty_tool_names_still_give_valid_names),
    UNIT_TEST(test_a_cursor_round_trips_and_refuses_tampering),
    UNIT_TEST(test_a_request_state_opens_only_for_its_binding))
