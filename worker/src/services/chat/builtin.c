/* builtin.c: the built-in server's tool definitions for the turn, read
 * from services/memory's tools/list text the first time a turn needs them
 * (static text: the same for every turn of the process). */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/arena.h"
#include "lib/json.h"
#include "services/chat/builtin.h"
#include "services/mcp/mcp.h"
#include "services/memory/memory.h"

static omni_arena_t omni_builtin_arena;
static omni_wire_tooldef_t *omni_builtin_defs;
static int omni_builtin_n = -1;


static int omni_builtin_parse(void)
{
    const char *text = omni_memory_tools_json();
    const omni_json_t *arr, *e;
    struct evbuffer *b;
    char err[128], name[80];
    size_t i;
    int n = 0;

    omni_arena_init(&omni_builtin_arena, 16384);
    arr = omni_json_parse(
        &omni_builtin_arena, text, strlen(text), NULL, err, sizeof(err));
    if (arr == NULL || arr->type != OMNI_JSON_ARRAY) {
        return 0;
    }
    omni_builtin_defs = omni_arena_alloc(
        &omni_builtin_arena, sizeof(*omni_builtin_defs) * arr->u.arr.len);
    if (omni_builtin_defs == NULL) {
        return 0;
    }
    for (i = 0; i < arr->u.arr.len; i++) {
        const char *tool;

        e = arr->u.arr.items[i];
        tool = omni_json_string(omni_json_get(e, "name"));
        b = evbuffer_new();
        if (tool == NULL || b == NULL) {
            if (b != NULL) {
                evbuffer_free(b);
            }
            continue;
        }
        snprintf(name, sizeof(name), "%s__%s", OMNI_MCP_BUILTIN, tool);
        omni_json_write(b, omni_json_get(e, "inputSchema"));
        omni_builtin_defs[n].name =
            omni_arena_strndup(&omni_builtin_arena, name, strlen(name));
        omni_builtin_defs[n].description =
            omni_json_string(omni_json_get(e, "description"));
        omni_builtin_defs[n].schema = omni_arena_strndup(&omni_builtin_arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
        if (omni_builtin_defs[n].name != NULL
            && omni_builtin_defs[n].schema != NULL) {
            n++;
        }
    }
    return n;
}


int omni_chat_builtin_tools(const omni_wire_tooldef_t **defs)
{
    if (omni_builtin_n < 0) {
        omni_builtin_n = omni_builtin_parse();
    }
    *defs = omni_builtin_n > 0 ? omni_builtin_defs : NULL;
    return omni_builtin_n;
}
