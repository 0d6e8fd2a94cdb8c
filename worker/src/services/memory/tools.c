/* tools.c: the built-in MCP server "omni": the store's operations as MCP
 * tools, whose arguments are the REST fields, answering what the REST
 * routes answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "io/clients.h"
#include "io/log.h"
#include "services/memory/memory.h"
#include "services/memory/store.h"

#define OMNI_MEM_NAME_SCHEMA                                                   \
    "{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9._-]{1,128}$\"}"

static const char omni_mem_tools[] =
    "["
    "{\"name\":\"context_put\",\"description\":\"Stores a JSON value under "
    "a namespace and key (replacing the one there), with optional tags.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"namespace\":" OMNI_MEM_NAME_SCHEMA ",\"key\":" OMNI_MEM_NAME_SCHEMA ","
    "\"value\":{\"description\":\"any JSON value, at most 256 KiB\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
    "\"minLength\":1,\"maxLength\":64},\"maxItems\":32}},"
    "\"required\":[\"namespace\",\"key\",\"value\"]},"
    "\"annotations\":{\"title\":\"Put a context\",\"readOnlyHint\":false,"
    "\"destructiveHint\":true,\"idempotentHint\":true,"
    "\"openWorldHint\":false}},"

    "{\"name\":\"context_get\",\"description\":\"Reads the context stored "
    "under a namespace and key.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"namespace\":" OMNI_MEM_NAME_SCHEMA ",\"key\":" OMNI_MEM_NAME_SCHEMA "},"
    "\"required\":[\"namespace\",\"key\"]},"
    "\"annotations\":{\"title\":\"Get a context\",\"readOnlyHint\":true,"
    "\"openWorldHint\":false}},"

    "{\"name\":\"context_list\",\"description\":\"Lists contexts, by "
    "namespace, tag or key prefix, a page at a time (pass next_cursor as "
    "cursor for the next).\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"namespace\":" OMNI_MEM_NAME_SCHEMA ",\"tag\":{\"type\":\"string\"},"
    "\"prefix\":{\"type\":\"string\"},\"limit\":{\"type\":\"integer\","
    "\"minimum\":1,\"maximum\":500},\"cursor\":{\"type\":\"string\"}}},"
    "\"annotations\":{\"title\":\"List contexts\",\"readOnlyHint\":true,"
    "\"openWorldHint\":false}},"

    "{\"name\":\"context_delete\",\"description\":\"Deletes the context "
    "stored under a namespace and key.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"namespace\":" OMNI_MEM_NAME_SCHEMA ",\"key\":" OMNI_MEM_NAME_SCHEMA "},"
    "\"required\":[\"namespace\",\"key\"]},"
    "\"annotations\":{\"title\":\"Delete a context\",\"readOnlyHint\":false,"
    "\"destructiveHint\":true,\"idempotentHint\":false,"
    "\"openWorldHint\":false}},"

    "{\"name\":\"memory_add\",\"description\":\"Remembers a text (with "
    "optional metadata) in a namespace; searchable by text at once and "
    "semantically once embedded. Or items: up to 100 of them.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"namespace\":" OMNI_MEM_NAME_SCHEMA ",\"content\":{\"type\":\"string\","
    "\"minLength\":1},\"metadata\":{\"type\":\"object\"},"
    "\"items\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":100,"
    "\"items\":{\"type\":\"object\",\"properties\":{"
    "\"namespace\":" OMNI_MEM_NAME_SCHEMA ",\"content\":{\"type\":\"string\"},"
    "\"metadata\":{\"type\":\"object\"}},\"required\":[\"content\"]}}}},"
    "\"annotations\":{\"title\":\"Add a memory\",\"readOnlyHint\":false,"
    "\"destructiveHint\":false,\"idempotentHint\":false,"
    "\"openWorldHint\":false}},"

    "{\"name\":\"memory_search\",\"description\":\"Finds memories by "
    "full-text, semantic or hybrid search; best first, with scores.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"query\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":4096},"
    "\"namespace\":" OMNI_MEM_NAME_SCHEMA ",\"k\":{\"type\":\"integer\","
    "\"minimum\":1,\"maximum\":100},\"mode\":{\"type\":\"string\","
    "\"enum\":[\"text\",\"semantic\",\"hybrid\"]},"
    "\"filter\":{\"type\":\"object\",\"description\":\"metadata members "
    "the memories must have\"}},\"required\":[\"query\"]},"
    "\"annotations\":{\"title\":\"Search memories\",\"readOnlyHint\":true,"
    "\"openWorldHint\":false}},"

    "{\"name\":\"memory_delete\",\"description\":\"Forgets a memory by "
    "id.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"string\",\"format\":\"uuid\"}},"
    "\"required\":[\"id\"]},"
    "\"annotations\":{\"title\":\"Delete a memory\",\"readOnlyHint\":false,"
    "\"destructiveHint\":true,\"idempotentHint\":false,"
    "\"openWorldHint\":false}}"
    "]";

static const struct {
    const char *tool;
    const char *op;
} omni_mem_tool_ops[] = {
    {"context_put", "contexts.put"},
    {"context_get", "contexts.get"},
    {"context_list", "contexts.list"},
    {"context_delete", "contexts.delete"},
    {"memory_add", "memories.add"},
    {"memory_search", "memories.search"},
    {"memory_delete", "memories.delete"},
};

typedef struct {
    omni_memory_done_pt done;
    void *arg;
    int status;
    char answer[256];
} omni_mem_refusal_t;


const char *omni_memory_tools_json(void)
{
    return omni_mem_tools;
}


static void omni_mem_refused(evutil_socket_t fd, short what, void *arg)
{
    omni_mem_refusal_t *f = arg;

    f->done(f->arg, f->status, f->answer, strlen(f->answer));
    free(f);
}


/* Answers a bad argument from the loop; -1 when even that cannot be. */
static int omni_mem_refuse(omni_memory_done_pt done, void *arg, int status,
    const char *code, const char *field, const char *msg)
{
    omni_mem_refusal_t *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    f->done = done;
    f->arg = arg;
    f->status = status;
    snprintf(f->answer, sizeof(f->answer),
        "{\"error\":\"%s\",\"message\":\"%s\"%s%s%s}", code, msg,
        field ? ",\"field\":\"" : "", field ? field : "", field ? "\"" : "");
    if (event_base_once(
            omni_clients.base, -1, EV_TIMEOUT, omni_mem_refused, f, NULL)
        != 0) {
        omni_log(OMNI_LOG_ERROR, "cannot schedule a callback", NULL);
        abort();
    }
    return 0;
}


