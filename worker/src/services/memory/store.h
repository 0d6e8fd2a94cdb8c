/* store.h: one operation on the Omnex store, shared by the REST routes and
 * the MCP tools: a call of omnex.api() (sql/010_omnex.sql), which validates,
 * filters by owner and answers; a search in mode semantic or hybrid first
 * embeds its query. Internal to the memory service. */
#ifndef OMNI_MEMORY_STORE_H
#define OMNI_MEMORY_STORE_H

#include "lib/json.h"
#include "services/memory/memory.h"

typedef struct {
    const char *op;          /* "contexts.put", "memories.search", ... */
    const char *owner;       /* the caller's id (required) */
    const char *ns;          /* path namespace, or NULL */
    const char *key;         /* path key or memory id, or NULL */
    const omni_json_t *body; /* the body or arguments, or NULL */
    int limit;               /* lists: 1..500 */
    const char *cursor;      /* lists: as given, or NULL */
} omni_mem_args_t;

/* Registers the statement (service init). 0 or -1. */
int omni_mem_store_init(void);

/* Runs a->op; every string is copied. done runs exactly once, from the
 * loop, never inside this call. Returns 0, or -1 when memory runs out (no
 * callback). */
int omni_mem_run(const omni_mem_args_t *a, omni_memory_done_pt done, void *arg);

#endif