/* A string argument: 0 and *out (NULL when absent); -1 when not a string. */
static int omni_mem_arg(
    const omni_json_t *args, const char *name, const char **out)
{
    const omni_json_t *v = omni_json_get(args, name);

    *out = NULL;
    if (v == NULL || v->type == OMNI_JSON_NULL) {
        return 0;
    }
    if (v->type != OMNI_JSON_STRING) {
        return -1;
    }
    *out = v->u.str.ptr;
    return 0;
}


int omni_memory_tool_call(const omni_identity_t *id, const char *name,
    const omni_json_t *args, omni_memory_done_pt done, void *arg)
{
    static const omni_json_t empty = {.type = OMNI_JSON_OBJECT};
    omni_mem_args_t a = {0};
    const omni_json_t *limit;
    const char *bad = NULL;
    int64_t n = 50;
    size_t i;

    for (i = 0; i < sizeof(omni_mem_tool_ops) / sizeof(omni_mem_tool_ops[0]);
         i++) {
        if (strcmp(name, omni_mem_tool_ops[i].tool) == 0) {
            break;
        }
    }
    if (i == sizeof(omni_mem_tool_ops) / sizeof(omni_mem_tool_ops[0])) {
        return -1;
    }
    if (id->id == NULL) {
        omni_mem_refuse(done, arg, 401, "missing_credentials", NULL,
            "this tool needs a user");
        return 0;
    }
    if (args == NULL) {
        args = &empty;
    }
    if (args->type != OMNI_JSON_OBJECT) {
        omni_mem_refuse(done, arg, 400, "invalid_field", "arguments",
            "arguments: must be an object");
        return 0;
    }
    a.op = omni_mem_tool_ops[i].op;
    a.owner = id->id;
    a.body = args;
    if (strncmp(a.op, "contexts.", 9) == 0 && strcmp(a.op, "contexts.list")) {
        if (omni_mem_arg(args, "namespace", &a.ns) != 0) {
            bad = "namespace";
        } else if (omni_mem_arg(args, "key", &a.key) != 0) {
            bad = "key";
        }
    } else if (strcmp(a.op, "memories.delete") == 0) {
        if (omni_mem_arg(args, "id", &a.key) != 0) {
            bad = "id";
        } else if (a.key == NULL) {
            omni_mem_refuse(
                done, arg, 400, "missing_field", "id", "id: required");
            return 0;
        }
    } else if (strcmp(a.op, "contexts.list") == 0) {
        limit = omni_json_get(args, "limit");
        if (limit != NULL && limit->type != OMNI_JSON_NULL
            && (!omni_json_int(limit, &n) || n < 1 || n > 500)) {
            omni_mem_refuse(done, arg, 400, "invalid_field", "limit",
                "limit: an integer from 1 to 500");
            return 0;
        }
        if (omni_mem_arg(args, "cursor", &a.cursor) != 0) {
            bad = "cursor";
        }
    }
    if (bad != NULL) {
        char msg[64];

        snprintf(msg, sizeof(msg), "%s: must be a string", bad);
        omni_mem_refuse(done, arg, 400, "invalid_field", bad, msg);
        return 0;
    }
    a.limit = (int)n;
    if (omni_mem_run(&a, done, arg) != 0) {
        omni_mem_refuse(done, arg, 503, "overloaded", NULL, "out of memory");
    }
    return 0;
}
